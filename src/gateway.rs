//! The running gateway's shared state, built once at startup.
use crate::audit::LogWriter;
use crate::config::Config;
use crate::policy::Policy;
use crate::store::Store;
use std::sync::Arc;

#[derive(Debug)]
pub struct Gateway {
    pub config: Config,
    pub store: Store,
    pub policy: Arc<Policy>,
    pub log: LogWriter,
    pub client: reqwest::Client,
}

impl Gateway {
    /// Opens the database, loads the policy and starts the background tasks.
    pub async fn start(config: Config) -> anyhow::Result<Arc<Self>> {
        let store = Store::connect(&config.database_url).await?;
        let policy = Policy::load(store.clone(), config.training_valid_days).await?;
        policy.spawn_refresher(config.refresh_interval);
        let keys = crate::audit::load_keys(&config.audit)?;
        let log = LogWriter::spawn(store.clone(), keys, &config.audit);
        // Announce this instance before it forwards anything, so that no other instance takes
        // its pending requests for a crashed instance's.
        store.heartbeat(log.instance_id()).await?;
        crate::audit::spawn_upkeep(store.clone(), log.clone(), &config.audit);
        let client = reqwest::Client::builder()
            // The upstream is always the registered one: never follow a redirect elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(std::time::Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()?;
        Ok(Arc::new(Self {
            config,
            store,
            policy,
            log,
            client,
        }))
    }
}
