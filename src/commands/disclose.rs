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
            println!("ok: {} matches the log ({} records)", file.display(), o.records);
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
    let generated_at = a.generated_at.unwrap_or_else(|| chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let q = Query { contract, deliverable: a.deliverable, also, only: None, lang, generated_at };
    let d = disclose::build(&store, &q).await?;
    emit(a.out.as_deref(), &render::render(&d, format)?)
}

async fn scanned_ids(
    _config: &Config,
    _store: &Store,
    _contract: &str,
    _files: &[std::path::PathBuf],
) -> anyhow::Result<BTreeSet<String>> {
    bail!("--scan is not available in this build")
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
                "not_filed" => println!("{}: NOT FILED — file the form (mamori form --contract {} --mark-filed)", s.contract, s.contract),
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
                _ => println!("{}: current (filed v{})", s.contract, s.filed_version.unwrap_or(0)),
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
        let actor = std::env::var("MAMORI_ACTOR").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "admin".into());
        let v = store.file_form(&contract, &f.content().to_string(), &f.content_sha256(), &actor).await?;
        eprintln!("recorded as filed: {contract} form version {v}");
    }
    Ok(())
}
