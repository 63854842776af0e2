//! The input of the router: one [`RouteSpec`] per configured route, and its value matchers.

use crate::error::ValueMatchError;

/// The matching part of one route, as given to [`crate::Router::build`].
///
/// Every non-empty predicate must hold for the route to match; an empty list
/// means "anything". The route is identified by its index in the list given to
/// `build`.
#[derive(Debug, Clone, Default)]
pub struct RouteSpec {
    /// `api.example.com` (exact) or `*.example.com` (any subdomain, one or more
    /// labels deep, but not the apex `example.com`). `*` alone means any host,
    /// like an empty list. Case-insensitive; the request's `:port` is ignored,
    /// so a port here is a build error.
    pub hosts: Vec<String>,
    /// Path patterns, see the [crate docs](crate#path-syntax). Empty = any path.
    pub paths: Vec<String>,
    /// Allowed methods. Empty = any method.
    pub methods: Vec<http::Method>,
    /// Request headers that must all match (any one value of a repeated header
    /// is enough).
    pub headers: Vec<(http::HeaderName, ValueMatch)>,
    /// Query parameters (by raw, undecoded name) that must all match (any one
    /// occurrence of a repeated parameter is enough). Values are compared raw,
    /// without percent- or `+`-decoding.
    pub query: Vec<(String, ValueMatch)>,
    /// The API version this route serves.
    pub version: Option<VersionSpec>,
    /// Higher wins over every other ranking criterion. Default 0.
    pub priority: i32,
}

/// How a header or query value is matched.
#[derive(Debug, Clone)]
pub enum ValueMatch {
    /// The value equals this string, byte for byte (case-sensitive).
    Exact(String),
    /// The value equals one of these strings.
    OneOf(Vec<String>),
    /// The regex matches the value; it is used as written, so write `^...$` to
    /// anchor it. Values that are not UTF-8 never match.
    Regex(regex::Regex),
    /// The header or parameter is present, whatever its value (even empty).
    Present,
}

impl ValueMatch {
    /// Parses the config shorthand: `*` is [`ValueMatch::Present`], `~<re>` is
    /// [`ValueMatch::Regex`] (anchored only as written), anything else is
    /// [`ValueMatch::Exact`].
    ///
    /// # Errors
    /// [`ValueMatchError::Regex`] when the text after `~` is not a valid regex.
    pub fn parse(s: &str) -> Result<Self, ValueMatchError> {
        if s == "*" {
            return Ok(Self::Present);
        }
        if let Some(re) = s.strip_prefix('~') {
            return regex::Regex::new(re).map(Self::Regex).map_err(|source| {
                ValueMatchError::Regex {
                    pattern: re.to_owned(),
                    source,
                }
            });
        }
        Ok(Self::Exact(s.to_owned()))
    }

    /// Whether `value` satisfies this matcher.
    pub fn matches(&self, value: &[u8]) -> bool {
        match self {
            Self::Exact(s) => s.as_bytes() == value,
            Self::OneOf(list) => list.iter().any(|s| s.as_bytes() == value),
            Self::Regex(re) => std::str::from_utf8(value).is_ok_and(|v| re.is_match(v)),
            Self::Present => true,
        }
    }
}

/// The API version a route serves, and where the request carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionSpec {
    /// The version string, compared exactly (e.g. `v2`, `2024-01-01`).
    pub value: String,
    /// Where the request carries the version.
    pub source: VersionSource,
    /// The route also matches requests that carry no version at all: the header
    /// or query parameter is absent, or (for [`VersionSource::PathSegment`]) the
    /// route's paths are also matched without a leading version segment.
    pub default: bool,
}

/// Where a request carries its API version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSource {
    /// A request header whose value must equal the version.
    Header(http::HeaderName),
    /// A query parameter (raw name) whose raw value must equal the version.
    Query(String),
    /// The first path segment: `/v2/users/7` carries `v2`, and the route's paths
    /// are matched against the remainder (`/users/7`).
    /// [`crate::RouteMatch::version_prefix`] reports the bytes consumed (`3`).
    PathSegment,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_shorthands() {
        assert!(matches!(ValueMatch::parse("*"), Ok(ValueMatch::Present)));
        assert!(matches!(ValueMatch::parse("abc"), Ok(ValueMatch::Exact(s)) if s == "abc"));
        assert!(matches!(
            ValueMatch::parse("~^a+$"),
            Ok(ValueMatch::Regex(_))
        ));
        assert!(matches!(
            ValueMatch::parse("~("),
            Err(ValueMatchError::Regex { .. })
        ));
    }

    #[test]
    fn matching_values() {
        let re = ValueMatch::parse("~^v[0-9]+$").unwrap();
        assert!(re.matches(b"v12"));
        assert!(!re.matches(b"xv12"));
        assert!(!re.matches(&[0xff, 0xfe]));
        let unanchored = ValueMatch::parse("~beta").unwrap();
        assert!(unanchored.matches(b"is-beta-user"));
        let one = ValueMatch::OneOf(vec!["a".into(), "b".into()]);
        assert!(one.matches(b"b"));
        assert!(!one.matches(b"c"));
        assert!(ValueMatch::Exact("X".into()).matches(b"X"));
        assert!(!ValueMatch::Exact("X".into()).matches(b"x"));
        assert!(ValueMatch::Present.matches(b""));
    }
}
