//! The output log writer: the only place that inserts log records. Records are group-committed
//! (one transaction for whatever is queued) so durability costs little under load. If a write
//! fails, the writer is marked unavailable and the gateway refuses new requests
//! (`audit_log_unavailable`) until a probe shows the database is back.
use crate::store::{LogRecord, Store};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

const MAX_BATCH: usize = 512;
const QUEUE: usize = 8192;

struct Job {
    record: LogRecord,
    done: Option<oneshot::Sender<bool>>,
}

#[derive(Clone)]
pub struct LogWriter {
    tx: mpsc::Sender<Job>,
    healthy: Arc<AtomicBool>,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("healthy", &self.is_healthy())
            .finish()
    }
}

impl LogWriter {
    pub fn spawn(store: Store) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let healthy = Arc::new(AtomicBool::new(true));
        tokio::spawn(run(store.clone(), rx, Arc::clone(&healthy)));
        tokio::spawn(probe(store, Arc::clone(&healthy)));
        Self { tx, healthy }
    }

    /// Whether records are being written; the gateway forwards nothing while this is false.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Writes a record and waits until it is committed. `false` if it could not be.
    pub async fn commit(&self, record: LogRecord) -> bool {
        let (done, wait) = oneshot::channel();
        if self
            .tx
            .send(Job {
                record,
                done: Some(done),
            })
            .await
            .is_err()
        {
            return false;
        }
        wait.await.unwrap_or(false)
    }

    /// Queues a record without waiting (refusals, where nothing was delivered).
    pub fn submit(&self, record: LogRecord) {
        if let Err(e) = self.tx.try_send(Job { record, done: None }) {
            let id = match &e {
                mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => {
                    j.record.request_id.clone()
                }
            };
            tracing::error!(request_id = %id, "log queue full or closed; record dropped");
            self.healthy.store(false, Ordering::Release);
        }
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Job>, healthy: Arc<AtomicBool>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        metrics::gauge!("mamori_log_queue_depth").set(rx.len() as f64);
        let records: Vec<LogRecord> = batch.iter().map(|j| j.record.clone()).collect();
        let ok = match store.insert_log_records(&records).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), records = records.len(), "log write failed; refusing requests until the database is back");
                healthy.store(false, Ordering::Release);
                false
            }
        };
        metrics::counter!("mamori_log_records_total", "result" => if ok { "written" } else { "failed" })
            .increment(records.len() as u64);
        for job in batch.drain(..) {
            if let Some(done) = job.done {
                let _ = done.send(ok);
            }
        }
    }
}

/// Restores health once the database answers again.
async fn probe(store: Store, healthy: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        if !healthy.load(Ordering::Acquire) && store.log_probe().await.is_ok() {
            tracing::info!("log database reachable again; accepting requests");
            healthy.store(true, Ordering::Release);
        }
    }
}
