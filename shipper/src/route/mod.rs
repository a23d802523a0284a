//! Routing: log group and stream names from templates, CloudWatch name rules, and the
//! message shape (the **contract** in DESIGN §3).
//!
//! - `template.rs`: the placeholder syntax (`{labels.app|labels.k8s-app|pod}`), parsed once
//!   by [`Router::new`] and rendered per (pod, container) without re-parsing.
//! - `sanitize.rs`: rendered text → a valid CloudWatch group/stream name, never rejected
//!   (invalid characters → `_`, empty → `_`, `aws/` prefix escaped, over 512 bytes cut with
//!   a hash suffix). The exact rules are in that module's docs.
//! - `message.rs`: the JSON message envelope, encoded once per (pod, container), and the
//!   splitting of over-long lines with [`CONTINUATION_MARKER`].
//!
//! Routing runs once per container, not per line; encoding runs per line.

mod message;
mod sanitize;
mod template;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use message::{CONTINUATION_MARKER, MAX_ENVELOPE_FIELD_BYTES, MessageEncoder, MessageMeta};
pub use sanitize::{MAX_NAME_BYTES, sanitize_group_name, sanitize_stream_name};

use template::Template;

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
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
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
///
/// Both templates are parsed once here; [`Router::route`] only renders and sanitises, and
/// always returns valid names, whatever the input.
#[derive(Debug, Clone)]
pub struct Router {
    group: Template,
    stream: Template,
}

impl Router {
    /// Parse both templates.
    pub fn new(group_template: &str, stream_template: &str) -> Result<Self, TemplateError> {
        Ok(Self { group: Template::parse(group_template)?, stream: Template::parse(stream_template)? })
    }

    /// The destination of a container's lines.
    pub fn route(&self, input: &RouteInput<'_>) -> Destination {
        let mut rendered = String::with_capacity(128);
        self.group.render_into(input, &mut rendered);
        let group = sanitize_group_name(&rendered);
        rendered.clear();
        self.stream.render_into(input, &mut rendered);
        let stream = sanitize_stream_name(&rendered);
        Destination { group, stream }
    }
}
