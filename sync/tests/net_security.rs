//! Who may connect: a node configured as by default (mutual TLS) refuses
//! plaintext, clients without a certificate or with another CA's, valid
//! certificates of non-members, and a member claiming another member's
//! id; certificates rotate without a restart. Each test asserts that the
//! attack failed, that nothing of it was applied, and that the node keeps
//! serving its members. Forged data is in `net_admission.rs`, resource
//! budgets in `net_budgets.rs`.
//!
//! The attackers are raw clients: plain TCP, or rustls with whatever
//! certificate the attack needs, speaking the node protocol by hand.

#[path = "support/security.rs"]
mod security;

use security::*;

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
        v.views.get("still").is_some()
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
        v.views.get("rotated").is_some()
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
