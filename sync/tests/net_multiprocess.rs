//! Three `accordant-node` processes on loopback, every link through the
//! delaying proxy (80–120 ms round trips) run by this test: writes while
//! connected, a split brain and its heal, then a crash (SIGKILL) and a
//! restart from the snapshot. Every acknowledged increment and add must
//! survive in every node; writes acknowledged after the last snapshot on a
//! node that could not replicate them are lost, as documented.

mod net_common;

use std::time::{Duration, Instant};

use accordant_sync::net::proxy::{LinkSpec, Proxy};
use net_common::{check, converge, make_certs, wait_until, Ledger, NodeProc, TempDir};

const FLAGS: [&str; 10] = [
    "--ae-ms",
    "1000",
    "--idle-ms",
    "1200",
    "--ping-ms",
    "200",
    "--handshake-ms",
    "800",
    "--backoff-max-ms",
    "400",
];

fn spawn(
    id: u64,
    name: &str,
    listen: &str,
    dir: &TempDir,
    tls: &[String],
    restore: bool,
) -> NodeProc {
    let snap = dir.path(&format!("{name}.snap"));
    let mut extra: Vec<&str> = FLAGS.to_vec();
    extra.extend(tls.iter().map(String::as_str));
    extra.extend(["--snapshot", &snap]);
    if restore {
        extra.push("--restore");
    }
    NodeProc::spawn(&[], id, name, listen, &extra)
}

#[test]
fn processes_converge_through_partitions_and_a_crash_without_losing_acknowledged_writes() {
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = TempDir::new("multiprocess");
    // Mutual TLS, as by default: the CA and certificates from `certs`.
    let tls = make_certs(&dir, &[1, 2, 3]);
    let names = ["a", "b", "c"];
    let mut nodes: Vec<NodeProc> = names
        .iter()
        .enumerate()
        .map(|(i, n)| spawn(i as u64 + 1, n, "127.0.0.1:0", &dir, &tls, false))
        .collect();

    // Every pair through the proxy; the lower id dials.
    let proxy = Proxy::new(5);
    let rtts = [80u64, 100, 120];
    let mut via = Vec::new();
    for i in 0..3 {
        for j in i + 1..3 {
            let addr = rt
                .block_on(proxy.add_link(
                    names[i],
                    names[j],
                    "127.0.0.1:0".parse().unwrap(),
                    nodes[j].addr,
                    LinkSpec::rtt(Duration::from_millis(rtts[i + j - 1])),
                ))
                .unwrap();
            assert_eq!(nodes[i].cmd(&format!("dial {addr} {}", j + 1)), "OK");
            via.push((i, j, addr));
        }
    }
    wait_until(
        "every node connected to both others",
        Duration::from_secs(10),
        || nodes.iter_mut().all(|n| n.peers() == 2),
    );
    // Certificates reload without a restart (the links stay up).
    assert_eq!(nodes[0].cmd("reload-tls"), "OK");

    let mut ledger = Ledger::default();
    // 1. Connected: deltas carry every write.
    for k in 0..30u64 {
        let n = &mut nodes[(k % 3) as usize];
        n.increment("hits", 1, &mut ledger);
        n.increment(&format!("page{}", k % 5), k + 1, &mut ledger);
        n.add("tags", &format!("t{k}"), &mut ledger);
    }
    let [a, b, c] = &mut nodes[..] else {
        unreachable!()
    };
    converge(&mut [a, b, c], Duration::from_secs(10));
    for n in [&mut *a, &mut *b, &mut *c] {
        check(n, &ledger);
    }

    // 2. Split brain: c is cut off; both sides keep writing.
    proxy.isolate("c");
    for k in 0..15u64 {
        a.increment("hits", 1, &mut ledger);
        b.add("cart", &format!("ab{k}"), &mut ledger);
        c.increment("hits", 2, &mut ledger);
        c.add("cart", &format!("c{k}"), &mut ledger);
    }
    wait_until("c notices the partition", Duration::from_secs(10), || {
        c.peers() == 0
    });
    assert_ne!(a.digest(), c.digest(), "both sides took writes");
    proxy.heal_all();
    let healed = converge(&mut [a, b, c], Duration::from_secs(15));
    eprintln!("split brain healed: converged {healed:?} after the heal");
    for n in [&mut *a, &mut *b, &mut *c] {
        check(n, &ledger);
    }

    // 3. Crash: b is isolated, writes, snapshots, writes more, and is
    // killed; it restarts from its snapshot under a new replica id.
    proxy.isolate("b");
    wait_until("b notices the partition", Duration::from_secs(10), || {
        b.peers() == 0
    });
    for k in 0..10u64 {
        b.increment("hits", 3, &mut ledger);
        b.add("durable", &format!("d{k}"), &mut ledger);
        a.increment("hits", 1, &mut ledger);
        c.add("cart", &format!("late{k}"), &mut ledger);
    }
    let at_snapshot = b.dump();
    let snap = b.cmd("snapshot");
    assert!(snap.starts_with("OK "), "{snap}");
    // Acknowledged after the last snapshot, replicated nowhere: lost with
    // the crash (the documented contract).
    assert_eq!(b.cmd("inc volatile 7"), "OK");
    assert_eq!(b.cmd("add volatile v"), "OK");
    b.kill();
    let b_addr = b.addr.to_string();
    let mut b2 = spawn(2, "b", &b_addr, &dir, &tls, true);
    assert_eq!(
        b2.dump(),
        at_snapshot,
        "the restart loads exactly the snapshot"
    );
    let (_, _, bc_via) = via
        .iter()
        .find(|(i, j, _)| (*i, *j) == (1, 2))
        .copied()
        .unwrap();
    assert_eq!(b2.cmd(&format!("dial {bc_via} 3")), "OK");
    proxy.heal_all();
    let caught_up = converge(&mut [a, &mut b2, c], Duration::from_secs(15));
    eprintln!("restarted node caught up {caught_up:?} after the heal");
    for n in [&mut *a, &mut b2, &mut *c] {
        check(n, &ledger);
        let (counters, sets) = n.dump();
        assert_eq!(counters.get("volatile"), None, "{}", n.name);
        assert!(!sets.iter().any(|(k, _)| k == "volatile"), "{}", n.name);
    }

    // 4. The new incarnation writes; everyone sees it.
    for k in 0..5u64 {
        b2.increment("hits", 1, &mut ledger);
        b2.add("tags", &format!("new{k}"), &mut ledger);
    }
    converge(&mut [a, &mut b2, c], Duration::from_secs(10));
    for n in [&mut *a, &mut b2, &mut *c] {
        check(n, &ledger);
    }
    a.quit();
    b2.quit();
    c.quit();
    rt.block_on(proxy.shutdown());
    eprintln!("multi-process test took {:?}", started.elapsed());
}
