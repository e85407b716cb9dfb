//! Identifier randomness: a small non-cryptographic generator for request and span ids.
//!
//! Ids must be unique, not secret, so a SplitMix64 stream seeded once per VM from the host's
//! entropy is enough. The seed is supplied by the caller, which keeps this module pure.

/// A SplitMix64 generator: fast, tiny, and good enough for unique identifiers.
#[derive(Debug, Clone)]
pub struct IdRng {
    state: u64,
}

impl IdRng {
    /// Creates a generator from a 64-bit seed.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// Returns the next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fills `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            for (dst, src) in chunk.iter_mut().zip(bytes.iter()) {
                *dst = *src;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn different_seeds_give_different_streams() {
        let mut a = IdRng::new(1);
        let mut b = IdRng::new(2);
        assert_ne!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn fill_covers_partial_words() {
        let mut rng = IdRng::new(7);
        let mut buf = [0u8; 13];
        rng.fill(&mut buf);
        assert!(buf.iter().skip(8).any(|b| *b != 0));
    }
}
