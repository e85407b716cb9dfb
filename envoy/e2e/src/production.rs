//! `envoy/production/envoy.yaml` made runnable on a test machine without editing its shape.
//!
//! The production file is literal YAML an operator copies: no template placeholders. Tests run
//! the same file with a short, fixed list of known strings swapped ([`render`]): the module path,
//! the gateway's certificate directory, the CA bundle, and — to run it rather than only validate
//! it — the listener and admin addresses and every upstream `host:443` (pointed at a local TLS
//! front). Every swapped string must occur in the file, so a production config that drifts
//! from what the tests know fails them instead of being silently left untested.

use std::path::Path;

/// The production config, relative to `envoy/`.
pub const CONFIG: &str = "production/envoy.yaml";

/// Environment variables the config exports to the Wasm VM (`host_env_keys`): the provider keys.
pub const KEY_ENV: [&str; 3] = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"];

/// The DNS names of the upstream clusters (three providers and the identity provider's JWKS).
pub const UPSTREAM_HOSTS: [&str; 4] = [
    "api.openai.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    "login.example.com",
];

/// Where the production config loads the module from.
pub const MODULE_PATH: &str = "/etc/envoy/tollgate.wasm";
/// The directory of the gateway's certificate chain (`tls.crt`) and key (`tls.key`).
pub const TLS_DIR: &str = "/etc/envoy/tls/";
/// The CA bundle upstream certificates are verified against.
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The public listener.
pub const LISTENER: &str = "address: 0.0.0.0, port_value: 8443";
/// The admin interface.
pub const ADMIN: &str = "address: 127.0.0.1, port_value: 9901";
/// The global rate limit service (`budgets.global`).
pub const RATELIMIT: &str = "address: ratelimit, port_value: 8081 ";

/// What a test swaps into the production config.
#[derive(Debug, Clone, Copy)]
pub struct TestSubstitutions<'a> {
    /// The built module, for [`MODULE_PATH`].
    pub module: &'a Path,
    /// A directory holding `tls.crt` and `tls.key`, for [`TLS_DIR`].
    pub tls_dir: &'a Path,
    /// A CA bundle (PEM), for [`CA_BUNDLE`].
    pub ca_bundle: &'a Path,
    /// When set, every upstream in [`UPSTREAM_HOSTS`] is reached at `127.0.0.1:<port>` instead of
    /// `<host>:443` (SNI and the verified name stay the host's), the listener and admin
    /// become `127.0.0.1:{{LISTENER_PORT}}` / `{{ADMIN_PORT}}` for the e2e harness, and the rate
    /// limit service [`RATELIMIT`] becomes a closed port on 127.0.0.1 (the production config fails
    /// open: requests are served, the failed charges counted).
    pub upstream_port: Option<u16>,
}

/// The production config with `subs` applied; panics if a string to swap is missing.
pub fn render(subs: &TestSubstitutions<'_>) -> String {
    let mut yaml = crate::template(CONFIG);
    swap(&mut yaml, MODULE_PATH, &subs.module.display().to_string());
    swap(&mut yaml, TLS_DIR, &format!("{}/", subs.tls_dir.display()));
    swap(&mut yaml, CA_BUNDLE, &subs.ca_bundle.display().to_string());
    if let Some(port) = subs.upstream_port {
        swap(
            &mut yaml,
            LISTENER,
            "address: 127.0.0.1, port_value: {{LISTENER_PORT}}",
        );
        swap(
            &mut yaml,
            ADMIN,
            "address: 127.0.0.1, port_value: {{ADMIN_PORT}}",
        );
        swap(
            &mut yaml,
            RATELIMIT,
            &format!("address: 127.0.0.1, port_value: {} ", crate::free_port()),
        );
        for host in UPSTREAM_HOSTS {
            swap(
                &mut yaml,
                &format!("address: {host}, port_value: 443 "),
                &format!("address: 127.0.0.1, port_value: {port} "),
            );
        }
    }
    yaml
}

/// Replaces every `from` in `text` with `to`, insisting that there is one.
fn swap(text: &mut String, from: &str, to: &str) {
    assert!(
        text.contains(from),
        "{CONFIG} no longer contains {from:?}: update envoy/e2e/src/production.rs with it"
    );
    *text = text.replace(from, to);
}
