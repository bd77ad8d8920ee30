//! What the node security tests share: the cluster's CA and node
//! identities, a victim node with a little data of its own, raw TLS and
//! plaintext clients that speak the node protocol by hand, and waits.
//! Each test file uses part of it.
#![allow(dead_code, unused_imports)]

pub(crate) use std::net::{IpAddr, Ipv4Addr, SocketAddr};
pub(crate) use std::sync::{Arc, OnceLock};
pub(crate) use std::time::{Duration, Instant};

pub(crate) use accordant::codec::SeqVec;
pub(crate) use accordant::{CausalContext, GCounter, Lattice, OrSet, ReplicaId};
pub(crate) use accordant_sync::delta::NaivePush;
pub(crate) use accordant_sync::message::Bytes;
pub(crate) use accordant_sync::net::certs::{ClusterCa, NodeCert};
pub(crate) use accordant_sync::net::wire::{Frame, Handshake, MAGIC};
pub(crate) use accordant_sync::net::{
    node_dns_name, Channel, NetLimits, Node, NodeBuilder, NodeConfig, NodeStats, TlsIdentity,
};
pub(crate) use accordant_sync::store::Store;
pub(crate) use accordant_sync::wire::FrameReader;
pub(crate) use rustls::pki_types::pem::PemObject;
pub(crate) use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
pub(crate) use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
pub(crate) use tokio::net::{TcpSocket, TcpStream};

pub(crate) const CLUSTER: &str = "sec";
/// The victim is node 1; 2 to 9 are members; 66 is a stranger.
pub(crate) const MEMBERS: std::ops::RangeInclusive<u64> = 1..=9;

pub(crate) fn ca() -> &'static ClusterCa {
    static CA: OnceLock<ClusterCa> = OnceLock::new();
    CA.get_or_init(|| ClusterCa::new(CLUSTER).unwrap())
}

pub(crate) fn identity(ca: &ClusterCa, id: u64) -> TlsIdentity {
    let cert = ca.issue(id).unwrap();
    TlsIdentity::from_pem(ca.cert_pem(), &cert.cert_pem, &cert.key_pem).unwrap()
}

/// The replica id node `id` writes under.
pub(crate) fn replica_of(id: u64) -> ReplicaId {
    ReplicaId::from_u128(0x5EC0_0000 + u128::from(id))
}

/// A default node of the cluster (TLS, members 1 to 9), with short
/// reconnection backoff so the tests' real members connect quickly.
pub(crate) fn config(id: u64) -> NodeConfig {
    NodeConfig::new(id, format!("n{id}"))
        .with_cluster(CLUSTER, MEMBERS)
        .with_tls(identity(ca(), id))
        .with_replica(replica_of(id))
        .in_memory()
        .with_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

pub(crate) struct Victim {
    pub(crate) node: Node,
    pub(crate) views: Channel<String, GCounter>,
    pub(crate) tags: Channel<String, OrSet<String>>,
    pub(crate) addr: SocketAddr,
}

impl Victim {
    pub(crate) async fn start(config: NodeConfig) -> Victim {
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

    pub(crate) fn state(&self) -> (Store<String, GCounter>, Store<String, OrSet<String>>) {
        (self.views.snapshot_store(), self.tags.snapshot_store())
    }

    pub(crate) fn stats(&self) -> NodeStats {
        self.node.stats()
    }

    /// A real member (node `id`) dials, and both converge on a write of
    /// each: the node still serves its members.
    pub(crate) async fn still_serves(&self, id: u64) {
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

pub(crate) fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub(crate) fn tls_client_config(
    roots_pem: &str,
    cert: Option<&NodeCert>,
) -> Arc<rustls::ClientConfig> {
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
pub(crate) async fn tls_connect(
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

pub(crate) fn hello(node: u64) -> Vec<u8> {
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
pub(crate) async fn until_closed<S: AsyncRead + Unpin>(
    s: &mut S,
    within: Duration,
) -> Option<Vec<Frame>> {
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
pub(crate) async fn node_handshake<S: AsyncRead + Unpin>(s: &mut S) -> bool {
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

pub(crate) async fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A member (node 2) that passed TLS and the handshake, ready to send
/// frames.
pub(crate) async fn member_session(
    v: &Victim,
    id: u64,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let cert = ca().issue(id).unwrap();
    let mut s = tls_connect(v.addr, ca().cert_pem(), Some(&cert))
        .await
        .expect("a member's TLS handshake succeeds");
    s.write_all(&hello(id)).await.unwrap();
    assert!(node_handshake(&mut s).await, "the node accepts a member");
    s
}

pub(crate) fn delta_frame<V: accordant_sync::store::StoreValue>(
    channel: u16,
    key: &str,
    value: &V,
) -> Vec<u8> {
    Frame::Delta {
        channel,
        payload: Bytes::from(NaivePush::encode(&key.to_string(), value)),
    }
    .to_wire()
}
