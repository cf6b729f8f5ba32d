use super::*;

fn b(s: &[u8]) -> Bytes {
    Bytes::copy_from_slice(s)
}

fn all_requests() -> Vec<Request> {
    let a = FileAttrs {
        size: Some(7),
        uid_gid: Some((1, 2)),
        permissions: Some(0o644),
        times: Some((3, 4)),
    };
    let h = b(b"\x00\x00\x00\x01");
    vec![
        Request::Init { version: 3 },
        Request::Open {
            id: 1,
            path: b(b"/a"),
            pflags: SSH_FXF_READ | SSH_FXF_WRITE,
            attrs: a,
        },
        Request::Close {
            id: 2,
            handle: h.clone(),
        },
        Request::Read {
            id: 3,
            handle: h.clone(),
            offset: 1 << 40,
            len: 32768,
        },
        Request::Write {
            id: 4,
            handle: h.clone(),
            offset: 5,
            data: b(&[9u8; 100]),
        },
        Request::Lstat {
            id: 5,
            path: b(b"l"),
        },
        Request::Fstat {
            id: 6,
            handle: h.clone(),
        },
        Request::Setstat {
            id: 7,
            path: b(b"s"),
            attrs: a,
        },
        Request::Fsetstat {
            id: 8,
            handle: h.clone(),
            attrs: FileAttrs::default(),
        },
        Request::Opendir {
            id: 9,
            path: b(b"/"),
        },
        Request::Readdir {
            id: 10,
            handle: h.clone(),
        },
        Request::Remove {
            id: 11,
            path: b(b"r"),
        },
        Request::Mkdir {
            id: 12,
            path: b(b"m"),
            attrs: a,
        },
        Request::Rmdir {
            id: 13,
            path: b(b"d"),
        },
        Request::Realpath {
            id: 14,
            path: b(b"."),
        },
        Request::Stat {
            id: 15,
            path: b(b"\xff\xfe"),
        },
        Request::Rename {
            id: 16,
            old: b(b"o"),
            new: b(b"n"),
        },
        Request::Readlink {
            id: 17,
            path: b(b"k"),
        },
        Request::Symlink {
            id: 18,
            target: b(b"t"),
            link: b(b"l"),
        },
        Request::Extended {
            id: 19,
            ext: Extended::PosixRename {
                old: b(b"o"),
                new: b(b"n"),
            },
        },
        Request::Extended {
            id: 20,
            ext: Extended::Statvfs { path: b(b"/") },
        },
        Request::Extended {
            id: 21,
            ext: Extended::Fstatvfs { handle: h.clone() },
        },
        Request::Extended {
            id: 22,
            ext: Extended::Hardlink {
                old: b(b"o"),
                new: b(b"n"),
            },
        },
        Request::Extended {
            id: 23,
            ext: Extended::Fsync { handle: h },
        },
        Request::Extended {
            id: 24,
            ext: Extended::Limits,
        },
        Request::Extended {
            id: 25,
            ext: Extended::ExpandPath { path: b(b"~/x") },
        },
        Request::Extended {
            id: 26,
            ext: Extended::Unknown {
                name: b(b"copy-file@example.com"),
            },
        },
        Request::Extended {
            id: 27,
            ext: Extended::CopyData {
                read_handle: b(b"h1"),
                read_offset: 5,
                length: 0,
                write_handle: b(b"h2"),
                write_offset: 9,
            },
        },
        Request::Extended {
            id: 28,
            ext: Extended::CheckFile {
                by_handle: false,
                target: b(b"/f"),
                algorithms: b(b"sha256,md5"),
                offset: 1,
                length: 2,
                block_size: 256,
            },
        },
    ]
}

fn framed(r: &Request) -> Bytes {
    let mut buf = BytesMut::new();
    encode_request(&mut buf, r);
    buf.freeze()
}

#[test]
fn every_request_round_trips() {
    for r in all_requests() {
        let wire = framed(&r);
        let mut reader = PacketReader::new(1 << 20);
        reader.push(&wire);
        let p = reader.next_packet().unwrap().unwrap();
        assert_eq!(decode_request(p).unwrap(), r);
    }
}

#[test]
fn truncated_requests_error_without_panicking() {
    for r in all_requests() {
        let wire = framed(&r);
        let body = wire.slice(4..);
        for cut in 0..body.len() {
            let res = decode_request(body.slice(..cut));
            // Extended names we do not know carry no arguments; their truncations are the only
            // ones that may still parse (as an unknown extension with a shorter name).
            if let Ok(Request::Extended {
                ext: Extended::Unknown { .. },
                ..
            }) = res
            {
                continue;
            }
            if matches!(
                r,
                Request::Extended {
                    ext: Extended::Limits,
                    ..
                }
            ) && res.is_ok()
            {
                continue;
            }
            assert!(res.is_err(), "{r:?} cut at {cut} decoded as {res:?}");
        }
    }
}

#[test]
fn unknown_type_keeps_the_id() {
    let res = decode_request(b(&[99, 0, 0, 0, 42]));
    assert_eq!(
        res,
        Err(DecodeError::UnknownType {
            ty: 99,
            id: Some(42)
        })
    );
}

#[test]
fn random_bytes_never_panic() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..50_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 64) as usize;
        let mut v: Vec<u8> = (0..len).map(|i| (x >> (i % 56)) as u8).collect();
        if let Some(first) = v.first_mut() {
            *first = (x % 24) as u8; // mostly valid types, to reach the field parsers
        }
        let _ = decode_request(Bytes::from(v.clone()));
        let _ = decode_response(Bytes::from(v));
    }
}

#[test]
fn frames_split_at_any_boundary() {
    let mut wire = BytesMut::new();
    for r in all_requests() {
        encode_request(&mut wire, &r);
    }
    for step in [1usize, 2, 3, 7, 64, 1000] {
        let mut reader = PacketReader::new(1 << 20);
        let mut got = Vec::new();
        for chunk in wire.chunks(step) {
            reader.push(chunk);
            while let Some(p) = reader.next_packet().unwrap() {
                got.push(decode_request(p).unwrap());
            }
        }
        assert_eq!(got, all_requests(), "step {step}");
    }
}

#[test]
fn oversized_and_empty_frames_are_rejected() {
    let mut reader = PacketReader::new(1024);
    reader.push(&2000u32.to_be_bytes());
    assert!(matches!(
        reader.next_packet(),
        Err(FrameError::TooLong { .. })
    ));
    let mut reader = PacketReader::new(1024);
    reader.push(&0u32.to_be_bytes());
    assert_eq!(reader.next_packet(), Err(FrameError::Empty));
}

fn one(buf: BytesMut) -> Response {
    let mut reader = PacketReader::new(1 << 20);
    reader.push(&buf);
    let r = decode_response(reader.next_packet().unwrap().unwrap()).unwrap();
    assert!(reader.next_packet().unwrap().is_none());
    r
}

#[test]
fn responses_round_trip() {
    let mut buf = BytesMut::new();
    encode_version(&mut buf, 3, &[(b"limits@openssh.com", b"1")]);
    assert_eq!(
        one(buf),
        Response::Version {
            version: 3,
            extensions: vec![(b(b"limits@openssh.com"), b(b"1"))]
        }
    );
    let mut buf = BytesMut::new();
    encode_status(&mut buf, 5, SSH_FX_EOF, "end");
    assert_eq!(
        one(buf),
        Response::Status {
            id: 5,
            code: SSH_FX_EOF,
            msg: b(b"end")
        }
    );
    let mut buf = BytesMut::new();
    encode_handle(&mut buf, 6, b"h1");
    assert_eq!(
        one(buf),
        Response::Handle {
            id: 6,
            handle: b(b"h1")
        }
    );
    let a = FileAttrs {
        size: Some(1),
        uid_gid: None,
        permissions: Some(0o100644),
        times: Some((1, 2)),
    };
    let mut buf = BytesMut::new();
    encode_attrs(&mut buf, 7, &a);
    assert_eq!(one(buf), Response::Attrs { id: 7, attrs: a });
    let mut buf = BytesMut::new();
    begin_data(&mut buf, 8);
    buf.extend_from_slice(b"payload");
    finish_data(&mut buf);
    assert_eq!(
        one(buf),
        Response::Data {
            id: 8,
            data: b(b"payload")
        }
    );
    let mut buf = BytesMut::new();
    let mut w = NameWriter::new(&mut buf, 9);
    w.push(b"f1", b"long1", &a);
    w.push(b"f2", b"long2", &FileAttrs::default());
    assert_eq!(w.count(), 2);
    w.finish();
    assert_eq!(
        one(buf),
        Response::Name {
            id: 9,
            entries: vec![
                (b(b"f1"), b(b"long1"), a),
                (b(b"f2"), b(b"long2"), FileAttrs::default())
            ]
        }
    );
    let mut buf = BytesMut::new();
    encode_limits_reply(&mut buf, 10, 1, 2, 3, 4);
    match one(buf) {
        Response::ExtendedReply { id: 10, data } => assert_eq!(data.len(), 32),
        other => panic!("{other:?}"),
    }
    let mut buf = BytesMut::new();
    encode_statvfs_reply(
        &mut buf,
        11,
        &StatVfsReply {
            bsize: 4096,
            ..Default::default()
        },
    );
    match one(buf) {
        Response::ExtendedReply { id: 11, data } => assert_eq!(&data[..8], &4096u64.to_be_bytes()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_types_carry_the_id_only_when_present() {
    assert_eq!(
        decode_request(b(&[99, 0, 0])),
        Err(DecodeError::UnknownType { ty: 99, id: None })
    );
    // A reply type sent as a request is just as unknown to the server.
    assert_eq!(
        decode_request(b(&[SSH_FXP_STATUS, 0, 0, 1, 0, 0])),
        Err(DecodeError::UnknownType {
            ty: SSH_FXP_STATUS,
            id: Some(256)
        })
    );
    assert_eq!(
        decode_request(b(&[SSH_FXP_VERSION])),
        Err(DecodeError::UnknownType {
            ty: SSH_FXP_VERSION,
            id: None
        })
    );
    assert_eq!(
        decode_response(b(&[SSH_FXP_OPEN, 0, 0, 0, 7])),
        Err(DecodeError::UnknownType {
            ty: SSH_FXP_OPEN,
            id: Some(7)
        })
    );
    assert_eq!(decode_request(Bytes::new()), Err(DecodeError::Empty));
    assert_eq!(decode_response(Bytes::new()), Err(DecodeError::Empty));
    assert_eq!(
        decode_request(b(&[SSH_FXP_INIT, 0, 0])),
        Err(DecodeError::Truncated)
    );
    assert_eq!(
        decode_request(b(&[SSH_FXP_CLOSE, 0, 0, 0])),
        Err(DecodeError::Truncated)
    );
}

#[test]
fn trailing_bytes_after_a_request_are_ignored() {
    for r in all_requests() {
        let wire = framed(&r);
        let mut body = BytesMut::from(&wire[4..]);
        body.extend_from_slice(b"\x00\x00\x00\x09trailing!");
        assert_eq!(decode_request(body.freeze()).unwrap(), r);
    }
    // OpenSSH's INIT may list extensions after the version.
    let init = b(b"\x01\x00\x00\x00\x03\x00\x00\x00\x01x\x00\x00\x00\x01y");
    assert_eq!(decode_request(init).unwrap(), Request::Init { version: 3 });
}

#[test]
fn decoding_slices_the_packet_without_copying() {
    let wire = framed(&Request::Write {
        id: 1,
        handle: b(b"hh"),
        offset: 0,
        data: b(&[5u8; 4096]),
    });
    let packet = wire.slice(4..);
    let range = packet.as_ptr() as usize..packet.as_ptr() as usize + packet.len();
    match decode_request(packet.clone()).unwrap() {
        Request::Write { handle, data, .. } => {
            assert!(range.contains(&(handle.as_ptr() as usize)));
            assert!(range.contains(&(data.as_ptr() as usize)));
            assert_eq!(data.as_ptr() as usize + data.len(), range.end);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn non_utf8_strings_survive_unchanged() {
    let path = b(b"\xff\x00\xc3(/\x80");
    let r = Request::Rename {
        id: 1,
        old: path.clone(),
        new: b(b"\xfe"),
    };
    assert_eq!(decode_request(framed(&r).slice(4..)).unwrap(), r);
}

#[test]
fn attrs_round_trip_for_every_flag_combination() {
    for mask in 0u32..16 {
        let a = FileAttrs {
            size: (mask & 1 != 0).then_some(u64::MAX - 1),
            uid_gid: (mask & 2 != 0).then_some((7, u32::MAX)),
            permissions: (mask & 4 != 0).then_some(0o104755),
            times: (mask & 8 != 0).then_some((1, 2_000_000_000)),
        };
        assert_eq!(a.flags(), mask);
        let mut buf = BytesMut::new();
        a.encode(&mut buf);
        buf.extend_from_slice(b"rest");
        let mut bytes = buf.freeze();
        assert_eq!(FileAttrs::decode(&mut bytes).unwrap(), a);
        assert_eq!(&bytes[..], b"rest");
    }
}

#[test]
fn extended_attrs_are_skipped() {
    let mut buf = BytesMut::new();
    buf.put_u32(ATTR_SIZE | ATTR_PERMISSIONS | ATTR_EXTENDED | 0x40);
    buf.put_u64(99);
    buf.put_u32(0o600);
    buf.put_u32(2);
    for s in [&b"name1"[..], b"value1", b"", b"v2"] {
        buf.put_u32(s.len() as u32);
        buf.put_slice(s);
    }
    buf.put_slice(b"after");
    let mut bytes = buf.freeze();
    let a = FileAttrs::decode(&mut bytes).unwrap();
    assert_eq!(
        a,
        FileAttrs {
            size: Some(99),
            permissions: Some(0o600),
            ..Default::default()
        }
    );
    assert_eq!(&bytes[..], b"after");

    // A count far beyond what the packet holds ends in an error, quickly.
    let mut buf = BytesMut::new();
    buf.put_u32(ATTR_EXTENDED);
    buf.put_u32(u32::MAX);
    buf.put_u32(0);
    buf.put_u32(0);
    assert_eq!(
        FileAttrs::decode(&mut buf.freeze()),
        Err(DecodeError::Truncated)
    );
}

/// A xorshift PRNG: deterministic fuzzing without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_valid_packets_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut requests: Vec<Bytes> = all_requests()
        .iter()
        .map(|r| framed(r).slice(4..))
        .collect();
    requests.extend(all_responses().into_iter().map(|p| p.slice(4..)));
    let mut decoded = 0;
    for _ in 0..40_000 {
        let base = &requests[rng.below(requests.len())];
        let mut v = base.to_vec();
        for _ in 0..=rng.below(4) {
            let i = rng.below(v.len());
            v[i] = match rng.below(3) {
                0 => rng.next() as u8,
                1 => 0xff,
                _ => 0,
            };
        }
        if rng.below(4) == 0 {
            v.truncate(rng.below(v.len() + 1));
        }
        let p = Bytes::from(v);
        decoded += decode_request(p.clone()).is_ok() as u32;
        decoded += decode_response(p).is_ok() as u32;
    }
    // Mutations of payload bytes mostly keep packets well-formed; the parsers were reached.
    assert!(decoded > 1000, "only {decoded} decoded");
}

#[test]
fn reader_handles_random_chunking_and_keeps_leftovers() {
    let mut wire = BytesMut::new();
    for r in all_requests() {
        encode_request(&mut wire, &r);
    }
    let mut rng = Rng(12345);
    for _ in 0..300 {
        let mut reader = PacketReader::new(1 << 20);
        let mut got = Vec::new();
        let mut rest = &wire[..];
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(97));
            reader.push(&rest[..n]);
            rest = &rest[n..];
            while let Some(p) = reader.next_packet().unwrap() {
                got.push(decode_request(p).unwrap());
            }
        }
        assert_eq!(got, all_requests());
        assert_eq!(reader.next_packet(), Ok(None));
    }
}

#[test]
fn reader_accepts_exactly_the_limit() {
    let max = 300;
    let mut reader = PacketReader::new(max);
    let mut wire = Vec::new();
    wire.extend_from_slice(&(max as u32).to_be_bytes());
    wire.extend(std::iter::repeat_n(7u8, max));
    reader.push(&wire[..max]);
    assert_eq!(reader.next_packet(), Ok(None));
    reader.push(&wire[max..]);
    assert_eq!(reader.next_packet().unwrap().unwrap().len(), max);
    assert_eq!(reader.next_packet(), Ok(None));
    reader.push(&(max as u32 + 1).to_be_bytes());
    assert_eq!(
        reader.next_packet(),
        Err(FrameError::TooLong { len: max + 1, max })
    );
    // The server's configuration: 256 KiB of data plus 1 KiB of headroom.
    let mut reader = PacketReader::new(256 * 1024 + 1024);
    reader.push(&u32::MAX.to_be_bytes());
    assert!(matches!(
        reader.next_packet(),
        Err(FrameError::TooLong { .. })
    ));
}

/// One of each reply, framed.
fn all_responses() -> Vec<Bytes> {
    let a = FileAttrs {
        size: Some(1),
        uid_gid: Some((3, 4)),
        permissions: Some(0o100644),
        times: Some((1, 2)),
    };
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    encode_version(&mut buf, 3, &[(b"limits@openssh.com", b"1")]);
    out.push(buf.split().freeze());
    encode_status(&mut buf, 5, SSH_FX_EOF, "end");
    out.push(buf.split().freeze());
    encode_handle(&mut buf, 6, b"h1");
    out.push(buf.split().freeze());
    encode_attrs(&mut buf, 7, &a);
    out.push(buf.split().freeze());
    let slot = begin_data(&mut buf, 8);
    buf.put_slice(b"payload");
    slot.finish(&mut buf);
    out.push(buf.split().freeze());
    let mut w = NameWriter::new(&mut buf, 9);
    w.push(b"f1", b"long1", &a);
    w.push(b"f2", b"long2", &FileAttrs::default());
    w.finish();
    out.push(buf.split().freeze());
    encode_extended_reply(&mut buf, 10, b"xyz");
    out.push(buf.split().freeze());
    out
}

#[test]
fn truncated_responses_error_without_panicking() {
    for wire in all_responses() {
        let body = wire.slice(4..);
        let ty = body[0];
        for cut in 0..body.len() {
            let res = decode_response(body.slice(..cut));
            // These end in optional or open-ended parts: shorter forms are well-formed.
            let open_ended = matches!(
                ty,
                SSH_FXP_VERSION | SSH_FXP_STATUS | SSH_FXP_EXTENDED_REPLY
            );
            if cut < 5 || !open_ended {
                assert!(res.is_err(), "type {ty} cut at {cut} decoded as {res:?}");
            }
        }
    }
}

#[test]
fn data_slots_work_anywhere_in_a_buffer() {
    let mut buf = BytesMut::new();
    encode_status(&mut buf, 1, SSH_FX_OK, "");
    let slot = begin_data(&mut buf, 2);
    assert_eq!(slot.data_start(), slot.packet_start() + DATA_HEADER_LEN);
    let room = slot.reserve(&mut buf, 32 * 1024);
    assert_eq!(room.len(), 32 * 1024);
    room[..5].copy_from_slice(b"hello");
    slot.finish_len(&mut buf, 5);
    encode_handle(&mut buf, 3, b"h");

    let mut reader = PacketReader::new(1 << 20);
    reader.push(&buf);
    let mut got = Vec::new();
    while let Some(p) = reader.next_packet().unwrap() {
        got.push(decode_response(p).unwrap());
    }
    assert_eq!(
        got,
        vec![
            Response::Status {
                id: 1,
                code: SSH_FX_OK,
                msg: Bytes::new()
            },
            Response::Data {
                id: 2,
                data: b(b"hello")
            },
            Response::Handle {
                id: 3,
                handle: b(b"h")
            },
        ]
    );

    // The original entry points: a buffer holding just the DATA packet.
    let mut buf = BytesMut::new();
    begin_data(&mut buf, 4);
    buf.put_slice(b"abc");
    finish_data(&mut buf);
    assert_eq!(
        decode_response(buf.freeze().slice(4..)).unwrap(),
        Response::Data {
            id: 4,
            data: b(b"abc")
        }
    );

    // An empty read is a zero-length DATA.
    let mut buf = BytesMut::new();
    let slot = begin_data(&mut buf, 5);
    slot.reserve(&mut buf, 100);
    slot.finish_len(&mut buf, 0);
    assert_eq!(buf.len(), DATA_HEADER_LEN);
}

#[test]
fn name_writer_patches_on_drop_and_can_cancel() {
    let a = FileAttrs {
        size: Some(10),
        ..Default::default()
    };
    let mut expected = BytesMut::new();
    encode_name(
        &mut expected,
        4,
        [
            NameEntry {
                filename: b"x",
                longname: b"lx",
                attrs: &a,
            },
            NameEntry {
                filename: b"y",
                longname: b"ly",
                attrs: &a,
            },
        ],
    );
    let mut buf = BytesMut::new();
    {
        let mut w = NameWriter::new(&mut buf, 4);
        assert!(w.is_empty());
        w.push(b"x", b"lx", &a);
        w.push(b"y", b"ly", &a);
        assert_eq!(w.len(), expected.len());
        // dropped without finish()
    }
    assert_eq!(buf, expected);

    encode_status(&mut buf, 1, SSH_FX_OK, "");
    let before = buf.clone();
    let mut w = NameWriter::new(&mut buf, 5);
    w.push(b"z", b"lz", &a);
    w.cancel();
    assert_eq!(buf, before);

    let mut buf = BytesMut::new();
    encode_name(&mut buf, 6, std::iter::empty());
    assert_eq!(
        decode_response(buf.freeze().slice(4..)).unwrap(),
        Response::Name {
            id: 6,
            entries: vec![]
        }
    );
}

#[test]
fn extension_replies_decode() {
    let s = StatVfsReply {
        bsize: 4096,
        frsize: 512,
        blocks: 1 << 40,
        bfree: 5,
        bavail: 4,
        files: 3,
        ffree: 2,
        favail: 1,
        fsid: 0xdead_beef,
        flag: SSH_FXE_STATVFS_ST_RDONLY | SSH_FXE_STATVFS_ST_NOSUID,
        namemax: 255,
    };
    let mut buf = BytesMut::new();
    encode_statvfs_reply(&mut buf, 11, &s);
    let Response::ExtendedReply { id: 11, data } =
        decode_response(buf.freeze().slice(4..)).unwrap()
    else {
        panic!("not an extended reply");
    };
    assert_eq!(StatVfsReply::decode(&data), Ok(s));
    assert_eq!(
        StatVfsReply::decode(&data[..87]),
        Err(DecodeError::Truncated)
    );

    let mut buf = BytesMut::new();
    encode_limits_reply(&mut buf, 12, 262_144, 261_120, 261_120, 0);
    let Response::ExtendedReply { id: 12, data } =
        decode_response(buf.freeze().slice(4..)).unwrap()
    else {
        panic!("not an extended reply");
    };
    assert_eq!(
        LimitsReply::decode(&data),
        Ok(LimitsReply {
            max_packet_len: 262_144,
            max_read_len: 261_120,
            max_write_len: 261_120,
            max_open_handles: 0
        })
    );
    assert_eq!(
        LimitsReply::decode(&data[..31]),
        Err(DecodeError::Truncated)
    );
}

/// 2024-11-26 19:52:00 UTC.
const NOV26: i64 = 1_732_650_720;

fn ls(name: &[u8], mode: u32, nlink: u64, size: u64, mtime: i64, now: i64) -> String {
    let mut out = b"previous".to_vec();
    write_longname_at(
        &mut out,
        name,
        &LongnameInfo {
            mode,
            nlink,
            uid: 1000,
            gid: 1000,
            size,
            mtime,
        },
        now,
    );
    assert!(out.starts_with(b"previous"), "appends");
    String::from_utf8_lossy(&out[8..]).into_owned()
}

#[test]
fn longnames_match_openssh() {
    assert_eq!(
        ls(b"name", 0o100644, 1, 1234, NOV26, NOV26 + 3600),
        "-rw-r--r--    1 1000     1000         1234 Nov 26 19:52 name"
    );
    // 2024-03-05 08:07 is more than six months before Nov 26.
    assert_eq!(
        ls(b"dir", 0o040755, 2, 4096, 1_709_626_020, NOV26),
        "drwxr-xr-x    2 1000     1000         4096 Mar  5  2024 dir"
    );
    // Future times show the year, like OpenSSH.
    assert_eq!(
        ls(b"f", 0o100600, 1, 0, NOV26, NOV26 - 60),
        "-rw-------    1 1000     1000            0 Nov 26  2024 f"
    );
    // The six-month boundary: strictly newer than now - 182.5 days shows the time.
    let six = 365 * 24 * 3600 / 2;
    assert!(ls(b"f", 0o100644, 1, 0, NOV26 - six + 1, NOV26).contains(':'));
    assert!(!ls(b"f", 0o100644, 1, 0, NOV26 - six, NOV26).contains(':'));
    // Wide link counts and sizes push the columns, as printf does.
    assert_eq!(
        ls(b"big", 0o100644, 1000, 12_345_678_901, 0, NOV26),
        "-rw-r--r--  1000 1000     1000     12345678901 Jan  1  1970 big"
    );
    // Beyond the calendar: no date, like a failing localtime().
    assert_eq!(
        ls(b"odd", 0o100644, 1, 5, i64::MAX, NOV26),
        "-rw-r--r--    1 1000     1000            5  odd"
    );
    // Names are bytes.
    let mut out = Vec::new();
    write_longname_at(&mut out, b"\xff\xfe", &LongnameInfo::default(), 0);
    assert!(out.ends_with(b" \xff\xfe"));
    let wide = longname(
        b"x",
        &LongnameInfo {
            mode: 0o100644,
            uid: u32::MAX,
            gid: 123_456_789,
            ..Default::default()
        },
    );
    assert!(
        wide.starts_with(b"-rw-r--r--    0 4294967295 123456789        0 Jan  1  1970 x"),
        "{}",
        String::from_utf8_lossy(&wide)
    );
}

#[test]
fn mode_strings_cover_types_and_special_bits() {
    for (mode, want) in [
        (0o100644, "-rw-r--r--"),
        (0o104644, "-rwSr--r--"),
        (0o106755, "-rwsr-sr-x"),
        (0o102745, "-rwxr-Sr-x"),
        (0o041777, "drwxrwxrwt"),
        (0o041776, "drwxrwxrwT"),
        (0o043755, "drwxr-sr-t"),
        (0o120777, "lrwxrwxrwx"),
        (0o020666, "crw-rw-rw-"),
        (0o060660, "brw-rw----"),
        (0o010600, "prw-------"),
        (0o140755, "srwxr-xr-x"),
        (0o000000, "----------"),
        (0o000644, "-rw-r--r--"),
    ] {
        assert_eq!(&mode_string(mode), want.as_bytes(), "{mode:o}");
    }
}

/// A frame as the request it stands for (a scattered WRITE's data joined).
fn frame_request(f: Frame) -> Request {
    match f {
        Frame::Packet(p) => decode_request(p).unwrap(),
        Frame::Write {
            id,
            handle,
            offset,
            data,
        } => Request::Write {
            id,
            handle,
            offset,
            data: data.concat().into(),
        },
    }
}

#[test]
fn frames_keep_write_data_in_the_received_chunks() {
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let mut requests = all_requests();
    requests.push(Request::Write {
        id: 77,
        handle: b(b"\0\0\0\x09"),
        offset: 1 << 40,
        data: Bytes::from(big.clone()),
    });
    requests.push(Request::Write {
        id: 78,
        handle: b(&[b'h'; 300]), // over the scatter path's handle limit: gathered
        offset: 5,
        data: Bytes::from(big[..9000].to_vec()),
    });
    requests.extend(all_requests());
    let mut wire = BytesMut::new();
    for r in &requests {
        encode_request(&mut wire, r);
    }
    let wire = wire.freeze();
    let mut rng = Rng(999);
    for round in 0..200 {
        let mut reader = PacketReader::new(1 << 20);
        let (mut got, mut scattered) = (Vec::new(), 0);
        let mut at = 0;
        while at < wire.len() {
            // Mostly channel-message sized chunks (not merged on arrival), sometimes tiny
            // ones (merged).
            let n = if round % 3 == 0 {
                1 + rng.below(100)
            } else {
                4096 + rng.below(66_000)
            };
            let end = (at + n).min(wire.len());
            reader.push_bytes(wire.slice(at..end));
            at = end;
            while let Some(f) = reader.next_frame().unwrap() {
                if let Frame::Write { data, .. } = &f {
                    scattered += 1;
                    // The data is slices of what was pushed, not a copy.
                    let base = wire.as_ptr() as usize;
                    assert!(
                        data.iter().all(|d| {
                            let p = d.as_ptr() as usize;
                            d.is_empty() || (p >= base && p + d.len() <= base + wire.len())
                        }) || round % 3 == 0
                    );
                }
                got.push(frame_request(f));
            }
        }
        assert_eq!(got, requests, "round {round}");
        assert_eq!(reader.next_frame(), Ok(None));
        if round % 3 != 0 {
            assert!(scattered >= 1, "round {round}");
        }
    }
}

#[test]
fn a_write_claiming_more_data_than_its_packet_is_malformed() {
    let mut body = vec![SSH_FXP_WRITE];
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(&4u32.to_be_bytes());
    body.extend_from_slice(b"\0\0\0\x01");
    body.extend_from_slice(&0u64.to_be_bytes());
    body.extend_from_slice(&100_000u32.to_be_bytes()); // claims 100000, carries 20000
    body.extend(std::iter::repeat_n(1u8, 20_000));
    let mut wire = (body.len() as u32).to_be_bytes().to_vec();
    wire.extend_from_slice(&body);
    let mut reader = PacketReader::new(1 << 20);
    for c in wire.chunks(8192) {
        reader.push(c);
    }
    let Some(Frame::Packet(p)) = reader.next_frame().unwrap() else {
        panic!("expected a gathered packet");
    };
    assert_eq!(decode_request(p), Err(DecodeError::Truncated));
    assert_eq!(reader.next_frame(), Ok(None));
}
