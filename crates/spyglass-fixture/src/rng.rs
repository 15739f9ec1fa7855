/// SplitMix64: tiny, fast, and the same sequence on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5eed_5eed_5eed_5eed)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// 16 random bytes, e.g. a DataJoint UUID hash.
    pub fn hash16(&mut self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        b[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        b
    }
    /// `n` bytes that look like a DataJoint-serialised int16 array of a
    /// neural signal: a random walk, which compresses about as badly as real data.
    pub fn neural_blob(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        out.extend_from_slice(b"mYm\0A");
        let mut v: i32 = 0;
        while out.len() + 2 <= n {
            let r = self.next_u64();
            for k in 0..4 {
                if out.len() + 2 > n {
                    break;
                }
                let step = ((r >> (k * 16)) & 0xff) as i32 - 128;
                v = (v + step / 4).clamp(-20000, 20000)
                    + (((r >> (k * 16 + 8)) & 0x3f) as i32 - 32);
                out.extend_from_slice(&(v as i16).to_le_bytes());
            }
        }
        out.resize(n, 0);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes() {
        assert_eq!(Rng::new(7).neural_blob(1000), Rng::new(7).neural_blob(1000));
        assert_ne!(Rng::new(7).next_u64(), Rng::new(8).next_u64());
        assert_eq!(Rng::new(1).neural_blob(77).len(), 77);
    }
}
