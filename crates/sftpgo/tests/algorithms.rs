//! `sftpd.kex_algorithms`, `ciphers`, `macs` and `host_key_algorithms` with OpenSSH
//! clients forcing an allowed and a refused algorithm, and an unknown name stopping the
//! start.

mod common;

use std::net::SocketAddr;

use common::*;
use sftpgo::service::Tuning;

/// OpenSSH `sftp` with a key and extra `-o` options, listing `/`; (succeeded, stderr).
async fn sftp_with(addr: SocketAddr, key: &TestKey, options: &[&str]) -> (bool, String) {
    let mut cmd = tokio::process::Command::new("sftp");
    cmd.args(["-b", "-", "-P", &addr.port().to_string()])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ConnectTimeout=20",
        ])
        .arg("-i")
        .arg(&key.path);
    for o in options {
        cmd.args(["-o", o]);
    }
    cmd.arg(format!("alice@{}", addr.ip()))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("sftp runs");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"ls /\n").await.unwrap();
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("sftp finished")
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_algorithms_are_the_only_ones_offered() {
    let srv = TestServer::start_with(
        |c| {
            c.sftpd.kex_algorithms = vec!["curve25519-sha256".into()];
            c.sftpd.ciphers = vec!["aes256-ctr".into(), "aes128-ctr".into()];
            c.sftpd.macs = vec!["hmac-sha2-512-etm@openssh.com".into()];
            c.sftpd.host_key_algorithms = vec!["ssh-ed25519".into()];
        },
        Tuning::default(),
    )
    .await;
    let keys = tempfile::tempdir().unwrap();
    let key = keygen(keys.path(), "ed25519");
    srv.add_user("alice", None, &[&key], &all_perms()).await;
    // Allowed: the defaults of the client meet ours.
    let (ok, err) = sftp_with(srv.addr, &key, &[]).await;
    assert!(ok, "{err}");
    let (ok, err) = sftp_with(
        srv.addr,
        &key,
        &["Ciphers=aes128-ctr", "MACs=hmac-sha2-512-etm@openssh.com"],
    )
    .await;
    assert!(ok, "{err}");
    // Refused: each one the operator left out.
    for (option, what) in [
        ("Ciphers=aes128-gcm@openssh.com", "cipher"),
        ("MACs=hmac-sha2-256", "MAC"),
        ("KexAlgorithms=ecdh-sha2-nistp256", "key exchange"),
        ("HostKeyAlgorithms=rsa-sha2-512", "host key type"),
    ] {
        let (ok, err) = sftp_with(srv.addr, &key, &[option]).await;
        assert!(!ok, "{option} was accepted");
        assert!(err.contains("no matching"), "{option}: {err}");
        assert!(err.contains(what), "{option}: {err}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn an_unknown_algorithm_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = sftpgo_config::Config::default();
    config.sftpd.bind_port = 0;
    config.httpd.bind_port = 0;
    config.sftpd.ciphers = vec!["aes128-ctr".into(), "rot13".into()];
    let e = match sftpgo::service::start(&config, dir.path(), Tuning::default()).await {
        Ok(_) => panic!("started with an unknown cipher"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("sftpd.ciphers") && e.contains("rot13"), "{e}");
    assert!(
        e.contains("aes256-gcm@openssh.com"),
        "lists the supported names: {e}"
    );
}
