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

const HELP: &str = "\
active-active: three regions on loopback TCP, a split brain, a heal.

options:
  --regions LIST      comma-separated regions (default eu,us-east,ap-south;
                      also us-west, sa-east, ap-northeast, or any name)
  --duration SECS     how long users write (default 20)
  --rate N            writes per second per region (default 40)
  --partition SECS    how long the partition lasts; 0 for none (default 7)
  --partition-at SECS when it starts (default 5)
  --isolate NAME      the region cut off (default: the last one)
  --seed N            seed of the simulated users (default 7)
  --deltas push|acked how writes travel while linked: `push` offers each
                      write's delta once (default), `acked` runs the
                      delta-interval replicator with acks, BP and RR
  --insecure-plaintext  no TLS (for cost comparisons only: anyone who
                      reaches a port could read and write)
  --data DIR          keep each region's database under DIR/<region>
                      (default: a fresh directory under the system's
                      temporary directory, removed at the end)
  --price-per-gb USD  price of cross-region transfer (default 0.02, the seed
                      article's figure): the tables and the summary price
                      the bytes sent, per heal and per month at this rate
  --quiet             no progress line
  --log LEVEL         log the nodes' events to stderr through `tracing`
                      (error, warn, info, debug or trace; default: none)
";

struct Options {
    regions: Vec<String>,
    duration: f64,
    rate: f64,
    partition: f64,
    partition_at: f64,
    isolate: Option<String>,
    seed: u64,
    acked: bool,
    plaintext: bool,
    quiet: bool,
    log: Option<tracing::Level>,
    data: Option<std::path::PathBuf>,
    price: Price,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        regions: vec!["eu".into(), "us-east".into(), "ap-south".into()],
        duration: 20.0,
        rate: 40.0,
        partition: 7.0,
        partition_at: 5.0,
        isolate: None,
        seed: 7,
        acked: false,
        plaintext: false,
        quiet: false,
        log: None,
        data: None,
        price: Price {
            per_gb: Price::DEFAULT_PER_GB,
        },
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<f64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--help" | "-h" => return Err(String::new()),
            "--quiet" => o.quiet = true,
            "--price-per-gb" => {
                o.price.per_gb = num(value()?)?;
                if o.price.per_gb.is_nan() || o.price.per_gb < 0.0 {
                    return Err("--price-per-gb: not a price".into());
                }
            }
            "--log" => {
                let v = value()?;
                o.log = Some(
                    v.parse()
                        .map_err(|_| format!("--log {v}: error, warn, info, debug or trace"))?,
                );
            }
            "--insecure-plaintext" => o.plaintext = true,
            "--data" => o.data = Some(value()?.into()),
            "--regions" => {
                o.regions = value()?
                    .split(',')
                    .map(|s| s.trim().to_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            }
            "--duration" => o.duration = num(value()?)?,
            "--rate" => o.rate = num(value()?)?,
            "--partition" => o.partition = num(value()?)?,
            "--partition-at" => o.partition_at = num(value()?)?,
            "--isolate" => o.isolate = Some(value()?.to_lowercase()),
            "--seed" => o.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--deltas" => {
                o.acked = match value()?.as_str() {
                    "push" => false,
                    "acked" => true,
                    v => return Err(format!("--deltas {v}: push or acked")),
                }
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if o.regions.len() < 2 {
        return Err("at least two regions".into());
    }
    let mut sorted = o.regions.clone();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != o.regions.len() {
        return Err("a region is listed twice".into());
    }
    if let Some(i) = &o.isolate {
        if !o.regions.contains(i) {
            return Err(format!("--isolate {i}: not one of the regions"));
        }
    }
    if !(o.duration > 0.0 && o.rate > 0.0 && o.partition >= 0.0 && o.partition_at >= 0.0) {
        return Err("durations and rate must be positive".into());
    }
    if o.partition > 0.0 && o.partition_at + o.partition > o.duration {
        return Err("the partition must heal before the writes stop (--partition-at + --partition <= --duration)".into());
    }
    Ok(o)
}

fn display(key: &str) -> String {
    match key {
        "eu" => "EU".into(),
        "us-east" => "US-East".into(),
        "us-west" => "US-West".into(),
        "ap-south" => "AP-South".into(),
        "ap-northeast" => "AP-Northeast".into(),
        "sa-east" => "SA-East".into(),
        other => other.to_string(),
    }
}

/// Round trips between regions, within the seed article's 80–120 ms.
fn rtt(a: &str, b: &str) -> Duration {
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    Duration::from_millis(match (x, y) {
        ("eu", "us-east") => 80,
        ("ap-south", "eu") => 110,
        ("ap-south", "us-east") => 120,
        ("us-east", "us-west") => 80,
        ("eu", "us-west") => 120,
        _ => 100,
    })
}

fn city(key: &str) -> [&'static str; 2] {
    match key {
        "eu" => ["Paris", "Berlin"],
        "us-east" => ["New York", "Boston"],
        "us-west" => ["Seattle", "San Francisco"],
        "ap-south" => ["Mumbai", "Delhi"],
        "ap-northeast" => ["Tokyo", "Seoul"],
        "sa-east" => ["São Paulo", "Rio"],
        _ => ["Springfield", "Shelbyville"],
    }
}

const ITEMS: [&str; 6] = ["book", "mug", "pen", "lamp", "tea", "socks"];
const USERS_PER_REGION: usize = 8;
const ALICE: &str = "profile:alice";
/// The demo cluster's name, in its certificates.
const CLUSTER: &str = "demo";

/// A channel of the node with the chosen delta path: the node's default
/// push, or acked delta-intervals.
fn channel<K, V>(b: &mut NodeBuilder, name: &str, acked: bool) -> std::io::Result<Channel<K, V>>
where
    K: StoreKey + Send + 'static,
    V: StoreValue + Claims + Send + 'static,
{
    if acked {
        let store = b
            .store(name)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let rep = AckedDeltas::new(AckedConfig::default(), &store);
        Ok(b.channel_with(name, store, Box::new(rep)))
    } else {
        b.channel(name)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

/// One region: a node with four stores.
struct Region {
    key: String,
    name: String,
    node: Node,
    counters: Channel<String, PNCounter>,
    carts: Channel<String, ShoppingCart<String>>,
    lww: Channel<String, LwwRegister<String>>,
    mv: Channel<String, MvRegister<String>>,
    replica: ReplicaId,
    hlc: Mutex<HlcClock>,
    addr: SocketAddr,
}

impl Region {
    async fn start(
        i: usize,
        key: &str,
        seed: u64,
        acked: bool,
        tls: Option<TlsIdentity>,
        members: u64,
        data: &std::path::Path,
    ) -> std::io::Result<Region> {
        let config = NodeConfig::new(i as u64 + 1, display(key))
            .with_cluster(CLUSTER, 1..=members)
            .with_data_dir(data.join(key))
            .with_ae_interval(Duration::from_secs(2))
            .with_keepalive(Duration::from_millis(250), Duration::from_millis(1500))
            .with_timeouts(
                Duration::from_secs(1),
                Duration::from_secs(1),
                Duration::from_secs(3),
                Duration::from_secs(5),
            )
            .with_backoff(Duration::from_millis(100), Duration::from_secs(1))
            .with_seed(seed ^ (i as u64 + 1))
            // The divergence monitor, fast enough for the timeline.
            .with_divergence_interval(Some(Duration::from_millis(500)));
        let config = match tls {
            Some(identity) => config.with_tls(identity),
            None => config.insecure_plaintext(),
        };
        let mut b = NodeBuilder::new(config);
        let counters = channel(&mut b, "counters", acked)?;
        let carts = channel(&mut b, "carts", acked)?;
        let lww = channel(&mut b, "profiles-lww", acked)?;
        let mv = channel(&mut b, "profiles-mv", acked)?;
        let node = b.start().map_err(std::io::Error::other)?;
        // The replica id the region writes under: its database's, kept
        // across restarts.
        let replica = node.replica();
        let addr = node.listen("127.0.0.1:0".parse().expect("addr")).await?;
        Ok(Region {
            key: key.to_string(),
            name: display(key),
            node,
            counters,
            carts,
            lww,
            mv,
            replica,
            hlc: Mutex::new(HlcClock::new(5_000)),
            addr,
        })
    }

    /// Writes a profile both ways: last-writer-wins and multi-value.
    async fn write_profile(&self, key: &str, value: &str) {
        let _ = self
            .lww
            .update(key.to_string(), |r| {
                let mut hlc = self.hlc.lock().expect("hlc");
                r.write(self.replica, value.to_string(), &mut hlc, &SystemClock)
            })
            .await
            .expect("clock");
        let _ = self
            .mv
            .update(key.to_string(), |r| {
                r.write(self.replica, value.to_string())
            })
            .await
            .expect("mv write");
    }

    /// One digest for the region, for display: its four root digests
    /// folded together (equal stores, equal digests).
    fn digest(&self) -> String {
        let mut folded = [0u8; 4];
        for (n, d) in self.node.roots().iter().enumerate() {
            for (f, b) in folded.iter_mut().zip(d.as_ref()) {
                *f ^= b.rotate_left(n as u32);
            }
        }
        folded.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn state(&self) -> RegionState {
        RegionState {
            counters: self.counters.snapshot_store(),
            carts: self.carts.snapshot_store(),
            lww: self.lww.snapshot_store(),
            mv: self.mv.snapshot_store(),
        }
    }

    /// Whether this region holds everything `then` held.
    fn includes(&self, then: &RegionState) -> bool {
        includes(&self.counters, &then.counters)
            && includes(&self.carts, &then.carts)
            && includes(&self.lww, &then.lww)
            && includes(&self.mv, &then.mv)
    }
}

struct RegionState {
    counters: Store<String, PNCounter>,
    carts: Store<String, ShoppingCart<String>>,
    lww: Store<String, LwwRegister<String>>,
    mv: Store<String, MvRegister<String>>,
}

fn includes<K, V>(now: &Channel<K, V>, then: &Store<K, V>) -> bool
where
    K: StoreKey + Send + 'static,
    V: StoreValue + Send + 'static,
{
    now.read(|s| {
        then.iter()
            .all(|(k, v)| s.get(&k).is_some_and(|x| v.leq(&x)))
    })
}

/// Every acknowledged write, to check the regions against.
#[derive(Default)]
struct Ledger {
    counters: BTreeMap<String, i128>,
    /// Expected quantity per (cart, item): carts other than the family
    /// cart have a single writer, so a removal observes every earlier add.
    carts: BTreeMap<(String, String), u64>,
    /// Single-writer profiles: the last value written.
    profiles: BTreeMap<String, String>,
    writes: Vec<u64>,
    partition_writes: Vec<u64>,
}

/// One simulated user action at region `r`.
async fn act(
    r: &Region,
    i: usize,
    rng: &mut ChaCha8Rng,
    ledger: &Mutex<Ledger>,
    partitioned: bool,
    n: u64,
) {
    let user = format!("{}-{}", r.key, rng.random_range(1..=USERS_PER_REGION));
    let roll = rng.random_range(0..100);
    if roll < 45 {
        let page = ["views:/home", "views:/product/42", "views:/cart"][rng.random_range(0..3)];
        let _ = r
            .counters
            .update(page.to_string(), |c| c.add(r.replica, 1))
            .await
            .expect("counter");
        let mut l = ledger.lock().expect("ledger");
        *l.counters.entry(page.to_string()).or_default() += 1;
    } else if roll < 50 {
        let d: i64 = if rng.random_bool(0.7) { 1 } else { -1 };
        let _ = r
            .counters
            .update("likes:post-7".into(), |c| c.add(r.replica, d))
            .await
            .expect("likes");
        let mut l = ledger.lock().expect("ledger");
        *l.counters.entry("likes:post-7".into()).or_default() += i128::from(d);
    } else if roll < 85 {
        let item = ITEMS[rng.random_range(0..ITEMS.len())].to_string();
        let family = rng.random_bool(0.25);
        let cart = if family {
            "cart:family".to_string()
        } else {
            format!("cart:{user}")
        };
        if !family && rng.random_bool(0.15) {
            let _ = r
                .carts
                .update(cart.clone(), |c| Ok::<_, ()>(c.remove_item(&item)))
                .await;
            ledger.lock().expect("ledger").carts.insert((cart, item), 0);
        } else {
            let qty = rng.random_range(1..=2);
            let _ = r
                .carts
                .update(cart.clone(), |c| c.add(r.replica, item.clone(), qty))
                .await
                .expect("cart");
            *ledger
                .lock()
                .expect("ledger")
                .carts
                .entry((cart, item))
                .or_default() += qty;
        }
    } else {
        let value = format!("{} #{n}", city(&r.key)[rng.random_range(0..2)]);
        let key = format!("profile:{user}");
        r.write_profile(&key, &value).await;
        ledger.lock().expect("ledger").profiles.insert(key, value);
    }
    let mut l = ledger.lock().expect("ledger");
    l.writes[i] += 1;
    if partitioned {
        l.partition_writes[i] += 1;
    }
}

async fn writer(
    regions: Arc<Vec<Region>>,
    i: usize,
    rate: f64,
    until: Instant,
    seed: u64,
    ledger: Arc<Mutex<Ledger>>,
    partitioned: Arc<AtomicBool>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(i as u64));
    let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut n = 0u64;
    loop {
        t.tick().await;
        if Instant::now() >= until {
            return;
        }
        n += 1;
        act(
            &regions[i],
            i,
            &mut rng,
            &ledger,
            partitioned.load(Ordering::Relaxed),
            n,
        )
        .await;
    }
}

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

fn record_heal_session(
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
fn divergence_line(regions: &[Region], isolated: usize) -> String {
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

fn print_tables(
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

fn check(regions: &[Region], l: &Ledger) -> bool {
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

fn check_alice(regions: &[Region], partitioned: bool) -> bool {
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
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "ok  "
    } else {
        "FAIL"
    }
}
