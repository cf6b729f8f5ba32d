//! The protocol-independent layer every protocol adapter (SFTP today, SCP next) talks to.
//!
//! It owns the rules: who may log in ([`auth`]), which connections are live and how many a
//! user may hold ([`connection`]), what a user may do to which path ([`fs`]), and how file data
//! moves ([`transfer`]). Adapters translate their wire format to calls on these types and back;
//! they never touch the data provider or the host filesystem directly.

pub mod auth;
pub mod connection;
pub mod fs;
pub mod quota;
pub mod throttle;
pub mod transfer;

use std::sync::Arc;
use std::time::Duration;

pub use auth::{AuthError, AuthMethod};
pub use connection::{Connection, ConnectionGuard, ConnectionSnapshot, Protocol, Registry};
pub use fs::{FsError, SetAttrs, UserFs};
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
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            umask: 0o022,
            upload_mode: UploadMode::Standard,
            idle_timeout: Some(Duration::from_secs(15 * 60)),
            running_as_root: rustix::process::geteuid().is_root(),
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
}

impl Core {
    pub fn new(provider: DataProvider, settings: Settings) -> Self {
        Self {
            inner: Arc::new(CoreInner {
                provider,
                registry: Registry::default(),
                settings,
            }),
        }
    }

    pub fn provider(&self) -> &DataProvider {
        &self.inner.provider
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }
}

/// Milliseconds since the Unix epoch, the unit of every timestamp the API reports.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
