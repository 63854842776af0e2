//! `--data-dir` has no default: a store-backed node that serves traffic
//! refuses to start without one (it would write the store's snapshot, with
//! every credential, wherever it was started), and nothing is written.

use std::process::Command;

#[derive(Debug)]
struct Case {
    name: &'static str,
    args: &'static [&'static str],
}

/// Roles that serve traffic need the directory; the message names the flag.
#[test]
fn store_node_without_data_dir_refuses_to_start() {
    let cases = [
        Case {
            name: "default role",
            args: &[],
        },
        Case {
            name: "role both",
            args: &["--role", "both"],
        },
        Case {
            name: "role data-plane",
            args: &["--role", "data-plane"],
        },
    ];
    for case in cases {
        let cwd = tempfile::tempdir().unwrap();
        let store = format!("sqlite://{}/g.db", cwd.path().display());
        let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .current_dir(cwd.path())
            .args(["run", "--store", &store])
            .args(case.args)
            .env_remove("GATEHOUSE_DATA_DIR")
            .env_remove("GATEHOUSE_CONFIG")
            .env_remove("GATEHOUSE_STORE")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{case:?}: {stderr}");
        assert!(
            stderr.contains("--data-dir (or GATEHOUSE_DATA_DIR) is required with --store"),
            "{}: {stderr}",
            case.name
        );
        let written: Vec<_> = std::fs::read_dir(cwd.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(written.is_empty(), "{}: wrote {written:?}", case.name);
    }
}
