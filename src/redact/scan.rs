//! Finding confidential spans in the folded view of one text: tags, fields, detectors and the
//! contract's terms. Spans are in view offsets; the session maps them back to the original.
//!
//! Cost model: one pass of the shared automaton over the view, one byte pass for digit runs, the
//! contract's term automaton, and then each detector's regex only inside small windows around its
//! triggers (or keywords) — ordinary prose never reaches a regex.
use super::contract::ContractMatcher;
use super::rules::{Action, Boundary, Detector, KeywordMode, Role, Rules};
use super::validate::{self, Validator};
use super::{Refused, TagProblem};
use regex_automata::util::captures::Captures;
use regex_automata::{Anchored, Input};

/// A confidential span of the view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: usize,
    pub end: usize,
    pub treatment: usize,
    /// Lower wins when two spans start and end at the same place.
    pub rank: u32,
}

pub(crate) const RANK_TAG: u32 = 0;
const RANK_FIELD: u32 = 1;
const RANK_DETECTOR: u32 = 10;
const RANK_TERM: u32 = 100_000;
pub(crate) const RANK_PROPAGATED: u32 = 200_000;

type Hit = (usize, usize);

struct FieldHit {
    start: usize,
    end: usize,
    treatment: usize,
    /// The value may follow the name after spaces alone (at the start of a line).
    spaced: bool,
    /// The value is one word: it ends at a space.
    one_word: bool,
    /// The value is a number or code: it ends with its ASCII run.
    code: bool,
    /// The value names people: one listing only roles is not taken.
    people: bool,
}

/// Every confidential span of `t` (overlapping ones included), or why the text must be refused.
/// `lower` is `t` with ASCII letters lower-cased, for the automata.
pub(crate) fn detect(
    rules: &Rules,
    contract: &ContractMatcher,
    t: &str,
    lower: &str,
) -> Result<Vec<Span>, Refused> {
    let mut out = detect_plain(rules, contract, t, lower, true)?;
    encoded_spans(rules, contract, t, &mut out)?;
    Ok(out)
}

/// Percent-encoded text (a link's query, `?q=%E6%9D%B1%E9%9B%B2…`, a name in a URL's path): what
/// the runs of it decode to are scanned as text of their own (all of a text's runs at once, a
/// line apart), and anything found in a run makes the whole run a span, with the strictest
/// treatment found there (block, then mask, then pseudonymize). Only runs that encode characters beyond ASCII (two bytes or
/// more) in UTF-8: ASCII ones (`n.ogawa%40sample.co.jp`) the detectors read as they are. One
/// level: a run decoded to more percent-encoding is not decoded again.
fn encoded_spans(
    rules: &Rules,
    contract: &ContractMatcher,
    t: &str,
    out: &mut Vec<Span>,
) -> Result<(), Refused> {
    let b = t.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16);
    let escape_at = |i: usize| -> Option<u8> {
        match b.get(i..i + 3)? {
            [b'%', h, l] => u8::try_from(hex(*h)? * 16 + hex(*l)?).ok(),
            _ => None,
        }
    };
    let plain = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'~' | b'+' | b'-');
    // (run's start and end in `t`, where its decoded bytes begin in `joined`)
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    let mut joined: Vec<u8> = Vec::new();
    let mut from = 0;
    for p in memchr::memchr_iter(b'%', b) {
        if p < from || escape_at(p).is_none_or(|x| x < 0x80) {
            continue;
        }
        // The run: unreserved characters and escapes on both sides of this one.
        let mut start = p;
        loop {
            if start >= from + 3 && escape_at(start - 3).is_some() {
                start -= 3;
            } else if start > from && b.get(start - 1).copied().is_some_and(plain) {
                start -= 1;
            } else {
                break;
            }
        }
        let (at, mut end, mut high) = (joined.len(), start, 0);
        while end < b.len() {
            if let Some(x) = escape_at(end) {
                joined.push(x);
                high += usize::from(x >= 0x80);
                end += 3;
            } else if let Some(&c) = b.get(end).filter(|&&c| plain(c)) {
                joined.push(if c == b'+' { b' ' } else { c });
                end += 1;
            } else {
                break;
            }
        }
        from = end;
        // Up to where it stops being UTF-8 (a link cut inside a character); not at all when
        // it never is (Shift_JIS, say).
        if let Err(e) = std::str::from_utf8(joined.get(at..).unwrap_or(&[])) {
            joined.truncate(at + e.valid_up_to());
        }
        if high < 2 || joined.len() == at {
            joined.truncate(at);
            continue;
        }
        joined.extend_from_slice(b"\n\n");
        runs.push((start, end, at));
    }
    if runs.is_empty() {
        return Ok(());
    }
    // Each run was checked to be UTF-8, and so is what joins them.
    let text = String::from_utf8(joined).unwrap_or_default();
    let n = super::normalize::normalize(&text);
    let lower = n.text().to_ascii_lowercase();
    // A tag left open in a link (a file named `【機密】報告書.docx`) is part of a name, not the
    // user's mistake to refuse: then the runs are read again without tags, for the rest.
    let inner = match detect_plain(rules, contract, n.text(), &lower, true) {
        Ok(spans) => spans,
        Err(_) => detect_plain(rules, contract, n.text(), &lower, false)?,
    };
    // Per run, the strictest of what was found in it: a run is replaced whole, so a password
    // in it must not come back restored because a name came first.
    let strictness = |s: &Span| match rules.treatments.get(s.treatment).map(|t| t.action) {
        Some(Action::Block) => 0,
        Some(Action::Mask) => 1,
        _ => 2,
    };
    let mut best: Vec<Option<Span>> = vec![None; runs.len()];
    for s in inner {
        let at = n.to_orig_start(s.start);
        let Some(slot) = runs
            .partition_point(|r| r.2 <= at)
            .checked_sub(1)
            .and_then(|k| best.get_mut(k))
        else {
            continue;
        };
        if slot
            .as_ref()
            .is_none_or(|b| (strictness(&s), s.rank) < (strictness(b), b.rank))
        {
            *slot = Some(s);
        }
    }
    for (&(start, end, _), s) in runs.iter().zip(best) {
        if let Some(s) = s {
            out.push(Span {
                start,
                end,
                treatment: s.treatment,
                rank: s.rank,
            });
        }
    }
    Ok(())
}

/// [`detect`] without percent-encoded runs; `tags_on`: whether author tags are read (and an
/// unclosed one refused).
fn detect_plain(
    rules: &Rules,
    contract: &ContractMatcher,
    t: &str,
    lower: &str,
    tags_on: bool,
) -> Result<Vec<Span>, Refused> {
    let n = rules.detectors.len();
    let mut triggers: Vec<Vec<Hit>> = vec![Vec::new(); n];
    let mut keywords: Vec<Vec<Hit>> = vec![Vec::new(); n];
    let mut tags: Vec<(usize, usize, usize, bool)> = Vec::new();
    let mut fields: Vec<FieldHit> = Vec::new();
    if let Some(k) = &rules.matcher {
        k.for_each_match(lower, |pattern, s, e| {
            for role in rules.roles.get(pattern).into_iter().flatten() {
                match *role {
                    Role::Open(p) => tags.push((s, e, p, true)),
                    Role::OpenWithAttributes(p) => {
                        if let Some(end) = attributes_end(t, e) {
                            tags.push((s, end, p, true));
                        }
                    }
                    Role::Close(p) => tags.push((s, e, p, false)),
                    Role::Field(tr) => fields.push(FieldHit {
                        start: s,
                        end: e,
                        treatment: tr,
                        spaced: rules.treatments.get(tr).is_some_and(|t| t.space_separated),
                        one_word: rules.treatments.get(tr).is_some_and(|t| t.one_word),
                        code: rules.treatments.get(tr).is_some_and(|t| t.code),
                        people: rules.treatments.get(tr).is_some_and(|t| t.people),
                    }),
                    Role::Trigger(d) => {
                        if let Some(v) = triggers.get_mut(d) {
                            v.push((s, e));
                        }
                    }
                    Role::Keyword(d) => {
                        if let Some(v) = keywords.get_mut(d) {
                            v.push((s, e));
                        }
                    }
                }
            }
        });
    }
    if let Some(f) = &contract.fields {
        for (_, start, end) in f.find_iter(lower) {
            fields.push(FieldHit {
                start,
                end,
                treatment: rules.contract_field_treatment,
                spaced: false,
                one_word: false,
                code: false,
                people: false,
            });
        }
    }

    let mut out = Vec::new();
    // Where tags are written: no other span may cover one, or the tag would be lost with it.
    let mut marks: Vec<(usize, usize, bool)> = match tags_on {
        true => tags.iter().map(|&(s, e, _, open)| (s, e, open)).collect(),
        false => Vec::new(),
    };
    marks.sort_unstable();
    if tags_on {
        tag_spans(rules, t, tags, &mut out)?;
    }
    let tag_count = out.len();
    field_spans(t, &mut fields, &mut out);
    given_after_family(t, &fields, &mut out);
    if let Some(person) = rules.people_treatment {
        let mut done = None;
        for h in &fields {
            if let Some((close, spans)) = super::sql::name_columns(t, h.start, h.end, done) {
                out.extend(spans.into_iter().map(|(start, end)| Span {
                    start,
                    end,
                    treatment: person,
                    rank: RANK_FIELD,
                }));
                done = Some(close);
            }
        }
    }
    if let Some(person) = rules.people_treatment {
        sibling_names(t, &fields, person, &mut out);
    }

    let runs = digit_runs(t);
    for (i, d) in rules.detectors.iter().enumerate() {
        let trig = triggers.get_mut(i).map(std::mem::take).unwrap_or_default();
        let mut kw = keywords.get_mut(i).map(std::mem::take).unwrap_or_default();
        kw.sort_unstable();
        detector_spans(d, i, t, &trig, &kw, &runs, &mut out);
    }

    if let Some(f) = &contract.terms {
        for (start, end) in f.find(lower) {
            if ascii_edges_ok(t, start, end) {
                out.push(Span {
                    start,
                    end,
                    treatment: rules.term_treatment,
                    rank: RANK_TERM,
                });
            }
        }
    }
    if !marks.is_empty() {
        let tail = out.split_off(tag_count.min(out.len()));
        out.extend(clip_at_tags(t, tail, &marks));
        out.retain(|s| s.start < s.end);
    }
    Ok(out)
}

/// Spans that run into a tag end before it (`パスワード：Kx9mPq2w</機密>をチャットに…`): the tag is
/// the author's marking, and what follows a closing tag is not the value. A span that holds a
/// whole tagged passage (`住所：東京都港区<機密>芝公園4-2-8</機密> サンハイツ405号室`) goes on after
/// it; one that begins inside a tag begins after it.
fn clip_at_tags(t: &str, spans: Vec<Span>, marks: &[(usize, usize, bool)]) -> Vec<Span> {
    let mut out = Vec::with_capacity(spans.len());
    let mut todo = spans;
    while let Some(mut sp) = todo.pop() {
        let k = marks.partition_point(|m| m.1 <= sp.start);
        if let Some(&(ms, me, open)) = marks.get(k) {
            if ms <= sp.start {
                sp.start = me.min(sp.end);
            } else if ms < sp.end {
                // The passage's own closing tag, when it ends inside the span and the passage is
                // written into the value (`港区<機密>芝公園4-2-8</機密>`), not beside it after a
                // space (`芝公園4-2-8 <機密>…</機密>の件も`).
                let glued = t
                    .get(..ms)
                    .and_then(|b| b.chars().next_back())
                    .is_some_and(|c| !c.is_whitespace());
                let close = marks
                    .get(k + 1)
                    .filter(|c| open && glued && !c.2 && c.1 < sp.end)
                    .map(|c| c.1);
                if let Some(after) = close {
                    todo.push(Span { start: after, ..sp });
                }
                sp.end = ms;
            }
        }
        let (a, b) = trim_ws(t, sp.start, sp.end);
        (sp.start, sp.end) = (a, b.max(a));
        out.push(sp);
    }
    out
}

/// A match whose first (last) character is an ASCII letter or digit must not continue a word:
/// the term `ORCA-7` is not in `ORCA-77`. CJK text has no spaces, so other edges always match.
pub(crate) fn ascii_edges_ok(t: &str, s: usize, e: usize) -> bool {
    let first = t.get(s..).and_then(|x| x.chars().next());
    let last = t.get(..e).and_then(|x| x.chars().next_back());
    let before = t.get(..s).and_then(|x| x.chars().next_back());
    let after = t.get(e..).and_then(|x| x.chars().next());
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let joins_before = word(first) && word(before);
    let joins_after = word(last) && word(after);
    !joins_before && !joins_after
}

// ---------------------------------------------------------------------------------------------
// Tags

fn tag_spans(
    rules: &Rules,
    t: &str,
    mut hits: Vec<(usize, usize, usize, bool)>,
    out: &mut Vec<Span>,
) -> Result<(), Refused> {
    if hits.is_empty() {
        return Ok(());
    }
    // Leftmost, then longest; hits inside an accepted one are parts of it.
    hits.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut stack: Vec<(usize, usize, usize)> = Vec::new();
    let mut last_end = 0;
    let tag = |p: usize, open: bool| {
        rules
            .tags
            .get(p)
            .map(|tp| {
                if open {
                    tp.open.clone()
                } else {
                    tp.close.clone()
                }
            })
            .unwrap_or_default()
    };
    let line = |pos: usize| t.get(..pos).map_or(1, |x| x.matches('\n').count() + 1);
    for (s, e, p, open) in hits {
        if s < last_end {
            continue;
        }
        last_end = e;
        if open {
            stack.push((p, s, e));
            continue;
        }
        match stack.pop() {
            None => {
                return Err(Refused::TagUnclosed {
                    tag: tag(p, false),
                    problem: TagProblem::CloseWithoutOpen,
                    line: line(s),
                })
            }
            Some((q, qs, _)) if q != p => {
                return Err(Refused::TagUnclosed {
                    tag: tag(q, true),
                    problem: TagProblem::ClosedByOther {
                        close: tag(p, false),
                    },
                    line: line(qs),
                })
            }
            Some((_, _, content_start)) => {
                if stack.is_empty() {
                    let (a, b) = trim_ws(t, content_start, s);
                    if a < b {
                        out.push(Span {
                            start: a,
                            end: b,
                            treatment: rules.tags.get(p).map_or(0, |tp| tp.treatment),
                            rank: RANK_TAG,
                        });
                    }
                }
            }
        }
    }
    if let Some(&(p, s, _)) = stack.first() {
        return Err(Refused::TagUnclosed {
            tag: tag(p, true),
            problem: TagProblem::NotClosed,
            line: line(s),
        });
    }
    Ok(())
}

/// The end of an opening tag's attributes (` level="high">`): just after a `>` on the same line,
/// with no other tag before it. Without a `=` it is prose in brackets (`<confidential info>`).
fn attributes_end(t: &str, e: usize) -> Option<usize> {
    let rest = t.get(e..ceil_boundary(t, (e + 256).min(t.len())))?;
    let k = rest.find(['>', '<', '\n'])?;
    let attributes = rest.get(..k)?;
    (rest.as_bytes().get(k) == Some(&b'>') && attributes.contains('=')).then_some(e + k + 1)
}

pub(super) fn trim_ws(t: &str, a: usize, b: usize) -> (usize, usize) {
    let Some(s) = t.get(a..b) else {
        return (a, a);
    };
    let lead = s.len() - s.trim_start().len();
    let trail = s.len() - s.trim_end().len();
    if lead + trail >= s.len() {
        return (a, a);
    }
    (a + lead, b - trail)
}

// ---------------------------------------------------------------------------------------------
// Fields

const HONORIFICS: [&str; 3] = ["様", "さん", "殿"];

/// `山田 太郎（記入例）`, `例：03-1234-5678`: a form's sample, not anyone's entry.
fn sample(v: &str) -> bool {
    let v = v.trim();
    v.ends_with("記入例)") || v.ends_with("(例)") || v.starts_with("例:") || v.starts_with("(例)")
}

/// `法人番号` or `登録番号` just before `vs`: the number is labelled as a company's.
fn labelled_company(t: &str, vs: usize) -> bool {
    let before = t
        .get(floor_boundary(t, vs.saturating_sub(48))..vs)
        .unwrap_or("");
    before.contains("法人番号") || before.contains("登録番号")
}

/// `[10:02] 受付: お名前 真壁 菜々子 様`: after a name field in the middle of a line, a space and
/// a short value that an honorific ends, as spaced fields at a line's start are read.
fn honorific_value(t: &str, e: usize, limit: usize) -> bool {
    let Some(rest) = t.get(e..limit.max(e)) else {
        return false;
    };
    // Measured before it is trimmed: a long line's trailing spaces, trimmed per name, would be
    // quadratic.
    if rest.len() > 64 || !rest.starts_with([' ', '\t']) {
        return false;
    }
    let v = rest.trim_end_matches([' ', '\t', '\r']);
    // Not a role with a polite prefix (`契約者 ご本人様`).
    !v.trim_start().starts_with(['ご', 'お'])
        && !v.contains(['、', '。', ':', '='])
        && HONORIFICS.iter().any(|h| v.ends_with(h))
}

/// Ends an inline value (`…（氏名：山田、住所：…）`).
const INLINE_STOPS: &[char] = &[
    '、', ',', '，', '。', ';', '；', ')', '）', '」', '』', '】', '|', '\t', '\n', '\r',
];

fn field_spans(t: &str, hits: &mut [FieldHit], out: &mut Vec<Span>) {
    if hits.is_empty() {
        return;
    }
    hits.sort_unstable_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    // Every lookup below is a binary search, so a megabyte-long line full of field names stays
    // linear.
    let newlines: Vec<usize> = t.match_indices('\n').map(|(i, _)| i).collect();
    let line_of = |p: usize| {
        let k = newlines.partition_point(|&n| n < p);
        let start = k
            .checked_sub(1)
            .and_then(|j| newlines.get(j))
            .map_or(0, |n| n + 1);
        (start, newlines.get(k).copied().unwrap_or(t.len()))
    };
    let headers = table_spans(t, hits, &line_of, out);
    let named: Vec<(usize, usize, usize)> =
        hits.iter().map(|h| (h.start, h.end, h.treatment)).collect();
    for (start, end, treatment) in super::markup::table_columns(t, &named) {
        out.push(Span {
            start,
            end,
            treatment,
            rank: RANK_FIELD,
        });
    }
    // Where a next `name:` begins, a value on the same line ends.
    let colon_starts: Vec<usize> = hits
        .iter()
        .filter(|h| {
            field_name_edges_ok(t, h.start, h.end)
                && colon_after(t, qualifier_end(t, h.end)).is_some()
        })
        .map(|h| h.start)
        .collect();
    let mut covered = 0;
    for h in hits.iter() {
        // A name inside a value already taken is part of that value.
        if h.start < covered || !field_name_edges_ok(t, h.start, h.end) {
            continue;
        }
        let (line_start, line_end) = line_of(h.start);
        // A table's header cell names a column, which `table_spans` took.
        if headers.binary_search(&line_start).is_ok() || not_personal(t, h.start) {
            continue;
        }
        let limit = colon_starts
            .get(colon_starts.partition_point(|&s| s < h.end))
            .copied()
            .filter(|&s| s < line_end)
            .unwrap_or(line_end);
        let first_on_line = at_line_start(t, line_start, h.start);
        let spaced = h.spaced && (first_on_line || honorific_value(t, h.end, limit));
        for (a, b) in field_values(t, h.start, h.end, spaced, first_on_line, limit) {
            let full_end = b;
            // A quoted value is whole, spaces and all (`password: "correct horse battery"`,
            // `パスワード：「correct horse」`), and so is a quoted word a value begins with.
            let quoted = t
                .get(..a)
                .and_then(|s| s.chars().next_back())
                .zip(t.get(b..).and_then(|s| s.chars().next()))
                .is_some_and(|pair| QUOTE_PAIRS.contains(&pair));
            let b = match h.one_word && !quoted {
                true => {
                    let v = t.get(a..b).unwrap_or("");
                    let from = quoted_prefix_len(v);
                    a + from
                        + v.get(from..)
                            .and_then(|r| r.find([' ', '\t']))
                            .unwrap_or(v.len() - from)
                }
                false => b,
            };
            // A telephone number followed by prose ends the value, whatever the field (`連絡先：
            // 090-4418-2276（平日のみ）までお電話ください`); its end is found once, here.
            let phone_end = match h.code || h.people {
                true => None,
                false => phone_then_prose(t, a, b),
            };
            let code = h.code || phone_end.is_some();
            // A number field's value ends with its number, unless another field name follows
            // in the rest (`口座番号：1234567 口座名義 ヤマダ タロウ`): a label without a colon in
            // mid-line has no value of its own, so the rest stays in this one.
            let b = match code {
                true => {
                    // A field that is not a number's keeps the note in brackets right after the
                    // telephone number (`緊急連絡先：090-…（妻花子）`): it may name someone.
                    let n = phone_end
                        .unwrap_or_else(|| a + t.get(a..b).and_then(code_len).unwrap_or(b - a));
                    let k = hits.partition_point(|x| x.start < n);
                    // A label of its own, after a space; not a word of a note (`（IP電話）`).
                    let label = hits.get(k).is_some_and(|x| {
                        x.start < b && t.get(..x.start).is_some_and(|p| p.ends_with([' ', '\t']))
                    });
                    match label {
                        true => b,
                        false => n,
                    }
                }
                false => b,
            };
            let b = match h.people {
                true => a + name_before_unit_note(t.get(a..b).unwrap_or("")),
                // An address's building may end in a unit's word (`（芝パークセンター）`).
                false if code || t.get(a..b).is_some_and(|v| v.contains('@')) => {
                    a + before_unit_note(t.get(a..b).unwrap_or(""))
                }
                false => b,
            };
            // A value on a later line must not be the next label (`氏名⏎生年月日⏎…`).
            let later_label = a > line_end && hits.binary_search_by_key(&a, |x| x.start).is_ok();
            // Whatever was read counts as covered, kept or not, so names inside it are not read
            // again (linear on a line full of names); not a value past the next name, which is
            // that name's own to read (an `INSERT`'s columns, then its rows).
            let past_next = hits
                .get(hits.partition_point(|x| x.start < h.end))
                .is_some_and(|n| a > n.start);
            if !later_label && !past_next {
                covered = covered.max(full_end);
            }
            let value = t.get(a..b).unwrap_or("");
            // A person field followed by another label (`配偶者：個人番号 1234…`) names no one.
            let labelled = h.people
                && hits
                    .binary_search_by_key(&a, |x| x.start)
                    .ok()
                    .and_then(|k| hits.get(k))
                    .is_some_and(|x| {
                        field_name_edges_ok(t, x.start, x.end)
                            && t.get(x.end..).is_some_and(|r| {
                                r.is_empty() || r.starts_with([':', ' ', '\t', '\r', '\n', '('])
                            })
                    });
            // A host's or a device's name under `名前：` (`web-prod-01`).
            let machine = value.contains('-')
                && value.contains(|c: char| c.is_ascii_digit())
                && value
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            // A count under a person's key (`{"申込者": {…, "勤続年数": 7}}`) is no name either.
            let number = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
            let roles_only = h.people && (only_roles(value) || labelled || machine || number);
            // A number's hint (`電話番号：20文字以内`) is a rule for the whole value.
            // So is a form's sample (`山田 太郎（記入例）`).
            let full = t.get(a..full_end).unwrap_or("");
            let hint = (code && placeholder(full)) || (h.people && sample(full));
            // A number field that holds no number (`| 個人番号 | 取得しない |`, a form's spec).
            // Not when another label is inside it (`口座番号：別紙参照 名義人 霧島琴音`): the
            // value is then taken whole, as before.
            let inner_label = hits
                .get(hits.partition_point(|x| x.start <= a))
                .is_some_and(|x| x.start < b);
            let no_number = code
                && !inner_label
                && !value.contains(|c: char| {
                    c.is_ascii_alphanumeric() || "〇一二三四五六七八九".contains(c)
                });
            if a < b && !later_label && !placeholder(value) && !roles_only && !hint && !no_number {
                out.push(Span {
                    start: a,
                    end: b,
                    treatment: h.treatment,
                    rank: RANK_FIELD,
                });
            }
        }
    }
}

/// Just past a note in brackets that follows `n` (spaces between), when it closes before `b`
/// and within 64 bytes; else `n`.
fn bracket_note_end(t: &str, n: usize, b: usize) -> usize {
    let from = skip_spaces(t, n);
    let rest = t.get(from..b).unwrap_or("");
    if !rest.starts_with('(') {
        return n;
    }
    let near = rest
        .get(..floor_boundary(rest, 64.min(rest.len())))
        .unwrap_or("");
    near.find(')').map_or(n, |k| from + k + 1)
}

/// A value that opens with a telephone number (a run [`code_len`] reads, of 9 to 15 digits,
/// from a `0`, a `+` or a bracket: not a postal code's 7 before an address) and then, after a
/// note in brackets, goes on in prose (`までお電話ください`, `— please call after 6pm`): the
/// sentence is not the value. Anything else after the number (`妻 霧島琴音`, `/ 霧島`, `!Xy` of a
/// password) stays in it. The value's end then: past the number and its note.
fn phone_then_prose(t: &str, a: usize, b: usize) -> Option<usize> {
    let v = t.get(a..b).unwrap_or("");
    let n = code_len(v)?;
    let run = v.get(..n).unwrap_or("");
    let digits = run.bytes().filter(u8::is_ascii_digit).count();
    if !(run.starts_with(['0', '+', '(']) && (9..=15).contains(&digits)) {
        return None;
    }
    let note_end = bracket_note_end(t, a + n, b);
    let rest = t.get(note_end..b).unwrap_or("");
    // A bracket left open within reach: the note runs on, and stays in the value.
    if skip_spaces(t, note_end) < b && rest.trim_start().starts_with('(') {
        return None;
    }
    let rest = rest.trim_start_matches(' ');
    let prose = rest.starts_with(|c: char| ('\u{3041}'..='\u{309F}').contains(&c))
        || rest.starts_with(['。', '、', '—', '–'])
        || rest.starts_with("- ");
    prose.then_some(note_end)
}

/// Words that stand for a person without naming one.
const ROLE_WORDS: &[&str] = &[
    "部長",
    "副部長",
    "次長",
    "課長",
    "係長",
    "室長",
    "所長",
    "支店長",
    "社長",
    "副社長",
    "会長",
    "主任",
    "主査",
    "担当者",
    "担当",
    "責任者",
    "リーダー",
    "マネージャー",
    "マネジャー",
    "メンバー",
    "役員",
    "全員",
    "一同",
    "各位",
    // `総務部 御中`: a letter to an organisation, not to a person.
    "御中",
    "関係者",
    "委員",
    "事務局",
    "未定",
    // A contract's parties as it names them (`売主：甲`, `買主：当社`).
    "甲",
    "乙",
    "丙",
    "当社",
    "弊社",
    "貴社",
    "なし",
    "同上",
    "有",
    "無",
    "あり",
    "無し",
    "該当なし",
    // Teams and outsiders named instead of a person (`担当：情シス`, `外部ベンダー`).
    "情シス",
    "ベンダー",
    "外部ベンダー",
    "外注",
    "外注先",
    "社外",
    "不明",
    "未割当",
    // Steps of an approval flow (`申請者 → 承認者`).
    "申請者",
    "承認者",
    "決裁者",
    "起案者",
    // Relationships, as a family form writes them after a name (`山本 健二（夫）`).
    "本人",
    "夫",
    "妻",
    "配偶者",
    "父",
    "母",
    "長男",
    "長女",
    "次男",
    "次女",
    "息子",
    "娘",
    "子",
    "兄",
    "姉",
    "弟",
    "妹",
    "祖父",
    "祖母",
];

/// What ends the name of a department or an organisation (`開発グループ`, `外部委託先`).
const UNIT_ENDINGS: &[&str] = &[
    "課",
    "係",
    "グループ",
    "チーム",
    "センター",
    "支店",
    "支社",
    "本社",
    "営業所",
    "事業所",
    "委託先",
    "取引先",
    "協力会社",
];

/// Before a final `部` or `室`, what a department's name has (`営業部`, `情報システム部`,
/// `研究室`) and a family name does not (`岡部`, `矢部`, `服部`, `日下部`, `小室`).
const DEPARTMENT_BEFORE: &str =
    "業発務事理画報術造品売援査本通材買略修計設産送流究外伝際営保守質広総財管企販購施議書長";

fn unit(w: &str) -> bool {
    if UNIT_ENDINGS.iter().any(|e| w.ends_with(e)) {
        return true;
    }
    let Some(stem) = w.strip_suffix(['部', '室']) else {
        return false;
    };
    stem.chars()
        .next_back()
        .is_some_and(|c| ('\u{30A1}'..='\u{30FA}').contains(&c) || DEPARTMENT_BEFORE.contains(c))
}

/// A person field's value that lists only roles, departments and counts (`【出席者】営業部 課長、
/// 情報システム部 主任、物流管理部 担当者二名`, `担当者：未定`): minutes often name roles, not
/// people. A name anywhere in it (`営業部 部長 石田`, or `山田部長` written as one word) keeps the
/// whole value.
fn only_roles(v: &str) -> bool {
    let is_count = |c: char| c.is_ascii_digit() || "一二三四五六七八九十数若干".contains(c);
    let mut words = v
        .split(['、', ',', '，', '/', '・', ' ', '\t', '。'])
        .filter(|w| !w.is_empty())
        .peekable();
    words.peek().is_some()
        && words.all(|w| {
            // `他2名`, `ほか3名`: more people, uncounted by name.
            let w = w
                .strip_prefix('他')
                .or_else(|| w.strip_prefix("ほか"))
                .filter(|r| r.starts_with(is_count))
                .unwrap_or(w);
            let w = w
                .strip_suffix(['名', '人'])
                .map_or(w, |s| s.trim_end_matches(is_count));
            // `関係者各位`, `総務部御中`.
            let w = ["各位", "御中"]
                .iter()
                .find_map(|x| w.strip_suffix(x).filter(|r| !r.is_empty()))
                .unwrap_or(w);
            // A unit's head (`営業本部長`, `経理課長`): not `山田部長`, whose stem is no unit.
            let head = w.strip_suffix('長').is_some_and(unit);
            w.is_empty() || ROLE_WORDS.contains(&w) || unit(w) || head
        })
}

/// How much of a person field's value is the name when an honorific (`スズキ イチロウ 様`) or a
/// note in brackets that only names a department or a role (`佐藤健一（経理部）`, `田中 (営業部
/// 課長)`) ends it: neither is anyone's name, and both stay. Any other value is the name whole (a
/// reading, `小川直樹（おがわ なおき）`, is personal too).
fn name_before_unit_note(v: &str) -> usize {
    let trimmed = v.trim_end();
    // `大西 由紀子 様（会員ランク：ゴールド）`: the honorific ends the name, and the note after it
    // says something about the person, not who.
    // A list of people (`田中様（営業部）、霧島 琴音様（経理部）`) is not cut at its first.
    if let Some(name) = HONORIFICS.iter().find_map(|h| {
        let (k, _) = trimmed.match_indices(h).next()?;
        let inner = trimmed
            .get(k + h.len()..)?
            .strip_prefix('(')?
            .strip_suffix(')')?;
        (!inner.contains(['(', ')']))
            .then(|| trimmed.get(..k))
            .flatten()
            .map(str::trim_end)
            .filter(|n| !n.is_empty())
    }) {
        return name.len();
    }
    if let Some(name) = HONORIFICS
        .iter()
        .find_map(|h| trimmed.strip_suffix(h))
        .map(str::trim_end)
        .filter(|n| !n.is_empty())
    {
        return name.len();
    }
    before_unit_note(v)
}

/// How much of a value comes before a note in brackets that only names a department or a role
/// (`a.kato@example.lg.jp（総務課）`, `佐藤健一（経理部）`): the whole value otherwise.
fn before_unit_note(v: &str) -> usize {
    let whole = v.len();
    let trimmed = v.trim_end();
    let Some(inner) = trimmed.strip_suffix(')') else {
        return whole;
    };
    let Some(open) = inner.rfind('(') else {
        return whole;
    };
    let name = v.get(..open).unwrap_or("").trim_end();
    match !name.is_empty() && only_roles(inner.get(open + 1..).unwrap_or("")) {
        true => name.len(),
        false => whole,
    }
}

/// The length of the number or code `v` begins with: ASCII letters and digits, joined by up to
/// three of `-`, `/`, `.`, `_`, `@`, `+`, `・`, brackets (before a digit), spaces and tabs before more
/// of them (`4532 0151 1283 0366`, `7291  5926  5352`, `1234\t5678\t9012`, an e-mail address).
/// `None` when `v` does not begin with one (`別紙参照`):
/// the whole value stays the value.
fn code_len(v: &str) -> Option<usize> {
    let sep = |c: char| {
        matches!(
            c,
            '-' | '/' | '.' | '_' | '@' | '+' | ' ' | '\t' | '・' | '(' | ')'
        )
    };
    let mut end = 0;
    // `+81-3-…`, `(0467) 22-…`: a number may open with its country's `+` or an area code's bracket.
    let mut i = usize::from(
        v.starts_with(['+', '('])
            && v.get(1..)
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit())),
    );
    while let Some(c) = v.get(i..).and_then(|r| r.chars().next()) {
        if c.is_ascii_alphanumeric() {
            i += 1;
            end = i;
            continue;
        }
        let rest = v.get(i..).unwrap_or("");
        let (count, len) = rest
            .chars()
            .take(4)
            .take_while(|&c| sep(c))
            .fold((0, 0), |(n, l), c| (n + 1, l + c.len_utf8()));
        // Brackets only between digits (`1 (415) 555-0199`), not before a note (`(IP電話)`).
        let bracket = rest.get(..len).is_some_and(|r| r.contains(['(', ')']));
        let more = rest
            .get(len..)
            .and_then(|r| r.chars().next())
            .is_some_and(|c| match bracket {
                true => c.is_ascii_digit(),
                false => c.is_ascii_alphanumeric(),
            });
        if end == 0 || count == 0 || count > 3 || !more {
            break;
        }
        i += len;
    }
    (end > 0).then_some(end)
}

/// `名` alone is too common a key to be a field (`名: 3`), but right after a `姓` key it is the
/// given name: `姓：山田⏎名：由美`, `{"姓": "山田", "名": "由美"}`.
fn given_after_family(t: &str, hits: &[FieldHit], out: &mut Vec<Span>) {
    for h in hits {
        if t.get(h.start..h.end) != Some("姓") || !field_name_edges_ok(t, h.start, h.end) {
            continue;
        }
        let hi = ceil_boundary(t, (h.end + 96).min(t.len()));
        let Some(ahead) = t.get(h.end..hi) else {
            continue;
        };
        let at_key = |k: usize| {
            let before = ahead.get(..k).unwrap_or("");
            let after = ahead.get(k + '名'.len_utf8()..).unwrap_or("");
            let quoted = ["\\\"", "\"", "'"]
                .iter()
                .any(|q| before.ends_with(q) && after.starts_with(q));
            let line_key = before.trim_end_matches([' ', '\t']).ends_with('\n')
                && before.matches('\n').count() == 1
                && colon_after(t, h.end + k + '名'.len_utf8()).is_some();
            (quoted && !before.contains('\n')) || line_key
        };
        let Some(k) = ahead
            .match_indices('名')
            .map(|(k, _)| k)
            .find(|&k| at_key(k))
        else {
            continue;
        };
        let (s, e) = (h.end + k, h.end + k + '名'.len_utf8());
        let hi = ceil_boundary(t, e + 256);
        let line_end = t
            .get(e..hi)
            .and_then(|r| r.find('\n'))
            .map_or(hi, |n| e + n);
        for (a, b) in field_values(t, s, e, false, false, line_end) {
            let b = a + name_before_unit_note(t.get(a..b).unwrap_or(""));
            let v = t.get(a..b).unwrap_or("");
            if a < b && !placeholder(v) && !only_roles(v) {
                out.push(Span {
                    start: a,
                    end: b,
                    treatment: h.treatment,
                    rank: RANK_FIELD,
                });
            }
        }
    }
}

/// How far around a personal JSON key its object's `"name"` is looked for.
const SIBLING_WINDOW: usize = 256;

/// The bare JSON key `name` is no field of its own (tool schemas are full of `"name":
/// "get_weather"`), but beside a personal key in the same flat object it is a person's name:
/// `{"name": "坂本 大樹", "email": "…", "phone": "…"}`, as tool arguments and CRM records write
/// it. The object's bounds are the nearest braces around the key, so a schema's `"name"` one level
/// up (around `"properties": {"email": …}`) is not its sibling.
fn sibling_names(t: &str, hits: &[FieldHit], person: usize, out: &mut Vec<Span>) {
    let mut done = 0;
    for h in hits {
        let before = t.get(..h.start).unwrap_or("");
        let Some(q) = ["\\\"", "\""]
            .into_iter()
            .find(|q| before.ends_with(q) && t.get(h.end..).is_some_and(|a| a.starts_with(q)))
        else {
            continue;
        };
        let lo = floor_boundary(t, h.start.saturating_sub(SIBLING_WINDOW));
        let hi = ceil_boundary(t, h.end + SIBLING_WINDOW);
        let (Some(back), Some(ahead)) = (t.get(lo..h.start), t.get(h.end..hi)) else {
            continue;
        };
        let from = lo + back.rfind(['{', '}']).map_or(0, |k| k + 1);
        let to = h.end + ahead.find(['{', '}']).unwrap_or(ahead.len());
        if from < done {
            continue;
        }
        let Some(object) = t.get(from..to) else {
            continue;
        };
        let key = match q {
            "\"" => "\"name\"",
            _ => "\\\"name\\\"",
        };
        for (k, _) in object.match_indices(key) {
            let Some(c) = colon_after(t, from + k + key.len()) else {
                continue;
            };
            for (a, b) in json_value(t, skip_spaces(t, c), q) {
                let v = t.get(a..b).unwrap_or("");
                // A function's or a file's name (`lookup_customer`, `get`, `v2.json`), not a
                // person's (`Tanaka`).
                let identifier = v.is_ascii()
                    && !v.contains(' ')
                    && (v.starts_with(|c: char| !c.is_ascii_uppercase())
                        || v.contains(|c: char| !c.is_ascii_alphabetic()));
                if a < b && !identifier && !placeholder(v) {
                    out.push(Span {
                        start: a,
                        end: b,
                        treatment: person,
                        rank: RANK_FIELD,
                    });
                }
            }
        }
        done = to;
    }
}

/// Field names may follow `_` or `-` (`DB_PASSWORD`) but not a letter or digit; they may not be
/// followed by a word character (`email_verified` is another field).
fn field_name_edges_ok(t: &str, s: usize, e: usize) -> bool {
    let first = t.get(s..).and_then(|x| x.chars().next());
    let last = t.get(..e).and_then(|x| x.chars().next_back());
    let before = t.get(..s).and_then(|x| x.chars().next_back());
    let after = t.get(e..).and_then(|x| x.chars().next());
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let joins_before = alnum(first) && alnum(before);
    let joins_after = word(last) && word(after);
    !joins_before && !joins_after
}

/// After optional spaces, a `:` (full-width folds to it) or `=`: the offset just after it.
fn colon_after(t: &str, e: usize) -> Option<usize> {
    let rest = t.get(e..)?;
    // `**氏名**：`, `氏名*:` (Markdown's bold, a required field's mark).
    let trimmed = rest.trim_start_matches([' ', '\t', '*']);
    let skipped = rest.len() - trimmed.len();
    let c = trimmed.chars().next()?;
    match c {
        // Ruby's hash rocket (`"name"=>"…"`, a Rails log's parameters).
        '=' if trimmed.get(1..).is_some_and(|r| r.starts_with('>')) => Some(e + skipped + 2),
        ':' | '=' => Some(e + skipped + 1),
        // Leaders, as a form printed on paper writes them (`お名前……高田 翼`, `氏名....山田`).
        '…' | '‥' => {
            let run = trimmed.len() - trimmed.trim_start_matches(['…', '‥']).len();
            (run >= 2 * '…'.len_utf8()).then_some(e + skipped + run)
        }
        '.' | '・' => {
            let after = trimmed.trim_start_matches(c);
            let n = (trimmed.len() - after.len()) / c.len_utf8();
            // `…` folds to three dots: one ellipsis is a pause (`お名前…忘れました`), two lead.
            (n >= 4).then_some(e + skipped + trimmed.len() - after.len())
        }
        _ => None,
    }
}

fn skip_spaces(t: &str, p: usize) -> usize {
    let rest = t.get(p..).unwrap_or("");
    p + (rest.len() - rest.trim_start_matches([' ', '\t']).len())
}

/// The value spans of the field name at `s..e`. `limit` is where the line, or the next field on
/// it, begins.
fn field_values(
    t: &str,
    s: usize,
    e: usize,
    spaced: bool,
    first_on_line: bool,
    limit: usize,
) -> Vec<(usize, usize)> {
    let before = t.get(..s).unwrap_or("");
    let after = t.get(e..).unwrap_or("");
    if let Some(v) = form_part(t, s, e) {
        return v;
    }
    if let Some(v) = super::markup::values(t, s, e) {
        return v;
    }
    if let Some(v) = super::sql::insert_values(t, s, e) {
        return v;
    }
    // `"name": value`, `'name': value`, and `\"name\": value` (JSON inside a JSON string); the key
    // may also qualify the name (`"氏名（漢字）"`) or begin with words of its own (`"契約者住所"`).
    let key_start = s - cjk_word_before(before);
    let key_end = qualifier_end(t, e);
    let (key_before, key_after) = (
        t.get(..key_start).unwrap_or(""),
        t.get(key_end..).unwrap_or(""),
    );
    for q in ["\\\"", "\"", "'"] {
        // The name at the end of a path (`{"op": "replace", "path": "/customers/12/氏名",
        // "value": …}`, a JSON Patch).
        if key_after.starts_with(q) && key_before.ends_with('/') {
            let path = key_before.len().saturating_sub(
                key_before
                    .bytes()
                    .rev()
                    .take(128)
                    .take_while(|&b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'.' | b'~')
                    })
                    .count(),
            );
            if key_before.get(..path).is_some_and(|b| b.ends_with(q)) {
                return labelled_value(t, path - q.len(), key_end + q.len(), q);
            }
        }
        if key_before.ends_with(q) && key_after.starts_with(q) {
            let Some(p) = colon_after(t, key_end + q.len()) else {
                return labelled_value(t, key_start - q.len(), key_end + q.len(), q);
            };
            return json_value(t, skip_spaces(t, p), q);
        }
    }
    // `| name | value |`, the name in the row's first cell: further in, a cell that reads like a
    // name is a data row's (`| 角田 悠 | 担当 | 2207 |`).
    let first_cell = before
        .trim_end_matches([' ', '\t'])
        .strip_suffix('|')
        .map(|b| b.trim_end_matches([' ', '\t']))
        .is_some_and(|b| b.is_empty() || b.ends_with('\n'));
    if first_cell && after.trim_start_matches([' ', '\t']).starts_with('|') {
        let cell = e + (after.len() - after.trim_start_matches([' ', '\t']).len()) + 1;
        let rest = t.get(cell..limit.max(cell)).unwrap_or("");
        let end = cell + rest.find('|').unwrap_or(rest.len());
        return vec![trim_value(t, cell, end)];
    }
    // `Name (氏名): 森 彩`: an English label's Japanese gloss, then a colon.
    if before.trim_end().ends_with('(') && after.starts_with(')') {
        if let Some(p) = colon_after(t, e + 1) {
            let start = skip_spaces(t, p);
            let rest = t.get(start..limit.max(start)).unwrap_or("");
            let end = start + rest.find(['\r', '\n']).unwrap_or(rest.len());
            if !starts_as_prose(rest) {
                return vec![trim_value(t, start, end)];
            }
        }
    }
    // `【name】value` (and `［name］value`), the value up to the line's end or the next label.
    for (open, close) in [('【', '】'), ('〔', '〕'), ('[', ']')] {
        // `$_POST[email]` is code: an index, not a label.
        let index = open == '['
            && before
                .strip_suffix('[')
                .is_some_and(|b| b.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_'));
        if before.ends_with(open) && after.starts_with(close) && !index {
            let mut from = skip_spaces(t, e + close.len_utf8());
            if t.get(from..).is_some_and(|r| r.starts_with(':')) {
                from = skip_spaces(t, from + 1);
            }
            let rest = t.get(from..limit.max(from)).unwrap_or("");
            // `【パスワード】⏎Kx9mPq2w!`: the label alone on its line, the value below it.
            if let Some(v) = value_on_next_line(t, from) {
                return vec![v];
            }
            if starts_as_prose(rest) {
                return Vec::new();
            }
            let end = from + rest.find(BRACKET_STOPS).unwrap_or(rest.len());
            return vec![trim_value(t, from, before_escape(t, from, end))];
        }
    }
    // `氏名「曽我部 七海」`: the value in corner brackets right after the name.
    if let Some(inner) = after.strip_prefix('「') {
        let near = inner
            .get(..floor_boundary(inner, 256.min(inner.len())))
            .unwrap_or("");
        let line = near
            .get(..near.find('\n').unwrap_or(near.len()))
            .unwrap_or("");
        if let Some(k) = line.find('」') {
            // Not a word quoted in a sentence (`パスワード「変更」をタップ`).
            let prose = line.get(k + '」'.len_utf8()..).is_some_and(|r| {
                r.starts_with(['を', 'が', 'に', 'で', 'と', 'の', 'は', 'や', 'も'])
            });
            if !prose {
                let from = e + '「'.len_utf8();
                return vec![trim_value(t, from, from + k)];
            }
        }
    }
    // `name: value`, `name：value` and `name（qualifier）：value`: the rest of the line when the
    // name begins it, else up to the first list punctuation. Some names may be followed by spaces
    // alone when they begin the line (`住所　東京都…`); that value ends at ` / ` too.
    let Some(p) = colon_after(t, qualifier_end(t, e)) else {
        let name = t.get(s..e).unwrap_or("");
        // `氏名(漢字)　小川直樹`: the value follows the qualifier.
        let e = match spaced && first_on_line {
            true => qualifier_end(t, e),
            false => e,
        };
        let start = skip_spaces(t, e);
        let rest = t.get(start..limit.max(start)).unwrap_or("");
        if let Some(v) = answer_below(t, s, e) {
            return vec![v];
        }
        if first_on_line && !name.is_ascii() {
            if let Some(v) = after_one_arrow(t, start, rest) {
                return vec![v];
            }
        }
        if spaced && first_on_line && !name.is_ascii() {
            if let Some(v) = value_on_next_line(t, e) {
                return vec![v];
            }
        }
        // A reading is in kana, and may begin with one that is a particle elsewhere (`にしぞの`).
        let reading = matches!(name, "ふりがな" | "よみがな" | "フリガナ");
        if spaced && !name.is_ascii() && start > e && (reading || !starts_as_prose(rest)) {
            let end = start + rest.find(['\r', '\t']).unwrap_or(rest.len());
            let end = start
                + t.get(start..end)
                    .and_then(|v| v.find(" / "))
                    .unwrap_or(end - start);
            return vec![trim_value(t, start, before_escape(t, start, end))];
        }
        return Vec::new();
    };
    let start = skip_spaces(t, p);
    let rest = t.get(start..limit.max(start)).unwrap_or("");
    if rest.starts_with("//") {
        // `http://…`-like, not a field.
        return Vec::new();
    }
    if let Some(v) = yaml_block(t, s, start) {
        return vec![v];
    }
    if first_on_line {
        if let Some(v) = value_on_next_line(t, start) {
            return vec![v];
        }
    }
    // `name="value"`, `name: 'value'` (attributes, YAML, shell): the quoted part, when nothing
    // but the line's end, a comment, the tag's end or the next attribute follows it (`"山田",
    // "鈴木"` is a list: the rest of the line, as below).
    let quoted = quoted_prefix_len(rest);
    if quoted > 0
        && rest.starts_with(['"', '\''])
        && quoted_value_ends(rest.get(quoted..).unwrap_or(""))
    {
        return vec![trim_value(t, start + 1, start + quoted - 1)];
    }
    // `（株）アオイ電機`: a company's mark in brackets ends no value.
    let quoted = match quoted {
        0 if rest.starts_with('(') => rest
            .get(..floor_boundary(rest, 16.min(rest.len())))
            .and_then(|r| r.find(')'))
            .map_or(0, |k| k + 1),
        q => q,
    };
    let stops: &[char] = if first_on_line { &['\r'] } else { INLINE_STOPS };
    // A value that begins with a quoted part takes at least all of it (`"Tk9;m2Qx" に変更`).
    let end = start
        + quoted
        + rest
            .get(quoted..)
            .and_then(|r| r.find(stops))
            .unwrap_or(rest.len() - quoted);
    // Up to the next `label:` of an inline list (`氏名:山田由美 / 用件:窓口の案内`), whether or
    // not the label is a field of its own.
    let end = start
        + quoted
        + t.get(start + quoted..end)
            .and_then(next_inline_label)
            .unwrap_or(end - start - quoted);
    let value = trim_value(t, start, before_escape(t, start, end));
    let at_line_end = t
        .get(end..)
        .is_some_and(|r| r.starts_with('\n') || r.starts_with("\r\n"));
    match first_on_line && at_line_end {
        true => match continuation_line(t, end) {
            Some(more) => vec![value, more],
            None => vec![value],
        },
        false => vec![value],
    }
}

/// A multipart form's part: `Content-Disposition: form-data; name="氏名"`, a blank line, the
/// value.
fn form_part(t: &str, s: usize, e: usize) -> Option<Vec<(usize, usize)>> {
    let before = t.get(..s)?.strip_suffix('"')?.strip_suffix("name=")?;
    // The header line's start, at most 256 bytes back (a long line of keys stays linear).
    let near = before
        .get(floor_boundary(before, before.len().saturating_sub(256))..)
        .unwrap_or("");
    if !near
        .rsplit('\n')
        .next()
        .is_some_and(|l| l.contains("form-data"))
    {
        return None;
    }
    let rest = t.get(e..)?.strip_prefix('"')?;
    let blank = ["\r\n\r\n", "\n\n"]
        .iter()
        .find(|b| rest.starts_with(**b))?;
    let from = e + 1 + blank.len();
    let value = t.get(from..)?;
    let end = from + value.find(['\r', '\n']).unwrap_or(value.len());
    Some(vec![trim_value(t, from, end)])
}

/// A form's answers as a list of pairs (`{"label": "氏名", "value": "桐谷 誠"}`): the field's name
/// is the string at `s..e` (its quotes included), the value of a label-like key, and a value-like
/// key follows it.
fn labelled_value(t: &str, s: usize, e: usize, q: &str) -> Vec<(usize, usize)> {
    const LABEL_KEYS: &[&str] = &[
        "label",
        "name",
        "key",
        "field",
        "path",
        "title",
        "question",
        "item",
        "項目",
        "項目名",
    ];
    const VALUE_KEYS: &[&str] = &["value", "answer", "response", "values", "値", "回答"];
    let before = t.get(..s).unwrap_or("").trim_end();
    let Some(before) = before.strip_suffix(':') else {
        return Vec::new();
    };
    let before = before.trim_end();
    // The label's key is a short quoted word: look back for its opening quote only if it is
    // quoted, and not past 64 bytes.
    let key_start = before
        .strip_suffix(q)
        .map(|b| {
            b.get(floor_boundary(b, b.len().saturating_sub(64))..)
                .unwrap_or("")
        })
        .and_then(|near| {
            near.rfind(q)
                .map(|k| before.len() - q.len() - near.len() + k)
        });
    let labelled = key_start
        .and_then(|k| before.get(k..))
        .and_then(|k| k.strip_prefix(q)?.strip_suffix(q))
        .is_some_and(|k| LABEL_KEYS.contains(&k.to_ascii_lowercase().as_str()));
    if !labelled {
        return Vec::new();
    }
    let p = skip_ws_all(t, e);
    if !t.get(p..).is_some_and(|r| r.starts_with(',')) {
        return Vec::new();
    }
    let p = skip_ws_all(t, p + 1);
    let Some(key_end) = t
        .get(p..)
        .is_some_and(|r| r.starts_with(q))
        .then(|| json_string(t, p + q.len(), q))
        .flatten()
    else {
        return Vec::new();
    };
    let key = t.get(p + q.len()..key_end).unwrap_or("");
    if !VALUE_KEYS.contains(&key.to_ascii_lowercase().as_str()) {
        return Vec::new();
    }
    match colon_after(t, key_end + q.len()) {
        Some(c) => json_value(t, skip_spaces(t, c), q),
        None => Vec::new(),
    }
}

/// A room, floor or block number (`405号室`, `5F`, `2-11-3`), not a date (`2024年4月入社`).
fn room_or_block(v: &str) -> bool {
    let b = v.as_bytes();
    b.iter().enumerate().any(|(i, c)| {
        c.is_ascii_digit()
            && v.get(i + 1..).is_some_and(|r| {
                r.starts_with(['-', 'F', 'f'])
                    && r.get(1..)
                        .is_some_and(|x| !x.starts_with(|c: char| c.is_ascii_alphabetic()))
                    || ["号", "階"].iter().any(|u| r.starts_with(u))
            })
    })
}

/// A value that goes on over the next line, indented and not a label or a sentence of its own,
/// with a room or block number or a building in it (`住所：東京都世田谷区三軒茶屋2-11-3⏎　　　サンハイツ三軒茶屋
/// 405号室`, as forms wrap an address; not a note nested under a list item).
fn continuation_line(t: &str, line_end: usize) -> Option<(usize, usize)> {
    const BUILDINGS: [&str; 8] = [
        "ビル",
        "マンション",
        "ハイツ",
        "コーポ",
        "荘",
        "レジデンス",
        "タワー",
        "号室",
    ];
    let rest = t.get(line_end..)?;
    let rest = rest
        .strip_prefix("\r\n")
        .or_else(|| rest.strip_prefix('\n'))?;
    let from = t.len() - rest.len();
    let line = rest.get(..rest.find(['\r', '\n']).unwrap_or(rest.len()))?;
    let body = line.trim_start_matches([' ', '\t']);
    let indent = line.len() - body.len();
    let ok = indent >= 2
        && !body.is_empty()
        && body.len() <= 90
        && !body.contains([':', '=', '|', '。'])
        && !starts_as_prose(body)
        && !body.starts_with(['【', '■', '□', '●', '◆', '#', '-', '*', '・', '※', '('])
        && (BUILDINGS.iter().any(|b| body.contains(b)) || room_or_block(body));
    ok.then(|| trim_value(t, from + indent, from + line.len()))
}

/// Where, in a value, another label of an inline list begins: a separator (` / `, `|`, spaces)
/// before a word of 2 to 10 letters and a `:` that no `//` follows (`URL: https://…` is one value),
/// or a form body's `&` before `name=`.
fn next_inline_label(v: &str) -> Option<usize> {
    // Lists put their labels close together; a long value is prose, not a list.
    let v = v.get(..floor_boundary(v, 256)).unwrap_or(v);
    let mut from = 0;
    while let Some(k) = v
        .get(from..)
        .and_then(|r| r.find([' ', '/', '|', '\t', '&', '<']))
    {
        let at = from + k;
        let rest = v.get(at..).unwrap_or("");
        // HTML's line break (`氏名：山田<br>住所：…`) ends a line's value as a line break does.
        if rest.get(..3).is_some_and(|b| b.eq_ignore_ascii_case("<br")) {
            if at > 0 {
                return Some(at);
            }
            from = at + 1;
            continue;
        }
        if rest.starts_with('<') {
            from = at + 1;
            continue;
        }
        // A form's body (`氏名=山田由美&部署=総務課`) joins `name=value` pairs with `&`.
        let query = rest.starts_with('&');
        let label_at = rest.len() - rest.trim_start_matches([' ', '/', '|', '\t', '&']).len();
        let label = rest.get(label_at..).unwrap_or("");
        let len = label
            .char_indices()
            .find(|&(_, c)| !(word_char(c) || c.is_ascii_alphabetic() || c == '_'))
            .map_or(label.len(), |(i, _)| i);
        let after = label.get(len..).unwrap_or("").trim_start_matches(' ');
        let count = label.get(..len).map_or(0, |l| l.chars().count());
        // A log's `key=value` pairs (`住所=… plan=standard`) are joined by spaces.
        let pair = rest.starts_with([' ', '\t'])
            && label.get(..len).is_some_and(|l| l.is_ascii())
            && after.starts_with('=')
            && !after.starts_with("==");
        let separated = (after.starts_with(':') && !after.starts_with("://"))
            || (query && after.starts_with('='))
            || pair;
        if at > 0 && (2..=10).contains(&count) && separated {
            return Some(at);
        }
        from = at + label_at.max(1);
    }
    None
}

/// `Q. お名前⏎A. 山田由美`: a question that is a field's name, and the answer on the next line.
fn answer_below(t: &str, s: usize, e: usize) -> Option<(usize, usize)> {
    // The question begins its line a few characters before the name: look back that far only
    // (a field name in the middle of a megabyte-long line must not search all of it).
    let from = floor_boundary(t, s.saturating_sub(24));
    let back = t.get(from..s)?;
    let line_start = match back.rfind('\n') {
        Some(k) => from + k + 1,
        None if from == 0 => 0,
        None => return None,
    };
    let head = t.get(line_start..s)?.trim_start();
    let head = head.strip_suffix(['お', 'ご']).unwrap_or(head).trim_end();
    let asks = head
        .strip_prefix(['Q', 'q'])
        .or_else(|| head.strip_prefix('問'))
        .is_some_and(|r| r.trim_start_matches(|c: char| c.is_ascii_digit()).len() <= 1);
    if !asks {
        return None;
    }
    let rest = t.get(qualifier_end(t, e)..)?;
    let nl = rest.find('\n')?;
    let tail = rest.get(..nl)?.trim();
    if !matches!(tail, "" | "?" | "は?" | ":") {
        return None;
    }
    let from = qualifier_end(t, e) + nl + 1;
    let line = t.get(from..)?;
    let line = line.get(..line.find('\n').unwrap_or(line.len()))?;
    let body = line.trim_start();
    let answer = body
        .strip_prefix(['A', 'a'])
        .or_else(|| body.strip_prefix('答'))?;
    // `A2.` answers `Q2.`.
    let answer = answer
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .strip_prefix(['.', ':', ')', ' '])?;
    let a = from + (line.len() - answer.len());
    let v = trim_value(t, a, from + line.trim_end_matches('\r').len());
    (v.0 < v.1).then_some(v)
}

/// `氏名 → 山田由美`: the one arrow of its line separates a label and its value (a flow of
/// roles, `申請者 → 承認者 → 決裁者`, has more).
fn after_one_arrow(t: &str, start: usize, rest: &str) -> Option<(usize, usize)> {
    const ARROWS: [&str; 3] = ["→", "⇒", "->"];
    let arrow = ARROWS.into_iter().find(|a| rest.starts_with(a))?;
    let line = rest.get(..rest.find(['\n', '\r']).unwrap_or(rest.len()))?;
    if ARROWS
        .iter()
        .any(|a| line.get(arrow.len()..).is_some_and(|r| r.contains(a)))
    {
        return None;
    }
    let v = trim_value(t, start + arrow.len(), start + line.len());
    (v.0 < v.1).then_some(v)
}

/// Quotes and their closing ones, as values are written in code, YAML and Japanese prose.
const QUOTE_PAIRS: &[(char, char)] = &[('"', '"'), ('\'', '\''), ('「', '」'), ('『', '』')];

/// The length of the quoted part `v` begins with, closing quote included (0 when it does not
/// begin with a quote closed on its line).
fn quoted_prefix_len(v: &str) -> usize {
    let Some(open) = v.chars().next() else {
        return 0;
    };
    let Some(&(_, close)) = QUOTE_PAIRS.iter().find(|(o, _)| *o == open) else {
        return 0;
    };
    let inner = v.get(open.len_utf8()..).unwrap_or("");
    inner
        .find([close, '\n'])
        .filter(|&l| inner.get(l..).is_some_and(|r| r.starts_with(close)))
        .map_or(0, |l| open.len_utf8() + l + close.len_utf8())
}

/// Whether what follows a quoted value leaves it a value of its own: the line's end, a comment,
/// a tag's end, or the next `name=` attribute.
fn quoted_value_ends(after: &str) -> bool {
    let line = after
        .split('\n')
        .next()
        .unwrap_or("")
        .trim_end_matches('\r');
    let rest = line.trim_start_matches([' ', '\t']);
    if rest.is_empty()
        || rest.starts_with(['#', '>'])
        || rest.starts_with("/>")
        || rest.starts_with("//")
    {
        return true;
    }
    let spaced = rest.len() < line.len();
    // Attribute names may be Japanese (`<顧客 氏名="…" ランク="A"/>`).
    let name_len = rest
        .find(|c: char| {
            !(word_char(c) || c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '.'))
        })
        .unwrap_or(rest.len());
    spaced && name_len > 0 && rest.get(name_len..).is_some_and(|r| r.starts_with('='))
}

/// The length in bytes of the run of kanji and kana (at most 6) that `before` ends with: words
/// that begin a key with a field name in it (`契約者` of `"契約者住所"`). ASCII never counts, so
/// `"mac_address"` stays a key of its own.
fn cjk_word_before(before: &str) -> usize {
    before
        .chars()
        .rev()
        .take(6)
        .take_while(|&c| word_char(c))
        .map(char::len_utf8)
        .sum()
}

/// A letter that is not ASCII. Kanji and kana, nearly all there is to test, are decided by their
/// ranges; `char::is_alphabetic` searches Unicode's tables (1.4% of the redaction bench).
fn word_char(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3041}'..='\u{3096}' | '\u{30A1}'..='\u{30FA}' | '々')
        || (!c.is_ascii() && c.is_alphabetic())
}

/// A label that ends its line (`パスワード：`, `氏名`) over a short line that is not itself a
/// label or a sentence: that line is the value (forms copied from a PDF or a spreadsheet).
fn value_on_next_line(t: &str, p: usize) -> Option<(usize, usize)> {
    let rest = t.get(p..)?;
    let blank = rest.len() - rest.trim_start_matches([' ', '\t', '\r']).len();
    if !rest.get(blank..)?.starts_with('\n') {
        return None;
    }
    let mut from = p + blank + 1;
    // A Markdown definition list's `: value`.
    if let Some(r) = t.get(from..).and_then(|r| r.strip_prefix(": ")) {
        from = skip_spaces(t, t.len() - r.len());
    }
    let line = t.get(from..)?;
    let line = &line[..line.find('\n').unwrap_or(line.len())];
    let value = line.trim_end_matches('\r').trim();
    let ok = !value.is_empty()
        && value.len() <= 80
        && !value.contains([':', '=', '|'])
        && !value.ends_with('。')
        && !starts_as_prose(value)
        && !value.starts_with(['【', '■', '□', '●', '◆', '#', '-', '*', '・']);
    ok.then(|| trim_value(t, from, from + line.trim_end_matches('\r').len()))
}

/// A YAML block scalar (`password: |` or `>-` ending the line): the value is the lines below
/// that are indented deeper than the name's line.
fn yaml_block(t: &str, s: usize, p: usize) -> Option<(usize, usize)> {
    let rest = t.get(p..)?;
    // Most values are not block scalars: decided before looking for the line's end (a search per
    // value on one long line was quadratic).
    if !rest.starts_with(['|', '>']) {
        return None;
    }
    let nl = rest.find('\n')?;
    let line = rest.get(..nl)?.trim_end_matches([' ', '\t', '\r']);
    let indicator = line.strip_prefix(['|', '>'])?;
    if !indicator
        .chars()
        .all(|c| matches!(c, '-' | '+' | '1'..='9'))
        || indicator.len() > 2
    {
        return None;
    }
    let line_start = t.get(..s)?.rfind('\n').map_or(0, |k| k + 1);
    let indent = |l: &str| l.len() - l.trim_start_matches(' ').len();
    let base = indent(t.get(line_start..s)?);
    let from = p + nl + 1;
    let mut end = from;
    let mut at = from;
    for l in t.get(from..)?.split('\n') {
        let body = l.trim_end_matches('\r');
        if !body.trim().is_empty() {
            if indent(body) <= base {
                break;
            }
            end = at + body.len();
        }
        at += l.len() + 1;
    }
    (end > from).then(|| trim_value(t, from, end))
}

/// `end`, or earlier where a JSON escape ends a line or a string (`\n`, `\r`, `\t`, `\"`): a
/// JSON document inside a string (tool arguments) keeps its structure.
fn before_escape(t: &str, start: usize, end: usize) -> usize {
    let v = t.get(start..end).unwrap_or("");
    let mut from = 0;
    while let Some(k) = v.get(from..).and_then(|r| r.find('\\')) {
        let at = from + k;
        if matches!(v.as_bytes().get(at + 1), Some(b'n' | b'r' | b't' | b'"')) {
            return start + at;
        }
        from = at
            + 1
            + v.get(at + 1..)
                .and_then(|r| r.chars().next())
                .map_or(1, char::len_utf8);
    }
    end
}

/// A value that stands for one rather than being one: a template slot (`{{customer_name}}`,
/// `＿＿＿`, `〇〇県〇〇市`), a type in code or a schema (`email: str`, `| 氏名 | string |`), a
/// setting (`phone: disabled`), a call (`normalize(email)`) or a path in code
/// (`process.env.DB_PASSWORD`).
fn placeholder(v: &str) -> bool {
    const WORDS: &[&str] = &[
        "str",
        "string",
        "int",
        "integer",
        "number",
        "bool",
        "boolean",
        "float",
        "double",
        "any",
        "object",
        "array",
        "date",
        "datetime",
        "text",
        "varchar",
        "char",
        "null",
        "none",
        "true",
        "false",
        "enabled",
        "disabled",
        "required",
        "optional",
        "address",
        "email",
        "phone",
        "name",
        "undefined",
        // Japanese forms' non-answers (`お名前：匿名希望`, `連絡先：同上`, `氏名：（未記入）`).
        "匿名希望",
        "匿名",
        "非公開",
        "未記入",
        "(未記入)",
        "記入なし",
        "同上",
        "該当なし",
        // A column's note where a number used to be (`FAX：（廃止）`, `携帯：なし`).
        "廃止",
        "(廃止)",
        "なし",
        "(なし)",
        "無し",
        "未定",
        "(未定)",
        "未登録",
        "n/a",
        // Already filtered out by the application that wrote the log (Rails' `[FILTERED]`).
        "[filtered]",
        // A field's name where its value would be (`{"name": "氏名", "type": "text"}`, a form's
        // definition).
        "氏名",
        "名前",
        "お名前",
        "住所",
        "ご住所",
        "電話番号",
        "生年月日",
    ];
    let v = v.trim();
    if sample(v) {
        return true;
    }
    // `{{password}}`, `${API_KEY}`, `<your-password-here>`, `<パスワード>`: a slot to fill in,
    // not a value (`<Xk9mQ2pLr7>` has digits; `<山田太郎>` names no field).
    const SLOT_WORDS: &[&str] = &[
        "変更",
        "個人名",
        "氏名",
        "名前",
        "住所",
        "番号",
        "メール",
        "入力",
        "ここ",
    ];
    let angle = v
        .strip_prefix('<')
        .and_then(|x| x.strip_suffix('>'))
        .is_some_and(|x| {
            (1..=40).contains(&x.chars().count())
                && (x
                    .chars()
                    .all(|c| c.is_ascii_alphabetic() || " _.-".contains(c))
                    || SLOT_WORDS.iter().any(|w| x.contains(w)))
        });
    // `{name}` (an f-string's or a format string's field) and `%ADDRESS%` (a batch file's or a
    // mail merge's variable): an identifier in its delimiters, of one case and no digits
    // (`{Xk9m2}` or `%Pass2024%` may be a password in them).
    let ident = |x: &str, upper: bool| {
        (1..=40).contains(&x.len())
            && x.chars().all(|c| {
                c == '_'
                    || c == '.'
                    || if upper {
                        c.is_ascii_uppercase()
                    } else {
                        c.is_ascii_lowercase()
                    }
            })
    };
    // The value may run to the end of the string literal it sits in (`f"住所: {addr}")`).
    let unquoted = v.trim_end_matches(['"', '\'']);
    let field = unquoted
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .is_some_and(|x| ident(x, false))
        || unquoted
            .strip_prefix('%')
            .and_then(|x| x.strip_suffix('%'))
            .is_some_and(|x| ident(x, true));
    let slot = (v.starts_with("{{") && v.ends_with("}}"))
        || (v.starts_with("${") && v.ends_with('}'))
        || angle
        || field;
    // `****-****-****-7226`: a masked number keeps at most its last four digits.
    let masked = v.chars().filter(|c| "*＊●•".contains(*c)).count() >= 4
        && v.chars().filter(char::is_ascii_digit).count() <= 4
        && v.chars()
            .all(|c| c.is_ascii_digit() || "*＊●•-‐ ".contains(c));
    // A date's format where the date goes (`YYYY/MM/DD`, `yyyy年mm月dd日`).
    let date_format = v.contains(['Y', 'y']) && v.chars().all(|c| "YMDymd/-.年月日 ".contains(c));
    let blanks = masked
        || date_format
        || v.chars().all(|c| "_＿-ー―〇○●◯*＊xX×・. ".contains(c))
        || v.contains("〇〇")
        || v.contains("○○")
        || v.contains("××");
    let word = match v.len() <= 16 {
        true => v.to_ascii_lowercase(),
        false => String::new(),
    };
    let call = v.find(['(', '[']).is_some_and(|k| {
        super::validate::code_call(v.get(..k).unwrap_or(""), v.get(k + 1..).unwrap_or(""))
    });
    // `process.env.DB_PASSWORD`, `config.jwtSecret`: where a value is kept, in code; `$pw =
    // ConvertTo-SecureString "…"`: the command that makes it.
    let path = super::validate::code_reference(v);
    let yours = v.is_ascii() && super::validate::stand_in(&v.to_ascii_lowercase());
    // `匿名希望（60代女性）`: no name given, and a short note of age or sex ending the value
    // (`非公開（1234）`, `匿名希望（本名 山田花子）` and `未定（山田が代理）` still hold a value).
    let noted = v.split_once('(').is_some_and(|(head, note)| {
        ["匿名希望", "匿名", "非公開"].contains(&head.trim())
            && note.strip_suffix(')').is_some_and(|n| {
                n.chars().count() <= 10
                    && n.contains(['代', '歳', '男', '女'])
                    && n.chars().filter(char::is_ascii_digit).count() <= 2
            })
    });
    slot || blanks
        || call
        || path
        || yours
        || WORDS.contains(&word.as_str())
        || noted
        || input_rule(v)
}

/// A form's specification of what goes in a field, not what went in it (`全角20文字以内（必須）`,
/// `半角数字、ハイフンなし（任意）`, `20文字以内`, `必須`): the whole value is the rule, so a value
/// followed by a hint (`山田太郎　全角20文字以内`) is still a value.
fn input_rule(v: &str) -> bool {
    let v = ["(必須)", "(任意)"]
        .iter()
        .find_map(|m| v.strip_suffix(m))
        .unwrap_or(v)
        .trim();
    let digits = v.len() - v.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let limit = v.get(digits..).is_some_and(|rest| {
        digits > 0 && ["文字以内", "文字まで", "桁以内", "桁まで", "桁"].contains(&rest)
    });
    v.starts_with("全角")
        || v.starts_with("半角")
        || limit
        || v.ends_with("でも可")
        || matches!(v, "" | "必須" | "任意" | "空欄" | "不要")
}

/// Ends a `【name】value`.
const BRACKET_STOPS: &[char] = &['【', '〔', '[', '、', '。', '\t', '\r', '\n'];

/// A label followed by prose about it (`住所 は必須`, `【氏名】を記入`, `【氏名】様`) rather
/// than by a value.
fn starts_as_prose(rest: &str) -> bool {
    const PARTICLES: &[char] = &[
        'は', 'を', 'が', 'の', 'に', 'と', 'も', 'で', 'へ', 'や', 'か', '様', '殿', '欄', '等',
        ':', '(',
        // A flow of roles (`申請者 → 承認者 → 決裁者`), not a label and its value.
        '→', '⇒', '←', '↔', '⇔', '、',
    ];
    !rest.contains(|c: char| !matches!(c, ' ' | '\t' | '\r')) || rest.starts_with(PARTICLES)
}

/// After a field name, the end of a qualifier in parentheses (`氏名（漢字）`, `生年月日(西暦)`):
/// the value follows it.
fn qualifier_end(t: &str, e: usize) -> usize {
    let rest = t.get(e..).unwrap_or("");
    if !rest.starts_with('(') {
        return e;
    }
    let head = rest.get(..floor_boundary(rest, 48)).unwrap_or("");
    match head.find([')', '\n']) {
        Some(k) if head.get(k..).is_some_and(|r| r.starts_with(')')) => e + k + 1,
        _ => e,
    }
}

/// English words that make `address` something else: `IP address`, `mac_address`.
fn not_personal(t: &str, s: usize) -> bool {
    const QUALIFIERS: &[&str] = &[
        "ip", "ipv4", "ipv6", "mac", "memory", "server", "network", "web", "url", "wallet",
        "bitcoin", "ethereum", "contract", "bind", "listen", "proxy",
    ];
    let name = t.get(s..).unwrap_or("");
    if !name
        .get(..7)
        .is_some_and(|n| n.eq_ignore_ascii_case("address"))
    {
        return false;
    }
    let before = t.get(..s).unwrap_or("");
    let Some(b) = before.strip_suffix([' ', '_', '-']) else {
        return false;
    };
    let word_start = b
        .rfind(|c: char| !c.is_ascii_alphanumeric())
        .map_or(0, |i| i + 1);
    let word = b.get(word_start..).unwrap_or("").to_ascii_lowercase();
    QUALIFIERS.contains(&word.as_str())
}

/// Tables whose header row names fields: a Markdown table (`| 氏名 | 住所 |` over `|---|---|`)
/// or CSV/TSV lines (`社員番号,氏名,電話番号`) followed by rows with as many cells. Each named
/// column's cells become spans. Returns the start offsets of the header lines, sorted.
fn table_spans(
    t: &str,
    hits: &[FieldHit],
    line_of: &dyn Fn(usize) -> (usize, usize),
    out: &mut Vec<Span>,
) -> Vec<usize> {
    let mut headers = Vec::new();
    let mut i = 0;
    // Where the last `name<TAB>value` line ended: the line after it is one too.
    let mut kv_end = None;
    while let Some(h) = hits.get(i) {
        let (ls, le) = line_of(h.start);
        let le = if t.get(..le).is_some_and(|l| l.ends_with('\r')) && le > ls {
            le - 1
        } else {
            le
        };
        let mut j = i;
        while hits.get(j).is_some_and(|x| x.start < le) {
            j += 1;
        }
        let on_line = hits.get(i..j).unwrap_or(&[]);
        i = j.max(i + 1);
        // A header row is short; prose lines (the common case) are not looked at further.
        if le - ls > MAX_HEADER_LINE {
            continue;
        }
        let line_start = ls;
        let ls = after_json_key(t, ls, le);
        let in_json = ls != line_start;
        let line = t.get(ls..le).unwrap_or("");
        let n = next_line_start(t, le);
        if n >= t.len() {
            continue;
        }
        let next = line_at(t, n);
        let next_line = t.get(next.0..next.1).unwrap_or("");
        // psql's aligned output: ` id | name` over `----+------`, no pipe at either end.
        let psql = line.contains('|') && psql_rule(next_line);
        let kind = if line.trim_start().starts_with('|') && delimiter_row(next_line) {
            Table::Markdown
        } else if psql {
            Table::Separated('|')
        } else if line.contains('\t') {
            Table::Separated('\t')
        } else if line.contains(',') {
            Table::Separated(',')
        } else {
            continue;
        };
        let head = cells(t, ls, le, kind);
        if !(2..=MAX_COLUMNS).contains(&head.len()) || head.iter().any(|c| c.1 - c.0 > 64) {
            continue;
        }
        if let Table::Separated(_) = kind {
            // `お名前<TAB>：<TAB>値` is a field, not a header.
            if on_line
                .iter()
                .any(|h| colon_after(t, qualifier_end(t, h.end)).is_some())
            {
                continue;
            }
            // `氏名<TAB>小川直樹` over `住所<TAB>…`: a vertical list of names and values (a
            // paste from a spreadsheet), not a two-column table's header.
            let next_starts_with_name = cells(t, next.0, next.1, kind)
                .first()
                .is_some_and(|c| on_next_line_is_name(hits, j, *c));
            let follows_pair = kv_end.is_some_and(|e| next_line_start(t, e) == ls);
            if let ([name, value], Some(h)) = (head.as_slice(), on_line.first()) {
                let value_is_name = on_line.iter().any(|x| (x.start, x.end) == *value);
                if *name == (h.start, h.end)
                    && !value_is_name
                    && (next_starts_with_name || follows_pair)
                {
                    if value.0 < value.1 {
                        out.push(Span {
                            start: value.0,
                            end: value.1,
                            treatment: h.treatment,
                            rank: RANK_FIELD,
                        });
                    }
                    kv_end = Some(le);
                    headers.push(line_start);
                    continue;
                }
            }
        }
        let columns: Vec<(usize, usize, bool)> = on_line
            .iter()
            .filter_map(|h| {
                head.iter()
                    .position(|&c| c == (h.start, h.end))
                    .map(|col| (col, h.treatment, h.people))
            })
            .collect();
        if columns.is_empty() {
            continue;
        }
        // `| 氏名 | 山田太郎 |` over `|---|---|` may be a name/value table whose first row is a
        // value: in two columns, the cell after a name is taken too unless it is a name itself
        // or a word that heads a column (`| 担当 | 備考 |`); at worst another header word is
        // masked.
        let header_word = |c: &(usize, usize)| {
            t.get(c.0..c.1)
                .is_some_and(|w| HEADER_WORDS.iter().any(|h| w.eq_ignore_ascii_case(h)))
        };
        if let [_, second] = head.as_slice() {
            let first_is_name = columns.iter().any(|&(col, _, _)| col == 0);
            let second_is_name = columns.iter().any(|&(col, _, _)| col == 1);
            if let (true, false, false, Some(&(_, treatment, _))) = (
                first_is_name,
                second_is_name,
                header_word(second),
                columns.first(),
            ) {
                if second.0 < second.1 && !placeholder(t.get(second.0..second.1).unwrap_or("")) {
                    out.push(Span {
                        start: second.0,
                        end: second.1,
                        treatment,
                        rank: RANK_FIELD,
                    });
                }
            }
        }
        // Rows begin under the header's rule, where it has one.
        let mut row = match kind == Table::Markdown || psql {
            true => match next_line_start(t, next.1) {
                n if n >= t.len() => continue,
                n => line_at(t, n),
            },
            false => next,
        };
        let mut rows = 0;
        loop {
            // In a JSON string (`{"csv": "…\n…"}`), the table ends where the string does.
            let string_end = in_json
                .then(|| json_string(t, row.0, "\""))
                .flatten()
                .filter(|&q| q < row.1);
            let row_end = string_end.unwrap_or(row.1);
            let line = t.get(row.0..row_end).unwrap_or("");
            let cs = cells(t, row.0, row_end, kind);
            let fits = match kind {
                Table::Markdown => line.trim_start().starts_with('|'),
                Table::Separated(_) => cs.len() == head.len(),
            };
            if !fits {
                break;
            }
            for &(col, treatment, people) in &columns {
                // A person column's cell that names a team or a role (`| 情シス |`, `| 未定 |`).
                let kept = |v: &str| placeholder(v) || (people && only_roles(v));
                if let Some(&(a, b)) = cs
                    .get(col)
                    .filter(|c| c.0 < c.1 && !kept(t.get(c.0..c.1).unwrap_or("")))
                {
                    out.push(Span {
                        start: a,
                        end: b,
                        treatment,
                        rank: RANK_FIELD,
                    });
                }
            }
            rows += 1;
            let n = next_line_start(t, row.1);
            if n >= t.len() || string_end.is_some() {
                break;
            }
            row = line_at(t, n);
        }
        if rows > 0 || kind == Table::Markdown {
            headers.push(line_start);
        }
        // The rows are data, whatever names they hold: never headers of tables of their own.
        while hits.get(i).is_some_and(|x| x.start < row.1) {
            i += 1;
        }
    }
    headers
}

/// Past `{"csv": "` at the start of the line `ls..le`: a table inside a JSON string whose line
/// breaks were written as `\n` (a tool argument) starts there.
fn after_json_key(t: &str, ls: usize, le: usize) -> usize {
    let line = t.get(ls..le).unwrap_or("");
    let rest = line.trim_start_matches([' ', '\t', '{', '[', ',']);
    let Some(key) = rest.strip_prefix('"') else {
        return ls;
    };
    let Some(k) = key.find(['"', '\\']).filter(|&k| k <= 64) else {
        return ls;
    };
    let after = key.get(k..).unwrap_or("");
    let Some(value) = after
        .strip_prefix('"')
        .map(|r| r.trim_start_matches([' ', '\t']))
        .and_then(|r| r.strip_prefix(':'))
        .map(|r| r.trim_start_matches([' ', '\t']))
        .and_then(|r| r.strip_prefix('"'))
    else {
        return ls;
    };
    le - value.len()
}

/// Whether one of the hits from `from` on is exactly the cell `c`.
fn on_next_line_is_name(hits: &[FieldHit], from: usize, c: (usize, usize)) -> bool {
    hits.get(from..)
        .into_iter()
        .flatten()
        .take_while(|h| h.start <= c.0)
        .any(|h| (h.start, h.end) == c)
}

/// Words that head a table's column (`| 担当 | 備考 |`): after a field name in a two-column
/// header row, such a word is not the field's value.
const HEADER_WORDS: &[&str] = &[
    "備考",
    "内容",
    "説明",
    "詳細",
    "概要",
    "役割",
    "役職",
    "部署",
    "所属",
    "日付",
    "日時",
    "期限",
    "状態",
    "ステータス",
    "区分",
    "種別",
    "項目",
    "値",
    "金額",
    "数量",
    "件数",
    "時間",
    "場所",
    "メモ",
    "コメント",
    "結果",
    "対応",
    "理由",
    "目的",
    "用途",
    "担当業務",
    "評価",
    "評点",
    "点数",
    "得点",
    "成績",
    "順位",
    "ランク",
    "等級",
    "売上",
    "売上高",
    "単価",
    "価格",
    "合計",
    "小計",
    "予算",
    "実績",
    "目標",
    "達成率",
    "年齢",
    "性別",
    "出欠",
    "回答",
    "意見",
    "感想",
    "件名",
    "商品",
    "品名",
    "個数",
    "入社日",
    "残業時間",
    "score",
    "rank",
    "grade",
    "rating",
    "sales",
    "amount",
    "total",
    "age",
    "result",
    "note",
    "notes",
    "remarks",
    "description",
    "role",
    "department",
    "status",
    "date",
    "value",
    "comment",
];

/// Longer than any header row: `MAX_COLUMNS` cells of up to 64 bytes would not fit a screen.
const MAX_HEADER_LINE: usize = 1024;

/// More columns than this is not a table a person wrote.
const MAX_COLUMNS: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Table {
    Markdown,
    Separated(char),
}

/// The line containing `p`, without its line break: (start, end).
fn line_at(t: &str, p: usize) -> (usize, usize) {
    let p = p.min(t.len());
    let start = t.get(..p).and_then(|b| b.rfind('\n')).map_or(0, |k| k + 1);
    let end = t
        .get(p..)
        .and_then(|r| r.find('\n'))
        .map_or(t.len(), |k| p + k);
    let end = if t.get(..end).is_some_and(|l| l.ends_with('\r')) && end > start {
        end - 1
    } else {
        end
    };
    (start, end)
}

/// The start of the line after the one ending (before its line break) at `e`.
fn next_line_start(t: &str, e: usize) -> usize {
    let rest = t.get(e..).unwrap_or("");
    e + rest.find('\n').map_or(rest.len(), |k| k + 1)
}

/// `|---|:--:|`
fn delimiter_row(line: &str) -> bool {
    line.contains('|')
        && line.contains('-')
        && line
            .chars()
            .all(|c| matches!(c, '|' | '-' | ':' | ' ' | '\t' | '\r'))
}

/// `----+------+---`, the rule under psql's header.
fn psql_rule(line: &str) -> bool {
    line.contains('+') && line.contains('-') && line.chars().all(|c| matches!(c, '-' | '+' | '\r'))
}

/// The cells of the line `ls..le`, each trimmed of spaces and one pair of quotes.
fn cells(t: &str, ls: usize, le: usize, kind: Table) -> Vec<(usize, usize)> {
    let line = t.get(ls..le).unwrap_or("");
    let sep = match kind {
        Table::Markdown => '|',
        Table::Separated(c) => c,
    };
    // Separators inside a quoted cell (`"札幌市…, 201号"`) do not split it.
    let mut bounds: Vec<usize> = Vec::new();
    if sep != '|' && line.contains('"') {
        let mut quoted = false;
        for (k, c) in line.char_indices() {
            match c {
                '"' => quoted = !quoted,
                c if c == sep && !quoted => bounds.push(ls + k),
                _ => {}
            }
        }
    } else {
        bounds.extend(line.match_indices(sep).map(|(k, _)| ls + k));
    }
    let mut out = Vec::new();
    match kind {
        Table::Markdown => {
            // Between the pipes; text before the first or after the last is not a cell.
            for w in bounds.windows(2) {
                if let [a, b] = *w {
                    out.push(trim_value(t, a + 1, b));
                }
            }
        }
        Table::Separated(_) => {
            bounds.insert(0, ls.wrapping_sub(1));
            bounds.push(le);
            for w in bounds.windows(2) {
                if let [a, b] = *w {
                    out.push(trim_value(t, a.wrapping_add(1), b));
                }
            }
        }
    }
    out
}

/// Trims spaces and list punctuation around a value, and one pair of enclosing quotes.
fn trim_value(t: &str, a: usize, b: usize) -> (usize, usize) {
    let Some(s) = t.get(a..b) else {
        return (a, a);
    };
    let s1 = s.trim_start_matches([' ', '\t']);
    let a1 = a + (s.len() - s1.len());
    let s2 = s1.trim_end_matches([' ', '\t', ',', '、', '，', ';', '；']);
    let b1 = a1 + s2.len();
    for (o, c) in [('"', '"'), ('\'', '\''), ('「', '」'), ('『', '』')] {
        if s2.len() >= o.len_utf8() + c.len_utf8() && s2.starts_with(o) && s2.ends_with(c) {
            return (a1 + o.len_utf8(), b1 - c.len_utf8());
        }
    }
    (a1, b1)
}

/// Only spaces and list or quote markers between the line start and `s`.
fn at_line_start(t: &str, line_start: usize, s: usize) -> bool {
    s - line_start.min(s) <= 32
        && t.get(line_start..s).is_some_and(|line| {
            line.chars().all(|c| {
                matches!(
                    c,
                    ' ' | '\t'
                        | '-'
                        | '*'
                        | '+'
                        | '>'
                        | '#'
                        | '・'
                        | '•'
                        | '●'
                        | '○'
                        | '■'
                        | '□'
                        | '◆'
                        | '.'
                        | ')'
                        | '\r'
                ) || c.is_ascii_digit()
            })
        })
}

/// The value of a quoted key: a string (the part between the quotes, escapes kept), a scalar, the
/// strings and scalars of a flat array, or every string and scalar inside an object (`"住所":
/// {"番地": "…", "建物": "…"}`: what a confidential key holds is confidential, whatever its
/// inner keys are called).
fn json_value(t: &str, p: usize, q: &str) -> Vec<(usize, usize)> {
    let rest = t.get(p..).unwrap_or("");
    if rest.starts_with(q) {
        return json_text(t, p + q.len(), q)
            .map(|end| vec![(p + q.len(), end)])
            .unwrap_or_default();
    }
    if rest.starts_with('[') {
        let mut out = Vec::new();
        let mut i = p + 1;
        loop {
            i = skip_ws_all(t, i);
            let r = t.get(i..).unwrap_or("");
            if r.starts_with(q) {
                let Some(end) = json_string(t, i + q.len(), q) else {
                    break;
                };
                out.push((i + q.len(), end));
                i = end + q.len();
            } else if r.starts_with(['[', '{', ']']) || r.is_empty() {
                break;
            } else {
                let end = i + r.find([',', ']', '\n']).unwrap_or(r.len());
                let v = trim_value(t, i, end);
                if !is_json_literal(t.get(v.0..v.1).unwrap_or("")) {
                    out.push(v);
                }
                i = end;
            }
            i = skip_ws_all(t, i);
            match t.get(i..).and_then(|r| r.chars().next()) {
                Some(',') => i += 1,
                _ => break,
            }
        }
        return out;
    }
    if rest.starts_with('{') {
        return json_object(t, p, q, JSON_DEPTH).0;
    }
    let end = p + rest.find([',', '}', ']', '\n', '\r']).unwrap_or(rest.len());
    let v = trim_value(t, p, end);
    if is_json_literal(t.get(v.0..v.1).unwrap_or("")) {
        return Vec::new();
    }
    vec![v]
}

/// A JSON Schema's types: an object whose `type` is one of these describes data (with
/// `description`, `maxLength`…), as does one with `$ref` or `properties`.
const SCHEMA_TYPES: &[&str] = &[
    "string", "number", "integer", "boolean", "object", "array", "null",
];

/// An identifier that begins upper-case (`SINGLE_LINE_TEXT`, `DROP_DOWN`, schema.org's
/// `PostalAddress`): a type's name, no one's data.
fn type_tag(v: &str) -> bool {
    v.len() >= 2
        && v.starts_with(|c: char| c.is_ascii_uppercase())
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// How deep [`json_object`] reads objects inside objects.
const JSON_DEPTH: usize = 4;

/// The strings and scalars of the object that opens at `p` (keys left out; objects inside it read
/// to `depth` more levels, arrays as [`json_value`] reads them), and where the object ends:
/// `None` when it is cut short or not JSON, with what was read up to there.
fn json_object(t: &str, p: usize, q: &str, depth: usize) -> (Vec<(usize, usize)>, Option<usize>) {
    let mut out = Vec::new();
    let mut schema = false;
    let keep = |out: Vec<(usize, usize)>, schema: bool| if schema { Vec::new() } else { out };
    let mut i = p + 1;
    loop {
        i = skip_ws_all(t, i);
        let r = t.get(i..).unwrap_or("");
        if r.starts_with('}') {
            return (keep(out, schema), Some(i + 1));
        }
        let Some(key_end) = r
            .starts_with(q)
            .then(|| json_string(t, i + q.len(), q))
            .flatten()
        else {
            return (out, None);
        };
        let key = t.get(i + q.len()..key_end).unwrap_or("");
        i = skip_ws_all(t, key_end + q.len());
        if !t.get(i..).unwrap_or("").starts_with(':') {
            return (out, None);
        }
        i = skip_ws_all(t, i + 1);
        let r = t.get(i..).unwrap_or("");
        let next = if r.starts_with(q) {
            json_text(t, i + q.len(), q).map(|end| {
                // A schema describes the field (`"email": {"type": "string", "description": …}`):
                // its words are no one's data.
                let value = t.get(i + q.len()..end).unwrap_or("");
                schema |= key == "type" && SCHEMA_TYPES.contains(&value);
                // A field's type tag (kintone's `"氏名": {"type": "SINGLE_LINE_TEXT", "value": …}`).
                if !(matches!(key, "type" | "@type") && type_tag(value)) {
                    out.push((i + q.len(), end));
                }
                end + q.len()
            })
        } else if r.starts_with('{') && depth > 0 {
            let (inner, end) = json_object(t, i, q, depth - 1);
            out.extend(inner);
            end
        } else if r.starts_with('[') {
            out.extend(json_value(t, i, q));
            array_end(t, i, q)
        } else if r.starts_with('{') || r.is_empty() {
            None
        } else {
            let end = i + r.find([',', '}', ']', '\n', '\r']).unwrap_or(r.len());
            let v = trim_value(t, i, end);
            if !is_json_literal(t.get(v.0..v.1).unwrap_or("")) {
                out.push(v);
            }
            Some(end)
        };
        let Some(n) = next else {
            return (out, None);
        };
        i = skip_ws_all(t, n);
        schema |= matches!(key, "$ref" | "properties");
        match t.get(i..).and_then(|r| r.chars().next()) {
            Some(',') => i += 1,
            Some('}') => return (keep(out, schema), Some(i + 1)),
            _ => return (keep(out, schema), None),
        }
    }
}

/// How far [`array_end`] looks for the end of an array: a text of keys over arrays never closed
/// (`{"住所":{"k":[` again and again) would otherwise be read to its end once per key.
const ARRAY_BUDGET: usize = 4096;

/// Just past the `]` that closes the array opening at `p`, strings skipped whole; `None` when it
/// is not closed within [`ARRAY_BUDGET`] bytes.
fn array_end(t: &str, p: usize, q: &str) -> Option<usize> {
    let mut i = p;
    let mut depth = 0usize;
    while let Some(c) = t.get(i..)?.chars().next() {
        if i - p > ARRAY_BUDGET {
            return None;
        }
        if t.get(i..).is_some_and(|r| r.starts_with(q)) {
            i = json_string(t, i + q.len(), q)? + q.len();
            continue;
        }
        match c {
            '[' | '{' => depth += 1,
            ']' | '}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += c.len_utf8();
    }
    None
}

fn is_json_literal(s: &str) -> bool {
    s.is_empty() || matches!(s, "null" | "true" | "false")
}

fn skip_ws_all(t: &str, p: usize) -> usize {
    let rest = t.get(p..).unwrap_or("");
    p + (rest.len() - rest.trim_start().len())
}

/// How many line breaks [`json_text`] reads through, and how far.
const STRING_LINES: usize = 4;
const STRING_BYTES: usize = 512;

/// The closing quote of a value's string, which may run over a few lines: the view reads a
/// `\n` escape as a line break (`"住所": "中野区…\nサンライズ中野302"`). Only when the quote that
/// ends it is followed by what follows a value in JSON (`,`, `}`, `]`, the line's end).
fn json_text(t: &str, p: usize, q: &str) -> Option<usize> {
    if let Some(end) = json_string(t, p, q) {
        return Some(end);
    }
    let mut from = p;
    for _ in 0..STRING_LINES {
        let line_end = from + t.get(from..)?.find('\n')?;
        if line_end - p > STRING_BYTES {
            return None;
        }
        from = line_end + 1;
        if let Some(end) = json_string(t, from, q) {
            let after = t.get(end + q.len()..).unwrap_or("");
            let after = after.trim_start_matches([' ', '\t', '\r']);
            let ends = after.is_empty() || after.starts_with([',', '}', ']', '\n']);
            return (ends && end - p <= STRING_BYTES).then_some(end);
        }
    }
    None
}

/// The offset of the closing quote of a string whose content starts at `p`.
fn json_string(t: &str, p: usize, q: &str) -> Option<usize> {
    let rest = t.get(p..)?;
    if q == "\\\"" {
        // JSON inside a JSON string: `\\` is a backslash and `\"` a quote of the inner text,
        // which ends at a quote not escaped by an inner backslash.
        let b = rest.as_bytes();
        let mut i = 0;
        let mut inner_escape = false;
        while let Some(&c) = b.get(i) {
            match (c, b.get(i + 1)) {
                (b'\\', Some(b'"')) if !inner_escape => return Some(p + i),
                (b'\\', Some(b'\\')) => {
                    inner_escape = !inner_escape;
                    i += 2;
                }
                (b'\\', Some(_)) => {
                    inner_escape = false;
                    i += 2;
                }
                (b'\n', _) => return None,
                _ => {
                    inner_escape = false;
                    i += 1;
                }
            }
        }
        return None;
    }
    let quote = q.as_bytes().first().copied().unwrap_or(b'"');
    let mut escaped = false;
    for (i, &c) in rest.as_bytes().iter().enumerate() {
        if escaped {
            escaped = false;
        } else if c == b'\\' {
            escaped = true;
        } else if c == quote {
            return Some(p + i);
        } else if c == b'\n' {
            return None;
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Detectors

/// Maximal runs of ASCII digits in the view. Skips 32 bytes at a time where there are none.
pub(crate) fn digit_runs(t: &str) -> Vec<Hit> {
    let b = t.as_bytes();
    let mut runs = Vec::new();
    let mut i = 0;
    let is_digit = |x: &u8| x.wrapping_sub(b'0') < 10;
    while i < b.len() {
        while let Some(chunk) = b.get(i..i + 32) {
            if chunk.iter().fold(false, |acc, x| acc | is_digit(x)) {
                break;
            }
            i += 32;
        }
        match b.get(i) {
            None => break,
            Some(x) if is_digit(x) => {
                let s = i;
                while b.get(i).is_some_and(is_digit) {
                    i += 1;
                }
                runs.push((s, i));
            }
            Some(_) => i += 1,
        }
    }
    runs
}

pub(crate) fn floor_boundary(t: &str, mut p: usize) -> usize {
    p = p.min(t.len());
    while p > 0 && !t.is_char_boundary(p) {
        p -= 1;
    }
    p
}

pub(crate) fn ceil_boundary(t: &str, mut p: usize) -> usize {
    p = p.min(t.len());
    while p < t.len() && !t.is_char_boundary(p) {
        p += 1;
    }
    p
}

fn next_char(t: &str, p: usize) -> usize {
    p + t
        .get(p..)
        .and_then(|r| r.chars().next())
        .map_or(1, char::len_utf8)
}

fn detector_spans(
    d: &Detector,
    idx: usize,
    t: &str,
    triggers: &[Hit],
    keywords: &[Hit],
    runs: &[Hit],
    out: &mut Vec<Span>,
) {
    let mut windows: Vec<Hit> = Vec::new();
    let fwd = d.max_len.unwrap_or(t.len());
    match d.keyword_mode {
        Some(KeywordMode::Required) => {
            let reach = d.keyword_window * 4 + fwd;
            windows.extend(
                keywords
                    .iter()
                    .map(|&(s, e)| (s.saturating_sub(reach), e.saturating_add(reach))),
            );
        }
        _ => {
            windows.extend(
                triggers
                    .iter()
                    .filter(|&&(s, _)| {
                        let before = t.get(..s).unwrap_or("");
                        !d.triggers_not_after
                            .iter()
                            .any(|w| ends_with_folded(before, w).is_some())
                    })
                    .map(|&(s, e)| (s.saturating_sub(d.back), e.saturating_add(fwd))),
            );
            if d.digit_trigger {
                windows.extend(
                    runs.iter()
                        .map(|&(s, e)| (s.saturating_sub(d.back), e.saturating_add(fwd))),
                );
            }
        }
    }
    if windows.is_empty() {
        return;
    }
    windows.sort_unstable();
    let mut merged: Vec<Hit> = Vec::with_capacity(windows.len());
    for (a, b) in windows {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    let mut caps: Option<Captures> = None;
    let mut exact_caps: Option<Captures> = None;
    // The first digit run that ends after the window begins: windows ascend, so it only moves
    // on (a search per window was a tenth of the detectors' time in digit-rich prose).
    let mut first_run = 0;
    for (a, b) in merged {
        let (a, b) = (floor_boundary(t, a), ceil_boundary(t, b));
        if d.min_digits > 0 {
            while runs.get(first_run).is_some_and(|r| r.1 <= a) {
                first_run += 1;
            }
            if digits_in(runs.get(first_run..).unwrap_or(&[]), a, b) < d.min_digits {
                continue;
            }
        }
        let c = caps.get_or_insert_with(|| d.regex.create_captures());
        scan_window(d, idx, t, a, b, keywords, c, &mut exact_caps, out);
    }
}

/// Digits of `runs` (from the first that ends after `a`) inside `a..b`.
fn digits_in(runs: &[Hit], a: usize, b: usize) -> usize {
    runs.iter()
        .take_while(|r| r.0 < b)
        .map(|r| r.1.min(b).saturating_sub(r.0.max(a)))
        .sum()
}

enum Verdict {
    Accept(usize, usize),
    TryShorter,
    Reject,
}

#[allow(clippy::too_many_arguments)]
fn scan_window(
    d: &Detector,
    idx: usize,
    t: &str,
    a: usize,
    b: usize,
    keywords: &[Hit],
    caps: &mut Captures,
    exact_caps: &mut Option<Captures>,
    out: &mut Vec<Span>,
) {
    let treatment = d.treatment;
    let rank = RANK_DETECTOR + idx as u32;
    let mut pos = a;
    while pos < b {
        d.regex.search_captures(&Input::new(t).span(pos..b), caps);
        let Some(m) = caps.get_match() else {
            break;
        };
        let (ms, me) = (m.start(), m.end());
        if me <= ms {
            pos = next_char(t, ms);
            continue;
        }
        let (vs, ve) = value_span(d, caps, ms, me);
        // A full-width bracket folds to ASCII: `Kumo#8812（大文字小文字を区別）` ends the value
        // before its `(`.
        let kept = t
            .get(vs..ve)
            .map_or(0, |v| v.trim_end_matches(['(', '[', '{', '<']).len());
        let ve = if kept > 0 { vs + kept } else { ve };
        // So does a note that opens with a mark (`xoxb-…（#営業チャンネル用）`).
        let ve = match t.get(vs..ve).and_then(|v| v.rfind('(').map(|k| (v, k))) {
            Some((v, k))
                if k > 0
                    && v.get(k + 1..)
                        .is_some_and(|n| n.bytes().all(|b| b.is_ascii_punctuation()))
                    && t.get(ve..)
                        .is_some_and(|r| r.starts_with(|c: char| !c.is_ascii())) =>
            {
                vs + k
            }
            _ => ve,
        };
        let (me, ve) = match d.value_runs_on && ve == me && left_ok(d.boundary, t, ms) {
            true => {
                let end = runs_on(t, vs, me);
                // A query's or a form body's parameter ends at the next one
                // (`&client_secret=…&scope=read`).
                let end = match t.get(..ms).is_some_and(|b| b.ends_with(['&', '?'])) {
                    true => t
                        .get(vs..end)
                        .and_then(|v| v.find('&'))
                        .map_or(end, |k| vs + k),
                    false => end,
                };
                (end, end)
            }
            false => (me, ve),
        };
        match judge(d, t, ms, me, vs, ve, keywords) {
            Verdict::Accept(vs, ve) => {
                out.push(Span {
                    start: vs,
                    end: ve,
                    treatment,
                    rank,
                });
                pos = me;
            }
            Verdict::TryShorter => match shorter(d, t, ms, me, keywords, exact_caps) {
                Some((end, vs, ve)) => {
                    out.push(Span {
                        start: vs,
                        end: ve,
                        treatment,
                        rank,
                    });
                    pos = end;
                }
                None => pos = retry_from(d.boundary, t, ms),
            },
            Verdict::Reject => pos = retry_from(d.boundary, t, ms),
        }
    }
}

/// The end of a credential value continuing at `p`: printable ASCII up to a space, quote,
/// bracket, comma, semicolon or backslash (a JSON escape), at most `MAX_RUN_ON` bytes. A value
/// that began after a quote runs to its closing quote, brackets and `$` included (Django's
/// `SECRET_KEY = '…k3#m!x(2)z8@q%v^w&p*r$t7)y'`).
fn runs_on(t: &str, vs: usize, p: usize) -> usize {
    let rest = t.get(p..).unwrap_or("");
    let rest = rest.get(..floor_boundary(rest, MAX_RUN_ON)).unwrap_or("");
    if let Some(q) = t
        .get(..vs)
        .and_then(|b| b.chars().next_back())
        .filter(|c| matches!(c, '"' | '\'' | '`'))
    {
        let n = rest
            .find(|c: char| !c.is_ascii_graphic() || c == q || c == '\\')
            .unwrap_or(rest.len());
        let closes = |k: usize| rest.get(k..).is_some_and(|r| r.starts_with(q));
        if closes(n) || (rest.get(n..).is_some_and(|r| r.starts_with('\\')) && closes(n + 1)) {
            return p + n;
        }
    }
    p + rest
        .find(|c: char| !c.is_ascii_graphic() || "\"'`$<>(){}[],;\\".contains(c))
        .unwrap_or(rest.len())
}

/// How far a value may run on: longer than any credential (an AWS session token is about 1 KB).
const MAX_RUN_ON: usize = 4096;

/// Where to look for the next match after rejecting one at `ms`. When `ms` failed the left
/// boundary, so does every start inside the same run of digits (letters and digits for `alnum`):
/// skip the run, so that a megabyte of digits costs one search per detector, not one per digit.
fn retry_from(b: Boundary, t: &str, ms: usize) -> usize {
    if left_ok(b, t, ms) {
        return next_char(t, ms);
    }
    let bytes = t.as_bytes();
    let mut p = ms;
    loop {
        match (b, bytes.get(p), bytes.get(p + 1)) {
            (Boundary::Number | Boundary::Identifier, Some(c), _) if c.is_ascii_digit() => p += 1,
            // `1-2-3`, `1.2.3`: a start after a separator between digits fails too.
            (Boundary::Number | Boundary::Identifier, Some(b'-' | b'.'), Some(n))
                if p > ms && n.is_ascii_digit() =>
            {
                p += 1
            }
            (Boundary::Alnum | Boundary::AlnumNotUserinfo, Some(c), _)
                if c.is_ascii_alphanumeric() =>
            {
                p += 1
            }
            _ => break,
        }
    }
    if p == ms {
        next_char(t, ms)
    } else {
        p
    }
}

fn value_span(d: &Detector, caps: &Captures, ms: usize, me: usize) -> (usize, usize) {
    match d.value_group.and_then(|g| caps.get_group(g)) {
        Some(sp) if sp.start < sp.end => (sp.start, sp.end),
        _ => (ms, me),
    }
}

/// The longest shorter match from `ms` that ends before a separator and passes every check.
fn shorter(
    d: &Detector,
    t: &str,
    ms: usize,
    me: usize,
    keywords: &[Hit],
    caps: &mut Option<Captures>,
) -> Option<(usize, usize, usize)> {
    let exact = d.exact()?;
    let caps = caps.get_or_insert_with(|| exact.create_captures());
    let bytes = t.as_bytes();
    let mut p = me;
    while p > ms + 1 {
        p -= 1;
        if !t.is_char_boundary(p) || bytes.get(p).is_some_and(u8::is_ascii_alphanumeric) {
            continue;
        }
        let hay = t.get(..p)?;
        exact.search_captures(&Input::new(hay).span(ms..p).anchored(Anchored::Yes), caps);
        if caps.get_match().is_some_and(|m| m.end() == p) {
            let (vs, ve) = value_span(d, caps, ms, p);
            if let Verdict::Accept(vs, ve) = judge(d, t, ms, p, vs, ve, keywords) {
                return Some((p, vs, ve));
            }
        }
    }
    None
}

fn judge(
    d: &Detector,
    t: &str,
    ms: usize,
    me: usize,
    vs: usize,
    ve: usize,
    keywords: &[Hit],
) -> Verdict {
    if !left_ok(d.boundary, t, ms) {
        return Verdict::Reject;
    }
    // A form's sample (`山田 太郎（記入例）`, `03-1234-5678（例）`).
    if t.get(ve..)
        .is_some_and(|r| r.starts_with("(記入例)") || r.starts_with("(例)"))
    {
        return Verdict::Reject;
    }
    // A call or an index (`resp.json()["access_token"]`, `hashlib.sha256(raw…)`): code that
    // computes the secret, not the secret (`Kumo#8812（大文字小文字を区別）` is one, with a note).
    let credential = matches!(
        d.validator,
        Some(Validator::SecretValue | Validator::Credential)
    );
    let rest = t.get(ve..).unwrap_or("");
    let value = t.get(vs..ve).unwrap_or("");
    let call = match value.find(['(', '[']) {
        Some(k) => validate::code_call(
            value.get(..k).unwrap_or(""),
            value.get(k + 1..).unwrap_or(""),
        ),
        None => rest
            .strip_prefix(['(', '['])
            .is_some_and(|inside| validate::code_call(value, inside)),
    };
    if credential && call {
        return Verdict::Reject;
    }
    // A word that is a label of its own after the word for a credential (`Password Expiry: 90
    // days`).
    if d.validator == Some(Validator::Credential)
        && value
            .trim_start_matches(['`', '"', '\''])
            .chars()
            .all(|c| c.is_ascii_alphabetic())
        && rest
            .strip_prefix(':')
            .is_some_and(|r| r.is_empty() || r.starts_with([' ', '\t', '\n', '\r']))
    {
        return Verdict::Reject;
    }
    // A value that ran on ends where credential characters end (or at the cap): its right
    // edge is right by construction, and judging it again per start would be quadratic.
    let right = (d.value_runs_on && vs < ve && ve == me) || right_ok(d.boundary, t, me);
    let valid = match d.validator {
        Some(v) => t.get(vs..ve).is_some_and(|s| v.check(s)),
        None => true,
    };
    let ok = match d.keyword_mode {
        None => valid && !labelled_otherwise(d, t, vs, ve),
        Some(KeywordMode::Required) => {
            valid && !labelled_otherwise(d, t, vs, ve) && has_keyword(d, t, vs, ve, keywords)
        }
        // A label right before the value says more than a keyword somewhere near it
        // (`クレジットカード⏎取引ID：20240512093045123`).
        Some(KeywordMode::OrValid) => {
            !labelled_otherwise(d, t, vs, ve)
                && if has_keyword(d, t, vs, ve, keywords) {
                    // A barcode beside `インボイス`…: its own check digit says so, unless the number
                    // is labelled as a company's (`法人番号：49…`).
                    !(d.validator == Some(Validator::CorporateNumber)
                        && validate::retail_code(&validate::digits(t.get(vs..ve).unwrap_or("")))
                        && !labelled_company(t, vs))
                } else {
                    valid && bare_number_plausible(d, t, vs, ve)
                }
        }
    };
    match (ok, right) {
        (true, true) => Verdict::Accept(vs, ve),
        // A value that runs on is whole or nothing: its prefix (`request` of
        // `request.headers.get`) is not a value of its own.
        _ if d.value_runs_on => Verdict::Reject,
        _ if !right || !valid => Verdict::TryShorter,
        _ => Verdict::Reject,
    }
}

/// Whether a number valid by its check digit alone, with no keyword near, is taken: one number in
/// ten of its length is valid, so one that sits in code or data is an id or a time, not a
/// person's, a company's or a card's number.
fn bare_number_plausible(d: &Detector, t: &str, vs: usize, ve: usize) -> bool {
    let before = t.get(..vs).unwrap_or("");
    let after = t.get(ve..).unwrap_or("");
    // Part of a name, a file or a host (`backup_202605121030.tar.gz`, `171255347674.dkr.ecr…`),
    // or of a hash (`e4b7c550434864917fa03d9b…`).
    // Bounded: only whether the run reaches a hash's 32 counts (a long run is a hash either way,
    // and counting it whole per candidate would be quadratic).
    let hex_before = before
        .bytes()
        .rev()
        .take(32)
        .take_while(u8::is_ascii_hexdigit)
        .count();
    let hex_after = after
        .bytes()
        .take(32)
        .take_while(u8::is_ascii_hexdigit)
        .count();
    if after
        .strip_prefix('.')
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_alphabetic()))
        || (hex_before + hex_after > 0 && hex_before + (ve - vs) + hex_after >= 32)
    {
        return false;
    }
    // In a URL (`…/trace/5319187847794383255?spanID=…`, `gid://shopify/…/4721…`), unless a
    // query's name says what it is (`?card=…`, `?hojinBango=…`).
    let near = before
        .get(floor_boundary(before, before.len().saturating_sub(256))..)
        .unwrap_or("");
    // Japanese right after a URL ends it, though no space does.
    let word = near
        .rsplit(|c: char| c.is_whitespace() || !c.is_ascii() || "\"'<>`".contains(c))
        .next()
        .unwrap_or("");
    if word.contains("://") {
        let param = word.strip_suffix('=').map(|w| {
            w.rsplit(['?', '&', ';'])
                .next()
                .unwrap_or("")
                .to_ascii_lowercase()
        });
        let named = param.is_some_and(|p| {
            p == "pan"
                || p == "cc"
                || ["card", "number", "num", "no", "bango", "bangou"]
                    .iter()
                    .any(|w| p.ends_with(w))
        });
        if !named {
            return false;
        }
    }
    let digits = validate::digits(t.get(vs..ve).unwrap_or(""));
    match d.validator {
        Some(Validator::MyNumber | Validator::CorporateNumber) => {
            // A value of an ASCII key that names an id, a time, a count, a version or an
            // amount (`"createdAt": 1767234071007`, `orderId=…`, `resourceVersion: "…"`,
            // `NetSales⇥1208684773072`): not `"kojin_bango"` or `"corporateNumber"`. Only the
            // key's last 64 bytes are read (a long ASCII run before each candidate would
            // otherwise be read whole per candidate).
            let key = before.trim_end_matches([' ', '\t', '"', '\'', ':', '=']);
            let key = key
                .get(floor_boundary(key, key.len().saturating_sub(64))..)
                .unwrap_or("");
            let written = key
                .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
                .unwrap_or("");
            let name = written.to_ascii_lowercase();
            let ascii_key = key.len() < before.len()
                && (name.ends_with("id")
                    || written.ends_with("At")
                    || name.ends_with("_at")
                    || [
                        "time", "date", "epoch", "created", "updated", "order", "seq", "count",
                        "version", "sales", "income", "revenue", "amount", "total", "price",
                        "cost", "size", "bytes",
                    ]
                    .iter()
                    .any(|w| name.contains(w)));
            // Milliseconds since 1970 are 13 digits too: only in a log's or a record's line
            // (`[1778553902903] GET …`, `{…} 1027 1778551821733`, `new Date(1778619864079)`).
            let code_line = || {
                let line = near.rsplit('\n').next().unwrap_or("");
                line.contains(['{', '[']) || line.ends_with("Date(")
            };
            !ascii_key
                && !(validate::timestamp_shaped(&digits) && (digits.len() == 12 || code_line()))
                && !validate::retail_code(&digits)
        }
        _ => true,
    }
}

/// How many earlier items of a list a label is looked for behind (the look-back window of 240
/// bytes holds about that many 13-digit codes).
const MAX_LIST_ITEMS: usize = 8;

/// Whether one of the detector's `unless_after` labels comes right before the value (spaces,
/// `:`, `#`, `=` and `No.`, `No` or `No:` between them): `JANコード 4901234561090` is a barcode, however valid
/// its check digit.
fn labelled_otherwise(d: &Detector, t: &str, vs: usize, ve: usize) -> bool {
    if d.unless_after.is_empty() {
        return false;
    }
    let before = t.get(..vs).unwrap_or("");
    let before = before
        .get(floor_boundary(before, before.len().saturating_sub(240))..)
        .unwrap_or("");
    // Quotes too: a JSON key is a label (`"tracking_no": "438212735561"`).
    // An opening bracket too: `ヤマト運輸（5262-7221-5210）`.
    const BETWEEN: [char; 10] = [' ', '\t', ':', '：', '#', '=', '＝', '"', '\'', '('];
    let mut label = before.trim_end_matches(BETWEEN);
    // A later item of a list the label heads (`JANコード 4901234567894、4565776640998`,
    // `timestamp 1761004800123 と 1761004801124`): step back over the items before it that have
    // as many digits as the value (a phone number after an order number is not one of its list).
    let digits = |v: &str| v.bytes().filter(u8::is_ascii_digit).count();
    let own = digits(t.get(vs..ve).unwrap_or(""));
    for _ in 0..MAX_LIST_ITEMS {
        let Some(l) = ["、", ",", "，", "と", "や", "/"]
            .iter()
            .find_map(|sep| label.strip_suffix(sep))
        else {
            break;
        };
        let l = l.trim_end_matches(' ');
        let item = l.trim_end_matches(|c: char| c.is_ascii_digit() || matches!(c, '-' | ' '));
        if digits(l.get(item.len()..).unwrap_or("")) != own {
            break;
        }
        label = item.trim_end_matches(BETWEEN);
    }
    // `お客様番号は 0731-…`: the topic particle between a label and its value.
    if let Some(l) = label.strip_suffix('は') {
        label = l.trim_end_matches(BETWEEN);
    }
    // The label as written (`tracking_no`), and without a `No.` after it (`見積書No.`).
    let without_no = ["no.", "No.", "NO.", "no", "No", "NO"]
        .iter()
        .find_map(|no| label.strip_suffix(no))
        .map(|l| l.trim_end_matches(BETWEEN));
    std::iter::once(label).chain(without_no).any(|label| {
        d.unless_after.iter().any(|w| {
            // An ASCII label must not end another word (`reorder` is not `order`).
            ends_with_folded(label, w).is_some_and(|rest| {
                !(w.starts_with(|f: char| f.is_ascii_alphanumeric())
                    && rest.ends_with(|c: char| c.is_ascii_alphanumeric()))
            })
        })
    })
}

/// `text` without its ending `w` (folded, ASCII lower case), if it ends so, ASCII case aside.
fn ends_with_folded<'a>(text: &'a str, w: &str) -> Option<&'a str> {
    let k = text.len().checked_sub(w.len())?;
    text.get(k..)
        .filter(|tail| tail.eq_ignore_ascii_case(w))
        .and_then(|_| text.get(..k))
}

fn left_ok(b: Boundary, t: &str, ms: usize) -> bool {
    let mut before = t.get(..ms).unwrap_or("").chars().rev();
    match b {
        Boundary::None => true,
        Boundary::NotUserinfo => !in_authority(t, ms),
        Boundary::AlnumNotUserinfo => {
            !before.next().is_some_and(|c| c.is_ascii_alphanumeric()) && !in_userinfo(t, ms)
        }
        Boundary::Alnum => !before.next().is_some_and(|c| c.is_ascii_alphanumeric()),
        Boundary::Number | Boundary::Identifier => match before.next() {
            Some(c) if c.is_ascii_digit() => false,
            // A file's or a variable's name (`IMG_202605121030.jpg`), not an italic's mark
            // (`_090-1234-5678_`) or a file named in Japanese (`履歴書_山田_090-…`).
            Some('_') => !before.next().is_some_and(|c| c.is_ascii_alphanumeric()),
            Some('-') => {
                let group: Vec<char> = before.take(5).collect();
                // A code's part (`HX-090-1234-5678`): letters, then the number. Not the `T-` of
                // an invoice registration number (`T-7361349943969`), nor `TEL-`/`FAX-`.
                // `group` runs backwards from the `-`.
                let letters: String = group
                    .iter()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .map(|c| c.to_ascii_lowercase())
                    .collect::<Vec<char>>()
                    .into_iter()
                    .rev()
                    .collect();
                let word_ends = !group
                    .get(letters.len())
                    .is_some_and(char::is_ascii_alphanumeric);
                let named = word_ends
                    && matches!(
                        letters.as_str(),
                        "t" | "tel" | "fax" | "phone" | "mob" | "cell"
                    );
                if !letters.is_empty() && !named {
                    return false;
                }
                // After a digit, or after a UUID's fourth group (`-8a7b-271828182840`): four
                // hex digits with a letter among them, after a `-`.
                let after_digit = group.first().is_some_and(char::is_ascii_digit);
                let hex_group = group.len() == 5
                    && group.get(4) == Some(&'-')
                    && group.iter().take(4).all(char::is_ascii_hexdigit)
                    && group.iter().take(4).any(char::is_ascii_alphabetic);
                !after_digit && !hex_group
            }
            Some('.') => !before.next().is_some_and(|c| c.is_ascii_digit()),
            _ => true,
        },
    }
}

/// Whether `ms` is inside the authority of a URL that begins on the same word (`scheme://` with
/// no `/`, `?` or `#` after it yet).
fn in_authority(t: &str, ms: usize) -> bool {
    authority_before(t, ms).is_some()
}

/// The part of a URL's authority before `ms` (after its `scheme://`), when `ms` is inside one.
/// Looks back a bounded way, so a retry per start stays linear.
fn authority_before(t: &str, ms: usize) -> Option<&str> {
    let from = floor_boundary(t, ms.saturating_sub(256));
    let word = t.get(from..ms).unwrap_or("");
    // Japanese punctuation or hiragana written right after a URL (`https://example.jp、連絡は…`)
    // ends it, though no space does; a login may still be kanji (`postgres://山田:…@db`).
    let word = word
        .rsplit(|c: char| {
            c.is_whitespace() || matches!(c, '\u{3000}'..='\u{309F}') || "\"'<>`(".contains(c)
        })
        .next()
        .unwrap_or("");
    word.rfind("://")
        .and_then(|k| word.get(k + 3..))
        .filter(|rest| !rest.contains(['/', '?', '#', '@']))
}

/// Inside a URL's authority with a `@` still to come before it ends: the login part
/// (`https://x-access-token:ghs_…@github.com`), not a host and port followed by settings
/// (`jdbc:sqlserver://db:1433;…;secret=…`).
fn in_userinfo(t: &str, ms: usize) -> bool {
    authority_before(t, ms).is_some_and(|a| !a.contains(';'))
        && t.get(ms..)
            .unwrap_or("")
            .chars()
            .take_while(|&c| c.is_ascii() && !c.is_whitespace() && !"/?#;\"'<>`".contains(c))
            .any(|c| c == '@')
}

fn right_ok(b: Boundary, t: &str, me: usize) -> bool {
    let mut after = t.get(me..).unwrap_or("").chars();
    match b {
        Boundary::NotUserinfo => !scp_remote(after.as_str()),
        Boundary::None => true,
        Boundary::Alnum | Boundary::AlnumNotUserinfo => {
            !after.next().is_some_and(|c| c.is_ascii_alphanumeric())
        }
        Boundary::Number => match after.next() {
            Some(c) if c.is_ascii_digit() => false,
            Some('_') => !after.next().is_some_and(|c| c.is_ascii_alphanumeric()),
            Some('-' | '.') => !after.next().is_some_and(|c| c.is_ascii_digit()),
            _ => true,
        },
        Boundary::Identifier => {
            // Right after the digits only: `1234567 名義` and `口座1234567から` are accounts.
            let rest = after.as_str();
            right_ok(Boundary::Number, t, me)
                && !rest.starts_with(QUANTITY_UNITS)
                && !["か月", "か所", "名様"].iter().any(|u| rest.starts_with(u))
        }
    }
}

/// After a `user@host`, the `:path` of an scp-style remote (`git@github.com:org/repo.git`): a
/// login to a host, not an address to write to.
fn scp_remote(after: &str) -> bool {
    // The rest of the host when a shorter match is tried (`deploy@web01.example` + `.jp:/var…`).
    let after =
        after.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    let Some(path) = after.strip_prefix(':') else {
        return false;
    };
    let path = path
        .get(..floor_boundary(path, 256.min(path.len())))
        .unwrap_or("");
    let path = path
        .get(..path.find(|c: char| c.is_whitespace()).unwrap_or(path.len()))
        .unwrap_or("");
    // Not a port (`user:pw@db:5432/app` is a URL's login, its password still a secret), nor
    // another address (`yamada@example.co.jp:To/sato@example.co.jp:Cc`).
    path.starts_with(|c: char| c.is_ascii_alphabetic() || c == '~' || c == '/')
        && (path.contains('/') || path.ends_with(".git"))
        && !path.contains('@')
}

/// What follows a number that counts or measures something.
const QUANTITY_UNITS: &[char] = &[
    '円', '万', '億', '千', '件', '個', '人', '年', '月', '日', '時', '分', '秒', '%', '倍', '回',
    '社', '台', '枚', '冊', '歳', '才', '株', '箇', 'ヶ',
];

/// A keyword within `keyword_window` characters before or after the value: one that reaches into
/// that window (a long keyword such as `aws_secret_access_key` may begin farther away).
fn has_keyword(d: &Detector, t: &str, vs: usize, ve: usize, keywords: &[Hit]) -> bool {
    let n = d.keyword_window;
    let wa = t
        .get(..vs)
        .and_then(|x| {
            x.char_indices()
                .rev()
                .nth(n.saturating_sub(1))
                .map(|(i, _)| i)
        })
        .unwrap_or(0);
    let wb = t
        .get(ve..)
        .and_then(|x| x.char_indices().nth(n).map(|(i, _)| ve + i))
        .unwrap_or(t.len());
    let first = keywords.partition_point(|k| k.0 < wa.saturating_sub(MAX_KEYWORD_BYTES));
    keywords
        .get(first..)
        .into_iter()
        .flatten()
        .take_while(|k| k.0 < wb)
        .any(|k| k.1 > wa && k.1 <= wb)
}

/// Longer than any keyword, so that the search for those reaching into a window starts early
/// enough.
const MAX_KEYWORD_BYTES: usize = 256;
