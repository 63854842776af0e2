//! A byte-exact TCP client and a lenient HTTP/1 response parser, for
//! request-smuggling and malformed-HTTP tests.
//!
//! [`send`] writes exactly the given bytes, reads until the peer closes (or a
//! timeout passes) and parses every response it finds. [`Conn`] does the same
//! step by step on one connection, which suits keep-alive peers that do not
//! close after answering.
//!
//! The parser knows `content-length`, `transfer-encoding: chunked`
//! (with trailers), bodiless statuses (1xx, 204, 304) and close-delimited
//! bodies. It does not know which request a response answers, so a response
//! to `HEAD` that carries `content-length` is misparsed: look at
//! [`RawResponse::bytes`] for those.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long [`send`] and [`Conn`] wait by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How the read side of a [`send`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The peer closed the connection (FIN).
    Closed,
    /// The peer reset the connection (RST).
    Reset,
    /// The timeout passed with the connection still open.
    TimedOut,
}

/// Everything read back after a [`send`].
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// Every byte received, unparsed.
    pub bytes: Vec<u8>,
    /// The responses found in `bytes`, in order. The last one may be
    /// incomplete (see [`ParsedResponse::complete`]).
    pub responses: Vec<ParsedResponse>,
    /// Why reading stopped.
    pub end: End,
    /// Writing the request failed (the peer closed early); reading went on.
    pub write_error: Option<io::ErrorKind>,
}

impl RawResponse {
    /// The received bytes as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// Status codes of the responses found, in order.
    pub fn statuses(&self) -> Vec<u16> {
        self.responses.iter().map(|r| r.status).collect()
    }

    /// The first response found.
    pub fn first(&self) -> Option<&ParsedResponse> {
        self.responses.first()
    }
}

/// One HTTP/1 response parsed from raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedResponse {
    /// `HTTP/1.1` or whatever the status line said.
    pub version: String,
    pub status: u16,
    pub reason: String,
    /// Header fields in wire order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked if it was chunked.
    pub body: Vec<u8>,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<(String, String)>,
    /// Whether the whole body arrived (false when the connection ended
    /// early, e.g. after a reset mid-body).
    pub complete: bool,
}

impl ParsedResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }

    /// Every value of header `name` (case-insensitive), in wire order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first value of trailer `name` (case-insensitive).
    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) UTF-8.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Connects to `addr`, writes `bytes` exactly, and reads until the peer
/// closes or [`DEFAULT_TIMEOUT`] passes.
pub async fn send(addr: SocketAddr, bytes: &[u8]) -> io::Result<RawResponse> {
    send_with_timeout(addr, bytes, DEFAULT_TIMEOUT).await
}

/// [`send`] with a custom overall timeout (connect, write and read).
pub async fn send_with_timeout(
    addr: SocketAddr,
    bytes: &[u8],
    timeout: Duration,
) -> io::Result<RawResponse> {
    let mut conn = Conn::connect_with_timeout(addr, timeout).await?;
    let write_error = conn.write(bytes).await.err().map(|e| e.kind());
    let mut raw = conn.read_to_end().await?;
    raw.write_error = write_error;
    Ok(raw)
}

/// One raw TCP connection for stepwise write/read.
///
/// Every read waits at most the connection's timeout, counted from the start
/// of that call.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    timeout: Duration,
    eof: Option<End>,
}

impl Conn {
    /// Connects with [`DEFAULT_TIMEOUT`].
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        Self::connect_with_timeout(addr, DEFAULT_TIMEOUT).await
    }

    /// Connects; `timeout` bounds the connect and each later read call.
    pub async fn connect_with_timeout(addr: SocketAddr, timeout: Duration) -> io::Result<Self> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::new(),
            timeout,
            eof: None,
        })
    }

    /// Changes the per-call read timeout.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Writes `bytes` exactly and flushes.
    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Half-closes the write side (sends FIN); reading still works.
    pub async fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream.shutdown().await
    }

    /// Reads until one complete response is buffered and returns it; bytes
    /// after it stay buffered for the next call. Interim (1xx) responses are
    /// returned like any other.
    ///
    /// Errors with `TimedOut` if no complete response arrives in time,
    /// `UnexpectedEof` if the connection ends first, `InvalidData` if the
    /// bytes are not an HTTP/1 response.
    pub async fn read_response(&mut self) -> io::Result<ParsedResponse> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match parse_one(&self.buf, self.eof.is_some()) {
                Parsed::Complete(resp, used) => {
                    self.buf.drain(..used);
                    return Ok(resp);
                }
                Parsed::Invalid => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "not an HTTP/1 response: {:?}",
                            String::from_utf8_lossy(&self.buf)
                        ),
                    ));
                }
                Parsed::Incomplete(_) if self.eof.is_some() => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "connection ended ({:?}) inside a response: {:?}",
                            self.eof,
                            String::from_utf8_lossy(&self.buf)
                        ),
                    ));
                }
                Parsed::Incomplete(_) => {
                    if !self.fill(deadline).await? {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no complete response before the timeout",
                        ));
                    }
                }
            }
        }
    }

    /// Reads until the peer closes or the timeout passes, and parses
    /// everything received (including bytes left over from earlier reads).
    pub async fn read_to_end(&mut self) -> io::Result<RawResponse> {
        let deadline = Instant::now() + self.timeout;
        while self.eof.is_none() {
            if !self.fill(deadline).await? {
                break;
            }
        }
        let bytes = std::mem::take(&mut self.buf);
        let responses = parse_responses(&bytes, self.eof.is_some());
        Ok(RawResponse {
            bytes,
            responses,
            end: self.eof.unwrap_or(End::TimedOut),
            write_error: None,
        })
    }

    /// Waits up to `wait` for the peer to close or reset; data that arrives
    /// meanwhile is buffered. Returns how it ended, or `None` if still open.
    pub async fn wait_closed(&mut self, wait: Duration) -> io::Result<Option<End>> {
        let deadline = Instant::now() + wait;
        while self.eof.is_none() {
            if !self.fill(deadline).await? {
                break;
            }
        }
        Ok(self.eof)
    }

    /// Bytes received but not yet returned by [`Conn::read_response`].
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Reads once. Returns `false` on timeout; records the end of the
    /// stream (FIN or RST) in `self.eof`.
    async fn fill(&mut self, deadline: Instant) -> io::Result<bool> {
        self.buf.reserve(16 * 1024);
        match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
            Err(_) => Ok(false),
            Ok(Ok(0)) => {
                self.eof = Some(End::Closed);
                Ok(true)
            }
            Ok(Ok(_)) => Ok(true),
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => {
                self.eof = Some(End::Reset);
                Ok(true)
            }
            Ok(Err(e)) => Err(e),
        }
    }
}

/// Parses every response in `bytes`. `eof` says the connection has ended,
/// which completes a close-delimited body. A trailing partial response is
/// included with `complete: false`; unparseable bytes end the list.
pub fn parse_responses(bytes: &[u8], eof: bool) -> Vec<ParsedResponse> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        match parse_one(rest, eof) {
            Parsed::Complete(resp, used) => {
                out.push(resp);
                rest = &rest[used..];
            }
            Parsed::Incomplete(Some(partial)) => {
                out.push(partial);
                break;
            }
            Parsed::Incomplete(None) | Parsed::Invalid => break,
        }
    }
    out
}

enum Parsed {
    /// A whole response and how many bytes it used.
    Complete(ParsedResponse, usize),
    /// More bytes needed; the head, with what body there is, if it parsed.
    Incomplete(Option<ParsedResponse>),
    /// Not an HTTP/1 response.
    Invalid,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_one(buf: &[u8], eof: bool) -> Parsed {
    if buf.len() >= 5 && !buf.starts_with(b"HTTP/") {
        return Parsed::Invalid;
    }
    let Some(head_len) = find(buf, b"\r\n\r\n") else {
        return Parsed::Incomplete(None);
    };
    let head = String::from_utf8_lossy(&buf[..head_len]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default().to_owned();
    let Some(status) = parts.next().and_then(|s| s.parse::<u16>().ok()) else {
        return Parsed::Invalid;
    };
    let reason = parts.next().unwrap_or_default().to_owned();
    let headers = parse_fields(lines);

    let mut resp = ParsedResponse {
        version,
        status,
        reason,
        headers,
        body: Vec::new(),
        trailers: Vec::new(),
        complete: false,
    };
    let body_start = head_len + 4;
    let body = &buf[body_start..];

    if (100..200).contains(&status) || status == 204 || status == 304 {
        resp.complete = true;
        return Parsed::Complete(resp, body_start);
    }
    let chunked = resp
        .header_all("transfer-encoding")
        .iter()
        .flat_map(|v| v.split(','))
        .next_back()
        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
    if chunked {
        return parse_chunked(resp, body, body_start);
    }
    if let Some(len) = resp
        .header("content-length")
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        if body.len() >= len {
            resp.body = body[..len].to_vec();
            resp.complete = true;
            return Parsed::Complete(resp, body_start + len);
        }
        resp.body = body.to_vec();
        return Parsed::Incomplete(Some(resp));
    }
    // Close-delimited: the body is everything until the connection ends.
    resp.body = body.to_vec();
    if eof {
        resp.complete = true;
        Parsed::Complete(resp, buf.len())
    } else {
        Parsed::Incomplete(Some(resp))
    }
}

fn parse_fields<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    lines
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.to_owned(), value.trim().to_owned()))
        })
        .collect()
}

fn parse_chunked(mut resp: ParsedResponse, body: &[u8], body_start: usize) -> Parsed {
    let mut pos = 0;
    loop {
        let Some(line_len) = find(&body[pos..], b"\r\n") else {
            return Parsed::Incomplete(Some(resp));
        };
        let line = String::from_utf8_lossy(&body[pos..pos + line_len]);
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return Parsed::Invalid;
        };
        pos += line_len + 2;
        if size == 0 {
            // Trailer section: fields until an empty line.
            let rest = &body[pos..];
            let end = if rest.starts_with(b"\r\n") {
                Some(2)
            } else {
                find(rest, b"\r\n\r\n").map(|i| i + 4)
            };
            let Some(end) = end else {
                return Parsed::Incomplete(Some(resp));
            };
            let trailers = String::from_utf8_lossy(&body[pos..pos + end]);
            resp.trailers = parse_fields(trailers.split("\r\n"));
            resp.complete = true;
            return Parsed::Complete(resp, body_start + pos + end);
        }
        let available = body.len().saturating_sub(pos);
        if available < size + 2 {
            resp.body
                .extend_from_slice(&body[pos..pos + available.min(size)]);
            return Parsed::Incomplete(Some(resp));
        }
        resp.body.extend_from_slice(&body[pos..pos + size]);
        if &body[pos + size..pos + size + 2] != b"\r\n" {
            return Parsed::Invalid;
        }
        pos += size + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pipelined_length_and_chunked_responses() {
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\
HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n\
3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nx-t: 1\r\n\r\n\
HTTP/1.1 100 Continue\r\n\r\n\
HTTP/1.1 204 No Content\r\n\r\n";
        let responses = parse_responses(bytes, false);
        assert_eq!(
            responses.iter().map(|r| r.status).collect::<Vec<_>>(),
            [200, 404, 100, 204]
        );
        assert_eq!(responses[0].body, b"hello");
        assert_eq!(responses[0].header("content-length"), Some("5"));
        assert_eq!(responses[1].body, b"abcde");
        assert_eq!(responses[1].reason, "Not Found");
        assert_eq!(responses[1].trailer("X-T"), Some("1"));
        assert!(responses.iter().all(|r| r.complete));
    }

    #[test]
    fn chunked_without_trailers_does_not_swallow_the_next_response() {
        let bytes = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n\
HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        let responses = parse_responses(bytes, false);
        assert_eq!(responses.len(), 2);
        assert_eq!(responses[0].body, b"a");
        assert!(responses[0].trailers.is_empty());
        assert_eq!(responses[1].status, 400);
    }

    #[test]
    fn truncated_and_close_delimited_bodies() {
        let partial = parse_responses(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc", true);
        assert_eq!(partial.len(), 1);
        assert!(!partial[0].complete);
        assert_eq!(partial[0].body, b"abc");

        let chunk_cut = parse_responses(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab",
            true,
        );
        assert!(!chunk_cut[0].complete);
        assert_eq!(chunk_cut[0].body, b"ab");

        let close = b"HTTP/1.0 200 OK\r\n\r\nuntil close";
        assert!(!parse_responses(close, false)[0].complete);
        let done = parse_responses(close, true);
        assert!(done[0].complete);
        assert_eq!(done[0].body_text(), "until close");
    }

    #[test]
    fn garbage_is_not_a_response() {
        assert!(parse_responses(b"garbage\r\n\r\n", true).is_empty());
        assert!(matches!(
            parse_one(b"HTTP/1.1 abc\r\n\r\n", true),
            Parsed::Invalid
        ));
    }
}
