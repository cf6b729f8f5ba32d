//! Read-ahead for an SSH connection's socket, held only while data is waiting.
//!
//! Why: russh reads each SSH packet with two `read_exact` calls (its length, then the
//! rest), so on a bare socket every packet costs two `recvfrom`, and russh answers each
//! packet before reading the next: a client keeping 64 small files in flight made the
//! server run ~6 `recvfrom` and ~3 `sendto` per file (perf: a third of the connection
//! thread in `send`). With a read-ahead, one read takes in a burst of packets, russh
//! handles them without waiting on the socket, the SFTP layer serves them together and
//! russh sends their replies in one write, as OpenSSH's poll loop does.
//! Why not tokio's `BufReader`: its buffer lives as long as the connection, and idle
//! sessions must stay small (under 64 KiB each, see bench/); this one is taken when a
//! read finds it empty and released as soon as the socket has nothing more to give.
//! Reads of [`READ_AHEAD`] bytes or more (the rest of a large packet) bypass it, so bulk
//! data is copied through it at most once per packet and only for its first part.
//! The buffer is never zero-filled (`poll_read_buf` reads into its spare capacity): a
//! fresh 16 KiB memset per request was 1.5% of the connection thread (perf, small files).
//! A released buffer waits in a one-slot spare per thread for the next connection of that
//! thread that has data: a client waiting for each reply makes every request find the
//! socket dry, and a malloc + free of 16 KiB per request (with glibc's consolidation of
//! small free chunks it triggers) was a few % of the connection thread more.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::io::poll_read_buf;

/// The most read ahead of what russh asked for.
pub const READ_AHEAD: usize = 16 * 1024;

thread_local! {
    /// One released read-ahead buffer (empty, unshared) kept for reuse on this thread.
    static SPARE: Cell<Option<BytesMut>> = const { Cell::new(None) };
}

/// Closes a connection from outside the task that drives it. russh runs each session in a
/// task of its own that owns the socket, and its `RunningSession` cannot abort that task; a
/// disconnect request goes through the session, which a client stalled mid key exchange or
/// not reading never lets it act on (measured: connections past the login timeout stayed
/// open). Once severed, every read and write of the stream fails, waking the task if it
/// waits on the socket, so the session ends and drops the socket whatever state it is in.
///
/// It also answers whether the client has gone ([`Sever::peer_gone`]) without reading the
/// socket: russh stops reading it while it waits to hand a channel's data to a session
/// that is not taking it, and then a client that disconnects is seen by nobody else.
#[derive(Debug, Default)]
pub struct Sever {
    severed: AtomicBool,
    waker: AtomicWaker,
    /// The socket's descriptor while the stream that owns it is alive (cleared by the
    /// stream's drop under this lock, so it is never polled after it was closed).
    socket: std::sync::Mutex<Option<std::os::fd::RawFd>>,
}

impl Sever {
    /// For the stream of the socket `fd` (its [`ReadAhead`] clears it when dropped).
    pub fn for_socket(fd: std::os::fd::RawFd) -> Self {
        Self {
            socket: std::sync::Mutex::new(Some(fd)),
            ..Self::default()
        }
    }

    pub fn sever(&self) {
        self.severed.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Whether the client can no longer send: it closed or reset the connection (the
    /// kernel's `POLLRDHUP`/`POLLHUP`/`POLLERR`, asked without reading), or the socket is
    /// closed already. A client that has closed its side cannot open the window for
    /// replies either, so a session waiting on it waits forever.
    pub fn peer_gone(&self) -> bool {
        let socket = self.socket.lock().unwrap_or_else(|e| e.into_inner());
        let Some(fd) = *socket else { return true };
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: `fd` is open while the lock is held (see `socket`); a zero timeout
        // never blocks.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n > 0 && pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
    }

    fn socket_closing(&self) {
        *self.socket.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn is_severed(&self) -> bool {
        self.severed.load(Ordering::Acquire)
    }

    /// Turns a `Pending` into an error once severed; registers to be woken by [`Sever::sever`].
    fn pending<T>(&self, cx: &Context<'_>, res: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if res.is_pending() {
            self.waker.register(cx.waker());
            if self.is_severed() {
                return Poll::Ready(Err(severed()));
            }
        }
        res
    }
}

fn severed() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection closed by the server",
    )
}

/// A stream whose reads are served from a read-ahead buffer; writes pass through.
pub struct ReadAhead<S> {
    inner: S,
    /// What was read ahead and not yet handed out; `None` (no allocation) while the
    /// socket is dry. A buffer read to its very end is still `Some`: its allocation is
    /// reused for the next read rather than swapped for the thread's spare.
    buf: Option<BytesMut>,
    sever: Arc<Sever>,
}

impl<S> ReadAhead<S> {
    /// `sever` ends the stream from outside (see [`Sever`]).
    pub fn new(inner: S, sever: Arc<Sever>) -> Self {
        Self {
            inner,
            buf: None,
            sever,
        }
    }

    /// Whether a buffer is allocated (for tests: an idle stream holds none).
    #[cfg(test)]
    fn holds_buffer(&self) -> bool {
        self.buf.is_some()
    }
}

impl<S> Drop for ReadAhead<S> {
    fn drop(&mut self) {
        // Before `inner` (the socket) is closed.
        self.sever.socket_closing();
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.sever.is_severed() {
            return Poll::Ready(Err(severed()));
        }
        let res = this.read_into(cx, dst);
        this.sever.pending(cx, res)
    }
}

impl<S: AsyncRead + Unpin> ReadAhead<S> {
    fn read_into(&mut self, cx: &mut Context<'_>, dst: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self;
        let buf = match &mut this.buf {
            Some(buf) if !buf.is_empty() => buf,
            _ if dst.remaining() >= READ_AHEAD => {
                return Pin::new(&mut this.inner).poll_read(cx, dst);
            }
            held => {
                let buf = held.get_or_insert_with(|| SPARE.take().unwrap_or_default());
                // Reuses the allocation (everything in it was handed out, nothing shares it).
                buf.reserve(READ_AHEAD);
                match poll_read_buf(Pin::new(&mut this.inner), cx, buf) {
                    Poll::Pending => {
                        if let Some(released) = held.take() {
                            SPARE.set(Some(SPARE.take().unwrap_or(released)));
                        }
                        return Poll::Pending;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(_)) => buf,
                }
            }
        };
        let n = dst.remaining().min(buf.len());
        dst.put_slice(&buf[..n]);
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.sever.is_severed() {
            return Poll::Ready(Err(severed()));
        }
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.sever.pending(cx, res)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.sever.is_severed() {
            return Poll::Ready(Err(severed()));
        }
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.sever.pending(cx, res)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.sever.is_severed() {
            return Poll::Ready(Err(severed()));
        }
        let res = Pin::new(&mut this.inner).poll_flush(cx);
        this.sever.pending(cx, res)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use tokio::io::AsyncReadExt;

    /// A source that yields scripted chunks, then `Pending` (no waker: polled by hand),
    /// then EOF when `eof` is set; counts its reads.
    struct Script {
        chunks: VecDeque<Vec<u8>>,
        reads: usize,
        eof: bool,
    }

    impl AsyncRead for Script {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            dst: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            self.reads += 1;
            match self.chunks.pop_front() {
                Some(mut c) => {
                    let n = c.len().min(dst.remaining());
                    dst.put_slice(&c[..n]);
                    if n < c.len() {
                        self.chunks.push_front(c.split_off(n));
                    }
                    Poll::Ready(Ok(()))
                }
                None if self.eof => Poll::Ready(Ok(())),
                None => Poll::Pending,
            }
        }
    }

    fn poll_once(r: &mut ReadAhead<Script>, want: usize) -> Poll<io::Result<Vec<u8>>> {
        let mut out = vec![0; want];
        let mut buf = ReadBuf::new(&mut out);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        Pin::new(r)
            .poll_read(&mut cx, &mut buf)
            .map_ok(|()| buf.filled().to_vec())
    }

    #[test]
    fn small_reads_share_one_read_of_the_source_and_the_buffer_goes_when_it_is_idle() {
        let burst: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let mut r = ReadAhead::new(
            Script {
                chunks: VecDeque::from([burst.clone()]),
                reads: 0,
                eof: false,
            },
            Arc::default(),
        );
        let mut got = Vec::new();
        for want in [4, 100, 4, 2000, 4, 888] {
            match poll_once(&mut r, want) {
                Poll::Ready(Ok(b)) => {
                    assert_eq!(b.len(), want);
                    got.extend(b);
                }
                other => panic!("read of {want}: {other:?}"),
            }
        }
        assert_eq!(got, burst);
        assert_eq!(r.inner.reads, 1, "one read of the source for the burst");
        assert!(r.holds_buffer());
        assert!(poll_once(&mut r, 4).is_pending());
        assert!(!r.holds_buffer(), "an idle stream holds no buffer");
    }

    #[test]
    fn a_released_buffer_waits_in_the_thread_spare_for_the_next_stream() {
        let script = |chunk: &[u8]| Script {
            chunks: VecDeque::from([chunk.to_vec()]),
            reads: 0,
            eof: false,
        };
        let mut first = ReadAhead::new(script(&[1; 64]), Arc::default());
        assert!(matches!(poll_once(&mut first, 64), Poll::Ready(Ok(b)) if b == [1; 64]));
        assert!(
            first.holds_buffer(),
            "read to its end, still held for the next read"
        );
        // Where the allocation starts: the 64 bytes handed out are behind the view.
        let start = first.buf.as_ref().map(|b| b.as_ptr() as usize - 64);
        assert!(poll_once(&mut first, 4).is_pending());
        assert!(!first.holds_buffer());
        let mut second = ReadAhead::new(script(&[2; 8]), Arc::default());
        assert!(matches!(poll_once(&mut second, 8), Poll::Ready(Ok(b)) if b == [2; 8]));
        assert_eq!(
            second.buf.as_ref().map(|b| b.as_ptr() as usize - 8),
            start,
            "the spare's allocation, not a new one"
        );
    }

    #[test]
    fn large_reads_bypass_the_buffer_after_what_it_holds() {
        let packet: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut r = ReadAhead::new(
            Script {
                chunks: VecDeque::from([packet.clone()]),
                reads: 0,
                eof: false,
            },
            Arc::default(),
        );
        let head = match poll_once(&mut r, 4) {
            Poll::Ready(Ok(b)) => b,
            other => panic!("{other:?}"),
        };
        // What was read ahead comes first, then the rest straight from the source.
        let first = match poll_once(&mut r, 90_000) {
            Poll::Ready(Ok(b)) => b,
            other => panic!("{other:?}"),
        };
        assert_eq!(first.len(), READ_AHEAD - 4);
        let reads = r.inner.reads;
        let second = match poll_once(&mut r, 90_000 - first.len()) {
            Poll::Ready(Ok(b)) => b,
            other => panic!("{other:?}"),
        };
        assert_eq!(r.inner.reads, reads + 1);
        let mut all = [head, first, second].concat();
        let rest = match poll_once(&mut r, 20_000) {
            Poll::Ready(Ok(b)) => b,
            other => panic!("{other:?}"),
        };
        all.extend(rest);
        assert_eq!(all, packet);
    }

    #[tokio::test]
    async fn read_exact_sees_every_byte_in_order_and_then_eof() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let chunks = data.chunks(1337).map(<[u8]>::to_vec).collect();
        let mut r = ReadAhead::new(
            Script {
                chunks,
                reads: 0,
                eof: true,
            },
            Arc::default(),
        );
        let mut got = Vec::new();
        let mut sizes = [4usize, 60, 4, 4200, 4, 32_800].iter().cycle();
        while got.len() < data.len() {
            let want = (*sizes.next().unwrap()).min(data.len() - got.len());
            let mut b = vec![0; want];
            r.read_exact(&mut b).await.unwrap();
            got.extend(b);
        }
        assert!(got == data, "bytes differ");
        assert_eq!(r.read(&mut [0; 16]).await.unwrap(), 0, "then EOF");
    }

    /// A read waiting on a silent peer, and every later read or write, fails once severed.
    #[tokio::test]
    async fn sever_ends_a_waiting_read_and_every_later_call() {
        use tokio::io::AsyncWriteExt;
        let (ours, _peer) = tokio::io::duplex(64);
        let sever = Arc::new(Sever::default());
        let mut r = ReadAhead::new(ours, sever.clone());
        let reader = tokio::spawn(async move {
            let err = r.read(&mut [0; 16]).await.unwrap_err();
            (r, err)
        });
        tokio::task::yield_now().await;
        sever.sever();
        let (mut r, err) = reader.await.unwrap();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        assert!(r.write_all(b"x").await.is_err());
        assert!(r.read(&mut [0; 16]).await.is_err());
    }
}
