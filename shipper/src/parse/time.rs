//! RFC 3339 timestamps as container runtimes write them, to milliseconds since the epoch.
//!
//! Hand-written because it runs once per record: one pass over at most ~35 bytes, no
//! allocation, calendar arithmetic by `days_from_civil` (H. Hinnant). Accepted shape:
//! `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` with any number of fraction digits (Go's
//! RFC3339Nano trims trailing zeros, so 0–9 occur in practice).

/// Why a timestamp was rejected (a static reason, so errors cost nothing on the hot path).
pub(crate) type TimeError = &'static str;

/// Parse an RFC 3339 timestamp into milliseconds since the Unix epoch, rounded down
/// (towards negative infinity, so pre-1970 instants floor too).
pub(crate) fn parse_rfc3339_ms(s: &[u8]) -> Result<i64, TimeError> {
    const SHAPE: TimeError = "timestamp: expected YYYY-MM-DDTHH:MM:SS";
    if s.len() < 20 {
        return Err(SHAPE);
    }
    let year = number(s, 0, 4).ok_or(SHAPE)?;
    let month = number(s, 5, 2).ok_or(SHAPE)?;
    let day = number(s, 8, 2).ok_or(SHAPE)?;
    let hour = number(s, 11, 2).ok_or(SHAPE)?;
    let minute = number(s, 14, 2).ok_or(SHAPE)?;
    let second = number(s, 17, 2).ok_or(SHAPE)?;
    if s[4] != b'-' || s[7] != b'-' || !matches!(s[10], b'T' | b't') || s[13] != b':' {
        return Err(SHAPE);
    }
    if s[16] != b':' {
        return Err(SHAPE);
    }
    if !(1..=12).contains(&month) {
        return Err("timestamp: month out of range");
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err("timestamp: day out of range");
    }
    // 60 is a leap second (RFC 3339 allows it); it counts as the next minute's first second.
    if hour > 23 || minute > 59 || second > 60 {
        return Err("timestamp: time of day out of range");
    }

    let mut rest = &s[19..];
    let mut millis = 0;
    if let [b'.', fraction @ ..] = rest {
        let digits = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err("timestamp: fraction without digits");
        }
        // Only the first three digits matter: truncation is floor for a non-negative fraction.
        for (i, &b) in fraction[..digits.min(3)].iter().enumerate() {
            millis += i64::from(b - b'0') * [100, 10, 1][i];
        }
        rest = &fraction[digits..];
    }

    let offset_seconds = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            const OFFSET: TimeError = "timestamp: offset is not ±HH:MM";
            let hours = number(rest, 1, 2).ok_or(OFFSET)?;
            let minutes = number(rest, 4, 2).ok_or(OFFSET)?;
            if hours > 23 || minutes > 59 {
                return Err("timestamp: offset out of range");
            }
            let magnitude = i64::from(hours) * 3600 + i64::from(minutes) * 60;
            if *sign == b'-' { -magnitude } else { magnitude }
        }
        _ => return Err("timestamp: expected Z or ±HH:MM after the time"),
    };

    let days = days_from_civil(i64::from(year), month, day);
    let seconds =
        days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second) - offset_seconds;
    Ok(seconds * 1000 + millis)
}

/// The decimal number in `s[at..at + len]`, if those bytes are all ASCII digits.
fn number(s: &[u8], at: usize, len: usize) -> Option<u32> {
    let digits = s.get(at..at + len)?;
    digits.iter().try_fold(0u32, |acc, &b| b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0')))
}

fn is_leap_year(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (`month` 1–12, `day` valid).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Shift the year to start in March so the leap day is the year's last day.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
/// Test helper: like Go's RFC3339Nano for a UTC instant: fraction with trailing zeros trimmed.
pub(crate) fn format_utc_rfc3339(timestamp_ms: i64) -> String {
    let days = timestamp_ms.div_euclid(86_400_000);
    let ms_of_day = timestamp_ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s, ms) =
        (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60, ms_of_day / 1000 % 60, ms_of_day % 1000);
    let fraction = format!(".{ms:03}");
    let fraction = fraction.trim_end_matches('0').trim_end_matches('.');
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}{fraction}Z")
}

/// Inverse of `days_from_civil` (H. Hinnant's `civil_from_days`).
#[cfg(test)]
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(s: &str) -> Result<i64, TimeError> {
        parse_rfc3339_ms(s.as_bytes())
    }

    // Expected values computed with GNU `date -d "$t" +%s%3N`.
    #[test]
    fn known_instants() {
        assert_eq!(ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(ms("2026-11-25T10:00:00.1234567Z"), Ok(1_795_600_800_123));
        assert_eq!(ms("2026-11-25T10:00:00+09:00"), Ok(1_795_568_400_000));
        assert_eq!(ms("2024-02-29T23:59:59.999-05:30"), Ok(1_709_270_999_999));
    }

    #[test]
    fn fraction_digits_zero_to_nine_floor_to_millis() {
        let base = 1_795_600_800_000;
        assert_eq!(ms("2026-11-25T10:00:00Z"), Ok(base));
        assert_eq!(ms("2026-11-25T10:00:00.9Z"), Ok(base + 900));
        assert_eq!(ms("2026-11-25T10:00:00.05Z"), Ok(base + 50));
        assert_eq!(ms("2026-11-25T10:00:00.0019Z"), Ok(base + 1));
        assert_eq!(ms("2026-11-25T10:00:00.999999999Z"), Ok(base + 999));
        // CRI-O: always nine digits and a numeric zero offset.
        assert_eq!(ms("2026-11-25T10:00:00.000000001+00:00"), Ok(base));
    }

    #[test]
    fn pre_epoch_floors_and_does_not_panic() {
        assert_eq!(ms("1969-12-31T23:59:59.5Z"), Ok(-500));
        assert_eq!(ms("1970-01-01T00:00:00+00:01"), Ok(-60_000));
        assert!(ms("0000-01-01T00:00:00Z").is_ok_and(|v| v < 0));
        assert!(ms("9999-12-31T23:59:60.999999999-23:59").is_ok());
    }

    #[test]
    fn rejects_impossible_dates_and_bad_shapes() {
        assert_eq!(ms("2025-02-29T00:00:00Z"), Err("timestamp: day out of range"));
        assert_eq!(ms("2100-02-29T00:00:00Z"), Err("timestamp: day out of range"));
        assert!(ms("2000-02-29T00:00:00Z").is_ok());
        assert_eq!(ms("2026-13-01T00:00:00Z"), Err("timestamp: month out of range"));
        assert_eq!(ms("2026-04-31T00:00:00Z"), Err("timestamp: day out of range"));
        assert_eq!(ms("2026-11-25T24:00:00Z"), Err("timestamp: time of day out of range"));
        assert_eq!(ms("2026-11-25T10:00:00."), Err("timestamp: fraction without digits"));
        assert_eq!(ms("2026-11-25T10:00:00.Z"), Err("timestamp: fraction without digits"));
        assert_eq!(ms("2026-11-25T10:00:00"), Err("timestamp: expected YYYY-MM-DDTHH:MM:SS"));
        assert_eq!(ms("2026-11-25 10:00:00Z"), Err("timestamp: expected YYYY-MM-DDTHH:MM:SS"));
        assert_eq!(ms("2026-11-25T10:00:00+0900"), Err("timestamp: expected Z or ±HH:MM after the time"));
        assert_eq!(ms("2026-11-25T10:00:00+24:00"), Err("timestamp: offset out of range"));
        assert_eq!(ms("2026-11-25T10:00:00+0a:00"), Err("timestamp: offset is not ±HH:MM"));
        assert_eq!(ms("2026-11-25T10:00:00ZZ"), Err("timestamp: expected Z or ±HH:MM after the time"));
        assert_eq!(ms("+026-11-25T10:00:00Z"), Err("timestamp: expected YYYY-MM-DDTHH:MM:SS"));
    }

    /// Independent oracle: count days year by year and month by month.
    fn naive_days(year: u32, month: u32, day: u32) -> i64 {
        let mut days: i64 = (1970..year).map(|y| if is_leap_year(y) { 366 } else { 365 }).sum();
        days += (1..month).map(|m| i64::from(days_in_month(year, m))).sum::<i64>();
        days + i64::from(day) - 1
    }

    proptest! {
        #[test]
        fn round_trips_against_naive_calendar(
            year in 1970u32..=2400,
            month in 1u32..=12,
            day_seed in 0u32..31,
            hour in 0u32..24,
            minute in 0u32..60,
            second in 0u32..60,
            nanos in 0u32..1_000_000_000,
            digits in 0usize..=9,
            offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59i64),
            zulu in any::<bool>(),
        ) {
            let day = day_seed % days_in_month(year, month) + 1;
            let fraction = format!("{nanos:09}");
            let fraction = if digits == 0 { String::new() } else { format!(".{}", &fraction[..digits]) };
            let offset_minutes = if zulu { 0 } else { offset_minutes };
            let zone = if zulu {
                "Z".to_owned()
            } else {
                let sign = if offset_minutes < 0 { '-' } else { '+' };
                format!("{sign}{:02}:{:02}", offset_minutes.abs() / 60, offset_minutes.abs() % 60)
            };
            let text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}{zone}");

            let kept_nanos = if digits == 0 { 0 } else { i64::from(nanos) / 10i64.pow(9 - digits as u32) * 10i64.pow(9 - digits as u32) };
            let seconds = naive_days(year, month, day) * 86_400
                + i64::from(hour * 3600 + minute * 60 + second)
                - offset_minutes * 60;
            let expected = seconds * 1000 + kept_nanos / 1_000_000;
            prop_assert_eq!(parse_rfc3339_ms(text.as_bytes()), Ok(expected), "{}", text);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = parse_rfc3339_ms(&bytes);
        }
    }
}
