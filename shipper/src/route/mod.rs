//! Routing: log group and stream names from templates, CloudWatch name rules, and the
//! message shape (the **contract** in DESIGN §3).

use std::collections::BTreeMap;

/// Default group template (contract).
pub const DEFAULT_GROUP_TEMPLATE: &str =
    "k8s_{cluster}_{namespace}_{labels.app|labels.k8s-app|pod}_{container}";
/// Default stream template (contract).
pub const DEFAULT_STREAM_TEMPLATE: &str = "{pod}_{container}";

/// Largest CloudWatch event: 1 MiB including the 26 bytes of per-event overhead.
pub const MAX_EVENT_BYTES: usize = 1_048_576 - 26;

/// Everything a template can refer to.
#[derive(Debug, Clone, Copy)]
pub struct RouteInput<'a> {
    /// `CLUSTER_NAME`
    pub cluster: &'a str,
    /// `NODE_NAME`
    pub node: &'a str,
    /// Pod namespace.
    pub namespace: &'a str,
    /// Pod name.
    pub pod: &'a str,
    /// Container name.
    pub container: &'a str,
    /// Pod labels.
    pub labels: &'a BTreeMap<String, String>,
    /// Pod annotations.
    pub annotations: &'a BTreeMap<String, String>,
}

/// Where a line goes. Both names are valid CloudWatch names by construction.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Destination {
    /// Log group name.
    pub group: String,
    /// Log stream name.
    pub stream: String,
}

/// A template failed to parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid template {template:?}: {reason}")]
pub struct TemplateError {
    /// The template text.
    pub template: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Renders destinations from the group and stream templates.
#[derive(Debug, Clone)]
pub struct Router {
    _private: (),
}

impl Router {
    /// Parse both templates.
    pub fn new(_group_template: &str, _stream_template: &str) -> Result<Self, TemplateError> {
        unimplemented!("route::Router::new")
    }

    /// The destination of a container's lines.
    pub fn route(&self, _input: &RouteInput<'_>) -> Destination {
        unimplemented!("route::Router::route")
    }
}

/// The fields of the message envelope, fixed per (pod, container).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta<'a> {
    /// Pod namespace.
    pub namespace: &'a str,
    /// Pod name.
    pub pod_name: &'a str,
    /// Container name.
    pub container_name: &'a str,
    /// Container image.
    pub container_image: &'a str,
    /// Node name.
    pub host: &'a str,
}

/// Encodes messages for one (pod, container): the envelope is serialised once.
#[derive(Debug, Clone)]
pub struct MessageEncoder {
    _private: (),
}

impl MessageEncoder {
    /// Pre-encode the envelope.
    pub fn new(_meta: &MessageMeta<'_>) -> Self {
        unimplemented!("route::MessageEncoder::new")
    }

    /// Encode `log` (`continued`: the line goes on in the next call) into one or more
    /// messages, each at most `MAX_EVENT_BYTES`, pushed onto `out`. Returns how many.
    pub fn encode(&self, _log: &str, _continued: bool, _out: &mut Vec<String>) -> usize {
        unimplemented!("route::MessageEncoder::encode")
    }
}
