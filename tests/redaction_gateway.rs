//! The public redaction corpus through the real gateway, with a recording mock provider: no
//! secret (in any width or separator form) reaches the provider or the log, every must-keep
//! string arrives unchanged, and the client gets the original text back where values were
//! pseudonymized — non-streamed and streamed, on both wire APIs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::*;
use serde_json::{json, Value};
use unicode_normalization::UnicodeNormalization;

const TERMS: &[&str] = &[
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

/// Folds width, case and every separator a value could be written with.
fn fold(s: &str) -> String {
    s.nfkc()
        .flat_map(char::to_lowercase)
        .filter(|c| {
            !c.is_whitespace()
                && !matches!(
                    c,
                    '-' | '‐'
                        | '‑'
                        | '‒'
                        | '–'
                        | '—'
                        | '―'
                        | '−'
                        | 'ー'
                        | 'ｰ'
                        | '.'
                        | '・'
                        | '\u{200b}'
                        | '\u{200c}'
                        | '\u{200d}'
                        | '\u{2060}'
                        | '\u{feff}'
                )
        })
        .collect()
}

fn leaks(haystack: &str, secret: &str) -> bool {
    haystack.contains(secret) || fold(haystack).contains(&fold(secret))
}

struct Case {
    id: String,
    text: String,
    secrets: Vec<String>,
    must_keep: Vec<String>,
}

fn corpus() -> Vec<Case> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/redaction-cases.jsonl");
    let local =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/redaction-cases.jsonl");
    let text = std::fs::read_to_string(&path)
        .or_else(|_| std::fs::read_to_string(&local))
        .expect("the redaction corpus");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let list = |k: &str| {
                v[k].as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_string())
                    .collect()
            };
            Case {
                id: v["id"].as_str().unwrap().into(),
                text: v["text"].as_str().unwrap().into(),
                secrets: list("secrets"),
                must_keep: list("must_keep"),
            }
        })
        .collect()
}

async fn app_with_terms() -> TestApp {
    let app = spawn_app().await;
    for t in TERMS {
        app.store.add_term("c1", "term", t).await.unwrap();
    }
    app.wait_for_policy().await;
    app
}

/// Checks what the provider and the log saw for the latest request.
async fn check_upstream_and_log(app: &TestApp, c: &Case, id: &str) {
    let sent = app.mock.received().last().unwrap().body.to_string();
    let (rec, logged, _) = app.record(id).await;
    let logged = logged.unwrap().to_string();
    let logged_out = app
        .gw
        .log
        .data_keys
        .open_body(&rec, "output")
        .await
        .unwrap()
        .map(|b| String::from_utf8(b).unwrap())
        .unwrap_or_default();
    for s in &c.secrets {
        assert!(!leaks(&sent, s), "{}: the provider saw a secret", c.id);
        assert!(
            !leaks(&logged, s),
            "{}: the log's request holds a secret",
            c.id
        );
        assert!(
            !leaks(&logged_out, s),
            "{}: the log's output holds a secret",
            c.id
        );
        assert!(
            !rec.redactions.contains(s.as_str()),
            "{}: the counts hold a value",
            c.id
        );
    }
    for k in &c.must_keep {
        assert!(
            sent.contains(k.as_str()),
            "{}: `{k}` did not reach the provider unchanged: {sent}",
            c.id
        );
    }
    if !c.secrets.is_empty() {
        assert_ne!(rec.redactions, "{}", "{}: no redaction counted", c.id);
    }
}

#[tokio::test]
async fn the_corpus_through_chat_completions_streamed_and_not() {
    let app = app_with_terms().await;
    for c in corpus() {
        let body = json!({"model": "gpt-test", "messages": [{"role": "user", "content": c.text}]});
        let resp = app.post("/v1/chat/completions", &body).await;
        let redactions: u32 = resp
            .headers()
            .get("x-mamori-redactions")
            .map(|v| v.to_str().unwrap().parse().unwrap())
            .unwrap_or(0);
        let (status, b, id) = read(resp).await;
        if status == 400 && b["error"]["code"] == "confidential_content_blocked" {
            continue; // A blocking rule: nothing was sent (checked in refusal tests).
        }
        assert_eq!(status, 200, "{}: {b}", c.id);
        assert_eq!(
            redactions > 0,
            !c.secrets.is_empty(),
            "{}: X-Mamori-Redactions {redactions}",
            c.id
        );
        check_upstream_and_log(&app, &c, &id.unwrap()).await;
        let got = b["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_string();
        let restored = got == format!("受け取りました: {}", c.text);
        for s in &c.secrets {
            // Pseudonymized values come back; masked ones stay masked.
            assert!(
                restored || !got.contains(s.as_str()),
                "{}: a masked value came back",
                c.id
            );
        }

        let mut sbody = body.clone();
        sbody["stream"] = json!(true);
        let resp = app.post("/v1/chat/completions", &sbody).await;
        let id = resp.headers()["x-mamori-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        let events = sse_data(resp).await;
        let streamed: String = events
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e).ok())
            .filter_map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect();
        check_upstream_and_log(&app, &c, &id).await;
        assert_eq!(
            streamed, got,
            "{}: streamed and non-streamed answers differ",
            c.id
        );
    }
}

#[tokio::test]
async fn the_corpus_through_anthropic_messages_streamed() {
    let app = app_with_terms().await;
    for c in corpus() {
        let body = json!({"model": "claude-test", "max_tokens": 100, "stream": true, "system": "丁寧に", "messages": [{"role": "user", "content": [{"type": "text", "text": c.text}]}]});
        let resp = app.post("/v1/messages", &body).await;
        if resp.status() == 400 {
            continue;
        }
        let id = resp.headers()["x-mamori-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        let events = sse_data(resp).await;
        let text: String = events
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e).ok())
            .filter_map(|v| v["delta"]["text"].as_str().map(str::to_string))
            .collect();
        check_upstream_and_log(&app, &c, &id).await;
        assert!(text.starts_with("受け取りました: "), "{}: {text}", c.id);
    }
}

#[tokio::test]
async fn pseudonyms_are_restored_exactly_in_bodies_and_tool_arguments() {
    let app = spawn_app().await;
    let text = "氏名：山田由美\n住所：東京都品川区西新宿1-1-6\n山田由美さんへの案内文を作って。";
    let (s, b, _) = app
        .call(
            "/v1/chat/completions",
            &json!({"model": "gpt-test", "messages": [{"role": "user", "content": text}]}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        b["choices"][0]["message"]["content"],
        format!("受け取りました: {text}")
    );
    let sent = app.mock.received()[0].body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !sent.contains("山田由美") && !sent.contains("西新宿"),
        "{sent}"
    );
    // The same value gets the same placeholder within a request.
    let ph: Vec<&str> = sent
        .split('[')
        .skip(1)
        .map(|p| p.split(']').next().unwrap())
        .collect();
    assert_eq!(ph.len(), 3, "{sent}");
    assert_eq!(ph[0], ph[2]);

    // A tool result carrying personal data, and tools offered: the call's arguments come back
    // with the originals, JSON-escaped where needed.
    let tools = json!([{"type": "function", "function": {"name": "send", "parameters": {"type": "object"}}}]);
    let msgs = json!([{"role": "user", "content": "顧客情報 {\"氏名\": \"佐藤\\\"花子\", \"部署\": \"総務課\"} を確認"}]);
    let (s, b, _) = app
        .call(
            "/v1/chat/completions",
            &json!({"model": "gpt-test", "tools": tools, "messages": msgs}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let sent = app.mock.received()[1].body.to_string();
    assert!(!sent.contains("佐藤"), "{sent}");
    assert!(sent.contains("総務課"));
    assert!(serde_json::from_str::<Value>(
        b["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap()
    )
    .is_ok());
}

#[tokio::test]
async fn unclosed_tags_and_blocked_content_send_nothing() {
    let app = spawn_app().await;
    for (text, code) in [
        ("要約して。<機密>価格は4億円", "confidential_tag_unclosed"),
        ("<confidential>価格</機密>", "confidential_tag_unclosed"),
        (
            "【機密】移行日【/機密】と<機密>未閉じ",
            "confidential_tag_unclosed",
        ),
    ] {
        let (s, b, _) = app
            .call(
                "/v1/chat/completions",
                &json!({"model": "gpt-test", "messages": [{"role": "user", "content": text}]}),
            )
            .await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (400, Some(code)),
            "{text}: {b}"
        );
        assert!(
            !b.to_string().contains("4億円"),
            "the refusal quoted the content"
        );
    }
    // Tags across content parts of one message are still checked part by part.
    let (s, b, _) = app
        .call("/v1/messages", &json!({"model": "claude-test", "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "text", "text": "<機密>前半"}, {"type": "text", "text": "後半</機密>"}]}]}))
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        app.mock.received().is_empty(),
        "a refused request reached the provider"
    );
}

#[tokio::test]
async fn a_repeated_key_cannot_smuggle_unredacted_content() {
    let app = spawn_app().await;
    // serde keeps the last copy of a repeated key; the first must not reach the provider as sent.
    let raw = r#"{"model":"gpt-test","messages":[{"role":"user","content":"氏名：山田由美 <機密>予定価格4億円</機密>"}],"messages":[{"role":"user","content":"こんにちは"}]}"#;
    let r = app
        .http
        .post(format!("{}/v1/chat/completions", app.addr))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    let (s, _, _) = read(r).await;
    if s == 200 {
        let sent = app.mock.received().last().unwrap().body.to_string();
        assert!(
            !sent.contains("山田由美") && !sent.contains("4億円"),
            "{sent}"
        );
    }
}

#[tokio::test]
async fn values_under_structural_looking_keys_are_redacted_too() {
    let app = spawn_app().await;
    // A tool call's input echoed back by the client, with a person's name under `name`.
    let body = json!({"model": "claude-test", "max_tokens": 50, "messages": [
        {"role": "user", "content": "送付先を確認"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "send", "input": {"name": "山田由美", "住所": "東京都品川区西新宿1-1-6", "memo": "電話は090-1234-5678"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "送付しました"}]}
    ]});
    app.store.add_term("c1", "term", "山田由美").await.unwrap();
    app.wait_for_policy().await;
    let (s, b, _) = app.call("/v1/messages", &body).await;
    assert_eq!(s, 200, "{b}");
    let sent = app.mock.received().last().unwrap().body.to_string();
    assert!(
        !sent.contains("山田由美") && !sent.contains("西新宿"),
        "{sent}"
    );
    assert!(
        sent.contains("\"name\":\"send\""),
        "tool names stay: {sent}"
    );
}

#[tokio::test]
async fn features_that_reach_other_servers_are_refused() {
    let app = spawn_app().await;
    for body in [
        json!({"model": "claude-test", "max_tokens": 10, "mcp_servers": [{"type": "url", "url": "https://attacker.example/mcp", "name": "x"}], "messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": "gpt-test", "input": "hi", "tools": [{"type": "mcp", "server_label": "x", "server_url": "https://attacker.example/mcp"}]}),
    ] {
        let path = if body.get("input").is_some() {
            "/v1/responses"
        } else {
            "/v1/messages"
        };
        let (s, b, _) = app.call(path, &body).await;
        assert_eq!(s, 400, "{b}");
        assert!(b.to_string().contains("invalid_request"), "{b}");
    }
    assert!(app.mock.received().is_empty());
}

/// A conversation is sent again on every turn, and its earlier messages, found clean once, are
/// remembered (`redact/clean.rs`; that a remembered text is not scanned is the unit tests'): the
/// answer is the same on every turn, a value a later message names is still replaced in them, and
/// a term added later applies to them.
#[tokio::test]
async fn a_resent_conversation_is_redacted_on_every_turn() {
    let app = spawn_app().await;
    let first =
        "来週の打ち合わせについて、山田由美と青葉ロジスティクスの件を相談したい。".repeat(4);
    let turn = |more: Option<&str>| {
        let mut msgs = vec![json!({"role": "user", "content": first})];
        if let Some(m) = more {
            msgs.push(json!({"role": "assistant", "content": "承知しました。"}));
            msgs.push(json!({"role": "user", "content": m}));
        }
        json!({"model": "gpt-test", "messages": msgs})
    };
    for (i, more) in [None, None, Some("氏名：山田由美")].into_iter().enumerate() {
        let (s, _, _) = app.call("/v1/chat/completions", &turn(more)).await;
        assert_eq!(s, 200);
        let sent = app.mock.received()[i].body["messages"][0]["content"]
            .as_str()
            .unwrap()
            .to_string();
        match more {
            None => assert_eq!(sent, first),
            Some(_) => assert!(!sent.contains("山田由美"), "{sent}"),
        }
    }
    // A term added now applies to the text remembered as clean before it.
    app.store
        .add_term("c1", "term", "青葉ロジスティクス")
        .await
        .unwrap();
    app.wait_for_policy().await;
    let (s, _, _) = app.call("/v1/chat/completions", &turn(None)).await;
    assert_eq!(s, 200);
    let sent = app.mock.received()[3].body["messages"][0]["content"].to_string();
    assert!(!sent.contains("青葉ロジスティクス"), "{sent}");
}
