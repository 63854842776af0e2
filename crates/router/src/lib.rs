//! Gatehouse route table: matches a request to one of N routes without a linear scan.
//!
//! A [`Router`] is compiled once from a list of [`RouteSpec`]s (one per configured
//! route) and is then immutable, `Send + Sync` and cheap to share behind an `Arc`.
//! [`Router::find`] answers [`Match::Found`], [`Match::MethodNotAllowed`] or
//! [`Match::NotFound`] for a [`RequestInfo`].
//!
//! # How a request is matched
//!
//! 1. **Host.** The request host is stripped of its `:port` (and a trailing `.`) and
//!    compared ASCII case-insensitively. Three kinds of host buckets apply to one
//!    request: the bucket of its exact host (a hash lookup), the bucket of every
//!    wildcard `*.suffix` whose suffix ends the host on a label boundary (one hash
//!    lookup per dot of the host), and the any-host bucket (routes with no `hosts`).
//! 2. **Path.** Each bucket holds a segment trie of the exact, templated and prefix
//!    paths. The trie is walked with backtracking (static child, then `{param}`,
//!    then `{*catch_all}`), so *every* route whose path matches is a candidate, not
//!    only the most specific one. Regex paths and routes without paths are kept in
//!    per-bucket lists sorted by priority, and only visited while they could still
//!    beat the best candidate found so far.
//! 3. **Predicates.** A candidate must also satisfy its methods, headers, query and
//!    version predicates. If some candidates failed *only* their method, and no
//!    candidate matched, the answer is [`Match::MethodNotAllowed`].
//! 4. **Ranking.** Among the candidates the winner is chosen by, in order: highest
//!    `priority`; host specificity (exact > wildcard with the longer suffix > any
//!    host); path specificity (exact > template with more static segments > prefix
//!    with the longer matched prefix > regex > no path); more predicates; lower
//!    route index. The order is total, so the answer is deterministic.
//!
//! # Path syntax
//!
//! | pattern                       | meaning                                             |
//! |-------------------------------|-----------------------------------------------------|
//! | `/users`                      | exactly `/users` (not `/users/`, not `/Users`)      |
//! | `/api/*`                      | `/api`, `/api/`, `/api/x/y`; not `/apix`            |
//! | `/users/{id}`                 | one non-empty segment captured as `id`              |
//! | `/files/{*rest}`              | one or more segments captured as `rest` (last only) |
//! | `~^/r/(?P<n>\d+)$`            | regex (as written); named groups become captures    |
//!
//! Paths are compared byte for byte: case-sensitive, never percent-decoded, and a
//! trailing slash is significant (`/users/` does not match `/users`; add both
//! entries, or use `/users/*`, to accept both). Captures are the raw request bytes.
//!
//! # Example
//!
//! ```
//! use gatehouse_router::{Match, RequestInfo, RouteSpec, Router};
//! use http::{HeaderMap, Method};
//!
//! let router = Router::build(vec![
//!     RouteSpec {
//!         hosts: vec!["api.example.com".into()],
//!         paths: vec!["/users/{id}".into()],
//!         methods: vec![Method::GET],
//!         ..Default::default()
//!     },
//!     RouteSpec { paths: vec!["/users/*".into()], ..Default::default() },
//! ])?;
//! let headers = HeaderMap::new();
//! let req = RequestInfo {
//!     host: Some("API.example.com:443"),
//!     path: "/users/7",
//!     method: &Method::GET,
//!     headers: &headers,
//!     query: None,
//! };
//! let Match::Found(m) = router.find(&req) else { panic!("no route") };
//! assert_eq!((m.route, &*m.captures[0].0, m.captures[0].1.as_str()), (0, "id", "7"));
//!
//! // A POST fails route 0's method, so the less specific route 1 answers.
//! let post = RequestInfo { method: &Method::POST, ..req };
//! assert!(matches!(router.find(&post), Match::Found(m) if m.route == 1));
//! # Ok::<(), gatehouse_router::BuildError>(())
//! ```

mod error;
mod hash;
mod host;
mod path;
mod router;
mod spec;
mod template;

pub use error::{BuildError, ValueMatchError};
pub use router::{
    Match, RequestInfo, RouteMatch, Router, cookie_values, decoded_query_values, query_values,
};
pub use spec::{RouteSpec, ValueMatch, VersionSource, VersionSpec};
pub use template::{expand_template, validate_template};
