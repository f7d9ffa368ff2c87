//! The output log: the only place that writes log records. The writer seals bodies with the
//! contract's data key, links records into the hash chain, group-commits them (one transaction
//! for whatever is queued, so durability costs little under load) and signs checkpoints. If a
//! write fails, the writer is marked unavailable and the gateway refuses new requests
//! (`audit_log_unavailable`) until a probe shows the log table writable again.
pub mod chain;
pub mod checkpoint;
pub mod crypto;
pub mod journal;
pub mod verify;

use crate::config::AuditConfig;
use crate::store::{LogRecord, Store};
use anyhow::Context;
use crypto::{Key, MasterKeys};
use ed25519_dalek::SigningKey;
use journal::Journal;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Semaphore};

const MAX_BATCH: usize = 512;
/// How many times the writer lets ready requests run before committing, while others are in
/// flight: each round lets more records join the commit, and the bound keeps a record from
/// waiting behind a long queue.
const MAX_YIELDS: usize = 3;
/// Older versions heartbeat every 10 s; one unseen for this long has stopped.
const LEGACY_STALE: Duration = Duration::from_secs(30);
const QUEUE: usize = 8192;
/// Records acknowledged but not yet in the database, at most (see `run`).
const MAX_UNSTORED: usize = 8192;

/// The keys the log needs, loaded from outside the database.
#[derive(Debug, Clone)]
pub struct AuditKeys {
    pub master: MasterKeys,
    pub signing: SigningKey,
}

/// Loads (and on the embedded default's first run, creates) the master and signing keys.
/// `MAMORI_MASTER_KEY` (base64 of 32 bytes) takes the place of the master key file.
pub fn load_keys(cfg: &AuditConfig) -> anyhow::Result<AuditKeys> {
    let current = match std::env::var("MAMORI_MASTER_KEY") {
        Ok(v) if !v.trim().is_empty() => Key::from_base64(&v).context("MAMORI_MASTER_KEY")?,
        _ if cfg.master_key_file.exists() => crypto::read_key_file(&cfg.master_key_file)?,
        _ if cfg.create_keys => {
            let k = crypto::create_key_file(&cfg.master_key_file)?;
            eprintln!(
                "mamori: created the master key {} (mode 0600). It decrypts the log: back it up now, somewhere other than this machine. Without it the logged bodies cannot be read.",
                cfg.master_key_file.display()
            );
            k
        }
        _ => anyhow::bail!(
            "no master key: set MAMORI_MASTER_KEY (32 random bytes in base64) or create {} with `mamori audit new-key {}`; every instance sharing this database needs the same key",
            cfg.master_key_file.display(),
            cfg.master_key_file.display()
        ),
    };
    let previous = cfg
        .previous_master_key_files
        .iter()
        .map(|p| crypto::read_key_file(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (signing, created) =
        checkpoint::load_or_create_signing_key(&cfg.signing_key_file, cfg.create_keys)
            .with_context(|| {
                format!(
                    "no checkpoint signing key: create {} with `mamori audit new-key {}`",
                    cfg.signing_key_file.display(),
                    cfg.signing_key_file.display()
                )
            })?;
    if created {
        eprintln!(
            "mamori: created the checkpoint signing key {} (mode 0600). Give auditors its public key (`mamori audit public-key`) and the checkpoint file {}.",
            cfg.signing_key_file.display(),
            cfg.checkpoint_file.display()
        );
    }
    Ok(AuditKeys {
        master: MasterKeys { current, previous },
        signing,
    })
}

use crate::digest::sha256_hex;

fn aad(request_id: &str, part: &str) -> Vec<u8> {
    format!("{request_id}/{part}").into_bytes()
}

/// Per-contract data keys: unwrapped once, kept in memory; created on first use.
#[derive(Debug)]
pub struct DataKeys {
    store: Store,
    master: MasterKeys,
    cache: Mutex<HashMap<String, Option<Arc<Key>>>>,
}

impl DataKeys {
    pub fn new(store: Store, master: MasterKeys) -> Self {
        Self {
            store,
            master,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, contract: &str) -> Option<Option<Arc<Key>>> {
        self.cache
            .lock()
            .ok()
            .and_then(|c| c.get(contract).cloned())
    }

    /// The contract's data key; `None` if it was destroyed (the contract was closed).
    pub async fn get(&self, contract: &str, create: bool) -> anyhow::Result<Option<Arc<Key>>> {
        if let Some(k) = self.cached(contract) {
            return Ok(k);
        }
        // Boxed: the database queries' futures are kilobytes, and every request's future would
        // carry (and copy on every move) that room for this rare path.
        Box::pin(self.load(contract, create)).await
    }

    async fn load(&self, contract: &str, create: bool) -> anyhow::Result<Option<Arc<Key>>> {
        let mut row = self.store.data_key(contract).await?;
        if row.is_none() && create {
            let fresh = Key::random();
            let wrapped = self.master.current.wrap(&fresh, contract)?;
            self.store
                .insert_data_key(contract, &self.master.current.id(), &wrapped)
                .await?;
            // Another instance may have created one first: use whichever is stored.
            row = self.store.data_key(contract).await?;
        }
        let key = match row {
            None => return Ok(None),
            Some(r) if r.destroyed_at.is_some() => None,
            Some(r) => {
                let id = r.master_key_id.unwrap_or_default();
                let master = self.master.by_id(&id).with_context(|| {
                    format!("contract `{contract}`'s data key is wrapped by master key {id}, but this process has master key {} (MAMORI_MASTER_KEY or audit.master_key_file); use the key this database was written with, or during a rotation list the old key in audit.previous_master_key_files", self.master.current.id())
                })?;
                let wrapped = r.wrapped.unwrap_or_default();
                let key = master.unwrap_key(&wrapped, contract).with_context(|| {
                    format!("master key {id} does not open contract `{contract}`'s data key: the stored key was altered or wrapped for another contract")
                })?;
                Some(Arc::new(key))
            }
        };
        if let Ok(mut c) = self.cache.lock() {
            c.insert(contract.to_string(), key.clone());
        }
        Ok(key)
    }

    /// Unwraps every live data key, so that a master key that does not match the database
    /// stops the gateway at startup instead of failing each request after it was forwarded.
    pub async fn load_all(&self) -> anyhow::Result<usize> {
        let mut n = 0;
        for row in self.store.data_keys().await? {
            if row.destroyed_at.is_none() {
                self.load(&row.contract_id, false).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Forgets a contract's key (after it was destroyed elsewhere).
    pub fn forget(&self, contract: &str) {
        if let Ok(mut c) = self.cache.lock() {
            c.remove(contract);
        }
    }

    /// Decrypts a stored body of `r` (`part` is `request` or `output`).
    pub async fn open_body(&self, r: &LogRecord, part: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let sealed = match part {
            "request" => &r.request_body,
            _ => &r.output_body,
        };
        let (Some(sealed), Some(contract)) = (sealed, &r.contract_id) else {
            return Ok(None);
        };
        let Some(key) = self.get(contract, false).await? else {
            return Ok(None);
        };
        key.open(sealed, &aad(&r.request_id, part)).map(Some)
    }

    /// Seals the record's bodies in place and fills in their hashes.
    async fn seal(&self, r: &mut LogRecord) -> anyhow::Result<()> {
        self.seal_from(r, Plain::default()).await
    }

    /// Seals the record's bodies, or those handed over beside it, into the record.
    async fn seal_from(&self, r: &mut LogRecord, plain: Plain) -> anyhow::Result<()> {
        if r.sealed {
            return Ok(());
        }
        r.sealed = true;
        let (own_request, own_output) = (r.request_body.take(), r.output_body.take());
        let request = plain.request.as_deref().or(own_request.as_deref());
        let output = plain.output.as_deref().or(own_output.as_deref());
        // The proxy hashes the bytes as it handles them; hash here only what it did not.
        if r.request_sha256.is_none() {
            r.request_sha256 = request.map(sha256_hex);
        }
        if r.output_sha256.is_none() {
            r.output_sha256 = output.map(sha256_hex);
        }
        if request.is_none() && output.is_none() {
            return Ok(());
        }
        let key = match &r.contract_id {
            Some(c) => self.get(c, true).await?,
            None => None,
        };
        match key {
            Some(k) => {
                r.request_body = request
                    .map(|b| k.seal(b, &aad(&r.request_id, "request")))
                    .transpose()?;
                r.output_body = output
                    .map(|b| k.seal(b, &aad(&r.request_id, "output")))
                    .transpose()?;
            }
            None => {
                // No key to seal with (contract closed, or no contract): keep hashes only.
                r.bodies_deleted = Some("shredded".into());
            }
        }
        Ok(())
    }
}

/// Plaintext bodies handed to the log beside their record, so that the proxy's buffers are
/// sealed where they are instead of being copied into it first.
#[derive(Default)]
pub struct Plain {
    pub request: Option<bytes::Bytes>,
    pub output: Option<bytes::Bytes>,
}

impl Plain {
    /// Moves the bodies into the record (for records sealed later by the writer).
    pub fn into_record(self, r: &mut LogRecord) {
        if let Some(b) = self.request {
            r.request_body = Some(b.to_vec());
        }
        if let Some(b) = self.output {
            r.output_body = Some(b.to_vec());
        }
    }
}

/// Who waits for a record, and for what.
enum Ack {
    /// Nobody (refusals).
    None,
    /// The record's answer is about to be delivered: its committed line in the journal is
    /// enough (it survives the process being killed; recovery stores it).
    Durable(oneshot::Sender<bool>),
    /// The record must be in the database (administration, recovery, tests).
    Stored(oneshot::Sender<bool>),
    /// Durable and already acknowledged; only its insert is left.
    Given,
    /// Like `Durable`, but committed by the database insert itself (see
    /// [`DATABASE_COMMITS_FROM`]); if the insert fails, by the journal after all.
    Database(oneshot::Sender<bool>),
}

/// On SQLite, a group of at least this many answers is committed by its database insert
/// instead of the journal, when the storing task keeps up (see [`StoreProgress::keeps_up`]) and
/// the log is healthy; the insert never waits for another writer's lock (if it cannot be made
/// at once, the journal commits them). The insert is as durable as the journal's write (both
/// reach the page cache, or the disk with `fsync_each_commit`), and under load one insert for
/// the group costs less than writing every sealed record twice, to the journal and then to the
/// database.
/// A lone answer still goes to the journal: its `write` is quicker than a commit, and its
/// insert waits to be batched with others. PostgreSQL keeps the journal: a commit there is a
/// round trip, perhaps behind another instance's lock.
const DATABASE_COMMITS_FROM: usize = 4;

/// The tag of the journal segments that belong to the database at `database_url` (hashed,
/// password left out).
pub fn journal_tag(database_url: &str) -> String {
    let tag = sha256_hex(crate::config::redact_url(database_url).as_bytes());
    tag.get(..12).unwrap_or(&tag).to_string()
}

enum Job {
    /// A record to write, and who waits for it.
    Record(Box<LogRecord>, Ack),
    /// Store every record acknowledged so far (`LogWriter::flush`).
    Flush(oneshot::Sender<bool>),
}

/// What the journaling half sees of the storing half, to tell whether answers may wait for
/// their insert: a few milliseconds behind a batch being stored, never behind a stall.
struct StoreProgress {
    epoch: Instant,
    /// When the batch being stored began, in microseconds since `epoch` plus one; 0 when none is.
    storing_since: AtomicU64,
    /// Acknowledged records whose insert failed wait for their retry.
    retrying: AtomicBool,
}

/// A batch stored for longer than this is stalled (another writer's lock, a slow disk).
const STORE_STALL: Duration = Duration::from_millis(10);

impl StoreProgress {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            storing_since: AtomicU64::new(0),
            retrying: AtomicBool::new(false),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX - 1) + 1
    }

    fn begin(&self) {
        self.storing_since.store(self.now(), Ordering::Release);
    }

    fn end(&self, retrying: bool) {
        self.retrying.store(retrying, Ordering::Release);
        self.storing_since.store(0, Ordering::Release);
    }

    /// Whether an insert queued now would be made within a batch or so: no retry pending, no
    /// batch stored for longer than [`STORE_STALL`], at most one batch's worth waiting.
    fn keeps_up(&self, awaiting: usize) -> bool {
        let since = self.storing_since.load(Ordering::Acquire);
        let stall = u64::try_from(STORE_STALL.as_micros()).unwrap_or(u64::MAX);
        awaiting <= MAX_BATCH
            && !self.retrying.load(Ordering::Acquire)
            && (since == 0 || self.now().saturating_sub(since) < stall)
    }
}

/// How long records nobody waits for may wait to be stored with others.
const STORE_DELAY: Duration = Duration::from_millis(5);
/// How often records already acknowledged whose storing failed are retried.
const RETRY_EVERY: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct LogWriter {
    tx: mpsc::Sender<Job>,
    healthy: Arc<AtomicBool>,
    pub data_keys: Arc<DataKeys>,
    journal: Arc<Journal>,
    journal_sync: bool,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("healthy", &self.is_healthy())
            .field("journal", &self.journal)
            .finish()
    }
}

struct Checkpointing {
    signing: SigningKey,
    every: u64,
    interval: Duration,
    file: std::path::PathBuf,
    since: u64,
    last: Instant,
}

impl LogWriter {
    /// Starts the writer; opens this instance's request journal in `cfg.journal_dir`, its
    /// segments tagged with `database_url` (hashed, password left out).
    pub fn spawn(
        store: Store,
        keys: AuditKeys,
        cfg: &AuditConfig,
        database_url: &str,
    ) -> anyhow::Result<Self> {
        let instance = uuid::Uuid::now_v7().simple().to_string();
        let journal = Arc::new(Journal::open(
            &cfg.journal_dir,
            &journal_tag(database_url),
            &instance,
            cfg.fsync_each_commit,
        )?);
        let (tx, rx) = mpsc::channel(QUEUE);
        let healthy = Arc::new(AtomicBool::new(true));
        let data_keys = Arc::new(DataKeys::new(store.clone(), keys.master));
        let cp = Checkpointing {
            signing: keys.signing,
            every: cfg.checkpoint_every_records,
            interval: cfg.checkpoint_interval,
            file: cfg.checkpoint_file.clone(),
            since: 0,
            last: Instant::now(),
        };
        tokio::spawn(run(
            store.clone(),
            Arc::clone(&data_keys),
            Arc::clone(&journal),
            cfg.fsync_each_commit,
            rx,
            Arc::clone(&healthy),
            cp,
        ));
        tokio::spawn(probe(store, Arc::clone(&healthy)));
        Ok(Self {
            tx,
            healthy,
            data_keys,
            journal,
            journal_sync: cfg.fsync_each_commit,
        })
    }

    /// Whether records are being written; the gateway forwards nothing while this is false.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Writes a record and waits until it is in the database. `false` if it could not be.
    pub fn commit(&self, record: LogRecord) -> impl std::future::Future<Output = bool> + '_ {
        self.send(Box::new(record), Plain::default(), true)
    }

    /// Writes the record of an answer, with the plaintext bodies beside it, and waits until it
    /// is committed: durable in this instance's journal (or, for a group on SQLite, in the
    /// database: see [`DATABASE_COMMITS_FROM`]), whole and sealed, so that a killed process
    /// loses nothing. It reaches the database right after (and on a database error
    /// is retried, or stored by recovery). `false` if it could not be committed.
    /// (Not an `async fn` and the record boxed: every layer of future would otherwise carry
    /// its own copy of the record, and the request's future is moved whole.)
    pub fn commit_answer(
        &self,
        record: Box<LogRecord>,
        plain: Plain,
    ) -> impl std::future::Future<Output = bool> + '_ {
        self.send(record, plain, false)
    }

    /// Bodies are sealed here, on the caller's task, so the single writer only journals,
    /// links and inserts.
    async fn send(&self, mut record: Box<LogRecord>, plain: Plain, stored: bool) -> bool {
        if let Err(e) = self.data_keys.seal_from(&mut record, plain).await {
            tracing::error!(request_id = %record.request_id, error = %format!("{e:#}"), "cannot seal log record");
            return false;
        }
        let (done, wait) = oneshot::channel();
        let ack = if stored {
            Ack::Stored(done)
        } else {
            Ack::Durable(done)
        };
        if self.tx.send(Job::Record(record, ack)).await.is_err() {
            return false;
        }
        wait.await.unwrap_or(false)
    }

    /// Waits until every record committed so far is in the database, as readers of the log
    /// see it (records are stored within milliseconds of their commit anyway). `false` if some
    /// could not be stored yet.
    pub async fn flush(&self) -> bool {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Job::Flush(done)).await.is_err() {
            return false;
        }
        wait.await.unwrap_or(false)
    }

    /// Notes a request in the journal before it is forwarded, so that even a crash leaves a
    /// record of it. `false`: do not forward. `busy`: other requests are being handled, whose
    /// notes may join this one's write.
    pub async fn begin(&self, record: &LogRecord, busy: bool) -> bool {
        let noted = if self.journal_sync {
            // An fsync takes milliseconds: not on an async worker.
            let journal = Arc::clone(&self.journal);
            let id = record.request_id.clone();
            match serde_json::to_string(record) {
                Ok(line) => tokio::task::spawn_blocking(move || journal.note_line(&id, line))
                    .await
                    .unwrap_or_else(|e| Err(anyhow::anyhow!("journal task failed: {e}"))),
                Err(e) => Err(e.into()),
            }
        } else {
            // Under load, let the other requests ready to go queue their notes too, so that
            // one write covers them all; alone, write at once.
            match self.journal.queue_note(record) {
                Ok(ticket) => {
                    if busy {
                        tokio::task::yield_now().await;
                    }
                    self.journal.write_notes(ticket)
                }
                Err(e) => Err(e),
            }
        };
        match noted {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(request_id = %record.request_id, journal = %self.journal.dir().display(), error = %format!("{e:#}"), "cannot write the request journal; not forwarding");
                false
            }
        }
    }

    /// Queues a record without waiting (refusals, where nothing was delivered). If the queue is
    /// full — a flood of refused requests — the record is dropped and counted, but the log is not
    /// declared down: refusals must not be a way to stop the gateway.
    pub fn submit(&self, record: Box<LogRecord>) {
        match self.tx.try_send(Job::Record(record, Ack::None)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("mamori_refusal_records_dropped_total").increment(1);
                tracing::warn!("log queue full; a refusal record was dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("log writer stopped; refusing requests");
                self.healthy.store(false, Ordering::Release);
            }
        }
    }
}

/// What the journaling loop hands to the storing loop, in commit order.
enum ToStore {
    /// Records already committed to the journal, nobody waits for, or whose insert is to be
    /// their commit, with who waits.
    Records(Vec<LogRecord>, Vec<Ack>),
    Flush(oneshot::Sender<bool>),
}

/// The writer's first half: seals records, commits the answers' records to the journal and
/// acknowledges them, then hands everything to [`store_loop`]. Answers committed this way never
/// wait for the database: a slow insert (a large batch, a busy PostgreSQL) delays only the
/// storing. On SQLite a group of [`DATABASE_COMMITS_FROM`] or more is left to its insert.
async fn run(
    store: Store,
    keys: Arc<DataKeys>,
    journal: Arc<Journal>,
    journal_sync: bool,
    mut rx: mpsc::Receiver<Job>,
    healthy: Arc<AtomicBool>,
    cp: Checkpointing,
) {
    let (to_store, store_rx) = mpsc::channel(QUEUE);
    // Room for records handed over and not yet stored. When a slow or locked database has let
    // this many pile up, answers wait for the database again rather than memory growing.
    let room = Arc::new(Semaphore::new(MAX_UNSTORED));
    let progress = Arc::new(StoreProgress::new());
    let sqlite = store.dialect() == crate::store::Dialect::Sqlite;
    let storing = tokio::spawn(store_loop(
        store,
        Arc::clone(&journal),
        journal_sync,
        store_rx,
        Arc::clone(&healthy),
        cp,
        (Arc::clone(&room), Arc::clone(&progress)),
    ));
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    'jobs: while let Some(first) = rx.recv().await {
        batch.push(first);
        // Woken by the first record, this task would run at once (the scheduler favours the
        // task just woken) and commit it alone. When other requests are in flight, letting
        // every other ready task run first lets their records join this commit: without it,
        // batches under load were one record each. Alone, it commits at once.
        let mut yields = 0;
        loop {
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
            if yields == MAX_YIELDS
                || batch.len() >= MAX_BATCH
                || journal.in_flight() <= batch.len() + awaiting_store(&room)
            {
                break;
            }
            yields += 1;
            tokio::task::yield_now().await;
        }
        metrics::gauge!("mamori_log_queue_depth").set(rx.len() as f64);
        let mut fresh = Vec::with_capacity(batch.len());
        let mut fresh_acks = Vec::with_capacity(batch.len());
        let mut flushes = Vec::new();
        for job in batch.drain(..) {
            let (mut r, ack) = match job {
                Job::Record(r, ack) => (r, ack),
                Job::Flush(done) => {
                    flushes.push(done);
                    continue;
                }
            };
            // Records from `submit` (refusals) are usually bodiless; seal any that are not yet.
            match keys.seal(&mut r).await {
                Ok(()) => {
                    fresh.push(*r);
                    fresh_acks.push(ack);
                }
                Err(e) => {
                    tracing::error!(request_id = %r.request_id, error = %format!("{e:#}"), "cannot seal log record");
                    if let Ack::Durable(done) | Ack::Stored(done) | Ack::Database(done) = ack {
                        let _ = done.send(false);
                    }
                }
            }
        }
        let durable = fresh_acks
            .iter()
            .filter(|a| matches!(a, Ack::Durable(_)))
            .count();
        // Only into a healthy store that keeps up: behind one that waits for a lock or
        // retries, the answers would wait too. Behind a batch in progress they wait a few
        // milliseconds, and their bodies are written once instead of twice (journal, then
        // database), which under load is a tenth of the gateway's work.
        if sqlite
            && durable >= DATABASE_COMMITS_FROM
            && progress.keeps_up(awaiting_store(&room))
            && healthy.load(Ordering::Acquire)
        {
            for ack in &mut fresh_acks {
                *ack = match std::mem::replace(ack, Ack::None) {
                    Ack::Durable(done) => Ack::Database(done),
                    other => other,
                };
            }
        } else if commit_to_journal(&journal, journal_sync, &fresh, &mut fresh_acks).await {
            // Let the answers just acknowledged go out before this task goes on.
            tokio::task::yield_now().await;
        }
        // Answers whose journal commit failed are still `Durable`: they wait for the database,
        // as before there was a journal.
        if !fresh.is_empty() {
            // A batch is at most MAX_BATCH records, well below the room there is.
            let n = u32::try_from(fresh.len()).unwrap_or(u32::MAX);
            match room.acquire_many(n).await {
                Ok(taken) => taken.forget(),
                Err(_) => break 'jobs,
            }
            metrics::gauge!("mamori_log_unstored_records").set(awaiting_store(&room) as f64);
            if to_store
                .send(ToStore::Records(fresh, fresh_acks))
                .await
                .is_err()
            {
                break 'jobs;
            }
        }
        for done in flushes {
            if to_store.send(ToStore::Flush(done)).await.is_err() {
                break 'jobs;
            }
        }
    }
    // What the storing loop cannot store before it ends is in the journal: recovery stores it.
    drop(to_store);
    if let Err(e) = storing.await {
        tracing::error!(error = %e, "log storing task failed; recovery will store what the journal holds");
    }
}

/// Records acknowledged and handed to the storing task, not yet in the database.
fn awaiting_store(room: &Semaphore) -> usize {
    MAX_UNSTORED.saturating_sub(room.available_permits())
}

/// The writer's second half: links records into the chain and inserts them, in the order
/// they were committed, in batches of whatever arrived within [`STORE_DELAY`] (at once if
/// someone waits for the database). Records whose insert failed are retried; if a whole batch
/// fails, the log is declared unavailable until the probe sees the database again.
async fn store_loop(
    store: Store,
    journal: Arc<Journal>,
    journal_sync: bool,
    mut rx: mpsc::Receiver<ToStore>,
    healthy: Arc<AtomicBool>,
    mut cp: Checkpointing,
    (room, progress): (Arc<Semaphore>, Arc<StoreProgress>),
) {
    // Not yet in the database, with who waits for each, in commit order.
    let mut records: Vec<LogRecord> = Vec::new();
    let mut acks: Vec<Ack> = Vec::new();
    let mut flushes: Vec<oneshot::Sender<bool>> = Vec::new();
    let mut due: Option<tokio::time::Instant> = None;
    let mut closing = false;
    // Since the last write: records received (retried ones not counted), and whether anyone
    // waits for the database.
    let mut fresh = 0;
    let mut waited_for = false;
    loop {
        // `None`: the delay is up; `Some(None)`: the journaling loop has ended.
        let got = match due {
            None => Some(rx.recv().await),
            Some(due) => tokio::time::timeout_at(due, rx.recv()).await.ok(),
        };
        let mut next = match got {
            Some(Some(m)) => Some(m),
            Some(None) => {
                closing = true;
                None
            }
            None => None,
        };
        while let Some(m) = next.take() {
            match m {
                ToStore::Records(mut r, mut a) => {
                    fresh += r.len();
                    waited_for |= a
                        .iter()
                        .any(|a| matches!(a, Ack::Durable(_) | Ack::Stored(_) | Ack::Database(_)));
                    records.append(&mut r);
                    acks.append(&mut a);
                }
                ToStore::Flush(done) => {
                    waited_for = true;
                    flushes.push(done);
                }
            }
            if fresh < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        // Records nobody waits for can wait to be stored with more of their kind: a larger
        // transaction costs less per record. Retried ones wait for their retry time.
        let now = tokio::time::Instant::now();
        if !waited_for && !closing && fresh < MAX_BATCH && due.is_none_or(|d| d > now) {
            if !records.is_empty() {
                due = due.or(Some(now + STORE_DELAY));
            }
            continue;
        }
        due = None;
        fresh = 0;
        waited_for = false;
        // At most a batch's worth at once (after a stall or an outage, thousands may wait, and a
        // small-bodied batch is written in place, on the runtime's worker); the rest follows at
        // once, and flushes are answered when everything before them is stored.
        let (rest, mut rest_acks) = if records.len() > MAX_BATCH {
            (records.split_off(MAX_BATCH), acks.split_off(MAX_BATCH))
        } else {
            (Vec::new(), Vec::new())
        };
        // Answers left for a later batch would wait behind this one, stall or not: commit
        // them by the journal now.
        if rest_acks.iter().any(|a| matches!(a, Ack::Database(_))) {
            journal_instead(&journal, journal_sync, &rest, &mut rest_acks).await;
        }
        let n = records.len();
        progress.begin();
        let batch = store_batch(
            &store,
            (&journal, journal_sync),
            &healthy,
            &mut cp,
            std::mem::take(&mut records),
            std::mem::take(&mut acks),
        );
        tokio::pin!(batch);
        let stall = tokio::time::sleep(STORE_STALL);
        tokio::pin!(stall);
        let mut stalled = false;
        // What arrives while the batch stalls: answers queued for their insert were promised
        // no wait behind a stall, so they are committed to the journal now, and everything is
        // stored with the next batch, after this one's records (commit order).
        let mut later = (Vec::new(), Vec::new(), Vec::new());
        let unstored = loop {
            tokio::select! {
                biased;
                unstored = &mut batch => break unstored,
                () = &mut stall, if !stalled => stalled = true,
                m = rx.recv(), if stalled && !closing => match m {
                    Some(ToStore::Records(mut r, mut a)) => {
                        journal_instead(&journal, journal_sync, &r, &mut a).await;
                        fresh += r.len();
                        waited_for |= a
                            .iter()
                            .any(|a| matches!(a, Ack::Durable(_) | Ack::Stored(_)));
                        later.0.append(&mut r);
                        later.1.append(&mut a);
                    }
                    Some(ToStore::Flush(done)) => {
                        waited_for = true;
                        later.2.push(done);
                    }
                    None => closing = true,
                },
            }
        };
        let left = unstored.len();
        progress.end(left > 0);
        room.add_permits(n - left);
        metrics::gauge!("mamori_log_unstored_records").set(awaiting_store(&room) as f64);
        if rest.is_empty() {
            for done in flushes.drain(..) {
                let _ = done.send(left == 0);
            }
        }
        let now = tokio::time::Instant::now();
        if left > 0 {
            acks = unstored.iter().map(|_| Ack::Given).collect();
            records = unstored;
            due = Some(now + RETRY_EVERY);
        }
        let (mut r, mut a, mut f) = later;
        let split = !rest.is_empty();
        let pending = split || !r.is_empty() || !f.is_empty();
        records.extend(rest);
        acks.extend(rest_acks);
        records.append(&mut r);
        acks.append(&mut a);
        flushes.append(&mut f);
        if pending && left == 0 {
            // The rest of a large batch, or someone waits: at once; else with the next few.
            let soon = if split || waited_for {
                now
            } else {
                now + STORE_DELAY
            };
            due = Some(due.map_or(soon, |d| d.min(soon)));
        }
        if closing && !pending {
            // What is left is in the journal: recovery stores it.
            break;
        }
    }
}

/// Stores one batch, answers whoever waits for its records, and returns the acknowledged
/// records whose insert failed (to retry).
async fn store_batch(
    store: &Store,
    (journal, journal_sync): (&Arc<Journal>, bool),
    healthy: &AtomicBool,
    cp: &mut Checkpointing,
    records: Vec<LogRecord>,
    mut acks: Vec<Ack>,
) -> Vec<LogRecord> {
    let mut unstored = Vec::new();
    if records.is_empty() {
        return unstored;
    }
    metrics::histogram!("mamori_log_batch_records").record(records.len() as f64);
    let ids: Vec<String> = records.iter().map(|r| r.request_id.clone()).collect();
    let (outcomes, head) = if acks.iter().any(|a| matches!(a, Ack::Database(_))) {
        commit_by_database(store, (journal, journal_sync), records, &mut acks).await
    } else {
        write_batch(store, records).await
    };
    let failed = outcomes
        .iter()
        .filter(|(_, o)| *o != Stored::Written)
        .count();
    let already = outcomes
        .iter()
        .filter(|(_, o)| *o == Stored::AlreadyRecorded)
        .count();
    if failed == outcomes.len() && failed > already {
        tracing::error!(
            records = outcomes.len(),
            "log write failed; refusing requests until the database is back"
        );
        healthy.store(false, Ordering::Release);
    }
    let written = (outcomes.len() - failed) as u64;
    // Outcomes line up with ids and acks; a record lost to a failed write task stays in the
    // journal, where recovery finds it. Answered before the checkpoint, which answers must not
    // wait for.
    let mut outcomes = outcomes.into_iter();
    for (id, ack) in ids.iter().zip(acks) {
        let (record, outcome) = outcomes.next().unwrap_or((None, Stored::Failed));
        let ok = outcome != Stored::Failed;
        if ok {
            journal.done(id);
        }
        match ack {
            Ack::Durable(done) | Ack::Stored(done) | Ack::Database(done) => {
                let _ = done.send(outcome == Stored::Written);
            }
            Ack::Given if !ok => unstored.extend(record),
            Ack::Given | Ack::None => {}
        }
    }
    metrics::counter!("mamori_log_records_total", "result" => "written").increment(written);
    metrics::counter!("mamori_log_records_total", "result" => "failed").increment(failed as u64);
    if let Some(head) = head {
        cp.since += written;
        if cp.since >= cp.every || cp.last.elapsed() >= cp.interval {
            if let Err(e) = checkpoint_now(store, cp, head).await {
                tracing::warn!(error = %format!("{e:#}"), "checkpoint failed");
            } else {
                cp.since = 0;
                cp.last = Instant::now();
            }
        }
    }
    unstored
}

/// Stores a batch holding answers whose insert is their commit (`Ack::Database`). One attempt
/// that never waits for another writer's lock; if it fails, those answers are committed to the
/// journal at once (and so acknowledged), and the batch is stored like any other, with retries.
async fn commit_by_database(
    store: &Store,
    (journal, journal_sync): (&Arc<Journal>, bool),
    records: Vec<LogRecord>,
    acks: &mut [Ack],
) -> (Vec<(Option<LogRecord>, Stored)>, Option<(i64, String)>) {
    let n = records.len();
    let (mut records, result) = store.append_owned_now(records, chain::record_hash).await;
    match result {
        Ok(head) if records.len() == n => {
            let written = records.into_iter().map(|r| (Some(r), Stored::Written));
            return (written.collect(), Some(head));
        }
        Ok(_) => tracing::error!(
            "log records lost by a write task; recovery will store them from the journal"
        ),
        // The checkpoint thread's WAL restart holds writers back for a moment every few seconds
        // under load: expected, and the journal takes over, so not worth a warning each time.
        Err(e) if crate::store::is_held_elsewhere(&e) => {
            metrics::counter!("mamori_log_database_commits_deferred_total").increment(1);
            tracing::debug!(error = %format!("{e:#}"), records = n, "answers' insert met a lock; committing them to the journal");
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), records = n, "answers' insert failed; committing them to the journal")
        }
    }
    for r in &mut records {
        // Unlinked again: the failed insert had given them places in the chain.
        r.seq = 0;
        r.prev_hash.clear();
        r.record_hash.clear();
    }
    to_journal(acks);
    // Those whose journal commit fails too stay `Durable`: they wait for the insert below.
    if records.len() == n {
        commit_to_journal(journal, journal_sync, &records, acks).await;
    }
    write_batch(store, records).await
}

/// Answers that were to be committed by their insert are to be committed by the journal.
fn to_journal(acks: &mut [Ack]) {
    for ack in acks {
        *ack = match std::mem::replace(ack, Ack::None) {
            Ack::Database(done) => Ack::Durable(done),
            other => other,
        };
    }
}

/// Commits by the journal, now, the answers that were to be committed by their insert (and
/// any still waiting for a durable acknowledgement), when the insert would have to wait.
async fn journal_instead(
    journal: &Arc<Journal>,
    sync: bool,
    records: &[LogRecord],
    acks: &mut [Ack],
) {
    to_journal(acks);
    commit_to_journal(journal, sync, records, acks).await;
}

/// Appends the records waiting for a durable acknowledgement to the journal as committed
/// lines, in one write, and acknowledges them. `true` if any were. If the journal cannot be
/// written, they wait for the database instead, as before there was a journal.
async fn commit_to_journal(
    journal: &Arc<Journal>,
    sync: bool,
    records: &[LogRecord],
    acks: &mut [Ack],
) -> bool {
    let mut lines = Vec::new();
    let mut at = Vec::new();
    for (i, (r, ack)) in records.iter().zip(acks.iter()).enumerate() {
        if matches!(ack, Ack::Durable(_)) {
            match journal::committed_entry(r) {
                Ok(line) => {
                    lines.push((r.request_id.clone(), line));
                    at.push(i);
                }
                Err(e) => {
                    tracing::warn!(request_id = %r.request_id, error = %format!("{e:#}"), "cannot encode a committed record");
                }
            }
        }
    }
    if lines.is_empty() {
        return false;
    }
    let written = if sync {
        // An fsync takes milliseconds: not on an async worker.
        let journal = Arc::clone(journal);
        tokio::task::spawn_blocking(move || journal.commit(lines))
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("journal task failed: {e}")))
    } else {
        journal.commit(lines)
    };
    if let Err(e) = written {
        tracing::warn!(journal = %journal.dir().display(), error = %format!("{e:#}"), "cannot write committed records to the journal; answers wait for the database");
        return false;
    }
    for i in at {
        if let Some(ack) = acks.get_mut(i) {
            if let Ack::Durable(done) = std::mem::replace(ack, Ack::Given) {
                let _ = done.send(true);
            }
        }
    }
    true
}

/// What became of one record of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    Written,
    /// Its request already has a record (recovery got there first): nothing to retry.
    AlreadyRecorded,
    Failed,
}

/// Writes one batch of sealed records in one transaction. If that fails, they are retried one
/// by one so that one bad record (say, a request id already recorded by crash recovery) does
/// not take the others down with it.
/// Returns what became of each record, in order, with the record unless a failed write task
/// lost it, and the new chain head if records were appended.
async fn write_batch(
    store: &Store,
    records: Vec<LogRecord>,
) -> (Vec<(Option<LogRecord>, Stored)>, Option<(i64, String)>) {
    let n = records.len();
    if n == 0 {
        return (Vec::new(), None);
    }
    let (records, result) = store.append_owned(records, chain::record_hash).await;
    match result {
        Ok(head) => {
            return (
                records
                    .into_iter()
                    .map(|r| (Some(r), Stored::Written))
                    .collect(),
                Some(head),
            )
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), records = n, "log batch failed; retrying one by one")
        }
    }
    let mut out = Vec::with_capacity(n);
    let mut head = None;
    for r in records {
        let id = r.request_id.clone();
        let (mut back, result) = store.append_owned(vec![r], chain::record_hash).await;
        let Some(r) = back.pop() else {
            tracing::error!(request_id = %id, "log record lost by a failed write task; recovery will store it from the journal");
            out.push((None, Stored::Failed));
            continue;
        };
        match result {
            Ok(h) => {
                head = Some(h);
                out.push((Some(r), Stored::Written));
            }
            Err(e) => {
                // A request already recorded (crash recovery got there first) is not a sign
                // that the log is down.
                let recorded = store
                    .missing_records(std::slice::from_ref(&id))
                    .await
                    .is_ok_and(|m| m.is_empty());
                if recorded {
                    tracing::warn!(request_id = %id, "log record not written: this request is already recorded");
                    out.push((Some(r), Stored::AlreadyRecorded));
                } else {
                    tracing::error!(request_id = %id, error = %format!("{e:#}"), "log record not written");
                    out.push((Some(r), Stored::Failed));
                }
            }
        }
    }
    out.resize_with(n, || (None, Stored::Failed));
    (out, head)
}

async fn checkpoint_now(
    store: &Store,
    cp: &Checkpointing,
    (seq, hash): (i64, String),
) -> anyhow::Result<()> {
    let c = checkpoint::sign(&cp.signing, seq, &hash, &crate::store::now_text());
    store.insert_checkpoint(&c).await?;
    checkpoint::append_file(&cp.file, std::slice::from_ref(&c))?;
    Ok(())
}

/// Restores health once the log table answers again.
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

/// Background upkeep: recovery of requests that were forwarded but never logged (a crashed
/// instance's journal, or a record this instance failed to write), and deletion of bodies past
/// their contract's retention. `longest_request` bounds how long a request can be in flight
/// (the upstream timeout).
pub fn spawn_upkeep(store: Store, writer: LogWriter, cfg: &AuditConfig, longest_request: Duration) {
    let abandoned = longest_request + Duration::from_secs(60);
    let retention_every = cfg.retention_interval;
    let every = cfg.upkeep_interval;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        let mut last_retention: Option<Instant> = None;
        loop {
            tick.tick().await;
            forget_closed_contracts(&store, &writer).await;
            if let Err(e) = recover(&store, &writer, abandoned).await {
                tracing::warn!(error = %format!("{e:#}"), "recovery of interrupted requests failed");
            }
            if last_retention.is_none_or(|t| t.elapsed() >= retention_every) {
                last_retention = Some(Instant::now());
                if let Err(e) = apply_retention(&store).await {
                    tracing::warn!(error = %format!("{e:#}"), "retention run failed");
                }
            }
        }
    });
}

/// Drops cached data keys of closed contracts, so nothing more is sealed under them.
async fn forget_closed_contracts(store: &Store, writer: &LogWriter) {
    if let Ok(contracts) = store.contracts().await {
        for c in contracts.iter().filter(|c| c.status != "active") {
            writer.data_keys.forget(&c.id);
            // Records of requests that were in flight at the close may have left body files.
            if let Err(e) = store.shred_body_files(&c.id).await {
                tracing::warn!(contract = %c.id, error = %format!("{e:#}"), "cannot delete a closed contract's body files");
            }
        }
    }
}

/// Stores the requests found in the journal that have no record: those of dead instances'
/// segments, and this instance's own that are older than any request may take. A committed
/// record (its answer was delivered) is stored as it is; a request only noted is recorded as
/// `interrupted`.
async fn recover(store: &Store, writer: &LogWriter, abandoned: Duration) -> anyhow::Result<()> {
    let journal = Arc::clone(&writer.journal);
    let orphans = tokio::task::spawn_blocking(move || journal.orphans()).await??;
    store_orphans(store, orphans).await?;
    // Rows an older version noted in the database, left by an instance that stopped.
    let ago = |d: Duration| -> anyhow::Result<String> {
        Ok((chrono::Utc::now() - chrono::Duration::from_std(d)?)
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
    };
    let legacy = store
        .legacy_pending(&ago(LEGACY_STALE)?, &ago(abandoned)?)
        .await?;
    let notes = legacy
        .iter()
        .map(|(_, json)| {
            serde_json::from_str::<LogRecord>(json).map(|record| journal::Entry {
                record,
                committed: false,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    record_recovered(store, writer, notes).await?;
    for (request_id, _) in &legacy {
        store.delete_legacy_pending(request_id).await?;
    }
    let overdue = writer.journal.overdue(abandoned);
    let ids: Vec<String> = overdue
        .iter()
        .map(|e| e.record.request_id.clone())
        .collect();
    record_recovered(store, writer, overdue).await?;
    for id in &ids {
        writer.journal.done(id);
    }
    Ok(())
}

/// Stores what stopped instances left in the journal folder `dir` for the database at
/// `database_url`: committed records as they are, requests only noted as `interrupted`. The
/// gateway's upkeep does this on its own; commands that read the log call it first, so that
/// after a gateway was killed the log shows every answer it delivered before anything restarts.
/// Returns how many records were stored of each kind.
pub async fn recover_stopped(
    store: &Store,
    dir: &std::path::Path,
    database_url: &str,
) -> anyhow::Result<(usize, usize)> {
    let (dir, tag) = (dir.to_path_buf(), journal_tag(database_url));
    let orphans =
        tokio::task::spawn_blocking(move || journal::orphans_in(&dir, &tag, None)).await??;
    store_orphans(store, orphans).await
}

/// Stores the requests of dead instances' segments that have no record, then deletes the
/// segments. A request's note and its committed record may sit in different segments: they are
/// merged first.
async fn store_orphans(
    store: &Store,
    mut orphans: Vec<journal::Orphan>,
) -> anyhow::Result<(usize, usize)> {
    if orphans.is_empty() {
        return Ok((0, 0));
    }
    let paths: Vec<String> = orphans
        .iter()
        .map(|o| o.path.display().to_string())
        .collect();
    let entries = journal::latest(
        orphans
            .iter_mut()
            .flat_map(|o| std::mem::take(&mut o.entries)),
    );
    let (mut records, stored, interrupted) = unrecorded(store, entries).await?;
    // Sealed already (committed) or bodiless (notes): nothing needs a key here.
    while !records.is_empty() {
        let rest = records.split_off(records.len().min(MAX_BATCH));
        store
            .append_owned(records, chain::record_hash)
            .await
            .1
            .context("cannot store the records of a stopped instance's request journal")?;
        records = rest;
    }
    tracing::info!(segments = ?paths, stored, interrupted, "recovered a stopped instance's request journal");
    for orphan in orphans {
        orphan.finish();
    }
    Ok((stored, interrupted))
}

/// The records to store for journal entries whose request has no record yet: committed ones as
/// they are, notes as `interrupted`; and how many of each.
async fn unrecorded(
    store: &Store,
    entries: impl IntoIterator<Item = journal::Entry>,
) -> anyhow::Result<(Vec<LogRecord>, usize, usize)> {
    let entries: Vec<journal::Entry> = entries.into_iter().collect();
    let ids: Vec<String> = entries
        .iter()
        .map(|e| e.record.request_id.clone())
        .collect();
    let missing: std::collections::HashSet<String> =
        store.missing_records(&ids).await?.into_iter().collect();
    let (mut stored, mut interrupted) = (0, 0);
    let mut records = Vec::new();
    for e in entries
        .into_iter()
        .filter(|e| missing.contains(&e.record.request_id))
    {
        let mut r = e.record;
        if e.committed {
            tracing::warn!(request_id = %r.request_id, "storing a record committed to the journal but never stored");
            stored += 1;
        } else {
            tracing::warn!(request_id = %r.request_id, "recording a request interrupted before its record was written");
            r.outcome = "interrupted".into();
            r.code = None;
            interrupted += 1;
        }
        records.push(r);
    }
    Ok((records, stored, interrupted))
}

/// Stores each journal entry whose request has no record yet: committed records as they are,
/// notes as `interrupted`. Returns how many of each.
async fn record_recovered(
    store: &Store,
    writer: &LogWriter,
    entries: impl IntoIterator<Item = journal::Entry>,
) -> anyhow::Result<(usize, usize)> {
    let (records, stored, interrupted) = unrecorded(store, entries).await?;
    for r in records {
        let id = r.request_id.clone();
        // Another instance may have recorded it meanwhile (the request id is unique).
        if !writer.commit(r).await
            && !store
                .missing_records(std::slice::from_ref(&id))
                .await?
                .is_empty()
        {
            anyhow::bail!("could not store the record of request {id} found in the journal");
        }
    }
    Ok((stored, interrupted))
}

/// Deletes bodies older than each contract's retention. Returns how many records lost bodies.
pub async fn apply_retention(store: &Store) -> anyhow::Result<u64> {
    let mut n = 0;
    for c in store.contracts().await? {
        let Some(days) = c.retention_days else {
            continue;
        };
        let before = (chrono::Utc::now() - chrono::Duration::days(days))
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let k = store.expire_bodies(&c.id, &before).await?;
        if k > 0 {
            tracing::info!(contract = %c.id, records = k, "bodies past retention deleted");
        }
        n += k;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_wait_for_their_insert_only_while_the_store_keeps_up() {
        let p = StoreProgress::new();
        assert!(p.keeps_up(0), "idle");
        assert!(p.keeps_up(MAX_BATCH), "a batch's worth waiting");
        assert!(!p.keeps_up(MAX_BATCH + 1), "more than a batch waiting");
        p.begin();
        assert!(p.keeps_up(10), "a batch just begun");
        std::thread::sleep(STORE_STALL + Duration::from_millis(5));
        assert!(!p.keeps_up(10), "a batch stored for longer than a stall");
        p.end(false);
        assert!(p.keeps_up(10), "the batch done");
        p.begin();
        p.end(true);
        assert!(!p.keeps_up(0), "records waiting for their retry");
        p.begin();
        p.end(false);
        assert!(p.keeps_up(0), "the retry done");
    }
}
