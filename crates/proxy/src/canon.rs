//! The canonical request path and the effective host: decided once per
//! request, before routing, and used for routing, plugins and forwarding
//! alike (docs/security.md, "Canonical path" and "Effective host").
//!
//! Pure functions, no I/O. [`path`] returns its input borrowed (no
//! allocation) when it is already canonical, which is the common case.

use std::borrow::Cow;

/// What to do with `%2F`, `%5C` and a raw `\` in a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EscapedSlashes {
    /// Refuse the request (400 `bad-path`).
    #[default]
    Reject,
    /// Keep the escape (hex upper-cased) as an opaque character of its
    /// segment; a raw `\` stays as it is.
    Keep,
    /// Decode to `/` (and `\` to `/`), then normalise.
    Decode,
}

/// Per-listener path options (config `listeners[].paths`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathOptions {
    /// `%2F`, `%5C` and raw `\`.
    pub escaped_slashes: EscapedSlashes,
    /// Merge repeated slashes (`//a` = `/a`).
    pub merge_slashes: bool,
    /// Accept `;` path parameters (`/a;v=1/b`). Off: refused.
    pub allow_semicolons: bool,
}

impl Default for PathOptions {
    fn default() -> Self {
        Self {
            escaped_slashes: EscapedSlashes::Reject,
            merge_slashes: true,
            allow_semicolons: false,
        }
    }
}

impl PathOptions {
    /// The options of a listener's `paths` block.
    pub fn from_config(c: &gatehouse_config::ListenerPaths) -> Self {
        use gatehouse_config::{EscapedSlashes as E, Semicolons};
        Self {
            escaped_slashes: match c.escaped_slashes {
                E::Reject => EscapedSlashes::Reject,
                E::Keep => EscapedSlashes::Keep,
                E::Decode => EscapedSlashes::Decode,
            },
            merge_slashes: c.merge_slashes,
            allow_semicolons: c.semicolons == Semicolons::Keep,
        }
    }
}

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// `%` not followed by two hex digits.
    #[error("malformed percent-escape in the path")]
    MalformedEscape,
    /// `%00`, another control character, raw or escaped.
    #[error("control character in the path")]
    Control,
    /// Escaped bytes that are not valid UTF-8 (overlong forms included).
    #[error("percent-escapes in the path are not valid UTF-8")]
    BadUtf8,
    /// `%2F`, `%5C` or `\` while the listener refuses them.
    #[error("encoded slash or backslash in the path")]
    EscapedSlash,
    /// `..` above the root.
    #[error("the path climbs above the root with `..`")]
    AboveRoot,
    /// `.;x` or `..;x`: a dot segment hidden behind path parameters.
    #[error("dot segment with `;` parameters in the path")]
    DotParams,
    /// A `.`/`..` piece between kept escaped slashes (`..%2F`): a server
    /// that decodes `%2F` would climb with it.
    #[error("dot segment hidden behind an encoded slash in the path")]
    HiddenDot,
    /// `;` in the path while the listener refuses path parameters.
    #[error("`;` path parameters are not accepted")]
    Semicolon,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Bytes that may need work: `%`, `\`, `;`, controls, and `/` (which is
/// checked for a following `/` or dot segment).
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[0x7f] = true;
    t[b'%' as usize] = true;
    t[b'\\' as usize] = true;
    t[b';' as usize] = true;
    t[b'/' as usize] = true;
    t
};

/// Whether `p` needs the slow path: an escape, a backslash, a `;`, a
/// control character, a repeated slash or a `.`/`..` segment. One table
/// lookup per byte; only `/` looks ahead.
fn needs_work(p: &[u8], opts: &PathOptions) -> bool {
    for (i, &b) in p.iter().enumerate() {
        if !SPECIAL[b as usize] {
            continue;
        }
        if b != b'/' {
            return true;
        }
        match p.get(i + 1) {
            Some(b'/') if opts.merge_slashes => return true,
            Some(b'.') => {
                let end = if p.get(i + 2) == Some(&b'.') {
                    i + 3
                } else {
                    i + 2
                };
                if matches!(p.get(end), None | Some(b'/')) {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// The canonical form of a request path (RFC 3986 §6.2.2 plus the
/// listener's options). The query is not part of `p`.
///
/// Rules, in order: escapes of unreserved characters are decoded, other
/// escapes get upper-case hex; `%00`, control characters and malformed or
/// non-UTF-8 escapes are refused; `%2F` / `%5C` / `\` follow
/// [`EscapedSlashes`]; repeated slashes are merged; `.` and `..` segments
/// are removed (§5.2.4), `..` above the root is refused; a segment that is
/// `.`/`..` once its `;params` are dropped is refused, and so is any `;`
/// unless the listener allows path parameters. Case is kept: paths are
/// case-sensitive. A path that does not start with `/` (`*`) is returned
/// unchanged.
pub fn path<'a>(p: &'a str, opts: &PathOptions) -> Result<Cow<'a, str>, PathError> {
    let b = p.as_bytes();
    if b.first() != Some(&b'/') || !needs_work(b, opts) {
        return Ok(Cow::Borrowed(p));
    }
    let decoded = decode(b, opts)?;
    remove_dots(&decoded, opts).map(Cow::Owned)
}

/// Percent-decoding of unreserved characters, escape checks, backslashes.
fn decode(b: &[u8], opts: &PathOptions) -> Result<String, PathError> {
    let mut out = String::with_capacity(b.len());
    // Bytes of the current run of escapes >= 0x80, checked as UTF-8.
    let mut run: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(PathError::MalformedEscape);
            };
            let v = h << 4 | l;
            i += 3;
            if v >= 0x80 {
                run.push(v);
                out.push('%');
                out.push(HEX[(v >> 4) as usize] as char);
                out.push(HEX[(v & 15) as usize] as char);
                continue;
            }
            check_run(&mut run)?;
            match v {
                0..=0x1f | 0x7f => return Err(PathError::Control),
                b'/' | b'\\' => match opts.escaped_slashes {
                    EscapedSlashes::Reject => return Err(PathError::EscapedSlash),
                    EscapedSlashes::Keep => {
                        out.push_str(if v == b'/' { "%2F" } else { "%5C" });
                    }
                    EscapedSlashes::Decode => out.push('/'),
                },
                v if is_unreserved(v) => out.push(v as char),
                v => {
                    out.push('%');
                    out.push(HEX[(v >> 4) as usize] as char);
                    out.push(HEX[(v & 15) as usize] as char);
                }
            }
            continue;
        }
        check_run(&mut run)?;
        match c {
            0..=0x1f | 0x7f => return Err(PathError::Control),
            b'\\' => match opts.escaped_slashes {
                EscapedSlashes::Reject => return Err(PathError::EscapedSlash),
                EscapedSlashes::Keep => out.push('\\'),
                EscapedSlashes::Decode => out.push('/'),
            },
            _ => {
                // `b` came from a `&str`: copy whole characters.
                let len = utf8_len(c);
                let end = (i + len).min(b.len());
                out.push_str(std::str::from_utf8(&b[i..end]).map_err(|_| PathError::BadUtf8)?);
                i = end;
                continue;
            }
        }
        i += 1;
    }
    check_run(&mut run)?;
    Ok(out)
}

fn utf8_len(first: u8) -> usize {
    match first {
        0..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

fn check_run(run: &mut Vec<u8>) -> Result<(), PathError> {
    if run.is_empty() {
        return Ok(());
    }
    let ok = std::str::from_utf8(run).is_ok_and(|s| !s.chars().any(char::is_control));
    run.clear();
    if ok { Ok(()) } else { Err(PathError::BadUtf8) }
}

/// Slash merging and dot-segment removal over a decoded path that starts
/// with `/`.
fn remove_dots(p: &str, opts: &PathOptions) -> Result<String, PathError> {
    let mut stack: Vec<&str> = Vec::new();
    let mut segs = p[1..].split('/').peekable();
    let mut trailing = false;
    while let Some(seg) = segs.next() {
        let last = segs.peek().is_none();
        let name = match seg.find(';') {
            Some(at) => {
                let name = &seg[..at];
                if name == "." || name == ".." {
                    return Err(PathError::DotParams);
                }
                if !opts.allow_semicolons {
                    return Err(PathError::Semicolon);
                }
                name
            }
            None => seg,
        };
        if opts.escaped_slashes == EscapedSlashes::Keep && pieces(seg).any(is_dot_spelling) {
            return Err(PathError::HiddenDot);
        }
        match name {
            "." => trailing = last,
            ".." => {
                if stack.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing = last;
            }
            "" if opts.merge_slashes => trailing = last,
            _ => {
                stack.push(seg);
                trailing = false;
            }
        }
    }
    let mut out = String::with_capacity(p.len());
    for s in &stack {
        out.push('/');
        out.push_str(s);
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Whether an upstream path (after strip_prefix, rewrite and the base
/// path) is canonical and free of dot segments, so it names what the route
/// matched. Escapes are allowed (kept escapes, rewrite output); `.`/`..`
/// segments, also escaped or behind `;`, are not.
pub fn upstream_path_ok(p: &str) -> bool {
    let path = p.split_once('?').map_or(p, |(path, _)| path);
    path.starts_with('/')
        && !path.bytes().any(|b| b < 0x20 || b == 0x7f)
        && path.split('/').all(|seg| !pieces(seg).any(is_dot_spelling))
}

/// The parts of a segment between escaped slashes or backslashes, each
/// without its `;params`: what a server that decodes `%2F` (or treats `\`
/// as `/`, or drops path parameters) would see as segments.
fn pieces(seg: &str) -> impl Iterator<Item = &str> {
    let b = seg.as_bytes();
    let mut start = 0;
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let sep = if b[i] == b'\\' {
            1
        } else if b[i] == b'%'
            && b.len() >= i + 3
            && (b[i + 1..i + 3].eq_ignore_ascii_case(b"2f")
                || b[i + 1..i + 3].eq_ignore_ascii_case(b"5c"))
        {
            3
        } else {
            0
        };
        if sep > 0 {
            out.push(&seg[start..i]);
            i += sep;
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(&seg[start..]);
    out.into_iter().map(|p| p.split(';').next().unwrap_or(p))
}

/// `.` or `..`, each dot possibly written `%2e` / `%2E`.
fn is_dot_spelling(s: &str) -> bool {
    let mut rest = s.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() {
        if rest[0] == b'.' {
            rest = &rest[1..];
        } else if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"%2e") {
            rest = &rest[3..];
        } else {
            return false;
        }
        dots += 1;
    }
    dots == 1 || dots == 2
}

/// Why a host was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Not `host[:port]`.
    #[error("the host {0:?} is not host[:port]")]
    Invalid(String),
    /// HTTP/2 `:authority` and `host` disagree.
    #[error("`:authority` {0:?} and `host` {1:?} disagree")]
    Disagree(String, String),
}

/// The effective host in its one canonical spelling: a lower-case reg-name
/// or IP literal without a trailing dot, with the port when one was given
/// (`Api.Example.:8080` → `api.example:8080`). Refuses anything that is not
/// `host[:port]`: userinfo, percent-escapes, spaces, commas (several hosts),
/// an empty or non-numeric port, a port above 65535, an empty host.
pub fn host(raw: &str) -> Result<Cow<'_, str>, HostError> {
    let bad = || HostError::Invalid(raw.chars().take(100).collect());
    let b = raw.as_bytes();
    // The name: an IPv6 literal, or one pass over a reg-name / IPv4.
    let mut upper = false;
    let (name_end, dot) = if b.first() == Some(&b'[') {
        let end = raw.find(']').ok_or_else(bad)?;
        if raw[1..end].parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad());
        }
        upper = raw[..end].bytes().any(|c| c.is_ascii_uppercase());
        (end + 1, false)
    } else {
        let mut end = b.len();
        let mut prev = b'.';
        for (i, &c) in b.iter().enumerate() {
            match c {
                b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => {}
                b'A'..=b'Z' => upper = true,
                // An empty label (leading dot, `..`) is refused.
                b'.' if prev == b'.' => return Err(bad()),
                b'.' => {}
                b':' => {
                    end = i;
                    break;
                }
                _ => return Err(bad()),
            }
            prev = c;
        }
        let dot = end > 0 && b[end - 1] == b'.';
        let bare = end - usize::from(dot);
        if bare == 0 || bare > 253 {
            return Err(bad());
        }
        (end, dot)
    };
    let port = &raw[name_end..];
    if !port.is_empty() {
        let digits = port.strip_prefix(':').ok_or_else(bad)?.as_bytes();
        let mut n: u32 = 0;
        for &d in digits {
            if !d.is_ascii_digit() {
                return Err(bad());
            }
            n = n * 10 + u32::from(d - b'0');
            if n > 65535 {
                return Err(bad());
            }
        }
        if digits.is_empty() || digits.len() > 5 {
            return Err(bad());
        }
    }
    if !dot && !upper {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    out.push_str(&raw[..name_end - usize::from(dot)]);
    out.push_str(port);
    out.make_ascii_lowercase();
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, opts: PathOptions, expect: Result<&str, PathError>) {
        let got = path(input, &opts);
        assert_eq!(
            got.as_deref().map_err(Clone::clone),
            expect,
            "path {input:?} with {opts:?}"
        );
    }

    const D: PathOptions = PathOptions {
        escaped_slashes: EscapedSlashes::Reject,
        merge_slashes: true,
        allow_semicolons: false,
    };

    #[test]
    fn canonical_paths_are_borrowed() {
        for p in [
            "/",
            "/a",
            "/a/b/",
            "/a.b/c..d/.e/..f/e.",
            "/admin/secret",
            "*",
            "/ü/x",
            "/.well-known/x",
            "/a/..b/.c.",
        ] {
            let got = path(p, &D).unwrap();
            assert!(matches!(got, Cow::Borrowed(_)), "{p:?} allocated");
            assert_eq!(got, p);
        }
    }

    #[test]
    fn table() {
        use PathError::*;
        let cases: &[(&str, Result<&str, PathError>)] = &[
            ("/public/../admin/secret", Ok("/admin/secret")),
            ("//admin/secret", Ok("/admin/secret")),
            ("/a//b///c", Ok("/a/b/c")),
            ("/%61dmin/secret", Ok("/admin/secret")),
            ("/%2e%2e/admin", Err(AboveRoot)),
            ("/public/%2e%2e/admin", Ok("/admin")),
            ("/public/%2E%2E/admin", Ok("/admin")),
            ("/./admin", Ok("/admin")),
            ("/a/.", Ok("/a/")),
            ("/a/..", Ok("/")),
            ("/a/b/..", Ok("/a/")),
            ("/..", Err(AboveRoot)),
            ("/../a", Err(AboveRoot)),
            ("/a/../../b", Err(AboveRoot)),
            ("/admin%2fsecret", Err(EscapedSlash)),
            ("/admin%2Fsecret", Err(EscapedSlash)),
            ("/admin%5csecret", Err(EscapedSlash)),
            ("/admin\\secret", Err(EscapedSlash)),
            ("/public/..%2fadmin", Err(EscapedSlash)),
            ("/admin;x/secret", Err(Semicolon)),
            ("/public/..;/admin/secret", Err(DotParams)),
            ("/public/.;x/admin", Err(DotParams)),
            ("/ADMIN/secret", Ok("/ADMIN/secret")),
            ("/%2561dmin", Ok("/%2561dmin")),
            ("/%c0%ae%c0%ae/admin", Err(BadUtf8)),
            ("/%e0%80%ae", Err(BadUtf8)),
            ("/%ff", Err(BadUtf8)),
            ("/%c3%bc", Ok("/%C3%BC")),
            ("/%C3", Err(BadUtf8)),
            ("/%c2%85", Err(BadUtf8)),
            ("/a%00b", Err(Control)),
            ("/a%0ab", Err(Control)),
            ("/a%7f", Err(Control)),
            ("/a\tb", Err(Control)),
            ("/%zz", Err(MalformedEscape)),
            ("/%4", Err(MalformedEscape)),
            ("/%", Err(MalformedEscape)),
            ("/a%20b", Ok("/a%20b")),
            ("/a%3fb", Ok("/a%3Fb")),
            ("/%7e%2D%5f%2E", Ok("/~-_.")),
            ("/a/%2E/b", Ok("/a/b")),
            ("/a/.%2e/b", Ok("/b")),
            ("/a/...", Ok("/a/...")),
            ("/a/b/./../c/", Ok("/a/c/")),
            ("/ü/../x", Ok("/x")),
        ];
        for (input, expect) in cases {
            check(input, D, expect.clone());
        }
    }

    #[test]
    fn options() {
        let keep = PathOptions {
            escaped_slashes: EscapedSlashes::Keep,
            ..D
        };
        check("/admin%2fsecret", keep, Ok("/admin%2Fsecret"));
        check("/a\\b", keep, Ok("/a\\b"));
        check("/public/..%2fadmin", keep, Err(PathError::HiddenDot));
        check("/public/a%2F.%2Fb", keep, Err(PathError::HiddenDot));
        check("/public/a\\..\\b", keep, Err(PathError::HiddenDot));
        check("/a%2F..b", keep, Ok("/a%2F..b"));
        let decode = PathOptions {
            escaped_slashes: EscapedSlashes::Decode,
            ..D
        };
        check("/admin%2fsecret", decode, Ok("/admin/secret"));
        check("/public/..%2fadmin", decode, Ok("/admin"));
        check("/public\\..\\admin", decode, Ok("/admin"));
        check("/a%2f%2fb", decode, Ok("/a/b"));
        let no_merge = PathOptions {
            merge_slashes: false,
            ..D
        };
        check("//admin", no_merge, Ok("//admin"));
        check("/a//../b", no_merge, Ok("/a/b"));
        check("/./a//b", no_merge, Ok("/a//b"));
        let semi = PathOptions {
            allow_semicolons: true,
            ..D
        };
        check("/a;v=1/b", semi, Ok("/a;v=1/b"));
        check("/a/..;/b", semi, Err(PathError::DotParams));
    }

    #[test]
    fn output_is_a_fixed_point() {
        for input in [
            "/public/../admin/secret",
            "//a//b/",
            "/%61/%2e/x",
            "/a/%c3%bc/../b",
        ] {
            let once = path(input, &D).unwrap().into_owned();
            assert_eq!(path(&once, &D).unwrap(), once, "{input:?}");
        }
    }

    #[test]
    fn upstream_paths() {
        assert!(upstream_path_ok("/a/b"));
        assert!(upstream_path_ok("/base/a%2Fb"));
        assert!(upstream_path_ok("/a/b?x=../y"));
        assert!(!upstream_path_ok("/base/../admin"));
        assert!(!upstream_path_ok("/base/%2e%2E/admin"));
        assert!(!upstream_path_ok("/base/..;/admin"));
        assert!(!upstream_path_ok("/base/."));
        assert!(!upstream_path_ok("a/b"));
        assert!(!upstream_path_ok("/public/..%2F..%2Fadmin"));
        assert!(!upstream_path_ok("/public/x%5C..%5Cadmin"));
        assert!(upstream_path_ok("/public/a%2Fb"));
    }

    fn check_host(input: &str, expect: Result<&str, ()>) {
        assert_eq!(
            host(input).as_deref().map_err(|_| ()),
            expect,
            "host {input:?}"
        );
    }

    #[test]
    fn hosts() {
        check_host("api.example", Ok("api.example"));
        check_host("API.Example", Ok("api.example"));
        check_host("internal.example.", Ok("internal.example"));
        check_host("INTERNAL.EXAMPLE.", Ok("internal.example"));
        check_host("internal.example.:8080", Ok("internal.example:8080"));
        check_host("a.b:0", Ok("a.b:0"));
        check_host("a.b:65535", Ok("a.b:65535"));
        check_host("127.0.0.1:80", Ok("127.0.0.1:80"));
        check_host("[::1]", Ok("[::1]"));
        check_host("[::1]:8080", Ok("[::1]:8080"));
        check_host("[FE80::1]", Ok("[fe80::1]"));
        for bad in [
            "",
            "internal.example:x",
            "internal.example:",
            "a.b:65536",
            "a.b:123456",
            "a@b",
            "user@internal.example",
            "a b",
            "a,b",
            "a.example, b.example",
            "a%2eb",
            "[::1",
            "[zz]",
            "[::1]x",
            "::1",
            "a..b",
            ".a",
            ".",
            ":80",
            "a/b",
        ] {
            check_host(bad, Err(()));
        }
        assert!(matches!(host("api.example").unwrap(), Cow::Borrowed(_)));
    }
}
