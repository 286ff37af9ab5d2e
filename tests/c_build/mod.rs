//! Builds the C programs of the layout tests with the system `cc`, in scratch directories under
//! cargo's per-target temporary directory, so that parallel test runs never share a file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// `shm-layout/` of this crate: the C header and the example peers.
pub fn layout_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("shm-layout")
}

/// A new, empty directory of this test process (`<target tmp>/c-<tag>-<pid>-<n>`).
pub fn scratch_dir(tag: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let directory = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "c-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    // A directory left by an earlier process with a recycled pid holds nothing we want.
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).unwrap_or_else(|error| panic!("creating {}: {error}", directory.display()));
    directory
}

/// Compiles `source` into the executable `output` with the flags the layout promises to be clean
/// under (`-std=c11 -O2 -Wall -Wextra -Werror`), `shm-layout/` on the include path. Panics with
/// the compiler's messages if it fails.
pub fn compile(source: &Path, output: &Path) {
    let result = Command::new("cc")
        .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(layout_dir())
        .arg("-o")
        .arg(output)
        .arg(source)
        .output()
        .unwrap_or_else(|error| panic!("running the system C compiler `cc`: {error}"));
    assert!(
        result.status.success(),
        "cc failed to compile {} ({}):\n{}",
        source.display(),
        result.status,
        String::from_utf8_lossy(&result.stderr)
    );
}
