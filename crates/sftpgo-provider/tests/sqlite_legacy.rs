//! An SFTPGo 0.9 SQLite database (created with 0.9's SQL script, user inserted by plain SQL)
//! is adopted and read correctly.

use std::sync::Arc;

use sftpgo_provider::sqlite::{SCHEMA_VERSION, SqliteBackend};
use sftpgo_provider::{Backend, DataProvider, Permission, TrackQuota, UserQuery};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

/// SFTPGo 0.9's `sql/sqlite/20190706.sql`.
const SFTPGO_09_SQL: &str = r#"BEGIN TRANSACTION;
CREATE TABLE "users" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "username" varchar(255) NOT NULL UNIQUE, "password" varchar(255) NULL, "public_keys" text NULL, "home_dir" varchar(255) NOT NULL, "uid" integer NOT NULL, "gid" integer NOT NULL, "max_sessions" integer NOT NULL, "quota_size" bigint NOT NULL, "quota_files" integer NOT NULL, "permissions" text NOT NULL, "used_quota_size" bigint NOT NULL, "used_quota_files" integer NOT NULL, "last_quota_update" bigint NOT NULL, "upload_bandwidth" integer NOT NULL, "download_bandwidth" integer NOT NULL);
COMMIT;"#;

/// pbkdf2-sha256 of "sftpgo", salt "legacy", 1000 iterations (Python hashlib).
const PBKDF2: &str = "$pbkdf2-sha256$1000$legacy$7XJRA+LS5h1CrrcAV6e4talJx00C9IyQCmp/R0r/9EE=";
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKiqVah2eauGBSyuYBpoPb73fmxK3SxfvonBg30GHZAo k";

#[tokio::test]
async fn adopts_an_sftpgo_09_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sftpgo.db");
    {
        let opts = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let mut conn = SqliteConnection::connect_with(&opts).await.unwrap();
        sqlx::raw_sql(SFTPGO_09_SQL)
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::raw_sql(&format!(
            "INSERT INTO users (username, password, public_keys, home_dir, uid, gid, \
             max_sessions, quota_size, quota_files, permissions, used_quota_size, \
             used_quota_files, last_quota_update, upload_bandwidth, download_bandwidth) \
             VALUES ('legacy', '{PBKDF2}', NULL, '/srv/legacy', 1000, 1000, 2, 1048576, 10, \
             '[\"*\"]', 512, 3, 1565000000000, 50, 100);
             INSERT INTO users (username, password, public_keys, home_dir, uid, gid, \
             max_sessions, quota_size, quota_files, permissions, used_quota_size, \
             used_quota_files, last_quota_update, upload_bandwidth, download_bandwidth) \
             VALUES ('keys', '', '[\"{KEY}\"]', '/srv/keys', 0, 0, 0, 0, 0, \
             '[\"list\",\"download\"]', 0, 0, 0, 0, 0);
             INSERT INTO users (username, password, public_keys, home_dir, uid, gid, \
             max_sessions, quota_size, quota_files, permissions, used_quota_size, \
             used_quota_files, last_quota_update, upload_bandwidth, download_bandwidth) \
             VALUES ('emptykeys', '$2a$04$abcdefghijklmnopqrstuuS1bDYAm0xY0Bq8yGb9TtKcsnvVgJaC.', \
             '', '/srv/e', 0, 0, 0, 0, 0, '[\"upload\"]', 0, 0, 0, 0, 0);"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }

    let backend = SqliteBackend::open(&path, "users")
        .await
        .expect("open 0.9 database");
    assert_eq!(backend.schema_version().await.unwrap(), SCHEMA_VERSION);
    let p = DataProvider::new(Arc::new(backend.clone()), true, TrackQuota::Always);

    let u = p.user_by_username("legacy").await.unwrap();
    assert_eq!(u.id, 1);
    assert_eq!(u.password.as_deref(), Some(PBKDF2));
    assert!(u.public_keys.is_empty());
    assert_eq!(u.home_dir, "/srv/legacy");
    assert_eq!((u.uid, u.gid, u.max_sessions), (1000, 1000, 2));
    assert_eq!((u.quota_size, u.quota_files), (1_048_576, 10));
    assert_eq!(u.permissions, vec![Permission::Any]);
    assert_eq!((u.used_quota_size, u.used_quota_files), (512, 3));
    assert_eq!(u.last_quota_update, 1_565_000_000_000);
    assert_eq!((u.upload_bandwidth, u.download_bandwidth), (50, 100));
    assert!(p.check_password(&u, "sftpgo").await);
    assert!(!p.check_password(&u, "wrong").await);

    let k = p.user_by_id(2).await.unwrap();
    assert_eq!(k.username, "keys");
    assert_eq!(k.password, None, "empty password column means no password");
    assert_eq!(k.public_keys, vec![KEY.to_owned()]);
    assert_eq!(k.permissions, vec![Permission::List, Permission::Download]);
    let offered = russh::keys::PublicKey::from_openssh(KEY).unwrap();
    assert!(k.has_public_key(&offered));
    assert!(!p.check_password(&k, "").await);

    let e = p.user_by_username("emptykeys").await.unwrap();
    assert!(e.public_keys.is_empty(), "'' public_keys means none");

    let all = p.list_users(&UserQuery::default()).await.unwrap();
    let names: Vec<_> = all.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["emptykeys", "keys", "legacy"]);

    // Writes work on the adopted table, and ids continue after the existing ones.
    p.update_quota(&u, 10, 1).await.unwrap();
    assert_eq!(p.user_by_id(1).await.unwrap().used_quota_size, 522);
    let added = p
        .add_user(sftpgo_provider::User {
            username: "new".into(),
            password: Some("pw".into()),
            home_dir: "/srv/new".into(),
            permissions: vec![Permission::Any],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(added.id, 4);
    backend.close().await;

    // The stored row uses 0.9's encodings (JSON text columns, NULL public_keys).
    let opts = SqliteConnectOptions::new().filename(&path);
    let mut conn = SqliteConnection::connect_with(&opts).await.unwrap();
    let (perms, keys): (String, Option<String>) =
        sqlx::query_as("SELECT permissions, public_keys FROM users WHERE username = 'new'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(perms, r#"["*"]"#);
    assert_eq!(keys, None);
    let (keys,): (Option<String>,) =
        sqlx::query_as("SELECT public_keys FROM users WHERE username = 'keys'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(keys.as_deref(), Some(format!(r#"["{KEY}"]"#).as_str()));
    let backend = SqliteBackend::open(&path, "users").await.unwrap();
    assert_eq!(backend.driver(), "sqlite");
}
