//! Route conflicts across workspaces: two routes of different workspaces
//! that match exactly the same requests at the same rank, so the router
//! would pick one of them silently.

use std::collections::{BTreeSet, HashMap};

use gatehouse_config::Route;

use crate::assemble::Origin;

/// One message per conflicting pair of routes from different workspaces.
/// `origins[i]` is where `routes[i]` came from.
///
/// Two routes can only conflict when they share a path (or both have
/// none), so routes are grouped by path first and only pairs within a
/// group, from different workspaces, are compared: linear in the number of
/// routes for the usual store where paths differ, instead of comparing
/// every pair (10,000 routes would be 50 million pairs on every write the
/// admin API checks).
pub(crate) fn route_conflicts(routes: &[Route], origins: &[Origin]) -> Vec<String> {
    let mut by_path: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, r) in routes.iter().enumerate() {
        if r.paths.is_empty() {
            // No path matches any path; "" is no valid path, so no clash.
            by_path.entry("").or_default().push(i);
        }
        for p in &r.paths {
            let group = by_path.entry(p.as_str()).or_default();
            // A route listing the same path twice joins its group once.
            if group.last() != Some(&i) {
                group.push(i);
            }
        }
    }
    let mut pairs: BTreeSet<(usize, usize)> = BTreeSet::new();
    for group in by_path.values() {
        if group.len() < 2 {
            continue;
        }
        for (k, &j) in group.iter().enumerate() {
            for &i in &group[..k] {
                if origins[i].workspace != origins[j].workspace {
                    pairs.insert((j.max(i), j.min(i)));
                }
            }
        }
    }
    let mut out = Vec::new();
    for (i, j) in pairs {
        let (a, oa, b, ob) = (&routes[i], &origins[i], &routes[j], &origins[j]);
        if let Some(what) = overlap(a, b) {
            out.push(format!(
                "route `{}` in workspace `{}` conflicts with route `{}` in workspace `{}`: both match {what}",
                oa.name, oa.workspace, ob.name, ob.workspace
            ));
        }
    }
    out
}

/// What two routes both match, when they match the same requests at the
/// same rank; `None` when the router can tell them apart.
fn overlap(a: &Route, b: &Route) -> Option<String> {
    if a.headers != b.headers
        || a.query != b.query
        || a.version != b.version
        || a.priority != b.priority
    {
        return None;
    }
    let host = if a.hosts.is_empty() && b.hosts.is_empty() {
        "any host".to_string()
    } else {
        let h = a
            .hosts
            .iter()
            .find(|h| b.hosts.iter().any(|o| o.eq_ignore_ascii_case(h)))?;
        format!("host {h}")
    };
    let path = if a.paths.is_empty() && b.paths.is_empty() {
        "any path".to_string()
    } else {
        let p = a.paths.iter().find(|p| b.paths.contains(p))?;
        format!("path {p}")
    };
    let methods = if a.methods.is_empty() && b.methods.is_empty() {
        "any method".to_string()
    } else if a.methods.is_empty() || b.methods.is_empty() {
        let m = if a.methods.is_empty() {
            &b.methods
        } else {
            &a.methods
        };
        format!("methods {}", upper(m).join(", "))
    } else {
        let theirs = upper(&b.methods);
        let common: Vec<String> = upper(&a.methods)
            .into_iter()
            .filter(|m| theirs.contains(m))
            .collect();
        if common.is_empty() {
            return None;
        }
        format!("methods {}", common.join(", "))
    };
    Some(format!("{host}, {path}, {methods}"))
}

fn upper(methods: &[String]) -> Vec<String> {
    methods.iter().map(|m| m.to_ascii_uppercase()).collect()
}
