//! Lenient, allocation-free JSON value readers shared by the response and request extractors.
//!
//! Provider payloads are read through small serde types that accept whatever shape arrives:
//! a counter that is a string or an object reads as "absent" instead of failing the whole event,
//! and generated text is measured (in characters) without being copied.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// A token counter: a non-negative number, or absent for null, negative or non-numeric values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count(pub Option<u64>);

impl Count {
    /// The value, or zero when absent.
    pub fn or_zero(self) -> u64 {
        self.0.unwrap_or(0)
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CountVisitor)
    }
}

struct CountVisitor;

impl<'de> Visitor<'de> for CountVisitor {
    type Value = Count;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a token count")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
        Ok(Count(Some(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
        Ok(Count(u64::try_from(v).ok()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Count, E> {
        // `as` saturates for floats; NaN and negatives read as absent.
        Ok(Count((v.is_finite() && v >= 0.0).then_some(v as u64)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Count, E> {
        Ok(Count(v.trim().parse().ok()))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Count, E> {
        Ok(Count(None))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Count, E> {
        Ok(Count(None))
    }
    fn visit_none<E: de::Error>(self) -> Result<Count, E> {
        Ok(Count(None))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Count, D::Error> {
        Count::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Count(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Count(None))
    }
}

/// A boolean flag; anything but JSON `true` reads as false.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flag(pub Option<bool>);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FlagVisitor)
    }
}

struct FlagVisitor;

impl<'de> Visitor<'de> for FlagVisitor {
    type Value = Flag;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a boolean")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flag, E> {
        Ok(Flag(Some(v)))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Flag, E> {
        Ok(Flag(None))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Flag, E> {
        Ok(Flag(None))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Flag, E> {
        Ok(Flag(None))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Flag, E> {
        Ok(Flag(None))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Flag, E> {
        Ok(Flag(None))
    }
    fn visit_none<E: de::Error>(self) -> Result<Flag, E> {
        Ok(Flag(None))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Flag, D::Error> {
        Flag::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Flag, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Flag(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Flag, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Flag(None))
    }
}

/// A short string (model name, finish reason, event type); non-strings read as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text(pub Option<String>);

impl Text {
    /// The string, if one was present.
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
        Ok(Text(Some(v.to_string())))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Text, E> {
        Ok(Text(None))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Text, E> {
        Ok(Text(None))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Text, E> {
        Ok(Text(None))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Text, E> {
        Ok(Text(None))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Text, E> {
        Ok(Text(None))
    }
    fn visit_none<E: de::Error>(self) -> Result<Text, E> {
        Ok(Text(None))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Text, D::Error> {
        Text::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Text(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Text(None))
    }
}

/// Keys under which generated text lives in the providers' response payloads. [`TextLen`]
/// descends only into these keys of an object. (A request message's text is defined once, in
/// [`super::text`].)
const TEXT_KEYS: &[&str] = &[
    "content",
    "text",
    "reasoning_content",
    "reasoning",
    "refusal",
    "thinking",
    "partial_json",
    "tool_calls",
    "function",
    "function_call",
    "arguments",
    "name",
    "parts",
    "output",
    "summary",
    "message",
    "messages",
    "delta",
    "response",
    "prompt",
    "input",
    "system",
    "instructions",
    "contents",
    "systemInstruction",
    "system_instruction",
];

/// The number of characters of text found in a JSON value, without copying it.
///
/// A string counts its characters; an array sums its elements; an object sums the values under
/// the text keys (content, text, reasoning, tool-call arguments, parts, ...). Everything else
/// counts zero. Used to estimate tokens when a provider reports none, and to notice the first
/// generated token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextLen(pub u64);

impl<'de> Deserialize<'de> for TextLen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        TextLenSeed.deserialize(d).map(TextLen)
    }
}

/// Counts text characters under the text keys.
#[derive(Clone, Copy)]
struct TextLenSeed;

impl<'de> DeserializeSeed<'de> for TextLenSeed {
    type Value = u64;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(self)
    }
}

/// Whether a map key selects its value for counting.
struct KeySelected;

impl<'de> DeserializeSeed<'de> for KeySelected {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySelected {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(TEXT_KEYS.contains(&v))
    }
}

impl<'de> Visitor<'de> for TextLenSeed {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        Ok(v.chars().count() as u64)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_unit<E: de::Error>(self) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_none<E: de::Error>(self) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        self.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut total = 0u64;
        while let Some(n) = seq.next_element_seed(self)? {
            total = total.saturating_add(n);
        }
        Ok(total)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
        let mut total = 0u64;
        while let Some(selected) = map.next_key_seed(KeySelected)? {
            if selected {
                total = total.saturating_add(map.next_value_seed(self)?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn count_is_lenient() {
        let v: Vec<Count> =
            serde_json::from_str(r#"[1, -1, 2.5, "7", null, {"a":1}, [1], true]"#).unwrap();
        let got: Vec<Option<u64>> = v.into_iter().map(|c| c.0).collect();
        assert_eq!(
            got,
            vec![Some(1), None, Some(2), Some(7), None, None, None, None]
        );
    }

    #[test]
    fn text_len_counts_text_keys_only() {
        let delta = r#"{"role":"assistant","content":"héllo","tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]}"#;
        let n: TextLen = serde_json::from_str(delta).unwrap();
        assert_eq!(n.0, 5 + 1 + 7);
        let n: TextLen = serde_json::from_str("null").unwrap();
        assert_eq!(n.0, 0);
    }
}
