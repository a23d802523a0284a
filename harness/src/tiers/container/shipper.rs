//! The shipper image as the DaemonSet runs it, on one simulated node: the SimNode's directory
//! bind-mounted read-only at the same absolute path (its `/var/log/containers` symlinks are
//! absolute), the state dir bind-mounted read-write so it survives `docker kill` + `docker
//! start`, UID 0 with every capability dropped and a read-only root file system
//! (deploy/base/daemonset.yaml's securityContext). Same surface as the local tier's
//! [`ShipperProcess`](crate::shipper_proc::ShipperProcess).

use std::collections::BTreeMap;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::shipper_proc::{ShipperEnv, ShipperError, parse_prometheus};
use crate::tiers::docker::{ContainerError, cli as docker};

/// `SHIPPER_LISTEN` inside the container (the DaemonSet's port).
pub const METRICS_PORT: u16 = 2021;

/// A shipper container (created once, started, killed and started again).
#[derive(Debug)]
pub struct ShipperContainer {
    id: String,
    network: String,
    log_path: PathBuf,
    ip: Option<Ipv4Addr>,
    pid: Option<u32>,
    /// Starts so far.
    pub starts: u32,
}

fn container_error(e: ContainerError) -> ShipperError {
    ShipperError::Container(e.to_string())
}

impl ShipperContainer {
    /// Create the container `name` from `image` on `network` with the contract's env and
    /// start it. `node_root` is the SimNode's directory; `env.state_dir` and `env.kubeconfig`
    /// are mounted at their host paths too. Its output is saved to `log_path` when dropped.
    pub fn spawn(
        image: &str,
        name: &str,
        network: &str,
        env: &ShipperEnv,
        node_root: &Path,
        log_path: PathBuf,
    ) -> Result<ShipperContainer, ShipperError> {
        std::fs::create_dir_all(&env.state_dir)
            .map_err(|source| ShipperError::Spawn { bin: env.state_dir.clone(), source })?;
        let args = create_args(image, name, network, env, node_root);
        let id = docker::run(&args).map_err(container_error)?;
        let mut me =
            ShipperContainer { id, network: network.to_owned(), log_path, ip: None, pid: None, starts: 0 };
        me.start()?;
        Ok(me)
    }

    /// Start again (after a kill or stop) with the same state directory.
    pub fn start(&mut self) -> Result<(), ShipperError> {
        docker::run(["start", &self.id]).map_err(container_error)?;
        self.starts += 1;
        self.refresh();
        Ok(())
    }

    /// Re-read the container's IP on its network and its main process id.
    fn refresh(&mut self) {
        self.ip = docker::container_ip(&self.id, &self.network).ok().flatten();
        self.pid = docker::run(["inspect", "--format", "{{.State.Pid}}", &self.id])
            .ok()
            .and_then(|p| p.parse().ok())
            .filter(|p| *p != 0);
    }

    /// `(running, exit code)` from `docker inspect`.
    fn state(&self) -> Option<(bool, i32)> {
        let text =
            docker::run(["inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", &self.id]).ok()?;
        let (running, code) = text.split_once(' ')?;
        Some((running == "true", code.parse().ok()?))
    }

    /// If the container stopped by itself (not by `kill` or `terminate`), return how.
    pub fn reap_exit(&mut self) -> Option<std::process::ExitStatus> {
        use std::os::unix::process::ExitStatusExt;
        self.pid?;
        match self.state()? {
            (false, code) => {
                self.pid = None;
                Some(std::process::ExitStatus::from_raw((code & 0xff) << 8))
            }
            (true, _) => None,
        }
    }

    /// True while the container runs.
    pub fn is_running(&mut self) -> bool {
        self.state().is_some_and(|(running, _)| running)
    }

    /// Wait until `/healthz` answers on the container's address, at most `timeout`.
    pub async fn wait_healthy(&mut self, timeout: Duration) -> Result<(), ShipperError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .map_err(|e| ShipperError::Unhealthy(e.to_string()))?;
        let deadline = Instant::now() + timeout;
        loop {
            match self.state() {
                Some((false, code)) => {
                    return Err(ShipperError::Unhealthy(format!(
                        "container exited with {code}:\n{}",
                        self.log_tail()
                    )));
                }
                Some((true, _)) if self.ip.is_none() => self.refresh(),
                _ => {}
            }
            if let Some(ip) = self.ip
                && let Ok(resp) = client.get(format!("http://{ip}:{METRICS_PORT}/healthz")).send().await
                && resp.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ShipperError::Unhealthy(format!(
                    "no /healthz within {timeout:?}:\n{}",
                    self.log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The metrics URL on the container's current address.
    pub fn metrics_url(&self) -> Option<String> {
        self.ip.map(|ip| format!("http://{ip}:{METRICS_PORT}/metrics"))
    }

    /// Scrape `/metrics` into name{labels} → value.
    pub async fn metrics(&self) -> Result<BTreeMap<String, f64>, ShipperError> {
        let url = self.metrics_url().ok_or_else(|| ShipperError::Scrape {
            url: format!("container {}", self.id),
            reason: "no address on the network (disconnected or stopped)".into(),
        })?;
        let err = |e: reqwest::Error| ShipperError::Scrape { url: url.clone(), reason: e.to_string() };
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().map_err(err)?;
        let text = client.get(&url).send().await.map_err(err)?.text().await.map_err(err)?;
        Ok(parse_prometheus(&text))
    }

    /// Resident set size of the shipper process, KiB (the container's main process seen in
    /// the host's `/proc`, the same measure as the local tier).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// `docker kill` (SIGKILL) and wait until the container is stopped.
    pub fn kill(&mut self) {
        let _ = docker::run(["kill", &self.id]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.state().is_some_and(|(running, _)| running) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.pid = None;
    }

    /// SIGTERM (`docker kill --signal TERM`) and wait up to `timeout` for the exit; returns
    /// the exit code, or `None` if it had to be killed.
    pub async fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        if !self.is_running() {
            return None;
        }
        let _ = docker::run(["kill", "--signal", "TERM", &self.id]);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((false, code)) = self.state() {
                self.pid = None;
                return Some(code);
            }
            if Instant::now() > deadline {
                self.kill();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Detach from the network (`docker network disconnect`): every connection of the shipper
    /// to the gateway and the API loses its route.
    pub fn disconnect(&mut self) -> Result<(), ShipperError> {
        docker::network_disconnect(&self.network, &self.id).map_err(container_error)?;
        self.ip = None;
        Ok(())
    }

    /// Attach again (`docker network connect`); the address may change.
    pub fn connect(&mut self) -> Result<(), ShipperError> {
        docker::network_connect(&self.network, &self.id).map_err(container_error)?;
        self.refresh();
        Ok(())
    }

    /// Where the container's output is saved.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The container's output so far (all starts), into the log file.
    pub fn save_log(&self) {
        if let Ok(file) = File::create(&self.log_path)
            && let Ok(err) = file.try_clone()
        {
            let _ = Command::new("docker")
                .args(["logs", &self.id])
                .stdin(Stdio::null())
                .stdout(file)
                .stderr(err)
                .status();
        }
    }

    fn log_tail(&self) -> String {
        let out = Command::new("docker").args(["logs", "--tail", "30", &self.id]).output();
        out.map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
            .unwrap_or_default()
    }
}

impl Drop for ShipperContainer {
    fn drop(&mut self) {
        self.save_log();
        let _ = docker::run(["rm", "--force", "--volumes", &self.id]);
    }
}

/// `docker create` arguments: the DaemonSet's security context and env, the node's paths.
pub fn create_args(
    image: &str,
    name: &str,
    network: &str,
    env: &ShipperEnv,
    node_root: &Path,
) -> Vec<String> {
    let mount = |path: &Path, mode: &str| format!("{0}:{0}:{mode}", path.display());
    let mut args: Vec<String> = [
        "create",
        "--name",
        name,
        "--network",
        network,
        "--label",
        "shipper-harness=shipper",
        "--user",
        "0:0",
        "--cap-drop",
        "ALL",
        "--read-only",
        "--security-opt",
        "no-new-privileges",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for volume in [mount(node_root, "ro"), mount(&env.state_dir, "rw"), mount(&env.kubeconfig, "ro")] {
        args.extend(["--volume".into(), volume]);
    }
    let log_filter = std::env::var("HARNESS_SHIPPER_LOG").unwrap_or_else(|_| "info".into());
    let mut vars: BTreeMap<String, String> = [
        ("CLUSTER_NAME", env.cluster.clone()),
        ("NODE_NAME", env.node.clone()),
        ("AWS_ENDPOINT_URL", env.endpoint.clone()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "harness".into()),
        ("AWS_SECRET_ACCESS_KEY", "harness".into()),
        ("KUBECONFIG", env.kubeconfig.display().to_string()),
        ("SHIPPER_LOG_PATHS", env.log_paths.clone()),
        ("SHIPPER_STATE_DIR", env.state_dir.display().to_string()),
        ("SHIPPER_LISTEN", format!("0.0.0.0:{METRICS_PORT}")),
        ("SHIPPER_LOG_FORMAT", "json".into()),
        ("RUST_LOG", log_filter),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    vars.extend(env.extra.clone());
    for (key, value) in vars {
        args.extend(["--env".into(), format!("{key}={value}")]);
    }
    args.extend([image.to_owned(), "run".to_owned()]);
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> ShipperEnv {
        ShipperEnv {
            cluster: "local".into(),
            node: "node-a".into(),
            endpoint: "http://172.18.0.1:4000".into(),
            kubeconfig: PathBuf::from("/tmp/w/kubeconfig"),
            log_paths: "/tmp/w/node/var/log/containers/*.log".into(),
            state_dir: PathBuf::from("/tmp/w/state"),
            port: 1,
            extra: BTreeMap::from([("SHIPPER_FLUSH_INTERVAL".into(), "200ms".into())]),
        }
    }

    #[test]
    fn create_args_mirror_the_daemonset_and_mount_host_paths_in_place() {
        let args = create_args("shipper:x", "s1", "net1", &env(), Path::new("/tmp/w/node"));
        let joined = args.join(" ");
        for expected in [
            "--user 0:0",
            "--cap-drop ALL",
            "--read-only",
            "--network net1",
            "--volume /tmp/w/node:/tmp/w/node:ro",
            "--volume /tmp/w/state:/tmp/w/state:rw",
            "--volume /tmp/w/kubeconfig:/tmp/w/kubeconfig:ro",
            "--env SHIPPER_LISTEN=0.0.0.0:2021",
            "--env AWS_ENDPOINT_URL=http://172.18.0.1:4000",
            "--env SHIPPER_FLUSH_INTERVAL=200ms",
            "--env NODE_NAME=node-a",
        ] {
            assert!(joined.contains(expected), "{expected:?} missing in {joined}");
        }
        assert_eq!(&args[args.len() - 2..], ["shipper:x", "run"], "image, then the command");
    }

    #[test]
    fn scenario_env_overrides_the_defaults_once() {
        let mut e = env();
        e.extra.insert("RUST_LOG".into(), "debug".into());
        let args = create_args("i", "n", "net", &e, Path::new("/n"));
        let rust_log: Vec<_> = args.iter().filter(|a| a.starts_with("RUST_LOG=")).collect();
        assert_eq!(rust_log, ["RUST_LOG=debug"]);
    }
}
