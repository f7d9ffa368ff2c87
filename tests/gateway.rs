//! The data plane end to end: real gateway, real database, mock provider speaking the real wire
//! formats. Each test asserts what the client got, what the provider received, and the log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::*;
use serde_json::{json, Value};

fn chat(content: &str) -> Value {
    json!({"model": "gpt-test", "messages": [{"role": "user", "content": content}]})
}

#[tokio::test]
async fn chat_completion_goes_through_with_the_provider_credential_and_is_logged() {
    let app = spawn_app().await;
    let (status, body, id) = app
        .call("/v1/chat/completions", &chat("見積書を要約して"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "受け取りました: 見積書を要約して"
    );
    let id = id.expect("X-Mamori-Request-Id");

    let got = app.mock.received();
    assert_eq!(got.len(), 1);
    let auth = got[0]
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.clone());
    assert_eq!(auth.as_deref(), Some(&*format!("Bearer {PROVIDER_SECRET}")));
    assert!(
        !got[0].headers.iter().any(|(_, v)| v.contains(&app.key)),
        "the staff key went upstream"
    );

    let (rec, sent, out) = app.record(&id).await;
    assert_eq!(rec.outcome, "ok");
    assert_eq!(rec.staff_id.as_deref(), Some("alice"));
    assert_eq!(rec.contract_id.as_deref(), Some("c1"));
    assert_eq!(rec.provider_id.as_deref(), Some("mock-openai"));
    assert_eq!(rec.provider_version, Some(1));
    assert!(rec.input_tokens.is_some() && rec.output_tokens.is_some());
    assert_eq!(
        sent.unwrap(),
        got[0].body,
        "the log keeps the request exactly as sent upstream"
    );
    assert_eq!(
        out.unwrap(),
        body,
        "the log keeps the output as the client received it"
    );
    let raw = app
        .gw
        .log
        .data_keys
        .open_body(&rec, "output")
        .await
        .unwrap()
        .unwrap();
    use sha2::Digest;
    assert_eq!(
        rec.output_sha256.unwrap(),
        hex::encode(sha2::Sha256::digest(raw))
    );
    let sealed = rec.output_body.unwrap();
    assert!(
        !String::from_utf8_lossy(&sealed).contains("受け取りました"),
        "bodies must be encrypted at rest"
    );
}

#[tokio::test]
async fn attribution_headers_may_be_utf8_or_percent_encoded() {
    let app = spawn_app().await;
    let r = app
        .http
        .post(format!("{}/v1/chat/completions", app.addr))
        .bearer_auth(&app.key)
        .header("x-mamori-deliverable", "%E5%A0%B1%E5%91%8A%E6%9B%B8v2")
        .header("x-mamori-purpose", "%E8%A6%81%E7%B4%84")
        .json(&chat("x"))
        .send()
        .await
        .unwrap();
    let (_, _, id) = read(r).await;
    let (rec, _, _) = app.record(&id.unwrap()).await;
    assert_eq!(rec.deliverable.as_deref(), Some("報告書v2"));
    assert_eq!(rec.purpose.as_deref(), Some("要約"));
}

#[tokio::test]
async fn unknown_fields_pass_through_and_the_prefixed_model_is_rewritten() {
    let app = spawn_app().await;
    let body = json!({"model": "mock-openai/gpt-test", "messages": [{"role": "user", "content": "x"}], "x_vendor": {"a": [1, 2]}, "temperature": 0.2});
    let (status, _, _) = app.call("/v1/chat/completions", &body).await;
    assert_eq!(status, 200);
    let got = &app.mock.received()[0].body;
    assert_eq!(got["model"], "gpt-test");
    assert_eq!(got["x_vendor"], json!({"a": [1, 2]}));
    assert_eq!(got["temperature"], json!(0.2));
}

#[tokio::test]
async fn client_supplied_hosts_and_paths_are_never_honoured() {
    let app = spawn_app().await;
    let (other_mock, other_base) = spawn_mock().await;
    let resp = app
        .http
        .post(format!("{}/v1/chat/completions?model=claude-test&base_url={other_base}", app.addr))
        .bearer_auth(&app.key)
        .header("x-forwarded-host", other_base.trim_start_matches("http://"))
        .header("x-mamori-upstream", &other_base)
        .json(&json!({"model": "gpt-test", "messages": [{"role": "user", "content": "x"}], "base_url": other_base, "api_base": other_base}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(app.mock.received().len(), 1);
    assert!(
        other_mock.received().is_empty(),
        "a client-supplied upstream was used"
    );
    let (status, body, _) = read(
        app.http
            .post(format!("{}/v1/proxy/chat/completions", app.addr))
            .bearer_auth(&app.key)
            .json(&chat("x"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn chat_stream_passes_every_event_in_order_and_logs_the_assembled_output() {
    let app = spawn_app().await;
    let mut body = chat("ストリームで答えて");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let resp = app.post("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let id = resp.headers()["x-mamori-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let events = sse_data(resp).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let text: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(text, "受け取りました: ストリームで答えて");
    let (rec, _, out) = app.record(&id).await;
    assert!(rec.streamed);
    assert_eq!(rec.outcome, "ok");
    let out = out.unwrap();
    assert_eq!(out["choices"][0]["message"]["content"], text);
    assert!(rec.output_tokens.is_some());
}

#[tokio::test]
async fn stream_events_reach_the_client_before_the_provider_has_finished() {
    for (path, body) in [
        (
            "/v1/chat/completions",
            json!({"model": "mock-gated", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        ),
        (
            "/v1/messages",
            json!({"model": "mock-gated-claude", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        ),
    ] {
        let app = spawn_app().await;
        let mut resp = app.post(path, &body).await;
        assert_eq!(resp.status(), 200);
        // The provider has sent only its first event; it must arrive now, not at the end.
        let first = tokio::time::timeout(std::time::Duration::from_secs(10), resp.chunk())
            .await
            .expect("first event was held back until the provider finished")
            .unwrap()
            .unwrap();
        assert!(!first.is_empty());
        app.mock.release();
        let mut rest = Vec::new();
        while let Some(c) = resp.chunk().await.unwrap() {
            rest.extend_from_slice(&c);
        }
        let rest = String::from_utf8(rest).unwrap();
        assert!(
            rest.contains("[DONE]") || rest.contains("message_stop"),
            "{rest}"
        );
    }
}

#[tokio::test]
async fn events_that_arrive_together_are_all_sent_before_the_provider_goes_on() {
    // The provider sends four events at once, then pauses: the gateway writes what arrived
    // together in one go, but none of it may wait for the provider's next event.
    let app = spawn_app().await;
    let body = json!({"model": "mock-gated-late", "stream": true, "messages": [{"role": "user", "content": "一二三四五六七八九十"}]});
    let mut resp = app.post("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let mut got = String::new();
    while got.matches("data: ").count() < 4 {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("held back while the provider paused; got {got:?}"))
            .unwrap()
            .expect("the stream ended early");
        got.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let text = |sse: &str| -> String {
        sse.split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect()
    };
    // The role event and the first three pieces of the echo, whole and in order.
    assert!(got.ends_with("\n\n"), "{got:?}");
    assert_eq!(text(&got), "受け取りました: 一二三", "{got:?}");
    app.mock.release();
    let mut rest = Vec::new();
    while let Some(c) = resp.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    let all = got + &String::from_utf8(rest).unwrap();
    assert_eq!(text(&all), "受け取りました: 一二三四五六七八九十");
    assert!(all.ends_with("data: [DONE]\n\n"), "{all}");
}

#[tokio::test]
async fn tool_calls_round_trip_on_both_apis() {
    let app = spawn_app().await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "天気", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let (s, b, _) = app.call("/v1/chat/completions", &json!({"model": "gpt-test", "tools": tools, "messages": [{"role": "user", "content": "東京の天気は?"}]})).await;
    assert_eq!(s, 200);
    let call = &b["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let args = call["function"]["arguments"].as_str().unwrap().to_string();
    let follow = json!({"model": "gpt-test", "tools": tools, "messages": [
        {"role": "user", "content": "東京の天気は?"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "晴れ"}
    ]});
    let (s, b, _) = app.call("/v1/chat/completions", &follow).await;
    assert_eq!(s, 200);
    assert_eq!(
        b["choices"][0]["message"]["content"],
        "ツールの結果を受け取りました: 晴れ"
    );
    assert_eq!(
        app.mock.received()[1].body["messages"][1]["tool_calls"][0]["function"]["arguments"],
        json!(args)
    );

    let atools = json!([{"name": "get_weather", "description": "天気", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let req = json!({"model": "claude-test", "max_tokens": 100, "tools": atools, "stream": true, "messages": [{"role": "user", "content": "東京の天気は?"}]});
    let resp = app.post("/v1/messages", &req).await;
    let id = resp.headers()["x-mamori-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let events = sse_data(resp).await;
    let partial: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| v["delta"]["partial_json"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&partial).unwrap()["city"],
        "東京"
    );
    let (_, _, out) = app.record(&id).await;
    let out = out.unwrap();
    assert_eq!(out["content"][0]["type"], "tool_use");
    assert_eq!(out["content"][0]["input"]["city"], "東京");
    assert_eq!(out["stop_reason"], "tool_use");
}

#[tokio::test]
async fn responses_embeddings_messages_and_count_tokens() {
    let app = spawn_app().await;
    let (s, b, _) = app
        .call(
            "/v1/responses",
            &json!({"model": "gpt-test", "input": "議事録を要約"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["output"][0]["content"][0]["text"],
        "受け取りました: 議事録を要約"
    );
    assert_eq!(
        app.mock.received()[0].body["store"],
        json!(false),
        "responses must not keep state at the provider by default"
    );

    let resp = app
        .post(
            "/v1/responses",
            &json!({"model": "gpt-test", "input": "x", "stream": true}),
        )
        .await;
    let id = resp.headers()["x-mamori-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let events = sse_data(resp).await;
    assert!(events.last().unwrap().contains("response.completed"));
    let (_, _, out) = app.record(&id).await;
    let out = out.unwrap();
    assert_eq!(out["status"], "completed");

    let (s, b, _) = app
        .call(
            "/v1/embeddings",
            &json!({"model": "embed-test", "input": ["一", "二"]}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["data"].as_array().unwrap().len(), 2);

    let resp = app
        .http
        .post(format!("{}/v1/messages", app.addr))
        .header("x-api-key", &app.key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude-test", "max_tokens": 100, "system": "丁寧に", "messages": [{"role": "user", "content": "こんにちは"}]}))
        .send()
        .await
        .unwrap();
    let (s, b, _) = read(resp).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["content"][0]["text"], "受け取りました: こんにちは");
    let last = app.mock.received().last().unwrap().clone();
    assert!(last
        .headers
        .iter()
        .any(|(k, v)| k == "x-api-key" && v == PROVIDER_SECRET));

    let (s, b, _) = app
        .call(
            "/v1/messages/count_tokens",
            &json!({"model": "claude-test", "messages": [{"role": "user", "content": "数えて"}]}),
        )
        .await;
    assert_eq!(s, 200);
    assert!(b["input_tokens"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn models_lists_only_what_the_key_may_use_in_each_sdk_shape() {
    let app = spawn_app().await;
    register(
        &app.store,
        &mock_registration("trainer", "openai", &app.mock_base, &["trains-model"])
            .replace("trains_on_inputs = false", "trains_on_inputs = true"),
    )
    .await;
    app.wait_for_policy().await;
    let r = app
        .http
        .get(format!("{}/v1/models", app.addr))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    let (s, b, _) = read(r).await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = b["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"gpt-test") && ids.contains(&"claude-test"));
    assert!(
        !ids.contains(&"trains-model"),
        "a training provider's model was listed"
    );
    assert_eq!(b["object"], "list");
    let r = app
        .http
        .get(format!("{}/v1/models", app.addr))
        .header("x-api-key", &app.key)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    let (_, b, _) = read(r).await;
    assert_eq!(b["has_more"], false);
    assert_eq!(b["data"][0]["type"], "model");
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn_app().await;
    let get = |p: &str| app.http.get(format!("{}{p}", app.addr)).send();
    let health = get("/healthz").await.unwrap();
    assert_eq!(health.status(), 200);
    // Every response carries a request id, even those that are not logged.
    for resp in [health, get("/nowhere").await.unwrap()] {
        let id = resp.headers()["x-mamori-request-id"].to_str().unwrap();
        assert!(id.starts_with("req_"), "{id}");
    }
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    app.call("/v1/chat/completions", &chat("x")).await;
    let m = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(m.contains("mamori_requests_total"), "{m}");
}
