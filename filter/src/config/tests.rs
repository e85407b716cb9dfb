//! The plugin configuration end to end: paths named in errors, defaults, layers.

use super::*;

#[test]
fn empty_and_empty_object_are_valid_defaults() {
    let a = FilterConfig::parse(b"").unwrap();
    let b = FilterConfig::parse(b"{}").unwrap();
    assert_eq!(a.correlation, b.correlation);
    assert_eq!(a.max_request_bytes, b.max_request_bytes);
    assert_eq!(a.correlation.request_id_header, "x-request-id");
    assert_eq!(a.correlation.aliases, vec!["x-correlation-id"]);
}

#[test]
fn the_upstream_stage_holds_only_the_stage_and_a_catalog_name() {
    let c = FilterConfig::parse(br#"{"stage":"upstream"}"#).unwrap();
    assert_eq!(c.stage, Stage::Upstream);
    assert!(c.failover.is_none() && c.failover_name.is_none());
    let c = FilterConfig::parse(br#"{"stage":"upstream","failover_name":"egress"}"#).unwrap();
    assert_eq!(c.failover_name.as_deref(), Some("egress"));
    let e = FilterConfig::parse(br#"{"stage":"sideways"}"#).unwrap_err();
    assert_eq!(e.path, "stage");
    // The full form of earlier versions is refused by the field, saying what to do.
    let doc = br#"{"stage":"upstream","limits":{"max_request_bytes":10},"failover":{"providers":[{"name":"a","kind":"openai","cluster":"a"}]}}"#;
    let e = FilterConfig::parse(doc).unwrap_err();
    assert_eq!(e.path, "failover");
    assert!(e.reason.contains("listener stage"), "{e}");
    assert!(e.reason.contains("vm_config"), "{e}");
    let e = FilterConfig::parse(br#"{"stage":"upstream","environment":"production"}"#).unwrap_err();
    assert_eq!(e.path, "environment");
    assert!(e.reason.contains("remove this field"), "{e}");
    let e = FilterConfig::parse(br#"{"stage":"upstream","failover_name":"a b"}"#).unwrap_err();
    assert_eq!(e.path, "failover_name");
    // A listener stage names its own catalog; it takes none by name.
    let e = FilterConfig::parse(br#"{"failover_name":"egress"}"#).unwrap_err();
    assert_eq!(e.path, "failover_name");
    assert!(e.reason.contains("failover.name"), "{e}");
}

#[test]
fn a_listener_stage_names_its_catalog_and_routes_may_name_an_aggregate_cluster() {
    let doc = br#"{"failover":{"name":"egress","providers":[{"name":"a","kind":"openai","cluster":"a"},{"name":"b","kind":"anthropic","cluster":"b"}],"routes":[{"model":"m*","providers":["a","b"],"cluster":"llm"}]}}"#;
    let f = FilterConfig::parse(doc).unwrap().failover.unwrap();
    assert_eq!(f.name.as_deref(), Some("egress"));
    assert_eq!(f.envoy_cluster_for("m1"), Some("llm"));
    assert_eq!(f.envoy_cluster_for("x"), None);
    let e = FilterConfig::parse(br#"{"failover":{"name":"","providers":[]}}"#).unwrap_err();
    assert_eq!(e.path, "failover.name");
    let e = FilterConfig::parse(br#"{"failover":{"providers":[{"name":"a","kind":"openai","cluster":"a"}],"routes":[{"model":"m","providers":["a"],"cluster":""}]}}"#).unwrap_err();
    assert_eq!(e.path, "failover.routes[0].cluster");
}

#[test]
fn unknown_field_is_named_with_its_path() {
    let e = FilterConfig::parse(br#"{"correlation":{"bogus":1}}"#).unwrap_err();
    assert_eq!(e.path, "correlation.bogus");
    assert!(e.reason.contains("unknown field"), "{e}");
}

#[test]
fn wrong_type_is_named() {
    let e = FilterConfig::parse(br#"{"correlation":{"max_length":"big"}}"#).unwrap_err();
    assert_eq!(e.path, "correlation.max_length");
}

#[test]
fn out_of_range_value_is_named() {
    let e = FilterConfig::parse(br#"{"correlation":{"max_length":0}}"#).unwrap_err();
    assert_eq!(e.path, "correlation.max_length");
    assert!(e.to_string().contains("between 1 and 1024"));
}

#[test]
fn bad_alias_is_named_by_index() {
    let e = FilterConfig::parse(br#"{"correlation":{"aliases":["ok","bad header"]}}"#).unwrap_err();
    assert_eq!(e.path, "correlation.aliases[1]");
}

#[test]
fn header_names_are_lowercased() {
    let c = FilterConfig::parse(br#"{"correlation":{"request_id_header":"X-Req-ID"}}"#).unwrap();
    assert_eq!(c.correlation.request_id_header, "x-req-id");
}

#[test]
fn budgets_and_prices_are_validated_with_paths() {
    let e = FilterConfig::parse(br#"{"budgets":{"windows":[{"period":"week","max_tokens":1}]}}"#)
        .unwrap_err();
    assert_eq!(e.path, "budgets.windows[0].period");
    let e = FilterConfig::parse(br#"{"budgets":{"windows":[{"period":60}]}}"#).unwrap_err();
    assert_eq!(e.path, "budgets.windows[0]");
    let e = FilterConfig::parse(
        br#"{"usage":{"prices":{"gpt-4o":{"input_per_million":-1,"output_per_million":1}}}}"#,
    )
    .unwrap_err();
    assert_eq!(e.path, "usage.prices.gpt-4o.input_per_million");
    let ok = FilterConfig::parse(
        br#"{"budgets":{"windows":[{"period":"minute","max_tokens":1000},{"period":"day","max_requests":5}]}}"#,
    )
    .unwrap();
    assert_eq!(ok.budgets.unwrap().budgets.windows.len(), 2);
}

#[test]
fn malformed_json_is_refused() {
    assert!(FilterConfig::parse(b"{not json").is_err());
}

/// `path: reason` of the error `doc` is refused with.
fn refusal(doc: &str) -> String {
    let e = FilterConfig::parse(doc.as_bytes()).unwrap_err();
    format!("{}: {}", e.path, e.reason)
}

#[test]
fn every_section_reports_through_the_one_error_type_with_its_json_path() {
    let jwt = r#"{"jwt":{"providers":[{"name":"corp","issuer":"https://idp","audiences":[],
        "remote_jwks":{"cluster":"idp","path":"/jwks","authority":"idp"}}]}}"#;
    assert_eq!(
        refusal(jwt),
        "jwt.providers[0].audiences: must not be empty"
    );
    let failover = r#"{"failover":{"providers":[{"name":"a","kind":"openai","cluster":"a"}],
        "routes":[{"model":"m","providers":["a","x"]}]}}"#;
    assert_eq!(
        refusal(failover),
        "failover.routes[0].providers[1]: unknown provider \"x\""
    );
    assert_eq!(
        refusal(r#"{"guardrails":{"routes":[{"path_prefix":"/a","max_messages":0}]}}"#),
        "guardrails.routes[0].max_messages: must be greater than 0"
    );
    assert_eq!(
        refusal(
            r#"{"envoy_jwt":{"payload_key":"p","claims_to_headers":[{"claim":"","header":"x-a"}]}}"#
        ),
        "envoy_jwt.claims_to_headers[0].claim: must not be empty"
    );
    assert_eq!(
        refusal(r#"{"usage":{"max_models":0}}"#),
        "usage.max_models: must be between 1 and 10000"
    );
    assert!(
        refusal(r#"{"masking":{"known_secret_env":["TOLLGATE_TEST_SURELY_UNSET"]}}"#)
            .starts_with("masking.known_secret_env[0]: environment variable")
    );
    // serde errors inside a section are named the same way (the section is read only once).
    assert!(
        refusal(r#"{"jwt":{"providers":[{"name":"a","issuers":"x"}]}}"#)
            .starts_with("jwt.providers[0].issuers: unknown field"),
        "{}",
        refusal(r#"{"jwt":{"providers":[{"name":"a","issuers":"x"}]}}"#)
    );
    assert!(
        refusal(r#"{"failover":{"providers":[{"name":"a","kind":"cohere","cluster":"a"}]}}"#)
            .starts_with("failover.providers[0].kind: unknown variant `cohere`")
    );
    let e = FilterConfig::parse(jwt.as_bytes()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid tollgate config: jwt.providers[0].audiences: must not be empty"
    );
}

#[test]
fn api_key_file_is_refused_at_load_because_the_vm_cannot_read_files() {
    let doc = r#"{"failover":{"providers":[{"name":"a","kind":"openai","cluster":"a"},
        {"name":"b","kind":"openai","cluster":"b","api_key":{"file":"/etc/keys/b"}}]}}"#;
    let e = FilterConfig::parse(doc.as_bytes()).unwrap_err();
    assert_eq!(e.path, "failover.providers[1].api_key.file");
    assert!(e.reason.contains("no file access"), "{e}");
    assert!(e.reason.contains("env"), "{e}");
}

#[test]
fn trailing_data_after_the_document_is_refused() {
    let e = FilterConfig::parse(br#"{} {"stage":"upstream"}"#).unwrap_err();
    assert_eq!(e.path, ".");
    assert!(e.reason.contains("trailing"), "{e}");
}

#[test]
fn the_production_profile_reads_the_typed_sections() {
    let doc = r#"{"environment":"production","envoy_jwt":{"payload_key":"p"},
        "failover":{"providers":[{"name":"a","kind":"openai","cluster":"a","api_key":{"value":"sk-x"}}]}}"#;
    let e = FilterConfig::parse(doc.as_bytes()).unwrap_err();
    assert_eq!(e.path, "environment");
    assert!(
        e.reason
            .contains("failover.providers[0].api_key.value: inline provider key"),
        "{e}"
    );
    // A section serde cannot read is named by its own path, profile or not.
    let doc = r#"{"environment":"production","jwt":{"providers":"corp"}}"#;
    assert_eq!(
        FilterConfig::parse(doc.as_bytes()).unwrap_err().path,
        "jwt.providers"
    );
}

#[test]
fn keys_section_is_validated_with_paths() {
    let c = FilterConfig::parse(b"{}").unwrap();
    assert!(c.keys.is_none(), "keys are off unless configured");
    let e = FilterConfig::parse(
        br#"{"keys":{"inline":[{"id":"a","sha256":"tg-x","owner":"o","team":"t"}]}}"#,
    )
    .unwrap_err();
    assert_eq!(e.path, "keys.inline[0].sha256");
    let e = FilterConfig::parse(br#"{"keys":{"inline":[],"bogus":1}}"#).unwrap_err();
    assert_eq!(e.path, "keys.bogus");
    let hash = "ab".repeat(32);
    let doc = format!(
        r#"{{"keys":{{"inline":[{{"id":"a","sha256":"{hash}","owner":"o","team":"t"}}]}}}}"#
    );
    let c = FilterConfig::parse(doc.as_bytes()).unwrap();
    assert_eq!(c.keys.unwrap().headers.len(), 3);
}
