//! The web admin's login sessions: kept in this process, bounded in number, each ending
//! after an idle period. The cookie carries a random 256-bit id; the store keys sessions
//! by its SHA-256, so a lookup's timing says nothing about stored ids.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Sessions kept at most; a login beyond that ends the least recently used one.
pub(crate) const MAX_SESSIONS: usize = 1024;

/// One logged-in operator.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub username: String,
    /// Required, as a hidden form field, on every POST of this session.
    pub csrf_token: String,
    /// A message for the next page shown (after a redirect).
    pub flash: Option<String>,
    last_seen: Instant,
}

impl Session {
    /// Whether `given` is this session's CSRF token (constant-time comparison).
    pub fn csrf_matches(&self, given: &str) -> bool {
        !given.is_empty() && bool::from(self.csrf_token.as_bytes().ct_eq(given.as_bytes()))
    }
}

/// What a cookie's session id led to.
#[derive(Debug)]
pub(crate) enum Lookup {
    Active(Session),
    /// It existed but was idle too long (now removed).
    Expired,
    /// No such session (never, logged out, or evicted).
    Unknown,
}

pub(crate) struct Sessions {
    idle: Duration,
    by_digest: Mutex<HashMap<[u8; 32], Session>>,
}

/// 32 bytes from the operating system's CSPRNG, hex-encoded.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    pub fn new(idle: Duration) -> Self {
        Self {
            idle,
            by_digest: Mutex::default(),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.by_digest.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session for `username`; returns the cookie's id.
    pub fn create(&self, username: &str) -> String {
        let id = random_token();
        let session = Session {
            username: username.to_string(),
            csrf_token: random_token(),
            flash: None,
            last_seen: Instant::now(),
        };
        let mut map = self.map();
        if map.len() >= MAX_SESSIONS {
            let idle = self.idle;
            map.retain(|_, s| s.last_seen.elapsed() < idle);
        }
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(digest(&id), session);
        id
    }

    /// The session of cookie id `id`, its idle clock restarted; its flash message is
    /// handed over once.
    pub fn touch(&self, id: &str) -> Lookup {
        let key = digest(id);
        let mut map = self.map();
        let Some(session) = map.get_mut(&key) else {
            return Lookup::Unknown;
        };
        if session.last_seen.elapsed() >= self.idle {
            map.remove(&key);
            return Lookup::Expired;
        }
        session.last_seen = Instant::now();
        let copy = session.clone();
        session.flash = None;
        Lookup::Active(copy)
    }

    /// Leaves a message for the session's next page.
    pub fn set_flash(&self, id: &str, message: impl Into<String>) {
        if let Some(s) = self.map().get_mut(&digest(id)) {
            s.flash = Some(message.into());
        }
    }

    pub fn remove(&self, id: &str) {
        self.map().remove(&digest(id));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_are_bounded_and_compare_tokens() {
        let s = Sessions::new(Duration::from_millis(50));
        let id = s.create("admin");
        assert_eq!(id.len(), 64);
        let Lookup::Active(session) = s.touch(&id) else {
            panic!("fresh session")
        };
        assert_eq!(session.username, "admin");
        assert!(session.csrf_matches(&session.csrf_token.clone()));
        assert!(!session.csrf_matches(""));
        assert!(!session.csrf_matches("00"));
        assert!(matches!(s.touch("nope"), Lookup::Unknown));
        s.set_flash(&id, "hello");
        let Lookup::Active(session) = s.touch(&id) else {
            panic!()
        };
        assert_eq!(session.flash.as_deref(), Some("hello"));
        let Lookup::Active(session) = s.touch(&id) else {
            panic!()
        };
        assert_eq!(session.flash, None, "a flash is shown once");
        std::thread::sleep(Duration::from_millis(60));
        assert!(matches!(s.touch(&id), Lookup::Expired));
        assert!(matches!(s.touch(&id), Lookup::Unknown));
        // Bounded: the least recently used session goes first.
        let s = Sessions::new(Duration::from_secs(60));
        let first = s.create("a");
        for _ in 0..MAX_SESSIONS {
            s.create("b");
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(matches!(s.touch(&first), Lookup::Unknown));
    }
}
