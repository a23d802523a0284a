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

#[test]
fn excluded_sources_are_never_missing_and_leak_when_delivered() {
    let mut ledger = ledger("web", 0..3, SMALL);
    for seq in 0..4 {
        ledger.record_payload("web", "istio-proxy", seq, SMALL);
    }
    ledger.exclude("web", "istio-proxy");
    assert_eq!(ledger.len(), 3, "only lines the shipper must deliver");
    assert_eq!(ledger.excluded_len(), 4);
    assert!(!ledger.counts().contains_key(&("web".to_owned(), "istio-proxy".to_owned())));
    let logs: Vec<_> = (0..3).map(|s| text("web", s, SMALL)).collect();
    let clean = verdict(&ledger, &delivered(&[("g", "web_app", events(&logs, "web"))]));
    assert!(clean.is_clean(), "{clean:#?}");
    assert_eq!(clean.missing_count(), 0);

    // Two lines of the excluded sidecar show up anyway.
    let leaked: Vec<_> = [1, 3]
        .iter()
        .map(|seq| {
            let log = Payload::expected_text(&Payload::line(RUN, "web", "istio-proxy", *seq, SMALL).unwrap());
            DeliveredEvent { timestamp: 0, message: envelope(&log, "web", "istio-proxy") }
        })
        .collect();
    let found = verdict(
        &ledger,
        &delivered(&[("g", "web_app", events(&logs, "web")), ("g2", "web_istio-proxy", leaked)]),
    );
    assert!(!found.is_clean());
    assert_eq!(found.leaked.len(), 2, "{found:#?}");
    assert_eq!(found.leaked[1].key.as_ref().map(|k| k.seq), Some(3));
    assert!(found.spurious.is_empty() && found.corrupted.is_empty());
    assert_eq!(found.missing_count(), 0, "a leak is not a loss elsewhere");
}

fn trace_ledger(kind: TraceKind, seqs: std::ops::Range<u64>) -> Ledger {
    let mut ledger = Ledger::new(RUN);
    for seq in seqs {
        ledger.record_trace("web", "app", seq, kind);
    }
    ledger
}

fn trace(kind: TraceKind, seq: u64) -> String {
    kind.text(RUN, "web", "app", seq).unwrap()
}

#[test]
fn a_trace_delivered_as_one_event_is_clean() {
    for kind in [TraceKind::Java, TraceKind::Python] {
        let ledger = trace_ledger(kind, 0..4);
        let logs: Vec<_> = (0..4).map(|s| trace(kind, s)).collect();
        let v = verdict(&ledger, &delivered(&[("g", "s", events(&logs, "web"))]));
        assert!(v.is_clean(), "{kind}: {v:#?}");
        assert_eq!(v.sources[&source("web")].delivered, 4);
    }
}

#[test]
fn a_trace_delivered_in_pieces_is_a_split_not_a_loss() {
    for kind in [TraceKind::Java, TraceKind::Python] {
        let ledger = trace_ledger(kind, 0..4);
        // Trace 1 line by line, trace 3 in two pieces cut between lines; 0 and 2 whole.
        let mut logs = vec![trace(kind, 0)];
        logs.extend(trace(kind, 1).split('\n').map(str::to_owned));
        logs.push(trace(kind, 2));
        let three = trace(kind, 3);
        let lines: Vec<&str> = three.split('\n').collect();
        logs.push(lines[..3].join("\n"));
        logs.push(lines[3..].join("\n"));
        let v = verdict(&ledger, &delivered(&[("g", "s", events(&logs, "web"))]));
        assert_eq!(v.missing_count(), 0, "{kind}: {v:#?}");
        assert!(v.corrupted.is_empty() && v.spurious.is_empty(), "{kind}: {v:#?}");
        assert_eq!(v.split_traces.len(), 2, "{kind}: {:#?}", v.split_traces);
        let n = trace(kind, 1).split('\n').count();
        assert_eq!(v.split_traces[0].key.as_ref().map(|k| k.seq), Some(1));
        assert_eq!(v.split_traces[0].event, 1);
        assert!(v.split_traces[0].reason.contains(&format!("trace of {n} lines delivered as {n} events")));
        assert!(v.split_traces[1].reason.contains("as 2 events"), "{:?}", v.split_traces[1]);
        assert!(!v.is_clean());
    }
}

#[test]
fn a_trace_missing_a_piece_is_corrupted_and_missing() {
    let kind = TraceKind::Java;
    let ledger = trace_ledger(kind, 0..1);
    let whole = trace(kind, 0);
    let mut pieces: Vec<String> = whole.split('\n').map(str::to_owned).collect();
    pieces.remove(2);
    let v = verdict(&ledger, &delivered(&[("g", "s", events(&pieces, "web"))]));
    assert!(v.split_traces.is_empty());
    assert_eq!(v.missing_count(), 1);
    assert_eq!(v.corrupted.len(), pieces.len(), "every piece reported: {:#?}", v.corrupted);
    assert_eq!(v.corrupted[0].key.as_ref().map(|k| k.seq), Some(0));
}

fn json_envelope(log: serde_json::Value, pod: &str) -> String {
    serde_json::json!({
        "log": log, "namespace": "default", "pod_name": pod, "container_name": "app",
        "container_image": "busybox", "host": "node-1", "workload": "web",
    })
    .to_string()
}

#[test]
fn json_lines_are_verified_as_objects_or_as_text() {
    use crate::scenario::MessageFormat;
    let mut ledger = Ledger::new(RUN);
    for seq in 0..3 {
        ledger.record_json("web", "app", seq, SMALL);
    }
    let line = |seq| Payload::json_line(RUN, "web", "app", seq, SMALL).unwrap();
    let object = |seq| serde_json::from_str::<serde_json::Value>(&line(seq)).unwrap();
    let as_objects: Vec<_> = (0..3)
        .map(|seq| DeliveredEvent { timestamp: 0, message: json_envelope(object(seq), "web") })
        .collect();
    let v = verdict_for(&ledger, &delivered(&[("g", "s", as_objects.clone())]), MessageFormat::EnvelopeJson);
    assert!(v.is_clean(), "{v:#?}");
    assert_eq!(v.sources[&source("web")].delivered, 3);
    // The same lines as escaped strings (format `envelope`) are verified as text.
    let as_text: Vec<_> = (0..3).map(line).collect();
    let v = verdict(&ledger, &delivered(&[("g", "s", events(&as_text, "web"))]));
    assert!(v.is_clean(), "{v:#?}");
    // An object under the plain envelope is not the contract.
    let v = verdict(&ledger, &delivered(&[("g", "s", as_objects)]));
    assert_eq!(v.corrupted.len(), 3);
    assert!(v.corrupted[0].reason.contains("not a string"), "{:?}", v.corrupted[0]);
    // A changed field of the object is caught.
    let mut changed = object(1);
    changed["level"] = "error".into();
    let evs = vec![DeliveredEvent { timestamp: 0, message: json_envelope(changed, "web") }];
    let v = verdict_for(&ledger, &delivered(&[("g", "s", evs)]), MessageFormat::EnvelopeJson);
    assert_eq!(v.corrupted.len(), 1);
    assert!(v.corrupted[0].reason.contains("is not the JSON line written"), "{:?}", v.corrupted[0]);
    assert_eq!(v.corrupted[0].key.as_ref().map(|k| k.seq), Some(1));
}

#[test]
fn raw_messages_are_the_text_alone() {
    use crate::scenario::MessageFormat;
    let ledger = ledger("web", 0..2, SMALL);
    let evs: Vec<_> =
        (0..2).map(|s| DeliveredEvent { timestamp: 0, message: text("web", s, SMALL) }).collect();
    let v = verdict_for(&ledger, &delivered(&[("g", "s", evs)]), MessageFormat::Raw);
    assert!(v.is_clean(), "{v:#?}");
}
