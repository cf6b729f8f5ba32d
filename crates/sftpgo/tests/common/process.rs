//! The real `sftpgo` binary as a child process: a guard that never lets it outlive a
//! test, and the addresses it announces in its JSON log.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Kills the server if the test fails before stopping it, so no process outlives a test.
pub struct KillOnDrop(pub Child);

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Waits (at most a minute) for the JSON log line `message` and returns its `address`.
pub fn wait_for_address(log: &Path, child: &mut Child, message: &str) -> SocketAddr {
    try_wait_for_address(log, child, message).unwrap_or_else(|e| panic!("{e}"))
}

/// [`wait_for_address`], returning why not (the server exited, with its log; no such line
/// within 60 s) instead of panicking.
pub fn try_wait_for_address(
    log: &Path,
    child: &mut Child,
    message: &str,
) -> Result<SocketAddr, String> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(text) = std::fs::read_to_string(log) {
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).expect("log lines are JSON");
                if v["message"] == message {
                    return Ok(v["address"].as_str().unwrap().parse().unwrap());
                }
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            return Err(format!(
                "server exited early: {status}\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("no log line {message:?}"))
}

pub fn send_signal(pid: u32, sig: i32) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Sends SIGTERM and waits (at most 30 s) for the process to exit; returns whether it
/// exited successfully.
pub fn terminate(child: &mut KillOnDrop) -> bool {
    send_signal(child.id(), libc::SIGTERM);
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.success();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
