//! Test support for the integration tests under `integration/`: fixtures built in code, the
//! sample events of `events/`, and helpers to find the workspace and its built binaries.

#![allow(clippy::unwrap_used)] // Test support: a panic is a failed test.

pub mod crowd;
pub mod events;
pub mod finished;
pub mod fixtures;
pub mod harness;
pub mod quality;

use std::path::{Path, PathBuf};

/// The workspace root (the folder holding `events/`): this crate is `tests/gtseg-tests/`.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
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

/// A fresh, empty scratch directory for one test, under `target/test-scratch/` (so test runs
/// do not litter the system's temporary directory), removed when dropped. It derefs to its
/// path.
pub fn temp_dir(tag: &str) -> Scratch {
    let parent = workspace_root().join("target/test-scratch");
    std::fs::create_dir_all(&parent).expect("scratch parent");
    Scratch(
        tempfile::Builder::new()
            .prefix(&format!("{tag}-"))
            .tempdir_in(parent)
            .expect("temp dir"),
    )
}

/// See [`temp_dir`].
#[derive(Debug)]
pub struct Scratch(tempfile::TempDir);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<std::ffi::OsStr> for Scratch {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.path().as_os_str()
    }
}

/// A file in its own scratch directory, removed with it when dropped. It derefs to its path.
#[derive(Debug)]
pub struct ScratchFile {
    _dir: Scratch,
    path: PathBuf,
}

impl ScratchFile {
    /// `name` in a fresh scratch directory, holding `bytes`.
    pub fn new(tag: &str, name: &str, bytes: impl AsRef<[u8]>) -> Self {
        let dir = temp_dir(tag);
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("scratch file");
        Self { _dir: dir, path }
    }
}

impl std::ops::Deref for ScratchFile {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for ScratchFile {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// The folders the README's examples write into the sample store (gitignored, and removed by
/// `tests/readme_blocks.py` before it runs them): not part of `events/`'s contract.
pub const EXAMPLE_OUTPUTS: [&str; 2] = [
    "events/store/gt-example-bucket/output/street-scenes-v2",
    "events/store/gt-example-bucket/output/street-scenes-rebuilt",
];

/// Whether `path` lies in one of [`EXAMPLE_OUTPUTS`].
pub fn is_example_output(path: &Path) -> bool {
    EXAMPLE_OUTPUTS
        .iter()
        .any(|o| path.starts_with(workspace_root().join(o)))
}

/// Every file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.expect("readable dir"))
        .filter(|e| e.file_type().is_file())
        .map(walkdir::DirEntry::into_path)
        .collect();
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

/// Fails the test, with the command's stderr, unless it succeeded.
pub fn assert_succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "the command failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the built `gtseg` with `args` and `env` (no `RUST_LOG` noise, none of the caller's
/// function settings), killing it after two minutes: a regression must fail the test, not
/// hang or eat the machine's memory.
pub fn run_gtseg(args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    use std::time::{Duration, Instant};
    let mut child = std::process::Command::new(built_binary("gtseg"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("LABEL_CATEGORY_CONFIG")
        .env_remove("CONSOLIDATION_ALGORITHM")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run gtseg");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            child.kill().expect("kill");
            panic!("gtseg {args:?} ran for more than two minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}
