//! Every endpoint through the router, without a network.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sftpgo_core::{Core, Settings};
use sftpgo_provider::memory::MemoryBackend;
use sftpgo_provider::{DataProvider, TrackQuota};
use tower::ServiceExt;

use super::*;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@host";

fn app(manage_users: bool) -> (Router, Core) {
    let provider = DataProvider::new(
        Arc::new(MemoryBackend::new()),
        manage_users,
        TrackQuota::Always,
    );
    let core = Core::new(provider, Settings::default());
    let version = VersionInfo {
        version: "1.2.3".into(),
        build_date: "d".into(),
        commit_hash: "c".into(),
    };
    (router(core.clone(), version), core)
}

async fn call(app: &Router, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn raw(app: &Router, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
    raw_typed(app, method, uri, "application/json", body).await
}

fn alice() -> Value {
    json!({"username": "alice", "password": "secret", "home_dir": "/srv/alice", "permissions": ["*"], "public_keys": [KEY], "quota_size": 100})
}

#[tokio::test]
async fn version_and_routing_errors() {
    let (app, _) = app(true);
    let (s, v) = call(&app, "GET", "/api/v1/version", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!({"version": "1.2.3", "build_date": "d", "commit_hash": "c"})
    );
    let (s, v) = call(&app, "GET", "/api/v1/nope", None).await;
    assert_eq!(
        (s, v["status"].as_u64()),
        (StatusCode::NOT_FOUND, Some(404))
    );
    assert_eq!(v["message"], "Not Found");
    let (s, v) = call(&app, "PATCH", "/api/v1/user", None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(v["message"], "Method not allowed");
}

#[tokio::test]
async fn user_crud_and_merge_semantics() {
    let (app, core) = app(true);
    let (s, created) = call(&app, "POST", "/api/v1/user", Some(alice())).await;
    assert_eq!(s, StatusCode::OK, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert!(created.get("password").is_none(), "{created}");
    assert_eq!(created["public_keys"][0], KEY);
    let stored = core.provider().user_by_id(id).await.unwrap();
    assert!(
        stored
            .password
            .as_deref()
            .unwrap()
            .starts_with("$argon2id$")
    );
    // Duplicate → 409; validation → 400; bad JSON and wrong types → 400.
    assert_eq!(
        call(&app, "POST", "/api/v1/user", Some(alice())).await.0,
        StatusCode::CONFLICT
    );
    let mut bad = alice();
    bad["username"] = json!("bob");
    bad["home_dir"] = json!("relative");
    let (s, v) = call(&app, "POST", "/api/v1/user", Some(bad)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("home_dir"), "{v}");
    let mut bad = alice();
    bad["username"] = json!("bob");
    bad["permissions"] = json!(["fly"]);
    assert_eq!(
        call(&app, "POST", "/api/v1/user", Some(bad)).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        raw(&app, "POST", "/api/v1/user", "{not json").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        raw(&app, "POST", "/api/v1/user", r#"{"username": 5}"#)
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    // GET one, unknown, invalid id.
    let (s, v) = call(&app, "GET", &format!("/api/v1/user/{id}"), None).await;
    assert_eq!((s, v["username"].as_str()), (StatusCode::OK, Some("alice")));
    assert_eq!(
        call(&app, "GET", "/api/v1/user/999", None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&app, "GET", "/api/v1/user/abc", None).await.0,
        StatusCode::BAD_REQUEST
    );
    // PUT merges: omitted password kept, other fields kept.
    let (s, v) = call(
        &app,
        "PUT",
        &format!("/api/v1/user/{id}"),
        Some(json!({"quota_files": 7})),
    )
    .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (StatusCode::OK, Some("User updated"))
    );
    let after = core.provider().user_by_id(id).await.unwrap();
    assert_eq!((after.quota_files, after.quota_size), (7, 100));
    assert_eq!(after.password, stored.password);
    // id mismatch → 400; "password": "" clears it (keys remain).
    let (s, v) = call(
        &app,
        "PUT",
        &format!("/api/v1/user/{id}"),
        Some(json!({"id": id + 1})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["message"],
        "user ID in request body does not match user ID in path parameter"
    );
    assert_eq!(
        call(
            &app,
            "PUT",
            &format!("/api/v1/user/{id}"),
            Some(json!({"password": ""}))
        )
        .await
        .0,
        StatusCode::OK
    );
    assert!(
        core.provider()
            .user_by_id(id)
            .await
            .unwrap()
            .password
            .is_none()
    );
    // Clearing the keys too leaves no credential: refused.
    assert_eq!(
        call(
            &app,
            "PUT",
            &format!("/api/v1/user/{id}"),
            Some(json!({"public_keys": []}))
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    // DELETE.
    let (s, v) = call(&app, "DELETE", &format!("/api/v1/user/{id}"), None).await;
    assert_eq!(
        (s, v["message"].as_str()),
        (StatusCode::OK, Some("User deleted"))
    );
    assert_eq!(
        call(&app, "DELETE", &format!("/api/v1/user/{id}"), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn listing_with_paging_ordering_and_filters() {
    let (app, _) = app(true);
    for name in ["c", "a", "b"] {
        let mut u = alice();
        u["username"] = json!(name);
        u["home_dir"] = json!(format!("/srv/{name}"));
        assert_eq!(
            call(&app, "POST", "/api/v1/user", Some(u)).await.0,
            StatusCode::OK
        );
    }
    let names = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&call(&app, "GET", "/api/v1/user", None).await.1),
        ["a", "b", "c"]
    );
    assert_eq!(
        names(
            &call(&app, "GET", "/api/v1/user?order=DESC&limit=2", None)
                .await
                .1
        ),
        ["c", "b"]
    );
    assert_eq!(
        names(
            &call(&app, "GET", "/api/v1/user?offset=1&limit=1", None)
                .await
                .1
        ),
        ["b"]
    );
    assert_eq!(
        names(&call(&app, "GET", "/api/v1/user?username=c", None).await.1),
        ["c"]
    );
    assert_eq!(
        names(&call(&app, "GET", "/api/v1/user?limit=1000", None).await.1).len(),
        3
    );
    for bad in [
        "limit=x",
        "limit=-1",
        "limit=0",
        "offset=-2",
        "order=up",
        "usernme=c",
        "=x",
    ] {
        assert_eq!(
            call(&app, "GET", &format!("/api/v1/user?{bad}"), None)
                .await
                .0,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    let list = call(&app, "GET", "/api/v1/user", None).await.1;
    assert!(list[0].get("password").is_none());
}

#[tokio::test]
async fn read_only_provider_refuses_mutations_with_403() {
    let (app, _) = app(false);
    assert_eq!(
        call(&app, "POST", "/api/v1/user", Some(alice())).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&app, "PUT", "/api/v1/user/1", Some(json!({}))).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&app, "DELETE", "/api/v1/user/1", None).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn quota_scan_runs_in_the_background() {
    let (app, core) = app(true);
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("a"), b"12345").unwrap();
    std::fs::create_dir(home.path().join("d")).unwrap();
    std::fs::write(home.path().join("d/b"), b"123").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", home.path().join("link")).unwrap();
    let mut u = alice();
    u["home_dir"] = json!(home.path().display().to_string());
    call(&app, "POST", "/api/v1/user", Some(u)).await;
    let (s, v) = call(
        &app,
        "POST",
        "/api/v1/quota_scan",
        Some(json!({"username": "alice"})),
    )
    .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (StatusCode::CREATED, Some("Scan started"))
    );
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/v1/quota_scan",
            Some(json!({"username": "ghost"}))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let start = std::time::Instant::now();
    loop {
        let u = core.provider().user_by_username("alice").await.unwrap();
        if (u.used_quota_size, u.used_quota_files) == (8, 2) {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "scan did not finish"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        call(&app, "GET", "/api/v1/quota_scan", None).await.1,
        json!([])
    );
}

#[tokio::test]
async fn connections_list_and_unknown_close() {
    let (app, _) = app(true);
    for path in ["/api/v1/connection", "/api/v1/sftp_connection"] {
        let (s, v) = call(&app, "GET", path, None).await;
        assert_eq!((s, v), (StatusCode::OK, json!([])));
        assert_eq!(
            call(&app, "DELETE", &format!("{path}/abc"), None).await.0,
            StatusCode::NOT_FOUND
        );
    }
}

#[tokio::test]
async fn health_and_metrics() {
    let (app, _) = app(true);
    let (status, body) = call(&app, "GET", "/healthz", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], 200);
    assert_eq!(
        call(&app, "POST", "/api/v1/user", Some(alice())).await.0,
        StatusCode::OK
    );
    let req = Request::builder()
        .uri("/metrics")
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(text.contains("sftpgo_active_connections 0"), "{text}");
    // The health check's ping and the insert were timed.
    for op in ["ping", "insert_user"] {
        let line = format!(
            "sftpgo_provider_query_duration_seconds_count{{operation=\"{op}\",result=\"ok\"}} 1"
        );
        assert!(text.contains(&line), "{line} missing from:\n{text}");
    }
    assert_eq!(
        call(&app, "POST", "/metrics", None).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

fn htpasswd_line(user: &str, password: &str, version: bcrypt::Version) -> String {
    let hash = bcrypt::hash_with_result(password, 4)
        .unwrap()
        .format_for_version(version);
    format!("{user}:{hash}")
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

async fn get_with(app: &Router, uri: &str, auth: Option<&str>) -> axum::response::Response {
    let mut req = Request::builder().method("GET").uri(uri);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    app.clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

#[test]
fn htpasswd_keeps_only_bcrypt_entries() {
    let text = format!(
        "# comment\n\n{}\n{}\n{}\nmd5user:$apr1$abc$def\nplain:secret\nnocolon\n:$2y$04$empty-user\n",
        htpasswd_line("a", "pa", bcrypt::Version::TwoY),
        htpasswd_line("b", "pb", bcrypt::Version::TwoA),
        htpasswd_line("c", "pc", bcrypt::Version::TwoB),
    );
    let auth = BasicAuth::parse(&text, "test");
    assert_eq!(auth.len(), 3);
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "plain:secret\n").unwrap();
    let e = BasicAuth::load(&empty).unwrap_err();
    assert!(matches!(e, HttpdError::NoAuthEntries { .. }), "{e}");
    let e = BasicAuth::load(&dir.path().join("missing")).unwrap_err();
    assert!(
        e.to_string().starts_with("cannot read the auth_user_file"),
        "{e}"
    );
}

#[tokio::test]
async fn basic_auth_guards_every_route() {
    let (_, core) = app(true);
    let text = format!(
        "{}\n{}\n",
        htpasswd_line("admin", "s3cret", bcrypt::Version::TwoY),
        htpasswd_line("ops", "other", bcrypt::Version::TwoB)
    );
    let auth = Arc::new(BasicAuth::parse(&text, "test"));
    let version = VersionInfo {
        version: "1".into(),
        build_date: String::new(),
        commit_hash: String::new(),
    };
    let app = router_with_auth(core, version, Some(auth.clone()));
    for uri in [
        "/api/v1/version",
        "/api/v1/user",
        "/api/v1/nope",
        "/metrics",
    ] {
        for given in [
            None,
            Some(basic("admin", "wrong")),
            Some(basic("ghost", "s3cret")),
            Some("Bearer abc".to_string()),
            Some("Basic !!!".to_string()),
        ] {
            let resp = get_with(&app, uri, given.as_deref()).await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{uri} {given:?}");
            assert_eq!(resp.headers()["www-authenticate"], "Basic realm=\"sftpgo\"");
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["status"], 401, "{v}");
            assert_eq!(v["error"], "");
        }
    }
    let resp = get_with(&app, "/api/v1/version", Some(&basic("admin", "s3cret"))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    // Cached now; a wrong password for the same user still fails.
    let resp = get_with(&app, "/api/v1/user", Some(&basic("admin", "s3cret"))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = get_with(&app, "/api/v1/user", Some(&basic("admin", "s3cret!"))).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = get_with(&app, "/api/v1/user", Some(&basic("ops", "other"))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(auth.verify("ops", "other").await);
    assert!(!auth.verify("ops", "").await);
    // Unknown users go through a real bcrypt check (a malformed dummy would return at once).
    assert!(bcrypt::verify("other", super::auth::DUMMY_HASH).is_ok());
    assert!(!auth.verify("ghost", "other").await);
    let resp = get_with(&app, "/metrics", Some(&basic("ops", "other"))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    // Load balancers' health checks need no credentials.
    assert_eq!(
        get_with(&app, "/healthz", None).await.status(),
        StatusCode::OK
    );
}

async fn raw_typed(
    app: &Router,
    method: &str,
    uri: &str,
    ctype: &str,
    body: &str,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", ctype)
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The request a malicious page in the administrator's browser can send without a CORS
/// preflight (measured before: it created a user with `home_dir: "/"`).
async fn forged(
    app: &Router,
    ctype: &str,
    origin: Option<&str>,
    auth: Option<&str>,
) -> (StatusCode, Value) {
    let body = json!({"username": "evil", "password": "x", "home_dir": "/", "permissions": ["*"]});
    let mut req = Request::builder()
        .method("POST")
        .uri("/api/v1/user")
        .header("host", "127.0.0.1:8080")
        .header("content-type", ctype);
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_web_page_cannot_drive_the_api() {
    let (open, core) = app(true);
    let text = format!(
        "{}\n",
        htpasswd_line("admin", "s3cret", bcrypt::Version::TwoY)
    );
    let version = VersionInfo {
        version: "1".into(),
        build_date: String::new(),
        commit_hash: String::new(),
    };
    let guarded = router_with_auth(
        core.clone(),
        version,
        Some(Arc::new(BasicAuth::parse(&text, "test"))),
    );
    let creds = basic("admin", "s3cret");
    for (app, auth) in [(&open, None), (&guarded, Some(creds.as_str()))] {
        // The exact request: text/plain from a foreign origin.
        let (s, v) = forged(app, "text/plain", Some("http://evil.example"), auth).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        assert!(
            v["message"].as_str().unwrap().contains("evil.example"),
            "{v}"
        );
        // Each rule on its own.
        let (s, v) = forged(app, "text/plain", None, auth).await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
        assert_eq!(v["status"], 415);
        let (s, _) = forged(app, "application/x-www-form-urlencoded", None, auth).await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let (s, _) = forged(app, "application/json", Some("http://evil.example"), auth).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = forged(app, "application/json", Some("null"), auth).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    assert!(core.provider().user_by_username("evil").await.is_err());
    // Without credentials the forged request is a 401 before anything else.
    let (s, _) = forged(&guarded, "text/plain", Some("http://evil.example"), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // An undeclared method stays 405 and an unknown path 404, whatever the body.
    let (s, _) = raw_typed(&open, "PUT", "/api/v1/connection", "text/plain", "x").await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    let (s, _) = raw_typed(&open, "POST", "/api/v1/nope", "text/plain", "x").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The API's own origin (a page it serves, later the web admin) is fine, up to validation.
    let (s, v) = forged(
        &open,
        "application/json",
        Some("http://127.0.0.1:8080"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap().contains("home_dir"), "{v}");
}

#[test]
fn only_a_non_loopback_api_without_auth_is_flagged() {
    let addr = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
    assert!(exposed_without_auth(&addr("0.0.0.0:8080"), false));
    assert!(exposed_without_auth(&addr("[::]:8080"), false));
    assert!(exposed_without_auth(&addr("192.0.2.7:8080"), false));
    assert!(!exposed_without_auth(&addr("0.0.0.0:8080"), true));
    assert!(!exposed_without_auth(&addr("127.0.0.1:8080"), false));
    assert!(!exposed_without_auth(&addr("[::1]:8080"), false));
}

#[test]
fn tls_config_reports_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("c.pem");
    let key = dir.path().join("k.pem");
    let e = tls_config(&cert, &key).unwrap_err();
    assert!(e.to_string().contains("c.pem"), "{e}");
    std::fs::write(&cert, "not a certificate").unwrap();
    std::fs::write(&key, "not a key").unwrap();
    let e = tls_config(&cert, &key).unwrap_err();
    assert!(e.to_string().contains("c.pem"), "{e}");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    let e = tls_config(&cert, &key).unwrap_err();
    assert!(e.to_string().contains("k.pem"), "{e}");
    // A key that is not the certificate's.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(&key, other.signing_key.serialize_pem()).unwrap();
    let e = tls_config(&cert, &key).unwrap_err();
    assert!(e.to_string().contains("do not work together"), "{e}");
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    tls_config(&cert, &key).unwrap();
}

/// The OpenAPI document, parsed.
fn openapi_doc() -> Value {
    serde_yaml::from_str(OPENAPI_YAML).expect("openapi.yaml parses")
}

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

#[tokio::test]
async fn openapi_document_matches_the_router() {
    let doc = openapi_doc();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    let paths = doc["paths"].as_object().unwrap();
    // The same set of paths...
    let mut documented: Vec<String> = paths.keys().map(|p| format!("/api/v1{p}")).collect();
    let mut routed: Vec<String> = routes().iter().map(|(p, _)| p.to_string()).collect();
    documented.sort();
    routed.sort();
    assert_eq!(documented, routed);
    // ...and on each, exactly the documented methods are served (the others are 405).
    let (app, _) = app(true);
    for (path, item) in paths {
        let uri = format!("/api/v1{}", path.replace("{id}", "1"));
        for method in METHODS {
            let op = &item[method.to_lowercase().as_str()];
            let (status, body) = raw(&app, method, &uri, "{}").await;
            if op.is_object() {
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
                // Every answer is a documented status.
                let code = status.as_u16().to_string();
                assert!(
                    op["responses"].get(&code).is_some(),
                    "{method} {uri}: {code} not documented ({body})"
                );
            } else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
            }
        }
    }
    // Every $ref resolves.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix('#').expect("local ref");
        assert!(doc.pointer(pointer).is_some(), "dangling {r}");
    }
}

#[tokio::test]
async fn openapi_schemas_agree_with_the_types() {
    let doc = openapi_doc();
    let schemas = &doc["components"]["schemas"];
    // The eight permissions, exactly as the provider names them.
    let perms: Vec<Value> = schemas["Permission"]["enum"].as_array().unwrap().clone();
    let expected: Vec<Value> = [
        sftpgo_provider::Permission::Any,
        sftpgo_provider::Permission::List,
        sftpgo_provider::Permission::Download,
        sftpgo_provider::Permission::Upload,
        sftpgo_provider::Permission::Delete,
        sftpgo_provider::Permission::Rename,
        sftpgo_provider::Permission::CreateDirs,
        sftpgo_provider::Permission::CreateSymlinks,
    ]
    .iter()
    .map(|p| serde_json::to_value(p).unwrap())
    .collect();
    assert_eq!(perms, expected);
    // A user as the API returns it has exactly the documented fields.
    let (app, _) = app(true);
    let (_, created) = call(&app, "POST", "/api/v1/user", Some(alice())).await;
    let mut fields: Vec<&String> = created.as_object().unwrap().keys().collect();
    let mut documented: Vec<&String> = schemas["User"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    fields.sort();
    documented.sort();
    assert_eq!(fields, documented);
    let required: Vec<&str> = schemas["User"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required.len(), fields.len());
    // Its filesystem and S3 settings too (every S3 key but the never-returned secret).
    let fs_keys: Vec<&String> = created["filesystem"].as_object().unwrap().keys().collect();
    let mut fs_documented: Vec<&String> = schemas["Filesystem"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    fs_documented.sort();
    assert_eq!(fs_keys, fs_documented);
    let mut s3_keys: Vec<&String> = created["filesystem"]["s3config"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    let secret_field = "access_secret".to_owned();
    s3_keys.push(&secret_field);
    s3_keys.sort();
    let mut s3_documented: Vec<&String> = schemas["S3Config"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    s3_documented.sort();
    assert_eq!(s3_keys, s3_documented);
    // A folder as the API returns it, and a user's mapping of it.
    let (status, folder) = call(
        &app,
        "POST",
        "/api/v1/folder",
        Some(json!({"mapped_path": "/srv/folders/doc"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{folder}");
    let (_, listed) = call(&app, "GET", "/api/v1/folder", None).await;
    let documented_keys = |schema: &str| {
        let mut keys: Vec<String> = schemas[schema]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    let keys_of = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys_of(&folder), documented_keys("Folder"));
    assert_eq!(keys_of(&listed[0]), documented_keys("Folder"));
    let mut mapped = alice();
    mapped["username"] = json!("mapper");
    mapped["home_dir"] = json!("/srv/sftp/mapper");
    mapped["virtual_folders"] = json!([{"virtual_path": "/doc", "mapped_path": "/srv/folders/doc",
        "quota_size": -1, "quota_files": -1}]);
    let (status, user) = call(&app, "POST", "/api/v1/user", Some(mapped)).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    let mut vf_documented = documented_keys("VirtualFolder");
    vf_documented.retain(|k| k != "filesystem"); // write-only
    assert_eq!(keys_of(&user["virtual_folders"][0]), vf_documented);
    // ApiResponse and VersionInfo.
    let (_, v) = call(&app, "GET", "/api/v1/version", None).await;
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(
        keys.len(),
        schemas["VersionInfo"]["required"].as_array().unwrap().len()
    );
    let (_, v) = call(&app, "GET", "/api/v1/nope", None).await;
    assert_eq!(
        v.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["error", "message", "status"]
    );
    // The document is served as YAML, unchanged.
    let resp = get_with(&app, "/api/v1/openapi.yaml", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/yaml");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], OPENAPI_YAML.as_bytes());
}

#[tokio::test]
async fn wrong_methods_are_405_with_allow_and_bad_paths_400() {
    let (app, _) = app(true);
    let req = Request::builder()
        .method("PATCH")
        .uri("/api/v1/user")
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = resp.headers()["allow"].to_str().unwrap().to_string();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    assert_eq!(resp.headers()["content-type"], "application/json");
    // A path segment that is not UTF-8.
    let (s, v) = call(&app, "DELETE", "/api/v1/connection/%FF", None).await;
    assert_eq!(
        (s, v["status"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(400))
    );
    let (s, _) = call(&app, "GET", "/api/v1/user/%FF", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}
