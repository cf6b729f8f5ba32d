//! SFTP protocol tests with our Rust client: every request and extension, permissions,
//! confinement against hostile paths, and malformed input.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::client::{Credential, SftpClient};
use common::*;
use sftpgo_provider::Permission;
use sftpgo_sftp::codec::{self, Extended, FileAttrs, Request, Response};

const PW: &str = "secret-pw";

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn setup(perms: &[Permission]) -> (TestServer, SftpClient) {
    let srv = TestServer::start().await;
    srv.add_user("u", Some(PW), &[], perms).await;
    let c = SftpClient::connect(srv.addr, "u", Credential::Password(PW))
        .await
        .expect("connect");
    (srv, c)
}

fn names(r: &Response) -> Vec<Vec<u8>> {
    match r {
        Response::Name { entries, .. } => entries.iter().map(|e| e.0.to_vec()).collect(),
        other => panic!("expected NAME, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_advertises_extensions_and_limits() {
    let (srv, mut c) = setup(&all_perms()).await;
    let exts: Vec<String> = c
        .extensions
        .iter()
        .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
        .collect();
    for e in [
        "posix-rename@openssh.com",
        "statvfs@openssh.com",
        "fstatvfs@openssh.com",
        "hardlink@openssh.com",
        "fsync@openssh.com",
        "limits@openssh.com",
        "expand-path@openssh.com",
    ] {
        assert!(exts.iter().any(|x| x == e), "{e} not advertised: {exts:?}");
    }
    match c
        .call(|id| Request::Extended {
            id,
            ext: Extended::Limits,
        })
        .await
        .unwrap()
    {
        Response::ExtendedReply { data, .. } => {
            assert_eq!(data.len(), 32);
            let max_packet = u64::from_be_bytes(data[0..8].try_into().unwrap());
            let max_read = u64::from_be_bytes(data[8..16].try_into().unwrap());
            assert!(
                max_packet >= 256 * 1024 && max_read >= 255 * 1024,
                "{max_packet} {max_read}"
            );
        }
        other => panic!("{other:?}"),
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_requests_behave_as_v3_says() {
    let (srv, mut c) = setup(&all_perms()).await;
    let home = srv.home("u");
    // Missing file.
    assert_eq!(
        c.open("/nope", codec::SSH_FXF_READ).await.unwrap(),
        Err(codec::SSH_FX_NO_SUCH_FILE)
    );
    // Write then read back, EOF at the end.
    c.put("/a.bin", &pattern(300_000, 1), 40_000).await.unwrap();
    assert_eq!(c.get("/a.bin").await.unwrap(), pattern(300_000, 1));
    let h = c
        .open("/a.bin", codec::SSH_FXF_READ)
        .await
        .unwrap()
        .unwrap();
    let hh = h.clone();
    match c
        .call(|id| Request::Read {
            id,
            handle: hh,
            offset: 300_000,
            len: 10,
        })
        .await
        .unwrap()
    {
        Response::Status { code, .. } => assert_eq!(code, codec::SSH_FX_EOF),
        other => panic!("{other:?}"),
    }
    let hh = h.clone();
    match c
        .call(|id| Request::Fstat { id, handle: hh })
        .await
        .unwrap()
    {
        Response::Attrs { attrs, .. } => assert_eq!(attrs.size, Some(300_000)),
        other => panic!("{other:?}"),
    }
    // Offsets no file position can hold fail; they never read from the current position.
    for offset in [u64::MAX, 1 << 63, i64::MAX as u64 - 5] {
        let hh = h.clone();
        match c
            .call(|id| Request::Read {
                id,
                handle: hh,
                offset,
                len: 10,
            })
            .await
            .unwrap()
        {
            Response::Status { code, .. } => {
                assert_eq!(code, codec::SSH_FX_FAILURE, "READ at {offset}")
            }
            other => panic!("READ at {offset}: {other:?}"),
        }
    }
    // Writing through a read handle fails.
    let hh = h.clone();
    let code = c
        .status(|id| Request::Write {
            id,
            handle: hh,
            offset: 0,
            data: b("x"),
        })
        .await
        .unwrap();
    assert_ne!(code, codec::SSH_FX_OK);
    assert_eq!(c.close(&h).await.unwrap(), codec::SSH_FX_OK);
    // Closing twice: invalid handle.
    assert_eq!(c.close(&h).await.unwrap(), codec::SSH_FX_FAILURE);
    // EXCL on an existing file fails; APPEND appends.
    let excl = codec::SSH_FXF_WRITE | codec::SSH_FXF_CREAT | codec::SSH_FXF_EXCL;
    assert_eq!(
        c.open("/a.bin", excl).await.unwrap(),
        Err(codec::SSH_FX_FAILURE)
    );
    c.put("/t.txt", b"hello", 5).await.unwrap();
    let h = c
        .open("/t.txt", codec::SSH_FXF_WRITE | codec::SSH_FXF_APPEND)
        .await
        .unwrap()
        .unwrap();
    let hh = h.clone();
    assert_eq!(
        c.status(|id| Request::Write {
            id,
            handle: hh,
            offset: 0,
            data: b(" world")
        })
        .await
        .unwrap(),
        codec::SSH_FX_OK
    );
    c.close(&h).await.unwrap();
    assert_eq!(std::fs::read(home.join("t.txt")).unwrap(), b"hello world");
    // A WRITE at an offset no file position can hold fails and writes nothing.
    let h = c
        .open("/t.txt", codec::SSH_FXF_WRITE)
        .await
        .unwrap()
        .unwrap();
    for offset in [u64::MAX, 1 << 63, i64::MAX as u64 - 2] {
        let hh = h.clone();
        assert_eq!(
            c.status(|id| Request::Write {
                id,
                handle: hh,
                offset,
                data: b("boom"),
            })
            .await
            .unwrap(),
            codec::SSH_FX_FAILURE,
            "WRITE at {offset}"
        );
    }
    c.close(&h).await.unwrap();
    assert_eq!(std::fs::read(home.join("t.txt")).unwrap(), b"hello world");
    // SETSTAT: truncate and chmod.
    let attrs = FileAttrs {
        size: Some(5),
        permissions: Some(0o640),
        ..Default::default()
    };
    assert_eq!(
        c.status(|id| Request::Setstat {
            id,
            path: b("/t.txt"),
            attrs
        })
        .await
        .unwrap(),
        codec::SSH_FX_OK
    );
    assert_eq!(std::fs::read(home.join("t.txt")).unwrap(), b"hello");
    match c
        .call(|id| Request::Stat {
            id,
            path: b("t.txt"),
        })
        .await
        .unwrap()
    {
        Response::Attrs { attrs, .. } => {
            assert_eq!(attrs.size, Some(5));
            assert_eq!(attrs.permissions.map(|p| p & 0o777), Some(0o640));
        }
        other => panic!("{other:?}"),
    }
    // fsync on an upload handle.
    let h = c
        .open("/t.txt", codec::SSH_FXF_WRITE)
        .await
        .unwrap()
        .unwrap();
    let hh = h.clone();
    let code = match c
        .call(|id| Request::Extended {
            id,
            ext: Extended::Fsync { handle: hh },
        })
        .await
        .unwrap()
    {
        Response::Status { code, .. } => code,
        other => panic!("{other:?}"),
    };
    assert_eq!(code, codec::SSH_FX_OK);
    c.close(&h).await.unwrap();
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_and_link_requests() {
    let (srv, mut c) = setup(&all_perms()).await;
    let home = srv.home("u");
    assert_eq!(
        c.status(|id| Request::Mkdir {
            id,
            path: b("/d"),
            attrs: FileAttrs::default()
        })
        .await
        .unwrap(),
        codec::SSH_FX_OK
    );
    assert_ne!(
        c.status(|id| Request::Mkdir {
            id,
            path: b("/d"),
            attrs: FileAttrs::default()
        })
        .await
        .unwrap(),
        codec::SSH_FX_OK
    );
    for i in 0..250 {
        std::fs::write(home.join(format!("d/f{i:03}")), b"x").unwrap();
    }
    // READDIR pages until EOF and lists everything once.
    let h = match c
        .call(|id| Request::Opendir { id, path: b("/d") })
        .await
        .unwrap()
    {
        Response::Handle { handle, .. } => handle,
        other => panic!("{other:?}"),
    };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let hh = h.clone();
        match c
            .call(|id| Request::Readdir { id, handle: hh })
            .await
            .unwrap()
        {
            Response::Name { entries, .. } => {
                pages += 1;
                for (name, long, attrs) in entries {
                    assert!(attrs.size.is_some());
                    let long = String::from_utf8_lossy(&long).into_owned();
                    assert!(
                        long.starts_with('-') && long.ends_with(&*String::from_utf8_lossy(&name)),
                        "longname {long}"
                    );
                    seen.push(name.to_vec());
                }
            }
            Response::Status { code, .. } => {
                assert_eq!(code, codec::SSH_FX_EOF);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    c.close(&h).await.unwrap();
    assert!(pages >= 3, "pages: {pages}");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 250);
    // RMDIR of a non-empty dir fails, REMOVE of a dir fails.
    assert_eq!(
        c.status(|id| Request::Rmdir { id, path: b("/d") })
            .await
            .unwrap(),
        codec::SSH_FX_FAILURE
    );
    assert_ne!(
        c.status(|id| Request::Remove { id, path: b("/d") })
            .await
            .unwrap(),
        codec::SSH_FX_OK
    );
    assert!(home.join("d/f000").exists());
    // RENAME refuses an existing target, posix-rename overwrites.
    std::fs::write(home.join("x"), b"X").unwrap();
    std::fs::write(home.join("y"), b"Y").unwrap();
    assert_eq!(
        c.status(|id| Request::Rename {
            id,
            old: b("/x"),
            new: b("/y")
        })
        .await
        .unwrap(),
        codec::SSH_FX_FAILURE
    );
    assert_eq!(std::fs::read(home.join("y")).unwrap(), b"Y");
    let code = match c
        .call(|id| Request::Extended {
            id,
            ext: Extended::PosixRename {
                old: b("/x"),
                new: b("/y"),
            },
        })
        .await
        .unwrap()
    {
        Response::Status { code, .. } => code,
        other => panic!("{other:?}"),
    };
    assert_eq!(code, codec::SSH_FX_OK);
    assert_eq!(std::fs::read(home.join("y")).unwrap(), b"X");
    assert!(!home.join("x").exists());
    // SYMLINK (OpenSSH order: target, link) stores a relative target; READLINK gives it back
    // as a virtual path; LSTAT sees the link, STAT its target.
    assert_eq!(
        c.status(|id| Request::Symlink {
            id,
            target: b("/y"),
            link: b("/d/ln")
        })
        .await
        .unwrap(),
        codec::SSH_FX_OK
    );
    assert_eq!(
        std::fs::read_link(home.join("d/ln")).unwrap().to_str(),
        Some("../y")
    );
    assert_eq!(
        names(
            &c.call(|id| Request::Readlink {
                id,
                path: b("/d/ln")
            })
            .await
            .unwrap()
        ),
        vec![b"/y".to_vec()]
    );
    match c
        .call(|id| Request::Lstat {
            id,
            path: b("/d/ln"),
        })
        .await
        .unwrap()
    {
        Response::Attrs { attrs, .. } => {
            assert_eq!(attrs.permissions.unwrap() & 0o170000, 0o120000)
        }
        other => panic!("{other:?}"),
    }
    match c
        .call(|id| Request::Stat {
            id,
            path: b("/d/ln"),
        })
        .await
        .unwrap()
    {
        Response::Attrs { attrs, .. } => assert_eq!(attrs.size, Some(1)),
        other => panic!("{other:?}"),
    }
    // Hard link.
    let code = match c
        .call(|id| Request::Extended {
            id,
            ext: Extended::Hardlink {
                old: b("/y"),
                new: b("/z"),
            },
        })
        .await
        .unwrap()
    {
        Response::Status { code, .. } => code,
        other => panic!("{other:?}"),
    };
    assert_eq!(code, codec::SSH_FX_OK);
    assert_eq!(std::fs::read(home.join("z")).unwrap(), b"X");
    // REALPATH and expand-path never leave "/".
    assert_eq!(
        names(
            &c.call(|id| Request::Realpath {
                id,
                path: b("../../..")
            })
            .await
            .unwrap()
        ),
        vec![b"/".to_vec()]
    );
    assert_eq!(
        names(
            &c.call(|id| Request::Realpath {
                id,
                path: b("/d/../d/./ln")
            })
            .await
            .unwrap()
        ),
        vec![b"/d/ln".to_vec()]
    );
    assert_eq!(
        names(
            &c.call(|id| Request::Extended {
                id,
                ext: Extended::ExpandPath { path: b("~/d") }
            })
            .await
            .unwrap()
        ),
        vec![b"/d".to_vec()]
    );
    // statvfs and fstatvfs.
    for ext in [Extended::Statvfs { path: b("/") }] {
        match c.call(|id| Request::Extended { id, ext }).await.unwrap() {
            Response::ExtendedReply { data, .. } => assert_eq!(data.len(), 88),
            other => panic!("{other:?}"),
        }
    }
    let h = c.open("/y", codec::SSH_FXF_READ).await.unwrap().unwrap();
    let hh = h.clone();
    match c
        .call(|id| Request::Extended {
            id,
            ext: Extended::Fstatvfs { handle: hh },
        })
        .await
        .unwrap()
    {
        Response::ExtendedReply { data, .. } => assert_eq!(data.len(), 88),
        other => panic!("{other:?}"),
    }
    c.close(&h).await.unwrap();
    // Unknown extension.
    match c
        .call(|id| Request::Extended {
            id,
            ext: Extended::Unknown {
                name: b("copy-file@example.com"),
            },
        })
        .await
        .unwrap()
    {
        Response::Status { code, .. } => assert_eq!(code, codec::SSH_FX_OP_UNSUPPORTED),
        other => panic!("{other:?}"),
    }
    // RMDIR of an empty dir works, REMOVE of a file works.
    assert_eq!(
        c.status(|id| Request::Mkdir {
            id,
            path: b("/e"),
            attrs: FileAttrs::default()
        })
        .await
        .unwrap(),
        codec::SSH_FX_OK
    );
    assert_eq!(
        c.status(|id| Request::Rmdir { id, path: b("/e") })
            .await
            .unwrap(),
        codec::SSH_FX_OK
    );
    assert_eq!(
        c.status(|id| Request::Remove { id, path: b("/z") })
            .await
            .unwrap(),
        codec::SSH_FX_OK
    );
    assert!(!home.join("z").exists() && !home.join("e").exists());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_permission_is_enforced() {
    use Permission::*;
    let all = [
        List,
        Download,
        Upload,
        Delete,
        Rename,
        CreateDirs,
        CreateSymlinks,
    ];
    let srv = TestServer::start().await;
    for missing in all {
        let perms: Vec<Permission> = all.iter().copied().filter(|p| *p != missing).collect();
        let name = format!("{missing:?}").to_lowercase();
        srv.add_user(&name, Some(PW), &[], &perms).await;
        let home = srv.home(&name);
        let mut c = SftpClient::connect(srv.addr, &name, Credential::Password(PW))
            .await
            .unwrap();
        std::fs::write(home.join("f"), b"data").unwrap();
        std::fs::create_dir_all(home.join("dir")).unwrap();
        let denied = codec::SSH_FX_PERMISSION_DENIED;
        let code = match missing {
            List => match c
                .call(|id| Request::Opendir { id, path: b("/") })
                .await
                .unwrap()
            {
                Response::Status { code, .. } => code,
                other => panic!("{other:?}"),
            },
            Download => c
                .open("/f", codec::SSH_FXF_READ)
                .await
                .unwrap()
                .unwrap_err(),
            Upload => c
                .open("/new", codec::SSH_FXF_WRITE | codec::SSH_FXF_CREAT)
                .await
                .unwrap()
                .unwrap_err(),
            Delete => {
                assert_eq!(
                    c.status(|id| Request::Rmdir {
                        id,
                        path: b("/dir")
                    })
                    .await
                    .unwrap(),
                    denied
                );
                c.status(|id| Request::Remove { id, path: b("/f") })
                    .await
                    .unwrap()
            }
            Rename => c
                .status(|id| Request::Rename {
                    id,
                    old: b("/f"),
                    new: b("/g"),
                })
                .await
                .unwrap(),
            CreateDirs => c
                .status(|id| Request::Mkdir {
                    id,
                    path: b("/m"),
                    attrs: FileAttrs::default(),
                })
                .await
                .unwrap(),
            CreateSymlinks => c
                .status(|id| Request::Symlink {
                    id,
                    target: b("/f"),
                    link: b("/l"),
                })
                .await
                .unwrap(),
            Any => unreachable!(),
        };
        assert_eq!(code, denied, "missing {missing:?}");
        assert!(home.join("f").exists() && home.join("dir").exists() && !home.join("g").exists());
        assert!(!home.join("new").exists() && !home.join("m").exists() && !home.join("l").exists());
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_attempts_are_refused() {
    let srv = TestServer::start().await;
    srv.add_user("u1", Some(PW), &[], &all_perms()).await;
    srv.add_user("u10", Some(PW), &[], &all_perms()).await;
    let mut c10 = SftpClient::connect(srv.addr, "u10", Credential::Password(PW))
        .await
        .unwrap();
    c10.put("/secret", b"u10 secret", 100).await.unwrap();
    let mut c = SftpClient::connect(srv.addr, "u1", Credential::Password(PW))
        .await
        .unwrap();
    let home = srv.home("u1");
    // `..` chains stay inside: /../../etc/passwd is the home's etc/passwd, which is missing.
    assert_eq!(
        c.open("/../../../../etc/passwd", codec::SSH_FXF_READ)
            .await
            .unwrap(),
        Err(codec::SSH_FX_NO_SUCH_FILE)
    );
    assert_eq!(
        c.open("../../etc/passwd", codec::SSH_FXF_READ)
            .await
            .unwrap(),
        Err(codec::SSH_FX_NO_SUCH_FILE)
    );
    // Symlinks planted on the host that point outside: absolute, relative climbing, sibling home.
    std::os::unix::fs::symlink("/etc", home.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc", home.join("rel")).unwrap();
    std::os::unix::fs::symlink("../u10", home.join("sib")).unwrap();
    for p in ["/abs/passwd", "/rel/passwd", "/sib/secret"] {
        assert_eq!(
            c.open(p, codec::SSH_FXF_READ).await.unwrap(),
            Err(codec::SSH_FX_PERMISSION_DENIED),
            "{p}"
        );
        let code = c
            .open(p, codec::SSH_FXF_WRITE | codec::SSH_FXF_CREAT)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(code, codec::SSH_FX_PERMISSION_DENIED, "write {p}");
    }
    for p in ["/abs", "/rel", "/sib"] {
        let path = b(p);
        match c.call(|id| Request::Opendir { id, path }).await.unwrap() {
            Response::Status { code, .. } => {
                assert_eq!(code, codec::SSH_FX_PERMISSION_DENIED, "opendir {p}")
            }
            other => panic!("listing through {p} must fail: {other:?}"),
        }
        let path = b(p);
        match c.call(|id| Request::Readlink { id, path }).await.unwrap() {
            Response::Status { code, .. } => {
                assert_eq!(code, codec::SSH_FX_PERMISSION_DENIED, "readlink {p}")
            }
            other => panic!("readlink of {p} must not reveal a host path: {other:?}"),
        }
    }
    // Writing through a link to the sibling must not create anything there.
    assert_eq!(
        std::fs::read(srv.home("u10").join("secret")).unwrap(),
        b"u10 secret"
    );
    // SYMLINK with an absolute target is stored relative (inside the home); one climbing out is refused.
    assert_eq!(
        c.status(|id| Request::Symlink {
            id,
            target: b("/etc/passwd"),
            link: b("/pw")
        })
        .await
        .unwrap(),
        codec::SSH_FX_OK
    );
    assert_eq!(
        std::fs::read_link(home.join("pw")).unwrap().to_str(),
        Some("etc/passwd")
    );
    assert_eq!(
        c.open("/pw", codec::SSH_FXF_READ).await.unwrap(),
        Err(codec::SSH_FX_NO_SUCH_FILE)
    );
    let code = c
        .status(|id| Request::Symlink {
            id,
            target: b("../../../etc/passwd"),
            link: b("/pw2"),
        })
        .await
        .unwrap();
    assert!(
        code == codec::SSH_FX_PERMISSION_DENIED
            || !home.join("pw2").exists()
            || std::fs::read_link(home.join("pw2")).unwrap().to_str() == Some("etc/passwd")
    );
    // NUL bytes and oversized paths.
    let code = c
        .open("/a\0b", codec::SSH_FXF_READ)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(code, codec::SSH_FX_FAILURE);
    let long = format!("/{}", "a/".repeat(2100));
    assert_eq!(
        c.open(&long, codec::SSH_FXF_READ)
            .await
            .unwrap()
            .unwrap_err(),
        codec::SSH_FX_FAILURE
    );
    // Non-UTF-8 names round-trip byte-exact and do not collide.
    let n1 = Bytes::from_static(b"/caf\xe9");
    let n2 = Bytes::from_static(b"/caf\xc3\xa9");
    for (n, content) in [(&n1, "latin1"), (&n2, "utf8")] {
        let flags = codec::SSH_FXF_WRITE | codec::SSH_FXF_CREAT | codec::SSH_FXF_TRUNC;
        let path = n.clone();
        let h = match c
            .call(|id| Request::Open {
                id,
                path,
                pflags: flags,
                attrs: FileAttrs::default(),
            })
            .await
            .unwrap()
        {
            Response::Handle { handle, .. } => handle,
            other => panic!("{other:?}"),
        };
        let hh = h.clone();
        assert_eq!(
            c.status(|id| Request::Write {
                id,
                handle: hh,
                offset: 0,
                data: b(content)
            })
            .await
            .unwrap(),
            codec::SSH_FX_OK
        );
        c.close(&h).await.unwrap();
    }
    use std::os::unix::ffi::OsStrExt;
    assert_eq!(
        std::fs::read(home.join(std::ffi::OsStr::from_bytes(b"caf\xe9"))).unwrap(),
        b"latin1"
    );
    assert_eq!(std::fs::read(home.join("café")).unwrap(), b"utf8");
    srv.stop().await;
}

fn raw_packet(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut p = BytesMut::new();
    p.put_u32(body.len() as u32 + 1);
    p.put_u8(ty);
    p.put_slice(body);
    p.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_closes_only_its_own_session() {
    let srv = TestServer::start().await;
    srv.add_user("u", Some(PW), &[], &all_perms()).await;
    let mut bystander = SftpClient::connect(srv.addr, "u", Credential::Password(PW))
        .await
        .unwrap();
    bystander.put("/keep", b"still here", 100).await.unwrap();

    // Unknown request type: OP_UNSUPPORTED, the session carries on.
    let mut c = SftpClient::connect(srv.addr, "u", Credential::Password(PW))
        .await
        .unwrap();
    c.send_raw(&raw_packet(99, &7u32.to_be_bytes()))
        .await
        .unwrap();
    match c.reply(7).await.unwrap() {
        Response::Status { code, .. } => assert_eq!(code, codec::SSH_FX_OP_UNSUPPORTED),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.get("/keep").await.unwrap(), b"still here");

    // A truncated request (OPEN without its fields) ends that session.
    let mut c = SftpClient::connect(srv.addr, "u", Credential::Password(PW))
        .await
        .unwrap();
    c.send_raw(&raw_packet(codec::SSH_FXP_OPEN, &[0, 0, 0, 1, 0, 0]))
        .await
        .unwrap();
    assert!(
        c.recv().await.unwrap().is_none(),
        "session must close after a malformed packet"
    );

    // A packet longer than the advertised limit ends that session.
    let mut c = SftpClient::connect(srv.addr, "u", Credential::Password(PW))
        .await
        .unwrap();
    let mut huge = Vec::new();
    huge.extend_from_slice(&(64u32 << 20).to_be_bytes());
    huge.push(codec::SSH_FXP_WRITE);
    huge.extend_from_slice(&[0u8; 1024]);
    c.send_raw(&huge).await.unwrap();
    assert!(
        c.recv().await.unwrap().is_none(),
        "session must close after an oversized packet"
    );

    // A request before INIT ends the session.
    let handle = common::client::ssh_connect(srv.addr, "u", Credential::Password(PW))
        .await
        .unwrap();
    let ch = handle.channel_open_session().await.unwrap();
    ch.request_subsystem(true, "sftp").await.unwrap();
    ch.data_bytes(Bytes::from(raw_packet(
        codec::SSH_FXP_REALPATH,
        &[0, 0, 0, 1, 0, 0, 0, 1, b'.'],
    )))
    .await
    .unwrap();
    let (mut rd, _wr) = ch.split();
    let mut closed = false;
    while let Some(msg) = rd.wait().await {
        if matches!(msg, russh::ChannelMsg::Close | russh::ChannelMsg::Eof) {
            closed = true;
            break;
        }
    }
    assert!(closed);

    // The bystander is unaffected.
    assert_eq!(bystander.get("/keep").await.unwrap(), b"still here");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_unknown_commands_and_other_subsystems_are_refused() {
    let srv = TestServer::start().await;
    srv.add_user("u", Some(PW), &[], &all_perms()).await;
    let handle = common::client::ssh_connect(srv.addr, "u", Credential::Password(PW))
        .await
        .unwrap();
    // An unknown command: a message on stderr and a shell's 127, nothing run.
    let mut ch = handle.channel_open_session().await.unwrap();
    ch.exec(true, "ls").await.unwrap();
    let (mut stderr, mut status) = (Vec::new(), None);
    while let Some(msg) = ch.wait().await {
        match msg {
            russh::ChannelMsg::ExtendedData { data, .. } => stderr.extend_from_slice(&data),
            russh::ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
            russh::ChannelMsg::Close => break,
            _ => {}
        }
    }
    assert_eq!(status, Some(127));
    assert_eq!(stderr, b"sftpgo: command \"ls\" is not supported\n");
    let ch = handle.channel_open_session().await.unwrap();
    assert!(ch.request_shell(true).await.is_err() || wait_failure(ch).await);
    let ch = handle.channel_open_session().await.unwrap();
    assert!(ch.request_subsystem(true, "other").await.is_err() || wait_failure(ch).await);
    srv.stop().await;
}

async fn wait_failure(mut ch: russh::Channel<russh::client::Msg>) -> bool {
    while let Some(msg) = ch.wait().await {
        match msg {
            russh::ChannelMsg::Failure => return true,
            russh::ChannelMsg::Success => return false,
            _ => {}
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_uploads_are_never_partial() {
    let srv = TestServer::start_with(
        |c| c.sftpd.upload_mode = 1,
        sftpgo::service::Tuning::default(),
    )
    .await;
    srv.add_user("u", Some(PW), &[], &all_perms()).await;
    let home = srv.home("u");
    let mut c = SftpClient::connect(srv.addr, "u", Credential::Password(PW))
        .await
        .unwrap();
    c.put("/f", b"original", 100).await.unwrap();
    assert_eq!(std::fs::read(home.join("f")).unwrap(), b"original");
    let listing = |home: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(home)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    // While an upload is open, the target keeps its old content and the data sits in a
    // hidden temp file.
    let flags = codec::SSH_FXF_WRITE | codec::SSH_FXF_CREAT | codec::SSH_FXF_TRUNC;
    let h = c.open("/f", flags).await.unwrap().unwrap();
    let hh = h.clone();
    assert_eq!(
        c.status(|id| Request::Write {
            id,
            handle: hh,
            offset: 0,
            data: b("replacement")
        })
        .await
        .unwrap(),
        codec::SSH_FX_OK
    );
    assert_eq!(std::fs::read(home.join("f")).unwrap(), b"original");
    assert!(
        listing(&home)
            .iter()
            .any(|n| n.starts_with(".sftpgo-upload.")),
        "{:?}",
        listing(&home)
    );
    assert_eq!(c.close(&h).await.unwrap(), codec::SSH_FX_OK);
    assert_eq!(std::fs::read(home.join("f")).unwrap(), b"replacement");
    assert_eq!(listing(&home), vec!["f".to_string()]);
    // An upload cut off by a disconnect is discarded: the target is untouched.
    let h = c.open("/f", flags).await.unwrap().unwrap();
    let hh = h.clone();
    assert_eq!(
        c.status(|id| Request::Write {
            id,
            handle: hh,
            offset: 0,
            data: b("partial")
        })
        .await
        .unwrap(),
        codec::SSH_FX_OK
    );
    drop(c);
    let start = std::time::Instant::now();
    while listing(&home).len() > 1 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "temp file left: {:?}",
            listing(&home)
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(std::fs::read(home.join("f")).unwrap(), b"replacement");
    // EXCL on an existing file fails and leaves it alone (WinSCP's open flags).
    let mut c = SftpClient::connect(srv.addr, "u", Credential::Password(PW))
        .await
        .unwrap();
    let excl = flags | codec::SSH_FXF_EXCL;
    assert_eq!(
        c.open("/f", excl).await.unwrap(),
        Err(codec::SSH_FX_FAILURE)
    );
    assert_eq!(std::fs::read(home.join("f")).unwrap(), b"replacement");
    assert_eq!(listing(&home), vec!["f".to_string()]);
    // Append writes in place.
    let h = c
        .open("/f", codec::SSH_FXF_WRITE | codec::SSH_FXF_APPEND)
        .await
        .unwrap()
        .unwrap();
    let hh = h.clone();
    assert_eq!(
        c.status(|id| Request::Write {
            id,
            handle: hh,
            offset: 0,
            data: b("+")
        })
        .await
        .unwrap(),
        codec::SSH_FX_OK
    );
    c.close(&h).await.unwrap();
    assert_eq!(std::fs::read(home.join("f")).unwrap(), b"replacement+");
    srv.stop().await;
}

/// A write the kernel refuses fails the upload: the writes after it fail too, whatever
/// order their replies go out in (OpenSSH's client keeps only the last status it reads),
/// CLOSE reports the failure, and nothing is written after the failed write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failed_write_the_later_ones_and_close_fail() {
    let (srv, mut c) = setup(&all_perms()).await;
    let flags = codec::SSH_FXF_WRITE | codec::SSH_FXF_CREAT | codec::SSH_FXF_TRUNC;
    let h = c.open("/holey.bin", flags).await.unwrap().unwrap();
    let write = |offset: u64, data: &'static str| {
        let handle = h.clone();
        move |id| Request::Write {
            id,
            handle,
            offset,
            data: b(data),
        }
    };
    let ok = c.send(write(0, "before")).await.unwrap();
    // Past the largest file offset Linux allows (EFBIG / EINVAL from pwrite).
    let bad = c.send(write(1 << 62, "x")).await.unwrap();
    let mut later = Vec::new();
    for off in [6u64, 12, 18] {
        later.push(c.send(write(off, "after!")).await.unwrap());
    }
    let status = |r: Response| match r {
        Response::Status { code, .. } => code,
        other => panic!("expected STATUS, got {other:?}"),
    };
    assert_eq!(status(c.reply(ok).await.unwrap()), codec::SSH_FX_OK);
    assert_ne!(status(c.reply(bad).await.unwrap()), codec::SSH_FX_OK);
    for id in later {
        assert_ne!(status(c.reply(id).await.unwrap()), codec::SSH_FX_OK);
    }
    assert_eq!(c.close(&h).await.unwrap(), codec::SSH_FX_FAILURE);
    assert_eq!(
        std::fs::read(srv.home("u").join("holey.bin")).unwrap(),
        b"before"
    );
    srv.stop().await;
}

/// A READ returns what the file holds when it is served, not what it held at OPEN (the
/// server sizes its buffers by the size at open): a file that grew after it was opened
/// reads whole, up to the READ's length, and a READ at the old end finds the new data;
/// one that shrank ends where it now ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_see_a_file_that_changed_after_open() {
    let (srv, mut c) = setup(&all_perms()).await;
    let path = srv.home("u").join("log.txt");
    let content = pattern(600_000, 7);
    std::fs::write(&path, &content[..1000]).unwrap();
    let h = c
        .open("/log.txt", codec::SSH_FXF_READ)
        .await
        .unwrap()
        .unwrap();
    let mut read = async |offset: u64, len: u32| {
        let handle = h.clone();
        match c
            .call(|id| Request::Read {
                id,
                handle,
                offset,
                len,
            })
            .await
            .unwrap()
        {
            Response::Data { data, .. } => Ok(data.to_vec()),
            Response::Status { code, .. } => Err(code),
            other => panic!("{other:?}"),
        }
    };
    // As opened: 1000 bytes, then EOF.
    assert_eq!(read(0, 4096).await, Ok(content[..1000].to_vec()));
    assert_eq!(read(1000, 4096).await, Err(codec::SSH_FX_EOF));
    // Grown to 600,000 bytes: whole READs from the start and from the old end.
    std::fs::write(&path, &content).unwrap();
    assert_eq!(
        read(0, 255 * 1024).await,
        Ok(content[..255 * 1024].to_vec())
    );
    assert_eq!(
        read(1000, 100_000).await,
        Ok(content[1000..101_000].to_vec())
    );
    assert_eq!(
        read(590_000, 255 * 1024).await,
        Ok(content[590_000..].to_vec())
    );
    // Shrunk to 10 bytes: a READ ends at the new end; past it, EOF.
    std::fs::write(&path, &content[..10]).unwrap();
    assert_eq!(read(0, 255 * 1024).await, Ok(content[..10].to_vec()));
    assert_eq!(read(10, 4096).await, Err(codec::SSH_FX_EOF));
    assert_eq!(c.close(&h).await.unwrap(), codec::SSH_FX_OK);
    srv.stop().await;
}

/// Requests sent back to back without waiting are carried out in the order sent: a file
/// created inside a directory made by the request before, then renamed and stat'ed, all
/// in one burst, every step seeing the one before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_see_the_effects_of_earlier_ones() {
    let (srv, mut c) = setup(&all_perms()).await;
    for round in 0..20 {
        let d = format!("/d{round}");
        let f = format!("{d}/f");
        let g = format!("{d}/g");
        let mkdir = c
            .send(|id| Request::Mkdir {
                id,
                path: b(&d),
                attrs: FileAttrs::default(),
            })
            .await
            .unwrap();
        let flags = codec::SSH_FXF_WRITE | codec::SSH_FXF_CREAT | codec::SSH_FXF_TRUNC;
        let open = c
            .send(|id| Request::Open {
                id,
                path: b(&f),
                pflags: flags,
                attrs: FileAttrs::default(),
            })
            .await
            .unwrap();
        let rename = c
            .send(|id| Request::Rename {
                id,
                old: b(&f),
                new: b(&g),
            })
            .await
            .unwrap();
        let stat = c
            .send(|id| Request::Stat { id, path: b(&g) })
            .await
            .unwrap();
        let gone = c
            .send(|id| Request::Lstat { id, path: b(&f) })
            .await
            .unwrap();
        let status = |r: Response| match r {
            Response::Status { code, .. } => code,
            other => panic!("expected STATUS, got {other:?}"),
        };
        assert_eq!(status(c.reply(mkdir).await.unwrap()), codec::SSH_FX_OK);
        let handle = match c.reply(open).await.unwrap() {
            Response::Handle { handle, .. } => handle,
            other => panic!("round {round}: OPEN inside the new dir: {other:?}"),
        };
        assert_eq!(status(c.reply(rename).await.unwrap()), codec::SSH_FX_OK);
        assert!(
            matches!(c.reply(stat).await.unwrap(), Response::Attrs { .. }),
            "round {round}: STAT after RENAME"
        );
        assert_eq!(
            status(c.reply(gone).await.unwrap()),
            codec::SSH_FX_NO_SUCH_FILE
        );
        assert_eq!(c.close(&handle).await.unwrap(), codec::SSH_FX_OK);
    }
    srv.stop().await;
}

/// Replies come in the order of the requests, whatever each costs: paramiko's pipelined
/// upload hangs otherwise (see `sftpgo_sftp::Replies`). Requests that wait for the disk
/// (WRITE, fsync, MKDIR) are mixed with ones answered at once (REALPATH, a READ of an
/// unknown handle, an unknown request type), and all are read back raw, in arrival order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_come_in_request_order() {
    let (srv, mut c) = setup(&all_perms()).await;
    let flags = codec::SSH_FXF_WRITE | codec::SSH_FXF_CREAT | codec::SSH_FXF_TRUNC;
    let handle = c.open("/ordered", flags).await.unwrap().expect("open");
    let chunk = Bytes::from(pattern(64 * 1024, 3));
    // Rounds of 61 requests: more than our test client buffers unread would stall it.
    for round in 0..4u64 {
        let mut sent = Vec::new();
        for i in round * 60..(round + 1) * 60 {
            let h = handle.clone();
            let id = match i % 6 {
                0 | 1 => {
                    c.send(|id| Request::Write {
                        id,
                        handle: h,
                        offset: i * chunk.len() as u64,
                        data: chunk.clone(),
                    })
                    .await
                }
                2 if i % 60 == 2 => {
                    c.send(|id| Request::Extended {
                        id,
                        ext: Extended::Fsync { handle: h },
                    })
                    .await
                }
                2 | 3 => c.send(|id| Request::Realpath { id, path: b(".") }).await,
                4 => {
                    c.send(|id| Request::Read {
                        id,
                        handle: b("no-such-handle"),
                        offset: 0,
                        len: 10,
                    })
                    .await
                }
                _ => {
                    let path = format!("/dir{i}");
                    c.send(|id| Request::Mkdir {
                        id,
                        path: b(&path),
                        attrs: FileAttrs::default(),
                    })
                    .await
                }
            }
            .unwrap();
            sent.push(id);
            if i % 60 == 59 {
                // An unknown request type, answered by the session loop itself.
                let id = c.next_id();
                let mut raw = BytesMut::new();
                raw.put_u32(5);
                raw.put_u8(222);
                raw.put_u32(id);
                c.send_raw(&raw).await.unwrap();
                sent.push(id);
            }
        }
        let mut got = Vec::new();
        while got.len() < sent.len() {
            let r = c.recv().await.unwrap().expect("a reply for every request");
            got.push(r.id().expect("an id"));
        }
        assert_eq!(got, sent, "replies in request order");
    }
    assert_eq!(c.close(&handle).await.unwrap(), codec::SSH_FX_OK);
    srv.stop().await;
}
