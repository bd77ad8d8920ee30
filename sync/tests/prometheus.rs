//! A real Prometheus server scrapes a three-node cluster.
//!
//! Three `accordant-node` processes (mutual TLS between them, as by
//! default; durable stores) serve `/metrics` over plain HTTP on 127.0.0.1;
//! the Debian `prometheus` binary (installed by `.ci/run`) is started with
//! a generated configuration that scrapes them every 500 ms, and the test
//! asks its HTTP API (`/api/v1/query`) for the series an operator would
//! chart. It skips, saying so, only where no `prometheus` binary exists
//! (`PROMETHEUS=/path` names one elsewhere than the `PATH`).

mod net_common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use net_common::{converge, make_certs, wait_until, Ledger, NodeProc, TempDir};
use serde_json::Value;

/// The Prometheus binary, if there is one.
fn prometheus_binary() -> Option<String> {
    let candidates = [
        std::env::var("PROMETHEUS").ok(),
        Some("prometheus".to_string()),
        Some("/usr/bin/prometheus".to_string()),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// The Prometheus process, killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// One GET over HTTP/1.0 (the server closes after the answer); the status
/// code and the body.
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

/// Percent-encodes a PromQL query for a URL.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The result vector of an instant query: `(labels, value)` per series.
fn query(p: &Prometheus, q: &str) -> Vec<(Value, f64)> {
    let Ok((200, body)) = http_get(p.addr, &format!("/api/v1/query?query={}", encode(q))) else {
        return Vec::new();
    };
    let v: Value = serde_json::from_str(&body).expect("Prometheus answers JSON");
    assert_eq!(v["status"], "success", "{q}: {body}");
    v["data"]["result"]
        .as_array()
        .expect("a vector")
        .iter()
        .map(|s| {
            let value = s["value"][1]
                .as_str()
                .and_then(|x| x.parse().ok())
                .expect("a sample value");
            (s["metric"].clone(), value)
        })
        .collect()
}

fn metrics_addr(node: &mut NodeProc) -> SocketAddr {
    node.cmd("metrics")
        .strip_prefix("METRICS ")
        .and_then(|a| a.parse().ok())
        .expect("the node serves metrics")
}

#[test]
fn a_real_prometheus_scrapes_three_nodes() {
    let Some(bin) = prometheus_binary() else {
        eprintln!(
            "SKIPPED: no prometheus binary (apt-get install prometheus, or PROMETHEUS=/path); \
             .ci/run installs it"
        );
        return;
    };
    let dir = TempDir::new("prometheus");
    let tls = make_certs(&dir, &[1, 2, 3]);
    let mut nodes: Vec<NodeProc> = ["eu", "us", "ap"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let data = dir.path(&format!("data-{name}"));
            let mut extra: Vec<&str> = tls.iter().map(String::as_str).collect();
            extra.extend([
                "--data",
                &data,
                "--metrics",
                "127.0.0.1:0",
                "--divergence-ms",
                "300",
            ]);
            NodeProc::spawn(&[], i as u64 + 1, name, "127.0.0.1:0", &extra)
        })
        .collect();
    let (a1, a2) = (nodes[0].addr, nodes[1].addr);
    nodes[1].cmd(&format!("dial {a1} 1"));
    nodes[2].cmd(&format!("dial {a1} 1"));
    nodes[2].cmd(&format!("dial {a2} 2"));
    for n in nodes.iter_mut() {
        wait_until("full mesh", Duration::from_secs(20), || n.peers() == 2);
    }
    let mut ledger = Ledger::default();
    let writes = 30u64;
    for i in 0..writes {
        let n = &mut nodes[(i % 3) as usize];
        n.increment(&format!("k{}", i % 7), 1, &mut ledger);
    }
    {
        let mut refs: Vec<&mut NodeProc> = nodes.iter_mut().collect();
        converge(&mut refs, Duration::from_secs(20));
    }

    // The endpoint itself: OpenMetrics text, 404 elsewhere.
    let targets: Vec<SocketAddr> = nodes.iter_mut().map(metrics_addr).collect();
    let (status, text) = http_get(targets[0], "/metrics").expect("scrape by hand");
    assert_eq!(status, 200);
    assert!(
        text.contains("accordant_peer_up{peer=\"2\",peer_name=\"us\"} 1"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"));
    assert_eq!(http_get(targets[0], "/nope").expect("404").0, 404);

    // Prometheus, scraping all three every 500 ms.
    let web = free_port();
    let list: Vec<String> = targets.iter().map(|a| format!("'{a}'")).collect();
    let config = format!(
        "global:\n  scrape_interval: 500ms\n  evaluation_interval: 500ms\n\
         scrape_configs:\n  - job_name: accordant\n    static_configs:\n      - targets: [{}]\n",
        list.join(", ")
    );
    let config_path = dir.path("prometheus.yml");
    std::fs::write(&config_path, config).expect("write the config");
    let child = Command::new(&bin)
        .arg(format!("--config.file={config_path}"))
        .arg(format!("--storage.tsdb.path={}", dir.path("tsdb")))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let prom = Prometheus { child, addr: web };

    let start = Instant::now();
    wait_until(
        "Prometheus scraped all three",
        Duration::from_secs(60),
        || {
            let up = query(&prom, "up{job=\"accordant\"} == 1");
            let ours = query(&prom, "accordant_peer_up");
            up.len() == 3 && ours.len() == 6
        },
    );
    eprintln!("all three targets up after {:?}", start.elapsed());

    // Every link up, from both ends: six series of 1.
    let up = query(&prom, "accordant_peer_up");
    assert!(up.iter().all(|(_, v)| *v == 1.0), "{up:?}");
    // The writes, counted once each.
    let w = query(&prom, "sum(accordant_writes_total)");
    assert_eq!(w.first().map(|s| s.1), Some(writes as f64), "{w:?}");
    // Deltas travelled, by kind, and acks came back.
    let deltas = query(
        &prom,
        "sum(accordant_peer_sent_bytes_total{kind=\"delta\"})",
    );
    assert!(deltas.first().is_some_and(|s| s.1 > 0.0), "{deltas:?}");
    wait_until("acks counted", Duration::from_secs(10), || {
        query(
            &prom,
            "sum(accordant_peer_received_messages_total{kind=\"ack\"})",
        )
        .first()
        .is_some_and(|s| s.1 > 0.0)
    });
    // Sessions ran (each dial starts one per channel) and completed.
    let done = query(
        &prom,
        "sum(accordant_sessions_ended_total{outcome=\"completed\"})",
    );
    assert!(done.first().is_some_and(|s| s.1 >= 4.0), "{done:?}");
    let rt = query(&prom, "sum(accordant_session_round_trips_count)");
    assert!(rt.first().is_some_and(|s| s.1 >= 1.0), "{rt:?}");
    // Durable commits measured, and under 10 s each.
    let commits = query(&prom, "sum(accordant_commit_seconds_count)");
    assert!(commits.first().is_some_and(|s| s.1 >= 1.0), "{commits:?}");
    let slow = query(
        &prom,
        "sum(accordant_commit_seconds_count) - sum(accordant_commit_seconds_bucket{le=\"10.0\"})",
    );
    assert_eq!(slow.first().map(|s| s.1), Some(0.0), "{slow:?}");
    // Converged: every divergence estimate (peer × channel, both ends) is
    // 0 once the probes after the convergence are in.
    wait_until("divergence gauges at 0", Duration::from_secs(20), || {
        let d = query(&prom, "accordant_divergence_keys");
        d.len() == 12 && d.iter().all(|(_, v)| *v == 0.0)
    });
    // Nothing lagging, nothing refused, nothing dropped.
    wait_until("lag back to 0", Duration::from_secs(10), || {
        let lag = query(&prom, "accordant_replication_lag_seconds");
        lag.len() == 6 && lag.iter().all(|(_, v)| *v == 0.0)
    });
    let refused = query(&prom, "sum(accordant_refused_total)");
    assert_eq!(
        refused.first().map(|s| s.1),
        Some(0.0),
        "{:?}",
        query(&prom, "accordant_refused_total > 0")
    );
    let keys = query(&prom, "accordant_keys{channel=\"counters\"}");
    assert!(
        keys.len() == 3 && keys.iter().all(|(_, v)| *v == 7.0),
        "{keys:?}"
    );

    for n in nodes.iter_mut() {
        n.quit();
    }
}
