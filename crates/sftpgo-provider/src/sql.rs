//! What the PostgreSQL and MySQL backends share: their connection settings, the SQL text
//! (with the validated table name interpolated once) and the JSON columns' encoding.

use std::time::Duration;

use crate::{Permission, ProviderError, Result, User};

/// Connection settings of a database server (`data_provider` keys of the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// Database name.
    pub name: String,
    pub username: String,
    pub password: String,
    /// 0 disable, 1 require, 2 verify-ca (MySQL: skip-verify), 3 verify-full (MySQL:
    /// preferred), as in SFTPGo 0.9.
    pub sslmode: u8,
    /// When not empty, replaces host, port, name, username, password and sslmode.
    pub connection_string: String,
    /// Users table name (letters, digits and underscores).
    pub users_table: String,
    /// Pool size and timeouts.
    pub pool: PoolSettings,
}

/// Pool size and timeouts of an SQL backend (`data_provider.pool_size`, `connect_timeout`,
/// `statement_timeout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// Largest number of pooled connections; 0 = the driver's default.
    pub pool_size: u32,
    /// Longest wait for a new connection or a free pooled one (SQLite: also the busy
    /// timeout, how long a statement waits for a locked database).
    pub connect_timeout: Duration,
    /// Longest a statement may run (`None`: no limit): PostgreSQL `statement_timeout`,
    /// MariaDB `max_statement_time`, MySQL `max_execution_time` (SELECTs only).
    pub statement_timeout: Option<Duration>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            pool_size: 0,
            connect_timeout: Duration::from_secs(10),
            statement_timeout: Some(Duration::from_secs(30)),
        }
    }
}

impl PoolSettings {
    /// `pool_size`, or `driver_default` when it is 0.
    pub fn max_connections(&self, driver_default: u32) -> u32 {
        if self.pool_size == 0 {
            driver_default
        } else {
            self.pool_size
        }
    }

    /// Pool options of a database server backend: no idle minimum (a pool that lost its
    /// server holds nothing and reconnects on demand), connections recycled after 30
    /// minutes or 10 idle ones.
    pub fn server_pool_options<DB: sqlx::Database>(&self) -> sqlx::pool::PoolOptions<DB> {
        sqlx::pool::PoolOptions::new()
            .max_connections(self.max_connections(default_pool_size()))
            .min_connections(0)
            .acquire_timeout(self.connect_timeout)
            .max_lifetime(Duration::from_secs(1800))
            .idle_timeout(Duration::from_secs(600))
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 0,
            name: "sftpgo".into(),
            username: String::new(),
            password: String::new(),
            sslmode: 0,
            connection_string: String::new(),
            users_table: "users".into(),
            pool: PoolSettings::default(),
        }
    }
}

/// The number of CPUs (SFTPGo 0.9's pool size), at least 4 and at most 32.
pub fn default_pool_size() -> u32 {
    let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
    u32::try_from(cpus).unwrap_or(32).clamp(4, 32)
}

/// Every column of the users table, in SELECT order.
pub(crate) const COLUMNS: &str = "id, username, password, public_keys, home_dir, uid, gid, \
     max_sessions, quota_size, quota_files, permissions, used_quota_size, used_quota_files, \
     last_quota_update, upload_bandwidth, download_bandwidth";

/// SQL text with the (validated) table name interpolated once.
#[derive(Debug, Clone)]
pub(crate) struct Statements {
    pub by_username: String,
    pub by_id: String,
    pub insert: String,
    pub update: String,
    pub delete: String,
    pub list_asc: String,
    pub list_desc: String,
    pub list_filtered: String,
    pub quota_delta: String,
    pub quota_reset: String,
    pub probe: String,
}

impl Statements {
    /// `p(n)` renders the n-th (1-based) placeholder; `order_by` is the ORDER BY expression
    /// (e.g. a byte-order collation of `username`).
    pub fn new(t: &str, p: impl Fn(usize) -> String, order_by: &str, returning: &str) -> Self {
        let ps = |from: usize, n: usize| -> String {
            (from..from + n).map(&p).collect::<Vec<_>>().join(", ")
        };
        Self {
            by_username: format!("SELECT {COLUMNS} FROM {t} WHERE username = {}", p(1)),
            by_id: format!("SELECT {COLUMNS} FROM {t} WHERE id = {}", p(1)),
            insert: format!(
                "INSERT INTO {t} (username, password, public_keys, home_dir, uid, gid, \
                 max_sessions, quota_size, quota_files, permissions, upload_bandwidth, \
                 download_bandwidth, used_quota_size, used_quota_files, last_quota_update) \
                 VALUES ({}, 0, 0, 0){returning}",
                ps(1, 12)
            ),
            update: format!(
                "UPDATE {t} SET password = {}, public_keys = {}, home_dir = {}, uid = {}, \
                 gid = {}, max_sessions = {}, quota_size = {}, quota_files = {}, \
                 permissions = {}, upload_bandwidth = {}, download_bandwidth = {} WHERE id = {}",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6),
                p(7),
                p(8),
                p(9),
                p(10),
                p(11),
                p(12)
            ),
            delete: format!("DELETE FROM {t} WHERE id = {}", p(1)),
            list_asc: format!(
                "SELECT {COLUMNS} FROM {t} ORDER BY {order_by} ASC LIMIT {} OFFSET {}",
                p(1),
                p(2)
            ),
            list_desc: format!(
                "SELECT {COLUMNS} FROM {t} ORDER BY {order_by} DESC LIMIT {} OFFSET {}",
                p(1),
                p(2)
            ),
            list_filtered: format!(
                "SELECT {COLUMNS} FROM {t} WHERE username = {} ORDER BY {order_by} LIMIT {} \
                 OFFSET {}",
                p(1),
                p(2),
                p(3)
            ),
            quota_delta: format!(
                "UPDATE {t} SET used_quota_size = used_quota_size + {}, \
                 used_quota_files = used_quota_files + {}, last_quota_update = {} \
                 WHERE username = {}",
                p(1),
                p(2),
                p(3),
                p(4)
            ),
            quota_reset: format!(
                "UPDATE {t} SET used_quota_size = {}, used_quota_files = {}, \
                 last_quota_update = {} WHERE username = {}",
                p(1),
                p(2),
                p(3),
                p(4)
            ),
            probe: format!("SELECT {COLUMNS} FROM {t} LIMIT 0"),
        }
    }
}

/// Refuses table names that cannot be interpolated into SQL as bare identifiers.
pub(crate) fn check_table_name(name: &str) -> Result<()> {
    if crate::sqlite::is_valid_table_name(name) {
        Ok(())
    } else {
        Err(ProviderError::Backend(format!(
            "invalid users table name {name:?}: use letters, digits and underscores (not \
             starting with a digit, at most 64 characters, not {:?})",
            crate::sqlite::SCHEMA_VERSION_TABLE
        )))
    }
}

/// `public_keys` column value: NULL when there are none, like SFTPGo 0.9.
pub(crate) fn json_keys(user: &User) -> Result<Option<String>> {
    if user.public_keys.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(&user.public_keys)
        .map(Some)
        .map_err(|e| ProviderError::Backend(format!("cannot encode public keys: {e}")))
}

pub(crate) fn json_permissions(user: &User) -> Result<String> {
    serde_json::to_string(&user.permissions)
        .map_err(|e| ProviderError::Backend(format!("cannot encode permissions: {e}")))
}

/// Decodes the JSON columns of `username`'s row.
pub(crate) fn decode_json_columns(
    username: &str,
    public_keys: Option<&str>,
    permissions: &str,
) -> std::result::Result<(Vec<String>, Vec<Permission>), String> {
    let keys = match public_keys.map(str::trim) {
        None | Some("") | Some("null") => Vec::new(),
        Some(json) => serde_json::from_str(json).map_err(|e| {
            format!("user {username:?}: public_keys is not a JSON string array: {e}")
        })?,
    };
    let perms = serde_json::from_str(permissions)
        .map_err(|e| format!("user {username:?}: invalid permissions {permissions:?}: {e}"))?;
    Ok((keys, perms))
}

/// Decodes a row of [`COLUMNS`] for a backend whose integer columns may be 32 or 64 bits.
macro_rules! decode_user_row {
    ($row:expr) => {{
        use sqlx::Row as _;
        let row = $row;
        let int = |col: &str| -> std::result::Result<i64, String> {
            match row.try_get::<i64, _>(col) {
                Ok(v) => Ok(v),
                Err(_) => row
                    .try_get::<i32, _>(col)
                    .map(i64::from)
                    .map_err(|e| e.to_string()),
            }
        };
        // MySQL reports columns with a binary collation (`utf8mb4_bin`) as VARBINARY.
        let text = |col: &str| -> std::result::Result<Option<String>, String> {
            match row.try_get::<Option<String>, _>(col) {
                Ok(v) => Ok(v),
                Err(_) => row
                    .try_get::<Option<Vec<u8>>, _>(col)
                    .map_err(|e| e.to_string())?
                    .map(|b| String::from_utf8(b).map_err(|_| format!("column {col} is not UTF-8")))
                    .transpose(),
            }
        };
        let required = |col: &str| -> std::result::Result<String, String> {
            text(col)?.ok_or_else(|| format!("column {col} is NULL"))
        };
        (|| -> std::result::Result<$crate::User, String> {
            let username = required("username")?;
            let password = text("password")?;
            let public_keys = text("public_keys")?;
            let permissions = required("permissions")?;
            let (public_keys, permissions) =
                $crate::sql::decode_json_columns(&username, public_keys.as_deref(), &permissions)?;
            Ok($crate::User {
                id: int("id")?,
                password: password.filter(|p| !p.is_empty()),
                public_keys,
                home_dir: required("home_dir")?,
                uid: int("uid")?,
                gid: int("gid")?,
                max_sessions: int("max_sessions")?,
                quota_size: int("quota_size")?,
                quota_files: int("quota_files")?,
                permissions,
                used_quota_size: int("used_quota_size")?,
                used_quota_files: int("used_quota_files")?,
                last_quota_update: int("last_quota_update")?,
                upload_bandwidth: int("upload_bandwidth")?,
                download_bandwidth: int("download_bandwidth")?,
                username,
            })
        })()
    }};
}
pub(crate) use decode_user_row;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_settings_map_to_server_pool_options() {
        let p = PoolSettings {
            pool_size: 9,
            connect_timeout: Duration::from_secs(3),
            statement_timeout: None,
        };
        let o = p.server_pool_options::<sqlx::Postgres>();
        assert_eq!(o.get_max_connections(), 9);
        assert_eq!(o.get_min_connections(), 0);
        assert_eq!(o.get_acquire_timeout(), Duration::from_secs(3));
        let d = PoolSettings::default().server_pool_options::<sqlx::MySql>();
        assert_eq!(d.get_max_connections(), default_pool_size());
        assert_eq!(d.get_acquire_timeout(), Duration::from_secs(10));
        assert!((4..=32).contains(&default_pool_size()));
    }
}

/// Throw-away databases on the local PostgreSQL (127.0.0.1:5432, user `postgres`, trust
/// auth) and MariaDB (127.0.0.1:3306, `root` without password) servers, one per test, for
/// this crate's tests and, through the `conformance` feature, other crates' tests.
#[cfg(any(test, feature = "conformance"))]
pub mod testdb {
    use super::ServerSettings;
    use sqlx::Connection;

    pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
    pub const MYSQL_ADMIN_URL: &str = "mysql://root@127.0.0.1:3306/test";

    /// A database that is dropped (best effort) when this guard is dropped.
    pub struct TestDb {
        pub settings: ServerSettings,
        drop_sql: String,
        admin_url: &'static str,
    }

    fn unique_name() -> String {
        format!("sftpgo_t_{:016x}", rand::random::<u64>())
    }

    /// A new, empty PostgreSQL database.
    pub async fn postgres() -> TestDb {
        let name = unique_name();
        let mut conn = sqlx::PgConnection::connect(PG_ADMIN_URL)
            .await
            .expect("PostgreSQL at 127.0.0.1:5432 (user postgres, database test)");
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create database");
        TestDb {
            settings: ServerSettings {
                host: "127.0.0.1".into(),
                port: 5432,
                name: name.clone(),
                username: "postgres".into(),
                ..ServerSettings::default()
            },
            drop_sql: format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            admin_url: PG_ADMIN_URL,
        }
    }

    /// A new, empty MariaDB/MySQL database.
    pub async fn mysql() -> TestDb {
        let name = unique_name();
        let mut conn = sqlx::MySqlConnection::connect(MYSQL_ADMIN_URL)
            .await
            .expect("MariaDB at 127.0.0.1:3306 (user root, database test)");
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create database");
        TestDb {
            settings: ServerSettings {
                host: "127.0.0.1".into(),
                port: 3306,
                name: name.clone(),
                username: "root".into(),
                ..ServerSettings::default()
            },
            drop_sql: format!("DROP DATABASE IF EXISTS {name}"),
            admin_url: MYSQL_ADMIN_URL,
        }
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            let sql = std::mem::take(&mut self.drop_sql);
            let url = self.admin_url;
            // Runs on its own thread and runtime: drop may happen inside a runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async move {
                    if url.starts_with("postgres") {
                        let mut c = sqlx::PgConnection::connect(url).await.ok()?;
                        sqlx::raw_sql(&sql).execute(&mut c).await.ok().map(|_| ())
                    } else {
                        let mut c = sqlx::MySqlConnection::connect(url).await.ok()?;
                        sqlx::raw_sql(&sql).execute(&mut c).await.ok().map(|_| ())
                    }
                })
            })
            .join();
        }
    }
}
