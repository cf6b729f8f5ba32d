//! The REST API's htpasswd parser (`BasicAuth::parse`, `httpd.auth_user_file`).
//!
//! Never panics on any text; keeps at most one entry per line that has the shape
//! `user:$2a$|$2b$|$2y$...` (after trimming, not a comment), and exactly one per distinct
//! such user name.

#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use sftpgo_httpd::BasicAuth;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let auth = BasicAuth::parse(&text, "fuzz");
    let users: HashSet<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .filter(|(user, hash)| {
            !user.is_empty() && ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p))
        })
        .map(|(user, _)| user)
        .collect();
    assert_eq!(auth.len(), users.len());
    assert_eq!(auth.is_empty(), users.is_empty());
    let _ = format!("{auth:?}");
});
