//! Two server instances on one PostgreSQL database, as behind a TCP load balancer, and
//! `sftpgo initprovider` on an empty database.

mod common;

use std::process::Command;

use common::client::{Credential, SftpClient};
use common::*;
use serde_json::json;
use sftpgo::service::Tuning;
use sftpgo_provider::sql::testdb;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_users_and_add_up_quota_exactly() {
    let Some(db) = testdb::postgres().await else {
        return;
    };
    let a = TestServer::start_with(
        on_postgres(db.settings.clone()),
        Tuning {
            http_port: Some(0),
            ..Tuning::default()
        },
    )
    .await;
    let b = TestServer::start_with(on_postgres(db.settings.clone()), Tuning::default()).await;
    let homes = tempfile::tempdir().unwrap();
    let home = homes.path().join("shared");
    // Created through instance A's REST API...
    let url = format!(
        "http://{}/api/v1/user",
        a.running.as_ref().unwrap().http_addr.unwrap()
    );
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
            "--data",
            &body.to_string(),
            &url,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // ...the user logs in on instance B, and uploads on both instances add up exactly.
    let mut tasks = Vec::new();
    for (i, addr) in [a.addr, b.addr, a.addr, b.addr].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut c = SftpClient::connect(addr, "shared", Credential::Password("pw"))
                .await
                .unwrap();
            for f in 0..10 {
                c.put(
                    &format!("/f{i}_{f}"),
                    &pattern(10_000 + f * 777 + i * 13, f as u64),
                    4096,
                )
                .await
                .unwrap();
            }
            c.put(&format!("/f{i}_0"), &pattern(5, 1), 5).await.unwrap();
            let code = c
                .status(|id| sftpgo_sftp::codec::Request::Remove {
                    id,
                    path: bytes::Bytes::from(format!("/f{i}_1")),
                })
                .await
                .unwrap();
            assert_eq!(code, sftpgo_sftp::codec::SSH_FX_OK);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    a.core().quota().flush().await;
    b.core().quota().flush().await;
    let user = b
        .core()
        .provider()
        .user_by_username("shared")
        .await
        .unwrap();
    assert_eq!(
        (user.used_quota_size, user.used_quota_files),
        sftpgo_core::quota::scan(&home).unwrap()
    );
    assert_eq!(user.used_quota_files, 36);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initprovider_creates_the_schema_and_exits() {
    let Some(db) = testdb::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = &db.settings;
    let out = Command::new(env!("CARGO_BIN_EXE_sftpgo"))
        .args(["initprovider", "-c"])
        .arg(dir.path())
        .args(["-l", "-"])
        .env("SFTPGO_DATA_PROVIDER__DRIVER", "postgresql")
        .env("SFTPGO_DATA_PROVIDER__HOST", &s.host)
        .env("SFTPGO_DATA_PROVIDER__PORT", s.port.to_string())
        .env("SFTPGO_DATA_PROVIDER__NAME", &s.name)
        .env("SFTPGO_DATA_PROVIDER__USERNAME", &s.username)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Data provider initialized (postgresql)")
    );
    let backend = sftpgo_provider::postgres::PostgresBackend::connect(s)
        .await
        .unwrap();
    use sftpgo_provider::Backend;
    assert!(
        backend
            .list_users(&Default::default())
            .await
            .unwrap()
            .is_empty()
    );
    // An unreachable database is a clear error and a non-zero exit.
    let out = Command::new(env!("CARGO_BIN_EXE_sftpgo"))
        .args(["initprovider", "-c"])
        .arg(dir.path())
        .args(["-l", "-"])
        .env("SFTPGO_DATA_PROVIDER__DRIVER", "postgresql")
        .env("SFTPGO_DATA_PROVIDER__HOST", "127.0.0.1")
        .env("SFTPGO_DATA_PROVIDER__PORT", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("postgresql") && err.contains("127.0.0.1:1"),
        "{err}"
    );
}
