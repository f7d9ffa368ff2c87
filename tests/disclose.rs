//! Disclosures and the notification form: golden files for every format, verification of
//! exported files against the log, and re-notification when registrations change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::*;
use mamori::config::{CloudService, Organization};
use mamori::disclose::{self, form, render::Format, verify, Lang, Query};
use mamori::store::{LogRecord, NewContract, Subcontractor};
use std::collections::BTreeSet;
use std::path::PathBuf;

const AT: &str = "2026-11-26T09:00:00Z";

fn record(i: u32, deliverable: &str, provider: &str, model: &str, purpose: &str) -> LogRecord {
    LogRecord {
        request_id: format!("req_0000000000000000000000000000{i:04}"),
        at: format!("2026-11-{:02}T10:00:00.000000Z", 10 + i),
        staff_id: Some("alice".into()),
        key_id: Some("key_x".into()),
        contract_id: Some("c1".into()),
        deliverable: Some(deliverable.into()),
        purpose: Some(purpose.into()),
        provider_id: Some(provider.into()),
        provider_version: Some(1),
        model: Some(model.into()),
        endpoint: if provider == "mock-anthropic" {
            "messages"
        } else {
            "chat.completions"
        }
        .into(),
        outcome: "ok".into(),
        http_status: 200,
        redactions: "{}".into(),
        request_body: Some(format!("{{\"q\":{i}}}").into_bytes()),
        output_body: Some(
            format!("{{\"choices\":[{{\"message\":{{\"content\":\"回答{i}\"}}}}]}}").into_bytes(),
        ),
        ..Default::default()
    }
}

/// An app whose log holds a fixed set of records for deliverable 報告書v1 and others.
async fn app_with_history() -> TestApp {
    let app = spawn_app().await;
    for r in [
        record(1, "報告書v1", "mock-openai", "gpt-test", "議事録の要約"),
        record(2, "報告書v1", "mock-anthropic", "claude-test", "翻訳"),
        record(3, "報告書v1", "mock-openai", "gpt-test", "議事録の要約"),
        record(4, "設計書", "mock-openai", "gpt-test", "コードレビュー"),
    ] {
        assert!(app.gw.log.commit(r).await);
    }
    app
}

fn query(deliverable: Option<&str>, lang: Lang) -> Query {
    Query {
        contract: "c1".into(),
        deliverable: deliverable.map(str::to_string),
        also: BTreeSet::new(),
        only: None,
        lang,
        generated_at: AT.into(),
    }
}

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var("UPDATE_GOLDEN").is_ok() || !path.exists() && std::env::var("CI").is_err() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing golden file {}", path.display()));
    assert_eq!(
        actual, expected,
        "{name} differs from its golden file (UPDATE_GOLDEN=1 to accept a deliberate change)"
    );
}

#[tokio::test]
async fn disclosure_formats_match_their_golden_files() {
    let app = app_with_history().await;
    let ja = disclose::build(&app.store, &query(Some("報告書v1"), Lang::Ja))
        .await
        .unwrap();
    assert_eq!(ja.interactions, 3);
    assert_eq!(ja.services.len(), 2);
    assert_eq!(ja.purposes, ["翻訳", "議事録の要約"]);
    assert!(
        ja.statement
            .starts_with("本成果物の作成にあたり、以下の生成AIサービスを利用しました"),
        "{}",
        ja.statement
    );
    assert!(
        !ja.records.iter().any(|r| r.request_id.ends_with("0004")),
        "another deliverable's record leaked in"
    );
    for (f, name) in [
        (Format::Md, "disclosure-ja.md"),
        (Format::Html, "disclosure-ja.html"),
        (Format::Csv, "disclosure-ja.csv"),
        (Format::Json, "disclosure-ja.json"),
    ] {
        golden(name, &disclose::render::render(&ja, f).unwrap());
    }
    let en = disclose::build(&app.store, &query(Some("報告書v1"), Lang::En))
        .await
        .unwrap();
    assert!(en
        .statement
        .starts_with("This deliverable was prepared with the assistance"));
    golden(
        "disclosure-en.md",
        &disclose::render::render(&en, Format::Md).unwrap(),
    );
}

#[tokio::test]
async fn exported_disclosures_verify_and_edits_or_log_changes_are_caught() {
    let app = app_with_history().await;
    let dir = tempfile::tempdir().unwrap();
    let d = disclose::build(&app.store, &query(Some("報告書v1"), Lang::Ja))
        .await
        .unwrap();
    let mut files = Vec::new();
    for (f, ext) in [
        (Format::Md, "md"),
        (Format::Html, "html"),
        (Format::Csv, "csv"),
        (Format::Json, "json"),
    ] {
        let p = dir.path().join(format!("d.{ext}"));
        std::fs::write(&p, disclose::render::render(&d, f).unwrap()).unwrap();
        let o = verify::verify_file(&app.store, &p).await.unwrap();
        assert!(o.matches && o.newer_records == 0, "{ext}: {:?}", o.problems);
        assert_eq!(o.records, 3);
        files.push(p);
    }
    // Someone edits the exported Markdown: drops a service from the statement.
    let original = std::fs::read_to_string(&files[0]).unwrap();
    let md = original.replace(
        "Test provider mock-anthropic（Test vendor、モデル: claude-test）、",
        "",
    );
    assert_ne!(md, original);
    std::fs::write(&files[0], md).unwrap();
    let o = verify::verify_file(&app.store, &files[0]).await.unwrap();
    assert!(!o.matches, "an edited disclosure verified");
    // Someone edits a hash in the CSV.
    let csv = std::fs::read_to_string(&files[2]).unwrap();
    let first_hash = d.records[0].output_sha256.clone();
    std::fs::write(&files[2], csv.replace(&first_hash, &"0".repeat(64))).unwrap();
    let o = verify::verify_file(&app.store, &files[2]).await.unwrap();
    assert!(
        o.problems.iter().any(|p| p.contains("hash")),
        "{:?}",
        o.problems
    );
    // The log changes underneath an untouched JSON export.
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(&app.db.url).await.unwrap();
    sqlx::query("UPDATE log_records SET model = 'other-model' WHERE request_id = $1")
        .bind(&d.records[1].request_id)
        .execute(&mut c)
        .await
        .unwrap();
    let o = verify::verify_file(&app.store, &files[3]).await.unwrap();
    assert!(!o.matches, "a disclosure still matched a changed log");
    // A new record for the deliverable makes an export out of date.
    assert!(
        app.gw
            .log
            .commit(record(9, "報告書v1", "mock-openai", "gpt-test", "要約"))
            .await
    );
    let o = verify::verify_file(&app.store, &files[1]).await.unwrap();
    assert_eq!(o.newer_records, 1);
}

#[tokio::test]
async fn disclosures_stay_valid_after_the_contract_is_closed() {
    let app = app_with_history().await;
    let dir = tempfile::tempdir().unwrap();
    let d = disclose::build(&app.store, &query(Some("報告書v1"), Lang::En))
        .await
        .unwrap();
    let p = dir.path().join("d.md");
    std::fs::write(&p, disclose::render::render(&d, Format::Md).unwrap()).unwrap();
    app.store.close_contract("c1").await.unwrap();
    let o = verify::verify_file(&app.store, &p).await.unwrap();
    assert!(o.matches, "{:?}", o.problems);
}

fn org() -> Organization {
    Organization {
        name: Some("株式会社サンプル受託".into()),
        address: Some("東京都千代田区霞が関1-2-3".into()),
        storage_media: vec!["社内PC内ストレージ".into()],
        log_country: Some("JP".into()),
        cloud_services: vec![CloudService {
            name: "社内ファイル共有（国内リージョン）".into(),
            vendor: "例示クラウド株式会社".into(),
            location: "東京リージョン".into(),
            countries: vec!["JP".into()],
            certifications: vec!["ISMAP".into()],
        }],
    }
}

#[tokio::test]
async fn the_form_is_filled_and_changes_call_for_re_notification() {
    let app = spawn_app().await;
    app.store
        .create_contract(&NewContract {
            id: "k2026".into(),
            title: "次期基幹システム設計".into(),
            client: "発注省".into(),
            contract_date: Some("2026-04-01".into()),
            purposes: vec!["議事録の要約".into(), "仕様書の翻訳".into()],
            subcontractors: vec![Subcontractor {
                name: "株式会社再委託".into(),
                work: "テスト実施".into(),
            }],
            providers: Some(vec!["mock-openai".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    let f = form::build(&app.store, &org(), "k2026", "2026-11-26")
        .await
        .unwrap();
    assert!(!f.japan_only, "a US provider stores abroad");
    assert_eq!(f.countries_abroad, ["US"]);
    assert_eq!(
        f.ai_services.len(),
        1,
        "only the contract's providers are listed"
    );
    assert_eq!(f.ai_services[0].work, "議事録の要約、仕様書の翻訳");
    golden("form.md", &form::markdown(&f));
    golden("form.html", &form::html(&f));
    golden(
        "form.json",
        &(serde_json::to_string_pretty(&f).unwrap() + "\n"),
    );
    let md = form::markdown(&f);
    assert!(
        md.contains("☑ 有") && md.contains("□ 無") && md.contains("☑ 日本国外"),
        "{md}"
    );

    let st = form::status(&app.store, &org()).await.unwrap();
    assert_eq!(
        st.iter().find(|s| s.contract == "k2026").unwrap().state,
        "not_filed"
    );
    app.store
        .file_form(
            "k2026",
            &f.content().to_string(),
            &f.content_sha256(),
            "test",
        )
        .await
        .unwrap();
    let st = form::status(&app.store, &org()).await.unwrap();
    assert_eq!(
        st.iter().find(|s| s.contract == "k2026").unwrap().state,
        "current"
    );

    // The provider's registration changes (a new certification): re-notification is due.
    register(
        &app.store,
        &mock_registration(
            "mock-openai",
            "openai",
            &app.mock_base,
            &["gpt-test", "embed-test", "mock-error", "mock-gated"],
        )
        .replace(
            "[location]",
            "[certifications]\nnames = [\"ISO/IEC 27001\"]\n[location]",
        ),
    )
    .await;
    let st = form::status(&app.store, &org()).await.unwrap();
    let s = st.iter().find(|s| s.contract == "k2026").unwrap();
    assert_eq!(s.state, "changed");
    assert!(
        s.differences.iter().any(|d| d.contains("ISO/IEC 27001")),
        "{:?}",
        s.differences
    );
    assert!(
        s.differences
            .iter()
            .any(|d| d.contains("mock-openai v1") && d.contains("mock-openai v2")),
        "{:?}",
        s.differences
    );
    // Suspending it removes the AI service from the form: also a change.
    app.store
        .file_form(
            "k2026",
            &form::build(&app.store, &org(), "k2026", "2026-11-27")
                .await
                .unwrap()
                .content()
                .to_string(),
            "x",
            "test",
        )
        .await
        .unwrap();
    app.store
        .set_provider_suspended("mock-openai", Some("review"), "test")
        .await
        .unwrap();
    let st = form::status(&app.store, &org()).await.unwrap();
    let s = st.iter().find(|s| s.contract == "k2026").unwrap();
    assert_eq!(s.state, "changed");
    assert!(
        s.differences.iter().any(|d| d.starts_with("ai_services")),
        "{:?}",
        s.differences
    );
}
