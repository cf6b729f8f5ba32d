//! HTTP Basic auth against an htpasswd file of bcrypt entries (`httpd.auth_user_file`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::error::ApiResponse;
use crate::{ClientInfo, HttpdError};

/// How long a verified username/password pair is trusted without running bcrypt again.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// A well-formed cost-10 bcrypt hash checked for unknown users (matches no password the
/// API would accept, and is never accepted anyway).
pub(crate) const DUMMY_HASH: &str = "$2b$10$C6UzMDM.H6dfI/f/IKxGhuHPAPzSBmc7nM7NXRBkDCKTy.fGdZK7C";
/// Upper bound on cached pairs (one per user; a full cache is simply cleared).
const CACHE_MAX: usize = 1024;

/// The users of an htpasswd file and a short-lived cache of successful checks.
pub struct BasicAuth {
    /// username → bcrypt hash.
    users: HashMap<String, String>,
    /// Random per process, so cached digests are useless outside it.
    salt: [u8; 16],
    /// username → (digest of salt + password, when it was verified).
    cache: Mutex<HashMap<String, ([u8; 32], Instant)>>,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// Reads an htpasswd file. Lines that are not `user:$2a$|$2b$|$2y$...` bcrypt entries
    /// are skipped with a warning; a file without any usable entry is an error (it would
    /// lock everyone out).
    pub fn load(path: &Path) -> Result<Self, HttpdError> {
        let text = std::fs::read_to_string(path).map_err(|source| HttpdError::AuthFile {
            path: path.to_path_buf(),
            source,
        })?;
        let auth = Self::parse(&text, &path.display().to_string());
        if auth.users.is_empty() {
            return Err(HttpdError::NoAuthEntries {
                path: path.to_path_buf(),
            });
        }
        Ok(auth)
    }

    /// Parses htpasswd text; `source` names it in warnings.
    pub fn parse(text: &str, source: &str) -> Self {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once(':') {
                Some((user, hash))
                    if !user.is_empty()
                        && ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) =>
                {
                    users.insert(user.to_string(), hash.to_string());
                }
                _ => tracing::warn!(
                    sender = "httpd",
                    file = %source,
                    line = n + 1,
                    "ignoring an auth_user_file entry that is not user:bcrypt-hash ($2a$, $2b$ or $2y$)"
                ),
            }
        }
        Self {
            users,
            salt: rand::random(),
            cache: Mutex::default(),
        }
    }

    /// Whether `username` has an entry (for the defender: unknown names score more).
    pub fn knows(&self, username: &str) -> bool {
        self.users.contains_key(username)
    }

    /// The number of usable entries.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there is no usable entry.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    fn digest(&self, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// Checks a username/password pair; bcrypt runs on the blocking pool.
    pub async fn verify(self: &Arc<Self>, username: &str, password: &str) -> bool {
        // An unknown user costs a bcrypt check too, so timing does not tell which names
        // exist.
        let (hash, known) = match self.users.get(username) {
            Some(h) => (h.clone(), true),
            None => (DUMMY_HASH.to_string(), false),
        };
        let digest = self.digest(password);
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((d, at)) = cache.get(username)
                && *d == digest
                && at.elapsed() < CACHE_TTL
            {
                return true;
            }
        }
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false)
            && known;
        if ok {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(username.to_string(), (digest, Instant::now()));
        }
        ok
    }
}

/// `Authorization: Basic base64(user:password)` → (user, password).
fn credentials(request: &Request) -> Option<(String, String)> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The auth middleware's state: the credentials, and the defender that refuses banned
/// clients and scores failed attempts.
#[derive(Clone)]
pub(crate) struct AuthState {
    pub auth: Arc<BasicAuth>,
    pub defender: Arc<sftpgo_core::defender::Defender>,
}

/// The client address of a request, as the listener recorded it.
pub(crate) fn client_addr(request: &Request) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<ClientInfo>>()
        .map(|c| c.0.addr)
        .or_else(|| {
            request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0)
        })
}

/// Tells the defender about failed credentials from `addr` (the API's Basic auth and the
/// web admin's login): an unknown username scores as such.
pub(crate) async fn report_failure(state: &AuthState, addr: SocketAddr, username: &str) {
    use sftpgo_core::defender::HostEvent;
    let event = if state.auth.knows(username) {
        HostEvent::LoginFailed
    } else {
        HostEvent::UserNotFound
    };
    state.defender.record(addr.ip(), event).await;
}

/// Middleware: a client the defender refuses gets 403; every other request needs valid
/// credentials; otherwise 401 with `WWW-Authenticate: Basic realm="sftpgo"`, logged with
/// the client address and scored by the defender.
pub(crate) async fn require_auth(
    State(state): State<AuthState>,
    request: Request,
    next: Next,
) -> Response {
    let remote = client_addr(&request);
    if let Some(addr) = remote
        && let Err(refusal) = state.defender.check(addr.ip()).await
    {
        if let Some(suppressed) = state.defender.may_log_refusal() {
            tracing::info!(sender = "httpd", remote_addr = %addr, reason = %refusal, suppressed_since_last = suppressed, "API request refused by the defender");
        }
        return ApiResponse::new(StatusCode::FORBIDDEN, "", refusal.to_string()).into_response();
    }
    let given = credentials(&request);
    if let Some((user, password)) = &given
        && state.auth.verify(user, password).await
    {
        return next.run(request).await;
    }
    let username = given.as_ref().map(|(u, _)| u.as_str()).unwrap_or("");
    tracing::warn!(
        sender = "httpd",
        remote_addr = %remote.map(|a| a.to_string()).unwrap_or_default(),
        client_ip = %remote.map(|a| a.ip().to_string()).unwrap_or_default(),
        username = %username,
        method = %request.method(),
        uri = %request.uri(),
        "API authentication failed"
    );
    // A request without credentials is how every browser and client starts: not scored.
    if let (Some(addr), Some((user, _))) = (remote, &given) {
        report_failure(&state, addr, user).await;
    }
    let message = if given.is_some() {
        "Invalid credentials"
    } else {
        "Authentication required"
    };
    let mut response = ApiResponse::new(StatusCode::UNAUTHORIZED, "", message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"sftpgo\""),
    );
    response
}
