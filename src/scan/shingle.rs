//! Character shingles and winnowing (Schleimer, Wilkerson and Aiken, "Winnowing: local
//! algorithms for document fingerprinting", SIGMOD 2003).
//!
//! Every run of `k` folded characters is hashed with a rolling polynomial hash, mixed so that
//! the low and high bits are both well spread. Winnowing keeps, from every window of `w`
//! consecutive shingle hashes, the smallest: any text shared by two documents that is at least
//! `w + k - 1` characters long therefore shares at least one kept hash, while only about
//! `2 / (w + 1)` of the shingles are kept. The index stores the kept hashes of the outputs; a
//! deliverable is probed with all of its shingles.

/// An odd multiplier: the polynomial hash is computed modulo 2^64.
const BASE: u64 = 0x0000_0100_0000_01B3;

/// Shingle hashes of `chars`: `out[p]` is the hash of `chars[p..p + k]`.
pub(crate) fn hashes(chars: &[char], k: usize, out: &mut Vec<u64>) {
    out.clear();
    if k == 0 || chars.len() < k {
        return;
    }
    out.reserve(chars.len() + 1 - k);
    let top = BASE.wrapping_pow(u32::try_from(k - 1).unwrap_or(u32::MAX));
    let code = |c: char| u64::from(c) + 1;
    let mut h = 0u64;
    for &c in &chars[..k] {
        h = h.wrapping_mul(BASE).wrapping_add(code(c));
    }
    out.push(mix(h));
    for (&old, &new) in chars.iter().zip(&chars[k..]) {
        h = h
            .wrapping_sub(code(old).wrapping_mul(top))
            .wrapping_mul(BASE)
            .wrapping_add(code(new));
        out.push(mix(h));
    }
}

/// MurmurHash3's 64-bit finaliser: spreads every input bit over the whole word, so that the
/// minimum of a window is a fair sample and the top bits alone make a good key.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Appends to `out` the hashes winnowing selects from `hashes` with windows of `w`: the
/// rightmost minimum of each window, once per change. Text shorter than one window keeps its
/// minimum, so short outputs are still findable.
pub(crate) fn winnow(hashes: &[u64], w: usize, out: &mut Vec<u64>) {
    let n = hashes.len();
    let w = w.clamp(1, n.max(1));
    if n == 0 {
        return;
    }
    let rightmost_min = |lo: usize, hi: usize| {
        let mut best = lo;
        for i in lo..=hi {
            if hashes[i] <= hashes[best] {
                best = i;
            }
        }
        best
    };
    let mut min = rightmost_min(0, w - 1);
    out.push(hashes[min]);
    for end in w..n {
        let lo = end + 1 - w;
        if min < lo {
            min = rightmost_min(lo, end);
            out.push(hashes[min]);
        } else if hashes[end] <= hashes[min] {
            min = end;
            out.push(hashes[min]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn rolling_hash_equals_direct_hash() {
        let text = chars("本成果物の作成にあたり生成AIを利用しました");
        let mut rolled = Vec::new();
        hashes(&text, 5, &mut rolled);
        for (p, h) in rolled.iter().enumerate() {
            let mut direct = Vec::new();
            hashes(&text[p..p + 5], 5, &mut direct);
            assert_eq!(direct, vec![*h]);
        }
    }

    #[test]
    fn short_text_keeps_one_fingerprint() {
        let mut hs = Vec::new();
        hashes(&chars("abcdefg"), 5, &mut hs);
        let mut kept = Vec::new();
        winnow(&hs, 18, &mut kept);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0], *hs.iter().min().unwrap_or(&0));
        kept.clear();
        hashes(&chars("abc"), 5, &mut hs);
        winnow(&hs, 18, &mut kept);
        assert!(kept.is_empty());
    }

    proptest! {
        /// The winnowing guarantee the scanner relies on: a shared run of at least
        /// `w + k - 1` characters shares a kept fingerprint.
        #[test]
        fn shared_run_shares_a_fingerprint(
            a in "[あ-ん]{0,60}",
            shared in "[ア-ン]{14,40}",
            b in "[あ-ん]{0,60}",
            k in 3usize..8,
            w in 1usize..10,
        ) {
            let shared_chars = chars(&shared);
            prop_assume!(shared_chars.len() >= w + k - 1);
            let doc = chars(&format!("{a}{shared}{b}"));
            let mut hs = Vec::new();
            hashes(&doc, k, &mut hs);
            let mut kept = Vec::new();
            winnow(&hs, w, &mut kept);
            let mut probe = Vec::new();
            hashes(&shared_chars, k, &mut probe);
            prop_assert!(kept.iter().any(|h| probe.contains(h)));
        }
    }
}
