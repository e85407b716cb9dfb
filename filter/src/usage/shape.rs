//! The structure of an LLM request body as the guardrails need it — which top-level fields are
//! there, how many messages, how long the longest one — read in the same lenient serde pass that
//! reads the model and output limit (see [`super::request`]), so no body is parsed twice.
//!
//! Message text is measured in characters without being copied: a `content` string, or the
//! `text` of every part of an array `content` (OpenAI content parts, Anthropic content blocks),
//! or the `text` of Gemini `parts`.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// The shape of a request body, for request guardrails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyShape {
    /// The body is a JSON object (false: empty, not JSON, or another JSON value).
    pub json_object: bool,
    /// `model` is a non-empty string.
    pub model: bool,
    /// `messages` (OpenAI chat, Anthropic, Ollama chat), when present and not null.
    pub messages: Option<MessageList>,
    /// `contents` (Gemini), when present and not null.
    pub contents: Option<MessageList>,
    /// `input` (embeddings, Responses), when present and not null.
    pub input: Option<InputField>,
    /// `max_tokens` is a non-negative number.
    pub max_tokens: bool,
}

/// A `messages` / `contents` value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageList {
    /// The value is an array (false: some other JSON type).
    pub is_array: bool,
    /// Number of elements.
    pub count: u64,
    /// Characters of text in the longest element.
    pub longest_chars: u64,
    /// Index of the longest element.
    pub longest_index: u64,
}

/// An `input` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputField {
    /// An empty string or an empty array.
    Empty,
    /// Anything else.
    Present,
}

impl<'de> Deserialize<'de> for MessageList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MessageListVisitor)
    }
}

struct MessageListVisitor;

impl<'de> Visitor<'de> for MessageListVisitor {
    type Value = MessageList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of messages")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MessageList, A::Error> {
        let mut list = MessageList {
            is_array: true,
            ..MessageList::default()
        };
        while let Some(MessageChars(chars)) = seq.next_element()? {
            if chars > list.longest_chars || list.count == 0 {
                list.longest_chars = chars;
                list.longest_index = list.count;
            }
            list.count = list.count.saturating_add(1);
        }
        Ok(list)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MessageList, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(MessageList::default())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<MessageList, E> {
        Ok(MessageList::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<MessageList, E> {
        Ok(MessageList::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<MessageList, E> {
        Ok(MessageList::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<MessageList, E> {
        Ok(MessageList::default())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<MessageList, E> {
        Ok(MessageList::default())
    }
}

/// Characters of text in one message: its `content` or Gemini `parts`.
struct MessageChars(u64);

impl<'de> Deserialize<'de> for MessageChars {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MessageCharsVisitor)
    }
}

struct MessageCharsVisitor;

impl<'de> Visitor<'de> for MessageCharsVisitor {
    type Value = MessageChars;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MessageChars, A::Error> {
        let mut total = 0u64;
        while let Some(key) = map.next_key::<MessageKey>()? {
            if key.0 {
                total = total.saturating_add(map.next_value_seed(ContentChars { top: true })?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(MessageChars(total))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MessageChars, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(MessageChars(0))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<MessageChars, E> {
        Ok(MessageChars(0))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<MessageChars, E> {
        Ok(MessageChars(0))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<MessageChars, E> {
        Ok(MessageChars(0))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<MessageChars, E> {
        Ok(MessageChars(0))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<MessageChars, E> {
        Ok(MessageChars(0))
    }
    fn visit_unit<E: de::Error>(self) -> Result<MessageChars, E> {
        Ok(MessageChars(0))
    }
}

/// A message key: true for `content` and `parts`, whose text is measured.
struct MessageKey(bool);

impl<'de> Deserialize<'de> for MessageKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(MessageKeyVisitor)
    }
}

struct MessageKeyVisitor;

impl<'de> Visitor<'de> for MessageKeyVisitor {
    type Value = MessageKey;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<MessageKey, E> {
        Ok(MessageKey(v == "content" || v == "parts"))
    }
}

/// Characters of a `content` value: a string, or (at the top) an array of strings and parts
/// whose `text` is a string.
#[derive(Clone, Copy)]
struct ContentChars {
    top: bool,
}

impl<'de> DeserializeSeed<'de> for ContentChars {
    type Value = u64;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ContentChars {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("message content")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        Ok(v.chars().count() as u64)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut total = 0u64;
        if self.top {
            while let Some(n) = seq.next_element_seed(ContentChars { top: false })? {
                total = total.saturating_add(n);
            }
        } else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
        }
        Ok(total)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
        let mut total = 0u64;
        while let Some(key) = map.next_key::<TextKey>()? {
            if key.0 && !self.top {
                total = total.saturating_add(map.next_value_seed(ContentChars { top: false })?);
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
}

/// A part key: true for `text`.
struct TextKey(bool);

impl<'de> Deserialize<'de> for TextKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TextKeyVisitor)
    }
}

struct TextKeyVisitor;

impl<'de> Visitor<'de> for TextKeyVisitor {
    type Value = TextKey;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<TextKey, E> {
        Ok(TextKey(v == "text"))
    }
}

impl<'de> Deserialize<'de> for InputField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(InputVisitor)
    }
}

struct InputVisitor;

impl<'de> Visitor<'de> for InputVisitor {
    type Value = InputField;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an input value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<InputField, E> {
        Ok(if v.is_empty() {
            InputField::Empty
        } else {
            InputField::Present
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<InputField, A::Error> {
        let mut any = false;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            any = true;
        }
        Ok(if any {
            InputField::Present
        } else {
            InputField::Empty
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<InputField, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(InputField::Present)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<InputField, E> {
        Ok(InputField::Present)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<InputField, E> {
        Ok(InputField::Present)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<InputField, E> {
        Ok(InputField::Present)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<InputField, E> {
        Ok(InputField::Present)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_list_counts_and_measures_string_and_part_content() {
        let json = r#"[{"role":"system","content":"héllo"},
            {"role":"user","content":[{"type":"text","text":"abcdefgh"},{"type":"image_url","image_url":{"url":"data:xxxxxxxxxxxxxxxxxxxxxxxx"}},{"type":"text","text":"ij"}]},
            {"role":"model","parts":[{"text":"abc"}]},
            {"role":"assistant","content":null,"tool_calls":[{"function":{"arguments":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}]}]"#;
        let list: MessageList = serde_json::from_str(json).unwrap();
        assert!(list.is_array);
        assert_eq!(list.count, 4);
        assert_eq!(list.longest_chars, 10);
        assert_eq!(list.longest_index, 1);
    }

    #[test]
    fn non_array_messages_are_flagged() {
        let list: MessageList = serde_json::from_str(r#"{"role":"user"}"#).unwrap();
        assert!(!list.is_array);
        let list: MessageList = serde_json::from_str(r#""hi""#).unwrap();
        assert!(!list.is_array);
        let list: MessageList = serde_json::from_str("[]").unwrap();
        assert!(list.is_array);
        assert_eq!(list.count, 0);
    }

    #[test]
    fn input_empty_and_present() {
        let cases = [
            (r#""""#, InputField::Empty),
            ("[]", InputField::Empty),
            (r#""text""#, InputField::Present),
            ("[1,2]", InputField::Present),
            (r#"{"a":1}"#, InputField::Present),
        ];
        for (json, want) in cases {
            let got: InputField = serde_json::from_str(json).unwrap();
            assert_eq!(got, want, "{json}");
        }
    }
}
