//! Canonical JSON bytes, so two requests that differ only in key order, whitespace or number
//! spelling (`0`, `0.0`, `-0`) hash to the same cache key.
//!
//! Rules: object keys sorted by their UTF-8 bytes, no whitespace, strings escaped as
//! `serde_json` escapes them, a number with an integral value within ±2^53 written as an integer,
//! any other number in `serde_json`'s shortest round-trip form. Depth is bounded by the parser
//! that produced the value (`serde_json` refuses more than 128 levels).

use serde_json::{Number, Value};

/// Largest integer every JSON implementation represents exactly (2^53).
const EXACT_INTEGER_LIMIT: f64 = 9_007_199_254_740_992.0;

/// Appends the canonical form of `value` to `out`.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        // serde_json's `Map` is a `BTreeMap<String, _>` (its `preserve_order` feature is off):
        // it iterates in key order, which for `String` is byte order. `keys_sort_by_bytes`
        // fails if that ever changes.
        Value::Object(map) => {
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
    }
}

/// The canonical bytes of `value`.
pub fn canonical_bytes(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // Serialising a `&str` cannot fail; an error would leave the string out, and the key would
    // then still be deterministic for the same input.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_number(n: &Number, out: &mut Vec<u8>) {
    if let Some(i) = n.as_i64() {
        out.extend_from_slice(i.to_string().as_bytes());
    } else if let Some(u) = n.as_u64() {
        out.extend_from_slice(u.to_string().as_bytes());
    } else if let Some(f) = n.as_f64() {
        if f.fract() == 0.0 && f.abs() <= EXACT_INTEGER_LIMIT {
            // Integral and exact: `0.0`, `-0.0` and `1e2` read as `0`, `0` and `100`.
            out.extend_from_slice(format!("{}", f as i64).as_bytes());
        } else {
            let _ = serde_json::to_writer(&mut *out, &f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(text: &str) -> String {
        let value: Value = serde_json::from_str(text).unwrap();
        String::from_utf8(canonical_bytes(&value)).unwrap()
    }

    #[test]
    fn key_order_and_whitespace_do_not_matter() {
        let a = canon(r#"{"b": 1, "a": {"y": [1, 2], "x": "s"}}"#);
        let b = canon("{\n  \"a\":{\"x\":\"s\",\"y\":[1,2]},\"b\":1}");
        assert_eq!(a, b);
        assert_eq!(a, r#"{"a":{"x":"s","y":[1,2]},"b":1}"#);
    }

    #[test]
    fn array_order_matters() {
        assert_ne!(canon("[1,2]"), canon("[2,1]"));
    }

    #[test]
    fn integral_numbers_have_one_spelling() {
        assert_eq!(canon("0"), canon("0.0"));
        assert_eq!(canon("0"), canon("-0.0"));
        assert_eq!(canon("100"), canon("1e2"));
        assert_eq!(canon("0.7"), "0.7");
        assert_ne!(canon("0.7"), canon("0.70000001"));
        assert_eq!(canon("-3"), "-3");
        assert_eq!(canon("18446744073709551615"), "18446744073709551615");
    }

    #[test]
    fn strings_are_escaped_once_and_unicode_is_kept() {
        assert_eq!(canon(r#""a\"b\u00e9\n""#), "\"a\\\"bé\\n\"");
        // The same text spelled with an escape or literally is the same string.
        assert_eq!(canon(r#""\u00e9""#), canon("\"é\""));
    }

    #[test]
    fn keys_sort_by_bytes() {
        assert_eq!(canon(r#"{"b":1,"B":2,"a":3}"#), r#"{"B":2,"a":3,"b":1}"#);
        // Multi-byte UTF-8 after ASCII, a prefix before its extensions, nested objects too.
        assert_eq!(
            canon(r#"{"é":1,"z":{"ab":2,"a":3,"":4},"a~":5,"a":6}"#),
            r#"{"a":6,"a~":5,"z":{"":4,"a":3,"ab":2},"é":1}"#
        );
    }
}
