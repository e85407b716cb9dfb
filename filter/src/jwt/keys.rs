//! JSON Web Key Sets (RFC 7517): parsing a JWKS document into verification keys, and the
//! algorithm rules that bind each key to the algorithms of its key type.
//!
//! Rules (stricter than Envoy's `jwt_authn`):
//! * the algorithm comes from the key, never from the token: an RSA key verifies only
//!   RS256/384/512 and PS256/384/512, an EC P-256 key only ES256, P-384 only ES384, an Ed25519
//!   key only EdDSA, an `oct` key only HS256/384/512. A JWK `alg` restricts the key to that one
//!   algorithm, and must belong to the key type's family;
//! * RSA moduli must be 2048..=4096 bits with exponent 65537; `oct` secrets at least 32 bytes;
//! * keys with `use` other than `sig`, `key_ops` without `verify`, or private members
//!   (`d`, `p`, `q`, …) are refused;
//! * EC P-521 (ES512) is not supported and is refused.
//!
//! Keys are prepared for verification here, once per JWKS load (crate `tollgate-jwt-crypto`): RSA Montgomery
//! parameters, EC window tables, Ed25519 points, HMAC pads.
//!
//! A refused key is reported (`SkippedKey`) with the reason; the other keys stay usable.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::sync::Arc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub(crate) use tollgate_jwt_crypto::Verifier;
use tollgate_jwt_crypto::{
    EcPublicKey, Ed25519PublicKey, HashAlg, HmacKey, RsaPublicKey, P256, P384,
};

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_MODULUS_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (the verifier's limit).
pub const MAX_RSA_MODULUS_BITS: usize = 4096;
/// Smallest HMAC secret accepted, in bytes.
pub const MIN_HMAC_SECRET_BYTES: usize = 32;
/// Largest JWKS document accepted, in bytes.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Largest number of keys read from one JWKS; further keys are skipped and reported.
pub const MAX_JWKS_KEYS: usize = 64;

/// A JWS signature algorithm this module can verify (RFC 7518 names; `EdDSA` per RFC 8037).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC with SHA-256.
    Hs256,
    /// HMAC with SHA-384.
    Hs384,
    /// HMAC with SHA-512.
    Hs512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// Ed25519 (`EdDSA`).
    EdDsa,
}

/// The algorithms an RSA key may verify when its JWK has no `alg`.
const RSA_FAMILY: [Algorithm; 6] = [
    Algorithm::Rs256,
    Algorithm::Rs384,
    Algorithm::Rs512,
    Algorithm::Ps256,
    Algorithm::Ps384,
    Algorithm::Ps512,
];
/// The algorithms an `oct` key may verify when its JWK has no `alg`.
const HMAC_FAMILY: [Algorithm; 3] = [Algorithm::Hs256, Algorithm::Hs384, Algorithm::Hs512];

impl Algorithm {
    /// Parses a JOSE `alg` name (case-sensitive). `none` and unknown names give `None`.
    /// `Ed25519` (RFC 9864) is accepted as a name for `EdDSA`.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Some(match name {
            "HS256" => Algorithm::Hs256,
            "HS384" => Algorithm::Hs384,
            "HS512" => Algorithm::Hs512,
            "RS256" => Algorithm::Rs256,
            "RS384" => Algorithm::Rs384,
            "RS512" => Algorithm::Rs512,
            "PS256" => Algorithm::Ps256,
            "PS384" => Algorithm::Ps384,
            "PS512" => Algorithm::Ps512,
            "ES256" => Algorithm::Es256,
            "ES384" => Algorithm::Es384,
            "EdDSA" | "Ed25519" => Algorithm::EdDsa,
            _ => return None,
        })
    }

    /// The JOSE name of the algorithm, e.g. `RS256`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Hs256 => "HS256",
            Algorithm::Hs384 => "HS384",
            Algorithm::Hs512 => "HS512",
            Algorithm::Rs256 => "RS256",
            Algorithm::Rs384 => "RS384",
            Algorithm::Rs512 => "RS512",
            Algorithm::Ps256 => "PS256",
            Algorithm::Ps384 => "PS384",
            Algorithm::Ps512 => "PS512",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::EdDsa => "EdDSA",
        }
    }
}

/// The key type (`kty`) of a loaded key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// `RSA`.
    Rsa,
    /// `EC` (P-256 or P-384).
    Ec,
    /// `OKP` (Ed25519).
    Okp,
    /// `oct` (HMAC secret).
    Oct,
}

/// One usable verification key: its `kid`, type, and one verifier per allowed algorithm.
pub struct VerificationKey {
    kid: Option<String>,
    key_type: KeyType,
    verifiers: Vec<(Algorithm, Verifier)>,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("key_type", &self.key_type)
            .field("algorithms", &self.algorithms())
            .finish()
    }
}

impl VerificationKey {
    /// The key's `kid`, if the JWK had one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The algorithms this key may verify.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        self.verifiers.iter().map(|(a, _)| *a).collect()
    }

    /// Whether `signature` (decoded) over `signing_input` verifies with this key for `alg`;
    /// false when the key does not allow `alg`. The differential fuzz target drives the verifiers
    /// through this.
    pub fn verify_signature(&self, alg: Algorithm, signing_input: &[u8], signature: &[u8]) -> bool {
        self.verifier(alg)
            .is_some_and(|v| v.verify(signing_input, signature))
    }

    /// The verifier for `alg`, if this key allows it.
    pub(crate) fn verifier(&self, alg: Algorithm) -> Option<&Verifier> {
        self.verifiers
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, v)| v)
    }
}

/// A parsed key set: the usable keys and a fingerprint of the document they came from
/// (the verified-token cache uses it so a key rotation invalidates cached results).
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
    fingerprint: u64,
}

impl KeySet {
    /// The usable keys, in document order.
    pub fn keys(&self) -> &[VerificationKey] {
        &self.keys
    }

    /// True when there is no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// A 64-bit fingerprint (SHA-256 prefix) of the JWKS document this set was read from.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

/// A key of the document that was refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// Position of the key in the `keys` array.
    pub index: usize,
    /// The key's `kid`, if it had a string one.
    pub kid: Option<String>,
    /// Why it was refused.
    pub reason: String,
}

/// The result of reading a JWKS document: the usable keys and the refused ones.
#[derive(Debug)]
pub struct JwksLoad {
    /// The usable keys.
    pub keys: KeySet,
    /// The refused keys, with reasons.
    pub skipped: Vec<SkippedKey>,
}

/// Why a whole JWKS document was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksError {
    /// Larger than `MAX_JWKS_BYTES`.
    TooLarge,
    /// Not valid JSON.
    InvalidJson,
    /// Not an object with a `keys` array.
    NoKeysArray,
}

impl std::fmt::Display for JwksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JwksError::TooLarge => "the JWKS document is too large",
            JwksError::InvalidJson => "the JWKS document is not valid JSON",
            JwksError::NoKeysArray => "the JWKS document has no [keys] array",
        })
    }
}

impl std::error::Error for JwksError {}

/// Parses a JWKS document given as bytes (e.g. an HTTP body).
pub fn parse_jwks_bytes(body: &[u8]) -> Result<JwksLoad, JwksError> {
    if body.len() > MAX_JWKS_BYTES {
        return Err(JwksError::TooLarge);
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| JwksError::InvalidJson)?;
    parse_jwks_value(&value, fingerprint_of(body))
}

/// Parses a JWKS document given as a JSON string.
pub fn parse_jwks(json: &str) -> Result<JwksLoad, JwksError> {
    parse_jwks_bytes(json.as_bytes())
}

/// Parses an already-decoded JWKS JSON value. `fingerprint` identifies the document.
pub fn parse_jwks_value(value: &Value, fingerprint: u64) -> Result<JwksLoad, JwksError> {
    let keys = value
        .as_object()
        .and_then(|o| o.get("keys"))
        .and_then(Value::as_array)
        .ok_or(JwksError::NoKeysArray)?;
    let mut usable = Vec::new();
    let mut skipped = Vec::new();
    for (index, jwk) in keys.iter().enumerate() {
        let kid = jwk
            .get("kid")
            .and_then(Value::as_str)
            .map(|s| s.chars().take(128).collect::<String>());
        if index >= MAX_JWKS_KEYS {
            skipped.push(SkippedKey {
                index,
                kid,
                reason: format!("more than {MAX_JWKS_KEYS} keys in the key set"),
            });
            continue;
        }
        match parse_jwk(jwk) {
            Ok(key) => usable.push(key),
            Err(reason) => skipped.push(SkippedKey { index, kid, reason }),
        }
    }
    Ok(JwksLoad {
        keys: KeySet {
            keys: usable,
            fingerprint,
        },
        skipped,
    })
}

/// A 64-bit SHA-256-prefix fingerprint of `bytes`.
pub fn fingerprint_of(bytes: &[u8]) -> u64 {
    let digest = Sha256::digest(bytes);
    let mut first = [0u8; 8];
    for (dst, src) in first.iter_mut().zip(digest.iter()) {
        *dst = *src;
    }
    u64::from_be_bytes(first)
}

/// Members that only a private key has; their presence refuses the key.
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

/// Parses one JWK into a verification key, or says why it is refused.
pub fn parse_jwk(jwk: &Value) -> Result<VerificationKey, String> {
    let obj = jwk.as_object().ok_or("the key is not a JSON object")?;
    let kid = match obj.get("kid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("[kid] is not a string".into()),
    };
    let kty = str_member(obj, "kty")?.ok_or("[kty] is missing")?;
    match obj.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(_) => return Err("[use] is not \"sig\"".into()),
    }
    if let Some(ops) = obj.get("key_ops") {
        let allows_verify = ops
            .as_array()
            .is_some_and(|a| a.iter().any(|op| op.as_str() == Some("verify")));
        if !allows_verify {
            return Err("[key_ops] does not include \"verify\"".into());
        }
    }
    let alg = match str_member(obj, "alg")? {
        None => None,
        Some(name) => Some(
            Algorithm::from_name(name)
                .ok_or_else(|| format!("[alg] {} is not supported", printable(name)))?,
        ),
    };
    if kty != "oct" {
        if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
            return Err(format!(
                "the key contains private key material [{member}]; publish only public keys"
            ));
        }
    }
    let (key_type, verifiers) = match kty {
        "RSA" => (KeyType::Rsa, rsa_verifiers(obj, alg)?),
        "EC" => (KeyType::Ec, ec_verifiers(obj, alg)?),
        "OKP" => (KeyType::Okp, okp_verifiers(obj, alg)?),
        "oct" => (KeyType::Oct, oct_verifiers(obj, alg)?),
        other => return Err(format!("[kty] {} is not supported", printable(other))),
    };
    Ok(VerificationKey {
        kid,
        key_type,
        verifiers,
    })
}

/// Reads an optional string member; a non-string value is an error.
fn str_member<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(format!("[{name}] is not a string")),
    }
}

/// Decodes a required base64url (unpadded) member.
fn b64_member(obj: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let text = str_member(obj, name)?.ok_or_else(|| format!("[{name}] is missing"))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| format!("[{name}] is not valid unpadded base64url"))
}

/// Shortens and cleans a value for an error message.
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect()
}

/// Number of significant bits of a big-endian unsigned integer.
fn bit_length(n: &[u8]) -> usize {
    let mut iter = n.iter().skip_while(|b| **b == 0);
    match iter.next() {
        None => 0,
        Some(top) => {
            let rest = iter.count();
            rest * 8 + (8 - top.leading_zeros() as usize)
        }
    }
}

fn rsa_verifiers(
    obj: &Map<String, Value>,
    alg: Option<Algorithm>,
) -> Result<Vec<(Algorithm, Verifier)>, String> {
    let algs: Vec<Algorithm> = match alg {
        Some(a) if RSA_FAMILY.contains(&a) => vec![a],
        Some(a) => return Err(format!("[alg] {} is not an RSA algorithm", a.name())),
        None => RSA_FAMILY.to_vec(),
    };
    let n = b64_member(obj, "n")?;
    let e = b64_member(obj, "e")?;
    let bits = bit_length(&n);
    if bits < MIN_RSA_MODULUS_BITS {
        return Err(format!(
            "RSA modulus is {bits} bits; at least {MIN_RSA_MODULUS_BITS} bits are required"
        ));
    }
    if bits > MAX_RSA_MODULUS_BITS {
        return Err(format!(
            "RSA modulus is {bits} bits; at most {MAX_RSA_MODULUS_BITS} bits are supported"
        ));
    }
    let e_trimmed: Vec<u8> = e.iter().copied().skip_while(|b| *b == 0).collect();
    if e_trimmed != [1, 0, 1] {
        return Err("RSA exponent must be 65537".into());
    }
    let key = Arc::new(
        RsaPublicKey::new(&n, &e)
            .map_err(|reason| format!("the key was refused by the verifier: {reason}"))?,
    );
    Ok(algs
        .into_iter()
        .filter_map(|a| {
            let v = match a {
                Algorithm::Rs256 => Verifier::RsaPkcs1(key.clone(), HashAlg::Sha256),
                Algorithm::Rs384 => Verifier::RsaPkcs1(key.clone(), HashAlg::Sha384),
                Algorithm::Rs512 => Verifier::RsaPkcs1(key.clone(), HashAlg::Sha512),
                Algorithm::Ps256 => Verifier::RsaPss(key.clone(), HashAlg::Sha256),
                Algorithm::Ps384 => Verifier::RsaPss(key.clone(), HashAlg::Sha384),
                Algorithm::Ps512 => Verifier::RsaPss(key.clone(), HashAlg::Sha512),
                _ => return None,
            };
            Some((a, v))
        })
        .collect())
}

fn ec_verifiers(
    obj: &Map<String, Value>,
    alg: Option<Algorithm>,
) -> Result<Vec<(Algorithm, Verifier)>, String> {
    let crv = str_member(obj, "crv")?.ok_or("[crv] is missing")?;
    let (curve_alg, coordinate_len) = match crv {
        "P-256" => (Algorithm::Es256, 32),
        "P-384" => (Algorithm::Es384, 48),
        "P-521" => return Err("EC curve P-521 (ES512) is not supported".into()),
        other => return Err(format!("EC curve {} is not supported", printable(other))),
    };
    if let Some(a) = alg {
        if a != curve_alg {
            return Err(format!(
                "[alg] {} does not match curve {crv} (expected {})",
                a.name(),
                curve_alg.name()
            ));
        }
    }
    let x = b64_member(obj, "x")?;
    let y = b64_member(obj, "y")?;
    if x.len() != coordinate_len || y.len() != coordinate_len {
        return Err(format!(
            "EC coordinates for {crv} must be {coordinate_len} bytes each"
        ));
    }
    let off_curve = || format!("the key was refused by the verifier: not a point on {crv}");
    let v = match curve_alg {
        Algorithm::Es256 => Verifier::Es256(Box::new(
            EcPublicKey::<P256, 8>::from_coordinates(&x, &y).ok_or_else(off_curve)?,
        )),
        _ => Verifier::Es384(Box::new(
            EcPublicKey::<P384, 12>::from_coordinates(&x, &y).ok_or_else(off_curve)?,
        )),
    };
    Ok(vec![(curve_alg, v)])
}

fn okp_verifiers(
    obj: &Map<String, Value>,
    alg: Option<Algorithm>,
) -> Result<Vec<(Algorithm, Verifier)>, String> {
    let crv = str_member(obj, "crv")?.ok_or("[crv] is missing")?;
    if crv != "Ed25519" {
        return Err(format!("OKP curve {} is not supported", printable(crv)));
    }
    if let Some(a) = alg {
        if a != Algorithm::EdDsa {
            return Err(format!("[alg] {} is not EdDSA for an OKP key", a.name()));
        }
    }
    let x = b64_member(obj, "x")?;
    if x.len() != 32 {
        return Err("Ed25519 [x] must be 32 bytes".into());
    }
    let v = Verifier::EdDsa(
        Ed25519PublicKey::from_slice(&x)
            .map_err(|e| format!("the key was refused by the verifier: {e}"))?,
    );
    Ok(vec![(Algorithm::EdDsa, v)])
}

fn oct_verifiers(
    obj: &Map<String, Value>,
    alg: Option<Algorithm>,
) -> Result<Vec<(Algorithm, Verifier)>, String> {
    let algs: Vec<Algorithm> = match alg {
        Some(a) if HMAC_FAMILY.contains(&a) => vec![a],
        Some(a) => return Err(format!("[alg] {} is not an HMAC algorithm", a.name())),
        None => HMAC_FAMILY.to_vec(),
    };
    let k = b64_member(obj, "k")?;
    if k.len() < MIN_HMAC_SECRET_BYTES {
        return Err(format!(
            "HMAC secret is {} bytes; at least {MIN_HMAC_SECRET_BYTES} bytes are required",
            k.len()
        ));
    }
    Ok(algs
        .into_iter()
        .filter_map(|a| {
            let hash = match a {
                Algorithm::Hs256 => HashAlg::Sha256,
                Algorithm::Hs384 => HashAlg::Sha384,
                Algorithm::Hs512 => HashAlg::Sha512,
                _ => return None,
            };
            Some((a, Verifier::Hmac(Box::new(HmacKey::new(hash, &k)?))))
        })
        .collect())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
#[path = "keys_tests.rs"]
mod tests;
