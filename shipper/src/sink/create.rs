//! State for creating log groups and streams: a bounded cache of streams known to exist
//! and the account-wide CreateLogGroup rate limit (10 TPS per account, DESIGN §2).
//!
//! PutLogEvents is always tried first (one call on the happy path, and no create storm when
//! a whole fleet restarts); creation happens only after `ResourceNotFoundException`.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::route::Destination;

/// Streams remembered at most; the oldest entry is forgotten first. Forgetting is harmless
/// (it only changes how a later `ResourceNotFoundException` is logged).
pub(crate) const KNOWN_STREAMS_CAPACITY: usize = 16_384;

/// Streams known to exist (created or written to by this process), bounded, FIFO eviction.
#[derive(Debug)]
pub(crate) struct KnownStreams {
    capacity: usize,
    inner: Mutex<Fifo>,
}

#[derive(Debug, Default)]
struct Fifo {
    members: HashSet<Arc<Destination>>,
    order: VecDeque<Arc<Destination>>,
}

impl KnownStreams {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), inner: Mutex::new(Fifo::default()) }
    }

    fn fifo(&self) -> std::sync::MutexGuard<'_, Fifo> {
        // The sets stay consistent even if a holder panicked: each update is one step.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `dest` is known to exist.
    pub(crate) fn contains(&self, dest: &Destination) -> bool {
        self.fifo().members.contains(dest)
    }

    /// Remember that `dest` exists (once per batch, not per event).
    pub(crate) fn insert(&self, dest: &Arc<Destination>) {
        let mut fifo = self.fifo();
        if fifo.members.contains(&**dest) {
            return;
        }
        while fifo.order.len() >= self.capacity {
            match fifo.order.pop_front() {
                Some(old) => {
                    fifo.members.remove(&old);
                }
                None => break,
            }
        }
        fifo.members.insert(Arc::clone(dest));
        fifo.order.push_back(Arc::clone(dest));
    }

    /// Forget `dest` (it turned out to be missing).
    pub(crate) fn remove(&self, dest: &Destination) {
        let mut fifo = self.fifo();
        if fifo.members.remove(dest) {
            fifo.order.retain(|d| **d != *dest);
        }
    }

    /// Number of entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let fifo = self.fifo();
        debug_assert_eq!(fifo.members.len(), fifo.order.len());
        fifo.members.len()
    }
}

/// Spaces CreateLogGroup calls of this process at least `1 / rate` apart, plus jitter so
/// agents on many nodes do not line up.
#[derive(Debug)]
pub(crate) struct GroupCreateLimiter {
    interval: Duration,
    next_slot: Mutex<Option<Instant>>,
}

impl GroupCreateLimiter {
    /// `rate` in calls per second; non-positive or non-finite rates fall back to 1/s.
    pub(crate) fn new(rate: f64) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 { rate.min(1_000.0) } else { 1.0 };
        Self { interval: Duration::from_secs_f64(1.0 / rate), next_slot: Mutex::new(None) }
    }

    /// Reserve the next slot; returns how long to wait before calling.
    pub(crate) fn reserve(&self) -> Duration {
        self.reserve_at(Instant::now())
    }

    /// `reserve` as seen at `now`.
    fn reserve_at(&self, now: Instant) -> Duration {
        let mut next = self.next_slot.lock().unwrap_or_else(|p| p.into_inner());
        let slot = next.map_or(now, |n| n.max(now));
        *next = Some(slot + self.interval);
        let jitter_nanos = u64::try_from(self.interval.as_nanos()).unwrap_or(u64::MAX) / 2;
        (slot - now) + Duration::from_nanos(fastrand::u64(0..=jitter_nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dest(i: usize) -> Arc<Destination> {
        Arc::new(Destination { group: "g".into(), stream: format!("s{i}") })
    }

    proptest! {
        #[test]
        fn known_streams_never_exceed_capacity_and_keep_the_newest(
            capacity in 1usize..20,
            inserts in proptest::collection::vec(0usize..40, 0..100),
        ) {
            let known = KnownStreams::new(capacity);
            for &i in &inserts {
                known.insert(&dest(i));
                prop_assert!(known.len() <= capacity);
                prop_assert!(known.contains(&dest(i)));
            }
        }
    }

    #[test]
    fn removed_streams_are_forgotten() {
        let known = KnownStreams::new(4);
        known.insert(&dest(1));
        known.insert(&dest(2));
        known.remove(&dest(1));
        assert!(!known.contains(&dest(1)));
        assert!(known.contains(&dest(2)));
        assert_eq!(known.len(), 1);
    }

    #[test]
    fn group_creates_are_spaced_by_the_rate() {
        let limiter = GroupCreateLimiter::new(10.0);
        let interval = Duration::from_millis(100);
        let now = Instant::now();
        for n in 0..5u32 {
            let wait = limiter.reserve_at(now);
            // Slot n starts n intervals after `now`; jitter adds at most half an interval.
            assert!(wait >= interval * n, "call {n} waits {wait:?}");
            assert!(wait <= interval * n + interval / 2, "call {n} waits {wait:?}");
        }
    }
}
