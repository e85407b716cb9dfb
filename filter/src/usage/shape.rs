//! The structure of an LLM request body as the guardrails need it — which top-level fields are
//! there, how many messages, how long the longest one — read in the same lenient serde pass that
//! reads the model and output limit (see [`super::request`]), so no body is parsed twice.
//!
//! Message text is measured in characters without being copied, by the one definition in
//! [`super::text`] (which the prompt-size estimate uses too).

use super::text::{MessageText, TextCounter};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
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
    /// Characters of text in all elements (the prompt-size estimate's share).
    pub total_chars: u64,
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
        while let Some(MessageText(chars)) = seq.next_element()? {
            list.total_chars = list.total_chars.saturating_add(chars);
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

/// An `input` value as the request reader sees it: whether it is empty, and its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InputValue {
    /// Empty or present, for the guardrails.
    pub(crate) field: InputField,
    /// Characters of text (see [`super::text`]), for the prompt-size estimate.
    pub(crate) chars: u64,
}

impl<'de> Deserialize<'de> for InputValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(InputVisitor)
    }
}

impl<'de> Deserialize<'de> for InputField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        InputValue::deserialize(d).map(|v| v.field)
    }
}

struct InputVisitor;

impl InputVisitor {
    fn present(chars: u64) -> InputValue {
        InputValue {
            field: InputField::Present,
            chars,
        }
    }
}

impl<'de> Visitor<'de> for InputVisitor {
    type Value = InputValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an input value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<InputValue, E> {
        let chars = TextCounter::MESSAGE.visit_str(v)?;
        Ok(InputValue {
            field: if v.is_empty() {
                InputField::Empty
            } else {
                InputField::Present
            },
            chars,
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<InputValue, A::Error> {
        let mut any = false;
        let mut chars = 0u64;
        while let Some(MessageText(n)) = seq.next_element()? {
            any = true;
            chars = chars.saturating_add(n);
        }
        Ok(InputValue {
            field: if any {
                InputField::Present
            } else {
                InputField::Empty
            },
            chars,
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<InputValue, A::Error> {
        TextCounter::MESSAGE.visit_map(map).map(Self::present)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<InputValue, E> {
        Ok(Self::present(0))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<InputValue, E> {
        Ok(Self::present(0))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<InputValue, E> {
        Ok(Self::present(0))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<InputValue, E> {
        Ok(Self::present(0))
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
        assert_eq!(list.total_chars, 5 + 10 + 3);
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
