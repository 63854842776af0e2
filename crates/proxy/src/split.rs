//! Traffic splitting: which of a route's services (its *branches*) serves a
//! request, for canary and blue/green releases.
//!
//! The choice is made once per request, right after routing and before any
//! plugin phase, from what the request carries then (headers, cookies, the
//! query string, the client address). In order:
//!
//! 1. **`when`**: the first branch, in config order, whose conditions all
//!    match takes the request, whatever the weights.
//! 2. **Sticky key** (`sticky.hash_on`), when configured and present (and
//!    not empty): weighted rendezvous hashing over the branches of non-zero
//!    weight. Each branch scores the key as `-ln(u) / weight`, where `u` in
//!    (0, 1) comes from XXH3 of the key seeded with a hash of the branch's
//!    *service name*; the lowest score wins. A key is served by branch `b`
//!    with probability `weight(b) / total` and the assignment depends only on
//!    the key, the service names and the weights (not on branch order, not
//!    on the process). A key on branch `b` stays there after a weight change
//!    unless `weight(b) / weight(x)` shrinks for some other branch `x`: growing
//!    one branch only moves keys into it, shrinking one only moves keys out
//!    of it, and keys never move between two branches whose weights did not
//!    change.
//! 3. **Weighted round-robin** otherwise (no `sticky`, or the key is
//!    missing): the smooth weighted round-robin of `gatehouse-upstream`, so
//!    every `total` consecutive choices give each branch exactly `weight`,
//!    interleaved. The cycle restarts with each configuration.
//!
//! No branch (every weight 0 and no `when` matched) means the route has no
//! service for this request; the proxy answers it like a route without a
//! service (`503 no-service` unless a plugin answers).

use std::net::IpAddr;
use std::sync::Arc;

use gatehouse_router::{ValueMatch, cookie_values, query_values};
use gatehouse_upstream::{BuildError, HealthSet, SmoothWeightedRoundRobin, Target};
use http::HeaderMap;
use http::header::HeaderName;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::chain::Chain;

/// What a branch choice may look at: the request as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The raw query string, if any.
    pub query: Option<&'a str>,
    /// The client address (after trusted-proxy resolution; `None`:
    /// unknown).
    pub client_ip: Option<IpAddr>,
}

/// The request property a sticky split hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickyKey {
    /// The resolved client address.
    ClientIp,
    /// A request header's value (the first one).
    Header(HeaderName),
    /// A cookie's value (the first one of that name).
    Cookie(String),
    /// A query parameter's raw value (the first one).
    Query(String),
}

impl StickyKey {
    /// From the typed config key (`consumer` is refused when the config is
    /// read; it is an error here too).
    pub fn from_config(k: &gatehouse_config::RequestKey) -> Result<Self, String> {
        use gatehouse_config::RequestKey;
        match k {
            RequestKey::ClientIp => Ok(StickyKey::ClientIp),
            RequestKey::Header(h) => Ok(StickyKey::Header(h.clone())),
            RequestKey::Cookie(c) => Ok(StickyKey::Cookie(c.clone())),
            RequestKey::Query(q) => Ok(StickyKey::Query(q.clone())),
            RequestKey::Consumer => Err("`consumer` cannot be a sticky key".to_string()),
        }
    }

    /// Parses `client_ip`, `header:NAME`, `cookie:NAME` or `query:NAME`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.split_once(':') {
            Some(("header", n)) => HeaderName::from_bytes(n.as_bytes())
                .ok()
                .map(StickyKey::Header),
            Some(("cookie", n)) if !n.is_empty() => Some(StickyKey::Cookie(n.to_string())),
            Some(("query", n)) if !n.is_empty() => Some(StickyKey::Query(n.to_string())),
            None if s == "client_ip" => Some(StickyKey::ClientIp),
            _ => None,
        }
    }
}

/// Conditions of a `when` block, all of which must hold.
#[derive(Debug, Clone, Default)]
pub struct When {
    /// Header name and matcher; any one value of a repeated header may match.
    pub headers: Vec<(HeaderName, ValueMatch)>,
    /// Cookie name (case-sensitive) and matcher; any one cookie of that name
    /// may match.
    pub cookies: Vec<(String, ValueMatch)>,
}

impl When {
    /// Whether every condition holds for `headers`.
    pub fn matches(&self, headers: &HeaderMap) -> bool {
        self.headers.iter().all(|(name, m)| {
            headers
                .get_all(name)
                .iter()
                .any(|v| m.matches(v.as_bytes()))
        }) && self
            .cookies
            .iter()
            .all(|(name, m)| cookie_values(headers, name).any(|v| m.matches(v.as_bytes())))
    }
}

/// One branch: a service, its weight and conditions, and the plugin chain
/// that runs for requests it takes (global + its service's + route plugins).
pub struct Branch {
    /// Index into the snapshot's services.
    pub service: usize,
    /// Merged plugins for requests on this branch.
    pub chain: Arc<Chain>,
    weight: u32,
    seed: u64,
    when: Option<When>,
}

impl Branch {
    /// A branch to `service` (index `service`, named `name` — the name seeds
    /// the sticky hash, so assignments survive reordering).
    pub fn new(
        service: usize,
        name: &str,
        weight: u32,
        when: Option<When>,
        chain: Arc<Chain>,
    ) -> Self {
        Self {
            service,
            chain,
            weight,
            seed: xxh3_64(name.as_bytes()),
            when,
        }
    }
}

/// A route's compiled traffic split.
pub struct Split {
    branches: Box<[Branch]>,
    /// Weighted round-robin over branch indices (empty cycle when every
    /// weight is 0).
    weighted: SmoothWeightedRoundRobin,
    /// Every branch eligible: the round-robin's health input.
    eligible: HealthSet,
    sticky: Option<StickyKey>,
}

impl Split {
    /// Compiles `branches` (in config order) with an optional sticky key.
    pub fn new(branches: Vec<Branch>, sticky: Option<StickyKey>) -> Result<Self, BuildError> {
        let targets: Vec<Target> = branches
            .iter()
            .enumerate()
            .map(|(i, b)| Target::new(i, b.weight))
            .collect();
        Ok(Self {
            weighted: SmoothWeightedRoundRobin::new(&targets)?,
            eligible: HealthSet::all_healthy(branches.len()),
            branches: branches.into_boxed_slice(),
            sticky,
        })
    }

    /// The branches, in config order.
    pub fn branches(&self) -> &[Branch] {
        &self.branches
    }

    /// The branch (index into [`Split::branches`]) that serves `req`, or
    /// `None` when no branch takes it (all weights 0, no `when` matched).
    pub fn choose(&self, req: &RequestView<'_>) -> Option<usize> {
        if let Some(i) = self
            .branches
            .iter()
            .position(|b| b.when.as_ref().is_some_and(|w| w.matches(req.headers)))
        {
            return Some(i);
        }
        if let Some(key) = &self.sticky {
            let ip;
            let bytes = match key {
                // An unknown client has no key: weighted like unkeyed traffic.
                StickyKey::ClientIp => {
                    ip = req.client_ip.map(ip_key);
                    ip.as_ref().map(|k| &k[..])
                }
                other => request_key(other, req),
            };
            if let Some(bytes) = bytes {
                return self.rendezvous(bytes);
            }
        }
        self.weighted.pick(&self.eligible)
    }

    /// Weighted rendezvous hashing of `key` over the branches of non-zero
    /// weight.
    fn rendezvous(&self, key: &[u8]) -> Option<usize> {
        let mut best: Option<(f64, usize)> = None;
        for (i, b) in self.branches.iter().enumerate() {
            if b.weight == 0 {
                continue;
            }
            let score = exp_score(xxh3_64_with_seed(key, b.seed)) / f64::from(b.weight);
            if best.is_none_or(|(s, _)| score < s) {
                best = Some((score, i));
            }
        }
        best.map(|(_, i)| i)
    }
}

/// `-ln(u)` for `u` uniform in (0, 1) taken from the top 53 bits of `hash`:
/// an exponential variate, so `min(-ln(u_i) / w_i)` picks `i` with
/// probability `w_i / sum(w)`.
fn exp_score(hash: u64) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    let u = ((hash >> 11) as f64 + 0.5) * SCALE;
    -u.ln()
}

/// The client address as 16 bytes (IPv4 as IPv4-mapped IPv6).
fn ip_key(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// A header, cookie or query sticky key, borrowed from the request; `None`
/// when it is absent or empty (so an empty cookie does not pin every such
/// client to one branch).
fn request_key<'r>(key: &StickyKey, req: &RequestView<'r>) -> Option<&'r [u8]> {
    let bytes = match key {
        StickyKey::ClientIp => return None,
        StickyKey::Header(name) => req.headers.get(name)?.as_bytes(),
        StickyKey::Cookie(name) => cookie_values(req.headers, name).next()?.as_bytes(),
        StickyKey::Query(name) => query_values(req.query, name).next()?.as_bytes(),
    };
    (!bytes.is_empty()).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use http::HeaderValue;

    use super::*;

    /// A split over `(service name, weight)`; branch `i` is service `i`.
    fn split(branches: &[(&str, u32)], sticky: Option<StickyKey>) -> Split {
        split_with(
            branches.iter().map(|&(n, w)| (n, w, None)).collect(),
            sticky,
        )
    }

    fn split_with(branches: Vec<(&str, u32, Option<When>)>, sticky: Option<StickyKey>) -> Split {
        let b = branches
            .into_iter()
            .enumerate()
            .map(|(i, (n, w, when))| Branch::new(i, n, w, when, Arc::new(Chain::default())))
            .collect();
        Split::new(b, sticky).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn view<'a>(h: &'a HeaderMap, query: Option<&'a str>) -> RequestView<'a> {
        RequestView {
            headers: h,
            query,
            client_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        }
    }

    /// The service a sticky split picks for session `key` (as a cookie).
    fn by_session(s: &Split, key: &str) -> Option<usize> {
        let h = headers(&[("cookie", &format!("session={key}"))]);
        s.choose(&view(&h, None)).map(|b| s.branches()[b].service)
    }

    fn session() -> Option<StickyKey> {
        StickyKey::parse("cookie:session")
    }

    fn exact(v: &str) -> ValueMatch {
        ValueMatch::parse(v).unwrap()
    }

    #[test]
    fn sticky_95_5_spreads_100k_keys_by_weight() {
        let s = split(&[("v1", 95), ("v2", 5)], session());
        let mut counts = [0usize; 2];
        for i in 0..100_000 {
            counts[by_session(&s, &format!("user-{i}")).unwrap()] += 1;
        }
        // 5% ± 0.5 points (the standard deviation is ~69 keys).
        assert!((4_500..=5_500).contains(&counts[1]), "{counts:?}");

        let s = split(&[("a", 50), ("b", 30), ("c", 20)], session());
        let mut counts = [0usize; 3];
        for i in 0..100_000 {
            counts[by_session(&s, &format!("user-{i}")).unwrap()] += 1;
        }
        for (c, want) in counts.iter().zip([50_000, 30_000, 20_000]) {
            assert!(c.abs_diff(want) <= 1_000, "{counts:?}");
        }
    }

    #[test]
    fn sticky_assignment_is_stable_across_rebuilds_and_branch_order() {
        // A reload compiles a new split; the assignment must not change.
        let a = split(&[("v1", 95), ("v2", 5)], session());
        let b = split(&[("v1", 95), ("v2", 5)], session());
        let reversed = split(&[("v2", 5), ("v1", 95)], session());
        for i in 0..10_000 {
            let key = format!("user-{i}");
            let first = by_session(&a, &key).unwrap();
            assert_eq!(by_session(&a, &key), Some(first), "same split, same key");
            assert_eq!(by_session(&b, &key), Some(first), "rebuilt split");
            // Service 0 is v2 in the reversed split.
            assert_eq!(by_session(&reversed, &key), Some(1 - first), "reordered");
        }
    }

    #[test]
    fn growing_the_canary_only_moves_keys_into_it() {
        let before = split(&[("v1", 95), ("v2", 5)], session());
        for after in [
            split(&[("v1", 95), ("v2", 10)], session()),
            split(&[("v1", 90), ("v2", 10)], session()),
            split(&[("v1", 50), ("v2", 50)], session()),
        ] {
            let mut moved = 0;
            for i in 0..50_000 {
                let key = format!("user-{i}");
                let (was, now) = (by_session(&before, &key), by_session(&after, &key));
                if was != now {
                    assert_eq!((was, now), (Some(0), Some(1)), "{key} left the canary");
                    moved += 1;
                }
            }
            assert!(moved > 0);
        }
        // 95/5 -> 90/10: about 5% of all keys move, every one into v2.
        let after = split(&[("v1", 90), ("v2", 10)], session());
        let moved = (0..50_000)
            .filter(|i| {
                let key = format!("user-{i}");
                by_session(&before, &key) != by_session(&after, &key)
            })
            .count();
        assert!((2_000..=3_000).contains(&moved), "{moved}");
    }

    #[test]
    fn changing_one_of_three_weights_never_moves_keys_between_the_others() {
        let before = split(&[("a", 50), ("b", 30), ("c", 20)], session());
        let grown = split(&[("a", 50), ("b", 60), ("c", 20)], session());
        let shrunk = split(&[("a", 50), ("b", 10), ("c", 20)], session());
        let added = split(&[("a", 50), ("b", 30), ("c", 20), ("d", 25)], session());
        for i in 0..30_000 {
            let key = format!("user-{i}");
            let was = by_session(&before, &key).unwrap();
            let now = by_session(&grown, &key).unwrap();
            assert!(now == was || now == 1, "{key}: {was} -> {now} when b grew");
            let now = by_session(&shrunk, &key).unwrap();
            assert!(
                now == was || was == 1,
                "{key}: {was} -> {now} when b shrank"
            );
            let now = by_session(&added, &key).unwrap();
            assert!(
                now == was || now == 3,
                "{key}: {was} -> {now} when d was added"
            );
        }
    }

    #[test]
    fn blue_green_flip_moves_every_key() {
        let blue = split(&[("blue", 100), ("green", 0)], session());
        let green = split(&[("blue", 0), ("green", 100)], session());
        for i in 0..1_000 {
            let key = format!("user-{i}");
            assert_eq!(by_session(&blue, &key), Some(0));
            assert_eq!(by_session(&green, &key), Some(1));
        }
    }

    #[test]
    fn without_a_key_the_weighted_round_robin_is_exact() {
        for sticky in [None, session()] {
            let s = split(&[("v1", 95), ("v2", 5)], sticky);
            let mut counts = [0usize; 2];
            // No cookie, an empty one, and one with another name: no key.
            let h = [
                headers(&[]),
                headers(&[("cookie", "session=")]),
                headers(&[("cookie", "other=1")]),
            ];
            for i in 0..2_000 {
                counts[s.choose(&view(&h[i % 3], None)).unwrap()] += 1;
            }
            assert_eq!(counts, [1_900, 100]);
        }
    }

    #[test]
    fn when_takes_precedence_over_weights_and_sticky_keys() {
        let canary = When {
            headers: vec![(HeaderName::from_static("x-canary"), exact("1"))],
            cookies: vec![],
        };
        let beta = When {
            headers: vec![],
            cookies: vec![("canary".into(), exact("always"))],
        };
        let both = When {
            headers: vec![(HeaderName::from_static("x-team"), exact("*"))],
            cookies: vec![("tier".into(), exact("~^gold"))],
        };
        let s = split_with(
            vec![
                ("v1", 100, None),
                ("v2", 0, Some(canary)),
                ("v3", 0, Some(beta)),
                ("v4", 0, Some(both)),
            ],
            session(),
        );
        let pick = |pairs: &[(&str, &str)]| s.choose(&view(&headers(pairs), None));
        assert_eq!(pick(&[]), Some(0));
        assert_eq!(pick(&[("cookie", "session=abc")]), Some(0));
        assert_eq!(
            pick(&[("x-canary", "1"), ("cookie", "session=abc")]),
            Some(1)
        );
        assert_eq!(pick(&[("x-canary", "0")]), Some(0));
        // One matching value of a repeated header is enough.
        assert_eq!(pick(&[("x-canary", "0"), ("x-canary", "1")]), Some(1));
        assert_eq!(pick(&[("cookie", "a=b; canary=always")]), Some(2));
        assert_eq!(
            pick(&[("cookie", "a=b"), ("cookie", "canary=always")]),
            Some(2)
        );
        assert_eq!(pick(&[("cookie", "xcanary=always; canary=never")]), Some(0));
        // The first matching branch in config order wins.
        assert_eq!(
            pick(&[("x-canary", "1"), ("cookie", "canary=always")]),
            Some(1)
        );
        // All conditions of a `when` must hold.
        assert_eq!(pick(&[("x-team", "")]), Some(0));
        assert_eq!(pick(&[("cookie", "tier=silver"), ("x-team", "a")]), Some(0));
        assert_eq!(pick(&[("cookie", "tier=gold-1"), ("x-team", "a")]), Some(3));
    }

    #[test]
    fn all_zero_weights_take_only_matching_requests() {
        let when = When {
            headers: vec![(HeaderName::from_static("x-canary"), exact("*"))],
            cookies: vec![],
        };
        for sticky in [None, session()] {
            let s = split_with(vec![("v1", 0, None), ("v2", 0, Some(when.clone()))], sticky);
            let h = headers(&[("cookie", "session=abc")]);
            assert_eq!(s.choose(&view(&h, None)), None);
            let h = headers(&[("x-canary", "")]);
            assert_eq!(s.choose(&view(&h, None)), Some(1));
        }
    }

    #[test]
    fn header_query_and_client_ip_keys() {
        let s = split(&[("v1", 50), ("v2", 50)], StickyKey::parse("header:x-user"));
        let spread: std::collections::HashSet<_> = (0..100)
            .map(|i| {
                let h = headers(&[("x-user", &format!("u{i}"))]);
                let first = s.choose(&view(&h, None));
                for _ in 0..3 {
                    assert_eq!(s.choose(&view(&h, None)), first);
                }
                first
            })
            .collect();
        assert_eq!(spread.len(), 2);

        let s = split(&[("v1", 50), ("v2", 50)], StickyKey::parse("query:uid"));
        let h = headers(&[]);
        for i in 0..100 {
            let q = format!("a=1&uid=u{i}&uid=other");
            let first = s.choose(&view(&h, Some(&q)));
            // The first occurrence is the key.
            let only = format!("uid=u{i}");
            assert_eq!(s.choose(&view(&h, Some(&only))), first);
        }

        let s = split(&[("v1", 50), ("v2", 50)], StickyKey::parse("client_ip"));
        let spread: std::collections::HashSet<_> = (0..100u8)
            .map(|i| {
                let at = |ip| RequestView {
                    headers: &h,
                    query: None,
                    client_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, ip))),
                };
                let first = s.choose(&at(i));
                assert_eq!(s.choose(&at(i)), first);
                first
            })
            .collect();
        assert_eq!(spread.len(), 2);
    }

    #[test]
    fn sticky_key_syntax() {
        assert_eq!(StickyKey::parse("client_ip"), Some(StickyKey::ClientIp));
        assert_eq!(
            StickyKey::parse("header:X-User"),
            Some(StickyKey::Header(HeaderName::from_static("x-user")))
        );
        assert_eq!(
            StickyKey::parse("cookie:sid"),
            Some(StickyKey::Cookie("sid".into()))
        );
        assert_eq!(
            StickyKey::parse("query:u"),
            Some(StickyKey::Query("u".into()))
        );
        for bad in [
            "consumer",
            "cookie:",
            "header:a b",
            "ip",
            "query:",
            "body:x",
        ] {
            assert_eq!(StickyKey::parse(bad), None, "{bad}");
        }
    }
}
