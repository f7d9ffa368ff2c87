//! Every refusal of SPEC.md's list: the code in each API's own error shape, nothing forwarded,
//! and a record in the log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::*;
use mamori::store::NewContract;
use serde_json::{json, Value};
use std::time::Duration;

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "こんにちは"}]})
}

fn msg(model: &str) -> Value {
    json!({"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "こんにちは"}]})
}

/// Asserts an OpenAI-shaped refusal with `code`, that nothing reached the provider, and
/// that the log recorded it.
async fn expect_openai(app: &TestApp, key: &str, body: &Value, status: u16, code: &str) {
    let before = app.mock.received().len();
    let (s, b, id) = read(app.post_with_key("/v1/chat/completions", body, key).await).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (status, Some(code)),
        "{b}"
    );
    assert!(
        b["error"]["message"].as_str().unwrap().len() > 20,
        "the message must say what to do: {b}"
    );
    assert!(b["error"]["type"].is_string());
    assert!(
        !b.to_string().contains(key) || key.len() < 8,
        "the key was echoed"
    );
    assert_eq!(
        app.mock.received().len(),
        before,
        "a refused request reached the provider"
    );
    let id = id.expect("refusals carry X-Mamori-Request-Id");
    wait_record(app, &id, code).await;
}

async fn expect_anthropic(app: &TestApp, key: &str, body: &Value, status: u16, code: &str) {
    let before = app.mock.received().len();
    let r = app
        .http
        .post(format!("{}/v1/messages", app.addr))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap();
    let (s, b, id) = read(r).await;
    assert_eq!(s, status, "{b}");
    assert_eq!(b["type"], "error", "{b}");
    assert_eq!(b["error"]["code"], code, "{b}");
    assert!(b["error"]["type"].is_string() && b["error"]["message"].is_string());
    assert_eq!(
        app.mock.received().len(),
        before,
        "a refused request reached the provider"
    );
    wait_record(app, &id.unwrap(), code).await;
}

async fn wait_record(app: &TestApp, id: &str, code: &str) {
    for _ in 0..200 {
        if let Some(rec) = app.store.log_record(id).await.unwrap() {
            assert_eq!(rec.code.as_deref(), Some(code));
            assert_ne!(rec.outcome, "ok");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("refusal {code} was not logged");
}

/// POSTs a chat request with this `Authorization` header, or none; the status and body.
async fn post_authorization(app: &TestApp, authorization: Option<&str>) -> (u16, Value) {
    let mut rb = app
        .http
        .post(format!("{}/v1/chat/completions", app.addr))
        .json(&chat("gpt-test"));
    if let Some(a) = authorization {
        rb = rb.header("authorization", a);
    }
    let (s, b, _) = read(rb.send().await.unwrap()).await;
    (s, b)
}

#[tokio::test]
async fn key_checks() {
    let app = spawn_app().await;
    expect_openai(
        &app,
        "mamori_sk_not-a-real-key",
        &chat("gpt-test"),
        401,
        "invalid_api_key",
    )
    .await;
    expect_anthropic(&app, "nope", &msg("claude-test"), 401, "invalid_api_key").await;
    let (s, b) = post_authorization(&app, None).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    // The key sent without `Bearer `: the message says what is wrong with the header.
    let (s, b) = post_authorization(&app, Some(&app.key)).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    let said = b["error"]["message"].as_str().unwrap();
    assert!(said.contains("not `Bearer KEY`"), "{said}");
    assert!(!said.contains(&app.key), "the key is never echoed: {said}");

    let (_, expired) = issue_key(&app.store, "alice", "c1", Some("2020-01-01")).await;
    app.wait_for_policy().await;
    expect_openai(&app, &expired, &chat("gpt-test"), 401, "key_expired").await;

    app.store.revoke_key(&app.key_id).await.unwrap();
    app.wait_for_policy().await;
    expect_openai(&app, &app.key, &chat("gpt-test"), 401, "key_revoked").await;
    expect_anthropic(&app, &app.key, &msg("claude-test"), 401, "key_revoked").await;
    // The refusal names who was refused, for incident reports.
    let logs = app
        .store
        .log_list(&mamori::store::LogFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let revoked = logs
        .iter()
        .rev()
        .find(|r| r.code.as_deref() == Some("key_revoked"))
        .unwrap();
    assert_eq!(
        (revoked.staff_id.as_deref(), revoked.contract_id.as_deref()),
        (Some("alice"), Some("c1"))
    );
}

#[tokio::test]
async fn staff_without_current_training_are_refused() {
    let app = spawn_app().await;
    add_staff(&app.store, "bob", None).await;
    add_staff(&app.store, "carol", Some("2019-04-01")).await;
    let (_, bob) = issue_key(&app.store, "bob", "c1", None).await;
    let (_, carol) = issue_key(&app.store, "carol", "c1", None).await;
    app.wait_for_policy().await;
    expect_openai(&app, &bob, &chat("gpt-test"), 403, "training_not_current").await;
    expect_anthropic(
        &app,
        &carol,
        &msg("claude-test"),
        403,
        "training_not_current",
    )
    .await;
    app.store
        .train_staff("carol", &chrono::Utc::now().date_naive().to_string())
        .await
        .unwrap();
    app.wait_for_policy().await;
    let (s, _, _) = read(
        app.post_with_key("/v1/chat/completions", &chat("gpt-test"), &carol)
            .await,
    )
    .await;
    assert_eq!(s, 200, "recording training lets staff back in");
}

#[tokio::test]
async fn closed_and_ended_contracts_are_refused() {
    let app = spawn_app().await;
    app.store
        .create_contract(&NewContract {
            id: "old".into(),
            title: "t".into(),
            client: "c".into(),
            ends_on: Some("2021-03-31".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let (_, old) = issue_key(&app.store, "alice", "old", None).await;
    app.wait_for_policy().await;
    expect_openai(&app, &old, &chat("gpt-test"), 403, "contract_inactive").await;
    app.store.close_contract("c1").await.unwrap();
    app.wait_for_policy().await;
    // Closing revokes the contract's keys, so the key check answers first.
    expect_openai(&app, &app.key, &chat("gpt-test"), 401, "key_revoked").await;
}

#[tokio::test]
async fn unregistered_models_and_wrong_api() {
    let app = spawn_app().await;
    expect_openai(
        &app,
        &app.key,
        &chat("gpt-unknown"),
        404,
        "model_not_registered",
    )
    .await;
    expect_anthropic(
        &app,
        &app.key,
        &msg("claude-unknown"),
        404,
        "model_not_registered",
    )
    .await;
    // A model registered for the Anthropic API is not reachable through the OpenAI endpoint.
    expect_openai(
        &app,
        &app.key,
        &chat("claude-test"),
        404,
        "model_not_registered",
    )
    .await;
    expect_openai(
        &app,
        &app.key,
        &chat("other-provider/gpt-test"),
        404,
        "model_not_registered",
    )
    .await;
}

#[tokio::test]
async fn providers_that_train_are_suspended_or_overdue_are_not_approved() {
    let app = spawn_app().await;
    let base = app.mock_base.clone();
    register(
        &app.store,
        &mock_registration("trainer", "openai", &base, &["free-model"])
            .replace("trains_on_inputs = false", "trains_on_inputs = true"),
    )
    .await;
    register(
        &app.store,
        &mock_registration("unknown-facts", "openai", &base, &["nofacts-model"])
            .replace("trains_on_inputs = false\n", ""),
    )
    .await;
    register(
        &app.store,
        &mock_registration("overdue", "openai", &base, &["old-model"])
            .replace("review_by = 2099-01-01", "review_by = 2026-02-01"),
    )
    .await;
    app.wait_for_policy().await;
    expect_openai(
        &app,
        &app.key,
        &chat("free-model"),
        403,
        "provider_not_approved",
    )
    .await;
    expect_openai(
        &app,
        &app.key,
        &chat("nofacts-model"),
        403,
        "provider_not_approved",
    )
    .await;
    expect_openai(
        &app,
        &app.key,
        &chat("old-model"),
        403,
        "provider_not_approved",
    )
    .await;

    // Suspension reaches the running gateway within seconds, and resuming restores service.
    app.store
        .set_provider_suspended("mock-anthropic", Some("incident under review"), "test")
        .await
        .unwrap();
    app.wait_for_policy().await;
    expect_anthropic(
        &app,
        &app.key,
        &msg("claude-test"),
        403,
        "provider_not_approved",
    )
    .await;
    app.store
        .set_provider_suspended("mock-anthropic", None, "test")
        .await
        .unwrap();
    app.wait_for_policy().await;
    let r = app
        .http
        .post(format!("{}/v1/messages", app.addr))
        .header("x-api-key", &app.key)
        .json(&msg("claude-test"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_model_served_by_a_training_and_a_clean_provider_goes_only_to_the_clean_one() {
    let app = spawn_app().await;
    let (dirty, dirty_base) = spawn_mock().await;
    // "aa-" sorts first, so a first-match router would pick it.
    register(
        &app.store,
        &mock_registration("aa-free-tier", "openai", &dirty_base, &["gpt-test"])
            .replace("trains_on_inputs = false", "trains_on_inputs = true"),
    )
    .await;
    app.wait_for_policy().await;
    let (s, _, _) = app.call("/v1/chat/completions", &chat("gpt-test")).await;
    assert_eq!(s, 200);
    assert!(
        dirty.received().is_empty(),
        "a request reached a provider that trains on inputs"
    );
    expect_openai(
        &app,
        &app.key,
        &chat("aa-free-tier/gpt-test"),
        403,
        "provider_not_approved",
    )
    .await;
    assert!(dirty.received().is_empty());
}

#[tokio::test]
async fn contracts_limit_providers_and_can_require_japan() {
    let app = spawn_app().await;
    app.store
        .create_contract(&NewContract {
            id: "anthropic-only".into(),
            title: "t".into(),
            client: "c".into(),
            providers: Some(vec!["mock-anthropic".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    app.store
        .create_contract(&NewContract {
            id: "jp".into(),
            title: "t".into(),
            client: "c".into(),
            japan_only: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let (_, k1) = issue_key(&app.store, "alice", "anthropic-only", None).await;
    let (_, k2) = issue_key(&app.store, "alice", "jp", None).await;
    app.wait_for_policy().await;
    expect_openai(
        &app,
        &k1,
        &chat("gpt-test"),
        403,
        "provider_not_allowed_for_contract",
    )
    .await;
    expect_openai(
        &app,
        &k2,
        &chat("gpt-test"),
        403,
        "provider_not_allowed_for_contract",
    )
    .await;
    register(
        &app.store,
        &mock_registration("jp-provider", "openai", &app.mock_base, &["jp-model"]).replace(
            "storage = \"abroad\"\ncountries = [\"US\"]",
            "storage = \"japan\"\ncountries = [\"JP\"]",
        ),
    )
    .await;
    app.wait_for_policy().await;
    let (s, _, _) = read(
        app.post_with_key("/v1/chat/completions", &chat("jp-model"), &k2)
            .await,
    )
    .await;
    assert_eq!(
        s, 200,
        "a Japan-only contract reaches a provider storing in Japan"
    );
}

#[tokio::test]
async fn non_text_content_is_refused_unless_the_contract_allows_it() {
    let app = spawn_app().await;
    let img = json!({"model": "gpt-test", "messages": [{"role": "user", "content": [{"type": "text", "text": "これは?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]});
    expect_openai(&app, &app.key, &img, 400, "unsupported_content").await;
    let doc = json!({"model": "claude-test", "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "AAAA"}}]}]});
    expect_anthropic(&app, &app.key, &doc, 400, "unsupported_content").await;
    app.store
        .create_contract(&NewContract {
            id: "media".into(),
            title: "t".into(),
            client: "c".into(),
            allow_non_text: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let (_, k) = issue_key(&app.store, "alice", "media", None).await;
    app.wait_for_policy().await;
    let (s, _, _) = read(app.post_with_key("/v1/chat/completions", &img, &k).await).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn bad_bodies_are_refused_clearly() {
    let app = spawn_app().await;
    for (body, what) in [
        ("{not json", "valid JSON"),
        ("[1,2]", "JSON object"),
        (r#"{"messages": []}"#, "`model` is required"),
        (
            r#"{"model": 5, "messages": []}"#,
            "`model` must be a string",
        ),
        (r#"{"model": "gpt-test", "messages": "hi"}"#, "`messages`"),
        (
            r#"{"model": "gpt-test", "messages": [], "stream": "yes"}"#,
            "`stream`",
        ),
    ] {
        let r = app
            .http
            .post(format!("{}/v1/chat/completions", app.addr))
            .bearer_auth(&app.key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (s, b, id) = read(r).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{body}: {b}"
        );
        assert!(
            b["error"]["message"].as_str().unwrap().contains(what),
            "{body}: {b}"
        );
        wait_record(&app, &id.unwrap(), "invalid_request").await;
    }
    let r = app
        .http
        .post(format!("{}/v1/messages", app.addr))
        .header("x-api-key", &app.key)
        .body("{oops")
        .send()
        .await
        .unwrap();
    let (s, b, _) = read(r).await;
    assert_eq!(
        (s, b["type"].as_str(), b["error"]["type"].as_str()),
        (400, Some("error"), Some("invalid_request_error"))
    );

    // The test gateway allows 64 KiB.
    let huge = json!({"model": "gpt-test", "messages": [{"role": "user", "content": "あ".repeat(100_000)}]});
    expect_openai(&app, &app.key, &huge, 413, "request_too_large").await;
    assert!(app.mock.received().is_empty());
}

#[tokio::test]
async fn provider_failures_are_upstream_errors() {
    let app = spawn_app().await;
    // The provider's own error passes through with its status; the log records it.
    let (s, b, id) = app.call("/v1/chat/completions", &chat("mock-error")).await;
    assert_eq!(s, 500, "{b}");
    assert!(app.gw.log.flush().await);
    let rec = app.store.log_record(&id.unwrap()).await.unwrap().unwrap();
    assert_eq!(
        (rec.outcome.as_str(), rec.code.as_deref()),
        ("upstream_error", Some("upstream_error"))
    );
    // An unreachable provider.
    register(
        &app.store,
        &mock_registration("gone", "openai", "http://127.0.0.1:1", &["gone-model"]),
    )
    .await;
    app.wait_for_policy().await;
    expect_openai(&app, &app.key, &chat("gone-model"), 502, "upstream_error").await;
    let (_, b, _) = app.call("/v1/chat/completions", &chat("gone-model")).await;
    let message = b["error"]["message"].as_str().unwrap();
    assert!(message.contains("connection failed"), "{message}");
}

/// Registers a provider serving `model` at `127.0.0.1:PORT` that reads each request, waits
/// `delay`, then sends `reply` (perhaps only part of an answer) and holds the connection open
/// without another byte.
async fn stalling_provider(app: &TestApp, model: &str, delay: Duration, reply: &'static [u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = s.read(&mut buf).await;
                tokio::time::sleep(delay).await;
                let _ = s.write_all(reply).await;
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
    });
    let id = format!("{model}-provider");
    register(
        &app.store,
        &mock_registration(&id, "openai", &base, &[model]),
    )
    .await;
    app.wait_for_policy().await;
}

/// The test gateways below give providers 1 s.
fn assert_ended_at_the_limit(took: Duration, what: &str) {
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(1600),
        "{what} ended after {took:?}, not at the 1 s limit"
    );
}

#[tokio::test]
async fn a_provider_that_stalls_is_an_upstream_error_within_the_time_limit() {
    let app = spawn_app_with(|c| c.upstream_timeout = Duration::from_secs(1)).await;
    stalling_provider(&app, "silent-model", Duration::ZERO, b"").await;
    // Its head comes 0.8 s late: one deadline covers head and body, so the answer still ends
    // at 1 s, not 1.8 s.
    stalling_provider(
        &app,
        "half-model",
        Duration::from_millis(800),
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"id\":",
    )
    .await;
    for (model, says) in [
        ("silent-model", "timed out"),
        ("half-model", "broke off its answer"),
    ] {
        let started = std::time::Instant::now();
        let (s, b, id) = app.call("/v1/chat/completions", &chat(model)).await;
        assert_ended_at_the_limit(started.elapsed(), model);
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (502, Some("upstream_error")),
            "{b}"
        );
        let message = b["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{model}: {message}");
        wait_record(&app, &id.unwrap(), "upstream_error").await;
    }
}

#[tokio::test]
async fn a_stream_that_stalls_ends_at_the_time_limit_and_is_recorded_as_an_upstream_error() {
    let app = spawn_app_with(|c| c.upstream_timeout = Duration::from_secs(1)).await;
    stalling_provider(
        &app,
        "stall-model",
        Duration::ZERO,
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n\
          57\r\ndata: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{}}]}\n\n\r\n",
    )
    .await;
    let mut body = chat("stall-model");
    body["stream"] = json!(true);
    let started = std::time::Instant::now();
    let resp = app.post("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let id = resp
        .headers()
        .get("x-mamori-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let text = resp.text().await.unwrap();
    assert_ended_at_the_limit(started.elapsed(), "the stream");
    assert!(
        text.contains("chat.completion.chunk"),
        "the first event arrives: {text}"
    );
    assert!(!text.contains("[DONE]"), "{text}");
    assert!(app.gw.log.flush().await);
    let rec = app.store.log_record(&id).await.unwrap().unwrap();
    assert_eq!(
        (rec.outcome.as_str(), rec.code.as_deref()),
        ("upstream_error", Some("upstream_error"))
    );
}

#[tokio::test]
async fn nothing_is_forwarded_while_the_log_cannot_be_written_and_answers_in_flight_are_kept() {
    let app = spawn_app().await;
    // Break the log table underneath the running gateway.
    let mut conn = {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        sqlx::AnyConnection::connect(&app.db.url).await.unwrap()
    };
    sqlx::query("ALTER TABLE log_records RENAME TO log_records_gone")
        .execute(&mut conn)
        .await
        .unwrap();
    // A request already let through is answered: its whole record is committed to the
    // journal first (that is what the client waits for), and storing it in the database is
    // retried until the database is back. Failing to store it declares the log down.
    let (s, b, first) = app.call("/v1/chat/completions", &chat("gpt-test")).await;
    assert_eq!(s, 200, "{b}");
    let first = first.unwrap();
    assert!(
        app.committed_in_journal(&first),
        "the answer was delivered without its record in the journal"
    );
    for _ in 0..200 {
        if !app.gw.log.is_healthy() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        !app.gw.log.is_healthy(),
        "a failed store did not declare the log down"
    );
    // From now on requests are refused before anything is forwarded.
    let forwarded = app.mock.received().len();
    let (s, b, _) = app.call("/v1/chat/completions", &chat("gpt-test")).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (503, Some("audit_log_unavailable")),
        "{b}"
    );
    let r = app
        .http
        .post(format!("{}/v1/messages", app.addr))
        .header("x-api-key", &app.key)
        .json(&msg("claude-test"))
        .send()
        .await
        .unwrap();
    let (s, b, _) = read(r).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (503, Some("audit_log_unavailable")),
        "{b}"
    );
    assert_eq!(
        app.mock.received().len(),
        forwarded,
        "a request was forwarded while the log was down"
    );
    assert_eq!(
        app.http
            .get(format!("{}/readyz", app.addr))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    // When the database is back, the gateway recovers by itself.
    sqlx::query("ALTER TABLE log_records_gone RENAME TO log_records")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut ok = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if app.call("/v1/chat/completions", &chat("gpt-test")).await.0 == 200 {
            ok = true;
            break;
        }
    }
    assert!(ok, "the gateway did not recover after the log came back");
    // The answer delivered while the database was broken is stored, with its output.
    let (rec, _, out) = app.record(&first).await;
    assert_eq!(rec.outcome, "ok");
    assert!(
        out.unwrap().to_string().contains("受け取りました"),
        "the delivered answer's output is not in its record"
    );
}

#[tokio::test]
async fn a_provider_refusing_the_gateways_credential_is_an_upstream_error_not_the_staff_key() {
    let app = spawn_app().await;
    register(
        &app.store,
        &mock_registration("badcred", "openai", &app.mock_base, &["mock-unauthorized"]),
    )
    .await;
    app.wait_for_policy().await;
    let (s, b, _) = app
        .call("/v1/chat/completions", &chat("mock-unauthorized"))
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (502, Some("upstream_error")),
        "{b}"
    );
    assert!(
        !b.to_string().contains("sk-proj"),
        "the provider's message about its key leaked: {b}"
    );
}

/// Requests that reach no endpoint get an error in the API's shape that says what to send.
#[tokio::test]
async fn wrong_paths_and_methods_say_what_to_send() {
    let app = spawn_app().await;
    // A base URL without `/v1`.
    let (s, b, _) = app.call("/chat/completions", &chat("gpt-test")).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("not_found")));
    let said = b["error"]["message"].as_str().unwrap();
    assert!(said.contains("did you mean /v1/chat/completions"), "{said}");
    let (s, b, _) = app.call("/v2/chat", &chat("gpt-test")).await;
    assert_eq!(s, 404);
    assert!(!b["error"]["message"]
        .as_str()
        .unwrap()
        .contains("did you mean"));
    // A GET where only POST is served, and the other way round.
    let resp = app
        .http
        .get(format!("{}/v1/chat/completions", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "POST");
    let (s, b, _) = read(resp).await;
    assert_eq!(
        (s, b["error"]["code"].as_str(), b["error"]["type"].as_str()),
        (
            405,
            Some("method_not_allowed"),
            Some("invalid_request_error")
        )
    );
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("send a POST request"),
        "{b}"
    );
    let resp = app
        .http
        .post(format!("{}/v1/models", app.addr))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "GET");
    let (s, b, _) = read(resp).await;
    assert_eq!((s, b["type"].as_str()), (405, Some("error")), "{b}");
    assert_eq!(b["error"]["code"], "method_not_allowed");
    assert!(
        app.mock.received().is_empty(),
        "nothing reached the provider"
    );
}
