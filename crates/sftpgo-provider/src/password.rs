//! Password hashing (argon2id for new passwords) and verification of every stored format.
//!
//! Stored formats (SFTPGo 0.9):
//! - `$argon2id$v=19$m=65536,t=3,p=2$<b64 salt>$<b64 key>` (PHC string, unpadded std base64);
//! - bcrypt `$2a$`, `$2b$`, `$2y$`;
//! - `$pbkdf2-<sha1|sha256|sha512>$<iterations>$<salt>$<std base64 key>`: the salt is used as
//!   its literal bytes, the key length is the decoded length.
//!
//! Verification never panics: a malformed or unsupported stored value simply does not match.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use rand::RngCore;
use subtle::ConstantTimeEq;

/// Prefixes of every hash format accepted as "already hashed".
pub const HASH_PREFIXES: [&str; 7] = [
    "$argon2id$",
    "$2a$",
    "$2b$",
    "$2y$",
    "$pbkdf2-sha1$",
    "$pbkdf2-sha256$",
    "$pbkdf2-sha512$",
];

/// argon2id memory cost (KiB) for new hashes (alexedwards/argon2id defaults).
pub const ARGON2_MEMORY_KIB: u32 = 65536;
/// argon2id iterations for new hashes.
pub const ARGON2_ITERATIONS: u32 = 3;
/// argon2id parallelism for new hashes.
pub const ARGON2_PARALLELISM: u32 = 2;
/// argon2id salt length for new hashes (bytes).
pub const ARGON2_SALT_LEN: usize = 16;
/// argon2id key length for new hashes (bytes).
pub const ARGON2_KEY_LEN: usize = 32;

/// Upper bound on the argon2 memory cost accepted from a stored hash (KiB, 1 GiB): a corrupt
/// value must not make verification try to allocate terabytes.
const MAX_ARGON2_MEMORY_KIB: u32 = 1 << 20;
/// Upper bound on the argon2 time cost accepted from a stored hash.
const MAX_ARGON2_ITERATIONS: u32 = 1 << 10;
/// Upper bound on the pbkdf2 derived-key length accepted from a stored hash (bytes).
const MAX_PBKDF2_KEY_LEN: usize = 1024;

/// Error from [`hash_password`].
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Hashes `plain` with argon2id (m=65536 KiB, t=3, p=2, 16-byte random salt, 32-byte key).
///
/// CPU- and memory-heavy (tens of milliseconds, 64 MiB): call it from a blocking thread.
pub fn hash_password(plain: &str) -> Result<String, HashError> {
    let params = Params::new(
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_PARALLELISM,
        Some(ARGON2_KEY_LEN),
    )
    .map_err(|e| HashError(e.to_string()))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut salt = [0u8; ARGON2_SALT_LEN];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError(e.to_string()))?;
    let hash = argon
        .hash_password(plain.as_bytes(), &salt)
        .map_err(|e| HashError(e.to_string()))?;
    Ok(hash.to_string())
}

/// Whether `s` starts with the prefix of a supported hash format (and so is stored verbatim).
pub fn is_hashed(s: &str) -> bool {
    HASH_PREFIXES.iter().any(|p| s.starts_with(p))
}

/// Checks `candidate` against the `stored` hash. Empty, malformed or unsupported stored
/// values never match.
pub fn verify_password(stored: &str, candidate: &str) -> bool {
    if stored.is_empty() {
        return false;
    }
    if stored.starts_with("$argon2id$") {
        verify_argon2id(stored, candidate)
    } else if stored.starts_with("$2a$") || stored.starts_with("$2b$") || stored.starts_with("$2y$")
    {
        // Truncating verify, like Go's x/crypto/bcrypt (only the first 72 bytes count).
        bcrypt::verify(candidate.as_bytes(), stored).unwrap_or(false)
    } else if stored.starts_with("$pbkdf2-") {
        verify_pbkdf2(stored, candidate)
    } else {
        false
    }
}

fn verify_argon2id(stored: &str, candidate: &str) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    if hash.algorithm != argon2::ARGON2ID_IDENT {
        return false;
    }
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    if params.m_cost() > MAX_ARGON2_MEMORY_KIB || params.t_cost() > MAX_ARGON2_ITERATIONS {
        return false;
    }
    let Some(output) = hash.hash else {
        return false;
    };
    if output.as_bytes().is_empty() {
        return false;
    }
    Argon2::default()
        .verify_password(candidate.as_bytes(), &hash)
        .is_ok()
}

/// Standard alphabet, padding optional.
const STD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn verify_pbkdf2(stored: &str, candidate: &str) -> bool {
    let parts: Vec<&str> = stored.split('$').collect();
    let ["", algo, iterations, salt, key] = parts.as_slice() else {
        return false;
    };
    let Ok(iterations) = iterations.parse::<u32>() else {
        return false;
    };
    if iterations == 0 {
        return false;
    }
    let Ok(expected) = STD_LENIENT.decode(key) else {
        return false;
    };
    if expected.is_empty() || expected.len() > MAX_PBKDF2_KEY_LEN {
        return false;
    }
    let mut derived = vec![0u8; expected.len()];
    let pwd = candidate.as_bytes();
    let salt = salt.as_bytes();
    match *algo {
        "pbkdf2-sha1" => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(pwd, salt, iterations, &mut derived),
        "pbkdf2-sha256" => pbkdf2::pbkdf2_hmac::<sha2::Sha256>(pwd, salt, iterations, &mut derived),
        "pbkdf2-sha512" => pbkdf2::pbkdf2_hmac::<sha2::Sha512>(pwd, salt, iterations, &mut derived),
        _ => return false,
    }
    derived.ct_eq(&expected).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fixtures computed independently with Python's hashlib.pbkdf2_hmac + base64.b64encode.
    const PBKDF2_SHA256: &str =
        "$pbkdf2-sha256$1000$salt-1234$HiA8CWifTWeVBazZUM/y0qdXKlATpiZCrHVyRo/gYnU=";
    const PBKDF2_SHA1: &str = "$pbkdf2-sha1$2000$abcdef$R4rGVA8xo34+Jiw0ahQwKBwuCgs=";
    const PBKDF2_SHA512: &str = "$pbkdf2-sha512$500$NaCl$8J2uFJ0LKVIRifL0SIO0sXyX0E8KZBLOIcP3NhYNo2gOeJkKdTF7Jrjv4nrhnoF260p28h+P/lk3es2NqM1vKw==";

    #[test]
    fn pbkdf2_known_vectors() {
        assert!(verify_password(PBKDF2_SHA256, "password"));
        assert!(!verify_password(PBKDF2_SHA256, "Password"));
        assert!(!verify_password(PBKDF2_SHA256, ""));
        assert!(verify_password(PBKDF2_SHA1, "secret"));
        assert!(!verify_password(PBKDF2_SHA1, "secret "));
        assert!(verify_password(PBKDF2_SHA512, "p4ss w0rd"));
        assert!(!verify_password(PBKDF2_SHA512, "p4ss"));
    }

    #[test]
    fn pbkdf2_accepts_unpadded_key() {
        let unpadded = PBKDF2_SHA256.trim_end_matches('=');
        assert_ne!(unpadded, PBKDF2_SHA256);
        assert!(verify_password(unpadded, "password"));
        assert!(!verify_password(unpadded, "wrong"));
    }

    #[test]
    fn pbkdf2_wrong_parameters_do_not_match() {
        // Same key, other iteration count / salt / digest.
        assert!(!verify_password(
            "$pbkdf2-sha256$1001$salt-1234$HiA8CWifTWeVBazZUM/y0qdXKlATpiZCrHVyRo/gYnU=",
            "password"
        ));
        assert!(!verify_password(
            "$pbkdf2-sha256$1000$salt-1235$HiA8CWifTWeVBazZUM/y0qdXKlATpiZCrHVyRo/gYnU=",
            "password"
        ));
        assert!(!verify_password(
            "$pbkdf2-sha512$1000$salt-1234$HiA8CWifTWeVBazZUM/y0qdXKlATpiZCrHVyRo/gYnU=",
            "password"
        ));
    }

    #[test]
    fn bcrypt_all_prefixes() {
        let h = bcrypt::hash("hunter2", 4).unwrap();
        assert!(h.starts_with("$2b$"), "{h}");
        let a = h.replacen("$2b$", "$2a$", 1);
        let y = h.replacen("$2b$", "$2y$", 1);
        for stored in [&h, &a, &y] {
            assert!(is_hashed(stored));
            assert!(verify_password(stored, "hunter2"), "{stored}");
            assert!(!verify_password(stored, "hunter3"), "{stored}");
            assert!(!verify_password(stored, ""), "{stored}");
        }
    }

    #[test]
    fn argon2id_round_trip() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=65536,t=3,p=2$"), "{h}");
        let parts: Vec<&str> = h.split('$').collect();
        assert_eq!(parts.len(), 6);
        // 16-byte salt and 32-byte key in unpadded base64.
        assert_eq!(parts[4].len(), 22);
        assert_eq!(parts[5].len(), 43);
        assert!(is_hashed(&h));
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "correct horse "));
        assert!(!verify_password(&h, ""));
        // Random salt: hashing twice differs.
        assert_ne!(h, hash_password("correct horse").unwrap());
    }

    #[test]
    fn argon2id_hash_with_other_parameters_verifies() {
        // Parameters come from the stored string (older/newer defaults still verify).
        let params = Params::new(1024, 1, 1, Some(16)).unwrap();
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let h = argon.hash_password(b"pw", &salt).unwrap().to_string();
        assert!(verify_password(&h, "pw"));
        assert!(!verify_password(&h, "px"));
    }

    #[test]
    fn empty_and_unknown_formats_never_match() {
        assert!(!verify_password("", ""));
        assert!(!verify_password("", "x"));
        assert!(!verify_password("plaintext", "plaintext"));
        assert!(!verify_password(
            "$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
            "x"
        ));
        assert!(!verify_password("$md5$abc", "abc"));
        assert!(!is_hashed("plaintext"));
        assert!(!is_hashed("$argon2i$v=19$..."));
        assert!(!is_hashed("$2x$10$..."));
    }

    #[test]
    fn malformed_hashes_do_not_panic() {
        let cases = [
            "$argon2id$",
            "$argon2id$v=19$m=65536,t=3,p=2$",
            "$argon2id$v=19$m=65536,t=3,p=2$!!!$!!!",
            "$argon2id$v=19$m=4294967295,t=3,p=2$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=65536,t=4294967295,p=2$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=65536,t=3,p=0$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$2a$",
            "$2a$99$abcdefghijklmnopqrstuv",
            "$2b$10$tooshort",
            "$2y$xx$abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0",
            "$pbkdf2-sha256$",
            "$pbkdf2-sha256$1000$salt",
            "$pbkdf2-sha256$abc$salt$HiA8CWifTWeVBazZUM/y0qdXKlATpiZCrHVyRo/gYnU=",
            "$pbkdf2-sha256$0$salt$HiA8CWifTWeVBazZUM/y0qdXKlATpiZCrHVyRo/gYnU=",
            "$pbkdf2-sha256$-5$salt$HiA8CWifTWeVBazZUM/y0qdXKlATpiZCrHVyRo/gYnU=",
            "$pbkdf2-sha256$1000$salt$",
            "$pbkdf2-sha256$1000$salt$not base64!",
            "$pbkdf2-sha256$1000$salt$key$extra",
            "$pbkdf2-md5$1000$salt$HiA8CWifTWeVBazZUM/y0qdXKlATpiZCrHVyRo/gYnU=",
            "$pbkdf2-",
        ];
        for stored in cases {
            assert!(!verify_password(stored, "password"), "{stored}");
            assert!(!verify_password(stored, ""), "{stored}");
        }
    }

    #[test]
    fn huge_inputs() {
        let huge = "x".repeat(1 << 20);
        assert!(!verify_password(PBKDF2_SHA256, &huge));
        assert!(!verify_password(&huge, "password"));
        assert!(!verify_password(&format!("$argon2id${huge}"), "password"));
        assert!(!verify_password(&format!("$2a${huge}"), "password"));
        assert!(!verify_password(
            &format!("$pbkdf2-sha256$1000${huge}$AAAA"),
            "password"
        ));
        // A huge base64 key is refused rather than derived.
        let big_key = "A".repeat(1 << 16);
        assert!(!verify_password(
            &format!("$pbkdf2-sha256$1$s${big_key}"),
            "password"
        ));
        // Hashing and verifying a huge password works.
        let h = hash_password(&huge).unwrap();
        assert!(verify_password(&h, &huge));
        assert!(!verify_password(&h, &huge[1..]));
        // bcrypt only considers the first 72 bytes (Go x/crypto/bcrypt behaviour).
        let b = bcrypt::hash(&huge[..100], 4).unwrap();
        assert!(verify_password(&b, &huge[..100]));
    }
}
