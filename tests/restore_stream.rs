//! Streaming restoration: for any way the provider splits its answer into events, the client
//! receives exactly the restored text — chat content, tool-call arguments, Anthropic text and
//! tool input, Responses deltas.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mamori::proxy::endpoint::Endpoint;
use mamori::proxy::restore::AnswerRestorer;
use mamori::proxy::sse::Framer;
use mamori::redact::{ContractMatcher, Pseudonyms};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::Arc;

type Minted = (Vec<String>, Vec<String>, Arc<Pseudonyms>);

/// Redacts a request with two personal values and returns (placeholders, originals, map);
/// once per test binary, since compiling the shipped rules is the slow part.
fn pseudonyms() -> Minted {
    static ONCE: std::sync::OnceLock<Minted> = std::sync::OnceLock::new();
    ONCE.get_or_init(mint).clone()
}

fn mint() -> Minted {
    let rules = mamori::gateway::load_rules(&mamori::config::Config::default()).unwrap();
    let none = ContractMatcher::none();
    let mut s = rules.session(&none);
    let originals = vec![
        "山田由美".to_string(),
        "東京都品川区西新宿1-1-6".to_string(),
    ];
    let text = format!("氏名：{}\n住所：{}\n", originals[0], originals[1]);
    let red = s.redact_text(&text).unwrap().into_owned();
    let placeholders: Vec<String> = red
        .split('[')
        .skip(1)
        .filter_map(|p| p.split_once(']').map(|(a, _)| format!("[{a}]")))
        .collect();
    assert_eq!(placeholders.len(), 2, "{red}");
    assert!(!red.contains("山田由美"));
    (placeholders, originals, s.pseudonyms())
}

fn split(text: &str, cuts: &[usize]) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (chars.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut prev = 0;
    for c in cuts.into_iter().chain([chars.len()]) {
        out.push(chars[prev..c].iter().collect());
        prev = c;
    }
    out
}

/// Runs framed SSE text through the restorer, cutting the byte stream at `byte_cuts` too.
fn run(
    endpoint: Endpoint,
    map: &Arc<Pseudonyms>,
    sse: &str,
    byte_cuts: &[usize],
) -> Vec<(Option<String>, Value)> {
    let mut r = AnswerRestorer::new(endpoint, Arc::clone(map));
    let mut framer = Framer::default();
    let mut out = Vec::new();
    let bytes = sse.as_bytes();
    let mut cuts: Vec<usize> = byte_cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut prev = 0;
    for c in cuts.into_iter().chain([bytes.len()]) {
        for ev in framer.push(&bytes[prev..c]) {
            out.extend(r.on_event(&ev));
        }
        prev = c;
    }
    out.extend(r.flush_all());
    let text: String = out
        .iter()
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
        .collect();
    Framer::default()
        .push(text.as_bytes())
        .into_iter()
        .filter(|e| e.data != "[DONE]")
        .map(|e| (e.event.clone(), serde_json::from_str(&e.data).unwrap()))
        .collect()
}

fn answer(ph: &[String]) -> (String, String) {
    let raw = format!(
        "{}様、ご住所は{}ですね。{}様へ送付します。",
        ph[0], ph[1], ph[0]
    );
    (raw.clone(), raw)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn chat_text_and_tool_arguments_are_restored_exactly(cuts in proptest::collection::vec(0usize..200, 0..12), bcuts in proptest::collection::vec(0usize..4000, 0..6)) {
        let (ph, orig, map) = pseudonyms();
        let (text, _) = answer(&ph);
        let args = format!("{{\"to\":\"{}\",\"addr\":\"{}\"}}", ph[0], ph[1]);
        let mut sse = String::new();
        for piece in split(&text, &cuts) {
            sse.push_str(&format!("data: {}\n\n", json!({"id": "c", "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]})));
        }
        for piece in split(&args, &cuts) {
            sse.push_str(&format!("data: {}\n\n", json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}, "finish_reason": null}]})));
        }
        sse.push_str(&format!("data: {}\n\ndata: [DONE]\n\n", json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})));
        let events = run(Endpoint::ChatCompletions, &map, &sse, &bcuts);
        let got: String = events.iter().filter_map(|(_, v)| v["choices"][0]["delta"]["content"].as_str().map(str::to_string)).collect();
        let want = text.replace(&ph[0], &orig[0]).replace(&ph[1], &orig[1]);
        prop_assert_eq!(got, want);
        let got_args: String = events.iter().filter_map(|(_, v)| v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str().map(str::to_string)).collect();
        let parsed: Value = serde_json::from_str(&got_args).unwrap();
        prop_assert_eq!(parsed["to"].as_str().unwrap(), orig[0].as_str());
        prop_assert_eq!(parsed["addr"].as_str().unwrap(), orig[1].as_str());
    }

    #[test]
    fn anthropic_text_and_tool_input_are_restored_exactly(cuts in proptest::collection::vec(0usize..200, 0..12), bcuts in proptest::collection::vec(0usize..4000, 0..6)) {
        let (ph, orig, map) = pseudonyms();
        let (text, _) = answer(&ph);
        let input = format!("{{\"to\":\"{}\"}}", ph[0]);
        let mut sse = String::from("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"content\":[]}}\n\n");
        sse.push_str("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
        for piece in split(&text, &cuts) {
            sse.push_str(&format!("event: content_block_delta\ndata: {}\n\n", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}})));
        }
        sse.push_str("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n");
        sse.push_str("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"send\",\"input\":{}}}\n\n");
        for piece in split(&input, &cuts) {
            sse.push_str(&format!("event: content_block_delta\ndata: {}\n\n", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": piece}})));
        }
        sse.push_str("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        let events = run(Endpoint::Messages, &map, &sse, &bcuts);
        // Every text piece arrives before its block's stop event.
        let stop0 = events.iter().position(|(_, v)| v["type"] == "content_block_stop" && v["index"] == 0).unwrap();
        let got: String = events[..stop0].iter().filter_map(|(_, v)| v["delta"]["text"].as_str().map(str::to_string)).collect();
        prop_assert_eq!(got, text.replace(&ph[0], &orig[0]).replace(&ph[1], &orig[1]));
        let json_text: String = events.iter().filter_map(|(_, v)| v["delta"]["partial_json"].as_str().map(str::to_string)).collect();
        let parsed: Value = serde_json::from_str(&json_text).unwrap();
        prop_assert_eq!(parsed["to"].as_str().unwrap(), orig[0].as_str());
        prop_assert!(events.iter().all(|(name, v)| name.as_deref() == v["type"].as_str()));
    }

    #[test]
    fn responses_deltas_and_final_objects_are_restored(cuts in proptest::collection::vec(0usize..200, 0..12)) {
        let (ph, orig, map) = pseudonyms();
        let (text, _) = answer(&ph);
        let mut sse = String::new();
        for piece in split(&text, &cuts) {
            sse.push_str(&format!("event: response.output_text.delta\ndata: {}\n\n", json!({"type": "response.output_text.delta", "item_id": "m1", "output_index": 0, "content_index": 0, "delta": piece})));
        }
        sse.push_str(&format!("event: response.output_text.done\ndata: {}\n\n", json!({"type": "response.output_text.done", "item_id": "m1", "output_index": 0, "content_index": 0, "text": text})));
        sse.push_str(&format!("event: response.completed\ndata: {}\n\n", json!({"type": "response.completed", "response": {"output": [{"type": "message", "content": [{"type": "output_text", "text": text}]}]}})));
        let events = run(Endpoint::Responses, &map, &sse, &[]);
        let want = text.replace(&ph[0], &orig[0]).replace(&ph[1], &orig[1]);
        let done = events.iter().position(|(_, v)| v["type"] == "response.output_text.done").unwrap();
        let got: String = events[..done].iter().filter_map(|(_, v)| v["delta"].as_str().map(str::to_string)).collect();
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(events[done].1["text"].as_str().unwrap(), want.as_str());
        prop_assert_eq!(events.last().unwrap().1["response"]["output"][0]["content"][0]["text"].as_str().unwrap(), want.as_str());
    }
}

#[test]
fn text_the_user_typed_that_looks_like_a_placeholder_is_left_alone() {
    let (ph, _, map) = pseudonyms();
    // Same word and number, but not this session's tag.
    let fake = format!("{}X]", &ph[0][..ph[0].len() - 1]);
    let typed = format!("[PERSON_NAME_1] と {fake}");
    assert_eq!(map.restore(&typed), typed);
}
