//! Encryption at rest. Bodies are sealed with AES-256-GCM under a per-contract data key; data
//! keys are stored only wrapped (sealed) by a master key that never enters the database.
//! Destroying a contract's wrapped data key makes its bodies unreadable everywhere.
use anyhow::{bail, Context};
use base64::Engine;
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use sha2::{Digest, Sha256};
use std::path::Path;

const NONCE: usize = 12;
const TAG: usize = 16;

/// A 256-bit key. `Debug` shows only its id.
#[derive(Clone)]
pub struct Key {
    bytes: [u8; 32],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.id())
    }
}

impl Key {
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        Self { bytes }
    }

    pub fn from_base64(text: &str) -> anyhow::Result<Self> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .context("the master key is not base64; it must be 32 random bytes in base64 (e.g. `openssl rand -base64 32`)")?;
        let bytes: [u8; 32] = raw.try_into().map_err(|v: Vec<u8>| {
            anyhow::anyhow!(
                "the master key is {} bytes; it must be exactly 32 random bytes in base64",
                v.len()
            )
        })?;
        Ok(Self { bytes })
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.bytes)
    }

    /// A public identifier: which master key wrapped a data key. Reveals nothing of the key.
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"mamori key id\0");
        h.update(self.bytes);
        hex::encode(&h.finalize()[..8])
    }

    fn cipher(&self) -> anyhow::Result<LessSafeKey> {
        UnboundKey::new(&AES_256_GCM, &self.bytes)
            .map(LessSafeKey::new)
            .map_err(|_| anyhow::anyhow!("cannot use the key for AES-256-GCM"))
    }

    /// nonce ‖ ciphertext ‖ tag (AES-256-GCM), bound to `aad` (so a body cannot be moved to
    /// another record). Built in one buffer: bodies are sealed on every request.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE];
        rand::thread_rng().fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(NONCE + plaintext.len() + TAG);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .cipher()?
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                out.get_mut(NONCE..).unwrap_or_default(),
            )
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> anyhow::Result<Vec<u8>> {
        if sealed.len() < NONCE + TAG {
            bail!("sealed data is too short");
        }
        let (nonce, ct) = sealed.split_at(NONCE);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| anyhow::anyhow!("sealed data has a bad nonce"))?;
        let mut buf = ct.to_vec();
        let plain_len = self
            .cipher()?
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| anyhow::anyhow!("decryption failed: wrong key, or the data was altered"))?
            .len();
        buf.truncate(plain_len);
        Ok(buf)
    }

    pub fn wrap(&self, data_key: &Key, contract: &str) -> anyhow::Result<Vec<u8>> {
        self.seal(&data_key.bytes, &wrap_aad(contract))
    }

    pub fn unwrap_key(&self, wrapped: &[u8], contract: &str) -> anyhow::Result<Key> {
        let raw = self.open(wrapped, &wrap_aad(contract))?;
        let bytes: [u8; 32] = raw
            .try_into()
            .map_err(|_| anyhow::anyhow!("unwrapped data key has the wrong length"))?;
        Ok(Key { bytes })
    }
}

fn wrap_aad(contract: &str) -> Vec<u8> {
    [b"mamori data key\0".as_slice(), contract.as_bytes()].concat()
}

/// The master keys this process knows: the current one wraps new data keys; previous ones
/// can still unwrap during a rotation.
#[derive(Debug, Clone)]
pub struct MasterKeys {
    pub current: Key,
    pub previous: Vec<Key>,
}

impl MasterKeys {
    pub fn by_id(&self, id: &str) -> Option<&Key> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id() == id)
    }
}

/// Reads a key file (base64 text). Refuses files others can read.
pub fn read_key_file(path: &Path) -> anyhow::Result<Key> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "key file {} is readable by others (mode {:o}); run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
    Key::from_base64(&text).with_context(|| format!("key file {}", path.display()))
}

/// Creates a new random key file with mode 0600; fails if it exists.
pub fn create_key_file(path: &Path) -> anyhow::Result<Key> {
    let key = Key::random();
    write_private(path, key.to_base64().as_bytes())?;
    Ok(key)
}

/// Writes a new file readable only by its owner.
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_round_trips_and_detects_tampering_and_moves() {
        let k = Key::random();
        let mut s = k.seal("機密の出力".as_bytes(), b"req_1/output").unwrap();
        assert_eq!(
            k.open(&s, b"req_1/output").unwrap(),
            "機密の出力".as_bytes()
        );
        assert!(
            k.open(&s, b"req_2/output").is_err(),
            "a body moved to another record must not open"
        );
        let last = s.len() - 1;
        s[last] ^= 1;
        assert!(k.open(&s, b"req_1/output").is_err());
        assert!(Key::random()
            .open(&k.seal(b"x", b"a").unwrap(), b"a")
            .is_err());
    }

    /// Bodies sealed by earlier versions (the RustCrypto `aes-gcm` crate) must still open: the
    /// format is the standard one, nonce ‖ ciphertext ‖ tag.
    #[test]
    fn opens_what_earlier_versions_sealed() {
        let k = Key { bytes: [7u8; 32] };
        let sealed = hex::decode("d8fb8d70ad9fbbae527de85b3203919dcae01f9033875dd5e024dc09c35b1efd7e16e62005e1d281bff928147ecbdc497638db524f3e").unwrap();
        assert_eq!(
            k.open(&sealed, b"req_kat/output").unwrap(),
            "mamori 機密 known answer".as_bytes()
        );
        assert!(k.open(&sealed, b"req_other/output").is_err());
    }

    #[test]
    fn wrapping_binds_the_contract() {
        let m = Key::random();
        let d = Key::random();
        let w = m.wrap(&d, "c1").unwrap();
        assert_eq!(m.unwrap_key(&w, "c1").unwrap().id(), d.id());
        assert!(m.unwrap_key(&w, "c2").is_err());
    }

    #[test]
    fn bad_master_keys_are_explained_and_never_printed() {
        let e = Key::from_base64("c2hvcnQ=").unwrap_err().to_string();
        assert!(e.contains("32"), "{e}");
        let k = Key::random();
        assert!(!format!("{k:?}").contains(&k.to_base64()));
    }
}
