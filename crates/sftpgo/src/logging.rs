//! JSON-lines logging: one object per event with `level`, `time`, `sender`, `message` and
//! the event's fields, written off the async threads to stdout or a size-rotated file.
//!
//! The formatting layer is hand-written (over serde_json) because the field layout is a
//! compatibility requirement that tracing-subscriber's JSON formatter cannot produce.
//! Records of crates that log through the `log` facade (russh) are bridged into tracing
//! and formatted the same way, under their real target.
//!
//! Rotation follows lumberjack's (SFTPGo 0.9's) rules: `max_size_mb` 0 means 100 MB,
//! `max_backups` 0 keeps every backup, `max_age_days` 0 never deletes by age.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

pub use crate::cli::LogOptions;
use crate::log_writer::{BatchGuard, batched};

type FilterHandle = tracing_subscriber::reload::Handle<Targets, tracing_subscriber::Registry>;

/// Keeps the background writer alive (dropping it flushes pending lines) and lets the
/// level change while running (SIGHUP).
pub struct LogGuard {
    _writer: BatchGuard,
    filter: FilterHandle,
    verbose: bool,
}

impl LogGuard {
    /// Applies `log.level` (`None`: back to what `--log-verbose` chose).
    pub fn set_level(&self, level: Option<&str>) -> anyhow::Result<()> {
        let targets = match level {
            Some(l) => filter_for_level(l.parse().context("invalid log level")?),
            None => filter(self.verbose),
        };
        self.filter
            .reload(targets)
            .context("cannot change the log level")
    }
}

/// Installs the global subscriber described by `opts` (and the `log` → tracing bridge).
/// Lines are handed to a background thread; keep the returned guard alive until exit so
/// that pending lines are flushed.
pub fn init(opts: &LogOptions) -> anyhow::Result<LogGuard> {
    let (writer, guard) = if opts.file_path.is_empty() || opts.file_path == "-" {
        batched(io::stdout())
    } else {
        batched(RotatingFile::open(opts)?)
    }
    .context("cannot start the log writer thread")?;
    let (filter_layer, handle) = tracing_subscriber::reload::Layer::new(filter(opts.verbose));
    tracing_subscriber::registry()
        .with(json_layer(writer).with_filter(filter_layer))
        .try_init()
        .context("a logger is already installed")?;
    Ok(LogGuard {
        _writer: guard,
        filter: handle,
        verbose: opts.verbose,
    })
}

/// Our crates (targets starting with `sftpgo`) at debug (verbose) or info; other crates
/// (russh, sqlx, ...) one step quieter: info (verbose) or warn.
pub fn filter(verbose: bool) -> Targets {
    filter_for_level(if verbose { Level::DEBUG } else { Level::INFO })
}

/// Our crates at `ours`; other crates one step quieter (never quieter than warn unless we
/// are).
fn filter_for_level(ours: Level) -> Targets {
    let theirs = match ours {
        Level::TRACE => Level::DEBUG,
        Level::DEBUG => Level::INFO,
        Level::INFO | Level::WARN => Level::WARN,
        Level::ERROR => Level::ERROR,
    };
    // `Targets` matches by string prefix, so "sftpgo" covers sftpgo_core, sftpgo_sftp, ...
    Targets::new()
        .with_default(theirs)
        .with_target("sftpgo", ours)
}

/// Formats events as JSON lines (`level`, `time`, `sender`, `message`, then the event's
/// fields) onto any `MakeWriter`. Hand-written rather than tracing-subscriber's JSON
/// formatter because the field layout is a compatibility requirement.
pub struct JsonLayer<W> {
    make_writer: W,
}

impl<W> JsonLayer<W> {
    pub fn new(make_writer: W) -> Self {
        Self { make_writer }
    }
}

/// A [`JsonLayer`] writing to `make_writer` (tests pass an in-memory writer).
pub fn json_layer<W>(make_writer: W) -> JsonLayer<W> {
    JsonLayer::new(make_writer)
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _ctx: LayerContext<'_, S>) {
        let mut fields = FieldWriter::default();
        event.record(&mut fields);
        // Events bridged from the `log` crate carry their real target in `log.*` fields.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let target = meta.target();
        let sender = fields
            .sender
            .as_deref()
            .unwrap_or_else(|| target.strip_prefix("sftpgo_").unwrap_or(target));
        // Same text as format("%Y-%m-%dT%H:%M:%S%.3fZ"), without parsing a format string
        // per line (chrono's strftime parser showed in the small-file profile).
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        // Written by hand to keep the key order: the fixed keys, then the event's fields
        // in the order they were recorded (already JSON in `fields.rest`).
        let mut line = Vec::with_capacity(96 + sender.len() + fields.rest.len());
        line.extend_from_slice(b"{\"level\":\"");
        line.extend_from_slice(level_name(meta.level()).as_bytes());
        line.extend_from_slice(b"\",\"time\":\"");
        line.extend_from_slice(time.as_bytes());
        line.extend_from_slice(b"\",\"sender\":");
        json_string(&mut line, sender);
        // As in 0.9 (zerolog), an empty message is left out.
        if let Some(message) = fields.message.as_deref().filter(|m| !m.is_empty()) {
            line.extend_from_slice(b",\"message\":");
            json_string(&mut line, message);
        }
        line.extend_from_slice(&fields.rest);
        line.extend_from_slice(b"}\n");
        let _ = self.make_writer.make_writer().write_all(&line);
    }
}

/// The `level` text, as zerolog writes it.
fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// `value` as a JSON string (serde_json's escaping) appended to `out`.
fn json_string(out: &mut Vec<u8>, value: &str) {
    // Writing into a Vec cannot fail; serializing a str has no other error.
    let _ = serde_json::to_writer(out, value);
}

/// Writes an event's fields as JSON as they are recorded (`,"key":value`), numbers and
/// booleans typed, everything else (Debug and Display values) as strings; keeps `sender`
/// and `message` aside, since the line puts them first. Why not collect
/// `serde_json::Value`s: a string and a map entry per field was most of the cost of a
/// transfer log line (perf, small-file uploads: ~7% of the server's user time).
#[derive(Default)]
struct FieldWriter {
    rest: Vec<u8>,
    sender: Option<String>,
    message: Option<String>,
    /// Reused to format Debug values before they are escaped.
    text: String,
}

impl FieldWriter {
    /// Writes the JSON key of an ordinary field; false for the `log.*` fields of bridged
    /// records (already folded into the target), which are left out.
    fn key(&mut self, field: &Field) -> bool {
        let name = field.name();
        if name.starts_with("log.") {
            return false;
        }
        self.rest.push(b',');
        json_string(&mut self.rest, name);
        self.rest.push(b':');
        true
    }

    fn put_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "sender" => self.sender = Some(value.to_owned()),
            "message" => self.message = Some(value.to_owned()),
            _ => {
                if self.key(field) {
                    json_string(&mut self.rest, value);
                }
            }
        }
    }

    /// A number or boolean: typed in the line, as text in `sender` or `message`.
    fn put_scalar<T: serde::Serialize + std::fmt::Display>(&mut self, field: &Field, value: T) {
        match field.name() {
            "sender" | "message" => self.put_str(field, &value.to_string()),
            _ => {
                if self.key(field) {
                    let _ = serde_json::to_writer(&mut self.rest, &value);
                }
            }
        }
    }
}

impl Visit for FieldWriter {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        let mut text = std::mem::take(&mut self.text);
        text.clear();
        let _ = write!(text, "{value:?}");
        self.put_str(field, &text);
        self.text = text;
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put_str(field, value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put_scalar(field, value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put_scalar(field, value);
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put_scalar(field, value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put_scalar(field, value);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put_str(field, &value.to_string());
    }
}

/// Permissions of log files the server creates.
const LOG_FILE_MODE: u32 = 0o640;

/// A size-rotated log file (`file-rotate`, gzip of rotated files when asked). We decide
/// when to rotate ourselves so that backups older than the configured age (which
/// file-rotate's count-based scheme cannot express) are deleted at start and at each
/// rotation.
struct RotatingFile {
    inner: FileRotate<AppendCount>,
    path: PathBuf,
    max_bytes: u64,
    written: u64,
    max_age: Duration,
    max_backups: usize,
    compress: bool,
}

impl RotatingFile {
    fn open(opts: &LogOptions) -> anyhow::Result<Self> {
        let path = PathBuf::from(&opts.file_path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the log dir {}", dir.display()))?;
        }
        // Fail early and clearly if the file cannot be written.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(LOG_FILE_MODE)
            .open(&path)
            .and_then(|f| f.metadata())
            .with_context(|| format!("cannot open the log file {}", path.display()))?
            .len();
        let max_age = Duration::from_secs(opts.max_age_days.saturating_mul(24 * 3600));
        prune_older_than(&path, max_age);
        let max_backups = match opts.max_backups {
            0 => usize::MAX,
            n => n,
        };
        let max_size_mb = match opts.max_size_mb {
            0 => 100,
            n => n,
        };
        Ok(Self {
            inner: Self::rotator(&path, max_backups, opts.compress),
            path,
            max_bytes: max_size_mb.saturating_mul(1024 * 1024),
            written,
            max_age,
            max_backups,
            compress: opts.compress,
        })
    }

    fn rotator(path: &Path, max_backups: usize, compress: bool) -> FileRotate<AppendCount> {
        let compression = if compress {
            Compression::OnRotate(0)
        } else {
            Compression::None
        };
        FileRotate::new(
            path,
            AppendCount::new(max_backups),
            ContentLimit::None,
            compression,
            Some(LOG_FILE_MODE),
        )
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.inner.rotate()?;
        self.written = 0;
        if prune_older_than(&self.path, self.max_age) > 0 {
            // file-rotate tracks its backups in memory: rescan after deleting some.
            self.inner.flush()?;
            self.inner = Self::rotator(&self.path, self.max_backups, self.compress);
        }
        Ok(())
    }
}

/// Deletes rotated siblings of `path` (`<name>.<n>`, `<name>.<n>.gz`) older than `max_age`
/// (zero: keep all); returns how many were deleted.
fn prune_older_than(path: &Path, max_age: Duration) -> usize {
    let mut deleted = 0;
    if max_age.is_zero() {
        return deleted;
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return deleted;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return deleted;
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
        if old && std::fs::remove_file(entry.path()).is_ok() {
            deleted += 1;
        }
    }
    deleted
}

impl Write for RotatingFile {
    /// Each call carries whole lines (a batch from the log writer thread): they are
    /// written in full to one file, rotating first if they would not fit.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written > 0 && self.written + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.inner.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::sync::{Arc, Mutex};
    use std::time::SystemTime;

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
            tracing::warn!(target: "sftpgo_core::fs", sender = "Upload", elapsed_ms = 7i64, debug = ?Some(3), "transfer");
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
        assert_eq!(l[1]["elapsed_ms"], 7);
        assert_eq!(l[1]["debug"], "Some(3)");
        let raw = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        let second = raw.lines().nth(1).unwrap();
        assert!(
            second.starts_with(r#"{"level":"warn","time":""#),
            "{second}"
        );
        assert!(
            second.ends_with(
                r#","sender":"Upload","message":"transfer","elapsed_ms":7,"debug":"Some(3)"}"#
            ),
            "{second}"
        );
        assert_eq!(l[2]["sender"], "russh::server");
    }

    #[test]
    fn log_crate_records_keep_their_target_and_empty_messages_are_omitted() {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry()
            .with(JsonLayer::new(capture.clone()).with_filter(filter(false)));
        tracing::subscriber::with_default(subscriber, || {
            let record = |level, args| {
                tracing_log::format_trace(
                    &log::Record::builder()
                        .level(level)
                        .target("russh::negotiation")
                        .module_path(Some("russh::negotiation"))
                        .file(Some("negotiation.rs"))
                        .line(Some(7))
                        .args(args)
                        .build(),
                )
                .unwrap();
            };
            record(log::Level::Info, format_args!("library info is filtered"));
            record(log::Level::Warn, format_args!("no common kex"));
            tracing::info!(target: "sftpgo_core::quota", sender = "Upload", size_bytes = 1u64);
            tracing::info!(target: "sftpgo_core::quota", "");
        });
        let l = lines(&capture);
        assert_eq!(l.len(), 3, "{l:?}");
        let obj = l[0].as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["level", "message", "sender", "time"], "{obj:?}");
        assert_eq!(l[0]["level"], "warn");
        assert_eq!(l[0]["sender"], "russh::negotiation");
        assert_eq!(l[0]["message"], "no common kex");
        assert!(l[1].get("message").is_none(), "{:?}", l[1]);
        assert_eq!(
            (&l[1]["sender"], &l[1]["size_bytes"]),
            (&"Upload".into(), &1.into())
        );
        assert!(l[2].get("message").is_none(), "{:?}", l[2]);
        assert_eq!(l[2]["sender"], "core::quota");
    }

    #[test]
    fn special_characters_are_escaped_by_serde_json() {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(JsonLayer::new(capture.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "sftpgo", path = "a\"b\n\u{1}é", ratio = 0.5, neg = -3i64, "quote \" and newline\n");
            tracing::info!(target: "sftpgo", sender = 5u64, dbg = ?"q\"\n", nan = f64::NAN);
        });
        let raw = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        assert_eq!(raw.lines().count(), 2, "{raw}");
        let l = lines(&capture);
        assert_eq!(l[0]["level"], "error");
        assert_eq!(l[0]["sender"], "sftpgo");
        assert_eq!(l[0]["path"], "a\"b\n\u{1}é");
        assert_eq!(l[0]["message"], "quote \" and newline\n");
        assert_eq!(l[0]["ratio"], 0.5);
        assert_eq!(l[0]["neg"], -3);
        assert_eq!(
            l[1]["sender"], "5",
            "a sender that is not a string, as text"
        );
        assert_eq!(l[1]["dbg"], "\"q\\\"\\n\"", "Debug text, escaped once more");
        assert!(l[1]["nan"].is_null());
    }

    #[test]
    fn zero_limits_follow_lumberjack() {
        let dir = tempfile::tempdir().unwrap();
        let opts = LogOptions {
            file_path: dir.path().join("z.log").display().to_string(),
            max_size_mb: 0,
            max_backups: 0,
            max_age_days: 0,
            compress: false,
            verbose: true,
        };
        let file = RotatingFile::open(&opts).unwrap();
        assert_eq!(file.max_bytes, 100 * 1024 * 1024, "0 MB means 100 MB");
        assert_eq!(file.max_backups, usize::MAX, "0 backups means keep all");
        assert!(file.max_age.is_zero());

        // With every backup kept, eight rotations leave eight backups.
        let opts = LogOptions {
            max_size_mb: 1,
            ..opts
        };
        let mut file = RotatingFile::open(&opts).unwrap();
        let chunk = vec![b'z'; 1024 * 1024];
        for _ in 0..9 {
            file.write_all(&chunk).unwrap();
        }
        file.flush().unwrap();
        let count = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(count, 9, "z.log and z.log.1 ..= z.log.8");
        assert!(dir.path().join("z.log.8").exists());
    }

    #[test]
    fn init_installs_a_non_blocking_file_logger() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("init/sftpgo.log");
        let opts = LogOptions {
            file_path: path.display().to_string(),
            max_size_mb: 10,
            max_backups: 5,
            max_age_days: 28,
            compress: false,
            verbose: false,
        };
        let guard = init(&opts).unwrap();
        // Other tests use scoped subscribers: emit from a fresh thread, which sees the
        // global one.
        std::thread::spawn(|| {
            tracing::info!(target: "sftpgo::service", answer = 42u64, "global logger works");
            tracing::debug!(target: "sftpgo::service", "not verbose: dropped");
            log::warn!(target: "russh::server", "bridged from log");
            log::info!(target: "russh::server", "library info: dropped");
        })
        .join()
        .unwrap();
        assert!(init(&opts).is_err(), "a second init is refused");
        drop(guard); // flushes the background writer
        let text = std::fs::read_to_string(&path).unwrap();
        let l: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|v: &Value| v["sender"] == "sftpgo::service" || v["sender"] == "russh::server")
            .collect();
        assert_eq!(l.len(), 2, "{text}");
        assert_eq!(l[0]["message"], "global logger works");
        assert_eq!(l[0]["answer"], 42);
        assert_eq!(l[1]["message"], "bridged from log");
        assert_eq!(l[1]["level"], "warn");
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
        let mut names = names;
        names.sort();
        assert_eq!(
            names,
            ["sftpgo.log", "sftpgo.log.1.gz", "sftpgo.log.2.gz"],
            "two compressed backups kept"
        );
        let gz = std::fs::read(path.with_file_name("sftpgo.log.1.gz")).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip magic");
        let current = std::fs::metadata(&path).unwrap().len();
        assert_eq!(current, 8 * 64 * 1024, "40 chunks = 16 + 16 + 8");
    }

    fn age(path: &Path, days: u64) {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(days * 24 * 3600))
            .unwrap();
    }

    #[test]
    fn old_backups_are_pruned_at_start_and_at_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.log");
        let opts = LogOptions {
            file_path: path.display().to_string(),
            max_size_mb: 1,
            max_backups: 5,
            max_age_days: 1,
            compress: false,
            verbose: false,
        };
        let backup = |n: u32| path.with_file_name(format!("b.log.{n}"));
        std::fs::write(backup(1), b"old").unwrap();
        age(&backup(1), 3);
        let mut file = RotatingFile::open(&opts).unwrap();
        assert!(!backup(1).exists(), "pruned at start");
        let chunk = vec![b'y'; 512 * 1024];
        for _ in 0..3 {
            file.write_all(&chunk).unwrap();
        }
        assert!(backup(1).exists() && !backup(2).exists());
        age(&backup(1), 3);
        for _ in 0..2 {
            file.write_all(&chunk).unwrap();
        }
        // The second rotation renamed the aged backup to .2 and then deleted it.
        assert!(backup(1).exists() && !backup(2).exists());
        for _ in 0..2 {
            file.write_all(&chunk).unwrap();
        }
        assert!(
            backup(1).exists() && backup(2).exists(),
            "rescanned after pruning"
        );
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
