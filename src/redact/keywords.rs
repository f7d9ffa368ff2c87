//! The shared keyword search (tags, field names, detector triggers and keywords): every match,
//! overlapping ones included.
//!
//! Why not run the automaton over the text's bytes: Japanese characters are three bytes in
//! UTF-8, and a DFA takes one dependent table load per byte, so prose costs three loads per
//! character. Instead each character is first given a one-byte code (its own for each of the
//! few hundred characters the patterns use, one shared code for every other), and the automaton,
//! built over the patterns' codes, steps once per character. The codes of a text do not depend
//! on one another, so the processor computes them ahead of the automaton's chain of loads.
//! Matches are exactly those of the byte search: patterns are whole characters, and in UTF-8 a
//! pattern's bytes can only match at character boundaries.
//!
//! When the patterns use more distinct characters than a byte can code, the characters used by
//! the fewest patterns share the last few codes, and a match of a pattern holding one of them is
//! checked against the text before it is reported (a code match is then only a candidate). Only
//! when a pattern is not whole characters, or a character is outside the BMP, does the search run
//! over bytes.
use aho_corasick::automaton::Automaton;
use aho_corasick::{dfa, AhoCorasick, AhoCorasickKind, Anchored, BuildError, MatchKind, StartKind};

/// The code of every character no pattern uses.
const OTHER: u8 = 0;

pub(crate) enum Keywords {
    PerChar(Box<PerChar>),
    PerByte(AhoCorasick),
}

/// Characters' codes in two levels (a code point's high byte picks a block of 256 codes, block 0
/// being all `OTHER`), so that the table stays small enough to be cached: the patterns' few
/// hundred characters fall in a few dozen blocks.
struct Codes {
    blocks: [u8; 256],
    table: Vec<[u8; 256]>,
}

impl Codes {
    /// `None` when a code point is outside the BMP or the table would need more than 255 blocks.
    fn new(chars: &[(char, u8)]) -> Option<Codes> {
        let mut blocks = [0u8; 256];
        let mut table = vec![[OTHER; 256]];
        for &(ch, code) in chars {
            let cp = u32::from(ch);
            let hi = usize::try_from(cp >> 8).ok().filter(|&h| h < 256)?;
            if blocks[hi] == 0 {
                blocks[hi] = u8::try_from(table.len()).ok()?;
                table.push([OTHER; 256]);
            }
            *table
                .get_mut(usize::from(blocks[hi]))?
                .get_mut((cp & 0xff) as usize)? = code;
        }
        Some(Codes { blocks, table })
    }

    /// The code of a code point (`OTHER` outside the BMP: every pattern character is in it).
    #[inline]
    fn of(&self, cp: u32) -> u8 {
        let block = self.blocks.get(cp as usize >> 8).copied().unwrap_or(0);
        self.table
            .get(usize::from(block))
            .map_or(OTHER, |t| t[usize::from(cp as u8)])
    }
}

/// Bits of [`PerChar::pairs`].
const PAIR_BITS: u32 = 16;

/// The bit of two consecutive code points in [`PerChar::pairs`].
#[inline]
fn pair(first: u32, second: u32) -> usize {
    let h = first.wrapping_mul(0x9E37_79B1) ^ second.wrapping_mul(0x85EB_CA77).rotate_left(13);
    (h >> (32 - PAIR_BITS)) as usize
}

fn set_bit(bits: &mut [u64], i: usize) {
    if let Some(w) = bits.get_mut(i / 64) {
        *w |= 1 << (i % 64);
    }
}

#[inline]
fn has_bit(bits: &[u64], i: usize) -> bool {
    bits.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
}

/// The code point of the character starting at `i` of valid UTF-8 `b`, and its length; past the
/// BMP, 0x10000 stands for every character, as no pattern has one. Decoded by hand: this runs
/// for every character of every text, and `char_indices` took twice the instructions.
#[inline]
fn decode(b: &[u8], i: usize) -> Option<(u32, usize)> {
    let cont = |x: u8| u32::from(x & 0x3f);
    Some(match *b.get(i..)? {
        [lead @ 0x00..=0x7f, ..] => (u32::from(lead), 1),
        [lead @ 0xe0..=0xef, c1, c2, ..] => {
            (u32::from(lead & 0x0f) << 12 | cont(c1) << 6 | cont(c2), 3)
        }
        [lead @ 0xc0..=0xdf, c1, ..] => (u32::from(lead & 0x1f) << 6 | cont(c1), 2),
        [] => return None,
        _ => (0x10000, 4),
    })
}

pub(crate) struct PerChar {
    codes: Codes,
    /// One bit per code point of the BMP: whether it is the first character of some pattern. In
    /// the start state the automaton stays there on any other character, so the search neither
    /// looks up its code nor takes a step for it: one load on each character's chain of
    /// dependent steps instead of three.
    begins: Box<[u64]>,
    /// The characters that are a whole pattern on their own; for the others in `begins`, a start
    /// needs the next character too.
    single: Box<[u64]>,
    /// The first two characters of the longer patterns, hashed ([`pair`]): a character that
    /// begins patterns, followed by one that continues none of them, is skipped like any other
    /// (`さ` but not `さん`, `お` but not `お名前`). In the start state that is exact: the
    /// automaton would step to the first character's state and, on the second, to the state of
    /// the second alone, where a skip leaves it too. A hash collision only costs a step. Pairs
    /// are of the text's code points, as patterns are written: if the search ever folded case
    /// or width through its codes, the pairs would have to be folded the same way.
    pairs: Box<[u64]>,
    dfa: dfa::DFA,
    /// The pattern itself, for each pattern holding a shared code: its code matches are checked.
    checked: Vec<Option<Box<[u8]>>>,
}

fn automaton<P: AsRef<[u8]>>(patterns: &[P]) -> Result<AhoCorasick, BuildError> {
    AhoCorasick::builder()
        .match_kind(MatchKind::Standard)
        .kind(Some(AhoCorasickKind::DFA))
        .prefilter(false)
        .build(patterns)
}

/// Codes given to characters of their own; past that, the rest share [`SHARED`] codes.
const OWN_CODES: usize = 255 - SHARED;
const SHARED: usize = 16;

/// Patterns as character codes, and which of them hold a shared code (and must be checked).
struct Coded {
    codes: Codes,
    patterns: Vec<Vec<u8>>,
    checked: Vec<bool>,
}

/// Each pattern as character codes; `None` when they cannot be coded.
fn coded(patterns: &[Vec<u8>]) -> Option<Coded> {
    // Each character with the number of patterns using it, in order of first use.
    let mut index: std::collections::HashMap<char, usize> = std::collections::HashMap::new();
    let mut chars: Vec<(char, usize)> = Vec::new();
    let mut texts = Vec::with_capacity(patterns.len());
    for p in patterns {
        // An empty pattern matches in the start state, which the search skips through.
        if p.is_empty() {
            return None;
        }
        let text = std::str::from_utf8(p).ok()?;
        let mut seen = std::collections::HashSet::new();
        for ch in text.chars().filter(|&ch| seen.insert(ch)) {
            match index.get(&ch) {
                Some(&i) => chars[i].1 += 1,
                None => {
                    index.insert(ch, chars.len());
                    chars.push((ch, 1));
                }
            }
        }
        texts.push(text);
    }
    // Within budget, every character its own code. Past it, the characters most patterns use
    // (common ones, 番 号 者…) keep theirs, and the rarest share, spread evenly.
    let mut order: Vec<usize> = (0..chars.len()).collect();
    if chars.len() > 255 {
        order.sort_by_key(|&i| std::cmp::Reverse(chars[i].1));
    }
    let mut code_of = vec![0u8; chars.len()];
    for (rank, &i) in order.iter().enumerate() {
        let code = if chars.len() <= 255 || rank < OWN_CODES {
            rank + 1
        } else {
            OWN_CODES + 1 + (rank - OWN_CODES) % SHARED
        };
        code_of[i] = u8::try_from(code).ok()?;
    }
    let shared = |code: u8| chars.len() > 255 && usize::from(code) > OWN_CODES;
    let mut out = Vec::with_capacity(texts.len());
    let mut checked = Vec::with_capacity(texts.len());
    for text in texts {
        let c: Vec<u8> = text.chars().map(|ch| code_of[index[&ch]]).collect();
        checked.push(c.iter().any(|&code| shared(code)));
        out.push(c);
    }
    let pairs: Vec<(char, u8)> = chars
        .iter()
        .zip(&code_of)
        .map(|(&(ch, _), &code)| (ch, code))
        .collect();
    Some(Coded {
        codes: Codes::new(&pairs)?,
        patterns: out,
        checked,
    })
}

/// How many distinct characters `patterns` use (past 255, some share a code).
pub(crate) fn distinct_chars(patterns: &[Vec<u8>]) -> usize {
    patterns
        .iter()
        .filter_map(|p| std::str::from_utf8(p).ok())
        .flat_map(str::chars)
        .collect::<std::collections::HashSet<char>>()
        .len()
}

impl Keywords {
    /// `patterns` are searched as they are (the caller lower-cases both sides). `None` when empty.
    pub(crate) fn new(patterns: &[Vec<u8>]) -> Result<Option<Keywords>, BuildError> {
        if patterns.is_empty() {
            return Ok(None);
        }
        Ok(Some(match coded(patterns) {
            Some(c) => {
                let mut begins = vec![0u64; 0x10000 / 64].into_boxed_slice();
                let mut single = vec![0u64; 0x10000 / 64].into_boxed_slice();
                let mut pairs = vec![0u64; (1 << PAIR_BITS) / 64].into_boxed_slice();
                for p in patterns.iter().filter_map(|p| std::str::from_utf8(p).ok()) {
                    let mut chars = p.chars().map(u32::from);
                    let Some(first) = chars.next() else { continue };
                    set_bit(&mut begins, first as usize);
                    match chars.next() {
                        Some(second) => set_bit(&mut pairs, pair(first, second)),
                        None => set_bit(&mut single, first as usize),
                    }
                }
                let dfa = dfa::DFA::builder()
                    .match_kind(MatchKind::Standard)
                    .start_kind(StartKind::Unanchored)
                    .prefilter(false)
                    .build(&c.patterns)?;
                let checked = patterns
                    .iter()
                    .zip(&c.checked)
                    .map(|(p, &check)| check.then(|| p.clone().into_boxed_slice()))
                    .collect();
                Keywords::PerChar(Box::new(PerChar {
                    codes: c.codes,
                    begins,
                    single,
                    pairs,
                    dfa,
                    checked,
                }))
            }
            None => Keywords::PerByte(automaton(patterns)?),
        }))
    }

    /// Calls `found(pattern, start, end)` for every match in `text`, overlapping ones included,
    /// in the order they end; offsets are bytes of `text`.
    pub(crate) fn for_each_match(&self, text: &str, mut found: impl FnMut(usize, usize, usize)) {
        match self {
            Keywords::PerByte(ac) => {
                for m in ac.find_overlapping_iter(text) {
                    found(m.pattern().as_usize(), m.start(), m.end());
                }
            }
            Keywords::PerChar(k) => k.for_each_match(text, found),
        }
    }
}

impl PerChar {
    fn for_each_match(&self, text: &str, mut found: impl FnMut(usize, usize, usize)) {
        let Ok(start) = self.dfa.start_state(Anchored::No) else {
            return;
        };
        let b = text.as_bytes();
        let mut sid = start;
        let mut end = 0;
        while let Some((cp, len)) = decode(b, end) {
            end += len;
            if sid == start {
                if !has_bit(&self.begins, cp as usize) {
                    continue;
                }
                if !has_bit(&self.single, cp as usize) {
                    // The text's next character, off the automaton's chain of loads.
                    let next = decode(b, end).map(|(c, _)| c);
                    if !next.is_some_and(|c| has_bit(&self.pairs, pair(cp, c))) {
                        continue;
                    }
                }
            }
            sid = self.dfa.next_state(Anchored::No, sid, self.codes.of(cp));
            if !self.dfa.is_match(sid) {
                continue;
            }
            for k in 0..self.dfa.match_len(sid) {
                let p = self.dfa.match_pattern(sid, k);
                // The pattern's length is in characters: walk back that many.
                let chars = self.dfa.pattern_len(p);
                let begin = text
                    .get(..end)
                    .and_then(|t| t.char_indices().rev().nth(chars.saturating_sub(1)))
                    .map(|(b, _)| b);
                let Some(begin) = begin else { continue };
                let real = match self.checked.get(p.as_usize()) {
                    Some(Some(pattern)) => text.as_bytes().get(begin..end) == Some(&pattern[..]),
                    _ => true,
                };
                if real {
                    found(p.as_usize(), begin, end);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(k: &Keywords, text: &str) -> Vec<(usize, usize, usize)> {
        let mut v = Vec::new();
        k.for_each_match(text, |p, s, e| v.push((p, s, e)));
        v.sort_unstable();
        v
    }

    fn by_bytes(patterns: &[Vec<u8>], text: &str) -> Vec<(usize, usize, usize)> {
        let mut v: Vec<_> = automaton(patterns)
            .unwrap()
            .find_overlapping_iter(text)
            .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
            .collect();
        v.sort_unstable();
        v
    }

    const PATTERNS: &[&str] = &[
        "氏名",
        "名前",
        "住所",
        "口座番号",
        "口座",
        "番号",
        "<機密>",
        "</機密>",
        "sk-",
        "akia",
        "〒",
        "ー",
        "a",
        "ab",
        "b",
        "電話",
        "café",
    ];

    fn patterns() -> Vec<Vec<u8>> {
        PATTERNS.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    #[test]
    fn steps_by_character_and_reports_byte_offsets() {
        let k = Keywords::new(&patterns()).unwrap().unwrap();
        assert!(matches!(k, Keywords::PerChar(_)));
        let text = "お客様の口座番号と氏名、<機密>sk-x</機密>";
        let got = all(&k, text);
        assert_eq!(got, by_bytes(&patterns(), text));
        let words: Vec<&str> = got.iter().map(|&(_, s, e)| &text[s..e]).collect();
        for w in [
            "口座番号",
            "口座",
            "番号",
            "氏名",
            "<機密>",
            "sk-",
            "</機密>",
        ] {
            assert!(words.contains(&w), "{w} not found in {words:?}");
        }
    }

    /// 300 kanji as patterns of their own, and words made of them and of others.
    fn many() -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = (0x4E00u32..0x4E00 + 300)
            .filter_map(char::from_u32)
            .map(|c| c.to_string().into_bytes())
            .collect();
        v.extend(patterns());
        for w in ["丁七", "七丁", "承認者", "面談者", "者丁", "一一一"] {
            v.push(w.as_bytes().to_vec());
        }
        v
    }

    #[test]
    fn more_characters_than_codes_share_codes_and_are_checked() {
        let many = many();
        assert!(distinct_chars(&many) > 255);
        let k = Keywords::new(&many).unwrap().unwrap();
        let Keywords::PerChar(per_char) = &k else {
            panic!("300 characters should still be searched a character at a time");
        };
        assert!(per_char.checked.iter().any(Option::is_some));
        for text in [
            "一丁七",
            "承認者は面談者と",
            "七丁丁七者丁一一一一",
            "氏名、口座番号",
        ] {
            assert_eq!(all(&k, text), by_bytes(&many, text), "{text}");
        }
    }

    #[test]
    fn patterns_not_of_whole_characters_search_bytes() {
        // A pattern cut inside a character, or outside the BMP, cannot be coded.
        let cut = vec!["口".as_bytes()[..2].to_vec()];
        assert!(matches!(
            Keywords::new(&cut).unwrap().unwrap(),
            Keywords::PerByte(_)
        ));
        let astral = vec!["😀".as_bytes().to_vec()];
        assert!(matches!(
            Keywords::new(&astral).unwrap().unwrap(),
            Keywords::PerByte(_)
        ));
        assert!(Keywords::new(&[]).unwrap().is_none());
    }

    proptest! {
        /// Any text over the patterns' characters and others (astral ones included) matches
        /// exactly as the byte search does.
        #[test]
        fn same_matches_as_the_byte_search(
            picks in proptest::collection::vec(0usize..31, 0..60),
        ) {
            const PIECES: &[&str] = &[
                "氏", "名", "住", "所", "口", "座", "番", "号", "<", "機", "密", ">", "/", "s",
                "k", "-", "a", "b", "ー", "〒", "電", "話", "😀", "x", "c", "é", "f", "\u{7FF}",
                "\u{800}", "\u{FFFF}", "ｱ",
            ];
            let text: String = picks.iter().map(|&i| PIECES[i]).collect();
            let k = Keywords::new(&patterns()).unwrap().unwrap();
            prop_assert_eq!(all(&k, &text), by_bytes(&patterns(), &text));
        }

        /// With more characters than codes, the shared codes' candidates are checked: still
        /// exactly the byte search's matches.
        #[test]
        fn shared_codes_match_as_the_byte_search(
            picks in proptest::collection::vec(0u32..320, 0..80),
        ) {
            let text: String = picks
                .iter()
                .map(|&i| match i {
                    300 => '者',
                    301 => '承',
                    302 => '認',
                    303 => '面',
                    304 => '談',
                    305..=310 => 'x',
                    311..=319 => '口',
                    _ => char::from_u32(0x4E00 + i).unwrap_or('x'),
                })
                .collect();
            let many = many();
            let k = Keywords::new(&many).unwrap().unwrap();
            prop_assert_eq!(all(&k, &text), by_bytes(&many, &text));
        }
    }
}
