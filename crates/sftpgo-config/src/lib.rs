//! Configuration: SFTPGo 0.9's keys and defaults, read from `<dir>/<name>.json|yaml|yml|toml`
//! (figment) and overridden by `SFTPGO_<SECTION>__<KEY>` environment variables, then
//! validated. Every error names where the bad value came from (file or environment) and
//! the key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Json, Serialized, Toml, Yaml};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Config {
    pub common: CommonConfig,
    pub sftpd: SftpdConfig,
    pub data_provider: DataProviderConfig,
    pub httpd: HttpdConfig,
    pub log: LogConfig,
    pub kms: KmsConfig,
}

/// `kms`: SFTPGo 2.x's section for the key that encrypts stored secrets (the S3
/// `access_secret` of users).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct KmsConfig {
    pub secrets: KmsSecrets,
}

/// `kms.secrets`: the master key inline (`master_key`, e.g. from
/// `SFTPGO_KMS__SECRETS__MASTER_KEY`) or in a file (`master_key_path`, relative to the
/// config dir). With neither, `secrets.key` in the config dir, generated (mode 0600) when
/// missing. Instances sharing a data provider need the same key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct KmsSecrets {
    #[serde(deserialize_with = "lenient_string")]
    pub master_key: String,
    #[serde(deserialize_with = "lenient_string")]
    pub master_key_path: String,
}

/// Settings of every protocol (SFTPGo 2.x's `common` section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CommonConfig {
    pub defender: DefenderConfig,
}

/// `common.defender`: SFTPGo 2.x's keys, enabled by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DefenderConfig {
    pub enabled: bool,
    /// `memory` (this process) or `provider` (the data provider's database, shared by
    /// the instances that use it).
    #[serde(deserialize_with = "lenient_string")]
    pub driver: String,
    /// Minutes a ban lasts.
    pub ban_time: u64,
    /// Percent of `ban_time` added each time a banned host connects again.
    pub ban_time_increment: u32,
    /// Score that bans a host.
    pub threshold: u32,
    /// A login as a user that does not exist.
    pub score_invalid: u32,
    /// A wrong password or key for an existing user.
    pub score_valid: u32,
    /// A connection refused by a limit.
    pub score_limit_exceeded: u32,
    /// A connection that ended without trying to log in.
    pub score_no_auth: u32,
    /// Minutes within which scores add up.
    pub observation_time: u64,
    /// Hosts the memory driver keeps at most (bans are forgotten last).
    pub entries_hard_limit: u32,
    /// IP addresses and CIDR networks never scored or banned.
    pub safelist: Vec<String>,
    /// IP addresses and CIDR networks always refused.
    pub blocklist: Vec<String>,
    /// Files with more entries, one per line (`#` comments).
    #[serde(deserialize_with = "lenient_string")]
    pub safelist_file: String,
    #[serde(deserialize_with = "lenient_string")]
    pub blocklist_file: String,
}

impl Default for DefenderConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            driver: "memory".into(),
            ban_time: 30,
            ban_time_increment: 50,
            threshold: 15,
            score_invalid: 2,
            score_valid: 1,
            score_limit_exceeded: 3,
            score_no_auth: 0,
            observation_time: 30,
            entries_hard_limit: 20_000,
            safelist: Vec::new(),
            blocklist: Vec::new(),
            safelist_file: String::new(),
            blocklist_file: String::new(),
        }
    }
}

/// Logging settings that can change without a restart (re-read on SIGHUP).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct LogConfig {
    /// `trace`, `debug`, `info`, `warn` or `error`; empty = from the `--log-verbose` flag
    /// (debug when set, info otherwise).
    #[serde(deserialize_with = "lenient_string")]
    pub level: String,
}

/// The levels `log.level` accepts.
pub const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SftpdConfig {
    pub bind_port: u16,
    /// "" = all interfaces.
    #[serde(deserialize_with = "lenient_string")]
    pub bind_address: String,
    /// Minutes; 0 disables.
    pub idle_timeout: u64,
    /// 0 = 6 tries; negative = unlimited.
    pub max_auth_tries: i32,
    /// Octal string.
    #[serde(deserialize_with = "lenient_string")]
    pub umask: String,
    #[serde(deserialize_with = "lenient_string")]
    pub banner: String,
    /// 0 standard, 1 atomic.
    pub upload_mode: u8,
    /// SFTPGo 2.x's key: 0 applies SETSTAT's mode, owner and time changes; 1 accepts and
    /// ignores them (size changes still apply); 2 ignores them only on cloud storage
    /// (which always does here: 2 reads as 0 for local storage).
    pub setstat_mode: u8,
    pub actions: ActionsConfig,
    pub keys: Vec<HostKeyConfig>,
    /// Seconds a connection may take to authenticate (at least 1); a connection not
    /// authenticated by then is closed.
    pub login_timeout: u64,
    /// Minutes: at start, atomic-upload temp files not written for this long are removed
    /// from the users' home dirs (left by a crash); 0 disables the sweep.
    pub stale_upload_max_age: u64,
    /// MiB that password checks running at once may use (64 MiB each for argon2id): they
    /// run at most one per core and at most this budget / 64 at once (at least one); a
    /// login waits up to 10 s for its turn, then fails.
    pub password_check_memory_mib: u64,
    /// Channels one SSH connection may have open at once (OpenSSH's `MaxSessions`; at
    /// least 1): each SFTP session is a channel with its own handles and buffers.
    pub max_channels_per_connection: u32,
    /// Connections open at once, counted from accept, before any handshake (0 = no limit).
    pub max_total_connections: u32,
    /// Connections open at once from one client IP (0 = no limit).
    pub max_per_host_connections: u32,
    /// Files one user may have open at once over all connections and channels (0 = no
    /// limit); each is a file descriptor of the server.
    pub max_open_files_per_user: u32,
    /// Key exchange algorithms offered, in order (SFTPGo 0.9.2's key); empty = defaults.
    pub kex_algorithms: Vec<String>,
    /// Ciphers offered, in order; empty = defaults.
    pub ciphers: Vec<String>,
    /// MACs offered, in order; empty = defaults.
    pub macs: Vec<String>,
    /// Host key signature algorithms offered, in order; empty = defaults.
    pub host_key_algorithms: Vec<String>,
    /// SFTPGo 0.9.1's key: serve SCP (`scp -O`); also on when `scp` is in
    /// `enabled_ssh_commands`.
    pub enable_scp: bool,
    /// SFTPGo 2.x's key: the SSH commands `exec` requests may run (`*` = all supported).
    pub enabled_ssh_commands: Vec<String>,
}

impl Default for SftpdConfig {
    fn default() -> Self {
        Self {
            bind_port: 2022,
            bind_address: String::new(),
            idle_timeout: 15,
            max_auth_tries: 0,
            umask: "0022".into(),
            banner: "SFTPGo".into(),
            upload_mode: 0,
            setstat_mode: 0,
            actions: ActionsConfig::default(),
            keys: Vec::new(),
            login_timeout: 120,
            stale_upload_max_age: 360,
            password_check_memory_mib: 512,
            max_channels_per_connection: 10,
            max_total_connections: 2000,
            max_per_host_connections: 20,
            max_open_files_per_user: 1024,
            kex_algorithms: Vec::new(),
            ciphers: Vec::new(),
            macs: Vec::new(),
            host_key_algorithms: Vec::new(),
            enable_scp: false,
            enabled_ssh_commands: [
                "md5sum",
                "sha1sum",
                "sha256sum",
                "sha384sum",
                "sha512sum",
                "cd",
                "pwd",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ActionsConfig {
    pub execute_on: Vec<String>,
    /// Absolute path of an executable, run without a shell.
    #[serde(deserialize_with = "lenient_string")]
    pub command: String,
    #[serde(deserialize_with = "lenient_string")]
    pub http_notification_url: String,
    /// Seconds a command may run before it is killed.
    pub command_timeout: u64,
    /// Seconds an HTTP notification may take.
    pub http_timeout: u64,
    /// Actions (commands plus notifications) running at once; the rest wait in a queue.
    pub max_concurrency: u32,
    /// Events that may wait in the queue; beyond that new events are dropped and logged.
    pub queue_size: u32,
}

impl Default for ActionsConfig {
    fn default() -> Self {
        Self {
            execute_on: Vec::new(),
            command: String::new(),
            http_notification_url: String::new(),
            command_timeout: 30,
            http_timeout: 15,
            max_concurrency: 8,
            queue_size: 100_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct HostKeyConfig {
    #[serde(deserialize_with = "lenient_string")]
    pub private_key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DataProviderConfig {
    #[serde(deserialize_with = "lenient_string")]
    pub driver: String,
    #[serde(deserialize_with = "lenient_string")]
    pub name: String,
    #[serde(deserialize_with = "lenient_string")]
    pub host: String,
    pub port: u16,
    #[serde(deserialize_with = "lenient_string")]
    pub username: String,
    #[serde(deserialize_with = "lenient_string")]
    pub password: String,
    pub sslmode: u8,
    #[serde(deserialize_with = "lenient_string")]
    pub connection_string: String,
    #[serde(deserialize_with = "lenient_string")]
    pub users_table: String,
    pub manage_users: u8,
    pub track_quota: u8,
    /// Largest number of pooled database connections; 0 = the driver's default (sqlite 4;
    /// postgresql and mysql one per CPU, at least 4 and at most 32).
    pub pool_size: u32,
    /// Seconds to wait for a database connection (a new one or a free pooled one); for
    /// sqlite also how long a statement waits for a locked database (busy timeout).
    pub connect_timeout: u64,
    /// Seconds a statement may run (postgresql `statement_timeout`, MariaDB
    /// `max_statement_time`, MySQL `max_execution_time` for SELECTs); 0 = no limit.
    pub statement_timeout: u64,
    /// SFTPGo 0.9.3's key: when set (an absolute path), every home must lie beneath it,
    /// and a user added without `home_dir` gets `<users_base_dir>/<username>`.
    #[serde(deserialize_with = "lenient_string")]
    pub users_base_dir: String,
}

impl Default for DataProviderConfig {
    fn default() -> Self {
        Self {
            driver: "sqlite".into(),
            name: "sftpgo.db".into(),
            host: String::new(),
            port: 5432,
            username: String::new(),
            password: String::new(),
            sslmode: 0,
            connection_string: String::new(),
            users_table: "users".into(),
            manage_users: 1,
            track_quota: 2,
            pool_size: 0,
            connect_timeout: 10,
            statement_timeout: 30,
            users_base_dir: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpdConfig {
    /// 0 disables the REST API.
    pub bind_port: u16,
    #[serde(deserialize_with = "lenient_string")]
    pub bind_address: String,
    /// htpasswd file (bcrypt entries) enabling HTTP Basic auth on every endpoint, relative
    /// to the config dir; empty = no authentication.
    #[serde(deserialize_with = "lenient_string")]
    pub auth_user_file: String,
    /// PEM certificate (chain) for HTTPS, relative to the config dir; HTTPS needs both
    /// this and `certificate_key_file`, empty = plain HTTP.
    #[serde(deserialize_with = "lenient_string")]
    pub certificate_file: String,
    /// PEM private key for `certificate_file`.
    #[serde(deserialize_with = "lenient_string")]
    pub certificate_key_file: String,
    /// The web admin: HTML pages for operators on the API's port, under a path prefix.
    pub web_admin: WebAdminConfig,
}

/// `httpd.web_admin`: the operators' web pages. They log in with the accounts of
/// `httpd.auth_user_file`; without that file the prefix only says how to turn them on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebAdminConfig {
    pub enabled: bool,
    /// Where the pages live (`/web`): starts with `/`, no trailing `/`, outside `/api`.
    #[serde(deserialize_with = "lenient_string")]
    pub path_prefix: String,
    /// Seconds a login session lasts without a request.
    pub session_idle_expiry: u64,
}

impl Default for WebAdminConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path_prefix: "/web".into(),
            session_idle_expiry: 900,
        }
    }
}

impl Default for HttpdConfig {
    fn default() -> Self {
        Self {
            bind_port: 8080,
            bind_address: "127.0.0.1".into(),
            auth_user_file: String::new(),
            certificate_file: String::new(),
            certificate_key_file: String::new(),
            web_admin: WebAdminConfig::default(),
        }
    }
}

/// Reads a string field, also taking a number or boolean as its text (`password: 1234`,
/// `banner: 5` in YAML), as 0.9's viper did.
fn lenient_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(Visitor)
}

/// A configuration error. `Display` names where the bad value came from (the file path, or
/// `environment (SFTPGO_...)`) and, when there is one, the dotted key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read or parsed as a whole (I/O error, malformed syntax).
    #[error("{source_name}: {message}")]
    Unreadable {
        source_name: String,
        message: String,
    },
    /// A key has the wrong type or an out-of-range value.
    #[error("{source_name}: {key}: {message}")]
    Invalid {
        source_name: String,
        key: String,
        message: String,
    },
}

impl ConfigError {
    /// The file path or `environment (VAR)` the bad value came from.
    pub fn source_name(&self) -> &str {
        match self {
            Self::Unreadable { source_name, .. } | Self::Invalid { source_name, .. } => source_name,
        }
    }

    /// The dotted key (`sftpd.upload_mode`), if the error concerns one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Unreadable { .. } => None,
            Self::Invalid { key, .. } => Some(key),
        }
    }
}

/// The loaded configuration and the file it came from (`None`: built-in defaults).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub file: Option<PathBuf>,
}

pub const ENV_PREFIX: &str = "SFTPGO_";
const EXTENSIONS: &[&str] = &["json", "yaml", "yml", "toml"];
pub const DRIVERS: &[&str] = &["sqlite", "postgresql", "mysql", "bolt", "memory"];
pub const ACTIONS: &[&str] = &["download", "upload", "delete", "rename"];

/// Loads the config file from `config_dir` with the process environment applied.
pub fn load(config_dir: &Path, config_file: &str) -> Result<Loaded, ConfigError> {
    load_with_env(config_dir, config_file, std::env::vars())
}

/// As [`load`], with the environment given explicitly.
pub fn load_with_env(
    config_dir: &Path,
    config_file: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded, ConfigError> {
    let file = EXTENSIONS
        .iter()
        .map(|ext| config_dir.join(format!("{config_file}.{ext}")))
        .find(|p| p.is_file());
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    let file_name = file
        .as_ref()
        .map(|f| f.display().to_string())
        .unwrap_or_else(|| "defaults".into());
    if let Some(f) = &file {
        figment = match f.extension().and_then(|e| e.to_str()) {
            Some("json") => figment.merge(Json::file_exact(f)),
            Some("toml") => figment.merge(Toml::file_exact(f)),
            _ => figment.merge(Yaml::file_exact(f)),
        };
        // Extract once with the file alone, so its errors name the file.
        figment
            .extract::<Config>()
            .map_err(|e| figment_error(&file_name, &[], e))?;
    }
    let (overrides, env_keys) = env_overrides(env)?;
    let figment = figment.merge(Serialized::globals(overrides));
    let config: Config = figment
        .extract()
        .map_err(|e| figment_error("environment", &env_keys, e))?;
    validate(&config).map_err(|(key, message)| {
        let source_name = match env_keys.iter().find(|(k, _)| *k == key) {
            Some((_, var)) => format!("environment ({var})"),
            None => file_name.clone(),
        };
        ConfigError::Invalid {
            source_name,
            key,
            message,
        }
    })?;
    Ok(Loaded { config, file })
}

/// Converts a figment error; `env_keys` maps dotted keys to the variables that set them.
fn figment_error(source: &str, env_keys: &[(String, String)], e: figment::Error) -> ConfigError {
    let key = e.path.join(".");
    if key.is_empty() {
        return ConfigError::Unreadable {
            source_name: source.to_string(),
            message: e.kind.to_string(),
        };
    }
    let source_name = match env_keys.iter().find(|(k, _)| *k == key) {
        Some((_, var)) => format!("environment ({var})"),
        None => source.to_string(),
    };
    ConfigError::Invalid {
        source_name,
        key,
        message: e.kind.to_string(),
    }
}

/// Turns `SFTPGO_SECTION__KEY=value` variables into a JSON tree typed after the defaults
/// (so `SFTPGO_SFTPD__BANNER=123` stays a string and lists split on commas). Returns the
/// tree and (dotted key, variable) pairs for error messages. Variables that name no key
/// (such as the CLI's `SFTPGO_CONFIG_DIR`) are ignored.
fn env_overrides(
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(Value, Vec<(String, String)>), ConfigError> {
    let schema = serde_json::to_value(Config::default()).unwrap_or(Value::Null);
    let mut tree = Value::Object(Default::default());
    let mut keys = Vec::new();
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        let Some(default) = path.iter().try_fold(&schema, |v, k| v.get(k)) else {
            continue;
        };
        let dotted = path.join(".");
        let bad = |what: &str| ConfigError::Invalid {
            source_name: format!("environment ({var})"),
            key: dotted.clone(),
            message: format!("expected {what}, got {raw:?}"),
        };
        let value = match default {
            Value::String(_) => Value::String(raw.clone()),
            Value::Bool(_) => Value::Bool(raw.trim().parse().map_err(|_| bad("true or false"))?),
            Value::Number(_) => {
                let t = raw.trim();
                if let Ok(n) = t.parse::<i64>() {
                    Value::from(n)
                } else {
                    return Err(bad("an integer"));
                }
            }
            Value::Array(_) => {
                let items = raw.split(',').map(str::trim).filter(|s| !s.is_empty());
                if dotted == "sftpd.keys" {
                    items
                        .map(|p| serde_json::json!({ "private_key": p }))
                        .collect()
                } else {
                    items.map(|s| Value::String(s.to_string())).collect()
                }
            }
            _ => continue,
        };
        insert(&mut tree, &path, value);
        keys.push((dotted, var.clone()));
    }
    Ok((tree, keys))
}

fn insert(tree: &mut Value, path: &[String], value: Value) {
    let mut node = tree;
    for key in &path[..path.len() - 1] {
        node = node
            .as_object_mut()
            .map(|o| {
                o.entry(key.clone())
                    .or_insert_with(|| Value::Object(Default::default()))
            })
            .expect("env tree nodes are objects");
    }
    if let Some(o) = node.as_object_mut() {
        o.insert(path[path.len() - 1].clone(), value);
    }
}

/// The longest banner that keeps `SSH-2.0-<banner>\r\n` within RFC 4253's 255 bytes.
pub const MAX_BANNER_LEN: usize = 255 - "SSH-2.0-\r\n".len();

/// Largest `data_provider.pool_size`.
pub const MAX_POOL_SIZE: u32 = 1000;
/// Largest `data_provider.connect_timeout` (seconds).
pub const MAX_CONNECT_TIMEOUT: u64 = 3600;
/// Largest `data_provider.statement_timeout` (seconds).
pub const MAX_STATEMENT_TIMEOUT: u64 = 86_400;

/// Range checks; returns the dotted key and the problem.
fn validate(c: &Config) -> Result<(), (String, String)> {
    let err = |k: &str, m: String| Err((k.to_string(), m));
    let d = &c.common.defender;
    if !["memory", "provider"].contains(&d.driver.as_str()) {
        return err(
            "common.defender.driver",
            format!("must be memory or provider, got {:?}", d.driver),
        );
    }
    for (key, value) in [
        ("common.defender.ban_time", d.ban_time),
        ("common.defender.observation_time", d.observation_time),
        ("common.defender.threshold", u64::from(d.threshold)),
        (
            "common.defender.entries_hard_limit",
            u64::from(d.entries_hard_limit),
        ),
    ] {
        if value == 0 {
            return err(key, "must be at least 1".to_owned());
        }
    }
    if d.ban_time > 525_600 || d.observation_time > 525_600 {
        return err(
            "common.defender.ban_time",
            "ban_time and observation_time are minutes, at most a year".to_owned(),
        );
    }
    let banner = &c.sftpd.banner;
    if banner
        .chars()
        .any(|ch| !(ch == ' ' || ch.is_ascii_graphic()))
    {
        return err(
            "sftpd.banner",
            format!(
                "must be printable ASCII (it is sent in the SSH identification line), got {banner:?}"
            ),
        );
    }
    if banner.len() > MAX_BANNER_LEN {
        return err(
            "sftpd.banner",
            format!(
                "must be at most {MAX_BANNER_LEN} characters, got {}",
                banner.len()
            ),
        );
    }
    if c.sftpd.upload_mode > 1 {
        return err(
            "sftpd.upload_mode",
            format!(
                "must be 0 (standard) or 1 (atomic), got {}",
                c.sftpd.upload_mode
            ),
        );
    }
    if c.sftpd.setstat_mode > 2 {
        return err(
            "sftpd.setstat_mode",
            format!(
                "must be 0 (apply), 1 (ignore) or 2 (ignore on cloud storage), got {}",
                c.sftpd.setstat_mode
            ),
        );
    }
    match u32::from_str_radix(&c.sftpd.umask, 8) {
        Ok(v) if v <= 0o777 => {}
        _ => {
            return err(
                "sftpd.umask",
                format!(
                    "must be an octal value from 0000 to 0777, got {:?}",
                    c.sftpd.umask
                ),
            );
        }
    }
    for a in &c.sftpd.actions.execute_on {
        if ActionEvent::parse(a).is_none() {
            return err(
                "sftpd.actions.execute_on",
                format!(
                    "unknown action {a:?}, expected one of {}",
                    ACTIONS.join(", ")
                ),
            );
        }
    }
    validate_actions(&c.sftpd.actions).map_err(|(k, m)| (format!("sftpd.actions.{k}"), m))?;
    if !c.log.level.is_empty() && !LOG_LEVELS.contains(&c.log.level.as_str()) {
        return err(
            "log.level",
            format!(
                "unknown level {:?}, expected one of {} (or empty)",
                c.log.level,
                LOG_LEVELS.join(", ")
            ),
        );
    }
    if c.sftpd.login_timeout == 0 {
        return err(
            "sftpd.login_timeout",
            "must be at least 1 second, got 0".into(),
        );
    }
    for k in &c.sftpd.keys {
        if k.private_key.trim().is_empty() {
            return err("sftpd.keys", "private_key must not be empty".into());
        }
    }
    let dp = &c.data_provider;
    if !DRIVERS.contains(&dp.driver.as_str()) {
        return err(
            "data_provider.driver",
            format!(
                "unknown driver {:?}, expected one of {}",
                dp.driver,
                DRIVERS.join(", ")
            ),
        );
    }
    if dp.sslmode > 3 {
        return err(
            "data_provider.sslmode",
            format!("must be 0 to 3, got {}", dp.sslmode),
        );
    }
    if dp.manage_users > 1 {
        return err(
            "data_provider.manage_users",
            format!("must be 0 or 1, got {}", dp.manage_users),
        );
    }
    if dp.track_quota > 2 {
        return err(
            "data_provider.track_quota",
            format!("must be 0, 1 or 2, got {}", dp.track_quota),
        );
    }
    if dp.pool_size > MAX_POOL_SIZE {
        return err(
            "data_provider.pool_size",
            format!(
                "must be 0 (driver default) to {MAX_POOL_SIZE}, got {}",
                dp.pool_size
            ),
        );
    }
    if !(1..=MAX_CONNECT_TIMEOUT).contains(&dp.connect_timeout) {
        return err(
            "data_provider.connect_timeout",
            format!(
                "must be 1 to {MAX_CONNECT_TIMEOUT} seconds, got {}",
                dp.connect_timeout
            ),
        );
    }
    if dp.statement_timeout > MAX_STATEMENT_TIMEOUT {
        return err(
            "data_provider.statement_timeout",
            format!(
                "must be 0 (no limit) to {MAX_STATEMENT_TIMEOUT} seconds, got {}",
                dp.statement_timeout
            ),
        );
    }
    if !dp.users_base_dir.is_empty() && !dp.users_base_dir.starts_with('/') {
        return err(
            "data_provider.users_base_dir",
            format!("must be an absolute path, got {:?}", dp.users_base_dir),
        );
    }
    if dp.users_table.is_empty()
        || !dp
            .users_table
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    {
        return err(
            "data_provider.users_table",
            format!("must be a plain SQL identifier, got {:?}", dp.users_table),
        );
    }
    let h = &c.httpd;
    match (
        h.certificate_file.is_empty(),
        h.certificate_key_file.is_empty(),
    ) {
        // The error names the key that is set, so it points at where it was set.
        (false, true) => {
            return err(
                "httpd.certificate_file",
                "is set but httpd.certificate_key_file is empty: HTTPS needs both".into(),
            );
        }
        (true, false) => {
            return err(
                "httpd.certificate_key_file",
                "is set but httpd.certificate_file is empty: HTTPS needs both".into(),
            );
        }
        _ => {}
    }
    validate_web_admin(&h.web_admin)
}

/// Longest `httpd.web_admin.session_idle_expiry` (seconds): a day.
pub const MAX_WEB_SESSION_IDLE: u64 = 86_400;

fn validate_web_admin(w: &WebAdminConfig) -> Result<(), (String, String)> {
    let p = &w.path_prefix;
    let well_formed = p.len() > 1
        && p.len() <= 64
        && p.starts_with('/')
        && !p.ends_with('/')
        && !p.contains("//")
        && p[1..]
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '/' | '-' | '_' | '.'));
    if !well_formed {
        return Err((
            "httpd.web_admin.path_prefix".into(),
            format!(
                "must be a path like /web (starts with '/', no trailing '/', letters, digits, '-', '_', '.'), got {p:?}"
            ),
        ));
    }
    let first = p[1..].split('/').next().unwrap_or("");
    if ["api", "metrics", "healthz"].contains(&first) {
        return Err((
            "httpd.web_admin.path_prefix".into(),
            format!("{p:?} overlaps the REST API's paths (/api, /metrics, /healthz)"),
        ));
    }
    if !(1..=MAX_WEB_SESSION_IDLE).contains(&w.session_idle_expiry) {
        return Err((
            "httpd.web_admin.session_idle_expiry".into(),
            format!(
                "must be 1 to {MAX_WEB_SESSION_IDLE} seconds, got {}",
                w.session_idle_expiry
            ),
        ));
    }
    Ok(())
}

/// `sftpd.actions`: the command must be an absolute path to an executable file (checked
/// now, so a typo fails the start rather than every upload), the URL must be http(s).
fn validate_actions(a: &ActionsConfig) -> Result<(), (String, String)> {
    let err = |k: &str, m: String| Err((k.to_string(), m));
    if !a.command.is_empty() {
        use std::os::unix::fs::PermissionsExt;
        let path = Path::new(&a.command);
        if !path.is_absolute() {
            return err(
                "command",
                format!("must be an absolute path, got {:?}", a.command),
            );
        }
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {}
            Ok(_) => {
                return err(
                    "command",
                    format!("{} is not an executable file", a.command),
                );
            }
            Err(e) => return err("command", format!("{}: {e}", a.command)),
        }
    }
    if !a.http_notification_url.is_empty() {
        let lower = a.http_notification_url.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("http://")
            .or_else(|| lower.strip_prefix("https://"));
        if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
            return err(
                "http_notification_url",
                format!(
                    "must be an http:// or https:// URL with a host, got {:?}",
                    a.http_notification_url
                ),
            );
        }
    }
    if a.command_timeout == 0 {
        return err("command_timeout", "must be at least 1 second, got 0".into());
    }
    if a.http_timeout == 0 {
        return err("http_timeout", "must be at least 1 second, got 0".into());
    }
    if a.max_concurrency == 0 {
        return err("max_concurrency", "must be at least 1, got 0".into());
    }
    if a.queue_size == 0 {
        return err("queue_size", "must be at least 1, got 0".into());
    }
    Ok(())
}

/// A path from the config (host key, sqlite/bolt database), resolved against the config
/// dir when relative, as 0.9 does.
pub fn resolve_path(config_dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        config_dir.join(p)
    }
}

/// `sftpd.upload_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadMode {
    /// 0: uploads write the target file directly.
    Standard,
    /// 1: uploads go to a temporary file renamed over the target on success.
    Atomic,
}

/// `data_provider.track_quota`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackQuota {
    /// 0: no quota bookkeeping.
    Off,
    /// 1: bookkeeping for every user.
    Always,
    /// 2: bookkeeping only for users with quota limits.
    LimitedUsersOnly,
}

/// An `sftpd.actions.execute_on` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionEvent {
    Download,
    Upload,
    Delete,
    Rename,
}

impl ActionEvent {
    /// The name used in the config (`download`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Download => "download",
            Self::Upload => "upload",
            Self::Delete => "delete",
            Self::Rename => "rename",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "download" => Self::Download,
            "upload" => Self::Upload,
            "delete" => Self::Delete,
            "rename" => Self::Rename,
            _ => return None,
        })
    }
}

impl Config {
    /// A path from the config, resolved against the config dir when relative (same as the
    /// free function [`resolve_path`]).
    pub fn resolve_path(config_dir: &Path, p: &str) -> PathBuf {
        resolve_path(config_dir, p)
    }

    /// The host key files (`sftpd.keys`), resolved against `config_dir`.
    pub fn host_key_paths(&self, config_dir: &Path) -> Vec<PathBuf> {
        self.sftpd
            .keys
            .iter()
            .map(|k| resolve_path(config_dir, &k.private_key))
            .collect()
    }

    /// `sftpd.upload_mode` (validated at load; anything but 1 reads as standard).
    pub fn upload_mode(&self) -> UploadMode {
        if self.sftpd.upload_mode == 1 {
            UploadMode::Atomic
        } else {
            UploadMode::Standard
        }
    }

    /// `data_provider.track_quota` (validated at load).
    pub fn track_quota(&self) -> TrackQuota {
        match self.data_provider.track_quota {
            0 => TrackQuota::Off,
            1 => TrackQuota::Always,
            _ => TrackQuota::LimitedUsersOnly,
        }
    }

    /// `httpd.web_admin.session_idle_expiry` (seconds, validated at load to be at least 1).
    pub fn web_session_idle_expiry(&self) -> Duration {
        Duration::from_secs(self.httpd.web_admin.session_idle_expiry)
    }

    /// `data_provider.pool_size`; `None` when 0 (the driver's default).
    pub fn provider_pool_size(&self) -> Option<u32> {
        (self.data_provider.pool_size > 0).then_some(self.data_provider.pool_size)
    }

    /// `data_provider.connect_timeout` (seconds, validated at load to be at least 1).
    pub fn provider_connect_timeout(&self) -> Duration {
        Duration::from_secs(self.data_provider.connect_timeout)
    }

    /// `data_provider.statement_timeout` (seconds); `None` when 0 (no limit).
    pub fn provider_statement_timeout(&self) -> Option<Duration> {
        (self.data_provider.statement_timeout > 0)
            .then(|| Duration::from_secs(self.data_provider.statement_timeout))
    }

    /// `data_provider.manage_users` as a flag.
    pub fn manage_users(&self) -> bool {
        self.data_provider.manage_users != 0
    }

    /// `sftpd.actions.execute_on` as events (validated at load, so none is dropped).
    pub fn action_events(&self) -> Vec<ActionEvent> {
        self.sftpd
            .actions
            .execute_on
            .iter()
            .filter_map(|a| ActionEvent::parse(a))
            .collect()
    }

    /// The `log.level` filter, if set (validated at load).
    pub fn log_level(&self) -> Option<&str> {
        (!self.log.level.is_empty()).then_some(self.log.level.as_str())
    }

    /// `sftpd.idle_timeout` (minutes); `None` when 0 (disabled).
    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.sftpd.idle_timeout > 0)
            .then(|| Duration::from_secs(self.sftpd.idle_timeout.saturating_mul(60)))
    }

    /// `sftpd.stale_upload_max_age` (minutes); `None` when the sweep is off.
    pub fn stale_upload_max_age(&self) -> Option<Duration> {
        (self.sftpd.stale_upload_max_age > 0)
            .then(|| Duration::from_secs(self.sftpd.stale_upload_max_age.saturating_mul(60)))
    }

    /// `sftpd.login_timeout` (seconds).
    pub fn login_timeout(&self) -> Duration {
        Duration::from_secs(self.sftpd.login_timeout)
    }

    /// `sftpd.umask` as a number (validated at load).
    pub fn umask_value(&self) -> u32 {
        u32::from_str_radix(&self.sftpd.umask, 8).unwrap_or(0o022)
    }

    /// `sftpd.max_auth_tries`: 0 means 6, negative means unlimited (`None`).
    pub fn effective_max_auth_tries(&self) -> Option<u32> {
        match self.sftpd.max_auth_tries {
            0 => Some(6),
            n if n < 0 => None,
            n => Some(n as u32),
        }
    }

    /// `httpd.auth_user_file` resolved against `config_dir`; `None` when empty (no auth).
    pub fn httpd_auth_user_file(&self, config_dir: &Path) -> Option<PathBuf> {
        let f = &self.httpd.auth_user_file;
        (!f.is_empty()).then(|| resolve_path(config_dir, f))
    }

    /// `httpd.certificate_file` and `httpd.certificate_key_file` resolved against
    /// `config_dir`; `None` (plain HTTP) unless both are set (validated at load).
    pub fn httpd_tls_files(&self, config_dir: &Path) -> Option<(PathBuf, PathBuf)> {
        let h = &self.httpd;
        (!h.certificate_file.is_empty() && !h.certificate_key_file.is_empty()).then(|| {
            (
                resolve_path(config_dir, &h.certificate_file),
                resolve_path(config_dir, &h.certificate_key_file),
            )
        })
    }

    /// The SSH banner; blank means the default.
    pub fn banner(&self) -> &str {
        if self.sftpd.banner.trim().is_empty() {
            "SFTPGo"
        } else {
            &self.sftpd.banner
        }
    }
}

#[cfg(test)]
mod tests;
