use super::*;

/// A 300,000-byte file of a repeating pattern, open for reading, and its content.
fn patterned_file() -> (tempfile::TempDir, File, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &content).unwrap();
    let file = File::open(&path).unwrap();
    (dir, file, content)
}

/// Room for a read as `Transfer::read_capacity` gives it: what the file held at open
/// past `offset`, plus a page.
fn room(end: u64, offset: u64, len: usize) -> usize {
    len.min(end.saturating_sub(offset).saturating_add(4096) as usize)
}

#[test]
fn pread_into_appends_after_a_header_and_stops_at_eof() {
    let (_dir, file, content) = patterned_file();
    let full = |n| Read { n, complete: true };
    let mut buf = BytesMut::with_capacity(3);
    buf.extend_from_slice(b"hdr");
    assert_eq!(
        pread_into(&file, &mut buf, 1000, 255 * 1024, u64::MAX, Wait::Yes).unwrap(),
        full(255 * 1024)
    );
    assert_eq!(&buf[..3], b"hdr");
    assert_eq!(&buf[3..], &content[1000..1000 + 255 * 1024]);
    // Short at end of file, empty past it.
    let mut buf = BytesMut::new();
    let r = pread_into(&file, &mut buf, 299_990, 100, u64::MAX, Wait::Yes).unwrap();
    assert_eq!(r, full(10));
    assert_eq!(&buf[..], &content[299_990..]);
    let mut buf = BytesMut::new();
    let r = pread_into(&file, &mut buf, 400_000, 100, u64::MAX, Wait::Yes).unwrap();
    assert_eq!(r, full(0));
    assert!(buf.is_empty());
}

/// A `Wait::No` read returns a prefix of what a waiting read returns (all of it when
/// the data is in the page cache, as here right after writing), and says so.
#[test]
fn nowait_reads_return_a_prefix_and_the_rest_follows() {
    let (_dir, file, content) = patterned_file();
    for (offset, len) in [(0, 255 * 1024), (299_990, 100), (400_000, 100)] {
        let mut buf = BytesMut::new();
        let first = pread_into(&file, &mut buf, offset, len, u64::MAX, Wait::No).unwrap();
        let mut n = first.n;
        if !first.complete {
            let rest = pread_into(
                &file,
                &mut buf,
                offset + n as u64,
                len - n,
                u64::MAX,
                Wait::Yes,
            );
            n += rest.unwrap().n;
        }
        let start = (offset as usize).min(content.len());
        let end = (start + len).min(content.len());
        assert_eq!(n, end - start);
        assert_eq!(&buf[..], &content[start..end]);
    }
    // Cached here (just written): served without waiting.
    let mut buf = BytesMut::new();
    let r = pread_into(&file, &mut buf, 0, 4096, u64::MAX, Wait::No).unwrap();
    assert_eq!(
        r,
        Read {
            n: 4096,
            complete: true
        }
    );
}

/// Buffers sized by the size at open, and a file that grew since it was opened still
/// reads whole (the buffer grows), whether the rest is found by a waiting read or not.
#[test]
fn reads_sized_by_the_size_at_open_return_what_the_file_holds_now() {
    let (_dir, file, content) = patterned_file(); // 300,000 bytes
    for wait in [Wait::No, Wait::Yes] {
        // As opened: every byte, with the room the size asked for.
        for (offset, len) in [(0usize, 255 * 1024), (295_000, 65_536), (300_000, 4096)] {
            let mut buf = BytesMut::with_capacity(3 + room(300_000, offset as u64, len));
            buf.extend_from_slice(b"hdr");
            let r = pread_into(&file, &mut buf, offset as u64, len, 300_000, wait).unwrap();
            let want = &content[offset.min(300_000)..(offset + len).min(300_000)];
            assert!(r.complete || wait == Wait::No);
            if r.complete {
                assert_eq!(r.n, want.len(), "{offset}+{len}");
                assert_eq!(&buf[3..], want);
            }
        }
        // Opened when it held 1000 bytes: the 255 KiB asked for still come back whole.
        let len = 255 * 1024;
        let mut buf = BytesMut::with_capacity(3 + room(1000, 0, len));
        buf.extend_from_slice(b"hdr");
        let r = pread_into(&file, &mut buf, 0, len, 1000, wait).unwrap();
        if r.complete {
            assert_eq!(r.n, len);
            assert_eq!(&buf[3..], &content[..len]);
        }
        // ... and a read at the old end finds the data after it.
        let mut buf = BytesMut::with_capacity(room(1000, 1000, 10_000));
        let r = pread_into(&file, &mut buf, 1000, 10_000, 1000, wait).unwrap();
        if r.complete {
            assert_eq!(&buf[..], &content[1000..11_000]);
        }
    }
}

#[test]
fn pwrite_all_vectored_writes_every_buffer_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let parts: Vec<Bytes> = (0..2000u32)
        .map(|i| Bytes::from(vec![(i % 256) as u8; (i % 7) as usize * 13]))
        .collect();
    let expected: Vec<u8> = parts.iter().flat_map(|b| b.iter().copied()).collect();
    pwrite_all_vectored(&file, &parts, 5).unwrap();
    let got = std::fs::read(&path).unwrap();
    assert_eq!(&got[..5], &[0u8; 5]);
    assert_eq!(&got[5..], &expected[..]);
}

#[test]
fn stale_temp_files_are_removed_and_nothing_else() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("d")).unwrap();
    let stale = home
        .path()
        .join("d/.sftpgo-upload.0123456789abcdef.report.pdf");
    std::fs::write(&stale, b"partial").unwrap();
    std::fs::write(home.path().join(".sftpgo-upload.notours"), b"user file").unwrap();
    std::fs::write(home.path().join("keep"), b"data").unwrap();
    // A fresh temp (an upload in progress) and an old one behind a symlink stay.
    let fresh = home
        .path()
        .join("d/.sftpgo-upload.fedcba9876543210.live.bin");
    std::fs::write(&fresh, b"in progress").unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let outside = elsewhere.path().join(".sftpgo-upload.0123456789abcdef.x");
    std::fs::write(&outside, b"not ours").unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), home.path().join("link")).unwrap();
    let hours_ago = std::time::SystemTime::now() - Duration::from_secs(3 * 3600);
    for f in [&stale, &outside] {
        std::fs::File::options()
            .write(true)
            .open(f)
            .unwrap()
            .set_modified(hours_ago)
            .unwrap();
    }
    let max_age = Duration::from_secs(2 * 3600);
    assert_eq!(remove_stale_uploads(home.path(), max_age).unwrap(), 1);
    assert!(!stale.exists());
    assert!(fresh.exists() && outside.exists());
    assert_eq!(
        remove_stale_uploads(&home.path().join("missing"), max_age).unwrap(),
        0
    );
    assert!(
        home.path().join(".sftpgo-upload.notours").exists() && home.path().join("keep").exists()
    );
    let temp = temp_path(&VirtualPath::parse(b"/a/b.txt").unwrap()).unwrap();
    assert!(is_temp_name(temp.file_name().unwrap()));
}

/// The storage conformance suite, on a fresh home dir.
#[tokio::test]
async fn local_storage_conforms() {
    let home = tempfile::tempdir().unwrap();
    let fs = LocalFs::new(Arc::new(Root::open(home.path()).unwrap()));
    crate::storage::conformance::run(&fs).await;
    // Through the enum the shared layer holds, too.
    let home = tempfile::tempdir().unwrap();
    let volume = crate::storage::Volume::Local(Arc::new(Root::open(home.path()).unwrap()));
    crate::storage::conformance::run(&volume.session()).await;
}

/// What a request's task carries for a storage call stays small whatever the other
/// backends' calls need (an S3 call's future is kilobytes: boxed in `AnyFs`), because every
/// SFTP request's task is as large as its largest call and is moved when spawned.
#[test]
fn storage_calls_through_the_enum_stay_small() {
    use crate::storage::{AnyFile, Filesystem, FsFile, Volume};
    let home = tempfile::tempdir().unwrap();
    let fs = Volume::Local(Arc::new(Root::open(home.path()).unwrap())).session();
    let p = VirtualPath::root();
    let req = WriteRequest {
        flags: Default::default(),
        mode: 0o644,
        owner: None,
        atomic: false,
        create_first: false,
    };
    let calls = [
        ("stat", std::mem::size_of_val(&fs.stat(&p))),
        ("read_dir", std::mem::size_of_val(&fs.read_dir(&p))),
        ("rename", std::mem::size_of_val(&fs.rename(&p, &p, false))),
        ("open_read", std::mem::size_of_val(&fs.open_read(&p))),
        (
            "open_write",
            std::mem::size_of_val(&fs.open_write(&p, req, |_| Ok::<(), ()>(()))),
        ),
    ];
    let local = LocalFs::new(Arc::new(Root::open(home.path()).unwrap()));
    let local_calls = [
        std::mem::size_of_val(&local.stat(&p)),
        std::mem::size_of_val(&local.read_dir(&p)),
        std::mem::size_of_val(&local.rename(&p, &p, false)),
        std::mem::size_of_val(&local.open_read(&p)),
        std::mem::size_of_val(&local.open_write(&p, req, |_| Ok::<(), ()>(()))),
    ];
    eprintln!("through AnyFs: {calls:?}; LocalFs: {local_calls:?}");
    for ((name, size), local) in calls.iter().zip(local_calls) {
        // The enum adds its own state, never another backend's future.
        assert!(
            *size <= local + 128,
            "{name}: {size} bytes through AnyFs, {local} direct"
        );
    }
    let file = AnyFile::Local(local_file(home.path()));
    let read = std::mem::size_of_val(&file.read_at(BytesMut::new(), 0, 1, 1));
    let write =
        std::mem::size_of_val(&file.write_at(0, Vec::new(), crate::storage::conformance::Plain));
    eprintln!("AnyFile read_at {read}, write_at {write}");
    assert!(read <= 1024 && write <= 1024, "read {read}, write {write}");
}

fn local_file(home: &std::path::Path) -> LocalFile {
    std::fs::write(home.join("f"), b"x").unwrap();
    let fs = LocalFs::new(Arc::new(Root::open(home).unwrap()));
    let file = File::open(home.join("f")).unwrap();
    fs.file(file, None)
}
