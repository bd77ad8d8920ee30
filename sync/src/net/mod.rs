//! The transport: anti-entropy sessions and delta replication over real
//! sockets (tokio; behind the `tokio` feature).
//!
//! A [`Node`] holds one or more stores (*channels*, each a
//! [`Store<K, V>`](crate::store::Store) of its own key and value types),
//! accepts peers and dials them, and keeps every connected peer close:
//!
//! 1. **Deltas while connected.** Every local write
//!    ([`Channel::update`]) hands its delta to the channel's
//!    [`DeltaReplicator`](crate::delta::DeltaReplicator) — by default
//!    [`NaivePush`](crate::delta::NaivePush), which queues it for every
//!    connected peer. Queues are bounded: when a peer's queue is full the
//!    delta is dropped, counted, and anti-entropy with that peer is
//!    scheduled (see [`crate::delta::path`] for the backpressure story).
//! 2. **Anti-entropy** ([`Session`](crate::session::Session)) on every
//!    (re)connect and every [`NodeConfig::ae_interval`], one session per
//!    channel at a time, repairs whatever deltas missed: a partition, a
//!    restart, a dropped delta. Each connection runs its sessions through
//!    a [`SessionHost`](crate::host::SessionHost) keyed by channel, the
//!    same host the simulator tests drive.
//! 3. **Resilience.** Length-delimited frames ([`wire`]) with bounded
//!    decoding; timeouts on the handshake (TLS included), on connecting, on
//!    every write, on every frame in progress, on idle connections
//!    (keepalives detect a partition) and on stalled sessions; reconnection with capped, jittered exponential backoff;
//!    graceful shutdown ([`Node::shutdown`]: `Bye`, flush, final snapshot)
//!    driven by a `watch` signal.
//! 4. **Durability.** A node keeps its stores in one redb database in its
//!    data directory ([`NodeConfig::with_data_dir`]; a node without one
//!    refuses to open its stores unless [`NodeConfig::in_memory`] says so
//!    explicitly). A write is acknowledged once committed, with group
//!    commit ([`commit`]), and the node keeps its replica id across
//!    restarts. [`Node::snapshot`] exports a backup (checked: this node's,
//!    this cluster's, every store of the right type), which
//!    [`NodeBuilder::restore`] imports under a new replica id.
//!
//! Connections are generic over `AsyncRead + AsyncWrite`: TCP through
//! [`Node::listen`] and [`Node::dial`], anything else through
//! [`Node::accept_stream`] and [`Node::dial_with`]. [`sync_stream`] runs a
//! single session over a stream with no node at all. [`proxy`] is the
//! delaying, cuttable TCP proxy that the demo and the tests put between
//! nodes.
//!
//! 5. **Observability.** A node measures each peer's link, traffic by
//!    kind, sessions, replication [lag](LagTracker) and
//!    [divergence] (a 33-byte probe per channel every
//!    [`NodeConfig::divergence_interval`]), and its commit latency;
//!    [`Node::peer_stats`] returns them, and with the `metrics` feature
//!    `Node::serve_metrics` serves them to Prometheus at `/metrics`.
//!
//! 6. **Security** (see SECURITY.md). Every connection runs mutual TLS 1.3
//!    (rustls, *ring* provider): a node accepts only a certificate of its
//!    cluster's CA naming a node on its member list, and dials only a peer
//!    whose certificate names the node it expects ([`identity`](TlsIdentity)).
//!    Values from peers pass [admission](crate::admission) before they are
//!    joined; what an unauthenticated or authenticated peer can cost the
//!    node is bounded by [`NetLimits`]. [`certs`] makes a cluster's
//!    certificates. Plaintext exists only behind
//!    [`NodeConfig::insecure_plaintext`]; without TLS material a node
//!    refuses to start.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use accordant::{GCounter, ReplicaId};
//! use accordant_sync::net::certs::ClusterCa;
//! use accordant_sync::net::{NodeBuilder, NodeConfig, TlsIdentity};
//!
//! // The cluster's CA, and a certificate for each node.
//! let ca = ClusterCa::new("shop").unwrap();
//! let member = |id: u64, name: &str| {
//!     let cert = ca.issue(id).unwrap();
//!     let tls = TlsIdentity::from_pem(ca.cert_pem(), &cert.cert_pem, &cert.key_pem).unwrap();
//!     NodeConfig::new(id, name)
//!         .with_cluster("shop", [1, 2])
//!         .with_tls(tls)
//!         // In memory for the example; a real node keeps its database in a
//!         // directory: `.with_data_dir("/var/lib/eu")`.
//!         .in_memory()
//! };
//!
//! let mut eu = NodeBuilder::new(member(1, "eu"));
//! let eu_views = eu.channel::<String, GCounter>("views").unwrap();
//! let eu = eu.start().unwrap();
//! let addr = eu.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
//!
//! let mut us = NodeBuilder::new(member(2, "us-east"));
//! let us_views = us.channel::<String, GCounter>("views").unwrap();
//! let us = us.start().unwrap();
//! us.dial(addr, 1); // node 1 must answer; reconnects with backoff until shutdown
//!
//! let _ = eu_views.update("home".into(), |c| c.increment(ReplicaId::from_u128(1), 1)).await.unwrap();
//! let _ = us_views.update("home".into(), |c| c.increment(ReplicaId::from_u128(2), 2)).await.unwrap();
//! while eu_views.root_digest() != us_views.root_digest() {
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//! }
//! assert_eq!(eu_views.get("home").unwrap().value(), 3);
//!
//! // Without TLS material, a node refuses to start.
//! assert!(NodeBuilder::new(NodeConfig::new(3, "nowhere")).start().is_err());
//! us.shutdown().await.unwrap();
//! eu.shutdown().await.unwrap();
//! # });
//! ```

pub mod certs;
mod channel;
pub mod commit;
mod config;
mod conn;
pub mod divergence;
mod error;
#[cfg(feature = "metrics")]
mod exposition;
mod handshake;
#[cfg(feature = "metrics")]
mod http;
mod identity;
mod lag;
mod limits;
mod metrics;
mod node;
pub mod proxy;
mod pull;
mod rate;
mod rights;
mod shared;
mod stream;
mod tls;
pub mod wire;
mod writer;

pub use channel::{Channel, WriteError};
pub use config::NodeConfig;
pub use divergence::{compare, DivergenceEstimate, DivergenceProbe};
pub use error::NetError;
pub use identity::{node_dns_name, node_uri, valid_cluster_name, TlsError, TlsIdentity};
pub use lag::LagTracker;
pub use limits::NetLimits;
pub use metrics::{Histogram, Kind, PeerStats, SessionOutcome};
pub use node::{Node, NodeBuilder, DB_FILE};
pub use pull::{
    apply_pulled, decode_pull, decode_pulled, encode_pull, Pulls, SessionError, MAX_PENDING_PULLS,
    PULL_ANSWER_WINDOW, PULL_RETRY,
};
pub use rights::RightsKeeper;
pub use shared::{NodeEvent, NodeStats};
pub use stream::sync_stream;
