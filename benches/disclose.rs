//! `disclose` for a contract with 100,000 records: `cargo bench --bench disclose`.
//! (SQLite in a temp folder; the records are written once, then the disclosure is timed.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mamori::disclose::{self, render::Format, Lang, Query};
use mamori::store::{LogRecord, NewContract, Store};
use std::collections::BTreeSet;
use std::time::Instant;

const RECORDS: usize = 100_000;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("b.db").display()))
            .await
            .unwrap();
        store
            .create_contract(&NewContract {
                id: "c".into(),
                title: "t".into(),
                client: "c".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let reg = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/local-mock.toml"
        ))
        .unwrap();
        let r = mamori::policy::Registration::from_toml(&reg).unwrap();
        store
            .register_provider(
                &r.id,
                &r.canonical_json().unwrap(),
                &r.content_sha256().unwrap(),
                &[],
                "bench",
            )
            .await
            .unwrap();
        let t = Instant::now();
        for chunk in 0..(RECORDS / 1000) {
            let mut batch: Vec<LogRecord> = (0..1000)
                .map(|i| {
                    let n = chunk * 1000 + i;
                    LogRecord {
                        request_id: format!("req_{n:032}"),
                        at: format!("2026-11-{:02}T10:00:00.{n:06}Z", 1 + n % 28),
                        staff_id: Some(format!("staff{}", n % 7)),
                        contract_id: Some("c".into()),
                        deliverable: Some(if n % 2 == 0 { "報告書" } else { "設計書" }.into()),
                        purpose: Some(["要約", "翻訳", "レビュー"][n % 3].into()),
                        provider_id: Some("local-mock".into()),
                        provider_version: Some(1),
                        model: Some("mock-gpt".into()),
                        endpoint: "chat.completions".into(),
                        outcome: "ok".into(),
                        http_status: 200,
                        redactions: "{}".into(),
                        output_sha256: Some(format!("{n:064x}")),
                        ..Default::default()
                    }
                })
                .collect();
            store
                .append_chained(&mut batch, mamori::audit::chain::record_hash)
                .await
                .unwrap();
        }
        println!(
            "setup: {RECORDS} records written in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        let n = store
            .disclosure_rows("c", &["chat.completions", "responses", "messages"])
            .await
            .unwrap()
            .len();
        println!(
            "(reading {n} records' metadata alone: {:.3} s)",
            t.elapsed().as_secs_f64()
        );
        for (label, deliverable) in [
            ("whole contract", None),
            ("one deliverable (half)", Some("報告書")),
        ] {
            let t = Instant::now();
            let q = Query {
                contract: "c".into(),
                deliverable: deliverable.map(str::to_string),
                also: BTreeSet::new(),
                only: None,
                lang: Lang::Ja,
                generated_at: "2026-11-26T00:00:00Z".into(),
            };
            let d = disclose::build(&store, &q).await.unwrap();
            let md = disclose::render::render(&d, Format::Md).unwrap();
            println!(
                "disclose {label}: {} interactions, {} KB of Markdown in {:.3} s",
                d.interactions,
                md.len() / 1024,
                t.elapsed().as_secs_f64()
            );
        }
    });
}
