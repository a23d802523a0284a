//! The tags of the locally built images, as `harness/images/build.sh` records them in
//! `$SHIPPER_HARNESS_CACHE/images.env` (default `~/.cache/shipper-harness`). Each variable
//! may also be set in the environment, which wins (e.g. a CI job that built elsewhere).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{ContainerError, cli as docker};

/// The tier's images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// LocalStack, `shipper-harness/localstack:<ver>-<key>`.
    pub localstack: String,
    /// moto, `shipper-harness/moto:<ver>-<key>`.
    pub moto: String,
    /// The shipper, built from `deploy/Dockerfile`.
    pub shipper: String,
    /// The kind tier's writer (`harness write`), `shipper-harness/writer:<key>`.
    pub writer: String,
}

const VARS: [&str; 4] = [
    "SHIPPER_HARNESS_LOCALSTACK_IMAGE",
    "SHIPPER_HARNESS_MOTO_IMAGE",
    "SHIPPER_HARNESS_SHIPPER_IMAGE",
    "SHIPPER_HARNESS_WRITER_IMAGE",
];

impl Images {
    /// The manifest file `build.sh` writes.
    pub fn manifest_path() -> Result<PathBuf, ContainerError> {
        if let Some(dir) = std::env::var_os("SHIPPER_HARNESS_CACHE").filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(dir).join("images.env"));
        }
        std::env::var_os("HOME")
            .filter(|home| !home.is_empty())
            .map(|home| PathBuf::from(home).join(".cache/shipper-harness/images.env"))
            .ok_or_else(|| ContainerError::Images("neither SHIPPER_HARNESS_CACHE nor HOME is set".into()))
    }

    /// Read the tags (environment first, then the manifest) and check that every image exists
    /// in the local Docker daemon. The error says what is missing and how to build it.
    pub fn locate() -> Result<Images, ContainerError> {
        let path = Self::manifest_path()?;
        let file = std::fs::read_to_string(&path).unwrap_or_default();
        let env: BTreeMap<String, String> =
            VARS.iter().filter_map(|v| Some((v.to_string(), std::env::var(v).ok()?))).collect();
        let images = Self::from_sources(&env, &file).map_err(|missing| {
            ContainerError::Images(format!("{missing} is not set and not in {}", path.display()))
        })?;
        docker::check_available()?;
        for image in [&images.localstack, &images.moto, &images.shipper, &images.writer] {
            if !docker::image_exists(image)? {
                return Err(ContainerError::Images(format!(
                    "image {image} (named in {}) is not in the local Docker daemon",
                    path.display()
                )));
            }
        }
        Ok(images)
    }

    /// Pure part of [`Images::locate`]: `env` wins over the manifest's `KEY=value` lines.
    /// Returns the name of the first variable found nowhere.
    pub fn from_sources(env: &BTreeMap<String, String>, manifest: &str) -> Result<Images, String> {
        let file: BTreeMap<&str, &str> = manifest
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let get = |var: &str| {
            env.get(var)
                .map(String::as_str)
                .or_else(|| file.get(var).copied())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| var.to_owned())
        };
        Ok(Images {
            localstack: get(VARS[0])?,
            moto: get(VARS[1])?,
            shipper: get(VARS[2])?,
            writer: get(VARS[3])?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "# written by build.sh\nSHIPPER_HARNESS_BASE_IMAGE=shipper-harness/base:k\n\
        SHIPPER_HARNESS_LOCALSTACK_IMAGE=shipper-harness/localstack:4.13.1-a\n\
        SHIPPER_HARNESS_MOTO_IMAGE=shipper-harness/moto:5.2.5-b\n\
        SHIPPER_HARNESS_SHIPPER_IMAGE=shipper-harness/shipper:c\n\
        SHIPPER_HARNESS_WRITER_IMAGE=shipper-harness/writer:d\n";

    #[test]
    fn manifest_lines_name_the_images() {
        let images = Images::from_sources(&BTreeMap::new(), MANIFEST).expect("complete");
        assert_eq!(images.localstack, "shipper-harness/localstack:4.13.1-a");
        assert_eq!(images.moto, "shipper-harness/moto:5.2.5-b");
        assert_eq!(images.shipper, "shipper-harness/shipper:c");
        assert_eq!(images.writer, "shipper-harness/writer:d");
    }

    #[test]
    fn environment_wins_over_the_manifest() {
        let env = BTreeMap::from([("SHIPPER_HARNESS_SHIPPER_IMAGE".to_owned(), "mine:1".to_owned())]);
        let images = Images::from_sources(&env, MANIFEST).expect("complete");
        assert_eq!(images.shipper, "mine:1");
        assert_eq!(images.moto, "shipper-harness/moto:5.2.5-b");
    }

    #[test]
    fn an_empty_or_missing_tag_is_named() {
        let partial = MANIFEST.replace(
            "SHIPPER_HARNESS_MOTO_IMAGE=shipper-harness/moto:5.2.5-b",
            "SHIPPER_HARNESS_MOTO_IMAGE=",
        );
        assert_eq!(
            Images::from_sources(&BTreeMap::new(), &partial),
            Err("SHIPPER_HARNESS_MOTO_IMAGE".into())
        );
        assert_eq!(
            Images::from_sources(&BTreeMap::new(), ""),
            Err("SHIPPER_HARNESS_LOCALSTACK_IMAGE".into())
        );
    }
}
