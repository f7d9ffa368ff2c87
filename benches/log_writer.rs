//! Log writer throughput with encryption and chaining on: `cargo bench --bench log_writer`.
//! SQLite in a temp folder; PostgreSQL too when MAMORI_BENCH_DATABASE_URL is set
//! (e.g. postgres://postgres@127.0.0.1:5432/test — a fresh database is created in it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mamori::audit::{load_keys, LogWriter};
use mamori::config::AuditConfig;
use mamori::store::{LogRecord, NewContract, Store};
use std::sync::Arc;
use std::time::Instant;

const RECORDS: usize = 50_000;
const IN_FLIGHT: usize = 512;

fn record(i: usize, body: &Arc<Vec<u8>>, out: &Arc<Vec<u8>>) -> LogRecord {
    LogRecord {
        request_id: format!("req_bench_{i:08}"),
        at: mamori::store::now_text(),
        staff_id: Some("s".into()),
        key_id: Some("k".into()),
        contract_id: Some("c".into()),
        provider_id: Some("p".into()),
        provider_version: Some(1),
        model: Some("gpt-test".into()),
        endpoint: "chat.completions".into(),
        outcome: "ok".into(),
        http_status: 200,
        latency_us: 900,
        input_tokens: Some(1200),
        output_tokens: Some(300),
        redactions: "{}".into(),
        request_body: Some(body.as_ref().clone()),
        output_body: Some(out.as_ref().clone()),
        ..Default::default()
    }
}

async fn run(label: &str, url: &str, dir: &std::path::Path) {
    let store = Store::connect(url).await.unwrap();
    store
        .create_contract(&NewContract {
            id: "c".into(),
            title: "t".into(),
            client: "c".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut cfg = AuditConfig::for_database(&format!("sqlite://{}/keys.db", dir.display()), dir);
    cfg.create_keys = true;
    let writer = LogWriter::spawn(store.clone(), load_keys(&cfg).unwrap(), &cfg, url).unwrap();
    let body = Arc::new(
        "社内向けの報告書を要約してください。"
            .repeat(50)
            .into_bytes(),
    ); // ~2.5 KB
    let out = Arc::new(
        "要約：本件は予定どおり進行しています。"
            .repeat(12)
            .into_bytes(),
    ); // ~0.7 KB
    let start = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut tasks = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let permit = Arc::clone(&sem).acquire_owned().await.unwrap();
        let (w, r) = (writer.clone(), record(i, &body, &out));
        tasks.push(tokio::spawn(async move {
            let ok = w.commit(r).await;
            drop(permit);
            ok
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap(), "a record was not committed");
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(store.log_count().await.unwrap(), RECORDS as i64);
    println!("{label}: {RECORDS} records in {secs:.2} s = {:.0} records/s (bodies sealed with AES-256-GCM, hash-chained, group-committed)", RECORDS as f64 / secs);
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        run(
            "sqlite",
            &format!("sqlite://{}", dir.path().join("bench.db").display()),
            dir.path(),
        )
        .await;
        if let Ok(base) = std::env::var("MAMORI_BENCH_DATABASE_URL") {
            use sqlx::Connection;
            sqlx::any::install_default_drivers();
            let name = format!("mamori_bench_{}", std::process::id());
            let mut c = sqlx::AnyConnection::connect(&base).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                .execute(&mut c)
                .await
                .unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut c)
                .await
                .unwrap();
            let (prefix, _) = base.rsplit_once('/').unwrap();
            let pg_dir = tempfile::tempdir().unwrap();
            run("postgres", &format!("{prefix}/{name}"), pg_dir.path()).await;
        }
    });
}
