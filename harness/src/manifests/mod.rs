//! The deployment manifests in `deploy/`, as typed Kubernetes objects: rendered with
//! `kubectl kustomize` (offline), parsed into k8s-openapi types, and the shipper's effective
//! settings read off the DaemonSet the way the pod would see them (args, env, the mounted
//! ConfigMap, the contract's defaults).
//!
//! Used by the offline manifest checks (`tests/manifests.rs`), by the test that runs the
//! DaemonSet's exact command and env on the local tier (`tests/daemonset_env.rs`), and by
//! whatever applies an overlay to a cluster.

mod objects;
mod render;
mod settings;
#[cfg(test)]
mod tests;

pub use objects::{Objects, parse_documents};
pub use render::{deploy_dir, kustomize, kustomize_with};
pub use settings::{ConfigFile, ShipperSettings, defaults};

use std::path::PathBuf;

/// Why manifests could not be rendered, parsed or read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// `kubectl` is not installed or could not be started.
    #[error(
        "cannot run `{kubectl} kustomize {dir}`: {source}. kubectl (with its built-in kustomize) \
         is needed to render deploy/; install it or point $KUBECTL at it"
    )]
    KubectlMissing {
        /// The command tried.
        kubectl: String,
        /// The kustomization directory.
        dir: PathBuf,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// `kubectl kustomize` ran and failed.
    #[error("`kubectl kustomize {dir}` failed ({status}): {stderr}")]
    KustomizeFailed {
        /// The kustomization directory.
        dir: PathBuf,
        /// Exit status.
        status: std::process::ExitStatus,
        /// What it said.
        stderr: String,
    },
    /// A YAML document is not what it claims to be.
    #[error("{source_name}, document {index} ({kind}): {reason}")]
    Document {
        /// File or rendering the document came from.
        source_name: String,
        /// 0-based index of the document.
        index: usize,
        /// Its `kind`, if any.
        kind: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The DaemonSet does not say what the shipper needs to know.
    #[error("shipper settings from the DaemonSet: {0}")]
    Settings(String),
}
