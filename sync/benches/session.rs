//! CPU of an anti-entropy [`Session`] per side, on the `convergence`
//! example's data: 256-byte LWW registers diverged on both sides (the same
//! `D` keys written concurrently), `N` in 10^4, 10^5, 10^6 and `D/N` in
//! 10^-4, 10^-3, 10^-2, 10^-1.
//!
//! ```text
//! cargo bench -p accordant-sync --bench session
//! cargo bench -p accordant-sync --bench session -- 'session/B/N=100000'
//! ```
//!
//! `session/A/N=…/D=…` is the time spent inside the initiator's calls
//! (`Session::initiate` and `Session::handle`), `session/B/…` inside the
//! responder's (`Session::respond` and `Session::handle`), for one whole
//! session that ends with both sides verified; message delivery is
//! excluded. Every iteration runs on a fresh copy of the diverged pair (the
//! copy is not timed), so each sample is one session; the `report` example
//! measures the same thing over its whole matrix, with the baselines.
//!
//! `session_stream/{plain,tls}/N=10000/D=…` prices the transport: the same
//! session, both sides driven by [`sync_stream`] over an in-memory duplex,
//! in plaintext or inside mutual TLS 1.3 (rustls, *ring*, the node's
//! settings), wall time for the whole session; the TLS variant opens a new
//! connection per session, so its time and bytes include one handshake (a
//! node pays it once per connection, not per session).
//! `session_stream/tls_handshake` is one mutual TLS 1.3 handshake (ECDSA
//! P-256 certificates of a cluster CA, both chains verified). The bytes
//! each variant puts on the wire are printed once before it runs.
//!
//! ```text
//! cargo bench -p accordant-sync --bench session -- session_stream
//! ```

#[allow(dead_code)]
#[path = "../examples/common/model.rs"]
mod model;

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use accordant_sync::net::certs::ClusterCa;
use accordant_sync::net::{node_dns_name, sync_stream};
use accordant_sync::session::{Session, SessionConfig};
use accordant_sync::store::{Store, StoreValue};
use criterion::{BenchmarkId, Criterion, SamplingMode};
use model::{build_base, diverge, LwwModel};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const SIZES: [u64; 3] = [10_000, 100_000, 1_000_000];
const RATIOS: [f64; 4] = [1e-4, 1e-3, 1e-2, 1e-1];

/// Runs a session between `a` (initiating) and `b`; returns the time spent
/// inside each side's calls.
fn timed_sync<V: StoreValue>(a: &mut Store<u64, V>, b: &mut Store<u64, V>) -> [Duration; 2] {
    let config = SessionConfig::default();
    let mut cpu = [Duration::ZERO; 2];
    let t = Instant::now();
    let mut sa = Session::initiate(a, config);
    cpu[0] += t.elapsed();
    let t = Instant::now();
    let mut sb = Session::respond(config);
    cpu[1] += t.elapsed();
    while !(sa.is_done() && sb.is_done()) {
        let mut progressed = false;
        while let Some(m) = sa.poll_transmit() {
            let t = Instant::now();
            sb.handle(b, &m).expect("B failed");
            cpu[1] += t.elapsed();
            progressed = true;
        }
        while let Some(m) = sb.poll_transmit() {
            let t = Instant::now();
            sa.handle(a, &m).expect("A failed");
            cpu[0] += t.elapsed();
            progressed = true;
        }
        assert!(progressed, "the session stalled");
    }
    cpu
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    let lww = LwwModel { bytes: 256 };
    let mut g = c.benchmark_group("session");
    g.sampling_mode(SamplingMode::Flat);
    for n in SIZES {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let base = build_base(&lww, n, &mut rng);
        for ratio in RATIOS {
            let d = ((n as f64 * ratio).round() as u64).max(1);
            let pair = diverge(&lww, &base, d, true, &mut rng.clone());
            for (side, name) in ["A", "B"].into_iter().enumerate() {
                let id = BenchmarkId::new(name, format!("N={n}/D={d}"));
                g.bench_function(id, |bench| {
                    bench.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let (mut a, mut b) = (pair.a.clone(), pair.b.clone());
                            total += timed_sync(&mut a, &mut b)[side];
                        }
                        total
                    })
                });
            }
        }
    }
    g.finish();
    bench_stream(&mut c);
    c.final_summary();
}

/// A stream that counts the bytes written through it.
struct Counted<S> {
    inner: S,
    written: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.written.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Mutual TLS 1.3 configurations as a node builds them: a cluster CA,
/// certificates for nodes 1 (server) and 2 (client).
fn tls_pair() -> (TlsAcceptor, TlsConnector) {
    let ca = ClusterCa::new("bench").expect("ca");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).expect("ca pem"))
        .expect("root");
    let roots = Arc::new(roots);
    let material = |id: u64| {
        let c = ca.issue(id).expect("issue");
        (
            vec![CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).expect("cert")],
            PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).expect("key"),
        )
    };
    let (chain1, key1) = material(1);
    let (chain2, key2) = material(2);
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
            .build()
            .expect("verifier");
    let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain1, key1)
        .expect("server");
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain2, key2)
        .expect("client");
    (
        TlsAcceptor::from(Arc::new(server)),
        TlsConnector::from(Arc::new(client)),
    )
}

/// One session between `a` and `b` over a duplex, in TLS or not; returns
/// the bytes written by both sides (TLS records and handshake included).
async fn session_over_stream(
    a: &mut Store<u64, accordant::LwwRegister<Vec<u8>>>,
    b: &mut Store<u64, accordant::LwwRegister<Vec<u8>>>,
    tls: Option<&(TlsAcceptor, TlsConnector)>,
) -> u64 {
    let (x, y) = tokio::io::duplex(64 << 10);
    let written = Arc::new(AtomicU64::new(0));
    let mut x = Counted {
        inner: x,
        written: Arc::clone(&written),
    };
    let mut y = Counted {
        inner: y,
        written: Arc::clone(&written),
    };
    let (cfg, wait) = (SessionConfig::default(), Duration::from_secs(30));
    match tls {
        None => {
            let (ra, rb) = tokio::join!(
                sync_stream(&mut x, a, true, cfg, wait),
                sync_stream(&mut y, b, false, cfg, wait)
            );
            ra.expect("A");
            rb.expect("B");
        }
        Some((acceptor, connector)) => {
            let name = ServerName::try_from(node_dns_name("bench", 1)).expect("name");
            let (cx, sx) = tokio::join!(connector.connect(name, x), acceptor.accept(y));
            let (mut cx, mut sx) = (cx.expect("client"), sx.expect("server"));
            let (ra, rb) = tokio::join!(
                sync_stream(&mut cx, a, true, cfg, wait),
                sync_stream(&mut sx, b, false, cfg, wait)
            );
            ra.expect("A");
            rb.expect("B");
        }
    }
    written.load(Ordering::Relaxed)
}

fn bench_stream(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let tls = tls_pair();
    let lww = LwwModel { bytes: 256 };
    let mut g = c.benchmark_group("session_stream");
    g.sampling_mode(SamplingMode::Flat);
    let n = 10_000;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let base = build_base(&lww, n, &mut rng);
    for d in [10u64, 1000] {
        let pair = diverge(&lww, &base, d, true, &mut rng.clone());
        for (name, t) in [("plain", None), ("tls", Some(&tls))] {
            let (mut a, mut b) = (pair.a.clone(), pair.b.clone());
            let bytes = rt.block_on(session_over_stream(&mut a, &mut b, t));
            eprintln!("session_stream/{name}/N={n}/D={d}: {bytes} bytes on the wire");
            let id = BenchmarkId::new(name, format!("N={n}/D={d}"));
            g.bench_function(id, |bench| {
                bench.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (mut a, mut b) = (pair.a.clone(), pair.b.clone());
                        let t0 = Instant::now();
                        rt.block_on(session_over_stream(&mut a, &mut b, t));
                        total += t0.elapsed();
                    }
                    total
                })
            });
        }
    }
    g.bench_function("tls_handshake", |bench| {
        bench.iter(|| {
            rt.block_on(async {
                let (x, y) = tokio::io::duplex(16 << 10);
                let name = ServerName::try_from(node_dns_name("bench", 1)).expect("name");
                let (cx, sx) = tokio::join!(tls.1.connect(name, x), tls.0.accept(y));
                cx.expect("client");
                sx.expect("server");
            })
        })
    });
    g.finish();
}
