//! SQLite backend (sqlx), on SFTPGo 0.9's table layout so existing 0.9 databases are used as
//! they are: the [`Sqlite`] dialect of [`SqlBackend`].
//!
//! Unlike 0.9, which required the file and table to exist, [`SqliteBackend::open`] creates the
//! database file (its directory must exist) and the users table when missing. A one-row
//! `schema_version` table records the layout version; a 0.9 database (users table present,
//! no version table) is adopted and migrated to version 2 by adding the nullable
//! `filesystem` column (0.9 still reads it: it names its columns).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};

use crate::sql::{Dialect, PoolSettings, SqlBackend, schema_statements};
use crate::{ProviderError, Result};

/// Layout version written to `schema_version` (1 = SFTPGo 0.9's users table, 2 = with
/// the users' `filesystem` column).
pub const SCHEMA_VERSION: i64 = 3;
/// Name of the table holding the layout version.
pub const SCHEMA_VERSION_TABLE: &str = "schema_version";

/// Default pool size (`pool_size` 0).
const POOL_SIZE: u32 = 4;

/// A users table in an SQLite database file.
pub type SqliteBackend = SqlBackend<Sqlite>;

/// SQLite's SQL dialect.
#[derive(Debug, Clone, Copy)]
pub struct Sqlite;

impl Dialect for Sqlite {
    type DB = sqlx::Sqlite;
    const DRIVER: &'static str = "sqlite";
    /// The default BINARY collation is byte order.
    const ORDER_BY: &'static str = "username";
    const AUTO_ID: &'static str = "integer NOT NULL PRIMARY KEY AUTOINCREMENT";
    const INSERT_RETURNING: bool = false;

    fn placeholder(_: usize) -> String {
        "?".to_owned()
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    fn last_insert_id(result: &SqliteQueryResult) -> Option<i64> {
        Some(result.last_insert_rowid())
    }
}

/// Whether `name` can be interpolated into SQL as a bare identifier.
pub fn is_valid_table_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 56
        && !name.eq_ignore_ascii_case(SCHEMA_VERSION_TABLE)
        && !name.to_ascii_lowercase().starts_with("sqlite_")
}

/// One connection kept open; a connection waits up to the busy timeout for a lock, so the
/// pool waits a little longer than that.
fn pool_options(pool: &PoolSettings) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(pool.max_connections(POOL_SIZE))
        .min_connections(1)
        .acquire_timeout(pool.connect_timeout + Duration::from_secs(5))
}

fn create_table_sql(t: &str) -> String {
    // SFTPGo 0.9's sqlite layout, column for column.
    format!(
        "CREATE TABLE IF NOT EXISTS {t} (\"id\" integer NOT NULL PRIMARY KEY AUTOINCREMENT, \
         \"username\" varchar(255) NOT NULL UNIQUE, \"password\" varchar(255) NULL, \
         \"public_keys\" text NULL, \"home_dir\" varchar(255) NOT NULL, \"uid\" integer NOT NULL, \
         \"gid\" integer NOT NULL, \"max_sessions\" integer NOT NULL, \
         \"quota_size\" bigint NOT NULL, \"quota_files\" integer NOT NULL, \
         \"permissions\" text NOT NULL, \"used_quota_size\" bigint NOT NULL, \
         \"used_quota_files\" integer NOT NULL, \"last_quota_update\" bigint NOT NULL, \
         \"upload_bandwidth\" integer NOT NULL, \"download_bandwidth\" integer NOT NULL)"
    )
}

impl SqliteBackend {
    /// Opens (creating if missing) the database at `path` and the users table `users_table`,
    /// with the default pool settings.
    pub async fn open(path: &Path, users_table: &str) -> Result<Self> {
        Self::open_with(path, users_table, &PoolSettings::default()).await
    }

    /// As [`SqliteBackend::open`]: `pool.connect_timeout` is also the busy timeout (how long
    /// a statement waits for a database another connection or process has locked).
    pub async fn open_with(path: &Path, users_table: &str, pool: &PoolSettings) -> Result<Self> {
        crate::sql::check_table_name(users_table)?;
        let ctx = |what: &str, e: sqlx::Error| {
            ProviderError::Backend(format!("sqlite database {}: {what}: {e}", path.display()))
        };
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(|e| ctx("invalid options", e))?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(pool.connect_timeout)
            .foreign_keys(true)
            .log_statements(tracing::log::LevelFilter::Trace);
        let connected = pool_options(pool)
            .connect_with(options)
            .await
            .map_err(|e| ctx("cannot open", e))?;
        let backend = Self::new(connected, path.display().to_string(), users_table, pool);
        let stmts = schema_statements::<Sqlite>(
            users_table,
            create_table_sql(users_table),
            "PRIMARY KEY CHECK (id = 1)",
            ("INSERT OR IGNORE", ""),
            false,
        );
        for sql in &stmts {
            sqlx::query(sql)
                .execute(backend.pool())
                .await
                .map_err(|e| backend.err("cannot create the schema", e))?;
        }
        backend.check_schema(users_table).await?;
        Ok(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Backend, DataProvider, TrackQuota};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        let n = AtomicUsize::new(0);
        let root = dir.path().to_path_buf();
        crate::conformance::run_all(|| {
            let path = root.join(format!("db{}.sqlite", n.fetch_add(1, Ordering::SeqCst)));
            async move {
                Arc::new(SqliteBackend::open(&path, "users").await.expect("open"))
                    as Arc<dyn Backend>
            }
        })
        .await;
    }

    #[tokio::test]
    async fn custom_table_name_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custom.db");
        let b = SqliteBackend::open(&path, "sftp_users_2").await.unwrap();
        assert_eq!(b.schema_version().await.unwrap(), SCHEMA_VERSION);
        assert_eq!(b.target(), path.display().to_string());
        let p = DataProvider::new(Arc::new(b.clone()), true, TrackQuota::Always);
        let u = p
            .add_user(crate::conformance::sample_user("keep"))
            .await
            .unwrap();
        b.close().await;
        // Reopening finds the same data; a different table in the same file is separate.
        let again = SqliteBackend::open(&path, "sftp_users_2").await.unwrap();
        assert_eq!(again.user_by_id(u.id).await.unwrap(), u);
        let other = SqliteBackend::open(&path, "users").await.unwrap();
        assert!(matches!(
            other.user_by_id(u.id).await,
            Err(ProviderError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn rejects_bad_table_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        for bad in [
            "",
            "users; DROP TABLE x",
            "1users",
            "us-ers",
            "us\"ers",
            "schema_version",
            "sqlite_master",
            "ü",
        ] {
            match SqliteBackend::open(&path, bad).await {
                Err(ProviderError::Backend(msg)) => assert!(msg.contains("table name"), "{msg}"),
                other => panic!("{bad:?}: expected Backend error, got {other:?}"),
            }
        }
        assert!(is_valid_table_name("users"));
        assert!(is_valid_table_name("_Users_2"));
        assert!(!path.exists(), "nothing created for an invalid name");
    }

    #[tokio::test]
    async fn open_error_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("x.db");
        match SqliteBackend::open(&path, "users").await {
            Err(ProviderError::Backend(msg)) => {
                assert!(msg.contains(&path.display().to_string()), "{msg}")
            }
            other => panic!("expected Backend error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn pool_settings_reach_the_pool_and_the_busy_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let pool = PoolSettings {
            pool_size: 2,
            connect_timeout: Duration::from_secs(3),
            statement_timeout: None,
        };
        let b = SqliteBackend::open_with(&dir.path().join("p.db"), "users", &pool)
            .await
            .unwrap();
        assert_eq!(b.pool().options().get_max_connections(), 2);
        assert_eq!(
            b.pool().options().get_acquire_timeout(),
            Duration::from_secs(8)
        );
        let busy_ms: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(b.pool())
            .await
            .unwrap();
        assert_eq!(busy_ms, 3000);
        let default = pool_options(&PoolSettings::default());
        assert_eq!(default.get_max_connections(), POOL_SIZE);
        assert_eq!(default.get_acquire_timeout(), Duration::from_secs(15));
    }

    #[tokio::test]
    async fn wal_mode_is_enabled() {
        let dir = tempfile::tempdir().unwrap();
        let b = SqliteBackend::open(&dir.path().join("w.db"), "users")
            .await
            .unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(b.pool())
            .await
            .unwrap();
        assert_eq!(mode.to_ascii_lowercase(), "wal");
    }

    #[tokio::test]
    async fn foreign_table_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        {
            let b = SqliteBackend::open(&path, "other").await.unwrap();
            sqlx::query("CREATE TABLE users (id integer PRIMARY KEY, name text)")
                .execute(b.pool())
                .await
                .unwrap();
            b.close().await;
        }
        match SqliteBackend::open(&path, "users").await {
            Err(ProviderError::Backend(msg)) => assert!(msg.contains("layout"), "{msg}"),
            other => panic!("expected Backend error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn bad_rows_are_backend_errors() {
        let dir = tempfile::tempdir().unwrap();
        let b = SqliteBackend::open(&dir.path().join("r.db"), "users")
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO users (username, password, public_keys, home_dir, uid, gid, \
             max_sessions, quota_size, quota_files, permissions, used_quota_size, \
             used_quota_files, last_quota_update, upload_bandwidth, download_bandwidth) \
             VALUES ('bad', NULL, NULL, '/h', 0, 0, 0, 0, 0, '[\"fly\"]', 0, 0, 0, 0, 0)",
        )
        .execute(b.pool())
        .await
        .unwrap();
        match b.user_by_username("bad").await {
            Err(ProviderError::Backend(msg)) => assert!(msg.contains("permissions"), "{msg}"),
            other => panic!("expected Backend error, got {other:?}"),
        }
    }
}
