//! A bare pass-through proxy on the gateway's own HTTP stack (axum server, mamori's upstream
//! client, tokio), with no policy, no redaction and no log: the floor any gateway built on this
//! stack stands on. `bench/run.sh` measures it beside mamori so that the cost of mamori's own
//! work can be told apart from the cost of being a proxy at all.
//!
//!   cargo run --release --example passthrough -- LISTEN UPSTREAM_BASE
//!   e.g. passthrough 127.0.0.1:18003 http://127.0.0.1:18001
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use mamori::proxy::upstream::Upstream;
use std::sync::Arc;
use std::time::Duration;

struct Target {
    client: Upstream,
    uri: axum::http::Uri,
}

async fn forward(State(up): State<Arc<Target>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut rb =
        axum::http::Request::post(up.uri.clone()).header("content-type", "application/json");
    if let Some(auth) = headers.get("authorization") {
        rb = rb.header("authorization", auth);
    }
    let Ok(req) = rb.body(http_body_util::Full::new(body)) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match up.client.send(req, Duration::from_secs(60)).await {
        Ok(resp) => {
            let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::BAD_GATEWAY);
            match resp.bytes().await {
                Ok(b) => (status, [("content-type", "application/json")], b).into_response(),
                Err(_) => StatusCode::BAD_GATEWAY.into_response(),
            }
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(base)) = (args.next(), args.next()) else {
        anyhow::bail!(
            "usage: passthrough LISTEN UPSTREAM_BASE (e.g. 127.0.0.1:18003 http://127.0.0.1:18001)"
        );
    };
    let uri = format!("{}/v1/chat/completions", base.trim_end_matches('/')).parse()?;
    let app = Router::new()
        .route("/v1/chat/completions", post(forward))
        .with_state(Arc::new(Target {
            client: Upstream::new()?,
            uri,
        }));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("pass-through proxy on http://{listen} to {base}");
    mamori::http::serve(listener, app, std::future::pending()).await?;
    Ok(())
}
