//! `mamori serve` and `mamori mock-provider`.
use crate::config::Config;
use crate::gateway::Gateway;
use anyhow::Context;
use std::sync::Arc;

pub async fn serve(config: Config) -> anyhow::Result<()> {
    crate::telemetry::init_tracing(&config.log_filter);
    crate::telemetry::init_metrics();
    let listen = config.listen;
    let db = crate::config::redact_url(&config.database_url);
    let gw = Gateway::start(config).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}; is another program using it? set `listen` or MAMORI_LISTEN"))?;
    let addr = listener.local_addr()?;
    tracing::info!(address = %addr, database = %db, providers = gw.policy.snapshot().providers.len(), "mamori listening");
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        if std::env::var_os(var).is_some() {
            tracing::warn!(variable = var, "set in the environment but not used: mamori connects to each provider's registered base_url directly, never through a proxy");
        }
    }
    eprintln!("mamori listening on http://{addr} (database {db})");
    tokio::spawn(release_free_memory());
    tokio::spawn(crate::telemetry::metrics_upkeep());
    crate::http::serve(listener, crate::http::router(Arc::clone(&gw)), shutdown()).await?;
    // Answers already delivered have their records in the journal: store them before leaving.
    if !gw.log.flush().await {
        tracing::warn!("some log records could not be stored before stopping; the next start stores them from the journal");
    }
    Ok(())
}

/// Hands memory freed after a burst of requests back to the system once the gateway has been
/// idle for a second: glibc keeps it in each worker thread's arena otherwise, and an idle
/// gateway would hold on to its peak. Never while requests keep coming (they would only fault
/// the pages back in). (mimalloc was tried instead of glibc: a little less CPU per request, but
/// it kept 30 MiB resident after the benchmark's load on two cores, against 24–25 MiB here.)
async fn release_free_memory() {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    // Also once at start: building the rules' automata leaves freed memory behind.
    let (mut seen, mut trimmed) = (0, u64::MAX);
    loop {
        tick.tick().await;
        let now = crate::proxy::requests_seen();
        if now == seen && now != trimmed {
            trimmed = now;
            crate::memory::release_free();
        }
        seen = now;
    }
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

pub async fn mock_provider(listen: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    eprintln!(
        "mock provider (OpenAI and Anthropic wire formats) on http://{}/v1",
        listener.local_addr()?
    );
    crate::mock::serve(listener, crate::mock::MockProvider::new(false)).await?;
    Ok(())
}
