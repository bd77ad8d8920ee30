//! One region of the demo (a node with its stores), the simulated users
//! writing to it, and the ledger of every acknowledged write.

use super::*;

pub(crate) fn display(key: &str) -> String {
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
pub(crate) fn rtt(a: &str, b: &str) -> Duration {
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

pub(crate) fn city(key: &str) -> [&'static str; 2] {
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

pub(crate) const ITEMS: [&str; 6] = ["book", "mug", "pen", "lamp", "tea", "socks"];
pub(crate) const USERS_PER_REGION: usize = 8;
pub(crate) const ALICE: &str = "profile:alice";
/// The demo cluster's name, in its certificates.
pub(crate) const CLUSTER: &str = "demo";

/// A channel of the node with the chosen delta path: the node's default
/// push, or acked delta-intervals.
pub(crate) fn channel<K, V>(
    b: &mut NodeBuilder,
    name: &str,
    acked: bool,
) -> std::io::Result<Channel<K, V>>
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
pub(crate) struct Region {
    pub(crate) key: String,
    pub(crate) name: String,
    pub(crate) node: Node,
    pub(crate) counters: Channel<String, PNCounter>,
    pub(crate) carts: Channel<String, ShoppingCart<String>>,
    pub(crate) lww: Channel<String, LwwRegister<String>>,
    pub(crate) mv: Channel<String, MvRegister<String>>,
    pub(crate) replica: ReplicaId,
    pub(crate) hlc: Mutex<HlcClock>,
    pub(crate) addr: SocketAddr,
}

impl Region {
    pub(crate) async fn start(
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
    pub(crate) async fn write_profile(&self, key: &str, value: &str) {
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
    pub(crate) fn digest(&self) -> String {
        let mut folded = [0u8; 4];
        for (n, d) in self.node.roots().iter().enumerate() {
            for (f, b) in folded.iter_mut().zip(d.as_ref()) {
                *f ^= b.rotate_left(n as u32);
            }
        }
        folded.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub(crate) fn state(&self) -> RegionState {
        RegionState {
            counters: self.counters.snapshot_store(),
            carts: self.carts.snapshot_store(),
            lww: self.lww.snapshot_store(),
            mv: self.mv.snapshot_store(),
        }
    }

    /// Whether this region holds everything `then` held.
    pub(crate) fn includes(&self, then: &RegionState) -> bool {
        includes(&self.counters, &then.counters)
            && includes(&self.carts, &then.carts)
            && includes(&self.lww, &then.lww)
            && includes(&self.mv, &then.mv)
    }
}

pub(crate) struct RegionState {
    pub(crate) counters: Store<String, PNCounter>,
    pub(crate) carts: Store<String, ShoppingCart<String>>,
    pub(crate) lww: Store<String, LwwRegister<String>>,
    pub(crate) mv: Store<String, MvRegister<String>>,
}

pub(crate) fn includes<K, V>(now: &Channel<K, V>, then: &Store<K, V>) -> bool
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
pub(crate) struct Ledger {
    pub(crate) counters: BTreeMap<String, i128>,
    /// Expected quantity per (cart, item): carts other than the family
    /// cart have a single writer, so a removal observes every earlier add.
    pub(crate) carts: BTreeMap<(String, String), u64>,
    /// Single-writer profiles: the last value written.
    pub(crate) profiles: BTreeMap<String, String>,
    pub(crate) writes: Vec<u64>,
    pub(crate) partition_writes: Vec<u64>,
}

/// One simulated user action at region `r`.
pub(crate) async fn act(
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

pub(crate) async fn writer(
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
