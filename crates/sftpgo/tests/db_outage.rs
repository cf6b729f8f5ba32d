//! The database lost while the server runs, played by cutting a TCP proxy between the
//! server and the shared PostgreSQL / MariaDB (which keep running): logins fail with an
//! SSH authentication failure within the timeout and say why in the log, a running upload
//! finishes intact, the quota change that could not be written is logged with its amounts
//! and kept, and once the proxy is restored logins work again by themselves and the kept
//! change is written.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::client::{Credential, SftpClient};
use common::logs::Logs;
use common::proxy::Proxy;
use common::*;
use sftpgo::service::Tuning;
use sftpgo_provider::Permission;
use sftpgo_provider::sql::{ServerSettings, testdb};
use sftpgo_sftp::codec::{self, Request};

const PW: &str = "outage-pw";
/// The server's `connect_timeout` and `statement_timeout` in this test (seconds).
const DB_TIMEOUT: u64 = 2;
/// Longest a login may take while the database is gone: far above the provider's bound
/// (wait for a connection + statement timeout), far below a hang.
const LOGIN_BOUND: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_lost_and_back() {
    let Some(db) = testdb::postgres().await else {
        return;
    };
    lost_and_back("postgresql", db.settings.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_lost_and_back() {
    let Some(db) = testdb::mysql().await else {
        return;
    };
    lost_and_back("mysql", db.settings.clone()).await;
}

async fn lost_and_back(driver: &str, db: ServerSettings) {
    let logs = Logs::install();
    let upstream: SocketAddr = format!("{}:{}", db.host, db.port).parse().unwrap();
    let proxy = Proxy::start(upstream).await;
    let proxy_port = proxy.addr.port();
    let driver_name = driver.to_owned();
    let srv = TestServer::start_with(
        move |c| {
            let dp = &mut c.data_provider;
            dp.driver = driver_name;
            dp.host = "127.0.0.1".into();
            dp.port = proxy_port;
            dp.name = db.name;
            dp.username = db.username;
            dp.password = db.password;
            dp.track_quota = 1;
            dp.connect_timeout = DB_TIMEOUT;
            dp.statement_timeout = DB_TIMEOUT;
        },
        Tuning::default(),
    )
    .await;
    let key = keygen(srv.dir.path(), "ed25519");
    srv.add_user("alice", Some(PW), &[&key], &[Permission::Any])
        .await;
    let home = srv.home("alice");

    // An upload starts while the database is there...
    let mut up = SftpClient::connect(srv.addr, "alice", Credential::Password(PW))
        .await
        .expect("login before the outage");
    let data = pattern(3 << 20, 7);
    let (first, second) = data.split_at(data.len() / 2);
    let flags = codec::SSH_FXF_WRITE | codec::SSH_FXF_CREAT | codec::SSH_FXF_TRUNC;
    let handle = up.open("/big.bin", flags).await.unwrap().unwrap();
    write_all(&mut up, &handle, 0, first).await;

    // ...and the database goes away.
    proxy.cut();
    write_all(&mut up, &handle, first.len() as u64, second).await;
    assert_eq!(
        up.close(&handle).await.unwrap(),
        codec::SSH_FX_OK,
        "the upload finishes although its quota change cannot be recorded"
    );
    assert_eq!(std::fs::read(home.join("big.bin")).unwrap(), data);
    // The change is written (and fails) a moment after the CLOSE.
    let deadline = Instant::now() + LOGIN_BOUND;
    let failed = loop {
        let found = logs
            .find(|v| v["message"] == "cannot record a quota change" && v["username"] == "alice");
        match found {
            Some(line) => break line,
            None if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            None => panic!("the failed quota change is not logged"),
        }
    };
    assert_eq!(failed["size_delta"], data.len() as u64);
    assert_eq!(failed["files_delta"], 1);
    assert!(
        failed["error"].as_str().unwrap().contains(driver),
        "the error names the provider: {failed}"
    );

    // Logins fail as SSH authentication failures, bounded in time.
    let attempt = tokio::time::timeout(
        LOGIN_BOUND,
        SftpClient::connect(srv.addr, "alice", Credential::Password(PW)),
    )
    .await
    .expect("a password login does not hang while the database is gone");
    let err = attempt.err().expect("the password login fails");
    assert!(err.to_string().contains("authentication failed"), "{err:#}");
    let private = key.private();
    let attempt = tokio::time::timeout(
        LOGIN_BOUND,
        SftpClient::connect(srv.addr, "alice", Credential::Key(&private)),
    )
    .await
    .expect("a public-key login does not hang while the database is gone");
    let err = attempt.err().expect("the public-key login fails");
    assert!(err.to_string().contains("authentication failed"), "{err:#}");
    for method in ["password", "publickey"] {
        let line = logs
            .find(|v| {
                v["message"] == "login failed"
                    && v["method"] == method
                    && v["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("data provider unavailable"))
            })
            .unwrap_or_else(|| panic!("no log line says the provider is unreachable ({method})"));
        assert_eq!(line["username"], "alice");
    }

    // The database comes back: logins work again without a restart.
    proxy.restore();
    let deadline = Instant::now() + LOGIN_BOUND;
    let mut again = loop {
        match SftpClient::connect(srv.addr, "alice", Credential::Key(&private)).await {
            Ok(c) => break c,
            Err(e) => {
                assert!(Instant::now() < deadline, "no login after restore: {e:#}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    again.put("/after.txt", b"back", 4).await.unwrap();
    srv.core().quota().flush().await;
    let user = srv
        .core()
        .provider()
        .user_by_username("alice")
        .await
        .unwrap();
    assert_eq!(
        (user.used_quota_size, user.used_quota_files),
        (data.len() as i64 + 4, 2),
        "the change that failed during the outage was kept and written with the new one"
    );
    drop(again);
    drop(up);
    srv.stop().await;
}

/// Writes `data` at `offset` in 32 KiB requests, each acknowledged.
async fn write_all(c: &mut SftpClient, handle: &Bytes, offset: u64, data: &[u8]) {
    for (i, chunk) in data.chunks(32 * 1024).enumerate() {
        let (h, d) = (handle.clone(), Bytes::copy_from_slice(chunk));
        let off = offset + (i * 32 * 1024) as u64;
        let code = c
            .status(|id| Request::Write {
                id,
                handle: h,
                offset: off,
                data: d,
            })
            .await
            .unwrap();
        assert_eq!(code, codec::SSH_FX_OK);
    }
}
