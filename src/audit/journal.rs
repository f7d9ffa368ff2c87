//! The journal of requests about to be forwarded: one line per request, appended to a file of
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
//! Lines carry the record's metadata only (who, when, which provider and model, the request's
//! hash): bodies never touch the journal.
use crate::store::LogRecord;
use anyhow::Context;
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
    line: String,
}

struct State {
    current: Segment,
    /// Full segments with requests still in flight.
    closed: Vec<Segment>,
    open: HashMap<String, Open>,
}

pub struct Journal {
    dir: PathBuf,
    /// `{database tag}-`: the segments this journal may recover.
    family: String,
    /// `{database tag}-{instance}-`: this instance's own segments.
    own: String,
    sync: bool,
    state: Mutex<State>,
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
        let family = format!("{database}-");
        let own = format!("{family}{instance}-");
        let current = create_segment(dir, &own, 0, sync)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            family,
            own,
            sync,
            state: Mutex::new(State {
                current,
                closed: Vec::new(),
                open: HashMap::new(),
            }),
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
    pub fn note_line(&self, request_id: &str, mut line: String) -> anyhow::Result<()> {
        line.push('\n');
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
            // One write of the whole line: a killed process leaves it whole or not at all.
            if let Err(e) = (&*st.current.file).write_all(line.as_bytes()) {
                // Cut off whatever part did land, so the next note starts a line of its own;
                // if even that fails, start a new segment for the next note.
                if st.current.file.set_len(st.current.bytes).is_err() {
                    st.current.bytes = SEGMENT_BYTES;
                }
                return Err(e.into());
            }
            st.current.bytes += line.len() as u64;
            st.current.open += 1;
            let segment = st.current.no;
            line.pop();
            st.open.insert(
                request_id.to_string(),
                Open {
                    segment,
                    since: Instant::now(),
                    line,
                },
            );
            self.in_flight.fetch_add(1, Ordering::Relaxed);
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
        if o.segment == st.current.no {
            st.current.open -= 1;
            return;
        }
        if let Some(i) = st.closed.iter().position(|s| s.no == o.segment) {
            st.closed[i].open -= 1;
            if st.closed[i].open == 0 {
                let s = st.closed.swap_remove(i);
                remove(&s.path);
            }
        }
    }

    /// Notes older than `age` still without a record: requests whose record failed to be
    /// written (the request took longer than any request may). As records to write.
    pub fn overdue(&self, age: Duration) -> Vec<LogRecord> {
        let Ok(st) = self.state.lock() else {
            return Vec::new();
        };
        st.open
            .values()
            .filter(|o| o.since.elapsed() >= age)
            .filter_map(|o| serde_json::from_str(&o.line).ok())
            .collect()
    }

    /// Segments in the folder whose owner is gone, each locked and read. A segment that cannot
    /// be read is skipped (and said so), never a reason to leave the others unrecovered.
    pub fn orphans(&self) -> anyhow::Result<Vec<Orphan>> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.dir)
            .with_context(|| format!("cannot list the request journal {}", self.dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !name.ends_with(SUFFIX)
                || !name.starts_with(&self.family)
                || name.starts_with(&self.own)
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
    let mut records = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<LogRecord>(line) {
            Ok(r) => records.push(r),
            Err(e) => {
                tracing::warn!(path = %path.display(), line = i + 1, error = %e, "skipping an unreadable journal line")
            }
        }
    }
    Ok(Some(Orphan {
        path: path.to_path_buf(),
        _lock: file,
        records,
    }))
}

/// A dead instance's segment, locked by us until it is dropped.
pub struct Orphan {
    pub path: PathBuf,
    _lock: File,
    pub records: Vec<LogRecord>,
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
            .records
            .iter()
            .map(|r| r.request_id.as_str())
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
        assert_eq!(late[0].request_id, "last");
    }
}
