//! No crate of the workspace has a cycle among its top-level modules
//! (ARCHITECTURE.md, "Module layering").

use std::path::Path;

#[test]
fn no_crate_has_a_module_cycle() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crates/");
    let mut checked = Vec::new();
    let mut found = Vec::new();
    for entry in std::fs::read_dir(crates).expect("read crates/") {
        let src = entry.expect("entry").path().join("src");
        if !src.is_dir() {
            continue;
        }
        let name = src.parent().and_then(Path::file_name).expect("crate dir");
        checked.push(name.to_string_lossy().into_owned());
        for cycle in gatehouse_testkit::layering::module_cycles(&src) {
            found.push(format!("{}: {}", name.to_string_lossy(), cycle.join(" ⇄ ")));
        }
    }
    assert!(
        checked.iter().any(|c| c == "proxy") && checked.iter().any(|c| c == "gatehouse"),
        "the check must see the workspace's crates, saw {checked:?}"
    );
    assert!(found.is_empty(), "module cycles:\n{}", found.join("\n"));
}
