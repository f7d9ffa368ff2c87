//! Turns what the provider answered into the output kept in the log: the JSON body as is, or
//! a streamed answer assembled into the equivalent non-streamed body. Also reads token usage.
use super::endpoint::Endpoint;
use super::sse::Event;
use serde_json::{json, Map, Value};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub input: Option<i64>,
    pub output: Option<i64>,
}

/// Reads usage from a response body of any endpoint.
pub fn usage_of(body: &Value) -> Usage {
    let u = body.get("usage");
    let get = |k: &str| u.and_then(|u| u.get(k)).and_then(Value::as_i64);
    Usage {
        input: get("prompt_tokens")
            .or_else(|| get("input_tokens"))
            .or_else(|| body.get("input_tokens").and_then(Value::as_i64)),
        output: get("completion_tokens").or_else(|| get("output_tokens")),
    }
}

/// The usage of a whole (non-streamed) answer. Reads only the usage fields, skipping the rest
/// without building it; falls back to a full parse for answers whose fields are unusual.
pub fn usage_of_body(body: &[u8]) -> Usage {
    #[derive(serde::Deserialize)]
    struct Counts {
        prompt_tokens: Option<i64>,
        input_tokens: Option<i64>,
        completion_tokens: Option<i64>,
        output_tokens: Option<i64>,
    }
    #[derive(serde::Deserialize)]
    struct Only {
        usage: Option<Counts>,
        input_tokens: Option<i64>,
    }
    match serde_json::from_slice::<Only>(body) {
        Ok(o) => {
            let u = o.usage.as_ref();
            Usage {
                input: u
                    .and_then(|u| u.prompt_tokens.or(u.input_tokens))
                    .or(o.input_tokens),
                output: u.and_then(|u| u.completion_tokens.or(u.output_tokens)),
            }
        }
        Err(_) => serde_json::from_slice::<Value>(body)
            .map(|v| usage_of(&v))
            .unwrap_or_default(),
    }
}

/// Whether this event ends the answer; the gateway holds it back until the log is committed.
pub fn is_terminal(endpoint: Endpoint, ev: &Event) -> bool {
    match endpoint {
        Endpoint::ChatCompletions => ev.data.trim() == "[DONE]",
        Endpoint::Responses => matches!(
            event_type(ev).as_deref(),
            Some("response.completed" | "response.failed" | "response.incomplete")
        ),
        Endpoint::Messages => event_type(ev).as_deref() == Some("message_stop"),
        Endpoint::Embeddings | Endpoint::CountTokens => false,
    }
}

fn event_type(ev: &Event) -> Option<String> {
    ev.event.clone().or_else(|| {
        serde_json::from_str::<Value>(&ev.data)
            .ok()
            .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_string))
    })
}

/// Accumulates a streamed answer.
#[derive(Debug)]
pub struct Assembler {
    endpoint: Endpoint,
    /// Chat: the completion being built. Messages: the message. Responses: the final response.
    doc: Map<String, Value>,
    /// Chat: per choice index, content text and tool calls by index.
    choices: Vec<ChatChoice>,
    /// Messages: blocks by index, with partial JSON for tool inputs.
    blocks: Vec<(Value, String)>,
    responses_text: String,
    pub usage: Usage,
    pub saw_terminal: bool,
}

#[derive(Debug, Default)]
struct ChatChoice {
    role: Option<String>,
    content: String,
    tool_calls: Vec<Map<String, Value>>,
    finish_reason: Value,
}

impl Assembler {
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            doc: Map::new(),
            choices: Vec::new(),
            blocks: Vec::new(),
            responses_text: String::new(),
            usage: Usage::default(),
            saw_terminal: false,
        }
    }

    pub fn on_event(&mut self, ev: &Event) {
        if is_terminal(self.endpoint, ev) {
            self.saw_terminal = true;
        }
        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
            return;
        };
        match self.endpoint {
            Endpoint::ChatCompletions => self.on_chat(&v),
            Endpoint::Responses => self.on_responses(&v),
            Endpoint::Messages => self.on_messages(&v),
            Endpoint::Embeddings | Endpoint::CountTokens => {}
        }
    }

    fn on_chat(&mut self, v: &Value) {
        for k in ["id", "model", "created", "system_fingerprint"] {
            if let Some(x) = v.get(k) {
                self.doc.insert(k.to_string(), x.clone());
            }
        }
        if v.get("usage").is_some_and(|u| !u.is_null()) {
            self.usage = usage_of(v);
            self.doc.insert("usage".into(), v["usage"].clone());
        }
        let Some(choices) = v.get("choices").and_then(Value::as_array) else {
            return;
        };
        for c in choices {
            let idx = c.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            if idx > 1024 {
                continue;
            }
            if self.choices.len() <= idx {
                self.choices.resize_with(idx + 1, ChatChoice::default);
            }
            let ch = &mut self.choices[idx];
            if let Some(fr) = c.get("finish_reason").filter(|f| !f.is_null()) {
                ch.finish_reason = fr.clone();
            }
            let Some(delta) = c.get("delta") else {
                continue;
            };
            if let Some(r) = delta.get("role").and_then(Value::as_str) {
                ch.role = Some(r.to_string());
            }
            if let Some(t) = delta.get("content").and_then(Value::as_str) {
                ch.content.push_str(t);
            }
            for tc in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let ti = tc.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                if ti > 1024 {
                    continue;
                }
                if ch.tool_calls.len() <= ti {
                    ch.tool_calls.resize_with(ti + 1, Map::new);
                }
                let slot = &mut ch.tool_calls[ti];
                for k in ["id", "type"] {
                    if let Some(x) = tc.get(k) {
                        slot.insert(k.into(), x.clone());
                    }
                }
                if let Some(f) = tc.get("function") {
                    let func = slot
                        .entry("function")
                        .or_insert_with(|| json!({"name": "", "arguments": ""}));
                    if let Some(n) = f.get("name").and_then(Value::as_str) {
                        func["name"] = Value::String(n.to_string());
                    }
                    if let Some(a) = f.get("arguments").and_then(Value::as_str) {
                        let prev = func["arguments"].as_str().unwrap_or("").to_string();
                        func["arguments"] = Value::String(prev + a);
                    }
                }
            }
        }
    }

    fn on_responses(&mut self, v: &Value) {
        let ty = v.get("type").and_then(Value::as_str).unwrap_or("");
        if ty == "response.output_text.delta" {
            if let Some(d) = v.get("delta").and_then(Value::as_str) {
                self.responses_text.push_str(d);
            }
        }
        if let Some(Value::Object(resp)) = v.get("response") {
            if matches!(
                ty,
                "response.completed" | "response.failed" | "response.incomplete"
            ) {
                self.usage = usage_of(&Value::Object(resp.clone()));
            }
            self.doc = resp.clone();
        }
    }

    fn on_messages(&mut self, v: &Value) {
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "message_start" => {
                if let Some(Value::Object(m)) = v.get("message") {
                    self.doc = m.clone();
                    self.usage = usage_of(&Value::Object(m.clone()));
                }
            }
            "content_block_start" => {
                let idx = v.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                if idx > 4096 {
                    return;
                }
                if self.blocks.len() <= idx {
                    self.blocks
                        .resize_with(idx + 1, || (Value::Null, String::new()));
                }
                self.blocks[idx].0 = v.get("content_block").cloned().unwrap_or(Value::Null);
            }
            "content_block_delta" => {
                let idx = v.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                let Some((block, partial)) = self.blocks.get_mut(idx) else {
                    return;
                };
                let d = &v["delta"];
                match d.get("type").and_then(Value::as_str).unwrap_or("") {
                    "text_delta" => append(block, "text", d.get("text")),
                    "thinking_delta" => append(block, "thinking", d.get("thinking")),
                    "input_json_delta" => partial
                        .push_str(d.get("partial_json").and_then(Value::as_str).unwrap_or("")),
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(Value::Object(d)) = v.get("delta") {
                    for (k, x) in d {
                        self.doc.insert(k.clone(), x.clone());
                    }
                }
                if let Some(out) = v
                    .get("usage")
                    .and_then(|u| u.get("output_tokens"))
                    .and_then(Value::as_i64)
                {
                    self.usage.output = Some(out);
                }
            }
            _ => {}
        }
    }

    /// The assembled output, as JSON bytes.
    pub fn finish(mut self) -> Vec<u8> {
        match self.endpoint {
            Endpoint::ChatCompletions => {
                let choices: Vec<Value> = self
                    .choices
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let mut msg = json!({"role": c.role.unwrap_or_else(|| "assistant".into()), "content": c.content});
                        if !c.tool_calls.is_empty() {
                            msg["tool_calls"] = Value::Array(c.tool_calls.into_iter().map(Value::Object).collect());
                        }
                        json!({"index": i, "message": msg, "finish_reason": c.finish_reason})
                    })
                    .collect();
                self.doc
                    .insert("object".into(), Value::String("chat.completion".into()));
                self.doc.insert("choices".into(), Value::Array(choices));
            }
            Endpoint::Responses => {
                if self.doc.is_empty() {
                    self.doc
                        .insert("output_text".into(), Value::String(self.responses_text));
                }
            }
            Endpoint::Messages => {
                let content: Vec<Value> = self
                    .blocks
                    .into_iter()
                    .map(|(mut b, partial)| {
                        if !partial.is_empty() {
                            b["input"] =
                                serde_json::from_str(&partial).unwrap_or(Value::String(partial));
                        }
                        b
                    })
                    .collect();
                self.doc.insert("content".into(), Value::Array(content));
                let mut u = self.doc.get("usage").cloned().unwrap_or_else(|| json!({}));
                if let Some(o) = self.usage.output {
                    u["output_tokens"] = json!(o);
                }
                self.doc.insert("usage".into(), u);
            }
            Endpoint::Embeddings | Endpoint::CountTokens => {}
        }
        serde_json::to_vec(&Value::Object(self.doc)).unwrap_or_default()
    }
}

fn append(block: &mut Value, key: &str, piece: Option<&Value>) {
    let Some(p) = piece.and_then(Value::as_str) else {
        return;
    };
    if let Value::Object(m) = block {
        let prev = m.get(key).and_then(Value::as_str).unwrap_or("").to_string();
        m.insert(key.to_string(), Value::String(prev + p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::sse::Framer;

    fn assemble(endpoint: Endpoint, sse: &str) -> (Value, Usage, bool) {
        let mut a = Assembler::new(endpoint);
        for ev in Framer::default().push(sse.as_bytes()) {
            a.on_event(&ev);
        }
        let (usage, term) = (a.usage, a.saw_terminal);
        (serde_json::from_slice(&a.finish()).unwrap(), usage, term)
    }

    #[test]
    fn usage_of_a_whole_body_reads_only_what_it_needs_and_agrees_with_the_full_parse() {
        for body in [
            r#"{"id":"x","usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#,
            r#"{"type":"message","usage":{"input_tokens":7,"output_tokens":2}}"#,
            r#"{"input_tokens":42}"#,
            r#"{"usage":{"prompt_tokens":null,"input_tokens":5}}"#,
            r#"{"usage":{"prompt_tokens":1.5,"completion_tokens":2}}"#,
            r#"{"usage":null}"#,
            r#"{"data":[{"embedding":[0.1,0.2]}],"usage":{"prompt_tokens":4,"total_tokens":4}}"#,
            "not json",
        ] {
            let full = serde_json::from_slice::<Value>(body.as_bytes())
                .map(|v| usage_of(&v))
                .unwrap_or_default();
            let fast = usage_of_body(body.as_bytes());
            assert_eq!(
                (fast.input, fast.output),
                (full.input, full.output),
                "{body}"
            );
        }
        assert_eq!(usage_of_body(br#"{"input_tokens":42}"#).input, Some(42));
    }

    #[test]
    fn chat_stream_with_text_and_a_tool_call() {
        let sse = concat!(
            "data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"こん\"}}]}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"にちは\"}}]}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"t1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]},\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7}}\n\n",
            "data: [DONE]\n\n"
        );
        let (v, u, term) = assemble(Endpoint::ChatCompletions, sse);
        assert!(term);
        assert_eq!(v["choices"][0]["message"]["content"], "こんにちは");
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"a\":1}"
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            u,
            Usage {
                input: Some(5),
                output: Some(7)
            }
        );
    }

    #[test]
    fn anthropic_stream_with_tool_use() {
        let sse = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"c\",\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"やあ\"}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"tu\",\"name\":\"get\",\"input\":{}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"q\\\":\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"x\\\"}\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":12}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        );
        let (v, u, term) = assemble(Endpoint::Messages, sse);
        assert!(term);
        assert_eq!(v["content"][0]["text"], "やあ");
        assert_eq!(v["content"][1]["input"]["q"], "x");
        assert_eq!(v["stop_reason"], "tool_use");
        assert_eq!(
            u,
            Usage {
                input: Some(9),
                output: Some(12)
            }
        );
    }
}

/// The text an answer carries, whatever the endpoint: what a person may paste into a
/// deliverable (message text, tool-call arguments, Responses output text). Used by disclosures
/// and by `mamori scan`.
pub fn output_text(body: &Value) -> String {
    let mut out = Vec::new();
    // Chat completions.
    for c in body
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let m = c.get("message").unwrap_or(c);
        if let Some(t) = m.get("content").and_then(Value::as_str) {
            out.push(t.to_string());
        }
        for tc in m
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(a) = tc.pointer("/function/arguments").and_then(Value::as_str) {
                out.push(a.to_string());
            }
        }
    }
    // Responses: output items with content parts; or the stream fallback.
    for item in body
        .get("output")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for part in item
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(t) = part.get("text").and_then(Value::as_str) {
                out.push(t.to_string());
            }
        }
        if let Some(a) = item.get("arguments").and_then(Value::as_str) {
            out.push(a.to_string());
        }
    }
    if let Some(t) = body.get("output_text").and_then(Value::as_str) {
        out.push(t.to_string());
    }
    // Anthropic messages.
    if body.get("type").and_then(Value::as_str) == Some("message") {
        for block in body
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match block.get("type").and_then(Value::as_str) {
                Some("text") => out.extend(
                    block
                        .get("text")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                ),
                Some("tool_use") => out.extend(block.get("input").map(Value::to_string)),
                _ => {}
            }
        }
    }
    out.join("\n")
}

#[cfg(test)]
mod output_text_tests {
    use super::*;

    #[test]
    fn text_is_found_in_every_shape() {
        let chat = json!({"choices": [{"message": {"content": "一", "tool_calls": [{"function": {"arguments": "{\"a\":1}"}}]}}]});
        assert_eq!(output_text(&chat), "一\n{\"a\":1}");
        let resp = json!({"output": [{"type": "message", "content": [{"type": "output_text", "text": "二"}]}]});
        assert_eq!(output_text(&resp), "二");
        let msg = json!({"type": "message", "content": [{"type": "text", "text": "三"}]});
        assert_eq!(output_text(&msg), "三");
        assert_eq!(output_text(&json!({"data": [{"embedding": [0.1]}]})), "");
    }
}
