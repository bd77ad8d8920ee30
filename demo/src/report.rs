//! The demo's final tables and the checks of every region against the
//! ledger.

use super::*;

pub(crate) fn record_heal_session(
    heal: &mut BTreeMap<(usize, usize), HealSessions>,
    reconnected: &BTreeMap<(usize, usize), Duration>,
    link: (usize, usize),
    channel: String,
    stats: SessionStats,
    elapsed: Duration,
    verified: bool,
) {
    if !reconnected.contains_key(&link) {
        return;
    }
    let h = heal.entry(link).or_default();
    if h.seen.contains(&channel) {
        return;
    }
    h.seen.push(channel);
    h.channels += 1;
    h.bytes += stats.bytes_sent + stats.bytes_received;
    h.max_round_trips = h.max_round_trips.max(stats.round_trips());
    h.longest = h.longest.max(elapsed);
    if verified {
        h.verified += 1;
    }
}

/// The divergence monitor's estimate between the isolated region and each
/// other: while the link is cut, each side compares with the other's last
/// probe and counts what changed on its side since, so the two sides'
/// estimates add up (see `accordant_sync::net::divergence`).
pub(crate) fn divergence_line(regions: &[Region], isolated: usize) -> String {
    let id = |i: usize| i as u64 + 1;
    let towards = |from: usize, to: usize| {
        regions[from]
            .node
            .peer_stats()
            .into_iter()
            .find(|p| p.peer.0 == id(to))
            .map_or((0.0, 0.0), |p| {
                let keys = p.divergent_keys();
                let bytes: f64 = p.divergence.iter().map(|(_, e)| e.bytes).sum();
                (keys, bytes)
            })
    };
    let parts: Vec<String> = (0..regions.len())
        .filter(|&j| j != isolated)
        .map(|j| {
            let (k1, b1) = towards(isolated, j);
            let (k2, b2) = towards(j, isolated);
            format!(
                "⇄ {} ≈ {:.0} keys (~{} to move)",
                regions[j].name,
                k1 + k2,
                kb((b1 + b2) as u64)
            )
        })
        .collect();
    format!(
        "divergence (estimated, no values exchanged): {} {}",
        regions[isolated].name,
        parts.join(", ")
    )
}

pub(crate) fn print_tables(
    regions: &[Region],
    stats: &[NodeStats],
    caught_up: &[Option<Duration>],
    price: Price,
    elapsed: Duration,
) {
    println!();
    println!(
        "{:<9} {:>6} {:>6} {:>6}  {:<24} {:<22} Alice (MV)",
        "region", "views", "likes", "carts", "family cart", "Alice (LWW)"
    );
    for r in regions {
        let views: i128 = r.counters.read(|s| {
            s.iter()
                .filter(|(k, _)| k.starts_with("views:"))
                .map(|(_, c)| c.value())
                .sum()
        });
        let likes = r.counters.get("likes:post-7").map_or(0, |c| c.value());
        let carts = r.carts.read(|s| s.len());
        let family = r.carts.get("cart:family").unwrap_or_default();
        let units: u64 = family.items().map(|(_, q)| q).sum();
        let lww = r
            .lww
            .get(ALICE)
            .and_then(|l| l.get().cloned())
            .unwrap_or_default();
        let mut mv: Vec<String> =
            r.mv.get(ALICE)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default();
        mv.sort();
        println!(
            "{:<9} {:>6} {:>6} {:>6}  {:<24} {:<22} {}",
            r.name,
            views,
            likes,
            carts,
            format!("{} items, {} units", family.len(), units),
            lww,
            mv.join(" | ")
        );
    }
    println!();
    println!(
        "{:<9} {:<9} {:>10} {:>11} {:>8} {:>11} {:>9} {:>11} {:>20} {:>10} {:>11} {:>10}",
        "region",
        "root",
        "bytes sent",
        "deltas sent",
        "dropped",
        "AE sessions",
        "verified",
        "round trips",
        "converged after heal",
        "lag at end",
        "cost",
        "cost/month"
    );
    for ((r, s), c) in regions.iter().zip(stats).zip(caught_up) {
        let lag = r
            .node
            .peer_stats()
            .iter()
            .map(|p| p.lag)
            .max()
            .unwrap_or_default();
        println!(
            "{:<9} {:<9} {:>10} {:>11} {:>8} {:>11} {:>9} {:>11} {:>20} {:>10} {:>11} {:>10}",
            r.name,
            r.digest(),
            kb(s.bytes_sent),
            s.deltas_sent,
            s.deltas_dropped,
            s.sessions_initiated + s.sessions_responded,
            s.sessions_completed,
            s.round_trips,
            c.map_or("—".to_string(), |d| format!("{} ms", d.as_millis())),
            format!("{} ms", lag.as_millis()),
            usd(price.dollars(s.bytes_sent)),
            usd(price.monthly(s.bytes_sent, elapsed))
        );
    }
    println!(
        "(cost: the bytes each region sent, all cross-region, at ${}/GB; per month: at this run's average rate)",
        price.per_gb
    );
}

pub(crate) fn check(regions: &[Region], l: &Ledger) -> bool {
    let mut ok = true;
    let incs: i128 = l.counters.values().sum();
    let counters_ok = regions.iter().all(|r| {
        l.counters
            .iter()
            .all(|(k, v)| r.counters.get(k).map_or(0, |c| c.value()) == *v)
    });
    println!(
        "  {} counters: in every region, each of the {} counters equals the sum of its acknowledged increments and decrements (net {incs} in all)",
        mark(counters_ok),
        l.counters.len()
    );
    ok &= counters_ok;
    let adds = l.carts.len();
    let carts_ok = regions.iter().all(|r| {
        l.carts
            .iter()
            .all(|((cart, item), q)| r.carts.get(cart).map_or(0, |c| c.quantity(item)) == *q)
    });
    let family: u64 = l
        .carts
        .iter()
        .filter(|((c, _), _)| c == "cart:family")
        .map(|(_, q)| q)
        .sum();
    println!(
        "  {} carts: all {adds} (cart, item) quantities match the acknowledged adds and removes; the family cart, written from every region, holds all {family} units",
        mark(carts_ok)
    );
    ok &= carts_ok;
    let profiles_ok = regions.iter().all(|r| {
        l.profiles.iter().all(|(k, v)| {
            r.lww.get(k).and_then(|x| x.get().cloned()).as_ref() == Some(v)
                && r.mv.get(k).is_some_and(|m| m.values().eq([v]))
        })
    });
    println!(
        "  {} profiles: each of the {} single-writer profiles shows its last acknowledged write, as LWW and as MV",
        mark(profiles_ok),
        l.profiles.len()
    );
    ok && profiles_ok
}

pub(crate) fn check_alice(regions: &[Region], partitioned: bool) -> bool {
    let lww = regions[0].lww.get(ALICE).and_then(|l| l.get().cloned());
    let mut mv: Vec<String> = regions[0]
        .mv
        .get(ALICE)
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    mv.sort();
    if !partitioned {
        return true;
    }
    let both = mv == ["Mumbai, MG Road", "Paris, Rue de Rivoli"];
    let one = lww
        .as_deref()
        .is_some_and(|v| v == "Mumbai, MG Road" || v == "Paris, Rue de Rivoli");
    println!(
        "  {} Alice's concurrent addresses: LWW kept {:?} and silently dropped the other; MV kept both ({})",
        mark(both && one),
        lww.unwrap_or_default(),
        mv.join(" | ")
    );
    both && one
}

/// User plus system CPU time of this process so far (Linux, from
/// /proc/self/stat; ticks of 1/100 s, the kernel's USER_HZ).
pub(crate) fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

pub(crate) fn mark(ok: bool) -> &'static str {
    if ok {
        "ok  "
    } else {
        "FAIL"
    }
}
