//! Named table cases: every row of a table runs, and one failure lists each
//! failing row by its name, not only the first.

use std::collections::HashSet;

/// Fails if any row's result is an error, naming every failing row. Row
/// names must be unique; an empty table fails too.
#[track_caller]
pub fn assert_rows<'a>(rows: impl IntoIterator<Item = (&'a str, Result<(), String>)>) {
    let mut names = HashSet::new();
    let mut failures = Vec::new();
    for (name, result) in rows {
        assert!(names.insert(name), "two rows named {name:?}");
        if let Err(e) = result {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(!names.is_empty(), "an empty table");
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        names.len(),
        failures.join("\n\n")
    );
}

/// `Ok` when `text` contains every one of `needles`, else which are missing.
pub fn contains_all(text: &str, needles: &[&str]) -> Result<(), String> {
    let missing: Vec<&str> = needles
        .iter()
        .copied()
        .filter(|n| !text.contains(n))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("missing {missing:?} in:\n{text}"))
    }
}
