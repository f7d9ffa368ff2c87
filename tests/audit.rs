//! The log as evidence: tampering of every kind is caught, bodies are encrypted at rest, closed
//! contracts are shredded, retention deletes bodies, and several writers share one chain.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::*;
use mamori::audit::{chain, checkpoint, verify};
use mamori::store::LogRecord;
use serde_json::json;
use sqlx::Connection;

async fn raw(app: &TestApp) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(&app.db.url).await.unwrap()
}

/// Another writer (an admin command, another instance) holding the log's write lock: on SQLite
/// the database's, on PostgreSQL the chain head's row. Rolled back by the caller.
async fn hold_log_lock(app: &TestApp) -> sqlx::AnyConnection {
    let mut other = raw(app).await;
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query("UPDATE chain_head SET updated_at = updated_at WHERE id = 1")
        .execute(&mut other)
        .await
        .unwrap();
    other
}

/// Every answer in `ids` was acknowledged with its record committed to the journal.
fn assert_in_journal(app: &TestApp, ids: &[String]) {
    for id in ids {
        assert!(
            app.committed_in_journal(id),
            "{id} was acknowledged with its record nowhere"
        );
    }
}

/// Commits `n` answers together while the database is held and checks each was acknowledged
/// within `within` (far below the writer's 5 s wait for the lock), from the journal.
async fn committed_by_journal_while_held(
    app: &TestApp,
    tag: &str,
    n: usize,
    within: std::time::Duration,
) -> Vec<String> {
    let sent = std::time::Instant::now();
    let (ids, acks) = commit_together(app, tag, n).await;
    assert!(acks.iter().all(|a| *a), "{acks:?}");
    assert!(
        sent.elapsed() < within,
        "answers `{tag}` waited {:?} for the database",
        sent.elapsed()
    );
    assert_in_journal(app, &ids);
    ids
}

/// An app with `n` served requests in its log.
async fn app_with_log(n: usize) -> TestApp {
    let app = spawn_app().await;
    for i in 0..n {
        let (s, _, _) = app.call("/v1/chat/completions", &json!({"model": "gpt-test", "messages": [{"role": "user", "content": format!("依頼{i}: 極秘の見積額")}]})).await;
        assert_eq!(s, 200);
    }
    app.wait_for_records(n as i64).await;
    app
}

/// The checkpoints written outside the database. The writer signs one right after the insert that
/// completes its batch, so a reader that saw the records may still be ahead of the file.
async fn outside_checkpoints(app: &TestApp) -> Vec<mamori::store::Checkpoint> {
    let path = app.db.audit().checkpoint_file;
    let written = common::eventually(|| {
        let path = path.clone();
        async move { checkpoint::read_file(&path).is_ok_and(|f| !f.is_empty()) }
    })
    .await;
    assert!(written, "checkpoints are also written outside the database");
    checkpoint::read_file(&path).unwrap()
}

async fn check(app: &TestApp, external: &[mamori::store::Checkpoint]) -> verify::Report {
    let public = mamori::audit::load_keys(&app.db.audit())
        .unwrap()
        .signing
        .verifying_key();
    verify::verify(&app.store, &public, external, Some(&app.gw.log.data_keys))
        .await
        .unwrap()
}

/// A served request's record with no bodies, for committing straight to the log writer.
fn rec(id: &str) -> LogRecord {
    LogRecord {
        request_id: id.into(),
        at: mamori::store::now_text(),
        endpoint: "chat.completions".into(),
        outcome: "ok".into(),
        http_status: 200,
        redactions: "{}".into(),
        ..Default::default()
    }
}

/// The SQLite database file, when the suite runs on SQLite.
fn sqlite_file(app: &TestApp) -> Option<String> {
    app.db
        .url
        .strip_prefix("sqlite://")
        .map(|p| p.split('?').next().unwrap_or(p).to_string())
}

/// Every body file under the SQLite database's body folder.
fn body_files(db: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(format!("{db}-bodies"))];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                dirs.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

/// What `audit verify` fails with (as opposed to a problem it reports).
async fn verify_error(app: &TestApp) -> anyhow::Error {
    let public = mamori::audit::load_keys(&app.db.audit())
        .unwrap()
        .signing
        .verifying_key();
    verify::verify(&app.store, &public, &[], Some(&app.gw.log.data_keys))
        .await
        .unwrap_err()
}

async fn problem(app: &TestApp) -> String {
    let r = check(app, &[]).await;
    match r.problem {
        Some(p) => p,
        None => panic!("tampering went unnoticed: {} records verified", r.records),
    }
}

#[tokio::test]
async fn an_untouched_log_verifies_with_its_checkpoints_and_bodies() {
    let app = app_with_log(12).await;
    let file = outside_checkpoints(&app).await;
    let r = check(&app, &file).await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.records, 12);
    assert!(r.checkpoints_checked >= 1, "{r:?}");
    assert_eq!(r.bodies_checked, 24);
}

#[tokio::test]
async fn a_changed_record_is_named() {
    let app = app_with_log(6).await;
    sqlx::query("UPDATE log_records SET model = 'gpt-other' WHERE seq = 3")
        .execute(&mut raw(&app).await)
        .await
        .unwrap();
    let p = problem(&app).await;
    assert!(p.contains("seq 3") && p.contains("changed"), "{p}");
}

#[tokio::test]
async fn a_removed_record_is_named() {
    let app = app_with_log(6).await;
    sqlx::query("DELETE FROM log_records WHERE seq = 3")
        .execute(&mut raw(&app).await)
        .await
        .unwrap();
    let p = problem(&app).await;
    assert!(p.contains("seq 3") && p.contains("removed"), "{p}");
}

#[tokio::test]
async fn an_inserted_record_is_caught() {
    let app = app_with_log(6).await;
    let mut c = raw(&app).await;
    // Make room at seq 3 and copy another record there, as a forger would.
    sqlx::query("UPDATE log_records SET seq = seq + 100 WHERE seq >= 3")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("UPDATE log_records SET seq = seq - 99 WHERE seq >= 103")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("INSERT INTO log_records (seq, request_id, at, endpoint, streamed, outcome, http_status, latency_us, redactions, prev_hash, record_hash) \
                 SELECT 3, 'req_forged', at, endpoint, streamed, outcome, http_status, latency_us, redactions, prev_hash, record_hash FROM log_records WHERE seq = 4")
        .execute(&mut c)
        .await
        .unwrap();
    let p = problem(&app).await;
    assert!(p.contains("seq 3") || p.contains("seq 4"), "{p}");
}

#[tokio::test]
async fn reordered_records_are_caught() {
    let app = app_with_log(6).await;
    let mut c = raw(&app).await;
    sqlx::query("UPDATE log_records SET seq = 100 WHERE seq = 2")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("UPDATE log_records SET seq = 2 WHERE seq = 3")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("UPDATE log_records SET seq = 3 WHERE seq = 100")
        .execute(&mut c)
        .await
        .unwrap();
    let p = problem(&app).await;
    assert!(p.contains("seq 2"), "{p}");
}

#[tokio::test]
async fn removing_the_newest_records_is_caught_by_the_head_and_by_checkpoints() {
    let app = app_with_log(8).await;
    let mut c = raw(&app).await;
    sqlx::query("DELETE FROM log_records WHERE seq > 6")
        .execute(&mut c)
        .await
        .unwrap();
    let p = problem(&app).await;
    assert!(p.contains("seq 6") || p.contains("removed"), "{p}");
    // Also moving the head back: the signed checkpoint past the end still tells.
    let last = app.store.log_page(5, 1).await.unwrap().remove(0);
    sqlx::query("UPDATE chain_head SET seq = 6, record_hash = $1")
        .bind(&last.record_hash)
        .execute(&mut c)
        .await
        .unwrap();
    let cps = app.store.checkpoints().await.unwrap();
    if cps.iter().any(|cp| cp.seq > 6) {
        let p = problem(&app).await;
        assert!(p.contains("checkpoint"), "{p}");
    }
}

/// Rewrites records from `from` on with a consistent chain, as someone with write access to the
/// database (but not the signing key) could.
async fn forge_suffix(app: &TestApp, from: i64) {
    let mut c = raw(app).await;
    let mut records: Vec<LogRecord> = app.store.log_page(0, 1000).await.unwrap();
    let mut prev = chain::GENESIS.to_string();
    for r in records.iter_mut() {
        if r.seq == from {
            r.model = Some("gpt-forged".into());
            r.deliverable = Some("改ざん".into());
        }
        if r.seq >= from {
            r.prev_hash = prev.clone();
            r.record_hash = chain::record_hash(r.seq, &prev, r);
            sqlx::query("UPDATE log_records SET model = $1, deliverable = $2, prev_hash = $3, record_hash = $4 WHERE seq = $5")
                .bind(&r.model)
                .bind(&r.deliverable)
                .bind(&r.prev_hash)
                .bind(&r.record_hash)
                .bind(r.seq)
                .execute(&mut c)
                .await
                .unwrap();
        }
        prev = r.record_hash.clone();
    }
    let head = records.last().unwrap();
    sqlx::query("UPDATE chain_head SET seq = $1, record_hash = $2")
        .bind(head.seq)
        .bind(&head.record_hash)
        .execute(&mut c)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_forged_consistent_suffix_is_caught_by_signed_checkpoints_even_outside_the_database() {
    let app = app_with_log(12).await;
    forge_suffix(&app, 2).await;
    let p = problem(&app).await;
    assert!(p.contains("checkpoint"), "{p}");
    // The forger deletes the checkpoints in the database too; the auditor's copy still tells.
    sqlx::query("DELETE FROM checkpoints")
        .execute(&mut raw(&app).await)
        .await
        .unwrap();
    assert!(
        check(&app, &[]).await.ok(),
        "without any checkpoint a consistent rewrite cannot be seen (expected)"
    );
    let outside = outside_checkpoints(&app).await;
    let r = check(&app, &outside).await;
    let p = r
        .problem
        .expect("the external checkpoints must catch the rewrite");
    assert!(p.contains("checkpoint"), "{p}");
}

#[tokio::test]
async fn forged_checkpoints_are_refused() {
    let app = app_with_log(6).await;
    forge_suffix(&app, 1).await;
    let (seq, hash) = app.store.chain_head().await.unwrap();
    let forger = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let fake = checkpoint::sign(&forger, seq, &hash, "2026-11-26T00:00:00Z");
    sqlx::query("DELETE FROM checkpoints")
        .execute(&mut raw(&app).await)
        .await
        .unwrap();
    app.store.insert_checkpoint(&fake).await.unwrap();
    let p = problem(&app).await;
    assert!(p.contains("no valid signature"), "{p}");
}

#[tokio::test]
async fn a_swapped_body_is_caught() {
    let app = app_with_log(4).await;
    let mut c = raw(&app).await;
    if let Some(_db) = sqlite_file(&app) {
        // Bodies are in files: point record 3 at record 2's.
        sqlx::query(
            "UPDATE log_records SET body_ref = (SELECT body_ref FROM log_records WHERE seq = 2) WHERE seq = 3",
        )
        .execute(&mut c)
        .await
        .unwrap();
    } else {
        let other: Vec<u8> = sqlx::Row::get(
            &sqlx::query("SELECT output_body FROM log_records WHERE seq = 2")
                .fetch_one(&mut c)
                .await
                .unwrap(),
            0,
        );
        sqlx::query("UPDATE log_records SET output_body = $1 WHERE seq = 3")
            .bind(other)
            .execute(&mut c)
            .await
            .unwrap();
    }
    let err = verify_error(&app).await;
    assert!(format!("{err:#}").contains("seq 3"), "{err:#}");
}

#[tokio::test]
async fn the_database_alone_reveals_no_prompt_or_output() {
    let app = app_with_log(3).await;
    if !app.db.url.starts_with("sqlite://") {
        return; // The file check needs the SQLite file; the sealing itself is tested on both.
    }
    let path = app.db.url.trim_start_matches("sqlite://").to_string();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
    let files = body_files(&path);
    assert!(
        !files.is_empty(),
        "the sealed bodies are beside the database"
    );
    for f in files {
        bytes.extend(std::fs::read(f).unwrap());
    }
    for needle in ["極秘の見積額", "受け取りました"] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "`{needle}` is readable in the database file"
        );
    }
}

/// SQLite keeps sealed bodies in files beside the database, not in the table; a body file
/// that is cut short or removed is named by `audit verify`, never read as "no body".
#[tokio::test]
async fn lost_body_files_are_named_by_verify() {
    let app = app_with_log(3).await;
    let Some(db) = sqlite_file(&app) else {
        return; // PostgreSQL keeps bodies in the row (tested by the swaps above).
    };
    let inline: i64 = sqlx::Row::get(
        &sqlx::query("SELECT COUNT(*) FROM log_records WHERE request_body IS NOT NULL OR output_body IS NOT NULL OR body_ref IS NULL")
            .fetch_one(&mut raw(&app).await)
            .await
            .unwrap(),
        0,
    );
    assert_eq!(inline, 0, "every body is in a file, none in the table");
    let files = body_files(&db);
    assert_eq!(files.len(), 1, "one file per contract and day: {files:?}");
    let len = std::fs::metadata(&files[0]).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&files[0])
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let err = verify_error(&app).await;
    assert!(
        format!("{err:#}").contains("seq 3") && format!("{err:#}").contains("missing"),
        "{err:#}"
    );
    std::fs::remove_file(&files[0]).unwrap();
    let err = verify_error(&app).await;
    assert!(format!("{err:#}").contains("seq 1"), "{err:#}");
}

#[tokio::test]
async fn closing_a_contract_shreds_its_bodies_and_the_chain_still_verifies() {
    let app = app_with_log(5).await;
    let ids: Vec<String> = app
        .store
        .log_page(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    app.store.close_contract("c1").await.unwrap();
    app.gw.log.data_keys.forget("c1");
    let fresh = mamori::audit::DataKeys::new(
        app.store.clone(),
        mamori::audit::load_keys(&app.db.audit()).unwrap().master,
    );
    for id in &ids {
        let r = app.store.log_record(id).await.unwrap().unwrap();
        assert_eq!(r.bodies_deleted.as_deref(), Some("shredded"));
        assert!(r.output_sha256.is_some(), "hashes remain for disclosures");
        assert!(fresh.open_body(&r, "output").await.unwrap().is_none());
    }
    let dk = app.store.data_key("c1").await.unwrap().unwrap();
    assert!(dk.wrapped.is_none() && dk.destroyed_at.is_some());
    if let Some(db) = sqlite_file(&app) {
        assert!(
            body_files(&db).is_empty(),
            "the contract's body files are deleted"
        );
    }
    let r = check(&app, &[]).await;
    assert!(r.ok(), "{r:?}");
}

#[tokio::test]
async fn retention_deletes_old_bodies_only() {
    let app = spawn_app().await;
    app.store
        .create_contract(&mamori::store::NewContract {
            id: "short".into(),
            title: "t".into(),
            client: "c".into(),
            retention_days: Some(30),
            ..Default::default()
        })
        .await
        .unwrap();
    let rec = |id: &str, at: &str| LogRecord {
        at: at.into(),
        contract_id: Some("short".into()),
        request_body: Some(b"{\"q\":1}".to_vec()),
        output_body: Some(b"{\"a\":1}".to_vec()),
        ..rec(id)
    };
    assert!(
        app.gw
            .log
            .commit(rec("old", "2020-01-01T00:00:00.000000Z"))
            .await
    );
    assert!(
        app.gw
            .log
            .commit(rec("new", &mamori::store::now_text()))
            .await
    );
    // Two records on the retention cutoff's own day, one each side of the cutoff: that day's
    // file stays, with the expired one's bodies overwritten.
    let cutoff = chrono::Utc::now() - chrono::Duration::days(30);
    let day = cutoff.format("%Y-%m-%d").to_string();
    let early = format!("{day}T00:00:00.000000Z");
    let late = (cutoff + chrono::Duration::seconds(60))
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    let same_day = late.starts_with(&day);
    assert!(app.gw.log.commit(rec("cutoff-early", &early)).await);
    assert!(app.gw.log.commit(rec("cutoff-late", &late)).await);
    // The gateway's own upkeep task may get there first; either way the old bodies go.
    mamori::audit::apply_retention(&app.store).await.unwrap();
    let old = app.store.log_record("old").await.unwrap().unwrap();
    assert_eq!(old.bodies_deleted.as_deref(), Some("retention"));
    assert!(old.output_body.is_none() && old.output_sha256.is_some());
    let (_, _, out) = app.record("new").await;
    assert_eq!(out.unwrap(), json!({"a": 1}));
    assert!(check(&app, &[]).await.ok());
    if let Some(db) = sqlite_file(&app) {
        let days: Vec<String> = body_files(&db)
            .iter()
            .filter_map(|f| Some(f.file_name()?.to_str()?.to_string()))
            .collect();
        assert!(
            !days.iter().any(|d| d.starts_with("2020-01-01")),
            "the expired day's body file is deleted: {days:?}"
        );
        assert!(days.contains(&format!("{day}.bodies")), "{days:?}");
        if same_day {
            // The expired record's bytes are zeros now; the other's still open.
            let early = app.store.log_record("cutoff-early").await.unwrap().unwrap();
            assert_eq!(early.bodies_deleted.as_deref(), Some("retention"));
            let late = app.store.log_record("cutoff-late").await.unwrap().unwrap();
            assert!(late.output_body.is_some());
            let file = body_files(&db)
                .into_iter()
                .find(|f| f.ends_with(format!("{day}.bodies")))
                .unwrap();
            let bytes = std::fs::read(file).unwrap();
            let sealed_len: usize = [&late.request_body, &late.output_body]
                .iter()
                .map(|b| b.as_ref().map_or(0, Vec::len))
                .sum();
            assert_eq!(
                bytes.len(),
                2 * sealed_len,
                "both records' bodies are in the file"
            );
            assert!(
                bytes[..sealed_len].iter().all(|b| *b == 0),
                "the expired bodies are overwritten"
            );
            assert!(bytes[sealed_len..].iter().any(|b| *b != 0));
        }
    }
}

#[tokio::test]
async fn two_gateways_on_one_database_keep_one_chain() {
    let app = spawn_app().await;
    // A second instance on the same database, with the same keys.
    let config = mamori::config::Config {
        database_url: app.db.url.clone(),
        refresh_interval: std::time::Duration::from_millis(100),
        audit: app.db.audit(),
        ..Default::default()
    };
    let gw2 = mamori::gateway::Gateway::start(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr2 = format!("http://{}", listener.local_addr().unwrap());
    let router = mamori::http::router(gw2);
    tokio::spawn(mamori::http::serve(
        listener,
        router,
        std::future::pending(),
    ));
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let base = if worker % 2 == 0 {
            app.addr.clone()
        } else {
            addr2.clone()
        };
        let key = app.key.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut ids = Vec::new();
            for i in 0..25 {
                let r = http
                    .post(format!("{base}/v1/chat/completions"))
                    .bearer_auth(&key)
                    .json(&json!({"model": "gpt-test", "messages": [{"role": "user", "content": format!("w{worker} r{i}")}]}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                ids.push(r.headers()["x-mamori-request-id"].to_str().unwrap().to_string());
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    assert_eq!(all.len(), 400);
    app.wait_for_records(400).await;
    let records = app.store.log_page(0, 10_000).await.unwrap();
    assert_eq!(records.len(), 400, "records lost or duplicated");
    let seqs: Vec<i64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=400).collect::<Vec<_>>());
    for id in &all {
        assert!(records.iter().any(|r| &r.request_id == id), "{id} missing");
    }
    let r = check(&app, &[]).await;
    assert!(r.ok(), "{r:?}");
}

#[tokio::test]
async fn one_bad_record_does_not_take_the_log_down() {
    let app = spawn_app().await;
    assert!(app.gw.log.commit(rec("dup")).await);
    // Sent together, so they share a batch: the duplicate fails alone.
    let (a, b) = tokio::join!(
        app.gw.log.commit(rec("dup")),
        app.gw.log.commit(rec("fine"))
    );
    assert!(!a, "a duplicate request id must not be written twice");
    assert!(b, "a good record in the same batch must still be written");
    assert!(app.gw.log.is_healthy());
    // Alone in its batch, a duplicate is still not a sign that the log is down.
    assert!(!app.gw.log.commit(rec("dup")).await);
    assert!(app.gw.log.is_healthy());
    assert!(check(&app, &[]).await.ok());
}

#[tokio::test]
async fn a_writer_outside_the_gateway_delays_records_without_stalling_the_gateway() {
    let app = spawn_app().await;
    assert!(app.gw.log.commit(rec("before")).await);
    // Another connection (an admin command, another process) holds the write lock.
    let mut other = raw(&app).await;
    let begin = if app.db.url.starts_with("sqlite") {
        "BEGIN IMMEDIATE"
    } else {
        "BEGIN"
    };
    sqlx::query(begin).execute(&mut other).await.unwrap();
    sqlx::query("UPDATE chain_head SET updated_at = updated_at WHERE id = 1")
        .execute(&mut other)
        .await
        .unwrap();
    let gw = std::sync::Arc::clone(&app.gw);
    let pending = tokio::spawn(async move { gw.log.commit(rec("during")).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !pending.is_finished(),
        "the record cannot land while the lock is held"
    );
    // Meanwhile the gateway still answers.
    let r = app
        .http
        .get(format!("{}/healthz", app.addr))
        .timeout(std::time::Duration::from_secs(2))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    assert!(
        pending.await.unwrap(),
        "the record lands once the lock is free"
    );
    assert!(app.gw.log.is_healthy());
    assert!(check(&app, &[]).await.ok());
}

/// The record the upkeep's recovery writes for `id`, waited for (it runs every 500 ms in tests).
async fn recovered(app: &TestApp, id: &str) -> LogRecord {
    for _ in 0..100 {
        if let Some(r) = app.store.log_record(id).await.unwrap() {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{id} was never recovered");
}

/// An instance killed after acknowledging an answer (its record committed to the journal) but
/// before storing it: recovery stores the record as it was committed, bodies included, instead
/// of recording the request as interrupted.
#[tokio::test]
async fn a_record_committed_to_the_journal_but_never_stored_is_recovered_whole() {
    use mamori::audit::journal::{committed_entry, Journal};
    use sha2::Digest;
    let app = spawn_app().await;
    let audit = app.db.audit();
    let dead = Journal::open(
        &audit.journal_dir,
        &mamori::audit::journal_tag(&app.db.url),
        "killed-instance",
        false,
    )
    .unwrap();
    let answer = br#"{"choices":[{"message":{"content":"committed answer"}}]}"#;
    let id = "req_committed_only";
    let key = app.gw.log.data_keys.get("c1", true).await.unwrap().unwrap();
    let mut r = LogRecord {
        contract_id: Some("c1".into()),
        outcome: "ok".into(),
        http_status: 200,
        output_sha256: Some(hex::encode(sha2::Sha256::digest(answer))),
        ..rec(id)
    };
    dead.note(&r).unwrap();
    r.output_body = Some(key.seal(answer, format!("{id}/output").as_bytes()).unwrap());
    r.sealed = true;
    dead.commit(vec![(id.to_string(), committed_entry(&r).unwrap())])
        .unwrap();
    let noted_only = LogRecord {
        contract_id: Some("c1".into()),
        ..rec("req_noted_only")
    };
    dead.note(&noted_only).unwrap();
    drop(dead); // the instance dies: its segment is unlocked
    assert_eq!(
        recovered(&app, "req_noted_only").await.outcome,
        "interrupted"
    );
    let (stored, _, out) = app.record(id).await;
    assert_eq!(
        stored.outcome, "ok",
        "a committed record is not interrupted"
    );
    assert_eq!(stored.output_sha256, r.output_sha256);
    assert_eq!(
        out.unwrap()["choices"][0]["message"]["content"],
        "committed answer"
    );
    assert!(check(&app, &[]).await.ok());
    // The segment is deleted after its records are stored, so they can show first.
    let segments = || {
        std::fs::read_dir(&audit.journal_dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("killed-instance"))
            .count()
    };
    assert!(
        eventually(|| std::future::ready(segments() == 0)).await,
        "the recovered segment is deleted"
    );
}

#[tokio::test]
async fn requests_noted_in_the_database_by_an_older_version_are_recovered() {
    let app = spawn_app().await;
    // What a version before the request journal left behind when it crashed mid-request.
    let note = LogRecord {
        contract_id: Some("c1".into()),
        request_sha256: Some("ab".repeat(32)),
        ..rec("req_legacy")
    };
    let mut conn = raw(&app).await;
    sqlx::query("INSERT INTO pending_requests (request_id, instance_id, record, at) VALUES ($1, $2, $3, $4)")
        .bind("req_legacy")
        .bind("gone-instance")
        .bind(serde_json::to_string(&note).unwrap())
        .bind("2026-01-01T00:00:00.000000Z")
        .execute(&mut conn)
        .await
        .unwrap();
    let r = recovered(&app, "req_legacy").await;
    assert_eq!(r.outcome, "interrupted");
    assert_eq!(r.request_sha256, note.request_sha256);
    // The row is deleted after the record commits, so the record can show first.
    let app = &app;
    let gone = eventually(|| async move {
        let mut c = raw(app).await;
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pending_requests")
            .fetch_one(&mut c)
            .await
            .unwrap();
        left == 0
    })
    .await;
    assert!(gone, "the recovered row is deleted");
    assert!(check(app, &[]).await.ok());
}

/// Databases written before bodies moved to files keep them in the row: those still read and
/// verify.
#[tokio::test]
async fn bodies_kept_in_the_row_by_earlier_versions_still_read() {
    let app = app_with_log(2).await;
    let Some(db) = sqlite_file(&app) else {
        return; // PostgreSQL always keeps them in the row.
    };
    let mut c = raw(&app).await;
    for r in app.store.log_page(0, 10).await.unwrap() {
        sqlx::query("UPDATE log_records SET request_body = $1, output_body = $2, body_ref = NULL WHERE seq = $3")
            .bind(r.request_body.unwrap())
            .bind(r.output_body.unwrap())
            .bind(r.seq)
            .execute(&mut c)
            .await
            .unwrap();
    }
    for f in body_files(&db) {
        std::fs::remove_file(f).unwrap();
    }
    let r = check(&app, &[]).await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.bodies_checked, 4);
}

/// A request in flight when its contract closes commits with the data key the gateway still
/// had cached; its body file is deleted by the upkeep, and the log still verifies throughout.
#[tokio::test]
async fn a_record_committed_during_a_contract_close_is_shredded_too() {
    let app = app_with_log(1).await;
    app.store.close_contract("c1").await.unwrap();
    let late = |id: &str| LogRecord {
        contract_id: Some("c1".into()),
        request_body: Some(b"{\"q\":1}".to_vec()),
        output_body: Some(b"{\"a\":1}".to_vec()),
        ..rec(id)
    };
    assert!(
        app.gw.log.commit(late("late")).await,
        "sealed with the cached key"
    );
    assert!(check(&app, &[]).await.ok());
    let db = sqlite_file(&app);
    if let Some(db) = &db {
        assert!(
            !body_files(db).is_empty(),
            "the late record's bodies went to a file"
        );
    }
    // What the upkeep does for a closed contract.
    app.store.shred_body_files("c1").await.unwrap();
    if let Some(db) = &db {
        assert!(body_files(db).is_empty(), "the upkeep deletes them");
        let r = app.store.log_record("late").await.unwrap().unwrap();
        assert_eq!(r.bodies_deleted.as_deref(), Some("shredded"));
        // One lost outside mamori before the upkeep came reads as what it is, shredded.
        assert!(app.gw.log.commit(late("later")).await);
        for f in body_files(db) {
            std::fs::remove_file(f).unwrap();
        }
        let r = app.store.log_record("later").await.unwrap().unwrap();
        assert_eq!(r.bodies_deleted.as_deref(), Some("shredded"));
    }
    // Wherever its bodies are, nothing can open them: the data key is destroyed.
    let fresh = mamori::audit::DataKeys::new(
        app.store.clone(),
        mamori::audit::load_keys(&app.db.audit()).unwrap().master,
    );
    let r = app.store.log_record("late").await.unwrap().unwrap();
    assert!(fresh.open_body(&r, "output").await.unwrap().is_none());
    assert!(check(&app, &[]).await.ok());
}

#[tokio::test]
async fn answers_do_not_wait_for_a_database_that_another_writer_holds() {
    let app = app_with_log(1).await;
    let mut other = hold_log_lock(&app).await;
    let body =
        json!({"model": "gpt-test", "messages": [{"role": "user", "content": "ロック中の依頼"}]});
    let started = std::time::Instant::now();
    for i in 0..5 {
        let sent = std::time::Instant::now();
        let (s, _, _) = app.call("/v1/chat/completions", &body).await;
        assert_eq!(s, 200, "request {i} while the database is held");
        // Far below the writer's 5 s wait for the lock: the answer came from the journal.
        assert!(
            sent.elapsed() < std::time::Duration::from_secs(2),
            "request {i} waited {:?} for the database",
            sent.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    // Nor do answers that arrive together (on SQLite committed by their insert when it can
    // be made at once): held up by the lock, they are committed to the journal instead.
    committed_by_journal_while_held(&app, "held", 8, std::time::Duration::from_secs(2)).await;
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    // Once the lock is gone, every record reaches the database, in one verified chain.
    app.wait_for_records(14).await;
    assert!(app.gw.log.flush().await);
    let report = check(&app, &[]).await;
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.records, 14, "{report:?}");
}

/// Answers queued for their insert while the storing task had just begun a batch do not wait
/// behind that batch when it stalls on another writer's lock: past a few milliseconds they are
/// committed to the journal instead, and stored after it.
#[tokio::test]
async fn answers_queued_behind_a_stalled_batch_are_committed_to_the_journal() {
    let app = spawn_app().await;
    // The contract's data key, made before the lock is taken.
    app.gw.log.data_keys.get("c1", true).await.unwrap().unwrap();
    let mut other = hold_log_lock(&app).await;
    // One answer, committed to the journal; a flush makes the storing task insert it at once,
    // and that insert waits for the lock.
    let (lone, acks) = commit_together(&app, "lone", 1).await;
    assert_eq!(acks, [true]);
    let log = app.gw.log.clone();
    let flushed = tokio::spawn(async move { log.flush().await });
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    // A group arriving now finds a batch just begun, so is queued for its insert.
    let group =
        committed_by_journal_while_held(&app, "queued", 8, std::time::Duration::from_secs(1)).await;
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    assert!(flushed.await.unwrap(), "the stalled batch was not stored");
    assert!(app.gw.log.flush().await);
    for id in lone.iter().chain(&group) {
        assert_eq!(app.record(id).await.0.outcome, "ok");
    }
    let report = check(&app, &[]).await;
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.records, 9, "{report:?}");
}

/// Records that piled up behind a lock are stored in batches of a bounded size once it goes, in
/// order, and a flush waits for all of them.
#[tokio::test]
async fn a_backlog_is_stored_in_order_once_the_lock_goes() {
    let app = spawn_app().await;
    let mut other = hold_log_lock(&app).await;
    let ids: Vec<String> = (0..1300).map(|i| format!("req_backlog_{i:04}")).collect();
    for id in &ids {
        app.gw.log.submit(Box::new(rec(id)));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let log = app.gw.log.clone();
    let flushed = tokio::spawn(async move { log.flush().await });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    assert!(flushed.await.unwrap(), "the backlog was not stored");
    let mut seqs = Vec::new();
    for id in &ids {
        let r = app
            .store
            .log_record(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{id} was not stored"));
        seqs.push(r.seq);
    }
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "the backlog was stored out of order"
    );
    let report = check(&app, &[]).await;
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.records, 1300, "{report:?}");
}

/// Answers of `n` requests that arrive together, noted and then committed at once; whether
/// each was acknowledged as committed.
async fn commit_together(app: &TestApp, tag: &str, n: usize) -> (Vec<String>, Vec<bool>) {
    use mamori::audit::Plain;
    // Sealing must not wait for the database, so that every record reaches the writer before
    // it runs (this test runs on one thread): the contract's key is loaded first.
    app.gw.log.data_keys.get("c1", true).await.unwrap().unwrap();
    let ids: Vec<String> = (0..n).map(|i| format!("req_{tag}_{i}")).collect();
    let mut records = Vec::new();
    for id in &ids {
        let r = LogRecord {
            contract_id: Some("c1".into()),
            ..rec(id)
        };
        assert!(app.gw.log.begin(&r, true).await);
        records.push(r);
    }
    let acks = futures_util::future::join_all(records.into_iter().map(|r| {
        let plain = Plain {
            request: Some(bytes::Bytes::from(format!(
                "{{\"q\":\"{}\"}}",
                r.request_id
            ))),
            output: Some(bytes::Bytes::from_static(b"{\"a\":\"answer\"}")),
        };
        app.gw.log.commit_answer(Box::new(r), plain)
    }))
    .await;
    (ids, acks)
}

/// On SQLite, answers that arrive together are committed by their database insert: each is in
/// the database once acknowledged, and no sealed copy went to the journal first. If that insert
/// fails, they are committed to the journal after all, still delivered, and stored once the
/// database is back. (PostgreSQL always commits answers to the journal first.)
#[tokio::test]
async fn answers_that_arrive_together_are_committed_by_the_database_or_else_the_journal() {
    let app = spawn_app().await;
    let sqlite = sqlite_file(&app).is_some();
    let (ids, acks) = commit_together(&app, "together", 8).await;
    assert!(acks.iter().all(|a| *a), "{acks:?}");
    for id in &ids {
        let committed_line = app.committed_in_journal(id);
        if sqlite {
            assert!(
                app.store.log_record(id).await.unwrap().is_some(),
                "{id} was acknowledged before its insert"
            );
            assert!(!committed_line, "{id} was written to the journal too");
        } else {
            assert!(committed_line, "{id} has no committed line in the journal");
        }
    }

    // Another writer holds the lock of an idle store: the insert is not waited for, the group
    // is committed to the journal instead, and stored once the lock is gone.
    let mut conn = hold_log_lock(&app).await;
    let held =
        committed_by_journal_while_held(&app, "held", 8, std::time::Duration::from_secs(2)).await;
    sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
    for id in &held {
        assert_eq!(app.record(id).await.0.outcome, "ok");
    }

    // The insert fails: the same group is committed to the journal instead, and delivered.
    sqlx::query("ALTER TABLE log_records RENAME TO log_records_gone")
        .execute(&mut conn)
        .await
        .unwrap();
    let (late, acks) = commit_together(&app, "late", 8).await;
    assert!(acks.iter().all(|a| *a), "{acks:?}");
    assert_in_journal(&app, &late);
    for _ in 0..200 {
        if !app.gw.log.is_healthy() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        !app.gw.log.is_healthy(),
        "a failed insert did not declare the log down"
    );
    sqlx::query("ALTER TABLE log_records_gone RENAME TO log_records")
        .execute(&mut conn)
        .await
        .unwrap();
    for id in &late {
        let (stored, req, out) = app.record(id).await;
        assert_eq!(stored.outcome, "ok");
        assert_eq!(req.unwrap()["q"], id.as_str());
        assert_eq!(out.unwrap()["a"], "answer");
    }
    assert!(check(&app, &[]).await.ok());
}
