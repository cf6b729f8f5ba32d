//! Hostile inputs against a real server (#22): password hashes that ask too much work, and
//! password checks under a flood of simultaneous attempts.

mod common;

use common::client::{Credential, SftpClient};
use common::logs::Logs;
use common::*;
use serde_json::{Value, json};
use sftpgo::service::Tuning;
use sftpgo_provider::{Backend, Permission, User};

/// A stored hash asking for minutes of CPU or gigabytes of memory is refused when the API
/// is asked to store it (400, naming the limit), and a login against one found in the
/// database (stored by something else) fails at once with a log line saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expensive_password_hashes_are_refused_at_the_api_and_at_login() {
    let logs = Logs::install();
    let srv = TestServer::start_with(
        |_| {},
        Tuning {
            http_port: Some(0),
            ..Tuning::default()
        },
    )
    .await;
    let api = format!(
        "http://{}/api/v1/user",
        srv.running.as_ref().unwrap().http_addr.unwrap()
    );
    let expensive = [
        "$pbkdf2-sha256$2000000000$salt$HiA8CWifTWeVBazZUM/y0qdXKlATpiZCrHVyRo/gYnU=",
        "$argon2id$v=19$m=1048576,t=3,p=2$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$2b$31$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234",
    ];
    let client = reqwest::Client::new();
    for (i, hash) in expensive.iter().enumerate() {
        let resp = client
            .post(&api)
            .json(&json!({"username": format!("x{i}"), "password": hash,
                "home_dir": srv.home("x").display().to_string(), "permissions": ["*"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{hash}");
        let body: Value = resp.json().await.unwrap();
        let text = body.to_string();
        assert!(text.contains("over the limit"), "{hash}: {text}");
    }

    // Stored behind the provider's back (an older tool, a hand-edited database).
    let backend =
        sftpgo_provider::sqlite::SqliteBackend::open(&srv.dir.path().join("sftpgo.db"), "users")
            .await
            .unwrap();
    backend
        .insert_user(&User {
            username: "slow".into(),
            password: Some(expensive[0].into()),
            home_dir: srv.home("slow").display().to_string(),
            permissions: vec![Permission::Any],
            ..User::default()
        })
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert!(
        SftpClient::connect(srv.addr, "slow", Credential::Password("pw"))
            .await
            .is_err()
    );
    let line = logs
        .find(|l| {
            l["username"] == "slow" && l["error"].as_str().is_some_and(|e| e.contains("pbkdf2"))
        })
        .expect("the refusal is logged with its cause");
    assert!(
        line["error"].as_str().unwrap().contains("over the limit"),
        "{line}"
    );
    // (No timed assertion: the figure is for the reader of a failure.)
    eprintln!(
        "login against the expensive hash refused after {:?}",
        started.elapsed()
    );
    srv.stop().await;
}

/// With room for one password check at a time, a burst of simultaneous password logins
/// is served in turn: every right password logs in, every wrong one fails, none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_password_logins_are_checked_in_turn() {
    let srv = TestServer::start_with(
        |c| c.sftpd.password_check_memory_mib = 64,
        Tuning::default(),
    )
    .await;
    srv.add_user("burst", Some("right-pw"), &[], &all_perms())
        .await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let addr = srv.addr;
        tasks.push(tokio::spawn(async move {
            let pw = if i % 3 == 0 { "wrong-pw" } else { "right-pw" };
            let ok = SftpClient::connect(addr, "burst", Credential::Password(pw))
                .await
                .is_ok();
            (pw, ok)
        }));
    }
    for t in tasks {
        let (pw, ok) = t.await.unwrap();
        assert_eq!(ok, pw == "right-pw", "{pw}");
    }
    srv.stop().await;
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Waits until `done` holds; the bound (60 s) only keeps a regression from hanging the
/// suite, and `what` says what did not happen.
async fn eventually(mut done: impl FnMut() -> bool, what: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{}", what());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Connections that never authenticate are closed at the login timeout whatever state
/// their handshake is in: silent, stopped after the version line, stopped mid key
/// exchange. The server's file descriptors come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_timeout_closes_stalled_connections_in_every_handshake_state() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = TestServer::start_with(|c| c.sftpd.login_timeout = 1, Tuning::default()).await;
    // A first connection starts what the server sets up once (its connection threads'
    // runtimes): the baseline is taken after it ends.
    let mut first = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let mut sink = vec![0u8; 4096];
    while first.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    drop(first);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let baseline = open_fds();
    let mut conns = Vec::new();
    for i in 0..60 {
        let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        match i % 3 {
            0 => {} // silent
            1 => s.write_all(b"SSH-2.0-stalled\r\n").await.unwrap(),
            _ => {
                // Version line, then the start of a KEXINIT packet that never ends.
                s.write_all(b"SSH-2.0-stalled\r\n").await.unwrap();
                s.write_all(&[0, 0, 4, 0, 6, 20, 1, 2, 3]).await.unwrap();
            }
        }
        conns.push(s);
    }
    assert!(
        open_fds() >= baseline + 60,
        "the server holds the connections"
    );
    for (i, mut s) in conns.into_iter().enumerate() {
        // Read whatever the server sends until it closes; the bound only keeps a
        // regression from hanging the suite.
        let mut sink = vec![0u8; 4096];
        let closed = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            loop {
                match s.read(&mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "connection {i} (kind {}) was closed", i % 3);
    }
    // Our ends are closed too now: the server's fds are back to the baseline.
    eventually(
        || open_fds() <= baseline,
        || format!("fds back to {baseline}: {}", open_fds()),
    )
    .await;
    srv.stop().await;
}

/// One SSH connection may have `max_channels_per_connection` channels open at once: the
/// next is refused, the open ones keep working, and closing one makes room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_per_connection_are_bounded() {
    let srv = TestServer::start_with(
        |c| c.sftpd.max_channels_per_connection = 4,
        Tuning::default(),
    )
    .await;
    srv.add_user("chan", Some("chan-pw"), &[], &all_perms())
        .await;
    let handle = common::client::ssh_connect(srv.addr, "chan", Credential::Password("chan-pw"))
        .await
        .unwrap();
    let mut open = Vec::new();
    for _ in 0..4 {
        let ch = handle.channel_open_session().await.unwrap();
        ch.request_subsystem(true, "sftp").await.unwrap();
        open.push(ch);
    }
    assert!(
        handle.channel_open_session().await.is_err(),
        "a fifth channel is refused"
    );
    // Closing one makes room for another.
    let closed = open.pop().unwrap();
    closed.close().await.unwrap();
    let mut reopened = None;
    for _ in 0..100 {
        if let Ok(ch) = handle.channel_open_session().await {
            reopened = Some(ch);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(reopened.is_some(), "a closed channel frees its place");
    // Another connection of the same user has its own channels.
    let mut c = SftpClient::connect(srv.addr, "chan", Credential::Password("chan-pw"))
        .await
        .unwrap();
    c.put("/ok.txt", b"still served", 100).await.unwrap();
    srv.stop().await;
}

/// `max_per_host_connections` and `max_total_connections` refuse connections at accept,
/// before any handshake (the client gets no SSH banner), log the address and count the
/// refusal; connections that end free their places.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits_refuse_at_accept_and_free_places() {
    use tokio::io::AsyncReadExt;
    let logs = Logs::install();
    let srv = TestServer::start_with(
        |c| {
            c.sftpd.max_per_host_connections = 3;
            c.sftpd.max_total_connections = 5;
        },
        Tuning::default(),
    )
    .await;
    // Three held from 127.0.0.1 (they get the server's banner).
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        let mut banner = [0u8; 7];
        s.read_exact(&mut banner).await.unwrap();
        assert_eq!(&banner, b"SSH-2.0");
        held.push(s);
    }
    // The fourth from the same address is closed without a byte.
    let refused_read = |mut s: tokio::net::TcpStream| async move {
        let mut buf = [0u8; 64];
        tokio::time::timeout(std::time::Duration::from_secs(30), s.read(&mut buf))
            .await
            .expect("closed, not left hanging")
    };
    let s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    assert!(
        matches!(refused_read(s).await, Ok(0) | Err(_)),
        "per-host limit"
    );
    // Another address (127.0.0.2 is loopback too) still gets in, up to the total.
    let other = srv.addr.port();
    let connect_from = |ip: &'static str| async move {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{ip}:0").parse().unwrap()).unwrap();
        sock.connect(format!("127.0.0.1:{other}").parse().unwrap())
            .await
            .unwrap()
    };
    for _ in 0..2 {
        let mut s = connect_from("127.0.0.2").await;
        let mut banner = [0u8; 7];
        s.read_exact(&mut banner).await.unwrap();
        held.push(s);
    }
    let s = connect_from("127.0.0.3").await;
    assert!(
        matches!(refused_read(s).await, Ok(0) | Err(_)),
        "total limit"
    );
    assert!(
        logs.find(|l| l["message"] == "connection refused"
            && l["remote_addr"]
                .as_str()
                .is_some_and(|a| a.starts_with("127.0.0.3")))
            .is_some(),
        "the refusal is logged with the address"
    );
    let metrics = srv.core().render_metrics();
    assert!(
        metrics
            .contains(r#"sftpgo_connections_refused_total{reason="max_per_host_connections"} 1"#)
            && metrics
                .contains(r#"sftpgo_connections_refused_total{reason="max_total_connections"} 1"#),
        "{metrics}"
    );
    // Closing the held connections frees their places.
    drop(held);
    eventually(
        || srv.core().admission().open() == 0,
        || "places freed".into(),
    )
    .await;
    let key = keygen(srv.dir.path(), "ed25519");
    srv.add_user("lim", None, &[&key], &all_perms()).await;
    let work = tempfile::tempdir().unwrap();
    let out = sftp_batch(srv.addr, "lim", Login::Key(&key), "ls\n", work.path()).await;
    assert_success(&out, "a login after the attack");
    srv.stop().await;
}

/// The REST API closes connections that send no complete request headers within
/// `HEADER_READ_TIMEOUT` (idle ones and ones trickling a header a byte at a time), and
/// serves at most `MAX_CONNECTIONS` at once: one more is closed at accept. Once the
/// flood's connections are closed, the API answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_closes_idle_and_slow_connections_and_caps_them() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = TestServer::start_with(
        |_| {},
        Tuning {
            http_port: Some(0),
            ..Tuning::default()
        },
    )
    .await;
    let api = srv.running.as_ref().unwrap().http_addr.unwrap();
    let mut idle = Vec::new();
    for _ in 0..sftpgo_httpd::MAX_CONNECTIONS {
        idle.push(tokio::net::TcpStream::connect(api).await.unwrap());
    }
    let mut slow = idle.pop().unwrap();
    slow.write_all(b"GET /api/v1/version HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Give the server time to take them all, then one more is closed without an answer.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut extra = tokio::net::TcpStream::connect(api).await.unwrap();
    let _ = extra
        .write_all(b"GET /api/v1/version HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(std::time::Duration::from_secs(30), extra.read(&mut buf))
        .await
        .expect("closed, not left hanging")
        .unwrap_or(0);
    assert_eq!(n, 0, "over the cap: closed without an answer");
    // The slow client trickles its headers; the server closes it anyway.
    let trickle = tokio::spawn(async move {
        for i in 0..60 {
            if slow
                .write_all(format!("X-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                return true;
            }
            let mut b = [0u8; 64];
            match tokio::time::timeout(std::time::Duration::from_secs(1), slow.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => {}
            }
        }
        false
    });
    for (i, mut s) in idle.into_iter().enumerate() {
        let r = tokio::time::timeout(std::time::Duration::from_secs(60), s.read(&mut buf)).await;
        assert!(
            matches!(r, Ok(Ok(_)) | Ok(Err(_))),
            "idle connection {i} closed by the server"
        );
    }
    assert!(trickle.await.unwrap(), "the trickling client was closed");
    let version = reqwest::get(format!("http://{api}/api/v1/version"))
        .await
        .unwrap();
    assert_eq!(
        version.status(),
        200,
        "the API answers once the flood is gone"
    );
    srv.stop().await;
}

fn abandon_script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/paramiko_abandon.py")
}

async fn run_abandon(args: &[&str]) {
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new("python3")
            .arg(abandon_script())
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the client finished")
    .expect("python3 runs");
    assert_success(&out, &format!("paramiko_abandon {args:?}"));
}

/// Waits until no connection is registered and the process's fds are back to `baseline`.
async fn wait_until_freed(srv: &TestServer, baseline: usize, what: &str) {
    eventually(
        || srv.core().registry().is_empty() && open_fds() <= baseline,
        || {
            let (conns, fds) = (srv.core().registry().len(), open_fds());
            format!("{what}: {conns} connections still registered, {fds} fds (baseline {baseline})")
        },
    )
    .await;
}

/// Sessions end with their connection, whatever they wait for (#22 defect 2). Clients
/// that keep more requests outstanding than the server serves at once, stop reading the
/// replies and then disconnect: paramiko's prefetch of a large file on 20 connections,
/// and pipelined STATs never read on 8 channels of one connection (a flood that fills
/// what the sessions may hold, so russh stops reading the socket). The server ends them
/// although it no longer read their sockets, logs their transfers as aborted, closes
/// their files and unregisters them: fds and connections back to the baseline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_with_their_connection_whatever_they_wait_for() {
    if !paramiko_available() {
        return;
    }
    let logs = Logs::install();
    let srv = TestServer::start_with(|_| {}, Tuning::default()).await;
    let user = "abandon";
    let pw = "abandon-pw";
    srv.add_user(user, Some(pw), &[], &all_perms()).await;
    let home = srv.home(user);
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("big.bin"), pattern(30 << 20, 7)).unwrap();
    std::fs::write(home.join("held.bin"), b"held").unwrap();
    // A first session sets up what the server keeps (its connection threads).
    let mut c = SftpClient::connect(srv.addr, user, Credential::Password(pw))
        .await
        .unwrap();
    c.put("/warm.txt", b"warm", 100).await.unwrap();
    drop(c);
    wait_until_freed(&srv, usize::MAX, "warm-up").await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let baseline = open_fds();
    let port = srv.addr.port().to_string();

    run_abandon(&["prefetch", &port, user, pw, "/big.bin", "20"]).await;
    wait_until_freed(&srv, baseline, "cancelled prefetch downloads").await;
    let aborted = logs
        .lines()
        .into_iter()
        .filter(|l| {
            l["message"] == "transfer"
                && l["username"] == user
                && l["file_path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("big.bin"))
                && l["status"].as_str().is_some_and(|s| s != "ok")
        })
        .count();
    assert_eq!(aborted, 20, "each download is logged as not completed");

    run_abandon(&["statflood", &port, user, pw, "8", "3"]).await;
    wait_until_freed(&srv, baseline, "unread STAT flood").await;
    let held = logs
        .lines()
        .into_iter()
        .filter(|l| {
            l["message"] == "transfer"
                && l["username"] == user
                && l["file_path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("held.bin"))
        })
        .count();
    assert_eq!(held, 8, "each flooding session ended and closed its file");
    // The flood fills what the sessions hold and russh stops reading the socket, so the
    // client's close may stay queued behind its requests: the server ends such a
    // connection itself, saying why.
    assert!(
        logs.find(|l| l["message"].as_str().is_some_and(|m| {
            m.starts_with("client gone while replies were waiting")
                || m.starts_with("client reads no replies and keeps sending requests")
        }) && l["username"] == user)
            .is_some(),
        "the server ended the flooding connection it no longer read"
    );
    // The server still serves.
    let mut c = SftpClient::connect(srv.addr, user, Credential::Password(pw))
        .await
        .unwrap();
    c.put("/after.txt", b"after", 100).await.unwrap();
    srv.stop().await;
}

/// `max_open_files_per_user` bounds the files one user has open over all of their
/// connections and channels (#22 defect 4): the next OPEN fails at once with a clear
/// status and a log line, other users are not affected, and a CLOSE makes room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_files_are_bounded_per_user_across_connections() {
    use sftpgo_sftp::codec::{SSH_FX_FAILURE, SSH_FX_OK, SSH_FXF_READ};
    let logs = Logs::install();
    let srv =
        TestServer::start_with(|c| c.sftpd.max_open_files_per_user = 5, Tuning::default()).await;
    for name in ["files1", "files2"] {
        srv.add_user(name, Some("files-pw"), &[], &all_perms())
            .await;
        std::fs::create_dir_all(srv.home(name)).unwrap();
        std::fs::write(srv.home(name).join("f"), b"data").unwrap();
    }
    let cred = || Credential::Password("files-pw");
    // Two connections of files1: three files on one, two on the other.
    let mut a = SftpClient::connect(srv.addr, "files1", cred())
        .await
        .unwrap();
    let mut b = SftpClient::connect(srv.addr, "files1", cred())
        .await
        .unwrap();
    let mut held = Vec::new();
    for i in 0..5 {
        let c = if i < 3 { &mut a } else { &mut b };
        held.push(
            c.open("/f", SSH_FXF_READ)
                .await
                .unwrap()
                .expect("within the limit"),
        );
    }
    // A sixth is refused, on either connection, for uploads as for downloads.
    assert_eq!(
        a.open("/f", SSH_FXF_READ).await.unwrap(),
        Err(SSH_FX_FAILURE)
    );
    assert!(b.put("/new.txt", b"x", 100).await.is_err());
    assert!(
        logs.find(
            |l| l["message"] == "refused: the user has too many files open"
                && l["username"] == "files1"
                && l["max_open_files"] == 5
        )
        .is_some()
    );
    // Another user is not affected.
    let mut other = SftpClient::connect(srv.addr, "files2", cred())
        .await
        .unwrap();
    assert!(other.open("/f", SSH_FXF_READ).await.unwrap().is_ok());
    // A CLOSE makes room, and a connection that ends gives its files back.
    let h = held.pop().unwrap();
    assert_eq!(b.close(&h).await.unwrap(), SSH_FX_OK);
    b.put("/new.txt", b"x", 100).await.unwrap();
    drop(a);
    let mut c = SftpClient::connect(srv.addr, "files1", cred())
        .await
        .unwrap();
    let mut opened = 0;
    for _ in 0..100 {
        if c.open("/f", SSH_FXF_READ).await.unwrap().is_ok() {
            opened += 1;
            if opened == 3 {
                break;
            }
        } else {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    assert_eq!(
        opened, 3,
        "the closed connection's three files were given back"
    );
    // Open transfers would hold the shutdown for its grace period.
    drop((b, c, other));
    srv.stop().await;
}

/// One user's request lines are rate-limited (#22 defect 5): an OPEN/CLOSE loop writes
/// a burst of transfer lines, then about 100 a second, then one line saying how many were
/// suppressed; failed logins during the flood are all logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_requests_cannot_flood_the_log() {
    use sftpgo_sftp::codec::{SSH_FX_OK, SSH_FXF_CREAT, SSH_FXF_WRITE};
    let logs = Logs::install();
    let srv = TestServer::start().await;
    srv.add_user("flood", Some("flood-pw"), &[], &all_perms())
        .await;
    let mut c = SftpClient::connect(srv.addr, "flood", Credential::Password("flood-pw"))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let rounds: u64 = 3000;
    for i in 0..rounds {
        let h = c
            .open("/empty", SSH_FXF_WRITE | SSH_FXF_CREAT)
            .await
            .unwrap()
            .expect("opened");
        assert_eq!(c.close(&h).await.unwrap(), SSH_FX_OK);
        if i % 1000 == 0 {
            // Failed logins meanwhile are never suppressed.
            assert!(
                SftpClient::connect(srv.addr, "flood", Credential::Password("wrong"))
                    .await
                    .is_err()
            );
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ours = |l: &&serde_json::Value| l["username"] == "flood";
    let count = |lines: &[serde_json::Value]| {
        let transfers = lines
            .iter()
            .filter(ours)
            .filter(|l| l["message"] == "transfer")
            .count() as u64;
        let suppressed: u64 = lines
            .iter()
            .filter(ours)
            .filter(|l| {
                l["message"] == "log lines about this user's requests suppressed (rate limit)"
            })
            .map(|l| l["suppressed_lines"].as_u64().unwrap())
            .sum();
        (transfers, suppressed)
    };
    let (transfers, _) = count(&logs.lines());
    let allowed = 1000.0 + 100.0 * (elapsed + 0.5);
    assert!(
        (transfers as f64) <= allowed + 2.0,
        "{transfers} transfer lines for {rounds} uploads in {elapsed:.1} s"
    );
    // The user's last connection ends: what was suppressed since the last report is told.
    drop(c);
    eventually(
        || {
            let (t, s) = count(&logs.lines());
            t + s >= rounds
        },
        || {
            format!(
                "{:?} of {rounds} transfers logged or counted",
                count(&logs.lines())
            )
        },
    )
    .await;
    let lines = logs.lines();
    let (transfers, suppressed) = count(&lines);
    assert!(suppressed > 0, "the suppressed lines are counted");
    assert_eq!(
        transfers + suppressed,
        rounds,
        "every transfer is either logged or counted"
    );
    let summaries = lines
        .iter()
        .filter(ours)
        .filter(|l| l["message"] == "log lines about this user's requests suppressed (rate limit)")
        .count() as f64;
    assert!(
        summaries <= elapsed / 10.0 + 2.0,
        "{summaries} summaries in {elapsed:.1} s"
    );
    let failed = lines
        .iter()
        .filter(ours)
        .filter(|l| l["message"] == "login failed")
        .count();
    assert_eq!(failed, 3, "every failed login is logged");
    srv.stop().await;
}
