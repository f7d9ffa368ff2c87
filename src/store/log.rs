//! Output log records. Only `audit::LogWriter` inserts them (see ARCHITECTURE.md).
use super::{opt_str, Store};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

/// One request, refused or served, as it is kept for disclosure and audit.
#[derive(Clone, Serialize, Default)]
pub struct LogRecord {
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
    /// The request exactly as sent upstream.
    pub request_body: Option<Vec<u8>>,
    /// The output as the client received it (streams assembled).
    pub output_body: Option<Vec<u8>>,
    pub output_sha256: Option<String>,
}

// Bodies are left out of `Debug`: they are confidential even after redaction.
impl std::fmt::Debug for LogRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogRecord")
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

const INSERT: &str = "INSERT INTO log_records (request_id, at, staff_id, key_id, contract_id, deliverable, purpose, provider_id, provider_version, model, endpoint, streamed, outcome, code, http_status, latency_us, input_tokens, output_tokens, redactions, request_body, output_body, output_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)";

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
    /// Inserts records in one transaction: all are committed or none.
    pub async fn insert_log_records(&self, records: &[LogRecord]) -> anyhow::Result<()> {
        let mut tx = self.pool().begin().await?;
        for r in records {
            sqlx::query(INSERT)
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
                .bind(&r.output_sha256)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
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

    pub async fn log_record(&self, request_id: &str) -> anyhow::Result<Option<(i64, LogRecord)>> {
        let row = sqlx::query("SELECT * FROM log_records WHERE request_id = $1")
            .bind(request_id)
            .fetch_optional(self.pool())
            .await?;
        let Some(r) = row else { return Ok(None) };
        let rec = LogRecord {
            request_id: r.try_get("request_id")?,
            at: r.try_get("at")?,
            staff_id: opt_str(&r, "staff_id")?,
            key_id: opt_str(&r, "key_id")?,
            contract_id: opt_str(&r, "contract_id")?,
            deliverable: opt_str(&r, "deliverable")?,
            purpose: opt_str(&r, "purpose")?,
            provider_id: opt_str(&r, "provider_id")?,
            provider_version: r.try_get("provider_version")?,
            model: opt_str(&r, "model")?,
            endpoint: r.try_get("endpoint")?,
            streamed: r.try_get::<i64, _>("streamed")? != 0,
            outcome: r.try_get("outcome")?,
            code: opt_str(&r, "code")?,
            http_status: r.try_get("http_status")?,
            latency_us: r.try_get("latency_us")?,
            input_tokens: r.try_get("input_tokens")?,
            output_tokens: r.try_get("output_tokens")?,
            redactions: r.try_get("redactions")?,
            request_body: r.try_get("request_body")?,
            output_body: r.try_get("output_body")?,
            output_sha256: opt_str(&r, "output_sha256")?,
        };
        Ok(Some((r.try_get("seq")?, rec)))
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
