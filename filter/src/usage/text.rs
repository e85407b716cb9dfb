//! The one definition of "the text of a message", shared by the prompt-size estimate
//! ([`super::request`]) and the request guardrails' message limits ([`super::shape`]).
//!
//! The text of a JSON value, in characters (counted without copying):
//! * a string: its characters;
//! * an array: the text of its elements (a list of content parts, of messages, of prompts);
//! * an object: the text under its `content`, `parts` and `text` members (an OpenAI or Ollama
//!   message, an Anthropic message or content block, a Gemini content and its parts, a
//!   Responses input item); every other member — `role`, `type`, ids, tool-call arguments,
//!   images, audio, URLs — is skipped unread;
//! * anything else: nothing.
//!
//! So `{"role":"user","content":[{"type":"text","text":"abc"},{"type":"image_url",…}]}` has
//! 3 characters of text, and `{"parts":[{"text":"hi"}]}` has 2. Depth is bounded by
//! serde_json's recursion limit. This module only measures; it decides nothing.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// Characters of text in one JSON value (see the module documentation for what counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageText(pub u64);

impl MessageText {
    /// The text of a JSON document; `None` when it is not JSON.
    pub fn of_json(json: &[u8]) -> Option<u64> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let MessageText(n) = MessageText::deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(n)
    }
}

impl<'de> Deserialize<'de> for MessageText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        TextCounter::MESSAGE.deserialize(d).map(MessageText)
    }
}

/// Counts the characters of text in one JSON value without copying it: a string counts its
/// characters, an array sums its elements, an object sums the values of its text `members`
/// (every other member is skipped unread), anything else counts zero.
///
/// The one text-counting visitor: [`TextCounter::MESSAGE`] is a request message's text (the
/// module documentation), and `super::lenient::TextLen` counts the generated text of provider
/// responses with a wider member list.
#[derive(Clone, Copy)]
pub(crate) struct TextCounter {
    /// Object members whose values hold text.
    members: &'static [&'static str],
}

impl TextCounter {
    /// A request message's text: the `content`, `parts` and `text` members.
    pub(crate) const MESSAGE: TextCounter = TextCounter::new(&["content", "parts", "text"]);

    /// A counter descending into the object members named in `members`.
    pub(crate) const fn new(members: &'static [&'static str]) -> TextCounter {
        TextCounter { members }
    }
}

impl<'de> DeserializeSeed<'de> for TextCounter {
    type Value = u64;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TextCounter {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        Ok(v.chars().count() as u64)
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
        while let Some(is_text) = map.next_key_seed(TextMember(self.members))? {
            if is_text {
                total = total.saturating_add(map.next_value_seed(self)?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(total)
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
        d.deserialize_any(self)
    }
}

/// Reads an object member name: true when it is one of the text members.
struct TextMember(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for TextMember {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for TextMember {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(self.0.contains(&v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(json: &str) -> u64 {
        MessageText::of_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn string_content_parts_and_gemini_parts_count_their_characters_only() {
        assert_eq!(text(r#"{"role":"user","content":"héllo"}"#), 5);
        assert_eq!(
            text(
                r#"{"role":"user","content":[{"type":"text","text":"abc"},{"type":"image_url","image_url":{"url":"data:xxxxxxxx"}},"de"]}"#
            ),
            5
        );
        assert_eq!(
            text(r#"{"role":"model","parts":[{"text":"abc"},{"inlineData":{"data":"xxxx"}}]}"#),
            3
        );
        assert_eq!(
            text(
                r#"{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"ok"}]}"#
            ),
            2
        );
    }

    #[test]
    fn roles_ids_and_tool_call_arguments_are_not_text() {
        assert_eq!(
            text(
                r#"{"role":"assistant","content":null,"tool_calls":[{"id":"c","function":{"name":"f","arguments":"{}"}}]}"#
            ),
            0
        );
        assert_eq!(text("42"), 0);
        assert_eq!(text("null"), 0);
        assert_eq!(MessageText::of_json(b"{not json"), None);
    }
}
