//! Where a scenario's node and shipper live: the **local** tier (a shipper process on the
//! host) or the **container** tier (feature `e2e`: the shipper image, the backend in a
//! container, docker-level faults). The driver is the same for both; this module is the
//! difference between them.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::scenario::FaultKind;
use crate::shipper_proc::{ShipperEnv, ShipperError, ShipperLaunch, ShipperProcess};
use crate::tiers::ClusterChoice;

/// Docker-level faults and the gateway fault the local tier uses for each, so every scenario
/// file runs on every tier: a paused backend answers nothing (blackhole); a disconnected
/// container gets "network unreachable" at once (refuse).
pub fn local_equivalent(kind: FaultKind) -> FaultKind {
    match kind {
        FaultKind::BackendPause => FaultKind::Blackhole,
        FaultKind::NetworkDisconnect => FaultKind::Refuse,
        other => other,
    }
}

/// Where the shipper runs: a host process, or the container tier's host.
#[derive(Debug)]
pub enum ClusterEnv {
    /// Nothing beyond the host processes.
    Local,
    /// The container tier ([`crate::tiers::container::host`]).
    #[cfg(feature = "e2e")]
    Container(Box<crate::tiers::container::ContainerHost>),
}

/// Why the tier could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The container tier is not compiled in.
    #[error(
        "the container tier needs the `e2e` feature: cargo run -p harness --features e2e -- run --cluster container ..."
    )]
    NotCompiled,
    /// The kind tier does not use this environment (its own driver runs it).
    #[error("the kind tier runs through its own driver (tiers::kind), not the local/container environment")]
    NotHere,
    /// The container tier runs LocalStack or moto in a container, not an external URL.
    #[error("the container tier runs its own backend container: use --backend moto or localstack, not {0}")]
    UnsupportedBackend(String),
    /// Docker or the images failed.
    #[cfg(feature = "e2e")]
    #[error(transparent)]
    Container(#[from] crate::tiers::docker::ContainerError),
    /// A docker-level fault could not be applied or ended.
    #[cfg(feature = "e2e")]
    #[error(transparent)]
    Fault(#[from] crate::tiers::container::HostError),
}

impl ClusterEnv {
    /// Set up the tier. `localstack` picks the emulator for the container tier; `tag`
    /// names its docker resources.
    pub async fn start(
        choice: ClusterChoice,
        localstack: Option<bool>,
        tag: &str,
    ) -> Result<Self, ClusterError> {
        match choice {
            ClusterChoice::Local => Ok(ClusterEnv::Local),
            ClusterChoice::Kind => Err(ClusterError::NotHere),
            #[cfg(feature = "e2e")]
            ClusterChoice::Container => {
                use crate::tiers::docker::Emulator;
                let emulator = match localstack {
                    Some(true) => Emulator::LocalStack,
                    Some(false) => Emulator::Moto,
                    None => return Err(ClusterError::UnsupportedBackend("a URL".into())),
                };
                let host = crate::tiers::container::ContainerHost::start(emulator, tag).await?;
                Ok(ClusterEnv::Container(Box::new(host)))
            }
            #[cfg(not(feature = "e2e"))]
            ClusterChoice::Container => {
                let _ = (localstack, tag);
                Err(ClusterError::NotCompiled)
            }
        }
    }

    /// The tier's name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            ClusterEnv::Local => "local",
            #[cfg(feature = "e2e")]
            ClusterEnv::Container(_) => "container",
        }
    }

    /// Address the stand-in API and the gateway listen on: loopback, or the host's address
    /// on the container network.
    pub fn listen_ip(&self) -> IpAddr {
        match self {
            ClusterEnv::Local => IpAddr::V4(Ipv4Addr::LOCALHOST),
            #[cfg(feature = "e2e")]
            ClusterEnv::Container(host) => host.listen_ip(),
        }
    }

    /// The backend endpoint reachable from the host, when the tier runs its own backend.
    pub fn backend_endpoint(&self) -> Option<String> {
        match self {
            ClusterEnv::Local => None,
            #[cfg(feature = "e2e")]
            ClusterEnv::Container(host) => Some(host.backend_endpoint()),
        }
    }

    /// Start the shipper: a process, or the image in a container with `node_root` mounted.
    /// `launch` (the DaemonSet's own command and env) and `crash_plan` (crash points, one per
    /// start) need the local tier.
    pub fn spawn_shipper(
        &self,
        env: ShipperEnv,
        node_root: &Path,
        log_path: PathBuf,
        launch: Option<ShipperLaunch>,
        crash_plan: Vec<String>,
    ) -> Result<Shipper, ShipperError> {
        match self {
            ClusterEnv::Local => {
                let _ = node_root;
                ShipperProcess::spawn_with(env, launch, log_path, crash_plan)
                    .map(|p| Shipper::Process(Box::new(p)))
            }
            #[cfg(feature = "e2e")]
            ClusterEnv::Container(_) if launch.is_some() || !crash_plan.is_empty() => {
                Err(ShipperError::Container(
                    "launch hooks and crash points run on the local tier only (the container's \
                     command and env are the DaemonSet's)"
                        .into(),
                ))
            }
            #[cfg(feature = "e2e")]
            ClusterEnv::Container(host) => {
                host.spawn_shipper(&env, node_root, log_path).map(Shipper::Container)
            }
        }
    }

    /// Start a docker-level fault. Returns `Some(gateway fault)` when this tier has no docker
    /// and the fault is to be injected at the gateway instead (see [`local_equivalent`]).
    pub async fn start_fault(
        &self,
        kind: FaultKind,
        shipper: &mut Shipper,
    ) -> Result<Option<FaultKind>, ClusterError> {
        match self {
            ClusterEnv::Local => {
                let _ = shipper;
                Ok(Some(local_equivalent(kind)))
            }
            #[cfg(feature = "e2e")]
            ClusterEnv::Container(host) => Ok(host.start_fault(kind, shipper.container()).await?),
        }
    }

    /// End every active docker-level fault.
    pub async fn end_faults(&self, shipper: &mut Shipper) -> Result<(), ClusterError> {
        match self {
            ClusterEnv::Local => {
                let _ = shipper;
                Ok(())
            }
            #[cfg(feature = "e2e")]
            ClusterEnv::Container(host) => Ok(host.end_faults(shipper.container()).await?),
        }
    }
}

/// The shipper under test, wherever it runs; the same surface for both tiers.
#[derive(Debug)]
pub enum Shipper {
    /// A host process (boxed: it carries its launch settings and crash plan).
    Process(Box<ShipperProcess>),
    /// A container.
    #[cfg(feature = "e2e")]
    Container(crate::tiers::container::ShipperContainer),
}

macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            Shipper::Process($s) => $e,
            #[cfg(feature = "e2e")]
            Shipper::Container($s) => $e,
        }
    };
}

impl Shipper {
    /// The shipper container, on the container tier.
    #[cfg(feature = "e2e")]
    fn container(&mut self) -> Option<&mut crate::tiers::container::ShipperContainer> {
        match self {
            Shipper::Container(c) => Some(c),
            Shipper::Process(_) => None,
        }
    }

    /// The crash point armed in the current start (local tier only).
    pub fn armed_crash_point(&self) -> Option<&str> {
        match self {
            Shipper::Process(p) => p.armed_crash_point(),
            #[cfg(feature = "e2e")]
            Shipper::Container(_) => None,
        }
    }

    /// If the shipper stopped by itself (not killed or terminated by the harness), how.
    pub fn reap_exit(&mut self) -> Option<std::process::ExitStatus> {
        each!(self, s => s.reap_exit())
    }

    /// Start again (after a kill or stop) with the same state directory.
    pub fn start(&mut self) -> Result<(), ShipperError> {
        each!(self, s => s.start())
    }

    /// Wait until `/healthz` answers, at most `timeout`.
    pub async fn wait_healthy(&mut self, timeout: Duration) -> Result<(), ShipperError> {
        each!(self, s => s.wait_healthy(timeout).await)
    }

    /// Scrape `/metrics`.
    pub async fn metrics(&self) -> Result<std::collections::BTreeMap<String, f64>, ShipperError> {
        each!(self, s => s.metrics().await)
    }

    /// The address of its `/metrics`, `/healthz`, `/readyz` listener, while known.
    pub fn listener(&self) -> Option<std::net::SocketAddr> {
        let url = match self {
            Shipper::Process(p) => Some(p.metrics_url()),
            #[cfg(feature = "e2e")]
            Shipper::Container(c) => c.metrics_url(),
        }?;
        let url = reqwest::Url::parse(&url).ok()?;
        let ip: IpAddr = url.host_str()?.parse().ok()?;
        Some(std::net::SocketAddr::new(ip, url.port()?))
    }

    /// True while it runs.
    pub fn is_running(&mut self) -> bool {
        each!(self, s => s.is_running())
    }

    /// Resident set size, KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        each!(self, s => s.rss_kib())
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        each!(self, s => s.kill())
    }

    /// SIGTERM, wait up to `timeout`; the exit code.
    pub async fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        each!(self, s => s.terminate(timeout).await)
    }

    /// Starts so far.
    pub fn starts(&self) -> u32 {
        each!(self, s => s.starts)
    }

    /// Its log file.
    pub fn log_path(&self) -> &Path {
        each!(self, s => s.log_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_faults_have_gateway_equivalents_and_others_pass_through() {
        assert_eq!(local_equivalent(FaultKind::BackendPause), FaultKind::Blackhole);
        assert_eq!(local_equivalent(FaultKind::NetworkDisconnect), FaultKind::Refuse);
        assert_eq!(local_equivalent(FaultKind::Throttle), FaultKind::Throttle);
    }
}
