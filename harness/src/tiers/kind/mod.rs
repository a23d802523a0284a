//! The kind tier: a kind cluster from `kind-config/`, the shipper as the DaemonSet of
//! `deploy/overlays/kind-e2e`, each scenario pod a real pod running the writer image, the
//! backend in a container on the `kind` network behind the harness gateway.
//!
//! - [`driver`] (feature `e2e`): the tier's [`crate::tiers::Tier`] driver: pods and their
//!   incarnations, docker-level faults, node joins and restarts, the shipper pods' metrics;
//! - [`cluster`] (feature `e2e`): the `kind` and `kubectl` calls;
//! - [`pods`]: the scenario's namespaces and writer pods as objects (snapshot-tested offline);
//! - [`overlay`]: the run's kustomize overlay over kind-e2e (the run's env, the pods' files).

#[cfg(feature = "e2e")]
pub mod cluster;
#[cfg(feature = "e2e")]
pub mod driver;
pub mod overlay;
pub mod pods;

#[cfg(feature = "e2e")]
pub use cluster::{KindCluster, check_tools};
#[cfg(feature = "e2e")]
pub(crate) use driver::KindTier;
#[cfg(feature = "e2e")]
pub use driver::{kind_config, kind_view};
