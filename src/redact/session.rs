//! One request's redaction: detection on each text, pseudonyms stable across all the texts of the
//! request, the counts per label, and the map the answer is restored with.
use super::contract::ContractMatcher;
use super::finder::Finder;
use super::normalize::{normalize, Normalized};
use super::restore::{Pseudonyms, Restorer};
use super::rules::{Action, Rules};
use super::scan::{self, RANK_PROPAGATED};
use super::Refused;
use rand::Rng;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

/// A confidential span of an original text.
#[derive(Clone, Copy, Debug)]
struct Found {
    start: usize,
    end: usize,
    treatment: usize,
    rank: u32,
}

/// A text's folded view and its ASCII-lower-cased form, made once and used by detection and by
/// the search for learned values alike (making them twice was a tenth of a redaction).
struct View<'t> {
    n: Normalized<'t>,
    /// `None` when the view has no upper-case ASCII letter: it is its own lower-cased form.
    lower: Option<String>,
}

impl<'t> View<'t> {
    fn new(text: &'t str) -> Self {
        let n = normalize(text);
        let lower = match lower_ascii(n.text()) {
            Cow::Owned(l) => Some(l),
            Cow::Borrowed(_) => None,
        };
        Self { n, lower }
    }

    fn lower(&self) -> &str {
        self.lower.as_deref().unwrap_or(self.n.text())
    }
}

/// Values shorter than this are not searched for elsewhere (a one-character name would take
/// every occurrence of that character with it).
const MIN_PROPAGATED_CHARS: usize = 2;

/// The alphabet of session tags: no 0/O, 1/I/L, so a model cannot confuse them.
const TAG_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// Redaction state of one request. Create with [`Rules::session`]; not shared between requests.
pub struct Session<'a> {
    rules: &'a Rules,
    contract: &'a ContractMatcher,
    /// Random per session; part of every placeholder (see the module documentation).
    tag: String,
    /// Original value → index in `pairs`: the same value always gets the same placeholder.
    by_value: HashMap<String, usize>,
    /// (placeholder, original value), in minting order.
    pairs: Vec<(String, String)>,
    /// Next number per placeholder word.
    numbers: HashMap<String, u32>,
    counts: BTreeMap<String, u32>,
    /// Folded values redacted so far and their treatment, searched for in every text.
    learned: Vec<(String, usize)>,
    learned_keys: HashSet<String>,
    learned_matcher: Option<Finder>,
    learned_stale: bool,
    frozen: Option<Arc<Pseudonyms>>,
    /// Whose clean texts this session may recognise (`clean.rs`).
    scope: String,
}

/// Holds original values: shows only counts.
impl fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("counts", &self.counts)
            .field("placeholders", &self.pairs.len())
            .finish()
    }
}

impl Rules {
    /// Opens the redaction of one request under a contract's terms and fields.
    pub fn session<'a>(&'a self, contract: &'a ContractMatcher) -> Session<'a> {
        let mut rng = rand::thread_rng();
        let tag = (0..4)
            .map(|_| {
                let i = rng.gen_range(0..TAG_ALPHABET.len());
                char::from(TAG_ALPHABET.get(i).copied().unwrap_or(b'X'))
            })
            .collect();
        Session::with_tag(self, contract, tag)
    }
}

impl<'a> Session<'a> {
    pub(crate) fn with_tag(rules: &'a Rules, contract: &'a ContractMatcher, tag: String) -> Self {
        Self {
            rules,
            contract,
            tag,
            by_value: HashMap::new(),
            pairs: Vec::new(),
            numbers: HashMap::new(),
            counts: BTreeMap::new(),
            learned: Vec::new(),
            learned_keys: HashSet::new(),
            learned_matcher: None,
            learned_stale: false,
            frozen: None,
            scope: String::new(),
        }
    }

    /// Recognises as clean only texts found clean in sessions of the same `scope` (the gateway
    /// names the staff key): one caller's texts never make another's redaction faster, which
    /// timing would tell. Sessions without a scope share theirs.
    pub fn scope_clean_texts(&mut self, scope: &str) {
        self.scope = scope.to_string();
    }

    /// Redacts one text. Values redacted in earlier texts of this session are also found here;
    /// to have values of later texts found in earlier ones too, give all the texts of a request
    /// to [`Session::redact_strings`] (or [`Session::redact_json`]) at once.
    pub fn redact_text<'t>(&mut self, text: &'t str) -> Result<Cow<'t, str>, Refused> {
        let (v, found) = self.scan(text)?;
        Ok(match self.apply(text, v.as_ref(), found) {
            Some(s) => Cow::Owned(s),
            None => Cow::Borrowed(text),
        })
    }

    /// Redacts several texts of one request in place, in two passes: detection in all of them
    /// (refusing before anything is changed), then replacement, so that a value found in any text
    /// is replaced in every text with the same placeholder.
    pub fn redact_strings<'s>(
        &mut self,
        strings: impl IntoIterator<Item = &'s mut String>,
    ) -> Result<(), Refused> {
        let mut strings: Vec<&'s mut String> = strings.into_iter().collect();
        let mut scanned = Vec::with_capacity(strings.len());
        for s in &strings {
            scanned.push(self.scan(s)?);
        }
        if self.learned.is_empty() {
            // Only the search for learned values reads the views again: free them at once.
            for (v, _) in &mut scanned {
                *v = None;
            }
        }
        let replaced: Vec<Option<String>> = strings
            .iter()
            .zip(scanned)
            .map(|(s, (v, found))| self.apply(s, v.as_ref(), found))
            .collect();
        for (s, new) in strings.iter_mut().zip(replaced) {
            if let Some(new) = new {
                **s = new;
            }
        }
        Ok(())
    }

    /// Redacts every string in `value` (object keys are left alone) as one batch; see
    /// [`Session::redact_strings`]. The gateway chooses which parts of a body to pass: message
    /// contents, system prompts, tool descriptions and results, tool-call arguments (whose JSON
    /// text is then scanned like any other text, so its confidential fields are found).
    pub fn redact_json(&mut self, value: &mut serde_json::Value) -> Result<(), Refused> {
        self.redact_strings(json_strings_mut(value))
    }

    /// Replacements made so far, per label (`my_number`, `person_name`, `term`…).
    pub fn counts(&self) -> &BTreeMap<String, u32> {
        &self.counts
    }

    /// All replacements made so far (the `X-Mamori-Redactions` header).
    pub fn total(&self) -> u32 {
        self.counts.values().sum()
    }

    /// The placeholders minted so far and their values, frozen for restoring the answer. Call
    /// after redacting the request; the `Arc` is shared by every stream of the answer.
    pub fn pseudonyms(&mut self) -> Arc<Pseudonyms> {
        if let Some(p) = &self.frozen {
            return Arc::clone(p);
        }
        let p = Arc::new(Pseudonyms::new(&self.pairs));
        self.frozen = Some(Arc::clone(&p));
        p
    }

    /// A restorer for one stream of decoded text; shorthand for `pseudonyms().stream()`.
    pub fn restorer(&mut self) -> Restorer {
        self.pseudonyms().stream()
    }

    /// Detection on one text, skipped when the text is known to be clean (`clean.rs`): its view
    /// (`None` when skipped) and its spans, or the refusal.
    fn scan<'t>(&mut self, text: &'t str) -> Result<(Option<View<'t>>, Vec<Found>), Refused> {
        let clean = &self.rules.clean;
        let key = clean.key(&self.contract.salt.0, &self.scope, text);
        if key.as_ref().is_some_and(|k| clean.contains(k)) {
            return Ok((None, Vec::new()));
        }
        let v = View::new(text);
        let found = self.analyze(&v)?;
        if found.is_empty() {
            if let Some(k) = key {
                clean.insert(k);
            }
        }
        Ok((Some(v), found))
    }

    /// Detection on one folded text: spans in original offsets, or the refusal.
    fn analyze(&mut self, v: &View<'_>) -> Result<Vec<Found>, Refused> {
        let rules = self.rules;
        let (n, lower) = (&v.n, v.lower());
        let spans = scan::detect(rules, self.contract, n.text(), lower)?;
        let blocked = spans
            .iter()
            .filter(|s| {
                rules
                    .treatments
                    .get(s.treatment)
                    .is_some_and(|t| t.action == Action::Block)
            })
            .min_by_key(|s| s.start);
        if let Some(b) = blocked {
            let label = rules
                .treatments
                .get(b.treatment)
                .map_or_else(String::new, |t| t.label.clone());
            return Err(Refused::Blocked { label });
        }
        let mut found = Vec::with_capacity(spans.len());
        for s in spans {
            if let Some(v) = lower.get(s.start..s.end) {
                if v.chars().nth(MIN_PROPAGATED_CHARS - 1).is_some()
                    && !self.learned_keys.contains(v)
                {
                    self.learned_keys.insert(v.to_string());
                    self.learned.push((v.to_string(), s.treatment));
                    self.learned_stale = true;
                }
            }
            found.push(Found {
                start: n.to_orig_start(s.start),
                end: n.to_orig_end(s.end),
                treatment: s.treatment,
                rank: s.rank,
            });
        }
        Ok(found)
    }

    /// Adds the other occurrences of learned values, merges overlapping spans (the outermost, then
    /// the earliest-ranked source wins) and writes the replaced text. `None` when nothing changes.
    /// `v` is the text's view, `None` when it was known clean and not scanned.
    fn apply(&mut self, text: &str, v: Option<&View<'_>>, mut found: Vec<Found>) -> Option<String> {
        if !self.learned.is_empty() {
            self.refresh_learned();
            let owned;
            let v = match v {
                Some(v) => v,
                None => {
                    owned = View::new(text);
                    &owned
                }
            };
            let n = &v.n;
            if let Some(finder) = &self.learned_matcher {
                for (i, start, end) in finder.find_iter(v.lower()) {
                    let Some((_, treatment)) = self.learned.get(i) else {
                        continue;
                    };
                    if scan::ascii_edges_ok(n.text(), start, end) {
                        found.push(Found {
                            start: n.to_orig_start(start),
                            end: n.to_orig_end(end),
                            treatment: *treatment,
                            rank: RANK_PROPAGATED,
                        });
                    }
                }
            }
        }
        if found.is_empty() {
            return None;
        }
        found.sort_unstable_by(|a, b| {
            a.start
                .cmp(&b.start)
                .then(b.end.cmp(&a.end))
                .then(a.rank.cmp(&b.rank))
        });
        let rules = self.rules;
        let action = |tr: usize| rules.treatments.get(tr).map(|t| t.action);
        // Overlapping spans become one replacement, treated as the first (outermost) of them. A
        // masked span inside a pseudonymized one stays masked inside the placeholder's value, so
        // restoring the placeholder never gives back what a mask rule hid (a password in a URL).
        let mut merged: Vec<(Found, Vec<Found>)> = Vec::with_capacity(found.len());
        for f in found {
            match merged.last_mut() {
                Some((m, inner)) if f.start < m.end => {
                    m.end = m.end.max(f.end);
                    if action(f.treatment) == Some(Action::Mask)
                        && action(m.treatment) == Some(Action::Pseudonymize)
                    {
                        inner.push(f);
                    }
                }
                _ if f.start < f.end => merged.push((f, Vec::new())),
                _ => {}
            }
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for (f, inner) in merged {
            let (Some(before), Some(value), Some(t)) = (
                text.get(last..f.start),
                text.get(f.start..f.end),
                rules.treatments.get(f.treatment),
            ) else {
                continue;
            };
            out.push_str(before);
            match t.action {
                Action::Pseudonymize if inner.is_empty() => {
                    let p = self.placeholder(value, f.treatment);
                    out.push_str(&p);
                }
                Action::Pseudonymize => {
                    let value = self.mask_inside(text, f.start, f.end, &inner);
                    let p = self.placeholder(&value, f.treatment);
                    out.push_str(&p);
                }
                Action::Mask | Action::Block => out.push_str(&t.mask),
            }
            *self.counts.entry(t.label.clone()).or_insert(0) += 1;
            last = f.end;
        }
        out.push_str(text.get(last..).unwrap_or(""));
        Some(out)
    }

    /// `text[start..end]` with the masked spans inside it replaced by their masks (and counted).
    fn mask_inside(&mut self, text: &str, start: usize, end: usize, inner: &[Found]) -> String {
        let rules = self.rules;
        let mut out = String::new();
        let mut last = start;
        for f in inner {
            let (a, b) = (f.start.max(last), f.end.min(end));
            let (Some(before), Some(t)) = (text.get(last..a), rules.treatments.get(f.treatment))
            else {
                continue;
            };
            if a >= b {
                continue;
            }
            out.push_str(before);
            out.push_str(&t.mask);
            *self.counts.entry(t.label.clone()).or_insert(0) += 1;
            last = b;
        }
        out.push_str(text.get(last..end).unwrap_or(""));
        out
    }

    fn refresh_learned(&mut self) {
        if !self.learned_stale {
            return;
        }
        self.learned_stale = false;
        // Short folded strings: building cannot fail in practice; without it, values are still
        // replaced where a rule finds them.
        let patterns: Vec<&str> = self.learned.iter().map(|(v, _)| v.as_str()).collect();
        self.learned_matcher = Finder::new(&patterns).ok().flatten();
    }

    fn placeholder(&mut self, value: &str, treatment: usize) -> String {
        if let Some(p) = self.by_value.get(value).and_then(|&i| self.pairs.get(i)) {
            return p.0.clone();
        }
        let word = self
            .rules
            .treatments
            .get(treatment)
            .map_or("REDACTED", |t| t.placeholder.as_str());
        let n = self.numbers.entry(word.to_string()).or_insert(0);
        *n += 1;
        let p = format!("[{word}_{n}_{}]", self.tag);
        self.by_value.insert(value.to_string(), self.pairs.len());
        self.pairs.push((p.clone(), value.to_string()));
        self.frozen = None;
        p
    }
}

/// `s` with ASCII letters lower-cased (same offsets); borrowed when there are none.
fn lower_ascii(s: &str) -> Cow<'_, str> {
    // In blocks without an early exit, which the compiler vectorizes: a byte-at-a-time `any`
    // was a twentieth of a redaction.
    let upper = |c: &[u8]| c.iter().fold(false, |acc, b| acc | b.is_ascii_uppercase());
    if s.as_bytes().chunks(64).any(upper) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// Every string in `value`, object keys excepted, in document order.
pub fn json_strings_mut(value: &mut serde_json::Value) -> Vec<&mut String> {
    fn walk<'v>(v: &'v mut serde_json::Value, out: &mut Vec<&'v mut String>) {
        match v {
            serde_json::Value::String(s) => out.push(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, out)),
            serde_json::Value::Object(m) => m.iter_mut().for_each(|(_, x)| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut out);
    out
}
