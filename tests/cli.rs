//! The administrator's door: the real binary, a real config file and database, a mock provider.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.toml"),
            "listen = \"127.0.0.1:0\"\ndatabase_url = \"sqlite://data/m.db\"\n[policy]\nrefresh_interval_ms = 100\n",
        )
        .unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mamori"));
        c.arg("--config")
            .arg(self.path("config.toml"))
            .args(args)
            .env_remove("MAMORI_DATABASE_URL")
            .env_remove("MAMORI_LISTEN");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// `log list` with `args`, once `done` holds for it (or after 5 s): a running gateway
    /// delivers an answer once its record is committed to the journal, and stores the record in
    /// the database a few milliseconds later.
    fn log_list_until(&self, args: &[&str], done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let mut cmd = vec!["--json", "log", "list"];
        cmd.extend_from_slice(args);
        let mut rows = Vec::new();
        for _ in 0..100 {
            let v: Value = serde_json::from_str(&self.ok(&cmd)).unwrap();
            rows = v.as_array().unwrap().clone();
            if done(&rows) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        rows
    }

    /// The mock provider started and registered; returns it and its registration.
    fn registered_mock(&self) -> (Killed, String) {
        let (mock, reg) = self.mock();
        let f = write_registration(self, "mock.toml", &reg);
        self.ok(&["provider", "register", &f]);
        (mock, reg)
    }

    /// Starts the mock provider on a free port; returns it and the local-mock registration
    /// pointing at it.
    fn mock(&self) -> (Killed, String) {
        let mut mock = Killed(
            self.cmd(&["mock-provider", "--listen", "127.0.0.1:0"])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let line = BufReader::new(mock.0.stderr.take().unwrap())
            .lines()
            .next()
            .unwrap()
            .unwrap();
        let base = line
            .split("http://")
            .nth(1)
            .unwrap()
            .trim_end_matches("/v1")
            .to_string();
        let reg = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/local-mock.toml"),
        )
        .unwrap()
        .replace("127.0.0.1:9999", &base);
        (mock, reg)
    }

    /// Starts `mamori serve`; returns it, its address and what it printed until it listened.
    fn serve(&self) -> (Killed, String, String) {
        self.serve_with(self.cmd(&["serve"]))
    }

    /// `mamori serve` allowed one CPU only (`taskset -c N`, the first CPU this test may use),
    /// where it runs a single-threaded runtime; `None` without `taskset`.
    fn serve_on_one_cpu(&self) -> Option<(Killed, String, String)> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let allowed = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
            .trim();
        let first = allowed.split([',', '-']).next()?.to_string();
        let c = self.cmd(&["serve"]);
        let mut pinned = Command::new("taskset");
        pinned
            .args(["-c", &first])
            .arg(c.get_program())
            .args(c.get_args())
            .env_remove("MAMORI_DATABASE_URL")
            .env_remove("MAMORI_LISTEN");
        Command::new("taskset").arg("-V").output().ok()?;
        Some(self.serve_with(pinned))
    }

    fn serve_with(&self, mut cmd: Command) -> (Killed, String, String) {
        let mut serve = Killed(cmd.stderr(Stdio::piped()).spawn().unwrap());
        let mut lines = BufReader::new(serve.0.stderr.take().unwrap()).lines();
        let mut startup = String::new();
        let addr = loop {
            let l = lines.next().expect("serve exited").unwrap();
            startup.push_str(&l);
            if let Some(rest) = l.split("listening on http://").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines.by_ref() {});
        (serve, addr, startup)
    }

    /// Adds `staff`, trained today, and issues them a key for `contract` (with `extra` options);
    /// returns the key.
    fn trained_key(&self, staff: &str, contract: &str, extra: &[&str]) -> String {
        let today = chrono::Utc::now().date_naive().to_string();
        self.ok(&[
            "staff",
            "add",
            staff,
            "--name",
            staff,
            "--trained-on",
            &today,
        ]);
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
        let issued: Value = serde_json::from_str(&self.ok(&args)).unwrap();
        issued["key"].as_str().unwrap().to_string()
    }

    /// Issues a key expiring on `expires` straight into the database, as one issued long ago
    /// would be (`key issue` refuses a date already past); returns its id.
    fn stored_key(&self, staff: &str, contract: &str, expires: &str) -> String {
        let url = format!("sqlite://{}", self.path("data/m.db").display());
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let store = mamori::store::Store::connect(&url).await.unwrap();
                common::issue_key(&store, staff, contract, Some(expires))
                    .await
                    .0
            })
    }

    /// Runs and expects failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(!o.status.success(), "{args:?} should have failed");
        String::from_utf8(o.stderr).unwrap()
    }
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_registration(env: &Env, name: &str, text: &str) -> String {
    let p = env.path(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn check_says_what_redaction_rules_were_loaded() {
    let env = Env::new();
    let out = env.ok(&["check"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("ok: redaction rules (built in): "))
        .unwrap_or_else(|| panic!("{out}"));
    // The shipped files, each counted, and the keyword search a character at a time.
    assert!(line.contains("8 files, 3 tag pairs"), "{line}");
    assert!(
        line.contains(" detectors, ") && line.contains(" labels; "),
        "{line}"
    );
    let used: usize = line
        .split(" keyword characters")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        (100..=400).contains(&used) && !line.contains("byte by byte"),
        "{line}"
    );
}

#[test]
fn bad_config_names_the_file_key_and_reason() {
    let env = Env::new();
    std::fs::write(
        env.path("config.toml"),
        "listen = \"127.0.0.1:0\"\ndatabse_url = \"x\"\n",
    )
    .unwrap();
    let err = env.fails(&["check"]);
    assert!(
        err.contains("config.toml") && err.contains("databse_url"),
        "{err}"
    );
    // A master key that cannot be one is caught before serving, and never printed.
    std::fs::write(env.path("config.toml"), "listen = \"127.0.0.1:0\"\n").unwrap();
    let o = env
        .cmd(&["check"])
        .env("MAMORI_MASTER_KEY", "c2hvcnQta2V5")
        .output()
        .unwrap();
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("MAMORI_MASTER_KEY") && err.contains("32") && !err.contains("c2hvcnQta2V5"),
        "{err}"
    );
    std::fs::write(env.path("config.toml"), "database_url = \"mysql://x\"\n").unwrap();
    let err = env.fails(&["staff", "list"]);
    assert!(err.contains("database_url"), "{err}");
    let err = Command::new(env!("CARGO_BIN_EXE_mamori"))
        .args(["--config", "/nonexistent/mamori.toml", "check"])
        .output()
        .unwrap();
    let err = String::from_utf8(err.stderr).unwrap();
    assert!(
        err.contains("/nonexistent/mamori.toml") && err.contains("--config"),
        "{err}"
    );
}

#[test]
fn bad_registration_files_are_refused_with_the_key_and_reason_and_never_echo_a_secret() {
    let env = Env::new();
    let good = common::mock_registration("p1", "openai", "https://api.example.com", &["m"]);
    for (text, must) in [
        (good.replace("vendor = \"Test vendor\"\n", ""), "vendor"),
        (
            good.replace("[location]", "colour = \"red\"\n[location]"),
            "colour",
        ),
        (good.replace("api = \"openai\"", "api = \"grpc\""), "api"),
        (
            good.replace("review_by = 2099-01-01", "review_by = \"soon\""),
            "soon",
        ),
        (
            good.replace("https://api.example.com", "http://api.example.com"),
            "https",
        ),
    ] {
        let f = write_registration(&env, "bad.toml", &text);
        let err = env.fails(&["provider", "register", &f]);
        assert!(
            err.contains("bad.toml") && err.contains(must),
            "{must}: {err}"
        );
    }
    let f = write_registration(
        &env,
        "leak.toml",
        &good.replace("env:MAMORI_TEST_PROVIDER_KEY", "sk-proj-SECRET123"),
    );
    let err = env.fails(&["provider", "register", &f]);
    assert!(
        err.contains("api_key") || err.contains("never written"),
        "{err}"
    );
    assert!(
        !err.contains("SECRET123"),
        "a pasted secret was echoed: {err}"
    );
    assert!(
        env.ok(&["provider", "list"]).trim().is_empty(),
        "nothing was registered"
    );
}

#[test]
fn the_quick_start_works_through_the_cli() {
    let env = Env::new();
    // A mock provider on a free port.
    let (mock, reg) = env.mock();
    let f = write_registration(&env, "mock.toml", &reg);

    assert!(env
        .ok(&["provider", "register", &f])
        .contains("registered local-mock (version 1)"));
    assert!(env.ok(&["provider", "register", &f]).contains("unchanged"));
    let f2 = write_registration(
        &env,
        "mock.toml",
        &reg.replace("\"mock-embed\"]", "\"mock-embed\", \"mock-new\"]"),
    );
    let out = env.ok(&["provider", "register", &f2]);
    assert!(out.contains("version 2") && out.contains("models"), "{out}");
    let hist: Value =
        serde_json::from_str(&env.ok(&["--json", "provider", "history", "local-mock"])).unwrap();
    assert_eq!(hist["versions"].as_array().unwrap().len(), 2);

    env.ok(&[
        "contract",
        "create",
        "demo",
        "--title",
        "デモ",
        "--client",
        "サンプル株式会社",
        "--providers",
        "local-mock",
        "--japan-only",
    ]);
    let err = env.fails(&[
        "contract",
        "create",
        "x",
        "--title",
        "t",
        "--client",
        "c",
        "--providers",
        "nope",
    ]);
    assert!(err.contains("nope") && err.contains("register"), "{err}");
    let err = env.fails(&[
        "staff",
        "add",
        "alice",
        "--name",
        "Alice",
        "--trained-on",
        "yesterday",
    ]);
    assert!(err.contains("YYYY-MM-DD"), "{err}");
    let today = chrono::Utc::now().date_naive().to_string();
    env.ok(&[
        "staff",
        "add",
        "alice",
        "--name",
        "Alice",
        "--trained-on",
        &today,
    ]);
    let issued: Value = serde_json::from_str(&env.ok(&[
        "--json",
        "key",
        "issue",
        "--staff",
        "alice",
        "--contract",
        "demo",
        "--deliverable",
        "報告書v1",
    ]))
    .unwrap();
    let key = issued["key"].as_str().unwrap().to_string();
    let key_id = issued["key_id"].as_str().unwrap().to_string();
    assert!(key.starts_with("mamori_sk_"));
    let list = env.ok(&["--json", "key", "list"]);
    assert!(
        list.contains(&key_id) && !list.contains(&key),
        "key list must never show the key"
    );
    let db = std::fs::read(env.path("data/m.db")).unwrap();
    assert!(
        !db.windows(key.len()).any(|w| w == key.as_bytes()),
        "the key is stored in plaintext"
    );

    // Serve and send one request through.
    let (serve, addr, _) = env.serve();
    let resp = reqwest::blocking_free_post(&addr, &key);
    assert_eq!(resp.0, 200, "{}", resp.1);
    let v: Value = serde_json::from_str(&resp.1).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "受け取りました: こんにちは"
    );

    let chat = |r: &Value| r["endpoint"] == "chat.completions";
    let logs = env.log_list_until(&["--contract", "demo"], |rows| rows.iter().any(chat));
    let rec = logs.iter().find(|r| chat(r)).expect("record");
    assert_eq!(rec["deliverable"], "報告書v1");
    let shown: Value = serde_json::from_str(&env.ok(&[
        "--json",
        "log",
        "show",
        rec["request_id"].as_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(
        shown["output_body"]["choices"][0]["message"]["content"],
        "受け取りました: こんにちは"
    );
    assert_eq!(
        shown["request_body"]["messages"][0]["content"],
        "こんにちは"
    );

    // Suspension from the CLI reaches the running gateway.
    env.ok(&[
        "provider",
        "suspend",
        "local-mock",
        "--reason",
        "規約変更の確認中",
    ]);
    let mut refused = false;
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let (s, body) = reqwest::blocking_free_post(&addr, &key);
        if s == 403 && body.contains("provider_not_approved") {
            refused = true;
            break;
        }
    }
    assert!(
        refused,
        "suspension did not reach the running gateway within 5 s"
    );
    env.ok(&["key", "revoke", &key_id]);
    assert!(env
        .fails(&["key", "revoke", &key_id])
        .contains("no unrevoked key"));
    drop(serve);
    drop(mock);
}

/// With one CPU the binary runs a single-threaded runtime (`commands::runtime`): concurrent
/// requests, their records and a policy change all go through it as with several workers.
#[test]
fn serves_on_a_single_cpu() {
    let env = Env::new();
    let (mock, _) = env.registered_mock();
    env.ok(&["contract", "create", "one", "--title", "t", "--client", "c"]);
    let key = env.trained_key("bob", "one", &[]);
    let Some((serve, addr, _)) = env.serve_on_one_cpu() else {
        eprintln!("taskset or /proc is not available; the single-CPU runtime was not exercised");
        return;
    };
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (addr, key) = (addr.clone(), key.clone());
            std::thread::spawn(move || {
                (0..3)
                    .map(|i| reqwest::blocking_post_text(&addr, &key, &format!("依頼{t}-{i}")))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        for (status, body) in t.join().unwrap() {
            assert_eq!(status, 200, "{body}");
            assert!(body.contains("受け取りました: 依頼"), "{body}");
        }
    }
    let logs = env.log_list_until(&["--contract", "one"], |rows| rows.len() >= 24);
    assert_eq!(logs.len(), 24, "{logs:?}");
    // The policy refresh runs on the same thread: a suspension still reaches the gateway.
    env.ok(&["provider", "suspend", "local-mock", "--reason", "確認中"]);
    let refused = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        reqwest::blocking_free_post(&addr, &key).0 == 403
    });
    assert!(
        refused,
        "suspension did not reach the single-CPU gateway within 5 s"
    );
    drop(serve);
    drop(mock);
}

/// A tiny blocking HTTP client over std, so this test needs no async runtime.
mod reqwest {
    use std::io::{Read, Write};

    pub fn blocking_free_post(addr: &str, key: &str) -> (u16, String) {
        blocking_post_text(addr, key, "こんにちは")
    }

    pub fn blocking_post_text(addr: &str, key: &str, text: &str) -> (u16, String) {
        let body = serde_json::json!({"model": "mock-gpt", "messages": [{"role": "user", "content": text}]}).to_string();
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out[9..12].parse().unwrap();
        let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        (status, body)
    }
}

#[test]
fn master_key_rotation_keeps_bodies_readable_and_verify_exits_non_zero_on_tampering() {
    let env = Env::new();
    let (mock, _) = env.registered_mock();
    env.ok(&[
        "contract", "create", "demo", "--title", "t", "--client", "c",
    ]);
    let key = env.trained_key("alice", "demo", &[]);
    let (serve, addr, startup) = env.serve();
    assert!(
        startup.contains("back it up"),
        "the first run must tell the operator to back up the master key: {startup}"
    );
    let (s, _) = reqwest::blocking_free_post(&addr, &key);
    assert_eq!(s, 200);
    drop(serve);
    let master = env.path("data/master.key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&master).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    let logs: Value = serde_json::from_str(&env.ok(&["--json", "log", "list"])).unwrap();
    let id = logs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["endpoint"] == "chat.completions")
        .unwrap()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    // `--since` is a point in time whatever its offset; what is not one is an error.
    let jst = chrono::FixedOffset::east_opt(9 * 3600).unwrap();
    let since = |t: chrono::DateTime<chrono::Utc>| -> usize {
        let s = t.with_timezone(&jst).to_rfc3339();
        let out = env.ok(&["--json", "log", "list", "--since", &s]);
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    let hour = chrono::Duration::hours(1);
    assert!(since(chrono::Utc::now() - hour) >= 1);
    assert_eq!(since(chrono::Utc::now() + hour), 0);
    let err = env.fails(&["log", "list", "--since", "yesterday"]);
    assert!(
        err.contains("`yesterday`") && err.contains("RFC 3339"),
        "{err}"
    );
    let show = |env: &Env| -> Value {
        serde_json::from_str(&env.ok(&["--json", "log", "show", &id])).unwrap()
    };
    assert_eq!(
        show(&env)["output_body"]["choices"][0]["message"]["content"],
        "受け取りました: こんにちは"
    );

    // Rotate to a new master key.
    let new = env.path("new-master.key");
    env.ok(&["audit", "new-key", new.to_str().unwrap()]);
    assert!(env
        .ok(&[
            "audit",
            "rotate-master",
            "--new-key-file",
            new.to_str().unwrap()
        ])
        .contains("re-wrapped 1"));
    let cfg = std::fs::read_to_string(env.path("config.toml")).unwrap();
    std::fs::write(
        env.path("config.toml"),
        format!("{cfg}[audit]\nmaster_key_file = \"new-master.key\"\n"),
    )
    .unwrap();
    assert_eq!(
        show(&env)["output_body"]["choices"][0]["message"]["content"],
        "受け取りました: こんにちは",
        "readable with the new key alone"
    );
    std::fs::remove_file(&master).unwrap();
    env.ok(&["audit", "verify"]);

    // A master key that is not the database's stops serve before it forwards anything.
    let wrong = mamori::audit::crypto::Key::random().to_base64();
    let mut serve = Killed(
        env.cmd(&["serve"])
            .env("MAMORI_MASTER_KEY", &wrong)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut err = String::new();
    for l in BufReader::new(serve.0.stderr.take().unwrap()).lines() {
        let l = l.unwrap();
        assert!(
            !l.contains("listening on"),
            "serve must not start: {err}{l}"
        );
        err.push_str(&l);
    }
    assert!(
        !serve.0.wait().unwrap().success(),
        "serve must not start: {err}"
    );
    assert!(
        err.contains("contract `demo`") && err.contains("audit.previous_master_key_files"),
        "{err}"
    );
    assert!(
        !err.contains(&wrong),
        "the key itself is never printed: {err}"
    );

    // Tampering makes `audit verify` fail with a non-zero exit naming the record.
    let db = format!("sqlite://{}", env.path("data/m.db").display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(&db).await.unwrap();
        sqlx::query("UPDATE log_records SET deliverable = 'forged' WHERE seq = 1")
            .execute(&mut c)
            .await
            .unwrap();
    });
    let err = env.fails(&["audit", "verify"]);
    assert!(err.contains("FAILED") && err.contains("seq 1"), "{err}");
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::AnyConnection::connect(&db).await.unwrap();
        sqlx::query("UPDATE log_records SET deliverable = NULL WHERE seq = 1")
            .execute(&mut c)
            .await
            .unwrap();
    });
    env.ok(&["audit", "verify"]);

    // Cutting off the tail with the chain head and the database's checkpoints is caught by
    // plain `audit verify` against the checkpoint file beside the database.
    env.ok(&["audit", "checkpoint"]);
    assert!(env
        .ok(&["audit", "verify"])
        .contains("checked against the checkpoints in"));
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::AnyConnection::connect(&db).await.unwrap();
        for q in [
            "DELETE FROM log_records WHERE seq = (SELECT MAX(seq) FROM log_records)",
            "UPDATE chain_head SET seq = COALESCE((SELECT MAX(seq) FROM log_records), 0), record_hash = COALESCE((SELECT record_hash FROM log_records ORDER BY seq DESC LIMIT 1), '0000000000000000000000000000000000000000000000000000000000000000')",
            "DELETE FROM checkpoints",
        ] {
            sqlx::query(q).execute(&mut c).await.unwrap();
        }
    });
    let err = env.fails(&["audit", "verify"]);
    assert!(
        err.contains("FAILED") && err.contains("checkpoint"),
        "{err}"
    );
    drop(mock);
}

#[test]
fn an_auditor_exports_verifies_files_the_form_and_scans_a_deliverable() {
    let env = Env::new();
    let (mock, reg) = env.registered_mock();
    env.ok(&[
        "contract",
        "create",
        "demo",
        "--title",
        "基幹システム設計",
        "--client",
        "発注省",
        "--contract-date",
        "2026-04-01",
        "--purpose",
        "議事録の要約",
    ]);
    env.ok(&[
        "staff",
        "add",
        "alice",
        "--name",
        "Alice",
        "--trained-on",
        &chrono::Utc::now().date_naive().to_string(),
    ]);
    let k1: Value = serde_json::from_str(&env.ok(&[
        "--json",
        "key",
        "issue",
        "--staff",
        "alice",
        "--contract",
        "demo",
        "--deliverable",
        "報告書v1",
    ]))
    .unwrap();
    let k2: Value = serde_json::from_str(&env.ok(&[
        "--json",
        "key",
        "issue",
        "--staff",
        "alice",
        "--contract",
        "demo",
    ]))
    .unwrap();
    let (serve, addr, _) = env.serve();
    assert_eq!(
        reqwest::blocking_free_post(&addr, k1["key"].as_str().unwrap()).0,
        200
    );
    // An untagged request whose answer ends up in a deliverable anyway.
    let prompt = "来週の定例会議では、移行計画の進捗と課題、次期フェーズの体制について確認し、関係部署との調整事項を整理する。";
    assert_eq!(
        reqwest::blocking_post_text(&addr, k2["key"].as_str().unwrap(), prompt).0,
        200
    );
    drop(serve);

    // Disclosure of the tagged deliverable, verified, then edited.
    let md = env.path("d.md");
    env.ok(&[
        "disclose",
        "--contract",
        "demo",
        "--deliverable",
        "報告書v1",
        "--out",
        md.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(
        text.contains("本成果物の作成にあたり、以下の生成AIサービスを利用しました")
            && text.contains("mamori local mock provider"),
        "{text}"
    );
    assert!(env
        .ok(&["disclose", "verify", md.to_str().unwrap()])
        .contains("matches"));
    std::fs::write(
        &md,
        text.replace("mamori local mock provider", "別のサービス"),
    )
    .unwrap();
    let err = env.fails(&["disclose", "verify", md.to_str().unwrap()]);
    assert!(err.contains("does NOT match"), "{err}");
    let en = env.ok(&[
        "disclose",
        "--contract",
        "demo",
        "--deliverable",
        "報告書v1",
        "--format",
        "csv",
        "--lang",
        "en",
    ]);
    assert!(
        en.lines().count() == 2 && en.contains("output_sha256"),
        "{en}"
    );

    // The form, filed; a registration change calls for re-notification.
    let html = env.path("form.html");
    env.ok(&[
        "form",
        "--contract",
        "demo",
        "--format",
        "html",
        "--out",
        html.to_str().unwrap(),
        "--mark-filed",
    ]);
    assert!(std::fs::read_to_string(&html)
        .unwrap()
        .contains("機密データの保存等に関する届出書"));
    assert!(env.ok(&["form", "status"]).contains("demo: current"));
    let f2 = write_registration(
        &env,
        "mock.toml",
        &reg.replace(
            "countries = [\"JP\"]",
            "countries = [\"JP\"]\n[certifications]\nnames = [\"ISO/IEC 27001\"]",
        ),
    );
    env.ok(&["provider", "register", &f2]);
    let st = env.ok(&["form", "status"]);
    assert!(
        st.contains("demo: CHANGED") && st.contains("ISO/IEC 27001"),
        "{st}"
    );

    // A deliverable nobody tagged: scan finds the logged answer in it, and disclose takes it in.
    let doc = env.path("memo.txt");
    std::fs::write(
        &doc,
        format!(
            "社内メモ（人が書いた前置き）\n{}\n以上、担当者が確認済みの内容を記載した。\n",
            &prompt.replace("、", "、\n")
        ),
    )
    .unwrap();
    let scan = env.ok(&[
        "--json",
        "scan",
        "--contract",
        "demo",
        doc.to_str().unwrap(),
    ]);
    let scan: Value = serde_json::from_str(&scan).unwrap();
    assert_eq!(scan["request_ids"].as_array().unwrap().len(), 1, "{scan}");
    assert!(
        scan["files"][0]["coverage"].as_f64().unwrap() > 0.4,
        "{scan}"
    );
    let d = env.ok(&[
        "disclose",
        "--contract",
        "demo",
        "--deliverable",
        "memo",
        "--scan",
        doc.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let d: Value = serde_json::from_str(&d).unwrap();
    assert_eq!(d["interactions"], 1, "{d}");
    assert_eq!(d["records"][0]["request_id"], scan["request_ids"][0]);
    drop(mock);
}

/// The difference lines `form status` prints under `contract`'s heading.
fn form_differences(status: &str, contract: &str) -> Vec<String> {
    status
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{contract}: ")))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .map(|l| l.trim().to_string())
        .collect()
}

#[test]
fn form_status_compares_providers_by_id_not_by_position() {
    let env = Env::new();
    let register = |id: &str| {
        let reg = common::mock_registration(id, "openai", "https://api.example.com", &[id]);
        let f = write_registration(&env, &format!("{id}.toml"), &reg);
        env.ok(&["provider", "register", &f]);
    };
    register("p-a");
    register("p-c");
    env.ok(&["contract", "create", "k", "--title", "t", "--client", "c"]);
    env.ok(&[
        "form",
        "--contract",
        "k",
        "--format",
        "json",
        "--mark-filed",
    ]);
    assert!(env.ok(&["form", "status"]).contains("k: current"));

    // A provider sorted between the two: reported as added, and nothing about p-c.
    register("p-b");
    let st = env.ok(&["form", "status"]);
    let d = form_differences(&st, "k");
    assert!(st.contains("k: CHANGED"), "{st}");
    assert_eq!(d.len(), 3, "{st}");
    assert!(
        d.iter()
            .all(|l| l.contains(": added ") && l.contains("p-b") && !l.contains("p-c")),
        "{st}"
    );

    // Filed again, then the first one suspended: reported as removed, nothing about the others.
    env.ok(&[
        "form",
        "--contract",
        "k",
        "--format",
        "json",
        "--mark-filed",
    ]);
    env.ok(&["provider", "suspend", "p-a", "--reason", "review"]);
    let st = env.ok(&["form", "status"]);
    let d = form_differences(&st, "k");
    assert_eq!(d.len(), 3, "{st}");
    assert!(
        d.iter().all(|l| l.contains(": removed ")
            && l.contains("p-a")
            && !l.contains("p-b")
            && !l.contains("p-c")),
        "{st}"
    );

    // A new version of one provider: named by its id, the other providers untouched.
    let reg = common::mock_registration("p-b", "openai", "https://api.example.com", &["p-b"])
        .replace(
            "countries = [\"US\"]",
            "countries = [\"US\"]\n[certifications]\nnames = [\"ISO/IEC 27001\"]",
        );
    let f = write_registration(&env, "p-b.toml", &reg);
    env.ok(&["provider", "register", &f]);
    let st = env.ok(&["form", "status"]);
    let d = form_differences(&st, "k");
    assert!(
        d.contains(&"cloud_services[p-b].certifications: added \"ISO/IEC 27001\"".to_string())
            && d.contains(&"cloud_services[p-b].registration: \"p-b v1\" → \"p-b v2\"".to_string()),
        "{st}"
    );
}

#[test]
fn lists_show_ended_contracts_and_expired_keys_as_such() {
    let env = Env::new();
    let create = |id: &str, extra: &[&str]| {
        let mut args = vec!["contract", "create", id, "--title", "t", "--client", "c"];
        args.extend_from_slice(extra);
        env.ok(&args);
    };
    create("old", &["--ends", "2021-03-31"]);
    create("now", &[]);
    create("gone", &[]);
    env.ok(&["contract", "close", "gone"]);
    let text = env.ok(&["contract", "list"]);
    for (id, state) in [("old", "ended"), ("now", "active"), ("gone", "closed")] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{id}\t{state}\t"))),
            "{id} should be {state}: {text}"
        );
    }
    let json: Value = serde_json::from_str(&env.ok(&["--json", "contract", "list"])).unwrap();
    let state = |id: &str| {
        json.as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| (c["state"].clone(), c["status"].clone()))
            .unwrap()
    };
    assert_eq!(state("old"), ("ended".into(), "active".into()), "{json}");
    assert_eq!(state("now"), ("active".into(), "active".into()), "{json}");

    env.trained_key("alice", "now", &[]);
    let expired = env.stored_key("alice", "now", "2020-01-01");
    let text = env.ok(&["key", "list"]);
    let line = text.lines().find(|l| l.starts_with(&expired)).unwrap();
    assert!(
        line.contains("\texpired\t") && line.contains("expires: 2020-01-01"),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.contains("\tactive\t")).count(),
        1,
        "{text}"
    );
    let json: Value = serde_json::from_str(&env.ok(&["--json", "key", "list"])).unwrap();
    let states: Vec<_> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["id"] == expired.as_str(),
                k["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [(false, "active".to_string()), (true, "expired".to_string())],
        "{json}"
    );
}

#[test]
fn dates_that_cannot_be_right_are_refused() {
    let env = Env::new();
    let day = |offset: i64| {
        (chrono::Utc::now().date_naive() + chrono::Duration::days(offset)).to_string()
    };
    env.ok(&[
        "contract", "create", "demo", "--title", "t", "--client", "c",
    ]);

    // Training in the future has not taken place.
    let err = env.fails(&[
        "staff",
        "add",
        "alice",
        "--name",
        "Alice",
        "--trained-on",
        &day(1),
    ]);
    assert!(
        err.contains(&format!("--trained-on {} is in the future", day(1)))
            && err.contains("once it has taken place"),
        "{err}"
    );
    assert!(env.ok(&["staff", "list"]).is_empty(), "nothing was added");
    env.ok(&[
        "staff",
        "add",
        "alice",
        "--name",
        "Alice",
        "--trained-on",
        &day(-10),
    ]);
    let err = env.fails(&["staff", "train", "alice", "--on", &day(1)]);
    assert!(err.contains("is in the future"), "{err}");

    // An earlier training does not replace a later one.
    let err = env.fails(&["staff", "train", "alice", "--on", &day(-20)]);
    assert!(
        err.contains(&format!("on {}, is later than {}", day(-10), day(-20))),
        "{err}"
    );
    let trained = || {
        let v: Value = serde_json::from_str(&env.ok(&["--json", "staff", "list"])).unwrap();
        v[0]["trained_on"].as_str().unwrap().to_string()
    };
    assert_eq!(trained(), day(-10));
    assert!(env
        .ok(&["staff", "train", "alice", "--on", &day(0)])
        .contains(&format!("recorded training of alice on {}", day(0))));
    assert_eq!(trained(), day(0));

    // A key that has already expired would never work.
    let issue = |expires: &str| {
        env.run(&[
            "key",
            "issue",
            "--staff",
            "alice",
            "--contract",
            "demo",
            "--expires",
            expires,
        ])
    };
    let o = issue(&day(-1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains(&format!("--expires {} is already past", day(-1)))
            && err.contains("later date"),
        "{err}"
    );
    assert!(env.ok(&["key", "list"]).is_empty(), "no key was issued");
    assert!(issue(&day(0)).status.success(), "a key may expire today");
    assert!(env.ok(&["key", "list"]).contains("\tactive\t"));
}

#[test]
fn suspending_or_resuming_twice_changes_and_records_nothing() {
    let env = Env::new();
    let reg = common::mock_registration("p", "openai", "https://api.example.com", &["m"]);
    let f = write_registration(&env, "p.toml", &reg);
    env.ok(&["provider", "register", &f]);
    let out = env.ok(&["provider", "resume", "p"]);
    assert!(out.contains("p is not suspended; nothing changed"), "{out}");
    env.ok(&["provider", "suspend", "p", "--reason", "incident"]);
    let out = env.ok(&["provider", "suspend", "p", "--reason", "other"]);
    assert!(
        out.contains("p is already suspended (incident); nothing changed"),
        "{out}"
    );
    let shown: Value = serde_json::from_str(&env.ok(&["provider", "show", "p"])).unwrap();
    assert_eq!(shown["suspend_reason"], "incident");
    assert!(env.ok(&["provider", "resume", "p"]).contains("resumed p"));
    assert!(env
        .ok(&["provider", "resume", "p"])
        .contains("not suspended"));
    let hist: Value =
        serde_json::from_str(&env.ok(&["--json", "provider", "history", "p"])).unwrap();
    let actions: Vec<_> = hist["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, ["suspend", "resume"], "{hist}");
    let err = env.fails(&["provider", "resume", "nope"]);
    assert!(err.contains("no provider `nope`"), "{err}");
}
