//! The S3-compatible backend: a user's files as objects under a key prefix of a bucket
//! (AWS S3, Garage, MinIO, Ceph...), through the AWS SDK for Rust (`aws-sdk-s3`).
//!
//! Why that crate: it is the one client with every call this backend needs and kept by
//! the service's own vendor: multipart uploads with their listing (the sweep of stale
//! ones), `UploadPartCopy` (renames past 5 GiB), storage classes, path-style addressing
//! and any endpoint. `object_store` has no listing of multipart uploads nor part copy.
//!
//! How a filesystem maps onto objects (as SFTPGo's S3 backend):
//! - `/a/b` is the key `<prefix>a/b`; a directory is a common prefix (`<prefix>a/`), and
//!   `mkdir` writes an empty marker object `<prefix>a/` so that an empty one exists.
//! - An upload streams as a multipart upload (parts of `upload_part_size`, at most
//!   `upload_concurrency` in flight: that bounds its memory), sequential writes only; the
//!   object appears when the file is finished with `publish`, any other end aborts the
//!   multipart upload. A small upload is one PUT.
//! - A download is one ranged GET streamed from the first read's offset; a read elsewhere
//!   starts another. Pipelined reads are served in order from the stream.
//! - Renaming a file is a copy and a delete; a directory only when empty. No links, no
//!   statvfs; modes, times and owners are not stored.
//! - Every request has a deadline: a store that is down or slow fails the request, with
//!   the bucket named, instead of hanging it.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, StorageClass};
use bytes::{Bytes, BytesMut};
use sftpgo_vfs::{DirEntry, FileStat, StatVfs, VirtualPath};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

use super::{
    Capabilities, Filesystem, FsFile, IoGuard, OpenedWrite, Renamed, UploadProbe, WriteRequest,
};
use crate::fs::SetAttrs;

/// The largest object one `CopyObject` copies; larger ones are copied in parts.
const COPY_MAX: u64 = 5 << 30;
/// Part size of a multipart copy.
const COPY_PART: u64 = 512 << 20;
/// Keys a listing page asks for.
const PAGE: i32 = 1000;

/// A user's S3 settings (SFTPGo 1.x's `s3config`), with the secret in plain text: what a
/// client is made of. `Debug` leaves the secret out.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// Empty: AWS's endpoint for the region.
    pub endpoint: String,
    pub access_key: String,
    pub access_secret: String,
    /// Where the user's files start in the bucket (`users/alice/`); empty: the bucket's root.
    pub key_prefix: String,
    pub storage_class: String,
    /// MiB per part (0: 5).
    pub upload_part_size: u64,
    /// Parts of one upload in flight at once (0: 2).
    pub upload_concurrency: usize,
    pub force_path_style: bool,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key", &self.access_key)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

impl S3Config {
    /// The settings of a user record, with its secret decrypted by the data provider.
    pub fn from_user(cfg: &sftpgo_provider::S3FsConfig, access_secret: String) -> Self {
        Self {
            bucket: cfg.bucket.clone(),
            region: cfg.region.clone(),
            endpoint: cfg.endpoint.clone(),
            access_key: cfg.access_key.clone(),
            access_secret,
            key_prefix: cfg.key_prefix.clone(),
            storage_class: cfg.storage_class.clone(),
            upload_part_size: u64::try_from(cfg.upload_part_size).unwrap_or(0),
            upload_concurrency: usize::try_from(cfg.upload_concurrency).unwrap_or(0),
            force_path_style: cfg.force_path_style,
        }
    }
}

/// A bucket (and prefix) with its client, shared by the sessions that use it.
pub struct S3Volume {
    client: Client,
    /// Who the client is (endpoint, region, access key, addressing): volumes of one
    /// account can copy objects between them inside the store.
    account: String,
    bucket: String,
    /// Empty, or ends with `/`.
    prefix: String,
    part_size: usize,
    concurrency: usize,
    storage_class: Option<StorageClass>,
}

impl std::fmt::Debug for S3Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Volume")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl S3Volume {
    /// A client for `cfg` (no request is made: a bucket that does not answer fails the
    /// requests that need it).
    pub fn new(cfg: &S3Config) -> io::Result<Self> {
        if cfg.bucket.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "s3: no bucket configured",
            ));
        }
        let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .operation_attempt_timeout(Duration::from_secs(300))
            .build();
        let mut conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(if cfg.region.is_empty() {
                "us-east-1".to_string()
            } else {
                cfg.region.clone()
            }))
            .credentials_provider(Credentials::new(
                cfg.access_key.clone(),
                cfg.access_secret.clone(),
                None,
                None,
                "sftpgo",
            ))
            .force_path_style(cfg.force_path_style)
            .timeout_config(timeouts)
            // S3-compatible stores differ in the checksums they take; send and check
            // them only where the API requires them.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if !cfg.endpoint.is_empty() {
            conf = conf.endpoint_url(cfg.endpoint.clone());
        }
        let mut prefix = cfg.key_prefix.trim_start_matches('/').to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        let part_mib = if cfg.upload_part_size == 0 {
            5
        } else {
            cfg.upload_part_size.clamp(5, 5 * 1024)
        };
        Ok(Self {
            client: Client::from_conf(conf.build()),
            account: format!(
                "{}\n{}\n{}\n{}",
                cfg.endpoint, cfg.region, cfg.access_key, cfg.force_path_style
            ),
            bucket: cfg.bucket.clone(),
            prefix,
            part_size: (part_mib << 20) as usize,
            concurrency: match cfg.upload_concurrency {
                0 => 2,
                n => n.min(64),
            },
            storage_class: (!cfg.storage_class.is_empty())
                .then(|| StorageClass::from(cfg.storage_class.as_str())),
        })
    }

    /// The key of `path`. Keys are UTF-8: other names cannot be stored.
    fn key(&self, path: &VirtualPath) -> io::Result<String> {
        let rel = std::str::from_utf8(path.relative()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidFilename, "object names must be UTF-8")
        })?;
        Ok(format!("{}{rel}", self.prefix))
    }

    /// The prefix of the directory `path` (its marker's key).
    fn dir_key(&self, path: &VirtualPath) -> io::Result<String> {
        if path.is_root() {
            return Ok(self.prefix.clone());
        }
        Ok(format!("{}/", self.key(path)?))
    }

    /// An SDK failure as an `io::Error` naming the bucket and the key.
    fn error<E>(&self, op: &str, key: &str, err: SdkError<E>) -> io::Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = err.code().map(str::to_string);
        let status = err.raw_response().map(|r| r.status().as_u16());
        let detail = match (&code, err.message()) {
            (Some(code), Some(msg)) => format!("{code}: {msg}"),
            (Some(code), None) => code.clone(),
            _ => match &err {
                SdkError::TimeoutError(_) => "timed out".to_string(),
                SdkError::DispatchFailure(e) => format!("cannot reach the endpoint: {e:?}"),
                other => other.to_string(),
            },
        };
        let kind = match (code.as_deref(), status) {
            (Some("NoSuchKey" | "NotFound"), _) | (None, Some(404)) => io::ErrorKind::NotFound,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(
            kind,
            format!("s3 {op} of bucket {:?}, key {key:?}: {detail}", self.bucket),
        )
    }

    async fn head(&self, key: &str) -> io::Result<Option<FileStat>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(file_stat(
                out.content_length().unwrap_or(0).max(0) as u64,
                out.last_modified(),
            ))),
            Err(SdkError::ServiceError(e)) if e.err().is_not_found() => Ok(None),
            Err(e) => {
                let err = self.error("HEAD", key, e);
                match err.kind() {
                    io::ErrorKind::NotFound => Ok(None),
                    _ => Err(err),
                }
            }
        }
    }

    /// One page of the listing of `prefix` (with `/` as the delimiter when `delimited`).
    async fn list_page(
        &self,
        prefix: &str,
        delimited: bool,
        token: Option<String>,
        max: i32,
    ) -> io::Result<aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output> {
        let mut req = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .max_keys(max)
            .set_continuation_token(token);
        if delimited {
            req = req.delimiter("/");
        }
        req.send().await.map_err(|e| self.error("LIST", prefix, e))
    }

    /// Whether anything lives under `prefix` other than the key `except`.
    async fn has_under(&self, prefix: &str, except: Option<&str>) -> io::Result<bool> {
        let page = self.list_page(prefix, false, None, 2).await?;
        Ok(page
            .contents()
            .iter()
            .any(|o| o.key() != except && o.key().is_some()))
    }

    /// What `path` is: a file (its object), a directory (a marker or a prefix with
    /// objects under it), or nothing.
    async fn stat(&self, path: &VirtualPath) -> io::Result<FileStat> {
        if path.is_root() {
            return Ok(dir_stat(None));
        }
        let key = self.key(path)?;
        if let Some(st) = self.head(&key).await? {
            return Ok(st);
        }
        let dir = format!("{key}/");
        if self.has_under(&dir, None).await? {
            return Ok(dir_stat(None));
        }
        Err(io::ErrorKind::NotFound.into())
    }

    /// Fails unless `path`'s parent is a directory.
    async fn parent_is_dir(&self, path: &VirtualPath) -> io::Result<()> {
        match path.parent() {
            Some(parent) if !parent.is_root() => {
                if self.stat(&parent).await?.is_dir() {
                    Ok(())
                } else {
                    Err(io::Error::from(io::ErrorKind::NotADirectory))
                }
            }
            _ => Ok(()),
        }
    }

    async fn delete(&self, key: &str) -> io::Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.error("DELETE", key, e))
    }

    async fn put(&self, key: &str, body: Bytes) -> io::Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .set_storage_class(self.storage_class.clone())
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.error("PUT", key, e))
    }

    /// Copies `src` to the key `to` of this bucket inside the store (the data does not
    /// come through here): one CopyObject for a whole object up to 5 GiB, else a
    /// multipart copy by ranges. The source may be in another bucket of the same account.
    async fn copy(&self, src: &CopySource, to: &str) -> io::Result<()> {
        let source = format!("{}/{}", src.bucket, url_escape(&src.key));
        if src.start == 0 && src.len == src.size && src.size <= COPY_MAX {
            return self
                .client
                .copy_object()
                .bucket(&self.bucket)
                .key(to)
                .copy_source(source)
                .set_storage_class(self.storage_class.clone())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.error("COPY", &src.key, e));
        }
        let upload = self.create_multipart(to).await?;
        let mut parts = Vec::new();
        let (mut offset, end) = (src.start, src.start + src.len);
        let result: io::Result<()> = async {
            while offset < end {
                let last = (offset + COPY_PART).min(end) - 1;
                let n = parts.len() as i32 + 1;
                let out = self
                    .client
                    .upload_part_copy()
                    .bucket(&self.bucket)
                    .key(to)
                    .upload_id(&upload)
                    .part_number(n)
                    .copy_source(&source)
                    .copy_source_range(format!("bytes={offset}-{last}"))
                    .send()
                    .await
                    .map_err(|e| self.error("COPY PART", &src.key, e))?;
                let etag = out
                    .copy_part_result()
                    .and_then(|r| r.e_tag())
                    .map(str::to_string);
                parts.push(
                    CompletedPart::builder()
                        .set_e_tag(etag)
                        .part_number(n)
                        .build(),
                );
                offset = last + 1;
            }
            self.complete_multipart(to, &upload, parts).await
        }
        .await;
        if result.is_err() {
            self.abort_multipart(to, &upload).await;
        }
        result
    }

    async fn create_multipart(&self, key: &str) -> io::Result<String> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .set_storage_class(self.storage_class.clone())
            .send()
            .await
            .map_err(|e| self.error("CREATE MULTIPART", key, e))?;
        out.upload_id()
            .map(str::to_string)
            .ok_or_else(|| io::Error::other(format!("s3: no upload id for {key:?}")))
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload: &str,
        parts: Vec<CompletedPart>,
    ) -> io::Result<()> {
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.error("COMPLETE MULTIPART", key, e))
    }

    /// Aborts a multipart upload; a failure is logged (the daily sweep gets it later).
    async fn abort_multipart(&self, key: &str, upload: &str) {
        if let Err(e) = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload)
            .send()
            .await
        {
            let err = self.error("ABORT MULTIPART", key, e);
            tracing::warn!(sender = "s3", bucket = %self.bucket, key, error = %err, "cannot abort a multipart upload");
        }
    }

    /// The bucket's name (for logs).
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Bytes and files under the prefix (the quota scan): one flat listing, paged;
    /// directory markers are not files.
    pub async fn usage(&self) -> io::Result<(i64, i64)> {
        let (mut size, mut files) = (0i64, 0i64);
        let mut token = None;
        loop {
            let page = self.list_page(&self.prefix, false, token, PAGE).await?;
            for o in page.contents() {
                if o.key().is_some_and(|k| !k.ends_with('/')) {
                    size = size.saturating_add(o.size().unwrap_or(0).max(0));
                    files += 1;
                }
            }
            token = page.next_continuation_token().map(str::to_string);
            if page.is_truncated() != Some(true) || token.is_none() {
                return Ok((size, files));
            }
        }
    }

    /// Aborts the multipart uploads under the prefix started before `older_than` ago
    /// (those of a crashed or killed process: a live upload sends a part at least every
    /// few minutes and finishes or aborts its own). Returns how many went.
    pub async fn sweep_multipart_uploads(&self, older_than: Duration) -> io::Result<usize> {
        let cutoff = SystemTime::now()
            .checked_sub(older_than)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        let (mut key_marker, mut id_marker) = (None, None);
        let mut aborted = 0;
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(&self.prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| self.error("LIST MULTIPART", &self.prefix, e))?;
            for u in page.uploads() {
                let started = u.initiated().map_or(i64::MAX, |t| t.secs());
                if let (Some(key), Some(id)) = (u.key(), u.upload_id())
                    && started <= cutoff
                {
                    self.abort_multipart(key, id).await;
                    aborted += 1;
                }
            }
            if page.is_truncated() != Some(true) {
                return Ok(aborted);
            }
            key_marker = page.next_key_marker().map(str::to_string);
            id_marker = page.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() {
                return Ok(aborted);
            }
        }
    }
}

/// Percent-encodes a key for `x-amz-copy-source` (`/` kept).
fn url_escape(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn file_stat(size: u64, modified: Option<&aws_sdk_s3::primitives::DateTime>) -> FileStat {
    let mtime = modified.map_or(0, |t| t.secs());
    FileStat {
        size,
        uid: 0,
        gid: 0,
        mode: 0o100644,
        atime: mtime,
        mtime,
        nlink: 1,
        dev: 0,
        ino: 0,
    }
}

fn dir_stat(modified: Option<&aws_sdk_s3::primitives::DateTime>) -> FileStat {
    FileStat {
        mode: 0o040755,
        ..file_stat(0, modified)
    }
}

fn unsupported(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{what} is not supported on S3 storage"),
    )
}

/// A session's view of a bucket: its metadata requests in order (a STAT sent after a
/// MKDIR sees the directory), its transfers' I/O each in its own order.
pub struct S3Fs {
    vol: Arc<S3Volume>,
    order: Arc<Mutex<()>>,
}

impl S3Fs {
    /// Whether objects of this storage can be copied into `other` inside the store: both
    /// volumes use one account (the client of the target reads the source).
    pub fn copies_to(&self, other: &S3Fs) -> bool {
        self.vol.account == other.vol.account
    }

    pub fn new(vol: Arc<S3Volume>) -> Self {
        Self {
            vol,
            order: Arc::new(Mutex::new(())),
        }
    }
}

impl Filesystem for S3Fs {
    type File = S3File;

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_rename: false,
            symlinks: false,
            hard_links: false,
            random_writes: false,
            setstat: false,
            statvfs: false,
            staged_writes: true,
        }
    }

    fn host_path(&self, path: &VirtualPath) -> PathBuf {
        let key = String::from_utf8_lossy(path.relative());
        PathBuf::from(format!("s3://{}/{}{key}", self.vol.bucket, self.vol.prefix))
    }

    async fn stat(&self, path: &VirtualPath) -> io::Result<FileStat> {
        let _order = self.order.lock().await;
        self.vol.stat(path).await
    }

    async fn lstat(&self, path: &VirtualPath) -> io::Result<FileStat> {
        self.stat(path).await
    }

    async fn read_dir(&self, path: &VirtualPath) -> io::Result<Vec<DirEntry>> {
        let _order = self.order.lock().await;
        let vol = &self.vol;
        let prefix = vol.dir_key(path)?;
        let mut entries = Vec::new();
        let mut token = None;
        let mut seen_any = path.is_root();
        loop {
            let page = vol.list_page(&prefix, true, token.take(), PAGE).await?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                seen_any = true;
                let name = &key[prefix.len().min(key.len())..];
                if name.is_empty() {
                    continue; // the directory's own marker
                }
                let size = o.size().unwrap_or(0).max(0) as u64;
                entries.push(DirEntry {
                    name: name.as_bytes().to_vec(),
                    stat: file_stat(size, o.last_modified()),
                });
            }
            for p in page.common_prefixes() {
                let Some(sub) = p.prefix() else { continue };
                seen_any = true;
                let name = sub[prefix.len().min(sub.len())..].trim_end_matches('/');
                if !name.is_empty() {
                    entries.push(DirEntry {
                        name: name.as_bytes().to_vec(),
                        stat: dir_stat(None),
                    });
                }
            }
            token = page.next_continuation_token().map(str::to_string);
            if page.is_truncated() != Some(true) || token.is_none() {
                break;
            }
        }
        if !seen_any {
            // Nothing under it: a file of that name, or nothing at all.
            return Err(match vol.head(&vol.key(path)?).await? {
                Some(_) => io::ErrorKind::NotADirectory.into(),
                None => io::ErrorKind::NotFound.into(),
            });
        }
        Ok(entries)
    }

    async fn read_link(&self, _: &VirtualPath) -> io::Result<Vec<u8>> {
        Err(unsupported("reading a link"))
    }

    async fn statvfs(&self, _: &VirtualPath) -> io::Result<StatVfs> {
        Err(unsupported("statvfs"))
    }

    async fn mkdir(&self, path: &VirtualPath, _: u32, _: Option<(u32, u32)>) -> io::Result<()> {
        let _order = self.order.lock().await;
        let vol = &self.vol;
        if path.is_root() {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        match vol.stat(path).await {
            Ok(_) => return Err(io::ErrorKind::AlreadyExists.into()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        vol.parent_is_dir(path).await?;
        vol.put(&vol.dir_key(path)?, Bytes::new()).await
    }

    async fn rmdir(&self, path: &VirtualPath) -> io::Result<()> {
        let _order = self.order.lock().await;
        let vol = &self.vol;
        let dir = vol.dir_key(path)?;
        let page = vol.list_page(&dir, false, None, 2).await?;
        let keys: Vec<&str> = page.contents().iter().filter_map(|o| o.key()).collect();
        if keys.iter().any(|k| *k != dir) {
            return Err(io::ErrorKind::DirectoryNotEmpty.into());
        }
        if keys.is_empty() {
            return Err(match vol.head(&vol.key(path)?).await? {
                Some(_) => io::ErrorKind::NotADirectory.into(),
                None => io::ErrorKind::NotFound.into(),
            });
        }
        vol.delete(&dir).await
    }

    async fn remove_file(&self, path: &VirtualPath) -> io::Result<Option<FileStat>> {
        let _order = self.order.lock().await;
        let vol = &self.vol;
        let key = vol.key(path)?;
        let Some(st) = vol.head(&key).await? else {
            return Err(match vol.has_under(&format!("{key}/"), None).await? {
                true => io::ErrorKind::IsADirectory.into(),
                false => io::ErrorKind::NotFound.into(),
            });
        };
        vol.delete(&key).await?;
        Ok(Some(st))
    }

    async fn rename(
        &self,
        from: &VirtualPath,
        to: &VirtualPath,
        replace: bool,
    ) -> io::Result<Renamed> {
        let _order = self.order.lock().await;
        let vol = &self.vol;
        let (src, dst) = (vol.key(from)?, vol.key(to)?);
        let source = vol.stat(from).await?;
        let target = match vol.stat(to).await {
            Ok(st) => Some(st),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if target.is_some() && !replace {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        vol.parent_is_dir(to).await?;
        if source.is_dir() {
            // Only an empty directory moves (its marker): renaming a tree would copy
            // every object under it, one by one, and could stop half done.
            let dir = vol.dir_key(from)?;
            if vol.has_under(&dir, Some(&dir)).await? {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "renaming a non-empty directory is not supported on S3 storage",
                ));
            }
            if target.is_some() {
                return Err(io::ErrorKind::AlreadyExists.into());
            }
            vol.put(&vol.dir_key(to)?, Bytes::new()).await?;
            vol.delete(&dir).await?;
            return Ok(Renamed::default());
        }
        if target.is_some_and(|t| t.is_dir()) {
            return Err(io::ErrorKind::IsADirectory.into());
        }
        let whole = CopySource {
            bucket: vol.bucket.clone(),
            key: src.clone(),
            start: 0,
            len: source.size,
            size: source.size,
        };
        vol.copy(&whole, &dst).await?;
        vol.delete(&src).await?;
        Ok(Renamed {
            source: Some(source),
            replaced: target,
        })
    }

    async fn symlink(&self, _: &[u8], _: &VirtualPath) -> io::Result<()> {
        Err(unsupported("a symlink"))
    }

    async fn hard_link(&self, _: &VirtualPath, _: &VirtualPath) -> io::Result<()> {
        Err(unsupported("a hard link"))
    }

    async fn set_attrs(&self, path: &VirtualPath, attrs: SetAttrs) -> io::Result<()> {
        if attrs.size.is_some() {
            return Err(unsupported("changing a file's size"));
        }
        // Modes, times and owners are not stored: accepted and ignored (as SFTPGo's
        // S3 backend), once the path is known to exist.
        let _order = self.order.lock().await;
        self.vol.stat(path).await.map(|_| ())
    }

    async fn open_read(&self, path: &VirtualPath) -> io::Result<(S3File, u64)> {
        let _order = self.order.lock().await;
        let key = self.vol.key(path)?;
        let Some(st) = self.vol.head(&key).await? else {
            return Err(match self.vol.has_under(&format!("{key}/"), None).await? {
                true => io::ErrorKind::IsADirectory.into(),
                false => io::ErrorKind::NotFound.into(),
            });
        };
        let file = S3File::Download(Download {
            vol: self.vol.clone(),
            key,
            size: st.size,
            mtime: st.mtime,
            stream: Mutex::new(None),
        });
        Ok((file, st.size))
    }

    async fn open_write<E, A>(
        &self,
        path: &VirtualPath,
        req: WriteRequest,
        admit: A,
    ) -> io::Result<Result<OpenedWrite<S3File>, E>>
    where
        E: Send + 'static,
        A: Fn(UploadProbe) -> Result<(), E> + Send + 'static,
    {
        if req.flags.append {
            return Err(unsupported("appending"));
        }
        let _order = self.order.lock().await;
        let vol = &self.vol;
        let key = vol.key(path)?;
        if path.is_root() {
            return Err(io::ErrorKind::IsADirectory.into());
        }
        let existing = vol.head(&key).await?;
        if existing.is_none() && vol.has_under(&format!("{key}/"), None).await? {
            return Err(io::ErrorKind::IsADirectory.into());
        }
        vol.parent_is_dir(path).await?;
        if existing.is_none() && !req.flags.create {
            return Err(io::ErrorKind::NotFound.into());
        }
        if let Err(e) = admit(UploadProbe { resolved: existing }) {
            return Ok(Err(e));
        }
        if req.flags.exclusive && existing.is_some() {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let upload = Upload {
            vol: vol.clone(),
            key,
            state: Mutex::new(UploadState {
                next: 0,
                buf: Vec::new(),
                permit: None,
                multipart: None,
                copied: None,
                failed: None,
            }),
            permits: Arc::new(Semaphore::new(vol.concurrency)),
            spare: Arc::new(SparePool {
                part_size: vol.part_size,
                max: vol.concurrency,
                bufs: std::sync::Mutex::new(Vec::new()),
            }),
            done: std::sync::atomic::AtomicBool::new(false),
        };
        Ok(Ok(OpenedWrite {
            file: S3File::Upload(upload),
            existing,
            resolved: existing,
            // The object appears at finish only, whatever the upload mode.
            atomic: true,
            size: 0,
        }))
    }
}

/// An open object: being downloaded or uploaded.
pub enum S3File {
    Download(Download),
    Upload(Upload),
}

pub struct Download {
    vol: Arc<S3Volume>,
    key: String,
    size: u64,
    mtime: i64,
    /// The GET being read: where its next byte is, its body, a chunk's unread rest.
    stream: Mutex<Option<(u64, ByteStream, Bytes)>>,
}

pub struct Upload {
    vol: Arc<S3Volume>,
    key: String,
    state: Mutex<UploadState>,
    /// Part buffers: `upload_concurrency` of them, each filled here and then uploaded
    /// (as SFTPGo's uploader: memory per upload is at most part size x concurrency, and
    /// up to `concurrency` parts upload at once while the client waits for a buffer).
    permits: Arc<Semaphore>,
    /// Part buffers whose upload ended, for the next parts.
    spare: Arc<SparePool>,
    /// Finished (published or aborted).
    done: std::sync::atomic::AtomicBool,
}

struct UploadState {
    /// The offset the next write must start at (writes are sequential).
    next: u64,
    /// Data not sent yet (less than a part). A `Vec` grown by hand, never past a part:
    /// each part owns an allocation of its own size, so memory per upload stays within
    /// `concurrency` parts (a `BytesMut` doubles to 8 MiB for a 5 MiB part, and a
    /// part split from it keeps the whole allocation alive). The first part grows by
    /// doubling (most files are small); later parts reuse the buffers of parts already
    /// sent ([`SparePool`]).
    buf: Vec<u8>,
    /// The permit `buf` holds once it has data; it goes with the part to its upload.
    permit: Option<OwnedSemaphorePermit>,
    multipart: Option<Multipart>,
    /// A server-side copy making the whole object, done when the upload is published
    /// (then nothing is written: an upload is either copied or written).
    copied: Option<CopySource>,
    /// The first failure of a part upload.
    failed: Option<String>,
}

/// The part buffers of one upload whose UploadPart ended, reused by its next parts: a
/// large upload allocates its `concurrency` buffers once instead of one per part (no
/// 5 MiB malloc, page faults and free per part; glibc raises its mmap threshold to the
/// first such block freed, so later ones would come from, and fragment, its heap).
struct SparePool {
    part_size: usize,
    max: usize,
    bufs: std::sync::Mutex<Vec<Vec<u8>>>,
}

impl SparePool {
    /// An empty buffer of a part's capacity.
    fn take(&self) -> Vec<u8> {
        let spare = self.bufs.lock().unwrap_or_else(|e| e.into_inner()).pop();
        spare.unwrap_or_else(|| Vec::with_capacity(self.part_size))
    }

    /// Keeps the buffer of a sent part, if nothing else holds it any more (the HTTP
    /// client may still, briefly: then it is freed when that ends).
    fn give(&self, part: Bytes) {
        let Ok(mut buf) = part.try_into_mut() else {
            return;
        };
        buf.clear();
        let buf = Vec::from(buf);
        let mut bufs = self.bufs.lock().unwrap_or_else(|e| e.into_inner());
        if buf.capacity() == self.part_size && bufs.len() < self.max {
            bufs.push(buf);
        }
    }
}

/// A byte range of an object, to copy inside the store.
struct CopySource {
    bucket: String,
    key: String,
    start: u64,
    len: u64,
    /// The object's size.
    size: u64,
}

struct Multipart {
    id: String,
    /// Parts sent or being sent, in order.
    parts: Vec<tokio::task::JoinHandle<io::Result<CompletedPart>>>,
}

impl Download {
    /// Starts a GET of the object from `offset` to its end.
    async fn open_stream(&self, offset: u64) -> io::Result<ByteStream> {
        let out = self
            .vol
            .client
            .get_object()
            .bucket(&self.vol.bucket)
            .key(&self.key)
            .range(format!("bytes={offset}-"))
            .send()
            .await
            .map_err(|e| self.vol.error("GET", &self.key, e))?;
        Ok(out.body)
    }

    async fn read(&self, buf: &mut BytesMut, offset: u64, len: usize) -> io::Result<usize> {
        if offset >= self.size || len == 0 {
            return Ok(0);
        }
        let want = len.min((self.size - offset) as usize);
        let mut stream = self.stream.lock().await;
        // Another place than where the stream is: a new GET (the old one is dropped).
        if stream.as_ref().is_none_or(|(pos, _, _)| *pos != offset) {
            *stream = Some((offset, self.open_stream(offset).await?, Bytes::new()));
        }
        let Some((pos, body, rest)) = stream.as_mut() else {
            unreachable!("set above")
        };
        let mut done = 0;
        while done < want {
            if rest.is_empty() {
                match body.next().await {
                    Some(Ok(chunk)) => *rest = chunk,
                    Some(Err(e)) => {
                        let err = io::Error::other(format!(
                            "s3 GET of bucket {:?}, key {:?}: {e}",
                            self.vol.bucket, self.key
                        ));
                        *stream = None;
                        return Err(err);
                    }
                    None => break,
                }
            }
            let take = rest.len().min(want - done);
            buf.extend_from_slice(&rest.split_to(take));
            done += take;
        }
        *pos += done as u64;
        Ok(done)
    }
}

impl Upload {
    /// Appends `data` (at `offset`, which must be where the last write ended) and sends
    /// the parts it completes.
    async fn write(&self, offset: u64, data: &[Bytes]) -> io::Result<()> {
        let mut st = self.state.lock().await;
        let res = self.write_locked(&mut st, offset, data).await;
        if let Err(e) = &res {
            // Later writes fail too (recorded before the next write takes the lock).
            st.failed.get_or_insert_with(|| e.to_string());
        }
        res
    }

    async fn write_locked(
        &self,
        st: &mut UploadState,
        offset: u64,
        data: &[Bytes],
    ) -> io::Result<()> {
        if let Some(cause) = &st.failed {
            return Err(io::Error::other(cause.clone()));
        }
        if st.copied.is_some() {
            return Err(unsupported(
                "writing into an S3 upload made by a server-side copy",
            ));
        }
        if offset != st.next {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "S3 storage takes sequential writes only: a write at {offset}, the file has {}",
                    st.next
                ),
            ));
        }
        let part_size = self.vol.part_size;
        for d in data {
            st.next += d.len() as u64;
            let mut d = &d[..];
            while !d.is_empty() {
                let take = d.len().min(part_size - st.buf.len());
                if st.permit.is_none() {
                    // A new part: wait for one of the upload's buffers.
                    st.permit = Some(self.buffer_permit().await?);
                }
                if st.buf.capacity() == 0 && st.multipart.is_some() {
                    // Past the first part: a whole part's buffer, reused if one is free.
                    st.buf = self.spare.take();
                }
                if st.buf.capacity() - st.buf.len() < take {
                    // Doubling for small files, capped at a part.
                    let want = (st.buf.capacity() * 2)
                        .max(st.buf.len() + take)
                        .min(part_size);
                    st.buf.reserve_exact(want - st.buf.len());
                }
                st.buf.extend_from_slice(&d[..take]);
                d = &d[take..];
                if st.buf.len() == part_size {
                    let part = Bytes::from(std::mem::take(&mut st.buf));
                    self.send_part(st, part).await?;
                }
            }
        }
        Ok(())
    }

    async fn buffer_permit(&self) -> io::Result<OwnedSemaphorePermit> {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| io::Error::other("upload closed"))
    }

    /// Sends `part` (the buffer that holds `st.permit`) as the next part.
    async fn send_part(&self, st: &mut UploadState, part: Bytes) -> io::Result<()> {
        if st.multipart.is_none() {
            let id = self.vol.create_multipart(&self.key).await?;
            st.multipart = Some(Multipart {
                id,
                parts: Vec::new(),
            });
        }
        let permit = match st.permit.take() {
            Some(p) => p,
            None => self.buffer_permit().await?,
        };
        let Some(mp) = st.multipart.as_mut() else {
            unreachable!("created above")
        };
        let n = mp.parts.len() as i32 + 1;
        let (vol, key, id) = (self.vol.clone(), self.key.clone(), mp.id.clone());
        let spare = self.spare.clone();
        mp.parts.push(tokio::spawn(async move {
            let _permit = permit;
            let sent = vol
                .client
                .upload_part()
                .bucket(&vol.bucket)
                .key(&key)
                .upload_id(id)
                .part_number(n)
                .body(ByteStream::from(part.clone()))
                .send()
                .await;
            spare.give(part);
            let out = sent.map_err(|e| vol.error("UPLOAD PART", &key, e))?;
            Ok(CompletedPart::builder()
                .set_e_tag(out.e_tag().map(str::to_string))
                .part_number(n)
                .build())
        }));
        Ok(())
    }

    /// Takes `len` bytes of `src` from `from` as the upload's bytes from `to`, to be
    /// copied inside the store when the upload is published (so the object still appears
    /// at CLOSE only). The upload must be made of one contiguous range of one object
    /// (what a rename or a whole-file `copy-data` sends), in an account both volumes
    /// share. Returns the bytes taken (fewer where the source ends).
    async fn copy_from(&self, src: &Download, from: u64, to: u64, len: u64) -> io::Result<u64> {
        if self.vol.account != src.vol.account {
            return Err(unsupported(
                "a server-side copy between buckets of different S3 accounts",
            ));
        }
        let mut st = self.state.lock().await;
        if let Some(cause) = &st.failed {
            return Err(io::Error::other(cause.clone()));
        }
        let n = len.min(src.size.saturating_sub(from));
        let contiguous = to == st.next
            && match &st.copied {
                None => st.next == 0,
                Some(c) => {
                    c.key == src.key && c.bucket == src.vol.bucket && c.start + c.len == from
                }
            };
        if !contiguous {
            return Err(unsupported(
                "a server-side copy into S3 other than of one range into a new object",
            ));
        }
        if n == 0 {
            return Ok(0);
        }
        match &mut st.copied {
            Some(c) => c.len += n,
            None => {
                st.copied = Some(CopySource {
                    bucket: src.vol.bucket.clone(),
                    key: src.key.clone(),
                    start: from,
                    len: n,
                    size: src.size,
                })
            }
        }
        st.next += n;
        Ok(n)
    }

    /// Publishes the object (`publish`) or drops what was sent. Returns its size.
    async fn finish(&self, publish: bool) -> io::Result<(i64, bool)> {
        if self.done.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return Ok((0, false));
        }
        let mut st = self.state.lock().await;
        let size = st.next as i64;
        let publish = publish && st.failed.is_none();
        if let Some(copy) = st.copied.take() {
            if !publish {
                return Ok((size, false));
            }
            self.vol.copy(&copy, &self.key).await?;
            return Ok((size, true));
        }
        let Some(mut mp) = st.multipart.take() else {
            if !publish {
                return Ok((size, false));
            }
            let body = Bytes::from(std::mem::take(&mut st.buf));
            self.vol.put(&self.key, body).await?;
            return Ok((size, true));
        };
        let result: io::Result<()> = async {
            if !publish {
                return Err(io::Error::other("not published"));
            }
            if !st.buf.is_empty() {
                let last = Bytes::from(std::mem::take(&mut st.buf));
                let handles = std::mem::take(&mut mp.parts);
                st.multipart = Some(Multipart {
                    id: mp.id.clone(),
                    parts: handles,
                });
                self.send_part(&mut st, last).await?;
                mp = st.multipart.take().expect("put back above");
            }
            let mut parts = Vec::with_capacity(mp.parts.len());
            for h in mp.parts.drain(..) {
                parts.push(h.await.map_err(|e| io::Error::other(e.to_string()))??);
            }
            self.vol.complete_multipart(&self.key, &mp.id, parts).await
        }
        .await;
        match result {
            Ok(()) => Ok((size, true)),
            Err(e) => {
                for h in mp.parts.drain(..) {
                    h.abort();
                }
                self.vol.abort_multipart(&self.key, &mp.id).await;
                if publish { Err(e) } else { Ok((size, false)) }
            }
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // Dropped unfinished (the session was torn down): abort what was sent.
        if self.done.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let st = self.state.get_mut();
        if let Some(mp) = st.multipart.take() {
            for h in &mp.parts {
                h.abort();
            }
            let (vol, key) = (self.vol.clone(), self.key.clone());
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { vol.abort_multipart(&key, &mp.id).await });
            }
        }
    }
}

impl FsFile for S3File {
    async fn read_at(
        &self,
        mut buf: BytesMut,
        offset: u64,
        len: usize,
        _end: u64,
    ) -> (BytesMut, io::Result<usize>) {
        let res = match self {
            S3File::Download(d) => d.read(&mut buf, offset, len).await,
            S3File::Upload(_) => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "an S3 upload cannot be read",
            )),
        };
        (buf, res)
    }

    async fn write_at<G: IoGuard>(
        &self,
        offset: u64,
        data: Vec<Bytes>,
        guard: G,
    ) -> io::Result<()> {
        let S3File::Upload(u) = self else {
            return Err(io::ErrorKind::PermissionDenied.into());
        };
        // The guard's rule around a write whose I/O is async: checked first, the outcome
        // recorded after (writes are sequential, so in order).
        guard.run(|| Ok(()))?;
        u.write(offset, &data).await
    }

    async fn barrier(&self) {
        if let S3File::Upload(u) = self {
            drop(u.state.lock().await);
        }
    }

    async fn copy_from<G: IoGuard>(
        &self,
        src: &Self,
        from: u64,
        to: u64,
        len: u64,
        guard: G,
    ) -> io::Result<u64> {
        let (S3File::Upload(dst), S3File::Download(src)) = (self, src) else {
            return Err(io::ErrorKind::PermissionDenied.into());
        };
        // The guard's rule as in `write_at`: checked first, the range taken after.
        guard.run(|| Ok(()))?;
        dst.copy_from(src, from, to, len).await
    }

    async fn stat(&self) -> io::Result<FileStat> {
        match self {
            S3File::Download(d) => Ok(FileStat {
                mtime: d.mtime,
                atime: d.mtime,
                ..file_stat(d.size, None)
            }),
            S3File::Upload(u) => Ok(file_stat(u.state.lock().await.next, None)),
        }
    }

    async fn sync(&self) -> io::Result<()> {
        Ok(()) // durable when finished
    }

    async fn set_attrs(&self, attrs: SetAttrs) -> io::Result<()> {
        match attrs.size {
            Some(_) => Err(unsupported("changing a file's size")),
            None => Ok(()),
        }
    }

    async fn finish(&self, publish: bool, _want_size: bool) -> io::Result<(i64, bool)> {
        match self {
            S3File::Download(d) => {
                *d.stream.lock().await = None;
                Ok((d.size as i64, true))
            }
            S3File::Upload(u) => u.finish(publish).await,
        }
    }
}

/// A throwaway single-node Garage (a real S3-compatible store) for tests, started with
/// `scripts/start-garage.sh` and stopped when dropped.
#[cfg(any(test, feature = "conformance"))]
pub mod garage {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use super::S3Config;

    pub struct Garage {
        dir: tempfile::TempDir,
        script: PathBuf,
        pub endpoint: String,
        pub region: String,
        pub access_key: String,
        pub secret: String,
        pub bucket: String,
    }

    impl Garage {
        /// Starts one, or says why not: `None` when the `garage` binary is missing
        /// (a failure when `SFTPGO_REQUIRE_S3=1`, as in CI).
        pub fn start() -> Option<Garage> {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
            let script = root.join("scripts/start-garage.sh");
            let home_bin = std::env::var_os("HOME")
                .map(|h| Path::new(&h).join(".cargo/bin/garage"))
                .filter(|p| p.exists());
            let on_path = Command::new("sh")
                .args(["-c", "command -v garage"])
                .output()
                .is_ok_and(|o| o.status.success());
            if home_bin.is_none() && !on_path {
                assert!(
                    std::env::var("SFTPGO_REQUIRE_S3").as_deref() != Ok("1"),
                    "garage is not installed (cargo install garage --locked) and SFTPGO_REQUIRE_S3=1"
                );
                eprintln!("skipped: garage is not installed (cargo install garage --locked)");
                return None;
            }
            let ports: Vec<u16> = (0..3)
                .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
                .collect::<Vec<_>>()
                .iter()
                .map(|l| l.local_addr().unwrap().port())
                .collect();
            let dir = tempfile::tempdir().unwrap();
            let mut cmd = Command::new("bash");
            cmd.arg(&script).arg(dir.path());
            for p in &ports {
                cmd.arg(p.to_string());
            }
            if let Some(bin) = home_bin {
                cmd.env("GARAGE_BIN", bin);
            }
            let out = cmd.output().expect("run start-garage.sh");
            assert!(
                out.status.success(),
                "start-garage.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let vars: HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.strip_prefix("export "))
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
                .collect();
            let var = |k: &str| vars.get(k).cloned().unwrap_or_default();
            Some(Garage {
                endpoint: var("GARAGE_ENDPOINT"),
                region: var("GARAGE_REGION"),
                access_key: var("GARAGE_ACCESS_KEY_ID"),
                secret: var("GARAGE_SECRET_ACCESS_KEY"),
                bucket: var("GARAGE_BUCKET"),
                dir,
                script,
            })
        }

        /// Settings for the bucket under `prefix`.
        pub fn config(&self, prefix: &str) -> S3Config {
            S3Config {
                bucket: self.bucket.clone(),
                region: self.region.clone(),
                endpoint: self.endpoint.clone(),
                access_key: self.access_key.clone(),
                access_secret: self.secret.clone(),
                key_prefix: prefix.to_string(),
                force_path_style: true,
                ..Default::default()
            }
        }
    }

    impl Drop for Garage {
        fn drop(&mut self) {
            let _ = Command::new("bash")
                .arg(&self.script)
                .arg("--stop")
                .arg(self.dir.path())
                .output();
        }
    }
}

#[cfg(test)]
mod tests;
