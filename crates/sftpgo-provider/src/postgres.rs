//! PostgreSQL backend (sqlx) on SFTPGo 0.9's table layout, so existing 0.9 databases are used
//! as they are: the [`Pg`] dialect of [`SqlBackend`].
//!
//! [`PostgresBackend::connect`] creates the users table (and a one-row `schema_version` table)
//! when missing, under a transaction-scoped advisory lock so that several instances starting
//! together do not race. An existing table is adopted without changes if it has every column.
//! Listing orders usernames by byte order (`COLLATE "C"`), like the SQLite backend.

use std::str::FromStr;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgQueryResult, PgSslMode};

use crate::sql::{
    ConnectOptionsOf, Dialect, ServerDialect, ServerSettings, SqlBackend, schema_statements,
};
use crate::{ProviderError, Result};

/// PostgreSQL connection settings (`port` 0 means 5432).
pub type PgSettings = ServerSettings;

/// A users table in a PostgreSQL database.
pub type PostgresBackend = SqlBackend<Pg>;

/// Key of the advisory lock held while creating the schema ("sftpgo" in ASCII).
const SCHEMA_LOCK_KEY: i64 = 0x7366_7470_676f;

/// PostgreSQL's SQL dialect.
#[derive(Debug, Clone, Copy)]
pub struct Pg;

impl Dialect for Pg {
    type DB = sqlx::Postgres;
    const DRIVER: &'static str = "postgresql";
    const ORDER_BY: &'static str = "username COLLATE \"C\"";
    const AUTO_ID: &'static str = "serial NOT NULL PRIMARY KEY";
    const INSERT_RETURNING: bool = true;

    fn placeholder(n: usize) -> String {
        format!("${n}")
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    fn last_insert_id(_: &PgQueryResult) -> Option<i64> {
        None
    }
}

impl ServerDialect for Pg {
    fn connect_options(settings: &ServerSettings) -> Result<PgConnectOptions> {
        connect_options(settings)
    }

    fn target(o: &ConnectOptionsOf<Self>) -> String {
        crate::sql::server_target(o.get_host(), o.get_port(), o.get_database())
    }

    async fn create_schema(backend: &PostgresBackend, table: &str) -> Result<()> {
        let ctx = |e| backend.err("cannot create the schema", e);
        let mut tx = backend.pool().begin().await.map_err(ctx)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SCHEMA_LOCK_KEY)
            .execute(&mut *tx)
            .await
            .map_err(ctx)?;
        let stmts = schema_statements::<Self>(
            table,
            create_table_sql(table),
            "PRIMARY KEY CHECK (id = 1)",
            ("INSERT", " ON CONFLICT (id) DO NOTHING"),
            false,
        );
        for sql in &stmts {
            sqlx::query(sql).execute(&mut *tx).await.map_err(ctx)?;
        }
        tx.commit().await.map_err(ctx)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// SFTPGo 0.9's `sql/postgresql` schema.
    const SFTPGO_09_SQL: &str = r#"CREATE TABLE "users" ("id" serial NOT NULL PRIMARY KEY, "username" varchar(255) NOT NULL UNIQUE, "password" varchar(255) NULL, "public_keys" text NULL, "home_dir" varchar(255) NOT NULL, "uid" integer NOT NULL, "gid" integer NOT NULL, "max_sessions" integer NOT NULL, "quota_size" bigint NOT NULL, "quota_files" integer NOT NULL, "permissions" text NOT NULL, "used_quota_size" bigint NOT NULL, "used_quota_files" integer NOT NULL, "last_quota_update" bigint NOT NULL, "upload_bandwidth" integer NOT NULL, "download_bandwidth" integer NOT NULL);"#;

    crate::sql::server_backend_tests!(
        Pg,
        crate::sql::testdb::postgres,
        SFTPGO_09_SQL,
        concat!(
            include_str!("../../../sql/postgresql/20190828.sql"),
            include_str!("../../../sql/postgresql/20261206.sql"),
            include_str!("../../../sql/postgresql/20261207.sql")
        )
    );

    #[tokio::test]
    async fn pool_settings_reach_the_pool_and_the_session() {
        let Some(db) = crate::sql::testdb::postgres().await else {
            return;
        };
        let (limited, unlimited) = backends_with_pool_settings(&db.settings).await;
        let show = |b: &B| {
            let pool = b.pool().clone();
            async move {
                sqlx::query_scalar::<_, String>("SHOW statement_timeout")
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(show(&limited).await, "2s");
        assert_eq!(show(&unlimited).await, "0");
        // A statement running longer is cancelled by the server.
        let err = sqlx::query("SELECT pg_sleep(5)")
            .execute(limited.pool())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("statement timeout"), "{err}");
        limited.close().await;
        unlimited.close().await;
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
