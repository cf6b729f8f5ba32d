//! Tests of the real `sftpgo` binary: CLI, config errors, default host keys, logs, an
//! SFTPGo 0.9 SQLite database used as is, and signal handling.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::*;
use common::*;

fn sftpgo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sftpgo"))
}

#[test]
fn version_flag_prints_semver_commit_and_date() {
    for flag in ["-v", "--version"] {
        let out = sftpgo().arg(flag).output().unwrap();
        assert!(out.status.success());
        let s = String::from_utf8_lossy(&out.stdout);
        assert!(s.starts_with("SFTPGo version: 0."), "{s}");
        assert!(s.trim().matches('-').count() >= 2, "{s}");
    }
}

#[test]
fn invalid_config_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sftpgo.yaml"), "sftpd:\n  upload_mode: 7\n").unwrap();
    let out = sftpgo()
        .args(["serve", "-c"])
        .arg(dir.path())
        .args(["-l", "-"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sftpgo.yaml") && err.contains("upload_mode"),
        "{err}"
    );

    std::fs::write(dir.path().join("sftpgo.yaml"), "sftpd: [unclosed\n").unwrap();
    let out = sftpgo()
        .args(["serve", "-c"])
        .arg(dir.path())
        .args(["-l", "-"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sftpgo.yaml"));
}

#[test]
fn port_in_use_exits_non_zero() {
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blocker.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let out = sftpgo()
        .args(["serve", "-c"])
        .arg(dir.path())
        .args(["-l", "-"])
        .env("SFTPGO_SFTPD__BIND_PORT", port.to_string())
        .env("SFTPGO_SFTPD__BIND_ADDRESS", "127.0.0.1")
        .env("SFTPGO_HTTPD__BIND_PORT", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&port.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_an_sftpgo_09_database_and_logs_logins() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home09");
    // The 0.9 schema and a user inserted by plain SQL.
    let db = dir.path().join("sftpgo.db");
    {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::query(
            "CREATE TABLE \"users\" (\"id\" integer NOT NULL PRIMARY KEY AUTOINCREMENT, \"username\" varchar(255) NOT NULL UNIQUE, \
             \"password\" varchar(255) NULL, \"public_keys\" text NULL, \"home_dir\" varchar(255) NOT NULL, \"uid\" integer NOT NULL, \
             \"gid\" integer NOT NULL, \"max_sessions\" integer NOT NULL, \"quota_size\" bigint NOT NULL, \"quota_files\" integer NOT NULL, \
             \"permissions\" text NOT NULL, \"used_quota_size\" bigint NOT NULL, \"used_quota_files\" integer NOT NULL, \
             \"last_quota_update\" bigint NOT NULL, \"upload_bandwidth\" integer NOT NULL, \"download_bandwidth\" integer NOT NULL)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO users (username, password, public_keys, home_dir, uid, gid, max_sessions, quota_size, quota_files, \
             permissions, used_quota_size, used_quota_files, last_quota_update, upload_bandwidth, download_bandwidth) \
             VALUES ('legacy', '$pbkdf2-sha256$1000$salt$9jHU2CnXymQrXxM/wS2PnCJlrJbbZdll1YaUUGLQARE=', NULL, ?, 0, 0, 0, 0, 0, '[\"*\"]', 0, 0, 0, 0, 0)",
        )
        .bind(home.display().to_string())
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let log = dir.path().join("sftpgo.log");
    let child = sftpgo()
        .args(["serve", "-c"])
        .arg(dir.path())
        .arg("-l")
        .arg(&log)
        .env("SFTPGO_SFTPD__BIND_PORT", "0")
        .env("SFTPGO_SFTPD__BIND_ADDRESS", "127.0.0.1")
        .env("SFTPGO_HTTPD__BIND_PORT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let port = wait_for_address(&log, &mut child, "SFTP server listening").port();
    // Default host keys were generated, private, in the config dir.
    for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
        let meta =
            std::fs::metadata(dir.path().join(name)).unwrap_or_else(|_| panic!("{name} generated"));
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name} mode");
    }
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("f"), b"legacy data").unwrap();
    let out = sftp_batch(
        addr,
        "legacy",
        Login::Password("pbkdf2-secret"),
        "put f f\n",
        work.path(),
    )
    .await;
    assert_success(&out, "login to a 0.9 database user");
    assert_eq!(std::fs::read(home.join("f")).unwrap(), b"legacy data");
    let bad = sftp_batch(
        addr,
        "legacy",
        Login::Password("nope"),
        "pwd\n",
        work.path(),
    )
    .await;
    assert!(!bad.status.success());
    // Graceful stop on SIGTERM.
    send_signal(child.id(), libc::SIGTERM);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
    // The log is JSON lines with the required fields; the failed login names the client IP.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for l in &lines {
        assert!(
            l["level"].is_string() && l["time"].is_string() && l["sender"].is_string(),
            "{l}"
        );
    }
    let failed = lines
        .iter()
        .find(|l| l["message"] == "login failed")
        .expect("failed login logged");
    assert_eq!(failed["username"], "legacy");
    assert!(
        failed["remote_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{failed}"
    );
    assert_eq!(failed["method"], "password");
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "login succeeded" && l["username"] == "legacy")
    );
    assert!(
        lines
            .iter()
            .any(|l| l["sender"] == "Upload" && l["username"] == "legacy")
    );
}

#[test]
fn unwritable_config_dir_for_host_keys_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), b"not a dir").unwrap();
    let config_dir = dir.path().join("file/conf");
    let out = sftpgo()
        .args(["serve", "-c"])
        .arg(&config_dir)
        .args(["-l", "-"])
        .env("SFTPGO_DATA_PROVIDER__DRIVER", "memory")
        .env("SFTPGO_SFTPD__BIND_PORT", "0")
        .env("SFTPGO_HTTPD__BIND_PORT", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("host key") && err.contains("file/conf"),
        "{err}"
    );
}

/// Waits for a JSON log line with this message, returning how many lines the log had.
fn wait_for_log(log: &Path, message: &str, skip: usize) -> usize {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        if lines.iter().skip(skip).any(|l| {
            serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v["message"] == message)
        }) {
            return lines.len();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "no {message:?} in the log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn keyscan(port: u16) -> String {
    let out = Command::new("ssh-keyscan")
        .args(["-p", &port.to_string(), "-t", "ed25519", "127.0.0.1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text
        .lines()
        .find(|l| l.contains("ssh-ed25519"))
        .unwrap_or_else(|| panic!("no host key from ssh-keyscan: {text}"));
    line.split_whitespace().nth(2).unwrap().to_string()
}

fn public_blob(key: &TestKey) -> String {
    key.public.split_whitespace().nth(1).unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_host_keys_and_log_level_without_dropping_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let host_key = keygen_at(&dir.path().join("hostkey"), "ed25519");
    let config = dir.path().join("sftpgo.yaml");
    let write_config = |level: &str| {
        std::fs::write(
            &config,
            format!(
                "sftpd:\n  bind_port: 0\n  bind_address: 127.0.0.1\n  keys:\n    - private_key: hostkey\n\
                 httpd:\n  bind_port: 0\nlog:\n  level: {level}\n"
            ),
        )
        .unwrap();
    };
    write_config("info");
    let log = dir.path().join("sftpgo.log");
    let child = sftpgo()
        .args(["serve", "-c"])
        .arg(dir.path())
        .arg("-l")
        .arg(&log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let port = wait_for_address(&log, &mut child, "SFTP server listening").port();
    assert_eq!(keyscan(port), public_blob(&host_key));

    // A user (added to the SQLite database the server uses) with an open session.
    let work = tempfile::tempdir().unwrap();
    let client_key = keygen(work.path(), "ed25519");
    let home = dir.path().join("home");
    {
        let backend =
            sftpgo_provider::sqlite::SqliteBackend::open(&dir.path().join("sftpgo.db"), "users")
                .await
                .unwrap();
        let provider = sftpgo_provider::DataProvider::new(
            std::sync::Arc::new(backend),
            true,
            sftpgo_provider::TrackQuota::Always,
        );
        provider
            .add_user(sftpgo_provider::User {
                username: "alice".into(),
                public_keys: vec![client_key.public.clone()],
                home_dir: home.display().to_string(),
                permissions: all_perms(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    std::fs::write(work.path().join("f1"), b"one").unwrap();
    std::fs::write(work.path().join("f2"), b"two").unwrap();
    let mut sftp = Command::new("sftp")
        .current_dir(work.path())
        .args(["-b", "-", "-P", &port.to_string()])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i"])
        .arg(&client_key.path)
        .arg("alice@127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = sftp.stdin.take().unwrap();
    use std::io::Write;
    writeln!(stdin, "put f1").unwrap();
    stdin.flush().unwrap();
    let start = Instant::now();
    while std::fs::read(home.join("f1")).ok().as_deref() != Some(b"one".as_slice()) {
        assert!(start.elapsed() < Duration::from_secs(30), "first upload");
        std::thread::sleep(Duration::from_millis(50));
    }

    // New host key and log level, then SIGHUP.
    let new_key = keygen_at(&work.path().join("newkey"), "ed25519");
    std::fs::copy(&new_key.path, dir.path().join("hostkey")).unwrap();
    write_config("debug");
    let seen = std::fs::read_to_string(&log).unwrap().lines().count();
    send_signal(child.id(), libc::SIGHUP);
    let seen = wait_for_log(&log, "configuration reloaded", seen);
    assert_eq!(keyscan(port), public_blob(&new_key));
    // Debug lines now reach the log (the key scan's connection is logged at debug; the
    // log writer may hold it back a few milliseconds).
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text
            .lines()
            .skip(seen)
            .any(|l| l.contains("\"level\":\"debug\""))
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no debug line after the reload:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // The session opened before the reload still works.
    writeln!(stdin, "put f2").unwrap();
    writeln!(stdin, "bye").unwrap();
    drop(stdin);
    let out = sftp.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "session across the reload: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(home.join("f2")).unwrap(), b"two");

    // A broken file on SIGHUP changes nothing and the server keeps serving.
    std::fs::write(&config, "sftpd: [not, a, map\n").unwrap();
    let seen = std::fs::read_to_string(&log).unwrap().lines().count();
    send_signal(child.id(), libc::SIGHUP);
    wait_for_log(
        &log,
        "reload aborted: the configuration is invalid, nothing changed",
        seen,
    );
    assert_eq!(keyscan(port), public_blob(&new_key));
    assert!(child.try_wait().unwrap().is_none(), "server still running");
    send_signal(child.id(), libc::SIGTERM);
}
