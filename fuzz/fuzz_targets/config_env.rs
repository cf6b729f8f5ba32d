//! The config's `SFTPGO_SECTION__KEY=value` environment overrides
//! (`sftpgo_config::load_with_env`, no config file: the defaults).
//!
//! Input: lines of `NAME=value` (a line without `=` is a name with an empty value).
//! Checks: loading returns the config or an error, never panics; an error names where
//! the bad value came from (a variable of the input when it names one); a loaded config
//! holds, for every variable naming a key, the value of the last such variable, parsed as
//! the key's type (strings verbatim, integers and booleans trimmed, lists split on commas).

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sftpgo_config::{Config, ConfigError, ENV_PREFIX, load_with_env};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let env: Vec<(String, String)> = text
        .split('\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect();

    // A directory with no config file: the defaults, then the environment.
    match load_with_env(Path::new("/nonexistent/sftpgo-fuzz"), "sftpgo", env.clone()) {
        Ok(loaded) => {
            assert!(loaded.file.is_none());
            check_applied(&loaded.config, &env);
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(!shown.is_empty());
            let source = e.source_name();
            if let Some(var) = source
                .strip_prefix("environment (")
                .and_then(|s| s.strip_suffix(')'))
            {
                assert!(env.iter().any(|(k, _)| k == var), "{shown}");
            }
            if let ConfigError::Invalid { key, .. } = &e {
                assert!(!key.is_empty(), "{shown}");
            }
        }
    }
});

/// Every variable that names a key with a string, integer, boolean or list default set
/// that key (the last one wins).
fn check_applied(config: &Config, env: &[(String, String)]) {
    let schema = serde_json::to_value(Config::default()).unwrap();
    let got = serde_json::to_value(config).unwrap();
    let mut last: Vec<(Vec<String>, &str)> = Vec::new();
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        if path.iter().try_fold(&schema, |v, k| v.get(k)).is_none() {
            continue;
        }
        last.retain(|(p, _)| *p != path);
        last.push((path, raw));
    }
    for (path, raw) in last {
        let default = path.iter().try_fold(&schema, |v, k| v.get(k)).unwrap();
        let value = path.iter().try_fold(&got, |v, k| v.get(k)).unwrap();
        let dotted = path.join(".");
        match default {
            Value::String(_) => assert_eq!(value.as_str(), Some(raw), "{dotted}"),
            Value::Bool(_) => assert_eq!(value.as_bool(), raw.trim().parse().ok(), "{dotted}"),
            Value::Number(_) => {
                assert_eq!(value.as_i64(), raw.trim().parse::<i64>().ok(), "{dotted}")
            }
            Value::Array(_) => {
                let items: Vec<&str> = raw
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                let have: Vec<&str> = value
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| {
                        if dotted == "sftpd.keys" {
                            v["private_key"].as_str().unwrap()
                        } else {
                            v.as_str().unwrap()
                        }
                    })
                    .collect();
                assert_eq!(have, items, "{dotted}");
            }
            _ => {}
        }
    }
}
