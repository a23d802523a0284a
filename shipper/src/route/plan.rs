//! Everything decided once per container, in one place: destination, whether it is shipped,
//! its multiline detector and its message encoder. The agent and `shipper route` both go
//! through [`Routing::plan`], so the dry run prints exactly what the agent does.

use super::filter::{Decision, Filter, MultilineChoice, MultilineDecision, MultilineRuleSpec};
use super::matcher::{MatcherError, MatcherSpec};
use super::message::{ExtraField, MessageEncoder, MessageFormat, MessageMeta};
use super::{Destination, MetadataKeys, RouteInput, Router, TemplateError};

/// A key `message_fields` may add to the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageField {
    /// `workload`: the owning workload's name.
    Workload,
    /// `workload_kind`.
    WorkloadKind,
    /// `node`: the node name (the same value as `host`, under the name other tools use).
    Node,
    /// `labels.<key>`: goes into a `labels` object.
    Label(String),
    /// `annotations.<key>`: goes into an `annotations` object.
    Annotation(String),
}

impl MessageField {
    /// Parse a comma-separated list (`SHIPPER_MESSAGE_FIELDS`).
    pub fn parse_list(text: &str) -> Result<Vec<Self>, String> {
        text.split(',').map(str::trim).filter(|f| !f.is_empty()).map(str::parse).collect()
    }

    /// The name as written in the config.
    pub fn name(&self) -> String {
        match self {
            Self::Workload => "workload".into(),
            Self::WorkloadKind => "workload_kind".into(),
            Self::Node => "node".into(),
            Self::Label(key) => format!("labels.{key}"),
            Self::Annotation(key) => format!("annotations.{key}"),
        }
    }
}

impl std::str::FromStr for MessageField {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let key = |key: &str| {
            if key.is_empty() {
                Err(format!("{text:?} has no key; write e.g. {text}team"))
            } else {
                Ok(key.to_owned())
            }
        };
        match text {
            "workload" => Ok(Self::Workload),
            "workload_kind" => Ok(Self::WorkloadKind),
            "node" => Ok(Self::Node),
            _ if text.starts_with("labels.") => Ok(Self::Label(key(&text["labels.".len()..])?)),
            _ if text.starts_with("annotations.") => {
                Ok(Self::Annotation(key(&text["annotations.".len()..])?))
            }
            _ => Err(format!(
                "unknown message field {text:?}; use workload, workload_kind, node, labels.<key> or annotations.<key>"
            )),
        }
    }
}

impl serde::Serialize for MessageField {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

/// The extra envelope keys for one container, in the order configured; labels and
/// annotations each become one object at the place of their first field. Absent labels are
/// left out; an object with nothing in it is left out.
pub fn extra_fields(fields: &[MessageField], input: &RouteInput<'_>) -> Vec<ExtraField> {
    let mut out = Vec::new();
    let object = |out: &mut Vec<ExtraField>, key: &str, entry: Option<(String, String)>| {
        let position = out.iter().position(|f| matches!(f, ExtraField::Object { key: k, .. } if k == key));
        let index = position.unwrap_or_else(|| {
            out.push(ExtraField::Object { key: key.to_owned(), entries: Vec::new() });
            out.len() - 1
        });
        if let (Some(entry), ExtraField::Object { entries, .. }) = (entry, &mut out[index])
            && !entries.iter().any(|(k, _)| *k == entry.0)
        {
            entries.push(entry);
        }
    };
    for field in fields {
        let text = |key: &str, value: &str| ExtraField::Text { key: key.to_owned(), value: value.to_owned() };
        match field {
            MessageField::Workload => out.push(text("workload", input.workload)),
            MessageField::WorkloadKind => out.push(text("workload_kind", input.workload_kind)),
            MessageField::Node => out.push(text("node", input.node)),
            MessageField::Label(key) => {
                object(&mut out, "labels", input.labels.get(key).map(|v| (key.clone(), v.clone())));
            }
            MessageField::Annotation(key) => {
                object(&mut out, "annotations", input.annotations.get(key).map(|v| (key.clone(), v.clone())));
            }
        }
    }
    out.retain(|f| !matches!(f, ExtraField::Object { entries, .. } if entries.is_empty()));
    out
}

/// A routing setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// A name template.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// An include, exclude or multiline rule.
    #[error(transparent)]
    Matcher(#[from] MatcherError),
}

/// The per-container decisions' inputs, built once from the configuration.
#[derive(Debug, Clone)]
pub struct Routing {
    router: Router,
    filter: Filter,
    multiline: MultilineChoice,
    format: MessageFormat,
    fields: Vec<MessageField>,
}

/// What the settings decide for one container.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where its lines go.
    pub dest: Destination,
    /// Whether they go at all.
    pub decision: Decision,
    /// Its multiline detector, if any (the name still has to be resolved to a detector).
    pub multiline: Option<MultilineDecision>,
    /// Its message encoder.
    pub encoder: MessageEncoder,
}

/// The settings [`Routing::new`] takes.
#[derive(Debug, Clone, Copy)]
pub struct RoutingSettings<'a> {
    /// `group_template`.
    pub group_template: &'a str,
    /// `stream_template`.
    pub stream_template: &'a str,
    /// `include`.
    pub include: &'a [MatcherSpec],
    /// `exclude`.
    pub exclude: &'a [MatcherSpec],
    /// `multiline_rules`.
    pub multiline_rules: &'a [MultilineRuleSpec],
    /// `multiline` (the default detector).
    pub multiline: Option<&'a str>,
    /// `message_format`.
    pub message_format: MessageFormat,
    /// `message_fields`.
    pub message_fields: &'a [MessageField],
}

#[cfg(test)]
impl RoutingSettings<'static> {
    /// The defaults: the contract's templates, no filters, no multiline, the default message
    /// format (tests change what they need with `..RoutingSettings::defaults()`).
    pub(crate) fn defaults() -> Self {
        RoutingSettings {
            group_template: super::DEFAULT_GROUP_TEMPLATE,
            stream_template: super::DEFAULT_STREAM_TEMPLATE,
            include: &[],
            exclude: &[],
            multiline_rules: &[],
            multiline: None,
            message_format: MessageFormat::default(),
            message_fields: &[],
        }
    }
}

impl Routing {
    /// Compile the settings.
    pub fn new(settings: &RoutingSettings<'_>) -> Result<Self, RoutingError> {
        Ok(Routing {
            router: Router::new(settings.group_template, settings.stream_template)?,
            filter: Filter::new(settings.include, settings.exclude)?,
            multiline: MultilineChoice::new(settings.multiline_rules, settings.multiline)?,
            format: settings.message_format,
            fields: settings.message_fields.to_vec(),
        })
    }

    /// Every label and annotation key these settings can read.
    pub fn metadata_keys(&self) -> MetadataKeys {
        let mut keys = MetadataKeys::default();
        self.router.metadata_keys(&mut keys);
        self.filter.metadata_keys(&mut keys);
        self.multiline.metadata_keys(&mut keys);
        for field in &self.fields {
            match field {
                MessageField::Label(key) => keys.label(key),
                MessageField::Annotation(key) => keys.annotation(key),
                _ => {}
            }
        }
        keys
    }

    /// The name templates.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The multiline choice (for validating the detector names it refers to).
    pub fn multiline(&self) -> &MultilineChoice {
        &self.multiline
    }

    /// Decide for one container; `image` is its image, `metadata` whether its pod's
    /// metadata is known (else labels and annotations are empty and unknown).
    pub fn plan(&self, input: &RouteInput<'_>, image: &str, metadata: bool) -> Plan {
        let extra = extra_fields(&self.fields, input);
        let meta = MessageMeta {
            namespace: input.namespace,
            pod_name: input.pod,
            container_name: input.container,
            container_image: image,
            host: input.node,
            extra: &extra,
        };
        Plan {
            dest: self.router.route(input),
            decision: self.filter.decide(input, metadata),
            multiline: self.multiline.choose(input, metadata),
            encoder: MessageEncoder::with_format(&meta, self.format),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn message_fields_parse_and_resolve() {
        let fields =
            MessageField::parse_list("workload, labels.team,node,labels.tier,annotations.owner,labels.team")
                .expect("valid");
        let labels = BTreeMap::from([("team".to_owned(), "pay".to_owned())]);
        let annotations = BTreeMap::new();
        let input = RouteInput {
            cluster: "c",
            node: "n1",
            namespace: "ns",
            pod: "p",
            container: "k",
            workload: "api",
            workload_kind: "Deployment",
            labels: &labels,
            annotations: &annotations,
        };
        assert_eq!(
            extra_fields(&fields, &input),
            vec![
                ExtraField::Text { key: "workload".into(), value: "api".into() },
                ExtraField::Object { key: "labels".into(), entries: vec![("team".into(), "pay".into())] },
                ExtraField::Text { key: "node".into(), value: "n1".into() },
            ]
        );
        for bad in ["pod", "labels.", "annotations."] {
            assert!(MessageField::parse_list(bad).is_err(), "{bad}");
        }
        assert_eq!(MessageField::parse_list(" , ").expect("empty"), Vec::new());
    }
}
