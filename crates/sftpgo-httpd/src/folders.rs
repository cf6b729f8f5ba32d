//! `/api/v1/folder` and `/api/v1/folder_quota_scan`: virtual folders (SFTPGo 1.x's
//! endpoints, keyed by `mapped_path`, given as the `folder_path` query parameter).

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde_json::Value;
use sftpgo_core::quota::Owner;
use sftpgo_provider::{Folder, FolderQuery, ProviderError};

use crate::AppState;
use crate::error::ApiResponse;
use crate::handlers::{list_params, merge_objects, parse_body};

type ApiResult<T> = Result<T, ApiResponse>;

/// Folders as the API shows them: never the storage's access secret.
fn folder_json(folder: &Folder) -> Value {
    serde_json::to_value(folder.without_secrets()).unwrap_or(Value::Null)
}

fn folder_from(value: Value) -> ApiResult<Folder> {
    serde_json::from_value(value)
        .map_err(|e| ApiResponse::bad_request(format!("invalid folder: {e}")))
}

/// The `folder_path` query parameter, required.
fn folder_path(q: Result<Query<HashMap<String, String>>, QueryRejection>) -> ApiResult<String> {
    let Query(q) = q.map_err(|e| ApiResponse::bad_request(e.body_text()))?;
    if let Some(k) = q.keys().find(|k| k.as_str() != "folder_path") {
        return Err(ApiResponse::bad_request(format!(
            "unknown query parameter {k:?} (expected folder_path)"
        )));
    }
    q.get("folder_path")
        .filter(|p| !p.is_empty())
        .cloned()
        .ok_or_else(|| ApiResponse::bad_request("folder_path is required"))
}

pub async fn list_folders(
    State(s): State<AppState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let p = list_params(q, "folder_path")?;
    let query = FolderQuery {
        limit: p.limit,
        offset: p.offset,
        order: p.order,
        mapped_path: p.filter,
    };
    // The used quota as clients were answered: this process's changes written first.
    s.core.quota().write_now().await;
    let folders = s.core.provider().list_folders(&query).await?;
    Ok(Json(Value::Array(
        folders.iter().map(folder_json).collect(),
    )))
}

pub async fn add_folder(State(s): State<AppState>, body: Bytes) -> ApiResult<Json<Value>> {
    let folder = folder_from(parse_body(&body)?)?;
    let stored = s.core.provider().add_folder(folder).await?;
    Ok(Json(folder_json(&stored)))
}

/// PUT merges the body onto the stored folder, as for users: only its `filesystem`
/// changes (the mapped path is its key, the used quota is the scans' and uploads').
pub async fn update_folder(
    State(s): State<AppState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Bytes,
) -> ApiResult<ApiResponse> {
    let path = folder_path(q)?;
    let Value::Object(changes) = parse_body(&body)? else {
        return Err(ApiResponse::bad_request("the body must be a JSON object"));
    };
    if changes
        .get("mapped_path")
        .is_some_and(|p| p.as_str() != Some(path.as_str()))
    {
        return Err(ApiResponse::bad_request(
            "mapped_path in the body does not match folder_path",
        ));
    }
    if !s.core.provider().manage_users() {
        return Err(ApiResponse::from(ProviderError::ReadOnly));
    }
    let mut base = s.core.provider().folder_by_path(&path).await?;
    // The stored secret is not merged in: whether it is kept is the provider's rule.
    base.filesystem.s3config.access_secret = Default::default();
    let mut merged = serde_json::to_value(&base).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut merged {
        merge_objects(m, changes);
    }
    let mut folder = folder_from(merged)?;
    folder.mapped_path = path;
    s.core.provider().update_folder(folder).await?;
    Ok(ApiResponse::ok("Folder updated"))
}

/// Removes the folder and every user's mapping of it; its files stay where they are.
pub async fn delete_folder(
    State(s): State<AppState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<ApiResponse> {
    let path = folder_path(q)?;
    s.core.provider().delete_folder(&path).await?;
    Ok(ApiResponse::ok("Folder deleted"))
}

pub async fn list_folder_scans(State(s): State<AppState>) -> Json<Value> {
    Json(s.folder_scans.json("mapped_path"))
}

/// Starts a background quota scan of a folder (`{"mapped_path": ...}`); the totals
/// replace its stored used quota.
pub async fn start_folder_scan(
    State(s): State<AppState>,
    body: Bytes,
) -> ApiResult<(StatusCode, ApiResponse)> {
    let body = parse_body(&body)?;
    let Some(path) = body.get("mapped_path").and_then(Value::as_str) else {
        return Err(ApiResponse::bad_request("mapped_path is required"));
    };
    let folder = match s.core.provider().folder_by_path(path).await {
        Ok(f) => f,
        Err(ProviderError::NotFound(e)) => {
            return Err(ApiResponse::new(StatusCode::NOT_FOUND, e, ""));
        }
        Err(e) => return Err(e.into()),
    };
    crate::scans::started(begin_folder_scan(&s, folder))
}

/// Starts a quota scan of `folder` in the background (the API's and the web admin's);
/// `false` when one is already running for that folder.
pub(crate) fn begin_folder_scan(s: &AppState, folder: Folder) -> bool {
    let Some(running) = s.folder_scans.begin(&folder.mapped_path) else {
        return false;
    };
    tokio::spawn(run_folder_scan(s.clone(), folder, running));
    true
}

async fn run_folder_scan(s: AppState, folder: Folder, _running: crate::scans::ScanGuard) {
    let path = folder.mapped_path.clone();
    match s.core.scan_folder(&folder).await {
        Ok((size, files)) => {
            let owner = Owner::Folder(path.clone());
            match s.core.quota().reset_owner(&owner, size, files).await {
                Ok(()) => {
                    tracing::info!(sender = "httpd", mapped_path = %path, size, files, "folder quota scan done")
                }
                Err(e) => {
                    tracing::warn!(sender = "httpd", mapped_path = %path, error = %e, "cannot store folder quota scan")
                }
            }
        }
        Err(e) => {
            tracing::warn!(sender = "httpd", mapped_path = %path, error = %e, "folder quota scan failed")
        }
    }
}
