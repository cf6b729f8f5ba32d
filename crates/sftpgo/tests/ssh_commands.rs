//! The SSH commands clients verify transfers with (`md5sum` & co., `cd`, `pwd`), driven by
//! OpenSSH's `ssh` and by rclone, checked against coreutils' own output.

mod common;

use std::path::Path;
use std::process::Output;

use bytes::Bytes;
use common::logs::Logs;
use common::*;
use sftpgo::service::Tuning;
use sftpgo_provider::Permission;

async fn ssh(srv: &TestServer, key: &TestKey, user: &str, command: &str, input: &[u8]) -> Output {
    let mut cmd = openssh_command("ssh", srv.addr, key);
    cmd.arg(format!("{user}@127.0.0.1")).arg(command);
    run_with_input(cmd, input).await
}

/// What coreutils prints for `<tool> <name>` run in `dir`.
fn coreutils(tool: &str, dir: &Path, name: &str) -> String {
    let out = std::process::Command::new(tool)
        .arg(name)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_commands_print_what_coreutils_prints() {
    let logs = Logs::install();
    let srv = TestServer::start().await;
    let key = keygen(srv.dir.path(), "ed25519");
    srv.add_user("hasher", None, &[&key], &all_perms()).await;
    let home = srv.home("hasher");
    std::fs::create_dir_all(home.join("d")).unwrap();
    std::fs::write(home.join("d/f.bin"), pattern((5 << 20) + 3, 9)).unwrap();
    std::fs::write(home.join("empty"), b"").unwrap();
    for tool in ["md5sum", "sha1sum", "sha256sum", "sha384sum", "sha512sum"] {
        for name in ["d/f.bin", "empty"] {
            let out = ssh(&srv, &key, "hasher", &format!("{tool} {name}"), b"").await;
            assert_success(&out, tool);
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                coreutils(tool, &home, name),
                "{tool} {name}"
            );
        }
    }
    // An absolute path, several files, one missing: the others still printed, exit 1.
    let out = ssh(&srv, &key, "hasher", "md5sum /d/f.bin missing empty", b"").await;
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(
        stdout.starts_with(
            coreutils("md5sum", &home, "d/f.bin")
                .split(' ')
                .next()
                .unwrap()
        )
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("md5sum: missing: No such file or directory")
    );
    // No file: what the client sends (rclone probes with an empty stdin).
    let out = ssh(&srv, &key, "hasher", "sha256sum", b"abc").await;
    assert_success(&out, "sha256sum of stdin");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  -\n"
    );
    let out = ssh(&srv, &key, "hasher", "md5sum", b"").await;
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "d41d8cd98f00b204e9800998ecf8427e  -\n"
    );
    // cd and pwd as SFTPGo 2.x: nothing changes, the directory is always /.
    let out = ssh(&srv, &key, "hasher", "cd /d", b"").await;
    assert_success(&out, "cd");
    let out = ssh(&srv, &key, "hasher", "pwd", b"").await;
    assert_eq!(out.stdout, b"/\n");
    // Confined like everything else.
    let out = ssh(&srv, &key, "hasher", "md5sum ../../../../etc/passwd", b"").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    // Logged as a command, not a download, with its protocol.
    let line = logs
        .find(|l| l["sender"] == "Checksum-sha512" && l["username"] == "hasher")
        .expect("checksum logged");
    assert_eq!(line["protocol"], "SSH");
    assert!(
        logs.find(|l| l["sender"] == "Download" && l["username"] == "hasher")
            .is_none()
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashing_needs_the_download_permission_and_can_be_disabled() {
    let srv = TestServer::start_with(
        |c| c.sftpd.enabled_ssh_commands = vec!["sha1sum".into()],
        Tuning::default(),
    )
    .await;
    let key = keygen(srv.dir.path(), "ed25519");
    srv.add_user("listonly", None, &[&key], &[Permission::List])
        .await;
    std::fs::create_dir_all(srv.home("listonly")).unwrap();
    std::fs::write(srv.home("listonly").join("f"), b"x").unwrap();
    let out = ssh(&srv, &key, "listonly", "sha1sum f", b"").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
    // Without a file, listing is enough.
    let out = ssh(&srv, &key, "listonly", "sha1sum", b"").await;
    assert_success(&out, "sha1sum of stdin");
    let out = ssh(&srv, &key, "listonly", "md5sum f", b"").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not enabled"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_command_name_in_the_config_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = sftpgo_config::Config::default();
    config.sftpd.bind_port = 0;
    config.httpd.bind_port = 0;
    config.sftpd.enabled_ssh_commands = vec!["md5sum".into(), "bash".into()];
    let err = sftpgo::service::start(&config, dir.path(), Tuning::default())
        .await
        .err()
        .expect("refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("enabled_ssh_commands")
            && text.contains("bash")
            && text.contains("sha256sum"),
        "{text}"
    );
}

/// rclone finds the hash commands by itself (it probes `md5sum` with an empty stdin) and
/// checks a tree with them instead of downloading it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_checks_a_tree_with_the_servers_hashes() {
    if !client_available("rclone", &["rclone", "version"], "apt-get install rclone") {
        return;
    }
    let logs = Logs::install();
    let srv = TestServer::start().await;
    let key = keygen(srv.dir.path(), "ed25519");
    srv.add_user("rch", None, &[&key], &all_perms()).await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    for (i, size) in [0usize, 1, 70_000, 3 << 20].iter().enumerate() {
        let p = src.join(format!("sub{}/f{i} 'x'.bin", i % 2));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, pattern(*size, i as u64)).unwrap();
    }
    let rclone = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new("rclone");
        cmd.env("RCLONE_CONFIG", work.path().join("rclone.conf"))
            .args(["--sftp-host", "127.0.0.1"])
            .args(["--sftp-port", &srv.addr.port().to_string()])
            .args(["--sftp-user", "rch"])
            .arg("--sftp-key-file")
            .arg(&key.path)
            .args(["--retries", "1", "--low-level-retries", "1"])
            .args(args)
            .kill_on_drop(true);
        cmd
    };
    let src_s = src.to_str().unwrap();
    let out = rclone(&["copy", src_s, ":sftp:up"]).output().await.unwrap();
    assert_success(&out, "rclone copy");
    // rclone's probe (`md5sum` with an empty stdin, expecting the empty input's hash)
    // finds the command by itself: one file.
    let out = rclone(&["md5sum", ":sftp:up/sub0/f2 'x'.bin"])
        .output()
        .await
        .unwrap();
    assert_success(&out, "rclone md5sum with its probe");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        coreutils("md5sum", &src.join("sub0"), "f2 'x'.bin")
    );
    // For many files the command is named: rclone 1.60 takes the hashes as unsupported
    // for files asked about while its probe runs (its cache is set before the probe ends).
    let out = rclone(&["md5sum", "--sftp-md5sum-command", "md5sum", ":sftp:up"])
        .output()
        .await
        .unwrap();
    assert_success(&out, "rclone md5sum");
    let listed = String::from_utf8(out.stdout).unwrap();
    for i in 0..4 {
        // Names with spaces and quotes: rclone escapes them, the server splits them back.
        let name = format!("sub{}/f{i} 'x'.bin", i % 2);
        let local = coreutils("md5sum", &src, &name);
        assert!(listed.contains(local.trim_end()), "{local} not in {listed}");
    }
    let out = rclone(&["sha1sum", "--sftp-sha1sum-command", "sha1sum", ":sftp:up"])
        .output()
        .await
        .unwrap();
    assert_success(&out, "rclone sha1sum");
    let listed = String::from_utf8(out.stdout).unwrap();
    for i in 0..4 {
        let name = format!("sub{}/f{i} 'x'.bin", i % 2);
        let local = coreutils("sha1sum", &src, &name);
        assert!(listed.contains(local.trim_end()), "{local} not in {listed}");
    }
    // A corrupted file is found by its hash (same size, other bytes).
    let stored = srv.home("rch").join("up/sub1/f3 'x'.bin");
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&stored, bytes).unwrap();
    let out = rclone(&[
        "check",
        "--sftp-md5sum-command",
        "md5sum",
        src_s,
        ":sftp:up",
    ])
    .output()
    .await
    .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("f3 'x'.bin: md5 differ") && text.contains("1 differences found"),
        "{text}"
    );
    assert!(
        logs.find(|l| l["sender"] == "Checksum-md5" && l["username"] == "rch")
            .is_some()
    );
    assert!(
        logs.find(|l| l["sender"] == "Download" && l["username"] == "rch")
            .is_none(),
        "checked without downloading"
    );
    srv.stop().await;
}

/// SFTP's `check-file` extension (WinSCP's checksum, paramiko's `SFTPFile.check`):
/// paramiko asks by handle, the raw client by name; refusals are statuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_check_file_hashes_ranges_and_blocks() {
    use common::client::{Credential, SftpClient};
    use sftpgo_sftp::codec::{self, Extended, Request, Response};
    let srv = TestServer::start().await;
    srv.add_user("chk", Some("pw"), &[], &all_perms()).await;
    let data = pattern((1 << 20) + 12345, 4);
    std::fs::create_dir_all(srv.home("chk")).unwrap();
    std::fs::write(srv.home("chk").join("f.bin"), &data).unwrap();
    let local = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(local.path(), &data).unwrap();
    if paramiko_available() {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/paramiko_checkfile.py");
        let out = tokio::process::Command::new("python3")
            .arg(script)
            .args([&srv.addr.port().to_string(), "chk", "pw", "/f.bin"])
            .arg(local.path())
            .output()
            .await
            .unwrap();
        assert_success(&out, "paramiko_checkfile.py");
        let cases: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(cases.len(), 6 * 4 + 3);
        for c in &cases {
            if c["case"].as_str().unwrap().starts_with("refused") {
                assert!(c["error"].is_string(), "{c}");
            } else {
                assert_eq!(c["got"], c["want"], "{c}");
            }
        }
    }
    // By name, with the raw client; and what is refused.
    let mut c = SftpClient::connect(srv.addr, "chk", Credential::Password("pw"))
        .await
        .unwrap();
    let names: Vec<_> = c.extensions.iter().map(|(n, _)| n.clone()).collect();
    for e in ["check-file", "check-file-name", "check-file-handle"] {
        assert!(
            names.iter().any(|n| &n[..] == e.as_bytes()),
            "{e} advertised"
        );
    }
    let check = |target: &str, algorithms: &str, block_size: u32| {
        let (target, algorithms) = (
            Bytes::copy_from_slice(target.as_bytes()),
            Bytes::copy_from_slice(algorithms.as_bytes()),
        );
        move |id| Request::Extended {
            id,
            ext: Extended::CheckFile {
                by_handle: false,
                target,
                algorithms,
                offset: 0,
                length: 0,
                block_size,
            },
        }
    };
    match c.call(check("/f.bin", "md5", 0)).await.unwrap() {
        Response::ExtendedReply { data: reply, .. } => {
            let mut expect = Vec::new();
            expect.extend_from_slice(&10u32.to_be_bytes());
            expect.extend_from_slice(b"check-file");
            expect.extend_from_slice(&3u32.to_be_bytes());
            expect.extend_from_slice(b"md5");
            let local_md5 = std::process::Command::new("md5sum")
                .arg(local.path())
                .output()
                .unwrap();
            let hex = String::from_utf8(local_md5.stdout).unwrap()[..32].to_string();
            expect.extend_from_slice(
                &(0..16)
                    .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                    .collect::<Vec<_>>(),
            );
            assert_eq!(&reply[..], &expect[..]);
        }
        other => panic!("{other:?}"),
    }
    let status = |r: Response| match r {
        Response::Status { code, .. } => code,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        status(c.call(check("/missing", "md5", 0)).await.unwrap()),
        codec::SSH_FX_NO_SUCH_FILE
    );
    assert_eq!(
        status(c.call(check("/f.bin", "crc32", 0)).await.unwrap()),
        codec::SSH_FX_OP_UNSUPPORTED
    );
    assert_eq!(
        status(c.call(check("/f.bin", "sha1", 10)).await.unwrap()),
        codec::SSH_FX_FAILURE
    );
    // 1 MiB in 256-byte blocks is more hashes than one reply carries.
    assert_eq!(
        status(c.call(check("/f.bin", "sha1", 256)).await.unwrap()),
        codec::SSH_FX_FAILURE
    );
    assert_eq!(
        status(
            c.call(check("/../../../etc/passwd", "md5", 0))
                .await
                .unwrap()
        ),
        codec::SSH_FX_NO_SUCH_FILE
    );
    drop(c);
    // Without the download permission, nothing is hashed.
    srv.add_user("nodl", Some("pw"), &[], &[Permission::List])
        .await;
    std::fs::create_dir_all(srv.home("nodl")).unwrap();
    std::fs::write(srv.home("nodl").join("f"), b"x").unwrap();
    let mut c = SftpClient::connect(srv.addr, "nodl", Credential::Password("pw"))
        .await
        .unwrap();
    assert_eq!(
        status(c.call(check("/f", "md5", 0)).await.unwrap()),
        codec::SSH_FX_PERMISSION_DENIED
    );
    srv.stop().await;
}
