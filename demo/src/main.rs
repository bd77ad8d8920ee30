//! Three regions, real sockets, a split brain, a heal: converged, no write
//! lost.
//!
//! ```text
//! cargo run --release -p accordant-demo
//! cargo run --release -p accordant-demo -- --help
//! ```
//!
//! Starts EU, US-East and AP-South as `accordant_sync::net` nodes on
//! loopback TCP in this process, each dialing the others through a
//! user-space proxy that adds the seed article's cross-region latency
//! (80–120 ms round trips) and can cut links. Simulated users write to
//! their nearest region: page-view and like counters (`PNCounter`),
//! shopping carts (`ShoppingCart`, one per user plus a family cart shared
//! across regions), and profiles both as `LwwRegister` and as
//! `MvRegister`. Every write is acknowledged as soon as the local region
//! applied it, and recorded in a ledger.
//!
//! While connected, each write's delta goes straight to the other regions;
//! anti-entropy sessions (Merkle digests) run on every connect and
//! periodically. Then AP-South is cut off: both sides keep taking writes
//! (split brain; Alice changes her address on both sides). The partition
//! heals; the regions reconnect, anti-entropy ships what each side lacks,
//! and the demo measures when every region holds every write made before
//! the heal. Writes stop; all roots become equal; the ledger is checked
//! against every region: no acknowledged increment or cart addition lost.
//! The program exits non-zero if anything did not converge.
//!
//! Every link runs mutual TLS 1.3: the demo makes a CA for its cluster and
//! one certificate per region at start, in a temporary directory (removed
//! at the end), and each region accepts only the other regions'
//! certificates. `--insecure-plaintext` runs the same demo in plaintext,
//! to price TLS: the summary prints the bytes that crossed the proxy and
//! the process's CPU time, for a run of each.

mod cost;
mod options;
mod region;
mod report;
mod scenario_mesh;
mod scenario_stock;
mod scenario_tokens;

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use accordant::{
    Claims, HlcClock, LwwRegister, MvRegister, PNCounter, ReplicaId, ShoppingCart, SystemClock,
};
use accordant_sync::delta::{AckedConfig, AckedDeltas};
use accordant_sync::net::proxy::{LinkSpec, Proxy};
use accordant_sync::net::{
    certs, Channel, Node, NodeBuilder, NodeConfig, NodeEvent, NodeStats, TlsIdentity,
};
use accordant_sync::session::SessionStats;
use accordant_sync::store::{Store, StoreKey, StoreValue};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::mpsc;
use tokio::time::Instant;

use cost::{usd, Price};
use options::*;
use region::*;
use report::*;

fn kb(bytes: u64) -> String {
    if bytes >= 10 << 20 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else {
        format!("{:.1} kB", bytes as f64 / 1e3)
    }
}

struct Clock0(Instant);

impl Clock0 {
    fn stamp(&self) -> String {
        format!("[{:>6.2}s]", self.0.elapsed().as_secs_f64())
    }
}

/// What the first anti-entropy sessions after the heal cost, per link.
#[derive(Default, Clone)]
struct HealSessions {
    seen: Vec<String>,
    printed: bool,
    channels: usize,
    bytes: u64,
    max_round_trips: u64,
    verified: usize,
    longest: Duration,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum LinkState {
    Down,
    Up,
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("active-active: {e}\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    if let Some(level) = opts.log {
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(opts)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("active-active: {e}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::too_many_lines)]
async fn run(o: Options) -> Result<bool, Box<dyn std::error::Error>> {
    let n = o.regions.len();
    let isolated = match &o.isolate {
        Some(k) => o.regions.iter().position(|r| r == k).unwrap_or(n - 1),
        None => n - 1,
    };
    // The cluster's CA and one certificate per region, made now in a
    // temporary directory, and loaded back as a node would load them.
    let cert_dir =
        std::env::temp_dir().join(format!("accordant-demo-certs-{}", std::process::id()));
    let ids: Vec<u64> = (1..=n as u64).collect();
    if !o.plaintext {
        certs::write_cluster(&cert_dir, CLUSTER, &ids)?;
    }
    // Durable by default: each region keeps its database in a directory.
    let (data, temporary) = match &o.data {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("accordant-demo-{}", std::process::id())),
            true,
        ),
    };
    let mut rs = Vec::new();
    for (i, k) in o.regions.iter().enumerate() {
        let tls = if o.plaintext {
            None
        } else {
            Some(TlsIdentity::load(&cert_dir, i as u64 + 1)?)
        };
        rs.push(Region::start(i, k, o.seed, o.acked, tls, n as u64, &data).await?);
    }
    if !o.plaintext {
        let _ = std::fs::remove_dir_all(&cert_dir);
    }
    let regions = Arc::new(rs);
    let clock = Clock0(Instant::now());

    println!(
        "accordant: {n} regions, active-active over loopback TCP ({}), through a delaying proxy\n",
        if o.plaintext {
            "INSECURE plaintext"
        } else {
            "mutual TLS 1.3, certificates of the cluster's own CA"
        }
    );
    let proxy = Proxy::new(o.seed);
    let mut label_link: HashMap<String, (usize, usize)> = HashMap::new();
    for i in 0..n {
        for j in i + 1..n {
            let (a, b) = (&regions[i], &regions[j]);
            let via = proxy
                .add_link(
                    &a.key,
                    &b.key,
                    "127.0.0.1:0".parse()?,
                    b.addr,
                    LinkSpec::rtt(rtt(&a.key, &b.key)),
                )
                .await?;
            label_link.insert(via.to_string(), (i, j));
            println!(
                "{} link {} ⇄ {}: {} ms round trip (proxy {via} → {})",
                clock.stamp(),
                a.name,
                b.name,
                rtt(&a.key, &b.key).as_millis(),
                b.addr
            );
            a.node.dial(via, j as u64 + 1);
        }
    }

    // Every node's events, in one stream.
    let (tx, mut events) = mpsc::unbounded_channel::<(usize, NodeEvent)>();
    for (i, r) in regions.iter().enumerate() {
        let mut rx = r.node.events();
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(e) = rx.recv().await {
                if tx.send((i, e)).is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);

    let link_count = n * (n - 1) / 2;
    let mut links: BTreeMap<(usize, usize), LinkState> = BTreeMap::new();
    let mut failing: BTreeMap<(usize, usize), bool> = BTreeMap::new();
    let pair = |a: usize, b: usize| if a < b { (a, b) } else { (b, a) };

    // Phase 0: connect.
    let deadline = Instant::now() + Duration::from_secs(10);
    while links.values().filter(|s| **s == LinkState::Up).count() < link_count {
        let Ok(Some((i, e))) = tokio::time::timeout_at(deadline, events.recv()).await else {
            return Err("the regions did not connect".into());
        };
        if let NodeEvent::Connected {
            peer, dialed: true, ..
        } = e
        {
            let j = peer.0 as usize - 1;
            links.insert(pair(i, j), LinkState::Up);
            println!(
                "{} {} ⇄ {} connected",
                clock.stamp(),
                regions[i].name,
                regions[j].name
            );
        }
    }
    println!(
        "{} all {link_count} links up; users start writing to their nearest region ({} writes/s per region)",
        clock.stamp(),
        o.rate
    );

    let ledger = Arc::new(Mutex::new(Ledger {
        writes: vec![0; n],
        partition_writes: vec![0; n],
        ..Ledger::default()
    }));
    let partitioned = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let secs = Duration::from_secs_f64;
    let writes_end = t0 + secs(o.duration);
    let mut writers = Vec::new();
    for i in 0..n {
        writers.push(tokio::spawn(writer(
            Arc::clone(&regions),
            i,
            o.rate,
            writes_end,
            o.seed,
            Arc::clone(&ledger),
            Arc::clone(&partitioned),
        )));
    }
    let has_partition = o.partition > 0.0;
    let cut_at = t0 + secs(o.partition_at);
    let heal_at = cut_at + secs(o.partition);
    let other = if isolated == 0 { 1 } else { 0 };
    let iso = &regions[isolated];

    // Alice's address: once before the split, then on both sides of it.
    tokio::time::sleep_until(t0 + secs(o.partition_at.min(1.0) / 2.0)).await;
    regions[other]
        .write_profile(ALICE, "London, Old Street")
        .await;
    println!(
        "{} Alice (at home in {}) sets her address: London, Old Street",
        clock.stamp(),
        regions[other].name
    );

    let tty = std::io::stderr().is_terminal();
    let mut progress = tokio::time::interval(if tty {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(5)
    });
    progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut monitor = tokio::time::interval(Duration::from_millis(5));
    monitor.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut settle = tokio::time::interval(Duration::from_millis(5));
    settle.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut divergence = tokio::time::interval(Duration::from_secs(1));
    divergence.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    #[derive(PartialEq, Eq, PartialOrd, Ord, Clone, Copy, Debug)]
    enum Phase {
        Connected,
        Partitioned,
        AliceEu,
        AliceAp,
        Healed,
        Stopped,
    }
    let mut phase = Phase::Connected;
    let mut healed_at: Option<Instant> = None;
    let mut heal_states: Vec<RegionState> = Vec::new();
    let mut caught_up: Vec<Option<Duration>> = vec![None; n];
    let mut heal_sessions: BTreeMap<(usize, usize), HealSessions> = BTreeMap::new();
    let mut reconnected: BTreeMap<(usize, usize), Duration> = BTreeMap::new();
    // The links that came back on their kept (quiet) connection.
    let mut resumed_links: std::collections::BTreeSet<(usize, usize)> = Default::default();
    let mut stats_at_heal: Vec<NodeStats> = Vec::new();
    let mut stats_at_catch_up: Option<Vec<NodeStats>> = None;
    let mut converged_after: Option<Duration> = None;
    let settle_deadline = writes_end + Duration::from_secs(20);
    let channels_per_link = 4;
    let progress_drawn = AtomicU64::new(0);

    loop {
        let next_phase = match phase {
            Phase::Connected if has_partition => cut_at,
            Phase::Partitioned => cut_at + secs(o.partition * 0.3),
            Phase::AliceEu => cut_at + secs(o.partition * 0.6),
            Phase::AliceAp => heal_at,
            Phase::Connected | Phase::Healed => writes_end,
            Phase::Stopped => settle_deadline,
        };
        tokio::select! {
            _ = tokio::time::sleep_until(next_phase) => {
                if progress_drawn.swap(0, Ordering::Relaxed) == 1 {
                    eprint!("\r\x1b[2K");
                }
                match phase {
                    Phase::Connected if has_partition => {
                        proxy.isolate(&iso.key);
                        partitioned.store(true, Ordering::Relaxed);
                        let rest: Vec<&str> = regions.iter().filter(|r| r.key != iso.key).map(|r| r.name.as_str()).collect();
                        println!(
                            "{} PARTITION: {} is cut off from {}; every region keeps taking writes (split brain)",
                            clock.stamp(), iso.name, rest.join(", ")
                        );
                        phase = Phase::Partitioned;
                    }
                    Phase::Partitioned => {
                        regions[other].write_profile(ALICE, "Paris, Rue de Rivoli").await;
                        println!("{} Alice moves: writes 'Paris, Rue de Rivoli' in {}", clock.stamp(), regions[other].name);
                        phase = Phase::AliceEu;
                    }
                    Phase::AliceEu => {
                        iso.write_profile(ALICE, "Mumbai, MG Road").await;
                        println!(
                            "{} ...and, concurrently, 'Mumbai, MG Road' in {} (it cannot see the other write)",
                            clock.stamp(), iso.name
                        );
                        phase = Phase::AliceAp;
                    }
                    Phase::AliceAp => {
                        let pw = ledger.lock().expect("ledger").partition_writes.clone();
                        let digests: Vec<String> = regions.iter().map(|r| format!("{} {}", r.name, r.digest())).collect();
                        let pw_iso = pw[isolated];
                        let pw_rest: u64 = pw.iter().sum::<u64>() - pw_iso;
                        println!(
                            "{} split brain: {} took {pw_iso} writes, the others {pw_rest}, during the partition; roots: {}",
                            clock.stamp(), iso.name, digests.join(", ")
                        );
                        heal_states = regions.iter().map(Region::state).collect();
                        stats_at_heal = regions.iter().map(|r| r.node.stats()).collect();
                        proxy.heal_all();
                        partitioned.store(false, Ordering::Relaxed);
                        healed_at = Some(Instant::now());
                        println!("{} HEAL: the links are back", clock.stamp());
                        phase = Phase::Healed;
                    }
                    Phase::Connected | Phase::Healed => {
                        let total: u64 = ledger.lock().expect("ledger").writes.iter().sum();
                        println!("{} writes stop: {total} writes acknowledged in all", clock.stamp());
                        phase = Phase::Stopped;
                    }
                    Phase::Stopped => {
                        println!("{} gave up waiting for convergence", clock.stamp());
                        break;
                    }
                }
            }
            Some((i, e)) = events.recv() => {
                let erase = || if progress_drawn.swap(0, Ordering::Relaxed) == 1 { eprint!("\r\x1b[2K"); };
                match e {
                    NodeEvent::Connected { peer, dialed: true, resumed, .. } => {
                        let j = peer.0 as usize - 1;
                        let l = pair(i, j);
                        if links.insert(l, LinkState::Up) != Some(LinkState::Up) {
                            erase();
                            failing.remove(&l);
                            let after = healed_at.map(|h| h.elapsed());
                            if let Some(after) = after {
                                reconnected.insert(l, after);
                                if resumed {
                                    resumed_links.insert(l);
                                }
                                println!(
                                    "{} {} ⇄ {} {} ({} ms after the heal); anti-entropy starts",
                                    clock.stamp(), regions[i].name, regions[j].name,
                                    if resumed { "resumed on the kept connection, no new handshake" } else { "reconnected through a new handshake" },
                                    after.as_millis()
                                );
                            } else {
                                println!("{} {} ⇄ {} reconnected", clock.stamp(), regions[i].name, regions[j].name);
                            }
                        }
                    }
                    NodeEvent::Disconnected { peer, reason, .. } => {
                        let j = peer.0 as usize - 1;
                        let l = pair(i, j);
                        if links.insert(l, LinkState::Down) == Some(LinkState::Up) {
                            erase();
                            println!(
                                "{} {} ⇄ {} connection lost ({}: {reason})",
                                clock.stamp(), regions[l.0].name, regions[l.1].name, regions[i].name
                            );
                        }
                    }
                    NodeEvent::ConnectFailed { addr, error, .. } => {
                        if let Some(&l) = label_link.get(&addr) {
                            if !failing.insert(l, true).unwrap_or(false) {
                                erase();
                                println!(
                                    "{} {} → {}: reconnect failed ({error}); retrying with backoff",
                                    clock.stamp(), regions[l.0].name, regions[l.1].name
                                );
                            }
                        }
                    }
                    NodeEvent::SessionCompleted { peer, channel, initiator: true, stats, elapsed } => {
                        record_heal_session(&mut heal_sessions, &reconnected, pair(i, peer.0 as usize - 1), channel, stats, elapsed, true);
                    }
                    NodeEvent::SessionEnded { peer, channel, initiator: true, stats, elapsed, .. } => {
                        record_heal_session(&mut heal_sessions, &reconnected, pair(i, peer.0 as usize - 1), channel, stats, elapsed, false);
                    }
                    _ => {}
                }
                for (l, h) in heal_sessions.iter_mut() {
                    if h.channels == channels_per_link && !h.printed {
                        erase();
                        h.printed = true;
                        println!(
                            "{} anti-entropy {} ⇄ {} after the heal: {} stores, {} both ways, ≤ {} round trips, {} ms; {} of {} verified equal roots{}",
                            clock.stamp(), regions[l.0].name, regions[l.1].name, h.channels, kb(h.bytes), h.max_round_trips,
                            h.longest.as_millis(), h.verified, h.channels,
                            if h.verified < h.channels { ", the others ended when new writes kept moving the roots (deltas carry those)" } else { "" }
                        );
                    }
                }
            }
            _ = monitor.tick(), if healed_at.is_some() && caught_up.iter().any(Option::is_none) => {
                let h = healed_at.expect("healed");
                for (i, r) in regions.iter().enumerate() {
                    if caught_up[i].is_none()
                        && heal_states.iter().enumerate().all(|(j, s)| j == i || r.includes(s))
                    {
                        let after = h.elapsed();
                        caught_up[i] = Some(after);
                        if progress_drawn.swap(0, Ordering::Relaxed) == 1 { eprint!("\r\x1b[2K"); }
                        println!(
                            "{} {} caught up: it holds every write any region had before the heal ({} ms after the heal)",
                            clock.stamp(), r.name, after.as_millis()
                        );
                    }
                }
                if caught_up.iter().all(Option::is_some) {
                    stats_at_catch_up = Some(regions.iter().map(|r| r.node.stats()).collect());
                }
            }
            _ = divergence.tick(), if matches!(phase, Phase::Partitioned | Phase::AliceEu | Phase::AliceAp) => {
                if progress_drawn.swap(0, Ordering::Relaxed) == 1 { eprint!("\r\x1b[2K"); }
                println!("{} {}", clock.stamp(), divergence_line(&regions, isolated));
            }
            _ = settle.tick(), if phase == Phase::Stopped => {
                let first = regions[0].node.roots();
                if regions.iter().all(|r| r.node.roots() == first) {
                    let after = writes_end.elapsed();
                    converged_after = Some(after);
                    if progress_drawn.swap(0, Ordering::Relaxed) == 1 { eprint!("\r\x1b[2K"); }
                    println!(
                        "{} CONVERGED: all {n} regions hold equal roots ({}), {} ms after the last write",
                        clock.stamp(), regions[0].digest(), after.as_millis()
                    );
                    break;
                }
            }
            _ = progress.tick(), if !o.quiet => {
                let stats: Vec<NodeStats> = regions.iter().map(|r| r.node.stats()).collect();
                let writes: u64 = ledger.lock().expect("ledger").writes.iter().sum();
                let sent: u64 = stats.iter().map(|s| s.bytes_sent).sum();
                let deltas: u64 = stats.iter().map(|s| s.deltas_sent).sum();
                let dropped: u64 = stats.iter().map(|s| s.deltas_dropped).sum();
                let sessions: u64 = stats.iter().map(|s| s.sessions_initiated).sum();
                let roots: Vec<String> = regions.iter().map(|r| format!("{} {}", r.name, &r.digest()[..4])).collect();
                let line = format!(
                    "  t={:>5.1}s  {:<11}  writes {writes:>5}  deltas {deltas:>5} ({dropped} dropped)  sessions {sessions:>3}  sent {:>9}  roots {}",
                    t0.elapsed().as_secs_f64(),
                    match phase {
                        Phase::Connected => "connected",
                        Phase::Partitioned | Phase::AliceEu | Phase::AliceAp => "PARTITIONED",
                        Phase::Healed => "healed",
                        Phase::Stopped => "settling",
                    },
                    kb(sent),
                    roots.join(" ")
                );
                if tty {
                    eprint!("\r\x1b[2K{line}");
                    let _ = std::io::stderr().flush();
                    progress_drawn.store(1, Ordering::Relaxed);
                } else {
                    eprintln!("{line}");
                }
            }
        }
    }
    if progress_drawn.swap(0, Ordering::Relaxed) == 1 {
        eprint!("\r\x1b[2K");
    }

    // The verdict.
    for w in writers {
        w.abort();
        let _ = w.await;
    }
    let ledger = Arc::try_unwrap(ledger).map_or_else(
        |a| std::mem::take(&mut *a.lock().expect("ledger")),
        |m| m.into_inner().expect("ledger"),
    );
    let stats: Vec<NodeStats> = regions.iter().map(|r| r.node.stats()).collect();
    let converged = converged_after.is_some();
    print_tables(&regions, &stats, &caught_up, o.price, t0.elapsed());
    let mut ok = converged;

    println!();
    if has_partition {
        let slowest = caught_up.iter().flatten().max().copied();
        match slowest {
            Some(s) => {
                let (link, reconnect) = reconnected
                    .iter()
                    .max_by_key(|(_, d)| **d)
                    .map_or(((0, 1), Duration::ZERO), |(l, d)| (*l, *d));
                let ae = s.saturating_sub(reconnect);
                let link_rtt = rtt(&regions[link.0].key, &regions[link.1].key);
                let slowest_rtt = regions
                    .iter()
                    .enumerate()
                    .flat_map(|(a, x)| regions[a + 1..].iter().map(|y| rtt(&x.key, &y.key)))
                    .max()
                    .unwrap_or(link_rtt);
                let how = match resumed_links.len() {
                    0 => "every link through a new handshake".to_string(),
                    k if k == reconnected.len() => "every link resumed on its kept connection, no new handshake".to_string(),
                    k => format!("{k} of {} links resumed on their kept connection, the others through a new handshake", reconnected.len()),
                };
                println!(
                    "time to converge after the heal: {} ms ≈ {:.1} round trips of the slowest ({} ms) link (until every region held every write made before the heal):\n  {} ms until the last link was back ({how}), then {} ms of anti-entropy ≈ {:.1} round trips of the {} ms link",
                    s.as_millis(),
                    s.as_secs_f64() / slowest_rtt.as_secs_f64(),
                    slowest_rtt.as_millis(),
                    reconnect.as_millis(),
                    ae.as_millis(),
                    ae.as_secs_f64() / link_rtt.as_secs_f64(),
                    link_rtt.as_millis()
                );
            }
            None => {
                println!("time to converge after the heal: NOT REACHED");
                ok = false;
            }
        }
        if let Some(after) = &stats_at_catch_up {
            let sent: u64 = after
                .iter()
                .zip(&stats_at_heal)
                .map(|(a, b)| a.bytes_sent - b.bytes_sent)
                .sum();
            let ae: u64 = after
                .iter()
                .zip(&stats_at_heal)
                .map(|(a, b)| a.session_bytes_sent - b.session_bytes_sent)
                .sum();
            let rt = heal_sessions
                .values()
                .map(|h| h.max_round_trips)
                .max()
                .unwrap_or(0);
            println!(
                "  from heal to caught up: {} sent by all regions, {} of it anti-entropy (the rest: new writes' deltas, keepalives);\n  the catch-up sessions ran ≤ {rt} round trips (up to 3 passes, as new writes kept moving the roots)",
                kb(sent),
                kb(ae)
            );
            println!(
                "  cost of the heal at ${}/GB: {} in all, {} of it anti-entropy",
                o.price.per_gb,
                usd(o.price.dollars(sent)),
                usd(o.price.dollars(ae))
            );
        }
    }
    if let Some(c) = converged_after {
        println!("all roots equal {} ms after the last write", c.as_millis());
    }
    let sent: u64 = stats.iter().map(|s| s.bytes_sent).sum();
    let delta_bytes: u64 = stats.iter().map(|s| s.delta_bytes_sent).sum();
    let ae_bytes: u64 = stats.iter().map(|s| s.session_bytes_sent).sum();
    let rts: u64 = stats.iter().map(|s| s.round_trips).sum();
    let writes: u64 = ledger.writes.iter().sum();
    println!(
        "traffic: {} sent in all for {writes} writes ({} deltas, {} anti-entropy, {} round trips of anti-entropy); {} crossed the proxy",
        kb(sent),
        kb(delta_bytes),
        kb(ae_bytes),
        rts,
        kb(proxy.stats().iter().map(|l| l.bytes).sum())
    );
    let (wire, cpu) = (
        proxy.stats().iter().map(|l| l.bytes).sum::<u64>(),
        cpu_seconds(),
    );
    println!(
        "cost ({}): {} on the wire for {} of frames ({:+.1}%), {} CPU seconds for the whole process",
        if o.plaintext { "plaintext" } else { "mutual TLS" },
        kb(wire),
        kb(sent),
        (wire as f64 / sent.max(1) as f64 - 1.0) * 100.0,
        cpu.map_or("unknown".to_string(), |c| format!("{c:.2}")),
    );

    let run = t0.elapsed();
    println!(
        "price at ${}/GB: {} for this run ({:.0} writes/s, {:.0} bytes sent per write); at this rate {} a month",
        o.price.per_gb,
        usd(o.price.dollars(sent)),
        writes as f64 / run.as_secs_f64(),
        sent as f64 / writes.max(1) as f64,
        usd(o.price.monthly(sent, run))
    );
    println!("\nchecks against the ledger of acknowledged writes, in every region:");
    ok &= check(&regions, &ledger);
    ok &= check_alice(&regions, has_partition);
    ok &= scenario_mesh::run_all().await?;

    for r in Arc::try_unwrap(regions).map_err(|_| "regions still shared")? {
        r.node.shutdown().await?;
    }
    proxy.shutdown().await;
    if temporary {
        let _ = std::fs::remove_dir_all(&data);
    }
    println!(
        "\n{}",
        if ok {
            "converged; no acknowledged write lost"
        } else {
            "FAILED"
        }
    );
    Ok(ok)
}
