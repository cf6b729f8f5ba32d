//! Where a user's files live: the filesystem trait every storage backend implements, and
//! the enum the rest of the shared layer holds.
//!
//! A backend only stores: it answers "what is there" and "do this", each call as one
//! step in the session's order, and reports facts (the file a remove or rename replaced,
//! what an upload's path leads to). Policy stays above it, in `UserFs` and `Transfer`:
//! permissions, quota decisions, logs, actions. Errors are `io::Error`s whose kind says
//! what happened (`NotFound`, `PermissionDenied`, `Unsupported`, ...); `UserFs` turns them
//! into the client's status and decides what is worth a log line.
//!
//! Backends: [`local::LocalFs`], beneath a home dir's open fd (`sftpgo_vfs::Root`), its
//! blocking calls in the session's order on one blocking thread at a time
//! ([`serial_io`]) and cache-only lookups on the calling thread; [`s3::S3Fs`], objects
//! under a prefix of an S3-compatible bucket.
//!
//! Why an enum ([`AnyFs`], [`AnyFile`]) over the trait rather than `dyn`: the trait's
//! methods are `async` and take closures, which `dyn` cannot express without boxing a
//! future per call, i.e. an allocation per SFTP request on the hot path.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use sftpgo_vfs::{DirEntry, FileStat, Root, StatVfs, VirtualPath};

use crate::fs::{SetAttrs, UploadFlags};

pub mod local;
pub mod s3;
pub(crate) mod serial_io;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

/// What a backend can do beyond storing files and directories; a request for the rest is
/// refused with [`io::ErrorKind::Unsupported`] before it reaches the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// A rename replaces its target in one step (and a directory can be renamed).
    pub atomic_rename: bool,
    pub symlinks: bool,
    pub hard_links: bool,
    /// Writes at any offset of an existing file (append, resume, random access).
    pub random_writes: bool,
    /// Modes, times and ownership are stored.
    pub setstat: bool,
    /// Free space can be asked for.
    pub statvfs: bool,
    /// Uploads are collected in memory and sent at the store's pace (object storage
    /// parts): large writes in flight only hold the server's memory, they gain no speed.
    pub staged_writes: bool,
}

/// How an upload wants its file opened.
#[derive(Debug, Clone, Copy)]
pub struct WriteRequest {
    pub flags: UploadFlags,
    /// Mode of a created file (the umask already applied).
    pub mode: u32,
    /// uid/gid given to created files.
    pub owner: Option<(u32, u32)>,
    /// Write whole-file replacements to a temp file published at close (`upload_mode` 1).
    pub atomic: bool,
    /// Try an exclusive create before probing (most uploads create a new file; the
    /// success says nothing was there, which saves the probes). Asked for only when the
    /// quota allows another file.
    pub create_first: bool,
}

/// What an upload's path leads to, as the admission decision sees it.
#[derive(Debug, Clone, Copy)]
pub struct UploadProbe {
    /// The file the upload writes or replaces (through a symlink, its target), if any.
    pub resolved: Option<FileStat>,
}

/// An opened upload.
pub struct OpenedWrite<F> {
    pub file: F,
    /// The entry at the client's path before the open (not following a final symlink).
    pub existing: Option<FileStat>,
    /// The file it led to (through a symlink, the link's target).
    pub resolved: Option<FileStat>,
    /// Written to a temp file, published at [`FsFile::finish`].
    pub atomic: bool,
    /// The file's size right after opening (after any truncation).
    pub size: u64,
}

impl<F> OpenedWrite<F> {
    fn map_file<G>(self, f: impl FnOnce(F) -> G) -> OpenedWrite<G> {
        OpenedWrite {
            file: f(self.file),
            existing: self.existing,
            resolved: self.resolved,
            atomic: self.atomic,
            size: self.size,
        }
    }
}

/// The regular files a rename moved and replaced, as they were before it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Renamed {
    pub source: Option<FileStat>,
    pub replaced: Option<FileStat>,
}

/// One session's view of a backend. Every call is one step in the session's order: a
/// request sees what the requests before it did.
pub trait Filesystem: Send + Sync + 'static {
    type File: FsFile;

    fn capabilities(&self) -> Capabilities;

    /// Where `path` lives, for logs and actions (a host path, an object URL).
    fn host_path(&self, path: &VirtualPath) -> PathBuf;

    fn stat(&self, path: &VirtualPath) -> impl Future<Output = io::Result<FileStat>> + Send;
    fn lstat(&self, path: &VirtualPath) -> impl Future<Output = io::Result<FileStat>> + Send;
    fn read_dir(
        &self,
        path: &VirtualPath,
    ) -> impl Future<Output = io::Result<Vec<DirEntry>>> + Send;
    fn read_link(&self, path: &VirtualPath) -> impl Future<Output = io::Result<Vec<u8>>> + Send;
    fn statvfs(&self, path: &VirtualPath) -> impl Future<Output = io::Result<StatVfs>> + Send;
    /// Creates a directory with `mode`, given to `owner`.
    fn mkdir(
        &self,
        path: &VirtualPath,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> impl Future<Output = io::Result<()>> + Send;
    fn rmdir(&self, path: &VirtualPath) -> impl Future<Output = io::Result<()>> + Send;
    /// Removes a file or symlink; returns the regular file removed, as it was.
    fn remove_file(
        &self,
        path: &VirtualPath,
    ) -> impl Future<Output = io::Result<Option<FileStat>>> + Send;
    /// Renames `from` to `to`; with `replace` false an existing target is an error.
    fn rename(
        &self,
        from: &VirtualPath,
        to: &VirtualPath,
        replace: bool,
    ) -> impl Future<Output = io::Result<Renamed>> + Send;
    /// Creates `link` pointing at `target` (a client path; [`Filesystem::read_link`]
    /// gives it back as a virtual path).
    fn symlink(
        &self,
        target: &[u8],
        link: &VirtualPath,
    ) -> impl Future<Output = io::Result<()>> + Send;
    fn hard_link(
        &self,
        from: &VirtualPath,
        to: &VirtualPath,
    ) -> impl Future<Output = io::Result<()>> + Send;
    /// Applies `attrs` (size, mode, times, ownership) to `path`.
    fn set_attrs(
        &self,
        path: &VirtualPath,
        attrs: SetAttrs,
    ) -> impl Future<Output = io::Result<()>> + Send;
    /// Opens `path` for reading; returns the file and its size.
    fn open_read(
        &self,
        path: &VirtualPath,
    ) -> impl Future<Output = io::Result<(Self::File, u64)>> + Send;
    /// Opens `path` for an upload. Everything the backend can know at open is checked
    /// here (a directory, a non-regular file, a missing parent, a link leading out), and
    /// `admit` decides on what the path leads to before anything is created (it may be
    /// asked twice: for a new file, then, if one was there, for what was); its refusal
    /// comes back as the inner `Err`.
    fn open_write<E, A>(
        &self,
        path: &VirtualPath,
        req: WriteRequest,
        admit: A,
    ) -> impl Future<Output = io::Result<Result<OpenedWrite<Self::File>, E>>> + Send
    where
        E: Send + 'static,
        A: Fn(UploadProbe) -> Result<(), E> + Send + 'static;
}

/// What an upload decides in I/O order, around each write: whether it may happen (once
/// one failed, the later ones fail too) and what its failure means (the upload fails).
pub trait IoGuard: Send + 'static {
    fn run<T>(self, io: impl FnOnce() -> io::Result<T>) -> io::Result<T>;
}

/// An open file of a backend.
pub trait FsFile: Send + Sync + 'static {
    /// Reads up to `len` bytes at `offset`, appended to `buf` (no copy, no zero-fill);
    /// `end` is where the file ended when opened (`u64::MAX`: unknown). Short only at the
    /// end of the file.
    fn read_at(
        &self,
        buf: BytesMut,
        offset: u64,
        len: usize,
        end: u64,
    ) -> impl Future<Output = (BytesMut, io::Result<usize>)> + Send;
    /// Writes the concatenation of `data` at `offset`, through `guard` in I/O order
    /// (after the writes queued before).
    fn write_at<G: IoGuard>(
        &self,
        offset: u64,
        data: Vec<Bytes>,
        guard: G,
    ) -> impl Future<Output = io::Result<()>> + Send;
    /// Resolves once the I/O queued before it is done.
    fn barrier(&self) -> impl Future<Output = ()> + Send;
    /// Copies up to `len` bytes of `src` at `from` to this file at `to`, without the
    /// data crossing the network; fewer only at the source's end. `guard` as in
    /// [`FsFile::write_at`].
    fn copy_from<G: IoGuard>(
        &self,
        src: &Self,
        from: u64,
        to: u64,
        len: u64,
        guard: G,
    ) -> impl Future<Output = io::Result<u64>> + Send;
    fn stat(&self) -> impl Future<Output = io::Result<FileStat>> + Send;
    fn sync(&self) -> impl Future<Output = io::Result<()>> + Send;
    /// FSETSTAT: size, mode, times.
    fn set_attrs(&self, attrs: SetAttrs) -> impl Future<Output = io::Result<()>> + Send;
    /// Ends the file: an upload is published when `publish` (an atomic one: made durable,
    /// then moved to its target) and discarded otherwise. Returns the file's final size
    /// (when `want_size`, else 0) and whether it is at its target. A file dropped
    /// without `finish` is discarded.
    fn finish(
        &self,
        publish: bool,
        want_size: bool,
    ) -> impl Future<Output = io::Result<(i64, bool)>> + Send;
}

/// The storage a login's home (or, later, a virtual folder) is on, shared by the
/// sessions of the connections that use it.
#[derive(Clone)]
pub enum Volume {
    /// A local directory, open (see `Core::shared_root`).
    Local(Arc<Root>),
    /// A prefix of an S3-compatible bucket.
    S3(Arc<s3::S3Volume>),
}

impl Volume {
    /// A session's view of the volume: its own order of requests.
    pub fn session(&self) -> AnyFs {
        match self {
            Volume::Local(root) => AnyFs::Local(local::LocalFs::new(root.clone())),
            Volume::S3(vol) => AnyFs::S3(s3::S3Fs::new(vol.clone())),
        }
    }
}

/// Any backend's session view (see the module doc for why an enum).
pub enum AnyFs {
    Local(local::LocalFs),
    S3(s3::S3Fs),
}

impl AnyFs {
    /// Whether a file of this storage can be copied into `other` without the data
    /// crossing the network ([`FsFile::copy_from`]): between local directories, and
    /// between buckets (or prefixes) of one S3 account, inside the store.
    pub fn copies_to(&self, other: &AnyFs) -> bool {
        match (self, other) {
            (AnyFs::Local(_), AnyFs::Local(_)) => true,
            (AnyFs::S3(a), AnyFs::S3(b)) => a.copies_to(b),
            _ => false,
        }
    }
}

/// Any backend's open file.
pub enum AnyFile {
    Local(local::LocalFile),
    /// Boxed: an S3 file carries its upload state, a local one is an `Arc`.
    S3(Box<s3::S3File>),
}

/// Forwards a call to the backend inside an [`AnyFs`] or [`AnyFile`].
macro_rules! dispatch {
    ($any:ident, $self:expr, $x:ident => $call:expr) => {
        match $self {
            $any::Local($x) => $call,
            // Boxed: an S3 call's future (the SDK's) is kilobytes, and every request's
            // task would carry that much inline, for local storage too (measured: a
            // fifth of the CPU of small-file downloads went to moving it).
            $any::S3($x) => Box::pin(async move { $call }).await,
        }
    };
}

impl Filesystem for AnyFs {
    type File = AnyFile;

    fn capabilities(&self) -> Capabilities {
        match self {
            AnyFs::Local(fs) => fs.capabilities(),
            AnyFs::S3(fs) => fs.capabilities(),
        }
    }

    fn host_path(&self, path: &VirtualPath) -> PathBuf {
        match self {
            AnyFs::Local(fs) => fs.host_path(path),
            AnyFs::S3(fs) => fs.host_path(path),
        }
    }

    async fn stat(&self, path: &VirtualPath) -> io::Result<FileStat> {
        dispatch!(AnyFs, self, fs => fs.stat(path).await)
    }

    async fn lstat(&self, path: &VirtualPath) -> io::Result<FileStat> {
        dispatch!(AnyFs, self, fs => fs.lstat(path).await)
    }

    async fn read_dir(&self, path: &VirtualPath) -> io::Result<Vec<DirEntry>> {
        dispatch!(AnyFs, self, fs => fs.read_dir(path).await)
    }

    async fn read_link(&self, path: &VirtualPath) -> io::Result<Vec<u8>> {
        dispatch!(AnyFs, self, fs => fs.read_link(path).await)
    }

    async fn statvfs(&self, path: &VirtualPath) -> io::Result<StatVfs> {
        dispatch!(AnyFs, self, fs => fs.statvfs(path).await)
    }

    async fn mkdir(
        &self,
        path: &VirtualPath,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> io::Result<()> {
        dispatch!(AnyFs, self, fs => fs.mkdir(path, mode, owner).await)
    }

    async fn rmdir(&self, path: &VirtualPath) -> io::Result<()> {
        dispatch!(AnyFs, self, fs => fs.rmdir(path).await)
    }

    async fn remove_file(&self, path: &VirtualPath) -> io::Result<Option<FileStat>> {
        dispatch!(AnyFs, self, fs => fs.remove_file(path).await)
    }

    async fn rename(
        &self,
        from: &VirtualPath,
        to: &VirtualPath,
        replace: bool,
    ) -> io::Result<Renamed> {
        dispatch!(AnyFs, self, fs => fs.rename(from, to, replace).await)
    }

    async fn symlink(&self, target: &[u8], link: &VirtualPath) -> io::Result<()> {
        dispatch!(AnyFs, self, fs => fs.symlink(target, link).await)
    }

    async fn hard_link(&self, from: &VirtualPath, to: &VirtualPath) -> io::Result<()> {
        dispatch!(AnyFs, self, fs => fs.hard_link(from, to).await)
    }

    async fn set_attrs(&self, path: &VirtualPath, attrs: SetAttrs) -> io::Result<()> {
        dispatch!(AnyFs, self, fs => fs.set_attrs(path, attrs).await)
    }

    async fn open_read(&self, path: &VirtualPath) -> io::Result<(AnyFile, u64)> {
        match self {
            AnyFs::Local(fs) => fs
                .open_read(path)
                .await
                .map(|(f, n)| (AnyFile::Local(f), n)),
            AnyFs::S3(fs) => Box::pin(fs.open_read(path))
                .await
                .map(|(f, n)| (AnyFile::S3(Box::new(f)), n)),
        }
    }

    async fn open_write<E, A>(
        &self,
        path: &VirtualPath,
        req: WriteRequest,
        admit: A,
    ) -> io::Result<Result<OpenedWrite<AnyFile>, E>>
    where
        E: Send + 'static,
        A: Fn(UploadProbe) -> Result<(), E> + Send + 'static,
    {
        Ok(match self {
            AnyFs::Local(fs) => fs
                .open_write(path, req, admit)
                .await?
                .map(|o| o.map_file(AnyFile::Local)),
            AnyFs::S3(fs) => Box::pin(fs.open_write(path, req, admit))
                .await?
                .map(|o| o.map_file(|f| AnyFile::S3(Box::new(f)))),
        })
    }
}

impl FsFile for AnyFile {
    async fn read_at(
        &self,
        buf: BytesMut,
        offset: u64,
        len: usize,
        end: u64,
    ) -> (BytesMut, io::Result<usize>) {
        dispatch!(AnyFile, self, f => f.read_at(buf, offset, len, end).await)
    }

    async fn write_at<G: IoGuard>(
        &self,
        offset: u64,
        data: Vec<Bytes>,
        guard: G,
    ) -> io::Result<()> {
        dispatch!(AnyFile, self, f => f.write_at(offset, data, guard).await)
    }

    async fn barrier(&self) {
        dispatch!(AnyFile, self, f => f.barrier().await)
    }

    async fn copy_from<G: IoGuard>(
        &self,
        src: &Self,
        from: u64,
        to: u64,
        len: u64,
        guard: G,
    ) -> io::Result<u64> {
        match (self, src) {
            (AnyFile::Local(dst), AnyFile::Local(src)) => {
                dst.copy_from(src, from, to, len, guard).await
            }
            (AnyFile::S3(dst), AnyFile::S3(src)) => {
                Box::pin(dst.copy_from(src, from, to, len, guard)).await
            }
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a server-side copy between different storages is not supported",
            )),
        }
    }

    async fn stat(&self) -> io::Result<FileStat> {
        dispatch!(AnyFile, self, f => f.stat().await)
    }

    async fn sync(&self) -> io::Result<()> {
        dispatch!(AnyFile, self, f => f.sync().await)
    }

    async fn set_attrs(&self, attrs: SetAttrs) -> io::Result<()> {
        dispatch!(AnyFile, self, f => f.set_attrs(attrs).await)
    }

    async fn finish(&self, publish: bool, want_size: bool) -> io::Result<(i64, bool)> {
        dispatch!(AnyFile, self, f => f.finish(publish, want_size).await)
    }
}
