//! Login: credentials checked against the data provider, then the connection is opened
//! (home dir prepared, session limit applied). Every outcome is logged with the client
//! address so fail2ban-style tools can act on failures.

use std::net::SocketAddr;
use std::sync::Arc;

use russh::keys::PublicKey;
use sftpgo_provider::{ProviderError, User};

use crate::Core;
use crate::connection::ConnectionGuard;

/// The credential a client offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Password,
    PublicKey,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::PublicKey => "publickey",
        }
    }
}

/// Why a login was refused. Clients only ever learn "authentication failed";
/// the variant goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("unknown user")]
    UnknownUser,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("too many sessions: the user already has {0} of {0} allowed")]
    TooManySessions(i64),
    #[error("home dir unusable: {0}")]
    HomeDir(String),
    /// The user's storage cannot be used (an S3 secret this server cannot decrypt, ...).
    #[error("storage unusable: {0}")]
    Storage(String),
    /// The stored record breaks a rule (written by hand or by an older version): nobody
    /// logs in with it until it is fixed.
    #[error("the user record is refused: {0}")]
    InvalidRecord(ProviderError),
    #[error("data provider unavailable: {0}")]
    Provider(String),
}

/// How long a failed password login waits before it is answered.
pub const FAILED_PASSWORD_DELAY: std::time::Duration = std::time::Duration::from_millis(500);

impl AuthError {
    /// What the defender scores this failure as; `None` for failures that are not the
    /// client's doing (the provider, the home dir).
    pub fn host_event(&self) -> Option<crate::defender::HostEvent> {
        use crate::defender::HostEvent;
        match self {
            AuthError::UnknownUser => Some(HostEvent::UserNotFound),
            AuthError::InvalidCredentials => Some(HostEvent::LoginFailed),
            AuthError::TooManySessions(_) => Some(HostEvent::LimitExceeded),
            AuthError::HomeDir(_)
            | AuthError::Storage(_)
            | AuthError::Provider(_)
            | AuthError::InvalidRecord(_) => None,
        }
    }
}

/// A user with an argon2id hash, checked against when the username is unknown.
async fn dummy_user() -> User {
    static HASH: tokio::sync::OnceCell<Option<String>> = tokio::sync::OnceCell::const_new();
    let hash = HASH
        .get_or_init(|| async {
            tokio::task::spawn_blocking(|| {
                sftpgo_provider::password::hash_password("not a real password").ok()
            })
            .await
            .ok()
            .flatten()
        })
        .await;
    User {
        password: hash.clone(),
        ..User::default()
    }
}

impl Core {
    /// Checks a password and, on success, opens the connection.
    pub async fn login_password(
        &self,
        username: &str,
        password: &str,
        remote: SocketAddr,
    ) -> Result<ConnectionGuard, AuthError> {
        let method = AuthMethod::Password;
        let result = async {
            let user = match self.lookup(username).await {
                Err(AuthError::UnknownUser) => {
                    // Spend the same time as for a real user, so timing does not reveal
                    // which usernames exist.
                    let _ = self
                        .provider()
                        .check_password(&dummy_user().await, password)
                        .await;
                    return Err(AuthError::UnknownUser);
                }
                other => other?,
            };
            if self.provider().check_password(&user, password).await {
                Ok(user)
            } else {
                Err(AuthError::InvalidCredentials)
            }
        }
        .await;
        self.finish_login(username, result, method, remote).await
    }

    /// Whether `key` is one of `username`'s keys, without logging in: lets the SSH layer
    /// refuse unknown keys before the client signs anything. The error says why not
    /// (`UnknownUser`, `InvalidCredentials`, `Provider`), so the adapter can tell the
    /// defender once the connection ends without a login (a client offering several keys
    /// before its password is not an attack).
    pub async fn accepts_public_key(
        &self,
        username: &str,
        key: &PublicKey,
    ) -> Result<(), AuthError> {
        match self.lookup(username).await {
            Ok(user) if user.has_public_key(key) => Ok(()),
            Ok(_) => Err(AuthError::InvalidCredentials),
            Err(e @ AuthError::Provider(_)) => {
                // The key is refused without a login attempt: say why here.
                tracing::warn!(
                    sender = "auth",
                    username,
                    method = AuthMethod::PublicKey.as_str(),
                    reason = %e,
                    "login failed"
                );
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Opens the connection for a public key whose possession the SSH layer has verified.
    pub async fn login_public_key(
        &self,
        username: &str,
        key: &PublicKey,
        remote: SocketAddr,
    ) -> Result<ConnectionGuard, AuthError> {
        let method = AuthMethod::PublicKey;
        let result = async {
            let user = self.lookup(username).await?;
            if user.has_public_key(key) {
                Ok(user)
            } else {
                Err(AuthError::InvalidCredentials)
            }
        }
        .await;
        self.finish_login(username, result, method, remote).await
    }

    async fn lookup(&self, username: &str) -> Result<User, AuthError> {
        match self.provider().user_by_username(username).await {
            Ok(user) => Ok(user),
            Err(ProviderError::NotFound(_)) => Err(AuthError::UnknownUser),
            Err(e) => Err(AuthError::Provider(e.to_string())),
        }
    }

    async fn finish_login(
        &self,
        username: &str,
        result: Result<User, AuthError>,
        method: AuthMethod,
        remote: SocketAddr,
    ) -> Result<ConnectionGuard, AuthError> {
        let result = match result {
            Ok(user) => self.open_connection(user, remote).await,
            Err(e) => Err(e),
        };
        self.metrics().login(method.as_str(), result.is_ok());
        if let Err(e) = &result
            && let Some(event) = e.host_event()
        {
            self.defender().record(remote.ip(), event).await;
            if method == AuthMethod::Password
                && matches!(e, AuthError::UnknownUser | AuthError::InvalidCredentials)
            {
                // A wrong password costs the client a pause before the answer (a timer:
                // no thread is held), so one connection cannot try passwords at the
                // speed of the hash.
                tokio::time::sleep(FAILED_PASSWORD_DELAY).await;
            }
        }
        match &result {
            Ok(guard) => tracing::info!(
                sender = "auth",
                username,
                remote_addr = %remote,
                method = method.as_str(),
                connection_id = %guard.id,
                "login succeeded"
            ),
            Err(e) => tracing::warn!(
                sender = "auth",
                username,
                remote_addr = %remote,
                remote_ip = %remote.ip(),
                method = method.as_str(),
                reason = %e,
                "login failed"
            ),
        }
        result
    }

    /// Prepares the home dir and registers the connection under the user's session limit.
    async fn open_connection(
        &self,
        user: User,
        remote: SocketAddr,
    ) -> Result<ConnectionGuard, AuthError> {
        sftpgo_provider::validate_stored(&user).map_err(AuthError::InvalidRecord)?;
        let settings = self.settings().clone();
        let volume = self.volume_for(&user).await?;
        let mut folder_volumes = Vec::with_capacity(user.virtual_folders.len());
        for vf in &user.virtual_folders {
            folder_volumes.push(self.folder_volume(&user, vf).await?);
        }
        let shared = self
            .registry()
            .user_shared(&user.username, settings.max_open_files_per_user);
        let user = Arc::new(user);
        let quota = crate::quota::QuotaKeeper::new(self.quota(), user.clone())
            .with_log_budget(shared.clone());
        let folders = user
            .virtual_folders
            .iter()
            .zip(folder_volumes)
            .map(|(vf, volume)| {
                let at =
                    sftpgo_vfs::VirtualPath::parse(vf.virtual_path.as_bytes()).map_err(|e| {
                        AuthError::Storage(format!("virtual folder {:?}: {e}", vf.virtual_path))
                    })?;
                let quota = crate::quota::QuotaKeeper::for_folder(self.quota(), user.clone(), vf)
                    .with_log_budget(shared.clone());
                Ok((at, volume, quota))
            })
            .collect::<Result<Vec<_>, AuthError>>()?;
        let base = crate::connection::SessionBase {
            volume,
            settings,
            quota,
            folders,
            observers: self.observers().clone(),
            shared,
        };
        self.registry().register(user, remote, base)
    }
}
