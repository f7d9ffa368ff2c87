//! A bare pass-through proxy on the gateway's own HTTP stack (axum server, reqwest client,
//! tokio), with no policy, no redaction and no log: the floor any gateway built on this stack
//! stands on. `bench/run.sh` measures it beside mamori (PASSTHROUGH=1) so that the cost of
//! mamori's own work can be told apart from the cost of being a proxy at all.
//!
//!   cargo run --release --example passthrough -- LISTEN UPSTREAM_BASE
//!   e.g. passthrough 127.0.0.1:18003 http://127.0.0.1:18001
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use std::sync::Arc;

struct Upstream {
    client: reqwest::Client,
    url: reqwest::Url,
}

async fn forward(State(up): State<Arc<Upstream>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut rb = up
        .client
        .post(up.url.clone())
        .header("content-type", "application/json")
        .body(body);
    if let Some(auth) = headers.get("authorization") {
        rb = rb.header("authorization", auth);
    }
    match rb.send().await {
        Ok(resp) => {
            let status =
                StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
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
    let url = reqwest::Url::parse(&format!(
        "{}/v1/chat/completions",
        base.trim_end_matches('/')
    ))?;
    let client = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let app = Router::new()
        .route("/v1/chat/completions", post(forward))
        .with_state(Arc::new(Upstream { client, url }));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("pass-through proxy on http://{listen} to {base}");
    mamori::http::serve(listener, app, std::future::pending()).await?;
    Ok(())
}
