//! A small SFTP client over russh built on our own codec: lets tests send any request,
//! including malformed and oversized ones, and inspect raw replies.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use bytes::{Bytes, BytesMut};
use russh::client::{self, Msg};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use sftpgo_sftp::codec::{self, FileAttrs, PacketReader, Request, Response};

pub struct AcceptAll;

impl client::Handler for AcceptAll {
    type Error = russh::Error;
    async fn check_server_key(
        &mut self,
        _key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

pub enum Credential<'a> {
    Password(&'a str),
    Key(&'a PrivateKey),
}

/// Opens an SSH connection and authenticates; returns the handle (for raw channel tests).
pub async fn ssh_connect(
    addr: SocketAddr,
    user: &str,
    cred: Credential<'_>,
) -> Result<client::Handle<AcceptAll>> {
    let config = Arc::new(client::Config::default());
    let mut handle = client::connect(config, addr, AcceptAll)
        .await
        .context("connect")?;
    let res = match cred {
        Credential::Password(p) => handle.authenticate_password(user, p).await?,
        Credential::Key(k) => {
            let key = PrivateKeyWithHashAlg::new(Arc::new(k.clone()), Some(HashAlg::Sha256));
            handle.authenticate_publickey(user, key).await?
        }
    };
    if !res.success() {
        bail!("authentication failed");
    }
    Ok(handle)
}

pub struct SftpClient {
    pub handle: client::Handle<AcceptAll>,
    read: ChannelReadHalf,
    write: ChannelWriteHalf<Msg>,
    reader: PacketReader,
    next_id: u32,
    early: HashMap<u32, Response>,
    pub extensions: Vec<(Bytes, Bytes)>,
}

impl SftpClient {
    pub async fn connect(addr: SocketAddr, user: &str, cred: Credential<'_>) -> Result<Self> {
        let handle = ssh_connect(addr, user, cred).await?;
        let channel = handle.channel_open_session().await?;
        channel.request_subsystem(true, "sftp").await?;
        let (read, write) = channel.split();
        let mut c = Self {
            handle,
            read,
            write,
            reader: PacketReader::new(1 << 20),
            next_id: 1,
            early: HashMap::new(),
            extensions: Vec::new(),
        };
        let mut buf = BytesMut::new();
        codec::encode_request(&mut buf, &Request::Init { version: 3 });
        c.send_raw(&buf).await?;
        match c.recv().await? {
            Some(Response::Version {
                version,
                extensions,
            }) => {
                if version != 3 {
                    bail!("server answered version {version}");
                }
                c.extensions = extensions;
            }
            other => bail!("expected VERSION, got {other:?}"),
        }
        Ok(c)
    }

    pub async fn send_raw(&mut self, data: &[u8]) -> Result<()> {
        self.write.data_bytes(Bytes::copy_from_slice(data)).await?;
        Ok(())
    }

    /// Next response, or None when the server closed the channel.
    pub async fn recv(&mut self) -> Result<Option<Response>> {
        loop {
            if let Some(p) = self.reader.next_packet()? {
                return Ok(Some(codec::decode_response(p)?));
            }
            match self.read.wait().await {
                Some(ChannelMsg::Data { data }) => self.reader.push(&data),
                Some(ChannelMsg::Eof) | Some(ChannelMsg::Close) | None => return Ok(None),
                Some(_) => {}
            }
        }
    }

    pub fn next_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends a request (its id is replaced by a fresh one) without waiting.
    pub async fn send(&mut self, make: impl FnOnce(u32) -> Request) -> Result<u32> {
        let id = self.next_id();
        let mut buf = BytesMut::new();
        codec::encode_request(&mut buf, &make(id));
        self.send_raw(&buf).await?;
        Ok(id)
    }

    /// Waits for the reply to `id` (replies may arrive out of order).
    pub async fn reply(&mut self, id: u32) -> Result<Response> {
        if let Some(r) = self.early.remove(&id) {
            return Ok(r);
        }
        loop {
            let r = self
                .recv()
                .await?
                .context("channel closed while waiting for a reply")?;
            match r.id() {
                Some(rid) if rid == id => return Ok(r),
                Some(rid) => {
                    self.early.insert(rid, r);
                }
                None => bail!("unexpected response {r:?}"),
            }
        }
    }

    pub async fn call(&mut self, make: impl FnOnce(u32) -> Request) -> Result<Response> {
        let id = self.send(make).await?;
        self.reply(id).await
    }

    /// Sends a request expecting a STATUS; returns its code.
    pub async fn status(&mut self, make: impl FnOnce(u32) -> Request) -> Result<u32> {
        match self.call(make).await? {
            Response::Status { code, .. } => Ok(code),
            other => bail!("expected STATUS, got {other:?}"),
        }
    }

    pub async fn open(&mut self, path: &str, pflags: u32) -> Result<Result<Bytes, u32>> {
        let path = Bytes::copy_from_slice(path.as_bytes());
        match self
            .call(|id| Request::Open {
                id,
                path,
                pflags,
                attrs: FileAttrs::default(),
            })
            .await?
        {
            Response::Handle { handle, .. } => Ok(Ok(handle)),
            Response::Status { code, .. } => Ok(Err(code)),
            other => bail!("unexpected {other:?}"),
        }
    }

    pub async fn close(&mut self, handle: &Bytes) -> Result<u32> {
        let handle = handle.clone();
        self.status(|id| Request::Close { id, handle }).await
    }

    /// Uploads `data` with up to 32 writes in flight.
    pub async fn put(&mut self, path: &str, data: &[u8], chunk: usize) -> Result<()> {
        let flags = codec::SSH_FXF_WRITE | codec::SSH_FXF_CREAT | codec::SSH_FXF_TRUNC;
        let handle = self
            .open(path, flags)
            .await?
            .map_err(|c| anyhow::anyhow!("open failed: {c}"))?;
        let mut ids = std::collections::VecDeque::new();
        for (i, part) in data.chunks(chunk.max(1)).enumerate() {
            let (h, d) = (handle.clone(), Bytes::copy_from_slice(part));
            let offset = (i * chunk) as u64;
            ids.push_back(
                self.send(|id| Request::Write {
                    id,
                    handle: h,
                    offset,
                    data: d,
                })
                .await?,
            );
            if ids.len() >= 32 {
                let id = ids.pop_front().unwrap_or_default();
                expect_ok(self.reply(id).await?)?;
            }
        }
        while let Some(id) = ids.pop_front() {
            expect_ok(self.reply(id).await?)?;
        }
        let code = self.close(&handle).await?;
        if code != codec::SSH_FX_OK {
            bail!("close failed: {code}");
        }
        Ok(())
    }

    /// Downloads a whole file with pipelined reads.
    pub async fn get(&mut self, path: &str) -> Result<Vec<u8>> {
        let handle = self
            .open(path, codec::SSH_FXF_READ)
            .await?
            .map_err(|c| anyhow::anyhow!("open failed: {c}"))?;
        let mut out = Vec::new();
        let chunk = 64 * 1024u32;
        let mut offset = 0u64;
        loop {
            let mut ids = Vec::new();
            for i in 0..16u64 {
                let h = handle.clone();
                let off = offset + i * u64::from(chunk);
                ids.push(
                    self.send(|id| Request::Read {
                        id,
                        handle: h,
                        offset: off,
                        len: chunk,
                    })
                    .await?,
                );
            }
            let mut eof = false;
            for id in ids {
                match self.reply(id).await? {
                    Response::Data { data, .. } => {
                        if eof {
                            bail!("data after EOF");
                        }
                        out.extend_from_slice(&data);
                        if data.len() < chunk as usize {
                            eof = true;
                        }
                    }
                    Response::Status { code, .. } if code == codec::SSH_FX_EOF => eof = true,
                    other => bail!("unexpected {other:?}"),
                }
            }
            if eof {
                break;
            }
            offset += 16 * u64::from(chunk);
        }
        self.close(&handle).await?;
        Ok(out)
    }
}

fn expect_ok(r: Response) -> Result<()> {
    match r {
        Response::Status { code, .. } if code == codec::SSH_FX_OK => Ok(()),
        other => bail!("expected OK, got {other:?}"),
    }
}
