//! Leftmost-longest multi-string search for the small per-contract and per-session sets (terms,
//! extra field names, values already redacted).
//!
//! Why not a plain case-insensitive `AhoCorasick`: its ASCII case folding turns off the SIMD
//! (Teddy) prefilter, and its rare-byte heuristics, tuned for English, pick UTF-8 continuation
//! bytes that are everywhere in Japanese — it then crawls through prose byte by byte. Instead,
//! patterns are lower-cased and searched case-sensitively in an ASCII-lower-cased copy of the view
//! (same offsets), with the packed Teddy searcher when the set is small enough.
use aho_corasick::packed;
use aho_corasick::{AhoCorasick, MatchKind};

/// Past this many patterns, Teddy's fat variant (16 buckets) rather than its slim one (8): with
/// 30 term anchors, the slim one checked four times the false candidates in Japanese prose (96 M
/// instructions in the redaction bench against 22 M). Teddy itself turns fat only past 32.
const FAT_FROM: usize = 16;

pub(crate) enum Finder {
    /// One pattern (a request's single redacted value, a contract's one extra field name):
    /// searched without building anything, which for a packed searcher took two dozen
    /// allocations per request.
    One(String),
    Packed(packed::Searcher),
    Automaton(AhoCorasick),
}

impl Finder {
    /// `patterns` must already be folded and lower-cased. `None` for an empty set.
    pub(crate) fn new<P: AsRef<[u8]>>(
        patterns: &[P],
    ) -> Result<Option<Finder>, aho_corasick::BuildError> {
        match patterns {
            [] => return Ok(None),
            [p] => {
                if let Ok(p) = std::str::from_utf8(p.as_ref()) {
                    if !p.is_empty() {
                        return Ok(Some(Finder::One(p.to_string())));
                    }
                }
            }
            _ => {}
        }
        let packed = packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostLongest)
            .only_teddy_fat((patterns.len() > FAT_FROM).then_some(true))
            .builder()
            .extend(patterns)
            .build();
        if let Some(p) = packed {
            return Ok(Some(Finder::Packed(p)));
        }
        AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(patterns)
            .map(|ac| Some(Finder::Automaton(ac)))
    }

    /// Non-overlapping leftmost-longest matches in `lower`: (pattern index, start, end).
    pub(crate) fn find_iter<'h>(&'h self, lower: &'h str) -> Matches<'h> {
        match self {
            Finder::One(p) => Matches::One(memchr::memmem::find_iter(lower.as_bytes(), p), p.len()),
            Finder::Packed(p) => Matches::Packed(p.find_iter(lower)),
            Finder::Automaton(ac) => Matches::Automaton(ac.find_iter(lower)),
        }
    }
}

/// The matches of a [`Finder`], without a boxed iterator: a search runs for every window of
/// every text. It lives on the stack for one search, so its size does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Matches<'h> {
    One(memchr::memmem::FindIter<'h, 'h>, usize),
    Packed(packed::FindIter<'h, 'h>),
    Automaton(aho_corasick::FindIter<'h, 'h>),
}

impl Iterator for Matches<'_> {
    type Item = (usize, usize, usize);

    fn next(&mut self) -> Option<Self::Item> {
        let m = match self {
            Matches::One(it, len) => return it.next().map(|s| (0, s, s + *len)),
            Matches::Packed(it) => it.next(),
            Matches::Automaton(it) => it.next(),
        }?;
        Some((m.pattern().as_usize(), m.start(), m.end()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// One pattern is searched without an automaton, with the same matches.
        #[test]
        fn one_pattern_finds_what_an_automaton_finds(
            text in "[aあ氏名-]{0,40}",
            pattern in "[aあ氏名-]{1,4}",
        ) {
            let Some(f) = Finder::new(&[pattern.as_str()]).unwrap() else {
                panic!("a finder for one pattern");
            };
            prop_assert!(matches!(f, Finder::One(_)));
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build([pattern.as_str()])
                .unwrap();
            let want: Vec<_> = ac.find_iter(&text).map(|m| (0, m.start(), m.end())).collect();
            prop_assert_eq!(f.find_iter(&text).collect::<Vec<_>>(), want);
        }
    }
}
