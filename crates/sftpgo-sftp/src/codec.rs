//! SFTP v3 wire format (draft-ietf-secsh-filexfer-02) plus the OpenSSH extensions we serve.
//!
//! Pure and allocation-aware: decoding slices paths, handles and data out of the received
//! packet (`Bytes`, no copies); encoding appends whole packets to a caller's `BytesMut`.
//! Strings are bytes and are never decoded as UTF-8. Decoding never panics on any input:
//! malformed packets are a [`DecodeError`] (or a [`FrameError`] from the [`PacketReader`]).
//!
//! Server side: [`PacketReader`] frames the channel stream, [`decode_request`] parses a
//! packet, the `encode_*` functions, [`NameWriter`] and [`begin_data`]/[`DataSlot`] write
//! replies, [`write_longname`] formats READDIR long names. Client side (the tests' SFTP
//! client): [`encode_request`] and [`decode_response`], plus [`StatVfsReply::decode`] and
//! [`LimitsReply::decode`] for extension replies.

use std::collections::VecDeque;

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub const SSH_FXP_INIT: u8 = 1;
pub const SSH_FXP_VERSION: u8 = 2;
pub const SSH_FXP_OPEN: u8 = 3;
pub const SSH_FXP_CLOSE: u8 = 4;
pub const SSH_FXP_READ: u8 = 5;
pub const SSH_FXP_WRITE: u8 = 6;
pub const SSH_FXP_LSTAT: u8 = 7;
pub const SSH_FXP_FSTAT: u8 = 8;
pub const SSH_FXP_SETSTAT: u8 = 9;
pub const SSH_FXP_FSETSTAT: u8 = 10;
pub const SSH_FXP_OPENDIR: u8 = 11;
pub const SSH_FXP_READDIR: u8 = 12;
pub const SSH_FXP_REMOVE: u8 = 13;
pub const SSH_FXP_MKDIR: u8 = 14;
pub const SSH_FXP_RMDIR: u8 = 15;
pub const SSH_FXP_REALPATH: u8 = 16;
pub const SSH_FXP_STAT: u8 = 17;
pub const SSH_FXP_RENAME: u8 = 18;
pub const SSH_FXP_READLINK: u8 = 19;
pub const SSH_FXP_SYMLINK: u8 = 20;
pub const SSH_FXP_STATUS: u8 = 101;
pub const SSH_FXP_HANDLE: u8 = 102;
pub const SSH_FXP_DATA: u8 = 103;
pub const SSH_FXP_NAME: u8 = 104;
pub const SSH_FXP_ATTRS: u8 = 105;
pub const SSH_FXP_EXTENDED: u8 = 200;
pub const SSH_FXP_EXTENDED_REPLY: u8 = 201;

pub const SSH_FX_OK: u32 = 0;
pub const SSH_FX_EOF: u32 = 1;
pub const SSH_FX_NO_SUCH_FILE: u32 = 2;
pub const SSH_FX_PERMISSION_DENIED: u32 = 3;
pub const SSH_FX_FAILURE: u32 = 4;
pub const SSH_FX_BAD_MESSAGE: u32 = 5;
pub const SSH_FX_NO_CONNECTION: u32 = 6;
pub const SSH_FX_CONNECTION_LOST: u32 = 7;
pub const SSH_FX_OP_UNSUPPORTED: u32 = 8;

pub const SSH_FXF_READ: u32 = 0x01;
pub const SSH_FXF_WRITE: u32 = 0x02;
pub const SSH_FXF_APPEND: u32 = 0x04;
pub const SSH_FXF_CREAT: u32 = 0x08;
pub const SSH_FXF_TRUNC: u32 = 0x10;
pub const SSH_FXF_EXCL: u32 = 0x20;

pub const ATTR_SIZE: u32 = 0x01;
pub const ATTR_UIDGID: u32 = 0x02;
pub const ATTR_PERMISSIONS: u32 = 0x04;
pub const ATTR_ACMODTIME: u32 = 0x08;
pub const ATTR_EXTENDED: u32 = 0x8000_0000;

/// Bytes before the payload of a DATA reply: length, type, id, data length.
pub const DATA_HEADER_LEN: usize = 13;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated packet")]
    Truncated,
    #[error("empty packet")]
    Empty,
    #[error("unknown packet type {ty}")]
    UnknownType { ty: u8, id: Option<u32> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("packet of {len} bytes exceeds the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("zero-length packet")]
    Empty,
}

/// File attributes; extended attributes are parsed and skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileAttrs {
    pub size: Option<u64>,
    pub uid_gid: Option<(u32, u32)>,
    pub permissions: Option<u32>,
    /// (atime, mtime), seconds since the epoch.
    pub times: Option<(u32, u32)>,
}

/// Splits the channel byte stream into SFTP packets without copying file data.
///
/// Received chunks are kept as they came (russh hands each channel message over as its own
/// `Bytes`). A packet inside one chunk is a slice of it; a WRITE spanning chunks (uploads:
/// 256 KiB requests arrive in 32-64 KiB channel messages) keeps its data as slices of the
/// chunks, written with one `pwritev`; any other packet spanning chunks is small and is
/// gathered into one buffer.
pub struct PacketReader {
    chunks: VecDeque<Bytes>,
    /// Bytes held in `chunks`.
    len: usize,
    max: usize,
}

/// One framed packet, from [`PacketReader::next_frame`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole packet body (type byte + payload), for [`decode_request`].
    Packet(Bytes),
    /// A WRITE whose data spans several received chunks; the data stays in them, in order.
    Write {
        id: u32,
        handle: Bytes,
        offset: u64,
        data: Vec<Bytes>,
    },
}

/// Chunks smaller than this are merged on arrival, which bounds the chunk count (and the
/// work per packet) however finely a client splits its channel data.
const SMALL_CHUNK: usize = 4096;
/// SSH_FXP_WRITE header after the length: type, id, handle length, offset, data length.
const WRITE_FIXED_HEADER: usize = 1 + 4 + 4 + 8 + 4;
/// Longest handle for the scatter path (the spec's limit; ours are 4 bytes). A WRITE with
/// a longer one is gathered and left to [`decode_request`].
const MAX_HANDLE_LEN: usize = 256;

impl PacketReader {
    /// `max` is the largest packet body accepted.
    pub fn new(max: usize) -> Self {
        Self {
            chunks: VecDeque::new(),
            len: 0,
            max,
        }
    }

    /// Bytes received and not yet framed.
    pub fn buffered(&self) -> usize {
        self.len
    }

    /// Appends a copy of `data`.
    pub fn push(&mut self, data: &[u8]) {
        self.push_bytes(Bytes::copy_from_slice(data));
    }

    /// Appends `data` without copying it (unless it is small and follows a small chunk).
    pub fn push_bytes(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.len += data.len();
        if data.len() < SMALL_CHUNK
            && let Some(last) = self.chunks.back_mut()
            && last.len() + data.len() <= SMALL_CHUNK
        {
            let mut merged = BytesMut::with_capacity(SMALL_CHUNK);
            merged.extend_from_slice(last);
            merged.extend_from_slice(&data);
            *last = merged.freeze();
            return;
        }
        self.chunks.push_back(data);
    }

    /// The next complete packet body (type byte + payload), if one has arrived, in one
    /// buffer.
    pub fn next_packet(&mut self) -> Result<Option<Bytes>, FrameError> {
        let Some(len) = self.complete_len()? else {
            return Ok(None);
        };
        self.skip(4);
        Ok(Some(self.take(len)))
    }

    /// The next complete packet, if one has arrived; a WRITE spanning chunks comes as
    /// [`Frame::Write`] with its data left in place.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let Some(len) = self.complete_len()? else {
            return Ok(None);
        };
        self.skip(4);
        let in_one_chunk = self.chunks.front().is_some_and(|c| c.len() >= len);
        if !in_one_chunk
            && len > SMALL_CHUNK
            && self.peek::<1>() == Some([SSH_FXP_WRITE])
            && let Some(frame) = self.take_write(len)
        {
            return Ok(Some(frame));
        }
        Ok(Some(Frame::Packet(self.take(len))))
    }

    /// The body length of the packet at the front, once all of it has arrived.
    fn complete_len(&mut self) -> Result<Option<usize>, FrameError> {
        let Some(header) = self.peek::<4>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(header) as usize;
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if len > self.max {
            return Err(FrameError::TooLong { len, max: self.max });
        }
        Ok((self.len >= 4 + len).then_some(len))
    }

    /// A WRITE of `len` bytes at the front, its data as slices of the chunks; `None` (and
    /// nothing consumed) when its header is not well formed.
    fn take_write(&mut self, len: usize) -> Option<Frame> {
        let mut head = [0u8; WRITE_FIXED_HEADER + MAX_HANDLE_LEN];
        let seen = self.copy_prefix(&mut head[..len.min(WRITE_FIXED_HEADER + MAX_HANDLE_LEN)]);
        let head = &head[..seen];
        let u32_at = |i: usize| Some(u32::from_be_bytes(head.get(i..i + 4)?.try_into().ok()?));
        let id = u32_at(1)?;
        let handle_len = u32_at(5)? as usize;
        if handle_len > MAX_HANDLE_LEN {
            return None;
        }
        let at = 9 + handle_len;
        let offset = u64::from_be_bytes(head.get(at..at + 8)?.try_into().ok()?);
        let data_len = u32_at(at + 8)? as usize;
        let header = at + 12;
        if header + data_len > len {
            return None;
        }
        self.skip(9);
        let handle = self.take(handle_len);
        self.skip(12);
        let mut data = Vec::with_capacity(8);
        let mut want = data_len;
        while want > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let n = want.min(front.len());
            data.push(front.split_to(n));
            self.consumed(n);
            want -= n;
        }
        self.skip(len - header - data_len);
        Some(Frame::Write {
            id,
            handle,
            offset,
            data,
        })
    }

    /// The first `N` bytes, if that many are held.
    fn peek<const N: usize>(&self) -> Option<[u8; N]> {
        let mut out = [0u8; N];
        (self.copy_prefix(&mut out) == N).then_some(out)
    }

    /// Copies the first bytes held into `out`; returns how many.
    fn copy_prefix(&self, out: &mut [u8]) -> usize {
        let mut n = 0;
        for c in &self.chunks {
            if n == out.len() {
                break;
            }
            let k = (out.len() - n).min(c.len());
            out[n..n + k].copy_from_slice(&c[..k]);
            n += k;
        }
        n
    }

    /// Drops the front chunk if it has been used up and counts `n` bytes consumed.
    fn consumed(&mut self, n: usize) {
        self.len -= n;
        if self.chunks.front().is_some_and(Bytes::is_empty) {
            self.chunks.pop_front();
        }
    }

    fn skip(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            let k = n.min(front.len());
            front.advance(k);
            self.consumed(k);
            n -= k;
        }
    }

    /// The next `n` bytes (the caller checked they are held): a slice of the front chunk
    /// when it holds them all, else gathered.
    fn take(&mut self, n: usize) -> Bytes {
        if let Some(front) = self.chunks.front_mut()
            && front.len() >= n
        {
            let out = front.split_to(n);
            self.consumed(n);
            return out;
        }
        let mut out = BytesMut::with_capacity(n);
        while out.len() < n {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let k = (n - out.len()).min(front.len());
            out.extend_from_slice(&front[..k]);
            front.advance(k);
            self.consumed(k);
        }
        out.freeze()
    }
}

/// The OpenSSH extensions we understand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extended {
    PosixRename {
        old: Bytes,
        new: Bytes,
    },
    Statvfs {
        path: Bytes,
    },
    Fstatvfs {
        handle: Bytes,
    },
    Hardlink {
        old: Bytes,
        new: Bytes,
    },
    Fsync {
        handle: Bytes,
    },
    Limits,
    ExpandPath {
        path: Bytes,
    },
    /// `check-file-name` / `check-file-handle` (draft-ietf-secsh-filexfer-extensions;
    /// paramiko sends the handle form as `check-file`): hashes of a byte range.
    CheckFile {
        /// `target` is a handle (else a path).
        by_handle: bool,
        target: Bytes,
        /// Comma-separated, in the client's order of preference.
        algorithms: Bytes,
        offset: u64,
        /// 0 = to the end of the file.
        length: u64,
        /// 0 = one hash for the range; otherwise at least 256.
        block_size: u32,
    },
    /// `copy-data` (OpenSSH 9's `sftp cp`): server-side copy between two open handles.
    CopyData {
        read_handle: Bytes,
        read_offset: u64,
        /// 0 = to the end of the file.
        length: u64,
        write_handle: Bytes,
        write_offset: u64,
    },
    Unknown {
        name: Bytes,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Init {
        version: u32,
    },
    Open {
        id: u32,
        path: Bytes,
        pflags: u32,
        attrs: FileAttrs,
    },
    Close {
        id: u32,
        handle: Bytes,
    },
    Read {
        id: u32,
        handle: Bytes,
        offset: u64,
        len: u32,
    },
    Write {
        id: u32,
        handle: Bytes,
        offset: u64,
        data: Bytes,
    },
    Lstat {
        id: u32,
        path: Bytes,
    },
    Fstat {
        id: u32,
        handle: Bytes,
    },
    Setstat {
        id: u32,
        path: Bytes,
        attrs: FileAttrs,
    },
    Fsetstat {
        id: u32,
        handle: Bytes,
        attrs: FileAttrs,
    },
    Opendir {
        id: u32,
        path: Bytes,
    },
    Readdir {
        id: u32,
        handle: Bytes,
    },
    Remove {
        id: u32,
        path: Bytes,
    },
    Mkdir {
        id: u32,
        path: Bytes,
        attrs: FileAttrs,
    },
    Rmdir {
        id: u32,
        path: Bytes,
    },
    Realpath {
        id: u32,
        path: Bytes,
    },
    Stat {
        id: u32,
        path: Bytes,
    },
    Rename {
        id: u32,
        old: Bytes,
        new: Bytes,
    },
    Readlink {
        id: u32,
        path: Bytes,
    },
    /// OpenSSH sends (target, link): the first string is what the link points to.
    Symlink {
        id: u32,
        target: Bytes,
        link: Bytes,
    },
    Extended {
        id: u32,
        ext: Extended,
    },
}

impl Request {
    /// The request type as the protocol names it (`open`, `posix-rename@openssh.com`, ...),
    /// for metrics; unknown extensions share one name so clients cannot mint label values.
    pub fn name(&self) -> &'static str {
        use Request::*;
        match self {
            Init { .. } => "init",
            Open { .. } => "open",
            Close { .. } => "close",
            Read { .. } => "read",
            Write { .. } => "write",
            Lstat { .. } => "lstat",
            Fstat { .. } => "fstat",
            Setstat { .. } => "setstat",
            Fsetstat { .. } => "fsetstat",
            Opendir { .. } => "opendir",
            Readdir { .. } => "readdir",
            Remove { .. } => "remove",
            Mkdir { .. } => "mkdir",
            Rmdir { .. } => "rmdir",
            Realpath { .. } => "realpath",
            Stat { .. } => "stat",
            Rename { .. } => "rename",
            Readlink { .. } => "readlink",
            Symlink { .. } => "symlink",
            Extended { ext, .. } => match ext {
                self::Extended::PosixRename { .. } => "posix-rename@openssh.com",
                self::Extended::Statvfs { .. } => "statvfs@openssh.com",
                self::Extended::Fstatvfs { .. } => "fstatvfs@openssh.com",
                self::Extended::Hardlink { .. } => "hardlink@openssh.com",
                self::Extended::Fsync { .. } => "fsync@openssh.com",
                self::Extended::Limits => "limits@openssh.com",
                self::Extended::ExpandPath { .. } => "expand-path@openssh.com",
                self::Extended::CheckFile {
                    by_handle: true, ..
                } => "check-file-handle",
                self::Extended::CheckFile {
                    by_handle: false, ..
                } => "check-file-name",
                self::Extended::CopyData { .. } => "copy-data",
                self::Extended::Unknown { .. } => "unknown-extension",
            },
        }
    }

    pub fn id(&self) -> Option<u32> {
        use Request::*;
        match self {
            Init { .. } => None,
            Open { id, .. }
            | Close { id, .. }
            | Read { id, .. }
            | Write { id, .. }
            | Lstat { id, .. }
            | Fstat { id, .. }
            | Setstat { id, .. }
            | Fsetstat { id, .. }
            | Opendir { id, .. }
            | Readdir { id, .. }
            | Remove { id, .. }
            | Mkdir { id, .. }
            | Rmdir { id, .. }
            | Realpath { id, .. }
            | Stat { id, .. }
            | Rename { id, .. }
            | Readlink { id, .. }
            | Symlink { id, .. }
            | Extended { id, .. } => Some(*id),
        }
    }
}

/// Zero-copy reader over a packet.
struct Cursor(Bytes);

impl Cursor {
    fn u8(&mut self) -> Result<u8, DecodeError> {
        if self.0.remaining() < 1 {
            return Err(DecodeError::Truncated);
        }
        Ok(self.0.get_u8())
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        take_u32(&mut self.0)
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        take_u64(&mut self.0)
    }
    fn string(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u32()? as usize;
        if self.0.remaining() < len {
            return Err(DecodeError::Truncated);
        }
        Ok(self.0.split_to(len))
    }
    fn attrs(&mut self) -> Result<FileAttrs, DecodeError> {
        FileAttrs::decode(&mut self.0)
    }
}

fn take_u32(b: &mut Bytes) -> Result<u32, DecodeError> {
    if b.remaining() < 4 {
        return Err(DecodeError::Truncated);
    }
    Ok(b.get_u32())
}

fn take_u64(b: &mut Bytes) -> Result<u64, DecodeError> {
    if b.remaining() < 8 {
        return Err(DecodeError::Truncated);
    }
    Ok(b.get_u64())
}

fn skip_string(b: &mut Bytes) -> Result<(), DecodeError> {
    let len = take_u32(b)? as usize;
    if b.remaining() < len {
        return Err(DecodeError::Truncated);
    }
    b.advance(len);
    Ok(())
}

impl FileAttrs {
    /// Reads an ATTRS structure from the front of `b`, advancing past it. Extended
    /// attributes (`ATTR_EXTENDED`) are parsed and skipped; unknown flag bits are ignored.
    pub fn decode(b: &mut Bytes) -> Result<FileAttrs, DecodeError> {
        let flags = take_u32(b)?;
        let mut a = FileAttrs::default();
        if flags & ATTR_SIZE != 0 {
            a.size = Some(take_u64(b)?);
        }
        if flags & ATTR_UIDGID != 0 {
            a.uid_gid = Some((take_u32(b)?, take_u32(b)?));
        }
        if flags & ATTR_PERMISSIONS != 0 {
            a.permissions = Some(take_u32(b)?);
        }
        if flags & ATTR_ACMODTIME != 0 {
            a.times = Some((take_u32(b)?, take_u32(b)?));
        }
        if flags & ATTR_EXTENDED != 0 {
            // Each pair takes at least 8 bytes, so a huge count ends at the packet's end.
            let count = take_u32(b)?;
            for _ in 0..count {
                skip_string(b)?;
                skip_string(b)?;
            }
        }
        Ok(a)
    }

    /// Appends the ATTRS structure (flags, then the fields that are `Some`).
    pub fn encode(&self, buf: &mut BytesMut) {
        put_attrs(buf, self);
    }

    /// The `ATTR_*` flags describing the fields that are present.
    pub fn flags(&self) -> u32 {
        let mut flags = 0;
        if self.size.is_some() {
            flags |= ATTR_SIZE;
        }
        if self.uid_gid.is_some() {
            flags |= ATTR_UIDGID;
        }
        if self.permissions.is_some() {
            flags |= ATTR_PERMISSIONS;
        }
        if self.times.is_some() {
            flags |= ATTR_ACMODTIME;
        }
        flags
    }
}

/// Decodes one request packet body (type byte + payload).
pub fn decode_request(packet: Bytes) -> Result<Request, DecodeError> {
    let mut c = Cursor(packet);
    let ty = c.u8().map_err(|_| DecodeError::Empty)?;
    if ty == SSH_FXP_INIT {
        return Ok(Request::Init { version: c.u32()? });
    }
    if !(SSH_FXP_OPEN..=SSH_FXP_SYMLINK).contains(&ty) && ty != SSH_FXP_EXTENDED {
        return Err(unknown(ty, &c));
    }
    let id = c.u32()?;
    Ok(match ty {
        SSH_FXP_OPEN => Request::Open {
            id,
            path: c.string()?,
            pflags: c.u32()?,
            attrs: c.attrs()?,
        },
        SSH_FXP_CLOSE => Request::Close {
            id,
            handle: c.string()?,
        },
        SSH_FXP_READ => Request::Read {
            id,
            handle: c.string()?,
            offset: c.u64()?,
            len: c.u32()?,
        },
        SSH_FXP_WRITE => Request::Write {
            id,
            handle: c.string()?,
            offset: c.u64()?,
            data: c.string()?,
        },
        SSH_FXP_LSTAT => Request::Lstat {
            id,
            path: c.string()?,
        },
        SSH_FXP_FSTAT => Request::Fstat {
            id,
            handle: c.string()?,
        },
        SSH_FXP_SETSTAT => Request::Setstat {
            id,
            path: c.string()?,
            attrs: c.attrs()?,
        },
        SSH_FXP_FSETSTAT => Request::Fsetstat {
            id,
            handle: c.string()?,
            attrs: c.attrs()?,
        },
        SSH_FXP_OPENDIR => Request::Opendir {
            id,
            path: c.string()?,
        },
        SSH_FXP_READDIR => Request::Readdir {
            id,
            handle: c.string()?,
        },
        SSH_FXP_REMOVE => Request::Remove {
            id,
            path: c.string()?,
        },
        SSH_FXP_MKDIR => Request::Mkdir {
            id,
            path: c.string()?,
            attrs: c.attrs()?,
        },
        SSH_FXP_RMDIR => Request::Rmdir {
            id,
            path: c.string()?,
        },
        // A client may append a control byte and compose paths (v6); v3 has only the path.
        SSH_FXP_REALPATH => Request::Realpath {
            id,
            path: c.string()?,
        },
        SSH_FXP_STAT => Request::Stat {
            id,
            path: c.string()?,
        },
        SSH_FXP_RENAME => Request::Rename {
            id,
            old: c.string()?,
            new: c.string()?,
        },
        SSH_FXP_READLINK => Request::Readlink {
            id,
            path: c.string()?,
        },
        SSH_FXP_SYMLINK => Request::Symlink {
            id,
            target: c.string()?,
            link: c.string()?,
        },
        SSH_FXP_EXTENDED => {
            let name = c.string()?;
            let ext = match &name[..] {
                b"posix-rename@openssh.com" => Extended::PosixRename {
                    old: c.string()?,
                    new: c.string()?,
                },
                b"statvfs@openssh.com" => Extended::Statvfs { path: c.string()? },
                b"fstatvfs@openssh.com" => Extended::Fstatvfs {
                    handle: c.string()?,
                },
                b"hardlink@openssh.com" => Extended::Hardlink {
                    old: c.string()?,
                    new: c.string()?,
                },
                b"fsync@openssh.com" => Extended::Fsync {
                    handle: c.string()?,
                },
                b"limits@openssh.com" => Extended::Limits,
                b"expand-path@openssh.com" => Extended::ExpandPath { path: c.string()? },
                b"check-file-name" | b"check-file-handle" | b"check-file" => Extended::CheckFile {
                    by_handle: &name[..] != b"check-file-name",
                    target: c.string()?,
                    algorithms: c.string()?,
                    offset: c.u64()?,
                    length: c.u64()?,
                    block_size: c.u32()?,
                },
                b"copy-data" => Extended::CopyData {
                    read_handle: c.string()?,
                    read_offset: c.u64()?,
                    length: c.u64()?,
                    write_handle: c.string()?,
                    write_offset: c.u64()?,
                },
                _ => Extended::Unknown { name },
            };
            Request::Extended { id, ext }
        }
        ty => return Err(DecodeError::UnknownType { ty, id: Some(id) }),
    })
}

/// An unknown type, with the request id when at least 4 bytes follow the type.
fn unknown(ty: u8, c: &Cursor) -> DecodeError {
    let id =
        c.0.get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    DecodeError::UnknownType { ty, id }
}

/// Writes a packet: reserves the length, lets `body` write type and payload, patches it.
fn packet(buf: &mut BytesMut, ty: u8, body: impl FnOnce(&mut BytesMut)) {
    let start = buf.len();
    buf.put_u32(0);
    buf.put_u8(ty);
    body(buf);
    let len = (buf.len() - start - 4) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

fn put_string(buf: &mut BytesMut, s: &[u8]) {
    buf.put_u32(s.len() as u32);
    buf.put_slice(s);
}

/// Appends an ATTRS structure; same as [`FileAttrs::encode`].
pub fn put_attrs(buf: &mut BytesMut, a: &FileAttrs) {
    buf.put_u32(a.flags());
    if let Some(s) = a.size {
        buf.put_u64(s);
    }
    if let Some((u, g)) = a.uid_gid {
        buf.put_u32(u);
        buf.put_u32(g);
    }
    if let Some(p) = a.permissions {
        buf.put_u32(p);
    }
    if let Some((at, mt)) = a.times {
        buf.put_u32(at);
        buf.put_u32(mt);
    }
}

pub fn encode_version(buf: &mut BytesMut, version: u32, extensions: &[(&[u8], &[u8])]) {
    packet(buf, SSH_FXP_VERSION, |b| {
        b.put_u32(version);
        for (name, data) in extensions {
            put_string(b, name);
            put_string(b, data);
        }
    });
}

pub fn encode_status(buf: &mut BytesMut, id: u32, code: u32, msg: &str) {
    packet(buf, SSH_FXP_STATUS, |b| {
        b.put_u32(id);
        b.put_u32(code);
        put_string(b, msg.as_bytes());
        put_string(b, b"en");
    });
}

pub fn encode_handle(buf: &mut BytesMut, id: u32, handle: &[u8]) {
    packet(buf, SSH_FXP_HANDLE, |b| {
        b.put_u32(id);
        put_string(b, handle);
    });
}

pub fn encode_attrs(buf: &mut BytesMut, id: u32, attrs: &FileAttrs) {
    packet(buf, SSH_FXP_ATTRS, |b| {
        b.put_u32(id);
        put_attrs(b, attrs);
    });
}

pub fn encode_extended_reply(buf: &mut BytesMut, id: u32, payload: &[u8]) {
    packet(buf, SSH_FXP_EXTENDED_REPLY, |b| {
        b.put_u32(id);
        b.put_slice(payload);
    });
}

/// The reply to `check-file-*`: `"check-file"`, the algorithm used, then the hashes
/// (one per block) back to back.
pub fn encode_check_file_reply(buf: &mut BytesMut, id: u32, algorithm: &[u8], hashes: &[Vec<u8>]) {
    packet(buf, SSH_FXP_EXTENDED_REPLY, |b| {
        b.put_u32(id);
        put_string(b, b"check-file");
        put_string(b, algorithm);
        for h in hashes {
            b.put_slice(h);
        }
    });
}

/// `statvfs@openssh.com` reply fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatVfsReply {
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

pub fn encode_statvfs_reply(buf: &mut BytesMut, id: u32, s: &StatVfsReply) {
    packet(buf, SSH_FXP_EXTENDED_REPLY, |b| {
        b.put_u32(id);
        for v in [
            s.bsize, s.frsize, s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.favail, s.fsid,
            s.flag, s.namemax,
        ] {
            b.put_u64(v);
        }
    });
}

pub fn encode_limits_reply(
    buf: &mut BytesMut,
    id: u32,
    max_packet: u64,
    max_read: u64,
    max_write: u64,
    max_handles: u64,
) {
    packet(buf, SSH_FXP_EXTENDED_REPLY, |b| {
        b.put_u32(id);
        for v in [max_packet, max_read, max_write, max_handles] {
            b.put_u64(v);
        }
    });
}

/// The `statvfs@openssh.com` flag bit for a read-only file system.
pub const SSH_FXE_STATVFS_ST_RDONLY: u64 = 0x1;
/// The `statvfs@openssh.com` flag bit for a file system mounted `nosuid`.
pub const SSH_FXE_STATVFS_ST_NOSUID: u64 = 0x2;

impl StatVfsReply {
    /// Parses the payload of an EXTENDED_REPLY to `statvfs@openssh.com` (client side).
    pub fn decode(data: &[u8]) -> Result<StatVfsReply, DecodeError> {
        let mut v = [0u64; 11];
        read_u64s(data, &mut v)?;
        let [
            bsize,
            frsize,
            blocks,
            bfree,
            bavail,
            files,
            ffree,
            favail,
            fsid,
            flag,
            namemax,
        ] = v;
        Ok(StatVfsReply {
            bsize,
            frsize,
            blocks,
            bfree,
            bavail,
            files,
            ffree,
            favail,
            fsid,
            flag,
            namemax,
        })
    }
}

/// `limits@openssh.com` reply fields (0 means "no limit" for the last three).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitsReply {
    pub max_packet_len: u64,
    pub max_read_len: u64,
    pub max_write_len: u64,
    pub max_open_handles: u64,
}

impl LimitsReply {
    /// Parses the payload of an EXTENDED_REPLY to `limits@openssh.com` (client side).
    pub fn decode(data: &[u8]) -> Result<LimitsReply, DecodeError> {
        let mut v = [0u64; 4];
        read_u64s(data, &mut v)?;
        let [
            max_packet_len,
            max_read_len,
            max_write_len,
            max_open_handles,
        ] = v;
        Ok(LimitsReply {
            max_packet_len,
            max_read_len,
            max_write_len,
            max_open_handles,
        })
    }
}

fn read_u64s(mut data: &[u8], out: &mut [u64]) -> Result<(), DecodeError> {
    for v in out {
        if data.remaining() < 8 {
            return Err(DecodeError::Truncated);
        }
        *v = data.get_u64();
    }
    Ok(())
}

/// A DATA reply under construction in a buffer, returned by [`begin_data`].
///
/// Zero-copy downloads: [`begin_data`] appends the 13-byte header (length, type, id, data
/// length) at the end of the caller's buffer. The file data then goes straight after it,
/// either appended by the caller (e.g. a `read_at` into the buffer's spare capacity, or
/// `put_slice`) or read into the zeroed region from [`DataSlot::reserve`]. Finally
/// [`DataSlot::finish`] (all bytes after the header are the data) or
/// [`DataSlot::finish_len`] (truncate to what was actually read) patches both length
/// fields. The slot is a plain offset (`Copy`), so it can be kept across an `.await` while
/// the buffer itself is moved around.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSlot {
    start: usize,
}

/// Starts a DATA reply at the end of `buf`; see [`DataSlot`].
pub fn begin_data(buf: &mut BytesMut, id: u32) -> DataSlot {
    let start = buf.len();
    buf.put_u32(0);
    buf.put_u8(SSH_FXP_DATA);
    buf.put_u32(id);
    buf.put_u32(0);
    DataSlot { start }
}

impl DataSlot {
    /// Offset in the buffer where the packet (its length prefix) starts.
    pub fn packet_start(&self) -> usize {
        self.start
    }

    /// Offset in the buffer where the file data starts.
    pub fn data_start(&self) -> usize {
        self.start + DATA_HEADER_LEN
    }

    /// Appends `max_len` zeroed bytes to `buf` and returns them, for the caller to fill
    /// (e.g. with `pread`) before [`DataSlot::finish_len`].
    pub fn reserve<'b>(&self, buf: &'b mut BytesMut, max_len: usize) -> &'b mut [u8] {
        let at = buf.len();
        buf.resize(at + max_len, 0);
        &mut buf[at..]
    }

    /// Keeps only the first `actual_len` data bytes (fewer stay as they are if fewer were
    /// appended) and patches the lengths.
    pub fn finish_len(self, buf: &mut BytesMut, actual_len: usize) {
        let end = self.data_start().saturating_add(actual_len);
        if end < buf.len() {
            buf.truncate(end);
        }
        self.finish(buf);
    }

    /// Patches the lengths: every byte after the header is the data.
    ///
    /// Panics if the buffer was truncated into the header (a caller bug, not input).
    pub fn finish(self, buf: &mut BytesMut) {
        let total = (buf.len() - self.start - 4) as u32;
        let data = (buf.len() - self.data_start()) as u32;
        buf[self.start..self.start + 4].copy_from_slice(&total.to_be_bytes());
        buf[self.start + 9..self.start + 13].copy_from_slice(&data.to_be_bytes());
    }
}

/// Patches the lengths of a DATA reply started with [`begin_data`] at offset 0 of `buf`
/// (a buffer holding only that packet); [`DataSlot::finish`] works at any offset.
pub fn finish_data(buf: &mut BytesMut) {
    DataSlot { start: 0 }.finish(buf);
}

/// Builds a NAME reply entry by entry, patching the count at the end.
///
/// The lengths are patched by [`NameWriter::finish`], or on drop if the caller forgets;
/// [`NameWriter::cancel`] removes the partial packet from the buffer instead.
pub struct NameWriter<'a> {
    buf: &'a mut BytesMut,
    start: usize,
    count: u32,
    cancelled: bool,
}

impl<'a> NameWriter<'a> {
    /// Starts a NAME reply at the end of `buf`.
    pub fn new(buf: &'a mut BytesMut, id: u32) -> Self {
        let start = buf.len();
        buf.put_u32(0);
        buf.put_u8(SSH_FXP_NAME);
        buf.put_u32(id);
        buf.put_u32(0);
        Self {
            buf,
            start,
            count: 0,
            cancelled: false,
        }
    }

    pub fn push(&mut self, filename: &[u8], longname: &[u8], attrs: &FileAttrs) {
        put_string(self.buf, filename);
        put_string(self.buf, longname);
        put_attrs(self.buf, attrs);
        self.count += 1;
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bytes of this packet written so far, length prefix included.
    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// True while no entry has been pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Completes the packet (patches its length and entry count).
    pub fn finish(self) {
        // Drop does the patching.
    }

    /// Removes the partial packet from the buffer.
    pub fn cancel(mut self) {
        self.buf.truncate(self.start);
        self.cancelled = true;
    }
}

impl Drop for NameWriter<'_> {
    fn drop(&mut self) {
        if self.cancelled {
            return;
        }
        let len = (self.buf.len() - self.start - 4) as u32;
        self.buf[self.start..self.start + 4].copy_from_slice(&len.to_be_bytes());
        self.buf[self.start + 9..self.start + 13].copy_from_slice(&self.count.to_be_bytes());
    }
}

/// One entry of a NAME reply, for [`encode_name`].
#[derive(Debug, Clone, Copy)]
pub struct NameEntry<'a> {
    pub filename: &'a [u8],
    pub longname: &'a [u8],
    pub attrs: &'a FileAttrs,
}

/// Appends a complete NAME reply with `entries` (see [`NameWriter`] to add them one by one).
pub fn encode_name<'a>(
    buf: &mut BytesMut,
    id: u32,
    entries: impl IntoIterator<Item = NameEntry<'a>>,
) {
    let mut w = NameWriter::new(buf, id);
    for e in entries {
        w.push(e.filename, e.longname, e.attrs);
    }
    w.finish();
}

/// What an `ls -l` line shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct LongnameInfo {
    /// `st_mode`: file type bits and permissions.
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
}

/// OpenSSH's cut-off for showing the time rather than the year: half a year.
const SIX_MONTHS: i64 = 365 * 24 * 60 * 60 / 2;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The 10-character `ls` mode string, e.g. `drwxr-sr-t`.
pub fn mode_string(mode: u32) -> [u8; 10] {
    let kind = match mode & 0o170000 {
        0o040000 => b'd',
        0o120000 => b'l',
        0o020000 => b'c',
        0o060000 => b'b',
        0o010000 => b'p',
        0o140000 => b's',
        _ => b'-',
    };
    let bit = |mask: u32, c: u8| if mode & mask != 0 { c } else { b'-' };
    let special =
        |exec: u32, flag: u32, set: u8, unset: u8| match (mode & exec != 0, mode & flag != 0) {
            (true, true) => set,
            (false, true) => unset,
            (true, false) => b'x',
            (false, false) => b'-',
        };
    [
        kind,
        bit(0o400, b'r'),
        bit(0o200, b'w'),
        special(0o100, 0o4000, b's', b'S'),
        bit(0o040, b'r'),
        bit(0o020, b'w'),
        special(0o010, 0o2000, b's', b'S'),
        bit(0o004, b'r'),
        bit(0o002, b'w'),
        special(0o001, 0o1000, b't', b'T'),
    ]
}

/// Appends an `ls -l` style line as OpenSSH's `ls_file` formats it for READDIR (numeric
/// ids, times in UTC), judging "recent" against the current clock.
pub fn write_longname(out: &mut Vec<u8>, name: &[u8], st: &LongnameInfo) {
    write_longname_at(out, name, st, chrono::Utc::now().timestamp());
}

/// [`write_longname`] with an explicit "now" (seconds since the epoch).
///
/// Format: `"%s %3s %-8s %-8s %8llu %s %s"` of mode string (plus the trailing blank of
/// `strmode`), link count, uid, gid, size, date and name. The date is `Mon DD HH:MM` when
/// the mtime lies in the last six months and not in the future, `Mon DD  YYYY` otherwise,
/// and empty if the mtime is beyond the calendar's range.
pub fn write_longname_at(out: &mut Vec<u8>, name: &[u8], st: &LongnameInfo, now: i64) {
    use chrono::{Datelike, Timelike};
    use std::io::Write;
    out.extend_from_slice(&mode_string(st.mode));
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "  {:>3} {:<8} {:<8} {:>8} ",
        st.nlink, st.uid, st.gid, st.size
    );
    if let Some(t) = chrono::DateTime::from_timestamp(st.mtime, 0) {
        let month = MONTHS[t.month0() as usize % 12];
        let recent = now - SIX_MONTHS < st.mtime && now >= st.mtime;
        let _ = if recent {
            write!(
                out,
                "{month} {:>2} {:02}:{:02}",
                t.day(),
                t.hour(),
                t.minute()
            )
        } else {
            write!(out, "{month} {:>2}  {}", t.day(), t.year())
        };
    }
    out.push(b' ');
    out.extend_from_slice(name);
}

/// [`write_longname`] into a new vector.
pub fn longname(name: &[u8], st: &LongnameInfo) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + name.len());
    write_longname(&mut out, name, st);
    out
}

// ---- client side: used by the tests' SFTP client and the bench client (sftpgo-bench) ----

/// Replies, as a client decodes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Version {
        version: u32,
        extensions: Vec<(Bytes, Bytes)>,
    },
    Status {
        id: u32,
        code: u32,
        msg: Bytes,
    },
    Handle {
        id: u32,
        handle: Bytes,
    },
    Data {
        id: u32,
        data: Bytes,
    },
    Name {
        id: u32,
        entries: Vec<(Bytes, Bytes, FileAttrs)>,
    },
    Attrs {
        id: u32,
        attrs: FileAttrs,
    },
    ExtendedReply {
        id: u32,
        data: Bytes,
    },
}

impl Response {
    /// The request id it answers (VERSION answers INIT, which has none).
    pub fn id(&self) -> Option<u32> {
        match self {
            Response::Version { .. } => None,
            Response::Status { id, .. }
            | Response::Handle { id, .. }
            | Response::Data { id, .. }
            | Response::Name { id, .. }
            | Response::Attrs { id, .. }
            | Response::ExtendedReply { id, .. } => Some(*id),
        }
    }
}

pub fn decode_response(packet: Bytes) -> Result<Response, DecodeError> {
    let mut c = Cursor(packet);
    let ty = c.u8().map_err(|_| DecodeError::Empty)?;
    if ty == SSH_FXP_VERSION {
        let version = c.u32()?;
        let mut extensions = Vec::new();
        while c.0.has_remaining() {
            extensions.push((c.string()?, c.string()?));
        }
        return Ok(Response::Version {
            version,
            extensions,
        });
    }
    if !(SSH_FXP_STATUS..=SSH_FXP_ATTRS).contains(&ty) && ty != SSH_FXP_EXTENDED_REPLY {
        return Err(unknown(ty, &c));
    }
    let id = c.u32()?;
    Ok(match ty {
        SSH_FXP_STATUS => {
            let code = c.u32()?;
            let msg = if c.0.has_remaining() {
                c.string()?
            } else {
                Bytes::new()
            };
            Response::Status { id, code, msg }
        }
        SSH_FXP_HANDLE => Response::Handle {
            id,
            handle: c.string()?,
        },
        SSH_FXP_DATA => Response::Data {
            id,
            data: c.string()?,
        },
        SSH_FXP_NAME => {
            let count = c.u32()?;
            let mut entries = Vec::with_capacity(count.min(1024) as usize);
            for _ in 0..count {
                entries.push((c.string()?, c.string()?, c.attrs()?));
            }
            Response::Name { id, entries }
        }
        SSH_FXP_ATTRS => Response::Attrs {
            id,
            attrs: c.attrs()?,
        },
        SSH_FXP_EXTENDED_REPLY => Response::ExtendedReply {
            id,
            data: c.0.split_to(c.0.len()),
        },
        ty => return Err(DecodeError::UnknownType { ty, id: Some(id) }),
    })
}

/// Encodes a request packet (client side).
pub fn encode_request(buf: &mut BytesMut, r: &Request) {
    use Request::*;
    let ty = match r {
        Init { .. } => SSH_FXP_INIT,
        Open { .. } => SSH_FXP_OPEN,
        Close { .. } => SSH_FXP_CLOSE,
        Read { .. } => SSH_FXP_READ,
        Write { .. } => SSH_FXP_WRITE,
        Lstat { .. } => SSH_FXP_LSTAT,
        Fstat { .. } => SSH_FXP_FSTAT,
        Setstat { .. } => SSH_FXP_SETSTAT,
        Fsetstat { .. } => SSH_FXP_FSETSTAT,
        Opendir { .. } => SSH_FXP_OPENDIR,
        Readdir { .. } => SSH_FXP_READDIR,
        Remove { .. } => SSH_FXP_REMOVE,
        Mkdir { .. } => SSH_FXP_MKDIR,
        Rmdir { .. } => SSH_FXP_RMDIR,
        Realpath { .. } => SSH_FXP_REALPATH,
        Stat { .. } => SSH_FXP_STAT,
        Rename { .. } => SSH_FXP_RENAME,
        Readlink { .. } => SSH_FXP_READLINK,
        Symlink { .. } => SSH_FXP_SYMLINK,
        Extended { .. } => SSH_FXP_EXTENDED,
    };
    packet(buf, ty, |b| {
        if let Some(id) = r.id() {
            b.put_u32(id);
        }
        match r {
            Init { version } => b.put_u32(*version),
            Open {
                path,
                pflags,
                attrs,
                ..
            } => {
                put_string(b, path);
                b.put_u32(*pflags);
                put_attrs(b, attrs);
            }
            Close { handle, .. } | Fstat { handle, .. } | Readdir { handle, .. } => {
                put_string(b, handle)
            }
            Read {
                handle,
                offset,
                len,
                ..
            } => {
                put_string(b, handle);
                b.put_u64(*offset);
                b.put_u32(*len);
            }
            Write {
                handle,
                offset,
                data,
                ..
            } => {
                put_string(b, handle);
                b.put_u64(*offset);
                put_string(b, data);
            }
            Lstat { path, .. }
            | Opendir { path, .. }
            | Remove { path, .. }
            | Rmdir { path, .. }
            | Realpath { path, .. }
            | Stat { path, .. }
            | Readlink { path, .. } => put_string(b, path),
            Setstat { path, attrs, .. } | Mkdir { path, attrs, .. } => {
                put_string(b, path);
                put_attrs(b, attrs);
            }
            Fsetstat { handle, attrs, .. } => {
                put_string(b, handle);
                put_attrs(b, attrs);
            }
            Rename { old, new, .. } => {
                put_string(b, old);
                put_string(b, new);
            }
            Symlink { target, link, .. } => {
                put_string(b, target);
                put_string(b, link);
            }
            Extended { ext, .. } => match ext {
                self::Extended::PosixRename { old, new } => {
                    put_string(b, b"posix-rename@openssh.com");
                    put_string(b, old);
                    put_string(b, new);
                }
                self::Extended::Statvfs { path } => {
                    put_string(b, b"statvfs@openssh.com");
                    put_string(b, path);
                }
                self::Extended::Fstatvfs { handle } => {
                    put_string(b, b"fstatvfs@openssh.com");
                    put_string(b, handle);
                }
                self::Extended::Hardlink { old, new } => {
                    put_string(b, b"hardlink@openssh.com");
                    put_string(b, old);
                    put_string(b, new);
                }
                self::Extended::Fsync { handle } => {
                    put_string(b, b"fsync@openssh.com");
                    put_string(b, handle);
                }
                self::Extended::Limits => put_string(b, b"limits@openssh.com"),
                self::Extended::ExpandPath { path } => {
                    put_string(b, b"expand-path@openssh.com");
                    put_string(b, path);
                }
                self::Extended::CheckFile {
                    by_handle,
                    target,
                    algorithms,
                    offset,
                    length,
                    block_size,
                } => {
                    let name: &[u8] = if *by_handle {
                        b"check-file-handle"
                    } else {
                        b"check-file-name"
                    };
                    put_string(b, name);
                    put_string(b, target);
                    put_string(b, algorithms);
                    b.put_u64(*offset);
                    b.put_u64(*length);
                    b.put_u32(*block_size);
                }
                self::Extended::CopyData {
                    read_handle,
                    read_offset,
                    length,
                    write_handle,
                    write_offset,
                } => {
                    put_string(b, b"copy-data");
                    put_string(b, read_handle);
                    b.put_u64(*read_offset);
                    b.put_u64(*length);
                    put_string(b, write_handle);
                    b.put_u64(*write_offset);
                }
                self::Extended::Unknown { name } => put_string(b, name),
            },
        }
    });
}

#[cfg(test)]
mod tests;
