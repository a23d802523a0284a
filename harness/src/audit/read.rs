//! Read back everything a CloudWatch Logs endpoint holds: every group, every stream, every
//! event, with full pagination and the emulators' quirks handled.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::error::DisplayErrorContext;

/// One event as stored by the backend.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeliveredEvent {
    /// Event timestamp, ms since the epoch.
    pub timestamp: i64,
    /// The message (the shipper's JSON envelope).
    pub message: String,
}

/// Everything read back: group → stream → events in the backend's order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Delivered {
    /// Events per group and stream.
    pub groups: BTreeMap<String, BTreeMap<String, Vec<DeliveredEvent>>>,
}

impl Delivered {
    /// Group → set of stream names (streams without events included).
    pub fn layout(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.groups
            .iter()
            .map(|(group, streams)| (group.clone(), streams.keys().cloned().collect()))
            .collect()
    }

    /// Number of events in all streams.
    pub fn event_count(&self) -> usize {
        self.groups.values().flat_map(|streams| streams.values()).map(Vec::len).sum()
    }
}

/// A call to the backend failed while reading back.
#[derive(Debug, thiserror::Error)]
#[error("{operation} on {target} failed: {message}")]
pub struct ReadError {
    /// The API operation.
    pub operation: &'static str,
    /// Group (and stream) it was about; `*` for the account.
    pub target: String,
    /// The SDK's full error chain.
    pub message: String,
}

fn read_error<E: std::error::Error>(operation: &'static str, target: String, error: E) -> ReadError {
    ReadError { operation, target, message: DisplayErrorContext(&error).to_string() }
}

/// Read every group → stream → event. Call it after the drain gate: it is a snapshot.
pub async fn read_all(client: &Client) -> Result<Delivered, ReadError> {
    let mut delivered = Delivered::default();
    for group in list_groups(client).await? {
        let mut streams = BTreeMap::new();
        for stream in list_streams(client, &group).await? {
            let events = read_stream(client, &group, &stream).await?;
            streams.insert(stream, events);
        }
        delivered.groups.insert(group, streams);
    }
    Ok(delivered)
}

/// DescribeLogGroups with `nextToken`. LocalStack ignores `limit`/`nextToken` and may
/// answer every page with all groups: a page adding nothing new, or a repeated token, ends it.
async fn list_groups(client: &Client) -> Result<BTreeSet<String>, ReadError> {
    let mut names = BTreeSet::new();
    let mut tokens_seen = HashSet::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .describe_log_groups()
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| read_error("DescribeLogGroups", "*".into(), e))?;
        let before = names.len();
        names.extend(page.log_groups().iter().filter_map(|g| g.log_group_name()).map(str::to_owned));
        match page.next_token() {
            Some(next) if names.len() > before && tokens_seen.insert(next.to_owned()) => {
                token = Some(next.to_owned());
            }
            _ => return Ok(names),
        }
    }
}

/// DescribeLogStreams with `nextToken` (same end rules as for groups).
async fn list_streams(client: &Client, group: &str) -> Result<BTreeSet<String>, ReadError> {
    let mut names = BTreeSet::new();
    let mut tokens_seen = HashSet::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .describe_log_streams()
            .log_group_name(group)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| read_error("DescribeLogStreams", group.to_owned(), e))?;
        let before = names.len();
        names.extend(page.log_streams().iter().filter_map(|s| s.log_stream_name()).map(str::to_owned));
        match page.next_token() {
            Some(next) if names.len() > before && tokens_seen.insert(next.to_owned()) => {
                token = Some(next.to_owned());
            }
            _ => return Ok(names),
        }
    }
}

/// Consecutive empty pages with fresh tokens we accept before giving up on a stream
/// (guards against a backend that never repeats its token).
const MAX_EMPTY_PAGES: usize = 3;

/// GetLogEvents from the head (without `startFromHead=true` the emulators answer with the
/// last page) until `nextForwardToken` repeats.
async fn read_stream(client: &Client, group: &str, stream: &str) -> Result<Vec<DeliveredEvent>, ReadError> {
    let mut events = Vec::new();
    let mut token: Option<String> = None;
    let mut empty_pages = 0;
    loop {
        let page = client
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(true)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| read_error("GetLogEvents", format!("{group}/{stream}"), e))?;
        events.extend(page.events().iter().map(|event| DeliveredEvent {
            timestamp: event.timestamp().unwrap_or_default(),
            message: event.message().unwrap_or_default().to_owned(),
        }));
        empty_pages = if page.events().is_empty() { empty_pages + 1 } else { 0 };
        let next = page.next_forward_token().map(str::to_owned);
        if next.is_none() || next == token || empty_pages >= MAX_EMPTY_PAGES {
            return Ok(events);
        }
        token = next;
    }
}
