//! The command line (contract, DESIGN §3): `run`, `check`, `route`.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, FileSettings, Settings};
use crate::kube::{PodInfo, Workload};
use crate::route::{MultilineDecision, RouteInput};

/// Tails Kubernetes container logs and ships them to CloudWatch Logs, one log group per kind
/// of container, without losing a line.
///
/// Every setting has a default and can be given in the config file (TOML, snake_case keys),
/// by environment variable, or by flag; flags win over env, env over the file.
#[derive(Debug, Parser)]
#[command(name = "shipper", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent (until SIGTERM; then drain within the grace period).
    Run {
        /// Config file (TOML).
        #[arg(long, env = "SHIPPER_CONFIG")]
        config: Option<PathBuf>,
        /// Settings.
        #[command(flatten)]
        settings: Settings,
    },
    /// Validate the configuration and print the effective settings.
    Check {
        /// Config file (TOML).
        #[arg(long, env = "SHIPPER_CONFIG")]
        config: Option<PathBuf>,
        /// Settings.
        #[command(flatten)]
        settings: Settings,
    },
    /// Print the log group and stream a container's lines would go to (dry run, no network).
    Route {
        /// A Pod as JSON (e.g. `kubectl get pod NAME -o json`).
        #[arg(long)]
        pod: PathBuf,
        /// The container's name.
        #[arg(long)]
        container: String,
        /// Config file (TOML).
        #[arg(long, env = "SHIPPER_CONFIG")]
        config: Option<PathBuf>,
        /// Settings.
        #[command(flatten)]
        settings: Settings,
    },
}

/// Merge file, env and flags into the effective configuration.
pub fn load_config(config: Option<&Path>, settings: Settings) -> Result<Config, ConfigError> {
    let file = match config {
        Some(path) => FileSettings::load(path)?,
        None => FileSettings::default(),
    };
    settings.over(file).resolve()
}

/// A failure of `shipper route`.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The pod file cannot be read or is not a Pod.
    #[error("pod file {path}: {reason}")]
    Pod {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The container is not in the pod.
    #[error("container {container:?} is not in pod {pod:?} (containers: {known})")]
    NoContainer {
        /// Asked for.
        container: String,
        /// The pod.
        pod: String,
        /// What the pod has.
        known: String,
    },
}

/// What `shipper route` prints: the destination (`group`, `stream`: the contract's keys),
/// then every other per-container decision and the rule that made it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteReport {
    /// Log group.
    pub group: String,
    /// Log stream.
    pub stream: String,
    /// Whether the container's lines are shipped at all.
    pub shipped: bool,
    /// The include/exclude rule or annotation that decided it (`default` when none applies).
    pub decided_by: String,
    /// `{workload}`, `{workload_kind}` and the rule that derived them.
    pub workload: Workload,
    /// The multiline detector and what chose it (absent: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multiline: Option<MultilineDecision>,
    /// The message format.
    pub message_format: crate::route::MessageFormat,
    /// The settings the group gets if the shipper creates it, and the `[[group_settings]]`
    /// rule (`group`, `*` for the default) they come from.
    pub group_settings: crate::config::groups::ResolvedRule,
}

/// `shipper route`: where a container's lines go and why.
pub fn route(
    pod_path: &Path,
    container: &str,
    config: Option<&Path>,
    mut settings: Settings,
) -> Result<RouteReport, RouteError> {
    let text = std::fs::read_to_string(pod_path)
        .map_err(|e| RouteError::Pod { path: pod_path.to_owned(), reason: e.to_string() })?;
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_str(&text)
        .map_err(|e| RouteError::Pod { path: pod_path.to_owned(), reason: e.to_string() })?;
    let info = PodInfo::from_pod(&pod).ok_or_else(|| RouteError::Pod {
        path: pod_path.to_owned(),
        reason: "metadata.name and metadata.namespace are required".into(),
    })?;
    if !info.images.contains_key(container) {
        return Err(RouteError::NoContainer {
            container: container.to_owned(),
            pod: info.name.clone(),
            known: info.images.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    }
    // A dry run needs no node: take the pod's own binding when NODE_NAME is not set.
    if settings.node_name.is_none() {
        settings.node_name =
            Some(pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_else(|| "-".into()));
    }
    let config = load_config(config, settings)?;
    let routing = config.routing().map_err(|e| ConfigError::Invalid {
        key: "SHIPPER_GROUP_TEMPLATE",
        value: config.group_template.clone(),
        reason: e.to_string(),
    })?;
    let input = RouteInput {
        cluster: &config.cluster_name,
        node: &config.node_name,
        namespace: &info.namespace,
        pod: &info.name,
        container,
        workload: &info.workload.name,
        workload_kind: &info.workload.kind,
        labels: &info.labels,
        annotations: &info.annotations,
    };
    let image = info.images.get(container).map(String::as_str).unwrap_or("");
    let plan = routing.plan(&input, image, true);
    let group_settings = config.group_settings.resolve(&plan.dest.group).clone();
    Ok(RouteReport {
        group: plan.dest.group,
        stream: plan.dest.stream,
        shipped: plan.decision.shipped,
        decided_by: plan.decision.rule,
        workload: info.workload.clone(),
        multiline: plan.multiline,
        message_format: config.message_format,
        group_settings,
    })
}
