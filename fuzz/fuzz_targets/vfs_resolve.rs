//! The resolver: client paths looked up through `sftpgo_vfs::Root` in a fixed home full
//! of symlinks, read-only operations only.
//!
//! The fixture (made once per process in a temp dir, removed at exit):
//!
//! ```text
//! <tmp>/outside/secret, <tmp>/outside/dir/      never reachable
//! <tmp>/home/                                    the Root
//!   a/b/file, a/b/c/   empty.txt
//!   in -> a/b          abs_in -> <tmp>/home/a   abs_home -> <tmp>/home
//!   up -> ../outside   abs_out -> <tmp>/outside abs_etc -> /etc/passwd   slash -> /
//!   dd -> a/../..      loop -> loop             chain -> in/c   a/b/back -> ../../in
//! ```
//!
//! Input: a client path (`VirtualPath::parse` as the SFTP session does), optionally a
//! second one after `\n`, relative to the first (as a symlink target would be).
//! Checks: every object a lookup reaches (stat, lstat, their cached variants, open for
//! reading, read_dir, statvfs) is one of the home's own entries, by device and inode;
//! real_path and read_link give normalised virtual paths, and real_path's result
//! resolves to the same object as the path itself.

#![no_main]

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sftpgo_vfs::{FileStat, OpenOptions, Root, VirtualPath};

struct Fixture {
    root: Root,
    /// (dev, ino) of every entry of the home, the home included (symlinks not followed).
    inside: HashSet<(u64, u64)>,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();
static DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_fixture() {
    if let Some(dir) = DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(|| {
        use std::os::unix::fs::symlink;
        let tmp = std::env::temp_dir().join(format!("sftpgo-fuzz-vfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        DIR.set(tmp.clone()).unwrap();
        // SAFETY: registers a plain extern "C" function with no captured state.
        unsafe { libc::atexit(remove_fixture) };
        let home = tmp.join("home");
        let out = tmp.join("outside");
        std::fs::create_dir_all(out.join("dir")).unwrap();
        std::fs::write(out.join("secret"), b"secret").unwrap();
        std::fs::create_dir_all(home.join("a/b/c")).unwrap();
        std::fs::write(home.join("a/b/file"), b"data").unwrap();
        std::fs::write(home.join("empty.txt"), b"").unwrap();
        let links: [(&str, &Path); 11] = [
            ("in", Path::new("a/b")),
            ("abs_in", &home.join("a")),
            ("abs_home", &home),
            ("up", Path::new("../outside")),
            ("abs_out", &out),
            ("abs_etc", Path::new("/etc/passwd")),
            ("slash", Path::new("/")),
            ("dd", Path::new("a/../..")),
            ("loop", Path::new("loop")),
            ("chain", Path::new("in/c")),
            ("a/b/back", Path::new("../../in")),
        ];
        for (name, target) in links {
            symlink(target, home.join(name)).unwrap();
        }
        let mut inside = HashSet::new();
        collect(&home, &mut inside);
        Fixture {
            root: Root::open(&home).unwrap(),
            inside,
        }
    })
}

fn collect(p: &Path, set: &mut HashSet<(u64, u64)>) {
    let m = std::fs::symlink_metadata(p).unwrap();
    set.insert((m.dev(), m.ino()));
    if m.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            collect(&e.unwrap().path(), set);
        }
    }
}

impl Fixture {
    fn assert_inside(&self, what: &str, p: &VirtualPath, st: &FileStat) {
        assert!(
            self.inside.contains(&(st.dev, st.ino)),
            "{what}({p:?}) reached an object outside the home: {st:?}"
        );
    }

    fn check(&self, p: &VirtualPath) {
        let r = &self.root;
        let stat = r.stat(p);
        if let Ok(st) = &stat {
            self.assert_inside("stat", p, st);
        }
        if let Ok(st) = r.lstat(p) {
            self.assert_inside("lstat", p, &st);
        }
        if let Ok(Some(st)) = r.stat_cached(p) {
            self.assert_inside("stat_cached", p, &st);
            assert_eq!(
                (st.dev, st.ino),
                stat.as_ref().map(|s| (s.dev, s.ino)).unwrap()
            );
        }
        if let Ok(Some(st)) = r.lstat_cached(p) {
            self.assert_inside("lstat_cached", p, &st);
        }
        let read = OpenOptions {
            read: true,
            ..Default::default()
        };
        if let Ok(f) = r.open_file(p, &read) {
            let m = f.metadata().unwrap();
            assert!(
                self.inside.contains(&(m.dev(), m.ino())),
                "open_file({p:?}) opened a file outside the home"
            );
        }
        if let Ok(entries) = r.read_dir(p) {
            for e in entries {
                self.assert_inside("read_dir", p, &e.stat);
            }
        }
        if let Ok(real) = r.real_path(p) {
            assert_eq!(VirtualPath::parse(real.as_bytes()).as_ref(), Ok(&real));
            // The path a symlinked name leads to is the object the name resolves to.
            if let (Ok(a), Ok(b)) = (&stat, r.stat(&real)) {
                assert_eq!(
                    (a.dev, a.ino),
                    (b.dev, b.ino),
                    "real_path({p:?}) = {real:?}"
                );
            }
        }
        if let Ok(target) = r.read_link(p) {
            let v = VirtualPath::parse(&target).expect("read_link gives a virtual path");
            assert_eq!(v.as_bytes(), &target[..]);
        }
        let _ = r.statvfs(p);
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let (first, second) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Ok(p) = VirtualPath::parse(first) else {
        return;
    };
    f.check(&p);
    if let Some(second) = second
        && let Ok(q) = p.join(second)
    {
        f.check(&q);
    }
});
