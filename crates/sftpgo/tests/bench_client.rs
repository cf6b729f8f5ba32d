//! The bench's pipelining client (`sftpgo-bench`, driven by bench/run.sh) against our
//! server, with every cipher the bench uses: many files and many requests in flight on one
//! session must all land intact, so its figures measure correct transfers.

mod common;

use bytes::Bytes;
use common::*;
use sftpgo_bench::{Session, Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_files_and_streams_arrive_intact() {
    let srv = TestServer::start().await;
    let key = keygen(srv.dir.path(), "ed25519");
    srv.add_user("bench", None, &[&key], &all_perms()).await;
    let home = srv.home("bench");
    let big = pattern(3 * 1024 * 1024 + 12_345, 7);
    let local = srv.dir.path().join("big.bin");
    std::fs::write(&local, &big).unwrap();
    for cipher in [
        "aes128-gcm@openssh.com",
        "chacha20-poly1305@openssh.com",
        "aes128-ctr",
    ] {
        let target = Target {
            addr: srv.addr,
            user: "bench".into(),
            key: key.private(),
            cipher: Some(cipher.into()),
        };
        let mut s = Session::connect(&target).await.expect(cipher);
        let dir = format!("small-{}", &cipher[..6]);
        // 40 KiB: two WRITEs per file (32 KiB chunks), five files behind the first.
        let data = Bytes::from(pattern(40 * 1024, 3));
        s.mkdir(&dir).await.unwrap();
        s.put_files(&dir, 60, &data, 16).await.unwrap();
        for i in 1..=60 {
            let got = std::fs::read(home.join(&dir).join(format!("f{i}"))).unwrap();
            assert!(got == data, "{cipher}: f{i} differs");
        }
        let total = s.get_files(&dir, 60, data.len() as u64, 16).await.unwrap();
        assert_eq!(total, 60 * data.len() as u64, "{cipher}");
        // A wrong expected size is reported, not ignored.
        assert!(s.get_files(&dir, 1, 1, 1).await.is_err());

        let mut s = Session::connect(&target).await.expect(cipher);
        let remote = format!("{dir}.bin");
        let sent = s.put_stream(&local, &remote, 64 * 1024, 8).await.unwrap();
        assert_eq!(sent, big.len() as u64);
        assert!(
            std::fs::read(home.join(&remote)).unwrap() == big,
            "{cipher}: stream differs"
        );
        let got = s.get_stream(&remote, 48 * 1024, 8).await.unwrap();
        assert_eq!(got, big.len() as u64, "{cipher}");
    }
    srv.stop().await;
}
