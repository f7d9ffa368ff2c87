//! HTTP: the routers and thin handlers. Only this module knows axum; handlers extract what the
//! request carries, call `proxy`, and map the result.
mod error;

pub use error::ApiError;

use crate::gateway::Gateway;
use crate::policy::WireApi;
use crate::proxy::{self, endpoint::Endpoint, Incoming, Reply, ReplyBody};
use crate::refusal::{Code, Refusal};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

pub const REQUEST_ID: &str = "x-mamori-request-id";
pub const REDACTIONS: &str = "x-mamori-redactions";
const MAX_ATTRIBUTION_LEN: usize = 200;

/// Serves `app` on `listener` until `shutdown` completes. Sockets get TCP_NODELAY: a stream is
/// many small writes, and Nagle's algorithm would hold each event back for an ACK.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route(CHAT_COMPLETIONS, post(chat_completions))
        .route(RESPONSES, post(responses))
        .route(EMBEDDINGS, post(embeddings))
        .route(MESSAGES, post(messages))
        .route(COUNT_TOKENS, post(count_tokens))
        .route(MODELS, get(models))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response(with_request_id))
        // Bodies are read with our own limit so that an oversized one is refused in our shape.
        .layer(DefaultBodyLimit::disable())
        .with_state(gw)
}

/// Every response carries a request id: the data plane's name their log record; the others
/// (health, metrics, a wrong path or method) get one of their own, which names no record.
async fn with_request_id(mut resp: Response) -> Response {
    if !resp.headers().contains_key(REQUEST_ID) {
        if let Ok(id) = HeaderValue::from_str(&proxy::new_request_id()) {
            resp.headers_mut().insert(REQUEST_ID, id);
        }
    }
    resp
}

/// A header's value, trimmed; `None` when absent, empty or not UTF-8. Borrowed, so that a value
/// is copied once, when it is kept (the key is kept whole, attributions cut to length).
fn header_str<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let s = std::str::from_utf8(h.get(name)?.as_bytes()).ok()?.trim();
    (!s.is_empty()).then_some(s)
}

fn header_text(h: &HeaderMap, name: &str) -> Option<String> {
    header_str(h, name).map(|s| s.chars().take(MAX_ATTRIBUTION_LEN).collect())
}

/// Attribution headers may be raw UTF-8 or percent-encoded (HTTP clients such as the Python
/// SDKs only send ASCII header values, so `要約` arrives as `%E8%A6%81%E7%B4%84`).
fn attribution(h: &HeaderMap, name: &str) -> Option<String> {
    let raw = header_text(h, name)?;
    if !raw.contains('%') {
        return Some(raw);
    }
    match percent_encoding::percent_decode_str(&raw).decode_utf8() {
        Ok(decoded) => Some(decoded.chars().take(MAX_ATTRIBUTION_LEN).collect()),
        Err(_) => Some(raw),
    }
}

fn incoming(h: &HeaderMap) -> Incoming {
    let authorization = header_str(h, "authorization");
    let key = authorization
        .and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("bearer "))
        })
        .or_else(|| header_str(h, "x-api-key"))
        .map(|k| k.trim().to_string());
    Incoming {
        authorization_not_bearer: key.is_none() && authorization.is_some(),
        key,
        deliverable: attribution(h, "x-mamori-deliverable"),
        purpose: attribution(h, "x-mamori-purpose"),
        anthropic_version: header_text(h, "anthropic-version"),
        anthropic_beta: header_text(h, "anthropic-beta"),
    }
}

async fn read_body(gw: &Gateway, body: Body) -> Result<bytes::Bytes, Refusal> {
    let limit = gw.config.max_body_bytes;
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if e.into_inner().downcast_ref::<http_body_util::LengthLimitError>().is_some() {
            Refusal::new(Code::RequestTooLarge, format!("the request body is larger than this gateway's limit of {limit} bytes; send less"))
        } else {
            Refusal::new(Code::InvalidRequest, "the request body could not be read (the connection broke off or the body was malformed); send it again")
        }
    })
}

async fn data_plane(
    gw: Arc<Gateway>,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let inc = incoming(&headers);
    let body = read_body(&gw, body).await;
    let reply = proxy::handle(&gw, endpoint, inc, body)
        .await
        .map_err(|r| ApiError::from_refused(endpoint.api(), r))?;
    Ok(into_response(reply))
}

fn into_response(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let streaming = matches!(reply.body, ReplyBody::Stream(_));
    let body = match reply.body {
        ReplyBody::Full(b) => Body::from(b),
        ReplyBody::Stream(s) => Body::from_stream(s),
    };
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    if let Ok(ct) = HeaderValue::from_str(&reply.content_type) {
        h.insert(header::CONTENT_TYPE, ct);
    }
    if streaming {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    if let Ok(id) = HeaderValue::from_str(&reply.request_id) {
        h.insert(REQUEST_ID, id);
    }
    h.insert(REDACTIONS, HeaderValue::from(reply.redactions));
    resp
}

async fn chat_completions(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    data_plane(gw, Endpoint::ChatCompletions, headers, body).await
}

async fn responses(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    data_plane(gw, Endpoint::Responses, headers, body).await
}

async fn embeddings(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    data_plane(gw, Endpoint::Embeddings, headers, body).await
}

async fn messages(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    data_plane(gw, Endpoint::Messages, headers, body).await
}

async fn count_tokens(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    data_plane(gw, Endpoint::CountTokens, headers, body).await
}

/// Lists models in the shape of the SDK that asks: Anthropic's when `anthropic-version` is sent.
async fn models(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let api = if headers.contains_key("anthropic-version") {
        WireApi::Anthropic
    } else {
        WireApi::Openai
    };
    let (request_id, list) = proxy::models(&gw, incoming(&headers))
        .await
        .map_err(|r| ApiError::from_refused(api, r))?;
    let body = match api {
        WireApi::Openai => serde_json::json!({
            "object": "list",
            "data": list.iter().map(|(m, p)| serde_json::json!({"id": m, "object": "model", "created": 0, "owned_by": p})).collect::<Vec<_>>()
        }),
        WireApi::Anthropic => serde_json::json!({
            "data": list.iter().map(|(m, _)| serde_json::json!({"type": "model", "id": m, "display_name": m, "created_at": "1970-01-01T00:00:00Z"})).collect::<Vec<_>>(),
            "has_more": false,
            "first_id": list.first().map(|(m, _)| m),
            "last_id": list.last().map(|(m, _)| m),
        }),
    };
    let mut resp = axum::Json(body).into_response();
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID, id);
    }
    Ok(resp)
}

async fn readyz(State(gw): State<Arc<Gateway>>) -> Response {
    match gw.store.ping().await {
        Ok(()) if gw.log.is_healthy() => (StatusCode::OK, "ready").into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response(),
    }
}

async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::render_metrics(),
    )
        .into_response()
}

/// The wire API a request that reached no endpoint most likely speaks.
fn api_of(headers: &HeaderMap) -> WireApi {
    if headers.contains_key("anthropic-version") || headers.contains_key("x-api-key") {
        WireApi::Anthropic
    } else {
        WireApi::Openai
    }
}

const CHAT_COMPLETIONS: &str = "/v1/chat/completions";
const RESPONSES: &str = "/v1/responses";
const EMBEDDINGS: &str = "/v1/embeddings";
const MESSAGES: &str = "/v1/messages";
const COUNT_TOKENS: &str = "/v1/messages/count_tokens";
const MODELS: &str = "/v1/models";
/// The data plane's POST paths (the rest of the router takes GET).
const POST_PATHS: &[&str] = &[
    CHAT_COMPLETIONS,
    RESPONSES,
    EMBEDDINGS,
    MESSAGES,
    COUNT_TOKENS,
];

async fn not_found(headers: HeaderMap, uri: axum::http::Uri) -> ApiError {
    let path = uri.path();
    // A client whose base URL lacks `/v1` (the OpenAI SDKs expect it in the base URL).
    let with_v1 = format!("/v1{path}");
    let hint = if POST_PATHS.contains(&with_v1.as_str()) || with_v1 == MODELS {
        format!("; did you mean {with_v1}? (an OpenAI client's base URL ends in /v1)")
    } else {
        "; see README for the endpoints".to_string()
    };
    ApiError {
        api: api_of(&headers),
        refusal: Refusal::new(
            Code::NotFound,
            format!("mamori does not serve {path}{hint}"),
        ),
        request_id: None,
    }
}

async fn method_not_allowed(
    headers: HeaderMap,
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> impl IntoResponse {
    let path = uri.path();
    let allowed = if POST_PATHS.contains(&path) {
        "POST"
    } else {
        "GET"
    };
    let error = ApiError {
        api: api_of(&headers),
        refusal: Refusal::new(
            Code::MethodNotAllowed,
            format!("{path} does not take {method}; send a {allowed} request"),
        ),
        request_id: None,
    };
    ([(header::ALLOW, allowed)], error)
}
