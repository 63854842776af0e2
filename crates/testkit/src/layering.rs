//! Module layering: the top-level modules of a crate must not depend on
//! each other in a cycle (ARCHITECTURE.md, "Module layering").
//!
//! [`module_cycles`] reads a crate's `src/` and returns every cycle among its
//! top-level modules, found from the `crate::<module>` paths each module's
//! code names (comment lines and the unit-test module are not read). A crate keeps itself acyclic with one test:
//!
//! ```ignore
//! #[test]
//! fn modules_form_no_cycle() {
//!     let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
//!     assert_eq!(gatehouse_testkit::layering::module_cycles(&dir), Vec::<Vec<String>>::new());
//! }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The module each file of `src` belongs to (its first path component,
/// without `.rs`; `lib.rs` and `main.rs` belong to none) and the modules its
/// non-test code names through `crate::`.
pub fn module_deps(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let first = rel
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .expect("utf-8 path");
            let module = first.trim_end_matches(".rs");
            if module == "lib" || module == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let named = crate_paths(&code(non_test(&text)));
            let entry = deps.entry(module.to_owned()).or_default();
            entry.extend(named.into_iter().filter(|m| m != module));
        }
    }
    let known: BTreeSet<String> = deps.keys().cloned().collect();
    for d in deps.values_mut() {
        d.retain(|m| known.contains(m));
    }
    deps
}

/// Every cycle among the top-level modules of the crate whose sources are
/// in `src`: each strongly connected component of more than one module,
/// sorted.
pub fn module_cycles(src: &Path) -> Vec<Vec<String>> {
    cycles(&module_deps(src))
}

/// The text before a file's unit-test module (`#[cfg(test)]` followed by
/// `mod`): tests may reach anywhere in their crate.
fn non_test(text: &str) -> &str {
    let mut from = 0;
    while let Some(i) = text[from..].find("#[cfg(test)]") {
        let at = from + i;
        let rest = text[at + "#[cfg(test)]".len()..].trim_start();
        if rest.starts_with("mod ") {
            return &text[..at];
        }
        from = at + 1;
    }
    text
}

/// `text` without its comment lines: a doc link to a module that uses
/// this one (`see [crate::resources::Resources]`) is not a dependency.
fn code(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module names that follow `crate::` in `text`, including those in a
/// grouped import (`use crate::{a, b::C}`).
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        // `gatehouse_core::...` and `$crate::` are other crates' paths.
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // The first name of each top-level item: `a::{B, C}, d` → a, d.
            let mut depth = 0usize;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        item_start = false;
                        let name = ident(&group[j..]);
                        if !name.is_empty() && name != "self" {
                            out.insert(name);
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// Strongly connected components of more than one node (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    comp.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    self.found.push(comp);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found.sort();
    walk.found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        edges
            .iter()
            .map(|(k, vs)| {
                (
                    (*k).to_owned(),
                    vs.iter().map(|v| (*v).to_owned()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn finds_each_cycle_once_and_ignores_chains() {
        let g = graph(&[
            ("a", &["b"]),
            ("b", &["c"]),
            ("c", &["a", "d"]),
            ("d", &["e"]),
            ("e", &[]),
            ("x", &["y"]),
            ("y", &["x"]),
        ]);
        assert_eq!(
            cycles(&g),
            vec![vec!["a", "b", "c"], vec!["x", "y"]]
                .into_iter()
                .map(|c| c.into_iter().map(String::from).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        );
        assert!(cycles(&graph(&[("a", &["b"]), ("b", &[])])).is_empty());
    }

    #[test]
    fn reads_plain_grouped_and_nested_paths_but_not_other_crates() {
        let text = "use crate::retry;\nuse crate::{a::{B, C}, self, c};\n\
                    let x = crate::snapshot::compile();\n\
                    use gatehouse_core::Problem; $crate::m; my_crate::z;";
        let got: Vec<String> = crate_paths(text).into_iter().collect();
        assert_eq!(got, ["a", "c", "retry", "snapshot"]);
    }

    #[test]
    fn doc_links_are_not_dependencies() {
        let text = "//! See [`crate::resources::Resources`].\n    /// [`crate::x`]\nuse crate::a;";
        let got: Vec<String> = crate_paths(&code(text)).into_iter().collect();
        assert_eq!(got, ["a"]);
    }

    #[test]
    fn stops_at_the_unit_test_module() {
        let text = "use crate::a;\n#[cfg(test)]\nfn helper() {}\n\
                    #[cfg(test)]\nmod tests { use crate::b; }";
        let got: Vec<String> = crate_paths(non_test(text)).into_iter().collect();
        assert_eq!(got, ["a"]);
    }
}
