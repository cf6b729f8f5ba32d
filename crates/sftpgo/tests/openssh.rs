//! End-to-end tests with the real OpenSSH `sftp` client.

mod common;

use common::*;
use sftpgo::service::Tuning;
use sftpgo_provider::Permission;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_download_integrity_with_ed25519_key() {
    let srv = TestServer::start().await;
    let key = keygen(srv.dir.path(), "ed25519");
    srv.add_user("alice", None, &[&key], &all_perms()).await;
    let work = tempfile::tempdir().unwrap();
    let sizes = [0usize, 1, 1 << 20, 64 << 20];
    let mut batch = String::new();
    for (i, size) in sizes.iter().enumerate() {
        std::fs::write(
            work.path().join(format!("in{i}")),
            pattern(*size, i as u64 + 7),
        )
        .unwrap();
        batch += &format!("put in{i} up{i}\nget up{i} out{i}\n");
    }
    let out = sftp_batch(srv.addr, "alice", Login::Key(&key), &batch, work.path()).await;
    assert_success(&out, "sftp put/get");
    for (i, size) in sizes.iter().enumerate() {
        let expected = pattern(*size, i as u64 + 7);
        let stored = std::fs::read(srv.home("alice").join(format!("up{i}"))).unwrap();
        assert!(
            stored == expected,
            "uploaded file {i} ({size} bytes) differs"
        );
        let back = std::fs::read(work.path().join(format!("out{i}"))).unwrap();
        assert!(
            back == expected,
            "downloaded file {i} ({size} bytes) differs"
        );
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_survives_several_rekeys() {
    // Rekey every 4 MiB: a 48 MiB upload and download crosses a dozen key exchanges.
    let tuning = Tuning {
        rekey_bytes: Some(4 << 20),
        ..Tuning::default()
    };
    let srv = TestServer::start_with(|_| {}, tuning).await;
    let key = keygen(srv.dir.path(), "ed25519");
    srv.add_user("rekey", None, &[&key], &all_perms()).await;
    let work = tempfile::tempdir().unwrap();
    let data = pattern(48 << 20, 99);
    std::fs::write(work.path().join("big"), &data).unwrap();
    let out = sftp_batch(
        srv.addr,
        "rekey",
        Login::Key(&key),
        "put big big\nget big back\n",
        work.path(),
    )
    .await;
    assert_success(&out, "sftp across rekeys");
    assert!(std::fs::read(srv.home("rekey").join("big")).unwrap() == data);
    assert!(std::fs::read(work.path().join("back")).unwrap() == data);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_with_ecdsa_and_rsa_keys() {
    let srv = TestServer::start().await;
    let ecdsa = keygen(srv.dir.path(), "ecdsa");
    let rsa = keygen(srv.dir.path(), "rsa");
    srv.add_user("keys", None, &[&ecdsa, &rsa], &all_perms())
        .await;
    let work = tempfile::tempdir().unwrap();
    for key in [&ecdsa, &rsa] {
        let out = sftp_batch(srv.addr, "keys", Login::Key(key), "pwd\n", work.path()).await;
        assert_success(&out, "key login");
    }
    // RSA with each SHA-2 signature algorithm explicitly.
    for alg in ["rsa-sha2-256", "rsa-sha2-512"] {
        let out = tokio::process::Command::new("sftp")
            .current_dir(work.path())
            .args(["-b", "/dev/null", "-P", &srv.addr.port().to_string()])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
            ])
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                &format!("PubkeyAcceptedAlgorithms={alg}"),
                "-i",
            ])
            .arg(&rsa.path)
            .arg("keys@127.0.0.1")
            .output()
            .await
            .unwrap();
        assert_success(&out, alg);
    }
    // An unknown key is refused.
    let other = keygen_at(&srv.dir.path().join("other"), "ed25519");
    let out = sftp_batch(srv.addr, "keys", Login::Key(&other), "pwd\n", work.path()).await;
    assert!(!out.status.success(), "an unknown key must be refused");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_logins_for_each_hash_format() {
    let srv = TestServer::start().await;
    let bcrypt = bcrypt::hash("bcrypt-secret", 4).unwrap();
    // pbkdf2-sha256, 1000 iterations, salt "salt": computed independently with Python's hashlib.
    let pbkdf2 = "$pbkdf2-sha256$1000$salt$9jHU2CnXymQrXxM/wS2PnCJlrJbbZdll1YaUUGLQARE=";
    srv.add_user("argon", Some("argon-secret"), &[], &all_perms())
        .await;
    srv.add_user("bcrypt", Some(&bcrypt), &[], &all_perms())
        .await;
    srv.add_user("pbkdf2", Some(pbkdf2), &[], &all_perms())
        .await;
    let stored = srv
        .core()
        .provider()
        .user_by_username("argon")
        .await
        .unwrap();
    assert!(
        stored
            .password
            .as_deref()
            .unwrap_or("")
            .starts_with("$argon2id$"),
        "plain passwords are stored as argon2id"
    );
    let work = tempfile::tempdir().unwrap();
    for (user, pw) in [
        ("argon", "argon-secret"),
        ("bcrypt", "bcrypt-secret"),
        ("pbkdf2", "pbkdf2-secret"),
    ] {
        let out = sftp_batch(srv.addr, user, Login::Password(pw), "pwd\n", work.path()).await;
        assert_success(&out, &format!("password login of {user}"));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Remote working directory: /"),
            "{user}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let bad = sftp_batch(
            srv.addr,
            user,
            Login::Password("wrong"),
            "pwd\n",
            work.path(),
        )
        .await;
        assert!(!bad.status.success(), "wrong password must fail for {user}");
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_of_the_openssh_client() {
    let srv = TestServer::start().await;
    let key = keygen(srv.dir.path(), "ed25519");
    srv.add_user("bob", None, &[&key], &all_perms()).await;
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("f"), b"hello world").unwrap();
    let batch = "\
mkdir d
mkdir d/sub
put f d/f
ls -l d
rename d/f d/g
ln -s g d/link
ln d/g d/hard
put f d/m
chmod 600 d/m
df -h .
cd d
pwd
get link viaLink
rm hard
cd /
rmdir d/sub
put f d/h
rename d/h d/g
ls -la d
";
    let out = sftp_batch(srv.addr, "bob", Login::Key(&key), batch, work.path()).await;
    assert_success(&out, "sftp command batch");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Remote working directory: /d"),
        "pwd after cd: {stdout}"
    );
    let home = srv.home("bob");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::read(work.path().join("viaLink")).unwrap(),
        b"hello world"
    );
    assert_eq!(
        std::fs::read_link(home.join("d/link")).unwrap().to_str(),
        Some("g")
    );
    assert!(!home.join("d/hard").exists());
    assert!(!home.join("d/sub").exists());
    assert_eq!(
        std::fs::metadata(home.join("d/m"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(std::fs::read(home.join("d/g")).unwrap(), b"hello world");
    // rm of a directory and rmdir of a non-empty one fail.
    let out = sftp_batch(srv.addr, "bob", Login::Key(&key), "rmdir d\n", work.path()).await;
    assert!(!out.status.success(), "rmdir of a non-empty dir must fail");
    assert!(home.join("d/g").exists() && !home.join("d/h").exists());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_user_cannot_write_via_openssh() {
    let srv = TestServer::start().await;
    let key = keygen(srv.dir.path(), "ed25519");
    srv.add_user(
        "ro",
        None,
        &[&key],
        &[Permission::List, Permission::Download],
    )
    .await;
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("f"), b"x").unwrap();
    let out = sftp_batch(srv.addr, "ro", Login::Key(&key), "put f f\n", work.path()).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ermission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sftp_batch(srv.addr, "ro", Login::Key(&key), "ls -l\n", work.path()).await;
    assert_success(&out, "listing");
    srv.stop().await;
}

/// OpenSSH 9's `sftp cp` (the `copy-data` extension): the copy happens on the server, with
/// the destination's quota, permissions and atomic upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_cp_copies_on_the_server() {
    let srv = TestServer::start_with(|c| c.sftpd.upload_mode = 1, Tuning::default()).await;
    let key = keygen(srv.dir.path(), "ed25519");
    let mut user = srv.add_user("copier", None, &[&key], &all_perms()).await;
    user.quota_size = 14 << 20;
    srv.core().provider().update_user(user).await.unwrap();
    let home = srv.home("copier");
    std::fs::create_dir_all(home.join("d")).unwrap();
    let data = pattern((6 << 20) + 7, 5);
    std::fs::write(home.join("src.bin"), &data).unwrap();
    std::fs::write(home.join("small"), b"small").unwrap();
    let work = tempfile::tempdir().unwrap();
    let out = sftp_batch(
        srv.addr,
        "copier",
        Login::Key(&key),
        "cp src.bin d/copy.bin\ncp small small2\n",
        work.path(),
    )
    .await;
    assert_success(&out, "sftp cp");
    assert!(std::fs::read(home.join("d/copy.bin")).unwrap() == data);
    assert_eq!(std::fs::read(home.join("small2")).unwrap(), b"small");
    // Quota (the files the test put there are not counted): 6 MiB used of 14; another
    // copy fits, a third does not, and in atomic mode nothing of it is left.
    let out = sftp_batch(
        srv.addr,
        "copier",
        Login::Key(&key),
        "cp src.bin c3\n",
        work.path(),
    )
    .await;
    assert_success(&out, "third copy");
    let out = sftp_batch(
        srv.addr,
        "copier",
        Login::Key(&key),
        "cp src.bin c4\n",
        work.path(),
    )
    .await;
    assert!(!out.status.success(), "the copy past the quota fails");
    assert!(!home.join("c4").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&home)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".sftpgo-upload"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Without the upload permission, the destination cannot be opened.
    srv.add_user(
        "reader",
        None,
        &[&key],
        &[Permission::List, Permission::Download],
    )
    .await;
    std::fs::create_dir_all(srv.home("reader")).unwrap();
    std::fs::write(srv.home("reader").join("f"), b"f").unwrap();
    let out = sftp_batch(
        srv.addr,
        "reader",
        Login::Key(&key),
        "cp f g\n",
        work.path(),
    )
    .await;
    assert!(!out.status.success());
    assert!(!srv.home("reader").join("g").exists());
    srv.stop().await;
}

/// `sftpd.setstat_mode` 1: OpenSSH `sftp`'s `chmod` and `put -p` (which sets modes and
/// times after the upload, by path and on the handle) succeed and change nothing; with
/// the default (0) they apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setstat_mode_1_accepts_and_ignores_modes_and_times() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    for (mode, applied) in [(1u8, false), (0u8, true)] {
        let srv = TestServer::start_with(|c| c.sftpd.setstat_mode = mode, Tuning::default()).await;
        let key = keygen(srv.dir.path(), "ed25519");
        srv.add_user("attrs", None, &[&key], &all_perms()).await;
        let work = tempfile::tempdir().unwrap();
        let local = work.path().join("f.txt");
        std::fs::write(&local, b"attributes\n").unwrap();
        std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o640)).unwrap();
        // An mtime far in the past, which `put -p` copies.
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        std::fs::File::options()
            .write(true)
            .open(&local)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let out = sftp_batch(
            srv.addr,
            "attrs",
            Login::Key(&key),
            "put -p f.txt p.txt\nput f.txt c.txt\nchmod 600 c.txt\n",
            work.path(),
        )
        .await;
        assert_success(&out, &format!("sftp with setstat_mode {mode}"));
        let home = srv.home("attrs");
        let p = std::fs::metadata(home.join("p.txt")).unwrap();
        let c = std::fs::metadata(home.join("c.txt")).unwrap();
        assert_eq!(std::fs::read(home.join("p.txt")).unwrap(), b"attributes\n");
        assert_eq!(p.mtime() == 1_000_000_000, applied, "mode {mode}: mtime");
        assert_eq!(
            p.mode() & 0o777 == 0o640,
            applied,
            "mode {mode}: put -p mode"
        );
        assert_eq!(c.mode() & 0o777 == 0o600, applied, "mode {mode}: chmod");
        srv.stop().await;
    }
}
