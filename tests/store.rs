//! The storage conformance suite: the same assertions on SQLite (default) and on PostgreSQL
//! (when MAMORI_TEST_DATABASE_URL is set; `.ci/run` runs it both ways).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::*;
use mamori::store::{LogFilter, LogRecord, NewContract, RegisterOutcome, Store};

async fn store() -> (Store, TestDb) {
    let db = fresh_db().await;
    (Store::connect(&db.url).await.unwrap(), db)
}

#[tokio::test]
async fn migrations_are_applied_once_and_reopening_keeps_data() {
    let (s, db) = store().await;
    add_staff(&s, "a", None).await;
    let again = Store::connect(&db.url).await.unwrap();
    assert_eq!(again.staff_list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn registrations_are_versioned_and_idempotent() {
    let (s, _db) = store().await;
    let g0 = s.policy_generation().await.unwrap();
    let text = mock_registration("p", "openai", "https://api.example.com", &["m1"]);
    let reg = mamori::policy::Registration::from_toml(&text).unwrap();
    let json = reg.canonical_json().unwrap();
    let sha = reg.content_sha256().unwrap();
    assert_eq!(
        s.register_provider("p", &json, &sha, &["registered".into()], "admin")
            .await
            .unwrap(),
        RegisterOutcome::Created(1)
    );
    assert_eq!(
        s.register_provider("p", &json, &sha, &[], "admin")
            .await
            .unwrap(),
        RegisterOutcome::Unchanged(1)
    );
    let changed = register(&s, &text.replace("[\"m1\"]", "[\"m1\", \"m2\"]")).await;
    assert_eq!(changed.models.len(), 2);
    let (versions, _) = s.provider_history("p").await.unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[1].version, 2);
    assert!(
        versions[1].changes[0].starts_with("models"),
        "{:?}",
        versions[1].changes
    );
    assert_eq!(s.provider("p").await.unwrap().unwrap().version, 2);
    assert!(
        s.policy_generation().await.unwrap() > g0,
        "changes must move the policy generation"
    );

    s.set_provider_suspended("p", Some("incident"), "sec")
        .await
        .unwrap();
    let p = s.provider("p").await.unwrap().unwrap();
    assert!(p.suspended);
    assert_eq!(p.suspend_reason.as_deref(), Some("incident"));
    assert!(
        !s.set_provider_suspended("p", Some("again"), "sec")
            .await
            .unwrap(),
        "suspending a suspended provider changes nothing"
    );
    assert_eq!(
        s.provider("p")
            .await
            .unwrap()
            .unwrap()
            .suspend_reason
            .as_deref(),
        Some("incident")
    );
    assert!(s.set_provider_suspended("p", None, "sec").await.unwrap());
    assert!(!s.provider("p").await.unwrap().unwrap().suspended);
    assert!(
        !s.set_provider_suspended("p", None, "sec").await.unwrap(),
        "resuming a provider that is not suspended changes nothing"
    );
    let (_, events) = s.provider_history("p").await.unwrap();
    let actions: Vec<_> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["suspend", "resume"]);
    assert!(s
        .set_provider_suspended("nope", Some("x"), "sec")
        .await
        .is_err());
}

#[tokio::test]
async fn contracts_terms_staff_and_keys() {
    let (s, _db) = store().await;
    let c = NewContract {
        id: "c".into(),
        title: "t".into(),
        client: "cl".into(),
        providers: Some(vec!["a".into(), "b".into()]),
        japan_only: true,
        ends_on: Some("2027-03-31".into()),
        retention_days: Some(90),
        ..Default::default()
    };
    s.create_contract(&c).await.unwrap();
    assert!(
        s.create_contract(&c).await.is_err(),
        "duplicate contract ids are refused"
    );
    let got = s.contract("c").await.unwrap().unwrap();
    assert_eq!(got.providers, Some(vec!["a".to_string(), "b".to_string()]));
    assert!(got.japan_only && !got.allow_non_text);
    assert_eq!(got.retention_days, Some(90));
    assert!(s.add_term("c", "term", "極秘プロジェクトX").await.unwrap());
    assert!(!s.add_term("c", "term", "極秘プロジェクトX").await.unwrap());
    assert_eq!(s.terms("c", "term").await.unwrap(), ["極秘プロジェクトX"]);
    assert!(s
        .remove_term("c", "term", "極秘プロジェクトX")
        .await
        .unwrap());
    assert!(s.terms("c", "term").await.unwrap().is_empty());
    assert!(s.terms("missing", "term").await.is_err());

    add_staff(&s, "u", None).await;
    s.train_staff("u", "2026-10-01").await.unwrap();
    assert_eq!(
        s.staff("u").await.unwrap().unwrap().trained_on.as_deref(),
        Some("2026-10-01")
    );
    assert!(s.train_staff("ghost", "2026-10-01").await.is_err());
    let err = s
        .train_staff("u", "2026-09-30")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("on 2026-10-01, is later than 2026-09-30"),
        "an earlier training must not replace a later one: {err}"
    );
    s.train_staff("u", "2026-10-01").await.unwrap();
    s.train_staff("u", "2026-10-02").await.unwrap();
    assert_eq!(
        s.staff("u").await.unwrap().unwrap().trained_on.as_deref(),
        Some("2026-10-02")
    );

    let (k1, _) = issue_key(&s, "u", "c", None).await;
    let (k2, _) = issue_key(&s, "u", "c", Some("2027-01-01")).await;
    assert_eq!(s.keys().await.unwrap().len(), 2);
    s.revoke_key(&k1).await.unwrap();
    assert!(s.revoke_key(&k1).await.is_err(), "revoking twice says so");
    assert_eq!(
        s.close_contract("c").await.unwrap(),
        1,
        "closing revokes the remaining key"
    );
    let keys = s.keys().await.unwrap();
    assert!(keys.iter().all(|k| k.revoked_at.is_some()));
    assert!(keys.iter().any(|k| k.id == k2));
    assert_eq!(s.contract("c").await.unwrap().unwrap().status, "closed");
    assert!(s.close_contract("c").await.is_err());
    let state = s.policy_state().await.unwrap();
    assert_eq!(
        (state.contracts.len(), state.staff.len(), state.keys.len()),
        (1, 1, 2)
    );
}

async fn append(s: &Store, mut records: Vec<LogRecord>) -> anyhow::Result<(i64, String)> {
    s.append_chained(&mut records, mamori::audit::chain::record_hash)
        .await
}

fn record(id: &str, contract: &str, deliverable: Option<&str>) -> LogRecord {
    LogRecord {
        request_id: id.into(),
        at: mamori::store::now_text(),
        contract_id: Some(contract.into()),
        deliverable: deliverable.map(str::to_string),
        endpoint: "chat.completions".into(),
        outcome: "ok".into(),
        http_status: 200,
        latency_us: 1234,
        input_tokens: Some(10),
        output_tokens: Some(20),
        redactions: "{}".into(),
        request_body: Some("{\"model\":\"m\"}".as_bytes().to_vec()),
        output_body: Some("出力".as_bytes().to_vec()),
        output_sha256: Some("ab".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn log_records_round_trip_and_filter() {
    let (s, _db) = store().await;
    append(
        &s,
        vec![
            record("r1", "c1", Some("d1")),
            record("r2", "c1", None),
            record("r3", "c2", Some("d1")),
        ],
    )
    .await
    .unwrap();
    let r = s.log_record("r1").await.unwrap().unwrap();
    assert_eq!(r.seq, 1);
    assert_eq!(r.prev_hash, mamori::audit::chain::GENESIS);
    assert_eq!(
        s.log_record("r2").await.unwrap().unwrap().prev_hash,
        r.record_hash
    );
    assert_eq!(r.output_body.as_deref(), Some("出力".as_bytes()));
    assert_eq!(
        (r.input_tokens, r.output_tokens, r.latency_us),
        (Some(10), Some(20), 1234)
    );
    let all = s
        .log_list(&LogFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter()
            .map(|r| r.request_id.as_str())
            .collect::<Vec<_>>(),
        ["r1", "r2", "r3"]
    );
    let c1 = s
        .log_list(&LogFilter {
            contract: Some("c1".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(c1.len(), 2);
    let d1 = s
        .log_list(&LogFilter {
            contract: Some("c1".into()),
            deliverable: Some("d1".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(d1.len(), 1);
    let future = s
        .log_list(&LogFilter {
            since: Some("2999-01-01".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(future.is_empty());
    // A duplicate request id fails the whole batch: nothing half-written.
    assert!(s
        .append_chained(
            &mut [record("r4", "c1", None), record("r1", "c1", None)],
            mamori::audit::chain::record_hash
        )
        .await
        .is_err());
    assert!(s.log_record("r4").await.unwrap().is_none());
    assert_eq!(s.log_count().await.unwrap(), 3);
}

#[tokio::test]
async fn retention_deletes_every_expired_body_over_several_batches() {
    let (s, _db) = store().await;
    // More expired records than one retention step takes, among records that must keep their
    // bodies: another contract's, and recent ones.
    let old = "2020-01-01T00:00:00.000000Z";
    let mut expired = 0;
    for batch in 0..5 {
        let mut records = Vec::new();
        for i in 0..1000 {
            let id = format!("b{batch}-{i}");
            let (contract, at) = match i % 10 {
                0 => ("c2", old.to_string()),
                1 => ("c1", mamori::store::now_text()),
                _ => ("c1", old.to_string()),
            };
            if contract == "c1" && at == old {
                expired += 1;
            }
            records.push(LogRecord {
                at,
                ..record(&id, contract, None)
            });
        }
        append(&s, records).await.unwrap();
    }
    let cutoff = "2021-01-01T00:00:00.000000Z";
    assert_eq!(s.expire_bodies("c1", cutoff).await.unwrap(), expired);
    for id in ["b0-2", "b2-555", "b4-999"] {
        let r = s.log_record(id).await.unwrap().unwrap();
        assert_eq!(r.bodies_deleted.as_deref(), Some("retention"), "{id}");
        assert!(r.request_body.is_none() && r.output_body.is_none(), "{id}");
        assert!(r.output_sha256.is_some(), "{id}: the hash stays");
    }
    for id in ["b0-0", "b3-1", "b4-990", "b4-991"] {
        let r = s.log_record(id).await.unwrap().unwrap();
        assert!(r.bodies_deleted.is_none(), "{id}");
        assert_eq!(r.output_body.as_deref(), Some("出力".as_bytes()), "{id}");
    }
    // Nothing is left to delete.
    assert_eq!(s.expire_bodies("c1", cutoff).await.unwrap(), 0);
}

#[tokio::test]
async fn the_log_can_fsync_every_commit() {
    let db = fresh_db().await;
    let s = Store::connect_with(&db.url, true).await.unwrap();
    append(&s, vec![record("f1", "c1", None)]).await.unwrap();
    let r = s.log_record("f1").await.unwrap().unwrap();
    assert_eq!(r.seq, 1);
    assert_eq!(r.output_body.as_deref(), Some("出力".as_bytes()));
}

/// An older binary must not run on a schema it does not know (it would not know where the log
/// bodies are, for one): it stops and says why.
#[tokio::test]
async fn a_database_from_a_newer_version_is_refused() {
    let db = fresh_db().await;
    drop(Store::connect(&db.url).await.unwrap());
    sqlx::any::install_default_drivers();
    let mut c = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 'x')")
        .execute(&mut c)
        .await
        .unwrap();
    let err = Store::connect(&db.url).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("newer mamori (schema version 99"),
        "{err:#}"
    );
}
