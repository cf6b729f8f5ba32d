//! Quota scans running now, users' and folders' alike: at most one per user or folder,
//! started by the API and the web admin through the same calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::error::ApiResponse;

/// What is being scanned (a username or a mapped path) → start time (ms).
#[derive(Default)]
pub(crate) struct Scans(Mutex<HashMap<String, i64>>);

impl Scans {
    /// Marks `key` as being scanned; `None` when a scan of it is running. The scan ends
    /// when the guard drops (also when its task panics).
    pub(crate) fn begin(self: &Arc<Self>, key: &str) -> Option<ScanGuard> {
        let mut running = self.lock();
        if running.contains_key(key) {
            return None;
        }
        running.insert(key.to_owned(), sftpgo_core::now_ms());
        Some(ScanGuard {
            scans: self.clone(),
            key: key.to_owned(),
        })
    }

    /// The running scans (key, start time), ordered by key.
    pub(crate) fn running(&self) -> Vec<(String, i64)> {
        let mut list: Vec<_> = self.lock().iter().map(|(k, t)| (k.clone(), *t)).collect();
        list.sort();
        list
    }

    /// The running scans as the API lists them: `[{<key_name>: ..., "start_time": ...}]`.
    pub(crate) fn json(&self, key_name: &str) -> Value {
        Value::Array(
            self.running()
                .into_iter()
                .map(|(k, t)| json!({key_name: k, "start_time": t}))
                .collect(),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One running scan; dropping it ends it.
pub(crate) struct ScanGuard {
    scans: Arc<Scans>,
    key: String,
}

impl Drop for ScanGuard {
    fn drop(&mut self) {
        self.scans.lock().remove(&self.key);
    }
}

/// The API's answer to a scan start: 201, or 409 when one was already running.
pub(crate) fn started(started: bool) -> Result<(StatusCode, ApiResponse), ApiResponse> {
    if !started {
        return Err(ApiResponse::new(
            StatusCode::CONFLICT,
            "",
            "Another scan is already in progress",
        ));
    }
    Ok((
        StatusCode::CREATED,
        ApiResponse::new(StatusCode::CREATED, "", "Scan started"),
    ))
}
