//! A user's mount table: the home at `/` and each virtual folder at its virtual path.
//! [`Mounts::locate`] turns a virtual path into the storage that holds it and the path
//! inside that storage; the directories on the way to a folder that the home does not
//! have are shown as empty directories, so clients can walk to the folder.

use std::borrow::Cow;

use sftpgo_vfs::{FileStat, VirtualPath};

use crate::quota::QuotaKeeper;
use crate::storage::AnyFs;

/// One entry: the storage seen at `at` and the quota its changes go to.
pub(crate) struct Mount {
    pub(crate) at: VirtualPath,
    pub(crate) fs: AnyFs,
    pub(crate) quota: QuotaKeeper,
}

impl Mount {
    /// The path inside this mount of `path` (beneath or at `at`), or `None`.
    fn inner<'p>(&self, path: &'p VirtualPath) -> Option<Cow<'p, VirtualPath>> {
        if self.at.is_root() {
            return Some(Cow::Borrowed(path));
        }
        path.strip_prefix(&self.at).map(Cow::Owned)
    }

    /// `inner`, a path inside this mount, as the user sees it.
    pub(crate) fn outer(&self, inner: &VirtualPath) -> VirtualPath {
        if self.at.is_root() {
            return inner.clone();
        }
        // Both normalised: the join cannot climb out of `at` nor grow past its bounds
        // by more than `inner` did.
        self.at
            .join(inner.relative())
            .unwrap_or_else(|_| self.at.clone())
    }
}

/// The mount table, deepest mount point first, the home (at `/`) last.
pub(crate) struct Mounts(Vec<Mount>);

impl Mounts {
    /// `home` at `/` and `folders` at their virtual paths (none of which is `/`: the
    /// provider refuses it).
    pub(crate) fn new(home: Mount, mut folders: Vec<Mount>) -> Self {
        folders.retain(|m| !m.at.is_root());
        // Deepest first: the first mount whose point is a prefix is the one that holds
        // the path (validation already refuses folders inside one another).
        folders.sort_by_key(|m| std::cmp::Reverse(m.at.components().count()));
        folders.push(home);
        Self(folders)
    }

    /// The mount holding `path` and the path inside it.
    pub(crate) fn locate<'p>(&self, path: &'p VirtualPath) -> (&Mount, Cow<'p, VirtualPath>) {
        for m in &self.0 {
            if let Some(inner) = m.inner(path) {
                return (m, inner);
            }
        }
        // Unreachable: the home, at `/`, is last and holds every path.
        let home = self.home();
        (home, Cow::Borrowed(path))
    }

    pub(crate) fn home(&self) -> &Mount {
        self.0
            .last()
            .expect("a mount table always has the home (Mounts::new)")
    }

    /// Whether the user has virtual folders.
    pub(crate) fn has_folders(&self) -> bool {
        self.0.len() > 1
    }

    /// The folders (every mount but the home).
    pub(crate) fn folders(&self) -> impl Iterator<Item = &Mount> {
        self.0.iter().filter(|m| !m.at.is_root())
    }

    /// Whether `path` is a folder's mount point or a directory on the way to one: it
    /// cannot be removed or renamed (that would move or hide the folder).
    pub(crate) fn holds_folder(&self, path: &VirtualPath) -> bool {
        self.folders()
            .any(|m| m.at == *path || m.at.strip_prefix(path).is_some())
    }

    /// Whether `path` is a directory on the way to a folder (not a mount point).
    pub(crate) fn is_on_the_way(&self, path: &VirtualPath) -> bool {
        self.folders()
            .any(|m| m.at != *path && m.at.strip_prefix(path).is_some())
    }

    /// The names directly inside `dir` that lead to folders (a mount point, or a
    /// directory on the way to one), each with the mount when it is its point.
    pub(crate) fn children_of<'a>(
        &'a self,
        dir: &VirtualPath,
    ) -> Vec<(Vec<u8>, Option<&'a Mount>)> {
        let mut out: Vec<(Vec<u8>, Option<&Mount>)> = Vec::new();
        for m in self.folders() {
            let Some(rest) = m.at.strip_prefix(dir) else {
                continue;
            };
            let mut parts = rest.components();
            let Some(name) = parts.next() else {
                continue;
            };
            let point = parts.next().is_none().then_some(m);
            match out.iter_mut().find(|(n, _)| n == name) {
                Some(entry) => entry.1 = entry.1.or(point),
                None => out.push((name.to_vec(), point)),
            }
        }
        out
    }
}

/// What a directory on the way to a folder looks like when the home does not have it.
pub(crate) fn virtual_dir() -> FileStat {
    FileStat {
        size: 0,
        uid: 0,
        gid: 0,
        mode: 0o040755,
        atime: 0,
        mtime: 0,
        nlink: 1,
        dev: 0,
        ino: 0,
    }
}
