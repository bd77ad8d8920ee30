//! `accordant-node`: one replica as an OS process, driven line by line on
//! standard input. The multi-process and network-namespace tests run
//! several of them through the delaying proxy.
//!
//! ```text
//! accordant-node certs --out DIR --cluster NAME --nodes 1,2,3
//! accordant-node --id 1 --name eu --listen 127.0.0.1:0 --tls DIR (--data DIR | --in-memory)
//!                [--cluster NAME] [--members 1,2,3] [--fsync every|window:MS|off] [--resync]
//!                [--snapshot FILE [--restore]]
//!                [--ae-ms 1000] [--idle-ms 1500] [--ping-ms 300] [--handshake-ms 1000]
//!                [--backoff-max-ms 500] [--metrics 127.0.0.1:PORT] [--divergence-ms 5000]
//! accordant-node --id 1 ... --insecure-plaintext        (tests and cost comparisons only)
//! ```
//!
//! `certs` writes a new CA for the cluster and one certificate and key per
//! node into `DIR` (`ca.pem`, `ca-key.pem`, `node-<id>.pem`,
//! `node-<id>-key.pem`; move `ca-key.pem` offline). `--tls DIR` loads the
//! CA certificates and the certificate and key of the node's own `--id`;
//! the members allowed to connect are `--members`, or by default every
//! `node-<id>.pem` found in `DIR`. Without `--tls` the node refuses to
//! start unless `--insecure-plaintext` is given. The cluster's name
//! defaults to `accordant`.
//!
//! The node holds two channels: `counters` (`Store<String, GCounter>`) and
//! `sets` (`Store<String, OrSet<String>>`). With `--data DIR` (required
//! unless `--in-memory` is given) it keeps its database in `DIR`: a write
//! is acknowledged once committed (group commit, a 2 ms window by default;
//! `--fsync every` commits each write alone, `--fsync off` skips the fsync
//! and survives nothing), and the node keeps its replica id across
//! restarts. `--restore` imports the backup at `--snapshot FILE` (this
//! node's and cluster's only) and moves to a new replica id; `--resync`
//! starts even on a corrupt database, moving it aside and pulling
//! everything from the peers. `--metrics ADDR` serves Prometheus metrics
//! over plain HTTP at `http://ADDR/metrics` (put it on a loopback or
//! management address; port 0 picks one, which the `metrics` command
//! prints); `--divergence-ms` sets how often the divergence probes go out. It prints `LISTENING <addr>` once ready, then
//! answers each command with one line:
//!
//! | command | answer |
//! |---|---|
//! | `dial <addr> <id>` | `OK` (keeps reconnecting with backoff; the peer must authenticate as node `<id>`) |
//! | `inc <key> <n>` | `OK` once acknowledged (durable with `--data`) |
//! | `add <key> <elem>` | `OK` once acknowledged |
//! | `count <key>` | `COUNT <total> <replica>=<n> ...`: the counter's entries |
//! | `replica` | `REPLICA <id> <generation>` |
//! | `digest` | `DIGEST <hex>`: both channels' root digests |
//! | `dump` | `DUMP <key>=<n> ... ; <key>=<e>,<e> ...` |
//! | `peers` | `PEERS <n>` connected peers |
//! | `snapshot` | `OK <bytes> <keys>` once the backup is on disk |
//! | `flush` | `OK` once everything staged is committed |
//! | `stats` | `STATS k=v ...` |
//! | `metrics` | `METRICS <addr>` where `/metrics` is served (`METRICS none` without `--metrics`) |
//! | `divergence` | `DIVERGENCE <peer>=<keys> ...`: the last estimate of keys differing with each peer, all channels |
//! | `reload-tls` | `OK` once the CA bundle and the node's certificate and key are reloaded from `--tls DIR` (new connections use them) |
//! | `quit` (or end of input) | `BYE` after a graceful shutdown (commits) |
//!
//! A line `@<tag> inc ...` or `@<tag> add ...` is a pipelined write: it
//! runs concurrently with the following commands (so writes share group
//! commits) and is answered `@<tag> OK` or `@<tag> ERR <why>` once
//! acknowledged or refused, in completion order.
//!
//! Errors answer `ERR <why>`; a refused write answers `ERR` and was not
//! stored. A node whose database is foreign, corrupt or unreadable prints
//! `ERR open: <why>` and exits with status 1.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use accordant::{GCounter, OrSet};
use accordant_sync::net::{certs, Channel, Node, NodeBuilder, NodeConfig, TlsIdentity};
use accordant_sync::store::db::Fsync;

struct Args {
    id: u64,
    name: String,
    tls: Option<PathBuf>,
    plaintext: bool,
    cluster: String,
    members: Option<Vec<u64>>,
    listen: SocketAddr,
    snapshot: Option<PathBuf>,
    restore: bool,
    data: Option<PathBuf>,
    in_memory: bool,
    resync: bool,
    fsync: Fsync,
    ae: Duration,
    idle: Duration,
    ping: Duration,
    handshake: Duration,
    backoff_max: Duration,
    metrics: Option<SocketAddr>,
    divergence: Option<Duration>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        id: 0,
        name: String::new(),
        tls: None,
        plaintext: false,
        cluster: "accordant".into(),
        members: None,
        listen: "127.0.0.1:0".parse().map_err(|_| "addr")?,
        snapshot: None,
        restore: false,
        data: None,
        in_memory: false,
        resync: false,
        fsync: Fsync::default(),
        ae: Duration::from_millis(1000),
        idle: Duration::from_millis(1500),
        ping: Duration::from_millis(300),
        handshake: Duration::from_millis(1000),
        backoff_max: Duration::from_millis(500),
        metrics: None,
        divergence: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--restore" => a.restore = true,
            "--in-memory" => a.in_memory = true,
            "--resync" => a.resync = true,
            _ => {}
        }
        if matches!(flag.as_str(), "--restore" | "--in-memory" | "--resync") {
            continue;
        }
        if flag == "--insecure-plaintext" {
            a.plaintext = true;
            continue;
        }
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        let ms = || {
            v.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|e| format!("{flag}: {e}"))
        };
        match flag.as_str() {
            "--id" => a.id = v.parse().map_err(|e| format!("--id: {e}"))?,
            "--tls" => a.tls = Some(PathBuf::from(&v)),
            "--cluster" => a.cluster = v.clone(),
            "--members" => a.members = Some(ids(&v).map_err(|e| format!("--members: {e}"))?),
            "--name" => a.name = v.clone(),
            "--listen" => a.listen = v.parse().map_err(|e| format!("--listen: {e}"))?,
            "--snapshot" => a.snapshot = Some(PathBuf::from(&v)),
            "--data" => a.data = Some(PathBuf::from(&v)),
            "--fsync" => {
                a.fsync = match v.as_str() {
                    "every" => Fsync::EveryWrite,
                    "off" => Fsync::Off,
                    w => match w.strip_prefix("window:").map(str::parse::<u64>) {
                        Some(Ok(ms)) => Fsync::Window(Duration::from_millis(ms)),
                        _ => return Err(format!("--fsync: every, window:MS or off, not {w:?}")),
                    },
                }
            }
            "--ae-ms" => a.ae = ms()?,
            "--idle-ms" => a.idle = ms()?,
            "--ping-ms" => a.ping = ms()?,
            "--handshake-ms" => a.handshake = ms()?,
            "--backoff-max-ms" => a.backoff_max = ms()?,
            "--metrics" => a.metrics = Some(v.parse().map_err(|e| format!("--metrics: {e}"))?),
            "--divergence-ms" => a.divergence = Some(ms()?),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.id == 0 {
        return Err("--id is required (and not 0)".into());
    }
    if a.data.is_none() && !a.in_memory {
        return Err(
            "--data DIR is required (or --in-memory, which loses every write on exit)".into(),
        );
    }
    if a.data.is_some() && a.in_memory {
        return Err("--data and --in-memory exclude each other".into());
    }
    if a.name.is_empty() {
        a.name = format!("node-{}", a.id);
    }
    match (&a.tls, a.plaintext) {
        (None, false) => {
            return Err("no TLS material: give --tls DIR (made by `accordant-node certs`), or --insecure-plaintext for tests".into())
        }
        (Some(_), true) => return Err("--tls and --insecure-plaintext exclude each other".into()),
        _ => {}
    }
    Ok(a)
}

/// A comma-separated list of node ids.
fn ids(list: &str) -> Result<Vec<u64>, String> {
    list.split(',')
        .map(|s| s.trim().parse::<u64>().map_err(|e| format!("{s:?}: {e}")))
        .collect()
}

/// `accordant-node certs --out DIR --cluster NAME --nodes 1,2,3`.
fn certs_command(args: &[String]) -> Result<String, String> {
    let (mut out, mut cluster, mut nodes) = (None, None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--out" => out = Some(PathBuf::from(v)),
            "--cluster" => cluster = Some(v.clone()),
            "--nodes" => nodes = Some(ids(v).map_err(|e| format!("--nodes: {e}"))?),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    let out = out.ok_or("--out DIR is required")?;
    let cluster = cluster.ok_or("--cluster NAME is required")?;
    let nodes = nodes.ok_or("--nodes 1,2,3 is required")?;
    certs::write_cluster(&out, &cluster, &nodes).map_err(|e| e.to_string())?;
    Ok(format!(
        "wrote a CA for cluster {cluster:?} and certificates for nodes {nodes:?} in {}; keep ca-key.pem offline",
        out.display()
    ))
}

/// The member ids of a TLS directory: every `node-<id>.pem` in it.
fn members_in(dir: &std::path::Path) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut ids: Vec<u64> = entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("node-")?
                .strip_suffix(".pem")?
                .parse()
                .ok()
        })
        .collect();
    ids.sort_unstable();
    ids
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("certs") {
        match certs_command(&argv[1..]) {
            Ok(msg) => {
                println!("{msg}");
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("accordant-node certs: {e}");
                std::process::exit(2);
            }
        }
    }
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("accordant-node: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(run(args));
    std::process::exit(code);
}

async fn run(args: Args) -> i32 {
    let config = NodeConfig::new(args.id, args.name.clone())
        .with_ae_interval(args.ae)
        .with_keepalive(args.ping, args.idle)
        .with_timeouts(
            args.handshake,
            args.handshake,
            Duration::from_secs(3),
            Duration::from_secs(5),
        )
        .with_backoff(Duration::from_millis(50), args.backoff_max)
        .with_fsync(args.fsync);
    let config = match args.divergence {
        Some(every) => config.with_divergence_interval(Some(every)),
        None => config,
    };
    let config = match &args.tls {
        Some(dir) => {
            let members = args.members.clone().unwrap_or_else(|| members_in(dir));
            match TlsIdentity::load(dir, args.id) {
                Ok(identity) => config
                    .with_cluster(args.cluster.clone(), members)
                    .with_tls(identity),
                Err(e) => {
                    println!("ERR tls: {e}");
                    return 1;
                }
            }
        }
        None => config
            .with_cluster(
                args.cluster.clone(),
                args.members.clone().unwrap_or_default(),
            )
            .insecure_plaintext(),
    };
    let config = match &args.data {
        Some(dir) => config.with_data_dir(dir),
        None => config.in_memory(),
    };
    let config = if args.resync {
        config.resync_from_peers()
    } else {
        config
    };
    let mut builder = match NodeBuilder::new(config).open() {
        Ok(b) => b,
        Err(e) => {
            println!("ERR open: {e}");
            return 1;
        }
    };
    if let (true, Some(path)) = (args.restore, &args.snapshot) {
        if path.exists() {
            builder = match builder.restore(path) {
                Ok(b) => b,
                Err(e) => {
                    println!("ERR restore: {e}");
                    return 1;
                }
            };
        }
    }
    let channels = builder
        .channel::<String, GCounter>("counters")
        .and_then(|c| Ok((c, builder.channel::<String, OrSet<String>>("sets")?)));
    let (counters, sets) = match channels {
        Ok(c) => c,
        Err(e) => {
            println!("ERR open: {e}");
            return 1;
        }
    };
    let node = match builder.start() {
        Ok(n) => n,
        Err(e) => {
            println!("ERR start: {e}");
            return 1;
        }
    };
    let addr = match node.listen(args.listen).await {
        Ok(a) => a,
        Err(e) => {
            println!("ERR listen: {e}");
            return 1;
        }
    };
    let metrics = match args.metrics {
        None => None,
        Some(a) => match node.serve_metrics(a).await {
            Ok(a) => Some(a),
            Err(e) => {
                println!("ERR metrics: {e}");
                return 1;
            }
        },
    };
    let replica = node.replica();
    println!("LISTENING {addr}");

    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let app = App {
        node,
        counters,
        sets,
        replica,
        snapshot: args.snapshot,
        tls: args.tls,
        id: args.id,
        metrics,
    };
    let mut inflight = tokio::task::JoinSet::new();
    while let Some(line) = rx.recv().await {
        if line.trim() == "quit" {
            break;
        }
        while inflight.try_join_next().is_some() {}
        if let Some(rest) = line.trim().strip_prefix('@') {
            // Pipelined: `@<tag> inc|add ...` runs concurrently with the
            // next commands and answers `@<tag> OK|ERR ...` when done.
            let (tag, cmd) = rest.split_once(' ').unwrap_or((rest, ""));
            let (tag, cmd) = (tag.to_string(), cmd.to_string());
            let (counters, sets, replica) = (app.counters.clone(), app.sets.clone(), app.replica);
            inflight.spawn(async move {
                let answer = write(&counters, &sets, replica, &cmd).await;
                println!("@{tag} {answer}");
            });
            continue;
        }
        let answer = app.command(line.trim()).await;
        println!("{answer}");
    }
    // Writes still in flight are answered before the shutdown.
    while inflight.join_next().await.is_some() {}
    match app.node.shutdown().await {
        Ok(_) => {
            println!("BYE");
            0
        }
        Err(e) => {
            println!("ERR shutdown: {e}");
            1
        }
    }
}

/// `inc <key> <n>` or `add <key> <elem>`: the answer once acknowledged.
async fn write(
    counters: &Channel<String, GCounter>,
    sets: &Channel<String, OrSet<String>>,
    replica: accordant::ReplicaId,
    line: &str,
) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let r = match words.as_slice() {
        ["inc", key, n] => {
            let Ok(n) = n.parse::<u64>() else {
                return "ERR bad number".into();
            };
            counters
                .update(key.to_string(), |c| c.increment(replica, n))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        ["add", key, elem] => sets
            .update(key.to_string(), |s| s.add(replica, elem.to_string()))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        _ => Err(format!("unknown write {line:?}")),
    };
    match r {
        Ok(()) => "OK".into(),
        Err(e) => format!("ERR {e}"),
    }
}

struct App {
    node: Node,
    counters: Channel<String, GCounter>,
    sets: Channel<String, OrSet<String>>,
    replica: accordant::ReplicaId,
    snapshot: Option<PathBuf>,
    tls: Option<PathBuf>,
    id: u64,
    metrics: Option<SocketAddr>,
}

impl App {
    async fn command(&self, line: &str) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["dial", addr, id] => match (addr.parse(), id.parse::<u64>()) {
                (Ok(a), Ok(id)) => {
                    self.node.dial(a, id);
                    "OK".into()
                }
                (Err(e), _) => format!("ERR {e}"),
                (_, Err(e)) => format!("ERR {e}"),
            },
            ["inc", ..] | ["add", ..] => {
                write(&self.counters, &self.sets, self.replica, line).await
            }
            ["digest"] => {
                let roots: Vec<String> = self.node.roots().iter().map(|d| d.to_string()).collect();
                format!("DIGEST {}", roots.join("/"))
            }
            ["dump"] => {
                let mut c: Vec<String> = self.counters.read(|s| {
                    s.iter()
                        .map(|(k, v)| format!("{k}={}", v.value()))
                        .collect()
                });
                c.sort();
                let mut s: Vec<String> = self.sets.read(|s| {
                    s.iter()
                        .map(|(k, v)| {
                            let mut e: Vec<&str> = v.iter().map(String::as_str).collect();
                            e.sort_unstable();
                            format!("{k}={}", e.join(","))
                        })
                        .collect()
                });
                s.sort();
                format!("DUMP {} ; {}", c.join(" "), s.join(" "))
            }
            ["peers"] => format!("PEERS {}", self.node.peers().len()),
            ["metrics"] => match self.metrics {
                Some(a) => format!("METRICS {a}"),
                None => "METRICS none".into(),
            },
            ["divergence"] => {
                let d: Vec<String> = self
                    .node
                    .peer_stats()
                    .iter()
                    .map(|p| format!("{}={:.0}", p.peer.0, p.divergent_keys()))
                    .collect();
                format!("DIVERGENCE {}", d.join(" "))
            }
            ["reload-tls"] => match &self.tls {
                None => "ERR no --tls directory".into(),
                Some(dir) => match TlsIdentity::load(dir, self.id) {
                    Ok(identity) => match self.node.reload_tls(identity) {
                        Ok(()) => "OK".into(),
                        Err(e) => format!("ERR {e}"),
                    },
                    Err(e) => format!("ERR {e}"),
                },
            },
            ["count", key] => {
                let c = self.counters.get(&key.to_string()).unwrap_or_default();
                let mut entries: Vec<String> = c.iter().map(|(r, n)| format!("{r}={n}")).collect();
                entries.sort();
                format!("COUNT {} {}", c.value(), entries.join(" "))
            }
            ["replica"] => format!("REPLICA {} {}", self.node.replica(), self.node.generation()),
            ["flush"] => match self.node.flush() {
                Ok(()) => "OK".into(),
                Err(e) => format!("ERR {e}"),
            },
            ["snapshot"] => match &self.snapshot {
                None => "ERR no --snapshot path".into(),
                Some(p) => match self.node.snapshot(p).await {
                    Ok(info) => format!("OK {} {}", info.bytes, info.keys),
                    Err(e) => format!("ERR {e}"),
                },
            },
            ["stats"] => {
                let s = self.node.stats();
                format!(
                    "STATS sent={} received={} deltas={} dropped={} sessions={} completed={} round_trips={} connections={} refusals={} auth_failures={}",
                    s.bytes_sent,
                    s.bytes_received,
                    s.deltas_sent,
                    s.deltas_dropped,
                    s.sessions_initiated,
                    s.sessions_completed,
                    s.round_trips,
                    s.connections,
                    s.refusals,
                    s.auth_failures
                )
            }
            _ => format!("ERR unknown command {line:?}"),
        }
    }
}
