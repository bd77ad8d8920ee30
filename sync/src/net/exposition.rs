//! The node's measurements in the Prometheus / OpenMetrics text format
//! (the `metrics` feature).
//!
//! At each scrape the node's counters, per-peer entries, live connection
//! state (queue depth, lag) and channel sizes are copied into an owned
//! snapshot, which a `prometheus-client` [`Collector`] encodes. The
//! collection itself ([`super::metrics`]) is plain atomics that the node
//! keeps whether or not anything scrapes it; `prometheus-client` (the
//! Prometheus project's own Rust client, no global registry, no unsafe)
//! only writes the text, so its types never reach the hot paths.
//!
//! Every series, with its labels (`peer` is the node id, `peer_name` its
//! name; counters end in `_total` on the wire):
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `accordant_peer_up` | gauge | peer, peer_name |
//! | `accordant_peer_sent_bytes`, `accordant_peer_received_bytes` | counter | peer, peer_name, kind |
//! | `accordant_peer_sent_messages`, `accordant_peer_received_messages` | counter | peer, peer_name, kind |
//! | `accordant_sessions_started` | counter | peer, peer_name, role |
//! | `accordant_sessions_ended` | counter | peer, peer_name, outcome |
//! | `accordant_session_round_trips` | histogram | |
//! | `accordant_delta_queue_depth` | gauge | peer, peer_name |
//! | `accordant_deltas_dropped` | counter | peer, peer_name |
//! | `accordant_replication_lag_seconds` | gauge | peer, peer_name |
//! | `accordant_divergence_items`, `_keys`, `_bytes`, `_probe_age_seconds` | gauge | peer, peer_name, channel |
//! | `accordant_refused` | counter | reason |
//! | `accordant_writes` | counter | |
//! | `accordant_write_seconds`, `accordant_commit_seconds` | histogram | |
//! | `accordant_keys` | gauge | channel |
//! | `accordant_connections`, `accordant_disconnects`, `accordant_resumed` | counter | |
//!
//! `kind` is one of `delta`, `session`, `ack`, `probe`, `control`; `role`
//! `initiator` or `responder`; `outcome` one of
//! [`SessionOutcome`](super::SessionOutcome)'s labels; `reason` one of
//! `auth`, `limit`, `frame_limit`, `malformed`, `admission_own_replica`,
//! `admission_above_ceiling`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::conn::ConnEnv;
use super::metrics::{peer_stats, Histogram, Kind, SessionOutcome};
use super::shared::lock;

type Labels = Vec<(&'static str, String)>;

/// One metric family: name, help, and its series.
#[derive(Debug)]
struct Family<T> {
    name: &'static str,
    help: &'static str,
    series: Vec<(Labels, T)>,
}

impl<T> From<(&'static str, &'static str, Vec<(Labels, T)>)> for Family<T> {
    fn from((name, help, series): (&'static str, &'static str, Vec<(Labels, T)>)) -> Self {
        Family { name, help, series }
    }
}

/// One histogram's state.
#[derive(Debug)]
struct HistogramSnapshot {
    sum: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl From<&Histogram> for HistogramSnapshot {
    fn from(h: &Histogram) -> Self {
        HistogramSnapshot {
            sum: h.sum(),
            count: h.count(),
            buckets: h.buckets(),
        }
    }
}

/// Everything a scrape reports, copied out of the node.
#[derive(Debug, Default)]
struct Snapshot {
    gauges: Vec<Family<f64>>,
    counters: Vec<Family<u64>>,
    histograms: Vec<(&'static str, &'static str, HistogramSnapshot)>,
}

impl Snapshot {
    fn take(env: &ConnEnv) -> Self {
        let shared = &env.shared;
        let m = &shared.metrics;
        let c = &shared.counters;
        let mut s = Snapshot::default();
        let stats = peer_stats(shared);
        let entries: Vec<_> = lock(&m.peers)
            .iter()
            .map(|(p, e)| (*p, std::sync::Arc::clone(e)))
            .collect();
        let peer_labels = |peer: u64, name: &str| -> Labels {
            vec![("peer", peer.to_string()), ("peer_name", name.to_string())]
        };
        let with = |mut l: Labels, k: &'static str, v: &str| {
            l.push((k, v.to_string()));
            l
        };

        let mut up = Vec::new();
        let mut depth = Vec::new();
        let mut lag = Vec::new();
        let mut dropped = Vec::new();
        let (mut items, mut keys, mut bytes, mut age) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for p in &stats {
            let l = peer_labels(p.peer.0, &p.name);
            up.push((l.clone(), if p.connected { 1.0 } else { 0.0 }));
            depth.push((l.clone(), p.queue_depth as f64));
            lag.push((l.clone(), p.lag.as_secs_f64()));
            dropped.push((l.clone(), p.deltas_dropped));
            for (channel, e) in &p.divergence {
                let lc = with(l.clone(), "channel", channel);
                items.push((lc.clone(), e.items));
                keys.push((lc.clone(), e.keys));
                bytes.push((lc.clone(), e.bytes));
                age.push((lc, e.probe_age.as_secs_f64()));
            }
        }
        let (mut sent_b, mut recv_b, mut sent_m, mut recv_m) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut started, mut ended) = (Vec::new(), Vec::new());
        for (peer, e) in &entries {
            let l = peer_labels(peer.0, &lock(&e.name));
            for k in Kind::ALL {
                let lk = with(l.clone(), "kind", k.label());
                let i = k.index();
                sent_b.push((lk.clone(), e.bytes_sent[i].get()));
                recv_b.push((lk.clone(), e.bytes_received[i].get()));
                sent_m.push((lk.clone(), e.messages_sent[i].get()));
                recv_m.push((lk, e.messages_received[i].get()));
            }
            for (i, role) in ["initiator", "responder"].into_iter().enumerate() {
                started.push((with(l.clone(), "role", role), e.sessions_started[i].get()));
            }
            for o in SessionOutcome::ALL {
                ended.push((
                    with(l.clone(), "outcome", o.label()),
                    e.sessions_ended[o.index()].get(),
                ));
            }
        }
        let channel_keys: Vec<(Labels, f64)> = env
            .channels
            .iter()
            .map(|ch| (vec![("channel", ch.name().to_string())], ch.len() as f64))
            .collect();

        let mut refused: Vec<(Labels, u64)> = vec![
            (vec![("reason", "auth".into())], c.auth_failures.get()),
            (vec![("reason", "limit".into())], c.limit_refusals.get()),
            (
                vec![("reason", "frame_limit".into())],
                c.frame_limit_closes.get(),
            ),
            (
                vec![("reason", "malformed".into())],
                c.peer_faults.get().saturating_sub(c.refusals.get()),
            ),
        ];
        for (reason, n) in lock(&m.refused).iter() {
            refused.push((vec![("reason", (*reason).to_string())], *n));
        }

        s.gauges = vec![
            (
                "accordant_peer_up",
                "1 while a connection to the peer is established",
                up,
            ),
            (
                "accordant_delta_queue_depth",
                "Delta frames queued for the peer, not yet written",
                depth,
            ),
            (
                "accordant_replication_lag_seconds",
                "Age of the oldest delta the peer has not acknowledged",
                lag,
            ),
            (
                "accordant_divergence_items",
                "Estimated (key, value) items in the symmetric difference with the peer",
                items,
            ),
            (
                "accordant_divergence_keys",
                "Estimated keys that differ with the peer",
                keys,
            ),
            (
                "accordant_divergence_bytes",
                "Estimated bytes of items converging with the peer would move",
                bytes,
            ),
            (
                "accordant_divergence_probe_age_seconds",
                "Age of the peer's probe the estimate compares with",
                age,
            ),
            (
                "accordant_keys",
                "Keys in the channel's store",
                channel_keys,
            ),
        ]
        .into_iter()
        .map(Family::from)
        .collect();
        let node = |v: u64| vec![(Labels::new(), v)];
        s.counters = vec![
            (
                "accordant_peer_sent_bytes",
                "Bytes sent to the peer, by kind",
                sent_b,
            ),
            (
                "accordant_peer_received_bytes",
                "Bytes received from the peer, by kind",
                recv_b,
            ),
            (
                "accordant_peer_sent_messages",
                "Frames sent to the peer, by kind",
                sent_m,
            ),
            (
                "accordant_peer_received_messages",
                "Frames received from the peer, by kind",
                recv_m,
            ),
            (
                "accordant_sessions_started",
                "Anti-entropy sessions started, by role",
                started,
            ),
            (
                "accordant_sessions_ended",
                "Anti-entropy sessions ended, by outcome",
                ended,
            ),
            (
                "accordant_deltas_dropped",
                "Delta frames dropped because the peer's queue was full",
                dropped,
            ),
            (
                "accordant_refused",
                "Inputs refused, by reason (nothing of them applied)",
                refused,
            ),
            (
                "accordant_writes",
                "Local writes acknowledged",
                node(c.local_writes.get()),
            ),
            (
                "accordant_connections",
                "Connections established",
                node(c.connections.get()),
            ),
            (
                "accordant_disconnects",
                "Connections ended",
                node(c.disconnects.get()),
            ),
            (
                "accordant_resumed",
                "Quiet connections resumed without a new handshake",
                node(c.resumed.get()),
            ),
        ]
        .into_iter()
        .map(Family::from)
        .collect();
        s.histograms = vec![
            (
                "accordant_session_round_trips",
                "Round trips of the sessions this node initiated",
                (&m.round_trips).into(),
            ),
            (
                "accordant_write_seconds",
                "Local writes, from update called to acknowledged",
                (&m.write_seconds).into(),
            ),
            (
                "accordant_commit_seconds",
                "Durable commits (group commits included)",
                (&m.commit_seconds).into(),
            ),
        ];
        s
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.gauges {
            let mut d = encoder.encode_descriptor(f.name, f.help, None, MetricType::Gauge)?;
            for (labels, v) in &f.series {
                ConstGauge::new(*v).encode(d.encode_family(labels)?)?;
            }
        }
        for f in &self.counters {
            let mut d = encoder.encode_descriptor(f.name, f.help, None, MetricType::Counter)?;
            for (labels, v) in &f.series {
                ConstCounter::new(*v).encode(d.encode_family(labels)?)?;
            }
        }
        for (name, help, h) in &self.histograms {
            let mut d = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            d.encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)?;
        }
        Ok(())
    }
}

/// The OpenMetrics content type of [`render`]'s text.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The node's metrics, as text.
pub(crate) fn render(env: &ConnEnv) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot::take(env)));
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, &registry) {
        Ok(()) => out,
        Err(_) => "# the metrics could not be encoded\n# EOF\n".to_string(),
    }
}
