//! Error types of the JWT module: why a token was refused (`JwtError`), how that refusal is
//! answered to the client (RFC 6750 `WWW-Authenticate` reply parts), and why a configuration was
//! refused (`ConfigError`, always carrying the JSON path of the offending field).

use std::fmt;

/// Why a request's token was refused. Each variant has a stable snake_case reason
/// (`JwtError::reason`) for logs, metrics and access-log details.
///
/// The variants never carry the token or any of its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    /// No token was found in any configured location.
    Missing,
    /// The token is not three base64url segments of a JSON header and a JSON object payload,
    /// or a header or claim has the wrong type.
    Malformed,
    /// No key verified the signature.
    BadSignature,
    /// `exp` is in the past (beyond the clock skew).
    Expired,
    /// `nbf` is in the future (beyond the clock skew).
    NotYetValid,
    /// `iat` is in the future (beyond the clock skew).
    IssuedInFuture,
    /// `iss` is missing or differs from the provider's issuer.
    WrongIssuer,
    /// `aud` is missing or names none of the provider's audiences.
    WrongAudience,
    /// No key of the key set has the token's `kid` (nor is there a key without `kid`).
    UnknownKid,
    /// The token's `alg` is `none`, unknown, or not allowed for any candidate key.
    AlgNotAllowed,
    /// The token header has a `crit` parameter; no critical extension is supported.
    CritHeader,
    /// The token is longer than the provider's `max_token_bytes`.
    TooLarge,
    /// The token's lifetime (`exp - iat`, or `exp - now`) exceeds `max_lifetime_seconds`.
    LifetimeTooLong,
    /// The token has no `exp` while the provider requires one.
    MissingExp,
    /// The token is valid but lacks a scope the matched rule requires.
    InsufficientScope {
        /// The scopes the rule requires (all of them), from configuration.
        required: Vec<String>,
    },
    /// The provider's remote key set has not been fetched yet (or every fetch so far failed).
    NoKeysYet,
    /// The request carries tokens in more than one place (or twice in one place); refused to
    /// avoid the upstream reading a different token from the one verified.
    MultipleTokens,
}

/// HTTP status for an authentication failure (RFC 6750 section 3.1).
pub const STATUS_UNAUTHORIZED: u16 = 401;
/// HTTP status for a valid token lacking a required scope (RFC 6750 section 3.1).
pub const STATUS_FORBIDDEN: u16 = 403;

/// The parts of the reply sent for a refused token: status, `WWW-Authenticate` value and a
/// short plain-text body. None of them echoes the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailureReply {
    /// HTTP status code: 401, or 403 for `insufficient_scope`.
    pub status: u16,
    /// Value of the `WWW-Authenticate` response header.
    pub www_authenticate: String,
    /// Short plain-text body describing the category of failure.
    pub body: String,
}

impl JwtError {
    /// Stable snake_case reason, e.g. `expired`, for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            JwtError::Missing => "missing",
            JwtError::Malformed => "malformed",
            JwtError::BadSignature => "bad_signature",
            JwtError::Expired => "expired",
            JwtError::NotYetValid => "not_yet_valid",
            JwtError::IssuedInFuture => "issued_in_future",
            JwtError::WrongIssuer => "wrong_issuer",
            JwtError::WrongAudience => "wrong_audience",
            JwtError::UnknownKid => "unknown_kid",
            JwtError::AlgNotAllowed => "alg_not_allowed",
            JwtError::CritHeader => "crit_header",
            JwtError::TooLarge => "too_large",
            JwtError::LifetimeTooLong => "lifetime_too_long",
            JwtError::MissingExp => "missing_exp",
            JwtError::InsufficientScope { .. } => "insufficient_scope",
            JwtError::NoKeysYet => "no_keys_yet",
            JwtError::MultipleTokens => "multiple_tokens",
        }
    }

    /// Human-readable category text used as `error_description` and reply body.
    pub fn description(&self) -> &'static str {
        match self {
            JwtError::Missing => "a bearer token is required",
            JwtError::Malformed => "the token is malformed",
            JwtError::BadSignature => "the token signature is invalid",
            JwtError::Expired => "the token has expired",
            JwtError::NotYetValid => "the token is not valid yet",
            JwtError::IssuedInFuture => "the token was issued in the future",
            JwtError::WrongIssuer => "the token issuer is not accepted",
            JwtError::WrongAudience => "the token audience is not accepted",
            JwtError::UnknownKid => "the token signing key is unknown",
            JwtError::AlgNotAllowed => "the token algorithm is not allowed",
            JwtError::CritHeader => "the token has unsupported critical header parameters",
            JwtError::TooLarge => "the token is too large",
            JwtError::LifetimeTooLong => "the token lifetime is too long",
            JwtError::MissingExp => "the token has no expiration time",
            JwtError::InsufficientScope { .. } => "the token lacks a required scope",
            JwtError::NoKeysYet => "the signing keys are not available",
            JwtError::MultipleTokens => "more than one token was presented",
        }
    }

    /// HTTP status for this error: 403 for `insufficient_scope`, 401 otherwise
    /// (RFC 6750: a wrong audience is an `invalid_token`, hence 401).
    pub fn status(&self) -> u16 {
        match self {
            JwtError::InsufficientScope { .. } => STATUS_FORBIDDEN,
            _ => STATUS_UNAUTHORIZED,
        }
    }

    /// The RFC 6750 `WWW-Authenticate` value for this error under `realm`.
    ///
    /// * missing token: `Bearer realm="r"` (no `error` attribute, RFC 6750 section 3.1);
    /// * insufficient scope: `Bearer realm="r", error="insufficient_scope",
    ///   error_description="…", scope="a b"`;
    /// * anything else: `Bearer realm="r", error="invalid_token", error_description="…"`.
    pub fn www_authenticate(&self, realm: &str) -> String {
        let realm = quoted_string_content(realm);
        match self {
            JwtError::Missing => format!("Bearer realm=\"{realm}\""),
            JwtError::InsufficientScope { required } => {
                let scope = required
                    .iter()
                    .map(|s| quoted_string_content(s))
                    .collect::<Vec<_>>()
                    .join(" ");
                format!(
                    "Bearer realm=\"{realm}\", error=\"insufficient_scope\", error_description=\"{}\", scope=\"{scope}\"",
                    self.description()
                )
            }
            _ => format!(
                "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                self.description()
            ),
        }
    }

    /// All reply parts (status, `WWW-Authenticate`, body) for this error under `realm`.
    pub fn reply(&self, realm: &str) -> AuthFailureReply {
        AuthFailureReply {
            status: self.status(),
            www_authenticate: self.www_authenticate(realm),
            body: format!(
                "{}: {}\n",
                if self.status() == STATUS_FORBIDDEN {
                    "Forbidden"
                } else {
                    "Unauthorized"
                },
                self.description()
            ),
        }
    }
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for JwtError {}

/// Makes `value` safe inside an HTTP quoted-string: drops control characters and non-ASCII,
/// and escapes `"` and `\`. Bounded to 256 characters.
fn quoted_string_content(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(256));
    for c in value.chars().take(256) {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c == ' ' || c.is_ascii_graphic() => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigError;

    #[test]
    fn missing_token_has_no_error_attribute() {
        let r = JwtError::Missing.reply("api");
        assert_eq!(r.status, 401);
        assert_eq!(r.www_authenticate, "Bearer realm=\"api\"");
    }

    #[test]
    fn invalid_token_reply() {
        let r = JwtError::Expired.reply("api");
        assert_eq!(r.status, 401);
        assert_eq!(
            r.www_authenticate,
            "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"the token has expired\""
        );
        let r = JwtError::WrongAudience.reply("api");
        assert_eq!(r.status, 401);
        assert!(r.www_authenticate.contains("invalid_token"));
    }

    #[test]
    fn insufficient_scope_is_403_with_scope() {
        let e = JwtError::InsufficientScope {
            required: vec!["chat".into(), "admin".into()],
        };
        let r = e.reply("api");
        assert_eq!(r.status, 403);
        assert!(r.body.starts_with("Forbidden"));
        assert_eq!(
            r.www_authenticate,
            "Bearer realm=\"api\", error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", scope=\"chat admin\""
        );
    }

    #[test]
    fn realm_is_escaped() {
        let v = JwtError::Missing.www_authenticate("a\"b\\c\r\nd");
        assert_eq!(v, "Bearer realm=\"a\\\"b\\\\cd\"");
    }

    #[test]
    fn config_error_display() {
        let e = ConfigError::new("jwt.providers[0].audiences", "must not be empty");
        assert_eq!(
            e.to_string(),
            "invalid tollgate config: jwt.providers[0].audiences: must not be empty"
        );
    }
}
