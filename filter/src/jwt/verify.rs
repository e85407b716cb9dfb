//! Token verification: structure, header, key selection, signature and claims, against one
//! provider and its key set, at a given time.
//!
//! Order: size (before any decoding) → three non-empty base64url segments → header JSON
//! (`alg` known and not `none`, no `crit`, string `kid`) → payload JSON object with well-typed
//! registered claims → signature base64url → key selection by `kid` and by the key's own
//! algorithms → signature (`super::crypto`, over the keys prepared at JWKS load) →
//! `exp`/`nbf`/`iat`/`iss`/`aud`/lifetime → scopes and claim headers. Every time check is done
//! against the `now_unix` passed in; `typ` is not checked (as Envoy).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::errors::JwtError;
use super::keys::{Algorithm, KeySet, Verifier};
use super::settings::{ClaimHeader, CompiledProvider};

/// At most this many candidate keys are tried for one token (bounds CPU for tokens without
/// `kid` against large key sets).
pub const MAX_KEYS_TRIED: usize = 4;
/// Longest claim value copied into a header, bytes.
pub const MAX_CLAIM_HEADER_VALUE_BYTES: usize = 1024;

/// A token that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    /// Name of the provider that verified it.
    pub provider: String,
    /// `sub`, if present.
    pub subject: Option<String>,
    /// `iss`, if present.
    pub issuer: Option<String>,
    /// The whole payload.
    pub claims: Map<String, Value>,
    /// Scopes from the provider's scope claim.
    pub scopes: Vec<String>,
    /// `exp`, if present.
    pub exp: Option<u64>,
    /// Headers computed from `claims_to_headers`.
    claim_headers: Vec<(String, String)>,
}

impl VerifiedToken {
    /// The `(header, value)` pairs from the provider's `claims_to_headers` (claims that are
    /// missing, not string/number/bool, or unsafe as header values are left out).
    pub fn claim_headers(&self) -> Vec<(String, String)> {
        self.claim_headers.clone()
    }

    /// True when the token carries every scope of `required`.
    pub fn has_scopes(&self, required: &[String]) -> bool {
        required.iter().all(|r| self.scopes.iter().any(|s| s == r))
    }

    /// `Ok` when the token carries every scope of `required`, else `insufficient_scope`.
    pub fn check_scopes(&self, required: &[String]) -> Result<(), JwtError> {
        if self.has_scopes(required) {
            Ok(())
        } else {
            Err(JwtError::InsufficientScope {
                required: required.to_vec(),
            })
        }
    }
}

#[cfg(test)]
impl VerifiedToken {
    /// A token value for other modules' tests.
    pub(crate) fn for_tests(sub: &str, exp: Option<u64>, claims: Map<String, Value>) -> Self {
        VerifiedToken {
            provider: "test".into(),
            subject: Some(sub.into()),
            issuer: None,
            claims,
            scopes: Vec::new(),
            exp,
            claim_headers: Vec::new(),
        }
    }
}

/// The decoded but not yet verified parts of a token.
struct ParsedToken<'t> {
    alg: Algorithm,
    kid: Option<String>,
    claims: Map<String, Value>,
    /// `header.payload`, the bytes the signature covers.
    signing_input: &'t str,
    /// The decoded signature.
    signature: Vec<u8>,
}

fn is_b64url(segment: &str) -> bool {
    segment
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn decode_json_object(segment: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| JwtError::Malformed)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::Malformed),
    }
}

/// Reads a NumericDate claim: absent → None; a non-negative number → its integer part
/// (fractions dropped, as Envoy); anything else → malformed.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                Ok(Some(u))
            } else {
                match n.as_f64() {
                    Some(f) if (0.0..1.8e19).contains(&f) => Ok(Some(f as u64)),
                    _ => Err(JwtError::Malformed),
                }
            }
        }
        Some(_) => Err(JwtError::Malformed),
    }
}

fn optional_string(claims: &Map<String, Value>, name: &str) -> Result<Option<String>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(JwtError::Malformed),
    }
}

/// `aud` as a list: absent → empty; string → one; array of strings → all; else malformed.
fn audiences(claims: &Map<String, Value>) -> Result<Vec<&str>, JwtError> {
    match claims.get("aud") {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.as_str()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().ok_or(JwtError::Malformed))
            .collect(),
        Some(_) => Err(JwtError::Malformed),
    }
}

fn parse(token: &str, max_bytes: usize) -> Result<ParsedToken<'_>, JwtError> {
    if token.len() > max_bytes {
        return Err(JwtError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    if [header_b64, payload_b64, sig_b64]
        .iter()
        .any(|s| s.is_empty() || !is_b64url(s))
    {
        return Err(JwtError::Malformed);
    }
    let header = decode_json_object(header_b64)?;
    let alg_name = match header.get("alg") {
        Some(Value::String(s)) => s,
        _ => return Err(JwtError::Malformed),
    };
    let alg = Algorithm::from_name(alg_name).ok_or(JwtError::AlgNotAllowed)?;
    if header.contains_key("crit") {
        return Err(JwtError::CritHeader);
    }
    let kid = optional_string(&header, "kid")?;
    optional_string(&header, "typ")?;
    let claims = decode_json_object(payload_b64)?;
    // Type-check the registered claims now, so later reads cannot fail.
    numeric_date(&claims, "exp")?;
    numeric_date(&claims, "nbf")?;
    numeric_date(&claims, "iat")?;
    optional_string(&claims, "iss")?;
    optional_string(&claims, "sub")?;
    optional_string(&claims, "jti")?;
    audiences(&claims)?;
    let signature = URL_SAFE_NO_PAD
        .decode(sig_b64)
        .map_err(|_| JwtError::Malformed)?;
    let signing_input = token
        .get(..header_b64.len() + 1 + payload_b64.len())
        .ok_or(JwtError::Malformed)?;
    Ok(ParsedToken {
        alg,
        kid,
        claims,
        signing_input,
        signature,
    })
}

/// Checks the signature of `parsed` with one verifier.
pub(crate) fn verify_signature(verifier: &Verifier, signing_input: &str, signature: &[u8]) -> bool {
    verifier.verify(signing_input.as_bytes(), signature)
}

/// Verifies `token` for `provider` with `keys` at `now_unix` (seconds since the epoch).
pub fn verify(
    token: &str,
    provider: &CompiledProvider,
    keys: &KeySet,
    now_unix: u64,
) -> Result<VerifiedToken, JwtError> {
    let parsed = parse(token, provider.max_token_bytes)?;
    if keys.is_empty() {
        return Err(JwtError::NoKeysYet);
    }
    // Candidates: keys whose kid matches (keys without kid match any token); then only those
    // whose own algorithms include the token's alg.
    let by_kid: Vec<_> = keys
        .keys()
        .iter()
        .filter(|k| match (&parsed.kid, k.kid()) {
            (Some(tk), Some(kk)) => tk == kk,
            _ => true,
        })
        .collect();
    if by_kid.is_empty() {
        return Err(JwtError::UnknownKid);
    }
    let candidates: Vec<&Verifier> = by_kid
        .iter()
        .filter_map(|k| k.verifier(parsed.alg))
        .take(MAX_KEYS_TRIED)
        .collect();
    if candidates.is_empty() {
        return Err(JwtError::AlgNotAllowed);
    }
    if !candidates
        .iter()
        .any(|v| verify_signature(v, parsed.signing_input, &parsed.signature))
    {
        return Err(JwtError::BadSignature);
    }
    check_claims(&parsed.claims, provider, now_unix)?;
    build_verified(parsed.claims, provider)
}

/// The time, issuer, audience and lifetime checks, against `now_unix`.
fn check_claims(
    claims: &Map<String, Value>,
    provider: &CompiledProvider,
    now: u64,
) -> Result<(), JwtError> {
    let skew = provider.clock_skew_seconds;
    let exp = numeric_date(claims, "exp")?;
    let nbf = numeric_date(claims, "nbf")?;
    let iat = numeric_date(claims, "iat")?;
    match exp {
        Some(exp) if now > exp.saturating_add(skew) => return Err(JwtError::Expired),
        None if provider.require_exp || provider.max_lifetime_seconds.is_some() => {
            return Err(JwtError::MissingExp)
        }
        _ => {}
    }
    if let Some(nbf) = nbf {
        if now.saturating_add(skew) < nbf {
            return Err(JwtError::NotYetValid);
        }
    }
    if let Some(iat) = iat {
        if iat > now.saturating_add(skew) {
            return Err(JwtError::IssuedInFuture);
        }
    }
    if let Some(expected) = &provider.issuer {
        if optional_string(claims, "iss")?.as_deref() != Some(expected.as_str()) {
            return Err(JwtError::WrongIssuer);
        }
    }
    if let Some(allowed) = &provider.audiences {
        let auds = audiences(claims)?;
        if !auds.iter().any(|a| allowed.iter().any(|b| b == a)) {
            return Err(JwtError::WrongAudience);
        }
    }
    if let (Some(max), Some(exp)) = (provider.max_lifetime_seconds, exp) {
        // Remaining lifetime (Envoy's definition) and, when `iat` is present, total lifetime.
        let remaining = exp.saturating_sub(now);
        let total = iat.map(|iat| exp.saturating_sub(iat)).unwrap_or(0);
        if remaining > max || total > max {
            return Err(JwtError::LifetimeTooLong);
        }
    }
    Ok(())
}

/// Follows a dotted claim path.
fn claim_at<'a>(claims: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = claims.get(first)?;
    for segment in rest {
        value = value.as_object()?.get(segment)?;
    }
    Some(value)
}

/// A claim as a header value: strings, numbers and booleans only; refused when it contains
/// control characters or is too long.
fn header_value(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    let safe = text.len() <= MAX_CLAIM_HEADER_VALUE_BYTES
        && text.chars().all(|c| c == '\t' || !c.is_control());
    safe.then(|| text.trim().to_string())
}

fn scopes(claims: &Map<String, Value>, path: &[String]) -> Vec<String> {
    match claim_at(claims, path) {
        Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_string).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

fn claim_headers(claims: &Map<String, Value>, mappings: &[ClaimHeader]) -> Vec<(String, String)> {
    mappings
        .iter()
        .filter_map(|m| {
            let v = header_value(claim_at(claims, &m.claim_path)?)?;
            Some((m.header.clone(), v))
        })
        .collect()
}

fn build_verified(
    claims: Map<String, Value>,
    provider: &CompiledProvider,
) -> Result<VerifiedToken, JwtError> {
    Ok(VerifiedToken {
        provider: provider.name.clone(),
        subject: optional_string(&claims, "sub")?,
        issuer: optional_string(&claims, "iss")?,
        scopes: scopes(&claims, &provider.scope_claim),
        exp: numeric_date(&claims, "exp")?,
        claim_headers: claim_headers(&claims, &provider.claims_to_headers),
        claims,
    })
}
