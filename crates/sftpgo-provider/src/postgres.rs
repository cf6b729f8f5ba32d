//! PostgreSQL backend (sqlx) on SFTPGo 0.9's table layout, so existing 0.9 databases are used
//! as they are.
//!
//! [`PostgresBackend::connect`] creates the users table (and a one-row `schema_version` table)
//! when missing, under a transaction-scoped advisory lock so that several instances starting
//! together do not race. An existing table is adopted without changes if it has every column.
//! Listing orders usernames by byte order (`COLLATE "C"`), like the SQLite backend.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgRow, PgSslMode};

use crate::sql::{ServerSettings, Statements, decode_user_row, json_keys, json_permissions};
use crate::sqlite::{SCHEMA_VERSION, SCHEMA_VERSION_TABLE};
use crate::{Backend, ProviderError, QuotaUpdate, Result, SortOrder, User, UserQuery};

/// PostgreSQL connection settings (`port` 0 means 5432).
pub type PgSettings = ServerSettings;

/// Key of the advisory lock held while creating the schema ("sftpgo" in ASCII).
const SCHEMA_LOCK_KEY: i64 = 0x7366_7470_676f;

/// A users table in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresBackend {
    pool: PgPool,
    /// "host:port/database", for error messages.
    target: String,
    sql: Statements,
}

fn create_table_sql(t: &str) -> String {
    // SFTPGo 0.9's postgresql layout, column for column, except that `home_dir`
    // is varchar(4096) rather than 255 (a path may be longer than a username).
    format!(
        "CREATE TABLE IF NOT EXISTS {t} (\"id\" serial NOT NULL PRIMARY KEY, \
         \"username\" varchar(255) NOT NULL UNIQUE, \"password\" varchar(255) NULL, \
         \"public_keys\" text NULL, \"home_dir\" varchar(4096) NOT NULL, \"uid\" integer NOT NULL, \
         \"gid\" integer NOT NULL, \"max_sessions\" integer NOT NULL, \
         \"quota_size\" bigint NOT NULL, \"quota_files\" integer NOT NULL, \
         \"permissions\" text NOT NULL, \"used_quota_size\" bigint NOT NULL, \
         \"used_quota_files\" integer NOT NULL, \"last_quota_update\" bigint NOT NULL, \
         \"upload_bandwidth\" integer NOT NULL, \"download_bandwidth\" integer NOT NULL)"
    )
}

/// Connect options from `settings`: `connection_string` (a `postgres://` URL or libpq
/// `key=value` pairs) when set, the separate fields otherwise.
pub fn connect_options(settings: &PgSettings) -> Result<PgConnectOptions> {
    let invalid = |m: String| ProviderError::Backend(format!("postgresql data provider: {m}"));
    let options = if settings.connection_string.trim().is_empty() {
        let port = if settings.port == 0 {
            5432
        } else {
            settings.port
        };
        let host = if settings.host.is_empty() {
            "localhost"
        } else {
            settings.host.as_str()
        };
        let mut o = PgConnectOptions::new_without_pgpass()
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
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            PgConnectOptions::from_str(s)
                .map_err(|e| invalid(format!("invalid connection_string: {e}")))?
        } else {
            parse_keyword_value(s)
                .map_err(|m| invalid(format!("invalid connection_string: {m}")))?
        }
    };
    // 0 disables PostgreSQL's limit.
    let timeout_ms = settings
        .pool
        .statement_timeout
        .map_or(0, |t| t.as_millis())
        .to_string();
    Ok(options
        .options([("statement_timeout", timeout_ms.as_str())])
        .application_name("sftpgo")
        .log_statements(tracing::log::LevelFilter::Trace))
}

fn ssl_mode(sslmode: u8) -> Result<PgSslMode> {
    Ok(match sslmode {
        0 => PgSslMode::Disable,
        1 => PgSslMode::Require,
        2 => PgSslMode::VerifyCa,
        3 => PgSslMode::VerifyFull,
        n => {
            return Err(ProviderError::Backend(format!(
                "postgresql data provider: invalid sslmode {n} (0 disable, 1 require, \
                 2 verify-ca, 3 verify-full)"
            )));
        }
    })
}

/// Parses a libpq keyword/value connection string (`host=h port=5432 dbname='x y'`), the form
/// SFTPGo 0.9 builds and accepts.
fn parse_keyword_value(s: &str) -> std::result::Result<PgConnectOptions, String> {
    let mut o = PgConnectOptions::new_without_pgpass();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("missing '=' after {key:?}"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated quoted value for {key:?}")),
                    Some('\'') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(format!("unterminated quoted value for {key:?}")),
                    },
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '\\' {
                    chars.next();
                    if let Some(c) = chars.next() {
                        value.push(c);
                    }
                    continue;
                }
                value.push(c);
                chars.next();
            }
        }
        o = match key.as_str() {
            "host" | "hostaddr" => o.host(&value),
            "port" => o.port(
                value
                    .parse()
                    .map_err(|_| format!("invalid port {value:?}"))?,
            ),
            "dbname" => o.database(&value),
            "user" => o.username(&value),
            "password" => o.password(&value),
            "sslmode" => o.ssl_mode(PgSslMode::from_str(&value).map_err(|e| e.to_string())?),
            "sslrootcert" => o.ssl_root_cert(&value),
            "sslcert" => o.ssl_client_cert(&value),
            "sslkey" => o.ssl_client_key(&value),
            "application_name" => o.application_name(&value),
            // The pool's acquire timeout bounds connecting.
            "connect_timeout" => o,
            other => return Err(format!("unsupported keyword {other:?}")),
        };
    }
    Ok(o)
}

impl PostgresBackend {
    /// Connects to the database described by `settings` and creates the users table when
    /// missing. An unreachable server is an error naming the driver, host and port.
    pub async fn connect(settings: &PgSettings) -> Result<Self> {
        crate::sql::check_table_name(&settings.users_table)?;
        let options = connect_options(settings)?;
        let target = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        );
        let pool = settings
            .pool
            .server_pool_options::<sqlx::Postgres>()
            .connect_with(options)
            .await
            .map_err(|e| {
                ProviderError::Backend(format!(
                    "postgresql data provider at {target}: cannot connect: {e}"
                ))
            })?;
        let table = settings.users_table.as_str();
        let backend = Self {
            pool,
            target,
            sql: Statements::new(
                table,
                |n| format!("${n}"),
                "username COLLATE \"C\"",
                &format!(" RETURNING {}", crate::sql::COLUMNS),
            ),
        };
        backend.init_schema(table).await?;
        Ok(backend)
    }

    /// The layout version recorded in the database.
    pub async fn schema_version(&self) -> Result<i64> {
        let sql = format!("SELECT version FROM {SCHEMA_VERSION_TABLE} WHERE id = 1");
        sqlx::query_scalar::<_, i32>(&sql)
            .fetch_one(&self.pool)
            .await
            .map(i64::from)
            .map_err(|e| self.err(e))
    }

    /// The connection pool (for tests and tools).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool (waits for connections in use).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn init_schema(&self, table: &str) -> Result<()> {
        let ctx = |e| self.err_ctx("cannot create the schema", e);
        let mut tx = self.pool.begin().await.map_err(ctx)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SCHEMA_LOCK_KEY)
            .execute(&mut *tx)
            .await
            .map_err(ctx)?;
        let stmts = [
            create_table_sql(table),
            format!(
                "CREATE TABLE IF NOT EXISTS {SCHEMA_VERSION_TABLE} (id integer NOT NULL PRIMARY \
                 KEY CHECK (id = 1), version integer NOT NULL)"
            ),
            format!(
                "INSERT INTO {SCHEMA_VERSION_TABLE} (id, version) VALUES (1, {SCHEMA_VERSION}) \
                 ON CONFLICT (id) DO NOTHING"
            ),
        ];
        for sql in &stmts {
            sqlx::query(sql).execute(&mut *tx).await.map_err(ctx)?;
        }
        tx.commit().await.map_err(ctx)?;
        let version = self.schema_version().await?;
        if version > SCHEMA_VERSION {
            return Err(ProviderError::Backend(format!(
                "postgresql database {}: schema version {version} is newer than the supported \
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
        ProviderError::Backend(format!("postgresql database {}: {what}: {e}", self.target))
    }

    fn row_to_user(&self, row: &PgRow) -> Result<User> {
        decode_user_row!(row).map_err(|e| {
            ProviderError::Backend(format!(
                "postgresql database {}: bad user row: {e}",
                self.target
            ))
        })
    }
}

#[async_trait]
impl Backend for PostgresBackend {
    fn driver(&self) -> &'static str {
        "postgresql"
    }

    async fn user_by_username(&self, username: &str) -> Result<User> {
        let not_found = || ProviderError::NotFound(format!("user {username:?}"));
        // PostgreSQL text cannot hold NUL: no stored user has such a name.
        if username.contains('\0') {
            return Err(not_found());
        }
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
        let row = sqlx::query(&self.sql.insert)
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
            .fetch_one(&self.pool)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_unique_violation() => {
                    ProviderError::AlreadyExists(user.username.clone())
                }
                _ => self.err(e),
            })?;
        self.row_to_user(&row)
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
    use std::time::Duration;

    /// SFTPGo 0.9's `sql/postgresql` schema.
    const SFTPGO_09_SQL: &str = r#"CREATE TABLE "users" ("id" serial NOT NULL PRIMARY KEY, "username" varchar(255) NOT NULL UNIQUE, "password" varchar(255) NULL, "public_keys" text NULL, "home_dir" varchar(255) NOT NULL, "uid" integer NOT NULL, "gid" integer NOT NULL, "max_sessions" integer NOT NULL, "quota_size" bigint NOT NULL, "quota_files" integer NOT NULL, "permissions" text NOT NULL, "used_quota_size" bigint NOT NULL, "used_quota_files" integer NOT NULL, "last_quota_update" bigint NOT NULL, "upload_bandwidth" integer NOT NULL, "download_bandwidth" integer NOT NULL);"#;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance() {
        let db = testdb::postgres().await;
        let n = AtomicUsize::new(0);
        crate::conformance::run_all(|| {
            // Every check gets its own empty table in this test's database.
            let settings = PgSettings {
                users_table: format!("users_{}", n.fetch_add(1, Ordering::SeqCst)),
                ..db.settings.clone()
            };
            async move {
                Arc::new(PostgresBackend::connect(&settings).await.expect("connect"))
                    as Arc<dyn Backend>
            }
        })
        .await;
    }

    #[tokio::test]
    async fn adopts_an_sftpgo_09_table_and_shares_it() {
        let db = testdb::postgres().await;
        {
            let first = PostgresBackend::connect(&PgSettings {
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
        let a = PostgresBackend::connect(&db.settings).await.unwrap();
        let b = PostgresBackend::connect(&db.settings).await.unwrap();
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
        let db = testdb::postgres().await;
        let first = PostgresBackend::connect(&PgSettings {
            users_table: "other".into(),
            ..db.settings.clone()
        })
        .await
        .unwrap();
        sqlx::raw_sql(include_str!("../../../sql/postgresql/20190828.sql"))
            .execute(first.pool())
            .await
            .expect("sql/postgresql/20190828.sql applies (twice is harmless)");
        first.close().await;
        let b = PostgresBackend::connect(&db.settings).await.unwrap();
        assert_eq!(b.schema_version().await.unwrap(), SCHEMA_VERSION);
        crate::conformance::crud_round_trip(Arc::new(b.clone())).await;
        b.close().await;
    }

    #[tokio::test]
    async fn unreachable_server_names_driver_host_and_port() {
        let s = PgSettings {
            host: "127.0.0.1".into(),
            port: 1,
            name: "x".into(),
            pool: crate::sql::PoolSettings {
                connect_timeout: Duration::from_secs(2),
                ..Default::default()
            },
            ..PgSettings::default()
        };
        match PostgresBackend::connect(&s).await {
            Err(ProviderError::Backend(msg)) => {
                assert!(
                    msg.contains("postgresql") && msg.contains("127.0.0.1:1"),
                    "{msg}"
                )
            }
            other => panic!("expected Backend error, got {other:?}"),
        }
        let bad_table = PgSettings {
            users_table: "users; DROP TABLE x".into(),
            ..s
        };
        match PostgresBackend::connect(&bad_table).await {
            Err(ProviderError::Backend(msg)) => assert!(msg.contains("table name"), "{msg}"),
            other => panic!("expected Backend error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn foreign_table_layout_is_refused() {
        let db = testdb::postgres().await;
        let first = PostgresBackend::connect(&PgSettings {
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
        match PostgresBackend::connect(&db.settings).await {
            Err(ProviderError::Backend(msg)) => assert!(msg.contains("layout"), "{msg}"),
            other => panic!("expected Backend error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn pool_settings_reach_the_pool_and_the_session() {
        let db = testdb::postgres().await;
        let s = PgSettings {
            pool: crate::sql::PoolSettings {
                pool_size: 3,
                connect_timeout: Duration::from_secs(4),
                statement_timeout: Some(Duration::from_secs(2)),
            },
            ..db.settings.clone()
        };
        let b = PostgresBackend::connect(&s).await.unwrap();
        assert_eq!(b.pool().options().get_max_connections(), 3);
        assert_eq!(
            b.pool().options().get_acquire_timeout(),
            Duration::from_secs(4)
        );
        let shown: String = sqlx::query_scalar("SHOW statement_timeout")
            .fetch_one(b.pool())
            .await
            .unwrap();
        assert_eq!(shown, "2s");
        // A statement running longer is cancelled by the server.
        let err = sqlx::query("SELECT pg_sleep(5)")
            .execute(b.pool())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("statement timeout"), "{err}");
        b.close().await;
        let unlimited = PgSettings {
            pool: crate::sql::PoolSettings {
                statement_timeout: None,
                ..Default::default()
            },
            ..db.settings.clone()
        };
        let b = PostgresBackend::connect(&unlimited).await.unwrap();
        let shown: String = sqlx::query_scalar("SHOW statement_timeout")
            .fetch_one(b.pool())
            .await
            .unwrap();
        assert_eq!(shown, "0");
        assert_eq!(
            b.pool().options().get_max_connections(),
            crate::sql::default_pool_size()
        );
        b.close().await;
    }

    #[test]
    fn keyword_value_connection_strings() {
        let o = parse_keyword_value(
            "host='db.example' port=6543 dbname='my db' user=u password='p\\'w' \
             sslmode=verify-full connect_timeout=10",
        )
        .unwrap();
        assert_eq!(o.get_host(), "db.example");
        assert_eq!(o.get_port(), 6543);
        assert_eq!(o.get_database(), Some("my db"));
        assert_eq!(o.get_username(), "u");
        assert!(matches!(o.get_ssl_mode(), PgSslMode::VerifyFull));
        assert!(parse_keyword_value("host").is_err());
        assert!(parse_keyword_value("host='x").is_err());
        assert!(parse_keyword_value("bogus=1").is_err());
        assert!(parse_keyword_value("port=abc").is_err());
    }

    #[test]
    fn settings_map_to_options() {
        let s = PgSettings {
            host: "10.0.0.1".into(),
            port: 0,
            name: "sftp".into(),
            username: "me".into(),
            sslmode: 2,
            ..PgSettings::default()
        };
        let o = connect_options(&s).unwrap();
        assert_eq!(o.get_host(), "10.0.0.1");
        assert_eq!(o.get_port(), 5432);
        assert_eq!(o.get_database(), Some("sftp"));
        assert_eq!(o.get_username(), "me");
        assert!(matches!(o.get_ssl_mode(), PgSslMode::VerifyCa));
        let url = PgSettings {
            connection_string: "postgres://a@h2:7777/d2?sslmode=require".into(),
            ..s.clone()
        };
        let o = connect_options(&url).unwrap();
        assert_eq!((o.get_host(), o.get_port()), ("h2", 7777));
        assert!(matches!(o.get_ssl_mode(), PgSslMode::Require));
        assert!(
            connect_options(&PgSettings {
                sslmode: 4,
                ..s.clone()
            })
            .is_err()
        );
    }
}
