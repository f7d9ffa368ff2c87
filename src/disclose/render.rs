//! Renders a disclosure as Markdown, HTML, CSV or JSON, in Japanese or English. Rendering is
//! deterministic, so `disclose verify` can regenerate a file and compare it byte for byte.
use super::{Disclosure, Lang, ServiceUse};
use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Md,
    Html,
    Csv,
    Json,
}

impl std::str::FromStr for Format {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "md" => Ok(Format::Md),
            "html" => Ok(Format::Html),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            _ => anyhow::bail!("--format `{s}`: use md, html, csv or json"),
        }
    }
}

struct Words {
    title: &'static str,
    deliverable: &'static str,
    contract: &'static str,
    whole_contract: &'static str,
    services: &'static str,
    service: &'static str,
    vendor: &'static str,
    models: &'static str,
    versions: &'static str,
    uses: &'static str,
    purposes: &'static str,
    period: &'static str,
    staff: &'static str,
    interactions: &'static str,
    appendix: &'static str,
    appendix_note: &'static str,
    request_id: &'static str,
    at: &'static str,
    hash: &'static str,
    none: &'static str,
    footer: &'static str,
}

const JA: Words = Words {
    title: "生成AI利用の開示",
    deliverable: "対象成果物",
    contract: "契約",
    whole_contract: "（契約全体）",
    services: "利用した生成AIサービス",
    service: "サービス名称",
    vendor: "サービス提供事業者",
    models: "モデル",
    versions: "登録版",
    uses: "利用回数",
    purposes: "利用目的（業務及び作業の内容）",
    period: "利用期間",
    staff: "利用した従事者",
    interactions: "生成AIとのやり取りの回数",
    appendix: "付録：リクエストIDと出力のハッシュ",
    appendix_note: "各行の出力SHA-256は、mamori の出力ログに記録された出力と照合できます（mamori disclose verify）。",
    request_id: "リクエストID",
    at: "日時（UTC）",
    hash: "出力SHA-256",
    none: "なし",
    footer: "この開示は mamori の出力ログから作成されました",
};

const EN: Words = Words {
    title: "Disclosure of generative AI use",
    deliverable: "Deliverable",
    contract: "Contract",
    whole_contract: "(whole contract)",
    services: "Generative AI services used",
    service: "Service",
    vendor: "Provider",
    models: "Models",
    versions: "Registration versions",
    uses: "Uses",
    purposes: "Purposes",
    period: "Period of use",
    staff: "Staff who used them",
    interactions: "Number of interactions",
    appendix: "Appendix: request ids and output hashes",
    appendix_note: "Each output SHA-256 can be checked against the output recorded in mamori's log (mamori disclose verify).",
    request_id: "Request id",
    at: "Time (UTC)",
    hash: "Output SHA-256",
    none: "none",
    footer: "This disclosure was produced from mamori's output log",
};

fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::Ja => &JA,
        Lang::En => &EN,
    }
}

/// The marking statement to paste into the deliverable (第8-2).
pub fn statement(lang: Lang, services: &[ServiceUse]) -> String {
    if services.is_empty() {
        return match lang {
            Lang::Ja => "本成果物の作成に生成AIサービスは利用していません（mamori の出力ログに記録なし）。".into(),
            Lang::En => "No generative AI service was used to prepare this deliverable (none recorded in mamori's log).".into(),
        };
    }
    let list: Vec<String> = services
        .iter()
        .map(|s| match lang {
            Lang::Ja => format!(
                "{}（{}、モデル: {}）",
                s.name,
                s.vendor,
                s.models.join("、")
            ),
            Lang::En => format!("{} ({}; models: {})", s.name, s.vendor, s.models.join(", ")),
        })
        .collect();
    match lang {
        Lang::Ja => format!("本成果物の作成にあたり、以下の生成AIサービスを利用しました：{}。", list.join("、")),
        Lang::En => format!("This deliverable was prepared with the assistance of the following generative AI services: {}.", list.join("; ")),
    }
}

fn period(d: &Disclosure, w: &Words) -> String {
    match &d.period {
        Some((a, b)) => format!("{} – {}", &a[..a.len().min(10)], &b[..b.len().min(10)]),
        None => w.none.to_string(),
    }
}

fn list_or_none(items: &[String], w: &Words, sep: &str) -> String {
    if items.is_empty() {
        w.none.to_string()
    } else {
        items.join(sep)
    }
}

/// A service's registration versions, as `v1, v2`.
fn versions(x: &ServiceUse) -> String {
    let v: Vec<String> = x
        .registration_versions
        .iter()
        .map(|v| format!("v{v}"))
        .collect();
    v.join(", ")
}

fn staff_names(d: &Disclosure) -> Vec<String> {
    d.staff
        .iter()
        .map(|p| format!("{} ({})", p.name, p.id))
        .collect()
}

/// The machine-readable header that lets `disclose verify` regenerate the file.
pub fn meta_line(d: &Disclosure) -> String {
    let meta = serde_json::json!({
        "format": d.format, "contract": d.contract.id, "deliverable": d.deliverable,
        "lang": d.lang, "generated_at": d.generated_at,
    });
    format!("<!-- mamori-disclosure {meta} -->")
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn render(d: &Disclosure, f: Format) -> anyhow::Result<String> {
    Ok(match f {
        Format::Json => serde_json::to_string_pretty(d)? + "\n",
        Format::Md => markdown(d),
        Format::Html => html(d),
        Format::Csv => csv(d),
    })
}

fn markdown(d: &Disclosure) -> String {
    let w = words(d.lang);
    let mut s = String::new();
    let _ = writeln!(s, "{}", meta_line(d));
    let _ = writeln!(s, "# {}\n", w.title);
    let _ = writeln!(
        s,
        "- {}: {}",
        w.deliverable,
        d.deliverable.as_deref().unwrap_or(w.whole_contract)
    );
    let _ = writeln!(
        s,
        "- {}: {}（{}） `{}`\n",
        w.contract, d.contract.title, d.contract.client, d.contract.id
    );
    let _ = writeln!(s, "> {}\n", d.statement);
    let _ = writeln!(s, "## {}\n", w.services);
    let _ = writeln!(
        s,
        "| {} | {} | {} | {} | {} |",
        w.service, w.vendor, w.models, w.versions, w.uses
    );
    let _ = writeln!(s, "| --- | --- | --- | --- | ---: |");
    for x in &d.services {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            md_cell(&x.name),
            md_cell(&x.vendor),
            md_cell(&x.models.join(", ")),
            versions(x),
            x.interactions
        );
    }
    let _ = writeln!(
        s,
        "\n- {}: {}",
        w.purposes,
        list_or_none(&d.purposes, w, "、")
    );
    let _ = writeln!(s, "- {}: {}", w.period, period(d, w));
    let staff = staff_names(d);
    let _ = writeln!(s, "- {}: {}", w.staff, list_or_none(&staff, w, "、"));
    let _ = writeln!(s, "- {}: {}\n", w.interactions, d.interactions);
    let _ = writeln!(s, "## {}\n", w.appendix);
    let _ = writeln!(s, "{}\n", w.appendix_note);
    let _ = writeln!(
        s,
        "| # | {} | {} | {} | {} |",
        w.request_id, w.at, w.service, w.hash
    );
    let _ = writeln!(s, "| ---: | --- | --- | --- | --- |");
    for (i, r) in d.records.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} / {} | `{}` |",
            i + 1,
            r.request_id,
            r.at,
            md_cell(&r.provider_id),
            md_cell(&r.model),
            r.output_sha256
        );
    }
    let _ = writeln!(s, "\n---\n{} ({}, {}).", w.footer, d.format, d.generated_at);
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(d: &Disclosure) -> String {
    let w = words(d.lang);
    let lang = match d.lang {
        Lang::Ja => "ja",
        Lang::En => "en",
    };
    let mut s = String::new();
    let _ = writeln!(s, "<!DOCTYPE html>\n{}\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>{}</title>", meta_line(d), esc(w.title));
    let _ = writeln!(s, "<style>@page{{size:A4;margin:18mm}}body{{font-family:\"Noto Sans CJK JP\",\"Noto Sans JP\",sans-serif;font-size:10.5pt;line-height:1.6;color:#000}}table{{border-collapse:collapse;width:100%;margin:6px 0}}th,td{{border:1px solid #444;padding:3px 6px;text-align:left;vertical-align:top}}blockquote{{border-left:4px solid #333;margin:8px 0;padding:4px 10px;background:#f4f4f4}}code{{font-size:8.5pt;word-break:break-all}}.n{{text-align:right}}</style></head><body>");
    let _ = writeln!(s, "<h1>{}</h1>", esc(w.title));
    let _ = writeln!(
        s,
        "<p>{}: {}<br>{}: {}（{}） <code>{}</code></p>",
        esc(w.deliverable),
        esc(d.deliverable.as_deref().unwrap_or(w.whole_contract)),
        esc(w.contract),
        esc(&d.contract.title),
        esc(&d.contract.client),
        esc(&d.contract.id)
    );
    let _ = writeln!(s, "<blockquote>{}</blockquote>", esc(&d.statement));
    let _ = writeln!(
        s,
        "<h2>{}</h2>\n<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        esc(w.services),
        esc(w.service),
        esc(w.vendor),
        esc(w.models),
        esc(w.versions),
        esc(w.uses)
    );
    for x in &d.services {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
            esc(&x.name),
            esc(&x.vendor),
            esc(&x.models.join(", ")),
            versions(x),
            x.interactions
        );
    }
    let _ = writeln!(s, "</table>");
    let staff = staff_names(d);
    let _ = writeln!(
        s,
        "<ul><li>{}: {}</li><li>{}: {}</li><li>{}: {}</li><li>{}: {}</li></ul>",
        esc(w.purposes),
        esc(&list_or_none(&d.purposes, w, "、")),
        esc(w.period),
        esc(&period(d, w)),
        esc(w.staff),
        esc(&list_or_none(&staff, w, "、")),
        esc(w.interactions),
        d.interactions
    );
    let _ = writeln!(s, "<h2>{}</h2>\n<p>{}</p>\n<table><tr><th>#</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>", esc(w.appendix), esc(w.appendix_note), esc(w.request_id), esc(w.at), esc(w.service), esc(w.hash));
    for (i, r) in d.records.iter().enumerate() {
        let _ = writeln!(s, "<tr><td class=\"n\">{}</td><td><code>{}</code></td><td>{}</td><td>{} / {}</td><td><code>{}</code></td></tr>", i + 1, esc(&r.request_id), esc(&r.at), esc(&r.provider_id), esc(&r.model), esc(&r.output_sha256));
    }
    let _ = writeln!(
        s,
        "</table>\n<p><small>{} ({}, {}).</small></p>\n</body></html>",
        esc(w.footer),
        esc(&d.format),
        esc(&d.generated_at)
    );
    s
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One row per interaction, with the disclosure's identity on every row so it stands alone.
fn csv(d: &Disclosure) -> String {
    let w = words(d.lang);
    let mut s = String::new();
    let head = [
        "format",
        "generated_at",
        "lang",
        "contract",
        "deliverable",
        "request_id",
        "at",
        "provider_id",
        w.service,
        w.vendor,
        "model",
        "endpoint",
        "output_sha256",
    ];
    let _ = writeln!(s, "{}", head.map(csv_field).join(","));
    let lang = match d.lang {
        Lang::Ja => "ja",
        Lang::En => "en",
    };
    for r in &d.records {
        let svc = d.services.iter().find(|x| x.provider_id == r.provider_id);
        let row = [
            d.format.as_str(),
            &d.generated_at,
            lang,
            &d.contract.id,
            d.deliverable.as_deref().unwrap_or(""),
            &r.request_id,
            &r.at,
            &r.provider_id,
            svc.map(|x| x.name.as_str()).unwrap_or(""),
            svc.map(|x| x.vendor.as_str()).unwrap_or(""),
            &r.model,
            &r.endpoint,
            &r.output_sha256,
        ];
        let _ = writeln!(s, "{}", row.map(csv_field).join(","));
    }
    s
}
