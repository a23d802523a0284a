//! The container tier's side of the local driver ([`crate::tiers::local`]): where its
//! shipper runs (the image, in a container on the run's network, the simulated node's
//! directory mounted) and what its docker-level faults do (`backend_pause`: the backend
//! container paused; `network_disconnect`: the shipper container off the network).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use super::{ContainerTier, ShipperContainer};
use crate::scenario::FaultKind;
use crate::shipper_proc::{ShipperEnv, ShipperError};
use crate::tiers::docker::{ContainerError, Emulator};

/// The container tier's network, backend container and active docker-level faults.
#[derive(Debug)]
pub struct ContainerHost {
    tier: ContainerTier,
    /// Docker-level faults in force (ended together, like gateway faults).
    active: Mutex<Vec<FaultKind>>,
}

impl ContainerHost {
    /// Find the images, create the run's network (named by `tag`) and start `emulator` on it.
    pub async fn start(emulator: Emulator, tag: &str) -> Result<ContainerHost, ContainerError> {
        Ok(ContainerHost { tier: ContainerTier::start(emulator, tag).await?, active: Mutex::new(Vec::new()) })
    }

    /// The host's address on the run's network: the stand-in API and the gateway listen there.
    pub fn listen_ip(&self) -> IpAddr {
        IpAddr::V4(self.tier.host_address())
    }

    /// The backend container's endpoint, from the host.
    pub fn backend_endpoint(&self) -> String {
        self.tier.backend().host_endpoint()
    }

    /// The shipper image in a container with the contract's `env`, `node_root` mounted.
    pub fn spawn_shipper(
        &self,
        env: &ShipperEnv,
        node_root: &Path,
        log_path: PathBuf,
    ) -> Result<ShipperContainer, ShipperError> {
        ShipperContainer::spawn(
            &self.tier.images().shipper,
            &self.tier.container_name("shipper"),
            self.tier.network(),
            env,
            node_root,
            log_path,
        )
    }

    /// Apply a docker-level fault; `Some(kind)`: not one of this tier's, inject it at the
    /// gateway instead.
    pub async fn start_fault(
        &self,
        kind: FaultKind,
        shipper: Option<&mut ShipperContainer>,
    ) -> Result<Option<FaultKind>, HostError> {
        match (kind, shipper) {
            (FaultKind::BackendPause, _) => self.tier.backend().pause().await?,
            (FaultKind::NetworkDisconnect, Some(shipper)) => shipper.disconnect()?,
            (other, _) => return Ok(Some(other)),
        }
        self.active.lock().unwrap_or_else(PoisonError::into_inner).push(kind);
        Ok(None)
    }

    /// End every docker-level fault in force.
    pub async fn end_faults(&self, mut shipper: Option<&mut ShipperContainer>) -> Result<(), HostError> {
        let ended: Vec<FaultKind> =
            std::mem::take(&mut *self.active.lock().unwrap_or_else(PoisonError::into_inner));
        for kind in ended {
            match (kind, shipper.as_deref_mut()) {
                (FaultKind::BackendPause, _) => self.tier.backend().unpause().await?,
                (FaultKind::NetworkDisconnect, Some(shipper)) => shipper.connect()?,
                _ => {}
            }
        }
        Ok(())
    }
}

/// A docker-level fault could not be applied or ended.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// Docker failed.
    #[error(transparent)]
    Docker(#[from] ContainerError),
    /// The shipper container could not be disconnected or reconnected.
    #[error(transparent)]
    Shipper(#[from] ShipperError),
}
