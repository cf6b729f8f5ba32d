//! Every form of the web admin through the router, without a network.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use sftpgo_core::defender::DefenderSettings;
use sftpgo_core::{Core, Protocol, Settings};
use sftpgo_provider::memory::MemoryBackend;
use sftpgo_provider::{DataProvider, Permission, TrackQuota, User};
use tower::ServiceExt;

use crate::{BasicAuth, ClientInfo, VersionInfo, WebAdmin, router_with_web};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@host";
const CLIENT: &str = "192.0.2.7:40000";

fn version() -> VersionInfo {
    VersionInfo {
        version: "1.2.3".into(),
        build_date: "d".into(),
        commit_hash: "c".into(),
    }
}

fn core() -> Core {
    let provider = DataProvider::new(Arc::new(MemoryBackend::new()), true, TrackQuota::Always);
    let settings = Settings {
        defender: DefenderSettings {
            enabled: true,
            ..DefenderSettings::default()
        },
        ..Settings::default()
    };
    Core::new(provider, settings)
}

fn web(idle: Duration) -> WebAdmin {
    WebAdmin {
        path_prefix: "/web".into(),
        session_idle_expiry: idle,
        secure_cookie: false,
    }
}

fn app_with(idle: Duration) -> (Router, Core) {
    let core = core();
    let hash = bcrypt::hash("adminpw", 4).unwrap();
    let auth = Arc::new(BasicAuth::parse(&format!("admin:{hash}\n"), "test"));
    let router = router_with_web(core.clone(), version(), Some(auth), Some(web(idle)));
    (router, core)
}

fn app() -> (Router, Core) {
    app_with(Duration::from_secs(600))
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "admin.test");
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, format!("sftpgo_web={c}"));
    }
    if form.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let mut req = req
        .body(form.map_or(Body::empty(), |f| Body::from(f.to_string())))
        .unwrap();
    let addr: SocketAddr = CLIENT.parse().unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(ClientInfo { addr, tls: false }));
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(app: &Router, uri: &str, cookie: &str) -> Reply {
    send(app, "GET", uri, Some(cookie), None).await
}

async fn post(app: &Router, uri: &str, cookie: &str, form: &str) -> Reply {
    send(app, "POST", uri, Some(cookie), Some(form)).await
}

/// The CSRF token of the first form of a page.
fn csrf_of(page: &str) -> String {
    let marker = r#"name="csrf_token" value=""#;
    let start = page.find(marker).expect("a form with a CSRF token") + marker.len();
    page[start..][..64].to_string()
}

/// Logs in as admin; returns the session cookie's value and its CSRF token.
async fn login(app: &Router) -> (String, String) {
    let r = send(
        app,
        "POST",
        "/web/login",
        None,
        Some("username=admin&password=adminpw"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), "/web/users");
    let set = r.headers[header::SET_COOKIE].to_str().unwrap().to_string();
    let id = set
        .strip_prefix("sftpgo_web=")
        .and_then(|s| s.split(';').next())
        .unwrap()
        .to_string();
    let page = get(app, "/web/users", &id).await;
    assert_eq!(page.status, StatusCode::OK);
    (id.clone(), csrf_of(&page.body))
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn login_ok_and_bad_and_logout() {
    let (app, core) = app();
    // Not logged in: every page sends to the login page.
    for path in [
        "/web/users",
        "/web/connections",
        "/web/status",
        "/web/users/1",
    ] {
        let r = send(&app, "GET", path, None, None).await;
        assert_eq!(
            (r.status, r.location()),
            (StatusCode::SEE_OTHER, "/web/login"),
            "{path}"
        );
    }
    assert_eq!(
        send(&app, "GET", "/web", None, None).await.location(),
        "/web/users"
    );
    let r = send(&app, "GET", "/web/login", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains(r#"name="password""#));
    assert!(
        r.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    // Bad password, unknown user: refused and scored by the defender.
    for form in ["username=admin&password=nope", "username=ghost&password=x"] {
        let r = send(&app, "POST", "/web/login", None, Some(form)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(
            r.body.contains("Invalid username or password"),
            "{}",
            r.body
        );
        assert!(r.headers.get(header::SET_COOKIE).is_none());
        assert!(r.headers.get(header::WWW_AUTHENTICATE).is_none());
    }
    let ip = CLIENT.parse::<SocketAddr>().unwrap().ip();
    let host = core.defender().host(ip).await.unwrap().expect("scored");
    assert!(host.score > 0, "{host:?}");
    // Good credentials: a session cookie with the safe attributes.
    let r = send(
        &app,
        "POST",
        "/web/login",
        None,
        Some("username=admin&password=adminpw"),
    )
    .await;
    let set = r.headers[header::SET_COOKIE].to_str().unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/web"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let (cookie, csrf) = login(&app).await;
    let page = get(&app, "/web/users", &cookie).await;
    assert!(page.body.contains("admin"), "the operator's name is shown");
    // Logout needs the token, then ends the session.
    let r = post(&app, "/web/logout", &cookie, "").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = post(&app, "/web/logout", &cookie, &format!("csrf_token={csrf}")).await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/web/login")
    );
    assert!(
        r.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let r = get(&app, "/web/users", &cookie).await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/web/login")
    );
}

#[tokio::test]
async fn a_banned_client_gets_no_page_and_cannot_log_in() {
    let (app, core) = app();
    let (cookie, _) = login(&app).await;
    // Unknown usernames score 2 each: 8 tries reach the threshold of 15.
    for _ in 0..8 {
        let r = send(
            &app,
            "POST",
            "/web/login",
            None,
            Some("username=ghost&password=x"),
        )
        .await;
        assert!(matches!(
            r.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ));
    }
    let ip = CLIENT.parse::<SocketAddr>().unwrap().ip();
    assert!(
        core.defender()
            .host(ip)
            .await
            .unwrap()
            .unwrap()
            .ban_until
            .is_some()
    );
    let r = send(
        &app,
        "POST",
        "/web/login",
        None,
        Some("username=admin&password=adminpw"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.headers.get(header::SET_COOKIE).is_none());
    assert!(r.body.contains("Access refused"), "{}", r.body);
    assert_eq!(
        get(&app, "/web/users", &cookie).await.status,
        StatusCode::FORBIDDEN
    );
    core.defender().unban(ip).await.unwrap();
    assert_eq!(
        get(&app, "/web/users", &cookie).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn secure_cookie_under_tls() {
    let core = core();
    let hash = bcrypt::hash("pw", 4).unwrap();
    let auth = Arc::new(BasicAuth::parse(&format!("admin:{hash}\n"), "test"));
    let mut w = web(Duration::from_secs(60));
    w.secure_cookie = true;
    let app = router_with_web(core, version(), Some(auth), Some(w));
    let r = send(
        &app,
        "POST",
        "/web/login",
        None,
        Some("username=admin&password=pw"),
    )
    .await;
    assert!(
        r.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
}

#[tokio::test]
async fn forms_without_the_right_csrf_token_or_from_elsewhere_are_refused() {
    let (app, core) = app();
    let (cookie, csrf) = login(&app).await;
    let user = "username=bob&home_dir=%2Fsrv%2Fbob&password=pw&permissions=*".to_string();
    let wrong = "0".repeat(64);
    for form in [
        user.clone(),
        format!("{user}&csrf_token="),
        format!("{user}&csrf_token={wrong}"),
    ] {
        let r = post(&app, "/web/users/new", &cookie, &form).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{form}");
        assert!(r.body.contains("security token"), "{}", r.body);
    }
    // Another session's token does not do either.
    let (_, other_csrf) = login(&app).await;
    let r = post(
        &app,
        "/web/users/new",
        &cookie,
        &format!("{user}&csrf_token={other_csrf}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(core.provider().user_by_username("bob").await.is_err());
    // A foreign Origin, or a body that is not a form.
    let req = Request::builder()
        .method("POST")
        .uri("/web/users/new")
        .header("host", "admin.test")
        .header("origin", "https://evil.example")
        .header(header::COOKIE, format!("sftpgo_web={cookie}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("{user}&csrf_token={csrf}")))
        .unwrap();
    assert_eq!(
        app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let req = Request::builder()
        .method("POST")
        .uri("/web/users/new")
        .header(header::COOKIE, format!("sftpgo_web={cookie}"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(format!("{user}&csrf_token={csrf}")))
        .unwrap();
    assert_eq!(
        app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert!(core.provider().user_by_username("bob").await.is_err());
    // The right token from our own origin works.
    let r = post(
        &app,
        "/web/users/new",
        &cookie,
        &format!("{user}&csrf_token={csrf}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(core.provider().user_by_username("bob").await.is_ok());
}

#[tokio::test]
async fn an_expired_session_goes_back_to_the_login_page() {
    let (app, _) = app_with(Duration::from_secs(1));
    let (cookie, csrf) = login(&app).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = get(&app, "/web/users", &cookie).await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/web/login?expired=1")
    );
    let page = send(&app, "GET", r.location(), None, None).await;
    assert!(page.body.contains("Your session expired"), "{}", page.body);
    // A form of the expired session is not taken either.
    let r = post(
        &app,
        "/web/quota-scans",
        &cookie,
        &format!("username=a&csrf_token={csrf}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().starts_with("/web/login"));
}

#[tokio::test]
async fn users_are_created_edited_and_deleted_with_the_providers_errors_by_field() {
    let (app, core) = app();
    let (cookie, csrf) = login(&app).await;
    let new = get(&app, "/web/users/new", &cookie).await;
    assert!(new.body.contains(r#"id="perm-*""#));
    // The base form; `extra` adds fields or replaces the base's (the first value counts).
    let form = |extra: &str| {
        let base = format!(
            "csrf_token={csrf}&username=alice&password=pw&public_keys={}&home_dir=%2Fsrv%2Falice&permissions=list&permissions=upload",
            enc(KEY)
        );
        let extra = extra.trim_start_matches('&');
        let replaced: Vec<&str> = extra
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, _)| k)
            .collect();
        let kept: Vec<&str> = base
            .split('&')
            .filter(|kv| !replaced.iter().any(|k| kv.split('=').next() == Some(k)))
            .collect();
        if extra.is_empty() {
            base.clone()
        } else {
            format!("{}&{extra}", kept.join("&"))
        }
    };
    // The provider's rules, shown next to the field they name, input kept.
    let r = post(&app, "/web/users/new", &cookie, &form("&quota_size=-1")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains(r#"id="error-quota_size""#), "{}", r.body);
    assert!(
        r.body.contains("must be 0 (unlimited) or positive"),
        "{}",
        r.body
    );
    assert!(r.body.contains(r#"value="-1""#));
    assert!(
        !r.body.contains(r#"value="pw""#),
        "a password is never shown back"
    );
    let r = post(&app, "/web/users/new", &cookie, &form("&home_dir=relative")).await;
    assert!(r.body.contains(r#"id="error-home_dir""#), "{}", r.body);
    let r = post(&app, "/web/users/new", &cookie, &form("&uid=abc")).await;
    assert!(r.body.contains(r#"id="error-uid""#) && r.body.contains("whole number"));
    let bad_key = form("").replace(&enc(KEY), "ssh-ed25519+garbage");
    let r = post(&app, "/web/users/new", &cookie, &bad_key).await;
    assert!(r.body.contains(r#"id="error-public_keys""#), "{}", r.body);
    let r = post(
        &app,
        "/web/users/new",
        &cookie,
        &form("&filesystem.provider=1"),
    )
    .await;
    assert!(
        r.body.contains(r#"id="error-filesystem.s3config.bucket""#),
        "{}",
        r.body
    );
    assert!(core.provider().user_by_username("alice").await.is_err());
    // Created.
    let r = post(
        &app,
        "/web/users/new",
        &cookie,
        &form("&quota_size=1000&quota_files=10&upload_bandwidth=50&max_sessions=2"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let stored = core.provider().user_by_username("alice").await.unwrap();
    assert_eq!(r.location(), format!("/web/users/{}", stored.id));
    assert_eq!(stored.public_keys, [KEY]);
    assert_eq!(stored.permissions, [Permission::List, Permission::Upload]);
    assert_eq!(
        (
            stored.quota_size,
            stored.quota_files,
            stored.upload_bandwidth,
            stored.max_sessions
        ),
        (1000, 10, 50, 2)
    );
    let hash = stored.password.clone().unwrap();
    assert!(hash.starts_with("$argon2id$"));
    let page = get(&app, r.location(), &cookie).await;
    assert!(page.body.contains("User alice added."), "flash shown");
    assert!(page.body.contains("<progress"), "quota bars");
    assert!(!page.body.contains(&hash));
    // A duplicate name goes next to the username.
    let r = post(
        &app,
        "/web/users/new",
        &cookie,
        &form("&home_dir=%2Fsrv%2Falice2"),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.body.contains(r#"id="error-username""#));
    // Edited: an empty password keeps the stored one.
    let edit = format!("/web/users/{}", stored.id);
    let r = post(
        &app,
        &edit,
        &cookie,
        &form("&quota_size=5000").replace("password=pw", "password="),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let after = core.provider().user_by_id(stored.id).await.unwrap();
    assert_eq!(after.quota_size, 5000);
    assert_eq!(after.password.as_deref(), Some(hash.as_str()));
    let r = post(&app, &edit, &cookie, &form("&max_sessions=-3")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains(r#"id="error-max_sessions""#));
    // An S3 user: the secret is never rendered back; empty keeps the stored one.
    let s3 = "&filesystem.provider=1&filesystem.s3config.bucket=bkt&filesystem.s3config.region=eu-west-1\
              &filesystem.s3config.access_key=AKID&filesystem.s3config.upload_part_size=8&filesystem.s3config.upload_concurrency=3\
              &filesystem.s3config.force_path_style=on";
    let r = post(
        &app,
        &edit,
        &cookie,
        &format!(
            "{}{s3}&filesystem.s3config.access_secret=topsecret",
            form("")
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let s3user = core.provider().user_by_id(stored.id).await.unwrap();
    let c = &s3user.filesystem.s3config;
    assert_eq!(
        (
            c.bucket.as_str(),
            c.upload_part_size,
            c.upload_concurrency,
            c.force_path_style
        ),
        ("bkt", 8, 3, true)
    );
    assert_eq!(
        core.provider().open_secret(&c.access_secret).unwrap(),
        "topsecret"
    );
    let page = get(&app, &edit, &cookie).await;
    assert!(!page.body.contains("topsecret") && !page.body.contains(c.access_secret.as_stored()));
    let r = post(
        &app,
        &edit,
        &cookie,
        &format!(
            "{}{s3}&filesystem.s3config.access_secret=&quota_files=4",
            form("")
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let kept = core.provider().user_by_id(stored.id).await.unwrap();
    assert_eq!(kept.quota_files, 4);
    assert_eq!(
        core.provider()
            .open_secret(&kept.filesystem.s3config.access_secret)
            .unwrap(),
        "topsecret"
    );
    // Deleted, after a confirmation page.
    let confirm = get(&app, &format!("{edit}/delete"), &cookie).await;
    assert!(confirm.body.contains("will be deleted"));
    let r = post(&app, &format!("{edit}/delete"), &cookie, "").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no token, no delete");
    let r = post(
        &app,
        &format!("{edit}/delete"),
        &cookie,
        &format!("csrf_token={csrf}"),
    )
    .await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/web/users")
    );
    assert!(core.provider().user_by_id(stored.id).await.is_err());
    assert_eq!(
        get(&app, &edit, &cookie).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app, "/web/users/abc", &cookie).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_user_list_searches_and_pages() {
    let (app, core) = app();
    for i in 0..30 {
        let u = User {
            username: format!("user{i:02}"),
            home_dir: format!("/srv/user{i:02}"),
            public_keys: vec![KEY.into()],
            permissions: vec![Permission::Any],
            quota_size: 100,
            ..User::default()
        };
        core.provider().add_user(u).await.unwrap();
    }
    let (cookie, _) = login(&app).await;
    let first = get(&app, "/web/users", &cookie).await;
    assert!(first.body.contains(">user00<") && first.body.contains(">user24<"));
    assert!(!first.body.contains(">user25<"));
    assert!(first.body.contains(r#"id="next""#) && !first.body.contains(r#"id="prev""#));
    let second = get(&app, "/web/users?offset=25", &cookie).await;
    assert!(second.body.contains(">user29<") && !second.body.contains(">user24<"));
    assert!(second.body.contains(r#"id="prev""#) && !second.body.contains(r#"id="next""#));
    let found = get(&app, "/web/users?username=user07", &cookie).await;
    assert!(found.body.contains(">user07<") && !found.body.contains(">user08<"));
    let none = get(&app, "/web/users?username=%3Cscript%3E", &cookie).await;
    assert!(none.body.contains("No users") && none.body.contains("&lt;script&gt;"));
    assert!(!none.body.contains("<script>"), "escaped");
}

#[tokio::test]
async fn a_quota_scan_starts_from_a_form() {
    let (app, core) = app();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("f"), vec![0u8; 1234]).unwrap();
    let u = User {
        username: "alice".into(),
        home_dir: home.path().display().to_string(),
        public_keys: vec![KEY.into()],
        permissions: vec![Permission::Any],
        ..User::default()
    };
    core.provider().add_user(u).await.unwrap();
    let (cookie, csrf) = login(&app).await;
    let r = post(&app, "/web/quota-scans", &cookie, "username=alice").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no token");
    let r = post(
        &app,
        "/web/quota-scans",
        &cookie,
        &format!("csrf_token={csrf}&username=alice"),
    )
    .await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/web/quota-scans")
    );
    let page = get(&app, "/web/quota-scans", &cookie).await;
    assert!(
        page.body.contains("Quota scan of alice started."),
        "{}",
        page.body
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        core.quota().write_now().await;
        let u = core.provider().user_by_username("alice").await.unwrap();
        if u.used_quota_size == 1234 {
            assert_eq!(u.used_quota_files, 1);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "scan did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = post(
        &app,
        "/web/quota-scans",
        &cookie,
        &format!("csrf_token={csrf}&username=ghost"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = get(&app, "/web/quota-scans", &cookie).await;
    assert!(page.body.contains("There is no user"), "{}", page.body);
}

#[tokio::test]
async fn a_connection_is_listed_and_closed() {
    let (app, core) = app();
    let home = tempfile::tempdir().unwrap();
    let u = User {
        username: "alice".into(),
        password: Some("pw".into()),
        home_dir: home.path().join("alice").display().to_string(),
        permissions: vec![Permission::Any],
        ..User::default()
    };
    core.provider().add_user(u).await.unwrap();
    let guard = core
        .login_password("alice", "pw", "198.51.100.9:5555".parse().unwrap())
        .await
        .unwrap();
    let session = guard.open_session(Protocol::Sftp);
    let (cookie, csrf) = login(&app).await;
    let page = get(&app, "/web/connections", &cookie).await;
    assert!(page.body.contains("198.51.100.9:5555"), "{}", page.body);
    assert!(page.body.contains(&session.id));
    assert!(!page.body.contains("http-equiv=\"refresh\""));
    let auto = get(&app, "/web/connections?auto=1", &cookie).await;
    assert!(
        auto.body
            .contains(r#"<meta http-equiv="refresh" content="5">"#),
        "{}",
        auto.body
    );
    assert!(auto.body.contains("Stop refreshing"));
    let close = format!("/web/connections/{}/close", session.id);
    let r = post(&app, &close, &cookie, "").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!session.closed().is_cancelled());
    let r = post(&app, &close, &cookie, &format!("csrf_token={csrf}")).await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/web/connections")
    );
    assert!(session.closed().is_cancelled());
    let page = get(&app, "/web/connections", &cookie).await;
    assert!(page.body.contains("closed."), "{}", page.body);
    drop(session);
    drop(guard);
    let r = post(&app, &close, &cookie, &format!("csrf_token={csrf}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = get(&app, "/web/connections", &cookie).await;
    assert!(page.body.contains("is not open"), "{}", page.body);
    assert!(page.body.contains("Nobody is connected"));
}

#[tokio::test]
async fn defender_hosts_are_listed_and_removed_and_status_shows() {
    let (app, core) = app();
    let ip = "203.0.113.5".parse().unwrap();
    core.defender()
        .record(ip, sftpgo_core::defender::HostEvent::LoginFailed)
        .await;
    let (cookie, csrf) = login(&app).await;
    let page = get(&app, "/web/defender", &cookie).await;
    assert!(page.body.contains("203.0.113.5"), "{}", page.body);
    let r = post(
        &app,
        "/web/defender/203.0.113.5/unban",
        &cookie,
        &format!("csrf_token={csrf}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(core.defender().host(ip).await.unwrap().is_none());
    let page = get(&app, "/web/defender", &cookie).await;
    assert!(page.body.contains("203.0.113.5 removed."), "{}", page.body);
    let status = get(&app, "/web/status", &cookie).await;
    assert_eq!(status.status, StatusCode::OK);
    assert!(
        status.body.contains("1.2.3") && status.body.contains("answers"),
        "{}",
        status.body
    );
    assert!(
        status.body.contains("sftpgo_active_connections"),
        "{}",
        status.body
    );
    let css = get(&app, "/web/static/style.css", &cookie).await;
    assert!(
        css.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert_eq!(
        get(&app, "/web/nope", &cookie).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn without_an_auth_file_the_web_admin_says_how_to_turn_it_on() {
    let core = core();
    let app = router_with_web(
        core.clone(),
        version(),
        None,
        Some(web(Duration::from_secs(60))),
    );
    for path in ["/web", "/web/", "/web/users", "/web/login"] {
        let r = send(&app, "GET", path, None, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            r.body.contains("httpd.auth_user_file"),
            "{path}: {}",
            r.body
        );
    }
    let r = send(
        &app,
        "POST",
        "/web/login",
        None,
        Some("username=a&password=b"),
    )
    .await;
    assert!(r.body.contains("httpd.auth_user_file"));
    // The API is unaffected.
    let r = send(&app, "GET", "/api/v1/version", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    // With the web admin off, its prefix is the API's plain 404.
    let off = crate::router(core, version());
    let r = send(&off, "GET", "/web/users", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("\"status\":404"));
}

#[tokio::test]
async fn the_api_keeps_its_basic_auth_next_to_the_web_admin() {
    let (app, _) = app();
    let r = send(&app, "GET", "/api/v1/user", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A web session is not an API credential.
    let (cookie, _) = login(&app).await;
    let r = get(&app, "/api/v1/user", &cookie).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A form body is too large past the limit.
    let (cookie, csrf) = login(&app).await;
    let big = format!("csrf_token={csrf}&public_keys={}", "a".repeat(300 * 1024));
    let r = post(&app, "/web/users/new", &cookie, &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        r.body.contains("Request refused") && r.body.contains("length limit"),
        "{}",
        r.body
    );
    // A method a page does not take: a page too, not the API's JSON.
    let r = get(&app, "/web/logout", &cookie).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        r.body.contains("405 Method Not Allowed") && r.body.contains("<html"),
        "{}",
        r.body
    );
}

/// Polls until the folder's stored used quota is `size` bytes.
async fn wait_folder_quota(core: &Core, path: &str, size: i64) -> sftpgo_provider::Folder {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        core.quota().write_now().await;
        let f = core.provider().folder_by_path(path).await.unwrap();
        if f.used_quota_size == size {
            return f;
        }
        assert!(std::time::Instant::now() < deadline, "scan did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn folders_are_added_edited_and_deleted_with_the_providers_errors_by_field() {
    let (app, core) = app();
    let (cookie, csrf) = login(&app).await;
    let page = get(&app, "/web/folders", &cookie).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(r#"href="/web/folders""#), "in the nav");
    assert!(page.body.contains(r#"id="no-folders""#), "{}", page.body);
    let new = get(&app, "/web/folders/new", &cookie).await;
    assert!(new.body.contains(r#"id="mapped_path""#));
    assert!(
        new.body.contains(r#"id="filesystem.s3config.bucket""#),
        "the user form's S3 fields"
    );
    // The provider's rules, by field, input kept.
    let r = post(
        &app,
        "/web/folders/new",
        &cookie,
        &format!("csrf_token={csrf}&mapped_path=relative%2Fdir&filesystem.provider=0"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains(r#"id="error-mapped_path""#), "{}", r.body);
    assert!(r.body.contains(r#"value="relative/dir""#));
    let r = post(
        &app,
        "/web/folders/new",
        &cookie,
        &format!("csrf_token={csrf}&mapped_path=%2Fs3%2Freports&filesystem.provider=1"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body.contains(r#"id="error-filesystem.s3config.bucket""#),
        "{}",
        r.body
    );
    let r = post(
        &app,
        "/web/folders/new",
        &cookie,
        "mapped_path=%2Fsrv%2Fshared",
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no token");
    assert!(core.provider().folder_by_path("/srv/shared").await.is_err());
    // Added; shown in the list.
    let local = format!("csrf_token={csrf}&mapped_path=%2Fsrv%2Fshared&filesystem.provider=0");
    let r = post(&app, "/web/folders/new", &cookie, &local).await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/web/folders"),
        "{}",
        r.body
    );
    assert!(core.provider().folder_by_path("/srv/shared").await.is_ok());
    let page = get(&app, "/web/folders", &cookie).await;
    assert!(
        page.body.contains("Folder /srv/shared added."),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"data-path="/srv/shared""#));
    // A duplicate: 409, next to the mapped path.
    let r = post(&app, "/web/folders/new", &cookie, &local).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body.contains(r#"id="error-mapped_path""#), "{}", r.body);
    assert!(r.body.contains("already exists"));
    // An S3 folder; editing its storage without a secret keeps the stored one.
    let s3 = "&filesystem.provider=1&filesystem.s3config.bucket=bkt&filesystem.s3config.region=eu-west-1\
              &filesystem.s3config.access_key=AKID&filesystem.s3config.key_prefix=reports%2F";
    let r = post(
        &app,
        "/web/folders/new",
        &cookie,
        &format!(
            "csrf_token={csrf}&mapped_path=%2Fs3%2Freports{s3}&filesystem.s3config.access_secret=topsecret"
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = get(&app, "/web/folders", &cookie).await;
    assert!(page.body.contains("bkt/reports/"), "{}", page.body);
    let edit = "/web/folders/edit?mapped_path=%2Fs3%2Freports";
    let page = get(&app, edit, &cookie).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(r#"value="AKID""#));
    assert!(!page.body.contains("topsecret"));
    let r = post(
        &app,
        edit,
        &cookie,
        &format!(
            "csrf_token={csrf}{}&filesystem.s3config.access_secret=",
            s3.replace("eu-west-1", "us-east-2")
        ),
    )
    .await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, edit),
        "{}",
        r.body
    );
    let f = core.provider().folder_by_path("/s3/reports").await.unwrap();
    assert_eq!(f.filesystem.s3config.region, "us-east-2");
    assert_eq!(
        core.provider()
            .open_secret(&f.filesystem.s3config.access_secret)
            .unwrap(),
        "topsecret"
    );
    let r = post(
        &app,
        edit,
        &cookie,
        &format!("csrf_token={csrf}{}", s3.replace("bkt", "")),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body.contains(r#"id="error-filesystem.s3config.bucket""#),
        "{}",
        r.body
    );
    assert_eq!(
        get(&app, "/web/folders/edit?mapped_path=%2Fnope", &cookie)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Deleted through a confirmation page: removed from its users.
    let u = User {
        username: "alice".into(),
        home_dir: "/srv/alice".into(),
        public_keys: vec![KEY.into()],
        permissions: vec![Permission::Any],
        virtual_folders: vec![sftpgo_provider::VirtualFolder {
            mapped_path: "/srv/shared".into(),
            virtual_path: "/shared".into(),
            quota_size: -1,
            quota_files: -1,
            filesystem: None,
        }],
        ..User::default()
    };
    core.provider().add_user(u).await.unwrap();
    let page = get(&app, "/web/folders", &cookie).await;
    assert!(
        page.body.contains("alice"),
        "users mapping it: {}",
        page.body
    );
    let delete = "/web/folders/delete?mapped_path=%2Fsrv%2Fshared";
    let confirm = get(&app, delete, &cookie).await;
    assert!(
        confirm
            .body
            .contains("removed from the users that map it (alice)"),
        "{}",
        confirm.body
    );
    assert!(confirm.body.contains("stay where they are"));
    let r = post(&app, delete, &cookie, "").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no token, no delete");
    let r = post(&app, delete, &cookie, &format!("csrf_token={csrf}")).await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/web/folders")
    );
    assert!(core.provider().folder_by_path("/srv/shared").await.is_err());
    let alice = core.provider().user_by_username("alice").await.unwrap();
    assert!(alice.virtual_folders.is_empty());
}

#[tokio::test]
async fn a_folder_quota_scan_starts_from_the_folders_page() {
    let (app, core) = app();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), vec![0u8; 777]).unwrap();
    let path = dir.path().display().to_string();
    core.provider()
        .add_folder(sftpgo_provider::Folder {
            mapped_path: path.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let (cookie, csrf) = login(&app).await;
    let page = get(&app, "/web/quota-scans", &cookie).await;
    assert!(
        page.body.contains(r#"id="no-folder-scans""#),
        "{}",
        page.body
    );
    let r = post(
        &app,
        "/web/folders/scan",
        &cookie,
        &format!("csrf_token={csrf}&mapped_path={}", enc(&path)),
    )
    .await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/web/folders")
    );
    let page = get(&app, "/web/folders", &cookie).await;
    assert!(
        page.body
            .contains(&format!("Quota scan of folder {path} started.")),
        "{}",
        page.body
    );
    let f = wait_folder_quota(&core, &path, 777).await;
    assert_eq!(f.used_quota_files, 1);
    let page = get(&app, "/web/folders", &cookie).await;
    assert!(page.body.contains("777 B"), "{}", page.body);
    // A running scan is listed on the quota scans page (rendered with one running: a
    // real scan of a few files is over before a page could show it).
    let sessions = super::session::Sessions::new(Duration::from_secs(60));
    let id = sessions.create("admin");
    let super::session::Lookup::Active(session) = sessions.touch(&id) else {
        panic!("no session");
    };
    let chrome = super::pages::Chrome {
        prefix: "/web",
        session: &session,
    };
    let running =
        super::pages::scans(&chrome, &[], &[(path.clone(), 1_700_000_000_000)]).into_string();
    assert!(running.contains(r#"id="folder-scans""#), "{running}");
    assert!(running.contains(&path) && running.contains("2023-11-14"));
    let r = post(
        &app,
        "/web/folders/scan",
        &cookie,
        &format!("csrf_token={csrf}&mapped_path=%2Fghost"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = get(&app, "/web/folders", &cookie).await;
    assert!(page.body.contains("There is no folder"), "{}", page.body);
}

#[tokio::test]
async fn the_user_form_maps_folders_creates_them_and_keeps_them() {
    let (app, core) = app();
    let (cookie, csrf) = login(&app).await;
    let shared = tempfile::tempdir().unwrap();
    let mapped = shared.path().display().to_string();
    core.provider()
        .add_folder(sftpgo_provider::Folder {
            mapped_path: "/srv/known".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let new = get(&app, "/web/users/new", &cookie).await;
    assert!(
        new.body.contains(r#"id="vf-0-virtual_path""#),
        "an empty row"
    );
    assert!(
        new.body.contains(r#"<option value="/srv/known">"#),
        "existing folders offered"
    );
    let base =
        format!("csrf_token={csrf}&username=bob&password=pw&home_dir=%2Fsrv%2Fbob&permissions=*");
    let row = |v: &str, m: &str, s: &str, f: &str| {
        format!(
            "&vf_virtual_path={}&vf_mapped_path={}&vf_quota_size={}&vf_quota_files={}",
            enc(v),
            enc(m),
            enc(s),
            enc(f)
        )
    };
    let empty = row("", "", "", "");
    // "Add another": shown again with one more row, nothing saved.
    let r = post(
        &app,
        "/web/users/new",
        &cookie,
        &format!(
            "{base}{}{empty}&add_folder_row=1",
            row("/shared", &mapped, "", "")
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body.contains(r#"id="vf-2-virtual_path""#),
        "typed row + two empty: {}",
        r.body
    );
    assert!(r.body.contains(r#"value="/shared""#));
    assert!(core.provider().user_by_username("bob").await.is_err());
    // The provider's rules, shown by the folder rows, input kept.
    let r = post(
        &app,
        "/web/users/new",
        &cookie,
        &format!("{base}{}{empty}", row("shared", &mapped, "", "")),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body
            .contains(r#"id="error-virtual_folders.virtual_path""#),
        "{}",
        r.body
    );
    assert!(r.body.contains(r#"value="shared""#));
    let r = post(
        &app,
        "/web/users/new",
        &cookie,
        &format!("{base}{}", row("/shared", &mapped, "-1", "5")),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body.contains(r#"id="error-virtual_folders.quota_size""#),
        "{}",
        r.body
    );
    let r = post(
        &app,
        "/web/users/new",
        &cookie,
        &format!("{base}{}", row("/shared", &mapped, "ten", "")),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body.contains(r#"id="error-virtual_folders.quota_size""#),
        "{}",
        r.body
    );
    assert!(r.body.contains("whole number"));
    let r = post(
        &app,
        "/web/users/new",
        &cookie,
        &format!("{base}{}", row("/shared", "/srv/bob/sub", "", "")),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body.contains(r#"id="error-virtual_folders.mapped_path""#),
        "{}",
        r.body
    );
    assert!(core.provider().user_by_username("bob").await.is_err());
    // Created: an unknown mapped path becomes a local folder.
    let rows = format!(
        "{}{}{empty}",
        row("/shared", &mapped, "", ""),
        row("/known", "/srv/known", "1000", "0")
    );
    let r = post(&app, "/web/users/new", &cookie, &format!("{base}{rows}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let bob = core.provider().user_by_username("bob").await.unwrap();
    let got: Vec<_> = bob
        .virtual_folders
        .iter()
        .map(|v| {
            (
                v.virtual_path.as_str(),
                v.mapped_path.as_str(),
                v.quota_size,
                v.quota_files,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("/shared", mapped.as_str(), -1, -1),
            ("/known", "/srv/known", 1000, 0)
        ]
    );
    let created = core.provider().folder_by_path(&mapped).await.unwrap();
    assert_eq!(
        created.filesystem.provider,
        sftpgo_provider::filesystem::FsProvider::Local
    );
    // The edit page shows the rows; saving them as shown keeps them, as does a form
    // without rows; an emptied row removes its folder (the folder record stays).
    let edit = format!("/web/users/{}", bob.id);
    let page = get(&app, &edit, &cookie).await;
    assert!(
        page.body.contains(r#"id="vf-1-virtual_path""#) && page.body.contains(r#"value="/known""#)
    );
    assert!(
        page.body.contains(r#"id="vf-2-virtual_path""#),
        "plus an empty row"
    );
    let base_edit = base.replace("password=pw", "password=");
    let r = post(
        &app,
        &edit,
        &cookie,
        &format!("{base_edit}{rows}&quota_files=9"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let after = core.provider().user_by_id(bob.id).await.unwrap();
    assert_eq!(after.quota_files, 9);
    assert_eq!(after.virtual_folders, bob.virtual_folders);
    let r = post(&app, &edit, &cookie, &format!("{base_edit}&quota_files=8")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let after = core.provider().user_by_id(bob.id).await.unwrap();
    assert_eq!(after.virtual_folders, bob.virtual_folders);
    let r = post(
        &app,
        &edit,
        &cookie,
        &format!(
            "{base_edit}{}{empty}{empty}",
            row("/known", "/srv/known", "1000", "0")
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let after = core.provider().user_by_id(bob.id).await.unwrap();
    assert_eq!(after.virtual_folders.len(), 1);
    assert_eq!(after.virtual_folders[0].virtual_path, "/known");
    assert!(core.provider().folder_by_path(&mapped).await.is_ok());
    // An edit with a rule violation shows it by the rows and keeps the stored user.
    let r = post(
        &app,
        &edit,
        &cookie,
        &format!(
            "{base_edit}{}{}",
            row("/a", "/srv/known", "", ""),
            row("/a/b", &mapped, "", "")
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body
            .contains(r#"id="error-virtual_folders.virtual_path""#),
        "{}",
        r.body
    );
    assert!(r.body.contains(r#"value="/a/b""#));
    assert_eq!(
        core.provider()
            .user_by_id(bob.id)
            .await
            .unwrap()
            .virtual_folders
            .len(),
        1
    );
}
