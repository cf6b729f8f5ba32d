//! Micro-benchmarks of the per-packet work: decoding requests, encoding replies and
//! normalizing paths.

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, black_box, criterion_group, criterion_main};
use sftpgo_sftp::codec::{self, FileAttrs, Request};
use sftpgo_vfs::VirtualPath;

fn encoded(r: &Request) -> Bytes {
    let mut buf = BytesMut::new();
    codec::encode_request(&mut buf, r);
    buf.freeze().slice(4..)
}

fn bench(c: &mut Criterion) {
    let write = encoded(&Request::Write {
        id: 1,
        handle: Bytes::from_static(b"\0\0\0\x01"),
        offset: 1 << 20,
        data: Bytes::from(vec![7u8; 32 * 1024]),
    });
    c.bench_function("decode WRITE 32 KiB", |b| {
        b.iter(|| codec::decode_request(black_box(write.clone())).unwrap())
    });
    let mut buf = BytesMut::with_capacity(1 << 16);
    c.bench_function("encode STATUS", |b| {
        b.iter(|| {
            buf.clear();
            codec::encode_status(&mut buf, black_box(9), codec::SSH_FX_OK, "");
        })
    });
    let attrs = FileAttrs {
        size: Some(1234),
        uid_gid: Some((1000, 1000)),
        permissions: Some(0o100644),
        times: Some((1, 2)),
    };
    let mut long = Vec::with_capacity(128);
    c.bench_function("encode NAME with 100 entries", |b| {
        b.iter(|| {
            buf.clear();
            let mut w = codec::NameWriter::new(&mut buf, 3);
            for i in 0..100u64 {
                long.clear();
                codec::write_longname(
                    &mut long,
                    b"some-file-name.txt",
                    &codec::LongnameInfo {
                        mode: 0o100644,
                        nlink: 1,
                        uid: 1000,
                        gid: 1000,
                        size: i,
                        mtime: 0,
                    },
                );
                w.push(b"some-file-name.txt", &long, &attrs);
            }
            w.finish();
        })
    });
    let chunk = vec![3u8; 32 * 1024];
    c.bench_function("encode DATA 32 KiB", |b| {
        b.iter(|| {
            buf.clear();
            let slot = codec::begin_data(&mut buf, black_box(4));
            let room = slot.reserve(&mut buf, chunk.len());
            room.copy_from_slice(&chunk);
            slot.finish_len(&mut buf, chunk.len());
        })
    });
    c.bench_function("normalize a hostile path", |b| {
        b.iter(|| VirtualPath::parse(black_box(b"/a/./b/../../../c//d/e/../f.txt")).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
