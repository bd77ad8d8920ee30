//! What a read under a session token costs when the data is already
//! there: `Channel::read_after` against `Channel::get` on the same key,
//! alternated in one run, medians with the spread; and the tokens' sizes.
//!
//! ```text
//! cargo run --release -p accordant-sync --example token_read
//! ```

use std::convert::Infallible;
use std::time::{Duration, Instant};

use accordant::{MvRegister, OrSet, ReplicaId};
use accordant_sync::net::certs::ClusterCa;
use accordant_sync::net::{NodeBuilder, NodeConfig, TlsIdentity};
use accordant_sync::token::SessionToken;

fn stats(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!(
        "median {:.2} µs (p10 {:.2}, p90 {:.2})",
        p(0.5),
        p(0.1),
        p(0.9)
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ca = ClusterCa::new("bench").unwrap();
        let cert = ca.issue(1).unwrap();
        let tls = TlsIdentity::from_pem(ca.cert_pem(), &cert.cert_pem, &cert.key_pem).unwrap();
        let mut b = NodeBuilder::new(
            NodeConfig::new(1, "eu")
                .in_memory()
                .with_cluster("bench", [1])
                .with_tls(tls),
        );
        let reg = b.channel::<String, MvRegister<String>>("profiles").unwrap();
        let set = b.channel::<String, OrSet<u32>>("carts").unwrap();
        let node = b.start().unwrap();
        // Three regions' writes (their replica ids written here directly).
        let regions: Vec<ReplicaId> = (1..=3).map(ReplicaId::from_u128).collect();
        let (mut reg_token, mut set_token) = (SessionToken::new(), SessionToken::new());
        for (i, r) in regions.iter().enumerate() {
            let _ = reg
                .update_after("alice".into(), &mut reg_token, Duration::ZERO, |v| {
                    v.write(*r, format!("address {i}"))
                })
                .await
                .unwrap();
            for e in 0..100u32 {
                let _ = set
                    .update_after("cart".into(), &mut set_token, Duration::ZERO, |s| {
                        s.add(*r, e * 3 + i as u32)
                    })
                    .await
                    .unwrap();
            }
        }
        for e in (0..300u32).step_by(7) {
            let _ = set
                .update_after("cart".into(), &mut set_token, Duration::ZERO, |s| {
                    Ok::<_, Infallible>(s.remove(&e))
                })
                .await
                .unwrap();
        }
        println!(
            "tokens: MV register written in 3 regions: {} bytes ({} chars of base64url); \
             OR-set of 300 adds in 3 regions and 43 removes: {} bytes ({} chars)",
            reg_token.to_bytes().len(),
            reg_token.to_text().len(),
            set_token.to_bytes().len(),
            set_token.to_text().len()
        );
        let (cart, alice) = ("cart".to_string(), "alice".to_string());
        const N: usize = 20_000;
        for (name, is_set) in [("MV register", false), ("OR-set of 257", true)] {
            let (mut plain, mut tokened) = (Vec::with_capacity(N), Vec::with_capacity(N));
            for _ in 0..N {
                let t = Instant::now();
                if is_set {
                    std::hint::black_box(set.get(&cart));
                } else {
                    std::hint::black_box(reg.get(&alice));
                }
                plain.push(t.elapsed().as_secs_f64() * 1e6);
                let t = Instant::now();
                if is_set {
                    let v = set.read_after(&cart, &mut set_token, Duration::ZERO);
                    std::hint::black_box(v.await.unwrap());
                } else {
                    let v = reg.read_after(&alice, &mut reg_token, Duration::ZERO);
                    std::hint::black_box(v.await.unwrap());
                }
                tokened.push(t.elapsed().as_secs_f64() * 1e6);
            }
            println!(
                "{name}: get {}; read_after, covered {}",
                stats(plain),
                stats(tokened)
            );
        }
        node.shutdown().await.unwrap();
    });
}
