//! The shipper's settings as a DaemonSet pod would get them: the container's args and env, the
//! config file it names (read from the ConfigMap mounted at that path), and the contract's
//! defaults (DESIGN §3) for what none of them sets. Precedence as the contract says: env wins
//! over the file. Flags other than `run --config FILE` are refused rather than guessed at.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};

use super::{ManifestError, Objects};

/// The contract's defaults (DESIGN §3), restated here: the harness never imports the shipper.
pub mod defaults {
    /// `SHIPPER_LISTEN`
    pub const LISTEN: &str = "0.0.0.0:2021";
    /// `SHIPPER_SHUTDOWN_GRACE`
    pub const SHUTDOWN_GRACE: &str = "10s";
    /// `SHIPPER_LOG_PATHS`
    pub const LOG_PATHS: &str = "/var/log/containers/*.log";
    /// `SHIPPER_STATE_DIR`
    pub const STATE_DIR: &str = "/var/lib/shipper";
}

/// The config file a container is started with.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// Its path inside the container (the `--config` argument).
    pub path: String,
    /// Its text, from the ConfigMap key mounted at that path.
    pub text: String,
    /// Its contents.
    pub table: toml::Table,
}

/// The shipper container of a rendered deployment and what it is configured with.
#[derive(Debug, Clone)]
pub struct ShipperSettings {
    /// The pod spec of the DaemonSet's template.
    pub pod: PodSpec,
    /// The container named `shipper`.
    pub container: Container,
    /// The config file given by `--config`, if any.
    pub config: Option<ConfigFile>,
}

impl ShipperSettings {
    /// Read the settings off the single DaemonSet of `objects`.
    pub fn of(objects: &Objects) -> Result<Self, ManifestError> {
        let bad = |m: String| ManifestError::Settings(m);
        let ds = objects.daemon_set()?;
        let namespace = ds.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let pod = ds
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.clone())
            .ok_or_else(|| bad("the DaemonSet has no pod template spec".into()))?;
        let container = pod
            .containers
            .iter()
            .find(|c| c.name == "shipper")
            .cloned()
            .ok_or_else(|| bad("no container named `shipper`".into()))?;
        let config_path = config_arg(container.args.as_deref().unwrap_or_default())?;
        let config = match config_path {
            None => None,
            Some(path) => Some(read_config(objects, &namespace, &pod, &container, &path)?),
        };
        Ok(ShipperSettings { pod, container, config })
    }

    /// The container's env entry `name`.
    pub fn env(&self, name: &str) -> Option<&EnvVar> {
        self.container.env.as_deref().unwrap_or_default().iter().find(|e| e.name == name)
    }

    /// A setting: the env's literal value wins, then the config file's key.
    pub fn setting(&self, env_name: &str, file_key: &str) -> Option<String> {
        if let Some(value) = self.env(env_name).and_then(|e| e.value.clone()) {
            return Some(value);
        }
        let value = self.config.as_ref()?.table.get(file_key)?;
        match value {
            toml::Value::String(s) => Some(s.clone()),
            toml::Value::Array(items) => Some(
                items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned).unwrap_or_else(|| i.to_string()))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            other => Some(other.to_string()),
        }
    }

    /// The address `/metrics`, `/healthz` and `/readyz` are served on.
    pub fn listen(&self) -> Result<SocketAddr, ManifestError> {
        let raw = self.setting("SHIPPER_LISTEN", "listen").unwrap_or_else(|| defaults::LISTEN.into());
        raw.trim().parse().map_err(|e| ManifestError::Settings(format!("listen {raw:?}: {e}")))
    }

    /// How long SIGTERM drains before the shipper exits.
    pub fn shutdown_grace(&self) -> Result<Duration, ManifestError> {
        let raw = self
            .setting("SHIPPER_SHUTDOWN_GRACE", "shutdown_grace")
            .unwrap_or_else(|| defaults::SHUTDOWN_GRACE.into());
        humantime::parse_duration(raw.trim())
            .map_err(|e| ManifestError::Settings(format!("shutdown_grace {raw:?}: {e}")))
    }

    /// The globs of container log files (paths inside the container).
    pub fn log_paths(&self) -> Vec<String> {
        self.setting("SHIPPER_LOG_PATHS", "log_paths")
            .unwrap_or_else(|| defaults::LOG_PATHS.into())
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect()
    }

    /// The state directory (path inside the container).
    pub fn state_dir(&self) -> String {
        self.setting("SHIPPER_STATE_DIR", "state_dir").unwrap_or_else(|| defaults::STATE_DIR.into())
    }
}

/// `run [--config FILE]` → FILE. Anything else is refused: this reader knows no other flag.
fn config_arg(args: &[String]) -> Result<Option<String>, ManifestError> {
    match args {
        [run] if run == "run" => Ok(None),
        [run, flag, path] if run == "run" && flag == "--config" => Ok(Some(path.clone())),
        [run, flag] if run == "run" && flag.starts_with("--config=") => {
            Ok(Some(flag.trim_start_matches("--config=").to_owned()))
        }
        other => Err(ManifestError::Settings(format!(
            "container args {other:?}: expected `run` or `run --config FILE`"
        ))),
    }
}

/// The file at `path` inside the container: a key of the ConfigMap volume mounted over it.
fn read_config(
    objects: &Objects,
    namespace: &str,
    pod: &PodSpec,
    container: &Container,
    path: &str,
) -> Result<ConfigFile, ManifestError> {
    let bad = |m: String| ManifestError::Settings(m);
    let mount = container
        .volume_mounts
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|m| Path::new(path).starts_with(&m.mount_path))
        .max_by_key(|m| m.mount_path.len())
        .ok_or_else(|| bad(format!("--config {path} is under no volume mount")))?;
    let key = Path::new(path)
        .strip_prefix(&mount.mount_path)
        .map_err(|e| bad(e.to_string()))?
        .to_string_lossy()
        .into_owned();
    let volume =
        pod.volumes.as_deref().unwrap_or_default().iter().find(|v| v.name == mount.name).ok_or_else(
            || bad(format!("volume {} of mount {} is not defined", mount.name, mount.mount_path)),
        )?;
    let cm_name =
        volume.config_map.as_ref().map(|c| c.name.clone()).ok_or_else(|| {
            bad(format!("--config {path} is on volume {}, which is no ConfigMap", volume.name))
        })?;
    let cm = objects
        .config_map(namespace, &cm_name)
        .ok_or_else(|| bad(format!("ConfigMap {namespace}/{cm_name} is not in the manifests")))?;
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(&key))
        .cloned()
        .ok_or_else(|| bad(format!("ConfigMap {cm_name} has no key {key:?} for --config {path}")))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| bad(format!("ConfigMap {cm_name} key {key}: {e}")))?;
    Ok(ConfigFile { path: path.to_owned(), text, table })
}
