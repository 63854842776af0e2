//! What a normalising upstream (nginx, Tomcat, IIS-style servers) would
//! serve for a raw request path, for tests that prove the gateway's route
//! protections cannot be walked around by spelling a path differently.
//!
//! Deliberately more lenient than any one real server: every escape is
//! decoded (once, `%2F` included), `\` counts as `/`, `;params` are
//! dropped from each segment (Tomcat, Jetty), repeated slashes are merged
//! and dot segments removed, `..` above the root clamped at the root. Case
//! is kept (nginx is case-sensitive).

use bytes::Bytes;
use http::{Response, StatusCode};

use crate::body::{BoxBody, full};

/// The path a normalising server would serve for raw path `raw` (query
/// excluded).
pub fn served_path(raw: &str) -> String {
    let b = raw.as_bytes();
    let mut decoded = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1), b.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                decoded.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b'\\', _, _) => {
                decoded.push(b'/');
                i += 1;
            }
            (c, _, _) => {
                decoded.push(c);
                i += 1;
            }
        }
    }
    let text = String::from_utf8_lossy(&decoded).replace('\\', "/");
    let mut stack: Vec<&str> = Vec::new();
    let segs: Vec<&str> = text.split('/').collect();
    let mut trailing = false;
    for (n, seg) in segs.iter().enumerate().skip(1) {
        let last = n + 1 == segs.len();
        let name = seg.split(';').next().unwrap_or(seg);
        match name {
            "" | "." => trailing = last,
            ".." => {
                stack.pop();
                trailing = last;
            }
            _ => {
                stack.push(name);
                trailing = false;
            }
        }
    }
    let mut out = String::new();
    for s in &stack {
        out.push('/');
        out.push_str(s);
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    out
}

/// The response of [`crate::UpstreamBuilder::normalizing`]: 200, header
/// `x-served` and body naming the normalised path.
pub(crate) fn respond(raw_path: &str) -> Response<BoxBody> {
    let served = served_path(raw_path);
    let mut resp = Response::new(full(Bytes::from(format!("served {served}"))));
    *resp.status_mut() = StatusCode::OK;
    if let Ok(v) = http::HeaderValue::from_str(&served) {
        resp.headers_mut().insert("x-served", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::served_path;

    #[test]
    fn normalises_like_a_lenient_server() {
        for (raw, served) in [
            ("/public/../admin/secret", "/admin/secret"),
            ("//admin/secret", "/admin/secret"),
            ("/%61dmin/secret", "/admin/secret"),
            ("/%2e%2e/admin", "/admin"),
            ("/admin%2fsecret", "/admin/secret"),
            ("/admin\\secret", "/admin/secret"),
            ("/admin;x/secret", "/admin/secret"),
            ("/public/..;/admin/secret", "/admin/secret"),
            ("/a/", "/a/"),
            ("/", "/"),
        ] {
            assert_eq!(served_path(raw), served, "{raw:?}");
        }
    }
}
