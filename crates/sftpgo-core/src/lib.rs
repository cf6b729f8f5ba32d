//! The protocol-independent layer every protocol adapter (SFTP today, SCP next) talks to.
//!
//! It owns the rules: who may log in ([`auth`]), which connections are live and how many a
//! user may hold ([`connection`]), what a user may do to which path ([`fs`]), and how file data
//! moves ([`transfer`]). Adapters translate their wire format to calls on these types and back;
//! they never touch the data provider or the host filesystem directly.

pub mod actions;
pub mod admission;
pub mod auth;
pub mod connection;
pub mod defender;
pub mod fs;
pub mod metrics;
pub mod quota;
pub mod storage;
pub mod throttle;
pub mod transfer;

use std::sync::Arc;
use std::time::Duration;

pub use actions::{ActionEvent, ActionKind, ActionSettings, Actions};
pub use auth::{AuthError, AuthMethod};
pub use connection::{
    Connection, ConnectionGuard, ConnectionSnapshot, Protocol, ProtocolSession, Registry,
};
pub use fs::{FsError, HashAlgorithm, HashRange, Hasher, SetAttrs, UserFs};
pub use metrics::Metrics;
pub use transfer::{Transfer, TransferKind};

use sftpgo_provider::{DataProvider, FsProvider, User};

/// How uploads reach their target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UploadMode {
    /// Writes go straight to the target file.
    #[default]
    Standard,
    /// Writes go to a hidden temp file renamed over the target on a successful close.
    Atomic,
}

/// Server-wide settings the shared layer applies to every connection.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Permission bits removed from every file and directory the server creates.
    pub umask: u32,
    pub upload_mode: UploadMode,
    /// Whether SETSTAT's mode, owner and time changes are applied (`sftpd.setstat_mode`).
    pub ignore_setstat: bool,
    /// Idle connections are closed after this long; `None` disables.
    pub idle_timeout: Option<Duration>,
    /// Whether the process may chown to the users' uid/gid.
    pub running_as_root: bool,
    /// Connections open at once, and from one client IP (0 = no limit), counted from
    /// accept (see [`admission`]).
    pub max_total_connections: usize,
    pub max_per_host_connections: usize,
    /// Files one user may have open at once over all connections and channels (0 = no
    /// limit): each is a descriptor of this process.
    pub max_open_files_per_user: usize,
    /// Scores and bans of misbehaving client IPs (disabled by default here; the
    /// configuration's default enables it).
    pub defender: defender::DefenderSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            umask: 0o022,
            upload_mode: UploadMode::Standard,
            ignore_setstat: false,
            idle_timeout: Some(Duration::from_secs(15 * 60)),
            running_as_root: rustix::process::geteuid().is_root(),
            max_total_connections: 0,
            max_per_host_connections: 0,
            max_open_files_per_user: 0,
            defender: defender::DefenderSettings::default(),
        }
    }
}

/// Values shared by the connections that use them, found again by key while one is alive
/// (open homes, S3 clients); dead entries are dropped once 64 accumulate.
struct SharedCache<K, V>(std::sync::Mutex<std::collections::HashMap<K, std::sync::Weak<V>>>);

impl<K: std::hash::Hash + Eq, V> Default for SharedCache<K, V> {
    fn default() -> Self {
        Self(Default::default())
    }
}

impl<K: std::hash::Hash + Eq, V> SharedCache<K, V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<K, std::sync::Weak<V>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get<Q: std::hash::Hash + Eq + ?Sized>(&self, key: &Q) -> Option<Arc<V>>
    where
        K: std::borrow::Borrow<Q>,
    {
        self.lock().get(key).and_then(std::sync::Weak::upgrade)
    }

    fn insert(&self, key: K, value: &Arc<V>) {
        let mut map = self.lock();
        if map.len() >= 64 {
            map.retain(|_, v| v.strong_count() > 0);
        }
        map.insert(key, Arc::downgrade(value));
    }
}

/// Everything a protocol adapter needs, cheap to clone.
#[derive(Clone)]
pub struct Core {
    inner: Arc<CoreInner>,
}

struct CoreInner {
    provider: DataProvider,
    registry: Registry,
    settings: Settings,
    observers: Observers,
    /// Every user's used quota as this process knows it.
    quota: quota::Ledger,
    /// Connections admitted at accept, of every protocol.
    admission: Arc<admission::Admission>,
    /// Scores and bans of client IPs, for every protocol and the REST API.
    defender: Arc<defender::Defender>,
    /// Open home dirs, shared by the connections of one home (see `Root::open_shared`).
    roots: SharedCache<std::path::PathBuf, sftpgo_vfs::Root>,
    /// S3 clients, one per distinct settings, shared by the connections using them.
    buckets: SharedCache<storage::s3::S3Config, storage::s3::S3Volume>,
}

/// Where operations report: metrics always, actions when configured.
#[derive(Clone, Default)]
pub struct Observers {
    pub metrics: Arc<Metrics>,
    pub actions: Actions,
}

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observers")
    }
}

impl Core {
    /// A core without actions and with fresh metrics.
    pub fn new(provider: DataProvider, settings: Settings) -> Self {
        Self::with_observers(provider, settings, Observers::default())
    }

    /// A core reporting to `observers`; the provider's calls are timed into its metrics.
    /// Panics if the defender's `provider` driver is asked of a backend that cannot keep
    /// its data: [`Core::try_with_observers`] returns that as an error.
    pub fn with_observers(
        provider: DataProvider,
        settings: Settings,
        observers: Observers,
    ) -> Self {
        Self::try_with_observers(provider, settings, observers)
            .expect("the defender's driver suits the data provider")
    }

    /// As [`Core::with_observers`], with the defender's set-up error returned.
    pub fn try_with_observers(
        provider: DataProvider,
        settings: Settings,
        observers: Observers,
    ) -> Result<Self, defender::DefenderError> {
        let defender = Arc::new(defender::Defender::new(
            settings.defender.clone(),
            provider.backend(),
            observers.metrics.clone(),
        )?);
        let metrics = observers.metrics.clone();
        let provider = provider.with_observer(Arc::new(move |op, elapsed, ok| {
            metrics.provider_query(op, elapsed, ok)
        }));
        Ok(Self {
            inner: Arc::new(CoreInner {
                defender,
                quota: quota::Ledger::new(provider.clone()),
                admission: Arc::new(admission::Admission::new(
                    settings.max_total_connections,
                    settings.max_per_host_connections,
                )),
                provider,
                registry: Registry::default(),
                settings,
                observers,
                roots: Default::default(),
                buckets: Default::default(),
            }),
        })
    }

    /// Scores and bans of client IPs: every listener asks it at accept, logins and limits
    /// report to it.
    pub fn defender(&self) -> &Arc<defender::Defender> {
        &self.inner.defender
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.observers.metrics
    }

    pub fn actions(&self) -> &Actions {
        &self.inner.observers.actions
    }

    pub(crate) fn observers(&self) -> &Observers {
        &self.inner.observers
    }

    /// The Prometheus text exposition of [`Core::metrics`].
    pub fn render_metrics(&self) -> String {
        self.metrics().encode(self.registry().len())
    }

    pub fn provider(&self) -> &DataProvider {
        &self.inner.provider
    }

    /// Users' used quota: what uploads, removes and quota scans change goes through it.
    pub fn quota(&self) -> &quota::Ledger {
        &self.inner.quota
    }

    /// The connection limits every listener checks at accept.
    pub fn admission(&self) -> &Arc<admission::Admission> {
        &self.inner.admission
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The open home dir `home`, shared with the live connections of the same home when it
    /// is still the same directory.
    pub(crate) fn shared_root(
        &self,
        home: &std::path::Path,
    ) -> std::io::Result<Arc<sftpgo_vfs::Root>> {
        let cached = self.inner.roots.get(home);
        let root = sftpgo_vfs::Root::open_shared(home, cached)?;
        self.inner.roots.insert(home.to_path_buf(), &root);
        Ok(root)
    }

    /// Where `user`'s files are: the home dir (created when missing, opened, shared with
    /// the live connections of the same home) or the user's bucket (one client per
    /// distinct settings, shared while in use). No request reaches the bucket here: an
    /// unreachable one fails the operations that need it, each with its status and log.
    pub async fn volume_for(&self, user: &User) -> Result<storage::Volume, auth::AuthError> {
        let owner = fs::owner_for(user, self.settings());
        self.volume_of(&user.filesystem, &user.home_dir, owner)
            .await
            .map_err(|e| match user.filesystem.provider {
                FsProvider::Local => auth::AuthError::HomeDir(e),
                FsProvider::S3 => auth::AuthError::Storage(e),
            })
    }

    /// Where the files of `user`'s virtual folder `vf` are: its directory (created when
    /// missing, like a home) or its bucket prefix, read from the folder's record.
    pub(crate) async fn folder_volume(
        &self,
        user: &User,
        vf: &sftpgo_provider::VirtualFolder,
    ) -> Result<storage::Volume, auth::AuthError> {
        use auth::AuthError;
        let name = || {
            format!(
                "virtual folder {:?} ({:?})",
                vf.virtual_path, vf.mapped_path
            )
        };
        let folder = match self.provider().folder_by_path(&vf.mapped_path).await {
            Ok(f) => f,
            Err(sftpgo_provider::ProviderError::NotFound(_)) => {
                return Err(AuthError::Storage(format!("{}: no such folder", name())));
            }
            Err(e) => return Err(AuthError::Provider(e.to_string())),
        };
        sftpgo_provider::validate_folder(&folder)
            .map_err(|e| AuthError::Storage(format!("{}: {e}", name())))?;
        let owner = fs::owner_for(user, self.settings());
        self.volume_of(&folder.filesystem, &folder.mapped_path, owner)
            .await
            .map_err(|e| AuthError::Storage(format!("{}: {e}", name())))
    }

    /// The storage `filesystem` describes: the local directory `dir`, or a bucket.
    async fn volume_of(
        &self,
        filesystem: &sftpgo_provider::Filesystem,
        dir: &str,
        owner: Option<(u32, u32)>,
    ) -> Result<storage::Volume, String> {
        match filesystem.provider {
            FsProvider::Local => {
                let path = std::path::PathBuf::from(dir);
                let mode = 0o777 & !self.settings().umask;
                let core = self.clone();
                let root = tokio::task::spawn_blocking(move || {
                    sftpgo_vfs::ensure_home(&path, mode, owner)?;
                    core.shared_root(&path)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("{dir}: {e}"))?;
                Ok(storage::Volume::Local(root))
            }
            FsProvider::S3 => self
                .bucket_of(&filesystem.s3config)
                .map(storage::Volume::S3),
        }
    }

    /// The bucket client of `s3` (see [`Core::volume_for`]).
    fn bucket_of(
        &self,
        s3: &sftpgo_provider::S3FsConfig,
    ) -> Result<Arc<storage::s3::S3Volume>, String> {
        let unusable = |e: &dyn std::fmt::Display| format!("bucket {:?}: {e}", s3.bucket);
        let secret = self
            .provider()
            .open_secret(&s3.access_secret)
            .map_err(|e| unusable(&e))?;
        let cfg = storage::s3::S3Config::from_user(s3, secret);
        if let Some(vol) = self.inner.buckets.get(&cfg) {
            return Ok(vol);
        }
        let vol = Arc::new(storage::s3::S3Volume::new(&cfg).map_err(|e| unusable(&e))?);
        self.inner.buckets.insert(cfg, &vol);
        Ok(vol)
    }

    /// Bytes and files the user stores (the quota scan): a walk of the home dir on the
    /// blocking pool, or a listing of the bucket's prefix; plus the virtual folders
    /// counted in the user's quota.
    pub async fn scan_usage(&self, user: &User) -> std::io::Result<(i64, i64)> {
        let (mut size, mut files) = self.scan_of(&user.filesystem, &user.home_dir).await?;
        for vf in user.virtual_folders.iter().filter(|vf| vf.in_user_quota()) {
            let folder = self
                .provider()
                .folder_by_path(&vf.mapped_path)
                .await
                .map_err(std::io::Error::other)?;
            let (s, f) = self
                .scan_of(&folder.filesystem, &folder.mapped_path)
                .await?;
            size += s;
            files += f;
        }
        Ok((size, files))
    }

    /// Bytes and files a virtual folder stores (its quota scan).
    pub async fn scan_folder(
        &self,
        folder: &sftpgo_provider::Folder,
    ) -> std::io::Result<(i64, i64)> {
        self.scan_of(&folder.filesystem, &folder.mapped_path).await
    }

    async fn scan_of(
        &self,
        filesystem: &sftpgo_provider::Filesystem,
        dir: &str,
    ) -> std::io::Result<(i64, i64)> {
        match filesystem.provider {
            FsProvider::Local => {
                let dir = std::path::PathBuf::from(dir);
                tokio::task::spawn_blocking(move || quota::scan(&dir))
                    .await
                    .map_err(std::io::Error::other)?
            }
            FsProvider::S3 => match self.bucket_of(&filesystem.s3config) {
                Ok(vol) => vol.usage().await,
                Err(e) => Err(std::io::Error::other(e)),
            },
        }
    }

    /// Removes what interrupted uploads left (a crash, a kill) and nobody touched for
    /// `max_age`: atomic-upload temps in home dirs and folders, multipart uploads in
    /// buckets. Pages through every user and folder; runs beside the uploads the server
    /// serves.
    pub async fn sweep_stale_uploads(&self, max_age: std::time::Duration) {
        let mut query = sftpgo_provider::UserQuery {
            limit: 500,
            ..Default::default()
        };
        loop {
            let users = match self.provider().list_users(&query).await {
                Ok(u) => u,
                Err(e) => {
                    tracing::warn!(sender = "service", error = %e, "cannot list users to clean stale uploads");
                    return;
                }
            };
            for user in &users {
                let removed = self
                    .sweep_of(&user.filesystem, &user.home_dir, max_age)
                    .await;
                report_sweep(&format!("user {:?}", user.username), removed);
            }
            if users.len() < query.limit as usize {
                break;
            }
            query.offset += query.limit;
        }
        let mut query = sftpgo_provider::FolderQuery {
            limit: 500,
            ..Default::default()
        };
        loop {
            let folders = match self.provider().backend().list_folders(&query).await {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(sender = "service", error = %e, "cannot list folders to clean stale uploads");
                    return;
                }
            };
            for folder in &folders {
                let removed = self
                    .sweep_of(&folder.filesystem, &folder.mapped_path, max_age)
                    .await;
                report_sweep(&format!("folder {:?}", folder.mapped_path), removed);
            }
            if folders.len() < query.limit as usize {
                return;
            }
            query.offset += query.limit;
        }
    }

    async fn sweep_of(
        &self,
        filesystem: &sftpgo_provider::Filesystem,
        dir: &str,
        max_age: std::time::Duration,
    ) -> std::io::Result<usize> {
        match filesystem.provider {
            FsProvider::Local => {
                let dir = std::path::PathBuf::from(dir);
                tokio::task::spawn_blocking(move || fs::remove_stale_uploads(&dir, max_age))
                    .await
                    .map_err(std::io::Error::other)
                    .and_then(|r| r)
            }
            FsProvider::S3 => match self.bucket_of(&filesystem.s3config) {
                Ok(vol) => vol.sweep_multipart_uploads(max_age).await,
                Err(e) => Err(std::io::Error::other(e)),
            },
        }
    }
}

fn report_sweep(whose: &str, removed: std::io::Result<usize>) {
    match removed {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(
                sender = "service",
                owner = whose,
                removed = n,
                "removed stale uploads"
            )
        }
        Err(e) => {
            tracing::warn!(sender = "service", owner = whose, error = %e, "cannot clean stale uploads")
        }
    }
}

/// Milliseconds since the Unix epoch, the unit of every timestamp the API reports.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
