//! MySQL/MariaDB backend (sqlx) on SFTPGo 0.9's table layout, so existing 0.9 databases are
//! used as they are: the [`MySql`] dialect of [`SqlBackend`].
//!
//! [`MySqlBackend::connect`] creates the users table (and a one-row `schema_version` table)
//! when missing, holding a named lock (`GET_LOCK`) so that several instances starting together
//! do not race. A new table uses `utf8mb4` with the `utf8mb4_bin` collation so that usernames
//! are case-sensitive and listed in byte order, like the other backends; an existing 0.9
//! table is adopted without changes (with its own collation).

use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::mysql::{MySqlConnectOptions, MySqlQueryResult, MySqlSslMode};

use crate::sql::{
    ConnectOptionsOf, Dialect, PoolSettings, ServerDialect, ServerSettings, SqlBackend,
    schema_statements,
};
use crate::{ProviderError, Result};

/// MySQL/MariaDB connection settings (`port` 0 means 3306).
pub type MySqlSettings = ServerSettings;

/// A users table in a MySQL or MariaDB database.
pub type MySqlBackend = SqlBackend<MySql>;

/// Name of the lock held while creating the schema.
const SCHEMA_LOCK: &str = "sftpgo_schema";

/// MySQL's and MariaDB's SQL dialect.
#[derive(Debug, Clone, Copy)]
pub struct MySql;

impl Dialect for MySql {
    type DB = sqlx::MySql;
    const DRIVER: &'static str = "mysql";
    const ORDER_BY: &'static str = "username";
    const AUTO_ID: &'static str = "integer AUTO_INCREMENT NOT NULL PRIMARY KEY";
    const TABLE_OPTIONS: &'static str = " DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";
    const INSERT_RETURNING: bool = false;

    fn placeholder(_: usize) -> String {
        "?".to_owned()
    }

    fn rows_affected(result: &MySqlQueryResult) -> u64 {
        result.rows_affected()
    }

    fn last_insert_id(result: &MySqlQueryResult) -> Option<i64> {
        i64::try_from(result.last_insert_id()).ok()
    }
}

impl ServerDialect for MySql {
    fn connect_options(settings: &ServerSettings) -> Result<MySqlConnectOptions> {
        connect_options(settings)
    }

    fn target(o: &ConnectOptionsOf<Self>) -> String {
        crate::sql::server_target(o.get_host(), o.get_port(), o.get_database())
    }

    fn pool_options(settings: &PoolSettings) -> sqlx::pool::PoolOptions<sqlx::MySql> {
        let timeout = settings.statement_timeout;
        settings
            .server_pool_options()
            .after_connect(move |conn, _| {
                Box::pin(async move { set_statement_timeout(conn, timeout).await })
            })
    }

    async fn create_schema(backend: &MySqlBackend, table: &str) -> Result<()> {
        let ctx = |e| backend.err("cannot create the schema", e);
        let mut conn = backend.pool().acquire().await.map_err(ctx)?;
        let locked: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 30)")
            .bind(SCHEMA_LOCK)
            .fetch_one(&mut *conn)
            .await
            .map_err(ctx)?;
        if locked != Some(1) {
            return Err(backend.err(
                "cannot create the schema",
                crate::sql::DbError::Data(format!("lock {SCHEMA_LOCK:?} not obtained within 30 s")),
            ));
        }
        let stmts = schema_statements::<Self>(
            table,
            create_table_sql(table),
            "PRIMARY KEY",
            ("INSERT IGNORE", ""),
            true,
        );
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
        created
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// SFTPGo 0.9's `sql/mysql` schema.
    const SFTPGO_09_SQL: &str = r#"CREATE TABLE `users` (`id` integer AUTO_INCREMENT NOT NULL PRIMARY KEY, `username` varchar(255) NOT NULL UNIQUE, `password` varchar(255) NULL, `public_keys` longtext NULL, `home_dir` varchar(255) NOT NULL, `uid` integer NOT NULL, `gid` integer NOT NULL, `max_sessions` integer NOT NULL, `quota_size` bigint NOT NULL, `quota_files` integer NOT NULL, `permissions` longtext NOT NULL, `used_quota_size` bigint NOT NULL, `used_quota_files` integer NOT NULL, `last_quota_update` bigint NOT NULL, `upload_bandwidth` integer NOT NULL, `download_bandwidth` integer NOT NULL);"#;

    crate::sql::server_backend_tests!(
        MySql,
        crate::sql::testdb::mysql,
        SFTPGO_09_SQL,
        concat!(
            include_str!("../../../sql/mysql/20190828.sql"),
            include_str!("../../../sql/mysql/20261206.sql"),
            include_str!("../../../sql/mysql/20261207.sql")
        )
    );

    #[tokio::test]
    async fn pool_settings_reach_the_pool_and_the_session() {
        let Some(db) = crate::sql::testdb::mysql().await else {
            return;
        };
        let (limited, unlimited) = backends_with_pool_settings(&db.settings).await;
        // MariaDB (the server here) takes max_statement_time, in seconds.
        let limit = |b: &B| {
            let pool = b.pool().clone();
            async move {
                sqlx::query_scalar::<_, f64>("SELECT @@SESSION.max_statement_time")
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(limit(&limited).await, 2.0);
        assert_eq!(limit(&unlimited).await, 0.0);
        limited.close().await;
        unlimited.close().await;
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
