//! The plugin configuration parser: arbitrary bytes (mostly JSON from the seeds) must give a
//! config or a clean error naming where it failed, never a panic.
//!
//! Properties: an error has a non-empty message; parsing is deterministic; a document that parses
//! still parses after a JSON round trip (serde_json re-encoding).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::config::FilterConfig;

fuzz_target!(|data: &[u8]| {
    match FilterConfig::parse(data) {
        Ok(_) => {
            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
                let reencoded = value.to_string();
                assert!(
                    FilterConfig::parse(reencoded.as_bytes()).is_ok(),
                    "accepted, but refused after re-encoding: {reencoded}"
                );
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty(), "empty error message");
            let again = FilterConfig::parse(data).err().map(|e| e.to_string());
            assert_eq!(again, Some(e.to_string()), "not deterministic");
        }
    }
});
