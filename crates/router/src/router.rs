//! The compiled route table: [`Router::build`] and the hot path, [`Router::find`].

use std::cmp::Reverse;
use std::sync::Arc;

use http::{HeaderMap, Method};

use crate::error::BuildError;
use crate::hash::FxMap;
use crate::host::{self, HOST_BUF, HostPattern};
use crate::path::{self, Leaf, LeafKind, ListLeaf, Node, PathPattern, Segment, Spans};
use crate::spec::{RouteSpec, ValueMatch, VersionSource, VersionSpec};

/// What the router looks at in a request. Borrowed, so building one is free.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// The `Host` header or `:authority`, port allowed; `None` = only routes
    /// without `hosts` can match.
    pub host: Option<&'a str>,
    /// The path component of the request target, without the query string and
    /// not percent-decoded. A path that does not start with `/` (`*`, for
    /// instance) only matches routes without paths, and regex routes.
    pub path: &'a str,
    /// The request method.
    pub method: &'a Method,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The raw query string (after `?`), if any.
    pub query: Option<&'a str>,
}

impl<'a> RequestInfo<'a> {
    /// Borrows what the router needs from an `http::Request`. The host is the
    /// URI authority when present (HTTP/2, absolute-form), else the `Host` header.
    pub fn from_request<B>(req: &'a http::Request<B>) -> Self {
        let uri = req.uri();
        let host = uri.host().or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
        });
        Self {
            host,
            path: uri.path(),
            method: req.method(),
            headers: req.headers(),
            query: uri.query(),
        }
    }
}

/// The answer of [`Router::find`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// A route matched.
    Found(RouteMatch),
    /// Routes matched everything but the method: answer 405 with `Allow`. The
    /// methods are the union of those routes' methods, deduplicated and sorted
    /// by name.
    MethodNotAllowed {
        /// Methods that would have matched.
        allowed: Vec<Method>,
    },
    /// No route matched: answer 404.
    NotFound,
}

/// The route that won, and what its path pattern captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// Index of the route in the specs given to [`Router::build`].
    pub route: usize,
    /// `{name}` / `{*name}` template captures in path order, or the named groups
    /// of a regex path that took part in the match. Values are the raw request
    /// bytes: **not** percent-decoded (`/users/a%2Fb` captures `a%2Fb`), so a
    /// rewrite can forward them unchanged. A catch-all captures the remainder
    /// without its leading `/` (`/files/{*rest}` on `/files/a/b` gives `a/b`).
    pub captures: Vec<(Arc<str>, String)>,
    /// Bytes at the start of the request path that the pattern consumed, for
    /// `strip_prefix`: the whole path for exact and template patterns; the
    /// prefix (without the trailing `/`) for `/*` patterns; the end of the regex
    /// match when it starts at the beginning of the path, else 0; 0 for routes
    /// without paths. Counted from the start of the full request path, so it
    /// includes `version_prefix`.
    pub matched_prefix: usize,
    /// Bytes of a leading version segment (`/v2` = 3) consumed by a
    /// [`VersionSource::PathSegment`] route, else 0.
    pub version_prefix: usize,
}

/// An immutable, compiled route table. `Send + Sync`; share it in an `Arc`.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<CompiledRoute>,
    exact_hosts: FxMap<Box<str>, Bucket>,
    /// Keyed by the suffix after `*.`.
    wildcard_hosts: FxMap<Box<str>, Bucket>,
    /// Bit `n` set when some wildcard suffix is `n` bytes long (bit 127: 127 or
    /// more), so most suffixes of a request host are skipped without hashing.
    wildcard_lens: u128,
    any_host: Bucket,
}

/// The predicates of one route that the index does not already enforce.
#[derive(Debug)]
struct CompiledRoute {
    methods: Vec<Method>,
    headers: Vec<(http::HeaderName, ValueMatch)>,
    query: Vec<(String, ValueMatch)>,
    /// Header or query versions only; path-segment versions live in the index.
    version: Option<VersionSpec>,
    priority: i32,
    predicates: u32,
}

/// All routes for one host pattern.
#[derive(Debug, Default)]
struct Bucket {
    trie: Node,
    /// Regex paths, grouped by required version segment.
    regexes: Vec<RegexGroup>,
    /// Routes without paths, by priority (highest first), then route index.
    pathless: Vec<ListLeaf>,
}

/// Regex routes sharing one required version segment (or none), with a
/// [`regex::RegexSet`] over all of them to reject a non-matching path in one pass.
#[derive(Debug)]
struct RegexGroup {
    version_segment: Option<Box<str>>,
    set: Option<regex::RegexSet>,
    /// By priority (highest first), then route index.
    leaves: Vec<ListLeaf>,
}

/// The ranking key; the greatest wins. Field order is the tie-break order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    priority: i32,
    /// (2 exact | 1 wildcard | 0 any, suffix length).
    host: (u8, u32),
    /// (class, a, b): exact 4; template 3 (static segments, 1 if no catch-all);
    /// prefix 2 (matched bytes, static segments); regex 1; no path 0.
    path: (u8, u32, u32),
    predicates: u32,
    index: Reverse<u32>,
}

const PATH_NONE: u8 = 0;
const PATH_REGEX: u8 = 1;

fn sat_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Router {
    /// Compiles route specs into a router. Route `i` of the result is `specs[i]`.
    ///
    /// # Errors
    /// The first spec that cannot be compiled, with its index and field: an
    /// empty, relative or malformed path, a bad regex, a bad host, an empty
    /// version or query parameter name.
    pub fn build(specs: Vec<RouteSpec>) -> Result<Router, BuildError> {
        let mut router = Router::default();
        router.routes.reserve(specs.len());
        for (i, spec) in specs.into_iter().enumerate() {
            let route = u32::try_from(i)
                .map_err(|_| BuildError::new(i, "", "too many routes (more than 2^32)"))?;
            let hosts = spec
                .hosts
                .iter()
                .enumerate()
                .map(|(h, raw)| {
                    host::parse_host(raw).map_err(|m| BuildError::new(i, format!("hosts[{h}]"), m))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let paths = spec
                .paths
                .iter()
                .enumerate()
                .map(|(p, raw)| {
                    path::parse_path(raw).map_err(|m| BuildError::new(i, format!("paths[{p}]"), m))
                })
                .collect::<Result<Vec<_>, _>>()?;
            for (q, (name, _)) in spec.query.iter().enumerate() {
                if name.is_empty() {
                    return Err(BuildError::new(
                        i,
                        format!("query[{q}]"),
                        "empty query parameter name",
                    ));
                }
            }
            let mut version_segments: Vec<Option<Box<str>>> = vec![None];
            let mut version_prefix = 0u16;
            if let Some(v) = &spec.version {
                check_version(v).map_err(|m| BuildError::new(i, "version", m))?;
                if v.source == VersionSource::PathSegment {
                    version_prefix = u16::try_from(v.value.len() + 1)
                        .map_err(|_| BuildError::new(i, "version", "version segment too long"))?;
                    version_segments = vec![Some(v.value.as_str().into())];
                    if v.default {
                        version_segments.push(None);
                    }
                }
            }

            let hosts = if hosts.is_empty() {
                vec![HostPattern::Any]
            } else {
                hosts
            };
            for h in &hosts {
                let bucket = router.bucket_mut(h);
                for vseg in &version_segments {
                    let vp = if vseg.is_some() { version_prefix } else { 0 };
                    if paths.is_empty() {
                        bucket.pathless.push(ListLeaf {
                            route,
                            priority: spec.priority,
                            regex: None,
                            version_segment: vseg.clone(),
                        });
                    }
                    for p in &paths {
                        bucket.insert(route, spec.priority, p, vseg.as_deref(), vp);
                    }
                }
            }

            let predicates = u32::from(!spec.methods.is_empty())
                + sat_u32(spec.headers.len())
                + sat_u32(spec.query.len())
                + u32::from(spec.version.is_some());
            router.routes.push(CompiledRoute {
                methods: spec.methods,
                headers: spec.headers,
                query: spec.query,
                version: spec
                    .version
                    .filter(|v| v.source != VersionSource::PathSegment),
                priority: spec.priority,
                predicates,
            });
        }
        router.any_host.freeze();
        router.exact_hosts.values_mut().for_each(Bucket::freeze);
        router.wildcard_hosts.values_mut().for_each(Bucket::freeze);
        Ok(router)
    }

    /// Number of routes (specs) the router was built from.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the router has no routes (and so answers `NotFound` to everything).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Finds the route for a request.
    ///
    /// Allocates only for what it returns (captures, the `MethodNotAllowed`
    /// list); regex paths also use the regex crate's pooled match caches.
    pub fn find(&self, req: &RequestInfo<'_>) -> Match {
        let mut buf = [0u8; HOST_BUF];
        let host = req.host.and_then(|h| host::normalize(h, &mut buf));

        let mut search = Search {
            router: self,
            req,
            best: None,
            method_mismatch: false,
            allowed: None,
        };
        self.visit_buckets(host, |bucket, rank| search.bucket(bucket, rank));
        if let Some(best) = search.best {
            return Match::Found(best.into_match(req.path));
        }
        if !search.method_mismatch {
            return Match::NotFound;
        }
        // Rare path: walk again, this time collecting the methods of every
        // route that matched all but its method.
        search.allowed = Some(Vec::new());
        self.visit_buckets(host, |bucket, rank| search.bucket(bucket, rank));
        let mut allowed = search.allowed.unwrap_or_default();
        allowed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        allowed.dedup();
        Match::MethodNotAllowed { allowed }
    }

    fn visit_buckets<'r>(&'r self, host: Option<&str>, mut f: impl FnMut(&'r Bucket, (u8, u32))) {
        if let Some(host) = host {
            if let Some(b) = self.exact_hosts.get(host) {
                f(b, (2, 0));
            }
            if !self.wildcard_hosts.is_empty() {
                // Every proper suffix that starts after a dot: for a.b.c that is b.c, c.
                let dots = host.bytes().enumerate().filter(|&(_, b)| b == b'.');
                for (dot, _) in dots {
                    let suffix = &host[dot + 1..];
                    if self.wildcard_lens & len_bit(suffix.len()) == 0 {
                        continue;
                    }
                    if let Some(b) = self.wildcard_hosts.get(suffix) {
                        f(b, (1, sat_u32(suffix.len())));
                    }
                }
            }
        }
        f(&self.any_host, (0, 0));
    }

    fn bucket_mut(&mut self, host: &HostPattern) -> &mut Bucket {
        match host {
            HostPattern::Exact(h) => self.exact_hosts.entry(h.clone()).or_default(),
            HostPattern::Wildcard(s) => {
                self.wildcard_lens |= len_bit(s.len());
                self.wildcard_hosts.entry(s.clone()).or_default()
            }
            HostPattern::Any => &mut self.any_host,
        }
    }
}

/// The [`Router::wildcard_lens`] bit for a suffix of `len` bytes.
fn len_bit(len: usize) -> u128 {
    1u128 << len.min(127)
}

fn check_version(v: &VersionSpec) -> Result<(), String> {
    if v.value.is_empty() {
        return Err("empty version value".to_owned());
    }
    match &v.source {
        VersionSource::PathSegment => {
            if v.value.contains(['/', '?', '#', '{', '}', '*']) {
                return Err(format!(
                    "version {:?} cannot be a path segment: it contains a reserved character",
                    v.value
                ));
            }
        }
        VersionSource::Query(name) if name.is_empty() => {
            return Err("empty version query parameter name".to_owned());
        }
        VersionSource::Query(_) | VersionSource::Header(_) => {}
    }
    Ok(())
}

impl Bucket {
    fn insert(
        &mut self,
        route: u32,
        priority: i32,
        pattern: &PathPattern,
        version: Option<&str>,
        version_prefix: u16,
    ) {
        match pattern {
            PathPattern::Regex(re) => {
                let leaf = ListLeaf {
                    route,
                    priority,
                    regex: Some(re.clone()),
                    version_segment: version.map(Into::into),
                };
                match self
                    .regexes
                    .iter_mut()
                    .find(|g| g.version_segment.as_deref() == version)
                {
                    Some(group) => group.leaves.push(leaf),
                    None => self.regexes.push(RegexGroup {
                        version_segment: version.map(Into::into),
                        set: None,
                        leaves: vec![leaf],
                    }),
                }
            }
            PathPattern::Segments { segments, tail } => {
                let statics = segments
                    .iter()
                    .filter(|s| matches!(s, Segment::Literal(_)))
                    .count();
                let statics = u16::try_from(statics).unwrap_or(u16::MAX);
                let params = segments.len() - usize::from(statics);
                let kind = match tail {
                    path::Tail::Prefix => LeafKind::Prefix { statics },
                    path::Tail::CatchAll(_) => LeafKind::Template {
                        statics,
                        catch_all: true,
                    },
                    path::Tail::End if params > 0 => LeafKind::Template {
                        statics,
                        catch_all: false,
                    },
                    path::Tail::End => LeafKind::Exact,
                };
                let leaf = Leaf {
                    route,
                    kind,
                    names: pattern.capture_names().into(),
                    version_prefix,
                };
                match version {
                    Some(v) => {
                        let mut full = Vec::with_capacity(segments.len() + 1);
                        full.push(Segment::Literal(v.into()));
                        full.extend(segments.iter().cloned());
                        self.trie.insert(&full, tail, leaf);
                    }
                    None => self.trie.insert(segments, tail, leaf),
                }
            }
        }
    }

    fn freeze(&mut self) {
        self.trie.freeze();
        // Stable sorts: equal priorities keep route order.
        for group in &mut self.regexes {
            group.leaves.sort_by_key(|l| Reverse(l.priority));
            if group.leaves.len() > 1 {
                let patterns = group
                    .leaves
                    .iter()
                    .filter_map(|l| l.regex.as_ref().map(regex::Regex::as_str));
                // A set too big for the regex size limits just means no prefilter.
                group.set = regex::RegexSet::new(patterns).ok();
            }
        }
        self.pathless.sort_by_key(|l| Reverse(l.priority));
    }
}

/// What the winning candidate captured; resolved into strings only at the end.
#[derive(Debug, Clone, Copy)]
enum Captured<'r> {
    None,
    /// Capture names; the values are the spans in [`Best::spans`].
    Spans(&'r Arc<[Arc<str>]>),
    /// The regex and the byte offset of its input in the path.
    Regex(&'r regex::Regex, usize),
}

#[derive(Debug, Clone, Copy)]
struct Best<'r> {
    rank: Rank,
    matched_prefix: usize,
    version_prefix: usize,
    captured: Captured<'r>,
    spans: Spans,
}

impl Best<'_> {
    fn into_match(self, path: &str) -> RouteMatch {
        let captures = match self.captured {
            Captured::None => Vec::new(),
            Captured::Spans(names) => names
                .iter()
                .zip(self.spans.as_slice())
                .map(|(n, &(s, e))| (n.clone(), path.get(s..e).unwrap_or_default().to_owned()))
                .collect(),
            Captured::Regex(re, offset) => {
                let input = path.get(offset..).unwrap_or_default();
                match re.captures(input) {
                    Some(caps) => re
                        .capture_names()
                        .flatten()
                        .filter_map(|n| caps.name(n).map(|m| (Arc::from(n), m.as_str().to_owned())))
                        .collect(),
                    None => Vec::new(),
                }
            }
        };
        RouteMatch {
            route: self.rank.index.0 as usize,
            captures,
            matched_prefix: self.matched_prefix,
            version_prefix: self.version_prefix,
        }
    }
}

/// What a candidate consumed and captured (spans passed separately).
#[derive(Debug, Clone, Copy)]
struct Found<'r> {
    matched_prefix: usize,
    version_prefix: usize,
    captured: Captured<'r>,
}

static NO_SPANS: Spans = Spans::new();

/// The state of one `find`.
struct Search<'r, 'q> {
    router: &'r Router,
    req: &'q RequestInfo<'q>,
    best: Option<Best<'r>>,
    /// Some candidate failed only its method.
    method_mismatch: bool,
    /// Second pass: collect allowed methods instead of picking a winner.
    allowed: Option<Vec<Method>>,
}

impl<'r> Search<'r, '_> {
    fn bucket(&mut self, bucket: &'r Bucket, host: (u8, u32)) {
        let path = self.req.path;
        if path.starts_with('/') {
            bucket.trie.walk(
                path,
                &mut |leaf: &'r Leaf, spans: &Spans, consumed: usize| {
                    let path_rank = match leaf.kind {
                        LeafKind::Exact => (4, 0, 0),
                        LeafKind::Template { statics, catch_all } => {
                            (3, u32::from(statics), u32::from(!catch_all))
                        }
                        LeafKind::Prefix { statics } => (2, sat_u32(consumed), u32::from(statics)),
                    };
                    let captured = if leaf.names.is_empty() {
                        Captured::None
                    } else {
                        Captured::Spans(&leaf.names)
                    };
                    let found = Found {
                        matched_prefix: consumed,
                        version_prefix: usize::from(leaf.version_prefix),
                        captured,
                    };
                    self.consider(leaf.route, host, path_rank, found, spans);
                },
            );
        }

        for group in &bucket.regexes {
            self.regex_group(group, host);
        }

        for leaf in &bucket.pathless {
            if self.cannot_beat(leaf.priority, host, PATH_NONE) {
                break;
            }
            let offset = match &leaf.version_segment {
                Some(v) => match path::strip_version(path, v) {
                    Some(_) => v.len() + 1,
                    None => continue,
                },
                None => 0,
            };
            let found = Found {
                matched_prefix: offset,
                version_prefix: offset,
                captured: Captured::None,
            };
            self.consider(leaf.route, host, (PATH_NONE, 0, 0), found, &NO_SPANS);
        }
    }

    /// Regex routes: the last resort, tried only while one could still win.
    fn regex_group(&mut self, group: &'r RegexGroup, host: (u8, u32)) {
        let path = self.req.path;
        let offset = match &group.version_segment {
            Some(v) => match path::strip_version(path, v) {
                Some(_) => v.len() + 1,
                None => return,
            },
            None => 0,
        };
        let input = path.get(offset..).unwrap_or_default();
        let Some(first) = group.leaves.first() else {
            return;
        };
        if self.cannot_beat(first.priority, host, PATH_REGEX) {
            return;
        }
        // One pass over all patterns rules out the common case: none matches.
        if let Some(set) = &group.set
            && !set.is_match(input)
        {
            return;
        }
        for leaf in &group.leaves {
            if self.cannot_beat(leaf.priority, host, PATH_REGEX) {
                break;
            }
            let Some(re) = &leaf.regex else { continue };
            if !self.could_win(leaf.route, host, (PATH_REGEX, 0, 0)) {
                continue;
            }
            let Some(m) = re.find(input) else { continue };
            let matched_prefix = if m.start() == 0 {
                offset + m.end()
            } else {
                offset
            };
            let captured = if re.captures_len() > 1 {
                Captured::Regex(re, offset)
            } else {
                Captured::None
            };
            let found = Found {
                matched_prefix,
                version_prefix: offset,
                captured,
            };
            self.consider(leaf.route, host, (PATH_REGEX, 0, 0), found, &NO_SPANS);
        }
    }

    /// True when no route of this priority, host and path class can beat the
    /// best so far (lists are sorted by priority, so the caller can stop).
    fn cannot_beat(&self, priority: i32, host: (u8, u32), class: u8) -> bool {
        self.best.as_ref().is_some_and(|b| {
            (priority, host, class) < (b.rank.priority, b.rank.host, b.rank.path.0)
        })
    }

    fn rank(&self, route: u32, host: (u8, u32), path: (u8, u32, u32)) -> Option<Rank> {
        let r = self.router.routes.get(route as usize)?;
        Some(Rank {
            priority: r.priority,
            host,
            path,
            predicates: r.predicates,
            index: Reverse(route),
        })
    }

    fn could_win(&self, route: u32, host: (u8, u32), path: (u8, u32, u32)) -> bool {
        match (&self.best, self.rank(route, host, path)) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(b), Some(rank)) => rank > b.rank,
        }
    }

    fn consider(
        &mut self,
        route: u32,
        host: (u8, u32),
        path: (u8, u32, u32),
        found: Found<'r>,
        spans: &Spans,
    ) {
        let Some(rank) = self.rank(route, host, path) else {
            return;
        };
        if let Some(b) = &self.best
            && rank <= b.rank
        {
            return;
        }
        let Some(r) = self.router.routes.get(route as usize) else {
            return;
        };
        if !predicates_hold(r, self.req) {
            return;
        }
        // `HEAD` is implied by `GET` (RFC 9110 section 9.3.2: every server
        // that serves GET serves HEAD). Otherwise a HEAD request skips a
        // GET-only route, protections and all, for a less specific route,
        // and the upstream runs it as a GET without the body.
        let method_ok = r.methods.is_empty()
            || r.methods.contains(self.req.method)
            || (*self.req.method == Method::HEAD && r.methods.contains(&Method::GET));
        if let Some(allowed) = &mut self.allowed {
            if !method_ok {
                allowed.extend(r.methods.iter().cloned());
            }
            return;
        }
        if !method_ok {
            self.method_mismatch = true;
            return;
        }
        self.best = Some(Best {
            rank,
            matched_prefix: found.matched_prefix,
            version_prefix: found.version_prefix,
            captured: found.captured,
            spans: *spans,
        });
    }
}

/// Headers, query and header/query version (not the method, not the path).
fn predicates_hold(r: &CompiledRoute, req: &RequestInfo<'_>) -> bool {
    if let Some(v) = &r.version {
        let ok = match &v.source {
            VersionSource::Header(name) => {
                let mut values = req.headers.get_all(name).iter().peekable();
                if values.peek().is_none() {
                    v.default
                } else {
                    values.any(|h| h.as_bytes() == v.value.as_bytes())
                }
            }
            VersionSource::Query(name) => {
                let mut values = decoded_query_values(req.query, name).peekable();
                if values.peek().is_none() {
                    v.default
                } else {
                    values.any(|q| *q == *v.value.as_bytes())
                }
            }
            VersionSource::PathSegment => true,
        };
        if !ok {
            return false;
        }
    }
    r.headers.iter().all(|(name, vm)| {
        req.headers
            .get_all(name)
            .iter()
            .any(|h| vm.matches(h.as_bytes()))
    }) && r
        .query
        .iter()
        .all(|(name, vm)| decoded_query_values(req.query, name).any(|q| vm.matches(&q)))
}

/// Values of the query parameter `name` as the upstream's framework reads
/// them (`application/x-www-form-urlencoded`): names and values
/// percent-decoded, `+` as a space. Route `query` matchers and query
/// versions compare these, so `?%61dmin=%31` is `admin=1` for routing as it
/// is for Flask, PHP or Express; a raw comparison let that spelling skip a
/// route selected by `admin=1` and reach the upstream through a less
/// specific one. Borrowed when nothing needs decoding.
pub fn decoded_query_values<'q>(
    query: Option<&'q str>,
    name: &'q str,
) -> impl Iterator<Item = std::borrow::Cow<'q, [u8]>> {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(move |pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (*form_decode(k) == *name.as_bytes()).then(|| form_decode(v))
        })
}

/// `application/x-www-form-urlencoded` decoding of one name or value:
/// `+` is a space, `%XX` a byte; a `%` without two hex digits stays as it
/// is (as the WHATWG URL standard and most frameworks do).
fn form_decode(s: &str) -> std::borrow::Cow<'_, [u8]> {
    let b = s.as_bytes();
    if !b.iter().any(|&c| c == b'%' || c == b'+') {
        return std::borrow::Cow::Borrowed(b);
    }
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                if let (Some(h), Some(l)) = (
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                ) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            c => out.push(c),
        }
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

/// Raw values of the query parameter `name` (`a` in `a=1&a&b=2` gives `1`,
/// ``), in order. No percent-decoding: matchers compare raw bytes.
pub fn query_values<'q>(query: Option<&'q str>, name: &str) -> impl Iterator<Item = &'q str> {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(move |pair| match pair.split_once('=') {
            Some((k, v)) if k == name => Some(v),
            None if pair == name => Some(""),
            _ => None,
        })
}

/// Values of the cookie `name` in every `Cookie` header, in order.
pub fn cookie_values<'h>(
    headers: &'h http::HeaderMap,
    name: &str,
) -> impl Iterator<Item = &'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_raw() {
        let q = Some("a=1&b=x%20y&a&c=");
        assert_eq!(query_values(q, "a").collect::<Vec<_>>(), vec!["1", ""]);
        assert_eq!(query_values(q, "b").collect::<Vec<_>>(), vec!["x%20y"]);
        assert_eq!(query_values(q, "c").collect::<Vec<_>>(), vec![""]);
        assert_eq!(query_values(q, "d").count(), 0);
        assert_eq!(query_values(None, "a").count(), 0);
    }

    #[test]
    fn decoded_query_values_read_like_a_form() {
        let q = Some("%61dmin=%31&admin+x=a+b&b=%zz&b=%4&v=%C3%BC&admin");
        let got = |name| {
            decoded_query_values(q, name)
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(got("admin"), vec!["1", ""]);
        assert_eq!(got("admin x"), vec!["a b"]);
        assert_eq!(got("b"), vec!["%zz", "%4"]);
        assert_eq!(got("v"), vec!["ü"]);
        assert!(got("%61dmin").is_empty());
        assert_eq!(decoded_query_values(None, "a").count(), 0);
    }

    #[test]
    fn router_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Router>();
        assert_send_sync::<Match>();
    }
}
