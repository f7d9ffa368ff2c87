//! What one contract adds to the shipped rules: its term list (client names, code names, people)
//! and extra confidential field names. Compiled into automata once per contract and reused by every
//! request of that contract, so a long term list costs nothing per request.
use super::finder::Finder;
use super::normalize::fold;
use anyhow::anyhow;
use std::fmt;

/// A contract's own redaction settings, as stored by the administrator.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ContractRedaction {
    /// Matched regardless of width and (ASCII) case, through dashes, spaces and invisible characters.
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

/// The compiled form of a [`ContractRedaction`]. Build once per contract (and again when its
/// terms change) and share it between requests.
#[derive(Default)]
pub struct ContractMatcher {
    pub(crate) terms: Option<Finder>,
    pub(crate) fields: Option<Finder>,
    term_count: usize,
    field_count: usize,
}

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
        let (terms, term_count) = compile(&c.terms)
            .map_err(|e| anyhow!("cannot compile the contract's term list: {e}"))?;
        let (fields, field_count) = compile(&c.extra_fields)
            .map_err(|e| anyhow!("cannot compile the contract's extra field names: {e}"))?;
        Ok(Self {
            terms,
            fields,
            term_count,
            field_count,
        })
    }

    /// No terms and no extra fields: the shipped rules only.
    pub fn none() -> Self {
        Self::default()
    }
}

fn compile(list: &[String]) -> Result<(Option<Finder>, usize), aho_corasick::BuildError> {
    let mut folded: Vec<String> = list
        .iter()
        .map(|t| fold(t.trim()).to_ascii_lowercase())
        .filter(|t| !t.trim().is_empty())
        .collect();
    folded.sort();
    folded.dedup();
    let n = folded.len();
    Ok((Finder::new(&folded)?, n))
}
