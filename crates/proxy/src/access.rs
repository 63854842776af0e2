//! The access log: one line per request, JSON or nginx's `combined`.
//!
//! The request path only gathers values it already holds (reference-counted
//! strings, the parsed method and URI) into an [`Entry`] and pushes it onto
//! a bounded [`Queue`] when the response body ends; a full queue drops the
//! entry and counts it, so a slow disk never slows a request. Formatting,
//! redaction and writing happen on a thread of their own, in batches, with
//! one flush per batch. Files rotate by size and by time (`FILE` is renamed
//! `FILE.1`, older ones shift up to `FILE.keep`).
//!
//! What is never logged: request or response headers other than the
//! effective host, User-Agent and Referer, so Authorization, cookies and
//! API key headers cannot leak; query parameter values whose names are in
//! `redact_query` (compared after percent-decoding, without regard to
//! case) become `REDACTED`. Every value is escaped for its format (JSON
//! strings; `\xHH` for quotes, backslashes and control bytes in
//! `combined`, as nginx does), so a client cannot forge lines.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use gatehouse_config::{AccessLog as Config, AccessLogFormat};
use gatehouse_core::export::{Consumer, Queue};
use http::uri::Authority;
use http::{HeaderValue, Method, Uri, Version};

/// The producer side, held by the gateway; cheap to clone.
#[derive(Clone)]
pub struct AccessLog {
    queue: Queue<Box<Entry>>,
    written: Arc<AtomicU64>,
}

/// What the upstream exchange adds to a request's entry (carried in the
/// response's extensions from the handler to the end of the body).
#[derive(Debug, Clone)]
pub struct UpstreamNote {
    /// The target that answered.
    pub target: Authority,
    /// From the first try's start to the response headers.
    pub latency: Duration,
    /// Retries before the answer.
    pub retries: u32,
}

/// One request, as the log sees it.
#[derive(Debug)]
pub struct Entry {
    /// When the request arrived (wall clock).
    pub time: SystemTime,
    /// When it arrived (monotonic), for the duration.
    pub started: Instant,
    pub request_id: Arc<str>,
    pub client_ip: Option<IpAddr>,
    pub peer: SocketAddr,
    pub method: Method,
    /// The request target as the client sent it (path and query).
    pub uri: Uri,
    pub version: Version,
    pub host: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    pub referer: Option<HeaderValue>,
    /// The declared request body length.
    pub bytes_in: Option<u64>,
    pub route: Option<Arc<str>>,
    pub service: Option<Arc<str>>,
    pub consumer: Option<Arc<str>>,
    pub app: Option<Arc<str>>,
    pub status: u16,
    pub upstream: Option<UpstreamNote>,
    /// The problem type's slug when the answer was problem+json.
    pub problem: Option<&'static str>,
    /// Set when the body ends.
    pub bytes_out: u64,
    pub duration: Duration,
    pub completed: bool,
}

/// Why the access log could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the access log `{path}`: {source}")]
pub struct OpenError {
    path: String,
    #[source]
    source: io::Error,
}

impl AccessLog {
    /// Opens the output and starts the writer thread.
    pub fn start(config: &Config) -> Result<Self, OpenError> {
        let out = Output::open(config).map_err(|source| OpenError {
            path: config.output.clone(),
            source,
        })?;
        let (queue, consumer) = Queue::bounded(config.queue);
        let written = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            out,
            format: config.format,
            redact: config
                .redact_query
                .iter()
                .map(|n| n.to_ascii_lowercase())
                .collect(),
            written: written.clone(),
        };
        std::thread::Builder::new()
            .name("gatehouse-access-log".into())
            .spawn(move || writer.run(consumer))
            .map_err(|source| OpenError {
                path: config.output.clone(),
                source,
            })?;
        Ok(Self { queue, written })
    }

    /// Queues `entry`; drops it (counted) when the writer is behind.
    pub fn push(&self, entry: Box<Entry>) {
        let _ = self.queue.try_push(entry);
    }

    /// Entries dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.queue.dropped()
    }

    /// Waits up to `limit` until every queued entry is written (shutdown).
    pub fn flush(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.written.load(Ordering::Acquire) < self.queue.pushed()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

enum Sink {
    Stdout,
    Stderr,
    File(File),
}

struct Output {
    sink: Sink,
    path: Option<PathBuf>,
    /// Bytes in the current file.
    size: u64,
    opened: Instant,
    max_size: u64,
    every: Option<Duration>,
    keep: usize,
}

impl Output {
    fn open(c: &Config) -> io::Result<Self> {
        let (sink, path, size) = match c.output.as_str() {
            "stdout" => (Sink::Stdout, None, 0),
            "stderr" => (Sink::Stderr, None, 0),
            "" => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "empty path (use stdout, stderr or a file path)",
                ));
            }
            p => {
                let path = PathBuf::from(p);
                let file = append(&path)?;
                let size = file.metadata()?.len();
                (Sink::File(file), Some(path), size)
            }
        };
        Ok(Self {
            sink,
            path,
            size,
            opened: Instant::now(),
            max_size: c.max_size,
            every: c.rotate_every,
            keep: c.keep.max(1),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.rotate_if_due()?;
        match &mut self.sink {
            Sink::Stdout => {
                let mut o = io::stdout().lock();
                o.write_all(bytes)?;
                o.flush()
            }
            Sink::Stderr => io::stderr().lock().write_all(bytes),
            Sink::File(f) => {
                f.write_all(bytes)?;
                self.size += bytes.len() as u64;
                Ok(())
            }
        }
    }

    fn rotate_if_due(&mut self) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let by_size = self.max_size > 0 && self.size >= self.max_size;
        let by_time = self.every.is_some_and(|e| self.opened.elapsed() >= e);
        if !(by_size || by_time) || self.size == 0 {
            return Ok(());
        }
        let numbered = |n: usize| {
            let mut p = path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        let _ = std::fs::remove_file(numbered(self.keep));
        for n in (1..self.keep).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        std::fs::rename(path, numbered(1))?;
        self.sink = Sink::File(append(path)?);
        self.size = 0;
        self.opened = Instant::now();
        Ok(())
    }
}

fn append(path: &std::path::Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

struct Writer {
    out: Output,
    format: AccessLogFormat,
    redact: Vec<String>,
    written: Arc<AtomicU64>,
}

impl Writer {
    fn run(mut self, mut consumer: Consumer<Box<Entry>>) {
        let mut batch = Vec::with_capacity(256);
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut failing = false;
        loop {
            let n = consumer.blocking_recv_batch(&mut batch, 256);
            if n == 0 {
                return;
            }
            buf.clear();
            for e in batch.drain(..) {
                match self.format {
                    AccessLogFormat::Json => json_line(&mut buf, &e, &self.redact),
                    AccessLogFormat::Combined => combined_line(&mut buf, &e, &self.redact),
                }
            }
            match self.out.write(&buf) {
                Ok(()) => failing = false,
                Err(e) if !failing => {
                    // Once per outage, not once per batch.
                    failing = true;
                    tracing::error!(error = %e, "cannot write the access log; lines are lost until it works again");
                }
                Err(_) => {}
            }
            self.written.fetch_add(n as u64, Ordering::Release);
        }
    }
}

/// The path and query as logged: values of redacted parameters replaced.
fn logged_target(uri: &Uri, redact: &[String]) -> String {
    let path = uri.path();
    let Some(query) = uri.query() else {
        return path.to_owned();
    };
    let mut out = String::with_capacity(path.len() + query.len() + 1);
    out.push_str(path);
    out.push('?');
    // `;` separates parameters too for some frameworks: split on both,
    // keeping each separator as it was.
    let mut rest = query;
    loop {
        let end = rest.find(['&', ';']).unwrap_or(rest.len());
        let (pair, tail) = rest.split_at(end);
        redact_pair(&mut out, pair, redact);
        let mut tail = tail.chars();
        match tail.next() {
            Some(sep) => {
                out.push(sep);
                rest = tail.as_str();
            }
            None => break,
        }
    }
    out
}

/// `name=value` with the value replaced when the name is redacted.
fn redact_pair(out: &mut String, pair: &str, redact: &[String]) {
    let (name, value) = match pair.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (pair, None),
    };
    out.push_str(name);
    if let Some(v) = value {
        out.push('=');
        if redact.iter().any(|r| decoded_name_is(name, r)) {
            out.push_str("REDACTED");
        } else {
            out.push_str(v);
        }
    }
}

/// Whether the percent-decoded `name` (`+` as a space) equals `want`
/// (lower case) without regard to ASCII case.
fn decoded_name_is(name: &str, want: &str) -> bool {
    let b = name.as_bytes();
    let mut decoded = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    i += 2;
                    h << 4 | l
                }
                _ => b'%',
            },
            b'+' => b' ',
            c => c,
        };
        decoded.push(c);
        i += 1;
    }
    decoded.eq_ignore_ascii_case(want.as_bytes())
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// A duration in milliseconds with three decimals (`2.5` ms is `2.500`).
fn push_ms(buf: &mut Vec<u8>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    push_u64(buf, us / 1000);
    buf.push(b'.');
    push_padded(buf, us % 1000, 3);
}

fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// `n` in exactly `width` digits, zero-padded.
fn push_padded(buf: &mut Vec<u8>, n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut n = n;
    for d in digits[..width].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    buf.extend_from_slice(&digits[..width]);
}

/// The civil date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day, hour, minute, second, millisecond) in UTC.
fn utc(t: SystemTime) -> (i64, u64, u64, u64, u64, u64, u64) {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (y, mo, d) = civil(i64::try_from(secs / 86_400).unwrap_or(0));
    let rem = secs % 86_400;
    (
        y,
        mo,
        d,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        u64::from(since.subsec_millis()),
    )
}

/// `2026-12-03T19:30:00.123Z`
fn push_rfc3339(buf: &mut Vec<u8>, t: SystemTime) {
    let (y, mo, d, h, mi, s, ms) = utc(t);
    push_padded(buf, u64::try_from(y).unwrap_or(0), 4);
    buf.push(b'-');
    push_padded(buf, mo, 2);
    buf.push(b'-');
    push_padded(buf, d, 2);
    buf.push(b'T');
    push_padded(buf, h, 2);
    buf.push(b':');
    push_padded(buf, mi, 2);
    buf.push(b':');
    push_padded(buf, s, 2);
    buf.push(b'.');
    push_padded(buf, ms, 3);
    buf.push(b'Z');
}

fn push_ip(buf: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf.push(b'.');
                }
                push_u64(buf, u64::from(o));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(buf, "{v6}");
        }
    }
}

/// A JSON object written field by field: no map, no per-field allocation,
/// no formatting machinery on the common paths.
struct Obj<'b> {
    buf: &'b mut Vec<u8>,
    first: bool,
}

impl<'b> Obj<'b> {
    fn new(buf: &'b mut Vec<u8>) -> Self {
        buf.push(b'{');
        Self { buf, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        self.buf.push(b'"');
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    fn str(&mut self, key: &str, v: Option<&str>) {
        self.key(key);
        match v {
            // The common case, printable ASCII without quotes or
            // backslashes, is copied as it is.
            Some(v)
                if v.bytes()
                    .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\') =>
            {
                self.buf.push(b'"');
                self.buf.extend_from_slice(v.as_bytes());
                self.buf.push(b'"');
            }
            // Escaping a string into a Vec cannot fail.
            Some(v) => {
                let _ = serde_json::to_writer(&mut *self.buf, v);
            }
            None => self.buf.extend_from_slice(b"null"),
        }
    }

    fn bytes(&mut self, key: &str, v: Option<&HeaderValue>) {
        match v {
            Some(v) => match v.to_str() {
                Ok(s) => self.str(key, Some(s)),
                Err(_) => self.str(key, Some(&String::from_utf8_lossy(v.as_bytes()))),
            },
            None => self.str(key, None),
        }
    }

    fn num(&mut self, key: &str, v: Option<u64>) {
        self.key(key);
        match v {
            Some(v) => push_u64(self.buf, v),
            None => self.buf.extend_from_slice(b"null"),
        }
    }

    fn ms(&mut self, key: &str, v: Option<Duration>) {
        self.key(key);
        match v {
            Some(d) => push_ms(self.buf, d),
            None => self.buf.extend_from_slice(b"null"),
        }
    }

    fn end(self) {
        self.buf.extend_from_slice(b"}\n");
    }
}

fn json_line(buf: &mut Vec<u8>, e: &Entry, redact: &[String]) {
    let upstream = e.upstream.as_ref();
    let mut o = Obj::new(buf);
    o.key("time");
    o.buf.push(b'"');
    push_rfc3339(o.buf, e.time);
    o.buf.push(b'"');
    o.str("request_id", Some(&e.request_id));
    o.key("client_ip");
    o.buf.push(b'"');
    push_ip(o.buf, e.client_ip.unwrap_or(e.peer.ip()));
    o.buf.push(b'"');
    o.str("method", Some(e.method.as_str()));
    o.bytes("host", e.host.as_ref());
    o.str("path", Some(&logged_target(&e.uri, redact)));
    o.str("protocol", Some(version(e.version)));
    o.str("route", e.route.as_deref());
    o.str("service", e.service.as_deref());
    o.str("upstream", upstream.map(|u| u.target.as_str()));
    o.str("consumer", e.consumer.as_deref());
    o.str("app", e.app.as_deref());
    o.num("status", Some(u64::from(e.status)));
    o.num("bytes_in", e.bytes_in);
    o.num("bytes_out", Some(e.bytes_out));
    o.ms("duration_ms", Some(e.duration));
    o.ms("upstream_ms", upstream.map(|u| u.latency));
    o.ms(
        "gateway_ms",
        upstream.map(|u| e.duration.saturating_sub(u.latency)),
    );
    o.num(
        "retries",
        Some(u64::from(upstream.map_or(0, |u| u.retries))),
    );
    o.str("problem", e.problem);
    o.key("completed");
    o.buf
        .extend_from_slice(if e.completed { b"true" } else { b"false" });
    o.bytes("user_agent", e.user_agent.as_ref());
    o.end();
}

fn version(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// `$remote_addr - $remote_user [$time_local] "$request" $status
/// $body_bytes_sent "$http_referer" "$http_user_agent"`, with the consumer
/// as the user.
fn combined_line(buf: &mut Vec<u8>, e: &Entry, redact: &[String]) {
    let ip = e.client_ip.unwrap_or(e.peer.ip());
    let _ = write!(buf, "{ip} - ");
    match &e.consumer {
        Some(c) => escape(buf, c.as_bytes()),
        None => buf.push(b'-'),
    }
    let _ = write!(buf, " [{}] \"", clf_time(e.time));
    escape(buf, e.method.as_str().as_bytes());
    buf.push(b' ');
    escape(buf, logged_target(&e.uri, redact).as_bytes());
    let _ = write!(
        buf,
        " {}\" {} {} \"",
        version(e.version),
        e.status,
        e.bytes_out
    );
    match &e.referer {
        Some(v) => escape(buf, v.as_bytes()),
        None => buf.push(b'-'),
    }
    buf.extend_from_slice(b"\" \"");
    match &e.user_agent {
        Some(v) => escape(buf, v.as_bytes()),
        None => buf.push(b'-'),
    }
    buf.extend_from_slice(b"\"\n");
}

/// nginx's escaping: `"`, `\`, control bytes and bytes over 0x7e as
/// `\xHH`.
fn escape(buf: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        if b == b'"' || b == b'\\' || !(0x20..=0x7e).contains(&b) {
            let _ = write!(buf, "\\x{b:02X}");
        } else {
            buf.push(b);
        }
    }
}

/// `03/Dec/2026:19:30:00 +0000` (UTC).
fn clf_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s, _) = utc(t);
    let month = MONTHS
        .get(usize::try_from(mo).unwrap_or(1).wrapping_sub(1))
        .copied()
        .unwrap_or("Jan");
    format!("{d:02}/{month}/{y}:{h:02}:{mi:02}:{s:02} +0000")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn redact() -> Vec<String> {
        Config::default().redact_query
    }

    fn entry(uri: &str) -> Entry {
        Entry {
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_326_200),
            started: Instant::now(),
            request_id: "rid-1".into(),
            client_ip: Some("203.0.113.7".parse().unwrap()),
            peer: "127.0.0.1:5000".parse().unwrap(),
            method: Method::GET,
            uri: uri.parse().unwrap(),
            version: Version::HTTP_11,
            host: Some(HeaderValue::from_static("api.example.com")),
            user_agent: Some(HeaderValue::from_static("curl/8")),
            referer: None,
            bytes_in: None,
            route: Some("r".into()),
            service: Some("s".into()),
            consumer: Some("alice".into()),
            app: None,
            status: 200,
            upstream: Some(UpstreamNote {
                target: "10.0.0.1:80".parse().unwrap(),
                latency: Duration::from_micros(1500),
                retries: 1,
            }),
            problem: None,
            bytes_out: 42,
            duration: Duration::from_micros(2500),
            completed: true,
        }
    }

    /// Hostile query strings: a credential under any spelling of a
    /// redacted name is hidden; other values are kept byte for byte.
    #[test]
    fn redaction_table() {
        let cases = [
            ("/x?apikey=s3cret", "/x?apikey=REDACTED"),
            ("/x?APIKEY=s3cret", "/x?APIKEY=REDACTED"),
            ("/x?%61pikey=s3cret", "/x?%61pikey=REDACTED"),
            ("/x?%41PI%4bEY=s3cret", "/x?%41PI%4bEY=REDACTED"),
            ("/x?a=1&token=t&b=2", "/x?a=1&token=REDACTED&b=2"),
            (
                "/x?access_token=a&access_token=b",
                "/x?access_token=REDACTED&access_token=REDACTED",
            ),
            ("/x?apikeyx=keep", "/x?apikeyx=keep"),
            ("/x?q=apikey%3Ds", "/x?q=apikey%3Ds"),
            ("/x?apikey", "/x?apikey"),
            ("/x?apikey=", "/x?apikey=REDACTED"),
            ("/x?%=1&%zz=2&key%=3", "/x?%=1&%zz=2&key%=3"),
            ("/x?a=1;apikey=s3cret", "/x?a=1;apikey=REDACTED"),
            ("/x?a=1;b=2&token=t;c", "/x?a=1;b=2&token=REDACTED;c"),
            ("/x?&&;apikey=s&", "/x?&&;apikey=REDACTED&"),
            ("/x", "/x"),
        ];
        for (input, want) in cases {
            let uri: Uri = input.parse().unwrap();
            assert_eq!(logged_target(&uri, &redact()), want, "{input}");
        }
    }

    #[test]
    fn json_lines_carry_every_field_and_escape_hostile_values() {
        let mut e = entry("/p?token=abc&q=%22%0a");
        e.user_agent = Some(HeaderValue::from_bytes(b"evil\"},{\"status\":1 \xff").unwrap());
        let mut buf = Vec::new();
        json_line(&mut buf, &e, &redact());
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "one line: {text}");
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["time"], "2026-12-03T19:30:00.000Z");
        assert_eq!(v["request_id"], "rid-1");
        assert_eq!(v["client_ip"], "203.0.113.7");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["host"], "api.example.com");
        assert_eq!(v["path"], "/p?token=REDACTED&q=%22%0a");
        assert_eq!(v["protocol"], "HTTP/1.1");
        assert_eq!(v["route"], "r");
        assert_eq!(v["service"], "s");
        assert_eq!(v["upstream"], "10.0.0.1:80");
        assert_eq!(v["consumer"], "alice");
        assert_eq!(v["app"], serde_json::Value::Null);
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes_out"], 42);
        assert_eq!(v["duration_ms"], 2.5);
        assert_eq!(v["upstream_ms"], 1.5);
        assert_eq!(v["gateway_ms"], 1.0);
        assert_eq!(v["retries"], 1);
        assert_eq!(v["completed"], true);
    }

    #[test]
    fn combined_lines_match_nginx_and_escape_hostile_values() {
        let mut e = entry("/p?apikey=abc");
        e.method = Method::from_bytes(b"GET").unwrap();
        e.referer = Some(HeaderValue::from_static("https://ref.example/\"x"));
        e.user_agent = Some(HeaderValue::from_bytes(b"ua\\with\xffbytes").unwrap());
        let mut buf = Vec::new();
        combined_line(&mut buf, &e, &redact());
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(
            text,
            "203.0.113.7 - alice [03/Dec/2026:19:30:00 +0000] \"GET /p?apikey=REDACTED HTTP/1.1\" 200 42 \"https://ref.example/\\x22x\" \"ua\\x5Cwith\\xFFbytes\"\n"
        );
        e.consumer = None;
        e.referer = None;
        e.user_agent = None;
        let mut buf = Vec::new();
        combined_line(&mut buf, &e, &redact());
        assert!(
            String::from_utf8(buf)
                .unwrap()
                .starts_with("203.0.113.7 - - [")
        );
    }

    #[test]
    fn times_are_utc_across_leap_years_and_month_ends() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z", "01/Jan/1970:00:00:00 +0000"),
            (
                951_782_400_123,
                "2000-02-29T00:00:00.123Z",
                "29/Feb/2000:00:00:00 +0000",
            ),
            (
                1_796_326_200_000,
                "2026-12-03T19:30:00.000Z",
                "03/Dec/2026:19:30:00 +0000",
            ),
            (
                1_798_761_599_999,
                "2026-12-31T23:59:59.999Z",
                "31/Dec/2026:23:59:59 +0000",
            ),
            (
                4_107_542_400_000,
                "2100-03-01T00:00:00.000Z",
                "01/Mar/2100:00:00:00 +0000",
            ),
        ];
        for (ms, rfc, clf) in cases {
            let t = SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
            let mut buf = Vec::new();
            push_rfc3339(&mut buf, t);
            assert_eq!(String::from_utf8(buf).unwrap(), rfc, "{ms}");
            assert_eq!(humantime::format_rfc3339_millis(t).to_string(), rfc, "{ms}");
            assert_eq!(clf_time(t), clf, "{ms}");
        }
        let mut buf = Vec::new();
        push_ms(&mut buf, Duration::from_micros(2_000_500));
        buf.push(b' ');
        push_ms(&mut buf, Duration::from_micros(7));
        buf.push(b' ');
        push_ip(&mut buf, "10.0.255.1".parse().unwrap());
        buf.push(b' ');
        push_ip(&mut buf, "2001:db8::1".parse().unwrap());
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "2000.500 0.007 10.0.255.1 2001:db8::1"
        );
    }

    #[test]
    fn files_rotate_by_size_keeping_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let config = Config {
            output: path.to_string_lossy().into_owned(),
            max_size: 10,
            keep: 2,
            ..Config::default()
        };
        let mut out = Output::open(&config).unwrap();
        for line in ["one 12345\n", "two 12345\n", "three 123\n", "four 1234\n"] {
            out.write(line.as_bytes()).unwrap();
        }
        let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
        assert_eq!(read(&path), "four 1234\n");
        assert_eq!(read(&dir.path().join("access.log.1")), "three 123\n");
        assert_eq!(read(&dir.path().join("access.log.2")), "two 12345\n");
        assert!(
            !dir.path().join("access.log.3").exists(),
            "only `keep` files are kept"
        );
    }

    #[test]
    fn files_rotate_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let config = Config {
            output: path.to_string_lossy().into_owned(),
            rotate_every: Some(Duration::from_millis(50)),
            ..Config::default()
        };
        let mut out = Output::open(&config).unwrap();
        out.write(b"early\n").unwrap();
        out.write(b"still early\n").unwrap();
        std::thread::sleep(Duration::from_millis(80));
        out.write(b"late\n").unwrap();
        let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
        assert_eq!(
            read(&dir.path().join("access.log.1")),
            "early\nstill early\n"
        );
        assert_eq!(read(&path), "late\n");
    }

    #[test]
    fn an_output_that_cannot_be_opened_is_an_error_at_start() {
        let config = Config {
            output: "/nonexistent-dir/x/access.log".into(),
            ..Config::default()
        };
        let err = AccessLog::start(&config).err().expect("an error");
        assert!(
            err.to_string().contains("/nonexistent-dir/x/access.log"),
            "{err}"
        );
    }
}
