//! `ipcring bridge ...` runs the separately built `ipcring-bridge` (it links Zenoh, which this
//! command never builds): found beside `ipcring` or on PATH, given every argument unchanged,
//! its exit status passed through; when it is missing, one line says how to build it.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

/// A copy of `ipcring` alone in a new directory, removed when dropped.
struct Alone(PathBuf);

impl Alone {
    fn new(tag: &str) -> Alone {
        let directory = std::env::temp_dir().join(format!("ipcring-bridge-dispatch-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&directory);
        std::fs::create_dir_all(&directory).unwrap();
        std::fs::copy(env!("CARGO_BIN_EXE_ipcring"), directory.join("ipcring")).unwrap();
        Alone(directory)
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(self.0.join("ipcring")).args(args).env("PATH", "/nonexistent").output().unwrap()
    }
}

impl Drop for Alone {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_missing_bridge_binary_says_how_to_build_it() {
    let alone = Alone::new("missing");
    let output = alone.run(&["bridge", "out", "ring-a", "--key", "demo/a"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cargo build --release -p ipcring-bridge"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn the_bridge_binary_beside_ipcring_gets_every_argument_and_gives_its_status() {
    let alone = Alone::new("beside");
    let fake = alone.0.join("ipcring-bridge");
    std::fs::write(&fake, "#!/bin/sh\necho \"args: $*\"\nexit 7\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = alone.run(&["bridge", "--help", "in", "demo/a", "ring-b", "--listen", "tcp/127.0.0.1:7447"]);
    assert_eq!(output.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "args: --help in demo/a ring-b --listen tcp/127.0.0.1:7447\n");
}
