//! Exponential backoff with full jitter, and cancellable waiting.
//!
//! Transient failures are retried forever (DESIGN §2 "Error policy"): there is no retry
//! budget to exhaust, only a growing delay capped at `cap`, so a long outage costs time,
//! never data.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Cancelled;

/// Delay sequence for one operation: attempt `n` waits a uniformly random time in
/// `[0, min(cap, base * 2^n)]` ("full jitter", so a fleet of agents retrying the same
/// outage spreads out instead of hammering the service in lockstep).
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// A fresh sequence. A zero `base` is raised to 1 ms so retries never spin.
    pub fn new(base: Duration, cap: Duration) -> Self {
        let base = base.max(Duration::from_millis(1));
        Self { base, cap: cap.max(base), attempt: 0 }
    }

    /// Start over after progress was made.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The upper bound of the next delay (before jitter).
    pub fn ceiling(&self) -> Duration {
        // 2^20 * base is far beyond any sensible cap; stop doubling there.
        let factor = 1u32 << self.attempt.min(20);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The next delay: full jitter below the current ceiling.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

/// Run `fut` unless `cancel` fires first.
pub(crate) async fn or_cancel<F: Future>(cancel: &CancellationToken, fut: F) -> Result<F::Output, Cancelled> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => Err(Cancelled),
        out = fut => Ok(out),
    }
}

/// Sleep for `delay` unless `cancel` fires first.
pub(crate) async fn sleep(cancel: &CancellationToken, delay: Duration) -> Result<(), Cancelled> {
    or_cancel(cancel, tokio::time::sleep(delay)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn delays_stay_under_a_doubling_ceiling_capped_at_cap(
            base_ms in 0u64..1_000,
            cap_ms in 0u64..60_000,
            attempts in 1usize..80,
        ) {
            let base = Duration::from_millis(base_ms);
            let cap = Duration::from_millis(cap_ms);
            let mut backoff = Backoff::new(base, cap);
            let effective_base = base.max(Duration::from_millis(1));
            let effective_cap = cap.max(effective_base);
            for n in 0..attempts {
                let expected_ceiling = effective_base
                    .saturating_mul(1u32 << n.min(20))
                    .min(effective_cap);
                prop_assert_eq!(backoff.ceiling(), expected_ceiling);
                let delay = backoff.next_delay();
                prop_assert!(delay <= expected_ceiling);
            }
            backoff.reset();
            prop_assert_eq!(backoff.ceiling(), effective_base.min(effective_cap));
        }
    }

    #[tokio::test]
    async fn sleep_returns_cancelled_when_the_token_fires() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert!(sleep(&cancel, Duration::from_secs(3600)).await.is_err());
    }
}
