//! Each check on small bootstraps: `fixtures/walked.yaml` and `fixtures/routed.json` pass every
//! check; each failing case changes one line of them and expects exactly the finding that line
//! causes — its check, severity, line and field.

use std::path::PathBuf;

use tollgate_check::{check_text, Check, Finding, Severity};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fixture with `from` (which must occur exactly once) replaced by `to`.
fn variant(name: &str, from: &str, to: &str) -> String {
    let text = fixture(name);
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} must occur once in {name}"
    );
    text.replacen(from, to, 1)
}

/// The 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not found"));
    text[..at].matches('\n').count() + 1
}

fn findings(text: &str) -> Vec<Finding> {
    check_text("fixture.yaml", text).findings
}

/// Exactly one finding; returns it.
fn only(text: &str) -> Finding {
    let all = findings(text);
    assert_eq!(all.len(), 1, "expected one finding, got:\n{}", render(&all));
    all.into_iter().next().unwrap()
}

fn render(all: &[Finding]) -> String {
    all.iter().map(|f| format!("  {f}\n")).collect()
}

#[test]
fn the_fixtures_pass_every_check() {
    for name in ["walked.yaml", "routed.json"] {
        let report = check_text(name, &fixture(name));
        assert!(
            report.findings.is_empty(),
            "{name}:\n{}",
            render(&report.findings)
        );
        assert!(report.filters >= 1, "{name}: no tollgate filter found");
    }
}

#[test]
fn findings_print_file_line_and_field() {
    let text = variant(
        "walked.yaml",
        "\n                          { \"name\": \"openai\", \"kind\": \"openai\", \"cluster\": \"openai\",",
        "\n                          { \"name\": \"openai\", \"kind\": \"openai\", \"cluster\": \"opneai\",",
    );
    let all = findings(&text);
    let missing = all
        .iter()
        .find(|f| f.check == Check::ClusterExists)
        .unwrap_or_else(|| panic!("no cluster finding:\n{}", render(&all)));
    assert_eq!(missing.line, line_of(&text, "\"cluster\": \"opneai\""));
    assert_eq!(
        missing.to_string(),
        format!(
            "fixture.yaml:{}: error: listener llm › filter tollgate › failover.providers[0].cluster: \
             cluster \"opneai\" is not defined in the bootstrap (clusters: llm, openai, anthropic, gemini, idp); \
             requests for it would get a 503 \"cluster not found\" at run time",
            missing.line
        )
    );
    let checks: Vec<Check> = all.iter().map(|f| f.check).collect();
    assert_eq!(checks, vec![Check::ClusterExists], "{}", render(&all));
}

#[test]
fn the_plugin_config_is_validated_by_the_filters_own_code() {
    let text = variant(
        "routed.json",
        r#"\"routes\": [{\"model\": \"*\", \"providers\": [\"openai\"]}]"#,
        r#"\"routes\": [{\"model\": \"*\", \"providers\": [\"opnai\"]}]"#,
    );
    let f = only(&text);
    assert_eq!(f.check, Check::PluginConfig);
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(
        f.field,
        "listener llm › filter tollgate › failover.routes[0].providers[0]"
    );
    assert!(f.message.contains("unknown provider \"opnai\""), "{f}");
    assert_eq!(f.line, line_of(&text, "\"value\""));
}

#[test]
fn a_plugin_config_error_names_the_line_inside_a_block_scalar() {
    let text = variant(
        "walked.yaml",
        r#"                        "rules": [{ "path_prefix": "/", "requires": { "provider": "corp" } }]"#,
        r#"                        "rules": [{ "path_prefix": "/", "requires": { "provider": "crop" } }]"#,
    );
    let f = only(&text);
    assert_eq!(f.check, Check::PluginConfig);
    assert_eq!(f.line, line_of(&text, "\"crop\""), "{f}");
    assert!(
        f.field
            .starts_with("listener llm › filter tollgate › jwt.rules[0]"),
        "{f}"
    );
}

#[test]
fn invalid_json_names_its_line() {
    let text = variant(
        "walked.yaml",
        r#"                      "jwt": {"#,
        r#"                      "jwt": {,"#,
    );
    let f = only(&text);
    assert_eq!(f.check, Check::PluginConfig);
    assert_eq!(f.line, line_of(&text, "\"jwt\": {,"));
    assert!(f.message.starts_with("not valid JSON"), "{f}");
}

#[test]
fn a_key_variable_missing_from_the_vm_is_an_error() {
    let text = variant(
        "routed.json",
        r#""key_values": { "OPENAI_API_KEY": "sk-test-openai-key" }"#,
        r#""key_values": { "OPENAI_KEY": "sk-test-openai-key" }"#,
    );
    let f = only(&text);
    assert_eq!(f.check, Check::PluginConfig);
    assert!(
        f.field.ends_with("failover.providers[0].api_key.env"),
        "{f}"
    );
    assert!(f.message.contains("OPENAI_API_KEY"), "{f}");
}

#[test]
fn host_env_keys_get_a_stand_in_value() {
    // A variable only the host environment could give, absent from this process: not a finding.
    // (A name no one sets, so the test never touches the process environment other tests read.)
    let absent = "TOLLGATE_CHECK_TEST_NEVER_SET_KEY";
    assert!(std::env::var_os(absent).is_none());
    let text = fixture("walked.yaml").replace("GEMINI_API_KEY", absent);
    assert!(findings(&text).is_empty(), "{}", render(&findings(&text)));
}

#[test]
fn allow_on_headers_stop_iteration_is_required() {
    let text = variant(
        "routed.json",
        r#""allow_on_headers_stop_iteration": true,"#,
        r#""allow_on_headers_stop_iteration": false,"#,
    );
    let f = only(&text);
    assert_eq!(f.check, Check::StopIteration);
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.line, line_of(&text, "allow_on_headers_stop_iteration"));
    assert!(f.message.contains("requests hang"), "{f}");

    let text = variant(
        "routed.json",
        "\"allow_on_headers_stop_iteration\": true,\n",
        "",
    );
    assert_eq!(only(&text).check, Check::StopIteration);
}

#[test]
fn failure_policy_fail_open_is_an_error_and_anything_but_fail_reload_a_warning() {
    for (policy, severity) in [
        (r#""failure_policy": "FAIL_OPEN","#, Severity::Error),
        (r#""fail_open": true,"#, Severity::Error),
        (r#""failure_policy": "FAIL_CLOSED","#, Severity::Warning),
        ("", Severity::Warning),
    ] {
        let text = variant("routed.json", r#""failure_policy": "FAIL_RELOAD","#, policy);
        let f = only(&text);
        assert_eq!(f.check, Check::FailurePolicy, "{policy}");
        assert_eq!(f.severity, severity, "{policy}: {f}");
    }
}

#[test]
fn warnings_fail_only_with_deny_warnings() {
    let text = variant(
        "routed.json",
        r#""failure_policy": "FAIL_RELOAD","#,
        r#""failure_policy": "FAIL_CLOSED","#,
    );
    let report = check_text("x.json", &text);
    assert!(report.passes(false));
    assert!(!report.passes(true));
}

#[test]
fn every_cluster_the_config_names_must_exist() {
    let text = variant(
        "walked.yaml",
        r#""remote_jwks": { "cluster": "idp","#,
        r#""remote_jwks": { "cluster": "login","#,
    );
    let f = only(&text);
    assert_eq!(f.check, Check::ClusterExists);
    assert!(
        f.field.ends_with("jwt.providers[0].remote_jwks.cluster"),
        "{f}"
    );
    assert_eq!(f.line, line_of(&text, "\"login\""));
}

#[test]
fn an_unknown_cluster_is_only_a_warning_when_cds_may_deliver_it() {
    let text = variant(
        "walked.yaml",
        r#""remote_jwks": { "cluster": "idp","#,
        r#""remote_jwks": { "cluster": "login","#,
    )
    .replacen(
        "static_resources:\n",
        "dynamic_resources:\n  cds_config: { ads: {} }\nstatic_resources:\n",
        1,
    );
    let f = only(&text);
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.message.ends_with("unless CDS delivers it"), "{f}");
}

#[test]
fn tollgate_routing_needs_a_cluster_header_route() {
    let text = variant(
        "routed.json",
        r#""route": { "cluster_header": "x-tollgate-cluster" }"#,
        r#""route": { "cluster": "openai" }"#,
    );
    let f = only(&text);
    assert_eq!(f.check, Check::ClusterHeaderRoute);
    assert_eq!(f.line, line_of(&text, "\"route_config\""));
    assert!(
        f.message.contains("cluster_header: x-tollgate-cluster"),
        "{f}"
    );
}

#[test]
fn the_aggregate_cluster_lists_the_route_providers_in_order() {
    let text = variant(
        "walked.yaml",
        "clusters: [openai, anthropic, gemini]",
        "clusters: [anthropic, openai, gemini]",
    );
    let f = findings(&text).into_iter().next().unwrap();
    assert_eq!(f.check, Check::AggregateOrder);
    assert_eq!(f.line, line_of(&text, "clusters: [anthropic"));
    assert!(
        f.message
            .contains("member 0 (anthropic) serves provider \"anthropic\", but provider 0"),
        "{f}"
    );
    let all = findings(&text);
    assert_eq!(
        all.len(),
        2,
        "members 0 and 1 are swapped:\n{}",
        render(&all)
    );

    let text = variant(
        "walked.yaml",
        "clusters: [openai, anthropic, gemini]",
        "clusters: [openai, anthropic]",
    );
    let f = only(&text);
    assert!(f.message.contains("one member per provider"), "{f}");
}

#[test]
fn a_walked_route_needs_an_aggregate_cluster() {
    let text = variant(
        "walked.yaml",
        "      name: envoy.clusters.aggregate\n",
        "      name: envoy.clusters.static\n",
    );
    let all = findings(&text);
    assert!(
        all.iter().any(|f| f.check == Check::AggregateOrder
            && f.message.contains("must be an aggregate cluster")),
        "{}",
        render(&all)
    );
}

#[test]
fn provider_endpoints_carry_their_provider_in_metadata() {
    let text = variant(
        "walked.yaml",
        "metadata: { filter_metadata: { tollgate: { provider: anthropic } } }",
        "metadata: { filter_metadata: { tollgate: { provider: mistral } } }",
    );
    let f = only(&text);
    assert_eq!(f.check, Check::EndpointMetadata);
    assert_eq!(f.line, line_of(&text, "port_value: 8082") + 1);
    assert!(f.message.contains("must be \"anthropic\""), "{f}");

    let text = variant(
        "walked.yaml",
        "          metadata: { filter_metadata: { tollgate: { provider: gemini } } }\n",
        "",
    );
    let f = only(&text);
    assert_eq!(f.check, Check::EndpointMetadata);
    assert!(f.message.contains("found nothing"), "{f}");
}

#[test]
fn the_upstream_stage_runs_in_the_listener_stages_vm_and_finds_its_catalog() {
    // Another VM id: the upstream stage would run in a VM without a catalog.
    let text = variant(
        "walked.yaml",
        "\n                vm_id: tollgate\n",
        "\n                vm_id: other\n",
    );
    let f = only(&text);
    assert_eq!(f.check, Check::UpstreamStage);
    assert_eq!(
        f.field,
        "cluster llm › upstream filter tollgate-upstream › vm_config.vm_id"
    );
    assert_eq!(f.line, line_of(&text, "vm_id: other"));
    assert!(f.message.contains("listener llm › filter tollgate"), "{f}");

    // Other environment variables make another VM too (keys live in the listener stage's VM).
    let upstream_env = "\n                  key_values: { OPENAI_API_KEY: sk-test-openai, ANTHROPIC_API_KEY: sk-test-anthropic }\n";
    assert_eq!(fixture("walked.yaml").matches(upstream_env).count(), 1);
    let text = variant(
        "walked.yaml",
        upstream_env,
        "\n                  key_values: {}\n",
    );
    let f = only(&text);
    assert!(f.field.ends_with("vm_config.environment_variables"), "{f}");

    // The old full form: refused by the filter's own code, naming the field.
    let text = variant(
        "walked.yaml",
        r#"{ "stage": "upstream" }"#,
        r#"{ "stage": "upstream", "failover": { "providers": [] } }"#,
    );
    let f = only(&text);
    assert_eq!(f.check, Check::PluginConfig);
    assert!(f.field.ends_with("› failover"), "{f}");
    assert!(f.message.contains("listener stage of its VM"), "{f}");

    // A name no listener stage publishes.
    let text = variant(
        "walked.yaml",
        r#"{ "stage": "upstream" }"#,
        r#"{ "stage": "upstream", "failover_name": "egress" }"#,
    );
    let f = only(&text);
    assert_eq!(f.check, Check::UpstreamStage);
    assert!(f.field.ends_with("› failover_name"), "{f}");
    assert!(f.message.contains("\"egress\""), "{f}");
    // …and once the listener stage names its catalog so, it resolves.
    let text = text.replacen(
        "\"failover\": {\n",
        "\"failover\": {\n                        \"name\": \"egress\",\n",
        1,
    );
    assert!(findings(&text).is_empty(), "{}", render(&findings(&text)));

    // No upstream_codec last.
    let text = variant(
        "walked.yaml",
        "        - name: envoy.filters.http.upstream_codec\n          typed_config:\n            \"@type\": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec\n",
        "",
    );
    let f = only(&text);
    assert!(f.message.contains("upstream_codec"), "{f}");

    // The stage says downstream.
    let text = variant("walked.yaml", r#"{ "stage": "upstream" }"#, "{}");
    let f = only(&text);
    assert_eq!(f.check, Check::Stage);
}

#[test]
fn a_walked_route_without_the_upstream_stage_is_an_error() {
    let text = fixture("walked.yaml");
    let start = text.find("        - name: tollgate-upstream").unwrap();
    let end = text
        .find("        - name: envoy.filters.http.upstream_codec")
        .unwrap();
    let text = format!("{}{}", &text[..start], &text[end..]);
    let f = only(&text);
    assert_eq!(f.check, Check::UpstreamStage);
    assert!(
        f.message
            .contains("needs tollgate in its upstream filter chain"),
        "{f}"
    );
}

#[test]
fn retries_must_reach_the_last_provider() {
    let text = variant("walked.yaml", "num_retries: 2", "num_retries: 1");
    let f = only(&text);
    assert_eq!(f.check, Check::RetryPolicy);
    assert_eq!(f.line, line_of(&text, "num_retries: 1"));
    assert!(f.message.contains("needs at least 2 retries"), "{f}");

    let text = variant("walked.yaml", "update_frequency: 1", "update_frequency: 2");
    let f = only(&text);
    assert!(f.message.contains("needs at least 4 retries"), "{f}");

    let text = variant(
        "walked.yaml",
        "name: envoy.retry_priorities.previous_priorities",
        "name: envoy.retry_priorities.other",
    );
    let f = only(&text);
    assert_eq!(f.check, Check::RetryPolicy);
    assert!(f.field.ends_with("retry_priority"), "{f}");

    let text = variant(
        "walked.yaml",
        "retry_on: \"5xx,reset,connect-failure\"",
        "retry_on: \"5xx\"",
    );
    let all = findings(&text);
    assert_eq!(all.len(), 2, "{}", render(&all));
    assert!(all.iter().all(|f| f.severity == Severity::Warning));
}

#[test]
fn the_retry_circuit_breaker_admits_every_failover() {
    let text = variant("walked.yaml", "max_retries: 3072", "max_retries: 16");
    let f = only(&text);
    assert_eq!(f.check, Check::RetryBreaker);
    assert_eq!(f.line, line_of(&text, "max_retries: 16"));
    assert!(f.message.contains("at least 1024"), "{f}");

    // A member that admits more requests at once needs more retry slots.
    let text = variant(
        "walked.yaml",
        "  - name: gemini\n    type: STATIC\n",
        "  - name: gemini\n    type: STATIC\n    circuit_breakers: { thresholds: [{ priority: DEFAULT, max_requests: 4096 }] }\n",
    );
    let f = only(&text);
    assert!(
        f.message.contains("is 3072") && f.message.contains("at least 4096"),
        "{f}"
    );

    // Without a threshold Envoy's default (3) applies.
    let text = variant(
        "walked.yaml",
        "    circuit_breakers:\n      thresholds:\n      - priority: DEFAULT\n        max_retries: 3072\n",
        "",
    );
    let f = only(&text);
    assert!(f.message.contains("is 3 (Envoy's default)"), "{f}");
}

#[test]
fn missing_tag_extractors_are_a_warning() {
    let text = variant(
        "walked.yaml",
        "stats_config:\n  stats_tags:\n  - { tag_name: model, regex: '(model=\\.=(.*?);\\.;)' }\n",
        "",
    );
    let f = only(&text);
    assert_eq!(f.check, Check::StatsTags);
    assert_eq!(f.severity, Severity::Warning);
}

#[test]
fn not_a_bootstrap_or_not_yaml() {
    let f = only("a: [1, 2\n");
    assert_eq!(f.check, Check::Parse);
    let f = only("admin: {}\n");
    assert_eq!(f.check, Check::Parse);
    assert!(f.message.contains("not an Envoy bootstrap"), "{f}");
}

#[test]
fn the_listener_buffer_holds_the_largest_body_tollgate_accepts() {
    let text = variant(
        "walked.yaml",
        "    per_connection_buffer_limit_bytes: 16777216\n",
        "    per_connection_buffer_limit_bytes: 32768\n",
    );
    let f = only(&text);
    assert_eq!(f.check, Check::BufferLimit);
    assert_eq!(
        f.line,
        line_of(&text, "per_connection_buffer_limit_bytes: 32768")
    );
    assert!(
        f.message.contains("limits.max_request_bytes (16777216)"),
        "{f}"
    );
    assert!(f.message.contains("413"), "{f}");

    // Envoy's default (1 MiB) is enough for a configuration that accepts at most 1 MiB.
    let text = variant(
        "routed.json",
        "      \"per_connection_buffer_limit_bytes\": 16777216,\n",
        "",
    );
    assert_eq!(only(&text).check, Check::BufferLimit);
    let text = text.replacen(
        r#"{\"failover\""#,
        r#"{\"limits\": {\"max_request_bytes\": 1048576}, \"failover\""#,
        1,
    );
    assert!(findings(&text).is_empty(), "{}", render(&findings(&text)));
}

/// The walked fixture with a second listener (`llm2`, port 10001) whose tollgate filter has the
/// same `vm_config` and a catalog that walks nothing; `edit` changes that listener's text.
fn two_listeners(edit: impl Fn(&str) -> String) -> String {
    let text = fixture("walked.yaml");
    let start = text.find("  - name: llm\n    address").unwrap();
    let end = text.find("  clusters:\n").unwrap();
    let second = text[start..end]
        .replacen("  - name: llm\n", "  - name: llm2\n", 1)
        .replacen("port_value: 10000", "port_value: 10001", 1)
        .replacen(", \"cluster\": \"llm\" }]", " }]", 1);
    assert_ne!(second, text[start..end]);
    format!("{}{}{}", &text[..end], edit(&second), &text[end..])
}

fn checks_of(all: &[Finding]) -> Vec<Check> {
    all.iter().map(|f| f.check).collect()
}

#[test]
fn several_listener_stages_in_one_vm_name_their_catalogs() {
    // Both unnamed: two catalogs under one name, and the upstream stage takes the later one.
    let text = two_listeners(|s| s.to_string());
    let all = findings(&text);
    assert_eq!(
        checks_of(&all),
        vec![Check::UpstreamStage, Check::UpstreamStage],
        "{}",
        render(&all)
    );
    assert!(
        all.iter().any(
            |f| f.field == "listener llm2 › filter tollgate › failover.name"
                && f.message.contains("same name (unnamed)")
        ),
        "{}",
        render(&all)
    );
    assert!(
        all.iter().any(|f| f.message.contains(
            "takes the catalog of listener llm2 › filter tollgate, but the walked routes of listener llm"
        )),
        "{}",
        render(&all)
    );

    // The second one named: the upstream stage names none of the two.
    let named = |s: &str| {
        s.replacen(
            "\"failover\": {\n",
            "\"failover\": {\n                        \"name\": \"ingress\",\n",
            1,
        )
    };
    let text = two_listeners(named);
    let f = only(&text);
    assert_eq!(f.check, Check::UpstreamStage);
    assert_eq!(
        f.field,
        "cluster llm › upstream filter tollgate-upstream › stage"
    );
    assert!(f.message.contains("several listener stages"), "{f}");
    assert!(f.message.contains("(unnamed), \"ingress\""), "{f}");

    // Naming the wrong one: the walked routes of llm go through the upstream stage of llm2.
    let wrong = text.replacen(
        r#"{ "stage": "upstream" }"#,
        r#"{ "stage": "upstream", "failover_name": "ingress" }"#,
        1,
    );
    let f = only(&wrong);
    assert!(f.field.ends_with("› failover_name"), "{f}");
    assert!(f.message.contains("set failover_name"), "{f}");

    // Naming the right one resolves.
    let right = text
        .replacen(
            r#"{ "stage": "upstream" }"#,
            r#"{ "stage": "upstream", "failover_name": "egress" }"#,
            1,
        )
        .replacen(
            "\"failover\": {\n",
            "\"failover\": {\n                        \"name\": \"egress\",\n",
            1,
        );
    assert!(findings(&right).is_empty(), "{}", render(&findings(&right)));
}

/// `walked.yaml` with a mesh-wide budget on the `idp` cluster (HTTP/1 there) and, when
/// `http2`, that cluster switched to HTTP/2.
fn with_global_budget(http2: bool) -> String {
    let text = variant(
        "walked.yaml",
        r#"                      "failover": {"#,
        r#"                      "budgets": { "windows": [{ "period": "minute", "max_tokens": 1000 }],
                        "global": { "cluster": "idp", "windows": [{ "period": "minute", "max_tokens": 5000 }] } },
                      "failover": {"#,
    );
    if !http2 {
        return text;
    }
    text.replacen(
        "      cluster_name: idp\n",
        "      cluster_name: idp\n    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        explicit_http_config: { http2_protocol_options: {} }\n",
        1,
    )
}

#[test]
fn the_rate_limit_services_cluster_must_speak_http2() {
    let text = with_global_budget(false);
    let f = only(&text);
    assert_eq!(f.check, Check::GrpcCluster);
    assert_eq!(f.severity, Severity::Error);
    assert!(f.field.ends_with("budgets.global.cluster"), "{f}");
    assert!(f.message.contains("http2_protocol_options"), "{f}");
    let fixed = with_global_budget(true);
    assert!(findings(&fixed).is_empty(), "{}", render(&findings(&fixed)));
}

#[test]
fn the_remote_key_sets_cluster_must_exist() {
    let text = variant(
        "walked.yaml",
        r#"                      "failover": {"#,
        r#"                      "keys": { "remote": { "cluster": "keyring", "path": "/keys.json", "authority": "keyring" } },
                      "failover": {"#,
    );
    let f = only(&text);
    assert_eq!(f.check, Check::ClusterExists);
    assert!(f.field.ends_with("keys.remote.cluster"), "{f}");
    assert_eq!(f.line, line_of(&text, "\"keyring\""));
}
