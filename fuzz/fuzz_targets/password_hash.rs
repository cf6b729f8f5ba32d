//! Stored password-hash strings of every supported format (`$argon2id$`, bcrypt `$2a$`,
//! `$2b$`, `$2y$`, `$pbkdf2-sha1|sha256|sha512$`) through `password::is_hashed`,
//! `password::check_cost` and `password::verify_password`.
//!
//! Input: the stored string, then optionally `\n` and the candidate password.
//!
//! Checks: nothing panics; `is_hashed` agrees with the prefixes; and `check_cost` is an
//! honest bound: the work a verification would really do, computed here the way the
//! hashing libraries read the string (argon2's PHC parser, the bcrypt crate's own
//! splitting of `$`-separated fields, pbkdf2's iterations times output blocks), is
//! within the limits whenever `check_cost` accepts the string. `verify_password` runs
//! only when that work is small, so the fuzzer stays fast; a string whose work cannot be
//! told is not verified either.

#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use sftpgo_provider::password::{
    self, HASH_PREFIXES, MAX_ARGON2_ITERATIONS, MAX_ARGON2_MEMORY_KIB, MAX_ARGON2_PARALLELISM,
    MAX_BCRYPT_COST, MAX_PBKDF2_ITERATIONS,
};

/// What one verification would cost, as the libraries would compute it.
#[derive(Debug)]
enum Work {
    /// Refused or failing before any hashing.
    None,
    Argon2 {
        m: u32,
        t: u32,
        p: u32,
    },
    Bcrypt {
        cost: u32,
    },
    /// Iterations and derived blocks (each block is `iterations` HMAC rounds).
    Pbkdf2 {
        iterations: u32,
        blocks: u64,
    },
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (stored, candidate) = text.split_once('\n').unwrap_or((&text, "password"));

    assert_eq!(
        password::is_hashed(stored),
        HASH_PREFIXES.iter().any(|p| stored.starts_with(p))
    );

    let accepted = password::check_cost(stored).is_ok();
    let work = work(stored);
    if accepted {
        match work {
            Work::None => {}
            Work::Argon2 { m, t, p } => assert!(
                m <= MAX_ARGON2_MEMORY_KIB
                    && t <= MAX_ARGON2_ITERATIONS
                    && p <= MAX_ARGON2_PARALLELISM,
                "check_cost accepted argon2id m={m} t={t} p={p}: {stored:?}"
            ),
            Work::Bcrypt { cost } => assert!(
                cost <= MAX_BCRYPT_COST,
                "check_cost accepted bcrypt cost {cost}: {stored:?}"
            ),
            Work::Pbkdf2 { iterations, blocks } => assert!(
                u64::from(iterations) * blocks <= u64::from(MAX_PBKDF2_ITERATIONS),
                "check_cost accepted pbkdf2 with {iterations} iterations x {blocks} blocks: {stored:?}"
            ),
        }
    }

    let cheap = match work {
        Work::None => true,
        Work::Argon2 { m, t, p } => m <= 256 && t <= 2 && p <= 4,
        Work::Bcrypt { cost } => cost <= 5,
        Work::Pbkdf2 { iterations, blocks } => u64::from(iterations) * blocks <= 4096,
    };
    if cheap && accepted {
        let a = password::verify_password(stored, candidate);
        // A string in no supported format never matches.
        if !password::is_hashed(stored) {
            assert!(!a, "{stored:?} is no hash format yet matched");
        }
    }
    if !accepted {
        // Refused at once, without hashing (the work may be hours).
        assert!(!password::verify_password(stored, candidate));
    }
});

fn work(stored: &str) -> Work {
    if stored.starts_with("$argon2id$") {
        let Ok(hash) = argon2::PasswordHash::new(stored) else {
            return Work::None;
        };
        // argon2's `Params::try_from` overflows (`8 * p` in u32) for p over 2^29: the
        // fields are read from the string first, and a p past argon2's own maximum is
        // work `check_cost` must refuse (the assertions above say so).
        // Every occurrence of a key (argon2 takes the last of repeated ones).
        let max = |n: &str| {
            hash.params
                .iter()
                .filter(|(k, _)| k.as_str() == n)
                .filter_map(|(_, v)| v.decimal().ok())
                .max()
        };
        if let Some(p) = max("p").filter(|p| *p > argon2::Params::MAX_P_COST) {
            let (m, t) = (max("m").unwrap_or(0), max("t").unwrap_or(0));
            return Work::Argon2 { m, t, p };
        }
        let Ok(params) = argon2::Params::try_from(&hash) else {
            return Work::None;
        };
        return Work::Argon2 {
            m: params.m_cost(),
            t: params.t_cost(),
            p: params.p_cost(),
        };
    }
    if ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p))
    {
        // bcrypt 0.17's split_hash: `$`-separated fields, empty ones dropped.
        let parts: Vec<&str> = stored.split('$').filter(|s| !s.is_empty()).collect();
        if let [_, cost, rest] = parts.as_slice()
            && let Ok(cost) = cost.parse::<u32>()
            && rest.len() == 53
            && (4..=31).contains(&cost)
        {
            return Work::Bcrypt { cost };
        }
        return Work::None;
    }
    if stored.starts_with("$pbkdf2-") {
        let parts: Vec<&str> = stored.split('$').collect();
        let ["", algo, iterations, _salt, key] = parts.as_slice() else {
            return Work::None;
        };
        let out_len = match *algo {
            "pbkdf2-sha1" => 20,
            "pbkdf2-sha256" => 32,
            "pbkdf2-sha512" => 64,
            _ => return Work::None,
        };
        let Ok(iterations) = iterations.parse::<u32>() else {
            return Work::None;
        };
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let Ok(key) = lenient.decode(key) else {
            return Work::None;
        };
        if iterations == 0 || key.is_empty() || key.len() > 1024 {
            return Work::None;
        }
        return Work::Pbkdf2 {
            iterations,
            blocks: key.len().div_ceil(out_len) as u64,
        };
    }
    Work::None
}
