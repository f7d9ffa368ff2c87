//! The administrative verbs: provider, contract, staff, key, log, check.
use crate::cli::{ContractCmd, KeyCmd, LogCmd, ProviderCmd, StaffCmd, TermsAction};
use crate::config::Config;
use crate::policy::{keys, parse_date, Registration};
use crate::store::{
    now_text, ContractRow, KeyRow, LogFilter, NewContract, NewKey, RegisterOutcome, StaffRow, Store,
};
use anyhow::{bail, Context};
use chrono::NaiveDate;
use serde::Serialize;
use std::path::{Path, PathBuf};

fn actor() -> String {
    std::env::var("MAMORI_ACTOR")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "admin".to_string())
}

fn day(flag: &str, s: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .with_context(|| format!("{flag} `{s}` is not a date; write YYYY-MM-DD, e.g. 2026-11-01"))
}

fn date(flag: &str, s: &str) -> anyhow::Result<String> {
    day(flag, s).map(|d| d.format("%Y-%m-%d").to_string())
}

/// The date of a training, which has taken place by `today` (UTC).
fn training_date(flag: &str, s: &str, today: NaiveDate) -> anyhow::Result<String> {
    let d = day(flag, s)?;
    if d > today {
        bail!("{flag} {d} is in the future (today is {today}, UTC); record a training once it has taken place");
    }
    Ok(d.format("%Y-%m-%d").to_string())
}

/// A key's expiry date, not yet past on `today` (UTC): a key works through its expiry date.
fn expiry_date(s: &str, today: NaiveDate) -> anyhow::Result<String> {
    let d = day("--expires", s)?;
    if d < today {
        bail!("--expires {d} is already past (today is {today}, UTC), so the key would never work; give today or a later date (the key works through that day)");
    }
    Ok(d.format("%Y-%m-%d").to_string())
}

/// `--since` as the log stores times (RFC 3339 in UTC, microseconds), so that text
/// comparison in the database is time order. A bare date is midnight UTC.
fn since_utc(s: &str) -> anyhow::Result<String> {
    let t = match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        Ok(d) => d.and_time(chrono::NaiveTime::MIN).and_utc(),
        Err(_) => chrono::DateTime::parse_from_rfc3339(s)
            .with_context(|| format!("--since `{s}` is not a date or time; write YYYY-MM-DD (midnight UTC) or RFC 3339, e.g. 2026-11-01 or 2026-11-01T09:00:00+09:00"))?
            .with_timezone(&chrono::Utc),
    };
    Ok(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// A contract's state as the gateway sees it on `today` (UTC): `closed`, `ended` once its end
/// date has passed (it may be used through that day), else `active`.
fn contract_state(c: &ContractRow, today: NaiveDate) -> &str {
    if c.status != "active" {
        return &c.status;
    }
    match c.ends_on.as_deref().and_then(parse_date) {
        Some(end) if today > end => "ended",
        _ => "active",
    }
}

/// A key's state as the gateway sees it on `today` (UTC): `revoked`, `expired` once its expiry
/// date has passed (it may be used through that day), else `active`.
fn key_state(k: &KeyRow, today: NaiveDate) -> &'static str {
    if k.revoked_at.is_some() {
        return "revoked";
    }
    match k.expires_at.as_deref().and_then(parse_date) {
        Some(exp) if today > exp => "expired",
        _ => "active",
    }
}

/// Rows as JSON objects, each with its `state` added.
fn with_state<T: Serialize>(
    rows: &[T],
    state: impl Fn(&T) -> &str,
) -> anyhow::Result<Vec<serde_json::Value>> {
    rows.iter()
        .map(|r| {
            let mut v = serde_json::to_value(r)?;
            if let Some(m) = v.as_object_mut() {
                m.insert("state".into(), state(r).into());
            }
            Ok(v)
        })
        .collect()
}

fn id_ok(kind: &str, id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        bail!("{kind} id `{id}` must be 1–64 characters of letters, digits, -, _ and .");
    }
    Ok(())
}

fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("-")
}

pub fn check(config: &Path, files: &[PathBuf]) -> anyhow::Result<()> {
    let c = Config::load(config)?;
    println!(
        "ok: configuration {} (database {})",
        config.display(),
        crate::config::redact_url(&c.database_url)
    );
    check_master_key(&c.audit)?;
    let rules = crate::gateway::load_rules(&c)?;
    println!(
        "ok: redaction rules ({}): {}",
        c.redaction_dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| "built in".into()),
        rules.summary()
    );
    let dir = config.parent().unwrap_or(Path::new(".")).join("providers");
    let mut all: Vec<PathBuf> = files.to_vec();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        let mut found: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        found.sort();
        all.extend(found);
    }
    let mut bad = 0;
    let today = chrono::Utc::now().date_naive();
    for f in &all {
        match Registration::from_file(f) {
            Ok(r) => match r.unroutable_reason(today) {
                None => println!("ok: {} ({})", f.display(), r.id),
                Some(why) => println!(
                    "ok: {} ({}) — valid, but never routable: {why}",
                    f.display(),
                    r.id
                ),
            },
            Err(e) => {
                bad += 1;
                eprintln!("error: {e:#}");
            }
        }
    }
    if bad > 0 {
        bail!("{bad} registration file(s) are invalid");
    }
    Ok(())
}

/// The master key can be read (whether it opens the database's data keys, `serve` checks).
fn check_master_key(a: &crate::config::AuditConfig) -> anyhow::Result<()> {
    use crate::audit::crypto;
    let key = match std::env::var("MAMORI_MASTER_KEY") {
        Ok(v) if !v.trim().is_empty() => {
            Some(crypto::Key::from_base64(&v).context("MAMORI_MASTER_KEY")?)
        }
        _ if a.master_key_file.exists() => Some(crypto::read_key_file(&a.master_key_file)?),
        _ if a.create_keys => None,
        _ => bail!(
            "no master key: set MAMORI_MASTER_KEY or create {} with `mamori audit new-key {}`",
            a.master_key_file.display(),
            a.master_key_file.display()
        ),
    };
    match key {
        Some(k) => println!("ok: master key {}", k.id()),
        None => println!(
            "ok: no master key yet; `serve` creates {} on its first run (back it up then)",
            a.master_key_file.display()
        ),
    }
    for f in &a.previous_master_key_files {
        println!("ok: previous master key {}", crypto::read_key_file(f)?.id());
    }
    Ok(())
}

pub async fn provider(store: &Store, cmd: ProviderCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        ProviderCmd::Register { file } => {
            let reg = Registration::from_file(&file)?;
            let old = store
                .provider(&reg.id)
                .await?
                .map(|p| Registration::from_json(&p.registration))
                .transpose()?;
            let changes = reg.changes_from(old.as_ref())?;
            let outcome = store
                .register_provider(
                    &reg.id,
                    &reg.canonical_json()?,
                    &reg.content_sha256()?,
                    &changes,
                    &actor(),
                )
                .await?;
            if json {
                return print_json(
                    &serde_json::json!({"id": reg.id, "outcome": outcome, "changes": changes}),
                );
            }
            match outcome {
                RegisterOutcome::Created(v) => println!("registered {} (version {v})", reg.id),
                RegisterOutcome::Updated(v) => {
                    println!("updated {} to version {v}:", reg.id);
                    for c in &changes {
                        println!("  {c}");
                    }
                    println!("the notification form (届出書) may need to be filed again");
                }
                RegisterOutcome::Unchanged(v) => println!("{} unchanged (version {v})", reg.id),
            }
            if let Some(why) = reg.unroutable_reason(chrono::Utc::now().date_naive()) {
                println!("note: {why}");
            }
            Ok(())
        }
        ProviderCmd::List => {
            let list = store.providers().await?;
            if json {
                let v: Vec<_> = list
                    .iter()
                    .map(|p| {
                        let reg = serde_json::from_str::<serde_json::Value>(&p.registration).unwrap_or_default();
                        serde_json::json!({"id": p.id, "version": p.version, "suspended": p.suspended, "suspend_reason": p.suspend_reason, "registration": reg})
                    })
                    .collect();
                return print_json(&v);
            }
            let today = chrono::Utc::now().date_naive();
            for p in list {
                let reg = Registration::from_json(&p.registration)?;
                let state = if p.suspended {
                    format!("SUSPENDED ({})", opt(&p.suspend_reason))
                } else {
                    match reg.unroutable_reason(today) {
                        None => "routable".to_string(),
                        Some(_) => "NOT ROUTABLE".to_string(),
                    }
                };
                println!(
                    "{}\tv{}\t{}\t{}\t{}",
                    p.id,
                    p.version,
                    reg.api.as_str(),
                    reg.name,
                    state
                );
            }
            Ok(())
        }
        ProviderCmd::Show { id } => {
            let p = store
                .provider(&id)
                .await?
                .with_context(|| format!("no provider `{id}`; see `mamori provider list`"))?;
            let reg: serde_json::Value = serde_json::from_str(&p.registration)?;
            let v = serde_json::json!({"id": p.id, "version": p.version, "suspended": p.suspended, "suspend_reason": p.suspend_reason, "updated_at": p.updated_at, "registration": reg});
            print_json(&v)
        }
        ProviderCmd::History { id } => {
            let (versions, events) = store.provider_history(&id).await?;
            if versions.is_empty() {
                bail!("no provider `{id}`; see `mamori provider list`");
            }
            if json {
                return print_json(&serde_json::json!({"versions": versions, "events": events}));
            }
            for v in &versions {
                println!(
                    "version {} at {} by {} (sha256 {})",
                    v.version,
                    v.changed_at,
                    v.changed_by,
                    &v.content_sha256[..16]
                );
                for c in &v.changes {
                    println!("  {c}");
                }
            }
            for e in &events {
                println!(
                    "{} at {} by {}{}",
                    e.action,
                    e.at,
                    e.actor,
                    e.reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        ProviderCmd::Suspend { id, reason } => {
            if reason.trim().is_empty() {
                bail!("--reason must say why the provider is suspended");
            }
            if store
                .set_provider_suspended(&id, Some(&reason), &actor())
                .await?
            {
                println!(
                    "suspended {id}; running gateways stop routing to it within their refresh interval"
                );
            } else {
                let why = store
                    .provider(&id)
                    .await?
                    .and_then(|p| p.suspend_reason)
                    .unwrap_or_default();
                println!("{id} is already suspended ({why}); nothing changed (to give another reason, resume it and suspend it again)");
            }
            Ok(())
        }
        ProviderCmd::Resume { id } => {
            if store.set_provider_suspended(&id, None, &actor()).await? {
                println!("resumed {id}");
            } else {
                println!("{id} is not suspended; nothing changed");
            }
            Ok(())
        }
    }
}

pub async fn contract(store: &Store, cmd: ContractCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        ContractCmd::Create(c) => {
            id_ok("contract", &c.id)?;
            if let Some(list) = &c.providers {
                for p in list {
                    if store.provider(p).await?.is_none() {
                        bail!("--providers names `{p}`, which is not registered; register it first (`mamori provider register FILE`)");
                    }
                }
            }
            if let Some(n) = c.retention_days {
                if n < 1 {
                    bail!("--retention-days must be at least 1");
                }
            }
            let ends_on = c.ends.as_deref().map(|d| date("--ends", d)).transpose()?;
            let contract_date = c
                .contract_date
                .as_deref()
                .map(|d| date("--contract-date", d))
                .transpose()?;
            let subcontractors = c
                .subcontractors
                .iter()
                .map(|s| match s.split_once('=') {
                    Some((name, work)) if !name.trim().is_empty() && !work.trim().is_empty() => {
                        Ok(crate::store::Subcontractor {
                            name: name.trim().into(),
                            work: work.trim().into(),
                        })
                    }
                    _ => bail!(
                        "--subcontractor `{s}` must be NAME=WORK, e.g. \"株式会社例=データ入力\""
                    ),
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            store
                .create_contract(&NewContract {
                    id: c.id.clone(),
                    title: c.title,
                    client: c.client,
                    providers: c.providers,
                    japan_only: c.japan_only,
                    allow_non_text: c.allow_non_text,
                    ends_on,
                    retention_days: c.retention_days,
                    contract_date,
                    purposes: c
                        .purposes
                        .iter()
                        .map(|p| p.trim().to_string())
                        .filter(|p| !p.is_empty())
                        .collect(),
                    subcontractors,
                })
                .await?;
            println!("created contract {}", c.id);
            Ok(())
        }
        ContractCmd::List => {
            let list = store.contracts().await?;
            let today = chrono::Utc::now().date_naive();
            if json {
                return print_json(&with_state(&list, |c| contract_state(c, today))?);
            }
            for c in list {
                let state = contract_state(&c, today).to_string();
                let providers = c
                    .providers
                    .map(|p| p.join(","))
                    .unwrap_or_else(|| "any approved".into());
                println!(
                    "{}\t{}\t{}\t{}\tproviders: {}{}",
                    c.id,
                    state,
                    c.client,
                    c.title,
                    providers,
                    if c.japan_only { "\tjapan-only" } else { "" }
                );
            }
            Ok(())
        }
        ContractCmd::Show { id } => {
            let c = store
                .contract(&id)
                .await?
                .with_context(|| format!("no contract `{id}`; see `mamori contract list`"))?;
            print_json(&c)
        }
        ContractCmd::Terms { id, action } => terms(store, &id, "term", action, json).await,
        ContractCmd::Fields { id, action } => terms(store, &id, "field", action, json).await,
        ContractCmd::Close { id } => {
            let revoked = store.close_contract(&id).await?;
            println!("closed contract {id}; revoked {revoked} key(s)");
            Ok(())
        }
    }
}

/// A contract's redaction list. Terms are confidential themselves: only counts are printed
/// when changing them.
async fn terms(
    store: &Store,
    id: &str,
    kind: &str,
    action: TermsAction,
    json: bool,
) -> anyhow::Result<()> {
    match action {
        TermsAction::Add { terms } => {
            let (mut added, mut had) = (0, 0);
            for t in terms.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
                if store.add_term(id, kind, t).await? {
                    added += 1;
                } else {
                    had += 1;
                }
            }
            println!(
                "{id}: added {added} {kind}(s){}",
                if had > 0 {
                    format!(", {had} already listed")
                } else {
                    String::new()
                }
            );
        }
        TermsAction::Remove { terms } => {
            let mut removed = 0;
            for t in &terms {
                removed += u32::from(store.remove_term(id, kind, t.trim()).await?);
            }
            println!("{id}: removed {removed} {kind}(s)");
        }
        TermsAction::List => {
            let list = store.terms(id, kind).await?;
            if json {
                return print_json(&list);
            }
            for t in list {
                println!("{t}");
            }
        }
    }
    Ok(())
}

pub async fn staff(store: &Store, cmd: StaffCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        StaffCmd::Add {
            id,
            name,
            email,
            trained_on,
        } => {
            id_ok("staff", &id)?;
            let today = chrono::Utc::now().date_naive();
            let trained_on = trained_on
                .as_deref()
                .map(|d| training_date("--trained-on", d, today))
                .transpose()?;
            store
                .add_staff(&StaffRow {
                    id: id.clone(),
                    name,
                    email,
                    trained_on,
                    active: true,
                    created_at: now_text(),
                })
                .await?;
            println!("added staff {id}");
            Ok(())
        }
        StaffCmd::Train { id, on } => {
            let on = training_date("--on", &on, chrono::Utc::now().date_naive())?;
            store.train_staff(&id, &on).await?;
            println!("recorded training of {id} on {on}");
            Ok(())
        }
        StaffCmd::List => {
            let list = store.staff_list().await?;
            if json {
                return print_json(&list);
            }
            for s in list {
                println!("{}\t{}\ttrained: {}", s.id, s.name, opt(&s.trained_on));
            }
            Ok(())
        }
    }
}

pub async fn key(store: &Store, cmd: KeyCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        KeyCmd::Issue {
            staff,
            contract,
            expires,
            deliverable,
            purpose,
        } => {
            let expires_at = expires
                .as_deref()
                .map(|d| expiry_date(d, chrono::Utc::now().date_naive()))
                .transpose()?;
            let k = keys::generate();
            store
                .insert_key(&NewKey {
                    id: k.id.clone(),
                    key_hash: keys::hash(&k.secret),
                    staff_id: staff.clone(),
                    contract_id: contract.clone(),
                    deliverable,
                    purpose,
                    expires_at,
                })
                .await?;
            if json {
                return print_json(
                    &serde_json::json!({"key_id": k.id, "key": k.secret, "staff": staff, "contract": contract}),
                );
            }
            println!("key id: {}", k.id);
            println!("key:    {}", k.secret);
            eprintln!("this key is shown once and stored only as a hash: give it to {staff} now");
            Ok(())
        }
        KeyCmd::List => {
            let list = store.keys().await?;
            let today = chrono::Utc::now().date_naive();
            if json {
                return print_json(&with_state(&list, |k| key_state(k, today))?);
            }
            for k in list {
                let state = key_state(&k, today);
                println!(
                    "{}\t{}\t{}\t{}\texpires: {}",
                    k.id,
                    k.staff_id,
                    k.contract_id,
                    state,
                    opt(&k.expires_at)
                );
            }
            Ok(())
        }
        KeyCmd::Revoke { key_id } => {
            store.revoke_key(&key_id).await?;
            println!("revoked {key_id}; running gateways refuse it within their refresh interval");
            Ok(())
        }
    }
}

pub async fn log(store: &Store, config: &Config, cmd: LogCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        LogCmd::List {
            contract,
            deliverable,
            since,
            limit,
        } => {
            let since = since.map(|s| since_utc(&s)).transpose()?;
            let list = store
                .log_list(&LogFilter {
                    contract,
                    deliverable,
                    since,
                    limit,
                })
                .await?;
            if json {
                return print_json(&list);
            }
            for r in list {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}{}",
                    r.at,
                    r.request_id,
                    opt(&r.contract_id),
                    opt(&r.staff_id),
                    r.endpoint,
                    opt(&r.model),
                    r.outcome,
                    r.code.map(|c| format!(" ({c})")).unwrap_or_default()
                );
            }
            Ok(())
        }
        LogCmd::Show { request_id } => {
            let r = store
                .log_record(&request_id)
                .await?
                .with_context(|| format!("no log record `{request_id}`; see `mamori log list`"))?;
            let keys = crate::audit::load_keys(&config.audit)?;
            let dk = crate::audit::DataKeys::new(store.clone(), keys.master);
            let mut v = serde_json::to_value(&r)?;
            for part in ["request", "output"] {
                let shown = match dk.open_body(&r, part).await {
                    Ok(Some(b)) => {
                        serde_json::from_slice::<serde_json::Value>(&b).unwrap_or_else(|_| {
                            serde_json::Value::String(String::from_utf8_lossy(&b).into_owned())
                        })
                    }
                    Ok(None) => match &r.bodies_deleted {
                        Some(why) => serde_json::Value::String(format!("(deleted: {why})")),
                        None => serde_json::Value::Null,
                    },
                    Err(e) => serde_json::Value::String(format!("(cannot decrypt: {e})")),
                };
                v[format!("{part}_body")] = shown;
            }
            v["redactions"] = serde_json::from_str(&r.redactions).unwrap_or_default();
            print_json(&v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        super::day("test", s).unwrap()
    }

    fn contract(status: &str, ends_on: Option<&str>) -> ContractRow {
        ContractRow::sample("c", status, ends_on)
    }

    fn key(expires_at: Option<&str>, revoked: bool) -> KeyRow {
        KeyRow {
            id: "k".into(),
            key_hash: String::new(),
            staff_id: "s".into(),
            contract_id: "c".into(),
            deliverable: None,
            purpose: None,
            expires_at: expires_at.map(str::to_string),
            revoked_at: revoked.then(|| "2026-05-01T00:00:00Z".to_string()),
            created_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn training_dates_are_not_in_the_future_and_expiry_dates_not_past() {
        let today = day("2026-06-01");
        assert_eq!(
            training_date("--on", "2026-06-01", today).unwrap(),
            "2026-06-01"
        );
        assert_eq!(
            training_date("--on", "2026-5-31", today).unwrap(),
            "2026-05-31"
        );
        let err = training_date("--trained-on", "2026-06-02", today)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--trained-on 2026-06-02 is in the future") && err.contains("2026-06-01"),
            "{err}"
        );
        assert_eq!(expiry_date("2026-06-01", today).unwrap(), "2026-06-01");
        let err = expiry_date("2026-05-31", today).unwrap_err().to_string();
        assert!(
            err.contains("--expires 2026-05-31 is already past") && err.contains("later date"),
            "{err}"
        );
        assert!(expiry_date("soon", today)
            .unwrap_err()
            .to_string()
            .contains("YYYY-MM-DD"));
    }

    #[test]
    fn a_contract_past_its_end_date_is_ended_from_the_next_day() {
        let today = day("2026-06-01");
        assert_eq!(contract_state(&contract("active", None), today), "active");
        let last_day = contract("active", Some("2026-06-01"));
        assert_eq!(contract_state(&last_day, today), "active");
        assert_eq!(contract_state(&last_day, day("2026-06-02")), "ended");
        let closed = contract("closed", Some("2099-01-01"));
        assert_eq!(contract_state(&closed, today), "closed");
    }

    #[test]
    fn a_key_past_its_expiry_date_is_expired_from_the_next_day() {
        let today = day("2026-06-01");
        assert_eq!(key_state(&key(None, false), today), "active");
        assert_eq!(key_state(&key(Some("2026-06-01"), false), today), "active");
        assert_eq!(key_state(&key(Some("2026-05-31"), false), today), "expired");
        assert_eq!(key_state(&key(Some("2026-05-31"), true), today), "revoked");
    }
}
