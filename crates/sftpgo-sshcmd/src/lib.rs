//! SCP (`scp -O`, the legacy protocol) and the SSH commands clients use to verify
//! transfers (`md5sum` & co., `cd`, `pwd`), served over one SSH channel's byte stream.
//!
//! Like the SFTP adapter, these only translate: every file operation goes through the
//! session's [`sftpgo_core::UserFs`] (permissions, confinement beneath the home, quota,
//! atomic uploads, throttling, logs, actions). Nothing here runs a shell: a command line
//! is split into words ([`shlex`]) and only the commands below are recognised.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use sftpgo_core::{HashAlgorithm, Protocol, ProtocolSession};

mod hash;
pub mod scp;
pub mod stream;

pub use stream::Stream;

/// One SSH channel's byte stream, as the transport gives it.
pub trait ByteChannel: Send {
    /// The next bytes the client sent; `None` once it sent EOF or closed the channel, or
    /// the connection ended.
    fn recv(&mut self) -> impl Future<Output = Option<Bytes>> + Send;
    /// Sends bytes on the channel (stdout); false once they cannot be sent (the client or
    /// the connection is gone).
    fn send(&mut self, data: Bytes) -> impl Future<Output = bool> + Send;
    /// Sends bytes as the channel's stderr (extended data).
    fn send_stderr(&mut self, data: Bytes) -> impl Future<Output = bool> + Send;
}

/// The commands an operator enables (`sftpd.enabled_ssh_commands`, `sftpd.enable_scp`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnabledCommands {
    names: Vec<&'static str>,
}

/// Every command this server can run, by name.
pub const SUPPORTED: [&str; 9] = [
    "scp",
    "md5sum",
    "sha1sum",
    "sha224sum",
    "sha256sum",
    "sha384sum",
    "sha512sum",
    "cd",
    "pwd",
];

/// A name in `enabled_ssh_commands` that is not a supported command.
#[derive(Debug, thiserror::Error)]
#[error("unknown SSH command {name:?} (supported: {}, or \"*\" for all)", SUPPORTED.join(", "))]
pub struct UnknownCommand {
    pub name: String,
}

impl EnabledCommands {
    /// From the config: the listed names (`*` = all), plus SCP when `enable_scp`.
    pub fn new<S: AsRef<str>>(names: &[S], enable_scp: bool) -> Result<Self, UnknownCommand> {
        let mut enabled = Vec::new();
        for name in names {
            let name = name.as_ref().trim();
            if name == "*" {
                enabled.extend(SUPPORTED);
                continue;
            }
            match SUPPORTED.iter().find(|s| **s == name) {
                Some(s) => enabled.push(*s),
                None => {
                    return Err(UnknownCommand {
                        name: name.to_string(),
                    });
                }
            }
        }
        if enable_scp {
            enabled.push("scp");
        }
        enabled.sort_unstable();
        enabled.dedup();
        Ok(Self { names: enabled })
    }

    pub fn is_enabled(&self, name: &str) -> bool {
        self.names.contains(&name)
    }

    pub fn names(&self) -> &[&'static str] {
        &self.names
    }
}

/// A command line the server will run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Scp(scp::ScpArgs),
    /// `<algorithm>sum [FILE]...`; no file (or `-`) hashes what the client sends.
    Hash {
        algorithm: HashAlgorithm,
        paths: Vec<Vec<u8>>,
    },
    Cd,
    Pwd,
}

/// Why a command line is not run; the client gets [`Refusal::message`] on stderr and
/// [`Refusal::exit_status`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("command {0:?} is not supported")]
    Unknown(String),
    #[error("command {0:?} is not enabled on this server")]
    Disabled(String),
    #[error("{0}")]
    Malformed(String),
}

impl Refusal {
    /// As a shell: 127 for a command that does not exist, 1 otherwise.
    pub fn exit_status(&self) -> u32 {
        match self {
            Refusal::Unknown(_) => 127,
            Refusal::Disabled(_) | Refusal::Malformed(_) => 1,
        }
    }
}

/// Longest command line taken (OpenSSH's `ARG_MAX`-like bound; a client cannot make the
/// server split megabytes).
pub const MAX_COMMAND_LINE: usize = 64 * 1024;

impl Command {
    /// Parses an `exec` request's command line.
    pub fn parse(line: &[u8], enabled: &EnabledCommands) -> Result<Command, Refusal> {
        if line.len() > MAX_COMMAND_LINE {
            return Err(Refusal::Malformed(format!(
                "command line longer than {MAX_COMMAND_LINE} bytes"
            )));
        }
        if line.contains(&0) {
            return Err(Refusal::Malformed(
                "command line contains a NUL byte".into(),
            ));
        }
        let words = shlex::bytes::split(line)
            .ok_or_else(|| Refusal::Malformed("unbalanced quotes in the command line".into()))?;
        let Some((name, args)) = words.split_first() else {
            return Err(Refusal::Malformed("empty command line".into()));
        };
        let name_str = String::from_utf8_lossy(name).into_owned();
        let Some(known) = SUPPORTED.iter().find(|s| s.as_bytes() == name.as_slice()) else {
            return Err(Refusal::Unknown(name_str));
        };
        if !enabled.is_enabled(known) {
            return Err(Refusal::Disabled(name_str));
        }
        match *known {
            "scp" => scp::ScpArgs::parse(args)
                .map(Command::Scp)
                .map_err(Refusal::Malformed),
            "cd" => Ok(Command::Cd),
            "pwd" => Ok(Command::Pwd),
            hash => {
                let algorithm = HashAlgorithm::from_name(hash.trim_end_matches("sum").as_bytes())
                    .ok_or_else(|| Refusal::Unknown(name_str.clone()))?;
                hash::parse_args(args).map(|paths| Command::Hash { algorithm, paths })
            }
        }
    }

    /// The protocol the session running it is listed under.
    pub fn protocol(&self) -> Protocol {
        match self {
            Command::Scp(_) => Protocol::Scp,
            _ => Protocol::Ssh,
        }
    }

    /// The name logs give the command.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Scp(_) => "scp",
            Command::Hash { algorithm, .. } => match algorithm {
                HashAlgorithm::Md5 => "md5sum",
                HashAlgorithm::Sha1 => "sha1sum",
                HashAlgorithm::Sha224 => "sha224sum",
                HashAlgorithm::Sha256 => "sha256sum",
                HashAlgorithm::Sha384 => "sha384sum",
                HashAlgorithm::Sha512 => "sha512sum",
            },
            Command::Cd => "cd",
            Command::Pwd => "pwd",
        }
    }
}

/// Runs `command` for `session` over `channel`; returns the exit status to report.
pub async fn run<C: ByteChannel>(
    session: Arc<ProtocolSession>,
    command: Command,
    channel: C,
) -> u32 {
    let mut stream = Stream::new(channel);
    tracing::debug!(sender = command.name(), connection_id = %session.id, username = session.username(), "SSH command started");
    let status = match command {
        Command::Scp(args) => scp::run(&session, args, &mut stream).await,
        Command::Hash { algorithm, paths } => {
            hash::run(&session, algorithm, &paths, &mut stream).await
        }
        // As SFTPGo 2.x: the session's directory is always the root of its view.
        Command::Cd => 0,
        Command::Pwd => {
            if stream.send(Bytes::from_static(b"/\n")).await {
                0
            } else {
                1
            }
        }
    };
    session.touch();
    status
}

#[cfg(test)]
mod tests;
