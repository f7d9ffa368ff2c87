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

pub(crate) enum Finder {
    Packed(packed::Searcher),
    Automaton(AhoCorasick),
}

impl Finder {
    /// `patterns` must already be folded and lower-cased. `None` for an empty set.
    pub(crate) fn new<P: AsRef<[u8]>>(
        patterns: &[P],
    ) -> Result<Option<Finder>, aho_corasick::BuildError> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let packed = packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostLongest)
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
    pub(crate) fn find_iter<'h>(
        &'h self,
        lower: &'h str,
    ) -> Box<dyn Iterator<Item = (usize, usize, usize)> + 'h> {
        match self {
            Finder::Packed(p) => Box::new(
                p.find_iter(lower)
                    .map(|m| (m.pattern().as_usize(), m.start(), m.end())),
            ),
            Finder::Automaton(ac) => Box::new(
                ac.find_iter(lower)
                    .map(|m| (m.pattern().as_usize(), m.start(), m.end())),
            ),
        }
    }
}
