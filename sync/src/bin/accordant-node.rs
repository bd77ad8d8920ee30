//! `accordant-node`: one replica as an OS process, driven line by line on
//! standard input. The multi-process and network-namespace tests run
//! several of them through the delaying proxy.
//!
//! ```text
//! accordant-node certs --out DIR --cluster NAME --nodes 1,2,3
//! accordant-node --id 1 --name eu --listen 127.0.0.1:0 --tls DIR [--cluster NAME]
//!                [--members 1,2,3] [--snapshot FILE [--restore]]
//!                [--ae-ms 1000] [--idle-ms 1500] [--ping-ms 300] [--handshake-ms 1000]
//!                [--backoff-max-ms 500]
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
//! `sets` (`Store<String, OrSet<String>>`), and writes under a fresh replica
//! id every time it starts (see `accordant_sync::snapshot`). It prints
//! `LISTENING <addr>` once ready, then answers each command with one line:
//!
//! | command | answer |
//! |---|---|
//! | `dial <addr> <id>` | `OK` (keeps reconnecting with backoff; the peer must authenticate as node `<id>`) |
//! | `inc <key> <n>` | `OK` once applied: the increment is acknowledged |
//! | `add <key> <elem>` | `OK` once applied |
//! | `digest` | `DIGEST <hex>`: both channels' root digests |
//! | `dump` | `DUMP <key>=<n> ... ; <key>=<e>,<e> ...` |
//! | `peers` | `PEERS <n>` connected peers |
//! | `snapshot` | `OK <bytes> <keys>` once the file is on disk |
//! | `stats` | `STATS k=v ...` |
//! | `reload-tls` | `OK` once the CA bundle and the node's certificate and key are reloaded from `--tls DIR` (new connections use them) |
//! | `quit` (or end of input) | `BYE` after a graceful shutdown |
//!
//! Errors answer `ERR <why>`.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use accordant::{GCounter, OrSet};
use accordant_sync::net::{certs, Channel, Node, NodeBuilder, NodeConfig, TlsIdentity};
use accordant_sync::snapshot::new_incarnation_id;

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
    ae: Duration,
    idle: Duration,
    ping: Duration,
    handshake: Duration,
    backoff_max: Duration,
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
        ae: Duration::from_millis(1000),
        idle: Duration::from_millis(1500),
        ping: Duration::from_millis(300),
        handshake: Duration::from_millis(1000),
        backoff_max: Duration::from_millis(500),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--restore" {
            a.restore = true;
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
            "--ae-ms" => a.ae = ms()?,
            "--idle-ms" => a.idle = ms()?,
            "--ping-ms" => a.ping = ms()?,
            "--handshake-ms" => a.handshake = ms()?,
            "--backoff-max-ms" => a.backoff_max = ms()?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.id == 0 {
        return Err("--id is required (and not 0)".into());
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
        .with_backoff(Duration::from_millis(50), args.backoff_max);
    let replica = new_incarnation_id(&args.name);
    let config = config.with_replica(replica);
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
    let mut builder = NodeBuilder::new(config);
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
            println!("ERR restore: {e}");
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
    };
    while let Some(line) = rx.recv().await {
        if line.trim() == "quit" {
            break;
        }
        let answer = app.command(line.trim()).await;
        println!("{answer}");
    }
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

struct App {
    node: Node,
    counters: Channel<String, GCounter>,
    sets: Channel<String, OrSet<String>>,
    replica: accordant::ReplicaId,
    snapshot: Option<PathBuf>,
    tls: Option<PathBuf>,
    id: u64,
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
            ["inc", key, n] => {
                let Ok(n) = n.parse::<u64>() else {
                    return "ERR bad number".into();
                };
                match self
                    .counters
                    .update(key.to_string(), |c| c.increment(self.replica, n))
                {
                    Ok(_) => "OK".into(),
                    Err(e) => format!("ERR {e}"),
                }
            }
            ["add", key, elem] => match self
                .sets
                .update(key.to_string(), |s| s.add(self.replica, elem.to_string()))
            {
                Ok(_) => "OK".into(),
                Err(e) => format!("ERR {e}"),
            },
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
