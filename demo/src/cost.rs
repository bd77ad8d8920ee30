//! What the demo's cross-region bytes would cost: a price per GB (the seed
//! article's $0.02 by default, `--price-per-gb`), applied to the bytes a
//! region sent (every byte between regions crosses one), per heal, and
//! projected over a month at the run's rate.

use std::time::Duration;

/// Seconds in a 30-day month.
const MONTH_SECS: f64 = 30.0 * 24.0 * 3600.0;

/// A price for cross-region transfer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Price {
    /// Dollars per GB (10^9 bytes).
    pub(crate) per_gb: f64,
}

impl Price {
    /// The seed article's figure.
    pub(crate) const DEFAULT_PER_GB: f64 = 0.02;

    /// Dollars for `bytes`.
    pub(crate) fn dollars(self, bytes: u64) -> f64 {
        bytes as f64 / 1e9 * self.per_gb
    }

    /// Dollars a month at the rate of `bytes` in `over`.
    pub(crate) fn monthly(self, bytes: u64, over: Duration) -> f64 {
        if over.is_zero() {
            return 0.0;
        }
        self.dollars(bytes) * MONTH_SECS / over.as_secs_f64()
    }
}

/// A dollar amount, readable at any size (micro-dollars, `µ$`, below a
/// hundredth of a cent).
pub(crate) fn usd(d: f64) -> String {
    if d == 0.0 {
        "$0".into()
    } else if d < 1e-4 {
        format!("{:.2} µ$", d * 1e6)
    } else if d < 1.0 {
        format!("${d:.4}")
    } else {
        format!("${d:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_bytes_and_projects_a_month() {
        let p = Price {
            per_gb: Price::DEFAULT_PER_GB,
        };
        assert!((p.dollars(1_000_000_000) - 0.02).abs() < 1e-12);
        // 1 MB a second for a month: 2,592 GB, $51.84.
        let m = p.monthly(1_000_000, Duration::from_secs(1));
        assert!((m - 51.84).abs() < 1e-9, "{m}");
        assert_eq!(p.monthly(5, Duration::ZERO), 0.0);
        assert_eq!(usd(51.84), "$51.84");
        assert_eq!(usd(0.000_002), "2.00 µ$");
    }
}
