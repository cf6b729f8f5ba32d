//! A file being uploaded or downloaded. Every byte of file data a protocol moves goes
//! through here: positional I/O on the blocking pool, progress for the connection view,
//! and the transfer log line when it ends. Quota, throttling and actions hook in here.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use sftpgo_vfs::{FileStat, OpenedFile, Root, VirtualPath};

use crate::actions::{ActionEvent, ActionKind};
use crate::connection::{ConnectionState, OpenFile, TransferStats};
use crate::fs::{AtomicUpload, FsError, SetAttrs, UploadAccounting};
use crate::now_ms;
use crate::serial_io::SerialIo;
use crate::throttle::Throttle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferKind {
    Upload,
    Download,
}

impl TransferKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferKind::Upload => "upload",
            TransferKind::Download => "download",
        }
    }

    fn log_sender(self) -> &'static str {
        match self {
            TransferKind::Upload => "Upload",
            TransferKind::Download => "Download",
        }
    }
}

/// An open file plus its bookkeeping. Cheap to clone: clones share the file.
#[derive(Clone)]
pub struct Transfer {
    inner: Arc<Inner>,
}

struct Inner {
    kind: TransferKind,
    path: VirtualPath,
    host_path: PathBuf,
    state: Arc<ConnectionState>,
    stats: Arc<TransferStats>,
    started: Instant,
    /// The first error; set means the transfer ends as failed (an atomic upload is
    /// discarded), and its text goes to the transfer log.
    failure: std::sync::OnceLock<String>,
    /// Set once the transfer has been closed and logged.
    finished: Mutex<bool>,
    /// Atomic uploads: the temp file to publish (or discard) at close.
    atomic: Option<(Arc<Root>, AtomicUpload)>,
    /// Uploads: quota enforcement and bookkeeping.
    accounting: Option<UploadAccounting>,
    /// Highest end offset written (uploads), to measure growth against the quota.
    max_end: AtomicU64,
    /// Downloads: where the file ended when opened (`u64::MAX` once a read found more),
    /// what READ buffers are sized by (see [`Transfer::read_capacity`]).
    read_end: AtomicU64,
    throttle: Option<Throttle>,
    file: Arc<File>,
    /// The file's place among those its user has open (see `OpenFiles`).
    _slot: OpenFile,
    /// The session's I/O queue (see [`SerialIo`]): the file's I/O runs there in order,
    /// with the session's other work, on one blocking thread at a time.
    io: SerialIo<Arc<Root>>,
}

impl Transfer {
    pub(crate) fn start_download(
        opened: OpenedFile,
        slot: OpenFile,
        io: SerialIo<Arc<Root>>,
        path: VirtualPath,
        host_path: PathBuf,
        state: Arc<ConnectionState>,
        throttle: Option<Throttle>,
    ) -> Self {
        let t = Self::start(
            (opened.file, slot),
            io,
            TransferKind::Download,
            path,
            host_path,
            state,
            None,
            None,
            throttle,
        );
        t.inner.read_end.store(opened.size, Ordering::Relaxed);
        t
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_upload(
        file: (File, OpenFile),
        io: SerialIo<Arc<Root>>,
        path: VirtualPath,
        host_path: PathBuf,
        state: Arc<ConnectionState>,
        atomic: Option<(Arc<Root>, AtomicUpload)>,
        accounting: UploadAccounting,
        throttle: Option<Throttle>,
    ) -> Self {
        Self::start(
            file,
            io,
            TransferKind::Upload,
            path,
            host_path,
            state,
            atomic,
            Some(accounting),
            throttle,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        (file, slot): (File, OpenFile),
        io: SerialIo<Arc<Root>>,
        kind: TransferKind,
        path: VirtualPath,
        host_path: PathBuf,
        state: Arc<ConnectionState>,
        atomic: Option<(Arc<Root>, AtomicUpload)>,
        accounting: Option<UploadAccounting>,
        throttle: Option<Throttle>,
    ) -> Self {
        let now = now_ms();
        let stats = Arc::new(TransferStats {
            kind,
            path: path.display().to_string(),
            start_time: now,
            bytes: Default::default(),
            last_activity: now.into(),
        });
        state.add_transfer(stats.clone());
        let max_end = AtomicU64::new(
            accounting
                .as_ref()
                .map_or(0, |a| a.initial_size.max(0) as u64),
        );
        Self {
            inner: Arc::new(Inner {
                kind,
                path,
                host_path,
                state,
                stats,
                started: Instant::now(),
                failure: std::sync::OnceLock::new(),
                finished: Mutex::new(false),
                atomic,
                accounting,
                max_end,
                read_end: AtomicU64::new(u64::MAX),
                throttle,
                file: Arc::new(file),
                _slot: slot,
                io,
            }),
        }
    }

    pub fn kind(&self) -> TransferKind {
        self.inner.kind
    }

    pub fn path(&self) -> &VirtualPath {
        &self.inner.path
    }

    /// Bytes moved so far.
    pub fn bytes(&self) -> u64 {
        self.inner.stats.bytes.load(Ordering::Relaxed)
    }

    /// Runs `f` on the file on the blocking pool, after the session's earlier I/O
    /// (see [`SerialIo`]).
    async fn blocking<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&File) -> io::Result<T> + Send + 'static,
    {
        let file = self.inner.file.clone();
        self.inner.io.run(move |_| f(&file)).await
    }

    /// [`Transfer::blocking`] for work that may wait long (fsync; see
    /// [`SerialIo::run_long`]).
    async fn blocking_long<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&File) -> io::Result<T> + Send + 'static,
    {
        let file = self.inner.file.clone();
        self.inner.io.run_long(move |_| f(&file)).await
    }

    /// [`SerialIo::now_if_idle`] on the file.
    fn now_if_idle<T>(&self, f: impl FnOnce(&File) -> T) -> Option<T> {
        self.inner.io.now_if_idle(|_| f(&self.inner.file))
    }

    /// The room a read of up to `len` bytes at `offset` should have in its buffer: what
    /// the file held there when it was opened, plus a page (so that reading up to the end
    /// also sees it: a read shorter than its room), at most `len`. A client asks for as
    /// much as the server allows (255 KiB with OpenSSH's) whatever the file's size; a
    /// buffer that size for each 4 KiB file made the allocator grow and trim its heap on
    /// every READ (~8% of a connection thread serving small downloads, perf). A file that
    /// grew since it was opened still reads whole: the buffer grows (see [`pread_into`]).
    pub fn read_capacity(&self, offset: u64, len: usize) -> usize {
        read_room(self.inner.read_end.load(Ordering::Relaxed), offset, len)
    }

    /// Reads up to `len` bytes at `offset`, appending them to `buf` (which the caller
    /// sized with [`Transfer::read_capacity`] and may have started with a protocol
    /// header), so file data is read straight into the reply with no further copy.
    /// Returns the buffer and the bytes read (0 at end of file).
    pub async fn read_at(
        &self,
        offset: u64,
        len: usize,
        mut buf: BytesMut,
    ) -> (BytesMut, io::Result<usize>) {
        if self.inner.kind != TransferKind::Download {
            return (
                buf,
                Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "handle not open for reading",
                )),
            );
        }
        if let Err(e) = file_range(offset, len as u64) {
            return (buf, Err(e));
        }
        if let Some(t) = &self.inner.throttle {
            t.consume(len).await;
        }
        // What the page cache holds is read here; the rest (if any) on the blocking thread.
        let end = self.inner.read_end.load(Ordering::Relaxed);
        let mut done = 0;
        match self.now_if_idle(|file| pread_into(file, &mut buf, offset, len, end, Wait::No)) {
            Some(Ok(Read { n, complete: true })) => return self.finish_read(offset, buf, Ok(n)),
            Some(Ok(Read { n, complete: false })) => done = n,
            Some(Err(e)) => return self.finish_read(offset, buf, Err(e)),
            None => {}
        }
        let joined = self
            .blocking(move |file| {
                let res = pread_into(
                    file,
                    &mut buf,
                    offset + done as u64,
                    len - done,
                    end,
                    Wait::Yes,
                )
                .map(|r| done + r.n);
                Ok((buf, res))
            })
            .await;
        match joined {
            Ok((buf, res)) => self.finish_read(offset, buf, res),
            Err(e) => (BytesMut::new(), Err(e)),
        }
    }

    fn finish_read(
        &self,
        offset: u64,
        buf: BytesMut,
        res: io::Result<usize>,
    ) -> (BytesMut, io::Result<usize>) {
        match &res {
            Ok(n) => {
                self.add_bytes(*n as u64);
                // The file has grown since it was opened: size the later reads in full.
                if offset + *n as u64 > self.inner.read_end.load(Ordering::Relaxed) {
                    self.inner.read_end.store(u64::MAX, Ordering::Relaxed);
                }
            }
            Err(e) => self.fail(e.to_string()),
        }
        (buf, res)
    }

    /// Writes `data` at `offset`.
    pub async fn write_at(&self, offset: u64, data: Bytes) -> io::Result<()> {
        self.write_vectored_at(offset, vec![data]).await
    }

    /// Writes the concatenation of `data` at `offset` (one `pwritev`: a request's data may
    /// arrive in several buffers, which are not copied together).
    pub async fn write_vectored_at(&self, offset: u64, data: Vec<Bytes>) -> io::Result<()> {
        if self.inner.kind != TransferKind::Upload {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "handle not open for writing",
            ));
        }
        let len: usize = data.iter().map(Bytes::len).sum();
        if let Err(e) = self.admit_growth(offset, len as u64) {
            // The refusal waits behind the writes already queued, so its reply does not
            // overtake theirs: OpenSSH's client keeps only the status of the last reply
            // it reads, and took a refused upload for a success when an earlier write's
            // OK arrived after the refusal.
            let _ = self.blocking(|_| Ok(())).await;
            return Err(e);
        }
        if let Some(t) = &self.inner.throttle {
            t.consume(len).await;
        }
        // Once a write failed, the later ones fail too, checked and recorded in I/O order:
        // a client that keeps only the last status it reads (OpenSSH's) must not see a
        // later write's OK as the outcome of an upload with a hole in it.
        let inner = self.inner.clone();
        let res = self
            .blocking(move |f| {
                if let Some(cause) = inner.failure.get() {
                    return Err(io::Error::other(format!(
                        "an earlier write failed: {cause}"
                    )));
                }
                // Checked here, in I/O order, so the refusal ends the upload as failed.
                file_range(offset, len as u64)
                    .and_then(|()| pwrite_all_vectored(f, &data, offset))
                    .inspect_err(|e| _ = inner.failure.set(e.to_string()))
            })
            .await;
        match &res {
            Ok(()) => self.add_bytes(len as u64),
            Err(e) => self.fail(e.to_string()),
        }
        res
    }

    /// Server-side copy (SFTP `copy-data`): `length` bytes (0 = to the end) of this
    /// download from `read_offset` into the upload `dst` at `write_offset`, without the
    /// data crossing the network: `copy_file_range` (in the kernel; a reflink where the
    /// filesystem has them), else `pread`/`pwrite`, a chunk per blocking job. The
    /// destination's quota, bandwidth and failure rules are a write's; the source's
    /// download bandwidth applies too. Returns the bytes copied (short at end of file).
    pub async fn copy_to(
        &self,
        dst: &Transfer,
        read_offset: u64,
        length: u64,
        write_offset: u64,
    ) -> io::Result<u64> {
        if self.inner.kind != TransferKind::Download {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "source handle not open for reading",
            ));
        }
        if dst.inner.kind != TransferKind::Upload {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "destination handle not open for writing",
            ));
        }
        let size = self.inner.file.metadata()?.len();
        let end = match length {
            0 => size,
            n => read_offset.saturating_add(n).min(size),
        };
        let total = end.saturating_sub(read_offset);
        file_range(write_offset, total)?;
        if self.inner.path == dst.inner.path
            && read_offset < write_offset.saturating_add(total)
            && write_offset < end
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "source and destination ranges overlap in the same file",
            ));
        }
        let mut copied = 0u64;
        while copied < total {
            let want = (total - copied).min(COPY_CHUNK);
            let (from, to) = (read_offset + copied, write_offset + copied);
            dst.admit_growth(to, want)?;
            for t in [&self.inner.throttle, &dst.inner.throttle]
                .into_iter()
                .flatten()
            {
                t.consume(want as usize).await;
            }
            let (src, inner) = (self.inner.file.clone(), dst.inner.clone());
            let res = dst
                .blocking(move |out| {
                    if let Some(cause) = inner.failure.get() {
                        return Err(io::Error::other(format!(
                            "an earlier write failed: {cause}"
                        )));
                    }
                    copy_range(&src, from, out, to, want)
                        .inspect_err(|e| _ = inner.failure.set(e.to_string()))
                })
                .await;
            let n = match res {
                Ok(n) => n,
                Err(e) => {
                    dst.fail(e.to_string());
                    return Err(e);
                }
            };
            self.add_bytes(n);
            dst.add_bytes(n);
            copied += n;
            if n < want {
                break; // the source ended early (it shrank)
            }
        }
        Ok(copied)
    }

    fn add_bytes(&self, n: u64) {
        self.inner.stats.add_bytes(n);
        self.inner.state.observers.metrics.bytes(self.inner.kind, n);
    }

    fn action_kind(&self) -> ActionKind {
        match self.inner.kind {
            TransferKind::Upload => ActionKind::Upload,
            TransferKind::Download => ActionKind::Download,
        }
    }

    /// Marks the transfer failed; the first cause goes to the transfer log.
    fn fail(&self, cause: String) {
        let _ = self.inner.failure.set(cause);
    }

    /// Refuses a write that would take the user past their size quota. The upload then
    /// ends as failed (an atomic upload is discarded).
    fn admit_growth(&self, offset: u64, len: u64) -> io::Result<()> {
        let Some(acc) = &self.inner.accounting else {
            return Ok(());
        };
        let end = if acc.append {
            acc.initial_size.max(0) as u64 + self.bytes() + len
        } else {
            offset.saturating_add(len)
        };
        let before = self.inner.max_end.fetch_max(end, Ordering::Relaxed);
        if end <= before {
            return Ok(()); // no growth (a write after a refused one fails in the I/O queue)
        }
        let growth = |size: u64| (size as i64).saturating_sub(acc.base_size);
        if let Err(left) = acc.reservation.grow(growth(before), growth(end)) {
            self.fail("quota exceeded".into());
            let more = growth(end) - growth(before).max(0);
            if self.inner.state.may_log() {
                tracing::info!(
                    sender = "quota",
                    username = %self.inner.state.user.username,
                    file_path = %self.inner.host_path.display(),
                    growth = growth(end),
                    left,
                    "quota exceeded during upload"
                );
            }
            return Err(io::Error::other(format!(
                "quota exceeded: the write would add {more} bytes, {left} left"
            )));
        }
        Ok(())
    }

    pub async fn stat(&self) -> Result<FileStat, FsError> {
        let stat = |f: &File| f.metadata().map(|m| FileStat::from(&m));
        match self.now_if_idle(stat) {
            Some(res) => res,
            None => self.blocking(stat).await,
        }
        .map_err(|e| FsError::Failure(e.to_string()))
    }

    pub async fn sync(&self) -> Result<(), FsError> {
        self.blocking_long(|f| f.sync_all())
            .await
            .map_err(|e| FsError::Failure(e.to_string()))
    }

    /// FSETSTAT on an open handle: only the size and times of a file being uploaded.
    pub async fn set_attrs(&self, attrs: SetAttrs) -> Result<(), FsError> {
        if attrs == SetAttrs::default() {
            return Ok(());
        }
        if self.inner.kind != TransferKind::Upload {
            return Err(FsError::PermissionDenied(
                "handle not open for writing".into(),
            ));
        }
        if let Some(size) = attrs.size {
            self.admit_growth(size, 0)
                .map_err(|e| FsError::QuotaExceeded(e.to_string()))?;
        }
        self.blocking(move |f| {
            if let Some(size) = attrs.size {
                f.set_len(size)?;
            }
            if let Some(mode) = attrs.permissions {
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(std::fs::Permissions::from_mode(mode & 0o777))?;
            }
            if let Some((atime, mtime)) = attrs.times {
                let t =
                    |s: u32| std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::from(s));
                f.set_times(
                    std::fs::FileTimes::new()
                        .set_accessed(t(atime))
                        .set_modified(t(mtime)),
                )?;
            }
            Ok(())
        })
        .await
        .map_err(|e| FsError::Failure(e.to_string()))
    }

    /// Ends the transfer: `completed` is false when the client went away or the
    /// connection was killed before closing the file. An atomic upload is published only
    /// when it completed without error (fsync, then rename over the target); otherwise its
    /// temp file is removed and the previous target, if any, is untouched. Logs once.
    pub async fn close(&self, completed: bool) -> Result<(), FsError> {
        {
            let mut finished = self
                .inner
                .finished
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if *finished {
                return Ok(());
            }
            *finished = true;
        }
        let ok = completed && self.inner.failure.get().is_none();
        let atomic = self.inner.atomic.as_ref().map(|(root, upload)| {
            (
                root.clone(),
                upload.temp.clone(),
                upload.target.clone(),
                upload.replace,
            )
        });
        let wants_action = self.inner.state.observers.actions.wants(self.action_kind());
        let counted = self.inner.accounting.is_some() || wants_action;
        // (final size, published): the file's size now, and whether it is at the target.
        let size_of = move |f: &File| -> io::Result<i64> {
            Ok(if counted {
                f.metadata()?.len() as i64
            } else {
                0
            })
        };
        // Without a temp file to publish, closing needs only an fstat: done here when
        // the session's queued I/O is over (it is, once the client has its write replies).
        let inline = match atomic {
            None => self.now_if_idle(|f| size_of(f).map(|size| (size, true))),
            Some(_) => None,
        };
        let outcome = match inline {
            Some(res) => res,
            None => {
                let publishes = atomic.is_some();
                let finish = move |f: &File| {
                    let size = size_of(f)?;
                    let Some((root, temp, target, replace)) = atomic else {
                        return Ok((size, true));
                    };
                    let published = ok
                        && f.sync_all()
                            .and_then(|()| root.rename(&temp, &target, replace))
                            .is_ok();
                    if !published {
                        let _ = root.remove_file(&temp);
                    }
                    Ok((size, published))
                };
                if publishes {
                    self.blocking_long(finish).await
                } else {
                    self.blocking(finish).await
                }
            }
        };
        let mut final_size = None;
        let result = match outcome {
            Ok((size, true)) => {
                if let Some(acc) = &self.inner.accounting {
                    acc.reservation
                        .settle(size - acc.base_size, i64::from(acc.new_file));
                }
                final_size = Some(size.max(0) as u64);
                Ok(())
            }
            Ok((_, false)) if !ok => Ok(()),
            Ok((_, false)) => Err(FsError::Failure("cannot publish the upload".into())),
            Err(e) => Err(FsError::Failure(format!("cannot finish the upload: {e}"))),
        };
        // A failed transfer fails its CLOSE too, so a client hears of it even if it let
        // the failed request's own status go by.
        let result = match (result, self.inner.failure.get()) {
            (Ok(()), Some(cause)) if completed => {
                Err(FsError::Failure(format!("the transfer failed: {cause}")))
            }
            (result, _) => result,
        };
        let status = match (&result, ok) {
            (Err(e), _) => e.to_string(),
            (Ok(()), true) => "ok".to_string(),
            (Ok(()), false) if !completed => {
                "aborted: the connection ended before the file was closed".to_string()
            }
            (Ok(()), false) => self
                .inner
                .failure
                .get()
                .cloned()
                .unwrap_or_else(|| "failed".into()),
        };
        self.log(&status);
        let succeeded = ok && result.is_ok();
        let observers = &self.inner.state.observers;
        observers
            .metrics
            .transfer_finished(self.inner.kind, succeeded);
        if wants_action {
            if succeeded {
                let size = match self.inner.kind {
                    TransferKind::Upload => final_size,
                    TransferKind::Download => Some(self.bytes()),
                };
                observers.actions.fire(ActionEvent {
                    kind: self.action_kind(),
                    username: self.inner.state.user.username.clone(),
                    path: self.inner.host_path.clone(),
                    target: None,
                    virtual_path: self.inner.path.display().to_string(),
                    size,
                });
            } else if self.inner.state.may_log() {
                tracing::info!(
                    sender = "actions",
                    action = self.action_kind().as_str(),
                    username = %self.inner.state.user.username,
                    file_path = %self.inner.host_path.display(),
                    "transfer did not succeed, no action run"
                );
            }
        }
        result
    }

    fn log(&self, status: &str) {
        let inner = &self.inner;
        inner.state.remove_transfer(&inner.stats);
        if !inner.state.may_log() {
            return;
        }
        tracing::info!(
            sender = inner.kind.log_sender(),
            elapsed_ms = inner.started.elapsed().as_millis() as u64,
            size_bytes = self.bytes(),
            username = %inner.state.user.username,
            file_path = %inner.host_path.display(),
            connection_id = %inner.state.id,
            protocol = inner.state.protocol().as_str(),
            status,
            "transfer"
        );
    }
}

/// Reads up to `len` bytes at `offset`, appended to `buf` (in its spare capacity: no
/// zero-fill of the 255 KiB a READ asks for). Short only at end of file. Returns the
/// bytes read.
/// Bytes a server-side copy moves per blocking job.
const COPY_CHUNK: u64 = 4 << 20;

/// Copies `len` bytes from `src` at `from` to `out` at `to`; fewer only at the source's
/// end. In the kernel where it can (`copy_file_range`), else through a buffer.
fn copy_range(src: &File, from: u64, out: &File, to: u64, len: u64) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let (mut from_off, mut to_off) = (from, to);
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(1 << 30) as usize;
        match rustix::fs::copy_file_range(src, Some(&mut from_off), out, Some(&mut to_off), n) {
            Ok(0) => return Ok(done),
            Ok(n) => done += n as u64,
            // Not between these files (another filesystem, a kernel without it): by hand.
            Err(e)
                if [
                    rustix::io::Errno::XDEV,
                    rustix::io::Errno::NOSYS,
                    rustix::io::Errno::INVAL,
                    rustix::io::Errno::OPNOTSUPP,
                ]
                .contains(&e) =>
            {
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut buf = vec![0u8; (len - done).min(1 << 20) as usize];
    while done < len {
        let want = ((len - done) as usize).min(buf.len());
        let n = src.read_at(&mut buf[..want], from + done)?;
        if n == 0 {
            break;
        }
        out.write_all_at(&buf[..n], to + done)?;
        done += n as u64;
    }
    Ok(done)
}

/// Whether a read may wait for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Yes,
    /// `RWF_NOWAIT`: only what the page cache holds.
    No,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Read {
    n: usize,
    /// `len` bytes were read, or the end of the file reached. A `Wait::No` read stops
    /// short (`false`) where the data is not in memory, or where the filesystem does not
    /// support `RWF_NOWAIT`; the caller reads the rest with `Wait::Yes`.
    complete: bool,
}

/// See [`Transfer::read_capacity`]; `end` is where the file ended when opened.
fn read_room(end: u64, offset: u64, len: usize) -> usize {
    const PAGE: u64 = 4096;
    let expected = end.saturating_sub(offset).saturating_add(PAGE);
    len.min(usize::try_from(expected).unwrap_or(usize::MAX))
}

/// Reads up to `len` bytes at `offset` into `buf`'s spare capacity (appended after what
/// it holds) until `len` bytes or the end of the file. `end` is where the file ended when
/// opened (`u64::MAX`: unknown): a read that comes back short at or past it has found the
/// end, without another read to make sure. When the spare capacity runs out first (the
/// file grew), `buf` grows.
fn pread_into(
    file: &File,
    buf: &mut BytesMut,
    offset: u64,
    len: usize,
    end: u64,
    wait: Wait,
) -> io::Result<Read> {
    use std::os::fd::AsRawFd;
    let mut filled = 0;
    let flags = if wait == Wait::No {
        libc::RWF_NOWAIT
    } else {
        0
    };
    while filled < len {
        if buf.len() == buf.capacity() {
            buf.reserve(len - filled);
        }
        let room = (buf.capacity() - buf.len()).min(len - filled);
        let spare = &mut buf.spare_capacity_mut()[..room];
        let iov = libc::iovec {
            iov_base: spare.as_mut_ptr().cast(),
            iov_len: spare.len(),
        };
        let at = (offset + filled as u64) as libc::off_t;
        // SAFETY: `iov` describes `spare`, writable memory owned by `buf` that outlives
        // the call; the kernel writes at most `iov_len` bytes into it. (Hand-written:
        // rustix's `preadv2` takes initialized slices, and zeroing them first is the copy
        // this function exists to avoid.)
        let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, at, flags) };
        if n < 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN | libc::EOPNOTSUPP | libc::EINVAL) if wait == Wait::No => {
                    return Ok(Read {
                        n: filled,
                        complete: false,
                    });
                }
                _ => return Err(err),
            }
        }
        if n == 0 {
            break;
        }
        let n = n as usize;
        // SAFETY: the kernel initialized the first `n <= room` bytes of the spare
        // capacity, i.e. `buf[buf.len()..buf.len() + n]`, within the buffer's capacity.
        unsafe { buf.set_len(buf.len() + n) };
        filled += n;
        // A regular file reads short only at its end (or on a filesystem that splits
        // reads, which is why a short read before `end` reads on).
        if n < room && offset + filled as u64 >= end {
            break;
        }
    }
    Ok(Read {
        n: filled,
        complete: true,
    })
}

/// Refuses a range a file position cannot hold. File offsets are `off_t` (i64): a larger
/// `u64` from a client would reach `preadv2`/`pwritev2` as a negative number, and -1 there
/// means "at the current position", not an error.
fn file_range(offset: u64, len: u64) -> io::Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= i64::MAX as u64 => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("offset {offset} + length {len} is beyond the largest file offset"),
        )),
    }
}

/// Writes all of `bufs`, in order, at `offset` with as few `pwritev` calls as the kernel
/// allows.
fn pwrite_all_vectored(file: &File, bufs: &[Bytes], mut offset: u64) -> io::Result<()> {
    const IOV_MAX: usize = 1024;
    let mut first = 0; // index of the first buffer not fully written
    let mut skip = 0; // bytes of it already written
    while first < bufs.len() {
        if bufs[first].len() == skip {
            first += 1;
            skip = 0;
            continue;
        }
        let iov: Vec<io::IoSlice<'_>> = bufs[first..]
            .iter()
            .take(IOV_MAX)
            .enumerate()
            .map(|(i, b)| io::IoSlice::new(if i == 0 { &b[skip..] } else { b }))
            .collect();
        match rustix::io::pwritev(file, &iov, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(mut n) => {
                offset += n as u64;
                while n > 0 {
                    let left = bufs[first].len() - skip;
                    if n < left {
                        skip += n;
                        n = 0;
                    } else {
                        n -= left;
                        first += 1;
                        skip = 0;
                    }
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A transfer dropped without close (session torn down) still leaves the view, and
        // an unpublished atomic upload never lingers.
        self.state.remove_transfer(&self.stats);
        let finished = *self.finished.lock().unwrap_or_else(|e| e.into_inner());
        if let (false, Some((root, upload))) = (finished, &self.atomic) {
            let _ = root.remove_file(&upload.temp);
        }
    }
}

#[cfg(test)]
mod io_tests {
    use super::*;

    /// A 300,000-byte file of a repeating pattern, open for reading, and its content.
    fn patterned_file() -> (tempfile::TempDir, File, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let file = File::open(&path).unwrap();
        (dir, file, content)
    }

    #[test]
    fn pread_into_appends_after_a_header_and_stops_at_eof() {
        let (_dir, file, content) = patterned_file();
        let full = |n| Read { n, complete: true };
        let mut buf = BytesMut::with_capacity(3);
        buf.extend_from_slice(b"hdr");
        assert_eq!(
            pread_into(&file, &mut buf, 1000, 255 * 1024, u64::MAX, Wait::Yes).unwrap(),
            full(255 * 1024)
        );
        assert_eq!(&buf[..3], b"hdr");
        assert_eq!(&buf[3..], &content[1000..1000 + 255 * 1024]);
        // Short at end of file, empty past it.
        let mut buf = BytesMut::new();
        let r = pread_into(&file, &mut buf, 299_990, 100, u64::MAX, Wait::Yes).unwrap();
        assert_eq!(r, full(10));
        assert_eq!(&buf[..], &content[299_990..]);
        let mut buf = BytesMut::new();
        let r = pread_into(&file, &mut buf, 400_000, 100, u64::MAX, Wait::Yes).unwrap();
        assert_eq!(r, full(0));
        assert!(buf.is_empty());
    }

    /// A `Wait::No` read returns a prefix of what a waiting read returns (all of it when
    /// the data is in the page cache, as here right after writing), and says so.
    #[test]
    fn nowait_reads_return_a_prefix_and_the_rest_follows() {
        let (_dir, file, content) = patterned_file();
        for (offset, len) in [(0, 255 * 1024), (299_990, 100), (400_000, 100)] {
            let mut buf = BytesMut::new();
            let first = pread_into(&file, &mut buf, offset, len, u64::MAX, Wait::No).unwrap();
            let mut n = first.n;
            if !first.complete {
                let rest = pread_into(
                    &file,
                    &mut buf,
                    offset + n as u64,
                    len - n,
                    u64::MAX,
                    Wait::Yes,
                );
                n += rest.unwrap().n;
            }
            let start = (offset as usize).min(content.len());
            let end = (start + len).min(content.len());
            assert_eq!(n, end - start);
            assert_eq!(&buf[..], &content[start..end]);
        }
        // Cached here (just written): served without waiting.
        let mut buf = BytesMut::new();
        let r = pread_into(&file, &mut buf, 0, 4096, u64::MAX, Wait::No).unwrap();
        assert_eq!(
            r,
            Read {
                n: 4096,
                complete: true
            }
        );
    }

    /// Buffers sized by the size at open: small for a small file or at its end, whole
    /// for a large one, and a file that grew since it was opened still reads whole (the
    /// buffer grows), whether the rest is found by a waiting read or not.
    #[test]
    fn reads_sized_by_the_size_at_open_return_what_the_file_holds_now() {
        assert_eq!(read_room(4096, 0, 255 * 1024), 8192);
        assert_eq!(read_room(4096, 4096, 255 * 1024), 4096);
        assert_eq!(read_room(4096, 1 << 40, 255 * 1024), 4096);
        assert_eq!(read_room(300_000, 0, 255 * 1024), 255 * 1024);
        assert_eq!(read_room(u64::MAX, 0, 255 * 1024), 255 * 1024);
        assert_eq!(read_room(u64::MAX, u64::MAX, 10), 10);
        assert_eq!(read_room(0, 0, 0), 0);

        let (_dir, file, content) = patterned_file(); // 300,000 bytes
        for wait in [Wait::No, Wait::Yes] {
            // As opened: every byte, with the room the size asked for.
            for (offset, len) in [(0usize, 255 * 1024), (295_000, 65_536), (300_000, 4096)] {
                let room = read_room(300_000, offset as u64, len);
                let mut buf = BytesMut::with_capacity(3 + room);
                buf.extend_from_slice(b"hdr");
                let r = pread_into(&file, &mut buf, offset as u64, len, 300_000, wait).unwrap();
                let want = &content[offset.min(300_000)..(offset + len).min(300_000)];
                assert!(r.complete || wait == Wait::No);
                if r.complete {
                    assert_eq!(r.n, want.len(), "{offset}+{len}");
                    assert_eq!(&buf[3..], want);
                }
            }
            // Opened when it held 1000 bytes: the 255 KiB asked for still come back whole.
            let len = 255 * 1024;
            let mut buf = BytesMut::with_capacity(3 + read_room(1000, 0, len));
            buf.extend_from_slice(b"hdr");
            let r = pread_into(&file, &mut buf, 0, len, 1000, wait).unwrap();
            if r.complete {
                assert_eq!(r.n, len);
                assert_eq!(&buf[3..], &content[..len]);
            }
            // ... and a read at the old end finds the data after it.
            let mut buf = BytesMut::with_capacity(read_room(1000, 1000, 10_000));
            let r = pread_into(&file, &mut buf, 1000, 10_000, 1000, wait).unwrap();
            if r.complete {
                assert_eq!(&buf[..], &content[1000..11_000]);
            }
        }
    }

    #[test]
    fn pwrite_all_vectored_writes_every_buffer_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let parts: Vec<Bytes> = (0..2000u32)
            .map(|i| Bytes::from(vec![(i % 256) as u8; (i % 7) as usize * 13]))
            .collect();
        let expected: Vec<u8> = parts.iter().flat_map(|b| b.iter().copied()).collect();
        pwrite_all_vectored(&file, &parts, 5).unwrap();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(&got[..5], &[0u8; 5]);
        assert_eq!(&got[5..], &expected[..]);
    }
}
