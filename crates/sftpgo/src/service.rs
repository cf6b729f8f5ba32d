//! Wiring: config → data provider → shared layer → SSH server, and an orderly shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sftpgo_config::Config;
use sftpgo_core::defender::{DefenderSettings, Driver, IpList};
use sftpgo_core::{
    ActionKind, ActionSettings, Actions, Core, Metrics, Observers, Settings, UploadMode,
};
use sftpgo_provider::{Backend, DataProvider, TrackQuota};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::ServeArgs;
use crate::sshd::{SshServer, SshSettings};

/// Knobs that are not configuration keys: tests use them to exercise rare paths.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Rekey after this many bytes instead of 1 GiB.
    pub rekey_bytes: Option<usize>,
    /// How long a shutdown waits for running transfers.
    pub shutdown_grace: Duration,
    /// Replaces `sftpd.idle_timeout` (whose unit, minutes, is too coarse for tests).
    pub idle_timeout: Option<Duration>,
    /// Replaces `httpd.bind_port`, where 0 would disable the API: `Some(0)` serves it on
    /// an ephemeral port.
    pub http_port: Option<u16>,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            rekey_bytes: None,
            shutdown_grace: Duration::from_secs(30),
            idle_timeout: None,
            http_port: None,
        }
    }
}

/// A started server.
pub struct Running {
    pub ssh_addr: SocketAddr,
    /// Where the REST API listens, when enabled.
    pub http_addr: Option<SocketAddr>,
    pub core: Core,
    ssh: Arc<SshServer>,
    /// The configuration the server started with, to tell what a reload cannot change.
    config: Config,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    grace: Duration,
}

impl Running {
    /// Applies what can change without a restart (SIGHUP): the host keys, re-read from
    /// their files, for new connections. Open sessions are not touched. Returns the keys
    /// whose change needs a restart.
    pub async fn reload(&self, config: &Config, config_dir: &Path) -> Result<Vec<&'static str>> {
        let key_paths = config.host_key_paths(config_dir);
        let dir = config_dir.to_path_buf();
        let host_keys = tokio::task::spawn_blocking(move || {
            crate::hostkeys::load_or_generate(&dir, &key_paths)
        })
        .await??;
        let count = host_keys.len();
        self.ssh.set_host_keys(host_keys);
        tracing::info!(sender = "service", host_keys = count, "host keys reloaded");
        Ok(changes_needing_restart(&self.config, config))
    }

    /// Stops accepting, lets running transfers finish (up to the grace period), then
    /// closes every connection.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let registry = self.core.registry();
        let deadline = tokio::time::Instant::now() + self.grace;
        while registry
            .list()
            .iter()
            .any(|c| !c.active_transfers.is_empty())
        {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    sender = "service",
                    "grace period over, aborting running transfers"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        registry.close_all();
        self.tracker.close();
        if tokio::time::timeout(Duration::from_secs(10), self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(sender = "service", "some connections did not end in time");
        }
        // Transfers are over: their quota changes are written, and what they queued
        // still runs, within the grace period.
        self.core.quota().flush().await;
        self.core.actions().shutdown(self.grace).await;
    }
}

/// The key that encrypts stored secrets (`kms.secrets`): inline, from its file, or
/// `secrets.key` in the config dir, made when the first secret is stored.
fn secret_key(config: &Config, config_dir: &Path) -> Result<sftpgo_provider::SecretKey> {
    let kms = &config.kms.secrets;
    if !kms.master_key.is_empty() {
        return Ok(sftpgo_provider::SecretKey::from_material(
            kms.master_key.as_bytes(),
        ));
    }
    let key = if kms.master_key_path.is_empty() {
        sftpgo_provider::SecretKey::from_file(&config_dir.join("secrets.key"), true)
    } else {
        let path = sftpgo_config::resolve_path(config_dir, &kms.master_key_path);
        sftpgo_provider::SecretKey::from_file(&path, false)
    };
    key.map_err(|e| anyhow::anyhow!("kms.secrets: {e}"))
}

/// Opens the configured data provider.
pub async fn open_provider(config: &Config, config_dir: &Path) -> Result<DataProvider> {
    let dp = &config.data_provider;
    let backend: Arc<dyn Backend> = match dp.driver.as_str() {
        "sqlite" => {
            let path = sftpgo_config::resolve_path(config_dir, &dp.name);
            Arc::new(
                sftpgo_provider::sqlite::SqliteBackend::open_with(
                    &path,
                    &dp.users_table,
                    &pool_settings(config),
                )
                .await
                .with_context(|| {
                    format!("cannot open the sqlite data provider {}", path.display())
                })?,
            )
        }
        "memory" => Arc::new(sftpgo_provider::memory::MemoryBackend::new()),
        "postgresql" => Arc::new(
            sftpgo_provider::postgres::PostgresBackend::connect(&server_settings(config))
                .await
                .context("cannot open the postgresql data provider")?,
        ),
        "mysql" => Arc::new(
            sftpgo_provider::mysql::MySqlBackend::connect(&server_settings(config))
                .await
                .context("cannot open the mysql data provider")?,
        ),
        "bolt" => {
            let path = sftpgo_config::resolve_path(config_dir, &dp.name);
            Arc::new(
                sftpgo_provider::bolt::BoltBackend::open(&path)
                    .await
                    .with_context(|| {
                        format!("cannot open the bolt data provider {}", path.display())
                    })?,
            )
        }
        other => bail!(
            "unknown data provider driver {other:?} (supported: sqlite, postgresql, mysql, bolt, memory)"
        ),
    };
    let track_quota = match config.track_quota() {
        sftpgo_config::TrackQuota::Off => TrackQuota::Off,
        sftpgo_config::TrackQuota::Always => TrackQuota::Always,
        sftpgo_config::TrackQuota::LimitedUsersOnly => TrackQuota::LimitedUsersOnly,
    };
    let checks = sftpgo_provider::password::CheckLimit::sized(
        config.sftpd.password_check_memory_mib,
        sftpgo_provider::password::CHECK_WAIT,
    );
    tracing::debug!(
        sender = "service",
        at_once = checks.size(),
        "password checks bounded"
    );
    Ok(
        DataProvider::new(backend, config.manage_users(), track_quota)
            .with_check_limit(checks)
            .with_users_base_dir(Some(config.data_provider.users_base_dir.clone()))
            .with_secret_key(secret_key(config, config_dir)?),
    )
}

/// `data_provider.pool_size`, `connect_timeout` and `statement_timeout`.
fn pool_settings(config: &Config) -> sftpgo_provider::sql::PoolSettings {
    sftpgo_provider::sql::PoolSettings {
        pool_size: config.provider_pool_size().unwrap_or(0),
        connect_timeout: config.provider_connect_timeout(),
        statement_timeout: config.provider_statement_timeout(),
    }
}

/// The `data_provider` keys a database server backend needs.
fn server_settings(config: &Config) -> sftpgo_provider::sql::ServerSettings {
    let dp = &config.data_provider;
    sftpgo_provider::sql::ServerSettings {
        host: dp.host.clone(),
        port: dp.port,
        name: dp.name.clone(),
        username: dp.username.clone(),
        password: dp.password.clone(),
        sslmode: dp.sslmode,
        connection_string: dp.connection_string.clone(),
        users_table: dp.users_table.clone(),
        pool: pool_settings(config),
    }
}

/// `common.defender` as the shared layer takes it: lists parsed, list files read.
fn defender_settings(config: &Config, config_dir: &Path) -> Result<DefenderSettings> {
    let d = &config.common.defender;
    let list = |entries: &[String], file: &str, key: &str| -> Result<IpList> {
        let mut list = IpList::parse(
            entries.iter().map(String::as_str),
            &format!("common.defender.{key}"),
        )
        .map_err(anyhow::Error::msg)?;
        if !file.is_empty() {
            let path = sftpgo_config::resolve_path(config_dir, file);
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!("common.defender.{key}_file: cannot read {}", path.display())
            })?;
            list.extend(
                IpList::parse(text.lines(), &path.display().to_string())
                    .map_err(anyhow::Error::msg)?,
            );
        }
        Ok(list)
    };
    Ok(DefenderSettings {
        enabled: d.enabled,
        driver: if d.driver == "provider" {
            Driver::Provider
        } else {
            Driver::Memory
        },
        ban_time: Duration::from_secs(d.ban_time * 60),
        ban_time_increment: d.ban_time_increment,
        threshold: i64::from(d.threshold),
        score_invalid: i64::from(d.score_invalid),
        score_valid: i64::from(d.score_valid),
        score_limit_exceeded: i64::from(d.score_limit_exceeded),
        score_no_auth: i64::from(d.score_no_auth),
        observation_time: Duration::from_secs(d.observation_time * 60),
        max_hosts: d.entries_hard_limit as usize,
        safelist: list(&d.safelist, &d.safelist_file, "safelist")?,
        blocklist: list(&d.blocklist, &d.blocklist_file, "blocklist")?,
    })
}

/// Starts the servers described by `config`.
pub async fn start(config: &Config, config_dir: &Path, tuning: Tuning) -> Result<Running> {
    // Checked before anything starts: an unknown name stops the start.
    let algorithms = crate::algorithms::Algorithms::from_config(
        &config.sftpd.kex_algorithms,
        &config.sftpd.ciphers,
        &config.sftpd.macs,
        &config.sftpd.host_key_algorithms,
    )?;
    let commands = sftpgo_sshcmd::EnabledCommands::new(
        &config.sftpd.enabled_ssh_commands,
        config.sftpd.enable_scp,
    )
    .context("sftpd.enabled_ssh_commands")?;
    let http_setup = httpd_setup(config, config_dir, tuning.http_port).await?;
    let provider = open_provider(config, config_dir).await?;
    let sftpd = &config.sftpd;
    let idle_timeout = tuning.idle_timeout.or_else(|| config.idle_timeout());
    let settings = Settings {
        umask: config.umask_value(),
        upload_mode: match config.upload_mode() {
            sftpgo_config::UploadMode::Atomic => UploadMode::Atomic,
            sftpgo_config::UploadMode::Standard => UploadMode::Standard,
        },
        // 2 ignores on cloud storage only, which ignores them anyway.
        ignore_setstat: config.sftpd.setstat_mode == 1,
        idle_timeout,
        max_total_connections: usize::try_from(config.sftpd.max_total_connections)
            .unwrap_or(usize::MAX),
        max_per_host_connections: usize::try_from(config.sftpd.max_per_host_connections)
            .unwrap_or(usize::MAX),
        max_open_files_per_user: usize::try_from(config.sftpd.max_open_files_per_user)
            .unwrap_or(usize::MAX),
        defender: defender_settings(config, config_dir)?,
        ..Settings::default()
    };
    if !settings.running_as_root {
        tracing::info!(
            sender = "service",
            "not running as root: users' uid/gid are ignored"
        );
    }
    let metrics = Arc::new(Metrics::new());
    let actions = Actions::start(action_settings(config), metrics.clone())
        .context("cannot start the actions")?;
    let core = Core::try_with_observers(provider, settings, Observers { metrics, actions })
        .context("common.defender.driver")?;
    warn_if_quota_unenforceable(&core).await;
    if let Some(max_age) = config.stale_upload_max_age() {
        tokio::spawn(remove_stale_uploads(core.clone(), max_age));
    }

    let key_paths = config.host_key_paths(config_dir);
    let dir = config_dir.to_path_buf();
    let host_keys =
        tokio::task::spawn_blocking(move || crate::hostkeys::load_or_generate(&dir, &key_paths))
            .await??;

    let ssh_settings = SshSettings {
        server_id: format!("SSH-2.0-{}", config.banner()),
        max_auth_tries: config.effective_max_auth_tries(),
        login_timeout: config.login_timeout().max(Duration::from_secs(1)),
        idle_timeout,
        rekey_bytes: tuning.rekey_bytes.unwrap_or(1 << 30),
        max_channels: usize::try_from(sftpd.max_channels_per_connection.max(1))
            .unwrap_or(usize::MAX),
        algorithms,
        commands,
        ..SshSettings::default()
    };
    let listener = bind(&sftpd.bind_address, sftpd.bind_port).await?;
    let ssh_addr = listener.local_addr()?;
    let server = Arc::new(SshServer::new(core.clone(), host_keys, ssh_settings));
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    tokio::spawn(
        server
            .clone()
            .serve(listener, shutdown.clone(), tracker.clone()),
    );
    tracing::info!(sender = "service", address = %ssh_addr, "SFTP server listening");
    let http_addr = match http_setup {
        Some(setup) => Some(
            start_httpd(config, setup, &core, &shutdown)
                .await
                .inspect_err(|_| shutdown.cancel())?,
        ),
        None => None,
    };
    Ok(Running {
        ssh_addr,
        http_addr,
        core,
        ssh: server,
        config: config.clone(),
        shutdown,
        tracker,
        grace: tuning.shutdown_grace,
    })
}

/// The sections of `new` that differ from `old` and that only a restart applies (host
/// keys and the log level are reloaded live).
fn changes_needing_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut old_sftpd = old.sftpd.clone();
    old_sftpd.keys = new.sftpd.keys.clone();
    let mut changed = Vec::new();
    if old_sftpd != new.sftpd {
        changed.push("sftpd");
    }
    if old.data_provider != new.data_provider {
        changed.push("data_provider");
    }
    if old.httpd != new.httpd {
        changed.push("httpd");
    }
    changed
}

/// `sftpd.actions` for the shared layer (validated at load).
fn action_settings(config: &Config) -> ActionSettings {
    let a = &config.sftpd.actions;
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    ActionSettings {
        execute_on: config
            .action_events()
            .into_iter()
            .map(|e| match e {
                sftpgo_config::ActionEvent::Download => ActionKind::Download,
                sftpgo_config::ActionEvent::Upload => ActionKind::Upload,
                sftpgo_config::ActionEvent::Delete => ActionKind::Delete,
                sftpgo_config::ActionEvent::Rename => ActionKind::Rename,
            })
            .collect(),
        command: non_empty(&a.command).map(PathBuf::from),
        command_timeout: Duration::from_secs(a.command_timeout),
        http_notification_url: non_empty(&a.http_notification_url),
        http_timeout: Duration::from_secs(a.http_timeout),
        max_concurrency: a.max_concurrency as usize,
        queue_size: a.queue_size as usize,
    }
}

/// With `track_quota: 0` quota limits cannot be enforced: say so if some user has them.
async fn warn_if_quota_unenforceable(core: &Core) {
    if core.provider().track_quota() != TrackQuota::Off {
        return;
    }
    let query = sftpgo_provider::UserQuery {
        limit: 500,
        ..Default::default()
    };
    if let Ok(users) = core.provider().list_users(&query).await
        && let Some(u) = users.iter().find(|u| u.has_quota_limits())
    {
        tracing::warn!(
            sender = "service",
            username = %u.username,
            "track_quota is 0: quota limits set on users (such as this one) are not enforced"
        );
    }
}

/// What the REST API needs besides the core, loaded before anything listens so a bad
/// auth file, certificate or key stops the start.
struct HttpdSetup {
    port: u16,
    auth: Option<Arc<sftpgo_httpd::BasicAuth>>,
    tls: Option<Arc<sftpgo_httpd::rustls::ServerConfig>>,
}

/// Loads the API's auth file and TLS files; `None` when the API is disabled (port 0).
async fn httpd_setup(
    config: &Config,
    config_dir: &Path,
    port_override: Option<u16>,
) -> Result<Option<HttpdSetup>> {
    let port = match (port_override, config.httpd.bind_port) {
        (Some(p), _) => p,
        (None, 0) => return Ok(None),
        (None, p) => p,
    };
    let auth = match config.httpd_auth_user_file(config_dir) {
        Some(path) => {
            let auth = tokio::task::spawn_blocking(move || sftpgo_httpd::BasicAuth::load(&path))
                .await?
                .context("invalid httpd.auth_user_file")?;
            tracing::info!(
                sender = "service",
                users = auth.len(),
                "REST API requires HTTP Basic auth"
            );
            Some(Arc::new(auth))
        }
        None => None,
    };
    let tls = match config.httpd_tls_files(config_dir) {
        Some((cert, key)) => Some(
            tokio::task::spawn_blocking(move || sftpgo_httpd::tls_config(&cert, &key))
                .await?
                .context("invalid httpd.certificate_file / httpd.certificate_key_file")?,
        ),
        None => None,
    };
    Ok(Some(HttpdSetup { port, auth, tls }))
}

/// Starts the REST API: Basic auth when `httpd.auth_user_file` is set, HTTPS when the
/// certificate and key are.
async fn start_httpd(
    config: &Config,
    setup: HttpdSetup,
    core: &Core,
    shutdown: &CancellationToken,
) -> Result<SocketAddr> {
    let httpd = &config.httpd;
    let HttpdSetup { port, auth, tls } = setup;
    let listener = bind(&httpd.bind_address, port).await?;
    let addr = listener.local_addr()?;
    if sftpgo_httpd::exposed_without_auth(&addr, auth.is_some()) {
        tracing::warn!(
            sender = "service",
            address = %addr,
            "the REST API listens on a non-loopback address without authentication: \
             anyone who can reach it can manage users; set httpd.auth_user_file or bind it to 127.0.0.1"
        );
    }
    let version = sftpgo_httpd::VersionInfo {
        version: crate::version::VERSION.to_string(),
        build_date: crate::version::build_date().to_string(),
        commit_hash: crate::version::commit().to_string(),
    };
    let https = tls.is_some();
    let web = httpd.web_admin.enabled.then(|| {
        let web = sftpgo_httpd::WebAdmin {
            path_prefix: httpd.web_admin.path_prefix.clone(),
            session_idle_expiry: config.web_session_idle_expiry(),
            secure_cookie: https,
        };
        if auth.is_some() {
            tracing::info!(sender = "service", path_prefix = %web.path_prefix, "web admin enabled");
        } else {
            tracing::info!(sender = "service", path_prefix = %web.path_prefix, "web admin off: it needs httpd.auth_user_file");
        }
        web
    });
    let router = sftpgo_httpd::router_with_web(core.clone(), version, auth, web);
    let token = shutdown.clone();
    tokio::spawn(async move {
        if let Err(e) = sftpgo_httpd::serve(listener, tls, router, token).await {
            tracing::error!(sender = "httpd", error = %e, "REST API server failed");
        }
    });
    tracing::info!(sender = "service", address = %addr, https, "REST API listening");
    Ok(addr)
}

/// Cleans what interrupted uploads left (atomic temps in homes, multipart uploads in
/// buckets) not touched for `max_age`: at start, then daily.
async fn remove_stale_uploads(core: Core, max_age: Duration) {
    let mut daily = tokio::time::interval(Duration::from_secs(24 * 3600));
    loop {
        daily.tick().await;
        core.sweep_stale_uploads(max_age).await;
    }
}

/// Binds `address:port`; an empty address means every interface.
async fn bind(address: &str, port: u16) -> Result<TcpListener> {
    if address.is_empty() {
        if let Ok(l) = TcpListener::bind(("::", port)).await {
            return Ok(l);
        }
        return TcpListener::bind(("0.0.0.0", port))
            .await
            .with_context(|| format!("cannot listen on port {port}"));
    }
    TcpListener::bind((address, port))
        .await
        .with_context(|| format!("cannot listen on {address}:{port}"))
}

/// Loads the configuration named by the CLI flags, logging where it came from.
fn load_config(args: &ServeArgs) -> Result<Config> {
    let loaded = sftpgo_config::load(&args.config_dir, &args.config_file).map_err(|e| {
        tracing::error!(sender = "config", error = %e, "invalid configuration");
        anyhow::anyhow!(e)
    })?;
    match &loaded.file {
        Some(f) => tracing::info!(sender = "config", file = %f.display(), "configuration loaded"),
        None => tracing::info!(
            sender = "config",
            config_dir = %args.config_dir.display(),
            config_file = %args.config_file,
            "no configuration file found, using built-in defaults"
        ),
    }
    Ok(loaded.config)
}

/// `sftpgo initprovider`: opens the configured provider, which creates or upgrades its
/// schema, then exits.
pub async fn init_provider(args: ServeArgs) -> Result<()> {
    let _log_guard = crate::logging::init(&args.log)?;
    let config = load_config(&args)?;
    let provider = open_provider(&config, &args.config_dir)
        .await
        .inspect_err(|e| {
            tracing::error!(
                sender = "service",
                error = format!("{e:#}"),
                "cannot initialize the data provider"
            );
        })?;
    provider
        .ping()
        .await
        .context("the data provider does not answer")?;
    tracing::info!(
        sender = "service",
        driver = provider.driver(),
        "data provider initialized"
    );
    println!("Data provider initialized ({})", provider.driver());
    Ok(())
}

/// `sftpgo serve`: runs until SIGTERM or SIGINT.
pub async fn run(args: ServeArgs) -> Result<()> {
    let log_guard = crate::logging::init(&args.log)?;
    let config = load_config(&args)?;
    log_guard.set_level(config.log_level())?;
    let umask = config.umask_value();
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(umask));
    let running = start(&config, &args.config_dir, Tuning::default())
        .await
        .inspect_err(|e| {
            tracing::error!(sender = "service", error = format!("{e:#}"), "cannot start");
        })?;
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(&args, &running, &log_guard).await,
        }
    }
    tracing::info!(sender = "service", "shutting down");
    running.shutdown().await;
    tracing::info!(sender = "service", "stopped");
    Ok(())
}

/// SIGHUP: re-reads the configuration; applies the log level and host keys. A bad file is
/// logged and changes nothing.
async fn reload(args: &ServeArgs, running: &Running, log: &crate::logging::LogGuard) {
    tracing::info!(sender = "service", "SIGHUP received, reloading");
    let config = match load_config(args) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(
                sender = "service",
                error = format!("{e:#}"),
                "reload aborted: the configuration is invalid, nothing changed"
            );
            return;
        }
    };
    if let Err(e) = log.set_level(config.log_level()) {
        tracing::error!(
            sender = "service",
            error = format!("{e:#}"),
            "cannot change the log level"
        );
    }
    match running.reload(&config, &args.config_dir).await {
        Ok(needs_restart) if needs_restart.is_empty() => {
            tracing::info!(
                sender = "service",
                log_level = config.log_level().unwrap_or("default"),
                "configuration reloaded"
            )
        }
        Ok(needs_restart) => tracing::warn!(
            sender = "service",
            sections = needs_restart.join(","),
            "configuration reloaded; changes in these sections take effect after a restart"
        ),
        Err(e) => {
            tracing::error!(
                sender = "service",
                error = format!("{e:#}"),
                "cannot reload the host keys; the previous ones stay in use"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_keys_reach_the_provider_settings() {
        let mut config = Config::default();
        let defaults = server_settings(&config);
        assert_eq!(defaults.pool, sftpgo_provider::sql::PoolSettings::default());
        config.data_provider.pool_size = 5;
        config.data_provider.connect_timeout = 2;
        config.data_provider.statement_timeout = 0;
        let s = server_settings(&config);
        assert_eq!(
            s.pool,
            sftpgo_provider::sql::PoolSettings {
                pool_size: 5,
                connect_timeout: Duration::from_secs(2),
                statement_timeout: None,
            }
        );
        assert_eq!(pool_settings(&config), s.pool);
    }
}
