//! Property tests of virtual path normalisation (`VirtualPath`): whatever a client sends,
//! the normalised path is absolute, never has a `..` (or `.`, or empty) component, never
//! invents a name, and normalising again changes nothing. The fuzz target `vpath`
//! (`fuzz/`) checks the same on arbitrary bytes.

use proptest::collection::vec;
use proptest::prelude::*;
use sftpgo_vfs::{PathError, VirtualPath};

/// Client paths: components biased towards the ones that matter (`..`, `.`, empty),
/// names of any bytes but `/` and NUL, sometimes absolute.
fn raw_path() -> impl Strategy<Value = Vec<u8>> {
    let component = prop_oneof![
        3 => Just(b"..".to_vec()),
        1 => Just(b".".to_vec()),
        1 => Just(Vec::new()),
        1 => Just(b"...".to_vec()),
        4 => "[a-z.]{1,6}".prop_map(String::into_bytes),
        2 => vec(1u8..=255, 1..8).prop_map(|v| v.into_iter().filter(|b| *b != b'/').collect()),
    ];
    (any::<bool>(), vec(component, 0..12), any::<bool>()).prop_map(|(abs, parts, trailing)| {
        let mut out = if abs { b"/".to_vec() } else { Vec::new() };
        out.extend(parts.join(&b'/'));
        if trailing {
            out.push(b'/');
        }
        out
    })
}

fn components(p: &VirtualPath) -> Vec<&[u8]> {
    p.components().collect()
}

fn assert_normalized(v: &VirtualPath) -> Result<(), TestCaseError> {
    let s = v.as_bytes();
    prop_assert!(s.starts_with(b"/"));
    // Never starts with (nor holds) a `..` component; `/...` is a name.
    prop_assert!(
        v.components().next() != Some(&b".."[..]),
        "starts with ..: {:?}",
        v
    );
    for c in s[1..].split(|b| *b == b'/') {
        if !v.is_root() {
            prop_assert!(
                !c.is_empty() && c != b"." && c != b"..",
                "component {:?} in {:?}",
                c,
                v
            );
        }
    }
    prop_assert!(!s.contains(&0));
    // Idempotent.
    prop_assert_eq!(&VirtualPath::parse(s).unwrap(), v);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn normalised_paths_have_no_dot_components_and_are_idempotent(raw in raw_path()) {
        let v = VirtualPath::parse(&raw).unwrap();
        assert_normalized(&v)?;
        // Every name comes from the client's path: nothing invented, `..` never kept.
        let names: Vec<&[u8]> = raw.split(|b| *b == b'/').collect();
        for c in components(&v) {
            prop_assert!(names.contains(&c));
        }
        // Display text parses back to the same path when it is the same bytes.
        if let Ok(text) = std::str::from_utf8(v.as_bytes()) {
            prop_assert_eq!(v.display().to_string(), text);
            prop_assert_eq!(VirtualPath::parse(text.as_bytes()).unwrap(), v.clone());
        }
        // What goes to openat2 beneath the root fd: relative, no `..`, `.` only for `/`.
        let rel = v.relative();
        prop_assert!(!rel.starts_with(b"/"));
        prop_assert!(!rel.split(|b| *b == b'/').any(|c| c == b".."));
        prop_assert_eq!(rel == b".", v.is_root());
    }

    #[test]
    fn any_bytes_parse_or_fail_for_a_stated_reason(raw in vec(any::<u8>(), 0..300)) {
        match VirtualPath::parse(&raw) {
            Ok(v) => assert_normalized(&v)?,
            Err(PathError::ContainsNul) => prop_assert!(raw.contains(&0)),
            Err(PathError::TooLong) => prop_assert!(raw.split(|b| *b == b'/').any(|c| c.len() > 255)),
        }
    }

    #[test]
    fn join_of_an_absolute_path_is_its_parse(base in raw_path(), raw in raw_path()) {
        let base = VirtualPath::parse(&base).unwrap();
        let mut abs = b"/".to_vec();
        abs.extend_from_slice(&raw);
        prop_assert_eq!(base.join(&abs).unwrap(), VirtualPath::parse(&abs).unwrap());
    }

    #[test]
    fn join_of_a_relative_path_is_the_parse_of_both(base in raw_path(), raw in raw_path()) {
        let base = VirtualPath::parse(&base).unwrap();
        let raw: Vec<u8> = raw.iter().copied().skip_while(|b| *b == b'/').collect();
        let joined = base.join(&raw).unwrap();
        assert_normalized(&joined)?;
        let mut both = base.as_bytes().to_vec();
        both.push(b'/');
        both.extend_from_slice(&raw);
        prop_assert_eq!(&joined, &VirtualPath::parse(&both).unwrap());
        // `..` never climbs above the root: the root joined with anything is its parse.
        prop_assert_eq!(VirtualPath::root().join(&raw).unwrap(), VirtualPath::parse(&raw).unwrap());
    }

    #[test]
    fn parent_and_file_name_give_the_path_back(raw in raw_path()) {
        let v = VirtualPath::parse(&raw).unwrap();
        match (v.parent(), v.file_name()) {
            (Some(parent), Some(name)) => {
                assert_normalized(&parent)?;
                prop_assert_eq!(components(&parent).len() + 1, components(&v).len());
                prop_assert_eq!(parent.join(name).unwrap(), v.clone());
            }
            (None, None) => prop_assert!(v.is_root()),
            other => prop_assert!(false, "parent/file_name disagree: {:?}", other),
        }
    }
}
