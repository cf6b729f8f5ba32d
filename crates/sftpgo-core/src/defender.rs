//! The defender (SFTPGo 2.x's semantics): every client IP earns a score for what it does
//! wrong (a failed login, a connection that never logs in, one refused by a limit); a
//! score that reaches the threshold within the observation window bans the IP, and a
//! banned IP is refused at accept, before any handshake, and by the REST API. Each
//! connection attempt during a ban makes it longer. Safelisted IPs are never scored;
//! blocklisted ones are always refused.
//!
//! The rules live here once; where scores and bans are kept is a
//! [`sftpgo_provider::DefenderStore`]: this process's memory, or the data provider's
//! database (shared by the instances that use it).

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use sftpgo_provider::{Backend, DefenderStore, HostRecord, MemoryDefenderStore, ProviderError};

use crate::metrics::Metrics;
use crate::now_ms;

/// What a client did wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostEvent {
    /// A wrong password or key for an existing user (`score_valid`).
    LoginFailed,
    /// A login as a user that does not exist (`score_invalid`).
    UserNotFound,
    /// A connection that ended without trying to log in (`score_no_auth`).
    NoLoginTried,
    /// A connection refused by a limit (`score_limit_exceeded`).
    LimitExceeded,
}

impl HostEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            HostEvent::LoginFailed => "login_failed",
            HostEvent::UserNotFound => "user_not_found",
            HostEvent::NoLoginTried => "no_login_tried",
            HostEvent::LimitExceeded => "limit_exceeded",
        }
    }
}

/// Why a client is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Blocklisted,
    /// Banned until this time (ms since the epoch).
    Banned {
        until: i64,
    },
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Blocklisted => "blocklisted",
            Refusal::Banned { .. } => "banned",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Blocklisted => f.write_str("the client address is blocklisted"),
            Refusal::Banned { until } => write!(
                f,
                "the client address is banned for {} s more",
                (until - now_ms()).max(0) / 1000
            ),
        }
    }
}

/// IP addresses and networks (`192.0.2.7`, `10.0.0.0/8`, `2001:db8::/32`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpList(Vec<IpNet>);

impl IpList {
    /// Parses entries (an address is a /32 or /128 network); `source` names them in the
    /// error. Blank entries and `#` comments are skipped.
    pub fn parse<'a>(
        entries: impl IntoIterator<Item = &'a str>,
        source: &str,
    ) -> Result<Self, String> {
        let mut nets = Vec::new();
        for entry in entries {
            let entry = entry.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            let net = IpNet::from_str(entry)
                .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                .map_err(|_| {
                    format!("{source}: {entry:?} is neither an IP address nor a network (CIDR)")
                })?;
            nets.push(net.trunc());
        }
        Ok(Self(nets))
    }

    /// The entries of `other` added to these.
    pub fn extend(&mut self, other: IpList) {
        self.0.extend(other.0);
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Where scores and bans are kept (`defender.driver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Driver {
    /// In this process (lost at restart, not shared).
    #[default]
    Memory,
    /// In the data provider's database, shared by the instances that use it.
    Provider,
}

/// `common.defender`.
#[derive(Debug, Clone)]
pub struct DefenderSettings {
    pub enabled: bool,
    pub driver: Driver,
    pub ban_time: Duration,
    /// Percent of `ban_time` added to a ban each time the banned IP connects again.
    pub ban_time_increment: u32,
    pub threshold: i64,
    pub score_invalid: i64,
    pub score_valid: i64,
    pub score_limit_exceeded: i64,
    pub score_no_auth: i64,
    pub observation_time: Duration,
    /// Hosts the memory driver keeps at most (bans are forgotten last).
    pub max_hosts: usize,
    pub safelist: IpList,
    pub blocklist: IpList,
}

impl Default for DefenderSettings {
    /// Disabled (the configuration's default enables it); the values of the config.
    fn default() -> Self {
        Self {
            enabled: false,
            driver: Driver::Memory,
            ban_time: Duration::from_secs(30 * 60),
            ban_time_increment: 50,
            threshold: 15,
            score_invalid: 2,
            score_valid: 1,
            score_limit_exceeded: 3,
            score_no_auth: 0,
            observation_time: Duration::from_secs(30 * 60),
            max_hosts: 20_000,
            safelist: IpList::default(),
            blocklist: IpList::default(),
        }
    }
}

/// A ban never ends later than this from now, however often the host comes back.
const MAX_BAN: Duration = Duration::from_secs(24 * 3600);
/// How long this process trusts a ban it read from the store before reading it again
/// (an unban through another instance takes effect within this).
const BAN_CACHE: Duration = Duration::from_secs(5);
/// How often old events and ended bans are dropped from the store.
const CLEANUP_EVERY: Duration = Duration::from_secs(300);

/// A host as the REST API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostStatus {
    pub ip: IpAddr,
    pub score: i64,
    /// Ms since the epoch; `None` when not banned.
    pub ban_until: Option<i64>,
}

enum Store {
    Memory(MemoryDefenderStore),
    Provider(Arc<dyn Backend>),
}

impl Store {
    fn get(&self) -> &dyn DefenderStore {
        match self {
            Store::Memory(m) => m,
            // Checked at construction.
            Store::Provider(b) => b
                .defender_store()
                .expect("backend keeps the defender's data"),
        }
    }
}

/// Errors setting the defender up.
#[derive(Debug, thiserror::Error)]
pub enum DefenderError {
    #[error(
        "the defender's provider driver needs a data provider that keeps its data (sqlite, postgresql, mysql or memory), not {0:?}"
    )]
    NoStore(&'static str),
}

/// The defender of one server (see the module documentation).
pub struct Defender {
    settings: DefenderSettings,
    store: Store,
    metrics: Arc<Metrics>,
    /// Bans this process read from the store: ip → (until, when read, when last
    /// extended), so a flood from a banned IP costs no store round trip per connection.
    bans: Mutex<HashMap<IpAddr, CachedBan>>,
    last_cleanup: std::sync::atomic::AtomicI64,
    /// Refused connections are logged at most once a second: (last line, refusals since).
    refusal_log: Mutex<(i64, u64)>,
    /// Bounds the recordings [`Defender::record_soon`] runs at once: a flood of refused
    /// connections against a slow database cannot pile up tasks.
    pending: Arc<tokio::sync::Semaphore>,
}

/// Recordings run in the background at once, at most.
const MAX_PENDING_RECORDS: usize = 64;

#[derive(Debug, Clone, Copy)]
struct CachedBan {
    until: i64,
    read_at: i64,
    extended_at: i64,
}

impl std::fmt::Debug for Defender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Defender")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Defender {
    /// A defender over `settings`; the `provider` driver keeps its data in `backend`.
    pub fn new(
        settings: DefenderSettings,
        backend: &Arc<dyn Backend>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, DefenderError> {
        let store = match settings.driver {
            Driver::Memory => Store::Memory(MemoryDefenderStore::new(settings.max_hosts)),
            Driver::Provider => {
                if backend.defender_store().is_none() {
                    return Err(DefenderError::NoStore(backend.driver()));
                }
                Store::Provider(backend.clone())
            }
        };
        Ok(Self {
            settings,
            store,
            metrics,
            bans: Mutex::default(),
            last_cleanup: now_ms().into(),
            refusal_log: Mutex::new((0, 0)),
            pending: Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_RECORDS)),
        })
    }

    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    pub fn settings(&self) -> &DefenderSettings {
        &self.settings
    }

    fn lock_bans(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, CachedBan>> {
        self.bans.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn since(&self, now: i64) -> i64 {
        now - ms(self.settings.observation_time)
    }

    /// Whether a client from `ip` may go on; a banned one that comes back has its ban
    /// made longer by `ban_time_increment`. A store that cannot be read lets the client
    /// through (logged): the defender never locks everyone out.
    pub async fn check(&self, ip: IpAddr) -> Result<(), Refusal> {
        let ip = ip.to_canonical();
        let refused = self.check_quietly(ip).await;
        if let Err(r) = refused {
            self.metrics.defender_refused(r.as_str());
        }
        refused
    }

    async fn check_quietly(&self, ip: IpAddr) -> Result<(), Refusal> {
        if !self.settings.enabled {
            return Ok(());
        }
        if self.settings.blocklist.contains(ip) {
            return Err(Refusal::Blocklisted);
        }
        if self.settings.safelist.contains(ip) {
            return Ok(());
        }
        let now = now_ms();
        let cached = self.lock_bans().get(&ip).copied();
        let ban = match cached {
            Some(b) if b.until > now && now - b.read_at < ms(BAN_CACHE) => Some(b),
            _ => {
                let record = self
                    .store
                    .get()
                    .host(&ip.to_string(), self.since(now), now)
                    .await;
                match record {
                    Ok(Some(HostRecord {
                        ban_until: Some(until),
                        ..
                    })) => {
                        let extended_at = cached.map_or(0, |c| c.extended_at);
                        let b = CachedBan {
                            until,
                            read_at: now,
                            extended_at,
                        };
                        self.lock_bans().insert(ip, b);
                        Some(b)
                    }
                    Ok(_) => {
                        self.lock_bans().remove(&ip);
                        None
                    }
                    Err(e) => {
                        tracing::warn!(sender = "defender", client_ip = %ip, error = %e, "cannot read the host's ban, letting it through");
                        None
                    }
                }
            }
        };
        let Some(ban) = ban else { return Ok(()) };
        Err(Refusal::Banned {
            until: self.extend(ip, ban, now).await,
        })
    }

    /// Makes a ban longer for a host that came back (at most once a second, and never
    /// more than [`MAX_BAN`] from now).
    async fn extend(&self, ip: IpAddr, ban: CachedBan, now: i64) -> i64 {
        if self.settings.ban_time_increment == 0 || now - ban.extended_at < 1000 {
            return ban.until;
        }
        let increment =
            (ms(self.settings.ban_time) * i64::from(self.settings.ban_time_increment) / 100).max(1);
        let cap = now + ms(MAX_BAN).max(ms(self.settings.ban_time));
        let until = (ban.until + increment).min(cap).max(ban.until);
        if until == ban.until {
            return until;
        }
        if let Err(e) = self
            .store
            .get()
            .extend_ban(&ip.to_string(), until, now)
            .await
        {
            tracing::warn!(sender = "defender", client_ip = %ip, error = %e, "cannot extend the host's ban");
            return ban.until;
        }
        self.lock_bans().insert(
            ip,
            CachedBan {
                until,
                read_at: ban.read_at,
                extended_at: now,
            },
        );
        until
    }

    /// Whether a refused connection may be logged now: at most one line a second (a
    /// banned host may connect thousands of times); `Some(n)` with the refusals not
    /// logged since the last line.
    pub fn may_log_refusal(&self) -> Option<u64> {
        let now = now_ms();
        let mut log = self.refusal_log.lock().unwrap_or_else(|e| e.into_inner());
        if now - log.0 >= 1000 {
            let suppressed = log.1;
            *log = (now, 0);
            Some(suppressed)
        } else {
            log.1 += 1;
            None
        }
    }

    /// Whether `event` scores at all (the defender is on and its score is not 0).
    pub fn scores(&self, event: HostEvent) -> bool {
        self.settings.enabled && self.score_of(event) > 0
    }

    /// [`Defender::record`] in a task of the current runtime, for callers that cannot
    /// wait (an accept loop, a `Drop`). Nothing is spawned for an event that does not
    /// score, outside a runtime, or when [`MAX_PENDING_RECORDS`] recordings are already
    /// running (that event is dropped, and said so in a debug line).
    pub fn record_soon(self: &Arc<Self>, ip: IpAddr, event: HostEvent) {
        if !self.scores(event) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Ok(permit) = self.pending.clone().try_acquire_owned() else {
            tracing::debug!(sender = "defender", client_ip = %ip, event = event.as_str(), "too many recordings pending, event not scored");
            return;
        };
        let defender = self.clone();
        rt.spawn(async move {
            defender.record(ip, event).await;
            drop(permit);
        });
    }

    fn score_of(&self, event: HostEvent) -> i64 {
        match event {
            HostEvent::LoginFailed => self.settings.score_valid,
            HostEvent::UserNotFound => self.settings.score_invalid,
            HostEvent::NoLoginTried => self.settings.score_no_auth,
            HostEvent::LimitExceeded => self.settings.score_limit_exceeded,
        }
    }

    /// Scores `event` for `ip`, and bans it when its score reaches the threshold. Store
    /// failures are logged: the client is not refused for them.
    pub async fn record(&self, ip: IpAddr, event: HostEvent) {
        let ip = ip.to_canonical();
        let score = self.score_of(event);
        if !self.settings.enabled || score <= 0 || self.settings.safelist.contains(ip) {
            return;
        }
        let now = now_ms();
        self.cleanup_now_and_then(now).await;
        let store = self.store.get();
        let key = ip.to_string();
        let total = match store.add_event(&key, now, score, self.since(now)).await {
            Ok(total) => total,
            Err(e) => {
                tracing::warn!(sender = "defender", client_ip = %ip, event = event.as_str(), error = %e, "cannot record the host's event");
                return;
            }
        };
        if total < self.settings.threshold {
            return;
        }
        let until = now + ms(self.settings.ban_time);
        if let Err(e) = store.ban(&key, until).await {
            tracing::warn!(sender = "defender", client_ip = %ip, error = %e, "cannot ban the host");
            return;
        }
        self.lock_bans().insert(
            ip,
            CachedBan {
                until,
                read_at: now,
                extended_at: now,
            },
        );
        self.metrics.defender_ban();
        tracing::warn!(
            sender = "defender",
            client_ip = %ip,
            score = total,
            threshold = self.settings.threshold,
            event = event.as_str(),
            ban_secs = self.settings.ban_time.as_secs(),
            "host banned"
        );
    }

    async fn cleanup_now_and_then(&self, now: i64) {
        use std::sync::atomic::Ordering;
        let last = self.last_cleanup.load(Ordering::Relaxed);
        if now - last < ms(CLEANUP_EVERY)
            || self
                .last_cleanup
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        if let Err(e) = self.store.get().cleanup(self.since(now), now).await {
            tracing::warn!(sender = "defender", error = %e, "cannot drop old defender entries");
        }
        self.lock_bans().retain(|_, b| b.until > now);
    }

    fn status(record: HostRecord) -> Option<HostStatus> {
        Some(HostStatus {
            ip: record.ip.parse().ok()?,
            score: record.score,
            ban_until: record.ban_until,
        })
    }

    /// Hosts with a score or a ban now, by address (at most `limit`).
    pub async fn hosts(&self, limit: usize) -> Result<Vec<HostStatus>, ProviderError> {
        let now = now_ms();
        let records = self.store.get().hosts(self.since(now), now, limit).await?;
        Ok(records.into_iter().filter_map(Self::status).collect())
    }

    pub async fn host(&self, ip: IpAddr) -> Result<Option<HostStatus>, ProviderError> {
        let ip = ip.to_canonical();
        let now = now_ms();
        let record = self
            .store
            .get()
            .host(&ip.to_string(), self.since(now), now)
            .await?;
        Ok(record.and_then(Self::status))
    }

    /// Forgets the host's score and ban; whether there was one.
    pub async fn unban(&self, ip: IpAddr) -> Result<bool, ProviderError> {
        let ip = ip.to_canonical();
        self.lock_bans().remove(&ip);
        let now = now_ms();
        let known = self
            .store
            .get()
            .remove(&ip.to_string(), self.since(now), now)
            .await?;
        if known {
            tracing::info!(sender = "defender", client_ip = %ip, "host unbanned");
        }
        Ok(known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sftpgo_provider::memory::MemoryBackend;

    fn defender(settings: DefenderSettings) -> Defender {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        Defender::new(settings, &backend, Arc::new(Metrics::new())).unwrap()
    }

    fn enabled() -> DefenderSettings {
        DefenderSettings {
            enabled: true,
            ..DefenderSettings::default()
        }
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

    #[tokio::test]
    async fn failures_up_to_the_threshold_ban() {
        let d = defender(enabled());
        // 14 wrong passwords: score 14 < 15.
        for _ in 0..14 {
            d.record(IP, HostEvent::LoginFailed).await;
        }
        assert_eq!(d.check(IP).await, Ok(()));
        assert_eq!(d.host(IP).await.unwrap().unwrap().score, 14);
        d.record(IP, HostEvent::LoginFailed).await;
        let Err(Refusal::Banned { until }) = d.check(IP).await else {
            panic!("banned")
        };
        let left = until - now_ms();
        assert!((29 * 60_000..=31 * 60_000).contains(&left), "{left}");
        // Coming back later makes it longer (by 50% of 30 minutes), once a second at most.
        let again = d.check(IP).await;
        assert_eq!(again, Err(Refusal::Banned { until }), "not within a second");
        let ban = d.lock_bans().get(&IP).copied().unwrap();
        d.lock_bans().insert(
            IP,
            CachedBan {
                extended_at: 0,
                ..ban
            },
        );
        let Err(Refusal::Banned { until: longer }) = d.check(IP).await else {
            panic!("banned")
        };
        assert_eq!(longer, until + 15 * 60_000);
        // Unban forgets it; the IPv4-mapped IPv6 form is the same host.
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert!(d.unban(mapped).await.unwrap());
        assert_eq!(d.check(IP).await, Ok(()));
        assert!(!d.unban(IP).await.unwrap());
        // Unknown users score double: 8 attempts.
        for _ in 0..7 {
            d.record(IP, HostEvent::UserNotFound).await;
        }
        assert_eq!(d.check(IP).await, Ok(()));
        d.record(IP, HostEvent::UserNotFound).await;
        assert!(d.check(IP).await.is_err());
        // No score for connections without a login attempt by default.
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        for _ in 0..100 {
            d.record(other, HostEvent::NoLoginTried).await;
        }
        assert_eq!(d.host(other).await.unwrap(), None);
        assert_eq!(d.hosts(10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn lists_and_disabled() {
        let settings = DefenderSettings {
            safelist: IpList::parse(["192.0.2.0/24", "# comment", ""], "safelist").unwrap(),
            blocklist: IpList::parse(["2001:db8::1", "198.51.100.1"], "blocklist").unwrap(),
            ..enabled()
        };
        let d = defender(settings.clone());
        for _ in 0..100 {
            d.record(IP, HostEvent::UserNotFound).await;
        }
        assert_eq!(d.check(IP).await, Ok(()), "safelisted");
        assert_eq!(d.host(IP).await.unwrap(), None);
        let blocked: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(d.check(blocked).await, Err(Refusal::Blocklisted));
        let mapped: IpAddr = "::ffff:198.51.100.1".parse().unwrap();
        assert_eq!(d.check(mapped).await, Err(Refusal::Blocklisted));
        let off = defender(DefenderSettings {
            enabled: false,
            ..settings
        });
        assert_eq!(off.check(blocked).await, Ok(()));
        let e = IpList::parse(["10.0.0.0/33"], "common.defender.blocklist").unwrap_err();
        assert!(
            e.contains("common.defender.blocklist") && e.contains("10.0.0.0/33"),
            "{e}"
        );
        assert!(IpList::parse(["nonsense"], "x").is_err());
    }

    #[tokio::test]
    async fn the_provider_driver_needs_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let bolt: Arc<dyn Backend> = Arc::new(
            sftpgo_provider::bolt::BoltBackend::open(&dir.path().join("db"))
                .await
                .unwrap(),
        );
        let settings = DefenderSettings {
            driver: Driver::Provider,
            ..enabled()
        };
        let e = Defender::new(settings, &bolt, Arc::new(Metrics::new())).unwrap_err();
        assert!(e.to_string().contains("bolt"), "{e}");
    }
}
