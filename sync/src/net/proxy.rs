//! A user-space TCP proxy that adds cross-region latency and cuts links.
//!
//! The kernel here has no `netem`, so latency is made in user space: each
//! link is a listening socket that forwards every connection to an upstream
//! address, holding every chunk of bytes for the link's one-way delay (plus
//! a seeded jitter that never reorders bytes). The seed article's
//! cross-region round trip of 80–120 ms is a one-way delay of 40–60 ms.
//!
//! [`Proxy::cut`] partitions a link the way a real network partition looks
//! to TCP: nothing crosses it any more, in either direction, but no
//! connection is reset; bytes already in flight wait. The nodes notice by
//! their idle timeout and close; new connections are accepted by the proxy
//! but reach the other side only when the link heals ([`Proxy::heal`]),
//! just as SYNs would be retransmitted. Bytes are never dropped from the
//! middle of a stream, so TCP semantics hold.
//!
//! Backpressure: each direction of each connection buffers at most
//! [`MAX_IN_FLIGHT`] chunks before it stops reading, so a slow receiver
//! slows the sender down through TCP flow control, as a real link would.
//!
//! ```no_run
//! # async fn demo(eu: std::net::SocketAddr) -> std::io::Result<()> {
//! use std::time::Duration;
//! use accordant_sync::net::proxy::{LinkSpec, Proxy};
//!
//! let proxy = Proxy::new(42);
//! // US-East reaches EU through this address, 80 ms round trip.
//! let via = proxy
//!     .add_link("us-east", "eu", "127.0.0.1:0".parse().unwrap(), eu, LinkSpec::rtt(Duration::from_millis(80)))
//!     .await?;
//! proxy.cut("eu", "us-east");  // split brain
//! proxy.heal("eu", "us-east"); // and back
//! # let _ = via; Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::rng::SplitMix64;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::shared::lock;

/// Chunks buffered per direction of a connection before the proxy stops
/// reading.
pub const MAX_IN_FLIGHT: usize = 256;

/// Latency of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkSpec {
    /// Delay added to every byte, each way.
    pub one_way: Duration,
    /// Extra delay drawn uniformly in `[0, jitter]` per chunk (never
    /// reordering bytes).
    pub jitter: Duration,
}

impl LinkSpec {
    /// A link of round-trip time `rtt` (half each way), with 5% jitter.
    pub fn rtt(rtt: Duration) -> Self {
        LinkSpec {
            one_way: rtt / 2,
            jitter: rtt / 40,
        }
    }

    /// No added delay.
    pub fn direct() -> Self {
        LinkSpec {
            one_way: Duration::ZERO,
            jitter: Duration::ZERO,
        }
    }
}

/// Traffic of one link.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkStats {
    /// The link's endpoints, sorted.
    pub ends: (String, String),
    /// Bytes forwarded, both directions.
    pub bytes: u64,
    /// Connections accepted.
    pub connections: u64,
    /// Whether the link is cut now.
    pub cut: bool,
}

struct Link {
    cut: watch::Sender<bool>,
    bytes: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
}

/// The delaying, cuttable proxy. See the [module docs](self).
pub struct Proxy {
    links: Mutex<BTreeMap<(String, String), Link>>,
    tasks: Arc<Mutex<JoinSet<()>>>,
    seed: AtomicU64,
}

impl core::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Proxy").finish_non_exhaustive()
    }
}

fn key(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

impl Proxy {
    /// A proxy with no link yet; `seed` drives the jitter.
    pub fn new(seed: u64) -> Self {
        Proxy {
            links: Mutex::new(BTreeMap::new()),
            tasks: Arc::new(Mutex::new(JoinSet::new())),
            seed: AtomicU64::new(seed),
        }
    }

    fn link(&self, a: &str, b: &str) -> (watch::Receiver<bool>, Arc<AtomicU64>, Arc<AtomicU64>) {
        let mut links = lock(&self.links);
        let l = links.entry(key(a, b)).or_insert_with(|| Link {
            cut: watch::channel(false).0,
            bytes: Arc::new(AtomicU64::new(0)),
            connections: Arc::new(AtomicU64::new(0)),
        });
        (
            l.cut.subscribe(),
            Arc::clone(&l.bytes),
            Arc::clone(&l.connections),
        )
    }

    /// Listens on `listen` (port 0 picks one) and forwards every connection
    /// to `upstream` through the link between `a` and `b` (a link is the
    /// unordered pair: several listeners may share it). Returns the bound
    /// address: give it to the node that dials.
    pub async fn add_link(
        &self,
        a: &str,
        b: &str,
        listen: SocketAddr,
        upstream: SocketAddr,
        spec: LinkSpec,
    ) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind(listen).await?;
        let local = listener.local_addr()?;
        let (cut, bytes, conns) = self.link(a, b);
        let tasks = Arc::clone(&self.tasks);
        let seed = self.seed.fetch_add(1, Ordering::Relaxed);
        lock(&self.tasks).spawn(async move {
            let mut n = 0u64;
            while let Ok((client, _)) = listener.accept().await {
                n += 1;
                conns.fetch_add(1, Ordering::Relaxed);
                let _ = client.set_nodelay(true);
                let conn = forward(
                    client,
                    upstream,
                    spec,
                    cut.clone(),
                    Arc::clone(&bytes),
                    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ n,
                );
                let mut t = lock(&tasks);
                while t.try_join_next().is_some() {}
                t.spawn(conn);
            }
        });
        Ok(local)
    }

    /// Cuts the link between `a` and `b`: nothing crosses it until
    /// [`Proxy::heal`].
    pub fn cut(&self, a: &str, b: &str) {
        let _ = self.link(a, b);
        if let Some(l) = lock(&self.links).get(&key(a, b)) {
            l.cut.send_replace(true);
        }
    }

    /// Heals the link between `a` and `b`.
    pub fn heal(&self, a: &str, b: &str) {
        if let Some(l) = lock(&self.links).get(&key(a, b)) {
            l.cut.send_replace(false);
        }
    }

    /// Cuts every link that touches `a`.
    pub fn isolate(&self, a: &str) {
        for ((x, y), l) in lock(&self.links).iter() {
            if x == a || y == a {
                l.cut.send_replace(true);
            }
        }
    }

    /// Heals every link.
    pub fn heal_all(&self) {
        for l in lock(&self.links).values() {
            l.cut.send_replace(false);
        }
    }

    /// Whether the link between `a` and `b` is cut.
    pub fn is_cut(&self, a: &str, b: &str) -> bool {
        lock(&self.links)
            .get(&key(a, b))
            .is_some_and(|l| *l.cut.borrow())
    }

    /// Traffic of every link.
    pub fn stats(&self) -> Vec<LinkStats> {
        lock(&self.links)
            .iter()
            .map(|(ends, l)| LinkStats {
                ends: ends.clone(),
                bytes: l.bytes.load(Ordering::Relaxed),
                connections: l.connections.load(Ordering::Relaxed),
                cut: *l.cut.borrow(),
            })
            .collect()
    }

    /// Stops every listener and drops every connection.
    pub async fn shutdown(&self) {
        let mut t = std::mem::take(&mut *lock(&self.tasks));
        t.abort_all();
        while t.join_next().await.is_some() {}
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        lock(&self.tasks).abort_all();
    }
}

async fn wait_healed(cut: &mut watch::Receiver<bool>) -> bool {
    while *cut.borrow_and_update() {
        if cut.changed().await.is_err() {
            return false;
        }
    }
    true
}

/// One proxied connection: waits for the link to be up, connects upstream,
/// then forwards both directions.
async fn forward(
    mut client: TcpStream,
    upstream: SocketAddr,
    spec: LinkSpec,
    mut cut: watch::Receiver<bool>,
    bytes: Arc<AtomicU64>,
    seed: u64,
) {
    // While the link is cut, hold what the client sends (bounded), and give
    // up if it leaves.
    let mut early = Vec::new();
    let mut buf = vec![0u8; 16 << 10];
    loop {
        if !*cut.borrow_and_update() {
            break;
        }
        tokio::select! {
            r = cut.changed() => if r.is_err() { return },
            r = client.read(&mut buf), if early.len() < (1 << 20) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => early.extend_from_slice(&buf[..n]),
            },
        }
    }
    let Ok(Ok(server)) =
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(upstream)).await
    else {
        return;
    };
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = pipe(cr, sw, early, spec, cut.clone(), Arc::clone(&bytes), seed);
    let down = pipe(sr, cw, Vec::new(), spec, cut, bytes, seed ^ 1);
    tokio::join!(up, down);
}

/// Forwards one direction with the link's delay, pausing while it is cut.
async fn pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    early: Vec<u8>,
    spec: LinkSpec,
    cut: watch::Receiver<bool>,
    bytes: Arc<AtomicU64>,
    seed: u64,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(MAX_IN_FLIGHT);
    let mut rng = SplitMix64::new(seed);
    let mut read_cut = cut.clone();
    let reader = async move {
        let mut last = Instant::now();
        let mut due_of = |rng: &mut SplitMix64| {
            let jitter = if spec.jitter.is_zero() {
                Duration::ZERO
            } else {
                spec.jitter.mul_f64(rng.unit())
            };
            last = last.max(Instant::now() + spec.one_way + jitter);
            last
        };
        if !early.is_empty() {
            let due = due_of(&mut rng);
            if tx.send((due, early)).await.is_err() {
                return;
            }
        }
        let mut buf = vec![0u8; 16 << 10];
        loop {
            if !wait_healed(&mut read_cut).await {
                return;
            }
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let due = due_of(&mut rng);
            if tx.send((due, buf[..n].to_vec())).await.is_err() {
                return;
            }
        }
    };
    let mut write_cut = cut;
    let writer = async move {
        while let Some((due, data)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if !wait_healed(&mut write_cut).await {
                return;
            }
            if to.write_all(&data).await.is_err() {
                return;
            }
            bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
