//! Field values in an SQL `INSERT`, as a developer pastes one into a prompt: `INSERT INTO
//! customers (customer_name, birth_date) VALUES ('坂口 美和', '1984-12-03'), (…);` — the column
//! list names the fields, and each row's item at the same place is a value.
//!
//! Every look around a column name is bounded (`WINDOW`), so a text full of field names stays
//! linear.
use super::scan::{ceil_boundary, floor_boundary};

/// How far around a column name its statement's parts are looked for.
const WINDOW: usize = 512;

/// How many rows of one statement are read: a dump's rows past these are rarely pasted, and the
/// bound keeps one column name's work small.
const MAX_ROWS: usize = 64;

/// The values of the column named at `s..e`, when it is one of an `INSERT`'s columns; `None`
/// when it is not in one.
pub(super) fn insert_values(t: &str, s: usize, e: usize) -> Option<Vec<(usize, usize)>> {
    let (open, close) = columns(t, s, e)?;
    let index = t.get(open..s)?.matches(',').count();
    rows(t, close, index)
}

/// Columns that hold a person's name or its reading, which are no field of their own (`name` is
/// a product's as often): beside a column that is one (`INSERT INTO users (id, name, kana, tel)`),
/// they are the person's. The columns' `)` and their values; none when that `)` is `done` (the
/// statement's other columns lead here too).
pub(super) fn name_columns(
    t: &str,
    s: usize,
    e: usize,
    done: Option<usize>,
) -> Option<(usize, Vec<(usize, usize)>)> {
    const NAMES: [&str; 7] = [
        "name",
        "kana",
        "furigana",
        "yomi",
        "name_kana",
        "kana_name",
        "name_yomi",
    ];
    let (open, close) = columns(t, s, e)?;
    let mut out = Vec::new();
    if done == Some(close) {
        return Some((close, out));
    }
    for (index, column) in t.get(open + 1..close)?.split(',').enumerate() {
        let column = column.trim_matches([' ', '\t', '\n', '\r', '"', '`', '[', ']']);
        if NAMES.iter().any(|n| column.eq_ignore_ascii_case(n)) {
            out.extend(rows(t, close, index).unwrap_or_default());
        }
    }
    Some((close, out))
}

/// The `(` and `)` of the column list of an `INSERT … VALUES` that the column named at `s..e` is
/// in.
fn columns(t: &str, s: usize, e: usize) -> Option<(usize, usize)> {
    // Cheap test first: a column name follows `(` or `,` (quotes and spaces aside).
    let before = t.get(..s)?;
    let before = before.trim_end_matches([' ', '\t', '\n', '\r', '"', '`', '[']);
    if !before.ends_with(['(', ',']) {
        return None;
    }
    let back = t.get(floor_boundary(t, s.saturating_sub(WINDOW))..s)?;
    let open = s - back.len() + back.rfind('(')?;
    if t.get(open..s)?.contains(')') {
        return None;
    }
    let head = t.get(floor_boundary(t, open.saturating_sub(160))..open)?;
    let lower_head = head.to_ascii_lowercase();
    let into = lower_head.rfind("insert")?;
    let between = lower_head.get(into..)?;
    if between.split_whitespace().nth(1) != Some("into") || between.contains([';', '(', ')']) {
        return None;
    }
    let ahead = t.get(e..ceil_boundary(t, e + WINDOW))?;
    let close = e + ahead.find(')')?;
    let rest = t.get(close + 1..)?.trim_start();
    rest.get(..6)
        .is_some_and(|v| v.eq_ignore_ascii_case("values"))
        .then_some((open, close))
}

/// The item at `index` of each row after the column list that ends at `close`.
fn rows(t: &str, close: usize, index: usize) -> Option<Vec<(usize, usize)>> {
    let trimmed = t.get(close + 1..)?.trim_start();
    let mut at = t.len() - trimmed.len() + 6;
    let mut out = Vec::new();
    for _ in 0..MAX_ROWS {
        let rest = t.get(at..)?;
        let row = rest.trim_start();
        if !row.starts_with('(') {
            break;
        }
        // A row that cannot be read ends the reading; the rows before it stand.
        let Some((items, end)) = row_items(t, t.len() - row.len() + 1) else {
            break;
        };
        if let Some(&(a, b)) = items.get(index) {
            if a < b {
                out.push((a, b));
            }
        }
        let after = t.get(end..)?.trim_start();
        match after.strip_prefix(',') {
            Some(next) => at = t.len() - next.len(),
            None => break,
        }
    }
    Some(out)
}

/// The items of a row whose contents begin at `from` (after its `(`): quoted strings without
/// their quotes (`''` and MySQL's `\'` inside one are quotes), other items trimmed (a number is a
/// value: `cvv`, `pin`), `NULL`, `TRUE` and `FALSE` left out; and where the row ends (after its
/// `)`).
fn row_items(t: &str, from: usize) -> Option<(Vec<(usize, usize)>, usize)> {
    let b = t.as_bytes();
    let limit = ceil_boundary(t, from + WINDOW * 4);
    let mut items = Vec::new();
    let mut i = from;
    loop {
        while b
            .get(i)
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        {
            i += 1;
        }
        let start = i;
        if b.get(i) == Some(&b'\'') {
            i += 1;
            let content = i;
            loop {
                match b.get(i) {
                    Some(b'\'') if b.get(i + 1) == Some(&b'\'') => i += 2,
                    Some(b'\\') if i + 1 < limit => i += 2,
                    Some(b'\'') => break,
                    Some(_) if i < limit => i += 1,
                    _ => return None,
                }
            }
            items.push((content, i));
            i += 1;
        } else {
            while b.get(i).is_some_and(|&c| c != b',' && c != b')') && i < limit {
                i += 1;
            }
            let v = t.get(start..i)?.trim_end();
            let literal = v.eq_ignore_ascii_case("null")
                || v.eq_ignore_ascii_case("true")
                || v.eq_ignore_ascii_case("false");
            items.push(match literal {
                true => (start, start),
                false => (start, start + v.len()),
            });
        }
        while b
            .get(i)
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        {
            i += 1;
        }
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b')') => return Some((items, i + 1)),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values_of<'a>(t: &'a str, column: &str) -> Option<Vec<&'a str>> {
        let s = t.find(column)?;
        insert_values(t, s, s + column.len()).map(|v| {
            v.into_iter()
                .map(|(a, b)| t.get(a..b).unwrap_or(""))
                .collect()
        })
    }

    #[test]
    fn each_row_gives_the_column_its_item() {
        let t = "INSERT INTO c (id, customer_name, note) VALUES (1, '坂口 美和', 'B'),\n  (2, 'O''Brien', NULL);";
        assert_eq!(
            values_of(t, "customer_name"),
            Some(vec!["坂口 美和", "O''Brien"])
        );
        assert_eq!(values_of(t, "note"), Some(vec!["B"]));
        // A number is a value (`cvv`); NULL is none.
        assert_eq!(values_of(t, "id"), Some(vec!["1", "2"]));
        let t = "INSERT\nINTO c (customer_name) VALUES ('a\\'b'), ('x";
        // MySQL's escaped quote; a row cut short ends the reading, the rows before it stand.
        assert_eq!(values_of(t, "customer_name"), Some(vec!["a\\'b"]));
    }

    #[test]
    fn name_columns_beside_a_personal_one() {
        let t = "INSERT INTO users (id, name, kana, tel) VALUES (1, '松本 美穂', 'マツモト ミホ', '090');";
        let s = t.find("tel").unwrap_or(0);
        let (_, spans) = name_columns(t, s, s + 3, None).unwrap_or_default();
        let got: Vec<&str> = spans
            .iter()
            .map(|&(a, b)| t.get(a..b).unwrap_or(""))
            .collect();
        assert_eq!(got, ["松本 美穂", "マツモト ミホ"]);
    }

    #[test]
    fn only_inside_an_insert() {
        assert_eq!(
            values_of("SELECT f(customer_name, x) FROM c", "customer_name"),
            None
        );
        assert_eq!(
            values_of("call(customer_name) values ('x')", "customer_name"),
            None
        );
        // An unclosed string reads nothing rather than the rest of the text.
        let t = "INSERT INTO c (customer_name) VALUES ('坂口";
        assert_eq!(values_of(t, "customer_name"), Some(vec![]));
    }
}
