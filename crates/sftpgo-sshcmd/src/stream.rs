//! A channel's byte stream with the reads the line protocols need: a byte, a bounded
//! line, up to N bytes (without copying what the transport gave).

use bytes::Bytes;

use crate::ByteChannel;

/// Reads ahead of what the protocol consumed by at most one transport message.
pub struct Stream<C> {
    channel: C,
    buf: Bytes,
    eof: bool,
}

/// A line could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LineError {
    #[error("line longer than {0} bytes")]
    TooLong(usize),
    #[error("the client ended the stream in the middle of a line")]
    Truncated,
}

impl<C: ByteChannel> Stream<C> {
    pub fn new(channel: C) -> Self {
        Self {
            channel,
            buf: Bytes::new(),
            eof: false,
        }
    }

    /// Makes sure bytes are buffered; false at the end of the stream.
    async fn fill(&mut self) -> bool {
        while self.buf.is_empty() {
            if self.eof {
                return false;
            }
            match self.channel.recv().await {
                Some(b) => self.buf = b,
                None => self.eof = true,
            }
        }
        true
    }

    /// The next byte; `None` at the end of the stream.
    pub async fn byte(&mut self) -> Option<u8> {
        if !self.fill().await {
            return None;
        }
        let b = self.buf[0];
        self.buf = self.buf.slice(1..);
        Some(b)
    }

    /// The next line without its `\n`, of at most `max` bytes; `Ok(None)` when the
    /// stream ends before it starts.
    pub async fn line(&mut self, max: usize) -> Result<Option<Vec<u8>>, LineError> {
        let mut line = Vec::new();
        loop {
            if !self.fill().await {
                return if line.is_empty() {
                    Ok(None)
                } else {
                    Err(LineError::Truncated)
                };
            }
            let room = max + 1 - line.len();
            let window = &self.buf[..self.buf.len().min(room)];
            if let Some(nl) = window.iter().position(|&b| b == b'\n') {
                line.extend_from_slice(&window[..nl]);
                self.buf = self.buf.slice(nl + 1..);
                return Ok(Some(line));
            }
            if window.len() == room {
                return Err(LineError::TooLong(max));
            }
            line.extend_from_slice(window);
            self.buf = Bytes::new();
        }
    }

    /// Up to `max` bytes (at least one), as the transport delivered them; `None` at the
    /// end of the stream.
    pub async fn chunk(&mut self, max: usize) -> Option<Bytes> {
        if max == 0 || !self.fill().await {
            return None;
        }
        let n = self.buf.len().min(max);
        Some(self.buf.split_to(n))
    }

    /// Sends bytes to the client; false once it cannot.
    pub async fn send(&mut self, data: Bytes) -> bool {
        self.channel.send(data).await
    }

    /// Sends bytes on stderr.
    pub async fn send_stderr(&mut self, data: Bytes) -> bool {
        self.channel.send_stderr(data).await
    }
}
