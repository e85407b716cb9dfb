//! Shared harness of the verification benchmarks: the embedded fixtures (one RS256 and one ES256
//! token with their public keys), the split of a compact JWT into signing input and signature, and
//! a time-boxed timing loop that prints one machine-readable line per algorithm.
//!
//! Every binary in `src/bin/` is one candidate verifier; it builds for the host and for
//! `wasm32-wasip1` alike and only uses `std::time::Instant` for timing (WASI `clock_time_get`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

pub mod fixtures;

/// A compact JWT cut in the two parts a signature check needs.
pub struct SplitToken<'a> {
    /// `base64url(header) "." base64url(payload)`: the bytes that were signed.
    pub signing_input: &'a [u8],
    /// The decoded signature (256 bytes for RS256 with a 2048-bit key, 64 bytes `r||s` for ES256).
    pub signature: Vec<u8>,
}

/// Splits a compact JWT at its last dot and decodes the signature; `None` when malformed.
pub fn split_token(token: &str) -> Option<SplitToken<'_>> {
    let (signing_input, signature) = token.rsplit_once('.')?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    Some(SplitToken {
        signing_input: signing_input.as_bytes(),
        signature,
    })
}

/// Returns the same token with one bit of its signature flipped (the negative sanity check).
pub fn tampered(token: &SplitToken<'_>) -> Vec<u8> {
    let mut bad = token.signature.clone();
    if let Some(last) = bad.last_mut() {
        *last ^= 1;
    }
    bad
}

/// How long the warm-up runs (lets V8 tier the hot code up to TurboFan) and how long the timed
/// part runs, per algorithm; both overridable with the first two command-line arguments (ms).
fn durations() -> (Duration, Duration) {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>().ok());
    let warm = args.next().flatten().unwrap_or(500);
    let timed = args.next().flatten().unwrap_or(2_000);
    (Duration::from_millis(warm), Duration::from_millis(timed))
}

/// The CPU time this process has used, in nanoseconds (WASI `process_cputime_id`, which node
/// answers from `getrusage`; natively `CLOCK_PROCESS_CPUTIME_ID`). Unlike wall time it does not
/// grow while other processes hold the cores.
pub fn cpu_time_ns() -> u64 {
    #[cfg(target_os = "wasi")]
    {
        #[link(wasm_import_module = "wasi_snapshot_preview1")]
        extern "C" {
            #[link_name = "clock_time_get"]
            fn wasi_clock_time_get(id: u32, precision: u64, time: *mut u64) -> u16;
        }
        /// `clockid::process_cputime_id` in WASI preview 1.
        const PROCESS_CPUTIME_ID: u32 = 2;
        let mut time = 0u64;
        // SAFETY: a WASI preview-1 import writing one u64 through a valid pointer.
        let errno = unsafe { wasi_clock_time_get(PROCESS_CPUTIME_ID, 1, &mut time) };
        if errno == 0 {
            time
        } else {
            0
        }
    }
    #[cfg(not(target_os = "wasi"))]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec through a valid pointer.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        if rc == 0 {
            u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000
                + u64::try_from(ts.tv_nsec).unwrap_or(0)
        } else {
            0
        }
    }
}

/// How many wall-clock segments the timed part is cut into (the best one is the least disturbed).
const SEGMENTS: u32 = 10;

/// Runs `verify` in batches of 4 until `budget` has passed; returns iterations and wall time.
fn run_for(
    budget: Duration,
    verify: &impl Fn(&[u8], &[u8]) -> bool,
    token: &SplitToken<'_>,
) -> (u64, Duration) {
    let start = Instant::now();
    let mut iterations = 0u64;
    loop {
        // Batches keep the clock reads (a host call under WASI) out of the measurement.
        for _ in 0..4 {
            let ok = verify(black_box(token.signing_input), black_box(&token.signature));
            if !black_box(ok) {
                std::process::exit(1);
            }
        }
        iterations += 4;
        let elapsed = start.elapsed();
        if elapsed >= budget {
            return (iterations, elapsed);
        }
    }
}

/// Checks `verify` accepts the genuine signature and rejects a tampered one, then times it and
/// prints `RESULT <alg> <candidate> <wall mean ns> <wall best-segment ns> <cpu ns> <iterations>`
/// (all per verify). Exits non-zero on a wrong answer or a clock that does not move.
pub fn bench(
    alg: &str,
    candidate: &str,
    token: &SplitToken<'_>,
    verify: impl Fn(&[u8], &[u8]) -> bool,
) {
    let bad = tampered(token);
    if !verify(token.signing_input, &token.signature) || verify(token.signing_input, &bad) {
        eprintln!("{candidate} {alg}: wrong verification result");
        std::process::exit(1);
    }
    let (warm, timed) = durations();
    run_for(warm, &verify, token);
    let cpu_start = cpu_time_ns();
    let mut iterations = 0u64;
    let mut wall = Duration::ZERO;
    let mut best = f64::INFINITY;
    for _ in 0..SEGMENTS {
        let (n, elapsed) = run_for(timed / SEGMENTS, &verify, token);
        iterations += n;
        wall += elapsed;
        best = best.min(elapsed.as_nanos() as f64 / n as f64);
    }
    let cpu = cpu_time_ns().saturating_sub(cpu_start);
    if wall.is_zero() || cpu == 0 {
        eprintln!("{candidate} {alg}: a clock did not move (wall {wall:?}, cpu {cpu} ns)");
        std::process::exit(1);
    }
    let mean = wall.as_nanos() / u128::from(iterations);
    let cpu_per = cpu / iterations;
    println!("RESULT {alg} {candidate} {mean} {best:.0} {cpu_per} {iterations}");
}

/// The RS256 fixture token split, or exit.
pub fn rs256_token() -> SplitToken<'static> {
    split_token(fixtures::RS256_TOKEN).unwrap_or_else(|| std::process::exit(2))
}

/// The ES256 fixture token split, or exit.
pub fn es256_token() -> SplitToken<'static> {
    split_token(fixtures::ES256_TOKEN).unwrap_or_else(|| std::process::exit(2))
}

/// The DER `DigestInfo` prefix for SHA-256 (RFC 8017 §9.2, note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// Whether `encoded` (the result of the RSA public operation, as many bytes as the modulus) is
/// the EMSA-PKCS1-v1_5 encoding of SHA-256(`message`) (RFC 8017 §9.2):
/// `00 01 FF..FF 00 || DigestInfo || digest`, with at least 8 bytes of `FF`.
pub fn emsa_pkcs1_sha256_matches(encoded: &[u8], message: &[u8]) -> bool {
    let digest: [u8; 32] = Sha256::digest(message).into();
    let tail_len = 1 + SHA256_DIGEST_INFO.len() + digest.len();
    let Some(padding_len) = encoded.len().checked_sub(2 + tail_len) else {
        return false;
    };
    if padding_len < 8 {
        return false;
    }
    let (head, rest) = encoded.split_at(2);
    let (padding, rest) = rest.split_at(padding_len);
    let (separator, rest) = rest.split_at(1);
    let (info, hash) = rest.split_at(SHA256_DIGEST_INFO.len());
    head == [0x00, 0x01]
        && padding.iter().all(|b| *b == 0xff)
        && separator == [0x00]
        && info == SHA256_DIGEST_INFO
        && hash == digest
}
