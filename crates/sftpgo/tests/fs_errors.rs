//! Filesystem errors a client meets that say something about the server (a link loop or
//! a link leading out of the home dir planted on the host, a full or failing disk): the client gets the status and the cause, and the operator a warning
//! in the log naming the user, the operation and the path. A missing file is an answer,
//! not an incident: it is not logged.

mod common;

use bytes::Bytes;
use common::client::{Credential, SftpClient};
use common::logs::Logs;
use common::*;
use serde_json::Value;
use sftpgo_sftp::codec::{self, Request, Response};

const PW: &str = "fs-errors-pw";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_filesystem_operations_are_logged_with_their_cause() {
    let logs = Logs::install();
    let srv = TestServer::start().await;
    srv.add_user("u", Some(PW), &[], &all_perms()).await;
    let mut c = SftpClient::connect(srv.addr, "u", Credential::Password(PW))
        .await
        .unwrap();
    let home = srv.home("u");

    // A name longer than the filesystem allows: FAILURE, and the message says why.
    let long = format!("/{}", "n".repeat(300));
    let path = Bytes::from(long.clone());
    match c
        .call(|id| Request::Mkdir {
            id,
            path,
            attrs: Default::default(),
        })
        .await
        .unwrap()
    {
        Response::Status { code, msg, .. } => {
            assert_eq!(code, codec::SSH_FX_FAILURE);
            let msg = String::from_utf8_lossy(&msg);
            assert!(msg.contains("too long"), "status message: {msg}");
        }
        other => panic!("expected STATUS, got {other:?}"),
    }
    // A symlink loop planted on the host.
    std::os::unix::fs::symlink("b", home.join("a")).unwrap();
    std::os::unix::fs::symlink("a", home.join("b")).unwrap();
    assert_eq!(
        c.open("/a", codec::SSH_FXF_READ).await.unwrap(),
        Err(codec::SSH_FX_FAILURE)
    );
    // A symlink planted on the host that leads out of the home dir: refused.
    std::os::unix::fs::symlink("/etc/hostname", home.join("out")).unwrap();
    assert_eq!(
        c.open("/out", codec::SSH_FXF_READ).await.unwrap(),
        Err(codec::SSH_FX_PERMISSION_DENIED)
    );
    // A missing file.
    assert_eq!(
        c.open("/missing", codec::SSH_FXF_READ).await.unwrap(),
        Err(codec::SSH_FX_NO_SUCH_FILE)
    );

    let failure = |op: &str, path_end: &str| -> Option<Value> {
        logs.find(|l| {
            l["message"] == "filesystem operation failed"
                && l["op"] == op
                && l["file_path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(path_end))
        })
    };
    let looped = failure("download", "/a").expect("the link loop is logged");
    assert_eq!(looped["level"], "warn");
    assert_eq!(looped["username"], "u");
    assert_eq!(looped["protocol"], "SFTP");
    assert!(
        looped["error"].as_str().unwrap().contains("symbolic links"),
        "{looped}"
    );
    assert_eq!(
        looped["file_path"].as_str().unwrap(),
        home.join("a").to_str().unwrap()
    );
    let escape = failure("download", "/out").expect("the escape attempt is logged");
    assert!(
        escape["error"].as_str().unwrap().contains("escapes"),
        "{escape}"
    );
    // The too-long name is the request's own fault (refused before the disk), and the
    // missing file an answer: neither is an incident.
    for end in ["/missing", long.as_str()] {
        assert!(
            logs.find(|l| l["file_path"].as_str().is_some_and(|p| p.ends_with(end)))
                .is_none(),
            "{end} logged"
        );
    }
    srv.stop().await;
}
