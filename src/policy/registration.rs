//! The provider registration file: one format for the shipped catalogue and for an
//! administrator's own files. Parsed strictly; every error names the file, key and reason.
use crate::config::SecretRef;
use anyhow::{bail, Context};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireApi {
    Openai,
    Anthropic,
}

impl WireApi {
    pub fn as_str(self) -> &'static str {
        match self {
            WireApi::Openai => "openai",
            WireApi::Anthropic => "anthropic",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    Japan,
    Abroad,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub id: String,
    /// サービス名称
    pub name: String,
    /// サービス提供事業者
    pub vendor: String,
    pub api: WireApi,
    pub base_url: String,
    pub api_key: SecretRef,
    pub models: Vec<String>,
    pub data_use: DataUse,
    pub location: Location,
    #[serde(default)]
    pub certifications: Certifications,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataUse {
    /// Must be `Some(false)` for the provider to be routable.
    pub trains_on_inputs: Option<bool>,
    pub evidence_url: String,
    pub evidence: String,
    #[serde(with = "date")]
    pub verified_on: NaiveDate,
    #[serde(with = "date")]
    pub review_by: NaiveDate,
    pub retention_days: Option<u32>,
    pub provider_staff_access: Option<String>,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub storage: Storage,
    #[serde(default)]
    pub countries: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certifications {
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default)]
    pub ismap: bool,
}

/// Dates may be TOML dates (`2026-11-01`) or strings (`"2026-11-01"`, as stored in JSON).
mod date {
    use chrono::NaiveDate;
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Input {
        Toml(toml::value::Datetime),
        Text(String),
    }

    pub fn serialize<S: Serializer>(d: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&d.format("%Y-%m-%d").to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
        let text = match Input::deserialize(d)? {
            Input::Toml(t) => t.to_string(),
            Input::Text(s) => s,
        };
        NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(|_| {
            serde::de::Error::custom(format!("`{text}` is not a date like 2026-11-01"))
        })
    }
}

impl Registration {
    /// Reads and validates a registration file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read registration file {}", path.display()))?;
        Self::from_toml(&text)
            .with_context(|| format!("invalid registration file {}", path.display()))
    }

    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let reg: Registration = crate::config::from_toml(text)?;
        reg.validate()?;
        Ok(reg)
    }

    /// Parses a registration as stored (validated JSON).
    pub fn from_json(text: &str) -> anyhow::Result<Self> {
        Ok(serde_json::from_str(text)?)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !self.id.starts_with('-');
        if !id_ok {
            bail!(
                "key `id`: `{}` must be 1–64 characters of a-z, 0-9 and -",
                self.id
            );
        }
        for (key, v) in [("name", &self.name), ("vendor", &self.vendor)] {
            if v.trim().is_empty() {
                bail!("key `{key}`: must not be empty (it is printed on the notification form)");
            }
        }
        check_base_url(&self.base_url)?;
        if self.models.is_empty() {
            bail!("key `models`: list at least one model the provider serves");
        }
        let mut seen = std::collections::HashSet::new();
        for m in &self.models {
            if m.is_empty() || m.chars().any(char::is_whitespace) {
                bail!("key `models`: `{m}` is not a model name (empty or contains spaces)");
            }
            if !seen.insert(m) {
                bail!("key `models`: `{m}` is listed twice");
            }
        }
        let du = &self.data_use;
        if du.trains_on_inputs == Some(false) {
            if !du.evidence_url.starts_with("https://") {
                bail!("key `data_use.evidence_url`: give the https:// page where the provider says it does not train on inputs");
            }
            if du.evidence.trim().is_empty() {
                bail!("key `data_use.evidence`: quote what the provider's page says");
            }
        }
        if du.review_by <= du.verified_on {
            bail!(
                "key `data_use.review_by`: {} must come after verified_on {}",
                du.review_by,
                du.verified_on
            );
        }
        if self.location.storage == Storage::Japan
            && self.location.countries.iter().any(|c| c != "JP")
        {
            bail!(
                "key `location.countries`: storage = \"japan\" but countries lists {:?}",
                self.location.countries
            );
        }
        Ok(())
    }

    pub fn canonical_json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string(self)?)
    }

    pub fn content_sha256(&self) -> anyhow::Result<String> {
        Ok(hex::encode(Sha256::digest(
            self.canonical_json()?.as_bytes(),
        )))
    }

    /// Why this registration may not be routed to, or `None` if its facts allow it.
    pub fn unroutable_reason(&self, today: NaiveDate) -> Option<String> {
        match self.data_use.trains_on_inputs {
            Some(true) => return Some(format!(
                "provider `{}` is registered as training on inputs (data_use.trains_on_inputs = true); the contract (第8-1) allows only services that do not train on inputs — use another provider",
                self.id
            )),
            None => return Some(format!(
                "provider `{}` has no data_use.trains_on_inputs fact; an administrator must verify it and re-register",
                self.id
            )),
            Some(false) => {}
        }
        if today > self.data_use.review_by {
            return Some(format!(
                "provider `{}`'s registration was due for review on {}; an administrator must re-check its terms and re-register it with new verified_on and review_by",
                self.id, self.data_use.review_by
            ));
        }
        None
    }

    /// The list of changed keys between two versions, for the history.
    pub fn changes_from(&self, old: Option<&Registration>) -> anyhow::Result<Vec<String>> {
        let Some(old) = old else {
            return Ok(vec!["registered".to_string()]);
        };
        let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
        flatten("", &serde_json::to_value(old)?, &mut a);
        flatten("", &serde_json::to_value(self)?, &mut b);
        let mut out = Vec::new();
        for (k, v) in &b {
            match a.get(k) {
                Some(o) if o == v => {}
                Some(o) => out.push(format!("{k}: {o} → {v}")),
                None => out.push(format!("{k}: added {v}")),
            }
        }
        for (k, o) in &a {
            if !b.contains_key(k) {
                out.push(format!("{k}: removed (was {o})"));
            }
        }
        Ok(out)
    }
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

fn check_base_url(url: &str) -> anyhow::Result<()> {
    let parsed =
        url::Url::parse(url).map_err(|e| anyhow::anyhow!("key `base_url`: not a URL ({e})"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // Not repeated: it holds credentials.
        bail!("key `base_url`: must not carry credentials; reference the key with api_key = \"env:NAME\" instead");
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        bail!("key `base_url`: `{url}` must not carry a query or fragment");
    }
    let host = parsed.host_str().unwrap_or("");
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(host) => Ok(()),
        "http" => bail!("key `base_url`: `{url}` is plain http to a remote host; confidential data must travel over https"),
        s => bail!("key `base_url`: scheme `{s}` is not supported; use https://"),
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
id = "openai-api"
name = "OpenAI API"
vendor = "OpenAI, L.L.C."
api = "openai"
base_url = "https://api.openai.com/v1"
api_key = "env:OPENAI_API_KEY"
models = ["gpt-4.1"]
[data_use]
trains_on_inputs = false
evidence_url = "https://example.com/terms"
evidence = "We do not train on your data."
verified_on = 2026-11-01
review_by = 2027-05-01
[location]
storage = "abroad"
countries = ["US"]
"#;

    #[test]
    fn a_good_file_parses_and_round_trips_through_json() {
        let r = Registration::from_toml(GOOD).unwrap();
        let back = Registration::from_json(&r.canonical_json().unwrap()).unwrap();
        assert_eq!(back.data_use.verified_on, r.data_use.verified_on);
        assert_eq!(r.content_sha256().unwrap(), back.content_sha256().unwrap());
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Registration::from_toml(&GOOD.replace("[location]", "colour = 1\n[location]"))
            .unwrap_err();
        assert!(format!("{err:#}").contains("colour"), "{err:#}");
    }

    #[test]
    fn a_literal_key_is_refused() {
        let err = Registration::from_toml(&GOOD.replace("env:OPENAI_API_KEY", "sk-live-123"))
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("never written"), "{msg}");
        assert!(!msg.contains("sk-live-123"), "{msg}");
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(Registration::from_toml(
            &GOOD.replace("https://api.openai.com/v1", "http://api.openai.com/v1")
        )
        .is_err());
        assert!(Registration::from_toml(
            &GOOD.replace("https://api.openai.com/v1", "http://127.0.0.1:9/v1")
        )
        .is_ok());
    }

    #[test]
    fn training_and_review_dates_make_it_unroutable() {
        let r = Registration::from_toml(GOOD).unwrap();
        let day = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert!(r.unroutable_reason(day("2027-05-01")).is_none());
        assert!(r.unroutable_reason(day("2027-05-02")).is_some());
        let t = Registration::from_toml(
            &GOOD.replace("trains_on_inputs = false", "trains_on_inputs = true"),
        )
        .unwrap();
        assert!(t
            .unroutable_reason(day("2026-12-01"))
            .unwrap()
            .contains("training"));
    }

    #[test]
    fn changes_name_the_keys() {
        let a = Registration::from_toml(GOOD).unwrap();
        let b = Registration::from_toml(&GOOD.replace("[\"US\"]", "[\"US\", \"JP\"]")).unwrap();
        let ch = b.changes_from(Some(&a)).unwrap();
        assert_eq!(ch.len(), 1);
        assert!(ch[0].starts_with("location.countries"));
    }
}
