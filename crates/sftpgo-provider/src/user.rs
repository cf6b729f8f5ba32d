use serde::{Deserialize, Serialize};

use crate::ProviderError;
use crate::filesystem::{Filesystem, Secret};
use crate::folder::VirtualFolder;

/// One of the spec's eight permissions. `*` grants all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    #[serde(rename = "*")]
    Any,
    #[serde(rename = "list")]
    List,
    #[serde(rename = "download")]
    Download,
    #[serde(rename = "upload")]
    Upload,
    #[serde(rename = "delete")]
    Delete,
    #[serde(rename = "rename")]
    Rename,
    #[serde(rename = "create_dirs")]
    CreateDirs,
    #[serde(rename = "create_symlinks")]
    CreateSymlinks,
}

/// A virtual account, field for field SFTPGo 0.9's User (JSON names = SQL column names).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct User {
    pub id: i64,
    pub username: String,
    /// Stored hash (`$argon2id$`, bcrypt, `$pbkdf2-...$`); plain text only before storing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// authorized_keys lines.
    pub public_keys: Vec<String>,
    pub home_dir: String,
    pub uid: i64,
    pub gid: i64,
    /// 0 = unlimited.
    pub max_sessions: i64,
    /// Bytes; 0 = unlimited.
    pub quota_size: i64,
    /// Files; 0 = unlimited.
    pub quota_files: i64,
    pub permissions: Vec<Permission>,
    pub used_quota_size: i64,
    pub used_quota_files: i64,
    /// Milliseconds since the Unix epoch.
    pub last_quota_update: i64,
    /// KB/s (1 KB = 1000 bytes); 0 = unlimited.
    pub upload_bandwidth: i64,
    /// KB/s (1 KB = 1000 bytes); 0 = unlimited.
    pub download_bandwidth: i64,
    /// Where the files live (SFTPGo 1.x): the home dir, or a bucket.
    pub filesystem: Filesystem,
    /// Folders mapped into the user's tree (SFTPGo 1.x).
    pub virtual_folders: Vec<VirtualFolder>,
}

impl User {
    /// Whether the user holds `perm` (directly or through `*`).
    pub fn has_permission(&self, perm: Permission) -> bool {
        self.permissions
            .iter()
            .any(|p| *p == Permission::Any || *p == perm)
    }

    /// Whether quota limits apply to this user.
    pub fn has_quota_limits(&self) -> bool {
        self.quota_size > 0 || self.quota_files > 0
    }

    /// Parses every entry of `public_keys` as an authorized_keys line (`type base64 [comment]`;
    /// option prefixes are not supported). The first bad entry gives
    /// `Validation("Could not parse key nr. N: ...")`, N counted from 0 like SFTPGo 0.9.
    pub fn parsed_public_keys(&self) -> Result<Vec<russh::keys::PublicKey>, ProviderError> {
        self.public_keys
            .iter()
            .enumerate()
            .map(|(i, line)| {
                parse_authorized_key(line).map_err(|e| {
                    ProviderError::Validation(format!("Could not parse key nr. {i}: {e}"))
                })
            })
            .collect()
    }

    /// Whether `key` is one of the user's public keys (key data compared, comments ignored).
    /// Unparseable stored entries never match.
    pub fn has_public_key(&self, key: &russh::keys::PublicKey) -> bool {
        self.public_keys
            .iter()
            .filter_map(|line| parse_authorized_key(line).ok())
            .any(|k| k.key_data() == key.key_data())
    }

    /// A copy without the password and the storage credentials, for logs and API
    /// responses.
    pub fn without_secrets(&self) -> User {
        let mut user = User {
            password: None,
            ..self.clone()
        };
        user.filesystem.s3config.access_secret = Secret::default();
        user
    }
}

/// Parses one authorized_keys line: `type base64 [comment]`, surrounding whitespace ignored.
pub(crate) fn parse_authorized_key(line: &str) -> Result<russh::keys::PublicKey, String> {
    let line = line.trim();
    if line.is_empty() {
        return Err("empty key".to_owned());
    }
    russh::keys::PublicKey::from_openssh(line).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKiqVah2eauGBSyuYBpoPb73fmxK3SxfvonBg30GHZAo alice@host";
    const ED25519_OTHER: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILUmmr7sQssTFi2smWlTETvUESkJudwUTJSxIl9cZ1Xz";

    fn user_with_keys(keys: &[&str]) -> User {
        User {
            public_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            ..User::default()
        }
    }

    #[test]
    fn parses_keys_and_matches_ignoring_comment() {
        let u = user_with_keys(&[ED25519, ED25519_OTHER]);
        let keys = u.parsed_public_keys().unwrap();
        assert_eq!(keys.len(), 2);
        // Same key data, different comment.
        let offered = russh::keys::PublicKey::from_openssh(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKiqVah2eauGBSyuYBpoPb73fmxK3SxfvonBg30GHZAo bob",
        )
        .unwrap();
        assert!(u.has_public_key(&offered));
        let only_other = user_with_keys(&[ED25519_OTHER]);
        assert!(!only_other.has_public_key(&offered));
        assert!(!User::default().has_public_key(&offered));
    }

    #[test]
    fn bad_key_reports_its_index() {
        let u = user_with_keys(&[ED25519, "ssh-ed25519 not-base64"]);
        match u.parsed_public_keys() {
            Err(ProviderError::Validation(msg)) => {
                assert!(msg.starts_with("Could not parse key nr. 1: "), "{msg}")
            }
            other => panic!("unexpected {other:?}"),
        }
        let opts = user_with_keys(&[&format!("no-pty {ED25519}")]);
        assert!(opts.parsed_public_keys().is_err());
        let empty = user_with_keys(&[""]);
        assert!(empty.parsed_public_keys().is_err());
        // Unparseable entries are skipped by has_public_key, valid ones still match.
        let mixed = user_with_keys(&["garbage", ED25519]);
        let offered = russh::keys::PublicKey::from_openssh(ED25519).unwrap();
        assert!(mixed.has_public_key(&offered));
    }

    #[test]
    fn without_secrets_drops_password_only() {
        let u = User {
            username: "a".into(),
            password: Some("$2a$10$x".into()),
            public_keys: vec![ED25519.into()],
            ..User::default()
        };
        let s = u.without_secrets();
        assert_eq!(s.password, None);
        assert_eq!(s.public_keys, u.public_keys);
        assert_eq!(s.username, "a");
        assert!(!serde_json::to_string(&s).unwrap().contains("password"));
    }
}
