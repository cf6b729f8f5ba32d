//! Two `sftpgo serve` processes (the real binary, each with its own config dir, SFTP and
//! REST ports) on one PostgreSQL and on one MariaDB database, as behind a TCP load
//! balancer: a user created through one process's REST API logs in on the other, and
//! concurrent uploads and removes through both add up to the used quota of a fresh scan.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bytes::Bytes;
use common::client::{Credential, SftpClient};
use common::process::*;
use common::*;
use serde_json::json;
use sftpgo_provider::Backend;
use sftpgo_provider::sql::{ServerSettings, testdb};
use sftpgo_sftp::codec::{self, Request};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_on_one_postgresql_database() {
    let Some(db) = testdb::postgres().await else {
        return;
    };
    let (_homes, home) = two_processes("postgresql", &db.settings).await;
    let backend = sftpgo_provider::postgres::PostgresBackend::connect(&db.settings)
        .await
        .unwrap();
    check_quota(&backend, &home).await;
    backend.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_on_one_mariadb_database() {
    let Some(db) = testdb::mysql().await else {
        return;
    };
    let (_homes, home) = two_processes("mysql", &db.settings).await;
    let backend = sftpgo_provider::mysql::MySqlBackend::connect(&db.settings)
        .await
        .unwrap();
    check_quota(&backend, &home).await;
    backend.close().await;
}

/// One running `sftpgo serve`.
struct Instance {
    child: KillOnDrop,
    sftp: SocketAddr,
    http: SocketAddr,
    _dir: tempfile::TempDir,
}

/// A port that was free a moment ago (the REST API has no "any port" setting: 0 disables it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts an instance; again with another REST port when the one picked was taken
/// meanwhile (by this very process's SFTP listener on port 0, once).
fn spawn(driver: &str, db: &ServerSettings) -> Instance {
    let mut last = String::new();
    for _ in 0..5 {
        match try_spawn(driver, db) {
            Ok(instance) => return instance,
            Err(e) if e.contains("Address already in use") => last = e,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("no free REST port after 5 tries: {last}");
}

fn try_spawn(driver: &str, db: &ServerSettings) -> Result<Instance, String> {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen_at(&dir.path().join("host_ed25519"), "ed25519");
    let log = dir.path().join("sftpgo.log");
    let child = Command::new(env!("CARGO_BIN_EXE_sftpgo"))
        .args(["serve", "-c"])
        .arg(dir.path())
        .arg("-l")
        .arg(&log)
        .env("SFTPGO_SFTPD__BIND_PORT", "0")
        .env("SFTPGO_SFTPD__BIND_ADDRESS", "127.0.0.1")
        .env("SFTPGO_SFTPD__KEYS", &key.path)
        .env("SFTPGO_HTTPD__BIND_PORT", free_port().to_string())
        .env("SFTPGO_DATA_PROVIDER__DRIVER", driver)
        .env("SFTPGO_DATA_PROVIDER__HOST", &db.host)
        .env("SFTPGO_DATA_PROVIDER__PORT", db.port.to_string())
        .env("SFTPGO_DATA_PROVIDER__NAME", &db.name)
        .env("SFTPGO_DATA_PROVIDER__USERNAME", &db.username)
        .env("SFTPGO_DATA_PROVIDER__TRACK_QUOTA", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let sftp = try_wait_for_address(&log, &mut child, "SFTP server listening")?;
    let http = try_wait_for_address(&log, &mut child, "REST API listening")?;
    Ok(Instance {
        child,
        sftp,
        http,
        _dir: dir,
    })
}

/// Runs the two processes and their clients; returns the user's home dir (in a temp dir
/// that is removed when dropped).
async fn two_processes(driver: &str, db: &ServerSettings) -> (tempfile::TempDir, PathBuf) {
    let homes = tempfile::tempdir().unwrap();
    let home = homes.path().join("shared");
    // Both start together on the empty database: the schema is created once.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| spawn(driver, db));
        let b = s.spawn(|| spawn(driver, db));
        (a.join().unwrap(), b.join().unwrap())
    });
    let (mut a, mut b) = (a, b);

    // Created through process A's REST API...
    let body = json!({"username": "shared", "password": "pw", "home_dir": home.display().to_string(),
                      "permissions": ["*"], "quota_size": 1_000_000_000});
    let out = tokio::process::Command::new("curl")
        .args([
            "-s",
            "-f",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
        ])
        .args(["--data", &body.to_string()])
        .arg(format!("http://{}/api/v1/user", a.http))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // ...logs in and uploads on process B.
    let mut c = SftpClient::connect(b.sftp, "shared", Credential::Password("pw"))
        .await
        .expect("a user created on A logs in on B");
    c.put("/first", b"made on B", 9).await.unwrap();
    drop(c);

    // Concurrent uploads, overwrites and removes through both.
    let mut tasks = Vec::new();
    for (i, addr) in [a.sftp, b.sftp, a.sftp, b.sftp].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut c = SftpClient::connect(addr, "shared", Credential::Password("pw"))
                .await
                .unwrap();
            for f in 0..8 {
                c.put(
                    &format!("/f{i}_{f}"),
                    &pattern(20_000 + f * 911 + i * 17, f as u64),
                    8192,
                )
                .await
                .unwrap();
            }
            c.put(&format!("/f{i}_0"), &pattern(5, 1), 5).await.unwrap();
            for f in [1, 2] {
                let code = c
                    .status(|id| Request::Remove {
                        id,
                        path: Bytes::from(format!("/f{i}_{f}")),
                    })
                    .await
                    .unwrap();
                assert_eq!(code, codec::SSH_FX_OK);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(terminate(&mut a.child), "A exits cleanly on SIGTERM");
    assert!(terminate(&mut b.child), "B exits cleanly on SIGTERM");
    (homes, home)
}

/// The used quota stored by both processes equals a fresh scan of the home dir.
async fn check_quota(backend: &dyn Backend, home: &Path) {
    let user = backend.user_by_username("shared").await.unwrap();
    let scanned = sftpgo_core::quota::scan(home).unwrap();
    assert_eq!((user.used_quota_size, user.used_quota_files), scanned);
    // 1 file from the login on B, 4 × (8 uploaded − 2 removed).
    assert_eq!(user.used_quota_files, 25);
}
