//! One node in containers: a private docker network, the backend container on it, and the
//! host's address on it, where the harness binds the stand-in API and the fault gateway so
//! the shipper container reaches them (and graded gateway faults still apply).

use std::net::Ipv4Addr;

use crate::tiers::docker::cli::Network;
use crate::tiers::docker::{BackendContainer, ContainerError, Emulator, Images};

/// The container tier's shared pieces for one run. Drop order matters: the backend container
/// goes before the network it is attached to.
#[derive(Debug)]
pub struct ContainerTier {
    backend: BackendContainer,
    images: Images,
    network: Network,
    tag: String,
}

impl ContainerTier {
    /// Find the images, create network `shipper-harness-<tag>` and start the backend on it.
    pub async fn start(emulator: Emulator, tag: &str) -> Result<ContainerTier, ContainerError> {
        let images = Images::locate()?;
        let network = Network::create(&format!("shipper-harness-{tag}"))?;
        let backend = BackendContainer::start(
            emulator,
            emulator.image(&images),
            Some(&network.name),
            &format!("shipper-harness-{tag}-{}", emulator.name()),
        )
        .await?;
        Ok(ContainerTier { backend, images, network, tag: tag.to_owned() })
    }

    /// The host's address on the tier's network: bind what the shipper must reach here.
    pub fn host_address(&self) -> Ipv4Addr {
        self.network.gateway
    }

    /// The network's name.
    pub fn network(&self) -> &str {
        &self.network.name
    }

    /// The backend container.
    pub fn backend(&self) -> &BackendContainer {
        &self.backend
    }

    /// The images in use.
    pub fn images(&self) -> &Images {
        &self.images
    }

    /// A container name unique to this run.
    pub fn container_name(&self, role: &str) -> String {
        format!("shipper-harness-{}-{role}", self.tag)
    }
}
