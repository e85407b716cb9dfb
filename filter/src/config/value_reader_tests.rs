//! The reader against what the filter produced before it (`serde_path_to_error` over
//! serde_json's `Value` deserializer): the same path and message for every kind of refusal, and
//! the same outcome for every mutation of a document that sets every configuration field.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{deserialize_value, ConfigError};
use super::RawConfig;

/// What the filter reported before the reader: `serde_path_to_error` over an owned `Value`.
fn before<T: DeserializeOwned>(value: &Value, prefix: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().to_string();
        let msg = match msg.rfind(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        };
        ConfigError::new(path, msg).under(prefix)
    })
}

/// An outcome as text: the value's `Debug` form when read, the error otherwise.
fn show<T: std::fmt::Debug>(r: Result<T, ConfigError>) -> String {
    match r {
        Ok(t) => format!("ok {t:?}"),
        Err(e) => format!("err {e}"),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Outer {
    name: String,
    count: u8,
    #[serde(default)]
    items: Vec<Inner>,
    #[serde(default)]
    by_name: BTreeMap<String, Inner>,
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    ratio: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Inner {
    id: u32,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum Mode {
    Off,
    Fixed(u32),
    Pair(u32, u32),
    Spec { limit: u32 },
}

/// `Outer` with `name` and `count` set and `extra` merged in.
fn outer(extra: Value) -> Value {
    let mut v = json!({"name": "a", "count": 1});
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v
}

#[test]
fn every_kind_of_refusal_names_the_path_and_reason_it_did_before() {
    let cases: Vec<(Value, &str, &str)> = vec![
        // Missing and unknown fields.
        (json!({"count": 1}), ".", "missing field `name`"),
        (
            outer(json!({"bogus": 1})),
            "bogus",
            "unknown field `bogus`, expected one of `name`, `count`, `items`, `by_name`, `mode`, `ratio`",
        ),
        // Wrong types and out-of-range numbers.
        (outer(json!({"count": "x"})), "count", "invalid type: string \"x\", expected u8"),
        (outer(json!({"count": 300})), "count", "invalid value: integer `300`, expected u8"),
        (outer(json!({"count": -1})), "count", "invalid value: integer `-1`, expected u8"),
        (outer(json!({"count": 1.5})), "count", "invalid type: floating point `1.5`, expected u8"),
        (outer(json!({"count": null})), "count", "invalid type: null, expected u8"),
        (outer(json!({"count": [1]})), "count", "invalid type: sequence, expected u8"),
        (outer(json!({"count": {}})), "count", "invalid type: map, expected u8"),
        (outer(json!({"ratio": "x"})), "ratio", "invalid type: string \"x\", expected f64"),
        (outer(json!({"name": true})), "name", "invalid type: boolean `true`, expected a string"),
        // Arrays: the index, nested members below it.
        (outer(json!({"items": {}})), "items", "invalid type: map, expected a sequence"),
        (
            outer(json!({"items": [{"id": 1}, {"id": "2"}]})),
            "items[1].id",
            "invalid type: string \"2\", expected u32",
        ),
        (outer(json!({"items": [{}]})), "items[0]", "missing field `id`"),
        (
            outer(json!({"items": [{"id": 1, "tags": ["a", "b", 5]}]})),
            "items[0].tags[2]",
            "invalid type: integer `5`, expected a string",
        ),
        // Maps: the key, nested members below it.
        (
            outer(json!({"by_name": {"k": {"id": -4}}})),
            "by_name.k.id",
            "invalid value: integer `-4`, expected u32",
        ),
        (
            outer(json!({"by_name": {"k": {"id": 1, "x": 0}}})),
            "by_name.k.x",
            "unknown field `x`, expected `id` or `tags`",
        ),
        (outer(json!({"by_name": []})), "by_name", "invalid type: sequence, expected a map"),
        // Enums: the variant's name joins the path inside the variant.
        (
            outer(json!({"mode": "bogus"})),
            "mode",
            "unknown variant `bogus`, expected one of `off`, `fixed`, `pair`, `spec`",
        ),
        (
            outer(json!({"mode": {"fixed": "x"}})),
            "mode.fixed",
            "invalid type: string \"x\", expected u32",
        ),
        (
            outer(json!({"mode": "fixed"})),
            "mode.fixed",
            "invalid type: unit variant, expected newtype variant",
        ),
        (
            outer(json!({"mode": {"off": 1}})),
            "mode.off",
            "invalid type: integer `1`, expected unit",
        ),
        (
            outer(json!({"mode": {"fixed": 1, "off": null}})),
            "mode",
            "invalid value: map, expected map with a single key",
        ),
        (
            outer(json!({"mode": {}})),
            "mode",
            "invalid value: map, expected map with a single key",
        ),
        (
            outer(json!({"mode": 5})),
            "mode",
            "invalid type: integer `5`, expected string or map",
        ),
        (
            outer(json!({"mode": {"spec": {"limit": "x"}}})),
            "mode.spec.limit",
            "invalid type: string \"x\", expected u32",
        ),
        (outer(json!({"mode": {"spec": {}}})), "mode.spec", "missing field `limit`"),
        (
            outer(json!({"mode": {"spec": 1}})),
            "mode.spec",
            "invalid type: integer `1`, expected struct variant",
        ),
        (
            outer(json!({"mode": "spec"})),
            "mode.spec",
            "invalid type: unit variant, expected struct variant",
        ),
        (
            outer(json!({"mode": {"pair": [1]}})),
            "mode.pair",
            "invalid length 1, expected tuple variant Mode::Pair with 2 elements",
        ),
        (
            outer(json!({"mode": {"pair": [1, 2, 3]}})),
            "mode.pair",
            "invalid length 3, expected fewer elements in array",
        ),
        (
            outer(json!({"mode": {"pair": [1, "x"]}})),
            "mode.pair[1]",
            "invalid type: string \"x\", expected u32",
        ),
        (
            outer(json!({"mode": {"pair": "x"}})),
            "mode.pair",
            "invalid type: string \"x\", expected tuple variant",
        ),
        // The document itself.
        (json!("x"), ".", "invalid type: string \"x\", expected struct Outer"),
    ];
    for (value, path, reason) in cases {
        let want = ConfigError::new(path, reason);
        let got = deserialize_value::<Outer>(&value, "").unwrap_err();
        assert_eq!(got, want, "reader, for {value}");
        let old = before::<Outer>(&value, "").unwrap_err();
        assert_eq!(old, want, "before the reader, for {value}");
    }
}

#[test]
fn what_reads_reads_as_before() {
    for value in [
        outer(json!({})),
        outer(json!({"mode": null, "ratio": 2})),
        outer(json!({"mode": "off", "ratio": -1})),
        outer(json!({"mode": {"off": null}, "ratio": 0.25})),
        outer(json!({"mode": {"fixed": 7}})),
        outer(json!({"mode": {"pair": [1, 2]}})),
        outer(json!({"mode": {"spec": {"limit": 3}}})),
        outer(json!({"items": [{"id": 1, "tags": ["t"]}, {"id": 2}]})),
        outer(json!({"by_name": {"b": {"id": 2}, "a": {"id": 1}}})),
    ] {
        let now = show(deserialize_value::<Outer>(&value, ""));
        assert!(now.starts_with("ok "), "{value}: {now}");
        assert_eq!(now, show(before::<Outer>(&value, "")), "{value}");
    }
}

/// The one departure from before: serde_json read a struct written as an array of its fields
/// in order; the reader refuses it, at the struct's path, however the array looks.
#[test]
fn a_struct_written_as_an_array_is_refused() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            outer(json!({"items": [[1, ["u"]]]})),
            "items[0]",
            "invalid type: sequence, expected struct Inner",
        ),
        (
            outer(json!({"by_name": {"k": []}})),
            "by_name.k",
            "invalid type: sequence, expected struct Inner",
        ),
        (
            json!(["n", 4, [], {}, null, null]),
            ".",
            "invalid type: sequence, expected struct Outer",
        ),
    ];
    for (value, path, reason) in cases {
        let got = deserialize_value::<Outer>(&value, "").unwrap_err();
        assert_eq!(got, ConfigError::new(path, reason), "for {value}");
    }
    // serde_json read the first one.
    assert!(before::<Outer>(&outer(json!({"items": [[1, ["u"]]]})), "").is_ok());
}

#[test]
fn the_prefix_goes_in_front_of_the_path() {
    let v = outer(json!({"items": [{"id": "x"}]}));
    assert_eq!(
        deserialize_value::<Outer>(&v, "sec").unwrap_err().path,
        "sec.items[0].id"
    );
    let v = json!({"count": 1});
    assert_eq!(
        deserialize_value::<Outer>(&v, "sec").unwrap_err().path,
        "sec"
    );
    let v = outer(json!({"bogus": 1}));
    assert_eq!(
        deserialize_value::<Outer>(&v, "jwt.providers[0]")
            .unwrap_err()
            .path,
        "jwt.providers[0].bogus"
    );
}

/// Where a mutation happens: object members and array elements from the document down.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn at<'a>(doc: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(doc, |v, step| match step {
        Step::Key(k) => &mut v[k.as_str()],
        Step::Index(i) => &mut v[*i],
    })
}

fn all_paths(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                here.push(Step::Key(k.clone()));
                all_paths(child, here, out);
                here.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                here.push(Step::Index(i));
                all_paths(child, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

#[test]
fn every_mutation_of_a_document_with_every_field_reads_as_before() {
    let base: Value = serde_json::from_str(include_str!("fixtures/every_field.json")).unwrap();
    let read = show(deserialize_value::<RawConfig>(&base, ""));
    assert!(read.starts_with("ok "), "the fixture must read: {read}");
    let replacements = [
        json!(null),
        json!(false),
        json!(7),
        json!(70000),
        json!(-3),
        json!(2.5),
        json!("bogus"),
        json!("day"),
        json!(""),
        json!([]),
        json!([null]),
        json!([1, 2]),
        json!(["x", "y"]),
        json!({}),
        json!({"env": "X"}),
        json!({"a": 1, "b": 2}),
    ];
    let mut paths = Vec::new();
    all_paths(&base, &mut Vec::new(), &mut paths);
    let mut docs = Vec::new();
    // (document, path) where an array replaced an object: the one place the reader departs
    // from before, when that object is a struct (`a_struct_written_as_an_array_is_refused`).
    let mut arrays_for_objects: Vec<(usize, String)> = Vec::new();
    for path in &paths {
        for r in &replacements {
            let mut doc = base.clone();
            let node = at(&mut doc, path);
            if r.is_array() && node.is_object() {
                arrays_for_objects.push((docs.len(), path_text(path)));
            }
            *node = r.clone();
            docs.push(doc);
        }
        let mut doc = base.clone();
        match at(&mut doc, path) {
            Value::Object(m) => {
                m.insert("zz_unknown".into(), json!(1));
                docs.push(doc);
                for k in base_keys(&base, path) {
                    let mut doc = base.clone();
                    if let Value::Object(m) = at(&mut doc, path) {
                        m.remove(&k);
                    }
                    docs.push(doc);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                items.push(items[0].clone());
                docs.push(doc);
            }
            _ => {}
        }
    }
    let mut errors = 0;
    let mut differ = Vec::new();
    let mut struct_arrays_refused = 0;
    for (i, doc) in docs.iter().enumerate() {
        let read = deserialize_value::<RawConfig>(doc, "");
        let refused_as_array = matches!(&read, Err(e)
            if e.reason.starts_with("invalid type: sequence, expected struct ")
                && arrays_for_objects.iter().any(|(d, path)| *d == i && *path == e.path));
        let now = show(read);
        let then = show(before::<RawConfig>(doc, ""));
        errors += usize::from(now.starts_with("err "));
        if refused_as_array {
            struct_arrays_refused += 1;
        } else if now != then {
            differ.push(format!("{doc}\n  reader: {now}\n  before: {then}"));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    assert!(struct_arrays_refused > 100, "{struct_arrays_refused}");
    // The mutations reach refusals all over the document, not only a few.
    assert!(
        docs.len() > 3000 && errors > 2000,
        "{} docs, {errors} errors",
        docs.len()
    );
}

/// A mutation's place as the reader names it: `a.b[0].c`, `.` for the document.
fn path_text(path: &[Step]) -> String {
    let mut text = String::new();
    for step in path {
        match step {
            Step::Key(k) if text.is_empty() => text.push_str(k),
            Step::Key(k) => text.push_str(&format!(".{k}")),
            Step::Index(i) => text.push_str(&format!("[{i}]")),
        }
    }
    if text.is_empty() {
        text.push('.');
    }
    text
}

fn base_keys(base: &Value, path: &[Step]) -> Vec<String> {
    let mut doc = base.clone();
    at(&mut doc, path)
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}
