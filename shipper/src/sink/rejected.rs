//! Reading `rejectedLogEventsInfo`: which events of an accepted PutLogEvents call were
//! dropped by CloudWatch, and why (DESIGN §2 invariant 2: never silently ignored).
//!
//! The AWS API reference says `tooNewLogEventStartIndex` is the first too-new event
//! (inclusive) and `tooOldLogEventEndIndex` / `expiredLogEventEndIndex` end the too-old /
//! expired prefix (exclusive). moto (and LocalStack, which runs moto) disagrees: it reports
//! the index of the *last* too-old event and of the *last* too-new event. Trusting either
//! reading alone loses events against the other server. Because the request is sorted by
//! timestamp and the rules are time thresholds, we take the documented reading and widen it
//! with our own clock *only for a kind the server did report*: a reported kind marks every
//! event that our clock also puts beyond that threshold. Erring this way can only
//! dead-letter an event the server kept (a visible duplicate), never count a lost event as
//! delivered.

use aws_sdk_cloudwatchlogs::types::RejectedLogEventsInfo;

use crate::telemetry::DropReason;

/// CloudWatch rejects events older than this (relative to its clock).
pub(crate) const MAX_EVENT_AGE_MS: i64 = 14 * 24 * 3600 * 1000;
/// CloudWatch rejects events further than this in the future.
pub(crate) const MAX_EVENT_FUTURE_MS: i64 = 2 * 3600 * 1000;

/// The rejection indices of one PutLogEvents answer, relative to the events sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Rejections {
    too_new_start: Option<i64>,
    too_old_end: Option<i64>,
    expired_end: Option<i64>,
}

impl Rejections {
    /// `None` when the answer reports no rejection at all.
    pub(crate) fn from_info(info: Option<&RejectedLogEventsInfo>) -> Option<Self> {
        let info = info?;
        let rejections = Self {
            too_new_start: info.too_new_log_event_start_index().map(i64::from),
            too_old_end: info.too_old_log_event_end_index().map(i64::from),
            expired_end: info.expired_log_event_end_index().map(i64::from),
        };
        (rejections != Self::default()).then_some(rejections)
    }

    /// Why the event at `index` (sent with `timestamp_ms`) was rejected, if it was.
    /// Each event gets at most one reason: too new, else too old, else expired.
    pub(crate) fn reason(&self, index: usize, timestamp_ms: i64, now_ms: i64) -> Option<DropReason> {
        let index = i64::try_from(index).unwrap_or(i64::MAX);
        if let Some(start) = self.too_new_start
            && (index >= start || timestamp_ms > now_ms.saturating_add(MAX_EVENT_FUTURE_MS))
        {
            return Some(DropReason::TooNew);
        }
        if let Some(end) = self.too_old_end
            && (index < end || timestamp_ms < now_ms.saturating_sub(MAX_EVENT_AGE_MS))
        {
            return Some(DropReason::TooOld);
        }
        if let Some(end) = self.expired_end
            && index < end
        {
            return Some(DropReason::Expired);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_800_000_000_000;
    const DAY: i64 = 24 * 3600 * 1000;

    /// The truth, from the thresholds alone (a server with retention `retention_ms`).
    fn truth(ts: i64, retention_ms: i64) -> Option<DropReason> {
        if ts > NOW + MAX_EVENT_FUTURE_MS {
            Some(DropReason::TooNew)
        } else if ts < NOW - MAX_EVENT_AGE_MS {
            Some(DropReason::TooOld)
        } else if ts < NOW - retention_ms {
            Some(DropReason::Expired)
        } else {
            None
        }
    }

    /// What the AWS API reference describes.
    fn aws_answer(sorted: &[i64], retention_ms: i64) -> RejectedLogEventsInfo {
        let mut b = RejectedLogEventsInfo::builder();
        let too_old = sorted.iter().filter(|&&t| t < NOW - MAX_EVENT_AGE_MS).count();
        if too_old > 0 {
            b = b.too_old_log_event_end_index(too_old as i32);
        }
        let expired = sorted.iter().filter(|&&t| t < NOW - retention_ms).count();
        if expired > too_old {
            b = b.expired_log_event_end_index(expired as i32);
        }
        if let Some(first) = sorted.iter().position(|&t| t > NOW + MAX_EVENT_FUTURE_MS) {
            b = b.too_new_log_event_start_index(first as i32);
        }
        b.build()
    }

    /// What moto 5.x does: the *last* index of each kind, no retention check.
    fn moto_answer(sorted: &[i64]) -> RejectedLogEventsInfo {
        let mut b = RejectedLogEventsInfo::builder();
        for (i, &t) in sorted.iter().enumerate() {
            if t < NOW - MAX_EVENT_AGE_MS {
                b = b.too_old_log_event_end_index(i as i32);
            } else if t > NOW + MAX_EVENT_FUTURE_MS {
                b = b.too_new_log_event_start_index(i as i32);
            }
        }
        b.build()
    }

    fn classify(info: &RejectedLogEventsInfo, sorted: &[i64]) -> Vec<Option<DropReason>> {
        let rejections = Rejections::from_info(Some(info));
        sorted.iter().enumerate().map(|(i, &t)| rejections.and_then(|r| r.reason(i, t, NOW))).collect()
    }

    fn timestamps() -> impl Strategy<Value = Vec<i64>> {
        // Spread around both thresholds: 20 days ago .. 5 hours ahead.
        proptest::collection::vec(NOW - 20 * DAY..NOW + 5 * 3600 * 1000, 0..60).prop_map(|mut v| {
            v.sort_unstable();
            v
        })
    }

    proptest! {
        #[test]
        fn documented_answers_are_read_exactly(sorted in timestamps(), retention_days in 1i64..30) {
            let retention_ms = retention_days * DAY;
            let got = classify(&aws_answer(&sorted, retention_ms), &sorted);
            let want: Vec<_> = sorted.iter().map(|&t| truth(t, retention_ms)).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn moto_answers_are_read_exactly(sorted in timestamps()) {
            let got = classify(&moto_answer(&sorted), &sorted);
            // moto has no retention check: an infinite retention.
            let want: Vec<_> = sorted.iter().map(|&t| truth(t, i64::MAX / 2)).collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn an_empty_info_reports_nothing() {
        assert_eq!(Rejections::from_info(None), None);
        let empty = RejectedLogEventsInfo::builder().build();
        assert_eq!(Rejections::from_info(Some(&empty)), None);
    }

    #[test]
    fn our_clock_is_not_consulted_for_kinds_the_server_did_not_report() {
        // A server with a slower clock accepted an event our clock calls too new.
        let only_old = RejectedLogEventsInfo::builder().too_old_log_event_end_index(1).build();
        let r = Rejections::from_info(Some(&only_old)).unwrap();
        assert_eq!(r.reason(0, NOW - 15 * DAY, NOW), Some(DropReason::TooOld));
        assert_eq!(r.reason(1, NOW + 3 * 3600 * 1000, NOW), None);
    }
}
