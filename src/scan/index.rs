//! The index of logged outputs and the scan of one deliverable against it.
//!
//! Building: each output is folded (`normalize`), its shingles hashed and winnowed
//! (`shingle`); the kept hashes go into one sorted array of `key << 28 | output` words (`key`
//! being the hash's top 36 bits). Keys shared by more than `max_outputs_per_shingle` outputs
//! are boilerplate ("以下に要約を示します…") and are dropped. The folded outputs are kept,
//! concatenated, for the verification step. Batches of outputs are folded on all cores.
//!
//! Scanning: every shingle of the deliverable is looked up (a sorted merge against the array),
//! giving candidate outputs and where they were hit. Each candidate is then verified around its
//! hits with all of its shingles, exactly: the deliverable's shingles that occur in the output
//! cover characters; covered stretches less than `max_gap` apart are one segment (so a few
//! edited words do not split a passage), and a segment counts when at least `min_passage`
//! characters are covered. Segments of all outputs are then made into non-overlapping
//! passages, best-covered first; an output whose segment lies mostly within an existing passage
//! is listed as another source of it.
use super::normalize::{fold, View};
use super::shingle::{hashes, winnow};
use super::{FileReport, Passage, ScanParams};
use anyhow::{anyhow, bail};

/// Low bits of an index word that hold the output number (so at most 2^28 outputs).
const ID_BITS: u32 = 28;
const ID_MASK: u64 = (1 << ID_BITS) - 1;
/// Outputs folded per parallel batch: large enough to keep the cores busy, small enough that
/// the batch's raw texts stay a small part of memory.
const BATCH: usize = 4096;
/// Excerpts longer than this many characters are shortened to their head and tail.
const EXCERPT_CHARS: usize = 80;

/// Logged outputs, indexed for finding their passages in deliverables.
pub struct OutputIndex {
    params: ScanParams,
    request_ids: Vec<String>,
    /// Folded outputs, concatenated: output `i` is `text[starts[i]..starts[i + 1]]`.
    text: String,
    starts: Vec<usize>,
    /// Sorted `(kept shingle hash & !ID_MASK) | output` words.
    entries: Vec<u64>,
    /// Keys dropped as boilerplate.
    boilerplate: usize,
}

// Outputs are confidential: `Debug` shows sizes only.
impl std::fmt::Debug for OutputIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputIndex")
            .field("outputs", &self.request_ids.len())
            .field("fingerprints", &self.entries.len())
            .field("boilerplate", &self.boilerplate)
            .finish_non_exhaustive()
    }
}

/// What one worker made of a slice of a batch.
#[derive(Default)]
struct Part {
    request_ids: Vec<String>,
    text: String,
    /// Byte end of each output in `text`.
    ends: Vec<usize>,
    /// Index words with the output's number within this part.
    entries: Vec<u64>,
}

/// A stretch of the deliverable (in folded characters) that one output covers.
#[derive(Clone, Copy, Debug)]
struct Segment {
    start: usize,
    end: usize,
    matched: usize,
    output: u32,
}

/// A passage being assembled: its sources, best first, with the characters each covers.
struct Draft {
    start: usize,
    end: usize,
    similarity: f64,
    sources: Vec<u32>,
}

impl OutputIndex {
    /// Indexes `(request_id, output text)` pairs with the default parameters. Outputs too
    /// short to hold one shingle are left out.
    pub fn build<I>(outputs: I) -> anyhow::Result<Self>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        Self::build_with(ScanParams::default(), outputs)
    }

    /// Like [`OutputIndex::build`], with chosen parameters.
    pub fn build_with<I>(params: ScanParams, outputs: I) -> anyhow::Result<Self>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        params.validate()?;
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8);
        let mut index = Self {
            params,
            request_ids: Vec::new(),
            text: String::new(),
            starts: vec![0],
            entries: Vec::new(),
            boilerplate: 0,
        };
        let mut outputs = outputs.into_iter();
        let mut first_batch = true;
        loop {
            let batch: Vec<(String, String)> = outputs.by_ref().take(BATCH).collect();
            if batch.is_empty() {
                break;
            }
            let parts = if threads == 1 || batch.len() < 64 {
                vec![fold_outputs(&batch, &params)]
            } else {
                let chunk = batch.len().div_ceil(threads);
                std::thread::scope(|s| {
                    let workers: Vec<_> = batch
                        .chunks(chunk)
                        .map(|c| s.spawn(move || fold_outputs(c, &params)))
                        .collect();
                    workers
                        .into_iter()
                        .map(|w| w.join())
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(|_| anyhow!("an indexing thread failed"))?
            };
            for part in parts {
                index.append(part)?;
            }
            if std::mem::take(&mut first_batch) {
                // Reserve for the rest at the first batch's average size, so the text is not
                // copied as it grows.
                let per = index.text.len() / index.request_ids.len().max(1) + 1;
                let rest = outputs.size_hint().0;
                index.text.reserve(rest.saturating_mul(per) / 10 * 11);
            }
        }
        index.entries = sort_words(std::mem::take(&mut index.entries), threads);
        index.drop_boilerplate();
        index.text.shrink_to_fit();
        Ok(index)
    }

    /// How many outputs are indexed.
    pub fn len(&self) -> usize {
        self.request_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.request_ids.is_empty()
    }

    /// The parameters the index was built with.
    pub fn params(&self) -> &ScanParams {
        &self.params
    }

    /// Shingles dropped because too many outputs share them.
    pub fn boilerplate_shingles(&self) -> usize {
        self.boilerplate
    }

    fn append(&mut self, part: Part) -> anyhow::Result<()> {
        let base = self.request_ids.len();
        if base + part.request_ids.len() > (ID_MASK as usize) + 1 {
            bail!(
                "too many outputs to scan against at once (more than {})",
                ID_MASK + 1
            );
        }
        let offset = self.text.len();
        self.text.push_str(&part.text);
        self.starts.extend(part.ends.iter().map(|e| e + offset));
        self.entries
            .extend(part.entries.iter().map(|w| w + base as u64));
        self.request_ids.extend(part.request_ids);
        Ok(())
    }

    /// Removes duplicate words and the keys of boilerplate shingles, in place.
    fn drop_boilerplate(&mut self) {
        let max = self.params.max_outputs_per_shingle;
        let e = &mut self.entries;
        let n = e.len();
        let (mut w, mut i) = (0, 0);
        while i < n {
            let key = e[i] >> ID_BITS;
            let run = w;
            let mut j = i;
            while j < n && e[j] >> ID_BITS == key {
                if j == i || e[j] != e[j - 1] {
                    e[w] = e[j];
                    w += 1;
                }
                j += 1;
            }
            if w - run > max {
                w = run;
                self.boilerplate += 1;
            }
            i = j;
        }
        e.truncate(w);
        e.shrink_to_fit();
    }

    /// Finds the passages of `document` (the text of one deliverable) that came from the
    /// indexed outputs.
    pub fn scan(&self, document: &str) -> FileReport {
        let view = View::of(document);
        let mut doc_hashes = Vec::new();
        hashes(&view.chars, self.params.shingle, &mut doc_hashes);
        let hits = self.hits(&doc_hashes);
        let mut segments = Vec::new();
        let (mut chars, mut set) = (Vec::new(), Vec::new());
        for group in hits.chunk_by(|a, b| a.0 == b.0) {
            let output = group.first().map_or(0, |h| h.0);
            let positions: Vec<usize> = group.iter().map(|h| h.1).collect();
            self.verify(
                output,
                &positions,
                &doc_hashes,
                &mut chars,
                &mut set,
                &mut segments,
            );
        }
        let drafts = assemble(segments, self.params.min_passage);
        self.report(document, &view, drafts)
    }

    /// `(output, position)` for every deliverable shingle whose key is an output's
    /// fingerprint, sorted.
    fn hits(&self, doc_hashes: &[u64]) -> Vec<(u32, usize)> {
        let mut probes: Vec<(u64, usize)> = doc_hashes
            .iter()
            .enumerate()
            .map(|(p, h)| (h >> ID_BITS, p))
            .collect();
        probes.sort_unstable();
        let mut hits = Vec::new();
        let mut at = 0;
        for (key, pos) in probes {
            at += self.entries[at..].partition_point(|w| w >> ID_BITS < key);
            for w in self.entries[at..]
                .iter()
                .take_while(|w| *w >> ID_BITS == key)
            {
                hits.push(((w & ID_MASK) as u32, pos));
            }
        }
        hits.sort_unstable();
        hits.dedup();
        hits
    }

    /// Verifies one candidate output around its hits and adds its segments.
    fn verify(
        &self,
        output: u32,
        positions: &[usize],
        doc_hashes: &[u64],
        chars: &mut Vec<char>,
        set: &mut Vec<u64>,
        segments: &mut Vec<Segment>,
    ) {
        let o = output as usize;
        let (Some(&a), Some(&b)) = (self.starts.get(o), self.starts.get(o + 1)) else {
            return;
        };
        let Some(text) = self.text.get(a..b) else {
            return;
        };
        let ScanParams {
            shingle: k,
            max_gap,
            min_passage,
            ..
        } = self.params;
        chars.clear();
        chars.extend(text.chars());
        hashes(chars, k, set);
        set.sort_unstable();
        set.dedup();
        // Text from this output lies within its length (plus edits) of a hit; hits further
        // apart than twice that are separate copies.
        let reach = chars.len() + max_gap;
        let last = doc_hashes.len().saturating_sub(1);
        let mut from = 0;
        for i in 1..=positions.len() {
            let split = match (positions.get(i), positions.get(i - 1)) {
                (Some(&p), Some(&q)) => p - q > 2 * reach,
                _ => true,
            };
            if !split {
                continue;
            }
            let lo = positions.get(from).map_or(0, |p| p.saturating_sub(reach));
            let hi = positions.get(i - 1).map_or(0, |p| (p + reach).min(last));
            from = i;
            let mut current: Option<Segment> = None;
            for (p, h) in doc_hashes.iter().enumerate().take(hi + 1).skip(lo) {
                if set.binary_search(h).is_err() {
                    continue;
                }
                let end = p + k;
                match current.as_mut() {
                    Some(s) if p <= s.end + max_gap => {
                        if end > s.end {
                            s.matched += end - p.max(s.end);
                            s.end = end;
                        }
                    }
                    _ => {
                        if let Some(s) = current.take().filter(|s| s.matched >= min_passage) {
                            segments.push(s);
                        }
                        current = Some(Segment {
                            start: p,
                            end,
                            matched: k,
                            output,
                        });
                    }
                }
            }
            if let Some(s) = current.filter(|s| s.matched >= min_passage) {
                segments.push(s);
            }
        }
    }

    fn report(&self, document: &str, view: &View, drafts: Vec<Draft>) -> FileReport {
        let line_starts: Vec<usize> = std::iter::once(0)
            .chain(document.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let line_of = |byte: usize| line_starts.partition_point(|&s| s <= byte);
        let chars = view.chars.len();
        let mut covered = 0;
        let passages = drafts
            .into_iter()
            .filter_map(|d| {
                let &(from, _) = view.spans.get(d.start)?;
                let &(_, to) = view.spans.get(d.end.checked_sub(1)?)?;
                covered += d.end - d.start;
                Some(Passage {
                    start_line: line_of(from),
                    end_line: line_of(to.saturating_sub(1)),
                    chars: d.end - d.start,
                    excerpt: excerpt(document.get(from..to).unwrap_or_default()),
                    request_ids: d
                        .sources
                        .iter()
                        .filter_map(|&o| self.request_ids.get(o as usize).cloned())
                        .collect(),
                    similarity: round(d.similarity, 3),
                })
            })
            .collect();
        FileReport {
            chars,
            covered_chars: covered,
            coverage: if chars == 0 {
                0.0
            } else {
                round(covered as f64 / chars as f64, 4)
            },
            passages,
        }
    }
}

/// Folds, hashes and winnows a slice of a batch.
fn fold_outputs(batch: &[(String, String)], params: &ScanParams) -> Part {
    let mut part = Part::default();
    let (mut chars, mut hs, mut kept) = (Vec::new(), Vec::new(), Vec::new());
    for (request_id, text) in batch {
        chars.clear();
        fold(text, |c, _, _| chars.push(c));
        if chars.len() < params.shingle {
            continue;
        }
        hashes(&chars, params.shingle, &mut hs);
        kept.clear();
        winnow(&hs, params.window, &mut kept);
        kept.sort_unstable();
        kept.dedup();
        let local = part.request_ids.len() as u64;
        part.entries
            .extend(kept.iter().map(|h| (h & !ID_MASK) | local));
        part.text.extend(chars.iter());
        part.ends.push(part.text.len());
        part.request_ids.push(request_id.clone());
    }
    part
}

/// Sorts the index words, two halves on two threads when it is worth it.
fn sort_words(mut words: Vec<u64>, threads: usize) -> Vec<u64> {
    if threads < 2 || words.len() < 1 << 20 {
        words.sort_unstable();
        return words;
    }
    let mid = words.len() / 2;
    let (a, b) = words.split_at_mut(mid);
    std::thread::scope(|s| {
        s.spawn(|| a.sort_unstable());
        b.sort_unstable();
    });
    let (a, b) = words.split_at(mid);
    let mut out = Vec::with_capacity(words.len());
    let (mut i, mut j) = (0, 0);
    while let (Some(&x), Some(&y)) = (a.get(i), b.get(j)) {
        if x <= y {
            out.push(x);
            i += 1;
        } else {
            out.push(y);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Makes non-overlapping passages from the segments, best-covered first (see the module doc).
fn assemble(mut segments: Vec<Segment>, min_passage: usize) -> Vec<Draft> {
    segments.sort_by(|a, b| {
        b.matched
            .cmp(&a.matched)
            .then(a.start.cmp(&b.start))
            .then(a.output.cmp(&b.output))
    });
    // Sorted by start, never overlapping.
    let mut drafts: Vec<Draft> = Vec::new();
    for s in segments {
        let len = s.end - s.start;
        let first = drafts.partition_point(|d| d.end <= s.start);
        let overlapping = drafts[first..].iter_mut().take_while(|d| d.start < s.end);
        let mut gaps = Vec::new();
        let mut cursor = s.start;
        let mut joined = false;
        for d in overlapping {
            let shared = d.end.min(s.end) - d.start.max(s.start);
            if shared * 2 >= len.min(d.end - d.start) {
                if !d.sources.contains(&s.output) {
                    d.sources.push(s.output);
                }
                joined = true;
                break;
            }
            if d.start > cursor {
                gaps.push((cursor, d.start));
            }
            cursor = cursor.max(d.end);
        }
        if joined {
            continue;
        }
        if cursor < s.end {
            gaps.push((cursor, s.end));
        }
        for (start, end) in gaps {
            if end - start < min_passage {
                continue;
            }
            let at = drafts.partition_point(|d| d.start < start);
            drafts.insert(
                at,
                Draft {
                    start,
                    end,
                    similarity: s.matched as f64 / len as f64,
                    sources: vec![s.output],
                },
            );
        }
    }
    drafts
}

/// A short quote of a passage: whitespace collapsed, long ones cut to head … tail.
fn excerpt(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let flat = words.join(" ");
    let n = flat.chars().count();
    if n <= EXCERPT_CHARS {
        return flat;
    }
    let head: String = flat.chars().take(EXCERPT_CHARS * 3 / 4).collect();
    let tail: String = flat.chars().skip(n - EXCERPT_CHARS / 4).collect();
    format!("{head}…{tail}")
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(texts: &[&str]) -> Vec<(String, String)> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("req_{i}"), t.to_string()))
            .collect()
    }

    const A: &str = "本プロジェクトでは、既存の受発注システムをクラウド環境へ段階的に移行し、\
        運用コストを三年間で二割削減することを目標とします。";
    const B: &str = "移行の第一段階として、在庫管理機能を切り出し、夜間バッチ処理を\
        イベント駆動型の仕組みに置き換えることを提案いたします。";

    #[test]
    fn finds_reflowed_widened_and_edited_passages() {
        let index = OutputIndex::build(outputs(&[A, B, "無関係な短い出力です。"]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(index.len(), 2, "the short output holds no full shingle");
        let doc = "はじめに\n\
            本プロジェクトでは、既存の受発注システムを\nクラウド環境へ段階的に移行し、\
            運用コストを３年間で二割削減することを目標とする。\n\
            ここは人が書いた段落で、どの出力とも関係のない内容を述べている。\n\
            移行の第一段階として、在庫管理機能を 切り出し、夜間バッチ処理を\
            イベント駆動型の仕組みに置き換えることを提案いたします。\n";
        let r = index.scan(doc);
        assert_eq!(r.passages.len(), 2, "{:?}", r.passages);
        assert_eq!(r.passages[0].request_ids, vec!["req_0"]);
        assert_eq!((r.passages[0].start_line, r.passages[0].end_line), (2, 3));
        assert!(r.passages[0].similarity < 1.0 && r.passages[0].similarity > 0.7);
        assert_eq!(r.passages[1].request_ids, vec!["req_1"]);
        assert_eq!((r.passages[1].start_line, r.passages[1].end_line), (5, 5));
        assert_eq!(r.passages[1].similarity, 1.0);
        assert!(r.coverage > 0.6 && r.coverage < 0.9, "{}", r.coverage);
    }

    #[test]
    fn identical_outputs_are_all_sources_and_boilerplate_is_ignored() {
        let mut texts = vec![A, A];
        let common = "以上の内容について、ご不明な点がございましたらお気軽にお問い合わせください。";
        texts.extend(std::iter::repeat_n(common, 5));
        let params = ScanParams {
            max_outputs_per_shingle: 4,
            ..ScanParams::default()
        };
        let index =
            OutputIndex::build_with(params, outputs(&texts)).unwrap_or_else(|e| panic!("{e}"));
        assert!(index.boilerplate_shingles() > 0);
        let r = index.scan(&format!("{A}\n{common}\n"));
        assert_eq!(r.passages.len(), 1, "{:?}", r.passages);
        assert_eq!(r.passages[0].request_ids, vec!["req_0", "req_1"]);
    }

    #[test]
    fn tiny_matches_are_ignored() {
        let index = OutputIndex::build(outputs(&[A])).unwrap_or_else(|e| panic!("{e}"));
        // 20 folded characters of A, inside unrelated text.
        let r = index.scan("今日は既存の受発注システムをクラウド環境へ出かけた。");
        assert!(r.passages.is_empty(), "{:?}", r.passages);
        assert_eq!(r.covered_chars, 0);
    }

    #[test]
    fn excerpt_is_short_and_flat() {
        assert_eq!(excerpt("  a\n b  "), "a b");
        let long = "あ".repeat(200);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 1);
        assert!(e.contains('…'));
    }
}
