//! Lexical normalization of client paths. Paths are bytes: never decoded.

use std::fmt;

/// Longest normalized path accepted (Linux PATH_MAX).
pub const MAX_PATH: usize = 4096;
/// Longest file name component (Linux NAME_MAX).
pub const MAX_NAME: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path contains a NUL byte")]
    ContainsNul,
    #[error("path too long")]
    TooLong,
}

/// An absolute, normalized virtual path: starts with `/`, has no `.`, `..` or empty
/// components. `/` is the user's home dir.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VirtualPath(Vec<u8>);

impl VirtualPath {
    pub fn root() -> Self {
        VirtualPath(b"/".to_vec())
    }

    /// Normalizes a client path; a relative one is taken relative to `/`.
    pub fn parse(raw: &[u8]) -> Result<Self, PathError> {
        Self::root().join(raw)
    }

    /// Resolves `raw` against `self`: an absolute `raw` replaces it, a relative one is
    /// appended. `..` at the root stays at the root.
    pub fn join(&self, raw: &[u8]) -> Result<Self, PathError> {
        if raw.contains(&0) {
            return Err(PathError::ContainsNul);
        }
        // A client path longer than PATH_MAX is refused before any work, whatever it
        // would normalize to: no legitimate client needs more.
        if raw.len() > MAX_PATH {
            return Err(PathError::TooLong);
        }
        let mut parts: Vec<&[u8]> = Vec::new();
        if !raw.starts_with(b"/") {
            parts.extend(self.components());
        }
        for c in raw.split(|b| *b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => {
                    parts.pop();
                }
                name if name.len() > MAX_NAME => return Err(PathError::TooLong),
                name => parts.push(name),
            }
        }
        let mut out = Vec::with_capacity(raw.len() + self.0.len() + 1);
        for p in &parts {
            out.push(b'/');
            out.extend_from_slice(p);
        }
        if out.is_empty() {
            out.push(b'/');
        }
        if out.len() > MAX_PATH {
            return Err(PathError::TooLong);
        }
        Ok(VirtualPath(out))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == b"/"
    }

    /// The components, e.g. `["a", "b"]` for `/a/b`.
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|b| *b == b'/').filter(|c| !c.is_empty())
    }

    pub fn parent(&self) -> Option<VirtualPath> {
        if self.is_root() {
            return None;
        }
        let cut = self.0.iter().rposition(|b| *b == b'/').unwrap_or(0);
        Some(if cut == 0 {
            Self::root()
        } else {
            VirtualPath(self.0[..cut].to_vec())
        })
    }

    pub fn file_name(&self) -> Option<&[u8]> {
        if self.is_root() {
            return None;
        }
        self.0.rsplit(|b| *b == b'/').next()
    }

    /// What `self` names inside `prefix`, as a path of its own (`/` for `prefix`
    /// itself), or `None` when `self` is neither `prefix` nor beneath it.
    pub fn strip_prefix(&self, prefix: &VirtualPath) -> Option<VirtualPath> {
        if prefix.is_root() {
            return Some(self.clone());
        }
        if self.0 == prefix.0 {
            return Some(Self::root());
        }
        let rest = self.0.strip_prefix(prefix.0.as_slice())?;
        // Both are normalised: `rest` starting with `/` is a whole-component match.
        rest.starts_with(b"/").then(|| VirtualPath(rest.to_vec()))
    }

    /// What is handed to `openat2` beneath the root: `a/b`, or `.` for the root.
    pub fn relative(&self) -> &[u8] {
        if self.is_root() { b"." } else { &self.0[1..] }
    }

    /// Lossy text for logs only.
    pub fn display(&self) -> impl fmt::Display + '_ {
        String::from_utf8_lossy(&self.0)
    }
}

impl fmt::Debug for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Byte-exact (unlike `display`): names differing only in invalid UTF-8 stay distinct.
        write!(f, "VirtualPath(\"{}\")", self.0.escape_ascii())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_prefix_matches_whole_components_only() {
        let p = |s: &str| VirtualPath::parse(s.as_bytes()).unwrap();
        assert_eq!(p("/a/b/c").strip_prefix(&p("/a/b")), Some(p("/c")));
        assert_eq!(p("/a/b").strip_prefix(&p("/a/b")), Some(p("/")));
        assert_eq!(p("/a/bc").strip_prefix(&p("/a/b")), None);
        assert_eq!(p("/a").strip_prefix(&p("/a/b")), None);
        assert_eq!(p("/x/y").strip_prefix(&p("/")), Some(p("/x/y")));
        assert_eq!(p("/").strip_prefix(&p("/a")), None);
    }

    fn p(s: &[u8]) -> Vec<u8> {
        VirtualPath::parse(s).unwrap().as_bytes().to_vec()
    }

    #[test]
    fn dotdot_never_climbs_above_the_root() {
        assert_eq!(p(b"/../../etc/passwd"), b"/etc/passwd");
        assert_eq!(p(b"../../etc/passwd"), b"/etc/passwd");
        assert_eq!(p(b"/a/b/"), b"/a/b");
        assert_eq!(p(b"a/b///"), b"/a/b");
        assert_eq!(p(b"//x"), b"/x");
        assert_eq!(p(b"/.."), b"/");
        assert_eq!(p(b"/..."), b"/...");
        assert_eq!(p(b"/.hidden/..x"), b"/.hidden/..x");
        assert_eq!(p(b"../../../.."), b"/");
        assert_eq!(p(b"a/./b/../c"), b"/a/c");
        assert_eq!(p(b"//x///y/"), b"/x/y");
        assert_eq!(p(b""), b"/");
        assert_eq!(p(b"."), b"/");
        let base = VirtualPath::parse(b"/a/b").unwrap();
        assert_eq!(base.join(b"../../../c").unwrap().as_bytes(), b"/c");
        assert_eq!(base.join(b"/z").unwrap().as_bytes(), b"/z");
        assert_eq!(base.join(b"c").unwrap().as_bytes(), b"/a/b/c");
    }

    #[test]
    fn nul_and_length_limits() {
        assert_eq!(VirtualPath::parse(b"/a\0b"), Err(PathError::ContainsNul));
        assert_eq!(VirtualPath::parse(&[b'a'; 256]), Err(PathError::TooLong));
        assert!(VirtualPath::parse(&[b'a'; 255]).is_ok());
        // 4097 bytes, components all short.
        let long: Vec<u8> = [&b"/"[..], &b"/abcdefg".repeat(512)].concat();
        assert_eq!(long.len(), 4097);
        assert_eq!(VirtualPath::parse(&long), Err(PathError::TooLong));
        assert!(VirtualPath::parse(&long[1..]).is_ok());
        // Short pieces joined onto a long base still may not exceed PATH_MAX.
        let base = VirtualPath::parse(&b"/abcdefg".repeat(511)).unwrap();
        assert_eq!(base.join(b"abcdefgh"), Err(PathError::TooLong));
        assert!(base.join(b"abcdefg").is_ok());
        assert_eq!(
            VirtualPath::parse(&vec![b'/'; 100_000]),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn non_utf8_names_are_kept_byte_exact() {
        let a = VirtualPath::parse(b"/caf\xe9").unwrap();
        let b = VirtualPath::parse(b"/caf\xc3\xa9").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_bytes(), b"/caf\xe9");
        assert_eq!(a.file_name(), Some(&b"caf\xe9"[..]));
        let c = VirtualPath::parse(b"/caf\xe8").unwrap();
        assert_ne!(a, c);
        assert_ne!(format!("{a:?}"), format!("{c:?}"));
        assert_eq!(a.join(b"../\xff\xfe/x").unwrap().as_bytes(), b"/\xff\xfe/x");
    }

    #[test]
    fn parent_file_name_relative() {
        let x = VirtualPath::parse(b"/a/b").unwrap();
        assert_eq!(x.parent().unwrap().as_bytes(), b"/a");
        assert_eq!(x.parent().unwrap().parent().unwrap(), VirtualPath::root());
        assert!(VirtualPath::root().parent().is_none());
        assert_eq!(x.file_name(), Some(&b"b"[..]));
        assert_eq!(x.relative(), b"a/b");
        assert_eq!(VirtualPath::root().relative(), b".");
    }

    /// Checks the normalized form: absolute, no empty/`.`/`..` component, idempotent.
    fn assert_normalized(v: &VirtualPath) {
        let s = v.as_bytes();
        assert!(s.starts_with(b"/"), "{v:?}");
        assert!(s == b"/" || !s.ends_with(b"/"), "{v:?}");
        assert!(s.len() <= MAX_PATH && !s.contains(&0), "{v:?}");
        for bad in [&b"/../"[..], b"/./", b"//"] {
            assert!(!s.windows(bad.len()).any(|w| w == bad), "{v:?}");
        }
        assert!(!s.ends_with(b"/..") && !s.ends_with(b"/."), "{v:?}");
        assert!(v.components().all(|c| c.len() <= MAX_NAME));
        assert_eq!(&VirtualPath::parse(s).unwrap(), v);
    }

    #[test]
    fn random_inputs_never_panic_and_stay_normalized() {
        // xorshift64: deterministic, no dependency.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Biased towards the bytes that matter, with arbitrary bytes mixed in.
        let alphabet = [b'/', b'.', b'a', 0xff, b'/', b'.', 0u8];
        let mut base = VirtualPath::root();
        for round in 0..50_000 {
            let len = (next() % if round % 100 == 0 { 5000 } else { 64 }) as usize;
            let raw: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 8 == 0 {
                        (r >> 8) as u8
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            match VirtualPath::parse(&raw) {
                Ok(v) => assert_normalized(&v),
                Err(PathError::ContainsNul) => assert!(raw.contains(&0)),
                Err(PathError::TooLong) => {}
            }
            if let Ok(v) = base.join(&raw) {
                assert_normalized(&v);
                base = v;
            }
        }
    }
}
