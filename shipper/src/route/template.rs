//! Name templates: literal text with `{…}` placeholders, parsed once, rendered per container.
//!
//! Syntax:
//! - Text outside braces is copied as is. Braces always delimit a placeholder; there is no
//!   escape for a literal `{` or `}` (neither is valid in a log group name anyway).
//! - A placeholder is one or more fallbacks separated by `|`: `{labels.app|labels.k8s-app|pod}`.
//!   The first fallback whose value exists and is non-empty wins; if none does, the
//!   placeholder renders as nothing (the sanitiser still yields a valid name).
//! - A fallback is one of `cluster`, `node`, `namespace`, `pod`, `container`, `workload`,
//!   `workload_kind`, `labels.<key>` or `annotations.<key>`, where a key is letters, digits and `/ . - _`
//!   (`labels.app.kubernetes.io/name`). Spaces around a fallback are ignored.

use super::{RouteInput, TemplateError};

/// Names of the fields a fallback may use, for error messages.
const FIELD_HELP: &str =
    "cluster, node, namespace, pod, container, workload, workload_kind, labels.<key>, annotations.<key>";

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    segments: Vec<Segment>,
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Copied verbatim.
    Literal(String),
    /// The first non-empty field, in order.
    Placeholder(Vec<Field>),
}

/// A value a placeholder can take from [`RouteInput`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    Cluster,
    Node,
    Namespace,
    Pod,
    Container,
    Workload,
    WorkloadKind,
    Label(String),
    Annotation(String),
}

impl Field {
    /// This field's value for `input`; `""` when absent.
    fn value<'a>(&self, input: &RouteInput<'a>) -> &'a str {
        match self {
            Self::Cluster => input.cluster,
            Self::Node => input.node,
            Self::Namespace => input.namespace,
            Self::Pod => input.pod,
            Self::Container => input.container,
            Self::Workload => input.workload,
            Self::WorkloadKind => input.workload_kind,
            Self::Label(key) => input.labels.get(key).map_or("", String::as_str),
            Self::Annotation(key) => input.annotations.get(key).map_or("", String::as_str),
        }
    }
}

impl Template {
    /// Record the label and annotation keys the placeholders read.
    pub(crate) fn metadata_keys(&self, keys: &mut super::MetadataKeys) {
        for segment in &self.segments {
            if let Segment::Placeholder(fields) = segment {
                for field in fields {
                    match field {
                        Field::Label(key) => keys.label(key),
                        Field::Annotation(key) => keys.annotation(key),
                        _ => {}
                    }
                }
            }
        }
    }

    /// Parse `text`, explaining any mistake in the error's reason.
    pub(crate) fn parse(text: &str) -> Result<Self, TemplateError> {
        let error = |reason: String| TemplateError { template: text.to_owned(), reason };
        if text.is_empty() {
            return Err(error(
                "the template is empty; use literal text and placeholders such as {pod}_{container}"
                    .to_owned(),
            ));
        }
        let mut segments = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(open) = rest.find(['{', '}']) {
            push_literal(&mut segments, &rest[..open]);
            let brace_at = offset + open;
            if rest[open..].starts_with('}') {
                return Err(error(format!(
                    "'}}' at byte {brace_at} closes no placeholder; remove it or add the '{{' it belongs to"
                )));
            }
            let after = &rest[open + 1..];
            let Some(close) = after.find(['{', '}']) else {
                return Err(error(format!(
                    "'{{' at byte {brace_at} is never closed; add '}}' after the placeholder's field"
                )));
            };
            if after[close..].starts_with('{') {
                return Err(error(format!(
                    "'{{' at byte {} is inside the placeholder opened at byte {brace_at}; \
                     placeholders cannot nest, close the first one with '}}'",
                    brace_at + 1 + close
                )));
            }
            let fields = parse_placeholder(&after[..close], brace_at).map_err(error)?;
            segments.push(Segment::Placeholder(fields));
            rest = &after[close + 1..];
            offset = brace_at + 1 + close + 1;
        }
        push_literal(&mut segments, rest);
        Ok(Self { segments })
    }

    /// Whether some placeholder can render the pod's name: it names `pod` as a fallback. A
    /// group template that can is one group per pod for unlabeled pods (`shipper check` warns).
    pub(crate) fn may_render_pod(&self) -> bool {
        self.placeholders().any(|fields| fields.contains(&Field::Pod))
    }

    /// Whether every rendering contains the namespace: some placeholder is `{namespace}` alone.
    /// Otherwise pods choose, through labels, which namespace's groups they write into.
    pub(crate) fn always_renders_namespace(&self) -> bool {
        self.placeholders().any(|fields| fields == [Field::Namespace])
    }

    fn placeholders(&self) -> impl Iterator<Item = &[Field]> {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Placeholder(fields) => Some(fields.as_slice()),
            Segment::Literal(_) => None,
        })
    }

    /// Append the rendered text for `input` to `out` (not yet sanitised).
    pub(crate) fn render_into(&self, input: &RouteInput<'_>, out: &mut String) {
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Placeholder(fields) => {
                    if let Some(value) =
                        fields.iter().map(|field| field.value(input)).find(|value| !value.is_empty())
                    {
                        out.push_str(value);
                    }
                }
            }
        }
    }
}

/// Add literal text, skipping empty pieces between adjacent placeholders.
fn push_literal(segments: &mut Vec<Segment>, text: &str) {
    if !text.is_empty() {
        segments.push(Segment::Literal(text.to_owned()));
    }
}

/// Parse the text between `{` (at byte `brace_at`) and `}` into its fallbacks.
fn parse_placeholder(body: &str, brace_at: usize) -> Result<Vec<Field>, String> {
    if body.trim().is_empty() {
        return Err(format!(
            "empty placeholder at byte {brace_at}; name a field inside the braces, one of {FIELD_HELP}"
        ));
    }
    body.split('|').map(|fallback| parse_field(fallback.trim(), brace_at)).collect()
}

/// Parse one fallback name.
fn parse_field(name: &str, brace_at: usize) -> Result<Field, String> {
    let field = match name {
        "" => {
            return Err(format!(
                "the placeholder at byte {brace_at} has an empty fallback; remove the extra '|'"
            ));
        }
        "cluster" => Field::Cluster,
        "node" => Field::Node,
        "namespace" => Field::Namespace,
        "pod" => Field::Pod,
        "container" => Field::Container,
        "workload" => Field::Workload,
        "workload_kind" => Field::WorkloadKind,
        _ => {
            if let Some(key) = name.strip_prefix("labels.") {
                Field::Label(parse_key(key, name, brace_at)?)
            } else if let Some(key) = name.strip_prefix("annotations.") {
                Field::Annotation(parse_key(key, name, brace_at)?)
            } else {
                return Err(format!(
                    "unknown field {name:?} in the placeholder at byte {brace_at}; use one of {FIELD_HELP}"
                ));
            }
        }
    };
    Ok(field)
}

/// Check a label or annotation key.
fn parse_key(key: &str, name: &str, brace_at: usize) -> Result<String, String> {
    if key.is_empty() {
        return Err(format!(
            "{name:?} in the placeholder at byte {brace_at} has no key; write e.g. {name}app"
        ));
    }
    if let Some(bad) =
        key.chars().find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '-' | '_')))
    {
        return Err(format!(
            "key {key:?} in the placeholder at byte {brace_at} contains {bad:?}; \
             label and annotation keys use only letters, digits and / . - _"
        ));
    }
    Ok(key.to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn render(template: &str, input: &RouteInput<'_>) -> String {
        let parsed = Template::parse(template).expect("valid template");
        let mut out = String::new();
        parsed.render_into(input, &mut out);
        out
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn renders_every_field_kind() {
        let labels = labels(&[("app.kubernetes.io/name", "web"), ("tier", "front")]);
        let annotations = self::labels(&[("team_x-y", "blue")]);
        let input = RouteInput {
            cluster: "prod",
            node: "node-1",
            namespace: "shop",
            pod: "web-7d9f",
            container: "nginx",
            workload: "web",
            workload_kind: "Deployment",
            labels: &labels,
            annotations: &annotations,
        };
        assert_eq!(
            render(
                "c={cluster} n={node} ns={namespace} p={pod} k={container} \
                 l={labels.app.kubernetes.io/name} a={annotations.team_x-y} w={workload}/{workload_kind}",
                &input
            ),
            "c=prod n=node-1 ns=shop p=web-7d9f k=nginx l=web a=blue w=web/Deployment"
        );
        assert_eq!(render("static-group", &input), "static-group");
        assert_eq!(render("{pod}{container}", &input), "web-7d9fnginx");
        assert_eq!(render("{ labels.missing | labels.tier }", &input), "front");
        assert_eq!(render("x{labels.missing|annotations.none}y", &input), "xy");
    }

    #[test]
    fn fall_through_checks() {
        let parse = |text| Template::parse(text).expect("valid");
        assert!(parse("k8s_{labels.app|labels.k8s-app|pod}_{container}").may_render_pod());
        assert!(!parse("k8s_{labels.app|workload}_{container}").may_render_pod());
        assert!(parse("{namespace}_{labels.app}").always_renders_namespace());
        assert!(!parse("{labels.ns|namespace}_{labels.app}").always_renders_namespace());
        assert!(!parse("static").always_renders_namespace());
    }

    #[test]
    fn error_messages() {
        let cases = [
            "",
            "k8s_{cluster",
            "k8s_}",
            "{pod{container}}",
            "a{}b",
            "{  }",
            "{pod||container}",
            "{|pod}",
            "{podname}",
            "{label.app}",
            "{labels}",
            "{labels.}",
            "{annotations.a b}",
            "{labels.app!}",
        ];
        let report: String = cases
            .iter()
            .map(|template| match Template::parse(template) {
                Ok(parsed) => format!("{template:?} parsed unexpectedly: {parsed:?}\n"),
                Err(error) => format!("{error}\n"),
            })
            .collect();
        insta::assert_snapshot!(report);
    }

    /// A template segment as the generator sees it, rendered by the test's own model.
    #[derive(Debug, Clone)]
    enum Model {
        Literal(String),
        Placeholder(Vec<(String, ModelField)>),
    }

    #[derive(Debug, Clone)]
    enum ModelField {
        Pod,
        Namespace,
        Label(String),
    }

    fn model_strategy() -> impl Strategy<Value = Vec<Model>> {
        let field = prop_oneof![
            Just(("pod".to_owned(), ModelField::Pod)),
            Just(("namespace".to_owned(), ModelField::Namespace)),
            "[a-z][a-z0-9./_-]{0,10}".prop_map(|key| (format!("labels.{key}"), ModelField::Label(key))),
        ];
        let segment = prop_oneof![
            "[^{}]{1,8}".prop_map(Model::Literal),
            prop::collection::vec(field, 1..4).prop_map(Model::Placeholder),
        ];
        prop::collection::vec(segment, 1..6)
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in "[{}|a-z._/ -]{0,30}|\\PC{0,30}") {
            if let Ok(parsed) = Template::parse(&text) {
                let empty = BTreeMap::new();
                let input = RouteInput {
                    cluster: "c", node: "n", namespace: "ns", pod: "p", container: "k", workload: "w", workload_kind: "Pod",
                    labels: &empty, annotations: &empty,
                };
                parsed.render_into(&input, &mut String::new());
            }
        }

        #[test]
        fn generated_templates_render_like_the_model(
            model in model_strategy(),
            pod in "[a-z0-9-]{0,6}",
            namespace in "[a-z0-9-]{0,6}",
            label_values in prop::collection::vec("[a-z]{0,3}", 0..6),
        ) {
            let text: String = model.iter().map(|segment| match segment {
                Model::Literal(text) => text.clone(),
                Model::Placeholder(fields) => format!(
                    "{{{}}}",
                    fields.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join("|")
                ),
            }).collect();
            // Give some of the generated label keys a (possibly empty) value.
            let mut labels = BTreeMap::new();
            let keys = model.iter().flat_map(|segment| match segment {
                Model::Placeholder(fields) => fields.clone(),
                Model::Literal(_) => Vec::new(),
            }).filter_map(|(_, field)| match field {
                ModelField::Label(key) => Some(key),
                _ => None,
            });
            for (key, value) in keys.zip(label_values) {
                labels.insert(key, value);
            }
            let annotations = BTreeMap::new();
            let input = RouteInput {
                cluster: "c", node: "n", namespace: &namespace, pod: &pod, container: "k", workload: "w", workload_kind: "Pod",
                labels: &labels, annotations: &annotations,
            };
            let expected: String = model.iter().map(|segment| match segment {
                Model::Literal(text) => text.clone(),
                Model::Placeholder(fields) => fields.iter().map(|(_, field)| match field {
                    ModelField::Pod => pod.clone(),
                    ModelField::Namespace => namespace.clone(),
                    ModelField::Label(key) => labels.get(key).cloned().unwrap_or_default(),
                }).find(|value| !value.is_empty()).unwrap_or_default(),
            }).collect();
            prop_assert_eq!(render(&text, &input), expected);
        }
    }
}
