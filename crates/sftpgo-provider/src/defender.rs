//! Storage of the defender's scores and bans (the rules live in `sftpgo_core::defender`).
//! [`MemoryDefenderStore`] keeps them in the process (the `memory` driver, and the
//! memory data provider); the SQL backends keep them in two tables, so that instances
//! sharing a database share bans (the `provider` driver).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::Result;

/// A host the defender knows: its score within the observation window and, when banned,
/// until when (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRecord {
    /// The IP address, as `IpAddr` displays it.
    pub ip: String,
    pub score: i64,
    pub ban_until: Option<i64>,
}

/// Where scores and bans are kept. Times are ms since the epoch; `since` bounds the
/// events that count (the observation window).
#[async_trait]
pub trait DefenderStore: Send + Sync + 'static {
    /// Records an event and returns the host's score since `since`, this event included.
    async fn add_event(&self, ip: &str, at: i64, score: i64, since: i64) -> Result<i64>;
    /// Bans the host until `until` and forgets its events (a new ban starts from zero).
    async fn ban(&self, ip: &str, until: i64) -> Result<()>;
    /// Moves the end of a ban still running at `now` to `until`.
    async fn extend_ban(&self, ip: &str, until: i64, now: i64) -> Result<()>;
    /// The host's score since `since` and its ban if one runs at `now`; `None` when there
    /// is neither.
    async fn host(&self, ip: &str, since: i64, now: i64) -> Result<Option<HostRecord>>;
    /// Hosts with a score since `since` or a ban running at `now`, by IP, at most `limit`.
    async fn hosts(&self, since: i64, now: i64, limit: usize) -> Result<Vec<HostRecord>>;
    /// Forgets the host's ban and events; whether there was anything to forget.
    async fn remove(&self, ip: &str, since: i64, now: i64) -> Result<bool>;
    /// Drops events before `events_before` and bans that ended before `bans_before`.
    async fn cleanup(&self, events_before: i64, bans_before: i64) -> Result<()>;
}

/// Scores and bans in the process, bounded: past `max_hosts` hosts, the ones with the
/// oldest activity are forgotten first, never a running ban while a host without one is
/// left (a flood of addresses cannot evict the bans).
#[derive(Debug)]
pub struct MemoryDefenderStore {
    hosts: Mutex<HashMap<String, Host>>,
    max_hosts: usize,
}

#[derive(Debug, Default)]
struct Host {
    /// (at, score), oldest first.
    events: Vec<(i64, i64)>,
    ban_until: Option<i64>,
    last_seen: i64,
}

impl Host {
    fn score(&self, since: i64) -> i64 {
        self.events
            .iter()
            .filter(|(at, _)| *at > since)
            .map(|(_, s)| s)
            .sum()
    }

    fn record(&self, ip: &str, since: i64, now: i64) -> Option<HostRecord> {
        let score = self.score(since);
        let ban_until = self.ban_until.filter(|u| *u > now);
        (score > 0 || ban_until.is_some()).then(|| HostRecord {
            ip: ip.to_owned(),
            score,
            ban_until,
        })
    }
}

impl Default for MemoryDefenderStore {
    fn default() -> Self {
        Self::new(100_000)
    }
}

/// Events a host keeps at most (the threshold is reached long before).
const MAX_EVENTS_PER_HOST: usize = 1000;

impl MemoryDefenderStore {
    pub fn new(max_hosts: usize) -> Self {
        Self {
            hosts: Mutex::default(),
            max_hosts: max_hosts.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Host>> {
        self.hosts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes room for one more host: unbanned hosts go first, oldest activity first.
    fn evict(hosts: &mut HashMap<String, Host>, max: usize, now: i64) {
        if hosts.len() < max {
            return;
        }
        // Down to 90% at once, so a flood does not sort on every event.
        let target = max - max / 10 - 1;
        let mut order: Vec<(bool, i64, String)> = hosts
            .iter()
            .map(|(ip, h)| {
                (
                    h.ban_until.is_some_and(|u| u > now),
                    h.last_seen,
                    ip.clone(),
                )
            })
            .collect();
        order.sort();
        for (_, _, ip) in order.into_iter().take(hosts.len().saturating_sub(target)) {
            hosts.remove(&ip);
        }
    }
}

#[async_trait]
impl DefenderStore for MemoryDefenderStore {
    async fn add_event(&self, ip: &str, at: i64, score: i64, since: i64) -> Result<i64> {
        let mut hosts = self.lock();
        if !hosts.contains_key(ip) {
            Self::evict(&mut hosts, self.max_hosts, at);
        }
        let host = hosts.entry(ip.to_owned()).or_default();
        host.events.retain(|(t, _)| *t > since);
        if host.events.len() >= MAX_EVENTS_PER_HOST {
            host.events.remove(0);
        }
        host.events.push((at, score));
        host.last_seen = at;
        Ok(host.score(since))
    }

    async fn ban(&self, ip: &str, until: i64) -> Result<()> {
        let mut hosts = self.lock();
        let host = hosts.entry(ip.to_owned()).or_default();
        host.events.clear();
        host.ban_until = Some(until);
        Ok(())
    }

    async fn extend_ban(&self, ip: &str, until: i64, now: i64) -> Result<()> {
        if let Some(host) = self.lock().get_mut(ip)
            && host.ban_until.is_some_and(|u| u > now)
        {
            host.ban_until = Some(until);
            host.last_seen = now;
        }
        Ok(())
    }

    async fn host(&self, ip: &str, since: i64, now: i64) -> Result<Option<HostRecord>> {
        Ok(self.lock().get(ip).and_then(|h| h.record(ip, since, now)))
    }

    async fn hosts(&self, since: i64, now: i64, limit: usize) -> Result<Vec<HostRecord>> {
        let mut list: Vec<HostRecord> = self
            .lock()
            .iter()
            .filter_map(|(ip, h)| h.record(ip, since, now))
            .collect();
        list.sort_by(|a, b| a.ip.cmp(&b.ip));
        list.truncate(limit);
        Ok(list)
    }

    async fn remove(&self, ip: &str, since: i64, now: i64) -> Result<bool> {
        Ok(self
            .lock()
            .remove(ip)
            .is_some_and(|h| h.record(ip, since, now).is_some()))
    }

    async fn cleanup(&self, events_before: i64, bans_before: i64) -> Result<()> {
        self.lock().retain(|_, h| {
            h.events.retain(|(t, _)| *t >= events_before);
            if h.ban_until.is_some_and(|u| u < bans_before) {
                h.ban_until = None;
            }
            !h.events.is_empty() || h.ban_until.is_some()
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance() {
        crate::conformance::defender(&MemoryDefenderStore::new(100)).await;
    }

    #[tokio::test]
    async fn a_flood_of_hosts_does_not_evict_bans() {
        let store = MemoryDefenderStore::new(100);
        store.ban("10.0.0.1", 10_000).await.unwrap();
        for i in 0..1000 {
            store
                .add_event(&format!("192.0.2.{i}"), 100 + i, 1, 0)
                .await
                .unwrap();
        }
        assert!(store.lock().len() <= 100);
        let banned = store.host("10.0.0.1", 0, 200).await.unwrap().unwrap();
        assert_eq!(banned.ban_until, Some(10_000));
        // The most recent hosts are kept.
        assert!(store.host("192.0.2.999", 0, 200).await.unwrap().is_some());
    }
}
