//! Users whose files live in an S3-compatible bucket (Garage, a real distributed store),
//! created through the REST API and used with real clients: OpenSSH `sftp`, rclone (over
//! SFTP, and straight to the bucket to see what is really stored) and paramiko.

mod common;

use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use common::api::{Api, rclone_sftp, run};
use common::logs::Logs;
use common::*;
use serde_json::{Value, json};
use sftpgo::service::Tuning;
use sftpgo_core::storage::s3::garage::Garage;

const PW: &str = "s3-user-secret";

/// rclone straight to the bucket (not through us): what is really stored.
fn bucket_cmd(g: &Garage, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("rclone");
    cmd.env("RCLONE_CONFIG", "/dev/null")
        // rclone 1.60 cannot use a custom CA bundle with its own HTTP transport.
        .env_remove("AWS_CA_BUNDLE")
        .env("RCLONE_S3_PROVIDER", "Other")
        .env("RCLONE_S3_ENDPOINT", &g.endpoint)
        .env("RCLONE_S3_REGION", &g.region)
        .env("RCLONE_S3_ACCESS_KEY_ID", &g.access_key)
        .env("RCLONE_S3_SECRET_ACCESS_KEY", &g.secret)
        .env("RCLONE_S3_FORCE_PATH_STYLE", "true")
        .args(["--retries", "1", "--low-level-retries", "1"])
        .args(args);
    cmd
}

/// Every object under `prefix` of the bucket: (key below the prefix, size).
async fn objects(g: &Garage, prefix: &str) -> Vec<(String, i64)> {
    let remote = format!(":s3:{}/{prefix}", g.bucket);
    let out = run(
        &mut bucket_cmd(g, &["lsjson", "-R", "--files-only", &remote]),
        "rclone lsjson of the bucket",
    )
    .await;
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut v: Vec<(String, i64)> = listed
        .iter()
        .map(|e| {
            (
                e["Path"].as_str().unwrap().to_owned(),
                e["Size"].as_i64().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The keys of the multipart uploads in progress under `prefix` (rclone prints
/// `{bucket: [{"Key": ..., "UploadId": ...}]}`).
async fn multipart_uploads(g: &Garage, prefix: &str) -> Vec<String> {
    let remote = format!(":s3:{}", g.bucket);
    let out = run(
        &mut bucket_cmd(g, &["backend", "list-multipart-uploads", &remote]),
        "rclone backend list-multipart-uploads",
    )
    .await;
    let v: Value = serde_json::from_slice(&out.stdout).expect("rclone prints JSON");
    v.as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|u| u["Key"].as_str())
        .filter(|k| k.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// Runs `tests/clients/paramiko_s3.py` against `port` as `user` (`extra`: its mode).
async fn paramiko_s3(port: u16, user: &str, extra: &[&str]) {
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/paramiko_s3.py"))
            .args([&port.to_string(), user, PW])
            .args(extra)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("paramiko in time")
    .unwrap();
    assert_success(&out, &format!("paramiko_s3.py {extra:?}"));
}

/// Waits (20 s at most) until no multipart upload is in progress under `prefix`: a cut
/// upload's is aborted within seconds.
async fn until_no_multipart_uploads(g: &Garage, prefix: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pending = multipart_uploads(g, prefix).await;
        if pending.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "multipart uploads left behind: {pending:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

impl Api {
    /// POST /user of a password user with every permission whose files are in `s3config`
    /// (plus `extra` fields); returns the status and the answer.
    async fn add_s3_user(
        &self,
        name: &str,
        home: PathBuf,
        s3config: Value,
        extra: Value,
    ) -> (u16, Value) {
        let mut user = json!({
            "username": name, "password": PW, "home_dir": home, "permissions": ["*"],
            "filesystem": {"provider": 1, "s3config": s3config},
        });
        if let (Some(u), Value::Object(more)) = (user.as_object_mut(), extra) {
            u.extend(more);
        }
        self.call(reqwest::Method::POST, "/user", Some(user)).await
    }
}

/// The data sizes of the WRITEs OpenSSH `sftp -vvv` says it sent.
fn write_sizes(out: &std::process::Output) -> Vec<u32> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("SSH2_FXP_WRITE"))
        .filter_map(|l| l.rsplit_once(" S:")?.1.trim().parse().ok())
        .collect()
}

fn s3config(g: &Garage, prefix: &str) -> Value {
    json!({
        "bucket": g.bucket, "region": g.region, "endpoint": g.endpoint,
        "access_key": g.access_key, "access_secret": g.secret,
        "key_prefix": prefix, "upload_part_size": 5, "upload_concurrency": 2,
        "force_path_style": true,
    })
}

fn write_tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let files = vec![
        (PathBuf::from("a.txt"), pattern(1000, 1)),
        (PathBuf::from("sub/b.bin"), pattern(300_000, 2)),
        (
            PathBuf::from("sub/deeper/c.bin"),
            pattern(6 * 1024 * 1024 + 3, 3),
        ),
        (PathBuf::from("empty"), Vec::new()),
    ];
    for (rel, data) in &files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_s3_user_works_with_real_clients_and_keeps_its_secret() {
    let Some(g) = Garage::start() else {
        return;
    };
    if !client_available("rclone", &["rclone", "version"], "apt-get install rclone")
        || !paramiko_available()
    {
        return;
    }
    let logs = Logs::install();
    let srv = TestServer::start_with(
        |c| c.data_provider.track_quota = 1,
        Tuning {
            http_port: Some(0),
            ..Tuning::default()
        },
    )
    .await;
    let api = Api::new(&srv);
    let prefix = "users/s3u/";

    // Created through the API in SFTPGo 1.x's shape; the secret never comes back.
    let (status, created) = api
        .add_s3_user(
            "s3u",
            srv.home("s3u"),
            s3config(&g, prefix),
            json!({"quota_files": 1000}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_i64().unwrap();
    let shown = created.to_string();
    assert!(
        !shown.contains(&g.secret) && !shown.contains("access_secret"),
        "{shown}"
    );
    assert_eq!(created["filesystem"]["provider"], 1);
    assert_eq!(created["filesystem"]["s3config"]["bucket"], g.bucket);
    let stored = srv.core().provider().user_by_id(id).await.unwrap();
    let secret = &stored.filesystem.s3config.access_secret;
    assert!(secret.is_encrypted() && !secret.as_stored().contains(&g.secret));
    // A GET then a PUT of what it showed (no secret) keeps the secret working.
    let (_, fetched) = api
        .call(reqwest::Method::GET, &format!("/user/{id}"), None)
        .await;
    assert!(!fetched.to_string().contains("access_secret"));
    let (status, body) = api
        .call(
            reqwest::Method::PUT,
            &format!("/user/{id}"),
            Some(fetched.clone()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Validation names the field.
    let bad = json!({"bucket": "b", "region": "r", "key_prefix": "/x"});
    let (status, body) = api
        .add_s3_user("s3bad", srv.home("s3bad"), bad, Value::Null)
        .await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("key_prefix"), "{body}");

    // OpenSSH sftp: a directory, a file of three parts and a small one, listed, read back,
    // renamed, removed.
    let work = tempfile::tempdir().unwrap();
    let big = pattern(12 * 1024 * 1024 + 17, 9);
    std::fs::write(work.path().join("big.bin"), &big).unwrap();
    std::fs::write(work.path().join("small.txt"), b"hello s3\n").unwrap();
    let out = sftp_batch_with(
        srv.addr,
        "s3u",
        Login::Password(PW),
        "mkdir docs\nput big.bin docs/big.bin\nput small.txt\nls -l docs\nget docs/big.bin back.bin\nrename docs/big.bin docs/moved.bin\nrm small.txt\nls -l\n",
        work.path(),
        &["-vvv"],
    )
    .await;
    assert_success(&out, "sftp batch");
    // A bucket home is offered 64 KiB writes (OpenSSH then holds 4 MiB in flight, not 16).
    assert_eq!(
        write_sizes(&out).into_iter().max(),
        Some(64 * 1024),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&(big.len()).to_string()), "{text}");
    assert_eq!(std::fs::read(work.path().join("back.bin")).unwrap(), big);
    assert_eq!(
        objects(&g, prefix).await,
        vec![("docs/moved.bin".to_owned(), big.len() as i64)]
    );
    // Nothing of the home dir on the local disk.
    assert!(!srv.home("s3u").join("docs").exists());

    // rclone over SFTP: a tree up, checked by the server's own hashes (md5sum over SSH,
    // computed from the bucket), listed, down again.
    let src = work.path().join("src");
    let files = write_tree(&src);
    let rclone = rclone_sftp(srv.addr, "s3u", PW);
    let src_s = src.to_str().unwrap();
    run(
        &mut rclone(&["copy", src_s, ":sftp:tree"]),
        "rclone copy up",
    )
    .await;
    run(
        &mut rclone(&["check", src_s, ":sftp:tree"]),
        "rclone check (server hashes)",
    )
    .await;
    let back = work.path().join("back");
    run(
        &mut rclone(&["copy", ":sftp:tree", back.to_str().unwrap()]),
        "rclone copy down",
    )
    .await;
    for (rel, data) in &files {
        assert_eq!(
            &std::fs::read(back.join(rel)).unwrap(),
            data,
            "{}",
            rel.display()
        );
    }
    let stored: Vec<(String, i64)> = objects(&g, &format!("{prefix}tree/")).await;
    let mut expected: Vec<(String, i64)> = files
        .iter()
        .map(|(r, d)| (r.display().to_string(), d.len() as i64))
        .collect();
    expected.sort();
    assert_eq!(stored, expected);

    // paramiko: pipelined multipart upload, prefetch, random reads, attributes, refusals,
    // and an upload cut off mid-way.
    paramiko_s3(srv.addr.port(), "s3u", &[]).await;
    // The cut upload: no object, and its multipart upload aborted (within seconds).
    until_no_multipart_uploads(&g, prefix).await;
    let all = objects(&g, prefix).await;
    assert!(!all.iter().any(|(k, _)| k.contains("cut.bin")), "{all:?}");
    assert!(all.iter().any(|(k, _)| k == "pm/big.bin"), "{all:?}");

    // Used quota as tracked equals what the bucket holds, and so does a quota scan.
    let holds = (all.iter().map(|(_, s)| s).sum::<i64>(), all.len() as i64);
    assert_eq!(api.used_quota(id).await, holds, "tracked quota vs bucket");
    srv.core().quota().reset("s3u", 0, 0).await.unwrap();
    let (status, _) = api
        .call(
            reqwest::Method::POST,
            "/quota_scan",
            Some(json!({"username": "s3u"})),
        )
        .await;
    assert_eq!(status, 201);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, scans) = api.call(reqwest::Method::GET, "/quota_scan", None).await;
        if scans.as_array().is_some_and(|a| a.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "scan still running");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(api.used_quota(id).await, holds, "scanned quota vs bucket");

    // A bucket that does not exist, a wrong secret, an endpoint that does not answer: the
    // client gets a failure status, the log names the user and the bucket; nothing hangs.
    let mut missing = s3config(&g, "x/");
    missing["bucket"] = json!("no-such-bucket");
    let mut wrong_secret = s3config(&g, "x/");
    wrong_secret["access_secret"] = json!("0".repeat(64));
    let mut down = s3config(&g, "x/");
    down["bucket"] = json!("down-bucket");
    down["endpoint"] = json!("http://127.0.0.1:1");
    for (name, cfg) in [
        ("s3missing", missing),
        ("s3wrongkey", wrong_secret),
        ("s3down", down),
    ] {
        let bucket = cfg["bucket"].as_str().unwrap().to_owned();
        let (status, body) = api
            .add_s3_user(name, srv.home(name), cfg, Value::Null)
            .await;
        assert_eq!(status, 200, "{body}");
        let started = Instant::now();
        std::fs::write(work.path().join("up.txt"), b"x").unwrap();
        let out = sftp_batch(
            srv.addr,
            name,
            Login::Password(PW),
            "ls\nput up.txt\nget nothing.bin\n",
            work.path(),
        )
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{name}: too slow"
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.matches("Failure").count() >= 2, "{name}: {text}");
        let line = logs.find(|l| l["username"] == name && l.to_string().contains(&bucket));
        assert!(
            line.is_some(),
            "{name}: no log line names the user and the bucket"
        );
    }
    srv.stop().await;
}

/// Two instances on one PostgreSQL database and one bucket, as behind a TCP load balancer:
/// a user created through A's API uploads through A; B lists, downloads and deletes; used
/// quota is exact on both; an upload through A cut off mid-way leaves nothing in the
/// bucket. A third instance with another secrets key cannot use the stored secret and says
/// so.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_an_s3_user_through_one_database() {
    let Some(g) = Garage::start() else {
        return;
    };
    let Some(db) = sftpgo_provider::sql::testdb::postgres().await else {
        return;
    };
    if !client_available("rclone", &["rclone", "version"], "apt-get install rclone")
        || !paramiko_available()
    {
        return;
    }
    let logs = Logs::install();
    let start = |key: &'static str| {
        let settings = db.settings.clone();
        TestServer::start_with(
            move |c| {
                on_postgres(settings)(c);
                c.data_provider.track_quota = 1;
                c.kms.secrets.master_key = key.into();
            },
            Tuning {
                http_port: Some(0),
                ..Tuning::default()
            },
        )
    };
    let a = start("shared master key of the cluster").await;
    let b = start("shared master key of the cluster").await;
    let api_a = Api::new(&a);
    let api_b = Api::new(&b);
    let prefix = "cluster/shared/";
    let (status, created) = api_a
        .add_s3_user(
            "shared",
            a.home("shared"),
            s3config(&g, prefix),
            Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_i64().unwrap();

    // Uploads through A.
    let work = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| (format!("f{i}.bin"), pattern(1000 + i * 2_500_000, i as u64)))
        .collect();
    let mut batch = String::from("mkdir in\n");
    for (name, data) in &files {
        std::fs::write(work.path().join(name), data).unwrap();
        batch += &format!("put {name} in/{name}\n");
    }
    let out = sftp_batch(a.addr, "shared", Login::Password(PW), &batch, work.path()).await;
    assert_success(&out, "uploads through A");

    // Listed and downloaded through B.
    let down = tempfile::tempdir().unwrap();
    let mut batch = String::from("ls -l in\n");
    for (name, _) in &files {
        batch += &format!("get in/{name}\n");
    }
    let out = sftp_batch(b.addr, "shared", Login::Password(PW), &batch, down.path()).await;
    assert_success(&out, "list and downloads through B");
    for (name, data) in &files {
        assert_eq!(
            &std::fs::read(down.path().join(name)).unwrap(),
            data,
            "{name}"
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(name.as_str()));
    }
    let total: i64 = files.iter().map(|(_, d)| d.len() as i64).sum();
    // Used quota, as each instance's API shows it once B's and A's changes are written.
    let quota_is = |want: (i64, i64)| {
        let (api_a, api_b) = (&api_a, &api_b);
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let seen = [api_a.used_quota(id).await, api_b.used_quota(id).await];
                if seen.iter().all(|s| *s == want) {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "used quota {seen:?}, want {want:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    quota_is((total, files.len() as i64)).await;
    let stored = objects(&g, prefix).await;
    assert_eq!(stored.len(), files.len(), "{stored:?}");

    // Deleted through B: the bucket is empty of files, quota back to zero on both.
    let batch: String = files.iter().map(|(n, _)| format!("rm in/{n}\n")).collect();
    let out = sftp_batch(b.addr, "shared", Login::Password(PW), &batch, down.path()).await;
    assert_success(&out, "removes through B");
    assert_eq!(objects(&g, prefix).await, Vec::<(String, i64)>::new());
    quota_is((0, 0)).await;

    // An upload through A cut off mid-way: nothing in the bucket, no multipart upload left.
    paramiko_s3(a.addr.port(), "shared", &["cut"]).await;
    until_no_multipart_uploads(&g, prefix).await;
    let left = objects(&g, prefix).await;
    assert!(!left.iter().any(|(k, _)| k.contains("cut.bin")), "{left:?}");
    quota_is((0, 0)).await;

    // An instance with another secrets key refuses the login and says why.
    let c = start("a different key").await;
    let out = sftp_batch(c.addr, "shared", Login::Password(PW), "ls\n", work.path()).await;
    assert!(!out.status.success(), "logged in without the key");
    assert!(
        logs.find(|l| l["username"] == "shared"
            && l.to_string()
                .contains("does not decrypt with this server's key"))
            .is_some(),
        "no log line says the secret could not be decrypted"
    );
    for s in [a, b, c] {
        s.stop().await;
    }
}

/// A local user with a virtual folder in the bucket (created with the user, SFTPGo 1.x's
/// way): files written there are objects under the folder's prefix, the home stays on the
/// disk, a rename between the two is refused as unsupported (nothing written), renames
/// inside the folder work, the folder's own quota counts and a scan agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_s3_folder_in_a_local_users_tree() {
    let Some(g) = Garage::start() else {
        return;
    };
    let srv = TestServer::start_with(
        |c| c.data_provider.track_quota = 1,
        Tuning {
            http_port: Some(0),
            ..Tuning::default()
        },
    )
    .await;
    let api = Api::new(&srv);
    let prefix = "folders/archive/";
    let user = json!({
        "username": "mix", "password": PW, "home_dir": srv.home("mix"), "permissions": ["*"],
        "virtual_folders": [{"virtual_path": "/archive", "mapped_path": "/s3/archive",
            "quota_size": 0, "quota_files": 10,
            "filesystem": {"provider": 1, "s3config": s3config(&g, prefix)}}],
    });
    let (status, body) = api.call(reqwest::Method::POST, "/user", Some(user)).await;
    assert_eq!(status, 200, "{body}");
    let (_, folders) = api
        .call(
            reqwest::Method::GET,
            "/folder?folder_path=/s3/archive",
            None,
        )
        .await;
    assert_eq!(folders[0]["filesystem"]["provider"], 1, "{folders}");
    assert!(!folders.to_string().contains(&g.secret), "{folders}");

    let work = tempfile::tempdir().unwrap();
    let big = pattern(6 * 1024 * 1024 + 5, 4);
    std::fs::write(work.path().join("big.bin"), &big).unwrap();
    std::fs::write(work.path().join("local.txt"), b"on the disk\n").unwrap();
    let out = sftp_batch_with(
        srv.addr,
        "mix",
        Login::Password(PW),
        "put local.txt\nput big.bin archive/big.bin\nmkdir archive/2026\nrename archive/big.bin archive/2026/big.bin\nls -l archive/2026\nget archive/2026/big.bin back.bin\nls -l /\n",
        work.path(),
        &["-vvv"],
    )
    .await;
    assert_success(&out, "sftp batch");
    // The write size offered follows the home (a disk here), whatever the folder.
    assert_eq!(
        write_sizes(&out).into_iter().max(),
        Some(255 * 1024),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("archive") && text.contains("local.txt"),
        "{text}"
    );
    assert_eq!(std::fs::read(work.path().join("back.bin")).unwrap(), big);
    assert_eq!(
        objects(&g, prefix).await,
        [("2026/big.bin".to_owned(), big.len() as i64)]
    );
    assert!(srv.home("mix").join("local.txt").exists());
    assert!(!srv.home("mix").join("archive").exists());

    // Between the disk and the bucket a rename is refused, both ways, and writes nothing.
    for batch in [
        "rename archive/2026/big.bin moved.bin\n",
        "rename local.txt archive/local.txt\n",
    ] {
        let out = sftp_batch(srv.addr, "mix", Login::Password(PW), batch, work.path()).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("unsupported") || err.contains("Operation"),
            "{batch:?}: {err}"
        );
    }
    assert!(!srv.home("mix").join("moved.bin").exists());
    assert_eq!(objects(&g, prefix).await.len(), 1);
    assert!(srv.home("mix").join("local.txt").exists());

    // The folder's quota: one object; the user's: the local file only.
    srv.core().quota().flush().await;
    let (_, f) = api
        .call(
            reqwest::Method::GET,
            "/folder?folder_path=/s3/archive",
            None,
        )
        .await;
    assert_eq!(f[0]["used_quota_files"], 1, "{f}");
    assert_eq!(f[0]["used_quota_size"], big.len() as u64, "{f}");
    let (status, body) = api
        .call(
            reqwest::Method::POST,
            "/folder_quota_scan",
            Some(json!({"mapped_path": "/s3/archive"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, scans) = api
            .call(reqwest::Method::GET, "/folder_quota_scan", None)
            .await;
        if scans.as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(Instant::now() < deadline, "scan running: {scans}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, f) = api
        .call(
            reqwest::Method::GET,
            "/folder?folder_path=/s3/archive",
            None,
        )
        .await;
    assert_eq!(f[0]["used_quota_files"], 1, "{f}");
    assert_eq!(f[0]["used_quota_size"], big.len() as u64, "{f}");
    srv.stop().await;
}

/// Renames between a user's bucket and S3 folders of the same account are copies inside
/// the store and deletes (OpenSSH `sftp`): the object moves from prefix to prefix whole,
/// and the quotas follow (a folder with its own quota, one counted in the user's).
/// OpenSSH's `cp` (the `copy-data` extension) between them copies inside the store too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn renames_between_s3_folders_copy_inside_the_store() {
    let Some(g) = Garage::start() else {
        return;
    };
    let srv = TestServer::start_with(
        |c| c.data_provider.track_quota = 1,
        Tuning {
            http_port: Some(0),
            ..Tuning::default()
        },
    )
    .await;
    let api = Api::new(&srv);
    let user = json!({
        "username": "mover", "password": PW, "home_dir": srv.home("mover"), "permissions": ["*"],
        "filesystem": {"provider": 1, "s3config": s3config(&g, "mv/home/")},
        "virtual_folders": [
            {"virtual_path": "/own", "mapped_path": "/s3/mv-own", "quota_size": 0, "quota_files": 10,
             "filesystem": {"provider": 1, "s3config": s3config(&g, "mv/own/")}},
            {"virtual_path": "/shared", "mapped_path": "/s3/mv-shared", "quota_size": -1, "quota_files": -1,
             "filesystem": {"provider": 1, "s3config": s3config(&g, "mv/shared/")}},
        ],
    });
    let (status, body) = api.call(reqwest::Method::POST, "/user", Some(user)).await;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_i64().unwrap();
    let folder_quota = |path: &'static str| {
        let api = &api;
        async move {
            let (_, f) = api
                .call(
                    reqwest::Method::GET,
                    &format!("/folder?folder_path={path}"),
                    None,
                )
                .await;
            (
                f[0]["used_quota_size"].as_i64().unwrap(),
                f[0]["used_quota_files"].as_i64().unwrap(),
            )
        }
    };

    let work = tempfile::tempdir().unwrap();
    let big = pattern(6 * 1024 * 1024 + 5, 7);
    let n = big.len() as i64;
    std::fs::write(work.path().join("big.bin"), &big).unwrap();
    let sftp = |batch: &'static str| {
        sftp_batch(srv.addr, "mover", Login::Password(PW), batch, work.path())
    };

    assert_success(
        &sftp("put big.bin\nrename big.bin own/big.bin\n").await,
        "into /own",
    );
    assert_eq!(objects(&g, "mv/").await, [("own/big.bin".to_owned(), n)]);
    srv.core().quota().flush().await;
    assert_eq!(api.used_quota(id).await, (0, 0));
    assert_eq!(folder_quota("/s3/mv-own").await, (n, 1));

    assert_success(
        &sftp("rename own/big.bin shared/big.bin\n").await,
        "to /shared",
    );
    assert_eq!(objects(&g, "mv/").await, [("shared/big.bin".to_owned(), n)]);
    srv.core().quota().flush().await;
    assert_eq!(folder_quota("/s3/mv-own").await, (0, 0));
    assert_eq!(folder_quota("/s3/mv-shared").await, (n, 1));
    // The shared folder is counted in the user's quota.
    assert_eq!(api.used_quota(id).await, (n, 1));

    // `cp` (copy-data) from the folder into the home, then a download of the copy.
    let out = sftp("cp shared/big.bin copy.bin\nget copy.bin back.bin\n").await;
    assert_success(&out, "cp and get");
    assert_eq!(std::fs::read(work.path().join("back.bin")).unwrap(), big);
    assert_eq!(
        objects(&g, "mv/").await,
        [
            ("home/copy.bin".to_owned(), n),
            ("shared/big.bin".to_owned(), n)
        ]
    );
    srv.core().quota().flush().await;
    assert_eq!(api.used_quota(id).await, (2 * n, 2));

    // Onto an existing name (OpenSSH renames with posix-rename, which replaces): the
    // replaced object stops counting.
    assert_success(
        &sftp("rename shared/big.bin copy.bin\n").await,
        "replacing rename",
    );
    assert_eq!(objects(&g, "mv/").await, [("home/copy.bin".to_owned(), n)]);
    srv.core().quota().flush().await;
    assert_eq!(api.used_quota(id).await, (n, 1));
    assert_eq!(folder_quota("/s3/mv-shared").await, (0, 0));
    srv.stop().await;
}
