//! Policy: who may call, which providers they may reach. A [`Snapshot`] of all administrative
//! state is held in memory and replaced whenever the database's policy generation moves, so that
//! a suspension or revocation reaches every running instance within the refresh interval.
pub mod keys;
pub mod registration;

pub use registration::{Registration, Storage, WireApi};

use crate::config::Secret;
use crate::redact::{ContractMatcher, ContractRedaction};
use crate::refusal::{Code, Refusal};
use crate::store::{ContractRow, KeyRow, StaffRow, Store};
use chrono::{NaiveDate, Utc};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// A registered provider as the gateway routes to it.
#[derive(Debug)]
pub struct Provider {
    pub reg: Registration,
    pub version: i64,
    pub suspended: Option<String>,
    /// The header that carries the gateway's credential for this provider (marked sensitive, so
    /// `Debug` never shows it), built once per policy load. `Err` holds why there is none to
    /// send (never the credential).
    pub auth: Result<Option<(http::HeaderName, http::HeaderValue)>, String>,
    /// The URLs of the upstream paths under `base_url`, joined once per policy load (none if
    /// `base_url` does not parse).
    urls: Vec<(&'static str, http::Uri)>,
}

fn join(base: &url::Url, path: &str) -> Option<http::Uri> {
    let mut u = base.clone();
    let joined = format!("{}{path}", u.path().trim_end_matches('/'));
    u.set_path(&joined);
    u.as_str().parse().ok()
}

/// The credential as the provider's API expects it: `Authorization: Bearer …` or `x-api-key`.
fn auth_header(
    api: WireApi,
    credential: Result<Option<Secret>, String>,
) -> Result<Option<(http::HeaderName, http::HeaderValue)>, String> {
    let Some(c) = credential? else {
        return Ok(None);
    };
    let (name, value) = match api {
        WireApi::Openai => (
            http::header::AUTHORIZATION,
            http::HeaderValue::try_from(format!("Bearer {}", c.expose())),
        ),
        WireApi::Anthropic => (
            http::HeaderName::from_static("x-api-key"),
            http::HeaderValue::from_str(c.expose()),
        ),
    };
    let mut value = value.map_err(|_| {
        "the credential cannot be sent in a header (it holds a line break or a control character)"
            .to_string()
    })?;
    value.set_sensitive(true);
    Ok(Some((name, value)))
}

impl Provider {
    pub fn new(
        reg: Registration,
        version: i64,
        suspended: Option<String>,
        credential: Result<Option<Secret>, String>,
    ) -> Self {
        let urls = match url::Url::parse(&reg.base_url) {
            Ok(base) => crate::proxy::endpoint::Endpoint::ALL
                .iter()
                .filter_map(|e| Some((e.upstream_path(), join(&base, e.upstream_path())?)))
                .collect(),
            Err(_) => Vec::new(),
        };
        Self {
            auth: auth_header(reg.api, credential),
            reg,
            version,
            suspended,
            urls,
        }
    }

    /// The provider's URL for `path`, an endpoint's `upstream_path`; `None` if its base URL
    /// does not parse.
    pub fn url(&self, path: &str) -> Option<http::Uri> {
        self.urls
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, u)| u.clone())
    }

    fn unroutable_reason(&self, today: NaiveDate) -> Option<String> {
        if let Some(reason) = &self.suspended {
            return Some(format!(
                "provider `{}` is suspended by an administrator ({reason}); use another provider or ask for it to be resumed",
                self.reg.id
            ));
        }
        self.reg.unroutable_reason(today)
    }
}

/// All administrative state at one policy generation.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub generation: i64,
    pub providers: Vec<Arc<Provider>>,
    // Shared with every request's `Caller`: authenticating copies no row.
    contracts: HashMap<String, Arc<ContractRow>>,
    staff: HashMap<String, Arc<StaffRow>>,
    keys: HashMap<String, Arc<KeyRow>>,
    /// Each contract's compiled term list and extra fields, built once per policy generation.
    matchers: HashMap<String, Arc<ContractMatcher>>,
    /// For every contract without a list of its own: one, whose salt (`redact/clean.rs`) stays
    /// the same across requests, so that texts found clean are recognised.
    no_list: Arc<ContractMatcher>,
    /// Contracts whose list could not be compiled: fail closed.
    broken_matchers: std::collections::HashSet<String>,
    training_valid_days: i64,
}

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: Arc<KeyRow>,
    pub staff: Arc<StaffRow>,
    pub contract: Arc<ContractRow>,
}

/// Where a request goes.
#[derive(Debug, Clone)]
pub struct Route {
    pub provider: Arc<Provider>,
    /// The model name the provider knows (any `provider-id/` prefix removed).
    pub model: String,
}

/// A stored date (`YYYY-MM-DD`, or a time whose first ten characters are one). Read on every
/// request (key expiry, training, contract end): the usual form directly, anything else by
/// chrono's format parser, which accepts the same dates and more.
pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
    let head = s.get(..10).unwrap_or(s);
    let b = head.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r).and_then(|d| {
            d.iter().try_fold(0u32, |n, c| {
                c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
            })
        })
    };
    if b.len() == 10 && b.get(4) == Some(&b'-') && b.get(7) == Some(&b'-') {
        if let (Some(y), Some(m), Some(d)) = (digits(0..4), digits(5..7), digits(8..10)) {
            return i32::try_from(y)
                .ok()
                .and_then(|y| NaiveDate::from_ymd_opt(y, m, d));
        }
    }
    NaiveDate::parse_from_str(head, "%Y-%m-%d").ok()
}

impl Snapshot {
    pub fn build(state: crate::store::PolicyState, training_valid_days: u32) -> Self {
        let mut providers = Vec::new();
        for row in state.providers {
            match Registration::from_json(&row.registration) {
                Ok(reg) => {
                    let credential = reg.api_key.resolve();
                    let suspended = row
                        .suspended
                        .then(|| row.suspend_reason.unwrap_or_default());
                    providers.push(Arc::new(Provider::new(
                        reg,
                        row.version,
                        suspended,
                        credential,
                    )));
                }
                Err(e) => {
                    tracing::error!(provider = %row.id, error = %e, "stored registration unreadable; provider not routable")
                }
            }
        }
        let mut lists: HashMap<String, ContractRedaction> = HashMap::new();
        for (contract, kind, term) in state.terms {
            let entry = lists.entry(contract).or_default();
            match kind.as_str() {
                "field" => entry.extra_fields.push(term),
                _ => entry.terms.push(term),
            }
        }
        let mut matchers = HashMap::new();
        let mut broken = std::collections::HashSet::new();
        for (contract, list) in lists {
            match ContractMatcher::new(&list) {
                Ok(m) => {
                    matchers.insert(contract, Arc::new(m));
                }
                Err(e) => {
                    tracing::error!(contract = %contract, error = %e, "contract redaction list unusable; its requests are refused");
                    broken.insert(contract);
                }
            }
        }
        Self {
            generation: state.generation,
            matchers,
            no_list: Arc::new(ContractMatcher::none()),
            broken_matchers: broken,
            providers,
            contracts: state
                .contracts
                .into_iter()
                .map(|c| (c.id.clone(), Arc::new(c)))
                .collect(),
            staff: state
                .staff
                .into_iter()
                .map(|s| (s.id.clone(), Arc::new(s)))
                .collect(),
            keys: state
                .keys
                .into_iter()
                .map(|k| (k.key_hash.clone(), Arc::new(k)))
                .collect(),
            training_valid_days: i64::from(training_valid_days),
        }
    }

    /// The contract's redaction list, compiled; refused if it could not be compiled, since
    /// sending without it could leak its terms.
    pub fn matcher(&self, contract: &str) -> Result<Arc<ContractMatcher>, Refusal> {
        if self.broken_matchers.contains(contract) {
            return Err(Refusal::new(
                Code::ConfidentialContentBlocked,
                format!("contract `{contract}`'s term list could not be loaded, so nothing is sent; tell your administrator (see the gateway log)"),
            ));
        }
        Ok(self
            .matchers
            .get(contract)
            .cloned()
            .unwrap_or_else(|| Arc::clone(&self.no_list)))
    }

    pub fn knows_key(&self, secret: &str) -> bool {
        self.keys.contains_key(&keys::hash(secret))
    }

    /// The stored key row for a presented key, known or not valid (for attributing refusals).
    pub fn key_row(&self, secret: &str) -> Option<&KeyRow> {
        self.keys.get(&keys::hash(secret)).map(|k| &**k)
    }

    /// Steps 1–3 of SPEC.md's order: key, staff training, contract.
    pub fn authenticate(&self, secret: &str) -> Result<Caller, Refusal> {
        let now = Utc::now();
        let today = now.date_naive();
        let key = self.keys.get(&keys::hash(secret)).ok_or_else(|| {
            Refusal::new(Code::InvalidApiKey, "the API key is not a mamori key issued to you; ask your administrator for one (`mamori key issue`)")
        })?;
        if key.revoked_at.is_some() {
            return Err(Refusal::new(
                Code::KeyRevoked,
                format!(
                    "key {} has been revoked; ask your administrator for a new key",
                    key.id
                ),
            ));
        }
        if let Some(exp) = key.expires_at.as_deref().and_then(parse_date) {
            if today > exp {
                return Err(Refusal::new(
                    Code::KeyExpired,
                    format!(
                        "key {} expired on {exp}; ask your administrator for a new key",
                        key.id
                    ),
                ));
            }
        }
        let staff = self
            .staff
            .get(&key.staff_id)
            .filter(|s| s.active)
            .ok_or_else(|| {
                Refusal::new(
                    Code::TrainingNotCurrent,
                    format!(
                        "staff `{}` is not active; ask your administrator",
                        key.staff_id
                    ),
                )
            })?;
        let trained = staff.trained_on.as_deref().and_then(parse_date);
        let current = trained
            .is_some_and(|d| (today - d).num_days() <= self.training_valid_days && d <= today);
        if !current {
            let when = trained
                .map(|d| format!("last recorded {d}"))
                .unwrap_or_else(|| "none recorded".into());
            return Err(Refusal::new(Code::TrainingNotCurrent, format!(
                "security training for `{}` is not current ({when}; valid {} days); complete the training and have it recorded with `mamori staff train {} --on DATE`",
                staff.id, self.training_valid_days, staff.id
            )));
        }
        let contract = self.contracts.get(&key.contract_id).ok_or_else(|| {
            Refusal::new(
                Code::ContractInactive,
                format!(
                    "contract `{}` does not exist, so no AI use is allowed under this key; ask your administrator for a key issued for an active contract",
                    key.contract_id
                ),
            )
        })?;
        if contract.status != "active" {
            return Err(Refusal::new(
                Code::ContractInactive,
                format!(
                    "contract `{}` is {}{}; no AI use is allowed under it; if the work continues under another contract, ask your administrator for a key issued for that contract",
                    contract.id,
                    contract.status,
                    contract
                        .closed_at
                        .as_deref()
                        .map(|at| format!(" (since {})", at.get(..10).unwrap_or(at)))
                        .unwrap_or_default()
                ),
            ));
        }
        if let Some(end) = contract.ends_on.as_deref().and_then(parse_date) {
            if today > end {
                return Err(Refusal::new(
                    Code::ContractInactive,
                    format!(
                        "contract `{}` ended on {end}; no AI use is allowed under it; if the contract was extended, ask your administrator to record its new end date, otherwise ask for a key issued for an active contract",
                        contract.id
                    ),
                ));
            }
        }
        Ok(Caller {
            key: Arc::clone(key),
            staff: Arc::clone(staff),
            contract: Arc::clone(contract),
        })
    }

    /// Steps 4–6: provider approved and routable, allowed for the contract, model registered.
    /// `requested` may be `model` or `provider-id/model`.
    pub fn route(&self, caller: &Caller, requested: &str, api: WireApi) -> Result<Route, Refusal> {
        let today = Utc::now().date_naive();
        let candidates: Vec<(&Arc<Provider>, &str)> = self
            .providers
            .iter()
            .filter_map(|p| {
                if p.reg.models.iter().any(|m| m == requested) {
                    return Some((p, requested));
                }
                let rest = requested
                    .strip_prefix(p.reg.id.as_str())?
                    .strip_prefix('/')?;
                p.reg.models.iter().any(|m| m == rest).then_some((p, rest))
            })
            .collect();
        if candidates.is_empty() {
            return Err(Refusal::new(Code::ModelNotRegistered, format!(
                "model `{requested}` is not served by any registered provider; list the models you may use with GET /v1/models"
            )));
        }
        let same_api: Vec<_> = candidates
            .iter()
            .filter(|(p, _)| p.reg.api == api)
            .collect();
        if same_api.is_empty() {
            let other = candidates[0].0.reg.api;
            let path = match other {
                WireApi::Openai => "/v1/chat/completions",
                WireApi::Anthropic => "/v1/messages",
            };
            return Err(Refusal::new(
                Code::ModelNotRegistered,
                format!(
                    "model `{requested}` is registered for the {} API only; call {path}",
                    other.as_str()
                ),
            ));
        }
        let mut last_problem = None;
        for (p, model) in same_api {
            if let Some(why) = p.unroutable_reason(today) {
                last_problem.get_or_insert(Refusal::new(Code::ProviderNotApproved, why));
                continue;
            }
            if let Some(why) = contract_forbids(&caller.contract, p) {
                last_problem = Some(Refusal::new(Code::ProviderNotAllowedForContract, why));
                continue;
            }
            return Ok(Route {
                provider: Arc::clone(p),
                model: (*model).to_string(),
            });
        }
        Err(last_problem.unwrap_or_else(|| {
            Refusal::new(
                Code::ProviderNotApproved,
                "no approved provider serves this model",
            )
        }))
    }

    /// Models this caller may use right now, with their provider, for `GET /v1/models`.
    pub fn models_for(&self, caller: &Caller) -> Vec<(String, String)> {
        let today = Utc::now().date_naive();
        let mut out = Vec::new();
        for p in &self.providers {
            if p.unroutable_reason(today).is_some()
                || contract_forbids(&caller.contract, p).is_some()
            {
                continue;
            }
            for m in &p.reg.models {
                out.push((m.clone(), p.reg.id.clone()));
            }
        }
        out
    }
}

fn contract_forbids(c: &ContractRow, p: &Provider) -> Option<String> {
    if let Some(list) = &c.providers {
        if !list.iter().any(|id| id == &p.reg.id) {
            return Some(format!(
                "provider `{}` is not among the providers registered for contract `{}` ({}); use one of those, or ask your administrator to add it",
                p.reg.id, c.id, list.join(", ")
            ));
        }
    }
    if c.japan_only && p.reg.location.storage != Storage::Japan {
        return Some(format!(
            "contract `{}` requires data to stay in Japan, and provider `{}` stores data abroad; use a provider with storage in Japan",
            c.id, p.reg.id
        ));
    }
    None
}

/// The live policy: the current snapshot, replaced atomically on refresh.
#[derive(Debug)]
pub struct Policy {
    current: RwLock<Arc<Snapshot>>,
    store: Store,
    training_valid_days: u32,
    reload: tokio::sync::Mutex<()>,
    last_unknown_refresh: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Policy {
    pub async fn load(store: Store, training_valid_days: u32) -> anyhow::Result<Arc<Self>> {
        let snap = Snapshot::build(store.policy_state().await?, training_valid_days);
        Ok(Arc::new(Self {
            current: RwLock::new(Arc::new(snap)),
            store,
            training_valid_days,
            reload: tokio::sync::Mutex::new(()),
            last_unknown_refresh: std::sync::Mutex::new(None),
        }))
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Refreshes on behalf of an unknown key, at most once per 100 ms, so that a flood of
    /// made-up keys cannot turn into a flood of database queries.
    pub async fn refresh_for_unknown_key(&self) -> anyhow::Result<bool> {
        let now = std::time::Instant::now();
        {
            let mut last = match self.last_unknown_refresh.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if last.is_some_and(|t| now.duration_since(t) < Duration::from_millis(100)) {
                return Ok(false);
            }
            *last = Some(now);
        }
        self.refresh().await
    }

    /// Reloads if the database's generation moved. One reload at a time.
    pub async fn refresh(&self) -> anyhow::Result<bool> {
        let _guard = self.reload.lock().await;
        let generation = self.store.policy_generation().await?;
        if generation == self.snapshot().generation {
            return Ok(false);
        }
        let snap = Arc::new(Snapshot::build(
            self.store.policy_state().await?,
            self.training_valid_days,
        ));
        tracing::info!(
            generation = snap.generation,
            providers = snap.providers.len(),
            "policy reloaded"
        );
        match self.current.write() {
            Ok(mut g) => *g = snap,
            Err(poisoned) => *poisoned.into_inner() = snap,
        }
        Ok(true)
    }

    /// Polls the generation so changes made by any admin or instance arrive within `every`.
    pub fn spawn_refresher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = me.refresh().await {
                    tracing::warn!(error = %format!("{e:#}"), "policy refresh failed; keeping the last snapshot");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretRef;

    #[test]
    fn dates_read_quickly_are_read_as_chrono_reads_them() {
        for s in [
            "2026-12-07",
            "2026-12-07T09:30:00Z",
            "2024-02-29",
            "2026-02-29",
            "2026-13-01",
            "2026-00-10",
            "0000-01-01",
            "2026-1-5",
            "2026-01-5x",
            "2026/01/05",
            "２０２６-01-05",
            "-202-01-05",
            "+2026-01-0",
            "",
            "2026",
        ] {
            let head = s.get(..10).unwrap_or(s);
            let chrono = NaiveDate::parse_from_str(head, "%Y-%m-%d").ok();
            assert_eq!(parse_date(s), chrono, "{s:?}");
        }
        assert_eq!(
            parse_date("2026-12-07"),
            NaiveDate::from_ymd_opt(2026, 12, 7)
        );
    }

    fn secret(dir: &std::path::Path, value: &str) -> Result<Option<Secret>, String> {
        let path = dir.join("key");
        std::fs::write(&path, value).unwrap();
        SecretRef::parse(&format!("file:{}", path.display()))
            .unwrap()
            .resolve()
    }

    #[test]
    fn every_endpoint_has_its_url_under_the_base_path() {
        let text = include_str!("../../examples/local-mock.toml")
            .replace("http://127.0.0.1:9999/v1", "http://127.0.0.1:9999/v1/");
        let reg = Registration::from_toml(&text).unwrap();
        let p = Provider::new(reg, 1, None, Ok(None));
        for e in crate::proxy::endpoint::Endpoint::ALL {
            let url = p.url(e.upstream_path()).unwrap();
            assert_eq!(
                url.to_string(),
                format!("http://127.0.0.1:9999/v1{}", e.upstream_path())
            );
        }
    }

    #[test]
    fn the_credential_header_is_built_once_marked_sensitive_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (name, value) = auth_header(WireApi::Openai, secret(dir.path(), "sk-abc123"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (name.as_str(), value.as_bytes()),
            ("authorization", &b"Bearer sk-abc123"[..])
        );
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("sk-abc123"));
        let (name, _) = auth_header(WireApi::Anthropic, secret(dir.path(), "sk-ant"))
            .unwrap()
            .unwrap();
        assert_eq!(name.as_str(), "x-api-key");
        let why =
            auth_header(WireApi::Openai, secret(dir.path(), "sk-a\nsecond-line")).unwrap_err();
        assert!(why.contains("cannot be sent in a header"), "{why}");
        assert!(!why.contains("sk-a"), "{why}");
        assert_eq!(auth_header(WireApi::Openai, Ok(None)), Ok(None));
        assert_eq!(
            auth_header(WireApi::Openai, Err("not set".into())),
            Err("not set".into())
        );
    }

    fn contract(id: &str, status: &str, ends_on: Option<&str>) -> ContractRow {
        ContractRow::sample(id, status, ends_on)
    }

    /// A snapshot with staff `u` trained today and one key of `u` per contract id, each key
    /// being `key-CONTRACT`.
    fn snapshot(contracts: Vec<ContractRow>, key_contracts: &[&str]) -> Snapshot {
        let today = Utc::now().date_naive().to_string();
        Snapshot::build(
            crate::store::PolicyState {
                contracts,
                staff: vec![StaffRow {
                    id: "u".into(),
                    name: "U".into(),
                    email: None,
                    trained_on: Some(today),
                    active: true,
                    created_at: "2020-01-01T00:00:00Z".into(),
                }],
                keys: key_contracts
                    .iter()
                    .map(|c| KeyRow {
                        id: format!("kid-{c}"),
                        key_hash: keys::hash(&format!("key-{c}")),
                        staff_id: "u".into(),
                        contract_id: (*c).into(),
                        deliverable: None,
                        purpose: None,
                        expires_at: None,
                        revoked_at: None,
                        created_at: "2020-01-01T00:00:00Z".into(),
                    })
                    .collect(),
                ..Default::default()
            },
            365,
        )
    }

    #[test]
    fn an_inactive_contract_is_refused_with_what_to_do() {
        let s = snapshot(
            vec![
                contract("ended", "active", Some("2021-03-31")),
                contract("closed", "closed", None),
                contract("open", "active", Some("2999-12-31")),
            ],
            &["ended", "closed", "gone", "open"],
        );
        assert!(s.authenticate("key-open").is_ok());
        for (key, says) in [
            ("key-ended", "ended on 2021-03-31"),
            ("key-closed", "is closed (since 2021-04-01)"),
            ("key-gone", "does not exist"),
        ] {
            let r = s.authenticate(key).err().unwrap();
            assert_eq!(r.code.as_str(), "contract_inactive", "{key}");
            assert!(
                r.message.contains(says)
                    && r.message.contains("no AI use is allowed")
                    && r.message.contains("ask your administrator")
                    && r.message.contains("key issued for"),
                "{key}: {}",
                r.message
            );
        }
        let ended = s.authenticate("key-ended").err().unwrap().message;
        assert!(ended.contains("new end date"), "{ended}");
    }
}
