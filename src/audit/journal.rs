//! The journal of requests about to be forwarded: a note per request, appended to a file of
//! this instance's own before the request leaves, so that a crash between forwarding and
//! logging still leaves a trace to record the request from (`interrupted`).
//!
//! A line is one `write` to the page cache: it survives the process being killed at any point
//! (and, with `fsync_each_commit`, a power loss), and costs a few microseconds instead of a
//! database commit on every request's path. Segments are locked with `flock` while their
//! instance lives; any instance that finds an unlocked segment in the folder (its owner died)
//! records the requests in it that have no record yet, then deletes it. A full segment is
//! deleted by its owner once every request in it has its record; the current one when its
//! owner stops (by whoever recovers it). Segment names start with a tag of the database, so
//! gateways on different databases that share a folder never recover each other's requests.
//!
//! A request's first line, its note, carries the record's metadata only (who, when, which
//! provider and model, the request's hash). Once the answer is complete, the log writer appends
//! the whole record as a `committed` entry: a JSON line with the metadata and the lengths of
//! the bodies, followed by the bodies as sealed with the contract's key (raw bytes) and a
//! newline. That entry is the commit a client waits for before it receives the end of its
//! answer (on SQLite, a group of answers is committed by its database insert instead, see
//! `audit::DATABASE_COMMITS_FROM`, and only reaches the journal if that insert fails). The
//! record reaches the database right after; recovery inserts committed records whose
//! insert never happened as they are, and records the others as `interrupted`. Plaintext bodies
//! never touch the journal.
use crate::store::LogRecord;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A segment is closed for new lines past this size and deleted once all its requests landed.
const SEGMENT_BYTES: u64 = 8 << 20;
const SUFFIX: &str = ".journal";

struct Segment {
    no: u64,
    path: PathBuf,
    /// Holds the `flock` that tells other instances this segment's owner is alive. Shared so
    /// that an fsync can run without holding the journal's lock.
    file: Arc<File>,
    open: usize,
    bytes: u64,
}

struct Open {
    segment: u64,
    since: Instant,
    /// The request's latest entry, as written.
    line: Vec<u8>,
}

struct State {
    current: Segment,
    /// Full segments with requests still in flight.
    closed: Vec<Segment>,
    open: HashMap<String, Open>,
}

impl State {
    /// One request of segment `no` no longer needs its line there; a full segment with no
    /// such request left is deleted.
    fn release(&mut self, no: u64) {
        if no == self.current.no {
            self.current.open = self.current.open.saturating_sub(1);
            return;
        }
        if let Some(i) = self.closed.iter().position(|s| s.no == no) {
            self.closed[i].open = self.closed[i].open.saturating_sub(1);
            if self.closed[i].open == 0 {
                let s = self.closed.swap_remove(i);
                remove(&s.path);
            }
        }
    }
}

/// Notes queued to be written together (see [`Journal::queue_note`]).
#[derive(Default)]
struct Notes {
    pending: Vec<(String, Vec<u8>)>,
    /// Tickets below this have been written, or failed to be.
    written: u64,
    queued: u64,
    /// Tickets whose group failed to be written, until their owner asks.
    failed: std::collections::HashSet<u64>,
}

pub struct Journal {
    dir: PathBuf,
    /// The database tag: the segments this journal may recover.
    tag: String,
    /// `{database tag}-{instance}-`: this instance's own segments.
    own: String,
    sync: bool,
    state: Mutex<State>,
    notes: Mutex<Notes>,
    in_flight: AtomicUsize,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.dir)
            .field("segments", &self.own)
            .finish_non_exhaustive()
    }
}

/// Takes the segment's lock without waiting; `false` if a live process holds it.
fn try_lock(file: &File) -> std::io::Result<bool> {
    // SAFETY: flock only reads the descriptor, which `file` keeps open for the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Writes every slice, in order, with as few `writev` calls as the kernel allows (one, for a
/// regular file, up to 1 024 slices), without first copying them into one buffer.
pub(crate) fn write_all_vectored(
    mut file: &File,
    slices: &mut [std::io::IoSlice<'_>],
) -> std::io::Result<()> {
    let mut rest = slices;
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reserves disk blocks for `len` bytes from `offset` without changing the file's size, so that
/// appends there only fill pages: ext4 then skips its delayed-allocation bookkeeping on every
/// new 4 KiB. Callers treat it as best effort: on a file system without `fallocate` appends
/// just allocate as they write.
pub(crate) fn preallocate(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(std::io::ErrorKind::InvalidInput.into());
    };
    // SAFETY: fallocate only reads the descriptor, which `file` keeps open for the call.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, offset, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Creates segment `no` already locked: it is made under a name no recovery looks at, locked,
/// then renamed, so no other instance can take it for a dead one's in between.
fn create_segment(dir: &Path, own: &str, no: u64, sync: bool) -> anyhow::Result<Segment> {
    let path = dir.join(format!("{own}{no:06}{SUFFIX}"));
    let making = dir.join(format!("{own}{no:06}.new"));
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .mode(0o600)
        .open(&making)
        .with_context(|| format!("cannot create the request journal {}", making.display()))?;
    let locked = try_lock(&file).and_then(|ok| {
        if ok {
            std::fs::rename(&making, &path)
        } else {
            Err(std::io::Error::other("locked by another process"))
        }
    });
    if let Err(e) = locked {
        remove(&making);
        return Err(e)
            .with_context(|| format!("cannot lock the request journal {}", path.display()));
    }
    // Best effort (see `preallocate`); the segment is deleted once its requests are stored.
    let _ = preallocate(&file, 0, SEGMENT_BYTES + (1 << 20));
    if sync {
        // The segment's name must survive a power loss too, not only its lines.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync the request journal folder {}", dir.display()))?;
    }
    Ok(Segment {
        no,
        path,
        file: Arc::new(file),
        open: 0,
        bytes: 0,
    })
}

fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot delete a finished journal segment");
        }
    }
}

impl Journal {
    /// Opens this instance's journal in `dir` (created 0700 if missing). `database` tags the
    /// segments with the database they belong to.
    pub fn open(dir: &Path, database: &str, instance: &str, sync: bool) -> anyhow::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| {
                format!("cannot create the request journal folder {}", dir.display())
            })?;
        let own = format!("{database}-{instance}-");
        let current = create_segment(dir, &own, 0, sync)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            tag: database.to_string(),
            own,
            sync,
            state: Mutex::new(State {
                current,
                closed: Vec::new(),
                open: HashMap::new(),
            }),
            notes: Mutex::new(Notes::default()),
            in_flight: AtomicUsize::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends the request's note; once this returns `Ok`, the request may be forwarded.
    /// Blocks for one `write` (and an fsync when `sync`): call off the async path when `sync`.
    pub fn note(&self, rec: &LogRecord) -> anyhow::Result<()> {
        self.note_line(&rec.request_id, serde_json::to_string(rec)?)
    }

    /// `note` for a record already encoded (bodies are never encoded: they skip serialization).
    pub fn note_line(&self, request_id: &str, line: String) -> anyhow::Result<()> {
        let mut line = line.into_bytes();
        line.push(b'\n');
        self.append(vec![(request_id.to_string(), line)])
    }

    /// Queues the request's note to be written with the notes of other requests that arrive
    /// meanwhile: one `write` for the group instead of one per request. The request may be
    /// forwarded once [`Journal::write_notes`] with the returned ticket says `Ok`.
    pub fn queue_note(&self, rec: &LogRecord) -> anyhow::Result<u64> {
        let mut line = Vec::with_capacity(1024);
        serde_json::to_writer(&mut line, rec)?;
        line.push(b'\n');
        let mut n = self
            .notes
            .lock()
            .map_err(|_| anyhow::anyhow!("the request journal is poisoned"))?;
        n.pending.push((rec.request_id.clone(), line));
        n.queued += 1;
        Ok(n.queued - 1)
    }

    /// Makes sure the note of `ticket` is written: by an earlier call that wrote its group, or
    /// now, together with every note queued so far. Blocks like [`Journal::note`].
    pub fn write_notes(&self, ticket: u64) -> anyhow::Result<()> {
        let mut n = self
            .notes
            .lock()
            .map_err(|_| anyhow::anyhow!("the request journal is poisoned"))?;
        if ticket >= n.written {
            let group = std::mem::take(&mut n.pending);
            let (from, to) = (n.written, n.queued);
            n.written = to;
            // Under the notes lock: no note of a later group lands before this group's.
            if let Err(e) = self.append(group) {
                n.failed.extend(from..to);
                n.failed.remove(&ticket);
                return Err(e);
            }
            return Ok(());
        }
        if n.failed.remove(&ticket) {
            anyhow::bail!("the request journal could not be written");
        }
        Ok(())
    }

    /// Appends committed records (entries from [`committed_entry`]) in one `write`; once this
    /// returns `Ok`, their answers may be delivered. Blocks like [`Journal::note`].
    pub fn commit(&self, entries: Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
        self.append(entries)
    }

    /// Writes `(request id, entry)` pairs with one `write`, and keeps each request's latest
    /// entry counted in the segment that holds it, so that no segment holding a request's
    /// newest entry is deleted before the request has its record.
    fn append(&self, lines: Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
        let len: usize = lines.iter().map(|(_, l)| l.len()).sum();
        let file = {
            let mut st = self
                .state
                .lock()
                .map_err(|_| anyhow::anyhow!("the request journal is poisoned"))?;
            if st.current.bytes >= SEGMENT_BYTES {
                let next = create_segment(&self.dir, &self.own, st.current.no + 1, self.sync)?;
                let full = std::mem::replace(&mut st.current, next);
                if full.open == 0 {
                    remove(&full.path);
                } else {
                    st.closed.push(full);
                }
            }
            // One write of whole lines: a killed process leaves each whole or not at all.
            let mut slices: Vec<std::io::IoSlice<'_>> = lines
                .iter()
                .map(|(_, l)| std::io::IoSlice::new(l))
                .collect();
            if let Err(e) = write_all_vectored(&st.current.file, &mut slices) {
                // Cut off whatever part did land, so the next line starts a line of its own;
                // if even that fails, start a new segment for the next one.
                if st.current.file.set_len(st.current.bytes).is_err() {
                    st.current.bytes = SEGMENT_BYTES;
                }
                return Err(e.into());
            }
            st.current.bytes += len as u64;
            let segment = st.current.no;
            for (request_id, line) in lines {
                let earlier = st.open.remove(&request_id);
                match &earlier {
                    Some(o) if o.segment == segment => {}
                    Some(o) => {
                        st.release(o.segment);
                        st.current.open += 1;
                    }
                    None => {
                        st.current.open += 1;
                        self.in_flight.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let since = earlier.map_or_else(Instant::now, |o| o.since);
                st.open.insert(
                    request_id,
                    Open {
                        segment,
                        since,
                        line,
                    },
                );
            }
            Arc::clone(&st.current.file)
        };
        // Outside the lock: one fsync covers every line written before it.
        if self.sync {
            file.sync_data()?;
        }
        Ok(())
    }

    /// How many noted requests have no record yet (are in flight).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The request's record is committed: its note is no longer needed.
    pub fn done(&self, request_id: &str) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let Some(o) = st.open.remove(request_id) else {
            return;
        };
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        st.release(o.segment);
    }

    /// Requests noted longer than `age` ago still without a record: their record failed to be
    /// written (the request took longer than any request may).
    pub fn overdue(&self, age: Duration) -> Vec<Entry> {
        let Ok(st) = self.state.lock() else {
            return Vec::new();
        };
        st.open
            .values()
            .filter(|o| o.since.elapsed() >= age)
            .filter_map(|o| parse_entry(&o.line).ok().map(|(e, _)| e))
            .collect()
    }

    /// Segments in the folder whose owner is gone, each locked and read.
    pub fn orphans(&self) -> anyhow::Result<Vec<Orphan>> {
        orphans_in(&self.dir, &self.tag, Some(&self.own))
    }
}

/// The segments of database `tag` in `dir` whose owner is gone (not those named `own...`), each
/// locked and read; none if the folder does not exist. A segment that cannot be read is skipped
/// (and said so), never a reason to leave the others unrecovered.
pub fn orphans_in(dir: &Path, tag: &str, own: Option<&str>) -> anyhow::Result<Vec<Orphan>> {
    let family = format!("{tag}-");
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot list the request journal {}", dir.display()))
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.ends_with(SUFFIX)
            || !name.starts_with(&family)
            || own.is_some_and(|own| name.starts_with(own))
        {
            continue;
        }
        match read_orphan(&path) {
            Ok(Some(o)) => out.push(o),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "cannot recover a request journal segment; will retry")
            }
        }
    }
    Ok(out)
}

/// Locks and reads a segment; `None` if its owner lives or it is gone.
fn read_orphan(path: &Path) -> anyhow::Result<Option<Orphan>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        // Its owner finished with it, or another instance recovered it, meanwhile.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if !try_lock(&file)? {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes)?;
    let mut entries = Vec::new();
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        let at = bytes.len() - rest.len();
        match parse_entry(rest) {
            Ok((e, used)) => {
                entries.push(e);
                rest = rest.get(used..).unwrap_or_default();
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), offset = at, error = %format!("{e:#}"), "skipping an unreadable journal line");
                // Go on at the next line.
                let next = rest
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(rest.len(), |i| i + 1);
                rest = rest.get(next..).unwrap_or_default();
            }
        }
    }
    Ok(Some(Orphan {
        path: path.to_path_buf(),
        _lock: file,
        entries,
    }))
}

/// A dead instance's segment, locked by us until it is dropped.
pub struct Orphan {
    pub path: PathBuf,
    _lock: File,
    /// Its lines in order; a request may have a note and, later, its committed record.
    pub entries: Vec<Entry>,
}

/// A request found in the journal.
#[derive(Clone)]
pub struct Entry {
    pub record: LogRecord,
    /// The whole record, bodies sealed: its answer was delivered, so it is inserted as it is.
    /// Otherwise only the note: the request was interrupted.
    pub committed: bool,
}

/// Keeps one entry per request, the committed record over the note, in first-seen order.
pub fn latest(entries: impl IntoIterator<Item = Entry>) -> Vec<Entry> {
    let mut at: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Entry> = Vec::new();
    for e in entries {
        match at.get(&e.record.request_id) {
            Some(&i) => {
                if e.committed || !out[i].committed {
                    out[i] = e;
                }
            }
            None => {
                at.insert(e.record.request_id.clone(), out.len());
                out.push(e);
            }
        }
    }
    out
}

const COMMITTED_PREFIX: &[u8] = b"{\"committed\":";

#[derive(Serialize)]
struct CommittedOut<'a> {
    committed: &'a LogRecord,
    request_len: Option<usize>,
    output_len: Option<usize>,
}

#[derive(Deserialize)]
struct CommittedIn {
    committed: LogRecord,
    request_len: Option<usize>,
    output_len: Option<usize>,
}

/// The journal entry of a record whose bodies are sealed: its metadata as a JSON line, then
/// the sealed bodies as they are (ciphertext needs no escaping) and a newline.
pub fn committed_entry(r: &LogRecord) -> anyhow::Result<Vec<u8>> {
    let (req, out) = (r.request_body.as_deref(), r.output_body.as_deref());
    let bodies = req.map_or(0, <[u8]>::len) + out.map_or(0, <[u8]>::len);
    let mut v = Vec::with_capacity(1024 + bodies);
    serde_json::to_writer(
        &mut v,
        &CommittedOut {
            committed: r,
            request_len: req.map(<[u8]>::len),
            output_len: out.map(<[u8]>::len),
        },
    )?;
    v.push(b'\n');
    v.extend_from_slice(req.unwrap_or_default());
    v.extend_from_slice(out.unwrap_or_default());
    v.push(b'\n');
    Ok(v)
}

/// Reads the entry at the start of `b`: the entry and how many bytes it took.
fn parse_entry(b: &[u8]) -> anyhow::Result<(Entry, usize)> {
    let eol = b
        .iter()
        .position(|c| *c == b'\n')
        .context("a journal line without its end (cut short)")?;
    let line = b.get(..eol).unwrap_or_default();
    if !line.starts_with(COMMITTED_PREFIX) {
        let entry = Entry {
            record: serde_json::from_slice(line)?,
            committed: false,
        };
        return Ok((entry, eol + 1));
    }
    let c: CommittedIn = serde_json::from_slice(line)?;
    let mut at = eol + 1;
    let mut take = |len: Option<usize>| -> anyhow::Result<Option<Vec<u8>>> {
        let Some(len) = len else { return Ok(None) };
        let body = at
            .checked_add(len)
            .and_then(|end| b.get(at..end))
            .context("a committed record's bodies are cut short")?;
        at += len;
        Ok(Some(body.to_vec()))
    };
    let mut record = c.committed;
    record.request_body = take(c.request_len)?;
    record.output_body = take(c.output_len)?;
    if b.get(at) != Some(&b'\n') {
        anyhow::bail!("a committed record does not end where its lengths say");
    }
    record.sealed = true;
    Ok((
        Entry {
            record,
            committed: true,
        },
        at + 1,
    ))
}

impl Orphan {
    /// Every request in it has a record now.
    pub fn finish(self) {
        remove(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str) -> LogRecord {
        LogRecord {
            request_id: id.into(),
            endpoint: "chat.completions".into(),
            request_body: Some(b"secret body".to_vec()),
            ..Default::default()
        }
    }

    /// Recovery reads a segment to its end and body references are offsets from a file's end,
    /// so reserving blocks ahead must not change the size; appends still land at the end.
    #[test]
    fn preallocation_reserves_blocks_without_changing_the_size() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        (&f).write_all(b"first\n").unwrap();
        let reserved = preallocate(&f, 6, 1 << 20);
        let m = f.metadata().unwrap();
        assert_eq!(m.len(), 6);
        match reserved {
            // In 512-byte units: the megabyte ahead is reserved.
            Ok(()) => assert!(m.blocks() >= 2048, "blocks: {}", m.blocks()),
            // A file system without fallocate (ZFS, NFS): appends allocate as they go.
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP), "{e}"),
        }
        (&f).write_all(b"second\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"first\nsecond\n");
    }

    #[test]
    fn notes_outlive_their_writer_and_are_found_by_another_instance() {
        let dir = tempfile::tempdir().unwrap();
        let a = Journal::open(dir.path(), "db1", "a", false).unwrap();
        a.note(&rec("r1")).unwrap();
        a.note(&rec("r2")).unwrap();
        a.done("r1");
        let b = Journal::open(dir.path(), "db1", "b", false).unwrap();
        // `a` is alive (holds its lock): nothing to recover.
        assert!(b.orphans().unwrap().is_empty());
        drop(a);
        let orphans = b.orphans().unwrap();
        assert_eq!(orphans.len(), 1);
        let ids: Vec<_> = orphans[0]
            .entries
            .iter()
            .map(|e| e.record.request_id.as_str())
            .collect();
        // Both lines are there; recovery skips requests that already have a record.
        assert_eq!(ids, ["r1", "r2"]);
        let text = std::fs::read_to_string(&orphans[0].path).unwrap();
        assert!(
            !text.contains("secret body"),
            "bodies never reach the journal"
        );
        for o in orphans {
            o.finish();
        }
        assert!(b.orphans().unwrap().is_empty());
    }

    #[test]
    fn notes_queued_together_are_written_by_whoever_writes_first() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), "db1", "a", false).unwrap();
        let first = j.queue_note(&rec("r1")).unwrap();
        let second = j.queue_note(&rec("r2")).unwrap();
        let segment = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "journal"))
            .unwrap();
        assert_eq!(
            std::fs::read(&segment).unwrap().len(),
            0,
            "queued, not yet written"
        );
        assert_eq!(j.in_flight(), 0);
        // The second request's writer writes both; the first then finds its note written.
        j.write_notes(second).unwrap();
        let text = std::fs::read_to_string(&segment).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<LogRecord>(l).unwrap().request_id)
            .collect();
        assert_eq!(ids, ["r1", "r2"]);
        assert_eq!(j.in_flight(), 2);
        j.write_notes(first).unwrap();
        assert_eq!(
            std::fs::read_to_string(&segment).unwrap(),
            text,
            "nothing written twice"
        );
        let third = j.queue_note(&rec("r3")).unwrap();
        j.write_notes(third).unwrap();
        assert_eq!(j.in_flight(), 3);
    }

    #[test]
    fn a_group_whose_write_fails_is_refused_whole_and_the_next_starts_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), "db1", "a", false).unwrap();
        // From here on, writes to the current segment fail, as on a full disk.
        j.state.lock().unwrap().current.file =
            Arc::new(OpenOptions::new().write(true).open("/dev/full").unwrap());
        let first = j.queue_note(&rec("r1")).unwrap();
        let second = j.queue_note(&rec("r2")).unwrap();
        let err = j.write_notes(second).unwrap_err();
        assert!(format!("{err:#}").contains("space"), "{err:#}");
        // The other request of the group is told too: its note is never reported written.
        assert!(j.write_notes(first).is_err());
        assert_eq!(j.in_flight(), 0);
        // The failed segment could not be cut back, so the next group starts a new one.
        let third = j.queue_note(&rec("r3")).unwrap();
        j.write_notes(third).unwrap();
        assert_eq!(j.in_flight(), 1);
        let written: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "journal"))
            .flat_map(|p| {
                std::fs::read_to_string(p)
                    .unwrap()
                    .lines()
                    .map(|l| serde_json::from_str::<LogRecord>(l).unwrap().request_id)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(written, ["r3"]);
    }

    #[test]
    fn segments_of_another_database_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let a = Journal::open(dir.path(), "db1", "a", true).unwrap();
        a.note(&rec("r1")).unwrap();
        drop(a);
        let other = Journal::open(dir.path(), "db2", "b", false).unwrap();
        assert!(other.orphans().unwrap().is_empty());
        let same = Journal::open(dir.path(), "db1", "c", false).unwrap();
        assert_eq!(same.orphans().unwrap().len(), 1);
    }

    #[test]
    fn finished_segments_are_deleted_and_overdue_notes_found() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), "db1", "a", false).unwrap();
        let big = LogRecord {
            purpose: Some("x".repeat(1 << 20)),
            ..rec("big")
        };
        for i in 0..9 {
            j.note(&LogRecord {
                request_id: format!("r{i}"),
                ..big.clone()
            })
            .unwrap();
        }
        j.note(&rec("last")).unwrap();
        let count = || std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(
            count(),
            2,
            "the first segment is full, a second was started"
        );
        for i in 0..9 {
            j.done(&format!("r{i}"));
        }
        assert_eq!(
            count(),
            1,
            "a full segment goes once all its requests have records"
        );
        assert_eq!(j.in_flight(), 1);
        assert!(j.overdue(Duration::from_secs(60)).is_empty());
        let late = j.overdue(Duration::ZERO);
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].record.request_id, "last");
        assert!(!late[0].committed);
    }

    fn sealed(id: &str) -> LogRecord {
        LogRecord {
            request_id: id.into(),
            outcome: "ok".into(),
            request_body: Some(vec![0, 1, 2, 255]),
            output_body: Some(b"ciphertext".to_vec()),
            output_sha256: Some("ab".repeat(32)),
            sealed: true,
            ..Default::default()
        }
    }

    #[test]
    fn a_committed_record_outlives_its_writer_whole_and_supersedes_its_note() {
        let dir = tempfile::tempdir().unwrap();
        let a = Journal::open(dir.path(), "db1", "a", false).unwrap();
        a.note(&rec("r1")).unwrap();
        a.note(&rec("r2")).unwrap();
        let r1 = sealed("r1");
        a.commit(vec![("r1".into(), committed_entry(&r1).unwrap())])
            .unwrap();
        assert_eq!(
            a.in_flight(),
            2,
            "a committed request stays in flight until stored"
        );
        let overdue = a.overdue(Duration::ZERO);
        let got = overdue
            .iter()
            .find(|e| e.record.request_id == "r1")
            .unwrap();
        assert!(got.committed);
        drop(a);
        let b = Journal::open(dir.path(), "db1", "b", false).unwrap();
        let orphans = b.orphans().unwrap();
        let entries = latest(orphans.into_iter().flat_map(|o| o.entries));
        assert_eq!(entries.len(), 2);
        let (e1, e2) = (&entries[0], &entries[1]);
        assert_eq!(e1.record.request_id, "r1");
        assert!(e1.committed, "the committed line wins over the note");
        assert!(e1.record.sealed);
        assert_eq!(e1.record.request_body, r1.request_body);
        assert_eq!(e1.record.output_body, r1.output_body);
        assert_eq!(e1.record.output_sha256, r1.output_sha256);
        assert_eq!(e1.record.outcome, "ok");
        assert!(!e2.committed, "r2 was only noted");
    }

    #[test]
    fn a_segment_holding_a_committed_line_stays_until_its_request_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), "db1", "a", false).unwrap();
        let big = LogRecord {
            purpose: Some("x".repeat(1 << 20)),
            ..rec("big")
        };
        j.note(&rec("early")).unwrap();
        for i in 0..8 {
            j.note(&LogRecord {
                request_id: format!("r{i}"),
                ..big.clone()
            })
            .unwrap();
        }
        // Segment 0 is full: the committed line of `early` goes to segment 1.
        j.commit(vec![(
            "early".into(),
            committed_entry(&sealed("early")).unwrap(),
        )])
        .unwrap();
        for i in 0..8 {
            j.done(&format!("r{i}"));
        }
        let names = || {
            let mut v: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        let left = names();
        assert_eq!(
            left.len(),
            1,
            "segment 0 holds only superseded lines: {left:?}"
        );
        let bytes = std::fs::read(dir.path().join(&left[0])).unwrap();
        assert!(
            bytes.starts_with(COMMITTED_PREFIX),
            "segment 1 keeps the committed entry"
        );
        j.done("early");
        assert_eq!(j.in_flight(), 0);
    }
}
