//! The container tier (feature `e2e`): the shipper image on a simulated node, the backend in
//! a container started through testcontainers, faults injected with docker itself. Its
//! driver is the local tier's ([`crate::tiers::local`]) with the shipper and the docker-level
//! faults from here.
//!
//! - [`network`]: one node in containers: a private network, the backend, the host's address
//!   on that network for the stand-in API and the gateway;
//! - [`shipper`]: the shipper container, with the surface of the local tier's process.

pub mod network;
pub mod shipper;

pub use network::ContainerTier;
pub use shipper::ShipperContainer;
