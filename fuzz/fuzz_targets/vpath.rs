//! Virtual path normalisation (`VirtualPath::parse` / `join`) and its translation into the
//! path handed to `openat2` beneath the home's fd (`VirtualPath::relative`).
//!
//! Input: a base path and a client path, split at the first `\n` (no `\n`: the root is
//! the base). Checks: a normalised path is absolute, has no empty, `.` or `..` component,
//! no NUL, respects PATH_MAX/NAME_MAX and parses to itself (idempotent, also from its
//! display text when it is UTF-8); `join` of an absolute path is `parse` of it, of a
//! relative one `parse` of the concatenation; errors mean what they say; parent,
//! file name and relative path put back together give the path again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sftpgo_vfs::{PathError, VirtualPath};

const MAX_PATH: usize = 4096;
const MAX_NAME: usize = 255;

fuzz_target!(|data: &[u8]| {
    let (base_raw, raw) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"/"[..], data),
    };

    let parsed = VirtualPath::parse(raw);
    match &parsed {
        Ok(v) => check_normalized(v),
        Err(PathError::ContainsNul) => assert!(raw.contains(&0)),
        Err(PathError::TooLong) => assert!(!raw.contains(&0)),
    }

    let Ok(base) = VirtualPath::parse(base_raw) else {
        return;
    };
    check_normalized(&base);
    let joined = base.join(raw);
    if let Ok(j) = &joined {
        check_normalized(j);
    }
    if raw.starts_with(b"/") {
        assert_eq!(joined, parsed, "join of an absolute path is not its parse");
    } else {
        let mut concat = base.as_bytes().to_vec();
        concat.push(b'/');
        concat.extend_from_slice(raw);
        match (VirtualPath::parse(&concat), &joined) {
            (Ok(c), Ok(j)) => assert_eq!(&c, j, "join differs from parse of base/raw"),
            (Ok(c), Err(e)) => panic!("join failed ({e}) where base/raw parses to {c:?}"),
            // base/raw may exceed PATH_MAX before normalisation where raw alone does not.
            (Err(PathError::TooLong), _) => {}
            (Err(e), j) => assert_eq!(Err(&e), j.as_ref()),
        }
    }
    if raw.contains(&0) {
        assert_eq!(joined, Err(PathError::ContainsNul));
    }
});

fn check_normalized(v: &VirtualPath) {
    let s = v.as_bytes();
    assert!(s.starts_with(b"/"), "{v:?}");
    assert!(s.len() <= MAX_PATH, "{v:?}");
    assert!(!s.contains(&0), "{v:?}");
    assert!(v.is_root() == (s == b"/"));
    assert!(s == b"/" || !s.ends_with(b"/"), "{v:?}");
    for c in s[1..].split(|&b| b == b'/') {
        if v.is_root() {
            break;
        }
        assert!(!c.is_empty() && c != b"." && c != b"..", "{v:?}");
        assert!(c.len() <= MAX_NAME, "{v:?}");
    }
    assert_eq!(
        v.components().count(),
        if v.is_root() {
            0
        } else {
            s[1..].split(|&b| b == b'/').count()
        }
    );

    // Idempotent, from the bytes and from the display text.
    assert_eq!(&VirtualPath::parse(s).unwrap(), v);
    if let Ok(text) = std::str::from_utf8(s) {
        assert_eq!(v.display().to_string(), text);
        assert_eq!(&VirtualPath::parse(text.as_bytes()).unwrap(), v);
    }

    // What reaches openat2: relative, no `..`, `.` only for the home itself.
    let rel = v.relative();
    assert!(!rel.starts_with(b"/"), "{v:?}");
    if v.is_root() {
        assert_eq!(rel, b".");
    } else {
        assert!(
            rel.split(|&b| b == b'/')
                .all(|c| !c.is_empty() && c != b"." && c != b"..")
        );
        let mut abs = b"/".to_vec();
        abs.extend_from_slice(rel);
        assert_eq!(&VirtualPath::parse(&abs).unwrap(), v);
    }

    // parent + file name = the path.
    match (v.parent(), v.file_name()) {
        (None, None) => assert!(v.is_root()),
        (Some(parent), Some(name)) => {
            assert!(!v.is_root());
            assert!(parent.components().count() + 1 == v.components().count());
            assert_eq!(&parent.join(name).unwrap(), v);
        }
        other => panic!("parent/file_name disagree for {v:?}: {other:?}"),
    }
}
