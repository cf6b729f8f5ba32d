//! Connection threads: each SSH connection lives on one thread, from accept to close, in
//! that thread's single-threaded tokio runtime.
//!
//! Why not the multi-threaded runtime: a request's tasks (SSH session, SFTP framing,
//! request, reply writer) wake each other, and the work-stealing scheduler answers many
//! of those wakes by waking an idle worker on the other core, which steals the task;
//! a metadata request then crosses cores several times. On this 2-vCPU VM that was ~3
//! of the ~18 context switches per uploaded small file, and every one is a wakeup
//! latency in the client's round trip. One thread per connection keeps a request on one
//! core; connections are spread over the threads (fewest live connections first), so
//! parallel sessions still use every core. File I/O still goes to the blocking pool.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// The process's connection threads.
pub struct ConnectionThreads {
    threads: Vec<ConnThread>,
}

struct ConnThread {
    handle: tokio::runtime::Handle,
    /// Connections running on it.
    live: Arc<AtomicUsize>,
}

/// Decrements a thread's connection count when the connection's future ends, however
/// it ends.
struct Live(Arc<AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        if self.0.fetch_sub(1, Ordering::Relaxed) == 1 {
            release_freed_memory();
        }
    }
}

/// Gives the memory the allocator keeps after a burst of connections back to the system,
/// when a thread's last connection ends: at most every 2 s, and once more 2 s after the
/// last time it was skipped. glibc returns freed memory of its per-thread arenas only from
/// their top: after 1,000 connections stalled before their handshake left, the server kept
/// 25 MiB it no longer used (bench/hostile.sh).
fn release_freed_memory() {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(2);
    static LAST: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
    static PENDING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(wait) = last.and_then(|t| EVERY.checked_sub(t.elapsed())) {
        if let Ok(rt) = tokio::runtime::Handle::try_current()
            && !PENDING.swap(true, Ordering::AcqRel)
        {
            rt.spawn(async move {
                tokio::time::sleep(wait).await;
                PENDING.store(false, Ordering::Release);
                release_freed_memory();
            });
        }
        return;
    }
    *last = Some(std::time::Instant::now());
    // SAFETY: malloc_trim only releases free memory; any thread may call it.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl ConnectionThreads {
    /// Created on first use, one thread per CPU, and never stopped: database connections
    /// a login opens from a connection thread stay registered with that thread's
    /// reactor, so the threads must outlive every pool (and every server instance a
    /// test starts in the same process).
    pub fn global() -> &'static ConnectionThreads {
        static THREADS: OnceLock<ConnectionThreads> = OnceLock::new();
        THREADS.get_or_init(|| {
            let n = std::thread::available_parallelism().map_or(2, |n| n.get());
            ConnectionThreads::start(n).expect("cannot start the connection threads")
        })
    }

    fn start(n: usize) -> std::io::Result<Self> {
        let mut threads = Vec::with_capacity(n);
        for i in 0..n.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name(format!("sftpgo-io-{i}"))
                .build()?;
            let handle = runtime.handle().clone();
            std::thread::Builder::new()
                .name(format!("sftpgo-conn-{i}"))
                .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
            threads.push(ConnThread {
                handle,
                live: Arc::new(AtomicUsize::new(0)),
            });
        }
        Ok(Self { threads })
    }

    /// Runs `fut` on the thread with the fewest live connections. Resources the future
    /// creates when it runs (a `TcpStream` from a std socket) register with that
    /// thread's reactor.
    pub fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let thread = self
            .threads
            .iter()
            .min_by_key(|t| t.live.load(Ordering::Relaxed))
            .expect("at least one connection thread");
        thread.live.fetch_add(1, Ordering::Relaxed);
        let live = Live(thread.live.clone());
        // Boxed: an async block keeps what it captured for its whole life, so awaiting a
        // captured `fut` would hold it twice (captured and being awaited), and this task
        // lives as long as the connection.
        let fut = Box::pin(fut);
        thread.handle.spawn(async move {
            let _live = live;
            fut.await
        })
    }

    #[cfg(test)]
    fn live(&self) -> Vec<usize> {
        self.threads
            .iter()
            .map(|t| t.live.load(Ordering::Relaxed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_spread_over_threads_and_are_counted_until_they_end() {
        let threads = ConnectionThreads::start(2).unwrap();
        let (release_tx, release_rx) = tokio::sync::watch::channel(false);
        let mut names = Vec::new();
        let mut joins = Vec::new();
        for _ in 0..4 {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let mut release = release_rx.clone();
            joins.push(threads.spawn(async move {
                let _ = tx.send(std::thread::current().name().map(str::to_owned));
                let _ = release.wait_for(|r| *r).await;
            }));
            names.push(rx.await.unwrap().unwrap());
        }
        assert_eq!(threads.live(), vec![2, 2]);
        names.sort();
        assert_eq!(
            names,
            [
                "sftpgo-conn-0",
                "sftpgo-conn-0",
                "sftpgo-conn-1",
                "sftpgo-conn-1"
            ]
        );
        release_tx.send(true).unwrap();
        for j in joins {
            j.await.unwrap();
        }
        assert_eq!(threads.live(), vec![0, 0]);
        // A connection that panics is not counted any more either.
        let j = threads.spawn(async { panic!("connection failed") });
        assert!(j.await.is_err());
        assert_eq!(threads.live(), vec![0, 0]);
    }
}
