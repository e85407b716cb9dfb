//! JWKS documents: parsing, the remote-key fetch state machine, and verifying published example
//! tokens against whatever keys the document yields.
//!
//! Properties: every entry of `keys` is either usable or reported as skipped, never lost; a
//! fetch result is accepted by the fetcher exactly when the document parses into usable keys.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use tollgate::jwt::keys::parse_jwks_bytes;
use tollgate::jwt::settings::{CompiledProvider, JwksSource};
use tollgate::jwt::{from_json_value, verify, KeySet};
use tollgate::refresh::{Fetcher, RemoteSource};

/// RFC 7515 A.1 (HS256), A.2 (RS256), A.3 (ES256) and RFC 8037 A.4 (EdDSA) example tokens.
const TOKENS: [&str; 4] = [
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
    "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw",
    "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q",
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
];
/// Before the RFC tokens' `exp`.
const NOW: u64 = 1_300_819_000;

fn provider() -> &'static CompiledProvider {
    static PROVIDER: OnceLock<CompiledProvider> = OnceLock::new();
    PROVIDER.get_or_init(|| {
        let config = json!({"providers": [{
            "name": "p",
            "require_exp": false,
            "local_jwks": r#"{"keys":[{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]}"#
        }]});
        match from_json_value(config, "jwt") {
            Ok(settings) => settings.providers[0].clone(),
            Err(e) => panic!("fixture config refused: {e}"),
        }
    })
}

fn remote_config() -> RemoteSource {
    static REMOTE: OnceLock<RemoteSource> = OnceLock::new();
    REMOTE.get_or_init(remote_config_uncached).clone()
}

fn remote_config_uncached() -> RemoteSource {
    let config = json!({"providers": [{
        "name": "r",
        "remote_jwks": {"cluster": "idp", "uri": "https://idp.test/jwks.json"}
    }]});
    let settings = from_json_value(config, "jwt").unwrap_or_else(|e| panic!("{e}"));
    match &settings.providers[0].jwks {
        JwksSource::Remote(remote) => remote.clone(),
        JwksSource::Local(_) => panic!("fixture uses remote keys"),
    }
}

fuzz_target!(|data: &[u8]| {
    let parsed = parse_jwks_bytes(data);
    if let Ok(load) = &parsed {
        let entries = serde_json::from_slice::<Value>(data)
            .ok()
            .and_then(|v| v.get("keys").and_then(Value::as_array).map(Vec::len))
            .unwrap_or(0);
        assert_eq!(
            load.keys.keys().len() + load.skipped.len(),
            entries,
            "keys lost while parsing"
        );
        for token in TOKENS {
            let _ = verify(token, provider(), &load.keys, NOW);
        }
    }

    let mut fetcher = Fetcher::<KeySet>::new(remote_config(), 1_000);
    fetcher.on_fetch_started(1_000);
    let _report = fetcher.on_fetch_result(1_050, Ok(data));
    let usable = matches!(&parsed, Ok(load) if !load.keys.is_empty());
    assert_eq!(
        fetcher.keys().is_some(),
        usable,
        "fetcher acceptance disagrees with the parser"
    );
});
