//! What one contract adds to the shipped rules: its term list (client names, code names, people)
//! and extra confidential field names. Compiled into automata once per contract and reused by every
//! request of that contract, so a long term list costs nothing per request.
use super::clean::random_salt;
use super::finder::Finder;
use super::normalize::fold;
use super::scan::floor_boundary;
use anyhow::anyhow;
use std::fmt;

/// A contract's own redaction settings, as stored by the administrator.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ContractRedaction {
    /// Matched regardless of width and (ASCII) case, through dashes, slashes, spaces, invisible
    /// characters and a `+` between letters or digits, and with either form of kanji that have a
    /// traditional one (`櫻` and `桜`).
    pub terms: Vec<String>,
    /// Field names treated like the shipped ones (`key: value`, embedded JSON…).
    pub extra_fields: Vec<String>,
}

/// Terms are themselves confidential (client names): never printed.
impl fmt::Debug for ContractRedaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContractRedaction")
            .field("terms", &self.terms.len())
            .field("extra_fields", &self.extra_fields.len())
            .finish()
    }
}

/// Random for each compiled list.
pub(crate) struct Salt(pub(crate) [u8; 32]);

impl Default for Salt {
    fn default() -> Self {
        Self(random_salt())
    }
}

/// The compiled form of a [`ContractRedaction`]. Build once per contract (and again when its
/// terms change) and share it between requests.
#[derive(Default)]
pub struct ContractMatcher {
    pub(crate) terms: Option<Terms>,
    pub(crate) fields: Option<Finder>,
    /// Part of the key of every text found clean under this list (`clean.rs`): the list's terms
    /// are part of what "clean" means, so a new list starts afresh.
    pub(crate) salt: Salt,
    term_count: usize,
    field_count: usize,
}

/// Terms are matched without their separators, so that `ORCA-7` is also found as `ORCA 7` and
/// `ORCA7`, and `株式会社みなと商事` as `株式会社 みなと商事`. Taking the separators out of a
/// whole text would cost as much as the rest of the scan, so a cheap search for each term's
/// anchors (the first and last few characters of its longest separator-free part) comes first, and
/// only the text around an anchor is searched without separators.
pub(crate) struct Terms {
    anchors: Finder,
    /// The terms without separators.
    compact: Finder,
    /// How far from an anchor a term may begin or end, in bytes of the view.
    reach: usize,
}

impl Terms {
    /// The terms in `lower` (the ASCII-lower-cased view): (start, end) in its offsets, sorted.
    pub(crate) fn find(&self, lower: &str) -> Vec<(usize, usize)> {
        // Around each anchor, and around each line break inside a word (`みなと商⏎事`, a line
        // wrapped where a term's anchors are split), in the order they begin.
        let mut around: Vec<(usize, usize)> = self
            .anchors
            .find_iter(lower)
            .map(|(_, s, e)| (s, e))
            .collect();
        let anchored = around.len();
        around.extend(wrapped_breaks(lower).map(|p| (p, p + 1)));
        if around.len() > anchored {
            around.sort_unstable();
        }
        let mut windows: Vec<(usize, usize)> = Vec::new();
        for (s, e) in around {
            let (a, b) = (s.saturating_sub(self.reach), e.saturating_add(self.reach));
            match windows.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => windows.push((a, b)),
            }
        }
        let mut out = Vec::new();
        for (a, b) in windows {
            let (a, b) = (floor_boundary(lower, a), floor_boundary(lower, b));
            let Some(window) = lower.get(a..b) else {
                continue;
            };
            let mut views = vec![Compact::new(window)];
            if may_loosen(window.as_bytes()) {
                views.push(Compact::loose(window));
            }
            for compact in &views {
                for (_, cs, ce) in self.compact.find_iter(&compact.text) {
                    if let Some(last) = ce.checked_sub(1) {
                        let end = a + compact.to_lower(last) + 1;
                        // A reading right after the term names it as well: `東雲物産（シノノメ）`.
                        let end = end + reading_len(lower.as_bytes(), end);
                        out.push((a + compact.to_lower(cs), end));
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Line breaks with a kanji or kana right before (a `\r` aside) and right after: a line wrapped in
/// the middle of a word, as text pasted from a PDF or a fixed-width mail is. A line that ends a
/// sentence ends with punctuation, so prose opens few of these.
fn wrapped_breaks(lower: &str) -> impl Iterator<Item = usize> + '_ {
    let letter = |c: char| matches!(c, '\u{3041}'..='\u{3096}' | '\u{30A1}'..='\u{30FA}' | '\u{30FC}' | '々' | '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}');
    memchr::memchr_iter(b'\n', lower.as_bytes()).filter(move |&p| {
        let before = lower.get(..p).unwrap_or("").trim_end_matches('\r');
        let after = lower.get(p + 1..).unwrap_or("");
        before.chars().next_back().is_some_and(letter) && after.chars().next().is_some_and(letter)
    })
}

/// The first and the last `ANCHOR_CHARS` characters of the longest separator-free part of a
/// folded term: a line break or space that splits one of them rarely splits the other. An anchor
/// does not begin with one of the hiragana that are everywhere in prose (`と`, `の`…: each would
/// be a candidate to check): it moves, back first, then inward, shortening to 2 characters, when
/// it would. Back first: a short anchor is a common word (`計画` of `ひばり計画`, in every plan's
/// minutes), and every hit of it opens a window to search. The two may then be one (`ひばり`
/// twice): a space inside it (`ひば り計画`) is missed, a line break inside it is not
/// (`wrapped_breaks`), nor spacing between every character (`spaced_anchor`).
fn anchors(folded: &str) -> [String; 2] {
    let part: Vec<char> = folded
        .split(is_term_separator)
        .max_by_key(|p| p.chars().count())
        .unwrap_or("")
        .chars()
        .collect();
    let n = part.len();
    // Two 3-character anchors of a 4-character term (`東雲物産`) overlap in the middle, so one
    // line break there (`東雲⏎物産`, a wrapped line) splits both: the halves of a 4-kanji term
    // are its anchors. Not for kana or ASCII, whose 2-character pieces (`セミ` of `カワセミ`,
    // `かわ`) are everywhere in prose.
    let kanji =
        |c: &char| ('\u{4E00}'..='\u{9FFF}').contains(c) || ('\u{3400}'..='\u{4DBF}').contains(c);
    let size = if n == 4 && part.iter().all(kanji) {
        2
    } else {
        ANCHOR_CHARS
    };
    let take = |from: usize| -> String {
        part.get(from..(from + size).min(n))
            .unwrap_or(&[])
            .iter()
            .collect()
    };
    let rare = |i: &usize| !part.get(*i).is_some_and(|c| COMMON_KANA.contains(*c));
    let last_start = n.saturating_sub(size);
    // Anchors of at least 2 characters (when the term has them).
    let latest = n.saturating_sub(2);
    let first = (0..=latest.max(last_start)).find(rare).unwrap_or(0);
    let last = std::iter::once(last_start)
        .chain((0..last_start).rev())
        .chain((last_start + 1..=latest).take(1))
        .find(rare)
        .unwrap_or(last_start);
    [take(first), take(last)]
}

/// Hiragana that particles, endings and the commonest words begin with, by how often they
/// open a word in business prose (`へ` too is a particle, but rarely begins one): no anchor
/// begins with one.
const COMMON_KANA: &str =
    "ぁあぃいぅうぇえぉおかがきぎくけげこごさざしじすせそぞただちっつてでとどなにぬねのはばぱまみむめもゃやゅゆょよらりるれろわをん";

/// Legal forms a company name is written with, or without: `株式会社みなと商事` is also
/// `みなと商事`, `(株)みなと商事` (`㈱` folds to it) and `みなと商事株式会社`.
const LEGAL_FORMS: &[&str] = &[
    "株式会社",
    "有限会社",
    "合同会社",
    "合資会社",
    "合名会社",
    "(株)",
    "(有)",
    "(同)",
];

/// Words that introduce a code name: `プロジェクト・カワセミ` is also just `カワセミ`,
/// `案件コードKAGURA` just `KAGURA` (lower case: terms are folded).
const CODE_NAME_PREFIXES: &[&str] = &[
    "プロジェクト",
    "project",
    "案件コード",
    "案件名",
    "コードネーム",
    "コード名",
    "codename",
    "code name",
];

/// A term and the ways it is also written: for a company, its name without the legal form (when
/// that leaves 2 characters); for a code name, the name without the word that introduces it (when
/// that leaves a word rare enough to stand alone); and each of these in the other kana
/// (`みなと商事` is also written `ミナト商事`).
fn with_variants(folded: &str) -> Vec<String> {
    let mut out = vec![folded.to_string()];
    for f in LEGAL_FORMS {
        let bare = folded
            .strip_prefix(f)
            .or_else(|| folded.strip_suffix(f))
            .map(|b| b.trim_matches(is_term_separator));
        if let Some(b) = bare.filter(|b| b.chars().count() >= 2) {
            out.push(b.to_string());
        }
    }
    for p in CODE_NAME_PREFIXES {
        let Some(rest) = folded.strip_prefix(p) else {
            continue;
        };
        let core = rest.trim_start_matches(|c| is_term_separator(c) || c == ':');
        // `プロジェクト・カワセミ`, `案件コードKAGURA`; not `projector x` or `プロジェクト計画書`
        // (a word of its own, which would then be replaced everywhere).
        let apart = core.len() < rest.len() || core.is_ascii() && !p.is_ascii();
        if apart && stands_alone(core) {
            out.push(core.to_string());
        }
    }
    let kana: Vec<String> = out.iter().flat_map(|t| other_kana(t)).collect();
    out.extend(kana);
    let old: Vec<String> = out.iter().flat_map(|t| old_forms(t)).collect();
    out.extend(old);
    out
}

/// The other ways a loanword in katakana is commonly spelled: with or without the small `ッ`
/// before `クス` (`ロジスティクス`, `ロジスティックス`), and, after a name in kanji, the plural `ズ`
/// dropped (`北斗システムズ` is also called `北斗システム`).
fn loanword_spellings(term: &str) -> Vec<String> {
    let mut out = Vec::new();
    // Only after a name in kanji: `ミクス` alone would make every `ミックス` the term.
    let named = term.chars().any(|c| ('\u{4E00}'..='\u{9FFF}').contains(&c));
    if !named {
        return out;
    }
    let split = |k: usize, skip: usize| Some((term.get(..k)?, term.get(k + skip..)?));
    if let Some((head, tail)) = term.find("ックス").and_then(|k| split(k, 'ッ'.len_utf8())) {
        out.push(format!("{head}{tail}"));
    } else if let Some((head, tail)) = term.find("クス").and_then(|k| split(k, 0)) {
        if head.chars().next_back().is_some_and(is_katakana) {
            out.push(format!("{head}ッ{tail}"));
        }
    }
    if let Some(stem) = term.strip_suffix('ズ') {
        let kana = stem
            .chars()
            .rev()
            .take_while(|&c| is_katakana(c) || c == 'ー')
            .count();
        if kana >= 3 {
            out.push(stem.to_string());
        }
    }
    out
}

/// Kanji of names and their traditional forms, which company and family names keep
/// (`櫻川製薬` for `桜川製薬`, `髙橋`, `山﨑`, `渡邊`). Not `會` of `株式會社`: every company
/// term would double its spellings for a form hardly written any more.
const OLD_FORMS: &[(char, &[char])] = &[
    ('桜', &['櫻']),
    ('高', &['髙']),
    ('崎', &['﨑', '嵜']),
    ('斎', &['齋', '齊']),
    ('辺', &['邊', '邉']),
    ('浜', &['濱']),
    ('沢', &['澤']),
    ('広', &['廣']),
    ('国', &['國']),
    ('竜', &['龍']),
    ('恵', &['惠']),
    ('徳', &['德']),
    ('真', &['眞']),
    ('栄', &['榮']),
    ('薬', &['藥']),
    ('関', &['關']),
    ('富', &['冨']),
    ('島', &['嶋']),
    ('蔵', &['藏']),
];

/// A term's spellings with one of its kanji in its other form (traditional for a term written
/// with the common one, common for one registered in the traditional form: `株式会社髙島屋` is
/// also written `高島屋`), and with all of them (at most nine spellings: a term rarely has more
/// than two such kanji).
fn old_forms(term: &str) -> Vec<String> {
    let chars: Vec<char> = term.chars().collect();
    let mut out: Vec<String> = Vec::new();
    let mut all = chars.clone();
    for (i, c) in chars.iter().enumerate() {
        let found = OLD_FORMS
            .iter()
            .find(|(new, _)| new == c)
            .map(|(_, olds)| *olds);
        let common = OLD_FORMS
            .iter()
            .find(|(_, olds)| olds.contains(c))
            .map(|(new, _)| std::slice::from_ref(new));
        let Some(olds) = found.or(common) else {
            continue;
        };
        for old in olds.iter() {
            if out.len() >= 8 {
                return out;
            }
            let mut one = chars.clone();
            if let Some(x) = one.get_mut(i) {
                *x = *old;
            }
            out.push(one.into_iter().collect());
        }
        if let (Some(x), Some(first)) = (all.get_mut(i), olds.first()) {
            *x = *first;
        }
    }
    let all: String = all.into_iter().collect();
    if !out.contains(&all) && all != term {
        out.push(all);
    }
    out
}

/// Four characters, or three that are not all hiragana (`ひばり` is also a common word),
/// separators not counted.
fn stands_alone(core: &str) -> bool {
    let n = core.chars().filter(|c| !is_term_separator(*c)).count();
    n >= 4 || n == 3 && !core.chars().all(is_hiragana)
}

fn is_hiragana(c: char) -> bool {
    ('\u{3041}'..='\u{3096}').contains(&c)
}

fn is_katakana(c: char) -> bool {
    ('\u{30A1}'..='\u{30F6}').contains(&c)
}

/// The term with its hiragana written in katakana, and, for a long name written in kana alone,
/// with its katakana written in hiragana (the ones that differ from the term). Shorter
/// hiragana spellings would begin with the commonest characters of Japanese prose and make every
/// text slower to search.
fn other_kana(term: &str) -> Vec<String> {
    let kana_only = term
        .chars()
        .all(|c| is_hiragana(c) || is_katakana(c) || c == 'ー' || is_term_separator(c));
    let to_hiragana = kana_only && term.chars().count() >= 6;
    let shift = |from: fn(char) -> bool, up: bool| -> Option<String> {
        term.chars().any(from).then(|| {
            term.chars()
                .map(|c| match from(c) {
                    true => char::from_u32(if up { c as u32 + 0x60 } else { c as u32 - 0x60 })
                        .unwrap_or(c),
                    false => c,
                })
                .collect()
        })
    };
    [
        shift(is_hiragana, true),
        to_hiragana.then(|| shift(is_katakana, false)).flatten(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The anchors of a term's spellings: a spelling that contains an anchor of an earlier one is
/// found through it (`ミナト商事` through `商事` of `みなと商事`), which keeps the kana spellings
/// from adding anchors that begin with kana. The shortest spellings go first, so that the
/// anchors come from the distinctive part of a term and not from the legal form or code-name
/// prefix around it (`株式会社`, `プロジェクト`: in every other business text, each hit a window
/// to check). The price: a spelling found through another's anchor has fewer of its own, so a
/// line break inside it (`みなと商⏎事`) can be missed, the legal form or prefix around it
/// (`株式会社みなと商⏎事`, `プロジェクト・カワ⏎セミ`) no longer helping (known gaps); giving every
/// spelling its own anchors cost 7% of scan throughput.
fn shared_anchors(spellings: &[String]) -> Vec<String> {
    let mut by_length: Vec<&String> = spellings.iter().collect();
    by_length.sort_by_key(|s| s.chars().count());
    let mut out: Vec<String> = Vec::new();
    for s in by_length {
        if !out.iter().any(|a| s.contains(a.as_str())) {
            out.extend(anchors(s).into_iter().filter(|a| !a.is_empty()));
        }
    }
    out
}

/// A Japanese term spaced out a character at a time, as headings and letterheads set names
/// (`東　雲　物　産`), has no anchor left whole: its first two characters with a space between
/// (full-width spaces fold to it) are one more. Not for ASCII, where `o r` is prose.
fn spaced_anchor(folded: &str) -> Option<String> {
    let mut chars = folded.chars().filter(|&c| !is_term_separator(c));
    let (a, b) = (chars.next()?, chars.next()?);
    (!a.is_ascii() && !b.is_ascii()).then(|| format!("{a} {b}"))
}

/// Short enough that a separator inside an anchor is rare, long enough to be rare in prose.
const ANCHOR_CHARS: usize = 3;

impl fmt::Debug for ContractMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContractMatcher")
            .field("terms", &self.term_count)
            .field("extra_fields", &self.field_count)
            .finish()
    }
}

impl ContractMatcher {
    /// Compiles a contract's terms and fields. Blank entries are ignored. The error never quotes a
    /// term.
    pub fn new(c: &ContractRedaction) -> anyhow::Result<Self> {
        let spellings: Vec<Vec<String>> = fold_list(&c.terms)
            .iter()
            .map(|t| with_variants(t))
            .collect();
        let mut anchors: Vec<String> = spellings.iter().flat_map(|v| shared_anchors(v)).collect();
        // A loanword's other spelling is found through its term's anchors where it keeps one
        // (`北斗シ` of `北斗システム`): its own could be a common word's (`ステム`).
        let spellings: Vec<Vec<String>> = spellings
            .into_iter()
            .map(|mut v| {
                let loan: Vec<String> = v.iter().flat_map(|t| loanword_spellings(t)).collect();
                for l in &loan {
                    if !anchors.iter().any(|a| l.contains(a.as_str())) {
                        anchors.extend(self::anchors(l).into_iter().filter(|a| !a.is_empty()));
                    }
                }
                v.extend(loan);
                v
            })
            .collect();
        anchors.extend(
            spellings
                .iter()
                .filter_map(|v| v.first().and_then(|t| spaced_anchor(t))),
        );
        let folded: Vec<String> = spellings.into_iter().flatten().collect();
        // Compacted as the text around an anchor is, so that both leave out the same characters.
        let compact: Vec<String> = folded
            .iter()
            .map(|t| Compact::new(t).text)
            .filter(|t| !t.is_empty())
            .collect();
        let err = |e| anyhow!("cannot compile the contract's term list: {e}");
        let terms = match (
            Finder::new(&dedup(anchors)).map_err(err)?,
            Finder::new(&dedup(compact)).map_err(err)?,
        ) {
            (Some(anchors), Some(compact)) => Some(Terms {
                anchors,
                compact,
                // A term with a separator between every two characters, and room for markup
                // or a reading inside it (`<span class="code">ORCA</span>-7`).
                reach: folded.iter().map(String::len).max().unwrap_or(0) * 2 + 40,
            }),
            _ => None,
        };
        let fields = Finder::new(&dedup(fold_list(&c.extra_fields)))
            .map_err(|e| anyhow!("cannot compile the contract's extra field names: {e}"))?;
        Ok(Self {
            terms,
            fields,
            salt: Salt::default(),
            term_count: c.terms.iter().filter(|t| !t.trim().is_empty()).count(),
            field_count: c
                .extra_fields
                .iter()
                .filter(|f| !f.trim().is_empty())
                .count(),
        })
    }

    /// No terms and no extra fields: the shipped rules only.
    pub fn none() -> Self {
        Self::default()
    }
}

/// Folded, lower-cased, blank entries left out.
fn fold_list(list: &[String]) -> Vec<String> {
    list.iter()
        .map(|t| fold(t.trim()).to_ascii_lowercase())
        .filter(|t| !t.trim().is_empty())
        .collect()
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// What people write between the parts of a name, or leave out: `ORCA-7`, `Project BLUEJAY`,
/// `プロジェクト・カワセミ`, `株式会社 みなと商事`.
pub(crate) fn is_term_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\r' | '\n' | '-' | '_' | '.' | '/' | '・' | '·'
    )
}

/// Whether the `+` at `i` stands between a letter or digit and another (spaces aside).
fn plus_joins(b: &[u8], i: usize) -> bool {
    let alnum = |x: Option<&u8>| x.is_some_and(u8::is_ascii_alphanumeric);
    let before = b
        .get(..i)
        .and_then(|h| h.iter().rev().find(|&&x| x != b' '));
    let after = b.get(i + 1..).and_then(|t| t.iter().find(|&&x| x != b' '));
    alnum(before) && alnum(after)
}

/// Whether the loose view can differ: a tag or a reading may begin somewhere in `b` (a `(` of
/// prose, `（注）`, does not make it worth a second compaction).
fn may_loosen(b: &[u8]) -> bool {
    b.iter().enumerate().any(|(i, &x)| match x {
        b'<' => b
            .get(i + 1)
            .is_some_and(|&y| y == b'/' || y.is_ascii_alphabetic()),
        b'(' => kana_at(b, i + 1),
        0xE3 => corner_bracket_at(b, i),
        _ => false,
    })
}

/// Whether `「`, `」`, `『` or `』` (E3 80 8C–8F) begins at `i`: quotes around part of a term
/// (`「ひばり」計画`).
fn corner_bracket_at(b: &[u8], i: usize) -> bool {
    b.get(i + 1) == Some(&0x80) && b.get(i + 2).is_some_and(|x| (0x8C..=0x8F).contains(x))
}

/// Whether a hiragana or katakana character (U+3040–U+30FF: E3 81–83 xx in UTF-8) begins at `j`.
fn kana_at(b: &[u8], j: usize) -> bool {
    b.get(j) == Some(&0xE3) && b.get(j + 1).is_some_and(|x| (0x81..=0x83).contains(x))
}

/// The length of a kana reading in parentheses (`(しののめ)`, `(シノノメ)`) at `i`, or 0.
fn reading_len(b: &[u8], i: usize) -> usize {
    const MAX_CHARS: usize = 16;
    let mut j = i + 1;
    while j - i <= MAX_CHARS * 3 && kana_at(b, j) {
        j += 3;
    }
    if j > i + 1 && b.get(j) == Some(&b')') {
        j + 1 - i
    } else {
        0
    }
}

/// The length of the HTML or XML tag (`<b>`, `</span>`, `<span class="x">`) at `i`, or 0.
fn markup_len(b: &[u8], i: usize) -> usize {
    const MAX: usize = 64;
    let mut j = i + 1;
    if b.get(j) == Some(&b'/') {
        j += 1;
    }
    if !b.get(j).is_some_and(u8::is_ascii_alphabetic) {
        return 0;
    }
    let rest = b.get(j..).unwrap_or(&[]);
    match rest
        .iter()
        .take(MAX)
        .position(|&x| matches!(x, b'>' | b'<' | b'\n'))
    {
        Some(k) if rest.get(k) == Some(&b'>') => j + k + 1 - i,
        _ => 0,
    }
}

/// `lower` without term separators, and the way back to its offsets.
pub(crate) struct Compact {
    pub text: String,
    /// (offset in `text` where separators were left out just before, bytes left out so far).
    gaps: Vec<(usize, usize)>,
}

impl Compact {
    pub(crate) fn new(lower: &str) -> Self {
        Self::build(lower, false)
    }

    /// Also without markup (`<b>東雲</b>物産`, pasted from a web page), kana readings in
    /// parentheses (`東雲（しののめ）物産`; full-width folds to ASCII) and quotes around part of
    /// a term (`「ひばり」計画`). A second view, not the
    /// only one: `（プロジェクト・カワセミ）` is a term in parentheses, not a reading, and
    /// `<ORCA-7>` a term in angle brackets, not a tag.
    pub(crate) fn loose(lower: &str) -> Self {
        Self::build(lower, true)
    }

    fn build(lower: &str, loose: bool) -> Self {
        let b = lower.as_bytes();
        let mut text = String::new();
        let mut gaps = Vec::new();
        let (mut copied, mut removed, mut i) = (0, 0, 0);
        while let Some(&x) = b.get(i) {
            // Byte tests: the separators are ASCII, `・` (E3 83 BB) and `·` (C2 B7).
            let len = match x {
                b' ' | b'\t' | b'\r' | b'\n' | b'-' | b'_' | b'.' | b'/' => 1,
                // `ORCA+7` (and `ORCA + 7`), but not the `+` of `C++`: only between letters or
                // digits.
                b'+' if plus_joins(b, i) => 1,
                // Markup inside a term pasted from a web page: `<b>東雲</b>物産`.
                b'<' if loose => markup_len(b, i),
                b'(' if loose => reading_len(b, i),
                0xE3 if b.get(i + 1..i + 3) == Some(&[0x83, 0xBB]) => 3,
                0xE3 if loose && corner_bracket_at(b, i) => 3,
                0xC2 if b.get(i + 1) == Some(&0xB7) => 2,
                _ => 0,
            };
            if len == 0 {
                i += 1;
                continue;
            }
            if text.capacity() == 0 {
                text.reserve(lower.len());
            }
            text.push_str(lower.get(copied..i).unwrap_or(""));
            removed += len;
            match gaps.last_mut() {
                Some((at, total)) if *at == text.len() => *total = removed,
                _ => gaps.push((text.len(), removed)),
            }
            i += len;
            copied = i;
        }
        if gaps.is_empty() {
            text = lower.to_string();
        } else {
            text.push_str(lower.get(copied..).unwrap_or(""));
        }
        Self { text, gaps }
    }

    /// The offset in `lower` of the byte at `c` in `text`.
    pub(crate) fn to_lower(&self, c: usize) -> usize {
        let k = self.gaps.partition_point(|g| g.0 <= c);
        c + k
            .checked_sub(1)
            .and_then(|j| self.gaps.get(j))
            .map_or(0, |g| g.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_cover_legal_forms_code_names_and_the_other_kana() {
        let mut v = with_variants("株式会社みなと商事");
        v.sort();
        let mut want = [
            "ミナト商事",
            "株式会社ミナト商事",
            "株式会社みなと商事",
            "みなと商事",
        ];
        want.sort();
        assert_eq!(v, want);
        let v = with_variants("プロジェクト・カワセミ");
        assert!(v.contains(&"カワセミ".to_string()), "{v:?}");
        assert!(v.contains(&"ぷろじぇくと・かわせみ".to_string()), "{v:?}");
        assert!(with_variants("案件コードkagura").contains(&"kagura".to_string()));
        // Too short, or too common, to stand alone.
        assert_eq!(with_variants("project x"), ["project x"]);
        assert!(!with_variants("プロジェクトひばり").contains(&"ひばり".to_string()));
        assert_eq!(with_variants("projector x"), ["projector x"]);
        assert_eq!(with_variants("プロジェクト計画書"), ["プロジェクト計画書"]);
        assert_eq!(with_variants("project x y"), ["project x y"]);
    }

    #[test]
    fn loanwords_have_their_other_spellings() {
        assert_eq!(
            loanword_spellings("青葉ロジスティクス"),
            ["青葉ロジスティックス"]
        );
        assert_eq!(
            loanword_spellings("青葉ロジスティックス"),
            ["青葉ロジスティクス"]
        );
        assert_eq!(loanword_spellings("北斗システムズ"), ["北斗システム"]);
        // Not a plural: too short, or nothing but the loanword (which would then be a word).
        assert!(loanword_spellings("北斗ミズ").is_empty());
        assert!(loanword_spellings("プロジェクト・ミクス").is_empty());
        assert!(loanword_spellings("システムズ").is_empty());
        assert!(loanword_spellings("東雲物産").is_empty());
        let m = ContractMatcher::new(&ContractRedaction {
            terms: vec!["北斗システムズ株式会社".into(), "青葉ロジスティクス".into()],
            extra_fields: vec![],
        })
        .unwrap();
        let t = m.terms.as_ref().unwrap();
        for text in ["北斗システム株式会社へ", "青葉ロジスティックスへ"] {
            assert_eq!(t.find(text).len(), 1, "{text}");
        }
        // Through the term's anchors, not the common word's: `ステム` would open a window at
        // every `システム`.
        assert!(t.find("基幹システムの刷新").is_empty());
        assert_eq!(t.anchors.find_iter("基幹システムの刷新").count(), 0);
    }

    #[test]
    fn kana_spellings_are_found_through_the_anchors_they_share() {
        let a = shared_anchors(&with_variants("株式会社みなと商事"));
        assert!(a.iter().all(|a| a == "商事"), "{a:?}");
        let a = shared_anchors(&with_variants("プロジェクト・カワセミ"));
        assert!(a.contains(&"カワセ".to_string()), "{a:?}");
    }

    #[test]
    fn anchors_come_from_the_distinctive_part_of_a_term() {
        // Not from the legal form or the code-name prefix: those are in every other text.
        for (term, generic) in [
            ("株式会社みなと商事", "株式会社"),
            ("北斗システムズ株式会社", "株式会社"),
            ("プロジェクト・カワセミ", "プロジェクト"),
            ("案件コードKAGURA", "案件コード"),
        ] {
            let a = shared_anchors(&with_variants(&fold_list(&[term.to_string()])[0]));
            assert!(!a.is_empty(), "{term}");
            assert!(
                a.iter().all(|a| !generic.contains(a.as_str())),
                "{term}: {a:?}"
            );
        }
    }

    #[test]
    fn compaction_leaves_out_separators_joining_plus_and_markup() {
        let text =
            "orca+7 orca + 7 c++ a+ <b>東雲</b>物産 <span class=\"x\">桜</span> 1 < 2 <3 a<b";
        let c = Compact::loose(text);
        assert_eq!(c.text, "orca7orca7c++a+東雲物産桜1<2<3a<b");
        // Markup goes only in the loose view: `<orca-7>` is a term in angle brackets.
        assert_eq!(Compact::new("<orca-7>").text, "<orca7>");
        // Offsets map back: `物産` in the compact text is `物産` in the original.
        let at = c.text.find("物産").unwrap();
        assert_eq!(&text[c.to_lower(at)..], &text[text.find("物産").unwrap()..]);
        // A reading in parentheses goes in the second view; other parentheses stay.
        let t = "東雲(しののめ)物産(株) (ア)(x)";
        assert_eq!(Compact::new(t).text, "東雲(しののめ)物産(株)(ア)(x)");
        assert_eq!(Compact::loose(t).text, "東雲物産(株)(x)");
        // A `<` never closed within the line is kept.
        assert_eq!(Compact::loose("<b\n>x").text, "<b>x");
    }

    #[test]
    fn anchors_avoid_starting_with_common_hiragana() {
        // A 4-kanji term: its halves, so that a line break in the middle splits neither.
        assert_eq!(
            anchors("東雲物産"),
            ["東雲".to_string(), "物産".to_string()]
        );
        assert_eq!(
            anchors("カワセミ"),
            ["カワセ".to_string(), "ワセミ".to_string()]
        );
        assert_eq!(
            anchors("みなと商事"),
            ["商事".to_string(), "商事".to_string()]
        );
        // Not `計画`, a word of every plan's minutes: a rarer kana may begin an anchor.
        assert_eq!(
            anchors("ひばり計画"),
            ["ひばり".to_string(), "ひばり".to_string()]
        );
        assert_eq!(anchors("orca-7"), ["orc".to_string(), "rca".to_string()]);
        assert_eq!(anchors("ab"), ["ab".to_string(), "ab".to_string()]);
        assert_eq!(anchors("x"), ["x".to_string(), "x".to_string()]);
    }

    #[test]
    fn traditional_kanji_spellings_one_at_a_time_and_all() {
        let mut v = old_forms("桜川製薬");
        v.sort();
        let mut want = ["櫻川製薬", "桜川製藥", "櫻川製藥"];
        want.sort();
        assert_eq!(v, want);
        assert_eq!(old_forms("山崎"), ["山﨑", "山嵜"]);
        assert!(old_forms("髙島屋").contains(&"高島屋".to_string()));
        assert!(old_forms("東雲物産").is_empty());
        let m = ContractMatcher::new(&ContractRedaction {
            terms: vec!["桜川製薬".into()],
            extra_fields: vec![],
        })
        .unwrap();
        let t = m.terms.as_ref().unwrap();
        assert_eq!(t.find("本件は櫻川製藥の件").len(), 1);
        assert_eq!(t.find("orca/7").len(), 0);
    }

    #[test]
    fn company_names_match_with_or_without_their_legal_form() {
        assert_eq!(with_variants("(株)ab"), ["(株)ab", "ab"]);
        assert_eq!(with_variants("株式会社a"), ["株式会社a"]);
    }
}
