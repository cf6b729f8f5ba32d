//! The SFTP packet framer (`codec::PacketReader`) fed a byte stream in arbitrary chunks,
//! every frame decoded (`codec::decode_request`).
//!
//! Input: 4 control bytes, then the stream. Control byte 0 picks the packet limit, bytes
//! 1-3 seed the chunk sizes (1 to 8 KiB, smaller ones more often), and whether each
//! chunk is pushed by copy or as `Bytes` and whether frames are taken with `next_frame`
//! or `next_packet`.
//!
//! Oracle: a second reader given the whole stream at once, framed with `next_packet`.
//! However the stream is cut, the chunked reader yields the same packets (a
//! `Frame::Write` with its data left in the chunks decodes like the gathered packet) and
//! stops on the same error, and both end with the same bytes left over.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sftpgo_sftp::codec::{Frame, FrameError, PacketReader, Request, decode_request};

/// Packet limits: tiny, one byte over the small-chunk merge size, the server's own
/// (256 KiB + 1 KiB, `session::serve`).
const LIMITS: [usize; 4] = [1, 64, 4097, 256 * 1024 + 1024];

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (control, stream) = data.split_at(4);
    let max = LIMITS[control[0] as usize % LIMITS.len()];
    let mut rng = u32::from_le_bytes([control[1], control[2], control[3], control[0]]) | 1;
    let mut next = move || {
        // xorshift32: the chunking is a function of the input.
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        rng
    };

    let expected = reference(stream, max);

    let mut reader = PacketReader::new(max);
    let mut got: Vec<Frame> = Vec::new();
    let mut error = None;
    let mut rest = stream;
    'outer: while !rest.is_empty() {
        let r = next();
        let size = match r % 4 {
            0 => 1 + (r >> 8) as usize % 8,
            1 | 2 => 1 + (r >> 8) as usize % 512,
            _ => 1 + (r >> 8) as usize % 8192,
        }
        .min(rest.len());
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let before = reader.buffered();
        if r & 0x10 != 0 {
            reader.push(chunk);
        } else {
            reader.push_bytes(Bytes::copy_from_slice(chunk));
        }
        assert_eq!(reader.buffered(), before + chunk.len());
        loop {
            let res = if r & 0x20 != 0 {
                reader.next_packet().map(|p| p.map(Frame::Packet))
            } else {
                reader.next_frame()
            };
            match res {
                Ok(Some(frame)) => got.push(frame),
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break 'outer;
                }
            }
        }
    }

    assert_eq!(got.len(), expected.packets.len(), "frame count differs");
    for (frame, packet) in got.into_iter().zip(expected.packets) {
        same(frame, packet, max);
    }
    assert_eq!(error, expected.error);
    if error.is_none() {
        assert_eq!(reader.buffered(), expected.left);
    }
});

struct Expected {
    packets: Vec<Bytes>,
    error: Option<FrameError>,
    left: usize,
}

/// The stream framed in one piece.
fn reference(stream: &[u8], max: usize) -> Expected {
    let mut reader = PacketReader::new(max);
    reader.push(stream);
    let mut packets = Vec::new();
    loop {
        match reader.next_packet() {
            Ok(Some(p)) => {
                assert!(!p.is_empty() && p.len() <= max);
                packets.push(p);
            }
            Ok(None) => {
                return Expected {
                    packets,
                    error: None,
                    left: reader.buffered(),
                };
            }
            Err(e) => {
                return Expected {
                    packets,
                    error: Some(e),
                    left: reader.buffered(),
                };
            }
        }
    }
}

/// Checks a frame of the chunked reader against the packet the unchunked one framed, and
/// decodes it. A `Frame::Write` (data left in the chunks) must be a WRITE that the packet
/// decodes to, whose data fits in it.
fn same(frame: Frame, packet: Bytes, max: usize) {
    match frame {
        Frame::Packet(p) => {
            assert_eq!(p, packet, "packet differs from the unchunked stream");
            let _ = decode_request(p);
        }
        Frame::Write {
            id,
            handle,
            offset,
            data,
        } => {
            assert!(data.iter().all(|d| !d.is_empty()), "empty data slice");
            let total: usize = data.iter().map(Bytes::len).sum();
            assert!(packet.len() <= max);
            assert!(1 + 4 + 4 + handle.len() + 8 + 4 + total <= packet.len());
            assert_eq!(
                decode_request(packet),
                Ok(Request::Write {
                    id,
                    handle,
                    offset,
                    data: Bytes::from(data.concat()),
                }),
                "scattered WRITE differs from the gathered packet"
            );
        }
    }
}
