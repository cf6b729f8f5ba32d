//! The REST API over HTTP with curl, against a server with live SFTP sessions.

mod common;

use std::time::{Duration, Instant};

use common::client::{Credential, SftpClient};
use common::*;
use serde_json::{Value, json};
use sftpgo::service::Tuning;

async fn curl(method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args([
        "-s",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
        "-H",
        "X-Request-Id: test-req-1",
        url,
    ]);
    if let Some(b) = body {
        cmd.args([
            "-H",
            "Content-Type: application/json",
            "--data",
            &b.to_string(),
        ]);
    }
    let out = cmd.output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (
        code.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_manages_users_and_sees_and_kills_live_transfers() {
    let tuning = Tuning {
        http_port: Some(0),
        ..Tuning::default()
    };
    let srv = TestServer::start_with(|_| {}, tuning).await;
    let base = format!(
        "http://{}/api/v1",
        srv.running.as_ref().unwrap().http_addr.unwrap()
    );
    let (code, v) = curl("GET", &format!("{base}/version"), None).await;
    assert_eq!(code, 200);
    assert!(v["version"].is_string());
    // A user created through the API logs in over SFTP.
    let home = srv.home("apiuser");
    let user = json!({"username": "apiuser", "password": "pw", "home_dir": home.display().to_string(),
                      "permissions": ["*"], "upload_bandwidth": 500});
    let (code, created) = curl("POST", &format!("{base}/user"), Some(&user)).await;
    assert_eq!(code, 200, "{created}");
    assert!(created.get("password").is_none());
    let (code, _) = curl("POST", &format!("{base}/user"), Some(&user)).await;
    assert_eq!(code, 409);
    let addr = srv.addr;
    let upload = tokio::spawn(async move {
        let mut c = SftpClient::connect(addr, "apiuser", Credential::Password("pw"))
            .await
            .unwrap();
        c.put("/slow.bin", &pattern(8 << 20, 3), 32 * 1024).await
    });
    // The running upload is visible with its virtual path...
    let start = Instant::now();
    let conn = loop {
        let (_, list) = curl("GET", &format!("{base}/connection"), None).await;
        if let Some(c) = list.as_array().and_then(|l| {
            l.iter()
                .find(|c| !c["active_transfers"].as_array().unwrap().is_empty())
        }) {
            break c.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "transfer never listed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(conn["username"], "apiuser");
    assert_eq!(conn["protocol"], "SFTP");
    assert!(
        conn["client_version"]
            .as_str()
            .unwrap()
            .starts_with("SSH-2.0-")
    );
    let t = &conn["active_transfers"][0];
    assert_eq!(
        (t["operation_type"].as_str(), t["path"].as_str()),
        (Some("upload"), Some("/slow.bin"))
    );
    // ...and the alias path lists it too.
    let (_, alias) = curl("GET", &format!("{base}/sftp_connection"), None).await;
    assert_eq!(alias.as_array().unwrap().len(), 1);
    // DELETE ends it: the client sees the connection drop.
    let id = conn["connection_id"].as_str().unwrap();
    let (code, v) = curl("DELETE", &format!("{base}/connection/{id}"), None).await;
    assert_eq!(
        (code, v["message"].as_str()),
        (200, Some("Connection closed"))
    );
    let res = tokio::time::timeout(Duration::from_secs(10), upload)
        .await
        .expect("client noticed")
        .unwrap();
    assert!(res.is_err());
    assert_eq!(
        curl("DELETE", &format!("{base}/connection/{id}"), None)
            .await
            .0,
        404
    );
    // Quota scan and user deletion.
    let (code, _) = curl(
        "POST",
        &format!("{base}/quota_scan"),
        Some(&json!({"username": "apiuser"})),
    )
    .await;
    assert_eq!(code, 201);
    let uid = created["id"].as_i64().unwrap();
    assert_eq!(
        curl("DELETE", &format!("{base}/user/{uid}"), None).await.0,
        200
    );
    assert_eq!(
        curl("GET", &format!("{base}/user/{uid}"), None).await.0,
        404
    );
    srv.stop().await;
}
