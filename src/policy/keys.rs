//! Gateway keys: random, with a recognisable prefix, shown once and stored only as a hash.
use rand::RngCore;

pub const KEY_PREFIX: &str = "mamori_sk_";

/// A freshly issued key: its public id and the secret shown once.
pub struct IssuedKey {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

pub fn generate() -> IssuedKey {
    use base64::Engine;
    let mut rng = rand::thread_rng();
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let mut id = [0u8; 6];
    rng.fill_bytes(&mut id);
    IssuedKey {
        id: format!("key_{}", hex::encode(id)),
        secret: format!(
            "{KEY_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        ),
    }
}

/// Keys carry 256 random bits, so a plain SHA-256 is enough; no slow KDF is needed.
pub fn hash(secret: &str) -> String {
    crate::digest::sha256_hex(secret.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_prefixed_and_hidden_in_debug() {
        let a = generate();
        let b = generate();
        assert!(a.secret.starts_with(KEY_PREFIX));
        assert_ne!(a.secret, b.secret);
        assert_ne!(hash(&a.secret), hash(&b.secret));
        assert!(!format!("{a:?}").contains(&a.secret));
    }
}
