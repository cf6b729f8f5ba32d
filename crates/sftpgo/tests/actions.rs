//! Actions with real clients: the command's argv and environment, the HTTP notification's
//! query, nothing for failed transfers, the timeout kill, and the concurrency bound under a
//! burst of uploads.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::client::{Credential, SftpClient};
use common::{Login, TestServer, assert_success, keygen, sftp_batch};
use sftpgo::service::Tuning;
use sftpgo_provider::User;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Request targets (path + query) received by the test's HTTP endpoint.
type Received = Arc<Mutex<Vec<String>>>;

/// A minimal HTTP/1.1 endpoint that records each request target and answers 200.
async fn http_sink() -> (SocketAddr, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received: Received = Arc::default();
    let rec = received.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let rec = rec.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let line = head.lines().next().unwrap_or_default().to_string();
                let mut parts = line.split(' ');
                if parts.next() == Some("GET") {
                    rec.lock()
                        .unwrap()
                        .push(parts.next().unwrap_or("").to_string());
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (addr, received)
}

fn query(target: &str) -> Vec<(String, String)> {
    url::Url::parse(&format!("http://x{target}"))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn write_script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A command that writes its argv and SFTPGo environment, one value per line, to a new
/// file in `records`, and reports any other SFTPGO_ variable it was given.
fn recording_script(dir: &Path) -> (PathBuf, PathBuf) {
    let records = dir.join("records");
    std::fs::create_dir(&records).unwrap();
    let script = dir.join("record.sh");
    write_script(
        &script,
        &format!(
            "f=$(mktemp {}/ev.XXXXXX)\n\
             printf '%s\\n' \"$1\" \"$2\" \"$3\" \"$4\" \"$SFTPGO_ACTION\" \"$SFTPGO_ACTION_USERNAME\" \
             \"$SFTPGO_ACTION_PATH\" \"$SFTPGO_ACTION_TARGET\" \"$SFTPGO_ACTION_VIRTUAL_PATH\" \
             \"$SFTPGO_ACTION_SIZE\" \"$(env | grep -c '^SFTPGO_DATA_PROVIDER')\" > \"$f.tmp\"\n\
             mv \"$f.tmp\" \"$f.done\"\n",
            records.display()
        ),
    );
    (script, records)
}

fn read_records(records: &Path) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = std::fs::read_dir(records)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".done"))
        .map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        })
        .collect();
    out.sort();
    out
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..600 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn each_event_runs_the_command_and_the_notification_once() {
    let work = tempfile::tempdir().unwrap();
    let (script, records) = recording_script(work.path());
    let (http, received) = http_sink().await;
    // A secret in the server's environment must not reach the command.
    // SAFETY: nextest runs each test in its own process; nothing else reads the env now.
    unsafe { std::env::set_var("SFTPGO_DATA_PROVIDER__PASSWORD", "secret") };
    let script_path = script.display().to_string();
    let server = TestServer::start_with(
        |c| {
            c.sftpd.upload_mode = 1;
            c.sftpd.actions.execute_on = ["upload", "download", "rename", "delete"]
                .map(String::from)
                .to_vec();
            c.sftpd.actions.command = script_path;
            c.sftpd.actions.http_notification_url = format!("http://{http}/hook?token=abc");
            // One at a time: an event recorded proves every earlier one has finished.
            c.sftpd.actions.max_concurrency = 1;
        },
        Tuning::default(),
    )
    .await;
    let key = keygen(work.path(), "ed25519");
    server
        .add_user("alice", None, &[&key], &common::all_perms())
        .await;
    let home = server.home("alice");
    std::fs::write(work.path().join("local.txt"), b"hello actions").unwrap();
    let out = sftp_batch(
        server.addr,
        "alice",
        Login::Key(&key),
        "put local.txt up.txt\nget up.txt down.txt\nrename up.txt moved.txt\nrm moved.txt\nmkdir d\nrmdir d\n",
        work.path(),
    )
    .await;
    assert_success(&out, "sftp batch");
    wait_for("4 commands and 4 notifications", || {
        read_records(&records).len() >= 4 && received.lock().unwrap().len() >= 4
    })
    .await;

    let h = |name: &str| home.join(name).display().to_string();
    let by_action: HashMap<String, Vec<String>> = read_records(&records)
        .into_iter()
        .map(|r| (r[0].clone(), r))
        .collect();
    assert_eq!(by_action.len(), 4, "{by_action:?}");
    let expect = |action: &str, path: String, target: String, vpath: &str, size: &str| {
        let r = &by_action[action];
        assert_eq!(
            r,
            &vec![
                action.to_string(),
                "alice".into(),
                path.clone(),
                target.clone(),
                action.to_string(),
                "alice".into(),
                path,
                target,
                vpath.to_string(),
                size.to_string(),
                "0".into(),
            ],
            "{action}"
        );
    };
    // The atomic upload is reported at its final name, with its size.
    expect("upload", h("up.txt"), String::new(), "/up.txt", "13");
    expect("download", h("up.txt"), String::new(), "/up.txt", "13");
    expect("rename", h("up.txt"), h("moved.txt"), "/up.txt", "13");
    expect("delete", h("moved.txt"), String::new(), "/moved.txt", "13");

    let got: Vec<Vec<(String, String)>> =
        received.lock().unwrap().iter().map(|t| query(t)).collect();
    assert_eq!(got.len(), 4, "{got:?}");
    let q = |action: &str| {
        got.iter()
            .find(|q| q.iter().any(|(k, v)| k == "action" && v == action))
            .unwrap_or_else(|| panic!("no GET for {action}: {got:?}"))
            .clone()
    };
    let pair = |k: &str, v: String| (k.to_string(), v);
    assert_eq!(
        q("upload"),
        vec![
            pair("token", "abc".into()),
            pair("action", "upload".into()),
            pair("username", "alice".into()),
            pair("path", h("up.txt")),
        ]
    );
    assert_eq!(
        q("rename"),
        vec![
            pair("token", "abc".into()),
            pair("action", "rename".into()),
            pair("username", "alice".into()),
            pair("path", h("up.txt")),
            pair("target_path", h("moved.txt")),
        ]
    );
    assert_eq!(q("delete")[3], pair("path", h("moved.txt")));
    assert_eq!(q("download")[3], pair("path", h("up.txt")));

    // A failed upload (over quota) fires nothing: the download queued after it is the
    // only new event, and with one action at a time it runs after anything queued before.
    let bob = User {
        username: "bob".into(),
        public_keys: vec![key.public.clone()],
        home_dir: server.home("bob").display().to_string(),
        permissions: common::all_perms(),
        quota_size: 1000,
        ..Default::default()
    };
    server.core().provider().add_user(bob).await.unwrap();
    std::fs::create_dir_all(server.home("bob")).unwrap();
    std::fs::write(server.home("bob").join("small.txt"), b"x").unwrap();
    std::fs::write(work.path().join("big.bin"), vec![7u8; 64 * 1024]).unwrap();
    let out = sftp_batch(
        server.addr,
        "bob",
        Login::Key(&key),
        "-put big.bin big.bin\nget small.txt small.txt\n",
        work.path(),
    )
    .await;
    assert_success(&out, "bob's batch");
    wait_for("bob's download", || {
        read_records(&records).iter().any(|r| r[1] == "bob")
    })
    .await;
    let bobs: Vec<Vec<String>> = read_records(&records)
        .into_iter()
        .filter(|r| r[1] == "bob")
        .collect();
    assert_eq!(bobs.len(), 1, "{bobs:?}");
    assert_eq!(bobs[0][0], "download");
    assert!(!server.home("bob").join("big.bin").exists());
    server.stop().await;
}

#[tokio::test]
async fn a_hung_command_is_killed_at_its_timeout() {
    let work = tempfile::tempdir().unwrap();
    let script = work.path().join("hang.sh");
    let pid_file = work.path().join("pid");
    write_script(
        &script,
        &format!("echo $$ > {}\nexec sleep 600\n", pid_file.display()),
    );
    let script_path = script.display().to_string();
    let server = TestServer::start_with(
        |c| {
            c.sftpd.actions.execute_on = vec!["upload".into()];
            c.sftpd.actions.command = script_path;
            c.sftpd.actions.command_timeout = 1;
        },
        Tuning::default(),
    )
    .await;
    let key = keygen(work.path(), "ed25519");
    server
        .add_user("alice", None, &[&key], &common::all_perms())
        .await;
    let mut sftp = SftpClient::connect(server.addr, "alice", Credential::Key(&key.private()))
        .await
        .unwrap();
    sftp.put("/f.txt", b"data", 4096).await.unwrap();
    let core = server.core().clone();
    let timeout_line = r#"sftpgo_action_executions_total{kind="command",result="timeout"} 1"#;
    wait_for("the timeout", || {
        core.render_metrics().contains(timeout_line)
    })
    .await;
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Killed and reaped: no such process (a zombie would still have a /proc entry).
    wait_for("the process to be reaped", || {
        !Path::new(&format!("/proc/{pid}")).exists()
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn a_burst_of_uploads_never_exceeds_the_concurrency_bound() {
    const UPLOADS: usize = 1000;
    const BOUND: u32 = 4;
    let work = tempfile::tempdir().unwrap();
    let running = work.path().join("running");
    std::fs::create_dir(&running).unwrap();
    let log = work.path().join("log");
    let script = work.path().join("slow.sh");
    // Each run counts the runs alive with it (entries in `running`), sleeps, then logs.
    write_script(
        &script,
        &format!(
            "touch {r}/$$\nn=$(ls {r} | wc -l)\nsleep 0.05\necho \"$n $SFTPGO_ACTION_VIRTUAL_PATH\" >> {log}\nrm {r}/$$\n",
            r = running.display(),
            log = log.display()
        ),
    );
    let script_path = script.display().to_string();
    let server = TestServer::start_with(
        |c| {
            c.sftpd.actions.execute_on = vec!["upload".into()];
            c.sftpd.actions.command = script_path;
            c.sftpd.actions.max_concurrency = BOUND;
        },
        Tuning::default(),
    )
    .await;
    let key = keygen(work.path(), "ed25519");
    server
        .add_user("alice", None, &[&key], &common::all_perms())
        .await;
    let mut sftp = SftpClient::connect(server.addr, "alice", Credential::Key(&key.private()))
        .await
        .unwrap();
    for i in 0..UPLOADS {
        sftp.put(&format!("/f{i}.txt"), b"0123456789", 4096)
            .await
            .unwrap();
    }
    let lines = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    for _ in 0..2400 {
        if lines().len() >= UPLOADS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines = lines();
    assert_eq!(lines.len(), UPLOADS, "every action eventually runs");
    let mut paths = std::collections::HashSet::new();
    let mut max_seen = 0;
    for l in &lines {
        let (n, path) = l.split_once(' ').unwrap();
        max_seen = max_seen.max(n.trim().parse::<u32>().unwrap());
        paths.insert(path.to_string());
    }
    assert_eq!(paths.len(), UPLOADS, "one run per upload");
    eprintln!("at most {max_seen} commands observed running at once (bound {BOUND})");
    assert!(
        max_seen <= BOUND,
        "{max_seen} commands ran at once, bound {BOUND}"
    );
    server.stop().await;
}
