//! Fuzzes the redaction entry point (`Session::redact_text`) and restoration with arbitrary text.
//!
//! Run (nightly toolchain and cargo-fuzz: `cargo install cargo-fuzz`), from the repository root:
//!
//!     cargo +nightly fuzz run redact -- -max_total_time=60
//!
//! Stable fallback (no nightly): the same properties as a proptest with as many cases as wanted:
//!
//!     PROPTEST_CASES=200000 cargo test --release --lib redact::tests::arbitrary_text
//!
//! Checked for every input: redaction never panics (shipped rules); with every action set to
//! pseudonymize, restoring the redacted text — whole, or streamed in two chunks cut anywhere —
//! gives back exactly the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mamori::redact::{ContractMatcher, ContractRedaction, Rules};
use std::sync::OnceLock;

struct Setup {
    shipped: Rules,
    pseudonymizing: Rules,
    contract: ContractMatcher,
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../redaction");
        let shipped = Rules::load(&dir).unwrap();
        let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .map(|p| {
                let t = std::fs::read_to_string(&p)
                    .unwrap()
                    .replace("action = \"mask\"", "action = \"pseudonymize\"")
                    .replace("action = \"block\"", "action = \"pseudonymize\"");
                (p.display().to_string(), t)
            })
            .collect();
        files.sort();
        let pseudonymizing =
            Rules::from_sources(files.iter().map(|(n, t)| (n.as_str(), t.as_str()))).unwrap();
        let contract = ContractMatcher::new(&ContractRedaction {
            terms: vec![
                "東雲物産".into(),
                "ORCA-7".into(),
                "Project BLUEJAY".into(),
                "ひばり計画".into(),
            ],
            extra_fields: vec!["案件名".into()],
        })
        .unwrap();
        Setup {
            shipped,
            pseudonymizing,
            contract,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let s = setup();

    let mut session = s.shipped.session(&s.contract);
    if let Ok(out) = session.redact_text(text) {
        let _ = session.pseudonyms().restore(&out);
    }

    let mut session = s.pseudonymizing.session(&s.contract);
    let Ok(out) = session.redact_text(text) else {
        return;
    };
    let map = session.pseudonyms();
    assert_eq!(map.restore(&out), text);
    let mut at = (usize::from(cut) * out.len()) / 255;
    while !out.is_char_boundary(at) {
        at -= 1;
    }
    let mut r = map.stream();
    let mut streamed = r.push(&out[..at]);
    streamed += &r.push(&out[at..]);
    streamed += &r.finish();
    assert_eq!(streamed, text);
});
