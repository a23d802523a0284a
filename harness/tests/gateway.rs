//! The gateway seen from a real AWS SDK client, with an in-process fake upstream.
//!
//! Each test starts its own upstream (axum, recording every request) and gateway, and talks
//! to the gateway with `aws-sdk-cloudwatchlogs` (static credentials, retries disabled), so
//! what the SDK reports is exactly what the shipper would see.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::config::retry::RetryConfig;
use aws_sdk_cloudwatchlogs::config::timeout::TimeoutConfig;
use aws_sdk_cloudwatchlogs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cloudwatchlogs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatchlogs::operation::put_log_events::{PutLogEventsError, PutLogEventsOutput};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use harness::gateway::control::{Injected, State};
use harness::gateway::{Fault, FaultKind, Gateway, GatewayHandle, GatewayOptions, Outcome, RejectReason};
use reqwest::Url;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

/// A fake CloudWatch that records every request and acknowledges it.
#[derive(Debug, Clone, Default)]
struct Upstream {
    received: Arc<Mutex<Vec<Received>>>,
}

impl Upstream {
    async fn start() -> (Self, Url) {
        let upstream = Self::default();
        let recorder = upstream.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let recorder = recorder.clone();
            async move {
                let is_put =
                    headers.get("x-amz-target").is_some_and(|t| t.as_bytes().ends_with(b".PutLogEvents"));
                let is_describe =
                    headers.get("x-amz-target").is_some_and(|t| t.as_bytes().ends_with(b".DescribeLogGroups"));
                recorder.received.lock().expect("recorder lock").push(Received { headers, body });
                // Like moto 5.x: DescribeLogGroups without `logGroupClass`.
                let answer = if is_put {
                    r#"{"nextSequenceToken":"49650"}"#
                } else if is_describe {
                    r#"{"logGroups":[{"logGroupName":"k8s_cold","retentionInDays":3},{"logGroupName":"k8s_old"}]}"#
                } else {
                    "{}"
                };
                (StatusCode::OK, [("content-type", "application/x-amz-json-1.1")], answer)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let url = Url::parse(&format!("http://{addr}/")).expect("upstream url");
        (upstream, url)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("recorder lock").clone()
    }
}

async fn proxied() -> (Upstream, GatewayHandle) {
    let (upstream, url) = Upstream::start().await;
    let gateway =
        Gateway::start(GatewayOptions { upstream: Some(url), seed: 1, ..GatewayOptions::default() })
            .await
            .expect("gateway starts");
    (upstream, gateway)
}

fn client(gateway: &GatewayHandle, attempt_timeout: Duration) -> Client {
    let config = aws_sdk_cloudwatchlogs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(gateway.url().as_str().trim_end_matches('/'))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(attempt_timeout)
                .build(),
        )
        .build();
    Client::from_conf(config)
}

fn sdk(gateway: &GatewayHandle) -> Client {
    client(gateway, Duration::from_secs(20))
}

fn event(timestamp: i64, message: &str) -> InputLogEvent {
    InputLogEvent::builder().timestamp(timestamp).message(message).build().expect("valid event")
}

const T0: i64 = 1_700_000_000_000;

async fn put(
    client: &Client,
    events: Vec<InputLogEvent>,
) -> Result<PutLogEventsOutput, SdkError<PutLogEventsError, aws_sdk_cloudwatchlogs::config::http::HttpResponse>>
{
    client
        .put_log_events()
        .log_group_name("k8s_test_ns_app_c")
        .log_stream_name("pod_c")
        .set_log_events(Some(events))
        .send()
        .await
}

fn is_transport_failure<E, R>(error: &SdkError<E, R>) -> bool {
    matches!(error, SdkError::DispatchFailure(_) | SdkError::ResponseError(_) | SdkError::TimeoutError(_))
}

#[tokio::test]
async fn valid_put_reaches_the_upstream_unchanged() {
    let (upstream, gateway) = proxied().await;
    let output = put(&sdk(&gateway), vec![event(T0, "one"), event(T0 + 1, "two é")])
        .await
        .expect("valid put succeeds");
    assert_eq!(output.next_sequence_token(), Some("49650"));

    let received = upstream.received();
    assert_eq!(received.len(), 1);
    let forwarded = &received[0];
    assert_eq!(forwarded.headers["x-amz-target"], "Logs_20140328.PutLogEvents");
    assert!(forwarded.headers.contains_key("authorization"), "SigV4 header kept");
    let body: serde_json::Value = serde_json::from_slice(&forwarded.body).expect("json body");
    assert_eq!(body["logEvents"][1]["message"], "two é");

    // Byte-for-byte: odd spacing, key order and a custom header survive the proxy.
    let raw = br#"{ "logStreamName":"s" ,"logGroupName":"g",  "logEvents":[{"message":"x","timestamp":5}]}"#;
    let answer = reqwest::Client::new()
        .post(gateway.url())
        .header("x-amz-target", "Logs_20140328.PutLogEvents")
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-custom-probe", "kept")
        .body(raw.to_vec())
        .send()
        .await
        .expect("raw request");
    assert_eq!(answer.status(), 200);
    let received = upstream.received();
    assert_eq!(received.len(), 2);
    assert_eq!(&received[1].body[..], &raw[..]);
    assert_eq!(received[1].headers["x-custom-probe"], "kept");

    let summary = gateway.summary();
    assert_eq!(summary.outcomes.get("forwarded"), Some(&2));
    let totals = summary.accepted["k8s_test_ns_app_c"]["pod_c"];
    assert_eq!((totals.events, totals.bytes), (2, 3 + 6 + 2 * 26));
    let journal = gateway.journal();
    assert_eq!(journal[0].outcome, Outcome::Forwarded { status: 200 });
    assert_eq!(journal[0].stream.as_deref(), Some("pod_c"));
}

#[tokio::test]
async fn invalid_put_never_reaches_the_upstream() {
    let (upstream, gateway) = proxied().await;
    let client = sdk(&gateway);
    let error = put(&client, vec![event(T0 + 5, "later"), event(T0, "earlier")])
        .await
        .expect_err("unsorted batch is rejected");
    assert_eq!(error.code(), Some("InvalidParameterException"));
    assert!(matches!(error.into_service_error(), PutLogEventsError::InvalidParameterException(_)));

    let empty = put(&client, vec![event(T0, "")]).await.expect_err("empty message is rejected");
    assert_eq!(empty.code(), Some("InvalidParameterException"));

    assert!(upstream.received().is_empty());
    let summary = gateway.summary();
    assert_eq!(summary.rejected.get(&RejectReason::NotChronological), Some(&1));
    assert_eq!(summary.rejected.get(&RejectReason::EmptyMessage), Some(&1));
}

#[tokio::test]
async fn throttle_fault_is_an_aws_throttling_exception() {
    let (upstream, gateway) = proxied().await;
    gateway.inject(Fault::new(FaultKind::Throttle).only(["PutLogEvents"])).expect("valid fault");
    let error = put(&sdk(&gateway), vec![event(T0, "x")]).await.expect_err("throttled");
    assert_eq!(error.code(), Some("ThrottlingException"));
    assert_eq!(error.message(), Some("Rate exceeded"));
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(400));
    assert!(upstream.received().is_empty());

    // Operations outside `ops` pass.
    sdk(&gateway)
        .create_log_group()
        .log_group_name("k8s_other")
        .send()
        .await
        .expect("CreateLogGroup unaffected");
}

#[tokio::test]
async fn access_denied_scoped_to_groups_spares_the_other_groups() {
    let (upstream, gateway) = proxied().await;
    gateway.inject(Fault::new(FaultKind::AccessDenied).for_groups(["k8s_test_"])).expect("valid fault");
    let error = put(&sdk(&gateway), vec![event(T0, "x")]).await.expect_err("denied");
    assert_eq!(error.code(), Some("AccessDeniedException"));
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(400));
    assert!(upstream.received().is_empty(), "a denied call is never forwarded");

    sdk(&gateway)
        .create_log_group()
        .log_group_name("k8s_other")
        .send()
        .await
        .expect("a group outside the scope passes");
    assert_eq!(upstream.received().len(), 1);

    // Only answer-type faults can wait for the group name.
    let refused = gateway.inject(Fault::new(FaultKind::Blackhole).for_groups(["k8s_test_"]));
    assert!(refused.is_err(), "a blackhole acts before the body is read: {refused:?}");
}

#[tokio::test]
async fn service_unavailable_fault_is_a_503() {
    let (upstream, gateway) = proxied().await;
    gateway.inject(Fault::new(FaultKind::ServiceUnavailable)).expect("valid fault");
    let error = put(&sdk(&gateway), vec![event(T0, "x")]).await.expect_err("unavailable");
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(503));
    assert!(matches!(error.into_service_error(), PutLogEventsError::ServiceUnavailableException(_)));
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn ambiguous_fault_writes_upstream_but_the_client_sees_an_error() {
    let (upstream, gateway) = proxied().await;
    gateway.inject(Fault::new(FaultKind::Ambiguous)).expect("valid fault");
    let error = put(&sdk(&gateway), vec![event(T0, "landed")]).await.expect_err("answer dropped");
    assert!(is_transport_failure(&error), "got {error:?}");
    assert_eq!(upstream.received().len(), 1, "the write happened");
    let journal = gateway.journal();
    assert_eq!(
        journal[0].outcome,
        Outcome::Faulted { fault: FaultKind::Ambiguous, upstream_status: Some(200) }
    );
    assert_eq!(gateway.summary().accepted["k8s_test_ns_app_c"]["pod_c"].events, 1);
}

#[tokio::test]
async fn blackhole_times_the_client_out_and_clear_restores_service() {
    let (upstream, gateway) = proxied().await;
    gateway.inject(Fault::new(FaultKind::Blackhole)).expect("valid fault");
    let impatient = client(&gateway, Duration::from_millis(300));
    let error = put(&impatient, vec![event(T0, "lost")]).await.expect_err("never answered");
    assert!(matches!(error, SdkError::TimeoutError(_)), "got {error:?}");
    assert!(upstream.received().is_empty());

    gateway.clear();
    put(&sdk(&gateway), vec![event(T0, "after")]).await.expect("service restored");
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn refuse_is_a_connect_error_until_cleared() {
    let (upstream, gateway) = proxied().await;
    let client = sdk(&gateway);
    // A pooled keep-alive connection exists before the fault: it must be cut too.
    put(&client, vec![event(T0, "before")]).await.expect("healthy");

    gateway.inject(Fault::new(FaultKind::Refuse)).expect("valid fault");
    let error = put(&client, vec![event(T0, "refused")]).await.expect_err("refused");
    assert!(matches!(error, SdkError::DispatchFailure(_)), "got {error:?}");
    let fresh = sdk(&gateway);
    let error = put(&fresh, vec![event(T0, "refused")]).await.expect_err("refused on a new connection too");
    assert!(matches!(error, SdkError::DispatchFailure(_)), "got {error:?}");
    assert_eq!(upstream.received().len(), 1);

    gateway.clear();
    gateway.listening().await;
    put(&sdk(&gateway), vec![event(T0, "after")]).await.expect("listener re-opened");
    assert_eq!(upstream.received().len(), 2);
}

#[tokio::test]
async fn reset_cuts_the_request_before_it_is_forwarded() {
    let (upstream, gateway) = proxied().await;
    gateway.inject(Fault::new(FaultKind::Reset)).expect("valid fault");
    let error = put(&sdk(&gateway), vec![event(T0, "cut")]).await.expect_err("reset");
    assert!(is_transport_failure(&error), "got {error:?}");
    assert!(upstream.received().is_empty());
    assert_eq!(gateway.summary().faults.get("reset"), Some(&1));
}

#[tokio::test]
async fn sink_mode_validates_acknowledges_and_counts() {
    let gateway = Gateway::start(GatewayOptions::default()).await.expect("sink gateway");
    let client = sdk(&gateway);
    client.create_log_group().log_group_name("k8s_sink").send().await.expect("group acknowledged");
    client
        .create_log_stream()
        .log_group_name("k8s_sink")
        .log_stream_name("s1")
        .send()
        .await
        .expect("stream acknowledged");
    let output = client
        .put_log_events()
        .log_group_name("k8s_sink")
        .log_stream_name("s1")
        .log_events(event(T0, "abc"))
        .log_events(event(T0, "defg"))
        .send()
        .await
        .expect("put acknowledged");
    assert!(output.next_sequence_token().is_some());

    let reserved =
        client.create_log_group().log_group_name("aws/not-yours").send().await.expect_err("reserved prefix");
    assert_eq!(reserved.code(), Some("InvalidParameterException"));

    let summary = gateway.summary();
    assert_eq!(summary.outcomes.get("acknowledged"), Some(&3));
    let totals = summary.accepted["k8s_sink"]["s1"];
    assert_eq!((totals.events, totals.bytes, totals.requests), (2, 7 + 52, 1));
}

#[tokio::test]
async fn create_log_group_beyond_the_quota_is_throttled() {
    let gateway =
        Gateway::start(GatewayOptions { create_log_group_per_second: 1, ..GatewayOptions::default() })
            .await
            .expect("sink gateway");
    let client = sdk(&gateway);
    let mut throttled = 0;
    for index in 0..3 {
        match client.create_log_group().log_group_name(format!("k8s_quota_{index}")).send().await {
            Ok(_) => {}
            Err(error) => {
                assert_eq!(error.code(), Some("ThrottlingException"));
                throttled += 1;
            }
        }
    }
    assert!(throttled >= 1, "a burst of 3 exceeds 1 per second");
    assert_eq!(gateway.summary().rejected.get(&RejectReason::RateExceeded), Some(&throttled));
}

/// The account's PutLogEvents quota, shared by every client of the gateway: a burst beyond
/// it is throttled as CloudWatch throttles it, whichever client sends.
#[tokio::test]
async fn put_log_events_beyond_the_account_quota_is_throttled_for_every_client() {
    let gateway =
        Gateway::start(GatewayOptions { put_log_events_per_second: Some(2), ..GatewayOptions::default() })
            .await
            .expect("sink gateway");
    let (first, second) = (sdk(&gateway), sdk(&gateway));
    let mut throttled = 0;
    for index in 0..6 {
        let client = if index % 2 == 0 { &first } else { &second };
        if let Err(error) = put(client, vec![event(T0 + index, "x")]).await {
            assert_eq!(error.code(), Some("ThrottlingException"));
            throttled += 1;
        }
    }
    assert!(throttled >= 3, "6 calls at once against 2 per second: {throttled} throttled");
    assert_eq!(gateway.summary().rejected.get(&RejectReason::RateExceeded), Some(&throttled));
}

#[tokio::test]
async fn control_api_injects_lists_and_clears_faults() {
    let (upstream, gateway) = proxied().await;
    let http = reqwest::Client::new();
    let base = gateway.url();
    let injected: Injected = http
        .post(base.join("_gateway/faults").expect("url"))
        .body(r#"{"kind":"service_unavailable","ops":["PutLogEvents"]}"#)
        .send()
        .await
        .expect("post fault")
        .json()
        .await
        .expect("injected answer");
    let bad = http
        .post(base.join("_gateway/faults").expect("url"))
        .body(r#"{"kind":"throttle","probability":2}"#)
        .send()
        .await
        .expect("post bad fault");
    assert_eq!(bad.status(), 400);

    let error = put(&sdk(&gateway), vec![event(T0, "x")]).await.expect_err("503 via control API");
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(503));

    let state: State = http
        .get(base.join("_gateway/state").expect("url"))
        .send()
        .await
        .expect("get state")
        .json()
        .await
        .expect("state");
    assert_eq!(state.faults.len(), 1);
    assert_eq!(state.faults[0].id, injected.id);
    assert_eq!(state.summary.faults.get("service_unavailable"), Some(&1));

    let cleared =
        http.delete(base.join("_gateway/faults").expect("url")).send().await.expect("delete faults");
    assert_eq!(cleared.status(), 200);
    assert!(gateway.faults().is_empty());
    put(&sdk(&gateway), vec![event(T0, "x")]).await.expect("restored");
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn shaping_faults_delay_but_still_deliver() {
    let (upstream, gateway) = proxied().await;
    gateway.inject(Fault::new(FaultKind::Latency(Duration::from_millis(20)))).expect("valid fault");
    gateway.inject(Fault::new(FaultKind::Bandwidth(1_000_000))).expect("valid fault");
    put(&sdk(&gateway), vec![event(T0, "slow but sure")]).await.expect("shaped request still succeeds");
    assert_eq!(upstream.received().len(), 1);
    assert_eq!(gateway.journal()[0].outcome, Outcome::Forwarded { status: 200 });
}

#[tokio::test]
async fn put_retention_policy_accepts_only_the_service_values() {
    let (upstream, gateway) = proxied().await;
    let client = sdk(&gateway);
    let error = client
        .put_retention_policy()
        .log_group_name("k8s_a")
        .retention_in_days(31)
        .send()
        .await
        .expect_err("31 is not a retention CloudWatch knows");
    assert_eq!(error.code(), Some("InvalidParameterException"));
    let message = error.message().unwrap_or_default();
    assert!(message.contains("'31' at 'retentionInDays'"), "{message}");
    assert!(message.contains("enum value set: [1, 3, 5, 7, 14, 30"), "{message}");
    assert!(upstream.received().is_empty(), "an invalid call is never forwarded");
    let rejected = gateway
        .journal()
        .into_iter()
        .any(|e| matches!(e.outcome, Outcome::Rejected { reason: RejectReason::InvalidRetention, .. }));
    assert!(rejected, "journaled with its reason");

    client
        .put_retention_policy()
        .log_group_name("k8s_a")
        .retention_in_days(3653)
        .send()
        .await
        .expect("valid");
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn create_log_group_settings_are_checked_and_tags_need_tag_resource() {
    let (upstream, gateway) = proxied().await;
    let client = sdk(&gateway);
    let bad_class = client
        .create_log_group()
        .log_group_name("k8s_a")
        .log_group_class("COLD".into())
        .send()
        .await
        .expect_err("unknown class");
    assert_eq!(bad_class.code(), Some("InvalidParameterException"));
    let reserved = client
        .create_log_group()
        .log_group_name("k8s_a")
        .tags("aws:owner", "me")
        .send()
        .await
        .expect_err("reserved tag key");
    assert_eq!(reserved.code(), Some("InvalidParameterException"));
    assert!(upstream.received().is_empty());

    // A policy without logs:TagResource: CreateLogGroup with tags is denied, without tags not.
    gateway.inject(Fault::new(FaultKind::AccessDenied).only(["TagResource"])).expect("valid fault");
    let denied = client
        .create_log_group()
        .log_group_name("k8s_a")
        .tags("team", "platform")
        .send()
        .await
        .expect_err("tags need TagResource");
    assert_eq!(denied.code(), Some("AccessDeniedException"));
    assert!(denied.message().unwrap_or_default().contains("logs:TagResource"), "{denied:?}");
    let tag = client
        .tag_resource()
        .resource_arn("arn:aws:logs:us-east-1:123456789012:log-group:k8s_a")
        .tags("team", "platform")
        .send()
        .await
        .expect_err("TagResource denied");
    assert_eq!(tag.code(), Some("AccessDeniedException"));
    client
        .create_log_group()
        .log_group_name("k8s_a")
        .log_group_class(aws_sdk_cloudwatchlogs::types::LogGroupClass::InfrequentAccess)
        .kms_key_id("arn:aws:kms:us-east-1:123456789012:key/x")
        .send()
        .await
        .expect("no tags: allowed");
    assert_eq!(upstream.received().len(), 1);
    assert_eq!(gateway.group_classes().get("k8s_a").map(String::as_str), Some("INFREQUENT_ACCESS"));
}

#[tokio::test]
async fn access_denied_on_put_retention_policy_spares_the_data_calls() {
    let (upstream, gateway) = proxied().await;
    gateway.inject(Fault::new(FaultKind::AccessDenied).only(["PutRetentionPolicy"])).expect("valid fault");
    let client = sdk(&gateway);
    let error = client
        .put_retention_policy()
        .log_group_name("k8s_test_ns_app_c")
        .retention_in_days(14)
        .send()
        .await
        .expect_err("denied");
    assert_eq!(error.code(), Some("AccessDeniedException"));
    assert!(error.message().unwrap_or_default().contains("logs:PutRetentionPolicy"), "{error:?}");
    client.create_log_group().log_group_name("k8s_test_ns_app_c").send().await.expect("create passes");
    put(&client, vec![event(T0, "x")]).await.expect("put passes");
    assert_eq!(upstream.received().len(), 2);

    gateway.clear();
    gateway
        .inject(Fault::new(FaultKind::Throttle).only(["PutRetentionPolicy", "DescribeLogGroups"]))
        .expect("valid");
    let throttled = client.describe_log_groups().send().await.expect_err("throttled");
    assert_eq!(throttled.code(), Some("ThrottlingException"));
}

#[tokio::test]
async fn describe_log_groups_answers_the_class_the_emulator_drops() {
    let (_upstream, gateway) = proxied().await;
    let client = sdk(&gateway);
    client
        .create_log_group()
        .log_group_name("k8s_cold")
        .log_group_class(aws_sdk_cloudwatchlogs::types::LogGroupClass::InfrequentAccess)
        .send()
        .await
        .expect("created");
    let groups = client.describe_log_groups().send().await.expect("described");
    let classes: Vec<(Option<&str>, Option<&str>, Option<i32>)> = groups
        .log_groups()
        .iter()
        .map(|g| (g.log_group_name(), g.log_group_class().map(|c| c.as_str()), g.retention_in_days()))
        .collect();
    assert_eq!(
        classes,
        vec![
            (Some("k8s_cold"), Some("INFREQUENT_ACCESS"), Some(3)),
            (Some("k8s_old"), Some("STANDARD"), None)
        ]
    );
}
