//! JSON-lines logging: one object per event with `level`, `time`, `sender`, `message` and
//! the event's fields, written off the async threads to stdout or a size-rotated file.
//!
//! The formatting layer is hand-written (over serde_json) because the field layout is a
//! compatibility requirement that tracing-subscriber's JSON formatter cannot produce.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

pub use crate::cli::LogOptions;

/// Keeps the background writer alive; dropping it flushes pending lines.
pub struct LogGuard {
    _worker: tracing_appender::non_blocking::WorkerGuard,
}

/// Installs the global subscriber described by `opts`.
pub fn init(opts: &LogOptions) -> anyhow::Result<LogGuard> {
    let (writer, worker) = if opts.file_path.is_empty() || opts.file_path == "-" {
        tracing_appender::non_blocking(io::stdout())
    } else {
        tracing_appender::non_blocking(RotatingFile::open(opts)?)
    };
    tracing_subscriber::registry()
        .with(JsonLayer::new(writer).with_filter(filter(opts.verbose)))
        .try_init()
        .context("a logger is already installed")?;
    Ok(LogGuard { _worker: worker })
}

/// Our crates at debug (verbose) or info; libraries one step quieter.
pub fn filter(verbose: bool) -> Targets {
    let (ours, theirs) = if verbose {
        (Level::DEBUG, Level::INFO)
    } else {
        (Level::INFO, Level::WARN)
    };
    let mut targets = Targets::new().with_default(theirs);
    for t in [
        "sftpgo",
        "sftpgo_core",
        "sftpgo_sftp",
        "sftpgo_provider",
        "sftpgo_vfs",
        "sftpgo_config",
    ] {
        targets = targets.with_target(t, ours);
    }
    targets
}

/// Formats events as JSON lines onto any `MakeWriter`.
pub struct JsonLayer<W> {
    make_writer: W,
}

impl<W> JsonLayer<W> {
    pub fn new(make_writer: W) -> Self {
        Self { make_writer }
    }
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _ctx: LayerContext<'_, S>) {
        let mut fields = FieldVisitor(Map::new());
        event.record(&mut fields);
        let mut fields = fields.0;
        let meta = event.metadata();
        let sender = match fields.remove("sender") {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => meta
                .target()
                .strip_prefix("sftpgo_")
                .unwrap_or(meta.target())
                .to_string(),
        };
        let mut line = Map::new();
        line.insert(
            "level".into(),
            Value::String(meta.level().as_str().to_lowercase()),
        );
        line.insert(
            "time".into(),
            Value::String(
                chrono::Utc::now()
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string(),
            ),
        );
        line.insert("sender".into(), Value::String(sender));
        if let Some(message) = fields.remove("message") {
            line.insert("message".into(), message);
        }
        line.extend(fields);
        let Ok(mut bytes) = serde_json::to_vec(&Value::Object(line)) else {
            return;
        };
        bytes.push(b'\n');
        let _ = self.make_writer.make_writer().write_all(&bytes);
    }
}

/// Collects event fields, keeping numbers and booleans typed.
struct FieldVisitor(Map<String, Value>);

impl Visit for FieldVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().into(), Value::String(value.into()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}

/// A size-rotated log file (`file-rotate`) that also deletes backups older than the
/// configured age, at start and then at most every ten minutes.
struct RotatingFile {
    inner: FileRotate<AppendCount>,
    path: PathBuf,
    max_age: Duration,
    last_prune: SystemTime,
}

impl RotatingFile {
    fn open(opts: &LogOptions) -> anyhow::Result<Self> {
        let path = PathBuf::from(&opts.file_path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the log dir {}", dir.display()))?;
        }
        // Fail early and clearly if the file cannot be written.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open the log file {}", path.display()))?;
        let max_bytes = (opts.max_size_mb.max(1) as usize).saturating_mul(1024 * 1024);
        let compression = if opts.compress {
            Compression::OnRotate(0)
        } else {
            Compression::None
        };
        let inner = FileRotate::new(
            &path,
            AppendCount::new(opts.max_backups.max(1)),
            ContentLimit::BytesSurpassed(max_bytes),
            compression,
            Some(0o640),
        );
        let file = Self {
            inner,
            path,
            max_age: Duration::from_secs(opts.max_age_days.saturating_mul(24 * 3600)),
            last_prune: SystemTime::UNIX_EPOCH,
        };
        Ok(file)
    }

    fn prune(&mut self) {
        self.last_prune = SystemTime::now();
        if self.max_age.is_zero() {
            return;
        }
        prune_older_than(&self.path, self.max_age);
    }
}

/// Deletes rotated siblings of `path` (`<name>.<n>`, `<name>.<n>.gz`) older than `max_age`.
fn prune_older_than(path: &Path, max_age: Duration) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!("{name}.");
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        let index = rest.strip_suffix(".gz").unwrap_or(rest);
        if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age > max_age);
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self
            .last_prune
            .elapsed()
            .map_or(true, |e| e > Duration::from_secs(600))
        {
            self.prune();
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    fn lines(capture: &Capture) -> Vec<Value> {
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn events_become_json_lines() {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry()
            .with(JsonLayer::new(capture.clone()).with_filter(filter(false)));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "sftpgo_core::auth", username = "alice", size = 42u64, ok = true, addr = %"1.2.3.4:5", "login succeeded");
            tracing::warn!(target: "sftpgo_core::fs", sender = "Upload", elapsed_ms = 7i64, "transfer");
            tracing::debug!(target: "sftpgo_core::fs", "filtered out when not verbose");
            tracing::info!(target: "russh::server", "library info is filtered");
            tracing::warn!(target: "russh::server", "library warning passes");
        });
        let l = lines(&capture);
        assert_eq!(l.len(), 3, "{l:?}");
        assert_eq!(l[0]["level"], "info");
        assert_eq!(l[0]["sender"], "core::auth");
        assert_eq!(l[0]["message"], "login succeeded");
        assert_eq!(l[0]["username"], "alice");
        assert_eq!(l[0]["size"], 42);
        assert_eq!(l[0]["ok"], true);
        assert_eq!(l[0]["addr"], "1.2.3.4:5");
        let time = l[0]["time"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
        assert_eq!(time.len(), "2026-11-26T19:52:01.123Z".len(), "{time}");
        assert_eq!(l[1]["sender"], "Upload");
        assert_eq!(l[1]["level"], "warn");
        assert!(l[1].get("elapsed_ms").is_some());
        assert_eq!(l[2]["sender"], "russh::server");
    }

    #[test]
    fn verbose_shows_debug() {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry()
            .with(JsonLayer::new(capture.clone()).with_filter(filter(true)));
        tracing::subscriber::with_default(
            subscriber,
            || tracing::debug!(target: "sftpgo_sftp::session", "detail"),
        );
        assert_eq!(lines(&capture)[0]["level"], "debug");
    }

    #[test]
    fn rotation_keeps_compressed_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/sftpgo.log");
        let opts = LogOptions {
            file_path: path.display().to_string(),
            max_size_mb: 1,
            max_backups: 2,
            max_age_days: 28,
            compress: true,
            verbose: true,
        };
        let mut file = RotatingFile::open(&opts).unwrap();
        let line = vec![b'x'; 64 * 1024];
        for _ in 0..40 {
            file.write_all(&line).unwrap();
        }
        file.flush().unwrap();
        let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().any(|n| n == "sftpgo.log.1.gz"), "{names:?}");
        assert!(names.len() <= 3, "{names:?}");
    }

    #[test]
    fn old_backups_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, b"current").unwrap();
        std::fs::write(dir.path().join("a.log.1"), b"old").unwrap();
        std::fs::write(dir.path().join("a.log.2.gz"), b"old").unwrap();
        std::fs::write(dir.path().join("a.log.keep"), b"not a backup").unwrap();
        let past = SystemTime::now() - Duration::from_secs(3 * 24 * 3600);
        for n in ["a.log.1", "a.log.2.gz", "a.log.keep"] {
            std::fs::File::options()
                .write(true)
                .open(dir.path().join(n))
                .unwrap()
                .set_modified(past)
                .unwrap();
        }
        prune_older_than(&path, Duration::from_secs(24 * 3600));
        assert!(path.exists() && dir.path().join("a.log.keep").exists());
        assert!(!dir.path().join("a.log.1").exists() && !dir.path().join("a.log.2.gz").exists());
    }
}
