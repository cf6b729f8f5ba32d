//! Virtual folders (SFTPGo 1.x): a [`Folder`] is a local directory or a prefix of a bucket,
//! known by its `mapped_path`, with its own used quota; a user maps folders into their
//! tree with [`VirtualFolder`] entries (`virtual_path`, and the folder's limits for this
//! user). One folder may be mapped by several users.

use serde::{Deserialize, Serialize};

use crate::SortOrder;
use crate::filesystem::Filesystem;

/// A folder record (SFTPGo 1.x's `BaseVirtualFolder`, plus 2.x's `filesystem`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Folder {
    pub id: i64,
    /// The folder's key: for a local folder, the host directory (absolute, normalised);
    /// for an S3 folder, any absolute name (`/s3/reports`) that identifies it.
    pub mapped_path: String,
    pub used_quota_size: i64,
    pub used_quota_files: i64,
    /// Milliseconds since the Unix epoch.
    pub last_quota_update: i64,
    /// Where the folder's files live: `mapped_path` on this machine, or a bucket.
    pub filesystem: Filesystem,
    /// The users that map this folder (in answers only; never stored).
    #[serde(skip_deserializing)]
    pub users: Vec<String>,
}

impl Folder {
    /// The folder as answers show it: never the storage's access secret.
    pub fn without_secrets(&self) -> Folder {
        let mut folder = self.clone();
        folder.filesystem.s3config.access_secret = Default::default();
        folder
    }
}

/// One of a user's `virtual_folders`: the folder `mapped_path` seen at `virtual_path`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VirtualFolder {
    /// The folder, by its key.
    pub mapped_path: String,
    /// Where the user sees it: an absolute, normalised path other than `/`.
    pub virtual_path: String,
    /// `-1`: the folder's files count in the user's quota (and only the user's limits
    /// apply); `0`: unlimited, not counted for the user; `> 0`: the folder's own limit
    /// for this user, not counted for the user. `quota_files` alike; both are `-1`
    /// together or neither is.
    pub quota_size: i64,
    pub quota_files: i64,
    /// On a create or update of the user: the storage of a folder that does not exist
    /// yet, which is then created with it (local when absent). Never stored with the
    /// user, never in answers.
    #[serde(skip_serializing)]
    pub filesystem: Option<Filesystem>,
}

impl VirtualFolder {
    /// Whether the folder's usage counts in the user's quota (`quota_size` -1).
    pub fn in_user_quota(&self) -> bool {
        self.quota_size < 0
    }

    /// Whether limits of the folder's own apply (not counted in the user's quota, and a
    /// positive limit set).
    pub fn has_own_limits(&self) -> bool {
        !self.in_user_quota() && (self.quota_size > 0 || self.quota_files > 0)
    }
}

/// A page of folders ordered by `mapped_path`, optionally only the one with that path.
#[derive(Debug, Clone)]
pub struct FolderQuery {
    pub limit: u32,
    pub offset: u32,
    pub order: SortOrder,
    pub mapped_path: Option<String>,
}

impl Default for FolderQuery {
    fn default() -> Self {
        Self {
            limit: 100,
            offset: 0,
            order: SortOrder::Asc,
            mapped_path: None,
        }
    }
}
