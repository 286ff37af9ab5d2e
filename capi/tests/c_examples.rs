//! The C library from C (issue #19): `examples/producer.c` and `examples/consumer.c`, and the
//! API check `tests/c/api_check.c`, built with the system compiler (`CC`, else `cc`) against
//! `libipcring` (the producer linked to the shared library; the consumer and the check to the
//! static one, with the flags `pkg-config` reads from `ipcring.pc`) and run against Rust peers in
//! this process. The header is also compiled as C++.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ipcring_core::broadcast::{Publisher, Subscriber};
use ipcring_core::{mpmc, spsc, Builder, RecvError};

const MESSAGES: u64 = 200_000;
const SIZE: usize = 48;
const PATIENCE: Duration = Duration::from_secs(60);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The directory of `libipcring.so` and `libipcring.a` for this build (the test binary's
/// profile directory), built first: cargo builds a library that has no rlib for its own
/// integration tests only if asked, so this asks (once per test binary).
fn library_dir() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
            let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
            cargo.args(["build", "-q", "-p", "ipcring-c", "--manifest-path"]).arg(root().join("Cargo.toml"));
            if dir.file_name().is_some_and(|name| name == "release") {
                cargo.arg("--release");
            }
            // The same target directory as this test binary's.
            cargo.env("CARGO_TARGET_DIR", dir.parent().unwrap());
            let status = cargo.status().expect("cannot run cargo to build libipcring");
            assert!(status.success(), "building libipcring failed");
            assert!(dir.join("libipcring.a").exists(), "no libipcring.a in {}", dir.display());
            dir
        })
        .clone()
}

/// Compiles `source` into `output`; `linking` says how to link libipcring.
fn compile(source: &Path, output: &Path, linking: &[String]) {
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(&compiler)
        .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE", "-I"])
        .arg(root().join("include"))
        .arg(source)
        .arg("-o")
        .arg(output)
        .args(linking)
        .status()
        .unwrap_or_else(|error| panic!("cannot run {compiler}: {error}"));
    assert!(status.success(), "{compiler} failed on {}", source.display());
}

fn shared() -> Vec<String> {
    let dir = library_dir().display().to_string();
    vec![format!("-L{dir}"), "-lipcring".into(), format!("-Wl,-rpath,{dir}")]
}

/// Static linking, with the flags of `ipcring.pc` (made from `ipcring.pc.in` as `install.sh`
/// makes it, over an install tree of this build's library and header).
fn static_() -> Vec<String> {
    let prefix = library_dir().join("capi-prefix");
    std::fs::create_dir_all(prefix.join("lib/pkgconfig")).unwrap();
    std::fs::create_dir_all(prefix.join("include")).unwrap();
    std::fs::copy(library_dir().join("libipcring.a"), prefix.join("lib/libipcring.a")).unwrap();
    std::fs::copy(root().join("include/ipcring_api.h"), prefix.join("include/ipcring_api.h")).unwrap();
    let template = std::fs::read_to_string(root().join("ipcring.pc.in")).unwrap();
    let pc =
        template.replace("@PREFIX@", &prefix.display().to_string()).replace("@VERSION@", env!("CARGO_PKG_VERSION"));
    std::fs::write(prefix.join("lib/pkgconfig/ipcring.pc"), pc).unwrap();
    let output = Command::new("pkg-config")
        .args(["--cflags", "--libs", "--static", "ipcring"])
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .output()
        .expect("cannot run pkg-config");
    assert!(output.status.success(), "pkg-config: {}", String::from_utf8_lossy(&output.stderr));
    let flags: Vec<String> = String::from_utf8(output.stdout).unwrap().split_whitespace().map(String::from).collect();
    assert!(flags.iter().any(|flag| flag == "-lipcring"), "{flags:?}");
    // Only the static archive is in the tree, so `-lipcring` links it.
    flags
}

/// The C programs, built once per test binary into a directory of their own.
fn programs() -> &'static PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = library_dir().join("capi-c");
        std::fs::create_dir_all(&dir).unwrap();
        compile(&root().join("examples/producer.c"), &dir.join("producer"), &shared());
        compile(&root().join("examples/consumer.c"), &dir.join("consumer"), &static_());
        compile(&root().join("tests/c/api_check.c"), &dir.join("api_check"), &static_());
        dir
    })
}

fn unique(tag: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("ipcring-capi-{tag}-{}-{n}", std::process::id())
}

struct Removed(String);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = ipcring_core::remove(&self.0);
    }
}

/// A C program running, its output lines read by a thread.
struct Program {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Program {
    fn spawn(name: &str, args: &[String]) -> Program {
        let mut child = Command::new(programs().join(name)).args(args).stdout(Stdio::piped()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Program { child, lines }
    }

    fn expect(&self, prefix: &str) -> String {
        let line =
            self.lines.recv_timeout(PATIENCE).unwrap_or_else(|_| panic!("no `{prefix}` line within {PATIENCE:?}"));
        assert!(line.starts_with(prefix), "expected `{prefix}`, got `{line}`");
        line[prefix.len()..].trim().to_string()
    }

    fn finish(mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "the C program failed: {status}");
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the C program did not exit within {PATIENCE:?}");
            }
            std::thread::sleep(Duration::from_millis(5)); // SLEEP-OK: polling a child's exit with a deadline
        }
    }
}

/// Message `n` as the C programs write it.
fn encode(n: u64) -> [u8; SIZE] {
    let mut message = [0u8; SIZE];
    message[..8].copy_from_slice(&n.to_le_bytes());
    for (i, byte) in message.iter_mut().enumerate().skip(8) {
        *byte = (n.wrapping_mul(31).wrapping_add(i as u64)) as u8;
    }
    message
}

#[test]
fn the_api_check_passes_in_c() {
    let output = Command::new(programs().join("api_check")).arg(unique("check")).output().unwrap();
    assert!(
        output.status.success(),
        "api_check failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_header_compiles_as_cpp() {
    let compiler = std::env::var("CXX").unwrap_or_else(|_| "c++".to_string());
    let source = library_dir().join(format!("header-check-{}.cpp", std::process::id()));
    std::fs::write(&source, "#include \"ipcring_api.h\"\nint main() { return ipcring_close(nullptr), 0; }\n").unwrap();
    let status = Command::new(&compiler)
        .args(["-std=c++17", "-Wall", "-Werror", "-fsyntax-only", "-I"])
        .arg(root().join("include"))
        .arg(&source)
        .status()
        .unwrap_or_else(|error| panic!("cannot run {compiler}: {error}"));
    let _ = std::fs::remove_file(&source);
    assert!(status.success(), "ipcring_api.h does not compile as C++");
}

/// A C consumer process receives from a Rust producer (this process), for each kind: every
/// message once, in order, checked byte by byte, then the producer leaves.
#[test]
fn a_c_consumer_receives_every_message_from_a_rust_producer_of_each_kind() {
    for kind in ["spsc", "mpmc", "broadcast"] {
        let ring = unique(kind);
        let _removed = Removed(ring.clone());
        let builder = Builder::new(&ring).slots(256).slot_size(SIZE as u32);
        let mut sender: Box<dyn ipcring_core::channel::Sender> = match kind {
            "spsc" => Box::new(builder.create::<spsc::Sender>().unwrap()),
            "mpmc" => Box::new(builder.create::<mpmc::Sender>().unwrap()),
            _ => Box::new(builder.create::<Publisher>().unwrap()),
        };
        let consumer = Program::spawn("consumer", &[ring.clone(), kind.to_string(), MESSAGES.to_string()]);
        consumer.expect("attached");
        for n in 0..MESSAGES {
            sender.send(&encode(n)).unwrap();
        }
        drop(sender);
        assert_eq!(consumer.expect("received"), format!("{MESSAGES} lagged 0"), "{kind}");
        consumer.finish();
    }
}

/// A Rust consumer (this process) receives from a C producer process, for each kind.
#[test]
fn a_rust_consumer_receives_every_message_from_a_c_producer_of_each_kind() {
    for kind in ["spsc", "mpmc", "broadcast"] {
        let ring = unique(kind);
        let _removed = Removed(ring.clone());
        let builder = Builder::new(&ring).slots(256).slot_size(SIZE as u32);
        let mut receiver: Box<dyn ipcring_core::channel::Receiver> = match kind {
            "spsc" => Box::new(builder.create::<spsc::Receiver>().unwrap()),
            "mpmc" => Box::new(builder.create::<mpmc::Receiver>().unwrap()),
            _ => Box::new(builder.create::<Subscriber>().unwrap()),
        };
        let producer =
            Program::spawn("producer", &[ring.clone(), kind.to_string(), MESSAGES.to_string(), SIZE.to_string()]);
        let mut buffer = Vec::new();
        for n in 0..MESSAGES {
            receiver.recv_timeout(&mut buffer, PATIENCE).unwrap_or_else(|error| panic!("{kind}: message {n}: {error}"));
            assert_eq!(buffer, encode(n), "{kind}: message {n}");
        }
        assert_eq!(producer.expect("attached"), "");
        assert_eq!(producer.expect("sent"), MESSAGES.to_string());
        producer.finish();
        assert!(matches!(receiver.recv_timeout(&mut buffer, PATIENCE), Err(RecvError::Disconnected)), "{kind}");
    }
}
