//! The data plane: one request from a staff client to a registered provider and back.
//! Order of checks (SPEC.md): key → staff training → contract → provider approved → provider
//! allowed for the contract → model → content → log available → forward → log.
//! Nothing here knows axum; `http/` adapts requests and replies.
pub mod assemble;
pub mod endpoint;
mod json;
pub mod restore;
pub mod sse;
pub mod upstream;

use crate::audit::Plain;
use crate::gateway::Gateway;
use crate::policy::{Caller, Route, WireApi};
use crate::refusal::{Code, Refusal};
use crate::store::{now_text, LogRecord};
use assemble::{Assembler, Usage};
use bytes::{Bytes, BytesMut};
use endpoint::{ClientRequest, Endpoint};
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;

/// What the HTTP layer extracted from a data-plane request.
#[derive(Default)]
pub struct Incoming {
    pub key: Option<String>,
    /// An `Authorization` header was sent, but not as `Bearer KEY`.
    pub authorization_not_bearer: bool,
    pub deliverable: Option<String>,
    pub purpose: Option<String>,
    pub anthropic_version: Option<String>,
    pub anthropic_beta: Option<String>,
}

// The staff key is a secret: `Debug` says only whether one was sent.
impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("key", &self.key.as_ref().map(|_| "***"))
            .field("deliverable", &self.deliverable)
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

pub enum ReplyBody {
    Full(Bytes),
    Stream(BoxStream<'static, Result<Bytes, std::io::Error>>),
}

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub request_id: String,
    /// How many confidential values were redacted from the request (`X-Mamori-Redactions`).
    pub redactions: u32,
    pub body: ReplyBody,
}

/// A refusal, already recorded in the log.
#[derive(Debug)]
pub struct Refused {
    pub refusal: Refusal,
    pub request_id: String,
}

/// `req_` and a UUIDv7 (time-ordered, so new ids append to the log's index). Its random part
/// comes from the thread's generator rather than a `getrandom` system call per request.
pub fn new_request_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let random: [u8; 10] = rand::random();
    let id = uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid();
    format!("req_{}", id.simple())
}

use crate::digest::sha256_hex;

struct Exchange {
    /// Counts the exchange as in progress until it is dropped.
    _active: Active,
    started: Instant,
    endpoint: &'static str,
    /// Boxed: the exchange moves with the request's future, and through the log writer's calls.
    rec: Box<LogRecord>,
    /// The bodies as sent and received, sealed straight from these buffers.
    plain: Plain,
}

static REQUESTS_SEEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static REQUESTS_ACTIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One data-plane request in progress (see [`requests_active`]).
struct Active;

impl Active {
    fn new() -> Self {
        REQUESTS_ACTIVE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Active
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        REQUESTS_ACTIVE.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How many data-plane requests are being handled right now.
fn requests_active() -> usize {
    REQUESTS_ACTIVE.load(std::sync::atomic::Ordering::Relaxed)
}

/// How many data-plane requests this process has begun (for telling busy from idle).
pub fn requests_seen() -> u64 {
    REQUESTS_SEEN.load(std::sync::atomic::Ordering::Relaxed)
}

impl Exchange {
    fn new(endpoint: &'static str) -> Self {
        REQUESTS_SEEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            _active: Active::new(),
            started: Instant::now(),
            endpoint,
            rec: Box::new(LogRecord {
                request_id: new_request_id(),
                at: now_text(),
                endpoint: endpoint.to_string(),
                redactions: "{}".to_string(),
                ..Default::default()
            }),
            plain: Plain::default(),
        }
    }

    fn attribute(&mut self, caller: &Caller, inc: &Incoming) {
        self.rec.staff_id = Some(caller.staff.id.clone());
        self.rec.key_id = Some(caller.key.id.clone());
        self.rec.contract_id = Some(caller.contract.id.clone());
        self.rec.deliverable = inc
            .deliverable
            .clone()
            .or_else(|| caller.key.deliverable.clone());
        self.rec.purpose = inc.purpose.clone().or_else(|| caller.key.purpose.clone());
    }

    fn finish(&mut self, outcome: &'static str, code: Option<Code>, status: u16) {
        self.rec.outcome = outcome.to_string();
        self.rec.code = code.map(|c| c.as_str().to_string());
        self.rec.http_status = i64::from(status);
        self.rec.latency_us = self.started.elapsed().as_micros() as i64;
        metrics::counter!("mamori_requests_total", "endpoint" => self.endpoint, "outcome" => outcome)
            .increment(1);
    }

    /// Records a refusal (without waiting) and hands it back for the client.
    fn refuse(mut self, gw: &Gateway, refusal: Refusal) -> Refused {
        self.finish("refused", Some(refusal.code), refusal.code.http_status());
        metrics::counter!("mamori_refusals_total", "code" => refusal.code.as_str()).increment(1);
        tracing::warn!(request_id = %self.rec.request_id, endpoint = %self.rec.endpoint, code = refusal.code.as_str(), key_id = ?self.rec.key_id, "request refused");
        let request_id = self.rec.request_id.clone();
        self.plain.into_record(&mut self.rec);
        gw.log.submit(self.rec);
        Refused {
            refusal,
            request_id,
        }
    }

    /// Records who was refused when the key is known but not valid (revoked, expired, untrained
    /// staff, inactive contract): an incident report (第14) needs the person, not just the code.
    fn refuse_unauthenticated(mut self, gw: &Gateway, inc: &Incoming, refusal: Refusal) -> Refused {
        if let Some(k) = inc
            .key
            .as_deref()
            .and_then(|k| gw.policy.snapshot().key_row(k).cloned())
        {
            self.rec.key_id = Some(k.id);
            self.rec.staff_id = Some(k.staff_id);
            self.rec.contract_id = Some(k.contract_id);
            self.rec.deliverable = inc.deliverable.clone().or(k.deliverable);
            self.rec.purpose = inc.purpose.clone().or(k.purpose);
        }
        self.refuse(gw, refusal)
    }

    fn set_output(&mut self, output: Bytes, usage: Usage) {
        self.rec.output_sha256 = Some(sha256_hex(&output));
        self.plain.output = Some(output);
        self.rec.input_tokens = usage.input;
        self.rec.output_tokens = usage.output;
    }
}

/// What redaction did to a request: counts for the log, and the pseudonyms to restore.
struct Redaction {
    total: u32,
    counts_json: String,
    pseudonyms: Arc<crate::redact::Pseudonyms>,
}

/// Keys whose string values are structure, not content: never redacted.
const STRUCTURAL_KEYS: &[&str] = &[
    "model",
    "role",
    "type",
    "id",
    "tool_call_id",
    "tool_use_id",
    "call_id",
    "previous_response_id",
    "encoding_format",
    "media_type",
    "signature",
    "service_tier",
    "tool_choice",
    "reasoning_effort",
    "effort",
    "truncation",
];

/// Keys of the wire formats that hold prose: their strings are redacted as they are.
const TEXT_KEYS: &[&str] = &[
    "content",
    "text",
    "input",
    "instructions",
    "system",
    "description",
    "arguments",
    "output",
    "prompt",
    "query",
    "thinking",
    "summary",
    "title",
    "partial_json",
    "refusal",
];

/// A string to redact; `field` is the object key it sits under when that key may itself say
/// the value is confidential (structured data such as `{"住所": "…"}` in a tool call's input).
struct Slot<'a> {
    value: &'a mut String,
    field: Option<String>,
}

fn content_strings<'a>(v: &'a mut Value, key: Option<&str>, out: &mut Vec<Slot<'a>>) {
    match v {
        Value::String(s) => {
            let field = key.filter(|k| !TEXT_KEYS.contains(k)).map(str::to_string);
            out.push(Slot { value: s, field });
        }
        Value::Array(a) => a.iter_mut().for_each(|x| content_strings(x, key, out)),
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if !(STRUCTURAL_KEYS.contains(&k.as_str()) && x.is_string()) {
                    content_strings(x, Some(k.as_str()), out);
                }
            }
        }
        _ => {}
    }
}

/// Redacts every content string of the request in one batch (so a value found anywhere is
/// replaced everywhere), or refuses it. Nothing is sent if this fails. A value under a data key
/// is redacted as the line `key：value`, so that tagged-field rules (氏名, 住所…) see its key.
fn redact_request(
    gw: &Gateway,
    caller: &Caller,
    req: &mut ClientRequest,
) -> Result<Redaction, Refusal> {
    let matcher = gw.policy.snapshot().matcher(&caller.contract.id)?;
    let mut session = gw.rules.session(&matcher);
    session.scope_clean_texts(&caller.key.id);
    let mut slots = Vec::new();
    for (k, v) in req.body.iter_mut() {
        if k != "model" {
            content_strings(v, None, &mut slots);
        }
    }
    // Moved out, not copied: each is written back below (or the request is refused).
    let mut texts: Vec<String> = slots
        .iter_mut()
        .map(|s| match &s.field {
            Some(k) => format!("{k}：{}", s.value),
            None => std::mem::take(s.value),
        })
        .collect();
    session
        .redact_strings(texts.iter_mut())
        .map_err(|r| Refusal::new(r.code(), r.to_string()))?;
    for (slot, text) in slots.into_iter().zip(texts) {
        match slot.field {
            None => *slot.value = text,
            Some(k) => {
                let prefix = format!("{k}：");
                match text.strip_prefix(&prefix) {
                    Some(rest) => *slot.value = rest.to_string(),
                    // The key itself was redacted (a term in a key): redact the value alone.
                    None => {
                        let alone = session
                            .redact_text(slot.value)
                            .map_err(|r| Refusal::new(r.code(), r.to_string()))?
                            .into_owned();
                        *slot.value = alone;
                    }
                }
            }
        }
    }
    for (label, n) in session.counts() {
        metrics::counter!("mamori_redactions_total", "label" => label.clone())
            .increment(u64::from(*n));
    }
    Ok(Redaction {
        total: session.total(),
        counts_json: serde_json::to_string(session.counts()).unwrap_or_else(|_| "{}".into()),
        pseudonyms: session.pseudonyms(),
    })
}

/// Authenticates, retrying once after a policy refresh so a key issued a moment ago works.
async fn authenticate(gw: &Gateway, inc: &Incoming) -> Result<Caller, Refusal> {
    let key = inc.key.as_deref().ok_or_else(|| {
        let msg = if inc.authorization_not_bearer {
            "the Authorization header is not `Bearer KEY`: send your mamori key as `Authorization: Bearer KEY` or `x-api-key: KEY`"
        } else {
            "no API key: send your mamori key as `Authorization: Bearer KEY` or `x-api-key: KEY`"
        };
        Refusal::new(Code::InvalidApiKey, msg)
    })?;
    let snap = gw.policy.snapshot();
    if !snap.knows_key(key) {
        // Boxed: the database queries behind it would otherwise make every request's
        // future kilobytes larger, copied on every move.
        if let Err(e) = Box::pin(gw.policy.refresh_for_unknown_key()).await {
            tracing::warn!(error = %format!("{e:#}"), "policy refresh on unknown key failed");
        }
        return gw.policy.snapshot().authenticate(key);
    }
    snap.authenticate(key)
}

/// Serves one data-plane request with a body.
pub async fn handle(
    gw: &Arc<Gateway>,
    endpoint: Endpoint,
    inc: Incoming,
    body: Result<Bytes, Refusal>,
) -> Result<Reply, Refused> {
    let mut ex = Exchange::new(endpoint.as_str());
    let caller = match authenticate(gw, &inc).await {
        Ok(c) => c,
        Err(r) => return Err(ex.refuse_unauthenticated(gw, &inc, r)),
    };
    ex.attribute(&caller, &inc);
    let body = match body {
        Ok(b) => b,
        Err(r) => return Err(ex.refuse(gw, r)),
    };
    let req = match ClientRequest::parse(endpoint, &body) {
        Ok(r) => r,
        Err(r) => return Err(ex.refuse(gw, r)),
    };
    ex.rec.model = Some(req.model.clone());
    ex.rec.streamed = req.stream;
    let route = match gw
        .policy
        .snapshot()
        .route(&caller, &req.model, endpoint.api())
    {
        Ok(r) => r,
        Err(r) => return Err(ex.refuse(gw, r)),
    };
    ex.rec.provider_id = Some(route.provider.reg.id.clone());
    ex.rec.provider_version = Some(route.provider.version);
    if !caller.contract.allow_non_text {
        if let Some(kind) = req.non_text_content(endpoint) {
            let msg = format!(
                "the request contains `{kind}` content, which cannot be checked for confidential data; contract `{}` allows text only — send the content as text",
                caller.contract.id
            );
            return Err(ex.refuse(gw, Refusal::new(Code::UnsupportedContent, msg)));
        }
    }
    if let Some(what) = req.reaches_elsewhere() {
        let msg = format!("the request uses {what}, which would let the provider send conversation data to a server the request names; mamori only lets data reach the registered provider — remove it");
        return Err(ex.refuse(gw, Refusal::new(Code::InvalidRequest, msg)));
    }
    let mut req = req;
    let redaction = match redact_request(gw, &caller, &mut req) {
        Ok(r) => r,
        Err(r) => return Err(ex.refuse(gw, r)),
    };
    ex.rec.redactions = redaction.counts_json.clone();
    if !gw.log.is_healthy() {
        let r = Refusal::new(Code::AuditLogUnavailable, "the output log cannot be written, so nothing is forwarded; try again shortly or tell your administrator");
        return Err(ex.refuse(gw, r));
    }
    // Run the exchange on its own task: if the client goes away mid-request, the provider's
    // answer is still read and its record still written.
    let gw2 = Arc::clone(gw);
    let request_id = ex.rec.request_id.clone();
    // Spawned in a statement of its own: as a temporary of the `match`, room for the exchange's
    // whole future would be reserved in this one's, across the await below.
    let task =
        tokio::spawn(async move { forward(&gw2, endpoint, &inc, req, route, redaction, ex).await });
    match task.await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(request_id = %request_id, error = %e, "exchange task failed");
            Err(Refused {
                refusal: Refusal::new(
                    Code::UpstreamError,
                    "the gateway failed while handling this request; try again",
                ),
                request_id,
            })
        }
    }
}

fn upstream_body(
    endpoint: Endpoint,
    mut req: ClientRequest,
    route: &Route,
) -> Result<Vec<u8>, Refusal> {
    // Always the re-serialized object: the client's bytes could carry a repeated key whose
    // other copy was never checked or redacted.
    let add_store = endpoint == Endpoint::Responses && !req.body.contains_key("store");
    req.body
        .insert("model".into(), Value::String(route.model.clone()));
    // Responses keeps conversation state at the provider unless told not to.
    if add_store {
        req.body.insert("store".into(), Value::Bool(false));
    }
    // Sized like the client's body, so that encoding does not grow the buffer step by step.
    let mut out = Vec::with_capacity(req.raw_len + 64);
    json::write_object(&mut out, &req.body).map_err(|e| {
        Refusal::new(
            Code::InvalidRequest,
            format!("cannot encode the request: {e}"),
        )
    })?;
    Ok(out)
}

async fn forward(
    gw: &Arc<Gateway>,
    endpoint: Endpoint,
    inc: &Incoming,
    req: ClientRequest,
    route: Route,
    redaction: Redaction,
    mut ex: Exchange,
) -> Result<Reply, Refused> {
    let stream = req.stream;
    let bytes = match upstream_body(endpoint, req, &route) {
        Ok(b) => b,
        Err(r) => return Err(ex.refuse(gw, r)),
    };
    let p = &route.provider;
    let auth = match &p.auth {
        Ok(a) => a.clone(),
        Err(why) => {
            tracing::error!(provider = %p.reg.id, reason = %why, "provider credential unavailable");
            let r = Refusal::new(Code::UpstreamError, format!("provider `{}` is not configured on this gateway (its credential is missing or cannot be sent); tell your administrator", p.reg.id));
            return Err(ex.refuse(gw, r));
        }
    };
    let bytes = Bytes::from(bytes);
    ex.rec.request_sha256 = Some(sha256_hex(&bytes));
    ex.plain.request = Some(bytes.clone());
    // Durably note the request before it leaves, so even a crash leaves a record of it; and
    // only if its bodies can be sealed, or the answer could not be logged.
    if !sealable(gw, &ex.rec).await || !gw.log.begin(&ex.rec, requests_active() > 1).await {
        let r = Refusal::new(Code::AuditLogUnavailable, "the output log cannot be written, so nothing is forwarded; try again shortly or tell your administrator");
        return Err(ex.refuse(gw, r));
    }
    let Some(url) = p.url(endpoint.upstream_path()) else {
        let r = Refusal::new(
            Code::UpstreamError,
            format!(
                "provider `{}` has a base URL that does not parse; tell your administrator",
                p.reg.id
            ),
        );
        return Err(ex.refuse(gw, r));
    };
    let mut rb = http::Request::post(url).header(http::header::CONTENT_TYPE, "application/json");
    if let Some((name, value)) = auth {
        rb = rb.header(name, value);
    }
    if p.reg.api == WireApi::Anthropic {
        rb = rb.header(
            "anthropic-version",
            inc.anthropic_version.as_deref().unwrap_or("2023-06-01"),
        );
        if let Some(beta) = &inc.anthropic_beta {
            rb = rb.header("anthropic-beta", beta);
        }
    }
    let upstream_started = Instant::now();
    let sent = match rb.body(http_body_util::Full::new(bytes)) {
        Err(e) => Err((upstream::Failure::RequestFailed, e.to_string())),
        Ok(req) => gw.client.send(req, gw.config.upstream_timeout).await,
    };
    let resp = match sent {
        Ok(r) => r,
        Err((failure, detail)) => {
            let kind = failure.as_str();
            tracing::error!(request_id = %ex.rec.request_id, provider = %p.reg.id, error = %detail, "upstream {kind}");
            let r = Refusal::new(
                Code::UpstreamError,
                format!(
                    "provider `{}` could not be reached ({kind}); try again later",
                    p.reg.id
                ),
            );
            return Err(ex.refuse(gw, r));
        }
    };
    let status = resp.status;
    let content_type = resp
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let ok = (200..300).contains(&status);
    if stream && ok && content_type.starts_with("text/event-stream") {
        return Ok(stream_reply(
            gw,
            endpoint,
            resp,
            ex,
            content_type,
            upstream_started,
            redaction,
        ));
    }
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(request_id = %ex.rec.request_id, provider = %p.reg.id, error = %e, "upstream body failed");
            let r = Refusal::new(
                Code::UpstreamError,
                format!("provider `{}` broke off its answer; try again", p.reg.id),
            );
            return Err(ex.refuse(gw, r));
        }
    };
    metrics::histogram!("mamori_upstream_seconds", "provider" => p.reg.id.clone())
        .record(upstream_started.elapsed().as_secs_f64());
    if status == 401 || status == 403 {
        // The provider refused *our* credential. Its body may quote part of that credential and
        // the SDKs would report it as the staff key being wrong: say what it is instead.
        tracing::error!(request_id = %ex.rec.request_id, provider = %p.reg.id, status, "provider refused the gateway's credential");
        let r = Refusal::new(Code::UpstreamError, format!("provider `{}` refused the gateway's credential for it (HTTP {status}); tell your administrator", p.reg.id));
        return Err(ex.refuse(gw, r));
    }
    let usage = assemble::usage_of_body(&body);
    ex.set_output(body.clone(), usage);
    if ok {
        ex.finish("ok", None, status);
    } else {
        tracing::warn!(request_id = %ex.rec.request_id, provider = %p.reg.id, status, "provider answered with an error");
        ex.finish("upstream_error", Some(Code::UpstreamError), status);
    }
    let request_id = ex.rec.request_id.clone();
    // The client gets the body only once its record is committed.
    if !gw.log.commit_answer(ex.rec, ex.plain).await {
        return Err(Refused {
            refusal: Refusal::new(Code::AuditLogUnavailable, "the answer could not be recorded in the output log, so it is withheld; try again shortly or tell your administrator"),
            request_id,
        });
    }
    // The log keeps the answer with its placeholders (never a redacted value); the client gets
    // the originals back.
    let body = match restore::restore_body(&redaction.pseudonyms, &body) {
        Some(restored) => Bytes::from(restored),
        None => body,
    };
    Ok(Reply {
        status,
        content_type,
        request_id,
        redactions: redaction.total,
        body: ReplyBody::Full(body),
    })
}

/// Events that arrived together are written to the client together, up to about this size.
const RELAY_BATCH_BYTES: usize = 32 << 10;

/// Passes the provider's events through as they arrive, assembling the output; the final
/// event is held until the record is committed.
fn stream_reply(
    gw: &Arc<Gateway>,
    endpoint: Endpoint,
    resp: upstream::Response,
    mut ex: Exchange,
    content_type: String,
    upstream_started: Instant,
    redaction: Redaction,
) -> Reply {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let request_id = ex.rec.request_id.clone();
    let gw = Arc::clone(gw);
    let provider = ex.rec.provider_id.clone().unwrap_or_default();
    tokio::spawn(async move {
        let mut framer = sse::Framer::default();
        let mut asm = Assembler::new(endpoint);
        let mut restorer = (!redaction.pseudonyms.is_empty())
            .then(|| restore::AnswerRestorer::new(endpoint, Arc::clone(&redaction.pseudonyms)));
        let mut held: Vec<Bytes> = Vec::new();
        let mut upstream = resp.stream();
        let mut failure: Option<&str> = None;
        // Events that arrived together go to the client in one write (one `writev` instead of
        // one per event when a provider's events come in a burst, or pile up while the gateway
        // is busy); the stream's first event goes alone and at once, so it never waits for the
        // rest of the burst.
        let mut batch = BytesMut::new();
        let mut first = true;
        'relay: loop {
            let mut next = tokio::select! {
                c = upstream.next() => Some(c),
                _ = tx.closed() => { failure = Some("client_disconnected"); break; }
            };
            let mut ended = false;
            // This chunk, then every other one already received, without waiting for more.
            while let Some(chunk) = next.take() {
                let chunk = match chunk {
                    None => {
                        ended = true;
                        break;
                    }
                    Some(Ok(c)) => c,
                    Some(Err(e)) => {
                        tracing::warn!(request_id = %ex.rec.request_id, error = %e, "upstream stream broke");
                        failure = Some("upstream_error");
                        break;
                    }
                };
                for ev in framer.push(&chunk) {
                    asm.on_event(&ev);
                    let out = match restorer.as_mut() {
                        Some(r) => r.on_event(&ev),
                        None => vec![ev.raw],
                    };
                    for bytes in out {
                        if asm.saw_terminal {
                            held.push(bytes);
                        } else if first {
                            first = false;
                            if tx.send(Ok(bytes)).await.is_err() {
                                failure = Some("client_disconnected");
                                break 'relay;
                            }
                            // Let the connection write the head and this event before the
                            // rest of what arrived is restored and assembled.
                            tokio::task::yield_now().await;
                        } else {
                            batch.extend_from_slice(&bytes);
                        }
                    }
                }
                if batch.len() < RELAY_BATCH_BYTES {
                    // The HTTP client hands over one chunk at a time, from its own task: let
                    // it run, so that what it has already received joins this write.
                    tokio::task::yield_now().await;
                    next = upstream.next().now_or_never();
                }
            }
            if !batch.is_empty() && tx.send(Ok(batch.split().freeze())).await.is_err() {
                failure = Some("client_disconnected");
            }
            if ended || failure.is_some() {
                break;
            }
        }
        if let Some(ev) = framer.finish() {
            asm.on_event(&ev);
            match restorer.as_mut() {
                Some(r) => held.extend(r.on_event(&ev)),
                None => held.push(ev.raw),
            }
        }
        if let Some(r) = restorer.as_mut() {
            // Streams the provider never closed: send what their restorers still hold.
            let rest = r.flush_all();
            held.splice(0..0, rest);
        }
        metrics::histogram!("mamori_upstream_seconds", "provider" => provider)
            .record(upstream_started.elapsed().as_secs_f64());
        let complete = asm.saw_terminal && failure.is_none();
        let usage = asm.usage;
        ex.set_output(Bytes::from(asm.finish()), usage);
        match failure {
            None if complete => ex.finish("ok", None, 200),
            None | Some("upstream_error") => {
                ex.finish("upstream_error", Some(Code::UpstreamError), 200)
            }
            Some(other) => ex.finish(other, None, 200),
        }
        let api = endpoint.api();
        if gw.log.commit_answer(ex.rec, ex.plain).await {
            for h in held {
                if tx.send(Ok(h)).await.is_err() {
                    break;
                }
            }
        } else {
            let r = Refusal::new(Code::AuditLogUnavailable, "the answer could not be recorded in the output log, so its end is withheld; do not use this answer");
            let _ = tx.send(Ok(sse_error(api, &r))).await;
        }
    });
    let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed();
    Reply {
        status: 200,
        content_type,
        request_id,
        redactions: redaction.total,
        body: ReplyBody::Stream(body),
    }
}

/// An error as an SSE event, in the API's own shape.
pub fn sse_error(api: WireApi, r: &Refusal) -> Bytes {
    let body = error_body(api, r);
    let text = match api {
        WireApi::Openai => format!("data: {body}\n\n"),
        WireApi::Anthropic => format!("event: error\ndata: {body}\n\n"),
    };
    Bytes::from(text)
}

/// The error body of each wire API.
pub fn error_body(api: WireApi, r: &Refusal) -> Value {
    match api {
        WireApi::Openai => serde_json::json!({
            "error": {"message": r.message, "type": r.code.openai_type(), "param": null, "code": r.code.as_str()}
        }),
        WireApi::Anthropic => serde_json::json!({
            "type": "error",
            "error": {"type": r.code.anthropic_type(), "message": r.message, "code": r.code.as_str()}
        }),
    }
}

/// `GET /v1/models`: the models this key may use right now, as (model, provider id).
pub async fn models(
    gw: &Arc<Gateway>,
    inc: Incoming,
) -> Result<(String, Vec<(String, String)>), Refused> {
    let mut ex = Exchange::new("models");
    let caller = match authenticate(gw, &inc).await {
        Ok(c) => c,
        Err(r) => return Err(ex.refuse_unauthenticated(gw, &inc, r)),
    };
    ex.attribute(&caller, &inc);
    let list = gw.policy.snapshot().models_for(&caller);
    ex.finish("ok", None, 200);
    let request_id = ex.rec.request_id.clone();
    gw.log.submit(ex.rec);
    Ok((request_id, list))
}

/// Whether the record's data key can be had (cached after the first request of a contract).
async fn sealable(gw: &Gateway, rec: &LogRecord) -> bool {
    let Some(contract) = &rec.contract_id else {
        return true;
    };
    match gw.log.data_keys.get(contract, true).await {
        Ok(Some(_)) => true,
        Ok(None) => {
            // Destroyed: the contract was closed after this gateway's last policy refresh.
            tracing::warn!(request_id = %rec.request_id, contract = %contract, "the contract's data key was destroyed; not forwarding");
            false
        }
        Err(e) => {
            tracing::error!(request_id = %rec.request_id, contract = %contract, error = %format!("{e:#}"), "cannot get the contract's data key; not forwarding");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_distinct_time_ordered_uuids() {
        let a = super::new_request_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = super::new_request_id();
        let parse = |s: &str| uuid::Uuid::parse_str(s.strip_prefix("req_").unwrap()).unwrap();
        assert_eq!(parse(&a).get_version_num(), 7);
        assert_ne!(a, b);
        assert!(a < b, "a later id sorts after: {a} {b}");
    }
}
