//! A file being uploaded or downloaded. Every byte of file data a protocol moves goes
//! through here: positional I/O on the user's storage (a [`FsFile`]), progress for the
//! connection view, and the transfer log line when it ends. Quota, throttling and
//! actions hook in here.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use sftpgo_vfs::{FileStat, VirtualPath};

use crate::actions::{ActionEvent, ActionKind};
use crate::connection::{ConnectionState, OpenFile, TransferStats};
use crate::fs::{FsError, SetAttrs, UploadAccounting};
use crate::now_ms;
use crate::storage::{AnyFile, FsFile, IoGuard};
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
    /// Uploads: quota enforcement and bookkeeping.
    accounting: Option<UploadAccounting>,
    /// Highest end offset written (uploads), to measure growth against the quota.
    max_end: AtomicU64,
    /// Downloads: where the file ended when opened (`u64::MAX` once a read found more),
    /// what READ buffers are sized by (see [`Transfer::read_capacity`]).
    read_end: AtomicU64,
    throttle: Option<Throttle>,
    /// The file on the user's storage (its I/O in the session's order; an unpublished
    /// atomic upload is discarded when it drops).
    file: AnyFile,
    /// The file's place among those its user has open (see `OpenFiles`).
    _slot: OpenFile,
}

impl Transfer {
    pub(crate) fn start_download(
        (file, size): (AnyFile, u64),
        slot: OpenFile,
        path: VirtualPath,
        host_path: PathBuf,
        state: Arc<ConnectionState>,
        throttle: Option<Throttle>,
    ) -> Self {
        let t = Self::start(
            (file, slot),
            TransferKind::Download,
            path,
            host_path,
            state,
            None,
            throttle,
        );
        t.inner.read_end.store(size, Ordering::Relaxed);
        t
    }

    pub(crate) fn start_upload(
        file: (AnyFile, OpenFile),
        path: VirtualPath,
        host_path: PathBuf,
        state: Arc<ConnectionState>,
        accounting: UploadAccounting,
        throttle: Option<Throttle>,
    ) -> Self {
        Self::start(
            file,
            TransferKind::Upload,
            path,
            host_path,
            state,
            Some(accounting),
            throttle,
        )
    }

    fn start(
        (file, slot): (AnyFile, OpenFile),
        kind: TransferKind,
        path: VirtualPath,
        host_path: PathBuf,
        state: Arc<ConnectionState>,
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
                accounting,
                max_end,
                read_end: AtomicU64::new(u64::MAX),
                throttle,
                file,
                _slot: slot,
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
        buf: BytesMut,
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
        let end = self.inner.read_end.load(Ordering::Relaxed);
        let (buf, res) = self.inner.file.read_at(buf, offset, len, end).await;
        self.finish_read(offset, buf, res)
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
            self.inner.file.barrier().await;
            return Err(e);
        }
        if let Some(t) = &self.inner.throttle {
            t.consume(len).await;
        }
        // Once a write failed, the later ones fail too, checked and recorded in I/O order:
        // a client that keeps only the last status it reads (OpenSSH's) must not see a
        // later write's OK as the outcome of an upload with a hole in it.
        let guard = Guard {
            inner: self.inner.clone(),
            range: (offset, len as u64),
        };
        let res = self.inner.file.write_at(offset, data, guard).await;
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
        let size = self.inner.file.stat().await?.size;
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
            let guard = Guard {
                inner: dst.inner.clone(),
                range: (to, want),
            };
            let res = dst
                .inner
                .file
                .copy_from(&self.inner.file, from, to, want, guard)
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
        self.inner
            .file
            .stat()
            .await
            .map_err(|e| FsError::Failure(e.to_string()))
    }

    pub async fn sync(&self) -> Result<(), FsError> {
        self.inner
            .file
            .sync()
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
        let attrs = match &self.inner.accounting {
            Some(a) if a.ignore_setstat => SetAttrs {
                size: attrs.size,
                ..SetAttrs::default()
            },
            _ => SetAttrs {
                uid_gid: None,
                ..attrs
            },
        };
        self.inner
            .file
            .set_attrs(attrs)
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
        let wants_action = self.inner.state.observers.actions.wants(self.action_kind());
        let counted = self.inner.accounting.is_some() || wants_action;
        // (final size, published): the file's size now, and whether it is at the target.
        let outcome = self.inner.file.finish(ok, counted).await;
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

/// Bytes a server-side copy moves per I/O job.
const COPY_CHUNK: u64 = 4 << 20;

/// See [`Transfer::read_capacity`]; `end` is where the file ended when opened.
fn read_room(end: u64, offset: u64, len: usize) -> usize {
    const PAGE: u64 = 4096;
    let expected = end.saturating_sub(offset).saturating_add(PAGE);
    len.min(usize::try_from(expected).unwrap_or(usize::MAX))
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

/// An upload's rule around each write, applied in I/O order: once a write failed, the
/// later ones fail too (a client that keeps only the last status it reads, OpenSSH's, must
/// not see a later write's OK as the outcome of an upload with a hole in it), and a range
/// a file position cannot hold is refused there, so that the refusal ends the upload as
/// failed.
struct Guard {
    inner: Arc<Inner>,
    /// (offset, length) written.
    range: (u64, u64),
}

impl IoGuard for Guard {
    fn run<T>(self, io: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        if let Some(cause) = self.inner.failure.get() {
            return Err(io::Error::other(format!(
                "an earlier write failed: {cause}"
            )));
        }
        file_range(self.range.0, self.range.1)
            .and_then(|()| io())
            .inspect_err(|e| _ = self.inner.failure.set(e.to_string()))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A transfer dropped without close (session torn down) still leaves the view (an
        // unpublished atomic upload is discarded by its file's own drop).
        self.state.remove_transfer(&self.stats);
    }
}

#[cfg(test)]
mod io_tests {
    use super::*;

    /// Buffers sized by the size at open: small for a small file or at its end, whole
    /// for a large one (a file that grew since it was opened still reads whole: the
    /// local backend's tests).
    #[test]
    fn reads_are_sized_by_the_size_at_open() {
        assert_eq!(read_room(4096, 0, 255 * 1024), 8192);
        assert_eq!(read_room(4096, 4096, 255 * 1024), 4096);
        assert_eq!(read_room(4096, 1 << 40, 255 * 1024), 4096);
        assert_eq!(read_room(300_000, 0, 255 * 1024), 255 * 1024);
        assert_eq!(read_room(u64::MAX, 0, 255 * 1024), 255 * 1024);
        assert_eq!(read_room(u64::MAX, u64::MAX, 10), 10);
        assert_eq!(read_room(0, 0, 0), 0);
    }
}
