use super::*;
use std::time::Duration;

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn no_file_means_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let l = load_with_env(dir.path(), "sftpgo", no_env()).unwrap();
    assert!(l.file.is_none());
    assert_eq!(l.config, Config::default());
    assert_eq!(l.config.sftpd.bind_port, 2022);
    assert_eq!(l.config.data_provider.track_quota, 2);
    assert_eq!(l.config.httpd.bind_address, "127.0.0.1");
}

#[test]
fn shipped_file_equals_the_defaults() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let l = load_with_env(dir, "sftpgo", no_env()).unwrap();
    assert!(l.file.is_some());
    assert_eq!(l.config, Config::default());
}

#[test]
fn every_format_is_read() {
    let cases = [
        (
            "json",
            r#"{"sftpd": {"bind_port": 2200, "keys": [{"private_key": "k"}]}}"#,
        ),
        (
            "yaml",
            "sftpd:\n  bind_port: 2200\n  keys:\n    - private_key: k\n",
        ),
        (
            "yml",
            "sftpd:\n  bind_port: 2200\n  keys:\n    - private_key: k\n",
        ),
        (
            "toml",
            "[sftpd]\nbind_port = 2200\n[[sftpd.keys]]\nprivate_key = \"k\"\n",
        ),
    ];
    for (ext, text) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(format!("conf.{ext}")), text).unwrap();
        let l = load_with_env(dir.path(), "conf", no_env()).unwrap();
        assert_eq!(l.config.sftpd.bind_port, 2200, "{ext}");
        assert_eq!(l.config.sftpd.keys[0].private_key, "k", "{ext}");
        assert_eq!(
            l.config.sftpd.idle_timeout, 15,
            "{ext}: absent keys keep defaults"
        );
    }
}

#[test]
fn env_overrides_every_key_even_absent_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sftpgo.json"),
        r#"{"sftpd": {"bind_port": 2200}, "extra_0_9_key": true}"#,
    )
    .unwrap();
    let e = env(&[
        ("SFTPGO_SFTPD__BIND_PORT", "2300"),
        ("SFTPGO_SFTPD__BANNER", "123"),
        ("SFTPGO_SFTPD__UMASK", "0002"),
        ("SFTPGO_SFTPD__ACTIONS__EXECUTE_ON", "upload, download"),
        ("SFTPGO_SFTPD__KEYS", "a,b"),
        ("SFTPGO_DATA_PROVIDER__DRIVER", "memory"),
        ("SFTPGO_HTTPD__BIND_PORT", "0"),
        ("SFTPGO_CONFIG_DIR", "/ignored"),
        ("SFTPGO_LOG_FILE_PATH", "-"),
        ("SFTPGO_NOT__A_KEY", "x"),
        ("PATH", "/bin"),
    ]);
    let c = load_with_env(dir.path(), "sftpgo", e).unwrap().config;
    assert_eq!(c.sftpd.bind_port, 2300);
    assert_eq!(c.sftpd.banner, "123");
    assert_eq!(c.sftpd.umask, "0002");
    assert_eq!(c.sftpd.actions.execute_on, vec!["upload", "download"]);
    assert_eq!(
        c.sftpd
            .keys
            .iter()
            .map(|k| k.private_key.as_str())
            .collect::<Vec<_>>(),
        vec!["a", "b"]
    );
    assert_eq!(c.data_provider.driver, "memory");
    assert_eq!(c.httpd.bind_port, 0);
    let c = load_with_env(
        dir.path(),
        "sftpgo",
        env(&[("SFTPGO_SFTPD__ACTIONS__EXECUTE_ON", "")]),
    )
    .unwrap()
    .config;
    assert!(c.sftpd.actions.execute_on.is_empty());
}

fn error_of(file_text: &str, e: Vec<(String, String)>) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sftpgo.yaml"), file_text).unwrap();
    load_with_env(dir.path(), "sftpgo", e)
        .unwrap_err()
        .to_string()
}

#[test]
fn errors_name_the_file_and_the_key() {
    for (text, key) in [
        ("sftpd:\n  upload_mode: 7\n", "sftpd.upload_mode"),
        ("sftpd:\n  setstat_mode: 3\n", "sftpd.setstat_mode"),
        ("sftpd:\n  umask: \"99\"\n", "sftpd.umask"),
        ("sftpd:\n  bind_port: abc\n", "sftpd.bind_port"),
        ("sftpd:\n  bind_port: 70000\n", "sftpd.bind_port"),
        (
            "sftpd:\n  actions:\n    execute_on: [upload, explode]\n",
            "sftpd.actions.execute_on",
        ),
        ("data_provider:\n  driver: oracle\n", "data_provider.driver"),
        ("data_provider:\n  sslmode: 9\n", "data_provider.sslmode"),
        (
            "data_provider:\n  track_quota: 5\n",
            "data_provider.track_quota",
        ),
        (
            "data_provider:\n  manage_users: 3\n",
            "data_provider.manage_users",
        ),
        (
            "data_provider:\n  users_table: \"users; drop\"\n",
            "data_provider.users_table",
        ),
    ] {
        let msg = error_of(text, no_env());
        assert!(
            msg.contains("sftpgo.yaml") && msg.contains(key),
            "{text:?} gave {msg}"
        );
    }
    let msg = error_of("sftpd: [unclosed\n", no_env());
    assert!(msg.contains("sftpgo.yaml"), "{msg}");
}

#[test]
fn env_errors_name_the_variable() {
    let msg = error_of("{}\n", env(&[("SFTPGO_SFTPD__UPLOAD_MODE", "3")]));
    assert!(
        msg.contains("SFTPGO_SFTPD__UPLOAD_MODE") && msg.contains("sftpd.upload_mode"),
        "{msg}"
    );
    let msg = error_of("{}\n", env(&[("SFTPGO_SFTPD__BIND_PORT", "x")]));
    assert!(
        msg.contains("SFTPGO_SFTPD__BIND_PORT") && msg.contains("sftpd.bind_port"),
        "{msg}"
    );
}

#[test]
fn helpers() {
    let mut c = Config::default();
    assert_eq!(
        Config::resolve_path(Path::new("/etc/sftpgo"), "id_rsa"),
        PathBuf::from("/etc/sftpgo/id_rsa")
    );
    assert_eq!(
        Config::resolve_path(Path::new("/etc/sftpgo"), "/k"),
        PathBuf::from("/k")
    );
    assert_eq!(c.umask_value(), 0o022);
    assert_eq!(c.effective_max_auth_tries(), Some(6));
    c.sftpd.max_auth_tries = -1;
    assert_eq!(c.effective_max_auth_tries(), None);
    c.sftpd.banner = "  ".into();
    assert_eq!(c.banner(), "SFTPGo");
}

#[test]
fn error_display_and_variants() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sftpgo.yaml");
    std::fs::write(&file, "sftpd:\n  upload_mode: 7\n").unwrap();
    let e = load_with_env(dir.path(), "sftpgo", no_env()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: sftpd.upload_mode: must be 0 (standard) or 1 (atomic), got 7",
            file.display()
        )
    );
    assert_eq!(e.key(), Some("sftpd.upload_mode"));
    assert_eq!(e.source_name(), file.display().to_string());

    std::fs::write(&file, "sftpd: [unclosed\n").unwrap();
    let e = load_with_env(dir.path(), "sftpgo", no_env()).unwrap_err();
    assert!(matches!(e, ConfigError::Unreadable { .. }), "{e:?}");
    assert_eq!(e.key(), None);
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("{}: ", file.display())),
        "{shown}"
    );
    assert!(shown.contains("line 2"), "{shown}");

    // A value out of the field's range, set from the environment, names the variable.
    std::fs::write(&file, "{}\n").unwrap();
    let e = load_with_env(
        dir.path(),
        "sftpgo",
        env(&[("SFTPGO_SFTPD__UPLOAD_MODE", "300")]),
    )
    .unwrap_err();
    assert_eq!(e.key(), Some("sftpd.upload_mode"));
    assert_eq!(e.source_name(), "environment (SFTPGO_SFTPD__UPLOAD_MODE)");
}

#[test]
fn json_file_wins_over_later_extensions_and_env_wins_over_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.json"), r#"{"httpd": {"bind_port": 1}}"#).unwrap();
    std::fs::write(dir.path().join("s.toml"), "[httpd]\nbind_port = 2\n").unwrap();
    let l = load_with_env(dir.path(), "s", no_env()).unwrap();
    assert_eq!(l.file, Some(dir.path().join("s.json")));
    assert_eq!(l.config.httpd.bind_port, 1);
    let l = load_with_env(dir.path(), "s", env(&[("SFTPGO_HTTPD__BIND_PORT", "3")])).unwrap();
    assert_eq!(l.config.httpd.bind_port, 3);
}

#[test]
fn typed_accessors() {
    let mut c = Config::default();
    assert_eq!(c.upload_mode(), UploadMode::Standard);
    assert_eq!(c.track_quota(), TrackQuota::LimitedUsersOnly);
    assert!(c.manage_users());
    assert!(c.action_events().is_empty());
    assert_eq!(c.idle_timeout(), Some(Duration::from_secs(15 * 60)));
    assert_eq!(c.login_timeout(), Duration::from_secs(120));
    assert_eq!(
        c.stale_upload_max_age(),
        Some(Duration::from_secs(6 * 3600))
    );
    c.sftpd.stale_upload_max_age = 0;
    assert_eq!(c.stale_upload_max_age(), None);
    c.sftpd.upload_mode = 1;
    c.data_provider.track_quota = 0;
    c.data_provider.manage_users = 0;
    c.sftpd.idle_timeout = 0;
    c.sftpd.actions.execute_on = vec!["rename".into(), "download".into()];
    c.sftpd.keys = vec![
        HostKeyConfig {
            private_key: "id_rsa".into(),
        },
        HostKeyConfig {
            private_key: "/abs/id_ed25519".into(),
        },
    ];
    assert_eq!(c.upload_mode(), UploadMode::Atomic);
    assert_eq!(c.track_quota(), TrackQuota::Off);
    assert!(!c.manage_users());
    assert_eq!(c.idle_timeout(), None);
    assert_eq!(
        c.action_events(),
        vec![ActionEvent::Rename, ActionEvent::Download]
    );
    assert_eq!(ActionEvent::Rename.as_str(), "rename");
    assert_eq!(
        c.host_key_paths(Path::new("/etc/sftpgo")),
        vec![
            PathBuf::from("/etc/sftpgo/id_rsa"),
            PathBuf::from("/abs/id_ed25519")
        ]
    );
    c.data_provider.track_quota = 1;
    assert_eq!(c.track_quota(), TrackQuota::Always);
    assert_eq!(
        resolve_path(Path::new("cfg"), "sftpgo.db"),
        PathBuf::from("cfg/sftpgo.db")
    );
    let l = load_with_env(
        Path::new("/nonexistent-config-dir"),
        "sftpgo",
        env(&[("SFTPGO_SFTPD__KEYS", "id_ecdsa")]),
    )
    .unwrap();
    assert_eq!(l.file, None);
    assert_eq!(
        l.config
            .host_key_paths(Path::new("/nonexistent-config-dir")),
        vec![PathBuf::from("/nonexistent-config-dir/id_ecdsa")]
    );
}

#[test]
fn banner_and_login_timeout_are_checked() {
    let msg = error_of("sftpd:\n  banner: \"a\\r\\nb\"\n", no_env());
    assert!(
        msg.contains("sftpgo.yaml: sftpd.banner: must be printable ASCII"),
        "{msg}"
    );
    let long = "x".repeat(MAX_BANNER_LEN + 1);
    let msg = error_of(&format!("sftpd:\n  banner: {long}\n"), no_env());
    assert!(msg.contains("sftpd.banner: must be at most 245"), "{msg}");
    let ok = error_free(&format!(
        "sftpd:\n  banner: \"{}\"\n",
        "y".repeat(MAX_BANNER_LEN)
    ));
    assert_eq!(ok.sftpd.banner.len(), MAX_BANNER_LEN);
    assert_eq!(
        error_free("sftpd:\n  banner: \"My server 1.0\"\n").banner(),
        "My server 1.0"
    );
    let msg = error_of("sftpd:\n  login_timeout: 0\n", no_env());
    assert!(
        msg.contains("sftpd.login_timeout: must be at least 1"),
        "{msg}"
    );
    let msg = error_of("{}\n", env(&[("SFTPGO_SFTPD__LOGIN_TIMEOUT", "0")]));
    assert!(
        msg.starts_with("environment (SFTPGO_SFTPD__LOGIN_TIMEOUT): sftpd.login_timeout"),
        "{msg}"
    );
}

fn error_free(file_text: &str) -> Config {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sftpgo.yaml"), file_text).unwrap();
    load_with_env(dir.path(), "sftpgo", no_env())
        .unwrap()
        .config
}

#[test]
fn string_and_octal_fields_survive_numeric_looking_values() {
    // Quoted in the file, the umask stays the string "0022"-style value.
    let c = error_free("sftpd:\n  umask: \"0077\"\n  banner: \"123\"\n");
    assert_eq!(c.sftpd.umask, "0077");
    assert_eq!(c.umask_value(), 0o077);
    assert_eq!(c.sftpd.banner, "123");
    // From the environment every string key takes the text as is.
    let dir = tempfile::tempdir().unwrap();
    let c = load_with_env(
        dir.path(),
        "sftpgo",
        env(&[
            ("SFTPGO_SFTPD__UMASK", "0007"),
            ("SFTPGO_SFTPD__BANNER", "123"),
            ("SFTPGO_DATA_PROVIDER__PASSWORD", "0042"),
            ("SFTPGO_SFTPD__MAX_AUTH_TRIES", "-1"),
        ]),
    )
    .unwrap()
    .config;
    assert_eq!(c.sftpd.umask, "0007");
    assert_eq!(c.umask_value(), 0o007);
    assert_eq!(c.sftpd.banner, "123");
    assert_eq!(c.data_provider.password, "0042");
    assert_eq!(c.effective_max_auth_tries(), None);
    let msg = error_of("sftpd:\n  umask: \"0800\"\n", no_env());
    assert!(msg.contains("sftpd.umask: must be an octal value"), "{msg}");
}

#[test]
fn unknown_keys_in_the_file_are_ignored() {
    let c = error_free(
        "sftpd:\n  enable_future_thing: true\n  bind_port: 2023\n  future_section:\n    deep: [1, 2]\nextra: x\n",
    );
    assert_eq!(c.sftpd.bind_port, 2023);
    let mut expected = Config::default();
    expected.sftpd.bind_port = 2023;
    assert_eq!(c, expected);
}

#[test]
fn scalars_in_string_fields_are_taken_as_text() {
    let c = error_free(
        "sftpd:\n  umask: 27\n  banner: 5\ndata_provider:\n  password: 1234\n  host: true\n",
    );
    assert_eq!(c.sftpd.umask, "27");
    assert_eq!(c.umask_value(), 0o27);
    assert_eq!(c.sftpd.banner, "5");
    assert_eq!(c.data_provider.password, "1234");
    assert_eq!(c.data_provider.host, "true");
    // Unquoted in YAML, a leading-zero umask stays text too.
    assert_eq!(error_free("sftpd:\n  umask: 0022\n").umask_value(), 0o022);
    // A list or map where a string belongs is still an error naming the key.
    let msg = error_of("sftpd:\n  banner: [a]\n", no_env());
    assert!(msg.contains("sftpgo.yaml: sftpd.banner: "), "{msg}");
}

#[test]
fn json_and_toml_errors_name_their_file() {
    for (ext, text, key) in [
        (
            "json",
            r#"{"sftpd": {"bind_port": "abc"}}"#,
            Some("sftpd.bind_port"),
        ),
        (
            "json",
            r#"{"data_provider": {"sslmode": 9}}"#,
            Some("data_provider.sslmode"),
        ),
        ("json", r#"{"sftpd": {"#, None),
        (
            "toml",
            "[sftpd]\nupload_mode = 7\n",
            Some("sftpd.upload_mode"),
        ),
        (
            "toml",
            "[data_provider]\ntrack_quota = 5\n",
            Some("data_provider.track_quota"),
        ),
        ("toml", "[sftpd\n", None),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(format!("sftpgo.{ext}"));
        std::fs::write(&file, text).unwrap();
        let e = load_with_env(dir.path(), "sftpgo", no_env()).unwrap_err();
        assert_eq!(e.source_name(), file.display().to_string(), "{text}");
        assert_eq!(e.key(), key, "{text}: {e}");
        let shown = e.to_string();
        match key {
            Some(k) => assert!(
                shown.starts_with(&format!("{}: {k}: ", file.display())),
                "{shown}"
            ),
            None => assert!(
                shown.starts_with(&format!("{}: ", file.display())),
                "{shown}"
            ),
        }
    }
}

#[test]
fn actions_and_log_level_are_checked_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("hook.sh");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let plain = dir.path().join("plain.txt");
    std::fs::write(&plain, "").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let ok = format!(
        "sftpd:\n  actions:\n    execute_on: [upload]\n    command: {}\n    http_notification_url: \"https://hooks.example/x?a=1\"\n    command_timeout: 5\nlog:\n  level: debug\n",
        script.display()
    );
    std::fs::write(dir.path().join("sftpgo.yaml"), &ok).unwrap();
    let c = load_with_env(dir.path(), "sftpgo", no_env())
        .unwrap()
        .config;
    assert_eq!(c.sftpd.actions.command_timeout, 5);
    assert_eq!(c.sftpd.actions.max_concurrency, 8);
    assert_eq!(c.log_level(), Some("debug"));
    for (text, key, what) in [
        (
            "sftpd:\n  actions:\n    command: hook.sh\n".to_string(),
            "sftpd.actions.command",
            "absolute",
        ),
        (
            "sftpd:\n  actions:\n    command: /nonexistent/hook\n".to_string(),
            "sftpd.actions.command",
            "/nonexistent/hook",
        ),
        (
            format!("sftpd:\n  actions:\n    command: {}\n", plain.display()),
            "sftpd.actions.command",
            "not an executable",
        ),
        (
            "sftpd:\n  actions:\n    http_notification_url: ftp://x/\n".to_string(),
            "sftpd.actions.http_notification_url",
            "http",
        ),
        (
            "sftpd:\n  actions:\n    max_concurrency: 0\n".to_string(),
            "sftpd.actions.max_concurrency",
            "at least 1",
        ),
        (
            "sftpd:\n  actions:\n    command_timeout: 0\n".to_string(),
            "sftpd.actions.command_timeout",
            "at least 1",
        ),
        (
            "log:\n  level: loud\n".to_string(),
            "log.level",
            "unknown level",
        ),
    ] {
        let msg = error_of(&text, no_env());
        assert!(
            msg.contains(key) && msg.contains(what),
            "{text:?} gave {msg}"
        );
    }
    let msg = error_of("{}\n", env(&[("SFTPGO_LOG__LEVEL", "verbose")]));
    assert!(msg.contains("SFTPGO_LOG__LEVEL"), "{msg}");
}

#[test]
fn httpd_auth_and_tls_keys_from_file_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let l = load_with_env(
        dir.path(),
        "sftpgo",
        env(&[
            ("SFTPGO_HTTPD__AUTH_USER_FILE", "htpasswd"),
            ("SFTPGO_HTTPD__CERTIFICATE_FILE", "/etc/ssl/api.crt"),
            ("SFTPGO_HTTPD__CERTIFICATE_KEY_FILE", "api.key"),
        ]),
    )
    .unwrap();
    let c = &l.config;
    assert_eq!(c.httpd.auth_user_file, "htpasswd");
    assert_eq!(
        c.httpd_auth_user_file(Path::new("/cfg")),
        Some(PathBuf::from("/cfg/htpasswd"))
    );
    assert_eq!(
        c.httpd_tls_files(Path::new("/cfg")),
        Some((
            PathBuf::from("/etc/ssl/api.crt"),
            PathBuf::from("/cfg/api.key")
        ))
    );
    let d = Config::default();
    assert_eq!(d.httpd_auth_user_file(Path::new("/cfg")), None);
    assert_eq!(d.httpd_tls_files(Path::new("/cfg")), None);
    let c = error_free("httpd:\n  auth_user_file: users.htpasswd\n");
    assert_eq!(c.httpd.auth_user_file, "users.htpasswd");
}

#[test]
fn a_certificate_without_its_key_is_refused() {
    let msg = error_of("httpd:\n  certificate_file: api.crt\n", no_env());
    assert!(
        msg.contains(
            "sftpgo.yaml: httpd.certificate_file: is set but httpd.certificate_key_file is empty"
        ),
        "{msg}"
    );
    let msg = error_of(
        "{}\n",
        env(&[("SFTPGO_HTTPD__CERTIFICATE_KEY_FILE", "api.key")]),
    );
    assert!(
        msg.starts_with(
            "environment (SFTPGO_HTTPD__CERTIFICATE_KEY_FILE): httpd.certificate_key_file: is set but"
        ),
        "{msg}"
    );
}

#[test]
fn pool_and_timeouts_have_defaults_env_overrides_and_range_checks() {
    let dir = tempfile::tempdir().unwrap();
    let c = load_with_env(dir.path(), "sftpgo", no_env())
        .unwrap()
        .config;
    assert_eq!(
        (
            c.data_provider.pool_size,
            c.data_provider.connect_timeout,
            c.data_provider.statement_timeout
        ),
        (0, 10, 30)
    );
    assert_eq!(c.provider_pool_size(), None);
    assert_eq!(c.provider_connect_timeout(), Duration::from_secs(10));
    assert_eq!(
        c.provider_statement_timeout(),
        Some(Duration::from_secs(30))
    );

    let c = load_with_env(
        dir.path(),
        "sftpgo",
        env(&[
            ("SFTPGO_DATA_PROVIDER__POOL_SIZE", "7"),
            ("SFTPGO_DATA_PROVIDER__CONNECT_TIMEOUT", " 3 "),
            ("SFTPGO_DATA_PROVIDER__STATEMENT_TIMEOUT", "0"),
        ]),
    )
    .unwrap()
    .config;
    assert_eq!(c.provider_pool_size(), Some(7));
    assert_eq!(c.provider_connect_timeout(), Duration::from_secs(3));
    assert_eq!(c.provider_statement_timeout(), None, "0 means no limit");

    for (text, key) in [
        (
            "data_provider:\n  pool_size: 5000\n",
            "data_provider.pool_size",
        ),
        (
            "data_provider:\n  pool_size: -1\n",
            "data_provider.pool_size",
        ),
        (
            "data_provider:\n  connect_timeout: 0\n",
            "data_provider.connect_timeout",
        ),
        (
            "data_provider:\n  connect_timeout: 100000\n",
            "data_provider.connect_timeout",
        ),
        (
            "data_provider:\n  statement_timeout: 100000\n",
            "data_provider.statement_timeout",
        ),
        (
            "data_provider:\n  statement_timeout: soon\n",
            "data_provider.statement_timeout",
        ),
    ] {
        let msg = error_of(text, no_env());
        assert!(
            msg.contains("sftpgo.yaml") && msg.contains(key),
            "{text:?} gave {msg}"
        );
    }
    for (var, value, key) in [
        (
            "SFTPGO_DATA_PROVIDER__POOL_SIZE",
            "many",
            "data_provider.pool_size",
        ),
        (
            "SFTPGO_DATA_PROVIDER__POOL_SIZE",
            "-3",
            "data_provider.pool_size",
        ),
        (
            "SFTPGO_DATA_PROVIDER__CONNECT_TIMEOUT",
            "0",
            "data_provider.connect_timeout",
        ),
    ] {
        let msg = error_of("{}\n", env(&[(var, value)]));
        assert!(
            msg.starts_with(&format!("environment ({var}): {key}")),
            "{var}={value} gave {msg}"
        );
    }
}

#[test]
fn scp_and_ssh_commands_from_file_and_env() {
    let c = error_free("sftpd:\n  enable_scp: true\n  enabled_ssh_commands: [sha256sum, pwd]\n");
    assert!(c.sftpd.enable_scp);
    assert_eq!(c.sftpd.enabled_ssh_commands, ["sha256sum", "pwd"]);
    let dir = tempfile::tempdir().unwrap();
    let e = env(&[
        ("SFTPGO_SFTPD__ENABLE_SCP", "true"),
        ("SFTPGO_SFTPD__ENABLED_SSH_COMMANDS", "md5sum, scp"),
    ]);
    let l = load_with_env(dir.path(), "sftpgo", e).unwrap();
    assert!(l.config.sftpd.enable_scp);
    assert_eq!(l.config.sftpd.enabled_ssh_commands, ["md5sum", "scp"]);
    // Default: SFTPGo 2.x's list, without SCP.
    assert!(!Config::default().sftpd.enable_scp);
    assert!(
        !Config::default()
            .sftpd
            .enabled_ssh_commands
            .contains(&"scp".to_string())
    );
}

#[test]
fn web_admin_keys_from_file_and_environment() {
    let d = Config::default();
    assert!(d.httpd.web_admin.enabled);
    assert_eq!(d.httpd.web_admin.path_prefix, "/web");
    assert_eq!(d.web_session_idle_expiry(), Duration::from_secs(900));
    let c = error_free(
        "httpd:\n  web_admin:\n    enabled: false\n    path_prefix: /admin/ui\n    session_idle_expiry: 60\n",
    );
    assert!(!c.httpd.web_admin.enabled);
    assert_eq!(c.httpd.web_admin.path_prefix, "/admin/ui");
    assert_eq!(c.web_session_idle_expiry(), Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    let l = load_with_env(
        dir.path(),
        "sftpgo",
        env(&[
            ("SFTPGO_HTTPD__WEB_ADMIN__ENABLED", "false"),
            ("SFTPGO_HTTPD__WEB_ADMIN__PATH_PREFIX", "/ops"),
            ("SFTPGO_HTTPD__WEB_ADMIN__SESSION_IDLE_EXPIRY", "120"),
        ]),
    )
    .unwrap();
    assert!(!l.config.httpd.web_admin.enabled);
    assert_eq!(l.config.httpd.web_admin.path_prefix, "/ops");
    assert_eq!(l.config.httpd.web_admin.session_idle_expiry, 120);
}

#[test]
fn bad_web_admin_values_are_refused_naming_the_key() {
    for (text, what) in [
        ("path_prefix: web", "must be a path like /web"),
        ("path_prefix: /web/", "must be a path like /web"),
        ("path_prefix: /", "must be a path like /web"),
        ("path_prefix: /a b", "must be a path like /web"),
        ("path_prefix: /api/web", "overlaps the REST API"),
        ("path_prefix: /metrics", "overlaps the REST API"),
        ("session_idle_expiry: 0", "must be 1 to 86400 seconds"),
    ] {
        let msg = error_of(&format!("httpd:\n  web_admin:\n    {text}\n"), no_env());
        assert!(
            msg.contains("httpd.web_admin.") && msg.contains(what),
            "{text:?} gave {msg}"
        );
    }
    let msg = error_of(
        "{}\n",
        env(&[("SFTPGO_HTTPD__WEB_ADMIN__PATH_PREFIX", "nope")]),
    );
    assert!(
        msg.starts_with(
            "environment (SFTPGO_HTTPD__WEB_ADMIN__PATH_PREFIX): httpd.web_admin.path_prefix:"
        ),
        "{msg}"
    );
}
