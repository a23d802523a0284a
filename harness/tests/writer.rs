//! `harness write`, run for real as a kind-tier pod runs it: its output, split into lines as
//! kubelet would, is exactly the ledger the harness computes from the plan, and the audit
//! accepts every line of it as delivered.

use std::collections::BTreeMap;
use std::process::Command;

use harness::audit::{self, Delivered, DeliveredEvent, Ledger, Payload};
use harness::writer::{LinePlan, WriterArgs};

fn args(sizes: &[&str], stream: &str, lines: u64, first_seq: u64) -> WriterArgs {
    WriterArgs {
        run: "rkind1".into(),
        pod: "web-0".into(),
        container: "app".into(),
        lines,
        rate: 2000.0,
        sizes: sizes.iter().map(|s| s.to_string()).collect(),
        stream: stream.into(),
        first_seq,
        traces: None,
        json: false,
    }
}

/// Run the harness binary as the writer; its stdout and stderr lines.
fn run_writer(args: &WriterArgs) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let output = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("write")
        .args(args.to_args())
        .output()
        .expect("run harness write");
    assert!(output.status.success(), "harness write failed: {}", String::from_utf8_lossy(&output.stderr));
    let lines = |bytes: &[u8]| -> Vec<Vec<u8>> {
        assert!(bytes.is_empty() || bytes.ends_with(b"\n"), "output must end with a newline");
        bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect()
    };
    (lines(&output.stdout), lines(&output.stderr))
}

/// What the shipper would deliver for `lines` of `plan` if nothing went wrong: one event per
/// line in stream `<pod>_<container>`, the contract's envelope around the repaired text.
fn delivered_as_shipped(plan: &LinePlan, lines: &[Vec<u8>]) -> Delivered {
    let events = lines
        .iter()
        .enumerate()
        .map(|(i, raw)| DeliveredEvent {
            timestamp: i as i64,
            message: serde_json::json!({
                "log": Payload::expected_text(raw),
                "namespace": "shop",
                "pod_name": plan.pod,
                "container_name": plan.container,
                "container_image": "writer",
                "host": "kind-control-plane",
            })
            .to_string(),
        })
        .collect();
    let stream = format!("{}_{}", plan.pod, plan.container);
    Delivered { groups: BTreeMap::from([("g".into(), BTreeMap::from([(stream, events)]))]) }
}

#[test]
fn the_writer_prints_exactly_the_ledger_and_the_audit_accepts_it() {
    let sizes = ["small", "100B", "16KiB+1", "unicode", "invalid-utf8", "256KiB"];
    let args = args(&sizes, "both", 60, 0);
    let plan = args.plan().expect("valid plan");
    let (stdout, stderr) = run_writer(&args);
    assert_eq!((stdout.len(), stderr.len()), (30, 30), "`both` alternates stdout and stderr");

    // Byte for byte what the plan (the local tier's SimNode source) says, stream by stream.
    for (seq, raw) in (0..60).step_by(2).zip(&stdout).chain((1..60).step_by(2).zip(&stderr)) {
        assert_eq!(raw, &plan.line(seq).expect("line").bytes, "line {seq}");
        let verified = Payload::verify(&Payload::expected_text(raw)).expect("self-verifying");
        assert_eq!((verified.run.as_str(), verified.key.seq), ("rkind1", seq));
    }

    // The ledger the harness computes without reading the pod matches what it printed.
    let mut ledger = Ledger::new("rkind1");
    plan.record_all(&mut ledger);
    let mut all: Vec<Vec<u8>> = stdout.iter().chain(&stderr).cloned().collect();
    let verdict = audit::verdict(&ledger, &delivered_as_shipped(&plan, &all));
    assert!(verdict.is_clean(), "{verdict:?}");
    assert_eq!((verdict.missing_count(), verdict.duplicates), (0, 0));
    assert_eq!(verdict.sources.values().map(|c| c.delivered).sum::<u64>(), 60);

    // The comparison has teeth: a line lost, or a ledger of another run, is caught.
    all.remove(17);
    let lost = audit::verdict(&ledger, &delivered_as_shipped(&plan, &all));
    assert_eq!(lost.missing_count(), 1);
    let other_run = audit::verdict(&Ledger::new("rkind2"), &delivered_as_shipped(&plan, &stdout));
    assert_eq!(other_run.spurious.len(), 30);
}

#[test]
fn a_rescheduled_writer_continues_the_sequence() {
    let whole = args(&["small", "100B"], "stdout", 20, 0).plan().expect("valid");
    let (first, rest) = whole.split_at(std::time::Duration::from_secs_f64(7.5 / 2000.0));
    let (before, _) = run_writer(&WriterArgs::of(&first));
    let (after, _) = run_writer(&WriterArgs::of(&rest));
    assert_eq!((before.len(), after.len()), (8, 12));
    let mut ledger = Ledger::new("rkind1");
    whole.record_all(&mut ledger);
    let printed: Vec<Vec<u8>> = before.into_iter().chain(after).collect();
    let verdict = audit::verdict(&ledger, &delivered_as_shipped(&whole, &printed));
    assert!(verdict.is_clean() && verdict.duplicates == 0, "{verdict:?}");
}

#[test]
fn the_writer_keeps_its_rate() {
    let mut slow = args(&["small"], "stdout", 5, 0);
    slow.rate = 20.0;
    let start = std::time::Instant::now();
    let (stdout, _) = run_writer(&slow);
    assert_eq!(stdout.len(), 5);
    // The 5th line is due 200 ms after the first.
    assert!(start.elapsed() >= std::time::Duration::from_millis(200), "{:?}", start.elapsed());
}

#[test]
fn an_invalid_plan_is_refused_with_its_reason() {
    let output = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["write", "--run=r", "--pod=p", "--container=c", "--lines=3", "--sizes=huge"])
        .output()
        .expect("run harness write");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown size class \"huge\""));
}
