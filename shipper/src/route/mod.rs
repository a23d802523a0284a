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
//! - `selector.rs`, `matcher.rs`, `filter.rs`: label selectors, the container matcher behind
//!   `include` / `exclude` / `multiline_rules`, and the decisions they make (with the
//!   `shipper.io/…` annotations).
//! - `plan.rs`: [`Routing::plan`], every per-container decision in one call, shared by the
//!   agent and `shipper route`.
//! - `keys.rs`: [`MetadataKeys`], the labels and annotations all of the above can read (the
//!   pod cache keeps only those).
//!
//! Routing runs once per container, not per line; encoding runs per line.

mod filter;
mod keys;
mod matcher;
mod message;
mod plan;
mod sanitize;
mod selector;
mod template;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use filter::{
    Decision, EXCLUDE_ANNOTATION, EXCLUDE_CONTAINERS_ANNOTATION, Filter, MULTILINE_ANNOTATION,
    MultilineChoice, MultilineDecision, MultilineRuleSpec, NO_MULTILINE,
};
pub use keys::{MetadataKeys, OWN_ANNOTATION_PREFIX};
pub use matcher::{Globs, Matcher, MatcherError, MatcherSpec, glob_match};
pub use message::{
    CONTINUATION_MARKER, ExtraField, MAX_ENVELOPE_FIELD_BYTES, MessageEncoder, MessageFormat, MessageMeta,
};
pub use plan::{MessageField, Plan, Routing, RoutingError, RoutingSettings, extra_fields};
pub use sanitize::{MAX_NAME_BYTES, sanitize_group_name, sanitize_stream_name};
pub use selector::{Selector, SelectorError};

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
    /// The owning workload's name (`{workload}`; see `kube::Workload`).
    pub workload: &'a str,
    /// The owning workload's kind (`{workload_kind}`); empty when unknown.
    pub workload_kind: &'a str,
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
    /// Record the label and annotation keys the templates read.
    pub fn metadata_keys(&self, keys: &mut MetadataKeys) {
        self.group.metadata_keys(keys);
        self.stream.metadata_keys(keys);
    }

    /// Parse both templates.
    pub fn new(group_template: &str, stream_template: &str) -> Result<Self, TemplateError> {
        Ok(Self { group: Template::parse(group_template)?, stream: Template::parse(stream_template)? })
    }

    /// Warnings about the templates for `shipper check`: names that fall through to the pod
    /// name, group names a pod can steer into another namespace's groups.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.group.may_render_pod() {
            warnings.push(
                "the group template can fall through to {pod}: a pod without the labels it names \
                 gets a log group of its own, and every run of a CronJob or Job a new one; \
                 consider k8s_{cluster}_{namespace}_{labels.app|labels.k8s-app|workload}_{container} \
                 (README: naming for unlabeled workloads)"
                    .to_owned(),
            );
        }
        if !self.group.always_renders_namespace() {
            warnings.push(
                "the group template does not always contain {namespace}: pods can choose, through \
                 the labels or annotations it uses, to write into another namespace's log groups"
                    .to_owned(),
            );
        }
        warnings
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
