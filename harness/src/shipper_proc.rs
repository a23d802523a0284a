//! The shipper under test: the real binary, spawned with the contract's environment,
//! scraped on `/metrics`, killed and restarted on the scenario's timeline.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Failures controlling the shipper.
#[derive(Debug, thiserror::Error)]
pub enum ShipperError {
    /// The binary could not be built or found.
    #[error("shipper binary: {0}")]
    Binary(String),
    /// Spawning failed.
    #[error("spawning {bin}: {source}")]
    Spawn {
        /// The binary.
        bin: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It did not become healthy in time, or exited.
    #[error("shipper not healthy: {0}")]
    Unhealthy(String),
    /// The shipper container could not be created or controlled (container tier).
    #[error("shipper container: {0}")]
    Container(String),
    /// Scraping `/metrics` failed.
    #[error("scraping {url}: {reason}")]
    Scrape {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// The shipper binary: `$SHIPPER_BIN`, else built (or found fresh) once per process with cargo
/// (debug profile, same workspace), so `cargo run -p harness` and `cargo test` need no extra
/// step.
pub fn shipper_binary() -> Result<PathBuf, ShipperError> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("SHIPPER_BIN") {
            return Ok(PathBuf::from(bin));
        }
        build_with_cargo(false)
    })
    .clone()
    .map_err(ShipperError::Binary)
}

/// The release-built shipper (for benchmarks): `$SHIPPER_BIN`, else `cargo build --release`
/// once per process, same workspace.
pub fn release_shipper_binary() -> Result<PathBuf, ShipperError> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("SHIPPER_BIN") {
            return Ok(PathBuf::from(bin));
        }
        build_with_cargo(true)
    })
    .clone()
    .map_err(ShipperError::Binary)
}

fn build_with_cargo(release: bool) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut cmd = Command::new(&cargo);
    // Cargo sets these for the test process; some build scripts (ring) track
    // CARGO_MANIFEST_DIR, so passing them on would make this build and the outer one
    // invalidate each other's artifacts and rebuild half the dependency tree every time.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || matches!(
                key.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_BIN_NAME"
                    | "OUT_DIR"
            )
        {
            cmd.env_remove(key.as_ref());
        }
    }
    // `--workspace` keeps feature unification identical to `cargo test --workspace`, so
    // this reuses the binary that command built instead of rebuilding dependencies.
    cmd.args(["build", "--quiet", "--workspace", "--bin", "shipper", "--message-format=json"]);
    if release {
        cmd.arg("--release");
    }
    let out = cmd
        .arg("--manifest-path")
        .arg(&manifest)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo build --bin shipper failed ({})", out.status));
    }
    for line in out.stdout.split(|b| *b == b'\n') {
        let Ok(msg) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact"
            && msg["target"]["name"] == "shipper"
            && let Some(exe) = msg["executable"].as_str()
        {
            return Ok(PathBuf::from(exe));
        }
    }
    Err("cargo built no shipper executable".into())
}

/// Everything the shipper is started with (the contract's env, DESIGN §3).
#[derive(Debug, Clone)]
pub struct ShipperEnv {
    /// `CLUSTER_NAME`
    pub cluster: String,
    /// `NODE_NAME`
    pub node: String,
    /// `AWS_ENDPOINT_URL` (the gateway).
    pub endpoint: String,
    /// `KUBECONFIG`
    pub kubeconfig: PathBuf,
    /// `SHIPPER_LOG_PATHS`
    pub log_paths: String,
    /// `SHIPPER_STATE_DIR`
    pub state_dir: PathBuf,
    /// `SHIPPER_LISTEN` port on 127.0.0.1.
    pub port: u16,
    /// Anything else (`SHIPPER_FLUSH_INTERVAL`, ...).
    pub extra: BTreeMap<String, String>,
}

/// A launch that replaces the harness's default `shipper run` with the contract's env: the
/// arguments and the *whole* environment the process gets (nothing of the harness's own env
/// is passed on). Used to run the shipper exactly as a deployment manifest starts it, with
/// only the wiring to the local tier substituted. Whatever it says, the shipper must still
/// serve `/healthz` and `/metrics` on 127.0.0.1 at [`ShipperEnv::port`]: the runner scrapes
/// there.
#[derive(Debug, Clone, Default)]
pub struct ShipperLaunch {
    /// Arguments (instead of `run`).
    pub args: Vec<String>,
    /// The complete environment.
    pub env: BTreeMap<String, String>,
}

/// A running (or stopped) shipper process.
#[derive(Debug)]
pub struct ShipperProcess {
    env: ShipperEnv,
    launch: Option<ShipperLaunch>,
    log_path: PathBuf,
    child: Option<Child>,
    /// Starts so far.
    pub starts: u32,
    /// Crash points (`<point>:<n>`, see the shipper's `SHIPPER_CRASH_AT`) for the next starts,
    /// one per start.
    crash_plan: std::collections::VecDeque<String>,
    /// The crash point armed in the current start, if any.
    armed: Option<String>,
    /// The binary to run; `None` = [`shipper_binary`].
    bin: Option<PathBuf>,
}

impl ShipperProcess {
    /// Spawn the shipper; its stdout and stderr are appended to `log_path`.
    pub fn spawn(env: ShipperEnv, log_path: PathBuf) -> Result<Self, ShipperError> {
        Self::spawn_with(env, None, log_path, Vec::new())
    }

    /// Spawn the shipper with `launch` instead of the default arguments and env (restarts
    /// use it too); start number `i` (0 = this one) is armed with `crash_plan[i]`, so it
    /// aborts at that point (the harness then restarts it).
    pub fn spawn_with(
        env: ShipperEnv,
        launch: Option<ShipperLaunch>,
        log_path: PathBuf,
        crash_plan: Vec<String>,
    ) -> Result<Self, ShipperError> {
        let mut me = ShipperProcess {
            env,
            launch,
            log_path,
            child: None,
            starts: 0,
            crash_plan: crash_plan.into(),
            armed: None,
            bin: None,
        };
        me.start()?;
        Ok(me)
    }

    /// Spawn a given shipper binary (e.g. a release build, for benchmarks).
    pub fn spawn_binary(bin: PathBuf, env: ShipperEnv, log_path: PathBuf) -> Result<Self, ShipperError> {
        let mut me = ShipperProcess {
            env,
            launch: None,
            log_path,
            child: None,
            starts: 0,
            crash_plan: Default::default(),
            armed: None,
            bin: Some(bin),
        };
        me.start()?;
        Ok(me)
    }

    /// Process id of the running process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The crash point armed in the current (or last) start.
    pub fn armed_crash_point(&self) -> Option<&str> {
        self.armed.as_deref()
    }

    /// If the process ended by itself, reap it and return how it ended.
    pub fn reap_exit(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(status)
    }

    /// The metrics URL.
    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.env.port)
    }

    /// The environment it runs with.
    pub fn env(&self) -> &ShipperEnv {
        &self.env
    }

    /// Start again (after a kill or stop) with the same state directory.
    pub fn start(&mut self) -> Result<(), ShipperError> {
        let bin = match &self.bin {
            Some(bin) => bin.clone(),
            None => shipper_binary()?,
        };
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|source| ShipperError::Spawn { bin: bin.clone(), source })?;
        let log2 = log.try_clone().map_err(|source| ShipperError::Spawn { bin: bin.clone(), source })?;
        let e = &self.env;
        let mut cmd = Command::new(&bin);
        if let Some(launch) = &self.launch {
            cmd.args(&launch.args).env_clear().envs(&launch.env);
        } else {
            cmd.arg("run")
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("CLUSTER_NAME", &e.cluster)
                .env("NODE_NAME", &e.node)
                .env("AWS_ENDPOINT_URL", &e.endpoint)
                .env("AWS_REGION", "us-east-1")
                .env("AWS_ACCESS_KEY_ID", "harness")
                .env("AWS_SECRET_ACCESS_KEY", "harness")
                .env("KUBECONFIG", &e.kubeconfig)
                .env("SHIPPER_LOG_PATHS", &e.log_paths)
                .env("SHIPPER_STATE_DIR", &e.state_dir)
                .env("SHIPPER_LISTEN", format!("127.0.0.1:{}", e.port))
                .env("SHIPPER_LOG_FORMAT", "json")
                .env("RUST_LOG", std::env::var("HARNESS_SHIPPER_LOG").unwrap_or_else(|_| "info".into()))
                .envs(&e.extra);
        }
        cmd.env_remove("SHIPPER_CRASH_AT").stdin(Stdio::null()).stdout(log).stderr(log2);
        self.armed = self.crash_plan.pop_front();
        if let Some(point) = &self.armed {
            cmd.env("SHIPPER_CRASH_AT", point);
        }
        let child = cmd.spawn().map_err(|source| ShipperError::Spawn { bin, source })?;
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    /// Wait until `/healthz` answers (the process is up), at most `timeout`.
    pub async fn wait_healthy(&mut self, timeout: Duration) -> Result<(), ShipperError> {
        let url = format!("http://127.0.0.1:{}/healthz", self.env.port);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .map_err(|e| ShipperError::Unhealthy(e.to_string()))?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(ShipperError::Unhealthy(format!(
                    "exited with {status}; see {}",
                    self.log_path.display()
                )));
            }
            if let Ok(resp) = client.get(&url).send().await
                && resp.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ShipperError::Unhealthy(format!(
                    "no /healthz within {timeout:?}; see {}",
                    self.log_path.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Scrape `/metrics` into name{labels} → value.
    pub async fn metrics(&self) -> Result<BTreeMap<String, f64>, ShipperError> {
        let url = self.metrics_url();
        let err = |e: reqwest::Error| ShipperError::Scrape { url: url.clone(), reason: e.to_string() };
        let text = reqwest::get(&url).await.map_err(err)?.text().await.map_err(err)?;
        Ok(parse_prometheus(&text))
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Resident set size of the running process, KiB (from `/proc`).
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait up to `timeout` for the exit; returns the exit code.
    pub async fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        let pid = Pid::from_raw(i32::try_from(child.id()).ok()?);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The shipper's log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
}

impl Drop for ShipperProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Parse Prometheus text: `name{labels} value` lines (comments skipped).
pub fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_lines_with_labels_parse() {
        let m = parse_prometheus(
            "# HELP x y\n# TYPE x counter\nshipper_lines_read_total 12\nshipper_events_dropped_total{reason=\"too_old\"} 3\n",
        );
        assert_eq!(m["shipper_lines_read_total"], 12.0);
        assert_eq!(m["shipper_events_dropped_total{reason=\"too_old\"}"], 3.0);
        assert_eq!(m.len(), 2);
    }
}
