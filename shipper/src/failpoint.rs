//! Crash points for the harness's kill matrix.
//!
//! `SHIPPER_CRASH_AT=<point>:<n>` makes the process abort the `n`-th time execution reaches
//! `<point>` — no destructors, no buffered writes flushed, exactly what `kill -9` leaves
//! behind. The harness uses it to crash mid-append, mid-fsync, mid-send, mid-checkpoint write
//! and mid-GC, which random `kill -9`s rarely hit. Unset (always, in production) a point costs
//! one relaxed atomic load; an unknown point name is a startup error, so a typo in a scenario
//! cannot silently test nothing.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The environment variable that arms a crash point.
pub const ENV: &str = "SHIPPER_CRASH_AT";

/// Every crash point, in data-path order.
pub const POINTS: &[&str] = &[
    // A record half written to its chunk file (header flushed, message not).
    "spool.append.torn",
    // Chunk files fsynced, manifest not yet written.
    "spool.commit.synced",
    // New manifest written and fsynced under its temporary name, not renamed.
    "manifest.written",
    // Manifest renamed into place, directory not yet fsynced.
    "manifest.renamed",
    // A chunk read back for sending, PutLogEvents not yet called.
    "send.before_put",
    // PutLogEvents accepted the chunk, the chunk not yet freed.
    "send.after_put",
    // A delivered chunk's file unlinked, the manifest not yet updated.
    "spool.ack.unlinked",
];

/// `SHIPPER_CRASH_AT` does not name a crash point.
#[derive(Debug, thiserror::Error)]
#[error("{ENV}={value}: expected <point>:<n> with n >= 1 and point one of {points}", points = POINTS.join(", "))]
pub struct InvalidCrashPoint {
    /// The rejected value.
    pub value: String,
}

#[derive(Debug)]
struct Armed {
    point: &'static str,
    nth: u64,
    hits: AtomicU64,
}

static ARMED: OnceLock<Armed> = OnceLock::new();
/// Fast path: false unless a point is armed.
static ANY: AtomicBool = AtomicBool::new(false);

/// Parse `<point>:<n>`.
fn parse(value: &str) -> Result<(&'static str, u64), InvalidCrashPoint> {
    let invalid = || InvalidCrashPoint { value: value.to_owned() };
    let (name, nth) = value.rsplit_once(':').ok_or_else(invalid)?;
    let point = POINTS.iter().copied().find(|p| *p == name).ok_or_else(invalid)?;
    let nth: u64 = nth.parse().map_err(|_| invalid())?;
    if nth == 0 {
        return Err(invalid());
    }
    Ok((point, nth))
}

/// Arm the point named by `SHIPPER_CRASH_AT`, if set. Call once at startup.
pub fn arm_from_env() -> Result<(), InvalidCrashPoint> {
    let Ok(value) = std::env::var(ENV) else {
        return Ok(());
    };
    let (point, nth) = parse(&value)?;
    tracing::warn!(point, nth, "crash point armed: this process will abort on purpose (testing only)");
    if ARMED.set(Armed { point, nth, hits: AtomicU64::new(0) }).is_ok() {
        ANY.store(true, Ordering::Relaxed);
    }
    Ok(())
}

/// Execution reached `point`: abort if it is the armed point's `n`-th hit.
#[inline]
pub fn hit(point: &'static str) {
    hit_then(point, || {});
}

/// Like [`hit`], running `before_crash` first (e.g. to push a half-written record to the file
/// so the crash leaves it torn on disk).
#[inline]
pub fn hit_then(point: &'static str, before_crash: impl FnOnce()) {
    if !ANY.load(Ordering::Relaxed) {
        return;
    }
    if let Some(armed) = ARMED.get()
        && armed.point == point
        && armed.hits.fetch_add(1, Ordering::Relaxed) + 1 == armed.nth
    {
        before_crash();
        tracing::error!(point, hit = armed.nth, "crash point reached, aborting");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_points_with_a_positive_count() {
        for point in POINTS {
            assert_eq!(parse(&format!("{point}:3")).unwrap(), (*point, 3));
        }
    }

    #[test]
    fn rejects_unknown_points_and_bad_counts() {
        for bad in ["", "spool.append.torn", "spool.append.torn:0", "spool.append.torn:x", "nope:1", ":1"] {
            let err = parse(bad).unwrap_err();
            assert!(err.to_string().contains(ENV) && err.to_string().contains("send.after_put"), "{err}");
        }
    }

    #[test]
    fn an_unarmed_point_does_nothing() {
        // ARMED is never set in unit tests: reaching any point must return.
        for point in POINTS {
            hit(point);
        }
    }
}
