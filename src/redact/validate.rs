//! Check-digit and shape validators a detector can require of its match (on the folded view, so
//! digits are ASCII). They cut false positives: a random 12-digit order number passes the My
//! Number check only about one time in eleven.
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validator {
    /// 個人番号: 12 digits, the last a check digit (総務省令第八十五号 第5条).
    MyNumber,
    /// 法人番号: 13 digits, the first a check digit.
    CorporateNumber,
    /// Payment cards: 13–19 digits, Luhn, and a card network's prefix.
    Luhn,
    /// Japanese telephone numbers: the digit count fits the number's prefix.
    JpPhone,
    /// A credential value rather than a word or a placeholder (`********`, `null`, `changeme`…).
    SecretValue,
    /// A telephone number abroad: `+` and a country code other than Japan's, 8 to 15 digits in
    /// all, in groups (`+33 6 12 34 56 78`, `+1 (415) 555-0132`).
    IntlPhone,
    /// A secret value with at least two kinds of character (lower-case, upper-case, digit,
    /// symbol): where a word could follow the name (`パスワードはbcryptで…`), a word is not taken.
    Credential,
    /// Not a date written as YYYYMMDD (`20261204`): for account and insurance numbers.
    NotDate,
    /// A person's name rather than a team's or a desk's (`Customer Support`, `Sales Team`; a
    /// detector's pattern keeps out Japanese ones such as `人事部`).
    PersonName,
}

impl Validator {
    pub(crate) fn check(self, value: &str) -> bool {
        match self {
            Validator::MyNumber => my_number(&digits(value)),
            Validator::CorporateNumber => corporate_number(&digits(value)),
            Validator::Luhn => {
                let d = digits(value);
                luhn(&d) && issuer_prefix(&d)
            }
            Validator::JpPhone => jp_phone(value),
            Validator::IntlPhone => intl_phone(value),
            Validator::SecretValue => secret_value(value),
            Validator::NotDate => !yyyymmdd(&digits(value)),
            Validator::PersonName => !team_name(value),
            Validator::Credential => {
                secret_value(value) && kinds(value) >= 2 && !algorithm(value) && !prose_value(value)
            }
        }
    }
}

/// `0000-0000-0000`, a format's mask, passes the My Number check digit: one digit repeated is
/// never an identity number.
fn one_digit(d: &[u32]) -> bool {
    d.windows(2).all(|w| w[0] == w[1])
}

pub(crate) fn digits(s: &str) -> Vec<u32> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
        .collect()
}

pub(crate) fn my_number(d: &[u32]) -> bool {
    const W: [u32; 11] = [6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
    if d.len() != 12 || one_digit(d) {
        return false;
    }
    let r = d.iter().zip(W).map(|(x, w)| x * w).sum::<u32>() % 11;
    let check = if r <= 1 { 0 } else { 11 - r };
    d.get(11) == Some(&check)
}

pub(crate) fn corporate_number(d: &[u32]) -> bool {
    if d.len() != 13 || one_digit(d) {
        return false;
    }
    // The 12 digits after the check digit, weighted 1 and 2 alternately counting from the right.
    let sum: u32 = d
        .iter()
        .skip(1)
        .rev()
        .enumerate()
        .map(|(i, x)| if i % 2 == 0 { *x } else { x * 2 })
        .sum();
    d.first() == Some(&(9 - sum % 9))
}

/// Whether the digits begin as a card network's numbers do — 3 (American Express, JCB, Diners),
/// 4 (Visa), 5 (Mastercard, Maestro), 6 (Discover, UnionPay), 22–27 (Mastercard's 2-series) — and
/// have a length that network issues. A timestamp or an order number that passes the Luhn check
/// by chance (one in ten does: `20240512093004`) begins with 1, 20 or 21, 0, 7, 8 or 9; a
/// Luhn-valid 14-digit number beginning with 4 is a case's barcode (ITF-14), not a Visa card (13,
/// 16 or 19 digits).
fn issuer_prefix(d: &[u32]) -> bool {
    let n = d.len();
    match d {
        [4, ..] => matches!(n, 13 | 16 | 19),
        [2, x, ..] => (2..=7).contains(x) && n == 16,
        [3, 4 | 7, ..] => n == 15,
        [3, 0 | 6, ..] => n == 14,
        [3, 5, ..] => (16..=19).contains(&n),
        [3, ..] => (14..=16).contains(&n),
        [5 | 6, ..] => (16..=19).contains(&n),
        _ => false,
    }
}

pub(crate) fn luhn(d: &[u32]) -> bool {
    if !(13..=19).contains(&d.len()) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, x)| match (i % 2, x * 2) {
            (0, _) => *x,
            (_, y) if y > 9 => y - 9,
            (_, y) => y,
        })
        .sum();
    sum % 10 == 0
}

/// Domestic numbers have 10 digits (landline, 0120, 0570) or 11 (070/080/090 mobile, 050 IP,
/// 0800 toll-free, 020); `+81` numbers (or `81` and a separator) drop the leading 0 and may
/// write it as `(0)`.
fn jp_phone(value: &str) -> bool {
    // `+81`, or `81` and a separator (the pattern requires it, so that a digit run beginning
    // with 81 is not read as international).
    let v = value.trim_start();
    if let Some(rest) = v
        .strip_prefix("+81")
        .or_else(|| v.strip_prefix("(+81)"))
        .or_else(|| v.strip_prefix("0081"))
        .or_else(|| {
            v.strip_prefix("81")
                .filter(|r| r.starts_with([' ', '-', '.']))
        })
    {
        let d = digits(&rest.replacen("(0)", "", 1));
        return matches!(d.len(), 9 | 10) && d.first() != Some(&0);
    }
    let d = digits(value);
    match d.len() {
        10 => d.first() == Some(&0) && d.get(1) != Some(&0),
        11 => {
            matches!(d.get(..3), Some([0, 7 | 8 | 9 | 5 | 2, 0]))
                || d.get(..4) == Some(&[0, 8, 0, 0])
        }
        _ => false,
    }
}

fn intl_phone(value: &str) -> bool {
    let d = digits(value);
    // Not an address (`+192.168.100.200`) nor a time zone before a date (`UTC+9 2026-05-12 10`).
    let date = value.split(' ').any(|g| {
        g.len() == 10 && g.as_bytes().get(4) == Some(&b'-') && g.as_bytes().get(7) == Some(&b'-')
    });
    !value.starts_with("+81") && (8..=15).contains(&d.len()) && !value.contains('.') && !date
}

/// Code that computes a value rather than a value: `name(…)` or `name[…]`, `name` a dotted path
/// of identifiers, the bracket holding a quote or nothing (`resp.json()["access_token"]`,
/// `row["氏名"]`), a lower-case function's argument (`normalize(email)`) or, after a dotted name,
/// anything (`hashlib.sha256(raw.encode())`). Not a password with a note in brackets
/// (`Welcome2024（仮）`, `Sakura2024（大文字小文字を区別）`).
pub(crate) fn code_call(name: &str, inside: &str) -> bool {
    let path = !name.is_empty()
        && name.split('.').all(|w| {
            w.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    // `normalize(email)`: a function's lower-case name around an argument.
    let function = name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        && inside.starts_with(|c: char| c.is_ascii_lowercase() || c == '_');
    path && (name.contains('.') || function || inside.starts_with([')', ']', '"', '\'']))
}

/// The name of an algorithm or encoding, which prose about passwords and tokens names
/// (`トークンはSHA-256で署名`, `パスワードはAES-256で暗号化`): `SHA-256`, `HS256`, `AES-128-GCM`,
/// `RSA-2048`, `HMAC-SHA256`, `PBKDF2`, `Argon2id`, `MD5`, `UTF-8`, `Base64`, `TLS1.3`.
fn algorithm(v: &str) -> bool {
    let w: String = v
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '/' | '.'))
        .collect::<String>()
        .to_ascii_lowercase();
    let w = w.strip_prefix("hmac").unwrap_or(&w);
    // A family and the numbers it comes with, so that `rs2024` or `Blake1990` stays a password.
    const FAMILIES: &[(&str, &[&str])] = &[
        ("sha3", &["224", "256", "384", "512"]),
        ("sha", &["1", "2", "3", "224", "256", "384", "512"]),
        ("aes", &["128", "192", "256"]),
        ("rsa", &["1024", "2048", "3072", "4096"]),
        ("ecdsa", &["256", "384", "521"]),
        ("pbkdf", &["2"]),
        ("argon", &["2"]),
        ("utf", &["8", "16", "32"]),
        ("base", &["32", "58", "64"]),
        ("tls", &["1", "10", "11", "12", "13"]),
        ("ssl", &["2", "3"]),
        ("crc", &["16", "32", "64"]),
        ("blake", &["2", "3"]),
        ("hs", &["256", "384", "512"]),
        ("rs", &["256", "384", "512"]),
        ("es", &["256", "384", "512"]),
        ("ps", &["256", "384", "512"]),
        ("ed", &["25519", "448"]),
        ("md", &["4", "5"]),
    ];
    const MODES: &[&str] = &["", "gcm", "cbc", "ctr", "id", "i", "d", "pss", "b", "s"];
    FAMILIES.iter().any(|(f, numbers)| {
        w.strip_prefix(f).is_some_and(|rest| {
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let (number, mode) = rest.split_at(digits);
            digits > 0 && (numbers.is_empty() || numbers.contains(&number)) && MODES.contains(&mode)
        })
    })
}

/// What a word for a credential is followed by in prose and settings without being one: a label
/// of its own (`Password Expiry: 90 days`), an amount (`入力トークン：1,250,000`, `200K`) or a file's path
/// (`秘密鍵：~/.ssh/id_ed25519`).
fn prose_value(v: &str) -> bool {
    let amount = v.split(',').count() > 1
        && v.split(',').enumerate().all(|(i, g)| {
            g.bytes().all(|b| b.is_ascii_digit())
                && if i == 0 {
                    (1..=3).contains(&g.len())
                } else {
                    g.len() == 3
                }
        });
    // `200K`, `1.5M`: a count of tokens.
    let count = v
        .strip_suffix(['K', 'M', 'B', 'k', 'm'])
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
    v.ends_with(':') || amount || count || ["~/", "./", "../", "/"].iter().any(|p| v.starts_with(p))
}

fn kinds(v: &str) -> usize {
    let has = |f: fn(&char) -> bool| usize::from(v.chars().any(|c| f(&c)));
    has(char::is_ascii_lowercase)
        + has(char::is_ascii_uppercase)
        + has(char::is_ascii_digit)
        + has(|c| !c.is_ascii_alphanumeric())
}

/// `YYYYMMDDhhmm` of this century or the last (`202605121030`), or milliseconds since 1970 in
/// 2017–2033 (`1778553902903`): a time, not an identifier.
pub(crate) fn timestamp_shaped(d: &[u32]) -> bool {
    let n = |r: std::ops::Range<usize>| d.get(r).map(|x| x.iter().fold(0, |a, v| a * 10 + v));
    match d.len() {
        12 => {
            d.get(..8).is_some_and(yyyymmdd)
                && n(8..10).is_some_and(|h| h < 24)
                && n(10..12).is_some_and(|m| m < 60)
        }
        13 => n(0..3).is_some_and(|p| (150..200).contains(&p)),
        _ => false,
    }
}

/// An EAN-13 with its own check digit under a Japanese (45, 49) or a book (978, 979) prefix: a
/// barcode or an ISBN.
pub(crate) fn retail_code(d: &[u32]) -> bool {
    let prefixed = d.starts_with(&[4, 5])
        || d.starts_with(&[4, 9])
        || d.starts_with(&[9, 7, 8])
        || d.starts_with(&[9, 7, 9]);
    let sum: u32 = d
        .iter()
        .take(12)
        .enumerate()
        .map(|(i, x)| x * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    d.len() == 13 && prefixed && d.get(12) == Some(&((10 - sum % 10) % 10))
}

/// Eight digits that read as a date between 1900 and 2099.
fn yyyymmdd(d: &[u32]) -> bool {
    let n = |r: std::ops::Range<usize>| {
        d.get(r)
            .map(|x| x.iter().fold(0, |acc, v| acc * 10 + v))
            .unwrap_or(0)
    };
    d.len() == 8
        && (1900..=2099).contains(&n(0..4))
        && (1..=12).contains(&n(4..6))
        && (1..=31).contains(&n(6..8))
}

fn secret_value(v: &str) -> bool {
    const NOT_SECRETS: [&str; 17] = [
        // fetch()'s `credentials` modes.
        "include",
        "omit",
        "same-origin",
        "null",
        "none",
        "true",
        "false",
        "undefined",
        "required",
        "optional",
        "string",
        "password",
        "changeme",
        "example",
        "redacted",
        "secret",
        "your_token",
    ];
    // A uid, a port or a count (`docker run -u 1000:1000`): too short to be a secret of digits.
    if v.len() <= 5 && v.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let mut chars = v.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if chars.all(|c| c == first) {
        return false;
    }
    let lower = v.to_ascii_lowercase();
    // `$API_PASS`, `${DB_PASSWORD}`, `%DB_PASS%`: where a value is kept, not the value (but
    // `$Money2024` is a password: a variable's name is an identifier in capitals).
    let name = |n: &str| {
        n.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
            && n.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    };
    let variable = v
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .or_else(|| v.strip_prefix('$'))
        .or_else(|| v.strip_prefix('%').and_then(|r| r.strip_suffix('%')))
        .is_some_and(name);
    !NOT_SECRETS.contains(&lower.as_str())
        && !code_reference(v)
        && !variable
        && !stand_in(&lower)
        && !plain_url(v)
        && !cloud_region(v)
}

/// A PowerShell command's name (`$pw = ConvertTo-SecureString "…"`): where the value comes from,
/// not the value.
fn cmdlet(v: &str) -> bool {
    // The commands a script reads a credential with, by name: `Set-Sail` may be a password.
    const CMDLETS: [&str; 8] = [
        "convertto-securestring",
        "convertfrom-securestring",
        "get-credential",
        "read-host",
        "get-content",
        "get-storedcredential",
        "get-secret",
        "get-azkeyvaultsecret",
    ];
    CMDLETS.contains(&v.to_ascii_lowercase().as_str())
}

/// An endpoint's address (`https://login.example.com/oauth2/v2.0/token`): no part of it long and
/// mixed enough to be a key, as webhooks' and signed URLs' are (those have rules of their own).
fn plain_url(v: &str) -> bool {
    let Some(rest) = v
        .strip_prefix("https://")
        .or_else(|| v.strip_prefix("http://"))
    else {
        return false;
    };
    !rest
        .split(['/', '?', '&', '=', '.', '-', '_', ':'])
        .any(|p| p.len() >= 16 && kinds(p) >= 2)
}

/// A cloud region's name (`ap-northeast-1`, `us-east-2`), set beside secrets' names.
fn cloud_region(v: &str) -> bool {
    const AREAS: [&str; 11] = [
        "ap", "us", "eu", "sa", "ca", "me", "af", "il", "mx", "cn", "jp",
    ];
    const DIRECTIONS: [&str; 10] = [
        "north",
        "south",
        "east",
        "west",
        "central",
        "northeast",
        "southeast",
        "northwest",
        "southwest",
        "gov",
    ];
    let mut parts = v.split('-');
    let (Some(area), Some(direction), Some(number), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    AREAS.contains(&area)
        && DIRECTIONS.contains(&direction)
        && number.len() == 1
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// A README's stand-in for a value (`your-api-key-here`, `xoxb-your-bot-token`, `YOUR_TOKEN`), in
/// ASCII lower case; not `yourtk9mq2xlp8zq`, which may be a token.
pub(crate) fn stand_in(lower: &str) -> bool {
    lower.starts_with("your-")
        || lower.starts_with("your_")
        || lower.contains("-your-")
        || lower.contains("_your_")
        || lower.ends_with("-here")
        // wp-config.php's sample, `put your unique phrase here`, and `enter your key here`:
        // a whole phrase of that shape, not a passphrase with `your` in it.
        || (["put your ", "enter your ", "your "].iter().any(|p| lower.starts_with(p))
            && lower.ends_with(" here"))
        // `ghp_xxxxxxxxxxxx…`, `sk-proj-XXXXXXXX`: a key's prefix and x's where its body goes;
        // `sk-...`, `sk-ant-…`: the prefix and an ellipsis; `ghp_`: the prefix alone.
        || lower.contains("xxxxxx")
        || lower.ends_with("...")
        || lower.ends_with('…')
        || (lower.len() <= 12 && lower.ends_with(['_', '-']))
}

/// A display name that a team, a desk or a service goes by.
fn team_name(v: &str) -> bool {
    const WORDS: [&str; 16] = [
        "support",
        "team",
        "desk",
        "service",
        "center",
        "centre",
        "info",
        "sales",
        "admin",
        "office",
        "customer",
        "help",
        "news",
        "notification",
        "system",
        "no-reply",
    ];
    let lower = v.to_ascii_lowercase();
    lower
        .split([' ', '\t'])
        .any(|w| WORDS.contains(&w) || w.starts_with("noreply"))
}

/// `os.environ`, `process.env.DB_PASSWORD`, `config.jwtSecret`: a dotted path of words without
/// digits that starts at an object code reads secrets from, or has an identifier's `_` or
/// camelCase, names where a secret is; it is not one (`ya29.a0Af…` has digits, and
/// `correct.horse.battery.staple` is a passphrase). Nor is a command that reads one ([`cmdlet`]).
pub(crate) fn code_reference(v: &str) -> bool {
    if cmdlet(v) {
        return true;
    }
    const OBJECTS: &[&str] = &[
        "os", "process", "env", "config", "settings", "self", "this", "request", "req", "ctx",
        "context", "params", "props", "state", "args", "opts", "options", "secrets", "vault",
        "getpass", "window", "document", "app", "st", "sys", "form", "input", "event", "body",
        "data", "payload",
    ];
    let word = |p: &str| {
        p.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && p.chars().all(|c| c.is_ascii_alphabetic() || c == '_')
    };
    let first = v.split('.').next().unwrap_or("");
    let identifier = v.contains('_')
        || v.split('.')
            .any(|p| p.chars().skip(1).any(|c| c.is_ascii_uppercase()));
    v.contains('.') && v.split('.').all(word) && (OBJECTS.contains(&first) || identifier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_names_are_not_teams() {
        assert!(Validator::PersonName.check("Kenta Nakajima"));
        assert!(Validator::PersonName.check("西村 拓海"));
        assert!(!Validator::PersonName.check("Customer Support"));
        assert!(!Validator::PersonName.check("Sales Team"));
    }

    #[test]
    fn my_number_examples() {
        assert!(Validator::MyNumber.check("123456789018"));
        assert!(Validator::MyNumber.check("6214-9832-0257"));
        assert!(!Validator::MyNumber.check("123456789012"));
        assert!(!Validator::MyNumber.check("094009492915"));
        assert!(!Validator::MyNumber.check("12345678901"));
        // A format's mask passes the check digit; no number is one digit repeated.
        assert!(!Validator::MyNumber.check("0000-0000-0000"));
        assert!(!Validator::CorporateNumber.check("9999999999999"));
    }

    #[test]
    fn corporate_number_examples() {
        assert!(Validator::CorporateNumber.check("1180301018771"));
        assert!(Validator::CorporateNumber.check("2465355495059"));
        assert!(!Validator::CorporateNumber.check("2180301018771"));
    }

    #[test]
    fn luhn_examples() {
        assert!(Validator::Luhn.check("4111 1111 1111 1111"));
        assert!(Validator::Luhn.check("5717-2367-3970-9346"));
        assert!(!Validator::Luhn.check("4111 1111 1111 1112"));
        assert!(!Validator::Luhn.check("4111"));
        // Luhn-valid, but no card network's prefix: a timestamp and a reservation number.
        assert!(!Validator::Luhn.check("20240512093004"));
        assert!(!Validator::Luhn.check("20261021-0930-04"));
        assert!(Validator::Luhn.check("2223 0000 4841 0010"));
    }

    #[test]
    fn phone_shapes() {
        for ok in [
            "03-1234-5678",
            "0467-12-3456",
            "090-1234-5678",
            "0120-806-958",
            "0800-123-4567",
            "+81-3-1234-5678",
            "+81 90 1234 5678",
            "+81(0)3-1234-5678",
            "(+81) 90 3321 7745",
        ] {
            assert!(Validator::JpPhone.check(ok), "{ok}");
        }
        for bad in [
            "094009492915",
            "0012345678",
            "0312345",
            "+81-03-1234-5678",
            "03012345678",
        ] {
            assert!(!Validator::JpPhone.check(bad), "{bad}");
        }
    }

    #[test]
    fn account_numbers_are_not_dates() {
        assert!(Validator::NotDate.check("1234567"));
        assert!(Validator::NotDate.check("12345678"));
        assert!(Validator::NotDate.check("20261399"));
        assert!(!Validator::NotDate.check("20261204"));
        assert!(!Validator::NotDate.check("19990131"));
    }

    #[test]
    fn credentials_mix_kinds_of_character() {
        assert!(Validator::Credential.check("Haru2024xy"));
        assert!(Validator::Credential.check("n3trcpassw0rd"));
        assert!(!Validator::Credential.check("bcrypt"));
        assert!(!Validator::Credential.check("1500"));
        for name in [
            "SHA-256",
            "HS256",
            "AES-256-GCM",
            "RSA-2048",
            "HMAC-SHA256",
            "PBKDF2",
        ] {
            assert!(!Validator::Credential.check(name), "{name}");
        }
        for name in ["Argon2id", "MD5", "UTF-8", "Base64", "TLS1.3", "sha3-512"] {
            assert!(!Validator::Credential.check(name), "{name}");
        }
        assert!(Validator::Credential.check("Sha256x!9"));
        assert!(Validator::Credential.check("aes2024pass"));
        assert!(Validator::Credential.check("rs2024"));
        for password in ["Blake1990", "Base2024", "Tls2025", "sha2026x"] {
            assert!(Validator::Credential.check(password), "{password}");
        }
    }

    #[test]
    fn phones_abroad() {
        assert!(Validator::IntlPhone.check("+33 6 12 34 56 78"));
        assert!(Validator::IntlPhone.check("+1 (415) 555-0132"));
        assert!(!Validator::IntlPhone.check("+81 90 1234 5678"));
        assert!(!Validator::IntlPhone.check("+1 2 3"));
        assert!(!Validator::IntlPhone.check("+192.168.100.200"));
        assert!(!Validator::IntlPhone.check("+9 2026-05-12 10"));
    }

    #[test]
    fn times_and_barcodes() {
        assert!(timestamp_shaped(&digits("202605121030")));
        assert!(!timestamp_shaped(&digits("202613121030")));
        assert!(timestamp_shaped(&digits("1778553902903")));
        assert!(retail_code(&digits("4901234567894")));
        assert!(!retail_code(&digits("4901234567895")));
        assert!(!retail_code(&digits("2465355495059")));
    }

    #[test]
    fn regions_and_calls() {
        assert!(cloud_region("ap-northeast-1"));
        assert!(!cloud_region("my-password-1"));
        assert!(code_call("resp.json", ")"));
        assert!(code_call("row", "\"氏名\"]"));
        assert!(!code_call("Welcome2024", "仮)"));
        assert!(code_call("normalize", "email)"));
        assert!(!code_call("Abc", "def)123"));
        assert!(!code_call(
            "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
            "期限90日)"
        ));
    }

    #[test]
    fn secret_values() {
        assert!(Validator::SecretValue.check("hunter22x"));
        // A PowerShell command's name where the value would be; a password shaped like one is
        // still a password.
        assert!(!Validator::SecretValue.check("ConvertTo-SecureString"));
        assert!(!Validator::SecretValue.check("Read-Host"));
        assert!(Validator::SecretValue.check("Get-Money2026"));
        assert!(Validator::SecretValue.check("Set-Sail"));
        assert!(!Validator::SecretValue.check("sk-xxxxxxxxxxxxxxxxxxxxxxxx"));
        assert!(!Validator::SecretValue.check("********"));
        assert!(!Validator::SecretValue.check("Password"));
        assert!(!Validator::SecretValue.check("process.env.DB_PASSWORD"));
        assert!(!Validator::SecretValue.check("os.environ"));
        assert!(Validator::SecretValue.check("ya29.a0AfH6SMBx7Kq2"));
        assert!(Validator::SecretValue.check("correct.horse.battery.staple"));
        assert!(Validator::SecretValue.check("Summer.Breeze"));
        assert!(!Validator::SecretValue.check("config.jwtSecret"));
    }
}
