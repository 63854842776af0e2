//! Every YAML example in docs/ and examples/ is a complete configuration
//! that `gatehouse validate` accepts (parse, validation and compilation of
//! routes and plugins), so the documentation cannot drift from the code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            markdown_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
}

/// ```yaml blocks with the line they start on.
fn yaml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut current {
            None if trimmed == "```yaml" => current = Some((i + 2, String::new())),
            Some(_) if trimmed.starts_with("```") => blocks.extend(current.take()),
            Some((_, buf)) => {
                buf.push_str(line);
                buf.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn every_yaml_example_in_the_docs_is_a_valid_config() {
    let mut files = Vec::new();
    markdown_files(&root().join("docs"), &mut files);
    files.push(root().join("README.md"));
    files.sort();
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (line, yaml) in yaml_blocks(&text) {
            let name = format!(
                "{}:{line}",
                file.strip_prefix(root()).unwrap_or(file).display()
            );
            // Relative file paths in examples (TLS certificates under
            // examples/certs/) resolve against the repository root, as if
            // the example were a file there.
            let result = gatehouse_config::parse_str(&yaml, &name)
                .map(|l| l.with_base_dir(root()))
                .and_then(|l| gatehouse_proxy::check(&l, &gatehouse_plugins::registry()));
            if let Err(e) = result {
                failures.push(format!("{name}:\n{e}"));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "invalid examples:\n{}",
        failures.join("\n\n")
    );
    assert!(
        checked >= 10,
        "only {checked} examples found; is docs/ missing?"
    );
}

#[test]
fn shipped_examples_are_valid() {
    for entry in std::fs::read_dir(root().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let loaded = gatehouse_config::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
            gatehouse_proxy::check(&loaded, &gatehouse_plugins::registry())
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

#[test]
fn demo_config_is_embedded_verbatim() {
    let on_disk = std::fs::read_to_string(root().join("examples/gatehouse.yaml")).unwrap();
    assert_eq!(gatehouse::DEMO_CONFIG, on_disk);
}
