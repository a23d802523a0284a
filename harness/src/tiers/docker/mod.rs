//! The docker plumbing the container-based tiers share (feature `e2e`): the container tier
//! ([`crate::tiers::container`]) and the kind tier ([`crate::tiers::kind`]).
//!
//! - [`images`]: the image tags `harness/images/build.sh` built (cached by content key);
//! - [`cli`]: the few `docker` CLI calls the tiers need (networks, pause, kill, logs);
//! - [`api_shim`]: lets testcontainers (Docker API 1.53) talk to older daemons;
//! - [`backend`]: LocalStack or moto in a container, reachable from the host and from other
//!   containers on a given network (the kind tier passes the `kind` network).

pub mod api_shim;
pub mod backend;
pub mod cli;
pub mod images;

pub use backend::{BackendContainer, Emulator};
pub use images::Images;

/// Failures of the container-based tiers.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// A `docker` command failed.
    #[error("`docker {args}` failed: {reason}")]
    Docker {
        /// Its arguments.
        args: String,
        /// Exit status and stderr, or why it could not run.
        reason: String,
    },
    /// Another CLI (`kind`, `kubectl`) failed.
    #[error("`{command}` failed: {reason}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and stderr, or why it could not run.
        reason: String,
    },
    /// The images are not built (or Docker is missing).
    #[error("{0}\nBuild the images first: harness/images/build.sh (needs root, docker, debootstrap)")]
    Images(String),
    /// testcontainers could not start or query a container.
    #[error("testcontainers: starting {image}: {reason}")]
    Testcontainers {
        /// The image.
        image: String,
        /// Why.
        reason: String,
    },
    /// A container did not become healthy in time.
    #[error("{what} not healthy: {reason}")]
    Unhealthy {
        /// Which container.
        what: String,
        /// What we saw (and the end of its log).
        reason: String,
    },
    /// A local I/O operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What we tried.
        op: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}
