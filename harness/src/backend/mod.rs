//! CloudWatch Logs backends for the harness (`reference/backends.md`): moto server and
//! LocalStack run from cached venvs on a free loopback port, or any URL.
//!
//! A started server runs in its own process group and is killed with it on drop, so a
//! panicking test leaves no orphan emulator behind.

mod venv;

use std::fs::File;
use std::io;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::config::{BehaviorVersion, Credentials, Region};

use venv::VenvSpec;

/// moto, pinned (backends.md). The pins live in harness/images/pins/, shared with the
/// container images that harness/images/build.sh builds.
const MOTO: VenvSpec =
    VenvSpec { name: "moto", version: "5.2.5", requirements: include_str!("../../images/pins/moto.txt") };

/// LocalStack community runtime, the last version whose logs service loads on Python 3.11,
/// with the pins it needs there (backends.md); shared with the container image.
const LOCALSTACK: VenvSpec = VenvSpec {
    name: "localstack",
    version: "4.13.1",
    requirements: include_str!("../../images/pins/localstack.txt"),
};

/// How long a fresh server may take to answer its health check.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// Which backend to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendKind {
    /// `moto[server]==5.2.5` from a cached venv.
    Moto,
    /// LocalStack 4.13.1 (host mode) from a cached venv.
    LocalStack,
    /// An endpoint someone else runs (e.g. a container or the gateway).
    Url(String),
}

/// Why a backend could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Neither `$SHIPPER_HARNESS_CACHE` nor `$HOME` is set.
    #[error("no cache directory: set SHIPPER_HARNESS_CACHE or HOME")]
    NoCacheDir,
    /// A program could not be started at all (e.g. python3 is not installed).
    #[error("cannot run {program}: {source} (is python3 with the venv module installed?)")]
    Spawn {
        /// The program.
        program: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Creating the venv or installing packages failed.
    #[error("provisioning failed: {command} exited with {status}:\n{output}")]
    Provision {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The end of its output.
        output: String,
    },
    /// A file system operation failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What we tried to do.
        op: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The server exited or never became healthy.
    #[error("{name} on {endpoint} did not become healthy: {reason}\n{log}")]
    Unhealthy {
        /// Backend name.
        name: &'static str,
        /// Its endpoint.
        endpoint: String,
        /// What we saw.
        reason: String,
        /// The end of its log.
        log: String,
    },
    /// An HTTP call to the server's control API failed.
    #[error("{operation} on {endpoint} failed: {reason}")]
    Control {
        /// What we asked for.
        operation: &'static str,
        /// The endpoint.
        endpoint: String,
        /// What went wrong.
        reason: String,
    },
    /// The backend cannot do this (e.g. reset an external URL).
    #[error("{operation} is not supported by {kind:?}")]
    Unsupported {
        /// What was asked.
        operation: &'static str,
        /// The backend.
        kind: BackendKind,
    },
}

impl BackendError {
    fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        BackendError::Io { op, path: path.to_owned(), source }
    }
}

/// Entry point: `Backend::start(kind)`.
#[derive(Debug, Clone, Copy)]
pub struct Backend;

impl Backend {
    /// Provide a backend: install the emulator on first use, start it on a free port and
    /// wait until it is healthy. An [`BackendKind::Url`] is used as is.
    pub async fn start(kind: BackendKind) -> Result<BackendHandle, BackendError> {
        let spec = match &kind {
            BackendKind::Url(url) => {
                return Ok(BackendHandle {
                    endpoint: url.trim_end_matches('/').to_owned(),
                    kind,
                    server: None,
                });
            }
            BackendKind::Moto => MOTO,
            BackendKind::LocalStack => LOCALSTACK,
        };
        let blocking_kind = kind.clone();
        let (server, endpoint) = tokio::task::spawn_blocking(move || {
            let venv = venv::ensure(&spec)?;
            ServerProcess::spawn(&blocking_kind, &venv)
        })
        .await
        .map_err(|join| BackendError::Spawn {
            program: spec.name.to_owned(),
            source: io::Error::other(join.to_string()),
        })??;
        let mut handle = BackendHandle { endpoint, kind, server: Some(server) };
        handle.wait_healthy(spec.name).await?;
        Ok(handle)
    }
}

/// A running (or external) backend. Dropping it kills the server and its process group.
#[derive(Debug)]
pub struct BackendHandle {
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub endpoint: String,
    kind: BackendKind,
    server: Option<ServerProcess>,
}

impl BackendHandle {
    /// Which backend this is.
    pub fn kind(&self) -> &BackendKind {
        &self.kind
    }

    /// An SDK client for this backend (see [`cloudwatch_client`]).
    pub fn client(&self) -> Client {
        cloudwatch_client(&self.endpoint)
    }

    /// Wipe all state (moto's `POST /moto-api/reset`), for tests sharing one server.
    pub async fn reset(&self) -> Result<(), BackendError> {
        if self.kind != BackendKind::Moto {
            return Err(BackendError::Unsupported { operation: "reset", kind: self.kind.clone() });
        }
        let control = |reason: String| BackendError::Control {
            operation: "reset",
            endpoint: self.endpoint.clone(),
            reason,
        };
        let response = reqwest::Client::new()
            .post(format!("{}/moto-api/reset", self.endpoint))
            .send()
            .await
            .map_err(|e| control(e.to_string()))?;
        if !response.status().is_success() {
            return Err(control(format!("HTTP {}", response.status())));
        }
        Ok(())
    }

    async fn wait_healthy(&mut self, name: &'static str) -> Result<(), BackendError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| self.unhealthy(name, e.to_string()))?;
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            if let Some(status) = self.server.as_mut().and_then(ServerProcess::exited) {
                return Err(self.unhealthy(name, format!("exited with {status}")));
            }
            match self.health_once(&http).await {
                Ok(()) => return Ok(()),
                Err(reason) => last = reason,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(self.unhealthy(name, format!("timed out after {STARTUP_TIMEOUT:?}: {last}")))
    }

    /// moto: `GET /moto-api/` answers 200. LocalStack: `/_localstack/health` reports
    /// `"logs": "running"` (or `"available"` before the first request).
    async fn health_once(&self, http: &reqwest::Client) -> Result<(), String> {
        let path = match self.kind {
            BackendKind::LocalStack => "/_localstack/health",
            _ => "/moto-api/",
        };
        let response =
            http.get(format!("{}{path}", self.endpoint)).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        if self.kind != BackendKind::LocalStack {
            return Ok(());
        }
        let health: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
        match health["services"]["logs"].as_str() {
            Some("running" | "available") => Ok(()),
            other => Err(format!("logs service is {other:?}")),
        }
    }

    fn unhealthy(&self, name: &'static str, reason: String) -> BackendError {
        BackendError::Unhealthy {
            name,
            endpoint: self.endpoint.clone(),
            reason,
            log: self.server.as_ref().map(ServerProcess::log_tail).unwrap_or_default(),
        }
    }
}

/// An SDK client for `endpoint` with static test credentials and region `us-east-1`.
pub fn cloudwatch_client(endpoint: &str) -> Client {
    let config = aws_sdk_cloudwatchlogs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "harness-static"))
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(config)
}

/// An emulator process, leader of its own process group, with its state in a temp dir.
#[derive(Debug)]
struct ServerProcess {
    child: Child,
    state: tempfile::TempDir,
}

impl ServerProcess {
    fn spawn(kind: &BackendKind, venv: &Path) -> Result<(Self, String), BackendError> {
        let state = tempfile::Builder::new()
            .prefix("shipper-harness-backend-")
            .tempdir()
            .map_err(|source| BackendError::io("create", &std::env::temp_dir(), source))?;
        let port = free_port()?;
        let mut command = match kind {
            BackendKind::LocalStack => {
                let mut command = Command::new(venv::bin(venv, "python"));
                command
                    .args(["-m", "localstack.runtime.main"])
                    .env("GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
                    .env("SERVICES", "logs")
                    .env("EAGER_SERVICE_LOADING", "1")
                    .env("DNS_ADDRESS", "0")
                    .env("DISABLE_EVENTS", "1")
                    .env("SKIP_SSL_CERT_DOWNLOAD", "1")
                    .env("LOCALSTACK_TELEMETRY", "0")
                    .env("LOCALSTACK_VOLUME_DIR", state.path().join("volume"))
                    .env("FILESYSTEM_ROOT", state.path());
                command
            }
            _ => {
                let mut command = Command::new(venv::bin(venv, "moto_server"));
                command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
                command
            }
        };
        let log_path = state.path().join("server.log");
        let log = File::create(&log_path).map_err(|source| BackendError::io("create", &log_path, source))?;
        let log_err = log.try_clone().map_err(|source| BackendError::io("clone", &log_path, source))?;
        let program = format!("{:?}", command.get_program());
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .map_err(|source| BackendError::Spawn { program, source })?;
        Ok((ServerProcess { child, state }, format!("http://127.0.0.1:{port}")))
    }

    /// The exit status if the server already died.
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(error) => Some(format!("unknown state: {error}")),
        }
    }

    fn log_tail(&self) -> String {
        std::fs::read(self.state.path().join("server.log"))
            .map(|bytes| venv::tail(&bytes))
            .unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // The server forks workers (LocalStack does): kill the whole group, then reap.
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32)
            && pid != rustix::process::Pid::INIT
        {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port the kernel just handed out on loopback (free unless someone races us for it).
fn free_port() -> Result<u16, BackendError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|source| BackendError::io("bind", Path::new("127.0.0.1:0"), source))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|source| BackendError::io("bind", Path::new("127.0.0.1:0"), source))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The venv directory is named after `version`; the pins file must install that version.
    #[test]
    fn shared_pin_files_install_the_named_versions() {
        assert!(MOTO.requirement_lines().contains(&format!("moto[server]=={}", MOTO.version).as_str()));
        let localstack = LOCALSTACK.requirement_lines();
        assert!(localstack.contains(&format!("localstack-core[runtime]=={}", LOCALSTACK.version).as_str()));
        assert!(localstack.contains(&"pyopenssl==25.3.0"), "backends.md's Python 3.11 pins: {localstack:?}");
        assert!(localstack.iter().all(|l| !l.starts_with('#')));
    }
}
