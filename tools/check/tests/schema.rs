//! The JSON Schema of the configuration and the generated field reference: up to date, every
//! field documented, and the configurations this repository ships valid against it.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tollgate_check::bootstrap::Bootstrap;
use tollgate_check::schema::{
    config_schema, fields, reference_markdown, REFERENCE_BEGIN, REFERENCE_END,
};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_shipped_schema_is_up_to_date() {
    let shipped: Value =
        serde_json::from_str(&read(&repo_root().join("docs/tollgate.schema.json"))).unwrap();
    assert!(
        shipped == config_schema(),
        "docs/tollgate.schema.json is stale: run `make schema`"
    );
}

#[test]
fn the_field_reference_in_the_docs_is_up_to_date() {
    let page = read(&repo_root().join("docs/configuration.md"));
    let start = page
        .find(REFERENCE_BEGIN)
        .expect("generated section in configuration.md");
    let end = page
        .find(REFERENCE_END)
        .expect("end of the generated section")
        + REFERENCE_END.len();
    assert!(
        page[start..end] == reference_markdown(&config_schema()),
        "the field reference in docs/configuration.md is stale: run `make schema`"
    );
}

#[test]
fn every_field_has_documentation() {
    let all = fields(&config_schema());
    assert!(
        all.len() > 100,
        "expected the whole configuration, got {} fields",
        all.len()
    );
    let undocumented: Vec<&str> = all
        .iter()
        .filter(|f| f.description.trim().is_empty())
        .map(|f| f.path.as_str())
        .collect();
    assert!(
        undocumented.is_empty(),
        "config fields without a doc comment (they become the schema's descriptions and the \
         reference in docs/configuration.md): {undocumented:?}"
    );
    for path in [
        "correlation.max_length",
        "failover.providers[].cluster",
        "failover.providers[].api_key.env",
        "failover.routes[].cluster",
        "jwt.providers[].remote_jwks.cluster",
        "usage.prices.<key>.input_per_million",
        "stage",
    ] {
        assert!(
            all.iter().any(|f| f.path == path),
            "{path} missing from the reference"
        );
    }
}

/// Unknown properties (the schema forbids them, like the filter) found in `json` against
/// `node`: the part of JSON Schema the configuration uses (`$ref`, `properties`,
/// `additionalProperties`, `items`, `anyOf`, `oneOf` of objects told apart by required keys).
fn unknown_properties(root: &Value, node: &Value, json: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(r) = node.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/");
        return unknown_properties(root, &root["$defs"][name], json, path, out);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = node.get(key).and_then(Value::as_array) {
            let fits = |alt: &Value| {
                let alt = match alt.get("$ref").and_then(Value::as_str) {
                    Some(r) => &root["$defs"][r.trim_start_matches("#/$defs/")],
                    None => alt,
                };
                match (json, alt["type"].as_str()) {
                    (Value::Null, _) => alt["type"] == "null",
                    (Value::Object(o), Some("object")) => {
                        alt["required"].as_array().is_none_or(|req| {
                            req.iter()
                                .all(|k| k.as_str().is_some_and(|k| o.contains_key(k)))
                        })
                    }
                    (Value::Object(_), _) => alt.get("properties").is_some(),
                    _ => alt["type"] != "null",
                }
            };
            if let Some(alt) = alts.iter().find(|a| fits(a)) {
                unknown_properties(root, alt, json, path, out);
            }
            return;
        }
    }
    match json {
        Value::Object(map) => {
            let props = node.get("properties").and_then(Value::as_object);
            for (k, v) in map {
                let here = format!("{path}.{k}");
                match props.and_then(|p| p.get(k)) {
                    Some(sub) => unknown_properties(root, sub, v, &here, out),
                    None => match &node["additionalProperties"] {
                        Value::Bool(false) => out.push(here),
                        Value::Object(_) => {
                            unknown_properties(root, &node["additionalProperties"], v, &here, out)
                        }
                        _ => {}
                    },
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                unknown_properties(root, &node["items"], item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_schema_refuses_an_unknown_field_like_the_filter() {
    let schema = config_schema();
    let mut out = Vec::new();
    let doc: Value = serde_json::from_str(
        r#"{"failover":{"providers":[{"name":"a","kind":"openai","cluster":"a","clutser":"b"}]}}"#,
    )
    .unwrap();
    unknown_properties(&schema, &schema, &doc, "", &mut out);
    assert_eq!(out, vec![".failover.providers[0].clutser".to_string()]);
    assert!(tollgate::config::FilterConfig::parse(doc.to_string().as_bytes()).is_err());
}

#[test]
fn every_shipped_plugin_config_is_valid_against_the_schema() {
    let schema = config_schema();
    let mut checked = 0;
    for config in [
        "envoy/demo/envoy.yaml",
        "envoy/production/envoy.yaml",
        "tools/check/tests/fixtures/walked.yaml",
    ] {
        let text = read(&repo_root().join(config));
        let docs = tollgate_check::yaml::load(&text).unwrap();
        let b = Bootstrap::read(&docs[0]);
        for filter in &b.filters {
            let (json, _) = filter.plugin_json();
            let json: Value = serde_json::from_str(&json).unwrap();
            let mut out = Vec::new();
            unknown_properties(&schema, &schema, &json, "", &mut out);
            assert!(
                out.is_empty(),
                "{config} ({}): not in the schema: {out:?}",
                filter.label
            );
            checked += 1;
        }
    }
    assert!(checked >= 4);
}
