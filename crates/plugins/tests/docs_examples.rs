//! Checks `docs/plugins/<name>.md`: one page per registered plugin, and
//! every ```yaml example is a complete gatehouse config whose plugin
//! entries build with the registry. The file as a whole is also checked by
//! `gatehouse_config::parse_str`, the loader `gatehouse validate` uses.

// Test code: a malformed example should fail loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use gatehouse_core::{Band, BuildCx, BuildEnv, Consumer, Resources, Scope};
use serde_json::Value;

fn docs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/plugins")
}

/// The bodies of the ```yaml fenced blocks of `markdown`.
fn yaml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_start() == "```yaml" => current = Some(String::new()),
            Some(_) if line.trim_start().starts_with("```") => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "unclosed ```yaml block");
    blocks
}

/// The build environment of an example: its consumers, and each
/// registered credential scheme's index of their credentials (each
/// credential checked by its scheme).
fn env_of(config: &Value) -> BuildEnv {
    let schemes = gatehouse_plugins::registry().schemes().clone();
    let mut consumers = HashMap::new();
    let mut credentials: HashMap<&str, Vec<(Consumer, &Value)>> = HashMap::new();
    for consumer in config["consumers"].as_array().into_iter().flatten() {
        let username = consumer["username"].as_str().expect("consumer username");
        let rt = Consumer {
            username: Arc::from(username),
            custom_id: None,
        };
        consumers.insert(username.to_owned(), rt.clone());
        for (field, list) in consumer["credentials"].as_object().into_iter().flatten() {
            for cred in list.as_array().expect("a list of credentials") {
                if let Err((path, message)) = schemes.check(field, cred) {
                    panic!("{username}: credentials.{field} ({path}): {message}");
                }
                credentials
                    .entry(field.as_str())
                    .or_default()
                    .push((rt.clone(), cred));
            }
        }
    }
    let mut env = BuildEnv {
        consumers: Arc::new(consumers),
        ..BuildEnv::default()
    };
    for scheme in schemes.iter() {
        let list = credentials.remove(scheme.field()).unwrap_or_default();
        env.credentials.insert(scheme.name(), scheme.index(&list));
    }
    env
}

/// Every plugin entry of the file with where it sits.
fn plugin_refs(config: &Value) -> Vec<(String, &Value)> {
    let mut lists = vec![(String::new(), &config["plugins"])];
    for section in ["services", "routes", "consumers"] {
        for (i, item) in config[section].as_array().into_iter().flatten().enumerate() {
            lists.push((format!("{section}[{i}]."), &item["plugins"]));
        }
    }
    let mut refs = Vec::new();
    for (at, list) in lists {
        for (i, entry) in list.as_array().into_iter().flatten().enumerate() {
            refs.push((format!("{at}plugins[{i}]"), entry));
        }
    }
    refs
}

/// Validates one example; returns the plugin names it uses.
fn check_example(page: &str, yaml: &str) -> Vec<String> {
    let config: Value =
        serde_norway::from_str(yaml).unwrap_or_else(|e| panic!("{page}: bad YAML: {e}\n{yaml}"));
    let top = config
        .as_object()
        .unwrap_or_else(|| panic!("{page}: not a mapping"));
    for key in top.keys() {
        assert!(
            ["listeners", "services", "routes", "plugins", "consumers"].contains(&key.as_str()),
            "{page}: unexpected top-level key {key}"
        );
    }
    for key in ["listeners", "services", "routes"] {
        assert!(top.contains_key(key), "{page}: example lacks `{key}`");
    }
    for listener in config["listeners"].as_array().expect("listeners list") {
        assert!(
            listener["address"].is_string(),
            "{page}: listener without address"
        );
    }
    let services: Vec<&str> = config["services"]
        .as_array()
        .expect("services list")
        .iter()
        .map(|s| {
            assert!(s["url"].is_string(), "{page}: service without url");
            s["name"].as_str().expect("service name")
        })
        .collect();
    for route in config["routes"].as_array().expect("routes list") {
        assert!(route["name"].is_string(), "{page}: route without name");
        let service = route["service"].as_str().expect("route service");
        assert!(
            services.contains(&service),
            "{page}: unknown service {service}"
        );
        assert!(route["paths"].is_array(), "{page}: route without paths");
    }

    let registry = gatehouse_plugins::registry();
    let env = env_of(&config);
    let mut used = Vec::new();
    for (at, entry) in plugin_refs(&config) {
        let obj = entry
            .as_object()
            .unwrap_or_else(|| panic!("{page} {at}: not a mapping"));
        for key in obj.keys() {
            assert!(
                ["name", "enabled", "priority", "config"].contains(&key.as_str()),
                "{page} {at}: unexpected key {key}"
            );
        }
        let name = entry["name"]
            .as_str()
            .unwrap_or_else(|| panic!("{page} {at}: no name"));
        let factory = registry
            .get(name)
            .unwrap_or_else(|| panic!("{page} {at}: unknown plugin {name}"));
        let config = entry.get("config").cloned().unwrap_or(Value::Null);
        let (scope, resources) = (Scope::Other("docs".into()), Resources::detached());
        let cx = BuildCx::new(name, &env, &scope, &resources);
        if let Err(err) = factory.build(&config, &cx) {
            panic!(
                "{page} {at}: {name} config rejected at `{}`: {}",
                err.path, err.message
            );
        }
        used.push(name.to_owned());
    }
    used
}

#[test]
fn every_plugin_has_a_page_with_a_valid_example() {
    for factory in gatehouse_plugins::registry().iter() {
        let name = factory.name();
        let page = docs_dir().join(format!("{name}.md"));
        let text =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(text.starts_with(&format!("# {name}\n")), "{name}.md: title");
        assert!(
            text.contains(&format!("`{}`", factory.priority())),
            "{name}.md does not state its priority"
        );
        let blocks = yaml_blocks(&text);
        assert!(!blocks.is_empty(), "{name}.md has no ```yaml example");
        let mut used = Vec::new();
        for block in &blocks {
            used.extend(check_example(&format!("{name}.md"), block));
        }
        assert!(
            used.iter().any(|u| u == name),
            "{name}.md: no example uses {name}"
        );
    }
}

#[test]
fn no_page_without_a_plugin() {
    let registry = gatehouse_plugins::registry();
    for entry in std::fs::read_dir(docs_dir()).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
        // AUTHORING.md and README.md are about plugins in general.
        if stem.chars().all(|c| c.is_ascii_uppercase()) {
            continue;
        }
        assert!(
            registry.get(&stem).is_some(),
            "{} documents no plugin",
            path.display()
        );
    }
}

#[test]
fn a_broken_example_is_caught() {
    let yaml = "listeners:\n  - address: \"127.0.0.1:8080\"\nservices:\n  - name: echo\n    url: \"http://127.0.0.1:9000\"\nroutes:\n  - name: r\n    service: echo\n    paths: [\"/\"]\n    plugins:\n      - name: cors\n        config:\n          origins: [\"nope\"]\n";
    let result = std::panic::catch_unwind(|| check_example("test", yaml));
    assert!(result.is_err());
}

/// The cells of the table rows of `markdown` under the heading `heading`.
fn table_rows(markdown: &str, heading: &str) -> Vec<Vec<String>> {
    let section = markdown
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("no `## {heading}` section"));
    section
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|--") && !l.starts_with("| --"))
        .skip(1) // the header row
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

/// The first `code` span of a cell.
fn code(cell: &str) -> &str {
    cell.split('`').nth(1).unwrap_or(cell)
}

#[test]
fn readme_bands_and_priorities_match_the_registry() {
    let text = std::fs::read_to_string(docs_dir().join("README.md")).unwrap();
    let bands: Vec<(String, String)> = table_rows(&text, "Priority bands")
        .into_iter()
        .map(|r| (code(&r[0]).to_owned(), r[1].clone()))
        .collect();
    let want: Vec<(String, String)> = Band::ALL
        .iter()
        .map(|b| {
            let r = b.range();
            (b.name().to_owned(), format!("{} to {}", r.end(), r.start()))
        })
        .collect();
    assert_eq!(bands, want, "docs/plugins/README.md bands");

    let registry = gatehouse_plugins::registry();
    let mut rows: Vec<(String, String, String)> = table_rows(&text, "Built-in plugins")
        .into_iter()
        .map(|r| {
            (
                code(&r[0]).to_owned(),
                code(&r[1]).to_owned(),
                code(&r[2]).to_owned(),
            )
        })
        .collect();
    rows.sort();
    let mut want: Vec<(String, String, String)> = registry
        .iter()
        .map(|f| {
            (
                f.name().to_owned(),
                f.band().name().to_owned(),
                f.priority().to_string(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(rows, want, "docs/plugins/README.md plugin table");
}

#[test]
fn errors_md_lists_every_problem_type_with_its_status_and_owner() {
    let path = docs_dir().join("../errors.md");
    let text = std::fs::read_to_string(&path).unwrap();
    // (slug, status, raised by) of every row of the one table.
    let rows: Vec<(String, u16, String)> = table_rows(&text, "Problem types")
        .into_iter()
        .filter(|r| r[0].contains("urn:gatehouse:problem:"))
        .map(|r| {
            let slug = code(&r[0]).trim_start_matches("urn:gatehouse:problem:");
            let status: String = r[1].chars().take_while(char::is_ascii_digit).collect();
            (slug.to_owned(), status.parse().unwrap(), r[3].clone())
        })
        .collect();
    let mut want: Vec<(String, u16, Option<&str>)> = gatehouse_core::problem::CORE_TYPES
        .iter()
        .map(|t| (t.slug().to_owned(), t.status().as_u16(), None))
        .collect();
    let registry = gatehouse_plugins::registry();
    for factory in registry.iter() {
        for def in factory.problem_types() {
            want.push((def.slug.to_owned(), def.status, Some(factory.name())));
        }
    }
    for (slug, status, owner) in &want {
        let row = rows
            .iter()
            .find(|(s, st, _)| s == slug && st == status)
            .unwrap_or_else(|| {
                panic!("docs/errors.md has no row for `{slug}` with status {status}")
            });
        if let Some(owner) = owner {
            assert!(
                row.2.contains(&format!("`{owner}`")),
                "docs/errors.md: `{slug}` is raised by `{owner}`, the table says {}",
                row.2
            );
        }
    }
    for (slug, _, _) in &rows {
        assert!(
            want.iter().any(|(s, _, _)| s == slug),
            "docs/errors.md lists `{slug}`, which neither the gateway nor a registered plugin has"
        );
    }
}
