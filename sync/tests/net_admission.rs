//! What a member may send: values forging the receiver's own writes, or
//! claiming counts and dots near `u64::MAX`, are refused whole (by delta
//! or by session), counted, and the connection closed; the receiver's own
//! writes echoed back are admitted. Against a node configured as by
//! default (mutual TLS); the attacker is a member speaking the node
//! protocol by hand.

#[path = "support/security.rs"]
mod security;

use security::*;

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
    assert_eq!(v.views.get("k").unwrap().count(&me), 4);
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
                envelope: Bytes::from(t.bytes),
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
                let _ = host.handle(epoch.elapsed(), 0, &envelope[..], &mut evil, || {
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
    let echo = v.views.get("k").unwrap();
    let mut s = member_session(&v, 2).await;
    s.write_all(&delta_frame(0, "k", &echo)).await.unwrap();
    let mut mine = GCounter::new();
    let _ = mine.increment(replica_of(2), 7).unwrap();
    s.write_all(&delta_frame(0, "m", &mine)).await.unwrap();
    wait_for("the member's write arrives", Duration::from_secs(5), || {
        v.views.get("m").is_some()
    })
    .await;
    assert_eq!(v.stats().refusals, 0);
    assert_eq!(v.views.get("k").unwrap(), echo);
    drop(s);
    v.node.shutdown().await.unwrap();
}
