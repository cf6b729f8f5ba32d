//! The `sftpgo` binary's library half: CLI, logging, the SSH server and the wiring
//! that starts everything. `main.rs` only parses the CLI and calls [`service::run`].

pub mod algorithms;
pub mod api_client;
pub mod cli;
pub mod conn_threads;
pub mod hostkeys;
pub mod log_writer;
pub mod logging;
pub mod read_ahead;
pub mod service;
pub mod sshd;
pub mod version;
