//! Conformance suite every [`Backend`] must pass, driven through [`DataProvider`].
//!
//! Enabled for this crate's tests and, for other crates, by the `conformance` feature:
//!
//! ```ignore
//! sftpgo_provider::conformance::run_all(|| async { Arc::new(MyBackend::open(..).await) as _ }).await;
//! ```
//!
//! Each check gets a fresh, empty backend from the factory. Failures panic (assertions).

use std::future::Future;
use std::sync::Arc;

use crate::{
    Backend, DataProvider, Folder, FolderQuery, Permission, ProviderError, SortOrder, TrackQuota,
    User, UserQuery, VirtualFolder, password,
};

/// An ed25519 authorized_keys line.
pub const KEY_A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKiqVah2eauGBSyuYBpoPb73fmxK3SxfvonBg30GHZAo alice@example";
/// Another ed25519 authorized_keys line.
pub const KEY_B: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILUmmr7sQssTFi2smWlTETvUESkJudwUTJSxIl9cZ1Xz";
/// An RSA authorized_keys line.
pub const KEY_RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC9ucQkxkbU+I8A14dzM92GNhkQsA5TIJS+86stQIhLv+ScVQv9/JhNY1V77g5fRZoQ3V9i03ZnQvtOTkFPp6dIWSHZo87tfk7H7EoGvislz/HNfq9aOZpdJrIcYGC5yYHN3KSxktkhFZEtJFZjqCPvjABbjwDGNZ3Gs0+CNFoTGl2dS8N3UdfkMaGO4+Tsm9OR+LDTVWrakLjf8CdBmvcbkA9btVGq1FbOm8gwnCexcHboD9xq/i0XVc778HmdpOBWuEww6z0snpcV0wVd/WPWW85/SzP2zuidO1H6neYBvHGIMiFO6ybvSv7r0EmXSrs0angQZtUl2QodQsmGSx8x rsa";
/// `$pbkdf2-sha256$` hash of `"sftpgo"` (salt `legacy`, 1000 iterations), computed with
/// Python's `hashlib.pbkdf2_hmac`.
pub const PBKDF2_SFTPGO: &str =
    "$pbkdf2-sha256$1000$legacy$7XJRA+LS5h1CrrcAV6e4talJx00C9IyQCmp/R0r/9EE=";

/// Runs every check, each against a fresh backend from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Backend>>,
{
    crud_round_trip(make().await).await;
    duplicate_username(make().await).await;
    not_found(make().await).await;
    ids_increase(make().await).await;
    listing(make().await).await;
    quota_deltas_and_reset(make().await).await;
    concurrent_quota_deltas(make().await).await;
    quota_tracking_modes(make().await).await;
    read_only(make().await).await;
    validation(make().await).await;
    homes(make().await).await;
    password_handling(make().await).await;
    filesystems(make().await).await;
    folders(make().await).await;
    ping(make().await).await;
    // Every backend but bolt keeps the defender's scores and bans.
    let backend = make().await;
    match backend.defender_store() {
        Some(store) => defender(store).await,
        None => assert_eq!(backend.driver(), "bolt"),
    }
}

fn provider(backend: Arc<dyn Backend>) -> DataProvider {
    DataProvider::new(backend, true, TrackQuota::Always)
}

/// A `virtual_folders` entry for a local folder.
pub fn folder_entry(mapped: &str, at: &str, size: i64, files: i64) -> VirtualFolder {
    VirtualFolder {
        mapped_path: mapped.into(),
        virtual_path: at.into(),
        quota_size: size,
        quota_files: files,
        filesystem: None,
    }
}

/// Folders: stored on their own (unique mapped path, ordered listing, used quota kept
/// atomically), created with the user that maps one not known yet (with the entry's
/// storage), listed with the users that map them, removed from those users' mappings
/// when deleted; mappings validated.
pub async fn folders(backend: Arc<dyn Backend>) {
    use crate::{Filesystem, FsProvider, S3FsConfig, Secret, SecretKey};
    let p = provider(backend.clone()).with_secret_key(SecretKey::from_material(b"k"));
    let added = p
        .add_folder(Folder {
            id: 99,
            mapped_path: "/srv/folders/b".into(),
            used_quota_size: 5,
            ..Folder::default()
        })
        .await
        .expect("add folder");
    assert!(added.id > 0 && added.id != 99);
    assert_eq!((added.used_quota_size, added.used_quota_files), (0, 0));
    assert!(matches!(
        p.add_folder(Folder {
            mapped_path: "/srv/folders/b".into(),
            ..Folder::default()
        })
        .await,
        Err(ProviderError::FolderExists(path)) if path == "/srv/folders/b"
    ));
    for bad in ["relative", "/", "/a/../b", "/a/"] {
        let folder = Folder {
            mapped_path: bad.into(),
            ..Folder::default()
        };
        assert!(
            matches!(
                p.add_folder(folder).await,
                Err(ProviderError::InvalidField {
                    field: "mapped_path",
                    ..
                })
            ),
            "{bad:?} refused"
        );
    }
    p.add_folder(Folder {
        mapped_path: "/srv/folders/a".into(),
        ..Folder::default()
    })
    .await
    .unwrap();

    // A user mapping a known folder and two unknown ones: an S3 one (its storage from
    // the entry, its secret sealed) and a local one.
    let s3 = Filesystem {
        provider: FsProvider::S3,
        s3config: S3FsConfig {
            bucket: "b".into(),
            endpoint: "http://127.0.0.1:3900".into(),
            access_key: "GK1".into(),
            access_secret: Secret::new("folder secret"),
            key_prefix: "shared/".into(),
            ..S3FsConfig::default()
        },
    };
    let mut user = sample_user("mapper");
    user.virtual_folders = vec![
        folder_entry("/srv/folders/a", "/a", -1, -1),
        VirtualFolder {
            filesystem: Some(s3.clone()),
            ..folder_entry("/s3/reports", "/reports", 1000, 10)
        },
        folder_entry("/srv/folders/new", "/deep/new", 0, 0),
    ];
    let stored = p.add_user(user).await.expect("user with folders");
    assert!(
        stored
            .virtual_folders
            .iter()
            .all(|vf| vf.filesystem.is_none())
    );
    let fetched = p.user_by_username("mapper").await.unwrap();
    assert_eq!(fetched.virtual_folders, stored.virtual_folders);
    assert_eq!(fetched.virtual_folders[1].virtual_path, "/reports");
    let reports = p.folder_by_path("/s3/reports").await.expect("created");
    assert_eq!(reports.filesystem.provider, FsProvider::S3);
    let secret = &reports.filesystem.s3config.access_secret;
    assert!(secret.is_encrypted());
    assert_eq!(p.open_secret(secret).unwrap(), "folder secret");
    assert!(
        !serde_json::to_string(&reports.without_secrets())
            .unwrap()
            .contains("access_secret")
    );
    assert_eq!(
        p.folder_by_path("/srv/folders/new")
            .await
            .unwrap()
            .filesystem,
        Filesystem::default()
    );
    let mut other = sample_user("other");
    other.virtual_folders = vec![folder_entry("/srv/folders/a", "/shared", 0, 0)];
    p.add_user(other).await.unwrap();

    // Listing: byte order both ways, paging, filter, users per folder.
    let all = p.list_folders(&FolderQuery::default()).await.unwrap();
    let paths: Vec<_> = all.iter().map(|f| f.mapped_path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/s3/reports",
            "/srv/folders/a",
            "/srv/folders/b",
            "/srv/folders/new"
        ]
    );
    assert_eq!(all[1].users, ["mapper", "other"]);
    assert!(all[2].users.is_empty());
    let desc = p
        .list_folders(&FolderQuery {
            order: SortOrder::Desc,
            limit: 2,
            offset: 1,
            ..FolderQuery::default()
        })
        .await
        .unwrap();
    let paths: Vec<_> = desc.iter().map(|f| f.mapped_path.as_str()).collect();
    assert_eq!(paths, ["/srv/folders/b", "/srv/folders/a"]);
    let one = p
        .list_folders(&FolderQuery {
            mapped_path: Some("/srv/folders/b".into()),
            ..FolderQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(one.len(), 1);

    // Used quota: atomic deltas, reset; kept by an update of the storage.
    let (b1, b2) = (backend.clone(), backend.clone());
    let delta = |b: Arc<dyn Backend>| async move {
        for _ in 0..20 {
            b.update_folder_quota(
                "/srv/folders/b",
                crate::QuotaUpdate::Delta { size: 3, files: 1 },
            )
            .await
            .unwrap();
        }
    };
    tokio::join!(delta(b1), delta(b2));
    let b = p.folder_by_path("/srv/folders/b").await.unwrap();
    assert_eq!((b.used_quota_size, b.used_quota_files), (120, 40));
    assert!(b.last_quota_update > 0);
    p.reset_folder_quota("/srv/folders/b", 7, 1).await.unwrap();
    p.update_folder(Folder {
        mapped_path: "/srv/folders/b".into(),
        filesystem: s3.clone(),
        ..Folder::default()
    })
    .await
    .unwrap();
    let b = p.folder_by_path("/srv/folders/b").await.unwrap();
    assert_eq!((b.used_quota_size, b.used_quota_files), (7, 1));
    assert_eq!(b.filesystem.s3config.bucket, "b");
    assert!(matches!(
        p.add_folder_quota("/missing", 1, 1).await,
        Err(ProviderError::NotFound(_))
    ));

    // Mappings that break the rules.
    let refused = |vfs: Vec<VirtualFolder>, field: &'static str| {
        let p = p.clone();
        async move {
            let mut u = sample_user("bad");
            u.virtual_folders = vfs;
            match p.add_user(u).await {
                Err(ProviderError::InvalidField { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected {field} refused, got {other:?}"),
            }
        }
    };
    refused(
        vec![folder_entry("/srv/x", "/", 0, 0)],
        "virtual_folders.virtual_path",
    )
    .await;
    refused(
        vec![folder_entry("/srv/x", "rel", 0, 0)],
        "virtual_folders.virtual_path",
    )
    .await;
    refused(
        vec![
            folder_entry("/srv/x", "/a", 0, 0),
            folder_entry("/srv/y", "/a/b", 0, 0),
        ],
        "virtual_folders.virtual_path",
    )
    .await;
    refused(
        vec![
            folder_entry("/srv/x", "/a", 0, 0),
            folder_entry("/srv/x", "/b", 0, 0),
        ],
        "virtual_folders.mapped_path",
    )
    .await;
    refused(
        vec![folder_entry("/srv/sftp/bad/in", "/a", 0, 0)],
        "virtual_folders.mapped_path",
    )
    .await;
    refused(
        vec![folder_entry("/srv/x", "/a", -1, 0)],
        "virtual_folders.quota_size",
    )
    .await;
    refused(
        vec![folder_entry("/srv/x", "/a", -2, -2)],
        "virtual_folders.quota_size",
    )
    .await;
    assert!(
        matches!(
            p.folder_by_path("/srv/x").await,
            Err(ProviderError::NotFound(_))
        ),
        "a refused user creates no folder"
    );

    // Deleting a folder removes it from its users' mappings, nothing else.
    p.delete_folder("/srv/folders/a").await.unwrap();
    let mapper = p.user_by_username("mapper").await.unwrap();
    let left: Vec<_> = mapper
        .virtual_folders
        .iter()
        .map(|v| v.virtual_path.as_str())
        .collect();
    assert_eq!(left, ["/reports", "/deep/new"]);
    assert!(
        p.user_by_username("other")
            .await
            .unwrap()
            .virtual_folders
            .is_empty()
    );
    assert!(matches!(
        p.delete_folder("/srv/folders/a").await,
        Err(ProviderError::NotFound(_))
    ));
    assert!(matches!(
        p.folder_by_path("/srv/folders/a").await,
        Err(ProviderError::NotFound(_))
    ));
}

/// A valid user with only mandatory fields.
pub fn sample_user(username: &str) -> User {
    User {
        username: username.to_owned(),
        password: Some("secret".to_owned()),
        home_dir: format!("/srv/sftp/{username}"),
        permissions: vec![Permission::Any],
        ..User::default()
    }
}

/// Add, read back by id and username, update every updatable field, delete.
pub async fn crud_round_trip(backend: Arc<dyn Backend>) {
    let p = provider(backend);
    let input = User {
        id: 777,
        username: "full".into(),
        password: Some("plain pass".into()),
        public_keys: vec![KEY_A.into(), KEY_RSA.into()],
        home_dir: "/home/full".into(),
        uid: 1001,
        gid: 1002,
        max_sessions: 3,
        quota_size: 1 << 40,
        quota_files: 1000,
        permissions: vec![Permission::List, Permission::Download, Permission::Upload],
        used_quota_size: 55,
        used_quota_files: 66,
        last_quota_update: 77,
        upload_bandwidth: 100,
        download_bandwidth: 200,
        filesystem: Default::default(),
        virtual_folders: vec![folder_entry("/srv/shared/full", "/shared", -1, -1)],
    };
    let added = p.add_user(input.clone()).await.expect("add");
    assert!(added.id > 0);
    assert_ne!(added.id, 777, "the backend assigns ids");
    let hash = added.password.clone().expect("password stored");
    assert!(
        hash.starts_with("$argon2id$"),
        "plain password hashed on add: {hash}"
    );
    assert!(p.check_password(&added, "plain pass").await);
    assert!(!p.check_password(&added, "plain pass!").await);
    let expected = User {
        id: added.id,
        password: Some(hash.clone()),
        used_quota_size: 0,
        used_quota_files: 0,
        last_quota_update: 0,
        ..input.clone()
    };
    assert_eq!(
        added, expected,
        "insert returns the stored record, used quota zeroed"
    );
    assert_eq!(p.user_by_id(added.id).await.expect("by id"), expected);
    assert_eq!(p.user_by_username("full").await.expect("by name"), expected);

    // Make some used quota to check it survives the update.
    p.update_quota(&added, 10, 2).await.expect("quota");
    let before = p.user_by_id(added.id).await.unwrap();

    let changed = User {
        id: added.id,
        username: "renamed".into(),
        password: Some(hash.clone()),
        public_keys: vec![KEY_B.into()],
        home_dir: "/home/other".into(),
        uid: 0,
        gid: 65535,
        max_sessions: 0,
        quota_size: 0,
        quota_files: 5,
        permissions: vec![
            Permission::Any,
            Permission::Rename,
            Permission::CreateSymlinks,
        ],
        used_quota_size: 999_999,
        used_quota_files: 999,
        last_quota_update: 1,
        upload_bandwidth: 0,
        download_bandwidth: 12345,
        filesystem: Default::default(),
        virtual_folders: vec![
            folder_entry("/srv/shared/other", "/a/b", 10, 0),
            folder_entry("/srv/shared/full", "/shared2", 0, 0),
        ],
    };
    p.update_user(changed.clone()).await.expect("update");
    let after = p.user_by_id(added.id).await.expect("by id after update");
    assert_eq!(
        after,
        User {
            username: "full".into(),
            used_quota_size: 10,
            used_quota_files: 2,
            last_quota_update: before.last_quota_update,
            ..changed.clone()
        },
        "update changes every field but id, username and used quota"
    );
    assert!(matches!(
        p.user_by_username("renamed").await,
        Err(ProviderError::NotFound(_))
    ));

    // Removing the password (keys only) and clearing keys while keeping a password.
    let keys_only = User {
        password: None,
        ..after.clone()
    };
    p.update_user(keys_only).await.expect("update keys only");
    let stored = p.user_by_id(added.id).await.unwrap();
    assert_eq!(stored.password, None);
    assert_eq!(stored.public_keys, vec![KEY_B.to_owned()]);
    assert!(!p.check_password(&stored, "").await);
    let pwd_only = User {
        password: Some(hash.clone()),
        public_keys: vec![],
        ..stored
    };
    p.update_user(pwd_only).await.expect("update password only");
    let stored = p.user_by_id(added.id).await.unwrap();
    assert!(stored.public_keys.is_empty());
    assert_eq!(stored.password.as_deref(), Some(hash.as_str()));

    p.delete_user(added.id).await.expect("delete");
    assert!(matches!(
        p.user_by_id(added.id).await,
        Err(ProviderError::NotFound(_))
    ));
    assert!(matches!(
        p.user_by_username("full").await,
        Err(ProviderError::NotFound(_))
    ));
    assert!(matches!(
        p.delete_user(added.id).await,
        Err(ProviderError::NotFound(_))
    ));
    // The name is free again.
    p.add_user(sample_user("full"))
        .await
        .expect("re-add after delete");
}

/// A second user with the same name is refused with `AlreadyExists`.
pub async fn duplicate_username(backend: Arc<dyn Backend>) {
    let p = provider(backend);
    let first = p.add_user(sample_user("dup")).await.expect("add");
    let other = User {
        home_dir: "/elsewhere".into(),
        ..sample_user("dup")
    };
    match p.add_user(other).await {
        Err(ProviderError::AlreadyExists(name)) => assert_eq!(name, "dup"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    // The original is untouched and is the only one.
    assert_eq!(p.user_by_username("dup").await.unwrap(), first);
    let all = p.list_users(&UserQuery::default()).await.unwrap();
    assert_eq!(all.len(), 1);
    // Usernames are case-sensitive, like SFTPGo 0.9 on SQLite/bolt.
    p.add_user(sample_user("DUP"))
        .await
        .expect("different case is another user");
}

/// Unknown ids and usernames give `NotFound` everywhere.
pub async fn not_found(backend: Arc<dyn Backend>) {
    let p = provider(backend);
    assert!(matches!(
        p.user_by_id(1).await,
        Err(ProviderError::NotFound(_))
    ));
    assert!(matches!(
        p.user_by_id(-1).await,
        Err(ProviderError::NotFound(_))
    ));
    assert!(matches!(
        p.user_by_username("ghost").await,
        Err(ProviderError::NotFound(_))
    ));
    assert!(matches!(
        p.delete_user(42).await,
        Err(ProviderError::NotFound(_))
    ));
    let ghost = User {
        id: 42,
        ..sample_user("ghost")
    };
    assert!(matches!(
        p.update_user(ghost.clone()).await,
        Err(ProviderError::NotFound(_))
    ));
    assert!(matches!(
        p.update_quota(&ghost, 1, 1).await,
        Err(ProviderError::NotFound(_))
    ));
    assert!(matches!(
        p.reset_quota("ghost", 1, 1).await,
        Err(ProviderError::NotFound(_))
    ));
    // A failed update must not have created anything.
    assert!(
        p.list_users(&UserQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
}

/// Ids start at 1, increase, and are not reused after a delete.
pub async fn ids_increase(backend: Arc<dyn Backend>) {
    let p = provider(backend);
    let a = p.add_user(sample_user("a")).await.unwrap();
    let b = p.add_user(sample_user("b")).await.unwrap();
    assert_eq!(a.id, 1);
    assert!(b.id > a.id);
    p.delete_user(b.id).await.unwrap();
    let c = p.add_user(sample_user("c")).await.unwrap();
    assert!(c.id > b.id, "ids are not reused ({} after {})", c.id, b.id);
}

fn names(users: &[User]) -> Vec<&str> {
    users.iter().map(|u| u.username.as_str()).collect()
}

/// Ordering, paging, filtering and limit clamping.
pub async fn listing(backend: Arc<dyn Backend>) {
    let p = provider(backend);
    assert!(
        p.list_users(&UserQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    for name in ["carol", "alice", "erin", "bob", "dave"] {
        p.add_user(sample_user(name)).await.unwrap();
    }
    let q = |limit, offset, order, username: Option<&str>| UserQuery {
        limit,
        offset,
        order,
        username: username.map(str::to_owned),
    };
    let asc = p.list_users(&UserQuery::default()).await.unwrap();
    assert_eq!(names(&asc), ["alice", "bob", "carol", "dave", "erin"]);
    // Full records are returned.
    assert_eq!(asc[0], p.user_by_username("alice").await.unwrap());
    let desc = p
        .list_users(&q(100, 0, SortOrder::Desc, None))
        .await
        .unwrap();
    assert_eq!(names(&desc), ["erin", "dave", "carol", "bob", "alice"]);
    let page = p.list_users(&q(2, 1, SortOrder::Asc, None)).await.unwrap();
    assert_eq!(names(&page), ["bob", "carol"]);
    let page = p.list_users(&q(2, 1, SortOrder::Desc, None)).await.unwrap();
    assert_eq!(names(&page), ["dave", "carol"]);
    let page = p.list_users(&q(10, 4, SortOrder::Asc, None)).await.unwrap();
    assert_eq!(names(&page), ["erin"]);
    assert!(
        p.list_users(&q(10, 5, SortOrder::Asc, None))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        p.list_users(&q(10, u32::MAX, SortOrder::Asc, None))
            .await
            .unwrap()
            .is_empty()
    );
    let one = p
        .list_users(&q(10, 0, SortOrder::Asc, Some("carol")))
        .await
        .unwrap();
    assert_eq!(names(&one), ["carol"]);
    let one = p
        .list_users(&q(10, 0, SortOrder::Desc, Some("carol")))
        .await
        .unwrap();
    assert_eq!(names(&one), ["carol"]);
    assert!(
        p.list_users(&q(10, 1, SortOrder::Asc, Some("carol")))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        p.list_users(&q(10, 0, SortOrder::Asc, Some("zed")))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        p.list_users(&q(10, 0, SortOrder::Asc, Some("Carol")))
            .await
            .unwrap()
            .is_empty()
    );
    // limit is clamped to 1..=500.
    let clamped = p.list_users(&q(0, 0, SortOrder::Asc, None)).await.unwrap();
    assert_eq!(names(&clamped), ["alice"]);
    let big = p
        .list_users(&q(u32::MAX, 0, SortOrder::Desc, None))
        .await
        .unwrap();
    assert_eq!(big.len(), 5);
    // Ordering is by username bytes, not by id or insertion order.
    p.add_user(sample_user("Zed")).await.unwrap();
    p.add_user(sample_user("aaron")).await.unwrap();
    let asc = p.list_users(&q(3, 0, SortOrder::Asc, None)).await.unwrap();
    assert_eq!(names(&asc), ["Zed", "aaron", "alice"]);
}

/// Deltas add up (also negative), resets replace, `last_quota_update` moves.
pub async fn quota_deltas_and_reset(backend: Arc<dyn Backend>) {
    let p = provider(backend);
    let u = p.add_user(sample_user("q")).await.unwrap();
    let other = p.add_user(sample_user("other")).await.unwrap();
    assert_eq!(
        (u.used_quota_size, u.used_quota_files, u.last_quota_update),
        (0, 0, 0)
    );
    p.update_quota(&u, 100, 1).await.unwrap();
    p.update_quota(&u, 100, 1).await.unwrap();
    let s = p.user_by_id(u.id).await.unwrap();
    assert_eq!((s.used_quota_size, s.used_quota_files), (200, 2));
    assert!(
        s.last_quota_update > 1_500_000_000_000,
        "ms since epoch: {}",
        s.last_quota_update
    );
    p.update_quota(&u, -150, -1).await.unwrap();
    let s = p.user_by_id(u.id).await.unwrap();
    assert_eq!((s.used_quota_size, s.used_quota_files), (50, 1));
    // Large values (bigint column).
    p.update_quota(&u, 5 << 40, 0).await.unwrap();
    let s = p.user_by_id(u.id).await.unwrap();
    assert_eq!(s.used_quota_size, 50 + (5 << 40));
    p.reset_quota("q", 7, 3).await.unwrap();
    let s = p.user_by_id(u.id).await.unwrap();
    assert_eq!((s.used_quota_size, s.used_quota_files), (7, 3));
    p.reset_quota("q", 0, 0).await.unwrap();
    let s = p.user_by_id(u.id).await.unwrap();
    assert_eq!((s.used_quota_size, s.used_quota_files), (0, 0));
    // Only the named user changed.
    assert_eq!(p.user_by_id(other.id).await.unwrap(), other);
    // A quota change does not touch the other fields.
    assert_eq!(
        User {
            used_quota_size: 0,
            used_quota_files: 0,
            last_quota_update: 0,
            ..s
        },
        u
    );
}

/// 50 concurrent delta tasks add up exactly.
pub async fn concurrent_quota_deltas(backend: Arc<dyn Backend>) {
    let p = provider(backend);
    let u = p.add_user(sample_user("busy")).await.unwrap();
    let tasks: Vec<_> = (1..=50_i64)
        .map(|i| {
            let p = p.clone();
            let u = u.clone();
            tokio::spawn(async move { p.update_quota(&u, i * 1000, 1).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("update_quota");
    }
    let s = p.user_by_id(u.id).await.unwrap();
    assert_eq!(s.used_quota_size, 1000 * (50 * 51 / 2));
    assert_eq!(s.used_quota_files, 50);
}

/// `track_quota` Off / LimitedUsersOnly; resets apply whatever the mode.
pub async fn quota_tracking_modes(backend: Arc<dyn Backend>) {
    let manage = provider(backend.clone());
    let unlimited = manage.add_user(sample_user("unlimited")).await.unwrap();
    let limited = manage
        .add_user(User {
            quota_files: 10,
            ..sample_user("limited")
        })
        .await
        .unwrap();
    let by_size = manage
        .add_user(User {
            quota_size: 1 << 20,
            ..sample_user("bysize")
        })
        .await
        .unwrap();

    let off = DataProvider::new(backend.clone(), true, TrackQuota::Off);
    assert_eq!(off.track_quota(), TrackQuota::Off);
    off.update_quota(&limited, 10, 1).await.unwrap();
    off.update_quota(&unlimited, 10, 1).await.unwrap();
    assert_eq!(manage.user_by_id(limited.id).await.unwrap(), limited);
    assert_eq!(manage.user_by_id(unlimited.id).await.unwrap(), unlimited);
    off.reset_quota("limited", 4, 4).await.unwrap();
    assert_eq!(
        manage
            .user_by_id(limited.id)
            .await
            .unwrap()
            .used_quota_files,
        4
    );

    let lim = DataProvider::new(backend, true, TrackQuota::LimitedUsersOnly);
    assert_eq!(lim.track_quota(), TrackQuota::LimitedUsersOnly);
    lim.update_quota(&unlimited, 10, 1).await.unwrap();
    lim.update_quota(&limited, 10, 1).await.unwrap();
    lim.update_quota(&by_size, 10, 1).await.unwrap();
    assert_eq!(manage.user_by_id(unlimited.id).await.unwrap(), unlimited);
    let l = manage.user_by_id(limited.id).await.unwrap();
    assert_eq!(
        (l.used_quota_size, l.used_quota_files),
        (14, 5),
        "reset 4/4 then +10/+1"
    );
    let b = manage.user_by_id(by_size.id).await.unwrap();
    assert_eq!((b.used_quota_size, b.used_quota_files), (10, 1));
    lim.reset_quota("unlimited", 1, 1).await.unwrap();
    assert_eq!(
        manage
            .user_by_id(unlimited.id)
            .await
            .unwrap()
            .used_quota_size,
        1
    );
    assert_eq!(manage.track_quota(), TrackQuota::Always);
}

/// `manage_users = false`: writes refused, reads and quota still work.
pub async fn read_only(backend: Arc<dyn Backend>) {
    let rw = provider(backend.clone());
    let u = rw.add_user(sample_user("ro")).await.unwrap();
    let ro = DataProvider::new(backend, false, TrackQuota::Always);
    assert!(!ro.manage_users());
    assert!(matches!(
        ro.add_user(sample_user("new")).await,
        Err(ProviderError::ReadOnly)
    ));
    let changed = User {
        home_dir: "/changed".into(),
        ..u.clone()
    };
    assert!(matches!(
        ro.update_user(changed).await,
        Err(ProviderError::ReadOnly)
    ));
    assert!(matches!(
        ro.delete_user(u.id).await,
        Err(ProviderError::ReadOnly)
    ));
    // ReadOnly comes before validation and before existence checks.
    assert!(matches!(
        ro.add_user(User::default()).await,
        Err(ProviderError::ReadOnly)
    ));
    assert!(matches!(
        ro.delete_user(9999).await,
        Err(ProviderError::ReadOnly)
    ));
    assert_eq!(ro.user_by_id(u.id).await.unwrap(), u);
    assert_eq!(ro.user_by_username("ro").await.unwrap(), u);
    assert_eq!(
        ro.list_users(&UserQuery::default()).await.unwrap(),
        vec![u.clone()]
    );
    ro.update_quota(&u, 5, 1).await.unwrap();
    ro.reset_quota("ro", 6, 2).await.unwrap();
    assert_eq!(ro.user_by_id(u.id).await.unwrap().used_quota_size, 6);
    assert!(ro.check_password(&u, "secret").await);
}

fn expect_validation(result: crate::Result<User>, needle: &str) {
    match result {
        Err(e @ (ProviderError::Validation(_) | ProviderError::InvalidField { .. })) => {
            let msg = e.to_string();
            assert!(
                msg.contains(needle),
                "validation message {msg:?} lacks {needle:?}"
            )
        }
        other => panic!("expected Validation containing {needle:?}, got {other:?}"),
    }
}

/// No two users share files: a home equal to, inside or above another user's is refused
/// on add and on update; `users_base_dir` keeps homes beneath it and fills in a missing one.
pub async fn homes(backend: Arc<dyn Backend>) {
    let p = provider(backend.clone());
    let home = |name: &str, dir: &str| User {
        home_dir: dir.into(),
        ..sample_user(name)
    };
    let a = p.add_user(home("a", "/srv/sftp/a")).await.unwrap();
    for dir in ["/srv/sftp/a", "/srv/sftp/a/inner", "/srv/sftp", "/srv"] {
        expect_validation(p.add_user(home("b", dir)).await, "home_dir: ");
    }
    let b = p.add_user(home("b", "/srv/sftp/ab")).await.unwrap();
    // Updating a user to its own home is fine; to another's is not.
    p.update_user(User {
        quota_files: 5,
        ..a.clone()
    })
    .await
    .unwrap();
    let r = p
        .update_user(User {
            home_dir: "/srv/sftp/a/b".into(),
            ..b.clone()
        })
        .await;
    expect_validation(
        r.map(|()| User::default()),
        "overlaps the home of user \"a\"",
    );
    assert_eq!(p.user_by_id(b.id).await.unwrap().home_dir, "/srv/sftp/ab");

    let based = provider(backend).with_users_base_dir(Some("/data/sftp/".into()));
    let c = based.add_user(home("c", "")).await.unwrap();
    assert_eq!(c.home_dir, "/data/sftp/c");
    based
        .add_user(home("d", "/data/sftp/deep/d"))
        .await
        .unwrap();
    for dir in ["/srv/sftp/e", "/data/sftp", "/data/sftpx/e", "/data"] {
        expect_validation(based.add_user(home("e", dir)).await, "home_dir: ");
    }
    let r = based
        .update_user(User {
            home_dir: "/etc".into(),
            ..c
        })
        .await;
    expect_validation(r.map(|()| User::default()), "users_base_dir");
}

/// SFTPGo 0.9's validation rules and messages, on add and on update; nothing is stored.
pub async fn validation(backend: Arc<dyn Backend>) {
    let p = provider(backend);
    let ok = sample_user("valid");
    let cases: Vec<(User, &str)> = vec![
        (
            User {
                username: String::new(),
                ..ok.clone()
            },
            "Mandatory parameters missing",
        ),
        (
            User {
                home_dir: String::new(),
                ..ok.clone()
            },
            "Mandatory parameters missing",
        ),
        (
            User {
                password: None,
                public_keys: vec![],
                ..ok.clone()
            },
            "Please set password or at least a public_key",
        ),
        (
            User {
                password: Some(String::new()),
                public_keys: vec![],
                ..ok.clone()
            },
            "Please set password or at least a public_key",
        ),
        (
            User {
                permissions: vec![],
                ..ok.clone()
            },
            "Please grant some permissions to this user",
        ),
        (
            User {
                home_dir: "relative/dir".into(),
                ..ok.clone()
            },
            "home_dir: must be an absolute path, actual value: relative/dir",
        ),
        (
            User {
                home_dir: "/".into(),
                ..ok.clone()
            },
            "home_dir: must not be the root directory",
        ),
        (
            User {
                home_dir: "/srv/sftp/../../etc".into(),
                ..ok.clone()
            },
            "home_dir: must be normalised",
        ),
        (
            User {
                home_dir: "/srv//sftp".into(),
                ..ok.clone()
            },
            "home_dir: must not contain '//'",
        ),
        (
            User {
                home_dir: "/srv/sftp/valid/".into(),
                ..ok.clone()
            },
            "home_dir: must not end with '/'",
        ),
        (
            User {
                quota_size: -1,
                ..ok.clone()
            },
            "quota_size: must be 0 (unlimited) or positive",
        ),
        (
            User {
                quota_files: -1,
                ..ok.clone()
            },
            "quota_files:",
        ),
        (
            User {
                upload_bandwidth: -1,
                ..ok.clone()
            },
            "upload_bandwidth:",
        ),
        (
            User {
                download_bandwidth: -1,
                ..ok.clone()
            },
            "download_bandwidth:",
        ),
        (
            User {
                max_sessions: -1,
                ..ok.clone()
            },
            "max_sessions:",
        ),
        (
            User {
                uid: -1,
                ..ok.clone()
            },
            "uid: must be within 0..=2147483647",
        ),
        (
            User {
                gid: 1 << 31,
                ..ok.clone()
            },
            "gid: must be within",
        ),
        (
            User {
                username: "admin\u{202E}nimda".into(),
                ..ok.clone()
            },
            "username: ",
        ),
        (
            User {
                public_keys: vec![KEY_A.into(), "ssh-rsa notakey".into()],
                ..ok.clone()
            },
            "Could not parse key nr. 1: ",
        ),
        (
            User {
                public_keys: vec!["garbage".into()],
                ..ok.clone()
            },
            "Could not parse key nr. 0",
        ),
        (
            User {
                username: "a/b".into(),
                ..ok.clone()
            },
            "'/'",
        ),
        (
            User {
                username: "a\0b".into(),
                ..ok.clone()
            },
            "control",
        ),
        (
            User {
                username: "a\nb".into(),
                ..ok.clone()
            },
            "control",
        ),
        (
            User {
                username: "x".repeat(256),
                ..ok.clone()
            },
            "longer than 255 bytes",
        ),
    ];
    // Order of the checks: missing fields first, then credentials, then permissions.
    let order_case = User {
        home_dir: "rel".into(),
        permissions: vec![],
        ..User::default()
    };
    expect_validation(p.add_user(order_case).await, "Mandatory parameters missing");
    let order_case = User {
        password: None,
        permissions: vec![],
        ..ok.clone()
    };
    expect_validation(p.add_user(order_case).await, "Please set password");

    for (user, needle) in &cases {
        expect_validation(p.add_user(user.clone()).await, needle);
    }
    assert!(
        p.list_users(&UserQuery::default())
            .await
            .unwrap()
            .is_empty(),
        "nothing stored"
    );

    // The same rules on update.
    let stored = p.add_user(ok.clone()).await.unwrap();
    for (user, needle) in cases.into_iter().filter(|(u, _)| !u.username.is_empty()) {
        let r = p
            .update_user(User {
                id: stored.id,
                ..user
            })
            .await;
        expect_validation(r.map(|()| User::default()), needle);
    }
    assert_eq!(
        p.user_by_id(stored.id).await.unwrap(),
        stored,
        "failed updates change nothing"
    );

    // Limits that are accepted: 255 bytes, unicode, keys only, the extremes of numbers.
    let long = format!("{}a", "é".repeat(127));
    p.add_user(sample_user(&long)).await.expect("255 bytes");
    let keys_only = User {
        password: None,
        public_keys: vec![KEY_A.into(), KEY_B.into()],
        ..sample_user("k")
    };
    let k = p.add_user(keys_only).await.expect("keys only");
    assert_eq!(k.password, None);
    assert!(!p.check_password(&k, "").await);
    let extreme = User {
        uid: (1 << 31) - 1,
        gid: 70000,
        quota_size: i64::MAX,
        ..sample_user("extreme")
    };
    p.add_user(extreme)
        .await
        .expect("the largest values in range");
    let dup_perms = User {
        permissions: vec![Permission::List, Permission::List],
        ..sample_user("dp")
    };
    p.add_user(dup_perms)
        .await
        .expect("duplicate permissions allowed");
}

/// Plain passwords are hashed with argon2id; hashed ones are kept verbatim.
pub async fn password_handling(backend: Arc<dyn Backend>) {
    let p = provider(backend);
    let legacy = p
        .add_user(User {
            password: Some(PBKDF2_SFTPGO.into()),
            ..sample_user("legacy")
        })
        .await
        .unwrap();
    assert_eq!(legacy.password.as_deref(), Some(PBKDF2_SFTPGO));
    assert!(p.check_password(&legacy, "sftpgo").await);
    assert!(!p.check_password(&legacy, "sftpgO").await);

    let bcrypt_hash = bcrypt::hash("bc", 4).unwrap().replacen("$2b$", "$2y$", 1);
    let bc = p
        .add_user(User {
            password: Some(bcrypt_hash.clone()),
            ..sample_user("bc")
        })
        .await
        .unwrap();
    assert_eq!(bc.password.as_deref(), Some(bcrypt_hash.as_str()));
    assert!(p.check_password(&bc, "bc").await);

    let plain = p.add_user(sample_user("plain")).await.unwrap();
    let hash = plain.password.clone().unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=65536,t=3,p=2$"),
        "{hash}"
    );
    assert!(password::verify_password(&hash, "secret"));
    assert!(p.check_password(&plain, "secret").await);
    assert!(!p.check_password(&plain, "Secret").await);
    assert!(!p.check_password(&plain, "").await);

    // Update with the already-hashed value keeps it byte for byte.
    let same = User {
        home_dir: "/moved".into(),
        ..plain.clone()
    };
    p.update_user(same).await.unwrap();
    let stored = p.user_by_id(plain.id).await.unwrap();
    assert_eq!(stored.password.as_deref(), Some(hash.as_str()));
    assert_eq!(stored.home_dir, "/moved");

    // Update with a new plain password hashes it.
    p.update_user(User {
        password: Some("changed".into()),
        ..stored
    })
    .await
    .unwrap();
    let stored = p.user_by_id(plain.id).await.unwrap();
    let new_hash = stored.password.clone().unwrap();
    assert!(new_hash.starts_with("$argon2id$"));
    assert_ne!(new_hash, hash);
    assert!(p.check_password(&stored, "changed").await);
    assert!(!p.check_password(&stored, "secret").await);

    // Stored records carry the hash, the secret-free copy does not.
    assert_eq!(stored.without_secrets().password, None);
}

/// The health check works on a fresh backend.
/// An S3 user's `filesystem` round-trips, its secret stored encrypted (never as sent),
/// kept by an update that omits it, readable with the provider's key only; invalid
/// settings are refused naming the field; a local user stores no S3 settings.
pub async fn filesystems(backend: Arc<dyn Backend>) {
    use crate::{Filesystem, FsProvider, S3FsConfig, Secret, SecretKey};
    let key = SecretKey::from_material(b"conformance key");
    let p = provider(backend.clone()).with_secret_key(key.clone());
    let s3 = S3FsConfig {
        bucket: "bucket-1".into(),
        region: "garage".into(),
        endpoint: "http://127.0.0.1:3900".into(),
        access_key: "GK123".into(),
        access_secret: Secret::new("very secret"),
        key_prefix: "users/s3user/".into(),
        storage_class: "STANDARD".into(),
        upload_part_size: 8,
        upload_concurrency: 3,
        force_path_style: true,
    };
    let mut user = sample_user("s3user");
    user.filesystem = Filesystem {
        provider: FsProvider::S3,
        s3config: s3.clone(),
    };
    let stored = p.add_user(user).await.unwrap();
    let secret = &stored.filesystem.s3config.access_secret;
    assert!(secret.is_encrypted(), "{secret:?}");
    assert!(!secret.as_stored().contains("very secret"));
    assert_eq!(p.open_secret(secret).unwrap(), "very secret");
    assert!(SecretKey::from_material(b"other").open(secret).is_err());
    let fetched = backend.user_by_username("s3user").await.unwrap();
    assert_eq!(fetched.filesystem, stored.filesystem);
    let mut expected = s3.clone();
    expected.access_secret = secret.clone();
    assert_eq!(fetched.filesystem.s3config, expected);
    let shown = serde_json::to_string(&fetched.without_secrets()).unwrap();
    assert!(
        !shown.contains("access_secret") && !shown.contains("$aes"),
        "{shown}"
    );

    // An update without the secret (as the API shows the user) keeps it; a new one
    // replaces it; a new endpoint without a secret does not inherit the old one.
    let mut update = fetched.clone();
    update.filesystem.s3config.access_secret = Secret::default();
    update.quota_files = 5;
    p.update_user(update.clone()).await.unwrap();
    let after = backend.user_by_id(stored.id).await.unwrap();
    assert_eq!(after.quota_files, 5);
    assert_eq!(
        p.open_secret(&after.filesystem.s3config.access_secret)
            .unwrap(),
        "very secret"
    );
    update.filesystem.s3config.access_secret = Secret::new("rotated");
    p.update_user(update.clone()).await.unwrap();
    let after = backend.user_by_id(stored.id).await.unwrap();
    assert_eq!(
        p.open_secret(&after.filesystem.s3config.access_secret)
            .unwrap(),
        "rotated"
    );
    let mut moved = update.clone();
    moved.filesystem.s3config.endpoint = "https://elsewhere.example".into();
    moved.filesystem.s3config.access_secret = Secret::default();
    match p.update_user(moved).await {
        Err(ProviderError::InvalidField { field, .. }) => {
            assert_eq!(field, "filesystem.s3config.access_secret")
        }
        other => panic!("secret carried to a new endpoint: {other:?}"),
    }
    // A secret encrypted with another key is refused, not stored unreadable.
    let mut foreign = update.clone();
    foreign.filesystem.s3config.access_secret = SecretKey::from_material(b"other")
        .seal(&Secret::new("x"))
        .unwrap();
    assert!(matches!(
        p.update_user(foreign).await,
        Err(ProviderError::InvalidField {
            field: "filesystem.s3config.access_secret",
            ..
        })
    ));

    // Invalid settings, each naming its field.
    type Spoil = fn(&mut S3FsConfig);
    let cases: [(&str, Spoil); 9] = [
        ("filesystem.s3config.bucket", |c| c.bucket.clear()),
        ("filesystem.s3config.bucket", |c| c.bucket = "a/b".into()),
        ("filesystem.s3config.region", |c| {
            c.region.clear();
            c.endpoint.clear()
        }),
        ("filesystem.s3config.endpoint", |c| {
            c.endpoint = "ftp://x".into()
        }),
        ("filesystem.s3config.key_prefix", |c| {
            c.key_prefix = "/abs/".into()
        }),
        ("filesystem.s3config.key_prefix", |c| {
            c.key_prefix = "a/../b/".into()
        }),
        ("filesystem.s3config.key_prefix", |c| {
            c.key_prefix = "no-slash".into()
        }),
        ("filesystem.s3config.upload_part_size", |c| {
            c.upload_part_size = 4
        }),
        ("filesystem.s3config.upload_concurrency", |c| {
            c.upload_concurrency = 1000
        }),
    ];
    for (i, (name, spoil)) in cases.iter().enumerate() {
        let mut bad = sample_user(&format!("s3bad{i}"));
        bad.filesystem.provider = FsProvider::S3;
        bad.filesystem.s3config = s3.clone();
        spoil(&mut bad.filesystem.s3config);
        match p.add_user(bad).await {
            Err(ProviderError::InvalidField { field, .. }) => assert_eq!(field, *name, "case {i}"),
            other => panic!("case {i} ({name}): {other:?}"),
        }
    }

    // Back to local: the S3 settings are not kept.
    let mut local = update;
    local.filesystem.provider = FsProvider::Local;
    p.update_user(local).await.unwrap();
    let after = backend.user_by_id(stored.id).await.unwrap();
    assert_eq!(after.filesystem, Filesystem::default());
    p.delete_user(stored.id).await.unwrap();
}

pub async fn ping(backend: Arc<dyn Backend>) {
    let p = provider(backend);
    p.ping().await.expect("ping");
    assert!(!p.driver().is_empty());
}

/// The defender's storage: scores within the window, bans, extension, listing, removal
/// and cleanup (every [`crate::DefenderStore`]: the SQL backends and the in-process one).
pub async fn defender(store: &dyn crate::DefenderStore) {
    let (a, b) = ("192.0.2.1", "2001:db8::1");
    assert_eq!(store.host(a, 0, 0).await.unwrap(), None);
    assert_eq!(store.add_event(a, 1_000, 2, 0).await.unwrap(), 2);
    assert_eq!(store.add_event(a, 2_000, 1, 0).await.unwrap(), 3);
    // Only events after `since` count (the window only moves forward: a store may forget
    // what fell out of it).
    assert_eq!(store.add_event(a, 3_000, 1, 1_500).await.unwrap(), 2);
    assert_eq!(store.add_event(b, 3_000, 5, 1_500).await.unwrap(), 5);
    let host = store.host(a, 1_500, 3_000).await.unwrap().unwrap();
    assert_eq!((host.ip.as_str(), host.score, host.ban_until), (a, 2, None));
    // A ban forgets the events and runs until its end.
    store.ban(b, 10_000).await.unwrap();
    let host = store.host(b, 0, 5_000).await.unwrap().unwrap();
    assert_eq!((host.score, host.ban_until), (0, Some(10_000)));
    assert_eq!(store.host(b, 0, 10_000).await.unwrap(), None, "ended");
    store.extend_ban(b, 20_000, 6_000).await.unwrap();
    assert_eq!(
        store.host(b, 0, 15_000).await.unwrap().unwrap().ban_until,
        Some(20_000)
    );
    // An ended ban is not extended.
    store.extend_ban(b, 40_000, 25_000).await.unwrap();
    assert_eq!(store.host(b, 0, 25_000).await.unwrap(), None);
    store.ban(b, 30_000).await.unwrap();
    // Listing: by IP, scored or banned hosts only, bounded.
    let list = store.hosts(1_500, 5_000, 10).await.unwrap();
    let got: Vec<(&str, i64, Option<i64>)> = list
        .iter()
        .map(|h| (h.ip.as_str(), h.score, h.ban_until))
        .collect();
    assert_eq!(got, [(a, 2, None), (b, 0, Some(30_000))]);
    assert_eq!(store.hosts(1_500, 5_000, 1).await.unwrap().len(), 1);
    assert!(store.hosts(5_000, 40_000, 10).await.unwrap().is_empty());
    // Removal (unban) forgets everything about the host.
    assert!(store.remove(b, 0, 5_000).await.unwrap());
    assert!(!store.remove(b, 0, 5_000).await.unwrap());
    assert_eq!(store.host(b, 0, 5_000).await.unwrap(), None);
    assert_eq!(
        store.add_event(b, 6_000, 1, 0).await.unwrap(),
        1,
        "starts from zero"
    );
    // A second ban of the same host replaces the first.
    store.ban(a, 50_000).await.unwrap();
    store.ban(a, 60_000).await.unwrap();
    assert_eq!(
        store.host(a, 0, 55_000).await.unwrap().unwrap().ban_until,
        Some(60_000)
    );
    // Cleanup drops old events and ended bans.
    store.cleanup(7_000, 70_000).await.unwrap();
    assert_eq!(store.host(b, 1_500, 0).await.unwrap(), None);
    assert_eq!(store.host(a, 1_500, 0).await.unwrap(), None);
}
