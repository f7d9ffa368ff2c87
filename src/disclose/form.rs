//! The notification form 機密データの保存等に関する届出書 (別記様式), filled from the
//! configuration, the registrations and the contract; and the record of what was filed, so that
//! any later change is flagged for re-notification (再度の届出).
use crate::config::Organization;
use crate::policy::{Registration, Storage};
use crate::store::{ContractRow, Store, Subcontractor};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write;

pub const FORMAT: &str = "mamori-form/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEntry {
    /// ア サービス名称
    pub name: String,
    /// イ 利用契約先の名称
    pub vendor: String,
    /// ウ 機密データの物理的保存先に係る情報等
    pub location: String,
    pub certifications: Vec<String>,
    /// For AI services: the registration (id and version) the entry was filled from.
    pub registration: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AiEntry {
    /// ア 利用サービス名
    pub name: String,
    /// イ サービス提供事業者
    pub vendor: String,
    /// ウ 生成ＡＩを利用する業務及び作業の具体的内容
    pub work: String,
}

/// The form's content. `date` is the filing date; everything else is what is compared when
/// deciding whether a re-notification is due.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Form {
    pub format: String,
    pub date: String,
    pub organization_name: String,
    pub organization_address: String,
    pub contract_id: String,
    pub contract_title: String,
    pub client: String,
    pub contract_date: Option<String>,
    /// 1 機密データの保存に使用する媒体等の名称
    pub media: Vec<String>,
    /// 2 日本国内のみ (true) / 日本国外（全部又は一部）
    pub japan_only: bool,
    pub countries_abroad: Vec<String>,
    pub abroad_summary: Vec<String>,
    /// 3 クラウドサービスの利用
    pub cloud_services: Vec<CloudEntry>,
    /// 4 第三者認証 (有 when any service has one)
    pub certified: bool,
    /// 5 生成ＡＩの利用
    pub ai_services: Vec<AiEntry>,
    /// 6 再委託等
    pub subcontractors: Vec<Subcontractor>,
}

impl Form {
    /// The content compared across filings (the filing date left out).
    pub fn content(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            m.remove("date");
        }
        v
    }

    pub fn content_sha256(&self) -> String {
        hex::encode(Sha256::digest(self.content().to_string().as_bytes()))
    }
}

/// Country codes as the form's reader expects them (国名), falling back to the code.
fn country_names(codes: &[String]) -> String {
    let name = |c: &str| {
        match c {
            "JP" => "日本",
            "US" => "米国",
            "GB" => "英国",
            "IE" => "アイルランド",
            "DE" => "ドイツ",
            "FR" => "フランス",
            "NL" => "オランダ",
            "SG" => "シンガポール",
            "AU" => "オーストラリア",
            "KR" => "韓国",
            "IN" => "インド",
            "CA" => "カナダ",
            "(unspecified)" => "特定されない（保存国の保証なし）",
            other => other,
        }
        .to_string()
    };
    codes.iter().map(|c| name(c)).collect::<Vec<_>>().join("、")
}

/// The providers a contract may use now: its list (or every routable provider), approved and
/// allowed by its data-location rule.
pub async fn contract_providers(
    store: &Store,
    c: &ContractRow,
) -> anyhow::Result<Vec<(Registration, i64)>> {
    let today = chrono::Utc::now().date_naive();
    let mut out = Vec::new();
    for p in store.providers().await? {
        let reg = Registration::from_json(&p.registration)?;
        if p.suspended || reg.unroutable_reason(today).is_some() {
            continue;
        }
        if c.providers.as_ref().is_some_and(|l| !l.contains(&reg.id)) {
            continue;
        }
        if c.japan_only && reg.location.storage != Storage::Japan {
            continue;
        }
        out.push((reg, p.version));
    }
    Ok(out)
}

pub async fn build(
    store: &Store,
    org: &Organization,
    contract: &str,
    date: &str,
) -> anyhow::Result<Form> {
    let c = store
        .contract(contract)
        .await?
        .with_context(|| format!("no contract `{contract}`; see `mamori contract list`"))?;
    let providers = contract_providers(store, &c).await?;
    let log_country = org.log_country.clone().unwrap_or_else(|| "JP".into());
    let mut media = org.storage_media.clone();
    media.push("mamori 出力ログ（暗号化データベース）".to_string());

    let mut abroad: Vec<String> = Vec::new();
    let mut add_abroad = |codes: &[String]| {
        for c in codes.iter().filter(|c| c.as_str() != "JP") {
            if !abroad.contains(c) {
                abroad.push(c.clone());
            }
        }
    };
    add_abroad(std::slice::from_ref(&log_country));
    let mut abroad_summary = Vec::new();
    let mut cloud = Vec::new();
    for s in &org.cloud_services {
        add_abroad(&s.countries);
        if s.countries.iter().any(|c| c != "JP") {
            abroad_summary.push(format!("{}：{}", s.name, s.location));
        }
        cloud.push(CloudEntry {
            name: s.name.clone(),
            vendor: s.vendor.clone(),
            location: s.location.clone(),
            certifications: s.certifications.clone(),
            registration: None,
        });
    }
    for (reg, version) in &providers {
        let place = match reg.location.storage {
            Storage::Japan => "日本国内".to_string(),
            Storage::Abroad if reg.location.countries.is_empty() => {
                "日本国外（保存国の保証なし）".to_string()
            }
            Storage::Abroad => format!("日本国外（{}）", country_names(&reg.location.countries)),
        };
        let retention = reg
            .data_use
            .retention_days
            .map(|d| format!("、提供事業者側の保存期間 最大{d}日"))
            .unwrap_or_default();
        if reg.location.storage == Storage::Abroad {
            if reg.location.countries.is_empty() {
                add_abroad(&["(unspecified)".to_string()]);
            } else {
                add_abroad(&reg.location.countries);
            }
            abroad_summary.push(format!(
                "{}：生成AIへの入力（プロンプト）及び出力{retention}",
                reg.name
            ));
        }
        let mut certs = reg.certifications.names.clone();
        if reg.certifications.ismap && !certs.iter().any(|c| c.contains("ISMAP")) {
            certs.push("ISMAP".into());
        }
        cloud.push(CloudEntry {
            name: reg.name.clone(),
            vendor: reg.vendor.clone(),
            location: format!("{place}{retention}"),
            certifications: certs,
            registration: Some(format!("{} v{version}", reg.id)),
        });
    }
    let work = if c.purposes.is_empty() {
        "（業務及び作業の具体的内容を記入）".to_string()
    } else {
        c.purposes.join("、")
    };
    let ai_services = providers
        .iter()
        .map(|(r, _)| AiEntry {
            name: r.name.clone(),
            vendor: r.vendor.clone(),
            work: work.clone(),
        })
        .collect();
    Ok(Form {
        format: FORMAT.into(),
        date: date.to_string(),
        organization_name: org.name.clone().unwrap_or_default(),
        organization_address: org.address.clone().unwrap_or_default(),
        contract_id: c.id.clone(),
        contract_title: c.title.clone(),
        client: c.client.clone(),
        contract_date: c.contract_date.clone(),
        media,
        japan_only: abroad.is_empty(),
        countries_abroad: abroad,
        abroad_summary,
        certified: cloud.iter().any(|e| !e.certifications.is_empty()),
        cloud_services: cloud,
        ai_services,
        subcontractors: c.subcontractors.clone(),
    })
}

/// What names an entry of a list in the form, so that lists are compared entry by entry and an
/// entry inserted or removed in the middle is reported as itself, not as a shift of every entry
/// after it: a provider's registration id (stable across its versions), else the entry's `name`,
/// else the value itself.
fn entry_key(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("registration").and_then(Value::as_str) {
                return r.rsplit_once(" v").map_or(r, |(id, _)| id).to_string();
            }
            match m.get("name").and_then(Value::as_str) {
                Some(n) => n.to_string(),
                None => v.to_string(),
            }
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A list's entries under their keys, in order; a key met again gets ` #2`, ` #3`….
fn keyed(list: &[serde_json::Value]) -> Vec<(String, &serde_json::Value)> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    list.iter()
        .map(|v| {
            let k = entry_key(v);
            let n = seen.entry(k.clone()).or_insert(0);
            *n += 1;
            let k = if *n > 1 { format!("{k} #{n}") } else { k };
            (k, v)
        })
        .collect()
}

/// An added or removed value in one line: a plain value as JSON, an entry as its name (else its
/// key) and its other fields.
fn describe(key: &str, v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let fields: Vec<String> = m
                .iter()
                .filter(|(k, v)| !v.is_null() && k.as_str() != "name")
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let name = m
                .get("name")
                .map(|n| n.to_string())
                .unwrap_or_else(|| serde_json::Value::String(key.to_string()).to_string());
            if fields.is_empty() {
                name
            } else {
                format!("{name} ({})", fields.join(", "))
            }
        }
        other => other.to_string(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn diff(path: &str, filed: &serde_json::Value, now: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (filed, now) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get(k) {
                    Some(o) => diff(&join(path, k), o, v, out),
                    None => out.push(format!("{}: added {}", join(path, k), describe(k, v))),
                }
            }
            for (k, o) in a.iter().filter(|(k, _)| !b.contains_key(k.as_str())) {
                out.push(format!(
                    "{}: removed (was {})",
                    join(path, k),
                    describe(k, o)
                ));
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            let (a, b) = (keyed(a), keyed(b));
            for (k, v) in &b {
                match a.iter().find(|(ka, _)| ka == k) {
                    Some((_, o)) => diff(&format!("{path}[{k}]"), o, v, out),
                    None => out.push(format!("{path}: added {}", describe(k, v))),
                }
            }
            for (k, o) in a.iter().filter(|(ka, _)| !b.iter().any(|(kb, _)| kb == ka)) {
                out.push(format!("{path}: removed {}", describe(k, o)));
            }
        }
        (o, v) if o != v => out.push(format!("{path}: {o} → {v}")),
        _ => {}
    }
}

/// What changed between the filed content and now, one line per difference. Lists (services,
/// media, countries, subcontractors…) are compared by their entries' ids or names, so an entry
/// added, removed or moved is reported as such (`added`, `removed`), and a changed entry by its
/// name and field (`cloud_services[openai].registration: "openai v1" → "openai v2"`).
pub fn differences(filed: &serde_json::Value, now: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    diff("", filed, now, &mut out);
    out
}

/// A contract's filing state for `mamori form status`.
#[derive(Debug, Serialize)]
pub struct Status {
    pub contract: String,
    /// `not_filed`, `changed` or `current`.
    pub state: String,
    pub filed_version: Option<i64>,
    pub filed_at: Option<String>,
    pub differences: Vec<String>,
}

pub async fn status(store: &Store, org: &Organization) -> anyhow::Result<Vec<Status>> {
    let mut out = Vec::new();
    let today = chrono::Utc::now().date_naive().to_string();
    for c in store
        .contracts()
        .await?
        .into_iter()
        .filter(|c| c.status == "active")
    {
        let now = build(store, org, &c.id, &today).await?;
        let filing = store.last_filing(&c.id).await?;
        let (state, diffs) = match &filing {
            None => ("not_filed", vec![]),
            Some(f) => {
                let filed: serde_json::Value = serde_json::from_str(&f.content)?;
                let d = differences(&filed, &now.content());
                (if d.is_empty() { "current" } else { "changed" }, d)
            }
        };
        out.push(Status {
            contract: c.id,
            state: state.into(),
            filed_version: filing.as_ref().map(|f| f.version),
            filed_at: filing.map(|f| f.filed_at),
            differences: diffs,
        });
    }
    Ok(out)
}

fn cb(on: bool) -> &'static str {
    if on {
        "☑"
    } else {
        "□"
    }
}

fn jdate(d: &str) -> String {
    match chrono::NaiveDate::parse_from_str(d.get(..10).unwrap_or(d), "%Y-%m-%d") {
        Ok(d) => d.format("%Y年%-m月%-d日").to_string(),
        Err(_) => "　　年　月　日".into(),
    }
}

pub fn markdown(f: &Form) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# 機密データの保存等に関する届出書\n");
    let _ = writeln!(s, "{}\n", jdate(&f.date));
    let _ = writeln!(
        s,
        "（住所）{}  \n（氏名又は法人名等）{}\n",
        f.organization_address, f.organization_name
    );
    let _ = writeln!(s, "{}付け「{}業務委託契約」に係る業務について、業務の遂行において取り扱う機密データの保存等について次のとおり届け出ます。（発注者：{}）\n", f.contract_date.as_deref().map(jdate).unwrap_or_else(|| "　　年　月　日".into()), f.contract_title, f.client);
    let _ = writeln!(s, "## １　機密データの保存に使用する媒体等の名称\n");
    for m in &f.media {
        let _ = writeln!(s, "- {m}");
    }
    let _ = writeln!(
        s,
        "\n## ２　機密データを記憶する記録媒体等の物理的な所在地等\n"
    );
    let _ = writeln!(
        s,
        "- {} 日本国内のみ\n- {} 日本国外（全部又は一部）",
        cb(f.japan_only),
        cb(!f.japan_only)
    );
    if !f.japan_only {
        let _ = writeln!(s, "  - （国名）{}", country_names(&f.countries_abroad));
        let _ = writeln!(
            s,
            "  - （日本国外に保存する機密データの概要）{}",
            f.abroad_summary.join("／")
        );
    }
    let _ = writeln!(
        s,
        "\n## ３　オンラインストレージ等のクラウドサービスの利用の有無\n"
    );
    let _ = writeln!(s, "- {} 有", cb(!f.cloud_services.is_empty()));
    for (i, e) in f.cloud_services.iter().enumerate() {
        let _ = writeln!(s, "  - ({}) ア サービス名称：{}　イ 利用契約先の名称：{}　ウ 機密データの物理的保存先に係る情報等：{}", i + 1, e.name, e.vendor, e.location);
    }
    let _ = writeln!(s, "- {} 無", cb(f.cloud_services.is_empty()));
    let _ = writeln!(
        s,
        "\n## ４　利用するオンラインストレージ等のクラウドサービスの第三者認証の情報\n"
    );
    let _ = writeln!(s, "- {} 有", cb(f.certified));
    for e in f
        .cloud_services
        .iter()
        .filter(|e| !e.certifications.is_empty())
    {
        let _ = writeln!(
            s,
            "  - {}（第三者認証の名称：{}）",
            e.name,
            e.certifications.join("、")
        );
    }
    let _ = writeln!(s, "- {} 無", cb(!f.certified));
    let _ = writeln!(s, "\n## ５　生成ＡＩの利用の有無\n");
    let _ = writeln!(s, "- {} 有", cb(!f.ai_services.is_empty()));
    for (i, a) in f.ai_services.iter().enumerate() {
        let _ = writeln!(s, "  - ({}) ア 利用サービス名：{}　イ サービス提供事業者：{}　ウ 生成ＡＩを利用する業務及び作業の具体的内容：{}", i + 1, a.name, a.vendor, a.work);
    }
    let _ = writeln!(s, "- {} 無", cb(f.ai_services.is_empty()));
    let _ = writeln!(s, "\n## ６　再委託等の有無\n");
    let _ = writeln!(s, "- {} 有", cb(!f.subcontractors.is_empty()));
    for x in &f.subcontractors {
        let _ = writeln!(
            s,
            "  - （再委託先等の名称）{}　（再委託先等に委託する具体的な業務内容）{}",
            x.name, x.work
        );
    }
    let _ = writeln!(s, "- {} 無", cb(f.subcontractors.is_empty()));
    let _ = writeln!(
        s,
        "\n※　今回の届出事項に変更があった場合には、再度届出を行ってください。"
    );
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A print-ready A4 page in the layout of the form in the contract (別記様式).
pub fn html(f: &Form) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8"><title>機密データの保存等に関する届出書 — {contract}</title>
<style>
@page {{ size: A4; margin: 18mm 18mm 16mm 18mm; }}
* {{ box-sizing: border-box; }}
body {{ font-family: "Noto Serif CJK JP", "Noto Sans CJK JP", "IPAexMincho", serif; font-size: 9.5pt; line-height: 1.42; color: #000; margin: 0; }}
.kind {{ font-size: 10pt; }}
h1 {{ font-size: 14pt; text-align: center; letter-spacing: 0.1em; margin: 3mm 0 4mm; font-weight: normal; }}
.date {{ text-align: right; margin-bottom: 3mm; }}
.who {{ margin-left: 55%; margin-bottom: 4mm; }}
.who div {{ min-height: 6mm; }}
.lead {{ text-indent: 1em; margin: 0 0 3mm; }}
table {{ width: 100%; border-collapse: collapse; table-layout: fixed; }}
td {{ border: 0.6pt solid #000; padding: 1.3mm 2.2mm; vertical-align: top; }}
td.item {{ width: 36%; }}
.ex, .note {{ font-size: 8.5pt; }}
.box {{ margin: 0.6mm 0; }}
.sub {{ margin-left: 1.2em; margin-bottom: 0.8mm; }}
tr {{ page-break-inside: avoid; }}
.foot {{ margin-top: 3mm; font-size: 9pt; }}
</style></head><body>
<div class="kind">別記様式</div>
<h1>機密データの保存等に関する届出書</h1>
<div class="date">{date}</div>
<div class="who"><div>（住所）{address}</div><div>（氏名又は法人名等）{name}</div></div>
<p class="lead">{cdate}付け「{title}業務委託契約」に係る業務について、業務の遂行において取り扱う機密データの保存等について次のとおり届け出ます。</p>
<table>
"#,
        contract = esc(&f.contract_id),
        date = jdate(&f.date),
        address = esc(&f.organization_address),
        name = esc(&f.organization_name),
        cdate = f
            .contract_date
            .as_deref()
            .map(jdate)
            .unwrap_or_else(|| "　　年　月　日".into()),
        title = esc(&f.contract_title),
    );
    let media: Vec<String> = f.media.iter().map(|m| esc(m)).collect();
    let _ = writeln!(s, "<tr><td class=\"item\">１　機密データの保存に使用する媒体等の名称<div class=\"ex\">例　USBメモリ、社内PC内ストレージ、外付けハードディスク</div></td><td>{}</td></tr>", media.join("<br>"));
    let mut two = format!("<div class=\"box\">{}　日本国内のみ</div><div class=\"box\">{}　日本国外（全部又は一部）</div>", cb(f.japan_only), cb(!f.japan_only));
    if !f.japan_only {
        let _ = write!(two, "<div class=\"sub\">（国名）{}</div><div class=\"sub\">（日本国外に保存する機密データの概要）{}</div>", esc(&country_names(&f.countries_abroad)), esc(&f.abroad_summary.join("／")));
    }
    let _ = writeln!(s, "<tr><td class=\"item\">２　機密データを記憶する記録媒体等の物理的な所在地等<div class=\"ex\">例　米国、システム管理に関するログ情報を保管</div></td><td>{two}</td></tr>");
    let mut three = format!(
        "<div class=\"box\">{}　有</div>",
        cb(!f.cloud_services.is_empty())
    );
    if !f.cloud_services.is_empty() {
        three.push_str("<div class=\"sub\">（利用契約先の情報）</div>");
        for e in &f.cloud_services {
            let _ = write!(three, "<div class=\"sub\">ア　サービス名称：{}<br>イ　利用契約先の名称：{}<br>ウ　機密データの物理的保存先に係る情報等：{}</div>", esc(&e.name), esc(&e.vendor), esc(&e.location));
        }
    }
    let _ = write!(
        three,
        "<div class=\"box\">{}　無</div>",
        cb(f.cloud_services.is_empty())
    );
    let _ = writeln!(s, "<tr><td class=\"item\">３　オンラインストレージ等のクラウドサービスの利用の有無<div class=\"note\">※　利用契約先が複数ある場合には、サービスごとに記載してください。</div></td><td>{three}</td></tr>");
    let mut four = format!("<div class=\"box\">{}　有</div>", cb(f.certified));
    for e in f
        .cloud_services
        .iter()
        .filter(|e| !e.certifications.is_empty())
    {
        let _ = write!(
            four,
            "<div class=\"sub\">{}（第三者認証の名称：{}）</div>",
            esc(&e.name),
            esc(&e.certifications.join("、"))
        );
    }
    let _ = write!(four, "<div class=\"box\">{}　無</div>", cb(!f.certified));
    let _ = writeln!(s, "<tr><td class=\"item\">４　利用するオンラインストレージ等のクラウドサービスの第三者認証の情報<div class=\"note\">※　３が「有」の場合のみ記載してください。<br>※　利用契約先が複数ある場合には、サービスごとに記載してください。</div></td><td>{four}</td></tr>");
    let mut five = format!(
        "<div class=\"box\">{}　有</div>",
        cb(!f.ai_services.is_empty())
    );
    for a in &f.ai_services {
        let _ = write!(five, "<div class=\"sub\">ア　利用サービス名：{}<br>イ　サービス提供事業者：{}<br>ウ　生成ＡＩを利用する業務及び作業の具体的内容：{}</div>", esc(&a.name), esc(&a.vendor), esc(&a.work));
    }
    let _ = write!(
        five,
        "<div class=\"box\">{}　無</div>",
        cb(f.ai_services.is_empty())
    );
    let _ = writeln!(s, "<tr><td class=\"item\">５　生成ＡＩの利用の有無<div class=\"note\">※　本業務の機密データの取扱いについて、生成ＡＩ又は生成ＡＩを利用したサービスでの利用の有無を回答してください。また、有とした場合にはアからウについて記載してください。</div></td><td>{five}</td></tr>");
    let mut six = format!(
        "<div class=\"box\">{}　有</div>",
        cb(!f.subcontractors.is_empty())
    );
    for x in &f.subcontractors {
        let _ = write!(six, "<div class=\"sub\">（再委託先等の名称）{}<br>（再委託先等に委託する具体的な業務内容）{}</div>", esc(&x.name), esc(&x.work));
    }
    let _ = write!(
        six,
        "<div class=\"box\">{}　無</div>",
        cb(f.subcontractors.is_empty())
    );
    let _ = writeln!(s, "<tr><td class=\"item\">６　再委託等の有無<div class=\"note\">※　本契約に係る業務に関して機密データの全部又は一部の取扱いを第三者に委託する予定がある場合は「有」としてください。</div></td><td>{six}</td></tr>");
    let _ = writeln!(s, "</table>\n<p class=\"foot\">※　今回の届出事項に変更があった場合には、再度届出を行ってください。</p>\n</body></html>");
    s
}

#[cfg(test)]
mod tests {
    use super::differences;
    use serde_json::json;

    fn svc(id: &str, name: &str, version: u32, certs: &[&str]) -> serde_json::Value {
        json!({"name": name, "vendor": "V", "location": "日本国内", "certifications": certs,
               "registration": format!("{id} v{version}")})
    }

    #[test]
    fn an_entry_inserted_in_the_middle_is_reported_alone() {
        let filed = json!({"cloud_services": [svc("a", "A", 1, &[]), svc("c", "C", 1, &[])],
                           "ai_services": [{"name": "A", "vendor": "V", "work": "w"},
                                           {"name": "C", "vendor": "V", "work": "w"}]});
        let now = json!({"cloud_services": [svc("a", "A", 1, &[]), svc("b", "B", 1, &[]), svc("c", "C", 1, &[])],
                         "ai_services": [{"name": "A", "vendor": "V", "work": "w"},
                                         {"name": "B", "vendor": "V", "work": "w"},
                                         {"name": "C", "vendor": "V", "work": "w"}]});
        let d = differences(&filed, &now);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(
            d[0].starts_with("cloud_services: added \"B\" (") && d[0].contains("b v1"),
            "{d:?}"
        );
        assert_eq!(
            d[1],
            "ai_services: added \"B\" (vendor: \"V\", work: \"w\")"
        );
    }

    #[test]
    fn an_entry_removed_from_the_middle_is_reported_alone() {
        let filed = json!({"ai_services": [{"name": "A", "vendor": "V", "work": "w"},
                                           {"name": "B", "vendor": "V", "work": "w"},
                                           {"name": "C", "vendor": "V", "work": "w"}],
                           "media": ["社内PC", "USBメモリ", "mamori"]});
        let now = json!({"ai_services": [{"name": "A", "vendor": "V", "work": "w"},
                                         {"name": "C", "vendor": "V", "work": "w"}],
                         "media": ["社内PC", "mamori"]});
        assert_eq!(
            differences(&filed, &now),
            [
                "ai_services: removed \"B\" (vendor: \"V\", work: \"w\")",
                "media: removed \"USBメモリ\"",
            ]
        );
    }

    #[test]
    fn a_changed_entry_is_named_by_its_id_and_field() {
        let filed = json!({"cloud_services": [svc("a", "A", 1, &[]), svc("b", "B", 1, &[])]});
        let now =
            json!({"cloud_services": [svc("a", "A", 1, &[]), svc("b", "B 新", 2, &["ISMAP"])]});
        assert_eq!(
            differences(&filed, &now),
            [
                "cloud_services[b].name: \"B\" → \"B 新\"",
                "cloud_services[b].certifications: added \"ISMAP\"",
                "cloud_services[b].registration: \"b v1\" → \"b v2\"",
            ]
        );
    }

    #[test]
    fn order_alone_is_no_change_and_repeated_names_are_counted() {
        let filed =
            json!({"countries_abroad": ["US", "IE"], "media": ["x", "x"], "japan_only": false});
        let now = json!({"countries_abroad": ["IE", "US"], "media": ["x"], "japan_only": false});
        assert_eq!(differences(&filed, &now), ["media: removed \"x\""]);
        let now =
            json!({"countries_abroad": ["IE", "US"], "media": ["x", "x"], "japan_only": true});
        assert_eq!(differences(&filed, &now), ["japan_only: false → true"]);
        assert!(differences(&filed, &filed).is_empty());
    }
}
