//! `mamori scan` speed and memory: `cargo bench --bench scan`.
//!
//! Synthesises 100,000 logged outputs of about 1 KB of Japanese business prose each (~100 MB)
//! and a 1 MB deliverable holding 200 passages taken from random outputs — reflowed, re-spaced,
//! widened and with a word or two changed — among human-written filler, all from one seeded
//! generator so every run sees the same data. Times building the index and scanning, checks
//! that the planted passages are found (and nothing else), and prints the peak resident memory
//! (VmHWM). Goal: under 2 s and 500 MB on a 2-core machine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mamori::scan::OutputIndex;
use std::time::Instant;

const OUTPUTS: usize = 100_000;
const OUTPUT_BYTES: usize = 1024;
const DOCUMENT_BYTES: usize = 1 << 20;
const PLANTED: usize = 200;

/// SplitMix64: a tiny seeded generator, so the benchmark needs no extra crates.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &'a [String]) -> &'a str {
        &items[self.below(items.len())]
    }
}

/// A domain vocabulary: kanji compounds, katakana loanwords, some Latin and numbers.
struct Words {
    nouns: Vec<String>,
    particles: Vec<String>,
    endings: Vec<String>,
    openers: Vec<String>,
}

impl Words {
    fn new(rng: &mut Rng) -> Self {
        let mut nouns = Vec::new();
        for _ in 0..2500 {
            let n = 2 + rng.below(3);
            nouns.push(
                (0..n)
                    .map(|_| char::from_u32(0x4E00 + rng.below(0x5000) as u32).unwrap())
                    .collect(),
            );
        }
        for _ in 0..800 {
            let n = 3 + rng.below(4);
            let mut w: String = (0..n)
                .map(|_| char::from_u32(0x30A1 + rng.below(0x55) as u32).unwrap())
                .collect();
            if rng.below(3) == 0 {
                w.push('ー');
            }
            nouns.push(w);
        }
        for _ in 0..200 {
            let n = 2 + rng.below(3);
            let w: String = (0..n)
                .map(|_| char::from(b'A' + rng.below(26) as u8))
                .collect();
            nouns.push(w);
            nouns.push(format!("{}件", rng.below(1000)));
        }
        let list = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        Self {
            nouns,
            particles: list("の を に は が と で から まで より や も へ について として における"),
            endings: list(
                "します。 しました。 です。 であります。 と考えられます。 が必要です。 を検討します。 を提案いたします。 となっています。",
            ),
            openers: list(
                "承知しました。以下に要点を整理してお伝えします。 ご依頼の内容について、以下のとおりまとめました。 ご質問ありがとうございます。結論から申し上げますと、",
            ),
        }
    }

    fn sentence(&self, rng: &mut Rng, out: &mut String) {
        for i in 0..4 + rng.below(6) {
            if i > 0 && rng.below(4) == 0 {
                out.push('、');
            }
            out.push_str(rng.pick(&self.nouns));
            out.push_str(rng.pick(&self.particles));
        }
        out.push_str(rng.pick(&self.nouns));
        out.push_str(rng.pick(&self.endings));
    }

    fn text(&self, rng: &mut Rng, bytes: usize) -> String {
        let mut out = String::with_capacity(bytes + 64);
        // Stock openers, as models write them: boilerplate the index must drop.
        if rng.below(2) == 0 {
            out.push_str(rng.pick(&self.openers));
        }
        while out.len() < bytes {
            self.sentence(rng, &mut out);
        }
        out
    }
}

/// A copy as staff make it: a word changed, line breaks every few dozen characters, stray
/// spaces, Latin and digits made full-width.
fn edit(rng: &mut Rng, words: &Words, text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..1 + rng.below(2) {
        let at = rng.below(chars.len().saturating_sub(4).max(1));
        let with: Vec<char> = rng.pick(&words.nouns).chars().collect();
        chars.splice(at..(at + 3).min(chars.len()), with);
    }
    let mut out = String::new();
    for (i, c) in chars.into_iter().enumerate() {
        if i > 0 && i % 37 == 0 {
            out.push('\n');
        } else if i % 53 == 0 {
            out.push(' ');
        }
        out.push(if c.is_ascii_alphanumeric() {
            char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap()
        } else {
            c
        });
    }
    out
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let mut rng = Rng(0x6d61_6d6f_7269);
    let words = Words::new(&mut rng);

    let t = Instant::now();
    let outputs: Vec<(String, String)> = (0..OUTPUTS)
        .map(|i| {
            (
                format!("req_bench_{i:06}"),
                words.text(&mut rng, OUTPUT_BYTES),
            )
        })
        .collect();
    let total: usize = outputs.iter().map(|(_, t)| t.len()).sum();

    // The deliverable: filler paragraphs with planted passages between them.
    let mut doc = String::with_capacity(DOCUMENT_BYTES + 4096);
    let mut planted = Vec::new(); // (request id, first line, last line)
    let filler_per_gap = (DOCUMENT_BYTES - PLANTED * 600) / (PLANTED + 1);
    let line = |doc: &str| doc.matches('\n').count() + 1;
    for p in 0..=PLANTED {
        while doc.len() < (p + 1) * filler_per_gap + p * 600 {
            let mut para = String::new();
            for _ in 0..2 + rng.below(4) {
                words.sentence(&mut rng, &mut para);
            }
            doc.push_str(&para);
            doc.push_str("\n\n");
        }
        if p == PLANTED {
            break;
        }
        let o = rng.below(OUTPUTS);
        let source: Vec<char> = outputs[o].1.chars().collect();
        let len = (80 + rng.below(220)).min(source.len() - 1);
        let start = rng.below(source.len() - len);
        let passage: String = source[start..start + len].iter().collect();
        let first = line(&doc);
        doc.push_str(&edit(&mut rng, &words, &passage));
        planted.push((outputs[o].0.clone(), first, line(&doc)));
        doc.push_str("\n\n");
    }
    let generated = t.elapsed();
    let rss_data = peak_rss_mb();

    let t = Instant::now();
    let index = OutputIndex::build(outputs).unwrap();
    let build = t.elapsed();
    let t = Instant::now();
    let report = index.scan(&doc);
    let scan = t.elapsed();
    let rss_peak = peak_rss_mb();

    let found = planted
        .iter()
        .filter(|(id, first, last)| {
            report.passages.iter().any(|p| {
                p.start_line <= *last && p.end_line >= *first && p.request_ids.first() == Some(id)
            })
        })
        .count();
    let stray = report
        .passages
        .iter()
        .filter(|p| {
            !planted
                .iter()
                .any(|(_, first, last)| p.start_line <= *last && p.end_line >= *first)
        })
        .count();
    let mean_similarity =
        report.passages.iter().map(|p| p.similarity).sum::<f64>() / report.passages.len() as f64;

    println!(
        "scan: {} outputs ({:.1} MB), deliverable {:.2} MB, {} planted passages (data made in {:.2} s)",
        OUTPUTS,
        total as f64 / 1e6,
        doc.len() as f64 / 1e6,
        PLANTED,
        generated.as_secs_f64()
    );
    println!("  {index:?}");
    println!(
        "  build {:.3} s + scan {:.3} s = {:.3} s",
        build.as_secs_f64(),
        scan.as_secs_f64(),
        (build + scan).as_secs_f64()
    );
    println!(
        "  found {found}/{PLANTED} planted passages with the right request first; {stray} stray passages; \
         {} passages in all, mean similarity {mean_similarity:.3}, coverage {:.4}",
        report.passages.len(),
        report.coverage
    );
    println!("  peak RSS {rss_peak:.0} MB (of which {rss_data:.0} MB the generated data, before indexing)");
}
