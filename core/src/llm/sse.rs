//! Incremental Server-Sent Events parsing: bytes arrive in arbitrary chunks (an event, a line, a
//! `\r\n\r\n` separator or a UTF-8 character may be cut anywhere), events come out whole as the
//! text of their `data:` lines. `[DONE]` is data like any other; the caller decides what it means.

use std::collections::VecDeque;
use std::pin::Pin;

use futures::{Stream, StreamExt};

use super::ModelError;

/// Largest event (or line) accepted, so a server that never ends a line cannot exhaust memory.
const MAX_EVENT_BYTES: usize = 8 << 20;

/// Splits a byte stream into events and collects their data. Lines end with `\n`, `\r\n` or `\r`
/// (per the SSE specification); an empty line ends the event.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// Bytes not yet making a complete line.
    buf: Vec<u8>,
    /// How far `buf` was searched for a line end already.
    scanned: usize,
    /// Data lines of the event being read, joined with `\n`.
    data: Option<String>,
    /// Whether the start of the stream (and a possible byte-order mark) was seen.
    started: bool,
}

impl SseParser {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk; returns the data of every event it completed.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, ModelError> {
        self.buf.extend_from_slice(chunk);
        if !self.started {
            if self.buf.len() < 3 && b"\xEF\xBB\xBF".starts_with(&self.buf) {
                return Ok(Vec::new());
            }
            self.started = true;
            if self.buf.starts_with(b"\xEF\xBB\xBF") {
                self.buf.drain(..3);
            }
        }
        let mut events = Vec::new();
        let buf = std::mem::take(&mut self.buf);
        let mut start = 0;
        let mut pos = self.scanned;
        while let Some(offset) = buf[pos..].iter().position(|&b| b == b'\n' || b == b'\r') {
            let end = pos + offset;
            let terminator = if buf[end] == b'\n' {
                1
            } else if end + 1 == buf.len() {
                // A `\r` at the end of the chunk may be the first half of `\r\n`: wait for more.
                pos = end;
                break;
            } else if buf[end + 1] == b'\n' {
                2
            } else {
                1
            };
            self.line(&buf[start..end], &mut events);
            start = end + terminator;
            pos = start;
        }
        if !buf[pos..].contains(&b'\r') && !buf[pos..].contains(&b'\n') {
            pos = buf.len();
        }
        self.buf = buf;
        self.buf.drain(..start);
        self.scanned = pos - start;
        let pending = self.buf.len() + self.data.as_ref().map_or(0, String::len);
        if pending > MAX_EVENT_BYTES {
            return Err(ModelError::Malformed(format!("server-sent event larger than {MAX_EVENT_BYTES} bytes")));
        }
        Ok(events)
    }

    /// Ends the stream: returns the data of an event whose lines were complete but whose closing
    /// empty line never came. An unfinished last line is dropped (the connection was cut inside
    /// it).
    pub(crate) fn finish(&mut self) -> Option<String> {
        if self.buf.last() == Some(&b'\r') {
            let line = std::mem::take(&mut self.buf);
            let mut events = Vec::new();
            self.line(&line[..line.len() - 1], &mut events);
            if let Some(data) = events.pop() {
                return Some(data);
            }
        }
        self.buf.clear();
        self.scanned = 0;
        self.data.take()
    }

    fn line(&mut self, line: &[u8], events: &mut Vec<String>) {
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                events.push(data);
            }
            return;
        }
        if line[0] == b':' {
            return; // a comment, often a keep-alive
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        if field != b"data" {
            return; // event, id, retry and unknown fields do not matter here
        }
        let value = String::from_utf8_lossy(value);
        match &mut self.data {
            Some(data) => {
                data.push('\n');
                data.push_str(&value);
            }
            None => self.data = Some(value.into_owned()),
        }
    }
}

/// The data of each event of an SSE body, in order. A transport error ends the stream after being
/// yielded (mapped by `map_err`).
pub(crate) fn data_events<S, B, E, M>(body: S, map_err: M) -> impl Stream<Item = Result<String, ModelError>> + Send
where
    S: Stream<Item = Result<B, E>> + Send + 'static,
    B: AsRef<[u8]>,
    M: Fn(E) -> ModelError + Send + 'static,
{
    struct State<S, M> {
        body: Pin<Box<S>>,
        map_err: M,
        parser: SseParser,
        ready: VecDeque<String>,
        done: bool,
    }
    let state = State { body: Box::pin(body), map_err, parser: SseParser::new(), ready: VecDeque::new(), done: false };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(data) = st.ready.pop_front() {
                return Some((Ok(data), st));
            }
            if st.done {
                return None;
            }
            match st.body.next().await {
                Some(Ok(chunk)) => match st.parser.push(chunk.as_ref()) {
                    Ok(events) => st.ready.extend(events),
                    Err(e) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                },
                Some(Err(e)) => {
                    st.done = true;
                    let e = (st.map_err)(e);
                    return Some((Err(e), st));
                }
                None => {
                    st.done = true;
                    st.ready.extend(st.parser.finish());
                }
            }
        }
    })
}

/// What one event of a streamed completion carries, as the backend reads it.
pub(crate) enum Piece {
    /// Nothing to show (a keep-alive, a usage-only chunk).
    Nothing,
    /// Text (possibly empty) and the finish reason, when the event has one.
    Text(String, Option<String>),
    /// The server's end-of-stream marker (`[DONE]`).
    End,
}

/// The text pieces of a streamed completion: `parse` reads each event's data. A stream that
/// stops without an end marker ends normally when `ended(saw_text, finish_reason)` is `None`,
/// and with its error otherwise. An end marker before any text is a `Malformed` "no text".
pub(crate) fn text_pieces<P, E>(
    events: impl Stream<Item = Result<String, ModelError>> + Send + 'static,
    parse: P,
    ended: E,
) -> impl Stream<Item = Result<String, ModelError>> + Send
where
    P: Fn(&str) -> Result<Piece, ModelError> + Send + 'static,
    E: Fn(bool, Option<&str>) -> Option<ModelError> + Send + 'static,
{
    struct State<S, P, E> {
        events: Pin<Box<S>>,
        parse: P,
        ended: E,
        saw_text: bool,
        finish: Option<String>,
        done: bool,
    }
    let state = State { events: Box::pin(events), parse, ended, saw_text: false, finish: None, done: false };
    futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            let data = match st.events.next().await {
                Some(Ok(data)) => data,
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
                None => {
                    st.done = true;
                    let error = (st.ended)(st.saw_text, st.finish.as_deref())?;
                    return Some((Err(error), st));
                }
            };
            match (st.parse)(&data) {
                Ok(Piece::Nothing) => continue,
                Ok(Piece::End) => {
                    st.done = true;
                    if st.saw_text {
                        return None;
                    }
                    let reason = st.finish.as_deref().unwrap_or("[DONE]");
                    return Some((Err(ModelError::Malformed(format!("no text ({reason})"))), st));
                }
                Ok(Piece::Text(text, finish)) => {
                    if finish.is_some() {
                        st.finish = finish;
                    }
                    if !text.is_empty() {
                        st.saw_text = true;
                        return Some((Ok(text), st));
                    }
                }
                Err(e) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    /// Parses `input` fed in the given chunk sizes (cycled).
    fn parse_chunked(input: &[u8], sizes: &[usize]) -> Vec<String> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        let mut rest = input;
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes[i % sizes.len()].clamp(1, rest.len());
            out.extend(p.push(&rest[..n]).unwrap());
            rest = &rest[n..];
            i += 1;
        }
        out.extend(p.finish());
        out
    }

    /// Every way of cutting `input` in two, plus byte-by-byte, gives `expected`.
    fn assert_all_splits(input: &str, expected: &[&str]) {
        let bytes = input.as_bytes();
        for cut in 0..=bytes.len() {
            let mut p = SseParser::new();
            let mut out = p.push(&bytes[..cut]).unwrap();
            out.extend(p.push(&bytes[cut..]).unwrap());
            out.extend(p.finish());
            assert_eq!(out, expected, "cut at byte {cut}");
        }
        assert_eq!(parse_chunked(bytes, &[1]), expected, "byte by byte");
        assert_eq!(parse_chunked(bytes, &[3, 1, 5, 2]), expected, "irregular chunks");
    }

    #[test]
    fn lf_separated_events() {
        assert_all_splits("data: one\n\ndata: two\n\n", &["one", "two"]);
    }

    #[test]
    fn crlf_separated_events_split_anywhere() {
        assert_all_splits(
            "data: {\"a\":1}\r\n\r\ndata: {\"b\":2}\r\n\r\ndata: [DONE]\r\n\r\n",
            &["{\"a\":1}", "{\"b\":2}", "[DONE]"],
        );
    }

    #[test]
    fn bare_cr_lines() {
        assert_all_splits("data: a\r\rdata: b\r\r", &["a", "b"]);
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        assert_all_splits("data: first\ndata: second\ndata:third\ndata\n\n", &["first\nsecond\nthird\n"]);
    }

    #[test]
    fn comments_and_other_fields_are_ignored() {
        assert_all_splits(": keep-alive\n\nevent: message\nid: 7\nretry: 100\ndata: x\nfoo: bar\n\n: bye\n\n", &["x"]);
    }

    #[test]
    fn multibyte_utf8_split_across_chunks() {
        assert_all_splits("data: Grüße, 日本語 🎉\r\n\r\n", &["Grüße, 日本語 🎉"]);
    }

    #[test]
    fn only_one_leading_space_is_stripped() {
        assert_all_splits("data:  two spaces\n\n", &[" two spaces"]);
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        assert_all_splits("\u{FEFF}data: x\n\n", &["x"]);
    }

    #[test]
    fn an_event_with_complete_lines_is_kept_at_the_end_but_a_cut_line_is_not() {
        assert_eq!(parse_chunked(b"data: a\n\ndata: b\n", &[4]), ["a", "b"]);
        assert_eq!(parse_chunked(b"data: a\n\ndata: b\r", &[4]), ["a", "b"]);
        assert_eq!(parse_chunked(b"data: a\n\ndata: {\"cut", &[4]), ["a"]);
    }

    #[test]
    fn events_without_data_are_skipped() {
        assert_all_splits("event: ping\n\n\n\ndata: x\n\n", &["x"]);
    }

    #[test]
    fn oversized_event_is_an_error() {
        let mut p = SseParser::new();
        let chunk = vec![b'a'; 1 << 20];
        assert!(p.push(b"data: ").is_ok());
        let mut result = Ok(Vec::new());
        for _ in 0..9 {
            result = p.push(&chunk);
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(ModelError::Malformed(_))));
    }

    #[tokio::test]
    async fn stream_adapter_yields_events_then_the_transport_error() {
        let chunks: Vec<Result<&'static [u8], &'static str>> =
            vec![Ok(b"data: a\r\n"), Ok(b"\r\ndata: b\r"), Ok(b"\n\r\n"), Err("reset"), Ok(b"data: c\n\n")];
        let events: Vec<_> =
            data_events(futures::stream::iter(chunks), |e| ModelError::Transient(e.to_string())).collect().await;
        assert_eq!(events, [Ok("a".to_string()), Ok("b".to_string()), Err(ModelError::Transient("reset".into()))]);
    }

    #[tokio::test]
    async fn stream_adapter_flushes_the_last_event() {
        let chunks: Vec<Result<Vec<u8>, Infallible>> = vec![Ok(b"data: a\n\ndata: [DONE]\n".to_vec())];
        let events: Vec<_> = data_events(futures::stream::iter(chunks), |e| match e {}).collect().await;
        assert_eq!(events, [Ok("a".to_string()), Ok("[DONE]".to_string())]);
    }
}
