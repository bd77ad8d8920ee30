//! Disk faults on a durable node: a full disk, a read-only file system, a
//! data directory the process may not write. A write the node could not
//! store is refused with a typed error and never acknowledged (nor sent to
//! a peer); the node keeps serving reads and sync; it recovers once the
//! fault is gone, without a restart; and a restart finds exactly what was
//! acknowledged.
//!
//! The full disk is real: a small tmpfs mounted for the test and filled up.
//! A file system cannot be remounted read-only while the node holds its
//! file open for writing (the kernel answers "busy"), so the read-only case
//! is tested twice: mid-run through a redb file backend that starts
//! failing its writes with `EROFS` (the errors a remount under the node
//! would give), and at start on a tmpfs remounted read-only. The
//! permission case runs `accordant-node` as an unprivileged user through
//! `setpriv`. Mounting and switching users need root; without it those
//! tests say so and skip.

mod net_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accordant::{GCounter, ReplicaId};
use accordant_sync::net::{Channel, Node, NodeBuilder, NodeConfig, WriteError};
use accordant_sync::store::db::{DbOptions, NodeIdentity, StoreDb};
use accordant_sync::store::StorageError;

/// A tmpfs of `size` mounted for the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(tag: &str, size: &str) -> Option<Tmpfs> {
        let p = std::env::temp_dir().join(format!("accordant-fault-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&p).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&p)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIP: cannot mount a tmpfs here (not root?)");
            let _ = std::fs::remove_dir(&p);
            return None;
        }
        Some(Tmpfs(p))
    }

    fn remount(&self, mode: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {mode}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The storage fault paths, over plaintext: TLS is beside the point here
/// (and tested in net_security.rs).
fn config(id: u64) -> NodeConfig {
    NodeConfig::new(id, format!("n{id}"))
        .insecure_plaintext()
        .with_ae_interval(Duration::from_millis(200))
        .with_keepalive(Duration::from_millis(100), Duration::from_millis(1000))
        .with_backoff(Duration::from_millis(20), Duration::from_millis(100))
}

fn node(config: NodeConfig) -> (Node, Channel<String, GCounter>, ReplicaId) {
    let mut b = NodeBuilder::new(config);
    let c = b.channel::<String, GCounter>("hits").unwrap();
    let r = b.replica().unwrap();
    (b.start().expect("start"), c, r)
}

/// Fills the file system of `dir` to the last byte.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let p = dir.join("filler");
    let mut f = std::fs::File::create(&p).unwrap();
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    while f.write_all(&[0]).is_ok() {}
    let _ = f.sync_all();
    p
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(15), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes to fresh keys until one is refused; returns the acknowledged
/// count and the refusal.
async fn write_until_refused(
    c: &Channel<String, GCounter>,
    r: ReplicaId,
    tag: &str,
) -> (u64, Arc<StorageError>) {
    for i in 0..100_000u64 {
        // A fresh key each time: every write needs new pages.
        let key = format!("{tag}-{i:06}-{}", "x".repeat(200));
        match c.update(key, |v| v.increment(r, 1)).await {
            Ok(_) => {}
            Err(WriteError::Storage(e)) => return (i, e),
            Err(e) => panic!("unexpected refusal: {e}"),
        }
    }
    panic!("no write was refused")
}

fn total(c: &Channel<String, GCounter>) -> u64 {
    c.read(|s| s.iter().map(|(_, v)| v.value()).sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_keeps_serving_and_recovers() {
    let Some(fs) = Tmpfs::mount("full", "8m") else {
        return;
    };
    let data = fs.0.join("a");
    let (a, ca, ra) = node(config(1).with_data_dir(&data));
    let (b, cb, rb) = node(config(2).in_memory());
    let addr = a.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    b.dial(addr, 1);
    for i in 0..50 {
        ca.update(format!("before-{i}"), |v| v.increment(ra, 1))
            .await
            .unwrap();
    }
    let filler = fill(&fs.0);
    let (acked, refusal) = write_until_refused(&ca, ra, "full").await;
    assert!(matches!(*refusal, StorageError::DiskFull), "{refusal:?}");
    let acknowledged = 50 + acked;
    // Reads go on, and show no trace of the refused write.
    assert_eq!(total(&ca), acknowledged);
    // Sync goes on: the peer gets everything acknowledged, and nothing else.
    wait_for("the peer holds every acknowledged write", || {
        total(&cb) == acknowledged
    })
    .await;
    // A peer's write still reaches the full node's readers? It cannot be
    // stored there; the node says so by refusing more writes meanwhile.
    let _ = cb
        .update("from-b".into(), |v| v.increment(rb, 1))
        .await
        .unwrap();
    assert!(ca
        .update("still-full".into(), |v| v.increment(ra, 1))
        .await
        .is_err());
    // Space returns: writes are acknowledged again, no restart needed.
    std::fs::remove_file(filler).unwrap();
    ca.update("after".into(), |v| v.increment(ra, 1))
        .await
        .unwrap();
    wait_for("the nodes converge", || {
        ca.root_digest() == cb.root_digest()
    })
    .await;
    let expected = acknowledged + 2;
    assert_eq!(total(&ca), expected);
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
    // A restart holds exactly what was acknowledged (and joined).
    let (a2, ca2, ra2) = node(config(1).with_data_dir(&data));
    assert_eq!(ra2, ra, "same replica id");
    assert_eq!(total(&ca2), expected);
    assert!(
        ca2.get("still-full").is_none(),
        "a refused write was stored"
    );
    a2.shutdown().await.unwrap();
}

/// A redb file backend whose writes fail with an OS error while `fail`
/// holds one (`EROFS`: the file system went read-only under the node).
#[derive(Debug)]
struct Faulty {
    file: redb::backends::FileBackend,
    fail: Arc<AtomicI32>,
}

impl Faulty {
    fn check(&self) -> std::io::Result<()> {
        match self.fail.load(Ordering::SeqCst) {
            0 => Ok(()),
            errno => Err(std::io::Error::from_raw_os_error(errno)),
        }
    }
}

impl redb::StorageBackend for Faulty {
    fn len(&self) -> std::io::Result<u64> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.check()?;
        self.file.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.check()?;
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.check()?;
        self.file.write(offset, data)
    }
}

fn faulty_node(path: &Path, fail: &Arc<AtomicI32>) -> (Node, Channel<String, GCounter>, ReplicaId) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    let backend = Faulty {
        file: redb::backends::FileBackend::new(file).unwrap(),
        fail: Arc::clone(fail),
    };
    let cfg = config(1);
    let me = NodeIdentity::new(cfg.cluster.clone(), cfg.id);
    let db = StoreDb::open_with_backend(backend, &me, DbOptions::default()).unwrap();
    let mut b = NodeBuilder::new(cfg).with_database(db);
    let c = b.channel::<String, GCounter>("hits").unwrap();
    let r = b.replica().unwrap();
    (b.start().expect("start"), c, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_system_gone_read_only_refuses_writes_keeps_serving_and_recovers() {
    let dir = net_common::TempDir::new("ro");
    let path = dir.0.join("a.redb");
    let fail = Arc::new(AtomicI32::new(0));
    let (a, ca, ra) = faulty_node(&path, &fail);
    let (b, cb, _) = node(config(2).in_memory());
    let addr = a.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    b.dial(addr, 1);
    for i in 0..20 {
        ca.update(format!("k{i}"), |v| v.increment(ra, 1))
            .await
            .unwrap();
    }
    fail.store(30, Ordering::SeqCst); // EROFS
    for _ in 0..3 {
        match ca.update("refused".into(), |v| v.increment(ra, 1)).await {
            Err(WriteError::Storage(e)) => assert!(matches!(*e, StorageError::ReadOnly), "{e:?}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(total(&ca), 20, "reads go on, without the refused writes");
    assert!(ca.get("refused").is_none());
    wait_for("the peer syncs every acknowledged write", || {
        total(&cb) == 20
    })
    .await;
    assert!(
        cb.get("refused").is_none(),
        "a refused write reached a peer"
    );
    fail.store(0, Ordering::SeqCst);
    ca.update("after".into(), |v| v.increment(ra, 1))
        .await
        .unwrap();
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
    let (a2, ca2, ra2) = faulty_node(&path, &fail);
    assert_eq!(ra2, ra);
    assert_eq!(total(&ca2), 21);
    assert!(ca2.get("refused").is_none());
    a2.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_mount_keeps_the_node_down_with_a_typed_error() {
    let Some(fs) = Tmpfs::mount("ro", "16m") else {
        return;
    };
    let data = fs.0.join("a");
    let (a, ca, ra) = node(config(1).with_data_dir(&data));
    ca.update("k".into(), |v| v.increment(ra, 1)).await.unwrap();
    a.shutdown().await.unwrap();
    fs.remount("ro");
    let r = NodeBuilder::new(config(1).with_data_dir(&data)).open();
    assert!(matches!(r, Err(StorageError::ReadOnly)), "{:?}", r.err());
    fs.remount("rw");
    let (a2, ca2, _) = node(config(1).with_data_dir(&data));
    assert_eq!(total(&ca2), 1);
    a2.shutdown().await.unwrap();
}

#[test]
fn a_data_directory_the_process_may_not_write_keeps_the_node_down() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    if !root || !net_common::have("setpriv") {
        eprintln!("SKIP: needs root and setpriv to run the node as another user");
        return;
    }
    let dir = net_common::TempDir::new("perm");
    let data = dir.0.join("data");
    std::fs::create_dir_all(&data).unwrap();
    // Owned by root, 0755: the unprivileged node may read but not write.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            net_common::BIN,
        ])
        .args(["--id", "1", "--insecure-plaintext", "--data"])
        .arg(&data)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // `nobody` may not reach the test's temporary directory at all on some
    // systems; either way the open must fail, typed.
    assert!(
        stdout.contains("ERR open: permission denied"),
        "stdout: {stdout} stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "the node stays down");
    assert!(!data.join(accordant_sync::net::DB_FILE).exists());
}
