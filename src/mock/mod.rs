//! A local provider that speaks the OpenAI and Anthropic wire formats, streaming included.
//! It serves the quick start, the tests and the benchmark; it never reaches anything.
//! It answers by echoing the last user text (whole), calls the first tool when tools are offered,
//! records what it received, and has special models:
//! `mock-error` answers 500 in the API's error shape; `mock-unauthorized` (chat) answers 401 as for a
//! wrong provider key; `mock-gated` streams its first event, then
//! waits for [`MockProvider::release`] before the rest (to prove events are not buffered);
//! `mock-gated-late` the same after its first four events (none of them may wait either);
//! `mock-hang` (chat) never answers (a request in flight when the gateway is killed).
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

const KEEP: usize = 10_000;

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

#[derive(Debug, Default)]
pub struct MockProvider {
    received: Mutex<Vec<Received>>,
    gate: Notify,
    /// When false (the benchmark), nothing is recorded.
    pub record: bool,
}

impl MockProvider {
    pub fn new(record: bool) -> Arc<Self> {
        Arc::new(Self {
            record,
            ..Default::default()
        })
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Lets a `mock-gated` stream continue.
    pub fn release(&self) {
        self.gate.notify_waiters();
        self.gate.notify_one();
    }

    fn keep(&self, path: &str, headers: &HeaderMap, body: &Value) {
        if !self.record {
            return;
        }
        if let Ok(mut v) = self.received.lock() {
            if v.len() >= KEEP {
                v.remove(0);
            }
            v.push(Received {
                path: path.to_string(),
                headers: headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body: body.clone(),
            });
        }
    }
}

pub fn router(mock: Arc<MockProvider>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/responses", post(responses))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .with_state(mock)
}

/// Serves the mock on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    mock: Arc<MockProvider>,
) -> std::io::Result<()> {
    crate::http::serve(listener, router(mock), std::future::pending()).await
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| {
                p.get("text")
                    .and_then(Value::as_str)
                    .or_else(|| p.get("content").and_then(Value::as_str))
            })
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// The last message's text (user text or a tool result), whatever the API.
fn last_text(body: &Value) -> (String, bool) {
    let msgs = body.get("messages").or_else(|| body.get("input"));
    match msgs {
        Some(Value::String(s)) => (s.clone(), false),
        Some(Value::Array(a)) => {
            let Some(last) = a.last() else {
                return (String::new(), false);
            };
            let role = last.get("role").and_then(Value::as_str).unwrap_or("");
            let ty = last.get("type").and_then(Value::as_str).unwrap_or("");
            let content = last
                .get("content")
                .or_else(|| last.get("output"))
                .cloned()
                .unwrap_or(Value::Null);
            let is_tool_result = role == "tool"
                || ty == "function_call_output"
                || content.as_array().is_some_and(|p| {
                    p.iter()
                        .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
                });
            (text_of(&content), is_tool_result)
        }
        _ => (String::new(), false),
    }
}

fn reply_text(body: &Value) -> String {
    // The whole text is echoed, so tests can check that placeholders come back restored.
    let (t, tool) = last_text(body);
    if tool {
        format!("ツールの結果を受け取りました: {t}")
    } else {
        format!("受け取りました: {t}")
    }
}

fn first_tool(body: &Value) -> Option<String> {
    let (_, after_tool) = last_text(body);
    if after_tool {
        return None;
    }
    let t = body.get("tools")?.as_array()?.first()?;
    t.get("function")
        .and_then(|f| f.get("name"))
        .or_else(|| t.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn model(body: &Value) -> String {
    body.get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock")
        .to_string()
}

fn tokens(s: &str) -> i64 {
    (s.chars().count() as i64 / 2).max(1)
}

fn pieces(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    chars.chunks(4).map(|c| c.iter().collect()).collect()
}

const TOOL_ARGS: &str = "{\"city\":\"東京\",\"days\":3}";

fn sse(
    events: Vec<(Option<&'static str>, Value)>,
    done: bool,
    gate: Option<(Arc<MockProvider>, usize)>,
) -> Response {
    let mut frames: Vec<String> = events
        .into_iter()
        .map(|(name, data)| match name {
            Some(n) => format!("event: {n}\ndata: {data}\n\n"),
            None => format!("data: {data}\n\n"),
        })
        .collect();
    if done {
        frames.push("data: [DONE]\n\n".to_string());
    }
    let stream = async_stream_frames(frames, gate);
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn async_stream_frames(
    frames: Vec<String>,
    gate: Option<(Arc<MockProvider>, usize)>,
) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> {
    futures_util::stream::unfold(
        (frames.into_iter(), 0usize, gate),
        |(mut it, i, gate)| async move {
            let frame = it.next()?;
            if let Some((g, at)) = &gate {
                if i == *at {
                    g.gate.notified().await;
                }
            }
            Some((Ok(frame), (it, i + 1, gate)))
        },
    )
}

/// Where a `mock-gated…` model's stream waits for [`MockProvider::release`]: before which frame.
fn gate(model: &str, m: Arc<MockProvider>) -> Option<(Arc<MockProvider>, usize)> {
    match model {
        "mock-gated-late" => Some((m, 4)),
        _ if model.starts_with("mock-gated") => Some((m, 1)),
        _ => None,
    }
}

fn error(status: StatusCode, anthropic: bool) -> Response {
    let body = if anthropic {
        json!({"type": "error", "error": {"type": "api_error", "message": "mock failure"}})
    } else {
        json!({"error": {"message": "mock failure", "type": "server_error", "param": null, "code": null}})
    };
    (status, Json(body)).into_response()
}

async fn chat(
    State(m): State<Arc<MockProvider>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    m.keep("/v1/chat/completions", &headers, &body);
    let model = model(&body);
    if model == "mock-error" {
        return error(StatusCode::INTERNAL_SERVER_ERROR, false);
    }
    if model == "mock-hang" {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
    if model == "mock-unauthorized" {
        // What a provider says when the gateway's own credential is wrong.
        let body = json!({"error": {"message": "Incorrect API key provided: sk-proj-****wxyz.", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}});
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    let text = reply_text(&body);
    let tool = first_tool(&body);
    let (pt, ct) = (tokens(&body.to_string()), tokens(&text));
    let usage = json!({"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct});
    let id = "chatcmpl-mock";
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let chunk = |delta: Value, finish: Value| json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model, "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        let mut ev = vec![(
            None,
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        )];
        let finish = if let Some(name) = &tool {
            ev.push((None, chunk(json!({"tool_calls": [{"index": 0, "id": "call_mock1", "type": "function", "function": {"name": name, "arguments": ""}}]}), Value::Null)));
            for p in pieces(TOOL_ARGS) {
                ev.push((
                    None,
                    chunk(
                        json!({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}),
                        Value::Null,
                    ),
                ));
            }
            "tool_calls"
        } else {
            for p in pieces(&text) {
                ev.push((None, chunk(json!({"content": p}), Value::Null)));
            }
            "stop"
        };
        ev.push((None, chunk(json!({}), json!(finish))));
        if body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true)
        {
            ev.push((None, json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model, "choices": [], "usage": usage})));
        }
        return sse(ev, true, gate(&model, m));
    }
    let (message, finish) = match &tool {
        Some(name) => (
            json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": [{"id": "call_mock1", "type": "function", "function": {"name": name, "arguments": TOOL_ARGS}}]}),
            "tool_calls",
        ),
        None => (
            json!({"role": "assistant", "content": text, "refusal": null}),
            "stop",
        ),
    };
    Json(json!({"id": id, "object": "chat.completion", "created": 1_700_000_000, "model": model, "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}], "usage": usage})).into_response()
}

async fn responses(
    State(m): State<Arc<MockProvider>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    m.keep("/v1/responses", &headers, &body);
    let model = model(&body);
    if model == "mock-error" {
        return error(StatusCode::INTERNAL_SERVER_ERROR, false);
    }
    let text = reply_text(&body);
    let (it, ot) = (tokens(&body.to_string()), tokens(&text));
    let response = |status: &str, output: Value| {
        json!({
            "id": "resp_mock", "object": "response", "created_at": 1_700_000_000, "status": status, "model": model,
            "output": output, "parallel_tool_calls": true, "tool_choice": "auto", "tools": [], "error": null,
            "incomplete_details": null, "instructions": null, "metadata": {}, "temperature": 1.0, "top_p": 1.0,
            "text": {"format": {"type": "text"}},
            "usage": {"input_tokens": it, "output_tokens": ot, "total_tokens": it + ot, "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}
        })
    };
    let item = |t: &str, status: &str| json!({"type": "message", "id": "msg_mock", "status": status, "role": "assistant", "content": [{"type": "output_text", "text": t, "annotations": []}]});
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let mut seq = 0;
        let mut next = |mut v: Value| {
            v["sequence_number"] = json!(seq);
            seq += 1;
            v
        };
        let mut ev = vec![
            (
                Some("response.created"),
                next(
                    json!({"type": "response.created", "response": response("in_progress", json!([]))}),
                ),
            ),
            (
                Some("response.output_item.added"),
                next(
                    json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "message", "id": "msg_mock", "status": "in_progress", "role": "assistant", "content": []}}),
                ),
            ),
            (
                Some("response.content_part.added"),
                next(
                    json!({"type": "response.content_part.added", "item_id": "msg_mock", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
                ),
            ),
        ];
        for p in pieces(&text) {
            ev.push((Some("response.output_text.delta"), next(json!({"type": "response.output_text.delta", "item_id": "msg_mock", "output_index": 0, "content_index": 0, "delta": p, "logprobs": []}))));
        }
        ev.push((Some("response.output_text.done"), next(json!({"type": "response.output_text.done", "item_id": "msg_mock", "output_index": 0, "content_index": 0, "text": text, "logprobs": []}))));
        ev.push((Some("response.content_part.done"), next(json!({"type": "response.content_part.done", "item_id": "msg_mock", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": text, "annotations": []}}))));
        ev.push((Some("response.output_item.done"), next(json!({"type": "response.output_item.done", "output_index": 0, "item": item(&text, "completed")}))));
        ev.push((Some("response.completed"), next(json!({"type": "response.completed", "response": response("completed", json!([item(&text, "completed")]))}))));
        return sse(ev, false, gate(&model, m));
    }
    Json(response("completed", json!([item(&text, "completed")]))).into_response()
}

async fn embeddings(
    State(m): State<Arc<MockProvider>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    m.keep("/v1/embeddings", &headers, &body);
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect(),
        _ => vec![],
    };
    let base64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let v: Vec<f32> = (0..8).map(|k| ((s.len() + k) % 7) as f32 / 7.0).collect();
            let emb = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": emb})
        })
        .collect();
    let n: i64 = inputs.iter().map(|s| tokens(s)).sum();
    Json(json!({"object": "list", "data": data, "model": model(&body), "usage": {"prompt_tokens": n, "total_tokens": n}})).into_response()
}

async fn models() -> Response {
    Json(json!({"object": "list", "data": [{"id": "mock-gpt", "object": "model", "created": 0, "owned_by": "mock"}]})).into_response()
}

async fn messages(
    State(m): State<Arc<MockProvider>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    m.keep("/v1/messages", &headers, &body);
    let model = model(&body);
    if model == "mock-error" {
        return error(StatusCode::INTERNAL_SERVER_ERROR, true);
    }
    let text = reply_text(&body);
    let tool = first_tool(&body);
    let (it, ot) = (tokens(&body.to_string()), tokens(&text));
    let stop = if tool.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let mut ev = vec![
            (
                Some("message_start"),
                json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": it, "output_tokens": 1}}}),
            ),
            (Some("ping"), json!({"type": "ping"})),
        ];
        match &tool {
            Some(name) => {
                ev.push((Some("content_block_start"), json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_mock1", "name": name, "input": {}}})));
                for p in pieces(TOOL_ARGS) {
                    ev.push((Some("content_block_delta"), json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": p}})));
                }
            }
            None => {
                ev.push((Some("content_block_start"), json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
                for p in pieces(&text) {
                    ev.push((Some("content_block_delta"), json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}})));
                }
            }
        }
        ev.push((
            Some("content_block_stop"),
            json!({"type": "content_block_stop", "index": 0}),
        ));
        ev.push((Some("message_delta"), json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": ot}})));
        ev.push((Some("message_stop"), json!({"type": "message_stop"})));
        return sse(ev, false, gate(&model, m));
    }
    let content = match &tool {
        Some(name) => {
            json!([{"type": "tool_use", "id": "toolu_mock1", "name": name, "input": serde_json::from_str::<Value>(TOOL_ARGS).unwrap_or(Value::Null)}])
        }
        None => json!([{"type": "text", "text": text}]),
    };
    Json(json!({"id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": content, "stop_reason": stop, "stop_sequence": null, "usage": {"input_tokens": it, "output_tokens": ot}})).into_response()
}

async fn count_tokens(
    State(m): State<Arc<MockProvider>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    m.keep("/v1/messages/count_tokens", &headers, &body);
    Json(json!({"input_tokens": tokens(&body.to_string())})).into_response()
}
