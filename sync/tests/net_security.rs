//! Attacks on a node, one test per class, each against a node configured
//! as by default (mutual TLS, the default `NetLimits` unless a test says
//! which limit it shrinks to stay fast). Each asserts that the attack
//! failed, that nothing of it was applied, and that the node keeps
//! serving its members (a real member connects and syncs afterwards).
//!
//! The attackers are raw clients: plain TCP, or rustls with whatever
//! certificate the attack needs, speaking the node protocol by hand.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use accordant::codec::SeqVec;
use accordant::{CausalContext, GCounter, Lattice, OrSet, ReplicaId};
use accordant_sync::delta::NaivePush;
use accordant_sync::message::Bytes;
use accordant_sync::net::certs::{ClusterCa, NodeCert};
use accordant_sync::net::wire::{Frame, Handshake, MAGIC};
use accordant_sync::net::{
    node_dns_name, Channel, NetLimits, Node, NodeBuilder, NodeConfig, NodeStats, TlsIdentity,
};
use accordant_sync::store::Store;
use accordant_sync::wire::FrameReader;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const CLUSTER: &str = "sec";
/// The victim is node 1; 2 to 9 are members; 66 is a stranger.
const MEMBERS: std::ops::RangeInclusive<u64> = 1..=9;

fn ca() -> &'static ClusterCa {
    static CA: OnceLock<ClusterCa> = OnceLock::new();
    CA.get_or_init(|| ClusterCa::new(CLUSTER).unwrap())
}

fn identity(ca: &ClusterCa, id: u64) -> TlsIdentity {
    let cert = ca.issue(id).unwrap();
    TlsIdentity::from_pem(ca.cert_pem(), &cert.cert_pem, &cert.key_pem).unwrap()
}

/// The replica id node `id` writes under.
fn replica_of(id: u64) -> ReplicaId {
    ReplicaId::from_u128(0x5EC0_0000 + u128::from(id))
}

/// A default node of the cluster (TLS, members 1 to 9), with short
/// reconnection backoff so the tests' real members connect quickly.
fn config(id: u64) -> NodeConfig {
    NodeConfig::new(id, format!("n{id}"))
        .with_cluster(CLUSTER, MEMBERS)
        .with_tls(identity(ca(), id))
        .with_replica(replica_of(id))
        .in_memory()
        .with_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

struct Victim {
    node: Node,
    views: Channel<String, GCounter>,
    tags: Channel<String, OrSet<String>>,
    addr: SocketAddr,
}

impl Victim {
    async fn start(config: NodeConfig) -> Victim {
        let mut b = NodeBuilder::new(config);
        let views = b.channel("views").unwrap();
        let tags = b.channel("tags").unwrap();
        let node = b.start().unwrap();
        let addr = node.listen(local()).await.unwrap();
        let v = Victim {
            node,
            views,
            tags,
            addr,
        };
        // Some writes of its own, so forgeries have something to exceed.
        let me = replica_of(1);
        for _ in 0..3 {
            let _ = v
                .views
                .update("k".into(), |c| c.increment(me, 1))
                .await
                .unwrap();
        }
        let _ = v
            .tags
            .update("t".into(), |s| s.add(me, "mine".into()))
            .await
            .unwrap();
        v
    }

    fn state(&self) -> (Store<String, GCounter>, Store<String, OrSet<String>>) {
        (self.views.snapshot_store(), self.tags.snapshot_store())
    }

    fn stats(&self) -> NodeStats {
        self.node.stats()
    }

    /// A real member (node `id`) dials, and both converge on a write of
    /// each: the node still serves its members.
    async fn still_serves(&self, id: u64) {
        let mut b = NodeBuilder::new(config(id));
        let views: Channel<String, GCounter> = b.channel("views").unwrap();
        let _tags: Channel<String, OrSet<String>> = b.channel("tags").unwrap();
        let member = b.start().unwrap();
        member.dial(self.addr, 1);
        let key = format!("from-{id}");
        let _ = views
            .update(key.clone(), |c| c.increment(replica_of(id), 5))
            .await
            .unwrap();
        let start = Instant::now();
        while self.views.get(&key).map(|c| c.value()) != Some(5)
            || views.root_digest() != self.views.root_digest()
        {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "member {id} did not sync with the node: {:?}",
                self.stats()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        member.shutdown().await.unwrap();
    }
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn tls_client_config(roots_pem: &str, cert: Option<&NodeCert>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(roots_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match cert {
        Some(c) => b
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(c.cert_pem.as_bytes())
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    })
}

/// A TLS connection to the victim (node 1) presenting `cert`.
async fn tls_connect(
    addr: SocketAddr,
    roots_pem: &str,
    cert: Option<&NodeCert>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(node_dns_name(CLUSTER, 1)).unwrap();
    tokio_rustls::TlsConnector::from(tls_client_config(roots_pem, cert))
        .connect(name, tcp)
        .await
}

fn hello(node: u64) -> Vec<u8> {
    Frame::Handshake(Handshake {
        magic: MAGIC,
        node,
        name: "mallory".into(),
        channels: SeqVec(vec!["views".into(), "tags".into()]),
    })
    .to_wire()
}

/// Reads until the node closes the stream (EOF or an error, such as a TLS
/// alert); returns the frames it sent, or `None` if it stayed open for
/// `within`.
async fn until_closed<S: AsyncRead + Unpin>(s: &mut S, within: Duration) -> Option<Vec<Frame>> {
    let deadline = tokio::time::Instant::now() + within;
    let mut reader = FrameReader::new();
    let mut frames = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(frames),
            Ok(Ok(n)) => {
                reader.push(&buf[..n]);
                while let Ok(Some(f)) = Frame::next(&mut reader, 64 << 20) {
                    frames.push(f);
                }
            }
        }
    }
}

/// Whether the node answers with its handshake (it accepted ours).
async fn node_handshake<S: AsyncRead + Unpin>(s: &mut S) -> bool {
    let mut reader = FrameReader::new();
    let mut buf = [0u8; 4096];
    loop {
        let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await else {
            return false;
        };
        if n == 0 {
            return false;
        }
        reader.push(&buf[..n]);
        if let Ok(Some(f)) = Frame::next(&mut reader, 4096) {
            return matches!(f, Frame::Handshake(_));
        }
    }
}

async fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A member (node 2) that passed TLS and the handshake, ready to send
/// frames.
async fn member_session(v: &Victim, id: u64) -> tokio_rustls::client::TlsStream<TcpStream> {
    let cert = ca().issue(id).unwrap();
    let mut s = tls_connect(v.addr, ca().cert_pem(), Some(&cert))
        .await
        .expect("a member's TLS handshake succeeds");
    s.write_all(&hello(id)).await.unwrap();
    assert!(node_handshake(&mut s).await, "the node accepts a member");
    s
}

fn delta_frame<V: accordant_sync::store::StoreValue>(
    channel: u16,
    key: &str,
    value: &V,
) -> Vec<u8> {
    Frame::Delta {
        channel,
        payload: Bytes(NaivePush::encode(&key.to_string(), value)),
    }
    .to_wire()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_tls_material_refuses_to_start() {
    let err = NodeBuilder::new(NodeConfig::new(1, "n1"))
        .start()
        .expect_err("no TLS material, no plaintext chosen");
    assert!(err.to_string().contains("no TLS material"), "{err}");
    // Material whose certificate names another node is refused too.
    let wrong = NodeConfig::new(1, "n1")
        .in_memory()
        .with_cluster(CLUSTER, MEMBERS)
        .with_tls(identity(ca(), 2));
    let err = NodeBuilder::new(wrong)
        .start()
        .expect_err("another node's certificate");
    assert!(err.to_string().contains("names"), "{err}");
    // Plaintext only when asked for by name.
    let plain = NodeBuilder::new(NodeConfig::new(1, "n1").insecure_plaintext().in_memory())
        .start()
        .unwrap();
    plain.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_is_refused() {
    let v = Victim::start(config(1)).await;
    let before = v.state();
    let mut s = TcpStream::connect(v.addr).await.unwrap();
    // It speaks the node protocol in plaintext, claiming to be member 2,
    // and sends a write.
    let mut evil = GCounter::new();
    let _ = evil.increment(replica_of(2), 1000).unwrap();
    s.write_all(&hello(2)).await.unwrap();
    s.write_all(&delta_frame(0, "k", &evil)).await.unwrap();
    let frames = until_closed(&mut s, Duration::from_secs(5))
        .await
        .expect("the node closes a plaintext connection");
    assert!(frames.is_empty(), "nothing readable came back: {frames:?}");
    wait_for("refusal counted", Duration::from_secs(5), || {
        v.stats().auth_failures >= 1
    })
    .await;
    assert_eq!(v.state(), before, "nothing was applied");
    assert!(v.node.peers().is_empty());
    v.still_serves(2).await;
    v.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_without_a_certificate_is_refused() {
    let v = Victim::start(config(1)).await;
    let before = v.state();
    // The client trusts the cluster's CA (it knows the server) but has no
    // certificate of its own. TLS 1.3 lets it finish its side before the
    // server's verdict, so the refusal shows on its first read.
    if let Ok(mut s) = tls_connect(v.addr, ca().cert_pem(), None).await {
        let _ = s.write_all(&hello(2)).await;
        let frames = until_closed(&mut s, Duration::from_secs(5))
            .await
            .expect("closed");
        assert!(frames.is_empty(), "{frames:?}");
    }
    wait_for("refusal counted", Duration::from_secs(5), || {
        v.stats().auth_failures >= 1
    })
    .await;
    assert_eq!(v.state(), before);
    assert!(v.node.peers().is_empty());
    v.still_serves(3).await;
    v.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused() {
    let v = Victim::start(config(1)).await;
    let before = v.state();
    // Another CA with the same cluster name issues "node 2".
    let rogue = ClusterCa::new(CLUSTER).unwrap();
    let cert = rogue.issue(2).unwrap();
    let roots = format!("{}{}", ca().cert_pem(), rogue.cert_pem());
    if let Ok(mut s) = tls_connect(v.addr, &roots, Some(&cert)).await {
        let _ = s.write_all(&hello(2)).await;
        let frames = until_closed(&mut s, Duration::from_secs(5))
            .await
            .expect("closed");
        assert!(frames.is_empty(), "{frames:?}");
    }
    wait_for("refusal counted", Duration::from_secs(5), || {
        v.stats().auth_failures >= 1
    })
    .await;
    assert_eq!(v.state(), before);
    // And the node dials nobody with such a certificate: a rogue "node 2"
    // listening is refused by the victim's dialer.
    let mut rb = NodeBuilder::new(
        NodeConfig::new(2, "rogue")
            .in_memory()
            .with_cluster(CLUSTER, MEMBERS)
            .with_tls(TlsIdentity::from_pem(&roots, &cert.cert_pem, &cert.key_pem).unwrap()),
    );
    let _: Channel<String, GCounter> = rb.channel("views").unwrap();
    let _: Channel<String, OrSet<String>> = rb.channel("tags").unwrap();
    let rogue_node = rb.start().unwrap();
    let rogue_addr = rogue_node.listen(local()).await.unwrap();
    let failures = v.stats().connect_failures;
    v.node.dial(rogue_addr, 2);
    wait_for("the dial fails", Duration::from_secs(5), || {
        v.stats().connect_failures > failures
    })
    .await;
    assert!(v.node.peers().is_empty());
    assert_eq!(v.state(), before);
    rogue_node.shutdown().await.unwrap();
    v.still_serves(4).await;
    v.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_certificate_of_a_non_member_is_refused() {
    let v = Victim::start(config(1)).await;
    let before = v.state();
    // The cluster's own CA, but node 66 is not on the member list.
    let cert = ca().issue(66).unwrap();
    if let Ok(mut s) = tls_connect(v.addr, ca().cert_pem(), Some(&cert)).await {
        let _ = s.write_all(&hello(66)).await;
        let frames = until_closed(&mut s, Duration::from_secs(5))
            .await
            .expect("closed");
        assert!(frames.is_empty(), "{frames:?}");
    }
    wait_for("refusal counted", Duration::from_secs(5), || {
        v.stats().auth_failures >= 1
    })
    .await;
    assert_eq!(v.state(), before);
    assert!(v.node.peers().is_empty());
    v.still_serves(5).await;
    v.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_claim_another_members_id() {
    let v = Victim::start(config(1)).await;
    // Member 3 is connected and syncing.
    let mut b = NodeBuilder::new(config(3));
    let m3_views: Channel<String, GCounter> = b.channel("views").unwrap();
    let _: Channel<String, OrSet<String>> = b.channel("tags").unwrap();
    let m3 = b.start().unwrap();
    m3.dial(v.addr, 1);
    wait_for("member 3 connected", Duration::from_secs(5), || {
        v.node.peers().iter().any(|(p, _)| p.0 == 3)
    })
    .await;
    let connections = v.stats().connections;
    // Member 2 authenticates (its own certificate) but its handshake frame
    // claims to be node 3.
    let cert = ca().issue(2).unwrap();
    let mut s = tls_connect(v.addr, ca().cert_pem(), Some(&cert))
        .await
        .unwrap();
    s.write_all(&hello(3)).await.unwrap();
    let frames = until_closed(&mut s, Duration::from_secs(5))
        .await
        .expect("closed");
    assert!(
        !frames
            .iter()
            .any(|f| matches!(f, Frame::Session { .. } | Frame::Delta { .. })),
        "{frames:?}"
    );
    wait_for("refusal counted", Duration::from_secs(5), || {
        v.stats().auth_failures >= 1
    })
    .await;
    // Member 3 was not kicked off: same connection, still syncing.
    assert_eq!(v.stats().connections, connections);
    assert!(v.node.peers().iter().any(|(p, _)| p.0 == 3));
    let _ = m3_views
        .update("still".into(), |c| c.increment(replica_of(3), 1))
        .await
        .unwrap();
    wait_for("member 3 still syncs", Duration::from_secs(5), || {
        v.views.get(&"still".into()).is_some()
    })
    .await;
    // A dialer refuses a peer that is not the node it dialed: the victim
    // dials member 3's listener expecting node 4.
    let m3_addr = m3.listen(local()).await.unwrap();
    let failures = v.stats().connect_failures;
    v.node.dial(m3_addr, 4);
    wait_for("the dial fails", Duration::from_secs(5), || {
        v.stats().connect_failures > failures
    })
    .await;
    m3.shutdown().await.unwrap();
    v.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_dots_and_counts_of_the_receivers_own_replica_are_refused() {
    let v = Victim::start(config(1)).await;
    let me = replica_of(1);
    let before = v.state();
    // The victim issued 3 increments on "k" and 1 dot on "t". A member
    // claims a 4th increment by the victim...
    let mut count = GCounter::new();
    let _ = count.increment(me, 4).unwrap();
    // ...and, in another connection, a second dot of the victim's.
    let mut set: OrSet<String> = OrSet::new();
    let _ = set.add(me, "mine".into()).unwrap();
    let _ = set.add(me, "forged".into()).unwrap();
    let forgeries = [delta_frame(0, "k", &count), delta_frame(1, "t", &set)];
    for (i, forged) in forgeries.iter().enumerate() {
        let mut s = member_session(&v, 2).await;
        s.write_all(forged).await.unwrap();
        until_closed(&mut s, Duration::from_secs(5))
            .await
            .expect("the node closes the connection");
        wait_for("refusal counted", Duration::from_secs(5), || {
            v.stats().refusals > i as u64
        })
        .await;
    }
    assert_eq!(v.stats().refusals, 2);
    assert!(v.stats().peer_faults >= 2);
    assert_eq!(v.state(), before, "nothing was applied");
    // The victim's own writes go on as before.
    let _ = v
        .views
        .update("k".into(), |c| c.increment(me, 1))
        .await
        .unwrap();
    assert_eq!(v.views.get(&"k".into()).unwrap().count(&me), 4);
    v.still_serves(2).await;
    v.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_at_u64_max_and_a_context_up_to_u64_max_are_refused() {
    let v = Victim::start(config(1)).await;
    let before = v.state();
    // Claims of member 2's own replica: true to its writes, but above the
    // ceiling. Joined, they would make every later write on these keys
    // fail with an overflow, on every node.
    let mut count = GCounter::new();
    let _ = count.increment(replica_of(2), u64::MAX).unwrap();
    let mut ctx = CausalContext::new();
    ctx.insert_range(replica_of(2), 1, u64::MAX - 1);
    let mut set: OrSet<String> = OrSet::new();
    let _ = set.add(replica_of(2), "x".into()).unwrap();
    let set = set.joined(&OrSet::from_causal_context(ctx));
    for (i, frame) in [delta_frame(0, "k", &count), delta_frame(1, "t", &set)]
        .iter()
        .enumerate()
    {
        let mut s = member_session(&v, 2).await;
        s.write_all(frame).await.unwrap();
        until_closed(&mut s, Duration::from_secs(5))
            .await
            .expect("closed");
        wait_for("refusal counted", Duration::from_secs(5), || {
            v.stats().refusals > i as u64
        })
        .await;
    }
    assert_eq!(v.state(), before, "nothing was applied");
    // Every node can still write these keys.
    let _ = v
        .views
        .update("k".into(), |c| c.increment(replica_of(1), 1))
        .await
        .unwrap();
    let _ = v
        .tags
        .update("t".into(), |s| s.add(replica_of(1), "more".into()))
        .await
        .unwrap();
    v.still_serves(2).await;
    v.node.shutdown().await.unwrap();
}

/// `OrSet::from_causal_context`: an empty set whose context is `ctx`, what
/// a peer's "remove everything I saw" delta looks like.
trait FromContext {
    fn from_causal_context(ctx: CausalContext) -> Self;
}

impl FromContext for OrSet<String> {
    fn from_causal_context(ctx: CausalContext) -> Self {
        use accordant::{Causal, CausalCrdt};
        OrSet::from_causal(Causal::from_parts(Default::default(), ctx).unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_trickled_one_byte_at_a_time_is_cut_off() {
    // Default limits: a frame gets 5 s plus its length at 64 KiB/s.
    let v = Victim::start(config(1)).await;
    let before = v.state();
    let mut s = member_session(&v, 2).await;
    let mut evil = GCounter::new();
    let _ = evil.increment(replica_of(2), 1).unwrap();
    let frame = delta_frame(0, "trickle", &evil);
    let start = Instant::now();
    let mut closed_after = None;
    // One byte every 200 ms: the idle timer (5 s) never fires, but the
    // frame would need about 8 s to arrive.
    for b in frame.iter().take(frame.len() - 1) {
        if s.write_all(&[*b]).await.is_err() || s.flush().await.is_err() {
            closed_after = Some(start.elapsed());
            break;
        }
        if let Ok(Ok(0)) | Ok(Err(_)) =
            tokio::time::timeout(Duration::from_millis(200), s.read(&mut [0u8; 512])).await
        {
            closed_after = Some(start.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect("the node cut the trickled frame off");
    assert!(
        closed_after >= Duration::from_millis(4500) && closed_after < Duration::from_secs(8),
        "closed after {closed_after:?}"
    );
    wait_for("counted", Duration::from_secs(3), || {
        v.stats().frame_limit_closes >= 1
    })
    .await;
    assert_eq!(v.state(), before);
    // Before authentication, a trickle ends at the handshake deadline (3 s
    // for TLS and the handshake frame together).
    let mut raw = TcpStream::connect(v.addr).await.unwrap();
    let start = Instant::now();
    let mut cut = None;
    for _ in 0..100 {
        if raw.write_all(&[0x16]).await.is_err() {
            cut = Some(start.elapsed());
            break;
        }
        if let Ok(Ok(0)) | Ok(Err(_)) =
            tokio::time::timeout(Duration::from_millis(200), raw.read(&mut [0u8; 64])).await
        {
            cut = Some(start.elapsed());
            break;
        }
    }
    let cut = cut.expect("a pre-authentication trickle is cut off");
    assert!(cut < Duration::from_secs(5), "{cut:?}");
    v.still_serves(3).await;
    v.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_handshake_frame_is_refused_from_its_length() {
    // In plaintext (where a stranger reaches the handshake frame at all),
    // a handshake claiming 16 MiB is refused before it is buffered.
    let v = Victim::start(
        NodeConfig::new(1, "n1")
            .insecure_plaintext()
            .in_memory()
            .with_replica(replica_of(1)),
    )
    .await;
    let mut s = TcpStream::connect(v.addr).await.unwrap();
    let mut header = Vec::new();
    let mut n = 16u64 << 20;
    while n >= 0x80 {
        header.push((n as u8) | 0x80);
        n >>= 7;
    }
    header.push(n as u8);
    s.write_all(&header).await.unwrap();
    s.write_all(&[0u8; 1000]).await.unwrap();
    let start = Instant::now();
    until_closed(&mut s, Duration::from_secs(2))
        .await
        .expect("refused at once, not at the handshake deadline");
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(
        v.stats().frame_buffer_peak <= 4096 + 1100,
        "{:?}",
        v.stats()
    );
    v.node.shutdown().await.unwrap();
}

/// The resident memory of this process, in KiB (Linux).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_large_frames_stay_within_the_node_wide_buffer_budget() {
    let budget = 2 << 20;
    let v =
        Victim::start(config(1).with_limits(NetLimits::default().with_frame_buffer_budget(budget)))
            .await;
    let before = v.state();
    let rss_before = rss_kib();
    // Eight members each start a 1 MiB frame and send 600 KiB of it:
    // 4.8 MiB if nothing stopped them.
    let declared = 1usize << 20;
    let mut header = Vec::new();
    let mut n = declared as u64;
    while n >= 0x80 {
        header.push((n as u8) | 0x80);
        n >>= 7;
    }
    header.push(n as u8);
    let mut streams = Vec::new();
    for id in 2..=9 {
        let mut s = member_session(&v, id).await;
        s.write_all(&header).await.unwrap();
        let chunk = vec![0u8; 600 << 10];
        // A write may fail once the node has closed this connection.
        let _ = s.write_all(&chunk).await;
        let _ = s.flush().await;
        streams.push(s);
        assert!(
            v.stats().frame_buffer_bytes <= budget as u64,
            "{:?}",
            v.stats()
        );
    }
    wait_for(
        "connections over the budget closed",
        Duration::from_secs(5),
        || v.stats().frame_limit_closes >= 4,
    )
    .await;
    let held = v.stats();
    let rss_during = rss_kib();
    assert!(held.frame_buffer_peak <= budget as u64, "{held:?}");
    assert!(held.frame_buffer_bytes <= budget as u64, "{held:?}");
    eprintln!(
        "budget {budget} B: peak {} B buffered, {} connections closed; RSS {:?} KiB -> {:?} KiB",
        held.frame_buffer_peak, held.frame_limit_closes, rss_before, rss_during
    );
    drop(streams);
    wait_for("every charge released", Duration::from_secs(10), || {
        v.stats().frame_buffer_bytes == 0
    })
    .await;
    assert_eq!(v.state(), before);
    v.still_serves(2).await;
    v.node.shutdown().await.unwrap();
}

/// A TCP connection from a loopback address of our choosing.
async fn connect_from(ip: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(IpAddr::V4(ip), 0))?;
    s.connect(to).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_cannot_lock_a_member_out() {
    let v = Victim::start(config(1)).await;
    let before = v.state();
    // Member 2 has connected before from 127.0.0.1: its address is known.
    v.still_serves(2).await;
    let limits = NetLimits::default();
    // Strangers from 40 addresses open 10 connections each and send
    // nothing: 400 would-be handshakes against 64 slots, 8 per address.
    let mut flood = Vec::new();
    for a in 0..40u8 {
        for _ in 0..10 {
            if let Ok(s) = connect_from(Ipv4Addr::new(127, 0, 1, a + 1), v.addr).await {
                flood.push(s);
            }
        }
    }
    wait_for(
        "the flood is refused past the limits",
        Duration::from_secs(5),
        || v.stats().limit_refusals >= 400 - limits.max_pending_handshakes as u64,
    )
    .await;
    let st = v.stats();
    assert!(
        st.pending_handshakes
            <= (limits.max_pending_handshakes + limits.reserved_member_handshakes) as u64,
        "{st:?}"
    );
    let rss = rss_kib();
    // While the flood holds every general slot, the member reconnects
    // (through the slots reserved for members' addresses) and syncs.
    let t = Instant::now();
    v.still_serves(2).await;
    // The flood's slots free only at its handshake deadline: a member that
    // got in before it came through the slots reserved for members.
    assert!(
        t.elapsed() < v.node.config().handshake_timeout,
        "the member waited for the flood to expire: {:?}",
        t.elapsed()
    );
    eprintln!(
        "flood of {} connections: {} pending, {} refused at once; the member synced in {:?}; RSS {rss:?} KiB",
        flood.len(),
        st.pending_handshakes,
        st.limit_refusals,
        t.elapsed()
    );
    // A new member from a fresh address also gets in (its address has a
    // per-address allowance, the flood's addresses are capped).
    assert_eq!(v.state().1, before.1);
    drop(flood);
    wait_for("pending slots freed", Duration::from_secs(5), || {
        v.stats().pending_handshakes == 0
    })
    .await;
    v.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_without_a_restart() {
    let v = Victim::start(config(1)).await;
    let new_ca = ClusterCa::new(CLUSTER).unwrap();
    let both = format!("{}{}", ca().cert_pem(), new_ca.cert_pem());
    // Node 2 already has its certificate from the new CA and trusts both.
    let n2 = new_ca.issue(2).unwrap();
    let n2_config = || {
        NodeConfig::new(2, "n2")
            .in_memory()
            .with_cluster(CLUSTER, MEMBERS)
            .with_tls(TlsIdentity::from_pem(&both, &n2.cert_pem, &n2.key_pem).unwrap())
            .with_replica(replica_of(2))
    };
    let start_n2 = || async {
        let mut b = NodeBuilder::new(n2_config());
        let views: Channel<String, GCounter> = b.channel("views").unwrap();
        let _: Channel<String, OrSet<String>> = b.channel("tags").unwrap();
        (b.start().unwrap(), views)
    };
    // Before the victim trusts the new CA, node 2 is refused.
    let (n2_node, _) = start_n2().await;
    n2_node.dial(v.addr, 1);
    wait_for("refused", Duration::from_secs(5), || {
        v.stats().auth_failures >= 1
    })
    .await;
    assert!(v.node.peers().is_empty());
    n2_node.shutdown().await.unwrap();
    // Step 1: the victim trusts both CAs (same certificate): node 2 gets in.
    let old = ca().issue(1).unwrap();
    v.node
        .reload_tls(TlsIdentity::from_pem(&both, &old.cert_pem, &old.key_pem).unwrap())
        .unwrap();
    let (n2_node, views) = start_n2().await;
    n2_node.dial(v.addr, 1);
    let _ = views
        .update("rotated".into(), |c| c.increment(replica_of(2), 1))
        .await
        .unwrap();
    wait_for("node 2 syncs", Duration::from_secs(10), || {
        v.views.get(&"rotated".into()).is_some()
    })
    .await;
    n2_node.shutdown().await.unwrap();
    // Step 2: the victim takes a new-CA certificate and drops the old CA:
    // a node still on the old CA's certificate is refused from now on.
    let new1 = new_ca.issue(1).unwrap();
    v.node
        .reload_tls(
            TlsIdentity::from_pem(new_ca.cert_pem(), &new1.cert_pem, &new1.key_pem).unwrap(),
        )
        .unwrap();
    let failures = v.stats().auth_failures;
    let old3 = ca().issue(3).unwrap();
    if let Ok(mut s) = tls_connect(v.addr, &both, Some(&old3)).await {
        let _ = s.write_all(&hello(3)).await;
        let _ = until_closed(&mut s, Duration::from_secs(5)).await;
    }
    wait_for("old certificate refused", Duration::from_secs(5), || {
        v.stats().auth_failures > failures
    })
    .await;
    // A reload whose certificate names another node is refused, and the
    // current material stays.
    let other = new_ca.issue(5).unwrap();
    assert!(v
        .node
        .reload_tls(
            TlsIdentity::from_pem(new_ca.cert_pem(), &other.cert_pem, &other.key_pem).unwrap()
        )
        .is_err());
    let (n2_node, _) = start_n2().await;
    n2_node.dial(v.addr, 1);
    wait_for("node 2 still gets in", Duration::from_secs(10), || {
        v.node.peers().iter().any(|(p, _)| p.0 == 2)
    })
    .await;
    n2_node.shutdown().await.unwrap();
    v.node.shutdown().await.unwrap();
}

/// A member forges a value claiming the victim's own writes and ships it
/// by anti-entropy (a session) instead of a delta.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_value_in_a_session_is_refused() {
    use accordant_sync::host::{HostConfig, SessionHost};
    use accordant_sync::session::{Session, SessionConfig};

    let v = Victim::start(config(1)).await;
    let before = v.state();
    let mut evil: Store<String, GCounter> = Store::new();
    let _ = evil
        .update("k".into(), |c| c.increment(replica_of(1), 1_000))
        .unwrap();
    let mut s = member_session(&v, 2).await;
    let mut host: SessionHost<u16, Session<String, GCounter>> =
        SessionHost::new(HostConfig::default(), 7);
    let epoch = Instant::now();
    host.initiate(
        epoch.elapsed(),
        0,
        Session::initiate(&evil, SessionConfig::default()),
    )
    .unwrap();
    let mut reader = FrameReader::new();
    let mut buf = vec![0u8; 16 << 10];
    let deadline = Instant::now() + Duration::from_secs(5);
    'run: while Instant::now() < deadline {
        while let Some(t) = host.poll_transmit() {
            let f = Frame::Session {
                channel: t.to,
                envelope: Bytes(t.bytes),
            };
            if s.write_all(&f.to_wire()).await.is_err() {
                break 'run;
            }
        }
        let n = match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => n,
            Err(_) => continue,
        };
        reader.push(&buf[..n]);
        while let Ok(Some(f)) = Frame::next(&mut reader, 64 << 20) {
            if let Frame::Session {
                channel: 0,
                envelope,
            } = f
            {
                let _ = host.handle(epoch.elapsed(), 0, &envelope.0, &mut evil, || {
                    Some(Session::respond(SessionConfig::default()))
                });
            }
        }
    }
    assert_eq!(v.state(), before, "the forged value was not applied");
    assert!(v.stats().refusals >= 1);
    v.node.shutdown().await.unwrap();
}

/// The victim writes, the member tries to join a delta of the victim's
/// own writes it received earlier (true data): admitted. Admission refuses
/// forgeries only, never the victim's real writes echoed back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receivers_own_writes_echoed_back_are_admitted() {
    let v = Victim::start(config(1)).await;
    let echo = v.views.get(&"k".into()).unwrap();
    let mut s = member_session(&v, 2).await;
    s.write_all(&delta_frame(0, "k", &echo)).await.unwrap();
    let mut mine = GCounter::new();
    let _ = mine.increment(replica_of(2), 7).unwrap();
    s.write_all(&delta_frame(0, "m", &mine)).await.unwrap();
    wait_for("the member's write arrives", Duration::from_secs(5), || {
        v.views.get(&"m".into()).is_some()
    })
    .await;
    assert_eq!(v.stats().refusals, 0);
    assert_eq!(v.views.get(&"k".into()).unwrap(), echo);
    drop(s);
    v.node.shutdown().await.unwrap();
}
