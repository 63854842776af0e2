//! Host ownership across workspaces: a host name is routed (and served a
//! certificate) by one workspace only, routes outside `default` name their
//! hosts, and the host-less routes of `default` never out-rank another
//! workspace's routes. Together these mean no route of one workspace can
//! match a request another workspace routes, so `priority` only ranks
//! routes of one workspace against each other (docs/security.md, "Tenant
//! isolation").

use std::collections::{BTreeSet, HashMap};

use gatehouse_config::Route;
use gatehouse_store::DEFAULT_WORKSPACE;

use crate::Issue;
use crate::assemble::Origin;

/// A host pattern as the router compares it: lower case, no trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Pattern {
    /// `api.example.com`.
    Exact(String),
    /// `*.example.com`, kept as `example.com`.
    Wildcard(String),
}

impl Pattern {
    /// `None` for `*` (any host) and the empty string.
    fn parse(raw: &str) -> Option<Self> {
        let lower = raw.trim().to_ascii_lowercase();
        let lower = lower.strip_suffix('.').unwrap_or(&lower);
        if lower.is_empty() || lower == "*" {
            return None;
        }
        Some(match lower.strip_prefix("*.") {
            Some(rest) => Pattern::Wildcard(rest.to_string()),
            None => Pattern::Exact(lower.to_string()),
        })
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Exact(h) => f.write_str(h),
            Pattern::Wildcard(s) => write!(f, "*.{s}"),
        }
    }
}

/// Who claims a host: a route or a certificate of a workspace.
struct Claim<'a> {
    workspace: &'a str,
    /// `route `orders`` or `certificate `api``.
    what: String,
    pattern: Pattern,
}

/// Every suffix of `host` that starts after a dot (`a.b.c` → `b.c`, `c`).
fn suffixes(host: &str) -> impl Iterator<Item = &str> {
    host.match_indices('.').map(move |(i, _)| &host[i + 1..])
}

/// The host ownership issues of routes (`origins[i]` is where `routes[i]`
/// came from) and certificate documents (with the names they claim).
pub(crate) fn ownership(
    routes: &[Route],
    origins: &[Origin],
    certificates: &[(Origin, Vec<String>)],
) -> Vec<Issue> {
    let mut issues = Vec::new();
    let mut claims: Vec<Claim<'_>> = Vec::new();
    for (r, o) in routes.iter().zip(origins) {
        let any = r.hosts.is_empty() || r.hosts.iter().any(|h| Pattern::parse(h).is_none());
        if any && o.workspace != DEFAULT_WORKSPACE {
            issues.push(Issue::about(
                &o.workspace,
                format!(
                    "route `{}` in workspace `{}`: a route outside workspace `default` must name its hosts (without `hosts`, or with `*`, it would match every host, those of other workspaces too)",
                    o.name, o.workspace
                ),
            ));
        }
        for h in &r.hosts {
            if let Some(pattern) = Pattern::parse(h) {
                claims.push(Claim {
                    workspace: &o.workspace,
                    what: format!("route `{}`", o.name),
                    pattern,
                });
            }
        }
    }
    for (o, names) in certificates {
        for h in names {
            if let Some(pattern) = Pattern::parse(h) {
                claims.push(Claim {
                    workspace: &o.workspace,
                    what: format!("certificate `{}`", o.name),
                    pattern,
                });
            }
        }
    }

    // Index the claims, then look up each claim's overlaps: an exact host
    // meets the same exact host and every wildcard over one of its
    // suffixes; a wildcard meets the wildcards over it and under it (the
    // latter found from their side) and the exact hosts under it (idem).
    let mut exact: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut wild: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, c) in claims.iter().enumerate() {
        match &c.pattern {
            Pattern::Exact(h) => exact.entry(h.as_str()).or_default().push(i),
            Pattern::Wildcard(s) => wild.entry(s.as_str()).or_default().push(i),
        }
    }
    let mut pairs: BTreeSet<(usize, usize)> = BTreeSet::new();
    for (i, c) in claims.iter().enumerate() {
        let (same, over): (Option<&Vec<usize>>, Vec<&Vec<usize>>) = match &c.pattern {
            Pattern::Exact(h) => (
                exact.get(h.as_str()),
                suffixes(h).filter_map(|s| wild.get(s)).collect(),
            ),
            Pattern::Wildcard(s) => (
                wild.get(s.as_str()),
                suffixes(s).filter_map(|t| wild.get(t)).collect(),
            ),
        };
        for &j in same.into_iter().chain(over).flatten() {
            if claims[j].workspace != c.workspace {
                pairs.insert((i.min(j), i.max(j)));
            }
        }
    }
    // One conflict per pair of workspaces and host, however many routes.
    let mut reported: BTreeSet<(&str, &str, Pattern)> = BTreeSet::new();
    for (i, j) in pairs {
        let (a, b) = (&claims[i], &claims[j]);
        if !reported.insert((a.workspace, b.workspace, a.pattern.clone())) {
            continue;
        }
        let full = format!(
            "{} in workspace `{}` claims host `{}`, which overlaps host `{}` of {} in workspace `{}`: a host belongs to one workspace",
            a.what, a.workspace, a.pattern, b.pattern, b.what, b.workspace
        );
        for (me, mine) in [(a, &a.pattern), (b, &b.pattern)] {
            issues.push(Issue {
                workspace: Some(me.workspace.to_string()),
                message: full.clone(),
                scoped: Some(format!(
                    "{} in workspace `{}`: host `{mine}` is taken by another workspace (a host belongs to one workspace; choose another host)",
                    me.what, me.workspace
                )),
            });
        }
    }

    issues.extend(outranked(routes, origins));
    issues
}

/// Host-less routes of `default` match every host; one with a higher
/// `priority` than a route of another workspace would win that route's
/// requests. Such pairs are refused.
fn outranked(routes: &[Route], origins: &[Origin]) -> Vec<Issue> {
    let global = routes
        .iter()
        .zip(origins)
        .filter(|(r, o)| {
            o.workspace == DEFAULT_WORKSPACE
                && (r.hosts.is_empty() || r.hosts.iter().any(|h| Pattern::parse(h).is_none()))
        })
        .max_by_key(|(r, _)| r.priority);
    let Some((top, top_origin)) = global else {
        return Vec::new();
    };
    let mut issues = Vec::new();
    let mut default_reported = false;
    for (r, o) in routes.iter().zip(origins) {
        if o.workspace == DEFAULT_WORKSPACE || r.priority >= top.priority {
            continue;
        }
        let full = format!(
            "route `{}` in workspace `{}` has priority {}, below the host-less route `{}` of workspace `default` (priority {}), which would take its requests",
            o.name, o.workspace, r.priority, top_origin.name, top.priority
        );
        issues.push(Issue {
            workspace: Some(o.workspace.clone()),
            message: full.clone(),
            scoped: Some(format!(
                "route `{}` in workspace `{}`: priority {} is below that of the global host-less routes of workspace `default` ({}); use at least {}",
                o.name, o.workspace, r.priority, top.priority, top.priority
            )),
        });
        if !default_reported {
            default_reported = true;
            issues.push(Issue {
                workspace: Some(DEFAULT_WORKSPACE.to_string()),
                message: full,
                scoped: Some(format!(
                    "route `{}` in workspace `default`: a host-less route may not out-rank routes of other workspaces; its priority {} is above theirs",
                    top_origin.name, top.priority
                )),
            });
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_normalise_like_the_router() {
        assert_eq!(
            Pattern::parse("API.Example.com."),
            Some(Pattern::Exact("api.example.com".into()))
        );
        assert_eq!(
            Pattern::parse("*.Example.com"),
            Some(Pattern::Wildcard("example.com".into()))
        );
        assert_eq!(Pattern::parse("*"), None);
        let s: Vec<&str> = suffixes("a.b.c").collect();
        assert_eq!(s, ["b.c", "c"]);
    }
}
