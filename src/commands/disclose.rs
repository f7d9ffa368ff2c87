//! `mamori disclose`, `disclose verify`, `form`, `form status`.
use crate::cli::{DiscloseArgs, DiscloseCmd, FormArgs, FormCmd};
use crate::config::Config;
use crate::disclose::{self, form, render, verify, Lang, Query};
use crate::store::Store;
use anyhow::{bail, Context};
use std::collections::BTreeSet;

fn emit(out: Option<&std::path::Path>, text: &str) -> anyhow::Result<()> {
    match out {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?;
            eprintln!("wrote {}", p.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

pub async fn disclose(config: &Config, a: DiscloseArgs, json: bool) -> anyhow::Result<()> {
    let store = Store::connect(&config.database_url).await?;
    if let Some(DiscloseCmd::Verify { file }) = a.command {
        let o = verify::verify_file(&store, &file).await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&o)?);
        }
        if !o.matches {
            for p in &o.problems {
                eprintln!("- {p}");
            }
            bail!("{} does NOT match the log", file.display());
        }
        if !json {
            println!(
                "ok: {} matches the log ({} records)",
                file.display(),
                o.records
            );
        }
        if o.newer_records > 0 {
            bail!(
                "{} is out of date: the log has {} more record(s) for this deliverable since it was exported; export it again",
                file.display(),
                o.newer_records
            );
        }
        return Ok(());
    }
    let contract = a.contract.context("--contract is required")?;
    let format: render::Format = a.format.parse()?;
    let lang: Lang = a.lang.parse()?;
    let mut also = BTreeSet::new();
    if !a.scan.is_empty() {
        also = scanned_ids(config, &store, &contract, &a.scan).await?;
    }
    let generated_at = a
        .generated_at
        .unwrap_or_else(|| chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let q = Query {
        contract,
        deliverable: a.deliverable,
        also,
        only: None,
        lang,
        generated_at,
    };
    let d = disclose::build(&store, &q).await?;
    emit(a.out.as_deref(), &render::render(&d, format)?)
}

async fn run_scan(
    config: &Config,
    store: &Store,
    contract: &str,
    files: &[std::path::PathBuf],
) -> anyhow::Result<crate::scan::ScanReport> {
    let keys = crate::audit::load_keys(&config.audit)?;
    let data_keys = crate::audit::DataKeys::new(store.clone(), keys.master);
    crate::scan::run_scan(store, &data_keys, contract, files).await
}

async fn scanned_ids(
    config: &Config,
    store: &Store,
    contract: &str,
    files: &[std::path::PathBuf],
) -> anyhow::Result<BTreeSet<String>> {
    let report = run_scan(config, store, contract, files).await?;
    eprintln!(
        "scan: {} record(s) found in {} file(s) added to the disclosure",
        report.request_ids.len(),
        files.len()
    );
    Ok(report.request_id_set())
}

/// `mamori scan`: which passages of the deliverables came from logged outputs.
pub async fn scan(
    config: &Config,
    contract: &str,
    files: &[std::path::PathBuf],
    json: bool,
) -> anyhow::Result<()> {
    let store = Store::connect(&config.database_url).await?;
    let r = run_scan(config, &store, contract, files).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!(
        "contract {}: {} logged output(s) searched",
        r.contract, r.outputs_indexed
    );
    for (reason, n) in r.unavailable_by_reason() {
        println!("  note: {n} output(s) could not be searched ({reason})");
    }
    for f in &r.files {
        println!(
            "\n{}: {:.1}% from generative AI ({} passage(s))",
            f.path,
            f.report.coverage * 100.0,
            f.report.passages.len()
        );
        for p in &f.report.passages {
            let lines = if p.start_line == p.end_line {
                format!("line {}", p.start_line)
            } else {
                format!("lines {}-{}", p.start_line, p.end_line)
            };
            println!(
                "  {lines}  similarity {:.2}  {}",
                p.similarity,
                p.request_ids.join(", ")
            );
            println!("    「{}」", p.excerpt);
        }
    }
    if !r.request_ids.is_empty() {
        println!(
            "\nto disclose them: mamori disclose --contract {} --scan FILE…",
            r.contract
        );
    }
    Ok(())
}

pub async fn form(config: &Config, a: FormArgs, json: bool) -> anyhow::Result<()> {
    let store = Store::connect(&config.database_url).await?;
    if let Some(FormCmd::Status) = a.command {
        let list = form::status(&store, &config.organization).await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&list)?);
            return Ok(());
        }
        for s in &list {
            match s.state.as_str() {
                "not_filed" => println!(
                    "{}: NOT FILED — file the form (mamori form --contract {} --mark-filed)",
                    s.contract, s.contract
                ),
                "changed" => {
                    println!(
                        "{}: CHANGED since filing v{} on {} — re-notification (再度の届出) is due:",
                        s.contract,
                        s.filed_version.unwrap_or(0),
                        s.filed_at.as_deref().unwrap_or("?")
                    );
                    for d in &s.differences {
                        println!("    {d}");
                    }
                }
                _ => println!(
                    "{}: current (filed v{})",
                    s.contract,
                    s.filed_version.unwrap_or(0)
                ),
            }
        }
        return Ok(());
    }
    let contract = a.contract.context("--contract is required")?;
    let date = match a.date {
        Some(d) => chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d")
            .with_context(|| format!("--date `{d}` is not YYYY-MM-DD"))?
            .to_string(),
        None => chrono::Utc::now().date_naive().to_string(),
    };
    let f = form::build(&store, &config.organization, &contract, &date).await?;
    let text = match a.format.as_str() {
        "md" => form::markdown(&f),
        "html" => form::html(&f),
        "json" => serde_json::to_string_pretty(&f)? + "\n",
        other => bail!("--format `{other}`: use md, html or json"),
    };
    emit(a.out.as_deref(), &text)?;
    if a.mark_filed {
        let actor = std::env::var("MAMORI_ACTOR")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "admin".into());
        let v = store
            .file_form(
                &contract,
                &f.content().to_string(),
                &f.content_sha256(),
                &actor,
            )
            .await?;
        eprintln!("recorded as filed: {contract} form version {v}");
    }
    Ok(())
}
