//! End to end with the official SDKs: the real `mamori` binary serves, the real CLI sets up
//! providers, contracts, staff and keys, and the official `openai` and `anthropic` Python SDKs
//! (tests/e2e/test_sdks.py, run by pytest) talk to it, with the local mock provider upstream.
//!
//! The SDKs are installed into tests/e2e/.venv from tests/e2e/requirements.txt on first run (and
//! again when the pins change). This needs `python3` with `venv` and access to PyPI; when they
//! are missing the test fails and says so: it never skips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const MAMORI: &str = env!("CARGO_BIN_EXE_mamori");
/// How long pytest may run before it is stopped and the test fails.
const PYTEST_LIMIT: Duration = Duration::from_secs(300);
/// How long a server may take to print its address.
const START_LIMIT: Duration = Duration::from_secs(30);
/// Environment that would override the test's own configuration.
const MAMORI_ENV: [&str; 4] = [
    "MAMORI_CONFIG",
    "MAMORI_LISTEN",
    "MAMORI_DATABASE_URL",
    "MAMORI_MASTER_KEY",
];
/// Environment that would redirect or alter the SDKs.
const SDK_ENV: [&str; 9] = [
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_CUSTOM_HEADERS",
    "ANTHROPIC_PROFILE",
];

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("e2e")
}

/// A server child process whose output is collected, for showing when something fails.
struct Server {
    name: &'static str,
    child: Child,
    output: Arc<Mutex<String>>,
}

/// Kills the servers when dropped, so they die with a failing test too.
#[derive(Default)]
struct Servers(Vec<Server>);

impl Servers {
    /// Starts `cmd`, waits for a line of its stderr containing `marker`, and returns the first
    /// `http://…` word of that line.
    fn start(&mut self, name: &'static str, cmd: &mut Command, marker: &'static str) -> String {
        let mut child = cmd
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let stderr = child.stderr.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        drain(stdout, Arc::clone(&output), None);
        drain(stderr, Arc::clone(&output), Some((marker, tx)));
        self.0.push(Server {
            name,
            child,
            output: Arc::clone(&output),
        });
        match rx.recv_timeout(START_LIMIT) {
            Ok(addr) => addr,
            Err(_) => panic!(
                "{name} did not print its address (a line with `{marker}`) within {START_LIMIT:?}; it printed:\n{}",
                output.lock().unwrap()
            ),
        }
    }

    /// Everything the servers printed so far.
    fn output(&self) -> String {
        let mut s = String::new();
        for srv in &self.0 {
            s.push_str(&format!(
                "----- {} -----\n{}\n",
                srv.name,
                srv.output.lock().unwrap()
            ));
        }
        s
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for srv in &mut self.0 {
            let _ = srv.child.kill();
            let _ = srv.child.wait();
        }
    }
}

/// Reads `pipe` line by line into `into` on a thread; sends the address of the first line
/// containing the marker.
fn drain(
    pipe: impl Read + Send + 'static,
    into: Arc<Mutex<String>>,
    mut marker: Option<(&'static str, mpsc::Sender<String>)>,
) {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some((m, tx)) = &marker {
                if line.contains(m) {
                    if let Some(addr) = line.split_whitespace().find(|w| w.starts_with("http://")) {
                        let _ = tx.send(addr.to_string());
                        marker = None;
                    }
                }
            }
            let mut out = into.lock().unwrap();
            out.push_str(&line);
            out.push('\n');
        }
    });
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(what: &str, cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// The venv's python, with tests/e2e/requirements.txt installed.
fn python_with_sdks() -> PathBuf {
    let dir = e2e_dir();
    let venv = dir.join(".venv");
    let python = venv.join("bin").join("python");
    let requirements = dir.join("requirements.txt");
    let wanted = fs::read_to_string(&requirements).expect("read tests/e2e/requirements.txt");
    let stamp = venv.join("mamori-requirements.txt");
    if !python.exists() {
        let base = std::env::var("MAMORI_E2E_PYTHON").unwrap_or_else(|_| "python3".to_string());
        let out = Command::new(&base)
            .args(["-m", "venv"])
            .arg(&venv)
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "the SDK end-to-end test needs a Python venv: `{base} -m venv {}` failed ({}):\n{}{}\ninstall Python 3 with venv (or set MAMORI_E2E_PYTHON)",
                venv.display(),
                o.status,
                text(&o.stdout),
                text(&o.stderr)
            ),
            Err(e) => panic!("the SDK end-to-end test needs Python 3: cannot run `{base}`: {e}; install it or set MAMORI_E2E_PYTHON"),
        }
    }
    if fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let started = Instant::now();
        let out = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run pip in {}: {e}", venv.display()));
        assert!(
            out.status.success(),
            "pip could not install tests/e2e/requirements.txt into {} ({}); the SDK end-to-end test needs PyPI:\n{}{}",
            venv.display(),
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        fs::write(&stamp, &wanted).unwrap();
        eprintln!(
            "installed the SDKs into {} in {:?}",
            venv.display(),
            started.elapsed()
        );
    }
    python
}

/// A registration of the mock provider, in the shape of examples/local-mock.toml.
fn registration(
    id: &str,
    api: &str,
    base: &str,
    models: &[&str],
    trains_on_inputs: bool,
) -> String {
    let models: Vec<String> = models.iter().map(|m| format!("\"{m}\"")).collect();
    format!(
        r#"# The local mock provider, registered by tests/sdk_e2e.rs.
id = "{id}"
name = "mamori local mock provider ({id})"
vendor = "mamori (local test double)"
api = "{api}"
base_url = "{base}"
api_key = "none"
models = [{models}]

[data_use]
trains_on_inputs = {trains_on_inputs}
evidence_url = "https://example.invalid/mamori-mock"
evidence = "The mock provider runs on this machine, keeps nothing and trains on nothing."
verified_on = 2026-01-01
review_by = 2099-12-31
retention_days = 0
provider_staff_access = "none: it runs locally"

[location]
storage = "japan"
countries = ["JP"]
"#,
        models = models.join(", ")
    )
}

/// Runs the real CLI against the test's configuration and returns its stdout.
struct Cli {
    config: PathBuf,
}

impl Cli {
    fn command(&self) -> Command {
        let mut c = Command::new(MAMORI);
        c.arg("--config").arg(&self.config);
        for v in MAMORI_ENV {
            c.env_remove(v);
        }
        c
    }

    fn run(&self, args: &[&str]) -> String {
        text(
            &run(
                &format!("mamori {}", args.join(" ")),
                self.command().args(args),
            )
            .stdout,
        )
    }

    /// Issues a key and returns (key id, key).
    fn issue_key(&self, staff: &str, contract: &str, extra: &[&str]) -> (String, String) {
        let mut args = vec![
            "--json",
            "key",
            "issue",
            "--staff",
            staff,
            "--contract",
            contract,
        ];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        let v: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("`key issue --json` printed no JSON ({e}): {out}"));
        let field = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("`key issue --json` has no `{k}`: {v}"))
                .to_string()
        };
        (field("key_id"), field("key"))
    }
}

/// A key that expired on `expires`, written straight into the database as one issued before
/// then would be (`key issue` refuses a date already past); returns the key.
fn expired_key(db: &Path, staff: &str, contract: &str, expires: &str) -> String {
    use mamori::policy::keys;
    let k = keys::generate();
    let row = mamori::store::NewKey {
        id: k.id.clone(),
        key_hash: keys::hash(&k.secret),
        staff_id: staff.into(),
        contract_id: contract.into(),
        deliverable: None,
        purpose: None,
        expires_at: Some(expires.into()),
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = mamori::store::Store::connect(&format!("sqlite://{}", db.display()))
                .await
                .unwrap();
            store.insert_key(&row).await.unwrap();
        });
    k.secret
}

#[test]
fn official_sdks_against_the_real_gateway() {
    let started = Instant::now();
    let python = python_with_sdks();
    let setup_started = Instant::now();
    let mut servers = Servers::default();

    // The mock provider, as a user would start it.
    let mock_base = servers.start(
        "mock provider",
        Command::new(MAMORI).args(["mock-provider", "--listen", "127.0.0.1:0"]),
        "mock provider",
    );
    assert!(
        mock_base.ends_with("/v1"),
        "the mock should print its /v1 base URL: {mock_base}"
    );

    // Configuration and registrations in a fresh folder.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\ndatabase_url = \"sqlite://mamori.db\"\n\n[limits]\nmax_body_bytes = 262144\n\n[policy]\nrefresh_interval_ms = 100\n",
    )
    .unwrap();
    let providers = [
        (
            "local-mock",
            "openai",
            &["mock-gpt", "mock-embed", "mock-error"][..],
            false,
        ),
        (
            "local-mock-anthropic",
            "anthropic",
            &["mock-claude"][..],
            false,
        ),
        ("e2e-trainer", "openai", &["mock-free"][..], true),
        ("e2e-suspended", "openai", &["mock-paused"][..], false),
        (
            "e2e-suspended-anthropic",
            "anthropic",
            &["mock-claude-paused"][..],
            false,
        ),
    ];
    let cli = Cli {
        config: config.clone(),
    };
    cli.run(&["check"]);
    for (id, api, models, trains) in providers {
        let file = dir.path().join(format!("{id}.toml"));
        fs::write(&file, registration(id, api, &mock_base, models, trains)).unwrap();
        cli.run(&["provider", "register", file.to_str().unwrap()]);
    }
    cli.run(&[
        "provider",
        "suspend",
        "e2e-suspended",
        "--reason",
        "e2e: suspended by the test",
    ]);
    cli.run(&[
        "provider",
        "suspend",
        "e2e-suspended-anthropic",
        "--reason",
        "e2e: suspended by the test",
    ]);

    let today = chrono::Utc::now().date_naive().to_string();
    let contract = |id: &str, extra: &[&str]| {
        let mut args = vec![
            "contract",
            "create",
            id,
            "--title",
            "SDK e2e 案件",
            "--client",
            "顧客株式会社",
        ];
        args.extend_from_slice(extra);
        cli.run(&args);
    };
    contract("e2e", &[]);
    // The corpus's term cases assume this contract term list (shared/testdata/README.md).
    let mut terms = vec!["contract", "terms", "e2e", "add"];
    terms.extend_from_slice(CORPUS_TERMS);
    cli.run(&terms);
    contract("e2e-ended", &["--ends", "2021-03-31"]);
    contract(
        "e2e-anthropic-only",
        &["--providers", "local-mock-anthropic"],
    );
    contract("e2e-openai-only", &["--providers", "local-mock"]);
    cli.run(&[
        "staff",
        "add",
        "alice",
        "--name",
        "Alice 研修済み",
        "--trained-on",
        &today,
    ]);
    cli.run(&["staff", "add", "bob", "--name", "Bob 未受講"]);

    let (_, key) = cli.issue_key(
        "alice",
        "e2e",
        &["--deliverable", "sdk-e2e", "--purpose", "SDK e2e test"],
    );
    let (revoked_id, revoked) = cli.issue_key("alice", "e2e", &[]);
    cli.run(&["key", "revoke", &revoked_id]);
    let expired = expired_key(&dir.path().join("mamori.db"), "alice", "e2e", "2020-01-01");
    let (_, untrained) = cli.issue_key("bob", "e2e", &[]);
    let (_, ended) = cli.issue_key("alice", "e2e-ended", &[]);
    let (_, anthropic_only) = cli.issue_key("alice", "e2e-anthropic-only", &[]);
    let (_, openai_only) = cli.issue_key("alice", "e2e-openai-only", &[]);

    // The gateway.
    let url = servers.start(
        "mamori serve",
        cli.command().arg("serve"),
        "mamori listening on",
    );
    let setup = setup_started.elapsed();

    // The SDKs.
    let pytest_started = Instant::now();
    let log_path = dir.path().join("pytest.log");
    let ids_path = dir.path().join("request-ids.tsv");
    let corpus_ids = dir.path().join("corpus-ids.tsv");
    let log = fs::File::create(&log_path).unwrap();
    let mut cmd = Command::new(&python);
    cmd.args([
        "-m",
        "pytest",
        "-q",
        "-rfE",
        "-p",
        "no:cacheprovider",
        "test_sdks.py",
        "test_corpus.py",
    ])
    .current_dir(e2e_dir())
    .env("PYTHONDONTWRITEBYTECODE", "1")
    .env("NO_PROXY", "127.0.0.1,localhost")
    .env("no_proxy", "127.0.0.1,localhost")
    .env("MAMORI_URL", &url)
    .env("MAMORI_KEY", &key)
    .env("MAMORI_KEY_REVOKED", &revoked)
    .env("MAMORI_KEY_EXPIRED", &expired)
    .env("MAMORI_KEY_UNTRAINED", &untrained)
    .env("MAMORI_KEY_ENDED", &ended)
    .env("MAMORI_KEY_ANTHROPIC_ONLY", &anthropic_only)
    .env("MAMORI_KEY_OPENAI_ONLY", &openai_only)
    .env("MAMORI_E2E_IDS", &ids_path)
    .env("MAMORI_CORPUS", corpus_path())
    .env("MAMORI_E2E_CORPUS_IDS", &corpus_ids)
    .stdin(Stdio::null())
    .stdout(log.try_clone().unwrap())
    .stderr(log);
    for v in SDK_ENV {
        cmd.env_remove(v);
    }
    let mut pytest = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run pytest: {e}"));
    let status = loop {
        if let Some(s) = pytest.try_wait().unwrap() {
            break Some(s);
        }
        if pytest_started.elapsed() > PYTEST_LIMIT {
            let _ = pytest.kill();
            let _ = pytest.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(100));
    };
    let report = fs::read_to_string(&log_path).unwrap_or_default();
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!("pytest failed ({s}):\n{report}\n{}", servers.output()),
        None => panic!(
            "pytest did not finish within {PYTEST_LIMIT:?}:\n{report}\n{}",
            servers.output()
        ),
    }
    let pytest_time = pytest_started.elapsed();

    // Every refusal the SDKs met is in the output log with its code.
    let wanted = [
        "invalid_api_key",
        "key_revoked",
        "key_expired",
        "training_not_current",
        "contract_inactive",
        "model_not_registered",
        "provider_not_approved",
        "provider_not_allowed_for_contract",
        "unsupported_content",
        "request_too_large",
    ];
    // The running gateway stores a record a few milliseconds after its answer (refusals without
    // waiting at all), so the last requests' records may still be on their way.
    let noted = fs::read_to_string(&ids_path).unwrap_or_default()
        + &fs::read_to_string(&corpus_ids).unwrap_or_default();
    let noted: Vec<&str> = noted
        .lines()
        .filter_map(|l| l.split_once('\t').map(|(_, id)| id))
        .collect();
    let mut listed = serde_json::Value::Null;
    for _ in 0..100 {
        listed =
            serde_json::from_str(&cli.run(&["--json", "log", "list", "--limit", "1000"])).unwrap();
        let has_all = listed.as_array().is_some_and(|rows| {
            wanted
                .iter()
                .all(|w| rows.iter().any(|r| r["code"].as_str() == Some(*w)))
                && noted
                    .iter()
                    .all(|id| rows.iter().any(|r| r["request_id"].as_str() == Some(*id)))
        });
        if has_all {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let records = listed
        .as_array()
        .expect("`log list --json` prints an array");
    let codes: Vec<&str> = records.iter().filter_map(|r| r["code"].as_str()).collect();
    for code in wanted {
        assert!(
            codes.contains(&code),
            "no log record with code {code}; codes: {codes:?}"
        );
    }
    let ok = records.iter().filter(|r| r["outcome"] == "ok").count();
    assert!(
        ok >= 20,
        "expected the SDK calls' records in the log, found {ok} ok records"
    );
    assert!(
        records.iter().any(|r| r["outcome"] == "ok"
            && r["deliverable"] == "sdk-e2e"
            && r["staff_id"] == "alice"),
        "the key's default deliverable should attribute the records"
    );

    check_records(&cli, &ids_path, &key);
    check_corpus_records(&cli, &corpus_ids);

    eprintln!(
        "{}\nSDK end-to-end: setup {setup:?}, pytest {pytest_time:?}, total {:?}",
        report.trim_end(),
        started.elapsed()
    );
}

const ECHO: &str = "受け取りました: 来週の東京出張の持ち物を三つ挙げてください。";

/// The records of the requests test_sdks.py noted: each complete, attributed, with the output
/// the SDK received (streams assembled) and the request as sent upstream.
fn check_records(cli: &Cli, ids_path: &Path, key: &str) {
    let ids = fs::read_to_string(ids_path).unwrap_or_default();
    let mut seen = Vec::new();
    for line in ids.lines() {
        let (name, id) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("bad line in {}: {line}", ids_path.display()));
        // (endpoint, streamed, provider, text the output must contain)
        let (endpoint, streamed, provider, needle) = match name {
            "chat" | "attributed" => ("chat.completions", false, "local-mock", ECHO),
            "chat-stream" => ("chat.completions", true, "local-mock", ECHO),
            "responses" => ("responses", false, "local-mock", ECHO),
            "responses-stream" => ("responses", true, "local-mock", ECHO),
            "messages" => ("messages", false, "local-mock-anthropic", ECHO),
            "messages-stream" => ("messages", true, "local-mock-anthropic", ECHO),
            "messages-tool-stream" => ("messages", true, "local-mock-anthropic", "get_weather"),
            "count-tokens" => (
                "messages.count_tokens",
                false,
                "local-mock-anthropic",
                "input_tokens",
            ),
            other => panic!("test_sdks.py noted an unknown request `{other}`"),
        };
        seen.push(name.to_string());
        let out = cli.run(&["--json", "log", "show", id]);
        let r: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("`log show {id}` printed no JSON ({e}): {out}"));
        let what = format!("the record of `{name}` ({id})");
        assert_eq!(r["outcome"], "ok", "{what}: {r:#}");
        assert_eq!(r["endpoint"], endpoint, "{what}: {r:#}");
        assert_eq!(r["streamed"], streamed, "{what}: {r:#}");
        assert_eq!(r["provider_id"], provider, "{what}: {r:#}");
        assert_eq!(r["staff_id"], "alice", "{what}: {r:#}");
        assert_eq!(r["contract_id"], "e2e", "{what}: {r:#}");
        let output = r["output_body"].to_string();
        assert!(
            output.contains(needle),
            "{what}: the logged output lacks `{needle}`: {output}"
        );
        assert!(
            r["output_sha256"].as_str().is_some_and(|h| h.len() == 64),
            "{what}: no output hash: {r:#}"
        );
        let request = r["request_body"].to_string();
        assert!(
            request.contains("mock-"),
            "{what}: the logged request lacks its model: {request}"
        );
        assert!(!out.contains(key), "{what}: the staff key is in the log");
        let (deliverable, purpose) = if name == "attributed" {
            ("report-2026-q4", "summary of meeting notes")
        } else {
            ("sdk-e2e", "SDK e2e test")
        };
        assert_eq!(
            (r["deliverable"].as_str(), r["purpose"].as_str()),
            (Some(deliverable), Some(purpose)),
            "{what}: {r:#}"
        );
    }
    for name in [
        "chat",
        "attributed",
        "chat-stream",
        "responses",
        "responses-stream",
        "messages",
        "messages-stream",
        "messages-tool-stream",
        "count-tokens",
    ] {
        assert!(
            seen.iter().any(|s| s == name),
            "test_sdks.py noted no request id for `{name}`"
        );
    }
}

const CORPUS_TERMS: &[&str] = &[
    "株式会社みなと商事",
    "北斗システムズ株式会社",
    "東雲物産",
    "青葉ロジスティクス",
    "桜川製薬",
    "プロジェクト・カワセミ",
    "Project BLUEJAY",
    "案件コードKAGURA",
    "ORCA-7",
    "ひばり計画",
];

fn corpus_path() -> PathBuf {
    let shared =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/redaction-cases.jsonl");
    if shared.exists() {
        shared
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/redaction-cases.jsonl")
    }
}

/// Folds width, case and separators, so a secret is found in any form it might take.
fn fold(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.nfkc()
        .flat_map(char::to_lowercase)
        .filter(|c| {
            !c.is_whitespace()
                && !"-‐‑‒–—―−ーｰ.・\u{200b}\u{200c}\u{200d}\u{2060}\u{feff}".contains(*c)
        })
        .collect()
}

/// No secret of any corpus case is in the request as sent upstream or in the logged output.
fn check_corpus_records(cli: &Cli, ids_path: &Path) {
    let cases: std::collections::HashMap<String, Vec<String>> = fs::read_to_string(corpus_path())
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let secrets = v["secrets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect();
            (v["id"].as_str().unwrap().to_string(), secrets)
        })
        .collect();
    let noted = fs::read_to_string(ids_path).expect("test_corpus.py noted no request ids");
    let mut checked = 0;
    for line in noted.lines() {
        let (case, rid) = line.split_once('\t').unwrap();
        let shown = cli.run(&["--json", "log", "show", rid]);
        let folded = fold(&shown);
        for s in &cases[case] {
            assert!(
                !shown.contains(s.as_str()) && !folded.contains(&fold(s)),
                "{case}: a secret is in the log record {rid}"
            );
        }
        checked += 1;
    }
    assert!(
        checked >= cases.len() * 2,
        "only {checked} corpus records were checked"
    );
}
