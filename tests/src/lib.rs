//! Test support for the integration tests under `integration/`: fixtures built in code, the
//! sample events of `events/`, and helpers to find the workspace and its built binaries.

#![allow(clippy::unwrap_used)] // Test support: a panic is a failed test.

pub mod crowd;
pub mod events;
pub mod fixtures;
pub mod harness;

use std::path::{Path, PathBuf};

/// The workspace root (the folder holding `events/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A binary of the workspace, built by `cargo build --workspace` (the Makefile's `test`
/// target does that first). Panics with what to run when it is missing.
pub fn built_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace` (or `make test`) before the integration tests",
        path.display()
    );
    path
}

/// A fresh, empty scratch directory for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    // Under target/, so test runs do not litter the system's temporary directory.
    let d = workspace_root()
        .join("target/test-scratch")
        .join(format!("{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Every file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("readable dir") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Copies a directory tree (for a writable copy of `events/store`).
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for file in files_under(from) {
        let dst = to.join(file.strip_prefix(from).expect("under the source"));
        if let Some(d) = dst.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::copy(&file, dst)?;
    }
    Ok(())
}
