//! Session tokens over real nodes: a write in one region read in another
//! with its token sees the write or waits (pulling the key), and a region
//! that cannot get it says how far behind it is.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use accordant::{MvRegister, ReplicaId};
use accordant_sync::admission::Admit;
use accordant_sync::delta::{DeltaReplicator, Outbox};
use accordant_sync::net::proxy::{LinkSpec, Proxy};
use accordant_sync::net::{Channel, Node, NodeBuilder, NodeConfig, SessionError};
use accordant_sync::peer::PeerId;
use accordant_sync::store::Store;
use accordant_sync::token::SessionToken;
use accordant_sync::SyncError;

type Profiles = Channel<String, MvRegister<String>>;

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn config(id: u64, name: &str, ae: Duration) -> NodeConfig {
    let ca = ca();
    let cert = ca.issue(id).unwrap();
    let identity =
        accordant_sync::net::TlsIdentity::from_pem(ca.cert_pem(), &cert.cert_pem, &cert.key_pem)
            .unwrap();
    NodeConfig::new(id, name)
        .in_memory()
        .with_cluster("test", 1..=4)
        .with_tls(identity)
        .with_ae_interval(ae)
        .with_replica(ReplicaId::from_u128(u128::from(id)))
        .with_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

fn ca() -> &'static accordant_sync::net::certs::ClusterCa {
    static CA: std::sync::OnceLock<accordant_sync::net::certs::ClusterCa> =
        std::sync::OnceLock::new();
    CA.get_or_init(|| accordant_sync::net::certs::ClusterCa::new("test").unwrap())
}

/// A delta path that sends nothing: only anti-entropy and pulls move data.
struct NoPush;

impl DeltaReplicator<String, MvRegister<String>> for NoPush {
    fn on_local_write(
        &mut self,
        _: &String,
        _: &MvRegister<String>,
        _: &mut Store<String, MvRegister<String>>,
        _: &mut dyn Outbox,
    ) {
    }

    fn on_receive(
        &mut self,
        _: PeerId,
        _: &[u8],
        _: &mut Store<String, MvRegister<String>>,
        _: &dyn Admit<String, MvRegister<String>>,
        _: &mut dyn Outbox,
    ) -> Result<(), SyncError> {
        Err(SyncError::Unexpected("no deltas here"))
    }
}

struct Region {
    node: Node,
    profiles: Profiles,
    id: ReplicaId,
}

fn region(id: u64, name: &str, ae: Duration, push: bool) -> Region {
    let mut b = NodeBuilder::new(config(id, name, ae));
    let profiles = if push {
        b.channel("profiles").unwrap()
    } else {
        let store = b.store("profiles").unwrap();
        b.channel_with("profiles", store, Box::new(NoPush))
    };
    Region {
        node: b.start().unwrap(),
        profiles,
        id: ReplicaId::from_u128(u128::from(id)),
    }
}

/// EU and US-East, US dialing EU through the proxy.
async fn pair(rtt: Duration, ae: Duration, push: bool) -> (Proxy, Region, Region) {
    let proxy = Proxy::new(3);
    let eu = region(1, "eu", ae, push);
    let us = region(2, "us", ae, push);
    let addr = eu.node.listen(local()).await.unwrap();
    let via = proxy
        .add_link("eu", "us", local(), addr, LinkSpec::rtt(rtt))
        .await
        .unwrap();
    us.node.dial(via, 1);
    // The dialer's first anti-entropy session (on connect) is over.
    while us.node.stats().sessions_completed == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (proxy, eu, us)
}

fn values(v: &Option<MvRegister<String>>) -> Vec<String> {
    v.as_ref()
        .map(|r| r.values().cloned().collect())
        .unwrap_or_default()
}

async fn write(r: &Region, token: &mut SessionToken, key: &str, value: &str) {
    let id = r.id;
    let value = value.to_string();
    let _ = r
        .profiles
        .update_after(key.to_string(), token, Duration::ZERO, |v| {
            v.write(id, value)
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_read_in_another_region_sees_the_write_never_the_old_value() {
    let (proxy, eu, us) = pair(Duration::from_millis(200), Duration::from_secs(3600), true).await;
    let key = "alice";
    let mut token = SessionToken::new();
    write(&eu, &mut token, key, "1 Old Street").await;
    while us.profiles.get(&key.to_string()).is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A new address in EU; US still has the old one (the link's one-way
    // delay is 100 ms).
    write(&eu, &mut token, key, "2 New Street").await;
    assert_eq!(values(&us.profiles.get(&key.to_string())), ["1 Old Street"]);
    // With the token, US answers only once it has the new address.
    let header = token.to_text();
    let mut carried: SessionToken = header.parse().unwrap();
    let t = Instant::now();
    let v = us
        .profiles
        .read_after(&key.to_string(), &mut carried, Duration::from_secs(5))
        .await
        .unwrap();
    let waited = t.elapsed();
    assert_eq!(values(&v), ["2 New Street"]);
    assert!(waited >= Duration::from_millis(50), "{waited:?}");
    // Monotonic reads: the token now holds what US showed, and EU covers it.
    let back = eu
        .profiles
        .read_after(&key.to_string(), &mut carried, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(values(&back), ["2 New Street"]);
    proxy.shutdown().await;
    us.node.shutdown().await.unwrap();
    eu.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_deltas_or_anti_entropy_the_pull_alone_brings_that_one_key() {
    let (proxy, eu, us) = pair(Duration::from_millis(20), Duration::from_secs(3600), false).await;
    let mut token = SessionToken::new();
    write(&eu, &mut token, "alice", "Paris").await;
    write(&eu, &mut SessionToken::new(), "bob", "Lyon").await;
    let v = us
        .profiles
        .read_after(&"alice".to_string(), &mut token, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(values(&v), ["Paris"]);
    // Only the key read was pulled.
    assert!(us.profiles.get(&"bob".to_string()).is_none());
    // A write that follows the read (in US, with the same token) covers
    // both, so EU sees it only once it has it.
    let us_id = us.id;
    let _ = us
        .profiles
        .update_after("alice".to_string(), &mut token, Duration::ZERO, |r| {
            r.write(us_id, "Berlin".to_string())
        })
        .await
        .unwrap();
    let v = eu
        .profiles
        .read_after(&"alice".to_string(), &mut token, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(values(&v), ["Berlin"], "the write superseded what was read");
    proxy.shutdown().await;
    us.node.shutdown().await.unwrap();
    eu.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_region_fails_with_how_far_behind_it_is() {
    let (proxy, eu, us) = pair(Duration::from_millis(20), Duration::from_millis(300), true).await;
    proxy.cut("eu", "us");
    let mut token = SessionToken::new();
    for n in 0..3 {
        write(&eu, &mut token, "carol", &format!("address {n}")).await;
    }
    let t = Instant::now();
    let err = us
        .profiles
        .read_after(&"carol".to_string(), &mut token, Duration::from_millis(300))
        .await
        .unwrap_err();
    match err {
        SessionError::NotYetVisible { lag, waited } => {
            assert_eq!(lag.total(), 3, "{lag}");
            assert_eq!(lag.missing, [(eu.id, 3)]);
            assert!(waited >= Duration::from_millis(300));
        }
        e => panic!("{e}"),
    }
    assert!(t.elapsed() < Duration::from_secs(2));
    // The token is unchanged by the failure; after the heal it is served.
    proxy.heal("eu", "us");
    let v = us
        .profiles
        .read_after(&"carol".to_string(), &mut token, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(values(&v), ["address 2"]);
    proxy.shutdown().await;
    us.node.shutdown().await.unwrap();
    eu.node.shutdown().await.unwrap();
}
