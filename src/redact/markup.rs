//! Field values written as HTML or XML, which pages and exported forms pasted into a prompt use:
//! `<氏名 lang="ja">v</氏名>`, `<th>氏名</th><td>v</td>`, `<dt>お名前</dt><dd>v</dd>`,
//! `<input name="氏名" value="v">`, and the columns of a table whose header row names a field.
//!
//! Every look backwards or forwards from a field name is bounded by `WINDOW`, and a table's rows
//! are read once per header row, so a text made of nothing but labels stays linear.
use super::scan::{ceil_boundary, floor_boundary, trim_ws as trim};

/// How far from a field name its enclosing tag, cell or row is looked for.
const WINDOW: usize = 2048;

/// How far after a `<label>` its `<input>` is looked for: the markup between them is a few tags.
const LABEL_REACH: usize = 256;

/// Elements whose whole content can be a label for the element after them.
const LABEL_CELLS: &[&str] = &["th", "td", "dt", "label", "b", "strong"];

/// What markup says about the field name at `s..e`: `None` when it is not in markup, else the
/// value spans it introduces (possibly none: a column header's cells are read by `table_columns`).
pub(super) fn values(t: &str, s: usize, e: usize) -> Option<Vec<(usize, usize)>> {
    let before = t.get(..s)?;
    let after = t.get(e..)?;
    if before.ends_with('<') {
        return element(t, s, e);
    }
    // Every field name in the text passes here: no allocation.
    let attribute = |q: u8| {
        before
            .as_bytes()
            .get(before.len().saturating_sub(6)..)
            .is_some_and(|b| b.eq_ignore_ascii_case(&[b'n', b'a', b'm', b'e', b'=', q]))
            && after.as_bytes().first() == Some(&q)
    };
    if attribute(b'"') || attribute(b'\'') {
        return Some(input_value(t, s, e).into_iter().collect());
    }
    let (open, close) = enclosing_cell(t, s, e)?;
    let name = tag_name(t, open);
    if name.eq_ignore_ascii_case("th") && next_tag_is(t, e, &["th", "/tr"]) {
        return Some(Vec::new());
    }
    // `<b>氏名：</b>山田`: the colon inside the label.
    let colon_inside = t.get(e..close).is_some_and(|c| c.contains(':'));
    let v = sibling_value(t, e)
        .or_else(|| value_after_colon(t, e))
        .or_else(|| colon_inside.then(|| text_after(t, close)).flatten())
        .or_else(|| {
            name.eq_ignore_ascii_case("label")
                .then(|| labelled_input(t, close))
                .flatten()
        });
    // Nothing read as markup: the ordinary forms get their turn.
    v.map(|v| vec![v])
}

/// The column cells under every header cell of an HTML table that names a field: `hits` are the
/// field names' spans, sorted, with the value each column's cells get.
pub(super) fn table_columns<T: Copy>(
    t: &str,
    hits: &[(usize, usize, T)],
) -> Vec<(usize, usize, T)> {
    let mut out = Vec::new();
    let mut row_done = usize::MAX;
    let mut columns: Vec<(usize, T)> = Vec::new();
    let mut header_end = 0;
    // Where the rows read so far end: a header inside them is data, and reading every table's
    // rows once keeps a text of header rows linear.
    let mut read_until = 0;
    for &(s, e, x) in hits {
        if s < read_until {
            continue;
        }
        let Some((open, _)) = enclosing_cell(t, s, e) else {
            continue;
        };
        if !tag_name(t, open).eq_ignore_ascii_case("th") || !next_tag_is(t, e, &["th", "/tr"]) {
            continue;
        }
        let Some(row) = row_start(t, open) else {
            continue;
        };
        if row != row_done {
            read_until = read_columns(t, header_end, &columns, &mut out);
            columns.clear();
            row_done = row;
            if s < read_until {
                continue;
            }
        }
        let index = t
            .get(row..open)
            .map_or(0, |r| tags(r, &["th", "td"]).count());
        columns.push((index, x));
        header_end = e;
    }
    read_columns(t, header_end, &columns, &mut out);
    out
}

/// `<name attr="…">value</name>`: the value without markup, if it holds no markup itself.
fn element(t: &str, s: usize, e: usize) -> Option<Vec<(usize, usize)>> {
    let after = t.get(e..)?;
    let gt = if after.starts_with('>') {
        0
    } else if after.starts_with([' ', '\t']) {
        let k = after
            .get(..WINDOW.min(after.len()))?
            .find(['>', '<', '\n'])?;
        (after.as_bytes().get(k) == Some(&b'>')).then_some(k)?
    } else {
        return None;
    };
    let from = e + gt + 1;
    let rest = t.get(from..)?;
    let close = format!("</{}>", t.get(s..e)?);
    Some(match rest.find('<') {
        Some(k) if rest.get(k..).is_some_and(|r| r.starts_with(&close)) => {
            vec![trim(t, from, from + k)]
        }
        _ => Vec::new(),
    })
}

/// `<input name="氏名" value="v">` (the value attribute before or after the name).
fn input_value(t: &str, s: usize, e: usize) -> Option<(usize, usize)> {
    let back = window_before(t, s);
    let lt = s - back.len() + back.rfind('<')?;
    let gt = e + window_after(t, e).find('>')?;
    let tag = t.get(lt..gt)?;
    if tag.contains(['\n']) || tag.get(1..)?.contains('<') {
        return None;
    }
    value_attribute(t, lt, gt)
}

/// The `value="…"` of the tag from `lt` (its `<`) to `gt` (its `>`).
fn value_attribute(t: &str, lt: usize, gt: usize) -> Option<(usize, usize)> {
    let lower = t.get(lt..gt)?.to_ascii_lowercase();
    for q in ["\"", "'"] {
        let key = format!(" value={q}");
        if let Some(k) = lower.find(&key) {
            let from = lt + k + key.len();
            let end = from + t.get(from..gt)?.find(q)?;
            return Some((from, end));
        }
    }
    None
}

/// `<label for="dob">生年月日</label><input id="dob" type="date" value="1986-09-30">`: the value of
/// the input that follows the label, before any other label.
fn labelled_input(t: &str, close: usize) -> Option<(usize, usize)> {
    let rest = t.get(close..ceil_boundary(t, close + LABEL_REACH))?;
    let lower = rest.to_ascii_lowercase();
    let k = lower.find("<input")?;
    if lower.get(..k)?.contains("<label") {
        return None;
    }
    let lt = close + k;
    let gt = lt + window_after(t, lt).find('>')?;
    let tag = t.get(lt..gt)?.to_ascii_lowercase();
    // A button's caption or a choice's code is no one's value.
    let fixed = [
        "submit", "button", "hidden", "reset", "checkbox", "radio", "image",
    ]
    .iter()
    .any(|k| tag.contains(&format!("type=\"{k}\"")) || tag.contains(&format!("type='{k}'")));
    if tag.contains('\n') || fixed {
        return None;
    }
    value_attribute(t, lt, gt).filter(|(a, b)| a < b)
}

/// The label cell around `s..e`: `<th>氏名</th>` with only spaces or a colon beside the name.
/// Returns the offsets of the opening tag's `<` and the closing tag's end.
fn enclosing_cell(t: &str, s: usize, e: usize) -> Option<(usize, usize)> {
    let before = t.get(..s)?.trim_end_matches([' ', '\t']);
    let after = t.get(e..)?.trim_start_matches([' ', '\t', ':']);
    if !before.ends_with('>') || !after.starts_with("</") {
        return None;
    }
    let back = window_before(t, before.len());
    let open = before.len() - back.len() + back.rfind('<')?;
    let name = tag_name(t, open);
    if !LABEL_CELLS.iter().any(|c| name.eq_ignore_ascii_case(c)) {
        return None;
    }
    let close_at = t.len() - after.len();
    let close = t.get(close_at + 2..)?;
    let close_name = close.get(..name.len())?;
    if !close_name.eq_ignore_ascii_case(name) || !close.get(name.len()..)?.starts_with('>') {
        return None;
    }
    Some((open, close_at + 2 + name.len() + 1))
}

/// The value cell right after a label cell: `<td>v</td>` or `<dd>v</dd>`, inner markup such as
/// `<span>` skipped.
fn sibling_value(t: &str, e: usize) -> Option<(usize, usize)> {
    let p = skip_ws(t, close_end(t, e)?);
    let name = tag_name(t, p);
    if !["td", "dd"].iter().any(|c| name.eq_ignore_ascii_case(c)) {
        return None;
    }
    cell_content(t, p)
}

/// `<b>住所</b>：value`: the text after the closing tag and a colon, up to the next tag or the
/// line's end.
fn value_after_colon(t: &str, e: usize) -> Option<(usize, usize)> {
    let c = close_end(t, e)?;
    let rest = t.get(c..)?.trim_start_matches([' ', '\t']);
    let rest = rest.strip_prefix(':')?;
    text_after(t, t.len() - rest.len())
}

/// The text from `p`, inline tags at its start skipped (`<span>`), up to the next tag or the
/// line's end.
fn text_after(t: &str, p: usize) -> Option<(usize, usize)> {
    let mut from = p;
    loop {
        let rest = t.get(from..)?;
        from += rest.len() - rest.trim_start_matches([' ', '\t']).len();
        let rest = t.get(from..)?;
        if !rest.starts_with('<') || rest.starts_with("</") {
            break;
        }
        from += window_after(t, from).find('>')? + 1;
    }
    let line = window_after(t, from);
    let end = from + line.find(['<', '\n', '\r']).unwrap_or(line.len());
    let (a, b) = trim(t, from, end);
    (a < b).then_some((a, b))
}

/// Where the closing tag right after `e` (spaces or a colon between) ends.
fn close_end(t: &str, e: usize) -> Option<usize> {
    let after = t.get(e..)?.trim_start_matches([' ', '\t', ':']);
    let at = t.len() - after.len();
    let gt = window_after(t, at).find('>')?;
    after.starts_with("</").then_some(at + gt + 1)
}

/// The text of the cell whose opening tag starts at `p`, leading inline tags skipped; up to the
/// next tag.
fn cell_content(t: &str, p: usize) -> Option<(usize, usize)> {
    let mut from = p + window_after(t, p).find('>')? + 1;
    while t.get(from..)?.starts_with('<') && !t.get(from..)?.starts_with("</") {
        from += window_after(t, from).find('>')? + 1;
    }
    // Up to the next tag that is not a line break (`東京都港区<br>芝公園1-2-3`).
    let rest = window_after(t, from);
    let end = from
        + rest
            .match_indices('<')
            .map(|(i, _)| i)
            .find(|&i| !tag_name(rest, i).eq_ignore_ascii_case("br"))?;
    let (a, b) = trim(t, from, end);
    (a < b).then_some((a, b))
}

/// The `<tr` that begins the row holding the tag at `open`.
fn row_start(t: &str, open: usize) -> Option<usize> {
    let back = window_before(t, open);
    let k = tags(back, &["tr"]).next_back()?;
    Some(open - back.len() + k)
}

/// Reads the rows after a header row (which ends after `from`), one cell per column, until a row
/// that is not data or the table's end.
fn read_columns<T: Copy>(
    t: &str,
    from: usize,
    columns: &[(usize, T)],
    out: &mut Vec<(usize, usize, T)>,
) -> usize {
    if columns.is_empty() {
        return from;
    }
    let Some(k) = tags(window_after(t, from), &["/tr"]).next() else {
        return from;
    };
    let mut p = from + k + "</tr>".len();
    loop {
        p = skip_ws(t, p);
        // `</thead><tbody>` between the header row and the data.
        while ["/thead", "tbody"]
            .iter()
            .any(|x| tag_name(t, p).eq_ignore_ascii_case(x))
        {
            let Some(k) = window_after(t, p).find('>') else {
                return p;
            };
            p = skip_ws(t, p + k + 1);
        }
        if !tag_name(t, p).eq_ignore_ascii_case("tr") {
            return p;
        }
        let Some(end) = tags(t.get(p..).unwrap_or(""), &["/tr"])
            .next()
            .map(|k| p + k)
        else {
            return p;
        };
        // A row of header cells alone begins another table; a row header (`<th>1</th><td>…`)
        // does not.
        let row = t.get(p..end).unwrap_or("");
        if tags(row, &["td"]).next().is_none() {
            return p;
        }
        let cells: Vec<usize> = tags(row, &["td", "th"]).collect();
        for &(index, x) in columns {
            let Some(&c) = cells.get(index) else {
                continue;
            };
            if let Some((a, b)) = cell_content(t, p + c) {
                out.push((a, b, x));
            }
        }
        p = end + "</tr>".len();
    }
}

/// Offsets of the tags named one of `names` in `s` (`td` for `<td class="x">`, `/tr`).
fn tags<'a>(s: &'a str, names: &'a [&str]) -> impl DoubleEndedIterator<Item = usize> + 'a {
    s.match_indices('<')
        .map(|(i, _)| i)
        .filter(move |&i| names.iter().any(|x| tag_name(s, i).eq_ignore_ascii_case(x)))
}

/// The tag name at `p` (a `<`): `td` for `<td class="x">`, `/tr` for `</tr>`; empty if none.
fn tag_name(t: &str, p: usize) -> &str {
    let Some(rest) = t.get(p..).and_then(|r| r.strip_prefix('<')) else {
        return "";
    };
    let n = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphanumeric() || (i == 0 && c == '/')))
        .map_or(rest.len(), |(i, _)| i);
    rest.get(..n).unwrap_or("")
}

/// The next tag after the closing tag at `e` is one of `names`.
fn next_tag_is(t: &str, e: usize, names: &[&str]) -> bool {
    let Some(c) = close_end(t, e) else {
        return false;
    };
    let n = tag_name(t, skip_ws(t, c));
    names.iter().any(|x| n.eq_ignore_ascii_case(x))
}

fn skip_ws(t: &str, p: usize) -> usize {
    let rest = t.get(p..).unwrap_or("");
    p + (rest.len() - rest.trim_start().len()).min(WINDOW)
}

fn window_before(t: &str, p: usize) -> &str {
    t.get(ceil_boundary(t, p.saturating_sub(WINDOW))..p)
        .unwrap_or("")
}

fn window_after(t: &str, p: usize) -> &str {
    t.get(p..floor_boundary(t, p.saturating_add(WINDOW)))
        .unwrap_or("")
}
