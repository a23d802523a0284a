//! CloudWatch Logs request rules, enforced the way the real service enforces them.
//!
//! The emulators (moto, LocalStack) accept batches and names that real CloudWatch rejects
//! (see `reference/cloudwatch-limits.md`, "What the local emulators do NOT check"), so the
//! gateway re-checks every PutLogEvents / CreateLogGroup / CreateLogStream here. Limits come
//! from the AWS API reference and quotas page, never from the shipper crate.
//!
//! Model-level constraints (names, lengths, list sizes) answer with the service's
//! "1 validation error detected" wording; service-level checks (sizes, order, span) with the
//! messages CloudWatch uses. Both are `InvalidParameterException`, HTTP 400.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Maximum PutLogEvents batch size: Σ(UTF-8 message bytes + [`EVENT_OVERHEAD_BYTES`]).
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// Bytes CloudWatch adds to every event when measuring batch and event size.
pub const EVENT_OVERHEAD_BYTES: usize = 26;
/// Maximum number of events in one PutLogEvents call.
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// Maximum size of one event, overhead included (1 MiB since April 2025).
pub const MAX_EVENT_BYTES: usize = 1_048_576;
/// Maximum distance between the oldest and the newest event of one batch.
pub const MAX_BATCH_SPAN_MS: i64 = 24 * 60 * 60 * 1000;
/// Maximum length (characters) of a log group or log stream name.
pub const MAX_NAME_CHARS: usize = 512;
/// Prefix reserved for AWS-owned log groups.
pub const RESERVED_GROUP_PREFIX: &str = "aws/";

/// Why a request was rejected: a short, stable label for journals and summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The body is not the JSON the operation expects.
    Malformed,
    /// The body exceeds the gateway's read limit.
    BodyTooLarge,
    /// Log group name empty, too long or with characters outside `[A-Za-z0-9_\-/.#]`.
    InvalidGroupName,
    /// CreateLogGroup for a name starting with `aws/`.
    ReservedGroupPrefix,
    /// Log stream name empty, too long or containing `:` or `*`.
    InvalidStreamName,
    /// PutLogEvents without any event.
    NoEvents,
    /// More than [`MAX_BATCH_EVENTS`] events.
    TooManyEvents,
    /// An event with an empty message.
    EmptyMessage,
    /// One event larger than [`MAX_EVENT_BYTES`] (overhead included).
    EventTooLarge,
    /// The batch is larger than [`MAX_BATCH_BYTES`] (overhead included).
    BatchTooLarge,
    /// Events not in chronological order.
    NotChronological,
    /// Oldest and newest event more than 24 h apart.
    SpanTooLong,
    /// The operation's rate quota was exceeded (CreateLogGroup 10/s, CreateLogStream 50/s).
    RateExceeded,
    /// PutRetentionPolicy with a `retentionInDays` outside CloudWatch's enum.
    InvalidRetention,
    /// CreateLogGroup with a `logGroupClass` outside CloudWatch's enum.
    InvalidGroupClass,
    /// Tags breaking CloudWatch's limits (count, key/value length or pattern).
    InvalidTags,
    /// A `kmsKeyId` longer than 256 characters.
    InvalidKmsKeyId,
    /// TagResource whose `resourceArn` names no log group.
    InvalidResourceArn,
}

/// A request the gateway refuses, with the exact error CloudWatch would answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Stable label of the rule that failed.
    pub reason: RejectReason,
    /// HTTP status of the answer.
    pub status: u16,
    /// The AWS error code (`__type`), e.g. `InvalidParameterException`.
    pub error_type: String,
    /// The human-readable `message` of the answer.
    pub message: String,
}

impl Rejection {
    fn invalid(reason: RejectReason, message: String) -> Self {
        Self { reason, status: 400, error_type: "InvalidParameterException".to_owned(), message }
    }

    /// The body could not be parsed (AWS answers `SerializationException`).
    pub fn malformed(detail: impl std::fmt::Display) -> Self {
        Self {
            reason: RejectReason::Malformed,
            status: 400,
            error_type: "SerializationException".to_owned(),
            message: format!("could not parse request body: {detail}"),
        }
    }

    /// The body exceeded the gateway's read limit.
    pub fn body_too_large(limit: usize) -> Self {
        Self {
            reason: RejectReason::BodyTooLarge,
            status: 413,
            error_type: "RequestEntityTooLargeException".to_owned(),
            message: format!("Request body exceeds {limit} bytes"),
        }
    }

    /// A rate quota was exceeded: `ThrottlingException` / "Rate exceeded", as AWS answers.
    pub fn throttled() -> Self {
        Self {
            reason: RejectReason::RateExceeded,
            status: 400,
            error_type: "ThrottlingException".to_owned(),
            message: "Rate exceeded".to_owned(),
        }
    }
}

fn validation_error(value: &str, field: &str, constraint: &str) -> String {
    format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
    )
}

/// One event of a PutLogEvents body; the message borrows from the body when it has no escapes.
#[derive(Debug, Deserialize)]
pub struct InputLogEvent<'a> {
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// The event text.
    #[serde(borrow)]
    pub message: Cow<'a, str>,
}

/// The parts of a PutLogEvents body the rules look at (unknown fields are ignored).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutLogEventsRequest<'a> {
    /// Destination group.
    #[serde(borrow, default)]
    pub log_group_name: Cow<'a, str>,
    /// Destination stream.
    #[serde(borrow, default)]
    pub log_stream_name: Cow<'a, str>,
    /// The events, in the order sent.
    #[serde(borrow, default)]
    pub log_events: Vec<InputLogEvent<'a>>,
}

/// The names carried by any Logs request body (CreateLogGroup, CreateLogStream, others).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamedRequest<'a> {
    /// `logGroupName`, when present.
    #[serde(borrow, default)]
    pub log_group_name: Option<Cow<'a, str>>,
    /// `logStreamName`, when present.
    #[serde(borrow, default)]
    pub log_stream_name: Option<Cow<'a, str>>,
}

/// The parts of a CreateLogGroup / TagResource / TagLogGroup / PutRetentionPolicy body the
/// rules look at.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupSettingsRequest {
    /// `logGroupName` (CreateLogGroup, TagLogGroup, PutRetentionPolicy).
    #[serde(default)]
    pub log_group_name: Option<String>,
    /// `resourceArn` (TagResource).
    #[serde(default)]
    pub resource_arn: Option<String>,
    /// `logGroupClass` (CreateLogGroup).
    #[serde(default)]
    pub log_group_class: Option<String>,
    /// `kmsKeyId` (CreateLogGroup).
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// `tags` (CreateLogGroup, TagResource, TagLogGroup).
    #[serde(default)]
    pub tags: Option<std::collections::BTreeMap<String, String>>,
    /// `retentionInDays` (PutRetentionPolicy); a number, kept raw to judge it as AWS does.
    #[serde(default)]
    pub retention_in_days: Option<serde_json::Value>,
}

/// The retention periods CloudWatch accepts (PutRetentionPolicy API reference).
pub const VALID_RETENTION_DAYS: [i64; 22] =
    [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];
/// The log group classes CloudWatch accepts.
pub const LOG_GROUP_CLASSES: [&str; 3] = ["STANDARD", "INFREQUENT_ACCESS", "DELIVERY"];
/// Most tags per resource.
pub const MAX_TAGS: usize = 50;

/// Checks PutRetentionPolicy's `retentionInDays` against the service's enum.
pub fn check_retention(value: Option<&serde_json::Value>) -> Result<i64, Rejection> {
    let allowed = VALID_RETENTION_DAYS.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    let shown = value.map_or_else(|| "null".to_owned(), ToString::to_string);
    match value.and_then(serde_json::Value::as_i64) {
        Some(days) if VALID_RETENTION_DAYS.contains(&days) => Ok(days),
        _ => Err(Rejection::invalid(
            RejectReason::InvalidRetention,
            validation_error(
                &shown,
                "retentionInDays",
                &format!("Member must satisfy enum value set: [{allowed}]"),
            ),
        )),
    }
}

/// Checks tags as the model does: at most 50; keys 1–128 and values 0–256 characters of
/// letters, digits, spaces and `_.:/=+-@`; keys not starting with `aws:`.
pub fn check_tags(tags: &std::collections::BTreeMap<String, String>) -> Result<(), Rejection> {
    let bad = |message: String| Err(Rejection::invalid(RejectReason::InvalidTags, message));
    if tags.len() > MAX_TAGS {
        return bad(format!(
            "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to {MAX_TAGS}"
        ));
    }
    let allowed = |c: char| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c);
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > 128 || !key.chars().all(allowed) {
            return bad(validation_error(
                key,
                "tags",
                r"Map keys must satisfy constraint: [Member must have length less than or equal to 128, Member must have length greater than or equal to 1, Member must satisfy regular expression pattern: ^([\p{L}\p{Z}\p{N}_.:/=+\-@]+)$]",
            ));
        }
        if key.starts_with("aws:") {
            return bad("Tag keys starting with 'aws:' are reserved for AWS use.".to_owned());
        }
        if value.chars().count() > 256 || !value.chars().all(allowed) {
            return bad(validation_error(
                value,
                "tags",
                r"Map value must satisfy constraint: [Member must have length less than or equal to 256, Member must satisfy regular expression pattern: ^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$]",
            ));
        }
    }
    Ok(())
}

/// Checks CreateLogGroup's optional class, key and tags.
pub fn check_create_settings(request: &GroupSettingsRequest) -> Result<(), Rejection> {
    if let Some(class) = &request.log_group_class
        && !LOG_GROUP_CLASSES.contains(&class.as_str())
    {
        return Err(Rejection::invalid(
            RejectReason::InvalidGroupClass,
            validation_error(
                class,
                "logGroupClass",
                "Member must satisfy enum value set: [STANDARD, INFREQUENT_ACCESS, DELIVERY]",
            ),
        ));
    }
    if let Some(key) = &request.kms_key_id
        && key.chars().count() > 256
    {
        return Err(Rejection::invalid(
            RejectReason::InvalidKmsKeyId,
            validation_error(key, "kmsKeyId", "Member must have length less than or equal to 256"),
        ));
    }
    request.tags.as_ref().map_or(Ok(()), check_tags)
}

/// The log group a TagResource `resourceArn` names
/// (`arn:PARTITION:logs:REGION:ACCOUNT:log-group:NAME`, optionally ending in `:*`).
pub fn group_from_arn(arn: &str) -> Result<&str, Rejection> {
    let name = arn
        .split_once(":log-group:")
        .filter(|(head, _)| head.starts_with("arn:") && head.contains(":logs:"))
        .map(|(_, name)| name.strip_suffix(":*").unwrap_or(name));
    match name {
        Some(name) if !name.is_empty() => Ok(name),
        _ => {
            Err(Rejection::invalid(RejectReason::InvalidResourceArn, format!("Invalid resource ARN: {arn}")))
        }
    }
}

/// What a valid PutLogEvents batch carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchStats {
    /// Number of events.
    pub events: u32,
    /// Σ(message bytes + 26): CloudWatch's measure of the batch.
    pub bytes: u64,
}

/// Checks a log group name: 1–512 characters of `[A-Za-z0-9_\-/.#]`; with `creating`, also
/// that it does not start with `aws/` (only CreateLogGroup enforces that).
pub fn check_group_name(name: &str, creating: bool) -> Result<(), Rejection> {
    let field = "logGroupName";
    if name.is_empty() {
        return Err(Rejection::invalid(
            RejectReason::InvalidGroupName,
            validation_error(name, field, "Member must have length greater than or equal to 1"),
        ));
    }
    // The allowed alphabet is ASCII, so byte length equals character length for valid names;
    // check the alphabet first so the length check below can count bytes.
    let valid_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'/' | b'.' | b'#');
    if !name.bytes().all(valid_char) {
        return Err(Rejection::invalid(
            RejectReason::InvalidGroupName,
            validation_error(
                name,
                field,
                r"Member must satisfy regular expression pattern: [\.\-_/#A-Za-z0-9]+",
            ),
        ));
    }
    if name.len() > MAX_NAME_CHARS {
        return Err(Rejection::invalid(
            RejectReason::InvalidGroupName,
            validation_error(name, field, "Member must have length less than or equal to 512"),
        ));
    }
    if creating && name.starts_with(RESERVED_GROUP_PREFIX) {
        return Err(Rejection::invalid(
            RejectReason::ReservedGroupPrefix,
            format!("Log group name must not start with '{RESERVED_GROUP_PREFIX}': {name}"),
        ));
    }
    Ok(())
}

/// Checks a log stream name: 1–512 characters, none of them `:` or `*`.
pub fn check_stream_name(name: &str) -> Result<(), Rejection> {
    let field = "logStreamName";
    if name.is_empty() {
        return Err(Rejection::invalid(
            RejectReason::InvalidStreamName,
            validation_error(name, field, "Member must have length greater than or equal to 1"),
        ));
    }
    if name.contains([':', '*']) {
        return Err(Rejection::invalid(
            RejectReason::InvalidStreamName,
            validation_error(name, field, "Member must satisfy regular expression pattern: [^:*]*"),
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(Rejection::invalid(
            RejectReason::InvalidStreamName,
            validation_error(name, field, "Member must have length less than or equal to 512"),
        ));
    }
    Ok(())
}

/// Checks a whole PutLogEvents request in one pass over its events and returns its size.
///
/// Order of checks: names, event count, per-event rules (empty, too large, order), batch
/// size, span — model constraints before service-level ones, as CloudWatch does.
pub fn check_put_log_events(request: &PutLogEventsRequest<'_>) -> Result<BatchStats, Rejection> {
    check_group_name(&request.log_group_name, false)?;
    check_stream_name(&request.log_stream_name)?;
    let events = &request.log_events;
    if events.is_empty() {
        return Err(Rejection::invalid(
            RejectReason::NoEvents,
            validation_error("[]", "logEvents", "Member must have length greater than or equal to 1"),
        ));
    }
    if events.len() > MAX_BATCH_EVENTS {
        return Err(Rejection::invalid(
            RejectReason::TooManyEvents,
            format!(
                "1 validation error detected: Value with {} events at 'logEvents' failed to satisfy constraint: Member must have length less than or equal to {MAX_BATCH_EVENTS}",
                events.len()
            ),
        ));
    }
    let mut total: usize = 0;
    let mut previous = i64::MIN;
    for (index, event) in events.iter().enumerate() {
        let size = event.message.len() + EVENT_OVERHEAD_BYTES;
        if event.message.is_empty() {
            return Err(Rejection::invalid(
                RejectReason::EmptyMessage,
                validation_error(
                    "",
                    &format!("logEvents.{}.member.message", index + 1),
                    "Member must have length greater than or equal to 1",
                ),
            ));
        }
        if size > MAX_EVENT_BYTES {
            return Err(Rejection::invalid(
                RejectReason::EventTooLarge,
                format!("Log event too large: {size} bytes exceeds limit of {MAX_EVENT_BYTES}"),
            ));
        }
        if event.timestamp < previous {
            return Err(Rejection::invalid(
                RejectReason::NotChronological,
                "Log events in a single PutLogEvents request must be in chronological order.".to_owned(),
            ));
        }
        previous = event.timestamp;
        total += size;
    }
    if total > MAX_BATCH_BYTES {
        return Err(Rejection::invalid(
            RejectReason::BatchTooLarge,
            format!("Upload too large: {total} bytes exceeds limit of {MAX_BATCH_BYTES}"),
        ));
    }
    // Sorted (checked above), so the span is last minus first.
    let span = events[events.len() - 1].timestamp.saturating_sub(events[0].timestamp);
    if span > MAX_BATCH_SPAN_MS {
        return Err(Rejection::invalid(
            RejectReason::SpanTooLong,
            "The batch of log events in a single PutLogEvents request cannot span more than 24 hours."
                .to_owned(),
        ));
    }
    Ok(BatchStats { events: u32::try_from(events.len()).unwrap_or(u32::MAX), bytes: total as u64 })
}

/// A token bucket: `per_second` tokens per second, bursts up to `per_second`.
///
/// The caller passes the clock so tests are deterministic.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilling at `per_second` (at least 1).
    pub fn new(per_second: u32, now: Instant) -> Self {
        let per_second = f64::from(per_second.max(1));
        Self { per_second, tokens: per_second, last: now }
    }

    /// Takes one token if one is available at `now`.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed: Duration = now.saturating_duration_since(self.last);
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.per_second).min(self.per_second);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event(timestamp: i64, message: &str) -> InputLogEvent<'_> {
        InputLogEvent { timestamp, message: Cow::Borrowed(message) }
    }

    fn batch(events: Vec<InputLogEvent<'_>>) -> PutLogEventsRequest<'_> {
        PutLogEventsRequest {
            log_group_name: Cow::Borrowed("k8s_c_ns_app_c"),
            log_stream_name: Cow::Borrowed("pod_c"),
            log_events: events,
        }
    }

    fn reason(result: Result<BatchStats, Rejection>) -> RejectReason {
        match result {
            Err(rejection) => rejection.reason,
            Ok(stats) => panic!("expected a rejection, got {stats:?}"),
        }
    }

    #[test]
    fn batch_of_exactly_the_byte_limit_is_accepted_and_one_more_byte_is_not() {
        // 2 events: (a + 26) + (b + 26) == 1_048_576 with a = 524_262, b = 524_262.
        let half = "x".repeat(524_262);
        let ok = check_put_log_events(&batch(vec![event(1, &half), event(2, &half)]));
        assert_eq!(ok, Ok(BatchStats { events: 2, bytes: 1_048_576 }));

        let longer = "x".repeat(524_263);
        let over = check_put_log_events(&batch(vec![event(1, &half), event(2, &longer)]));
        assert_eq!(reason(over), RejectReason::BatchTooLarge);
    }

    #[test]
    fn bytes_are_utf8_bytes_not_characters() {
        // "é" is two bytes: 262_131 × 2 + 26 + (524_262 + 26) = 1_048_576.
        let accented = "é".repeat(262_131);
        let plain = "x".repeat(524_262);
        let ok = check_put_log_events(&batch(vec![event(1, &accented), event(1, &plain)]));
        assert_eq!(ok.map(|s| s.bytes), Ok(1_048_576));
        let accented = "é".repeat(262_132);
        let over = check_put_log_events(&batch(vec![event(1, &accented), event(1, &plain)]));
        assert_eq!(reason(over), RejectReason::BatchTooLarge);
    }

    #[test]
    fn single_event_of_exactly_one_mib_with_overhead_is_accepted_one_byte_more_is_not() {
        let max = "m".repeat(MAX_EVENT_BYTES - EVENT_OVERHEAD_BYTES);
        assert!(check_put_log_events(&batch(vec![event(1, &max)])).is_ok());
        let over = "m".repeat(MAX_EVENT_BYTES - EVENT_OVERHEAD_BYTES + 1);
        let rejected = check_put_log_events(&batch(vec![event(1, &over)]));
        assert_eq!(reason(rejected), RejectReason::EventTooLarge);
    }

    #[test]
    fn ten_thousand_events_are_accepted_ten_thousand_and_one_are_not() {
        let ok: Vec<_> = (0..10_000).map(|i| event(i, "a")).collect();
        assert_eq!(check_put_log_events(&batch(ok)).map(|s| s.events), Ok(10_000));
        let over: Vec<_> = (0..10_001).map(|i| event(i, "a")).collect();
        assert_eq!(reason(check_put_log_events(&batch(over))), RejectReason::TooManyEvents);
    }

    #[test]
    fn span_of_exactly_24_hours_is_accepted_one_ms_more_is_not() {
        let start = 1_700_000_000_000;
        let ok = batch(vec![event(start, "a"), event(start + MAX_BATCH_SPAN_MS, "b")]);
        assert!(check_put_log_events(&ok).is_ok());
        let over = batch(vec![event(start, "a"), event(start + MAX_BATCH_SPAN_MS + 1, "b")]);
        assert_eq!(reason(check_put_log_events(&over)), RejectReason::SpanTooLong);
    }

    #[test]
    fn unsorted_events_are_rejected_equal_timestamps_are_not() {
        let unsorted = batch(vec![event(5, "a"), event(4, "b")]);
        let rejection = check_put_log_events(&unsorted).expect_err("unsorted must fail");
        assert_eq!(rejection.reason, RejectReason::NotChronological);
        assert_eq!(rejection.error_type, "InvalidParameterException");
        assert_eq!(rejection.status, 400);
        assert!(check_put_log_events(&batch(vec![event(5, "a"), event(5, "b")])).is_ok());
    }

    #[test]
    fn empty_message_and_empty_batch_are_rejected() {
        let empty = batch(vec![event(1, "a"), event(2, "")]);
        let rejection = check_put_log_events(&empty).expect_err("empty message must fail");
        assert_eq!(rejection.reason, RejectReason::EmptyMessage);
        assert!(rejection.message.contains("logEvents.2.member.message"));
        assert_eq!(reason(check_put_log_events(&batch(vec![]))), RejectReason::NoEvents);
    }

    #[test]
    fn group_names_follow_the_pattern_length_and_reserved_prefix() {
        assert!(check_group_name("k8s_prod/ns-1.app#x", true).is_ok());
        assert!(check_group_name(&"g".repeat(512), true).is_ok());
        let cases = [
            ("", RejectReason::InvalidGroupName),
            ("has space", RejectReason::InvalidGroupName),
            ("colon:x", RejectReason::InvalidGroupName),
            ("ünïcode", RejectReason::InvalidGroupName),
            ("aws/lambda/x", RejectReason::ReservedGroupPrefix),
        ];
        for (name, expected) in cases {
            let got = check_group_name(name, true).map_err(|r| r.reason);
            assert_eq!(got, Err(expected), "group name {name:?}");
        }
        let too_long = "g".repeat(513);
        assert_eq!(
            check_group_name(&too_long, true).map_err(|r| r.reason),
            Err(RejectReason::InvalidGroupName)
        );
        // PutLogEvents does not apply the creation-only prefix rule.
        assert!(check_group_name("aws/lambda/x", false).is_ok());
    }

    #[test]
    fn stream_names_exclude_colon_and_star_and_count_characters() {
        assert!(check_stream_name("pod_container-1.x/y#z é").is_ok());
        assert!(check_stream_name(&"é".repeat(512)).is_ok());
        for name in ["", "a:b", "a*b"] {
            assert!(check_stream_name(name).is_err(), "stream name {name:?}");
        }
        assert!(check_stream_name(&"s".repeat(513)).is_err());
        let rejected = check_put_log_events(&PutLogEventsRequest {
            log_group_name: Cow::Borrowed("g"),
            log_stream_name: Cow::Borrowed("a*b"),
            log_events: vec![event(1, "a")],
        });
        assert_eq!(reason(rejected), RejectReason::InvalidStreamName);
    }

    #[test]
    fn retention_must_be_one_of_the_service_values() {
        for days in VALID_RETENTION_DAYS {
            assert_eq!(check_retention(Some(&serde_json::json!(days))), Ok(days));
        }
        for bad in
            [serde_json::json!(0), serde_json::json!(31), serde_json::json!(-1), serde_json::json!("7")]
        {
            let rejection = check_retention(Some(&bad)).expect_err("invalid retention");
            assert_eq!(rejection.reason, RejectReason::InvalidRetention);
            assert_eq!(rejection.error_type, "InvalidParameterException");
            assert!(rejection.message.contains("retentionInDays"), "{}", rejection.message);
            assert!(rejection.message.contains("3653]"), "{}", rejection.message);
        }
        assert!(check_retention(None).is_err());
    }

    #[test]
    fn create_settings_and_tags_follow_the_model() {
        let ok = GroupSettingsRequest {
            log_group_class: Some("INFREQUENT_ACCESS".into()),
            kms_key_id: Some("arn:aws:kms:us-east-1:1:key/x".into()),
            tags: Some([("team".to_owned(), "a b@c".to_owned())].into()),
            ..GroupSettingsRequest::default()
        };
        assert!(check_create_settings(&ok).is_ok());
        let class = GroupSettingsRequest { log_group_class: Some("COLD".into()), ..Default::default() };
        assert_eq!(check_create_settings(&class).map_err(|r| r.reason), Err(RejectReason::InvalidGroupClass));
        let many: std::collections::BTreeMap<_, _> =
            (0..51).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(check_tags(&many).map_err(|r| r.reason), Err(RejectReason::InvalidTags));
        for (k, v) in [("", "v"), ("aws:x", "v"), ("k", "semi;colon"), ("k!", "v")] {
            let tags = [(k.to_owned(), v.to_owned())].into();
            assert!(check_tags(&tags).is_err(), "{k:?}={v:?}");
        }
    }

    #[test]
    fn tag_resource_arns_name_their_group() {
        assert_eq!(group_from_arn("arn:aws:logs:us-east-1:123:log-group:k8s_a_b"), Ok("k8s_a_b"));
        assert_eq!(group_from_arn("arn:aws:logs:us-east-1:123:log-group:k8s/x:*"), Ok("k8s/x"));
        assert!(group_from_arn("arn:aws:s3:::bucket").is_err());
        assert!(group_from_arn("k8s_a_b").is_err());
    }

    #[test]
    fn throttled_answer_is_aws_throttling_exception() {
        let throttled = Rejection::throttled();
        assert_eq!(throttled.status, 400);
        assert_eq!(throttled.error_type, "ThrottlingException");
        assert_eq!(throttled.message, "Rate exceeded");
    }

    #[test]
    fn token_bucket_allows_ten_per_second_then_refills() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, start);
        for call in 0..10 {
            assert!(bucket.try_take(start), "call {call} within the burst");
        }
        assert!(!bucket.try_take(start), "11th call in the same instant");
        assert!(!bucket.try_take(start + Duration::from_millis(99)));
        assert!(bucket.try_take(start + Duration::from_millis(100)));
        assert!(!bucket.try_take(start + Duration::from_millis(100)));
        // A long pause refills to the burst size, not beyond.
        let later = start + Duration::from_secs(60);
        let granted = (0..20).filter(|_| bucket.try_take(later)).count();
        assert_eq!(granted, 10);
    }

    proptest! {
        /// The verdict on size matches the arithmetic definition for any message sizes.
        #[test]
        fn size_verdict_matches_definition(sizes in proptest::collection::vec(1usize..200_000, 1..12)) {
            let messages: Vec<String> = sizes.iter().map(|&n| "z".repeat(n)).collect();
            let events = messages.iter().map(|m| event(0, m)).collect();
            let expected: usize = sizes.iter().map(|n| n + 26).sum();
            match check_put_log_events(&batch(events)) {
                Ok(stats) => {
                    prop_assert!(expected <= MAX_BATCH_BYTES);
                    prop_assert_eq!(stats.bytes, expected as u64);
                }
                Err(rejection) => {
                    prop_assert!(expected > MAX_BATCH_BYTES);
                    prop_assert_eq!(rejection.reason, RejectReason::BatchTooLarge);
                }
            }
        }

        /// Any sorted batch within a day is accepted; swapping two distinct timestamps is not.
        #[test]
        fn order_verdict(stamps in proptest::collection::vec(0i64..MAX_BATCH_SPAN_MS, 2..50)) {
            let mut stamps = stamps;
            stamps.sort_unstable();
            let sorted = stamps.iter().map(|&t| event(t, "m")).collect();
            prop_assert!(check_put_log_events(&batch(sorted)).is_ok());
            if stamps[0] != stamps[stamps.len() - 1] {
                stamps.reverse();
                let reversed = stamps.iter().map(|&t| event(t, "m")).collect();
                prop_assert_eq!(
                    reason(check_put_log_events(&batch(reversed))),
                    RejectReason::NotChronological
                );
            }
        }

        /// Stream names are valid exactly when 1..=512 chars without ':' or '*'.
        #[test]
        fn stream_name_verdict(name in "[a-z:*é_]{0,600}") {
            let expected = !name.is_empty()
                && name.chars().count() <= 512
                && !name.contains(':')
                && !name.contains('*');
            prop_assert_eq!(check_stream_name(&name).is_ok(), expected);
        }
    }
}
