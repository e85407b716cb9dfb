//! JWT authentication (pure logic): configuration, JWKS keys, token extraction, verification,
//! the verified-token cache, the remote-JWKS fetch state machine, and `authenticate`, which
//! turns one request into an allow/deny/wait decision plus the request edits to apply.
//!
//! The behaviour bar is Envoy's `jwt_authn`, stricter where noted in each submodule:
//! unmatched paths are refused by default, `exp` is required by default, algorithms come from
//! the keys, weak keys are refused, several tokens in one request are refused, and `iat` in
//! the future is refused.

pub mod cache;
pub mod errors;
pub mod extract;
pub mod fetcher;
pub mod keys;
pub mod raw;
pub mod rules;
pub mod settings;
pub mod verify;

#[cfg(test)]
mod tests;

pub use cache::VerifiedTokenCache;
pub use errors::{AuthFailureReply, JwtError};
pub use extract::{HeaderFn, HeaderLookup, RequestEdit};
pub use keys::KeySet;
pub use raw::RawJwtSettings;
pub use rules::{BypassReason, Requirement};
pub use settings::{compile, from_json_value, CompiledProvider, JwtSettings};
pub use verify::{verify, VerifiedToken};

use crate::refresh::Availability;
use extract::{extract_token, strip_token_edits, ExtractedToken};
use rules::{is_cors_preflight, route, RouteDecision};

/// True when `token` has a JWS compact shape: three `.`-separated base64url segments, the first
/// two non-empty. Cheap, and checked before any key lookup.
pub fn is_jwt_shaped(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let b64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    !h.is_empty() && !p.is_empty() && b64url(h) && b64url(p) && b64url(sig)
}

/// HTTP status for an ambiguous request path.
pub const STATUS_BAD_REQUEST: u16 = 400;

/// The request as `authenticate` needs it.
pub struct RequestInfo<'a, H: HeaderLookup + ?Sized> {
    /// `:method`.
    pub method: &'a str,
    /// `:path` (with query).
    pub path: &'a str,
    /// Request headers.
    pub headers: &'a H,
}

/// A refused request: the reply to send and what caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// HTTP status.
    pub status: u16,
    /// `WWW-Authenticate` value, when the refusal is about the token.
    pub www_authenticate: Option<String>,
    /// Short plain-text body.
    pub body: String,
    /// Stable reason for logs/metrics (`JwtError::reason`, `unmatched_path`, `ambiguous_path`).
    pub reason: &'static str,
    /// The token error, when the refusal is about the token.
    pub error: Option<JwtError>,
    /// The provider whose key set lacked the token's `kid`: the host should call
    /// `Fetcher<KeySet>::on_unknown_kid` for it (and may retry the request after the refetch).
    pub unknown_kid_provider: Option<usize>,
}

impl Denial {
    fn from_error(error: JwtError, realm: &str, provider: Option<usize>) -> Self {
        let reply = error.reply(realm);
        Denial {
            status: reply.status,
            www_authenticate: Some(reply.www_authenticate),
            body: reply.body,
            reason: error.reason(),
            unknown_kid_provider: if error == JwtError::UnknownKid {
                provider
            } else {
                None
            },
            error: Some(error),
        }
    }
}

/// The decision for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthOutcome {
    /// Let the request through after applying `edits` in order.
    Allow {
        /// The verified token, if one was required or presented.
        identity: Option<VerifiedToken>,
        /// Header/path edits: spoofed claim headers removed first, then claim headers set,
        /// then the token stripped (`forward: false`).
        edits: Vec<RequestEdit>,
        /// Why no token was needed, when none was.
        bypass: Option<BypassReason>,
        /// True when the identity came from the cache.
        cache_hit: bool,
    },
    /// Refuse the request.
    Deny(Denial),
    /// The provider's keys are still being fetched for the first time: hold the request and
    /// call `authenticate` again when the fetch completes, or at `until_ms` at the latest.
    Wait {
        /// The provider whose keys are pending.
        provider: usize,
        /// Hold at most until this time (ms).
        until_ms: u64,
    },
}

/// Decides one request. `keys(i)` gives provider `i`'s key availability (`Ready` always for
/// local keys: see `local_keys`); `now_unix` is seconds since the epoch.
pub fn authenticate<H, K>(
    settings: &JwtSettings,
    request: &RequestInfo<'_, H>,
    keys: K,
    cache: &mut VerifiedTokenCache,
    now_unix: u64,
) -> AuthOutcome
where
    H: HeaderLookup + ?Sized,
    K: Fn(usize) -> Availability<KeySet>,
{
    let mut edits: Vec<RequestEdit> = settings
        .headers_to_remove()
        .into_iter()
        .map(RequestEdit::RemoveHeader)
        .collect();
    let preflight = settings.bypass_cors_preflight
        && is_cors_preflight(
            request.method,
            request.headers.first("origin").as_deref(),
            request
                .headers
                .first("access-control-request-method")
                .as_deref(),
        );
    let decision = route(
        &settings.rules,
        &settings.bypass,
        settings.allow_unmatched,
        preflight,
        request.path,
    );
    let rule = match decision {
        RouteDecision::Bypass(reason) => {
            return AuthOutcome::Allow {
                identity: None,
                edits,
                bypass: Some(reason),
                cache_hit: false,
            }
        }
        RouteDecision::RejectUnmatched => {
            return AuthOutcome::Deny(Denial {
                status: errors::STATUS_FORBIDDEN,
                www_authenticate: None,
                body: "Forbidden: no access rule matches this path\n".into(),
                reason: "unmatched_path",
                error: None,
                unknown_kid_provider: None,
            })
        }
        RouteDecision::RejectAmbiguousPath => {
            return AuthOutcome::Deny(Denial {
                status: STATUS_BAD_REQUEST,
                www_authenticate: None,
                body: "Bad Request: ambiguous path\n".into(),
                reason: "ambiguous_path",
                error: None,
                unknown_kid_provider: None,
            })
        }
        RouteDecision::Require { rule, .. } => rule,
    };
    let (providers, optional): (Vec<usize>, bool) = match &rule.requires {
        Requirement::None => (Vec::new(), true),
        Requirement::Provider(p) => (vec![*p], false),
        Requirement::Optional(p) => (vec![*p], true),
        Requirement::Any(ps) => (ps.clone(), false),
    };
    let realm = settings.realm.as_str();
    // Extract each provider's token; refuse distinct tokens across providers.
    let mut found: Vec<(usize, ExtractedToken)> = Vec::new();
    for &p in &providers {
        let Some(provider) = settings.providers.get(p) else {
            continue;
        };
        match extract_token(&provider.token_locations, request.headers, request.path) {
            Ok(Some(t)) => {
                if found.iter().any(|(_, other)| other.token != t.token) {
                    return AuthOutcome::Deny(Denial::from_error(
                        JwtError::MultipleTokens,
                        realm,
                        None,
                    ));
                }
                found.push((p, t));
            }
            Ok(None) => {}
            Err(e) => return AuthOutcome::Deny(Denial::from_error(e, realm, Some(p))),
        }
    }
    if found.is_empty() {
        if optional {
            return AuthOutcome::Allow {
                identity: None,
                edits,
                bypass: None,
                cache_hit: false,
            };
        }
        return AuthOutcome::Deny(Denial::from_error(JwtError::Missing, realm, None));
    }
    let mut first_error: Option<(JwtError, usize)> = None;
    for (p, extracted) in &found {
        let Some(provider) = settings.providers.get(*p) else {
            continue;
        };
        // A value that cannot be a JWT is refused before it can make us wait for (or fetch) keys.
        if !is_jwt_shaped(&extracted.token) {
            first_error.get_or_insert((JwtError::Malformed, *p));
            continue;
        }
        let key_set = match keys(*p) {
            Availability::Ready(k) => k,
            Availability::Pending { wait_until_ms } => {
                return AuthOutcome::Wait {
                    provider: *p,
                    until_ms: wait_until_ms,
                }
            }
            Availability::Unavailable => {
                first_error.get_or_insert((JwtError::NoKeysYet, *p));
                continue;
            }
        };
        let (verified, cache_hit) =
            match verify_with_cache(*p, provider, &extracted.token, &key_set, cache, now_unix) {
                Ok(v) => v,
                Err(e) => {
                    first_error.get_or_insert((e, *p));
                    continue;
                }
            };
        if let Err(e) = verified.check_scopes(&rule.required_scopes) {
            return AuthOutcome::Deny(Denial::from_error(e, realm, Some(*p)));
        }
        for (h, v) in verified.claim_headers() {
            edits.push(RequestEdit::SetHeader(h, v));
        }
        if !provider.forward {
            let cookies = request.headers.values("cookie");
            edits.extend(strip_token_edits(&extracted.source, request.path, &cookies));
        }
        return AuthOutcome::Allow {
            identity: Some(verified),
            edits,
            bypass: None,
            cache_hit,
        };
    }
    let (error, p) = first_error.unwrap_or((JwtError::BadSignature, 0));
    AuthOutcome::Deny(Denial::from_error(error, realm, Some(p)))
}

/// Verifies through the cache: a hit skips verification; a successful verification is stored.
pub fn verify_with_cache(
    provider_index: usize,
    provider: &CompiledProvider,
    token: &str,
    keys: &KeySet,
    cache: &mut VerifiedTokenCache,
    now_unix: u64,
) -> Result<(VerifiedToken, bool), JwtError> {
    if token.len() > provider.max_token_bytes {
        return Err(JwtError::TooLarge);
    }
    if let Some(hit) = cache.lookup(provider_index, keys.fingerprint(), token, now_unix) {
        return Ok((hit, true));
    }
    let verified = verify(token, provider, keys, now_unix)?;
    // With the cache off (`cache_size: 0`) the verified token is not copied for it.
    if cache.is_enabled() {
        cache.insert(
            provider_index,
            keys.fingerprint(),
            token,
            verified.clone(),
            now_unix,
        );
    }
    Ok((verified, false))
}

/// Key availability of a provider with local keys (`None` for a remote provider).
pub fn local_keys(provider: &CompiledProvider) -> Option<Availability<KeySet>> {
    match &provider.jwks {
        settings::JwksSource::Local(k) => Some(Availability::Ready(std::sync::Arc::clone(k))),
        settings::JwksSource::Remote(_) => None,
    }
}
