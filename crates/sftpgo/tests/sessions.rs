//! Connection lifecycle: login timeout, idle timeout, max_sessions, max_auth_tries, kill
//! by id, graceful shutdown.

mod common;

use std::time::{Duration, Instant};

use common::client::{Credential, SftpClient, ssh_connect};
use common::*;
use sftpgo::service::Tuning;
use tokio::io::AsyncReadExt;

const PW: &str = "pw";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_connections_are_closed_at_the_login_timeout() {
    let srv = TestServer::start_with(|c| c.sftpd.login_timeout = 1, Tuning::default()).await;
    let mut tcp = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let start = Instant::now();
    let mut buf = vec![0u8; 4096];
    // The server sends its banner, then must hang up on a client that never speaks.
    loop {
        match tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("connection still open after 10 s"),
        }
    }
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "closed too early: {:?}",
        start.elapsed()
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_are_closed_with_second_granularity() {
    let tuning = Tuning {
        idle_timeout: Some(Duration::from_secs(2)),
        ..Tuning::default()
    };
    let srv = TestServer::start_with(|_| {}, tuning).await;
    srv.add_user("idle", Some(PW), &[], &all_perms()).await;
    let mut c = SftpClient::connect(srv.addr, "idle", Credential::Password(PW))
        .await
        .unwrap();
    // Activity keeps it open past the timeout...
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        c.put("/f", b"x", 1).await.unwrap();
    }
    // ...silence closes it.
    let start = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(10), c.recv())
        .await
        .expect("closed within 10 s");
    assert!(closed.unwrap().is_none());
    assert!(
        start.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    let start = Instant::now();
    while !srv.core().registry().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "idle connection still registered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_sessions_is_enforced_and_freed() {
    let srv = TestServer::start().await;
    let mut user = srv.add_user("limited", Some(PW), &[], &all_perms()).await;
    user.max_sessions = 2;
    srv.core().provider().update_user(user).await.unwrap();
    let a = ssh_connect(srv.addr, "limited", Credential::Password(PW))
        .await
        .unwrap();
    let b = ssh_connect(srv.addr, "limited", Credential::Password(PW))
        .await
        .unwrap();
    assert!(
        ssh_connect(srv.addr, "limited", Credential::Password(PW))
            .await
            .is_err(),
        "third session must be refused"
    );
    assert_eq!(srv.core().registry().sessions_of("limited"), 2);
    drop(a);
    let start = Instant::now();
    while srv.core().registry().sessions_of("limited") > 1 {
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _c = ssh_connect(srv.addr, "limited", Credential::Password(PW))
        .await
        .unwrap();
    drop(b);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_auth_tries_disconnects() {
    let srv = TestServer::start_with(|c| c.sftpd.max_auth_tries = 2, Tuning::default()).await;
    srv.add_user("u", Some(PW), &[], &all_perms()).await;
    let config = std::sync::Arc::new(russh::client::Config::default());
    let mut h = russh::client::connect(config, srv.addr, common::client::AcceptAll)
        .await
        .unwrap();
    let mut refused_after = None;
    for i in 1..=5 {
        match h.authenticate_password("u", "wrong").await {
            Ok(r) => assert!(!r.success()),
            Err(_) => {
                refused_after = Some(i);
                break;
            }
        }
    }
    // Two rejected attempts are allowed; the third request is answered by a disconnect,
    // which the client may only notice on its next call.
    let n = refused_after.expect("the server must disconnect after too many failures");
    assert!(n <= 4, "disconnected only after {n} attempts");
    assert!(h.is_closed());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_can_be_killed_by_id() {
    let srv = TestServer::start().await;
    srv.add_user("victim", Some(PW), &[], &all_perms()).await;
    let mut c = SftpClient::connect(srv.addr, "victim", Credential::Password(PW))
        .await
        .unwrap();
    let list = srv.core().registry().list();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].username, "victim");
    assert_eq!(list[0].protocol, "SFTP");
    assert!(
        list[0].client_version.starts_with("SSH-2.0-"),
        "{:?}",
        list[0].client_version
    );
    assert!(srv.core().registry().close(&list[0].connection_id));
    let closed = tokio::time::timeout(Duration::from_secs(10), c.recv())
        .await
        .expect("closed in time");
    assert!(closed.unwrap().is_none());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_running_uploads_finish() {
    let srv = TestServer::start().await;
    srv.add_user("up", Some(PW), &[], &all_perms()).await;
    let addr = srv.addr;
    let data = pattern(24 << 20, 5);
    let expected = data.clone();
    let upload = tokio::spawn(async move {
        let mut c = SftpClient::connect(addr, "up", Credential::Password(PW))
            .await
            .unwrap();
        c.put("/big", &data, 16 * 1024).await
    });
    let start = Instant::now();
    while srv
        .core()
        .registry()
        .list()
        .iter()
        .all(|c| c.active_transfers.is_empty())
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "upload never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let home = srv.home("up");
    let core = srv.core().clone();
    let mut srv = srv;
    srv.running.take().expect("running").shutdown().await;
    upload
        .await
        .unwrap()
        .expect("the running upload completes during shutdown");
    assert!(std::fs::read(home.join("big")).unwrap() == expected);
    assert!(core.registry().is_empty());
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no new connections after shutdown"
    );
}
