//! Helpers for tests that drive the server through its REST API and with rclone.

use std::net::SocketAddr;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use super::{TestServer, assert_success};

/// Runs `cmd` (at most 180 s) and checks it succeeded.
pub async fn run(cmd: &mut tokio::process::Command, what: &str) -> Output {
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 180 s"))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_success(&out, what);
    out
}

/// rclone over SFTP to the server as `user` (remote `:sftp:`): a command builder.
pub fn rclone_sftp(
    addr: SocketAddr,
    user: &str,
    password: &str,
) -> impl Fn(&[&str]) -> tokio::process::Command {
    let obscured = std::process::Command::new("rclone")
        .args(["obscure", password])
        .output()
        .expect("rclone obscure");
    let obscured = String::from_utf8_lossy(&obscured.stdout).trim().to_owned();
    let (port, user) = (addr.port().to_string(), user.to_owned());
    move |args: &[&str]| {
        let mut cmd = tokio::process::Command::new("rclone");
        cmd.env("RCLONE_CONFIG", "/dev/null")
            .args(["--sftp-host", "127.0.0.1"])
            .args(["--sftp-port", &port])
            .args(["--sftp-user", &user])
            .args(["--sftp-pass", &obscured])
            .args(["--retries", "1", "--low-level-retries", "1"])
            .args(args);
        cmd
    }
}

/// The REST API of a [`TestServer`] started with `http_port`.
pub struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(srv: &TestServer) -> Self {
        let addr = srv.running.as_ref().unwrap().http_addr.expect("API on");
        Self {
            base: format!("http://{addr}/api/v1"),
            http: reqwest::Client::new(),
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The user's used quota as GET /user/{id} shows it: (bytes, files).
    pub async fn used_quota(&self, id: i64) -> (i64, i64) {
        let (_, u) = self
            .call(reqwest::Method::GET, &format!("/user/{id}"), None)
            .await;
        (
            u["used_quota_size"].as_i64().unwrap(),
            u["used_quota_files"].as_i64().unwrap(),
        )
    }
}
