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
                name: b(b"copy-data"),
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
fn longnames_look_like_ls() {
    let mut out = Vec::new();
    let now = chrono::Utc::now().timestamp();
    write_longname(
        &mut out,
        b"file.txt",
        &LongnameInfo {
            mode: 0o100644,
            nlink: 1,
            uid: 1000,
            gid: 100,
            size: 1234,
            mtime: now,
        },
    );
    let s = String::from_utf8(out).unwrap();
    assert!(
        s.starts_with("-rw-r--r--    1 1000     100          1234 "),
        "{s}"
    );
    assert!(s.ends_with(" file.txt") && s.contains(':'), "{s}");
    let mut out = Vec::new();
    write_longname(
        &mut out,
        b"d",
        &LongnameInfo {
            mode: 0o043755,
            nlink: 2,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
        },
    );
    let s = String::from_utf8(out).unwrap();
    assert!(s.starts_with("drwxr-sr-t"), "{s}");
    assert!(s.contains(" 1970 "), "{s}");
    let mut out = Vec::new();
    write_longname(
        &mut out,
        b"l",
        &LongnameInfo {
            mode: 0o120777,
            ..Default::default()
        },
    );
    assert!(out.starts_with(b"lrwxrwxrwx"));
}
