//! Host patterns (`exact`, `*.suffix`, any) and request-host normalisation.

/// A compiled host pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostPattern {
    /// Lowercased exact host.
    Exact(Box<str>),
    /// Lowercased suffix after `*.`: `*.example.com` is stored as `example.com`.
    Wildcard(Box<str>),
    /// No host constraint.
    Any,
}

/// Parses one entry of [`crate::RouteSpec::hosts`].
pub(crate) fn parse_host(raw: &str) -> Result<HostPattern, String> {
    if raw.is_empty() {
        return Err("empty host".to_owned());
    }
    if raw == "*" {
        return Ok(HostPattern::Any);
    }
    let lower = raw.to_ascii_lowercase();
    let (wild, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err(format!("host {raw:?} has nothing after the wildcard"));
    }
    if name.contains('*') {
        return Err(format!(
            "host {raw:?}: '*' is only allowed as a leading \"*.\" label"
        ));
    }
    if !name.starts_with('[') && name.contains(':') {
        return Err(format!(
            "host {raw:?}: ports are ignored when matching hosts; remove the port"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || matches!(c, '/' | '?' | '#' | '@'))
    {
        return Err(format!("host {raw:?} contains invalid character {c:?}"));
    }
    if name.starts_with('.') || name.contains("..") {
        return Err(format!("host {raw:?} has an empty label"));
    }
    Ok(if wild {
        HostPattern::Wildcard(name.into())
    } else {
        HostPattern::Exact(name.into())
    })
}

/// Longest request host (after port stripping) that is lowercased on the stack.
/// DNS names are at most 253 bytes; longer hosts can only match any-host routes.
pub(crate) const HOST_BUF: usize = 256;

/// Strips the port and a trailing dot from a request host and lowercases it,
/// without allocating: the host is returned as-is when already lowercase,
/// otherwise lowercased into `buf`. Returns `None` when the host is empty or too
/// long to be a DNS name (then only any-host routes can match).
pub(crate) fn normalize<'a>(host: &'a str, buf: &'a mut [u8; HOST_BUF]) -> Option<&'a str> {
    let host = strip_port(host);
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    if !host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some(host);
    }
    let out = buf.get_mut(..host.len())?;
    out.copy_from_slice(host.as_bytes());
    out.make_ascii_lowercase();
    // ASCII lowercasing keeps UTF-8 valid, so this never fails.
    std::str::from_utf8(out).ok()
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // IPv6 literal: keep up to and including ']'.
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.bytes().rposition(|b| b == b':') {
        Some(colon) if host.as_bytes()[colon + 1..].iter().all(u8::is_ascii_digit) => {
            &host[..colon]
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_patterns() {
        assert_eq!(
            parse_host("API.Example.com"),
            Ok(HostPattern::Exact("api.example.com".into()))
        );
        assert_eq!(
            parse_host("*.Example.com"),
            Ok(HostPattern::Wildcard("example.com".into()))
        );
        assert_eq!(parse_host("*"), Ok(HostPattern::Any));
        assert!(parse_host("").is_err());
        assert!(parse_host("*.").is_err());
        assert!(parse_host("a.*.com").is_err());
        assert!(parse_host("a.com:8080").is_err());
        assert!(parse_host("a b.com").is_err());
        assert!(parse_host("a..com").is_err());
        assert!(parse_host("[::1]").is_ok());
    }

    #[test]
    fn normalizes_request_hosts() {
        let mut buf = [0u8; HOST_BUF];
        assert_eq!(normalize("a.com", &mut buf), Some("a.com"));
        let mut buf = [0u8; HOST_BUF];
        assert_eq!(normalize("A.Com:8443", &mut buf), Some("a.com"));
        let mut buf = [0u8; HOST_BUF];
        assert_eq!(normalize("a.com.", &mut buf), Some("a.com"));
        let mut buf = [0u8; HOST_BUF];
        assert_eq!(normalize("[::1]:80", &mut buf), Some("[::1]"));
        let mut buf = [0u8; HOST_BUF];
        assert_eq!(normalize(":80", &mut buf), None);
        let long = "A".repeat(300);
        let mut buf = [0u8; HOST_BUF];
        assert_eq!(normalize(&long, &mut buf), None);
    }
}
