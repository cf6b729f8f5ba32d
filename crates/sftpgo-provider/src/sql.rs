//! The SQL backends (SQLite, PostgreSQL, MySQL/MariaDB) as one implementation:
//! [`SqlBackend`] over a [`Dialect`] (placeholders, byte-order collation, how an INSERT
//! reports the new row) holds the statements, row mapping, listing and quota updates;
//! each engine's module keeps only its connect options and schema creation. Also the
//! connection and pool settings, and throw-away test databases.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row as _, Type};

use crate::sqlite::{SCHEMA_VERSION, SCHEMA_VERSION_TABLE};
use crate::{Backend, Permission, ProviderError, QuotaUpdate, Result, SortOrder, User, UserQuery};

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
     last_quota_update, upload_bandwidth, download_bandwidth, filesystem, virtual_folders";

/// What differs between the SQL engines that the shared code needs to know.
pub trait Dialect: Send + Sync + Sized + 'static {
    /// The sqlx driver.
    type DB: Database;
    /// Driver name for logs and errors ("sqlite", "postgresql", "mysql").
    const DRIVER: &'static str;
    /// The ORDER BY expression that lists usernames in byte order.
    const ORDER_BY: &'static str;
    /// The column definition of an id the database assigns.
    const AUTO_ID: &'static str;
    /// What follows a CREATE TABLE's column list (MySQL: byte-order text).
    const TABLE_OPTIONS: &'static str = "";
    /// Whether `INSERT ... RETURNING <columns>` gives back the stored row; otherwise the
    /// new id comes from the statement result ([`Dialect::last_insert_id`]).
    const INSERT_RETURNING: bool;
    /// The n-th (1-based) bind placeholder.
    fn placeholder(n: usize) -> String;
    fn rows_affected(result: &<Self::DB as Database>::QueryResult) -> u64;
    /// The id the last INSERT assigned (engines without `INSERT_RETURNING`).
    fn last_insert_id(result: &<Self::DB as Database>::QueryResult) -> Option<i64>;
}

/// A bind value: the users table has only integer and (nullable) text columns.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Int(i64),
    Text(Option<&'a str>),
}

/// A failed database call: the driver's error, or a value the shared code cannot use.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error("{0}")]
    Data(String),
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

pub type DbResult<T> = std::result::Result<T, DbError>;
type Row<D> = <<D as Dialect>::DB as Database>::Row;
type QueryResult<D> = <<D as Dialect>::DB as Database>::QueryResult;

/// The typed calls the shared code makes, implemented once below for every [`Dialect`]
/// whose driver supports the column types of the users table.
pub trait Engine: Dialect {
    #[doc(hidden)]
    fn fetch_rows(
        pool: &Pool<Self::DB>,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = DbResult<Vec<Row<Self>>>> + Send;
    #[doc(hidden)]
    fn execute(
        pool: &Pool<Self::DB>,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = DbResult<QueryResult<Self>>> + Send;
    /// Decodes a row of [`COLUMNS`].
    #[doc(hidden)]
    fn decode_user(row: &Row<Self>) -> std::result::Result<User, String>;
    /// The integer in column `index` of `row`, whether the engine made it 32 or 64 bits.
    #[doc(hidden)]
    fn int_at(row: &Row<Self>, index: usize) -> DbResult<i64>;
    /// The text in column `index` of `row` (MySQL may report it as bytes).
    #[doc(hidden)]
    fn text_at(row: &Row<Self>, index: usize) -> DbResult<String>;
}

fn bind_all<'q, DB: Database>(
    mut q: sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>,
    args: &[Arg<'_>],
) -> sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    i64: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB> + Type<DB>,
{
    for arg in args {
        q = match *arg {
            Arg::Int(v) => q.bind(v),
            Arg::Text(t) => q.bind(t.map(str::to_owned)),
        };
    }
    q
}

impl<D> Engine for D
where
    D: Dialect,
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    for<'q> <D::DB as Database>::Arguments<'q>: IntoArguments<'q, D::DB>,
    for<'q> i64: Encode<'q, D::DB>,
    for<'q> Option<String>: Encode<'q, D::DB>,
    i64: Type<D::DB> + for<'r> Decode<'r, D::DB>,
    i32: Type<D::DB> + for<'r> Decode<'r, D::DB>,
    String: Type<D::DB> + for<'r> Decode<'r, D::DB>,
    Vec<u8>: Type<D::DB> + for<'r> Decode<'r, D::DB>,
    usize: ColumnIndex<Row<D>>,
    for<'s> &'s str: ColumnIndex<Row<D>>,
{
    async fn fetch_rows(
        pool: &Pool<Self::DB>,
        sql: &str,
        args: &[Arg<'_>],
    ) -> DbResult<Vec<Row<Self>>> {
        Ok(bind_all(sqlx::query(sql), args).fetch_all(pool).await?)
    }

    async fn execute(
        pool: &Pool<Self::DB>,
        sql: &str,
        args: &[Arg<'_>],
    ) -> DbResult<QueryResult<Self>> {
        Ok(bind_all(sqlx::query(sql), args).execute(pool).await?)
    }

    fn decode_user(row: &Row<Self>) -> std::result::Result<User, String> {
        let int = |col: &str| -> std::result::Result<i64, String> {
            row.try_get::<i64, _>(col)
                .or_else(|_| row.try_get::<i32, _>(col).map(i64::from))
                .map_err(|e| e.to_string())
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
        let username = required("username")?;
        let password = text("password")?;
        let public_keys = text("public_keys")?;
        let permissions = required("permissions")?;
        let (public_keys, permissions) =
            decode_json_columns(&username, public_keys.as_deref(), &permissions)?;
        let filesystem = decode_filesystem(&username, text("filesystem")?.as_deref())?;
        let virtual_folders =
            decode_virtual_folders(&username, text("virtual_folders")?.as_deref())?;
        Ok(User {
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
            filesystem,
            virtual_folders,
            username,
        })
    }

    fn int_at(row: &Row<Self>, index: usize) -> DbResult<i64> {
        Ok(row
            .try_get::<i64, _>(index)
            .or_else(|_| row.try_get::<i32, _>(index).map(i64::from))?)
    }

    fn text_at(row: &Row<Self>, index: usize) -> DbResult<String> {
        match row.try_get::<String, _>(index) {
            Ok(v) => Ok(v),
            Err(_) => String::from_utf8(row.try_get::<Vec<u8>, _>(index)?)
                .map_err(|_| DbError::Data(format!("column {index} is not UTF-8"))),
        }
    }
}

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
    pub schema_version: String,
    pub defender: DefenderStatements,
    pub folders: FolderStatements,
}

impl Statements {
    pub fn new<D: Dialect>(t: &str) -> Self {
        let p = D::placeholder;
        let order_by = D::ORDER_BY;
        let returning = if D::INSERT_RETURNING {
            format!(" RETURNING {COLUMNS}")
        } else {
            String::new()
        };
        let values = (1..=14).map(p).collect::<Vec<_>>().join(", ");
        let updated = [
            "password",
            "public_keys",
            "home_dir",
            "uid",
            "gid",
            "max_sessions",
            "quota_size",
            "quota_files",
            "permissions",
            "upload_bandwidth",
            "download_bandwidth",
            "filesystem",
            "virtual_folders",
        ]
        .iter()
        .enumerate()
        .map(|(i, col)| format!("{col} = {}", p(i + 1)))
        .collect::<Vec<_>>()
        .join(", ");
        let quota = |used_size: &str, used_files: &str| {
            format!(
                "UPDATE {t} SET used_quota_size = {used_size}{}, used_quota_files = \
                 {used_files}{}, last_quota_update = {} WHERE username = {}",
                p(1),
                p(2),
                p(3),
                p(4)
            )
        };
        Self {
            by_username: format!("SELECT {COLUMNS} FROM {t} WHERE username = {}", p(1)),
            by_id: format!("SELECT {COLUMNS} FROM {t} WHERE id = {}", p(1)),
            insert: format!(
                "INSERT INTO {t} (username, password, public_keys, home_dir, uid, gid, \
                 max_sessions, quota_size, quota_files, permissions, upload_bandwidth, \
                 download_bandwidth, filesystem, virtual_folders, used_quota_size, \
                 used_quota_files, last_quota_update) \
                 VALUES ({values}, 0, 0, 0){returning}"
            ),
            update: format!("UPDATE {t} SET {updated} WHERE id = {}", p(14)),
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
            quota_delta: quota("used_quota_size + ", "used_quota_files + "),
            quota_reset: quota("", ""),
            probe: format!("SELECT {COLUMNS} FROM {t} LIMIT 0"),
            schema_version: format!("SELECT version FROM {SCHEMA_VERSION_TABLE} WHERE id = 1"),
            defender: DefenderStatements::new::<D>(),
            folders: FolderStatements::new::<D>(t),
        }
    }
}

/// A users table in an SQL database: everything but connecting and creating the schema is
/// this one implementation for every engine.
pub struct SqlBackend<D: Dialect> {
    pool: Pool<D::DB>,
    /// The database file, or "host:port/database", for messages.
    target: String,
    sql: Statements,
    /// Bound on every call: waiting for a connection plus the statement timeout, so a
    /// database that stops answering cannot hang a caller (`None`: no statement timeout).
    call_timeout: Option<Duration>,
}

impl<D: Dialect> Clone for SqlBackend<D> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            target: self.target.clone(),
            sql: self.sql.clone(),
            call_timeout: self.call_timeout,
        }
    }
}

impl<D: Dialect> std::fmt::Debug for SqlBackend<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlBackend")
            .field("driver", &D::DRIVER)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl<D: Engine> SqlBackend<D> {
    /// Wraps a connected pool; `users_table` must have passed [`check_table_name`].
    pub(crate) fn new(
        pool: Pool<D::DB>,
        target: String,
        users_table: &str,
        settings: &PoolSettings,
    ) -> Self {
        let call_timeout = settings
            .statement_timeout
            .map(|s| pool.options().get_acquire_timeout() + s);
        Self {
            pool,
            target,
            sql: Statements::new::<D>(users_table),
            call_timeout,
        }
    }

    /// The connection pool (for tests and tools).
    pub fn pool(&self) -> &Pool<D::DB> {
        &self.pool
    }

    /// The database file, or "host:port/database".
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Closes the pool (waits for connections in use).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The layout version recorded in the database.
    pub async fn schema_version(&self) -> Result<i64> {
        let rows = self
            .call(D::fetch_rows(&self.pool, &self.sql.schema_version, &[]))
            .await
            .map_err(|e| self.err("query failed", e))?;
        let row = rows.first().ok_or_else(|| {
            self.err(
                "query failed",
                DbError::Data(format!("{SCHEMA_VERSION_TABLE} has no row")),
            )
        })?;
        D::int_at(row, 0).map_err(|e| self.err("query failed", e))
    }

    /// Adds the nullable text `column` to the users table `table` unless it is there,
    /// and records layout `version`: version 2 adds `filesystem` (SFTPGo 1.x's name; NULL
    /// = local), version 3 `virtual_folders` (NULL = none). Safe when several instances
    /// start together: an ALTER that fails because another instance just added the column
    /// is no error.
    async fn add_column(&self, table: &str, column: &str, version: i64) -> Result<()> {
        let has_column = || async {
            self.call(D::fetch_rows(
                &self.pool,
                &format!("SELECT {column} FROM {table} LIMIT 0"),
                &[],
            ))
            .await
            .is_ok()
        };
        let failed = |e| {
            self.err(
                &format!("cannot migrate the schema to version {version}"),
                e,
            )
        };
        if !has_column().await {
            let added = self
                .call(D::execute(
                    &self.pool,
                    &format!("ALTER TABLE {table} ADD COLUMN {column} text NULL"),
                    &[],
                ))
                .await;
            match added {
                Ok(_) => {
                    tracing::info!(sender = "data_provider", driver = D::DRIVER, target = %self.target, table, column, version, "schema migrated (column added)")
                }
                Err(e) if !has_column().await => return Err(failed(e)),
                Err(_) => {} // another instance added it meanwhile
            }
        }
        self.call(D::execute(
            &self.pool,
            &format!(
                "UPDATE {SCHEMA_VERSION_TABLE} SET version = {version} WHERE id = 1 AND version < {version}"
            ),
            &[],
        ))
        .await
        .map_err(failed)?;
        Ok(())
    }

    /// After the schema was created or found: refuses a newer layout version and a table
    /// that lacks a column we use.
    pub(crate) async fn check_schema(&self, table: &str) -> Result<()> {
        // Looked at per table, not by the recorded version: one database may hold
        // several users tables (`users_table`) under one version row.
        self.add_column(table, "filesystem", 2).await?;
        self.add_column(table, "virtual_folders", 3).await?;
        let version = self.schema_version().await?;
        if version > SCHEMA_VERSION {
            return Err(ProviderError::Backend(format!(
                "{} database {}: schema version {version} is newer than the supported \
                 version {SCHEMA_VERSION}",
                D::DRIVER,
                self.target
            )));
        }
        self.call(D::fetch_rows(&self.pool, &self.sql.probe, &[]))
            .await
            .map_err(|e| {
                self.err(
                    &format!("table {table:?} does not have SFTPGo's users layout"),
                    e,
                )
            })?;
        Ok(())
    }

    /// An error naming the driver and the database.
    pub(crate) fn err(&self, what: &str, e: impl Into<DbError>) -> ProviderError {
        ProviderError::Backend(format!(
            "{} database {}: {what}: {}",
            D::DRIVER,
            self.target,
            e.into()
        ))
    }

    async fn call<T>(&self, f: impl Future<Output = DbResult<T>>) -> DbResult<T> {
        match self.call_timeout {
            None => f.await,
            Some(limit) => tokio::time::timeout(limit, f)
                .await
                .unwrap_or(Err(DbError::TimedOut(limit))),
        }
    }

    async fn fetch_users(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<User>> {
        let rows = self
            .call(D::fetch_rows(&self.pool, sql, args))
            .await
            .map_err(|e| self.err("query failed", e))?;
        rows.iter()
            .map(|row| D::decode_user(row).map_err(|e| self.err("bad user row", DbError::Data(e))))
            .collect()
    }

    async fn fetch_user(&self, sql: &str, arg: Arg<'_>, missing: String) -> Result<User> {
        self.fetch_users(sql, &[arg])
            .await?
            .into_iter()
            .next()
            .ok_or(ProviderError::NotFound(missing))
    }

    /// Runs a statement that must change a row; `missing` names what was not there.
    async fn change(&self, sql: &str, args: &[Arg<'_>], missing: String) -> Result<()> {
        let result = self
            .call(D::execute(&self.pool, sql, args))
            .await
            .map_err(|e| self.err("query failed", e))?;
        if D::rows_affected(&result) == 0 {
            return Err(ProviderError::NotFound(missing));
        }
        Ok(())
    }
}

/// The columns an insert or update writes, in [`Statements`] order, then `id` for updates.
fn user_args<'a>(
    user: &'a User,
    keys: &'a Option<String>,
    permissions: &'a str,
    filesystem: &'a Option<String>,
    folders: &'a Option<String>,
) -> [Arg<'a>; 13] {
    [
        Arg::Text(user.password.as_deref()),
        Arg::Text(keys.as_deref()),
        Arg::Text(Some(&user.home_dir)),
        Arg::Int(user.uid),
        Arg::Int(user.gid),
        Arg::Int(user.max_sessions),
        Arg::Int(user.quota_size),
        Arg::Int(user.quota_files),
        Arg::Text(Some(permissions)),
        Arg::Int(user.upload_bandwidth),
        Arg::Int(user.download_bandwidth),
        Arg::Text(filesystem.as_deref()),
        Arg::Text(folders.as_deref()),
    ]
}

#[async_trait]
impl<D: Engine> Backend for SqlBackend<D> {
    fn driver(&self) -> &'static str {
        D::DRIVER
    }

    async fn user_by_username(&self, username: &str) -> Result<User> {
        let missing = format!("user {username:?}");
        // No stored username holds NUL (validation refuses control characters), and
        // PostgreSQL text cannot carry it.
        if username.contains('\0') {
            return Err(ProviderError::NotFound(missing));
        }
        self.fetch_user(&self.sql.by_username, Arg::Text(Some(username)), missing)
            .await
    }

    async fn user_by_id(&self, id: i64) -> Result<User> {
        self.fetch_user(&self.sql.by_id, Arg::Int(id), format!("user with id {id}"))
            .await
    }

    async fn insert_user(&self, user: &User) -> Result<User> {
        let (keys, permissions) = (json_keys(user)?, json_permissions(user)?);
        let (fs, folders) = (json_filesystem(user)?, json_virtual_folders(user)?);
        let mut args = vec![Arg::Text(Some(&user.username))];
        args.extend(user_args(user, &keys, &permissions, &fs, &folders));
        let duplicate = |e: DbError| match &e {
            DbError::Sql(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                ProviderError::AlreadyExists(user.username.clone())
            }
            _ => self.err("query failed", e),
        };
        if D::INSERT_RETURNING {
            let rows = self
                .call(D::fetch_rows(&self.pool, &self.sql.insert, &args))
                .await
                .map_err(duplicate)?;
            let row = rows.first().ok_or_else(|| {
                self.err("insert failed", DbError::Data("no row returned".into()))
            })?;
            return D::decode_user(row).map_err(|e| self.err("bad user row", DbError::Data(e)));
        }
        let result = self
            .call(D::execute(&self.pool, &self.sql.insert, &args))
            .await
            .map_err(duplicate)?;
        let id = D::last_insert_id(&result)
            .ok_or_else(|| self.err("insert failed", DbError::Data("no id assigned".into())))?;
        self.user_by_id(id).await
    }

    async fn update_user(&self, user: &User) -> Result<()> {
        let (keys, permissions) = (json_keys(user)?, json_permissions(user)?);
        let (fs, folders) = (json_filesystem(user)?, json_virtual_folders(user)?);
        let mut args = user_args(user, &keys, &permissions, &fs, &folders).to_vec();
        args.push(Arg::Int(user.id));
        self.change(&self.sql.update, &args, format!("user with id {}", user.id))
            .await
    }

    async fn delete_user(&self, id: i64) -> Result<()> {
        self.change(
            &self.sql.delete,
            &[Arg::Int(id)],
            format!("user with id {id}"),
        )
        .await
    }

    async fn list_users(&self, query: &UserQuery) -> Result<Vec<User>> {
        let page = [
            Arg::Int(i64::from(query.limit)),
            Arg::Int(i64::from(query.offset)),
        ];
        match (&query.username, query.order) {
            (Some(name), _) => {
                let args = [Arg::Text(Some(name)), page[0], page[1]];
                self.fetch_users(&self.sql.list_filtered, &args).await
            }
            (None, SortOrder::Asc) => self.fetch_users(&self.sql.list_asc, &page).await,
            (None, SortOrder::Desc) => self.fetch_users(&self.sql.list_desc, &page).await,
        }
    }

    fn defender_store(&self) -> Option<&dyn crate::DefenderStore> {
        Some(self)
    }

    async fn folder_by_path(&self, mapped_path: &str) -> Result<crate::Folder> {
        let missing = || ProviderError::NotFound(format!("folder {mapped_path:?}"));
        if mapped_path.contains('\0') {
            return Err(missing());
        }
        let sql = &self.sql.folders.by_path;
        self.fetch_folders(sql, &[Arg::Text(Some(mapped_path))])
            .await?
            .into_iter()
            .next()
            .ok_or_else(missing)
    }

    async fn insert_folder(&self, folder: &crate::Folder) -> Result<crate::Folder> {
        let fs = json_folder_filesystem(folder)?;
        let args = [
            Arg::Text(Some(&folder.mapped_path)),
            Arg::Text(fs.as_deref()),
        ];
        let sql = &self.sql.folders.insert;
        let duplicate = |e: DbError| match &e {
            DbError::Sql(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                ProviderError::FolderExists(folder.mapped_path.clone())
            }
            _ => self.err("query failed", e),
        };
        if D::INSERT_RETURNING {
            let rows = self
                .call(D::fetch_rows(&self.pool, sql, &args))
                .await
                .map_err(duplicate)?;
            drop(rows);
        } else {
            self.call(D::execute(&self.pool, sql, &args))
                .await
                .map_err(duplicate)?;
        }
        self.folder_by_path(&folder.mapped_path).await
    }

    async fn update_folder(&self, folder: &crate::Folder) -> Result<()> {
        let fs = json_folder_filesystem(folder)?;
        let args = [Arg::Text(fs.as_deref()), Arg::Int(folder.id)];
        let missing = format!("folder with id {}", folder.id);
        self.change(&self.sql.folders.update, &args, missing).await
    }

    async fn delete_folder(&self, id: i64) -> Result<()> {
        let missing = format!("folder with id {id}");
        self.change(&self.sql.folders.delete, &[Arg::Int(id)], missing)
            .await
    }

    async fn list_folders(&self, query: &crate::FolderQuery) -> Result<Vec<crate::Folder>> {
        let page = [
            Arg::Int(i64::from(query.limit)),
            Arg::Int(i64::from(query.offset)),
        ];
        let sql = &self.sql.folders;
        match (&query.mapped_path, query.order) {
            (Some(path), _) => {
                let args = [Arg::Text(Some(path)), page[0], page[1]];
                self.fetch_folders(&sql.list_filtered, &args).await
            }
            (None, SortOrder::Asc) => self.fetch_folders(&sql.list_asc, &page).await,
            (None, SortOrder::Desc) => self.fetch_folders(&sql.list_desc, &page).await,
        }
    }

    async fn update_folder_quota(&self, mapped_path: &str, update: QuotaUpdate) -> Result<()> {
        let sql = &self.sql.folders;
        let (sql, size, files) = match update {
            QuotaUpdate::Delta { size, files } => (&sql.quota_delta, size, files),
            QuotaUpdate::Reset { size, files } => (&sql.quota_reset, size, files),
        };
        let args = [
            Arg::Int(size),
            Arg::Int(files),
            Arg::Int(crate::now_ms()),
            Arg::Text(Some(mapped_path)),
        ];
        self.change(sql, &args, format!("folder {mapped_path:?}"))
            .await
    }

    async fn update_quota(&self, username: &str, update: QuotaUpdate) -> Result<()> {
        let (sql, size, files) = match update {
            QuotaUpdate::Delta { size, files } => (&self.sql.quota_delta, size, files),
            QuotaUpdate::Reset { size, files } => (&self.sql.quota_reset, size, files),
        };
        let args = [
            Arg::Int(size),
            Arg::Int(files),
            Arg::Int(crate::now_ms()),
            Arg::Text(Some(username)),
        ];
        self.change(sql, &args, format!("user {username:?}")).await
    }

    async fn ping(&self) -> Result<()> {
        self.call(D::execute(&self.pool, "SELECT 1", &[]))
            .await
            .map_err(|e| self.err("query failed", e))?;
        Ok(())
    }
}

/// A database server engine (PostgreSQL, MySQL): how to connect and create the schema.
pub trait ServerDialect: Engine + Sized {
    /// Connect options from the settings (`connection_string` or the separate fields).
    fn connect_options(settings: &ServerSettings) -> Result<ConnectOptionsOf<Self>>;
    /// "host:port/database".
    fn target(options: &ConnectOptionsOf<Self>) -> String;
    /// The pool options (a dialect may add per-connection session settings).
    fn pool_options(settings: &PoolSettings) -> sqlx::pool::PoolOptions<Self::DB> {
        settings.server_pool_options()
    }
    /// Creates the users and version tables when missing, under a lock that keeps
    /// instances starting together from racing.
    fn create_schema(
        backend: &SqlBackend<Self>,
        table: &str,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// The connect options type of a dialect's driver.
pub type ConnectOptionsOf<D> =
    <<<D as Dialect>::DB as Database>::Connection as sqlx::Connection>::Options;

impl<D: ServerDialect> SqlBackend<D> {
    /// Connects to the database described by `settings` and creates the users table when
    /// missing. An unreachable server is an error naming the driver, host and port.
    pub async fn connect(settings: &ServerSettings) -> Result<Self> {
        check_table_name(&settings.users_table)?;
        let options = D::connect_options(settings)?;
        let target = D::target(&options);
        let pool = D::pool_options(&settings.pool)
            .connect_with(options)
            .await
            .map_err(|e| {
                ProviderError::Backend(format!(
                    "{} data provider at {target}: cannot connect: {e}",
                    D::DRIVER
                ))
            })?;
        let table = settings.users_table.as_str();
        let backend = Self::new(pool, target, table, &settings.pool);
        D::create_schema(&backend, table).await?;
        backend.check_schema(table).await?;
        Ok(backend)
    }
}

/// The schema statements every engine runs (in its own words): the users table, the
/// version table and its one row.
pub(crate) fn schema_statements<D: Dialect>(
    users_table: &str,
    create_users: String,
    version_key: &str,
    insert_ignore: (&str, &str),
    inline_index: bool,
) -> Vec<String> {
    let (insert, on_conflict) = insert_ignore;
    let index = "sftpgo_defender_events_ip";
    let (inline, separate) = if inline_index {
        (format!(", INDEX {index} (ip, date_time)"), None)
    } else {
        (
            String::new(),
            Some(format!(
                "CREATE INDEX IF NOT EXISTS {index} ON {DEFENDER_EVENTS} (ip, date_time)"
            )),
        )
    };
    let mut stmts = vec![
        create_users,
        // The users' virtual folders, beside their users table.
        format!(
            "CREATE TABLE IF NOT EXISTS {} (id {}, mapped_path varchar(512) NOT NULL \
             UNIQUE, used_quota_size bigint NOT NULL, used_quota_files integer NOT NULL, \
             last_quota_update bigint NOT NULL, filesystem text NULL){}",
            folders_table(users_table),
            D::AUTO_ID,
            D::TABLE_OPTIONS
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {SCHEMA_VERSION_TABLE} (id integer NOT NULL \
             {version_key}, version integer NOT NULL)"
        ),
        // A database without the version table is a 0.9 one (or new): version 1.
        format!("{insert} INTO {SCHEMA_VERSION_TABLE} (id, version) VALUES (1, 1){on_conflict}"),
        // The defender's tables (added beside 0.9's layout; older versions ignore them).
        format!(
            "CREATE TABLE IF NOT EXISTS {DEFENDER_EVENTS} (ip varchar(64) NOT NULL, \
             date_time bigint NOT NULL, score integer NOT NULL{inline})"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {DEFENDER_HOSTS} (ip varchar(64) NOT NULL PRIMARY KEY, \
             ban_until bigint NOT NULL)"
        ),
    ];
    stmts.extend(separate);
    stmts
}

/// The table of the virtual folders that the users of `users_table` map: one per users
/// table, as several users tables in one database are separate sets of accounts.
pub(crate) fn folders_table(users_table: &str) -> String {
    format!("{users_table}_folders")
}
/// Every column of the folders table, in SELECT order (no NULL: decoded by index).
const FOLDER_COLUMNS: &str = "id, mapped_path, used_quota_size, used_quota_files, \
     last_quota_update, COALESCE(filesystem, '')";

/// The folders' statements, for a dialect's placeholders.
#[derive(Debug, Clone)]
pub(crate) struct FolderStatements {
    by_path: String,
    insert: String,
    update: String,
    delete: String,
    list_asc: String,
    list_desc: String,
    list_filtered: String,
    quota_delta: String,
    quota_reset: String,
}

impl FolderStatements {
    fn new<D: Dialect>(users_table: &str) -> Self {
        let p = D::placeholder;
        let f = folders_table(users_table);
        // Byte order, as for usernames.
        let order_by = D::ORDER_BY.replace("username", "mapped_path");
        let returning = if D::INSERT_RETURNING {
            format!(" RETURNING {FOLDER_COLUMNS}")
        } else {
            String::new()
        };
        let quota = |used_size: &str, used_files: &str| {
            format!(
                "UPDATE {f} SET used_quota_size = {used_size}{}, used_quota_files = \
                 {used_files}{}, last_quota_update = {} WHERE mapped_path = {}",
                p(1),
                p(2),
                p(3),
                p(4)
            )
        };
        let list = |dir: &str| {
            format!(
                "SELECT {FOLDER_COLUMNS} FROM {f} ORDER BY {order_by} {dir} LIMIT {} OFFSET {}",
                p(1),
                p(2)
            )
        };
        Self {
            by_path: format!(
                "SELECT {FOLDER_COLUMNS} FROM {f} WHERE mapped_path = {}",
                p(1)
            ),
            insert: format!(
                "INSERT INTO {f} (mapped_path, filesystem, used_quota_size, used_quota_files, \
                 last_quota_update) VALUES ({}, {}, 0, 0, 0){returning}",
                p(1),
                p(2)
            ),
            update: format!("UPDATE {f} SET filesystem = {} WHERE id = {}", p(1), p(2)),
            delete: format!("DELETE FROM {f} WHERE id = {}", p(1)),
            list_asc: list("ASC"),
            list_desc: list("DESC"),
            list_filtered: format!(
                "SELECT {FOLDER_COLUMNS} FROM {f} WHERE mapped_path = {} LIMIT {} OFFSET {}",
                p(1),
                p(2),
                p(3)
            ),
            quota_delta: quota("used_quota_size + ", "used_quota_files + "),
            quota_reset: quota("", ""),
        }
    }
}

/// The `filesystem` column of a folder: NULL for a local folder.
fn json_folder_filesystem(folder: &crate::Folder) -> Result<Option<String>> {
    if folder.filesystem == crate::Filesystem::default() {
        return Ok(None);
    }
    serde_json::to_string(&folder.filesystem)
        .map(Some)
        .map_err(|e| ProviderError::Backend(format!("cannot encode filesystem: {e}")))
}

impl<D: Engine> SqlBackend<D> {
    async fn fetch_folders(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<crate::Folder>> {
        let rows = self
            .call(D::fetch_rows(&self.pool, sql, args))
            .await
            .map_err(|e| self.err("query failed", e))?;
        rows.iter()
            .map(|row| {
                let mapped_path = D::text_at(row, 1)?;
                let fs = D::text_at(row, 5)?;
                let filesystem =
                    decode_filesystem(&mapped_path, Some(&fs)).map_err(DbError::Data)?;
                Ok(crate::Folder {
                    id: D::int_at(row, 0)?,
                    used_quota_size: D::int_at(row, 2)?,
                    used_quota_files: D::int_at(row, 3)?,
                    last_quota_update: D::int_at(row, 4)?,
                    filesystem,
                    mapped_path,
                    users: Vec::new(),
                })
            })
            .collect::<DbResult<Vec<_>>>()
            .map_err(|e| self.err("bad folder row", e))
    }
}

/// The defender's tables: one row per scored event, one per banned host.
pub(crate) const DEFENDER_EVENTS: &str = "sftpgo_defender_events";
pub(crate) const DEFENDER_HOSTS: &str = "sftpgo_defender_hosts";
/// Events read at most to list the scored hosts.
const MAX_LISTED_EVENTS: i64 = 50_000;

/// The defender's statements, for a dialect's placeholders.
#[derive(Debug, Clone)]
pub(crate) struct DefenderStatements {
    event_insert: String,
    event_scores: String,
    events_of: String,
    ban_update: String,
    ban_insert: String,
    ban_extend: String,
    ban_of: String,
    ban_delete: String,
    bans: String,
    events: String,
    events_cleanup: String,
    bans_cleanup: String,
}

impl DefenderStatements {
    fn new<D: Dialect>() -> Self {
        let p = D::placeholder;
        let (e, h) = (DEFENDER_EVENTS, DEFENDER_HOSTS);
        Self {
            event_insert: format!(
                "INSERT INTO {e} (ip, date_time, score) VALUES ({}, {}, {})",
                p(1),
                p(2),
                p(3)
            ),
            event_scores: format!(
                "SELECT score FROM {e} WHERE ip = {} AND date_time > {}",
                p(1),
                p(2)
            ),
            events_of: format!("DELETE FROM {e} WHERE ip = {}", p(1)),
            ban_update: format!("UPDATE {h} SET ban_until = {} WHERE ip = {}", p(1), p(2)),
            ban_insert: format!(
                "INSERT INTO {h} (ip, ban_until) VALUES ({}, {})",
                p(1),
                p(2)
            ),
            ban_extend: format!(
                "UPDATE {h} SET ban_until = {} WHERE ip = {} AND ban_until > {}",
                p(1),
                p(2),
                p(3)
            ),
            ban_of: format!(
                "SELECT ban_until FROM {h} WHERE ip = {} AND ban_until > {}",
                p(1),
                p(2)
            ),
            ban_delete: format!("DELETE FROM {h} WHERE ip = {}", p(1)),
            bans: format!(
                "SELECT ip, ban_until FROM {h} WHERE ban_until > {} ORDER BY ip",
                p(1)
            ),
            events: format!(
                "SELECT ip, score FROM {e} WHERE date_time > {} ORDER BY ip LIMIT {MAX_LISTED_EVENTS}",
                p(1)
            ),
            events_cleanup: format!("DELETE FROM {e} WHERE date_time < {}", p(1)),
            bans_cleanup: format!("DELETE FROM {h} WHERE ban_until < {}", p(1)),
        }
    }
}

/// Refuses table names that cannot be interpolated into SQL as bare identifiers.
/// `host:port/database`, how a server backend names itself in errors and logs.
pub(crate) fn server_target(host: &str, port: u16, database: Option<&str>) -> String {
    format!("{host}:{port}/{}", database.unwrap_or_default())
}

pub(crate) fn check_table_name(name: &str) -> Result<()> {
    if crate::sqlite::is_valid_table_name(name) {
        Ok(())
    } else {
        Err(ProviderError::Backend(format!(
            "invalid users table name {name:?}: use letters, digits and underscores (not \
             starting with a digit, at most 56 characters, not {SCHEMA_VERSION_TABLE:?} or \
             sqlite_*)"
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
/// The `filesystem` column: NULL (a 0.9 row, or a local user) is the local home dir.
pub(crate) fn decode_filesystem(
    username: &str,
    column: Option<&str>,
) -> std::result::Result<crate::Filesystem, String> {
    match column.map(str::trim) {
        None | Some("") | Some("null") => Ok(crate::Filesystem::default()),
        Some(json) => serde_json::from_str(json)
            .map_err(|e| format!("user {username:?}: invalid filesystem {json:?}: {e}")),
    }
}

/// The `filesystem` column's value: NULL for a local user (a row 0.9 reads as its own).
fn json_filesystem(user: &User) -> Result<Option<String>> {
    if user.filesystem == crate::Filesystem::default() {
        return Ok(None);
    }
    serde_json::to_string(&user.filesystem)
        .map(Some)
        .map_err(|e| ProviderError::Backend(format!("cannot encode filesystem: {e}")))
}

/// The `virtual_folders` column: NULL (a row of an older layout, or none) is none.
pub(crate) fn decode_virtual_folders(
    username: &str,
    column: Option<&str>,
) -> std::result::Result<Vec<crate::VirtualFolder>, String> {
    match column.map(str::trim) {
        None | Some("") | Some("null") => Ok(Vec::new()),
        Some(json) => serde_json::from_str(json)
            .map_err(|e| format!("user {username:?}: invalid virtual_folders {json:?}: {e}")),
    }
}

/// The `virtual_folders` column's value: NULL when the user maps none.
fn json_virtual_folders(user: &User) -> Result<Option<String>> {
    if user.virtual_folders.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(&user.virtual_folders)
        .map(Some)
        .map_err(|e| ProviderError::Backend(format!("cannot encode virtual_folders: {e}")))
}

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

/// The tests every database server backend runs, generated for one dialect: `$dialect`,
/// the `testdb` function making its throw-away database, SFTPGo 0.9's schema for it, and
/// the shipped SQL file.
#[cfg(test)]
macro_rules! server_backend_tests {
    ($dialect:ty, $testdb:path, $sql_09:expr, $shipped:expr) => {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::time::Duration;

        use crate::sql::{PoolSettings, ServerSettings, SqlBackend};
        use crate::sqlite::SCHEMA_VERSION;
        use crate::{Backend, DataProvider, Permission, ProviderError, TrackQuota};

        type B = SqlBackend<$dialect>;

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn conformance() {
            let Some(db) = $testdb().await else {
                return;
            };
            let n = AtomicUsize::new(0);
            crate::conformance::run_all(|| {
                // Every check gets its own empty table in this test's database.
                let settings = ServerSettings {
                    users_table: format!("users_{}", n.fetch_add(1, Ordering::SeqCst)),
                    ..db.settings.clone()
                };
                async move { Arc::new(B::connect(&settings).await.expect("connect")) as Arc<dyn Backend> }
            })
            .await;
        }

        /// Connects with another table name, runs `sql` and disconnects.
        async fn run_sql(settings: &ServerSettings, sql: &str) {
            let first = B::connect(&ServerSettings {
                users_table: "other".into(),
                ..settings.clone()
            })
            .await
            .unwrap();
            sqlx::raw_sql(sql).execute(first.pool()).await.expect(sql);
            first.close().await;
        }

        #[tokio::test]
        async fn adopts_an_sftpgo_09_table_and_shares_it() {
            let Some(db) = $testdb().await else {
                return;
            };
            run_sql(&db.settings, $sql_09).await;
            run_sql(
                &db.settings,
                "INSERT INTO users (username, password, public_keys, home_dir, uid, gid, \
                 max_sessions, quota_size, quota_files, permissions, used_quota_size, \
                 used_quota_files, last_quota_update, upload_bandwidth, download_bandwidth) \
                 VALUES ('legacy', NULL, '[\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKiqVah2eauGBSyuYBpoPb73fmxK3SxfvonBg30GHZAo k\"]', \
                 '/srv/legacy', 5, 6, 2, 1000, 10, '[\"list\",\"download\"]', 7, 1, 3, 0, 0)",
            )
            .await;
            // Two instances on one table, starting together (both migrate it to version 2:
            // the `filesystem` column): what one adds the other serves, quota adds up.
            let (a, b) = tokio::join!(B::connect(&db.settings), B::connect(&db.settings));
            let (a, b) = (a.unwrap(), b.unwrap());
            assert_eq!(a.schema_version().await.unwrap(), SCHEMA_VERSION);
            assert_eq!(SCHEMA_VERSION, 3);
            let legacy = a.user_by_username("legacy").await.unwrap();
            assert_eq!(legacy.permissions, [Permission::List, Permission::Download]);
            assert_eq!(legacy.public_keys.len(), 1);
            assert_eq!((legacy.uid, legacy.gid, legacy.quota_size), (5, 6, 1000));
            assert_eq!(legacy.used_quota_size, 7);
            assert_eq!(legacy.filesystem, crate::Filesystem::default());
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
            let Some(db) = $testdb().await else {
                return;
            };
            // Applying it over an existing schema is harmless.
            run_sql(&db.settings, $shipped).await;
            let b = B::connect(&db.settings).await.unwrap();
            assert_eq!(b.schema_version().await.unwrap(), SCHEMA_VERSION);
            crate::conformance::crud_round_trip(Arc::new(b.clone())).await;
            b.close().await;
        }

        #[tokio::test]
        async fn unreachable_server_names_driver_host_and_port() {
            let s = ServerSettings {
                host: "127.0.0.1".into(),
                port: 1,
                name: "x".into(),
                pool: PoolSettings {
                    connect_timeout: Duration::from_secs(2),
                    ..Default::default()
                },
                ..ServerSettings::default()
            };
            match B::connect(&s).await {
                Err(ProviderError::Backend(msg)) => {
                    assert!(
                        msg.contains(<$dialect as crate::sql::Dialect>::DRIVER)
                            && msg.contains("127.0.0.1:1"),
                        "{msg}"
                    )
                }
                other => panic!("expected Backend error, got {other:?}"),
            }
            let bad_table = ServerSettings {
                users_table: "users; DROP TABLE x".into(),
                ..s
            };
            match B::connect(&bad_table).await {
                Err(ProviderError::Backend(msg)) => assert!(msg.contains("table name"), "{msg}"),
                other => panic!("expected Backend error, got {other:?}"),
            }
        }

        #[tokio::test]
        async fn foreign_table_layout_is_refused() {
            let Some(db) = $testdb().await else {
                return;
            };
            run_sql(
                &db.settings,
                "CREATE TABLE users (id integer PRIMARY KEY, name text)",
            )
            .await;
            match B::connect(&db.settings).await {
                Err(ProviderError::Backend(msg)) => assert!(msg.contains("layout"), "{msg}"),
                other => panic!("expected Backend error, got {other:?}"),
            }
        }

        /// The pool takes `pool_size` and `connect_timeout`; returns a backend connected
        /// with a 2 s statement timeout and one connected without.
        async fn backends_with_pool_settings(settings: &ServerSettings) -> (B, B) {
            let limited = B::connect(&ServerSettings {
                pool: PoolSettings {
                    pool_size: 3,
                    connect_timeout: Duration::from_secs(4),
                    statement_timeout: Some(Duration::from_secs(2)),
                },
                ..settings.clone()
            })
            .await
            .unwrap();
            assert_eq!(limited.pool().options().get_max_connections(), 3);
            assert_eq!(
                limited.pool().options().get_acquire_timeout(),
                Duration::from_secs(4)
            );
            let unlimited = B::connect(&ServerSettings {
                pool: PoolSettings {
                    statement_timeout: None,
                    ..Default::default()
                },
                ..settings.clone()
            })
            .await
            .unwrap();
            assert_eq!(
                unlimited.pool().options().get_max_connections(),
                crate::sql::default_pool_size()
            );
            (limited, unlimited)
        }
    };
}
#[cfg(test)]
pub(crate) use server_backend_tests;

/// Throw-away databases on the local PostgreSQL (127.0.0.1:5432, user `postgres`, trust
/// auth) and MariaDB (127.0.0.1:3306, `root` without password) servers, one per test, for
/// this crate's tests and, through the `conformance` feature, other crates' tests.
#[cfg(any(test, feature = "conformance"))]
pub mod testdb {
    use super::ServerSettings;
    use sqlx::{Connection, Executor};

    pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
    pub const MYSQL_ADMIN_URL: &str = "mysql://root@127.0.0.1:3306/test";

    /// A database that is dropped (best effort) when this guard is dropped.
    pub struct TestDb {
        pub settings: ServerSettings,
        drop_sql: String,
        admin_url: &'static str,
    }

    /// Runs `sql` on a new connection to `url`.
    async fn admin<C>(url: &str, sql: &str) -> Result<(), sqlx::Error>
    where
        C: Connection,
        for<'c> &'c mut C: Executor<'c, Database = C::Database>,
    {
        let mut conn = C::connect(url).await?;
        sqlx::raw_sql(sql).execute(&mut conn).await?;
        Ok(())
    }

    /// Set to 1 (as `.ci/run` does) to make an unreachable database server fail the tests
    /// that need it instead of skipping them.
    pub const REQUIRE_ENV: &str = "SFTPGO_REQUIRE_DATABASES";

    async fn create<C>(admin_url: &'static str, port: u16, user: &str, drop: &str) -> Option<TestDb>
    where
        C: Connection,
        for<'c> &'c mut C: Executor<'c, Database = C::Database>,
    {
        let name = format!("sftpgo_t_{:016x}", rand::random::<u64>());
        if let Err(e) = admin::<C>(admin_url, &format!("CREATE DATABASE {name}")).await {
            let required = std::env::var(REQUIRE_ENV).as_deref() == Ok("1");
            assert!(
                !required,
                "cannot create a database at {admin_url} ({REQUIRE_ENV}=1): {e}"
            );
            eprintln!(
                "SKIPPED: no database server at {admin_url} ({e}); start it, or set \
                 {REQUIRE_ENV}=1 to make this a failure"
            );
            return None;
        }
        Some(TestDb {
            settings: ServerSettings {
                host: "127.0.0.1".into(),
                port,
                name: name.clone(),
                username: user.into(),
                ..ServerSettings::default()
            },
            drop_sql: drop.replace("{name}", &name),
            admin_url,
        })
    }

    /// A new, empty PostgreSQL database; `None` (the test is skipped) when no server
    /// answers and [`REQUIRE_ENV`] is not set.
    pub async fn postgres() -> Option<TestDb> {
        create::<sqlx::PgConnection>(
            PG_ADMIN_URL,
            5432,
            "postgres",
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)",
        )
        .await
    }

    /// A new, empty MariaDB/MySQL database; `None` as for [`postgres`].
    pub async fn mysql() -> Option<TestDb> {
        create::<sqlx::MySqlConnection>(
            MYSQL_ADMIN_URL,
            3306,
            "root",
            "DROP DATABASE IF EXISTS {name}",
        )
        .await
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
                        admin::<sqlx::PgConnection>(url, &sql).await.ok()
                    } else {
                        admin::<sqlx::MySqlConnection>(url, &sql).await.ok()
                    }
                })
            })
            .join();
        }
    }
}

impl<D: Engine> SqlBackend<D> {
    async fn exec(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        self.call(D::execute(&self.pool, sql, args))
            .await
            .map(|r| D::rows_affected(&r))
            .map_err(|e| self.err("defender query failed", e))
    }

    async fn rows(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row<D>>> {
        self.call(D::fetch_rows(&self.pool, sql, args))
            .await
            .map_err(|e| self.err("defender query failed", e))
    }

    async fn score_of(&self, ip: &str, since: i64) -> Result<i64> {
        let rows = self
            .rows(
                &self.sql.defender.event_scores,
                &[Arg::Text(Some(ip)), Arg::Int(since)],
            )
            .await?;
        rows.iter()
            .map(|r| D::int_at(r, 0).map_err(|e| self.err("bad defender row", e)))
            .sum()
    }
}

#[async_trait]
impl<D: Engine> crate::DefenderStore for SqlBackend<D> {
    async fn add_event(&self, ip: &str, at: i64, score: i64, since: i64) -> Result<i64> {
        let d = &self.sql.defender;
        self.exec(
            &d.event_insert,
            &[Arg::Text(Some(ip)), Arg::Int(at), Arg::Int(score)],
        )
        .await?;
        self.score_of(ip, since).await
    }

    async fn ban(&self, ip: &str, until: i64) -> Result<()> {
        let d = &self.sql.defender;
        let args = [Arg::Int(until), Arg::Text(Some(ip))];
        // Update, else insert; an insert that loses a race with another instance's
        // updates instead. (MySQL counts only changed rows: an equal value is 0 rows,
        // and the insert's duplicate then updates to the same value.)
        if self.exec(&d.ban_update, &args).await? == 0
            && self
                .exec(&d.ban_insert, &[Arg::Text(Some(ip)), Arg::Int(until)])
                .await
                .is_err()
        {
            self.exec(&d.ban_update, &args).await?;
        }
        self.exec(&d.events_of, &[Arg::Text(Some(ip))]).await?;
        Ok(())
    }

    async fn extend_ban(&self, ip: &str, until: i64, now: i64) -> Result<()> {
        let args = [Arg::Int(until), Arg::Text(Some(ip)), Arg::Int(now)];
        self.exec(&self.sql.defender.ban_extend, &args).await?;
        Ok(())
    }

    async fn host(&self, ip: &str, since: i64, now: i64) -> Result<Option<crate::HostRecord>> {
        let rows = self
            .rows(
                &self.sql.defender.ban_of,
                &[Arg::Text(Some(ip)), Arg::Int(now)],
            )
            .await?;
        let ban_until = match rows.first() {
            Some(r) => Some(D::int_at(r, 0).map_err(|e| self.err("bad defender row", e))?),
            None => None,
        };
        let score = self.score_of(ip, since).await?;
        Ok(
            (score > 0 || ban_until.is_some()).then(|| crate::HostRecord {
                ip: ip.to_owned(),
                score,
                ban_until,
            }),
        )
    }

    async fn hosts(&self, since: i64, now: i64, limit: usize) -> Result<Vec<crate::HostRecord>> {
        let d = &self.sql.defender;
        let bad = |e| self.err("bad defender row", e);
        let mut hosts: std::collections::BTreeMap<String, crate::HostRecord> = Default::default();
        for r in self.rows(&d.bans, &[Arg::Int(now)]).await? {
            let ip = D::text_at(&r, 0).map_err(bad)?;
            let until = D::int_at(&r, 1).map_err(bad)?;
            hosts.insert(
                ip.clone(),
                crate::HostRecord {
                    ip,
                    score: 0,
                    ban_until: Some(until),
                },
            );
        }
        for r in self.rows(&d.events, &[Arg::Int(since)]).await? {
            let ip = D::text_at(&r, 0).map_err(bad)?;
            let score = D::int_at(&r, 1).map_err(bad)?;
            hosts
                .entry(ip.clone())
                .or_insert(crate::HostRecord {
                    ip,
                    score: 0,
                    ban_until: None,
                })
                .score += score;
        }
        Ok(hosts
            .into_values()
            .filter(|h| h.score > 0 || h.ban_until.is_some())
            .take(limit)
            .collect())
    }

    async fn remove(&self, ip: &str, since: i64, now: i64) -> Result<bool> {
        let known = crate::DefenderStore::host(self, ip, since, now)
            .await?
            .is_some();
        let d = &self.sql.defender;
        self.exec(&d.ban_delete, &[Arg::Text(Some(ip))]).await?;
        self.exec(&d.events_of, &[Arg::Text(Some(ip))]).await?;
        Ok(known)
    }

    async fn cleanup(&self, events_before: i64, bans_before: i64) -> Result<()> {
        let d = &self.sql.defender;
        self.exec(&d.events_cleanup, &[Arg::Int(events_before)])
            .await?;
        self.exec(&d.bans_cleanup, &[Arg::Int(bans_before)]).await?;
        Ok(())
    }
}
