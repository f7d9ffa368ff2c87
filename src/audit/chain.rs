//! The hash chain over log records. Each record's hash covers its metadata, the SHA-256 of its
//! plaintext bodies (not the bodies, so crypto-shredding and retention leave the chain intact)
//! and the previous record's hash. Changing, removing, inserting or reordering any record breaks
//! the chain from that record on; signed checkpoints catch a rewritten suffix.
use crate::store::LogRecord;

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A length-prefixed, tagged encoding, so no two different records hash the same bytes.
/// Gathered in one buffer and hashed once: the same digest as feeding the hasher piece by piece,
/// without a call per piece.
struct Enc(Vec<u8>);

impl Enc {
    fn field(&mut self, tag: u8, v: Option<&[u8]>) {
        self.0.push(tag);
        match v {
            None => self.0.push(0),
            Some(b) => {
                self.0.push(1);
                self.0.extend_from_slice(&(b.len() as u64).to_be_bytes());
                self.0.extend_from_slice(b);
            }
        }
    }
    fn text(&mut self, tag: u8, v: Option<&str>) {
        self.field(tag, v.map(str::as_bytes));
    }
    fn int(&mut self, tag: u8, v: Option<i64>) {
        self.field(
            tag,
            v.map(|n| n.to_be_bytes()).as_ref().map(|b| b.as_slice()),
        );
    }
}

/// The hash of `r` at position `seq` after `prev`.
pub fn record_hash(seq: i64, prev: &str, r: &LogRecord) -> String {
    let mut e = Enc(Vec::with_capacity(1024));
    e.0.extend_from_slice(b"mamori log record v1\0");
    e.int(1, Some(seq));
    e.text(2, Some(prev));
    e.text(3, Some(&r.request_id));
    e.text(4, Some(&r.at));
    e.text(5, r.staff_id.as_deref());
    e.text(6, r.key_id.as_deref());
    e.text(7, r.contract_id.as_deref());
    e.text(8, r.deliverable.as_deref());
    e.text(9, r.purpose.as_deref());
    e.text(10, r.provider_id.as_deref());
    e.int(11, r.provider_version);
    e.text(12, r.model.as_deref());
    e.text(13, Some(&r.endpoint));
    e.int(14, Some(i64::from(r.streamed)));
    e.text(15, Some(&r.outcome));
    e.text(16, r.code.as_deref());
    e.int(17, Some(r.http_status));
    e.int(18, Some(r.latency_us));
    e.int(19, r.input_tokens);
    e.int(20, r.output_tokens);
    e.text(21, Some(&r.redactions));
    e.text(22, r.request_sha256.as_deref());
    e.text(23, r.output_sha256.as_deref());
    crate::digest::sha256_hex(&e.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_and_the_position_matter() {
        let r = LogRecord {
            request_id: "r".into(),
            endpoint: "e".into(),
            outcome: "ok".into(),
            ..Default::default()
        };
        let h = record_hash(1, GENESIS, &r);
        assert_ne!(h, record_hash(2, GENESIS, &r));
        assert_ne!(h, record_hash(1, &h, &r));
        let mut r2 = r.clone();
        r2.deliverable = Some(String::new());
        assert_ne!(
            h,
            record_hash(1, GENESIS, &r2),
            "None and empty must differ"
        );
        let mut r3 = r.clone();
        r3.output_sha256 = Some("x".into());
        assert_ne!(h, record_hash(1, GENESIS, &r3));
    }

    /// Records already in logs were hashed this way: the encoding must never change.
    #[test]
    fn the_hash_of_a_known_record_is_unchanged() {
        let r = LogRecord {
            request_id: "req_golden".into(),
            at: "2026-11-26T00:00:00.000000Z".into(),
            staff_id: Some("s1".into()),
            contract_id: Some("c1".into()),
            provider_version: Some(3),
            endpoint: "chat.completions".into(),
            outcome: "ok".into(),
            http_status: 200,
            latency_us: 1234,
            redactions: "{\"my_number\":1}".into(),
            request_sha256: Some("ab".repeat(32)),
            ..Default::default()
        };
        assert_eq!(
            record_hash(7, GENESIS, &r),
            "4602e1c3b0600b07114f566ad50accd31fefe177b439440f8a4230af2a2ba5fc"
        );
    }
}
