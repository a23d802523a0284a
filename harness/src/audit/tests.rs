//! Verdict unit tests: deliveries built by hand, expectations written out literally.

use super::*;

const RUN: &str = "run1";

fn envelope(log: &str, pod: &str, container: &str) -> String {
    serde_json::json!({
        "log": log, "namespace": "default", "pod_name": pod, "container_name": container,
        "container_image": "busybox", "host": "node-1",
    })
    .to_string()
}

fn text(pod: &str, seq: u64, class: LineClass) -> String {
    Payload::expected_text(&Payload::line(RUN, pod, "app", seq, class).unwrap())
}

fn events(logs: &[String], pod: &str) -> Vec<DeliveredEvent> {
    logs.iter()
        .enumerate()
        .map(|(i, log)| DeliveredEvent { timestamp: i as i64, message: envelope(log, pod, "app") })
        .collect()
}

fn delivered(streams: &[(&str, &str, Vec<DeliveredEvent>)]) -> Delivered {
    let mut delivered = Delivered::default();
    for (group, stream, events) in streams {
        delivered.groups.entry((*group).to_owned()).or_default().insert((*stream).to_owned(), events.clone());
    }
    delivered
}

fn ledger(pod: &str, seqs: std::ops::Range<u64>, class: LineClass) -> Ledger {
    let mut ledger = Ledger::new(RUN);
    for seq in seqs {
        ledger.record_payload(pod, "app", seq, class);
    }
    ledger
}

fn source(pod: &str) -> SourceKey {
    SourceKey { pod: pod.into(), container: "app".into() }
}

const SMALL: LineClass = LineClass { size: SizeClass::B100, charset: Charset::Ascii };

#[test]
fn complete_delivery_is_clean() {
    let ledger = ledger("web", 0..5, SMALL);
    let logs: Vec<_> = (0..5).map(|s| text("web", s, SMALL)).collect();
    let verdict = verdict(&ledger, &delivered(&[("g", "web_app", events(&logs, "web"))]));
    assert!(verdict.is_clean(), "{verdict:#?}");
    assert_eq!(verdict.sources[&source("web")].delivered, 5);
    assert_eq!(verdict.streams["g"]["web_app"], StreamCounts { events: 5, lines: 5 });
    assert_eq!(verdict.layout["g"].iter().collect::<Vec<_>>(), vec!["web_app"]);
}

#[test]
fn missing_lines_are_reported_as_ranges() {
    let ledger = ledger("web", 0..10, SMALL);
    let logs: Vec<_> = [0, 1, 4, 5, 6, 8].iter().map(|s| text("web", *s, SMALL)).collect();
    let verdict = verdict(&ledger, &delivered(&[("g", "s", events(&logs, "web"))]));
    assert_eq!(
        verdict.missing[&source("web")],
        vec![SeqRange { first: 2, last: 3 }, SeqRange { first: 7, last: 7 }, SeqRange { first: 9, last: 9 },]
    );
    assert_eq!(verdict.missing_count(), 4);
    assert!(!verdict.is_clean());
}

#[test]
fn a_source_with_nothing_delivered_is_missing_entirely() {
    let mut ledger = ledger("web", 0..3, SMALL);
    ledger.record_payload("db", "app", 0, SMALL);
    let logs: Vec<_> = (0..3).map(|s| text("web", s, SMALL)).collect();
    let verdict = verdict(&ledger, &delivered(&[("g", "s", events(&logs, "web"))]));
    assert_eq!(verdict.missing[&source("db")], vec![SeqRange { first: 0, last: 0 }]);
    assert!(!verdict.missing.contains_key(&source("web")));
}

#[test]
fn duplicates_are_counted_not_failed() {
    let ledger = ledger("web", 0..3, SMALL);
    let logs: Vec<_> = [0, 1, 2, 1, 2].iter().map(|s| text("web", *s, SMALL)).collect();
    let verdict = verdict(&ledger, &delivered(&[("g", "s", events(&logs, "web"))]));
    assert!(verdict.is_clean());
    assert_eq!(verdict.duplicates, 2);
    assert_eq!(verdict.sources[&source("web")].duplicates, 2);
    assert_eq!(verdict.sources[&source("web")].out_of_order, 0);
}

#[test]
fn out_of_order_first_deliveries_are_counted() {
    let ledger = ledger("web", 0..3, SMALL);
    let logs: Vec<_> = [0, 2, 1].iter().map(|s| text("web", *s, SMALL)).collect();
    let verdict = verdict(&ledger, &delivered(&[("g", "s", events(&logs, "web"))]));
    assert_eq!(verdict.sources[&source("web")].out_of_order, 1);
}

#[test]
fn corrupted_lines_are_caught() {
    let ledger = ledger("web", 0..3, SMALL);
    let mut tampered = text("web", 1, SMALL);
    tampered.replace_range(90..91, "#");
    let logs = vec![text("web", 0, SMALL), tampered, "not a payload".to_owned()];
    let mut evs = events(&logs, "web");
    evs.push(DeliveredEvent { timestamp: 9, message: "{not json".into() });
    // Right text, wrong envelope: routed under another pod's name.
    evs.push(DeliveredEvent { timestamp: 10, message: envelope(&text("web", 2, SMALL), "db", "app") });
    let verdict = verdict(&ledger, &delivered(&[("g", "s", evs)]));
    let reasons: Vec<_> = verdict.corrupted.iter().map(|f| (f.event, f.reason.as_str())).collect();
    assert_eq!(verdict.corrupted.len(), 4, "{reasons:#?}");
    assert_eq!(verdict.corrupted[0].event, 1);
    assert!(verdict.corrupted[0].reason.contains("first difference at byte 90"), "{reasons:?}");
    assert!(verdict.corrupted[3].reason.contains("envelope names db/app"));
    assert_eq!(verdict.missing[&source("web")], vec![SeqRange { first: 1, last: 2 }]);
}

#[test]
fn lines_of_other_runs_or_unknown_seqs_are_spurious() {
    let ledger = ledger("web", 0..1, SMALL);
    let foreign = Payload::expected_text(&Payload::line("run2", "web", "app", 0, SMALL).unwrap());
    let logs = vec![text("web", 0, SMALL), foreign, text("web", 7, SMALL)];
    let verdict = verdict(&ledger, &delivered(&[("g", "s", events(&logs, "web"))]));
    assert_eq!(verdict.spurious.len(), 2);
    assert_eq!(verdict.spurious[1].key.as_ref().map(|k| k.seq), Some(7));
    assert!(verdict.corrupted.is_empty());
}

/// Split `line` into pieces of at most `max` bytes on char boundaries, marking all but the
/// last with the continuation marker — what the shipper does with lines over 1 MiB.
fn split_for_size(line: &str, max: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut rest = line;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        pieces.push(format!("{}{CONTINUATION_MARKER}", &rest[..cut]));
        rest = &rest[cut..];
    }
    pieces.push(rest.to_owned());
    pieces
}

#[test]
fn split_lines_are_reassembled() {
    let big = LineClass { size: SizeClass::OverMiB, charset: Charset::Unicode };
    let mut ledger = ledger("web", 0..2, big);
    ledger.record_payload("web", "app", 2, SMALL);
    let mut logs = split_for_size(&text("web", 0, big), 700_000);
    logs.extend(split_for_size(&text("web", 1, big), 400_000));
    logs.push(text("web", 2, SMALL));
    assert_eq!(logs.len(), 2 + 3 + 1);
    let verdict = verdict(&ledger, &delivered(&[("g", "s", events(&logs, "web"))]));
    assert!(verdict.is_clean(), "{verdict:#?}");
    assert_eq!(verdict.streams["g"]["s"], StreamCounts { events: 6, lines: 3 });
}

#[test]
fn a_split_line_missing_its_tail_is_corrupted() {
    let big = LineClass::ascii(SizeClass::OverMiB);
    let ledger = ledger("web", 0..2, big);
    let first = split_for_size(&text("web", 0, big), 700_000);
    let second = split_for_size(&text("web", 1, big), 700_000);
    // Line 0 loses its tail; line 1 loses its tail at the end of the stream.
    let logs = vec![first[0].clone(), second[0].clone()];
    let verdict = verdict(&ledger, &delivered(&[("g", "s", events(&logs, "web"))]));
    assert_eq!(verdict.corrupted.len(), 2, "{:#?}", verdict.corrupted);
    assert!(verdict.corrupted[0].reason.contains("cut short"));
    assert!(verdict.corrupted[1].reason.contains("never completed"));
    assert_eq!(verdict.corrupted[1].key.as_ref().map(|k| k.seq), Some(1));
    assert_eq!(verdict.missing_count(), 2);
}

#[test]
fn repaired_invalid_utf8_must_match_exactly() {
    let class = LineClass { size: SizeClass::K16Plus1, charset: Charset::InvalidUtf8 };
    let ledger = ledger("web", 0..2, class);
    let raw = Payload::line(RUN, "web", "app", 1, class).unwrap();
    // A shipper that drops invalid bytes instead of repairing them.
    let dropped: Vec<u8> = raw.iter().copied().filter(|b| b.is_ascii()).collect();
    let logs = vec![text("web", 0, class), String::from_utf8(dropped).unwrap()];
    let verdict = verdict(&ledger, &delivered(&[("g", "s", events(&logs, "web"))]));
    assert_eq!(verdict.corrupted.len(), 1);
    assert_eq!(verdict.missing[&source("web")], vec![SeqRange { first: 1, last: 1 }]);
}

#[test]
fn verdict_serialises_for_the_report() {
    let ledger = ledger("web", 0..4, SMALL);
    let logs: Vec<_> = [0, 3, 3].iter().map(|s| text("web", *s, SMALL)).collect();
    let verdict = verdict(&ledger, &delivered(&[("k8s_c_default_web_app", "web_app", events(&logs, "web"))]));
    insta::assert_yaml_snapshot!(verdict);
}
