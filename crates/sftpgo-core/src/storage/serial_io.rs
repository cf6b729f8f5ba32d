//! A session's blocking filesystem work (lookups that need the disk, opens, creates, its
//! transfers' reads and writes) run in submission order on at most one blocking thread at
//! a time.
//!
//! Why one thread, drained in a loop: a client keeping 64 requests in flight then costs
//! one thread handoff per burst rather than one per request (a handoff is two context
//! switches, more than a small request's own work; perf of 2000 small files uploaded 64 at
//! a time: 2.2 instead of 2.7 server context switches per file with a queue per open file,
//! and 0.3 instead of 2.7 futex calls), and the requests do not fight over kernel locks
//! they would take in turn anyway: concurrent `pwrite`s of one file spin on its inode
//! lock, concurrent creates in one directory on the directory's. Order also keeps a
//! client's pipelined requests meaning what it sent (a MKDIR before the OPEN of a file
//! inside it): `UserFs` submits each request's filesystem work, probes included (RENAME,
//! REMOVE), as one job before it first waits. (Not yet so: an upload OPEN under a quota
//! reads the usage from the data provider first; SETSTAT of a size stats, then checks
//! the quota, then truncates.) Sessions run in parallel; within one, work is serial, as in OpenSSH's
//! sftp-server (clients move files in parallel over several connections: OpenSSH's
//! `sftp -R` pipelines within one file, WinSCP, FileZilla and rclone open more).

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Results of jobs done in one drain are handed back together, up to this many ...
///
/// Why 16, a fraction of what a pipelining client keeps in flight (64 requests with
/// sftpbench and with OpenSSH's `sftp` within one file): while the connection's thread and
/// the client answer one batch, this thread goes on with the rest of the queue. With 64,
/// a burst came back as one batch and the two sides took turns (a pipelined put of 6000
/// x 4 KiB: the I/O thread busy 190 of 270 ms). With 16: 13-20% more files/s on that
/// put at 5% more CPU per file, gets unchanged (10 alternating rounds, 2026-12-07).
const BATCH_MAX: usize = 16;
/// ... or once the first of them has waited this long.
const BATCH_WAIT: Duration = Duration::from_millis(1);

/// A queued job: run on the blocking thread, then its result delivered (possibly later,
/// with others: see [`Shared::drain`]).
trait Job<R>: Send {
    fn run(&mut self, resource: &R);
    /// May wait long (fsync): results finished before it are handed back before it runs.
    fn long(&self) -> bool;
    /// Hands the result to the waiting request (none if `run` panicked, which fails
    /// it). False when nobody waits any more.
    fn deliver(self: Box<Self>) -> bool;
}

struct Call<F, T> {
    f: Option<F>,
    long: bool,
    result: Option<io::Result<T>>,
    tx: tokio::sync::oneshot::Sender<io::Result<T>>,
}

impl<R, F, T> Job<R> for Call<F, T>
where
    F: FnOnce(&R) -> io::Result<T> + Send,
    T: Send,
{
    fn run(&mut self, resource: &R) {
        if let Some(f) = self.f.take() {
            self.result = Some(f(resource));
        }
    }

    fn long(&self) -> bool {
        self.long
    }

    fn deliver(self: Box<Self>) -> bool {
        match self.result {
            Some(result) => self.tx.send(result).is_ok(),
            None => !self.tx.is_closed(),
        }
    }
}

struct Queue<R> {
    jobs: VecDeque<Box<dyn Job<R>>>,
    /// A blocking task is draining `jobs` (or delivering their results).
    running: bool,
    /// Finished jobs whose results wait for the first of their batch's requests to
    /// hand them over (see [`Shared::hand_back`]).
    ready: Vec<Box<dyn Job<R>>>,
}

struct Shared<R> {
    resource: R,
    queue: Mutex<Queue<R>>,
}

/// See the module doc. Cheap to clone: clones share the resource and the queue.
pub(crate) struct SerialIo<R> {
    shared: Arc<Shared<R>>,
}

impl<R> Clone for SerialIo<R> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<R: Send + Sync + 'static> SerialIo<R> {
    pub(crate) fn new(resource: R) -> Self {
        Self {
            shared: Arc::new(Shared {
                resource,
                queue: Mutex::new(Queue {
                    jobs: VecDeque::new(),
                    running: false,
                    ready: Vec::new(),
                }),
            }),
        }
    }

    /// The resource the jobs work on (for work that must not wait for the queue: the
    /// cleanup of a dropped file).
    pub(crate) fn resource(&self) -> &R {
        &self.shared.resource
    }

    /// Runs `f` on the blocking pool after the work queued before it.
    pub(crate) async fn run<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&R) -> io::Result<T> + Send + 'static,
    {
        self.submit(f, false).await
    }

    /// [`SerialIo::run`] for work that may wait long (fsync): results of work finished
    /// before it are handed back before it starts, not after (see [`Shared::drain`]).
    pub(crate) async fn run_long<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&R) -> io::Result<T> + Send + 'static,
    {
        self.submit(f, true).await
    }

    async fn submit<T, F>(&self, f: F, long: bool) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&R) -> io::Result<T> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Box<dyn Job<R>> = Box::new(Call {
            f: Some(f),
            long,
            result: None,
            tx,
        });
        let start = {
            let mut q = self.shared.lock();
            q.jobs.push_back(job);
            !std::mem::replace(&mut q.running, true)
        };
        if start {
            let shared = self.shared.clone();
            tokio::task::spawn_blocking(move || shared.drain());
        }
        ReadyFirst {
            rx,
            shared: &self.shared,
        }
        .await
        .map_err(|_| io::Error::other("internal error: the I/O task ended"))?
    }

    /// Runs `f` on this thread, if no work is queued or running (the queue stays locked
    /// meanwhile, so none starts and order is kept); `None` otherwise. Only for calls
    /// that never wait for the disk (`fstat`, `RWF_NOWAIT` reads): they skip the handoff,
    /// which costs a small request more than the call itself.
    pub(crate) fn now_if_idle<T>(&self, f: impl FnOnce(&R) -> T) -> Option<T> {
        let q = self.shared.lock();
        if q.running || !q.jobs.is_empty() {
            return None;
        }
        let res = f(&self.shared.resource);
        drop(q);
        Some(res)
    }
}

impl<R> Shared<R> {
    fn lock(&self) -> MutexGuard<'_, Queue<R>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs queued work until none is left. A job that panics only fails its own request
    /// (its result sender is dropped).
    ///
    /// Results are handed back in batches: when the queue runs dry, or [`BATCH_MAX`]
    /// results or [`BATCH_WAIT`] after the first. Why: each hand-back wakes the
    /// connection's thread, which then answers at once; one by one, a client keeping
    /// 64 small files in flight got each reply in its own TCP segment (~3 `sendto` and 3
    /// wakeups per file, a third of the connection thread's time). Together, the replies
    /// leave in one write, as OpenSSH's single loop sends them. A lone request is not
    /// delayed: the queue is dry right after it. A result waits at most for the jobs
    /// that follow it in its burst, short ones: before a long one (fsync) the batch
    /// goes back.
    fn drain(&self) {
        let mut done: Vec<Box<dyn Job<R>>> = Vec::new();
        let mut first_done = Instant::now();
        loop {
            let next = {
                let mut q = self.lock();
                let due = !done.is_empty()
                    && (done.len() >= BATCH_MAX
                        || first_done.elapsed() >= BATCH_WAIT
                        || q.jobs.front().is_some_and(|job| job.long()));
                match q.jobs.pop_front() {
                    Some(job) if !due => Some(job),
                    Some(job) => {
                        q.jobs.push_front(job);
                        None
                    }
                    None if done.is_empty() => {
                        q.running = false;
                        return;
                    }
                    None => None,
                }
            };
            let Some(mut job) = next else {
                // Delivered outside the lock; `running` stays set, so nothing queued
                // meanwhile can overtake these results (`now_if_idle` waits too).
                self.hand_back(&mut done);
                continue;
            };
            let resource = &self.resource;
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(resource)));
            if done.is_empty() {
                first_done = Instant::now();
            }
            done.push(job);
        }
    }

    /// Hands a batch of results back with one wakeup: the first is sent from here (a
    /// wakeup of the connection's thread: an eventfd write), the rest wait in `ready`
    /// and the first request hands them over on its own thread (local wakeups, no
    /// syscall). One by one, that was ~3 eventfd writes per small file uploaded.
    /// Should nobody wait for the first result, this thread hands over the rest.
    fn hand_back(&self, done: &mut Vec<Box<dyn Job<R>>>) {
        let mut batch = done.drain(..);
        let Some(first) = batch.next() else { return };
        self.lock().ready.extend(batch);
        if !first.deliver() {
            self.deliver_ready();
        }
    }

    /// Hands over the results waiting in `ready`.
    fn deliver_ready(&self) {
        let ready = std::mem::take(&mut self.lock().ready);
        for job in ready {
            job.deliver();
        }
    }
}

/// A request's wait for its result, which also hands over the results finished in the
/// same batch after it (see [`Shared::hand_back`]) when it ends: dropped once its result
/// is taken, or cancelled.
struct ReadyFirst<'a, R, T> {
    rx: tokio::sync::oneshot::Receiver<io::Result<T>>,
    shared: &'a Shared<R>,
}

impl<R, T> std::future::Future for ReadyFirst<'_, R, T> {
    type Output = Result<io::Result<T>, tokio::sync::oneshot::error::RecvError>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        // The hand-over happens in `drop`, right after the result is taken.
        std::pin::Pin::new(&mut self.get_mut().rx).poll(cx)
    }
}

impl<R, T> Drop for ReadyFirst<'_, R, T> {
    /// Closed first: a result sent after this fails to send, and the I/O thread then
    /// hands over the rest itself; one sent before was queued with its batch before.
    fn drop(&mut self) {
        self.rx.close();
        self.shared.deliver_ready();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Current-thread runtime: spawned tasks first run in spawn order, so they submit
    /// their jobs in that order.
    #[tokio::test]
    async fn work_runs_in_order_one_job_at_a_time_and_survives_a_panic() {
        let io = SerialIo::new((Mutex::new(Vec::new()), AtomicUsize::new(0)));
        let mut waits = Vec::new();
        for i in 0..200usize {
            let io2 = io.clone();
            waits.push(tokio::spawn(async move {
                io2.run(move |(log, busy): &(Mutex<Vec<usize>>, AtomicUsize)| {
                    assert_eq!(busy.fetch_add(1, Ordering::SeqCst), 0, "two jobs at once");
                    std::thread::sleep(std::time::Duration::from_micros(50));
                    log.lock().unwrap().push(i);
                    busy.fetch_sub(1, Ordering::SeqCst);
                    if i == 100 {
                        panic!("job 100 panics");
                    }
                    Ok(i)
                })
                .await
            }));
        }
        let mut failed = Vec::new();
        for (i, w) in waits.into_iter().enumerate() {
            match w.await.unwrap() {
                Ok(v) => assert_eq!(v, i),
                Err(_) => failed.push(i),
            }
        }
        assert_eq!(failed, vec![100], "only the panicking job fails");
        // (Through the queue: right after handing results back, the I/O thread may not
        // yet have marked it idle.)
        let log = io
            .run(|(log, _)| Ok(log.lock().unwrap().clone()))
            .await
            .unwrap();
        assert_eq!(log.len(), 200);
        let mut sorted = log.clone();
        sorted.sort();
        assert_eq!(log, sorted, "jobs ran in submission order");
    }

    /// Results come back in batches handed over by the batch's first request; when that
    /// request is gone (its client cancelled it), the others must still get theirs.
    #[tokio::test]
    async fn results_reach_their_requests_when_the_first_of_a_batch_is_gone() {
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let io = SerialIo::new(Mutex::new(release_rx));
        // The first job holds the queue until released, so the others pile up behind
        // it and finish in its batch.
        let first = tokio::spawn({
            let io = io.clone();
            async move {
                io.run(|rx: &Mutex<std::sync::mpsc::Receiver<()>>| {
                    rx.lock().unwrap().recv().map_err(io::Error::other)
                })
                .await
            }
        });
        tokio::task::yield_now().await;
        let rest: Vec<_> = (0..20u32)
            .map(|i| {
                let io = io.clone();
                tokio::spawn(async move { io.run(move |_| Ok(i)).await })
            })
            .collect();
        tokio::task::yield_now().await;
        first.abort();
        assert!(first.await.unwrap_err().is_cancelled());
        release_tx.send(()).unwrap();
        for (i, r) in rest.into_iter().enumerate() {
            let got = tokio::time::timeout(std::time::Duration::from_secs(10), r)
                .await
                .expect("a result was never handed over")
                .unwrap()
                .unwrap();
            assert_eq!(got, i as u32);
        }
        // And the queue goes idle again.
        let mut idle = false;
        for _ in 0..1000 {
            if io.now_if_idle(|_| ()).is_some() {
                idle = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(idle, "the queue stays busy");
    }

    /// Many requests in flight, each result to its own request, in a runtime whose
    /// tasks may run on another thread than the one that handed the batch over.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_result_reaches_its_own_request_under_load() {
        let io = SerialIo::new(());
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..2000u64 {
            let io = io.clone();
            tasks.spawn(async move { (i, io.run(move |_| Ok(i * 3)).await.unwrap()) });
        }
        let mut seen = 0;
        while let Some(r) = tasks.join_next().await {
            let (i, v) = r.unwrap();
            assert_eq!(v, i * 3);
            seen += 1;
        }
        assert_eq!(seen, 2000);
    }

    /// A long job (fsync) does not hold back the results finished before it: here it
    /// waits until the earlier request has its result, which would never come if that
    /// result waited for the long job's batch.
    #[tokio::test]
    async fn results_before_a_long_job_are_not_held_behind_it() {
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let (step_tx, step_rx) = std::sync::mpsc::channel::<()>();
        let io = SerialIo::new((Mutex::new(gate_rx), Mutex::new(step_rx)));
        type Res = (
            Mutex<std::sync::mpsc::Receiver<()>>,
            Mutex<std::sync::mpsc::Receiver<()>>,
        );
        // Holds the queue so that the short job and the long one are queued together.
        let gate = tokio::spawn({
            let io = io.clone();
            async move {
                io.run(|(gate, _): &Res| gate.lock().unwrap().recv().map_err(io::Error::other))
                    .await
            }
        });
        tokio::task::yield_now().await;
        let short = tokio::spawn({
            let io = io.clone();
            async move { io.run(|_: &Res| Ok(7u32)).await }
        });
        let long = tokio::spawn({
            let io = io.clone();
            async move {
                io.run_long(|(_, step): &Res| {
                    step.lock()
                        .unwrap()
                        .recv()
                        .map(|()| 8u32)
                        .map_err(io::Error::other)
                })
                .await
            }
        });
        tokio::task::yield_now().await;
        gate_tx.send(()).unwrap();
        gate.await.unwrap().unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), short)
            .await
            .expect("the short job's result waited for the long job")
            .unwrap()
            .unwrap();
        assert_eq!(got, 7);
        step_tx.send(()).unwrap();
        assert_eq!(long.await.unwrap().unwrap(), 8);
    }
}
