//! Providers, contracts, staff and keys: the administrative state. Every change bumps the
//! policy generation so running gateways pick it up within their refresh interval.
use super::{bump_generation, flag, now_text, opt_str, Store};
use anyhow::{bail, Context};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone, Serialize)]
pub struct ProviderRow {
    pub id: String,
    pub version: i64,
    pub suspended: bool,
    pub suspend_reason: Option<String>,
    pub updated_at: String,
    /// The registration as validated JSON (see `policy::Registration`).
    pub registration: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProviderVersion {
    pub version: i64,
    pub content_sha256: String,
    pub changes: Vec<String>,
    pub changed_by: String,
    pub changed_at: String,
    pub registration: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProviderEvent {
    pub action: String,
    pub reason: Option<String>,
    pub actor: String,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", content = "version", rename_all = "snake_case")]
pub enum RegisterOutcome {
    Created(i64),
    Updated(i64),
    Unchanged(i64),
}

#[derive(Debug, Clone, Serialize)]
pub struct ContractRow {
    pub id: String,
    pub title: String,
    pub client: String,
    /// `None`: every approved provider; `Some(list)`: only these.
    pub providers: Option<Vec<String>>,
    pub japan_only: bool,
    pub allow_non_text: bool,
    pub ends_on: Option<String>,
    pub retention_days: Option<i64>,
    pub status: String,
    pub created_at: String,
    pub closed_at: Option<String>,
    /// 契約日: the date of the contract the notification form names.
    pub contract_date: Option<String>,
    /// 生成AIを利用する業務及び作業の具体的内容 declared for the form.
    pub purposes: Vec<String>,
    /// 再委託先等 and what each is entrusted with.
    pub subcontractors: Vec<Subcontractor>,
}

#[cfg(test)]
impl ContractRow {
    /// A contract for unit tests: `status`, an end date, and a closing time when closed.
    pub(crate) fn sample(id: &str, status: &str, ends_on: Option<&str>) -> Self {
        Self {
            id: id.into(),
            title: "t".into(),
            client: "c".into(),
            providers: None,
            japan_only: false,
            allow_non_text: false,
            ends_on: ends_on.map(str::to_string),
            retention_days: None,
            status: status.into(),
            created_at: "2020-01-01T00:00:00Z".into(),
            closed_at: (status == "closed").then(|| "2021-04-01T09:00:00.000000Z".to_string()),
            contract_date: None,
            purposes: vec![],
            subcontractors: vec![],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Subcontractor {
    pub name: String,
    pub work: String,
}

/// One filed notification form (別記様式), as it was filed.
#[derive(Debug, Clone, Serialize)]
pub struct FormFiling {
    pub contract_id: String,
    pub version: i64,
    pub filed_at: String,
    pub filed_by: String,
    pub content: String,
    pub content_sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StaffRow {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub trained_on: Option<String>,
    pub active: bool,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyRow {
    pub id: String,
    #[serde(skip)]
    pub key_hash: String,
    pub staff_id: String,
    pub contract_id: String,
    pub deliverable: Option<String>,
    pub purpose: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub created_at: String,
}

/// Everything a gateway needs to decide on a request, read in one go.
#[derive(Debug, Default)]
pub struct PolicyState {
    pub generation: i64,
    pub providers: Vec<ProviderRow>,
    pub contracts: Vec<ContractRow>,
    pub staff: Vec<StaffRow>,
    pub keys: Vec<KeyRow>,
    /// (contract, kind, term) of every contract's redaction list.
    pub terms: Vec<(String, String, String)>,
}

fn provider_row(r: &AnyRow) -> anyhow::Result<ProviderRow> {
    Ok(ProviderRow {
        id: r.try_get("id")?,
        version: r.try_get("version")?,
        suspended: flag(r, "suspended")?,
        suspend_reason: opt_str(r, "suspend_reason")?,
        updated_at: r.try_get("updated_at")?,
        registration: r.try_get("registration")?,
    })
}

fn contract_row(r: &AnyRow) -> anyhow::Result<ContractRow> {
    let providers: Option<String> = opt_str(r, "providers")?;
    Ok(ContractRow {
        id: r.try_get("id")?,
        title: r.try_get("title")?,
        client: r.try_get("client")?,
        providers: providers.map(|p| serde_json::from_str(&p)).transpose()?,
        japan_only: flag(r, "japan_only")?,
        allow_non_text: flag(r, "allow_non_text")?,
        ends_on: opt_str(r, "ends_on")?,
        retention_days: r.try_get("retention_days")?,
        status: r.try_get("status")?,
        created_at: r.try_get("created_at")?,
        closed_at: opt_str(r, "closed_at")?,
        contract_date: opt_str(r, "contract_date")?,
        purposes: json_list(opt_str(r, "purposes")?)?,
        subcontractors: json_list(opt_str(r, "subcontractors")?)?,
    })
}

fn json_list<T: serde::de::DeserializeOwned>(v: Option<String>) -> anyhow::Result<Vec<T>> {
    Ok(v.map(|s| serde_json::from_str(&s))
        .transpose()?
        .unwrap_or_default())
}

fn staff_row(r: &AnyRow) -> anyhow::Result<StaffRow> {
    Ok(StaffRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        email: opt_str(r, "email")?,
        trained_on: opt_str(r, "trained_on")?,
        active: flag(r, "active")?,
        created_at: r.try_get("created_at")?,
    })
}

fn key_row(r: &AnyRow) -> anyhow::Result<KeyRow> {
    Ok(KeyRow {
        id: r.try_get("id")?,
        key_hash: r.try_get("key_hash")?,
        staff_id: r.try_get("staff_id")?,
        contract_id: r.try_get("contract_id")?,
        deliverable: opt_str(r, "deliverable")?,
        purpose: opt_str(r, "purpose")?,
        expires_at: opt_str(r, "expires_at")?,
        revoked_at: opt_str(r, "revoked_at")?,
        created_at: r.try_get("created_at")?,
    })
}

const PROVIDER_SELECT: &str =
    "SELECT p.id, p.version, p.suspended, p.suspend_reason, p.updated_at, v.registration \
     FROM providers p JOIN provider_versions v ON v.provider_id = p.id AND v.version = p.version";

/// The fields of a new contract, as the administrator gave them.
#[derive(Debug, Clone, Default)]
pub struct NewContract {
    pub id: String,
    pub title: String,
    pub client: String,
    pub providers: Option<Vec<String>>,
    pub japan_only: bool,
    pub allow_non_text: bool,
    pub ends_on: Option<String>,
    pub retention_days: Option<i64>,
    pub contract_date: Option<String>,
    pub purposes: Vec<String>,
    pub subcontractors: Vec<Subcontractor>,
}

/// The fields of a new key; the plaintext key never reaches the store.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub id: String,
    pub key_hash: String,
    pub staff_id: String,
    pub contract_id: String,
    pub deliverable: Option<String>,
    pub purpose: Option<String>,
    pub expires_at: Option<String>,
}

impl Store {
    /// Records a registration; a new version only when its content changed.
    pub async fn register_provider(
        &self,
        id: &str,
        registration_json: &str,
        content_sha256: &str,
        changes: &[String],
        actor: &str,
    ) -> anyhow::Result<RegisterOutcome> {
        let mut tx = self.write_tx().await?;
        let current = sqlx::query(
            "SELECT v.version, v.content_sha256 FROM providers p JOIN provider_versions v ON v.provider_id = p.id AND v.version = p.version WHERE p.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let now = now_text();
        let (version, outcome) = match current {
            Some(row) => {
                let v: i64 = row.try_get(0)?;
                let sha: String = row.try_get(1)?;
                if sha == content_sha256 {
                    return Ok(RegisterOutcome::Unchanged(v));
                }
                sqlx::query("UPDATE providers SET version = $1, updated_at = $2 WHERE id = $3")
                    .bind(v + 1)
                    .bind(&now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                (v + 1, RegisterOutcome::Updated(v + 1))
            }
            None => {
                sqlx::query("INSERT INTO providers (id, version, suspended, updated_at) VALUES ($1, 1, 0, $2)")
                    .bind(id)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await?;
                (1, RegisterOutcome::Created(1))
            }
        };
        sqlx::query("INSERT INTO provider_versions (provider_id, version, registration, content_sha256, changes, changed_by, changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(id)
            .bind(version)
            .bind(registration_json)
            .bind(content_sha256)
            .bind(serde_json::to_string(changes)?)
            .bind(actor)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        bump_generation(&mut *tx).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// The current version of a registration, if any.
    pub async fn provider(&self, id: &str) -> anyhow::Result<Option<ProviderRow>> {
        let sql = format!("{PROVIDER_SELECT} WHERE p.id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(provider_row).transpose()
    }

    pub async fn providers(&self) -> anyhow::Result<Vec<ProviderRow>> {
        let sql = format!("{PROVIDER_SELECT} ORDER BY p.id");
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        rows.iter().map(provider_row).collect()
    }

    pub async fn provider_history(
        &self,
        id: &str,
    ) -> anyhow::Result<(Vec<ProviderVersion>, Vec<ProviderEvent>)> {
        let rows = sqlx::query("SELECT version, content_sha256, changes, changed_by, changed_at, registration FROM provider_versions WHERE provider_id = $1 ORDER BY version")
            .bind(id)
            .fetch_all(self.pool())
            .await?;
        let versions = rows
            .iter()
            .map(|r| {
                let changes: String = r.try_get("changes")?;
                Ok(ProviderVersion {
                    version: r.try_get("version")?,
                    content_sha256: r.try_get("content_sha256")?,
                    changes: serde_json::from_str(&changes)?,
                    changed_by: r.try_get("changed_by")?,
                    changed_at: r.try_get("changed_at")?,
                    registration: r.try_get("registration")?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let rows = sqlx::query("SELECT action, reason, actor, at FROM provider_events WHERE provider_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(self.pool())
            .await?;
        let events = rows
            .iter()
            .map(|r| {
                Ok(ProviderEvent {
                    action: r.try_get("action")?,
                    reason: opt_str(r, "reason")?,
                    actor: r.try_get("actor")?,
                    at: r.try_get("at")?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok((versions, events))
    }

    /// Suspends (`Some(reason)`) or resumes (`None`) a provider; errors if it is unknown.
    /// Returns `false`, changing and recording nothing, when it is already in that state
    /// (suspending a suspended provider keeps its reason).
    pub async fn set_provider_suspended(
        &self,
        id: &str,
        reason: Option<&str>,
        actor: &str,
    ) -> anyhow::Result<bool> {
        let mut tx = self.write_tx().await?;
        let now = now_text();
        let suspend = i64::from(reason.is_some());
        let n = sqlx::query("UPDATE providers SET suspended = $1, suspend_reason = $2, updated_at = $3 WHERE id = $4 AND suspended <> $1")
            .bind(suspend)
            .bind(reason)
            .bind(&now)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            let exists = sqlx::query("SELECT id FROM providers WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                bail!("no provider `{id}` is registered; see `mamori provider list`");
            }
            return Ok(false);
        }
        sqlx::query("INSERT INTO provider_events (provider_id, action, reason, actor, at) VALUES ($1, $2, $3, $4, $5)")
            .bind(id)
            .bind(if reason.is_some() { "suspend" } else { "resume" })
            .bind(reason)
            .bind(actor)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        bump_generation(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn create_contract(&self, c: &NewContract) -> anyhow::Result<()> {
        let mut tx = self.write_tx().await?;
        let exists = sqlx::query("SELECT id FROM contracts WHERE id = $1")
            .bind(&c.id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            bail!(
                "contract `{}` already exists; choose another id or see `mamori contract show {}`",
                c.id,
                c.id
            );
        }
        let providers = c
            .providers
            .as_ref()
            .map(serde_json::to_string)
            .transpose()?;
        sqlx::query("INSERT INTO contracts (id, title, client, providers, japan_only, allow_non_text, ends_on, retention_days, status, created_at, contract_date, purposes, subcontractors) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $10, $11, $12)")
            .bind(&c.id)
            .bind(&c.title)
            .bind(&c.client)
            .bind(providers)
            .bind(i64::from(c.japan_only))
            .bind(i64::from(c.allow_non_text))
            .bind(&c.ends_on)
            .bind(c.retention_days)
            .bind(now_text())
            .bind(&c.contract_date)
            .bind(serde_json::to_string(&c.purposes)?)
            .bind(serde_json::to_string(&c.subcontractors)?)
            .execute(&mut *tx)
            .await?;
        bump_generation(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn contract(&self, id: &str) -> anyhow::Result<Option<ContractRow>> {
        let row = sqlx::query("SELECT * FROM contracts WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(contract_row).transpose()
    }

    pub async fn contracts(&self) -> anyhow::Result<Vec<ContractRow>> {
        let rows = sqlx::query("SELECT * FROM contracts ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(contract_row).collect()
    }

    /// Closes a contract and revokes all its keys, in one transaction.
    pub async fn close_contract(&self, id: &str) -> anyhow::Result<u64> {
        let mut tx = self.write_tx().await?;
        let now = now_text();
        let n = sqlx::query("UPDATE contracts SET status = 'closed', closed_at = $1 WHERE id = $2 AND status = 'active'")
            .bind(&now)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            bail!("no active contract `{id}`; see `mamori contract list`");
        }
        let revoked = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE contract_id = $2 AND revoked_at IS NULL",
        )
        .bind(&now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Crypto-shredding: destroy the data key (or make sure none can be created later) and
        // drop the sealed bodies; metadata and hashes stay, so the chain still verifies.
        sqlx::query("INSERT INTO data_keys (contract_id, created_at) VALUES ($1, $2) ON CONFLICT (contract_id) DO NOTHING")
            .bind(id)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE data_keys SET wrapped = NULL, master_key_id = NULL, destroyed_at = $1 WHERE contract_id = $2")
            .bind(&now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE log_records SET request_body = NULL, output_body = NULL, body_ref = NULL, bodies_deleted = 'shredded' WHERE contract_id = $1 AND (request_body IS NOT NULL OR output_body IS NOT NULL OR body_ref IS NOT NULL)")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        bump_generation(&mut *tx).await?;
        tx.commit().await?;
        self.shred_body_files(id).await?;
        if let Err(e) = self.scrub_freed_space().await {
            bail!("closed contract `{id}` and revoked {revoked} key(s), but {e:#}");
        }
        Ok(revoked)
    }

    /// Deletes a closed contract's body files (SQLite), under the write lock so that no record
    /// is appended meanwhile, and marks any record that still pointed into them as shredded.
    /// Its data key is already destroyed, so they could not be opened anyway. Also run by the
    /// gateway's upkeep: a request in flight at the close may commit with a still-cached key.
    pub async fn shred_body_files(&self, contract: &str) -> anyhow::Result<()> {
        let Some(w) = &self.sqlite_log else {
            return Ok(());
        };
        if !w.bodies.has_contract(contract) {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE log_records SET body_ref = NULL, bodies_deleted = 'shredded' WHERE contract_id = $1 AND body_ref IS NOT NULL")
            .bind(contract)
            .execute(&mut *tx)
            .await?;
        w.bodies.remove_contract(contract)?;
        tx.commit().await?;
        Ok(())
    }

    /// Makes deleted key material unrecoverable from the database files: SQLite zeroes freed
    /// pages (secure_delete) but old page images can linger in the WAL until a checkpoint;
    /// PostgreSQL keeps dead row versions until the table is rewritten.
    async fn scrub_freed_space(&self) -> anyhow::Result<()> {
        match self.dialect() {
            super::Dialect::Sqlite => {
                // A reader, a writer or another checkpoint keeps the WAL from being cut (the
                // first column, `busy`): try again for up to 5 s, since the log rewinds its WAL
                // rather than cutting it, and old frames, a wrapped key among them, would
                // otherwise stay in the file. Each try waits at most 50 ms for the lock, which a
                // TRUNCATE holds while it waits for readers: writers (a gateway's log) get it
                // between tries.
                let mut conn = self.pool().acquire().await?;
                sqlx::query("PRAGMA busy_timeout=50")
                    .execute(&mut *conn)
                    .await?;
                let started = std::time::Instant::now();
                let cleared = loop {
                    let busy: i64 = sqlx::query_scalar("PRAGMA wal_checkpoint(TRUNCATE)")
                        .fetch_one(&mut *conn)
                        .await?;
                    if busy == 0 {
                        break true;
                    }
                    if started.elapsed() >= std::time::Duration::from_secs(5) {
                        break false;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                };
                sqlx::query("PRAGMA busy_timeout=5000")
                    .execute(&mut *conn)
                    .await?;
                if !cleared {
                    anyhow::bail!("for 5 s the database's write-ahead log could not be cleared (readers such as `audit verify` or a disclosure, or a busy gateway, held it), so an old copy of the contract's wrapped data key may remain in it until it is; a running gateway clears it once its log has been idle for a second");
                }
            }
            super::Dialect::Postgres => {
                sqlx::query("VACUUM FULL data_keys")
                    .execute(self.pool())
                    .await?;
            }
        }
        Ok(())
    }

    /// Adds to a contract's redaction list (`kind`: `term` or `field`); false if already there.
    pub async fn add_term(&self, contract: &str, kind: &str, term: &str) -> anyhow::Result<bool> {
        self.require_contract(contract).await?;
        let mut tx = self.write_tx().await?;
        let exists = sqlx::query(
            "SELECT term FROM contract_terms WHERE contract_id = $1 AND term = $2 AND kind = $3",
        )
        .bind(contract)
        .bind(term)
        .bind(kind)
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_some() {
            return Ok(false);
        }
        sqlx::query("INSERT INTO contract_terms (contract_id, term, added_at, kind) VALUES ($1, $2, $3, $4)")
            .bind(contract)
            .bind(term)
            .bind(now_text())
            .bind(kind)
            .execute(&mut *tx)
            .await?;
        bump_generation(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn remove_term(
        &self,
        contract: &str,
        kind: &str,
        term: &str,
    ) -> anyhow::Result<bool> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(
            "DELETE FROM contract_terms WHERE contract_id = $1 AND term = $2 AND kind = $3",
        )
        .bind(contract)
        .bind(term)
        .bind(kind)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        bump_generation(&mut *tx).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    pub async fn terms(&self, contract: &str, kind: &str) -> anyhow::Result<Vec<String>> {
        self.require_contract(contract).await?;
        let rows = sqlx::query(
            "SELECT term FROM contract_terms WHERE contract_id = $1 AND kind = $2 ORDER BY term",
        )
        .bind(contract)
        .bind(kind)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    async fn require_contract(&self, id: &str) -> anyhow::Result<ContractRow> {
        self.contract(id)
            .await?
            .with_context(|| format!("no contract `{id}`; create it with `mamori contract create {id} --title … --client …`"))
    }

    /// Records a filed notification form; returns its version for the contract.
    pub async fn file_form(
        &self,
        contract: &str,
        content: &str,
        sha256: &str,
        actor: &str,
    ) -> anyhow::Result<i64> {
        let mut tx = self.write_tx().await?;
        let last: Option<i64> =
            sqlx::query("SELECT MAX(version) FROM form_filings WHERE contract_id = $1")
                .bind(contract)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        let version = last.unwrap_or(0) + 1;
        sqlx::query("INSERT INTO form_filings (contract_id, version, filed_at, filed_by, content, content_sha256) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(contract)
            .bind(version)
            .bind(now_text())
            .bind(actor)
            .bind(content)
            .bind(sha256)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(version)
    }

    pub async fn last_filing(&self, contract: &str) -> anyhow::Result<Option<FormFiling>> {
        let r = sqlx::query("SELECT contract_id, version, filed_at, filed_by, content, content_sha256 FROM form_filings WHERE contract_id = $1 ORDER BY version DESC LIMIT 1")
            .bind(contract)
            .fetch_optional(self.pool())
            .await?;
        r.map(|r| {
            Ok(FormFiling {
                contract_id: r.try_get(0)?,
                version: r.try_get(1)?,
                filed_at: r.try_get(2)?,
                filed_by: r.try_get(3)?,
                content: r.try_get(4)?,
                content_sha256: r.try_get(5)?,
            })
        })
        .transpose()
    }

    pub async fn add_staff(&self, s: &StaffRow) -> anyhow::Result<()> {
        let mut tx = self.write_tx().await?;
        let exists = sqlx::query("SELECT id FROM staff WHERE id = $1")
            .bind(&s.id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            bail!("staff `{}` already exists; to record training use `mamori staff train {} --on DATE`", s.id, s.id);
        }
        sqlx::query("INSERT INTO staff (id, name, email, trained_on, active, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&s.id)
            .bind(&s.name)
            .bind(&s.email)
            .bind(&s.trained_on)
            .bind(i64::from(s.active))
            .bind(&s.created_at)
            .execute(&mut *tx)
            .await?;
        bump_generation(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a training on `on` (`YYYY-MM-DD`). A date earlier than the one recorded is
    /// refused: the later training is the one that counts.
    pub async fn train_staff(&self, id: &str, on: &str) -> anyhow::Result<()> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(
            "UPDATE staff SET trained_on = $1 WHERE id = $2 AND (trained_on IS NULL OR trained_on <= $1)",
        )
        .bind(on)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            let row = sqlx::query("SELECT trained_on FROM staff WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            match row.map(|r| r.try_get::<Option<String>, _>(0)).transpose()? {
                None => bail!("no staff `{id}`; add them with `mamori staff add {id} --name …`"),
                Some(recorded) => bail!(
                    "staff `{id}`'s recorded training, on {}, is later than {on}; nothing changed (the later training is the one that counts); record a training only once a newer one has taken place",
                    recorded.as_deref().unwrap_or("?")
                ),
            }
        }
        bump_generation(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn staff(&self, id: &str) -> anyhow::Result<Option<StaffRow>> {
        let row = sqlx::query("SELECT * FROM staff WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(staff_row).transpose()
    }

    pub async fn staff_list(&self) -> anyhow::Result<Vec<StaffRow>> {
        let rows = sqlx::query("SELECT * FROM staff ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(staff_row).collect()
    }

    pub async fn insert_key(&self, k: &NewKey) -> anyhow::Result<()> {
        self.staff(&k.staff_id).await?.with_context(|| {
            format!(
                "no staff `{}`; add them with `mamori staff add {} --name …`",
                k.staff_id, k.staff_id
            )
        })?;
        let c = self.require_contract(&k.contract_id).await?;
        if c.status != "active" {
            bail!(
                "contract `{}` is {}; keys can only be issued for an active contract",
                c.id,
                c.status
            );
        }
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO api_keys (id, key_hash, staff_id, contract_id, deliverable, purpose, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(&k.id)
            .bind(&k.key_hash)
            .bind(&k.staff_id)
            .bind(&k.contract_id)
            .bind(&k.deliverable)
            .bind(&k.purpose)
            .bind(&k.expires_at)
            .bind(now_text())
            .execute(&mut *tx)
            .await?;
        bump_generation(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn keys(&self) -> anyhow::Result<Vec<KeyRow>> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY created_at, id")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(key_row).collect()
    }

    pub async fn revoke_key(&self, id: &str) -> anyhow::Result<()> {
        let mut tx = self.write_tx().await?;
        let n =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now_text())
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if n == 0 {
            bail!("no unrevoked key `{id}`; see `mamori key list`");
        }
        bump_generation(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Reads all policy state at one generation (inside one transaction).
    pub async fn policy_state(&self) -> anyhow::Result<PolicyState> {
        let mut tx = self.pool().begin().await?;
        let generation: i64 = sqlx::query("SELECT generation FROM policy_generation WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let sql = format!("{PROVIDER_SELECT} ORDER BY p.id");
        let providers = sqlx::query(&sql).fetch_all(&mut *tx).await?;
        let contracts = sqlx::query("SELECT * FROM contracts")
            .fetch_all(&mut *tx)
            .await?;
        let staff = sqlx::query("SELECT * FROM staff")
            .fetch_all(&mut *tx)
            .await?;
        let keys = sqlx::query("SELECT * FROM api_keys")
            .fetch_all(&mut *tx)
            .await?;
        let terms = sqlx::query("SELECT contract_id, kind, term FROM contract_terms")
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(PolicyState {
            generation,
            providers: providers
                .iter()
                .map(provider_row)
                .collect::<anyhow::Result<_>>()?,
            contracts: contracts
                .iter()
                .map(contract_row)
                .collect::<anyhow::Result<_>>()?,
            staff: staff.iter().map(staff_row).collect::<anyhow::Result<_>>()?,
            keys: keys.iter().map(key_row).collect::<anyhow::Result<_>>()?,
            terms: terms
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                .collect::<anyhow::Result<_>>()?,
        })
    }
}
