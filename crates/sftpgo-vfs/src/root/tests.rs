//! Hostile-input tests of the confinement.

use super::*;
use std::os::unix::fs::symlink;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn vp(s: &str) -> VirtualPath {
    VirtualPath::parse(s.as_bytes()).unwrap()
}

/// `<tmp>/u1` (the root), a sibling `<tmp>/u10` with a secret, and `<tmp>/outside`.
fn setup() -> (tempfile::TempDir, Root) {
    let tmp = tempfile::tempdir().unwrap();
    for d in ["u1", "u10", "outside"] {
        std::fs::create_dir(tmp.path().join(d)).unwrap();
    }
    std::fs::write(tmp.path().join("u10/secret"), b"sibling").unwrap();
    std::fs::write(tmp.path().join("outside/secret"), b"outside").unwrap();
    let root = Root::open(&tmp.path().join("u1")).unwrap();
    (tmp, root)
}

fn read(root: &Root, p: &str) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = root.open_file(
        &vp(p),
        &OpenOptions {
            read: true,
            ..Default::default()
        },
    )?;
    let mut v = Vec::new();
    f.read_to_end(&mut v)?;
    Ok(v)
}

#[test]
fn symlinks_leaving_the_root_are_refused() {
    let (tmp, root) = setup();
    let home = tmp.path().join("u1");
    symlink("/etc", home.join("abs")).unwrap();
    symlink("../outside", home.join("rel")).unwrap();
    symlink("../../../../../../../../etc", home.join("deep")).unwrap();
    symlink("../u10", home.join("sib")).unwrap();
    symlink(tmp.path().join("outside/secret"), home.join("absfile")).unwrap();
    for p in [
        "/abs/passwd",
        "/rel/secret",
        "/deep/passwd",
        "/sib/secret",
        "/absfile",
    ] {
        let err = read(&root, p).unwrap_err();
        assert!(is_escape(&err), "{p}: {err}");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(is_escape(&root.stat(&vp(p)).unwrap_err()), "stat {p}");
        let w = OpenOptions {
            write: true,
            create: true,
            ..Default::default()
        };
        assert!(root.open_file(&vp(p), &w).is_err(), "write {p}");
    }
    for p in ["/abs", "/rel", "/sib"] {
        assert!(is_escape(&root.read_dir(&vp(p)).unwrap_err()), "list {p}");
        assert!(
            is_escape(&root.read_link(&vp(p)).unwrap_err()),
            "readlink {p}"
        );
        assert!(
            is_escape(&root.mkdir(&vp(&format!("{p}/x")), 0o755).unwrap_err()),
            "mkdir {p}/x"
        );
        // lstat of the link itself is fine: it lives inside.
        assert!(root.lstat(&vp(p)).unwrap().is_symlink());
    }
    assert_eq!(
        std::fs::read(tmp.path().join("u10/secret")).unwrap(),
        b"sibling"
    );
    assert!(!tmp.path().join("outside/x").exists());
}

#[test]
fn symlinks_inside_the_root_work() {
    let (tmp, root) = setup();
    let home = tmp.path().join("u1");
    std::fs::create_dir(home.join("d")).unwrap();
    std::fs::write(home.join("d/f"), b"inside").unwrap();
    root.symlink(b"/d/f", &vp("/l")).unwrap();
    assert_eq!(
        std::fs::read_link(home.join("l")).unwrap().to_str(),
        Some("d/f")
    );
    root.symlink(b"/d/f", &vp("/d/l2")).unwrap();
    assert_eq!(
        std::fs::read_link(home.join("d/l2")).unwrap().to_str(),
        Some("f")
    );
    root.symlink(b"/x/y", &vp("/d/l3")).unwrap();
    assert_eq!(
        std::fs::read_link(home.join("d/l3")).unwrap().to_str(),
        Some("../x/y")
    );
    // A relative target climbing out is clamped at the root, never stored as-is.
    root.symlink(b"../../../../etc/passwd", &vp("/d/l4"))
        .unwrap();
    assert_eq!(
        std::fs::read_link(home.join("d/l4")).unwrap().to_str(),
        Some("../etc/passwd")
    );
    assert_eq!(read(&root, "/l").unwrap(), b"inside");
    assert!(root.stat(&vp("/l")).unwrap().is_file());
    assert!(root.lstat(&vp("/l")).unwrap().is_symlink());
    assert_eq!(root.read_link(&vp("/l")).unwrap(), b"/d/f");
    assert_eq!(root.read_link(&vp("/d/l3")).unwrap(), b"/x/y");
}

#[test]
fn rename_remove_rmdir_link_and_attrs() {
    let (tmp, root) = setup();
    let home = tmp.path().join("u1");
    std::fs::write(home.join("a"), b"A").unwrap();
    std::fs::write(home.join("b"), b"B").unwrap();
    assert!(root.rename(&vp("/a"), &vp("/b"), false).is_err());
    assert_eq!(std::fs::read(home.join("b")).unwrap(), b"B");
    root.rename(&vp("/a"), &vp("/b"), true).unwrap();
    assert_eq!(std::fs::read(home.join("b")).unwrap(), b"A");
    root.mkdir(&vp("/d"), 0o755).unwrap();
    root.hard_link(&vp("/b"), &vp("/d/h")).unwrap();
    assert_eq!(root.stat(&vp("/b")).unwrap().nlink, 2);
    assert!(root.rmdir(&vp("/d")).is_err());
    assert!(root.remove_file(&vp("/d")).is_err());
    root.remove_file(&vp("/d/h")).unwrap();
    root.rmdir(&vp("/d")).unwrap();
    assert!(root.rmdir(&VirtualPath::root()).is_err());
    assert!(root.rename(&VirtualPath::root(), &vp("/x"), true).is_err());
    root.set_len(&vp("/b"), 0).unwrap();
    assert_eq!(root.stat(&vp("/b")).unwrap().size, 0);
    root.set_permissions(&vp("/b"), 0o640).unwrap();
    assert_eq!(root.stat(&vp("/b")).unwrap().mode & 0o777, 0o640);
    let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    root.set_times(&vp("/b"), t, t).unwrap();
    assert_eq!(root.stat(&vp("/b")).unwrap().mtime, 1_000_000_000);
    root.chown(&vp("/b"), Some(1234), Some(1234)).unwrap();
    assert_eq!(root.lstat(&vp("/b")).unwrap().uid, 1234);
    assert!(root.statvfs(&VirtualPath::root()).unwrap().bsize > 0);
    let names: Vec<Vec<u8>> = root
        .read_dir(&VirtualPath::root())
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec![b"b".to_vec()]);
}

#[test]
fn directories_and_special_files_are_not_opened_as_files() {
    let (tmp, root) = setup();
    std::fs::create_dir(tmp.path().join("u1/dir")).unwrap();
    assert!(read(&root, "/dir").is_err());
    assert!(read(&root, "/").is_err());
    let fifo = tmp.path().join("u1/fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    assert!(
        read(&root, "/fifo").is_err(),
        "a FIFO must not be opened (nor hang)"
    );
}

#[test]
fn non_utf8_names() {
    let (_tmp, root) = setup();
    let name = VirtualPath::parse(b"/caf\xe9").unwrap();
    let w = OpenOptions {
        write: true,
        create: true,
        ..Default::default()
    };
    drop(root.open_file(&name, &w).unwrap());
    let entries = root.read_dir(&VirtualPath::root()).unwrap();
    assert_eq!(entries[0].name, b"caf\xe9");
    assert!(root.stat(&name).unwrap().is_file());
}

/// A directory component is swapped between a real dir and a symlink to the outside
/// while another thread opens through it: the outside content must never be read.
#[test]
fn swapped_symlink_race_never_escapes() {
    let (tmp, root) = setup();
    let home = tmp.path().join("u1");
    std::fs::create_dir(home.join("real")).unwrap();
    std::fs::write(home.join("real/secret"), b"inside").unwrap();
    symlink(tmp.path().join("outside"), home.join("evil")).unwrap();
    std::fs::rename(home.join("real"), home.join("d")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (home, stop) = (home.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::rename(home.join("d"), home.join("real"));
                let _ = std::fs::rename(home.join("evil"), home.join("d"));
                let _ = std::fs::rename(home.join("d"), home.join("evil"));
                let _ = std::fs::rename(home.join("real"), home.join("d"));
            }
        })
    };
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..5000 {
        match read(&root, "/d/secret") {
            Ok(data) => {
                assert_eq!(
                    data, b"inside",
                    "read through a swapped symlink escaped the root"
                );
                ok += 1;
            }
            Err(_) => refused += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(ok + refused == 5000 && ok > 0, "ok={ok} refused={refused}");
}
