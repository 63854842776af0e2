//! Broken configurations must be rejected with file, line, column and field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_config::parse_str;

fn errors(yaml: &str) -> Vec<String> {
    parse_str(yaml, "gw.yaml")
        .expect_err("config should be rejected")
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn unknown_key_names_line_column_and_field() {
    let e = errors("services:\n  - name: a\n    url: http://127.0.0.1:1\n    retry_count: 3\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("gw.yaml:4:5: services[0]: unknown field `retry_count`"),
        "{}",
        e[0]
    );
    assert!(e[0].contains("expected one of"), "{}", e[0]);
}

#[test]
fn wrong_type_is_located() {
    let e = errors("routes:\n  - name: r\n    paths: /a\n");
    assert!(
        e[0].starts_with("gw.yaml:3:12: routes[0].paths: invalid type"),
        "{}",
        e[0]
    );
}

#[test]
fn dangling_service_reference() {
    let e = errors(
        "services:\n  - name: a\n    url: http://127.0.0.1:1\nroutes:\n  - name: r\n    service: b\n",
    );
    assert_eq!(
        e,
        vec!["gw.yaml:6:5: routes[0].service: no service named `b` (defined services: a)"]
    );
}

#[test]
fn collects_every_cross_entity_error() {
    // Values are parsed as they are read, so a malformed value stops the
    // read at that value (tests/typed.rs); the checks between fields and
    // entities that follow are all collected.
    let e = errors(concat!(
        "listeners:\n  - address: 127.0.0.1:80\n  - address: 127.0.0.1:80\n",
        "services:\n  - name: a\n    url: http://127.0.0.1:1\n  - name: a\n    url: http://127.0.0.1:1\n",
        "routes:\n  - name: r\n    hosts: ['bad host']\n    service: nope\n",
        "    version: {value: v1, header: x-v, path: true}\n",
    ));
    let joined = e.join("\n");
    for needle in [
        "gw.yaml:3:5: listeners[1].address: `127.0.0.1:80` is already used by listeners[0]",
        "services[1].name: `a` is already used by services[0]",
        "routes[0].hosts[0]: `bad host` is not a host name",
        "routes[0].service: no service named `nope`",
        "routes[0].version: set exactly one of",
    ] {
        assert!(joined.contains(needle), "missing {needle:?} in:\n{joined}");
    }
}

#[test]
fn value_errors_stop_at_the_first_value() {
    for (yaml, want) in [
        (
            "listeners:\n  - address: nope\n",
            "gw.yaml:2:14: listeners[0].address: `nope` is not an IP:port",
        ),
        (
            "services:\n  - name: a\n    url: ftp://x\n",
            "gw.yaml:3:10: services[0].url: `ftp://x` must start with http://",
        ),
        (
            "routes:\n  - name: r\n    methods: [get]\n",
            "gw.yaml:3:15: routes[0].methods[0]: `get` is not an HTTP method",
        ),
        (
            "server:\n  trusted_proxies: [10.0.0.0/33]\n",
            "gw.yaml:2:21: server.trusted_proxies[0]: `10.0.0.0/33` is not an IP address or CIDR",
        ),
    ] {
        let e = errors(yaml);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with(want), "{yaml:?}: {}", e[0]);
    }
}

#[test]
fn yaml_syntax_error_is_located() {
    let e = errors("routes:\n  - name: [unclosed\n");
    assert!(e[0].starts_with("gw.yaml:"), "{}", e[0]);
}

#[test]
fn durations_and_defaults() {
    let loaded = parse_str(
        "server:\n  shutdown_timeout: 5s\nservices:\n  - name: a\n    url: http://127.0.0.1:1\n    timeout: 250ms\n",
        "gw.yaml",
    )
    .unwrap();
    assert_eq!(loaded.config.server.shutdown_timeout.as_secs(), 5);
    assert_eq!(loaded.config.services[0].timeout.as_millis(), 250);
    assert_eq!(loaded.config.server.max_header_count, 100);
    let e = errors("server:\n  shutdown_timeout: soon\n");
    assert!(e[0].contains("server.shutdown_timeout"), "{}", e[0]);
}

#[test]
fn empty_file_is_an_empty_config() {
    let loaded = parse_str("", "gw.yaml").unwrap();
    assert!(loaded.config.routes.is_empty());
}

#[test]
fn schema_is_generated_from_types() {
    let schema = gatehouse_config::schema();
    let text = schema.to_string();
    assert!(text.contains("\"routes\""));
    assert!(text.contains("strip_prefix"));
    assert!(text.contains("additionalProperties"));
}

#[test]
fn method_tokens_any_host_and_zero_timeouts() {
    let ok = parse_str(
        "routes:\n  - name: r\n    hosts: [\"*\", \"example.com.\"]\n    methods: [M-SEARCH, GET]\n",
        "gw.yaml",
    );
    assert!(ok.is_ok(), "{:?}", ok.err());
    let e = errors("server:\n  header_read_timeout: 0s\n");
    assert!(
        e[0].contains("server.header_read_timeout: must be greater than zero"),
        "{}",
        e[0]
    );
    let e = errors("routes:\n  - name: r\n    methods: [\"-\"]\n");
    assert!(e[0].contains("is not an HTTP method"), "{}", e[0]);
}

#[test]
fn dns_settings_default_and_names_are_checked() {
    let loaded = parse_str(
        "services:\n  - name: a\n    url: http://api.internal:8080\n",
        "gw.yaml",
    )
    .unwrap();
    let dns = &loaded.config.server.dns;
    assert!(dns.nameservers.is_empty());
    assert_eq!(dns.min_ttl, std::time::Duration::from_secs(1));
    assert_eq!(dns.max_ttl, std::time::Duration::from_secs(300));
    assert_eq!(dns.error_ttl, std::time::Duration::from_secs(5));
    assert_eq!(dns.timeout, std::time::Duration::from_secs(2));

    use gatehouse_config::{is_ip_literal, parse_nameserver, valid_dns_name};
    assert_eq!(
        parse_nameserver("10.0.0.2"),
        Some("10.0.0.2:53".parse().unwrap())
    );
    assert_eq!(
        parse_nameserver("[::1]:5353"),
        Some("[::1]:5353".parse().unwrap())
    );
    assert_eq!(parse_nameserver("::1"), Some("[::1]:53".parse().unwrap()));
    assert_eq!(parse_nameserver("10.0.0.2:0"), None);
    assert_eq!(parse_nameserver("dns.internal:53"), None);
    assert!(valid_dns_name("api.internal."));
    assert!(valid_dns_name("_http._tcp.api"));
    assert!(!valid_dns_name("a..b"));
    assert!(!valid_dns_name("-a.b"));
    assert!(!valid_dns_name(&"a".repeat(64)));
    assert!(is_ip_literal("[::1]") && is_ip_literal("10.0.0.1"));
    assert!(!is_ip_literal("localhost"));

    let e = errors("services:\n  - name: a\n    url: http://a..b:80\n");
    assert_eq!(
        e,
        vec!["gw.yaml:3:10: services[0].url: `a..b` is neither an IP address nor a DNS name"]
    );
}

#[test]
fn tls_settings_parse_and_static_tls_errors_are_located() {
    let tls = |extra: &str| {
        format!(
            "listeners:\n  - address: 127.0.0.1:0\n    tls:\n      certificates:\n        - cert: a.pem\n          key: a.key\n{extra}"
        )
    };
    // min_version as a string or a number; default 1.2.
    for (extra, want) in [
        ("", gatehouse_config::TlsVersion::Tls12),
        (
            "      min_version: \"1.3\"\n",
            gatehouse_config::TlsVersion::Tls13,
        ),
        (
            "      min_version: 1.3\n",
            gatehouse_config::TlsVersion::Tls13,
        ),
        (
            "      min_version: 1.2\n",
            gatehouse_config::TlsVersion::Tls12,
        ),
    ] {
        let loaded = parse_str(&tls(extra), "gw.yaml").unwrap();
        let t = loaded.config.listeners[0].tls.as_ref().unwrap();
        assert_eq!(t.min_version, want, "{extra}");
    }
    let e = errors(&tls("      min_version: 1.0\n"));
    assert!(
        e[0].starts_with(
            "gw.yaml:7:20: listeners[0].tls.min_version: unsupported TLS version `1.0`"
        ),
        "{}",
        e[0]
    );
    let e = errors(&tls(
        "      client_auth:\n        ca: x.pem\n        reqired: true\n",
    ));
    assert!(e[0].contains("unknown field `reqired`"), "{}", e[0]);
    // client_auth.required defaults to true.
    let loaded = parse_str(&tls("      client_auth:\n        ca: ca.pem\n"), "gw.yaml").unwrap();
    let auth = loaded.config.listeners[0]
        .tls
        .as_ref()
        .unwrap()
        .client_auth
        .clone();
    assert!(auth.unwrap().required);

    let e = errors("listeners:\n  - address: 127.0.0.1:0\n    tls:\n      certificates: []\n");
    assert!(
        e[0].starts_with("gw.yaml:4:7: listeners[0].tls.certificates: at least one certificate"),
        "{}",
        e[0]
    );
    let e = errors(&format!(
        "{}          hosts: [\"*\", \"ok.example.com\", \"*.example.com\", \"bad host\"]\n",
        tls("")
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].contains("listeners[0].tls.certificates[0].hosts[0]"),
        "{}",
        e[0]
    );
    assert!(
        e[1].contains("listeners[0].tls.certificates[0].hosts[3]"),
        "{}",
        e[1]
    );
}

#[test]
fn https_services_are_accepted_and_their_tls_block_checked() {
    let ok = parse_str(
        "services:\n  - name: a\n    url: https://backend.internal:8443/api\n    tls:\n      sni: backend.internal\n",
        "gw.yaml",
    )
    .unwrap();
    let tls = ok.config.services[0].tls.as_ref().unwrap();
    assert_eq!(tls.sni.as_deref(), Some("backend.internal"));
    assert!(!tls.insecure_skip_verify);

    let e = errors(
        "services:\n  - name: a\n    url: http://backend.internal\n    tls:\n      insecure_skip_verify: true\n",
    );
    assert!(
        e[0].starts_with("gw.yaml:4:5: services[0].tls: only used with an https:// URL"),
        "{}",
        e[0]
    );
    let e = errors(
        "services:\n  - name: a\n    url: https://b.internal\n    tls:\n      client_key: k.pem\n      sni: \"*.wild\"\n",
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].contains("services[0].tls.client_cert: required with `client_key`"),
        "{}",
        e[0]
    );
    assert!(e[1].contains("services[0].tls.sni"), "{}", e[1]);
}

#[test]
fn listener_path_options_default_safe_and_are_checked() {
    let loaded = parse_str("listeners:\n  - address: 127.0.0.1:0\n", "gw.yaml").unwrap();
    let p = loaded.config.listeners[0].paths;
    assert_eq!(p, gatehouse_config::ListenerPaths::default());
    assert_eq!(p.escaped_slashes, gatehouse_config::EscapedSlashes::Reject);
    assert!(p.merge_slashes);
    assert_eq!(p.semicolons, gatehouse_config::Semicolons::Reject);

    let loaded = parse_str(
        "listeners:\n  - address: 127.0.0.1:0\n    paths:\n      escaped_slashes: decode\n      merge_slashes: false\n      semicolons: keep\n",
        "gw.yaml",
    )
    .unwrap();
    let p = loaded.config.listeners[0].paths;
    assert_eq!(p.escaped_slashes, gatehouse_config::EscapedSlashes::Decode);
    assert!(!p.merge_slashes);
    assert_eq!(p.semicolons, gatehouse_config::Semicolons::Keep);

    for (extra, field) in [
        (
            "      escaped_slashes: allow\n",
            "listeners[0].paths.escaped_slashes",
        ),
        ("      semicolons: strip\n", "listeners[0].paths.semicolons"),
        ("      forward_raw: true\n", "listeners[0].paths"),
    ] {
        let e = errors(&format!(
            "listeners:\n  - address: 127.0.0.1:0\n    paths:\n{extra}"
        ));
        assert!(e[0].contains(field), "{extra}: {}", e[0]);
    }
}

#[test]
fn connection_limits_are_checked() {
    // (the `server:` lines, the expected message; "" = accepted)
    let cases = [
        (
            "  idle_timeout: 0s\n",
            "server.idle_timeout: must be greater than zero",
        ),
        (
            "  max_connections: 0\n",
            "server.max_connections: must be at least 1",
        ),
        (
            "  max_connections: 10\n  max_connections_per_ip: 11\n",
            "server.max_connections_per_ip: 11 is more than server.max_connections (10)",
        ),
        (
            "  http2_max_concurrent_streams: 0\n",
            "server.http2_max_concurrent_streams: must be at least 1",
        ),
        (
            "  max_requests_per_connection: 0\n",
            "server.max_requests_per_connection: must be at least 1",
        ),
        (
            "  max_connections_per_ip: -1\n",
            "server.max_connections_per_ip: invalid type",
        ),
        ("  max_connections: 10\n  max_connections_per_ip: 10\n", ""),
        ("  max_connections_per_ip: 0\n  idle_timeout: 5m\n", ""),
        ("  max_connections_per_ip: 100000\n", ""),
    ];
    for (server, expect) in cases {
        let yaml = format!("server:\n{server}");
        let got = parse_str(&yaml, "gw.yaml");
        if expect.is_empty() {
            assert!(got.is_ok(), "{server:?}: {:?}", got.err());
            continue;
        }
        let e = errors(&yaml);
        assert!(
            e.iter().any(|m| m.contains(expect)),
            "{server:?}: expected {expect:?}, got {e:?}"
        );
    }
    let defaults = gatehouse_config::Config::default().server;
    assert_eq!(defaults.idle_timeout, std::time::Duration::from_secs(60));
    assert_eq!(
        (defaults.max_connections, defaults.max_connections_per_ip),
        (None, None)
    );
    assert_eq!(defaults.http2_max_concurrent_streams, 100);
    assert_eq!(defaults.max_requests_per_connection, 100);
}
