//! SCP (`scp -O`, the legacy protocol) with the real OpenSSH client, and hostile SCP
//! input from a raw SSH client.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use bytes::Bytes;
use common::client::{Credential, ssh_connect};
use common::logs::Logs;
use common::*;
use russh::ChannelMsg;
use sftpgo::service::Tuning;
use sftpgo_config::Config;
use sftpgo_provider::Permission;

fn scp_on(c: &mut Config) {
    c.sftpd.enable_scp = true;
}

async fn scp(srv: &TestServer, key: &TestKey, args: &[&str], cwd: &Path) -> Output {
    let mut cmd = openssh_command("scp", srv.addr, key);
    cmd.arg("-O").args(args).current_dir(cwd);
    run_with_input(cmd, b"").await
}

fn remote(user: &str, path: &str) -> String {
    format!("{user}@127.0.0.1:{path}")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

/// Every file under `a` is under `b` with the same bytes, and nothing else is.
fn same_tree(a: &Path, b: &Path) {
    let list = |root: &Path| {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p.strip_prefix(root).unwrap().to_path_buf());
                }
            }
        }
        out.sort();
        out
    };
    let (la, lb) = (list(a), list(b));
    assert_eq!(la, lb, "trees differ: {} vs {}", a.display(), b.display());
    for rel in la {
        assert!(
            std::fs::read(a.join(&rel)).unwrap() == std::fs::read(b.join(&rel)).unwrap(),
            "{} differs",
            rel.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_uploads_and_downloads_files_trees_and_wildcards() {
    let logs = Logs::install();
    let srv = TestServer::start_with(scp_on, Tuning::default()).await;
    let key = keygen(srv.dir.path(), "ed25519");
    srv.add_user("scpu", None, &[&key], &all_perms()).await;
    let home = srv.home("scpu");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    write(&w.join("a.bin"), &pattern(1 << 20, 1));
    write(&w.join("empty.bin"), b"");
    write(&w.join("s p.txt"), b"spaces");
    write(&w.join("big.bin"), &pattern(24 << 20, 2));
    write(&w.join("tree/x.txt"), b"x");
    write(&w.join("tree/sub/y.txt"), b"yy");
    write(&w.join("tree/sub/z.bin"), &pattern(3 << 20, 3));
    std::fs::create_dir_all(w.join("tree/emptydir")).unwrap();

    // Several files into a directory, one of them with a space in its name.
    let out = scp(
        &srv,
        &key,
        &[
            "a.bin",
            "empty.bin",
            "s p.txt",
            "big.bin",
            &remote("scpu", "/"),
        ],
        w,
    )
    .await;
    assert_success(&out, "scp upload of files");
    for name in ["a.bin", "empty.bin", "s p.txt", "big.bin"] {
        assert!(
            std::fs::read(home.join(name)).unwrap() == std::fs::read(w.join(name)).unwrap(),
            "{name}"
        );
    }
    // A new name for one file.
    let out = scp(&srv, &key, &["a.bin", &remote("scpu", "/renamed.bin")], w).await;
    assert_success(&out, "scp upload to a new name");
    assert!(std::fs::read(home.join("renamed.bin")).unwrap() == pattern(1 << 20, 1));
    // -r to a new name creates it; to an existing directory, goes inside it.
    let out = scp(&srv, &key, &["-r", "tree", &remote("scpu", "/newtree")], w).await;
    assert_success(&out, "scp -r upload to a new name");
    same_tree(&w.join("tree"), &home.join("newtree"));
    assert!(home.join("newtree/emptydir").is_dir());
    let out = scp(&srv, &key, &["-r", "tree", &remote("scpu", "/newtree")], w).await;
    assert_success(&out, "scp -r upload into a directory");
    same_tree(&w.join("tree"), &home.join("newtree/tree"));
    // -p: times and mode travel.
    let dated = w.join("dated.sh");
    write(&dated, b"#!/bin/sh\n");
    std::fs::set_permissions(&dated, std::os::unix::fs::PermissionsExt::from_mode(0o751)).unwrap();
    let st = std::process::Command::new("touch")
        .args(["-d", "2001-02-03 04:05:06 UTC"])
        .arg(&dated)
        .status()
        .unwrap();
    assert!(st.success());
    let out = scp(
        &srv,
        &key,
        &["-p", "dated.sh", &remote("scpu", "/dated.sh")],
        w,
    )
    .await;
    assert_success(&out, "scp -p upload");
    let meta = std::fs::metadata(home.join("dated.sh")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.mtime(), 981_173_106);
    assert_eq!(meta.mode() & 0o777, 0o751);

    // Downloads: a tree, wildcards (expanded by the server), an escaped space, -p.
    let dl = tempfile::tempdir().unwrap();
    let d = dl.path();
    let out = scp(&srv, &key, &["-r", &remote("scpu", "/newtree"), "got"], d).await;
    assert_success(&out, "scp -r download");
    same_tree(&home.join("newtree"), &d.join("got"));
    std::fs::create_dir(d.join("wild")).unwrap();
    let out = scp(&srv, &key, &[&remote("scpu", "/*.bin"), "wild/"], d).await;
    assert_success(&out, "scp download with a wildcard");
    let mut got: Vec<_> = std::fs::read_dir(d.join("wild"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, ["a.bin", "big.bin", "empty.bin", "renamed.bin"]);
    assert!(std::fs::read(d.join("wild/big.bin")).unwrap() == pattern(24 << 20, 2));
    let out = scp(
        &srv,
        &key,
        &[&remote("scpu", "/newtree/sub/?.txt"), "one.txt"],
        d,
    )
    .await;
    assert_success(&out, "scp download of a wildcard matching one file");
    assert_eq!(std::fs::read(d.join("one.txt")).unwrap(), b"yy");
    let out = scp(&srv, &key, &[&remote("scpu", "/s\\ p.txt"), "sp.txt"], d).await;
    assert_success(&out, "scp download of an escaped name");
    assert_eq!(std::fs::read(d.join("sp.txt")).unwrap(), b"spaces");
    let out = scp(
        &srv,
        &key,
        &["-p", &remote("scpu", "/dated.sh"), "dated.sh"],
        d,
    )
    .await;
    assert_success(&out, "scp -p download");
    assert_eq!(
        std::fs::metadata(d.join("dated.sh")).unwrap().mtime(),
        981_173_106
    );

    // The transfers were logged as SCP.
    let logged = |sender: &str| {
        logs.find(|l| {
            l["sender"] == sender
                && l["username"] == "scpu"
                && l["protocol"] == "SCP"
                && l["file_path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("big.bin"))
        })
    };
    assert!(
        logged("Upload").is_some(),
        "upload of big.bin logged as SCP"
    );
    assert!(
        logged("Download").is_some(),
        "download of big.bin logged as SCP"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_is_off_unless_enabled_and_other_commands_are_refused() {
    let srv = TestServer::start().await;
    let key = keygen(srv.dir.path(), "ed25519");
    srv.add_user("noscp", None, &[&key], &all_perms()).await;
    let work = tempfile::tempdir().unwrap();
    write(&work.path().join("f"), b"data");
    let out = scp(&srv, &key, &["f", &remote("noscp", "/f")], work.path()).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not enabled"), "{}", stderr(&out));
    assert!(!srv.home("noscp").join("f").exists());
    // Modern scp (SFTP mode) keeps working.
    let mut cmd = openssh_command("scp", srv.addr, &key);
    cmd.args(["f", &remote("noscp", "/f")])
        .current_dir(work.path());
    let out = run_with_input(cmd, b"").await;
    assert_success(&out, "scp in SFTP mode");
    assert_eq!(std::fs::read(srv.home("noscp").join("f")).unwrap(), b"data");
    // Anything else: a message and a shell's exit status, nothing run.
    for (command, status, says) in [
        ("ls -la", 127, "not supported"),
        ("sh -c 'touch /tmp/pwned'", 127, "not supported"),
        ("md5sum 'unbalanced", 1, "unbalanced"),
    ] {
        let mut cmd = openssh_command("ssh", srv.addr, &key);
        cmd.arg("noscp@127.0.0.1").arg(command);
        let out = run_with_input(cmd, b"").await;
        assert_eq!(
            out.status.code(),
            Some(status),
            "{command}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains(says), "{command}: {}", stderr(&out));
    }
    assert!(!Path::new("/tmp/pwned").exists());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_applies_permissions_quota_and_confinement() {
    let srv = TestServer::start_with(scp_on, Tuning::default()).await;
    let key = keygen(srv.dir.path(), "ed25519");
    // Download and list only.
    srv.add_user(
        "ro",
        None,
        &[&key],
        &[Permission::List, Permission::Download],
    )
    .await;
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    write(&w.join("f"), b"data");
    write(&w.join("tree/x"), b"x");
    let out = scp(&srv, &key, &["f", &remote("ro", "/f")], w).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    assert!(!srv.home("ro").join("f").exists());
    let out = scp(&srv, &key, &["-r", "tree", &remote("ro", "/tree")], w).await;
    assert!(!out.status.success());
    assert!(!srv.home("ro").join("tree").exists());

    // A drop box (upload and create dirs, no list): files and trees go into a directory.
    srv.add_user(
        "drop",
        None,
        &[&key],
        &[Permission::Upload, Permission::CreateDirs],
    )
    .await;
    std::fs::create_dir_all(srv.home("drop").join("in")).unwrap();
    let out = scp(&srv, &key, &["-d", "f", &remote("drop", "/in")], w).await;
    assert_success(&out, "upload into a directory without the list permission");
    assert_eq!(
        std::fs::read(srv.home("drop").join("in/f")).unwrap(),
        b"data"
    );
    let out = scp(&srv, &key, &["-r", "tree", &remote("drop", "/in")], w).await;
    assert_success(&out, "tree into a directory without the list permission");
    assert_eq!(
        std::fs::read(srv.home("drop").join("in/tree/x")).unwrap(),
        b"x"
    );
    // ... and still reads nothing.
    let dl = tempfile::tempdir().unwrap();
    let out = scp(&srv, &key, &[&remote("drop", "/in/f"), "f"], dl.path()).await;
    assert!(!out.status.success());
    assert!(!dl.path().join("f").exists());

    // Quota: a file whose C line is past the limit is refused before its data is sent.
    let mut quota = srv.add_user("q", None, &[&key], &all_perms()).await;
    quota.quota_size = 100_000;
    srv.core().provider().update_user(quota).await.unwrap();
    write(&w.join("small"), &pattern(10_000, 1));
    write(&w.join("large"), &pattern(200_000, 2));
    let out = scp(&srv, &key, &["small", "large", &remote("q", "/")], w).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("quota"), "{}", stderr(&out));
    assert!(srv.home("q").join("small").exists());
    assert!(!srv.home("q").join("large").exists());

    // Confinement: `..` stays in the home, a symlink leading out is refused.
    let escape = format!("..{}/escaped-by-scp", "/..".repeat(20));
    let out = scp(&srv, &key, &["f", &remote("q", &escape)], w).await;
    assert_success(&out, "scp to ../ lands in the home");
    assert_eq!(
        std::fs::read(srv.home("q").join("escaped-by-scp")).unwrap(),
        b"data"
    );
    assert!(!srv.dir.path().join("escaped-by-scp").exists());
    assert!(!Path::new("/escaped-by-scp").exists());
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), srv.home("q").join("out")).unwrap();
    let out = scp(&srv, &key, &["f", &remote("q", "/out/f")], w).await;
    assert!(!out.status.success());
    assert!(!outside.path().join("f").exists());
    write(&outside.path().join("secret"), b"secret");
    let dl = tempfile::tempdir().unwrap();
    let out = scp(&srv, &key, &[&remote("q", "/out/secret"), "s"], dl.path()).await;
    assert!(!out.status.success());
    assert!(!dl.path().join("s").exists());
    let out = scp(&srv, &key, &[&remote("q", "/out/*"), "."], dl.path()).await;
    assert!(!out.status.success());
    assert!(!dl.path().join("secret").exists());
    srv.stop().await;
}

/// A raw `exec` channel: what the server says on stdout and stderr, and its exit status.
struct Exec {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: Option<u32>,
}

/// Runs `command`, sends `input` (then EOF unless `hold_open`), and collects everything
/// until the channel closes (at most 30 s).
async fn exec_raw(
    srv: &TestServer,
    key: &TestKey,
    command: &str,
    input: &[&[u8]],
    eof: bool,
) -> Exec {
    let handle = ssh_connect(srv.addr, "raw", Credential::Key(&key.private()))
        .await
        .unwrap();
    let mut channel = handle.channel_open_session().await.unwrap();
    channel.exec(true, command.as_bytes()).await.unwrap();
    for chunk in input {
        if channel
            .data_bytes(Bytes::copy_from_slice(chunk))
            .await
            .is_err()
        {
            break;
        }
    }
    if eof {
        let _ = channel.eof().await;
    }
    let mut out = Exec {
        stdout: Vec::new(),
        stderr: Vec::new(),
        status: None,
    };
    let collect = async {
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, .. } => out.stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => out.status = Some(exit_status),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), collect).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_scp_input_gets_an_error_and_publishes_nothing() {
    let srv = TestServer::start_with(
        |c| {
            scp_on(c);
            c.sftpd.upload_mode = 1;
        },
        Tuning::default(),
    )
    .await;
    let key = keygen(srv.dir.path(), "ed25519");
    let mut user = srv.add_user("raw", None, &[&key], &all_perms()).await;
    user.quota_size = 1 << 20;
    srv.core().provider().update_user(user).await.unwrap();
    let home = srv.home("raw");
    let fatal = |e: &Exec, says: &str| {
        assert_eq!(
            e.status,
            Some(1),
            "exit status; stdout {:?}",
            String::from_utf8_lossy(&e.stdout)
        );
        let text = String::from_utf8_lossy(&e.stdout);
        assert!(text.contains(says), "{says:?} not in {text:?}");
    };
    for (lines, says) in [
        (&b"C0644 18446744073709551616 f\n"[..], "size out of range"),
        (b"C0644 -5 f\n", "bad size"),
        (b"C0644 five f\n", "bad size"),
        (b"C0644 5 ../f\n", "unexpected file name"),
        (b"C0644 5 ..\n", "unexpected file name"),
        (b"C0644 5 /etc/passwd\n", "unexpected file name"),
        (b"D0755 0 a/b\n", "unexpected file name"),
        (b"Q junk\n", "unknown control line"),
        (b"E\n", "E without a directory"),
    ] {
        let e = exec_raw(&srv, &key, "scp -t /", &[lines], true).await;
        fatal(&e, says);
    }
    // -d: the target must be a directory.
    std::fs::write(home.join("plain"), b"p").unwrap();
    let e = exec_raw(&srv, &key, "scp -d -t /plain", &[], true).await;
    fatal(&e, "/plain: Not a directory");
    std::fs::remove_file(home.join("plain")).unwrap();
    // Past the quota (and past anything): refused at the C line, no data asked for.
    let e = exec_raw(
        &srv,
        &key,
        "scp -t /",
        &[b"C0644 9223372036854775807 huge\n"],
        true,
    )
    .await;
    assert_eq!(e.status, Some(1));
    assert!(
        String::from_utf8_lossy(&e.stdout).contains("quota"),
        "{:?}",
        e.stdout
    );
    assert!(!home.join("huge").exists());
    // A client that stops in the middle of a file: nothing published (atomic mode).
    let e = exec_raw(
        &srv,
        &key,
        "scp -t /",
        &[b"C0644 1000 partial\n", &[7u8; 400]],
        true,
    )
    .await;
    assert_eq!(e.status, Some(1));
    // A file whose final acknowledgement is missing (the stream ends instead).
    let e = exec_raw(&srv, &key, "scp -t /", &[b"C0644 4 noack\n", b"abcd"], true).await;
    assert_eq!(e.status, Some(1));
    // A client reporting its own failure after the data.
    let e = exec_raw(
        &srv,
        &key,
        "scp -t /",
        &[b"C0644 4 failed\n", b"abcd\x01read error\n"],
        true,
    )
    .await;
    assert_eq!(e.status, Some(1));
    // A name with a newline inside is cut at the newline: the rest is garbage.
    let e = exec_raw(&srv, &key, "scp -t /", &[b"C0644 4 a\nb\n"], true).await;
    assert_eq!(e.status, Some(1));
    // 8 MiB of garbage without a newline: refused after one line's worth.
    let garbage = vec![b'C'; 1 << 20];
    let chunks: Vec<&[u8]> = (0..8).map(|_| &garbage[..]).collect();
    let e = exec_raw(&srv, &key, "scp -t /", &chunks, true).await;
    fatal(&e, "longer than");
    // Deeply nested directories are bounded.
    let deep: Vec<u8> = b"D0755 0 d\n".repeat(200);
    let e = exec_raw(&srv, &key, "scp -t /", &[&deep], true).await;
    fatal(&e, "nested deeper");
    let mut left: Vec<_> = std::fs::read_dir(&home)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "d")
        .collect();
    left.sort();
    assert!(
        left.is_empty(),
        "nothing published or left behind: {left:?}"
    );
    // A good upload still works after all that, and so does a download.
    let e = exec_raw(
        &srv,
        &key,
        "scp -t /",
        &[b"C0644 4 good\n", b"abcd\0"],
        true,
    )
    .await;
    assert_eq!(
        e.status,
        Some(0),
        "{:?}",
        String::from_utf8_lossy(&e.stdout)
    );
    assert_eq!(e.stdout, b"\0\0\0");
    assert_eq!(std::fs::read(home.join("good")).unwrap(), b"abcd");
    let e = exec_raw(&srv, &key, "scp -f /good", &[b"\0", b"\0", b"\0"], true).await;
    assert_eq!(e.status, Some(0));
    assert_eq!(e.stdout, b"C0644 4 good\nabcd\0");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_and_scp_on_one_connection_are_two_sessions() {
    let logs = Logs::install();
    let srv = TestServer::start_with(
        scp_on,
        Tuning {
            http_port: Some(0),
            ..Tuning::default()
        },
    )
    .await;
    let key = keygen(srv.dir.path(), "ed25519");
    srv.add_user("both", None, &[&key], &all_perms()).await;
    let handle = ssh_connect(srv.addr, "both", Credential::Key(&key.private()))
        .await
        .unwrap();
    let sftp = handle.channel_open_session().await.unwrap();
    sftp.request_subsystem(true, "sftp").await.unwrap();
    let mut scp = handle.channel_open_session().await.unwrap();
    scp.exec(true, &b"scp -t /viascp"[..]).await.unwrap();
    // The SCP upload waits half-way while the list is taken.
    scp.data_bytes(Bytes::from_static(b"C0644 8 viascp\nabcd"))
        .await
        .unwrap();
    let list = loop {
        let list = srv.core().registry().list();
        if list.iter().any(|c| !c.active_transfers.is_empty()) {
            break list;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut protocols: Vec<_> = list.iter().map(|c| c.protocol).collect();
    protocols.sort();
    assert_eq!(protocols, ["SCP", "SFTP"]);
    let scp_entry = list.iter().find(|c| c.protocol == "SCP").unwrap();
    assert_eq!(scp_entry.active_transfers.len(), 1);
    assert_eq!(scp_entry.active_transfers[0].path, "/viascp");
    let sftp_entry = list.iter().find(|c| c.protocol == "SFTP").unwrap();
    assert!(sftp_entry.active_transfers.is_empty());
    // One SSH connection: the ids share its prefix.
    let prefix = |id: &str| id.split('_').next().unwrap().to_string();
    assert_eq!(
        prefix(&scp_entry.connection_id),
        prefix(&sftp_entry.connection_id)
    );
    assert_eq!(srv.core().registry().sessions_of("both"), 1);
    // The API lists both the same way.
    let http = srv.running.as_ref().unwrap().http_addr.unwrap();
    let body: serde_json::Value = reqwest::get(format!("http://{http}/api/v1/connection"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body.as_array().unwrap().len(), 2);
    scp.data_bytes(Bytes::from_static(b"efgh\0")).await.unwrap();
    scp.eof().await.unwrap();
    while let Some(msg) = scp.wait().await {
        if let ChannelMsg::ExitStatus { exit_status } = msg {
            assert_eq!(exit_status, 0);
            break;
        }
    }
    assert_eq!(
        std::fs::read(srv.home("both").join("viascp")).unwrap(),
        b"abcdefgh"
    );
    let line = logs
        .find(|l| l["sender"] == "Upload" && l["username"] == "both")
        .expect("upload logged");
    assert_eq!(line["protocol"], "SCP");
    assert_eq!(line["connection_id"], scp_entry.connection_id.as_str());
    drop(sftp);
    srv.stop().await;
}

/// The same with paramiko: one SSH connection, an SFTP channel and an SCP channel, both
/// listed by `GET /api/v1/connection` with their own protocol and transfers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paramiko_runs_sftp_and_scp_side_by_side_on_one_connection() {
    if !paramiko_available() {
        return;
    }
    let srv = TestServer::start_with(
        scp_on,
        Tuning {
            http_port: Some(0),
            ..Tuning::default()
        },
    )
    .await;
    srv.add_user("pside", Some("pw"), &[], &all_perms()).await;
    let http = srv.running.as_ref().unwrap().http_addr.unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/paramiko_channels.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .args([
            &srv.addr.port().to_string(),
            "pside",
            "pw",
            &format!("http://{http}"),
        ])
        .output()
        .await
        .unwrap();
    assert_success(&out, "paramiko_channels.py");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["exit"], 0);
    assert_eq!(v["size"], 8);
    assert_eq!(v["sftp_listing"], serde_json::json!(["dir"]));
    let listed = v["listed"].as_array().unwrap();
    let mut protocols: Vec<&str> = listed
        .iter()
        .map(|c| c["protocol"].as_str().unwrap())
        .collect();
    protocols.sort();
    assert_eq!(protocols, ["SCP", "SFTP"], "{listed:?}");
    let scp = listed.iter().find(|c| c["protocol"] == "SCP").unwrap();
    assert_eq!(scp["active_transfers"][0]["path"], "/dir/viascp");
    assert_eq!(scp["active_transfers"][0]["operation_type"], "upload");
    let sftp = listed.iter().find(|c| c["protocol"] == "SFTP").unwrap();
    assert_eq!(sftp["active_transfers"], serde_json::json!([]));
    let conn_of = |c: &serde_json::Value| {
        c["connection_id"]
            .as_str()
            .unwrap()
            .split('_')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(conn_of(scp), conn_of(sftp));
    assert_eq!(
        std::fs::read(srv.home("pside").join("dir/viascp")).unwrap(),
        b"abcdefgh"
    );
    srv.stop().await;
}
