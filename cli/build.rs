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
    // Rebuild when the commit changes (HEAD moves, or the branch it names does).
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/index");
    println!("cargo:rerun-if-changed=build.rs");
}
