//! A history checker for session guarantees and the bounded counter's
//! invariants, in the style of Jepsen's Elle (Kingsbury and Alvaro,
//! "Elle: Inferring Isolation Anomalies from Experimental Observations",
//! VLDB 2020): run randomized clients against three regions in the
//! simulator under partitions, loss, duplication and reordering, record
//! what every client observed, and check the history afterwards against
//! the guarantees, using the *lattice* (not the tokens' own bookkeeping)
//! as the judge.
//!
//! **Sessions** ([`check_sessions`]). Each client carries a
//! [`SessionToken`]; it reads or writes (adds and observed removes on an
//! [`OrSet`]) a random key in a random region. A read or a write waits
//! (retrying on later steps, up to a deadline) until the region's value
//! covers the client's token, as [`Channel::read_after`] does, and
//! otherwise fails as *not yet visible*. The checker keeps, per client
//! and key, the join of every state the client wrote or was shown, and
//! flags any answered read whose value is not above it:
//! [`Violation::ReadYourWrites`] (below the client's last write) or
//! [`Violation::MonotonicRead`] (below an earlier read). It also counts
//! the reads that *would* have been stale without the token (the region
//! was behind when asked), so a run that never exercises the guarantee
//! shows as such, and the waits the frontier asked for although the
//! lattice says the value was already above (imprecision; 0 expected).
//!
//! **Stock** ([`check_stock`]). One [`BoundedCounter`] of `stock` units,
//! created in one region, split by explicit transfers; clients buy one
//! unit in a region (mostly the one where demand is hot at the time;
//! refused without local rights), and every
//! region runs the automatic [`RightsPolicy`] after every step. The
//! checker flags a history that sold more than the stock
//! ([`Violation::Oversold`]), a global state (the join of the regions')
//! whose value or rights differ from what is unsold
//! ([`Violation::Miscounted`]), and, after the network heals,
//! stock left unsold while clients keep asking in every region
//! ([`Violation::Unsellable`]).
//!
//! The targeted pull of the TCP node is not modelled here (anti-entropy
//! alone brings the data): it changes when a read is answered, not what
//! is answered, which is what these checks judge.
//!
//! ```
//! use accordant_sync::sim::checker::{check_sessions, check_stock, CheckConfig};
//! let report = check_sessions(&CheckConfig::new(1));
//! assert!(report.violations.is_empty(), "{:?}", report.violations);
//! assert!(report.reads_answered > 0);
//! let stock = check_stock(&CheckConfig::new(1));
//! assert!(stock.violations.is_empty(), "{:?}", stock.violations);
//! assert_eq!(stock.sold, stock.stock);
//! ```
//!
//! [`Channel::read_after`]: crate::net::Channel::read_after

use accordant::{BoundedCounter, Lattice, OrSet, ReplicaId, RightsPolicy};

use super::{AntiEntropyConfig, AntiEntropyNode, LinkConfig, ProcessId, SimTime, Simulator};
use crate::rng::SplitMix64;
use crate::store::Store;
use crate::token::{KeyId, SessionToken, Versioned};

/// The number of regions.
pub const REGIONS: usize = 3;

/// One run's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct CheckConfig {
    /// Seeds the network and the clients.
    pub seed: u64,
    /// Concurrent clients.
    pub clients: usize,
    /// Client steps (each client acts once per step).
    pub steps: usize,
    /// Virtual time between steps.
    pub step: SimTime,
    /// How long a read or write waits for coverage.
    pub wait: SimTime,
    /// Message loss on every link.
    pub loss: f64,
    /// Probability of reordering a message.
    pub reorder: f64,
    /// Probability, per step, of a new partition (or of healing one).
    pub partition: f64,
    /// The bounded counter's stock.
    pub stock: u64,
    /// Makes the regions answer without covering the token (a broken
    /// implementation), to show the checker catches it.
    pub answer_uncovered: bool,
}

impl CheckConfig {
    /// Defaults: 6 clients, 150 steps of 50 ms, 1 s waits, 5% loss, 10%
    /// reordering, a partition change every 10 steps on average, 60 units.
    pub fn new(seed: u64) -> Self {
        CheckConfig {
            seed,
            clients: 6,
            steps: 150,
            step: SimTime::from_millis(50),
            wait: SimTime::from_secs(1),
            loss: 0.05,
            reorder: 0.1,
            partition: 0.1,
            stock: 60,
            answer_uncovered: false,
        }
    }
}

/// A guarantee or invariant the history broke.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// A client read a value below its own last write of the key.
    ReadYourWrites {
        /// The client.
        client: usize,
        /// Its operation number.
        op: usize,
    },
    /// A client read a value below one it had read before.
    MonotonicRead {
        /// The client.
        client: usize,
        /// Its operation number.
        op: usize,
    },
    /// More units sold than the stock.
    Oversold {
        /// Units sold.
        sold: u64,
        /// The stock.
        stock: u64,
    },
    /// The join of every region's state does not hold exactly the units
    /// not sold, or its rights do not add up to them (a sale lost, a unit
    /// minted, rights held twice).
    Miscounted {
        /// The joined value.
        value: u64,
        /// The rights of the three regions, added.
        rights: u64,
        /// Stock minus units sold.
        expected: u64,
    },
    /// Units left unsold although every region kept selling after the
    /// heal.
    Unsellable {
        /// Units left.
        left: u64,
    },
}

/// What a run observed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckReport {
    /// Writes applied.
    pub writes: u64,
    /// Reads answered.
    pub reads_answered: u64,
    /// Reads and writes that failed as not yet visible.
    pub not_visible: u64,
    /// Operations whose region was behind the token when asked: without
    /// the token they would have been stale.
    pub would_be_stale: u64,
    /// Waits the frontier asked for although the value was already above
    /// the client's state (0 for an exact frontier).
    pub spurious_waits: u64,
    /// The stock (stock runs).
    pub stock: u64,
    /// Units sold.
    pub sold: u64,
    /// Purchases refused for lack of local rights.
    pub refused: u64,
    /// Rights transfers made by the automatic policy.
    pub transfers: u64,
    /// What went wrong (empty: the history is valid).
    pub violations: Vec<Violation>,
}

type SetNode = AntiEntropyNode<u8, OrSet<u16>>;
type StockNode = AntiEntropyNode<u8, BoundedCounter>;

fn replica(region: usize) -> ReplicaId {
    ReplicaId::from_u128(region as u128 + 1)
}

/// Three regions on a faulty WAN.
fn regions<N: crate::sim::Process>(cfg: &CheckConfig, make: impl Fn() -> N) -> Simulator<N> {
    let mut sim = Simulator::new(cfg.seed);
    sim.set_default_link(
        LinkConfig::wan(SimTime::from_millis(80))
            .with_loss(cfg.loss)
            .with_duplicate(0.02)
            .with_reorder(cfg.reorder, SimTime::from_millis(100)),
    );
    for _ in 0..REGIONS {
        sim.add_node(make());
    }
    sim
}

fn ae() -> AntiEntropyConfig {
    AntiEntropyConfig::default()
        .with_interval(SimTime::from_millis(200))
        .with_timeout(SimTime::from_millis(600))
}

/// Maybe partitions the regions (or heals), as the config's rate says.
fn faults<N: crate::sim::Process>(sim: &mut Simulator<N>, rng: &mut SplitMix64, cfg: &CheckConfig) {
    if rng.unit() >= cfg.partition {
        return;
    }
    let ids: Vec<ProcessId> = (0..REGIONS as u32).map(ProcessId).collect();
    match rng.below(4) {
        0 => sim.heal(),
        k => {
            // One region cut off from the other two.
            let alone = ids[(k - 1) as usize];
            let rest: Vec<ProcessId> = ids.iter().copied().filter(|p| *p != alone).collect();
            sim.partition(&[&[alone], &rest]);
        }
    }
}

/// `a ⊑ b`.
fn below<V: Lattice + PartialEq + Clone>(a: &V, b: &V) -> bool {
    a.clone().joined(b) == *b
}

/// A client's pending operation.
#[derive(Debug, Clone, Copy)]
struct Pending {
    region: usize,
    key: u8,
    /// `Some(elem, add)`: a write; `None`: a read.
    write: Option<(u16, bool)>,
    deadline: SimTime,
    op: usize,
}

#[derive(Debug, Default)]
struct Client {
    token: SessionToken,
    /// Per key: the join of what the client wrote, and of what it read.
    wrote: [Option<OrSet<u16>>; 4],
    read: [Option<OrSet<u16>>; 4],
    pending: Option<Pending>,
    ops: usize,
}

/// Runs the session check (see the [module docs](self)).
pub fn check_sessions(cfg: &CheckConfig) -> CheckReport {
    let mut sim = regions(cfg, || SetNode::new(Store::new(), ae()));
    let mut rng = SplitMix64::new(cfg.seed ^ 0x5e55_1011);
    let mut clients: Vec<Client> = (0..cfg.clients).map(|_| Client::default()).collect();
    let mut report = CheckReport::default();
    for _ in 0..cfg.steps {
        faults(&mut sim, &mut rng, cfg);
        for (c, client) in clients.iter_mut().enumerate() {
            let now = sim.now();
            let p = match client.pending {
                Some(p) => p,
                None => {
                    let home = c % REGIONS;
                    let region = if rng.unit() < 0.5 {
                        home
                    } else {
                        rng.below(REGIONS as u64) as usize
                    };
                    let write = (rng.unit() < 0.5).then(|| (rng.below(8) as u16, rng.unit() < 0.7));
                    client.ops += 1;
                    let p = Pending {
                        region,
                        key: rng.below(4) as u8,
                        write,
                        deadline: now + cfg.wait,
                        op: client.ops,
                    };
                    // Would the region answer with less than the client saw?
                    let store = sim.node(ProcessId(region as u32)).map(|n| n.store());
                    let local = store.and_then(|s| s.get(&p.key)).unwrap_or_default();
                    let seen = seen_by(client, p.key);
                    if !below(&seen, &local) {
                        report.would_be_stale += 1;
                    }
                    p
                }
            };
            client.pending = Some(p);
            let node = match sim.node_mut(ProcessId(p.region as u32)) {
                Some(n) => n,
                None => continue,
            };
            let id = KeyId::of(0, &p.key);
            let local = node.store().get(&p.key).unwrap_or_default();
            if !cfg.answer_uncovered && !client.token.lag(id, &local.frontier()).is_zero() {
                if below(&seen_by(client, p.key), &local) {
                    report.spurious_waits += 1;
                }
                if now >= p.deadline {
                    report.not_visible += 1;
                    client.pending = None;
                }
                continue;
            }
            client.pending = None;
            let k = usize::from(p.key);
            match p.write {
                Some((elem, add)) => {
                    let r = replica(p.region);
                    let _ = node.store_mut().update(p.key, |s: &mut OrSet<u16>| {
                        if add {
                            s.add(r, elem)
                        } else {
                            Ok(s.remove(&elem))
                        }
                    });
                    let after = node.store().get(&p.key).unwrap_or_default();
                    report.writes += 1;
                    let _ = client.token.record(id, after.frontier());
                    client.wrote[k] = Some(after);
                }
                None => {
                    report.reads_answered += 1;
                    if let Some(w) = &client.wrote[k] {
                        if !below(w, &local) {
                            report.violations.push(Violation::ReadYourWrites {
                                client: c,
                                op: p.op,
                            });
                        }
                    }
                    if let Some(r) = &client.read[k] {
                        if !below(r, &local) {
                            report.violations.push(Violation::MonotonicRead {
                                client: c,
                                op: p.op,
                            });
                        }
                    }
                    let _ = client.token.record(id, local.frontier());
                    let joined = match client.read[k].take() {
                        Some(r) => r.joined(&local),
                        None => local,
                    };
                    client.read[k] = Some(joined);
                }
            }
        }
        sim.run_for(cfg.step);
    }
    report
}

/// The join of what `client` wrote and read of `key`.
fn seen_by(client: &Client, key: u8) -> OrSet<u16> {
    let k = usize::from(key);
    let mut s = OrSet::new();
    for v in [&client.wrote[k], &client.read[k]].into_iter().flatten() {
        s.join(v);
    }
    s
}

/// The join of the stock in every region: what an observer of the whole
/// system would see.
fn global(sim: &Simulator<StockNode>) -> BoundedCounter {
    let mut all = BoundedCounter::new();
    for r in 0..REGIONS {
        if let Some(c) = sim
            .node(ProcessId(r as u32))
            .and_then(|n| n.store().get(&0))
        {
            all.join(&c);
        }
    }
    all
}

/// Runs the stock check (see the [module docs](self)).
pub fn check_stock(cfg: &CheckConfig) -> CheckReport {
    let mut sim = regions(cfg, || StockNode::new(Store::new(), ae()));
    let mut rng = SplitMix64::new(cfg.seed ^ 0x0005_70c4);
    let mut report = CheckReport {
        stock: cfg.stock,
        ..CheckReport::default()
    };
    let members: Vec<ReplicaId> = (0..REGIONS).map(replica).collect();
    let policy = RightsPolicy::new(cfg.stock / 20 + 1);
    // Region 0 creates the stock and gives each other region a third.
    if let Some(n) = sim.node_mut(ProcessId(0)) {
        let store = n.store_mut();
        let _ = store.update(0, |c: &mut BoundedCounter| {
            c.increment(replica(0), cfg.stock)
        });
        for to in 1..REGIONS {
            let _ = store.update(0, |c: &mut BoundedCounter| {
                c.transfer(replica(0), replica(to), cfg.stock / REGIONS as u64)
            });
        }
    }
    let buy = |sim: &mut Simulator<StockNode>, region: usize, report: &mut CheckReport| {
        if let Some(n) = sim.node_mut(ProcessId(region as u32)) {
            match n
                .store_mut()
                .update(0, |c: &mut BoundedCounter| c.decrement(replica(region), 1))
            {
                Ok(_) => report.sold += 1,
                Err(_) => report.refused += 1,
            }
        }
    };
    let rebalance = |sim: &mut Simulator<StockNode>, report: &mut CheckReport| {
        for region in 0..REGIONS {
            if let Some(n) = sim.node_mut(ProcessId(region as u32)) {
                let me = replica(region);
                let mut moved = false;
                let _ = n.store_mut().update(0, |c: &mut BoundedCounter| {
                    match c.apply_rebalance(me, members.iter().copied(), &policy) {
                        Ok(Some(d)) => {
                            moved = true;
                            Ok(d)
                        }
                        Ok(None) => Ok(BoundedCounter::new()),
                        Err(e) => Err(e),
                    }
                });
                report.transfers += u64::from(moved);
            }
        }
    };
    let check = |sim: &Simulator<StockNode>, report: &mut CheckReport| {
        if report.sold > report.stock {
            report.violations.push(Violation::Oversold {
                sold: report.sold,
                stock: report.stock,
            });
        }
        let expected = report.stock.saturating_sub(report.sold);
        let global = global(sim);
        let rights = (0..REGIONS).map(|r| global.rights(replica(r))).sum();
        if global.value() != expected || rights != expected {
            report.violations.push(Violation::Miscounted {
                value: global.value(),
                rights,
                expected,
            });
        }
    };
    for step in 0..cfg.steps {
        faults(&mut sim, &mut rng, cfg);
        // Demand moves: one region is hot for a while, so rights must
        // follow it.
        let hot = (step / 40) % REGIONS;
        for _ in 0..cfg.clients {
            let region = if rng.unit() < 0.7 {
                hot
            } else {
                rng.below(REGIONS as u64) as usize
            };
            if rng.unit() < 0.3 {
                buy(&mut sim, region, &mut report);
            }
        }
        rebalance(&mut sim, &mut report);
        check(&sim, &mut report);
        sim.run_for(cfg.step);
    }
    // The network heals; clients keep buying everywhere until the stock is
    // gone (or a generous deadline passes).
    sim.heal();
    let deadline = sim.now() + SimTime::from_secs(120);
    while report.sold < report.stock && sim.now() < deadline {
        for region in 0..REGIONS {
            buy(&mut sim, region, &mut report);
        }
        rebalance(&mut sim, &mut report);
        check(&sim, &mut report);
        sim.run_for(cfg.step);
    }
    if report.sold < report.stock {
        report.violations.push(Violation::Unsellable {
            left: report.stock - report.sold,
        });
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_that_ignore_tokens_are_caught() {
        // The same clients against regions that answer at once: the
        // checker must flag stale reads (it is not vacuous).
        let cfg = CheckConfig {
            answer_uncovered: true,
            ..CheckConfig::new(3)
        };
        let report = check_sessions(&cfg);
        assert!(report
            .violations
            .iter()
            .any(|v| matches!(v, Violation::ReadYourWrites { .. })));
        assert!(report
            .violations
            .iter()
            .any(|v| matches!(v, Violation::MonotonicRead { .. })));
    }

    #[test]
    fn with_a_zero_wait_an_uncovered_read_fails_and_never_answers_stale() {
        let cfg = CheckConfig {
            wait: SimTime::ZERO,
            ..CheckConfig::new(3)
        };
        let report = check_sessions(&cfg);
        assert!(report.violations.is_empty(), "{:?}", report.violations);
        assert!(report.not_visible > 0);
        assert!(report.would_be_stale > 0);
        assert_eq!(report.spurious_waits, 0);
    }

    #[test]
    fn a_stock_that_only_a_policy_can_move_is_sold_out() {
        let report = check_stock(&CheckConfig::new(5));
        assert!(report.violations.is_empty(), "{:?}", report.violations);
        assert_eq!(report.sold, 60);
        assert!(report.transfers > 0);
    }
}
