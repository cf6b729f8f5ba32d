//! The rules a user record must meet, on every write through the API and on every read
//! at login: a record that could expose the host (a home of `/`, `/etc`, another user's
//! home) or that a typo made unlimited (a negative quota) is refused, naming the field.

use crate::filesystem::{Filesystem, FsProvider};
use crate::{Folder, ProviderError, Result, User, password};

/// Longest accepted username, in bytes (the SQL column is `varchar(255)`).
pub const MAX_USERNAME_LEN: usize = 255;
/// Longest accepted home directory, in bytes: the files beneath it need room below the
/// kernel's PATH_MAX (4096) too.
pub const MAX_HOME_DIR_LEN: usize = 1024;
/// Most virtual folders one user may map.
pub const MAX_VIRTUAL_FOLDERS: usize = 64;
/// Longest accepted folder `mapped_path` or `virtual_path`, in bytes (the SQL column is
/// `varchar(512)`).
pub const MAX_FOLDER_PATH_LEN: usize = 512;
/// Largest uid/gid (a non-negative 32-bit `id_t` that every tool handles).
pub const MAX_ID: i64 = (1 << 31) - 1;

fn field(field: &'static str, reason: impl Into<String>) -> ProviderError {
    ProviderError::InvalidField {
        field,
        reason: reason.into(),
    }
}

/// Checks `user` against SFTPGo 0.9's rules, in its order, then the ones added since
/// (home dir shape, `users_base_dir`, value ranges, username hygiene). Does not look at
/// other users ([`homes_overlap`] does).
pub fn validate_user(user: &User, users_base_dir: Option<&str>) -> Result<()> {
    let invalid = |m: String| Err(ProviderError::Validation(m));
    if user.username.is_empty() || user.home_dir.is_empty() {
        return invalid("Mandatory parameters missing".to_owned());
    }
    validate_username(&user.username)?;
    if let Some(p) = user.password.as_deref().filter(|p| password::is_hashed(p))
        && let Err(e) = password::check_cost(p)
    {
        return invalid(format!("password hash refused: {e}"));
    }
    let has_password = user.password.as_deref().is_some_and(|p| !p.is_empty());
    if !has_password && user.public_keys.is_empty() {
        return invalid("Please set password or at least a public_key".to_owned());
    }
    if user.permissions.is_empty() {
        return invalid("Please grant some permissions to this user".to_owned());
    }
    validate_home_dir(&user.home_dir, users_base_dir)?;
    validate_values(user)?;
    validate_filesystem(&user.filesystem)?;
    validate_virtual_folders(user)?;
    // Permission names are typed (unknown names fail deserialization); keys must parse.
    user.parsed_public_keys()?;
    Ok(())
}

/// The checks a stored record must pass before anyone logs in with it (a row written
/// by an older version or by hand): no provider-wide rule, only the record's own shape.
pub fn validate_stored(user: &User) -> Result<()> {
    validate_username(&user.username)?;
    validate_home_dir(&user.home_dir, None)?;
    validate_values(user)?;
    validate_filesystem(&user.filesystem)?;
    validate_virtual_folders(user)
}

/// A folder record: a normalised absolute `mapped_path` other than `/` (for a local
/// folder, the directory; for an S3 folder, its name) and a usable `filesystem`.
pub fn validate_folder(folder: &Folder) -> Result<()> {
    validate_abs_path("mapped_path", &folder.mapped_path, MAX_FOLDER_PATH_LEN)?;
    validate_filesystem(&folder.filesystem)
}

/// A user's `virtual_folders`: each seen at its own normalised absolute path (not `/`,
/// none inside another), each folder once, a local folder never over the user's own home
/// (its files would count twice and escape the folder's limits), quotas `-1` together or
/// not at all.
pub fn validate_virtual_folders(user: &User) -> Result<()> {
    let folders = &user.virtual_folders;
    if folders.len() > MAX_VIRTUAL_FOLDERS {
        return Err(field(
            "virtual_folders",
            format!("at most {MAX_VIRTUAL_FOLDERS} folders per user"),
        ));
    }
    for (i, vf) in folders.iter().enumerate() {
        validate_abs_path(
            "virtual_folders.virtual_path",
            &vf.virtual_path,
            MAX_FOLDER_PATH_LEN,
        )?;
        validate_abs_path(
            "virtual_folders.mapped_path",
            &vf.mapped_path,
            MAX_FOLDER_PATH_LEN,
        )?;
        if user.filesystem.provider == FsProvider::Local
            && homes_overlap(&vf.mapped_path, &user.home_dir)
        {
            return Err(field(
                "virtual_folders.mapped_path",
                format!(
                    "{:?} overlaps the user's home dir {:?}",
                    vf.mapped_path, user.home_dir
                ),
            ));
        }
        let (size, files) = (vf.quota_size, vf.quota_files);
        let in_user = size == -1 && files == -1;
        if !in_user && (size < 0 || files < 0) {
            return Err(field(
                "virtual_folders.quota_size",
                format!(
                    "quota_size and quota_files are both -1 (counted in the user's quota) or \
                     both 0 (unlimited) or more, got {size} and {files} for {:?}",
                    vf.virtual_path
                ),
            ));
        }
        if let Some(fs) = &vf.filesystem {
            validate_filesystem(fs)?;
        }
        for other in &folders[..i] {
            if homes_overlap(&other.virtual_path, &vf.virtual_path) {
                return Err(field(
                    "virtual_folders.virtual_path",
                    format!(
                        "{:?} overlaps {:?}: virtual folders must not be inside one another",
                        vf.virtual_path, other.virtual_path
                    ),
                ));
            }
            if other.mapped_path == vf.mapped_path {
                return Err(field(
                    "virtual_folders.mapped_path",
                    format!("folder {:?} is mapped twice", vf.mapped_path),
                ));
            }
        }
    }
    Ok(())
}

/// Largest multipart part, MiB (S3 allows 5 GiB).
pub const MAX_UPLOAD_PART_MIB: i64 = 5 * 1024;
/// Most parts of one upload in flight: memory per upload is part size times this.
pub const MAX_UPLOAD_CONCURRENCY: i64 = 64;

/// The `filesystem` field: an S3 user names a bucket that a client can reach, with values
/// that cannot turn into unbounded memory or a key outside the user's prefix.
pub fn validate_filesystem(fs: &Filesystem) -> Result<()> {
    if fs.provider != FsProvider::S3 {
        return Ok(());
    }
    let c = &fs.s3config;
    let printable = |name: &'static str, v: &str, max: usize| -> Result<()> {
        if v.len() > max {
            return Err(field(name, format!("is longer than {max} bytes")));
        }
        if v.chars().any(|ch| ch.is_control() || ch.is_whitespace()) {
            return Err(field(name, "must not contain spaces or control characters"));
        }
        Ok(())
    };
    if c.bucket.is_empty() {
        return Err(field(
            "filesystem.s3config.bucket",
            "is required for an S3 user",
        ));
    }
    printable("filesystem.s3config.bucket", &c.bucket, 255)?;
    if c.bucket.contains('/') {
        return Err(field("filesystem.s3config.bucket", "must not contain '/'"));
    }
    printable("filesystem.s3config.region", &c.region, 64)?;
    if c.region.is_empty() && c.endpoint.is_empty() {
        return Err(field(
            "filesystem.s3config.region",
            "is required when no endpoint is set",
        ));
    }
    printable("filesystem.s3config.endpoint", &c.endpoint, 1024)?;
    if !c.endpoint.is_empty() {
        let rest = c
            .endpoint
            .strip_prefix("https://")
            .or_else(|| c.endpoint.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !host.starts_with('/') => {}
            _ => {
                return Err(field(
                    "filesystem.s3config.endpoint",
                    format!("must be an http:// or https:// URL, got {:?}", c.endpoint),
                ));
            }
        }
    }
    printable("filesystem.s3config.access_key", &c.access_key, 256)?;
    if c.access_key.is_empty() != c.access_secret.is_empty() {
        return Err(field(
            "filesystem.s3config.access_secret",
            "access_key and access_secret go together (both empty: the server's environment credentials)",
        ));
    }
    if c.access_secret.as_stored().len() > 1024 {
        return Err(field(
            "filesystem.s3config.access_secret",
            "is longer than 1024 bytes",
        ));
    }
    let prefix = &c.key_prefix;
    if !prefix.is_empty() {
        let bad = |reason: &str| Err(field("filesystem.s3config.key_prefix", reason.to_owned()));
        if prefix.len() > 1024 {
            return bad("is longer than 1024 bytes");
        }
        if prefix.starts_with('/') || !prefix.ends_with('/') {
            return bad("must not start with '/' and must end with '/' (\"users/alice/\")");
        }
        if prefix.chars().any(char::is_control) {
            return bad("must not contain control characters");
        }
        if prefix[..prefix.len() - 1]
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return bad("must be normalised (no empty, '.' or '..' components)");
        }
    }
    printable("filesystem.s3config.storage_class", &c.storage_class, 64)?;
    if !(c.upload_part_size == 0 || (5..=MAX_UPLOAD_PART_MIB).contains(&c.upload_part_size)) {
        return Err(field(
            "filesystem.s3config.upload_part_size",
            format!(
                "must be 0 (5 MiB) or within 5..={MAX_UPLOAD_PART_MIB} MiB, got {}",
                c.upload_part_size
            ),
        ));
    }
    if !(0..=MAX_UPLOAD_CONCURRENCY).contains(&c.upload_concurrency) {
        return Err(field(
            "filesystem.s3config.upload_concurrency",
            format!(
                "must be 0 (2) or within 1..={MAX_UPLOAD_CONCURRENCY}, got {}",
                c.upload_concurrency
            ),
        ));
    }
    Ok(())
}

fn validate_values(user: &User) -> Result<()> {
    for (name, value) in [
        ("quota_size", user.quota_size),
        ("quota_files", user.quota_files),
        ("upload_bandwidth", user.upload_bandwidth),
        ("download_bandwidth", user.download_bandwidth),
        ("max_sessions", user.max_sessions),
    ] {
        if value < 0 {
            return Err(field(
                name,
                format!("must be 0 (unlimited) or positive, got {value}"),
            ));
        }
    }
    for (name, value) in [("uid", user.uid), ("gid", user.gid)] {
        if !(0..=MAX_ID).contains(&value) {
            return Err(field(
                name,
                format!("must be within 0..={MAX_ID}, got {value}"),
            ));
        }
    }
    Ok(())
}

/// A home is an absolute, normalised host path other than `/` (and under
/// `users_base_dir` when one is set): no `.` or `..` component, no `//`, no trailing `/`,
/// no NUL, at most [`MAX_HOME_DIR_LEN`] bytes.
pub fn validate_home_dir(home: &str, users_base_dir: Option<&str>) -> Result<()> {
    validate_abs_path("home_dir", home, MAX_HOME_DIR_LEN)?;
    if let Some(base) = users_base_dir
        && !is_beneath(home, base)
    {
        return Err(field(
            "home_dir",
            format!("{home:?} is not inside users_base_dir {base:?}"),
        ));
    }
    Ok(())
}

/// An absolute, normalised path other than `/`: no `.` or `..` component, no `//`, no
/// trailing `/`, no NUL, at most `max` bytes.
fn validate_abs_path(name: &'static str, path: &str, max: usize) -> Result<()> {
    let bad = |reason: String| Err(field(name, reason));
    if !path.starts_with('/') {
        return bad(format!("must be an absolute path, actual value: {path}"));
    }
    if path == "/" {
        return bad("must not be the root directory /".to_owned());
    }
    if path.len() > max {
        return bad(format!("is longer than {max} bytes"));
    }
    if path.contains('\0') {
        return bad("must not contain NUL".to_owned());
    }
    if path.ends_with('/') {
        return bad(format!("must not end with '/': {path:?}"));
    }
    for component in path[1..].split('/') {
        match component {
            "" => return bad(format!("must not contain '//': {path:?}")),
            "." | ".." => {
                return bad(format!(
                    "must be normalised (no '.' or '..' components): {path:?}"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether `path` lies strictly beneath `dir` (both normalised absolute paths).
fn is_beneath(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path.len() > dir.len() + 1 && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/'
}

/// Whether two homes would share files: equal, or one inside the other. Stored homes
/// of older records are compared without their trailing slashes.
pub fn homes_overlap(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_end_matches('/'), b.trim_end_matches('/'));
    a == b || is_beneath(a, b) || is_beneath(b, a)
}

/// Bidirectional controls (Trojan Source, CVE-2021-42574) and other invisible format
/// characters that make one name look like another in logs and listings.
fn is_deceptive(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

fn validate_username(username: &str) -> Result<()> {
    let bad = |reason: String| Err(field("username", reason));
    if username.len() > MAX_USERNAME_LEN {
        return bad(format!("is longer than {MAX_USERNAME_LEN} bytes"));
    }
    if username.contains('/') {
        return bad(format!("{username:?} must not contain '/'"));
    }
    if username == "." || username == ".." {
        return bad(format!("{username:?} is not a usable name"));
    }
    if username.chars().any(char::is_control) {
        return bad(format!("{username:?} must not contain control characters"));
    }
    if username.chars().any(is_deceptive) {
        return bad(format!(
            "{username:?} must not contain bidirectional or invisible format characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(r: Result<()>, name: &str) -> String {
        match r {
            Err(ProviderError::InvalidField { field, reason }) => {
                assert_eq!(field, name, "{reason}");
                reason
            }
            other => panic!("expected {name} refused, got {other:?}"),
        }
    }

    #[test]
    fn homes_must_be_normalised_absolute_and_not_root() {
        for ok in ["/srv/a", "/a", "/srv/sftp/user name", "/srv/é"] {
            validate_home_dir(ok, None).unwrap();
        }
        for bad in [
            "/",
            "srv/a",
            "",
            "/srv/",
            "/srv//a",
            "/srv/./a",
            "/srv/../etc",
            "/..",
            "/srv/a/.",
            "/srv/a\0b",
            "//",
            "/srv/a/..",
        ] {
            refused(validate_home_dir(bad, None), "home_dir");
        }
        refused(
            validate_home_dir(&format!("/{}", "a".repeat(2000)), None),
            "home_dir",
        );
        // users_base_dir: strictly beneath it.
        validate_home_dir("/srv/sftp/a", Some("/srv/sftp")).unwrap();
        validate_home_dir("/srv/sftp/a/b", Some("/srv/sftp/")).unwrap();
        for bad in ["/srv/sftp", "/srv/sftpx/a", "/etc", "/srv"] {
            let why = refused(validate_home_dir(bad, Some("/srv/sftp")), "home_dir");
            assert!(why.contains("users_base_dir"), "{why}");
        }
    }

    #[test]
    fn overlapping_homes() {
        assert!(homes_overlap("/srv/a", "/srv/a"));
        assert!(homes_overlap("/srv/a", "/srv/a/"));
        assert!(homes_overlap("/srv/a/b", "/srv/a"));
        assert!(homes_overlap("/srv", "/srv/a"));
        assert!(!homes_overlap("/srv/a", "/srv/ab"));
        assert!(!homes_overlap("/srv/ab", "/srv/a"));
        assert!(!homes_overlap("/srv/a", "/srv/b"));
    }

    #[test]
    fn usernames_are_plain() {
        for ok in ["alice", "a.b-c_d@example.com", "ünïcode", "with space"] {
            validate_username(ok).unwrap();
        }
        for bad in [
            "a/b",
            ".",
            "..",
            "a\nb",
            "a\0b",
            "a\u{7f}b",
            "admin\u{202E}nimda",
            "a\u{200B}b",
            "\u{2066}x",
            "a\u{FEFF}",
        ] {
            refused(validate_username(bad), "username");
        }
        validate_username(&"é".repeat(127)).unwrap(); // 254 bytes
        refused(validate_username(&"é".repeat(128)), "username"); // 256 bytes
    }

    #[test]
    fn negative_limits_and_ids_out_of_range_are_refused() {
        let ok = User {
            username: "u".into(),
            home_dir: "/srv/u".into(),
            password: Some("x".into()),
            permissions: vec![crate::Permission::Any],
            uid: MAX_ID,
            gid: 0,
            ..User::default()
        };
        validate_user(&ok, None).unwrap();
        type Change = fn(&mut User);
        let cases: [(&str, Change); 8] = [
            ("quota_size", |u| u.quota_size = -1),
            ("quota_files", |u| u.quota_files = -5),
            ("upload_bandwidth", |u| u.upload_bandwidth = -1),
            ("download_bandwidth", |u| u.download_bandwidth = i64::MIN),
            ("max_sessions", |u| u.max_sessions = -1),
            ("uid", |u| u.uid = -1),
            ("uid", |u| u.uid = MAX_ID + 1),
            ("gid", |u| u.gid = 1 << 40),
        ];
        for (name, change) in cases {
            let mut u = ok.clone();
            change(&mut u);
            refused(validate_user(&u, None), name);
            refused(validate_stored(&u), name);
        }
        let mut root = ok.clone();
        root.home_dir = "/".into();
        refused(validate_stored(&root), "home_dir");
    }
}
