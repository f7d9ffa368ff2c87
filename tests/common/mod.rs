//! Test helpers: a real gateway on port 0 with a fresh database (SQLite by default, PostgreSQL
//! when MAMORI_TEST_DATABASE_URL is set) and a recording mock provider on port 0.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mamori::config::Config;
use mamori::gateway::Gateway;
use mamori::mock::MockProvider;
use mamori::policy::{keys, Registration};
use mamori::store::{NewContract, NewKey, StaffRow, Store};
use serde_json::Value;
use sqlx::Connection;
use std::sync::Arc;
use std::time::Duration;

pub struct TestDb {
    pub url: String,
    /// Holds the SQLite file (if any) and the log's key files.
    pub dir: tempfile::TempDir,
}

impl TestDb {
    /// Audit settings with keys in this database's temp folder, checkpointing often.
    pub fn audit(&self) -> mamori::config::AuditConfig {
        let mut a = mamori::config::AuditConfig::for_database("sqlite://x", self.dir.path());
        a.master_key_file = self.dir.path().join("master.key");
        a.signing_key_file = self.dir.path().join("signing.key");
        a.checkpoint_file = self.dir.path().join("checkpoints.jsonl");
        a.create_keys = true;
        a.checkpoint_every_records = 5;
        a.journal_dir = self.dir.path().join("journal");
        a.upkeep_interval = Duration::from_millis(500);
        a
    }
}

/// A fresh, empty database: a SQLite file in a temp folder, or a new PostgreSQL database.
pub async fn fresh_db() -> TestDb {
    match std::env::var("MAMORI_TEST_DATABASE_URL") {
        Ok(base) if !base.is_empty() => {
            sqlx::any::install_default_drivers();
            let name = format!("mamori_t_{}", uuid::Uuid::now_v7().simple());
            let mut conn = sqlx::AnyConnection::connect(&base)
                .await
                .expect("connect to MAMORI_TEST_DATABASE_URL");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .unwrap();
            let (prefix, _) = base.rsplit_once('/').unwrap();
            TestDb {
                url: format!("{prefix}/{name}"),
                dir: tempfile::tempdir().unwrap(),
            }
        }
        _ => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("mamori.db").display());
            TestDb { url, dir }
        }
    }
}

pub fn mock_registration(id: &str, api: &str, base: &str, models: &[&str]) -> String {
    let models: Vec<String> = models.iter().map(|m| format!("\"{m}\"")).collect();
    format!(
        r#"id = "{id}"
name = "Test provider {id}"
vendor = "Test vendor"
api = "{api}"
base_url = "{base}/v1"
api_key = "env:MAMORI_TEST_PROVIDER_KEY"
models = [{models}]
[data_use]
trains_on_inputs = false
evidence_url = "https://example.invalid/terms"
evidence = "We do not train on inputs."
verified_on = 2026-01-01
review_by = 2099-01-01
[location]
storage = "abroad"
countries = ["US"]
"#,
        models = models.join(", ")
    )
}

pub const PROVIDER_SECRET: &str = "provider-secret-value-123";

pub struct TestApp {
    pub addr: String,
    pub mock: Arc<MockProvider>,
    pub mock_base: String,
    pub gw: Arc<Gateway>,
    pub store: Store,
    pub key: String,
    pub key_id: String,
    pub http: reqwest::Client,
    pub db: TestDb,
}

pub async fn spawn_mock() -> (Arc<MockProvider>, String) {
    let mock = MockProvider::new(true);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(mamori::mock::serve(l, Arc::clone(&mock)));
    (mock, base)
}

/// A gateway with two mock providers (OpenAI and Anthropic wire APIs), one contract `c1`,
/// one trained staff member `alice` and one key.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// `spawn_app` with changes to the gateway's configuration.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        mamori::telemetry::init_tracing("debug");
    }
    mamori::telemetry::init_metrics();
    // Safe: every test sets the same value.
    unsafe { std::env::set_var("MAMORI_TEST_PROVIDER_KEY", PROVIDER_SECRET) };
    let (mock, mock_base) = spawn_mock().await;
    let db = fresh_db().await;
    let store = Store::connect(&db.url).await.unwrap();
    register(
        &store,
        &mock_registration(
            "mock-openai",
            "openai",
            &mock_base,
            &[
                "gpt-test",
                "embed-test",
                "mock-error",
                "mock-gated",
                "mock-gated-late",
            ],
        ),
    )
    .await;
    register(
        &store,
        &mock_registration(
            "mock-anthropic",
            "anthropic",
            &mock_base,
            &["claude-test", "mock-gated-claude"],
        ),
    )
    .await;
    store
        .create_contract(&NewContract {
            id: "c1".into(),
            title: "案件1".into(),
            client: "顧客株式会社".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    add_staff(&store, "alice", Some("2026-11-01")).await;
    let (key_id, key) = issue_key(&store, "alice", "c1", None).await;

    let mut config = Config {
        database_url: db.url.clone(),
        refresh_interval: Duration::from_millis(100),
        max_body_bytes: 64 * 1024,
        audit: db.audit(),
        ..Config::default()
    };
    configure(&mut config);
    let gw = Gateway::start(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let router = mamori::http::router(Arc::clone(&gw));
    tokio::spawn(mamori::http::serve(
        listener,
        router,
        std::future::pending(),
    ));
    TestApp {
        addr,
        mock,
        mock_base,
        store: gw.store.clone(),
        gw,
        key,
        key_id,
        http: reqwest::Client::new(),
        db,
    }
}

impl TestApp {
    /// POSTs JSON with the app's key as a Bearer token.
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.post_with_key(path, body, &self.key).await
    }

    pub async fn post_with_key(&self, path: &str, body: &Value, key: &str) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.addr))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// POSTs and returns (status, JSON body, request id header).
    pub async fn call(&self, path: &str, body: &Value) -> (u16, Value, Option<String>) {
        read(self.post(path, body).await).await
    }

    /// A log record with its bodies decrypted (request, output) as JSON.
    pub async fn record(
        &self,
        id: &str,
    ) -> (mamori::store::LogRecord, Option<Value>, Option<Value>) {
        // Answers are delivered once their record is committed (to the journal, or for a
        // group by its insert); a journaled one reaches the database a moment later.
        assert!(
            self.gw.log.flush().await,
            "the log writer could not store its records"
        );
        let rec = self.store.log_record(id).await.unwrap().expect("record");
        let dk = &self.gw.log.data_keys;
        let json = |b: Option<Vec<u8>>| b.map(|b| serde_json::from_slice(&b).unwrap());
        let req = json(dk.open_body(&rec, "request").await.unwrap());
        let out = json(dk.open_body(&rec, "output").await.unwrap());
        (rec, req, out)
    }

    /// Whether the journal holds a committed line (the whole record) for request `id`.
    pub fn committed_in_journal(&self, id: &str) -> bool {
        let line = format!("{{\"committed\":{{\"seq\":0,\"request_id\":\"{id}\"");
        std::fs::read_dir(self.db.audit().journal_dir)
            .unwrap()
            .any(|e| {
                String::from_utf8_lossy(&std::fs::read(e.unwrap().path()).unwrap()).contains(&line)
            })
    }

    /// Waits until the log holds `n` records (refusals are written without waiting).
    pub async fn wait_for_records(&self, n: i64) {
        for _ in 0..200 {
            if self.store.log_count().await.unwrap() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("log never reached {n} records");
    }

    /// Waits until the running gateway has reloaded the policy after an admin change.
    pub async fn wait_for_policy(&self) {
        let want = self.store.policy_generation().await.unwrap();
        for _ in 0..300 {
            if self.gw.policy.snapshot().generation >= want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("policy never reloaded");
    }
}

/// Polls `done` every 50 ms for up to 5 s; whether it came true. For an effect that follows
/// another observable one (a row or a file deleted after the records it held are stored).
pub async fn eventually<F>(mut done: impl FnMut() -> F) -> bool
where
    F: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

pub async fn read(resp: reqwest::Response) -> (u16, Value, Option<String>) {
    let status = resp.status().as_u16();
    let id = resp
        .headers()
        .get("x-mamori-request-id")
        .map(|v| v.to_str().unwrap().to_string());
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body, id)
}

/// Reads an SSE response into its events' data fields, in order.
pub async fn sse_data(resp: reqwest::Response) -> Vec<String> {
    let text = resp.text().await.unwrap();
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            e.lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

pub async fn register(store: &Store, toml_text: &str) -> Registration {
    let reg = Registration::from_toml(toml_text).unwrap();
    let old = store
        .provider(&reg.id)
        .await
        .unwrap()
        .map(|p| Registration::from_json(&p.registration).unwrap());
    let changes = reg.changes_from(old.as_ref()).unwrap();
    store
        .register_provider(
            &reg.id,
            &reg.canonical_json().unwrap(),
            &reg.content_sha256().unwrap(),
            &changes,
            "test",
        )
        .await
        .unwrap();
    reg
}

pub async fn add_staff(store: &Store, id: &str, trained_on: Option<&str>) {
    store
        .add_staff(&StaffRow {
            id: id.into(),
            name: format!("Staff {id}"),
            email: None,
            trained_on: trained_on.map(str::to_string),
            active: true,
            created_at: mamori::store::now_text(),
        })
        .await
        .unwrap();
}

pub async fn issue_key(
    store: &Store,
    staff: &str,
    contract: &str,
    expires: Option<&str>,
) -> (String, String) {
    let k = keys::generate();
    store
        .insert_key(&NewKey {
            id: k.id.clone(),
            key_hash: keys::hash(&k.secret),
            staff_id: staff.into(),
            contract_id: contract.into(),
            deliverable: None,
            purpose: None,
            expires_at: expires.map(str::to_string),
        })
        .await
        .unwrap();
    (k.id, k.secret)
}
