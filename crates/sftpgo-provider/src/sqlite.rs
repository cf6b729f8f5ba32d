//! SQLite backend (sqlx), on SFTPGo 0.9's table layout so existing 0.9 databases are used as
//! they are.
//!
//! Unlike 0.9, which required the file and table to exist, [`SqliteBackend::open`] creates the
//! database file (its directory must exist) and the users table when missing. A one-row
//! `schema_version` table records the layout version for future migrations; a 0.9 database
//! (users table present, no version table) is adopted as version 1 without changes.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row};

use crate::sql::PoolSettings;
use crate::{Backend, Permission, ProviderError, QuotaUpdate, Result, SortOrder, User, UserQuery};

/// Layout version written to `schema_version` (1 = SFTPGo 0.9's users table).
pub const SCHEMA_VERSION: i64 = 1;
/// Name of the table holding the layout version.
pub const SCHEMA_VERSION_TABLE: &str = "schema_version";

/// Default pool size (`pool_size` 0).
const POOL_SIZE: u32 = 4;

/// Every column of the users table, in SELECT order.
const COLUMNS: &str = "id, username, password, public_keys, home_dir, uid, gid, max_sessions, \
     quota_size, quota_files, permissions, used_quota_size, used_quota_files, last_quota_update, \
     upload_bandwidth, download_bandwidth";

/// A users table in an SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    pool: SqlitePool,
    path: PathBuf,
    sql: Statements,
}

/// SQL text with the (validated) table name interpolated once.
#[derive(Debug, Clone)]
struct Statements {
    by_username: String,
    by_id: String,
    insert: String,
    update: String,
    delete: String,
    list_asc: String,
    list_desc: String,
    list_filtered: String,
    quota_delta: String,
    quota_reset: String,
}

impl Statements {
    fn new(t: &str) -> Self {
        Self {
            by_username: format!("SELECT {COLUMNS} FROM {t} WHERE username = ?"),
            by_id: format!("SELECT {COLUMNS} FROM {t} WHERE id = ?"),
            insert: format!(
                "INSERT INTO {t} (username, password, public_keys, home_dir, uid, gid, \
                 max_sessions, quota_size, quota_files, permissions, used_quota_size, \
                 used_quota_files, last_quota_update, upload_bandwidth, download_bandwidth) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, ?, ?)"
            ),
            update: format!(
                "UPDATE {t} SET password = ?, public_keys = ?, home_dir = ?, uid = ?, gid = ?, \
                 max_sessions = ?, quota_size = ?, quota_files = ?, permissions = ?, \
                 upload_bandwidth = ?, download_bandwidth = ? WHERE id = ?"
            ),
            delete: format!("DELETE FROM {t} WHERE id = ?"),
            list_asc: format!("SELECT {COLUMNS} FROM {t} ORDER BY username ASC LIMIT ? OFFSET ?"),
            list_desc: format!("SELECT {COLUMNS} FROM {t} ORDER BY username DESC LIMIT ? OFFSET ?"),
            list_filtered: format!(
                "SELECT {COLUMNS} FROM {t} WHERE username = ? ORDER BY username LIMIT ? OFFSET ?"
            ),
            quota_delta: format!(
                "UPDATE {t} SET used_quota_size = used_quota_size + ?, \
                 used_quota_files = used_quota_files + ?, last_quota_update = ? WHERE username = ?"
            ),
            quota_reset: format!(
                "UPDATE {t} SET used_quota_size = ?, used_quota_files = ?, last_quota_update = ? \
                 WHERE username = ?"
            ),
        }
    }
}

/// Whether `name` can be interpolated into SQL as a bare identifier.
pub fn is_valid_table_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
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
        if !is_valid_table_name(users_table) {
            return Err(ProviderError::Backend(format!(
                "invalid users table name {users_table:?}: use letters, digits and underscores \
                 (not starting with a digit, not {SCHEMA_VERSION_TABLE:?} or sqlite_*)"
            )));
        }
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
        let pool = pool_options(pool)
            .connect_with(options)
            .await
            .map_err(|e| ctx("cannot open", e))?;
        let backend = Self {
            pool,
            path: path.to_path_buf(),
            sql: Statements::new(users_table),
        };
        backend.init_schema(users_table).await?;
        Ok(backend)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The layout version recorded in the database.
    pub async fn schema_version(&self) -> Result<i64> {
        let sql = format!("SELECT version FROM {SCHEMA_VERSION_TABLE} WHERE id = 1");
        sqlx::query_scalar::<_, i64>(&sql)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err(e))
    }

    /// Closes the pool (waits for connections in use).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn init_schema(&self, table: &str) -> Result<()> {
        let stmts = [
            create_table_sql(table),
            format!(
                "CREATE TABLE IF NOT EXISTS {SCHEMA_VERSION_TABLE} (id integer NOT NULL PRIMARY \
                 KEY CHECK (id = 1), version integer NOT NULL)"
            ),
            // A database without the version table is a 0.9 one (or new): version 1.
            format!(
                "INSERT OR IGNORE INTO {SCHEMA_VERSION_TABLE} (id, version) VALUES (1, \
                 {SCHEMA_VERSION})"
            ),
        ];
        for sql in &stmts {
            sqlx::query(sql)
                .execute(&self.pool)
                .await
                .map_err(|e| self.err_ctx("cannot create the schema", e))?;
        }
        let version = self.schema_version().await?;
        if version > SCHEMA_VERSION {
            return Err(ProviderError::Backend(format!(
                "sqlite database {}: schema version {version} is newer than the supported \
                 version {SCHEMA_VERSION}",
                self.path.display()
            )));
        }
        // An adopted table must have every column we use.
        let probe = format!("SELECT {COLUMNS} FROM {table} LIMIT 0");
        sqlx::query(&probe)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| {
                self.err_ctx(
                    &format!("table {table:?} does not have SFTPGo's users layout"),
                    e,
                )
            })?;
        Ok(())
    }

    fn err(&self, e: sqlx::Error) -> ProviderError {
        self.err_ctx("query failed", e)
    }

    fn err_ctx(&self, what: &str, e: sqlx::Error) -> ProviderError {
        ProviderError::Backend(format!(
            "sqlite database {}: {what}: {e}",
            self.path.display()
        ))
    }

    fn row_to_user(&self, row: &SqliteRow) -> Result<User> {
        decode_user(row).map_err(|e| {
            ProviderError::Backend(format!(
                "sqlite database {}: bad user row: {e}",
                self.path.display()
            ))
        })
    }
}

fn decode_user(row: &SqliteRow) -> std::result::Result<User, String> {
    let get_i64 = |col: &str| row.try_get::<i64, _>(col).map_err(|e| e.to_string());
    let username: String = row.try_get("username").map_err(|e| e.to_string())?;
    let password: Option<String> = row.try_get("password").map_err(|e| e.to_string())?;
    let public_keys: Option<String> = row.try_get("public_keys").map_err(|e| e.to_string())?;
    let permissions: String = row.try_get("permissions").map_err(|e| e.to_string())?;
    let public_keys: Vec<String> = match public_keys.as_deref().map(str::trim) {
        None | Some("") | Some("null") => Vec::new(),
        Some(json) => serde_json::from_str(json).map_err(|e| {
            format!("user {username:?}: public_keys is not a JSON string array: {e}")
        })?,
    };
    let permissions: Vec<Permission> = serde_json::from_str(&permissions)
        .map_err(|e| format!("user {username:?}: invalid permissions {permissions:?}: {e}"))?;
    Ok(User {
        id: get_i64("id")?,
        password: password.filter(|p| !p.is_empty()),
        public_keys,
        home_dir: row.try_get("home_dir").map_err(|e| e.to_string())?,
        uid: get_i64("uid")?,
        gid: get_i64("gid")?,
        max_sessions: get_i64("max_sessions")?,
        quota_size: get_i64("quota_size")?,
        quota_files: get_i64("quota_files")?,
        permissions,
        used_quota_size: get_i64("used_quota_size")?,
        used_quota_files: get_i64("used_quota_files")?,
        last_quota_update: get_i64("last_quota_update")?,
        upload_bandwidth: get_i64("upload_bandwidth")?,
        download_bandwidth: get_i64("download_bandwidth")?,
        username,
    })
}

fn json_keys(user: &User) -> Result<Option<String>> {
    if user.public_keys.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(&user.public_keys)
        .map(Some)
        .map_err(|e| ProviderError::Backend(format!("cannot encode public keys: {e}")))
}

fn json_permissions(user: &User) -> Result<String> {
    serde_json::to_string(&user.permissions)
        .map_err(|e| ProviderError::Backend(format!("cannot encode permissions: {e}")))
}

#[async_trait]
impl Backend for SqliteBackend {
    fn driver(&self) -> &'static str {
        "sqlite"
    }

    async fn user_by_username(&self, username: &str) -> Result<User> {
        let row = sqlx::query(&self.sql.by_username)
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?
            .ok_or_else(|| ProviderError::NotFound(format!("user {username:?}")))?;
        self.row_to_user(&row)
    }

    async fn user_by_id(&self, id: i64) -> Result<User> {
        let row = sqlx::query(&self.sql.by_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?
            .ok_or_else(|| ProviderError::NotFound(format!("user with id {id}")))?;
        self.row_to_user(&row)
    }

    async fn insert_user(&self, user: &User) -> Result<User> {
        let result = sqlx::query(&self.sql.insert)
            .bind(&user.username)
            .bind(user.password.as_deref())
            .bind(json_keys(user)?)
            .bind(&user.home_dir)
            .bind(user.uid)
            .bind(user.gid)
            .bind(user.max_sessions)
            .bind(user.quota_size)
            .bind(user.quota_files)
            .bind(json_permissions(user)?)
            .bind(user.upload_bandwidth)
            .bind(user.download_bandwidth)
            .execute(&self.pool)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_unique_violation() => {
                    ProviderError::AlreadyExists(user.username.clone())
                }
                _ => self.err(e),
            })?;
        self.user_by_id(result.last_insert_rowid()).await
    }

    async fn update_user(&self, user: &User) -> Result<()> {
        let result = sqlx::query(&self.sql.update)
            .bind(user.password.as_deref())
            .bind(json_keys(user)?)
            .bind(&user.home_dir)
            .bind(user.uid)
            .bind(user.gid)
            .bind(user.max_sessions)
            .bind(user.quota_size)
            .bind(user.quota_files)
            .bind(json_permissions(user)?)
            .bind(user.upload_bandwidth)
            .bind(user.download_bandwidth)
            .bind(user.id)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        if result.rows_affected() == 0 {
            return Err(ProviderError::NotFound(format!("user with id {}", user.id)));
        }
        Ok(())
    }

    async fn delete_user(&self, id: i64) -> Result<()> {
        let result = sqlx::query(&self.sql.delete)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        if result.rows_affected() == 0 {
            return Err(ProviderError::NotFound(format!("user with id {id}")));
        }
        Ok(())
    }

    async fn list_users(&self, query: &UserQuery) -> Result<Vec<User>> {
        let limit = i64::from(query.limit);
        let offset = i64::from(query.offset);
        let q = match (&query.username, query.order) {
            (Some(name), _) => sqlx::query(&self.sql.list_filtered).bind(name.as_str()),
            (None, SortOrder::Asc) => sqlx::query(&self.sql.list_asc),
            (None, SortOrder::Desc) => sqlx::query(&self.sql.list_desc),
        };
        let rows = q
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        rows.iter().map(|r| self.row_to_user(r)).collect()
    }

    async fn update_quota(&self, username: &str, update: QuotaUpdate) -> Result<()> {
        let (sql, size, files) = match update {
            QuotaUpdate::Delta { size, files } => (&self.sql.quota_delta, size, files),
            QuotaUpdate::Reset { size, files } => (&self.sql.quota_reset, size, files),
        };
        let result = sqlx::query(sql)
            .bind(size)
            .bind(files)
            .bind(crate::now_ms())
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        if result.rows_affected() == 0 {
            return Err(ProviderError::NotFound(format!("user {username:?}")));
        }
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DataProvider, TrackQuota};
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
        assert_eq!(b.path(), path);
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
        assert_eq!(b.pool.options().get_max_connections(), 2);
        assert_eq!(
            b.pool.options().get_acquire_timeout(),
            Duration::from_secs(8)
        );
        let busy_ms: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&b.pool)
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
            .fetch_one(&b.pool)
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
                .execute(&b.pool)
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
        .execute(&b.pool)
        .await
        .unwrap();
        match b.user_by_username("bad").await {
            Err(ProviderError::Backend(msg)) => assert!(msg.contains("permissions"), "{msg}"),
            other => panic!("expected Backend error, got {other:?}"),
        }
    }
}
