//! The CLI contract, exercised through the real binary.

use std::process::Command;

fn shipper() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shipper"));
    cmd.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

fn pod_file(dir: &std::path::Path, labels: serde_json::Value) -> std::path::PathBuf {
    let pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": "web-5d8f7c9b6-x2x9k", "namespace": "shop", "labels": labels },
        "spec": { "nodeName": "node-1", "containers": [
            { "name": "nginx", "image": "nginx:1.27" },
            { "name": "sidecar", "image": "envoy:1.31" }
        ] }
    });
    let path = dir.join("pod.json");
    std::fs::write(&path, serde_json::to_vec(&pod).expect("json")).expect("write");
    path
}

fn route(labels: serde_json::Value, container: &str, cluster: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pod = pod_file(dir.path(), labels);
    let out = shipper()
        .args(["route", "--pod"])
        .arg(&pod)
        .args(["--container", container])
        .env("CLUSTER_NAME", cluster)
        .output()
        .expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn route_follows_the_naming_contract() {
    let cases = [
        (serde_json::json!({"app": "web", "k8s-app": "other"}), "nginx", "k8s_prod_shop_web_nginx"),
        (serde_json::json!({"k8s-app": "kube-dns"}), "nginx", "k8s_prod_shop_kube-dns_nginx"),
        (serde_json::json!({}), "sidecar", "k8s_prod_shop_web-5d8f7c9b6-x2x9k_sidecar"),
        (serde_json::json!({"app": ""}), "nginx", "k8s_prod_shop_web-5d8f7c9b6-x2x9k_nginx"),
    ];
    for (labels, container, group) in cases {
        let (ok, stdout, stderr) = route(labels.clone(), container, "prod");
        assert!(ok, "{labels}: {stderr}");
        let dest: serde_json::Value = serde_json::from_str(&stdout).expect("JSON output");
        assert_eq!(dest["group"], group, "{labels}");
        assert_eq!(dest["stream"], format!("web-5d8f7c9b6-x2x9k_{container}"));
    }
}

#[test]
fn route_sanitises_an_odd_cluster_name() {
    let (ok, stdout, stderr) = route(serde_json::json!({"app": "web"}), "nginx", "prod cluster:eu");
    assert!(ok, "{stderr}");
    let dest: serde_json::Value = serde_json::from_str(&stdout).expect("JSON output");
    assert_eq!(dest["group"], "k8s_prod_cluster_eu_shop_web_nginx");
}

#[test]
fn route_names_an_unknown_container() {
    let (ok, _, stderr) = route(serde_json::json!({}), "db", "prod");
    assert!(!ok);
    assert!(stderr.contains("\"db\"") && stderr.contains("nginx, sidecar"), "{stderr}");
}

#[test]
fn check_prints_effective_settings_and_reports_bad_ones() {
    let out = shipper()
        .args(["check"])
        .env("CLUSTER_NAME", "prod")
        .env("NODE_NAME", "n1")
        .env("SHIPPER_FLUSH_INTERVAL", "250ms")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let effective: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(effective["cluster_name"], "prod");
    assert_eq!(effective["flush_interval"], "250ms");
    assert_eq!(effective["listen"], "0.0.0.0:2021");

    let out = shipper().args(["check"]).env("NODE_NAME", "n1").output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CLUSTER_NAME is required"));

    let out = shipper()
        .args(["check", "--flush-interval", "soon"])
        .env("CLUSTER_NAME", "c")
        .env("NODE_NAME", "n")
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&out.stderr).contains("SHIPPER_FLUSH_INTERVAL=\"soon\" is invalid"));
}

#[test]
fn help_documents_every_subcommand() {
    let out = shipper().arg("--help").output().expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["run", "check", "route"] {
        assert!(text.contains(sub), "{text}");
    }
    let out = shipper().args(["run", "--help"]).output().expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    for env in [
        "CLUSTER_NAME",
        "NODE_NAME",
        "SHIPPER_LOG_PATHS",
        "SHIPPER_STATE_DIR",
        "SHIPPER_SPOOL_MAX_BYTES",
        "SHIPPER_FLUSH_INTERVAL",
        "SHIPPER_LISTEN",
        "SHIPPER_LOG_FORMAT",
    ] {
        assert!(text.contains(env), "run --help lacks {env}");
    }
}

/// A pod owned the way controllers own them, as `kubectl get pod -o json` prints it.
fn owned_pod_file(
    dir: &std::path::Path,
    name: &str,
    owner: (&str, &str),
    labels: serde_json::Value,
    annotations: serde_json::Value,
) -> std::path::PathBuf {
    let pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "shop", "labels": labels, "annotations": annotations,
            "ownerReferences": [{ "apiVersion": "apps/v1", "kind": owner.0, "name": owner.1, "uid": "u1", "controller": true }]
        },
        "spec": { "nodeName": "node-1", "containers": [
            { "name": "app", "image": "app:1" }, { "name": "istio-proxy", "image": "istio:1" }
        ] }
    });
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec(&pod).expect("json")).expect("write");
    path
}

#[test]
fn route_names_the_workload_and_the_deciding_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let template = "k8s_{cluster}_{namespace}_{labels.app|labels.k8s-app|workload}_{container}";
    let cases = [
        (
            "api-7d9f8b6c5d-x2k4p",
            ("ReplicaSet", "api-7d9f8b6c5d"),
            serde_json::json!({"pod-template-hash": "7d9f8b6c5d"}),
            "app",
            "k8s_prod_shop_api_app",
            "Deployment",
            "replicaset_template_hash",
        ),
        (
            "report-29081520-q7xkz",
            ("Job", "report-29081520"),
            serde_json::json!({}),
            "app",
            "k8s_prod_shop_report_app",
            "CronJob",
            "job_schedule_suffix",
        ),
        (
            "db-1",
            ("StatefulSet", "db"),
            serde_json::json!({}),
            "app",
            "k8s_prod_shop_db_app",
            "StatefulSet",
            "owner",
        ),
    ];
    for (name, owner, labels, container, group, kind, rule) in cases {
        let pod = owned_pod_file(dir.path(), name, owner, labels, serde_json::json!({}));
        let out = shipper()
            .args(["route", "--pod"])
            .arg(&pod)
            .args(["--container", container])
            .env("CLUSTER_NAME", "prod")
            .env("SHIPPER_GROUP_TEMPLATE", template)
            .output()
            .expect("runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
        assert_eq!(report["group"], group, "{name}");
        assert_eq!(report["workload"]["kind"], kind, "{name}");
        assert_eq!(report["workload"]["rule"], rule, "{name}");
        assert_eq!(report["shipped"], true, "{name}");
        assert_eq!(report["decided_by"], "default", "{name}");
    }

    let pod = owned_pod_file(
        dir.path(),
        "api-7d9f8b6c5d-x2k4p",
        ("ReplicaSet", "api-7d9f8b6c5d"),
        serde_json::json!({"pod-template-hash": "7d9f8b6c5d", "lang": "java"}),
        serde_json::json!({"shipper.io/exclude-containers": "istio-proxy"}),
    );
    let route = |container: &str| {
        let out = shipper()
            .args(["route", "--pod"])
            .arg(&pod)
            .args(["--container", container])
            .env("CLUSTER_NAME", "prod")
            .env("SHIPPER_MULTILINE_RULES", r#"[{ detector = "java", match = { labels = "lang=java" } }]"#)
            .output()
            .expect("runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("JSON output")
    };
    let sidecar = route("istio-proxy");
    assert_eq!(
        (sidecar["shipped"].as_bool(), sidecar["decided_by"].as_str()),
        (Some(false), Some("annotation:exclude-containers"))
    );
    let app = route("app");
    assert_eq!(app["shipped"], true);
    assert_eq!(app["multiline"]["detector"], "java");
    assert_eq!(app["multiline"]["rule"], "multiline_rules[0]");
}

/// `shipper check` for cluster `prod` on node `node` with `envs`.
fn check_on(node: &str, envs: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = shipper();
    cmd.arg("check").env("CLUSTER_NAME", "prod").env("NODE_NAME", node);
    for (key, value) in envs {
        cmd.env(key, value);
    }
    cmd.output().expect("runs")
}

#[test]
fn check_shows_the_new_settings_and_warns_about_risky_templates() {
    let check = |envs: &[(&str, &str)]| check_on("n1", envs);
    let out = check(&[]);
    let warnings = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(warnings.contains("fall through to {pod}"), "the default template falls through: {warnings}");
    assert!(!warnings.contains("does not always contain {namespace}"), "{warnings}");

    let out = check(&[
        ("SHIPPER_GROUP_TEMPLATE", "k8s_{cluster}_{labels.team|workload}_{container}"),
        ("SHIPPER_EXCLUDE", r#"[{ name = "system", namespace = ["kube-system", "kube-public"] }]"#),
        ("SHIPPER_MESSAGE_FORMAT", "envelope_json"),
        ("SHIPPER_MESSAGE_FIELDS", "workload,labels.team"),
        ("SHIPPER_MULTILINE", "python"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let warnings = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!warnings.contains("{pod}"), "{warnings}");
    assert!(warnings.contains("does not always contain {namespace}"), "{warnings}");
    let effective: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(effective["exclude"][0]["namespace"][1], "kube-public");
    assert_eq!(effective["message_format"], "envelope_json");
    assert_eq!(effective["message_fields"], serde_json::json!(["workload", "labels.team"]));
    assert_eq!(effective["multiline"], "python");

    for (key, value, says) in [
        ("SHIPPER_EXCLUDE", "[{ namespaces = \"x\" }]", "SHIPPER_EXCLUDE="),
        ("SHIPPER_EXCLUDE", "[{ labels = \"a in (b\" }]", "exclude[0]"),
        ("SHIPPER_INCLUDE", "[{}]", "names no field"),
        ("SHIPPER_MESSAGE_FORMAT", "xml", "envelope_json"),
        ("SHIPPER_MESSAGE_FIELDS", "pod", "unknown message field"),
        ("SHIPPER_MULTILINE", "cobol", "unknown detector"),
    ] {
        let out = check(&[(key, value)]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{key}={value}: {stderr}");
        assert!(stderr.contains(key) && stderr.contains(says), "{key}={value}: {stderr}");
    }
}

/// The README's settings table and the binary never drift apart: every `SHIPPER_*` variable
/// `shipper run --help` documents is in the table, and every one in the table exists.
#[test]
fn readme_settings_table_matches_the_binary() {
    let out = shipper().args(["run", "--help"]).output().expect("runs");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let names = |text: &str| -> std::collections::BTreeSet<String> {
        text.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .filter(|word| word.starts_with("SHIPPER_") && word.len() > "SHIPPER_".len())
            .map(str::to_owned)
            .collect()
    };
    let in_binary: std::collections::BTreeSet<String> =
        names(&help).into_iter().filter(|name| name != "SHIPPER_CONFIG").collect();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README");
    let table: String = readme.lines().filter(|line| line.starts_with("| `")).collect::<Vec<_>>().join("\n");
    let in_table = names(&table);
    let missing: Vec<_> = in_binary.difference(&in_table).collect();
    assert!(missing.is_empty(), "settings missing from the README's table: {missing:?}");
    let unknown: Vec<_> = in_table
        .iter()
        .filter(|name| !in_binary.contains(*name) && !name.starts_with("SHIPPER_HARNESS"))
        .collect();
    assert!(unknown.is_empty(), "README table rows the binary does not know: {unknown:?}");
}

/// `shipper run` with what every run test shares: state in `dir/state`, the logs under
/// `logs`, `/metrics` on `port`, no Kubernetes API (lines route from file names after
/// 50 ms), region us-east-1, a 1 s drain. Later `env` calls override any of these.
fn shipper_run(dir: &std::path::Path, logs: &std::path::Path, port: u16) -> Command {
    let mut cmd = shipper();
    cmd.arg("run")
        .env("CLUSTER_NAME", "c")
        .env("NODE_NAME", "n")
        .env("SHIPPER_STATE_DIR", dir.join("state"))
        .env("SHIPPER_LOG_PATHS", format!("{}/*.log", logs.display()))
        .env("SHIPPER_LISTEN", format!("127.0.0.1:{port}"))
        .env("SHIPPER_METADATA_WAIT", "50ms")
        .env("SHIPPER_SHUTDOWN_GRACE", "1s")
        .env("AWS_REGION", "us-east-1")
        .env("KUBECONFIG", dir.join("no-kubeconfig"));
    cmd
}

/// A free loopback port (bound, then released for the child to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `GET path` over plain HTTP/1.0; `None` while nothing listens.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(2))).ok()?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// Poll `check` every 100 ms for up to 30 s.
fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// Two shippers on one state directory (a force-deleted pod still running, a DaemonSet
/// surge): the second waits for the first's lock, says so on /readyz, touches nothing, and
/// starts once the first has exited.
#[test]
fn a_second_instance_waits_for_the_state_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    // As an older version left it: open to everyone.
    std::fs::create_dir_all(&state).expect("state dir");
    std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let start = |name: &str, port: u16| {
        let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).expect("log file");
        shipper_run(dir.path(), &logs, port)
            .env("SHIPPER_LOG_FORMAT", "text")
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .stdout(log.try_clone().expect("clone"))
            .stderr(log)
            .spawn()
            .expect("spawn shipper")
    };
    let read_log =
        |name: &str| std::fs::read_to_string(dir.path().join(format!("{name}.log"))).unwrap_or_default();
    let terminate = |child: &std::process::Child| {
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
        assert!(status.success());
    };

    let (first_port, second_port) = (free_port(), free_port());
    let mut first = start("first", first_port);
    wait_for("the first shipper to recover its spool", || read_log("first").contains("spool recovered"));
    let mut second = start("second", second_port);
    wait_for("the second shipper to say it waits on /readyz", || {
        http_get(second_port, "/readyz").is_some_and(|answer| answer.contains("waiting for another shipper"))
    });
    let waiting = read_log("second");
    assert!(waiting.contains("another shipper holds this state directory"), "{waiting}");
    assert!(!waiting.contains("spool recovered"), "the second instance touched the spool:\n{waiting}");
    assert!(
        http_get(second_port, "/metrics").is_some_and(|m| m.contains("shipper_state_lock_waiting 1")),
        "the wait is exported"
    );

    // Everything under the state directory is its owner's alone (every tenant's logs).
    let mut open_to_others = Vec::new();
    let mut stack = vec![state.clone()];
    while let Some(path) = stack.pop() {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        if meta.permissions().mode() & 0o077 != 0 {
            open_to_others.push(format!("{} {:o}", path.display(), meta.permissions().mode()));
        }
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&path).expect("read dir").flatten().map(|e| e.path()));
        }
    }
    assert!(open_to_others.is_empty(), "readable by others: {open_to_others:?}");

    terminate(&first);
    assert!(first.wait().expect("first exits").success());
    wait_for("the second shipper to take over", || read_log("second").contains("spool recovered"));
    assert!(read_log("second").contains("state directory lock acquired"));
    terminate(&second);
    assert!(second.wait().expect("second exits").success(), "{}", read_log("second"));
}

/// A second SIGTERM exits at once, even with a PutLogEvents call hanging on a backend that
/// never answers: what is spooled stays for the next start.
#[test]
fn a_second_signal_exits_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let id = "a".repeat(64);
    let mut lines = String::new();
    for i in 0..100 {
        lines.push_str(&format!("2026-12-03T10:00:00.000000000Z stdout F line {i}\n"));
    }
    std::fs::write(logs.join(format!("web-0_shop_app-{id}.log")), lines).expect("log file");
    // Accepts connections and never answers: the call in flight hangs.
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", blackhole.local_addr().expect("addr"));
    let held = std::thread::spawn(move || blackhole.incoming().take(8).flatten().collect::<Vec<_>>());
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("shipper.log")).expect("log");
    let mut child = shipper_run(dir.path(), &logs, port)
        .env("SHIPPER_LOG_FORMAT", "text")
        .env("SHIPPER_SHUTDOWN_GRACE", "60s")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .stdout(log.try_clone().expect("clone"))
        .stderr(log)
        .spawn()
        .expect("spawn shipper");
    let read_log = || std::fs::read_to_string(dir.path().join("shipper.log")).unwrap_or_default();
    wait_for("lines in the spool", || {
        http_get(port, "/metrics")
            .is_some_and(|m| m.lines().any(|l| l.starts_with("shipper_events_spooled_total 1")))
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let term = || {
        assert!(
            Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill").success()
        )
    };
    term();
    wait_for("the drain to start", || read_log().contains("shutdown requested"));
    let sent = std::time::Instant::now();
    term();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            sent.elapsed() < std::time::Duration::from_secs(5),
            "still running 5 s after the second signal:\n{}",
            read_log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "{}", read_log());
    drop(held);
}

#[test]
fn check_prints_the_resolved_group_settings_and_route_the_ones_a_group_gets() {
    let rules = r#"[{ group = "k8s_prod_shop_*", retention_days = 90, tags = { team = "shop" } }]"#;
    let out = shipper()
        .arg("check")
        .env("CLUSTER_NAME", "prod")
        .env("NODE_NAME", "n1")
        .env("SHIPPER_RETENTION_DAYS", "14")
        .env("SHIPPER_TAGS", r#"{ owner = "platform" }"#)
        .env("SHIPPER_GROUP_SETTINGS", rules)
        .env("SHIPPER_CREATE_GROUPS", "false")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let effective: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        effective["group_settings"],
        serde_json::json!([
            { "group": "k8s_prod_shop_*", "retention_days": 90, "log_group_class": null, "kms_key_id": null,
              "tags": { "owner": "platform", "team": "shop" } },
            { "group": "*", "retention_days": 14, "log_group_class": null, "kms_key_id": null,
              "tags": { "owner": "platform" } },
        ])
    );
    assert_eq!(effective["create_groups"], false);
    assert_eq!(effective["retention_apply"], "created");

    let bad = shipper()
        .arg("check")
        .env("CLUSTER_NAME", "prod")
        .env("NODE_NAME", "n1")
        .env("SHIPPER_RETENTION_DAYS", "10")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&bad.stderr).into_owned();
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("SHIPPER_RETENTION_DAYS") && stderr.contains("1, 3, 5, 7, 14, 30"), "{stderr}");

    let dir = tempfile::tempdir().expect("tempdir");
    let pod = pod_file(dir.path(), serde_json::json!({ "app": "web" }));
    let out = shipper()
        .args(["route", "--pod"])
        .arg(&pod)
        .args(["--container", "nginx"])
        .env("CLUSTER_NAME", "prod")
        .env("SHIPPER_RETENTION_DAYS", "14")
        .env("SHIPPER_GROUP_SETTINGS", rules)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let routed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(routed["group"], "k8s_prod_shop_web_nginx");
    assert_eq!(routed["group_settings"]["group"], "k8s_prod_shop_*");
    assert_eq!(routed["group_settings"]["retention_days"], 90);
}

/// Runs the shipper with one line to send, `HTTPS_PROXY` pointing at a recorder, no endpoint
/// override and `env`; returns the first request line the proxy saw. The proxy answers 502,
/// so nothing leaves the machine.
fn first_proxied_request(env: &[(&str, &str)]) -> String {
    use std::io::{BufRead, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let id = "b".repeat(64);
    std::fs::write(logs.join(format!("web-0_shop_app-{id}.log")), "2026-12-03T10:00:00Z stdout F hello\n")
        .expect("log file");
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let proxy_url = format!("http://{}", proxy.local_addr().expect("addr"));
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for mut conn in proxy.incoming().flatten() {
            let mut first = String::new();
            let mut reader = std::io::BufReader::new(conn.try_clone().expect("clone"));
            if reader.read_line(&mut first).is_ok() && seen_tx.send(first.trim_end().to_owned()).is_err() {
                return;
            }
            let _ = conn.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
        }
    });
    // No endpoint override and no NO_PROXY: `shipper()` starts from an empty environment.
    let mut command = shipper_run(dir.path(), &logs, free_port());
    command
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("HTTPS_PROXY", &proxy_url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("spawn shipper");
    let seen = seen_rx.recv_timeout(std::time::Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    seen.expect("no request reached the proxy within 30 s")
}

/// `HTTPS_PROXY` carries the shipper's calls (CONNECT through the proxy), and the SDK's
/// standard variables pick the FIPS and dual-stack endpoints, for CloudWatch Logs and, with
/// a role to assume, for STS: what the README's "Proxies, FIPS and dual-stack endpoints"
/// promises, seen on the wire of the real binary.
#[test]
fn proxy_fips_and_dual_stack_come_from_the_sdks_variables() {
    for (env, want) in [
        (vec![], "CONNECT logs.us-east-1.amazonaws.com:443"),
        (vec![("AWS_USE_FIPS_ENDPOINT", "true")], "CONNECT logs-fips.us-east-1.amazonaws.com:443"),
        (vec![("AWS_USE_DUALSTACK_ENDPOINT", "true")], "CONNECT logs.us-east-1.api.aws:443"),
        (
            vec![("SHIPPER_ROLE_ARN", "arn:aws:iam::123456789012:role/w"), ("AWS_USE_FIPS_ENDPOINT", "true")],
            "CONNECT sts-fips.us-east-1.amazonaws.com:443",
        ),
    ] {
        let seen = first_proxied_request(&env);
        assert!(seen.starts_with(want), "{env:?}: the proxy saw {seen:?}, want {want:?}");
    }
}

/// `shipper check` shows the role to assume with its default session name, and refuses what
/// STS would refuse, naming the key.
#[test]
fn check_shows_the_role_and_refuses_what_sts_would() {
    let check = |envs: &[(&str, &str)]| check_on("ip-10-0-1-7.ec2.internal", envs);
    let out = check(&[
        ("SHIPPER_ROLE_ARN", "arn:aws:iam::210987654321:role/k8s-log-writer"),
        ("SHIPPER_EXTERNAL_ID", "prod-eu-1"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let effective: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        effective["assume_role"],
        serde_json::json!({
            "role_arn": "arn:aws:iam::210987654321:role/k8s-log-writer",
            "external_id": "prod-eu-1",
            "session_name": "shipper-ip-10-0-1-7.ec2.internal",
        })
    );
    let effective: serde_json::Value = serde_json::from_slice(&check(&[]).stdout).expect("JSON");
    assert_eq!(effective["assume_role"], serde_json::Value::Null);

    for (envs, key) in [
        (vec![("SHIPPER_ROLE_ARN", "k8s-log-writer")], "SHIPPER_ROLE_ARN"),
        (vec![("SHIPPER_EXTERNAL_ID", "prod-eu-1")], "SHIPPER_EXTERNAL_ID"),
        (
            vec![
                ("SHIPPER_ROLE_ARN", "arn:aws:iam::210987654321:role/w"),
                ("SHIPPER_ROLE_SESSION_NAME", "a b"),
            ],
            "SHIPPER_ROLE_SESSION_NAME",
        ),
    ] {
        let out = check(&envs);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{envs:?}: {stderr}");
        assert!(stderr.contains(key), "{envs:?}: {stderr}");
    }
}

/// A fake AWS endpoint: answers STS `AssumeRoleWithWebIdentity` and the EKS Pod Identity
/// agent's `GET /v1/credentials` with session credentials, and every CloudWatch Logs call
/// with success; sends each request to `bodies`.
/// One request the fake AWS endpoint answered.
#[derive(Debug)]
struct Seen {
    /// `POST / HTTP/1.1`, `GET /v1/credentials HTTP/1.1`.
    request_line: String,
    /// The `Authorization` header, if any.
    authorization: String,
    body: String,
}

fn fake_aws(bodies: std::sync::mpsc::Sender<Seen>) -> String {
    use std::io::{BufRead, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let bodies = bodies.clone();
            std::thread::spawn(move || {
                let mut writer = conn.try_clone().expect("clone");
                let mut reader = std::io::BufReader::new(conn);
                loop {
                    let (mut length, mut target, mut authorization) = (0usize, String::new(), String::new());
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let lower = line.to_ascii_lowercase();
                        if lower.starts_with("authorization:") {
                            authorization = line["authorization:".len()..].trim().to_owned();
                        }
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if let Some(v) = lower.strip_prefix("x-amz-target:") {
                            target = v.trim().to_owned();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let body = String::from_utf8_lossy(&body).into_owned();
                    let (content_type, answer) = if request_line.starts_with("GET /v1/credentials") {
                        let expires = humantime::format_rfc3339_seconds(
                            std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
                        );
                        (
                            "application/json",
                            format!(
                                r#"{{"AccessKeyId":"ASIAPODIDENTITY","SecretAccessKey":"SECRET-MARKER-5c1d","Token":"SESSION-MARKER-9e2b","Expiration":"{expires}","AccountId":"123456789012"}}"#
                            ),
                        )
                    } else if body.contains("Action=AssumeRoleWithWebIdentity") {
                        let expires = humantime::format_rfc3339_seconds(
                            std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
                        );
                        (
                            "text/xml",
                            format!(
                                "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>\
                             <AccessKeyId>ASIAWEBIDENTITY</AccessKeyId><SecretAccessKey>SECRET-MARKER-5c1d</SecretAccessKey>\
                             <SessionToken>SESSION-MARKER-9e2b</SessionToken><Expiration>{expires}</Expiration>\
                             </Credentials><AssumedRoleUser><AssumedRoleId>AROA:s</AssumedRoleId>\
                             <Arn>arn:aws:sts::123456789012:assumed-role/w/s</Arn></AssumedRoleUser>\
                             </AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
                            ),
                        )
                    } else if target.ends_with("putlogevents") {
                        ("application/x-amz-json-1.1", r#"{"nextSequenceToken":"1"}"#.to_owned())
                    } else {
                        ("application/x-amz-json-1.1", "{}".to_owned())
                    };
                    let _ = bodies.send(Seen {
                        request_line: request_line.trim_end().to_owned(),
                        authorization,
                        body,
                    });
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
                        answer.len()
                    );
                    if writer
                        .write_all(head.as_bytes())
                        .and_then(|()| writer.write_all(answer.as_bytes()))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// Even at `RUST_LOG=trace` with the SDK's `LOG_SENSITIVE_BODIES=true`, the shipper's log
/// never holds the IRSA web-identity token, the session credentials STS hands out, or a
/// line's payload: the SDK and HTTP libraries that would log bodies and signed headers are
/// capped.
#[test]
fn trace_logs_hold_no_token_and_no_payload() {
    const TOKEN: &str = "TOKEN-MARKER-3f7a";
    const PAYLOAD: &str = "PAYLOAD-MARKER-81c4";
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let id = "c".repeat(64);
    std::fs::write(
        logs.join(format!("web-0_shop_app-{id}.log")),
        format!("2026-12-03T10:00:00Z stdout F {PAYLOAD}\n"),
    )
    .expect("log file");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).expect("token");
    let (bodies_tx, bodies) = std::sync::mpsc::channel();
    let endpoint = fake_aws(bodies_tx);
    let log_path = dir.path().join("shipper.log");
    let log = std::fs::File::create(&log_path).expect("log");
    // No static keys (`shipper()` starts from an empty environment): IRSA's web identity.
    let mut child = shipper_run(dir.path(), &logs, free_port())
        .env("RUST_LOG", "trace")
        // What an operator debugging the SDK sets: it un-redacts the bodies the SDK logs.
        .env("LOG_SENSITIVE_BODIES", "true")
        .env("SHIPPER_LOG_FORMAT", "json")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/w")
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file)
        .env("AWS_CONFIG_FILE", dir.path().join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("no-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(log.try_clone().expect("clone"))
        .stderr(log)
        .spawn()
        .expect("spawn shipper");
    // The token and the payload must both have gone over the wire, or the test proves nothing.
    let (mut token_sent, mut payload_sent) = (false, false);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !(token_sent && payload_sent) && std::time::Instant::now() < deadline {
        if let Ok(seen) = bodies.recv_timeout(std::time::Duration::from_millis(200)) {
            token_sent |= seen.body.contains(TOKEN);
            payload_sent |= seen.body.contains(PAYLOAD);
        }
    }
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill").success());
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).expect("log");
    assert!(token_sent && payload_sent, "token sent {token_sent}, payload sent {payload_sent}:\n{log}");
    assert!(log.lines().any(|l| l.contains("\"TRACE\"")), "trace logging was not on:\n{log}");
    for secret in [TOKEN, PAYLOAD, "SESSION-MARKER-9e2b", "SECRET-MARKER-5c1d"] {
        let leaks: Vec<&str> = log.lines().filter(|l| l.contains(secret)).take(3).collect();
        assert!(leaks.is_empty(), "{secret} in the log:\n{}", leaks.join("\n"));
    }
}

/// Started with a low soft open-file limit (a runtime's default), the shipper raises it to
/// the hard limit and exports both the limit and the descriptors it holds.
#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut run = shipper_run(dir.path(), dir.path(), port);
    run.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test");
    let envs: Vec<_> = run.get_envs().filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))).collect();
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -Sn 256 && exec \"$0\" run"])
        .arg(run.get_program())
        .env_clear()
        .envs(envs)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn shipper");
    let mut metrics = String::new();
    wait_for("/metrics", || {
        metrics = http_get(port, "/metrics").unwrap_or_default();
        metrics.contains("shipper_open_fds_limit")
    });
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).expect("limits");
    let _ = child.kill();
    let _ = child.wait();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("Max open files");
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (soft, hard) = (fields[3], fields[4]);
    assert_ne!(soft, "256", "the soft limit stayed where the runtime put it: {line}");
    assert_eq!(soft, hard, "{line}");
    let value = |name: &str| -> i64 {
        let line = metrics.lines().find(|l| l.starts_with(&format!("{name} "))).expect(name);
        line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("value")
    };
    let exported = value("shipper_open_fds_limit");
    assert_eq!(exported.to_string(), if hard == "unlimited" { "-1".to_owned() } else { hard.to_owned() });
    assert!((3..256).contains(&value("shipper_open_fds")), "{metrics}");
}

/// EKS Pod Identity: nothing to configure in the shipper. The agent's variables (set here
/// as the Pod Identity webhook sets them, with the agent faked on loopback) give the
/// default chain its credentials: the agent is asked with the projected token, and its
/// session key signs the CloudWatch Logs calls.
#[test]
fn eks_pod_identity_credentials_sign_the_calls() {
    const TOKEN: &str = "POD-IDENTITY-TOKEN-5e1f";
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let id = "d".repeat(64);
    std::fs::write(logs.join(format!("web-0_shop_app-{id}.log")), "2026-12-03T10:00:00Z stdout F hello\n")
        .expect("log file");
    let token_file = dir.path().join("eks-pod-identity-token");
    std::fs::write(&token_file, TOKEN).expect("token");
    let (seen_tx, seen) = std::sync::mpsc::channel();
    let endpoint = fake_aws(seen_tx);
    let mut child = shipper_run(dir.path(), &logs, free_port())
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", format!("{endpoint}/v1/credentials"))
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_file)
        .env("AWS_CONFIG_FILE", dir.path().join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("no-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn shipper");
    let (mut asked, mut put) = (None, None);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while put.is_none() && std::time::Instant::now() < deadline {
        if let Ok(request) = seen.recv_timeout(std::time::Duration::from_millis(200)) {
            if request.request_line.starts_with("GET /v1/credentials") {
                asked = Some(request);
            } else if request.body.contains("logEvents") {
                put = Some(request);
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let asked = asked.expect("the Pod Identity agent was never asked");
    assert_eq!(asked.authorization, TOKEN, "the agent is asked with the projected token");
    let put = put.expect("no PutLogEvents arrived");
    assert!(put.authorization.contains("Credential=ASIAPODIDENTITY/"), "{}", put.authorization);
}
