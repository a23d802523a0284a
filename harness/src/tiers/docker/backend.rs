//! The CloudWatch Logs backend in a container, started through testcontainers: the same code
//! serves the container tier (its own network) and the kind tier (the `kind` network, so pods
//! reach it by name). Removed when dropped, also when a test panics.

use std::time::Duration;

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use super::{ContainerError, Images};

/// Which emulator image to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emulator {
    /// LocalStack 4.13.1 (logs service only), port 4566.
    LocalStack,
    /// moto server 5.2.5, port 5000.
    Moto,
}

impl Emulator {
    /// The port it listens on inside its container.
    pub fn port(self) -> u16 {
        match self {
            Emulator::LocalStack => 4566,
            Emulator::Moto => 5000,
        }
    }

    /// Its image among the locally built ones.
    pub fn image(self, images: &Images) -> &str {
        match self {
            Emulator::LocalStack => &images.localstack,
            Emulator::Moto => &images.moto,
        }
    }

    /// Short name (`localstack`, `moto`).
    pub fn name(self) -> &'static str {
        match self {
            Emulator::LocalStack => "localstack",
            Emulator::Moto => "moto",
        }
    }
}

/// How long the emulator may take to pass its image's HEALTHCHECK (LocalStack: a few
/// seconds; generous for loaded CI machines).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// A running emulator container.
#[derive(Debug)]
pub struct BackendContainer {
    container: ContainerAsync<GenericImage>,
    emulator: Emulator,
    name: String,
    host_port: u16,
}

impl BackendContainer {
    /// Start `image` (an [`Emulator`]) as container `name`, attached to `network` when given,
    /// and wait until its HEALTHCHECK passes.
    pub async fn start(
        emulator: Emulator,
        image: &str,
        network: Option<&str>,
        name: &str,
    ) -> Result<BackendContainer, ContainerError> {
        let (repository, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
        let failed = |reason: String| ContainerError::Testcontainers { image: image.to_owned(), reason };
        let mut request = GenericImage::new(repository, tag)
            .with_exposed_port(emulator.port().tcp())
            .with_wait_for(WaitFor::healthcheck())
            .with_container_name(name)
            .with_label("shipper-harness", "backend")
            .with_startup_timeout(STARTUP_TIMEOUT);
        if let Some(network) = network {
            request = request.with_network(network);
        }
        let container = request.start().await.map_err(|e| failed(e.to_string()))?;
        let host_port =
            container.get_host_port_ipv4(emulator.port()).await.map_err(|e| failed(e.to_string()))?;
        Ok(BackendContainer { container, emulator, name: name.to_owned(), host_port })
    }

    /// Which emulator runs here.
    pub fn emulator(&self) -> Emulator {
        self.emulator
    }

    /// The container id (for `docker` commands).
    pub fn id(&self) -> &str {
        self.container.id()
    }

    /// Endpoint for the host (the audit, the harness gateway): the published port.
    pub fn host_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.host_port)
    }

    /// Endpoint for containers on the same network (its name resolves there).
    pub fn network_endpoint(&self) -> String {
        format!("http://{}:{}", self.name, self.emulator.port())
    }

    /// Freeze every process of the emulator (`docker pause`): connections stay open and
    /// requests hang unanswered, like a black-holed route.
    pub async fn pause(&self) -> Result<(), ContainerError> {
        self.container.pause().await.map_err(|e| ContainerError::Testcontainers {
            image: self.name.clone(),
            reason: format!("pause: {e}"),
        })
    }

    /// Resume after [`BackendContainer::pause`].
    pub async fn unpause(&self) -> Result<(), ContainerError> {
        self.container.unpause().await.map_err(|e| ContainerError::Testcontainers {
            image: self.name.clone(),
            reason: format!("unpause: {e}"),
        })
    }
}
