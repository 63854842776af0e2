//! `Router::build` rejects bad specs with the route index and field at fault.

use gatehouse_router::{BuildError, RouteSpec, Router, VersionSource, VersionSpec};

fn paths(p: &[&str]) -> RouteSpec {
    RouteSpec {
        paths: p.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    }
}

fn build_err(specs: Vec<RouteSpec>) -> BuildError {
    match Router::build(specs) {
        Ok(_) => panic!("expected a build error"),
        Err(e) => e,
    }
}

fn assert_err(spec: RouteSpec, field: &str, needle: &str) {
    // Put the bad spec second so the index is checked too.
    let e = build_err(vec![paths(&["/ok"]), spec]);
    assert_eq!(e.route, 1, "{e}");
    assert_eq!(e.field, field, "{e}");
    assert!(
        e.message.contains(needle),
        "{e:?} should mention {needle:?}"
    );
    assert!(
        e.to_string().starts_with(&format!("route 1: {field}: ")),
        "{e}"
    );
}

#[test]
fn bad_paths() {
    assert_err(paths(&["/a", ""]), "paths[1]", "empty path");
    assert_err(paths(&["users"]), "paths[0]", "must start with '/'");
    assert_err(
        paths(&["/a", "/b", "~(unclosed"]),
        "paths[2]",
        "invalid regex",
    );
    assert_err(paths(&["/a/{"]), "paths[0]", "whole segment");
    assert_err(paths(&["/a/{}"]), "paths[0]", "empty capture name");
    assert_err(
        paths(&["/a/{id}/b/{id}"]),
        "paths[0]",
        "duplicate capture name",
    );
    assert_err(paths(&["/a/{*rest}/b"]), "paths[0]", "last segment");
    assert_err(paths(&["/a/x{id}"]), "paths[0]", "whole segment");
    assert_err(paths(&["/a*"]), "paths[0]", "'*'");
}

#[test]
fn bad_hosts() {
    let host = |h: &str| RouteSpec {
        hosts: vec!["ok.com".into(), h.to_owned()],
        ..paths(&["/x"])
    };
    assert_err(host(""), "hosts[1]", "empty host");
    assert_err(host("*."), "hosts[1]", "nothing after the wildcard");
    assert_err(host("a.*.com"), "hosts[1]", "leading");
    assert_err(host("a.com:80"), "hosts[1]", "port");
    assert_err(host("a/b"), "hosts[1]", "invalid character");
}

#[test]
fn bad_version_and_query() {
    let v = |value: &str, source: VersionSource| RouteSpec {
        version: Some(VersionSpec {
            value: value.to_owned(),
            source,
            default: false,
        }),
        ..paths(&["/x"])
    };
    assert_err(
        v("", VersionSource::PathSegment),
        "version",
        "empty version",
    );
    assert_err(v("v/2", VersionSource::PathSegment), "version", "reserved");
    assert_err(
        v("1", VersionSource::Query(String::new())),
        "version",
        "empty",
    );
    let q = RouteSpec {
        query: vec![
            ("a".into(), gatehouse_router::ValueMatch::Present),
            (String::new(), gatehouse_router::ValueMatch::Present),
        ],
        ..paths(&["/x"])
    };
    assert_err(q, "query[1]", "empty query parameter name");
}

#[test]
fn first_bad_route_is_reported() {
    let e = build_err(vec![
        paths(&["/ok"]),
        paths(&["/ok"]),
        paths(&["bad"]),
        paths(&[""]),
    ]);
    assert_eq!((e.route, e.field.as_str()), (2, "paths[0]"));
}
