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

use sftpgo_provider::DataProvider;

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
            idle_timeout: Some(Duration::from_secs(15 * 60)),
            running_as_root: rustix::process::geteuid().is_root(),
            max_total_connections: 0,
            max_per_host_connections: 0,
            max_open_files_per_user: 0,
            defender: defender::DefenderSettings::default(),
        }
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
    roots: std::sync::Mutex<
        std::collections::HashMap<std::path::PathBuf, std::sync::Weak<sftpgo_vfs::Root>>,
    >,
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
        let cached = self
            .lock_roots()
            .get(home)
            .and_then(std::sync::Weak::upgrade);
        let root = sftpgo_vfs::Root::open_shared(home, cached)?;
        let mut roots = self.lock_roots();
        if roots.len() >= 64 {
            roots.retain(|_, r| r.strong_count() > 0);
        }
        roots.insert(home.to_path_buf(), Arc::downgrade(&root));
        Ok(root)
    }

    fn lock_roots(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<std::path::PathBuf, std::sync::Weak<sftpgo_vfs::Root>>,
    > {
        self.inner.roots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Milliseconds since the Unix epoch, the unit of every timestamp the API reports.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
