//! Three `accordant-node` processes on loopback, every link through the
//! delaying proxy (80–120 ms round trips) run by this test: writes while
//! connected, a split brain and its heal, then a crash (SIGKILL) of an
//! isolated node and its restart from its own database, then the loss of
//! its database and a restore from an older backup. Every acknowledged
//! increment and add must survive in every node: the crashed node lost
//! nothing it acknowledged (even what it could not replicate) and kept its
//! replica id; the restored one moved to a new replica id, so its new
//! writes reuse none of its old dots (a reused dot would drop adds and
//! swallow increments, which the ledger check would see).

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
    spawn_in(id, name, listen, dir, tls, name, restore)
}

fn spawn_in(
    id: u64,
    name: &str,
    listen: &str,
    dir: &TempDir,
    tls: &[String],
    data: &str,
    restore: bool,
) -> NodeProc {
    let snap = dir.path(&format!("{name}.snap"));
    let data = dir.path(data);
    let mut extra: Vec<&str> = FLAGS.to_vec();
    extra.extend(tls.iter().map(String::as_str));
    extra.extend(["--snapshot", &snap, "--data", &data]);
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

    // 3. Crash: b is isolated, writes, exports a backup, writes more (none
    // of it can reach a peer), and is killed; it restarts from its own
    // database with everything it acknowledged, under the same replica id.
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
    let backup = b.cmd("snapshot");
    assert!(backup.starts_with("OK "), "{backup}");
    b.increment("volatile", 7, &mut ledger);
    b.add("volatile", "v", &mut ledger);
    let before_crash = b.dump();
    let replica = b.cmd("replica");
    b.kill();
    let b_addr = b.addr.to_string();
    let mut b2 = spawn(2, "b", &b_addr, &dir, &tls, false);
    assert_eq!(
        b2.dump(),
        before_crash,
        "the restart holds every acknowledged write"
    );
    assert_eq!(b2.cmd("replica"), replica, "same replica id after a crash");
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
    }

    // 4. The node writes on; everyone sees it.
    for k in 0..5u64 {
        b2.increment("hits", 1, &mut ledger);
        b2.add("tags", &format!("new{k}"), &mut ledger);
    }
    converge(&mut [a, &mut b2, c], Duration::from_secs(10));
    for n in [&mut *a, &mut b2, &mut *c] {
        check(n, &ledger);
    }

    // 5. b loses its disk and is restored from the older backup: it must
    // take a new replica id (its old one issued dots the backup lacks).
    b2.kill();
    let mut b3 = spawn_in(2, "b", &b_addr, &dir, &tls, "b-restored", true);
    let restored = b3.cmd("replica");
    assert_ne!(
        restored, replica,
        "a restored backup writes under a new replica id"
    );
    assert!(restored.ends_with(" 1"), "generation 1: {restored}");
    // New writes before it has caught up: under the old id they would
    // reuse dots of the writes made after the backup.
    for k in 0..10u64 {
        b3.increment("hits", 1, &mut ledger);
        b3.add("durable", &format!("after-restore{k}"), &mut ledger);
    }
    assert_eq!(b3.cmd(&format!("dial {bc_via} 3")), "OK");
    converge(&mut [a, &mut b3, c], Duration::from_secs(15));
    for n in [&mut *a, &mut b3, &mut *c] {
        check(n, &ledger);
    }
    a.quit();
    b3.quit();
    c.quit();
    rt.block_on(proxy.shutdown());
    eprintln!("multi-process test took {:?}", started.elapsed());
}
