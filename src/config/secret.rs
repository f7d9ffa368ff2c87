//! Secrets are referenced, never written: `env:NAME`, `file:PATH` or the literal `none`.
use std::fmt;

/// A reference to a secret as written in a file. Its `Debug` shows only the reference.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct SecretRef(String);

/// A resolved secret value. `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretRef({})", self.0)
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl SecretRef {
    /// Accepts only the reference forms, so that a pasted key is refused, not stored.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "none" {
            return Ok(Self(s.to_string()));
        }
        if let Some(name) = s.strip_prefix("env:") {
            let ok =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if ok {
                return Ok(Self(s.to_string()));
            }
            return Err("not a valid environment variable reference; write env:NAME with letters, digits and _ (the value is not shown: it may be a secret)".to_string());
        }
        if let Some(path) = s.strip_prefix("file:") {
            if !path.is_empty() {
                return Ok(Self(s.to_string()));
            }
        }
        Err("secrets are never written in files: write `env:NAME` (an environment variable), `file:PATH` (a file holding the secret) or `none`".to_string())
    }

    pub fn is_none(&self) -> bool {
        self.0 == "none"
    }

    /// Resolves the reference now; `Ok(None)` for `none`.
    pub fn resolve(&self) -> Result<Option<Secret>, String> {
        if self.is_none() {
            return Ok(None);
        }
        if let Some(name) = self.0.strip_prefix("env:") {
            return match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(Some(Secret(v))),
                _ => Err(format!(
                    "environment variable {name} is not set for the gateway process; set it, or change the reference"
                )),
            };
        }
        if let Some(path) = self.0.strip_prefix("file:") {
            return match std::fs::read_to_string(path) {
                Ok(v) => Ok(Some(Secret(v.trim().to_string()))),
                Err(e) => Err(format!("cannot read secret file {path}: {e}")),
            };
        }
        Err(format!("unsupported secret reference {}", self.0))
    }
}

impl<'de> serde::Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SecretRef::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_secret() {
        let s = Secret("sk-very-secret".into());
        assert!(!format!("{s:?}").contains("very"));
    }

    #[test]
    fn a_pasted_key_is_refused() {
        assert!(SecretRef::parse("sk-abc123").is_err());
        assert!(SecretRef::parse("env:OPENAI_API_KEY").is_ok());
        assert!(SecretRef::parse("env:").is_err());
    }
}
