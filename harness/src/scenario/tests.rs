use std::path::Path;

use super::*;

const MINIMAL: &str = r#"
name = "t"
why = "a test"
[[pods]]
namespace = "ns"
name = "p"
containers = [{ name = "c", lines = 10 }]
[expect]
groups = { "g" = ["p_c"] }
"#;

#[test]
fn minimal_scenario_gets_defaults() {
    let s = Scenario::parse(MINIMAL).expect("valid");
    assert_eq!(s.total_lines(), 10);
    assert_eq!(s.pods[0].containers[0].rate, 200.0);
    assert_eq!(s.expect.max_duplicates, 0);
    assert_eq!(s.expect.drain_timeout.0, Duration::from_secs(60));
    assert_eq!(s.node.container_log_max_files, 5);
}

#[test]
fn unknown_keys_are_errors_at_every_level() {
    for (needle, replacement) in [
        ("why = \"a test\"", "why = \"a test\"\ncolour = \"red\""),
        ("lines = 10", "lines = 10, speed = 3"),
        ("[expect]", "[expect]\nmissing = 0"),
        ("namespace = \"ns\"", "namespace = \"ns\"\nnodes = 2"),
    ] {
        let text = MINIMAL.replace(needle, replacement);
        let err = Scenario::parse(&text).expect_err("unknown key must be rejected");
        assert!(matches!(err, ScenarioError::Parse { .. }), "{err}");
    }
}

#[test]
fn faults_parse_with_kind_and_window() {
    let text = format!(
        "{MINIMAL}\n[[faults]]\nat = \"1s\"\nfor = \"3s\"\nkind = \"blackhole\"\n[[faults]]\nat = \"2s\"\nkind = \"pod_delete\"\npod = \"p\"\n"
    );
    let s = Scenario::parse(&text).expect("valid");
    assert_eq!(s.faults[0].kind, FaultKind::Blackhole);
    assert_eq!(s.faults[0].end(), Duration::from_secs(4));
    assert_eq!(s.faults[1].target_pod(), Some("p"));
}

#[test]
fn inconsistent_scenarios_are_rejected() {
    let unknown_pod = format!("{MINIMAL}\n[[faults]]\nat = \"1s\"\nkind = \"rotate\"\npod = \"nobody\"\n");
    assert!(matches!(Scenario::parse(&unknown_pod), Err(ScenarioError::Invalid { .. })));
    let bad_duration = MINIMAL.replace("[expect]", "[expect]\ndrain_timeout = \"soon\"");
    assert!(matches!(Scenario::parse(&bad_duration), Err(ScenarioError::Parse { .. })));
    let no_why = MINIMAL.replace("why = \"a test\"", "why = \" \"");
    assert!(matches!(Scenario::parse(&no_why), Err(ScenarioError::Invalid { .. })));
}

#[test]
fn every_scenario_file_in_the_repo_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    // scenarios/kind/: scenarios only the kind tier runs (several nodes).
    for dir in [root.clone(), root.join("kind")] {
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("scenario dir exists") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n > 0, "no scenario files found in {}", dir.display());
    }
}

#[test]
fn node_scaling_faults_parse_and_are_validated() {
    let text = format!(
        "{MINIMAL}\n[[faults]]\nat = \"2s\"\nkind = \"node_join\"\n[[faults]]\nat = \"3s\"\nkind = \"pod_reschedule\"\npod = \"p\"\n"
    );
    let s = Scenario::parse(&text).expect("valid");
    assert_eq!(s.faults[0].kind, FaultKind::NodeJoin);
    assert_eq!(s.faults[1].kind, FaultKind::PodReschedule);
    assert!(s.faults.iter().all(|f| f.kind.needs_several_nodes()));
    assert!(!FaultKind::PodDelete.needs_several_nodes());

    let no_pod = format!("{MINIMAL}\n[[faults]]\nat = \"3s\"\nkind = \"pod_reschedule\"\n");
    let err = Scenario::parse(&no_pod).expect_err("pod_reschedule needs a pod");
    assert!(err.to_string().contains("needs `pod`"), "{err}");
    let unknown = format!("{MINIMAL}\n[[faults]]\nat = \"3s\"\nkind = \"pod_reschedule\"\npod = \"q\"\n");
    assert!(matches!(Scenario::parse(&unknown), Err(ScenarioError::Invalid { .. })));
    let early = text.replace("containers = [", "start = \"5s\"\ncontainers = [");
    let err = Scenario::parse(&early).expect_err("moved before it starts");
    assert!(err.to_string().contains("starts only at"), "{err}");
    let twice = format!("{text}\n[[faults]]\nat = \"4s\"\nkind = \"node_join\"\n");
    let err = Scenario::parse(&twice).expect_err("one held-back worker");
    assert!(err.to_string().contains("at most one `node_join`"), "{err}");
}

#[test]
fn replicas_expand_pods_and_expected_streams() {
    let text = MINIMAL
        .replace("name = \"p\"", "name = \"w-{i}\"\nreplicas = 3")
        .replace("[\"p_c\"]", "[\"w-{i}_c\"]");
    let s = Scenario::parse(&text).expect("valid");
    let names: Vec<_> = s.expanded_pods().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["w-0", "w-1", "w-2"]);
    assert_eq!(s.total_lines(), 30);
    let layout = s.expected_layout();
    assert_eq!(layout["g"].iter().cloned().collect::<Vec<_>>(), ["w-0_c", "w-1_c", "w-2_c"]);
}

/// `MINIMAL`'s pod writes 10 lines at 200/s: its last line is due at 45 ms.
fn with_restart(fault: &str) -> String {
    format!("{MINIMAL}\n[[faults]]\nkind = \"node_restart\"\n{fault}\n")
}

#[test]
fn node_restart_after_the_writers_are_done_is_accepted() {
    let s = Scenario::parse(&with_restart("at = \"2s\"\nrestart_after = \"500ms\"")).expect("valid");
    assert_eq!(s.faults[0].kind, FaultKind::NodeRestart);
    assert_eq!(s.faults[0].restart_after.map(|d| d.0), Some(Duration::from_millis(500)));
    assert!(!FaultKind::NodeRestart.needs_several_nodes());
    // Exactly the margin after the last due line (45 ms + 1 s) is enough.
    Scenario::parse(&with_restart("at = \"1045ms\"")).expect("restart right at the margin");
    // A pod starting after the restart is created once the node is back: no constraint.
    let later = with_restart("at = \"2s\"").replace("containers = [", "start = \"2s\"\ncontainers = [");
    Scenario::parse(&later).expect("a pod starting at the restart writes after it");
}

#[test]
fn node_restart_while_a_writer_is_still_writing_is_refused() {
    let err = Scenario::parse(&with_restart("at = \"1s\"")).expect_err("within the margin");
    assert!(matches!(err, ScenarioError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("ns/p container c is still writing"), "{err}");
    // Replicas started by `stagger` are checked one by one: w-2 starts at 2 s and is due
    // until 2.045 s, too close to a restart at 3 s; w-0 and w-1 alone would be fine.
    let staggered = with_restart("at = \"3s\"")
        .replace("name = \"p\"", "name = \"w-{i}\"\nreplicas = 3\nstagger = \"1s\"")
        .replace("[\"p_c\"]", "[\"w-{i}_c\"]");
    let err = Scenario::parse(&staggered).expect_err("the last replica is still writing");
    assert!(err.to_string().contains("ns/w-2 container c"), "{err}");
    Scenario::parse(&staggered.replace("at = \"3s\"", "at = \"3100ms\"")).expect("all done by then");
    // The rate counts: 10 lines at 2/s are due until 4.5 s.
    let slow = with_restart("at = \"5s\"").replace("lines = 10", "lines = 10, rate = 2");
    assert!(Scenario::parse(&slow).is_err());
    Scenario::parse(&slow.replace("at = \"5s\"", "at = \"5500ms\"")).expect("done by then");
}

#[test]
fn node_restart_takes_no_pod_nor_window_and_one_node_only() {
    let err = Scenario::parse(&with_restart("at = \"2s\"\npod = \"p\"")).expect_err("no pod");
    assert!(err.to_string().contains("takes no `pod`"), "{err}");
    let err = Scenario::parse(&with_restart("at = \"2s\"\nfor = \"3s\"")).expect_err("no window");
    assert!(err.to_string().contains("`restart_after`"), "{err}");
    let scaling = format!("{}\n[[faults]]\nat = \"3s\"\nkind = \"node_join\"\n", with_restart("at = \"2s\""));
    let err = Scenario::parse(&scaling).expect_err("one node");
    assert!(err.to_string().contains("cannot be combined with NodeJoin"), "{err}");
}

const FEATURES: &str = r#"
name = "t"
why = "a test"
[shipper.env]
SHIPPER_MESSAGE_FORMAT = "envelope_json"
[[pods]]
namespace = "shop"
name = "web-7d9f8b6c5d-x2k4p"
labels = { "pod-template-hash" = "7d9f8b6c5d" }
owner = { kind = "ReplicaSet", name = "web-7d9f8b6c5d" }
containers = [
  { name = "app", lines = 10, encoding = "json", message_fields = { "log.level" = "info" } },
  { name = "trace", lines = 4, traces = "python" },
  { name = "istio-proxy", lines = 7, excluded_by = "annotation:exclude-containers" },
]
[expect]
groups = { "g" = ["web-7d9f8b6c5d-x2k4p_app"] }
[expect.message]
format = "envelope_json"
extra_keys = ["workload"]
fields = { "workload" = "web" }
[expect.metrics]
'shipper_lines_excluded_total{rule="annotation:exclude-containers"}' = 7
"#;

#[test]
fn owners_exclusions_traces_json_and_message_expectations_parse() {
    let s = Scenario::parse(FEATURES).expect("valid");
    let pod = &s.pods[0];
    assert_eq!(pod.owner, Some(OwnerRef { kind: "ReplicaSet".into(), name: "web-7d9f8b6c5d".into() }));
    let [app, trace, proxy] = &pod.containers[..] else { panic!("three containers") };
    assert_eq!(app.encoding, "json");
    assert_eq!(app.message_fields["log.level"], "info");
    assert_eq!(trace.traces.as_deref(), Some("python"));
    assert_eq!(trace.encoding, "text", "the default");
    assert_eq!(proxy.excluded_by.as_deref(), Some("annotation:exclude-containers"));
    assert_eq!(s.expect.message.format, MessageFormat::EnvelopeJson);
    assert_eq!(s.expect.message.extra_keys, ["workload"]);
    assert_eq!(s.expect.message.fields["workload"], "web");
    assert_eq!(s.expect.metrics["shipper_lines_excluded_total{rule=\"annotation:exclude-containers\"}"], 7);
    // Defaults: the six-key envelope, no metrics, no owner.
    let minimal = Scenario::parse(MINIMAL).expect("valid");
    assert_eq!(minimal.expect.message.format, MessageFormat::Envelope);
    assert!(minimal.expect.metrics.is_empty() && minimal.pods[0].owner.is_none());
    assert!(minimal.pods[0].containers[0].excluded_by.is_none());
}

#[test]
fn unknown_keys_in_the_new_tables_are_errors() {
    for (needle, replacement) in [
        ("name = \"web-7d9f8b6c5d\" }", "name = \"web-7d9f8b6c5d\", uid = \"x\" }"),
        ("format = \"envelope_json\"\n", "format = \"envelope_json\"\nstrict = true\n"),
        ("excluded_by = ", "excluded = true, excluded_by = "),
    ] {
        let text = FEATURES.replace(needle, replacement);
        assert_ne!(text, FEATURES, "{needle} not found");
        let err = Scenario::parse(&text).expect_err("unknown key must be rejected");
        assert!(matches!(err, ScenarioError::Parse { .. }), "{err}");
    }
    let bad_format = FEATURES.replace("format = \"envelope_json\"\n", "format = \"xml\"\n");
    assert!(matches!(Scenario::parse(&bad_format), Err(ScenarioError::Parse { .. })));
}

#[test]
fn inconsistent_new_keys_are_rejected() {
    let invalid = |text: String, needle: &str| {
        let err = Scenario::parse(&text).expect_err("inconsistent");
        assert!(matches!(err, ScenarioError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains(needle), "{err}");
    };
    invalid(FEATURES.replace("= 7\n", "= 8\n"), "write 7 lines");
    invalid(FEATURES.replace("traces = \"python\"", "traces = \"cobol\""), "cobol");
    invalid(
        FEATURES.replace("traces = \"python\"", "traces = \"java\", encoding = \"json\""),
        "`traces` are text",
    );
    invalid(FEATURES.replace("encoding = \"json\"", "encoding = \"yaml\""), "yaml");
    invalid(
        FEATURES.replace("lines = 10, encoding", "lines = 10, sizes = [\"invalid-utf8\"], encoding"),
        "UTF-8",
    );
    invalid(FEATURES.replace("kind = \"ReplicaSet\"", "kind = \"\""), "`owner`");
    invalid(FEATURES.replace("extra_keys = [\"workload\"]", "extra_keys = [\"log\"]"), "envelope key");
    let killed = format!("{FEATURES}\n[[faults]]\nat = \"1s\"\nkind = \"shipper_kill\"\n");
    invalid(killed, "single start");
    let crashed =
        FEATURES.replace("[shipper.env]", "[shipper]\ncrash_points = [\"send.before_put\"]\n[shipper.env]");
    invalid(crashed, "crash_points");
}

#[test]
fn fleets_are_bounded_and_refuse_what_acts_on_one_shipper() {
    let fleet = |extra: &str| format!("{MINIMAL}\n[fleet]\nnodes = 4\n{extra}");
    let s = Scenario::parse(&fleet("")).expect("valid");
    assert_eq!(s.fleet.nodes, 4);
    assert_eq!(Scenario::parse(MINIMAL).expect("valid").fleet.nodes, 1);
    let invalid = |text: String, needle: &str| {
        let err = Scenario::parse(&text).expect_err("refused");
        assert!(matches!(err, ScenarioError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains(needle), "{err}");
    };
    invalid(MINIMAL.to_owned() + "\n[fleet]\nnodes = 0\n", "use 1 to 16");
    invalid(MINIMAL.to_owned() + "\n[fleet]\nnodes = 17\n", "use 1 to 16");
    for kind in ["shipper_kill", "shipper_term", "idle_connections", "network_disconnect", "node_restart"] {
        invalid(fleet(&format!("[[faults]]\nat = \"3s\"\nkind = \"{kind}\"\n")), "acts on one shipper");
    }
    invalid(
        fleet("").replace("[expect]", "[shipper]\ncrash_points = [\"send.before_put\"]\n[expect]"),
        "one shipper process",
    );
    // [expect.fleet] measures the account's quota: it needs one.
    let expect = "[expect.fleet]\nconverged_by = \"5s\"\nmax_node_p99 = \"10s\"\n";
    invalid(fleet(expect), "put_log_events_per_second");
    let with_quota = fleet(&format!("[account]\nput_log_events_per_second = 5\n{expect}"));
    let s = Scenario::parse(&with_quota).expect("valid");
    assert_eq!(s.expect.fleet.expect("parsed").max_ask_ratio, 1.0);
    invalid(with_quota.replace("max_node_p99", "max_ask_ratio = -1.0\nmax_node_p99"), "max_ask_ratio");
}
