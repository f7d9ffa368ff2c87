//! `mamori scan` at library level: outputs reach the log through the real gateway, deliverables
//! (.docx built here, .txt, .md) mix them — reflowed, re-spaced, widened, lightly edited — with
//! human text, and `run_scan` must attribute each passage to its request and nothing else.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{spawn_app, TestApp};
use mamori::scan::{read_document, run_scan, ScanReport};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Realistic prompts; the mock answers "受け取りました: " and the prompt, which is the output a
/// deliverable can contain.
const PROMPTS: [&str; 5] = [
    "当社の基幹システム刷新計画では、現行の受発注管理と在庫管理の仕組みを統合し、クラウド基盤の上で段階的に稼働させることにより、保守費用の削減と障害対応時間の短縮を同時に実現することを目指します。なお、移行期間中は旧システムとの並行稼働を前提とし、利用部門への説明会を各拠点で順次開催する予定です。",
    "2026年度の第3四半期までに、営業部門の問い合わせ対応へAIチャットボットを試験導入し、回答品質と応答時間をKPIとして毎月評価したうえで、本格展開の可否を経営会議で判断するという進め方を提案いたします。評価にあたっては利用者アンケートも併せて実施します。",
    "情報セキュリティ対策の観点からは、委託先に提供する資料を必要最小限に絞り込むとともに、作業端末の持ち出しを原則として禁止し、作業記録を定期的に点検する体制を整えることが重要であると考えられます。",
    "新しい勤怠管理ツールの導入に伴い、各部署の管理者には承認フローの設定方法と月次締め処理の手順を習得していただく必要があるため、来月から全三回のオンライン研修を実施いたします。",
    "物流センターの配送ルートを見直した結果、積載率の向上と走行距離の短縮が確認されたため、来期以降は同様の分析手法を他の地域拠点にも展開していく方針であることをご報告いたします。",
];

/// Human-written paragraphs: no passage may be found in them.
const HUMAN: [&str; 4] = [
    "本書は、昨年度に実施した業務棚卸しの結果を踏まえ、各部門の担当者が自ら課題を洗い出し、改善の優先順位について議論した内容を取りまとめたものである。",
    "なお、費用対効果の試算には一定の前提条件を置いており、実際の効果は今後の運用状況によって変動し得る点に留意されたい。",
    "最後に、本提案の検討に協力いただいた関係各位に深く感謝申し上げるとともに、引き続きの支援をお願いしたい。",
    "現場の声としては、入力画面の項目が多すぎて繁忙期には対応しきれないという意見が最も多く寄せられた。",
];

/// Full-width digits and Latin letters, as a Japanese word processor might convert them.
fn widen(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap()
            } else {
                c
            }
        })
        .collect()
}

/// Hard-wraps every `width` characters, as pasting into a fixed-width editor does.
fn wrap(s: &str, width: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    chars
        .chunks(width)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Sends every prompt through the gateway (chat completions, one streamed, one Anthropic
/// messages) and returns their request ids and their output texts as the log holds them,
/// without the mock's prefix (what staff would paste into a deliverable).
async fn log_outputs(app: &TestApp) -> (Vec<String>, Vec<String>) {
    let mut ids = Vec::new();
    for (i, prompt) in PROMPTS.iter().enumerate() {
        let id = match i {
            2 => {
                let body = json!({"model": "gpt-test", "stream": true,
                    "messages": [{"role": "user", "content": prompt}]});
                let resp = app.post("/v1/chat/completions", &body).await;
                assert_eq!(resp.status(), 200);
                let id = resp.headers()["x-mamori-request-id"]
                    .to_str()
                    .unwrap()
                    .to_string();
                let text = resp.text().await.unwrap();
                assert!(text.contains("[DONE]"), "{text}");
                id
            }
            3 => {
                let body = json!({"model": "claude-test", "max_tokens": 500,
                    "messages": [{"role": "user", "content": prompt}]});
                let (status, reply, id) = app.call("/v1/messages", &body).await;
                assert_eq!(status, 200, "{reply}");
                id.unwrap()
            }
            _ => {
                let body = json!({"model": "gpt-test",
                    "messages": [
                        {"role": "system", "content": "あなたは社内文書の作成を支援するアシスタントです。"},
                        {"role": "user", "content": prompt}]});
                let (status, reply, id) = app.call("/v1/chat/completions", &body).await;
                assert_eq!(status, 200, "{reply}");
                let content = reply["choices"][0]["message"]["content"].as_str().unwrap();
                assert!(content.starts_with("受け取りました"), "{content}");
                id.unwrap()
            }
        };
        ids.push(id);
    }
    app.wait_for_records(PROMPTS.len() as i64).await;
    let mut texts = Vec::new();
    for id in &ids {
        let (_, _, out) = app.record(id).await;
        let text = mamori::proxy::assemble::output_text(&out.unwrap());
        let text = text.strip_prefix("受け取りました: ").unwrap_or(&text);
        assert!(text.chars().count() >= 80, "{text}");
        texts.push(text.to_string());
    }
    (ids, texts)
}

/// XML-escapes text for a `w:t`.
fn xml_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Writes a minimal valid .docx: each paragraph is a list of runs; a `\n` inside a run becomes
/// a manual line break (`w:br`).
fn write_docx(path: &Path, paragraphs: &[Vec<String>]) {
    let mut body = String::new();
    for runs in paragraphs {
        body.push_str("<w:p><w:pPr><w:tabs><w:tab w:val=\"left\" w:pos=\"720\"/></w:tabs></w:pPr>");
        for (i, run) in runs.iter().enumerate() {
            body.push_str("<w:r>");
            if i % 2 == 1 {
                body.push_str("<w:rPr><w:b/></w:rPr>");
            }
            let pieces: Vec<String> = run
                .split('\n')
                .map(|t| format!("<w:t xml:space=\"preserve\">{}</w:t>", xml_text(t)))
                .collect();
            body.push_str(&pieces.join("<w:br/>"));
            body.push_str("</w:r>");
        }
        body.push_str("</w:p>");
    }
    let document = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}<w:sectPr/></w:body></w:document>"#
    );
    let content_types = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;
    let rels = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, text) in [
        ("[Content_Types].xml", content_types),
        ("_rels/.rels", rels),
        ("word/document.xml", document.as_str()),
    ] {
        zip.start_file(name, opts).unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
}

/// Characters that count for coverage, roughly as the scanner folds them.
fn visible(s: &str) -> usize {
    s.chars()
        .filter(|c| !c.is_whitespace() && !"-ー*#_`>|・".contains(*c))
        .count()
}

/// The 1-based line of the extracted text that contains `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` not in the document"))
        + 1
}

fn human_prefix(i: usize) -> String {
    HUMAN[i].chars().take(10).collect()
}

/// No passage touches a line holding a human paragraph.
fn assert_humans_not_flagged(report: &ScanReport, file: usize, text: &str, humans: &[usize]) {
    for &h in humans {
        let line = line_of(text, &human_prefix(h));
        for p in &report.files[file].report.passages {
            assert!(
                line < p.start_line || line > p.end_line,
                "human paragraph {h} (line {line}) flagged: {p:?}"
            );
        }
    }
}

#[tokio::test]
async fn docx_passages_are_attributed_to_their_requests() {
    let app = spawn_app().await;
    let (ids, outputs) = log_outputs(&app).await;
    let output = |i: usize| outputs[i].clone();
    let dir = tempfile::tempdir().unwrap();

    let out0 = output(0);
    let (a0, b0) = out0.split_at(out0.char_indices().nth(33).unwrap().0);
    // Output 1 widened and lightly edited (a few words changed).
    let out1 = widen(&output(1))
        .replacen("試験導入し", "試行的に導入し", 1)
        .replacen("毎月評価", "月次で評価", 1)
        .replacen("可否を", "是非を", 1);
    let out2 = output(2);
    let (a2, b2) = out2.split_at(out2.char_indices().nth(41).unwrap().0);
    let paragraphs: Vec<Vec<String>> = vec![
        vec!["業務改善提案書".into()],
        vec![HUMAN[0].into()],
        // Split across runs mid-word, with a manual line break and stray spaces.
        vec![
            a0.replace('、', "、 "),
            format!("\n{}", &b0[..b0.char_indices().nth(5).unwrap().0]),
            format!(
                "{}今後の詳細な日程は別途調整する。",
                &b0[b0.char_indices().nth(5).unwrap().0..]
            ),
        ],
        vec![HUMAN[1].into()],
        vec![out1.clone()],
        vec![HUMAN[3].into()],
        // Reflowed into two paragraphs.
        vec![a2.to_string()],
        vec![b2.to_string()],
        vec![HUMAN[2].into()],
    ];
    let path = dir.path().join("提案書.docx");
    write_docx(&path, &paragraphs);
    let text = read_document(&path).unwrap();

    let report = run_scan(
        &app.store,
        &app.gw.log.data_keys,
        "c1",
        std::slice::from_ref(&path),
    )
    .await
    .unwrap();
    assert_eq!(report.outputs_indexed, PROMPTS.len());
    assert!(report.outputs_unavailable.is_empty());
    let file = &report.files[0];
    assert_eq!(file.path, path.display().to_string());
    let passages = &file.report.passages;
    assert_eq!(passages.len(), 3, "{passages:#?}");

    // Output 0: the reflowed paragraph, lines 3–4 (the manual break), verbatim up to layout.
    assert_eq!(passages[0].request_ids, vec![ids[0].clone()]);
    assert_eq!(passages[0].start_line, line_of(&text, &a0[..12]));
    assert_eq!(passages[0].end_line, passages[0].start_line + 1);
    assert_eq!(passages[0].similarity, 1.0);
    assert!(
        passages[0].excerpt.starts_with("当社の基幹システム"),
        "{}",
        passages[0].excerpt
    );
    // Output 1: widened and edited, still found, with a lower similarity.
    assert_eq!(passages[1].request_ids, vec![ids[1].clone()]);
    assert_eq!(passages[1].start_line, line_of(&text, "営業部門"));
    assert!(
        passages[1].similarity > 0.7 && passages[1].similarity < 1.0,
        "{:?}",
        passages[1]
    );
    // Output 2 (streamed), reflowed over two paragraphs: still one passage.
    assert_eq!(passages[2].request_ids, vec![ids[2].clone()]);
    assert_eq!(passages[2].start_line, line_of(&text, "情報セキュリティ"));
    assert_eq!(passages[2].end_line, passages[2].start_line + 1);
    assert_eq!(passages[2].similarity, 1.0);
    assert_humans_not_flagged(&report, 0, &text, &[0, 1, 2, 3]);

    // Outputs 3 and 4 are not in this deliverable.
    assert_eq!(report.request_ids, ids[..3].to_vec());

    let ai = visible(&output(0)) + visible(&out1) + visible(&out2);
    let expected = ai as f64 / visible(&text) as f64;
    let got = file.report.coverage;
    assert!(
        (got - expected).abs() < 0.08,
        "coverage {got}, expected about {expected}"
    );
    assert_eq!(
        file.report.covered_chars,
        passages.iter().map(|p| p.chars).sum::<usize>()
    );

    // The report serialises for the CLI's --json.
    let v = serde_json::to_value(&report).unwrap();
    assert_eq!(
        v["files"][0]["passages"][0]["request_ids"][0],
        json!(ids[0])
    );
    assert!(v["files"][0]["coverage"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn text_and_markdown_deliverables_are_scanned_together() {
    let app = spawn_app().await;
    let (ids, outputs) = log_outputs(&app).await;
    let output = |i: usize| outputs[i].clone();
    let dir = tempfile::tempdir().unwrap();

    // .txt: hard-wrapped, with half-width katakana in places and a human paragraph between.
    let txt = format!(
        "{}\n\n{}\n\n{}\n",
        wrap(&output(4).replace("センター", "ｾﾝﾀｰ"), 24),
        HUMAN[1],
        HUMAN[3]
    );
    let txt_path = dir.path().join("報告.txt");
    std::fs::write(&txt_path, txt.as_bytes()).unwrap();

    // .md: heading, a bulleted and emphasised copy of output 3, and a human paragraph.
    let out3 = output(3);
    let cut = out3.char_indices().nth(30).unwrap().0;
    let md = format!(
        "# 研修のご案内\n\n- **{}**\n  {}\n\n{}\n",
        &out3[..cut],
        &out3[cut..],
        HUMAN[0]
    );
    let md_path = dir.path().join("案内.md");
    std::fs::write(&md_path, md.as_bytes()).unwrap();

    let report = run_scan(
        &app.store,
        &app.gw.log.data_keys,
        "c1",
        &[txt_path.clone(), md_path.clone()],
    )
    .await
    .unwrap();
    let t = &report.files[0].report;
    assert_eq!(t.passages.len(), 1, "{:?}", t.passages);
    assert_eq!(t.passages[0].request_ids, vec![ids[4].clone()]);
    assert_eq!((t.passages[0].start_line, t.passages[0].end_line), (1, 4));
    assert_eq!(t.passages[0].similarity, 1.0);
    assert_humans_not_flagged(&report, 0, &txt, &[1, 3]);

    let m = &report.files[1].report;
    assert_eq!(m.passages.len(), 1, "{:?}", m.passages);
    assert_eq!(m.passages[0].request_ids, vec![ids[3].clone()]);
    assert_eq!((m.passages[0].start_line, m.passages[0].end_line), (3, 4));
    assert_humans_not_flagged(&report, 1, &md, &[0]);
    let expected = visible(&out3) as f64 / visible(&md) as f64;
    assert!(
        (m.coverage - expected).abs() < 0.08,
        "{} vs {expected}",
        m.coverage
    );

    // Found ids in log order, across files.
    assert_eq!(report.request_ids, vec![ids[3].clone(), ids[4].clone()]);
}

#[tokio::test]
async fn deleted_bodies_are_reported_as_unavailable() {
    let app = spawn_app().await;
    let (ids, outputs) = log_outputs(&app).await;
    let output = |i: usize| outputs[i].clone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("納品物.txt");
    std::fs::write(&path, output(0)).unwrap();

    let n = app.store.expire_bodies("c1", "9999-12-31").await.unwrap();
    assert_eq!(n, PROMPTS.len() as u64);
    let report = run_scan(&app.store, &app.gw.log.data_keys, "c1", &[path])
        .await
        .unwrap();
    assert_eq!(report.outputs_indexed, 0);
    let gone: Vec<&str> = report
        .outputs_unavailable
        .iter()
        .map(|u| u.request_id.as_str())
        .collect();
    assert_eq!(gone, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        report.unavailable_by_reason().get("retention"),
        Some(&PROMPTS.len())
    );
    assert!(report.files[0].report.passages.is_empty());
    assert!(report.request_ids.is_empty());
}

#[tokio::test]
async fn bad_files_give_clear_errors() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let scan = |files: Vec<PathBuf>| {
        let app = &app;
        async move {
            run_scan(&app.store, &app.gw.log.data_keys, "c1", &files)
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:#}"))
        }
    };

    let corrupt = dir.path().join("壊れた.docx");
    std::fs::write(&corrupt, b"PK\x03\x04 this is not really a zip file").unwrap();
    let err = scan(vec![corrupt.clone()]).await.unwrap_err();
    assert!(err.contains("壊れた.docx"), "{err}");
    assert!(err.contains("not a valid .docx"), "{err}");

    // A zip without a Word body.
    let not_word = dir.path().join("other.docx");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&not_word).unwrap());
    zip.start_file("hello.txt", zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(b"hello").unwrap();
    zip.finish().unwrap();
    let err = scan(vec![not_word]).await.unwrap_err();
    assert!(
        err.contains("other.docx") && err.contains("word/document.xml"),
        "{err}"
    );

    // Broken XML inside a real zip.
    let broken = dir.path().join("broken.docx");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&broken).unwrap());
    zip.start_file(
        "word/document.xml",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    zip.write_all(b"<w:document><w:body><w:p></w:body>")
        .unwrap();
    zip.finish().unwrap();
    let err = scan(vec![broken]).await.unwrap_err();
    assert!(
        err.contains("broken.docx") && err.contains("not well-formed"),
        "{err}"
    );

    let pdf = dir.path().join("report.pdf");
    std::fs::write(&pdf, b"%PDF-1.7").unwrap();
    let err = scan(vec![pdf]).await.unwrap_err();
    assert!(err.contains("report.pdf"), "{err}");
    for ext in [".txt", ".md", ".docx"] {
        assert!(err.contains(ext), "{err}");
    }

    // Shift_JIS text ("日本語").
    let sjis = dir.path().join("sjis.txt");
    std::fs::write(&sjis, [0x93, 0xFA, 0x96, 0x7B, 0x8C, 0xEA]).unwrap();
    let err = scan(vec![sjis]).await.unwrap_err();
    assert!(
        err.contains("sjis.txt") && err.contains("not UTF-8"),
        "{err}"
    );

    let missing = dir.path().join("missing.md");
    let err = scan(vec![missing]).await.unwrap_err();
    assert!(err.contains("missing.md"), "{err}");

    // An unknown contract.
    let ok = dir.path().join("ok.txt");
    std::fs::write(&ok, "本文").unwrap();
    let err = run_scan(&app.store, &app.gw.log.data_keys, "nope", &[ok])
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("no contract `nope`"), "{err:#}");
}
