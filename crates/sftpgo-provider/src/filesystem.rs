//! Where a user's files live: SFTPGo 1.x's `filesystem` field (`provider` 0 = the local
//! home dir, 1 = an S3-compatible bucket with its `s3config`), and the [`Secret`] that
//! keeps the bucket's access secret encrypted at rest ([`SecretKey`]).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `filesystem.provider`: a number on the wire, as in SFTPGo 1.x.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub enum FsProvider {
    /// 0: the user's `home_dir` on this machine's disk.
    #[default]
    Local,
    /// 1: an S3-compatible bucket (`s3config`).
    S3,
}

impl TryFrom<i64> for FsProvider {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match v {
            0 => Ok(Self::Local),
            1 => Ok(Self::S3),
            other => Err(format!(
                "unknown filesystem provider {other} (0 = local, 1 = S3)"
            )),
        }
    }
}

impl From<FsProvider> for i64 {
    fn from(p: FsProvider) -> i64 {
        match p {
            FsProvider::Local => 0,
            FsProvider::S3 => 1,
        }
    }
}

/// A user's `filesystem` field.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Filesystem {
    pub provider: FsProvider,
    pub s3config: S3FsConfig,
}

impl Filesystem {
    /// The form kept in storage: a local user carries no S3 settings.
    pub(crate) fn normalized(mut self) -> Self {
        if self.provider == FsProvider::Local {
            self.s3config = S3FsConfig::default();
        }
        self
    }
}

/// A user's bucket: SFTPGo 1.x's `s3config` keys, plus 2.x's `force_path_style`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct S3FsConfig {
    pub bucket: String,
    /// Empty with an `endpoint`: `us-east-1`.
    pub region: String,
    /// Empty: AWS's endpoint for the region; else `http(s)://host[:port]`.
    pub endpoint: String,
    /// Empty (with an empty secret): the credentials of the server's environment.
    pub access_key: String,
    /// Encrypted at rest ([`SecretKey`]); never in API answers or logs.
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub access_secret: Secret,
    /// Where the user's files start in the bucket (`users/alice/`); empty: the root.
    pub key_prefix: String,
    pub storage_class: String,
    /// MiB per multipart part; 0: 5.
    pub upload_part_size: i64,
    /// Parts of one upload in flight at once; 0: 2.
    pub upload_concurrency: i64,
    pub force_path_style: bool,
}

/// A credential as stored: plain text only between the API and the provider, which
/// encrypts it before storing. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.is_empty(), self.is_encrypted()) {
            (true, _) => f.write_str("Secret(empty)"),
            (false, true) => f.write_str("Secret(encrypted)"),
            (false, false) => f.write_str("Secret(plain, redacted)"),
        }
    }
}

impl Secret {
    /// A secret as received (plain text) or as stored (encrypted).
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether this is the stored, encrypted form.
    pub fn is_encrypted(&self) -> bool {
        self.0.starts_with(ENCRYPTED_PREFIX)
    }

    /// The text as held (encrypted once stored); for storage backends only.
    pub fn as_stored(&self) -> &str {
        &self.0
    }
}

/// Marks an encrypted secret: AES-256-GCM, then base64 of nonce and ciphertext.
const ENCRYPTED_PREFIX: &str = "$aes-gcm$v1$";
const NONCE_LEN: usize = 12;
/// Bound to each ciphertext, so a value encrypted for another purpose does not decrypt.
const AAD: &[u8] = b"sftpgo/filesystem/secret";

/// Why a secret could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the secret is not in the encrypted form")]
    NotEncrypted,
    #[error("the encrypted secret is malformed")]
    Malformed,
    /// No key yet: the key file does not exist (it is made when the first secret is
    /// stored) or cannot be made.
    #[error("no key for stored secrets: {0}")]
    NoKey(String),
    /// Another key encrypted it (instances sharing a database need the same key).
    #[error(
        "the secret does not decrypt with this server's key (every instance sharing the data provider needs the same kms.secrets master key)"
    )]
    WrongKey,
}

/// The key that encrypts stored secrets (`kms.secrets.master_key[_path]`): given, or
/// read from a key file made (32 random bytes, hex, mode 0600) when the first secret is
/// stored, so a server whose users have no secret never needs to write its config dir.
#[derive(Clone)]
pub struct SecretKey {
    cipher: std::sync::Arc<std::sync::OnceLock<Aes256Gcm>>,
    /// Where the key is made when `cipher` is not set yet.
    file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(redacted)")
    }
}

impl SecretKey {
    /// The key derived from `material` (any length: a passphrase or a key file's bytes).
    pub fn from_material(material: &[u8]) -> Self {
        Self {
            cipher: std::sync::Arc::new(std::sync::OnceLock::from(Self::cipher_of(material))),
            file: None,
        }
    }

    fn cipher_of(material: &[u8]) -> Aes256Gcm {
        let key = Sha256::new()
            .chain_update(b"sftpgo secrets key v1\0")
            .chain_update(material)
            .finalize();
        Aes256Gcm::new_from_slice(&key).expect("a SHA-256 digest is a 256-bit key")
    }

    /// The key in `path` (its bytes, surrounding whitespace ignored; at least 16). A
    /// missing file is made when the first secret is sealed (`create`), otherwise it is
    /// an error now. Reads the file at once: call at start, not on the runtime's threads.
    pub fn from_file(path: &std::path::Path, create: bool) -> Result<Self, SecretError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let material = bytes.trim_ascii();
                if material.len() < 16 {
                    return Err(SecretError::NoKey(format!(
                        "{} holds fewer than 16 bytes",
                        path.display()
                    )));
                }
                Ok(Self::from_material(material))
            }
            // Missing (or its directory is): made, if it can be, by the first secret.
            Err(_) if create && !path.exists() => Ok(Self {
                cipher: Default::default(),
                file: Some(path.to_path_buf()),
            }),
            Err(e) => Err(SecretError::NoKey(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// The cipher; with `make`, the key file is made first when there is none yet (a
    /// one-time write of 64 bytes, by the first secret ever stored).
    fn cipher(&self, make: bool) -> Result<&Aes256Gcm, SecretError> {
        if let Some(c) = self.cipher.get() {
            return Ok(c);
        }
        let path = self
            .file
            .as_deref()
            .ok_or_else(|| SecretError::NoKey("none configured".into()))?;
        let material = match std::fs::read(path) {
            Ok(bytes) => bytes.trim_ascii().to_vec(),
            Err(_) if make && !path.exists() => make_key_file(path)?,
            Err(e) => {
                return Err(SecretError::NoKey(format!(
                    "{}: {e} (it is made when the first secret is stored)",
                    path.display()
                )));
            }
        };
        Ok(self.cipher.get_or_init(|| Self::cipher_of(&material)))
    }

    /// A key of this process only (secrets it encrypts do not survive a restart).
    pub fn ephemeral() -> Self {
        use rand::RngCore;
        let mut material = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut material);
        Self::from_material(&material)
    }

    /// The stored form of `plain`; an encrypted secret is checked and kept as it is.
    pub fn seal(&self, secret: &Secret) -> Result<Secret, SecretError> {
        if secret.is_empty() {
            return Ok(Secret::default());
        }
        if secret.is_encrypted() {
            self.open(secret)?;
            return Ok(secret.clone());
        }
        use rand::RngCore;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher(true)?
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: secret.0.as_bytes(),
                    aad: AAD,
                },
            )
            .map_err(|_| SecretError::Malformed)?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        Ok(Secret(format!(
            "{ENCRYPTED_PREFIX}{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(blob)
        )))
    }

    /// The plain text of a stored secret (empty stays empty).
    pub fn open(&self, secret: &Secret) -> Result<String, SecretError> {
        if secret.is_empty() {
            return Ok(String::new());
        }
        let encoded = secret
            .0
            .strip_prefix(ENCRYPTED_PREFIX)
            .ok_or(SecretError::NotEncrypted)?;
        let blob = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(encoded)
            .map_err(|_| SecretError::Malformed)?;
        if blob.len() < NONCE_LEN + 16 {
            return Err(SecretError::Malformed);
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SecretError::Malformed)?;
        let plain = self
            .cipher(false)?
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: AAD,
                },
            )
            .map_err(|_| SecretError::WrongKey)?;
        String::from_utf8(plain).map_err(|_| SecretError::Malformed)
    }
}

/// Writes a new random key to `path` (mode 0600, never over an existing file: another
/// instance that made it first wins, and its key is read).
fn make_key_file(path: &std::path::Path) -> Result<Vec<u8>, SecretError> {
    use rand::RngCore;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let cannot = |e: std::io::Error| {
        SecretError::NoKey(format!(
            "cannot create {}: {e} (set kms.secrets.master_key or master_key_path)",
            path.display()
        ))
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut f) => {
            f.write_all(hex.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(cannot)?;
            tracing::info!(sender = "kms", path = %path.display(), "generated the key for stored secrets (instances sharing the data provider need this same key)");
            Ok(hex.into_bytes())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(path)
            .map(|b| b.trim_ascii().to_vec())
            .map_err(cannot),
        Err(e) => Err(cannot(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_made_by_the_first_secret_and_read_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        let key = SecretKey::from_file(&path, true).unwrap();
        assert!(!path.exists(), "made before any secret");
        let foreign = SecretKey::from_material(b"x")
            .seal(&Secret::new("pw"))
            .unwrap();
        assert!(matches!(key.open(&foreign), Err(SecretError::NoKey(_))));
        let sealed = key.seal(&Secret::new("pw")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Another process reading the file (a restart) opens it.
        let again = SecretKey::from_file(&path, false).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), "pw");
        // A directory that cannot hold the file: the seal fails and says what to do.
        let blocked = SecretKey::from_file(&dir.path().join("nodir/secrets.key"), true).unwrap();
        match blocked.seal(&Secret::new("pw")) {
            Err(SecretError::NoKey(m)) => assert!(m.contains("master_key"), "{m}"),
            other => panic!("{other:?}"),
        }
        std::fs::write(dir.path().join("short"), "tooshort").unwrap();
        assert!(SecretKey::from_file(&dir.path().join("short"), false).is_err());
        assert!(SecretKey::from_file(&dir.path().join("missing"), false).is_err());
    }

    #[test]
    fn secrets_round_trip_and_refuse_other_keys_and_tampering() {
        let key = SecretKey::from_material(b"one");
        let sealed = key.seal(&Secret::new("s3cr3t")).unwrap();
        assert!(sealed.is_encrypted());
        assert!(!sealed.as_stored().contains("s3cr3t"));
        assert_eq!(key.open(&sealed).unwrap(), "s3cr3t");
        // Sealing twice gives different texts (fresh nonce), both readable.
        let again = key.seal(&Secret::new("s3cr3t")).unwrap();
        assert_ne!(again, sealed);
        // An encrypted secret is kept as it is (a GET then PUT of the stored form).
        assert_eq!(key.seal(&sealed).unwrap(), sealed);
        let other = SecretKey::from_material(b"two");
        assert_eq!(other.open(&sealed), Err(SecretError::WrongKey));
        assert_eq!(other.seal(&sealed), Err(SecretError::WrongKey));
        let mut tampered = sealed.as_stored().to_owned();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(key.open(&Secret::new(tampered)).is_err());
        assert_eq!(
            key.open(&Secret::new("$aes-gcm$v1$!!")),
            Err(SecretError::Malformed)
        );
        assert_eq!(
            key.open(&Secret::new("plain")),
            Err(SecretError::NotEncrypted)
        );
        assert_eq!(key.open(&Secret::default()).unwrap(), "");
        assert_eq!(key.seal(&Secret::default()).unwrap(), Secret::default());
    }

    #[test]
    fn secrets_never_show_in_debug_or_when_empty_in_json() {
        let cfg = S3FsConfig {
            bucket: "b".into(),
            access_secret: Secret::new("s3cr3t"),
            ..S3FsConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("s3cr3t"));
        let fs = Filesystem {
            provider: FsProvider::S3,
            s3config: S3FsConfig {
                access_secret: Secret::default(),
                ..cfg
            },
        };
        let json = serde_json::to_value(&fs).unwrap();
        assert_eq!(json["provider"], 1);
        assert!(json["s3config"].get("access_secret").is_none());
        let back: Filesystem = serde_json::from_value(json).unwrap();
        assert_eq!(back, fs);
        assert!(serde_json::from_str::<Filesystem>(r#"{"provider": 7}"#).is_err());
        assert_eq!(
            serde_json::from_str::<Filesystem>("{}").unwrap(),
            Filesystem::default()
        );
    }
}
