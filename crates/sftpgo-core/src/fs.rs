//! The per-user virtual filesystem: the one place where a request's permission is
//! checked and where it reaches the host filesystem (through [`sftpgo_vfs::Root`], which
//! confines every path beneath the user's home).
//!
//! Every method is async and runs its syscalls on the blocking pool, so disk I/O never
//! stalls the runtime's worker threads.

use std::io;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use sftpgo_provider::{Permission, User};
use sftpgo_vfs::{DirEntry, FileStat, OpenOptions, PathError, Root, StatVfs, VirtualPath};

use crate::Settings;
use crate::actions::{ActionEvent, ActionKind};
use crate::connection::{ConnectionState, OpenFile};
use crate::quota::QuotaKeeper;
use crate::serial_io::SerialIo;
use crate::throttle::Throttle;
use crate::transfer::Transfer;

mod checksum;
pub use checksum::{HashAlgorithm, HashRange, Hasher, MAX_BLOCKS};

/// Why a filesystem request failed; adapters map each variant to their status codes.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("invalid path: {0}")]
    InvalidPath(#[from] PathError),
    #[error("operation unsupported: {0}")]
    Unsupported(&'static str),
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("{0}")]
    Failure(String),
}

impl FsError {
    fn from_io(err: io::Error) -> Self {
        if sftpgo_vfs::is_escape(&err) {
            return FsError::PermissionDenied("path escapes the home directory".into());
        }
        match err.kind() {
            // As OpenSSH's sftp-server: a path through a non-directory names nothing.
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => FsError::NotFound,
            io::ErrorKind::PermissionDenied => FsError::PermissionDenied(err.to_string()),
            _ => FsError::Failure(err.to_string()),
        }
    }
}

/// Attribute changes requested by a client (SETSTAT and friends).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetAttrs {
    pub size: Option<u64>,
    pub permissions: Option<u32>,
    /// (atime, mtime) in seconds since the epoch.
    pub times: Option<(u32, u32)>,
    pub uid_gid: Option<(u32, u32)>,
}

/// How a client wants a file opened for upload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadFlags {
    pub read: bool,
    pub append: bool,
    pub create: bool,
    pub truncate: bool,
    pub exclusive: bool,
    /// The file's size, when the client announces it before sending it (SCP's `C`
    /// line): an upload that cannot fit the quota is refused at open.
    pub size: Option<u64>,
}

/// Refuses an announced upload of `size` bytes replacing `old` bytes when the quota has
/// `remaining` bytes left.
fn announced_fits(size: Option<u64>, old: u64, remaining: Option<i64>) -> Result<(), FsError> {
    match (size, remaining) {
        (Some(size), Some(remaining)) if size.saturating_sub(old) > remaining as u64 => {
            Err(FsError::QuotaExceeded(format!(
                "quota exceeded: the file needs {size} bytes, {remaining} left"
            )))
        }
        _ => Ok(()),
    }
}

/// uid/gid to give created files: only when running as root and the ids are real
/// (1..=65535); otherwise files keep the server's ownership.
pub(crate) fn owner_for(user: &User, settings: &Settings) -> Option<(u32, u32)> {
    let valid = |id: i64| (1..=65535).contains(&id);
    (settings.running_as_root && valid(user.uid) && valid(user.gid))
        .then_some((user.uid as u32, user.gid as u32))
}

/// A user's view of their home dir, with their permissions applied.
#[derive(Clone)]
pub struct UserFs {
    root: Arc<Root>,
    /// The session's blocking filesystem work, in order (see [`SerialIo`]).
    io: SerialIo<Arc<Root>>,
    state: Arc<ConnectionState>,
    settings: Settings,
    owner: Option<(u32, u32)>,
    quota: QuotaKeeper,
}

impl UserFs {
    pub(crate) fn new(
        root: Arc<Root>,
        state: Arc<ConnectionState>,
        settings: Settings,
        quota: QuotaKeeper,
    ) -> Self {
        let owner = owner_for(&state.user, &settings);
        Self {
            io: SerialIo::new(root.clone()),
            root,
            state,
            settings,
            owner,
            quota,
        }
    }

    /// The regular file at `path` (not following a final symlink), if it is one. Runs in
    /// the blocking job of the operation that needs it, so that probe and operation are
    /// one step in the session's order.
    fn regular_file(r: &Root, path: &VirtualPath) -> Option<FileStat> {
        r.lstat(path).ok().filter(FileStat::is_file)
    }

    pub fn user(&self) -> &User {
        &self.state.user
    }

    /// Turns a client path into a virtual path (relative paths are taken from `/`).
    pub fn resolve(&self, raw: &[u8]) -> Result<VirtualPath, FsError> {
        Ok(VirtualPath::parse(raw)?)
    }

    /// A place among the files the user has open, or the refusal (logged) at its limit.
    fn open_file_slot(&self, op: &str, path: &VirtualPath) -> Result<OpenFile, FsError> {
        let open_files = &self.state.shared.open_files;
        open_files.take().ok_or_else(|| {
            let max = open_files.max();
            if self.state.may_log() {
                tracing::warn!(sender = "fs", username = %self.state.user.username, connection_id = %self.state.id, operation = op, path = %path.display(), max_open_files = max, "refused: the user has too many files open");
            }
            FsError::Failure(format!(
                "too many open files: at most {max} at once for this user"
            ))
        })
    }

    /// The permission gate: every operation passes here before touching the disk.
    fn check(&self, perm: Permission, op: &str, path: &VirtualPath) -> Result<(), FsError> {
        self.state.touch();
        if self.state.user.has_permission(perm) {
            return Ok(());
        }
        if self.state.may_log() {
            tracing::info!(
                sender = "fs",
                username = %self.state.user.username,
                connection_id = %self.state.id,
                operation = op,
                path = %path.display(),
                "permission denied"
            );
        }
        Err(FsError::PermissionDenied(format!(
            "{op} requires the {perm:?} permission"
        )))
    }

    /// Runs `op`'s filesystem work on `path` on the session's I/O thread (see
    /// [`SerialIo`]); a failure becomes an [`FsError`] (see [`UserFs::failed`]).
    async fn blocking<T, F>(&self, op: &str, path: &VirtualPath, f: F) -> Result<T, FsError>
    where
        T: Send + 'static,
        F: FnOnce(&Root) -> io::Result<T> + Send + 'static,
    {
        self.io
            .run(move |root| f(root))
            .await
            .map_err(|e| self.failed(op, path, e))
    }

    /// The error a request gets for a filesystem error. What the client's request does
    /// not explain (no space, a read-only or failing disk, a link loop or a path leading
    /// out of the home dir planted on the host) also gets a warning in the log: the client
    /// only sees a status, the operator must see why. What describes the request (no such
    /// file, already exists, not a directory, not empty, a permission the filesystem
    /// refuses) is an answer, not logged.
    fn failed(&self, op: &str, path: &VirtualPath, err: io::Error) -> FsError {
        use io::ErrorKind as K;
        let escape = sftpgo_vfs::is_escape(&err);
        let answer = matches!(
            err.kind(),
            K::NotFound
                | K::PermissionDenied
                | K::AlreadyExists
                | K::NotADirectory
                | K::IsADirectory
                | K::DirectoryNotEmpty
                | K::InvalidFilename
        );
        let fs_err = FsError::from_io(err);
        if (escape || !answer) && self.state.may_log() {
            tracing::warn!(
                sender = "fs",
                op,
                username = %self.state.user.username,
                file_path = %self.root.host_path(path).display(),
                connection_id = %self.state.id,
                protocol = self.state.protocol().as_str(),
                error = %fs_err,
                "filesystem operation failed"
            );
        }
        fs_err
    }

    /// A lookup the kernel may answer from its caches: tried on this thread first
    /// (`RESOLVE_CACHED` does no disk I/O, so it cannot stall the runtime), and on the
    /// blocking pool only when it would need the disk. A metadata request then costs no
    /// thread handoff, which is most of its latency (two context switches per handoff).
    async fn cached_or_blocking<T, C, F>(
        &self,
        op: &str,
        path: &VirtualPath,
        cached: C,
        slow: F,
    ) -> Result<T, FsError>
    where
        T: Send + 'static,
        C: FnOnce(&Root) -> io::Result<Option<T>>,
        F: FnOnce(&Root) -> io::Result<T> + Send + 'static,
    {
        // Only while no earlier request's work is queued: a lookup must see what the
        // requests sent before it did (a STAT right behind a MKDIR).
        match self.io.now_if_idle(|root| cached(root)) {
            Some(Ok(Some(v))) => Ok(v),
            Some(Err(e)) => Err(self.failed(op, path, e)),
            Some(Ok(None)) | None => self.blocking(op, path, slow).await,
        }
    }

    /// One info line per state-changing command (0.9's command log: sender = the command).
    fn log_command(&self, command: &str, path: &VirtualPath, target: Option<&VirtualPath>) {
        if !self.state.may_log() {
            return;
        }
        tracing::info!(
            sender = command,
            username = %self.state.user.username,
            file_path = %self.root.host_path(path).display(),
            target_path = %target.map(|t| self.root.host_path(t).display().to_string()).unwrap_or_default(),
            connection_id = %self.state.id,
            protocol = self.state.protocol().as_str(),
            "command"
        );
    }

    /// Hands a successful operation to the actions (which ignore events not configured).
    fn fire(
        &self,
        kind: ActionKind,
        path: &VirtualPath,
        target: Option<&VirtualPath>,
        size: Option<u64>,
    ) {
        let actions = &self.state.observers.actions;
        if !actions.wants(kind) {
            return;
        }
        actions.fire(ActionEvent {
            kind,
            username: self.state.user.username.clone(),
            path: self.root.host_path(path),
            target: target.map(|t| self.root.host_path(t)),
            virtual_path: path.display().to_string(),
            size,
        });
    }

    fn mode(&self, base: u32) -> u32 {
        base & !self.settings.umask
    }

    pub async fn stat(&self, path: &VirtualPath) -> Result<FileStat, FsError> {
        self.check(Permission::List, "stat", path)?;
        let p = path.clone();
        self.cached_or_blocking("stat", path, |r| r.stat_cached(path), move |r| r.stat(&p))
            .await
    }

    pub async fn lstat(&self, path: &VirtualPath) -> Result<FileStat, FsError> {
        self.check(Permission::List, "lstat", path)?;
        let p = path.clone();
        self.cached_or_blocking(
            "lstat",
            path,
            |r| r.lstat_cached(path),
            move |r| r.lstat(&p),
        )
        .await
    }

    pub async fn read_dir(&self, path: &VirtualPath) -> Result<Vec<DirEntry>, FsError> {
        self.check(Permission::List, "list", path)?;
        let p = path.clone();
        self.blocking("list", path, move |r| r.read_dir(&p)).await
    }

    pub async fn read_link(&self, path: &VirtualPath) -> Result<Vec<u8>, FsError> {
        self.check(Permission::List, "readlink", path)?;
        let p = path.clone();
        self.blocking("readlink", path, move |r| r.read_link(&p))
            .await
    }

    pub async fn statvfs(&self, path: &VirtualPath) -> Result<StatVfs, FsError> {
        self.check(Permission::List, "statvfs", path)?;
        let p = path.clone();
        self.blocking("statvfs", path, move |r| r.statvfs(&p)).await
    }

    pub async fn mkdir(&self, path: &VirtualPath) -> Result<(), FsError> {
        self.check(Permission::CreateDirs, "mkdir", path)?;
        let (p, mode, owner) = (path.clone(), self.mode(0o777), self.owner);
        self.blocking("mkdir", path, move |r| {
            r.mkdir(&p, mode)?;
            chown_created(r, &p, owner);
            Ok(())
        })
        .await?;
        self.log_command("Mkdir", path, None);
        Ok(())
    }

    pub async fn rmdir(&self, path: &VirtualPath) -> Result<(), FsError> {
        self.check(Permission::Delete, "rmdir", path)?;
        if path.is_root() {
            return Err(FsError::PermissionDenied(
                "the home directory cannot be removed".into(),
            ));
        }
        let p = path.clone();
        self.blocking("rmdir", path, move |r| r.rmdir(&p)).await?;
        self.log_command("Rmdir", path, None);
        Ok(())
    }

    /// Removes a file or symlink (directories need [`UserFs::rmdir`]).
    pub async fn remove(&self, path: &VirtualPath) -> Result<(), FsError> {
        self.check(Permission::Delete, "remove", path)?;
        let p = path.clone();
        let file = self
            .blocking("remove", path, move |r| {
                let file = Self::regular_file(r, &p);
                r.remove_file(&p).map(|()| file)
            })
            .await?;
        // Quota counts files (inodes): only the last link of a file frees it.
        if let Some(st) = file.as_ref().filter(|st| st.nlink == 1) {
            self.quota.record(-(st.size as i64), -1);
        }
        self.log_command("Remove", path, None);
        self.fire(ActionKind::Delete, path, None, file.map(|st| st.size));
        Ok(())
    }

    /// Renames `from` to `to`; with `replace` false an existing target is an error
    /// (SFTP v3 RENAME), with `replace` true it is overwritten (posix-rename).
    pub async fn rename(
        &self,
        from: &VirtualPath,
        to: &VirtualPath,
        replace: bool,
    ) -> Result<(), FsError> {
        self.check(Permission::Rename, "rename", from)?;
        if from.is_root() || to.is_root() {
            return Err(FsError::PermissionDenied(
                "the home directory cannot be renamed".into(),
            ));
        }
        let wants_size = self.state.observers.actions.wants(ActionKind::Rename);
        let (f, t) = (from.clone(), to.clone());
        let (replaced, size) = self
            .blocking("rename", from, move |r| {
                let source = Self::regular_file(r, &f);
                // A file replaced by the rename stops counting (unless it is the same
                // file, which rename leaves alone, or another hard link keeps it).
                let replaced = match (replace, Self::regular_file(r, &t)) {
                    (true, Some(target)) if target.nlink == 1 => {
                        let same = source
                            .as_ref()
                            .is_some_and(|s| (s.dev, s.ino) == (target.dev, target.ino));
                        (!same).then_some(target.size as i64)
                    }
                    _ => None,
                };
                let size = wants_size.then(|| source.map(|st| st.size)).flatten();
                r.rename(&f, &t, replace).map(|()| (replaced, size))
            })
            .await?;
        if let Some(size) = replaced {
            self.quota.record(-size, -1);
        }
        self.log_command("Rename", from, Some(to));
        self.fire(ActionKind::Rename, from, Some(to), size);
        Ok(())
    }

    /// Creates `link` pointing at `target` (a client path, stored relative to the link).
    pub async fn symlink(&self, target: &[u8], link: &VirtualPath) -> Result<(), FsError> {
        self.check(Permission::CreateSymlinks, "symlink", link)?;
        let (t, l) = (target.to_vec(), link.clone());
        self.blocking("symlink", link, move |r| r.symlink(&t, &l))
            .await?;
        self.log_command("Symlink", link, None);
        Ok(())
    }

    pub async fn hard_link(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), FsError> {
        self.check(Permission::CreateSymlinks, "hardlink", to)?;
        // Quota counts files (inodes): a new link to a file adds nothing.
        let (f, t) = (from.clone(), to.clone());
        self.blocking("hardlink", from, move |r| r.hard_link(&f, &t))
            .await?;
        self.log_command("Link", from, Some(to));
        Ok(())
    }

    /// Applies attribute changes; changing a file requires the upload permission.
    pub async fn set_attrs(&self, path: &VirtualPath, attrs: SetAttrs) -> Result<(), FsError> {
        if attrs == SetAttrs::default() {
            return Ok(());
        }
        self.check(Permission::Upload, "setstat", path)?;
        let uid_gid = self.allowed_owner_change(attrs.uid_gid)?;
        // A size change is a write: growth must fit the quota, and the delta is recorded.
        let size_change = match attrs.size {
            Some(new) => {
                let p = path.clone();
                let old = self
                    .blocking("setstat", path, move |r| r.stat(&p))
                    .await?
                    .size as i64;
                let growth = new as i64 - old;
                if growth > 0
                    && let Some(remaining) = self.quota.admit_write(false).await?
                    && growth > remaining
                {
                    return Err(FsError::QuotaExceeded(format!(
                        "quota exceeded: growing the file by {growth} bytes, {remaining} left"
                    )));
                }
                growth
            }
            None => 0,
        };
        let p = path.clone();
        self.blocking("setstat", path, move |r| {
            if let Some(size) = attrs.size {
                r.set_len(&p, size)?;
            }
            if let Some(mode) = attrs.permissions {
                r.set_permissions(&p, mode & 0o777)?;
            }
            if let Some((atime, mtime)) = attrs.times {
                let t = |s: u32| UNIX_EPOCH + Duration::from_secs(u64::from(s));
                r.set_times(&p, t(atime), t(mtime))?;
            }
            if let Some((uid, gid)) = uid_gid {
                r.chown(&p, Some(uid), Some(gid))?;
            }
            Ok(())
        })
        .await?;
        self.quota.record(size_change, 0);
        self.log_command("Setstat", path, None);
        Ok(())
    }

    /// Ownership changes: only when running as root, and only to the user's own uid/gid,
    /// so a virtual user can never hand a file to another account.
    fn allowed_owner_change(
        &self,
        requested: Option<(u32, u32)>,
    ) -> Result<Option<(u32, u32)>, FsError> {
        let Some(req) = requested else {
            return Ok(None);
        };
        match self.owner {
            Some(own) if own == req => Ok(Some(req)),
            _ if !self.settings.running_as_root => Err(FsError::PermissionDenied(
                "changing ownership requires the server to run as root".into(),
            )),
            _ => Err(FsError::PermissionDenied(
                "ownership can only be set to the user's own uid/gid".into(),
            )),
        }
    }

    /// Opens a file for reading.
    pub async fn open_download(&self, path: &VirtualPath) -> Result<Transfer, FsError> {
        self.check(Permission::Download, "download", path)?;
        let slot = self.open_file_slot("download", path)?;
        let p = path.clone();
        let opts = OpenOptions {
            read: true,
            ..Default::default()
        };
        let opened = self
            .cached_or_blocking(
                "download",
                path,
                |r| r.open_file_cached(path, &opts),
                move |r| r.open_file_sized(&p, &opts),
            )
            .await?;
        Ok(Transfer::start_download(
            opened,
            slot,
            self.io.clone(),
            path.clone(),
            self.root.host_path(path),
            self.state.clone(),
            Throttle::new(self.state.user.download_bandwidth),
        ))
    }

    /// Opens a file for writing as the client asked (create, truncate, append, exclusive).
    pub async fn open_upload(
        &self,
        path: &VirtualPath,
        flags: UploadFlags,
    ) -> Result<Transfer, FsError> {
        self.check(Permission::Upload, "upload", path)?;
        let slot = self.open_file_slot("upload", path)?;
        let p = path.clone();
        let owner = self.owner;
        let opts = OpenOptions {
            read: flags.read,
            write: true,
            append: flags.append,
            create: flags.create,
            truncate: flags.truncate,
            exclusive: flags.exclusive,
            mode: self.mode(0o666),
        };
        let atomic_mode = self.settings.upload_mode == crate::UploadMode::Atomic;
        let probe = path.clone();
        let usage = self.quota.usage_for_write().await?;
        let quota = self.quota.clone();
        // One trip to the blocking pool: probe, quota decision, open.
        let opened = self
            .blocking("upload", path, move |r| {
                // Most uploads create a new file. An exclusive create tries that first, and
                // its success says nothing was there, which the probes below would spend
                // three more path walks on (lstat, stat, fstat; the first of a name not
                // yet looked up searches the directory on disk). Anything there (file,
                // directory, symlink, even dangling) makes it fail with EEXIST, and the
                // probing path decides. Atomic mode writes a temp file, so it probes.
                if !atomic_mode && flags.create && quota.allows_another_file(usage) {
                    if let Err(e) = quota
                        .admit(usage, true)
                        .and_then(|left| announced_fits(flags.size, 0, left))
                    {
                        return Ok(Err(e));
                    }
                    let create = OpenOptions {
                        exclusive: true,
                        truncate: false,
                        ..opts
                    };
                    match r.open_file_sized(&probe, &create) {
                        Ok(opened) => {
                            chown_created(r, &probe, owner);
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
                let existing = missing_is_none(r.lstat(&probe))?;
                let (target, resolved) = match existing {
                    Some(st) if st.is_symlink() => {
                        let target = r.real_path(&probe)?;
                        let resolved = missing_is_none(r.stat(&target))?;
                        (target, resolved)
                    }
                    other => (probe.clone(), other),
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
                // What a truncating upload replaces stops counting.
                let old = match resolved {
                    Some(st) if flags.truncate => st.size,
                    _ => 0,
                };
                if let Err(e) = quota
                    .admit(usage, resolved.is_none() && flags.create)
                    .and_then(|left| announced_fits(flags.size, old, left))
                {
                    return Ok(Err(e));
                }
                // Atomic mode covers writes that replace the whole file; resume and append
                // must see the existing data, so they write in place.
                let atomic = atomic_mode
                    && flags.create
                    && !flags.append
                    && (flags.truncate || resolved.is_none());
                if atomic {
                    if flags.exclusive && existing.is_some() {
                        return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
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
                    chown_created(r, &temp, owner);
                    let upload = AtomicUpload {
                        temp,
                        target,
                        replace: !flags.exclusive,
                    };
                    return Ok(Ok((resolved, resolved, opened, Some(upload))));
                }
                let opened = r.open_file_sized(&p, &opts)?;
                if existing.is_none() {
                    chown_created(r, &p, owner);
                }
                Ok(Ok((existing, resolved, opened, None)))
            })
            .await?;
        let (existing, resolved, opened, atomic) = opened?;
        // Quota counts files (inodes). An atomic upload puts a new file at the path: the
        // old entry stops counting only if it was the last link of a regular file. An
        // in-place upload writes the file the path resolves to.
        let (base_size, new_file) = if atomic.is_some() {
            match existing.filter(|st| st.is_file() && st.nlink == 1) {
                Some(st) => (st.size as i64, false),
                None => (0, true),
            }
        } else {
            match resolved.filter(FileStat::is_file) {
                Some(st) => (st.size as i64, false),
                None => (0, resolved.is_none()),
            }
        };
        let accounting = UploadAccounting {
            reservation: self.quota.reservation(),
            base_size,
            initial_size: opened.size as i64,
            new_file,
            append: flags.append,
        };
        Ok(Transfer::start_upload(
            (opened.file, slot),
            self.io.clone(),
            path.clone(),
            self.root.host_path(path),
            self.state.clone(),
            atomic.map(|a| (self.root.clone(), a)),
            accounting,
            Throttle::new(self.state.user.upload_bandwidth),
        ))
    }
}

/// What an upload needs to enforce and record quota.
pub(crate) struct UploadAccounting {
    /// Counts the upload's growth against the size limit, and records its change.
    pub reservation: crate::quota::Reservation,
    /// Size of the file the upload replaces or extends (0 for a new file).
    pub base_size: i64,
    /// Size of the opened file right after opening (after any truncation).
    pub initial_size: i64,
    pub new_file: bool,
    /// O_APPEND writes land at the end whatever their offset.
    pub append: bool,
}

/// An upload written to a hidden temp file, published by rename on success.
pub(crate) struct AtomicUpload {
    pub temp: VirtualPath,
    /// Where it is published: the client's path, or the file a symlink there leads to.
    pub target: VirtualPath,
    /// False for exclusive creates: publishing must not replace a file that appeared meanwhile.
    pub replace: bool,
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
fn temp_path(target: &VirtualPath) -> std::io::Result<VirtualPath> {
    let parent = target.parent().unwrap_or_else(VirtualPath::root);
    let name = target.file_name().unwrap_or(b"upload");
    let mut temp = TEMP_PREFIX.to_vec();
    temp.extend_from_slice(format!("{:016x}.", rand::random::<u64>()).as_bytes());
    temp.extend_from_slice(&name[..name.len().min(255 - temp.len())]);
    parent
        .join(&temp)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
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

#[cfg(test)]
mod temp_tests {
    use super::*;

    #[test]
    fn stale_temp_files_are_removed_and_nothing_else() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join("d")).unwrap();
        let stale = home
            .path()
            .join("d/.sftpgo-upload.0123456789abcdef.report.pdf");
        std::fs::write(&stale, b"partial").unwrap();
        std::fs::write(home.path().join(".sftpgo-upload.notours"), b"user file").unwrap();
        std::fs::write(home.path().join("keep"), b"data").unwrap();
        // A fresh temp (an upload in progress) and an old one behind a symlink stay.
        let fresh = home
            .path()
            .join("d/.sftpgo-upload.fedcba9876543210.live.bin");
        std::fs::write(&fresh, b"in progress").unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let outside = elsewhere.path().join(".sftpgo-upload.0123456789abcdef.x");
        std::fs::write(&outside, b"not ours").unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), home.path().join("link")).unwrap();
        let hours_ago = std::time::SystemTime::now() - Duration::from_secs(3 * 3600);
        for f in [&stale, &outside] {
            std::fs::File::options()
                .write(true)
                .open(f)
                .unwrap()
                .set_modified(hours_ago)
                .unwrap();
        }
        let max_age = Duration::from_secs(2 * 3600);
        assert_eq!(remove_stale_uploads(home.path(), max_age).unwrap(), 1);
        assert!(!stale.exists());
        assert!(fresh.exists() && outside.exists());
        assert_eq!(
            remove_stale_uploads(&home.path().join("missing"), max_age).unwrap(),
            0
        );
        assert!(
            home.path().join(".sftpgo-upload.notours").exists()
                && home.path().join("keep").exists()
        );
        let temp = temp_path(&VirtualPath::parse(b"/a/b.txt").unwrap()).unwrap();
        assert!(is_temp_name(temp.file_name().unwrap()));
    }
}
