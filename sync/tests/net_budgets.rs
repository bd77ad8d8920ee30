//! What a stranger or a member may hold: a frame trickled one byte at a
//! time is cut off, an oversized handshake frame is refused from its
//! length, partial large frames stay within the node-wide buffer budget,
//! a connection flood cannot lock a member out, and a member's token
//! pulls are metered. Against a node
//! configured as by default unless a test says which limit it shrinks.

#[path = "support/security.rs"]
mod security;

use security::*;

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
async fn a_members_token_pulls_are_metered_not_answered_past_the_rate() {
    use accordant::Summarize;
    let limits = NetLimits::default().with_pull_rate(10, 20);
    let v = Victim::start(config(1).with_limits(limits)).await;
    let mut s = member_session(&v, 2).await;
    // 200 pulls of "k" at once: each would make the node read and encode it.
    let pull = Frame::Pull {
        channel: 0,
        payload: Bytes::from(accordant_sync::net::encode_pull(
            &"k".to_string(),
            &GCounter::new().summary(),
        )),
    }
    .to_wire();
    let started = Instant::now();
    s.write_all(&pull.repeat(200)).await.unwrap();
    // At most the burst (20) plus 10 per second are answered.
    wait_for("pulls metered", Duration::from_secs(5), || {
        v.stats().pulls_limited >= 150
    })
    .await;
    let answered = 200 - v.stats().pulls_limited;
    let allowed = 20 + 10 * started.elapsed().as_secs() + 10;
    assert!(
        answered <= allowed,
        "{answered} answered, {allowed} allowed"
    );
    // Over the rate is not a fault: the member stays connected and served.
    assert_eq!(v.stats().refusals, 0);
    assert_eq!(v.stats().peer_faults, 0);
    s.write_all(&pull).await.unwrap();
    v.still_serves(3).await;
    v.node.shutdown().await.unwrap();
}
