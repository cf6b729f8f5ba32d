use super::*;
use crate::scp::control::{Control, ControlError};

/// The config's default list (`sftpd.enabled_ssh_commands`).
fn default_enabled() -> Vec<String> {
    sftpgo_config::SftpdConfig::default().enabled_ssh_commands
}

fn words(line: &str) -> Result<Command, Refusal> {
    Command::parse(
        line.as_bytes(),
        &EnabledCommands::new(&["*"], false).unwrap(),
    )
}

#[test]
fn enabled_commands_from_config() {
    let default = EnabledCommands::new(&default_enabled(), false).unwrap();
    assert!(!default.is_enabled("scp"));
    assert!(default.is_enabled("md5sum"));
    assert!(
        EnabledCommands::new(&default_enabled(), true)
            .unwrap()
            .is_enabled("scp")
    );
    assert!(
        EnabledCommands::new(&["scp"], false)
            .unwrap()
            .is_enabled("scp")
    );
    assert_eq!(
        EnabledCommands::new(&["*"], false).unwrap().names().len(),
        SUPPORTED.len()
    );
    let err = EnabledCommands::new(&["md5sum", "bash"], false).unwrap_err();
    assert_eq!(err.name, "bash");
    assert!(err.to_string().contains("sha256sum"), "{err}");
}

#[test]
fn command_lines_are_split_as_a_shell_would_without_running_one() {
    assert_eq!(
        words("md5sum 'a b' c\\ d \"e\"").unwrap(),
        Command::Hash {
            algorithm: HashAlgorithm::Md5,
            paths: vec![b"a b".to_vec(), b"c d".to_vec(), b"e".to_vec()]
        }
    );
    assert_eq!(words("pwd").unwrap(), Command::Pwd);
    assert_eq!(words("cd /x").unwrap(), Command::Cd);
    // Shell syntax is nothing but words: no command substitution, no chaining.
    assert_eq!(words("ls -la").unwrap_err(), Refusal::Unknown("ls".into()));
    assert_eq!(
        words("md5sum x; rm /etc/passwd $(reboot)").unwrap(),
        Command::Hash {
            algorithm: HashAlgorithm::Md5,
            paths: ["x;", "rm", "/etc/passwd", "$(reboot)"]
                .map(|p| p.as_bytes().to_vec())
                .to_vec()
        }
    );
    assert!(matches!(words("md5sum 'open"), Err(Refusal::Malformed(_))));
    assert!(matches!(words(""), Err(Refusal::Malformed(_))));
    assert!(matches!(words("md5sum a\0b"), Err(Refusal::Malformed(_))));
    assert!(matches!(
        words("md5sum --check f"),
        Err(Refusal::Malformed(_))
    ));
    let long = format!("md5sum {}", "a".repeat(MAX_COMMAND_LINE));
    assert!(matches!(words(&long), Err(Refusal::Malformed(_))));
    let scp_off = EnabledCommands::new(&default_enabled(), false).unwrap();
    assert_eq!(
        Command::parse(b"scp -t /x", &scp_off).unwrap_err(),
        Refusal::Disabled("scp".into())
    );
    assert_eq!(Refusal::Unknown("ls".into()).exit_status(), 127);
    assert_eq!(Refusal::Disabled("scp".into()).exit_status(), 1);
}

#[test]
fn scp_arguments() {
    let Command::Scp(args) = words("scp -v -r -p -d -t -- /dir").unwrap() else {
        panic!()
    };
    assert!(args.sink && args.recursive && args.preserve && args.target_is_dir);
    assert_eq!(args.paths, vec![b"/dir".to_vec()]);
    let Command::Scp(args) = words("scp -prf a 'b c' d*").unwrap() else {
        panic!()
    };
    assert!(!args.sink && args.recursive && args.preserve);
    assert_eq!(args.paths.len(), 3);
    assert!(matches!(words("scp -t"), Err(Refusal::Malformed(_))));
    assert!(matches!(words("scp -t a b"), Err(Refusal::Malformed(_))));
    assert!(matches!(words("scp -tf a"), Err(Refusal::Malformed(_))));
    assert!(matches!(words("scp a"), Err(Refusal::Malformed(_))));
    assert!(matches!(
        words("scp -S evil -t a"),
        Err(Refusal::Malformed(_))
    ));
    assert_eq!(words("scp -t x").unwrap().protocol(), Protocol::Scp);
    assert_eq!(words("sha1sum").unwrap().protocol(), Protocol::Ssh);
}

#[test]
fn control_lines() {
    assert_eq!(
        Control::parse(b"C0644 12 a b.txt").unwrap(),
        Control::File {
            mode: 0o644,
            size: 12,
            name: b"a b.txt".to_vec()
        }
    );
    assert_eq!(
        Control::parse(b"D0755 0 dir").unwrap(),
        Control::Dir {
            mode: 0o755,
            name: b"dir".to_vec()
        }
    );
    assert_eq!(Control::parse(b"E").unwrap(), Control::End);
    assert_eq!(
        Control::parse(b"T1700000000 0 1700000001 0").unwrap(),
        Control::Times {
            mtime: 1_700_000_000,
            atime: 1_700_000_001
        }
    );
    assert_eq!(
        Control::parse(b"\x01scp: x: denied").unwrap(),
        Control::Message {
            fatal: false,
            text: b"scp: x: denied".to_vec()
        }
    );
    for (line, err) in [
        (&b""[..], ControlError::Empty),
        (b"X", ControlError::UnknownType(b'X')),
        (b"C644 1 a", ControlError::BadMode),
        (b"C0648 1 a", ControlError::BadMode),
        (b"C0644 -1 a", ControlError::BadSize),
        (b"C0644 x a", ControlError::BadSize),
        (b"C0644 1a", ControlError::BadSize),
        (
            b"C0644 18446744073709551616 a",
            ControlError::SizeOutOfRange,
        ),
        (b"C0644 9223372036854775808 a", ControlError::SizeOutOfRange),
        (b"C0644 99999999999999999999999 a", ControlError::BadSize),
        (b"C0644 1 ", ControlError::BadName),
        (b"C0644 1 ..", ControlError::BadName),
        (b"C0644 1 .", ControlError::BadName),
        (b"C0644 1 a/b", ControlError::BadName),
        (b"C0644 1 /etc", ControlError::BadName),
        (b"C0644 1 a\0b", ControlError::BadName),
        (b"D0755 0 ../x", ControlError::BadName),
        (b"Ex", ControlError::Trailing),
        (b"T1 0 2", ControlError::BadTime),
        (b"T1 0 2 0 5", ControlError::Trailing),
    ] {
        assert_eq!(
            Control::parse(line),
            Err(err),
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
    // What we encode, we parse back.
    for c in [
        Control::File {
            mode: 0o600,
            size: 5,
            name: b"x".to_vec(),
        },
        Control::Dir {
            mode: 0o700,
            name: b"d".to_vec(),
        },
        Control::End,
        Control::Times { mtime: 3, atime: 4 },
    ] {
        let line = c.encode();
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(Control::parse(&line[..line.len() - 1]).unwrap(), c);
    }
    // A message never ends its line early.
    let m = Control::Message {
        fatal: true,
        text: b"a\nb".to_vec(),
    }
    .encode();
    assert_eq!(m, b"\x02a b\n");
}

#[test]
fn hash_lines_are_coreutils_lines() {
    assert_eq!(hash::format_line(&[0xab, 0x01], b"f"), b"ab01  f\n");
    assert_eq!(
        hash::format_line(&[0xab], b"a\\b\nc"),
        b"\\ab  a\\\\b\\nc\n"
    );
    let md5 = HashAlgorithm::Md5.hasher().finish();
    assert_eq!(hex::encode(md5), "d41d8cd98f00b204e9800998ecf8427e");
    let mut h = HashAlgorithm::Sha256.hasher();
    h.update(b"abc");
    assert_eq!(
        hex::encode(h.finish()),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

/// A channel fed from a list of messages, recording what is sent.
struct Scripted {
    input: std::collections::VecDeque<Bytes>,
    out: Vec<u8>,
}

impl ByteChannel for Scripted {
    async fn recv(&mut self) -> Option<Bytes> {
        self.input.pop_front()
    }
    async fn send(&mut self, data: Bytes) -> bool {
        self.out.extend_from_slice(&data);
        true
    }
    async fn send_stderr(&mut self, _data: Bytes) -> bool {
        true
    }
}

#[tokio::test]
async fn stream_reads_lines_bytes_and_chunks_across_messages() {
    let msgs = ["C0644 5 f", "ile\nhel", "lo\0E\n", "x".repeat(100).as_str()]
        .map(|s| Bytes::copy_from_slice(s.as_bytes()));
    let mut s = Stream::new(Scripted {
        input: msgs.into_iter().collect(),
        out: Vec::new(),
    });
    assert_eq!(s.line(64).await.unwrap().unwrap(), b"C0644 5 file");
    assert_eq!(&s.chunk(5).await.unwrap()[..], b"hel");
    assert_eq!(&s.chunk(2).await.unwrap()[..], b"lo");
    assert_eq!(s.byte().await, Some(0));
    assert_eq!(s.line(64).await.unwrap().unwrap(), b"E");
    assert_eq!(s.line(64).await, Err(stream::LineError::TooLong(64)));
    let mut s = Stream::new(Scripted {
        input: [Bytes::from_static(b"abc")].into_iter().collect(),
        out: Vec::new(),
    });
    assert_eq!(s.line(64).await, Err(stream::LineError::Truncated));
    assert_eq!(s.line(64).await, Ok(None));
    assert_eq!(s.byte().await, None);
}
