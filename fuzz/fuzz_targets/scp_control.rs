//! SCP's control lines (`Control::parse`) and SSH command lines (`Command::parse`): what a
//! client sends on an `exec` channel before any file operation.
//!
//! Input: the first byte picks the parser (even: a control line, odd: a command line with
//! every command enabled). Checks: no panic; a parsed control line encodes to a line that
//! parses to the same value, names are one safe component, sizes fit an `off_t`; a parsed
//! command line's paths have no NUL and an SCP command has one target when it receives.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sftpgo_sshcmd::scp::control::Control;
use sftpgo_sshcmd::{Command, EnabledCommands};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    if selector % 2 == 0 {
        // A line as the stream hands it over: up to its `\n`.
        let line = input.split(|&b| b == b'\n').next().unwrap_or_default();
        let Ok(control) = Control::parse(line) else {
            return;
        };
        match &control {
            Control::File { name, size, .. } => {
                assert!(*size <= i64::MAX as u64);
                check_name(name);
            }
            Control::Dir { name, .. } => check_name(name),
            _ => {}
        }
        let line = control.encode();
        assert_eq!(line.last(), Some(&b'\n'));
        let body = &line[..line.len() - 1];
        assert!(!body.contains(&b'\n'));
        match (&control, Control::parse(body)) {
            (Control::File { mode, .. } | Control::Dir { mode, .. }, Ok(again)) => {
                // Modes are kept to their permission bits when encoded.
                assert!(*mode <= 0o7777);
                assert_eq!(again, control);
            }
            (_, Ok(again)) => assert_eq!(again, control),
            (_, Err(e)) => panic!("encoded {control:?} does not parse: {e}"),
        }
    } else {
        let all = EnabledCommands::new(&["*"], false).unwrap();
        if let Ok(command) = Command::parse(input, &all) {
            match command {
                Command::Scp(args) => {
                    assert!(!args.paths.is_empty());
                    assert!(!args.sink || args.paths.len() == 1);
                    assert!(args.paths.iter().all(|p| !p.contains(&0)));
                }
                Command::Hash { paths, .. } => assert!(paths.iter().all(|p| !p.contains(&0))),
                Command::Cd | Command::Pwd => {}
            }
        }
    }
});

fn check_name(name: &[u8]) {
    assert!(!name.is_empty() && name != b"." && name != b"..");
    assert!(!name.iter().any(|&b| b == b'/' || b == 0 || b == b'\n'));
}
