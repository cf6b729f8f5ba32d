//! Actions (`sftpd.actions`): after a successful upload, download, delete or rename, run
//! the configured command and/or send the HTTP notification.
//!
//! Events go into a bounded queue served by at most `max_concurrency` actions at a time,
//! so a burst of 10,000 uploads never forks 10,000 processes, and the file operation that
//! fired an event never waits for its action. Commands run without a shell, in their own
//! process group (a timeout kills the whole group), and are always reaped.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// The events actions can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    Download,
    Upload,
    Delete,
    Rename,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Download => "download",
            Self::Upload => "upload",
            Self::Delete => "delete",
            Self::Rename => "rename",
        }
    }
}

/// What happened: paths are host filesystem paths (as 0.9 passed them).
#[derive(Debug, Clone)]
pub struct ActionEvent {
    pub kind: ActionKind,
    pub username: String,
    pub path: PathBuf,
    /// Rename destination; `None` for other events.
    pub target: Option<PathBuf>,
    /// The path as the client sees it.
    pub virtual_path: String,
    /// Size of the file concerned, when known.
    pub size: Option<u64>,
}

/// `sftpd.actions`, validated.
#[derive(Debug, Clone)]
pub struct ActionSettings {
    pub execute_on: Vec<ActionKind>,
    pub command: Option<PathBuf>,
    pub command_timeout: Duration,
    /// Checked by [`Actions::start`].
    pub http_notification_url: Option<String>,
    pub http_timeout: Duration,
    pub max_concurrency: usize,
    pub queue_size: usize,
}

impl Default for ActionSettings {
    fn default() -> Self {
        Self {
            execute_on: Vec::new(),
            command: None,
            command_timeout: Duration::from_secs(30),
            http_notification_url: None,
            http_timeout: Duration::from_secs(15),
            max_concurrency: 8,
            queue_size: 100_000,
        }
    }
}

impl ActionSettings {
    fn enabled(&self) -> bool {
        !self.execute_on.is_empty()
            && (self.command.is_some() || self.http_notification_url.is_some())
    }
}

/// Why the runner cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ActionsError {
    #[error("invalid http_notification_url {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot set up the HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
}

/// The action runner. Cheap to clone; the default one does nothing.
#[derive(Clone, Default)]
pub struct Actions {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    settings: ActionSettings,
    queue: mpsc::Sender<ActionEvent>,
    http: Option<(reqwest::Client, reqwest::Url)>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    dispatcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Actions {
    /// Starts the runner (needs a Tokio runtime). Disabled when no event is selected or
    /// neither a command nor a URL is set.
    pub fn start(settings: ActionSettings, metrics: Arc<Metrics>) -> Result<Self, ActionsError> {
        if !settings.enabled() {
            return Ok(Self::default());
        }
        let http = match &settings.http_notification_url {
            Some(url) => {
                let parsed = reqwest::Url::parse(url).map_err(|e| ActionsError::InvalidUrl {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(ActionsError::InvalidUrl {
                        url: url.clone(),
                        reason: "the scheme must be http or https".into(),
                    });
                }
                let client = reqwest::Client::builder()
                    .timeout(settings.http_timeout)
                    .user_agent(concat!("sftpgo/", env!("CARGO_PKG_VERSION")))
                    .build()?;
                Some((client, parsed))
            }
            None => None,
        };
        let (tx, rx) = mpsc::channel(settings.queue_size.max(1));
        let inner = Arc::new(Inner {
            settings,
            queue: tx,
            http,
            metrics,
            stop: CancellationToken::new(),
            dispatcher: Mutex::new(None),
        });
        let handle = tokio::spawn(dispatch(inner.clone(), rx));
        *inner.dispatcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(Self { inner: Some(inner) })
    }

    /// Whether `kind` runs actions (lets callers skip work needed only for the event).
    pub fn wants(&self, kind: ActionKind) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|i| i.settings.execute_on.contains(&kind))
    }

    /// Queues the actions for `event`; never waits. A full queue drops the event with an
    /// error log line (the operation itself has already succeeded).
    pub fn fire(&self, event: ActionEvent) {
        let Some(inner) = self.inner.as_ref().filter(|_| self.wants(event.kind)) else {
            return;
        };
        if let Err(e) = inner.queue.try_send(event) {
            let event = match e {
                mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev) => ev,
            };
            inner.metrics.action_dropped();
            tracing::error!(
                sender = "actions",
                action = event.kind.as_str(),
                username = %event.username,
                path = %event.path.display(),
                "action queue full or closed, event dropped"
            );
        }
    }

    /// Stops taking events and waits up to `grace` for the queued and running ones; what
    /// is still running then is killed.
    pub async fn shutdown(&self, grace: Duration) {
        let Some(inner) = &self.inner else { return };
        inner.stop.cancel();
        let handle = inner
            .dispatcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(mut handle) = handle else { return };
        if tokio::time::timeout(grace, &mut handle).await.is_err() {
            tracing::warn!(
                sender = "actions",
                grace_secs = grace.as_secs(),
                "actions still running at shutdown were stopped"
            );
            handle.abort();
            let _ = handle.await;
        }
    }
}

/// Takes events off the queue, one semaphore permit each, until stopped and drained.
async fn dispatch(inner: Arc<Inner>, mut rx: mpsc::Receiver<ActionEvent>) {
    let permits = Arc::new(Semaphore::new(inner.settings.max_concurrency.max(1)));
    let mut running = JoinSet::new();
    let mut stopping = false;
    loop {
        let event = tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => ev,
                None => break,
            },
            _ = inner.stop.cancelled(), if !stopping => {
                // Take nothing new; what is queued still runs.
                stopping = true;
                rx.close();
                continue;
            }
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        while running.try_join_next().is_some() {}
        let inner = inner.clone();
        running.spawn(async move {
            run(&inner, &event).await;
            drop(permit);
        });
    }
    while running.join_next().await.is_some() {}
}

async fn run(inner: &Inner, event: &ActionEvent) {
    let command = async {
        if let Some(cmd) = &inner.settings.command {
            let result = run_command(cmd, event, inner.settings.command_timeout).await;
            inner.metrics.action("command", result);
        }
    };
    let http = async {
        if let Some((client, url)) = &inner.http {
            let result = notify(client, url, event).await;
            inner.metrics.action("http", result);
        }
    };
    tokio::join!(command, http);
}

/// Only these variables of the server's environment reach the command: the rest may hold
/// secrets (such as `SFTPGO_DATA_PROVIDER__PASSWORD`).
const INHERITED_ENV: &[&str] = &["PATH", "LANG", "LC_ALL", "TZ", "HOME"];

/// First bytes of the command's stderr kept for the log.
const STDERR_KEPT: usize = 2048;

async fn run_command(
    program: &std::path::Path,
    event: &ActionEvent,
    timeout: Duration,
) -> &'static str {
    let started = Instant::now();
    let target = event.target.clone().unwrap_or_default();
    let mut cmd = tokio::process::Command::new(program);
    cmd.arg(event.kind.as_str())
        .arg(&event.username)
        .arg(&event.path)
        .arg(&target)
        .env_clear();
    for name in INHERITED_ENV {
        if let Some(v) = std::env::var_os(name) {
            cmd.env(name, v);
        }
    }
    cmd.env("SFTPGO_ACTION", event.kind.as_str())
        .env("SFTPGO_ACTION_USERNAME", &event.username)
        .env("SFTPGO_ACTION_PATH", &event.path)
        .env("SFTPGO_ACTION_TARGET", &target)
        .env("SFTPGO_ACTION_VIRTUAL_PATH", &event.virtual_path)
        .env(
            "SFTPGO_ACTION_SIZE",
            event.size.map(|s| s.to_string()).unwrap_or_default(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(sender = "actions", action = event.kind.as_str(), command = %program.display(), error = %e, "cannot start the action command");
            return "failed";
        }
    };
    let pgid = child.id();
    // If this task is dropped (shutdown past its grace), the whole group goes with it.
    let mut group = GroupKiller(pgid.and_then(|p| rustix::process::Pid::from_raw(p as i32)));
    // Drain stderr so a chatty command never blocks on a full pipe; keep its start.
    let stderr = child.stderr.take().map(|mut pipe| {
        tokio::spawn(async move {
            let mut kept = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let room = STDERR_KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            kept
        })
    });
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            // The whole group: a script's own children die with it.
            group.kill();
            let _ = child.kill().await;
            tracing::warn!(
                sender = "actions",
                action = event.kind.as_str(),
                username = %event.username,
                command = %program.display(),
                timeout_secs = timeout.as_secs(),
                "action command timed out and was killed"
            );
            if let Some(h) = stderr {
                h.abort();
            }
            return "timeout";
        }
    };
    // Exited: its group is left alone (a daemon it started on purpose may live on).
    group.0 = None;
    // A background grandchild may hold stderr open: wait for it only briefly.
    let stderr_text = match stderr {
        Some(h) => match tokio::time::timeout(Duration::from_secs(1), h).await {
            Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).trim().to_string(),
            _ => String::new(),
        },
        None => String::new(),
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match status {
        Ok(s) if s.success() => {
            tracing::info!(sender = "actions", action = event.kind.as_str(), username = %event.username, path = %event.path.display(), command = %program.display(), exit_code = 0, elapsed_ms, "action command finished");
            "ok"
        }
        Ok(s) => {
            tracing::warn!(sender = "actions", action = event.kind.as_str(), username = %event.username, path = %event.path.display(), command = %program.display(), exit_status = %s, elapsed_ms, stderr = %stderr_text, "action command failed");
            "failed"
        }
        Err(e) => {
            tracing::error!(sender = "actions", action = event.kind.as_str(), command = %program.display(), error = %e, elapsed_ms, "cannot wait for the action command");
            "failed"
        }
    }
}

/// Kills a command's process group, at the latest when dropped.
struct GroupKiller(Option<rustix::process::Pid>);

impl GroupKiller {
    fn kill(&mut self) {
        if let Some(group) = self.0.take() {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The notification URL with the event's query parameters added to those it has.
pub fn notification_url(base: &reqwest::Url, event: &ActionEvent) -> reqwest::Url {
    let mut url = base.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("action", event.kind.as_str());
        q.append_pair("username", &event.username);
        q.append_pair("path", &event.path.to_string_lossy());
        if let Some(t) = &event.target {
            q.append_pair("target_path", &t.to_string_lossy());
        }
    }
    url
}

async fn notify(
    client: &reqwest::Client,
    base: &reqwest::Url,
    event: &ActionEvent,
) -> &'static str {
    let started = Instant::now();
    let url = notification_url(base, event);
    let result = client.get(url).send().await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(resp) if resp.status().is_success() => {
            tracing::info!(sender = "actions", action = event.kind.as_str(), username = %event.username, status = resp.status().as_u16(), elapsed_ms, "HTTP notification sent");
            "ok"
        }
        Ok(resp) => {
            tracing::warn!(sender = "actions", action = event.kind.as_str(), username = %event.username, status = resp.status().as_u16(), elapsed_ms, "HTTP notification refused");
            "failed"
        }
        Err(e) if e.is_timeout() => {
            tracing::warn!(sender = "actions", action = event.kind.as_str(), username = %event.username, elapsed_ms, "HTTP notification timed out");
            "timeout"
        }
        Err(e) => {
            tracing::warn!(sender = "actions", action = event.kind.as_str(), username = %event.username, error = %e, elapsed_ms, "HTTP notification failed");
            "failed"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: ActionKind) -> ActionEvent {
        ActionEvent {
            kind,
            username: "alice".into(),
            path: "/srv/alice/a b&c.txt".into(),
            target: (kind == ActionKind::Rename).then(|| "/srv/alice/d.txt".into()),
            virtual_path: "/a b&c.txt".into(),
            size: Some(3),
        }
    }

    #[test]
    fn notification_keeps_existing_query_and_escapes() {
        let base = reqwest::Url::parse("http://127.0.0.1:9/hook?token=x%26y").unwrap();
        let url = notification_url(&base, &event(ActionKind::Rename));
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            vec![
                ("token".into(), "x&y".into()),
                ("action".into(), "rename".into()),
                ("username".into(), "alice".into()),
                ("path".into(), "/srv/alice/a b&c.txt".into()),
                ("target_path".into(), "/srv/alice/d.txt".into()),
            ]
        );
        let url = notification_url(&base, &event(ActionKind::Upload));
        assert!(!url.as_str().contains("target_path"), "{url}");
    }

    #[tokio::test]
    async fn disabled_runner_ignores_events() {
        let actions = Actions::start(ActionSettings::default(), Arc::new(Metrics::new())).unwrap();
        assert!(!actions.wants(ActionKind::Upload));
        actions.fire(event(ActionKind::Upload));
        actions.shutdown(Duration::from_millis(10)).await;
    }

    #[tokio::test]
    async fn hung_command_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("hang.sh");
        let pids = dir.path().join("pids");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nsleep 300 &\necho $$ $! > {}\nwait\n",
                pids.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let result = run_command(
            &script,
            &event(ActionKind::Upload),
            Duration::from_millis(500),
        )
        .await;
        assert_eq!(result, "timeout");
        let text = std::fs::read_to_string(&pids).unwrap();
        for pid in text.split_whitespace() {
            let pid: i32 = pid.parse().unwrap();
            // Killed and reaped (the shell) or killed and re-parented (sleep): gone either way
            // once init reaps it, so poll briefly.
            let mut alive = true;
            for _ in 0..100 {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                // Zombie (Z) counts as dead: it no longer runs.
                alive = !stat.is_empty() && !stat.contains(") Z ");
                if !alive {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(!alive, "process {pid} still running");
        }
    }

    fn slow_command(dir: &std::path::Path, secs: &str) -> (PathBuf, PathBuf) {
        let script = dir.join("slow.sh");
        let log = dir.join("log");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nsleep {secs}\necho \"$SFTPGO_ACTION_VIRTUAL_PATH\" >> {}\n",
                log.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        (script, log)
    }

    fn runner(command: PathBuf, timeout: Duration) -> (Actions, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        let settings = ActionSettings {
            execute_on: vec![ActionKind::Upload],
            command: Some(command),
            command_timeout: timeout,
            max_concurrency: 1,
            ..ActionSettings::default()
        };
        (Actions::start(settings, metrics.clone()).unwrap(), metrics)
    }

    #[tokio::test]
    async fn shutdown_runs_what_is_queued_within_the_grace_period() {
        let dir = tempfile::tempdir().unwrap();
        let (script, log) = slow_command(dir.path(), "0.2");
        let (actions, _) = runner(script, Duration::from_secs(30));
        for i in 0..3 {
            let mut ev = event(ActionKind::Upload);
            ev.virtual_path = format!("/f{i}");
            actions.fire(ev);
        }
        actions.shutdown(Duration::from_secs(30)).await;
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text.lines().collect::<Vec<_>>(), ["/f0", "/f1", "/f2"]);
        // Stopped: new events are refused (and counted as dropped), not run.
        actions.fire(event(ActionKind::Upload));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 3);
    }

    #[tokio::test]
    async fn shutdown_grace_bounds_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let (script, log) = slow_command(dir.path(), "30");
        let (actions, metrics) = runner(script, Duration::from_secs(60));
        actions.fire(event(ActionKind::Upload));
        actions.fire(event(ActionKind::Upload));
        let started = std::time::Instant::now();
        actions.shutdown(Duration::from_millis(300)).await;
        // Well below the command's 30 s: the wait was cut at the grace period.
        assert!(started.elapsed() < Duration::from_secs(20));
        assert!(!log.exists(), "the killed command did not finish");
        assert!(!metrics.encode(0).contains(r#"result="ok""#));
    }
}
