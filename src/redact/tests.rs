//! Session-level tests over the shipped rules.
use super::*;
use proptest::prelude::*;
use std::borrow::Cow;
use std::path::Path;
use std::sync::OnceLock;

fn shipped() -> &'static Rules {
    static R: OnceLock<Rules> = OnceLock::new();
    R.get_or_init(fresh_rules)
}

/// The shipped rules with every action set to pseudonymize, so restoring gives the original.
fn all_pseudonymized() -> &'static Rules {
    static R: OnceLock<Rules> = OnceLock::new();
    R.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("redaction");
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
        Rules::from_sources(files.iter().map(|(n, t)| (n.as_str(), t.as_str()))).unwrap()
    })
}

fn terms() -> &'static ContractMatcher {
    static C: OnceLock<ContractMatcher> = OnceLock::new();
    C.get_or_init(|| {
        ContractMatcher::new(&ContractRedaction {
            terms: vec!["東雲物産".into(), "ORCA-7".into(), "Project BLUEJAY".into()],
            extra_fields: vec!["案件名".into()],
        })
        .unwrap()
    })
}

#[test]
fn same_value_same_placeholder_and_numbers_per_word() {
    let mut s = Session::with_tag(shipped(), terms(), "TEST".into());
    let out = s
        .redact_text("03-1111-2222と090-3333-4444、再度03-1111-2222。東雲物産")
        .unwrap();
    assert_eq!(
        out,
        "[PHONE_1_TEST]と[PHONE_2_TEST]、再度[PHONE_1_TEST]。[TERM_1_TEST]"
    );
    assert_eq!(s.counts().get("phone"), Some(&3));
    assert_eq!(s.total(), 4);
    // Later texts of the session reuse the placeholders.
    assert_eq!(s.redact_text("090-3333-4444").unwrap(), "[PHONE_2_TEST]");
}

#[test]
fn a_mask_inside_a_pseudonym_stays_masked_when_restored() {
    let mut s = Session::with_tag(shipped(), terms(), "TEST".into());
    let out = s
        .redact_text("連絡先：090-1111-2222（token=Abcdef123456）")
        .unwrap();
    assert_eq!(out, "連絡先：[CONTACT_1_TEST]");
    assert_eq!(
        s.pseudonyms().restore(&out),
        "連絡先：090-1111-2222（token=[SECRET]）"
    );
    // A log's `key=value` after the number ends the contact's value: two spans side by side.
    let mut s = Session::with_tag(shipped(), terms(), "TEST".into());
    let out = s
        .redact_text("連絡先：090-1111-2222 token=Abcdef123456")
        .unwrap();
    assert_eq!(out, "連絡先：[CONTACT_1_TEST] token=[SECRET]");
    assert_eq!(s.counts().get("secret"), Some(&1));
}

/// `user:password@host` in a URL is a login, a password and a host, not an e-mail address.
#[test]
fn a_url_login_is_not_an_email_address() {
    let mut s = Session::with_tag(shipped(), terms(), "TEST".into());
    for (text, want) in [
        (
            "DATABASE_URL=postgres://app:S3cretPw@db.internal:5432/app",
            "DATABASE_URL=postgres://app:[SECRET]@db.internal:5432/app",
        ),
        (
            "REDIS_URL=redis://:R3disS3cret@cache.internal:6379/0",
            "REDIS_URL=redis://:[SECRET]@cache.internal:6379/0",
        ),
        (
            "git clone ssh://git@git.example.jp/team/app.git",
            "git clone ssh://git@git.example.jp/team/app.git",
        ),
        (
            "https://example.jp/contact?to=h-sato@example.jp",
            "https://example.jp/contact?to=[EMAIL_1_TEST]",
        ),
        ("mailto:h-sato@example.jp", "mailto:[EMAIL_1_TEST]"),
    ] {
        assert_eq!(s.redact_text(text).unwrap(), want);
    }
}

#[test]
fn the_whole_original_span_is_replaced_invisible_characters_included() {
    let mut s = Session::with_tag(shipped(), terms(), "TEST".into());
    let text = "電話は０９０ー\u{200B}１２３４ー５６７８\u{FEFF}です";
    let out = s.redact_text(text).unwrap();
    assert_eq!(out, "電話は[PHONE_1_TEST]\u{FEFF}です");
    assert_eq!(s.pseudonyms().restore(&out), text);
}

#[test]
fn refusals_carry_no_plaintext_and_change_nothing() {
    let mut s = shipped().session(terms());
    let mut texts = [
        "氏名：山田由美".to_string(),
        "<機密>予定価格は4億円".to_string(),
    ];
    let e = s.redact_strings(texts.iter_mut()).unwrap_err();
    assert_eq!(e.code(), crate::refusal::Code::ConfidentialTagUnclosed);
    assert_eq!(texts[0], "氏名：山田由美");
    let shown = format!("{e} {e:?}");
    assert!(
        !shown.contains("予定価格") && shown.contains("<機密>"),
        "{shown}"
    );

    let key = "-----BEGIN PRIVATE KEY-----\nMIIBVgIBADANBgkqhkiG9w0BAQEFAASCAUAwggE8AgEAAkEA\n-----END PRIVATE KEY-----";
    let e = s.redact_text(key).unwrap_err();
    assert_eq!(
        e,
        Refused::Blocked {
            label: "private_key".into()
        }
    );
    assert!(!format!("{e} {e:?}").contains("MIIB"));
}

#[test]
fn typed_placeholders_are_never_restored() {
    let mut s = Session::with_tag(shipped(), terms(), "TEST".into());
    let out = s.redact_text("[TERM_1]と[TERM_1_ABCD]と東雲物産").unwrap();
    assert_eq!(out, "[TERM_1]と[TERM_1_ABCD]と[TERM_1_TEST]");
    let back = s
        .pseudonyms()
        .restore("[TERM_1]と[TERM_1_ABCD]と[TERM_1_TEST]");
    assert_eq!(back, "[TERM_1]と[TERM_1_ABCD]と東雲物産");
}

#[test]
fn contract_extra_fields_work_like_shipped_ones() {
    let mut s = Session::with_tag(shipped(), terms(), "TEST".into());
    assert_eq!(
        s.redact_text("案件名：次期基幹システム刷新").unwrap(),
        "案件名：[FIELD_1_TEST]"
    );
}

#[test]
fn debug_output_holds_no_values() {
    let mut s = shipped().session(terms());
    s.redact_text("氏名：山田由美\n東雲物産").unwrap();
    let map = s.pseudonyms();
    let mut r = map.stream();
    r.push("[PERSON");
    let shown = format!("{s:?} {map:?} {r:?} {:?}", shipped());
    assert!(
        !shown.contains("山田") && !shown.contains("東雲"),
        "{shown}"
    );
}

#[test]
fn a_json_body_keeps_its_keys_and_shape() {
    let mut s = Session::with_tag(shipped(), terms(), "TEST".into());
    let mut v =
        serde_json::json!({"messages": [{"role": "user", "content": "東雲物産"}], "model": "m"});
    s.redact_json(&mut v["messages"]).unwrap();
    assert_eq!(v["messages"][0]["content"], "[TERM_1_TEST]");
    assert_eq!(v["messages"][0]["role"], "user");
}

/// A JSON key that qualifies a field name or begins with words of its own is that field; one with
/// more after the name, or ASCII before it, is not.
#[test]
fn json_keys_with_a_qualifier_or_leading_words_are_fields() {
    let mut s = Session::with_tag(shipped(), terms(), "TEST".into());
    let text = r#"{"氏名（漢字）": "山田太郎", "契約者住所": "港区芝公園4-2-8", "住所変更日": "2026年4月1日", "mac_address": "00:1a:2b:3c:4d:5e"}"#;
    let out = s.redact_text(text).unwrap().into_owned();
    assert!(
        !out.contains("山田太郎") && !out.contains("芝公園"),
        "{out}"
    );
    assert!(out.contains("\"住所変更日\": \"2026年4月1日\""), "{out}");
    assert!(out.contains("00:1a:2b:3c:4d:5e"), "{out}");
}

/// The shipped patterns are searched a character at a time (the byte search is several times
/// slower); past 255 characters the rarest share codes, which costs a check per candidate.
#[test]
fn the_shipped_keywords_are_searched_a_character_at_a_time() {
    let n = shipped().keyword_chars;
    assert!(
        matches!(
            shipped().matcher,
            Some(super::keywords::Keywords::PerChar(_))
        ),
        "the shipped rules' tags, field names, triggers and keywords ({n} distinct characters) are searched byte by byte"
    );
    eprintln!("keyword characters: {n}");
}

/// Ways people write the same characters.
fn spell(s: &str, how: &[u8]) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        let h = how.get(i).copied().unwrap_or(0);
        let wide = |c: char| char::from_u32(c as u32 + 0xFEE0).unwrap_or(c);
        match (c, h % 5) {
            ('-', 1) => out.push('ー'),
            ('-', 2) => out.push('－'),
            ('-', 3) => out.push('\u{2010}'),
            (c, 1 | 2) if c.is_ascii_alphanumeric() => out.push(wide(c)),
            (c, _) => out.push(c),
        }
        match h / 5 % 4 {
            1 => out.push('\u{200B}'),
            2 => out.push('\u{2060}'),
            3 => out.push('\u{FE0F}'),
            _ => {}
        }
    }
    out
}

const SOUP: &[&str] = &[
    "<table>",
    "<tr>",
    "</tr>",
    "<TR>",
    "<th>",
    "</th>",
    "<td>",
    "</td>",
    "<dt>",
    "</dt>",
    "<dd>",
    "<b>",
    "</b>",
    "<span>",
    "<input name=\"",
    "\" value=\"",
    "\">",
    "<氏名",
    " lang=\"ja\">",
    "</氏名>",
    "<confidential",
    " level=\"1\">",
    "</confidential>",
    "<機密>",
    "</機密>",
    "氏名",
    "お名前",
    "住所",
    "電話番号",
    "：",
    ":",
    "&amp;",
    "&#",
    "&#x",
    "6c0f;",
    "&lt;",
    "\\n",
    "\\u6c0f",
    "\\",
    "\r",
    "\n",
    " ",
    "　",
    "山田太郎",
    "090-1234-5678",
    "[at]",
    "(at)",
    "%40",
    "example.co.jp",
    "k.mori",
    "〒",
    "105",
    " - ",
    "0011",
    "個人番号",
    "3 1 4 1 5 9 2 6 5 3 5 2",
    "保険証",
    "記号",
    "番号",
    "5102",
    "カード番号",
    "4532",
    "基礎年金番号",
    "1234-567890",
    "T1-1803-0101-8771",
    "パスワードは",
    "SHA-256",
    "全角20文字以内",
    "(漢字)",
    "プロジェクト・カワセミ",
    "ぷろじぇくと",
    "カワセミ",
    "ミナト",
    "商事",
    "{\"csv\": \"",
    "氏名,電話番号\\n",
    "é",
    "\u{200B}",
    // Terms through markup, readings and a joining `+` (contract.rs's compaction).
    "東雲",
    "物産",
    "(しののめ)",
    "（シノノメ）",
    "<b>",
    "</span>",
    "<span class=\"x\">",
    "ORCA",
    "+",
    "7",
];

fn prose() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("本日の会議では".to_string()),
        Just("データの移行について".to_string()),
        Just("、".to_string()),
        Just("。\n".to_string()),
        Just(" 2026年10月21日 ".to_string()),
        "[ぁ-ん]{0,6}",
        "[ァ-ヺー]{0,6}",
    ]
}

proptest! {
    /// Redaction never panics, whatever the text; and with every action pseudonymizing, the
    /// client gets back exactly what it sent. The stable stand-in for the fuzz target: raise
    /// `PROPTEST_CASES` to run it longer.
    #[test]
    fn arbitrary_text_never_panics_and_restores(s in "\\PC{0,80}|[0-9０-９ー－\\-@<>機密【】/\u{200B}\u{2060}a-zA-Z:：\"{} \n|,\t\r\\\\（）氏名]{0,80}") {
        let mut session = shipped().session(terms());
        let _ = session.redact_text(&s);
        let mut session = all_pseudonymized().session(terms());
        if let Ok(out) = session.redact_text(&s) {
            prop_assert_eq!(session.pseudonyms().restore(&out), s.as_str());
        }
    }

    /// The same for a soup of the markup, escapes and labels the scanner reads specially, in any
    /// order, cut anywhere (a tag left open, a reference left unfinished).
    #[test]
    fn markup_and_escapes_never_panic_and_restore(parts in prop::collection::vec(prop::sample::select(SOUP), 0..40)) {
        let s: String = parts.concat();
        let mut session = shipped().session(terms());
        let _ = session.redact_text(&s);
        let mut session = all_pseudonymized().session(terms());
        if let Ok(out) = session.redact_text(&s) {
            prop_assert_eq!(session.pseudonyms().restore(&out), s.as_str());
        }
    }

    /// Identifiers are found however they are spelled: width, dash variants, invisible characters.
    #[test]
    fn decorated_identifiers_are_still_found(
        which in 0usize..5,
        how in proptest::collection::vec(any::<u8>(), 20),
        before in prose(),
        after in prose(),
    ) {
        let plain = ["090-1234-5678", "482137590268", "東雲物産", "ORCA-7", "taro@example.com"][which];
        let spelled = spell(plain, &how);
        let text = format!("{before}{spelled}{after}");
        let mut session = shipped().session(terms());
        let out = session.redact_text(&text).unwrap();
        prop_assert!(!out.contains(&spelled), "{} -> {}", text, out);
        prop_assert!(out.contains(&before) && out.contains(&after), "{} -> {}", text, out);
        prop_assert_eq!(session.total(), 1);
    }
}

/// Adversarial shapes that would make a careless scanner quadratic: each must stay linear. The
/// bound is loose (debug build, shared CI machine); quadratic behaviour on 200 KB takes minutes.
#[test]
fn pathological_inputs_stay_linear() {
    let n = 200_000;
    let inputs = [
        "氏名".repeat(n / 6),
        "氏名:".repeat(n / 7),
        "\"氏名\": \"".repeat(n / 12),
        "<氏名>".repeat(n / 8),
        "| 氏名 ".repeat(n / 9),
        "@".repeat(n),
        "a@".repeat(n / 2),
        "1".repeat(n),
        "1-".repeat(n / 2),
        "個人番号1234 ".repeat(n / 16),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n".repeat(n / 32),
        "sk-".repeat(n / 3),
        "TOKEN=".repeat(n / 6),
        "<機密>".repeat(n / 8) + &"</機密>".repeat(n / 8),
        "東雲物産".repeat(n / 12),
        "東京都港区芝公園".repeat(n / 24),
        "東京都港区1-".repeat(n / 18),
        "105-0011 東京都".repeat(n / 18),
        "ー\u{200B}".repeat(n / 6),
        "ｶﾞ".repeat(n / 6),
        "e\u{301}\u{302}".repeat(n / 5),
        "氏名,部署\n".repeat(n / 14),
        "氏名,".repeat(n / 7),
        "| 氏名 | 部署 |\n|---|---|\n".repeat(n / 30),
        "\\".repeat(n),
        "\\u6c0f".repeat(n / 6),
        "\\n".repeat(n / 2),
        "\r".repeat(n),
        "&#1234;".repeat(n / 7),
        "&amp".repeat(n / 4),
        "{\"csv\": \"氏名,".repeat(n / 14),
        "<th>氏名</th>".repeat(n / 15),
        "<td>氏名</td>".repeat(n / 15),
        "<tr><th>氏名</th><th>x</th></tr>".to_string() + &"<tr><td>a</td></tr>".repeat(n / 20),
        "<TR><TH>氏名</TH></TR><TR><TD>x".repeat(n / 30),
        "<tr><th>氏名</th></tr><tr><th>1</th><td>x</td></tr>".repeat(n / 45),
        "<table><thead><tr><th>氏名</th></tr></thead><tbody><tr><td>x<br>".repeat(n / 60),
        "<input name=\"氏名\" ".repeat(n / 20),
        "<氏名 ".repeat(n / 9),
        "<confidential level=\"1\"".repeat(n / 24),
        "(".repeat(n),
        "小川(おがわ ".repeat(n / 16),
        "from: a <b".repeat(n / 10),
        "a[at]".repeat(n / 5),
        "%40".repeat(n / 3),
        "保険証 記号 1 番号 ".repeat(n / 30),
        "4532\n".repeat(n / 5),
        "ORCA 7 ".repeat(n / 7),
        "apw=".repeat(n / 4),
        ("pw=abcdef".to_string() + &"あ".repeat(100)).repeat(n / 309),
        "\"password\": x ".repeat(n / 15),
        "\"氏名\": 〇〇".repeat(n / 14),
        "{\"氏名\":\"A\"},".repeat(n / 14),
        "form-data; name=\"氏名\"".repeat(n / 28),
        "a@b.jp:/".repeat(n / 8),
        ("z".repeat(300) + "123456789018 ").repeat(n / 313),
        "\"住所\": \"東京\n".repeat(n / 16),
        "{\"label\": \"氏名\", \"value\": ".repeat(n / 32),
        "〔氏名〕{{".repeat(n / 14) + "}}",
        "【氏名】".repeat(n / 24) + &" ".repeat(n / 2),
        "x://a@b.jp".repeat(n / 10),
        "redis://:".repeat(n / 9),
        "pw は ".repeat(n / 8),
        "sqlplus a/".repeat(n / 10),
        "auth=(\"a\", ".repeat(n / 11),
        "password: |\n".repeat(n / 13),
        (0..n / 400)
            .map(|i| " ".repeat(i % 300) + "pw: |\n")
            .collect(),
        "{\"姓\": \"山田\", \"名\": \"由美\"}, ".repeat(n / 40),
        "氏名=山田;".repeat(n / 14),
        "&氏名=a".repeat(n / 10),
        "INSERT INTO c (customer_name, address) VALUES ('a', 'b'), ".repeat(n / 60),
        "INSERT INTO c (".to_string() + &"customer_name, ".repeat(n / 15),
        "Q. お名前\n".repeat(n / 14),
        "[氏名]".repeat(n / 8),
        "<label>氏名</label>".repeat(n / 21),
        "住所：a\n  1号室\n".repeat(n / 18),
        "氏名 → ".repeat(n / 10),
        "住所：a <機密>b</機密> ".repeat(n / 30),
        "JANコード ".to_string() + &"4901234567894、".repeat(n / 16),
        "受付: お名前 ".repeat(n / 20) + &" ".repeat(n / 2),
        "氏名「".repeat(n / 9),
        "| 氏名 | ".repeat(n / 12),
        "Name (氏名): ".repeat(n / 16),
        "4912345678901 ".repeat(n / 14),
        "[1778553902903] ".repeat(n / 16),
        "a123456789018".repeat(n / 13),
        "\\\\u77f3".repeat(n / 7),
        "氏名：a<b".repeat(n / 10),
        "?client_secret=Kx9mQ2pLr7&".repeat(n / 26),
    ];
    for text in &inputs {
        let t = std::time::Instant::now();
        let mut s = all_pseudonymized().session(terms());
        let out = s.redact_text(text);
        let took = t.elapsed();
        if std::env::var_os("REDACTION_SHOW").is_some() {
            eprintln!("{:?}: {took:?}", text.chars().take(8).collect::<String>());
        }
        assert!(
            took < std::time::Duration::from_secs(20),
            "{:?}… took {took:?}",
            text.chars().take(12).collect::<String>()
        );
        if let Ok(out) = out {
            assert_eq!(s.pseudonyms().restore(&out), text.as_str());
        }
    }
}

#[test]
fn tables_end_cleanly_wherever_the_text_ends() {
    for text in [
        "氏名,部署",
        "氏名,部署\r",
        "氏名,部署\n",
        "| 氏名 | 部署 |\n|---|---|",
        "| 氏名 | 部署 |\n|---|---|\r",
        "氏名\t部署\r\n山田\t営業\r",
    ] {
        let mut s = Session::with_tag(all_pseudonymized(), terms(), "TEST".into());
        let out = s.redact_text(text).unwrap();
        assert_eq!(s.pseudonyms().restore(&out), text);
    }
    let mut s = Session::with_tag(shipped(), terms(), "TEST".into());
    assert_eq!(
        s.redact_text("氏名,部署,内線\r\n山田,営業,123\r").unwrap(),
        "氏名,部署,内線\r\n[PERSON_NAME_1_TEST],営業,123\r"
    );
    // In two columns the first row may be a value (a name/value table): the cell after a name
    // is taken too, unless it is a field's name itself (`住所` below).
    let mut s = Session::with_tag(shipped(), terms(), "TEST".into());
    assert_eq!(
        s.redact_text("| 氏名 | 山田太郎 |\n|---|---|\n| 住所 | 東京都港区芝公園4-2-8 |")
            .unwrap(),
        "| 氏名 | [PERSON_NAME_1_TEST] |\n|---|---|\n| 住所 | [ADDRESS_1_TEST] |"
    );
}

#[test]
fn unicode_escapes_are_seen_through_and_replaced_whole() {
    let mut s = Session::with_tag(shipped(), terms(), "TEST".into());
    let text = r#"{"\u6c0f\u540d": "\u5c71\u7530", "x": "\\u6c0f\\u540d: \\u5c71"}"#;
    let out = s.redact_text(text).unwrap();
    assert_eq!(
        out,
        r#"{"\u6c0f\u540d": "[PERSON_NAME_1_TEST]", "x": "\\u6c0f\\u540d: \\u5c71"}"#
    );
    assert_eq!(s.pseudonyms().restore(&out), text);
}

/// A long text with nothing to redact on its own; `山田由美` is a name only once a field says so.
fn long_clean_text() -> String {
    "倉庫管理システムの移行作業は計画どおり進んでおり、山田由美が在庫データの移行検証を担当している。".repeat(4)
}

/// The shipped rules, loaded anew: what one test remembers (`clean.rs`) is not another's.
fn fresh_rules() -> Rules {
    Rules::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("redaction"))
        .unwrap_or_else(|e| panic!("{e:#}"))
}

#[test]
fn a_clean_text_is_remembered_only_as_a_keyed_hash_and_then_not_scanned() {
    let rules = fresh_rules();
    let contract = ContractMatcher::none();
    let text = long_clean_text();
    for _ in 0..2 {
        let mut s = rules.session(&contract);
        assert!(matches!(s.redact_text(&text), Ok(Cow::Borrowed(_))));
        assert_eq!(rules.clean.len(), 1);
    }
    // A text with something found in it is never remembered; found again every time.
    let secret = format!("{text}\n氏名：山田由美\n");
    for _ in 0..2 {
        let out = rules.session(&contract).redact_text(&secret).unwrap();
        assert!(!out.contains("氏名：山田由美"), "{out}");
        assert_eq!(rules.clean.len(), 1);
    }
    // What is remembered is trusted: a text whose key is known is not scanned at all.
    let key = rules.clean.key(&contract.salt.0, "", &secret).unwrap();
    rules.clean.insert(key);
    let mut s = rules.session(&contract);
    assert!(matches!(s.redact_text(&secret), Ok(Cow::Borrowed(_))));
    // Short texts cost less to scan than to remember.
    rules
        .session(&contract)
        .redact_text("短い文です。")
        .unwrap();
    assert_eq!(rules.clean.len(), 2);
}

#[test]
fn a_refused_text_is_never_remembered() {
    let rules = fresh_rules();
    let contract = ContractMatcher::none();
    let text = format!("<機密>{}", long_clean_text());
    for _ in 0..2 {
        assert!(rules.session(&contract).redact_text(&text).is_err());
    }
    assert_eq!(rules.clean.len(), 0);
}

#[test]
fn a_remembered_clean_text_still_gets_the_values_its_request_found_elsewhere() {
    let rules = fresh_rules();
    let contract = ContractMatcher::none();
    let clean = long_clean_text();
    rules.session(&contract).redact_text(&clean).unwrap();
    assert_eq!(rules.clean.len(), 1);
    let mut texts = ["氏名：山田由美".to_string(), clean.clone()];
    let mut s = rules.session(&contract);
    s.redact_strings(texts.iter_mut()).unwrap();
    assert!(!texts[1].contains("山田由美"), "{}", texts[1]);
    assert_eq!(
        texts[1].matches("[PERSON_NAME_1_").count(),
        4,
        "{}",
        texts[1]
    );
}

#[test]
fn clean_texts_are_per_list_and_scope_bounded_and_can_be_turned_off() {
    let rules = fresh_rules();
    let text = long_clean_text();
    // Another compiled list (new terms, a new policy generation) starts afresh.
    let (a, b) = (ContractMatcher::none(), ContractMatcher::none());
    rules.session(&a).redact_text(&text).unwrap();
    rules.session(&b).redact_text(&text).unwrap();
    assert_eq!(rules.clean.len(), 2);
    // One caller's texts are not another's: a text remembered for `k1` is scanned for `k2`.
    let secret = format!("{text}\n氏名：山田由美\n");
    rules
        .clean
        .insert(rules.clean.key(&a.salt.0, "k1", &secret).unwrap());
    let redact_as = |scope: &str| {
        let mut s = rules.session(&a);
        s.scope_clean_texts(scope);
        s.redact_text(&secret).unwrap().into_owned()
    };
    assert_eq!(redact_as("k1"), secret);
    assert!(!redact_as("k2").contains("山田由美"));
    // Bounded: the oldest goes first.
    let bounded = super::clean::CleanTexts::new(8);
    for i in 0..10u8 {
        bounded.insert([i; 32]);
    }
    assert_eq!(bounded.len(), 8);
    assert!(!bounded.contains(&[0; 32]) && !bounded.contains(&[1; 32]));
    assert!(bounded.contains(&[9; 32]));
    // Off.
    let off = fresh_rules().with_clean_texts(0);
    off.session(&a).redact_text(&text).unwrap();
    assert_eq!(off.clean.len(), 0);
}

#[test]
fn a_number_field_ends_with_its_number() {
    let mut s = Session::with_tag(shipped(), terms(), "TEST".into());
    let out = s
        .redact_text("カード番号：4532015112830366、有効期限 12/29\nマイナンバー：7291  5926  5352（本人）\n口座番号：別紙参照")
        .unwrap();
    // A number field's value with no number in it (`別紙参照`, "see the annex") is left as written.
    assert_eq!(
        out,
        "カード番号：[番号]、有効期限 12/29\nマイナンバー：[個人番号]（本人）\n口座番号：別紙参照"
    );
}

#[test]
fn a_header_word_after_a_field_name_is_not_its_value() {
    let mut s = Session::with_tag(shipped(), terms(), "TEST".into());
    let out = s
        .redact_text("| 氏名 | 備考 |\n|---|---|\n| 山田太郎 | 平日のみ |")
        .unwrap();
    assert_eq!(
        out,
        "| 氏名 | 備考 |\n|---|---|\n| [PERSON_NAME_1_TEST] | 平日のみ |"
    );
    // A vertical list of names and values: its first value is still taken (its next label is
    // read as a cell of the name column: the safe mistake).
    let out = s.redact_text("氏名\t佐藤花子\n部署\t営業部").unwrap();
    assert!(out.starts_with("氏名\t[PERSON_NAME_2_TEST]\n"), "{out}");
}

#[test]
fn percent_encoded_runs_are_read_decoded_and_replaced_whole() {
    let mut s = Session::with_tag(shipped(), terms(), "TEST".into());
    // 会議 (clean), 東雲物産 (a term), and 山本 in Shift_JIS (not UTF-8: not decoded, not a panic).
    let text = "a?q=%E4%BC%9A%E8%AD%B0&t=%E6%9D%B1%E9%9B%B2%E7%89%A9%E7%94%A3&s=%8ER%96%7B";
    let out = s.redact_text(text).unwrap();
    assert_eq!(out, "a?q=%E4%BC%9A%E8%AD%B0&t=[TERM_1_TEST]&s=%8ER%96%7B");
    // Pseudonyms give the encoded run back as it was.
    assert_eq!(s.pseudonyms().restore(&out), text);
}

#[test]
fn an_encoded_run_takes_the_strictest_treatment_found_in_it() {
    let mut s = Session::with_tag(shipped(), terms(), "TEST".into());
    // 山田太郎様 (a pseudonym) before a card number (masked), in one run: the run is masked, so
    // restoring cannot give the card number back.
    let text = "q=%E5%B1%B1%E7%94%B0%E5%A4%AA%E9%83%8E%E6%A7%98%20%E3%82%AB%E3%83%BC%E3%83%89%E7%95%AA%E5%8F%B7%204111%201111%201111%201111&p=1";
    let out = s.redact_text(text).unwrap();
    // A mask (the card's, or My Number's for its first twelve digits), not a placeholder.
    assert!(
        out.starts_with("q=[") && out.ends_with("]&p=1") && !out.contains("_TEST]"),
        "{out}"
    );
    assert_eq!(s.pseudonyms().restore(&out), out);
}
