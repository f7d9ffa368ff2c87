//! `mamori disclose verify FILE`: does an exported disclosure still match the log?
//! The file names its contract, deliverable, language, time and records; the disclosure is
//! regenerated from the log for exactly those records and compared with the file.
use super::render::{render, Format};
use super::{build, Disclosure, Lang, Query};
use crate::store::Store;
use anyhow::{bail, Context};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;

#[derive(Debug, Serialize)]
pub struct Outcome {
    /// The file is exactly what the log produces for its records.
    pub matches: bool,
    pub records: usize,
    /// What differs, if anything (records missing or changed in the log, edited text).
    pub problems: Vec<String>,
    /// Served records for the same deliverable that the file does not list (exported earlier).
    pub newer_records: usize,
}

struct Parsed {
    format: Format,
    contract: String,
    deliverable: Option<String>,
    lang: Lang,
    generated_at: String,
    ids: Vec<(String, String)>,
}

fn parse(path: &Path, text: &str) -> anyhow::Result<Parsed> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext == "json" || text.trim_start().starts_with('{') {
        let d: Disclosure =
            serde_json::from_str(text).context("not a mamori disclosure in JSON")?;
        let ids = d
            .records
            .iter()
            .map(|r| (r.request_id.clone(), r.output_sha256.clone()))
            .collect();
        return Ok(Parsed {
            format: Format::Json,
            contract: d.contract.id,
            deliverable: d.deliverable,
            lang: d.lang,
            generated_at: d.generated_at,
            ids,
        });
    }
    if ext == "csv" || text.starts_with("format,") {
        let mut lines = text.lines();
        lines.next();
        let mut meta = None;
        let mut ids = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let cols = csv_split(line);
            if cols.len() < 13 {
                bail!("a CSV row has {} columns, not 13: the file was edited or is not a mamori disclosure", cols.len());
            }
            let lang: Lang = cols[2].parse()?;
            let deliverable = (!cols[4].is_empty()).then(|| cols[4].clone());
            meta.get_or_insert((cols[3].clone(), deliverable, lang, cols[1].clone()));
            ids.push((cols[5].clone(), cols[12].clone()));
        }
        let Some((contract, deliverable, lang, generated_at)) = meta else {
            bail!("the CSV lists no records; there is nothing to verify");
        };
        return Ok(Parsed {
            format: Format::Csv,
            contract,
            deliverable,
            lang,
            generated_at,
            ids,
        });
    }
    let start = text
        .find("<!-- mamori-disclosure ")
        .context("no mamori-disclosure header: not a disclosure exported by mamori")?;
    let rest = &text[start + "<!-- mamori-disclosure ".len()..];
    let end = rest
        .find(" -->")
        .context("the mamori-disclosure header is cut off")?;
    let meta: serde_json::Value =
        serde_json::from_str(&rest[..end]).context("the mamori-disclosure header was edited")?;
    let format = if text.trim_start().starts_with("<!DOCTYPE html>") {
        Format::Html
    } else {
        Format::Md
    };
    // Appendix rows carry `req_…` ids followed (on the same row) by a 64-hex hash.
    let mut ids = Vec::new();
    for line in text.lines() {
        let Some(i) = line.find("req_") else { continue };
        let id: String = line[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let hash = line
            .split(|c: char| !c.is_ascii_hexdigit())
            .find(|t| t.len() == 64)
            .unwrap_or("")
            .to_string();
        ids.push((id, hash));
    }
    let s = |k: &str| meta.get(k).and_then(|v| v.as_str()).map(str::to_string);
    Ok(Parsed {
        format,
        contract: s("contract").context("the header names no contract")?,
        deliverable: s("deliverable"),
        lang: s("lang").unwrap_or_else(|| "ja".into()).parse()?,
        generated_at: s("generated_at").context("the header has no generated_at")?,
        ids,
    })
}

fn csv_split(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

pub async fn verify_file(store: &Store, path: &Path) -> anyhow::Result<Outcome> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let p = parse(path, &text)
        .with_context(|| format!("{} is not a disclosure mamori can check", path.display()))?;
    let mut problems = Vec::new();
    let all = store
        .disclosure_rows(&p.contract, super::GENERATIVE)
        .await?;
    let by_id: std::collections::HashMap<&str, &crate::store::LogRecord> =
        all.iter().map(|r| (r.request_id.as_str(), r)).collect();
    for (id, hash) in &p.ids {
        match by_id.get(id.as_str()) {
            None => problems.push(format!(
                "request {id} is not in the log of contract `{}`",
                p.contract
            )),
            Some(r) if r.output_sha256.as_deref() != Some(hash.as_str()) => problems.push(format!(
                "request {id}: the output hash in the file differs from the log"
            )),
            Some(_) => {}
        }
    }
    let only: BTreeSet<String> = p.ids.iter().map(|(id, _)| id.clone()).collect();
    let q = Query {
        contract: p.contract.clone(),
        deliverable: p.deliverable.clone(),
        also: BTreeSet::new(),
        only: Some(only.clone()),
        lang: p.lang,
        generated_at: p.generated_at.clone(),
    };
    let again = render(&build(store, &q).await?, p.format)?;
    let normalized = text.replace("\r\n", "\n");
    if again != normalized {
        let line = again
            .lines()
            .zip(normalized.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| again.lines().count().min(normalized.lines().count()));
        problems.push(format!(
            "the file differs from what the log produces, first at line {}: it was edited after export, or the log changed",
            line + 1
        ));
    }
    let now = Query { only: None, ..q };
    let current = super::select(&all, &now);
    let newer_records = current
        .iter()
        .filter(|r| !only.contains(&r.request_id))
        .count();
    Ok(Outcome {
        matches: problems.is_empty(),
        records: p.ids.len(),
        problems,
        newer_records,
    })
}
