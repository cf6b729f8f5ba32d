//! Live connections: who is connected, doing what, and the registry the API lists and
//! closes them through. Registration applies the user's `max_sessions` atomically.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use sftpgo_provider::User;
use tokio_util::sync::CancellationToken;

use crate::auth::AuthError;
use crate::fs::UserFs;
use crate::transfer::TransferKind;
use crate::{Observers, now_ms};

/// The protocol of a session: each SSH channel is one ([`ProtocolSession`]): `Sftp` for
/// the `sftp` subsystem, `Scp` for an `scp` command, `Ssh` for the other SSH commands (and
/// for a logged-in connection with no channel open, as the API lists it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Ssh,
    Sftp,
    Scp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Ssh => "SSH",
            Protocol::Sftp => "SFTP",
            Protocol::Scp => "SCP",
        }
    }
}

/// One authenticated client connection (an SSH connection): what its login decided, and
/// the protocol sessions (one per channel) it runs. `max_sessions` counts these.
pub struct Connection {
    pub id: String,
    user: Arc<User>,
    remote_addr: SocketAddr,
    client_version: OnceLock<String>,
    connected_at: i64,
    closer: CancellationToken,
    /// Activity of the connection itself (and of its ended sessions).
    last_activity: AtomicI64,
    /// What each of its sessions' filesystem is made of.
    base: SessionBase,
    /// The sessions running now, in the order they started.
    sessions: Mutex<Vec<Arc<ConnectionState>>>,
    sessions_started: AtomicU64,
}

/// What a login prepared for the connection's sessions: the user's storage, the
/// settings, the quota, and what the user's connections share.
pub(crate) struct SessionBase {
    pub(crate) volume: crate::storage::Volume,
    pub(crate) settings: crate::Settings,
    pub(crate) quota: crate::quota::QuotaKeeper,
    /// The user's virtual folders: where each is seen, its storage and its quota.
    pub(crate) folders: Vec<(
        sftpgo_vfs::VirtualPath,
        crate::storage::Volume,
        crate::quota::QuotaKeeper,
    )>,
    pub(crate) observers: Observers,
    pub(crate) shared: Arc<UserShared>,
}

/// The state of one protocol session (an SSH channel running SFTP, SCP or a command)
/// that its filesystem and transfers report to (logs, progress).
#[derive(Debug)]
pub struct ConnectionState {
    pub id: String,
    pub user: Arc<User>,
    protocol: Protocol,
    started_at: i64,
    last_activity: AtomicI64,
    transfers: Mutex<Vec<Arc<TransferStats>>>,
    /// Metrics and actions, which the session's operations feed.
    pub(crate) observers: Observers,
    /// What its user's connections share: open files, the log budget.
    pub(crate) shared: Arc<UserShared>,
}

impl ConnectionState {
    pub(crate) fn new(
        id: String,
        user: Arc<User>,
        protocol: Protocol,
        observers: Observers,
        shared: Arc<UserShared>,
    ) -> Self {
        Self {
            id,
            user,
            protocol,
            started_at: now_ms(),
            last_activity: AtomicI64::new(now_ms()),
            transfers: Mutex::new(Vec::new()),
            observers,
            shared,
        }
    }

    /// Whether a log line about one of this connection's requests may be written now (see
    /// [`LogBudget`]); lines about logins and limits are not asked for.
    pub fn may_log(&self) -> bool {
        self.shared.log.allow(&self.user.username)
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    pub fn touch(&self) {
        self.last_activity.store(now_ms(), Ordering::Relaxed);
    }

    /// Last activity of the session or any of its transfers, in ms since the epoch.
    fn last_activity(&self) -> i64 {
        let own = self.last_activity.load(Ordering::Relaxed);
        self.lock_transfers()
            .iter()
            .map(|t| t.last_activity.load(Ordering::Relaxed))
            .fold(own, i64::max)
    }

    fn transfer_snapshots(&self) -> Vec<TransferSnapshot> {
        self.lock_transfers()
            .iter()
            .map(|t| TransferSnapshot {
                operation_type: t.kind.as_str(),
                path: t.path.clone(),
                start_time: t.start_time,
                size: t.bytes.load(Ordering::Relaxed),
                last_activity: t.last_activity.load(Ordering::Relaxed),
            })
            .collect()
    }

    pub(crate) fn add_transfer(&self, stats: Arc<TransferStats>) {
        self.lock_transfers().push(stats);
    }

    pub(crate) fn remove_transfer(&self, stats: &Arc<TransferStats>) {
        self.lock_transfers().retain(|t| !Arc::ptr_eq(t, stats));
    }

    fn lock_transfers(&self) -> std::sync::MutexGuard<'_, Vec<Arc<TransferStats>>> {
        self.transfers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the connections of one user share in this process, while any of them lives.
/// When the last ends, what its log lines left unsaid is said.
#[derive(Debug)]
pub struct UserShared {
    username: String,
    /// The files the user has open, over all of the user's connections and channels.
    pub(crate) open_files: Arc<OpenFiles>,
    pub(crate) log: LogBudget,
}

impl UserShared {
    pub(crate) fn new(username: &str, max_open_files: usize) -> Self {
        Self {
            username: username.to_string(),
            open_files: Arc::new(OpenFiles::new(max_open_files)),
            log: LogBudget::default(),
        }
    }
}

/// The log lines about one user's requests (transfers, commands, refused or failed
/// operations): a burst of [`LogBudget::BURST`], then [`LogBudget::PER_SECOND`]. What goes
/// over is counted, and reported in one line at most every [`LogBudget::REPORT_EVERY`] (with
/// the next line allowed) and when the user's last connection ends. Without
/// it one client looping OPEN/CLOSE wrote 39,000 lines/s and rotated the whole log's
/// history away, earlier failed logins included, in 5 s. Lines about logins, bans and
/// limit refusals do not go through here.
#[derive(Debug)]
pub(crate) struct LogBudget(Mutex<LogBucket>);

#[derive(Debug)]
struct LogBucket {
    tokens: f64,
    refilled: std::time::Instant,
    suppressed: u64,
    suppressed_since: Option<std::time::Instant>,
    reported: std::time::Instant,
}

impl Default for LogBudget {
    fn default() -> Self {
        Self(Mutex::new(LogBucket {
            tokens: Self::BURST,
            refilled: std::time::Instant::now(),
            suppressed: 0,
            suppressed_since: None,
            reported: std::time::Instant::now(),
        }))
    }
}

impl LogBudget {
    pub(crate) const BURST: f64 = 1000.0;
    pub(crate) const PER_SECOND: f64 = 100.0;
    pub(crate) const REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

    fn lock(&self) -> std::sync::MutexGuard<'_, LogBucket> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn allow(&self, username: &str) -> bool {
        let mut b = self.lock();
        let now = std::time::Instant::now();
        let earned = now.duration_since(b.refilled).as_secs_f64() * Self::PER_SECOND;
        b.tokens = (b.tokens + earned).min(Self::BURST);
        b.refilled = now;
        if b.tokens < 1.0 {
            b.suppressed += 1;
            b.suppressed_since.get_or_insert(now);
            return false;
        }
        b.tokens -= 1.0;
        let due = now.duration_since(b.reported) >= Self::REPORT_EVERY;
        let report = if due { Self::take_report(&mut b) } else { None };
        drop(b);
        Self::log(username, report);
        true
    }

    /// How many lines were suppressed and over how many seconds, if any; counting starts
    /// again.
    fn take_report(b: &mut LogBucket) -> Option<(u64, u64)> {
        if b.suppressed == 0 {
            return None;
        }
        let secs = b.suppressed_since.map_or(0, |t| t.elapsed().as_secs());
        let lines = std::mem::take(&mut b.suppressed);
        b.suppressed_since = None;
        b.reported = std::time::Instant::now();
        Some((lines, secs))
    }

    /// Logs a report (outside the bucket's lock).
    fn log(username: &str, report: Option<(u64, u64)>) {
        if let Some((lines, secs)) = report {
            tracing::warn!(
                sender = "log",
                username,
                suppressed_lines = lines,
                over_secs = secs,
                per_second = Self::PER_SECOND as u64,
                "log lines about this user's requests suppressed (rate limit)"
            );
        }
    }

    fn flush(&self, username: &str) {
        let report = Self::take_report(&mut self.lock());
        Self::log(username, report);
    }
}

/// The files (each one descriptor) one user has open in this process, bounded by
/// `max_open_files_per_user` however many connections and channels they are spread over.
#[derive(Debug)]
pub struct OpenFiles {
    count: AtomicUsize,
    /// 0 = no limit.
    max: usize,
}

impl OpenFiles {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            count: AtomicUsize::new(0),
            max,
        }
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// A place for one more open file; `None` at the limit.
    pub(crate) fn take(self: &Arc<Self>) -> Option<OpenFile> {
        let limit = if self.max == 0 { usize::MAX } else { self.max };
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()?;
        Some(OpenFile(self.clone()))
    }
}

impl Drop for UserShared {
    fn drop(&mut self) {
        self.log.flush(&self.username);
    }
}

/// One open file's place in its user's [`OpenFiles`], given back when dropped (with the
/// file: a transfer holds both).
#[derive(Debug)]
pub(crate) struct OpenFile(Arc<OpenFiles>);

impl Drop for OpenFile {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Progress of one active transfer, shared between the transfer and the registry view.
#[derive(Debug)]
pub struct TransferStats {
    pub kind: TransferKind,
    /// Virtual path, as the client sees it.
    pub path: String,
    pub start_time: i64,
    pub bytes: AtomicU64,
    pub last_activity: AtomicI64,
}

impl TransferStats {
    pub fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        self.last_activity.store(now_ms(), Ordering::Relaxed);
    }
}

impl Connection {
    pub fn user(&self) -> &Arc<User> {
        &self.user
    }

    /// The server's metrics, for protocol adapters to count their requests.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.base.observers.metrics
    }

    pub fn username(&self) -> &str {
        &self.user.username
    }

    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }

    /// The client's SSH identification string; set once after the handshake.
    pub fn set_client_version(&self, version: String) {
        let _ = self.client_version.set(version);
    }

    pub fn client_version(&self) -> &str {
        self.client_version.get().map(String::as_str).unwrap_or("")
    }

    /// Whether a log line about one of this connection's requests may be written now
    /// (see `LogBudget`): adapters ask before logging what a client can repeat at will.
    pub fn may_log(&self) -> bool {
        self.base.shared.log.allow(&self.user.username)
    }

    /// Last activity of the connection or any of its sessions and their transfers, in ms
    /// since the epoch.
    pub fn last_activity(&self) -> i64 {
        let own = self.last_activity.load(Ordering::Relaxed);
        self.lock_sessions()
            .iter()
            .map(|s| s.last_activity())
            .fold(own, i64::max)
    }

    /// Fires when the connection must end (API kill, idle timeout, shutdown).
    pub fn closed(&self) -> &CancellationToken {
        &self.closer
    }

    /// Asks every task serving this connection to stop.
    pub fn close(&self) {
        self.closer.cancel();
    }

    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, Vec<Arc<ConnectionState>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a protocol session (one SSH channel's SFTP, SCP or command) with its own
    /// id (`<connection id>_<n>`), filesystem view (its requests in order, concurrently
    /// with the other sessions'), transfers and logs; listed by the API until dropped.
    pub fn open_session(self: &Arc<Self>, protocol: Protocol) -> ProtocolSession {
        let n = self.sessions_started.fetch_add(1, Ordering::Relaxed) + 1;
        let base = &self.base;
        let state = Arc::new(ConnectionState::new(
            format!("{}_{n}", self.id),
            self.user.clone(),
            protocol,
            base.observers.clone(),
            base.shared.clone(),
        ));
        let folders = base
            .folders
            .iter()
            .map(|(at, volume, quota)| (at.clone(), volume.session(), quota.clone()))
            .collect();
        let fs = UserFs::new(
            (base.volume.session(), base.quota.clone()),
            folders,
            state.clone(),
            base.settings.clone(),
        );
        self.lock_sessions().push(state.clone());
        self.metrics().protocol_session(protocol.as_str());
        ProtocolSession {
            id: state.id.clone(),
            state,
            fs,
            conn: self.clone(),
        }
    }

    /// The API's entries for this connection: one per session, or, with none open, one
    /// for the connection itself (protocol `SSH`).
    pub fn snapshots(&self) -> Vec<ConnectionSnapshot> {
        let sessions = self.lock_sessions().clone();
        if sessions.is_empty() {
            return vec![ConnectionSnapshot {
                username: self.username().to_string(),
                connection_id: self.id.clone(),
                client_version: self.client_version().to_string(),
                remote_address: self.remote_addr.to_string(),
                connection_time: self.connected_at,
                last_activity: self.last_activity(),
                protocol: Protocol::Ssh.as_str(),
                active_transfers: Vec::new(),
            }];
        }
        sessions
            .iter()
            .map(|s| ConnectionSnapshot {
                username: self.username().to_string(),
                connection_id: s.id.clone(),
                client_version: self.client_version().to_string(),
                remote_address: self.remote_addr.to_string(),
                connection_time: s.started_at,
                last_activity: s.last_activity(),
                protocol: s.protocol.as_str(),
                active_transfers: s.transfer_snapshots(),
            })
            .collect()
    }
}

/// One SSH channel's protocol session (SFTP, SCP or an SSH command): what protocol
/// adapters serve a channel through. Its filesystem view is its own (requests of one
/// session in order, sessions concurrent); it ends with its channel or its connection.
pub struct ProtocolSession {
    /// `<connection id>_<n>`: the id in logs and in the API's connection list.
    pub id: String,
    state: Arc<ConnectionState>,
    fs: UserFs,
    conn: Arc<Connection>,
}

impl ProtocolSession {
    pub fn fs(&self) -> &UserFs {
        &self.fs
    }

    pub fn protocol(&self) -> Protocol {
        self.state.protocol
    }

    pub fn connection(&self) -> &Arc<Connection> {
        &self.conn
    }

    pub fn user(&self) -> &Arc<User> {
        &self.state.user
    }

    pub fn username(&self) -> &str {
        &self.state.user.username
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.state.observers.metrics
    }

    pub fn remote_addr(&self) -> SocketAddr {
        self.conn.remote_addr
    }

    /// Records client activity, which postpones the connection's idle timeout.
    pub fn touch(&self) {
        self.state.touch();
    }

    /// See [`Connection::may_log`].
    pub fn may_log(&self) -> bool {
        self.state.may_log()
    }

    /// Fires when the connection must end.
    pub fn closed(&self) -> &CancellationToken {
        &self.conn.closer
    }

    /// Ends the whole connection (a session cannot outlive a refusal that concerns it).
    pub fn close(&self) {
        self.conn.close();
    }
}

impl Drop for ProtocolSession {
    fn drop(&mut self) {
        let last = self.state.last_activity();
        self.conn.last_activity.fetch_max(last, Ordering::Relaxed);
        self.conn
            .lock_sessions()
            .retain(|s| !Arc::ptr_eq(s, &self.state));
    }
}

/// The API's view of a connection (SFTPGo 0.9's ConnectionStatus).
#[derive(Debug, Clone)]
pub struct ConnectionSnapshot {
    pub username: String,
    pub connection_id: String,
    pub client_version: String,
    pub remote_address: String,
    pub connection_time: i64,
    pub last_activity: i64,
    pub protocol: &'static str,
    pub active_transfers: Vec<TransferSnapshot>,
}

#[derive(Debug, Clone)]
pub struct TransferSnapshot {
    pub operation_type: &'static str,
    pub path: String,
    pub start_time: i64,
    pub size: u64,
    pub last_activity: i64,
}

/// All live connections. Cloning shares the same registry.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<RegistryInner>>,
}

#[derive(Default)]
struct RegistryInner {
    connections: HashMap<String, Arc<Connection>>,
    sessions_per_user: HashMap<String, i64>,
    /// What each user's connections share, while any lives.
    shared: HashMap<String, Weak<UserShared>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, RegistryInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What `username`'s connections share (see [`UserShared`]): the live connections'
    /// one, or a new one (at most `max_open_files`) when there is none.
    pub(crate) fn user_shared(&self, username: &str, max_open_files: usize) -> Arc<UserShared> {
        let mut inner = self.lock();
        if let Some(shared) = inner.shared.get(username).and_then(Weak::upgrade) {
            return shared;
        }
        // Entries of users with no connection left go now, so the map stays as small
        // as the set of connected users.
        inner.shared.retain(|_, w| w.strong_count() > 0);
        let fresh = Arc::new(UserShared::new(username, max_open_files));
        inner
            .shared
            .insert(username.to_string(), Arc::downgrade(&fresh));
        fresh
    }

    /// Registers a new connection, refusing it when the user already holds `max_sessions`.
    /// Check and insert happen under one lock, so N racing logins for a limit of K admit K.
    pub(crate) fn register(
        &self,
        user: Arc<User>,
        remote_addr: SocketAddr,
        base: SessionBase,
    ) -> Result<ConnectionGuard, AuthError> {
        let id = new_connection_id();
        let conn = Arc::new(Connection {
            id: id.clone(),
            user: user.clone(),
            remote_addr,
            client_version: OnceLock::new(),
            connected_at: now_ms(),
            closer: CancellationToken::new(),
            last_activity: AtomicI64::new(now_ms()),
            base,
            sessions: Mutex::new(Vec::new()),
            sessions_started: AtomicU64::new(0),
        });
        let mut inner = self.lock();
        let count = inner
            .sessions_per_user
            .entry(user.username.clone())
            .or_insert(0);
        if user.max_sessions > 0 && *count >= user.max_sessions {
            return Err(AuthError::TooManySessions(user.max_sessions));
        }
        *count += 1;
        inner.connections.insert(id.clone(), conn.clone());
        Ok(ConnectionGuard {
            conn,
            registry: self.clone(),
            id,
        })
    }

    fn unregister(&self, id: &str) {
        let mut inner = self.lock();
        if let Some(conn) = inner.connections.remove(id) {
            let name = conn.username();
            if let Some(count) = inner.sessions_per_user.get_mut(name) {
                *count -= 1;
                if *count <= 0 {
                    inner.sessions_per_user.remove(name);
                }
            }
        }
    }

    /// The API's entries: one per protocol session of every live connection (see
    /// [`Connection::snapshots`]), ordered by start time.
    pub fn list(&self) -> Vec<ConnectionSnapshot> {
        let conns: Vec<Arc<Connection>> = self.lock().connections.values().cloned().collect();
        let mut out: Vec<ConnectionSnapshot> = conns.iter().flat_map(|c| c.snapshots()).collect();
        out.sort_by_key(|c| c.connection_time);
        out
    }

    /// The connection with this id, or whose session has this id (`<id>_<n>`).
    pub fn get(&self, id: &str) -> Option<Arc<Connection>> {
        let conn_id = id.split_once('_').map_or(id, |(c, _)| c);
        self.lock().connections.get(conn_id).cloned()
    }

    /// Closes a connection by its id or one of its sessions' ids (the whole SSH
    /// connection ends: a client an operator kicks is kicked); false if there is none.
    pub fn close(&self, id: &str) -> bool {
        match self.get(id) {
            Some(conn) => {
                tracing::info!(
                    sender = "connection",
                    connection_id = conn.id,
                    requested_id = id,
                    username = conn.username(),
                    "closing connection on request"
                );
                conn.close();
                true
            }
            None => false,
        }
    }

    /// Asks every connection to close (shutdown).
    pub fn close_all(&self) {
        for conn in self.lock().connections.values() {
            conn.close();
        }
    }

    pub fn len(&self) -> usize {
        self.lock().connections.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of live connections of `username`.
    pub fn sessions_of(&self, username: &str) -> i64 {
        self.lock()
            .sessions_per_user
            .get(username)
            .copied()
            .unwrap_or(0)
    }
}

/// Keeps a connection registered; dropping it unregisters the connection.
pub struct ConnectionGuard {
    conn: Arc<Connection>,
    registry: Registry,
    pub id: String,
}

impl ConnectionGuard {
    pub fn connection(&self) -> &Arc<Connection> {
        &self.conn
    }
}

impl std::ops::Deref for ConnectionGuard {
    type Target = Arc<Connection>;
    fn deref(&self) -> &Arc<Connection> {
        &self.conn
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.conn.close();
        self.registry.unregister(&self.id);
        tracing::debug!(sender = "connection", connection_id = %self.id, username = self.conn.username(), "connection closed");
    }
}

pub(crate) fn new_connection_id() -> String {
    use std::fmt::Write;
    let bytes: [u8; 16] = rand::random();
    let mut s = String::with_capacity(32);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Settings;

    fn register(
        registry: &Registry,
        user: &Arc<User>,
        home: &std::path::Path,
    ) -> Result<ConnectionGuard, AuthError> {
        let volume = crate::storage::Volume::Local(Arc::new(sftpgo_vfs::Root::open(home).unwrap()));
        let provider = sftpgo_provider::DataProvider::new(
            Arc::new(sftpgo_provider::memory::MemoryBackend::new()),
            true,
            sftpgo_provider::TrackQuota::Always,
        );
        let quota =
            crate::quota::QuotaKeeper::new(&crate::quota::Ledger::new(provider), user.clone());
        let base = SessionBase {
            volume,
            settings: Settings::default(),
            quota,
            folders: Vec::new(),
            observers: Observers::default(),
            shared: registry.user_shared(&user.username, 0),
        };
        registry.register(user.clone(), "127.0.0.1:1".parse().unwrap(), base)
    }

    #[test]
    fn concurrent_logins_admit_exactly_max_sessions() {
        let home = tempfile::tempdir().unwrap();
        let user = Arc::new(User {
            username: "u".into(),
            max_sessions: 3,
            ..Default::default()
        });
        let registry = Registry::default();
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..32)
                .map(|_| s.spawn(|| register(&registry, &user, home.path())))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let admitted: Vec<_> = results.into_iter().filter_map(Result::ok).collect();
        assert_eq!(admitted.len(), 3);
        assert_eq!(registry.sessions_of("u"), 3);
        assert!(matches!(
            register(&registry, &user, home.path()),
            Err(AuthError::TooManySessions(3))
        ));
        drop(admitted);
        assert_eq!(registry.sessions_of("u"), 0);
        assert!(registry.is_empty());
        assert!(register(&registry, &user, home.path()).is_ok());
    }

    #[test]
    fn close_by_id_cancels_the_connection() {
        let home = tempfile::tempdir().unwrap();
        let user = Arc::new(User {
            username: "u".into(),
            ..Default::default()
        });
        let registry = Registry::default();
        let guard = register(&registry, &user, home.path()).unwrap();
        assert_eq!(registry.list().len(), 1);
        assert_eq!(registry.list()[0].protocol, "SSH");
        assert!(!registry.close("nope"));
        assert!(registry.close(&guard.id));
        assert!(guard.closed().is_cancelled());
    }

    /// A request's task is as large as the largest filesystem call it may make, and is
    /// moved when spawned: every call stays within 2 KiB (an upload's open boxes its
    /// storage call, the largest; an S3 call's future, kilobytes, is boxed in `AnyFs`).
    #[tokio::test]
    async fn filesystem_calls_stay_small() {
        use crate::fs::{HashAlgorithm, HashRange, SetAttrs, UploadFlags};
        let home = tempfile::tempdir().unwrap();
        let user = Arc::new(User {
            username: "u".into(),
            permissions: vec![sftpgo_provider::Permission::Any],
            ..Default::default()
        });
        let registry = Registry::default();
        let guard = register(&registry, &user, home.path()).unwrap();
        let session = guard.open_session(Protocol::Sftp);
        let fs = session.fs();
        let p = sftpgo_vfs::VirtualPath::parse(b"/f").unwrap();
        let t = fs
            .open_upload(
                &p,
                UploadFlags {
                    create: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let range = HashRange {
            offset: 0,
            length: 0,
            block_size: 0,
        };
        let sizes = [
            ("stat", std::mem::size_of_val(&fs.stat(&p))),
            ("read_dir", std::mem::size_of_val(&fs.read_dir(&p))),
            ("remove", std::mem::size_of_val(&fs.remove(&p))),
            ("rename", std::mem::size_of_val(&fs.rename(&p, &p, true))),
            (
                "set_attrs",
                std::mem::size_of_val(&fs.set_attrs(&p, SetAttrs::default())),
            ),
            (
                "open_download",
                std::mem::size_of_val(&fs.open_download(&p)),
            ),
            (
                "open_upload",
                std::mem::size_of_val(&fs.open_upload(&p, UploadFlags::default())),
            ),
            (
                "checksum",
                std::mem::size_of_val(&fs.checksum(&p, HashAlgorithm::Md5, range)),
            ),
            (
                "read_at",
                std::mem::size_of_val(&t.read_at(0, 1, bytes::BytesMut::new())),
            ),
            (
                "write",
                std::mem::size_of_val(&t.write_vectored_at(0, Vec::new())),
            ),
            ("copy_to", std::mem::size_of_val(&t.copy_to(&t, 0, 0, 0))),
            ("close", std::mem::size_of_val(&t.close(true))),
        ];
        eprintln!("{sizes:?}");
        for (name, size) in sizes {
            assert!(size <= 2048, "{name}: {size} bytes");
        }
    }

    #[test]
    fn each_session_is_listed_with_its_own_protocol_and_closes_the_connection() {
        let home = tempfile::tempdir().unwrap();
        let user = Arc::new(User {
            username: "u".into(),
            max_sessions: 1,
            ..Default::default()
        });
        let registry = Registry::default();
        let guard = register(&registry, &user, home.path()).unwrap();
        let sftp = guard.open_session(Protocol::Sftp);
        let scp = guard.open_session(Protocol::Scp);
        assert_eq!(sftp.id, format!("{}_1", guard.id));
        assert_eq!(scp.id, format!("{}_2", guard.id));
        let list = registry.list();
        let protocols: Vec<_> = list
            .iter()
            .map(|c| (c.connection_id.clone(), c.protocol))
            .collect();
        assert_eq!(
            protocols,
            vec![(sftp.id.clone(), "SFTP"), (scp.id.clone(), "SCP")]
        );
        // Sessions are not connections: max_sessions still counts the SSH connection.
        assert_eq!(registry.sessions_of("u"), 1);
        drop(sftp);
        assert_eq!(registry.list().len(), 1);
        assert_eq!(registry.list()[0].protocol, "SCP");
        // Closing by a session's id ends the connection.
        assert!(registry.close(&scp.id));
        assert!(guard.closed().is_cancelled());
        drop(scp);
        assert_eq!(registry.list()[0].protocol, "SSH");
    }
}
