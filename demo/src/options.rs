//! The demo's command line: its options and their parsing.

use super::*;

pub(crate) const HELP: &str = "\
active-active: three regions on loopback TCP, a split brain, a heal.

options:
  --regions LIST      comma-separated regions (default eu,us-east,ap-south;
                      also us-west, sa-east, ap-northeast, or any name)
  --duration SECS     how long users write (default 20)
  --rate N            writes per second per region (default 40)
  --partition SECS    how long the partition lasts; 0 for none (default 7)
  --partition-at SECS when it starts (default 5)
  --isolate NAME      the region cut off (default: the last one)
  --seed N            seed of the simulated users (default 7)
  --deltas push|acked how writes travel while linked: `push` offers each
                      write's delta once (default), `acked` runs the
                      delta-interval replicator with acks, BP and RR
  --insecure-plaintext  no TLS (for cost comparisons only: anyone who
                      reaches a port could read and write)
  --data DIR          keep each region's database under DIR/<region>
                      (default: a fresh directory under the system's
                      temporary directory, removed at the end)
  --price-per-gb USD  price of cross-region transfer (default 0.02, the seed
                      article's figure): the tables and the summary price
                      the bytes sent, per heal and per month at this rate
  --quiet             no progress line
  --log LEVEL         log the nodes' events to stderr through `tracing`
                      (error, warn, info, debug or trace; default: none)
";

pub(crate) struct Options {
    pub(crate) regions: Vec<String>,
    pub(crate) duration: f64,
    pub(crate) rate: f64,
    pub(crate) partition: f64,
    pub(crate) partition_at: f64,
    pub(crate) isolate: Option<String>,
    pub(crate) seed: u64,
    pub(crate) acked: bool,
    pub(crate) plaintext: bool,
    pub(crate) quiet: bool,
    pub(crate) log: Option<tracing::Level>,
    pub(crate) data: Option<std::path::PathBuf>,
    pub(crate) price: Price,
}

pub(crate) fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        regions: vec!["eu".into(), "us-east".into(), "ap-south".into()],
        duration: 20.0,
        rate: 40.0,
        partition: 7.0,
        partition_at: 5.0,
        isolate: None,
        seed: 7,
        acked: false,
        plaintext: false,
        quiet: false,
        log: None,
        data: None,
        price: Price {
            per_gb: Price::DEFAULT_PER_GB,
        },
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<f64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--help" | "-h" => return Err(String::new()),
            "--quiet" => o.quiet = true,
            "--price-per-gb" => {
                o.price.per_gb = num(value()?)?;
                if o.price.per_gb.is_nan() || o.price.per_gb < 0.0 {
                    return Err("--price-per-gb: not a price".into());
                }
            }
            "--log" => {
                let v = value()?;
                o.log = Some(
                    v.parse()
                        .map_err(|_| format!("--log {v}: error, warn, info, debug or trace"))?,
                );
            }
            "--insecure-plaintext" => o.plaintext = true,
            "--data" => o.data = Some(value()?.into()),
            "--regions" => {
                o.regions = value()?
                    .split(',')
                    .map(|s| s.trim().to_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            }
            "--duration" => o.duration = num(value()?)?,
            "--rate" => o.rate = num(value()?)?,
            "--partition" => o.partition = num(value()?)?,
            "--partition-at" => o.partition_at = num(value()?)?,
            "--isolate" => o.isolate = Some(value()?.to_lowercase()),
            "--seed" => o.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--deltas" => {
                o.acked = match value()?.as_str() {
                    "push" => false,
                    "acked" => true,
                    v => return Err(format!("--deltas {v}: push or acked")),
                }
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if o.regions.len() < 2 {
        return Err("at least two regions".into());
    }
    let mut sorted = o.regions.clone();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != o.regions.len() {
        return Err("a region is listed twice".into());
    }
    if let Some(i) = &o.isolate {
        if !o.regions.contains(i) {
            return Err(format!("--isolate {i}: not one of the regions"));
        }
    }
    if !(o.duration > 0.0 && o.rate > 0.0 && o.partition >= 0.0 && o.partition_at >= 0.0) {
        return Err("durations and rate must be positive".into());
    }
    if o.partition > 0.0 && o.partition_at + o.partition > o.duration {
        return Err("the partition must heal before the writes stop (--partition-at + --partition <= --duration)".into());
    }
    Ok(o)
}
