//! MySQL/MariaDB backend (sqlx) on SFTPGo 0.9's table layout, so existing 0.9 databases are
//! used as they are.
//!
//! [`MySqlBackend::connect`] creates the users table (and a one-row `schema_version` table)
//! when missing, holding a named lock (`GET_LOCK`) so that several instances starting together
//! do not race. A new table uses `utf8mb4` with the `utf8mb4_bin` collation so that usernames
//! are case-sensitive and listed in byte order, like the other backends; an existing 0.9
//! table is adopted without changes (with its own collation).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlRow, MySqlSslMode};
use sqlx::{ConnectOptions, Row};

use crate::sql::{ServerSettings, Statements, decode_user_row, json_keys, json_permissions};
use crate::sqlite::{SCHEMA_VERSION, SCHEMA_VERSION_TABLE};
use crate::{Backend, ProviderError, QuotaUpdate, Result, SortOrder, User, UserQuery};

/// MySQL/MariaDB connection settings (`port` 0 means 3306).
pub type MySqlSettings = ServerSettings;

/// Name of the lock held while creating the schema.
const SCHEMA_LOCK: &str = "sftpgo_schema";

/// A users table in a MySQL or MariaDB database.
#[derive(Debug, Clone)]
pub struct MySqlBackend {
    pool: MySqlPool,
    /// "host:port/database", for error messages.
    target: String,
    sql: Statements,
}

fn create_table_sql(t: &str) -> String {
    // SFTPGo 0.9's mysql layout, column for column, except that `home_dir`
    // is varchar(4096) rather than 255 (a path may be longer than a username).
    format!(
        "CREATE TABLE IF NOT EXISTS {t} (`id` integer AUTO_INCREMENT NOT NULL PRIMARY KEY, \
         `username` varchar(255) NOT NULL UNIQUE, `password` varchar(255) NULL, \
         `public_keys` longtext NULL, `home_dir` varchar(4096) NOT NULL, `uid` integer NOT NULL, \
         `gid` integer NOT NULL, `max_sessions` integer NOT NULL, \
         `quota_size` bigint NOT NULL, `quota_files` integer NOT NULL, \
         `permissions` longtext NOT NULL, `used_quota_size` bigint NOT NULL, \
         `used_quota_files` integer NOT NULL, `last_quota_update` bigint NOT NULL, \
         `upload_bandwidth` integer NOT NULL, `download_bandwidth` integer NOT NULL) \
         DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    )
}

fn ssl_mode(sslmode: u8) -> Result<MySqlSslMode> {
    // SFTPGo 0.9 passed `tls=false|true|skip-verify|preferred` to Go's driver, where `true`
    // verifies the certificate and the host name.
    Ok(match sslmode {
        0 => MySqlSslMode::Disabled,
        1 => MySqlSslMode::VerifyIdentity,
        2 => MySqlSslMode::Required,
        3 => MySqlSslMode::Preferred,
        n => {
            return Err(ProviderError::Backend(format!(
                "mysql data provider: invalid sslmode {n} (0 disable, 1 require, \
                 2 skip-verify, 3 preferred)"
            )));
        }
    })
}

/// Connect options from `settings`: `connection_string` (a `mysql://` URL or a Go driver DSN
/// `user:pass@tcp(host:port)/name?tls=...`, as SFTPGo 0.9 accepted) when set, the separate
/// fields otherwise.
pub fn connect_options(settings: &MySqlSettings) -> Result<MySqlConnectOptions> {
    let invalid = |m: String| ProviderError::Backend(format!("mysql data provider: {m}"));
    let options = if settings.connection_string.trim().is_empty() {
        let port = if settings.port == 0 {
            3306
        } else {
            settings.port
        };
        let host = if settings.host.is_empty() {
            "localhost"
        } else {
            settings.host.as_str()
        };
        let mut o = MySqlConnectOptions::new()
            .host(host)
            .port(port)
            .database(&settings.name)
            .ssl_mode(ssl_mode(settings.sslmode)?);
        if !settings.username.is_empty() {
            o = o.username(&settings.username);
        }
        if !settings.password.is_empty() {
            o = o.password(&settings.password);
        }
        o
    } else {
        let s = settings.connection_string.trim();
        if s.starts_with("mysql://") || s.starts_with("mariadb://") {
            MySqlConnectOptions::from_str(s)
                .map_err(|e| invalid(format!("invalid connection_string: {e}")))?
        } else {
            parse_go_dsn(s).map_err(|m| invalid(format!("invalid connection_string: {m}")))?
        }
    };
    Ok(options
        .charset("utf8mb4")
        .log_statements(tracing::log::LevelFilter::Trace))
}

/// Parses a Go MySQL driver DSN: `[user[:password]@][tcp(host:port)|unix(path)]/dbname[?k=v&...]`.
fn parse_go_dsn(s: &str) -> std::result::Result<MySqlConnectOptions, String> {
    let mut o = MySqlConnectOptions::new();
    // The password may contain '@' and '/': the credentials end at the last '@' before the
    // last '/'.
    let slash = s.rfind('/').ok_or("missing '/dbname'")?;
    let (head, tail) = (&s[..slash], &s[slash + 1..]);
    let (creds, addr) = match head.rfind('@') {
        Some(at) => (Some(&head[..at]), &head[at + 1..]),
        None => (None, head),
    };
    if let Some(creds) = creds {
        let (user, pass) = creds.split_once(':').unwrap_or((creds, ""));
        if !user.is_empty() {
            o = o.username(user);
        }
        if !pass.is_empty() {
            o = o.password(pass);
        }
    }
    if !addr.is_empty() {
        let (proto, rest) = addr
            .split_once('(')
            .ok_or("address must be tcp(...) or unix(...)")?;
        let inner = rest.strip_suffix(')').ok_or("unterminated address")?;
        match proto {
            "tcp" => {
                let (host, port) = match inner.rsplit_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (inner, None),
                };
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if !host.is_empty() {
                    o = o.host(host);
                }
                if let Some(p) = port {
                    o = o.port(p.parse().map_err(|_| format!("invalid port {p:?}"))?);
                }
            }
            "unix" => o = o.socket(inner),
            other => return Err(format!("unsupported protocol {other:?}")),
        }
    }
    let (db, params) = tail.split_once('?').unwrap_or((tail, ""));
    if !db.is_empty() {
        o = o.database(db);
    }
    for pair in params.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "tls" {
            o = o.ssl_mode(match v {
                "false" => MySqlSslMode::Disabled,
                "true" => MySqlSslMode::VerifyIdentity,
                "skip-verify" => MySqlSslMode::Required,
                "preferred" => MySqlSslMode::Preferred,
                other => return Err(format!("unsupported tls value {other:?}")),
            });
        }
        // Other Go driver parameters (charset, timeout, interpolateParams, ...) have no
        // equivalent to set here and are ignored.
    }
    Ok(o)
}

/// MySQL's error number for an unknown system variable.
const ER_UNKNOWN_SYSTEM_VARIABLE: &str = "1193";

/// Limits the run time of the session's statements: MariaDB's `max_statement_time`
/// (seconds, every statement), or on MySQL, which lacks it, `max_execution_time`
/// (milliseconds, SELECT statements only). `None` sets no limit.
async fn set_statement_timeout(
    conn: &mut sqlx::MySqlConnection,
    timeout: Option<Duration>,
) -> std::result::Result<(), sqlx::Error> {
    let Some(t) = timeout else {
        return Ok(());
    };
    let mariadb = format!("SET SESSION max_statement_time = {}", t.as_secs_f64());
    match sqlx::query(&mariadb).execute(&mut *conn).await {
        Err(sqlx::Error::Database(e))
            if e.code().as_deref() == Some(ER_UNKNOWN_SYSTEM_VARIABLE) =>
        {
            let mysql = format!("SET SESSION max_execution_time = {}", t.as_millis());
            sqlx::query(&mysql).execute(&mut *conn).await.map(|_| ())
        }
        other => other.map(|_| ()),
    }
}

impl MySqlBackend {
    /// Connects to the database described by `settings` and creates the users table when
    /// missing. An unreachable server is an error naming the driver, host and port.
    pub async fn connect(settings: &MySqlSettings) -> Result<Self> {
        crate::sql::check_table_name(&settings.users_table)?;
        let options = connect_options(settings)?;
        let statement_timeout = settings.pool.statement_timeout;
        let target = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        );
        let pool = settings
            .pool
            .server_pool_options::<sqlx::MySql>()
            .after_connect(move |conn, _| {
                Box::pin(async move { set_statement_timeout(conn, statement_timeout).await })
            })
            .connect_with(options)
            .await
            .map_err(|e| {
                ProviderError::Backend(format!(
                    "mysql data provider at {target}: cannot connect: {e}"
                ))
            })?;
        let table = settings.users_table.as_str();
        let backend = Self {
            pool,
            target,
            sql: Statements::new(table, |_| "?".to_owned(), "username", ""),
        };
        backend.init_schema(table).await?;
        Ok(backend)
    }

    /// The layout version recorded in the database.
    pub async fn schema_version(&self) -> Result<i64> {
        let sql = format!("SELECT version FROM {SCHEMA_VERSION_TABLE} WHERE id = 1");
        let row = sqlx::query(&sql)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        row.try_get::<i64, _>(0)
            .or_else(|_| row.try_get::<i32, _>(0).map(i64::from))
            .map_err(|e| self.err(e))
    }

    /// The connection pool (for tests and tools).
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Closes the pool (waits for connections in use).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn init_schema(&self, table: &str) -> Result<()> {
        let ctx = |e| self.err_ctx("cannot create the schema", e);
        let mut conn = self.pool.acquire().await.map_err(ctx)?;
        let locked: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 30)")
            .bind(SCHEMA_LOCK)
            .fetch_one(&mut *conn)
            .await
            .map_err(ctx)?;
        if locked != Some(1) {
            return Err(ProviderError::Backend(format!(
                "mysql database {}: cannot create the schema: lock {SCHEMA_LOCK:?} not obtained \
                 within 30 s",
                self.target
            )));
        }
        let stmts = [
            create_table_sql(table),
            format!(
                "CREATE TABLE IF NOT EXISTS {SCHEMA_VERSION_TABLE} (id integer NOT NULL PRIMARY \
                 KEY, version integer NOT NULL)"
            ),
            format!(
                "INSERT IGNORE INTO {SCHEMA_VERSION_TABLE} (id, version) VALUES (1, \
                 {SCHEMA_VERSION})"
            ),
        ];
        let mut created = Ok(());
        for sql in &stmts {
            if let Err(e) = sqlx::query(sql).execute(&mut *conn).await {
                created = Err(ctx(e));
                break;
            }
        }
        let released = sqlx::query("SELECT RELEASE_LOCK(?)")
            .bind(SCHEMA_LOCK)
            .execute(&mut *conn)
            .await;
        if released.is_err() {
            // Never return a connection that may still hold the lock to the pool.
            conn.detach();
        }
        created?;
        let version = self.schema_version().await?;
        if version > SCHEMA_VERSION {
            return Err(ProviderError::Backend(format!(
                "mysql database {}: schema version {version} is newer than the supported \
                 version {SCHEMA_VERSION}",
                self.target
            )));
        }
        sqlx::query(&self.sql.probe)
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
        ProviderError::Backend(format!("mysql database {}: {what}: {e}", self.target))
    }

    fn row_to_user(&self, row: &MySqlRow) -> Result<User> {
        decode_user_row!(row).map_err(|e| {
            ProviderError::Backend(format!("mysql database {}: bad user row: {e}", self.target))
        })
    }
}

#[async_trait]
impl Backend for MySqlBackend {
    fn driver(&self) -> &'static str {
        "mysql"
    }

    async fn user_by_username(&self, username: &str) -> Result<User> {
        let not_found = || ProviderError::NotFound(format!("user {username:?}"));
        let row = sqlx::query(&self.sql.by_username)
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?
            .ok_or_else(not_found)?;
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
        let id = i64::try_from(result.last_insert_id())
            .map_err(|_| ProviderError::Backend("inserted id out of range".to_owned()))?;
        self.user_by_id(id).await
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
    use crate::sql::testdb;
    use crate::{DataProvider, Permission, TrackQuota};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// SFTPGo 0.9's `sql/mysql` schema.
    const SFTPGO_09_SQL: &str = r#"CREATE TABLE `users` (`id` integer AUTO_INCREMENT NOT NULL PRIMARY KEY, `username` varchar(255) NOT NULL UNIQUE, `password` varchar(255) NULL, `public_keys` longtext NULL, `home_dir` varchar(255) NOT NULL, `uid` integer NOT NULL, `gid` integer NOT NULL, `max_sessions` integer NOT NULL, `quota_size` bigint NOT NULL, `quota_files` integer NOT NULL, `permissions` longtext NOT NULL, `used_quota_size` bigint NOT NULL, `used_quota_files` integer NOT NULL, `last_quota_update` bigint NOT NULL, `upload_bandwidth` integer NOT NULL, `download_bandwidth` integer NOT NULL);"#;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance() {
        let db = testdb::mysql().await;
        let n = AtomicUsize::new(0);
        crate::conformance::run_all(|| {
            // Every check gets its own empty table in this test's database.
            let settings = MySqlSettings {
                users_table: format!("users_{}", n.fetch_add(1, Ordering::SeqCst)),
                ..db.settings.clone()
            };
            async move {
                Arc::new(MySqlBackend::connect(&settings).await.expect("connect"))
                    as Arc<dyn Backend>
            }
        })
        .await;
    }

    #[tokio::test]
    async fn adopts_an_sftpgo_09_table_and_shares_it() {
        let db = testdb::mysql().await;
        {
            let first = MySqlBackend::connect(&MySqlSettings {
                users_table: "other".into(),
                ..db.settings.clone()
            })
            .await
            .unwrap();
            sqlx::raw_sql(SFTPGO_09_SQL)
                .execute(first.pool())
                .await
                .unwrap();
            sqlx::raw_sql(
                "INSERT INTO users (username, password, public_keys, home_dir, uid, gid, \
                 max_sessions, quota_size, quota_files, permissions, used_quota_size, \
                 used_quota_files, last_quota_update, upload_bandwidth, download_bandwidth) \
                 VALUES ('legacy', NULL, '[\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKiqVah2eauGBSyuYBpoPb73fmxK3SxfvonBg30GHZAo k\"]', \
                 '/srv/legacy', 5, 6, 2, 1000, 10, '[\"list\",\"download\"]', 7, 1, 3, 0, 0)",
            )
            .execute(first.pool())
            .await
            .unwrap();
            first.close().await;
        }
        // Two instances on one table: what one adds the other serves, quota adds up.
        let a = MySqlBackend::connect(&db.settings).await.unwrap();
        let b = MySqlBackend::connect(&db.settings).await.unwrap();
        assert_eq!(a.schema_version().await.unwrap(), SCHEMA_VERSION);
        let legacy = a.user_by_username("legacy").await.unwrap();
        assert_eq!(legacy.permissions, [Permission::List, Permission::Download]);
        assert_eq!(legacy.public_keys.len(), 1);
        assert_eq!((legacy.uid, legacy.gid, legacy.quota_size), (5, 6, 1000));
        assert_eq!(legacy.used_quota_size, 7);
        let pa = DataProvider::new(Arc::new(a.clone()), true, TrackQuota::Always);
        let pb = DataProvider::new(Arc::new(b.clone()), true, TrackQuota::Always);
        let added = pa
            .add_user(crate::conformance::sample_user("shared"))
            .await
            .unwrap();
        assert!(added.id > legacy.id);
        assert_eq!(pb.user_by_username("shared").await.unwrap(), added);
        let mut tasks = Vec::new();
        for i in 0..50 {
            let p = if i % 2 == 0 { pa.clone() } else { pb.clone() };
            let u = added.clone();
            tasks.push(tokio::spawn(async move { p.update_quota(&u, 3, 1).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let after = pa.user_by_id(added.id).await.unwrap();
        assert_eq!((after.used_quota_size, after.used_quota_files), (150, 50));
        a.close().await;
        b.close().await;
    }

    #[tokio::test]
    async fn shipped_sql_file_creates_an_adoptable_schema() {
        let db = testdb::mysql().await;
        let first = MySqlBackend::connect(&MySqlSettings {
            users_table: "other".into(),
            ..db.settings.clone()
        })
        .await
        .unwrap();
        sqlx::raw_sql(include_str!("../../../sql/mysql/20190828.sql"))
            .execute(first.pool())
            .await
            .expect("sql/mysql/20190828.sql applies (twice is harmless)");
        first.close().await;
        let b = MySqlBackend::connect(&db.settings).await.unwrap();
        assert_eq!(b.schema_version().await.unwrap(), SCHEMA_VERSION);
        crate::conformance::crud_round_trip(Arc::new(b.clone())).await;
        b.close().await;
    }

    #[tokio::test]
    async fn unreachable_server_names_driver_host_and_port() {
        let s = MySqlSettings {
            host: "127.0.0.1".into(),
            port: 1,
            name: "x".into(),
            pool: crate::sql::PoolSettings {
                connect_timeout: Duration::from_secs(2),
                ..Default::default()
            },
            ..MySqlSettings::default()
        };
        match MySqlBackend::connect(&s).await {
            Err(ProviderError::Backend(msg)) => {
                assert!(
                    msg.contains("mysql") && msg.contains("127.0.0.1:1"),
                    "{msg}"
                )
            }
            other => panic!("expected Backend error, got {other:?}"),
        }
        let bad_table = MySqlSettings {
            users_table: "users; DROP TABLE x".into(),
            ..s
        };
        match MySqlBackend::connect(&bad_table).await {
            Err(ProviderError::Backend(msg)) => assert!(msg.contains("table name"), "{msg}"),
            other => panic!("expected Backend error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn foreign_table_layout_is_refused() {
        let db = testdb::mysql().await;
        let first = MySqlBackend::connect(&MySqlSettings {
            users_table: "other".into(),
            ..db.settings.clone()
        })
        .await
        .unwrap();
        sqlx::raw_sql("CREATE TABLE users (id integer PRIMARY KEY, name text)")
            .execute(first.pool())
            .await
            .unwrap();
        first.close().await;
        match MySqlBackend::connect(&db.settings).await {
            Err(ProviderError::Backend(msg)) => assert!(msg.contains("layout"), "{msg}"),
            other => panic!("expected Backend error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn pool_settings_reach_the_pool_and_the_session() {
        let db = testdb::mysql().await;
        let s = MySqlSettings {
            pool: crate::sql::PoolSettings {
                pool_size: 3,
                connect_timeout: Duration::from_secs(4),
                statement_timeout: Some(Duration::from_secs(2)),
            },
            ..db.settings.clone()
        };
        let b = MySqlBackend::connect(&s).await.unwrap();
        assert_eq!(b.pool().options().get_max_connections(), 3);
        assert_eq!(
            b.pool().options().get_acquire_timeout(),
            Duration::from_secs(4)
        );
        // MariaDB (the server here) takes max_statement_time, in seconds.
        let limit: f64 = sqlx::query_scalar("SELECT @@SESSION.max_statement_time")
            .fetch_one(b.pool())
            .await
            .unwrap();
        assert_eq!(limit, 2.0);
        b.close().await;
        let unlimited = MySqlSettings {
            pool: crate::sql::PoolSettings {
                statement_timeout: None,
                ..Default::default()
            },
            ..db.settings.clone()
        };
        let b = MySqlBackend::connect(&unlimited).await.unwrap();
        let limit: f64 = sqlx::query_scalar("SELECT @@SESSION.max_statement_time")
            .fetch_one(b.pool())
            .await
            .unwrap();
        assert_eq!(limit, 0.0);
        b.close().await;
    }

    #[test]
    fn go_dsn_connection_strings() {
        let o =
            parse_go_dsn("u:p@ss@tcp(db.example:3307)/sftp?charset=utf8&tls=skip-verify").unwrap();
        assert_eq!(o.get_host(), "db.example");
        assert_eq!(o.get_port(), 3307);
        assert_eq!(o.get_database(), Some("sftp"));
        assert_eq!(o.get_username(), "u");
        assert!(matches!(o.get_ssl_mode(), MySqlSslMode::Required));
        let o = parse_go_dsn("root@unix(/run/mysqld/mysqld.sock)/db").unwrap();
        assert_eq!(
            o.get_socket().map(|p| p.to_string_lossy().into_owned()),
            Some("/run/mysqld/mysqld.sock".to_owned())
        );
        assert!(parse_go_dsn("no-slash").is_err());
        assert!(parse_go_dsn("u@udp(h:1)/d").is_err());
        assert!(parse_go_dsn("u@tcp(h:x)/d").is_err());
        assert!(parse_go_dsn("u@tcp(h:1)/d?tls=maybe").is_err());
    }

    #[test]
    fn settings_map_to_options() {
        let s = MySqlSettings {
            host: "10.0.0.2".into(),
            port: 0,
            name: "sftp".into(),
            username: "me".into(),
            sslmode: 3,
            ..MySqlSettings::default()
        };
        let o = connect_options(&s).unwrap();
        assert_eq!((o.get_host(), o.get_port()), ("10.0.0.2", 3306));
        assert_eq!(o.get_database(), Some("sftp"));
        assert!(matches!(o.get_ssl_mode(), MySqlSslMode::Preferred));
        let url = MySqlSettings {
            connection_string: "mysql://a@h2:3310/d2".into(),
            ..s.clone()
        };
        let o = connect_options(&url).unwrap();
        assert_eq!((o.get_host(), o.get_port()), ("h2", 3310));
        assert!(
            connect_options(&MySqlSettings {
                sslmode: 9,
                ..s.clone()
            })
            .is_err()
        );
    }
}
