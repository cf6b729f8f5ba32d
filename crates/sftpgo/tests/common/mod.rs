//! Test harness: a server started in-process on port 0 with a temp config dir and SQLite
//! database, users added through the provider, and the real OpenSSH client.
#![allow(dead_code)]

pub mod api;
pub mod client;
pub mod logs;
pub mod process;
pub mod proxy;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use sftpgo::service::{Running, Tuning};
use sftpgo_config::Config;
use sftpgo_provider::{Permission, User};
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;

pub struct TestServer {
    pub dir: TempDir,
    pub running: Option<Running>,
    pub addr: SocketAddr,
    /// What it was started with, for [`TestServer::restart`].
    config: Config,
    tuning: Tuning,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}, Tuning::default()).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut Config), tuning: Tuning) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let host_key = dir.path().join("host_ed25519");
        keygen_at(&host_key, "ed25519");
        let mut config = Config::default();
        // Tests of other features fail logins and hit limits on purpose, all from
        // 127.0.0.1: the defender's own tests turn it on.
        config.common.defender.enabled = false;
        config.sftpd.bind_port = 0;
        config.sftpd.bind_address = "127.0.0.1".into();
        config.sftpd.keys = vec![sftpgo_config::HostKeyConfig {
            private_key: host_key.display().to_string(),
        }];
        config.data_provider.name = "sftpgo.db".into();
        // The API is off unless a test asks for it (Tuning::http_port).
        config.httpd.bind_port = 0;
        // Every test client comes from 127.0.0.1: the connection limits are off unless a
        // test sets them.
        config.sftpd.max_per_host_connections = 0;
        config.sftpd.max_total_connections = 0;
        configure(&mut config);
        let running = sftpgo::service::start(&config, dir.path(), tuning.clone())
            .await
            .expect("server starts");
        let addr = running.ssh_addr;
        Self {
            dir,
            running: Some(running),
            addr,
            config,
            tuning,
        }
    }

    /// Stops the server and starts it again on the same config dir and database (new
    /// ports): what a restart after a crash or an upgrade finds.
    pub async fn restart(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        let running = sftpgo::service::start(&self.config, self.dir.path(), self.tuning.clone())
            .await
            .expect("server restarts");
        self.addr = running.ssh_addr;
        self.running = Some(running);
    }

    pub fn core(&self) -> &sftpgo_core::Core {
        &self.running.as_ref().expect("running").core
    }

    /// A home dir path under the temp dir (not created: the server creates it at login).
    pub fn home(&self, name: &str) -> PathBuf {
        self.dir.path().join("homes").join(name)
    }

    pub async fn add_user(
        &self,
        name: &str,
        password: Option<&str>,
        keys: &[&TestKey],
        perms: &[Permission],
    ) -> User {
        let user = User {
            username: name.into(),
            password: password.map(str::to_string),
            public_keys: keys.iter().map(|k| k.public.clone()).collect(),
            home_dir: self.home(name).display().to_string(),
            permissions: perms.to_vec(),
            ..Default::default()
        };
        self.core()
            .provider()
            .add_user(user)
            .await
            .expect("add user")
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

/// A client key pair made by ssh-keygen.
pub struct TestKey {
    pub path: PathBuf,
    pub public: String,
}

impl TestKey {
    pub fn private(&self) -> russh::keys::PrivateKey {
        russh::keys::load_secret_key(&self.path, None).expect("load key")
    }
}

pub fn keygen_at(path: &Path, kind: &str) -> TestKey {
    let mut cmd = std::process::Command::new("ssh-keygen");
    cmd.args(["-q", "-N", "", "-t", kind, "-f"]).arg(path);
    if kind == "rsa" {
        cmd.args(["-b", "3072"]);
    }
    let status = cmd.status().expect("ssh-keygen runs");
    assert!(status.success(), "ssh-keygen failed");
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("public key");
    TestKey {
        path: path.to_path_buf(),
        public: public.trim().to_string(),
    }
}

pub fn keygen(dir: &Path, kind: &str) -> TestKey {
    keygen_at(&dir.join(format!("client_{kind}")), kind)
}

pub enum Login<'a> {
    Key(&'a TestKey),
    Password(&'a str),
}

/// Runs OpenSSH `sftp` in batch mode against the server; the batch comes on stdin.
pub async fn sftp_batch(
    addr: SocketAddr,
    user: &str,
    login: Login<'_>,
    batch: &str,
    cwd: &Path,
) -> Output {
    sftp_batch_with(addr, user, login, batch, cwd, &[]).await
}

/// [`sftp_batch`] with more `sftp` options (`-vvv` logs each request it sends on stderr).
pub async fn sftp_batch_with(
    addr: SocketAddr,
    user: &str,
    login: Login<'_>,
    batch: &str,
    cwd: &Path,
    options: &[&str],
) -> Output {
    let mut cmd = tokio::process::Command::new("sftp");
    cmd.args(options);
    // `-b` makes sftp stop at the first failing command, but it also forces BatchMode,
    // which disables password prompts: password logins read commands from plain stdin.
    if let Login::Key(_) = login {
        cmd.args(["-b", "-"]);
    }
    cmd.current_dir(cwd)
        .args(["-P", &addr.port().to_string()])
        .args(CLIENT_OPTIONS);
    let _askpass;
    match login {
        Login::Key(k) => {
            cmd.args([
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "PasswordAuthentication=no",
                "-i",
            ])
            .arg(&k.path);
        }
        Login::Password(p) => {
            let dir = tempfile::tempdir().expect("tempdir");
            let script = dir.path().join("askpass.sh");
            std::fs::write(
                &script,
                format!("#!/bin/sh\nprintf '%s\\n' '{}'\n", p.replace('\'', "'\\''")),
            )
            .expect("askpass");
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700))
                .expect("chmod");
            cmd.env("SSH_ASKPASS", &script)
                .env("SSH_ASKPASS_REQUIRE", "force")
                .env("DISPLAY", ":0")
                .args([
                    "-o",
                    "PubkeyAuthentication=no",
                    "-o",
                    "PreferredAuthentications=password",
                    "-o",
                    "NumberOfPasswordPrompts=1",
                ]);
            _askpass = dir;
        }
    }
    cmd.arg(format!("{user}@{}", addr.ip()));
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("sftp runs");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(batch.as_bytes())
        .await
        .expect("write batch");
    drop(stdin);
    tokio::time::timeout(
        std::time::Duration::from_secs(300),
        child.wait_with_output(),
    )
    .await
    .expect("sftp finished in time")
    .expect("sftp output")
}

/// Whether `probe` (a client's version command) runs; if not, fails under
/// `SFTPGO_REQUIRE_CLIENTS=1`, else reports the skip.
pub fn client_available(name: &str, probe: &[&str], install: &str) -> bool {
    let ok = std::process::Command::new(probe[0])
        .args(&probe[1..])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("SFTPGO_REQUIRE_CLIENTS").as_deref() != Ok("1"),
            "{name} is required (SFTPGO_REQUIRE_CLIENTS=1) but not installed: {install}"
        );
        eprintln!("SKIPPED: {name} is not installed ({install})");
    }
    ok
}

/// A configuration edit that points the data provider at a test PostgreSQL database.
pub fn on_postgres(s: sftpgo_provider::sql::ServerSettings) -> impl FnOnce(&mut Config) {
    move |c| {
        let dp = &mut c.data_provider;
        dp.driver = "postgresql".into();
        dp.host = s.host;
        dp.port = s.port;
        dp.name = s.name;
        dp.username = s.username;
        dp.password = s.password;
    }
}

/// [`client_available`] for paramiko.
pub fn paramiko_available() -> bool {
    client_available(
        "paramiko",
        &["python3", "-c", "import paramiko"],
        "python3 -m pip install paramiko",
    )
}

pub fn all_perms() -> Vec<Permission> {
    vec![Permission::Any]
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What every OpenSSH client of the tests is given: no host key checks (a fresh key per
/// server), errors only, a bounded connect.
const CLIENT_OPTIONS: [&str; 8] = [
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "ConnectTimeout=20",
];

/// OpenSSH's `scp` or `ssh` (`program`), set up for the test server with `key`: no host
/// key checks, no prompts, the right port flag.
pub fn openssh_command(program: &str, addr: SocketAddr, key: &TestKey) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    let port_flag = if program == "ssh" { "-p" } else { "-P" };
    cmd.args([port_flag, &addr.port().to_string()])
        .args(CLIENT_OPTIONS)
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "PasswordAuthentication=no",
            "-i",
        ])
        .arg(&key.path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs a prepared client command with `input` on its stdin; its output, within 300 s.
pub async fn run_with_input(mut cmd: tokio::process::Command, input: &[u8]) -> Output {
    let mut child = cmd.spawn().expect("client runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
    });
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(300),
        child.wait_with_output(),
    )
    .await
    .expect("client finished in time")
    .expect("client output");
    let _ = writer.await;
    out
}
