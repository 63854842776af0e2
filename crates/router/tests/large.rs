//! A 10,000-route table checked against a naive linear reference matcher.

use gatehouse_router::{Match, RequestInfo, RouteSpec, Router};
use http::{HeaderMap, Method};

/// Deterministic xorshift so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const WORDS: &[&str] = &[
    "users", "orders", "items", "a", "b", "api", "v1", "x", "7", "me",
];
const HOSTS: &[&str] = &["h0.test", "h1.test", "a.h2.test", "b.a.h2.test", "h3.test"];

fn gen_path(rng: &mut Rng, for_request: bool) -> String {
    let depth = 1 + rng.below(4);
    let mut p = String::new();
    let mut param = 0;
    for i in 0..depth {
        p.push('/');
        if i == 0 {
            // A wide first level, so that many requests miss.
            p.push_str(&format!(
                "s{}",
                rng.below(if for_request { 60 } else { 50 })
            ));
            continue;
        }
        match rng.below(6) {
            0 => {
                p.push_str(&format!("{{p{param}}}"));
                param += 1;
            }
            1 if i + 1 == depth => p.push('*'),
            2 if i + 1 == depth => p.push_str("{*rest}"),
            _ => p.push_str(rng.pick(WORDS)),
        }
    }
    p
}

fn gen_spec(rng: &mut Rng) -> RouteSpec {
    let hosts = match rng.below(5) {
        0 => vec![],
        1 => vec!["*.h2.test".to_owned()],
        2 => vec!["*.test".to_owned()],
        _ => vec![rng.pick(HOSTS).to_owned()],
    };
    let methods = match rng.below(3) {
        0 => vec![Method::GET],
        1 => vec![Method::POST, Method::PUT],
        _ => vec![],
    };
    RouteSpec {
        hosts,
        paths: vec![gen_path(rng, false)],
        methods,
        priority: if rng.below(20) == 0 { 1 } else { 0 },
        ..Default::default()
    }
}

/// Rank of a (route, host, path) candidate in the documented order; greatest wins.
type Rank = (
    i32,
    (u8, usize),
    (u8, usize, usize),
    u32,
    std::cmp::Reverse<usize>,
);

fn host_rank(pattern: Option<&str>, host: &str) -> Option<(u8, usize)> {
    match pattern {
        None => Some((0, 0)),
        Some(p) => match p.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .filter(|head| head.len() > 1 && head.ends_with('.'))
                .map(|_| (1, suffix.len())),
            None => (p == host).then_some((2, 0)),
        },
    }
}

/// Path class and tie-breakers, as documented.
type PathRank = (u8, usize, usize);

/// (rank, captures) if `pattern` matches `path`.
fn path_rank(pattern: &str, path: &str) -> Option<(PathRank, Vec<(String, String)>)> {
    let pat: Vec<&str> = pattern[1..].split('/').collect();
    let req: Vec<&str> = path[1..].split('/').collect();
    let mut caps = Vec::new();
    let mut statics = 0;
    let mut consumed = 0;
    for (i, p) in pat.iter().enumerate() {
        let last = i + 1 == pat.len();
        if last && *p == "*" {
            return Some(((2, consumed, statics), caps));
        }
        if last && p.starts_with("{*") {
            let rest = req.get(i..)?.join("/");
            if rest.is_empty() || req[i].is_empty() {
                return None;
            }
            caps.push((p[2..p.len() - 1].to_owned(), rest));
            return Some(((3, statics * 2, 0), caps));
        }
        let seg = req.get(i)?;
        if p.starts_with('{') {
            if seg.is_empty() {
                return None;
            }
            caps.push((p[1..p.len() - 1].to_owned(), (*seg).to_owned()));
        } else if p == seg {
            statics += 1;
        } else {
            return None;
        }
        consumed += 1 + seg.len();
    }
    if req.len() != pat.len() {
        return None;
    }
    Some(if caps.is_empty() {
        ((4, 0, 0), caps)
    } else {
        ((3, statics * 2, 1), caps)
    })
}

fn reference(specs: &[RouteSpec], host: &str, path: &str, method: &Method) -> Match {
    let mut best: Option<(Rank, Vec<(String, String)>)> = None;
    let mut allowed: Vec<Method> = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let host_patterns: Vec<Option<&str>> = if s.hosts.is_empty() {
            vec![None]
        } else {
            s.hosts.iter().map(|h| Some(h.as_str())).collect()
        };
        for hp in host_patterns {
            let Some(hr) = host_rank(hp, host) else {
                continue;
            };
            let Some((pr, caps)) = path_rank(&s.paths[0], path) else {
                continue;
            };
            if !s.methods.is_empty() && !s.methods.contains(method) {
                allowed.extend(s.methods.iter().cloned());
                continue;
            }
            let rank = (
                s.priority,
                hr,
                pr,
                u32::from(!s.methods.is_empty()),
                std::cmp::Reverse(i),
            );
            // The router ranks prefixes by (consumed bytes, statics): statics
            // here count the same literal segments.
            if best.as_ref().is_none_or(|(b, _)| rank > *b) {
                best = Some((rank, caps));
            }
        }
    }
    match best {
        Some((rank, caps)) => Match::Found(gatehouse_router::RouteMatch {
            route: rank.4.0,
            captures: caps.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            matched_prefix: 0, // compared separately
            version_prefix: 0,
        }),
        None if !allowed.is_empty() => {
            allowed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
            allowed.dedup();
            Match::MethodNotAllowed { allowed }
        }
        None => Match::NotFound,
    }
}

#[test]
fn ten_thousand_routes_agree_with_reference() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let specs: Vec<RouteSpec> = (0..10_000).map(|_| gen_spec(&mut rng)).collect();
    let router = match Router::build(specs.clone()) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(router.len(), 10_000);
    let headers = HeaderMap::new();
    let methods = [Method::GET, Method::POST, Method::DELETE];
    let (mut found, mut not_allowed, mut not_found) = (0, 0, 0);
    for _ in 0..1_500 {
        let host = rng.pick(&[
            "h0.test",
            "h1.test",
            "a.h2.test",
            "b.a.h2.test",
            "zz.test",
            "other",
        ]);
        let mut path = gen_path(&mut rng, true)
            .replace("{*rest}", "r/s")
            .replace('*', "w");
        for n in 0..3 {
            path = path.replace(&format!("{{p{n}}}"), rng.pick(WORDS));
        }
        if rng.below(10) == 0 {
            path.push('/');
        }
        let method = &methods[rng.below(methods.len())];
        let got = router.find(&RequestInfo {
            host: Some(host),
            path: &path,
            method,
            headers: &headers,
            query: None,
        });
        let want = reference(&specs, host, &path, method);
        match (&got, &want) {
            (Match::Found(g), Match::Found(w)) => {
                found += 1;
                assert_eq!(
                    (g.route, &g.captures),
                    (w.route, &w.captures),
                    "{method} {host}{path}"
                );
            }
            _ => {
                assert_eq!(got, want, "{method} {host}{path}");
                match got {
                    Match::MethodNotAllowed { .. } => not_allowed += 1,
                    _ => not_found += 1,
                }
            }
        }
    }
    // Every outcome must be exercised for the comparison to mean something.
    assert!(
        found > 150 && not_allowed > 5 && not_found > 50,
        "found {found}, 405 {not_allowed}, 404 {not_found}"
    );
}
