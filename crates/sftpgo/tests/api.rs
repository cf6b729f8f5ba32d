//! The REST API over HTTP with curl, against a server with live SFTP sessions.

mod common;

use std::time::{Duration, Instant};

use common::client::{Credential, SftpClient};
use common::*;
use serde_json::{Value, json};
use sftpgo::service::Tuning;

async fn curl(method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args([
        "-s",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
        "-H",
        "X-Request-Id: test-req-1",
        url,
    ]);
    if let Some(b) = body {
        cmd.args([
            "-H",
            "Content-Type: application/json",
            "--data",
            &b.to_string(),
        ]);
    }
    let out = cmd.output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (
        code.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_manages_users_and_sees_and_kills_live_transfers() {
    let tuning = Tuning {
        http_port: Some(0),
        ..Tuning::default()
    };
    let srv = TestServer::start_with(|_| {}, tuning).await;
    let base = format!(
        "http://{}/api/v1",
        srv.running.as_ref().unwrap().http_addr.unwrap()
    );
    let (code, v) = curl("GET", &format!("{base}/version"), None).await;
    assert_eq!(code, 200);
    assert!(v["version"].is_string());
    // A user created through the API logs in over SFTP.
    let home = srv.home("apiuser");
    let user = json!({"username": "apiuser", "password": "pw", "home_dir": home.display().to_string(),
                      "permissions": ["*"], "upload_bandwidth": 500});
    let (code, created) = curl("POST", &format!("{base}/user"), Some(&user)).await;
    assert_eq!(code, 200, "{created}");
    assert!(created.get("password").is_none());
    let (code, _) = curl("POST", &format!("{base}/user"), Some(&user)).await;
    assert_eq!(code, 409);
    let addr = srv.addr;
    let upload = tokio::spawn(async move {
        let mut c = SftpClient::connect(addr, "apiuser", Credential::Password("pw"))
            .await
            .unwrap();
        c.put("/slow.bin", &pattern(8 << 20, 3), 32 * 1024).await
    });
    // The running upload is visible with its virtual path...
    let start = Instant::now();
    let conn = loop {
        let (_, list) = curl("GET", &format!("{base}/connection"), None).await;
        if let Some(c) = list.as_array().and_then(|l| {
            l.iter()
                .find(|c| !c["active_transfers"].as_array().unwrap().is_empty())
        }) {
            break c.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "transfer never listed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(conn["username"], "apiuser");
    assert_eq!(conn["protocol"], "SFTP");
    assert!(
        conn["client_version"]
            .as_str()
            .unwrap()
            .starts_with("SSH-2.0-")
    );
    let t = &conn["active_transfers"][0];
    assert_eq!(
        (t["operation_type"].as_str(), t["path"].as_str()),
        (Some("upload"), Some("/slow.bin"))
    );
    // ...and the alias path lists it too.
    let (_, alias) = curl("GET", &format!("{base}/sftp_connection"), None).await;
    assert_eq!(alias.as_array().unwrap().len(), 1);
    // DELETE ends it: the client sees the connection drop.
    let id = conn["connection_id"].as_str().unwrap();
    let (code, v) = curl("DELETE", &format!("{base}/connection/{id}"), None).await;
    assert_eq!(
        (code, v["message"].as_str()),
        (200, Some("Connection closed"))
    );
    let res = tokio::time::timeout(Duration::from_secs(10), upload)
        .await
        .expect("client noticed")
        .unwrap();
    assert!(res.is_err());
    assert_eq!(
        curl("DELETE", &format!("{base}/connection/{id}"), None)
            .await
            .0,
        404
    );
    // Quota scan and user deletion.
    let (code, _) = curl(
        "POST",
        &format!("{base}/quota_scan"),
        Some(&json!({"username": "apiuser"})),
    )
    .await;
    assert_eq!(code, 201);
    let uid = created["id"].as_i64().unwrap();
    assert_eq!(
        curl("DELETE", &format!("{base}/user/{uid}"), None).await.0,
        200
    );
    assert_eq!(
        curl("GET", &format!("{base}/user/{uid}"), None).await.0,
        404
    );
    srv.stop().await;
}

/// curl with extra arguments; returns (exit code, HTTP status, response headers, body).
async fn curl_raw(args: &[&str]) -> (i32, u16, String, String) {
    let out = tokio::process::Command::new("curl")
        .args([
            "-s",
            "-D",
            "-",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "--max-time",
            "20",
        ])
        .args(args)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (rest, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (headers, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
    (
        out.status.code().unwrap_or(-1),
        code.trim().parse().unwrap_or(0),
        headers.to_ascii_lowercase(),
        body.to_string(),
    )
}

fn htpasswd(dir: &std::path::Path, user: &str, password: &str) -> std::path::PathBuf {
    let hash = bcrypt::hash_with_result(password, 4)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY);
    let path = dir.join("htpasswd");
    std::fs::write(&path, format!("{user}:{hash}\n")).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_protects_every_endpoint() {
    let extra = tempfile::tempdir().unwrap();
    let file = htpasswd(extra.path(), "admin", "pa ss");
    let tuning = Tuning {
        http_port: Some(0),
        ..Tuning::default()
    };
    let srv = TestServer::start_with(
        |c| c.httpd.auth_user_file = file.display().to_string(),
        tuning,
    )
    .await;
    let base = format!(
        "http://{}/api/v1",
        srv.running.as_ref().unwrap().http_addr.unwrap()
    );
    for path in [
        "version",
        "user",
        "connection",
        "quota_scan",
        "openapi.yaml",
    ] {
        let url = format!("{base}/{path}");
        let (_, code, headers, body) = curl_raw(&[&url]).await;
        assert_eq!(code, 401, "{path}");
        assert!(
            headers.contains("www-authenticate: basic realm=\"sftpgo\""),
            "{headers}"
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], 401);
        let (_, code, _, _) = curl_raw(&["-u", "admin:wrong", &url]).await;
        assert_eq!(code, 401, "{path}");
        let (_, code, _, _) = curl_raw(&["-u", "admin:pa ss", &url]).await;
        assert_eq!(code, 200, "{path}");
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_generated_certificate() {
    let extra = tempfile::tempdir().unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = extra.path().join("api.crt");
    let key = extra.path().join("api.key");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let tuning = Tuning {
        http_port: Some(0),
        ..Tuning::default()
    };
    let (c, k) = (cert.display().to_string(), key.display().to_string());
    let srv = TestServer::start_with(
        |cfg| {
            cfg.httpd.certificate_file = c;
            cfg.httpd.certificate_key_file = k;
        },
        tuning,
    )
    .await;
    let addr = srv.running.as_ref().unwrap().http_addr.unwrap();
    let url = format!("https://{addr}/api/v1/version");
    let ca = cert.display().to_string();
    let (exit, code, _, body) = curl_raw(&["--cacert", &ca, &url]).await;
    assert_eq!((exit, code), (0, 200), "{body}");
    assert!(serde_json::from_str::<Value>(&body).unwrap()["version"].is_string());
    // Unknown CA: refused by the client (curl exit 60).
    let (exit, _, _, _) = curl_raw(&[&url]).await;
    assert_eq!(exit, 60);
    // Plain HTTP to the TLS port gets no HTTP answer.
    let (exit, code, _, _) = curl_raw(&[&format!("http://{addr}/api/v1/version")]).await;
    assert!(exit != 0 && code == 0, "exit {exit} code {code}");
    // The TLS port still serves after the bad client.
    let (exit, code, _, _) = curl_raw(&["--cacert", &ca, &url]).await;
    assert_eq!((exit, code), (0, 200));
    srv.stop().await;
}

#[tokio::test]
async fn bad_auth_file_or_certificate_stops_the_start() {
    let extra = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tuning = || Tuning {
        http_port: Some(0),
        ..Tuning::default()
    };
    let mut config = sftpgo_config::Config::default();
    config.sftpd.bind_port = 0;
    config.sftpd.bind_address = "127.0.0.1".into();
    config.httpd.auth_user_file = "missing.htpasswd".into();
    let err = sftpgo::service::start(&config, dir.path(), tuning())
        .await
        .err()
        .expect("start fails");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("httpd.auth_user_file") && msg.contains("missing.htpasswd"),
        "{msg}"
    );
    config.httpd.auth_user_file = String::new();
    let bad = extra.path().join("bad.pem");
    std::fs::write(&bad, "garbage").unwrap();
    config.httpd.certificate_file = bad.display().to_string();
    config.httpd.certificate_key_file = bad.display().to_string();
    let err = sftpgo::service::start(&config, dir.path(), tuning())
        .await
        .err()
        .expect("start fails");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("certificate") && msg.contains("bad.pem"),
        "{msg}"
    );
}

/// Runs `sftpgo api <args>`; returns (exit code, stdout, stderr).
async fn cli(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sftpgo"))
        .arg("api")
        .args(args)
        .env_remove("SFTPGO_API_URL")
        .env_remove("SFTPGO_API_USER")
        .env_remove("SFTPGO_API_PASSWORD")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_client_end_to_end() {
    let tuning = Tuning {
        http_port: Some(0),
        ..Tuning::default()
    };
    let srv = TestServer::start_with(|_| {}, tuning).await;
    let url = format!(
        "http://{}",
        srv.running.as_ref().unwrap().http_addr.unwrap()
    );
    let key = keygen(srv.dir.path(), "ed25519");
    let home = srv.home("carol").display().to_string();
    let u = url.as_str();

    let (code, out, err) = cli(&["--url", u, "version"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("sftpgo "), "{out}");
    let (code, out, _) = cli(&["--url", u, "--json", "version"]).await;
    assert_eq!(code, 0);
    assert!(json_of(&out)["version"].is_string());

    // add, with sizes in units, a key and a permission list.
    let (code, out, err) = cli(&[
        "--url",
        u,
        "--json",
        "users",
        "add",
        "carol",
        "--password",
        "pw1",
        "--public-key",
        &key.public,
        "--home-dir",
        &home,
        "--permissions",
        "list,download,upload",
        "--quota-size",
        "1GB",
        "--quota-files",
        "100",
        "--max-sessions",
        "2",
        "--upload-bandwidth",
        "500",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let created = json_of(&out);
    let id = created["id"].as_i64().unwrap().to_string();
    assert_eq!(created["quota_size"], 1_000_000_000);
    assert_eq!(
        created["permissions"],
        json!(["list", "download", "upload"])
    );
    assert_eq!(created["public_keys"][0], key.public);
    assert!(created.get("password").is_none());
    // The password works over SFTP.
    let c = SftpClient::connect(srv.addr, "carol", Credential::Password("pw1")).await;
    assert!(c.is_ok());
    drop(c);

    // Duplicate: the API's message, exit 1.
    let (code, out, err) = cli(&[
        "--url",
        u,
        "users",
        "add",
        "carol",
        "--password",
        "x",
        "--home-dir",
        &home,
        "--permissions",
        "*",
    ])
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("409") && err.contains("already exists"),
        "{err}"
    );

    // list (table and JSON), get.
    let (code, out, _) = cli(&["--url", u, "users", "list"]).await;
    assert_eq!(code, 0);
    let mut lines = out.lines();
    assert!(lines.next().unwrap().starts_with("ID  USERNAME"), "{out}");
    assert!(lines.next().unwrap().contains("carol"), "{out}");
    let (_, out, _) = cli(&[
        "--url",
        u,
        "--json",
        "users",
        "list",
        "--username",
        "carol",
        "--limit",
        "5",
    ])
    .await;
    assert_eq!(json_of(&out).as_array().unwrap().len(), 1);
    let (_, out, _) = cli(&["--url", u, "users", "list", "--username", "nobody"]).await;
    assert_eq!(out, "No users.\n");
    let (code, out, _) = cli(&["--url", u, "users", "get", &id]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("username") && out.contains("carol") && out.contains("953.7 MiB"),
        "{out}"
    );

    // update sends only what is given.
    let (code, out, err) = cli(&[
        "--url",
        u,
        "users",
        "update",
        &id,
        "--quota-files",
        "7",
        "--permissions",
        "*",
    ])
    .await;
    assert_eq!((code, out.as_str()), (0, "User updated\n"), "{err}");
    let (_, out, _) = cli(&["--url", u, "--json", "users", "get", &id]).await;
    let after = json_of(&out);
    assert_eq!(
        (after["quota_files"].as_i64(), after["quota_size"].as_i64()),
        (Some(7), Some(1_000_000_000))
    );
    assert_eq!(after["permissions"], json!(["*"]));
    assert_eq!(after["public_keys"][0], key.public);
    let c = SftpClient::connect(srv.addr, "carol", Credential::Password("pw1")).await;
    assert!(c.is_ok(), "password kept");
    drop(c);
    // Validation errors show the field.
    let (code, _, err) = cli(&["--url", u, "users", "update", &id, "--home-dir", "relative"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("400") && err.contains("home_dir"), "{err}");
    let (code, _, err) = cli(&["--url", u, "users", "update", &id]).await;
    assert_eq!(code, 1);
    assert!(err.contains("nothing to update"), "{err}");

    // connections and quota scans.
    let (code, out, _) = cli(&["--url", u, "connections", "list"]).await;
    assert_eq!((code, out.as_str()), (0, "No connections.\n"));
    let (code, out, _) = cli(&["--url", u, "--json", "connections", "list"]).await;
    assert_eq!((code, json_of(&out)), (0, json!([])));
    let (code, _, err) = cli(&["--url", u, "connections", "close", "abc/def"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");
    let (code, out, err) = cli(&["--url", u, "quota-scan", "start", "carol"]).await;
    assert_eq!((code, out.as_str()), (0, "Scan started\n"), "{err}");
    let (code, out, _) = cli(&["--url", u, "--json", "quota-scan", "list"]).await;
    assert_eq!(code, 0);
    assert!(json_of(&out).is_array());
    let (code, _, err) = cli(&["--url", u, "quota-scan", "start", "ghost"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");

    // delete.
    let (code, out, _) = cli(&["--url", u, "users", "delete", &id]).await;
    assert_eq!((code, out.as_str()), (0, "User deleted\n"));
    let (code, _, err) = cli(&["--url", u, "users", "get", &id]).await;
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");
    srv.stop().await;

    // A server that is gone: a clear message, exit 1.
    let (code, _, err) = cli(&["--url", u, "version"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach the API at"), "{err}");
}

/// `sftpgo api folders ...`, `users ... --virtual-folder`, folder quota scans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_client_manages_folders() {
    let tuning = Tuning {
        http_port: Some(0),
        ..Tuning::default()
    };
    let srv = TestServer::start_with(|_| {}, tuning).await;
    let url = format!(
        "http://{}",
        srv.running.as_ref().unwrap().http_addr.unwrap()
    );
    let u = url.as_str();
    // A space, '&' and '+' in the mapped path: the folder_path query value is encoded.
    let shared_dir = srv.dir.path().join("shared & co+1");
    std::fs::create_dir_all(&shared_dir).unwrap();
    std::fs::write(shared_dir.join("a.bin"), vec![b'x'; 1500]).unwrap();
    std::fs::create_dir(shared_dir.join("sub")).unwrap();
    std::fs::write(shared_dir.join("sub").join("b.txt"), b"hello").unwrap();
    let shared = shared_dir.display().to_string();
    let drop_dir = srv.dir.path().join("drop").display().to_string();
    let home = srv.home("dave").display().to_string();

    // add: a local folder, and a bucket prefix (whose secret is never shown).
    let (code, out, err) = cli(&["--url", u, "folders", "add", &shared]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("mapped_path        {shared}\n"))
            && out.contains("storage            local\n")
            && out.contains("users              -\n"),
        "{out}"
    );
    let (code, out, err) = cli(&[
        "--url",
        u,
        "--json",
        "folders",
        "add",
        "/s3/archive",
        "--fs",
        "s3",
        "--s3-bucket",
        "archive",
        "--s3-endpoint",
        "http://127.0.0.1:9",
        "--s3-key-prefix",
        "archive/",
        "--s3-access-key",
        "AKID",
        "--s3-access-secret",
        "sekrit-42",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let archive = json_of(&out);
    assert_eq!(archive["filesystem"]["provider"], 1);
    assert_eq!(archive["filesystem"]["s3config"]["bucket"], "archive");
    assert!(!out.contains("sekrit-42"), "{out}");
    // Duplicate: the API's 409, exit 1.
    let (code, out, err) = cli(&["--url", u, "folders", "add", &shared]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("409") && err.contains("already exists"),
        "{err}"
    );

    // A user mapping the known folder in its quota, and an unknown one (created, local).
    let in_user = format!("/shared={shared}:-1:-1");
    let own = format!("/drop/in={drop_dir}:10MB:100");
    let (code, out, err) = cli(&[
        "--url",
        u,
        "--json",
        "users",
        "add",
        "dave",
        "--password",
        "pw",
        "--home-dir",
        &home,
        "--permissions",
        "*",
        "--virtual-folder",
        &in_user,
        "--virtual-folder",
        &own,
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let created = json_of(&out);
    let id = created["id"].as_i64().unwrap().to_string();
    assert_eq!(
        created["virtual_folders"],
        json!([
            {"virtual_path": "/shared", "mapped_path": shared, "quota_size": -1, "quota_files": -1},
            {"virtual_path": "/drop/in", "mapped_path": drop_dir, "quota_size": 10_000_000, "quota_files": 100},
        ])
    );
    // A bad value: refused before any request, with the form expected.
    let (code, out, err) = cli(&[
        "--url",
        u,
        "users",
        "add",
        "eve",
        "--home-dir",
        &home,
        "--virtual-folder",
        "/x=/srv/x:10G",
    ])
    .await;
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains("--virtual-folder") && err.contains("QUOTA_SIZE:QUOTA_FILES"),
        "{err}"
    );
    // A server-side rule: its 400 and the field.
    let (code, _, err) = cli(&[
        "--url",
        u,
        "users",
        "update",
        &id,
        "--virtual-folder",
        &format!("/={shared}"),
    ])
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("400") && err.contains("virtual_folders.virtual_path"),
        "{err}"
    );

    // list (table, filter, JSON) and get.
    let (code, out, err) = cli(&["--url", u, "folders", "list"]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[0].starts_with("MAPPED PATH  ") && lines[0].ends_with("USERS"),
        "{out}"
    );
    let row = |p: &str| {
        *lines
            .iter()
            .find(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("no {p} in {out}"))
    };
    assert!(row("/s3/archive").contains("s3://archive/archive/ at http://127.0.0.1:9"));
    assert!(row("/s3/archive").ends_with(" -"), "{out}");
    assert!(
        row(&drop_dir).contains(" local ") && row(&drop_dir).ends_with(" dave"),
        "{out}"
    );
    assert!(row(&shared).ends_with(" dave"), "{out}");
    let (code, out, _) = cli(&[
        "--url",
        u,
        "--json",
        "folders",
        "list",
        "--folder-path",
        &shared,
        "--limit",
        "5",
    ])
    .await;
    assert_eq!(code, 0);
    let listed = json_of(&out);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{out}");
    assert_eq!(listed[0]["users"], json!(["dave"]));
    let (code, out, _) = cli(&["--url", u, "--json", "folders", "list", "--order", "desc"]).await;
    assert_eq!(code, 0);
    let all = json_of(&out);
    let order: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["mapped_path"].as_str().unwrap())
        .collect();
    let mut sorted = order.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(order, sorted);
    let (code, out, err) = cli(&["--url", u, "folders", "get", &drop_dir]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("users              dave\n"), "{out}");
    let (code, out, err) = cli(&["--url", u, "users", "get", &id]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "virtual_folders     /shared -> {shared} (in the user's quota)\n"
        )) && out.contains(&format!(
            "/drop/in -> {drop_dir} (own quota: 9.5 MiB, 100 files)\n"
        )),
        "{out}"
    );
    let (code, out, _) = cli(&["--url", u, "users", "list"]).await;
    assert_eq!(code, 0);
    assert!(out.lines().next().unwrap().ends_with("FOLDERS"), "{out}");
    assert!(out.lines().nth(1).unwrap().ends_with(" 2"), "{out}");
    // The files of both folders are reachable over SFTP.
    let mut c = SftpClient::connect(srv.addr, "dave", Credential::Password("pw"))
        .await
        .unwrap();
    assert_eq!(c.get("/shared/sub/b.txt").await.unwrap(), b"hello");
    drop(c);

    // update a folder's storage: only what is given (the secret is kept).
    let (code, out, err) = cli(&[
        "--url",
        u,
        "folders",
        "update",
        "/s3/archive",
        "--s3-key-prefix",
        "reports/",
    ])
    .await;
    assert_eq!((code, out.as_str()), (0, "Folder updated\n"), "{err}");
    let (code, out, _) = cli(&["--url", u, "--json", "folders", "get", "/s3/archive"]).await;
    assert_eq!(code, 0);
    let after = json_of(&out);
    assert_eq!(after["filesystem"]["s3config"]["key_prefix"], "reports/");
    assert_eq!(after["filesystem"]["s3config"]["access_key"], "AKID");
    assert_eq!(
        after["filesystem"]["s3config"]["endpoint"],
        "http://127.0.0.1:9"
    );
    let (code, _, err) = cli(&["--url", u, "folders", "update", "/s3/archive"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("nothing to update"), "{err}");
    let (code, _, err) = cli(&["--url", u, "folders", "update", "/nope", "--fs", "local"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");

    // A folder quota scan: started, listed while running, then the totals stored.
    let (code, out, err) = cli(&["--url", u, "quota-scan", "start-folder", &shared]).await;
    assert_eq!((code, out.as_str()), (0, "Scan started\n"), "{err}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, out, err) = cli(&["--url", u, "--json", "quota-scans", "list-folders"]).await;
        assert_eq!(code, 0, "{err}");
        let running = json_of(&out);
        if running.as_array().unwrap().is_empty() {
            break;
        }
        assert_eq!(running[0]["mapped_path"], shared.as_str());
        assert!(Instant::now() < deadline, "scan still running: {out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, out, _) = cli(&["--url", u, "quota-scan", "list-folders"]).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "No folder quota scans running.\n")
    );
    let (code, out, _) = cli(&["--url", u, "--json", "folders", "get", &shared]).await;
    assert_eq!(code, 0);
    let scanned = json_of(&out);
    assert_eq!(
        (
            scanned["used_quota_size"].as_i64(),
            scanned["used_quota_files"].as_i64()
        ),
        (Some(1505), Some(2)),
        "{out}"
    );
    let (code, out, _) = cli(&["--url", u, "folders", "get", &shared]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("used               1.5 KiB, 2 files\n"),
        "{out}"
    );
    let (code, _, err) = cli(&["--url", u, "quota-scan", "start-folder", "/nope"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");

    // delete: the folder goes from the user too; its files stay.
    let (code, out, err) = cli(&["--url", u, "folders", "delete", &drop_dir]).await;
    assert_eq!((code, out.as_str()), (0, "Folder deleted\n"), "{err}");
    let (code, _, err) = cli(&["--url", u, "folders", "get", &drop_dir]).await;
    assert_eq!(code, 1);
    assert!(err.contains("404") && err.contains("not found"), "{err}");
    let (code, _, err) = cli(&["--url", u, "folders", "delete", &drop_dir]).await;
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");
    let (_, out, _) = cli(&["--url", u, "--json", "users", "get", &id]).await;
    let vfs = json_of(&out)["virtual_folders"].clone();
    assert_eq!(vfs.as_array().unwrap().len(), 1, "{vfs}");
    assert_eq!(vfs[0]["virtual_path"], "/shared");
    // --no-virtual-folders clears the user's list; the folder is kept, unmapped.
    let (code, out, err) = cli(&["--url", u, "users", "update", &id, "--no-virtual-folders"]).await;
    assert_eq!((code, out.as_str()), (0, "User updated\n"), "{err}");
    let (_, out, _) = cli(&["--url", u, "--json", "users", "get", &id]).await;
    assert_eq!(json_of(&out)["virtual_folders"], json!([]));
    let (code, out, _) = cli(&["--url", u, "folders", "get", &shared]).await;
    assert_eq!(code, 0);
    assert!(out.contains("users              -\n"), "{out}");
    assert!(shared_dir.join("a.bin").exists());
    // update --virtual-folder sets the user's list anew.
    let again = format!("/again={shared}:1GiB:0");
    let (code, out, err) = cli(&[
        "--url",
        u,
        "users",
        "update",
        &id,
        "--virtual-folder",
        &again,
    ])
    .await;
    assert_eq!((code, out.as_str()), (0, "User updated\n"), "{err}");
    let (_, out, _) = cli(&["--url", u, "--json", "users", "get", &id]).await;
    assert_eq!(
        json_of(&out)["virtual_folders"],
        json!([{"virtual_path": "/again", "mapped_path": shared, "quota_size": 1_073_741_824, "quota_files": 0}])
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_client_with_basic_auth_and_tls() {
    let extra = tempfile::tempdir().unwrap();
    let file = htpasswd(extra.path(), "admin", "s3cret");
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = extra.path().join("api.crt");
    let key = extra.path().join("api.key");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let tuning = Tuning {
        http_port: Some(0),
        ..Tuning::default()
    };
    let (f, c, k) = (
        file.display().to_string(),
        cert.display().to_string(),
        key.display().to_string(),
    );
    let srv = TestServer::start_with(
        |cfg| {
            cfg.httpd.auth_user_file = f;
            cfg.httpd.certificate_file = c;
            cfg.httpd.certificate_key_file = k;
        },
        tuning,
    )
    .await;
    let url = format!(
        "https://{}",
        srv.running.as_ref().unwrap().http_addr.unwrap()
    );
    let u = url.as_str();
    let ca = cert.display().to_string();
    // With the CA file and credentials.
    let (code, out, err) = cli(&[
        "--url",
        u,
        "--ca-file",
        &ca,
        "--user",
        "admin",
        "--password",
        "s3cret",
        "--json",
        "users",
        "list",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(json_of(&out), json!([]));
    // Credentials from the environment, certificate not verified.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sftpgo"))
        .args(["api", "--insecure", "version"])
        .env("SFTPGO_API_URL", u)
        .env("SFTPGO_API_USER", "admin")
        .env("SFTPGO_API_PASSWORD", "s3cret")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Wrong password: 401 and its message.
    let (code, _, err) = cli(&[
        "--url",
        u,
        "--insecure",
        "--user",
        "admin",
        "--password",
        "nope",
        "version",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("401") && err.contains("Invalid credentials"),
        "{err}"
    );
    let (code, _, err) = cli(&["--url", u, "--insecure", "version"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("401"), "{err}");
    // Unknown CA: refused, with the cause.
    let (code, _, err) = cli(&[
        "--url",
        u,
        "--user",
        "admin",
        "--password",
        "s3cret",
        "version",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot reach the API") && err.to_lowercase().contains("certificate"),
        "{err}"
    );
    // Plain HTTP to the TLS port fails.
    let plain = url.replace("https://", "http://");
    let (code, _, err) = cli(&[
        "--url",
        &plain,
        "--user",
        "admin",
        "--password",
        "s3cret",
        "version",
    ])
    .await;
    assert_eq!(code, 1, "{err}");
    srv.stop().await;
}
