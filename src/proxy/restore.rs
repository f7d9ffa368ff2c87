//! Putting pseudonyms back into the answer the client receives, streamed or not, for every wire
//! format: text deltas split anywhere across events, tool-call argument fragments (JSON text, so
//! values go back JSON-escaped), and whole objects in final events. Each independent stream of
//! an answer (a choice's content, a content block, one call's arguments) has its own
//! [`Restorer`], which holds back only a possible placeholder prefix; what it still holds when
//! its stream ends is sent in a synthetic delta just before the event that ends it.
use super::endpoint::Endpoint;
use super::sse::Event;
use crate::redact::{Pseudonyms, Restorer};
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Restores every string in `v`; strings under an `arguments` key hold JSON text.
pub fn restore_value(map: &Pseudonyms, v: &mut Value, json_text: bool) {
    match v {
        Value::String(s) => {
            let r = if json_text {
                map.restore_json_escaped(s)
            } else {
                map.restore(s)
            };
            if let std::borrow::Cow::Owned(o) = r {
                *s = o;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| restore_value(map, x, json_text)),
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                restore_value(map, x, json_text || k == "arguments" || k == "partial_json");
            }
        }
        _ => {}
    }
}

/// Restores a whole (non-streamed) JSON body; `None` when nothing changed.
pub fn restore_body(map: &Pseudonyms, body: &[u8]) -> Option<Vec<u8>> {
    if map.is_empty() {
        return None;
    }
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let before = v.clone();
    restore_value(map, &mut v, false);
    (v != before).then(|| serde_json::to_vec(&v).ok()).flatten()
}

fn frame(name: Option<&str>, v: &Value) -> Bytes {
    match name {
        Some(n) => Bytes::from(format!("event: {n}\ndata: {v}\n\n")),
        None => Bytes::from(format!("data: {v}\n\n")),
    }
}

/// Rewrites one answer's events.
pub struct AnswerRestorer {
    endpoint: Endpoint,
    map: Arc<Pseudonyms>,
    streams: BTreeMap<String, (Restorer, bool)>,
    /// Chat: the last chunk's envelope, to build a synthetic chunk.
    envelope: Map<String, Value>,
}

impl std::fmt::Debug for AnswerRestorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerRestorer")
            .field("streams", &self.streams.len())
            .finish()
    }
}

impl AnswerRestorer {
    pub fn new(endpoint: Endpoint, map: Arc<Pseudonyms>) -> Self {
        Self {
            endpoint,
            map,
            streams: BTreeMap::new(),
            envelope: Map::new(),
        }
    }

    fn push(&mut self, key: &str, json_text: bool, text: &str) -> String {
        let map = &self.map;
        let (r, _) = self.streams.entry(key.to_string()).or_insert_with(|| {
            (
                if json_text {
                    map.stream_json_escaped()
                } else {
                    map.stream()
                },
                json_text,
            )
        });
        r.push(text)
    }

    fn take(&mut self, key: &str) -> Option<(String, bool)> {
        let (mut r, json_text) = self.streams.remove(key)?;
        let rest = r.finish();
        (!rest.is_empty()).then_some((rest, json_text))
    }

    /// The bytes to send for one upstream event, in order.
    pub fn on_event(&mut self, ev: &Event) -> Vec<Bytes> {
        if ev.data.trim() == "[DONE]" {
            let mut out = self.flush_all();
            out.push(ev.raw.clone());
            return out;
        }
        let Ok(mut v) = serde_json::from_str::<Value>(&ev.data) else {
            return vec![ev.raw.clone()];
        };
        let name = ev.event.as_deref();
        let mut out = Vec::new();
        match self.endpoint {
            Endpoint::ChatCompletions => self.chat(&mut v),
            Endpoint::Messages => self.messages(&mut v, &mut out),
            Endpoint::Responses => self.responses(&mut v, &mut out),
            Endpoint::Embeddings | Endpoint::CountTokens => restore_value(&self.map, &mut v, false),
        }
        out.push(frame(name, &v));
        out
    }

    fn chat(&mut self, v: &mut Value) {
        if let Some(m) = v.as_object() {
            for k in ["id", "object", "created", "model", "system_fingerprint"] {
                if let Some(x) = m.get(k) {
                    self.envelope.insert(k.into(), x.clone());
                }
            }
        }
        let Some(choices) = v.get_mut("choices").and_then(Value::as_array_mut) else {
            return;
        };
        for c in choices {
            let i = c.get("index").and_then(Value::as_u64).unwrap_or(0);
            let finished = c.get("finish_reason").is_some_and(|f| !f.is_null());
            let Some(delta) = c.get_mut("delta").and_then(Value::as_object_mut) else {
                continue;
            };
            for field in ["content", "refusal"] {
                if let Some(Value::String(t)) = delta.get(field) {
                    let t = t.clone();
                    let s = self.push(&format!("{i}/{field}"), false, &t);
                    delta.insert(field.into(), Value::String(s));
                }
            }
            if let Some(Value::Array(calls)) = delta.get_mut("tool_calls") {
                for tc in calls.iter_mut() {
                    let j = tc.get("index").and_then(Value::as_u64).unwrap_or(0);
                    if let Some(Value::String(a)) = tc.pointer("/function/arguments") {
                        let a = a.clone();
                        let s = self.push(&format!("{i}/tool/{j}"), true, &a);
                        tc["function"]["arguments"] = Value::String(s);
                    }
                    restore_fields_except(&self.map, tc, "function");
                }
            }
            if finished {
                self.flush_choice(i, delta);
            }
        }
    }

    /// Puts what a choice's restorers still hold into its final delta.
    fn flush_choice(&mut self, i: u64, delta: &mut Map<String, Value>) {
        let prefix = format!("{i}/");
        let keys: Vec<String> = self
            .streams
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        for k in keys {
            let Some((rest, _)) = self.take(&k) else {
                continue;
            };
            let field = &k[prefix.len()..];
            if let Some(j) = field.strip_prefix("tool/") {
                let j: u64 = j.parse().unwrap_or(0);
                let calls = delta.entry("tool_calls").or_insert_with(|| json!([]));
                if let Some(a) = calls.as_array_mut() {
                    a.push(json!({"index": j, "function": {"arguments": rest}}));
                }
            } else {
                let prev = delta
                    .get(field)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                delta.insert(field.to_string(), Value::String(prev + &rest));
            }
        }
    }

    fn messages(&mut self, v: &mut Value, out: &mut Vec<Bytes>) {
        let ty = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let idx = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        match ty.as_str() {
            "content_block_delta" => {
                let dtype = v
                    .pointer("/delta/type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let (field, json_text) = match dtype.as_str() {
                    "text_delta" => ("text", false),
                    "input_json_delta" => ("partial_json", true),
                    "thinking_delta" => ("thinking", false),
                    _ => return restore_value(&self.map, v, false),
                };
                if let Some(Value::String(t)) = v.pointer(&format!("/delta/{field}")) {
                    let t = t.clone();
                    let s = self.push(&format!("{idx}/{dtype}"), json_text, &t);
                    v["delta"][field] = Value::String(s);
                }
            }
            "content_block_stop" => {
                for dtype in ["text_delta", "input_json_delta", "thinking_delta"] {
                    if let Some((rest, _)) = self.take(&format!("{idx}/{dtype}")) {
                        let field = match dtype {
                            "text_delta" => "text",
                            "input_json_delta" => "partial_json",
                            _ => "thinking",
                        };
                        let mut delta = Map::new();
                        delta.insert("type".into(), Value::String(dtype.into()));
                        delta.insert(field.into(), Value::String(rest));
                        let synthetic =
                            json!({"type": "content_block_delta", "index": idx, "delta": delta});
                        out.push(frame(Some("content_block_delta"), &synthetic));
                    }
                }
            }
            "message_stop" => out.extend(self.flush_all()),
            _ => restore_value(&self.map, v, false),
        }
    }

    fn responses(&mut self, v: &mut Value, out: &mut Vec<Bytes>) {
        let ty = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let key_of = |v: &Value, base: &str| {
            format!(
                "{base}/{}/{}/{}",
                v.get("item_id").and_then(Value::as_str).unwrap_or(""),
                v.get("output_index").and_then(Value::as_u64).unwrap_or(0),
                v.get("content_index").and_then(Value::as_u64).unwrap_or(0)
            )
        };
        if let Some(base) = ty.strip_suffix(".delta") {
            if let Some(Value::String(t)) = v.get("delta") {
                let t = t.clone();
                let s = self.push(&key_of(v, base), base.contains("arguments"), &t);
                v["delta"] = Value::String(s);
                return;
            }
        }
        if let Some(base) = ty.strip_suffix(".done") {
            if let Some((rest, _)) = self.take(&key_of(v, base)) {
                let mut synthetic = v.clone();
                if let Some(m) = synthetic.as_object_mut() {
                    m.retain(|k, _| {
                        matches!(
                            k.as_str(),
                            "item_id" | "output_index" | "content_index" | "sequence_number"
                        )
                    });
                    m.insert("type".into(), Value::String(format!("{base}.delta")));
                    m.insert("delta".into(), Value::String(rest));
                }
                out.push(frame(Some(&format!("{base}.delta")), &synthetic));
            }
        }
        restore_value(&self.map, v, false);
    }

    /// Whatever any stream still holds, as synthetic events (for streams that ended without
    /// their closing event).
    pub fn flush_all(&mut self) -> Vec<Bytes> {
        let keys: Vec<String> = self.streams.keys().cloned().collect();
        let mut out = Vec::new();
        for k in keys {
            let Some((rest, _)) = self.take(&k) else {
                continue;
            };
            match self.endpoint {
                Endpoint::ChatCompletions => {
                    let (i, field) = k.split_once('/').unwrap_or(("0", "content"));
                    let i: u64 = i.parse().unwrap_or(0);
                    let delta = match field.strip_prefix("tool/") {
                        Some(j) => {
                            json!({"tool_calls": [{"index": j.parse::<u64>().unwrap_or(0), "function": {"arguments": rest}}]})
                        }
                        None => json!({ field: rest }),
                    };
                    let mut chunk = self.envelope.clone();
                    chunk.insert(
                        "choices".into(),
                        json!([{"index": i, "delta": delta, "finish_reason": null}]),
                    );
                    out.push(frame(None, &Value::Object(chunk)));
                }
                Endpoint::Messages => {
                    let (i, dtype) = k.split_once('/').unwrap_or(("0", "text_delta"));
                    let field = match dtype {
                        "input_json_delta" => "partial_json",
                        "thinking_delta" => "thinking",
                        _ => "text",
                    };
                    let ev = json!({"type": "content_block_delta", "index": i.parse::<u64>().unwrap_or(0), "delta": {"type": dtype, field: rest}});
                    out.push(frame(Some("content_block_delta"), &ev));
                }
                Endpoint::Responses => {
                    let base = k.split('/').next().unwrap_or("response.output_text");
                    let parts: Vec<&str> = k.split('/').collect();
                    let ev = json!({
                        "type": format!("{base}.delta"),
                        "item_id": parts.get(1).copied().unwrap_or(""),
                        "output_index": parts.get(2).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0),
                        "content_index": parts.get(3).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0),
                        "delta": rest
                    });
                    out.push(frame(Some(&format!("{base}.delta")), &ev));
                }
                Endpoint::Embeddings | Endpoint::CountTokens => {}
            }
        }
        out
    }
}

fn restore_fields_except(map: &Pseudonyms, v: &mut Value, skip: &str) {
    if let Value::Object(m) = v {
        for (k, x) in m.iter_mut() {
            if k != skip {
                restore_value(map, x, false);
            }
        }
    }
}
