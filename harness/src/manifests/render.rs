//! Rendering a kustomization with `kubectl kustomize`, which needs no cluster.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::ManifestError;

/// The repository's `deploy/` directory.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Render `dir` (a kustomization) to multi-document YAML with `$KUBECTL` (default `kubectl`).
pub fn kustomize(dir: &Path) -> Result<String, ManifestError> {
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned());
    kustomize_with(&kubectl, dir)
}

/// Render `dir` with the given kubectl command.
pub fn kustomize_with(kubectl: &str, dir: &Path) -> Result<String, ManifestError> {
    let out = Command::new(kubectl).arg("kustomize").arg(dir).output().map_err(|source| {
        ManifestError::KubectlMissing { kubectl: kubectl.to_owned(), dir: dir.to_owned(), source }
    })?;
    if !out.status.success() {
        return Err(ManifestError::KustomizeFailed {
            dir: dir.to_owned(),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    String::from_utf8(out.stdout).map_err(|e| ManifestError::Document {
        source_name: dir.display().to_string(),
        index: 0,
        kind: "-".into(),
        reason: format!("output is not UTF-8: {e}"),
    })
}
