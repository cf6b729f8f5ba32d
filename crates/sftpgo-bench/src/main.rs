//! `sftpbench`: one pipelined SFTP workload against a server, timed. Prints
//! `<seconds> <bytes> <files>` on one line (the time excludes connect and login).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use sftpgo_bench::{Session, Target};

#[derive(Parser)]
#[command(about = "Pipelining SFTP client for bench/run.sh")]
struct Cli {
    /// Server address, e.g. 127.0.0.1:2022
    #[arg(long)]
    addr: SocketAddr,
    #[arg(long)]
    user: String,
    /// OpenSSH private key file (no passphrase)
    #[arg(long)]
    key: PathBuf,
    /// SSH cipher, e.g. aes128-gcm@openssh.com (default: russh's preference)
    #[arg(long)]
    cipher: Option<String>,
    /// Files (small-*) or requests (put/get) in flight at once
    #[arg(long, default_value_t = 64)]
    inflight: usize,
    #[command(subcommand)]
    op: Op,
}

#[derive(Subcommand)]
enum Op {
    /// Upload DIR/f1..DIR/fCOUNT of SIZE bytes each (DIR is created)
    SmallPut {
        dir: String,
        count: usize,
        size: usize,
    },
    /// Download DIR/f1..DIR/fCOUNT, each must hold SIZE bytes
    SmallGet {
        dir: String,
        count: usize,
        size: u64,
    },
    /// Upload a local file
    Put {
        local: PathBuf,
        remote: String,
        #[arg(long, default_value_t = 64 << 10)]
        chunk: usize,
    },
    /// Download a remote file, discarding the data
    Get {
        remote: String,
        #[arg(long, default_value_t = 64 << 10)]
        chunk: u32,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let key = russh::keys::load_secret_key(&cli.key, None)
        .with_context(|| format!("loading {}", cli.key.display()))?;
    let target = Target {
        addr: cli.addr,
        user: cli.user,
        key,
        cipher: cli.cipher,
    };
    let mut s = Session::connect(&target).await?;
    let started = Instant::now();
    let (bytes, files) = match cli.op {
        Op::SmallPut { dir, count, size } => {
            s.mkdir(&dir).await?;
            let data = Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<_>>());
            s.put_files(&dir, count, &data, cli.inflight).await?;
            ((count * size) as u64, count)
        }
        Op::SmallGet { dir, count, size } => {
            (s.get_files(&dir, count, size, cli.inflight).await?, count)
        }
        Op::Put {
            local,
            remote,
            chunk,
        } => (s.put_stream(&local, &remote, chunk, cli.inflight).await?, 1),
        Op::Get { remote, chunk } => (s.get_stream(&remote, chunk, cli.inflight).await?, 1),
    };
    println!("{:.6} {bytes} {files}", started.elapsed().as_secs_f64());
    Ok(())
}
