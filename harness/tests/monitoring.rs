//! `deploy/monitoring/`: the alert rules pass `promtool check rules` and their unit tests
//! (`promtool test rules`: each alert fires on synthetic series, and not on healthy ones), the
//! PrometheusRule carries the same rules, and every `shipper_*` metric the rules and the
//! Grafana dashboard query exists on a running shipper's `/metrics` (scraped, not listed).
//!
//! `promtool` comes from Debian's `prometheus` package; `.ci/run` installs it. Without it the
//! promtool tests fail (they never skip).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::gateway::{Gateway, GatewayOptions};
use harness::manifests::deploy_dir;
use harness::shipper_proc::{ShipperEnv, ShipperProcess, free_port};
use harness::simnode::{SimNode, Stream};
use harness::standin::pod::pod_json;
use harness::standin::{StandinApi, StandinOptions};

fn monitoring_dir() -> PathBuf {
    deploy_dir().join("monitoring")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn yaml(path: &Path) -> serde_yaml::Value {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// Run `promtool ARGS` in `deploy/monitoring`; panic with its output unless it succeeds.
fn promtool(args: &[&str]) -> String {
    let out = match Command::new("promtool").args(args).current_dir(monitoring_dir()).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "promtool not found: install it with `apt-get install -y prometheus` (Debian's package \
             ships promtool; .ci/run does this)"
        ),
        Err(e) => panic!("running promtool: {e}"),
    };
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {} failed ({}):\n{text}", args.join(" "), out.status);
    text
}

/// The rule groups of the plain rules file.
fn rule_groups() -> Vec<serde_yaml::Value> {
    let rules = yaml(&monitoring_dir().join("shipper-rules.yml"));
    rules["groups"].as_sequence().expect("groups: a list").clone()
}

/// Every rule (alert or record) of the rules file.
fn rules() -> Vec<serde_yaml::Value> {
    rule_groups().iter().flat_map(|g| g["rules"].as_sequence().expect("rules: a list").clone()).collect()
}

fn alert_names() -> Vec<String> {
    rules().iter().filter_map(|r| r["alert"].as_str().map(str::to_owned)).collect()
}

#[test]
fn promtool_checks_the_rules() {
    let out = promtool(&["check", "rules", "shipper-rules.yml"]);
    let count = rules().len();
    assert!(out.contains(&format!("SUCCESS: {count} rules found")), "{out}");
}

#[test]
fn promtool_unit_tests_fire_each_alert() {
    promtool(&["test", "rules", "shipper-rules.test.yml"]);
}

/// The unit tests cover every alert both ways: an evaluation where it fires and one where it
/// does not (healthy series, or before its `for` elapsed).
#[test]
fn every_alert_has_a_firing_and_a_quiet_unit_test() {
    let tests = yaml(&monitoring_dir().join("shipper-rules.test.yml"));
    assert_eq!(tests["rule_files"][0].as_str(), Some("shipper-rules.yml"));
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for test in tests["tests"].as_sequence().expect("tests: a list") {
        for check in test["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = check["alertname"].as_str().expect("alertname").to_owned();
            let expected = check["exp_alerts"].as_sequence().map_or(0, Vec::len);
            if expected > 0 {
                fires.insert(name);
            } else {
                quiet.insert(name);
            }
        }
    }
    for alert in alert_names() {
        assert!(fires.contains(&alert), "no unit test makes {alert} fire");
        assert!(quiet.contains(&alert), "no unit test shows {alert} quiet");
    }
}

/// GitHub's anchor for a Markdown heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_alert_says_what_it_means_and_links_its_runbook() {
    let readme = read(&deploy_dir().join("../README.md"));
    let anchors: BTreeSet<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|h| anchor(h.trim_start_matches('#')))
        .collect();
    for rule in rules() {
        let Some(name) = rule["alert"].as_str() else { continue };
        let annotations = &rule["annotations"];
        for key in ["summary", "description", "runbook_url"] {
            let value = annotations[key].as_str().unwrap_or_default();
            assert!(!value.trim().is_empty(), "{name}: no {key} annotation");
        }
        assert!(
            matches!(rule["labels"]["severity"].as_str(), Some("warning" | "critical")),
            "{name}: severity must be warning or critical"
        );
        let runbook = annotations["runbook_url"].as_str().unwrap_or_default();
        let target =
            runbook.strip_prefix("README.md#").unwrap_or_else(|| panic!("{name}: runbook {runbook}"));
        assert!(anchors.contains(target), "{name}: README.md has no heading with anchor #{target}");
    }
}

#[test]
fn prometheus_rule_carries_the_same_rules() {
    let resource = yaml(&monitoring_dir().join("prometheus-rule.yaml"));
    assert_eq!(resource["apiVersion"].as_str(), Some("monitoring.coreos.com/v1"));
    assert_eq!(resource["kind"].as_str(), Some("PrometheusRule"));
    assert!(resource["metadata"]["name"].as_str().is_some_and(|n| !n.is_empty()));
    let theirs = resource["spec"]["groups"].as_sequence().expect("spec.groups: a list");
    let ours = rule_groups();
    assert_eq!(theirs.len(), ours.len(), "number of groups");
    for (a, b) in ours.iter().zip(theirs) {
        let name = a["name"].as_str().unwrap_or_default();
        assert_eq!(a, b, "group {name} differs between shipper-rules.yml and prometheus-rule.yaml");
    }
}

/// Every PromQL expression of the dashboard: panel targets and templating queries.
fn dashboard_queries() -> Vec<String> {
    let dashboard = json(&monitoring_dir().join("grafana-dashboard.json"));
    let mut out = Vec::new();
    fn panels(list: &serde_json::Value, out: &mut Vec<String>) {
        for panel in list.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push(expr.to_owned());
                }
            }
            panels(&panel["panels"], out);
        }
    }
    panels(&dashboard["panels"], &mut out);
    for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(query) = variable["definition"].as_str() {
            out.push(query.to_owned());
        }
    }
    out
}

#[test]
fn dashboard_is_importable_and_uses_the_datasource_variable() {
    let dashboard = json(&monitoring_dir().join("grafana-dashboard.json"));
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36), "schemaVersion");
    assert!(dashboard["uid"].as_str().is_some_and(|u| !u.is_empty()));
    let variables = dashboard["templating"]["list"].as_array().expect("templating.list");
    assert!(
        variables
            .iter()
            .any(|v| v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus"),
        "no `datasource` variable of type prometheus"
    );
    let mut ids = BTreeSet::new();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(ids.insert(panel["id"].as_u64().expect("panel id")), "duplicate id on {title}");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}: datasource");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}: target datasource");
            queried += 1;
        }
    }
    assert!(queried > 0);
}

/// Identifiers in a PromQL expression that start with `shipper_`: metric names (label
/// names never start that way; string literals are skipped).
fn shipper_metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut chars = expr.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c == '"' || c == '\'' || c == '`' {
            let mut escaped = false;
            for (_, d) in chars.by_ref() {
                if escaped {
                    escaped = false;
                } else if d == '\\' && c != '`' {
                    escaped = true;
                } else if d == c {
                    break;
                }
            }
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let mut end = start + c.len_utf8();
            while let Some(&(i, d)) = chars.peek() {
                if d.is_ascii_alphanumeric() || d == '_' || d == ':' {
                    end = i + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let ident = &expr[start..end];
            if ident.starts_with("shipper_") {
                names.insert(ident.to_owned());
            }
        }
    }
    names
}

#[test]
fn tokenizer_finds_metric_names_only() {
    let names = shipper_metric_names(
        r#"rate(shipper_a_total{rule="shipper_not_a_metric", x=~'shipper_nor_this'}[5m]) / ignoring(outcome) shipper_b > 4 * 3600"#,
    );
    assert_eq!(names, BTreeSet::from(["shipper_a_total".to_owned(), "shipper_b".to_owned()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_queried_metric_exists_on_a_running_shipper() {
    let mut queried = BTreeSet::new();
    for expr in
        rules().iter().filter_map(|r| r["expr"].as_str()).map(str::to_owned).chain(dashboard_queries())
    {
        queried.extend(shipper_metric_names(&expr));
    }
    assert!(queried.len() >= 10, "too few metrics found in the queries: {queried:?}");

    // A real shipper: gateway (sink mode), stand-in API, a simulated node with one container.
    let work = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start(GatewayOptions::default()).await.expect("gateway");
    let standin = StandinApi::start(StandinOptions::default()).await.expect("stand-in API");
    let kubeconfig = work.path().join("kubeconfig");
    standin.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let node = SimNode::new(work.path().join("node")).expect("simnode");
    let stored = standin
        .apply_pod(pod_json("default", "web-0", Some("node-1"), &[("app", "web")], &[("app", "web:1")]))
        .expect("pod");
    let uid = stored["metadata"]["uid"].as_str().unwrap_or("uid").to_owned();
    let mut log = node.add_container("default", "web-0", &uid, "app").expect("container");
    let env = ShipperEnv {
        cluster: "monitoring".into(),
        node: "node-1".into(),
        endpoint: gateway.url().as_str().trim_end_matches('/').to_owned(),
        kubeconfig,
        log_paths: format!("{}/*.log", node.containers_dir().display()),
        state_dir: work.path().join("state"),
        port: free_port().expect("port"),
        extra: [("SHIPPER_FLUSH_INTERVAL".to_owned(), "100ms".to_owned())].into(),
    };
    let mut shipper = ShipperProcess::spawn(env, work.path().join("shipper.log")).expect("shipper");
    shipper.wait_healthy(Duration::from_secs(60)).await.expect("healthy");
    for i in 0..5 {
        log.write_line(Stream::Stdout, format!("line {i}").as_bytes()).expect("write");
    }
    // Scrape once the lines went through, so counters are exported with values, not just TYPE.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = reqwest::get(shipper.metrics_url()).await.expect("scrape").text().await.expect("body");
        let delivered = harness::shipper_proc::parse_prometheus(&text)
            .get("shipper_events_delivered_total")
            .copied()
            .unwrap_or(0.0);
        if delivered >= 5.0 || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    shipper.terminate(Duration::from_secs(10)).await;

    let exported: BTreeSet<&str> = text
        .lines()
        .filter_map(|line| match line.strip_prefix("# TYPE ") {
            Some(rest) => rest.split_whitespace().next(),
            None if line.starts_with('#') => None,
            None => line.split(['{', ' ']).next(),
        })
        .collect();
    let missing: Vec<&String> = queried.iter().filter(|name| !exported.contains(name.as_str())).collect();
    assert!(missing.is_empty(), "queried but not on /metrics: {missing:?}\n--- /metrics:\n{text}");
}
