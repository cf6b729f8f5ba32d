//! Property tests of the codec: encode → decode = identity for every request (client
//! encoder `encode_request`, server decoder `decode_request`, framed by `PacketReader`
//! however the stream is cut) and for every reply the server encodes (decoded by the
//! client-side `decode_response`). The fuzz targets `sftp_framer` and `sftp_decode`
//! (`fuzz/`) check the same from the other side: arbitrary bytes.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use sftpgo_sftp::codec::{
    self, Extended, FileAttrs, Frame, LimitsReply, NameEntry, PacketReader, Request, Response,
    StatVfsReply, decode_request, decode_response,
};

/// The server's packet limit (`session::serve`).
const MAX: usize = 256 * 1024 + 1024;

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

/// Mostly path-like strings, some arbitrary bytes.
fn path() -> impl Strategy<Value = Bytes> {
    prop_oneof!["[/.a-z]{0,24}".prop_map(Bytes::from), bytes(40),]
}

fn attrs() -> impl Strategy<Value = FileAttrs> {
    (
        option::of(any::<u64>()),
        option::of(any::<(u32, u32)>()),
        option::of(any::<u32>()),
        option::of(any::<(u32, u32)>()),
    )
        .prop_map(|(size, uid_gid, permissions, times)| FileAttrs {
            size,
            uid_gid,
            permissions,
            times,
        })
}

const KNOWN_EXTENSIONS: [&[u8]; 11] = [
    b"posix-rename@openssh.com",
    b"statvfs@openssh.com",
    b"fstatvfs@openssh.com",
    b"hardlink@openssh.com",
    b"fsync@openssh.com",
    b"limits@openssh.com",
    b"expand-path@openssh.com",
    b"check-file",
    b"check-file-name",
    b"check-file-handle",
    b"copy-data",
];

fn extended() -> impl Strategy<Value = Extended> {
    prop_oneof![
        (path(), path()).prop_map(|(old, new)| Extended::PosixRename { old, new }),
        path().prop_map(|path| Extended::Statvfs { path }),
        bytes(8).prop_map(|handle| Extended::Fstatvfs { handle }),
        (path(), path()).prop_map(|(old, new)| Extended::Hardlink { old, new }),
        bytes(8).prop_map(|handle| Extended::Fsync { handle }),
        Just(Extended::Limits),
        path().prop_map(|path| Extended::ExpandPath { path }),
        (
            any::<bool>(),
            path(),
            path(),
            any::<u64>(),
            any::<u64>(),
            any::<u32>()
        )
            .prop_map(
                |(by_handle, target, algorithms, offset, length, block_size)| Extended::CheckFile {
                    by_handle,
                    target,
                    algorithms,
                    offset,
                    length,
                    block_size
                }
            ),
        // An unknown name decodes to Unknown (its payload is not kept).
        bytes(32)
            .prop_filter("a known extension", |n| !KNOWN_EXTENSIONS.contains(&&n[..]))
            .prop_map(|name| Extended::Unknown { name }),
    ]
}

/// Every request type. WRITE data sometimes exceeds the reader's 4 KiB merge size, so it
/// may come as a `Frame::Write` scattered over chunks.
fn request() -> impl Strategy<Value = Request> {
    let id = any::<u32>;
    let handle = || bytes(8);
    prop_oneof![
        any::<u32>().prop_map(|version| Request::Init { version }),
        (id(), path(), any::<u32>(), attrs()).prop_map(|(id, path, pflags, attrs)| {
            Request::Open {
                id,
                path,
                pflags,
                attrs,
            }
        }),
        (id(), handle()).prop_map(|(id, handle)| Request::Close { id, handle }),
        (id(), handle(), any::<u64>(), any::<u32>()).prop_map(|(id, handle, offset, len)| {
            Request::Read {
                id,
                handle,
                offset,
                len,
            }
        }),
        (
            id(),
            handle(),
            any::<u64>(),
            prop_oneof![bytes(64), bytes(12 * 1024)]
        )
            .prop_map(|(id, handle, offset, data)| Request::Write {
                id,
                handle,
                offset,
                data,
            }),
        (id(), path()).prop_map(|(id, path)| Request::Lstat { id, path }),
        (id(), handle()).prop_map(|(id, handle)| Request::Fstat { id, handle }),
        (id(), path(), attrs()).prop_map(|(id, path, attrs)| Request::Setstat { id, path, attrs }),
        (id(), handle(), attrs())
            .prop_map(|(id, handle, attrs)| { Request::Fsetstat { id, handle, attrs } }),
        (id(), path()).prop_map(|(id, path)| Request::Opendir { id, path }),
        (id(), handle()).prop_map(|(id, handle)| Request::Readdir { id, handle }),
        (id(), path()).prop_map(|(id, path)| Request::Remove { id, path }),
        (id(), path(), attrs()).prop_map(|(id, path, attrs)| Request::Mkdir { id, path, attrs }),
        (id(), path()).prop_map(|(id, path)| Request::Rmdir { id, path }),
        (id(), path()).prop_map(|(id, path)| Request::Realpath { id, path }),
        (id(), path()).prop_map(|(id, path)| Request::Stat { id, path }),
        (id(), path(), path()).prop_map(|(id, old, new)| Request::Rename { id, old, new }),
        (id(), path()).prop_map(|(id, path)| Request::Readlink { id, path }),
        (id(), path(), path()).prop_map(|(id, target, link)| Request::Symlink { id, target, link }),
        (id(), extended()).prop_map(|(id, ext)| Request::Extended { id, ext }),
    ]
}

/// Every reply the server encodes, as the client decodes it.
fn response() -> impl Strategy<Value = Response> {
    let id = any::<u32>;
    prop_oneof![
        (any::<u32>(), vec((bytes(24), bytes(24)), 0..4)).prop_map(|(version, extensions)| {
            Response::Version {
                version,
                extensions,
            }
        }),
        (id(), 0u32..9, ".{0,40}").prop_map(|(id, code, msg): (u32, u32, String)| {
            Response::Status {
                id,
                code,
                msg: Bytes::from(msg),
            }
        }),
        (id(), bytes(8)).prop_map(|(id, handle)| Response::Handle { id, handle }),
        (id(), bytes(3000)).prop_map(|(id, data)| Response::Data { id, data }),
        (id(), vec((path(), bytes(60), attrs()), 0..6))
            .prop_map(|(id, entries)| Response::Name { id, entries }),
        (id(), attrs()).prop_map(|(id, attrs)| Response::Attrs { id, attrs }),
        (id(), bytes(100)).prop_map(|(id, data)| Response::ExtendedReply { id, data }),
    ]
}

fn encode_response(buf: &mut BytesMut, r: &Response) {
    match r {
        Response::Version {
            version,
            extensions,
        } => {
            let ext: Vec<(&[u8], &[u8])> = extensions
                .iter()
                .map(|(n, d)| (n.as_ref(), d.as_ref()))
                .collect();
            codec::encode_version(buf, *version, &ext);
        }
        Response::Status { id, code, msg } => {
            codec::encode_status(buf, *id, *code, std::str::from_utf8(msg).unwrap())
        }
        Response::Handle { id, handle } => codec::encode_handle(buf, *id, handle),
        Response::Data { id, data } => {
            let slot = codec::begin_data(buf, *id);
            buf.put_slice(data);
            slot.finish(buf);
        }
        Response::Name { id, entries } => codec::encode_name(
            buf,
            *id,
            entries.iter().map(|(f, l, a)| NameEntry {
                filename: f,
                longname: l,
                attrs: a,
            }),
        ),
        Response::Attrs { id, attrs } => codec::encode_attrs(buf, *id, attrs),
        Response::ExtendedReply { id, data } => codec::encode_extended_reply(buf, *id, data),
    }
}

/// The packet bodies of a stream holding whole packets only.
fn packets(stream: Bytes) -> Vec<Bytes> {
    let mut reader = PacketReader::new(MAX);
    reader.push_bytes(stream);
    let mut out = Vec::new();
    while let Some(p) = reader.next_packet().unwrap() {
        out.push(p);
    }
    assert_eq!(reader.buffered(), 0, "bytes left after the last packet");
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_request_round_trips(r in request()) {
        let mut buf = BytesMut::new();
        codec::encode_request(&mut buf, &r);
        let p = packets(buf.freeze());
        prop_assert_eq!(p.len(), 1);
        prop_assert_eq!(decode_request(p[0].clone()), Ok(r));
    }

    /// Requests encoded back to back and delivered in arbitrary pieces (russh hands each
    /// channel message over as its own `Bytes`) frame and decode to the same requests;
    /// a WRITE scattered over chunks keeps its data in order.
    #[test]
    fn requests_round_trip_through_any_chunking(
        rs in vec(request(), 1..6),
        cuts in vec(1usize..6000, 0..12),
    ) {
        let mut buf = BytesMut::new();
        for r in &rs {
            codec::encode_request(&mut buf, r);
        }
        let mut stream = buf.freeze();
        let mut reader = PacketReader::new(MAX);
        let mut got = Vec::new();
        let mut cuts = cuts.into_iter();
        while !stream.is_empty() {
            let n = cuts.next().unwrap_or(usize::MAX).min(stream.len());
            reader.push_bytes(stream.split_to(n));
            while let Some(f) = reader.next_frame().unwrap() {
                got.push(match f {
                    Frame::Packet(p) => decode_request(p).unwrap(),
                    Frame::Write { id, handle, offset, data } => Request::Write {
                        id,
                        handle,
                        offset,
                        data: Bytes::from(data.concat()),
                    },
                });
            }
        }
        prop_assert_eq!(reader.buffered(), 0);
        prop_assert_eq!(got, rs);
    }

    #[test]
    fn every_reply_round_trips(rs in vec(response(), 1..4)) {
        let mut buf = BytesMut::new();
        for r in &rs {
            encode_response(&mut buf, r);
        }
        let got: Vec<Response> = packets(buf.freeze())
            .into_iter()
            .map(|p| decode_response(p).unwrap())
            .collect();
        prop_assert_eq!(got, rs);
    }

    #[test]
    fn attrs_round_trip(a in attrs(), tail in bytes(8)) {
        let mut buf = BytesMut::new();
        a.encode(&mut buf);
        buf.put_slice(&tail);
        let mut b = buf.freeze();
        prop_assert_eq!(FileAttrs::decode(&mut b), Ok(a));
        // Decoding stops right after the structure.
        prop_assert_eq!(b, tail);
    }

    #[test]
    fn extension_replies_round_trip(id in any::<u32>(), v in any::<[u64; 11]>()) {
        let s = StatVfsReply {
            bsize: v[0], frsize: v[1], blocks: v[2], bfree: v[3], bavail: v[4], files: v[5],
            ffree: v[6], favail: v[7], fsid: v[8], flag: v[9], namemax: v[10],
        };
        let mut buf = BytesMut::new();
        codec::encode_statvfs_reply(&mut buf, id, &s);
        codec::encode_limits_reply(&mut buf, id, v[0], v[1], v[2], v[3]);
        let p = packets(buf.freeze());
        let Ok(Response::ExtendedReply { id: got_id, data }) = decode_response(p[0].clone()) else {
            panic!("statvfs reply does not decode");
        };
        prop_assert_eq!(got_id, id);
        prop_assert_eq!(StatVfsReply::decode(&data), Ok(s));
        let Ok(Response::ExtendedReply { data, .. }) = decode_response(p[1].clone()) else {
            panic!("limits reply does not decode");
        };
        prop_assert_eq!(
            LimitsReply::decode(&data),
            Ok(LimitsReply {
                max_packet_len: v[0],
                max_read_len: v[1],
                max_write_len: v[2],
                max_open_handles: v[3],
            })
        );
    }

    /// Any prefix of an encoded request short of the whole is an error, never a panic or
    /// a wrong request.
    #[test]
    fn truncated_requests_are_errors(r in request(), cut in any::<prop::sample::Index>()) {
        let mut buf = BytesMut::new();
        codec::encode_request(&mut buf, &r);
        let body = packets(buf.freeze()).remove(0);
        let short = body.slice(..cut.index(body.len()));
        prop_assert!(decode_request(short).is_err());
    }
}
