//! The HTTP client that reaches providers: hyper's pooled client over rustls (Mozilla's roots,
//! HTTP/1.1 and HTTP/2 by ALPN). A general-purpose client's layers (redirects, proxies from the
//! environment, URL re-parsing on every request) cost about a third of a bare proxy's CPU per
//! request on the benchmark host, and mamori wants none of them: it reaches only the registered
//! base URL, never follows a redirect elsewhere, and no environment variable can send its traffic
//! through another host.
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;
use tokio::time::Instant;

pub type Request = http::Request<Full<Bytes>>;

#[derive(Clone, Debug)]
pub struct Upstream {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// Why a request to a provider failed, as said to the client and in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    TimedOut,
    ConnectionFailed,
    RequestFailed,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::TimedOut => "timed out",
            Failure::ConnectionFailed => "connection failed",
            Failure::RequestFailed => "request failed",
        }
    }
}

/// A provider's answer: status and headers now, the body as it comes, all within one deadline
/// counted from when the request was sent.
pub struct Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    body: hyper::body::Incoming,
    deadline: Instant,
}

impl Upstream {
    pub fn new() -> anyhow::Result<Self> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        // A connection that dies silently (a vanished peer, a dropped middlebox) fails within
        // about a minute instead of holding its request until the whole time limit.
        http.set_keepalive(Some(Duration::from_secs(15)));
        http.set_keepalive_interval(Some(Duration::from_secs(15)));
        http.set_keepalive_retries(Some(3));
        #[cfg(target_os = "linux")]
        http.set_tcp_user_timeout(Some(Duration::from_secs(30)));
        // The TLS layer decides the scheme; plain HTTP stays allowed for local providers.
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        Ok(Self { client })
    }

    /// Sends `req` and waits for the answer's head, at most `timeout`; the body must then
    /// arrive before the same deadline.
    pub async fn send(
        &self,
        req: Request,
        timeout: Duration,
    ) -> Result<Response, (Failure, String)> {
        let deadline = Instant::now() + timeout;
        match tokio::time::timeout_at(deadline, self.client.request(req)).await {
            Err(_) => Err((Failure::TimedOut, "no answer within the time limit".into())),
            Ok(Err(e)) => {
                let failure = if e.is_connect() {
                    Failure::ConnectionFailed
                } else {
                    Failure::RequestFailed
                };
                Err((failure, error_chain(&e)))
            }
            Ok(Ok(resp)) => {
                let (head, body) = resp.into_parts();
                Ok(Response {
                    status: head.status.as_u16(),
                    headers: head.headers,
                    body,
                    deadline,
                })
            }
        }
    }
}

impl Response {
    /// The whole body.
    pub async fn bytes(self) -> Result<Bytes, String> {
        match tokio::time::timeout_at(self.deadline, self.body.collect()).await {
            Err(_) => Err("the answer did not end within the time limit".into()),
            Ok(Err(e)) => Err(error_chain(&e)),
            Ok(Ok(b)) => Ok(b.to_bytes()),
        }
    }

    /// The body chunk by chunk as it arrives; an error ends it (the time limit included).
    pub fn stream(self) -> BoxStream<'static, Result<Bytes, String>> {
        let deadline = self.deadline;
        let data = self.body.into_data_stream();
        futures_util::stream::unfold((data, false), move |(mut data, ended)| async move {
            if ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, data.next()).await {
                Err(_) => Some((
                    Err("the answer did not end within the time limit".into()),
                    (data, true),
                )),
                Ok(None) => None,
                Ok(Some(Err(e))) => Some((Err(error_chain(&e)), (data, true))),
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), (data, false))),
            }
        })
        .boxed()
    }
}

/// An error and its causes, one line (hyper's own message alone says little: "client error").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}
