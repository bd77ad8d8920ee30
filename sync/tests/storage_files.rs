//! Files that say whose they are: a node refuses another node's or another
//! cluster's database, a store of another type, a corrupt file, and a
//! backup that is foreign or lacks a store, each with a typed error and
//! never as an empty store; a corrupt file can be replaced by a resync
//! from the peers (a new replica id); temporary files a crash left behind
//! are removed.

use std::time::{Duration, Instant};

use accordant::{GCounter, ReplicaId};
use accordant_sync::net::{Channel, Node, NodeBuilder, NodeConfig, DB_FILE};
use accordant_sync::store::StorageError;

struct Dir(std::path::PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("accordant-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(id: u64, dir: &std::path::Path) -> NodeConfig {
    NodeConfig::new(id, format!("n{id}"))
        .insecure_plaintext()
        .with_data_dir(dir)
        .with_ae_interval(Duration::from_millis(200))
        .with_keepalive(Duration::from_millis(100), Duration::from_millis(1000))
        .with_backoff(Duration::from_millis(20), Duration::from_millis(100))
}

fn start(config: NodeConfig) -> (Node, Channel<String, GCounter>, ReplicaId) {
    let mut b = NodeBuilder::new(config);
    let c = b.channel::<String, GCounter>("hits").unwrap();
    let r = b.replica().unwrap();
    (b.start().expect("start"), c, r)
}

fn total(c: &Channel<String, GCounter>) -> u64 {
    c.read(|s| s.iter().map(|(_, v)| v.value()).sum())
}

#[tokio::test]
async fn foreign_files_and_types_are_refused() {
    let d = Dir::new("foreign");
    let (a, c, r) = start(config(1, &d.0));
    c.update("k".into(), |v| v.increment(r, 3)).await.unwrap();
    a.shutdown().await.unwrap();
    // Another node's file.
    let e = NodeBuilder::new(config(2, &d.0)).open().err();
    assert!(
        matches!(e, Some(StorageError::ForeignFile { field: "node", .. })),
        "{e:?}"
    );
    // Another cluster's.
    let e = NodeBuilder::new(config(1, &d.0).with_cluster("staging", [1]))
        .open()
        .err();
    assert!(
        matches!(
            e,
            Some(StorageError::ForeignFile {
                field: "cluster",
                ..
            })
        ),
        "{e:?}"
    );
    // The store under another type.
    let mut b = NodeBuilder::new(config(1, &d.0));
    let e = b.channel::<String, accordant::PNCounter>("hits").err();
    assert!(
        matches!(e, Some(StorageError::TypeMismatch { .. })),
        "{e:?}"
    );
    drop(b);
    // And the right one still opens, whole.
    let (a, c, _) = start(config(1, &d.0));
    assert_eq!(total(&c), 3);
    a.shutdown().await.unwrap();
    // No data directory and no explicit in-memory choice: refused.
    let mut b = NodeBuilder::new(NodeConfig::new(1, "x"));
    assert!(matches!(
        b.channel::<String, GCounter>("hits"),
        Err(StorageError::NoDataDir)
    ));
}

#[tokio::test]
async fn backups_are_checked_whole_and_imported_under_a_new_replica_id() {
    let d = Dir::new("backup");
    let (a, c, r) = start(config(1, &d.0.join("a")));
    c.update("k".into(), |v| v.increment(r, 5)).await.unwrap();
    let backup = d.0.join("a.backup");
    a.snapshot(&backup).await.unwrap();
    a.shutdown().await.unwrap();
    // Node 2 may not import node 1's backup.
    let e = NodeBuilder::new(config(2, &d.0.join("b")))
        .restore(&backup)
        .err();
    assert!(
        matches!(e, Some(StorageError::ForeignFile { field: "node", .. })),
        "{e:?}"
    );
    // A backup lacking a store the node has is an error, not an empty store.
    let mut b = NodeBuilder::new(config(1, &d.0.join("a2")))
        .restore(&backup)
        .unwrap();
    let _ = b.channel::<String, GCounter>("hits").unwrap();
    let e = b.channel::<String, GCounter>("other").err();
    assert!(
        matches!(e, Some(StorageError::MissingSection(ref n)) if n == "other"),
        "{e:?}"
    );
    drop(b);
    // Imported into a fresh directory: the data, under a new replica id.
    let mut b = NodeBuilder::new(config(1, &d.0.join("a3")))
        .restore(&backup)
        .unwrap();
    let c3 = b.channel::<String, GCounter>("hits").unwrap();
    let r3 = b.replica().unwrap();
    let a3 = b.start().expect("start");
    assert_ne!(r3, r, "a restored backup never writes under the old id");
    assert_eq!(a3.generation(), 1);
    assert_eq!(total(&c3), 5);
    a3.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_file_keeps_the_node_down_unless_it_resyncs_from_peers() {
    let d = Dir::new("corrupt");
    let (a, ca, ra) = start(config(1, &d.0.join("a")));
    let (b, cb, _) = start(config(2, &d.0.join("b")));
    let addr = b.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    a.dial(addr, 2);
    for i in 0..30 {
        ca.update(format!("k{i}"), |v| v.increment(ra, 1))
            .await
            .unwrap();
    }
    let start_wait = Instant::now();
    while total(&cb) != 30 {
        assert!(
            start_wait.elapsed() < Duration::from_secs(10),
            "replication"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.shutdown().await.unwrap();
    // Damage the file's header.
    let path = d.0.join("a").join(DB_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    for b in bytes.iter_mut().take(64) {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let e = NodeBuilder::new(config(1, &d.0.join("a"))).open().err();
    assert!(
        matches!(
            e,
            Some(StorageError::Corrupt(_) | StorageError::UnsupportedVersion(_))
        ),
        "{e:?}"
    );
    // With the explicit flag: the damaged file is kept aside, the node
    // starts empty under a new replica id and pulls everything back.
    let (a2, ca2, ra2) = start(config(1, &d.0.join("a")).resync_from_peers());
    assert_ne!(ra2, ra);
    assert_eq!(total(&ca2), 0);
    a2.dial(addr, 2);
    let start_wait = Instant::now();
    while total(&ca2) != 30 {
        assert!(start_wait.elapsed() < Duration::from_secs(10), "resync");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let aside = std::fs::read_dir(d.0.join("a"))
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains(".damaged-"));
    assert!(aside, "the damaged file is kept for inspection");
    a2.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn temporary_files_a_crash_left_are_removed() {
    let d = Dir::new("stale");
    std::fs::create_dir_all(&d.0).unwrap();
    let stale = d.0.join(".a.backup.tmp-4242-0");
    std::fs::write(&stale, b"half a backup").unwrap();
    let (a, _, _) = start(config(1, &d.0));
    assert!(!stale.exists());
    a.shutdown().await.unwrap();
}
