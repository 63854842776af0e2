//! Path patterns and the segment trie that indexes them.
//!
//! A pattern is split on `/` into segments after its leading `/`: `/users/{id}`
//! is `["users", {id}]`, `/` is `[""]` and `/users/` is `["users", ""]`, so a
//! trailing slash is simply one more (empty, static) segment. Each segment is a
//! literal or a `{param}`; a pattern ends exactly, with a `{*catch_all}`, or with
//! `/*` (prefix). The trie walk visits *all* matching leaves, so the router can
//! fall back to a less specific route when a more specific one fails a predicate.

use std::sync::Arc;

use crate::hash::FxMap;

/// The most `{param}`s (including a final `{*rest}`) one pattern may have; keeps
/// the capture positions on the stack during a match.
pub(crate) const MAX_PARAMS: usize = 16;

/// One path segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Literal(Box<str>),
    Param(Arc<str>),
}

/// How a pattern ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tail {
    /// The path ends after the last segment.
    End,
    /// `{*name}`: one or more further segments.
    CatchAll(Arc<str>),
    /// `/*`: anything (or nothing) below, on a segment boundary.
    Prefix,
}

/// A parsed entry of [`crate::RouteSpec::paths`].
#[derive(Debug, Clone)]
pub(crate) enum PathPattern {
    Segments { segments: Vec<Segment>, tail: Tail },
    Regex(regex::Regex),
}

impl PathPattern {
    /// The capture names this pattern can produce.
    pub(crate) fn capture_names(&self) -> Vec<Arc<str>> {
        match self {
            Self::Segments { segments, tail } => {
                let mut names: Vec<Arc<str>> = segments
                    .iter()
                    .filter_map(|s| match s {
                        Segment::Param(n) => Some(n.clone()),
                        Segment::Literal(_) => None,
                    })
                    .collect();
                if let Tail::CatchAll(n) = tail {
                    names.push(n.clone());
                }
                names
            }
            Self::Regex(re) => re.capture_names().flatten().map(Arc::from).collect(),
        }
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses one path pattern; the error is a message for [`crate::BuildError`].
pub(crate) fn parse_path(raw: &str) -> Result<PathPattern, String> {
    if raw.is_empty() {
        return Err("empty path".to_owned());
    }
    if let Some(re) = raw.strip_prefix('~') {
        if re.is_empty() {
            return Err("empty regex after '~'".to_owned());
        }
        return regex::Regex::new(re)
            .map(PathPattern::Regex)
            .map_err(|e| format!("invalid regex {re:?}: {e}"));
    }
    let Some(body) = raw.strip_prefix('/') else {
        return Err(format!(
            "path {raw:?} must start with '/' (or '~' for a regex)"
        ));
    };
    let (body, prefix) = match body.strip_suffix('*') {
        Some(b) if b.is_empty() || b.ends_with('/') => (b.strip_suffix('/').unwrap_or(b), true),
        _ => (body, false),
    };
    let mut segments = Vec::new();
    let mut tail = if prefix { Tail::Prefix } else { Tail::End };
    let mut names: Vec<&str> = Vec::new();
    // "/*" has no segment at all; "/" has one empty segment.
    let parts: Vec<&str> = if prefix && body.is_empty() {
        Vec::new()
    } else {
        body.split('/').collect()
    };
    let count = parts.len();
    for (i, part) in parts.into_iter().enumerate() {
        if let Some(inner) = part.strip_prefix('{') {
            let Some(inner) = inner.strip_suffix('}') else {
                return Err(format!(
                    "segment {part:?}: a '{{' must open a whole segment \"{{name}}\""
                ));
            };
            let (catch_all, name) = match inner.strip_prefix('*') {
                Some(n) => (true, n),
                None => (false, inner),
            };
            if name.is_empty() {
                return Err(format!("segment {part:?}: empty capture name"));
            }
            if !is_name(name) {
                return Err(format!(
                    "segment {part:?}: capture names are letters, digits and '_', not starting with a digit"
                ));
            }
            if names.contains(&name) {
                return Err(format!("duplicate capture name {name:?}"));
            }
            names.push(name);
            if catch_all {
                if i + 1 != count || prefix {
                    return Err(format!(
                        "segment {part:?}: a catch-all must be the last segment"
                    ));
                }
                tail = Tail::CatchAll(Arc::from(name));
            } else {
                segments.push(Segment::Param(Arc::from(name)));
            }
        } else {
            if part.contains(['{', '}']) {
                return Err(format!(
                    "segment {part:?}: '{{' and '}}' are only allowed around a whole segment"
                ));
            }
            if part.contains('*') {
                return Err(format!(
                    "segment {part:?}: '*' is only allowed as a final \"/*\" (prefix) or in \"{{*name}}\""
                ));
            }
            if part.contains(['?', '#']) {
                return Err(format!("segment {part:?}: paths cannot contain '?' or '#'"));
            }
            segments.push(Segment::Literal(part.into()));
        }
    }
    if names.len() > MAX_PARAMS {
        return Err(format!("more than {MAX_PARAMS} captures"));
    }
    Ok(PathPattern::Segments { segments, tail })
}

/// What kind of pattern a leaf came from, for ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeafKind {
    Exact,
    Template { statics: u16, catch_all: bool },
    Prefix { statics: u16 },
}

/// One (route, pattern) pair stored in the trie.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    pub(crate) route: u32,
    pub(crate) kind: LeafKind,
    /// Capture names, in the order of the `{param}`s along the path.
    pub(crate) names: Arc<[Arc<str>]>,
    /// Bytes of the leading `/v2` segment (version by path segment), else 0.
    pub(crate) version_prefix: u16,
}

/// Start and end byte offsets of the `{param}` values seen along the walk.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spans {
    len: usize,
    spans: [(usize, usize); MAX_PARAMS],
}

impl Spans {
    pub(crate) const fn new() -> Self {
        Self {
            len: 0,
            spans: [(0, 0); MAX_PARAMS],
        }
    }

    pub(crate) fn as_slice(&self) -> &[(usize, usize)] {
        &self.spans[..self.len]
    }

    fn push(&mut self, span: (usize, usize)) -> bool {
        match self.spans.get_mut(self.len) {
            Some(slot) => {
                *slot = span;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    fn pop(&mut self) {
        self.len = self.len.saturating_sub(1);
    }
}

/// Static children of a node: a short list scanned linearly, or a hash map.
#[derive(Debug)]
enum Statics {
    Few(Vec<(Box<str>, Node)>),
    Many(FxMap<Box<str>, Node>),
}

impl Default for Statics {
    fn default() -> Self {
        Self::Many(FxMap::default())
    }
}

/// Above this many static children a node uses a hash map.
const FEW: usize = 8;

/// A trie node: the state after matching some segments.
#[derive(Debug, Default)]
pub(crate) struct Node {
    statics: Statics,
    param: Option<Box<Node>>,
    /// Leaves whose pattern ends here.
    exact: Vec<Leaf>,
    /// Leaves whose pattern is a `/*` prefix ending here.
    prefix: Vec<Leaf>,
    /// Leaves whose pattern continues with `{*rest}` here.
    catch_all: Vec<Leaf>,
}

impl Node {
    /// Inserts a leaf under `segments` with the given tail.
    pub(crate) fn insert(&mut self, segments: &[Segment], tail: &Tail, leaf: Leaf) {
        let mut node = self;
        for seg in segments {
            node = match seg {
                Segment::Literal(lit) => match &mut node.statics {
                    Statics::Many(map) => map.entry(lit.clone()).or_default(),
                    Statics::Few(list) => {
                        // Only reachable if insert runs after `freeze`; keep it correct anyway.
                        let pos = match list.iter().position(|(k, _)| k == lit) {
                            Some(pos) => pos,
                            None => {
                                list.push((lit.clone(), Node::default()));
                                list.len() - 1
                            }
                        };
                        &mut list[pos].1
                    }
                },
                Segment::Param(_) => node.param.get_or_insert_with(Box::default),
            };
        }
        match tail {
            Tail::End => node.exact.push(leaf),
            Tail::Prefix => node.prefix.push(leaf),
            Tail::CatchAll(_) => node.catch_all.push(leaf),
        }
    }

    /// Turns small static maps into lists, recursively; call once after all inserts.
    pub(crate) fn freeze(&mut self) {
        if let Statics::Many(map) = &mut self.statics
            && map.len() <= FEW
        {
            let mut list: Vec<(Box<str>, Node)> = map.drain().collect();
            list.sort_by(|a, b| a.0.cmp(&b.0));
            self.statics = Statics::Few(list);
        }
        match &mut self.statics {
            Statics::Few(list) => list.iter_mut().for_each(|(_, n)| n.freeze()),
            Statics::Many(map) => map.values_mut().for_each(Node::freeze),
        }
        if let Some(p) = &mut self.param {
            p.freeze();
        }
    }

    fn static_child(&self, seg: &str) -> Option<&Node> {
        match &self.statics {
            Statics::Few(list) => list.iter().find(|(k, _)| &**k == seg).map(|(_, n)| n),
            Statics::Many(map) => {
                if map.is_empty() {
                    None
                } else {
                    map.get(seg)
                }
            }
        }
    }

    /// Visits every leaf whose pattern matches `path` (which starts with `/`).
    ///
    /// The visitor gets the leaf, the capture spans and the byte length of the
    /// path the pattern consumed (the whole path, except for prefix leaves).
    pub(crate) fn walk<'t, F>(&'t self, path: &str, visit: &mut F)
    where
        F: FnMut(&'t Leaf, &Spans, usize),
    {
        let mut spans = Spans::new();
        // Skip the leading '/': the first segment starts at byte 1.
        self.walk_from(path, Some(1), &mut spans, visit);
    }

    /// `next` is the start of the next unmatched segment, or `None` once the
    /// whole path has been consumed.
    fn walk_from<'t, F>(&'t self, path: &str, next: Option<usize>, spans: &mut Spans, visit: &mut F)
    where
        F: FnMut(&'t Leaf, &Spans, usize),
    {
        let consumed = match next {
            Some(start) => start - 1,
            None => path.len(),
        };
        for leaf in &self.prefix {
            visit(leaf, spans, consumed);
        }
        let Some(start) = next else {
            for leaf in &self.exact {
                visit(leaf, spans, consumed);
            }
            return;
        };
        let rest = &path.as_bytes()[start..];
        // A byte search: `str::find(char)` is much slower on short segments.
        let (seg_end, after) = match rest.iter().position(|&b| b == b'/') {
            Some(i) => (start + i, Some(start + i + 1)),
            None => (path.len(), None),
        };
        let seg = &path[start..seg_end];
        if let Some(child) = self.static_child(seg) {
            child.walk_from(path, after, spans, visit);
        }
        if seg.is_empty() {
            return;
        }
        if let Some(child) = &self.param
            && spans.push((start, seg_end))
        {
            child.walk_from(path, after, spans, visit);
            spans.pop();
        }
        if !self.catch_all.is_empty() && spans.push((start, path.len())) {
            for leaf in &self.catch_all {
                visit(leaf, spans, path.len());
            }
            spans.pop();
        }
    }
}

/// A regex path (the last resort), or a route without paths.
#[derive(Debug, Clone)]
pub(crate) struct ListLeaf {
    pub(crate) route: u32,
    pub(crate) priority: i32,
    /// `Some` for regex paths.
    pub(crate) regex: Option<regex::Regex>,
    /// Required leading version segment (`v2`), for version-by-path routes.
    pub(crate) version_segment: Option<Box<str>>,
}

/// If `path` starts with the segment `/{version}`, the rest of the path after it
/// (empty or starting with `/`).
pub(crate) fn strip_version<'p>(path: &'p str, version: &str) -> Option<&'p str> {
    let rest = path.strip_prefix('/')?.strip_prefix(version)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(p: &str) -> String {
        match parse_path(p) {
            Err(e) => e,
            Ok(pat) => panic!("{p:?} parsed as {pat:?}"),
        }
    }

    #[test]
    fn parses_each_kind() {
        let PathPattern::Segments { segments, tail } = parse_path("/users/{id}/posts").unwrap()
        else {
            panic!("not segments")
        };
        assert_eq!(segments.len(), 3);
        assert_eq!(tail, Tail::End);
        let PathPattern::Segments { segments, tail } = parse_path("/api/*").unwrap() else {
            panic!("not segments")
        };
        assert_eq!(segments, vec![Segment::Literal("api".into())]);
        assert_eq!(tail, Tail::Prefix);
        let PathPattern::Segments { segments, tail } = parse_path("/*").unwrap() else {
            panic!("not segments")
        };
        assert!(segments.is_empty());
        assert_eq!(tail, Tail::Prefix);
        let PathPattern::Segments { segments, tail } = parse_path("/").unwrap() else {
            panic!("not segments")
        };
        assert_eq!(segments, vec![Segment::Literal("".into())]);
        assert_eq!(tail, Tail::End);
        let PathPattern::Segments { tail, .. } = parse_path("/f/{*rest}").unwrap() else {
            panic!("not segments")
        };
        assert_eq!(tail, Tail::CatchAll("rest".into()));
        assert!(matches!(parse_path("~^/x$"), Ok(PathPattern::Regex(_))));
    }

    #[test]
    fn rejects_bad_patterns() {
        assert!(err("").contains("empty"));
        assert!(err("users").contains("start with '/'"));
        assert!(err("~(").contains("invalid regex"));
        assert!(err("~").contains("empty regex"));
        assert!(err("/a/{").contains("whole segment"));
        assert!(err("/a/{}").contains("empty capture"));
        assert!(err("/a/{*}").contains("empty capture"));
        assert!(err("/a/{id}/{id}").contains("duplicate"));
        assert!(err("/a/{id}x").contains("whole segment"));
        assert!(err("/a/x{id}").contains("only allowed around"));
        assert!(err("/a/{1d}").contains("capture names"));
        assert!(err("/a/{*rest}/b").contains("last segment"));
        assert!(err("/a*").contains("'*' is only allowed"));
        assert!(err("/a/*/b").contains("'*' is only allowed"));
        assert!(err("/a?b=1").contains("'?'"));
        let many: String = (0..17).map(|i| format!("/{{p{i}}}")).collect();
        assert!(err(&many).contains("more than"));
    }

    #[test]
    fn strips_version_segment() {
        assert_eq!(strip_version("/v2/users", "v2"), Some("/users"));
        assert_eq!(strip_version("/v2", "v2"), Some(""));
        assert_eq!(strip_version("/v2x/users", "v2"), None);
        assert_eq!(strip_version("/v1/users", "v2"), None);
    }
}
