//! Quota: the checks a write must pass and the bookkeeping every change reports.
//!
//! Limits are enforced only for users that have them and when `track_quota` keeps
//! bookkeeping (without it the stored usage would be meaningless). Deltas go to the data
//! provider, which applies them atomically (`used = used + ?`), so several connections and
//! several server instances add up exactly.
//!
//! A user's usage goes through this process's [`Ledger`], not straight to the provider:
//! reading it at every upload's open and writing it at every close cost two provider
//! round trips per file (with SQLite, a `put -r` of 2000 small files took 30% longer and
//! 70% more server CPU than for a user without limits). The ledger reads a user's usage
//! at most once per [`REFRESH_AFTER`], adds the changes made here at once, and writes
//! them, summed, [`FLUSH_DELAY`] after the first one; a change that cannot be written is
//! kept and retried, and shutdown writes what is left.
//!
//! Virtual folders keep a usage of their own ([`Owner::Folder`]): a folder counted in
//! its user's quota records each change in both accounts and checks the user's limits;
//! one with limits of its own records in the folder's account only and checks those.

use std::collections::HashMap;
use std::io;
use std::ops::AddAssign;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use sftpgo_provider::{DataProvider, ProviderError, TrackQuota, User, VirtualFolder};
use tokio::time::Instant;

use crate::fs::FsError;

/// How long a usage read from the provider is trusted for admission checks; changes made
/// here are added to it at once, so only other instances' changes wait this long.
pub const REFRESH_AFTER: Duration = Duration::from_secs(1);
/// How long changes gather before being written as one delta.
pub const FLUSH_DELAY: Duration = Duration::from_millis(100);
/// Longest wait between retries of a failed write.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// A user's stored usage: bytes and files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    size: i64,
    files: i64,
}

impl Usage {
    fn is_zero(self) -> bool {
        self == Self::default()
    }
}

impl AddAssign for Usage {
    fn add_assign(&mut self, o: Self) {
        self.size += o.size;
        self.files += o.files;
    }
}

/// Whose usage an [`Account`] keeps.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// A user, by username.
    User(String),
    /// A virtual folder, by mapped path.
    Folder(String),
}

impl Owner {
    /// For logs: the username of a user's account (a field absent otherwise).
    fn username(&self) -> Option<&str> {
        match self {
            Owner::User(name) => Some(name),
            Owner::Folder(_) => None,
        }
    }

    /// For logs: the mapped path of a folder's account.
    fn mapped_path(&self) -> Option<&str> {
        match self {
            Owner::Folder(path) => Some(path),
            Owner::User(_) => None,
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::User(name) => write!(f, "user {name:?}"),
            Owner::Folder(path) => write!(f, "folder {path:?}"),
        }
    }
}

/// Every user's and folder's [`Account`] in this process, while a connection or an
/// unwritten change holds it.
pub struct Ledger {
    provider: DataProvider,
    accounts: Mutex<HashMap<Owner, Weak<Account>>>,
}

impl Ledger {
    pub fn new(provider: DataProvider) -> Self {
        Self {
            provider,
            accounts: Mutex::default(),
        }
    }

    /// The account of `owner`, shared with the other connections using it.
    pub(crate) fn account(&self, owner: Owner) -> Arc<Account> {
        let mut accounts = self.lock();
        if let Some(a) = accounts.get(&owner).and_then(Weak::upgrade) {
            return a;
        }
        if accounts.len() >= 64 {
            accounts.retain(|_, a| a.strong_count() > 0);
        }
        let a = Arc::new(Account {
            owner: owner.clone(),
            provider: self.provider.clone(),
            state: Mutex::default(),
            io: tokio::sync::Mutex::new(()),
        });
        accounts.insert(owner, Arc::downgrade(&a));
        a
    }

    /// Writes every unwritten change now, and waits for the writes under way: once it
    /// returns, the provider holds every change this process has answered a client for,
    /// so the REST API, which reads users from the provider, shows the usage clients
    /// see (other instances' changes reach it once they write them, within
    /// [`FLUSH_DELAY`] plus a round trip). Costs a provider write per user only when that
    /// user has changes waiting. A change that cannot be written stays pending and is
    /// retried as usual. Returns the accounts that still have changes pending.
    pub async fn write_now(&self) -> Vec<(Owner, i64, i64)> {
        let live: Vec<Arc<Account>> = self.lock().values().filter_map(Weak::upgrade).collect();
        let mut left_over = Vec::new();
        for a in live {
            a.flush().await;
            let left = a.lock().pending;
            if !left.is_zero() {
                left_over.push((a.owner.clone(), left.size, left.files));
            }
        }
        left_over
    }

    /// Writes every unwritten change now (shutdown; tests that read the provider). A
    /// change that still cannot be written is logged with its amounts.
    pub async fn flush(&self) {
        for (owner, size_delta, files_delta) in self.write_now().await {
            tracing::warn!(
                sender = "quota",
                username = owner.username(),
                mapped_path = owner.mapped_path(),
                size_delta,
                files_delta,
                "quota changes not recorded; a quota scan repairs the used quota"
            );
        }
    }

    /// Replaces the stored usage of `username` with a quota scan's totals. Changes recorded
    /// here and not yet written are dropped: the scan counted the files they describe.
    pub async fn reset(&self, username: &str, size: i64, files: i64) -> Result<(), ProviderError> {
        self.reset_owner(&Owner::User(username.to_owned()), size, files)
            .await
    }

    /// As [`Ledger::reset`], for any owner (a folder's quota scan).
    pub async fn reset_owner(
        &self,
        owner: &Owner,
        size: i64,
        files: i64,
    ) -> Result<(), ProviderError> {
        let store = || async {
            match owner {
                Owner::User(name) => self.provider.reset_quota(name, size, files).await,
                Owner::Folder(path) => self.provider.reset_folder_quota(path, size, files).await,
            }
        };
        let Some(a) = self.lock().get(owner).and_then(Weak::upgrade) else {
            return store().await;
        };
        let _io = a.io.lock().await;
        store().await?;
        let mut s = a.lock();
        s.pending = Usage::default();
        s.stored = Some((Usage { size, files }, Instant::now()));
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Owner, Weak<Account>>> {
        self.accounts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One user's or folder's usage as this process knows it.
pub(crate) struct Account {
    owner: Owner,
    provider: DataProvider,
    state: Mutex<AccountState>,
    /// Held across each provider read and write of this account, so a read never sees
    /// half of a write of ours: the usage is then exactly `stored + pending`.
    io: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct AccountState {
    /// The provider's figure when last read (and when), plus the changes written since.
    stored: Option<(Usage, Instant)>,
    /// Being written now.
    writing: Usage,
    /// Recorded here, not yet written.
    pending: Usage,
    /// Bytes the uploads in progress (of every connection of the user) have added so far:
    /// counted against the size limit with the rest, recorded when they close.
    reserved: i64,
    /// A task is waiting to write `pending`.
    scheduled: bool,
    /// Writes failed in a row (the retry delay doubles with each).
    failures: u32,
}

impl AccountState {
    /// The usage as this process knows it, uploads in progress included.
    fn estimate(&self) -> Usage {
        let mut u = self.stored.map(|(u, _)| u).unwrap_or_default();
        u += self.writing;
        u += self.pending;
        u.size += self.reserved;
        u
    }
}

impl Account {
    /// The usage: the stored figure (read again when older than [`REFRESH_AFTER`]) plus
    /// the changes recorded here and not yet written, and the uploads in progress.
    async fn usage(&self) -> Result<Usage, ProviderError> {
        if let Some(u) = self.known() {
            return Ok(u);
        }
        let _io = self.io.lock().await;
        if let Some(u) = self.known() {
            return Ok(u); // read by whoever held the lock before us
        }
        let stored = match &self.owner {
            Owner::User(name) => {
                let user = self.provider.user_by_username(name).await?;
                Usage {
                    size: user.used_quota_size,
                    files: user.used_quota_files,
                }
            }
            Owner::Folder(path) => {
                let folder = self.provider.folder_by_path(path).await?;
                Usage {
                    size: folder.used_quota_size,
                    files: folder.used_quota_files,
                }
            }
        };
        let mut s = self.lock();
        s.stored = Some((stored, Instant::now()));
        Ok(s.estimate())
    }

    fn known(&self) -> Option<Usage> {
        let s = self.lock();
        s.stored
            .filter(|(_, at)| at.elapsed() < REFRESH_AFTER)
            .map(|_| s.estimate())
    }

    /// Counts `bytes` more of an upload in progress against `limit`; refused (with the
    /// bytes left) when the user's usage, the other uploads in progress included, would
    /// pass it. Uses the last usage read, however old: the upload's open read it.
    fn reserve(&self, bytes: i64, limit: i64) -> Result<(), i64> {
        let mut s = self.lock();
        if s.stored.is_some() {
            let used = s.estimate().size;
            if used + bytes > limit {
                return Err((limit - used).max(0));
            }
        }
        s.reserved += bytes;
        Ok(())
    }

    /// Ends a reservation: its bytes stop counting as in progress, and `delta` (a change
    /// to record) starts counting as done, at the same moment. The change is written with
    /// the others made within [`FLUSH_DELAY`].
    fn settle(self: &Arc<Self>, reserved: i64, delta: Option<Usage>) {
        let mut s = self.lock();
        s.reserved -= reserved;
        if let Some(d) = delta {
            s.pending += d;
            if !s.scheduled {
                s.scheduled = self.schedule(FLUSH_DELAY);
            }
        }
    }

    /// Starts a task that writes the pending changes after `delay`. Outside a runtime
    /// (nothing in the server) the changes wait for the next record or [`Ledger::flush`].
    fn schedule(self: &Arc<Self>, delay: Duration) -> bool {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        rt.spawn(self.clone().flush_after(delay));
        true
    }

    async fn flush_after(self: Arc<Self>, delay: Duration) {
        tokio::time::sleep(delay).await;
        self.lock().scheduled = false;
        self.flush().await;
    }

    /// Writes the pending changes as one delta. On failure they stay pending and a retry
    /// is scheduled; a user that no longer exists has nothing to write to.
    async fn flush(self: &Arc<Self>) {
        let _io = self.io.lock().await;
        let delta = {
            let mut s = self.lock();
            let d = std::mem::take(&mut s.pending);
            s.writing = d;
            d
        };
        if delta.is_zero() {
            return;
        }
        let result = match &self.owner {
            Owner::User(name) => self.provider.add_quota(name, delta.size, delta.files).await,
            Owner::Folder(path) => {
                self.provider
                    .add_folder_quota(path, delta.size, delta.files)
                    .await
            }
        };
        let mut s = self.lock();
        s.writing = Usage::default();
        match result {
            Ok(()) => {
                if let Some((u, _)) = &mut s.stored {
                    *u += delta;
                }
                if s.failures > 0 {
                    tracing::info!(
                        sender = "quota",
                        username = self.owner.username(),
                        mapped_path = self.owner.mapped_path(),
                        failures = s.failures,
                        "quota changes recorded after failed attempts"
                    );
                }
                s.failures = 0;
            }
            Err(ProviderError::NotFound(_)) => {
                tracing::warn!(
                    sender = "quota",
                    username = self.owner.username(),
                    mapped_path = self.owner.mapped_path(),
                    size_delta = delta.size,
                    files_delta = delta.files,
                    "removed meanwhile, quota change dropped"
                );
            }
            Err(e) => {
                s.pending += delta;
                s.failures += 1;
                let retry = Duration::from_secs(1)
                    .saturating_mul(1 << s.failures.min(5).saturating_sub(1))
                    .min(MAX_RETRY_DELAY);
                tracing::warn!(
                    sender = "quota",
                    username = self.owner.username(), mapped_path = self.owner.mapped_path(),
                    size_delta = delta.size,
                    files_delta = delta.files,
                    error = %e,
                    retry_in_ms = retry.as_millis() as u64,
                    "cannot record a quota change"
                );
                if !s.scheduled {
                    s.scheduled = self.schedule(retry);
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AccountState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Size and file-count limits (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    size: i64,
    files: i64,
}

/// One user's quota (of the home, or of one of the user's virtual folders), as seen by
/// their connection.
#[derive(Clone)]
pub struct QuotaKeeper {
    provider: DataProvider,
    /// Where the limits are checked, and changes recorded when `tracked`.
    account: Arc<Account>,
    tracked: bool,
    /// A second account recording the same changes: the folder's own usage, for a folder
    /// counted in the user's quota.
    also: Option<Arc<Account>>,
    limits: Limits,
    user: Arc<User>,
    /// The user's log budget (see `connection::LogBudget`); `None` logs every refusal.
    shared: Option<Arc<crate::connection::UserShared>>,
}

impl QuotaKeeper {
    /// The quota of the user's home.
    pub(crate) fn new(ledger: &Ledger, user: Arc<User>) -> Self {
        Self {
            provider: ledger.provider.clone(),
            account: ledger.account(Owner::User(user.username.clone())),
            tracked: ledger.provider.tracks_quota(&user),
            also: None,
            limits: Limits {
                size: user.quota_size,
                files: user.quota_files,
            },
            user,
            shared: None,
        }
    }

    /// The quota of the user's virtual folder `folder`: the user's (and the folder's
    /// usage too) for a folder counted in the user's quota, else the folder's with the
    /// mapping's limits. A folder's usage is kept whenever `track_quota` keeps any.
    pub(crate) fn for_folder(ledger: &Ledger, user: Arc<User>, folder: &VirtualFolder) -> Self {
        let tracks = ledger.provider.track_quota() != TrackQuota::Off;
        let folder_account = || ledger.account(Owner::Folder(folder.mapped_path.clone()));
        if folder.in_user_quota() {
            return Self {
                also: tracks.then(folder_account),
                ..Self::new(ledger, user)
            };
        }
        Self {
            provider: ledger.provider.clone(),
            account: folder_account(),
            tracked: tracks,
            also: None,
            limits: Limits {
                size: folder.quota_size,
                files: folder.quota_files,
            },
            user,
            shared: None,
        }
    }

    /// Puts the refusals this keeper logs under the user's log budget: a client can
    /// repeat them at will.
    pub(crate) fn with_log_budget(mut self, shared: Arc<crate::connection::UserShared>) -> Self {
        self.shared = Some(shared);
        self
    }

    fn may_log(&self) -> bool {
        self.shared
            .as_ref()
            .is_none_or(|s| s.log.allow(&self.user.username))
    }

    /// Whether limits apply.
    pub fn enforced(&self) -> bool {
        (self.limits.size > 0 || self.limits.files > 0)
            && self.provider.track_quota() != TrackQuota::Off
    }

    /// Current usage: this process's changes at once, other instances' within
    /// [`REFRESH_AFTER`].
    async fn used(&self) -> Result<Usage, FsError> {
        self.account.usage().await.map_err(|e| {
            if self.may_log() {
                tracing::warn!(sender = "quota", username = %self.user.username, mapped_path = self.account.owner.mapped_path(), error = %e, "cannot read used quota, denying the write");
            }
            FsError::Failure("quota unavailable: data provider error".into())
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
        let l = self.limits;
        if new_file && !self.allows_another_file(usage) {
            self.log_denied("file count", files, l.files);
            return Err(FsError::QuotaExceeded(format!(
                "quota exceeded: {files} of {} files used",
                l.files
            )));
        }
        if l.size > 0 {
            if size >= l.size {
                self.log_denied("size", size, l.size);
                return Err(FsError::QuotaExceeded(format!(
                    "quota exceeded: {size} of {} bytes used",
                    l.size
                )));
            }
            return Ok(Some(l.size - size));
        }
        Ok(None)
    }

    /// Whether the file-count limit leaves room for one more file (no log).
    pub(crate) fn allows_another_file(&self, usage: Option<Usage>) -> bool {
        let limit = self.limits.files;
        !matches!(usage, Some(Usage { files, .. }) if limit > 0 && files >= limit)
    }

    fn log_denied(&self, what: &str, used: i64, limit: i64) {
        if !self.may_log() {
            return;
        }
        tracing::info!(sender = "quota", username = %self.user.username, mapped_path = self.account.owner.mapped_path(), what, used, limit, "quota exceeded, write denied");
    }

    /// What an upload opened now counts against the size limit while it runs.
    pub(crate) fn reservation(&self) -> Reservation {
        Reservation {
            account: self.account.clone(),
            limit: (self.enforced() && self.limits.size > 0).then_some(self.limits.size),
            tracked: self.tracked,
            also: self.also.clone(),
            bytes: AtomicI64::new(0),
        }
    }

    /// Records a change, written to the provider within [`FLUSH_DELAY`]. A failed write is
    /// logged with its amounts and retried; it never fails the operation that already
    /// happened.
    pub(crate) fn record(&self, size_delta: i64, files_delta: i64) {
        let delta = Usage {
            size: size_delta,
            files: files_delta,
        };
        if delta.is_zero() {
            return;
        }
        if self.tracked {
            self.account.settle(0, Some(delta));
        }
        if let Some(also) = &self.also {
            also.settle(0, Some(delta));
        }
    }
}

/// An upload's growth counted against the user's size limit with the growth of the user's
/// other uploads in progress, so that uploads running together cannot pass the limit
/// together. Released when the upload closes or is dropped.
pub(crate) struct Reservation {
    account: Arc<Account>,
    /// The size limit, when one is enforced.
    limit: Option<i64>,
    /// Whether `track_quota` records this user's changes.
    tracked: bool,
    /// Records the same changes (see [`QuotaKeeper`]).
    also: Option<Arc<Account>>,
    bytes: AtomicI64,
}

impl Reservation {
    /// The upload's growth over what it replaced went from `from` to `to` bytes (either
    /// may be negative: an overwrite starts below the old size). Refused with the bytes
    /// left when the limit would be passed.
    pub(crate) fn grow(&self, from: i64, to: i64) -> Result<(), i64> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let more = to.max(0) - from.max(0);
        if more <= 0 {
            return Ok(());
        }
        self.account.reserve(more, limit)?;
        self.bytes.fetch_add(more, Ordering::Relaxed);
        Ok(())
    }

    /// The upload is over: its growth stops counting as in progress and `size_delta` /
    /// `files_delta` are recorded in its place, in one step.
    pub(crate) fn settle(&self, size_delta: i64, files_delta: i64) {
        let reserved = self.bytes.swap(0, Ordering::Relaxed);
        let delta = Usage {
            size: size_delta,
            files: files_delta,
        };
        if let Some(also) = self.also.as_ref().filter(|_| !delta.is_zero()) {
            also.settle(0, Some(delta));
        }
        let delta = (self.tracked && !delta.is_zero()).then_some(delta);
        if reserved != 0 || delta.is_some() {
            self.account.settle(reserved, delta);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let reserved = *self.bytes.get_mut();
        if reserved != 0 {
            self.account.settle(reserved, None);
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use async_trait::async_trait;
    use sftpgo_provider::memory::MemoryBackend;
    use sftpgo_provider::{Backend, Folder, FolderQuery, QuotaUpdate, Result, UserQuery};

    use super::*;

    /// The memory backend, counting quota reads and writes, failing them on demand.
    #[derive(Default)]
    struct Counted {
        inner: MemoryBackend,
        reads: AtomicUsize,
        writes: AtomicUsize,
        down: AtomicBool,
    }

    impl Counted {
        fn check(&self) -> Result<()> {
            if self.down.load(Ordering::SeqCst) {
                return Err(ProviderError::Backend("database down".into()));
            }
            Ok(())
        }
    }

    #[async_trait]
    impl Backend for Counted {
        fn driver(&self) -> &'static str {
            "counted"
        }
        async fn user_by_username(&self, username: &str) -> Result<User> {
            self.check()?;
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.inner.user_by_username(username).await
        }
        async fn user_by_id(&self, id: i64) -> Result<User> {
            self.inner.user_by_id(id).await
        }
        async fn insert_user(&self, user: &User) -> Result<User> {
            self.inner.insert_user(user).await
        }
        async fn update_user(&self, user: &User) -> Result<()> {
            self.inner.update_user(user).await
        }
        async fn delete_user(&self, id: i64) -> Result<()> {
            self.inner.delete_user(id).await
        }
        async fn list_users(&self, query: &UserQuery) -> Result<Vec<User>> {
            self.inner.list_users(query).await
        }
        async fn update_quota(&self, username: &str, update: QuotaUpdate) -> Result<()> {
            self.check()?;
            self.writes.fetch_add(1, Ordering::SeqCst);
            self.inner.update_quota(username, update).await
        }
        async fn ping(&self) -> Result<()> {
            self.check()
        }
        async fn folder_by_path(&self, path: &str) -> Result<Folder> {
            self.check()?;
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.inner.folder_by_path(path).await
        }
        async fn insert_folder(&self, folder: &Folder) -> Result<Folder> {
            self.inner.insert_folder(folder).await
        }
        async fn update_folder(&self, folder: &Folder) -> Result<()> {
            self.inner.update_folder(folder).await
        }
        async fn delete_folder(&self, id: i64) -> Result<()> {
            self.inner.delete_folder(id).await
        }
        async fn list_folders(&self, query: &FolderQuery) -> Result<Vec<Folder>> {
            self.inner.list_folders(query).await
        }
        async fn update_folder_quota(&self, path: &str, update: QuotaUpdate) -> Result<()> {
            self.check()?;
            self.writes.fetch_add(1, Ordering::SeqCst);
            self.inner.update_folder_quota(path, update).await
        }
    }

    struct Fixture {
        backend: Arc<Counted>,
        provider: DataProvider,
        ledger: Ledger,
        user: Arc<User>,
    }

    /// A user with a 1 MB, 100 files quota, tracked.
    async fn fixture() -> Fixture {
        let backend = Arc::new(Counted::default());
        let provider = DataProvider::new(backend.clone(), true, TrackQuota::LimitedUsersOnly);
        let user = provider
            .add_user(User {
                username: "q".into(),
                password: Some("pw".into()),
                home_dir: "/tmp/q".into(),
                permissions: vec![sftpgo_provider::Permission::Any],
                quota_size: 1_000_000,
                quota_files: 100,
                ..User::default()
            })
            .await
            .unwrap();
        Fixture {
            ledger: Ledger::new(provider.clone()),
            backend,
            provider,
            user: Arc::new(user),
        }
    }

    impl Fixture {
        async fn stored(&self) -> (i64, i64) {
            let u = self.provider.user_by_username("q").await.unwrap();
            (u.used_quota_size, u.used_quota_files)
        }
        fn reads(&self) -> usize {
            self.backend.reads.load(Ordering::SeqCst)
        }
        fn writes(&self) -> usize {
            self.backend.writes.load(Ordering::SeqCst)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn changes_count_at_once_and_are_written_together() {
        let f = fixture().await;
        let a = QuotaKeeper::new(&f.ledger, f.user.clone());
        let b = QuotaKeeper::new(&f.ledger, f.user.clone()); // the user's second connection
        assert_eq!(a.admit_write(true).await.unwrap(), Some(1_000_000));
        assert_eq!(f.reads(), 1);
        a.record(300_000, 1);
        b.record(200_000, 1);
        a.record(-50_000, -1);
        // Both connections see all three changes before any is written, without a read.
        assert_eq!(b.admit_write(true).await.unwrap(), Some(550_000));
        assert_eq!((f.reads(), f.writes()), (1, 0));
        tokio::time::sleep(FLUSH_DELAY + Duration::from_millis(1)).await;
        assert_eq!(f.writes(), 1, "one write for the three changes");
        let reads = f.reads();
        assert_eq!(f.stored().await, (450_000, 1));
        assert_eq!(a.admit_write(true).await.unwrap(), Some(550_000));
        assert_eq!(
            f.reads(),
            reads + 1,
            "only the check above read the provider"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn other_instances_changes_are_seen_after_refresh_after() {
        let f = fixture().await;
        let a = QuotaKeeper::new(&f.ledger, f.user.clone());
        assert_eq!(a.admit_write(false).await.unwrap(), Some(1_000_000));
        // Another instance fills the quota.
        f.provider.add_quota("q", 1_000_000, 1).await.unwrap();
        assert_eq!(a.admit_write(false).await.unwrap(), Some(1_000_000));
        tokio::time::sleep(REFRESH_AFTER).await;
        let err = a.admit_write(false).await.unwrap_err();
        assert!(matches!(err, FsError::QuotaExceeded(_)), "{err:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_that_cannot_be_written_is_kept_and_written_later() {
        let f = fixture().await;
        let a = QuotaKeeper::new(&f.ledger, f.user.clone());
        assert!(a.admit_write(true).await.is_ok());
        f.backend.down.store(true, Ordering::SeqCst);
        a.record(4096, 1);
        tokio::time::sleep(FLUSH_DELAY * 2).await;
        // Still counted here while the database is down.
        assert_eq!(
            a.admit_write(false).await.unwrap(),
            Some(1_000_000 - 4096),
            "within REFRESH_AFTER no read is needed"
        );
        tokio::time::sleep(REFRESH_AFTER).await;
        assert!(
            matches!(a.admit_write(false).await, Err(FsError::Failure(_))),
            "a usage that cannot be read refuses the write"
        );
        f.backend.down.store(false, Ordering::SeqCst);
        a.record(1000, 0);
        // The retries back off (1 s, 2 s, ...): within a minute all is written, once.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(f.stored().await, (5096, 1));
        f.ledger.flush().await;
        assert_eq!(f.stored().await, (5096, 1), "nothing written twice");
    }

    #[tokio::test(start_paused = true)]
    async fn flush_writes_now_and_reset_drops_what_the_scan_counted() {
        let f = fixture().await;
        let a = QuotaKeeper::new(&f.ledger, f.user.clone());
        a.record(10, 1);
        f.ledger.flush().await;
        assert_eq!(f.stored().await, (10, 1), "written without waiting");
        a.record(20, 1);
        f.ledger.reset("q", 7, 2).await.unwrap();
        tokio::time::sleep(FLUSH_DELAY * 2).await;
        assert_eq!(f.stored().await, (7, 2), "the scan's totals, not scan + 20");
        assert_eq!(a.admit_write(true).await.unwrap(), Some(1_000_000 - 7));
        // A scan of a user no connection holds goes straight to the provider.
        drop(a);
        f.ledger.reset("q", 1, 1).await.unwrap();
        assert_eq!(f.stored().await, (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn untracked_users_and_removed_users_write_nothing() {
        let f = fixture().await;
        let unlimited = Arc::new(User {
            quota_size: 0,
            quota_files: 0,
            ..(*f.user).clone()
        });
        let a = QuotaKeeper::new(&f.ledger, unlimited);
        a.record(10, 1); // track_quota 2: only users with limits
        f.ledger.flush().await;
        assert_eq!(f.writes(), 0);
        let b = QuotaKeeper::new(&f.ledger, f.user.clone());
        b.record(10, 1);
        f.provider.delete_user(f.user.id).await.unwrap();
        tokio::time::sleep(FLUSH_DELAY * 2).await;
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(
            f.writes(),
            1,
            "a removed user's change is dropped, not retried"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn uploads_in_progress_count_against_the_limit_together() {
        let f = fixture().await;
        let a = QuotaKeeper::new(&f.ledger, f.user.clone());
        let b = QuotaKeeper::new(&f.ledger, f.user.clone()); // a second connection
        assert_eq!(a.admit_write(true).await.unwrap(), Some(1_000_000));
        let up1 = a.reservation();
        let up2 = b.reservation();
        up1.grow(0, 600_000).unwrap();
        assert_eq!(
            up2.grow(0, 600_000),
            Err(400_000),
            "the two would pass 1 MB"
        );
        up2.grow(0, 400_000).unwrap();
        assert!(
            matches!(b.admit_write(true).await, Err(FsError::QuotaExceeded(_))),
            "a third upload finds no room at open"
        );
        // Growth is counted once: an overwrite below the old size adds nothing.
        let up3 = a.reservation();
        up3.grow(-500, -100).unwrap();
        // up1 closes: its growth is recorded, up2's is dropped (failed upload).
        up1.settle(600_000, 1);
        drop(up2);
        drop(up3);
        assert_eq!(a.admit_write(true).await.unwrap(), Some(400_000));
        tokio::time::sleep(FLUSH_DELAY * 2).await;
        assert_eq!(
            f.stored().await,
            (600_000, 1),
            "only the closed upload is stored"
        );
        // Without a size limit nothing is counted.
        let unlimited = Arc::new(User {
            quota_size: 0,
            ..(*f.user).clone()
        });
        let c = QuotaKeeper::new(&f.ledger, unlimited).reservation();
        c.grow(0, 5_000_000).unwrap();
        assert_eq!(a.admit_write(true).await.unwrap(), Some(400_000));
    }
}
