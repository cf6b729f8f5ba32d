//! What clients see, exactly, with real clients (paramiko, OpenSSH `sftp`): used quota in
//! the API as soon as an upload is answered, refusals at OPEN of what is known at OPEN,
//! symlinks an administrator made inside a home, uploads through symlinked names, and the
//! start-up sweep of stale temp files running beside live uploads.

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use serde_json::Value;
use sftpgo::service::Tuning;
use sftpgo_provider::{Permission, User};

const PW: &str = "view-secret";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/paramiko_open_checks.py")
}

async fn paramiko(args: &[&str]) -> Output {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("python3")
            .arg(script())
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("paramiko finished in time")
    .expect("python3 runs");
    assert_success(&out, &format!("paramiko {args:?}"));
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("ok\n"));
    out
}

/// A server in `upload_mode` with `track_quota`, the API on an ephemeral port.
async fn server(upload_mode: u8, track_quota: u8) -> TestServer {
    TestServer::start_with(
        move |c| {
            c.sftpd.upload_mode = upload_mode;
            c.data_provider.track_quota = track_quota;
        },
        Tuning {
            http_port: Some(0),
            ..Tuning::default()
        },
    )
    .await
}

/// A password user with every permission and the given quota limits; the home exists.
async fn add_user(srv: &TestServer, name: &str, quota_size: i64, quota_files: i64) -> User {
    let home = srv.home(name);
    std::fs::create_dir_all(&home).unwrap();
    srv.core()
        .provider()
        .add_user(User {
            username: name.into(),
            password: Some(PW.into()),
            home_dir: home.display().to_string(),
            permissions: vec![Permission::Any],
            quota_size,
            quota_files,
            ..User::default()
        })
        .await
        .expect("add user")
}

fn api_url(srv: &TestServer) -> String {
    format!(
        "http://{}",
        srv.running.as_ref().unwrap().http_addr.unwrap()
    )
}

/// The temp files of atomic uploads under `dir`.
fn temps_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if e
                .file_name()
                .to_string_lossy()
                .starts_with(".sftpgo-upload.")
            {
                found.push(e.path());
            }
        }
    }
    found
}

/// After each upload, overwrite, rename and remove that paramiko has been answered for,
/// GET /api/v1/user/{id}, GET /api/v1/user?username= and `sftpgo api users get` already
/// show the new used quota; after a quota scan leaves GET /api/v1/quota_scan, its totals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn used_quota_is_visible_as_soon_as_the_client_has_its_answer() {
    if !paramiko_available() {
        return;
    }
    // track_quota 2 (users with limits), atomic; track_quota 1 (everyone), in place.
    for (mode, track, limits) in [(1u8, 2u8, true), (0, 1, false)] {
        let srv = server(mode, track).await;
        let (size_limit, files_limit) = if limits { (1 << 20, 100) } else { (0, 0) };
        let user = add_user(&srv, "usage", size_limit, files_limit).await;
        let api = api_url(&srv);
        let out = paramiko(&[
            "usage",
            &srv.addr.port().to_string(),
            "usage",
            PW,
            &api,
            &user.id.to_string(),
            env!("CARGO_BIN_EXE_sftpgo"),
        ])
        .await;
        let expected = [
            ("upload", 1000, 1),
            ("overwrite", 300, 1),
            ("second", 800, 2),
            ("rename", 800, 2),
            ("rename-over", 300, 1),
            ("remove", 0, 0),
        ];
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = stdout.lines().filter(|l| *l != "ok").collect();
        assert_eq!(lines.len(), expected.len(), "{stdout}");
        for (line, (step, size, files)) in lines.iter().zip(expected) {
            let want = format!("{step} {size} {files} {size} {files} {size} {files}");
            assert_eq!(*line, want, "mode {mode}, track_quota {track}");
        }

        // A quota scan: its totals are shown once it is no longer listed as running.
        let home = srv.home("usage");
        std::fs::write(home.join("s1"), vec![1u8; 1234]).unwrap();
        std::fs::create_dir(home.join("sd")).unwrap();
        std::fs::write(home.join("sd/s2"), vec![2u8; 66]).unwrap();
        let client = reqwest::Client::new();
        let started = client
            .post(format!("{api}/api/v1/quota_scan"))
            .json(&serde_json::json!({"username": "usage"}))
            .send()
            .await
            .unwrap();
        assert_eq!(started.status(), 201);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let scans: Value = client
                .get(format!("{api}/api/v1/quota_scan"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if scans.as_array().unwrap().is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "the scan ends");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let shown: Value = client
            .get(format!("{api}/api/v1/user/{}", user.id))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            (&shown["used_quota_size"], &shown["used_quota_files"]),
            (&Value::from(1300), &Value::from(2)),
            "mode {mode}: {shown}"
        );
        srv.stop().await;
    }
}

/// paramiko, with and without pipelined writes, in both upload modes: an OPEN for writing
/// that cannot succeed fails at once (a directory, a symlink leading out, a missing parent
/// or one that is a file), and nothing is written anywhere; a size-quota refusal comes on
/// the WRITE that crosses the limit, and in atomic mode nothing of that upload remains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_come_at_open_and_quota_on_the_write_that_crosses_it() {
    if !paramiko_available() {
        return;
    }
    for mode in [0u8, 1] {
        let srv = server(mode, 2).await;
        add_user(&srv, "ref", 10_500, 100).await;
        let home = srv.home("ref");
        let outside = srv.dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("f"), b"outside").unwrap();
        symlink(outside.join("f"), home.join("out_abs")).unwrap();
        symlink("../../outside/f", home.join("out_rel")).unwrap();
        symlink("../../outside", home.join("out_dir")).unwrap();
        symlink(&outside, home.join("out_abs_dir")).unwrap();
        let port = srv.addr.port().to_string();
        paramiko(&["refusals", &port, "ref", PW]).await;
        let mut names: Vec<_> = std::fs::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["f"], "mode {mode}: nothing written outside");
        assert_eq!(std::fs::read(outside.join("f")).unwrap(), b"outside");
        for l in ["out_abs", "out_rel", "out_dir", "out_abs_dir"] {
            assert!(
                std::fs::symlink_metadata(home.join(l))
                    .unwrap()
                    .file_type()
                    .is_symlink(),
                "mode {mode}: {l} is still the administrator's link"
            );
        }
        assert_eq!(temps_under(&home), Vec::<PathBuf>::new(), "mode {mode}");

        // 1 byte used ("file"): 10,000 bytes fit in 10,500, the WRITE to 11,000 does not.
        let out = paramiko(&["quota", &port, "ref", PW, "10500"]).await;
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("refused-after 10000\n"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(temps_under(&home), Vec::<PathBuf>::new(), "mode {mode}");
        if mode == 1 {
            assert!(
                !home.join("big.bin").exists(),
                "atomic mode: nothing of the refused upload remains"
            );
        }
        srv.stop().await;
    }
}

/// `ln -s /srv/sftp/alice/shared /srv/sftp/alice/docs`: OpenSSH `sftp` lists, downloads,
/// uploads, renames and changes directory through it, while an absolute link to a
/// sibling home with a common prefix stays refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_symlinks_inside_the_home_work_with_openssh() {
    let srv = server(1, 2).await;
    let key = keygen(srv.dir.path(), "ed25519");
    srv.add_user("ali", None, &[&key], &all_perms()).await;
    let home = srv.home("ali");
    let sibling = srv.home("alice");
    std::fs::create_dir_all(home.join("shared")).unwrap();
    std::fs::create_dir_all(&sibling).unwrap();
    std::fs::write(sibling.join("secret"), b"sibling").unwrap();
    std::fs::write(home.join("shared/f.txt"), b"shared file").unwrap();
    symlink(home.join("shared"), home.join("docs")).unwrap();
    symlink(home.join("shared/f.txt"), home.join("flink")).unwrap();
    symlink(&sibling, home.join("sib")).unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("up.txt"), b"uploaded through the link").unwrap();
    let batch = "ls -1 docs\n\
                 get docs/f.txt got.txt\n\
                 get flink got_link.txt\n\
                 put up.txt docs/up.txt\n\
                 rename docs/up.txt docs/renamed.txt\n\
                 cd docs\n\
                 pwd\n\
                 ls -1\n\
                 cd /\n\
                 -get sib/secret stolen.txt\n\
                 -ls sib\n\
                 -put up.txt sib/planted.txt\n";
    let out = sftp_batch(srv.addr, "ali", Login::Key(&key), batch, work.path()).await;
    assert_success(&out, "sftp through an absolute link");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("docs/f.txt"), "{stdout}");
    assert!(
        stdout.contains("Remote working directory: /docs"),
        "{stdout}"
    );
    assert!(stdout.contains("renamed.txt"), "{stdout}");
    assert_eq!(
        std::fs::read(work.path().join("got.txt")).unwrap(),
        b"shared file"
    );
    assert_eq!(
        std::fs::read(work.path().join("got_link.txt")).unwrap(),
        b"shared file"
    );
    assert_eq!(
        std::fs::read(home.join("shared/renamed.txt")).unwrap(),
        b"uploaded through the link"
    );
    assert!(
        std::fs::symlink_metadata(home.join("docs"))
            .unwrap()
            .is_symlink()
    );
    assert!(!work.path().join("stolen.txt").exists());
    assert!(!sibling.join("planted.txt").exists());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Permission denied"), "{stderr}");
    srv.stop().await;
}

/// An upload to a name that is a symlink inside the home replaces the file the link points
/// to, in both modes, with paramiko (pipelined and not) and OpenSSH; the links stay, and
/// the used quota counts the targets (it equals a scan of the home).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_to_symlinked_names_write_their_targets() {
    if !paramiko_available() {
        return;
    }
    for mode in [1u8, 0] {
        let srv = server(mode, 2).await;
        let key = keygen(srv.dir.path(), "ed25519");
        let user = add_user(&srv, "sym", 1 << 20, 100).await;
        let mut with_key = user.clone();
        with_key.public_keys = vec![key.public.clone()];
        srv.core().provider().update_user(with_key).await.unwrap();
        let home = srv.home("sym");
        std::fs::create_dir(home.join("shared")).unwrap();
        std::fs::write(home.join("shared/target.txt"), b"old target").unwrap();
        std::fs::write(home.join("shared/rel_target.txt"), b"old rel").unwrap();
        std::fs::write(home.join("shared/inner.txt"), b"old inner").unwrap();
        symlink(home.join("shared/target.txt"), home.join("abs_link")).unwrap();
        symlink("shared/rel_target.txt", home.join("rel_link")).unwrap();
        symlink(home.join("shared"), home.join("docs")).unwrap();
        // What the provider holds for the files already there.
        let (size, files) = sftpgo_core::quota::scan(&home).unwrap();
        srv.core().quota().reset("sym", size, files).await.unwrap();

        paramiko(&["symlinked", &srv.addr.port().to_string(), "sym", PW]).await;
        assert_eq!(
            std::fs::read(home.join("shared/target.txt")).unwrap(),
            b"new content via abs_link True"
        );
        assert_eq!(
            std::fs::read(home.join("shared/rel_target.txt")).unwrap(),
            b"new content via rel_link True"
        );

        let work = tempfile::tempdir().unwrap();
        std::fs::write(work.path().join("o.txt"), b"from openssh").unwrap();
        let out = sftp_batch(
            srv.addr,
            "sym",
            Login::Key(&key),
            "put o.txt abs_link\nput o.txt rel_link\n",
            work.path(),
        )
        .await;
        assert_success(&out, "sftp put to symlinked names");
        for (link, target) in [
            ("abs_link", "shared/target.txt"),
            ("rel_link", "shared/rel_target.txt"),
        ] {
            assert!(
                std::fs::symlink_metadata(home.join(link))
                    .unwrap()
                    .is_symlink(),
                "mode {mode}: {link} kept"
            );
            assert_eq!(
                std::fs::read(home.join(target)).unwrap(),
                b"from openssh",
                "mode {mode}: {target}"
            );
        }
        assert_eq!(temps_under(&home), Vec::<PathBuf>::new());
        srv.core().quota().flush().await;
        let stored = srv.core().provider().user_by_username("sym").await.unwrap();
        let (size, files) = sftpgo_core::quota::scan(&home).unwrap();
        assert_eq!(
            (stored.used_quota_size, stored.used_quota_files),
            (size, files),
            "mode {mode}: quota counts the targets"
        );
        assert_eq!(files, 3);
        srv.stop().await;
    }
}

/// The start-up sweep of stale temp files runs while the server already accepts uploads:
/// it removes only the old temps and never one of an upload in progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_up_sweep_leaves_uploads_in_progress_alone() {
    let mut srv = server(1, 2).await;
    let key = keygen(srv.dir.path(), "ed25519");
    srv.add_user("sweep", None, &[&key], &all_perms()).await;
    let home = srv.home("sweep");
    // Old temps (a crash hours ago) spread over many dirs, so the sweep takes a while.
    let old = SystemTime::now() - Duration::from_secs(24 * 3600);
    let mut stale = Vec::new();
    for d in 0..200 {
        let dir = home.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..10 {
            let p = dir.join(format!(".sftpgo-upload.{:016x}.f{i}", d * 10 + i));
            std::fs::write(&p, b"partial").unwrap();
            std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(old)
                .unwrap();
            stale.push(p);
        }
    }
    // Another instance's upload in progress on the shared storage: written just now.
    let live = home.join("d0/.sftpgo-upload.00000000deadbeef.other");
    std::fs::write(&live, b"in progress elsewhere").unwrap();

    srv.restart().await;
    // Uploads start at once, while the sweep walks the home dir.
    let work = tempfile::tempdir().unwrap();
    let mut batch = String::new();
    for i in 0..40 {
        std::fs::write(work.path().join(format!("u{i}")), pattern(70_000, i)).unwrap();
        batch += &format!("put u{i} d{}/up{i}\n", i * 5);
    }
    let out = sftp_batch(srv.addr, "sweep", Login::Key(&key), &batch, work.path()).await;
    assert_success(&out, "uploads during the sweep");
    for i in 0..40u64 {
        assert!(
            std::fs::read(home.join(format!("d{}/up{i}", i * 5))).unwrap() == pattern(70_000, i),
            "upload {i} arrived whole"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while stale.iter().any(|p| p.exists()) {
        assert!(
            Instant::now() < deadline,
            "the sweep removes the stale temps"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        temps_under(&home),
        vec![live.clone()],
        "only the live temp is left"
    );
    srv.stop().await;
}
