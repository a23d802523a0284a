//! `idle_connections`: a tenant's pod holding connections open to the shipper's `/metrics`
//! port, as anyone in the cluster can. The harness opens them, never sends a byte, and
//! probes `/healthz` at both ends of the window.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::report::Check;

/// How long `/healthz` may take to answer while the connections are held.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Open `count` connections to `addr` (after raising this process's open-file limit, so the
/// harness itself is not what runs out). Connections the shipper refuses or closes are
/// simply not held; how many were opened is in the returned list's length.
pub(super) async fn open(addr: SocketAddr, count: u32) -> Vec<TcpStream> {
    raise_open_file_limit();
    let mut held = Vec::with_capacity(count as usize);
    for _ in 0..count {
        match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => held.push(stream),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "idle connection refused");
            }
            Err(_) => tracing::debug!("idle connection timed out"),
        }
    }
    held
}

/// `GET /healthz` on a fresh connection, as kubelet's probe would: the check `name`.
pub(super) async fn probe(addr: SocketAddr, name: String, held: usize) -> Check {
    let client = reqwest::Client::builder().timeout(PROBE_TIMEOUT).build();
    let answer = match client {
        Ok(client) => client.get(format!("http://{addr}/healthz")).send().await,
        Err(e) => Err(e),
    };
    let (ok, detail) = match answer {
        Ok(response) if response.status().is_success() => {
            (true, format!("/healthz answered {} with {held} idle connections held", response.status()))
        }
        Ok(response) => {
            (false, format!("/healthz answered {} with {held} idle connections held", response.status()))
        }
        Err(e) => (
            false,
            format!(
                "/healthz did not answer within {PROBE_TIMEOUT:?} with {held} idle connections held: {e}"
            ),
        ),
    };
    Check { name, ok, detail }
}

fn raise_open_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let _ = setrlimit(Resource::Nofile, Rlimit { current: limit.maximum, maximum: limit.maximum });
    }
}
