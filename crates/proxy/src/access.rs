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
        let rt = match tokio::runtime::Builder::new_current_thread().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "access log writer cannot start");
                return;
            }
        };
        rt.block_on(async move {
            let mut batch = Vec::with_capacity(256);
            let mut buf = Vec::with_capacity(64 * 1024);
            let mut failing = false;
            loop {
                let n = consumer.recv_batch(&mut batch, 256).await;
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
        });
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
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
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
    out
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

fn ms(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

fn header_str(v: Option<&HeaderValue>) -> Option<String> {
    v.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

fn json_line(buf: &mut Vec<u8>, e: &Entry, redact: &[String]) {
    let upstream = e.upstream.as_ref();
    let line = serde_json::json!({
        "time": humantime::format_rfc3339_millis(e.time).to_string(),
        "request_id": &*e.request_id,
        "client_ip": e.client_ip.unwrap_or(e.peer.ip()).to_string(),
        "method": e.method.as_str(),
        "host": header_str(e.host.as_ref()),
        "path": logged_target(&e.uri, redact),
        "protocol": format!("{:?}", e.version),
        "route": e.route.as_deref(),
        "service": e.service.as_deref(),
        "upstream": upstream.map(|u| u.target.as_str()),
        "consumer": e.consumer.as_deref(),
        "app": e.app.as_deref(),
        "status": e.status,
        "bytes_in": e.bytes_in,
        "bytes_out": e.bytes_out,
        "duration_ms": ms(e.duration),
        "upstream_ms": upstream.map(|u| ms(u.latency)),
        "gateway_ms": upstream.map(|u| ms(e.duration.saturating_sub(u.latency))),
        "retries": upstream.map_or(0, |u| u.retries),
        "problem": e.problem,
        "completed": e.completed,
        "user_agent": header_str(e.user_agent.as_ref()),
    });
    // A `Value` of strings and numbers always serializes.
    let _ = serde_json::to_writer(&mut *buf, &line);
    buf.push(b'\n');
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
    let _ = write!(buf, " {:?}\" {} {} \"", e.version, e.status, e.bytes_out);
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
    // `YYYY-MM-DDTHH:MM:SSZ`
    let s = humantime::format_rfc3339_seconds(t).to_string();
    let month = s
        .get(5..7)
        .and_then(|m| m.parse::<usize>().ok())
        .and_then(|m| MONTHS.get(m.wrapping_sub(1)))
        .copied()
        .unwrap_or("Jan");
    format!(
        "{}/{}/{}:{} +0000",
        s.get(8..10).unwrap_or("01"),
        month,
        s.get(0..4).unwrap_or("1970"),
        s.get(11..19).unwrap_or("00:00:00")
    )
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
