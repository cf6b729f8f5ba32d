//! The local backend: a home dir on this machine's disk. Every path is resolved beneath
//! the home's open fd (`sftpgo_vfs::Root`); the session's blocking calls run in its order
//! on one blocking thread at a time ([`SerialIo`]); lookups the kernel can answer from its
//! caches (`RESOLVE_CACHED`), `RWF_NOWAIT` reads and `fstat`s run on the calling thread
//! when no earlier work of the session is queued, which spares a small request the thread
//! handoff that is most of its latency.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use sftpgo_vfs::{DirEntry, FileStat, OpenOptions, Root, StatVfs, VirtualPath};

use super::serial_io::SerialIo;
use super::{
    Capabilities, Filesystem, FsFile, IoGuard, OpenedWrite, Renamed, UploadProbe, WriteRequest,
};
use crate::fs::SetAttrs;

/// A session's view of a local home dir.
pub struct LocalFs {
    root: Arc<Root>,
    /// The session's blocking filesystem work, in order (see [`SerialIo`]).
    io: SerialIo<Arc<Root>>,
}

/// An open local file; its I/O runs in its session's order.
pub struct LocalFile {
    inner: Arc<FileInner>,
}

struct FileInner {
    file: File,
    io: SerialIo<Arc<Root>>,
    /// Atomic uploads: the temp file to publish (or discard) at finish.
    atomic: Option<AtomicUpload>,
    finished: AtomicBool,
}

/// An upload written to a hidden temp file, published by rename on success.
struct AtomicUpload {
    temp: VirtualPath,
    /// Where it is published: the client's path, or the file a symlink there leads to.
    target: VirtualPath,
    /// False for exclusive creates: publishing must not replace a file that appeared meanwhile.
    replace: bool,
}

impl LocalFs {
    pub fn new(root: Arc<Root>) -> Self {
        Self {
            io: SerialIo::new(root.clone()),
            root,
        }
    }

    /// Runs `f` on the session's I/O thread, after the work queued before it.
    async fn blocking<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Root) -> io::Result<T> + Send + 'static,
    {
        self.io.run(move |root| f(root)).await
    }

    /// A lookup the kernel may answer from its caches: tried on this thread first
    /// (`RESOLVE_CACHED` does no disk I/O, so it cannot stall the runtime), and on the
    /// blocking pool only when it would need the disk. Only while no earlier request's
    /// work is queued: a lookup must see what the requests sent before it did (a STAT
    /// right behind a MKDIR).
    async fn cached_or_blocking<T, C, F>(&self, cached: C, slow: F) -> io::Result<T>
    where
        T: Send + 'static,
        C: FnOnce(&Root) -> io::Result<Option<T>>,
        F: FnOnce(&Root) -> io::Result<T> + Send + 'static,
    {
        match self.io.now_if_idle(|root| cached(root)) {
            Some(Ok(Some(v))) => Ok(v),
            Some(Err(e)) => Err(e),
            Some(Ok(None)) | None => self.blocking(slow).await,
        }
    }

    fn file(&self, file: File, atomic: Option<AtomicUpload>) -> LocalFile {
        LocalFile {
            inner: Arc::new(FileInner {
                file,
                io: self.io.clone(),
                atomic,
                finished: AtomicBool::new(false),
            }),
        }
    }
}

/// The regular file at `path` (not following a final symlink), if it is one. Probed in
/// the blocking job of the operation that needs it, so that probe and operation are one
/// step in the session's order.
fn regular_file(r: &Root, path: &VirtualPath) -> Option<FileStat> {
    r.lstat(path).ok().filter(FileStat::is_file)
}

const READ: OpenOptions = OpenOptions {
    read: true,
    write: false,
    append: false,
    create: false,
    truncate: false,
    exclusive: false,
    mode: 0,
};

impl Filesystem for LocalFs {
    type File = LocalFile;

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_rename: true,
            symlinks: true,
            hard_links: true,
            random_writes: true,
            setstat: true,
            statvfs: true,
            staged_writes: false,
        }
    }

    fn host_path(&self, path: &VirtualPath) -> PathBuf {
        self.root.host_path(path)
    }

    async fn stat(&self, path: &VirtualPath) -> io::Result<FileStat> {
        let p = path.clone();
        self.cached_or_blocking(|r| r.stat_cached(path), move |r| r.stat(&p))
            .await
    }

    async fn lstat(&self, path: &VirtualPath) -> io::Result<FileStat> {
        let p = path.clone();
        self.cached_or_blocking(|r| r.lstat_cached(path), move |r| r.lstat(&p))
            .await
    }

    async fn read_dir(&self, path: &VirtualPath) -> io::Result<Vec<DirEntry>> {
        let p = path.clone();
        self.blocking(move |r| r.read_dir(&p)).await
    }

    async fn read_link(&self, path: &VirtualPath) -> io::Result<Vec<u8>> {
        let p = path.clone();
        self.blocking(move |r| r.read_link(&p)).await
    }

    async fn statvfs(&self, path: &VirtualPath) -> io::Result<StatVfs> {
        let p = path.clone();
        self.blocking(move |r| r.statvfs(&p)).await
    }

    async fn mkdir(
        &self,
        path: &VirtualPath,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> io::Result<()> {
        let p = path.clone();
        self.blocking(move |r| {
            r.mkdir(&p, mode)?;
            chown_created(r, &p, owner);
            Ok(())
        })
        .await
    }

    async fn rmdir(&self, path: &VirtualPath) -> io::Result<()> {
        let p = path.clone();
        self.blocking(move |r| r.rmdir(&p)).await
    }

    async fn remove_file(&self, path: &VirtualPath) -> io::Result<Option<FileStat>> {
        let p = path.clone();
        self.blocking(move |r| {
            let file = regular_file(r, &p);
            r.remove_file(&p).map(|()| file)
        })
        .await
    }

    async fn rename(
        &self,
        from: &VirtualPath,
        to: &VirtualPath,
        replace: bool,
    ) -> io::Result<Renamed> {
        let (f, t) = (from.clone(), to.clone());
        self.blocking(move |r| {
            let renamed = Renamed {
                source: regular_file(r, &f),
                replaced: if replace { regular_file(r, &t) } else { None },
            };
            r.rename(&f, &t, replace).map(|()| renamed)
        })
        .await
    }

    async fn symlink(&self, target: &[u8], link: &VirtualPath) -> io::Result<()> {
        let (t, l) = (target.to_vec(), link.clone());
        self.blocking(move |r| r.symlink(&t, &l)).await
    }

    async fn hard_link(&self, from: &VirtualPath, to: &VirtualPath) -> io::Result<()> {
        let (f, t) = (from.clone(), to.clone());
        self.blocking(move |r| r.hard_link(&f, &t)).await
    }

    async fn set_attrs(&self, path: &VirtualPath, attrs: SetAttrs) -> io::Result<()> {
        let p = path.clone();
        self.blocking(move |r| {
            if let Some(size) = attrs.size {
                r.set_len(&p, size)?;
            }
            if let Some(mode) = attrs.permissions {
                r.set_permissions(&p, mode & 0o777)?;
            }
            if let Some((atime, mtime)) = attrs.times {
                r.set_times(&p, epoch(atime), epoch(mtime))?;
            }
            if let Some((uid, gid)) = attrs.uid_gid {
                r.chown(&p, Some(uid), Some(gid))?;
            }
            Ok(())
        })
        .await
    }

    async fn open_read(&self, path: &VirtualPath) -> io::Result<(LocalFile, u64)> {
        let p = path.clone();
        let opened = self
            .cached_or_blocking(
                |r| r.open_file_cached(path, &READ),
                move |r| r.open_file_sized(&p, &READ),
            )
            .await?;
        Ok((self.file(opened.file, None), opened.size))
    }

    async fn open_write<E, A>(
        &self,
        path: &VirtualPath,
        req: WriteRequest,
        admit: A,
    ) -> io::Result<Result<OpenedWrite<LocalFile>, E>>
    where
        E: Send + 'static,
        A: Fn(UploadProbe) -> Result<(), E> + Send + 'static,
    {
        let flags = req.flags;
        let opts = OpenOptions {
            read: flags.read,
            write: true,
            append: flags.append,
            create: flags.create,
            truncate: flags.truncate,
            exclusive: flags.exclusive,
            mode: req.mode,
        };
        let p = path.clone();
        // One trip to the blocking pool: probe, admission, open.
        let planned = self
            .blocking(move |r| {
                // Most uploads create a new file. An exclusive create tries that first, and
                // its success says nothing was there, which the probes below would spend
                // three more path walks on (lstat, stat, fstat; the first of a name not
                // yet looked up searches the directory on disk). Anything there (file,
                // directory, symlink, even dangling) makes it fail with EEXIST, and the
                // probing path decides. Atomic mode writes a temp file, so it probes.
                if !req.atomic && flags.create && req.create_first {
                    if let Err(e) = admit(UploadProbe { resolved: None }) {
                        return Ok(Err(e));
                    }
                    let create = OpenOptions {
                        exclusive: true,
                        truncate: false,
                        ..opts
                    };
                    match r.open_file_sized(&p, &create) {
                        Ok(opened) => {
                            chown_created(r, &p, req.owner);
                            return Ok(Ok((None, None, opened, None)));
                        }
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && !flags.exclusive => {}
                        Err(e) => return Err(e),
                    }
                }
                // Everything known here is refused here, before a byte is written: many
                // clients (paramiko) never read the status of CLOSE or of pipelined WRITEs.
                // The entry itself, and the file it leads to: through a symlink, the
                // link's target (followed inside the home; one leading out is refused).
                let existing = missing_is_none(r.lstat(&p))?;
                let (target, resolved) = match existing {
                    Some(st) if st.is_symlink() => {
                        let target = r.real_path(&p)?;
                        let resolved = missing_is_none(r.stat(&target))?;
                        (target, resolved)
                    }
                    other => (p.clone(), other),
                };
                if let Some(st) = resolved {
                    if st.is_dir() {
                        return Err(io::Error::from_raw_os_error(libc::EISDIR));
                    }
                    if !st.is_file() {
                        return Err(io::Error::new(
                            io::ErrorKind::PermissionDenied,
                            "not a regular file",
                        ));
                    }
                }
                if let Err(e) = admit(UploadProbe { resolved }) {
                    return Ok(Err(e));
                }
                // Atomic mode covers writes that replace the whole file; resume and append
                // must see the existing data, so they write in place.
                let atomic = req.atomic
                    && flags.create
                    && !flags.append
                    && (flags.truncate || resolved.is_none());
                if atomic {
                    if flags.exclusive && existing.is_some() {
                        return Err(io::Error::from(io::ErrorKind::AlreadyExists));
                    }
                    // Beside the file the upload replaces (a symlinked name keeps its link),
                    // so the rename that publishes it stays within one directory.
                    let temp = temp_path(&target)?;
                    let temp_opts = OpenOptions {
                        create: true,
                        exclusive: true,
                        truncate: false,
                        ..opts
                    };
                    let opened = r.open_file_sized(&temp, &temp_opts)?;
                    chown_created(r, &temp, req.owner);
                    let upload = AtomicUpload {
                        temp,
                        target,
                        replace: !flags.exclusive,
                    };
                    return Ok(Ok((existing, resolved, opened, Some(upload))));
                }
                let opened = r.open_file_sized(&p, &opts)?;
                if existing.is_none() {
                    chown_created(r, &p, req.owner);
                }
                Ok(Ok((existing, resolved, opened, None)))
            })
            .await?;
        Ok(
            planned.map(|(existing, resolved, opened, atomic)| OpenedWrite {
                atomic: atomic.is_some(),
                file: self.file(opened.file, atomic),
                existing,
                resolved,
                size: opened.size,
            }),
        )
    }
}

impl LocalFile {
    /// Runs `f` on the file on the session's I/O thread, after its earlier I/O.
    async fn blocking<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&FileInner) -> io::Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        self.inner.io.run(move |_| f(&inner)).await
    }

    /// [`LocalFile::blocking`] for work that may wait long (fsync; see
    /// [`SerialIo::run_long`]).
    async fn blocking_long<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&FileInner) -> io::Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        self.inner.io.run_long(move |_| f(&inner)).await
    }

    /// [`SerialIo::now_if_idle`] on the file.
    fn now_if_idle<T>(&self, f: impl FnOnce(&File) -> T) -> Option<T> {
        self.inner.io.now_if_idle(|_| f(&self.inner.file))
    }
}

impl FsFile for LocalFile {
    async fn read_at(
        &self,
        mut buf: BytesMut,
        offset: u64,
        len: usize,
        end: u64,
    ) -> (BytesMut, io::Result<usize>) {
        // What the page cache holds is read here; the rest (if any) on the blocking thread.
        let mut done = 0;
        match self.now_if_idle(|file| pread_into(file, &mut buf, offset, len, end, Wait::No)) {
            Some(Ok(Read { n, complete: true })) => return (buf, Ok(n)),
            Some(Ok(Read { n, complete: false })) => done = n,
            Some(Err(e)) => return (buf, Err(e)),
            None => {}
        }
        let joined = self
            .blocking(move |f| {
                let at = offset + done as u64;
                let res = pread_into(&f.file, &mut buf, at, len - done, end, Wait::Yes)
                    .map(|r| done + r.n);
                Ok((buf, res))
            })
            .await;
        match joined {
            Ok((buf, res)) => (buf, res),
            Err(e) => (BytesMut::new(), Err(e)),
        }
    }

    async fn write_at<G: IoGuard>(
        &self,
        offset: u64,
        data: Vec<Bytes>,
        guard: G,
    ) -> io::Result<()> {
        self.blocking(move |f| guard.run(|| pwrite_all_vectored(&f.file, &data, offset)))
            .await
    }

    async fn barrier(&self) {
        let _ = self.blocking(|_| Ok(())).await;
    }

    async fn copy_from<G: IoGuard>(
        &self,
        src: &Self,
        from: u64,
        to: u64,
        len: u64,
        guard: G,
    ) -> io::Result<u64> {
        let src = src.inner.clone();
        self.blocking(move |out| guard.run(|| copy_range(&src.file, from, &out.file, to, len)))
            .await
    }

    async fn stat(&self) -> io::Result<FileStat> {
        let stat = |f: &File| f.metadata().map(|m| FileStat::from(&m));
        match self.now_if_idle(stat) {
            Some(res) => res,
            None => self.blocking(move |f| stat(&f.file)).await,
        }
    }

    async fn sync(&self) -> io::Result<()> {
        self.blocking_long(|f| f.file.sync_all()).await
    }

    async fn set_attrs(&self, attrs: SetAttrs) -> io::Result<()> {
        self.blocking(move |f| {
            let file = &f.file;
            if let Some(size) = attrs.size {
                file.set_len(size)?;
            }
            if let Some(mode) = attrs.permissions {
                use std::os::unix::fs::PermissionsExt;
                file.set_permissions(std::fs::Permissions::from_mode(mode & 0o777))?;
            }
            if let Some((atime, mtime)) = attrs.times {
                file.set_times(
                    std::fs::FileTimes::new()
                        .set_accessed(epoch(atime))
                        .set_modified(epoch(mtime)),
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn finish(&self, publish: bool, want_size: bool) -> io::Result<(i64, bool)> {
        if self.inner.finished.swap(true, Ordering::AcqRel) {
            return Ok((0, false));
        }
        let size_of = move |f: &File| -> io::Result<i64> {
            Ok(if want_size {
                f.metadata()?.len() as i64
            } else {
                0
            })
        };
        if self.inner.atomic.is_none() {
            // Nothing to publish: an fstat, done here when the session's queued I/O is
            // over (it is, once the client has its write replies).
            if let Some(res) = self.now_if_idle(size_of) {
                return res.map(|size| (size, true));
            }
            return self
                .blocking(move |f| size_of(&f.file).map(|size| (size, true)))
                .await;
        }
        self.blocking_long(move |f| {
            let size = size_of(&f.file)?;
            let Some(upload) = &f.atomic else {
                return Ok((size, true));
            };
            let root = f.io.resource();
            let published = publish
                && f.file
                    .sync_all()
                    .and_then(|()| root.rename(&upload.temp, &upload.target, upload.replace))
                    .is_ok();
            if !published {
                let _ = root.remove_file(&upload.temp);
            }
            Ok((size, published))
        })
        .await
    }
}

impl Drop for FileInner {
    fn drop(&mut self) {
        // An atomic upload dropped without finish (session torn down) never lingers.
        if let (false, Some(upload)) = (*self.finished.get_mut(), &self.atomic) {
            let _ = self.io.resource().remove_file(&upload.temp);
        }
    }
}

fn epoch(secs: u32) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::from(secs))
}

/// A stat's result with "no such file" as `None`; other errors stay errors.
fn missing_is_none(res: io::Result<FileStat>) -> io::Result<Option<FileStat>> {
    match res {
        Ok(st) => Ok(Some(st)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// `.sftpgo-upload.<random>.<name>` beside the target, within NAME_MAX.
fn temp_path(target: &VirtualPath) -> io::Result<VirtualPath> {
    let parent = target.parent().unwrap_or_else(VirtualPath::root);
    let name = target.file_name().unwrap_or(b"upload");
    let mut temp = TEMP_PREFIX.to_vec();
    temp.extend_from_slice(format!("{:016x}.", rand::random::<u64>()).as_bytes());
    temp.extend_from_slice(&name[..name.len().min(255 - temp.len())]);
    parent
        .join(&temp)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// Gives a newly created entry to the user's uid/gid; a failure is logged, not fatal
/// (0.9 semantics: the upload itself succeeded).
fn chown_created(root: &Root, path: &VirtualPath, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner
        && let Err(e) = root.chown(path, Some(uid), Some(gid))
    {
        tracing::warn!(sender = "fs", path = %path.display(), error = %e, "chown of a created entry failed");
    }
}

/// The name prefix of atomic-upload temp files.
pub const TEMP_PREFIX: &[u8] = b".sftpgo-upload.";

/// Whether `name` is one of our atomic-upload temp files.
fn is_temp_name(name: &[u8]) -> bool {
    name.strip_prefix(TEMP_PREFIX)
        .and_then(|rest| rest.get(..17))
        .is_some_and(|id| id[..16].iter().all(u8::is_ascii_hexdigit) && id[16] == b'.')
}

/// Removes atomic-upload temp files that a crash or a killed process left in the home
/// dir at `home`, walking it through the confinement layer (symlinks are neither followed
/// nor removed). Only temps not written for `max_age` go: an upload in progress, of this
/// process or of another instance sharing the storage, writes its temp file as it goes,
/// so it is never touched. Returns how many were removed; a home that does not exist has
/// none.
pub fn remove_stale_uploads(home: &std::path::Path, max_age: Duration) -> io::Result<usize> {
    let root = match Root::open(home) {
        Ok(root) => root,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let cutoff = std::time::SystemTime::now()
        .checked_sub(max_age)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(i64::MIN, |d| d.as_secs() as i64);
    let mut removed = 0;
    let mut stack = vec![VirtualPath::root()];
    while let Some(dir) = stack.pop() {
        // A directory removed or made unreadable meanwhile is skipped, not fatal.
        let Ok(entries) = root.read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let Ok(path) = dir.join(&entry.name) else {
                continue;
            };
            if entry.stat.is_dir() {
                stack.push(path);
            } else if entry.stat.is_file() && is_temp_name(&entry.name) && entry.stat.mtime < cutoff
            {
                match root.remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(removed)
}

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

#[cfg(test)]
mod tests;
