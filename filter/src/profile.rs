//! The production profile: with `"environment": "production"` a configuration that would run
//! insecurely is refused at load, with EVERY reason reported at once (each with its JSON path),
//! so an operator fixes them in one pass.
//!
//! The rules (also in the README):
//! * authentication is on: `jwt` or `envoy_jwt` (with `required: true`); with `jwt`, every LLM
//!   API path needs a token — no `bypass` entry and no rule without `requires` (or with
//!   `requires.optional`) may be the one deciding an LLM API path (the standard path of each
//!   API, plus any API path a rule or bypass names), and `allow_unmatched` is false;
//! * the status endpoint, when configured, needs a token like any other path;
//! * masking is on: `masking.logs` and `masking.error_bodies` true, `masking.prompts` not `off`;
//! * no secret sits in the configuration: no inline provider key (`api_key.value`), no HMAC
//!   secret (`k`) or private key member (`d`, `p`, `q`, …) in `local_jwks` (HMAC keys come
//!   from a `remote_jwks` endpoint); HMAC secrets are at least 32 bytes.
//!
//! It runs on the raw document (after serde, before the rest of validation: it imports only the
//! raw layer, [`crate::config::raw`]), never touches the host, and returns the problems instead
//! of stopping at the first.

use serde_json::Value;

use crate::config::error::ConfigError;
use crate::config::raw::RawConfig;
use crate::failover::raw::RawApiKey;
use crate::jwt::raw::RawRequires;
use crate::jwt::RawJwtSettings;
use crate::masking::PromptAction;
use crate::usage::classify_path;

use crate::config::raw::Environment;

/// Smallest HMAC secret accepted, bytes (as RFC 7518 §3.2 requires for HS256).
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

/// The standard path of each LLM API: every one must need a token in production.
pub const LLM_API_PATHS: &[&str] = &[
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/embeddings",
    "/v1/messages",
    "/v1beta/models/m:generateContent",
    "/v1beta/models/m:streamGenerateContent",
    "/v1/models/m:generateContent",
    "/api/chat",
    "/api/generate",
    "/chat/completions",
    "/embeddings",
    "/responses",
    "/messages",
];

/// JWK members that hold private key material.
const PRIVATE_JWK_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth"];

/// Every production-profile problem of `raw` (empty in development or when there is none).
pub fn check(raw: &RawConfig) -> Vec<ConfigError> {
    let mut issues = Vec::new();
    if raw.environment != Environment::Production {
        return issues;
    }
    // Only the listener stage gets here: the upstream stage's document holds nothing the profile
    // checks (see `config::compile::check_upstream_form`).
    check_authentication(raw, &mut issues);
    check_masking(raw, &mut issues);
    check_inline_secrets(raw, &mut issues);
    issues
}

/// The one-line summary listing every issue: `production profile: 3 problems: a: …; b: …`.
pub fn summarize(issues: &[ConfigError]) -> String {
    let list: Vec<String> = issues
        .iter()
        .map(|i| format!("{}: {}", i.path, i.reason))
        .collect();
    format!(
        "refused by the production profile ({} problem{}): {}",
        issues.len(),
        if issues.len() == 1 { "" } else { "s" },
        list.join("; ")
    )
}

fn check_authentication(raw: &RawConfig, issues: &mut Vec<ConfigError>) {
    let status_path = raw.status.as_ref().map(|s| s.path.as_str());
    if let Some(e) = raw.envoy_jwt.as_ref() {
        if !e.required {
            issues.push(ConfigError::new(
                "envoy_jwt.required",
                "must be true in production: requests without a verified token would pass",
            ));
        }
        return;
    }
    if raw.jwt.is_none() {
        if let Some(keys) = raw.keys.as_ref() {
            // Virtual API keys authenticate every request when they are required.
            if !keys.required {
                issues.push(ConfigError::new(
                    "keys.required",
                    "must be true in production (or configure jwt): requests without a key would pass",
                ));
            }
            return;
        }
    }
    let Some(jwt) = raw.jwt.as_ref() else {
        issues.push(ConfigError::new(
            "jwt",
            "production requires authentication: configure jwt, envoy_jwt or keys",
        ));
        if status_path.is_some() {
            issues.push(ConfigError::new(
                "status.path",
                "the status endpoint needs authentication in production (configure jwt or envoy_jwt)",
            ));
        }
        return;
    };
    if jwt.allow_unmatched {
        issues.push(ConfigError::new(
            "jwt.allow_unmatched",
            "must be false in production: requests matching no rule would pass without a token",
        ));
    }
    let mut candidates: Vec<String> = LLM_API_PATHS.iter().map(|p| p.to_string()).collect();
    let named = jwt
        .rules
        .iter()
        .map(|r| (&r.path_prefix, &r.path_exact))
        .chain(jwt.bypass.iter().map(|b| (&b.path_prefix, &b.path_exact)));
    for (prefix, exact) in named {
        if let Some(e) = exact.as_deref().filter(|e| classify_path(e).is_some()) {
            candidates.push(e.to_string());
        }
        if let Some(p) = prefix.as_deref() {
            let p = p.trim_end_matches('/');
            if classify_path(p).is_some() {
                candidates.push(p.to_string());
            }
            candidates.push(format!("{p}/v1/chat/completions"));
        }
    }
    // allow_unmatched is reported once, above.
    let mut reported: Vec<String> = vec!["jwt.allow_unmatched".to_string()];
    let mut report = |path: String, reason: String, issues: &mut Vec<ConfigError>| {
        if !reported.contains(&path) {
            reported.push(path.clone());
            issues.push(ConfigError::new(path, reason));
        }
    };
    for api_path in &candidates {
        if let Some(at) = unauthenticated_by(jwt, api_path) {
            report(
                at.clone(),
                format!("leaves the LLM API path {api_path} reachable without a token"),
                issues,
            );
        }
    }
    if let Some(path) = status_path {
        if let Some(at) = unauthenticated_by(jwt, path) {
            report(
                "status.path".into(),
                format!("the status endpoint {path} is reachable without a token ({at})"),
                issues,
            );
        }
    }
}

/// What lets `path` through without a token, as a JSON path (`None`: a token is needed).
fn unauthenticated_by(jwt: &RawJwtSettings, path: &str) -> Option<String> {
    let matches = |prefix: &Option<String>, exact: &Option<String>| match (prefix, exact) {
        (Some(p), _) => path.starts_with(p.as_str()),
        (None, Some(e)) => path == e,
        (None, None) => false,
    };
    if let Some(i) = jwt
        .bypass
        .iter()
        .position(|b| matches(&b.path_prefix, &b.path_exact))
    {
        return Some(format!("jwt.bypass[{i}]"));
    }
    match jwt
        .rules
        .iter()
        .position(|r| matches(&r.path_prefix, &r.path_exact))
    {
        Some(i) => {
            let rule = jwt.rules.get(i)?;
            match rule.requires {
                None | Some(RawRequires::Optional(_)) => Some(format!("jwt.rules[{i}]")),
                Some(_) => None,
            }
        }
        None if jwt.allow_unmatched => Some("jwt.allow_unmatched".into()),
        None => None,
    }
}

fn check_masking(raw: &RawConfig, issues: &mut Vec<ConfigError>) {
    if !raw.masking.logs {
        issues.push(ConfigError::new(
            "masking.logs",
            "must be true in production: log lines could carry keys and tokens",
        ));
    }
    if !raw.masking.error_bodies {
        issues.push(ConfigError::new(
            "masking.error_bodies",
            "must be true in production: provider errors often echo the key they were sent",
        ));
    }
    if raw.masking.prompts == PromptAction::Off {
        issues.push(ConfigError::new(
            "masking.prompts",
            "must be redact or block in production, not off",
        ));
    }
}

fn check_inline_secrets(raw: &RawConfig, issues: &mut Vec<ConfigError>) {
    if let Some(failover) = raw.failover.as_ref() {
        for (i, p) in failover.providers.iter().enumerate() {
            if matches!(p.api_key, Some(RawApiKey::Value(_))) {
                issues.push(ConfigError::new(
                    format!("failover.providers[{i}].api_key.value"),
                    "inline provider key: give it as {\"env\": NAME} (vm_config.environment_variables) in production",
                ));
            }
        }
    }
    let Some(jwt) = raw.jwt.as_ref() else {
        return;
    };
    for (i, p) in jwt.providers.iter().enumerate() {
        let Some(local) = p.local_jwks.as_ref() else {
            continue;
        };
        // local_jwks is a JWKS object or a string holding one.
        let parsed;
        let jwks = match local {
            Value::String(s) => match serde_json::from_slice::<Value>(s.as_bytes()) {
                Ok(v) => {
                    parsed = v;
                    &parsed
                }
                Err(_) => continue,
            },
            other => other,
        };
        let Some(keys) = jwks.get("keys").and_then(Value::as_array) else {
            continue;
        };
        for (j, key) in keys.iter().enumerate() {
            let at = format!("jwt.providers[{i}].local_jwks.keys[{j}]");
            if key.get("kty").and_then(Value::as_str) == Some("oct") {
                if let Some(k) = key.get("k").and_then(Value::as_str) {
                    let bytes = decoded_len(k);
                    if bytes < MIN_HMAC_SECRET_BYTES {
                        issues.push(ConfigError::new(
                            format!("{at}.k"),
                            format!("HMAC secret is {bytes} bytes; at least {MIN_HMAC_SECRET_BYTES} are required"),
                        ));
                    }
                    issues.push(ConfigError::new(
                        format!("{at}.k"),
                        "inline HMAC secret: serve it from a remote_jwks endpoint in production",
                    ));
                }
            }
            for member in PRIVATE_JWK_MEMBERS {
                if key.get(*member).is_some() {
                    issues.push(ConfigError::new(
                        format!("{at}.{member}"),
                        "private key material in the configuration: verification needs public keys only",
                    ));
                }
            }
        }
    }
}

/// Bytes a base64url value decodes to (padding and invalid characters ignored).
fn decoded_len(b64: &str) -> usize {
    let symbols = b64
        .bytes()
        .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/'))
        .count();
    symbols * 6 / 8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FilterConfig;

    fn raw(json: &str) -> RawConfig {
        serde_json::from_str(json).unwrap()
    }

    fn paths(json: &str) -> Vec<String> {
        check(&raw(json)).into_iter().map(|i| i.path).collect()
    }

    const GOOD_JWT: &str = r#"{"providers":[{"name":"corp","issuer":"https://idp",
        "remote_jwks":{"cluster":"idp","path":"/jwks","authority":"idp"}}],
        "rules":[{"path_prefix":"/","requires":{"provider":"corp"}}],
        "bypass":[{"path_exact":"/healthz"}]}"#;

    #[test]
    fn development_accepts_everything() {
        assert!(check(&raw(r#"{"masking":{"logs":false}}"#)).is_empty());
        assert!(check(&raw("{}")).is_empty());
    }

    #[test]
    fn a_good_production_config_passes() {
        let json = format!(
            r#"{{"environment":"production","jwt":{GOOD_JWT},"status":{{"path":"/tollgate/status"}}}}"#
        );
        assert_eq!(paths(&json), Vec::<String>::new());
        let envoy = r#"{"environment":"production","envoy_jwt":{"payload_key":"p"}}"#;
        assert_eq!(paths(envoy), Vec::<String>::new());
    }

    #[test]
    fn every_reason_is_collected_at_once() {
        let json = r#"{
          "environment": "production",
          "masking": {"logs": false, "error_bodies": false, "prompts": "off"},
          "status": {"path": "/tollgate/status"},
          "failover": {"providers": [
            {"name":"a","kind":"openai","cluster":"a","api_key":{"value":"sk-inline"}},
            {"name":"b","kind":"openai","cluster":"b","api_key":{"env":"B_KEY"}}],
            "routes":[{"model":"*","providers":["a","b"]}]}
        }"#;
        assert_eq!(
            paths(json),
            vec![
                "jwt",
                "status.path",
                "masking.logs",
                "masking.error_bodies",
                "masking.prompts",
                "failover.providers[0].api_key.value",
            ]
        );
    }

    #[test]
    fn inline_and_short_hmac_keys_and_private_members_are_refused() {
        let json = r#"{"environment":"production","jwt":{"providers":[
            {"name":"a","issuer":"i","local_jwks":{"keys":[{"kty":"oct","k":"c2hvcnQ"}]}},
            {"name":"b","issuer":"i","local_jwks":"{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"},{\"kty\":\"EC\",\"d\":\"x\"}]}"}],
            "rules":[{"path_prefix":"/","requires":{"any":["a","b"]}}]}}"#;
        let issues = check(&raw(json));
        let got: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            got,
            vec![
                "jwt.providers[0].local_jwks.keys[0].k",
                "jwt.providers[0].local_jwks.keys[0].k",
                "jwt.providers[1].local_jwks.keys[0].k",
                "jwt.providers[1].local_jwks.keys[1].d",
            ]
        );
        assert!(issues[0].reason.contains("5 bytes"), "{:?}", issues[0]);
        assert!(issues[1].reason.contains("inline HMAC"), "{:?}", issues[1]);
    }

    #[test]
    fn unauthenticated_api_paths_are_refused_with_the_rule_that_opens_them() {
        let json = r#"{"environment":"production","jwt":{"providers":[{"name":"corp","issuer":"i",
            "remote_jwks":{"cluster":"idp","path":"/jwks","authority":"idp"}}],
            "rules":[{"path_prefix":"/v1/chat","requires":{"provider":"corp"}},
                     {"path_prefix":"/v1/","requires":{"optional":"corp"}},
                     {"path_prefix":"/api/"}],
            "bypass":[{"path_exact":"/v1beta/models/m:generateContent"}, {"path_exact":"/healthz"}],
            "allow_unmatched": true}}"#;
        let issues = check(&raw(json));
        let got: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            got,
            vec![
                "jwt.allow_unmatched",
                "jwt.rules[1]",
                "jwt.bypass[0]",
                "jwt.rules[2]"
            ]
        );
        assert!(
            issues[1].reason.contains("/v1/responses"),
            "{:?}",
            issues[1]
        );
    }

    #[test]
    fn status_path_open_through_a_bypass_is_refused() {
        let json = format!(
            r#"{{"environment":"production","status":{{"path":"/tollgate/status"}},
                "jwt":{}}}"#,
            GOOD_JWT.replace("/healthz", "/tollgate/status")
        );
        assert_eq!(paths(&json), vec!["status.path"]);
    }

    #[test]
    fn required_virtual_keys_authenticate_in_production() {
        let hash = "ab".repeat(32);
        let keys =
            format!(r#"{{"inline":[{{"id":"a","sha256":"{hash}","owner":"o","team":"t"}}]}}"#);
        let json = format!(
            r#"{{"environment":"production","keys":{keys},"status":{{"path":"/tollgate/status"}}}}"#
        );
        assert_eq!(paths(&json), Vec::<String>::new());
        let optional = r#"{"environment":"production","keys":{"inline":[],"required":false}}"#;
        assert_eq!(paths(optional), vec!["keys.required"]);
    }

    #[test]
    fn envoy_jwt_must_be_required() {
        let json =
            r#"{"environment":"production","envoy_jwt":{"payload_key":"p","required":false}}"#;
        assert_eq!(paths(json), vec!["envoy_jwt.required"]);
    }

    #[test]
    fn filter_config_reports_all_reasons_in_one_error() {
        let e = FilterConfig::parse(
            br#"{"environment":"production","masking":{"logs":false,"prompts":"off"}}"#,
        )
        .unwrap_err();
        assert_eq!(e.path, "environment");
        let text = e.to_string();
        for needle in [
            "3 problems",
            "jwt: production requires",
            "masking.logs:",
            "masking.prompts:",
        ] {
            assert!(text.contains(needle), "{needle} missing in {text}");
        }
        let e = FilterConfig::parse(br#"{"environment":"staging"}"#).unwrap_err();
        assert_eq!(e.path, "environment");
    }
}
