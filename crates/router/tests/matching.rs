//! Behaviour tests for `Router::find`: paths, hosts, methods, predicates, versions, ranking.

use std::sync::Arc;

use gatehouse_router::{
    Match, RequestInfo, RouteMatch, RouteSpec, Router, ValueMatch, VersionSource, VersionSpec,
    expand_template,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

fn paths(p: &[&str]) -> RouteSpec {
    RouteSpec {
        paths: p.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    }
}

fn hosts(h: &[&str], p: &[&str]) -> RouteSpec {
    RouteSpec {
        hosts: h.iter().map(|s| (*s).to_owned()).collect(),
        ..paths(p)
    }
}

fn with_methods(mut spec: RouteSpec, m: &[Method]) -> RouteSpec {
    spec.methods = m.to_vec();
    spec
}

fn build(specs: Vec<RouteSpec>) -> Router {
    match Router::build(specs) {
        Ok(r) => r,
        Err(e) => panic!("build failed: {e}"),
    }
}

/// A request under construction.
struct Req {
    host: Option<String>,
    path: String,
    method: Method,
    headers: HeaderMap,
    query: Option<String>,
}

fn get(path: &str) -> Req {
    Req {
        host: None,
        path: path.to_owned(),
        method: Method::GET,
        headers: HeaderMap::new(),
        query: None,
    }
}

impl Req {
    fn host(mut self, h: &str) -> Self {
        self.host = Some(h.to_owned());
        self
    }
    fn method(mut self, m: Method) -> Self {
        self.method = m;
        self
    }
    fn header(mut self, k: &'static str, v: &'static str) -> Self {
        self.headers
            .append(HeaderName::from_static(k), HeaderValue::from_static(v));
        self
    }
    fn query(mut self, q: &str) -> Self {
        self.query = Some(q.to_owned());
        self
    }
    fn find(&self, router: &Router) -> Match {
        router.find(&RequestInfo {
            host: self.host.as_deref(),
            path: &self.path,
            method: &self.method,
            headers: &self.headers,
            query: self.query.as_deref(),
        })
    }
    /// The winning route index, or None.
    fn route(&self, router: &Router) -> Option<usize> {
        match self.find(router) {
            Match::Found(m) => Some(m.route),
            _ => None,
        }
    }
    fn found(&self, router: &Router) -> RouteMatch {
        match self.find(router) {
            Match::Found(m) => m,
            other => panic!("{} did not match: {other:?}", self.path),
        }
    }
}

fn caps(m: &RouteMatch) -> Vec<(&str, &str)> {
    m.captures.iter().map(|(k, v)| (&**k, v.as_str())).collect()
}

// ---------------------------------------------------------------- paths

#[test]
fn exact_path() {
    let r = build(vec![paths(&["/users"]), paths(&["/"])]);
    let m = get("/users").found(&r);
    assert_eq!(m.route, 0);
    assert_eq!(m.matched_prefix, 6);
    assert!(m.captures.is_empty());
    assert_eq!(get("/").route(&r), Some(1));
    assert_eq!(
        get("/users/").route(&r),
        None,
        "trailing slash is significant"
    );
    assert_eq!(get("/Users").route(&r), None, "paths are case-sensitive");
    assert_eq!(get("/users/1").route(&r), None);
    assert_eq!(get("/usersx").route(&r), None);
    assert_eq!(get("").route(&r), None);
    assert_eq!(get("*").route(&r), None);
}

#[test]
fn trailing_slash_routes_are_distinct() {
    let r = build(vec![paths(&["/users"]), paths(&["/users/"])]);
    assert_eq!(get("/users").route(&r), Some(0));
    assert_eq!(get("/users/").route(&r), Some(1));
}

#[test]
fn prefix_path_on_segment_boundary() {
    let r = build(vec![paths(&["/api/*"])]);
    for p in ["/api", "/api/", "/api/anything/below", "/api//x"] {
        let m = get(p).found(&r);
        assert_eq!(m.matched_prefix, 4, "{p}");
    }
    assert_eq!(get("/apix").route(&r), None);
    assert_eq!(get("/ap").route(&r), None);
    assert_eq!(get("/").route(&r), None);
}

#[test]
fn root_prefix_matches_everything() {
    let r = build(vec![paths(&["/*"])]);
    assert_eq!(get("/").found(&r).matched_prefix, 0);
    assert_eq!(get("/a/b").found(&r).matched_prefix, 0);
    assert_eq!(get("nope").route(&r), None);
}

#[test]
fn longer_prefix_wins() {
    let r = build(vec![
        paths(&["/api/*"]),
        paths(&["/api/v1/*"]),
        paths(&["/*"]),
    ]);
    assert_eq!(get("/api/v1/x").route(&r), Some(1));
    assert_eq!(get("/api/v1/x").found(&r).matched_prefix, 7);
    assert_eq!(get("/api/v2/x").route(&r), Some(0));
    assert_eq!(get("/other").route(&r), Some(2));
}

#[test]
fn templated_paths_capture_segments() {
    let r = build(vec![
        paths(&["/users/{id}"]),
        paths(&["/users/{id}/posts/{post}"]),
        paths(&["/orgs/{org}/members"]),
    ]);
    let m = get("/users/42").found(&r);
    assert_eq!(m.route, 0);
    assert_eq!(caps(&m), vec![("id", "42")]);
    assert_eq!(m.matched_prefix, "/users/42".len());

    let m = get("/users/42/posts/abc").found(&r);
    assert_eq!(m.route, 1);
    assert_eq!(caps(&m), vec![("id", "42"), ("post", "abc")]);

    assert_eq!(
        caps(&get("/orgs/acme/members").found(&r)),
        vec![("org", "acme")]
    );
    assert_eq!(
        get("/users/").route(&r),
        None,
        "a param needs a non-empty segment"
    );
    assert_eq!(get("/users//posts/x").route(&r), None);
    assert_eq!(get("/users/42/").route(&r), None);
    assert_eq!(get("/orgs/acme").route(&r), None);
}

#[test]
fn catch_all_captures_the_remainder() {
    let r = build(vec![
        paths(&["/files/{*rest}"]),
        paths(&["/t/{tenant}/{*path}"]),
    ]);
    let m = get("/files/a/b/c.txt").found(&r);
    assert_eq!(caps(&m), vec![("rest", "a/b/c.txt")]);
    assert_eq!(m.matched_prefix, "/files/a/b/c.txt".len());
    assert_eq!(caps(&get("/files/x").found(&r)), vec![("rest", "x")]);
    assert_eq!(get("/files").route(&r), None, "catch-all needs one segment");
    assert_eq!(get("/files/").route(&r), None);
    assert_eq!(
        caps(&get("/t/acme/a/b").found(&r)),
        vec![("tenant", "acme"), ("path", "a/b")]
    );
}

#[test]
fn different_param_names_share_a_position() {
    let r = build(vec![
        with_methods(paths(&["/users/{id}"]), &[Method::GET]),
        with_methods(paths(&["/users/{user_id}"]), &[Method::DELETE]),
    ]);
    assert_eq!(caps(&get("/users/7").found(&r)), vec![("id", "7")]);
    let m = get("/users/7").method(Method::DELETE).found(&r);
    assert_eq!(m.route, 1);
    assert_eq!(caps(&m), vec![("user_id", "7")]);
}

#[test]
fn percent_encoded_paths_stay_raw() {
    let r = build(vec![paths(&["/users/{id}"]), paths(&["/a%20b"])]);
    assert_eq!(caps(&get("/users/a%2Fb").found(&r)), vec![("id", "a%2Fb")]);
    assert_eq!(get("/a%20b").route(&r), Some(1));
    assert_eq!(
        get("/a b").route(&r),
        None,
        "no decoding of the pattern either"
    );
    assert_eq!(get("/users/a/b").route(&r), None);
}

#[test]
fn regex_paths_are_a_last_resort() {
    let r = build(vec![
        paths(&[r"~^/items/(?P<id>\d+)$"]),
        paths(&["/items/special"]),
        paths(&[r"~/legacy/(?P<name>[a-z]+)"]),
    ]);
    let m = get("/items/12").found(&r);
    assert_eq!(m.route, 0);
    assert_eq!(caps(&m), vec![("id", "12")]);
    assert_eq!(m.matched_prefix, "/items/12".len());
    assert_eq!(get("/items/special").route(&r), Some(1));
    assert_eq!(get("/items/x").route(&r), None);
    // Unanchored regex that matches in the middle: matched_prefix is 0.
    let m = get("/x/legacy/abc").found(&r);
    assert_eq!(m.route, 2);
    assert_eq!(m.matched_prefix, 0);
    assert_eq!(caps(&m), vec![("name", "abc")]);
    // Unanchored but matching at the start.
    let m = get("/legacy/abc/def").found(&r);
    assert_eq!(m.matched_prefix, "/legacy/abc".len());
}

#[test]
fn regex_beats_pathless_but_loses_to_prefix() {
    let r = build(vec![
        RouteSpec::default(),
        paths(&["~^/a"]),
        paths(&["/a/*"]),
    ]);
    assert_eq!(get("/a/b").route(&r), Some(2));
    assert_eq!(get("/ab").route(&r), Some(1));
    assert_eq!(get("/zzz").route(&r), Some(0));
    assert_eq!(get("/zzz").found(&r).matched_prefix, 0);
}

#[test]
fn regex_with_higher_priority_wins() {
    let mut re = paths(&["~^/a/"]);
    re.priority = 5;
    let r = build(vec![paths(&["/a/b"]), re]);
    assert_eq!(get("/a/b").route(&r), Some(1));
}

#[test]
fn multiple_paths_per_route() {
    let r = build(vec![paths(&["/a", "/b/{x}", "/c/*"])]);
    assert_eq!(get("/a").route(&r), Some(0));
    assert_eq!(get("/b/1").route(&r), Some(0));
    assert_eq!(get("/c/d/e").route(&r), Some(0));
    assert_eq!(get("/d").route(&r), None);
}

// ---------------------------------------------------------------- specificity

#[test]
fn path_specificity_order() {
    let r = build(vec![
        RouteSpec::default(),         // 0: no path
        paths(&["~^/users/.*$"]),     // 1: regex
        paths(&["/users/*"]),         // 2: prefix
        paths(&["/users/{id}"]),      // 3: template, 1 static
        paths(&["/users/{id}/{*x}"]), // 4: template with catch-all
        paths(&["/users/me"]),        // 5: exact
        paths(&["/{a}/{b}"]),         // 6: template, 0 static
    ]);
    assert_eq!(get("/users/me").route(&r), Some(5));
    assert_eq!(get("/users/7").route(&r), Some(3));
    assert_eq!(get("/users/7/x").route(&r), Some(4));
    assert_eq!(get("/users/").route(&r), Some(2));
    assert_eq!(get("/other/7").route(&r), Some(6));
    assert_eq!(get("/other").route(&r), Some(0));
}

#[test]
fn more_static_segments_win_among_templates() {
    let r = build(vec![
        paths(&["/{a}/{b}/{c}"]),
        paths(&["/x/{b}/{c}"]),
        paths(&["/x/{b}/z"]),
    ]);
    assert_eq!(get("/x/y/z").route(&r), Some(2));
    assert_eq!(get("/x/y/w").route(&r), Some(1));
    assert_eq!(get("/q/y/w").route(&r), Some(0));
}

#[test]
fn template_beats_catch_all_with_same_statics() {
    let r = build(vec![paths(&["/f/{*rest}"]), paths(&["/f/{name}"])]);
    assert_eq!(get("/f/a").route(&r), Some(1));
    assert_eq!(get("/f/a/b").route(&r), Some(0));
}

#[test]
fn priority_beats_specificity() {
    let mut low = paths(&["/users/me"]);
    low.priority = -1;
    let mut high = paths(&["/*"]);
    high.priority = 10;
    let r = build(vec![low, paths(&["/users/{id}"]), high]);
    assert_eq!(get("/users/me").route(&r), Some(2));
}

#[test]
fn more_predicates_then_lower_index_break_ties() {
    let mut with_header = paths(&["/p"]);
    with_header.headers = vec![(HeaderName::from_static("x-a"), ValueMatch::Present)];
    let r = build(vec![paths(&["/p"]), paths(&["/p"]), with_header]);
    assert_eq!(get("/p").route(&r), Some(0), "lower index wins a full tie");
    assert_eq!(get("/p").header("x-a", "1").route(&r), Some(2));
}

#[test]
fn host_specificity_beats_path_specificity() {
    let r = build(vec![
        paths(&["/users/me"]),
        hosts(&["*.example.com"], &["/*"]),
        hosts(&["*.eu.example.com"], &["/*"]),
        hosts(&["api.eu.example.com"], &["/*"]),
    ]);
    assert_eq!(
        get("/users/me").host("api.eu.example.com").route(&r),
        Some(3)
    );
    assert_eq!(
        get("/users/me").host("web.eu.example.com").route(&r),
        Some(2)
    );
    assert_eq!(get("/users/me").host("web.example.com").route(&r), Some(1));
    assert_eq!(get("/users/me").host("other.org").route(&r), Some(0));
    assert_eq!(get("/users/me").route(&r), Some(0));
}

// ---------------------------------------------------------------- fallback

#[test]
fn falls_back_when_specific_route_fails_method() {
    let r = build(vec![
        with_methods(paths(&["/users/{id}"]), &[Method::GET]),
        paths(&["/users/*"]),
    ]);
    assert_eq!(get("/users/7").route(&r), Some(0));
    assert_eq!(get("/users/7").method(Method::POST).route(&r), Some(1));
    // HEAD is implied by GET: it does not fall past a GET route.
    assert_eq!(get("/users/7").method(Method::HEAD).route(&r), Some(0));
}

#[test]
fn falls_back_when_specific_route_fails_header() {
    let mut canary = paths(&["/api/users"]);
    canary.headers = vec![(
        HeaderName::from_static("x-canary"),
        ValueMatch::Exact("1".into()),
    )];
    let r = build(vec![canary, paths(&["/api/{x}"]), paths(&["/api/*"])]);
    assert_eq!(get("/api/users").header("x-canary", "1").route(&r), Some(0));
    assert_eq!(get("/api/users").route(&r), Some(1));
    assert_eq!(get("/api/users/1").route(&r), Some(2));
}

#[test]
fn falls_back_from_static_to_param_branch_deep() {
    // The static branch /a/b matches the first segments but dead-ends.
    let r = build(vec![paths(&["/a/b/c"]), paths(&["/a/{x}/d"])]);
    assert_eq!(caps(&get("/a/b/d").found(&r)), vec![("x", "b")]);
}

#[test]
fn falls_back_across_host_buckets() {
    let r = build(vec![
        with_methods(hosts(&["api.example.com"], &["/x"]), &[Method::GET]),
        hosts(&["*.example.com"], &["/x"]),
        paths(&["/x"]),
    ]);
    let req = get("/x").host("api.example.com");
    assert_eq!(req.route(&r), Some(0));
    assert_eq!(req.method(Method::PUT).route(&r), Some(1));
}

// ---------------------------------------------------------------- hosts

#[test]
fn exact_host_is_case_insensitive_and_ignores_port() {
    let r = build(vec![hosts(&["API.Example.com"], &["/x"])]);
    for h in [
        "api.example.com",
        "API.EXAMPLE.COM",
        "api.example.com:8443",
        "Api.Example.Com:80",
        "api.example.com.",
    ] {
        assert_eq!(get("/x").host(h).route(&r), Some(0), "{h}");
    }
    assert_eq!(get("/x").host("example.com").route(&r), None);
    assert_eq!(get("/x").host("xapi.example.com").route(&r), None);
    assert_eq!(get("/x").route(&r), None, "no host: only any-host routes");
}

#[test]
fn wildcard_host_matches_subdomains_not_apex() {
    let r = build(vec![hosts(&["*.example.com"], &["/x"])]);
    assert_eq!(get("/x").host("a.example.com").route(&r), Some(0));
    assert_eq!(get("/x").host("a.b.example.com").route(&r), Some(0));
    assert_eq!(get("/x").host("A.EXAMPLE.com:9000").route(&r), Some(0));
    assert_eq!(get("/x").host("example.com").route(&r), None);
    assert_eq!(get("/x").host("aexample.com").route(&r), None);
    assert_eq!(get("/x").host("example.com.evil").route(&r), None);
}

#[test]
fn ipv6_host_literal() {
    let r = build(vec![hosts(&["[::1]"], &["/x"])]);
    assert_eq!(get("/x").host("[::1]:8080").route(&r), Some(0));
}

#[test]
fn host_star_means_any() {
    let r = build(vec![hosts(&["*"], &["/x"])]);
    assert_eq!(get("/x").host("whatever.io").route(&r), Some(0));
    assert_eq!(get("/x").route(&r), Some(0));
}

#[test]
fn multiple_hosts_per_route() {
    let r = build(vec![hosts(&["a.com", "*.b.com"], &["/x"])]);
    assert_eq!(get("/x").host("a.com").route(&r), Some(0));
    assert_eq!(get("/x").host("q.b.com").route(&r), Some(0));
    assert_eq!(get("/x").host("c.com").route(&r), None);
}

// ---------------------------------------------------------------- methods

#[test]
fn methods_and_405() {
    let r = build(vec![
        with_methods(paths(&["/users/{id}"]), &[Method::GET, Method::DELETE]),
        with_methods(paths(&["/users/{id}"]), &[Method::PUT, Method::GET]),
        with_methods(paths(&["/other"]), &[Method::POST]),
    ]);
    assert_eq!(get("/users/1").route(&r), Some(0));
    assert_eq!(get("/users/1").method(Method::PUT).route(&r), Some(1));
    assert_eq!(
        get("/users/1").method(Method::POST).find(&r),
        Match::MethodNotAllowed {
            allowed: vec![Method::DELETE, Method::GET, Method::PUT]
        }
    );
    assert_eq!(
        get("/nothing").method(Method::POST).find(&r),
        Match::NotFound
    );
}

#[test]
fn method_not_allowed_only_counts_routes_whose_other_predicates_hold() {
    let mut h = with_methods(paths(&["/x"]), &[Method::PATCH]);
    h.headers = vec![(HeaderName::from_static("x-a"), ValueMatch::Present)];
    let r = build(vec![with_methods(paths(&["/x"]), &[Method::GET]), h]);
    assert_eq!(
        get("/x").method(Method::POST).find(&r),
        Match::MethodNotAllowed {
            allowed: vec![Method::GET]
        }
    );
    assert_eq!(
        get("/x").method(Method::POST).header("x-a", "").find(&r),
        Match::MethodNotAllowed {
            allowed: vec![Method::GET, Method::PATCH]
        }
    );
}

#[test]
fn extension_methods() {
    let purge = Method::from_bytes(b"PURGE").unwrap();
    let r = build(vec![with_methods(
        paths(&["/c"]),
        std::slice::from_ref(&purge),
    )]);
    assert_eq!(get("/c").method(purge.clone()).route(&r), Some(0));
    assert_eq!(
        get("/c").find(&r),
        Match::MethodNotAllowed {
            allowed: vec![purge]
        }
    );
}

// ---------------------------------------------------------------- headers & query

#[test]
fn header_predicates() {
    let spec = |vm: ValueMatch| RouteSpec {
        headers: vec![(HeaderName::from_static("x-tier"), vm)],
        ..paths(&["/h"])
    };
    let r = build(vec![
        spec(ValueMatch::Exact("gold".into())),
        spec(ValueMatch::parse("~^sil").unwrap()),
        spec(ValueMatch::OneOf(vec!["a".into(), "b".into()])),
        spec(ValueMatch::Present),
    ]);
    assert_eq!(get("/h").header("x-tier", "gold").route(&r), Some(0));
    assert_eq!(get("/h").header("x-tier", "silver").route(&r), Some(1));
    assert_eq!(get("/h").header("x-tier", "b").route(&r), Some(2));
    assert_eq!(get("/h").header("x-tier", "GOLD").route(&r), Some(3));
    assert_eq!(get("/h").route(&r), None);
    // Any one value of a repeated header is enough.
    assert_eq!(
        get("/h")
            .header("x-tier", "zzz")
            .header("x-tier", "gold")
            .route(&r),
        Some(0)
    );
}

#[test]
fn all_headers_must_match() {
    let spec = RouteSpec {
        headers: vec![
            (
                HeaderName::from_static("x-a"),
                ValueMatch::Exact("1".into()),
            ),
            (HeaderName::from_static("x-b"), ValueMatch::Present),
        ],
        ..paths(&["/h"])
    };
    let r = build(vec![spec]);
    assert_eq!(get("/h").header("x-a", "1").route(&r), None);
    assert_eq!(
        get("/h").header("x-a", "1").header("x-b", "").route(&r),
        Some(0)
    );
}

#[test]
fn query_predicates() {
    let spec = |name: &str, vm: ValueMatch| RouteSpec {
        query: vec![(name.to_owned(), vm)],
        ..paths(&["/q"])
    };
    let r = build(vec![
        spec("mode", ValueMatch::Exact("fast".into())),
        spec("id", ValueMatch::parse(r"~^\d+$").unwrap()),
        spec("debug", ValueMatch::Present),
    ]);
    assert_eq!(get("/q").query("mode=fast").route(&r), Some(0));
    assert_eq!(get("/q").query("a=1&mode=fast&b").route(&r), Some(0));
    assert_eq!(get("/q").query("mode=slow").route(&r), None);
    assert_eq!(get("/q").query("id=123").route(&r), Some(1));
    assert_eq!(get("/q").query("id=12a").route(&r), None);
    assert_eq!(get("/q").query("debug").route(&r), Some(2));
    assert_eq!(get("/q").query("debug=").route(&r), Some(2));
    assert_eq!(get("/q").query("debugx=1").route(&r), None);
    assert_eq!(get("/q").route(&r), None);
    // Names and values are read as a form, like the upstream reads them:
    // another spelling of `mode=fast` cannot skip the route.
    assert_eq!(get("/q").query("mode=f%61st").route(&r), Some(0));
    assert_eq!(get("/q").query("m%6Fde=fast").route(&r), Some(0));
    assert_eq!(get("/q").query("id=%31%32").route(&r), Some(1));
    assert_eq!(get("/q").query("mode=fast+").route(&r), None);
}

// ---------------------------------------------------------------- versions

fn versioned(p: &[&str], value: &str, source: VersionSource, default: bool) -> RouteSpec {
    RouteSpec {
        version: Some(VersionSpec {
            value: value.to_owned(),
            source,
            default,
        }),
        ..paths(p)
    }
}

#[test]
fn version_by_header_with_default() {
    let h = || VersionSource::Header(HeaderName::from_static("x-api-version"));
    let r = build(vec![
        versioned(&["/users"], "1", h(), true),
        versioned(&["/users"], "2", h(), false),
    ]);
    assert_eq!(
        get("/users").header("x-api-version", "1").route(&r),
        Some(0)
    );
    assert_eq!(
        get("/users").header("x-api-version", "2").route(&r),
        Some(1)
    );
    assert_eq!(get("/users").route(&r), Some(0), "no version: the default");
    assert_eq!(get("/users").header("x-api-version", "3").route(&r), None);
}

#[test]
fn version_by_query_with_default() {
    let q = || VersionSource::Query("api-version".into());
    let r = build(vec![
        versioned(&["/users"], "2024-01-01", q(), false),
        versioned(&["/users"], "2023-01-01", q(), true),
    ]);
    assert_eq!(
        get("/users").query("api-version=2024-01-01").route(&r),
        Some(0)
    );
    assert_eq!(
        get("/users").query("x=1&api-version=2023-01-01").route(&r),
        Some(1)
    );
    assert_eq!(get("/users").query("x=1").route(&r), Some(1));
    assert_eq!(get("/users").route(&r), Some(1));
    assert_eq!(get("/users").query("api-version=1999").route(&r), None);
}

#[test]
fn version_by_path_segment() {
    let r = build(vec![
        versioned(&["/users/{id}"], "v2", VersionSource::PathSegment, false),
        versioned(
            &["/users/{id}", "/api/*"],
            "v1",
            VersionSource::PathSegment,
            true,
        ),
    ]);
    let m = get("/v2/users/7").found(&r);
    assert_eq!(m.route, 0);
    assert_eq!(m.version_prefix, 3);
    assert_eq!(m.matched_prefix, "/v2/users/7".len());
    assert_eq!(caps(&m), vec![("id", "7")]);

    let m = get("/v1/users/7").found(&r);
    assert_eq!((m.route, m.version_prefix), (1, 3));

    let m = get("/users/7").found(&r);
    assert_eq!((m.route, m.version_prefix), (1, 0), "default version");

    let m = get("/v1/api/x").found(&r);
    assert_eq!((m.route, m.version_prefix, m.matched_prefix), (1, 3, 7));
    let m = get("/api/x").found(&r);
    assert_eq!((m.route, m.version_prefix, m.matched_prefix), (1, 0, 4));

    assert_eq!(get("/v3/users/7").route(&r), None);
    assert_eq!(get("/v2x/users/7").route(&r), None);
    assert_eq!(get("/v2/users").route(&r), None);
}

#[test]
fn version_by_path_segment_for_regex_and_pathless() {
    let r = build(vec![
        versioned(
            &[r"~^/items/(?P<id>\d+)$"],
            "v2",
            VersionSource::PathSegment,
            false,
        ),
        versioned(&[], "v3", VersionSource::PathSegment, false),
    ]);
    let m = get("/v2/items/5").found(&r);
    assert_eq!((m.route, m.version_prefix, m.matched_prefix), (0, 3, 11));
    assert_eq!(caps(&m), vec![("id", "5")]);
    assert_eq!(get("/items/5").route(&r), None);
    let m = get("/v3/anything").found(&r);
    assert_eq!((m.route, m.version_prefix, m.matched_prefix), (1, 3, 3));
    assert_eq!(get("/v3").route(&r), Some(1));
    assert_eq!(get("/v4/x").route(&r), None);
}

// ---------------------------------------------------------------- templates

#[test]
fn rewrite_with_captures() {
    let r = build(vec![paths(&["/users/{id}/files/{*path}"])]);
    let m = get("/users/7/files/a/b%20c").found(&r);
    assert_eq!(
        expand_template("/internal/{id}/{path}", &m.captures),
        "/internal/7/a/b%20c"
    );
    let none: Vec<(Arc<str>, String)> = Vec::new();
    assert_eq!(expand_template("/x", &none), "/x");
}

// ---------------------------------------------------------------- from_request

#[test]
fn request_info_from_http_request() {
    let r = build(vec![RouteSpec {
        query: vec![("a".into(), ValueMatch::Exact("1".into()))],
        ..hosts(&["api.test"], &["/p/{x}"])
    }]);
    let req = http::Request::builder()
        .uri("/p/9?a=1")
        .header("host", "API.test:8080")
        .body(())
        .unwrap();
    let Match::Found(m) = r.find(&RequestInfo::from_request(&req)) else {
        panic!("no match")
    };
    assert_eq!(caps(&m), vec![("x", "9")]);
    let req = http::Request::builder()
        .uri("http://api.test/p/9?a=1")
        .body(())
        .unwrap();
    assert!(matches!(
        r.find(&RequestInfo::from_request(&req)),
        Match::Found(_)
    ));
}

#[test]
fn empty_router() {
    let r = build(Vec::new());
    assert!(r.is_empty());
    assert_eq!(r.len(), 0);
    assert_eq!(get("/").find(&r), Match::NotFound);
}

#[test]
fn several_regexes_rank_by_priority_then_index() {
    let re = |p: &str, priority: i32| RouteSpec {
        priority,
        ..paths(&[p])
    };
    let r = build(vec![
        re("~^/r/", 0),
        re(r"~^/r/\d+$", 0),
        re("~^/r/9", 3),
        versioned(&["~^/r/"], "v2", VersionSource::PathSegment, false),
        re("~^/other$", 0),
    ]);
    assert_eq!(get("/r/9").route(&r), Some(2));
    assert_eq!(get("/r/8").route(&r), Some(0), "equal rank: lower index");
    assert_eq!(get("/r/x").route(&r), Some(0));
    assert_eq!(get("/other").route(&r), Some(4));
    let m = get("/v2/r/1").found(&r);
    assert_eq!((m.route, m.version_prefix, m.matched_prefix), (3, 3, 6));
    assert_eq!(get("/nothing").route(&r), None);
}

#[test]
fn long_wildcard_suffixes() {
    let long = format!("{}.example.com", "x".repeat(150));
    let r = build(vec![
        hosts(&[&format!("*.{long}")], &["/x"]),
        hosts(&["*.com"], &["/x"]),
    ]);
    assert_eq!(get("/x").host(&format!("a.{long}")).route(&r), Some(0));
    assert_eq!(
        get("/x")
            .host(&format!("a.{}", long.to_uppercase()))
            .route(&r),
        Some(0)
    );
    assert_eq!(get("/x").host("a.other.com").route(&r), Some(1));
}
