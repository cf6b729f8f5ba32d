//! Version information embedded at build time by `build.rs`.

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn commit() -> &'static str {
    env!("SFTPGO_GIT_COMMIT")
}

pub fn build_date() -> &'static str {
    env!("SFTPGO_BUILD_DATE")
}

/// `SFTPGo version: <semver>-<commit>-<build date>`, as `sftpgo --version` prints it.
pub fn version_line() -> String {
    format!("SFTPGo version: {VERSION}-{}-{}", commit(), build_date())
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_line_has_all_parts() {
        let line = super::version_line();
        let expected = format!(
            "SFTPGo version: {}-{}-{}",
            env!("CARGO_PKG_VERSION"),
            super::commit(),
            super::build_date()
        );
        assert_eq!(line, expected);
        assert!(!super::commit().is_empty() && !super::build_date().is_empty());
    }
}
