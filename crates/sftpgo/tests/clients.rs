//! Interoperability with the SFTP clients people run besides OpenSSH's: paramiko (Python
//! scripts), rclone (sync jobs), lftp (mirroring) and curl (libssh2). Each drives a real
//! session against an in-process server and every byte it moved is compared here.
//!
//! The clients come from PyPI and Debian (`.ci/run` installs them). Where one is missing
//! the test says so and passes, unless `SFTPGO_REQUIRE_CLIENTS=1` (set by `.ci/run`), where
//! a missing client fails it: CI always runs them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::*;

/// A server with one user who logs in by key or password, the user's key, and a work dir
/// for the client's files.
async fn server_with_user(
    name: &str,
    password: Option<&str>,
) -> (TestServer, TestKey, tempfile::TempDir) {
    let srv = TestServer::start().await;
    let key = keygen(srv.dir.path(), "ed25519");
    srv.add_user(name, password, &[&key], &all_perms()).await;
    (srv, key, tempfile::tempdir().unwrap())
}

async fn run(cmd: &mut tokio::process::Command, what: &str) -> Output {
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("{what} finished in time"))
        .unwrap_or_else(|e| panic!("{what} runs: {e}"));
    assert_success(&out, what);
    out
}

/// A tree of files of assorted sizes (empty, odd, several chunks of any client's request
/// size), with a nested dir; returns (relative path, content) pairs.
fn make_tree(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let sizes = [0usize, 1, 4095, 32 * 1024 + 3, 1 << 20, (3 << 20) + 17];
    let mut files = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let rel = if i % 2 == 0 {
            PathBuf::from(format!("f{i}.bin"))
        } else {
            PathBuf::from(format!("sub/deeper/f{i}.bin"))
        };
        let data = pattern(*size, 1000 + i as u64);
        std::fs::create_dir_all(root.join(&rel).parent().unwrap()).unwrap();
        std::fs::write(root.join(&rel), &data).unwrap();
        files.push((rel, data));
    }
    files
}

fn assert_tree(root: &Path, files: &[(PathBuf, Vec<u8>)], what: &str) {
    for (rel, data) in files {
        let got = std::fs::read(root.join(rel))
            .unwrap_or_else(|e| panic!("{what}: {} missing: {e}", rel.display()));
        assert!(
            got == *data,
            "{what}: {} differs ({} bytes, wanted {})",
            rel.display(),
            got.len(),
            data.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paramiko_scripts_work() {
    if !client_available(
        "paramiko",
        &["python3", "-c", "import paramiko"],
        "python3 -m pip install paramiko",
    ) {
        return;
    }
    let (srv, key, work) = server_with_user("py", Some("py-secret")).await;
    let big = pattern((5 << 20) + 123, 5);
    let small = pattern(7000, 6);
    std::fs::write(work.path().join("big.bin"), &big).unwrap();
    std::fs::write(work.path().join("small.bin"), &small).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/paramiko_session.py");
    let out = run(
        tokio::process::Command::new("python3")
            .arg(&script)
            .arg(srv.addr.port().to_string())
            .arg("py")
            .arg(&key.path)
            .arg("py-secret")
            .arg(work.path()),
        "paramiko session",
    )
    .await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("paramiko: ok"));
    assert!(std::fs::read(srv.home("py").join("big.bin")).unwrap() == big);
    assert!(std::fs::read(work.path().join("big.back")).unwrap() == big);
    assert_eq!(
        std::fs::read(srv.home("py").join("edit.bin")).unwrap(),
        b"0Qab"
    );
    assert!(!srv.home("py").join("d").exists(), "the script removed d");
    srv.stop().await;
}

/// rclone's sftp backend: many requests in flight per file, modification times set after
/// each upload, server-side moves, recursive listing and deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_copies_checks_and_moves_a_tree() {
    if !client_available("rclone", &["rclone", "version"], "apt-get install rclone") {
        return;
    }
    let (srv, key, work) = server_with_user("rc", None).await;
    let src = work.path().join("src");
    let files = make_tree(&src);
    let rclone = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new("rclone");
        cmd.env("RCLONE_CONFIG", work.path().join("rclone.conf"))
            .args(["--sftp-host", "127.0.0.1"])
            .args(["--sftp-port", &srv.addr.port().to_string()])
            .args(["--sftp-user", "rc"])
            .arg("--sftp-key-file")
            .arg(&key.path)
            .args(["--retries", "1", "--low-level-retries", "1"])
            .args(args);
        cmd
    };
    let src_s = src.to_str().unwrap();
    run(&mut rclone(&["copy", src_s, ":sftp:up"]), "rclone copy up").await;
    assert_tree(&srv.home("rc").join("up"), &files, "uploaded by rclone");
    // Byte for byte, through downloads (`ssh_commands.rs` checks with the hash commands).
    run(
        &mut rclone(&["check", "--download", src_s, ":sftp:up"]),
        "rclone check --download",
    )
    .await;
    // Sizes and modification times as listed match the local files.
    let out = run(
        &mut rclone(&["lsjson", "-R", "--files-only", ":sftp:up"]),
        "rclone lsjson",
    )
    .await;
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), files.len(), "{listed:?}");
    for (rel, data) in &files {
        let entry = listed
            .iter()
            .find(|e| e["Path"] == rel.to_str().unwrap())
            .unwrap_or_else(|| panic!("{} not listed: {listed:?}", rel.display()));
        assert_eq!(entry["Size"], data.len() as u64, "{entry}");
        let local_mtime = std::fs::metadata(src.join(rel))
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let remote_mtime = std::fs::metadata(srv.home("rc").join("up").join(rel))
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(remote_mtime, local_mtime, "mtime of {}", rel.display());
    }
    let back = work.path().join("back");
    run(
        &mut rclone(&["copy", ":sftp:up", back.to_str().unwrap()]),
        "rclone copy down",
    )
    .await;
    assert_tree(&back, &files, "downloaded by rclone");
    // Server-side move, then a recursive delete.
    run(
        &mut rclone(&["moveto", ":sftp:up/f0.bin", ":sftp:up/moved.bin"]),
        "rclone moveto",
    )
    .await;
    let home = srv.home("rc");
    assert!(!home.join("up/f0.bin").exists() && home.join("up/moved.bin").exists());
    run(&mut rclone(&["purge", ":sftp:up/sub"]), "rclone purge").await;
    assert!(!home.join("up/sub").exists(), "purged");
    assert!(home.join("up/f2.bin").exists(), "purge kept the rest");
    srv.stop().await;
}

/// curl's SFTP is libssh2's: password and key logins, uploads creating missing dirs,
/// ranged downloads, resumed (appending) uploads, directory listings and the quote
/// commands (rename, chmod, rm, rmdir).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_libssh2_transfers_and_quote_commands() {
    if !client_available(
        "curl with SFTP",
        &["sh", "-c", "curl -V | grep -q '^Protocols:.* sftp'"],
        "apt-get install curl",
    ) {
        return;
    }
    let (srv, key, work) = server_with_user("cu", Some("cu-secret")).await;
    let data = pattern((2 << 20) + 77, 31);
    std::fs::write(work.path().join("data.bin"), &data).unwrap();
    let url = |path: &str| format!("sftp://127.0.0.1:{}/{path}", srv.addr.port());
    let curl = |password: bool| {
        let mut cmd = tokio::process::Command::new("curl");
        cmd.current_dir(work.path())
            .args(["-sS", "-k", "--max-time", "120"]);
        if password {
            cmd.args(["-u", "cu:cu-secret"]);
        } else {
            cmd.args(["-u", "cu:"])
                .arg("--key")
                .arg(&key.path)
                .arg("--pubkey")
                .arg(key.path.with_extension("pub"));
        }
        cmd
    };
    let home = srv.home("cu");
    // Upload into dirs that do not exist yet, by key.
    run(
        curl(false)
            .args(["--ftp-create-dirs", "-T", "data.bin"])
            .arg(url("a/b/data.bin")),
        "curl upload (key)",
    )
    .await;
    assert!(std::fs::read(home.join("a/b/data.bin")).unwrap() == data);
    // Download whole and a range, by password.
    run(
        curl(true).args(["-o", "back.bin"]).arg(url("a/b/data.bin")),
        "curl download",
    )
    .await;
    assert!(std::fs::read(work.path().join("back.bin")).unwrap() == data);
    let out = run(
        curl(true)
            .args(["-r", "1000-1999"])
            .arg(url("a/b/data.bin")),
        "curl ranged download",
    )
    .await;
    assert_eq!(out.stdout, data[1000..2000]);
    // Resume an upload cut short: the server holds the first part, curl appends the rest.
    std::fs::write(home.join("a/part.bin"), &data[..300_000]).unwrap();
    run(
        curl(true)
            .args(["-C", "-", "-T", "data.bin"])
            .arg(url("a/part.bin")),
        "curl resumed upload",
    )
    .await;
    assert!(std::fs::read(home.join("a/part.bin")).unwrap() == data);
    // A listing names what is there.
    let out = run(curl(true).arg(url("a/")), "curl listing").await;
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains(" part.bin") && listing.contains(" b"),
        "{listing}"
    );
    // Quote commands run after the transfer (-Q "-..." would run before it).
    run(
        curl(true)
            .args(["-Q", "rename /a/part.bin /a/renamed.bin"])
            .args(["-Q", "chmod 600 /a/renamed.bin"])
            .args(["-Q", "rm /a/b/data.bin"])
            .args(["-Q", "rmdir /a/b"])
            .args(["-o", "/dev/null"])
            .arg(url("a/renamed.bin")),
        "curl quote commands",
    )
    .await;
    assert!(!home.join("a/part.bin").exists());
    let meta = std::fs::metadata(home.join("a/renamed.bin")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    assert!(!home.join("a/b").exists(), "rmdir after rm");
    // Outside the home dir there is nothing to reach: /.. is the home itself.
    let out = run(curl(true).arg(url("../../")), "curl listing of /../..").await;
    assert!(String::from_utf8_lossy(&out.stdout).contains(" a"));
    // A wrong password fails the transfer (curl exit 67: login denied).
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-k", "-u", "cu:wrong"])
        .arg(url("a/renamed.bin"))
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(67), "{out:?}");
    srv.stop().await;
}

/// lftp speaks SFTP over OpenSSH's `ssh` (answering its password prompt itself): a
/// mirror up over parallel connections, a mirror back, a listing, a recursive delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lftp_mirrors_a_tree_both_ways() {
    if !client_available("lftp", &["lftp", "--version"], "apt-get install lftp") {
        return;
    }
    let (srv, key, work) = server_with_user("lf", Some("lf-secret")).await;
    let files = make_tree(&work.path().join("src"));
    let ssh_opts = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR";
    let lftp = |connect: String, user: &str, script: &str| {
        let mut cmd = tokio::process::Command::new("lftp");
        cmd.current_dir(work.path()).arg("-c").arg(format!(
            "set sftp:connect-program '{connect}'; set net:max-retries 1; \
             open -u {user} -p {} sftp://127.0.0.1; {script}",
            srv.addr.port()
        ));
        cmd
    };
    let by_key = format!(
        "ssh -a -x -i {} -o IdentitiesOnly=yes -o PasswordAuthentication=no {ssh_opts}",
        key.path.display()
    );
    run(
        &mut lftp(by_key.clone(), "lf,unused", "mirror -R --parallel=3 src up"),
        "lftp mirror -R (key)",
    )
    .await;
    assert_tree(&srv.home("lf").join("up"), &files, "uploaded by lftp");
    let by_password = format!("ssh -a -x -o PubkeyAuthentication=no {ssh_opts}");
    let out = run(
        &mut lftp(
            by_password,
            "lf,lf-secret",
            "mirror up back; cls -1 up; rm -r up/sub; cls -1 up",
        ),
        "lftp mirror, cls, rm -r (password)",
    )
    .await;
    assert_tree(&work.path().join("back"), &files, "downloaded by lftp");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        [
            "up/f0.bin",
            "up/f2.bin",
            "up/f4.bin",
            "up/sub/",
            "up/f0.bin",
            "up/f2.bin",
            "up/f4.bin"
        ],
        "{listed}"
    );
    assert!(!srv.home("lf").join("up/sub").exists());
    srv.stop().await;
}
