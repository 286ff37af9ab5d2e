//! Who may attach: the default mode, symlinks planted in /dev/shm, rings owned by another user,
//! and segments truncated by someone.
#![cfg(not(loom))]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::atomic::{AtomicU32, Ordering};

use ipcring::__private::segment::{CreateOptions, OpenOptions, Segment};
use ipcring::Error;

fn unique(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!("ipcring-test-perm-{tag}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Removes a name in /dev/shm when dropped.
struct Unlink(String);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/dev/shm/{}", self.0));
    }
}

#[test]
fn a_new_ring_is_readable_and_writable_by_its_owner_only() {
    let name = unique("mode");
    let _guard = Unlink(name.clone());
    Segment::create(&name, &CreateOptions::default()).unwrap();
    let metadata = std::fs::metadata(format!("/dev/shm/{name}")).unwrap();
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
}

#[test]
fn creating_over_an_existing_name_fails_instead_of_reusing_it() {
    let name = unique("excl");
    let _guard = Unlink(name.clone());
    Segment::create(&name, &CreateOptions::default()).unwrap();
    assert!(matches!(Segment::create(&name, &CreateOptions::default()), Err(Error::AlreadyExists { .. })));
}

#[test]
fn a_symlink_planted_in_dev_shm_is_not_followed() {
    let (target, link) = (unique("target"), unique("link"));
    let _guards = (Unlink(target.clone()), Unlink(link.clone()));
    Segment::create(&target, &CreateOptions::default()).unwrap();
    std::os::unix::fs::symlink(format!("/dev/shm/{target}"), format!("/dev/shm/{link}")).unwrap();
    assert!(matches!(Segment::open(&link), Err(Error::PermissionDenied { .. })));
    // Creating at the link's name must not write through it either.
    assert!(matches!(Segment::create(&link, &CreateOptions::default()), Err(Error::AlreadyExists { .. })));
    assert!(!Segment::is_ring(&link).unwrap());
}

#[test]
fn a_ring_owned_by_another_user_is_refused_unless_explicitly_allowed() {
    let name = unique("owner");
    let _guard = Unlink(name.clone());
    Segment::create(&name, &CreateOptions { mode: 0o666, ..CreateOptions::default() }).unwrap();
    let path = format!("/dev/shm/{name}");
    // Handing the file to another uid needs root; without it the refusal cannot be staged.
    if nix::unistd::Uid::effective().is_root() {
        std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
        // The header records the creator's uid, which must match the file's owner: as if uid
        // 4242 had created it.
        let offset = std::mem::offset_of!(ipcring::__private::layout::Header, creator_uid) as u64;
        std::os::unix::fs::FileExt::write_all_at(
            &std::fs::OpenOptions::new().write(true).open(&path).unwrap(),
            &4242u32.to_le_bytes(),
            offset,
        )
        .unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().uid(), 4242);
        assert!(matches!(Segment::open(&name), Err(Error::ForeignOwner { owner: 4242, .. })));
        let allowed =
            Segment::open_with(&name, &OpenOptions { allow_other_owner: true, ..OpenOptions::default() }).unwrap();
        assert_eq!(allowed.owner_uid(), 4242);
    } else {
        eprintln!(
            "not root: the foreign-owner refusal is covered by segment::tests::from_fd_checks_the_owner only as root"
        );
    }
}

#[test]
fn a_segment_truncated_below_its_header_is_refused_not_a_sigbus() {
    let name = unique("short");
    let _guard = Unlink(name.clone());
    Segment::create(&name, &CreateOptions::default()).unwrap();
    let path = format!("/dev/shm/{name}");
    let full = std::fs::metadata(&path).unwrap().len();
    for length in [0, 100, 256, full / 2, full - 1] {
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(length).unwrap();
        let error = Segment::open(&name).err().unwrap_or_else(|| panic!("a {length}-byte file was accepted"));
        assert!(
            matches!(error, Error::Corrupted { .. } | Error::NotInitialized | Error::TooLarge { .. }),
            "{length} bytes: {error}"
        );
    }
}
