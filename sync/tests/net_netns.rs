//! Three `accordant-node` processes, each in its own network namespace,
//! joined to this test's namespace by a veth pair; the test's delaying
//! proxy (80–120 ms round trips) sits between them. Where nftables works,
//! one namespace drops 3% of its incoming TCP packets. A partition is a
//! veth link taken down (a cable pulled), not a proxy trick; it heals, and
//! every acknowledged increment and add must be in every node.
//!
//! Runs only as root with `ip` available (network namespaces need
//! `CAP_SYS_ADMIN`); otherwise it says why and skips. The kernel here has
//! no `netem`: latency comes from the proxy. Addresses are taken from
//! 198.18.0.0/15 (reserved for network benchmarks) and live only inside
//! the namespaces this test creates; a guard removes them even when the
//! test fails.

mod net_common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use accordant_sync::net::proxy::{LinkSpec, Proxy};
use net_common::{check, converge, have, make_certs, wait_until, Ledger, NodeProc, TempDir};

/// Prints past the test harness's capture, so a skip is visible.
fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "net_netns: {msg}");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The namespaces and veth pairs of one run; removed on drop.
struct Lab {
    ns: Vec<String>,
    veth: Vec<String>,
    subnet: Vec<u8>,
}

impl Lab {
    fn new(hosts: usize) -> Result<Lab, String> {
        let pid = std::process::id();
        let mut lab = Lab {
            ns: Vec::new(),
            veth: Vec::new(),
            subnet: Vec::new(),
        };
        for i in 0..hosts {
            let ns = format!("acc{pid}n{i}");
            let host = format!("ac{}h{i}", pid % 100_000);
            let peer = format!("ac{}p{i}", pid % 100_000);
            let k = ((pid as usize * 3 + i * 7) % 250) as u8;
            run("ip", &["netns", "add", &ns])?;
            lab.ns.push(ns.clone());
            run(
                "ip",
                &["link", "add", &host, "type", "veth", "peer", "name", &peer],
            )?;
            lab.veth.push(host.clone());
            lab.subnet.push(k);
            run("ip", &["link", "set", &peer, "netns", &ns])?;
            run(
                "ip",
                &["addr", "add", &format!("198.18.{k}.1/24"), "dev", &host],
            )?;
            run("ip", &["link", "set", &host, "up"])?;
            let exec = |args: &[&str]| {
                let mut a = vec!["netns", "exec", &ns, "ip"];
                a.extend_from_slice(args);
                run("ip", &a)
            };
            exec(&["addr", "add", &format!("198.18.{k}.2/24"), "dev", &peer])?;
            exec(&["link", "set", &peer, "up"])?;
            exec(&["link", "set", "lo", "up"])?;
        }
        Ok(lab)
    }

    fn host_addr(&self, i: usize) -> String {
        format!("198.18.{}.1", self.subnet[i])
    }

    fn node_addr(&self, i: usize) -> String {
        format!("198.18.{}.2", self.subnet[i])
    }

    /// Drops `percent`% of the TCP packets entering namespace `i`.
    fn loss(&self, i: usize, percent: u32) -> Result<(), String> {
        let ns = &self.ns[i];
        let nft = |rule: &str| run("ip", &["netns", "exec", ns, "nft", rule]);
        nft("add table inet accordant_loss")?;
        nft("add chain inet accordant_loss input { type filter hook input priority 0 ; policy accept ; }")?;
        nft(&format!(
            "add rule inet accordant_loss input meta l4proto tcp numgen random mod 100 < {percent} drop"
        ))
    }

    fn link(&self, i: usize, up: bool) {
        run(
            "ip",
            &["link", "set", &self.veth[i], if up { "up" } else { "down" }],
        )
        .expect("ip link set");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for v in &self.veth {
            let _ = run("ip", &["link", "del", v]);
        }
        for ns in &self.ns {
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

const FLAGS: [&str; 11] = [
    "--in-memory",
    "--ae-ms",
    "1000",
    "--idle-ms",
    "1500",
    "--ping-ms",
    "250",
    "--handshake-ms",
    "1000",
    "--backoff-max-ms",
    "500",
];

#[test]
fn nodes_in_network_namespaces_converge_across_a_pulled_cable() {
    if !is_root() {
        say("skipped: network namespaces need root (run the tests as root to include this one)");
        return;
    }
    if !have("ip") {
        say("skipped: the `ip` command (iproute2) is not installed");
        return;
    }
    let lab = match Lab::new(3) {
        Ok(l) => l,
        Err(e) => {
            say(&format!(
                "skipped: cannot create network namespaces here ({e})"
            ));
            return;
        }
    };
    let started = Instant::now();
    let lossy = if have("nft") {
        match lab.loss(2, 3) {
            Ok(()) => {
                say("node c drops 3% of its incoming TCP packets (nftables)");
                true
            }
            Err(e) => {
                say(&format!("no packet loss: nftables failed here ({e})"));
                false
            }
        }
    } else {
        say("no packet loss: `nft` is not installed");
        false
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let names = ["a", "b", "c"];
    // Mutual TLS, as by default: the CA and certificates from `certs`.
    let dir = TempDir::new("netns");
    let tls = make_certs(&dir, &[1, 2, 3]);
    let mut flags: Vec<&str> = FLAGS.to_vec();
    flags.extend(tls.iter().map(String::as_str));
    let mut nodes: Vec<NodeProc> = (0..3)
        .map(|i| {
            let listen = format!("{}:7400", lab.node_addr(i));
            NodeProc::spawn(
                &["ip", "netns", "exec", &lab.ns[i]],
                i as u64 + 1,
                names[i],
                &listen,
                &flags,
            )
        })
        .collect();
    let proxy = Proxy::new(11);
    let rtts = [80u64, 100, 120];
    for i in 0..3 {
        for j in i + 1..3 {
            // Node i reaches the proxy on its own veth; the proxy reaches
            // node j through j's.
            let listen = format!("{}:0", lab.host_addr(i)).parse().unwrap();
            let via = rt
                .block_on(proxy.add_link(
                    names[i],
                    names[j],
                    listen,
                    nodes[j].addr,
                    LinkSpec::rtt(Duration::from_millis(rtts[i + j - 1])),
                ))
                .unwrap();
            assert_eq!(nodes[i].cmd(&format!("dial {via} {}", j + 1)), "OK");
        }
    }
    wait_until(
        "every node connected to both others",
        Duration::from_secs(20),
        || nodes.iter_mut().all(|n| n.peers() == 2),
    );

    let mut ledger = Ledger::default();
    let [a, b, c] = &mut nodes[..] else {
        unreachable!()
    };
    for k in 0..20u64 {
        a.increment("hits", 1, &mut ledger);
        b.add("tags", &format!("b{k}"), &mut ledger);
        c.increment("hits", 2, &mut ledger);
    }
    converge(&mut [a, b, c], Duration::from_secs(20));
    for n in [&mut *a, &mut *b, &mut *c] {
        check(n, &ledger);
    }

    // Pull c's cable: packets are lost, not refused.
    lab.link(2, false);
    for k in 0..20u64 {
        a.increment("hits", 1, &mut ledger);
        b.add("cart", &format!("ab{k}"), &mut ledger);
        c.increment("hits", 5, &mut ledger);
        c.add("cart", &format!("c{k}"), &mut ledger);
    }
    wait_until("c notices the partition", Duration::from_secs(15), || {
        c.peers() == 0
    });
    lab.link(2, true);
    let took = converge(&mut [a, b, c], Duration::from_secs(30));
    for n in [&mut *a, &mut *b, &mut *c] {
        check(n, &ledger);
    }
    say(&format!(
        "converged {took:?} after the cable was plugged back{}; whole test {:?}",
        if lossy { " (with 3% loss at c)" } else { "" },
        started.elapsed()
    ));
    for n in [&mut *a, &mut *b, &mut *c] {
        n.quit();
    }
    rt.block_on(proxy.shutdown());
}
