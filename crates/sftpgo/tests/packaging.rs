//! The sample systemd unit (`init/sftpgo.service`): the keys operators rely on, and
//! `systemd-analyze verify` where systemd is installed.

use std::collections::HashMap;
use std::path::PathBuf;

fn unit_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../init/sftpgo.service")
}

/// section → key → values (a key may repeat).
fn parse(text: &str) -> HashMap<String, HashMap<String, Vec<String>>> {
    let mut out: HashMap<String, HashMap<String, Vec<String>>> = HashMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let (k, v) = line.split_once('=').expect("key=value line");
        out.entry(section.clone())
            .or_default()
            .entry(k.to_string())
            .or_default()
            .push(v.to_string());
    }
    out
}

#[test]
fn unit_has_the_expected_service_settings() {
    let text = std::fs::read_to_string(unit_path()).unwrap();
    let unit = parse(&text);
    let service = &unit["Service"];
    let one = |k: &str| {
        let v = service.get(k).unwrap_or_else(|| panic!("{k} missing"));
        assert_eq!(v.len(), 1, "{k} set more than once");
        v[0].as_str()
    };
    let exec = one("ExecStart");
    assert!(
        exec.contains(" serve ") && exec.contains("--config-dir /etc/sftpgo"),
        "{exec}"
    );
    assert_eq!(one("EnvironmentFile"), "-/etc/sftpgo/sftpgo.env");
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(one("NoNewPrivileges"), "true");
    assert_eq!(one("ProtectSystem"), "strict");
    let rw: Vec<&str> = one("ReadWritePaths").split_whitespace().collect();
    for dir in ["/srv/sftpgo", "/var/lib/sftpgo", "/var/log/sftpgo"] {
        assert!(rw.contains(&dir), "{dir} not writable: {rw:?}");
    }
    // The log file the unit names is in a writable dir.
    assert!(exec.contains("--log-file-path /var/log/sftpgo/"), "{exec}");
    assert_eq!(unit["Install"]["WantedBy"], vec!["multi-user.target"]);
}

#[test]
fn systemd_analyze_accepts_the_unit() {
    let Ok(status) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("systemd-analyze not installed; key checks only");
        return;
    };
    assert!(status.status.success());
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("sftpgo.service");
    // Point ExecStart at the binary under test: verify checks that it exists.
    let text = std::fs::read_to_string(unit_path())
        .unwrap()
        .replace("/usr/local/bin/sftpgo", env!("CARGO_BIN_EXE_sftpgo"));
    std::fs::write(&unit, text).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Only complaints about our file count (the host's own units may have warnings).
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("sftpgo.service"))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify: {:?}\n{stderr}",
        out.status
    );
}
