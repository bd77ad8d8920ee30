//! Alice writes her address in EU and reads it at once in US-East with
//! her session token: she sees the new address (US-East waits the lag,
//! pulling the key from EU), never the old one; behind a partition the
//! read fails with how far behind the region is, instead of answering
//! stale.

use std::time::Duration;

use accordant_sync::net::proxy::Proxy;
use accordant_sync::net::SessionError;
use accordant_sync::token::SessionToken;
use tokio::time::Instant;

use super::scenario_mesh::MeshRegion;

/// What the scenario measured.
pub(crate) struct TokenOutcome {
    pub(crate) reads: usize,
    pub(crate) stale_without_token: usize,
    pub(crate) stale_with_token: usize,
    pub(crate) waits_ms: Vec<f64>,
    pub(crate) token_bytes: usize,
    pub(crate) header_chars: usize,
    pub(crate) partitioned: String,
}

fn shown(v: Option<accordant::MvRegister<String>>) -> Vec<String> {
    v.map(|r| r.values().cloned().collect()).unwrap_or_default()
}

/// Runs the scenario on `eu` and `us` (`proxy` cuts their link at the end).
pub(crate) async fn run(
    proxy: &Proxy,
    eu: &MeshRegion,
    us: &MeshRegion,
) -> Result<TokenOutcome, Box<dyn std::error::Error>> {
    let key = "alice".to_string();
    let mut out = TokenOutcome {
        reads: 0,
        stale_without_token: 0,
        stale_with_token: 0,
        waits_ms: Vec::new(),
        token_bytes: 0,
        header_chars: 0,
        partitioned: String::new(),
    };
    let mut token = SessionToken::new();
    for n in 0..20 {
        let address = format!("{} Rue de la Paix", n + 1);
        let eu_id = eu.id;
        let a = address.clone();
        eu.profiles
            .update_after(key.clone(), &mut token, Duration::ZERO, |r| {
                r.write(eu_id, a)
            })
            .await?;
        // The token travels as a header; US-East reads at once.
        let header = token.to_text();
        out.token_bytes = token.to_bytes().len();
        out.header_chars = header.len();
        let mut carried: SessionToken = header.parse()?;
        if shown(us.profiles.get(&key)) != [address.clone()] {
            out.stale_without_token += 1;
        }
        let t = Instant::now();
        let v = us
            .profiles
            .read_after(&key, &mut carried, Duration::from_secs(5))
            .await?;
        out.waits_ms.push(t.elapsed().as_secs_f64() * 1e3);
        out.reads += 1;
        if shown(v) != [address] {
            out.stale_with_token += 1;
        }
        token = carried;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // Behind a partition: a typed refusal, not a stale answer.
    proxy.cut("eu", "us-east");
    proxy.cut("ap-south", "us-east");
    let eu_id = eu.id;
    eu.profiles
        .update_after(key.clone(), &mut token, Duration::ZERO, |r| {
            r.write(eu_id, "moved during the partition".into())
        })
        .await?;
    match us
        .profiles
        .read_after(&key, &mut token, Duration::from_millis(500))
        .await
    {
        Err(SessionError::NotYetVisible { lag, waited }) => {
            out.partitioned = format!("not yet visible after {} ms: {lag}", waited.as_millis());
        }
        Ok(v) => {
            out.stale_with_token += usize::from(shown(v) != ["moved during the partition"]);
            out.partitioned = "answered (the write crossed before the cut)".into();
        }
        Err(e) => return Err(e.into()),
    }
    proxy.heal_all();
    Ok(out)
}
