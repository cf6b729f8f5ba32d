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
    symlink("../u10/secret", home.join("sibfile")).unwrap();
    symlink("..", home.join("up")).unwrap();
    symlink(tmp.path().join("outside/secret"), home.join("absfile")).unwrap();
    for p in [
        "/abs/passwd",
        "/rel/secret",
        "/deep/passwd",
        "/sib/secret",
        "/sibfile",
        "/up/u10/secret",
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
        assert!(
            is_escape(&root.open_file(&vp(p), &w).unwrap_err()),
            "write {p}"
        );
        assert!(is_escape(&root.set_permissions(&vp(p), 0o777).unwrap_err()));
        let t = SystemTime::UNIX_EPOCH;
        assert!(is_escape(&root.set_times(&vp(p), t, t).unwrap_err()));
        assert!(is_escape(&root.set_len(&vp(p), 0).unwrap_err()));
        assert!(is_escape(&root.statvfs(&vp(p)).unwrap_err()));
    }
    for p in ["/abs", "/rel", "/sib", "/up"] {
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
    // Final-name operations through an escaping parent are refused too.
    assert!(is_escape(
        &root.remove_file(&vp("/sib/secret")).unwrap_err()
    ));
    assert!(is_escape(
        &root
            .rename(&vp("/sib/secret"), &vp("/stolen"), true)
            .unwrap_err()
    ));
    assert!(is_escape(
        &root.hard_link(&vp("/sib/secret"), &vp("/h")).unwrap_err()
    ));
    assert!(is_escape(&root.lstat(&vp("/sib/secret")).unwrap_err()));
    assert!(is_escape(&root.symlink(b"/x", &vp("/sib/l")).unwrap_err()));
    // The links themselves can be removed: that touches only the home.
    root.remove_file(&vp("/sibfile")).unwrap();
    assert_eq!(
        std::fs::read(tmp.path().join("u10/secret")).unwrap(),
        b"sibling"
    );
    assert!(!tmp.path().join("outside/x").exists());
}

/// An administrator's absolute link into the home (`ln -s /srv/sftp/alice/shared docs`)
/// is followed like a relative one, by every operation; absolute links anywhere else,
/// a sibling home with a common prefix included, stay refused.
#[test]
fn absolute_symlinks_into_the_home_are_followed() {
    let (tmp, root) = setup();
    let home = tmp.path().join("u1");
    std::fs::create_dir_all(home.join("shared/sub")).unwrap();
    std::fs::write(home.join("shared/f"), b"inside").unwrap();
    symlink(home.join("shared"), home.join("docs")).unwrap();
    symlink(home.join("shared/f"), home.join("flink")).unwrap();
    // Spelled with extra slashes and dots, and the home itself.
    let spelled = format!("{}//./shared/", home.display());
    symlink(&spelled, home.join("docs2")).unwrap();
    symlink(&home, home.join("homelink")).unwrap();
    // A chain: absolute -> relative -> absolute.
    symlink("docs", home.join("rel_to_abs")).unwrap();
    symlink(home.join("rel_to_abs/sub"), home.join("chain")).unwrap();
    // Outside: the sibling u10 shares the prefix "u1"; `..` in an absolute target.
    symlink(tmp.path().join("u10"), home.join("sib_abs")).unwrap();
    symlink(
        format!("{}/../u10", home.display()),
        home.join("dotdot_abs"),
    )
    .unwrap();
    // A home configured through a symlinked parent: links may use either spelling.
    symlink(tmp.path(), tmp.path().join("u1").with_file_name("alias")).unwrap();
    let aliased = Root::open(&tmp.path().join("alias/u1")).unwrap();

    for r in [&root, &aliased] {
        assert_eq!(read(r, "/docs/f").unwrap(), b"inside");
        assert_eq!(read(r, "/docs2/f").unwrap(), b"inside");
        assert_eq!(read(r, "/flink").unwrap(), b"inside");
        assert_eq!(read(r, "/homelink/shared/f").unwrap(), b"inside");
        assert!(r.stat(&vp("/docs")).unwrap().is_dir());
        assert!(r.stat(&vp("/chain")).unwrap().is_dir());
        assert!(r.stat(&vp("/docs/sub/..")).is_ok());
        assert_eq!(r.stat(&vp("/flink")).unwrap().size, 6);
        assert!(r.lstat(&vp("/docs")).unwrap().is_symlink());
        assert!(r.lstat(&vp("/docs/f")).unwrap().is_file());
        let mut names: Vec<_> = r
            .read_dir(&vp("/docs"))
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        names.sort();
        assert_eq!(names, [b"f".to_vec(), b"sub".to_vec()]);
        assert_eq!(r.read_link(&vp("/docs")).unwrap(), b"/shared");
        assert_eq!(r.read_link(&vp("/homelink")).unwrap(), b"/");
        assert_eq!(r.real_path(&vp("/flink")).unwrap(), vp("/shared/f"));
        assert_eq!(r.real_path(&vp("/chain")).unwrap(), vp("/shared/sub"));
        assert_eq!(r.real_path(&vp("/docs/new")).unwrap(), vp("/shared/new"));
        for p in ["/sib_abs/secret", "/dotdot_abs/secret"] {
            assert!(is_escape(&read(r, p).unwrap_err()), "{p}");
            assert!(is_escape(&r.stat(&vp(p)).unwrap_err()), "{p}");
            assert!(is_escape(&r.real_path(&vp(p)).unwrap_err()), "{p}");
        }
        assert!(is_escape(&r.read_link(&vp("/sib_abs")).unwrap_err()));
        assert!(is_escape(&r.read_dir(&vp("/sib_abs")).unwrap_err()));
    }
    // Writes, creates, mkdir and rename through the link land inside the home.
    let w = OpenOptions {
        write: true,
        create: true,
        truncate: true,
        ..Default::default()
    };
    use std::io::Write;
    root.open_file(&vp("/docs/new"), &w)
        .unwrap()
        .write_all(b"new")
        .unwrap();
    assert_eq!(std::fs::read(home.join("shared/new")).unwrap(), b"new");
    let excl = OpenOptions {
        exclusive: true,
        ..w
    };
    root.open_file(&vp("/docs/excl"), &excl).unwrap();
    assert!(home.join("shared/excl").is_file());
    root.mkdir(&vp("/docs/d"), 0o755).unwrap();
    assert!(home.join("shared/d").is_dir());
    root.rename(&vp("/docs/new"), &vp("/docs/d/moved"), false)
        .unwrap();
    assert!(home.join("shared/d/moved").is_file());
    // Writing through a file link writes the file it points to; the link stays.
    root.open_file(&vp("/flink"), &w)
        .unwrap()
        .write_all(b"changed")
        .unwrap();
    assert_eq!(std::fs::read(home.join("shared/f")).unwrap(), b"changed");
    assert!(root.lstat(&vp("/flink")).unwrap().is_symlink());
    // A dangling absolute link into the home: a create makes its target.
    symlink(home.join("shared/later"), home.join("dangling")).unwrap();
    root.open_file(&vp("/dangling"), &w).unwrap();
    assert!(home.join("shared/later").is_file());
    // Escapes through absolute links still write nothing.
    assert!(is_escape(
        &root.open_file(&vp("/sib_abs/x"), &w).unwrap_err()
    ));
    assert!(!tmp.path().join("u10/x").exists());
    // A loop of links ends.
    symlink(home.join("loop2"), home.join("loop1")).unwrap();
    symlink(home.join("loop1"), home.join("loop2")).unwrap();
    let err = root.stat(&vp("/loop1")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{err}");
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
    root.symlink(b"../f", &vp("/d/l4")).unwrap();
    assert_eq!(
        std::fs::read_link(home.join("d/l4")).unwrap().to_str(),
        Some("../f")
    );
    root.symlink(b"f", &vp("/d/l5")).unwrap();
    assert_eq!(root.read_link(&vp("/d/l5")).unwrap(), b"/d/f");
    // A target climbing above the home is refused, never clamped or stored as-is.
    for t in [
        &b"../../etc/passwd"[..],
        b"../..",
        b"/../etc",
        b"x/../../../y",
    ] {
        let err = root.symlink(t, &vp("/d/bad")).unwrap_err();
        assert!(is_escape(&err), "{err}");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    }
    assert!(root.symlink(b"", &vp("/d/bad")).is_err());
    assert!(root.symlink(b"a\0b", &vp("/d/bad")).is_err());
    assert!(!home.join("d/bad").exists() && home.join("d/bad").symlink_metadata().is_err());
    // An existing link is not overwritten.
    assert_eq!(
        root.symlink(b"/d", &vp("/l")).unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    assert_eq!(read(&root, "/l").unwrap(), b"inside");
    assert!(root.stat(&vp("/l")).unwrap().is_file());
    assert!(root.lstat(&vp("/l")).unwrap().is_symlink());
    // A relative link whose `..` stays inside, and a link to a directory.
    assert_eq!(
        read(&root, "/d/l4").unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    root.symlink(b"/d", &vp("/dl")).unwrap();
    assert_eq!(read(&root, "/dl/l2").unwrap(), b"inside");
    let mut names: Vec<Vec<u8>> = root
        .read_dir(&vp("/dl"))
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.sort();
    assert_eq!(names, [&b"f"[..], b"l2", b"l3", b"l4", b"l5"]);
    // A link written by someone else with an inside `..` path reads back virtual.
    symlink("../d/./f", home.join("d/l6")).unwrap();
    assert_eq!(root.read_link(&vp("/d/l6")).unwrap(), b"/d/f");
    assert_eq!(root.read_link(&vp("/l")).unwrap(), b"/d/f");
    assert_eq!(root.read_link(&vp("/d/l3")).unwrap(), b"/x/y");
}

#[test]
fn rename_remove_rmdir_link_and_attrs() {
    let (tmp, root) = setup();
    let home = tmp.path().join("u1");
    std::fs::write(home.join("a"), b"A").unwrap();
    std::fs::write(home.join("b"), b"B").unwrap();
    assert_eq!(
        root.rename(&vp("/a"), &vp("/b"), false).unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    assert_eq!(std::fs::read(home.join("b")).unwrap(), b"B");
    root.rename(&vp("/a"), &vp("/b"), true).unwrap();
    assert_eq!(std::fs::read(home.join("b")).unwrap(), b"A");
    root.mkdir(&vp("/d"), 0o755).unwrap();
    root.hard_link(&vp("/b"), &vp("/d/h")).unwrap();
    assert_eq!(root.stat(&vp("/b")).unwrap().nlink, 2);
    let err = root.rmdir(&vp("/d")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTEMPTY));
    let err = root.remove_file(&vp("/d")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EISDIR));
    assert!(home.join("d/h").exists());
    root.remove_file(&vp("/d/h")).unwrap();
    root.rmdir(&vp("/d")).unwrap();
    assert!(root.rmdir(&VirtualPath::root()).is_err());
    assert!(root.rename(&VirtualPath::root(), &vp("/x"), true).is_err());
    assert!(root.rename(&vp("/b"), &VirtualPath::root(), true).is_err());
    assert!(root.remove_file(&VirtualPath::root()).is_err());
    assert_eq!(
        root.remove_file(&vp("/nope")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(
        root.stat(&vp("/nope/x")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    root.set_len(&vp("/b"), 0).unwrap();
    assert_eq!(root.stat(&vp("/b")).unwrap().size, 0);
    root.set_permissions(&vp("/b"), 0o640).unwrap();
    assert_eq!(root.stat(&vp("/b")).unwrap().mode & 0o7777, 0o640);
    // setuid/setgid/sticky are never applied for a client.
    root.set_permissions(&vp("/b"), 0o6755).unwrap();
    assert_eq!(root.stat(&vp("/b")).unwrap().mode & 0o7777, 0o755);
    // chmod follows a symlink (beneath) and changes the target, not the link.
    root.symlink(b"b", &vp("/lb")).unwrap();
    root.set_permissions(&vp("/lb"), 0o600).unwrap();
    assert_eq!(root.stat(&vp("/b")).unwrap().mode & 0o777, 0o600);
    assert!(root.lstat(&vp("/lb")).unwrap().is_symlink());
    // Works without any read/write access to the file (O_PATH handle); as root this
    // only shows the syscall path, DAC is bypassed anyway.
    root.set_permissions(&vp("/b"), 0o000).unwrap();
    assert_eq!(root.stat(&vp("/b")).unwrap().mode & 0o777, 0);
    root.set_permissions(&vp("/b"), 0o644).unwrap();
    let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    let a = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(900_000_000);
    root.set_times(&vp("/lb"), a, t).unwrap();
    let st = root.stat(&vp("/b")).unwrap();
    assert_eq!((st.atime, st.mtime), (900_000_000, 1_000_000_000));
    root.set_times(&VirtualPath::root(), t, t).unwrap();
    assert_eq!(
        root.stat(&VirtualPath::root()).unwrap().mtime,
        1_000_000_000
    );
    if rustix::process::geteuid().is_root() {
        // chown does not follow: the link changes, its target does not.
        root.chown(&vp("/lb"), Some(4321), None).unwrap();
        assert_eq!(root.lstat(&vp("/lb")).unwrap().uid, 4321);
        assert_eq!(root.stat(&vp("/b")).unwrap().uid, 0);
        root.chown(&vp("/b"), Some(1234), Some(1234)).unwrap();
        let st = root.lstat(&vp("/b")).unwrap();
        assert_eq!((st.uid, st.gid), (1234, 1234));
    }
    root.remove_file(&vp("/lb")).unwrap();
    assert!(home.join("b").exists());
    let vfs = root.statvfs(&VirtualPath::root()).unwrap();
    assert!(vfs.bsize > 0 && vfs.blocks > 0 && vfs.namemax > 0);
    let vfs_b = root.statvfs(&vp("/b")).unwrap();
    assert_eq!((vfs.fsid, vfs.bsize), (vfs_b.fsid, vfs_b.bsize));
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
    // Nor for writing, with or without create; an exclusive create (which skips the type
    // check) fails because something is there, and a dangling symlink is no way around it.
    let write = |create: bool, exclusive: bool| OpenOptions {
        write: true,
        create,
        exclusive,
        ..Default::default()
    };
    for (create, exclusive) in [(false, false), (true, false)] {
        let err = root.open_file(&vp("/fifo"), &write(create, exclusive));
        assert!(err.is_err(), "FIFO opened for writing (create {create})");
    }
    assert_eq!(
        root.open_file(&vp("/fifo"), &write(true, true))
            .unwrap_err()
            .kind(),
        io::ErrorKind::AlreadyExists
    );
    symlink("fifo", tmp.path().join("u1/to_fifo")).unwrap();
    symlink("gone", tmp.path().join("u1/dangling")).unwrap();
    for p in ["/to_fifo", "/dangling"] {
        assert_eq!(
            root.open_file(&vp(p), &write(true, true))
                .unwrap_err()
                .kind(),
            io::ErrorKind::AlreadyExists,
            "{p}"
        );
    }
    assert!(!tmp.path().join("u1/gone").exists());
    // What an exclusive create returns is a new regular file in blocking mode.
    let f = root.open_file(&vp("/new"), &write(true, true)).unwrap();
    assert!(f.metadata().unwrap().is_file());
    let fl = rustix::fs::fcntl_getfl(&f).unwrap();
    assert!(!fl.contains(rustix::fs::OFlags::NONBLOCK));
}

#[test]
fn non_utf8_names() {
    let (tmp, root) = setup();
    let w = OpenOptions {
        write: true,
        create: true,
        exclusive: true,
        ..Default::default()
    };
    // Two names that differ only in invalid UTF-8 bytes (both decode lossily to "caf\u{fffd}").
    let names: [&[u8]; 3] = [b"caf\xe9", b"caf\xe8", b"d\xff\xfe"];
    for (i, name) in names.iter().enumerate() {
        let p = VirtualPath::root().join(name).unwrap();
        let mut f = root.open_file(&p, &w).unwrap();
        std::io::Write::write_all(&mut f, &[b'0' + i as u8]).unwrap();
    }
    let mut entries = root.read_dir(&VirtualPath::root()).unwrap();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let listed: Vec<&[u8]> = entries.iter().map(|e| e.name.as_slice()).collect();
    let mut expected = names.to_vec();
    expected.sort();
    assert_eq!(listed, expected);
    assert!(entries.iter().all(|e| e.stat.is_file() && e.stat.size == 1));
    for (i, name) in names.iter().enumerate() {
        let p = VirtualPath::root().join(name).unwrap();
        assert!(root.stat(&p).unwrap().is_file());
        let mut f = root
            .open_file(
                &p,
                &OpenOptions {
                    read: true,
                    ..Default::default()
                },
            )
            .unwrap();
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut v).unwrap();
        assert_eq!(v, [b'0' + i as u8]);
        // Byte-exact on the host too.
        use std::os::unix::ffi::OsStrExt;
        let host = tmp
            .path()
            .join("u1")
            .join(std::ffi::OsStr::from_bytes(name));
        assert_eq!(root.host_path(&p), host);
        assert!(host.is_file());
    }
    // Exclusive create of an existing name fails and leaves the content alone.
    let p = VirtualPath::root().join(names[0]).unwrap();
    assert_eq!(
        root.open_file(&p, &w).unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    // A directory under a non-UTF-8 name, and a link to it.
    let d = VirtualPath::parse(b"/dir\x80").unwrap();
    root.mkdir(&d, 0o755).unwrap();
    root.symlink(b"/dir\x80", &VirtualPath::parse(b"/l\x81").unwrap())
        .unwrap();
    assert_eq!(
        root.read_link(&VirtualPath::parse(b"/l\x81").unwrap())
            .unwrap(),
        b"/dir\x80"
    );
    assert!(
        root.stat(&VirtualPath::parse(b"/l\x81").unwrap())
            .unwrap()
            .is_dir()
    );
}

#[test]
fn open_file_flags() {
    let (tmp, root) = setup();
    let home = tmp.path().join("u1");
    std::fs::write(home.join("f"), b"hello").unwrap();
    std::fs::create_dir(home.join("dir")).unwrap();
    // Truncate without write access is ignored (O_RDONLY|O_TRUNC would truncate).
    let r = OpenOptions {
        read: true,
        truncate: true,
        ..Default::default()
    };
    assert_eq!(root.open_file_sized(&vp("/f"), &r).unwrap().size, 5);
    assert_eq!(std::fs::read(home.join("f")).unwrap(), b"hello");
    // Append writes at the end.
    let a = OpenOptions {
        append: true,
        ..Default::default()
    };
    let mut f = root.open_file(&vp("/f"), &a).unwrap();
    let fl = rustix::fs::fcntl_getfl(&f).unwrap();
    assert!(fl.contains(rustix::fs::OFlags::APPEND) && !fl.contains(rustix::fs::OFlags::NONBLOCK));
    std::io::Write::write_all(&mut f, b"!").unwrap();
    drop(f);
    assert_eq!(std::fs::read(home.join("f")).unwrap(), b"hello!");
    // Write + truncate empties it.
    let t = OpenOptions {
        write: true,
        truncate: true,
        ..Default::default()
    };
    // The size an open reports is the size after it truncated.
    assert_eq!(root.open_file_sized(&vp("/f"), &t).unwrap().size, 0);
    assert_eq!(std::fs::read(home.join("f")).unwrap(), b"");
    // Create mode: permission bits only, never setuid.
    let c = OpenOptions {
        write: true,
        create: true,
        mode: 0o4600,
        ..Default::default()
    };
    assert_eq!(root.open_file_sized(&vp("/new"), &c).unwrap().size, 0);
    assert_eq!(root.stat(&vp("/new")).unwrap().mode & 0o7777, 0o600);
    // Opening it again (create, not exclusive) finds what was written meanwhile; an
    // exclusive create made an empty file.
    std::fs::write(home.join("new"), b"abc").unwrap();
    assert_eq!(root.open_file_sized(&vp("/new"), &c).unwrap().size, 3);
    let x = OpenOptions {
        exclusive: true,
        ..c
    };
    assert_eq!(root.open_file_sized(&vp("/new2"), &x).unwrap().size, 0);
    // Never a directory for writing, nor a missing parent.
    for (p, o) in [("/dir", &t), ("/dir", &c), ("/", &c)] {
        assert_eq!(
            root.open_file(&vp(p), o).unwrap_err().raw_os_error(),
            Some(libc::EISDIR),
            "{p}"
        );
    }
    assert_eq!(
        root.open_file(&vp("/missing/x"), &c).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    // The handle is close-on-exec.
    let f = root.open_file(&vp("/new"), &r).unwrap();
    let fl = rustix::io::fcntl_getfd(&f).unwrap();
    assert!(fl.contains(rustix::io::FdFlags::CLOEXEC));
    // ... and blocking: O_NONBLOCK only kept the open itself from hanging on a FIFO.
    let fl = rustix::fs::fcntl_getfl(&f).unwrap();
    assert!(!fl.contains(rustix::fs::OFlags::NONBLOCK));
    assert!(!fl.contains(rustix::fs::OFlags::APPEND));
    // Creating through a dangling link to the outside is refused, nothing is created.
    symlink(tmp.path().join("outside/new"), home.join("dangling")).unwrap();
    symlink("../outside/new2", home.join("dangling2")).unwrap();
    for p in ["/dangling", "/dangling2"] {
        assert!(is_escape(&root.open_file(&vp(p), &c).unwrap_err()), "{p}");
    }
    assert!(!tmp.path().join("outside/new").exists());
    assert!(!tmp.path().join("outside/new2").exists());
}

#[test]
fn escape_errors_are_recognizable() {
    // A raw EXDEV (e.g. a rename across a mount inside the home) is not an escape.
    assert!(!is_escape(&io::Error::from_raw_os_error(libc::EXDEV)));
    assert!(!is_escape(&io::Error::from(
        io::ErrorKind::PermissionDenied
    )));
    let (tmp, root) = setup();
    symlink("/", tmp.path().join("u1/slash")).unwrap();
    let err = root.stat(&vp("/slash")).unwrap_err();
    assert!(is_escape(&err));
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    assert_eq!(err.to_string(), "path escapes the home directory");
}

#[test]
fn ensure_home_creates_parents_and_owner() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("a/b/user");
    let owner = rustix::process::geteuid().is_root().then_some((4242, 4343));
    ensure_home(&home, 0o700, owner).unwrap();
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&home).unwrap();
    assert!(m.is_dir());
    assert_eq!(m.mode() & 0o077, 0, "no access for group/others");
    if let Some((uid, gid)) = owner {
        assert_eq!((m.uid(), m.gid()), (uid, gid));
        // Only the home itself is chowned, not the parents.
        assert_ne!(std::fs::metadata(tmp.path().join("a")).unwrap().uid(), uid);
    }
    // Idempotent; an existing home is left as it is.
    std::fs::write(home.join("f"), b"x").unwrap();
    ensure_home(&home, 0o755, None).unwrap();
    assert_eq!(std::fs::read(home.join("f")).unwrap(), b"x");
    assert!(Root::open(&home).is_ok());
    // A file in the way is an error, not a silent success.
    let file = tmp.path().join("file");
    std::fs::write(&file, b"").unwrap();
    assert!(ensure_home(&file, 0o700, None).is_err());
    assert!(Root::open(&file).is_err());
}

/// A directory component `d` is swapped between a real dir and a symlink to the outside
/// (atomically with RENAME_EXCHANGE, so `d` always exists), and a final component `f`
/// between a file and a symlink to an outside file, while this thread opens, stats and
/// lists through them: the outside must never be reached.
#[test]
fn swapped_symlink_race_never_escapes() {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    let (tmp, root) = setup();
    let home = tmp.path().join("u1");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(home.join("d")).unwrap();
    std::fs::write(home.join("d/secret"), b"inside").unwrap();
    std::fs::write(home.join("d/only-inside"), b"").unwrap();
    std::fs::write(home.join("f"), b"inside").unwrap();
    symlink(&outside, home.join("evil")).unwrap();
    symlink(outside.join("secret"), home.join("evilf")).unwrap();
    // Absolute links into the home take the slow path, which must hold under the race.
    symlink(home.join("d"), home.join("abs_d")).unwrap();
    symlink(home.join("f"), home.join("abs_f")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (home, stop) = (home.clone(), stop.clone());
        std::thread::spawn(move || {
            let (d, evil) = (home.join("d"), home.join("evil"));
            let (f, evilf) = (home.join("f"), home.join("evilf"));
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                renameat_with(CWD, &d, CWD, &evil, RenameFlags::EXCHANGE).unwrap();
                renameat_with(CWD, &f, CWD, &evilf, RenameFlags::EXCHANGE).unwrap();
                swaps += 1;
            }
            swaps
        })
    };
    let (mut ok, mut refused) = (0u32, 0u32);
    let ro = OpenOptions {
        read: true,
        ..Default::default()
    };
    for _ in 0..5000 {
        for p in ["/d/secret", "/f", "/abs_d/secret", "/abs_f"] {
            match read(&root, p) {
                Ok(data) => {
                    assert_eq!(data, b"inside", "{p}: read escaped the root");
                    ok += 1;
                }
                Err(e) => {
                    // Only refusals (or a retry budget exhausted) — never a wrong file.
                    assert!(
                        is_escape(&e) || e.raw_os_error() == Some(libc::EAGAIN),
                        "{p}: {e}"
                    );
                    refused += 1;
                }
            }
        }
        // A write open through the swapped component never touches the outside file.
        if let Ok(f) = root.open_file(&vp("/d/secret"), &ro) {
            assert_eq!(f.metadata().unwrap().len(), 6);
        }
        // Nor does a cached lookup (the outside secret is 7 bytes, the inside one 6).
        for p in ["/d/secret", "/f"] {
            if let Ok(Some(f)) = root.open_file_cached(&vp(p), &ro) {
                assert_eq!(
                    f.file.metadata().unwrap().len(),
                    6,
                    "{p}: cached open escaped"
                );
                assert_eq!(f.size, 6, "{p}: cached open escaped");
            }
            if let Ok(Some(st)) = root.stat_cached(&vp(p)) {
                assert_eq!(st.size, 6, "{p}: cached stat escaped");
            }
        }
        if let Ok(entries) = root.read_dir(&vp("/d")) {
            assert!(entries.iter().any(|e| e.name == b"only-inside"));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(
        swaps > 0 && ok > 0 && refused > 0,
        "ok={ok} refused={refused} swaps={swaps}"
    );
    assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"outside");
}

#[test]
fn open_shared_reuses_the_fd_only_while_home_is_the_same_directory() {
    let base = tempfile::tempdir().unwrap();
    let home = base.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let first = Root::open_shared(&home, None).unwrap();
    let again = Root::open_shared(&home, Some(first.clone())).unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    // Another home path never gets the cached root.
    let other = base.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let o = Root::open_shared(&other, Some(first.clone())).unwrap();
    assert!(!Arc::ptr_eq(&first, &o));
    // Home replaced by another directory: a fresh open, which sees the new content.
    std::fs::rename(&home, base.path().join("old")).unwrap();
    std::fs::create_dir(&home).unwrap();
    std::fs::write(home.join("new.txt"), b"n").unwrap();
    let fresh = Root::open_shared(&home, Some(first.clone())).unwrap();
    assert!(!Arc::ptr_eq(&first, &fresh));
    assert!(
        fresh
            .stat(&VirtualPath::parse(b"/new.txt").unwrap())
            .is_ok()
    );
    assert!(
        first
            .stat(&VirtualPath::parse(b"/new.txt").unwrap())
            .is_err()
    );
}

/// The cached lookups enforce the same confinement as the blocking ones: an escape is an
/// escape error or `Ok(None)` (the caller then asks the blocking lookup, which refuses
/// it), never a file outside.
#[test]
fn cached_lookups_refuse_the_same_escapes() {
    let (tmp, root) = setup();
    let home = tmp.path().join("u1");
    symlink("/etc", home.join("abs")).unwrap();
    symlink("../outside", home.join("rel")).unwrap();
    symlink("../u10/secret", home.join("sibfile")).unwrap();
    symlink("..", home.join("up")).unwrap();
    let ro = OpenOptions {
        read: true,
        ..Default::default()
    };
    for p in ["/abs/passwd", "/rel/secret", "/sibfile", "/up/u10/secret"] {
        // Warm the caches first, so the cached lookup gets as far as it can.
        let _ = root.open_file(&vp(p), &ro);
        let _ = root.stat(&vp(p));
        for _ in 0..2 {
            match root.open_file_cached(&vp(p), &ro) {
                Ok(Some(_)) => panic!("{p}: cached open escaped"),
                Ok(None) => {}
                Err(e) => assert!(is_escape(&e), "{p}: {e}"),
            }
            match root.stat_cached(&vp(p)) {
                Ok(Some(st)) => panic!("{p}: cached stat escaped: {st:?}"),
                Ok(None) => {}
                Err(e) => assert!(is_escape(&e), "stat {p}: {e}"),
            }
        }
    }
    // lstat of a link inside is the link itself, whether cached or not.
    for p in ["/abs", "/rel", "/sibfile", "/up"] {
        let slow = root.lstat(&vp(p)).unwrap();
        let fast = root.lstat_cached(&vp(p)).unwrap().expect("just looked up");
        assert!(fast.is_symlink(), "{p}");
        assert_eq!((fast.size, fast.mtime), (slow.size, slow.mtime), "{p}");
    }
    match root.lstat_cached(&vp("/rel/secret")) {
        Ok(Some(st)) => panic!("cached lstat escaped: {st:?}"),
        Ok(None) => {}
        Err(e) => assert!(is_escape(&e), "{e}"),
    }
}

#[test]
fn cached_lookups_answer_like_the_blocking_ones() {
    let (tmp, root) = setup();
    let home = tmp.path().join("u1");
    std::fs::create_dir(home.join("d")).unwrap();
    std::fs::write(home.join("d/f"), b"hello").unwrap();
    symlink("d/f", home.join("link")).unwrap();
    let ro = OpenOptions {
        read: true,
        ..Default::default()
    };
    for p in ["/d/f", "/link"] {
        let data = read(&root, p).unwrap(); // warms the dentry cache
        let f = root.open_file_cached(&vp(p), &ro).unwrap().expect("cached");
        assert_eq!(f.file.metadata().unwrap().len(), data.len() as u64);
        assert_eq!(f.size, data.len() as u64);
        assert_eq!(
            root.stat_cached(&vp(p)).unwrap(),
            Some(root.stat(&vp(p)).unwrap())
        );
    }
    assert_eq!(
        root.stat_cached(&vp("/")).unwrap(),
        Some(root.stat(&vp("/")).unwrap())
    );
    assert_eq!(
        root.lstat_cached(&vp("/")).unwrap(),
        Some(root.lstat(&vp("/")).unwrap())
    );
    // Errors are the blocking lookup's errors.
    let missing = root.stat(&vp("/d/missing")).unwrap_err().kind();
    let _ = root.stat(&vp("/d/missing"));
    match root.stat_cached(&vp("/d/missing")) {
        Err(e) => assert_eq!(e.kind(), missing),
        Ok(None) => {} // the negative dentry was not kept: the caller asks the slow way
        Ok(Some(_)) => panic!("found a missing file"),
    }
    // Directories are still refused as files; creating or truncating always goes the
    // blocking way.
    assert_eq!(
        root.open_file_cached(&vp("/d"), &ro)
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EISDIR)
    );
    let create = OpenOptions {
        write: true,
        create: true,
        ..Default::default()
    };
    assert!(
        root.open_file_cached(&vp("/new"), &create)
            .unwrap()
            .is_none()
    );
    assert!(!home.join("new").exists());
}

/// Random graphs of symlinks (relative, absolute into the home, absolute out of it, with
/// `..`, chains and loops) and random paths through them: every lookup either fails or
/// reaches a file inside the home, never one outside, and agrees with `real_path`.
#[test]
fn random_symlink_graphs_never_lead_out() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..40 {
        let (tmp, root) = setup();
        let home = tmp.path().join("u1");
        let outside = tmp.path().join("outside");
        for d in ["a", "a/b", "c"] {
            std::fs::create_dir(home.join(d)).unwrap();
        }
        for f in ["f", "a/f", "a/b/f", "c/f"] {
            std::fs::write(home.join(f), b"inside").unwrap();
        }
        let names = ["l0", "a/l1", "a/b/l2", "c/l3", "l4", "a/l5"];
        let home_s = home.display().to_string();
        let targets = |r: u64| -> String {
            match r % 14 {
                0 => format!("{home_s}/a"),
                1 => format!("{home_s}/a/b/f"),
                2 => format!("{home_s}/"),
                3 => format!("{home_s}/../u10"),
                4 => outside.display().to_string(),
                5 => format!("{}/secret", outside.display()),
                6 => "..".into(),
                7 => "../..".into(),
                8 => "b".into(),
                9 => "../l0".into(),
                10 => format!("{home_s}/l4"),
                11 => format!("{home_s}0"),
                12 => "f".into(),
                _ => format!("{home_s}/c/l3"),
            }
        };
        for n in names {
            symlink(targets(next()), home.join(n)).unwrap();
        }
        let parts = [
            "l0", "a", "l1", "b", "l2", "c", "l3", "l4", "l5", "..", "f", "secret",
        ];
        for _ in 0..200 {
            let len = 1 + next() % 5;
            let mut p = String::new();
            for _ in 0..len {
                p.push('/');
                p.push_str(parts[(next() % parts.len() as u64) as usize]);
            }
            let v = vp(&p);
            if let Ok(data) = read(&root, &p) {
                assert_eq!(data, b"inside", "round {round}: {p} read outside");
                let real = root.real_path(&v).unwrap();
                assert_eq!(read(&root, &real.display().to_string()).unwrap(), b"inside");
            }
            if let Ok(st) = root.stat(&v) {
                let real = root
                    .real_path(&v)
                    .expect("what stat reaches has a real path");
                let via_real = root.lstat(&real).unwrap();
                assert_eq!(
                    (st.dev, st.ino),
                    (via_real.dev, via_real.ino),
                    "round {round}: {p}"
                );
            }
            if let Ok(entries) = root.read_dir(&v) {
                assert!(
                    entries.iter().all(|e| e.name != b"secret"),
                    "round {round}: {p} listed outside"
                );
            }
        }
        assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"outside");
    }
}

#[test]
fn moves_that_would_lead_links_out_of_the_home_are_refused() {
    let (_tmp, root) = setup();
    for d in ["/a", "/a/b", "/d1", "/d1/d2", "/d1/d2/sub", "/d1/e"] {
        root.mkdir(&vp(d), 0o755).unwrap();
    }
    // Made by the client: stored relative, inside the home from where they are.
    root.symlink(b"/x", &vp("/a/b/link")).unwrap();
    assert_eq!(root.read_link(&vp("/a/b/link")).unwrap(), b"/x");
    std::os::unix::fs::symlink("../../../y", root.host.join("d1/d2/sub/l")).unwrap();
    std::os::unix::fs::symlink("/etc", root.host.join("d1/d2/sub/abs")).unwrap();
    // The link itself moved up: "../../x" from "/" climbs out.
    let e = root
        .rename(&vp("/a/b/link"), &vp("/link"), false)
        .unwrap_err();
    assert!(is_escape(&e), "{e}");
    // Sideways or deeper is fine.
    root.rename(&vp("/a/b/link"), &vp("/d1/e/link"), false)
        .unwrap();
    assert_eq!(root.read_link(&vp("/d1/e/link")).unwrap(), b"/x");
    // A directory moved up with a link inside that climbs.
    let e = root.rename(&vp("/d1/d2"), &vp("/top"), false).unwrap_err();
    assert!(is_escape(&e), "{e}");
    assert!(
        root.lstat(&vp("/d1/d2/sub/l")).unwrap().is_symlink(),
        "nothing moved"
    );
    root.rename(&vp("/d1/d2"), &vp("/a/d2"), false).unwrap();
    assert_eq!(root.read_link(&vp("/a/d2/sub/l")).unwrap(), b"/y");
    // Without the climbing link the same move is fine (an absolute link does not move).
    root.remove_file(&vp("/a/d2/sub/l")).unwrap();
    root.rename(&vp("/a/d2"), &vp("/top"), false).unwrap();
}

#[test]
fn moves_that_would_make_host_paths_longer_than_path_max_are_refused() {
    let (_tmp, root) = setup();
    let host_len = root.host.as_os_str().len();
    // A tree whose deepest host path is just under PATH_MAX.
    let name = "n".repeat(250);
    let mut deep = String::from("/a");
    root.mkdir(&vp(&deep), 0o755).unwrap();
    while host_len + deep.len() + 251 <= HOST_PATH_MAX - 10 {
        deep.push('/');
        deep.push_str(&name);
        root.mkdir(&vp(&deep), 0o755).unwrap();
    }
    // Topped up to exactly 10 bytes under the limit.
    let rest = HOST_PATH_MAX - 10 - (host_len + deep.len()) - 1;
    deep.push('/');
    deep.push_str(&"r".repeat(rest));
    root.mkdir(&vp(&deep), 0o755).unwrap();
    assert_eq!(host_len + deep.len(), HOST_PATH_MAX - 10);
    std::fs::write(root.host.join(&deep[1..]).join("f"), b"x").unwrap();
    // Renamed to a name 200 bytes longer: the deepest path would not fit.
    let long = format!("/{}", "m".repeat(200));
    let e = root.rename(&vp("/a"), &vp(&long), false).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENAMETOOLONG), "{e}");
    assert!(root.stat(&vp("/a")).unwrap().is_dir(), "nothing moved");
    // A shorter or equally long name is fine.
    root.rename(&vp("/a"), &vp("/b"), false).unwrap();
    // A single file whose own new path is too long.
    root.mkdir(&vp("/c"), 0o755).unwrap();
    std::fs::write(root.host.join("c/f"), b"x").unwrap();
    let target = format!("/b{}/{}", &deep[2..], "m".repeat(10));
    assert!(host_len + target.len() > HOST_PATH_MAX);
    let e = root.rename(&vp("/c/f"), &vp(&target), false).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENAMETOOLONG), "{e}");
}
