//! A Docker API version shim, so testcontainers works with older daemons.
//!
//! testcontainers 0.28 talks to Docker through bollard 0.21, which puts API version 1.53 in
//! every request path and does not negotiate; Debian 12's `docker.io` (20.10) answers only up
//! to 1.41 and rejects newer paths ("client version 1.53 is too new"). GitHub's runners and
//! current Docker Desktop speak 1.53, so there nothing changes. Where the daemon is older, the
//! harness serves the daemon's socket through this proxy, which rewrites `/v1.53/...` to the
//! daemon's version; the calls the tier makes (create, start, inspect, logs, pause, remove)
//! have the same shape in both versions.
//!
//! testcontainers reads the socket from `DOCKER_HOST` when its client is first used, and a
//! process cannot safely change its own environment (`set_var` is `unsafe`, and forbidden
//! here), so the caller re-runs itself as a child with `DOCKER_HOST` set:
//! [`rerun_through_shim_if_needed`].

use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};

use super::{ContainerError, cli as docker};

/// The API version testcontainers 0.28 (bollard 0.21) sends.
pub const TESTCONTAINERS_API: (u32, u32) = (1, 53);

/// The daemon's socket when `DOCKER_HOST` is not set.
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// A running shim; stops when dropped.
#[derive(Debug)]
pub struct ApiShim {
    socket: PathBuf,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl ApiShim {
    /// Listen on a fresh socket and forward to `daemon`, rewriting API versions to `version`.
    pub fn start(daemon: &Path, version: (u32, u32)) -> Result<ApiShim, ContainerError> {
        let io = |op: &str| {
            let op = op.to_owned();
            move |source| ContainerError::Io { op, source }
        };
        let dir =
            tempfile::Builder::new().prefix("shipper-harness-docker-").tempdir().map_err(io("temp dir"))?;
        let socket = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket).map_err(io("bind the docker API shim"))?;
        let daemon = daemon.to_owned();
        let version = format!("{}.{}", version.0, version.1);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let daemon = daemon.clone();
                let version = version.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        forward(request, daemon.clone(), version.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(ApiShim { socket, task, _dir: dir })
    }

    /// The `DOCKER_HOST` value that reaches the daemon through the shim.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

impl Drop for ApiShim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn forward(
    mut request: Request<Incoming>,
    daemon: PathBuf,
    version: String,
) -> Result<Response<http_body_util::combinators::BoxBody<bytes::Bytes, hyper::Error>>, BoxError> {
    let rewritten =
        rewrite_version(request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"), &version);
    *request.uri_mut() = rewritten.parse()?;
    let stream = UnixStream::connect(&daemon).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    Ok(response.map(|body| body.boxed()))
}

/// `/v1.53/containers/json?all=1` → `/v1.41/containers/json?all=1`; paths without a
/// version prefix are unchanged.
pub fn rewrite_version(path_and_query: &str, version: &str) -> String {
    if let Some(rest) = path_and_query.strip_prefix("/v")
        && let Some((requested, tail)) = rest.split_once('/')
        && docker::parse_api_version(requested).is_some()
    {
        return format!("/v{version}/{tail}");
    }
    path_and_query.to_owned()
}

/// Environment variable marking the child run (so it never re-runs itself again).
const CHILD_MARKER: &str = "SHIPPER_HARNESS_DOCKER_SHIMMED";

/// When testcontainers cannot talk to this Docker daemon directly (its API is older than
/// [`TESTCONTAINERS_API`] and `DOCKER_HOST` is unset), start a shim and run this executable
/// again with `args` and `DOCKER_HOST` pointing at the shim; return the child's exit status.
/// `None` means no re-run is needed: go on in this process.
pub async fn rerun_through_shim_if_needed(args: &[String]) -> Result<Option<ExitStatus>, ContainerError> {
    if std::env::var_os("DOCKER_HOST").is_some() || std::env::var_os(CHILD_MARKER).is_some() {
        return Ok(None);
    }
    let version = docker::server_api_version()?;
    if version >= TESTCONTAINERS_API {
        return Ok(None);
    }
    let shim = ApiShim::start(Path::new(DEFAULT_SOCKET), version)?;
    let exe =
        std::env::current_exe().map_err(|source| ContainerError::Io { op: "current_exe".into(), source })?;
    let status = tokio::process::Command::new(&exe)
        .args(args)
        .env("DOCKER_HOST", shim.docker_host())
        .env(CHILD_MARKER, "1")
        .status()
        .await
        .map_err(|source| ContainerError::Io { op: format!("re-running {}", exe.display()), source })?;
    drop(shim);
    Ok(Some(status))
}

/// For a test that starts containers through testcontainers: re-run the test named `test`
/// (alone, output shown) through the shim when the daemon needs it. True when it ran there,
/// and passed (a failure there panics here); false: go on in this process.
pub async fn rerun_test_through_shim(test: &str) -> bool {
    let args = [test.to_owned(), "--exact".into(), "--nocapture".into(), "--test-threads=1".into()];
    match rerun_through_shim_if_needed(&args).await {
        Ok(None) => false,
        Ok(Some(status)) => {
            assert!(status.success(), "{test} failed in the re-run through the Docker API shim ({status})");
            true
        }
        Err(e) => panic!("docker API shim: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_paths_are_rewritten_and_others_kept() {
        assert_eq!(rewrite_version("/v1.53/containers/json?all=1", "1.41"), "/v1.41/containers/json?all=1");
        assert_eq!(rewrite_version("/v1.53/_ping", "1.41"), "/v1.41/_ping");
        assert_eq!(rewrite_version("/_ping", "1.41"), "/_ping");
        assert_eq!(rewrite_version("/version", "1.41"), "/version");
        assert_eq!(rewrite_version("/volumes/v1.2/x", "1.41"), "/volumes/v1.2/x");
    }
}
