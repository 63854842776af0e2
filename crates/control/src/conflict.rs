//! Route conflicts across workspaces: two routes of different workspaces
//! that match exactly the same requests at the same rank, so the router
//! would pick one of them silently.

use gatehouse_config::Route;

use crate::assemble::Origin;

/// One message per conflicting pair of routes from different workspaces.
/// `origins[i]` is where `routes[i]` came from.
pub(crate) fn route_conflicts(routes: &[Route], origins: &[Origin]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, (a, oa)) in routes.iter().zip(origins).enumerate() {
        for (b, ob) in routes[..i].iter().zip(origins) {
            if oa.workspace == ob.workspace {
                continue;
            }
            if let Some(what) = overlap(a, b) {
                out.push(format!(
                    "route `{}` in workspace `{}` conflicts with route `{}` in workspace `{}`: both match {what}",
                    oa.name, oa.workspace, ob.name, ob.workspace
                ));
            }
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
