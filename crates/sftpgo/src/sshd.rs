//! The SSH server (russh): algorithms, login timeout, authentication through the shared
//! layer, and channel dispatch: each `session` channel becomes one protocol session of
//! the connection, the `sftp` subsystem ([`SshHandler::subsystem_request`]) or an SSH
//! command, SCP included ([`SshHandler::exec_request`], `sftpgo_sshcmd`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use russh::keys::{Algorithm, PrivateKey, PublicKey};
use russh::server::{Auth, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelMsg, MethodKind, MethodSet, Preferred};
use sftpgo_core::defender::HostEvent;
use sftpgo_core::{Connection, ConnectionGuard, Core, Protocol, ProtocolSession};
use sftpgo_sftp::{ChunkSource, Limits};
use tokio::net::{TcpListener, TcpStream};

use crate::algorithms::Algorithms;
use crate::conn_threads::ConnectionThreads;
use crate::read_ahead::Sever;
use std::future::Future;
use std::os::fd::AsRawFd;
use std::task::Poll;
use tokio::sync::Semaphore;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// SSH settings derived from the `sftpd` config section.
#[derive(Debug, Clone)]
pub struct SshSettings {
    /// Full identification string: `SSH-2.0-<banner>`.
    pub server_id: String,
    /// `None` = unlimited.
    pub max_auth_tries: Option<u32>,
    /// A connection not authenticated by then is closed.
    pub login_timeout: Duration,
    pub idle_timeout: Option<Duration>,
    /// Bytes after which keys are renegotiated (tests lower it to exercise rekeying).
    pub rekey_bytes: usize,
    pub sftp: Limits,
    /// Channels one SSH connection may have open at once (OpenSSH's `MaxSessions`).
    pub max_channels: usize,
    /// Key exchanges, ciphers, MACs and host key algorithms offered, in order.
    pub algorithms: Algorithms,
    /// The SSH commands (SCP included) `exec` requests may run.
    pub commands: sftpgo_sshcmd::EnabledCommands,
}

impl Default for SshSettings {
    fn default() -> Self {
        Self {
            server_id: "SSH-2.0-SFTPGo".into(),
            max_auth_tries: Some(6),
            login_timeout: Duration::from_secs(120),
            idle_timeout: Some(Duration::from_secs(15 * 60)),
            rekey_bytes: 1 << 30,
            sftp: Limits::default(),
            max_channels: 10,
            algorithms: Algorithms::default(),
            // The config's defaults (one list, in `sftpgo_config`).
            commands: sftpgo_sshcmd::EnabledCommands::new(
                &sftpgo_config::SftpdConfig::default().enabled_ssh_commands,
                false,
            )
            .unwrap_or_default(),
        }
    }
}

/// Channel messages russh holds for a session that is not taking them (each up to our
/// 64 KiB packet size): past this, russh stops reading the connection. It was 1,024 (64 MiB
/// per channel for a client that sends and never reads the replies); 128 is at most
/// 8 MiB (4 MiB of OpenSSH's 32 KiB messages). The session reads its channel ahead of
/// what it serves (`MAX_UNFRAMED`), so this fills only in bursts and once that is full;
/// 32 cost uploads ~8% (russh's loop waited on the session more often).
const CHANNEL_BUFFER: usize = 128;

fn auth_methods() -> MethodSet {
    let mut methods = MethodSet::empty();
    methods.push(MethodKind::PublicKey);
    methods.push(MethodKind::Password);
    methods
}

fn russh_config(settings: &SshSettings, host_keys: Vec<PrivateKey>) -> russh::server::Config {
    russh::server::Config {
        server_id: russh::SshId::Standard(Cow::Owned(settings.server_id.clone())),
        methods: auth_methods(),
        // Failed attempts are slowed by the password hash itself; the client's first
        // "none" probe must not cost a second.
        auth_rejection_time: Duration::from_millis(100),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: host_keys,
        limits: russh::Limits::new(
            settings.rekey_bytes,
            settings.rekey_bytes,
            Duration::from_secs(3600),
        ),
        window_size: 16 * 1024 * 1024,
        maximum_packet_size: 65536,
        channel_buffer_size: CHANNEL_BUFFER,
        event_buffer_size: 256,
        preferred: Preferred {
            kex: Cow::Owned(settings.algorithms.offered_kex()),
            key: Cow::Owned(settings.algorithms.host_keys.clone()),
            cipher: Cow::Owned(settings.algorithms.ciphers.clone()),
            mac: Cow::Owned(settings.algorithms.macs.clone()),
            ..Preferred::DEFAULT
        },
        max_auth_attempts: settings
            .max_auth_tries
            .map(|n| n as usize)
            .unwrap_or(usize::MAX),
        // Idle handling is ours (seconds granularity, activity = SFTP requests).
        inactivity_timeout: None,
        keepalive_interval: None,
        nodelay: true,
        ..Default::default()
    }
}

/// Shared by every connection of the server.
pub struct SshServer {
    core: Core,
    /// Swapped whole on reload (new host keys); each connection keeps the one it began with.
    config: std::sync::RwLock<Arc<russh::server::Config>>,
    settings: SshSettings,
}

impl SshServer {
    pub fn new(core: Core, host_keys: Vec<PrivateKey>, settings: SshSettings) -> Self {
        let config = russh_config(&settings, host_keys);
        Self {
            core,
            config: std::sync::RwLock::new(Arc::new(config)),
            settings,
        }
    }

    fn current_config(&self) -> Arc<russh::server::Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// New connections use `host_keys` from now on; open ones are not disturbed.
    pub fn set_host_keys(&self, host_keys: Vec<PrivateKey>) {
        let next = Arc::new(russh_config(&self.settings, host_keys));
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = next;
    }

    /// Accepts connections until `shutdown` fires. Connection tasks are tracked by `tracker`.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.cancelled() => break,
            };
            match accepted {
                Ok((stream, peer)) => {
                    // The limits are checked before any handshake work; a refused
                    // connection is closed at once (dropping the stream).
                    let admitted = match self.core.admission().admit(peer.ip()) {
                        Ok(a) => a,
                        Err(refusal) => {
                            tracing::info!(sender = "sftpd", remote_addr = %peer, reason = %refusal, "connection refused");
                            self.core.metrics().connection_refused(refusal.as_str());
                            self.core
                                .defender()
                                .record_soon(peer.ip(), HostEvent::LimitExceeded);
                            continue;
                        }
                    };
                    // The connection moves to its own thread (see `conn_threads`): the
                    // socket leaves this runtime's reactor and joins that thread's.
                    let stream = match stream.into_std() {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(sender = "sftpd", remote_addr = %peer, error = %e, "cannot hand the connection over");
                            continue;
                        }
                    };
                    let server = self.clone();
                    // The body runs on the connection thread, so the socket registers there.
                    ConnectionThreads::global().spawn(tracker.track_future(async move {
                        let _admitted = admitted;
                        // Banned and blocklisted clients are refused before the handshake:
                        // the socket is closed without a word.
                        if let Err(refusal) = server.core.defender().check(peer.ip()).await {
                            if let Some(suppressed) = server.core.defender().may_log_refusal() {
                                tracing::info!(sender = "sftpd", remote_addr = %peer, reason = %refusal, suppressed_since_last = suppressed, "connection refused by the defender");
                            }
                            return;
                        }
                        match TcpStream::from_std(stream) {
                            Ok(stream) => server.handle_connection(stream, peer).await,
                            Err(e) => {
                                tracing::warn!(sender = "sftpd", remote_addr = %peer, error = %e, "cannot take the connection over")
                            }
                        }
                    }));
                }
                Err(e) => {
                    tracing::warn!(sender = "sftpd", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn handle_connection(self: Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(sender = "sftpd", error = %e, "set_nodelay failed");
        }
        tracing::debug!(sender = "sftpd", remote_addr = %peer, "connection accepted");
        self.core.metrics().connection_accepted();
        let (conn_tx, conn_rx) = oneshot::channel();
        // Ends the socket when the session cannot be made to end politely, and tells a
        // session waiting on the client whether it is gone (see `Sever`).
        let sever = Arc::new(Sever::for_socket(stream.as_raw_fd()));
        let handler = SshHandler {
            server: self.clone(),
            peer,
            guard: None,
            conn_tx: Some(conn_tx),
            channels: HashMap::new(),
            open_channels: Default::default(),
            sever: sever.clone(),
            budget: Arc::new(Semaphore::new(self.settings.sftp.in_flight_budget())),
            attempts: LoginAttempts::default(),
        };
        let login_timeout = self.settings.login_timeout;
        // One deadline from accept to login, whatever the handshake's state.
        let login_deadline = tokio::time::Instant::now() + login_timeout;
        // Boxed: the handshake's state (the session being built) is freed once it is done,
        // instead of sizing this task, which lives as long as the connection, for it.
        let handshake = Box::pin(russh::server::run_stream(
            self.current_config(),
            crate::read_ahead::ReadAhead::new(stream, sever.clone()),
            handler,
        ));
        let session = tokio::time::timeout_at(login_deadline, handshake).await;
        let mut session = match session {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(sender = "sftpd", remote_addr = %peer, error = %e, "SSH handshake failed");
                return;
            }
            Err(_) => {
                tracing::warn!(sender = "sftpd", remote_addr = %peer, "no SSH identification within the login timeout");
                return;
            }
        };
        let handle = session.handle();
        // Until login: the session, bounded by the login timeout.
        let conn = tokio::select! {
            res = &mut session => {
                log_session_end(peer, res);
                return;
            }
            conn = conn_rx => match conn {
                Ok(c) => c,
                Err(_) => { let _ = (&mut session).await; return; }
            },
            _ = tokio::time::sleep_until(login_deadline) => {
                tracing::warn!(sender = "sftpd", remote_addr = %peer, timeout_secs = login_timeout.as_secs(), "login timeout, closing connection");
                let _ = handle.disconnect(russh::Disconnect::ByApplication, "login timeout".into(), "en".into()).await;
                end_session(&mut session, &sever).await;
                return;
            }
        };
        // Logged in: the session, until it ends, is killed, or idles out.
        loop {
            let idle_deadline = self.settings.idle_timeout.map(|t| {
                let last = conn.last_activity();
                let elapsed = Duration::from_millis((sftpgo_core::now_ms() - last).max(0) as u64);
                tokio::time::Instant::now() + t.saturating_sub(elapsed)
            });
            tokio::select! {
                res = &mut session => {
                    log_session_end(peer, res);
                    return;
                }
                _ = conn.closed().cancelled() => break,
                _ = sleep_until_opt(idle_deadline) => {
                    let idle = self.settings.idle_timeout.unwrap_or_default();
                    if sftpgo_core::now_ms() - conn.last_activity() >= idle.as_millis() as i64 {
                        tracing::info!(sender = "sftpd", connection_id = %conn.id, username = conn.username(), idle_secs = idle.as_secs(), "idle timeout, closing connection");
                        conn.close();
                        break;
                    }
                }
            }
        }
        let _ = handle
            .disconnect(
                russh::Disconnect::ByApplication,
                "connection closed by the server".into(),
                "en".into(),
            )
            .await;
        end_session(&mut session, &sever).await;
    }
}

/// How long a session asked to disconnect has to end by itself before its socket is cut.
const DISCONNECT_GRACE: Duration = Duration::from_secs(2);

/// Waits for a session asked to disconnect to end; one that does not (a client stalled
/// mid key exchange, or not reading what is sent to it) has its socket cut, which ends it.
async fn end_session<S: std::future::Future + Unpin>(session: &mut S, sever: &Sever) {
    if tokio::time::timeout(DISCONNECT_GRACE, &mut *session)
        .await
        .is_err()
    {
        tracing::debug!(
            sender = "sftpd",
            "session did not end after disconnect, closing its socket"
        );
        sever.sever();
        let _ = tokio::time::timeout(DISCONNECT_GRACE, session).await;
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn log_session_end(peer: SocketAddr, res: Result<(), russh::Error>) {
    match res {
        Ok(()) => tracing::debug!(sender = "sftpd", remote_addr = %peer, "SSH session ended"),
        Err(e) => {
            tracing::debug!(sender = "sftpd", remote_addr = %peer, error = %e, "SSH session ended with an error")
        }
    }
}

/// Per-connection russh handler.
struct SshHandler {
    server: Arc<SshServer>,
    peer: SocketAddr,
    /// Holds the registration of the logged-in connection; dropped with the handler.
    guard: Option<ConnectionGuard>,
    conn_tx: Option<oneshot::Sender<Arc<Connection>>>,
    /// Channels opened and not yet given to a subsystem.
    channels: HashMap<ChannelId, Channel<Msg>>,
    /// Every channel open now (subsystems' included), bounded by `max_channels`.
    open_channels: std::collections::HashSet<ChannelId>,
    sever: Arc<Sever>,
    /// The bytes of request data and replies this connection's sessions hold at once
    /// (see `Limits::in_flight_bytes`), shared by its channels.
    budget: Arc<Semaphore>,
    /// What the defender learns when the connection ends without a login.
    attempts: LoginAttempts,
}

/// A connection's login attempts, told to the defender when it ends without a login:
/// refused keys count once (a client offers its keys one by one before its password),
/// a connection that tried nothing counts as `NoLoginTried`. Failed passwords are
/// scored by the shared layer as they happen.
#[derive(Debug, Default)]
struct LoginAttempts {
    password_tried: bool,
    key_refused: Option<HostEvent>,
    key_tried: bool,
}

impl Drop for SshHandler {
    fn drop(&mut self) {
        if self.guard.is_some() {
            return;
        }
        let a = &self.attempts;
        let event = match a.key_refused {
            Some(event) if !a.password_tried => event,
            _ if !a.password_tried && !a.key_tried => HostEvent::NoLoginTried,
            _ => return,
        };
        self.server
            .core
            .defender()
            .record_soon(self.peer.ip(), event);
    }
}

impl SshHandler {
    fn reject() -> Auth {
        Auth::Reject {
            proceed_with_methods: Some(auth_methods()),
            partial_success: false,
        }
    }

    fn logged_in(&mut self, guard: ConnectionGuard) -> Auth {
        if let Some(tx) = self.conn_tx.take() {
            let _ = tx.send(guard.connection().clone());
        }
        self.guard = Some(guard);
        Auth::Accept
    }

    fn connection(&self) -> Option<&Arc<Connection>> {
        self.guard.as_ref().map(|g| g.connection())
    }

    /// Whether a line about a channel request may be logged (the user's log budget, see
    /// `Connection::may_log`): a client can repeat those at will.
    fn may_log(&self) -> bool {
        self.connection().is_none_or(|c| c.may_log())
    }
}

/// SHA-1 `ssh-rsa` signatures are refused: only rsa-sha2-256/512 for RSA keys.
fn acceptable_user_key_algorithm(algorithm: &Algorithm) -> bool {
    !matches!(algorithm, Algorithm::Rsa { hash: None })
}

/// The futures of these methods are fields of russh's session future, which every
/// connection holds for its whole life; the login calls (data provider queries, password
/// hashing) are boxed so that their state is allocated while they run, not in every idle
/// session (2 KiB per session, heaptrack of 300 idle sessions).
impl russh::server::Handler for SshHandler {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Self::reject())
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        self.attempts.password_tried = true;
        let login = self.server.core.login_password(user, password, self.peer);
        match Box::pin(login).await {
            Ok(guard) => Ok(self.logged_in(guard)),
            Err(_) => Ok(Self::reject()),
        }
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        self.attempts.key_tried = true;
        if !acceptable_user_key_algorithm(offer.algorithm) {
            return Ok(Self::reject());
        }
        match Box::pin(self.server.core.accepts_public_key(user, offer.public_key)).await {
            Ok(()) => Ok(Auth::Accept),
            Err(e) => {
                if let Some(event) = e.host_event() {
                    self.attempts.key_refused = Some(event);
                }
                Ok(Self::reject())
            }
        }
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if !acceptable_user_key_algorithm(key.algorithm) {
            tracing::warn!(sender = "auth", username = user, remote_addr = %self.peer, method = "publickey", reason = "ssh-rsa (SHA-1) signatures are not accepted", "login failed");
            return Ok(Self::reject());
        }
        let public: &PublicKey = key.public_key;
        let login = self.server.core.login_public_key(user, public, self.peer);
        match Box::pin(login).await {
            Ok(guard) => Ok(self.logged_in(guard)),
            Err(_) => Ok(Self::reject()),
        }
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        let version = String::from_utf8_lossy(session.remote_sshid()).into_owned();
        if let Some(conn) = self.connection() {
            conn.set_client_version(version);
        }
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let max = self.server.settings.max_channels;
        if self.open_channels.len() >= max {
            if self.may_log() {
                tracing::info!(sender = "sftpd", remote_addr = %self.peer, max_channels = max, "channel refused: too many open on this connection");
            }
            reply
                .reject(russh::ChannelOpenFailure::ResourceShortage)
                .await;
            return Ok(());
        }
        self.open_channels.insert(channel.id());
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        self.open_channels.remove(&channel);
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel_id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(conn), true) = (self.connection().cloned(), name == "sftp") else {
            if self.may_log() {
                tracing::info!(sender = "sftpd", remote_addr = %self.peer, subsystem = name, "subsystem refused");
            }
            session.channel_failure(channel_id)?;
            return Ok(());
        };
        let Some(channel) = self.channels.remove(&channel_id) else {
            session.channel_failure(channel_id)?;
            return Ok(());
        };
        session.channel_success(channel_id)?;
        let sftp = Arc::new(conn.open_session(Protocol::Sftp));
        let limits = self
            .server
            .settings
            .sftp
            .for_home(sftp.fs().home_capabilities());
        tokio::spawn(run_sftp(
            sftp,
            channel,
            limits,
            self.sever.clone(),
            self.budget.clone(),
        ));
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel_id: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(conn), Some(channel)) = (
            self.connection().cloned(),
            self.channels.remove(&channel_id),
        ) else {
            session.channel_failure(channel_id)?;
            return Ok(());
        };
        // Accepted either way: a refused command gets its reason on stderr and an exit
        // status, which every client shows (a failed request shows nothing useful).
        session.channel_success(channel_id)?;
        let command = sftpgo_sshcmd::Command::parse(data, &self.server.settings.commands);
        if self.may_log() {
            let line = String::from_utf8_lossy(&data[..data.len().min(1024)]).into_owned();
            match &command {
                Ok(c) => {
                    tracing::info!(sender = "sftpd", connection_id = %conn.id, username = conn.username(), command = %line, protocol = c.protocol().as_str(), "SSH command")
                }
                Err(e) => {
                    tracing::info!(sender = "sftpd", connection_id = %conn.id, username = conn.username(), command = %line, reason = %e, "SSH command refused")
                }
            }
        }
        let sever = self.sever.clone();
        tokio::spawn(async move {
            let (read, write) = channel.split();
            let mut io = CommandChannel {
                read,
                write: &write,
                conn: conn.clone(),
                sever,
                never_full: Default::default(),
            };
            let status = match command {
                Ok(command) => {
                    let session = Arc::new(conn.open_session(command.protocol()));
                    sftpgo_sshcmd::run(session, command, io).await
                }
                Err(refusal) => {
                    let msg = format!("sftpgo: {refusal}\n");
                    let _ =
                        sftpgo_sshcmd::ByteChannel::send_stderr(&mut io, Bytes::from(msg)).await;
                    refusal.exit_status()
                }
            };
            finish_channel(&conn, &write, status).await;
        });
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.may_log() {
            tracing::info!(sender = "sftpd", remote_addr = %self.peer, "shell request refused");
        }
        session.channel_failure(channel)?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn agent_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        session.channel_failure(channel)?;
        Ok(false)
    }
}

/// Channel data in, as the SFTP session wants it.
struct ChannelSource(russh::ChannelReadHalf);

impl ChunkSource for ChannelSource {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            match self.0.wait().await? {
                ChannelMsg::Data { data } => return Some(data),
                ChannelMsg::Eof | ChannelMsg::Close => return None,
                _ => continue,
            }
        }
    }
}

/// Runs one SFTP session: the session reads, a separate task writes replies. Both end
/// when the connection does (see [`send_reply`]).
async fn run_sftp(
    conn: Arc<ProtocolSession>,
    channel: Channel<Msg>,
    limits: Limits,
    sever: Arc<Sever>,
    budget: Arc<Semaphore>,
) {
    let (read_half, write_half) = channel.split();
    let (tx, mut rx) = sftpgo_sftp::replies(&limits, budget);
    let writer_conn = conn.clone();
    let input_full = rx.input_full();
    let writer = tokio::spawn(async move {
        let conn = writer_conn;
        let mut pending: Option<Bytes> = None;
        loop {
            let first = match pending.take() {
                Some(b) => b,
                None => match rx.recv().await {
                    Some(b) => b,
                    None => break,
                },
            };
            // Requests whose results arrived together run one after the other on this
            // thread, each waking this task right after its reply: let them all reply
            // first, so their replies leave in one SSH packet and one TCP write instead
            // of one each. A lone reply (no other request being served: a client that
            // waits for each answer) goes at once; yielding would only cost it a turn of
            // the reactor (an `epoll_wait`).
            if rx.is_empty() && first.len() < COALESCE_SMALL && rx.more_coming() {
                tokio::task::yield_now().await;
            }
            let (reply, rest) = coalesce(first, &mut rx);
            pending = rest;
            if !send_reply(
                conn.connection(),
                &sever,
                &input_full,
                write_half.data_bytes(reply),
            )
            .await
            {
                break;
            }
        }
        finish_channel(conn.connection(), &write_half, 0).await;
    });
    tracing::debug!(sender = "sftpd", connection_id = %conn.id, username = conn.username(), "SFTP session started");
    let _ = sftpgo_sftp::serve(conn.clone(), ChannelSource(read_half), tx, limits).await;
    let _ = writer.await;
    tracing::debug!(sender = "sftpd", connection_id = %conn.id, "SFTP session ended");
}

/// Ends a session's channel: exit status, EOF, close (unless the connection is ending).
async fn finish_channel(conn: &Connection, write: &russh::ChannelWriteHalf<Msg>, exit_status: u32) {
    if conn.closed().is_cancelled() {
        return;
    }
    let end = async {
        let _ = write.exit_status(exit_status).await;
        let _ = write.eof().await;
        let _ = write.close().await;
    };
    tokio::select! {
        _ = end => {}
        _ = conn.closed().cancelled() => {}
    }
}

/// An SSH command's channel as a byte stream (see `sftpgo_sshcmd::ByteChannel`): reads
/// end with the channel or the connection, sends wait for the client's window as SFTP
/// replies do ([`send_reply`]).
struct CommandChannel<'a> {
    read: russh::ChannelReadHalf,
    write: &'a russh::ChannelWriteHalf<Msg>,
    conn: Arc<Connection>,
    sever: Arc<Sever>,
    /// A byte stream has no request queue that could fill: only the client's window and
    /// its presence are watched (made once, not per send).
    never_full: sftpgo_sftp::InputFull,
}

impl sftpgo_sshcmd::ByteChannel for CommandChannel<'_> {
    async fn recv(&mut self) -> Option<Bytes> {
        loop {
            let msg = tokio::select! {
                m = self.read.wait() => m?,
                _ = self.conn.closed().cancelled() => return None,
            };
            match msg {
                ChannelMsg::Data { data } => return Some(data),
                ChannelMsg::Eof | ChannelMsg::Close => return None,
                _ => continue,
            }
        }
    }

    async fn send(&mut self, data: Bytes) -> bool {
        // A byte stream has no request queue that could fill: only the client's window
        // and its presence are watched.
        send_reply(
            &self.conn,
            &self.sever,
            &self.never_full,
            self.write.data_bytes(data),
        )
        .await
    }

    async fn send_stderr(&mut self, data: Bytes) -> bool {
        send_reply(
            &self.conn,
            &self.sever,
            &self.never_full,
            self.write.extended_data_bytes(1, data),
        )
        .await
    }
}

/// How often a reply waiting to be sent checks whether the client is still there.
const PEER_CHECK: Duration = Duration::from_secs(1);

/// How long a client may leave a reply waiting (its window closed) while the session
/// cannot read its requests either, before the connection is closed.
const STALLED_CLIENT: Duration = Duration::from_secs(15);

/// Sends a reply (the `data_bytes` future of the channel); false if it cannot be sent.
///
/// Sending waits for the client to open its window, which a client that stopped reading
/// never does; and while replies wait, the session takes no new requests, russh waits to
/// hand it the ones already received and stops reading the socket, so the client's
/// disconnect is seen by nobody. A send that waits is therefore also ended by the
/// connection's end (`closed`) and by the client going away (checked on the socket every
/// [`PEER_CHECK`]), which closes the connection: every wait of its sessions ends with it.
///
/// The socket does not always show it: a client that closes while its requests fill our
/// receive buffer leaves its FIN queued behind them, and our side stays established (the
/// kernel answers its zero-window probes) for as long as neither reads. A client that
/// leaves a reply waiting [`STALLED_CLIENT`] while the session cannot read its requests
/// either (`input_full`) is gone or hostile: no client that reads its replies is.
async fn send_reply(
    conn: &Connection,
    sever: &Sever,
    input_full: &sftpgo_sftp::InputFull,
    send: impl Future<Output = Result<(), russh::Error>>,
) -> bool {
    let mut send = std::pin::pin!(send);
    // Most sends complete at once: the watch (a timer) is only set up for one that waits.
    if let Poll::Ready(res) = std::future::poll_fn(|cx| Poll::Ready(send.as_mut().poll(cx))).await {
        return res.is_ok();
    }
    // The first check a period from now (an interval's immediate first tick would cost
    // the send a turn of the timer, ~1 ms: downloads ran 20% slower).
    let mut check = tokio::time::interval_at(tokio::time::Instant::now() + PEER_CHECK, PEER_CHECK);
    // Since when the session's input has been full while this reply waited.
    let mut full_since: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            res = &mut send => return res.is_ok(),
            _ = conn.closed().cancelled() => return false,
            _ = check.tick() => {
                if sever.peer_gone() {
                    tracing::info!(sender = "sftpd", connection_id = %conn.id, username = conn.username(), remote_addr = %conn.remote_addr(), "client gone while replies were waiting for it, closing the connection");
                    conn.close();
                    return false;
                }
                full_since = if input_full.get() { full_since.or(Some(tokio::time::Instant::now())) } else { None };
                if full_since.is_some_and(|t| t.elapsed() >= STALLED_CLIENT) {
                    tracing::warn!(sender = "sftpd", connection_id = %conn.id, username = conn.username(), remote_addr = %conn.remote_addr(), stalled_secs = STALLED_CLIENT.as_secs(), "client reads no replies and keeps sending requests, closing the connection");
                    conn.close();
                    return false;
                }
            }
        }
    }
}

/// Replies shorter than this are gathered into one channel message (see [`coalesce`]).
const COALESCE_SMALL: usize = 4096;

/// Small replies waiting together go out in one channel message (fewer SSH packets for
/// metadata-heavy work); large ones are passed on without a copy. Returns the message to
/// send and a large reply taken from the queue that must go out next.
fn coalesce(first: Bytes, rx: &mut sftpgo_sftp::Replies) -> (Bytes, Option<Bytes>) {
    const MAX: usize = 32 * 1024;
    if first.len() >= COALESCE_SMALL || rx.is_empty() {
        return (first, None);
    }
    let mut acc = BytesMut::with_capacity(MAX);
    acc.extend_from_slice(&first);
    while acc.len() < MAX {
        match rx.try_recv() {
            Some(next) if next.len() < COALESCE_SMALL => acc.extend_from_slice(&next),
            Some(next) => return (acc.freeze(), Some(next)),
            None => break,
        }
    }
    (acc.freeze(), None)
}
