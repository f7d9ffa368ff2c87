//! The matching view of a text: NFKC-style folding plus the separators and invisible characters
//! people use to break up identifiers, with a map back to the original offsets.
//!
//! Detection runs on the folded view so that `０９０ー１２３４ー５６７８`, `090‐1234‐5678` and
//! `0​90-1234-5678` (with a zero-width space) look the same as `090-1234-5678`; replacement runs on
//! the original text, over the whole original span (zero-width characters inside it included).
//!
//! Folding, per character cluster (a character with the combining marks that follow it):
//! - default-ignorable characters (zero-width spaces and joiners, U+2060, U+FEFF, bidi controls,
//!   variation selectors, soft hyphen…) are removed;
//! - NFKC: full-width ASCII to ASCII, half-width katakana to full-width (with its voicing mark),
//!   compatibility characters (`㍿`, `①`, `ﬁ`…) to their plain form;
//! - every dash-like character (`‐ ‑ ‒ – — ―`, `−`, `－`…) to `-`, because NFKC leaves most of
//!   them alone and people use them as digit separators; the long-vowel marks `ー` and `ｰ` too,
//!   except right after kana, where they are part of the word (`データ` stays `データ`, while
//!   `080ー1234` and `ORCAー7` become `080-1234` and `ORCA-7`);
//! - every space-like character (U+3000, no-break and typographic spaces) to ` `.
//!
//! Letter case is not folded here: API-key detectors are case-sensitive. Term and keyword matching
//! is ASCII-case-insensitive on top of this view.
//!
//! The common characters of Japanese text (hiragana, katakana, kanji, ASCII) are recognised from
//! their lead byte without decoding, so folding a page of prose costs about one comparison per
//! character; only the rest goes through the Unicode tables.
use std::borrow::Cow;
use unicode_normalization::char::canonical_combining_class;
use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

/// One place where the view differs from the original: original bytes `o0..o1` became view bytes
/// `n0..n1` (empty when the original characters were removed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Edit {
    n0: usize,
    n1: usize,
    o0: usize,
    o1: usize,
}

/// A folded view of a text and the way back to the original offsets.
pub(crate) struct Normalized<'a> {
    text: Cow<'a, str>,
    /// Sorted by position, non-overlapping. Between two edits the view equals the original.
    edits: Vec<Edit>,
}

impl<'a> Normalized<'a> {
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The original offset where a span starting at view offset `p` starts. A position inside a
    /// folded character maps to that character's start; at a removed character, to just after it.
    pub(crate) fn to_orig_start(&self, p: usize) -> usize {
        // The first edit that ends after p.
        let i = self.edits.partition_point(|e| e.n1 <= p);
        if let Some(e) = self.edits.get(i) {
            if e.n0 <= p {
                return e.o0;
            }
        }
        match i.checked_sub(1).and_then(|j| self.edits.get(j)) {
            Some(prev) => prev.o1 + (p - prev.n1),
            None => p,
        }
    }

    /// The original offset where a span ending at view offset `p` ends. A position inside a folded
    /// character maps to that character's end; at a removed character, to just before it.
    pub(crate) fn to_orig_end(&self, p: usize) -> usize {
        // The last edit that starts before p.
        let j = self.edits.partition_point(|e| e.n0 < p);
        match j.checked_sub(1).and_then(|k| self.edits.get(k)) {
            Some(prev) if prev.n1 >= p => prev.o1,
            Some(prev) => prev.o1 + (p - prev.n1),
            None => p,
        }
    }
}

/// Builds the view lazily: nothing is copied until the first edit, and then only the runs between
/// edits.
struct Writer<'a> {
    src: &'a str,
    out: String,
    /// `out` holds the view of `src[..synced]`.
    synced: usize,
    edits: Vec<Edit>,
}

impl<'a> Writer<'a> {
    fn edit(&mut self, o0: usize, o1: usize, repl: &str) {
        if self.out.capacity() == 0 {
            self.out.reserve(self.src.len() + 16);
        }
        self.out
            .push_str(self.src.get(self.synced..o0).unwrap_or(""));
        let n0 = self.out.len();
        self.out.push_str(repl);
        self.edits.push(Edit {
            n0,
            n1: self.out.len(),
            o0,
            o1,
        });
        self.synced = o1;
    }

    /// Forgets the view of `src[o..]`, so that the cluster starting at `o` can be folded again with
    /// a combining mark that follows it. `o` is the start of a cluster. Returns whether the view
    /// before it ends with kana.
    fn rollback(&mut self, o: usize) -> bool {
        if self.synced > o {
            while self.edits.last().is_some_and(|e| e.o0 >= o) {
                self.edits.pop();
            }
            let n = match self.edits.last() {
                Some(e) => e.n1 + (o - e.o1),
                None => o,
            };
            self.out.truncate(n);
            self.synced = o;
        }
        // The view of `src[..o]` is `out` followed by the unchanged `src[synced..o]`.
        let last = match self.src.get(self.synced..o) {
            Some(run) if !run.is_empty() => run.chars().next_back(),
            _ => self.out.chars().next_back(),
        };
        last.is_some_and(is_kana)
    }

    fn finish(mut self) -> Normalized<'a> {
        if self.edits.is_empty() {
            return Normalized {
                text: Cow::Borrowed(self.src),
                edits: Vec::new(),
            };
        }
        self.out.push_str(self.src.get(self.synced..).unwrap_or(""));
        Normalized {
            text: Cow::Owned(self.out),
            edits: self.edits,
        }
    }
}

/// Folds `src` into its matching view.
pub(crate) fn normalize(src: &str) -> Normalized<'_> {
    let b = src.as_bytes();
    let mut w = Writer {
        src,
        out: String::new(),
        synced: 0,
        edits: Vec::new(),
    };
    let mut i = 0;
    // Start of the current cluster, which a following combining mark joins.
    let mut unit = 0;
    // Whether the view so far ends with kana, after which `ー` is a long-vowel mark.
    let mut kana = false;
    while let Some(&lead) = b.get(i) {
        if lead < 0x80 {
            if matches!(lead, b'\\' | b'&' | b'\r') {
                (i, unit, kana) = escapes(&mut w, b, i, kana);
                continue;
            }
            unit = i;
            kana = false;
            i += 1;
            continue;
        }
        // Runs of kanji and of kana, most of a Japanese text, are unchanged: stepped through
        // with one test per character.
        if (0xE4..=0xE9).contains(&lead) {
            let mut j = i + 3;
            while b.get(j).is_some_and(|x| (0xE4..=0xE9).contains(x)) {
                j += 3;
            }
            (unit, kana, i) = (j - 3, false, j);
            continue;
        }
        if kept_kana_at(b, i, kana) {
            let mut j = i + 3;
            while kept_kana_at(b, j, true) {
                j += 3;
            }
            (unit, kana, i) = (j - 3, true, j);
            continue;
        }
        // Valid UTF-8: the continuation bytes are there.
        let b1 = b.get(i + 1).copied().unwrap_or(0);
        let b2 = b.get(i + 2).copied().unwrap_or(0);
        // (replacement, ends with kana) for the other characters recognised from their bytes
        // (kanji and kana were stepped through above).
        let fast: Option<(Option<&str>, bool)> = match (lead, b1, b2) {
            (0xE3, 0x80, 0x80) => Some((Some(" "), false)), // U+3000 ideographic space
            (0xE3, 0x83, 0xBC) => Some((Some("-"), false)), // ー used as a dash (not after kana)
            (0xE3, 0x80, 0x81..=0xB5 | 0xB7 | 0xBB..=0xBF) => Some((None, false)), // punctuation
            (0xE3, 0x90..=0xBF, _) => Some((None, false)),  // CJK extension A
            _ => None,
        };
        if let Some((repl, ends_kana)) = fast {
            unit = i;
            kana = ends_kana;
            if let Some(r) = repl {
                w.edit(i, i + 3, r);
            }
            i += 3;
            continue;
        }
        let Some(c) = src.get(i..).and_then(|s| s.chars().next()) else {
            break;
        };
        let end = i + c.len_utf8();
        if joins_previous(c) && unit < i {
            // Fold the previous cluster again, with this mark: `ｶﾞ` → `ガ`, `e\u{301}` → `é`.
            let kana_before = w.rollback(unit);
            let cluster = src.get(unit..end).unwrap_or("");
            let (folded, k) = fold_str(cluster, kana_before);
            if folded != cluster {
                w.edit(unit, end, &folded);
            }
            kana = k;
            i = end;
            continue;
        }
        unit = i;
        match fold_char(c, kana) {
            Fold::Same => kana = is_kana(c),
            Fold::Char(r) => {
                let mut buf = [0u8; 4];
                w.edit(i, end, r.encode_utf8(&mut buf));
                kana = is_kana(r);
            }
            Fold::Str(s) => {
                w.edit(i, end, &s);
                if let Some(last) = s.chars().next_back() {
                    kana = is_kana(last);
                }
            }
        }
        i = end;
    }
    w.finish()
}

/// Whether a hiragana or katakana character that folding leaves alone begins at `i` (`ー` too
/// when it follows kana, `after_kana`): the cases of the loop's byte match that keep kana.
#[inline]
fn kept_kana_at(b: &[u8], i: usize, after_kana: bool) -> bool {
    match b.get(i..i + 3) {
        Some(&[0xE3, 0x81, _]) => true,
        Some(&[0xE3, 0x82, x]) => !matches!(x, 0x99..=0x9C | 0x9F),
        Some(&[0xE3, 0x83, 0xBC]) => after_kana,
        Some(&[0xE3, 0x83, x]) => x != 0xBF,
        _ => false,
    }
}

/// Folds what stands for another character in text pasted from code and markup, so that fields,
/// tables and tags read the same there: JSON escapes inside a string (tool arguments, tool
/// results: `\uXXXX`, as `json.dumps` writes by default, `\n`, `\t`, `\/`), HTML character
/// references (`&lt;`, `&#26481;`), and a carriage return that ends a line on its own. The view
/// sees the character, and a span over it replaces the whole escape. Returns the next offset, the
/// cluster start and whether the view now ends with kana. Out of line: rare, and kept off the loop
/// that folds ordinary text.
#[cold]
#[inline(never)]
fn escapes(w: &mut Writer<'_>, b: &[u8], i: usize, kana: bool) -> (usize, usize, bool) {
    let found = match b.get(i) {
        Some(b'\\') => {
            let run = b
                .get(i..)
                .unwrap_or(&[])
                .iter()
                .take_while(|&&x| x == b'\\')
                .count()
                .max(1);
            // Judge a run of backslashes once: its tail alone would read differently.
            match json_escape(b, i + run - 1, run) {
                Some(e) => e,
                None => return (i + run, i + run - 1, false),
            }
        }
        Some(b'&') => match html_reference(b, i) {
            Some(e) => e,
            None => return (i + 1, i, false),
        },
        _ => {
            if b.get(i + 1) != Some(&b'\n') {
                w.edit(i, i + 1, "\n");
            }
            return (i + 1, i, false);
        }
    };
    let (start, end, c) = found;
    let folded = match fold_char(c, kana) {
        Fold::Same => c.to_string(),
        Fold::Char(r) => r.to_string(),
        Fold::Str(s) => s,
    };
    w.edit(start, end, &folded);
    (end, start, folded.chars().next_back().is_some_and(is_kana))
}

/// A JSON escape at `start`, the last of a run of `run` backslashes: its start and end offsets
/// and the character. Only when the `\` is not itself escaped (the run is odd). `\n`, `\t`, `\/`
/// and `\r` (a line break of its own unless `\n` follows) are read; `\uXXXX` (or a surrogate pair)
/// too, but not for quotes, backslashes and other control characters, which would change how the
/// text reads.
fn json_escape(b: &[u8], start: usize, run: usize) -> Option<(usize, usize, char)> {
    if run % 2 == 0 {
        return None;
    }
    match b.get(start + 1) {
        Some(b'n') => return Some((start, start + 2, '\n')),
        Some(b't') => return Some((start, start + 2, '\t')),
        Some(b'/') => return Some((start, start + 2, '/')),
        Some(b'r') if b.get(start + 2..start + 4) == Some(b"\\n") => {
            return Some((start, start + 2, '\r'))
        }
        Some(b'r') => return Some((start, start + 2, '\n')),
        Some(b'u') => {}
        _ => return None,
    }
    let hex = |at: usize| -> Option<u32> {
        let h = b.get(at..at + 4)?;
        if !h.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    };
    let hi = hex(start + 2)?;
    let (cp, end) = if (0xD800..0xDC00).contains(&hi) {
        if b.get(start + 6..start + 8) != Some(b"\\u") {
            return None;
        }
        let lo = hex(start + 8)?;
        if !(0xDC00..0xE000).contains(&lo) {
            return None;
        }
        (0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00), start + 12)
    } else {
        (hi, start + 6)
    };
    let c = char::from_u32(cp)?;
    if (c.is_control() && !matches!(c, '\n' | '\t')) || matches!(c, '"' | '\\') {
        return None;
    }
    Some((start, end, c))
}

/// An HTML character reference at `start` (`&lt;`, `&amp;`, `&#26481;`, `&#x6771;`): its start
/// and end offsets and the character. Not for control characters other than line breaks and tabs.
fn html_reference(b: &[u8], start: usize) -> Option<(usize, usize, char)> {
    let rest = b.get(start + 1..(start + 12).min(b.len()))?;
    let semi = rest.iter().position(|&x| x == b';')?;
    let name = rest.get(..semi)?;
    let c = match name {
        // HTML accepts these four in upper case too (`&LT;`).
        b"lt" | b"LT" => '<',
        b"gt" | b"GT" => '>',
        b"amp" | b"AMP" => '&',
        b"quot" | b"QUOT" => '"',
        b"apos" => '\'',
        // Spaces a Japanese form lays its labels out with (`氏&emsp;名`), and HTML5's names for
        // an address's marks (`k.mori&commat;example&period;jp`).
        b"nbsp" | b"ensp" | b"emsp" | b"thinsp" => ' ',
        b"commat" => '@',
        b"period" => '.',
        [b'#', b'x' | b'X', hex @ ..] if !hex.is_empty() => {
            char::from_u32(u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?)?
        }
        [b'#', dec @ ..] if !dec.is_empty() && dec.iter().all(u8::is_ascii_digit) => {
            char::from_u32(std::str::from_utf8(dec).ok()?.parse().ok()?)?
        }
        _ => return None,
    };
    if c.is_control() && !matches!(c, '\n' | '\t') {
        return None;
    }
    Some((start, start + 2 + semi, c))
}

enum Fold {
    Same,
    Char(char),
    Str(String),
}

fn fold_char(c: char, kana: bool) -> Fold {
    if is_ignorable(c) {
        return Fold::Str(String::new());
    }
    if is_long_vowel(c) {
        return match (kana, c) {
            (true, '\u{30FC}') => Fold::Same,
            (true, _) => Fold::Char('\u{30FC}'),
            (false, _) => Fold::Char('-'),
        };
    }
    if is_dash(c) {
        return Fold::Char('-');
    }
    if is_space(c) {
        return Fold::Char(' ');
    }
    if ('\u{FF01}'..='\u{FF5E}').contains(&c) {
        // Full-width ASCII. U+FF0D becomes `-` here too.
        return match char::from_u32(c as u32 - 0xFEE0) {
            Some(a) => Fold::Char(a),
            None => Fold::Same,
        };
    }
    if is_nfkc_quick(std::iter::once(c)) == IsNormalized::Yes {
        return Fold::Same;
    }
    let mut buf = [0u8; 4];
    let (s, _) = fold_str(c.encode_utf8(&mut buf), kana);
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(one), None) if one == c => Fold::Same,
        (Some(one), None) => Fold::Char(one),
        _ => Fold::Str(s),
    }
}

/// NFKC, then the separator and invisible-character folds; `kana` says whether the view before
/// `s` ends with kana. Returns the folded text and whether it ends with kana.
fn fold_str(s: &str, mut kana: bool) -> (String, bool) {
    let mut out = String::with_capacity(s.len());
    for c in s.nfkc() {
        if is_ignorable(c) {
            continue;
        }
        let f = if is_long_vowel(c) && kana {
            '\u{30FC}'
        } else if is_dash(c) || is_long_vowel(c) {
            '-'
        } else if is_space(c) {
            ' '
        } else {
            c
        };
        out.push(f);
        kana = is_kana(f);
    }
    (out, kana)
}

/// Hiragana and katakana (the long-vowel mark included), after which `ー` lengthens a vowel.
fn is_kana(c: char) -> bool {
    matches!(c, '\u{3041}'..='\u{3096}' | '\u{309D}'..='\u{309F}' | '\u{30A1}'..='\u{30FA}' | '\u{30FC}'..='\u{30FF}' | '\u{31F0}'..='\u{31FF}')
}

/// `ー` and its half-width form: a long-vowel mark after kana, a dash elsewhere.
fn is_long_vowel(c: char) -> bool {
    matches!(c, '\u{30FC}' | '\u{FF70}')
}

/// Marks that belong to the character before them.
fn joins_previous(c: char) -> bool {
    matches!(c, '\u{FF9E}' | '\u{FF9F}') || canonical_combining_class(c) != 0
}

/// Default-ignorable code points: invisible, and used to split identifiers so a regex misses them.
fn is_ignorable(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}')
}

/// Dashes and the long-vowel marks that stand in for them between digits.
fn is_dash(c: char) -> bool {
    matches!(
        c,
        '\u{2010}'
            ..='\u{2015}'
                | '\u{2043}'
                | '\u{2212}'
                | '\u{2E3A}'
                | '\u{2E3B}'
                | '\u{FE58}'
                | '\u{FE63}'
                | '\u{FF0D}'
    )
}

fn is_space(c: char) -> bool {
    matches!(
        c,
        '\u{00A0}' | '\u{1680}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

/// Folds a configuration string (a term, keyword, field name or tag) exactly as texts are folded.
pub(crate) fn fold(s: &str) -> String {
    normalize(s).text().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn view(s: &str) -> String {
        normalize(s).text().to_string()
    }

    #[test]
    fn folds_width_dashes_spaces_and_invisibles() {
        assert_eq!(view("０９０ー１２３４ー５６７８"), "090-1234-5678");
        assert_eq!(
            view("0\u{200B}90\u{2010}12\u{FEFF}34\u{2015}5678"),
            "090-1234-5678"
        );
        assert_eq!(view("ＡＢＣ　ｄｅｆ"), "ABC def");
        assert_eq!(view("ﾌﾟﾛｼﾞｪｸﾄ･ｶﾜｾﾐ"), "プロジェクト・カワセミ");
        assert_eq!(view("フ\u{309A}ロ"), "プロ");
        assert_eq!(view("㍿"), "株式会社");
        assert_eq!(view("葛\u{E0100}飾"), "葛飾");
        assert_eq!(view("データ"), "データ");
        assert_eq!(view("ﾃﾞｰﾀとORCAｰ7と080ー1234"), "データとORCA-7と080-1234");
        assert_eq!(view("ー1"), "-1");
        assert_eq!(view("plain ascii"), "plain ascii");
    }

    #[test]
    fn reads_json_escapes_html_references_and_lone_carriage_returns() {
        assert_eq!(
            view("氏名,電話\\n山田,090\\r\\n<\\/機密>"),
            "氏名,電話\n山田,090\r\n</機密>"
        );
        assert_eq!(view("a\\\\nb \\\\\\tc \\x"), "a\\\\nb \\\\\tc \\x");
        assert_eq!(
            view("&lt;機密&gt;&#26481;&#x96F2; &amp;lt; a&b &#1; &zz;"),
            "<機密>東雲 &lt; a&b &#1; &zz;"
        );
        assert_eq!(view("&LT;機密&GT; &Lt;"), "<機密> &Lt;");
        assert_eq!(view("氏名\r山田\r\n住所\r"), "氏名\n山田\r\n住所\n");
        assert_eq!(view("a\\rb"), "a\nb");
        let src = "x&#26481;&#38642;y";
        let n = normalize(src);
        let (o0, o1) = (n.to_orig_start(1), n.to_orig_end(1 + "東雲".len()));
        assert_eq!(&src[o0..o1], "&#26481;&#38642;");
    }

    #[test]
    fn unchanged_text_is_borrowed() {
        assert!(matches!(
            normalize("東京都の会議メモ 2026年").text,
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn offsets_map_back_over_the_whole_original_span() {
        let src = "番号は０\u{200B}９０ー１２３４です";
        let n = normalize(src);
        let start = n.text().find("090").unwrap();
        let end = start + "090-1234".len();
        let (o0, o1) = (n.to_orig_start(start), n.to_orig_end(end));
        assert_eq!(&src[o0..o1], "０\u{200B}９０ー１２３４");
    }

    /// Characters whose view is themselves, and decorated spellings of them.
    fn base_char() -> impl Strategy<Value = char> {
        prop_oneof![
            proptest::char::range('0', '9'),
            proptest::char::range('a', 'z'),
            proptest::char::range('A', 'Z'),
            Just('-'),
            Just(' '),
            Just('@'),
            Just('\n'),
            proptest::char::range('ぁ', 'ゖ'),
            proptest::char::range('ァ', 'ヺ'),
            proptest::char::range('一', '龥'),
            Just('。'),
            Just('、'),
        ]
    }

    fn decorate(c: char, how: u8, after_kana: bool) -> String {
        let wide = |c: char| char::from_u32(c as u32 + 0xFEE0).unwrap_or(c);
        match (c, how % 4) {
            ('-', 1) if !after_kana => "ー".to_string(),
            ('-', 2) => "－".to_string(),
            ('-', 3) => "\u{2013}".to_string(),
            (' ', 1 | 2) => "\u{3000}".to_string(),
            (c, 1) if c.is_ascii_alphanumeric() || c == '@' => wide(c).to_string(),
            (c, _) => c.to_string(),
        }
    }

    const INVISIBLE: [&str; 7] = [
        "\u{200B}",
        "\u{200C}",
        "\u{200D}",
        "\u{2060}",
        "\u{FEFF}",
        "\u{FE0F}",
        "\u{E0101}",
    ];

    proptest! {
        #[test]
        fn decorated_text_folds_to_the_plain_text_and_maps_back(
            chars in proptest::collection::vec((base_char(), any::<u8>(), proptest::option::of(0usize..7)), 0..40),
            cut in any::<(prop::sample::Index, prop::sample::Index)>(),
        ) {
            let plain: String = chars.iter().map(|(c, _, _)| *c).collect();
            let mut deco = String::new();
            let mut after_kana = false;
            for (c, how, inv) in &chars {
                deco.push_str(&decorate(*c, *how, after_kana));
                after_kana = is_kana(*c);
                if let Some(k) = inv {
                    deco.push_str(INVISIBLE[*k]);
                }
            }
            let n = normalize(&deco);
            prop_assert_eq!(n.text(), plain.as_str());
            // Any span of the view maps to an original span whose view is exactly that span.
            let bounds: Vec<usize> = plain.char_indices().map(|(i, _)| i).chain([plain.len()]).collect();
            let (mut a, mut b) = (cut.0.get(&bounds).to_owned(), cut.1.get(&bounds).to_owned());
            if a > b { std::mem::swap(&mut a, &mut b); }
            let (o0, o1) = (n.to_orig_start(a), n.to_orig_end(b));
            prop_assert!(o0 <= o1 || a == b);
            prop_assert!(deco.is_char_boundary(o0) && deco.is_char_boundary(o1));
            if a < b {
                let orig = &deco[o0..o1];
                prop_assert_eq!(view(orig), &plain[a..b]);
            }
        }

        #[test]
        fn any_text_maps_to_char_boundaries_in_order(s in "\\PC{0,60}") {
            let n = normalize(&s);
            let v = n.text();
            let (mut last0, mut last1) = (0, 0);
            for (i, _) in v.char_indices().chain([(v.len(), ' ')]) {
                let o0 = n.to_orig_start(i);
                let o1 = n.to_orig_end(i);
                prop_assert!(s.is_char_boundary(o0) && s.is_char_boundary(o1));
                prop_assert!(o0 >= last0 && o1 >= last1);
                prop_assert!(o0 <= s.len() && o1 <= s.len());
                (last0, last1) = (o0, o1);
            }
            prop_assert_eq!(n.to_orig_end(v.len()) <= s.len(), true);
        }
    }
}
