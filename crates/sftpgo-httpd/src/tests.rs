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
    let req = Request::builder()
        .method(method)
        .uri(uri)
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
    for bad in ["limit=x", "limit=-1", "offset=-2", "order=up"] {
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
        StatusCode::NOT_FOUND
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
