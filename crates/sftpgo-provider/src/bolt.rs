//! The `bolt` driver: an embedded key/value store ([redb]) in one file, created automatically.
//!
//! Same semantics as the SQL backends: unique case-sensitive usernames, ids increasing from 1
//! and never reused, listing in username byte order, quota updates applied inside one write
//! transaction (redb serializes writers, so concurrent deltas add up exactly).
//!
//! Layout, after SFTPGo 0.9's bbolt buckets: table `users` (username → JSON of the full
//! [`User`]), table `users_id_idx` (id → username), table `folders` (mapped path → JSON of
//! the [`Folder`]) and table `sequences` (`users`, `folders` → last id).
//!
//! **This is not bbolt's file format**: the driver cannot open a database file written by Go's
//! bbolt (SFTPGo 0.9's `bolt` driver); export such users through 0.9's REST API and add them
//! again instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableTable, TableDefinition};

use crate::{
    Backend, Folder, FolderQuery, ProviderError, QuotaUpdate, Result, SortOrder, User, UserQuery,
};

const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const USERS_ID_IDX: TableDefinition<i64, &str> = TableDefinition::new("users_id_idx");
const SEQUENCES: TableDefinition<&str, i64> = TableDefinition::new("sequences");
const USERS_SEQUENCE: &str = "users";
const FOLDERS: TableDefinition<&str, &[u8]> = TableDefinition::new("folders");
const FOLDERS_SEQUENCE: &str = "folders";

/// Users in a redb file.
#[derive(Clone)]
pub struct BoltBackend {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for BoltBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoltBackend")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn err(&self, what: &str, e: impl std::fmt::Display) -> ProviderError {
        ProviderError::Backend(format!(
            "bolt database {}: {what}: {e}",
            self.path.display()
        ))
    }

    fn decode(&self, bytes: &[u8]) -> Result<User> {
        serde_json::from_slice(bytes).map_err(|e| self.err("bad user record", e))
    }

    fn encode(&self, user: &User) -> Result<Vec<u8>> {
        serde_json::to_vec(user).map_err(|e| self.err("cannot encode user", e))
    }

    fn user_by_username(&self, username: &str) -> Result<User> {
        let tx = self.db.begin_read().map_err(|e| self.err("read", e))?;
        let users = tx.open_table(USERS).map_err(|e| self.err("read", e))?;
        let value = users.get(username).map_err(|e| self.err("read", e))?;
        match value {
            Some(v) => self.decode(v.value()),
            None => Err(ProviderError::NotFound(format!("user {username:?}"))),
        }
    }

    fn user_by_id(&self, id: i64) -> Result<User> {
        let tx = self.db.begin_read().map_err(|e| self.err("read", e))?;
        let idx = tx
            .open_table(USERS_ID_IDX)
            .map_err(|e| self.err("read", e))?;
        let users = tx.open_table(USERS).map_err(|e| self.err("read", e))?;
        let name = idx.get(id).map_err(|e| self.err("read", e))?;
        let Some(name) = name else {
            return Err(ProviderError::NotFound(format!("user with id {id}")));
        };
        let value = users.get(name.value()).map_err(|e| self.err("read", e))?;
        match value {
            Some(v) => self.decode(v.value()),
            None => Err(ProviderError::NotFound(format!("user with id {id}"))),
        }
    }

    fn insert_user(&self, user: &User) -> Result<User> {
        let w = |e: redb::Error| self.err("write", e);
        let tx = self.db.begin_write().map_err(|e| w(e.into()))?;
        let stored = {
            let mut users = tx.open_table(USERS).map_err(|e| w(e.into()))?;
            let mut idx = tx.open_table(USERS_ID_IDX).map_err(|e| w(e.into()))?;
            let mut seq = tx.open_table(SEQUENCES).map_err(|e| w(e.into()))?;
            if users
                .get(user.username.as_str())
                .map_err(|e| w(e.into()))?
                .is_some()
            {
                return Err(ProviderError::AlreadyExists(user.username.clone()));
            }
            let last = seq
                .get(USERS_SEQUENCE)
                .map_err(|e| w(e.into()))?
                .map_or(0, |v| v.value());
            let stored = User {
                id: last + 1,
                used_quota_size: 0,
                used_quota_files: 0,
                last_quota_update: 0,
                ..user.clone()
            };
            let bytes = self.encode(&stored)?;
            seq.insert(USERS_SEQUENCE, stored.id)
                .map_err(|e| w(e.into()))?;
            users
                .insert(stored.username.as_str(), bytes.as_slice())
                .map_err(|e| w(e.into()))?;
            idx.insert(stored.id, stored.username.as_str())
                .map_err(|e| w(e.into()))?;
            stored
        };
        tx.commit().map_err(|e| w(e.into()))?;
        Ok(stored)
    }

    /// Replaces the record of user `id` with `change(old)`; the username is kept.
    fn modify_by_id(&self, id: i64, change: impl FnOnce(User) -> User) -> Result<()> {
        let w = |e: redb::Error| self.err("write", e);
        let tx = self.db.begin_write().map_err(|e| w(e.into()))?;
        {
            let idx = tx.open_table(USERS_ID_IDX).map_err(|e| w(e.into()))?;
            let mut users = tx.open_table(USERS).map_err(|e| w(e.into()))?;
            let name = idx
                .get(id)
                .map_err(|e| w(e.into()))?
                .map(|v| v.value().to_owned())
                .ok_or_else(|| ProviderError::NotFound(format!("user with id {id}")))?;
            let old = users
                .get(name.as_str())
                .map_err(|e| w(e.into()))?
                .map(|v| self.decode(v.value()))
                .transpose()?
                .ok_or_else(|| ProviderError::NotFound(format!("user with id {id}")))?;
            let new = change(old);
            let bytes = self.encode(&new)?;
            users
                .insert(name.as_str(), bytes.as_slice())
                .map_err(|e| w(e.into()))?;
        }
        tx.commit().map_err(|e| w(e.into()))?;
        Ok(())
    }

    fn update_user(&self, user: &User) -> Result<()> {
        self.modify_by_id(user.id, |old| User {
            id: old.id,
            username: old.username.clone(),
            used_quota_size: old.used_quota_size,
            used_quota_files: old.used_quota_files,
            last_quota_update: old.last_quota_update,
            ..user.clone()
        })
    }

    fn delete_user(&self, id: i64) -> Result<()> {
        let w = |e: redb::Error| self.err("write", e);
        let tx = self.db.begin_write().map_err(|e| w(e.into()))?;
        {
            let mut idx = tx.open_table(USERS_ID_IDX).map_err(|e| w(e.into()))?;
            let mut users = tx.open_table(USERS).map_err(|e| w(e.into()))?;
            let name = idx
                .remove(id)
                .map_err(|e| w(e.into()))?
                .map(|v| v.value().to_owned())
                .ok_or_else(|| ProviderError::NotFound(format!("user with id {id}")))?;
            users.remove(name.as_str()).map_err(|e| w(e.into()))?;
        }
        tx.commit().map_err(|e| w(e.into()))?;
        Ok(())
    }

    fn list_users(&self, query: &UserQuery) -> Result<Vec<User>> {
        let (offset, limit) = (query.offset, query.limit);
        let only = query.username.as_deref();
        self.page(USERS, only, offset, limit, query.order, "bad user record")
    }

    /// A page of the JSON records of `table` in key order (or only the one keyed `only`).
    fn page<T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        only: Option<&str>,
        offset: u32,
        limit: u32,
        order: SortOrder,
        what: &str,
    ) -> Result<Vec<T>> {
        let r = |e: redb::Error| self.err("read", e);
        let decode = |bytes: &[u8]| serde_json::from_slice(bytes).map_err(|e| self.err(what, e));
        let tx = self.db.begin_read().map_err(|e| r(e.into()))?;
        let records = tx.open_table(table).map_err(|e| r(e.into()))?;
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        if let Some(key) = only {
            let found = records.get(key).map_err(|e| r(e.into()))?;
            return match found {
                Some(v) if offset == 0 && limit > 0 => Ok(vec![decode(v.value())?]),
                _ => Ok(Vec::new()),
            };
        }
        let iter = records.iter().map_err(|e| r(e.into()))?;
        let page: Vec<_> = match order {
            SortOrder::Asc => iter.skip(offset).take(limit).collect(),
            SortOrder::Desc => iter.rev().skip(offset).take(limit).collect(),
        };
        page.into_iter()
            .map(|entry| {
                let (_, v) = entry.map_err(|e| r(e.into()))?;
                decode(v.value())
            })
            .collect()
    }

    fn update_quota(&self, username: &str, update: QuotaUpdate) -> Result<()> {
        let w = |e: redb::Error| self.err("write", e);
        let tx = self.db.begin_write().map_err(|e| w(e.into()))?;
        {
            let mut users = tx.open_table(USERS).map_err(|e| w(e.into()))?;
            let mut user = users
                .get(username)
                .map_err(|e| w(e.into()))?
                .map(|v| self.decode(v.value()))
                .transpose()?
                .ok_or_else(|| ProviderError::NotFound(format!("user {username:?}")))?;
            crate::memory::apply_quota(
                &mut user.used_quota_size,
                &mut user.used_quota_files,
                &mut user.last_quota_update,
                update,
            );
            let bytes = self.encode(&user)?;
            users
                .insert(username, bytes.as_slice())
                .map_err(|e| w(e.into()))?;
        }
        tx.commit().map_err(|e| w(e.into()))?;
        Ok(())
    }

    fn decode_folder(&self, bytes: &[u8]) -> Result<Folder> {
        serde_json::from_slice(bytes).map_err(|e| self.err("bad folder record", e))
    }

    fn encode_folder(&self, folder: &Folder) -> Result<Vec<u8>> {
        serde_json::to_vec(folder).map_err(|e| self.err("cannot encode folder", e))
    }

    fn folder_by_path(&self, mapped_path: &str) -> Result<Folder> {
        let r = |e: redb::Error| self.err("read", e);
        let tx = self.db.begin_read().map_err(|e| r(e.into()))?;
        let folders = tx.open_table(FOLDERS).map_err(|e| r(e.into()))?;
        let value = folders.get(mapped_path).map_err(|e| r(e.into()))?;
        match value {
            Some(v) => self.decode_folder(v.value()),
            None => Err(ProviderError::NotFound(format!("folder {mapped_path:?}"))),
        }
    }

    fn insert_folder(&self, folder: &Folder) -> Result<Folder> {
        let w = |e: redb::Error| self.err("write", e);
        let tx = self.db.begin_write().map_err(|e| w(e.into()))?;
        let stored = {
            let mut folders = tx.open_table(FOLDERS).map_err(|e| w(e.into()))?;
            let mut seq = tx.open_table(SEQUENCES).map_err(|e| w(e.into()))?;
            let key = folder.mapped_path.as_str();
            if folders.get(key).map_err(|e| w(e.into()))?.is_some() {
                return Err(ProviderError::FolderExists(folder.mapped_path.clone()));
            }
            let last = seq
                .get(FOLDERS_SEQUENCE)
                .map_err(|e| w(e.into()))?
                .map_or(0, |v| v.value());
            let stored = Folder {
                id: last + 1,
                used_quota_size: 0,
                used_quota_files: 0,
                last_quota_update: 0,
                users: Vec::new(),
                ..folder.clone()
            };
            let bytes = self.encode_folder(&stored)?;
            seq.insert(FOLDERS_SEQUENCE, stored.id)
                .map_err(|e| w(e.into()))?;
            folders
                .insert(key, bytes.as_slice())
                .map_err(|e| w(e.into()))?;
            stored
        };
        tx.commit().map_err(|e| w(e.into()))?;
        Ok(stored)
    }

    /// Rewrites the folder `which` selects (by id or by path) as `change(old)` (its
    /// mapped path kept), or removes it when `change` is `None`.
    fn modify_folder(
        &self,
        which: FolderKey<'_>,
        change: Option<&dyn Fn(Folder) -> Folder>,
    ) -> Result<()> {
        let w = |e: redb::Error| self.err("write", e);
        let tx = self.db.begin_write().map_err(|e| w(e.into()))?;
        {
            let mut folders = tx.open_table(FOLDERS).map_err(|e| w(e.into()))?;
            let found = match which {
                FolderKey::Path(path) => folders
                    .get(path)
                    .map_err(|e| w(e.into()))?
                    .map(|v| self.decode_folder(v.value()))
                    .transpose()?,
                FolderKey::Id(id) => {
                    let mut found = None;
                    for entry in folders.iter().map_err(|e| w(e.into()))? {
                        let (_, v) = entry.map_err(|e| w(e.into()))?;
                        let f = self.decode_folder(v.value())?;
                        if f.id == id {
                            found = Some(f);
                            break;
                        }
                    }
                    found
                }
            };
            let old = found.ok_or_else(|| ProviderError::NotFound(format!("folder {which}")))?;
            let key = old.mapped_path.clone();
            match change {
                Some(change) => {
                    let new = Folder {
                        mapped_path: key.clone(),
                        ..change(old)
                    };
                    let bytes = self.encode_folder(&new)?;
                    folders
                        .insert(key.as_str(), bytes.as_slice())
                        .map_err(|e| w(e.into()))?;
                }
                None => {
                    folders.remove(key.as_str()).map_err(|e| w(e.into()))?;
                }
            }
        }
        tx.commit().map_err(|e| w(e.into()))?;
        Ok(())
    }

    fn list_folders(&self, query: &FolderQuery) -> Result<Vec<Folder>> {
        let (offset, limit) = (query.offset, query.limit);
        let only = query.mapped_path.as_deref();
        self.page(
            FOLDERS,
            only,
            offset,
            limit,
            query.order,
            "bad folder record",
        )
    }

    fn ping(&self) -> Result<()> {
        let tx = self.db.begin_read().map_err(|e| self.err("read", e))?;
        tx.open_table(USERS).map_err(|e| self.err("read", e))?;
        Ok(())
    }
}

impl BoltBackend {
    /// Opens the database file at `path`, creating it (mode 0600) and its tables when missing.
    /// The directory must exist. The file is locked: one process at a time.
    pub async fn open(path: &Path) -> Result<Self> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(path))
            .await
            .map_err(|e| ProviderError::Backend(format!("bolt open task failed: {e}")))?
    }

    fn open_blocking(path: PathBuf) -> Result<Self> {
        let existed = path.exists();
        let db = Database::create(&path).map_err(|e| {
            ProviderError::Backend(format!(
                "bolt database {}: cannot open: {e}",
                path.display()
            ))
        })?;
        if !existed {
            use std::os::unix::fs::PermissionsExt;
            // Best effort, like bbolt's 0600: the file holds password hashes.
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
        let inner = Inner { db, path };
        let w = |e: redb::Error| inner.err("cannot create the tables", e);
        let tx = inner.db.begin_write().map_err(|e| w(e.into()))?;
        tx.open_table(USERS).map_err(|e| w(e.into()))?;
        tx.open_table(USERS_ID_IDX).map_err(|e| w(e.into()))?;
        tx.open_table(SEQUENCES).map_err(|e| w(e.into()))?;
        tx.open_table(FOLDERS).map_err(|e| w(e.into()))?;
        tx.commit().map_err(|e| w(e.into()))?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on the blocking pool (redb does synchronous disk I/O).
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| ProviderError::Backend(format!("bolt task failed: {e}")))?
    }
}

#[async_trait]
impl Backend for BoltBackend {
    fn driver(&self) -> &'static str {
        "bolt"
    }

    async fn user_by_username(&self, username: &str) -> Result<User> {
        let username = username.to_owned();
        self.run(move |i| i.user_by_username(&username)).await
    }

    async fn user_by_id(&self, id: i64) -> Result<User> {
        self.run(move |i| i.user_by_id(id)).await
    }

    async fn insert_user(&self, user: &User) -> Result<User> {
        let user = user.clone();
        self.run(move |i| i.insert_user(&user)).await
    }

    async fn update_user(&self, user: &User) -> Result<()> {
        let user = user.clone();
        self.run(move |i| i.update_user(&user)).await
    }

    async fn delete_user(&self, id: i64) -> Result<()> {
        self.run(move |i| i.delete_user(id)).await
    }

    async fn list_users(&self, query: &UserQuery) -> Result<Vec<User>> {
        let query = query.clone();
        self.run(move |i| i.list_users(&query)).await
    }

    async fn update_quota(&self, username: &str, update: QuotaUpdate) -> Result<()> {
        let username = username.to_owned();
        self.run(move |i| i.update_quota(&username, update)).await
    }

    async fn ping(&self) -> Result<()> {
        self.run(|i| i.ping()).await
    }

    async fn folder_by_path(&self, mapped_path: &str) -> Result<Folder> {
        let path = mapped_path.to_owned();
        self.run(move |i| i.folder_by_path(&path)).await
    }

    async fn insert_folder(&self, folder: &Folder) -> Result<Folder> {
        let folder = folder.clone();
        self.run(move |i| i.insert_folder(&folder)).await
    }

    async fn update_folder(&self, folder: &Folder) -> Result<()> {
        let folder = folder.clone();
        self.run(move |i| {
            let change = |old: Folder| Folder {
                filesystem: folder.filesystem.clone(),
                ..old
            };
            i.modify_folder(FolderKey::Id(folder.id), Some(&change))
        })
        .await
    }

    async fn delete_folder(&self, id: i64) -> Result<()> {
        self.run(move |i| i.modify_folder(FolderKey::Id(id), None))
            .await
    }

    async fn list_folders(&self, query: &FolderQuery) -> Result<Vec<Folder>> {
        let query = query.clone();
        self.run(move |i| i.list_folders(&query)).await
    }

    async fn update_folder_quota(&self, mapped_path: &str, update: QuotaUpdate) -> Result<()> {
        let path = mapped_path.to_owned();
        self.run(move |i| {
            let change = |mut f: Folder| {
                crate::memory::apply_quota(
                    &mut f.used_quota_size,
                    &mut f.used_quota_files,
                    &mut f.last_quota_update,
                    update,
                );
                f
            };
            i.modify_folder(FolderKey::Path(&path), Some(&change))
        })
        .await
    }
}

/// How [`Inner::modify_folder`] finds its folder.
#[derive(Clone, Copy)]
enum FolderKey<'a> {
    Id(i64),
    Path(&'a str),
}

impl std::fmt::Display for FolderKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(id) => write!(f, "with id {id}"),
            Self::Path(p) => write!(f, "{p:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataProvider;
    use crate::TrackQuota;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        let n = AtomicUsize::new(0);
        let root = dir.path().to_path_buf();
        crate::conformance::run_all(|| {
            let path = root.join(format!("db{}.redb", n.fetch_add(1, Ordering::SeqCst)));
            async move { Arc::new(BoltBackend::open(&path).await.expect("open")) as Arc<dyn Backend> }
        })
        .await;
    }

    #[tokio::test]
    async fn reopen_keeps_users_and_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sftpgo.redb");
        let b = BoltBackend::open(&path).await.unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let p = DataProvider::new(Arc::new(b.clone()), true, TrackQuota::Always);
        let a = p
            .add_user(crate::conformance::sample_user("keep"))
            .await
            .unwrap();
        let gone = p
            .add_user(crate::conformance::sample_user("gone"))
            .await
            .unwrap();
        p.delete_user(gone.id).await.unwrap();
        drop(p);
        drop(b);
        let again = BoltBackend::open(&path).await.unwrap();
        assert_eq!(again.user_by_id(a.id).await.unwrap(), a);
        let p = DataProvider::new(Arc::new(again), true, TrackQuota::Always);
        let c = p
            .add_user(crate::conformance::sample_user("next"))
            .await
            .unwrap();
        assert!(c.id > gone.id, "ids are not reused across reopen");
    }

    #[tokio::test]
    async fn open_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing-dir").join("x.redb");
        match BoltBackend::open(&missing).await {
            Err(ProviderError::Backend(msg)) => {
                assert!(msg.contains(&missing.display().to_string()), "{msg}")
            }
            other => panic!("expected Backend error, got {other:?}"),
        }
        // A file that is not a redb database (e.g. a Go bbolt file) is refused.
        let foreign = dir.path().join("bbolt.db");
        std::fs::write(&foreign, vec![0x42u8; 8192]).unwrap();
        assert!(matches!(
            BoltBackend::open(&foreign).await,
            Err(ProviderError::Backend(_))
        ));
    }
}
