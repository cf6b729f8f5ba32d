//! A pipelining SFTP client for `bench/run.sh`.
//!
//! OpenSSH's `sftp` handles one file at a time and one request chain per file (OPEN, then
//! WRITE, then CLOSE), so with small files it measures round-trip latency, mostly its own.
//! This client keeps many files (or many reads/writes of one file) in flight on one session
//! and batches the requests it has ready into one channel write, so what it measures is how
//! fast the server answers. It runs against any SFTP v3 server, so the bench drives ours and
//! OpenSSH's with it side by side.
//!
//! Written over our own codec (`sftpgo_sftp::codec`, which encodes requests and decodes
//! replies too) because no maintained Rust SFTP client pipelines across files.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use bytes::{Bytes, BytesMut};
use russh::client;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, ChannelReadHalf, cipher};
use sftpgo_sftp::codec::{
    self, FileAttrs, PacketReader, Request, Response, SSH_FX_EOF, SSH_FX_OK, SSH_FXF_CREAT,
    SSH_FXF_READ, SSH_FXF_TRUNC, SSH_FXF_WRITE,
};

/// Where and as whom to connect.
pub struct Target {
    pub addr: SocketAddr,
    pub user: String,
    pub key: PrivateKey,
    /// An SSH cipher name (`aes128-gcm@openssh.com`, ...); None keeps russh's preference.
    pub cipher: Option<String>,
}

struct TrustAnyHostKey;

impl client::Handler for TrustAnyHostKey {
    type Error = russh::Error;
    async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        // Loopback bench servers with throw-away host keys.
        Ok(true)
    }
}

fn cipher_named(name: &str) -> Result<cipher::Name> {
    [
        cipher::AES_128_GCM,
        cipher::AES_256_GCM,
        cipher::CHACHA20_POLY1305,
        cipher::AES_128_CTR,
        cipher::AES_192_CTR,
        cipher::AES_256_CTR,
    ]
    .into_iter()
    .find(|c| c.as_ref() == name)
    .with_context(|| format!("unknown cipher {name}"))
}

/// One SFTP session. Requests are queued into one buffer and handed together to the
/// writer task just before the client would otherwise wait for a reply.
pub struct Session {
    _handle: client::Handle<TrustAnyHostKey>,
    read: ChannelReadHalf,
    /// To the task that sends batches. Sending waits for the server's channel window,
    /// which the server only opens while its replies are read: sent from the reading
    /// task, a batch bigger than the window deadlocked against OpenSSH's sshd.
    batches: tokio::sync::mpsc::UnboundedSender<Bytes>,
    reader: PacketReader,
    out: BytesMut,
    next_id: u32,
}

impl Session {
    pub async fn connect(t: &Target) -> Result<Self> {
        let mut config = client::Config {
            // Same channel window as OpenSSH's client; bigger packets than its 32 KiB.
            window_size: 2 << 20,
            maximum_packet_size: 256 << 10,
            nodelay: true,
            ..Default::default()
        };
        if let Some(name) = &t.cipher {
            config.preferred.cipher = vec![cipher_named(name)?].into();
        }
        let mut handle = client::connect(Arc::new(config), t.addr, TrustAnyHostKey)
            .await
            .with_context(|| format!("connecting to {}", t.addr))?;
        let key = PrivateKeyWithHashAlg::new(Arc::new(t.key.clone()), Some(HashAlg::Sha256));
        if !handle.authenticate_publickey(&t.user, key).await?.success() {
            bail!("public key authentication failed for {}", t.user);
        }
        let channel = handle.channel_open_session().await?;
        channel.request_subsystem(true, "sftp").await?;
        let (read, write) = channel.split();
        let (batches, mut to_send) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        tokio::spawn(async move {
            while let Some(batch) = to_send.recv().await {
                if write.data_bytes(batch).await.is_err() {
                    break; // the reader sees the channel close
                }
            }
        });
        let mut s = Self {
            _handle: handle,
            read,
            batches,
            reader: PacketReader::new(1 << 20),
            out: BytesMut::with_capacity(64 << 10),
            next_id: 1,
        };
        codec::encode_request(&mut s.out, &Request::Init { version: 3 });
        match s.reply().await? {
            Response::Version { version: 3, .. } => Ok(s),
            other => bail!("expected VERSION 3, got {other:?}"),
        }
    }

    fn queue(&mut self, make: impl FnOnce(u32) -> Request) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        codec::encode_request(&mut self.out, &make(id));
        id
    }

    /// The next reply, in arrival order; sends what is queued before waiting.
    async fn reply(&mut self) -> Result<Response> {
        loop {
            if let Some(p) = self.reader.next_packet()? {
                return Ok(codec::decode_response(p)?);
            }
            if !self.out.is_empty() {
                let batch = self.out.split().freeze();
                self.batches
                    .send(batch)
                    .map_err(|_| anyhow::anyhow!("the SFTP channel is closed for sending"))?;
            }
            match self.read.wait().await {
                Some(ChannelMsg::Data { data }) => self.reader.push(&data),
                Some(ChannelMsg::Eof | ChannelMsg::Close) | None => {
                    bail!("the server closed the SFTP channel")
                }
                Some(_) => {}
            }
        }
    }

    /// Waits for a reply that must be STATUS OK (for setup requests, one at a time).
    async fn call_ok(&mut self, make: impl FnOnce(u32) -> Request) -> Result<u32> {
        let id = self.queue(make);
        let r = self.reply().await?;
        if r.id() != Some(id) {
            bail!("reply to another request: {r:?}");
        }
        match r {
            Response::Status { code, .. } => Ok(code),
            other => bail!("expected STATUS, got {other:?}"),
        }
    }

    /// Creates `dir`; an existing one is fine (servers word that failure differently).
    pub async fn mkdir(&mut self, dir: &str) -> Result<()> {
        let path = Bytes::copy_from_slice(dir.as_bytes());
        self.call_ok(|id| Request::Mkdir {
            id,
            path,
            attrs: FileAttrs::default(),
        })
        .await?;
        Ok(())
    }

    /// Uploads `dir/f1` .. `dir/f{count}`, each holding `data`, with up to `inflight` files
    /// open at once. Each file is OPEN, its WRITEs (32 KiB each), CLOSE, as OpenSSH's client
    /// does it, but chains of different files overlap.
    pub async fn put_files(
        &mut self,
        dir: &str,
        count: usize,
        data: &Bytes,
        inflight: usize,
    ) -> Result<()> {
        const CHUNK: usize = 32 << 10;
        enum Step {
            Open(usize),
            Write(usize),
            Close,
        }
        let mut steps: HashMap<u32, Step> = HashMap::new();
        let mut writes_left = vec![0usize; count];
        let mut handles: Vec<Bytes> = vec![Bytes::new(); count];
        let (mut started, mut done) = (0, 0);
        let open =
            |s: &mut Self, i| s.open_nth(dir, i, SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC);
        while started < count.min(inflight.max(1)) {
            steps.insert(open(self, started), Step::Open(started));
            started += 1;
        }
        while done < count {
            let r = self.reply().await?;
            let step = answered(&mut steps, &r)?;
            match step {
                Step::Open(i) => {
                    handles[i] = expect_handle(r)?;
                    let mut offset = 0;
                    for part in chunks(data, CHUNK) {
                        let handle = handles[i].clone();
                        let id = self.queue(|id| Request::Write {
                            id,
                            handle,
                            offset,
                            data: part,
                        });
                        offset += CHUNK as u64;
                        steps.insert(id, Step::Write(i));
                        writes_left[i] += 1;
                    }
                    if writes_left[i] == 0 {
                        let handle = std::mem::take(&mut handles[i]);
                        steps.insert(self.queue(|id| Request::Close { id, handle }), Step::Close);
                    }
                }
                Step::Write(i) => {
                    expect_ok(r)?;
                    writes_left[i] -= 1;
                    if writes_left[i] == 0 {
                        let handle = std::mem::take(&mut handles[i]);
                        steps.insert(self.queue(|id| Request::Close { id, handle }), Step::Close);
                    }
                }
                Step::Close => {
                    expect_ok(r)?;
                    done += 1;
                    if started < count {
                        steps.insert(open(self, started), Step::Open(started));
                        started += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// Downloads `dir/f1` .. `dir/f{count}` with up to `inflight` files open at once, each
    /// read to EOF one 32 KiB READ after another (as OpenSSH's client does for small files);
    /// fails unless every file held `size` bytes. Returns the bytes received.
    pub async fn get_files(
        &mut self,
        dir: &str,
        count: usize,
        size: u64,
        inflight: usize,
    ) -> Result<u64> {
        const CHUNK: u32 = 32 << 10;
        enum Step {
            Open(usize),
            Read(usize, Bytes, u64),
            Close,
        }
        let mut steps: HashMap<u32, Step> = HashMap::new();
        let (mut started, mut done, mut total) = (0, 0, 0u64);
        let open = |s: &mut Self, i| s.open_nth(dir, i, SSH_FXF_READ);
        let read = |s: &mut Self, i: usize, handle: Bytes, offset: u64| {
            let h = handle.clone();
            let id = s.queue(|id| Request::Read {
                id,
                handle: h,
                offset,
                len: CHUNK,
            });
            (id, Step::Read(i, handle, offset))
        };
        while started < count.min(inflight.max(1)) {
            steps.insert(open(self, started), Step::Open(started));
            started += 1;
        }
        while done < count {
            let r = self.reply().await?;
            let step = answered(&mut steps, &r)?;
            match step {
                Step::Open(i) => {
                    let (id, step) = read(self, i, expect_handle(r)?, 0);
                    steps.insert(id, step);
                }
                Step::Read(i, handle, offset) => match r {
                    Response::Data { data, .. } if !data.is_empty() => {
                        total += data.len() as u64;
                        let (id, step) = read(self, i, handle, offset + data.len() as u64);
                        steps.insert(id, step);
                    }
                    Response::Status { code, .. } if code == SSH_FX_EOF => {
                        if offset != size {
                            bail!("{dir}/f{}: EOF at {offset}, expected {size} bytes", i + 1);
                        }
                        steps.insert(self.queue(|id| Request::Close { id, handle }), Step::Close);
                    }
                    other => bail!("{dir}/f{}: READ answered {other:?}", i + 1),
                },
                Step::Close => {
                    expect_ok(r)?;
                    done += 1;
                    if started < count {
                        steps.insert(open(self, started), Step::Open(started));
                        started += 1;
                    }
                }
            }
        }
        Ok(total)
    }

    /// Uploads the local file `src` to `remote` with `inflight` WRITEs of `chunk` bytes
    /// outstanding. Returns the bytes sent.
    pub async fn put_stream(
        &mut self,
        src: &Path,
        remote: &str,
        chunk: usize,
        inflight: usize,
    ) -> Result<u64> {
        let mut file = std::fs::File::open(src).with_context(|| src.display().to_string())?;
        let path = Bytes::copy_from_slice(remote.as_bytes());
        let handle = self
            .open_handle(path, SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC)
            .await?;
        let (mut offset, mut outstanding, mut eof) = (0u64, 0usize, false);
        loop {
            while !eof && outstanding < inflight.max(1) {
                let mut buf = Vec::with_capacity(chunk);
                let n = (&mut file).take(chunk as u64).read_to_end(&mut buf)?;
                if n == 0 {
                    eof = true;
                    break;
                }
                let (h, data) = (handle.clone(), Bytes::from(buf));
                self.queue(|id| Request::Write {
                    id,
                    handle: h,
                    offset,
                    data,
                });
                offset += n as u64;
                outstanding += 1;
            }
            if outstanding == 0 {
                break;
            }
            expect_ok(self.reply().await?)?;
            outstanding -= 1;
        }
        let code = self.call_ok(|id| Request::Close { id, handle }).await?;
        if code != SSH_FX_OK {
            bail!("CLOSE of {remote} answered status {code}");
        }
        Ok(offset)
    }

    /// Downloads `remote` to nowhere with `inflight` READs of `chunk` bytes outstanding;
    /// a short read is followed by a READ of the rest of its range. Returns the bytes read.
    pub async fn get_stream(&mut self, remote: &str, chunk: u32, inflight: usize) -> Result<u64> {
        let path = Bytes::copy_from_slice(remote.as_bytes());
        let handle = self.open_handle(path, SSH_FXF_READ).await?;
        let mut pending: HashMap<u32, (u64, u32)> = HashMap::new();
        let (mut next, mut total, mut eof) = (0u64, 0u64, false);
        loop {
            while !eof && pending.len() < inflight.max(1) {
                let h = handle.clone();
                let id = self.queue(|id| Request::Read {
                    id,
                    handle: h,
                    offset: next,
                    len: chunk,
                });
                pending.insert(id, (next, chunk));
                next += u64::from(chunk);
            }
            if pending.is_empty() {
                break;
            }
            let r = self.reply().await?;
            let (offset, len) = answered(&mut pending, &r)?;
            match r {
                Response::Data { data, .. } if !data.is_empty() => {
                    let got = data.len() as u32;
                    total += u64::from(got);
                    if got < len {
                        let h = handle.clone();
                        let (offset, len) = (offset + u64::from(got), len - got);
                        let id = self.queue(|id| Request::Read {
                            id,
                            handle: h,
                            offset,
                            len,
                        });
                        pending.insert(id, (offset, len));
                    }
                }
                Response::Status { code, .. } if code == SSH_FX_EOF => eof = true,
                other => bail!("READ of {remote} answered {other:?}"),
            }
        }
        self.call_ok(|id| Request::Close { id, handle }).await?;
        Ok(total)
    }

    /// Queues the OPEN of `dir/f{i+1}` (the bench's file names).
    fn open_nth(&mut self, dir: &str, i: usize, pflags: u32) -> u32 {
        let path = Bytes::from(format!("{dir}/f{}", i + 1));
        self.queue(|id| Request::Open {
            id,
            path,
            pflags,
            attrs: FileAttrs::default(),
        })
    }

    async fn open_handle(&mut self, path: Bytes, pflags: u32) -> Result<Bytes> {
        let shown = String::from_utf8_lossy(&path).into_owned();
        self.queue(|id| Request::Open {
            id,
            path,
            pflags,
            attrs: FileAttrs::default(),
        });
        expect_handle(self.reply().await?).with_context(|| format!("OPEN {shown}"))
    }
}

/// What was waiting for this reply (by request id).
fn answered<T>(waiting: &mut HashMap<u32, T>, r: &Response) -> Result<T> {
    r.id()
        .and_then(|id| waiting.remove(&id))
        .with_context(|| format!("unexpected reply {r:?}"))
}

fn chunks(data: &Bytes, size: usize) -> impl Iterator<Item = Bytes> + '_ {
    (0..data.len())
        .step_by(size)
        .map(move |at| data.slice(at..data.len().min(at + size)))
}

fn expect_handle(r: Response) -> Result<Bytes> {
    match r {
        Response::Handle { handle, .. } => Ok(handle),
        other => bail!("expected HANDLE, got {other:?}"),
    }
}

fn expect_ok(r: Response) -> Result<()> {
    match r {
        Response::Status { code, .. } if code == SSH_FX_OK => Ok(()),
        other => bail!("expected STATUS OK, got {other:?}"),
    }
}
