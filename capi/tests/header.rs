//! The checked-in C header (`include/ipcring_api.h`) is what cbindgen makes from the source
//! now; `IPCRING_BLESS=1 cargo test -p ipcring-c --test header` rewrites it.

use std::path::Path;

#[test]
fn the_checked_in_header_is_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let path = root.join("include/ipcring_api.h");
    if std::env::var_os("IPCRING_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "include/ipcring_api.h is stale: run `IPCRING_BLESS=1 cargo test -p ipcring-c --test header` and commit it"
    );
}
