//! Quota: the checks a write must pass and the bookkeeping every change reports.
//!
//! Limits are enforced only for users that have them and when `track_quota` keeps
//! bookkeeping (without it the stored usage would be meaningless). Deltas go to the data
//! provider, which applies them atomically (`used = used + ?`), so several connections and
//! several server instances add up exactly.

use std::io;
use std::path::Path;
use std::sync::Arc;

use sftpgo_provider::{DataProvider, TrackQuota, User};

use crate::fs::FsError;

/// A user's stored usage: bytes and files.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage {
    size: i64,
    files: i64,
}

/// One user's quota, as seen by their connection.
#[derive(Clone)]
pub struct QuotaKeeper {
    provider: DataProvider,
    user: Arc<User>,
}

impl QuotaKeeper {
    pub(crate) fn new(provider: DataProvider, user: Arc<User>) -> Self {
        Self { provider, user }
    }

    /// Whether limits apply to this user.
    pub fn enforced(&self) -> bool {
        self.user.has_quota_limits() && self.provider.track_quota() != TrackQuota::Off
    }

    /// Current usage from the provider (fresh: other connections may have changed it).
    async fn used(&self) -> Result<Usage, FsError> {
        let u = self.provider.user_by_username(&self.user.username).await.map_err(|e| {
            tracing::warn!(sender = "quota", username = %self.user.username, error = %e, "cannot read used quota, denying the write");
            FsError::Failure("quota unavailable: data provider error".into())
        })?;
        Ok(Usage {
            size: u.used_quota_size,
            files: u.used_quota_files,
        })
    }

    /// Before creating a file: refuses when the file count is at its limit. Returns how
    /// many bytes the user may still add (`None` = unlimited).
    pub(crate) async fn admit_write(&self, new_file: bool) -> Result<Option<i64>, FsError> {
        let usage = self.usage_for_write().await?;
        self.admit(usage, new_file)
    }

    /// The usage [`QuotaKeeper::admit`] needs; `None` (and no provider call) when no
    /// limit applies. Split from `admit` so an open can read it before its one trip to
    /// the blocking pool and decide there, once it knows whether the file is new.
    pub(crate) async fn usage_for_write(&self) -> Result<Option<Usage>, FsError> {
        if !self.enforced() {
            return Ok(None);
        }
        self.used().await.map(Some)
    }

    /// [`QuotaKeeper::admit_write`]'s decision, given the usage read before.
    pub(crate) fn admit(
        &self,
        usage: Option<Usage>,
        new_file: bool,
    ) -> Result<Option<i64>, FsError> {
        let Some(Usage { size, files }) = usage else {
            return Ok(None);
        };
        let u = &self.user;
        if new_file && !self.allows_another_file(usage) {
            self.log_denied("file count", files, u.quota_files);
            return Err(FsError::QuotaExceeded(format!(
                "quota exceeded: {files} of {} files used",
                u.quota_files
            )));
        }
        if u.quota_size > 0 {
            if size >= u.quota_size {
                self.log_denied("size", size, u.quota_size);
                return Err(FsError::QuotaExceeded(format!(
                    "quota exceeded: {size} of {} bytes used",
                    u.quota_size
                )));
            }
            return Ok(Some(u.quota_size - size));
        }
        Ok(None)
    }

    /// Whether the file-count limit leaves room for one more file (no log).
    pub(crate) fn allows_another_file(&self, usage: Option<Usage>) -> bool {
        let limit = self.user.quota_files;
        !matches!(usage, Some(Usage { files, .. }) if limit > 0 && files >= limit)
    }

    fn log_denied(&self, what: &str, used: i64, limit: i64) {
        tracing::info!(sender = "quota", username = %self.user.username, what, used, limit, "quota exceeded, write denied");
    }

    /// Records a change; a failure is logged with the amounts so it can be repaired
    /// (a quota scan does that) and never fails the operation that already happened.
    pub(crate) async fn record(&self, size_delta: i64, files_delta: i64) {
        if size_delta == 0 && files_delta == 0 {
            return;
        }
        if let Err(e) = self
            .provider
            .update_quota(&self.user, size_delta, files_delta)
            .await
        {
            tracing::warn!(
                sender = "quota",
                username = %self.user.username,
                size_delta,
                files_delta,
                error = %e,
                "cannot record a quota change"
            );
        }
    }
}

/// Walks a home dir as a quota scan does: regular files only, each file (inode) once
/// however many hard links it has, symlinks neither counted nor followed. Returns (bytes, files).
pub fn scan(home: &Path) -> io::Result<(i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let (mut size, mut files) = (0i64, 0i64);
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![home.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let meta = entry.path().symlink_metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
                size += meta.len() as i64;
                files += 1;
            }
        }
    }
    Ok((size, files))
}
