//! AI-use disclosures (第8-2) and the notification form (別記様式, 第5 and 第8-3), built from the
//! registrations, the contract and the log. Everything here is a pure function of stored data
//! (plus an explicit `generated_at`), so an exported document can be regenerated and checked.
pub mod form;
pub mod render;
pub mod verify;

use crate::policy::Registration;
use crate::store::{LogRecord, Store};
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Ja,
    En,
}

impl std::str::FromStr for Lang {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "ja" => Ok(Lang::Ja),
            "en" => Ok(Lang::En),
            _ => bail!("--lang `{s}`: use ja or en"),
        }
    }
}

/// Endpoints that produce content a deliverable can contain.
pub(crate) const GENERATIVE: &[&str] = &["chat.completions", "responses", "messages"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContractRef {
    pub id: String,
    pub title: String,
    pub client: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceUse {
    pub provider_id: String,
    /// サービス名称
    pub name: String,
    /// サービス提供事業者
    pub vendor: String,
    pub models: Vec<String>,
    /// Registration versions in force when it was used.
    pub registration_versions: Vec<i64>,
    pub interactions: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaffRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    pub request_id: String,
    pub at: String,
    pub provider_id: String,
    pub model: String,
    pub endpoint: String,
    /// SHA-256 of the output as the client received it; anyone can check it against the log.
    pub output_sha256: String,
}

/// One deliverable's AI-use disclosure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disclosure {
    pub format: String,
    pub generated_at: String,
    pub lang: Lang,
    pub contract: ContractRef,
    pub deliverable: Option<String>,
    /// The ready-to-paste marking statement.
    pub statement: String,
    pub services: Vec<ServiceUse>,
    pub purposes: Vec<String>,
    /// First and last use (UTC, RFC 3339).
    pub period: Option<(String, String)>,
    pub staff: Vec<StaffRef>,
    pub interactions: u64,
    pub records: Vec<Interaction>,
}

pub const FORMAT: &str = "mamori-disclosure/1";

/// What to disclose.
#[derive(Debug, Clone)]
pub struct Query {
    pub contract: String,
    pub deliverable: Option<String>,
    /// Records found by `mamori scan` in the deliverable, included even if untagged.
    pub also: BTreeSet<String>,
    /// Exactly these records (used to regenerate an exported disclosure).
    pub only: Option<BTreeSet<String>>,
    pub lang: Lang,
    pub generated_at: String,
}

/// Registrations by (provider, version), read once.
async fn registrations(
    store: &Store,
    ids: &BTreeSet<String>,
) -> anyhow::Result<HashMap<(String, i64), Registration>> {
    let mut out = HashMap::new();
    for id in ids {
        let (versions, _) = store.provider_history(id).await?;
        for v in versions {
            out.insert(
                (id.clone(), v.version),
                Registration::from_json(&v.registration)?,
            );
        }
    }
    Ok(out)
}

/// The records a disclosure covers: served generative requests of the contract, for the
/// deliverable (or as chosen).
pub fn select<'a>(records: &'a [LogRecord], q: &Query) -> Vec<&'a LogRecord> {
    records
        .iter()
        .filter(|r| r.outcome == "ok" && GENERATIVE.contains(&r.endpoint.as_str()))
        .filter(|r| match &q.only {
            Some(only) => only.contains(&r.request_id),
            None => {
                q.deliverable.is_none()
                    || r.deliverable == q.deliverable
                    || q.also.contains(&r.request_id)
            }
        })
        .collect()
}

pub async fn build(store: &Store, q: &Query) -> anyhow::Result<Disclosure> {
    let contract = store
        .contract(&q.contract)
        .await?
        .with_context(|| format!("no contract `{}`; see `mamori contract list`", q.contract))?;
    let all = store.disclosure_rows(&q.contract, GENERATIVE).await?;
    let chosen = select(&all, q);
    let provider_ids: BTreeSet<String> = chosen
        .iter()
        .filter_map(|r| r.provider_id.clone())
        .collect();
    let regs = registrations(store, &provider_ids).await?;
    let staff_names: HashMap<String, String> = store
        .staff_list()
        .await?
        .into_iter()
        .map(|s| (s.id, s.name))
        .collect();

    let mut services: BTreeMap<String, ServiceUse> = BTreeMap::new();
    let mut purposes = BTreeSet::new();
    let mut staff = BTreeSet::new();
    let mut records = Vec::with_capacity(chosen.len());
    for r in &chosen {
        let pid = r.provider_id.clone().unwrap_or_default();
        let version = r.provider_version.unwrap_or(0);
        let reg = regs.get(&(pid.clone(), version));
        let s = services.entry(pid.clone()).or_insert_with(|| ServiceUse {
            provider_id: pid.clone(),
            name: reg.map(|g| g.name.clone()).unwrap_or_else(|| pid.clone()),
            vendor: reg.map(|g| g.vendor.clone()).unwrap_or_default(),
            models: Vec::new(),
            registration_versions: Vec::new(),
            interactions: 0,
        });
        s.interactions += 1;
        let model = r.model.clone().unwrap_or_default();
        let model = model
            .split_once('/')
            .filter(|(p, _)| *p == pid)
            .map(|(_, m)| m.to_string())
            .unwrap_or(model);
        if !s.models.contains(&model) {
            s.models.push(model.clone());
        }
        if !s.registration_versions.contains(&version) {
            s.registration_versions.push(version);
        }
        if let Some(p) = &r.purpose {
            purposes.insert(p.clone());
        }
        if let Some(st) = &r.staff_id {
            staff.insert(st.clone());
        }
        records.push(Interaction {
            request_id: r.request_id.clone(),
            at: r.at.clone(),
            provider_id: pid,
            model,
            endpoint: r.endpoint.clone(),
            output_sha256: r.output_sha256.clone().unwrap_or_default(),
        });
    }
    for s in services.values_mut() {
        s.models.sort();
        s.registration_versions.sort_unstable();
    }
    let services: Vec<ServiceUse> = services.into_values().collect();
    let period = match (
        records.iter().map(|r| &r.at).min(),
        records.iter().map(|r| &r.at).max(),
    ) {
        (Some(a), Some(b)) => Some((a.clone(), b.clone())),
        _ => None,
    };
    let statement = render::statement(q.lang, &services);
    Ok(Disclosure {
        format: FORMAT.to_string(),
        generated_at: q.generated_at.clone(),
        lang: q.lang,
        contract: ContractRef {
            id: contract.id,
            title: contract.title,
            client: contract.client,
        },
        deliverable: q.deliverable.clone(),
        statement,
        services,
        purposes: purposes.into_iter().collect(),
        period,
        staff: staff
            .into_iter()
            .map(|id| StaffRef {
                name: staff_names.get(&id).cloned().unwrap_or_default(),
                id,
            })
            .collect(),
        interactions: records.len() as u64,
        records,
    })
}
