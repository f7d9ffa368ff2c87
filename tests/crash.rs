//! Durability: SIGKILL the real gateway under load, restart it, and find every completed
//! response in the log with the same output hash, every forwarded request recorded, and the
//! chain intact.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use serde_json::{json, Value};
use sha2::Digest;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mamori(config: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mamori"));
    c.arg("--config")
        .arg(config)
        .args(args)
        .env_remove("MAMORI_DATABASE_URL")
        .env_remove("MAMORI_LISTEN")
        .env_remove("MAMORI_MASTER_KEY");
    c
}

fn ok(config: &std::path::Path, args: &[&str]) -> String {
    let o = mamori(config, args).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn serve(config: &std::path::Path) -> (Proc, String) {
    let mut child = mamori(config, &["serve"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let l = lines.next().expect("serve exited").unwrap();
        if let Some(rest) = l.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines.by_ref() {});
    (Proc(child), addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_completed_response() {
    let (mock, mock_base) = common::spawn_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\ndatabase_url = \"sqlite://data/m.db\"\n[policy]\nrefresh_interval_ms = 100\n[audit]\ncheckpoint_every_records = 50\n").unwrap();
    let reg = dir.path().join("p.toml");
    std::fs::write(
        &reg,
        common::mock_registration("p", "openai", &mock_base, &["gpt-test", "mock-hang"])
            .replace("env:MAMORI_TEST_PROVIDER_KEY", "none"),
    )
    .unwrap();
    ok(&config, &["provider", "register", reg.to_str().unwrap()]);
    ok(
        &config,
        &["contract", "create", "c", "--title", "t", "--client", "cl"],
    );
    ok(
        &config,
        &[
            "staff",
            "add",
            "s",
            "--name",
            "S",
            "--trained-on",
            &chrono::Utc::now().date_naive().to_string(),
        ],
    );
    let key: Value = serde_json::from_str(&ok(
        &config,
        &["--json", "key", "issue", "--staff", "s", "--contract", "c"],
    ))
    .unwrap();
    let key = key["key"].as_str().unwrap().to_string();

    let (gateway, addr) = serve(&config);
    let stop = Arc::new(AtomicBool::new(false));
    // (request id, SHA-256 of the body received for non-streamed answers)
    type Completed = Vec<(String, Option<String>)>;
    let completed: Arc<Mutex<Completed>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..8 {
        let (addr, key, stop, completed) = (
            addr.clone(),
            key.clone(),
            Arc::clone(&stop),
            Arc::clone(&completed),
        );
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let stream = w % 2 == 1;
            for i in 0..10_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let body = json!({"model": "gpt-test", "stream": stream, "messages": [{"role": "user", "content": format!("作業{w}-{i}")}]});
                let Ok(resp) = http.post(format!("http://{addr}/v1/chat/completions")).bearer_auth(&key).json(&body).send().await else { break };
                let id = resp.headers().get("x-mamori-request-id").map(|v| v.to_str().unwrap().to_string());
                let status = resp.status();
                let Ok(bytes) = resp.bytes().await else { continue };
                let Some(id) = id else { continue };
                if status != 200 {
                    continue;
                }
                if stream {
                    // Complete only if the final event arrived.
                    if String::from_utf8_lossy(&bytes).contains("data: [DONE]") {
                        completed.lock().unwrap().push((id, None));
                    }
                } else {
                    completed.lock().unwrap().push((id, Some(hex::encode(sha2::Sha256::digest(&bytes)))));
                }
            }
        }));
    }
    for _ in 0..300 {
        if completed.lock().unwrap().len() >= 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One request that is at the provider when the gateway dies: only the journal knows it.
    let hung = {
        let (addr, key) = (addr.clone(), key.clone());
        tokio::spawn(async move {
            let body = json!({"model": "mock-hang", "messages": [{"role": "user", "content": "長い作業"}]});
            let _ = reqwest::Client::new()
                .post(format!("http://{addr}/v1/chat/completions"))
                .bearer_auth(&key)
                .json(&body)
                .send()
                .await;
        })
    };
    for _ in 0..500 {
        if mock
            .received()
            .iter()
            .any(|r| r.body["model"] == "mock-hang")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        mock.received()
            .iter()
            .any(|r| r.body["model"] == "mock-hang"),
        "the hanging request never reached the provider"
    );
    let mut gateway = gateway;
    gateway.0.kill().unwrap(); // SIGKILL
    gateway.0.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let completed = completed.lock().unwrap().clone();
    assert!(
        completed.len() >= 100,
        "too little load before the kill: {}",
        completed.len()
    );
    let forwarded = mock.received().len();

    // Restart: the new instance recovers what the killed one forwarded but never logged.
    let (_gateway, _addr) = serve(&config);
    let store = mamori::store::Store::connect(&format!(
        "sqlite://{}",
        dir.path().join("data/m.db").display()
    ))
    .await
    .unwrap();
    let mut records = Vec::new();
    for _ in 0..100 {
        records = store.log_page(0, 100_000).await.unwrap();
        if records.len() >= forwarded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        records.len() >= forwarded,
        "{} requests reached the provider but only {} records exist",
        forwarded,
        records.len()
    );
    let interrupted: Vec<_> = records
        .iter()
        .filter(|r| r.model.as_deref() == Some("mock-hang"))
        .collect();
    assert_eq!(
        interrupted.len(),
        1,
        "the request in flight at the kill has one record"
    );
    assert_eq!(interrupted[0].outcome, "interrupted");
    assert!(interrupted[0].request_sha256.is_some());
    hung.abort();
    for (id, sha) in &completed {
        let r = records
            .iter()
            .find(|r| &r.request_id == id)
            .unwrap_or_else(|| panic!("completed response {id} is not in the log"));
        assert_eq!(r.outcome, "ok");
        if let Some(sha) = sha {
            assert_eq!(
                r.output_sha256.as_ref(),
                Some(sha),
                "{id}: logged output differs from what the client got"
            );
        }
    }
    eprintln!(
        "forwarded {forwarded}, completed {}, records {}, interrupted {}",
        completed.len(),
        records.len(),
        records
            .iter()
            .filter(|r| r.outcome == "interrupted")
            .count()
    );
    let out = mamori(&config, &["audit", "verify"]).output().unwrap();
    assert!(
        out.status.success(),
        "audit verify failed after the crash: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
