//! The log's background writer: lines gather in memory and one thread writes them out in
//! batches, at most [`LINGER`] after the first of a batch was logged.
//!
//! Hand-written instead of `tracing_appender::non_blocking`, which wakes its thread for
//! every line: with a transfer log line per file, that was one futex wake, one context
//! switch and a `sched_yield` per small file uploaded (perf, 2000 × 4 KiB pipelined),
//! paid on the connection threads' critical path. Here only the line that finds the
//! buffer empty wakes the writer, so a busy server wakes it about 1/[`LINGER`] times a
//! second. Logging never blocks on the disk: past [`MAX_PENDING`] bytes waiting, lines
//! are dropped and counted, and the count is logged once the writer catches up.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer waits after a line wakes it, to take the lines that follow along.
pub const LINGER: Duration = Duration::from_millis(20);
/// Bytes allowed to wait for the writer; more are dropped (a disk that stopped answering
/// must not grow the server's memory without bound).
pub const MAX_PENDING: usize = 16 << 20;

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    dropped: u64,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the logging layer writes to; one `write` call per line.
#[derive(Clone)]
pub struct BatchWriter(Arc<Shared>);

/// Flushes what is pending and stops the writer thread when dropped.
pub struct BatchGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread over `out`.
pub fn batched<W: Write + Send + 'static>(mut out: W) -> io::Result<(BatchWriter, BatchGuard)> {
    let shared = Arc::new(Shared::default());
    let theirs = shared.clone();
    let thread = std::thread::Builder::new()
        .name("sftpgo-log".into())
        .spawn(move || {
            let mut batch = Vec::new();
            loop {
                let mut p = theirs.lock();
                while p.lines.is_empty() && !p.closed {
                    p = theirs.wake.wait(p).unwrap_or_else(|e| e.into_inner());
                }
                if !p.closed {
                    drop(p);
                    std::thread::sleep(LINGER);
                    p = theirs.lock();
                }
                std::mem::swap(&mut batch, &mut p.lines);
                let dropped = std::mem::take(&mut p.dropped);
                let closed = p.closed && batch.is_empty();
                drop(p);
                if dropped > 0 {
                    let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
                    let note = format!(
                        "{{\"level\":\"warn\",\"time\":\"{time}\",\"sender\":\"log\",\"message\":\"{dropped} log lines dropped: the log could not be written fast enough\"}}\n"
                    );
                    batch.extend_from_slice(note.as_bytes());
                }
                if !batch.is_empty() {
                    // Nowhere to report a failure to write the log: the lines are lost.
                    let _ = out.write_all(&batch).and_then(|()| out.flush());
                    batch.clear();
                }
                if closed {
                    return;
                }
            }
        })?;
    Ok((
        BatchWriter(shared.clone()),
        BatchGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

impl Write for BatchWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut p = self.0.lock();
        if p.lines.len() + line.len() > MAX_PENDING {
            p.dropped += 1;
            return Ok(line.len());
        }
        let was_empty = p.lines.is_empty();
        p.lines.extend_from_slice(line);
        drop(p);
        if was_empty {
            self.0.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = BatchWriter;

    fn make_writer(&'a self) -> BatchWriter {
        self.clone()
    }
}

impl Drop for BatchGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut s = self.0.lock().unwrap();
            s.0.extend_from_slice(buf);
            s.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_whole_in_order_in_few_writes_and_all_by_drop() {
        let sink = Sink::default();
        let (writer, guard) = batched(sink.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..2500 {
                        w.write_all(format!("t{t} line {i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let (text, writes) = {
            let s = sink.0.lock().unwrap();
            (String::from_utf8(s.0.clone()).unwrap(), s.1)
        };
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 10_000, "every line, none torn");
        for t in 0..4 {
            let mine: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.starts_with(&format!("t{t} ")))
                .collect();
            let want: Vec<String> = (0..2500).map(|i| format!("t{t} line {i}")).collect();
            assert_eq!(mine, want, "thread {t}'s lines in order");
        }
        assert!(writes < 1000, "{writes} writes for 10,000 lines");
    }

    #[test]
    fn a_lone_line_is_written_soon_without_a_flush() {
        let sink = Sink::default();
        let (mut writer, _guard) = batched(sink.clone()).unwrap();
        writer.write_all(b"hello\n").unwrap();
        let start = std::time::Instant::now();
        while sink.0.lock().unwrap().0.is_empty() {
            assert!(start.elapsed() < Duration::from_secs(10), "never written");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(sink.0.lock().unwrap().0, b"hello\n");
    }

    #[test]
    fn past_the_limit_lines_are_dropped_and_counted() {
        let shared = Arc::new(Shared::default());
        let mut w = BatchWriter(shared.clone());
        let line = vec![b'x'; 1 << 20];
        for _ in 0..20 {
            w.write_all(&line).unwrap();
        }
        let p = shared.lock();
        assert_eq!(p.lines.len(), 16 << 20);
        assert_eq!(p.dropped, 4);
    }
}
