//! SCP, the legacy protocol (`scp -O`; OpenSSH's `scp` before 9.0, WinSCP's SCP mode):
//! the client runs `scp -t <target>` to upload (we are the sink) or `scp -f <path>...`
//! to download (we are the source), and both sides exchange control lines
//! ([`control::Control`]), file data and one-byte acknowledgements.
//!
//! Every file goes through the session's `UserFs`, as an SFTP request would: the same
//! permissions, confinement, quota (a `C` line's size is checked at open), atomic
//! uploads, bandwidth limits, transfer logs and actions. Names in control lines are single
//! components (never `/`, `.` or `..`); wildcards in a source path are expanded here,
//! beneath the home, never by a shell.

use std::os::unix::ffi::OsStrExt;

use bytes::{Bytes, BytesMut};
use sftpgo_core::fs::UploadFlags;
use sftpgo_core::{FsError, ProtocolSession, SetAttrs, Transfer};
use sftpgo_vfs::{FileStat, VirtualPath};

use crate::stream::LineError;
use crate::{ByteChannel, Stream};

pub mod control;

use control::{Control, MAX_LINE};

/// What the client asked `scp` on our side to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScpArgs {
    /// `-t`: receive files (upload); `-f`: send them (download).
    pub sink: bool,
    /// `-r`
    pub recursive: bool,
    /// `-p`: times (and modes) travel with the files.
    pub preserve: bool,
    /// `-d`: the target must be a directory.
    pub target_is_dir: bool,
    /// The target (sink: exactly one) or the sources (one or more).
    pub paths: Vec<Vec<u8>>,
}

impl ScpArgs {
    /// Parses the words after `scp`: flags (`-t`, `-f`, `-r`, `-p`, `-d`, and `-v`, `-q`
    /// which change nothing here), possibly combined, then `--` and the paths.
    pub fn parse(args: &[Vec<u8>]) -> Result<ScpArgs, String> {
        let (mut sink, mut source) = (false, false);
        let mut parsed = ScpArgs {
            sink: false,
            recursive: false,
            preserve: false,
            target_is_dir: false,
            paths: Vec::new(),
        };
        let mut rest = args;
        while let Some((arg, tail)) = rest.split_first() {
            if arg.as_slice() == b"--" {
                rest = tail;
                break;
            }
            if arg.len() < 2 || arg[0] != b'-' {
                break;
            }
            for &flag in &arg[1..] {
                match flag {
                    b't' => sink = true,
                    b'f' => source = true,
                    b'r' => parsed.recursive = true,
                    b'p' => parsed.preserve = true,
                    b'd' => parsed.target_is_dir = true,
                    b'v' | b'q' => {}
                    other => {
                        return Err(format!(
                            "scp: unsupported option -{}",
                            char::from(other).escape_default()
                        ));
                    }
                }
            }
            rest = tail;
        }
        if sink == source {
            return Err("scp: exactly one of -t and -f is required".into());
        }
        parsed.sink = sink;
        parsed.paths = rest.to_vec();
        match (sink, parsed.paths.len()) {
            (_, 0) => Err("scp: a path is required".into()),
            (true, n) if n > 1 => Err("scp: -t takes one target".into()),
            _ => Ok(parsed),
        }
    }
}

/// Directories an upload or download may nest (a bound on a client's `D` lines and on
/// symlink loops in a recursive download).
const MAX_DEPTH: usize = 128;
/// File data written in one blocking job of an upload.
const WRITE_BATCH: usize = 1024 * 1024;
/// File data read (and sent) at once in a download.
const READ_CHUNK: usize = 256 * 1024;
/// Paths one wildcard may expand to, and directories it may list.
const MAX_MATCHES: usize = 10_000;
const MAX_LISTINGS: usize = 1_000;

/// How an exchange ended early.
enum Stop {
    /// The client is gone, or sent what the protocol cannot continue after (told).
    Fatal,
}

/// A directory a `D` line entered, and what `-p` gives it when its `E` comes.
struct Entered {
    path: VirtualPath,
    times: Option<(u64, u64)>,
    mode: u32,
}

struct Scp<'a, C> {
    session: &'a ProtocolSession,
    stream: &'a mut Stream<C>,
    args: &'a ScpArgs,
    errors: u32,
}

pub(crate) async fn run<C: ByteChannel>(
    session: &ProtocolSession,
    args: ScpArgs,
    stream: &mut Stream<C>,
) -> u32 {
    let mut scp = Scp {
        session,
        stream,
        args: &args,
        errors: 0,
    };
    let res = if args.sink {
        scp.sink().await
    } else {
        scp.source().await
    };
    match res {
        Ok(()) if scp.errors == 0 => 0,
        _ => 1,
    }
}

/// A message for the client: no newline may end it early.
fn one_line(s: String) -> Vec<u8> {
    s.replace('\n', " ").into_bytes()
}

/// The reason a client sees, worded as OpenSSH's scp does where it can.
fn reason(e: &FsError) -> String {
    match e {
        FsError::NotFound => "No such file or directory".into(),
        FsError::PermissionDenied(m) => format!("Permission denied ({m})"),
        other => other.to_string(),
    }
}

impl<C: ByteChannel> Scp<'_, C> {
    async fn send(&mut self, data: impl Into<Bytes>) -> Result<(), Stop> {
        if self.stream.send(data.into()).await {
            Ok(())
        } else {
            Err(Stop::Fatal)
        }
    }

    /// The rest of a `\x01`/`\x02` message line (empty if it cannot be read).
    async fn message_text(&mut self) -> Vec<u8> {
        self.stream
            .line(MAX_LINE)
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    async fn ack(&mut self) -> Result<(), Stop> {
        self.send(Bytes::from_static(b"\0")).await
    }

    /// A problem with one file or directory: the client reports it and goes on.
    async fn warn(&mut self, path: &VirtualPath, e: &FsError) -> Result<(), Stop> {
        self.errors += 1;
        let text = one_line(format!("scp: {}: {}", path.display(), reason(e)));
        self.send(Control::Message { fatal: false, text }.encode())
            .await
    }

    /// A problem the exchange cannot continue after: told to the client, logged.
    async fn fatal(&mut self, what: String) -> Stop {
        self.errors += 1;
        if self.session.may_log() {
            tracing::info!(sender = "scp", connection_id = %self.session.id, username = self.session.username(), error = %what, "SCP session ended");
        }
        let text = one_line(format!("scp: {what}"));
        let _ = self
            .send(Control::Message { fatal: true, text }.encode())
            .await;
        Stop::Fatal
    }

    async fn protocol_error(&mut self, e: impl std::fmt::Display) -> Stop {
        self.fatal(format!("protocol error: {e}")).await
    }

    // ---- sink: the client uploads ----

    async fn sink(&mut self) -> Result<(), Stop> {
        let fs = self.session.fs();
        let target = match fs.resolve(&self.args.paths[0]) {
            Ok(p) => p,
            Err(e) => return Err(self.fatal(reason(&e)).await),
        };
        let target_is_dir = matches!(fs.upload_target(&target).await, Ok(Some(true)));
        if self.args.target_is_dir && !target_is_dir {
            let msg = format!("{}: Not a directory", target.display());
            return Err(self.fatal(msg).await);
        }
        self.ack().await?;
        // The directories entered (`D` lines not yet ended).
        let mut dirs: Vec<Entered> = Vec::new();
        let mut times = None;
        loop {
            let line = match self.stream.line(MAX_LINE).await {
                Ok(Some(line)) => line,
                Ok(None) if dirs.is_empty() => return Ok(()),
                Ok(None) => return Err(self.protocol_error(LineError::Truncated).await),
                Err(e) => return Err(self.protocol_error(e).await),
            };
            let control = match Control::parse(&line) {
                Ok(c) => c,
                Err(e) => return Err(self.protocol_error(e).await),
            };
            let dest = |name: &[u8]| -> Result<VirtualPath, FsError> {
                match dirs.last() {
                    Some(dir) => Ok(dir.path.join(name)?),
                    None if target_is_dir => Ok(target.join(name)?),
                    None => Ok(target.clone()),
                }
            };
            match control {
                Control::Times { mtime, atime } => {
                    times = Some((mtime, atime));
                    self.ack().await?;
                }
                Control::Message { fatal, text } => {
                    // The client could not read one of its files (or gives up).
                    self.errors += 1;
                    if self.session.may_log() {
                        tracing::info!(sender = "scp", connection_id = %self.session.id, username = self.session.username(), message = %String::from_utf8_lossy(&text), "the client reported an error");
                    }
                    if fatal {
                        return Err(Stop::Fatal);
                    }
                }
                Control::End => {
                    let Some(dir) = dirs.pop() else {
                        return Err(self.protocol_error("E without a directory").await);
                    };
                    times = None;
                    let res = self.preserve(&dir.path, dir.times, dir.mode).await;
                    self.answer(&dir.path, res).await?;
                }
                Control::Dir { mode, name } => {
                    if dirs.len() >= MAX_DEPTH {
                        let msg = format!("directories nested deeper than {MAX_DEPTH}");
                        return Err(self.protocol_error(msg).await);
                    }
                    let res = match dest(&name) {
                        Ok(path) => self.enter_dir(&path).await.map(|()| path),
                        Err(e) => Err(e),
                    };
                    match res {
                        Ok(path) => {
                            dirs.push(Entered {
                                path,
                                times: times.take(),
                                mode,
                            });
                            self.ack().await?;
                        }
                        Err(e) => {
                            times = None;
                            let shown = dest(&name).unwrap_or_else(|_| target.clone());
                            self.warn(&shown, &e).await?;
                        }
                    }
                }
                Control::File { mode, size, name } => {
                    let t = times.take();
                    match dest(&name) {
                        Ok(path) => self.receive_file(&path, size, t, mode).await?,
                        Err(e) => {
                            // Nothing was acknowledged: the client sends no data.
                            self.warn(&target, &e).await?;
                        }
                    }
                }
            }
        }
    }

    /// A `D` line's directory: an existing one is entered, a missing one created.
    async fn enter_dir(&mut self, path: &VirtualPath) -> Result<(), FsError> {
        let fs = self.session.fs();
        match fs.upload_target(path).await? {
            Some(true) => Ok(()),
            Some(false) => Err(FsError::Failure("Not a directory".into())),
            None => fs.mkdir(path).await,
        }
    }

    /// With `-p`: the times of the `T` line and the mode of the `C`/`D` line, within the
    /// user's permissions (the refusal is the item's answer; the file stays).
    async fn preserve(
        &self,
        path: &VirtualPath,
        times: Option<(u64, u64)>,
        mode: u32,
    ) -> Result<(), FsError> {
        if !self.args.preserve {
            return Ok(());
        }
        let clamp = |t: u64| u32::try_from(t).unwrap_or(u32::MAX);
        let attrs = SetAttrs {
            permissions: Some(mode & 0o777),
            times: times.map(|(m, a)| (clamp(a), clamp(m))),
            ..Default::default()
        };
        self.session.fs().set_attrs(path, attrs).await
    }

    /// The answer to an item: OK, or why not.
    async fn answer(&mut self, path: &VirtualPath, res: Result<(), FsError>) -> Result<(), Stop> {
        match res {
            Ok(()) => self.ack().await,
            Err(e) => self.warn(path, &e).await,
        }
    }

    /// One `C` line: open (refusals here, before the client sends a byte), acknowledge,
    /// take `size` bytes and the client's status, publish or discard, answer.
    async fn receive_file(
        &mut self,
        path: &VirtualPath,
        size: u64,
        times: Option<(u64, u64)>,
        mode: u32,
    ) -> Result<(), Stop> {
        let flags = UploadFlags {
            create: true,
            truncate: true,
            size: Some(size),
            ..Default::default()
        };
        let transfer = match self.session.fs().open_upload(path, flags).await {
            Ok(t) => t,
            Err(e) => return self.warn(path, &e).await,
        };
        if let Err(stop) = self.ack().await {
            let _ = transfer.close(false).await;
            return Err(stop);
        }
        let mut failed: Option<FsError> = None;
        match self.receive_data(&transfer, size, &mut failed).await {
            Ok(()) => {}
            Err(stop) => {
                let _ = transfer.close(false).await;
                return Err(stop);
            }
        }
        // The client's word on its side of the file.
        match self.stream.byte().await {
            Some(0) => {}
            Some(b @ (1 | 2)) => {
                let text = self.message_text().await;
                let what = String::from_utf8_lossy(&text).into_owned();
                failed.get_or_insert(FsError::Failure(format!("the client failed: {what}")));
                if b == 2 {
                    let _ = transfer.close(false).await;
                    return Err(Stop::Fatal);
                }
            }
            None => {
                let _ = transfer.close(false).await;
                return Err(Stop::Fatal);
            }
            Some(other) => {
                let _ = transfer.close(false).await;
                let msg = format!("unexpected byte {other:#04x} after the file data");
                return Err(self.protocol_error(msg).await);
            }
        }
        let closed = transfer.close(failed.is_none()).await;
        let res = match failed.or(closed.err()) {
            None => self.preserve(path, times, mode).await,
            Some(e) => Err(e),
        };
        self.answer(path, res).await
    }

    /// Takes the file's `size` bytes from the stream and writes them in batches; after a
    /// failed write (quota, disk full) the rest is read and dropped, so the exchange can
    /// go on with the next file.
    async fn receive_data(
        &mut self,
        transfer: &Transfer,
        size: u64,
        failed: &mut Option<FsError>,
    ) -> Result<(), Stop> {
        let mut offset = 0u64;
        let mut batch: Vec<Bytes> = Vec::new();
        let mut batch_len = 0usize;
        while offset + (batch_len as u64) < size {
            let want = size - offset - batch_len as u64;
            let Some(chunk) = self
                .stream
                .chunk(usize::try_from(want).unwrap_or(usize::MAX))
                .await
            else {
                if self.session.may_log() {
                    tracing::info!(sender = "scp", connection_id = %self.session.id, username = self.session.username(), path = %transfer.path().display(), received = offset + batch_len as u64, size, "the client ended the stream in the middle of a file");
                }
                return Err(Stop::Fatal);
            };
            self.session.touch();
            batch_len += chunk.len();
            batch.push(chunk);
            let last = offset + batch_len as u64 == size;
            if batch_len >= WRITE_BATCH || last {
                let data = std::mem::take(&mut batch);
                if failed.is_none()
                    && let Err(e) = transfer.write_vectored_at(offset, data).await
                {
                    *failed = Some(write_error(e));
                }
                offset += batch_len as u64;
                batch_len = 0;
            }
        }
        Ok(())
    }

    // ---- source: the client downloads ----

    /// The client's answer to what we sent: `Ok(true)` to go on, `Ok(false)` when it
    /// skipped the item (it reported why).
    async fn response(&mut self) -> Result<bool, Stop> {
        match self.stream.byte().await {
            Some(0) => Ok(true),
            Some(b) => {
                let text = self.message_text().await;
                if b == 1 {
                    self.errors += 1;
                    Ok(false)
                } else {
                    if self.session.may_log() {
                        tracing::info!(sender = "scp", connection_id = %self.session.id, username = self.session.username(), message = %String::from_utf8_lossy(&text), "the client ended the transfer");
                    }
                    Err(Stop::Fatal)
                }
            }
            None => Err(Stop::Fatal),
        }
    }

    async fn source(&mut self) -> Result<(), Stop> {
        // The sink speaks first.
        if !self.response().await? {
            return Err(Stop::Fatal);
        }
        for raw in self.args.paths.clone() {
            let paths = match expand(self.session, &raw).await {
                Ok(p) => p,
                Err(e) => {
                    let shown = VirtualPath::parse(&raw).unwrap_or_else(|_| VirtualPath::root());
                    self.warn(&shown, &e).await?;
                    continue;
                }
            };
            for path in paths {
                self.send_path(&path, 0).await?;
            }
        }
        Ok(())
    }

    /// Sends a file, or with `-r` a directory tree (symlinks followed, as OpenSSH).
    async fn send_path(&mut self, path: &VirtualPath, depth: usize) -> Result<(), Stop> {
        let st = match self.session.fs().stat(path).await {
            Ok(st) => st,
            Err(e) => return self.warn(path, &e).await,
        };
        if st.is_dir() {
            if !self.args.recursive {
                let e = FsError::Failure("not a regular file".into());
                return self.warn(path, &e).await;
            }
            if depth >= MAX_DEPTH {
                let e = FsError::Failure(format!("directories nested deeper than {MAX_DEPTH}"));
                return self.warn(path, &e).await;
            }
            return Box::pin(self.send_dir(path, &st, depth)).await;
        }
        if !st.is_file() {
            let e = FsError::Failure("not a regular file".into());
            return self.warn(path, &e).await;
        }
        self.send_file(path).await
    }

    async fn send_times(&mut self, st: &FileStat) -> Result<bool, Stop> {
        if !self.args.preserve {
            return Ok(true);
        }
        let t = |s: i64| u64::try_from(s).unwrap_or(0);
        self.send(
            Control::Times {
                mtime: t(st.mtime),
                atime: t(st.atime),
            }
            .encode(),
        )
        .await?;
        self.response().await
    }

    async fn send_dir(
        &mut self,
        path: &VirtualPath,
        st: &FileStat,
        depth: usize,
    ) -> Result<(), Stop> {
        let entries = match self.session.fs().read_dir(path).await {
            Ok(e) => e,
            Err(e) => return self.warn(path, &e).await,
        };
        if !self.send_times(st).await? {
            return Ok(());
        }
        let name = path.file_name().unwrap_or(b"/").to_vec();
        self.send(
            Control::Dir {
                mode: st.mode & 0o7777,
                name,
            }
            .encode(),
        )
        .await?;
        if !self.response().await? {
            return Ok(());
        }
        for entry in entries {
            if entry.name == b"." || entry.name == b".." {
                continue;
            }
            match path.join(&entry.name) {
                Ok(child) => self.send_path(&child, depth + 1).await?,
                Err(e) => self.warn(path, &e.into()).await?,
            }
        }
        self.send(Control::End.encode()).await?;
        self.response().await.map(|_| ())
    }

    async fn send_file(&mut self, path: &VirtualPath) -> Result<(), Stop> {
        let fs = self.session.fs();
        let transfer = match fs.open_download(path).await {
            Ok(t) => t,
            Err(e) => return self.warn(path, &e).await,
        };
        let res = self.send_opened(path, &transfer).await;
        let completed = matches!(res, Ok(true));
        let _ = transfer.close(completed).await;
        res.map(|_| ())
    }

    /// Sends an open file: `T`, `C`, the data, our status. `Ok(false)` when it was not
    /// (all) sent but the exchange goes on.
    async fn send_opened(&mut self, path: &VirtualPath, transfer: &Transfer) -> Result<bool, Stop> {
        let st = match transfer.stat().await {
            Ok(st) => st,
            Err(e) => return self.warn(path, &e).await.map(|()| false),
        };
        if !self.send_times(&st).await? {
            return Ok(false);
        }
        let name = path.file_name().unwrap_or(b"file").to_vec();
        let size = st.size;
        self.send(
            Control::File {
                mode: st.mode & 0o7777,
                size,
                name,
            }
            .encode(),
        )
        .await?;
        if !self.response().await? {
            return Ok(false);
        }
        // Reads run ahead of sends by one chunk: the disk and the client's window are
        // waited for at the same time.
        let read = |offset: u64| {
            let len = (size - offset).min(READ_CHUNK as u64) as usize;
            let buf = BytesMut::with_capacity(transfer.read_capacity(offset, len).max(len));
            async move {
                if len == 0 {
                    return (buf, Ok(0));
                }
                transfer.read_at(offset, len, buf).await
            }
        };
        let mut offset = 0u64;
        let mut error: Option<FsError> = None;
        let mut next = read(0).await;
        while offset < size {
            let (mut buf, res) = next;
            let n = match res {
                Ok(n) if n > 0 => n,
                // The file shrank, or cannot be read: the client still gets `size` bytes
                // (zeros), then our error instead of the OK.
                Ok(_) => {
                    error.get_or_insert(FsError::Failure(
                        "file changed size while being sent".into(),
                    ));
                    0
                }
                Err(e) => {
                    error.get_or_insert(FsError::Failure(e.to_string()));
                    0
                }
            };
            if n == 0 {
                let fill = (size - offset).min(READ_CHUNK as u64) as usize;
                buf.clear();
                buf.resize(fill, 0);
            }
            buf.truncate(((size - offset) as usize).min(buf.len()));
            let sent_len = buf.len() as u64;
            let data = buf.freeze();
            let after = offset + sent_len;
            let (sent, following) = if error.is_none() && after < size {
                let (sent, following) = tokio::join!(self.stream.send(data), read(after));
                (sent, following)
            } else {
                (self.stream.send(data).await, (BytesMut::new(), Ok(0)))
            };
            if !sent {
                return Err(Stop::Fatal);
            }
            self.session.touch();
            next = following;
            offset = after;
        }
        match error {
            None => {
                self.ack().await?;
                self.response().await
            }
            Some(e) => {
                self.warn(path, &e).await?;
                Ok(false)
            }
        }
    }
}

/// An I/O error of a write, as the client should see it.
fn write_error(e: std::io::Error) -> FsError {
    FsError::Failure(e.to_string())
}

/// A source path as a shell would give it to `scp -f`: itself when it names something
/// (or has no wildcard), else the paths its wildcards (`*`, `?`, `[...]`) match, sorted,
/// expanded beneath the home through the session's view (the list permission applies).
async fn expand(session: &ProtocolSession, raw: &[u8]) -> Result<Vec<VirtualPath>, FsError> {
    let fs = session.fs();
    let literal = fs.resolve(raw)?;
    if !raw.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
        return Ok(vec![literal]);
    }
    if fs.stat(&literal).await.is_ok() {
        return Ok(vec![literal]);
    }
    let mut candidates = vec![VirtualPath::root()];
    let mut listings = 0;
    for component in literal.components() {
        let pattern = match glob_matcher(component) {
            Some(m) => m,
            None => {
                candidates = candidates
                    .iter()
                    .filter_map(|c| c.join(component).ok())
                    .collect();
                continue;
            }
        };
        let hidden_ok = component.starts_with(b".");
        let mut next = Vec::new();
        for dir in &candidates {
            listings += 1;
            if listings > MAX_LISTINGS {
                return Err(FsError::Failure(format!(
                    "wildcard lists more than {MAX_LISTINGS} directories"
                )));
            }
            let Ok(entries) = fs.read_dir(dir).await else {
                continue;
            };
            for entry in entries {
                if entry.name == b"." || entry.name == b".." {
                    continue;
                }
                if entry.name.starts_with(b".") && !hidden_ok {
                    continue;
                }
                if pattern.is_match(std::ffi::OsStr::from_bytes(&entry.name)) {
                    next.push(dir.join(&entry.name)?);
                    if next.len() > MAX_MATCHES {
                        return Err(FsError::Failure(format!(
                            "wildcard matches more than {MAX_MATCHES} paths"
                        )));
                    }
                }
            }
        }
        candidates = next;
    }
    if candidates.is_empty() {
        return Err(FsError::NotFound);
    }
    candidates.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(candidates)
}

/// A matcher for a path component with wildcards; `None` when it has none (or cannot be
/// a pattern: not UTF-8, or malformed, which is then taken literally).
fn glob_matcher(component: &[u8]) -> Option<globset::GlobMatcher> {
    if !component.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
        return None;
    }
    let text = std::str::from_utf8(component).ok()?;
    globset::GlobBuilder::new(text)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .ok()
        .map(|g| g.compile_matcher())
}
