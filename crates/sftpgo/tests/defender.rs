//! The defender with real clients: a paramiko brute force is banned (refused before the
//! SSH handshake, the correct password included), the REST API and `sftpgo api defender`
//! list and unban it, a safelisted address is never banned, a blocklisted one never gets
//! in, and two instances on one PostgreSQL database share a ban.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use common::logs::Logs;
use common::*;
use serde_json::Value;
use sftpgo::service::Tuning;

/// Runs the paramiko brute-force script: `brute N` or `login PASSWORD`.
async fn paramiko(addr: SocketAddr, user: &str, mode: &str, arg: &str) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/paramiko_bruteforce.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .args([
            &addr.ip().to_string(),
            &addr.port().to_string(),
            user,
            mode,
            arg,
        ])
        .output()
        .await
        .unwrap();
    assert_success(&out, "paramiko_bruteforce.py");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn defender_on(c: &mut sftpgo_config::Config) {
    c.common.defender.enabled = true;
}

async fn api(addr: SocketAddr, method: &str, path: &str) -> (u16, Value) {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method])
        .arg(format!("http://{addr}/api/v1{path}"))
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (
        code.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

async fn cli(addr: SocketAddr, args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sftpgo"))
        .args(["api", "--url", &format!("http://{addr}")])
        .args(args)
        .env_remove("SFTPGO_API_USER")
        .env_remove("SFTPGO_API_PASSWORD")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brute_force_is_banned_and_unbanned_through_the_api() {
    if !paramiko_available() {
        return;
    }
    let logs = Logs::install();
    let srv = TestServer::start_with(
        defender_on,
        Tuning {
            http_port: Some(0),
            ..Tuning::default()
        },
    )
    .await;
    srv.add_user("alice", Some("right"), &[], &all_perms())
        .await;
    let http = srv.running.as_ref().unwrap().http_addr.unwrap();
    // 40 wrong passwords for a real user (1 point each, threshold 15).
    let results = paramiko(srv.addr, "alice", "brute", "40").await;
    let failed = results.iter().filter(|r| *r == "failed").count();
    assert_eq!(failed, 15, "banned at the threshold: {results:?}");
    assert!(results[15..].iter().all(|r| r == "refused"), "{results:?}");
    // The right password does not get in either: refused before the handshake.
    assert_eq!(
        paramiko(srv.addr, "alice", "login", "right").await,
        ["refused"]
    );
    assert!(
        logs.find(|l| l["message"] == "host banned" && l["client_ip"] == "127.0.0.1")
            .is_some()
    );
    // The REST API and the CLI show the ban.
    let (code, hosts) = api(http, "GET", "/defender/hosts").await;
    assert_eq!(code, 200);
    assert_eq!(hosts[0]["ip"], "127.0.0.1", "{hosts}");
    assert!(
        hosts[0]["ban_time"].as_str().unwrap().ends_with('Z'),
        "{hosts}"
    );
    assert_eq!(hosts[0]["id"], "3132372e302e302e31");
    let (code, host) = api(http, "GET", "/defender/hosts/3132372e302e302e31").await;
    assert_eq!((code, &host["ip"]), (200, &Value::from("127.0.0.1")));
    let (status, out) = cli(http, &["defender", "list"]).await;
    assert_eq!(status, 0, "{out}");
    assert!(
        out.contains("127.0.0.1") && out.contains("BANNED UNTIL"),
        "{out}"
    );
    let text = srv.core().render_metrics();
    assert!(text.contains("sftpgo_defender_bans_total 1"), "{text}");
    assert!(
        text.contains("sftpgo_defender_refused_total{reason=\"banned\"}"),
        "{text}"
    );
    // Unbanned through the CLI: the user logs in again.
    let (status, out) = cli(http, &["defender", "unban", "127.0.0.1"]).await;
    assert_eq!(status, 0, "{out}");
    assert_eq!(
        paramiko(srv.addr, "alice", "login", "right").await,
        ["accepted"]
    );
    let (code, _) = api(http, "GET", "/defender/hosts/127.0.0.1").await;
    assert_eq!(code, 404);
    let (code, _) = api(http, "DELETE", "/defender/hosts/127.0.0.1").await;
    assert_eq!(code, 404);
    let (code, _) = api(http, "GET", "/defender/hosts/not-an-ip").await;
    assert_eq!(code, 400);
    // Unknown usernames cost twice as much: banned after 8.
    let results = paramiko(srv.addr, "nobody", "brute", "12").await;
    let failed = results.iter().filter(|r| *r == "failed").count();
    assert_eq!(failed, 8, "{results:?}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safelisted_addresses_are_never_banned_and_blocklisted_never_get_in() {
    if !paramiko_available() {
        return;
    }
    let srv = TestServer::start_with(
        |c| {
            defender_on(c);
            c.common.defender.safelist = vec!["127.0.0.0/8".into()];
            c.common.defender.threshold = 3;
        },
        Tuning::default(),
    )
    .await;
    srv.add_user("alice", Some("right"), &[], &all_perms())
        .await;
    let results = paramiko(srv.addr, "alice", "brute", "10").await;
    assert!(results.iter().all(|r| r == "failed"), "{results:?}");
    assert_eq!(
        paramiko(srv.addr, "alice", "login", "right").await,
        ["accepted"]
    );
    assert!(srv.core().defender().hosts(10).await.unwrap().is_empty());
    srv.stop().await;

    let blocked = TestServer::start_with(
        |c| {
            defender_on(c);
            c.common.defender.blocklist = vec!["127.0.0.1".into()];
        },
        Tuning::default(),
    )
    .await;
    blocked
        .add_user("alice", Some("right"), &[], &all_perms())
        .await;
    assert_eq!(
        paramiko(blocked.addr, "alice", "login", "right").await,
        ["refused"]
    );
    blocked.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_postgresql_database_share_a_ban() {
    if !paramiko_available() {
        return;
    }
    let Some(db) = sftpgo_provider::sql::testdb::postgres().await else {
        return;
    };
    let shared = |c: &mut sftpgo_config::Config| {
        on_postgres(db.settings.clone())(c);
        defender_on(c);
        c.common.defender.driver = "provider".into();
        c.common.defender.threshold = 6;
    };
    let a = TestServer::start_with(
        shared,
        Tuning {
            http_port: Some(0),
            ..Tuning::default()
        },
    )
    .await;
    let b = TestServer::start_with(shared, Tuning::default()).await;
    a.add_user("alice", Some("right"), &[], &all_perms()).await;
    // Half the attempts on each instance: the scores add up in the database.
    let on_a = paramiko(a.addr, "alice", "brute", "3").await;
    let on_b = paramiko(b.addr, "alice", "brute", "3").await;
    assert!(
        on_a.iter().chain(&on_b).all(|r| r == "failed"),
        "{on_a:?} {on_b:?}"
    );
    // Banned on both.
    assert_eq!(
        paramiko(a.addr, "alice", "login", "right").await,
        ["refused"]
    );
    assert_eq!(
        paramiko(b.addr, "alice", "login", "right").await,
        ["refused"]
    );
    // Unbanned through A's API: B lets the client in (within its 5 s ban cache).
    let http = a.running.as_ref().unwrap().http_addr.unwrap();
    let (code, _) = api(http, "DELETE", "/defender/hosts/127.0.0.1").await;
    assert_eq!(code, 200);
    assert_eq!(
        paramiko(a.addr, "alice", "login", "right").await,
        ["accepted"]
    );
    let mut result = Vec::new();
    for _ in 0..20 {
        result = paramiko(b.addr, "alice", "login", "right").await;
        if result == ["accepted"] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(result, ["accepted"]);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_log_in_score_score_no_auth() {
    let srv = TestServer::start_with(
        |c| {
            defender_on(c);
            c.common.defender.score_no_auth = 5;
            c.common.defender.threshold = 10;
        },
        Tuning::default(),
    )
    .await;
    let ip: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    for _ in 0..2 {
        // Connects, reads the server's identification line, leaves.
        let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        let mut buf = [0u8; 64];
        let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
        drop(s);
    }
    let mut banned = false;
    for _ in 0..50 {
        if let Some(h) = srv.core().defender().host(ip).await.unwrap()
            && h.ban_until.is_some()
        {
            banned = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        banned,
        "two connections without a login attempt reach the threshold"
    );
    // The next one is closed before the server says anything.
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::io::AsyncReadExt::read(&mut s, &mut buf),
    )
    .await
    .expect("closed at once")
    .unwrap_or(0);
    assert_eq!(n, 0, "no identification line for a banned client");
    srv.stop().await;
}
