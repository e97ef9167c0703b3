// SPDX-License-Identifier: GPL-2.0
//! Inputs: byte strings that the front-end interpreters read as decisions
//! (which request, which layout, which field values).  A byte string is
//! the whole reproducer: the same bytes replay the same requests.

/// xorshift64*: the fuzzer's only randomness, seeded from the command line.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Reads decisions from an input; past its end every read is 0 (the
/// plainest choice), so every byte string is a valid input.
pub struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Reader<'a> {
        Reader { b, at: 0 }
    }

    pub fn u8(&mut self) -> u8 {
        let v = self.b.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        v
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// An index into `n` choices.
    pub fn pick(&mut self, n: usize) -> usize {
        usize::from(self.u8()) % n
    }

    /// True with probability `k`/256 for random bytes; false past the end
    /// of the input (0 is the plainest choice: an input that ran out
    /// builds well-formed requests, not broken ones).
    pub fn chance(&mut self, k: u8) -> bool {
        self.u8() > 255 - k
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            *b = self.u8();
        }
    }

    #[cfg(test)]
    pub fn done(&self) -> bool {
        self.at >= self.b.len()
    }
}

/// Values that sit on boundaries: what a mutation writes over a byte.
const SPECIAL: [u8; 10] = [0, 1, 0x7f, 0x80, 0xff, 0xfe, 0x10, 0x20, 0x40, 8];

/// A mutation of `input` (or of a splice of it with `other`).
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = SPECIAL[rng.below(SPECIAL.len())];
            }
            2 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            3 => {
                let i = rng.below(v.len() + 1);
                let n = 1 + rng.below(8);
                let add = rng.bytes(n);
                v.splice(i..i, add);
            }
            4 if v.len() > 1 => {
                let i = rng.below(v.len());
                let n = (1 + rng.below(8)).min(v.len() - i);
                v.drain(i..i + n);
            }
            5 if !other.is_empty() => {
                let i = rng.below(v.len() + 1);
                let j = rng.below(other.len());
                v.truncate(i);
                v.extend_from_slice(&other[j..]);
            }
            _ => {
                let i = rng.below(v.len() + 1);
                let n = rng.below(4);
                v.splice(i..i, std::iter::repeat_n(0xffu8, n));
            }
        }
    }
    v.truncate(MAX_INPUT);
    v
}

/// Rewrites random bytes of `areas` (address, length; memory of this
/// process the kernel reads) for `dur`, while the device's worker serves
/// them on the other CPU: the kernel must read each shared structure once
/// and work from its copy.
///
/// # Safety
///
/// Every area must lie inside memory of this process that stays mapped
/// and writable for the whole call.
pub unsafe fn rewrite(rng: &mut Rng, areas: &[(u64, usize)], dur: std::time::Duration) -> u64 {
    let areas: Vec<(u64, usize)> = areas.iter().copied().filter(|a| a.1 > 0).collect();
    if areas.is_empty() {
        return 0;
    }
    let end = std::time::Instant::now() + dur;
    let mut n = 0;
    while std::time::Instant::now() < end {
        for _ in 0..64 {
            let (a, l) = areas[rng.below(areas.len())];
            let p = (a + rng.below(l) as u64) as *mut u8;
            // SAFETY: `p` is inside one of `areas` (offset below its
            // length), mapped and writable per the function's # Safety.
            unsafe { std::ptr::write_volatile(p, rng.next() as u8) };
            n += 1;
        }
    }
    n
}

/// Inputs are at most this long (a batch of requests reads far fewer).
pub const MAX_INPUT: usize = 512;

pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn from_hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) || s.len() > 2 * MAX_INPUT {
        return Err(format!(
            "bad input '{s}': an even number of hex digits, at most {MAX_INPUT} bytes"
        ));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("bad input '{s}': {e}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_past_end_reads_zero() {
        let mut r = Reader::new(&[1, 2]);
        assert_eq!(r.u16(), 0x0201);
        assert_eq!(r.u32(), 0);
        assert!(r.done());
        // past the end no chance is taken, however likely
        assert!(!r.chance(255));
        let mut r = Reader::new(&[255, 0, 128]);
        assert!(r.chance(1));
        assert!(!r.chance(255));
        assert!(r.chance(128) && !Reader::new(&[127]).chance(128));
    }

    #[test]
    fn hex_round_trip_and_bounds() {
        let b = vec![0, 0xab, 0xff];
        assert_eq!(from_hex(&to_hex(&b)).unwrap(), b);
        assert!(from_hex("abc").is_err());
        assert!(from_hex(&"00".repeat(MAX_INPUT + 1)).is_err());
    }

    #[test]
    fn mutations_stay_bounded() {
        let mut rng = Rng::new(7);
        let mut v = vec![0u8; 16];
        for _ in 0..10_000 {
            v = mutate(&mut rng, &v, &[1, 2, 3]);
            assert!(v.len() <= MAX_INPUT);
        }
    }
}
