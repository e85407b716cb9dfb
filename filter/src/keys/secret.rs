//! The shape of a virtual API key and what may be done with one: generate it, hash it, show it
//! in a log. A key never leaves this module whole except to the caller who asked for a new one.
//!
//! A key is `tg-` followed by 32 random bytes in unpadded base64url (43 characters): 46
//! characters, 256 bits of entropy, and only characters that every SDK, header and shell accepts
//! unquoted. The configuration holds the SHA-256 of the whole key (prefix included) as 64
//! lowercase hex digits. A fast hash is right here: the key is random with 256 bits, so there
//! is nothing to guess that a slow password hash would protect.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Every virtual key starts with this.
pub const PREFIX: &str = "tg-";
/// Random bytes in a key.
pub const SECRET_BYTES: usize = 32;
/// Length of the base64url body of a key (32 bytes, unpadded).
pub const BODY_CHARS: usize = 43;
/// Length of a whole key.
pub const KEY_CHARS: usize = PREFIX.len() + BODY_CHARS;

/// The SHA-256 of a key: what the configuration holds and what a request is looked up by.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyDigest(pub [u8; 32]);

impl std::fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyDigest({})", self.to_hex())
    }
}

impl KeyDigest {
    /// The digest of `key` (the whole presented value, prefix included).
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (dst, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let hi = hex_value(*pair.first()?)?;
            let lo = hex_value(*pair.get(1)?)?;
            *dst = (hi << 4) | lo;
        }
        Some(Self(out))
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        let mut out = String::with_capacity(64);
        for b in self.0 {
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b & 15));
        }
        out
    }

    /// The first eight bytes: the lookup bucket. Equality of buckets says nothing useful about a
    /// key (finding a key from its digest's prefix is a SHA-256 preimage problem), so buckets are
    /// compared the fast way and the whole digest in constant time.
    pub fn bucket(&self) -> u64 {
        let mut first = [0u8; 8];
        for (dst, src) in first.iter_mut().zip(self.0.iter()) {
            *dst = *src;
        }
        u64::from_be_bytes(first)
    }

    /// Constant-time equality of the whole digest.
    pub fn ct_eq(&self, other: &KeyDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16).unwrap_or('0')
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// A new key from 32 random bytes (the caller supplies them from a secure source).
pub fn encode(random: &[u8; SECRET_BYTES]) -> String {
    let mut key = String::with_capacity(KEY_CHARS);
    key.push_str(PREFIX);
    key.push_str(&URL_SAFE_NO_PAD.encode(random));
    key
}

/// True when `value` is presented as a tollgate key: it starts with `tg-`. Whether it is
/// well-formed and known is decided later; a value without the prefix is not tollgate's (it may be
/// a provider key the client passes through) and is left alone.
pub fn is_presented(value: &str) -> bool {
    value.starts_with(PREFIX)
}

/// True when `key` has the exact shape `encode` produces. Checked before hashing, so malformed
/// values cost no hash; a one-character change inside the alphabet passes here and fails the
/// lookup.
pub fn is_well_formed(key: &str) -> bool {
    key.len() == KEY_CHARS
        && key.strip_prefix(PREFIX).is_some_and(|body| {
            body.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// How a key may appear in a log line: `tg-…` and at most its last four characters (only for a
/// well-formed key: a short value would be given away).
pub fn redact(key: &str) -> String {
    if !is_well_formed(key) {
        return format!("{PREFIX}…");
    }
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{PREFIX}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape() {
        let key = encode(&[7u8; 32]);
        assert_eq!(key.len(), KEY_CHARS);
        assert!(key.starts_with("tg-"));
        assert!(is_well_formed(&key));
        assert!(is_presented(&key));
        assert!(!is_well_formed(&key[..45]));
        assert!(!is_well_formed(&format!("{key}A")));
        assert!(!is_well_formed(&key.replace("tg-", "tx-")));
        let mut bad = key.clone();
        bad.replace_range(10..11, "+");
        assert!(!is_well_formed(&bad));
        assert!(!is_presented("sk-proj-abc"));
    }

    #[test]
    fn digest_round_trips_through_hex_and_matches_sha256() {
        // sha256("tg-") computed independently (printf 'tg-' | sha256sum).
        let d = KeyDigest::of("tg-");
        assert_eq!(
            d.to_hex(),
            "8f0233790ead2fde20a72559d6576d0c147c2fd25a566f603e60c2abb75c95ac"
        );
        assert_eq!(KeyDigest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(KeyDigest::from_hex(&d.to_hex().to_uppercase()), Some(d));
        assert_eq!(KeyDigest::from_hex("abc"), None);
        assert_eq!(KeyDigest::from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn constant_time_equality_sees_every_byte() {
        let a = KeyDigest::of(&encode(&[1u8; 32]));
        for i in 0..32 {
            let mut b = a;
            b.0[i] ^= 1;
            assert!(!a.ct_eq(&b), "byte {i}");
        }
        assert!(a.ct_eq(&a.clone()));
    }

    #[test]
    fn logs_show_at_most_the_last_four_characters() {
        let key = encode(&[9u8; 32]);
        let shown = redact(&key);
        assert_eq!(shown, format!("tg-…{}", &key[key.len() - 4..]));
        assert!(!shown.contains(&key[3..10]));
        assert_eq!(redact("tg-short"), "tg-…");
    }
}
