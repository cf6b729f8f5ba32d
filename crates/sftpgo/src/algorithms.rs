//! The SSH algorithms the operator chose (`sftpd.kex_algorithms`, `sftpd.ciphers`,
//! `sftpd.macs`, `sftpd.host_key_algorithms`), validated against what russh implements;
//! an empty list keeps our defaults. Order is preference.

use russh::keys::{Algorithm, EcdsaCurve, HashAlg};
use russh::{cipher, kex, mac};

/// A name the server does not implement (or refuses to offer: `none`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{key}: unknown or unsupported algorithm {name:?} (supported: {supported})")]
pub struct UnknownAlgorithm {
    pub key: &'static str,
    pub name: String,
    pub supported: String,
}

/// Default key exchanges: no SHA-1, hybrid post-quantum first.
pub const DEFAULT_KEX: &[kex::Name] = &[
    kex::MLKEM768X25519_SHA256,
    kex::CURVE25519,
    kex::CURVE25519_PRE_RFC_8731,
    kex::ECDH_SHA2_NISTP256,
    kex::ECDH_SHA2_NISTP384,
    kex::ECDH_SHA2_NISTP521,
    kex::DH_G16_SHA512,
    kex::DH_G14_SHA256,
];

/// Always offered after the key exchanges: extension negotiation and OpenSSH's strict
/// key exchange (the Terrapin fix). Not algorithms an operator picks.
const KEX_EXTENSIONS: &[kex::Name] = &[
    kex::EXTENSION_SUPPORT_AS_SERVER,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];

/// Default ciphers: AEAD first, CTR for old clients; no CBC.
pub const DEFAULT_CIPHERS: &[cipher::Name] = &[
    cipher::AES_128_GCM,
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_GCM,
    cipher::AES_128_CTR,
    cipher::AES_192_CTR,
    cipher::AES_256_CTR,
];

/// Default MACs (used with CTR ciphers only): SHA-2, encrypt-then-MAC first.
pub const DEFAULT_MACS: &[mac::Name] = &[
    mac::HMAC_SHA256_ETM,
    mac::HMAC_SHA512_ETM,
    mac::HMAC_SHA256,
    mac::HMAC_SHA512,
];

/// Host key (and user key signature) algorithms: no SHA-1 `ssh-rsa`. Also the whole
/// set an operator may choose from.
pub const DEFAULT_KEY_ALGORITHMS: &[Algorithm] = &[
    Algorithm::Ed25519,
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP256,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP384,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP521,
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha512),
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha256),
    },
];

/// The algorithms a server offers, in preference order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Algorithms {
    pub kex: Vec<kex::Name>,
    pub ciphers: Vec<cipher::Name>,
    pub macs: Vec<mac::Name>,
    pub host_keys: Vec<Algorithm>,
}

impl Default for Algorithms {
    fn default() -> Self {
        Self {
            kex: DEFAULT_KEX.to_vec(),
            ciphers: DEFAULT_CIPHERS.to_vec(),
            macs: DEFAULT_MACS.to_vec(),
            host_keys: DEFAULT_KEY_ALGORITHMS.to_vec(),
        }
    }
}

/// Resolves each name in `wanted` among `supported` (by its SSH name); empty keeps
/// `default`.
fn pick<T: Clone>(
    key: &'static str,
    wanted: &[String],
    supported: &[T],
    name_of: impl Fn(&T) -> String,
    default: &[T],
) -> Result<Vec<T>, UnknownAlgorithm> {
    if wanted.iter().all(|w| w.trim().is_empty()) {
        return Ok(default.to_vec());
    }
    wanted
        .iter()
        .map(|w| w.trim())
        .filter(|w| !w.is_empty())
        .map(|w| {
            supported
                .iter()
                .find(|s| name_of(s) == w)
                .cloned()
                .ok_or_else(|| UnknownAlgorithm {
                    key,
                    name: w.to_owned(),
                    supported: supported
                        .iter()
                        .map(&name_of)
                        .collect::<Vec<_>>()
                        .join(", "),
                })
        })
        .collect()
}

impl Algorithms {
    /// The configured lists, each checked against what the server implements (`none`
    /// is never offered; the key exchange extensions are added by the server itself).
    pub fn from_config(
        kex_algorithms: &[String],
        ciphers: &[String],
        macs: &[String],
        host_key_algorithms: &[String],
    ) -> Result<Self, UnknownAlgorithm> {
        let kexes: Vec<kex::Name> = kex::ALL_KEX_ALGORITHMS
            .iter()
            .map(|n| **n)
            .filter(|n| *n != kex::NONE)
            .collect();
        let all_ciphers: Vec<cipher::Name> = cipher::ALL_CIPHERS
            .iter()
            .map(|n| **n)
            .filter(|n| *n != cipher::NONE && *n != cipher::CLEAR)
            .collect();
        let all_macs: Vec<mac::Name> = mac::ALL_MAC_ALGORITHMS
            .iter()
            .map(|n| **n)
            .filter(|n| *n != mac::NONE)
            .collect();
        Ok(Self {
            kex: pick(
                "sftpd.kex_algorithms",
                kex_algorithms,
                &kexes,
                |n| n.as_ref().to_owned(),
                DEFAULT_KEX,
            )?,
            ciphers: pick(
                "sftpd.ciphers",
                ciphers,
                &all_ciphers,
                |n| n.as_ref().to_owned(),
                DEFAULT_CIPHERS,
            )?,
            macs: pick(
                "sftpd.macs",
                macs,
                &all_macs,
                |n| n.as_ref().to_owned(),
                DEFAULT_MACS,
            )?,
            host_keys: pick(
                "sftpd.host_key_algorithms",
                host_key_algorithms,
                DEFAULT_KEY_ALGORITHMS,
                |a| a.as_str().to_owned(),
                DEFAULT_KEY_ALGORITHMS,
            )?,
        })
    }

    /// The key exchange list as offered: the chosen ones, then the extensions.
    pub fn offered_kex(&self) -> Vec<kex::Name> {
        self.kex.iter().chain(KEX_EXTENSIONS).copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn empty_lists_keep_the_defaults_and_order_is_kept() {
        assert_eq!(
            Algorithms::from_config(&[], &[], &[], &[]).unwrap(),
            Algorithms::default()
        );
        let a = Algorithms::from_config(
            &strings(&["ecdh-sha2-nistp256", "curve25519-sha256"]),
            &strings(&["aes256-ctr", "aes128-cbc"]),
            &strings(&["hmac-sha1"]),
            &strings(&["rsa-sha2-256", "ssh-ed25519"]),
        )
        .unwrap();
        assert_eq!(a.kex, [kex::ECDH_SHA2_NISTP256, kex::CURVE25519]);
        assert_eq!(a.ciphers, [cipher::AES_256_CTR, cipher::AES_128_CBC]);
        assert_eq!(a.macs, [mac::HMAC_SHA1]);
        assert_eq!(a.host_keys[1], Algorithm::Ed25519);
        assert_eq!(
            a.offered_kex().last(),
            Some(&kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER)
        );
    }

    #[test]
    fn unknown_names_name_the_key_and_the_supported_ones() {
        let e = Algorithms::from_config(
            &[],
            &strings(&["aes128-gcm@openssh.com", "rot13"]),
            &[],
            &[],
        )
        .unwrap_err();
        assert_eq!((e.key, e.name.as_str()), ("sftpd.ciphers", "rot13"));
        assert!(e.to_string().contains("aes256-ctr"), "{e}");
        for (k, c, m, h, key) in [
            (vec!["none"], vec![], vec![], vec![], "sftpd.kex_algorithms"),
            (vec![], vec!["none"], vec![], vec![], "sftpd.ciphers"),
            (vec![], vec![], vec!["none"], vec![], "sftpd.macs"),
            (
                vec![],
                vec![],
                vec![],
                vec!["ssh-rsa"],
                "sftpd.host_key_algorithms",
            ),
            (
                vec!["ext-info-s"],
                vec![],
                vec![],
                vec![],
                "sftpd.kex_algorithms",
            ),
        ] {
            let e = Algorithms::from_config(&strings(&k), &strings(&c), &strings(&m), &strings(&h))
                .unwrap_err();
            assert_eq!(e.key, key);
        }
    }
}
