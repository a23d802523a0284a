//! A real moto server (installed into the cache venv on first run): provisioning, health,
//! read-back pagination and the verdict over real API round trips.

use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use harness::audit::{Ledger, LineClass, Payload, SizeClass, read_all, verdict};
use harness::backend::{Backend, BackendKind};

/// Events per PutLogEvents call: several calls, more than one GetLogEvents page in total.
const BATCH: usize = 4_000;
const BATCHES: usize = 3;

fn envelope(log: &str, pod: &str) -> String {
    serde_json::json!({
        "log": log, "namespace": "default", "pod_name": pod, "container_name": "app",
        "container_image": "busybox", "host": "node-1",
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_round_trip_reads_everything_back_with_pagination() {
    let backend = Backend::start(BackendKind::Moto).await.unwrap();
    assert!(backend.endpoint.starts_with("http://127.0.0.1:"));
    let client = backend.client();

    let group = "k8s_test_default_web_app";
    let stream = "web-0_app";
    client.create_log_group().log_group_name(group).send().await.unwrap();
    client.create_log_stream().log_group_name(group).log_stream_name(stream).send().await.unwrap();
    // A second group with an empty stream: the layout must show it too.
    client.create_log_group().log_group_name("other").send().await.unwrap();
    client.create_log_stream().log_group_name("other").log_stream_name("empty").send().await.unwrap();

    let class = LineClass::ascii(SizeClass::B100);
    let mut ledger = Ledger::new("moto-run");
    let base_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
        as i64
        - 60_000;
    for batch in 0..BATCHES {
        let events = (0..BATCH).map(|i| {
            let seq = (batch * BATCH + i) as u64;
            ledger.record_payload("web-0", "app", seq, class);
            let raw = Payload::line("moto-run", "web-0", "app", seq, class).unwrap();
            InputLogEvent::builder()
                .timestamp(base_ms + seq as i64)
                .message(envelope(&Payload::expected_text(&raw), "web-0"))
                .build()
                .unwrap()
        });
        let events: Vec<_> = events.collect();
        client
            .put_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .set_log_events(Some(events))
            .send()
            .await
            .unwrap();
    }

    let delivered = read_all(&client).await.unwrap();
    let total = BATCH * BATCHES;
    assert!(total > 10_000);
    assert_eq!(delivered.event_count(), total);
    let events = &delivered.groups[group][stream];
    assert!(events.windows(2).all(|w| w[0].timestamp < w[1].timestamp), "order kept");
    assert_eq!(
        delivered
            .layout()
            .into_iter()
            .map(|(g, s)| (g, s.into_iter().collect::<Vec<_>>()))
            .collect::<Vec<_>>(),
        vec![(group.to_owned(), vec![stream.to_owned()]), ("other".to_owned(), vec!["empty".to_owned()]),]
    );

    let verdict = verdict(&ledger, &delivered);
    assert!(verdict.is_clean(), "{:?}", verdict.missing);
    assert_eq!(verdict.duplicates, 0);
    assert_eq!(verdict.streams[group][stream].lines, total as u64);

    backend.reset().await.unwrap();
    assert_eq!(read_all(&client).await.unwrap().event_count(), 0);
}

#[tokio::test]
async fn url_backend_is_used_as_given_and_cannot_be_reset() {
    let backend = Backend::start(BackendKind::Url("http://127.0.0.1:9/".into())).await.unwrap();
    assert_eq!(backend.endpoint, "http://127.0.0.1:9");
    assert!(backend.reset().await.is_err());
}
