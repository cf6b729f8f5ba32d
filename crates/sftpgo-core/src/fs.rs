//! The per-user virtual filesystem: the one place where a request's permission is
//! checked, its quota decided and its failure logged, before it reaches the user's
//! storage (a [`crate::storage::Filesystem`]: the local backend confines every path
//! beneath the user's home and keeps disk I/O off the runtime's worker threads).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use sftpgo_provider::{Permission, User};
use sftpgo_vfs::{DirEntry, FileStat, PathError, StatVfs, VirtualPath};

use crate::Settings;
use crate::actions::{ActionEvent, ActionKind};
use crate::connection::{ConnectionState, OpenFile};
use crate::quota::QuotaKeeper;
use crate::storage::{AnyFs, Filesystem, UploadProbe, WriteRequest};
use crate::throttle::Throttle;
use crate::transfer::Transfer;

mod checksum;
pub(crate) mod mounts;
pub use checksum::{HashAlgorithm, HashRange, Hasher, MAX_BLOCKS};
use mounts::{Mount, Mounts};

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
            io::ErrorKind::Unsupported => FsError::Unsupported("not supported by this storage"),
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

/// A user's view of their home dir and virtual folders, with their permissions applied.
#[derive(Clone)]
pub struct UserFs {
    /// The user's storage as this session sees it (its requests in order, per mount):
    /// the home at `/`, each virtual folder at its virtual path.
    mounts: Arc<Mounts>,
    state: Arc<ConnectionState>,
    settings: Settings,
    owner: Option<(u32, u32)>,
}

impl UserFs {
    /// `home` at `/`, each of `folders` at its path.
    pub(crate) fn new(
        home: (AnyFs, QuotaKeeper),
        folders: Vec<(VirtualPath, AnyFs, QuotaKeeper)>,
        state: Arc<ConnectionState>,
        settings: Settings,
    ) -> Self {
        let owner = owner_for(&state.user, &settings);
        let home = Mount {
            at: VirtualPath::root(),
            fs: home.0,
            quota: home.1,
        };
        let folders = folders
            .into_iter()
            .map(|(at, fs, quota)| Mount { at, fs, quota })
            .collect();
        Self {
            mounts: Arc::new(Mounts::new(home, folders)),
            state,
            settings,
            owner,
        }
    }

    /// Where `path` is on the host (or in a bucket), for logs and actions.
    fn host_path(&self, path: &VirtualPath) -> PathBuf {
        let (m, inner) = self.mounts.locate(path);
        m.fs.host_path(&inner)
    }

    /// Refuses removing or renaming a virtual folder's mount point or a directory on
    /// the way to one.
    fn not_a_folder(&self, op: &str, path: &VirtualPath) -> Result<(), FsError> {
        if !self.mounts.holds_folder(path) {
            return Ok(());
        }
        if self.state.may_log() {
            tracing::info!(sender = "fs", username = %self.state.user.username, connection_id = %self.state.id, operation = op, path = %path.display(), "refused: a virtual folder, or a directory holding one");
        }
        Err(FsError::PermissionDenied(format!(
            "{op}: {} is or holds a virtual folder",
            path.display()
        )))
    }

    pub fn user(&self) -> &User {
        &self.state.user
    }

    /// What the storage of the user's home can do (protocols size what they offer by it).
    pub fn home_capabilities(&self) -> crate::storage::Capabilities {
        self.mounts.home().fs.capabilities()
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

    /// `res`, a storage call's outcome for `op` on `path`, with a failure as an
    /// [`FsError`] (see [`UserFs::failed`]).
    fn done<T>(&self, op: &str, path: &VirtualPath, res: io::Result<T>) -> Result<T, FsError> {
        res.map_err(|e| self.failed(op, path, e))
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
                file_path = %self.host_path(path).display(),
                connection_id = %self.state.id,
                protocol = self.state.protocol().as_str(),
                error = %fs_err,
                "filesystem operation failed"
            );
        }
        fs_err
    }

    /// One info line per state-changing command (0.9's command log: sender = the command).
    fn log_command(&self, command: &str, path: &VirtualPath, target: Option<&VirtualPath>) {
        if !self.state.may_log() {
            return;
        }
        tracing::info!(
            sender = command,
            username = %self.state.user.username,
            file_path = %self.host_path(path).display(),
            target_path = %target.map(|t| self.host_path(t).display().to_string()).unwrap_or_default(),
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
            path: self.host_path(path),
            target: target.map(|t| self.host_path(t)),
            virtual_path: path.display().to_string(),
            size,
        });
    }

    fn mode(&self, base: u32) -> u32 {
        base & !self.settings.umask
    }

    pub async fn stat(&self, path: &VirtualPath) -> Result<FileStat, FsError> {
        self.check(Permission::List, "stat", path)?;
        let (m, inner) = self.mounts.locate(path);
        let res = self.on_the_way(path, m.fs.stat(&inner).await);
        self.done("stat", path, res)
    }

    pub async fn lstat(&self, path: &VirtualPath) -> Result<FileStat, FsError> {
        self.check(Permission::List, "lstat", path)?;
        let (m, inner) = self.mounts.locate(path);
        let res = self.on_the_way(path, m.fs.lstat(&inner).await);
        self.done("lstat", path, res)
    }

    /// A directory on the way to a virtual folder that the home does not have is an
    /// empty directory.
    fn on_the_way(&self, path: &VirtualPath, res: io::Result<FileStat>) -> io::Result<FileStat> {
        match res {
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.mounts.is_on_the_way(path) => {
                Ok(mounts::virtual_dir())
            }
            res => res,
        }
    }

    /// Whether `path` is a directory (`Some(true)`), another entry (`Some(false)`) or
    /// nothing (`None`), for a protocol that must know where an upload goes (SCP's
    /// target and `D` lines, sent as names, not opens). Needs the upload permission, not
    /// list: a drop-box user (upload only) may upload into a directory, and learns no
    /// more than an SFTP OPEN of the same path would tell.
    pub async fn upload_target(&self, path: &VirtualPath) -> Result<Option<bool>, FsError> {
        self.check(Permission::Upload, "upload", path)?;
        let (m, inner) = self.mounts.locate(path);
        match self.on_the_way(path, m.fs.stat(&inner).await) {
            Ok(st) => Ok(Some(st.is_dir())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.failed("upload", path, e)),
        }
    }

    pub async fn read_dir(&self, path: &VirtualPath) -> Result<Vec<DirEntry>, FsError> {
        self.check(Permission::List, "list", path)?;
        let (m, inner) = self.mounts.locate(path);
        let res = match m.fs.read_dir(&inner).await {
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.mounts.is_on_the_way(path) => {
                Ok(Vec::new())
            }
            res => res,
        };
        let mut entries = self.done("list", path, res)?;
        if self.mounts.has_folders() {
            self.add_folders(path, &mut entries).await;
        }
        Ok(entries)
    }

    /// Shows the virtual folders (and the directories on the way to them) inside `dir`
    /// as directories, in place of any entry of the same name.
    async fn add_folders(&self, dir: &VirtualPath, entries: &mut Vec<DirEntry>) {
        for (name, point) in self.mounts.children_of(dir) {
            let stat = match point {
                Some(m) => m.fs.stat(&VirtualPath::root()).await.ok(),
                None => None,
            };
            let stat = stat.unwrap_or_else(mounts::virtual_dir);
            match entries.iter_mut().find(|e| e.name == name) {
                Some(e) => e.stat = stat,
                None => entries.push(DirEntry { name, stat }),
            }
        }
    }

    pub async fn read_link(&self, path: &VirtualPath) -> Result<Vec<u8>, FsError> {
        self.check(Permission::List, "readlink", path)?;
        let (m, inner) = self.mounts.locate(path);
        self.capable(m, "readlink", path, |c| c.symlinks)?;
        let target = self.done("readlink", path, m.fs.read_link(&inner).await)?;
        if m.at.is_root() {
            return Ok(target);
        }
        // The backend answers in the folder's own paths.
        let target = VirtualPath::parse(&target)?;
        Ok(m.outer(&target).as_bytes().to_vec())
    }

    pub async fn statvfs(&self, path: &VirtualPath) -> Result<StatVfs, FsError> {
        self.check(Permission::List, "statvfs", path)?;
        let (m, inner) = self.mounts.locate(path);
        self.capable(m, "statvfs", path, |c| c.statvfs)?;
        self.done("statvfs", path, m.fs.statvfs(&inner).await)
    }

    pub async fn mkdir(&self, path: &VirtualPath) -> Result<(), FsError> {
        self.check(Permission::CreateDirs, "mkdir", path)?;
        let (m, inner) = self.mounts.locate(path);
        let res = m.fs.mkdir(&inner, self.mode(0o777), self.owner).await;
        self.done("mkdir", path, res)?;
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
        self.not_a_folder("rmdir", path)?;
        let (m, inner) = self.mounts.locate(path);
        self.done("rmdir", path, m.fs.rmdir(&inner).await)?;
        self.log_command("Rmdir", path, None);
        Ok(())
    }

    /// Removes a file or symlink (directories need [`UserFs::rmdir`]).
    pub async fn remove(&self, path: &VirtualPath) -> Result<(), FsError> {
        self.check(Permission::Delete, "remove", path)?;
        self.not_a_folder("remove", path)?;
        let (m, inner) = self.mounts.locate(path);
        let file = self.done("remove", path, m.fs.remove_file(&inner).await)?;
        // Quota counts files (inodes): only the last link of a file frees it.
        if let Some(st) = file.as_ref().filter(|st| st.nlink == 1) {
            m.quota.record(-(st.size as i64), -1);
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
        self.not_a_folder("rename", from)?;
        self.not_a_folder("rename", to)?;
        let (m, inner_from) = self.mounts.locate(from);
        let (m_to, inner_to) = self.mounts.locate(to);
        if !std::ptr::eq(m, m_to) {
            return self.rename_across(from, to, replace).await;
        }
        let renamed = self.done(
            "rename",
            from,
            m.fs.rename(&inner_from, &inner_to, replace).await,
        )?;
        // A file replaced by the rename stops counting (unless it is the same file, which
        // rename leaves alone, or another hard link keeps it).
        let replaced = renamed.replaced.filter(|target| {
            let same = renamed
                .source
                .is_some_and(|s| (s.dev, s.ino) == (target.dev, target.ino));
            target.nlink == 1 && !same
        });
        if let Some(target) = replaced {
            m.quota.record(-(target.size as i64), -1);
        }
        self.log_command("Rename", from, Some(to));
        let size = renamed.source.map(|st| st.size);
        self.fire(ActionKind::Rename, from, Some(to), size);
        Ok(())
    }

    /// A rename from one mount to another (the home and a folder, or two folders): a
    /// file is copied (in the kernel, or inside the object store, where both storages
    /// allow it; the target's quota and upload rules apply as to any upload) and then
    /// removed; a directory, a link, or storages that cannot copy between them are
    /// refused as unsupported, which clients answer by copying and deleting themselves.
    /// Needs the download and upload permissions besides rename: the data moves.
    async fn rename_across(
        &self,
        from: &VirtualPath,
        to: &VirtualPath,
        replace: bool,
    ) -> Result<(), FsError> {
        let (m, inner) = self.mounts.locate(from);
        let (m_to, inner_to) = self.mounts.locate(to);
        let st = self.done("rename", from, m.fs.lstat(&inner).await)?;
        if !st.is_file() {
            return Err(FsError::Unsupported(
                "renaming a directory or a link across virtual folders",
            ));
        }
        // Refused before the target is touched.
        if !m.fs.copies_to(&m_to.fs) {
            return Err(FsError::Unsupported("a rename between these storages"));
        }
        let src = self.open_download(from).await?;
        let flags = UploadFlags {
            create: true,
            truncate: true,
            exclusive: !replace,
            size: Some(st.size),
            ..UploadFlags::default()
        };
        let dst = match self.open_upload(to, flags).await {
            Ok(dst) => dst,
            Err(e) => {
                let _ = src.close(true).await;
                return Err(e);
            }
        };
        let copied = src.copy_to(&dst, 0, 0, 0).await;
        let _ = src.close(true).await;
        if let Err(e) = copied {
            let _ = dst.close(false).await;
            // A target this rename created goes again (an atomic upload left nothing).
            if !replace
                && let Ok(Some(st)) = m_to.fs.remove_file(&inner_to).await
                && st.nlink == 1
            {
                m_to.quota.record(-(st.size as i64), -1);
            }
            return Err(self.failed("rename", to, e));
        }
        dst.close(true).await?;
        let (m, inner) = self.mounts.locate(from);
        let removed = self.done("rename", from, m.fs.remove_file(&inner).await)?;
        if let Some(st) = removed.as_ref().filter(|st| st.nlink == 1) {
            m.quota.record(-(st.size as i64), -1);
        }
        self.log_command("Rename", from, Some(to));
        self.fire(ActionKind::Rename, from, Some(to), Some(st.size));
        Ok(())
    }

    /// Creates `link` pointing at `target` (a client path, stored relative to the link).
    pub async fn symlink(&self, target: &[u8], link: &VirtualPath) -> Result<(), FsError> {
        self.check(Permission::CreateSymlinks, "symlink", link)?;
        let (m, inner) = self.mounts.locate(link);
        self.capable(m, "symlink", link, |c| c.symlinks)?;
        let res = if self.mounts.has_folders() {
            // The target, in the link's mount's own paths: a link never leads from one
            // mount into another (each is confined on its own).
            let base = link.parent().unwrap_or_else(VirtualPath::root);
            let (tm, inner_target) = {
                let absolute = base.join(target)?;
                let (tm, t) = self.mounts.locate(&absolute);
                (tm, t.into_owned())
            };
            if !std::ptr::eq(m, tm) {
                return Err(FsError::Unsupported("a symlink across virtual folders"));
            }
            m.fs.symlink(inner_target.as_bytes(), &inner).await
        } else {
            m.fs.symlink(target, &inner).await
        };
        self.done("symlink", link, res)?;
        self.log_command("Symlink", link, None);
        Ok(())
    }

    pub async fn hard_link(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), FsError> {
        self.check(Permission::CreateSymlinks, "hardlink", to)?;
        let (m, inner_from) = self.mounts.locate(from);
        let (m_to, inner_to) = self.mounts.locate(to);
        self.capable(m, "hardlink", to, |c| c.hard_links)?;
        if !std::ptr::eq(m, m_to) {
            return Err(FsError::Unsupported("a hard link across virtual folders"));
        }
        // Quota counts files (inodes): a new link to a file adds nothing.
        self.done(
            "hardlink",
            from,
            m.fs.hard_link(&inner_from, &inner_to).await,
        )?;
        self.log_command("Link", from, Some(to));
        Ok(())
    }

    /// Applies attribute changes; changing a file requires the upload permission.
    /// With `sftpd.setstat_mode` 1, mode, owner and time changes are accepted and
    /// ignored (clients that copy attributes after an upload then succeed); a size change
    /// still applies.
    pub async fn set_attrs(&self, path: &VirtualPath, attrs: SetAttrs) -> Result<(), FsError> {
        let attrs = if self.settings.ignore_setstat {
            SetAttrs {
                size: attrs.size,
                ..SetAttrs::default()
            }
        } else {
            attrs
        };
        if attrs == SetAttrs::default() {
            return Ok(());
        }
        self.check(Permission::Upload, "setstat", path)?;
        let uid_gid = self.allowed_owner_change(attrs.uid_gid)?;
        let (m, inner) = self.mounts.locate(path);
        // A size change is a write: growth must fit the quota, and the delta is recorded.
        let size_change = match attrs.size {
            Some(new) => {
                let old = self.done("setstat", path, m.fs.stat(&inner).await)?.size as i64;
                let growth = new as i64 - old;
                if growth > 0
                    && let Some(remaining) = m.quota.admit_write(false).await?
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
        let attrs = SetAttrs { uid_gid, ..attrs };
        self.done("setstat", path, m.fs.set_attrs(&inner, attrs).await)?;
        m.quota.record(size_change, 0);
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

    /// Refuses an operation the user's storage cannot do.
    fn capable(
        &self,
        mount: &Mount,
        op: &'static str,
        path: &VirtualPath,
        has: impl FnOnce(crate::storage::Capabilities) -> bool,
    ) -> Result<(), FsError> {
        if has(mount.fs.capabilities()) {
            return Ok(());
        }
        if self.state.may_log() {
            tracing::info!(sender = "fs", username = %self.state.user.username, connection_id = %self.state.id, operation = op, path = %path.display(), "refused: not supported by the user's storage");
        }
        Err(FsError::Unsupported(op))
    }

    /// Opens a file for reading.
    pub async fn open_download(&self, path: &VirtualPath) -> Result<Transfer, FsError> {
        self.check(Permission::Download, "download", path)?;
        let slot = self.open_file_slot("download", path)?;
        let (m, inner) = self.mounts.locate(path);
        let (file, size) = self.done("download", path, m.fs.open_read(&inner).await)?;
        Ok(Transfer::start_download(
            (file, size),
            slot,
            path.clone(),
            m.fs.host_path(&inner),
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
        let (m, inner) = self.mounts.locate(path);
        if flags.append {
            self.capable(m, "append", path, |c| c.random_writes)?;
        }
        let slot = self.open_file_slot("upload", path)?;
        let usage = m.quota.usage_for_write().await?;
        let quota = m.quota.clone();
        let req = WriteRequest {
            flags,
            mode: self.mode(0o666),
            owner: self.owner,
            atomic: self.settings.upload_mode == crate::UploadMode::Atomic,
            create_first: quota.allows_another_file(usage),
        };
        // The quota decision, on what the path leads to: a new file must be allowed, and
        // an announced size must fit (what a truncating upload replaces stops counting).
        let admit = move |probe: UploadProbe| {
            let old = match probe.resolved {
                Some(st) if flags.truncate => st.size,
                _ => 0,
            };
            quota
                .admit(usage, probe.resolved.is_none() && flags.create)
                .and_then(|left| announced_fits(flags.size, old, left))
        };
        // Boxed: the open's future (the admission closure, its probes) is the largest of
        // any request's, and every SFTP request's task is as large as the largest call it
        // may make; one allocation per upload keeps each READ's and WRITE's task small.
        let res = Box::pin(m.fs.open_write(&inner, req, admit)).await;
        let opened = self.done("upload", path, res)??;
        // Quota counts files (inodes). An atomic upload puts a new file where the path
        // leads (through a symlink, at the link's target): the file there stops counting
        // only if that was its last link. An in-place upload writes that file.
        let (base_size, new_file) = if opened.atomic {
            match opened.resolved.filter(|st| st.is_file() && st.nlink == 1) {
                Some(st) => (st.size as i64, false),
                None => (0, true),
            }
        } else {
            match opened.resolved.filter(FileStat::is_file) {
                Some(st) => (st.size as i64, false),
                None => (0, opened.resolved.is_none()),
            }
        };
        let accounting = UploadAccounting {
            reservation: m.quota.reservation(),
            base_size,
            initial_size: opened.size as i64,
            new_file,
            append: flags.append,
            ignore_setstat: self.settings.ignore_setstat,
        };
        Ok(Transfer::start_upload(
            (opened.file, slot),
            path.clone(),
            m.fs.host_path(&inner),
            self.state.clone(),
            accounting,
            Throttle::new(self.state.user.upload_bandwidth),
        ))
    }

    /// The storage holding `path` and the path inside it, for the checksum's reads.
    pub(crate) fn storage<'p>(
        &self,
        path: &'p VirtualPath,
    ) -> (&AnyFs, std::borrow::Cow<'p, VirtualPath>) {
        let (m, inner) = self.mounts.locate(path);
        (&m.fs, inner)
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
    /// FSETSTAT's mode and time changes are accepted and ignored (`sftpd.setstat_mode`).
    pub ignore_setstat: bool,
}

/// Atomic-upload temp files (their name, the start-up sweep of stale ones) belong to the
/// local backend.
pub use crate::storage::local::{TEMP_PREFIX, remove_stale_uploads};
