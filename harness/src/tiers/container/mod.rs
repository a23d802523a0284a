//! The container tier (feature `e2e`): the shipper image on a simulated node, the backend in
//! a container started through testcontainers, faults injected with docker itself. Its
//! driver is the local tier's ([`crate::tiers::local`]) with the shipper and the docker-level
//! faults from here.
//!
//! - [`host`]: the container tier's side of the local driver: the shipper in its image,
//!   the docker-level faults;
//! - [`network`]: one node in containers: a private network, the backend, the host's address
//!   on that network for the stand-in API and the gateway;
//! - [`shipper`]: the shipper container, with the surface of the local tier's process.

pub mod host;
pub mod network;
pub mod shipper;

pub use host::{ContainerHost, HostError};
pub use network::ContainerTier;
pub use shipper::ShipperContainer;
