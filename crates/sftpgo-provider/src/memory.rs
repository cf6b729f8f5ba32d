//! In-process backend for tests and `driver = "memory"`: same semantics as the SQL backends
//! (unique usernames, ids increasing from 1 and never reused, ordered listing, atomic quota).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::{
    Backend, Folder, FolderQuery, ProviderError, QuotaUpdate, Result, SortOrder, User, UserQuery,
    now_ms,
};

/// Users kept in memory; lost when dropped.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    state: Mutex<State>,
    defender: crate::MemoryDefenderStore,
}

#[derive(Debug, Default)]
struct State {
    last_id: i64,
    /// Keyed by username: iteration is username byte order, like `ORDER BY username`.
    users: BTreeMap<String, User>,
    by_id: HashMap<i64, String>,
    last_folder_id: i64,
    /// Keyed by mapped path, listed in its byte order.
    folders: BTreeMap<String, Folder>,
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` half-updated (every mutation
        // is a single insert/remove pair done after all checks), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn not_found_id(id: i64) -> ProviderError {
    ProviderError::NotFound(format!("user with id {id}"))
}

fn not_found_name(username: &str) -> ProviderError {
    ProviderError::NotFound(format!("user {username:?}"))
}

fn folder_not_found(what: impl std::fmt::Display) -> ProviderError {
    ProviderError::NotFound(format!("folder {what}"))
}

/// Applies a quota change to a stored used quota (saturating, like the SQL backends'
/// 64-bit columns would refuse to wrap).
pub(crate) fn apply_quota(size: &mut i64, files: &mut i64, last: &mut i64, update: QuotaUpdate) {
    match update {
        QuotaUpdate::Delta {
            size: ds,
            files: df,
        } => {
            *size = size.saturating_add(ds);
            *files = files.saturating_add(df);
        }
        QuotaUpdate::Reset { size: s, files: f } => {
            *size = s;
            *files = f;
        }
    }
    *last = now_ms();
}

#[async_trait]
impl Backend for MemoryBackend {
    fn driver(&self) -> &'static str {
        "memory"
    }

    async fn user_by_username(&self, username: &str) -> Result<User> {
        self.lock()
            .users
            .get(username)
            .cloned()
            .ok_or_else(|| not_found_name(username))
    }

    async fn user_by_id(&self, id: i64) -> Result<User> {
        let state = self.lock();
        state
            .by_id
            .get(&id)
            .and_then(|name| state.users.get(name))
            .cloned()
            .ok_or_else(|| not_found_id(id))
    }

    async fn insert_user(&self, user: &User) -> Result<User> {
        let mut state = self.lock();
        if state.users.contains_key(&user.username) {
            return Err(ProviderError::AlreadyExists(user.username.clone()));
        }
        state.last_id += 1;
        let stored = User {
            id: state.last_id,
            used_quota_size: 0,
            used_quota_files: 0,
            last_quota_update: 0,
            ..user.clone()
        };
        state.by_id.insert(stored.id, stored.username.clone());
        state.users.insert(stored.username.clone(), stored.clone());
        Ok(stored)
    }

    async fn update_user(&self, user: &User) -> Result<()> {
        let mut state = self.lock();
        let name = state
            .by_id
            .get(&user.id)
            .cloned()
            .ok_or_else(|| not_found_id(user.id))?;
        let stored = state
            .users
            .get_mut(&name)
            .ok_or_else(|| not_found_id(user.id))?;
        *stored = User {
            id: stored.id,
            username: std::mem::take(&mut stored.username),
            used_quota_size: stored.used_quota_size,
            used_quota_files: stored.used_quota_files,
            last_quota_update: stored.last_quota_update,
            ..user.clone()
        };
        Ok(())
    }

    async fn delete_user(&self, id: i64) -> Result<()> {
        let mut state = self.lock();
        let name = state.by_id.remove(&id).ok_or_else(|| not_found_id(id))?;
        state.users.remove(&name);
        Ok(())
    }

    async fn list_users(&self, query: &UserQuery) -> Result<Vec<User>> {
        let state = self.lock();
        let matching: Box<dyn Iterator<Item = &User>> = match &query.username {
            Some(name) => Box::new(state.users.get(name).into_iter()),
            None => match query.order {
                SortOrder::Asc => Box::new(state.users.values()),
                SortOrder::Desc => Box::new(state.users.values().rev()),
            },
        };
        Ok(matching
            .skip(query.offset as usize)
            .take(query.limit as usize)
            .cloned()
            .collect())
    }

    async fn update_quota(&self, username: &str, update: QuotaUpdate) -> Result<()> {
        let mut state = self.lock();
        let user = state
            .users
            .get_mut(username)
            .ok_or_else(|| not_found_name(username))?;
        apply_quota(
            &mut user.used_quota_size,
            &mut user.used_quota_files,
            &mut user.last_quota_update,
            update,
        );
        Ok(())
    }

    async fn folder_by_path(&self, mapped_path: &str) -> Result<Folder> {
        self.lock()
            .folders
            .get(mapped_path)
            .cloned()
            .ok_or_else(|| folder_not_found(format_args!("{mapped_path:?}")))
    }

    async fn insert_folder(&self, folder: &Folder) -> Result<Folder> {
        let mut state = self.lock();
        if state.folders.contains_key(&folder.mapped_path) {
            return Err(ProviderError::FolderExists(folder.mapped_path.clone()));
        }
        state.last_folder_id += 1;
        let stored = Folder {
            id: state.last_folder_id,
            used_quota_size: 0,
            used_quota_files: 0,
            last_quota_update: 0,
            users: Vec::new(),
            ..folder.clone()
        };
        state
            .folders
            .insert(stored.mapped_path.clone(), stored.clone());
        Ok(stored)
    }

    async fn update_folder(&self, folder: &Folder) -> Result<()> {
        let mut state = self.lock();
        let stored = state
            .folders
            .values_mut()
            .find(|f| f.id == folder.id)
            .ok_or_else(|| folder_not_found(format_args!("with id {}", folder.id)))?;
        stored.filesystem = folder.filesystem.clone();
        Ok(())
    }

    async fn delete_folder(&self, id: i64) -> Result<()> {
        let mut state = self.lock();
        let before = state.folders.len();
        state.folders.retain(|_, f| f.id != id);
        if state.folders.len() == before {
            return Err(folder_not_found(format_args!("with id {id}")));
        }
        Ok(())
    }

    async fn list_folders(&self, query: &FolderQuery) -> Result<Vec<Folder>> {
        let state = self.lock();
        let matching: Box<dyn Iterator<Item = &Folder>> = match &query.mapped_path {
            Some(path) => Box::new(state.folders.get(path).into_iter()),
            None => match query.order {
                SortOrder::Asc => Box::new(state.folders.values()),
                SortOrder::Desc => Box::new(state.folders.values().rev()),
            },
        };
        Ok(matching
            .skip(query.offset as usize)
            .take(query.limit as usize)
            .cloned()
            .collect())
    }

    async fn update_folder_quota(&self, mapped_path: &str, update: QuotaUpdate) -> Result<()> {
        let mut state = self.lock();
        let f = state
            .folders
            .get_mut(mapped_path)
            .ok_or_else(|| folder_not_found(format_args!("{mapped_path:?}")))?;
        apply_quota(
            &mut f.used_quota_size,
            &mut f.used_quota_files,
            &mut f.last_quota_update,
            update,
        );
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    fn defender_store(&self) -> Option<&dyn crate::DefenderStore> {
        Some(&self.defender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance() {
        crate::conformance::run_all(|| async {
            Arc::new(MemoryBackend::new()) as Arc<dyn Backend>
        })
        .await;
    }
}
