//! The web admin in a real browser: headless Chromium driven through chromedriver
//! (WebDriver), against the real server, with a real SFTP client logging in as the user
//! the browser created. Screenshots of each page go to `<target tmp>/web_admin/`.
//!
//! Needs Debian's `chromium` and `chromium-driver`; without them the browser tests say
//! so and pass, unless `SFTPGO_REQUIRE_BROWSER=1` (as `.ci/run` sets), where they fail.
//! The wiring the browser does not see (the `Secure` cookie under HTTPS, the page saying
//! how to turn the web admin on, `enabled: false`) is checked with curl.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::client::{Credential, SftpClient};
use common::process::KillOnDrop;
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use sftpgo::service::Tuning;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Whether the browser is here; `None` = skip (with the reason printed).
fn browser_available() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "web admin browser test: {} missing (apt-get install chromium chromium-driver)",
        missing.join(" and ")
    );
    if std::env::var("SFTPGO_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!("{msg}; SFTPGO_REQUIRE_BROWSER=1 requires it");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    _child: KillOnDrop,
    url: String,
}

fn start_chromedriver() -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let child = KillOnDrop(child);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "chromedriver did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver {
        _child: child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1366,900", "--no-first-run", "--disable-extensions"],
        }),
    );
    ClientBuilder::rustls()
        .expect("tls config")
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

/// Where the screenshots go.
fn shots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web_admin");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    let path = shots_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

/// Waits (10 s at most) until the page's source contains `text`.
async fn wait_text(c: &Client, text: &str) -> String {
    let start = Instant::now();
    loop {
        let src = c.source().await.expect("page source");
        if src.contains(text) {
            return src;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "page never showed {text:?}; it is:\n{src}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn fill(c: &Client, css: &str, text: &str) {
    let e = c.find(Locator::Css(css)).await.expect(css);
    e.clear().await.expect("clear");
    e.send_keys(text).await.expect("type");
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .expect(css)
        .click()
        .await
        .expect("click");
}

async fn log_in(c: &Client, base: &str, password: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    fill(c, "#username", "admin").await;
    fill(c, "#password", password).await;
    click(c, "#login").await;
}

/// A server with the API and the web admin on, and an htpasswd file with admin:adminpw.
async fn server(idle_secs: u64) -> (TestServer, String, tempfile::TempDir) {
    let auth_dir = tempfile::tempdir().unwrap();
    let htpasswd = auth_dir.path().join("users.htpasswd");
    let hash = bcrypt::hash("adminpw", 4).unwrap();
    std::fs::write(&htpasswd, format!("admin:{hash}\n")).unwrap();
    let tuning = Tuning {
        http_port: Some(0),
        ..Tuning::default()
    };
    let file = htpasswd.display().to_string();
    let srv = TestServer::start_with(
        move |c| {
            c.httpd.auth_user_file = file;
            c.httpd.web_admin.session_idle_expiry = idle_secs;
        },
        tuning,
    )
    .await;
    let base = format!(
        "http://{}/web",
        srv.running.as_ref().unwrap().http_addr.unwrap()
    );
    (srv, base, auth_dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_manages_users_connections_and_scans_in_a_browser() {
    if !browser_available() {
        return;
    }
    let (srv, base, _auth) = server(900).await;
    let driver = start_chromedriver();
    let c = browser(&driver).await;
    eprintln!("screenshots in {}", shots_dir().display());

    // Not logged in: the login page. A bad password is refused.
    c.goto(&format!("{base}/users")).await.unwrap();
    wait_text(&c, "id=\"login\"").await;
    shot(&c, "01-login").await;
    log_in(&c, &base, "wrong").await;
    wait_text(&c, "Invalid username or password").await;
    shot(&c, "02-login-refused").await;
    log_in(&c, &base, "adminpw").await;
    wait_text(&c, "id=\"add-user\"").await;
    // The session cookie: HttpOnly (no script reads it), SameSite=Strict, the prefix only.
    let cookie = c
        .get_named_cookie("sftpgo_web")
        .await
        .expect("session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    assert_eq!(cookie.path(), Some("/web"));
    assert_eq!(cookie.value().len(), 64, "256 random bits, hex");
    let from_script = c.execute("return document.cookie;", vec![]).await.unwrap();
    assert_eq!(from_script, serde_json::json!(""));

    // A user with a public key; the form first shows the provider's error by field.
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "ed25519");
    let home = srv.home("webuser").display().to_string();
    click(&c, "#add-user").await;
    wait_text(&c, "id=\"public_keys\"").await;
    fill(&c, "#username", "webuser").await;
    fill(&c, "#public_keys", &key.public).await;
    fill(&c, "[id='home_dir']", &home).await;
    fill(&c, "#quota_size", "-5").await;
    fill(&c, "#upload_bandwidth", "200").await;
    click(&c, "#save").await;
    wait_text(&c, "id=\"error-quota_size\"").await;
    shot(&c, "03-user-form-error").await;
    fill(&c, "#quota_size", "0").await;
    click(&c, "#save").await;
    wait_text(&c, "User webuser added.").await;
    let stored = srv
        .core()
        .provider()
        .user_by_username("webuser")
        .await
        .unwrap();
    assert_eq!(stored.public_keys, std::slice::from_ref(&key.public));
    assert_eq!(stored.upload_bandwidth, 200);

    // The user logs in over SFTP with that key and uploads slowly (200 KB/s).
    let addr = srv.addr;
    let private = key.private();
    let upload = tokio::spawn(async move {
        let mut s = SftpClient::connect(addr, "webuser", Credential::Key(&private))
            .await
            .expect("SFTP login with the key the browser added");
        s.put("/big.bin", &pattern(8 << 20, 5), 32 * 1024).await
    });
    // The connection and its transfer show on the connections page.
    let start = Instant::now();
    loop {
        c.goto(&format!("{base}/connections")).await.unwrap();
        let src = c.source().await.unwrap();
        if src.contains("webuser") && src.contains("/big.bin") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never listed: {src}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let src = c.source().await.unwrap();
    assert!(src.contains("SFTP") && src.contains("127.0.0.1:"), "{src}");
    shot(&c, "04-connections").await;
    click(&c, "#connections button.danger").await;
    wait_text(&c, "closed.").await;
    let res = tokio::time::timeout(Duration::from_secs(10), upload)
        .await
        .expect("the client noticed the close")
        .unwrap();
    assert!(res.is_err(), "the upload was cut");
    shot(&c, "05-connection-closed").await;
    let start = Instant::now();
    loop {
        c.goto(&format!("{base}/connections")).await.unwrap();
        if c.source().await.unwrap().contains("Nobody is connected") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "still listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The quota is edited; a scan is started from the user's page.
    c.goto(&format!("{base}/users")).await.unwrap();
    shot(&c, "06-users").await;
    c.find(Locator::LinkText("webuser"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "User webuser").await;
    fill(&c, "#quota_size", "10485760").await;
    fill(&c, "#quota_files", "100").await;
    click(&c, "#save").await;
    wait_text(&c, "User webuser saved.").await;
    shot(&c, "07-user-edit").await;
    let edited = srv
        .core()
        .provider()
        .user_by_username("webuser")
        .await
        .unwrap();
    assert_eq!((edited.quota_size, edited.quota_files), (10485760, 100));
    assert_eq!(edited.public_keys, stored.public_keys, "other fields kept");
    click(&c, "#scan").await;
    wait_text(&c, "Quota scan of webuser started.").await;
    shot(&c, "08-quota-scans").await;
    // Once the scan is done, the list shows the used quota against the new limits.
    let start = Instant::now();
    loop {
        c.goto(&format!("{base}/quota-scans")).await.unwrap();
        if c.source().await.unwrap().contains("No scan is running.") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "scan never ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.goto(&format!("{base}/users")).await.unwrap();
    wait_text(&c, "<progress").await;
    shot(&c, "08b-users-with-quota").await;

    c.goto(&format!("{base}/status")).await.unwrap();
    wait_text(&c, "Provider health").await;
    shot(&c, "09-status").await;
    c.goto(&format!("{base}/defender")).await.unwrap();
    wait_text(&c, "Defender").await;
    shot(&c, "10-defender").await;

    // A form without its CSRF token is refused: the user is still there.
    c.goto(&format!("{base}/users/{}/delete", stored.id))
        .await
        .unwrap();
    wait_text(&c, "will be deleted").await;
    c.execute(
        "document.querySelectorAll('main input[name=csrf_token]').forEach(e => e.remove());",
        vec![],
    )
    .await
    .unwrap();
    click(&c, "#confirm-delete").await;
    wait_text(&c, "security token is missing").await;
    shot(&c, "11-csrf-refused").await;
    assert!(
        srv.core()
            .provider()
            .user_by_username("webuser")
            .await
            .is_ok()
    );
    // With it, the user is deleted.
    c.goto(&format!("{base}/users/{}/delete", stored.id))
        .await
        .unwrap();
    wait_text(&c, "will be deleted").await;
    click(&c, "#confirm-delete").await;
    wait_text(&c, "User webuser deleted.").await;
    assert!(
        srv.core()
            .provider()
            .user_by_username("webuser")
            .await
            .is_err()
    );
    // Logout ends the session.
    click(&c, "#logout").await;
    wait_text(&c, "id=\"login\"").await;
    c.goto(&format!("{base}/users")).await.unwrap();
    wait_text(&c, "id=\"login\"").await;
    c.close().await.unwrap();
    srv.stop().await;
}

/// Reloads `url` until its source contains `text` (20 s at most).
async fn reload_until(c: &Client, url: &str, text: &str) -> String {
    let start = Instant::now();
    loop {
        c.goto(url).await.unwrap();
        let src = c.source().await.unwrap();
        if src.contains(text) {
            return src;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{url} never showed {text:?}:\n{src}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_manages_virtual_folders_in_a_browser() {
    if !browser_available() {
        return;
    }
    let (srv, base, _auth) = server(900).await;
    let driver = start_chromedriver();
    let c = browser(&driver).await;
    log_in(&c, &base, "adminpw").await;
    wait_text(&c, "id=\"add-user\"").await;

    // A folder, added on the Folders page.
    let shared_dir = tempfile::tempdir().unwrap();
    let mapped = shared_dir.path().display().to_string();
    c.find(Locator::LinkText("Folders"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "id=\"add-folder\"").await;
    click(&c, "#add-folder").await;
    wait_text(&c, "id=\"mapped_path\"").await;
    fill(&c, "#mapped_path", &mapped).await;
    click(&c, "#save").await;
    wait_text(&c, &format!("Folder {mapped} added.")).await;

    // A user mapping it at /shared, through the user form's folder rows.
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "ed25519");
    let home = srv.home("folderuser").display().to_string();
    c.goto(&format!("{base}/users/new")).await.unwrap();
    wait_text(&c, "id=\"vf-0-virtual_path\"").await;
    fill(&c, "#username", "folderuser").await;
    fill(&c, "#public_keys", &key.public).await;
    fill(&c, "[id='home_dir']", &home).await;
    fill(&c, "#vf-0-virtual_path", "/shared").await;
    fill(&c, "#vf-0-mapped_path", &mapped).await;
    click(&c, "#save").await;
    wait_text(&c, "User folderuser added.").await;
    let user = srv
        .core()
        .provider()
        .user_by_username("folderuser")
        .await
        .unwrap();
    assert_eq!(user.virtual_folders.len(), 1);
    assert_eq!(
        (
            user.virtual_folders[0].virtual_path.as_str(),
            user.virtual_folders[0].mapped_path.as_str()
        ),
        ("/shared", mapped.as_str())
    );

    // The user uploads into /shared over SFTP: the file lands in the folder.
    let data = pattern(5000, 9);
    let mut s = SftpClient::connect(srv.addr, "folderuser", Credential::Key(&key.private()))
        .await
        .expect("SFTP login");
    s.put("/shared/report.bin", &data, 32 * 1024)
        .await
        .expect("upload into the folder");
    drop(s);
    assert_eq!(
        std::fs::read(shared_dir.path().join("report.bin")).unwrap(),
        data
    );

    // A folder quota scan from the Folders page; the list shows the used quota.
    let folders = format!("{base}/folders");
    c.goto(&folders).await.unwrap();
    wait_text(&c, "folderuser").await;
    click(&c, &format!("tr[data-path='{mapped}'] button")).await;
    wait_text(&c, &format!("Quota scan of folder {mapped} started.")).await;
    let src = reload_until(&c, &folders, "4.9 KiB").await;
    assert!(src.contains("folderuser"), "users mapping it: {src}");
    let stored = srv.core().provider().folder_by_path(&mapped).await.unwrap();
    assert_eq!((stored.used_quota_size, stored.used_quota_files), (5000, 1));
    reload_until(
        &c,
        &format!("{base}/quota-scans"),
        "No folder scan is running.",
    )
    .await;
    c.goto(&folders).await.unwrap();
    wait_text(&c, "4.9 KiB").await;
    shot(&c, "13-folders").await;

    // Deleted through its confirmation page: gone from the user, its files kept.
    click(
        &c,
        &format!("tr[data-path='{mapped}'] a[href*='/folders/delete']"),
    )
    .await;
    wait_text(&c, "stay where they are").await;
    shot(&c, "14-folder-delete").await;
    click(&c, "#confirm-delete").await;
    wait_text(&c, &format!("Folder {mapped} deleted.")).await;
    assert!(srv.core().provider().folder_by_path(&mapped).await.is_err());
    let user = srv
        .core()
        .provider()
        .user_by_username("folderuser")
        .await
        .unwrap();
    assert!(user.virtual_folders.is_empty());
    assert!(shared_dir.path().join("report.bin").exists());
    c.close().await.unwrap();
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_expires_in_the_browser() {
    if !browser_available() {
        return;
    }
    let (srv, base, _auth) = server(2).await;
    let driver = start_chromedriver();
    let c = browser(&driver).await;
    log_in(&c, &base, "adminpw").await;
    wait_text(&c, "id=\"add-user\"").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.goto(&format!("{base}/connections")).await.unwrap();
    wait_text(&c, "Your session expired").await;
    assert!(
        c.current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with("/web/login?expired=1")
    );
    shot(&c, "12-session-expired").await;
    c.close().await.unwrap();
    srv.stop().await;
}

/// curl (`-k`: the test's self-signed certificate): exit code, status, lowercased
/// headers, body.
async fn curl(args: &[&str]) -> (i32, u16, String, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-k", "-D", "-", "-o", "-", "-w", "\n%{http_code}"])
        .args(["--max-time", "20"])
        .args(args)
        .output()
        .await
        .expect("curl runs");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_the_session_cookie_is_secure() {
    let extra = tempfile::tempdir().unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (extra.path().join("api.crt"), extra.path().join("api.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let htpasswd = extra.path().join("users.htpasswd");
    let hash = bcrypt::hash("adminpw", 4).unwrap();
    std::fs::write(&htpasswd, format!("admin:{hash}\n")).unwrap();
    let files = [&cert, &key, &htpasswd].map(|p| p.display().to_string());
    let tuning = Tuning {
        http_port: Some(0),
        ..Tuning::default()
    };
    let srv = TestServer::start_with(
        |c| {
            let [cert, key, auth] = files;
            c.httpd.certificate_file = cert;
            c.httpd.certificate_key_file = key;
            c.httpd.auth_user_file = auth;
        },
        tuning,
    )
    .await;
    let addr = srv.running.as_ref().unwrap().http_addr.unwrap();
    let url = format!("https://{addr}/web/login");
    let (exit, code, headers, _) = curl(&[
        "-X",
        "POST",
        "--data",
        "username=admin&password=adminpw",
        &url,
    ])
    .await;
    assert_eq!((exit, code), (0, 303), "{headers}");
    let cookie = headers
        .lines()
        .find(|l| l.starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {headers}"));
    for attr in ["; secure", "; httponly", "; samesite=strict", "; path=/web"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(headers.contains("location: /web/users"), "{headers}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_auth_file_the_prefix_says_how_to_turn_it_on() {
    let tuning = Tuning {
        http_port: Some(0),
        ..Tuning::default()
    };
    let srv = TestServer::start_with(|_| {}, tuning.clone()).await;
    let addr = srv.running.as_ref().unwrap().http_addr.unwrap();
    for path in ["/web", "/web/users", "/web/login"] {
        let (_, code, headers, body) = curl(&[&format!("http://{addr}{path}")]).await;
        assert_eq!(code, 404, "{path}");
        assert!(headers.contains("content-type: text/html"), "{headers}");
        assert!(body.contains("httpd.auth_user_file"), "{path}: {body}");
    }
    // The API itself is unchanged.
    let (_, code, _, _) = curl(&[&format!("http://{addr}/api/v1/version")]).await;
    assert_eq!(code, 200);
    srv.stop().await;
    // Turned off: nothing under the prefix but the API's own 404.
    let srv = TestServer::start_with(|c| c.httpd.web_admin.enabled = false, tuning).await;
    let addr = srv.running.as_ref().unwrap().http_addr.unwrap();
    let (_, code, _, body) = curl(&[&format!("http://{addr}/web/users")]).await;
    assert_eq!(code, 404);
    assert!(body.contains("\"status\":404"), "{body}");
    srv.stop().await;
}
