//! The node's share of the account's PutLogEvents quota: the effective flush interval.
//!
//! PutLogEvents has one account-wide, per-Region quota (5,000 calls/s by default) that every
//! node shares. Each stream with new lines sends once per flush interval, so a large fleet
//! asks for many times the quota and, left alone, lives in throttling: most calls are
//! refused, and retries make it worse. [`Pace`] lets each node give way, the way TCP does:
//!
//! - **throttled**: stretch the interval by a jittered factor in `[1.5, 2.5)`, at most once
//!   per current interval (forty streams throttled in the same instant are one signal, not
//!   forty). Every node that hits the quota backs off together, and the jitter keeps them
//!   from moving in lockstep afterwards;
//! - **calm**: once no call was throttled for two to three intervals (drawn at each step, so
//!   nodes that got calm together do not all speed up together), shrink it by a fifth per
//!   interval, back to `flush_interval`;
//! - always within `[flush_interval, flush_interval_max]`, and never more than 10 s between
//!   two steps (20 to 30 s of calm), so a node stretched to 30 s is back to 1 s about two
//!   minutes after the throttling stopped.
//!
//! A longer interval does not delay a backlog: a chunk is sealed early when it reaches the
//! PutLogEvents batch limits. It makes each quiet stream's requests fuller and rarer.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The effective flush interval, shared by the sink (which sees CloudWatch's answers) and the
/// ingest loop (which seals chunks by it).
#[derive(Debug)]
pub struct Pace {
    base: Duration,
    max: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    interval: Duration,
    last_change: Option<Instant>,
    last_throttled: Option<Instant>,
    /// Intervals of calm the next shrink waits for, in `[2, 3)`.
    calm_intervals: f64,
}

/// Shrink factor per calm interval.
const CALM_SHRINK: f64 = 0.8;
/// Intervals without throttling before shrinking starts: at least this, at most one more.
const CALM_INTERVALS: f64 = 2.0;
/// The longest wait between two steps, however long the interval has become.
const STEP_CAP: Duration = Duration::from_secs(10);

impl Pace {
    /// Between `base` (the configured `flush_interval`) and `max` (`flush_interval_max`; a
    /// `max` below `base` is raised to it, which turns stretching off).
    pub fn new(base: Duration, max: Duration) -> Self {
        let state =
            State { interval: base, last_change: None, last_throttled: None, calm_intervals: CALM_INTERVALS };
        Pace { base, max: max.max(base), state: Mutex::new(state) }
    }

    /// A pace that never changes (tests, tools).
    pub fn fixed(interval: Duration) -> Self {
        Pace::new(interval, interval)
    }

    /// The interval to seal open chunks by, now.
    pub fn interval(&self) -> Duration {
        self.lock().interval
    }

    /// The configured interval, the floor.
    pub fn base(&self) -> Duration {
        self.base
    }

    /// CloudWatch throttled a PutLogEvents call at `now`. Returns the new interval when it
    /// was stretched.
    pub fn throttled(&self, now: Instant) -> Option<Duration> {
        let mut state = self.lock();
        state.last_throttled = Some(now);
        if !state.may_change(now) || state.interval >= self.max {
            return None;
        }
        let factor = 1.5 + fastrand::f64();
        state.interval = state.interval.mul_f64(factor).min(self.max);
        state.changed(now);
        Some(state.interval)
    }

    /// A PutLogEvents call was accepted at `now`. Returns the new interval when it shrank.
    pub fn accepted(&self, now: Instant) -> Option<Duration> {
        let mut state = self.lock();
        if state.interval <= self.base || !state.may_change(now) {
            return None;
        }
        let calm_since = state.last_throttled.map_or(Duration::MAX, |t| now.saturating_duration_since(t));
        if calm_since < state.interval.min(STEP_CAP).mul_f64(state.calm_intervals) {
            return None;
        }
        state.interval = state.interval.mul_f64(CALM_SHRINK).max(self.base);
        state.changed(now);
        Some(state.interval)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn changed(&mut self, now: Instant) {
        self.last_change = Some(now);
        self.calm_intervals = CALM_INTERVALS + fastrand::f64();
    }

    /// One change per current interval (at most [`STEP_CAP`]): the answers to requests sent
    /// under the old interval are not a verdict on the new one.
    fn may_change(&self, now: Instant) -> bool {
        let step = self.interval.min(STEP_CAP);
        self.last_change.is_none_or(|at| now.saturating_duration_since(at) >= step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BASE: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_throttled_answers_stretches_once() {
        let pace = Pace::new(BASE, MAX);
        let first = pace.throttled(Instant::now()).expect("stretched");
        assert!(first >= BASE.mul_f64(1.5) && first < BASE.mul_f64(2.5), "{first:?}");
        for _ in 0..40 {
            assert_eq!(pace.throttled(Instant::now()), None);
        }
        assert_eq!(pace.interval(), first);
        tokio::time::advance(first).await;
        assert!(pace.throttled(Instant::now()).expect("stretched again") > first);
    }

    #[tokio::test(start_paused = true)]
    async fn sustained_throttling_reaches_the_bound_and_stays() {
        let pace = Pace::new(BASE, MAX);
        for _ in 0..600 {
            pace.throttled(Instant::now());
            tokio::time::advance(Duration::from_millis(100)).await;
        }
        assert_eq!(pace.interval(), MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn calm_shrinks_back_to_the_base_only_after_two_intervals_without_throttling() {
        let pace = Pace::new(BASE, MAX);
        for _ in 0..30 {
            pace.throttled(Instant::now());
            tokio::time::advance(Duration::from_millis(500)).await;
        }
        let stretched = pace.interval();
        assert!(stretched > Duration::from_secs(5), "{stretched:?}");
        // Accepted calls right after throttling change nothing.
        assert_eq!(pace.accepted(Instant::now()), None);
        // The last throttled answer came 500 ms ago.
        let calm_from = Instant::now() - Duration::from_millis(500);
        let mut shrunk_at = None;
        while pace.interval() > BASE {
            tokio::time::advance(Duration::from_millis(100)).await;
            if pace.accepted(Instant::now()).is_some() && shrunk_at.is_none() {
                shrunk_at = Some(Instant::now() - calm_from);
            }
            assert!(calm_from.elapsed() < Duration::from_secs(600), "never got back to the base");
        }
        assert!(shrunk_at.expect("shrank") >= stretched.min(STEP_CAP) * 2);
        assert!(
            calm_from.elapsed() <= Duration::from_secs(180),
            "back to the base in {:?}",
            calm_from.elapsed()
        );
        assert_eq!(pace.interval(), BASE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fixed_pace_never_moves() {
        let pace = Pace::fixed(BASE);
        for _ in 0..10 {
            assert_eq!(pace.throttled(Instant::now()), None);
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert_eq!(pace.interval(), BASE);
    }

    proptest! {
        /// Whatever CloudWatch answers, and whenever, the interval stays within its bounds.
        #[test]
        fn the_interval_stays_within_its_bounds(
            answers in proptest::collection::vec((any::<bool>(), 0u64..5_000), 0..300),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
            runtime.block_on(async {
                let pace = Pace::new(BASE, MAX);
                for (throttled, gap_ms) in answers {
                    tokio::time::advance(Duration::from_millis(gap_ms)).await;
                    if throttled { pace.throttled(Instant::now()); } else { pace.accepted(Instant::now()); }
                    let interval = pace.interval();
                    prop_assert!(interval >= BASE && interval <= MAX, "{interval:?}");
                }
                Ok(())
            })?;
        }
    }
}
