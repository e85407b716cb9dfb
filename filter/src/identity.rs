//! Caller identity for budgets, logs and metrics: a verified JWT subject when there is one, else
//! a hash of the caller's API key (never the key itself), else the client address.

/// FNV-1a 64-bit: a stable, dependency-free hash for turning secrets into identifiers.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The identity for an API key header value: `key:<16 hex>`; a `Bearer ` prefix is ignored.
/// `None` for an empty value.
pub fn api_key_identity(value: &str) -> Option<String> {
    let v = value.trim();
    let v = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .unwrap_or(v)
        .trim();
    if v.is_empty() {
        return None;
    }
    Some(format!("key:{:016x}", fnv1a64(v.as_bytes())))
}

/// The identity for a client address such as `10.0.0.1:5555` or `[::1]:80`: `ip:<address>`.
pub fn address_identity(address: &str) -> String {
    let host = if let Some(rest) = address.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if address.matches(':').count() == 1 {
        address.split(':').next().unwrap_or(address)
    } else {
        address
    };
    format!("ip:{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_are_hashed_not_kept() {
        let id = api_key_identity("Bearer sk-test-abcdef").unwrap();
        assert!(id.starts_with("key:"));
        assert!(!id.contains("abcdef"));
        assert_eq!(Some(id), api_key_identity("sk-test-abcdef"));
        assert_eq!(api_key_identity("  "), None);
    }

    #[test]
    fn addresses_lose_their_port() {
        assert_eq!(address_identity("127.0.0.1:5555"), "ip:127.0.0.1");
        assert_eq!(address_identity("[::1]:80"), "ip:::1");
        assert_eq!(address_identity("10.1.2.3"), "ip:10.1.2.3");
    }
}
