//! `redaction/*.toml`: the tag pairs, confidential field names and detectors shipped with mamori
//! (and extended by administrators), parsed strictly and compiled once at startup into [`Rules`].
//!
//! A file may hold any of these tables (see the shipped files for commented examples):
//!
//! ```toml
//! [[tag]]       # open, close, label, action, placeholder?, mask?, description?
//! [[field]]     # names, label, action, placeholder?, mask?, space_separated?, one_word?,
//!               # code?, people?, description?
//! [[detector]]  # label, action, pattern, triggers?, validator?, keywords?, keyword_mode?,
//!               # keyword_window?, unless_after?, triggers_not_after?, boundary?,
//!               # value_runs_on?, placeholder?, mask?, description?
//! [contract.terms]   # how each contract's term list is treated: label, action, placeholder?, mask?
//! [contract.fields]  # how each contract's extra field names are treated
//! ```
//!
//! Everything is matched on the folded view of a text (see `normalize.rs`): detector patterns
//! are written for ASCII digits, `-` for every dash and ` ` for every space.
//!
//! Why detectors have triggers: scanning a megabyte of prose with twenty regexes would cost far
//! more than the request is worth. Instead one Aho-Corasick pass finds every trigger (literal
//! beginnings of matches, or literals every match contains), keyword, field name and tag, one
//! byte pass finds the digit runs, and each regex runs only in small windows around those.
use super::clean::CleanTexts;
use super::keywords::Keywords;
use super::normalize::fold;
use super::validate::Validator;
use anyhow::{anyhow, bail, Context};
use regex_automata::meta::Regex;
use regex_automata::PatternID;
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Class, Hir, HirKind};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// What happens to a confidential span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Replace with the rule's mask text (e.g. `[個人番号]`); the client never gets it back.
    Mask,
    /// Replace with a placeholder that is restored in what the client receives.
    Pseudonymize,
    /// Refuse the whole request (`confidential_content_blocked`).
    Block,
}

/// When a detector needs a context keyword (e.g. `口座番号`) near its match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum KeywordMode {
    /// Only with a keyword nearby (and the validator, if any, passing). The detector is searched
    /// only near its keywords.
    Required,
    /// When the validator passes, or when a keyword is nearby (a mistyped check digit next to
    /// `個人番号` is still a My Number).
    OrValid,
}

/// What may not touch a match on either side, so that numbers inside longer numbers and keys
/// inside longer words are not matched in part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Boundary {
    /// No digit, nor a digit behind a single `-` or `.`.
    Number,
    /// As `Number`, and no unit or counter after it (`円`, `件`, `年`, `%`…): the digits are an
    /// identifier, not a quantity.
    Identifier,
    /// No ASCII letter or digit.
    Alnum,
    /// Not inside a URL's authority: `user@host` in `ssh://git@host` or `redis://:pw@host` is
    /// a login and a host, not an e-mail address (the password has its own rule).
    NotUserinfo,
    /// As `Alnum`, and not inside a URL's authority: `token:` in
    /// `https://x-access-token:ghs_…@github.com/…` is a login, whose password has its own rule
    /// (which stops at the `@`; an assignment's value would run on over the host and path).
    AlnumNotUserinfo,
    None,
}

/// How one rule's findings are replaced and counted.
#[derive(Debug, Clone)]
pub(crate) struct Treatment {
    /// The key of the per-label counts (`my_number`).
    pub label: String,
    /// The word inside pseudonym placeholders (`MY_NUMBER`).
    pub placeholder: String,
    /// The replacement when masking (`[個人番号]`).
    pub mask: String,
    pub action: Action,
    /// A field whose value may follow its name after spaces alone, at the start of a line.
    pub space_separated: bool,
    /// A field whose value is one word (a password): it ends at a space.
    pub one_word: bool,
    /// A field whose value is a number or code (`カード番号`): it ends with its run of ASCII
    /// letters, digits and separators, so `（本人確認済み）` or `、有効期限 12/29` after it stays.
    pub code: bool,
    /// A field whose value names people: a value that only lists roles, departments or counts
    /// (`営業部 課長、担当者二名`, `未定`) is not one.
    pub people: bool,
}

pub(crate) struct Detector {
    pub treatment: usize,
    /// Searched within windows of the folded text.
    pub regex: Regex,
    /// `(?:pattern)\z`, to try a shorter match ending at a separator when the longest one fails;
    /// compiled on first use (most detectors never need it), from `pattern`.
    pub exact: std::sync::OnceLock<Option<Regex>>,
    pub pattern: String,
    /// The `value` capture group: the part replaced, when the pattern also matches context.
    pub value_group: Option<usize>,
    pub validator: Option<Validator>,
    pub keyword_mode: Option<KeywordMode>,
    /// Characters on each side of the value searched for a keyword.
    pub keyword_window: usize,
    /// Labels that make a value something else when they come right before it (`JANコード`,
    /// `伝票番号`), folded and in ASCII lower case; a keyword nearby does not override them.
    pub unless_after: Vec<String>,
    /// Text that, right before a trigger, says the trigger is not what the detector looks for
    /// (`ご担当者様`, `皆様`), folded and in ASCII lower case: such a trigger opens no window of
    /// its own (a match there is still found if another trigger's window covers it). Saves the
    /// regex's time where a common trigger mostly follows the same few words.
    pub triggers_not_after: Vec<String>,
    pub boundary: Boundary,
    /// Bytes; `None` for patterns that can run to the end of the text (PEM blocks).
    pub max_len: Option<usize>,
    /// A value that ends the match runs on over credential characters past the pattern's bound
    /// (keeps patterns, and so their automata and windows, small for values of any length).
    pub value_runs_on: bool,
    /// How far before a trigger a match may begin: 0 when triggers are the match's beginnings.
    pub back: usize,
    /// Every match has at least this many ASCII digits; windows with fewer are skipped.
    pub min_digits: usize,
    /// Some match can begin with a digit, so digit runs are triggers.
    pub digit_trigger: bool,
}

pub(crate) struct TagPair {
    pub open: String,
    pub close: String,
    pub treatment: usize,
}

/// What one pattern of the shared automaton stands for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Role {
    Open(usize),
    /// `<confidential` of `<confidential level="high">`: an opening tag with attributes.
    OpenWithAttributes(usize),
    Close(usize),
    Field(usize),
    Trigger(usize),
    Keyword(usize),
}

/// The compiled redaction rules. Built once at startup ([`Rules::load`]) and shared; every request
/// opens a cheap [`Session`](super::Session) on them.
pub struct Rules {
    pub(crate) treatments: Vec<Treatment>,
    pub(crate) tags: Vec<TagPair>,
    pub(crate) detectors: Vec<Detector>,
    /// Tags, field names, triggers and keywords, lower-cased, searched in the lower-cased view
    /// (see `finder.rs` for why not case-insensitively).
    pub(crate) matcher: Option<Keywords>,
    pub(crate) roles: Vec<Vec<Role>>,
    /// Texts found clean under these rules (`clean.rs`).
    pub(crate) clean: CleanTexts,
    pub(crate) term_treatment: usize,
    pub(crate) contract_field_treatment: usize,
    /// The first field whose values name people (`people = true`): a JSON `"name"` beside a
    /// personal key gets its treatment (`scan.rs`, `sibling_names`).
    pub(crate) people_treatment: Option<usize>,
    field_names: usize,
    files: Vec<String>,
    /// Distinct characters of the keyword search's patterns (see `keywords.rs`: past 255, the
    /// rarest share codes and their matches are checked).
    pub(crate) keyword_chars: usize,
}

impl Detector {
    /// The anchored-at-end form of the pattern. It compiles whenever the pattern did; `None`
    /// would only mean no shorter match is tried.
    pub(crate) fn exact(&self) -> Option<&Regex> {
        self.exact
            .get_or_init(|| compile(&format!("(?:{})\\z", self.pattern)).ok())
            .as_ref()
    }
}

/// A detector's pattern, compiled. No one-pass DFA: it only speeds up reading the `value` group
/// of a match already found in a small window, which the bounded backtracker does about as fast
/// (62.46 M against 62.30 M instructions a megabyte), and it was 0.6 MiB of the compiled rules.
fn compile(pattern: &str) -> Result<Regex, Box<regex_automata::meta::BuildError>> {
    Regex::builder()
        .configure(Regex::config().onepass(false))
        .build(pattern)
        .map_err(Box::new)
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rules")
            .field("files", &self.files)
            .field("tag_pairs", &self.tags.len())
            .field("field_names", &self.field_names)
            .field("detectors", &self.detectors.len())
            .field("keyword_chars", &self.keyword_chars)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    tag: Vec<RawTag>,
    #[serde(default)]
    field: Vec<RawField>,
    #[serde(default)]
    detector: Vec<RawDetector>,
    contract: Option<RawContract>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTag {
    open: String,
    close: String,
    label: String,
    action: Action,
    placeholder: Option<String>,
    mask: Option<String>,
    #[serde(default, rename = "description")]
    _description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    names: Vec<String>,
    label: String,
    action: Action,
    placeholder: Option<String>,
    mask: Option<String>,
    #[serde(default)]
    space_separated: bool,
    #[serde(default)]
    one_word: bool,
    #[serde(default)]
    code: bool,
    #[serde(default)]
    people: bool,
    #[serde(default, rename = "description")]
    _description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetector {
    label: String,
    action: Action,
    pattern: String,
    triggers: Option<Vec<String>>,
    validator: Option<Validator>,
    keywords: Option<Vec<String>>,
    keyword_mode: Option<KeywordMode>,
    keyword_window: Option<usize>,
    unless_after: Option<Vec<String>>,
    triggers_not_after: Option<Vec<String>>,
    boundary: Option<Boundary>,
    #[serde(default)]
    value_runs_on: bool,
    placeholder: Option<String>,
    mask: Option<String>,
    #[serde(default, rename = "description")]
    _description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContract {
    terms: RawTreatment,
    fields: RawTreatment,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTreatment {
    label: String,
    action: Action,
    placeholder: Option<String>,
    mask: Option<String>,
    #[serde(default, rename = "description")]
    _description: Option<String>,
}

/// Longest pattern a detector may match without `triggers` being its beginnings (bytes).
const MAX_WINDOW: usize = 64 * 1024;
/// More derived beginnings than this would slow the shared automaton for everyone.
const MAX_DERIVED_TRIGGERS: usize = 16;

impl Rules {
    /// Reads every `*.toml` in `dir` (in name order) and validates it strictly. Errors name the
    /// file, the rule and key, and the reason.
    pub fn load(dir: &Path) -> anyhow::Result<Rules> {
        let entries = std::fs::read_dir(dir).with_context(|| {
            format!(
                "cannot read the redaction rules folder {}; it ships as `redaction/` beside the configuration",
                dir.display()
            )
        })?;
        let mut paths = Vec::new();
        for entry in entries {
            let path = entry
                .with_context(|| format!("cannot list {}", dir.display()))?
                .path();
            if path.extension().is_some_and(|e| e == "toml") {
                paths.push(path);
            }
        }
        paths.sort();
        let mut files = Vec::new();
        for path in &paths {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            files.push((path.display().to_string(), text));
        }
        if files.is_empty() {
            bail!(
                "{}: no redaction rules (*.toml); without them nothing would be redacted",
                dir.display()
            );
        }
        Self::from_sources(files.iter().map(|(n, t)| (n.as_str(), t.as_str())))
    }

    /// Compiles rules from `(file name, TOML text)` pairs, as [`Rules::load`] does.
    pub fn from_sources<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> anyhow::Result<Rules> {
        let mut b = Builder::default();
        for (name, text) in sources {
            let raw: RawFile =
                crate::config::from_toml(text).map_err(|e| anyhow!("{name}: {e:#}"))?;
            b.add_file(name, raw)?;
        }
        b.finish()
    }

    /// Remember up to `entries` texts found clean, so that a text sent again is not scanned
    /// again (`[redaction] clean_texts`; 0 turns it off).
    pub fn with_clean_texts(mut self, entries: usize) -> Self {
        self.clean = CleanTexts::new(entries);
        self
    }

    /// What was loaded, for `mamori check`: files, tag pairs, field names, detectors, labels, and
    /// the characters the keyword search codes.
    pub fn summary(&self) -> String {
        format!(
            "{} files, {} tag pairs, {} field names, {} detectors, {} labels; {} keyword characters{}",
            self.files.len(),
            self.tags.len(),
            self.field_names,
            self.detectors.len(),
            self.labels().len(),
            self.keyword_chars,
            match self.matcher {
                Some(super::keywords::Keywords::PerByte(_)) => {
                    " (a pattern not of whole characters, or a character outside the BMP: searched byte by byte, several times slower)"
                }
                _ if self.keyword_chars > 255 => " (more than 255: the rarest share codes)",
                _ => "",
            }
        )
    }

    /// The label and action of every rule, for `mamori check` and documentation.
    pub fn labels(&self) -> Vec<(&str, Action)> {
        let mut v: Vec<(&str, Action)> = self
            .treatments
            .iter()
            .map(|t| (t.label.as_str(), t.action))
            .collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v.dedup_by(|a, b| a.0 == b.0);
        v
    }
}

/// Clean texts remembered by default: about 400 KiB when full.
pub const DEFAULT_CLEAN_TEXTS: usize = 4096;

#[derive(Default)]
struct Builder {
    treatments: Vec<Treatment>,
    tags: Vec<TagPair>,
    detectors: Vec<Detector>,
    patterns: Vec<Vec<u8>>,
    roles: Vec<Vec<Role>>,
    /// Lower-cased pattern → index, since the automaton ignores ASCII case.
    pattern_index: HashMap<Vec<u8>, usize>,
    /// Folded, lower-cased field name → where it was declared.
    field_names: HashMap<String, String>,
    tag_strings: HashMap<String, String>,
    contract: Option<(usize, usize, String)>,
    files: Vec<String>,
}

impl Builder {
    fn add_pattern(&mut self, bytes: &[u8], role: Role) {
        let key = bytes.to_ascii_lowercase();
        let i = match self.pattern_index.get(&key) {
            Some(&i) => i,
            None => {
                self.patterns.push(key.clone());
                self.roles.push(Vec::new());
                let i = self.patterns.len() - 1;
                self.pattern_index.insert(key, i);
                i
            }
        };
        if let Some(r) = self.roles.get_mut(i) {
            r.push(role);
        }
    }

    fn treatment(
        &mut self,
        at: &str,
        label: &str,
        action: Action,
        placeholder: Option<&str>,
        mask: Option<&str>,
    ) -> anyhow::Result<usize> {
        let ok_label = label.len() <= 40
            && label.starts_with(|c: char| c.is_ascii_lowercase())
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok_label {
            bail!("{at}: key `label`: `{label}` must be lower-case ASCII letters, digits and `_`, starting with a letter (at most 40)");
        }
        let placeholder = placeholder.map_or_else(|| label.to_ascii_uppercase(), str::to_string);
        let ok_placeholder = placeholder.len() <= 40
            && placeholder.starts_with(|c: char| c.is_ascii_uppercase())
            && placeholder
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !ok_placeholder {
            bail!("{at}: key `placeholder`: `{placeholder}` must be upper-case ASCII letters, digits and `_`, starting with a letter (at most 40), so that models copy it unchanged");
        }
        let mask = mask.map_or_else(|| format!("[{placeholder}]"), str::to_string);
        if mask.trim().is_empty() || mask.chars().count() > 64 {
            bail!("{at}: key `mask`: must be between 1 and 64 characters");
        }
        self.treatments.push(Treatment {
            label: label.to_string(),
            placeholder,
            mask,
            action,
            space_separated: false,
            one_word: false,
            code: false,
            people: false,
        });
        Ok(self.treatments.len() - 1)
    }

    fn add_file(&mut self, name: &str, raw: RawFile) -> anyhow::Result<()> {
        self.files.push(name.to_string());
        for (i, t) in raw.tag.iter().enumerate() {
            let at = format!("{name}: tag #{} (`{}`)", i + 1, t.open);
            let treatment = self.treatment(
                &at,
                &t.label,
                t.action,
                t.placeholder.as_deref(),
                t.mask.as_deref(),
            )?;
            let (open, close) = (fold(&t.open), fold(&t.close));
            for (key, s) in [("open", &open), ("close", &close)] {
                if s.trim().is_empty() {
                    bail!("{at}: key `{key}`: must not be empty");
                }
                if let Some(prev) = self.tag_strings.insert(s.to_lowercase(), at.clone()) {
                    bail!("{at}: key `{key}`: `{s}` is already a tag in {prev}");
                }
            }
            if open.contains(close.as_str()) || close.contains(open.as_str()) {
                bail!("{at}: `open` and `close` must not contain each other");
            }
            let idx = self.tags.len();
            for o in spaced_variants(&open) {
                self.add_pattern(o.as_bytes(), Role::Open(idx));
            }
            if let Some(name) = open.strip_prefix('<').and_then(|o| o.strip_suffix('>')) {
                self.add_pattern(
                    format!("<{name} ").as_bytes(),
                    Role::OpenWithAttributes(idx),
                );
            }
            for c in spaced_variants(&close) {
                self.add_pattern(c.as_bytes(), Role::Close(idx));
            }
            self.tags.push(TagPair {
                open,
                close,
                treatment,
            });
        }
        for (i, f) in raw.field.iter().enumerate() {
            let at = format!("{name}: field #{} (`{}`)", i + 1, f.label);
            let treatment = self.treatment(
                &at,
                &f.label,
                f.action,
                f.placeholder.as_deref(),
                f.mask.as_deref(),
            )?;
            if let Some(t) = self.treatments.get_mut(treatment) {
                t.space_separated = f.space_separated;
                t.one_word = f.one_word;
                t.code = f.code;
                t.people = f.people;
            }
            if f.names.is_empty() {
                bail!("{at}: key `names`: give at least one field name");
            }
            for n in &f.names {
                let folded = fold(n.trim());
                if folded.is_empty() {
                    bail!("{at}: key `names`: a field name is empty");
                }
                if let Some(prev) = self.field_names.insert(folded.to_lowercase(), at.clone()) {
                    bail!("{at}: key `names`: `{n}` is already declared in {prev}");
                }
                self.add_pattern(folded.as_bytes(), Role::Field(treatment));
            }
        }
        for (i, d) in raw.detector.iter().enumerate() {
            let at = format!("{name}: detector #{} (`{}`)", i + 1, d.label);
            self.add_detector(&at, d)?;
        }
        if let Some(c) = raw.contract {
            if let Some((_, _, prev)) = &self.contract {
                bail!("{name}: table `contract` is already given in {prev}");
            }
            let terms = self.treatment(
                &format!("{name}: contract.terms"),
                &c.terms.label,
                c.terms.action,
                c.terms.placeholder.as_deref(),
                c.terms.mask.as_deref(),
            )?;
            let fields = self.treatment(
                &format!("{name}: contract.fields"),
                &c.fields.label,
                c.fields.action,
                c.fields.placeholder.as_deref(),
                c.fields.mask.as_deref(),
            )?;
            self.contract = Some((terms, fields, name.to_string()));
        }
        Ok(())
    }

    fn add_detector(&mut self, at: &str, d: &RawDetector) -> anyhow::Result<()> {
        let treatment = self.treatment(
            at,
            &d.label,
            d.action,
            d.placeholder.as_deref(),
            d.mask.as_deref(),
        )?;
        // Regex escapes (`\n`, `\r`) are syntax, not text: judge the literal runs between them.
        let changed = d.pattern.split('\\').enumerate().find_map(|(n, run)| {
            let mut chars = run.chars();
            if n > 0 {
                chars.next();
            }
            let run = chars.as_str();
            let folded = fold(run);
            run.chars()
                .zip(folded.chars())
                .find(|(c, f)| c != f)
                .or((folded.chars().count() != run.chars().count())
                    .then(|| (run.chars().next().unwrap_or('?'), '?')))
        });
        if let Some((c, f)) = changed {
            bail!("{at}: key `pattern`: `{c}` never occurs there in the folded text the pattern is matched against (it becomes `{f}`); write that instead");
        }
        let hir = regex_syntax::ParserBuilder::new()
            .build()
            .parse(&d.pattern)
            .map_err(|e| anyhow!("{at}: key `pattern`: not a valid regular expression:\n{e}"))?;
        let props = hir.properties();
        if props.minimum_len().unwrap_or(0) == 0 {
            bail!("{at}: key `pattern`: the pattern can match empty text");
        }
        let max_len = props.maximum_len();
        if max_len.is_some_and(|m| m > MAX_WINDOW) {
            bail!("{at}: key `pattern`: matches can be longer than {MAX_WINDOW} bytes; lower the repetition bounds");
        }
        let regex = compile(&d.pattern)
            .map_err(|e| anyhow!("{at}: key `pattern`: cannot be compiled: {e}"))?;
        let value_group = regex.group_info().to_index(PatternID::ZERO, "value");

        let keywords: Vec<String> = d
            .keywords
            .iter()
            .flatten()
            .map(|k| fold(k.trim()))
            .collect();
        if keywords.iter().any(String::is_empty) {
            bail!("{at}: key `keywords`: a keyword is empty");
        }
        if keywords.iter().any(|k| k.len() > 200) {
            bail!("{at}: key `keywords`: a keyword is longer than 200 bytes; use a shorter one");
        }
        let keyword_mode = match (d.keyword_mode, keywords.is_empty()) {
            (Some(_), true) => bail!("{at}: key `keyword_mode`: there are no `keywords`"),
            (m, false) => Some(m.unwrap_or(KeywordMode::Required)),
            (None, true) => None,
        };
        if keyword_mode == Some(KeywordMode::OrValid) && d.validator.is_none() {
            bail!("{at}: key `keyword_mode`: \"or_valid\" needs a `validator`");
        }
        let keyword_window = d.keyword_window.unwrap_or(20);
        if !(1..=200).contains(&keyword_window) {
            bail!("{at}: key `keyword_window`: must be between 1 and 200 characters");
        }
        if d.keyword_window.is_some() && keywords.is_empty() {
            bail!("{at}: key `keyword_window`: there are no `keywords`");
        }

        let unless_after: Vec<String> = d
            .unless_after
            .iter()
            .flatten()
            .map(|w| fold(w.trim()).to_ascii_lowercase())
            .collect();
        if unless_after.iter().any(|w| w.is_empty() || w.len() > 64) {
            bail!("{at}: key `unless_after`: give labels of 1 to 64 bytes");
        }
        let triggers_not_after: Vec<String> = d
            .triggers_not_after
            .iter()
            .flatten()
            .map(|w| fold(w).to_ascii_lowercase())
            .collect();
        if triggers_not_after
            .iter()
            .any(|w| w.is_empty() || w.len() > 64)
        {
            bail!("{at}: key `triggers_not_after`: give texts of 1 to 64 bytes");
        }
        if !triggers_not_after.is_empty() && d.triggers.is_none() {
            bail!("{at}: key `triggers_not_after`: only with `triggers`");
        }

        let idx = self.detectors.len();
        let mut digit_trigger = false;
        let mut literal_triggers: Vec<Vec<u8>> = Vec::new();
        let back;
        if keyword_mode == Some(KeywordMode::Required) {
            if d.triggers.is_some() {
                bail!("{at}: key `triggers`: not used with keyword_mode = \"required\" (the detector is searched near its keywords)");
            }
            if max_len.is_none() {
                bail!("{at}: key `pattern`: give every repetition an upper bound ({{m,n}} instead of * or +) when keywords are required");
            }
            back = 0;
        } else if let Some(triggers) = &d.triggers {
            let Some(m) = max_len else {
                bail!("{at}: key `triggers`: the pattern has no length limit, so matches must begin with a literal: bound every repetition ({{m,n}}) or remove `triggers`");
            };
            if triggers.is_empty() {
                bail!("{at}: key `triggers`: give at least one literal every match contains");
            }
            for t in triggers {
                let t = fold(t);
                if t.is_empty() {
                    bail!("{at}: key `triggers`: a trigger is empty");
                }
                literal_triggers.push(t.into_bytes());
            }
            back = m;
        } else {
            let mut ex = Extractor::new();
            ex.kind(ExtractKind::Prefix);
            let seq = ex.extract(&hir);
            let lits: Option<Vec<Vec<u8>>> = seq
                .literals()
                .filter(|l| !l.is_empty() && l.iter().all(|x| !x.as_bytes().is_empty()))
                .map(|l| l.iter().map(|x| x.as_bytes().to_vec()).collect());
            let Some(lits) = lits else {
                bail!("{at}: key `pattern`: matches do not begin with a literal; set `triggers` to literals every match contains, or `keywords`");
            };
            let Some(minimal) = minimal_beginnings(&lits) else {
                bail!("{at}: key `pattern`: matches can begin in too many ways to prefilter; set `triggers` to literals every match contains");
            };
            literal_triggers = minimal;
            back = 0;
        }
        for t in literal_triggers {
            if t.first().is_some_and(u8::is_ascii_digit) {
                digit_trigger = true;
            } else {
                self.add_pattern(&t, Role::Trigger(idx));
            }
        }
        for k in &keywords {
            self.add_pattern(k.as_bytes(), Role::Keyword(idx));
        }
        self.detectors.push(Detector {
            treatment,
            regex,
            exact: std::sync::OnceLock::new(),
            pattern: d.pattern.clone(),
            value_group,
            validator: d.validator,
            keyword_mode,
            keyword_window,
            unless_after,
            triggers_not_after,
            boundary: d.boundary.unwrap_or(Boundary::Alnum),
            max_len,
            value_runs_on: d.value_runs_on,
            back,
            min_digits: min_digits(&hir),
            digit_trigger,
        });
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<Rules> {
        let (term_treatment, contract_field_treatment) = match self.contract {
            Some((t, f, _)) => (t, f),
            None => (
                self.treatment("contract.terms", "term", Action::Pseudonymize, None, None)?,
                self.treatment(
                    "contract.fields",
                    "contract_field",
                    Action::Pseudonymize,
                    Some("FIELD"),
                    None,
                )?,
            ),
        };
        let matcher = Keywords::new(&self.patterns)
            .map_err(|e| anyhow!("the redaction rules are too large to compile: {e}"))?;
        let keyword_chars = super::keywords::distinct_chars(&self.patterns);
        if matches!(matcher, Some(Keywords::PerByte(_))) {
            tracing::warn!(
                characters = keyword_chars,
                "the redaction rules' tags, field names, triggers and keywords cannot be coded a character per byte (a pattern not of whole characters, or a character outside the BMP), so they are searched byte by byte, several times slower; rules without such characters would bring the faster search back"
            );
        }
        let people_treatment = self.treatments.iter().position(|t| t.people);
        Ok(Rules {
            people_treatment,
            treatments: self.treatments,
            tags: self.tags,
            detectors: self.detectors,
            matcher,
            roles: self.roles,
            clean: CleanTexts::new(DEFAULT_CLEAN_TEXTS),
            term_treatment,
            contract_field_treatment,
            field_names: self.field_names.len(),
            files: self.files,
            keyword_chars,
        })
    }
}

/// A small set of literals such that every match begins with one of them, from the (possibly
/// large) set the regex parser derives: digit-led ones are kept as they are (digit runs are
/// triggers anyway), the others are cut to the longest length that keeps the set small, and
/// any literal that starts with another one is dropped. `None` when even one byte is too many.
fn minimal_beginnings(lits: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    let (digits, others): (Vec<&Vec<u8>>, Vec<&Vec<u8>>) = lits
        .iter()
        .partition(|l| l.first().is_some_and(u8::is_ascii_digit));
    let mut out: Vec<Vec<u8>> = digits.into_iter().take(1).cloned().collect();
    if others.is_empty() {
        return Some(out);
    }
    for k in [32, 16, 8, 4, 3, 2, 1] {
        let mut cut: Vec<Vec<u8>> = others
            .iter()
            .map(|l| l.get(..l.len().min(k)).unwrap_or(l).to_ascii_lowercase())
            .collect();
        cut.sort();
        cut.dedup();
        let minimal: Vec<Vec<u8>> = cut
            .iter()
            .filter(|x| !cut.iter().any(|y| y.len() < x.len() && x.starts_with(y)))
            .cloned()
            .collect();
        if minimal.len() <= MAX_DERIVED_TRIGGERS {
            out.extend(minimal);
            return Some(out);
        }
    }
    None
}

/// The fewest ASCII digits any match of `h` contains.
fn min_digits(h: &Hir) -> usize {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => 0,
        HirKind::Literal(l) => l.0.iter().filter(|b| b.is_ascii_digit()).count(),
        HirKind::Class(c) => usize::from(class_is_digits(c)),
        HirKind::Repetition(r) => (r.min as usize).saturating_mul(min_digits(&r.sub)),
        HirKind::Capture(c) => min_digits(&c.sub),
        HirKind::Concat(v) => v.iter().map(min_digits).fold(0, usize::saturating_add),
        HirKind::Alternation(v) => v.iter().map(min_digits).min().unwrap_or(0),
    }
}

fn class_is_digits(c: &Class) -> bool {
    match c {
        Class::Unicode(u) => {
            !u.ranges().is_empty()
                && u.ranges()
                    .iter()
                    .all(|r| r.start() >= '0' && r.end() <= '9')
        }
        Class::Bytes(b) => {
            !b.ranges().is_empty()
                && b.ranges()
                    .iter()
                    .all(|r| r.start() >= b'0' && r.end() <= b'9')
        }
    }
}

/// A tag as written, and as authors also write it with a space inside its brackets or after its
/// slash (`【 機密 】`, `【/ 機密】`): every combination of one space at each such place.
fn spaced_variants(tag: &str) -> Vec<String> {
    let chars: Vec<char> = tag.chars().collect();
    let bracket = |c: Option<&char>| c.is_some_and(|c| !c.is_alphanumeric() && *c != '/');
    // Places a space may go: before the character at that index.
    let mut places = Vec::new();
    if bracket(chars.first()) && chars.len() > 2 {
        places.push(1);
    }
    if let Some(slash) = chars.iter().position(|&c| c == '/') {
        if slash + 1 < chars.len() && !places.contains(&(slash + 1)) {
            places.push(slash + 1);
        }
    }
    if bracket(chars.last()) && chars.len() > 2 && !places.contains(&(chars.len() - 1)) {
        places.push(chars.len() - 1);
    }
    (0..1u32 << places.len())
        .map(|mask| {
            let mut s = String::with_capacity(tag.len() + places.len());
            for (i, c) in chars.iter().enumerate() {
                if let Some(k) = places.iter().position(|&p| p == i) {
                    if mask & (1 << k) != 0 {
                        s.push(' ');
                    }
                }
                s.push(*c);
            }
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(toml: &str) -> String {
        format!("{:#}", Rules::from_sources([("x.toml", toml)]).unwrap_err())
    }

    #[test]
    fn unknown_keys_and_bad_values_name_file_key_and_reason() {
        let e = err(
            "[[detector]]\nlabel = \"a\"\naction = \"mask\"\npattern = \"x[0-9]\"\ncolour = 1\n",
        );
        assert!(e.contains("x.toml") && e.contains("colour"), "{e}");
        let e = err("[[detector]]\nlabel = \"a\"\naction = \"hide\"\npattern = \"x\"\n");
        assert!(e.contains("x.toml") && e.contains("hide"), "{e}");
        let e = err("[[detector]]\nlabel = \"a\"\naction = \"mask\"\npattern = \"x(\"\n");
        assert!(
            e.contains("x.toml: detector #1 (`a`): key `pattern`"),
            "{e}"
        );
        let e = err("[[detector]]\nlabel = \"a\"\naction = \"mask\"\npattern = \"[a-z]+@\"\n");
        assert!(e.contains("triggers"), "{e}");
        let e = err("[[detector]]\nlabel = \"a\"\naction = \"mask\"\npattern = \"x?\"\n");
        assert!(e.contains("empty text"), "{e}");
        let e = err("[[detector]]\nlabel = \"a\"\naction = \"mask\"\npattern = \"[0-9]{4}\"\nkeywords = [\"k\"]\nunless_after = [\"\"]\n");
        assert!(e.contains("key `unless_after`: give labels"), "{e}");
        let e = err("[[detector]]\nlabel = \"a\"\naction = \"mask\"\npattern = \"x[0-9]\"\ntriggers_not_after = [\"y\"]\n");
        assert!(e.contains("key `triggers_not_after`"), "{e}");
        let e = err("[[detector]]\nlabel = \"Bad Label\"\naction = \"mask\"\npattern = \"x\"\n");
        assert!(e.contains("key `label`"), "{e}");
        let e = err("[[field]]\nnames = [\"氏名\"]\nlabel = \"a\"\naction = \"mask\"\n[[field]]\nnames = [\"氏名\"]\nlabel = \"b\"\naction = \"mask\"\n");
        assert!(e.contains("already declared"), "{e}");
        let e = err("[[detector]]\nlabel = \"a\"\naction = \"mask\"\npattern = \"[0-9]{4}\"\nkeyword_mode = \"or_valid\"\n");
        assert!(e.contains("keyword_mode"), "{e}");
    }

    #[test]
    fn derives_triggers_and_digit_counts() {
        let r = Rules::from_sources([(
            "x.toml",
            "[[detector]]\nlabel = \"a\"\naction = \"mask\"\npattern = '(?:\\+81|0)[0-9]{9,10}'\n",
        )])
        .unwrap();
        let d = &r.detectors[0];
        assert!(d.digit_trigger);
        assert_eq!(d.min_digits, 10);
        assert_eq!(d.back, 0);
    }

    #[test]
    fn the_shipped_rules_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("redaction");
        let r = Rules::load(&dir).unwrap();
        assert!(r.detectors.len() >= 15, "{r:?}");
        assert_eq!(r.tags.len(), 3);
    }

    #[test]
    fn an_empty_folder_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = format!("{:#}", Rules::load(dir.path()).unwrap_err());
        assert!(e.contains("no redaction rules"), "{e}");
    }
}
