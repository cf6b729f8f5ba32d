use super::garage::Garage;
use super::*;
use crate::storage::conformance::Plain;

/// The storage conformance suite, on a prefix of a Garage bucket.
#[tokio::test]
async fn s3_storage_conforms() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let vol = Arc::new(S3Volume::new(&garage.config("users/conformance")).unwrap());
    crate::storage::conformance::run(&S3Fs::new(vol.clone())).await;
    // Through the enum the shared layer holds, on another prefix.
    let volume = crate::storage::Volume::S3(Arc::new(
        S3Volume::new(&garage.config("users/other/")).unwrap(),
    ));
    crate::storage::conformance::run(&volume.session()).await;
}

fn vp(s: &str) -> VirtualPath {
    VirtualPath::parse(s.as_bytes()).unwrap()
}

fn create() -> WriteRequest {
    WriteRequest {
        flags: crate::fs::UploadFlags {
            create: true,
            truncate: true,
            ..Default::default()
        },
        mode: 0o644,
        owner: None,
        atomic: false,
        create_first: true,
    }
}

/// A new upload of `path`, nothing written yet.
async fn open_new(fs: &S3Fs, path: &str) -> S3File {
    fs.open_write(&vp(path), create(), |_| Ok::<(), ()>(()))
        .await
        .unwrap()
        .unwrap()
        .file
}

/// Writes `data` in 256 KiB writes; returns the open upload.
async fn upload(fs: &S3Fs, path: &str, data: &[u8]) -> S3File {
    let file = open_new(fs, path).await;
    for (i, chunk) in data.chunks(256 << 10).enumerate() {
        file.write_at(
            (i * (256 << 10)) as u64,
            vec![Bytes::copy_from_slice(chunk)],
            Plain,
        )
        .await
        .unwrap();
    }
    file
}

async fn pending_uploads(vol: &S3Volume) -> usize {
    vol.client
        .list_multipart_uploads()
        .bucket(&vol.bucket)
        .prefix(&vol.prefix)
        .send()
        .await
        .unwrap()
        .uploads()
        .len()
}

/// Large uploads go as multipart uploads of the part size: published whole, or, when
/// discarded, dropped or refused mid-way, they leave neither an object nor parts.
#[tokio::test]
async fn multipart_uploads_publish_whole_or_leave_nothing() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let cfg = S3Config {
        upload_part_size: 5,
        upload_concurrency: 2,
        ..garage.config("mp")
    };
    let vol = Arc::new(S3Volume::new(&cfg).unwrap());
    let fs = S3Fs::new(vol.clone());
    let data: Vec<u8> = (0..12u32 << 20).map(|i| (i % 253) as u8).collect();

    let file = upload(&fs, "/big.bin", &data).await;
    assert_eq!(pending_uploads(&vol).await, 1, "a multipart upload runs");
    assert!(
        fs.stat(&vp("/big.bin")).await.is_err(),
        "visible before finish"
    );
    assert_eq!(
        file.finish(true, true).await.unwrap(),
        (data.len() as i64, true)
    );
    let (file, size) = fs.open_read(&vp("/big.bin")).await.unwrap();
    assert_eq!(size, data.len() as u64);
    // Pipelined reads in order stream from one GET; a read elsewhere starts another.
    let mut got = Vec::new();
    let mut offset = 0;
    while offset < size {
        let (buf, n) = file.read_at(BytesMut::new(), offset, 255 << 10, size).await;
        let n = n.unwrap();
        got.extend_from_slice(&buf);
        offset += n as u64;
    }
    assert_eq!(got, data);
    let (buf, n) = file.read_at(BytesMut::new(), 1000, 10, size).await;
    assert_eq!((n.unwrap(), &buf[..]), (10, &data[1000..1010]));
    assert_eq!(pending_uploads(&vol).await, 0);

    // Discarded: nothing, no parts.
    let file = upload(&fs, "/discarded.bin", &data[..11 << 20]).await;
    assert!(!file.finish(false, true).await.unwrap().1);
    assert!(fs.stat(&vp("/discarded.bin")).await.is_err());
    assert_eq!(pending_uploads(&vol).await, 0);

    // Dropped unfinished (the session torn down): aborted in the background.
    let file = upload(&fs, "/dropped.bin", &data[..6 << 20]).await;
    drop(file);
    for _ in 0..100 {
        if pending_uploads(&vol).await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(pending_uploads(&vol).await, 0);
    assert!(fs.stat(&vp("/dropped.bin")).await.is_err());

    // Writes are sequential: one elsewhere fails the upload, which publishes nothing.
    let file = upload(&fs, "/holes.bin", &data[..1 << 20]).await;
    let err = file
        .write_at(5 << 20, vec![Bytes::from_static(b"x")], Plain)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    assert!(
        file.finish(true, true)
            .await
            .is_ok_and(|(_, published)| !published)
    );
    assert!(fs.stat(&vp("/holes.bin")).await.is_err());

    // A rename is a copy and a delete.
    let renamed = fs
        .rename(&vp("/big.bin"), &vp("/moved.bin"), false)
        .await
        .unwrap();
    assert_eq!(renamed.source.map(|s| s.size), Some(data.len() as u64));
    assert!(fs.stat(&vp("/big.bin")).await.is_err());
    assert_eq!(
        fs.stat(&vp("/moved.bin")).await.unwrap().size,
        data.len() as u64
    );

    // The sweep aborts what a crashed process left.
    vol.create_multipart(&vol.key(&vp("/orphan")).unwrap())
        .await
        .unwrap();
    assert_eq!(pending_uploads(&vol).await, 1);
    assert_eq!(
        vol.sweep_multipart_uploads(std::time::Duration::from_secs(3600))
            .await
            .unwrap(),
        0,
        "a recent upload stays"
    );
    assert_eq!(
        vol.sweep_multipart_uploads(std::time::Duration::ZERO)
            .await
            .unwrap(),
        1
    );
    assert_eq!(pending_uploads(&vol).await, 0);
}

/// A store that refuses the credentials or does not answer fails the request with the
/// bucket named, promptly.
#[tokio::test]
async fn failures_name_the_bucket_and_do_not_hang() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let bad_key = S3Config {
        access_secret: "wrong".into(),
        ..garage.config("x")
    };
    let fs = S3Fs::new(Arc::new(S3Volume::new(&bad_key).unwrap()));
    let err = fs.stat(&vp("/f")).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Other, "{err}");
    assert!(err.to_string().contains(&garage.bucket), "{err}");

    let missing = S3Config {
        bucket: "no-such-bucket".into(),
        ..garage.config("x")
    };
    let fs = S3Fs::new(Arc::new(S3Volume::new(&missing).unwrap()));
    let err = fs.read_dir(&VirtualPath::root()).await.unwrap_err();
    assert!(err.to_string().contains("no-such-bucket"), "{err}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = S3Config {
        endpoint: format!("http://127.0.0.1:{port}"),
        ..garage.config("x")
    };
    let fs = S3Fs::new(Arc::new(S3Volume::new(&down).unwrap()));
    let started = std::time::Instant::now();
    let err = fs.stat(&vp("/f")).await.unwrap_err();
    assert!(err.to_string().contains(&garage.bucket), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

/// Copies between volumes of one account happen inside the store, through the upload
/// they make (the object appears when it is published): a whole object, a range of one
/// (a multipart copy by ranges) taken in several contiguous pieces, nothing when
/// discarded. Anything else (writes mixed in, another account) is refused as unsupported.
#[tokio::test]
async fn server_side_copies_between_volumes_of_one_account() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let a = S3Fs::new(Arc::new(S3Volume::new(&garage.config("copy/a/")).unwrap()));
    let b = S3Fs::new(Arc::new(S3Volume::new(&garage.config("copy/b/")).unwrap()));
    let other = S3Fs::new(Arc::new(
        S3Volume::new(&S3Config {
            access_key: "someone-else".into(),
            ..garage.config("copy/b/")
        })
        .unwrap(),
    ));
    assert!(a.copies_to(&b) && b.copies_to(&a));
    assert!(!a.copies_to(&other));

    let data: Vec<u8> = (0..(6u32 << 20) + 7).map(|i| (i % 251) as u8).collect();
    upload(&a, "/src.bin", &data)
        .await
        .finish(true, true)
        .await
        .unwrap();
    let (src, size) = a.open_read(&vp("/src.bin")).await.unwrap();
    assert_eq!(size, data.len() as u64);
    let read_all = |fs: &S3Fs, path: &'static str| {
        let fs = S3Fs::new(fs.vol.clone());
        async move {
            let (f, size) = fs.open_read(&vp(path)).await.unwrap();
            let (buf, n) = f.read_at(BytesMut::new(), 0, size as usize, size).await;
            assert_eq!(n.unwrap() as u64, size);
            buf.to_vec()
        }
    };

    // The whole object, into another prefix.
    let dst = open_new(&b, "/whole.bin").await;
    assert_eq!(dst.copy_from(&src, 0, 0, size, Plain).await.unwrap(), size);
    assert!(
        b.stat(&vp("/whole.bin")).await.is_err(),
        "visible before finish"
    );
    assert_eq!(dst.finish(true, true).await.unwrap(), (size as i64, true));
    assert_eq!(read_all(&b, "/whole.bin").await, data);

    // A range, in two contiguous pieces (the last one asks past the end).
    let dst = open_new(&b, "/range.bin").await;
    let first = 4u64 << 20;
    assert_eq!(
        dst.copy_from(&src, 1000, 0, first, Plain).await.unwrap(),
        first
    );
    let rest = dst
        .copy_from(&src, 1000 + first, first, 8 << 20, Plain)
        .await
        .unwrap();
    assert_eq!(rest, size - 1000 - first);
    // A piece that does not follow on is refused.
    let err = dst.copy_from(&src, 0, 0, 10, Plain).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
    dst.finish(true, true).await.unwrap();
    assert_eq!(read_all(&b, "/range.bin").await, &data[1000..]);

    // Discarded: nothing appears.
    let dst = open_new(&b, "/dropped.bin").await;
    dst.copy_from(&src, 0, 0, size, Plain).await.unwrap();
    assert!(!dst.finish(false, true).await.unwrap().1);
    assert!(b.stat(&vp("/dropped.bin")).await.is_err());

    // Writes and copies do not mix in one upload.
    let dst = upload(&b, "/mixed.bin", b"written").await;
    let err = dst.copy_from(&src, 0, 7, 10, Plain).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
    dst.finish(false, true).await.unwrap();
    let dst = open_new(&b, "/mixed2.bin").await;
    dst.copy_from(&src, 0, 0, 10, Plain).await.unwrap();
    let err = dst
        .write_at(10, vec![Bytes::from_static(b"x")], Plain)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
    dst.finish(false, true).await.unwrap();
}
