//! One small function per endpoint.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use sftpgo_provider::{ProviderError, SortOrder, User, UserQuery};

use crate::error::ApiResponse;
use crate::{AppState, VersionInfo};

type ApiResult<T> = Result<T, ApiResponse>;

/// Users as the API shows them: never the password or its hash.
fn user_json(user: &User) -> Value {
    serde_json::to_value(user.without_secrets()).unwrap_or(Value::Null)
}

pub(crate) fn parse_body(body: &Bytes) -> ApiResult<Value> {
    serde_json::from_slice(body)
        .map_err(|e| ApiResponse::bad_request(format!("invalid JSON body: {e}")))
}

fn user_from(value: Value) -> ApiResult<User> {
    serde_json::from_value(value)
        .map_err(|e| ApiResponse::bad_request(format!("invalid user: {e}")))
}

fn parse_id(id: &str) -> ApiResult<i64> {
    id.parse()
        .map_err(|_| ApiResponse::bad_request("Invalid userID"))
}

pub async fn version(State(s): State<AppState>) -> Json<VersionInfo> {
    Json(s.version)
}

pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/yaml")],
        crate::OPENAPI_YAML,
    )
}

/// A path segment that is not valid UTF-8 (or otherwise unusable) → 400 in the API shape.
fn path_param(p: Result<Path<String>, PathRejection>) -> ApiResult<String> {
    p.map(|Path(v)| v)
        .map_err(|e| ApiResponse::bad_request(e.body_text()))
}

/// A listing's query: `limit` (clamped to 500), `offset`, `order` and the `filter`
/// parameter (empty: none).
pub(crate) struct ListParams {
    pub limit: u32,
    pub offset: u32,
    pub order: SortOrder,
    pub filter: Option<String>,
}

pub(crate) fn list_params(
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    filter: &str,
) -> ApiResult<ListParams> {
    let Query(q) = q.map_err(|e| ApiResponse::bad_request(e.body_text()))?;
    // A misspelt filter must not silently list everything.
    if let Some(k) = q
        .keys()
        .find(|k| !["limit", "offset", "order", filter].contains(&k.as_str()))
    {
        return Err(ApiResponse::bad_request(format!(
            "unknown query parameter {k:?} (expected limit, offset, order, {filter})"
        )));
    }
    let number = |key: &str, default: u32| -> ApiResult<u32> {
        match q.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse::<u32>()
                .map_err(|_| ApiResponse::bad_request(format!("Invalid {key}"))),
        }
    };
    let limit = number("limit", 100)?;
    if limit == 0 {
        return Err(ApiResponse::bad_request("Invalid limit"));
    }
    let order = match q.get("order").map(String::as_str) {
        None | Some("ASC") => SortOrder::Asc,
        Some("DESC") => SortOrder::Desc,
        Some(_) => return Err(ApiResponse::bad_request("Invalid order")),
    };
    Ok(ListParams {
        // 0.9 clamps larger limits rather than refusing them.
        limit: limit.min(sftpgo_provider::MAX_LIST_LIMIT),
        offset: number("offset", 0)?,
        order,
        filter: q.get(filter).cloned().filter(|u| !u.is_empty()),
    })
}

pub async fn list_users(
    State(s): State<AppState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let p = list_params(q, "username")?;
    let query = UserQuery {
        limit: p.limit,
        offset: p.offset,
        order: p.order,
        username: p.filter,
    };
    s.core.quota().write_now().await;
    let users = s.core.provider().list_users(&query).await?;
    Ok(Json(Value::Array(users.iter().map(user_json).collect())))
}

pub async fn add_user(State(s): State<AppState>, body: Bytes) -> ApiResult<Json<Value>> {
    let user = user_from(parse_body(&body)?)?;
    let stored = s.core.provider().add_user(user).await?;
    Ok(Json(user_json(&stored)))
}

pub async fn get_user(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&path_param(id)?)?;
    // The used quota as clients were answered: this process's changes written first.
    s.core.quota().write_now().await;
    let user = s.core.provider().user_by_id(id).await?;
    Ok(Json(user_json(&user)))
}

/// PUT merges the body onto the stored user: omitted fields keep their values (omitting
/// `password` keeps it), `"password": ""` clears it.
pub async fn update_user(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> ApiResult<ApiResponse> {
    let id = parse_id(&path_param(id)?)?;
    let Value::Object(changes) = parse_body(&body)? else {
        return Err(ApiResponse::bad_request("the body must be a JSON object"));
    };
    if let Some(body_id) = changes.get("id")
        && body_id.as_i64() != Some(id)
    {
        return Err(ApiResponse::new(
            StatusCode::BAD_REQUEST,
            "",
            "user ID in request body does not match user ID in path parameter",
        ));
    }
    // A read-only provider refuses every update, whether or not the user exists.
    if !s.core.provider().manage_users() {
        return Err(ApiResponse::from(sftpgo_provider::ProviderError::ReadOnly));
    }
    let stored = s.core.provider().user_by_id(id).await?;
    // The stored S3 secret is not merged in: whether it is kept is the provider's rule
    // (not when the bucket, endpoint or access key change).
    let mut base = stored.clone();
    base.filesystem.s3config.access_secret = Default::default();
    let mut merged = serde_json::to_value(&base).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut merged {
        for (k, v) in changes {
            let cleared = k == "password" && v.as_str() == Some("");
            match (m.get_mut(&k), v) {
                // A partial `filesystem` (or `s3config` in it) changes only what it names.
                (Some(Value::Object(old)), Value::Object(new)) if k == "filesystem" => {
                    merge_objects(old, new)
                }
                (_, v) => {
                    m.insert(k, if cleared { Value::Null } else { v });
                }
            }
        }
    }
    let mut user = user_from(merged)?;
    user.id = id;
    s.core.provider().update_user(user).await?;
    Ok(ApiResponse::ok("User updated"))
}

/// Puts `new`'s fields into `old`, objects merged field by field.
pub(crate) fn merge_objects(
    old: &mut serde_json::Map<String, Value>,
    new: serde_json::Map<String, Value>,
) {
    for (k, v) in new {
        match (old.get_mut(&k), v) {
            (Some(Value::Object(o)), Value::Object(n)) => merge_objects(o, n),
            (_, v) => {
                old.insert(k, v);
            }
        }
    }
}

pub async fn delete_user(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<ApiResponse> {
    s.core
        .provider()
        .delete_user(parse_id(&path_param(id)?)?)
        .await?;
    Ok(ApiResponse::ok("User deleted"))
}

pub async fn list_scans(State(s): State<AppState>) -> Json<Value> {
    Json(s.scans.json("username"))
}

/// Starts a background quota scan of the user's home dir; the totals replace the stored
/// used quota.
pub async fn start_scan(
    State(s): State<AppState>,
    body: Bytes,
) -> ApiResult<(StatusCode, ApiResponse)> {
    let body = parse_body(&body)?;
    let Some(username) = body.get("username").and_then(Value::as_str) else {
        return Err(ApiResponse::bad_request("username is required"));
    };
    let user = match s.core.provider().user_by_username(username).await {
        Ok(u) => u,
        Err(ProviderError::NotFound(e)) => {
            return Err(ApiResponse::new(StatusCode::NOT_FOUND, e, ""));
        }
        Err(e) => return Err(e.into()),
    };
    crate::scans::started(begin_scan(&s, user))
}

/// Starts a quota scan of `user` in the background (the API's and the web admin's);
/// `false` when one is already running for that user.
pub(crate) fn begin_scan(s: &AppState, user: User) -> bool {
    let Some(running) = s.scans.begin(&user.username) else {
        return false;
    };
    tokio::spawn(run_scan(s.clone(), user, running));
    true
}

async fn run_scan(s: AppState, user: User, _running: crate::scans::ScanGuard) {
    match s.core.scan_usage(&user).await {
        Ok((size, files)) => match s.core.quota().reset(&user.username, size, files).await {
            Ok(()) => {
                tracing::info!(sender = "httpd", username = %user.username, size, files, "quota scan done")
            }
            Err(e) => {
                tracing::warn!(sender = "httpd", username = %user.username, error = %e, "cannot store quota scan")
            }
        },
        Err(e) => {
            tracing::warn!(sender = "httpd", username = %user.username, error = %e, "quota scan failed")
        }
    }
}

pub async fn list_connections(State(s): State<AppState>) -> Json<Value> {
    let list = s
        .core
        .registry()
        .list()
        .into_iter()
        .map(|c| {
            json!({
                "username": c.username,
                "connection_id": c.connection_id,
                "client_version": c.client_version,
                "remote_address": c.remote_address,
                "connection_time": c.connection_time,
                "last_activity": c.last_activity,
                "protocol": c.protocol,
                "active_transfers": c.active_transfers.iter().map(|t| json!({
                    "operation_type": t.operation_type,
                    "path": t.path,
                    "start_time": t.start_time,
                    "size": t.size,
                    "last_activity": t.last_activity,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(Value::Array(list))
}

pub async fn close_connection(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<ApiResponse> {
    if s.core.registry().close(&path_param(id)?) {
        Ok(ApiResponse::ok("Connection closed"))
    } else {
        Err(ApiResponse::new(StatusCode::NOT_FOUND, "", "Not Found"))
    }
}

/// Hosts the defender lists at most.
const MAX_DEFENDER_HOSTS: usize = 10_000;

/// A host as SFTPGo 2.x shows it: `id` is the hex of the address text (usable in URLs),
/// `ban_time` (RFC 3339, UTC) only while banned.
fn host_json(h: &sftpgo_core::defender::HostStatus) -> Value {
    let ip = h.ip.to_string();
    let mut v = json!({
        "id": hex::encode(&ip),
        "ip": ip,
        "score": h.score,
    });
    if let Some(t) = h
        .ban_until
        .and_then(chrono::DateTime::from_timestamp_millis)
    {
        v["ban_time"] = json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    v
}

/// The `{id}` of a defender host: an IP address, or SFTPGo 2.x's hex of one.
fn host_ip(id: &str) -> ApiResult<std::net::IpAddr> {
    if let Ok(ip) = id.parse() {
        return Ok(ip);
    }
    let decoded = hex::decode(id)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse().ok());
    decoded.ok_or_else(|| {
        ApiResponse::bad_request(format!(
            "invalid host {id:?}: expected an IP address (or its hex encoding)"
        ))
    })
}

pub async fn defender_hosts(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let hosts = s.core.defender().hosts(MAX_DEFENDER_HOSTS).await?;
    Ok(Json(Value::Array(hosts.iter().map(host_json).collect())))
}

pub async fn defender_host(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let ip = host_ip(&path_param(id)?)?;
    match s.core.defender().host(ip).await? {
        Some(h) => Ok(Json(host_json(&h))),
        None => Err(ApiResponse::new(StatusCode::NOT_FOUND, "", "Not Found")),
    }
}

/// Unbans the host and forgets its score.
pub async fn defender_unban(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<ApiResponse> {
    let ip = host_ip(&path_param(id)?)?;
    if s.core.defender().unban(ip).await? {
        Ok(ApiResponse::ok("Host removed"))
    } else {
        Err(ApiResponse::new(StatusCode::NOT_FOUND, "", "Not Found"))
    }
}

pub async fn not_found() -> ApiResponse {
    ApiResponse::new(StatusCode::NOT_FOUND, "", "Not Found")
}

pub async fn method_not_allowed() -> ApiResponse {
    ApiResponse::new(StatusCode::METHOD_NOT_ALLOWED, "", "Method not allowed")
}
