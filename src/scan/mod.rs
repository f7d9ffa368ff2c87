//! `mamori scan`: finds the passages of a deliverable that came from a contract's logged
//! outputs, so the AI-use disclosure (第8-2) is complete even when nobody tagged the
//! deliverable.
//!
//! A pure library over the log: [`read_document`] extracts a file's text, [`OutputIndex`]
//! indexes outputs and scans a text against them, and [`run_scan`] puts the two together for
//! one contract. Matching is on a folded view of the text (`normalize`: NFKC, lowercase, no
//! whitespace, no dashes or markup) with winnowed character shingles (`shingle`), so reflowed
//! lines, changed spacing, full-width/half-width changes and light editing do not hide a
//! passage; `index` explains the method.
mod extract;
mod index;
mod normalize;
mod shingle;

pub use extract::{read_document, SUPPORTED};
pub use index::OutputIndex;

use crate::audit::DataKeys;
use crate::store::{LogRecord, Store};
use anyhow::{bail, Context};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

/// Matching parameters. All lengths are in folded characters (after `normalize`: whitespace
/// and punctuation marks removed), where one Japanese character is about one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ScanParams {
    /// Characters per shingle. 13 is long enough that a shared shingle is rarely chance in
    /// Japanese or English prose, short enough that text between edits still holds some.
    pub shingle: usize,
    /// Winnowing window: one fingerprint is kept per `window` shingles, and any shared run of
    /// `window + shingle - 1` characters is guaranteed to be found (30 by default).
    pub window: usize,
    /// A passage needs at least this many characters matched exactly; shorter matches are
    /// common phrases, not copied text.
    pub min_passage: usize,
    /// Unmatched characters (edited words) allowed inside one passage.
    pub max_gap: usize,
    /// A shingle found in more outputs than this is boilerplate and is not used.
    pub max_outputs_per_shingle: usize,
}

impl Default for ScanParams {
    fn default() -> Self {
        Self {
            shingle: 13,
            window: 18,
            min_passage: 30,
            max_gap: 24,
            max_outputs_per_shingle: 50,
        }
    }
}

impl ScanParams {
    fn validate(&self) -> anyhow::Result<()> {
        if !(4..=64).contains(&self.shingle) {
            bail!("scan shingle length must be 4 to 64 characters");
        }
        if self.window == 0 || self.max_outputs_per_shingle == 0 {
            bail!("scan window and max_outputs_per_shingle must be at least 1");
        }
        if self.min_passage < self.shingle {
            bail!("scan min_passage must be at least the shingle length");
        }
        Ok(())
    }
}

/// What one deliverable holds of the logged outputs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileReport {
    /// Characters of the deliverable's text, counted folded (without whitespace and marks).
    pub chars: usize,
    /// Of those, the characters inside passages.
    pub covered_chars: usize,
    /// `covered_chars / chars`, 0 to 1.
    pub coverage: f64,
    /// In the order they appear.
    pub passages: Vec<Passage>,
}

/// A stretch of a deliverable that came from one or more logged outputs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Passage {
    /// 1-based lines of the extracted text (for a .docx, paragraphs; a manual line break
    /// starts a new line too).
    pub start_line: usize,
    pub end_line: usize,
    /// Folded characters.
    pub chars: usize,
    /// A short quote of the deliverable, whitespace collapsed.
    pub excerpt: String,
    /// The outputs it came from, the one covering most of it first.
    pub request_ids: Vec<String>,
    /// The share of the passage the best output covers exactly (1 = verbatim up to layout,
    /// width and case; lower when words were edited).
    pub similarity: f64,
}

/// `mamori scan`'s result for one contract and its files.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanReport {
    pub contract: String,
    /// Served outputs of the contract whose text was searched.
    pub outputs_indexed: usize,
    /// Served outputs that could not be searched (bodies deleted by retention or shredded), so
    /// a passage from them cannot be found.
    pub outputs_unavailable: Vec<UnavailableOutput>,
    pub files: Vec<FileScan>,
    /// Every request id found in any file, in log order: what `disclose` should add.
    pub request_ids: Vec<String>,
}

impl ScanReport {
    /// The request ids found, as a set (`disclose::Query::also`).
    pub fn request_id_set(&self) -> BTreeSet<String> {
        self.request_ids.iter().cloned().collect()
    }

    /// How many unavailable outputs there are, per reason.
    pub fn unavailable_by_reason(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for u in &self.outputs_unavailable {
            *out.entry(u.reason.clone()).or_default() += 1;
        }
        out
    }
}

/// One scanned file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileScan {
    /// The path as given.
    pub path: String,
    #[serde(flatten)]
    pub report: FileReport,
}

/// A served output whose body is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnavailableOutput {
    pub request_id: String,
    /// `retention` (deleted after the contract's retention period), `shredded` (the contract's
    /// data key was destroyed) or `absent` (no body was stored).
    pub reason: String,
}

/// Log records read per page.
const PAGE: i64 = 500;

/// Scans `files` against the served outputs of `contract` in the log.
///
/// The files are read first, so a bad path or format fails before the log is read. Every
/// record of the contract with outcome `ok` is opened with `data_keys`; its output text (any
/// endpoint's shape, streams assembled) is indexed. A body that fails to decrypt is an error
/// (the log may have been tampered with: run `mamori audit verify`), never skipped silently.
/// The work is CPU-bound and runs on the calling thread (and, while indexing, all cores).
pub async fn run_scan(
    store: &Store,
    data_keys: &DataKeys,
    contract: &str,
    files: &[PathBuf],
) -> anyhow::Result<ScanReport> {
    let documents = files
        .iter()
        .map(|p| Ok((p, read_document(p)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if store.contract(contract).await?.is_none() {
        bail!("no contract `{contract}`; see `mamori contract list`");
    }
    let mut outputs = Vec::new();
    let mut unavailable = Vec::new();
    let mut after = 0;
    loop {
        let page = store.log_page(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for rec in page
            .iter()
            .filter(|r| r.outcome == "ok" && r.contract_id.as_deref() == Some(contract))
        {
            match output_of(data_keys, rec).await? {
                Ok(text) if !text.trim().is_empty() => {
                    outputs.push((rec.request_id.clone(), text));
                }
                Ok(_) => {}
                Err(reason) => unavailable.push(UnavailableOutput {
                    request_id: rec.request_id.clone(),
                    reason: reason.to_string(),
                }),
            }
        }
    }
    let order: HashMap<String, usize> = outputs
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (id.clone(), i))
        .collect();
    let index = OutputIndex::build(outputs)?;
    let mut found = BTreeSet::new();
    let files = documents
        .into_iter()
        .map(|(path, text)| {
            let report = index.scan(&text);
            for p in &report.passages {
                for id in &p.request_ids {
                    found.insert((order.get(id).copied().unwrap_or(usize::MAX), id.clone()));
                }
            }
            FileScan {
                path: path.display().to_string(),
                report,
            }
        })
        .collect();
    Ok(ScanReport {
        contract: contract.to_string(),
        outputs_indexed: index.len(),
        outputs_unavailable: unavailable,
        files,
        request_ids: found.into_iter().map(|(_, id)| id).collect(),
    })
}

/// A record's output text, or why it is gone.
async fn output_of(
    data_keys: &DataKeys,
    rec: &LogRecord,
) -> anyhow::Result<Result<String, &'static str>> {
    if rec.output_body.is_none() {
        return Ok(Err(match rec.bodies_deleted.as_deref() {
            Some("retention") => "retention",
            Some(_) => "shredded",
            None => "absent",
        }));
    }
    let Some(body) = data_keys.open_body(rec, "output").await.with_context(|| {
        format!(
            "cannot open the output of request {}; run `mamori audit verify`",
            rec.request_id
        )
    })?
    else {
        return Ok(Err("shredded"));
    };
    Ok(Ok(
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v) => crate::proxy::assemble::output_text(&v),
            Err(_) => String::from_utf8_lossy(&body).into_owned(),
        },
    ))
}
