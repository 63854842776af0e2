//! Request framing guard: turns an HTTP/1 request head that carries both
//! `Content-Length` and `Transfer-Encoding` into hyper's own bare 400.
//!
//! hyper follows RFC 9112 section 6.3 for such a head: it drops the length,
//! reads the body as chunked, forwards the request and closes afterwards.
//! The gateway rejects it instead, like nginx, because a front end that
//! trusted the length would disagree with us about where the next request
//! starts. hyper removes the stale length before the handler runs, so the
//! check lives below hyper, on the bytes it reads.
//!
//! [`FramingGuard`] wraps the accepted stream. It follows the request
//! framing on the read side only: it finds the end of each head, parses it
//! once with httparse (hyper's own parser, so both agree where a head ends),
//! then skips a `Content-Length` body by count or follows a chunked body's
//! size lines, skipping chunk data by count. When a complete head carries
//! both fields, the guard overwrites the last byte of the head's empty line
//! with a control byte before hyper sees it; httparse then fails at once and
//! hyper answers `400 Bad Request` and closes.
//!
//! The guard is never stricter than hyper beyond that one rule: whenever it
//! cannot follow the framing (an h2 preface, a head it cannot parse or one
//! over [`MAX_HEAD`], a chunk line hyper would refuse) it stops tracking for
//! the rest of the connection and passes bytes through untouched. Writes
//! always pass through.
//!
//! A request with `Upgrade` (or `CONNECT`) is followed like any other: the
//! connection only stops being HTTP/1 when the gateway actually answers
//! `101 Switching Protocols`, which the handler announces through the
//! connection's [`Switched`] flag before hyper writes the 101. Until then
//! (an upgrade the upstream declined, a refused `CONNECT`) every later
//! request on the connection is still guarded.

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The longest head the guard buffers across reads; beyond it the guard
/// stops tracking. hyper's own read buffer (`max_buf_size` in `server.rs`,
/// at least 400 KiB) refuses such heads unless `max_header_bytes` is set
/// above about 500 KiB.
pub(crate) const MAX_HEAD: usize = 1024 * 1024;

/// Header slots parsed without allocating; hyper's own default is 100.
const INLINE_HEADERS: usize = 100;

/// The head buffer's first allocation, enough for most heads.
const INITIAL_HEAD: usize = 1024;

/// A head buffer that grew beyond this is freed instead of kept.
const KEEP_CAPACITY: usize = 16 * 1024;

/// Written over the head's final LF: httparse wants LF after CR (or a
/// header-name token after a bare LF) and fails at once with `NewLine` or
/// `HeaderName` instead of waiting for more bytes.
const POISON: u8 = 0x01;

/// Set once the connection switched protocols (the gateway sent a 101):
/// from then on its bytes are no longer HTTP/1 and the guard stops
/// following them. Shared by the connection's guard and its requests.
#[derive(Debug, Clone, Default)]
pub(crate) struct Switched(Arc<AtomicBool>);

impl Switched {
    /// Marks the connection as switched; call before the 101 is written.
    pub(crate) fn set(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

pin_project_lite::pin_project! {
    /// An IO wrapper that makes hyper reject HTTP/1 request heads carrying
    /// both `Content-Length` and `Transfer-Encoding`; see the module docs.
    pub(crate) struct FramingGuard<T> {
        #[pin]
        io: T,
        tracker: Tracker,
        peer: SocketAddr,
        switched: Switched,
    }
}

impl<T> FramingGuard<T> {
    /// Wraps a freshly accepted connection from `peer`; `switched` is set
    /// by the request that switches protocols, if one does.
    pub(crate) fn new(io: T, peer: SocketAddr, switched: Switched) -> Self {
        Self {
            io,
            tracker: Tracker::new(MAX_HEAD),
            peer,
            switched,
        }
    }
}

impl<T: AsyncRead> AsyncRead for FramingGuard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        ready!(this.io.poll_read(cx, buf))?;
        if this.tracker.is_tracking() && this.switched.get() {
            // A 101 was sent: what follows is another protocol.
            this.tracker.stop();
        }
        if this.tracker.is_tracking() {
            let fresh = buf.filled_mut().get_mut(before..).unwrap_or_default();
            if this.tracker.feed(fresh) {
                tracing::debug!(
                    peer = %this.peer,
                    "rejected request with both Content-Length and Transfer-Encoding"
                );
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite> AsyncWrite for FramingGuard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

/// Where the next byte read belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A request head (or the empty lines before one).
    Head,
    /// A `Content-Length` body with this many bytes left.
    Body(u64),
    /// A chunked body.
    Chunked(Chunk),
    /// Not tracking any more; every byte passes untouched.
    Passthrough,
}

/// Position inside a chunked body, mirroring hyper's `ChunkedState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Before the first hex digit of a chunk size.
    Start,
    /// In the hex digits, with the size so far.
    Size(u64),
    /// Whitespace after the size.
    Lws(u64),
    /// A chunk extension, up to its CR.
    Ext(u64),
    /// The LF ending a size line.
    SizeLf(u64),
    /// Chunk data with this many bytes left.
    Data(u64),
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// After the last chunk: a trailer field or the final CRLF.
    EndCr,
    /// The LF of the final CRLF.
    EndLf,
    /// Inside a trailer field, up to its CR.
    Trailer,
    /// The LF ending a trailer field.
    TrailerLf,
}

/// What a complete head means for the bytes after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Both `Content-Length` and `Transfer-Encoding`: poison it.
    Reject,
    /// Track the connection on from this state.
    Then(State),
}

/// The read-side framing state machine, without any IO.
#[derive(Debug)]
struct Tracker {
    state: State,
    /// The start of a head that did not end in the read it began in.
    head: Vec<u8>,
    /// No head completed yet (where an h2 preface may appear).
    first: bool,
    max_head: usize,
}

impl Tracker {
    fn new(max_head: usize) -> Self {
        Self {
            state: State::Head,
            head: Vec::new(),
            first: true,
            max_head,
        }
    }

    fn is_tracking(&self) -> bool {
        self.state != State::Passthrough
    }

    /// Stops tracking for good (the connection switched protocols).
    fn stop(&mut self) {
        self.state = State::Passthrough;
        self.head = Vec::new();
    }

    /// Follows `bytes`, the next bytes read from the client, and poisons
    /// the end of any head with both framing fields. Returns whether it
    /// did.
    fn feed(&mut self, bytes: &mut [u8]) -> bool {
        let mut pos = 0;
        while pos < bytes.len() {
            pos = match self.state {
                State::Passthrough => return false,
                State::Body(left) => {
                    let avail = (bytes.len() - pos) as u64;
                    if left > avail {
                        self.state = State::Body(left - avail);
                        return false;
                    }
                    self.state = State::Head;
                    // `left <= avail`, which is a `usize`.
                    pos + usize::try_from(left).unwrap_or(usize::MAX)
                }
                State::Chunked(chunk) => self.chunked(bytes, pos, chunk),
                State::Head => match self.head(bytes, pos) {
                    Some(next) => next,
                    None => return true,
                },
            };
        }
        false
    }

    /// Consumes head bytes from `bytes[pos..]`; returns where the head
    /// ended (or `bytes.len()` if it did not), or `None` after poisoning.
    fn head(&mut self, bytes: &mut [u8], mut pos: usize) -> Option<usize> {
        if self.head.is_empty() {
            // httparse skips empty lines before a request line; skipping
            // them here too makes both start the head at the same byte.
            while bytes.get(pos).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
                pos += 1;
            }
            let rest = bytes.get(pos..).unwrap_or_default();
            if rest.is_empty() {
                return Some(pos);
            }
            // The common case, a whole head in one read: httparse finds
            // its end and its fields in one pass, with no copy.
            return match judge(rest, self.first) {
                Some((len, verdict)) => self.apply(verdict, bytes, pos + len),
                None => {
                    self.keep(rest);
                    Some(bytes.len())
                }
            };
        }
        // The rest of a head that began in an earlier read. Look for its
        // end in the new bytes only; a terminator may start in the last
        // two buffered bytes.
        let rest = bytes.get(pos..).unwrap_or_default();
        let mut seam = [0u8; 4];
        let tail = &self.head[self.head.len().saturating_sub(2)..];
        let lead = &rest[..rest.len().min(2)];
        seam[..tail.len()].copy_from_slice(tail);
        seam[tail.len()..tail.len() + lead.len()].copy_from_slice(lead);
        let across =
            head_end(&seam[..tail.len() + lead.len()], 0).map(|len| len.saturating_sub(tail.len()));
        let Some(len) = across.or_else(|| head_end(rest, 0)) else {
            self.keep(rest);
            return Some(bytes.len());
        };
        let end = pos + len;
        if !self.keep(bytes.get(pos..end).unwrap_or_default()) {
            return Some(bytes.len());
        }
        let verdict = match judge(&self.head, self.first) {
            Some((len, verdict)) if len == self.head.len() => verdict,
            // httparse and the scan disagree about the end: give up.
            _ => Verdict::Then(State::Passthrough),
        };
        self.head.clear();
        if self.head.capacity() > KEEP_CAPACITY {
            self.head = Vec::new();
        }
        self.apply(verdict, bytes, end)
    }

    /// Buffers part of a head that spans reads; past `max_head`, stops
    /// tracking instead and returns false.
    fn keep(&mut self, part: &[u8]) -> bool {
        if self.head.len() + part.len() > self.max_head {
            self.state = State::Passthrough;
            self.head = Vec::new();
            return false;
        }
        if self.head.capacity() == 0 {
            // Once per connection on listeners with h2c: hyper-util reads
            // the first 24 bytes alone to look for the h2 preface.
            self.head.reserve(part.len().max(INITIAL_HEAD));
        }
        self.head.extend_from_slice(part);
        true
    }

    /// Acts on the verdict for a head whose last byte is `bytes[end - 1]`.
    fn apply(&mut self, verdict: Verdict, bytes: &mut [u8], end: usize) -> Option<usize> {
        self.first = false;
        match verdict {
            Verdict::Then(state) => {
                self.state = state;
                Some(end)
            }
            Verdict::Reject => {
                if let Some(last) = end.checked_sub(1).and_then(|i| bytes.get_mut(i)) {
                    *last = POISON;
                }
                self.state = State::Passthrough;
                None
            }
        }
    }

    /// Follows a chunked body from `bytes[pos..]`; returns where it ended
    /// (or `bytes.len()`).
    fn chunked(&mut self, bytes: &[u8], mut pos: usize, mut chunk: Chunk) -> usize {
        while let Some(&b) = bytes.get(pos) {
            chunk = match chunk {
                Chunk::Data(left) => {
                    let avail = (bytes.len() - pos) as u64;
                    if left > avail {
                        self.state = State::Chunked(Chunk::Data(left - avail));
                        return bytes.len();
                    }
                    pos += usize::try_from(left).unwrap_or(usize::MAX);
                    chunk = Chunk::DataCr;
                    continue;
                }
                Chunk::Ext(size) => {
                    // Skip to the CR; hyper refuses an LF in an extension.
                    let rest = bytes.get(pos..).unwrap_or_default();
                    match rest.iter().position(|&c| c == b'\r' || c == b'\n') {
                        Some(at) if rest[at] == b'\r' => pos += at,
                        Some(_) => return self.confused(bytes),
                        None => {
                            self.state = State::Chunked(chunk);
                            return bytes.len();
                        }
                    }
                    Chunk::SizeLf(size)
                }
                Chunk::Trailer => {
                    // Skip to the CR; to hyper an LF here is just a byte.
                    let rest = bytes.get(pos..).unwrap_or_default();
                    let Some(at) = rest.iter().position(|&c| c == b'\r') else {
                        self.state = State::Chunked(chunk);
                        return bytes.len();
                    };
                    pos += at;
                    Chunk::TrailerLf
                }
                Chunk::Start => match hex(b) {
                    Some(d) => Chunk::Size(u64::from(d)),
                    None => return self.confused(bytes),
                },
                Chunk::Size(size) => match (hex(b), b) {
                    (Some(d), _) => match size.checked_mul(16) {
                        Some(s) => Chunk::Size(s | u64::from(d)),
                        None => return self.confused(bytes),
                    },
                    (None, b'\t' | b' ') => Chunk::Lws(size),
                    (None, b';') => Chunk::Ext(size),
                    (None, b'\r') => Chunk::SizeLf(size),
                    _ => return self.confused(bytes),
                },
                Chunk::Lws(size) => match b {
                    b'\t' | b' ' => Chunk::Lws(size),
                    b';' => Chunk::Ext(size),
                    b'\r' => Chunk::SizeLf(size),
                    _ => return self.confused(bytes),
                },
                Chunk::SizeLf(size) => match (b, size) {
                    (b'\n', 0) => Chunk::EndCr,
                    (b'\n', _) => Chunk::Data(size),
                    _ => return self.confused(bytes),
                },
                Chunk::DataCr => match b {
                    b'\r' => Chunk::DataLf,
                    _ => return self.confused(bytes),
                },
                Chunk::DataLf => match b {
                    b'\n' => Chunk::Start,
                    _ => return self.confused(bytes),
                },
                Chunk::EndCr => match b {
                    b'\r' => Chunk::EndLf,
                    _ => Chunk::Trailer,
                },
                Chunk::EndLf => match b {
                    b'\n' => {
                        self.state = State::Head;
                        return pos + 1;
                    }
                    _ => return self.confused(bytes),
                },
                Chunk::TrailerLf => match b {
                    b'\n' => Chunk::EndCr,
                    _ => return self.confused(bytes),
                },
            };
            pos += 1;
        }
        self.state = State::Chunked(chunk);
        bytes.len()
    }

    /// Input hyper's decoder refuses: hyper ends the connection, and the
    /// guard stops following it.
    fn confused(&mut self, bytes: &[u8]) -> usize {
        self.state = State::Passthrough;
        bytes.len()
    }
}

/// The length of the head at the start of `s`: the index just past its
/// first empty line (CRLF or bare LF, as httparse accepts). `s` starts
/// after any empty lines that precede the request line.
fn head_end(s: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        let nl = i + s.get(i..)?.iter().position(|&b| b == b'\n')?;
        match (s.get(nl + 1), s.get(nl + 2)) {
            (Some(b'\n'), _) => return Some(nl + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
}

/// Parses the head at the start of `buf`: `None` while it is incomplete,
/// else its length and what it means for the connection.
fn judge(buf: &[u8], first: bool) -> Option<(usize, Verdict)> {
    // Garbage hyper refuses too, or an h2 preface: stop tracking.
    let pass = Some((buf.len(), Verdict::Then(State::Passthrough)));
    if first && buf.starts_with(b"PRI * HTTP/2.0") {
        return pass;
    }
    let mut slots = [const { MaybeUninit::uninit() }; INLINE_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => Some((len, framing(&req))),
        Ok(httparse::Status::Partial) => None,
        Err(httparse::Error::TooManyHeaders) => {
            // Rare: more fields than the inline slots. Once the head is
            // complete, one slot per line is always enough.
            let len = head_end(buf, 0)?;
            let head = buf.get(..len).unwrap_or_default();
            let lines = head.iter().filter(|&&b| b == b'\n').count();
            let mut slots = vec![httparse::EMPTY_HEADER; lines];
            let mut req = httparse::Request::new(&mut slots);
            match req.parse(head) {
                Ok(httparse::Status::Complete(n)) if n == len => Some((len, framing(&req))),
                _ => pass,
            }
        }
        Err(_) => pass,
    }
}

/// The framing a parsed head announces, following hyper's
/// `role::Server::parse`.
fn framing(req: &httparse::Request<'_, '_>) -> Verdict {
    let mut has_cl = false;
    let mut length: Option<u64> = None;
    let mut length_ok = true;
    let mut te_chunked: Option<bool> = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            has_cl = true;
            match (digits(h.value), length) {
                (Some(n), None) => length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => length_ok = false,
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // As in hyper, the last field decides.
            te_chunked = Some(ends_in_chunked(h.value));
        }
    }
    // `Upgrade` and `CONNECT` change nothing here: the connection stays
    // HTTP/1 unless a 101 is sent, which `Switched` reports.
    let state = match (has_cl, te_chunked) {
        (true, Some(_)) => return Verdict::Reject,
        (_, Some(true)) => State::Chunked(Chunk::Start),
        // hyper refuses a request whose last coding is not chunked.
        (_, Some(false)) => State::Passthrough,
        (true, None) => match (length_ok, length) {
            (true, Some(0)) => State::Head,
            (true, Some(n)) => State::Body(n),
            // Invalid or conflicting lengths: hyper refuses them.
            _ => State::Passthrough,
        },
        (false, None) => State::Head,
    };
    Verdict::Then(state)
}

/// A Content-Length value: digits only, as hyper's `from_digits`.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| match b {
        b'0'..=b'9' => n.checked_mul(10)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

/// Whether the last coding of a Transfer-Encoding value is `chunked`.
fn ends_in_chunked(value: &[u8]) -> bool {
    value
        .rsplit(|&b| b == b',')
        .next()
        .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET: &[u8] = b"GET /a HTTP/1.1\r\nHost: gw\r\n\r\n";
    const POST_CL: &[u8] =
        b"POST /b HTTP/1.1\r\nHost: gw\r\nContent-Length: 11\r\n\r\nhello\r\n\r\n!!";
    const POST_CHUNKED: &[u8] = b"POST /c HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n\
5;name=value;q=\"a b\"\r\nhello\r\nA \t;x\r\n\r\n\r\n\r\n\r\n\r\n\r\n0000\r\nExpires: never\r\nX-Sum: 1\r\n\r\n";
    const LAST_GET: &[u8] = b"\r\nGET /d HTTP/1.1\nHost: gw\n\n";
    const CL_TE: &[u8] =
        b"POST /x HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
    const TE_CL: &[u8] =
        b"POST /x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n";

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// Feeds `input` cut at `cuts` (ascending); returns the bytes as hyper
    /// would see them and the tracker.
    fn run(input: &[u8], cuts: &[usize]) -> (Vec<u8>, Tracker) {
        let mut tracker = Tracker::new(MAX_HEAD);
        let mut out = input.to_vec();
        let mut start = 0;
        for &cut in cuts.iter().chain([input.len()].iter()) {
            tracker.feed(&mut out[start..cut]);
            start = cut;
        }
        (out, tracker)
    }

    /// Runs `check` on `input` whole, one byte at a time, and cut at every
    /// single point.
    fn every_split(input: &[u8], check: impl Fn(&str, &[u8], &Tracker)) {
        let (out, t) = run(input, &[]);
        check("whole", &out, &t);
        let bytewise: Vec<usize> = (1..input.len()).collect();
        let (out, t) = run(input, &bytewise);
        check("byte by byte", &out, &t);
        for cut in 0..=input.len() {
            let (out, t) = run(input, &[cut]);
            check(&format!("cut at {cut}"), &out, &t);
        }
    }

    fn assert_clean(input: &[u8]) {
        every_split(input, |how, out, t| {
            assert_eq!(out, input, "{how}: bytes changed");
            assert_eq!(t.state, State::Head, "{how}");
            assert!(t.head.is_empty(), "{how}: head buffer not empty");
        });
    }

    /// Exactly the byte at `at` was poisoned and tracking stopped.
    fn assert_poisoned_at(input: &[u8], at: usize) {
        every_split(input, |how, out, t| {
            let changed: Vec<usize> = (0..input.len()).filter(|&i| out[i] != input[i]).collect();
            assert_eq!(changed, [at], "{how}");
            assert_eq!(out[at], POISON, "{how}");
            assert_eq!(t.state, State::Passthrough, "{how}");
        });
    }

    /// Index of the last byte of the first empty line at or after `from`.
    fn head_end_at(input: &[u8], from: usize) -> usize {
        from + head_end(&input[from..], 0).unwrap() - 1
    }

    #[test]
    fn a_get_without_body_is_followed() {
        assert_clean(GET);
        assert_clean(b"GET / HTTP/1.0\n\n");
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..150 {
            many.extend_from_slice(format!("x-{i}: {i}\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_clean(&many);
    }

    #[test]
    fn a_content_length_body_is_skipped_by_count() {
        assert_clean(POST_CL);
        let (_, t) = run(&POST_CL[..POST_CL.len() - 4], &[]);
        assert_eq!(t.state, State::Body(4));
        assert_clean(b"POST /b HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert_clean(b"POST /b HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nab");
    }

    #[test]
    fn a_chunked_body_with_extensions_and_trailers_is_followed() {
        assert_clean(POST_CHUNKED);
        let (_, t) = run(&POST_CHUNKED[..POST_CHUNKED.len() - 2], &[]);
        assert_eq!(t.state, State::Chunked(Chunk::EndCr));
    }

    #[test]
    fn pipelined_requests_are_followed_at_every_split() {
        let input = cat(&[GET, POST_CL, POST_CHUNKED, LAST_GET, GET]);
        assert_clean(&input);
        // Every pair of cut points, too.
        for a in 0..=input.len() {
            for b in a..=input.len() {
                let (out, t) = run(&input, &[a, b]);
                assert_eq!(out, input, "cuts {a}, {b}");
                assert_eq!(t.state, State::Head, "cuts {a}, {b}");
            }
        }
    }

    #[test]
    fn content_length_with_transfer_encoding_is_poisoned_in_either_order() {
        for head in [CL_TE, TE_CL] {
            let input = cat(&[head, b"0\r\n\r\n"]);
            assert_poisoned_at(&input, head.len() - 1);
        }
        // Any coding, any length, bare LF, many fields.
        let input = b"POST / HTTP/1.1\nTransfer-Encoding: identity\nContent-Length: x\n\nzz";
        assert_poisoned_at(input, head_end_at(input, 0));
        let mut many = b"POST / HTTP/1.1\r\n".to_vec();
        for i in 0..150 {
            many.extend_from_slice(format!("x-{i}: {i}\r\n").as_bytes());
        }
        many.extend_from_slice(b"Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n");
        assert_poisoned_at(&many, many.len() - 1);
    }

    #[test]
    fn the_second_pipelined_request_is_poisoned_and_the_first_kept() {
        let input = cat(&[POST_CHUNKED, TE_CL, b"0\r\n\r\n", GET]);
        assert_poisoned_at(&input, POST_CHUNKED.len() + TE_CL.len() - 1);
        let input = cat(&[POST_CL, b"\r\n", CL_TE, b"0\r\n\r\n"]);
        assert_poisoned_at(&input, POST_CL.len() + 2 + CL_TE.len() - 1);
    }

    #[test]
    fn framing_fields_inside_a_body_are_data() {
        let hidden = b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        let head = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            hidden.len()
        );
        assert_clean(&cat(&[head.as_bytes(), hidden, GET]));
        let chunk = format!("{:x}\r\n", hidden.len());
        assert_clean(&cat(&[
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            chunk.as_bytes(),
            hidden,
            b"\r\n0\r\n\r\n",
            GET,
        ]));
    }

    #[test]
    fn an_h2_preface_stops_tracking() {
        let input = cat(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", CL_TE]);
        every_split(&input, |how, out, t| {
            assert_eq!(out, input, "{how}");
            assert_eq!(t.state, State::Passthrough, "{how}");
        });
    }

    #[test]
    fn upgrade_and_connect_requests_are_still_followed() {
        // Without a 101 the connection is still HTTP/1: a smuggling
        // attempt after an Upgrade or CONNECT request is refused.
        for first in [
            &b"GET /ws HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: gw\r\nUpgrade: foo\r\nConnection: upgrade\r\n\r\n",
            b"CONNECT gw:443 HTTP/1.1\r\nHost: gw:443\r\n\r\n",
        ] {
            let input = cat(&[first, CL_TE]);
            assert_poisoned_at(&input, input.len() - 1);
        }
        // An Upgrade request that also carries both fields is refused too.
        let input = cat(&[b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n", &CL_TE[18..]]);
        assert_poisoned_at(&input, input.len() - 1);
    }

    #[test]
    fn input_hyper_refuses_stops_tracking_without_poisoning() {
        for first in [
            &b"G(T / HTTP/1.1\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;a\nb\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            let input = cat(&[first, CL_TE]);
            let (out, t) = run(&input, &[]);
            assert_eq!(out, input, "{}", String::from_utf8_lossy(first));
            assert_eq!(t.state, State::Passthrough);
        }
    }

    #[test]
    fn an_overlong_head_stops_tracking() {
        let mut t = Tracker::new(64);
        let mut input = cat(&[
            b"GET / HTTP/1.1\r\nx: ",
            &[b'a'; 100],
            b"\r\n",
            &CL_TE[18..],
        ]);
        let (a, b) = input.split_at_mut(40);
        t.feed(a);
        assert_eq!(t.state, State::Head);
        t.feed(b);
        assert_eq!(t.state, State::Passthrough);
        assert!(!input.contains(&POISON));
        assert_eq!(t.head.capacity(), 0);

        // Over the bound across three reads, the end in the last one.
        let mut t = Tracker::new(64);
        let (a, rest) = input.split_at_mut(40);
        let (b, c) = rest.split_at_mut(80);
        for part in [a, b, c] {
            t.feed(part);
        }
        assert_eq!(t.state, State::Passthrough);
        assert!(!input.contains(&POISON));

        // A head that fits is judged even when it spans reads.
        let mut t = Tracker::new(CL_TE.len());
        let mut input = CL_TE.to_vec();
        let (a, b) = input.split_at_mut(40);
        t.feed(a);
        t.feed(b);
        assert_eq!(input.last(), Some(&POISON));
    }

    /// The poisoned head is an immediate httparse error, never `Partial`,
    /// so hyper answers at once instead of waiting for more bytes.
    #[test]
    fn a_poisoned_head_fails_httparse_at_once() {
        for input in [
            CL_TE,
            TE_CL,
            b"POST / HTTP/1.1\nTransfer-Encoding: chunked\nContent-Length: 1\n\n",
            b"POST / HTTP/1.1\nTransfer-Encoding: chunked\nContent-Length: 1\n\r\n",
        ] {
            let (out, _) = run(input, &[]);
            assert_ne!(out, input);
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut req = httparse::Request::new(&mut headers);
            let res = req.parse(&out);
            assert!(
                matches!(
                    res,
                    Err(httparse::Error::NewLine | httparse::Error::HeaderName)
                ),
                "{res:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_guard_poisons_reads_and_passes_writes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let (mut client, server) = tokio::io::duplex(64);
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        let mut guard = FramingGuard::new(server, peer, Switched::default());
        let input = cat(&[GET, POST_CHUNKED, TE_CL, b"0\r\n\r\n"]);
        let sent = input.clone();
        let writer = tokio::spawn(async move {
            for part in sent.chunks(7) {
                client.write_all(part).await.unwrap();
            }
            let mut reply = [0u8; 5];
            client.read_exact(&mut reply).await.unwrap();
            client.shutdown().await.unwrap();
            reply
        });
        let mut seen = vec![0u8; input.len()];
        guard.read_exact(&mut seen).await.unwrap();
        guard.write_all(b"hello").await.unwrap();
        guard.flush().await.unwrap();
        assert_eq!(&writer.await.unwrap(), b"hello");
        let at = GET.len() + POST_CHUNKED.len() + TE_CL.len() - 1;
        assert_eq!(seen[at], POISON);
        seen[at] = input[at];
        assert_eq!(seen, input);
    }

    #[tokio::test]
    async fn after_a_switch_bytes_pass_untouched() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let (mut client, server) = tokio::io::duplex(1024);
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        let switched = Switched::default();
        let mut guard = FramingGuard::new(server, peer, switched.clone());
        let upgrade =
            b"GET /ws HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n";
        client.write_all(upgrade).await.unwrap();
        let mut seen = vec![0u8; upgrade.len()];
        guard.read_exact(&mut seen).await.unwrap();
        assert_eq!(&seen[..], &upgrade[..]);
        // The 101 went out: the same bytes that would be poisoned before
        // are now another protocol's data.
        switched.set();
        client.write_all(CL_TE).await.unwrap();
        let mut seen = vec![0u8; CL_TE.len()];
        guard.read_exact(&mut seen).await.unwrap();
        assert_eq!(&seen[..], CL_TE);
    }
}
