//! Connections admitted at accept, before any handshake work: at most `max_total` at once,
//! and at most `max_per_host` from one client IP. Every protocol's listener asks here, so
//! the limits count connections of every protocol together.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many connections ({0} open, the limit)")]
    Total(usize),
    #[error("too many connections from this address ({0} open, the limit)")]
    PerHost(usize),
}

impl Refusal {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Total(_) => "max_total_connections",
            Refusal::PerHost(_) => "max_per_host_connections",
        }
    }
}

/// The limits and the connections they count; 0 = no limit.
#[derive(Debug, Default)]
pub struct Admission {
    max_total: usize,
    max_per_host: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    /// Only addresses with a connection open: the map is bounded by the open connections.
    per_host: HashMap<IpAddr, usize>,
}

/// A connection counted against the limits until dropped.
#[derive(Debug)]
pub struct Admitted {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Admission {
    pub fn new(max_total: usize, max_per_host: usize) -> Self {
        Self {
            max_total,
            max_per_host,
            open: Mutex::default(),
        }
    }

    /// Counts a connection from `ip`, or refuses it. IPv4 addresses mapped into IPv6 (a
    /// dual-stack listener's) count as the IPv4 address.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refusal> {
        let ip = ip.to_canonical();
        let mut open = self.lock();
        if self.max_total > 0 && open.total >= self.max_total {
            return Err(Refusal::Total(self.max_total));
        }
        let from_host = open.per_host.get(&ip).copied().unwrap_or(0);
        if self.max_per_host > 0 && from_host >= self.max_per_host {
            return Err(Refusal::PerHost(self.max_per_host));
        }
        open.total += 1;
        open.per_host.insert(ip, from_host + 1);
        Ok(Admitted {
            admission: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.admission.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_host.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_host.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_open_connections_and_free_them_on_drop() {
        let a = Arc::new(Admission::new(3, 2));
        let h1: IpAddr = "192.0.2.1".parse().unwrap();
        let h2: IpAddr = "192.0.2.2".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let first = a.admit(h1).unwrap();
        let _second = a.admit(mapped).unwrap();
        assert_eq!(
            a.admit(h1).unwrap_err(),
            Refusal::PerHost(2),
            "mapped counts as h1"
        );
        let _third = a.admit(h2).unwrap();
        assert_eq!(a.admit(h2).unwrap_err(), Refusal::Total(3));
        drop(first);
        assert_eq!(a.open(), 2);
        let _again = a.admit(h1).unwrap();
        drop((_second, _third, _again));
        assert_eq!(a.open(), 0);
        assert!(
            a.lock().per_host.is_empty(),
            "no address kept once its connections end"
        );
        // 0 = no limit.
        let free = Arc::new(Admission::new(0, 0));
        let held: Vec<_> = (0..100).map(|_| free.admit(h1).unwrap()).collect();
        assert_eq!(free.open(), 100);
        drop(held);
    }
}
