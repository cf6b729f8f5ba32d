//! User accounts: the [`User`] record (SFTPGo 0.9's wire and table layout),
//! password hashing, and the data-provider trait that every backend implements.
//!
//! Rules about users (validation, hashing on store, `manage_users`) live in
//! [`DataProvider`]; backends ([`Backend`]) only store and fetch.

pub mod bolt;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod defender;
pub mod filesystem;
mod folder;
pub mod memory;
pub mod mysql;
pub mod password;
pub mod postgres;
pub mod sql;
pub mod sqlite;
mod user;
mod validate;

pub use defender::{DefenderStore, HostRecord, MemoryDefenderStore};
pub use filesystem::{Filesystem, FsProvider, S3FsConfig, Secret, SecretError, SecretKey};
pub use folder::{Folder, FolderQuery, VirtualFolder};
pub use user::{Permission, User};
pub use validate::{
    MAX_USERNAME_LEN, MAX_VIRTUAL_FOLDERS, homes_overlap, validate_filesystem, validate_folder,
    validate_home_dir, validate_stored, validate_user, validate_virtual_folders,
};

use async_trait::async_trait;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Errors from the data provider; the REST API maps each variant to a status code.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("username {0:?} already exists")]
    AlreadyExists(String),
    #[error("folder {0:?} already exists")]
    FolderExists(String),
    #[error("validation error: {0}")]
    Validation(String),
    /// One field of a user record breaks a rule; `reason` says which.
    #[error("validation error: {field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
    /// `manage_users: 0`: user records are read-only.
    #[error("user management is disabled by the data provider configuration (manage_users = 0)")]
    ReadOnly,
    /// The backend could not be reached or failed; the text names the cause.
    #[error("data provider error: {0}")]
    Backend(String),
}

pub type Result<T, E = ProviderError> = std::result::Result<T, E>;

/// Sort order for [`UserQuery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    #[default]
    Asc,
    Desc,
}

/// A page of users ordered by username, optionally filtered by exact username.
#[derive(Debug, Clone)]
pub struct UserQuery {
    pub limit: u32,
    pub offset: u32,
    pub order: SortOrder,
    pub username: Option<String>,
}

impl Default for UserQuery {
    fn default() -> Self {
        Self {
            limit: 100,
            offset: 0,
            order: SortOrder::Asc,
            username: None,
        }
    }
}

/// A change to a user's used quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaUpdate {
    /// Add (or, when negative, subtract) to the stored values atomically in the backend.
    Delta { size: i64, files: i64 },
    /// Replace the stored values (after a quota scan).
    Reset { size: i64, files: i64 },
}

/// Storage of user records. Implementations do no validation: [`DataProvider`] does.
///
/// Every backend must pass `conformance::run_all` (see the `conformance` module).
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Name of the driver, for logs ("sqlite", "memory", ...).
    fn driver(&self) -> &'static str;
    async fn user_by_username(&self, username: &str) -> Result<User>;
    async fn user_by_id(&self, id: i64) -> Result<User>;
    /// Inserts `user` (its `id` and used quota are ignored: the backend assigns the id and
    /// zeroes the used quota) and returns the stored record.
    async fn insert_user(&self, user: &User) -> Result<User>;
    /// Updates every field but `id`, `username` and the used quota, keyed by `id`.
    async fn update_user(&self, user: &User) -> Result<()>;
    async fn delete_user(&self, id: i64) -> Result<()>;
    async fn list_users(&self, query: &UserQuery) -> Result<Vec<User>>;
    /// Applies `update` atomically inside the backend (never read-modify-write in the process)
    /// and sets `last_quota_update` to now.
    async fn update_quota(&self, username: &str, update: QuotaUpdate) -> Result<()>;
    /// Cheap round trip used by health checks.
    async fn ping(&self) -> Result<()>;
    async fn folder_by_path(&self, mapped_path: &str) -> Result<Folder>;
    /// Inserts `folder` (id and used quota assigned by the backend, as for users);
    /// `FolderExists` when its `mapped_path` is taken.
    async fn insert_folder(&self, folder: &Folder) -> Result<Folder>;
    /// Replaces the `filesystem` of the folder with `folder.id` (nothing else changes).
    async fn update_folder(&self, folder: &Folder) -> Result<()>;
    async fn delete_folder(&self, id: i64) -> Result<()>;
    async fn list_folders(&self, query: &FolderQuery) -> Result<Vec<Folder>>;
    /// As [`Backend::update_quota`], for a folder.
    async fn update_folder_quota(&self, mapped_path: &str, update: QuotaUpdate) -> Result<()>;
    /// Where the defender's `provider` driver keeps scores and bans in this backend;
    /// `None` when it cannot (bolt).
    fn defender_store(&self) -> Option<&dyn DefenderStore> {
        None
    }
}

/// Front door to user storage: applies the rules (validation, password hashing,
/// `manage_users`, `track_quota`) over any [`Backend`].
#[derive(Clone)]
pub struct DataProvider {
    backend: Arc<dyn Backend>,
    manage_users: bool,
    track_quota: TrackQuota,
    observer: Option<QueryObserver>,
    /// Bounds the password verifications running at once (see [`password::CheckLimit`]).
    checks: Arc<password::CheckLimit>,
    /// `data_provider.users_base_dir`: homes must lie beneath it; a user added without a
    /// home gets `<base>/<username>`.
    users_base_dir: Option<String>,
    /// Encrypts the storage credentials of user records (`kms.secrets`).
    secrets: SecretKey,
}

/// `sftpd.password_check_memory_mib`'s default: with 64 MiB per argon2id check, at most 8
/// checks at once (fewer on machines with fewer cores).
pub const DEFAULT_PASSWORD_CHECK_MEMORY_MIB: u64 = 512;

/// Told of every backend call: operation name, duration, and whether the backend answered
/// (a missing user is an answer; a broken connection is not). Feeds the metrics.
pub type QueryObserver = Arc<dyn Fn(&'static str, std::time::Duration, bool) + Send + Sync>;

/// `data_provider.track_quota`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackQuota {
    /// 0: no bookkeeping.
    Off,
    /// 1: every upload/delete.
    Always,
    /// 2: only for users that have quota limits.
    LimitedUsersOnly,
}

/// Largest page [`DataProvider::list_users`] returns.
pub const MAX_LIST_LIMIT: u32 = 500;

impl DataProvider {
    pub fn new(backend: Arc<dyn Backend>, manage_users: bool, track_quota: TrackQuota) -> Self {
        Self {
            backend,
            manage_users,
            track_quota,
            observer: None,
            checks: Arc::new(password::CheckLimit::sized(
                DEFAULT_PASSWORD_CHECK_MEMORY_MIB,
                password::CHECK_WAIT,
            )),
            users_base_dir: None,
            secrets: SecretKey::ephemeral(),
        }
    }

    /// The same provider, encrypting stored credentials with `key` (without it, a key of
    /// this process only: credentials stored would not be readable after a restart).
    pub fn with_secret_key(mut self, key: SecretKey) -> Self {
        self.secrets = key;
        self
    }

    /// The plain text of a stored credential (for the storage backend at login).
    pub fn open_secret(&self, secret: &Secret) -> std::result::Result<String, SecretError> {
        self.secrets.open(secret)
    }

    /// The same provider, keeping homes beneath `base` (an absolute path; `None` or an
    /// empty string: anywhere).
    pub fn with_users_base_dir(mut self, base: Option<String>) -> Self {
        self.users_base_dir =
            base.filter(|b| !b.is_empty())
                .map(|b| match b.trim_end_matches('/') {
                    "" => "/".to_owned(),
                    trimmed => trimmed.to_owned(),
                });
        self
    }

    /// The same provider, verifying passwords under `limit`.
    pub fn with_check_limit(mut self, limit: password::CheckLimit) -> Self {
        self.checks = Arc::new(limit);
        self
    }

    /// The same provider, reporting each backend call to `observer`.
    pub fn with_observer(mut self, observer: QueryObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Runs one backend call, timing it for the observer.
    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let Some(observer) = &self.observer else {
            return call.await;
        };
        let started = std::time::Instant::now();
        let result = call.await;
        let answered = !matches!(result, Err(ProviderError::Backend(_)));
        observer(operation, started.elapsed(), answered);
        result
    }

    /// The backend's driver name.
    pub fn driver(&self) -> &'static str {
        self.backend.driver()
    }

    /// Whether users may be added, updated and deleted (`manage_users`).
    pub fn manage_users(&self) -> bool {
        self.manage_users
    }

    pub fn track_quota(&self) -> TrackQuota {
        self.track_quota
    }

    /// The underlying backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub async fn user_by_username(&self, username: &str) -> Result<User> {
        self.timed("user_by_username", self.backend.user_by_username(username))
            .await
    }

    pub async fn user_by_id(&self, id: i64) -> Result<User> {
        self.timed("user_by_id", self.backend.user_by_id(id)).await
    }

    /// A page of users; `limit` is clamped to `1..=500`.
    pub async fn list_users(&self, query: &UserQuery) -> Result<Vec<User>> {
        let mut q = query.clone();
        q.limit = q.limit.clamp(1, MAX_LIST_LIMIT);
        self.timed("list_users", self.backend.list_users(&q)).await
    }

    /// Validates `user`, hashes a plain-text password and stores it; returns the stored
    /// record (with its new id and the password hash).
    pub async fn add_user(&self, user: User) -> Result<User> {
        self.ensure_manageable()?;
        let user = self.prepare_user(user).await?;
        self.timed("insert_user", self.backend.insert_user(&user))
            .await
    }

    /// A folder record (without its `users`).
    pub async fn folder_by_path(&self, mapped_path: &str) -> Result<Folder> {
        self.timed("folder_by_path", self.backend.folder_by_path(mapped_path))
            .await
    }

    /// A page of folders, each with the users that map it; `limit` is clamped to
    /// `1..=500`. Pages through every user (an administrative read, not a login).
    pub async fn list_folders(&self, query: &FolderQuery) -> Result<Vec<Folder>> {
        let mut q = query.clone();
        q.limit = q.limit.clamp(1, MAX_LIST_LIMIT);
        let mut folders = self
            .timed("list_folders", self.backend.list_folders(&q))
            .await?;
        if folders.is_empty() {
            return Ok(folders);
        }
        self.for_each_user(|user| {
            for vf in &user.virtual_folders {
                if let Some(f) = folders.iter_mut().find(|f| f.mapped_path == vf.mapped_path) {
                    f.users.push(user.username.clone());
                }
            }
            None::<()>
        })
        .await?;
        Ok(folders)
    }

    /// Validates `folder` and stores it (its secret sealed); returns the stored record.
    pub async fn add_folder(&self, folder: Folder) -> Result<Folder> {
        self.ensure_manageable()?;
        let folder = self.prepare_folder(folder)?;
        self.timed("insert_folder", self.backend.insert_folder(&folder))
            .await
    }

    /// Replaces the storage of the folder with `folder.mapped_path` (its used quota and
    /// users are kept). Sent without `access_secret`, an S3 folder keeps the stored one
    /// while the bucket, endpoint and access key stay the same, as for users.
    pub async fn update_folder(&self, mut folder: Folder) -> Result<()> {
        self.ensure_manageable()?;
        let stored = self.folder_by_path(&folder.mapped_path).await?;
        folder.id = stored.id;
        keep_secret(&stored.filesystem, &mut folder.filesystem);
        let folder = self.prepare_folder(folder)?;
        self.timed("update_folder", self.backend.update_folder(&folder))
            .await
    }

    /// Removes the folder and every user's mapping of it (the files stay where they are).
    pub async fn delete_folder(&self, mapped_path: &str) -> Result<()> {
        self.ensure_manageable()?;
        let folder = self.folder_by_path(mapped_path).await?;
        let mut mapping = Vec::new();
        self.for_each_user(|user| {
            if user
                .virtual_folders
                .iter()
                .any(|vf| vf.mapped_path == mapped_path)
            {
                mapping.push(user.id);
            }
            None::<()>
        })
        .await?;
        for id in mapping {
            // Read again, one user at a time: only the mapping changes, not a field an
            // update made meanwhile.
            let mut user = self.user_by_id(id).await?;
            user.virtual_folders
                .retain(|vf| vf.mapped_path != mapped_path);
            self.timed("update_user", self.backend.update_user(&user))
                .await?;
        }
        self.timed("delete_folder", self.backend.delete_folder(folder.id))
            .await
    }

    /// Adds the deltas to a folder's used quota, atomically in the backend.
    pub async fn add_folder_quota(
        &self,
        mapped_path: &str,
        size_delta: i64,
        files_delta: i64,
    ) -> Result<()> {
        let update = QuotaUpdate::Delta {
            size: size_delta,
            files: files_delta,
        };
        self.timed(
            "update_folder_quota",
            self.backend.update_folder_quota(mapped_path, update),
        )
        .await
    }

    /// Replaces a folder's used quota (after a quota scan).
    pub async fn reset_folder_quota(&self, mapped_path: &str, size: i64, files: i64) -> Result<()> {
        self.timed(
            "reset_folder_quota",
            self.backend
                .update_folder_quota(mapped_path, QuotaUpdate::Reset { size, files }),
        )
        .await
    }

    fn prepare_folder(&self, mut folder: Folder) -> Result<Folder> {
        folder.filesystem = std::mem::take(&mut folder.filesystem).normalized();
        folder.users.clear();
        validate_folder(&folder)?;
        self.seal(&mut folder.filesystem)?;
        Ok(folder)
    }

    /// Encrypts the plain-text access secret of `fs` for storing.
    fn seal(&self, fs: &mut Filesystem) -> Result<()> {
        let s3 = &mut fs.s3config;
        s3.access_secret =
            self.secrets
                .seal(&s3.access_secret)
                .map_err(|e| ProviderError::InvalidField {
                    field: "filesystem.s3config.access_secret",
                    reason: e.to_string(),
                })?;
        Ok(())
    }

    /// Creates the folders a user's `virtual_folders` name that do not exist yet (with
    /// the entry's `filesystem`, local when absent), as SFTPGo 1.x does for a user sent
    /// in one request. The entries keep only the mapping.
    async fn create_missing_folders(&self, user: &mut User) -> Result<()> {
        for vf in &mut user.virtual_folders {
            let fs = vf.filesystem.take();
            match self.folder_by_path(&vf.mapped_path).await {
                Ok(_) => {}
                Err(ProviderError::NotFound(_)) => {
                    let folder = Folder {
                        mapped_path: vf.mapped_path.clone(),
                        filesystem: fs.unwrap_or_default(),
                        ..Folder::default()
                    };
                    match self.add_folder(folder).await {
                        Ok(_) | Err(ProviderError::FolderExists(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Calls `f` with every user, page by page, until it returns `Some`.
    async fn for_each_user<T>(&self, mut f: impl FnMut(&User) -> Option<T>) -> Result<Option<T>> {
        let mut query = UserQuery {
            limit: MAX_LIST_LIMIT,
            ..UserQuery::default()
        };
        loop {
            let page = self.list_users(&query).await?;
            if let Some(found) = page.iter().find_map(&mut f) {
                return Ok(Some(found));
            }
            if page.len() < MAX_LIST_LIMIT as usize {
                return Ok(None);
            }
            query.offset += MAX_LIST_LIMIT;
        }
    }

    /// Validates `user`, hashes a plain-text password and updates the record with
    /// `user.id`. The username and the used quota are never changed by an update; every
    /// other field is replaced (a `None` password removes the password).
    ///
    /// An S3 user sent without `access_secret` (as every API answer shows it) keeps the
    /// stored secret while the bucket, endpoint and access key stay the same.
    pub async fn update_user(&self, mut user: User) -> Result<()> {
        self.ensure_manageable()?;
        let fs = &user.filesystem;
        if fs.provider == FsProvider::S3 && fs.s3config.access_secret.is_empty() {
            let stored = self.user_by_id(user.id).await?;
            keep_secret(&stored.filesystem, &mut user.filesystem);
        }
        let user = self.prepare_user(user).await?;
        self.timed("update_user", self.backend.update_user(&user))
            .await
    }

    pub async fn delete_user(&self, id: i64) -> Result<()> {
        self.ensure_manageable()?;
        self.timed("delete_user", self.backend.delete_user(id))
            .await
    }

    /// Verifies `candidate` against the user's stored password hash, on a blocking thread.
    /// A user without a password never matches.
    pub async fn check_password(&self, user: &User, candidate: &str) -> bool {
        let Some(stored) = user.password.clone().filter(|p| !p.is_empty()) else {
            return false;
        };
        if let Err(e) = password::check_cost(&stored) {
            tracing::warn!(sender = "auth", username = %user.username, error = %e, "the stored password hash asks more work than a login may cost; login refused (set a new password)");
            return false;
        }
        let candidate = candidate.to_owned();
        match self
            .checks
            .run(move || password::verify_password(&stored, &candidate))
            .await
        {
            Ok(matched) => matched,
            Err(busy) => {
                tracing::warn!(sender = "auth", username = %user.username, error = %busy, "password check not run, login refused");
                false
            }
        }
    }

    /// Whether `track_quota` keeps this user's used quota.
    pub fn tracks_quota(&self, user: &User) -> bool {
        match self.track_quota {
            TrackQuota::Off => false,
            TrackQuota::Always => true,
            TrackQuota::LimitedUsersOnly => user.has_quota_limits(),
        }
    }

    /// Adds the deltas to the user's used quota, if `track_quota` says this user is tracked.
    pub async fn update_quota(&self, user: &User, size_delta: i64, files_delta: i64) -> Result<()> {
        if !self.tracks_quota(user) {
            return Ok(());
        }
        self.add_quota(&user.username, size_delta, files_delta)
            .await
    }

    /// Adds the deltas to the used quota of `username`, atomically (`used = used + ?`);
    /// for callers that applied `track_quota` themselves ([`DataProvider::tracks_quota`]).
    pub async fn add_quota(&self, username: &str, size_delta: i64, files_delta: i64) -> Result<()> {
        self.timed(
            "update_quota",
            self.backend.update_quota(
                username,
                QuotaUpdate::Delta {
                    size: size_delta,
                    files: files_delta,
                },
            ),
        )
        .await
    }

    /// Replaces the user's used quota (after a quota scan), whatever `track_quota` says.
    pub async fn reset_quota(&self, username: &str, size: i64, files: i64) -> Result<()> {
        self.timed(
            "reset_quota",
            self.backend
                .update_quota(username, QuotaUpdate::Reset { size, files }),
        )
        .await
    }

    pub async fn ping(&self) -> Result<()> {
        self.timed("ping", self.backend.ping()).await
    }

    /// Validation (SFTPGo 0.9 `validateUser` order, then the rules added since, then no
    /// home shared with another user), then hashing of a plain-text password on a blocking
    /// thread.
    async fn prepare_user(&self, mut user: User) -> Result<User> {
        if user.home_dir.is_empty()
            && let Some(base) = &self.users_base_dir
            && !user.username.is_empty()
        {
            user.home_dir = format!("{}/{}", base.trim_end_matches('/'), user.username);
        }
        user.filesystem = std::mem::take(&mut user.filesystem).normalized();
        validate_user(&user, self.users_base_dir.as_deref())?;
        self.ensure_own_home(&user).await?;
        self.seal(&mut user.filesystem)?;
        match user.password.take() {
            Some(p) if p.is_empty() => user.password = None,
            Some(p) if password::is_hashed(&p) => user.password = Some(p),
            Some(plain) => {
                let hashed = tokio::task::spawn_blocking(move || password::hash_password(&plain))
                    .await
                    .map_err(|e| {
                        ProviderError::Backend(format!("password hashing task failed: {e}"))
                    })?
                    .map_err(|e| ProviderError::Backend(e.to_string()))?;
                user.password = Some(hashed);
            }
            None => {}
        }
        self.create_missing_folders(&mut user).await?;
        Ok(user)
    }

    /// Refuses a home equal to, inside or above another user's: one user could read and
    /// change the other's files, and both quotas would count them. Pages through every
    /// user (an administrative write, not a login).
    async fn ensure_own_home(&self, user: &User) -> Result<()> {
        let overlap = self
            .for_each_user(|o| {
                (o.id != user.id
                    && o.username != user.username
                    && homes_overlap(&o.home_dir, &user.home_dir))
                .then(|| (o.username.clone(), o.home_dir.clone()))
            })
            .await?;
        match overlap {
            None => Ok(()),
            Some((username, home)) => Err(ProviderError::InvalidField {
                field: "home_dir",
                reason: format!(
                    "{:?} overlaps the home of user {username:?} ({home:?}): homes must not be equal to, inside or above another user's",
                    user.home_dir
                ),
            }),
        }
    }

    fn ensure_manageable(&self) -> Result<()> {
        if self.manage_users {
            Ok(())
        } else {
            Err(ProviderError::ReadOnly)
        }
    }
}

/// An S3 storage sent without `access_secret` (as every answer shows it) keeps the stored
/// secret while the bucket, endpoint and access key stay the same: a stored secret is
/// never sent to another endpoint.
fn keep_secret(stored: &Filesystem, new: &mut Filesystem) {
    let (old, s3) = (&stored.s3config, &mut new.s3config);
    if new.provider == FsProvider::S3
        && s3.access_secret.is_empty()
        && stored.provider == FsProvider::S3
        && !s3.access_key.is_empty()
        && (&old.bucket, &old.endpoint, &old.access_key)
            == (&s3.bucket, &s3.endpoint, &s3.access_key)
    {
        s3.access_secret = old.access_secret.clone();
    }
}

/// Milliseconds since the Unix epoch (`last_quota_update`).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
