//! Virtual folders: created through the REST API (as objects of their own, and on the fly
//! with a user sent in one request, SFTPGo 1.x's way), mapped into users' trees and used
//! with real clients (OpenSSH `sftp`, rclone), with their own quotas, scans and limits.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::api::{Api, rclone_sftp, run};
use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use sftpgo::service::Tuning;

const PW: &str = "folder-user-secret";

async fn start() -> TestServer {
    TestServer::start_with(
        |c| c.data_provider.track_quota = 1,
        Tuning {
            http_port: Some(0),
            ..Tuning::default()
        },
    )
    .await
}

async fn add_user(api: &Api, srv: &TestServer, name: &str, extra: Value) -> Value {
    let mut user = json!({
        "username": name,
        "password": PW,
        "home_dir": srv.home(name),
        "permissions": ["*"],
    });
    if let (Value::Object(u), Value::Object(e)) = (&mut user, extra) {
        u.extend(e);
    }
    let (status, body) = api.call(Method::POST, "/user", Some(user)).await;
    assert_eq!(status, 200, "add {name}: {body}");
    body
}

async fn folder(api: &Api, path: &Path) -> Value {
    let (status, body) = api
        .call(
            Method::GET,
            &format!("/folder?folder_path={}", path.display()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body.as_array()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or_else(|| panic!("folder {} listed: {body}", path.display()))
}

fn used(v: &Value) -> (i64, i64) {
    (
        v["used_quota_size"].as_i64().unwrap(),
        v["used_quota_files"].as_i64().unwrap(),
    )
}

async fn sftp(srv: &TestServer, user: &str, batch: &str, cwd: &Path) -> String {
    let out = sftp_batch(srv.addr, user, Login::Password(PW), batch, cwd).await;
    assert_success(&out, &format!("sftp batch as {user}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_folders_work_with_real_clients() {
    if !client_available("rclone", &["rclone", "version"], "apt-get install rclone") {
        return;
    }
    let srv = start().await;
    let api = Api::new(&srv);
    let dirs = tempfile::tempdir().unwrap();
    let shared = dirs.path().join("shared");
    let boxed = dirs.path().join("box");

    // A folder of its own, then a user mapping it (counted in the user's quota) and a
    // folder not known yet (created with the user, limits of its own: 2 files).
    let (status, body) = api
        .call(
            Method::POST,
            "/folder",
            Some(json!({"mapped_path": shared})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api
        .call(
            Method::POST,
            "/folder",
            Some(json!({"mapped_path": shared})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let alice = add_user(
        &api,
        &srv,
        "alice",
        json!({"quota_files": 100, "virtual_folders": [
            {"virtual_path": "/shared", "mapped_path": shared, "quota_size": -1, "quota_files": -1},
            {"virtual_path": "/limited/box", "mapped_path": boxed, "quota_size": 0, "quota_files": 2},
        ]}),
    )
    .await;
    assert_eq!(alice["virtual_folders"].as_array().unwrap().len(), 2);
    let alice_id = alice["id"].as_i64().unwrap();
    add_user(
        &api,
        &srv,
        "bob",
        json!({"virtual_folders": [
            {"virtual_path": "/common", "mapped_path": shared, "quota_size": 0, "quota_files": 0},
        ]}),
    )
    .await;
    // Mappings that break the rules are refused, naming the field.
    let (status, body) = api
        .call(
            Method::POST,
            "/user",
            Some(
                json!({"username": "bad", "password": PW, "home_dir": srv.home("bad"),
                "permissions": ["*"], "virtual_folders": [
                    {"virtual_path": "/", "mapped_path": shared}]}),
            ),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("virtual_path"), "{body}");

    // OpenSSH sftp: the folders are listed at their places, written and read through.
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::write(w.join("a.txt"), b"into the shared folder\n").unwrap();
    std::fs::write(w.join("b.bin"), pattern(5000, 1)).unwrap();
    let text = sftp(
        &srv,
        "alice",
        "ls -l /\nls -l /limited\nput a.txt shared/a.txt\nmkdir shared/sub\nput b.bin limited/box/b.bin\nput b.bin limited/box/c.bin\nget shared/a.txt back.txt\nls -l shared\n",
        w,
    )
    .await;
    assert!(text.contains("shared") && text.contains("box"), "{text}");
    assert_eq!(
        std::fs::read(shared.join("a.txt")).unwrap(),
        b"into the shared folder\n"
    );
    assert!(shared.join("sub").is_dir());
    assert_eq!(
        std::fs::read(boxed.join("c.bin")).unwrap(),
        pattern(5000, 1)
    );
    assert_eq!(
        std::fs::read(w.join("back.txt")).unwrap(),
        b"into the shared folder\n"
    );
    assert!(
        !srv.home("alice").join("shared").exists(),
        "nothing in the home"
    );

    // The box's own limit: a third file is refused; the user's quota does not count it.
    let out = sftp_batch(
        srv.addr,
        "alice",
        Login::Password(PW),
        "put b.bin limited/box/d.bin\n",
        w,
    )
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!boxed.join("d.bin").exists(), "{err}");
    assert!(
        err.to_lowercase().contains("quota") || err.contains("Failure"),
        "{err}"
    );
    assert_eq!(used(&folder(&api, &boxed).await), (10_000, 2));
    assert_eq!(used(&folder(&api, &shared).await), (23, 1));
    assert_eq!(
        api.used_quota(alice_id).await,
        (23, 1),
        "shared counts for alice"
    );
    let listed = folder(&api, &shared).await;
    assert_eq!(listed["users"], json!(["alice", "bob"]));

    // A rename across mounts is a copy and a delete; the quotas follow the file.
    sftp(
        &srv,
        "alice",
        "rename shared/a.txt moved.txt\nrename limited/box/c.bin shared/c.bin\n",
        w,
    )
    .await;
    assert!(!shared.join("a.txt").exists());
    assert_eq!(
        std::fs::read(srv.home("alice").join("moved.txt")).unwrap(),
        b"into the shared folder\n"
    );
    assert_eq!(
        std::fs::read(shared.join("c.bin")).unwrap(),
        pattern(5000, 1)
    );
    assert_eq!(used(&folder(&api, &boxed).await), (5000, 1));
    assert_eq!(used(&folder(&api, &shared).await), (5000, 1));
    assert_eq!(api.used_quota(alice_id).await, (5023, 2));

    // What would move, hide or escape a folder is refused; the folder is intact.
    for batch in [
        "rename shared gone\n",
        "rmdir shared\n",
        "rename limited elsewhere\n",
        "ln -s /shared/c.bin link\n",
    ] {
        let out = sftp_batch(srv.addr, "alice", Login::Password(PW), batch, w).await;
        assert!(
            !String::from_utf8_lossy(&out.stderr).is_empty(),
            "{batch:?} refused"
        );
    }
    assert!(shared.join("c.bin").exists() && shared.join("sub").is_dir());

    // Bob sees the same folder at his own place; rclone copies a tree in and checks it.
    let text = sftp(&srv, "bob", "ls -l /common\n", w).await;
    assert!(text.contains("c.bin") && text.contains("sub"), "{text}");
    let src = w.join("tree");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("one.txt"), b"1").unwrap();
    std::fs::write(src.join("d/two.bin"), pattern(70_000, 2)).unwrap();
    let rclone = rclone_sftp(srv.addr, "bob", PW);
    let src_s = src.to_str().unwrap();
    run(
        &mut rclone(&["copy", src_s, ":sftp:common/tree"]),
        "rclone copy",
    )
    .await;
    run(
        &mut rclone(&["check", src_s, ":sftp:common/tree"]),
        "rclone check",
    )
    .await;
    assert_eq!(
        std::fs::read(shared.join("tree/d/two.bin")).unwrap(),
        pattern(70_000, 2)
    );

    // A folder quota scan counts what is there, whoever put it.
    std::fs::write(boxed.join("outside.bin"), vec![0u8; 100]).unwrap();
    let (status, body) = api
        .call(
            Method::POST,
            "/folder_quota_scan",
            Some(json!({"mapped_path": boxed})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while used(&folder(&api, &boxed).await) != (5100, 2) {
        assert!(Instant::now() < deadline, "{}", folder(&api, &boxed).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Deleting a folder removes it from its users; its files stay.
    let (status, body) = api
        .call(
            Method::DELETE,
            &format!("/folder?folder_path={}", shared.display()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, alice) = api
        .call(Method::GET, &format!("/user/{alice_id}"), None)
        .await;
    let left: Vec<_> = alice["virtual_folders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["virtual_path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left, ["/limited/box"]);
    assert!(shared.join("c.bin").exists());
    srv.stop().await;
}
