//! SSH host keys: the configured ones, or a default set generated once in the config dir.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use russh::keys::ssh_key::{LineEnding, private::PrivateKey};
use russh::keys::{Algorithm, EcdsaCurve};

/// The default key set: modern clients pick ed25519; ECDSA and RSA (SHA-2 signatures)
/// serve older ones.
const DEFAULT_KEYS: &[(&str, DefaultKey)] = &[
    ("id_ed25519", DefaultKey::Ed25519),
    ("id_ecdsa", DefaultKey::EcdsaP256),
    ("id_rsa", DefaultKey::Rsa3072),
];

#[derive(Clone, Copy)]
enum DefaultKey {
    Ed25519,
    EcdsaP256,
    Rsa3072,
}

/// Loads `configured` (paths already resolved against the config dir), or when empty the
/// default keys in `config_dir`, generating any that are missing (mode 0600).
pub fn load_or_generate(config_dir: &Path, configured: &[PathBuf]) -> Result<Vec<PrivateKey>> {
    if !configured.is_empty() {
        return configured.iter().map(|p| load(p)).collect();
    }
    let mut keys = Vec::with_capacity(DEFAULT_KEYS.len());
    for (name, kind) in DEFAULT_KEYS {
        let path = config_dir.join(name);
        if path.exists() {
            keys.push(load(&path)?);
        } else {
            let key = generate(*kind)?;
            write_private(&path, &key)?;
            tracing::info!(sender = "sftpd", path = %path.display(), "generated host key");
            keys.push(key);
        }
    }
    Ok(keys)
}

fn load(path: &Path) -> Result<PrivateKey> {
    let key = russh::keys::load_secret_key(path, None)
        .with_context(|| format!("cannot load host key {}", path.display()))?;
    Ok(key)
}

fn generate(kind: DefaultKey) -> Result<PrivateKey> {
    let mut rng = rand::rng();
    let algorithm = match kind {
        DefaultKey::Ed25519 => Algorithm::Ed25519,
        DefaultKey::EcdsaP256 => Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        },
        DefaultKey::Rsa3072 => {
            let key = russh::keys::ssh_key::private::RsaKeypair::random(&mut rng, 3072)
                .context("cannot generate an RSA host key")?;
            return Ok(PrivateKey::from(key));
        }
    };
    PrivateKey::random(&mut rng, algorithm).context("cannot generate a host key")
}

fn write_private(path: &Path, key: &PrivateKey) -> Result<()> {
    let pem = key
        .to_openssh(LineEnding::LF)
        .context("cannot encode host key")?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "cannot write host key {} (is the config dir writable?)",
                path.display()
            )
        })?;
    file.write_all(pem.as_bytes())?;
    file.sync_all()?;
    Ok(())
}
