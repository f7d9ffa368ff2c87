//! Server-sent events framing: splits an upstream byte stream into whole events, keeping each
//! event's bytes exactly as received so the client gets what the provider sent.
use bytes::{Bytes, BytesMut};

/// One whole event: its raw bytes (terminator included) and its parsed fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub raw: Bytes,
    pub event: Option<String>,
    pub data: String,
}

#[derive(Debug, Default)]
pub struct Framer {
    buf: BytesMut,
}

impl Framer {
    /// Feeds bytes and returns every event completed by them.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = find_event_end(&self.buf) {
            let raw = self.buf.split_to(end).freeze();
            out.push(parse(raw));
        }
        out
    }

    /// What is left when the stream ends (an event without its blank line), if anything.
    pub fn finish(&mut self) -> Option<Event> {
        if self.buf.iter().all(|b| b.is_ascii_whitespace()) {
            self.buf.clear();
            return None;
        }
        Some(parse(std::mem::take(&mut self.buf).freeze()))
    }
}

/// The index just past the blank line that ends the first event, for \n, \r\n or \r endings.
fn find_event_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    let mut line_start = 0;
    while i < buf.len() {
        let eol_len = match buf[i] {
            b'\n' => 1,
            b'\r' if buf.get(i + 1) == Some(&b'\n') => 2,
            // A lone \r at the end may be the first half of \r\n: wait for more.
            b'\r' if i + 1 == buf.len() => return None,
            b'\r' => 1,
            _ => {
                i += 1;
                continue;
            }
        };
        if i == line_start && line_start > 0 {
            return Some(i + eol_len);
        }
        if i == line_start {
            // A blank line before any field: an empty event; skip it as part of the next.
            i += eol_len;
            line_start = i;
            continue;
        }
        i += eol_len;
        line_start = i;
    }
    None
}

fn parse(raw: Bytes) -> Event {
    let text = String::from_utf8_lossy(&raw);
    let mut event = None;
    let mut data = String::new();
    let mut first = true;
    for line in text.split(['\n', '\r']) {
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => event = Some(value.to_string()),
            "data" => {
                if !first {
                    data.push('\n');
                }
                data.push_str(value);
                first = false;
            }
            _ => {}
        }
    }
    Event { raw, event, data }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STREAM: &str =
        "event: a\ndata: {\"x\":1}\n\n: comment\ndata: line1\ndata: line2\n\ndata: [DONE]\r\n\r\n";

    #[test]
    fn events_keep_their_bytes_and_fields() {
        let mut f = Framer::default();
        let ev = f.push(STREAM.as_bytes());
        assert_eq!(ev.len(), 3);
        assert_eq!(ev[0].event.as_deref(), Some("a"));
        assert_eq!(ev[0].data, "{\"x\":1}");
        assert_eq!(ev[1].data, "line1\nline2");
        assert_eq!(ev[2].data, "[DONE]");
        let joined: Vec<u8> = ev.iter().flat_map(|e| e.raw.to_vec()).collect();
        assert_eq!(joined, STREAM.as_bytes());
        assert!(f.finish().is_none());
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_events(cuts in proptest::collection::vec(0usize..STREAM.len(), 0..8)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            let bytes = STREAM.as_bytes();
            let mut f = Framer::default();
            let mut got = Vec::new();
            let mut prev = 0;
            for c in cuts.into_iter().chain([bytes.len()]) {
                got.extend(f.push(&bytes[prev..c]));
                prev = c;
            }
            let whole = Framer::default().push(bytes);
            prop_assert_eq!(got, whole);
        }
    }
}
