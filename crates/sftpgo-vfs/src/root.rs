//! Filesystem operations confined beneath an open handle of the home directory.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, ResolveFlags, Timespec, Timestamps};

use crate::path::VirtualPath;

/// Markers carried by the `io::Error`s this module makes up, so callers can tell them
/// from errnos: `Escape`, a resolution that would leave the home dir; `NotCached`, a
/// `Lookup::CachedOnly` lookup that needs the disk.
#[derive(Debug, PartialEq, Eq)]
enum Marker {
    Escape,
    NotCached,
}

impl std::fmt::Display for Marker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Marker::Escape => "path escapes the home directory",
            Marker::NotCached => "not in the kernel's lookup cache",
        })
    }
}

impl std::error::Error for Marker {}

fn marked(err: &io::Error, marker: Marker) -> bool {
    err.get_ref()
        .and_then(|e| e.downcast_ref::<Marker>())
        .is_some_and(|m| *m == marker)
}

fn escape() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, Marker::Escape)
}

/// Whether `err` is a refusal to leave the home dir (so callers can log it as such).
pub fn is_escape(err: &io::Error) -> bool {
    marked(err, Marker::Escape)
}

/// The errno as an `io::Error`. EXDEV is kept as-is here: from rename/link it means a
/// real cross-device operation (e.g. a mount inside the home), not an escape. Only
/// [`Root::open_beneath`] turns the EXDEV of `RESOLVE_BENEATH` into an escape.
fn from_errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// A regular file [`Root`] opened, and its size as the open found it (after any
/// truncation; 0 for a file the open created): what a download expects to read, known
/// without another syscall.
#[derive(Debug)]
pub struct OpenedFile {
    pub file: File,
    pub size: u64,
}

/// How to open a file (SFTP pflags, mapped).
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    pub read: bool,
    pub write: bool,
    pub append: bool,
    pub create: bool,
    pub truncate: bool,
    pub exclusive: bool,
    /// Mode of a created file (the process umask still applies).
    pub mode: u32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            read: false,
            write: false,
            append: false,
            create: false,
            truncate: false,
            exclusive: false,
            mode: 0o666,
        }
    }
}

/// What SFTP attributes and `ls -l` need of a stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub size: u64,
    pub uid: u32,
    pub gid: u32,
    /// Including the `S_IFMT` type bits.
    pub mode: u32,
    pub atime: i64,
    pub mtime: i64,
    pub nlink: u64,
    /// Device and inode: identify the file across its hard links.
    pub dev: u64,
    pub ino: u64,
}

const S_IFMT: u32 = 0o170000;

impl FileStat {
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == 0o040000
    }
    pub fn is_file(&self) -> bool {
        self.mode & S_IFMT == 0o100000
    }
    pub fn is_symlink(&self) -> bool {
        self.mode & S_IFMT == 0o120000
    }
}

impl From<&rustix::fs::Stat> for FileStat {
    fn from(st: &rustix::fs::Stat) -> Self {
        FileStat {
            size: st.st_size.max(0) as u64,
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode,
            atime: st.st_atime,
            mtime: st.st_mtime,
            nlink: st.st_nlink,
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }
}

impl From<&std::fs::Metadata> for FileStat {
    fn from(m: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        FileStat {
            size: m.size(),
            uid: m.uid(),
            gid: m.gid(),
            mode: m.mode(),
            atime: m.atime(),
            mtime: m.mtime(),
            nlink: m.nlink(),
            dev: m.dev(),
            ino: m.ino(),
        }
    }
}

/// A directory entry with its own (not followed) stat.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub stat: FileStat,
}

/// The fields of `statvfs@openssh.com`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatVfs {
    pub bsize: u64,
    pub frsize: u64,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub favail: u64,
    pub fsid: u64,
    pub flag: u64,
    pub namemax: u64,
}

/// A user's home dir, held open. All access goes through it.
#[derive(Debug)]
pub struct Root {
    dir: OwnedFd,
    host: PathBuf,
}

const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

/// How a path may be looked up.
///
/// `CachedOnly` adds `RESOLVE_CACHED`: the kernel resolves from its dentry cache or fails
/// with EAGAIN, and never waits for the disk (io_uring relies on the same flag to open
/// inline). The `*_cached` methods use it so an async caller can run a lookup on its
/// own thread, skipping a handoff to a blocking thread, and fall back to the blocking
/// thread when they return `Ok(None)`. Confinement is unchanged: `RESOLVE_BENEATH`
/// applies in both modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    MayBlock,
    CachedOnly,
}

fn not_cached() -> io::Error {
    io::Error::new(io::ErrorKind::WouldBlock, Marker::NotCached)
}

/// `Ok(None)` for a `CachedOnly` lookup that needs the disk.
fn cached<T>(res: io::Result<T>) -> io::Result<Option<T>> {
    match res {
        Ok(v) => Ok(Some(v)),
        Err(e) if marked(&e, Marker::NotCached) => Ok(None),
        Err(e) => Err(e),
    }
}

impl Root {
    /// Opens the home dir (a trusted path from the user record).
    pub fn open(home: &Path) -> io::Result<Root> {
        let dir = rustix::fs::open(
            home,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(from_errno)?;
        Ok(Root {
            dir,
            host: home.to_path_buf(),
        })
    }

    /// Opens `home`, or returns `cached` when that is still the directory at `home` (same
    /// device and inode): logins of one home dir share one open fd, so 10,000 sessions
    /// need 10,000 fds for their sockets and not twice that.
    pub fn open_shared(home: &Path, cached: Option<Arc<Root>>) -> io::Result<Arc<Root>> {
        if let Some(root) = cached
            && root.host == home
        {
            let now = rustix::fs::stat(home).map_err(from_errno)?;
            let held = rustix::fs::fstat(&root.dir).map_err(from_errno)?;
            if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino) {
                return Ok(root);
            }
        }
        Root::open(home).map(Arc::new)
    }

    /// Host path of `p`, for logs and actions only: never used for a syscall.
    pub fn host_path(&self, p: &VirtualPath) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        if p.is_root() {
            self.host.clone()
        } else {
            self.host.join(std::ffi::OsStr::from_bytes(p.relative()))
        }
    }

    /// openat2 beneath the root. The kernel may answer EAGAIN when a concurrent rename
    /// races the resolution; retrying is the documented response.
    fn open_beneath(&self, rel: &[u8], flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        self.open_with(rel, flags, mode, Lookup::MayBlock)
    }

    /// openat2 beneath the root; a path through a symlink whose absolute target is the
    /// home or lies beneath it (an administrator's `ln -s /srv/sftp/alice/shared docs`) is
    /// resolved again with its links followed inside the home ([`Root::follow_links`]).
    fn open_with(
        &self,
        rel: &[u8],
        flags: OFlags,
        mode: Mode,
        lookup: Lookup,
    ) -> io::Result<OwnedFd> {
        match self.open_once(rel, flags, mode, lookup) {
            Err(e) if is_escape(&e) => {
                // Escapes are rare: the slow path (a readlink per link) runs on the
                // blocking side only.
                if lookup == Lookup::CachedOnly {
                    return Err(not_cached());
                }
                // O_CREAT|O_EXCL and O_NOFOLLOW do not follow a final symlink.
                let follow_final = !(flags.contains(OFlags::NOFOLLOW)
                    || flags.contains(OFlags::CREATE | OFlags::EXCL));
                let resolved = self.follow_links(rel, follow_final)?;
                // Still beneath the root fd: a link swapped in since is refused, not followed.
                self.open_once(&resolved, flags, mode, lookup)
            }
            res => res,
        }
    }

    fn open_once(
        &self,
        rel: &[u8],
        flags: OFlags,
        mode: Mode,
        lookup: Lookup,
    ) -> io::Result<OwnedFd> {
        let how = match lookup {
            Lookup::MayBlock => BENEATH,
            Lookup::CachedOnly => BENEATH.union(ResolveFlags::CACHED),
        };
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(&self.dir, rel, flags | OFlags::CLOEXEC, mode, how) {
                // With RESOLVE_CACHED, EAGAIN means "would need the disk" (or a race),
                // and EINVAL a kernel older than 5.12 without the flag: the caller
                // retries on a blocking thread (which reports a real EINVAL).
                Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INVAL)
                    if lookup == Lookup::CachedOnly =>
                {
                    return Err(not_cached());
                }
                Err(rustix::io::Errno::AGAIN) if tries < 16 => tries += 1,
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::XDEV) => return Err(escape()),
                res => return res.map_err(from_errno),
            }
        }
    }

    /// `rel` with every symlink on the way replaced by its target, as the kernel would
    /// follow it, except that an absolute target is taken as a host path and must be the
    /// home (as opened, or its real path now) or beneath it; anything else, and a `..`
    /// above the home, is an escape. The final component is followed only when
    /// `follow_final`. The walk stops at the first missing component (the rest is left for
    /// the caller's open, which creates it or reports it missing).
    ///
    /// Each step is an `openat2(RESOLVE_BENEATH)` of the path resolved so far, so the walk
    /// itself never leaves the home; and its result is only a path, opened again beneath
    /// the root fd by the caller: a link changed in between is refused there, never
    /// followed out. Written by hand because no crate resolves beneath a dir fd while
    /// mapping host-absolute link targets into it.
    fn follow_links(&self, rel: &[u8], follow_final: bool) -> io::Result<Vec<u8>> {
        const MAX_LINKS: usize = 40; // the kernel's MAXSYMLINKS
        // Components still to walk, the next one last.
        let mut todo: Vec<Vec<u8>> = components(rel).rev().map(<[u8]>::to_vec).collect();
        let mut done: Vec<Vec<u8>> = Vec::new();
        let mut links = 0;
        while let Some(c) = todo.pop() {
            if c == b".." {
                done.pop().ok_or_else(escape)?;
                continue;
            }
            let last = todo.is_empty();
            done.push(c);
            if last && !follow_final {
                break;
            }
            let path = done.join(&b'/');
            let fd = match self.open_once(
                &path,
                OFlags::PATH | OFlags::NOFOLLOW,
                Mode::empty(),
                Lookup::MayBlock,
            ) {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(e),
            };
            if !FileStat::from(&rustix::fs::fstat(&fd).map_err(from_errno)?).is_symlink() {
                continue;
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            // readlinkat on an O_PATH|O_NOFOLLOW handle with an empty path reads that link.
            let target = rustix::fs::readlinkat(&fd, "", Vec::new()).map_err(from_errno)?;
            let target = target.to_bytes();
            done.pop();
            if target.starts_with(b"/") {
                done.clear();
                let rest = self.beneath_home(target).ok_or_else(escape)?;
                todo.extend(components(&rest).rev().map(<[u8]>::to_vec));
            } else {
                todo.extend(components(target).rev().map(<[u8]>::to_vec));
            }
        }
        let mut out = done.join(&b'/');
        for c in todo.iter().rev() {
            if !out.is_empty() {
                out.push(b'/');
            }
            out.extend_from_slice(c);
        }
        if out.is_empty() {
            out.push(b'.');
        }
        Ok(out)
    }

    /// For a host-absolute symlink target, the part below the home: `Some(b"")` for the
    /// home itself, `None` for anything outside it (a sibling home with a common prefix
    /// included: whole components are compared). The home is matched as configured and as
    /// its real path now (the fd's `/proc/self/fd` link), so a home configured through a
    /// symlinked parent still recognises links made with either spelling. A target with
    /// `..` is refused: what it names depends on links lexical matching cannot see.
    fn beneath_home(&self, target: &[u8]) -> Option<Vec<u8>> {
        use std::os::unix::ffi::OsStrExt;
        let parts: Vec<&[u8]> = components(target).collect();
        if parts.contains(&&b".."[..]) {
            return None;
        }
        let strip = |home: &Path| -> Option<Vec<u8>> {
            let home: Vec<&[u8]> = components(home.as_os_str().as_bytes()).collect();
            let rest = parts.strip_prefix(home.as_slice())?;
            Some(rest.join(&b'/'))
        };
        strip(&self.host).or_else(|| {
            let real = std::fs::read_link(format!("/proc/self/fd/{}", self.dir.as_raw_fd()));
            strip(&real.ok()?)
        })
    }

    /// Opens the parent of `p` beneath the root and returns it with the final name.
    fn parent<'p>(&self, p: &'p VirtualPath) -> io::Result<(OwnedFd, &'p [u8])> {
        let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "operation not allowed on the home directory",
            ));
        };
        let fd = self.open_beneath(
            parent.relative(),
            OFlags::PATH | OFlags::DIRECTORY,
            Mode::empty(),
        )?;
        Ok((fd, name))
    }

    /// An `O_PATH` handle of `p` itself (following symlinks, beneath the root).
    fn path_fd(&self, p: &VirtualPath) -> io::Result<OwnedFd> {
        self.open_beneath(p.relative(), OFlags::PATH, Mode::empty())
    }

    /// Opens a regular file. Devices, FIFOs and directories are refused (O_NONBLOCK keeps
    /// a FIFO from hanging the open; it has no effect on regular files).
    pub fn open_file(&self, p: &VirtualPath, o: &OpenOptions) -> io::Result<File> {
        self.open_file_sized(p, o).map(|opened| opened.file)
    }

    /// [`Root::open_file`], with the file's size as the open saw it.
    pub fn open_file_sized(&self, p: &VirtualPath, o: &OpenOptions) -> io::Result<OpenedFile> {
        self.open_file_with(p, o, Lookup::MayBlock)
    }

    /// [`Root::open_file_sized`] if the kernel can do it from its caches; `Ok(None)` if
    /// that would need the disk, or the open creates or truncates (the kernel refuses
    /// `RESOLVE_CACHED` for those).
    pub fn open_file_cached(
        &self,
        p: &VirtualPath,
        o: &OpenOptions,
    ) -> io::Result<Option<OpenedFile>> {
        if o.create || o.truncate {
            return Ok(None);
        }
        cached(self.open_file_with(p, o, Lookup::CachedOnly))
    }

    fn open_file_with(
        &self,
        p: &VirtualPath,
        o: &OpenOptions,
        lookup: Lookup,
    ) -> io::Result<OpenedFile> {
        let writing = o.write || o.append;
        let mut flags = match (o.read, writing) {
            (_, false) => OFlags::RDONLY,
            (false, true) => OFlags::WRONLY,
            (true, true) => OFlags::RDWR,
        };
        // O_CREAT|O_EXCL succeeds only by creating a new regular file (anything already
        // there, a FIFO or a symlink included, makes it fail): such an open cannot block on
        // a FIFO nor return a device, so it needs neither O_NONBLOCK nor the type check
        // below, three syscalls fewer for the common upload. Every other open may find
        // any kind of file.
        let creates_new = o.create && o.exclusive;
        flags |= OFlags::NOCTTY;
        if !creates_new {
            flags |= OFlags::NONBLOCK;
        }
        if o.append {
            flags |= OFlags::APPEND;
        }
        if o.create {
            flags |= OFlags::CREATE;
            if o.exclusive {
                flags |= OFlags::EXCL;
            }
        }
        // O_TRUNC with O_RDONLY truncates on Linux: only honour it when writing.
        if o.truncate && writing {
            flags |= OFlags::TRUNC;
        }
        if p.is_root() {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        // openat2 rejects a mode without O_CREAT.
        let mode = if o.create {
            Mode::from_raw_mode(o.mode & 0o777)
        } else {
            Mode::empty()
        };
        let fd = self.open_with(p.relative(), flags, mode, lookup)?;
        if creates_new {
            return Ok(OpenedFile {
                file: File::from(fd),
                size: 0,
            });
        }
        let st = rustix::fs::fstat(&fd).map_err(from_errno)?;
        if FileStat::from(&st).is_dir() {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        if !FileStat::from(&st).is_file() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "not a regular file",
            ));
        }
        // The status flags are the ones just opened with (F_SETFL changes only O_APPEND,
        // O_ASYNC, O_DIRECT, O_NOATIME and O_NONBLOCK and ignores the rest): no F_GETFL.
        flags.remove(OFlags::NONBLOCK);
        rustix::fs::fcntl_setfl(&fd, flags).map_err(from_errno)?;
        Ok(OpenedFile {
            file: File::from(fd),
            size: st.st_size as u64,
        })
    }

    /// Stat following symlinks (beneath the root).
    pub fn stat(&self, p: &VirtualPath) -> io::Result<FileStat> {
        let fd = self.path_fd(p)?;
        Ok(FileStat::from(&rustix::fs::fstat(&fd).map_err(from_errno)?))
    }

    /// [`Root::stat`] from the kernel's caches; `Ok(None)` if that would need the disk.
    pub fn stat_cached(&self, p: &VirtualPath) -> io::Result<Option<FileStat>> {
        cached(
            self.open_with(
                p.relative(),
                OFlags::PATH,
                Mode::empty(),
                Lookup::CachedOnly,
            )
            .and_then(|fd| rustix::fs::fstat(&fd).map_err(from_errno))
            .map(|st| FileStat::from(&st)),
        )
    }

    /// [`Root::lstat`] from the kernel's caches; `Ok(None)` if that would need the disk.
    /// `O_PATH | O_NOFOLLOW` opens a final symlink itself, so its `fstat` is the lstat.
    pub fn lstat_cached(&self, p: &VirtualPath) -> io::Result<Option<FileStat>> {
        let flags = OFlags::PATH | OFlags::NOFOLLOW;
        cached(
            self.open_with(p.relative(), flags, Mode::empty(), Lookup::CachedOnly)
                .and_then(|fd| rustix::fs::fstat(&fd).map_err(from_errno))
                .map(|st| FileStat::from(&st)),
        )
    }

    /// Stat of the entry itself: a symlink is reported as a symlink.
    pub fn lstat(&self, p: &VirtualPath) -> io::Result<FileStat> {
        if p.is_root() {
            return Ok(FileStat::from(
                &rustix::fs::fstat(&self.dir).map_err(from_errno)?,
            ));
        }
        let (dir, name) = self.parent(p)?;
        let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(from_errno)?;
        Ok(FileStat::from(&st))
    }

    pub fn read_dir(&self, p: &VirtualPath) -> io::Result<Vec<DirEntry>> {
        let fd = self.open_beneath(
            p.relative(),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )?;
        let mut dir = rustix::fs::Dir::read_from(&fd).map_err(from_errno)?;
        let mut out = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(from_errno)?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            // An entry removed between readdir and stat is simply skipped.
            if let Ok(st) = rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                out.push(DirEntry {
                    name: name.to_vec(),
                    stat: FileStat::from(&st),
                });
            }
        }
        Ok(out)
    }

    /// Creates a directory. Only the permission bits of `mode` are used (the umask applies).
    pub fn mkdir(&self, p: &VirtualPath, mode: u32) -> io::Result<()> {
        let (dir, name) = self.parent(p)?;
        rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(mode & 0o777)).map_err(from_errno)
    }

    /// Removes an empty directory (ENOTEMPTY otherwise); the home itself is refused.
    pub fn rmdir(&self, p: &VirtualPath) -> io::Result<()> {
        let (dir, name) = self.parent(p)?;
        rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR).map_err(from_errno)
    }

    /// Removes a file or symlink (not what it points to); a directory is EISDIR.
    pub fn remove_file(&self, p: &VirtualPath) -> io::Result<()> {
        let (dir, name) = self.parent(p)?;
        rustix::fs::unlinkat(&dir, name, AtFlags::empty()).map_err(from_errno)
    }

    /// Renames; with `replace` false an existing target is an error (RENAME_NOREPLACE).
    /// A move that would make a relative symlink (the one moved, or one inside a moved
    /// directory) lead out of the home is refused as an escape, and one that would make a
    /// host path longer than PATH_MAX is refused with ENAMETOOLONG ([`Root::check_move`]).
    pub fn rename(&self, from: &VirtualPath, to: &VirtualPath, replace: bool) -> io::Result<()> {
        let (fdir, fname) = self.parent(from)?;
        let (tdir, tname) = self.parent(to)?;
        self.check_move(&fdir, fname, from, to)?;
        let flags = if replace {
            RenameFlags::empty()
        } else {
            RenameFlags::NOREPLACE
        };
        rustix::fs::renameat_with(&fdir, fname, &tdir, tname, flags).map_err(from_errno)
    }

    /// What a move must not break. The moved entry's new host path, and every path
    /// beneath it, must fit in PATH_MAX: the kernel lets a tree grow past it one relative
    /// step at a time, but the quota scan, backups and every tool that takes a path then
    /// fail on it. A relative symlink must still lead inside the home from its new place
    /// (absolute ones do not change with the move). A directory's tree is walked only
    /// when the move can break one of the two: to a shallower place (links that climb)
    /// or to a longer name (paths); nothing the client cannot see is followed.
    fn check_move(
        &self,
        fdir: &OwnedFd,
        fname: &[u8],
        from: &VirtualPath,
        to: &VirtualPath,
    ) -> io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        // A missing source: the rename reports it.
        let Ok(st) = rustix::fs::statat(fdir, fname, AtFlags::SYMLINK_NOFOLLOW) else {
            return Ok(());
        };
        let st = FileStat::from(&st);
        let base_len = self.host.as_os_str().as_bytes().len() + to.as_bytes().len();
        if base_len > HOST_PATH_MAX {
            return Err(name_too_long());
        }
        let new_parent = to.parent().unwrap_or_else(VirtualPath::root);
        if st.is_symlink() {
            let target = rustix::fs::readlinkat(fdir, fname, Vec::new()).map_err(from_errno)?;
            return check_link_from(&new_parent, target.to_bytes());
        }
        let shallower = to.components().count() < from.components().count();
        let longer = to.as_bytes().len() > from.as_bytes().len();
        if !st.is_dir() || !(shallower || longer) {
            return Ok(());
        }
        let top = rustix::fs::openat(
            fdir,
            fname,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(from_errno)?;
        // Directories still to read, relative to the moved one (an explicit stack: a
        // deep tree holds no fd per level).
        let mut todo: Vec<Vec<u8>> = vec![Vec::new()];
        while let Some(rel) = todo.pop() {
            let fd = if rel.is_empty() {
                rustix::fs::openat(
                    &top,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
            } else {
                let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
                rustix::fs::openat2(
                    &top,
                    rel.as_slice(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                    how,
                )
            };
            // Gone or unreadable since: the rename itself will say what it says.
            let Ok(fd) = fd else { continue };
            let mut dir = rustix::fs::Dir::read_from(&fd).map_err(from_errno)?;
            while let Some(entry) = dir.read() {
                let entry = entry.map_err(from_errno)?;
                let name = entry.file_name().to_bytes();
                if name == b"." || name == b".." {
                    continue;
                }
                let mut path = rel.clone();
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(name);
                if base_len + 1 + path.len() > HOST_PATH_MAX {
                    return Err(name_too_long());
                }
                let Ok(est) = rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) else {
                    continue;
                };
                let est = FileStat::from(&est);
                if est.is_dir() {
                    todo.push(path);
                } else if est.is_symlink() && shallower {
                    let target =
                        rustix::fs::readlinkat(&fd, name, Vec::new()).map_err(from_errno)?;
                    let mut link_dir = to.as_bytes().to_vec();
                    if !rel.is_empty() {
                        link_dir.push(b'/');
                        link_dir.extend_from_slice(&rel);
                    }
                    let link_dir = VirtualPath::parse(&link_dir).map_err(|_| name_too_long())?;
                    check_link_from(&link_dir, target.to_bytes())?;
                }
            }
        }
        Ok(())
    }

    /// Creates `link` pointing at `target` (a client path: absolute virtual, or relative
    /// to the link's directory). The target is resolved lexically inside the home (a `..`
    /// above the home is refused as an escape) and stored relative to the link's
    /// directory, so the link never holds a host path and keeps working if the home moves.
    pub fn symlink(&self, target: &[u8], link: &VirtualPath) -> io::Result<()> {
        if target.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty symlink target",
            ));
        }
        let (dir, name) = self.parent(link)?;
        let base = link.parent().unwrap_or_else(VirtualPath::root);
        let target = resolve_strictly(&base, target)?;
        rustix::fs::symlinkat(relative_path(&base, &target).as_slice(), &dir, name)
            .map_err(from_errno)
    }

    /// The target of a symlink as an absolute virtual path. A host-absolute target is
    /// shown as the virtual path it names when it is the home or beneath it (the link is
    /// followed then); a target elsewhere, or one that climbs out of the home, is refused
    /// as an escape: showing it would reveal the host layout, and following it is refused
    /// anyway.
    pub fn read_link(&self, p: &VirtualPath) -> io::Result<Vec<u8>> {
        let (dir, name) = self.parent(p)?;
        let target = rustix::fs::readlinkat(&dir, name, Vec::new()).map_err(from_errno)?;
        let target = target.to_bytes();
        if target.starts_with(b"/") {
            let rest = self.beneath_home(target).ok_or_else(escape)?;
            return Ok(virtual_of(&rest)?.as_bytes().to_vec());
        }
        let base = p.parent().unwrap_or_else(VirtualPath::root);
        Ok(resolve_strictly(&base, target)?.as_bytes().to_vec())
    }

    /// Where `p` leads once every symlink on the way, the final one included, is followed
    /// inside the home (up to the first missing component): the file an upload through a
    /// symlinked name must write. Links leading out of the home are an escape.
    pub fn real_path(&self, p: &VirtualPath) -> io::Result<VirtualPath> {
        virtual_of(&self.follow_links(p.relative(), true)?)
    }

    /// Hard link (the source is not followed if it is a symlink).
    pub fn hard_link(&self, from: &VirtualPath, to: &VirtualPath) -> io::Result<()> {
        let (fdir, fname) = self.parent(from)?;
        let (tdir, tname) = self.parent(to)?;
        rustix::fs::linkat(&fdir, fname, &tdir, tname, AtFlags::empty()).map_err(from_errno)
    }

    pub fn set_len(&self, p: &VirtualPath, len: u64) -> io::Result<()> {
        let file = self.open_file(
            p,
            &OpenOptions {
                write: true,
                ..Default::default()
            },
        )?;
        file.set_len(len)
    }

    /// chmod, following symlinks beneath the root: the path is resolved once with
    /// openat2 to an `O_PATH` handle, and that exact object is changed with
    /// `fchmodat2(fd, "", AT_EMPTY_PATH)` (no read/write access to the file needed). Only
    /// the permission bits 0o777 are applied: a client never sets setuid/setgid/sticky
    /// (SFTPGo 0.9 did the same through Go's `FileMode`).
    pub fn set_permissions(&self, p: &VirtualPath, mode: u32) -> io::Result<()> {
        let fd = self.path_fd(p)?;
        let mode = mode & 0o777;
        // SAFETY: plain syscall on a valid fd and a NUL-terminated empty string.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fchmodat2,
                fd.as_fd().as_raw_fd(),
                c"".as_ptr(),
                mode,
                libc::AT_EMPTY_PATH,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ENOSYS) {
            return Err(err);
        }
        // Kernels before 6.6: the `/proc/self/fd` link of the same handle names exactly
        // the resolved object (no re-resolution of the client path).
        let proc = format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd());
        rustix::fs::chmod(proc.as_str(), Mode::from_raw_mode(mode)).map_err(from_errno)
    }

    /// Sets atime and mtime, following symlinks beneath the root (utimensat with
    /// `AT_EMPTY_PATH` on the `O_PATH` handle of the resolved object).
    pub fn set_times(
        &self,
        p: &VirtualPath,
        atime: SystemTime,
        mtime: SystemTime,
    ) -> io::Result<()> {
        let fd = self.path_fd(p)?;
        let ts = |t: SystemTime| match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => Timespec {
                tv_sec: d.as_secs() as i64,
                tv_nsec: i64::from(d.subsec_nanos()),
            },
            // Before the epoch: whole seconds are enough for SFTP (32-bit times).
            Err(e) => Timespec {
                tv_sec: -(e.duration().as_secs() as i64),
                tv_nsec: 0,
            },
        };
        let times = Timestamps {
            last_access: ts(atime),
            last_modification: ts(mtime),
        };
        rustix::fs::utimensat(&fd, "", &times, AtFlags::EMPTY_PATH).map_err(from_errno)
    }

    /// chown of the entry itself (a symlink is not followed).
    pub fn chown(&self, p: &VirtualPath, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        let uid = uid.map(rustix::fs::Uid::from_raw);
        let gid = gid.map(rustix::fs::Gid::from_raw);
        if p.is_root() {
            return rustix::fs::chownat(&self.dir, "", uid, gid, AtFlags::EMPTY_PATH)
                .map_err(from_errno);
        }
        let (dir, name) = self.parent(p)?;
        rustix::fs::chownat(&dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW).map_err(from_errno)
    }

    pub fn statvfs(&self, p: &VirtualPath) -> io::Result<StatVfs> {
        let fd = self.path_fd(p)?;
        let s = rustix::fs::fstatvfs(&fd).map_err(from_errno)?;
        Ok(StatVfs {
            bsize: s.f_bsize,
            frsize: s.f_frsize,
            blocks: s.f_blocks,
            bfree: s.f_bfree,
            bavail: s.f_bavail,
            files: s.f_files,
            ffree: s.f_ffree,
            favail: s.f_favail,
            fsid: s.f_fsid,
            flag: s.f_flag.bits(),
            namemax: s.f_namemax,
        })
    }
}

/// Longest host path a rename may create (PATH_MAX, its terminating NUL included).
const HOST_PATH_MAX: usize = 4095;

fn name_too_long() -> io::Error {
    io::Error::from_raw_os_error(libc::ENAMETOOLONG)
}

/// A relative link target must lead inside the home from directory `dir`; an absolute
/// one does not depend on where the link is.
fn check_link_from(dir: &VirtualPath, target: &[u8]) -> io::Result<()> {
    if target.starts_with(b"/") {
        return Ok(());
    }
    resolve_strictly(dir, target).map(|_| ())
}

/// Resolves `target` lexically against the directory `base` (an absolute `target`
/// starts at the home), refusing as an escape any `..` that would climb above the home.
/// Used for symlink targets, where clamping at the root (as [`VirtualPath::join`] does)
/// would silently change what the client asked for.
fn resolve_strictly(base: &VirtualPath, target: &[u8]) -> io::Result<VirtualPath> {
    let mut parts: Vec<&[u8]> = if target.starts_with(b"/") {
        Vec::new()
    } else {
        base.components().collect()
    };
    for c in target.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop().ok_or_else(escape)?;
            }
            name => parts.push(name),
        }
    }
    let mut out = Vec::with_capacity(target.len() + base.as_bytes().len() + 1);
    for part in parts {
        out.push(b'/');
        out.extend_from_slice(part);
    }
    VirtualPath::parse(&out).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// The virtual path of a path relative to the root (`.` or empty is the root).
fn virtual_of(rel: &[u8]) -> io::Result<VirtualPath> {
    let mut abs = Vec::with_capacity(rel.len() + 1);
    abs.push(b'/');
    abs.extend_from_slice(rel);
    VirtualPath::parse(&abs).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// The components of a path: no empty ones, no `.`.
fn components(p: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    p.split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
}

/// The path from directory `base` to `target`, e.g. `/d` → `/a/b` is `../a/b`.
fn relative_path(base: &VirtualPath, target: &VirtualPath) -> Vec<u8> {
    let b: Vec<&[u8]> = base.components().collect();
    let t: Vec<&[u8]> = target.components().collect();
    let common = b.iter().zip(&t).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<&[u8]> = vec![b".."; b.len() - common];
    parts.extend(&t[common..]);
    if parts.is_empty() {
        return b".".to_vec();
    }
    parts.join(&b'/')
}

/// Creates a user's home dir (and missing parents) at first login, owned by `owner`.
pub fn ensure_home(home: &Path, mode: u32, owner: Option<(u32, u32)>) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if home.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(home)?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(home, Some(uid), Some(gid))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
