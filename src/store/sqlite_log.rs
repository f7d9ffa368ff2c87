//! The SQLite side of the log's group commit, on a thread of its own with its own connection.
//! Through sqlx every statement is a hand-off to sqlx's worker thread and back; a commit of
//! chained records is several statements, so the hand-offs alone would dominate a request's
//! latency. Here the whole transaction runs in one place, and the async
//! side waits for one reply per batch. WAL checkpoints run on another thread so that no commit
//! waits for one.
use super::log::{Link, LogRecord, COLUMNS};
use rusqlite::{params, Connection, TransactionBehavior};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use tokio::sync::oneshot;

type Reply = oneshot::Sender<(Vec<LogRecord>, Result<(i64, String), String>)>;

struct Batch {
    records: Vec<LogRecord>,
    link: Link,
    reply: Reply,
}

#[derive(Debug, Clone)]
pub(crate) struct SqliteLog {
    /// The only sender: when the last `Store` clone goes, both threads end.
    tx: Arc<mpsc::Sender<Batch>>,
}

/// `full_sync`: fsync every commit (survives power loss), instead of only a process kill.
fn open(path: &str, full_sync: bool) -> rusqlite::Result<Connection> {
    let c = Connection::open(path)?;
    c.busy_timeout(Duration::from_secs(5))?;
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA secure_delete=ON; PRAGMA wal_autocheckpoint=0; PRAGMA cache_size=-2048;",
    )?;
    c.execute_batch(if full_sync {
        "PRAGMA synchronous=FULL;"
    } else {
        "PRAGMA synchronous=NORMAL;"
    })?;
    Ok(c)
}

impl SqliteLog {
    /// Starts the writer and checkpoint threads for the database file at `path`.
    pub(crate) fn start(path: &str, full_sync: bool) -> anyhow::Result<Self> {
        let conn = open(path, full_sync)?;
        let (tx, rx) = mpsc::channel::<Batch>();
        std::thread::Builder::new()
            .name("mamori-log-sqlite".into())
            .spawn(move || {
                let mut conn = conn;
                while let Ok(b) = rx.recv() {
                    let mut records = b.records;
                    let r = write(&mut conn, &mut records, b.link).map_err(|e| e.to_string());
                    let _ = b.reply.send((records, r));
                }
            })?;
        let tx = Arc::new(tx);
        let alive = Arc::downgrade(&tx);
        let cp = open(path, full_sync)?;
        std::thread::Builder::new()
            .name("mamori-log-checkpoint".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(500));
                if alive.upgrade().is_none() {
                    return;
                }
                if let Err(e) = cp.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::debug!(error = %e, "WAL checkpoint skipped");
                }
            })?;
        Ok(Self { tx })
    }

    pub(crate) async fn append(
        &self,
        records: Vec<LogRecord>,
        link: Link,
    ) -> (Vec<LogRecord>, anyhow::Result<(i64, String)>) {
        let stopped = || anyhow::anyhow!("the SQLite log writer has stopped");
        let (reply, wait) = oneshot::channel();
        if let Err(mpsc::SendError(b)) = self.tx.send(Batch {
            records,
            link,
            reply,
        }) {
            return (b.records, Err(stopped()));
        }
        match wait.await {
            Ok((records, r)) => (records, r.map_err(|e| anyhow::anyhow!("{e}"))),
            // The thread died with the batch: nothing to hand back.
            Err(_) => (Vec::new(), Err(stopped())),
        }
    }
}
fn write(
    conn: &mut Connection,
    records: &mut [LogRecord],
    link: Link,
) -> rusqlite::Result<(i64, String)> {
    let now = super::now_text();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let (mut seq, mut prev): (i64, String) = tx.query_row(
            "UPDATE chain_head SET updated_at = ?1 WHERE id = 1 RETURNING seq, record_hash",
            [&now],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        {
            let cols = COLUMNS.join(", ");
            let marks: Vec<String> = (1..=COLUMNS.len()).map(|i| format!("?{i}")).collect();
            let mut ins = tx.prepare_cached(&format!(
                "INSERT INTO log_records ({cols}) VALUES ({})",
                marks.join(", ")
            ))?;
            for r in records.iter_mut() {
                seq += 1;
                r.seq = seq;
                r.prev_hash = prev;
                r.record_hash = link(seq, &r.prev_hash, r);
                prev = r.record_hash.clone();
                ins.execute(params![
                    r.seq,
                    r.request_id,
                    r.at,
                    r.staff_id,
                    r.key_id,
                    r.contract_id,
                    r.deliverable,
                    r.purpose,
                    r.provider_id,
                    r.provider_version,
                    r.model,
                    r.endpoint,
                    i64::from(r.streamed),
                    r.outcome,
                    r.code,
                    r.http_status,
                    r.latency_us,
                    r.input_tokens,
                    r.output_tokens,
                    r.redactions,
                    r.request_body,
                    r.output_body,
                    r.request_sha256,
                    r.output_sha256,
                    r.bodies_deleted,
                    r.prev_hash,
                    r.record_hash,
                ])?;
            }
        }
        tx.execute(
            "UPDATE chain_head SET seq = ?1, record_hash = ?2 WHERE id = 1",
            params![seq, prev],
        )?;
        tx.commit()?;
        Ok((seq, prev))
    }
}
