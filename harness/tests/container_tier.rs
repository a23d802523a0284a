//! Scenario files on the container tier (feature `e2e`): the shipper image from
//! deploy/Dockerfile on a simulated node, LocalStack or moto in a container started through
//! testcontainers, the same gateway, audit and report as the local tier, and faults injected
//! with docker (kill, network disconnect, pause).
//!
//! Needs Docker and the images: run `harness/images/build.sh` first. Without them every test
//! fails with that instruction; nothing is skipped. Reports land in
//! `target/harness/<name>@container/`.

use std::path::{Path, PathBuf};

use harness::runner::{BackendChoice, RunOptions, report_dir, run_scenario};
use harness::scenario::Scenario;
use harness::tiers::ClusterChoice;
use harness::tiers::docker::{Images, api_shim};

fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(format!("{name}.toml"))
}

/// Containers and timing-sensitive scenarios: one at a time in this binary.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn run(test: &str, name: &str, backend: BackendChoice) {
    let _serial = SERIAL.lock().await;
    if let Err(e) = Images::locate() {
        panic!("the container tier cannot run: {e}");
    }
    // testcontainers speaks Docker API 1.53; on an older daemon this test runs again in a
    // child process whose DOCKER_HOST is the harness's API shim.
    if api_shim::rerun_test_through_shim(test).await {
        return;
    }
    let scenario = Scenario::load(&scenario_path(name)).unwrap_or_else(|e| panic!("{e}"));
    let label = match &backend {
        BackendChoice::LocalStack => "container-localstack",
        _ => "container",
    };
    let options = RunOptions {
        backend,
        seed: 1,
        progress: false,
        out_dir: Some(report_dir(&format!("{name}@{label}"))),
        cluster: ClusterChoice::Container,
    };
    let report = run_scenario(&scenario, &options)
        .await
        .unwrap_or_else(|e| panic!("scenario {name} could not run on the container tier: {e}"));
    println!("{}", report.table());
    assert!(report.passed, "scenario {name} failed on the container tier:\n{}", report.table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_on_localstack() {
    run("steady_state_on_localstack", "steady-state", BackendChoice::LocalStack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_disconnect() {
    run("network_disconnect", "network-disconnect", BackendChoice::Moto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_pause() {
    run("backend_pause", "backend-pause", BackendChoice::Moto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipper_kill_random() {
    run("shipper_kill_random", "shipper-kill-random", BackendChoice::Moto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_outage() {
    run("sigterm_during_outage", "sigterm-during-outage", BackendChoice::Moto).await;
}

/// A graded fault of the harness gateway, which stays in the path on the container tier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_blackhole() {
    run("short_blackhole", "short-blackhole", BackendChoice::Moto).await;
}

/// The kind tier's writer image, run with `docker run` as a pod runs it: its stdout is
/// byte for byte the plan the harness computes the pod's ledger from.
#[test]
fn writer_image_prints_the_plan() {
    use harness::audit::Payload;
    use harness::writer::WriterArgs;
    let images = Images::locate().unwrap_or_else(|e| panic!("the container tier cannot run: {e}"));
    let args = WriterArgs {
        run: "rimage".into(),
        pod: "web-0".into(),
        container: "app".into(),
        lines: 12,
        rate: 500.0,
        sizes: vec!["small".into(), "16KiB+1".into(), "invalid-utf8".into()],
        stream: "stdout".into(),
        first_seq: 100,
        traces: None,
        json: false,
    };
    let plan = args.plan().expect("valid plan");
    let output = std::process::Command::new("docker")
        .args(["run", "--rm", "--network=none", &images.writer])
        .args(args.to_args())
        .output()
        .expect("docker run");
    assert!(output.status.success(), "writer image failed: {}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&[u8]> = output.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 12);
    for (seq, raw) in plan.seqs().zip(lines) {
        assert_eq!(raw, plan.line(seq).expect("line").bytes.as_slice(), "line {seq}");
        assert!(Payload::verify(&Payload::expected_text(raw)).is_ok(), "line {seq}");
    }
}

/// The kind tier's `network_disconnect` on a network like kind's (no user-configured IPv4
/// subnet, where `docker network connect --ip` is refused): nodes reconnected in the order
/// they were disconnected get their addresses back, which kind nodes need.
#[test]
fn reconnected_containers_keep_their_addresses() {
    use harness::tiers::docker::cli::{self as docker, Network};
    let images = Images::locate().unwrap_or_else(|e| panic!("the container tier cannot run: {e}"));
    let tag = format!("{:x}", std::process::id());
    let network = Network::create(&format!("shipper-harness-reconnect-{tag}")).expect("network");
    let names: Vec<String> = (0..2).map(|i| format!("shipper-harness-reconnect-{tag}-{i}")).collect();
    struct Remove<'a>(&'a [String]);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            for name in self.0 {
                let _ = docker::run(["rm", "-f", name.as_str()]);
            }
        }
    }
    let _remove = Remove(&names);
    let mut addresses = Vec::new();
    for name in &names {
        // A writer that runs for minutes is a long-lived container like a node.
        docker::run([
            "run",
            "-d",
            "--name",
            name.as_str(),
            "--network",
            network.name.as_str(),
            images.writer.as_str(),
            "--run=r",
            "--pod=p",
            "--container=c",
            "--lines=100000",
            "--rate=1",
        ])
        .expect("docker run");
        addresses.push(docker::container_ip(name, &network.name).expect("inspect").expect("an address"));
    }
    for name in &names {
        docker::network_disconnect(&network.name, name).expect("disconnect");
        assert_eq!(docker::container_ip(name, &network.name).expect("inspect"), None);
    }
    for (name, ip) in names.iter().zip(&addresses) {
        docker::reconnect_keeping_address(&network.name, name, *ip).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(docker::container_ip(name, &network.name).expect("inspect"), Some(*ip));
    }
    // Reconnected in the other order, the first would take the other's address: an error.
    for name in &names {
        docker::network_disconnect(&network.name, name).expect("disconnect");
    }
    let err = docker::reconnect_keeping_address(&network.name, &names[1], addresses[1])
        .expect_err("the lowest free address is the other container's");
    assert!(err.to_string().contains(&addresses[1].to_string()), "{err}");
}
