//! Prometheus metrics of the shared layer. One registry per [`crate::Core`] (no process
//! globals, so several servers in one process keep apart). Hot-path counters (bytes moved)
//! are resolved once, so counting a packet is one atomic add.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::transfer::TransferKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    method: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransferLabels {
    direction: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabel {
    request: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
    result: &'static str,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~8 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// The server's metrics; rendered by [`Metrics::encode`].
pub struct Metrics {
    registry: Registry,
    active_connections: Gauge,
    connections: Counter,
    connections_refused: Family<ReasonLabel, Counter>,
    protocol_sessions: Family<ProtocolLabel, Counter>,
    logins: Family<LoginLabels, Counter>,
    upload_bytes: Counter,
    download_bytes: Counter,
    transfers: Family<TransferLabels, Counter>,
    sftp_requests: Family<RequestLabel, Counter>,
    actions: Family<ActionLabels, Counter>,
    actions_dropped: Counter,
    provider_queries: Family<OperationLabels, Histogram, fn() -> Histogram>,
    defender_bans: Counter,
    defender_refused: Family<ReasonLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sftpgo");
        let active_connections = Gauge::default();
        registry.register(
            "active_connections",
            "Authenticated connections currently open",
            active_connections.clone(),
        );
        let connections = Counter::default();
        registry.register(
            "connections",
            "TCP connections accepted by the SSH server",
            connections.clone(),
        );
        let connections_refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "connections_refused",
            "TCP connections refused at accept, by the limit that refused them",
            connections_refused.clone(),
        );
        let protocol_sessions = Family::<ProtocolLabel, Counter>::default();
        registry.register(
            "protocol_sessions",
            "Protocol sessions started on authenticated connections, by protocol",
            protocol_sessions.clone(),
        );
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register(
            "logins",
            "Login attempts by method and result (ok, failed)",
            logins.clone(),
        );
        let bytes = Family::<DirectionLabel, Counter>::default();
        registry.register(
            "transfer_bytes",
            "File data moved, by direction (upload, download)",
            bytes.clone(),
        );
        let upload_bytes = bytes
            .get_or_create(&DirectionLabel {
                direction: "upload",
            })
            .clone();
        let download_bytes = bytes
            .get_or_create(&DirectionLabel {
                direction: "download",
            })
            .clone();
        let transfers = Family::<TransferLabels, Counter>::default();
        registry.register(
            "transfers",
            "Finished transfers by direction and result (ok, failed)",
            transfers.clone(),
        );
        let sftp_requests = Family::<RequestLabel, Counter>::default();
        registry.register(
            "sftp_requests",
            "SFTP requests served, by request type",
            sftp_requests.clone(),
        );
        let actions = Family::<ActionLabels, Counter>::default();
        registry.register(
            "action_executions",
            "Actions run, by kind (command, http) and result (ok, failed, timeout)",
            actions.clone(),
        );
        let actions_dropped = Counter::default();
        registry.register(
            "actions_dropped",
            "Events not run because the action queue was full",
            actions_dropped.clone(),
        );
        let provider_queries =
            Family::<OperationLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "provider_query_duration_seconds",
            "Data provider calls by operation and result (ok, error)",
            provider_queries.clone(),
        );
        let defender_bans = Counter::default();
        registry.register(
            "defender_bans",
            "Client IPs the defender banned",
            defender_bans.clone(),
        );
        let defender_refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "defender_refused",
            "Connections and API requests the defender refused, by reason (banned, blocklisted)",
            defender_refused.clone(),
        );
        Self {
            registry,
            active_connections,
            connections,
            connections_refused,
            protocol_sessions,
            logins,
            upload_bytes,
            download_bytes,
            transfers,
            sftp_requests,
            actions,
            actions_dropped,
            provider_queries,
            defender_bans,
            defender_refused,
        }
    }

    /// The Prometheus text exposition, with the live connection count `active`.
    pub fn encode(&self, active: usize) -> String {
        self.active_connections.set(active as i64);
        let mut out = String::with_capacity(8192);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn connection_accepted(&self) {
        self.connections.inc();
    }

    /// A connection refused at accept; `reason` names the limit.
    /// A host the defender banned.
    pub fn defender_ban(&self) {
        self.defender_bans.inc();
    }

    /// A client the defender refused (`banned`, `blocklisted`).
    pub fn defender_refused(&self, reason: &'static str) {
        self.defender_refused
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    pub fn connection_refused(&self, reason: &'static str) {
        self.connections_refused
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    pub fn protocol_session(&self, protocol: &'static str) {
        self.protocol_sessions
            .get_or_create(&ProtocolLabel { protocol })
            .inc();
    }

    pub fn login(&self, method: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.logins
            .get_or_create(&LoginLabels { method, result })
            .inc();
    }

    pub(crate) fn bytes(&self, kind: TransferKind, n: u64) {
        match kind {
            TransferKind::Upload => self.upload_bytes.inc_by(n),
            TransferKind::Download => self.download_bytes.inc_by(n),
        };
    }

    pub(crate) fn transfer_finished(&self, kind: TransferKind, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.transfers
            .get_or_create(&TransferLabels {
                direction: kind.as_str(),
                result,
            })
            .inc();
    }

    pub fn sftp_request(&self, request: &'static str) {
        self.sftp_requests
            .get_or_create(&RequestLabel { request })
            .inc();
    }

    pub(crate) fn action(&self, kind: &'static str, result: &'static str) {
        self.actions
            .get_or_create(&ActionLabels { kind, result })
            .inc();
    }

    pub(crate) fn action_dropped(&self) {
        self.actions_dropped.inc();
    }

    /// Records one data provider call (the provider's observer hook).
    pub fn provider_query(&self, operation: &'static str, elapsed: Duration, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.provider_queries
            .get_or_create(&OperationLabels { operation, result })
            .observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_prefix_and_labels() {
        let m = Metrics::new();
        m.login("password", true);
        m.login("password", false);
        m.login("password", false);
        m.bytes(TransferKind::Upload, 10);
        m.bytes(TransferKind::Upload, 5);
        m.sftp_request("open");
        m.provider_query("user_by_username", Duration::from_millis(2), true);
        let text = m.encode(3);
        assert!(text.contains("sftpgo_active_connections 3"), "{text}");
        assert!(
            text.contains(r#"sftpgo_logins_total{method="password",result="failed"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"sftpgo_transfer_bytes_total{direction="upload"} 15"#),
            "{text}"
        );
        assert!(
            text.contains(r#"sftpgo_transfer_bytes_total{direction="download"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"sftpgo_sftp_requests_total{request="open"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"sftpgo_provider_query_duration_seconds_count{operation="user_by_username",result="ok"} 1"#
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
