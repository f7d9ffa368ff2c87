//! Output log records. Only `audit::LogWriter` inserts them (see ARCHITECTURE.md).
use super::{opt_str, Store};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

/// One request, refused or served, as it is kept for disclosure and audit.
/// The proxy fills it with plaintext bodies; `audit::LogWriter` seals the bodies and links the
/// record into the chain (`seq`, `prev_hash`, `record_hash`) before it is stored.
#[derive(Clone, Serialize, Deserialize, Default)]
pub struct LogRecord {
    #[serde(default)]
    pub seq: i64,
    pub request_id: String,
    pub at: String,
    pub staff_id: Option<String>,
    pub key_id: Option<String>,
    pub contract_id: Option<String>,
    pub deliverable: Option<String>,
    pub purpose: Option<String>,
    pub provider_id: Option<String>,
    pub provider_version: Option<i64>,
    pub model: Option<String>,
    pub endpoint: String,
    pub streamed: bool,
    /// `ok`, `refused` or `upstream_error`.
    pub outcome: String,
    pub code: Option<String>,
    pub http_status: i64,
    pub latency_us: i64,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    /// JSON object: label → count. Never a redacted value.
    pub redactions: String,
    /// The request exactly as sent upstream (sealed once stored).
    #[serde(skip)]
    pub request_body: Option<Vec<u8>>,
    /// The output as the client received it, streams assembled (sealed once stored).
    #[serde(skip)]
    pub output_body: Option<Vec<u8>>,
    /// SHA-256 of the plaintext bodies; they stay when bodies are deleted or shredded.
    pub request_sha256: Option<String>,
    pub output_sha256: Option<String>,
    /// Why the bodies are gone, if they are: `retention` or `shredded`.
    pub bodies_deleted: Option<String>,
    #[serde(default)]
    pub prev_hash: String,
    #[serde(default)]
    pub record_hash: String,
    /// Set once the writer has sealed the bodies (never stored).
    #[serde(skip)]
    pub sealed: bool,
}

/// A signed checkpoint of the chain head (see `audit::checkpoint`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: i64,
    pub record_hash: String,
    pub at: String,
    /// Which signing key (hex of its public key's first 8 bytes).
    pub key_id: String,
    pub signature: String,
}

/// A contract's data key as stored: wrapped by a master key, or destroyed.
#[derive(Debug, Clone)]
pub struct DataKeyRow {
    pub contract_id: String,
    pub master_key_id: Option<String>,
    pub wrapped: Option<Vec<u8>>,
    pub destroyed_at: Option<String>,
}

// Bodies are left out of `Debug`: they are confidential even after redaction.
impl std::fmt::Debug for LogRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogRecord")
            .field("seq", &self.seq)
            .field("request_id", &self.request_id)
            .field("endpoint", &self.endpoint)
            .field("outcome", &self.outcome)
            .field("code", &self.code)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LogRecordSummary {
    pub seq: i64,
    pub request_id: String,
    pub at: String,
    pub staff_id: Option<String>,
    pub contract_id: Option<String>,
    pub deliverable: Option<String>,
    pub provider_id: Option<String>,
    pub model: Option<String>,
    pub endpoint: String,
    pub outcome: String,
    pub code: Option<String>,
    pub latency_us: i64,
    pub output_sha256: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct LogFilter {
    pub contract: Option<String>,
    pub deliverable: Option<String>,
    pub since: Option<String>,
    pub limit: i64,
}

pub(crate) const COLUMNS: &[&str] = &[
    "seq",
    "request_id",
    "at",
    "staff_id",
    "key_id",
    "contract_id",
    "deliverable",
    "purpose",
    "provider_id",
    "provider_version",
    "model",
    "endpoint",
    "streamed",
    "outcome",
    "code",
    "http_status",
    "latency_us",
    "input_tokens",
    "output_tokens",
    "redactions",
    "request_body",
    "output_body",
    "request_sha256",
    "output_sha256",
    "bodies_deleted",
    "prev_hash",
    "record_hash",
];

/// Computes a record's chain hash from its position and the previous hash (`audit::chain`).
pub type Link = fn(i64, &str, &LogRecord) -> String;

/// Rows per INSERT statement: few round trips, well under both backends' parameter limits.
const ROWS_PER_INSERT: usize = 32;

/// Numbered `$N` placeholders for PostgreSQL; plain `?` for SQLite, where looking up each
/// parameter's name is linear in the statement's parameter count (quadratic per statement).
fn placeholders(dialect: super::Dialect, first: usize, count: usize) -> String {
    let ps: Vec<String> = (first..first + count)
        .map(|i| match dialect {
            super::Dialect::Sqlite => "?".to_string(),
            super::Dialect::Postgres => format!("${i}"),
        })
        .collect();
    ps.join(", ")
}

/// Records whose bodies one retention step deletes: the update of one batch holds the write lock
/// far below the log writer's wait for it.
const EXPIRE_BATCH: i64 = 2000;

fn insert_sql(dialect: super::Dialect, rows: usize) -> String {
    let n = COLUMNS.len();
    let values: Vec<String> = (0..rows)
        .map(|r| format!("({})", placeholders(dialect, r * n + 1, n)))
        .collect();
    format!(
        "INSERT INTO log_records ({}) VALUES {}",
        COLUMNS.join(", "),
        values.join(", ")
    )
}

fn record_from_row(r: &AnyRow) -> anyhow::Result<LogRecord> {
    Ok(LogRecord {
        seq: r.try_get("seq")?,
        request_id: r.try_get("request_id")?,
        at: r.try_get("at")?,
        staff_id: opt_str(r, "staff_id")?,
        key_id: opt_str(r, "key_id")?,
        contract_id: opt_str(r, "contract_id")?,
        deliverable: opt_str(r, "deliverable")?,
        purpose: opt_str(r, "purpose")?,
        provider_id: opt_str(r, "provider_id")?,
        provider_version: r.try_get("provider_version")?,
        model: opt_str(r, "model")?,
        endpoint: r.try_get("endpoint")?,
        streamed: r.try_get::<i64, _>("streamed")? != 0,
        outcome: r.try_get("outcome")?,
        code: opt_str(r, "code")?,
        http_status: r.try_get("http_status")?,
        latency_us: r.try_get("latency_us")?,
        input_tokens: r.try_get("input_tokens")?,
        output_tokens: r.try_get("output_tokens")?,
        redactions: r.try_get("redactions")?,
        request_body: r.try_get("request_body")?,
        output_body: r.try_get("output_body")?,
        request_sha256: opt_str(r, "request_sha256")?,
        output_sha256: opt_str(r, "output_sha256")?,
        bodies_deleted: opt_str(r, "bodies_deleted")?,
        prev_hash: r.try_get("prev_hash")?,
        record_hash: r.try_get("record_hash")?,
        sealed: true,
    })
}

fn summary(r: &AnyRow) -> anyhow::Result<LogRecordSummary> {
    Ok(LogRecordSummary {
        seq: r.try_get("seq")?,
        request_id: r.try_get("request_id")?,
        at: r.try_get("at")?,
        staff_id: opt_str(r, "staff_id")?,
        contract_id: opt_str(r, "contract_id")?,
        deliverable: opt_str(r, "deliverable")?,
        provider_id: opt_str(r, "provider_id")?,
        model: opt_str(r, "model")?,
        endpoint: r.try_get("endpoint")?,
        outcome: r.try_get("outcome")?,
        code: opt_str(r, "code")?,
        latency_us: r.try_get("latency_us")?,
        output_sha256: opt_str(r, "output_sha256")?,
    })
}

impl Store {
    /// Appends records to the chain in one transaction: locks the chain head (so several
    /// writers, even in several processes, append in one total order), gives each record its
    /// `seq` and `prev_hash`, asks `link` for its hash, inserts them and moves the head. All are
    /// committed or none. Returns the new head.
    pub async fn append_chained(
        &self,
        records: &mut [LogRecord],
        link: Link,
    ) -> anyhow::Result<(i64, String)> {
        let owned = records.iter_mut().map(std::mem::take).collect();
        let (back, head) = self.append_owned(owned, link).await;
        for (slot, r) in records.iter_mut().zip(back) {
            *slot = r;
        }
        head
    }

    /// `append_chained` for the log writer: takes the records and hands them back (linked if
    /// the append succeeded), so a batch is never copied on its way to the database.
    pub async fn append_owned(
        &self,
        records: Vec<LogRecord>,
        link: Link,
    ) -> (Vec<LogRecord>, anyhow::Result<(i64, String)>) {
        self.append_owned_with(records, link, true).await
    }

    /// [`Store::append_owned`] that, on SQLite, fails at once instead of waiting for another
    /// connection's write lock (PostgreSQL waits as usual).
    pub async fn append_owned_now(
        &self,
        records: Vec<LogRecord>,
        link: Link,
    ) -> (Vec<LogRecord>, anyhow::Result<(i64, String)>) {
        self.append_owned_with(records, link, false).await
    }

    async fn append_owned_with(
        &self,
        mut records: Vec<LogRecord>,
        link: Link,
        wait: bool,
    ) -> (Vec<LogRecord>, anyhow::Result<(i64, String)>) {
        if records.is_empty() {
            return (records, Err(anyhow::anyhow!("no records to append")));
        }
        if let Some(w) = &self.sqlite_log {
            return w.append(records, link, wait).await;
        }
        let head = async {
            let mut tx = self.write_tx().await?;
            let head = self.append_in(&mut tx, &mut records, link).await?;
            tx.commit().await?;
            Ok(head)
        }
        .await;
        (records, head)
    }

    async fn append_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        records: &mut [LogRecord],
        link: Link,
    ) -> anyhow::Result<(i64, String)> {
        let tx = &mut **tx;
        let now = super::now_text();
        // Writing first takes the lock: a row lock on PostgreSQL, the write lock on SQLite.
        let head = sqlx::query(
            "UPDATE chain_head SET updated_at = $1 WHERE id = 1 RETURNING seq, record_hash",
        )
        .bind(&now)
        .fetch_one(&mut *tx)
        .await?;
        let (mut seq, mut prev): (i64, String) = (head.try_get(0)?, head.try_get(1)?);
        for r in records.iter_mut() {
            seq += 1;
            r.seq = seq;
            r.prev_hash = prev;
            r.record_hash = link(seq, &r.prev_hash, r);
            prev = r.record_hash.clone();
        }
        for chunk in records.chunks(ROWS_PER_INSERT) {
            let sql = insert_sql(self.dialect(), chunk.len());
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = q
                    .bind(r.seq)
                    .bind(&r.request_id)
                    .bind(&r.at)
                    .bind(&r.staff_id)
                    .bind(&r.key_id)
                    .bind(&r.contract_id)
                    .bind(&r.deliverable)
                    .bind(&r.purpose)
                    .bind(&r.provider_id)
                    .bind(r.provider_version)
                    .bind(&r.model)
                    .bind(&r.endpoint)
                    .bind(i64::from(r.streamed))
                    .bind(&r.outcome)
                    .bind(&r.code)
                    .bind(r.http_status)
                    .bind(r.latency_us)
                    .bind(r.input_tokens)
                    .bind(r.output_tokens)
                    .bind(&r.redactions)
                    .bind(r.request_body.as_deref())
                    .bind(r.output_body.as_deref())
                    .bind(&r.request_sha256)
                    .bind(&r.output_sha256)
                    .bind(&r.bodies_deleted)
                    .bind(&r.prev_hash)
                    .bind(&r.record_hash);
            }
            q.execute(&mut *tx).await?;
        }
        sqlx::query("UPDATE chain_head SET seq = $1, record_hash = $2 WHERE id = 1")
            .bind(seq)
            .bind(&prev)
            .execute(&mut *tx)
            .await?;
        Ok((seq, prev))
    }

    /// What a disclosure needs of a contract's served generative records, in chain order: only
    /// the columns it prints, so that 100,000 records read in well under a second.
    pub async fn disclosure_rows(
        &self,
        contract: &str,
        endpoints: &[&str],
    ) -> anyhow::Result<Vec<LogRecord>> {
        let sql = format!(
            "SELECT request_id, at, staff_id, deliverable, purpose, provider_id, provider_version, model, endpoint, output_sha256 \
             FROM log_records WHERE contract_id = {} AND outcome = 'ok' AND endpoint IN ({}) ORDER BY seq",
            placeholders(self.dialect(), 1, 1),
            placeholders(self.dialect(), 2, endpoints.len())
        );
        let mut q = sqlx::query(&sql).bind(contract);
        for e in endpoints {
            q = q.bind(*e);
        }
        let rows = q.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(LogRecord {
                    request_id: r.try_get(0)?,
                    at: r.try_get(1)?,
                    staff_id: r.try_get(2)?,
                    deliverable: r.try_get(3)?,
                    purpose: r.try_get(4)?,
                    provider_id: r.try_get(5)?,
                    provider_version: r.try_get(6)?,
                    model: r.try_get(7)?,
                    endpoint: r.try_get(8)?,
                    output_sha256: r.try_get(9)?,
                    contract_id: Some(contract.to_string()),
                    outcome: "ok".into(),
                    ..Default::default()
                })
            })
            .collect()
    }

    pub async fn chain_head(&self) -> anyhow::Result<(i64, String)> {
        let r = sqlx::query("SELECT seq, record_hash FROM chain_head WHERE id = 1")
            .fetch_one(self.pool())
            .await?;
        Ok((r.try_get(0)?, r.try_get(1)?))
    }

    /// Records in chain order after `seq`, bodies included.
    pub async fn log_page(&self, after_seq: i64, limit: i64) -> anyhow::Result<Vec<LogRecord>> {
        let rows = sqlx::query("SELECT * FROM log_records WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after_seq)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        self.records_from_rows(&rows).await
    }

    /// Rows as records, with bodies kept in files (SQLite) read back in. A body file that is
    /// gone because its contract was closed (a record committed with a still-cached key while
    /// the contract closed) reads as shredded, which it is; any other loss is an error.
    async fn records_from_rows(&self, rows: &[AnyRow]) -> anyhow::Result<Vec<LogRecord>> {
        let mut open = std::collections::HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut r = record_from_row(row)?;
            let body_ref: Option<String> = row.try_get("body_ref")?;
            if let (Some(b), Some(w)) = (body_ref, &self.sqlite_log) {
                if let Err(e) = w.bodies.load(&mut r, &b, &mut open) {
                    let shredded = match &r.contract_id {
                        Some(c) => self
                            .data_key(c)
                            .await?
                            .is_some_and(|k| k.destroyed_at.is_some()),
                        None => false,
                    };
                    if !shredded {
                        return Err(e);
                    }
                    r.request_body = None;
                    r.output_body = None;
                    r.bodies_deleted = Some("shredded".into());
                }
            }
            out.push(r);
        }
        Ok(out)
    }

    pub async fn insert_checkpoint(&self, c: &Checkpoint) -> anyhow::Result<()> {
        sqlx::query("INSERT INTO checkpoints (seq, record_hash, at, key_id, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING")
            .bind(c.seq)
            .bind(&c.record_hash)
            .bind(&c.at)
            .bind(&c.key_id)
            .bind(&c.signature)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn checkpoints(&self) -> anyhow::Result<Vec<Checkpoint>> {
        let rows = sqlx::query(
            "SELECT seq, record_hash, at, key_id, signature FROM checkpoints ORDER BY seq",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Checkpoint {
                    seq: r.try_get(0)?,
                    record_hash: r.try_get(1)?,
                    at: r.try_get(2)?,
                    key_id: r.try_get(3)?,
                    signature: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Pending rows written by versions before the request journal (`pending_requests`): those
    /// of instances not seen since `stale_before`, and any noted before `abandoned_before`.
    /// Kept so that an upgrade loses none of them; new versions write no such rows.
    pub async fn legacy_pending(
        &self,
        stale_before: &str,
        abandoned_before: &str,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT p.request_id, p.record FROM pending_requests p LEFT JOIN instances i ON i.id = p.instance_id \
             WHERE (i.id IS NULL AND p.at < $1) OR i.last_seen < $1 OR p.at < $2 ORDER BY p.at",
        )
        .bind(stale_before)
        .bind(abandoned_before)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    pub async fn delete_legacy_pending(&self, request_id: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM pending_requests WHERE request_id = $1")
            .bind(request_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Which of these request ids have no record.
    pub async fn missing_records(&self, ids: &[String]) -> anyhow::Result<Vec<String>> {
        let mut found = std::collections::HashSet::new();
        for chunk in ids.chunks(ROWS_PER_INSERT * 16) {
            let sql = format!(
                "SELECT request_id FROM log_records WHERE request_id IN ({})",
                placeholders(self.dialect(), 1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(self.pool()).await? {
                found.insert(row.try_get::<String, _>(0)?);
            }
        }
        Ok(ids
            .iter()
            .filter(|id| !found.contains(*id))
            .cloned()
            .collect())
    }

    pub async fn data_key(&self, contract: &str) -> anyhow::Result<Option<DataKeyRow>> {
        let r = sqlx::query("SELECT contract_id, master_key_id, wrapped, destroyed_at FROM data_keys WHERE contract_id = $1")
            .bind(contract)
            .fetch_optional(self.pool())
            .await?;
        r.as_ref().map(data_key_row).transpose()
    }

    pub async fn data_keys(&self) -> anyhow::Result<Vec<DataKeyRow>> {
        let rows = sqlx::query("SELECT contract_id, master_key_id, wrapped, destroyed_at FROM data_keys ORDER BY contract_id")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(data_key_row).collect()
    }

    /// Stores a new wrapped data key unless one exists (another instance may have won).
    pub async fn insert_data_key(
        &self,
        contract: &str,
        master_key_id: &str,
        wrapped: &[u8],
    ) -> anyhow::Result<()> {
        sqlx::query("INSERT INTO data_keys (contract_id, master_key_id, wrapped, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (contract_id) DO NOTHING")
            .bind(contract)
            .bind(master_key_id)
            .bind(wrapped)
            .bind(super::now_text())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Replaces a wrapped data key (master-key rotation); only if it is still wrapped by `old_id`.
    pub async fn rewrap_data_key(
        &self,
        contract: &str,
        old_id: &str,
        new_id: &str,
        wrapped: &[u8],
    ) -> anyhow::Result<bool> {
        let n = sqlx::query("UPDATE data_keys SET master_key_id = $1, wrapped = $2 WHERE contract_id = $3 AND master_key_id = $4 AND destroyed_at IS NULL")
            .bind(new_id)
            .bind(wrapped)
            .bind(contract)
            .bind(old_id)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Deletes the bodies of a contract's records older than `before`; metadata and hashes stay.
    /// Body files (SQLite) are overwritten where those records' bodies were, and a day's file
    /// goes once no record points into it.
    pub async fn expire_bodies(&self, contract: &str, before: &str) -> anyhow::Result<u64> {
        let _one_run = match &self.sqlite_log {
            Some(w) => Some(w.expiring.lock().await),
            None => None,
        };
        // In batches of rows, in the order they were stored, so that the write lock is held only
        // for one batch's update at a time. The rows and their bodies' places are read first,
        // then exactly that range of rows is marked: a row stored meanwhile gets a later `seq`
        // and stays untouched (marking it would leave its bytes in place).
        let mut n = 0;
        let mut after: i64 = 0;
        loop {
            let rows = sqlx::query(
                "SELECT seq, body_ref FROM log_records \
                 WHERE seq > $1 AND contract_id = $2 AND at < $3 AND bodies_deleted IS NULL \
                 AND (request_body IS NOT NULL OR output_body IS NOT NULL OR body_ref IS NOT NULL) \
                 ORDER BY seq LIMIT $4",
            )
            .bind(after)
            .bind(contract)
            .bind(before)
            .bind(EXPIRE_BATCH)
            .fetch_all(self.pool())
            .await?;
            let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
                break;
            };
            let (first, last): (i64, i64) = (first.try_get(0)?, last.try_get(0)?);
            let in_files: Vec<String> = rows
                .iter()
                .map(|r| r.try_get::<Option<String>, _>(1))
                .filter_map(Result::transpose)
                .collect::<Result<_, _>>()?;
            n += sqlx::query(
                "UPDATE log_records SET request_body = NULL, output_body = NULL, body_ref = NULL, bodies_deleted = 'retention' \
                 WHERE seq >= $1 AND seq <= $2 AND contract_id = $3 AND at < $4 AND bodies_deleted IS NULL \
                 AND (request_body IS NOT NULL OR output_body IS NOT NULL OR body_ref IS NOT NULL)",
            )
            .bind(first)
            .bind(last)
            .bind(contract)
            .bind(before)
            .execute(self.pool())
            .await?
            .rows_affected();
            if let (Some(w), false) = (&self.sqlite_log, in_files.is_empty()) {
                // The rows no longer point at these bodies; now the bytes go too (file I/O, so
                // not on an async worker).
                let bodies = w.bodies.clone();
                let who = contract.to_string();
                let failed =
                    tokio::task::spawn_blocking(move || bodies.erase(&who, &in_files)).await?;
                if failed > 0 {
                    tracing::warn!(contract, failed, "some expired bodies could not be overwritten; their day's file is deleted later");
                }
            }
            if rows.len() < EXPIRE_BATCH as usize {
                break;
            }
            after = last;
        }
        if let Some(w) = &self.sqlite_log {
            // Only days wholly before the cutoff's: no request still being answered writes there.
            let cutoff_day = before.get(..10).unwrap_or(before);
            for day in w.bodies.days(contract)? {
                if day.as_str() >= cutoff_day {
                    break;
                }
                // Under the write lock, so no record can start pointing into it meanwhile.
                let mut tx = self.write_tx().await?;
                let live = sqlx::query(
                    "SELECT 1 FROM log_records WHERE contract_id = $1 AND body_ref LIKE $2 LIMIT 1",
                )
                .bind(contract)
                .bind(format!("{day}:%"))
                .fetch_optional(&mut *tx)
                .await?;
                if live.is_none() {
                    w.bodies.remove_day(contract, &day)?;
                }
                tx.commit().await?;
            }
        }
        Ok(n)
    }

    pub async fn log_list(&self, f: &LogFilter) -> anyhow::Result<Vec<LogRecordSummary>> {
        let rows = sqlx::query(
            "SELECT seq, request_id, at, staff_id, contract_id, deliverable, provider_id, model, endpoint, outcome, code, latency_us, output_sha256 FROM log_records \
             WHERE ($1 IS NULL OR contract_id = $1) AND ($2 IS NULL OR deliverable = $2) AND ($3 IS NULL OR at >= $3) \
             ORDER BY seq DESC LIMIT $4",
        )
        .bind(&f.contract)
        .bind(&f.deliverable)
        .bind(&f.since)
        .bind(if f.limit > 0 { f.limit } else { 100 })
        .fetch_all(self.pool())
        .await?;
        let mut out = rows
            .iter()
            .map(summary)
            .collect::<anyhow::Result<Vec<_>>>()?;
        out.reverse();
        Ok(out)
    }

    pub async fn log_record(&self, request_id: &str) -> anyhow::Result<Option<LogRecord>> {
        let row = sqlx::query("SELECT * FROM log_records WHERE request_id = $1")
            .bind(request_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(self
            .records_from_rows(row.as_slice())
            .await?
            .into_iter()
            .next())
    }

    /// Whether the log table answers (used to recover after a failed write).
    pub async fn log_probe(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT seq FROM log_records WHERE seq < 0")
            .fetch_optional(self.pool())
            .await?;
        Ok(())
    }

    pub async fn log_count(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) FROM log_records")
            .fetch_one(self.pool())
            .await?
            .try_get(0)?)
    }
}

fn data_key_row(r: &AnyRow) -> anyhow::Result<DataKeyRow> {
    Ok(DataKeyRow {
        contract_id: r.try_get(0)?,
        master_key_id: r.try_get(1)?,
        wrapped: r.try_get(2)?,
        destroyed_at: r.try_get(3)?,
    })
}
