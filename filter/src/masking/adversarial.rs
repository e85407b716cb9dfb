//! Inputs built to make a masking scanner slow: long runs of a detector's anchor (`sk-`,
//! `api_key=`, PEM headers, `eyJ`, …) that each start a candidate and never finish one. Shared by
//! the masking tests (which check they never panic and stream as they mask whole) and the
//! criterion bench `masking/adversarial` (which measures their speed); the module holds data only.

/// One adversarial input and a short name for it (a bench id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdversarialInput {
    /// Short name, e.g. `sk_run`.
    pub name: &'static str,
    /// The input, about 100 KiB.
    pub bytes: Vec<u8>,
}

/// The adversarial inputs, each about 100 KiB.
pub fn adversarial_inputs() -> Vec<AdversarialInput> {
    let input = |name, bytes| AdversarialInput { name, bytes };
    vec![
        input("sk_run", b"sk-".repeat(40_000)),
        input("colon_run", b"a:".repeat(60_000)),
        input("api_key_run", b"api_key=".repeat(20_000)),
        input(
            "pem_header_run",
            b"-----BEGIN RSA PRIVATE KEY-----".repeat(4_000),
        ),
        input("jwt_prefix_run", b"eyJ".repeat(40_000)),
        input("bearer_run", b"Bearer ".repeat(20_000)),
        input("akia_run", b"AKIA".repeat(30_000)),
        input("letter_run", vec![b'A'; 120_000]),
        input("equals_run", vec![b'='; 120_000]),
    ]
}
