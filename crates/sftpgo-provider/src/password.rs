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

// What a stored hash may ask of one verification. A login costs the server what the hash
// says; a hash stored by mistake or by an attacker with API access must not make each
// attempt take a core for minutes or gigabytes of memory (measured: pbkdf2 with 2e9
// iterations kept a core busy over 60 s after the client left). Each limit is several
// times what the usual tools produce (argon2id 64 MiB/t=3, bcrypt 10-12, pbkdf2 <= 600,000)
// and keeps one verification around a second of one core at most.

/// argon2id memory cost limit (KiB): 256 MiB.
pub const MAX_ARGON2_MEMORY_KIB: u32 = 256 * 1024;
/// argon2id time cost (iterations) limit.
pub const MAX_ARGON2_ITERATIONS: u32 = 16;
/// argon2id parallelism limit (lanes).
pub const MAX_ARGON2_PARALLELISM: u32 = 16;
/// bcrypt cost limit (2^14 rounds, about a second).
pub const MAX_BCRYPT_COST: u32 = 14;
/// pbkdf2 iteration limit, for the whole key: each digest-sized block of the stored key
/// costs the iterations again (a 64-byte sha1 key is 4 blocks).
pub const MAX_PBKDF2_ITERATIONS: u32 = 2_000_000;
/// Upper bound on the pbkdf2 derived-key length accepted from a stored hash (bytes).
const MAX_PBKDF2_KEY_LEN: usize = 1024;

/// A stored hash whose parameters ask more work than one login may cost.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashCostError {
    #[error("argon2id memory cost {0} KiB is over the limit of {MAX_ARGON2_MEMORY_KIB} KiB")]
    Argon2Memory(u32),
    #[error("argon2id time cost {0} is over the limit of {MAX_ARGON2_ITERATIONS}")]
    Argon2Iterations(u32),
    #[error("argon2id parallelism {0} is over the limit of {MAX_ARGON2_PARALLELISM}")]
    Argon2Parallelism(u32),
    #[error("bcrypt cost {0} is over the limit of {MAX_BCRYPT_COST}")]
    BcryptCost(u32),
    #[error("pbkdf2 iterations {0} are over the limit of {MAX_PBKDF2_ITERATIONS}")]
    Pbkdf2Iterations(u32),
    /// Each output block of a key longer than one digest costs all the iterations again.
    #[error(
        "pbkdf2 work of {iterations} iterations x {blocks} key blocks is over the limit of {MAX_PBKDF2_ITERATIONS} block iterations"
    )]
    Pbkdf2Work { iterations: u32, blocks: u64 },
}

/// Whether verifying against `stored` stays within the limits above. A value that is not
/// a parseable hash passes (it never matches anyway, at no cost).
pub fn check_cost(stored: &str) -> Result<(), HashCostError> {
    if stored.starts_with("$argon2id$") {
        let Ok(hash) = PasswordHash::new(stored) else {
            return Ok(());
        };
        // Read from the string before argon2 sees them: its `Params::try_from` computes
        // `8 * p` in u32, which overflows (a panic in debug builds) for p over 2^29
        // (found by fuzz/password_hash). Every occurrence: a repeated key is taken last
        // by argon2 (`p=1,p=1888888888`, found next).
        for (name, value) in hash.params.iter() {
            let Ok(v) = value.decimal() else { continue };
            match name.as_str() {
                "m" if v > MAX_ARGON2_MEMORY_KIB => return Err(HashCostError::Argon2Memory(v)),
                "t" if v > MAX_ARGON2_ITERATIONS => {
                    return Err(HashCostError::Argon2Iterations(v));
                }
                "p" if v > MAX_ARGON2_PARALLELISM => {
                    return Err(HashCostError::Argon2Parallelism(v));
                }
                _ => {}
            }
        }
        let Ok(params) = Params::try_from(&hash) else {
            return Ok(());
        };
        if params.m_cost() > MAX_ARGON2_MEMORY_KIB {
            return Err(HashCostError::Argon2Memory(params.m_cost()));
        }
        if params.t_cost() > MAX_ARGON2_ITERATIONS {
            return Err(HashCostError::Argon2Iterations(params.t_cost()));
        }
        if params.p_cost() > MAX_ARGON2_PARALLELISM {
            return Err(HashCostError::Argon2Parallelism(params.p_cost()));
        }
    } else if ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p))
    {
        // The cost as the bcrypt crate reads it: the second `$`-separated field, empty
        // fields skipped, any digits (`$2b$031$`, `$2b$$31$` and `$2b$+31$` are cost 31).
        if let Some(cost) = stored
            .split('$')
            .filter(|f| !f.is_empty())
            .nth(1)
            .and_then(|c| c.parse::<u32>().ok())
            && cost > MAX_BCRYPT_COST
        {
            return Err(HashCostError::BcryptCost(cost));
        }
    } else if stored.starts_with("$pbkdf2-")
        && let Some(iterations) = stored.split('$').nth(2).and_then(|i| i.parse::<u32>().ok())
    {
        if iterations > MAX_PBKDF2_ITERATIONS {
            return Err(HashCostError::Pbkdf2Iterations(iterations));
        }
        let blocks = pbkdf2_blocks(stored);
        if u64::from(iterations) * blocks > u64::from(MAX_PBKDF2_ITERATIONS) {
            return Err(HashCostError::Pbkdf2Work { iterations, blocks });
        }
    }
    Ok(())
}

/// How many output blocks of its hash a pbkdf2 verification derives (the stored key's
/// length over the digest's), each costing the full iteration count: a 1 KiB key is 52
/// blocks of sha1. 0 when [`verify_pbkdf2`] would refuse the string without deriving.
fn pbkdf2_blocks(stored: &str) -> u64 {
    let parts: Vec<&str> = stored.split('$').collect();
    let ["", algo, _, _, key] = parts.as_slice() else {
        return 0;
    };
    let digest_len = match *algo {
        "pbkdf2-sha1" => 20,
        "pbkdf2-sha256" => 32,
        "pbkdf2-sha512" => 64,
        _ => return 0,
    };
    match STD_LENIENT.decode(key) {
        Ok(k) if k.len() <= MAX_PBKDF2_KEY_LEN => k.len().div_ceil(digest_len) as u64,
        _ => 0,
    }
}

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

/// Memory one verification of a new hash takes (argon2id m=64 MiB), for sizing [`CheckLimit`].
pub const CHECK_MEMORY_MIB: u64 = ARGON2_MEMORY_KIB as u64 / 1024;

/// How long a login waits for its turn to verify a password before it fails.
pub const CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Bounds the password verifications running at once: each takes a core and, for argon2id,
/// 64 MiB, and a client can start one per connection before authenticating (measured: 128
/// simultaneous attempts took the server to 8.4 GB). Waiting ones wait at most `wait`, in
/// arrival order, then fail as a wrong password would. A permit is held by the blocking
/// verification itself, so a client that leaves cannot free its place while its hash is
/// still being computed.
#[derive(Debug)]
pub struct CheckLimit {
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    size: usize,
    wait: std::time::Duration,
}

/// A verification that did not get its turn in time.
#[derive(Debug, thiserror::Error)]
#[error("{waiting_for:?} without a free password check ({size} run at once)")]
pub struct CheckBusy {
    pub size: usize,
    pub waiting_for: std::time::Duration,
}

impl CheckLimit {
    /// At most `size` (at least 1) verifications at once.
    pub fn new(size: usize, wait: std::time::Duration) -> Self {
        let size = size.max(1);
        Self {
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(size)),
            size,
            wait,
        }
    }

    /// As many at once as there are cores, and no more than `memory_budget_mib` allows at
    /// [`CHECK_MEMORY_MIB`] each.
    pub fn sized(memory_budget_mib: u64, wait: std::time::Duration) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let by_memory = (memory_budget_mib / CHECK_MEMORY_MIB).max(1);
        Self::new(
            cores.min(usize::try_from(by_memory).unwrap_or(usize::MAX)),
            wait,
        )
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs `check` on a blocking thread once a place is free.
    pub async fn run<T, F>(&self, check: F) -> Result<T, CheckBusy>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let busy = || CheckBusy {
            size: self.size,
            waiting_for: self.wait,
        };
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        tokio::task::spawn_blocking(move || {
            let _held = permit;
            check()
        })
        .await
        .map_err(|_| busy())
    }
}

/// Whether `s` starts with the prefix of a supported hash format (and so is stored verbatim).
pub fn is_hashed(s: &str) -> bool {
    HASH_PREFIXES.iter().any(|p| s.starts_with(p))
}

/// Checks `candidate` against the `stored` hash. Empty, malformed or unsupported stored
/// values never match.
pub fn verify_password(stored: &str, candidate: &str) -> bool {
    if stored.is_empty() || check_cost(stored).is_err() {
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
    if Params::try_from(&hash).is_err() {
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn check_limit_bounds_the_checks_running_at_once_and_times_out_waiters() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Barrier};
        let limit = Arc::new(CheckLimit::new(2, std::time::Duration::from_secs(30)));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (limit, running, peak) = (limit.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                limit
                    .run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2, "two at once, never more");

        // Both places held by checks that have not finished: a third waits, then fails.
        let short = Arc::new(CheckLimit::new(2, std::time::Duration::from_millis(50)));
        let gate = Arc::new(Barrier::new(3));
        let held: Vec<_> = (0..2)
            .map(|_| {
                let (short, gate) = (short.clone(), gate.clone());
                tokio::spawn(async move { short.run(move || _ = gate.wait()).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let err = short.run(|| ()).await.unwrap_err();
        assert_eq!(err.size, 2);
        // A waiter whose caller left does not free a place: the checks hold them.
        gate.wait();
        for h in held {
            h.await.unwrap().unwrap();
        }
        assert!(short.run(|| ()).await.is_ok());
        assert!(CheckLimit::sized(64, CHECK_WAIT).size() == 1);
        assert!(CheckLimit::sized(1 << 20, CHECK_WAIT).size() >= 1);
    }

    #[test]
    fn hashes_asking_too_much_work_are_refused_before_any_work() {
        let salt = "c2FsdHNhbHRzYWx0c2FsdA";
        let key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let cases = [
            (
                format!("$argon2id$v=19$m=1048576,t=3,p=2${salt}${key}"),
                HashCostError::Argon2Memory(1 << 20),
            ),
            (
                format!("$argon2id$v=19$m=65536,t=100,p=2${salt}${key}"),
                HashCostError::Argon2Iterations(100),
            ),
            (
                format!("$argon2id$v=19$m=65536,t=3,p=64${salt}${key}"),
                HashCostError::Argon2Parallelism(64),
            ),
            // Found by fuzz/password_hash: argon2's own parsing overflowed on `8 * p`.
            (
                format!("$argon2id$v=19$m=64,t=1,p=1888888888${salt}${key}"),
                HashCostError::Argon2Parallelism(1_888_888_888),
            ),
            (
                "$argon2id$v=19$m=64,t=1,p=1888888888".into(),
                HashCostError::Argon2Parallelism(1_888_888_888),
            ),
            (
                "$argon2id$v=19$m=64,t=1,p=1,p=1888888888".into(),
                HashCostError::Argon2Parallelism(1_888_888_888),
            ),
            (
                "$2b$31$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234".into(),
                HashCostError::BcryptCost(31),
            ),
            (
                "$pbkdf2-sha256$2000000000$salt$HiA8CWifTWeVBazZUM/y0qdXKlATpiZCrHVyRo/gYnU="
                    .into(),
                HashCostError::Pbkdf2Iterations(2_000_000_000),
            ),
        ];
        for (hash, want) in cases {
            assert_eq!(check_cost(&hash), Err(want.clone()), "{hash}");
            assert!(want.to_string().contains("limit"), "{want}");
            // Refused at once: none of these would finish in a test's lifetime.
            assert!(!verify_password(&hash, "pw"));
        }
        // What the usual tools make passes.
        assert_eq!(check_cost(&hash_password("pw").unwrap()), Ok(()));
        assert_eq!(check_cost(PBKDF2_SHA256), Ok(()));
        assert_eq!(
            check_cost("$2b$12$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234"),
            Ok(())
        );
        assert_eq!(check_cost("$pbkdf2-sha256$600000$s$k"), Ok(()));
        assert_eq!(check_cost("not a hash"), Ok(()));
    }

    /// Found by the `password_hash` fuzz target: `check_cost` read the bcrypt cost as the
    /// two characters after the prefix, the bcrypt crate as the whole next non-empty
    /// `$` field, so a stored `$2b$031$...` passed as cost 3 and was verified at cost 31
    /// (2^31 rounds: over a day of a core per login attempt).
    #[test]
    fn bcrypt_cost_is_read_as_the_bcrypt_crate_reads_it() {
        let tail = "abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234";
        for cost in ["031", "$31", "+31", "0000000031", "$$15"] {
            let stored = format!("$2b${cost}${tail}");
            let want = cost.trim_start_matches('$').parse::<u32>().unwrap();
            assert_eq!(
                check_cost(&stored),
                Err(HashCostError::BcryptCost(want)),
                "{stored}"
            );
            assert!(!verify_password(&stored, "pw"), "{stored}");
        }
        // Cheap ones still verify, however the cost is spelled.
        let h = bcrypt::hash("hunter2", 4).unwrap();
        for spelled in [
            h.replacen("$04$", "$004$", 1),
            h.replacen("$04$", "$$4$", 1),
        ] {
            assert_eq!(check_cost(&spelled), Ok(()), "{spelled}");
            assert!(verify_password(&spelled, "hunter2"), "{spelled}");
        }
    }

    /// Found by the `password_hash` fuzz target: `check_cost` bounded the pbkdf2
    /// iterations but not the key length, and each digest-sized block of the derived key
    /// costs every iteration again: 2,000,000 iterations of sha1 with a 1 KiB stored key
    /// (52 blocks) passed and took about 25 s of a core per login attempt.
    #[test]
    fn pbkdf2_cost_counts_every_block_of_the_key() {
        let key_of = |n: usize| STD_LENIENT.encode(vec![7u8; n]);
        let stored = format!("$pbkdf2-sha1$2000000$salt${}", key_of(1024));
        assert_eq!(
            check_cost(&stored),
            Err(HashCostError::Pbkdf2Work {
                iterations: 2_000_000,
                blocks: 52
            })
        );
        assert!(!verify_password(&stored, "pw"));
        assert!(
            HashCostError::Pbkdf2Work {
                iterations: 1,
                blocks: 2
            }
            .to_string()
            .contains("limit")
        );
        // One block at the limit, or several within it, pass: 21 bytes of sha1 are 2.
        let one = format!("$pbkdf2-sha512$2000000$salt${}", key_of(64));
        assert_eq!(check_cost(&one), Ok(()));
        let two = format!("$pbkdf2-sha1$1000000$salt${}", key_of(21));
        assert_eq!(check_cost(&two), Ok(()));
        let over = format!("$pbkdf2-sha1$1000001$salt${}", key_of(21));
        assert_eq!(
            check_cost(&over),
            Err(HashCostError::Pbkdf2Work {
                iterations: 1_000_001,
                blocks: 2
            })
        );
        // What verification refuses without deriving costs nothing.
        for free in [
            format!("$pbkdf2-sha1$2000000$salt${}", key_of(1025)),
            "$pbkdf2-md5$2000000$salt$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                .into(),
            "$pbkdf2-sha1$2000000$salt$not base64!".into(),
        ] {
            assert_eq!(check_cost(&free), Ok(()), "{free}");
            assert!(!verify_password(&free, "pw"));
        }
        assert_eq!(check_cost(PBKDF2_SHA1), Ok(()));
        assert_eq!(check_cost(PBKDF2_SHA512), Ok(()));
    }

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
