//! Typed values are parsed once, as the file is read: each malformed value
//! is refused with the message `gatehouse validate` prints, its field path
//! and the position of the value. Hostile and malformed inputs per type.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_config::parse_str;

/// `yaml` is refused with exactly one error starting with `want`
/// (`file:line:col: field: message`).
fn check(yaml: &str, want: &str) {
    match parse_str(yaml, "gw.yaml") {
        Ok(_) => panic!("accepted, expected {want:?}:\n{yaml}"),
        Err(e) => {
            assert_eq!(e.0.len(), 1, "{yaml}: {e}");
            let got = e.0[0].to_string();
            assert!(got.starts_with(want), "{yaml}\n got: {got}\nwant: {want}");
        }
    }
}

fn accepted(yaml: &str) -> gatehouse_config::Config {
    match parse_str(yaml, "gw.yaml") {
        Ok(l) => l.config,
        Err(e) => panic!("refused:\n{yaml}\n{e}"),
    }
}

fn server(field: &str, value: &str) -> String {
    format!("server:\n  {field}: {value}\n")
}

#[test]
fn durations() {
    // (field: value, message); the value starts at column 5 + field length.
    for (field, value, message) in [
        ("shutdown_timeout", "soon", "`soon` is not a duration"),
        ("shutdown_timeout", "-5s", "`-5s` is not a duration"),
        (
            "shutdown_timeout",
            "5",
            "`5` is not a duration (time unit needed",
        ),
        ("shutdown_timeout", "0s", "must be greater than zero"),
        ("shutdown_timeout", "0ms", "must be greater than zero"),
        (
            "shutdown_timeout",
            "99999999999999999999999s",
            "`99999999999999999999999s` is not a duration",
        ),
        (
            "idle_timeout",
            "1 fortnight",
            "`1 fortnight` is not a duration",
        ),
        ("watch_interval", "\"\"", "`` is not a duration"),
    ] {
        let col = 5 + field.len();
        check(
            &server(field, value),
            &format!("gw.yaml:2:{col}: server.{field}: {message}"),
        );
    }
    let svc = |extra: &str| format!("services:\n  - name: a\n    url: http://127.0.0.1:1\n{extra}");
    for (extra, want) in [
        (
            "    circuit_breaker:\n      window: 5ms\n",
            "gw.yaml:5:15: services[0].circuit_breaker.window: must be at least 10ms",
        ),
        (
            "    circuit_breaker:\n      open_for: 25h\n",
            "gw.yaml:5:17: services[0].circuit_breaker.open_for: must be at most 24h",
        ),
        (
            "    total_timeout: 0s\n",
            "gw.yaml:4:20: services[0].total_timeout: must be greater than zero",
        ),
        (
            "    health_checks:\n      active:\n        interval: 0s\n",
            "gw.yaml:6:19: services[0].health_checks.active.interval: must be greater than zero",
        ),
    ] {
        check(&svc(extra), want);
    }
    let c = accepted(&server("shutdown_timeout", "1h 30m"));
    assert_eq!(c.server.shutdown_timeout.as_secs(), 5400);
    let c = accepted(&svc("    total_timeout: ~\n"));
    assert_eq!(c.services[0].total_timeout, None);
}

#[test]
fn numbers_and_ranges() {
    for (field, value, message) in [
        ("max_header_bytes", "100", "must be at least 1024"),
        ("max_header_bytes", "-1", "must be at least 1024"),
        ("max_header_count", "0", "must be at least 1"),
        (
            "max_header_count",
            "1.5",
            "invalid type: floating point `1.5`",
        ),
        (
            "http2_max_concurrent_streams",
            "4294967296",
            "must be at most 4294967295",
        ),
        ("http2_max_concurrent_streams", "-1", "must be at least 1"),
        (
            "max_connections",
            "0",
            "must be at least 1 (leave it out for the default)",
        ),
        (
            "max_requests_per_connection",
            "\"10\"",
            "invalid type: string \"10\"",
        ),
    ] {
        let col = 5 + field.len();
        check(
            &server(field, value),
            &format!("gw.yaml:2:{col}: server.{field}: {message}"),
        );
    }
    let svc = |extra: &str| format!("services:\n  - name: a\n    url: http://127.0.0.1:1\n{extra}");
    for (extra, want) in [
        (
            "    retries:\n      attempts: 11\n",
            "gw.yaml:5:17: services[0].retries.attempts: must be at most 10",
        ),
        (
            "    retries:\n      attempts: -1\n",
            "gw.yaml:5:17: services[0].retries.attempts: must be at least 0",
        ),
        (
            "    retries:\n      buffer_body: 67108865\n",
            "gw.yaml:5:20: services[0].retries.buffer_body: must be at most 67108864 bytes (64 MiB)",
        ),
        (
            "    retries:\n      budget:\n        ratio: 0\n",
            "gw.yaml:6:16: services[0].retries.budget.ratio: must be greater than 0 and at most 1",
        ),
        (
            "    retries:\n      budget:\n        ratio: 1.5\n",
            "gw.yaml:6:16: services[0].retries.budget.ratio: must be greater than 0 and at most 1",
        ),
        (
            "    circuit_breaker:\n      failure_ratio: -0.1\n",
            "gw.yaml:5:22: services[0].circuit_breaker.failure_ratio: must be greater than 0 and at most 1",
        ),
        (
            "    circuit_breaker:\n      half_open_requests: 1001\n",
            "gw.yaml:5:27: services[0].circuit_breaker.half_open_requests: must be between 1 and 1000",
        ),
        (
            "    circuit_breaker:\n      failure_statuses: [500, 99]\n",
            "gw.yaml:5:31: services[0].circuit_breaker.failure_statuses[1]: must be an HTTP status (100-599)",
        ),
        (
            "    health_checks:\n      passive:\n        unhealthy_statuses: [600]\n",
            "gw.yaml:6:30: services[0].health_checks.passive.unhealthy_statuses[0]: must be an HTTP status (100-599)",
        ),
        (
            "    health_checks:\n      active:\n        expected_statuses: [-200]\n",
            "gw.yaml:6:29: services[0].health_checks.active.expected_statuses[0]: must be an HTTP status (100-599)",
        ),
        (
            "    health_checks:\n      active:\n        healthy_threshold: 0\n",
            "gw.yaml:6:28: services[0].health_checks.active.healthy_threshold: must be at least 1",
        ),
        (
            "    targets:\n      - target: 10.0.0.1:80\n        weight: 70000\n",
            "gw.yaml:6:17: services[0].targets[0].weight: must be at most 65535",
        ),
        (
            "    concurrency:\n      max_in_flight: 0\n",
            "gw.yaml:5:22: services[0].concurrency.max_in_flight: must be at least 1",
        ),
    ] {
        check(&svc(extra), want);
    }
    check(
        "services:\n  - name: a\n    url: http://127.0.0.1:1\nroutes:\n  - name: r\n    split:\n      - service: a\n        weight: 65536\n",
        "gw.yaml:8:17: routes[0].split[0].weight: must be at most 65535",
    );
}

#[test]
fn networks_and_addresses() {
    for (value, message) in [
        (
            "10.0.0.1/8",
            "`10.0.0.1/8` has host bits set (expected the network's first address, e.g. 10.0.0.0/8)",
        ),
        (
            "fd00::1/8",
            "`fd00::1/8` has host bits set (expected the network's first address, e.g. fd00::/8)",
        ),
        ("10.0.0.0/33", "`10.0.0.0/33` is not an IP address or CIDR"),
        ("\"::/129\"", "`::/129` is not an IP address or CIDR"),
        ("\"[::1]\"", "`[::1]` is not an IP address or CIDR"),
        (
            "fe80::1%eth0",
            "`fe80::1%eth0` is not an IP address or CIDR",
        ),
        ("10.0.0", "`10.0.0` is not an IP address or CIDR"),
        ("localhost", "`localhost` is not an IP address or CIDR"),
        ("\"\"", "`` is not an IP address or CIDR"),
    ] {
        check(
            &format!("server:\n  trusted_proxies: [{value}]\n"),
            &format!("gw.yaml:2:21: server.trusted_proxies[0]: {message}"),
        );
    }
    let c = accepted(
        "server:\n  trusted_proxies: [10.0.0.1, 10.0.0.0/8, \"::1\", \"fd00::/8\", \"::ffff:10.0.0.1\"]\n",
    );
    assert_eq!(c.server.trusted_proxies.len(), 5);
    assert_eq!(c.server.trusted_proxies[0].to_string(), "10.0.0.1");
    assert_eq!(c.server.trusted_proxies[1].to_string(), "10.0.0.0/8");

    for value in [
        "10.0.0.2:0",
        "dns.internal:53",
        "\"[::1]\"",
        "10.0.0.2:65536",
        "\":53\"",
    ] {
        let shown = value.trim_matches('"');
        check(
            &format!("server:\n  dns:\n    nameservers: [{value}]\n"),
            &format!(
                "gw.yaml:3:19: server.dns.nameservers[0]: `{shown}` is not an IP address with an optional port"
            ),
        );
    }
    let c = accepted("server:\n  dns:\n    nameservers: [10.0.0.2, \"::1\", \"[::1]:5353\"]\n");
    let ns: Vec<String> = c
        .server
        .dns
        .nameservers
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(ns, ["10.0.0.2:53", "[::1]:53", "[::1]:5353"]);

    for value in [
        "localhost:8080",
        "0.0.0.0:99999",
        "\":8080\"",
        "\"::8080\"",
        "8080",
        "0.0.0.0",
    ] {
        let shown = value.trim_matches('"');
        check(
            &format!("listeners:\n  - address: {value}\n"),
            &format!("gw.yaml:2:14: listeners[0].address: `{shown}` is not an IP:port address"),
        );
    }
    accepted("listeners:\n  - address: \"[::]:8080\"\n  - address: 127.0.0.1:0\n");
}

#[test]
fn service_urls() {
    for (url, message) in [
        ("ftp://x", "`ftp://x` must start with http:// or https://"),
        (
            "api.internal:8080",
            "`api.internal:8080` must start with http:// or https://",
        ),
        (
            "http://user:pw@api.internal",
            "`http://user:pw@api.internal` must not contain user information",
        ),
        (
            "http://@api.internal",
            "`http://@api.internal` must not contain user information",
        ),
        ("http://api.internal/#frag", "must not contain a fragment"),
        (
            "http://api.internal/?a=1",
            "must not contain a query string",
        ),
        (
            "http://a..b:80",
            "`a..b` is neither an IP address nor a DNS name",
        ),
        (
            "http://a_b-.internal",
            "`a_b-.internal` is neither an IP address nor a DNS name",
        ),
        (
            "http://api.internal:0",
            "`http://api.internal:0` has no usable port",
        ),
        (
            "http://api.internal:99999",
            "`http://api.internal:99999` has no usable port",
        ),
        (
            "\"http://api.internal:\"",
            "`http://api.internal:` has no usable port",
        ),
        ("\"http://\"", "`http://` is not a valid URL"),
        (
            "\"http://api internal\"",
            "`http://api internal` is not a valid URL",
        ),
    ] {
        check(
            &format!("services:\n  - name: a\n    url: {url}\n"),
            &format!("gw.yaml:3:10: services[0].url: {message}"),
        );
    }
    let c = accepted("services:\n  - name: a\n    url: https://[::1]:8443/base/\n");
    let u = &c.services[0].url;
    assert!(u.is_https());
    assert_eq!(
        (u.host(), u.port(), u.base_path()),
        ("[::1]", 8443, "/base")
    );
    assert_eq!(u.as_str(), "https://[::1]:8443/base/");
}

#[test]
fn targets() {
    for (entry, want) in [
        (
            "target: 10.0.0.1",
            "gw.yaml:5:17: services[0].targets[0].target: `10.0.0.1` is not host:port with a port",
        ),
        (
            "target: 10.0.0.1:0",
            "gw.yaml:5:17: services[0].targets[0].target: `10.0.0.1:0` is not host:port with a port",
        ),
        (
            "target: user@10.0.0.1:80",
            "gw.yaml:5:17: services[0].targets[0].target: `user@10.0.0.1:80` is not host:port",
        ),
        (
            "target: a..b:80",
            "gw.yaml:5:17: services[0].targets[0].target: `a..b` is neither an IP address nor a DNS name",
        ),
        (
            "target: \"http://10.0.0.1:80\"",
            "gw.yaml:5:17: services[0].targets[0].target: `http://10.0.0.1:80` is not host:port",
        ),
        (
            "srv: _http.api",
            "gw.yaml:5:14: services[0].targets[0].srv: `_http.api` is not an SRV name",
        ),
        (
            "srv: http._tcp.api",
            "gw.yaml:5:14: services[0].targets[0].srv: `http._tcp.api` is not an SRV name",
        ),
    ] {
        check(
            &format!(
                "services:\n  - name: a\n    url: http://api.internal\n    targets:\n      - {entry}\n"
            ),
            want,
        );
    }
    let c = accepted(
        "services:\n  - name: a\n    url: http://api.internal\n    targets:\n      - target: \"[::1]:80\"\n      - srv: _http._tcp.api.internal\n",
    );
    let t = &c.services[0].targets;
    assert_eq!(t[0].target.as_ref().unwrap().port(), 80);
    assert_eq!(
        t[1].srv.as_ref().unwrap().as_str(),
        "_http._tcp.api.internal"
    );
}

#[test]
fn methods_headers_and_enums() {
    let route = |extra: &str| format!("routes:\n  - name: r\n{extra}");
    for (extra, want) in [
        (
            "    methods: [get]\n",
            "gw.yaml:3:15: routes[0].methods[0]: `get` is not an HTTP method (expected upper case, e.g. GET)",
        ),
        (
            "    methods: [\"GET POST\"]\n",
            "gw.yaml:3:15: routes[0].methods[0]: `GET POST` is not an HTTP method",
        ),
        (
            "    methods: [\"\"]\n",
            "gw.yaml:3:15: routes[0].methods[0]: `` is not an HTTP method",
        ),
        (
            "    methods: [123]\n",
            "gw.yaml:3:15: routes[0].methods[0]: `123` is not an HTTP method",
        ),
        (
            "    host_rewrite: \"\"\n",
            "gw.yaml:3:19: routes[0].host_rewrite: `` is not a valid Host value",
        ),
        (
            "    host_rewrite: \"a\\nb\"\n",
            "gw.yaml:3:19: routes[0].host_rewrite: `a\nb` is not a valid Host value",
        ),
        (
            "    rewrite: users\n",
            "gw.yaml:3:14: routes[0].rewrite: must start with `/`",
        ),
        (
            "    version: {value: v1, header: \"x v\"}\n",
            "gw.yaml:3:34: routes[0].version.header: `x v` is not a valid header name",
        ),
    ] {
        check(&route(extra), want);
    }
    check(
        &server("request_id_header", "\"bad header\""),
        "gw.yaml:2:22: server.request_id_header: `bad header` is not a valid header name",
    );
    let lb = |body: &str| {
        format!("services:\n  - name: a\n    url: http://127.0.0.1:1\n    load_balancing:\n{body}")
    };
    for (body, want) in [
        (
            "      algorithm: fastest\n",
            "gw.yaml:5:18: services[0].load_balancing.algorithm: unknown algorithm `fastest` (expected one of round-robin, least-connections, consistent-hash, random, p2c-ewma)",
        ),
        (
            "      algorithm: Round-Robin\n",
            "gw.yaml:5:18: services[0].load_balancing.algorithm: unknown algorithm `Round-Robin`",
        ),
        (
            "      algorithm: consistent-hash\n      hash_on: \"header:\"\n",
            "gw.yaml:6:16: services[0].load_balancing.hash_on: `header:` is not a hash key",
        ),
        (
            "      algorithm: consistent-hash\n      hash_on: \"cookie:\"\n",
            "gw.yaml:6:16: services[0].load_balancing.hash_on: `cookie:` is not a hash key",
        ),
        (
            "      algorithm: consistent-hash\n      hash_on: ip\n",
            "gw.yaml:6:16: services[0].load_balancing.hash_on: `ip` is not a hash key",
        ),
    ] {
        check(&lb(body), want);
    }
    check(
        "services:\n  - name: a\n    url: http://127.0.0.1:1\n    protocol: http3\n",
        "gw.yaml:4:15: services[0].protocol: unknown variant `http3`",
    );
    let sticky = |key: &str| {
        format!(
            "services:\n  - name: a\n    url: http://127.0.0.1:1\nroutes:\n  - name: r\n    split:\n      - service: a\n        weight: 1\n    sticky:\n      hash_on: {key}\n"
        )
    };
    check(
        &sticky("consumer"),
        "gw.yaml:10:16: routes[0].sticky.hash_on: `consumer` cannot be a sticky key",
    );
    check(
        &sticky("\"query:\""),
        "gw.yaml:10:16: routes[0].sticky.hash_on: `query:` is not a sticky key",
    );
    let c = accepted(&sticky("\"header:X-User\""));
    assert_eq!(
        c.routes[0].sticky.as_ref().unwrap().hash_on.to_string(),
        "header:x-user"
    );
}

#[test]
fn retry_conditions() {
    let on = |list: &str| {
        format!(
            "services:\n  - name: a\n    url: http://127.0.0.1:1\n    retries:\n      on: [{list}]\n"
        )
    };
    for (list, want) in [
        (
            "5xx",
            "gw.yaml:5:12: services[0].retries.on[0]: unknown retry condition `5xx` (expected connect-failure, reset, timeout, or a status such as 503)",
        ),
        (
            "600",
            "gw.yaml:5:12: services[0].retries.on[0]: must be an HTTP status (100-599)",
        ),
        (
            "-1",
            "gw.yaml:5:12: services[0].retries.on[0]: must be an HTTP status (100-599)",
        ),
        (
            "\"99\"",
            "gw.yaml:5:12: services[0].retries.on[0]: must be an HTTP status (100-599)",
        ),
        (
            "reset, Timeout",
            "gw.yaml:5:19: services[0].retries.on[1]: unknown retry condition `Timeout`",
        ),
        (
            "18446744073709551616",
            "gw.yaml:5:12: services[0].retries.on[0]",
        ),
    ] {
        check(&on(list), want);
    }
    let c = accepted(&on("reset, 503, \"502\", connect-failure"));
    use gatehouse_config::RetryCondition as R;
    assert_eq!(
        c.services[0].retries.on,
        [R::Reset, R::Status(503), R::Status(502), R::ConnectFailure]
    );
}

/// A config read, written back and read again is the same config.
#[test]
fn values_round_trip() {
    let yaml = concat!(
        "server:\n  trusted_proxies: [10.0.0.1, 10.0.0.0/8, \"fd00::/8\"]\n",
        "  request_id_header: X-Trace-Id\n  shutdown_timeout: 1h 30m\n",
        "  dns:\n    nameservers: [10.0.0.2, \"[::1]:5353\"]\n",
        "listeners:\n  - address: \"[::]:8080\"\n",
        "services:\n  - name: a\n    url: https://api.internal:8443/base\n",
        "    load_balancing: {algorithm: consistent-hash, hash_on: \"cookie:sid\"}\n",
        "    targets:\n      - target: 10.0.0.1:80\n        weight: 5\n      - srv: _http._tcp.api.internal\n",
        "    retries: {on: [reset, 503, \"502\"], methods: [GET, POST], attempts: 3}\n",
        "    circuit_breaker: {window: 250ms, failure_statuses: [500]}\n",
        "routes:\n  - name: r\n    service: a\n    methods: [M-SEARCH]\n    host_rewrite: api.example.com:8443\n",
        "    version: {value: v1, header: X-Version}\n    rewrite: /v1/{id}\n    paths: [\"/users/{id}\"]\n",
    );
    let first = accepted(yaml);
    let text = serde_norway::to_string(&first).unwrap();
    let second = accepted(&text);
    assert_eq!(first, second, "{text}");
    let json = serde_json::to_value(&first).unwrap();
    assert_eq!(json["services"][0]["url"], "https://api.internal:8443/base");
    assert_eq!(
        json["services"][0]["retries"]["on"],
        serde_json::json!(["reset", 503, 502])
    );
    assert_eq!(json["server"]["trusted_proxies"][0], "10.0.0.1");
    assert_eq!(json["server"]["request_id_header"], "x-trace-id");
    assert_eq!(json["server"]["shutdown_timeout"], "1h 30m");
    let back: gatehouse_config::Config = serde_json::from_value(json).unwrap();
    assert_eq!(first, back);
}
