//! One stored answer and its byte encoding in a shared-data slot.
//!
//! A slot value is `TGC1`, the full key, the generation the set index gave the slot, the time it
//! was stored, the status, format and usage, three length-prefixed strings (provider, model,
//! content type) and the body. The key and generation let a reader tell the entry the index
//! points at from one a racing writer left behind (see `store.rs`).

use super::key::CacheKey;
use crate::usage::Usage;

const MAGIC: &[u8; 4] = b"TGC1";

/// How the stored body is given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryFormat {
    /// A `chat.completion` object (assembled from a stream, or the JSON answer): served as JSON
    /// or replayed as a `chat.completion.chunk` stream.
    OpenAiChat,
    /// Any other JSON answer, served byte for byte.
    Verbatim,
}

impl EntryFormat {
    fn code(self) -> u8 {
        match self {
            EntryFormat::OpenAiChat => 1,
            EntryFormat::Verbatim => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(EntryFormat::OpenAiChat),
            2 => Some(EntryFormat::Verbatim),
            _ => None,
        }
    }
}

/// A stored answer: exactly what the client received (translated and masked), and what is
/// needed to account a hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// How the body is given back.
    pub format: EntryFormat,
    /// The 2xx status the client received.
    pub status: u16,
    /// The provider that answered (for the hit's log line).
    pub provider: String,
    /// The model the answer named.
    pub model: String,
    /// The response content type (`application/json` for assembled streams).
    pub content_type: String,
    /// The usage of the original request, when known.
    pub usage: Option<Usage>,
    /// When it was stored, ms since the epoch.
    pub stored_at_ms: u64,
    /// The body.
    pub body: Vec<u8>,
}

/// An entry read from a slot, with the identity it was stored under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotContent {
    /// The key it was stored for.
    pub key: CacheKey,
    /// The generation the set index gave its slot.
    pub generation: u32,
    /// The entry.
    pub entry: Entry,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let len = bytes.len().min(usize::from(u16::MAX));
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(bytes.get(..len).unwrap_or_default());
}

/// Encodes an entry for a slot.
pub fn encode(key: &CacheKey, generation: u32, entry: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(entry));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&key.0);
    out.extend_from_slice(&generation.to_be_bytes());
    out.extend_from_slice(&entry.stored_at_ms.to_be_bytes());
    out.extend_from_slice(&entry.status.to_be_bytes());
    out.push(entry.format.code());
    out.push(u8::from(entry.usage.is_some()));
    let u = entry.usage.unwrap_or_default();
    for n in [
        u.input_tokens,
        u.output_tokens,
        u.cached_input_tokens,
        u.cache_creation_input_tokens,
        u.reasoning_tokens,
        u.total_tokens,
    ] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    put_str(&mut out, &entry.provider);
    put_str(&mut out, &entry.model);
    put_str(&mut out, &entry.content_type);
    out.extend_from_slice(&entry.body);
    out
}

/// The encoded size of an entry (what it costs in shared data and against the byte bound).
pub fn encoded_len(entry: &Entry) -> usize {
    let strings = [&entry.provider, &entry.model, &entry.content_type]
        .iter()
        .map(|s| 2 + s.len().min(usize::from(u16::MAX)))
        .sum::<usize>();
    4 + 32 + 4 + 8 + 2 + 1 + 1 + 6 * 8 + strings + entry.body.len()
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }

    fn string(&mut self) -> Option<String> {
        let len = usize::from(self.u16()?);
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

/// Decodes a slot value; `None` for an empty slot or anything malformed.
pub fn decode(bytes: &[u8]) -> Option<SlotContent> {
    let mut r = Reader(bytes);
    if r.take(4)? != MAGIC {
        return None;
    }
    let key = CacheKey(r.array()?);
    let generation = r.u32()?;
    let stored_at_ms = r.u64()?;
    let status = r.u16()?;
    let format = EntryFormat::from_code(r.u8()?)?;
    let has_usage = r.u8()? == 1;
    let mut n = [0u64; 6];
    for slot in n.iter_mut() {
        *slot = r.u64()?;
    }
    let [input_tokens, output_tokens, cached_input_tokens, cache_creation_input_tokens, reasoning_tokens, total_tokens] =
        n;
    let usage = has_usage.then_some(Usage {
        input_tokens,
        output_tokens,
        cached_input_tokens,
        cache_creation_input_tokens,
        reasoning_tokens,
        total_tokens,
    });
    let provider = r.string()?;
    let model = r.string()?;
    let content_type = r.string()?;
    Some(SlotContent {
        key,
        generation,
        entry: Entry {
            format,
            status,
            provider,
            model,
            content_type,
            usage,
            stored_at_ms,
            body: r.0.to_vec(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            format: EntryFormat::OpenAiChat,
            status: 200,
            provider: "openai".into(),
            model: "gpt-4o".into(),
            content_type: "application/json".into(),
            usage: Some(Usage::from_openai_chat(10, 5, Some(15), 2, 1)),
            stored_at_ms: 1_700_000_000_000,
            body: br#"{"id":"x"}"#.to_vec(),
        }
    }

    #[test]
    fn round_trips_and_reports_its_size() {
        let key = CacheKey([7; 32]);
        let e = entry();
        let bytes = encode(&key, 42, &e);
        assert_eq!(bytes.len(), encoded_len(&e));
        let back = decode(&bytes).unwrap();
        assert_eq!(back.key, key);
        assert_eq!(back.generation, 42);
        assert_eq!(back.entry, e);
        let mut no_usage = entry();
        no_usage.usage = None;
        no_usage.format = EntryFormat::Verbatim;
        assert_eq!(decode(&encode(&key, 1, &no_usage)).unwrap().entry, no_usage);
    }

    #[test]
    fn malformed_or_empty_slots_decode_to_nothing() {
        let bytes = encode(&CacheKey([1; 32]), 3, &entry());
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"TGC2"), None);
        for cut in 0..encoded_len(&entry()) - entry().body.len() {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut bad_format = bytes.clone();
        bad_format[4 + 32 + 4 + 8 + 2] = 9;
        assert_eq!(decode(&bad_format), None);
    }
}
