//! `md5sum`, `sha1sum`, ... as GNU coreutils print them (`<hex>  <name>`), so clients
//! that verify transfers with them (rclone, WinSCP, scripts) read our output as theirs.

use bytes::Bytes;
use sftpgo_core::{FsError, HashAlgorithm, HashRange, ProtocolSession};

use crate::{ByteChannel, Refusal, Stream};

/// The files of a hash command line (`-` = what the client sends); `--`, and the options
/// that mean nothing on Unix (`-b`, `-t`, `--binary`, `--text`), are accepted.
pub(crate) fn parse_args(args: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, Refusal> {
    let mut paths = Vec::new();
    let mut options_done = false;
    for arg in args {
        if options_done || arg.as_slice() == b"-" || !arg.starts_with(b"-") {
            paths.push(arg.clone());
            continue;
        }
        match arg.as_slice() {
            b"--" => options_done = true,
            b"-b" | b"-t" | b"--binary" | b"--text" => {}
            other => {
                return Err(Refusal::Malformed(format!(
                    "unsupported option {:?}",
                    String::from_utf8_lossy(other)
                )));
            }
        }
    }
    Ok(paths)
}

/// One output line as coreutils writes it: a name with `\` or a newline is escaped and
/// the line starts with `\`.
pub(crate) fn format_line(digest: &[u8], name: &[u8]) -> Vec<u8> {
    let escape = name.iter().any(|&b| b == b'\\' || b == b'\n');
    let mut line = Vec::with_capacity(digest.len() * 2 + name.len() + 4);
    if escape {
        line.push(b'\\');
    }
    line.extend_from_slice(hex::encode(digest).as_bytes());
    line.extend_from_slice(b"  ");
    for &b in name {
        match b {
            b'\\' if escape => line.extend_from_slice(b"\\\\"),
            b'\n' => line.extend_from_slice(b"\\n"),
            b => line.push(b),
        }
    }
    line.push(b'\n');
    line
}

/// Reasons as coreutils words them.
fn reason(e: &FsError) -> String {
    match e {
        FsError::NotFound => "No such file or directory".into(),
        FsError::PermissionDenied(_) => "Permission denied".into(),
        other => other.to_string(),
    }
}

pub(crate) async fn run<C: ByteChannel>(
    session: &ProtocolSession,
    algorithm: HashAlgorithm,
    paths: &[Vec<u8>],
    stream: &mut Stream<C>,
) -> u32 {
    let stdin: [Vec<u8>; 1] = [b"-".to_vec()];
    let paths = if paths.is_empty() { &stdin[..] } else { paths };
    let command = format!("{}sum", algorithm.name());
    let mut status = 0;
    for name in paths {
        let digest = if name.as_slice() == b"-" {
            hash_input(session, algorithm, stream).await
        } else {
            hash_file(session, algorithm, name).await
        };
        let sent = match digest {
            Ok(d) => stream.send(Bytes::from(format_line(&d, name))).await,
            Err(e) => {
                status = 1;
                let msg = format!(
                    "{command}: {}: {}\n",
                    String::from_utf8_lossy(name).replace('\n', "?"),
                    reason(&e)
                );
                stream.send_stderr(Bytes::from(msg)).await
            }
        };
        if !sent {
            return 1;
        }
    }
    status
}

async fn hash_file(
    session: &ProtocolSession,
    algorithm: HashAlgorithm,
    name: &[u8],
) -> Result<Vec<u8>, FsError> {
    let fs = session.fs();
    let path = fs.resolve(name)?;
    let mut hashes = fs.checksum(&path, algorithm, HashRange::default()).await?;
    hashes
        .pop()
        .ok_or_else(|| FsError::Failure("no digest".into()))
}

/// The hash of everything the client sends until EOF (streamed: nothing is kept).
async fn hash_input<C: ByteChannel>(
    session: &ProtocolSession,
    algorithm: HashAlgorithm,
    stream: &mut Stream<C>,
) -> Result<Vec<u8>, FsError> {
    session.fs().may_hash_input()?;
    let mut hasher = algorithm.hasher();
    while let Some(chunk) = stream.chunk(usize::MAX).await {
        hasher.update(&chunk);
        session.touch();
    }
    Ok(hasher.finish())
}
