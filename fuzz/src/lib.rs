//! Shared helpers of the tollgate fuzz targets: decoding a fuzz input into a selector, split
//! offsets and a payload, and feeding a payload to an incremental parser in pieces.
//!
//! Input layout used by every target that splits its payload:
//!
//! ```text
//! byte 0        selector (which parser / provider / direction; targets take it modulo their count)
//! byte 1        number of split points (modulo MAX_SPLITS + 1)
//! 2 bytes each  split offsets, little-endian, taken modulo payload length + 1
//! rest          payload
//! ```
//!
//! Short inputs decode to selector 0, no splits and an empty payload, so every byte string is a
//! valid input.

/// Largest number of split points decoded from one input.
pub const MAX_SPLITS: usize = 8;

/// A fuzz input decoded into its parts.
#[derive(Debug, Clone)]
pub struct SplitInput<'a> {
    /// Chooses among the target's variants.
    pub selector: u8,
    /// Sorted, deduplicated offsets into `payload` where it is cut.
    pub cuts: Vec<usize>,
    /// The bytes under test.
    pub payload: &'a [u8],
}

impl<'a> SplitInput<'a> {
    /// Decodes `data` (see the module doc for the layout).
    pub fn decode(data: &'a [u8]) -> SplitInput<'a> {
        let selector = data.first().copied().unwrap_or(0);
        let count = data
            .get(1)
            .map_or(0, |n| usize::from(*n) % (MAX_SPLITS + 1));
        let offsets_end = (2 + 2 * count).min(data.len());
        let raw_offsets = data.get(2.min(data.len())..offsets_end).unwrap_or(&[]);
        let payload = data.get(offsets_end..).unwrap_or(&[]);
        let mut cuts: Vec<usize> = raw_offsets
            .chunks_exact(2)
            .map(|pair| usize::from(u16::from_le_bytes([pair[0], pair[1]])) % (payload.len() + 1))
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        SplitInput {
            selector,
            cuts,
            payload,
        }
    }

    /// The payload cut at `cuts`: consecutive pieces (some may be empty) whose concatenation is
    /// the payload.
    pub fn pieces(&self) -> Vec<&'a [u8]> {
        pieces(self.payload, &self.cuts)
    }
}

/// A request and its answer, each cut in pieces: the first cut of a [`SplitInput`] separates
/// them (the middle when there is none), the other cuts chunk both.
#[derive(Debug, Clone)]
pub struct Exchange<'a> {
    /// The request body.
    pub request: &'a [u8],
    /// The request body's cuts.
    pub request_cuts: Vec<usize>,
    /// The answer body.
    pub answer: &'a [u8],
    /// The answer body's cuts.
    pub answer_cuts: Vec<usize>,
}

impl<'a> SplitInput<'a> {
    /// This input as a request and its answer (see [`Exchange`]).
    pub fn exchange(&self) -> Exchange<'a> {
        let mut cuts = self.cuts.clone();
        let split = if cuts.is_empty() {
            self.payload.len() / 2
        } else {
            cuts.remove(0)
        };
        let (request, answer) = self.payload.split_at(split.min(self.payload.len()));
        let request_cuts = cuts
            .iter()
            .copied()
            .filter(|c| *c < request.len())
            .collect();
        let answer_cuts = cuts
            .iter()
            .filter_map(|c| c.checked_sub(request.len()))
            .filter(|c| *c <= answer.len())
            .collect();
        Exchange {
            request,
            request_cuts,
            answer,
            answer_cuts,
        }
    }
}

/// `payload` cut at the sorted offsets `cuts`.
pub fn pieces<'a>(payload: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for &cut in cuts {
        out.push(&payload[start..cut]);
        start = cut;
    }
    out.push(&payload[start..]);
    out
}

/// Unpadded base64url, as JWS segments use.
pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// HMAC-SHA-256 (RFC 2104) of `message` under `key`, to sign fuzz-built JWTs.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    const BLOCK: usize = 64;
    let mut block_key = [0u8; BLOCK];
    if key.len() > BLOCK {
        let digest = Sha256::digest(key);
        block_key[..digest.len()].copy_from_slice(&digest);
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block_key.map(|k| k ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    let mut mac = [0u8; 32];
    mac.copy_from_slice(&outer);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_layout() {
        let input = SplitInput::decode(&[7, 2, 3, 0, 1, 0, b'a', b'b', b'c', b'd']);
        assert_eq!(input.selector, 7);
        assert_eq!(input.cuts, vec![1, 3]);
        assert_eq!(input.pieces(), vec![&b"a"[..], b"bc", b"d"]);
        assert!(SplitInput::decode(&[]).payload.is_empty());
    }

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
