//! The control plane's check without the data plane: plugin configs
//! through the registry, and the route table through the router.
#![allow(clippy::unwrap_used, clippy::expect_used)]

fn check(yaml: &str) -> Result<(), Vec<String>> {
    let loaded = gatehouse_config::parse_str(yaml, "gw.yaml").map_err(|e| vec![e.to_string()])?;
    gatehouse_control::check(&loaded, &gatehouse_plugins::registry())
        .map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

#[test]
fn plugins_and_routes_are_checked_without_the_proxy() {
    for (yaml, want) in [
        (
            "plugins:\n  - name: corz\n",
            "gw.yaml:2:5: plugins[0].name: unknown plugin `corz`",
        ),
        (
            "routes:\n  - name: r\n    plugins:\n      - name: request-size-limit\n        config: {max_bytes: -1}\n",
            "routes[0].plugins[0].config",
        ),
        (
            "consumers:\n  - username: a\n    plugins:\n      - name: request-id\n",
            "consumers[0].plugins[0].name: consumer `a`: plugin `request-id` cannot be attached to a consumer",
        ),
        (
            "routes:\n  - name: r\n    paths: [\"/users/{id}\"]\n    rewrite: /u/{uid}\n",
            "routes[0].rewrite:",
        ),
        (
            "routes:\n  - name: r\n    headers: {x-a: \"~(\"}\n",
            "routes[0].headers.x-a:",
        ),
    ] {
        let errs = check(yaml).expect_err(yaml);
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "{yaml}\nwant {want:?} in {errs:?}"
        );
    }
    check("routes:\n  - name: r\n    paths: [\"/a\"]\n    plugins:\n      - name: cors\n").unwrap();
}
