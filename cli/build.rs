//! Records what built the `ipcring` binary, for `bench --json` (`git_sha`, `rustc`): a benchmark
//! figure means little without the code and the compiler that produced it.

use std::process::Command;

fn output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn main() {
    let sha = output("git", &["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".to_string());
    let dirty = output("git", &["status", "--porcelain", "--untracked-files=no"]).is_some_and(|text| !text.is_empty());
    println!("cargo:rustc-env=IPCRING_GIT_SHA={sha}{}", if dirty { "-dirty" } else { "" });
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    println!(
        "cargo:rustc-env=IPCRING_RUSTC={}",
        output(&rustc, &["--version"]).unwrap_or_else(|| "unknown".to_string())
    );
    // Rebuild when the commit changes (HEAD moves, or the branch it names does), and when a
    // source file changes, so that the dirty flag is true of the tree that was built (an edit
    // after the last commit touches neither HEAD nor the index).
    for path in ["../.git/HEAD", "../.git/index", "../.git/refs/heads", "build.rs", "src", "../src", "../benches"] {
        println!("cargo:rerun-if-changed={path}");
    }
}
