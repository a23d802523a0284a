//! `role_arn`: the node's credentials only call STS, the role's sign every CloudWatch Logs
//! call, they are renewed before they expire, and an STS that refuses delays the data
//! without losing it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_sdk_cloudwatchlogs::config::retry::RetryConfig;
use aws_sdk_cloudwatchlogs::config::{Credentials, Region};
use tokio_util::sync::CancellationToken;

use super::client::client_from_config;
use super::testing::{FakeCloudWatch, Op, fast_options};
use super::testing_sts::issued_key;
use super::*;
use crate::config::AssumeRole;

const GROUP: &str = "k8s_test_default_app_main";
const STREAM: &str = "pod-1_main";
const NODE_KEY: &str = "AKIDNODEIDENTITY";

fn role() -> AssumeRole {
    AssumeRole {
        role_arn: "arn:aws:iam::210987654321:role/log-writer".into(),
        external_id: Some("tenant-7f3a".into()),
        session_name: "shipper-node-a".into(),
    }
}

/// A sink whose SDK config names `url` for every service (CloudWatch Logs and STS) and the
/// node's own static credentials, as the default chain would find them.
async fn sink(
    fake: &FakeCloudWatch,
    dir: &std::path::Path,
    role: Option<&AssumeRole>,
) -> (CloudWatch, Arc<Metrics>) {
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&fake.url)
        .credentials_provider(Credentials::new(NODE_KEY, "node-secret", None, None, "node"))
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    let client = client_from_config(&shared, role).await;
    let options = fast_options(dir, GroupOptions::default());
    let metrics = Arc::new(Metrics::default());
    (CloudWatch::new(client, options, Arc::clone(&metrics)), metrics)
}

fn batch(message: &str) -> Batch {
    let now = unix_ms(SystemTime::now());
    Batch {
        dest: Arc::new(Destination { group: GROUP.into(), stream: STREAM.into() }),
        events: vec![Event { timestamp_ms: now, message: message.into() }],
    }
}

async fn send(cw: &CloudWatch, message: &str) -> DeliveryReport {
    let (batch, cancel) = (batch(message), CancellationToken::new());
    let fut = cw.deliver(&batch, &cancel);
    tokio::time::timeout(Duration::from_secs(30), fut).await.expect("deliver did not finish").unwrap()
}

#[tokio::test]
async fn the_role_signs_every_call_and_the_node_identity_only_assumes_it() {
    let fake = FakeCloudWatch::start().await;
    fake.with_stream(GROUP, Some(STREAM));
    let dir = tempfile::tempdir().unwrap();
    let (cw, _) = sink(&fake, dir.path(), Some(&role())).await;

    send(&cw, "one").await;
    send(&cw, "two").await;

    let sts = fake.sts_calls();
    assert_eq!(sts.len(), 1, "an hour-long credential is fetched once: {sts:?}");
    let call = &sts[0];
    assert_eq!(call["Action"], "AssumeRole");
    assert_eq!(call["RoleArn"], "arn:aws:iam::210987654321:role/log-writer");
    assert_eq!(call["ExternalId"], "tenant-7f3a");
    assert_eq!(call["RoleSessionName"], "shipper-node-a");
    assert_eq!(call["signer"], NODE_KEY, "the node's own identity asks for the role");
    assert_eq!(fake.calls(), vec![Op::PutLogEvents, Op::PutLogEvents]);
    assert_eq!(fake.signers(), vec![issued_key(1), issued_key(1)], "the role signs the data");
    assert_eq!(fake.stored(GROUP, STREAM).len(), 2);
}

#[tokio::test]
async fn without_a_role_the_node_identity_signs_and_sts_is_never_called() {
    let fake = FakeCloudWatch::start().await;
    fake.with_stream(GROUP, Some(STREAM));
    let dir = tempfile::tempdir().unwrap();
    let (cw, _) = sink(&fake, dir.path(), None).await;

    send(&cw, "one").await;

    assert!(fake.sts_calls().is_empty());
    assert_eq!(fake.signers(), vec![NODE_KEY.to_owned()]);
}

#[tokio::test]
async fn credentials_close_to_expiry_are_renewed_before_the_next_call() {
    let fake = FakeCloudWatch::start().await;
    fake.with_stream(GROUP, Some(STREAM));
    // Valid for two more minutes: inside the renewal window, so each call assumes again
    // rather than sending with credentials about to expire.
    fake.sts(Duration::from_secs(120), 0);
    let dir = tempfile::tempdir().unwrap();
    let (cw, _) = sink(&fake, dir.path(), Some(&role())).await;

    send(&cw, "one").await;
    send(&cw, "two").await;

    assert_eq!(fake.sts_calls().len(), 2);
    assert_eq!(fake.signers(), vec![issued_key(1), issued_key(2)]);
}

#[tokio::test]
async fn a_refused_assume_role_delays_the_data_and_loses_nothing() {
    let fake = FakeCloudWatch::start().await;
    fake.with_stream(GROUP, Some(STREAM));
    fake.sts(Duration::from_secs(3600), 3);
    let dir = tempfile::tempdir().unwrap();
    let (cw, metrics) = sink(&fake, dir.path(), Some(&role())).await;

    let report = send(&cw, "waits").await;

    assert_eq!((report.accepted, report.retries), (1, 3), "{report:?}");
    assert!(report.dropped.is_empty());
    assert_eq!(metrics.put_requests_total(PutOutcome::Credentials), 3);
    assert_eq!(fake.sts_calls().len(), 4);
    assert_eq!(fake.signers(), vec![issued_key(1)], "no call went out unsigned by the role");
    assert_eq!(fake.stored(GROUP, STREAM).len(), 1);
}
