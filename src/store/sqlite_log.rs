//! The SQLite side of the log's group commit, with a connection of its own.
//! Through sqlx every statement is a hand-off to sqlx's worker thread and back; a commit of
//! chained records is several statements, so the hand-offs alone would dominate a request's
//! latency. Here the whole transaction runs in one place, in the log writer's task: a commit
//! takes tens of microseconds, less than waking another thread and being woken back. Only when
//! another connection holds the write lock (an admin command, another process), or every
//! commit waits for an fsync, does the write go to a blocking thread, so that the async workers
//! never wait on a lock or a disk. WAL checkpoints run on a thread of their own so that no
//! commit waits for one.
use super::body_files::BodyFiles;
use super::log::{Link, LogRecord, COLUMNS};
use rusqlite::{params, Connection, ErrorCode, TransactionBehavior};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a write waits for another connection's write lock before it fails.
const BUSY_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub(crate) struct SqliteLog {
    /// When the last `Store` clone goes, the checkpoint thread ends too.
    conn: Arc<Mutex<Connection>>,
    full_sync: bool,
    pub(crate) bodies: BodyFiles,
    /// One retention run at a time in this process, so that when a run returns, the bodies that
    /// another run (the upkeep's) marked deleted are overwritten too (any that could not be stay
    /// until their day's file goes).
    pub(crate) expiring: Arc<tokio::sync::Mutex<()>>,
}

/// `full_sync`: fsync every commit (survives power loss), instead of only a process kill.
fn open(path: &str, full_sync: bool) -> rusqlite::Result<Connection> {
    let c = Connection::open(path)?;
    c.busy_timeout(BUSY_WAIT)?;
    // 1 MiB of page cache: appends touch a few pages at the right edge of the table and its
    // indexes; a larger cache only fills with pages no later insert reads, and stays resident.
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA secure_delete=ON; PRAGMA wal_autocheckpoint=0; PRAGMA cache_size=-1024;",
    )?;
    c.execute_batch(if full_sync {
        "PRAGMA synchronous=FULL;"
    } else {
        "PRAGMA synchronous=NORMAL;"
    })?;
    // See `checkpoint`: the WAL is rewound, and cut back to this size only when it outgrew it
    // (96 MiB: the restart threshold's 64 MiB plus what half a second of load adds to it).
    c.execute_batch("PRAGMA journal_size_limit=100663296;")?;
    Ok(c)
}

/// Past this many frames (64 MiB of 4 KiB pages, under the 96 MiB `journal_size_limit`) the WAL
/// is started over, not only copied back: past the limit, SQLite would cut it at its next
/// rewind and the frames beyond would take fresh pages again.
const WAL_RESTART_FRAMES: i64 = 16384;

/// Copies the WAL back into the database without stopping writers. Under steady writes that
/// alone never lets the WAL start over (new frames always follow the copied ones) and the file
/// grows without end, slowing every commit: once it is large, a RESTART or TRUNCATE checkpoint
/// holds writers back for the few frames written meanwhile (they wait on a blocking thread, see
/// `append`) so the next commit starts the WAL from its beginning (and cuts it back to
/// `journal_size_limit`).
///
/// When SQLite starts the WAL over after a checkpoint that caught up, it rewinds it: the next
/// frames overwrite pages still in the page cache. Cut short instead (`journal_size_limit=0`,
/// as before 2026-12-07), every frame landed on a fresh page past the end of the file, which the
/// kernel must allocate, reserve a block for and zero in part (a frame is a page plus a 24-byte
/// header): 1.9 µs a frame against 0.7 rewound, measured on a virtual machine whose free memory
/// goes back to the host. A rewound page the kernel has already dropped is read back from disk
/// inside the commit; under load the WAL is rewritten every half second, so its pages stay
/// cached, and that commit is the storing task's, which no answer waits for but a group's.
/// With `full_sync` a WAL that keeps its size also spares each fsync a change of the file's size.
///
/// Once nothing was committed since the last call (`data_version`, which moves with every
/// other connection's commit; a frame count can come back to the same number after a rewind)
/// and every frame is copied back, the log is idle: the WAL is then cut to nothing, so that
/// old frames (a closed contract's wrapped key among them, see `Store::close_contract`) do not
/// stay in a rewound file (a reader still on the WAL holds the cut back: SQLite reports it as
/// busy, not as an error, and the next look tries again). `last`: the `data_version` of the
/// last call. Returns whether the log was found idle.
fn checkpoint(c: &Connection, last: &mut i64) -> rusqlite::Result<bool> {
    let version: i64 = c.query_row("PRAGMA data_version", [], |r| r.get(0))?;
    let (frames, copied): (i64, i64) = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })?;
    let idle = frames > 0 && frames == copied && version == *last;
    *last = version;
    if idle {
        c.busy_timeout(Duration::from_millis(50))?;
        let r = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        });
        c.busy_timeout(BUSY_WAIT)?;
        if r? != 0 {
            tracing::debug!("idle WAL not cut yet: a reader is still on it");
        }
        return Ok(true);
    }
    if frames > WAL_RESTART_FRAMES {
        // This holds writers back while it waits for readers: a long read (an audit
        // verify, a disclosure) must make it give up quickly, not stall the log for seconds.
        c.busy_timeout(Duration::from_millis(50))?;
        let r = c.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()));
        c.busy_timeout(BUSY_WAIT)?;
        r?;
    }
    Ok(false)
}

/// Once the log is idle, its connections hand back the page cache that appends filled (up to
/// `cache_size` each: new pages at the right edge of the table and its indexes, which no later
/// insert reads again), and the process returns it to the system, so that an idle gateway does
/// not keep the cache of its last burst resident. Skipped if a write holds the log meanwhile.
fn release_memory(log: &Mutex<Connection>, cp: &Connection) {
    if let Some(c) = try_conn(log) {
        let _ = c.execute_batch("PRAGMA shrink_memory;");
    }
    let _ = cp.execute_batch("PRAGMA shrink_memory;");
    crate::memory::release_free();
}

/// Bodies above this many bytes in one batch are written on a blocking thread: in place, the
/// write would hold an async worker for too long.
const IN_PLACE_BYTES: usize = 4 << 20;

fn body_bytes(records: &[LogRecord]) -> usize {
    records
        .iter()
        .map(|r| {
            r.request_body.as_ref().map_or(0, Vec::len) + r.output_body.as_ref().map_or(0, Vec::len)
        })
        .sum()
}

/// Whether `e` says another connection holds the database's lock (`SQLITE_BUSY`): not a fault,
/// a WAL restart holds writers back for a moment (see `checkpoint`). `SQLITE_LOCKED`, a conflict
/// within one connection, is not this.
pub(crate) fn is_held_elsewhere(e: &anyhow::Error) -> bool {
    sqlite_code(e) == Some(ErrorCode::DatabaseBusy)
}

/// Either kind of lock: an in-place write that meets one is retried where it may wait.
fn is_busy(e: &anyhow::Error) -> bool {
    matches!(
        sqlite_code(e),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

fn sqlite_code(e: &anyhow::Error) -> Option<ErrorCode> {
    match e.downcast_ref::<rusqlite::Error>() {
        Some(rusqlite::Error::SqliteFailure(f, _)) => Some(f.code),
        _ => None,
    }
}

/// The checkpoint thread: every half second, until the log's connection goes, syncs the body
/// files and then copies the WAL back.
fn checkpoint_loop(
    alive: &std::sync::Weak<Mutex<Connection>>,
    cp: &Connection,
    pending: &BodyFiles,
) {
    let mut version = 0;
    // Whether this idle spell's memory was released already: once a spell, not every look.
    let mut released = false;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        if alive.strong_count() == 0 {
            return;
        }
        // Rows become durable at a checkpoint; the bodies they point to must be first.
        if let Err(e) = pending.sync_pending() {
            tracing::warn!(error = %format!("{e:#}"), "cannot sync log body files; WAL checkpoint postponed");
            continue;
        }
        match checkpoint(cp, &mut version) {
            Ok(true) if !released => {
                if let Some(log) = alive.upgrade() {
                    release_memory(&log, cp);
                }
                released = true;
            }
            Ok(true) => {}
            Ok(false) => released = false,
            Err(e) => tracing::debug!(error = %e, "WAL checkpoint skipped"),
        }
    }
}

/// The log's connection if no one else holds it. A panic mid-write left no transaction open
/// (rusqlite rolls back on drop), so a poisoned lock is taken as it is.
fn try_conn(conn: &Mutex<Connection>) -> Option<std::sync::MutexGuard<'_, Connection>> {
    match conn.try_lock() {
        Ok(c) => Some(c),
        Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

impl SqliteLog {
    /// Opens the log's connection and starts the checkpoint thread for the file at `path`.
    pub(crate) fn start(path: &str, full_sync: bool) -> anyhow::Result<Self> {
        let conn = open(path, full_sync)?;
        // In place, a write must never wait for a lock: it fails at once and is retried on a
        // blocking thread that may wait.
        conn.busy_timeout(Duration::ZERO)?;
        let conn = Arc::new(Mutex::new(conn));
        let alive = Arc::downgrade(&conn);
        let cp = open(path, full_sync)?;
        let bodies = BodyFiles::beside(path);
        let pending = bodies.clone();
        std::thread::Builder::new()
            .name("mamori-log-checkpoint".into())
            .spawn(move || checkpoint_loop(&alive, &cp, &pending))?;
        Ok(Self {
            conn,
            full_sync,
            bodies,
            expiring: Arc::default(),
        })
    }

    /// `wait`: whether to wait (up to `BUSY_WAIT`) for another connection's write lock, or
    /// fail at once.
    pub(crate) async fn append(
        &self,
        mut records: Vec<LogRecord>,
        link: Link,
        wait: bool,
    ) -> (Vec<LogRecord>, anyhow::Result<(i64, String)>) {
        if !self.full_sync && body_bytes(&records) <= IN_PLACE_BYTES {
            if let Some(mut c) = try_conn(&self.conn) {
                match write(&mut c, &self.bodies, false, &mut records, link) {
                    Err(e) if is_busy(&e) => {}
                    r => return (records, r),
                }
            }
        }
        let conn = Arc::clone(&self.conn);
        let (bodies, sync) = (self.bodies.clone(), self.full_sync);
        let blocking = tokio::task::spawn_blocking(move || {
            // Not waiting means for the connection too: another write of this process (the
            // upkeep's recovery) may hold it while it waits for another process's lock.
            let mut c = if wait {
                conn.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            } else if let Some(c) = try_conn(&conn) {
                c
            } else {
                let busy = rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    Some("the log connection is in use".into()),
                );
                return (records, Err(busy.into()));
            };
            let r = match c.busy_timeout(if wait { BUSY_WAIT } else { Duration::ZERO }) {
                Ok(()) => write(&mut c, &bodies, sync, &mut records, link),
                Err(e) => Err(e.into()),
            };
            let _ = c.busy_timeout(Duration::ZERO);
            (records, r)
        });
        match blocking.await {
            Ok(done) => done,
            Err(e) => (
                Vec::new(),
                Err(anyhow::anyhow!("the log write failed: {e}")),
            ),
        }
    }
}

/// The insert with the backend's own `body_ref` column, built once.
fn insert_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let marks: Vec<String> = (1..=COLUMNS.len() + 1).map(|i| format!("?{i}")).collect();
        format!(
            "INSERT INTO log_records ({}, body_ref) VALUES ({})",
            COLUMNS.join(", "),
            marks.join(", ")
        )
    })
}

fn write(
    conn: &mut Connection,
    bodies: &BodyFiles,
    sync: bool,
    records: &mut [LogRecord],
    link: Link,
) -> anyhow::Result<(i64, String)> {
    let now = super::now_text();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Under the write lock: no other writer appends to a body file meanwhile.
    let refs = bodies.append(records, sync)?;
    {
        let (mut seq, mut prev): (i64, String) = tx
            .prepare_cached(
                "UPDATE chain_head SET updated_at = ?1 WHERE id = 1 RETURNING seq, record_hash",
            )?
            .query_row([&now], |r| Ok((r.get(0)?, r.get(1)?)))?;
        {
            let mut ins = tx.prepare_cached(insert_sql())?;
            for (r, body_ref) in records.iter_mut().zip(&refs) {
                let inline = body_ref.is_none();
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
                    r.request_body.as_ref().filter(|_| inline),
                    r.output_body.as_ref().filter(|_| inline),
                    r.request_sha256,
                    r.output_sha256,
                    r.bodies_deleted,
                    r.prev_hash,
                    r.record_hash,
                    body_ref,
                ])?;
            }
        }
        tx.prepare_cached("UPDATE chain_head SET seq = ?1, record_hash = ?2 WHERE id = 1")?
            .execute(params![seq, prev])?;
        tx.commit()?;
        Ok((seq, prev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_len(db: &std::path::Path) -> u64 {
        std::fs::metadata(db.with_extension("db-wal")).map_or(0, |m| m.len())
    }

    /// A log database in a temporary folder, its table holding `rows` rows of 1 KiB.
    fn log_with_rows(rows: usize, full_sync: bool) -> (tempfile::TempDir, String, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db").to_str().unwrap().to_string();
        let mut c = open(&path, full_sync).unwrap();
        c.execute_batch("CREATE TABLE t (v BLOB)").unwrap();
        fill(&mut c, rows);
        (dir, path, c)
    }

    /// Writes `n` rows of 1 KiB in one transaction.
    fn fill(c: &mut Connection, n: usize) {
        let tx = c.transaction().unwrap();
        for _ in 0..n {
            tx.execute("INSERT INTO t (v) VALUES (?1)", [vec![7u8; 1024]])
                .unwrap();
        }
        tx.commit().unwrap();
    }

    /// Once a checkpoint has caught up, SQLite starts the WAL over at the next commit: the file
    /// keeps its size (under `journal_size_limit`), so new frames rewrite cached pages instead
    /// of taking fresh ones past the end of the file.
    #[test]
    fn the_wal_is_rewound_when_it_starts_over() {
        for full_sync in [false, true] {
            let (_dir, path, mut c) = log_with_rows(2000, full_sync);
            let (path, db) = (path.as_str(), std::path::Path::new(&path));
            let grown = wal_len(db);
            assert!(grown > 2_000_000, "the WAL did not grow: {grown}");
            let cp = open(path, full_sync).unwrap();
            let mut last = 0;
            checkpoint(&cp, &mut last).unwrap();
            fill(&mut c, 1);
            assert_eq!(
                wal_len(db),
                grown,
                "full_sync {full_sync}: the WAL was not rewound"
            );
            // Commits between looks, one frame each: never idle, though a rewound WAL's frame
            // count comes back to the same number.
            for _ in 0..5 {
                assert!(
                    !checkpoint(&cp, &mut last).unwrap(),
                    "a log in use is not idle"
                );
                assert_eq!(
                    wal_len(db),
                    grown,
                    "full_sync {full_sync}: a WAL in use was cut"
                );
                fill(&mut c, 1);
            }
            checkpoint(&cp, &mut last).unwrap();
            assert_eq!(
                wal_len(db),
                grown,
                "the last commit does not make the log idle"
            );
            // Nothing committed since: idle, so the WAL is cut to nothing.
            assert!(
                checkpoint(&cp, &mut last).unwrap(),
                "an unchanged log is idle"
            );
            assert_eq!(
                wal_len(db),
                0,
                "full_sync {full_sync}: the idle WAL was not cut"
            );
        }
    }

    /// A reader still on the WAL when the log turns idle holds the cut back; the log is idle
    /// all the same, and the WAL is cut at the first look after the reader is gone.
    #[test]
    fn a_reader_on_the_wal_holds_back_its_cut_until_it_ends() {
        let (_dir, path, _c) = log_with_rows(100, false);
        let (path, db) = (path.as_str(), std::path::Path::new(&path));
        let reader = open(path, false).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let n: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 100);
        let cp = open(path, false).unwrap();
        let mut last = 0;
        assert!(
            !checkpoint(&cp, &mut last).unwrap(),
            "the first look only records the version"
        );
        assert!(
            checkpoint(&cp, &mut last).unwrap(),
            "nothing committed since: idle"
        );
        assert!(wal_len(db) > 0, "the WAL was cut under a reader");
        reader.execute_batch("COMMIT").unwrap();
        assert!(checkpoint(&cp, &mut last).unwrap());
        assert_eq!(wal_len(db), 0, "the WAL was not cut once the reader ended");
    }

    fn cache_used(c: &Connection) -> i32 {
        let (mut now, mut high) = (0, 0);
        // SAFETY: the handle stays valid while `c` is borrowed; sqlite3_db_status only reads it.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_db_status(
                c.handle(),
                rusqlite::ffi::SQLITE_DBSTATUS_CACHE_USED,
                &mut now,
                &mut high,
                0,
            )
        };
        assert_eq!(rc, rusqlite::ffi::SQLITE_OK);
        now
    }

    /// What the appends filled the log connection's page cache with is handed back once the
    /// log is idle, not kept resident until the next burst.
    #[test]
    fn an_idle_log_hands_back_its_page_cache() {
        let (_dir, path, c) = log_with_rows(2000, false);
        let path = path.as_str();
        let filled = cache_used(&c);
        assert!(
            filled > 512 * 1024,
            "the appends filled only {filled} bytes of cache"
        );
        let log = Mutex::new(c);
        let cp = open(path, false).unwrap();
        release_memory(&log, &cp);
        let c = log.lock().unwrap();
        let left = cache_used(&c);
        assert!(
            left < filled / 8,
            "{left} of {filled} bytes of cache still held"
        );
        // The connection still works, reading back what it handed over.
        let n: i64 = c
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2000);
    }
}
