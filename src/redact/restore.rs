//! Putting pseudonymized values back into what the client receives.
//!
//! A [`Pseudonyms`] map is frozen from a session after the request is redacted and shared (`Arc`)
//! by every stream of the answer; each stream (a choice's content, a content block, one tool
//! call's arguments) gets its own cheap [`Restorer`].
//!
//! Streaming: every placeholder is `[` + ASCII word characters + `]` with no other bracket inside,
//! so occurrences never overlap and a chunk boundary can only cut one in two. [`Restorer::push`]
//! therefore emits everything except a suffix that is still a proper prefix of some placeholder
//! (at most one placeholder long, usually empty), and for every way of splitting a text into chunks
//! the outputs joined equal [`Pseudonyms::restore`] of the whole text.
//!
//! JSON-escaped text: tool-call arguments arrive as fragments of JSON text (OpenAI
//! `function.arguments`, Anthropic `input_json_delta.partial_json`), where a placeholder sits inside
//! a JSON string literal. The original value must then be inserted JSON-escaped (a `"` or `\` in
//! it would otherwise end or break the string): use [`Pseudonyms::restore_json_escaped`] or
//! [`Restorer::json_escaped`] there, and the plain forms for decoded text (message content,
//! Anthropic `tool_use.input` values, which are already structured).
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// The placeholders minted in one session and the original values they stand for.
pub struct Pseudonyms {
    /// (placeholder, original, original JSON-escaped), in minting order.
    entries: Vec<(String, String, String)>,
    /// Entries in the order of their placeholders: to look one up, and to answer "is this a
    /// prefix of one?".
    sorted: Vec<usize>,
    longest: usize,
}

/// Holds original values: shows only how many.
impl fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pseudonyms")
            .field("placeholders", &self.entries.len())
            .finish()
    }
}

impl Pseudonyms {
    pub(crate) fn new(pairs: &[(String, String)]) -> Self {
        let entries: Vec<(String, String, String)> = pairs
            .iter()
            .map(|(p, o)| (p.clone(), o.clone(), json_escape(o)))
            .collect();
        // Placeholders are `[WORD_N_TAG]` with only letters, digits and `_` inside, so a
        // placeholder in a text is a bracketed run looked up here, with no automaton to build
        // for every request (an Aho-Corasick DFA of a handful of patterns was a tenth of the CPU
        // of a request with findings).
        let mut sorted: Vec<usize> = (0..entries.len()).collect();
        sorted.sort_by(|&a, &b| entries[a].0.cmp(&entries[b].0));
        let longest = entries.iter().map(|e| e.0.len()).max().unwrap_or(0);
        Self {
            entries,
            sorted,
            longest,
        }
    }

    /// The placeholders of this session in `text`, left to right: (start, end, entry).
    fn find_iter<'t>(&'t self, text: &'t str) -> impl Iterator<Item = (usize, usize, usize)> + 't {
        let bytes = text.as_bytes();
        let mut from = 0;
        std::iter::from_fn(move || {
            while let Some(k) = bytes.get(from..)?.iter().position(|&b| b == b'[') {
                let at = from + k;
                from = at + 1;
                let window = bytes.get(at..)?;
                let window = window.get(..self.longest).unwrap_or(window);
                // `[` and `]` are ASCII: both ends are character boundaries.
                let Some(close) = window.iter().position(|&b| b == b']') else {
                    continue;
                };
                let end = at + close + 1;
                let Some(candidate) = text.get(at..end) else {
                    continue;
                };
                if let Ok(i) = self
                    .sorted
                    .binary_search_by(|&e| self.placeholder(e).cmp(candidate))
                {
                    from = end;
                    return self.sorted.get(i).map(|&e| (at, end, e));
                }
            }
            None
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `text` with every placeholder of this session replaced by its original value. Text that
    /// merely looks like a placeholder (typed by the user, or minted in another session) is kept.
    pub fn restore<'t>(&self, text: &'t str) -> Cow<'t, str> {
        self.replace(text, false)
    }

    /// As [`Pseudonyms::restore`], for text inside a JSON string literal: values are JSON-escaped.
    pub fn restore_json_escaped<'t>(&self, text: &'t str) -> Cow<'t, str> {
        self.replace(text, true)
    }

    fn replace<'t>(&self, text: &'t str, escaped: bool) -> Cow<'t, str> {
        let mut out = String::new();
        let mut last = 0;
        for (start, end, i) in self.find_iter(text) {
            if out.capacity() == 0 {
                out.reserve(text.len() + 64);
            }
            out.push_str(text.get(last..start).unwrap_or(""));
            out.push_str(self.value(i, escaped));
            last = end;
        }
        if last == 0 && out.is_empty() {
            return Cow::Borrowed(text);
        }
        out.push_str(text.get(last..).unwrap_or(""));
        Cow::Owned(out)
    }

    fn value(&self, i: usize, escaped: bool) -> &str {
        match self.entries.get(i) {
            Some((_, o, _)) if !escaped => o,
            Some((_, _, e)) => e,
            None => "",
        }
    }

    /// Whether `s` is a proper beginning of some placeholder, so it must wait for more text.
    fn could_begin(&self, s: &str) -> bool {
        let i = self.sorted.partition_point(|&e| self.placeholder(e) < s);
        self.sorted.get(i).is_some_and(|&e| {
            let p = self.placeholder(e);
            p.len() > s.len() && p.starts_with(s)
        })
    }

    fn placeholder(&self, i: usize) -> &str {
        self.entries.get(i).map_or("", |e| e.0.as_str())
    }

    /// A restorer for one stream of the answer.
    pub fn stream(self: &Arc<Self>) -> Restorer {
        Restorer::new(Arc::clone(self))
    }

    /// A restorer for one stream of JSON text (tool-call arguments).
    pub fn stream_json_escaped(self: &Arc<Self>) -> Restorer {
        Restorer::json_escaped(Arc::clone(self))
    }
}

/// Restores one stream incrementally; see the module documentation.
pub struct Restorer {
    map: Arc<Pseudonyms>,
    held: String,
    escaped: bool,
}

/// The held-back text is model output, but keep Debug free of content anyway.
impl fmt::Debug for Restorer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Restorer")
            .field("placeholders", &self.map.len())
            .field("held_bytes", &self.held.len())
            .field("json_escaped", &self.escaped)
            .finish()
    }
}

impl Restorer {
    pub fn new(map: Arc<Pseudonyms>) -> Self {
        Self {
            map,
            held: String::new(),
            escaped: false,
        }
    }

    /// For fragments of JSON text, where values are inserted JSON-escaped.
    pub fn json_escaped(map: Arc<Pseudonyms>) -> Self {
        Self {
            map,
            held: String::new(),
            escaped: true,
        }
    }

    /// Feeds the next chunk; returns the restored text that is safe to emit now.
    pub fn push(&mut self, chunk: &str) -> String {
        if self.map.is_empty() {
            return chunk.to_string();
        }
        let buf = if self.held.is_empty() {
            Cow::Borrowed(chunk)
        } else {
            let mut b = std::mem::take(&mut self.held);
            b.push_str(chunk);
            Cow::Owned(b)
        };
        // Complete placeholders end before `tail`; the rest may still be the start of one.
        let tail = self.map.find_iter(&buf).last().map_or(0, |m| m.1);
        let hold = self.hold_from(&buf, tail);
        // `hold` is a `[` or the end, so always a character boundary.
        let (emit, keep) = buf.split_at_checked(hold).unwrap_or((buf.as_ref(), ""));
        self.held = keep.to_string();
        self.map.replace(emit, self.escaped).into_owned()
    }

    /// Ends the stream: whatever was held back is not a placeholder after all.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// The earliest `[` after `tail`, within one placeholder length of the end, from which the
    /// rest could still become a placeholder.
    fn hold_from(&self, buf: &str, tail: usize) -> usize {
        let from = tail.max(buf.len().saturating_sub(self.map.longest));
        let mut p = from;
        // `[` is ASCII, so wherever it is found is a character boundary.
        while let Some(k) = buf
            .as_bytes()
            .get(p..)
            .and_then(|r| r.iter().position(|&b| b == b'['))
        {
            let at = p + k;
            if self.map.could_begin(buf.get(at..).unwrap_or("")) {
                return at;
            }
            p = at + 1;
        }
        buf.len()
    }
}

fn json_escape(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn map() -> Arc<Pseudonyms> {
        Arc::new(Pseudonyms::new(&[
            ("[PERSON_1_K3X9]".into(), "山田由美".into()),
            ("[PERSON_2_K3X9]".into(), "佐藤 \"健\"\\".into()),
            ("[EMAIL_1_K3X9]".into(), "h-sato@example.jp".into()),
        ]))
    }

    #[test]
    fn restores_only_minted_placeholders() {
        let m = map();
        assert_eq!(
            m.restore("[PERSON_1_K3X9]様、[PERSON_1]と[PERSON_1_ABCD]は別。[EMAIL_1_K3X9]"),
            "山田由美様、[PERSON_1]と[PERSON_1_ABCD]は別。h-sato@example.jp"
        );
        assert!(matches!(m.restore("no placeholders"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_escaped_restoration_keeps_the_json_valid() {
        let m = map();
        let args = r#"{"to": "[PERSON_2_K3X9]"}"#;
        let restored = m.restore_json_escaped(args);
        let v: serde_json::Value = serde_json::from_str(&restored).unwrap();
        assert_eq!(v["to"], "佐藤 \"健\"\\");
        let mut r = m.stream_json_escaped();
        let mut out = r.push(r#"{"to": "[PERSON_"#);
        out += &r.push(r#"2_K3X9]"}"#);
        out += &r.finish();
        assert_eq!(out, restored);
    }

    #[test]
    fn holds_back_only_a_possible_placeholder_start() {
        let m = map();
        let mut r = m.stream();
        assert_eq!(r.push("こんにちは[PER"), "こんにちは");
        assert_eq!(r.push("SON_1_K3X9]さん[x]"), "山田由美さん[x]");
        assert_eq!(r.push("[EMAIL_9"), "[EMAIL_9");
        assert_eq!(r.push("["), "");
        assert_eq!(r.finish(), "[");
    }

    proptest! {
        #[test]
        fn any_split_gives_the_whole_restoration(
            parts in proptest::collection::vec(prop_oneof![
                Just("[PERSON_1_K3X9]".to_string()),
                Just("[PERSON_2_K3X9]".to_string()),
                Just("[EMAIL_1_K3X9]".to_string()),
                Just("[PERSON_1".to_string()),
                Just("[".to_string()),
                Just("]".to_string()),
                "[a-zA-Z0-9_ \\[\\]あ-ん]{0,6}",
            ], 0..12),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
            escaped in any::<bool>(),
        ) {
            let text: String = parts.concat();
            let m = map();
            let whole = if escaped { m.restore_json_escaped(&text) } else { m.restore(&text) }.into_owned();
            let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
            let mut cuts: Vec<usize> = cuts.iter().map(|c| *c.get(&bounds)).collect();
            cuts.sort_unstable();
            let mut r = if escaped { m.stream_json_escaped() } else { m.stream() };
            let mut got = String::new();
            let mut prev = 0;
            for c in cuts.into_iter().chain([text.len()]) {
                got += &r.push(&text[prev..c]);
                prev = c;
            }
            got += &r.finish();
            prop_assert_eq!(got, whole);
        }
    }
}
