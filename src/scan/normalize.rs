//! The matching view of a text, for finding copied passages whatever the layout.
//!
//! A passage pasted into a deliverable is reflowed, re-spaced, converted between full-width and
//! half-width, and re-punctuated; none of that should hide it. Per character cluster (a character
//! with the combining or voicing marks that follow it), folding:
//! - applies NFKC (full-width ASCII to ASCII, half-width katakana with its voicing mark to
//!   full-width, compatibility characters to their plain form);
//! - lowercases;
//! - drops whitespace, zero-width and other default-ignorable characters, so line breaks and
//!   spacing never matter;
//! - drops dash, long-vowel, wave-dash and bullet marks (`ー ‐ – — − ～ 〜 ・ •`, ASCII `- ~`) and
//!   Markdown markup (`* # > \` _ |`): their use varies between writers (`サーバー`/`サーバ`),
//!   between Markdown and Word (`- item` becomes a bulleted paragraph), and they carry no content;
//! - folds `、。` to `,.` so Japanese and full-width (`，．`) punctuation styles match.
//!
//! Hiragana, katakana, common kanji and ASCII are recognised without the Unicode tables, so
//! folding Japanese prose costs a few comparisons per character; only the rest goes through them.
use unicode_normalization::char::canonical_combining_class;
use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

/// A folded view of a document with, for each view character, the original byte range it came
/// from (so passages can be quoted and located in the deliverable).
pub(crate) struct View {
    pub(crate) chars: Vec<char>,
    pub(crate) spans: Vec<(usize, usize)>,
}

impl View {
    pub(crate) fn of(text: &str) -> Self {
        let mut chars = Vec::with_capacity(text.len() / 2);
        let mut spans = Vec::with_capacity(text.len() / 2);
        fold(text, |c, start, end| {
            chars.push(c);
            spans.push((start, end));
        });
        Self { chars, spans }
    }
}

/// Folds `text`, calling `emit(c, start, end)` for each view character with the byte range of
/// the original cluster it came from.
pub(crate) fn fold(text: &str, mut emit: impl FnMut(char, usize, usize)) {
    let mut it = text.char_indices().peekable();
    let mut cluster = String::new();
    while let Some((start, c)) = it.next() {
        let joined = matches!(it.peek(), Some(&(_, d)) if joins_previous(d));
        // A mark with nothing to attach to (say, after a dropped space) is dropped too: emitted,
        // it would attach to whatever came before on a second fold, and folding must be stable.
        if is_mark(c) {
            continue;
        }
        if !joined {
            let end = start + c.len_utf8();
            if c.is_ascii() {
                if let Some(f) = fold_ascii(c) {
                    emit(f, start, end);
                }
            } else if is_plain(c) {
                emit(c, start, end);
            } else if is_nfkc_quick(std::iter::once(c)) == IsNormalized::Yes {
                fold_char(c, |f| emit(f, start, end));
            } else {
                for n in std::iter::once(c).nfkc() {
                    fold_char(n, |f| emit(f, start, end));
                }
            }
            continue;
        }
        cluster.clear();
        cluster.push(voicing(c));
        let mut end = start + c.len_utf8();
        while let Some(&(j, d)) = it.peek() {
            if !joins_previous(d) {
                break;
            }
            cluster.push(voicing(d));
            end = j + d.len_utf8();
            it.next();
        }
        // Marks whose base folds away (a space before `ﾞ`) go with it, for the same reason.
        let mut based = false;
        for n in cluster.nfkc() {
            if is_mark(n) && !based {
                continue;
            }
            fold_char(n, |f| {
                based = true;
                emit(f, start, end)
            });
        }
    }
}

/// Characters that need no folding and never combine with a neighbour: kana, CJK ideographs
/// and Japanese brackets.
fn is_plain(c: char) -> bool {
    matches!(c,
        '\u{3041}'..='\u{3096}'
        | '\u{30A1}'..='\u{30FA}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{300C}'..='\u{300F}')
}

/// Whether `c` belongs to the cluster of the character before it: combining marks, characters
/// that may compose with a predecessor, and the spacing and half-width voicing marks (`゛ ﾞ`),
/// which NFKC alone would leave apart from their kana.
fn joins_previous(c: char) -> bool {
    if c.is_ascii() || is_plain(c) {
        return false;
    }
    matches!(c, '\u{FF9E}' | '\u{FF9F}' | '\u{309B}' | '\u{309C}')
        || canonical_combining_class(c) != 0
        || is_nfkc_quick(std::iter::once(c)) == IsNormalized::Maybe
}

/// Voicing marks (spacing, half-width or combining) and other combining marks.
fn is_mark(c: char) -> bool {
    !c.is_ascii()
        && !is_plain(c)
        && (matches!(c, '\u{FF9E}' | '\u{FF9F}' | '\u{309B}' | '\u{309C}')
            || canonical_combining_class(c) != 0)
}

/// Voicing marks as their combining forms, so `か゛` and `ｶﾞ` compose to `が`.
fn voicing(c: char) -> char {
    match c {
        '\u{309B}' | '\u{FF9E}' => '\u{3099}',
        '\u{309C}' | '\u{FF9F}' => '\u{309A}',
        _ => c,
    }
}

fn fold_ascii(c: char) -> Option<char> {
    match c {
        c if c.is_ascii_whitespace() || c.is_ascii_control() => None,
        '*' | '#' | '>' | '`' | '_' | '|' | '-' | '~' => None,
        c => Some(c.to_ascii_lowercase()),
    }
}

/// Folds one NFKC character (see the module doc).
fn fold_char(c: char, mut out: impl FnMut(char)) {
    if c.is_ascii() {
        if let Some(f) = fold_ascii(c) {
            out(f);
        }
        return;
    }
    if c.is_whitespace() || is_ignorable(c) || is_dash_or_bullet(c) {
        return;
    }
    match c {
        '、' => out(','),
        '。' => out('.'),
        c if is_plain(c) => out(c),
        c => c.to_lowercase().for_each(out),
    }
}

/// Default-ignorable characters (zero-width spaces and joiners, bidi controls, variation
/// selectors, soft hyphen…): invisible, so they must not break a match.
fn is_ignorable(c: char) -> bool {
    matches!(c,
        '\u{00AD}'
        | '\u{034F}'
        | '\u{061C}'
        | '\u{115F}'..='\u{1160}'
        | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{3164}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}'
        | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFF8}'
        | '\u{E0000}'..='\u{E0FFF}')
}

fn is_dash_or_bullet(c: char) -> bool {
    matches!(c,
        '\u{00B7}'
        | '\u{02D7}'
        | '\u{058A}'
        | '\u{05BE}'
        | '\u{1806}'
        | '\u{2010}'..='\u{2015}'
        | '\u{2022}'..='\u{2023}'
        | '\u{2043}'
        | '\u{2212}'
        | '\u{2219}'
        | '\u{2500}'..='\u{2501}'
        | '\u{25A0}'..='\u{25A1}'
        | '\u{25C6}'..='\u{25C7}'
        | '\u{25CB}'
        | '\u{25CF}'
        | '\u{2E17}'
        | '\u{2E3A}'..='\u{2E3B}'
        | '\u{301C}'
        | '\u{3030}'
        | '\u{30FB}'..='\u{30FC}'
        | '\u{FE58}'
        | '\u{FE63}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn folded(s: &str) -> String {
        let mut out = String::new();
        fold(s, |c, _, _| out.push(c));
        out
    }

    #[test]
    fn width_case_space_and_dashes_do_not_matter() {
        assert_eq!(folded("ＡＢＣ１２３ａｂｃ"), folded("ABC123abc"));
        assert_eq!(folded("abc123abc"), "abc123abc");
        assert_eq!(folded("ｶﾞｲﾄﾞﾗｲﾝ"), folded("ガイドライン"));
        assert_eq!(folded("か\u{3099}"), "が");
        assert_eq!(folded("か゛"), "が");
        assert_eq!(folded("サーバー の\n設定"), folded("サーバの設定"));
        assert_eq!(folded("第１章　概要"), folded("第1章 概要"));
        assert_eq!(folded("本件は、完了。"), folded("本件は，完了．"));
        assert_eq!(folded("ゼ\u{200B}ロ幅\u{FEFF}"), "ゼロ幅");
        assert_eq!(folded("- **重要**: `設定`"), folded("重要:設定"));
        assert_eq!(folded("㍿"), "株式会社");
    }

    #[test]
    fn spans_point_at_the_original_characters() {
        let text = "ｶﾞ Ａ\n漢";
        let v = View::of(text);
        assert_eq!(v.chars, vec!['ガ', 'a', '漢']);
        let quoted: Vec<&str> = v.spans.iter().map(|&(s, e)| &text[s..e]).collect();
        assert_eq!(quoted, vec!["ｶﾞ", "Ａ", "漢"]);
    }

    proptest! {
        /// Spans are ordered, on character boundaries, and never overlap across clusters, so any
        /// run of view characters maps back to one slice of the original.
        #[test]
        fn spans_are_monotone_slices(s in "[a-zA-Zａ-ｚ０-９ｦ-ﾟ\u{3041}-\u{3096}\u{30A1}-\u{30FC}\u{3099}\u{309B}\u{FF9E}\u{200B}\u{0301} \n、。ー－-]{0,40}") {
            let v = View::of(&s);
            prop_assert_eq!(v.chars.len(), v.spans.len());
            let mut last = (0usize, 0usize);
            for &(a, b) in &v.spans {
                prop_assert!(a < b && b <= s.len());
                prop_assert!(s.is_char_boundary(a) && s.is_char_boundary(b));
                prop_assert!(a >= last.0 && (a >= last.1 || (a, b) == last));
                last = (a, b);
            }
        }

        /// Folding is idempotent on the scripts deliverables are written in: the view of a view
        /// is itself, so a passage reads the same wherever it was folded.
        #[test]
        fn folding_is_idempotent(s in "[a-zA-Zａ-ｚＡ-Ｚ０-９ｦ-ﾟ\u{3000}-\u{30FF}\u{4E00}-\u{4E80}\u{FF01}-\u{FF0F} \n\t]{0,40}") {
            let once = folded(&s);
            prop_assert_eq!(folded(&once), once);
        }
    }
}
