//! Builds `serde_json::Value` objects from members that are already values.
//!
//! `serde_json::json!` passes every member through `serde_json::to_value`: a `Serializer` into
//! `Value`, compiled once per member type (about 4 KB of `.wasm` for the translation and cache
//! code), and a copy of every member that is a `Value` already. [`object`] moves the members in.
//! The result is the same `Value` (`Map` is ordered by key either way). Pure.

use serde_json::{Map, Value};

/// An object of `members` (a later duplicate key replaces an earlier one, as in `json!`).
pub fn object<const N: usize>(members: [(&str, Value); N]) -> Value {
    let mut map = Map::new();
    for (key, value) in members {
        map.insert(key.to_string(), value);
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_what_json_builds() {
        let text = "hi".to_string();
        let nested = json!({"a": [1, 2], "b": null});
        assert_eq!(
            object([
                ("text", Value::from(text.as_str())),
                ("n", Value::from(7u64)),
                ("none", Value::from(None::<String>)),
                ("some", Value::from(Some("x".to_string()))),
                ("nested", nested.clone()),
                ("n", Value::from(8u64)),
            ]),
            json!({"text": text, "n": 7u64, "none": None::<String>, "some": Some("x"), "nested": nested, "n": 8u64})
        );
        assert_eq!(object([]), json!({}));
    }
}
