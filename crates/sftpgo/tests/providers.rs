//! The server on the PostgreSQL, MySQL and bolt data providers: users added through the
//! provider log in over SFTP and their used quota is recorded in the database.

mod common;

use std::time::{Duration, Instant};

use common::client::{Credential, SftpClient};
use common::*;
use sftpgo::service::Tuning;
use sftpgo_provider::Permission;
use sftpgo_provider::sql::{ServerSettings, testdb};

const PW: &str = "secret-pw";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_and_upload_on_postgresql() {
    let Some(db) = testdb::postgres().await else {
        return;
    };
    login_and_upload("postgresql", Some(db.settings.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_and_upload_on_mysql() {
    let Some(db) = testdb::mysql().await else {
        return;
    };
    login_and_upload("mysql", Some(db.settings.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_and_upload_on_bolt() {
    login_and_upload("bolt", None).await;
}

/// Starts the server on `driver` (a database server's settings, or a file in the config
/// dir), adds a user through the provider, logs in, uploads and checks the used quota.
async fn login_and_upload(driver: &str, server: Option<ServerSettings>) {
    let driver_name = driver.to_owned();
    let srv = TestServer::start_with(
        move |c| {
            let dp = &mut c.data_provider;
            dp.driver = driver_name;
            dp.track_quota = 1;
            match server {
                Some(s) => {
                    dp.host = s.host;
                    dp.port = s.port;
                    dp.name = s.name;
                    dp.username = s.username;
                    dp.password = s.password;
                    dp.sslmode = 0;
                }
                None => dp.name = "sftpgo.redb".into(),
            }
        },
        Tuning::default(),
    )
    .await;
    assert_eq!(srv.core().provider().driver(), driver);
    srv.add_user("dbuser", Some(PW), &[], &[Permission::Any])
        .await;

    let mut c = SftpClient::connect(srv.addr, "dbuser", Credential::Password(PW))
        .await
        .expect("login with the password stored by the provider");
    let data = b"hello database";
    c.put("/hello.txt", data, 5).await.unwrap();
    assert_eq!(c.get("/hello.txt").await.unwrap(), data);
    assert!(
        SftpClient::connect(srv.addr, "dbuser", Credential::Password("wrong"))
            .await
            .is_err(),
        "a wrong password is refused"
    );

    // The upload's quota delta reaches the database.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let u = srv
            .core()
            .provider()
            .user_by_username("dbuser")
            .await
            .unwrap();
        if (u.used_quota_size, u.used_quota_files) == (data.len() as i64, 1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "used quota not recorded: {} bytes, {} files",
            u.used_quota_size,
            u.used_quota_files
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(c);
    srv.stop().await;
}
