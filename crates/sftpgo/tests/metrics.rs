//! `/metrics` scraped over HTTP after real client traffic, parsed by a Prometheus
//! text-format parser; `/healthz` answers 200 while the provider does.

mod common;

use std::net::SocketAddr;

use common::client::{Credential, SftpClient};
use common::{Login, TestServer, assert_success, keygen, sftp_batch};
use sftpgo::service::Tuning;

async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .arg(format!("http://{addr}{path}"))
        .output()
        .await
        .expect("curl runs");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

struct Scraped(prometheus_parse::Scrape);

impl Scraped {
    async fn fetch(addr: SocketAddr) -> Self {
        let (code, body) = http_get(addr, "/metrics").await;
        assert_eq!(code, 200, "{body}");
        let lines = body.lines().map(|l| Ok(l.to_string()));
        Self(prometheus_parse::Scrape::parse(lines).expect("valid exposition"))
    }

    /// The value of `name` with exactly these labels among its own (0 when absent).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    }
}

#[tokio::test]
async fn counters_follow_real_client_traffic() {
    let work = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(
        |_| {},
        Tuning {
            http_port: Some(0),
            ..Tuning::default()
        },
    )
    .await;
    let http = server.running.as_ref().unwrap().http_addr.unwrap();
    let key = keygen(work.path(), "ed25519");
    server
        .add_user("alice", Some("right"), &[&key], &common::all_perms())
        .await;

    let before = Scraped::fetch(http).await;
    assert_eq!(before.value("sftpgo_active_connections", &[]), 0.0);
    assert_eq!(
        before.value("sftpgo_transfer_bytes_total", &[("direction", "upload")]),
        0.0
    );

    let data = common::pattern(100_000, 7);
    std::fs::write(work.path().join("up.bin"), &data).unwrap();
    let out = sftp_batch(
        server.addr,
        "alice",
        Login::Key(&key),
        "put up.bin\nget up.bin down.bin\n",
        work.path(),
    )
    .await;
    assert_success(&out, "sftp");
    assert!(
        SftpClient::connect(server.addr, "alice", Credential::Password("wrong"))
            .await
            .is_err()
    );
    // One connection stays open while scraping.
    let _open = SftpClient::connect(server.addr, "alice", Credential::Password("right"))
        .await
        .unwrap();

    let after = Scraped::fetch(http).await;
    let v = |name: &str, labels: &[(&str, &str)]| after.value(name, labels);
    assert_eq!(v("sftpgo_active_connections", &[]), 1.0);
    assert!(v("sftpgo_connections_total", &[]) >= 3.0);
    assert_eq!(
        v("sftpgo_protocol_sessions_total", &[("protocol", "SFTP")]),
        2.0
    );
    assert_eq!(
        v(
            "sftpgo_logins_total",
            &[("method", "publickey"), ("result", "ok")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "sftpgo_logins_total",
            &[("method", "password"), ("result", "failed")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "sftpgo_logins_total",
            &[("method", "password"), ("result", "ok")]
        ),
        1.0
    );
    assert_eq!(
        v("sftpgo_transfer_bytes_total", &[("direction", "upload")]),
        data.len() as f64
    );
    assert_eq!(
        v("sftpgo_transfer_bytes_total", &[("direction", "download")]),
        data.len() as f64
    );
    for direction in ["upload", "download"] {
        assert_eq!(
            v(
                "sftpgo_transfers_total",
                &[("direction", direction), ("result", "ok")]
            ),
            1.0,
            "{direction}"
        );
    }
    assert!(v("sftpgo_sftp_requests_total", &[("request", "open")]) >= 2.0);
    assert!(v("sftpgo_sftp_requests_total", &[("request", "write")]) >= 1.0);
    assert!(v("sftpgo_sftp_requests_total", &[("request", "read")]) >= 1.0);
    assert!(
        v(
            "sftpgo_provider_query_duration_seconds_count",
            &[("operation", "user_by_username"), ("result", "ok")]
        ) >= 3.0
    );

    let (code, body) = http_get(http, "/healthz").await;
    assert_eq!(code, 200, "{body}");
    server.stop().await;
}

/// `/healthz` follows the database: 503 while PostgreSQL is unreachable (a cut proxy
/// between server and database), 200 again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn healthz_is_503_while_postgresql_is_unreachable() {
    let Some(db) = sftpgo_provider::sql::testdb::postgres().await else {
        return;
    };
    let settings = db.settings.clone();
    let upstream: SocketAddr = format!("{}:{}", settings.host, settings.port)
        .parse()
        .unwrap();
    let proxy = common::proxy::Proxy::start(upstream).await;
    let proxy_port = proxy.addr.port();
    let server = TestServer::start_with(
        move |c| {
            let dp = &mut c.data_provider;
            dp.driver = "postgresql".into();
            dp.host = "127.0.0.1".into();
            dp.port = proxy_port;
            dp.name = settings.name;
            dp.username = settings.username;
            dp.password = settings.password;
            dp.connect_timeout = 2;
            dp.statement_timeout = 2;
        },
        Tuning {
            http_port: Some(0),
            ..Tuning::default()
        },
    )
    .await;
    let http = server.running.as_ref().unwrap().http_addr.unwrap();
    assert_eq!(http_get(http, "/healthz").await.0, 200);
    proxy.cut();
    let (code, body) = http_get(http, "/healthz").await;
    assert_eq!(code, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], 503);
    // The failed pings are counted as provider errors.
    let scraped = Scraped::fetch(http).await;
    assert!(
        scraped.value(
            "sftpgo_provider_query_duration_seconds_count",
            &[("operation", "ping"), ("result", "error")]
        ) >= 1.0
    );
    proxy.restore();
    let mut code = 0;
    for _ in 0..100 {
        code = http_get(http, "/healthz").await.0;
        if code == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(code, 200, "healthy again once the database is back");
    server.stop().await;
    drop(db);
}
