//! Storage: one SQL implementation over sqlx's `Any` driver, for SQLite (embedded default) and
//! PostgreSQL, chosen by URL scheme. Dialect differences stay in this module: the migrations
//! folders and the few statements that differ. Every value is bound, never formatted into SQL.
mod body_files;
mod log;
mod registry;
mod sqlite_log;
pub(crate) use sqlite_log::is_held_elsewhere;

pub use log::{Checkpoint, DataKeyRow, Link, LogFilter, LogRecord, LogRecordSummary};
pub use registry::*;

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Migrations per backend, applied in order at startup; each runs once.
const SQLITE_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_core.sql")),
    (2, include_str!("../../migrations/sqlite/0002_forms.sql")),
    // 3 was used by a development build and withdrawn; a database may have it recorded.
    (
        4,
        include_str!("../../migrations/sqlite/0004_body_files.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_core.sql")),
    (2, include_str!("../../migrations/postgres/0002_forms.sql")),
    // 3: see above.
    (
        4,
        include_str!("../../migrations/postgres/0004_body_files.sql"),
    ),
];

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    /// SQLite only: the log's own connection (see `sqlite_log.rs`).
    sqlite_log: Option<sqlite_log::SqliteLog>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dialect", &self.dialect)
            .finish()
    }
}

impl Store {
    /// Opens (creating the SQLite file if needed) and migrates the database at `url`.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        Self::connect_with(url, false).await
    }

    /// As [`Store::connect`]; `sqlite_full_sync` makes every log commit on SQLite wait for an
    /// fsync, so records survive a power loss or OS crash, not only a killed process.
    pub async fn connect_with(url: &str, sqlite_full_sync: bool) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let shown = crate::config::redact_url(url);
        let (dialect, url) = if let Some(path) = url.strip_prefix("sqlite://") {
            let file = path.split('?').next().unwrap_or(path);
            if let Some(dir) = std::path::Path::new(file).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).with_context(|| {
                        format!("cannot create the database folder {}", dir.display())
                    })?;
                }
            }
            let url = if path.contains('?') {
                url.to_string()
            } else {
                format!("{url}?mode=rwc")
            };
            (Dialect::Sqlite, url)
        } else {
            (Dialect::Postgres, url.to_string())
        };
        let mut opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(5));
        if dialect == Dialect::Sqlite {
            opts = opts.max_connections(4).after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON; PRAGMA cache_size=-1024; PRAGMA wal_autocheckpoint=0;")
                        .await?;
                    Ok(())
                })
            });
        } else {
            opts = opts.max_connections(16);
        }
        let pool = opts
            .connect(&url)
            .await
            .with_context(|| format!("cannot open the database {shown}"))?;
        let mut store = Self {
            pool,
            dialect,
            sqlite_log: None,
        };
        store
            .migrate()
            .await
            .with_context(|| format!("cannot migrate the database {shown}"))?;
        if dialect == Dialect::Sqlite {
            let file = url.trim_start_matches("sqlite://");
            let file = file.split('?').next().unwrap_or(file);
            store.sqlite_log = Some(
                sqlite_log::SqliteLog::start(file, sqlite_full_sync)
                    .with_context(|| format!("cannot open the log writer on {shown}"))?,
            );
        }
        Ok(store)
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        let migrations = match self.dialect {
            Dialect::Sqlite => SQLITE_MIGRATIONS,
            Dialect::Postgres => POSTGRES_MIGRATIONS,
        };
        let mut tx = self.write_tx().await?;
        if self.dialect == Dialect::Postgres {
            // Several instances may start together; one migrates, the others wait.
            tx.execute("SELECT pg_advisory_xact_lock(7283561)").await?;
        }
        tx.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)")
            .await?;
        let done: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?;
        let known = migrations.iter().map(|(v, _)| *v).max().unwrap_or(0);
        if let Some(newer) = done.iter().copied().filter(|v| *v > known).max() {
            // An older binary would ignore what the newer schema means (where log bodies are,
            // for one) and mishandle it: stop instead.
            anyhow::bail!("the database was migrated by a newer mamori (schema version {newer}; this binary knows up to {known}); run the newer version on every instance");
        }
        for (version, sql) in migrations {
            if done.contains(version) {
                continue;
            }
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .with_context(|| format!("migration {version}"))?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(*version)
                .bind(now_text())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Cheap check used by `/readyz` and by the log writer's health probe.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// A counter bumped by every administrative change; running gateways reload when it moves.
    pub async fn policy_generation(&self) -> anyhow::Result<i64> {
        let row = sqlx::query("SELECT generation FROM policy_generation WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads first cannot upgrade once another
    /// connection has written, and fails at once with SQLITE_BUSY_SNAPSHOT.
    pub(crate) async fn write_tx(&self) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.pool.begin().await?,
        })
    }
}

pub(crate) async fn bump_generation<'c, E>(e: E) -> anyhow::Result<()>
where
    E: Executor<'c, Database = sqlx::Any>,
{
    sqlx::query("UPDATE policy_generation SET generation = generation + 1 WHERE id = 1")
        .execute(e)
        .await?;
    Ok(())
}

/// Timestamps are stored as RFC 3339 UTC text with microseconds, which sorts correctly.
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub(crate) fn opt_str(row: &AnyRow, col: &str) -> anyhow::Result<Option<String>> {
    Ok(row.try_get::<Option<String>, _>(col)?)
}

pub(crate) fn flag(row: &AnyRow, col: &str) -> anyhow::Result<bool> {
    Ok(row.try_get::<i64, _>(col)? != 0)
}
