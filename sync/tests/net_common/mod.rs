//! Helpers for the tests that run `accordant-node` processes: spawn, drive
//! over stdin/stdout, kill; a ledger of acknowledged writes to check the
//! nodes against.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_accordant-node");

/// One node process.
pub(crate) struct NodeProc {
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl NodeProc {
    /// Starts `accordant-node` (behind `prefix`, e.g. `ip netns exec NS`)
    /// and waits for it to listen.
    pub(crate) fn spawn(
        prefix: &[&str],
        id: u64,
        name: &str,
        listen: &str,
        extra: &[&str],
    ) -> NodeProc {
        let (program, pre) = match prefix.split_first() {
            Some((p, rest)) => (p.to_string(), rest.iter().map(|s| s.to_string()).collect()),
            None => (BIN.to_string(), Vec::new()),
        };
        let mut cmd = Command::new(program);
        cmd.args(pre);
        if !prefix.is_empty() {
            cmd.arg(BIN);
        }
        cmd.args(["--id", &id.to_string(), "--name", name, "--listen", listen])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn accordant-node");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{name} did not start"));
        let addr = first
            .strip_prefix("LISTENING ")
            .unwrap_or_else(|| panic!("{name}: {first}"))
            .parse()
            .expect("address");
        NodeProc {
            name: name.to_string(),
            addr,
            child,
            stdin,
            lines,
        }
    }

    /// Sends a command and returns the answer line.
    pub(crate) fn cmd(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").unwrap_or_else(|e| panic!("{}: {line}: {e}", self.name));
        self.stdin.flush().expect("flush");
        let answer = self
            .lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{}: no answer to {line}", self.name));
        assert!(
            !answer.starts_with("ERR"),
            "{}: {line}: {answer}",
            self.name
        );
        answer
    }

    pub(crate) fn increment(&mut self, key: &str, n: u64, ledger: &mut Ledger) {
        assert_eq!(self.cmd(&format!("inc {key} {n}")), "OK");
        *ledger.counters.entry(key.to_string()).or_default() += n;
    }

    pub(crate) fn add(&mut self, key: &str, elem: &str, ledger: &mut Ledger) {
        assert_eq!(self.cmd(&format!("add {key} {elem}")), "OK");
        ledger.sets.insert((key.to_string(), elem.to_string()));
    }

    pub(crate) fn peers(&mut self) -> usize {
        let a = self.cmd("peers");
        a.strip_prefix("PEERS ")
            .and_then(|n| n.parse().ok())
            .expect("peers")
    }

    pub(crate) fn digest(&mut self) -> String {
        self.cmd("digest")
    }

    /// Counters and sets, parsed from `dump`.
    pub(crate) fn dump(&mut self) -> (BTreeMap<String, u64>, BTreeSet<(String, String)>) {
        let a = self.cmd("dump");
        let body = a.strip_prefix("DUMP ").expect("dump");
        let (c, s) = body.split_once(';').expect("dump sections");
        let counters = c
            .split_whitespace()
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("k=v");
                (k.to_string(), v.parse().expect("count"))
            })
            .collect();
        let mut sets = BTreeSet::new();
        for kv in s.split_whitespace() {
            let (k, es) = kv.split_once('=').expect("k=v");
            for e in es.split(',').filter(|e| !e.is_empty()) {
                sets.insert((k.to_string(), e.to_string()));
            }
        }
        (counters, sets)
    }

    /// Sends a line without waiting for an answer (pipelined writes).
    pub(crate) fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap_or_else(|e| panic!("{}: {line}: {e}", self.name));
        self.stdin.flush().expect("flush");
    }

    /// The next line the node prints, if one comes within `within`.
    pub(crate) fn recv(&mut self, within: Duration) -> Option<String> {
        self.lines.recv_timeout(within).ok()
    }

    /// SIGKILL, then every line the node printed before it died.
    pub(crate) fn kill_and_drain(&mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut out = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            out.push(l);
        }
        out
    }

    /// SIGKILL: a crash, no goodbye, no final snapshot.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Graceful: `quit`, then `BYE` and exit status 0.
    pub(crate) fn quit(&mut self) {
        writeln!(self.stdin, "quit").expect("quit");
        let bye = self.lines.recv_timeout(Duration::from_secs(20));
        assert_eq!(bye.as_deref(), Ok("BYE"), "{}", self.name);
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "{}: {status}", self.name);
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Acknowledged writes.
#[derive(Debug, Default, Clone)]
pub(crate) struct Ledger {
    pub(crate) counters: BTreeMap<String, u64>,
    pub(crate) sets: BTreeSet<(String, String)>,
}

/// Waits until every node reports the same digest; returns how long it took.
pub(crate) fn converge(nodes: &mut [&mut NodeProc], within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let ds: Vec<String> = nodes.iter_mut().map(|n| n.digest()).collect();
        if ds.iter().all(|d| *d == ds[0]) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "no convergence within {within:?}: {ds:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `f` holds.
pub(crate) fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Checks that the node holds exactly the ledger's counters and every
/// acknowledged add.
pub(crate) fn check(node: &mut NodeProc, ledger: &Ledger) {
    let (counters, sets) = node.dump();
    for (k, v) in &ledger.counters {
        assert_eq!(
            counters.get(k),
            Some(v),
            "{}: counter {k} lost increments",
            node.name
        );
    }
    for kv in &ledger.sets {
        assert!(sets.contains(kv), "{}: lost the add {kv:?}", node.name);
    }
}

/// A scratch directory, removed on drop.
pub(crate) struct TempDir(pub(crate) std::path::PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("accordant-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    pub(crate) fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Makes the cluster's CA and node certificates in `dir` with the
/// binary's own `certs` command; returns the flags that run a node with
/// them (mutual TLS, cluster `test`, members `nodes`).
pub(crate) fn make_certs(dir: &TempDir, nodes: &[u64]) -> Vec<String> {
    let certs = dir.path("certs");
    let list: Vec<String> = nodes.iter().map(u64::to_string).collect();
    let out = Command::new(BIN)
        .args([
            "certs",
            "--out",
            &certs,
            "--cluster",
            "test",
            "--nodes",
            &list.join(","),
        ])
        .output()
        .expect("run accordant-node certs");
    assert!(out.status.success(), "certs: {out:?}");
    vec![
        "--tls".into(),
        certs,
        "--cluster".into(),
        "test".into(),
        "--members".into(),
        list.join(","),
    ]
}

/// Whether a program can be run.
pub(crate) fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

pub(crate) fn exists(p: &str) -> bool {
    Path::new(p).exists()
}
