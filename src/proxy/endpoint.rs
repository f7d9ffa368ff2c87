//! The data-plane endpoints and what the gateway must know of each request body.
use crate::policy::WireApi;
use crate::refusal::{Code, Refusal};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Responses,
    Embeddings,
    Messages,
    CountTokens,
}

impl Endpoint {
    pub const ALL: [Endpoint; 5] = [
        Endpoint::ChatCompletions,
        Endpoint::Responses,
        Endpoint::Embeddings,
        Endpoint::Messages,
        Endpoint::CountTokens,
    ];

    pub fn api(self) -> WireApi {
        match self {
            Endpoint::Messages | Endpoint::CountTokens => WireApi::Anthropic,
            _ => WireApi::Openai,
        }
    }

    /// The path appended to the provider's registered base URL.
    pub fn upstream_path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/chat/completions",
            Endpoint::Responses => "/responses",
            Endpoint::Embeddings => "/embeddings",
            Endpoint::Messages => "/messages",
            Endpoint::CountTokens => "/messages/count_tokens",
        }
    }

    /// The name recorded in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat.completions",
            Endpoint::Responses => "responses",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Messages => "messages",
            Endpoint::CountTokens => "messages.count_tokens",
        }
    }

    fn can_stream(self) -> bool {
        matches!(
            self,
            Endpoint::ChatCompletions | Endpoint::Responses | Endpoint::Messages
        )
    }

    /// The fields that carry conversation content (as opposed to tool schemas and settings).
    fn content_fields(self) -> &'static [&'static str] {
        match self {
            Endpoint::ChatCompletions => &["messages"],
            Endpoint::Responses => &["input", "instructions"],
            Endpoint::Embeddings => &["input"],
            Endpoint::Messages | Endpoint::CountTokens => &["messages", "system"],
        }
    }
}

/// A parsed request body, with the facts the policy needs.
#[derive(Debug)]
pub struct ClientRequest {
    pub body: Map<String, Value>,
    pub model: String,
    pub stream: bool,
    /// The size of the body as the client sent it.
    pub raw_len: usize,
}

/// Content part types that carry something other than text; they cannot be redacted.
const NON_TEXT: &[&str] = &[
    "image_url",
    "input_image",
    "image",
    "input_audio",
    "audio",
    "file",
    "input_file",
    "document",
];

impl ClientRequest {
    pub fn parse(endpoint: Endpoint, bytes: &[u8]) -> Result<Self, Refusal> {
        // Validated once, with SIMD: serde_json would check each string on its own, byte by
        // byte, which is most of the parse for Japanese text.
        let text = simdutf8::compat::from_utf8(bytes).map_err(|e| {
            Refusal::new(
                Code::InvalidRequest,
                format!(
                    "the request body is not valid UTF-8 (the first invalid byte is at offset {}, counting from 0); send JSON encoded as UTF-8",
                    e.valid_up_to()
                ),
            )
        })?;
        let value: Value = serde_json::from_str(text).map_err(|e| {
            Refusal::new(
                Code::InvalidRequest,
                format!("the request body is not valid JSON ({e}); send a JSON object"),
            )
        })?;
        let Value::Object(body) = value else {
            return Err(Refusal::new(
                Code::InvalidRequest,
                "the request body must be a JSON object",
            ));
        };
        let model = match body.get("model") {
            Some(Value::String(m)) if !m.is_empty() => m.clone(),
            Some(Value::String(_)) | None => {
                return Err(Refusal::new(
                    Code::InvalidRequest,
                    "`model` is required: name the model to use (see GET /v1/models)",
                ))
            }
            Some(_) => {
                return Err(Refusal::new(
                    Code::InvalidRequest,
                    "`model` must be a string",
                ))
            }
        };
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(Refusal::new(
                    Code::InvalidRequest,
                    "`stream` must be true or false",
                ))
            }
        };
        if stream && !endpoint.can_stream() {
            return Err(Refusal::new(
                Code::InvalidRequest,
                format!("`stream` is not supported on {}", endpoint.as_str()),
            ));
        }
        let required = match endpoint {
            Endpoint::ChatCompletions | Endpoint::Messages | Endpoint::CountTokens => {
                Some("messages")
            }
            Endpoint::Embeddings | Endpoint::Responses => Some("input"),
        };
        if let Some(field) = required {
            let ok = match (endpoint, body.get(field)) {
                (_, None) => false,
                (
                    Endpoint::Embeddings | Endpoint::Responses,
                    Some(Value::String(_) | Value::Array(_)),
                ) => true,
                (_, Some(Value::Array(_))) => true,
                _ => false,
            };
            if !ok {
                return Err(Refusal::new(
                    Code::InvalidRequest,
                    format!(
                        "`{field}` is required and must be {}",
                        if field == "messages" {
                            "an array of messages"
                        } else {
                            "a string or an array"
                        }
                    ),
                ));
            }
        }
        Ok(Self {
            body,
            model,
            stream,
            raw_len: bytes.len(),
        })
    }

    /// A feature that would have the provider send conversation data to a place the client
    /// names (MCP servers, URL fetching): the upstream must only ever be the registered one.
    pub fn reaches_elsewhere(&self) -> Option<String> {
        if self.body.contains_key("mcp_servers") {
            return Some("`mcp_servers`".into());
        }
        let tools = self.body.get("tools").and_then(Value::as_array);
        for t in tools.into_iter().flatten() {
            let ty = t.get("type").and_then(Value::as_str).unwrap_or("");
            if t.get("server_url").is_some() || ty.starts_with("mcp") || ty.starts_with("web_fetch")
            {
                return Some(format!("a `{ty}` tool"));
            }
        }
        None
    }

    /// The first non-text content type in the conversation, if any.
    pub fn non_text_content(&self, endpoint: Endpoint) -> Option<String> {
        endpoint
            .content_fields()
            .iter()
            .filter_map(|f| self.body.get(*f))
            .find_map(find_non_text)
    }
}

fn find_non_text(v: &Value) -> Option<String> {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(t)) = m.get("type") {
                if NON_TEXT.contains(&t.as_str()) {
                    return Some(t.clone());
                }
            }
            m.values().find_map(find_non_text)
        }
        Value::Array(a) => a.iter().find_map(find_non_text),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(e: Endpoint, v: Value) -> Result<ClientRequest, Refusal> {
        ClientRequest::parse(e, v.to_string().as_bytes())
    }

    #[test]
    fn a_body_that_is_not_utf8_is_refused_with_where() {
        // "名" with its last byte cut off, inside a string value.
        let body = b"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xe5\x90\"}]}";
        let r = ClientRequest::parse(Endpoint::ChatCompletions, body).unwrap_err();
        assert_eq!(r.code, Code::InvalidRequest);
        assert!(r.message.contains("at offset 51,"), "{}", r.message);
    }

    #[test]
    fn malformed_and_mistyped_bodies_are_invalid_requests() {
        assert_eq!(
            ClientRequest::parse(Endpoint::ChatCompletions, b"{oops")
                .unwrap_err()
                .code,
            Code::InvalidRequest
        );
        assert_eq!(
            parse(
                Endpoint::ChatCompletions,
                json!({"model": 3, "messages": []})
            )
            .unwrap_err()
            .code,
            Code::InvalidRequest
        );
        assert_eq!(
            parse(
                Endpoint::ChatCompletions,
                json!({"model": "m", "messages": "hi"})
            )
            .unwrap_err()
            .code,
            Code::InvalidRequest
        );
        assert_eq!(
            parse(
                Endpoint::Embeddings,
                json!({"model": "m", "input": "x", "stream": true})
            )
            .unwrap_err()
            .code,
            Code::InvalidRequest
        );
    }

    #[test]
    fn images_are_found_in_content_but_not_in_tool_schemas() {
        let r = parse(Endpoint::ChatCompletions, json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "data:"}}]}]})).unwrap();
        assert_eq!(
            r.non_text_content(Endpoint::ChatCompletions).as_deref(),
            Some("image_url")
        );
        let r = parse(Endpoint::Messages, json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [{"name": "t", "input_schema": {"type": "object", "properties": {"f": {"type": "file"}}}}]})).unwrap();
        assert_eq!(r.non_text_content(Endpoint::Messages), None);
    }
}
