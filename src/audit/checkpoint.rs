//! Signed checkpoints of the chain head. The signing key lives outside the database, so a
//! checkpoint cannot be forged by someone who can only write the database; an auditor keeps the
//! exported checkpoints (and the public key) to catch even a rewrite of the whole table.
use anyhow::{bail, Context};
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use std::path::Path;

pub use crate::store::Checkpoint;

fn message(seq: i64, hash: &str, at: &str) -> Vec<u8> {
    format!("mamori checkpoint v1\n{seq}\n{hash}\n{at}\n").into_bytes()
}

pub fn key_id(v: &VerifyingKey) -> String {
    hex::encode(&v.as_bytes()[..8])
}

pub fn sign(key: &SigningKey, seq: i64, hash: &str, at: &str) -> Checkpoint {
    let sig = key.sign(&message(seq, hash, at));
    Checkpoint {
        seq,
        record_hash: hash.to_string(),
        at: at.to_string(),
        key_id: key_id(&key.verifying_key()),
        signature: base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
    }
}

/// Whether `c` was signed by `key` over exactly its seq, hash and time.
pub fn is_valid(key: &VerifyingKey, c: &Checkpoint) -> bool {
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(&c.signature) else {
        return false;
    };
    let Ok(bytes) = <[u8; 64]>::try_from(raw.as_slice()) else {
        return false;
    };
    key.verify(
        &message(c.seq, &c.record_hash, &c.at),
        &Signature::from_bytes(&bytes),
    )
    .is_ok()
}

/// Loads the signing key file (base64 of the 32-byte seed), creating it (mode 0600) if asked.
pub fn load_or_create_signing_key(path: &Path, create: bool) -> anyhow::Result<(SigningKey, bool)> {
    if !path.exists() {
        if !create {
            bail!("signing key file {} does not exist", path.display());
        }
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut seed);
        super::crypto::write_private(
            path,
            base64::engine::general_purpose::STANDARD
                .encode(seed)
                .as_bytes(),
        )?;
        return Ok((SigningKey::from_bytes(&seed), true));
    }
    let key = super::crypto::read_key_file(path)?;
    Ok((SigningKey::from_bytes(key.bytes()), false))
}

/// Parses a public key given as base64 (as printed by `mamori audit public-key`).
pub fn parse_public_key(text: &str) -> anyhow::Result<VerifyingKey> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .context("the public key is not base64")?;
    let bytes: [u8; 32] = raw
        .try_into()
        .map_err(|_| anyhow::anyhow!("the public key must be 32 bytes"))?;
    VerifyingKey::from_bytes(&bytes).context("not a valid Ed25519 public key")
}

pub fn public_key_text(v: &VerifyingKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(v.as_bytes())
}

/// Reads a checkpoint file: one JSON checkpoint per line.
pub fn read_file(path: &Path) -> anyhow::Result<Vec<Checkpoint>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read checkpoint file {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {}: not a checkpoint", path.display(), i + 1))
        })
        .collect()
}

/// Appends checkpoints to a file (created 0600 if missing).
pub fn append_file(path: &Path, cps: &[Checkpoint]) -> anyhow::Result<()> {
    use std::io::Write;
    if !path.exists() {
        super::crypto::write_private(path, b"")?;
    }
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    for c in cps {
        writeln!(f, "{}", serde_json::to_string(c)?)?;
    }
    f.sync_data()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_only_as_signed() {
        let k = SigningKey::from_bytes(&[7u8; 32]);
        let c = sign(&k, 10, "abc", "2026-11-26T00:00:00Z");
        assert!(is_valid(&k.verifying_key(), &c));
        let mut forged = c.clone();
        forged.record_hash = "abd".into();
        assert!(!is_valid(&k.verifying_key(), &forged));
        let other = SigningKey::from_bytes(&[8u8; 32]);
        assert!(!is_valid(&other.verifying_key(), &c));
    }
}
