//! One SFTP session: reads packets from the channel, serves many requests at once
//! (clients keep dozens in flight), and writes the replies in the order the requests
//! came (see [`Replies`]). Reading and writing never wait on each other, so a
//! server-side rekey cannot deadlock the session.
//!
//! This adapter only translates: permissions, confinement, transfers and logging are the
//! shared layer's ([`sftpgo_core`]).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use sftpgo_core::fs::UploadFlags;
use sftpgo_core::{FsError, HashAlgorithm, HashRange, ProtocolSession, SetAttrs, Transfer};
use sftpgo_vfs::{DirEntry, FileStat, VirtualPath};
use tokio::sync::{OwnedSemaphorePermit, RwLock, Semaphore, mpsc};

use crate::codec::{self, DecodeError, Extended, FileAttrs, Frame, PacketReader, Request};

/// Limits advertised through `limits@openssh.com`. Without them OpenSSH falls back to
/// 32 KiB requests, which costs most of the throughput.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_packet_len: u32,
    pub max_read_len: u32,
    pub max_write_len: u32,
    pub max_open_handles: u32,
    /// Requests of one session served at the same time.
    pub max_in_flight: usize,
    /// Bytes of request data and reply buffers (WRITE data, READ and READDIR replies)
    /// held at once by the sessions sharing one budget (an SSH connection's channels),
    /// until the writer takes the reply. Bounds what a client that sends requests and
    /// never reads the replies costs: OpenSSH keeps 64 requests of 255 KiB in flight.
    pub in_flight_bytes: usize,
}

impl Limits {
    /// Largest WRITE offered to a session whose home stages uploads in memory (an object
    /// store): OpenSSH keeps 64 writes in flight, 4 MiB at this size instead of 16 MiB at
    /// the default, and the store, not the per-request cost, sets the upload's speed.
    pub const STAGED_WRITE_LEN: u32 = 64 * 1024;

    /// These limits for a session of a user whose home has `home`'s capabilities.
    pub fn for_home(self, home: sftpgo_core::storage::Capabilities) -> Limits {
        if !home.staged_writes {
            return self;
        }
        Limits {
            max_write_len: self.max_write_len.min(Self::STAGED_WRITE_LEN),
            ..self
        }
    }

    /// The size of a budget for sessions with these limits (see [`replies`]): never less
    /// than a few of the largest requests, so any one request fits.
    pub fn in_flight_budget(&self) -> usize {
        self.in_flight_bytes
            .max(4 * self.max_packet_len as usize)
            .min(Semaphore::MAX_PERMITS)
    }

    /// What a request takes from the budget while it is served and its reply waits.
    fn cost(&self, request: &Incoming) -> u32 {
        match request {
            Incoming::Write { data, .. } => data.iter().map(|b| b.len() as u32).sum(),
            Incoming::Request(Request::Write { data, .. }) => data.len() as u32,
            Incoming::Request(Request::Read { len, .. }) => {
                (*len).min(self.max_read_len) + codec::DATA_HEADER_LEN as u32
            }
            Incoming::Request(Request::Readdir { .. }) => READDIR_PAGE_BYTES as u32,
            _ => 0,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_packet_len: 256 * 1024,
            max_read_len: 255 * 1024,
            max_write_len: 255 * 1024,
            max_open_handles: 1024,
            max_in_flight: 128,
            in_flight_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Where the session gets channel data from (the SSH layer's channel reader).
pub trait ChunkSource: Send {
    /// The next chunk of channel data; `None` at EOF.
    fn next_chunk(&mut self) -> impl Future<Output = Option<Bytes>> + Send;
}

/// A session's replies, taken by the adapter's writer in the order of the requests.
///
/// Requests are served concurrently and may finish in any order, but their replies go
/// out in request order: the protocol would allow any order, yet clients rely on this
/// one. paramiko's pipelined upload waits for its WRITEs' statuses in the order it sent
/// them and drops any other it reads meanwhile, then waits forever for the one it
/// dropped (a `put` of a few MiB hung); SFTPGo 0.9's library (pkg/sftp) orders its
/// replies for the same reason, and OpenSSH's sftp-server answers one request at a time.
/// The cost is that a slow request holds back the replies of later ones, never their
/// work.
pub struct Replies {
    rx: mpsc::Receiver<Queued>,
    /// Replies that came before an earlier request's: `held[i]` answers request
    /// `next + i`. At most `max_in_flight` long: each holds its request's permit.
    held: VecDeque<Option<Queued>>,
    next: u64,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    input_full: InputFull,
}

/// Whether a session has stopped reading its channel: its requests wait for room (the
/// client is not taking the replies) and it holds all it may of the ones behind them
/// (`MAX_UNFRAMED`). russh then stops reading the whole connection.
#[derive(Clone, Default)]
pub struct InputFull(Arc<std::sync::atomic::AtomicBool>);

impl InputFull {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, full: bool) {
        self.0.store(full, Ordering::Relaxed);
    }
}

/// A reply on its way to the writer: the request's place in order and its in-flight
/// permit, released when the reply is taken.
struct Queued {
    seq: u64,
    reply: Bytes,
    _permit: OwnedSemaphorePermit,
    _bytes: Option<OwnedSemaphorePermit>,
}

/// The session's side of [`Replies`].
pub struct ReplySender {
    tx: mpsc::Sender<Queued>,
    /// One permit per request taken in whose reply the writer has not taken yet: bounds
    /// the requests served (and the replies held back) at once, and tells the writer
    /// whether more replies are coming.
    in_flight: Arc<Semaphore>,
    /// Bytes of data and replies (see [`Limits::in_flight_bytes`]), maybe shared with
    /// other sessions.
    budget: Arc<Semaphore>,
    budget_size: usize,
    input_full: InputFull,
}

/// The reply queue of a session served with `limits` (pass the same to [`serve`]).
/// Every request holds a permit until its reply is taken, so requests alone never fill
/// the queue. `budget` (of [`Limits::in_flight_budget`] permits, one per byte) may be
/// shared by several sessions.
pub fn replies(limits: &Limits, budget: Arc<Semaphore>) -> (ReplySender, Replies) {
    let (tx, rx) = mpsc::channel(limits.max_in_flight);
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight));
    let input_full = InputFull::default();
    (
        ReplySender {
            tx,
            in_flight: in_flight.clone(),
            budget,
            budget_size: limits.in_flight_budget(),
            input_full: input_full.clone(),
        },
        Replies {
            rx,
            held: VecDeque::new(),
            next: 0,
            in_flight,
            max_in_flight: limits.max_in_flight,
            input_full,
        },
    )
}

impl Replies {
    /// The next reply in request order; `None` once the session has ended and every
    /// reply was taken.
    pub async fn recv(&mut self) -> Option<Bytes> {
        loop {
            if let Some(reply) = self.take_next() {
                return Some(reply);
            }
            match self.rx.recv().await {
                Some(q) => self.hold(q),
                // The session ended: requests cut short at its end never reply, so
                // what is left goes out in order, past the gaps.
                None => {
                    while let Some(slot) = self.held.pop_front() {
                        self.next += 1;
                        if let Some(q) = slot {
                            return Some(q.reply);
                        }
                    }
                    return None;
                }
            }
        }
    }

    /// The next reply in request order, if it is ready now.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        self.receive_ready();
        self.take_next()
    }

    /// Whether the next reply in request order is not ready yet.
    pub fn is_empty(&mut self) -> bool {
        self.receive_ready();
        !matches!(self.held.front(), Some(Some(_)))
    }

    fn receive_ready(&mut self) {
        while let Ok(q) = self.rx.try_recv() {
            self.hold(q);
        }
    }

    fn hold(&mut self, q: Queued) {
        // Sequence numbers are handed out once each, in order, and `next` only passes
        // those already taken: a reply is never behind `next`.
        debug_assert!(q.seq >= self.next, "reply {} after {}", q.seq, self.next);
        let Some(i) = q.seq.checked_sub(self.next) else {
            return;
        };
        let i = i as usize;
        if self.held.len() <= i {
            self.held.resize_with(i + 1, || None);
        }
        self.held[i] = Some(q);
    }

    fn take_next(&mut self) -> Option<Bytes> {
        if !matches!(self.held.front(), Some(Some(_))) {
            return None;
        }
        self.next += 1;
        self.held.pop_front().flatten().map(|q| q.reply)
    }

    /// Tells whether the session has stopped reading its channel (see [`InputFull`]).
    pub fn input_full(&self) -> InputFull {
        self.input_full.clone()
    }

    /// Whether requests are still being served, so more replies will follow (a writer
    /// may wait a moment to send them together; with none coming, waiting only delays).
    pub fn more_coming(&self) -> bool {
        self.in_flight.available_permits() < self.max_in_flight
    }
}

/// The extensions advertised in VERSION, each implemented below.
const EXTENSIONS: &[(&[u8], &[u8])] = &[
    (b"posix-rename@openssh.com", b"1"),
    (b"statvfs@openssh.com", b"2"),
    (b"fstatvfs@openssh.com", b"2"),
    (b"hardlink@openssh.com", b"1"),
    (b"fsync@openssh.com", b"1"),
    (b"limits@openssh.com", b"1"),
    (b"expand-path@openssh.com", b"1"),
    // The algorithms, as ProFTPD advertises them; the two request names too (Apache
    // MINA SSHD's clients look for those).
    (b"check-file", CHECK_FILE_ALGORITHMS),
    (b"check-file-name", CHECK_FILE_ALGORITHMS),
    (b"check-file-handle", CHECK_FILE_ALGORITHMS),
    (b"copy-data", b"1"),
];

const CHECK_FILE_ALGORITHMS: &[u8] = b"md5,sha1,sha224,sha256,sha384,sha512";

/// The smallest block size `check-file-*` takes (other than 0), as the draft says.
const MIN_CHECK_BLOCK: u32 = 256;

/// Bytes of channel data a session holds unframed while its requests wait for room
/// (`ReplySender::admit`): beyond the requests being served, what a client that does not
/// read its replies can make it hold. Small requests are merged into 4 KiB chunks on
/// arrival (`PacketReader`); paramiko's download of a 2 GiB file sends its 65,536 READs
/// (1.9 MiB) before reading a reply.
const MAX_UNFRAMED: usize = 4 * 1024 * 1024;

/// A READDIR reply stops taking names past this size.
const READDIR_PAGE_BYTES: usize = 64 * 1024;

/// How long requests still running at the end of a session may take to finish.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a session ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("malformed packet: {0}")]
    Malformed(String),
    #[error("client sent a request before INIT")]
    NotInitialized,
}

/// Serves SFTP on one channel until the client closes it or the connection is closed.
/// Replies are sent on `out`; the caller forwards them to the channel.
pub async fn serve<S: ChunkSource>(
    conn: Arc<ProtocolSession>,
    mut input: S,
    out: ReplySender,
    limits: Limits,
) -> Result<(), SessionError> {
    let session = Arc::new(Session {
        conn: conn.clone(),
        out: out.tx.clone(),
        limits,
        handles: Mutex::new(HashMap::new()),
        next_handle: AtomicU32::new(1),
    });
    let mut reader = PacketReader::new(limits.max_packet_len as usize + 1024);
    let mut initialized = false;
    // Each request's place in the order of replies (see [`Replies`]).
    let mut next_seq = 0u64;
    // The requests being served, polled by this task (see [`start`]).
    let mut tasks = FuturesUnordered::<Served>::new();
    // A framed request waiting for its place among those served (see
    // `ReplySender::admit`). The channel is still read meanwhile (up to
    // `MAX_UNFRAMED`): a client's window adjustment may be queued behind requests it sent,
    // and russh, which holds the channel's messages, stops reading the connection when
    // the session stops taking them.
    let mut waiting: Option<(Incoming, Admitting<'_>)> = None;
    let mut input_done = false;
    let result = 'outer: loop {
        while waiting.is_none() {
            let frame = match reader.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => break 'outer Err(SessionError::Malformed(e.to_string())),
            };
            let request = match frame {
                Frame::Write {
                    id,
                    handle,
                    offset,
                    data,
                } => Incoming::Write {
                    id,
                    handle,
                    offset,
                    data,
                },
                Frame::Packet(packet) => match codec::decode_request(packet) {
                    Ok(r) => Incoming::Request(r),
                    Err(DecodeError::UnknownType { id: Some(id), ty }) => {
                        Incoming::Unsupported { id, ty }
                    }
                    Err(e) => break 'outer Err(SessionError::Malformed(e.to_string())),
                },
            };
            let is_init = matches!(request, Incoming::Request(Request::Init { .. }));
            if !initialized && !is_init && !matches!(request, Incoming::Unsupported { .. }) {
                break 'outer Err(SessionError::NotInitialized);
            }
            initialized |= is_init;
            let cost = limits.cost(&request);
            match out.try_admit(cost) {
                Some(admitted) => {
                    tasks.extend(start(&session, request, next_seq, admitted));
                    next_seq += 1;
                }
                None => waiting = Some((request, Box::pin(out.admit(cost)))),
            }
        }
        if input_done && waiting.is_none() {
            break Ok(());
        }
        out.input_full
            .set(waiting.is_some() && reader.buffered() >= MAX_UNFRAMED);
        tokio::select! {
            chunk = input.next_chunk(), if !input_done && reader.buffered() < MAX_UNFRAMED => {
                match chunk {
                    Some(chunk) => reader.push_bytes(chunk),
                    None => input_done = true,
                }
            }
            admitted = admission(&mut waiting), if waiting.is_some() => {
                let (Some((request, _)), Some(admitted)) = (waiting.take(), admitted) else {
                    break Ok(());
                };
                tasks.extend(start(&session, request, next_seq, admitted));
                next_seq += 1;
            }
            _ = conn.closed().cancelled() => break Ok(()),
            // Serves the requests; a finished one is freed now, not when the next request
            // comes: an idle session holds none.
            Some(()) = tasks.next(), if !tasks.is_empty() => {}
        }
    };
    drop(waiting);
    out.input_full.set(false);
    // Let requests still running finish briefly (a client may half-close after its last
    // request), then drop the rest (e.g. writes sleeping in a bandwidth limit for a
    // client that is gone), then close what the client left open.
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while tasks.next().await.is_some() {}
    })
    .await;
    drop(tasks);
    let leftover: Vec<Arc<HandleEntry>> = session.lock_handles().drain().map(|(_, h)| h).collect();
    for entry in leftover {
        if let HandleKind::File(t) = &entry.kind {
            let _ = t.close(false).await;
        }
    }
    if let Err(e) = &result
        && conn.may_log()
    {
        tracing::warn!(sender = "sftpd", connection_id = %conn.id, username = conn.username(), error = %e, "closing SFTP session");
    }
    result
}

/// A request's place among those served at once, and its share of the byte budget.
type Admitted = (OwnedSemaphorePermit, Option<OwnedSemaphorePermit>);

/// Waiting for an [`Admitted`]; `None` if the semaphores were closed (they never are).
type Admitting<'a> = std::pin::Pin<Box<dyn Future<Output = Option<Admitted>> + Send + 'a>>;

impl ReplySender {
    /// The budget share a request of `cost` bytes takes (any request fits the budget).
    fn clamp(&self, cost: u32) -> u32 {
        cost.min(u32::try_from(self.budget_size).unwrap_or(u32::MAX))
    }

    /// Admits a request at once if there is room.
    fn try_admit(&self, cost: u32) -> Option<Admitted> {
        let permit = self.in_flight.clone().try_acquire_owned().ok()?;
        if cost == 0 {
            return Some((permit, None));
        }
        let bytes = self
            .budget
            .clone()
            .try_acquire_many_owned(self.clamp(cost))
            .ok()?;
        Some((permit, Some(bytes)))
    }

    /// Waits for room for a request: earlier replies to be taken, which a client that does
    /// not read them delays for as long as it likes (the caller also watches the
    /// connection's end).
    async fn admit(&self, cost: u32) -> Option<Admitted> {
        let permit = self.in_flight.clone().acquire_owned().await.ok()?;
        if cost == 0 {
            return Some((permit, None));
        }
        let bytes = self
            .budget
            .clone()
            .acquire_many_owned(self.clamp(cost))
            .await
            .ok()?;
        Some((permit, Some(bytes)))
    }
}

async fn admission(waiting: &mut Option<(Incoming, Admitting<'_>)>) -> Option<Admitted> {
    match waiting {
        Some((_, admitting)) => admitting.await,
        None => std::future::pending().await,
    }
}

/// A request being served. Boxed: the set of them keeps one spare entry even when it is
/// empty, which unboxed would be the size of the largest request's future (~2 KiB more
/// per idle session).
type Served = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Starts serving an admitted request, the `seq`th of the session: answers it at once,
/// or returns the future that serves it, which the session's own task polls among the
/// others, first in the order they were started (not a task of its own: a spawned task
/// per request cost an aligned allocation and the runtime's bookkeeping, ~10% of a
/// connection thread serving small downloads). A panic in one request stays in it, as
/// it would in a task of its own.
fn start(
    session: &Arc<Session>,
    request: Incoming,
    seq: u64,
    (permit, bytes): Admitted,
) -> Option<Served> {
    let answered = move |reply| Queued {
        seq,
        reply,
        _permit: permit,
        _bytes: bytes,
    };
    // The queue has room for every admitted request's reply (its capacity is the number
    // of places), so a reply made here is queued at once.
    match request {
        Incoming::Request(Request::Init { .. }) => {
            let mut buf = BytesMut::with_capacity(256);
            codec::encode_version(&mut buf, 3, EXTENSIONS);
            let _ = session.out.try_send(answered(buf.freeze()));
            None
        }
        Incoming::Unsupported { id, ty } => {
            let mut buf = BytesMut::with_capacity(64);
            let msg = format!("unsupported request type {ty}");
            codec::encode_status(&mut buf, id, codec::SSH_FX_OP_UNSUPPORTED, &msg);
            let _ = session.out.try_send(answered(buf.freeze()));
            None
        }
        request => {
            session.conn.touch();
            let session = session.clone();
            let serve = async move {
                let reply = match request {
                    Incoming::Write {
                        id,
                        handle,
                        offset,
                        data,
                    } => session.handle_write(id, &handle, offset, data).await,
                    Incoming::Request(r) => session.handle(r).await,
                    // Answered above, without a future.
                    Incoming::Unsupported { .. } => return,
                };
                let _ = session.out.send(answered(reply)).await;
            };
            // Unconstrained: the requests share this task's cooperative budget, and one
            // refused by it (`Pending` before it queued) would fall behind a later one;
            // each must reach the queues it waits in (the handle's, the session's I/O
            // queue) in the order the client sent them, on its first poll.
            Some(Box::pin(
                tokio::task::unconstrained(AssertUnwindSafe(serve).catch_unwind()).map(|_| ()),
            ))
        }
    }
}

/// A framed request: decoded, a WRITE whose data is still in the received chunks, or a
/// request type this server does not know (answered OP_UNSUPPORTED).
enum Incoming {
    Request(Request),
    Write {
        id: u32,
        handle: Bytes,
        offset: u64,
        data: Vec<Bytes>,
    },
    Unsupported {
        id: u32,
        ty: u8,
    },
}

struct Session {
    conn: Arc<ProtocolSession>,
    out: mpsc::Sender<Queued>,
    limits: Limits,
    handles: Mutex<HashMap<u32, Arc<HandleEntry>>>,
    next_handle: AtomicU32,
}

/// An open handle. Requests on it hold `gate` shared; CLOSE takes it exclusively so it
/// runs after the requests the client sent before it.
struct HandleEntry {
    kind: HandleKind,
    gate: Arc<RwLock<()>>,
}

enum HandleKind {
    File(Transfer),
    Dir(DirListing),
}

/// A directory listing read at OPENDIR and paged out by READDIR.
struct DirListing {
    path: VirtualPath,
    entries: Mutex<std::vec::IntoIter<DirEntry>>,
}

type Reply = Result<BytesMut, Status>;

/// A status reply: code and message.
struct Status(u32, String);

impl From<FsError> for Status {
    fn from(e: FsError) -> Self {
        let code = match &e {
            FsError::NotFound => codec::SSH_FX_NO_SUCH_FILE,
            FsError::PermissionDenied(_) => codec::SSH_FX_PERMISSION_DENIED,
            FsError::Unsupported(_) => codec::SSH_FX_OP_UNSUPPORTED,
            FsError::InvalidPath(_) | FsError::Failure(_) | FsError::QuotaExceeded(_) => {
                codec::SSH_FX_FAILURE
            }
        };
        Status(code, e.to_string())
    }
}

impl From<std::io::Error> for Status {
    fn from(e: std::io::Error) -> Self {
        Status(codec::SSH_FX_FAILURE, e.to_string())
    }
}

fn ok() -> Reply {
    Err(Status(codec::SSH_FX_OK, String::new()))
}

fn attrs_of(st: &FileStat) -> FileAttrs {
    FileAttrs {
        size: Some(st.size),
        uid_gid: Some((st.uid, st.gid)),
        permissions: Some(st.mode),
        times: Some((st.atime as u32, st.mtime as u32)),
    }
}

fn set_attrs_of(a: &FileAttrs) -> SetAttrs {
    SetAttrs {
        size: a.size,
        permissions: a.permissions,
        times: a.times,
        uid_gid: a.uid_gid,
    }
}

impl Session {
    fn lock_handles(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<HandleEntry>>> {
        self.handles.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves one request and encodes its reply.
    async fn handle(&self, request: Request) -> Bytes {
        let id = request.id().unwrap_or(0);
        self.conn.metrics().sftp_request(request.name());
        encode_reply(id, self.dispatch(id, request).await)
    }

    /// Serves a WRITE framed with its data in several buffers ([`Frame::Write`]).
    async fn handle_write(&self, id: u32, handle: &[u8], offset: u64, data: Vec<Bytes>) -> Bytes {
        self.conn.metrics().sftp_request("write");
        encode_reply(id, self.write(handle, offset, data).await)
    }

    /// The request table: each row names the shared-layer operation that serves it
    /// (which enforces the permission).
    async fn dispatch(&self, id: u32, request: Request) -> Reply {
        let fs = self.conn.fs();
        match request {
            Request::Init { .. } => Err(Status(codec::SSH_FX_BAD_MESSAGE, "duplicate INIT".into())),
            Request::Open {
                path,
                pflags,
                attrs,
                ..
            } => self.open(id, &path, pflags, &attrs).await,
            Request::Close { handle, .. } => self.close(&handle).await,
            Request::Read {
                handle,
                offset,
                len,
                ..
            } => self.read(id, &handle, offset, len).await,
            Request::Write {
                handle,
                offset,
                data,
                ..
            } => self.write(&handle, offset, vec![data]).await,
            Request::Lstat { path, .. } => name_attrs(id, fs.lstat(&fs.resolve(&path)?).await?),
            Request::Stat { path, .. } => name_attrs(id, fs.stat(&fs.resolve(&path)?).await?),
            Request::Fstat { handle, .. } => name_attrs(id, self.file(&handle)?.0.stat().await?),
            Request::Setstat { path, attrs, .. } => {
                fs.set_attrs(&fs.resolve(&path)?, set_attrs_of(&attrs))
                    .await?;
                ok()
            }
            Request::Fsetstat { handle, attrs, .. } => {
                let (t, _g) = self.file_gated(&handle).await?;
                t.set_attrs(set_attrs_of(&attrs)).await?;
                ok()
            }
            Request::Opendir { path, .. } => self.opendir(id, &path).await,
            Request::Readdir { handle, .. } => self.readdir(id, &handle),
            Request::Remove { path, .. } => {
                fs.remove(&fs.resolve(&path)?).await?;
                ok()
            }
            Request::Mkdir { path, .. } => {
                fs.mkdir(&fs.resolve(&path)?).await?;
                ok()
            }
            Request::Rmdir { path, .. } => {
                fs.rmdir(&fs.resolve(&path)?).await?;
                ok()
            }
            Request::Realpath { path, .. } => one_name(id, fs.resolve(&path)?.as_bytes()),
            Request::Rename { old, new, .. } => {
                fs.rename(&fs.resolve(&old)?, &fs.resolve(&new)?, false)
                    .await?;
                ok()
            }
            Request::Readlink { path, .. } => {
                one_name(id, &fs.read_link(&fs.resolve(&path)?).await?)
            }
            Request::Symlink { target, link, .. } => {
                fs.symlink(&target, &fs.resolve(&link)?).await?;
                ok()
            }
            Request::Extended { ext, .. } => self.extended(id, ext).await,
        }
    }

    async fn extended(&self, id: u32, ext: Extended) -> Reply {
        let fs = self.conn.fs();
        match ext {
            Extended::PosixRename { old, new } => {
                fs.rename(&fs.resolve(&old)?, &fs.resolve(&new)?, true)
                    .await?;
                ok()
            }
            Extended::Statvfs { path } => statvfs_reply(id, fs.statvfs(&fs.resolve(&path)?).await?),
            Extended::Fstatvfs { handle } => {
                let path = self.handle_path(&handle)?;
                statvfs_reply(id, fs.statvfs(&path).await?)
            }
            Extended::Hardlink { old, new } => {
                fs.hard_link(&fs.resolve(&old)?, &fs.resolve(&new)?).await?;
                ok()
            }
            Extended::Fsync { handle } => {
                let (t, _g) = self.file_gated(&handle).await?;
                t.sync().await?;
                ok()
            }
            Extended::Limits => {
                let l = &self.limits;
                let mut buf = BytesMut::with_capacity(64);
                codec::encode_limits_reply(
                    &mut buf,
                    id,
                    u64::from(l.max_packet_len),
                    u64::from(l.max_read_len),
                    u64::from(l.max_write_len),
                    u64::from(l.max_open_handles),
                );
                Ok(buf)
            }
            Extended::ExpandPath { path } => {
                // `~` and `~/x` are the home dir, which is `/` for a virtual user.
                let p: &[u8] = &path;
                let rest = match p {
                    b"~" => &b"/"[..],
                    _ if p.starts_with(b"~/") => &p[1..],
                    _ => p,
                };
                one_name(id, fs.resolve(rest)?.as_bytes())
            }
            Extended::CheckFile {
                by_handle,
                target,
                algorithms,
                offset,
                length,
                block_size,
            } => {
                self.check_file(
                    id,
                    by_handle,
                    &target,
                    &algorithms,
                    offset,
                    length,
                    block_size,
                )
                .await
            }
            Extended::CopyData {
                read_handle,
                read_offset,
                length,
                write_handle,
                write_offset,
            } => {
                // Both handles held shared: a CLOSE of either waits for the copy.
                let (src, _g1) = self.file_gated(&read_handle).await?;
                let (dst, _g2) = self.file_gated(&write_handle).await?;
                src.copy_to(&dst, read_offset, length, write_offset)
                    .await
                    .map_err(|e| {
                        let code = if e.kind() == std::io::ErrorKind::PermissionDenied {
                            codec::SSH_FX_PERMISSION_DENIED
                        } else {
                            codec::SSH_FX_FAILURE
                        };
                        Status(code, e.to_string())
                    })?;
                ok()
            }
            Extended::Unknown { name } => Err(Status(
                codec::SSH_FX_OP_UNSUPPORTED,
                format!("unsupported extension {}", String::from_utf8_lossy(&name)),
            )),
        }
    }

    /// `check-file-name` / `check-file-handle`: the first of the client's algorithms that
    /// we have, over the range, one hash per block (through `UserFs::checksum`: the
    /// download permission, throttled, logged as a command).
    #[allow(clippy::too_many_arguments)]
    async fn check_file(
        &self,
        id: u32,
        by_handle: bool,
        target: &[u8],
        algorithms: &[u8],
        offset: u64,
        length: u64,
        block_size: u32,
    ) -> Reply {
        let fs = self.conn.fs();
        let algorithm = algorithms
            .split(|&b| b == b',')
            .find_map(|name| HashAlgorithm::from_name(name.trim_ascii()))
            .ok_or_else(|| {
                Status(
                    codec::SSH_FX_OP_UNSUPPORTED,
                    "no supported hash algorithm (md5, sha1, sha224, sha256, sha384, sha512)"
                        .into(),
                )
            })?;
        if block_size != 0 && block_size < MIN_CHECK_BLOCK {
            return Err(Status(
                codec::SSH_FX_FAILURE,
                format!("block size must be 0 or at least {MIN_CHECK_BLOCK}"),
            ));
        }
        let path = if by_handle {
            self.handle_path(target)?
        } else {
            fs.resolve(target)?
        };
        let range = HashRange {
            offset,
            length,
            block_size: u64::from(block_size),
        };
        let hashes = fs.checksum(&path, algorithm, range).await?;
        let size: usize = hashes.iter().map(Vec::len).sum();
        let mut buf = BytesMut::with_capacity(64 + size);
        codec::encode_check_file_reply(&mut buf, id, algorithm.name().as_bytes(), &hashes);
        Ok(buf)
    }

    async fn open(&self, id: u32, path: &[u8], pflags: u32, _attrs: &FileAttrs) -> Reply {
        let fs = self.conn.fs();
        let path = fs.resolve(path)?;
        let writes = codec::SSH_FXF_WRITE
            | codec::SSH_FXF_APPEND
            | codec::SSH_FXF_CREAT
            | codec::SSH_FXF_TRUNC;
        let transfer = if pflags & writes == 0 {
            fs.open_download(&path).await?
        } else {
            let flags = UploadFlags {
                read: pflags & codec::SSH_FXF_READ != 0,
                append: pflags & codec::SSH_FXF_APPEND != 0,
                create: pflags & codec::SSH_FXF_CREAT != 0,
                truncate: pflags & codec::SSH_FXF_TRUNC != 0,
                exclusive: pflags & codec::SSH_FXF_EXCL != 0,
                size: None,
            };
            fs.open_upload(&path, flags).await?
        };
        self.new_handle(id, HandleKind::File(transfer))
    }

    fn new_handle(&self, id: u32, kind: HandleKind) -> Reply {
        let mut handles = self.lock_handles();
        if handles.len() >= self.limits.max_open_handles as usize {
            drop(handles);
            if let HandleKind::File(t) = kind {
                tokio::spawn(async move { t.close(false).await });
            }
            return Err(Status(
                codec::SSH_FX_FAILURE,
                "too many open handles".into(),
            ));
        }
        let h = self.next_handle.fetch_add(1, Ordering::Relaxed);
        handles.insert(
            h,
            Arc::new(HandleEntry {
                kind,
                gate: Arc::new(RwLock::new(())),
            }),
        );
        drop(handles);
        let mut buf = BytesMut::with_capacity(32);
        codec::encode_handle(&mut buf, id, &h.to_be_bytes());
        Ok(buf)
    }

    fn entry(&self, handle: &[u8]) -> Result<Arc<HandleEntry>, Status> {
        let key = <[u8; 4]>::try_from(handle).map(u32::from_be_bytes).ok();
        key.and_then(|k| self.lock_handles().get(&k).cloned())
            .ok_or_else(|| Status(codec::SSH_FX_FAILURE, "invalid handle".into()))
    }

    /// The transfer behind a file handle, without waiting on its gate (READ/WRITE take
    /// the gate themselves; FSTAT needs no ordering).
    fn file(&self, handle: &[u8]) -> Result<(Transfer, Arc<HandleEntry>), Status> {
        let entry = self.entry(handle)?;
        match &entry.kind {
            HandleKind::File(t) => Ok((t.clone(), entry.clone())),
            HandleKind::Dir(_) => Err(Status(codec::SSH_FX_FAILURE, "not a file handle".into())),
        }
    }

    async fn file_gated(
        &self,
        handle: &[u8],
    ) -> Result<(Transfer, tokio::sync::OwnedRwLockReadGuard<()>), Status> {
        let (t, entry) = self.file(handle)?;
        let guard = gate_shared(entry).await;
        Ok((t, guard))
    }

    fn handle_path(&self, handle: &[u8]) -> Result<VirtualPath, Status> {
        let entry = self.entry(handle)?;
        Ok(match &entry.kind {
            HandleKind::File(t) => t.path().clone(),
            HandleKind::Dir(d) => d.path.clone(),
        })
    }

    async fn close(&self, handle: &[u8]) -> Reply {
        let key = <[u8; 4]>::try_from(handle).map(u32::from_be_bytes).ok();
        let entry = key
            .and_then(|k| self.lock_handles().remove(&k))
            .ok_or_else(|| Status(codec::SSH_FX_FAILURE, "invalid handle".into()))?;
        let _exclusive = entry.gate.write().await;
        if let HandleKind::File(t) = &entry.kind {
            t.close(true).await?;
        }
        ok()
    }

    async fn read(&self, id: u32, handle: &[u8], offset: u64, len: u32) -> Reply {
        let (t, _g) = self.file_gated(handle).await?;
        let len = len.min(self.limits.max_read_len) as usize;
        let mut buf =
            BytesMut::with_capacity(codec::DATA_HEADER_LEN + t.read_capacity(offset, len));
        codec::begin_data(&mut buf, id);
        let (mut buf, res) = t.read_at(offset, len, buf).await;
        match res? {
            0 if len > 0 => Err(Status(codec::SSH_FX_EOF, "end of file".into())),
            _ => {
                codec::finish_data(&mut buf);
                Ok(buf)
            }
        }
    }

    async fn write(&self, handle: &[u8], offset: u64, data: Vec<Bytes>) -> Reply {
        let (t, _g) = self.file_gated(handle).await?;
        t.write_vectored_at(offset, data).await?;
        ok()
    }

    async fn opendir(&self, id: u32, path: &[u8]) -> Reply {
        let fs = self.conn.fs();
        let path = fs.resolve(path)?;
        let entries = fs.read_dir(&path).await?;
        let listing = DirListing {
            path,
            entries: Mutex::new(entries.into_iter()),
        };
        self.new_handle(id, HandleKind::Dir(listing))
    }

    fn readdir(&self, id: u32, handle: &[u8]) -> Reply {
        let entry = self.entry(handle)?;
        let HandleKind::Dir(listing) = &entry.kind else {
            return Err(Status(
                codec::SSH_FX_FAILURE,
                "not a directory handle".into(),
            ));
        };
        let mut entries = listing.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let mut names = codec::NameWriter::new(&mut buf, id);
        let mut longname = Vec::with_capacity(128);
        // Pages of up to 100 names, kept well under the packet limit.
        while names.count() < 100 && names.len() < READDIR_PAGE_BYTES {
            let Some(e) = entries.next() else { break };
            longname.clear();
            codec::write_longname(&mut longname, &e.name, &longname_info(&e.stat));
            names.push(&e.name, &longname, &attrs_of(&e.stat));
        }
        if names.count() == 0 {
            return Err(Status(codec::SSH_FX_EOF, "end of directory".into()));
        }
        names.finish();
        Ok(buf)
    }
}

fn encode_reply(id: u32, reply: Reply) -> Bytes {
    match reply {
        Ok(buf) => buf.freeze(),
        Err(Status(code, msg)) => {
            let mut buf = BytesMut::with_capacity(32 + msg.len());
            codec::encode_status(&mut buf, id, code, &msg);
            buf.freeze()
        }
    }
}

async fn gate_shared(entry: Arc<HandleEntry>) -> tokio::sync::OwnedRwLockReadGuard<()> {
    entry.gate.clone().read_owned().await
}

fn name_attrs(id: u32, st: FileStat) -> Reply {
    let mut buf = BytesMut::with_capacity(64);
    codec::encode_attrs(&mut buf, id, &attrs_of(&st));
    Ok(buf)
}

/// A NAME reply with one entry (REALPATH, READLINK, expand-path).
fn one_name(id: u32, name: &[u8]) -> Reply {
    let mut buf = BytesMut::with_capacity(64 + name.len());
    let mut names = codec::NameWriter::new(&mut buf, id);
    names.push(name, name, &FileAttrs::default());
    names.finish();
    Ok(buf)
}

fn statvfs_reply(id: u32, st: sftpgo_vfs::StatVfs) -> Reply {
    let mut buf = BytesMut::with_capacity(128);
    codec::encode_statvfs_reply(
        &mut buf,
        id,
        &codec::StatVfsReply {
            bsize: st.bsize,
            frsize: st.frsize,
            blocks: st.blocks,
            bfree: st.bfree,
            bavail: st.bavail,
            files: st.files,
            ffree: st.ffree,
            favail: st.favail,
            fsid: st.fsid,
            flag: st.flag,
            namemax: st.namemax,
        },
    );
    Ok(buf)
}

fn longname_info(st: &FileStat) -> codec::LongnameInfo {
    codec::LongnameInfo {
        mode: st.mode,
        nlink: st.nlink,
        uid: st.uid,
        gid: st.gid,
        size: st.size,
        mtime: st.mtime,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limits: &Limits) -> Arc<Semaphore> {
        Arc::new(Semaphore::new(limits.in_flight_budget()))
    }

    /// A reply as the session queues it: request `seq`, holding a fresh permit.
    async fn queue(tx: &ReplySender, seq: u64, reply: &'static [u8]) {
        let permit = tx.in_flight.clone().acquire_owned().await.unwrap();
        let q = Queued {
            seq,
            reply: Bytes::from_static(reply),
            _permit: permit,
            _bytes: None,
        };
        tx.tx.send(q).await.unwrap();
    }

    #[tokio::test]
    async fn replies_say_more_are_coming_while_a_request_is_served() {
        let (tx, mut rx) = replies(&Limits::default(), budget(&Limits::default()));
        assert!(!rx.more_coming());
        let second = tx.in_flight.clone().acquire_owned().await.unwrap();
        queue(&tx, 0, b"first").await;
        assert!(rx.more_coming());
        assert_eq!(rx.try_recv().as_deref(), Some(&b"first"[..]));
        assert!(rx.is_empty());
        assert!(rx.more_coming(), "the second request is still being served");
        drop(second);
        assert!(!rx.more_coming());
        drop(tx);
        assert_eq!(rx.recv().await, None, "the session ended");
    }

    #[tokio::test]
    async fn replies_leave_in_request_order_and_hold_their_permits_until_taken() {
        let limits = Limits {
            max_in_flight: 4,
            ..Limits::default()
        };
        let (tx, mut rx) = replies(&limits, budget(&limits));
        // Requests 1, 3 and 2 finish before request 0.
        queue(&tx, 1, b"one").await;
        queue(&tx, 3, b"three").await;
        queue(&tx, 2, b"two").await;
        assert!(rx.is_empty(), "nothing may overtake request 0");
        assert_eq!(rx.try_recv(), None);
        assert_eq!(
            tx.in_flight.available_permits(),
            1,
            "held replies keep their permits"
        );
        queue(&tx, 0, b"zero").await;
        assert!(!rx.is_empty());
        for want in [&b"zero"[..], b"one", b"two"] {
            assert_eq!(rx.try_recv().as_deref(), Some(want));
        }
        assert_eq!(rx.recv().await.as_deref(), Some(&b"three"[..]));
        assert_eq!(tx.in_flight.available_permits(), 4);
        assert!(!rx.more_coming());
        // At the end of a session, requests cut short leave gaps: the rest still goes,
        // in order.
        queue(&tx, 6, b"six").await;
        queue(&tx, 5, b"five").await;
        drop(tx);
        assert_eq!(rx.recv().await.as_deref(), Some(&b"five"[..]));
        assert_eq!(rx.recv().await.as_deref(), Some(&b"six"[..]));
        assert_eq!(rx.recv().await, None);
    }
}
