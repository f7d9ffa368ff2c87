//! Configuration: a TOML file parsed strictly, then validated once into [`Config`].
//! Environment overrides (`MAMORI_LISTEN`, `MAMORI_DATABASE_URL`) are layered on top.
mod secret;

pub use secret::{Secret, SecretRef};

use anyhow::{bail, Context};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    database_url: Option<String>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    organization: Organization,
    #[serde(default)]
    redaction: RawRedaction,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedaction {
    /// A folder of rule files replacing the built-in copies of the shipped `redaction/*.toml`.
    dir: Option<PathBuf>,
    /// Clean texts remembered (see `redact/clean.rs`); 0 turns it off.
    clean_texts: Option<usize>,
}

/// Who files the notification form (受注者) and where its own copies of data live.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Organization {
    /// 氏名又は法人名等
    pub name: Option<String>,
    /// 住所
    pub address: Option<String>,
    /// Form item 1: media that hold confidential data besides mamori's log (社内PC内ストレージ…).
    #[serde(default)]
    pub storage_media: Vec<String>,
    /// Form item 2: where mamori's own database is, as a country code (default "JP").
    pub log_country: Option<String>,
    /// Form item 3: other cloud services holding confidential data (online storage etc.).
    #[serde(default)]
    pub cloud_services: Vec<CloudService>,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CloudService {
    /// ア サービス名称
    pub name: String,
    /// イ 利用契約先の名称
    pub vendor: String,
    /// ウ 機密データの物理的保存先に係る情報等
    pub location: String,
    /// Country codes where data is stored ("JP" for Japan only).
    #[serde(default)]
    pub countries: Vec<String>,
    /// 第三者認証
    #[serde(default)]
    pub certifications: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    master_key_file: Option<PathBuf>,
    #[serde(default)]
    previous_master_key_files: Vec<PathBuf>,
    signing_key_file: Option<PathBuf>,
    checkpoint_file: Option<PathBuf>,
    checkpoint_every_records: Option<u64>,
    checkpoint_interval_seconds: Option<u64>,
    upkeep_interval_seconds: Option<u64>,
    journal_dir: Option<PathBuf>,
    retention_interval_seconds: Option<u64>,
    fsync_each_commit: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_body_bytes: Option<u64>,
    upstream_timeout_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    training_valid_days: Option<u32>,
    refresh_interval_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    filter: Option<String>,
}

/// The validated configuration every part of mamori reads.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub max_body_bytes: usize,
    pub upstream_timeout: Duration,
    pub training_valid_days: u32,
    pub refresh_interval: Duration,
    pub log_filter: String,
    pub audit: AuditConfig,
    pub organization: Organization,
    /// Redaction rules folder; `None`: the rules shipped in `redaction/`, built in.
    pub redaction_dir: Option<PathBuf>,
    /// How many texts found clean the gateway remembers, so that what a client sends again is
    /// not scanned again; 0: none.
    pub redaction_clean_texts: usize,
}

/// Where the log's keys live and how often it is checkpointed and pruned.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Key files; `MAMORI_MASTER_KEY` (base64) replaces the master key file when set.
    pub master_key_file: PathBuf,
    pub previous_master_key_files: Vec<PathBuf>,
    pub signing_key_file: PathBuf,
    /// Signed checkpoints are also appended here, outside the database.
    pub checkpoint_file: PathBuf,
    /// Create missing key files on first run (the embedded SQLite default only: several
    /// instances sharing PostgreSQL must share one master key, so it is never made up).
    pub create_keys: bool,
    pub checkpoint_every_records: u64,
    pub checkpoint_interval: Duration,
    /// How often upkeep looks for crashed instances' journals and applies retention checks.
    pub upkeep_interval: Duration,
    /// Where requests are noted before they are forwarded (see `audit::journal`).
    pub journal_dir: PathBuf,
    pub retention_interval: Duration,
    /// SQLite: fsync each log commit (power-loss safe) rather than only surviving a killed process.
    pub fsync_each_commit: bool,
}

impl AuditConfig {
    fn defaults(key_dir: &Path, create_keys: bool) -> Self {
        Self {
            master_key_file: key_dir.join("master.key"),
            previous_master_key_files: Vec::new(),
            signing_key_file: key_dir.join("signing.key"),
            checkpoint_file: key_dir.join("checkpoints.jsonl"),
            create_keys,
            checkpoint_every_records: 1000,
            checkpoint_interval: Duration::from_secs(60),
            upkeep_interval: Duration::from_secs(10),
            journal_dir: key_dir.join("mamori-journal"),
            retention_interval: Duration::from_secs(3600),
            fsync_each_commit: false,
        }
    }

    /// Defaults for a database URL: keys beside a SQLite file, or in `base` for PostgreSQL.
    pub fn for_database(url: &str, base: &Path) -> Self {
        match url.strip_prefix("sqlite://") {
            Some(rest) => {
                let file = Path::new(rest.split('?').next().unwrap_or(rest));
                Self::defaults(file.parent().unwrap_or(Path::new(".")), true)
            }
            None => Self::defaults(base, false),
        }
    }
}

// A database URL may carry a password: never print it.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("audit", &self.audit)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://mamori.db".to_string(),
            max_body_bytes: 8 * 1024 * 1024,
            upstream_timeout: Duration::from_secs(600),
            training_valid_days: 365,
            refresh_interval: Duration::from_millis(1000),
            log_filter: "info".to_string(),
            audit: AuditConfig::for_database("sqlite://mamori.db", Path::new(".")),
            organization: Organization::default(),
            redaction_dir: None,
            redaction_clean_texts: crate::redact::DEFAULT_CLEAN_TEXTS,
        }
    }
}

impl Config {
    /// Reads `path`, applies environment overrides and validates everything.
    /// Errors name the file, the key and the reason.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the configuration file {}; pass --config PATH or set MAMORI_CONFIG",
                path.display()
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base, &|k| std::env::var(k).ok())
            .with_context(|| format!("invalid configuration in {}", path.display()))
    }

    /// Parses configuration text; `base` resolves relative paths; `env` supplies overrides.
    pub fn parse(
        text: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let raw: RawConfig = from_toml(text)?;
        let d = Config::default();
        let listen_text = env("MAMORI_LISTEN").or(raw.listen);
        let listen = match listen_text {
            Some(s) => s.parse().with_context(|| {
                format!(
                    "key `listen` (or MAMORI_LISTEN): `{s}` is not an address like 127.0.0.1:8080"
                )
            })?,
            None => d.listen,
        };
        let url = env("MAMORI_DATABASE_URL")
            .or(raw.database_url)
            .unwrap_or(d.database_url);
        let database_url = resolve_database_url(&url, base)?;
        let max_body_bytes = raw.limits.max_body_bytes.unwrap_or(d.max_body_bytes as u64);
        if !(1024..=256 * 1024 * 1024).contains(&max_body_bytes) {
            bail!("key `limits.max_body_bytes`: {max_body_bytes} is out of range; use 1024 to 268435456");
        }
        let timeout = raw.limits.upstream_timeout_seconds.unwrap_or(600);
        if timeout == 0 || timeout > 3600 {
            bail!(
                "key `limits.upstream_timeout_seconds`: {timeout} is out of range; use 1 to 3600"
            );
        }
        let days = raw
            .policy
            .training_valid_days
            .unwrap_or(d.training_valid_days);
        if days == 0 {
            bail!("key `policy.training_valid_days`: must be at least 1");
        }
        let refresh = raw.policy.refresh_interval_ms.unwrap_or(1000);
        if !(50..=10_000).contains(&refresh) {
            bail!("key `policy.refresh_interval_ms`: {refresh} is out of range; use 50 to 10000 (suspensions must reach running instances within seconds)");
        }
        let log_filter = raw.log.filter.unwrap_or(d.log_filter);
        if tracing_subscriber::EnvFilter::try_new(&log_filter).is_err() {
            bail!("key `log.filter`: `{log_filter}` is not a valid filter such as \"info\" or \"mamori=debug\"");
        }
        let mut audit = AuditConfig::for_database(&database_url, base);
        let a = raw.audit;
        let abs = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        if let Some(p) = a.master_key_file {
            audit.master_key_file = abs(p);
        }
        audit.previous_master_key_files =
            a.previous_master_key_files.into_iter().map(abs).collect();
        if let Some(p) = a.signing_key_file {
            audit.signing_key_file = abs(p);
        }
        if let Some(p) = a.checkpoint_file {
            audit.checkpoint_file = abs(p);
        }
        if let Some(p) = a.journal_dir {
            audit.journal_dir = abs(p);
        }
        if let Some(f) = a.fsync_each_commit {
            audit.fsync_each_commit = f;
        }
        if let Some(n) = a.checkpoint_every_records {
            if n == 0 {
                bail!("key `audit.checkpoint_every_records`: must be at least 1");
            }
            audit.checkpoint_every_records = n;
        }
        for (key, v, slot) in [
            (
                "checkpoint_interval_seconds",
                a.checkpoint_interval_seconds,
                &mut audit.checkpoint_interval,
            ),
            (
                "upkeep_interval_seconds",
                a.upkeep_interval_seconds,
                &mut audit.upkeep_interval,
            ),
            (
                "retention_interval_seconds",
                a.retention_interval_seconds,
                &mut audit.retention_interval,
            ),
        ] {
            if let Some(n) = v {
                if n == 0 || n > 86_400 {
                    bail!("key `audit.{key}`: {n} is out of range; use 1 to 86400");
                }
                *slot = Duration::from_secs(n);
            }
        }
        let redaction_dir = raw.redaction.dir.map(abs);
        let redaction_clean_texts = match raw.redaction.clean_texts {
            Some(n) if n > 100_000 => {
                bail!("key `redaction.clean_texts`: {n} is out of range; use 0 (off) to 100000 (about 100 bytes each)")
            }
            Some(n) => n,
            None => crate::redact::DEFAULT_CLEAN_TEXTS,
        };
        Ok(Self {
            redaction_dir,
            redaction_clean_texts,
            organization: raw.organization,
            audit,
            listen,
            database_url,
            max_body_bytes: max_body_bytes as usize,
            upstream_timeout: Duration::from_secs(timeout),
            training_valid_days: days,
            refresh_interval: Duration::from_millis(refresh),
            log_filter,
        })
    }
}

/// SQLite paths in the config are relative to the config file's folder.
fn resolve_database_url(url: &str, base: &Path) -> anyhow::Result<String> {
    if let Some(rest) = url.strip_prefix("sqlite://") {
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        if path.is_empty() {
            bail!("key `database_url`: `{url}` names no file; write sqlite://PATH");
        }
        let mut p = PathBuf::from(path);
        if p.is_relative() {
            p = base.join(p);
        }
        let mut out = format!("sqlite://{}", p.display());
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        return Ok(out);
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(url.to_string());
    }
    bail!("key `database_url` (or MAMORI_DATABASE_URL): `{}` is neither sqlite://PATH nor postgres://…", redact_url(url))
}

/// Hides a password in a database URL before it goes into a message.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Parses TOML into `T`, reporting line, column, key and reason but never the source line
/// (it may hold a pasted secret).
pub fn from_toml<T: serde::de::DeserializeOwned>(text: &str) -> anyhow::Result<T> {
    toml::from_str(text).map_err(|e| {
        let msg = e.message().trim().to_string();
        let Some(span) = e.span() else {
            return anyhow::anyhow!("{msg}");
        };
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        // Name the key when the message does not: the text before `=` on that line, under its table.
        let key = if msg.contains("field `") {
            None
        } else {
            let this_line = text.lines().nth(line - 1).unwrap_or("");
            this_line.split_once('=').map(|(k, _)| {
                let table = before
                    .lines()
                    .rev()
                    .find_map(|l| l.trim().strip_prefix('[').and_then(|t| t.strip_suffix(']')))
                    .map(|t| format!("{}.", t.trim_matches(['[', ']'])))
                    .unwrap_or_default();
                format!("key `{table}{}`: ", k.trim())
            })
        };
        anyhow::anyhow!(
            "line {line}, column {col}: {}{msg}",
            key.unwrap_or_default()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let err = Config::parse("lisen = \"x\"", Path::new("."), &no_env).unwrap_err();
        assert!(format!("{err:#}").contains("lisen"), "{err:#}");
    }

    #[test]
    fn relative_sqlite_paths_follow_the_config_file() {
        let c = Config::parse(
            "database_url = \"sqlite://data/m.db\"",
            Path::new("/etc/mamori"),
            &no_env,
        )
        .unwrap();
        assert_eq!(c.database_url, "sqlite:///etc/mamori/data/m.db");
    }

    #[test]
    fn environment_overrides_win() {
        let env = |k: &str| (k == "MAMORI_LISTEN").then(|| "127.0.0.1:9999".to_string());
        let c = Config::parse("listen = \"127.0.0.1:1\"", Path::new("."), &env).unwrap();
        assert_eq!(c.listen.port(), 9999);
    }

    #[test]
    fn passwords_are_hidden_in_messages() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = Config::parse(
            "[policy]\nrefresh_interval_ms = 999999",
            Path::new("."),
            &no_env,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("refresh_interval_ms"));
        let err = Config::parse(
            "[redaction]\nclean_texts = 2000000",
            Path::new("."),
            &no_env,
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("redaction.clean_texts"),
            "{err:#}"
        );
        let off = Config::parse("[redaction]\nclean_texts = 0", Path::new("."), &no_env).unwrap();
        assert_eq!(off.redaction_clean_texts, 0);
        let default = Config::parse("", Path::new("."), &no_env).unwrap();
        assert_eq!(
            default.redaction_clean_texts,
            crate::redact::DEFAULT_CLEAN_TEXTS
        );
    }
}
