//! `mamori audit verify`: proves the log is complete and unaltered, or names the first bad record.
use super::chain::{record_hash, GENESIS};
use super::checkpoint::is_valid;
use super::DataKeys;
use crate::store::{Checkpoint, Store};
use ed25519_dalek::VerifyingKey;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

#[derive(Debug, Serialize)]
pub struct Report {
    pub records: i64,
    pub head_seq: i64,
    pub head_hash: String,
    pub checkpoints_checked: usize,
    pub bodies_checked: u64,
    /// The first problem found, naming the record; `None` if the log verifies.
    pub problem: Option<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

const PAGE: i64 = 5000;

/// Walks the whole chain. Checkpoints (from the database and from outside it) must carry a valid
/// signature by `public` and match the chain at their position; bodies that can be decrypted
/// must match their recorded hashes.
pub async fn verify(
    store: &Store,
    public: &VerifyingKey,
    external: &[Checkpoint],
    keys: Option<&DataKeys>,
) -> anyhow::Result<Report> {
    let mut checkpoints: HashMap<i64, Checkpoint> = HashMap::new();
    let stored = store.checkpoints().await?;
    let mut report = Report {
        records: 0,
        head_seq: 0,
        head_hash: GENESIS.into(),
        checkpoints_checked: 0,
        bodies_checked: 0,
        problem: None,
    };
    for (origin, c) in stored
        .iter()
        .map(|c| ("database", c))
        .chain(external.iter().map(|c| ("external", c)))
    {
        if !is_valid(public, c) {
            report.problem = Some(format!(
                "checkpoint at seq {} ({origin}) has no valid signature: it was forged or altered",
                c.seq
            ));
            return Ok(report);
        }
        if let Some(other) = checkpoints.get(&c.seq) {
            if other.record_hash != c.record_hash {
                report.problem = Some(format!("two validly signed checkpoints disagree at seq {}: the log was rewritten after one of them", c.seq));
                return Ok(report);
            }
        }
        checkpoints.insert(c.seq, c.clone());
    }
    let (mut seq, mut prev) = (0i64, GENESIS.to_string());
    loop {
        let page = store.log_page(seq, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for r in &page {
            let expected = seq + 1;
            if r.seq != expected {
                report.problem = Some(format!(
                    "record seq {expected} is missing (next is seq {} `{}`): a record was removed",
                    r.seq, r.request_id
                ));
                return Ok(report);
            }
            if r.prev_hash != prev {
                report.problem = Some(format!(
                    "record seq {} `{}` does not follow the record before it: records were inserted, removed or reordered",
                    r.seq, r.request_id
                ));
                return Ok(report);
            }
            let h = record_hash(r.seq, &prev, r);
            if h != r.record_hash {
                report.problem = Some(format!(
                    "record seq {} `{}` was changed after it was written",
                    r.seq, r.request_id
                ));
                return Ok(report);
            }
            if let Some(c) = checkpoints.get(&r.seq) {
                if c.record_hash != h {
                    report.problem = Some(format!(
                        "record seq {} `{}` does not match the signed checkpoint of {}: the log was rewritten from here or earlier",
                        r.seq, r.request_id, c.at
                    ));
                    return Ok(report);
                }
                report.checkpoints_checked += 1;
            }
            if let Some(keys) = keys {
                for (part, want) in [("request", &r.request_sha256), ("output", &r.output_sha256)] {
                    if let Some(plain) = keys.open_body(r, part).await.map_err(|e| {
                        anyhow::anyhow!("record seq {} `{}`: {part} body: {e}", r.seq, r.request_id)
                    })? {
                        report.bodies_checked += 1;
                        if want.as_deref() != Some(&hex::encode(Sha256::digest(&plain))) {
                            report.problem = Some(format!("record seq {} `{}`: its {part} body does not match its recorded hash", r.seq, r.request_id));
                            return Ok(report);
                        }
                    }
                }
            }
            seq = r.seq;
            prev = h;
            report.records += 1;
        }
    }
    report.head_seq = seq;
    report.head_hash = prev.clone();
    let (head_seq, head_hash) = store.chain_head().await?;
    if head_seq != seq || head_hash != prev {
        report.problem = Some(format!(
            "the chain head says seq {head_seq}, but the records end at seq {seq}: records after seq {seq} were removed or the head was altered"
        ));
        return Ok(report);
    }
    if let Some(c) = checkpoints
        .values()
        .filter(|c| c.seq > seq)
        .min_by_key(|c| c.seq)
    {
        report.problem = Some(format!(
            "a signed checkpoint of {} covers seq {}, but the log ends at seq {seq}: records were removed from the end",
            c.at, c.seq
        ));
    }
    Ok(report)
}
