//! The text of a deliverable file: plain text and Markdown as UTF-8, Word documents from their
//! `word/document.xml`. Errors name the file and say what to do, since the person running
//! `mamori scan` may have passed anything.
use anyhow::{bail, Context};
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use quick_xml::Reader;
use std::io::Read;
use std::path::Path;

/// The file types `read_document` accepts, as listed in its errors.
pub const SUPPORTED: &str = ".txt, .md (or .markdown) and .docx";

/// The main part of a Word document is refused past this size (a zip bomb would otherwise
/// inflate without bound).
const MAX_DOCUMENT_XML: u64 = 256 * 1024 * 1024;

/// Reads a deliverable's text. For `.docx`, each paragraph becomes one line (so a passage's
/// line numbers are paragraph numbers), `w:tab` a tab and `w:br` a line break.
pub fn read_document(path: &Path) -> anyhow::Result<String> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("txt" | "md" | "markdown") => read_text(path),
        Some("docx") => read_docx(path),
        Some(other) => bail!(
            "`{}`: unsupported file type .{other}; mamori scan reads {SUPPORTED}",
            path.display()
        ),
        None => bail!(
            "`{}`: no file extension; mamori scan reads {SUPPORTED}",
            path.display()
        ),
    }
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        bail!(
            "`{}` is UTF-16 text; save it as UTF-8 and scan again",
            path.display()
        );
    }
    let bytes = bytes
        .strip_prefix(&[0xEF, 0xBB, 0xBF])
        .map(<[u8]>::to_vec)
        .unwrap_or(bytes);
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "`{}` is not UTF-8 text (invalid byte at offset {}); save it as UTF-8 (e.g. from \
             Shift_JIS) and scan again",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

fn read_docx(path: &Path) -> anyhow::Result<String> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).with_context(|| {
        format!(
            "`{}` is not a valid .docx file (it is not a readable zip archive)",
            path.display()
        )
    })?;
    let mut part = match zip.by_name("word/document.xml") {
        Ok(part) => part,
        Err(zip::result::ZipError::FileNotFound) => bail!(
            "`{}` is not a Word document: it has no word/document.xml",
            path.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "`{}` is not a valid .docx file (cannot open word/document.xml)",
                    path.display()
                )
            })
        }
    };
    let mut xml = Vec::new();
    part.by_ref()
        .take(MAX_DOCUMENT_XML + 1)
        .read_to_end(&mut xml)
        .with_context(|| {
            format!(
                "`{}` is corrupt: word/document.xml cannot be decompressed",
                path.display()
            )
        })?;
    if xml.len() as u64 > MAX_DOCUMENT_XML {
        bail!(
            "`{}`: word/document.xml is larger than {} MiB; refusing to read it",
            path.display(),
            MAX_DOCUMENT_XML / 1024 / 1024
        );
    }
    document_xml_text(&xml).with_context(|| {
        format!(
            "`{}` is corrupt: word/document.xml is not well-formed",
            path.display()
        )
    })
}

/// The text of a WordprocessingML body. Elements are matched by local name so that the usual
/// `w:` prefix is not assumed, and text boxes (`a:p`/`a:t`) come along. Only `t` inside a run
/// is text: deleted text (`w:delText`), field codes and tab-stop definitions (`w:tabs/w:tab` in
/// paragraph properties) are not.
pub(crate) fn document_xml_text(xml: &[u8]) -> anyhow::Result<String> {
    let mut reader = Reader::from_reader(xml);
    let mut out = String::new();
    let mut in_text = false;
    let mut runs = 0usize;
    loop {
        match reader.read_event()? {
            Event::Start(e) => match e.local_name().as_ref() {
                b"t" => in_text = true,
                b"r" => runs += 1,
                b"tab" if runs > 0 => out.push('\t'),
                b"br" | b"cr" if runs > 0 => out.push('\n'),
                _ => {}
            },
            Event::Empty(e) => match e.local_name().as_ref() {
                b"tab" if runs > 0 => out.push('\t'),
                b"br" | b"cr" if runs > 0 => out.push('\n'),
                b"p" => out.push('\n'),
                _ => {}
            },
            Event::End(e) => match e.local_name().as_ref() {
                b"t" => in_text = false,
                b"r" => runs = runs.saturating_sub(1),
                b"p" => out.push('\n'),
                _ => {}
            },
            Event::Text(t) if in_text => out.push_str(&t.xml10_content()?),
            Event::CData(t) if in_text => out.push_str(&t.decode()?),
            Event::GeneralRef(r) if in_text => {
                if let Some(c) = r.resolve_char_ref()? {
                    out.push(c);
                } else {
                    let name = r.decode()?;
                    match resolve_predefined_entity(&name) {
                        Some(s) => out.push_str(s),
                        None => bail!("unknown entity &{name};"),
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_runs_tabs_and_breaks() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>
<w:p><w:pPr><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr>
<w:r><w:t>第一</w:t></w:r><w:r><w:tab/><w:t xml:space="preserve">段落 &amp; </w:t></w:r>
<w:r><w:br/><w:t>改行&#x3042;</w:t></w:r><w:del><w:r><w:delText>消した</w:delText></w:r></w:del></w:p>
<w:p/><w:p><w:r><w:t>二つ目</w:t></w:r></w:p></w:body></w:document>"#;
        let text = document_xml_text(xml.as_bytes()).unwrap_or_default();
        assert_eq!(text, "第一\t段落 & \n改行あ\n\n二つ目\n");
    }

    #[test]
    fn malformed_xml_is_an_error() {
        assert!(document_xml_text(b"<w:p><w:r><w:t>x</w:r></w:p>").is_err());
    }
}
