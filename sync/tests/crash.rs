//! Crash tests: `kill -9` at random moments under concurrent write load,
//! restart, re-sync, and check every acknowledged write against a ledger.
//!
//! Three `accordant-node` processes with data directories (the default
//! group commit) are connected to each other. In every round each node
//! gets a burst of pipelined writes (`@tag inc ...`, `@tag add ...`: they
//! run concurrently and share commits), and one node, drawn at random, is
//! killed with SIGKILL a random few milliseconds into its burst, while
//! writes are being staged, committed and acknowledged. It restarts from
//! its data directory at once. After the last round the cluster must
//! converge, and then, on every node:
//!
//! - **zero lost**: every add answered `OK` is present, and every counter
//!   holds at least the increments answered `OK`;
//! - **zero duplicated**: no counter holds more than was sent (acknowledged
//!   or in flight at the kill);
//! - **no dot reissued**: a node keeps its replica id across restarts, the
//!   shared counter has exactly one entry per node (a restart adds no
//!   replica), each node's entry after a restart is at least what its
//!   peers had received of it before (nothing that left the node is taken
//!   back) and what it acknowledged, and in the end lies between what that
//!   node acknowledged and what it was sent. A
//!   reissued dot would show as a vanished add (two elements under one dot)
//!   or swallowed increments (a counter entry restarting below what peers
//!   hold).
//!
//! `ACCORDANT_CRASH_FSYNC=off` runs the nodes without fsync (commits with
//! redb's `Durability::None`, which a process crash rolls back): the test
//! then fails, as it must (a negative control). The default is 5 seeds × 10 kills; `ACCORDANT_CRASH_SEEDS` and
//! `ACCORDANT_CRASH_KILLS` run more (e.g. `ACCORDANT_CRASH_SEEDS=20
//! ACCORDANT_CRASH_KILLS=25 cargo test --release -p accordant-sync --test
//! crash`).

mod net_common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use net_common::{converge, wait_until, NodeProc, TempDir};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const FLAGS: [&str; 10] = [
    "--ae-ms",
    "300",
    "--idle-ms",
    "1500",
    "--ping-ms",
    "200",
    "--handshake-ms",
    "1000",
    "--backoff-max-ms",
    "200",
];

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Cluster {
    dir: TempDir,
    nodes: Vec<NodeProc>,
    addrs: Vec<String>,
    replicas: Vec<String>,
}

impl Cluster {
    fn spawn(&self, i: usize, listen: &str) -> NodeProc {
        let data = self.dir.path(&format!("n{i}"));
        let fsync = std::env::var("ACCORDANT_CRASH_FSYNC").unwrap_or_else(|_| "window:2".into());
        let mut extra: Vec<&str> = FLAGS.to_vec();
        // Durability is the subject here; TLS is tested in net_security.rs
        // and net_multiprocess.rs.
        extra.extend(["--data", &data, "--fsync", &fsync, "--insecure-plaintext"]);
        NodeProc::spawn(&[], i as u64 + 1, &format!("n{i}"), listen, &extra)
    }

    /// Node `i` dials the nodes above it (each pair from one side).
    fn dial_up(&mut self, i: usize) {
        for j in i + 1..self.nodes.len() {
            let addr = self.addrs[j].clone();
            assert_eq!(self.nodes[i].cmd(&format!("dial {addr} {}", j + 1)), "OK");
        }
    }
}

/// What was sent and acknowledged.
#[derive(Default)]
struct Ledger {
    /// Per node: increments of `hits` answered OK / sent.
    acked_hits: Vec<u64>,
    sent_hits: Vec<u64>,
    /// Adds answered OK.
    acked_adds: BTreeSet<(String, String)>,
    /// Pending pipelined writes by tag.
    pending: BTreeMap<String, (usize, Write)>,
}

#[derive(Clone)]
enum Write {
    Inc,
    Add(String, String),
}

impl Ledger {
    fn answer(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix('@') else {
            return;
        };
        let (tag, answer) = rest.split_once(' ').expect("tagged answer");
        let (node, w) = self.pending.remove(tag).expect("answer to a sent write");
        if answer == "OK" {
            match w {
                Write::Inc => self.acked_hits[node] += 1,
                Write::Add(k, e) => {
                    self.acked_adds.insert((k, e));
                }
            }
        } else {
            panic!("n{node}: write {tag} refused: {answer}");
        }
    }
}

fn own_entry(count_line: &str, replica: &str) -> u64 {
    count_line
        .split_whitespace()
        .skip(2)
        .find_map(|kv| kv.strip_prefix(replica)?.strip_prefix('=')?.parse().ok())
        .unwrap_or(0)
}

fn run_seed(seed: u64, kills: u64) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = 3;
    let dir = TempDir::new(&format!("crash-{seed}"));
    let mut c = Cluster {
        dir,
        nodes: Vec::new(),
        addrs: Vec::new(),
        replicas: Vec::new(),
    };
    for i in 0..n {
        let node = c.spawn(i, "127.0.0.1:0");
        c.addrs.push(node.addr.to_string());
        c.nodes.push(node);
    }
    for i in 0..n {
        let r = c.nodes[i].cmd("replica");
        c.replicas
            .push(r.split_whitespace().nth(1).expect("id").to_string());
        c.dial_up(i);
    }
    wait_until("connected", Duration::from_secs(10), || {
        c.nodes.iter_mut().all(|x| x.peers() == n - 1)
    });
    let mut l = Ledger {
        acked_hits: vec![0; n],
        sent_hits: vec![0; n],
        ..Ledger::default()
    };
    let mut tag = 0u64;
    let mut crashes = 0;
    for round in 0..kills {
        let victim = rng.random_range(0..n);
        // A burst on every node; the victim's is cut by the kill.
        for (i, node) in c.nodes.iter_mut().enumerate() {
            for j in 0..rng.random_range(10..40u32) {
                tag += 1;
                let t = format!("{tag}");
                if j % 2 == 0 {
                    node.send(&format!("@{t} inc hits 1"));
                    l.sent_hits[i] += 1;
                    l.pending.insert(t, (i, Write::Inc));
                } else {
                    let (k, e) = (format!("s{}", round % 4), format!("e{seed}-{t}"));
                    node.send(&format!("@{t} add {k} {e}"));
                    l.pending.insert(t, (i, Write::Add(k, e)));
                }
            }
        }
        std::thread::sleep(Duration::from_micros(rng.random_range(0..20_000)));
        for line in c.nodes[victim].kill_and_drain() {
            l.answer(&line);
        }
        crashes += 1;
        // The survivors answer every write.
        for i in (0..n).filter(|i| *i != victim) {
            while l.pending.values().any(|(node, _)| *node == i) {
                let line = c.nodes[i]
                    .recv(Duration::from_secs(20))
                    .unwrap_or_else(|| panic!("n{i}: writes unanswered"));
                l.answer(&line);
            }
        }
        // The victim's unanswered writes may or may not have committed.
        l.pending.retain(|_, (node, _)| *node != victim);
        // What left the victim before it died: its entry as the survivors
        // hold it. Deltas are sent only once committed, so the restarted
        // node must hold at least that much (or it would reissue dots).
        let seen = (0..n)
            .filter(|i| *i != victim)
            .map(|i| own_entry(&c.nodes[i].cmd("count hits"), &c.replicas[victim]))
            .max()
            .unwrap_or(0);
        let addr = c.addrs[victim].clone();
        c.nodes[victim] = c.spawn(victim, &addr);
        let again = c.nodes[victim].cmd("replica");
        assert_eq!(
            again.split_whitespace().nth(1),
            Some(c.replicas[victim].as_str()),
            "seed {seed} round {round}: n{victim} changed replica id"
        );
        let after = own_entry(&c.nodes[victim].cmd("count hits"), &c.replicas[victim]);
        assert!(
            after >= seen && after >= l.acked_hits[victim],
            "seed {seed} round {round}: n{victim}'s own entry went back: peers saw {seen}, {after} after the restart, {} acknowledged",
            l.acked_hits[victim]
        );
        c.dial_up(victim);
    }
    let [a, b, x] = &mut c.nodes[..] else {
        unreachable!()
    };
    converge(&mut [a, b, x], Duration::from_secs(30));
    for node in c.nodes.iter_mut() {
        let count = node.cmd("count hits");
        let entries: Vec<&str> = count.split_whitespace().skip(2).collect();
        assert_eq!(
            entries.len(),
            n,
            "seed {seed}: one entry per node, not per restart: {count}"
        );
        for i in 0..n {
            let e = own_entry(&count, &c.replicas[i]);
            assert!(
                (l.acked_hits[i]..=l.sent_hits[i]).contains(&e),
                "seed {seed}: {}: n{i}'s entry {e} outside acknowledged {} ..= sent {}",
                node.name,
                l.acked_hits[i],
                l.sent_hits[i]
            );
        }
        let (_, sets) = node.dump();
        for kv in &l.acked_adds {
            assert!(
                sets.contains(kv),
                "seed {seed}: {}: lost the add {kv:?}",
                node.name
            );
        }
    }
    for node in c.nodes.iter_mut() {
        node.quit();
    }
    crashes
}

#[test]
fn kill_minus_nine_under_load_loses_no_acknowledged_write() {
    let start = Instant::now();
    let seeds = env("ACCORDANT_CRASH_SEEDS", 5);
    let kills = env("ACCORDANT_CRASH_KILLS", 10);
    let mut crashes = 0;
    for seed in 0..seeds {
        crashes += run_seed(seed, kills);
    }
    assert!(crashes >= seeds * kills);
    eprintln!(
        "{crashes} kills across {seeds} seeds in {:?}",
        start.elapsed()
    );
}
