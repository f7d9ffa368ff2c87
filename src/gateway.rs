//! The running gateway's shared state, built once at startup.
use crate::audit::LogWriter;
use crate::config::Config;
use crate::policy::Policy;
use crate::redact::Rules;
use crate::store::Store;
use anyhow::Context;
use std::sync::Arc;

/// The shipped `redaction/*.toml`, built in so the binary works from any folder.
const SHIPPED_RULES: &[(&str, &str)] = &[
    ("tags.toml", include_str!("../redaction/tags.toml")),
    ("fields.toml", include_str!("../redaction/fields.toml")),
    (
        "identifiers.toml",
        include_str!("../redaction/identifiers.toml"),
    ),
    ("payment.toml", include_str!("../redaction/payment.toml")),
    ("contact.toml", include_str!("../redaction/contact.toml")),
    ("secrets.toml", include_str!("../redaction/secrets.toml")),
    ("names.toml", include_str!("../redaction/names.toml")),
    ("contract.toml", include_str!("../redaction/contract.toml")),
];

/// The redaction rules: the configured folder, or the shipped rules.
pub fn load_rules(config: &Config) -> anyhow::Result<Rules> {
    let rules = match &config.redaction_dir {
        Some(dir) => {
            Rules::load(dir).with_context(|| format!("redaction rules in {}", dir.display()))
        }
        None => Rules::from_sources(SHIPPED_RULES.iter().copied())
            .context("the built-in redaction rules"),
    }?;
    Ok(rules.with_clean_texts(config.redaction_clean_texts))
}

#[derive(Debug)]
pub struct Gateway {
    pub config: Config,
    pub store: Store,
    pub policy: Arc<Policy>,
    pub log: LogWriter,
    pub client: crate::proxy::upstream::Upstream,
    pub rules: Arc<Rules>,
}

impl Gateway {
    /// Opens the database, loads the policy and starts the background tasks.
    pub async fn start(config: Config) -> anyhow::Result<Arc<Self>> {
        let rules = Arc::new(load_rules(&config)?);
        let store =
            Store::connect_with(&config.database_url, config.audit.fsync_each_commit).await?;
        let policy = Policy::load(store.clone(), config.training_valid_days).await?;
        policy.spawn_refresher(config.refresh_interval);
        let keys = crate::audit::load_keys(&config.audit)?;
        let log = LogWriter::spawn(store.clone(), keys, &config.audit, &config.database_url)?;
        log.data_keys.load_all().await?;
        crate::audit::spawn_upkeep(
            store.clone(),
            log.clone(),
            &config.audit,
            config.upstream_timeout,
        );
        let client = crate::proxy::upstream::Upstream::new()?;
        Ok(Arc::new(Self {
            config,
            store,
            policy,
            log,
            client,
            rules,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// `[redaction] clean_texts` reaches the rules the gateway uses.
    #[test]
    fn the_configured_clean_text_bound_reaches_the_rules() {
        let text = "倉庫管理システムの移行作業は計画どおり進んでいる。".repeat(8);
        let matcher = crate::redact::ContractMatcher::none();
        for (toml, remembered) in [("", 1), ("[redaction]\nclean_texts = 0", 0)] {
            let config = Config::parse(toml, Path::new("."), &|_| None).unwrap();
            let rules = load_rules(&config).unwrap();
            rules.session(&matcher).redact_text(&text).unwrap();
            assert_eq!(rules.clean.len(), remembered, "{toml:?}");
        }
    }

    /// A rule file added to `redaction/` but not built in would be tested, yet not shipped.
    #[test]
    fn every_shipped_rule_file_is_built_in() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("redaction");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        on_disk.sort();
        let mut built_in: Vec<String> = SHIPPED_RULES.iter().map(|(n, _)| n.to_string()).collect();
        built_in.sort();
        assert!(on_disk.len() > 5, "{on_disk:?}");
        assert_eq!(on_disk, built_in);
    }
}
