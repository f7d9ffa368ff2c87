//! Writes a request body back out as JSON, byte for byte as `serde_json` would (compact, same
//! escapes), but scans strings for characters to escape eight bytes at a time: the prompt's
//! text is nearly all of a body, and `serde_json` looks at it one byte at a time.
use serde_json::{Map, Value};

/// `m` as compact JSON, appended to `out`.
pub fn write_object(out: &mut Vec<u8>, m: &Map<String, Value>) -> serde_json::Result<()> {
    out.push(b'{');
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        write_value(out, v)?;
    }
    out.push(b'}');
    Ok(())
}

/// Recursion is bounded: the parser refuses documents nested more than 128 deep.
fn write_value(out: &mut Vec<u8>, v: &Value) -> serde_json::Result<()> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // Numbers keep serde_json's own formatting.
        Value::Number(n) => serde_json::to_writer(&mut *out, n)?,
        Value::String(s) => write_str(out, s),
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, x)?;
            }
            out.push(b']');
        }
        Value::Object(m) => write_object(out, m)?,
    }
    Ok(())
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the word's bytes is below 0x20, `"` or `\`. Exact about whether there is one
/// (the usual has-zero-byte test; bytes from 0x80 up never count).
fn needs_escape(w: u64) -> bool {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    (control | zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\')))) != 0
}

/// What follows the backslash for a byte that must be escaped (`u`: `\u00XX`), or 0.
fn escape_of(b: u8) -> u8 {
    match b {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x0c => b'f',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        0..=0x1f => b'u',
        _ => 0,
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut done = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes
            .get(i..i + 8)
            .and_then(|c| <[u8; 8]>::try_from(c).ok())
        {
            if !needs_escape(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        let Some(&b) = bytes.get(i) else { break };
        let esc = escape_of(b);
        i += 1;
        if esc == 0 {
            continue;
        }
        out.extend_from_slice(bytes.get(done..i - 1).unwrap_or_default());
        out.push(b'\\');
        out.push(esc);
        if esc == b'u' {
            out.extend_from_slice(b"00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        }
        done = i;
    }
    out.extend_from_slice(bytes.get(done..).unwrap_or_default());
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ours(v: &Value) -> Vec<u8> {
        let Value::Object(m) = v else {
            panic!("not an object")
        };
        let mut out = Vec::new();
        write_object(&mut out, m).unwrap();
        out
    }

    #[test]
    fn writes_what_serde_json_writes() {
        let v = serde_json::json!({
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "改行\nタブ\t引用\"と\\ 制御\u{1}\u{1f}\u{7f} 🙂 </script>"}],
            "temperature": 0.7, "max_tokens": 1024, "n": -3, "big": 1e300, "tiny": 5e-324,
            "stream": false, "user": null, "nested": {"a": [[], {}, [1, [2, {"b": "\u{8}\u{c}\r"}]]]},
            "": "", "キー\"": "値"
        });
        assert_eq!(
            String::from_utf8(ours(&v)).unwrap(),
            serde_json::to_string(&v).unwrap()
        );
    }

    proptest! {
        /// Any string, escapes at any offset from an eight-byte boundary, comes out as
        /// serde_json writes it.
        #[test]
        fn strings_match_serde_json(s in "[\\x00-\\x7f\\u{80}-\\u{3000}あ\"\\\\]{0,40}", pad in 0usize..9) {
            let s = format!("{}{s}", "x".repeat(pad));
            let v = serde_json::json!({ "k": s, "a": [s.clone(), {"n": 1}] });
            prop_assert_eq!(ours(&v), serde_json::to_vec(&v).unwrap());
        }
    }
}
