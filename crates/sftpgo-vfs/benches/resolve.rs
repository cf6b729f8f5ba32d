//! Micro-benchmarks of the path resolver: normalizing client paths and resolving them
//! beneath the home dir's fd (openat2 with RESOLVE_BENEATH) for stat and open, the work
//! behind every metadata request.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sftpgo_vfs::{OpenOptions, Root, VirtualPath};

fn bench(c: &mut Criterion) {
    c.bench_function("parse a plain path", |b| {
        b.iter(|| VirtualPath::parse(black_box(b"/photos/2024/summer/img_0001.jpg")).unwrap())
    });
    c.bench_function("parse a hostile path", |b| {
        b.iter(|| VirtualPath::parse(black_box(b"/a/./b/../../../c//d/e/../f.txt")).unwrap())
    });
    let cwd = VirtualPath::parse(b"/photos/2024").unwrap();
    c.bench_function("join a relative path", |b| {
        b.iter(|| cwd.join(black_box(b"../2023/./winter/img.jpg")).unwrap())
    });

    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("a/b/c/d")).unwrap();
    std::fs::write(home.path().join("a/b/c/d/file.txt"), b"x").unwrap();
    std::os::unix::fs::symlink("../../..", home.path().join("a/b/c/up")).unwrap();
    let root = Root::open(home.path()).unwrap();
    let shallow = VirtualPath::parse(b"/a").unwrap();
    let deep = VirtualPath::parse(b"/a/b/c/d/file.txt").unwrap();
    let via_link = VirtualPath::parse(b"/a/b/c/up/a/b/c/d/file.txt").unwrap();
    c.bench_function("stat depth 1", |b| {
        b.iter(|| root.stat(black_box(&shallow)).unwrap())
    });
    c.bench_function("stat depth 5", |b| {
        b.iter(|| root.stat(black_box(&deep)).unwrap())
    });
    c.bench_function("stat through a symlink inside the home", |b| {
        b.iter(|| root.stat(black_box(&via_link)).unwrap())
    });
    let read = OpenOptions {
        read: true,
        ..Default::default()
    };
    c.bench_function("open depth 5 for reading", |b| {
        b.iter(|| root.open_file(black_box(&deep), &read).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
