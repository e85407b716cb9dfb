//! Lenient, allocation-free JSON value readers shared by the response and request extractors.
//!
//! Provider payloads are read through small serde types that accept whatever shape arrives:
//! a counter that is a string or an object reads as "absent" instead of failing the whole event,
//! and generated text is measured (in characters) without being copied.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::marker::PhantomData;

use super::text::TextCounter;

/// A value read leniently: each JSON shape it names reads as something, every other shape
/// (including arrays and objects, skipped unread) reads as the absent [`Default`].
trait Lenient: Sized + Default {
    /// What the value should be, for error messages.
    const EXPECTING: &'static str;
    fn from_u64(_: u64) -> Self {
        Self::default()
    }
    fn from_i64(_: i64) -> Self {
        Self::default()
    }
    fn from_f64(_: f64) -> Self {
        Self::default()
    }
    fn from_str(_: &str) -> Self {
        Self::default()
    }
    fn from_bool(_: bool) -> Self {
        Self::default()
    }
}

/// The one visitor of every [`Lenient`] value.
struct LenientVisitor<T>(PhantomData<T>);

/// Reads a [`Lenient`] value from `d`.
fn lenient<'de, T: Lenient + Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(LenientVisitor(PhantomData))
}

impl<'de, T: Lenient + Deserialize<'de>> Visitor<'de> for LenientVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Ok(T::from_u64(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Ok(T::from_i64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        Ok(T::from_f64(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok(T::from_str(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        Ok(T::from_bool(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        T::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(T::default())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(T::default())
    }
}

/// A token counter: a non-negative number, or absent for null, negative or non-numeric values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count(pub Option<u64>);

impl Count {
    /// The value, or zero when absent.
    pub fn or_zero(self) -> u64 {
        self.0.unwrap_or(0)
    }
}

impl Lenient for Count {
    const EXPECTING: &'static str = "a token count";
    fn from_u64(v: u64) -> Self {
        Count(Some(v))
    }
    fn from_i64(v: i64) -> Self {
        Count(u64::try_from(v).ok())
    }
    fn from_f64(v: f64) -> Self {
        // `as` saturates for floats; NaN and negatives read as absent.
        Count((v.is_finite() && v >= 0.0).then_some(v as u64))
    }
    fn from_str(v: &str) -> Self {
        Count(v.trim().parse().ok())
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient(d)
    }
}

/// A boolean flag; anything but a JSON boolean reads as absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flag(pub Option<bool>);

impl Lenient for Flag {
    const EXPECTING: &'static str = "a boolean";
    fn from_bool(v: bool) -> Self {
        Flag(Some(v))
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient(d)
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

impl Lenient for Text {
    const EXPECTING: &'static str = "a string";
    fn from_str(v: &str) -> Self {
        Text(Some(v.to_string()))
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient(d)
    }
}

/// Keys under which generated text lives in the providers' response payloads: [`TextLen`]
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
        TextCounter::new(TEXT_KEYS).deserialize(d).map(TextLen)
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
    fn flag_and_text_read_other_shapes_as_absent() {
        let flags: Vec<Flag> =
            serde_json::from_str(r#"[true, false, 1, "true", null, {"a":1}, [true]]"#).unwrap();
        let got: Vec<Option<bool>> = flags.into_iter().map(|f| f.0).collect();
        assert_eq!(
            got,
            vec![Some(true), Some(false), None, None, None, None, None]
        );
        let texts: Vec<Text> =
            serde_json::from_str(r#"["stop", 1, true, null, {"a":"b"}, ["c"]]"#).unwrap();
        let got: Vec<Option<&str>> = texts.iter().map(Text::as_deref).collect();
        assert_eq!(got, vec![Some("stop"), None, None, None, None, None]);
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
