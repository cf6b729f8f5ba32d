//! File checksums for the protocols that ask the server to hash (the SSH commands
//! `md5sum` & co., SFTP's `check-file-*` extensions): streamed from the user's storage, a
//! bounded buffer at a time, hashed on the blocking pool, at the user's download
//! bandwidth. Logged as a command; not a download (no transfer, no download action).

use bytes::BytesMut;
use digest::DynDigest;
use sftpgo_provider::Permission;
use sftpgo_vfs::VirtualPath;

use super::{FsError, UserFs};
use crate::storage::{Filesystem, FsFile};
use crate::throttle::Throttle;

/// The hash algorithms the server computes (names as in draft-ietf-secsh-filexfer-extensions
/// and as the coreutils commands `<name>sum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlgorithm {
    pub const ALL: [HashAlgorithm; 6] = [
        HashAlgorithm::Md5,
        HashAlgorithm::Sha1,
        HashAlgorithm::Sha224,
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha384,
        HashAlgorithm::Sha512,
    ];

    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Md5 => "md5",
            HashAlgorithm::Sha1 => "sha1",
            HashAlgorithm::Sha224 => "sha224",
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha384 => "sha384",
            HashAlgorithm::Sha512 => "sha512",
        }
    }

    pub fn from_name(name: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name().as_bytes() == name)
    }

    /// A fresh hasher.
    pub fn hasher(self) -> Hasher {
        let inner: Box<dyn DynDigest + Send> = match self {
            HashAlgorithm::Md5 => Box::new(md5::Md5::default()),
            HashAlgorithm::Sha1 => Box::new(sha1::Sha1::default()),
            HashAlgorithm::Sha224 => Box::new(sha2::Sha224::default()),
            HashAlgorithm::Sha256 => Box::new(sha2::Sha256::default()),
            HashAlgorithm::Sha384 => Box::new(sha2::Sha384::default()),
            HashAlgorithm::Sha512 => Box::new(sha2::Sha512::default()),
        };
        Hasher(inner)
    }
}

/// A running hash (for data that does not come from a file: an SSH command's stdin).
pub struct Hasher(Box<dyn DynDigest + Send>);

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish(self) -> Vec<u8> {
        self.0.finalize().into_vec()
    }

    /// The digest so far; the hasher starts again.
    fn finish_reset(&mut self) -> Vec<u8> {
        self.0.finalize_reset().into_vec()
    }
}

/// Which bytes of a file to hash, and in how many pieces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashRange {
    pub offset: u64,
    /// 0 = to the end of the file.
    pub length: u64,
    /// 0 = one hash for the whole range; otherwise one hash per block of this size (the
    /// last may be shorter).
    pub block_size: u64,
}

/// Bytes read per blocking job (then the throttle and the other sessions get a turn).
const CHUNK: usize = 256 * 1024;
/// Hashes one request may ask for (check-file with a small block size over a big file):
/// at most 256 KiB of SHA-512 hashes in one reply.
pub const MAX_BLOCKS: u64 = 4096;

impl UserFs {
    /// Whether the user may hash data they send (an SSH hash command without a file):
    /// the list permission, as SFTPGo 2.x.
    pub fn may_hash_input(&self) -> Result<(), FsError> {
        self.check(Permission::List, "checksum", &VirtualPath::root())
    }

    /// The hash of `path`'s bytes in `range` (one per block). Needs the download
    /// permission; the file is read in [`CHUNK`]s on the session's I/O thread, throttled
    /// like a download.
    pub async fn checksum(
        &self,
        path: &VirtualPath,
        algorithm: HashAlgorithm,
        range: HashRange,
    ) -> Result<Vec<Vec<u8>>, FsError> {
        self.check(Permission::Download, "checksum", path)?;
        let slot = self.open_file_slot("checksum", path)?;
        let (storage, inner) = self.storage(path);
        let (file, size) = self.done("checksum", path, storage.open_read(&inner).await)?;
        let end = match range.length {
            0 => size,
            n => range.offset.saturating_add(n).min(size),
        };
        if range.offset > end {
            return Err(FsError::Failure(format!(
                "offset {} is past the end of the file ({size} bytes)",
                range.offset
            )));
        }
        let block = match range.block_size {
            0 => (end - range.offset).max(1),
            b => b,
        };
        if (end - range.offset).div_ceil(block) > MAX_BLOCKS {
            return Err(FsError::Failure(format!(
                "block size {block} gives more than {MAX_BLOCKS} hashes"
            )));
        }
        let throttle = Throttle::new(self.state.user.download_bandwidth);
        let mut job = HashJob {
            hasher: algorithm.hasher(),
            pos: range.offset,
            end,
            block,
            block_left: block.min(end - range.offset),
            hashes: Vec::new(),
        };
        if job.pos == end {
            // An empty range still has a hash (of nothing).
            job.hashes.push(job.hasher.finish_reset());
        }
        let mut buf = BytesMut::with_capacity(CHUNK.min((end - job.pos) as usize));
        while job.pos < job.end {
            let want = (job.end - job.pos).min(CHUNK as u64) as usize;
            buf.clear();
            let (data, res) = file.read_at(buf, job.pos, want, size).await;
            let n = self.done("checksum", path, res)?;
            if n == 0 {
                // The file shrank while being hashed: hash what there was.
                job.end = job.pos;
                job.hashes.push(job.hasher.finish_reset());
                break;
            }
            (job, buf) = tokio::task::spawn_blocking(move || {
                job.absorb(&data[..n]);
                (job, data)
            })
            .await
            .map_err(|e| FsError::Failure(format!("checksum: {e}")))?;
            if let Some(t) = &throttle {
                t.consume(n).await;
            }
            // A long hash is activity: the idle timeout does not end it.
            self.state.touch();
        }
        drop(file);
        drop(slot);
        self.log_command(&format!("Checksum-{}", algorithm.name()), path, None);
        Ok(job.hashes)
    }
}

/// The state of a checksum between blocking jobs.
struct HashJob {
    hasher: Hasher,
    pos: u64,
    end: u64,
    block: u64,
    /// Bytes of the current block still to hash.
    block_left: u64,
    hashes: Vec<Vec<u8>>,
}

impl HashJob {
    /// Hashes `data`, the bytes at `pos`.
    fn absorb(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = (self.block_left as usize).min(data.len());
            self.hasher.update(&data[..take]);
            data = &data[take..];
            self.block_left -= take as u64;
            self.pos += take as u64;
            if self.block_left == 0 || self.pos == self.end {
                self.hashes.push(self.hasher.finish_reset());
                self.block_left = self.block.min(self.end - self.pos);
            }
        }
    }
}
