//! Sealed log bodies of the SQLite backend, kept outside the database's B-tree.
//!
//! In the table, a record's few kilobytes of sealed bodies took overflow pages that SQLite wrote
//! twice (into the WAL, then back at checkpoint), with two system calls per page. Here they are
//! appended to one file per contract and UTC day, `<database>-bodies/<hex contract>/<day>.bodies`,
//! with one `writev` per commit (no copy into one buffer); the row keeps only where they are
//! (`body_ref`), and the chain still covers their hashes. Appends happen inside the write
//! transaction, so writers in several processes never interleave in a file, and a rolled-back
//! commit leaves only unreferenced sealed bytes behind. Per-day files let retention delete bodies by the file; contract close deletes
//! the contract's folder (its data key is destroyed first, so nothing left could be opened).
//! PostgreSQL keeps bodies in the row: several hosts share it, and they share no disk.
use super::log::LogRecord;
use anyhow::Context;
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::IoSlice;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub(crate) struct BodyFiles {
    dir: PathBuf,
    sync: Arc<Mutex<SyncState>>,
}

/// What this process still owes the disk.
#[derive(Debug, Default)]
struct SyncState {
    /// Files appended to since the last checkpoint, without an fsync (`sync_pending`).
    pending: HashSet<PathBuf>,
    /// Files whose folder entries (up to the database's folder) this process has synced.
    entries_synced: HashSet<PathBuf>,
    /// Open handles of files appended to recently (a commit then costs no `open`/`close`).
    handles: HashMap<PathBuf, File>,
}

/// Open handles kept at most (one per contract and day in use).
const HANDLES: usize = 16;

/// Where a record's sealed bodies are: `day:offset:request_len:output_len` in its contract's
/// folder. A length of 0 is no body (a sealed body is never empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BodyRef<'a> {
    day: &'a str,
    offset: u64,
    request: u64,
    output: u64,
}

impl<'a> BodyRef<'a> {
    fn parse(s: &'a str) -> Option<Self> {
        let mut it = s.split(':');
        let day = it.next()?;
        let r = BodyRef {
            day,
            offset: it.next()?.parse().ok()?,
            request: it.next()?.parse().ok()?,
            output: it.next()?.parse().ok()?,
        };
        (it.next().is_none() && day_ok(day)).then_some(r)
    }
}

/// `YYYY-MM-DD`: the only day names that become file names.
fn day_ok(day: &str) -> bool {
    day.len() == 10
        && day.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
}

/// Lets the kernel drop a synced body file's whole pages from its cache. Bodies are written once
/// and read rarely (`log show`, a disclosure); kept cached, every append takes a page the kernel
/// has not used yet, which in a virtual machine whose free memory goes back to the host costs a
/// fault to the host per page (docs/BENCHMARKS.md). Dropped, the next appends reuse the pages
/// just freed. `synced`: the file's length when it was synced. The last page, which the next
/// append fills further, stays: dropped, it would be read back from disk inside that append's
/// transaction. Only advice: a failure changes nothing.
fn drop_cached(f: &File, synced: u64) {
    const PAGE: u64 = 4096;
    let whole = synced - synced % PAGE;
    #[cfg(target_os = "linux")]
    if let Ok(len) = libc::off_t::try_from(whole) {
        if len == 0 {
            return;
        }
        use std::os::fd::AsRawFd;
        // SAFETY: a plain system call on a descriptor `f` keeps open for its duration.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, len, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            tracing::debug!(errno = rc, "posix_fadvise(DONTNEED) on a body file failed");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (f, whole);
}

impl BodyFiles {
    /// The folder beside the database file `db`.
    pub(crate) fn beside(db: &str) -> Self {
        Self {
            dir: PathBuf::from(format!("{db}-bodies")),
            sync: Arc::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SyncState> {
        self.sync
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes `path`'s data and its folder entries durable.
    fn sync_file(&self, path: &Path, f: &File) -> anyhow::Result<()> {
        f.sync_data()
            .with_context(|| format!("cannot sync {}", path.display()))?;
        if self.state().entries_synced.contains(path) {
            return Ok(());
        }
        // The file's folder, the contract's, and the one holding `<database>-bodies`: any of
        // them may be new.
        let mut dir = path.parent();
        for _ in 0..3 {
            let Some(d) = dir else { break };
            let d = if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            };
            File::open(d)
                .and_then(|h| h.sync_all())
                .with_context(|| format!("cannot sync the folder {}", d.display()))?;
            dir = d.parent();
        }
        self.state().entries_synced.insert(path.to_path_buf());
        Ok(())
    }

    /// Syncs every body file appended to without an fsync. The checkpoint thread calls this
    /// before copying the WAL into the database, so that a power loss never leaves durable rows
    /// pointing at bodies that were still only in the page cache.
    pub(crate) fn sync_pending(&self) -> anyhow::Result<()> {
        let pending: Vec<PathBuf> = std::mem::take(&mut self.state().pending)
            .into_iter()
            .collect();
        for (i, path) in pending.iter().enumerate() {
            let synced = match File::open(path) {
                Ok(f) => {
                    // Taken before the sync: what is appended meanwhile stays cached.
                    let len = f.metadata().map_or(0, |m| m.len());
                    self.sync_file(path, &f).map(|()| drop_cached(&f, len))
                }
                // Deleted meanwhile (retention, contract close): nothing to keep.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e).with_context(|| format!("cannot open {}", path.display())),
            };
            if let Err(e) = synced {
                // Still owed: try again before the next checkpoint.
                self.state()
                    .pending
                    .extend(pending.get(i..).unwrap_or_default().iter().cloned());
                return Err(e);
            }
        }
        Ok(())
    }

    fn contract_dir(&self, contract: &str) -> PathBuf {
        // Hex, not the id itself: ids may contain `.`, and a folder name must never be `..`.
        self.dir.join(crate::digest::hex(contract.as_bytes()))
    }

    fn file(&self, contract: &str, day: &str) -> PathBuf {
        self.contract_dir(contract).join(format!("{day}.bodies"))
    }

    /// Appends the sealed bodies of `records` (one `write` per contract and day) and returns
    /// where each record's went. Records without a contract have none to move (bodies are
    /// sealed under a contract's key) and get no reference.
    pub(crate) fn append(
        &self,
        records: &[LogRecord],
        sync: bool,
    ) -> anyhow::Result<Vec<Option<String>>> {
        let mut refs = vec![None; records.len()];
        let mut groups: Vec<((String, String), Vec<usize>)> = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let (Some(contract), true) = (
                &r.contract_id,
                r.request_body.is_some() || r.output_body.is_some(),
            ) else {
                continue;
            };
            let day = r.at.get(..10).filter(|d| day_ok(d)).unwrap_or("0000-00-00");
            let key = (contract.clone(), day.to_string());
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(i),
                None => groups.push((key, vec![i])),
            }
        }
        for ((contract, day), members) in groups {
            let path = self.file(&contract, &day);
            let (f, mut offset) = self.open_for_append(&path)?;
            let start = offset;
            let mut slices = Vec::with_capacity(members.len() * 2);
            for i in members {
                let Some(r) = records.get(i) else { continue };
                let req = r.request_body.as_deref().unwrap_or_default();
                let out = r.output_body.as_deref().unwrap_or_default();
                if let Some(slot) = refs.get_mut(i) {
                    *slot = Some(format!("{day}:{offset}:{}:{}", req.len(), out.len()));
                }
                offset += (req.len() + out.len()) as u64;
                slices.push(IoSlice::new(req));
                slices.push(IoSlice::new(out));
            }
            crate::audit::journal::write_all_vectored(&f, &mut slices)
                .with_context(|| format!("cannot append log bodies to {}", path.display()))?;
            // A file past its first stretch (a busy day) gets blocks for the next one, reserved
            // once rather than page by page. Small files get none: the reservation outlives the
            // day's writes until retention deletes the file. Best effort (see `preallocate`).
            if offset >= PREALLOCATE && start / PREALLOCATE != offset / PREALLOCATE {
                let _ = crate::audit::journal::preallocate(&f, offset, PREALLOCATE);
            }
            if sync {
                self.sync_file(&path, &f)?;
            } else {
                self.state().pending.insert(path.clone());
            }
            let mut st = self.state();
            if st.handles.len() >= HANDLES {
                st.handles.clear();
            }
            st.handles.insert(path, f);
        }
        Ok(refs)
    }

    /// The file to append to and its length. A kept handle is used unless its file was deleted
    /// meanwhile (retention or a contract close, under the same write lock as this append).
    fn open_for_append(&self, path: &Path) -> anyhow::Result<(File, u64)> {
        use std::os::unix::fs::MetadataExt;
        let kept = self.state().handles.remove(path);
        if let Some(f) = kept {
            if let Ok(m) = f.metadata() {
                if m.nlink() > 0 {
                    return Ok((f, m.len()));
                }
            }
        }
        let f = open_append(path)?;
        let len = f
            .metadata()
            .with_context(|| format!("cannot read the size of {}", path.display()))?
            .len();
        Ok((f, len))
    }

    /// Reads the bodies a row points to into `r`. A missing or short file is an error naming the
    /// record: the bodies were removed or altered outside mamori.
    pub(crate) fn load(
        &self,
        r: &mut LogRecord,
        body_ref: &str,
        open: &mut HashMap<PathBuf, File>,
    ) -> anyhow::Result<()> {
        let bad = || format!("record seq {} `{}`: its bodies", r.seq, r.request_id);
        let at = BodyRef::parse(body_ref)
            .with_context(|| format!("{}: reference `{body_ref}` is malformed", bad()))?;
        let contract = r
            .contract_id
            .as_deref()
            .with_context(|| format!("{}: the record has no contract", bad()))?;
        let path = self.file(contract, at.day);
        let f = match open.get(&path) {
            Some(f) => f,
            None => {
                let f = File::open(&path).with_context(|| {
                    format!("{} are missing: cannot open {}", bad(), path.display())
                })?;
                open.entry(path.clone()).or_insert(f)
            }
        };
        let size = f.metadata()?.len();
        // A reference from the database is not trusted to be sane: it must lie in the file.
        let read = |offset: Option<u64>, len: u64| -> anyhow::Result<Option<Vec<u8>>> {
            if len == 0 {
                return Ok(None);
            }
            let offset = offset
                .filter(|o| o.checked_add(len).is_some_and(|end| end <= size))
                .ok_or_else(|| anyhow::anyhow!("the range is outside the file"))?;
            let mut b = vec![0u8; usize::try_from(len)?];
            f.read_exact_at(&mut b, offset)?;
            Ok(Some(b))
        };
        let req = read(Some(at.offset), at.request);
        let out = read(at.offset.checked_add(at.request), at.output);
        match (req, out) {
            (Ok(req), Ok(out)) => {
                r.request_body = req;
                r.output_body = out;
                Ok(())
            }
            (Err(e), _) | (_, Err(e)) => Err(e.context(format!(
                "{} are missing from {} (the file is shorter than recorded)",
                bad(),
                path.display()
            ))),
        }
    }

    /// Overwrites the bodies these rows point to with zeros and syncs them (retention), so
    /// they are gone before their day's file is. One file open per day; a reference that cannot
    /// be erased is reported and skipped (its day's file goes later), not a reason to stop.
    pub(crate) fn erase(&self, contract: &str, refs: &[String]) -> usize {
        let mut by_day: HashMap<&str, Vec<BodyRef<'_>>> = HashMap::new();
        for r in refs.iter().filter_map(|r| BodyRef::parse(r)) {
            by_day.entry(r.day).or_default().push(r);
        }
        let mut failed = 0;
        for (day, refs) in by_day {
            let path = self.file(contract, day);
            let f = match OpenOptions::new().write(true).open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot open a body file to erase expired bodies");
                    failed += refs.len();
                    continue;
                }
            };
            let size = f.metadata().map_or(0, |m| m.len());
            for r in &refs {
                let len = r.request.saturating_add(r.output);
                let end = r.offset.saturating_add(len).min(size);
                let zeros = vec![0u8; usize::try_from(end.saturating_sub(r.offset)).unwrap_or(0)];
                if let Err(e) = f.write_all_at(&zeros, r.offset) {
                    tracing::warn!(file = %path.display(), error = %e, "cannot erase expired bodies");
                    failed += 1;
                }
            }
            if let Err(e) = f.sync_data() {
                tracing::warn!(file = %path.display(), error = %e, "cannot sync erased bodies");
            }
        }
        failed
    }

    /// Whether the contract has any body file left.
    pub(crate) fn has_contract(&self, contract: &str) -> bool {
        self.contract_dir(contract).exists()
    }

    /// Days of a contract that have a body file, oldest first.
    pub(crate) fn days(&self, contract: &str) -> anyhow::Result<Vec<String>> {
        let dir = self.contract_dir(contract);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
        };
        let mut days = Vec::new();
        for e in entries {
            let name = e?.file_name();
            if let Some(day) = name.to_str().and_then(|n| n.strip_suffix(".bodies")) {
                if day_ok(day) {
                    days.push(day.to_string());
                }
            }
        }
        days.sort();
        Ok(days)
    }

    pub(crate) fn remove_day(&self, contract: &str, day: &str) -> anyhow::Result<()> {
        remove_if_present(&self.file(contract, day))
    }

    /// Removes every body file of a contract (after its data key is destroyed).
    pub(crate) fn remove_contract(&self, contract: &str) -> anyhow::Result<()> {
        let dir = self.contract_dir(contract);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", dir.display()))
            }
            _ => Ok(()),
        }
    }
}

/// How far ahead of a body file's end disk blocks are reserved.
const PREALLOCATE: u64 = 4 << 20;

fn open_append(path: &Path) -> anyhow::Result<File> {
    if let Ok(f) = OpenOptions::new().append(true).open(path) {
        return Ok(f);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the log body folder {}", dir.display()))?;
    }
    OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("cannot create the log body file {}", path.display()))
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_strictly() {
        let r = BodyRef::parse("2026-11-26:10:3:4").unwrap();
        assert_eq!(
            (r.day, r.offset, r.request, r.output),
            ("2026-11-26", 10, 3, 4)
        );
        for bad in [
            "../../x:1:2:3",
            "2026-11-26:1:2",
            "2026-11-26:1:2:3:4",
            "2026-11-26:-1:2:3",
        ] {
            assert!(BodyRef::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn bodies_round_trip_and_erase() {
        let dir = tempfile::tempdir().unwrap();
        let files = BodyFiles::beside(dir.path().join("m.db").to_str().unwrap());
        let recs: Vec<LogRecord> = (0..3)
            .map(|i| LogRecord {
                seq: i + 1,
                request_id: format!("req_{i}"),
                at: "2026-11-26T01:02:03Z".into(),
                contract_id: Some("c.1".into()),
                request_body: Some(vec![b'a' + i as u8; 5]),
                output_body: (i != 1).then(|| vec![b'x'; 7]),
                ..Default::default()
            })
            .collect();
        let refs = files.append(&recs, false).unwrap();
        let mut open = HashMap::new();
        for (r, body_ref) in recs.iter().zip(&refs) {
            let mut back = LogRecord {
                seq: r.seq,
                request_id: r.request_id.clone(),
                contract_id: r.contract_id.clone(),
                ..Default::default()
            };
            files
                .load(&mut back, body_ref.as_deref().unwrap(), &mut open)
                .unwrap();
            assert_eq!(back.request_body, r.request_body);
            assert_eq!(back.output_body, r.output_body);
        }
        let first = refs[0].as_deref().unwrap();
        assert_eq!(files.erase("c.1", &[first.to_string()]), 0);
        let mut back = LogRecord {
            contract_id: Some("c.1".into()),
            ..Default::default()
        };
        files.load(&mut back, first, &mut HashMap::new()).unwrap();
        assert_eq!(back.request_body, Some(vec![0; 5]));
        assert_eq!(files.days("c.1").unwrap(), vec!["2026-11-26".to_string()]);
        // A forged reference past the end, or one whose end overflows, is an error, not a crash.
        for forged in [
            "2026-11-26:0:999999999:0",
            "2026-11-26:18446744073709551615:1:1",
        ] {
            assert!(files.load(&mut back, forged, &mut HashMap::new()).is_err());
        }
        files.append(&recs, true).unwrap();
        files.sync_pending().unwrap();
        // A file deleted while its handle is kept is created again, not written unlinked.
        files.remove_day("c.1", "2026-11-26").unwrap();
        let again = files.append(&recs, false).unwrap();
        assert!(again[0].as_deref().unwrap().starts_with("2026-11-26:0:"));
        assert!(files.days("c.1").unwrap().len() == 1);
        files.remove_contract("c.1").unwrap();
        assert!(files.load(&mut back, first, &mut HashMap::new()).is_err());
    }
}
