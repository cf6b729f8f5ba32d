//! The conformance suite every storage backend passes: what `UserFs` and `Transfer`
//! rely on, checked through the [`Filesystem`] trait only. A backend runs it on a fresh,
//! empty filesystem (`run(&fs)`); what its [`Capabilities`] leave out is checked to be
//! refused, not skipped.

use std::io;

use bytes::{Bytes, BytesMut};
use sftpgo_vfs::VirtualPath;

use super::{Filesystem, FsFile, IoGuard, UploadProbe, WriteRequest};
use crate::fs::{SetAttrs, UploadFlags};

/// Runs every check on `fs`, which must be empty.
pub async fn run<F: Filesystem>(fs: &F) {
    directories(fs).await;
    upload_and_download(fs).await;
    admission_sees_what_the_path_leads_to(fs).await;
    uploads_end_published_or_discarded(fs).await;
    rename_and_remove_report_the_files(fs).await;
    attributes(fs).await;
    links(fs).await;
}

/// No rule around writes (the transfer's own rules are tested with the transfer).
pub struct Plain;

impl IoGuard for Plain {
    fn run<T>(self, io: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        io()
    }
}

fn p(s: &str) -> VirtualPath {
    VirtualPath::parse(s.as_bytes()).unwrap()
}

fn create(atomic: bool) -> WriteRequest {
    WriteRequest {
        flags: UploadFlags {
            create: true,
            truncate: true,
            ..Default::default()
        },
        mode: 0o644,
        owner: None,
        atomic,
        create_first: true,
    }
}

/// Opens `path` for an upload that any probe admits.
async fn open<F: Filesystem>(fs: &F, path: &VirtualPath, req: WriteRequest) -> F::File {
    let opened = fs
        .open_write(path, req, |_| Ok::<(), ()>(()))
        .await
        .unwrap()
        .unwrap();
    opened.file
}

/// Writes `data` to `path` and publishes it.
async fn put<F: Filesystem>(fs: &F, path: &str, data: &[u8]) {
    let file = open(fs, &p(path), create(false)).await;
    file.write_at(0, vec![Bytes::copy_from_slice(data)], Plain)
        .await
        .unwrap();
    assert_eq!(
        file.finish(true, true).await.unwrap(),
        (data.len() as i64, true)
    );
}

async fn get<F: Filesystem>(fs: &F, path: &str) -> io::Result<Vec<u8>> {
    let (file, size) = fs.open_read(&p(path)).await?;
    let (buf, n) = file
        .read_at(BytesMut::new(), 0, size as usize + 10, size)
        .await;
    assert_eq!(n?, size as usize);
    file.finish(true, false).await?;
    Ok(buf.to_vec())
}

async fn names<F: Filesystem>(fs: &F, dir: &str) -> Vec<String> {
    let mut names: Vec<String> = fs
        .read_dir(&p(dir))
        .await
        .unwrap()
        .into_iter()
        .map(|e| String::from_utf8(e.name).unwrap())
        .collect();
    names.sort();
    names
}

async fn directories<F: Filesystem>(fs: &F) {
    assert!(fs.stat(&VirtualPath::root()).await.unwrap().is_dir());
    fs.mkdir(&p("/d"), 0o755, None).await.unwrap();
    let err = fs.mkdir(&p("/d"), 0o755, None).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    let err = fs.mkdir(&p("/missing/sub"), 0o755, None).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    fs.mkdir(&p("/d/sub"), 0o755, None).await.unwrap();
    assert!(fs.stat(&p("/d/sub")).await.unwrap().is_dir());
    assert!(fs.lstat(&p("/d")).await.unwrap().is_dir());
    assert_eq!(names(fs, "/d").await, ["sub"]);
    assert_eq!(
        fs.stat(&p("/nothing")).await.unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    // Not empty, then empty.
    assert!(fs.rmdir(&p("/d")).await.is_err());
    fs.rmdir(&p("/d/sub")).await.unwrap();
    fs.rmdir(&p("/d")).await.unwrap();
    assert!(names(fs, "/").await.is_empty());
}

async fn upload_and_download<F: Filesystem>(fs: &F) {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let file = open(fs, &p("/f.bin"), create(false)).await;
    // Two writes, the second in two buffers.
    file.write_at(0, vec![Bytes::copy_from_slice(&data[..1000])], Plain)
        .await
        .unwrap();
    let rest = vec![
        Bytes::copy_from_slice(&data[1000..5000]),
        Bytes::copy_from_slice(&data[5000..]),
    ];
    file.write_at(1000, rest, Plain).await.unwrap();
    assert_eq!(file.stat().await.unwrap().size, data.len() as u64);
    file.finish(true, true).await.unwrap();
    assert_eq!(get(fs, "/f.bin").await.unwrap(), data);
    let st = fs.stat(&p("/f.bin")).await.unwrap();
    assert!(st.is_file());
    assert_eq!(st.size, data.len() as u64);

    // Ranged reads after a header, short at the end, empty past it.
    let (file, size) = fs.open_read(&p("/f.bin")).await.unwrap();
    let mut buf = BytesMut::with_capacity(3);
    buf.extend_from_slice(b"hdr");
    let (buf, n) = file.read_at(buf, 150_000, 100_000, size).await;
    assert_eq!(n.unwrap(), 50_000);
    assert_eq!(&buf[..3], b"hdr");
    assert_eq!(&buf[3..], &data[150_000..]);
    let (_, n) = file.read_at(BytesMut::new(), 300_000, 10, size).await;
    assert_eq!(n.unwrap(), 0);
    file.finish(true, false).await.unwrap();

    // A guard's refusal is the write's, and nothing is written.
    let file = open(fs, &p("/g"), create(false)).await;
    struct Refuse;
    impl IoGuard for Refuse {
        fn run<T>(self, _: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
            Err(io::Error::other("refused"))
        }
    }
    let err = file
        .write_at(0, vec![Bytes::from_static(b"x")], Refuse)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "refused");
    file.barrier().await;
    file.finish(true, true).await.unwrap();
    assert_eq!(get(fs, "/g").await.unwrap(), b"");

    // Missing files and directories are not opened.
    assert_eq!(
        fs.open_read(&p("/none")).await.err().unwrap().kind(),
        io::ErrorKind::NotFound
    );
    fs.mkdir(&p("/dir"), 0o755, None).await.unwrap();
    let res = fs
        .open_write(&p("/dir"), create(false), |_| Ok::<(), ()>(()))
        .await;
    assert_eq!(res.err().unwrap().kind(), io::ErrorKind::IsADirectory);
    let res = fs
        .open_write(&p("/nodir/f"), create(false), |_| Ok::<(), ()>(()))
        .await;
    assert_eq!(res.err().unwrap().kind(), io::ErrorKind::NotFound);
    fs.rmdir(&p("/dir")).await.unwrap();
    for f in ["/f.bin", "/g"] {
        fs.remove_file(&p(f)).await.unwrap();
    }
}

/// `admit` sees nothing for a new file and the file for an existing one, and its refusal
/// leaves the storage as it was.
async fn admission_sees_what_the_path_leads_to<F: Filesystem>(fs: &F) {
    for atomic in [false, true] {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let admit = move |probe: UploadProbe| {
            log.lock().unwrap().push(probe.resolved.map(|st| st.size));
            Err::<(), &str>("no room")
        };
        let refused = fs.open_write(&p("/new"), create(atomic), admit).await;
        assert_eq!(refused.unwrap().err(), Some("no room"));
        assert!(seen.lock().unwrap().iter().all(Option::is_none));
        assert!(
            names(fs, "/").await.is_empty(),
            "a refused upload left a file"
        );

        put(fs, "/old", b"12345").await;
        seen.lock().unwrap().clear();
        let log = seen.clone();
        let admit = move |probe: UploadProbe| {
            log.lock().unwrap().push(probe.resolved.map(|st| st.size));
            match probe.resolved {
                Some(_) => Err("no room"),
                None => Ok(()),
            }
        };
        let refused = fs.open_write(&p("/old"), create(atomic), admit).await;
        assert_eq!(refused.unwrap().err(), Some("no room"));
        assert_eq!(seen.lock().unwrap().last(), Some(&Some(5)));
        assert_eq!(get(fs, "/old").await.unwrap(), b"12345");
        assert_eq!(names(fs, "/").await, ["old"]);
        fs.remove_file(&p("/old")).await.unwrap();
    }
}

/// An atomic upload appears only when published; discarded or dropped, it leaves
/// nothing, and the file it would have replaced is untouched.
async fn uploads_end_published_or_discarded<F: Filesystem>(fs: &F) {
    put(fs, "/t", b"previous").await;
    let opened = fs
        .open_write(&p("/t"), create(true), |_| Ok::<(), ()>(()))
        .await
        .unwrap()
        .unwrap();
    let atomic = opened.atomic;
    opened
        .file
        .write_at(0, vec![Bytes::from_static(b"new content")], Plain)
        .await
        .unwrap();
    if atomic {
        assert_eq!(get(fs, "/t").await.unwrap(), b"previous");
    }
    assert_eq!(opened.file.finish(false, true).await.unwrap().1, !atomic);
    if atomic {
        assert_eq!(get(fs, "/t").await.unwrap(), b"previous");
        assert_eq!(names(fs, "/").await, ["t"]);
        // Dropped without finishing: discarded too.
        let opened = fs
            .open_write(&p("/t"), create(true), |_| Ok::<(), ()>(()))
            .await
            .unwrap()
            .unwrap();
        opened
            .file
            .write_at(0, vec![Bytes::from_static(b"lost")], Plain)
            .await
            .unwrap();
        drop(opened);
        assert_eq!(names(fs, "/").await, ["t"]);
        assert_eq!(get(fs, "/t").await.unwrap(), b"previous");
        // Published: the new content, under the target's name only.
        let file = open(fs, &p("/t"), create(true)).await;
        file.write_at(0, vec![Bytes::from_static(b"published")], Plain)
            .await
            .unwrap();
        assert_eq!(file.finish(true, true).await.unwrap(), (9, true));
        assert_eq!(get(fs, "/t").await.unwrap(), b"published");
        assert_eq!(names(fs, "/").await, ["t"]);
    }
    fs.remove_file(&p("/t")).await.unwrap();
}

async fn rename_and_remove_report_the_files<F: Filesystem>(fs: &F) {
    put(fs, "/a", b"aaaa").await;
    put(fs, "/b", b"bb").await;
    let err = fs.rename(&p("/a"), &p("/b"), false).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    let renamed = fs.rename(&p("/a"), &p("/b"), true).await.unwrap();
    assert_eq!(renamed.source.map(|s| s.size), Some(4));
    assert_eq!(renamed.replaced.map(|s| s.size), Some(2));
    assert_eq!(names(fs, "/").await, ["b"]);
    assert_eq!(get(fs, "/b").await.unwrap(), b"aaaa");
    let renamed = fs.rename(&p("/b"), &p("/c"), false).await.unwrap();
    assert_eq!(renamed.source.map(|s| s.size), Some(4));
    assert!(renamed.replaced.is_none());
    let err = fs.rename(&p("/b"), &p("/d"), false).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    let removed = fs.remove_file(&p("/c")).await.unwrap();
    assert_eq!(removed.map(|s| s.size), Some(4));
    let err = fs.remove_file(&p("/c")).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    if fs.capabilities().atomic_rename {
        fs.mkdir(&p("/dir"), 0o755, None).await.unwrap();
        put(fs, "/dir/x", b"x").await;
        fs.rename(&p("/dir"), &p("/moved"), false).await.unwrap();
        assert_eq!(get(fs, "/moved/x").await.unwrap(), b"x");
        fs.remove_file(&p("/moved/x")).await.unwrap();
        fs.rmdir(&p("/moved")).await.unwrap();
    }
    assert!(names(fs, "/").await.is_empty());
}

async fn attributes<F: Filesystem>(fs: &F) {
    put(fs, "/s", b"0123456789").await;
    let truncate = SetAttrs {
        size: Some(4),
        ..Default::default()
    };
    let times = SetAttrs {
        times: Some((1_000_000_000, 1_200_000_000)),
        ..Default::default()
    };
    if fs.capabilities().setstat {
        fs.set_attrs(&p("/s"), truncate).await.unwrap();
        assert_eq!(get(fs, "/s").await.unwrap(), b"0123");
        fs.set_attrs(&p("/s"), times).await.unwrap();
        assert_eq!(fs.stat(&p("/s")).await.unwrap().mtime, 1_200_000_000);
        // On an open upload too.
        let file = open(fs, &p("/s"), create(false)).await;
        file.set_attrs(SetAttrs {
            size: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
        file.finish(true, true).await.unwrap();
        assert_eq!(fs.stat(&p("/s")).await.unwrap().size, 2);
    }
    if fs.capabilities().statvfs {
        let st = fs.statvfs(&VirtualPath::root()).await.unwrap();
        assert!(st.blocks > 0);
    }
    fs.remove_file(&p("/s")).await.unwrap();
}

async fn links<F: Filesystem>(fs: &F) {
    put(fs, "/target", b"linked").await;
    let caps = fs.capabilities();
    let made = fs.symlink(b"target", &p("/link")).await;
    if caps.symlinks {
        made.unwrap();
        assert!(fs.lstat(&p("/link")).await.unwrap().is_symlink());
        // Targets are virtual paths: a relative one is taken from the link's directory.
        assert_eq!(fs.read_link(&p("/link")).await.unwrap(), b"/target");
        assert_eq!(get(fs, "/link").await.unwrap(), b"linked");
        // Removing the link removes no regular file.
        assert!(fs.remove_file(&p("/link")).await.unwrap().is_none());
    } else {
        assert_eq!(made.unwrap_err().kind(), io::ErrorKind::Unsupported);
    }
    let made = fs.hard_link(&p("/target"), &p("/hard")).await;
    if caps.hard_links {
        made.unwrap();
        assert_eq!(fs.stat(&p("/target")).await.unwrap().nlink, 2);
        assert_eq!(get(fs, "/hard").await.unwrap(), b"linked");
        fs.remove_file(&p("/hard")).await.unwrap();
    } else {
        assert_eq!(made.unwrap_err().kind(), io::ErrorKind::Unsupported);
    }
    fs.remove_file(&p("/target")).await.unwrap();
}
