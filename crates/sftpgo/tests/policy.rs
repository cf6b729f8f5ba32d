//! Per-user policy through real clients: quota (at open, mid-transfer, exact bookkeeping),
//! bandwidth limits, ownership.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::client::{Credential, SftpClient};
use common::*;
use sftpgo::service::Tuning;
use sftpgo_provider::User;
use sftpgo_sftp::codec::{self, Extended, FileAttrs, Request, Response};

const PW: &str = "pw";

async fn user_with(srv: &TestServer, name: &str, edit: impl FnOnce(&mut User)) -> User {
    let mut u = srv.add_user(name, Some(PW), &[], &all_perms()).await;
    edit(&mut u);
    srv.core().provider().update_user(u.clone()).await.unwrap();
    u
}

/// The stored used quota, once the changes made so far are written.
async fn used(srv: &TestServer, name: &str) -> (i64, i64) {
    srv.core().quota().flush().await;
    let u = srv.core().provider().user_by_username(name).await.unwrap();
    (u.used_quota_size, u.used_quota_files)
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_past_the_size_quota_fails_midway_and_leaves_nothing_in_atomic_mode() {
    let srv = TestServer::start_with(|c| c.sftpd.upload_mode = 1, Tuning::default()).await;
    user_with(&srv, "q", |u| u.quota_size = 5_000_000).await;
    let home = srv.home("q");
    let mut c = SftpClient::connect(srv.addr, "q", Credential::Password(PW))
        .await
        .unwrap();
    c.put("/prev", &pattern(1_000_000, 1), 32 * 1024)
        .await
        .unwrap();
    assert_eq!(used(&srv, "q").await, (1_000_000, 1));
    // 10 MB against 4 MB left: a WRITE fails with "quota exceeded" part way.
    let err = c
        .put("/big", &pattern(10_000_000, 2), 32 * 1024)
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("quota exceeded") || format!("{err:#}").contains("expected OK"),
        "{err:#}"
    );
    // Overwriting /prev with too much data keeps the original.
    assert!(
        c.put("/prev", &pattern(10_000_000, 3), 32 * 1024)
            .await
            .is_err()
    );
    drop(c);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let names: Vec<String> = std::fs::read_dir(&home)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["prev".to_string()],
        "nothing of the failed uploads remains"
    );
    assert_eq!(
        std::fs::read(home.join("prev")).unwrap(),
        pattern(1_000_000, 1)
    );
    assert_eq!(
        used(&srv, "q").await,
        sftpgo_core::quota::scan(&home).unwrap()
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_count_quota_is_checked_at_open() {
    let srv = TestServer::start().await;
    user_with(&srv, "n", |u| u.quota_files = 2).await;
    let mut c = SftpClient::connect(srv.addr, "n", Credential::Password(PW))
        .await
        .unwrap();
    c.put("/a", b"1", 1).await.unwrap();
    c.put("/b", b"2", 1).await.unwrap();
    let flags = codec::SSH_FXF_WRITE | codec::SSH_FXF_CREAT | codec::SSH_FXF_TRUNC;
    assert_eq!(
        c.open("/c", flags).await.unwrap(),
        Err(codec::SSH_FX_FAILURE)
    );
    // Overwriting an existing file is still allowed.
    c.put("/a", b"11", 2).await.unwrap();
    assert_eq!(used(&srv, "n").await, (3, 2));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_upload_past_quota_fails() {
    let srv = TestServer::start().await;
    let key = keygen(srv.dir.path(), "ed25519");
    let mut u = srv.add_user("oq", None, &[&key], &all_perms()).await;
    u.quota_size = 2_000_000;
    srv.core().provider().update_user(u).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("big"), pattern(5_000_000, 9)).unwrap();
    let out = sftp_batch(
        srv.addr,
        "oq",
        Login::Key(&key),
        "put big big\n",
        work.path(),
    )
    .await;
    assert!(
        !out.status.success(),
        "the upload past the quota succeeded: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let home = srv.home("oq");
    // Standard mode: what was written stays, and the bookkeeping matches the disk.
    assert!(std::fs::metadata(home.join("big")).unwrap().len() <= 2_000_000);
    assert_eq!(
        used(&srv, "oq").await,
        sftpgo_core::quota::scan(&home).unwrap()
    );
    srv.stop().await;
}

/// xorshift, so a failing sequence can be replayed from its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_operations_keep_quota_equal_to_a_fresh_scan() {
    for (mode, seed) in [(0u8, 0x1234_5678u64), (1, 0x9abc_def1)] {
        let srv = TestServer::start_with(|c| c.sftpd.upload_mode = mode, Tuning::default()).await;
        user_with(&srv, "r", |u| {
            u.quota_size = 1 << 40;
            u.quota_files = 1 << 20;
        })
        .await;
        let home = srv.home("r");
        let mut c = SftpClient::connect(srv.addr, "r", Credential::Password(PW))
            .await
            .unwrap();
        let mut rng = Rng(seed);
        let names = ["/a", "/b", "/c", "/d/x", "/d/y", "/e"];
        let _ = c
            .status(|id| Request::Mkdir {
                id,
                path: b("/d"),
                attrs: FileAttrs::default(),
            })
            .await
            .unwrap();
        for op in 0..1000 {
            let p = names[rng.below(names.len() as u64) as usize];
            let q = names[rng.below(names.len() as u64) as usize];
            let size = rng.below(20_000) as usize;
            let (pp, qq) = (b(p), b(q));
            match rng.below(9) {
                0 | 1 => {
                    let _ = c.put(p, &pattern(size, op), 4096).await;
                }
                2 => {
                    // append
                    if let Ok(Ok(h)) = c
                        .open(
                            p,
                            codec::SSH_FXF_WRITE | codec::SSH_FXF_CREAT | codec::SSH_FXF_APPEND,
                        )
                        .await
                    {
                        let hh = h.clone();
                        let data = Bytes::from(pattern(size % 5000, op));
                        let _ = c
                            .status(|id| Request::Write {
                                id,
                                handle: hh,
                                offset: 0,
                                data,
                            })
                            .await;
                        let _ = c.close(&h).await;
                    }
                }
                3 => {
                    let attrs = FileAttrs {
                        size: Some(size as u64),
                        ..Default::default()
                    };
                    let _ = c
                        .status(|id| Request::Setstat {
                            id,
                            path: pp,
                            attrs,
                        })
                        .await;
                }
                4 => {
                    let _ = c.status(|id| Request::Remove { id, path: pp }).await;
                }
                5 => {
                    let _ = c
                        .status(|id| Request::Rename {
                            id,
                            old: pp,
                            new: qq,
                        })
                        .await;
                }
                6 => {
                    let _ = c
                        .call(|id| Request::Extended {
                            id,
                            ext: Extended::PosixRename { old: pp, new: qq },
                        })
                        .await;
                }
                7 => {
                    let _ = c
                        .call(|id| Request::Extended {
                            id,
                            ext: Extended::Hardlink { old: pp, new: qq },
                        })
                        .await;
                }
                _ => {
                    let _ = c
                        .status(|id| Request::Symlink {
                            id,
                            target: pp,
                            link: qq,
                        })
                        .await;
                }
            }
            if op % 100 == 99 {
                let scanned = sftpgo_core::quota::scan(&home).unwrap();
                assert_eq!(used(&srv, "r").await, scanned, "mode {mode}, after op {op}");
            }
        }
        srv.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_limits_pace_uploads_and_downloads() {
    let srv = TestServer::start().await;
    user_with(&srv, "slow", |u| {
        u.upload_bandwidth = 200;
        u.download_bandwidth = 400;
    })
    .await;
    let mut c = SftpClient::connect(srv.addr, "slow", Credential::Password(PW))
        .await
        .unwrap();
    let data = pattern(1_000_000, 4);
    let start = Instant::now();
    c.put("/f", &data, 32 * 1024).await.unwrap();
    let up = start.elapsed().as_secs_f64();
    let start = Instant::now();
    assert_eq!(c.get("/f").await.unwrap(), data);
    let down = start.elapsed().as_secs_f64();
    // 1 MB at 200 KB/s is 5 s, at 400 KB/s 2.5 s; generous bounds against a loaded machine.
    assert!((4.0..8.0).contains(&up), "upload took {up:.2} s");
    assert!((2.0..5.0).contains(&down), "download took {down:.2} s");
    println!("upload {up:.3} s, download {down:.3} s");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_files_belong_to_the_user_when_running_as_root() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: ownership is not applied, nothing to check");
        return;
    }
    let srv = TestServer::start_with(|c| c.sftpd.upload_mode = 1, Tuning::default()).await;
    user_with(&srv, "owned", |u| {
        u.uid = 12345;
        u.gid = 23456;
    })
    .await;
    let mut c = SftpClient::connect(srv.addr, "owned", Credential::Password(PW))
        .await
        .unwrap();
    c.put("/f", b"x", 1).await.unwrap();
    let _ = c
        .status(|id| Request::Mkdir {
            id,
            path: b("/d"),
            attrs: FileAttrs::default(),
        })
        .await
        .unwrap();
    use std::os::unix::fs::MetadataExt;
    let home = srv.home("owned");
    for p in [home.clone(), home.join("f"), home.join("d")] {
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid()), (12345, 23456), "{}", p.display());
    }
    match c
        .call(|id| Request::Stat { id, path: b("/f") })
        .await
        .unwrap()
    {
        Response::Attrs { attrs, .. } => assert_eq!(attrs.uid_gid, Some((12345, 23456))),
        other => panic!("{other:?}"),
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_uploads_leave_nothing_in_atomic_mode() {
    let srv = TestServer::start_with(|c| c.sftpd.upload_mode = 1, Tuning::default()).await;
    let key = keygen(srv.dir.path(), "ed25519");
    let mut u = srv.add_user("k", Some(PW), &[&key], &all_perms()).await;
    u.upload_bandwidth = 1000; // 1 MB/s: a 16 MB upload is still running when it is killed
    u.quota_size = 1 << 30; // tracked, so the bookkeeping can be checked
    srv.core().provider().update_user(u).await.unwrap();
    let home = srv.home("k");
    let mut c = SftpClient::connect(srv.addr, "k", Credential::Password(PW))
        .await
        .unwrap();
    c.put("/f", b"original", 8).await.unwrap();
    drop(c);
    let only_f = |home: &std::path::Path| {
        let names: Vec<String> = std::fs::read_dir(home)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names == vec!["f".to_string()]
    };
    let wait_clean = |home: std::path::PathBuf| async move {
        let start = Instant::now();
        while !only_f(&home) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "temp file left behind"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    // 1. The OpenSSH client process is killed mid-upload.
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("big"), pattern(16 << 20, 1)).unwrap();
    let mut child = tokio::process::Command::new("sftp")
        .current_dir(work.path())
        .args([
            "-b",
            "-",
            "-P",
            &srv.addr.port().to_string(),
            "-o",
            "StrictHostKeyChecking=no",
        ])
        .args([
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-i",
        ])
        .arg(&key.path)
        .arg("k@127.0.0.1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"put big f\n").await.unwrap();
    drop(stdin);
    let start = Instant::now();
    while srv
        .core()
        .registry()
        .list()
        .iter()
        .all(|c| c.active_transfers.is_empty())
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "upload never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    child.kill().await.unwrap();
    wait_clean(home.clone()).await;
    assert_eq!(std::fs::read(home.join("f")).unwrap(), b"original");
    // 2. The connection is closed by id (what the REST API's kill does) mid-upload.
    let addr = srv.addr;
    let upload = tokio::spawn(async move {
        let mut c = SftpClient::connect(addr, "k", Credential::Password(PW))
            .await
            .unwrap();
        c.put("/f", &pattern(16 << 20, 2), 32 * 1024).await
    });
    let start = Instant::now();
    let id = loop {
        if let Some(c) = srv
            .core()
            .registry()
            .list()
            .into_iter()
            .find(|c| !c.active_transfers.is_empty())
        {
            break c.connection_id;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "upload never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(srv.core().registry().close(&id));
    assert!(
        upload.await.unwrap().is_err(),
        "a killed upload cannot succeed"
    );
    wait_clean(home.clone()).await;
    assert_eq!(std::fs::read(home.join("f")).unwrap(), b"original");
    assert_eq!(used(&srv, "k").await, (8, 1));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_simultaneous_logins_for_three_sessions_admit_three() {
    let srv = TestServer::start().await;
    user_with(&srv, "three", |u| u.max_sessions = 3).await;
    let addr = srv.addr;
    let attempts: Vec<_> = (0..10)
        .map(|_| {
            tokio::spawn(async move {
                common::client::ssh_connect(addr, "three", Credential::Password(PW)).await
            })
        })
        .collect();
    let mut handles = Vec::new();
    for a in attempts {
        if let Ok(h) = a.await.unwrap() {
            handles.push(h);
        }
    }
    assert_eq!(handles.len(), 3);
    assert_eq!(srv.core().registry().sessions_of("three"), 3);
    srv.stop().await;
}

/// Writes `data` at offset 0 in 32 KiB requests; the status of the first refused one.
async fn write_until_refused(c: &mut SftpClient, handle: &Bytes, data: &[u8]) -> u32 {
    for (i, chunk) in data.chunks(32 * 1024).enumerate() {
        let (h, d) = (handle.clone(), Bytes::copy_from_slice(chunk));
        let code = c
            .status(|id| Request::Write {
                id,
                handle: h,
                offset: (i * 32 * 1024) as u64,
                data: d,
            })
            .await
            .unwrap();
        if code != codec::SSH_FX_OK {
            return code;
        }
    }
    codec::SSH_FX_OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_running_together_cannot_pass_the_size_quota_together() {
    let srv = TestServer::start_with(|c| c.sftpd.upload_mode = 1, Tuning::default()).await;
    user_with(&srv, "two", |u| u.quota_size = 1_000_000).await;
    let home = srv.home("two");
    let mut a = SftpClient::connect(srv.addr, "two", Credential::Password(PW))
        .await
        .unwrap();
    let mut b = SftpClient::connect(srv.addr, "two", Credential::Password(PW))
        .await
        .unwrap();
    let flags = codec::SSH_FXF_WRITE | codec::SSH_FXF_CREAT | codec::SSH_FXF_TRUNC;
    // Both open while nothing is used: each alone would fit.
    let ha = a.open("/a.bin", flags).await.unwrap().unwrap();
    let hb = b.open("/b.bin", flags).await.unwrap().unwrap();
    let data = pattern(600_000, 9);
    assert_eq!(
        write_until_refused(&mut a, &ha, &data).await,
        codec::SSH_FX_OK
    );
    // The second connection's upload meets the first one's 600 KB, still in progress.
    assert_eq!(
        write_until_refused(&mut b, &hb, &data).await,
        codec::SSH_FX_FAILURE,
        "the second upload is refused once both would pass 1 MB"
    );
    assert_eq!(a.close(&ha).await.unwrap(), codec::SSH_FX_OK);
    assert_ne!(b.close(&hb).await.unwrap(), codec::SSH_FX_OK);
    assert_eq!(std::fs::read(home.join("a.bin")).unwrap(), data);
    assert!(
        !home.join("b.bin").exists(),
        "the refused atomic upload left nothing"
    );
    assert_eq!(used(&srv, "two").await, (600_000, 1));
    // What the refused upload had counted is released: 400 KB fit again.
    b.put("/c.bin", &pattern(400_000, 3), 32 * 1024)
        .await
        .unwrap();
    assert_eq!(used(&srv, "two").await, (1_000_000, 2));
    assert_eq!(
        used(&srv, "two").await,
        sftpgo_core::quota::scan(&home).unwrap()
    );
    drop((a, b));
    srv.stop().await;
}

/// A row written around the API (by hand, or by an older version) that breaks the rules
/// does not log in: a home of `/`, a negative quota. Fixing it through the API does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_record_that_breaks_the_rules_does_not_log_in() {
    let logs = common::logs::Logs::install();
    let srv = TestServer::start().await;
    let backend = srv.core().provider().backend().clone();
    let hashed = sftpgo_provider::password::hash_password(PW).unwrap();
    for (name, home, quota) in [
        ("rooted", "/".to_string(), 0),
        ("negative", srv.home("negative").display().to_string(), -1),
    ] {
        let row = User {
            username: name.into(),
            password: Some(hashed.clone()),
            home_dir: home,
            quota_size: quota,
            permissions: all_perms(),
            ..User::default()
        };
        backend.insert_user(&row).await.unwrap();
        let e = SftpClient::connect(srv.addr, name, Credential::Password(PW)).await;
        assert!(e.is_err(), "{name} logged in");
        assert!(
            logs.find(|l| l["message"] == "login failed"
                && l["username"] == name
                && l["reason"]
                    .as_str()
                    .unwrap_or("")
                    .contains("the user record is refused"))
                .is_some(),
            "{name}: no log line"
        );
    }
    let mut fixed = srv
        .core()
        .provider()
        .user_by_username("negative")
        .await
        .unwrap();
    fixed.quota_size = 0;
    fixed.password = Some(PW.into());
    // A home of `/` overlaps every home: other users cannot be changed until it is fixed,
    // and the error names it.
    let e = srv
        .core()
        .provider()
        .update_user(fixed.clone())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("\"rooted\""), "{e}");
    let rooted = srv
        .core()
        .provider()
        .user_by_username("rooted")
        .await
        .unwrap();
    srv.core().provider().delete_user(rooted.id).await.unwrap();
    srv.core().provider().update_user(fixed).await.unwrap();
    let c = SftpClient::connect(srv.addr, "negative", Credential::Password(PW)).await;
    assert!(c.is_ok(), "fixed record logs in");
    drop(c);
    srv.stop().await;
}
