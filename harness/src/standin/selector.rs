//! Field and label selectors for Pods, with the real API server's grammar and semantics.
//!
//! Field selectors: `field=value`, `field==value`, `field!=value`, comma = AND, only the field
//! labels the real server supports for Pods; a missing field compares as `""`. Label
//! selectors: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, comma = AND
//! (commas inside parentheses belong to the set).

use std::borrow::Cow;

use serde_json::Value;

/// Pod field labels the real API server accepts in a field selector.
pub const SUPPORTED_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
];

/// A selector that cannot be parsed or uses an unsupported field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The field label is not one the server supports for Pods.
    #[error("field label not supported: {field}")]
    UnsupportedField {
        /// The field label.
        field: String,
    },
    /// A field selector term has no operator.
    #[error("invalid field selector term {term:?}: expected field=value, field==value or field!=value")]
    InvalidFieldTerm {
        /// The term.
        term: String,
    },
    /// A label selector term is malformed.
    #[error("unable to parse requirement {term:?}: {reason}")]
    InvalidLabelTerm {
        /// The term.
        term: String,
        /// What is wrong.
        reason: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldRequirement {
    field: &'static str,
    value: String,
    equal: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed field selector, label selector and optional namespace scope, matched against Pod JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodSelector {
    namespace: Option<String>,
    fields: Vec<FieldRequirement>,
    labels: Vec<LabelRequirement>,
}

impl PodSelector {
    /// Parses the `fieldSelector` and `labelSelector` query values; `namespace` scopes
    /// namespaced endpoints.
    pub fn parse(
        field_selector: &str,
        label_selector: &str,
        namespace: Option<&str>,
    ) -> Result<Self, SelectorError> {
        Ok(Self {
            namespace: namespace.map(str::to_owned),
            fields: parse_fields(field_selector)?,
            labels: parse_labels(label_selector)?,
        })
    }

    /// Whether the pod satisfies every requirement.
    pub fn matches(&self, pod: &Value) -> bool {
        if let Some(namespace) = &self.namespace
            && pod["metadata"]["namespace"].as_str() != Some(namespace.as_str())
        {
            return false;
        }
        self.fields.iter().all(|req| (field_value(pod, req.field) == req.value.as_str()) == req.equal)
            && self.labels.iter().all(|req| label_matches(req, &pod["metadata"]["labels"]))
    }
}

fn parse_fields(selector: &str) -> Result<Vec<FieldRequirement>, SelectorError> {
    let mut requirements = Vec::new();
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
            (f, v, false)
        } else if let Some((f, v)) = term.split_once("==") {
            (f, v, true)
        } else if let Some((f, v)) = term.split_once('=') {
            (f, v, true)
        } else {
            return Err(SelectorError::InvalidFieldTerm { term: term.to_owned() });
        };
        let field = field.trim();
        let supported = SUPPORTED_FIELDS
            .iter()
            .find(|known| **known == field)
            .ok_or_else(|| SelectorError::UnsupportedField { field: field.to_owned() })?;
        requirements.push(FieldRequirement { field: supported, value: value.trim().to_owned(), equal });
    }
    Ok(requirements)
}

/// The value of a supported field label; a missing field is `""`.
fn field_value<'a>(pod: &'a Value, field: &str) -> Cow<'a, str> {
    let text = |v: &'a Value| Cow::Borrowed(v.as_str().unwrap_or(""));
    match field {
        "metadata.name" => text(&pod["metadata"]["name"]),
        "metadata.namespace" => text(&pod["metadata"]["namespace"]),
        "spec.nodeName" => text(&pod["spec"]["nodeName"]),
        "spec.restartPolicy" => text(&pod["spec"]["restartPolicy"]),
        "spec.schedulerName" => text(&pod["spec"]["schedulerName"]),
        "spec.serviceAccountName" => text(&pod["spec"]["serviceAccountName"]),
        "spec.hostNetwork" => {
            Cow::Borrowed(if pod["spec"]["hostNetwork"].as_bool() == Some(true) { "true" } else { "false" })
        }
        "status.phase" => text(&pod["status"]["phase"]),
        "status.podIP" => text(&pod["status"]["podIP"]),
        "status.podIPs" => Cow::Owned(
            pod["status"]["podIPs"]
                .as_array()
                .map(|ips| ips.iter().filter_map(|ip| ip["ip"].as_str()).collect::<Vec<_>>().join(","))
                .unwrap_or_default(),
        ),
        "status.nominatedNodeName" => text(&pod["status"]["nominatedNodeName"]),
        _ => Cow::Borrowed(""),
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(selector: &str) -> Result<Vec<&str>, SelectorError> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth.checked_sub(1).ok_or_else(|| label_error(selector, "unbalanced ')'"))?;
            }
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(label_error(selector, "unbalanced '('"));
    }
    terms.push(&selector[start..]);
    Ok(terms)
}

fn parse_labels(selector: &str) -> Result<Vec<LabelRequirement>, SelectorError> {
    let mut requirements = Vec::new();
    for term in split_top_level(selector)?.into_iter().map(str::trim) {
        if term.is_empty() {
            continue;
        }
        requirements.push(parse_label_term(term)?);
    }
    Ok(requirements)
}

fn parse_label_term(term: &str) -> Result<LabelRequirement, SelectorError> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(LabelRequirement::NotExists(label_key(term, key)?));
    }
    if let Some(open) = term.find('(') {
        let inner =
            term[open + 1..].strip_suffix(')').ok_or_else(|| label_error(term, "expected ')' at the end"))?;
        let mut head = term[..open].split_whitespace();
        let (Some(key), Some(op), None) = (head.next(), head.next(), head.next()) else {
            return Err(label_error(term, "expected 'key in (...)' or 'key notin (...)'"));
        };
        let key = label_key(term, key)?;
        let values = inner.split(',').map(|v| label_value(term, v.trim())).collect::<Result<Vec<_>, _>>()?;
        return match op {
            "in" => Ok(LabelRequirement::In(key, values)),
            "notin" => Ok(LabelRequirement::NotIn(key, values)),
            _ => Err(label_error(term, "unknown set operator")),
        };
    }
    if let Some((key, value)) = term.split_once("!=") {
        return Ok(LabelRequirement::NotEquals(
            label_key(term, key.trim())?,
            label_value(term, value.trim())?,
        ));
    }
    if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(LabelRequirement::Equals(label_key(term, key.trim())?, label_value(term, value.trim())?));
    }
    Ok(LabelRequirement::Exists(label_key(term, term)?))
}

fn label_key(term: &str, key: &str) -> Result<String, SelectorError> {
    let valid = !key.is_empty()
        && key.len() <= 316
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid { Ok(key.to_owned()) } else { Err(label_error(term, "invalid label key")) }
}

fn label_value(term: &str, value: &str) -> Result<String, SelectorError> {
    let valid =
        value.len() <= 63 && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid { Ok(value.to_owned()) } else { Err(label_error(term, "invalid label value")) }
}

fn label_error(term: &str, reason: &'static str) -> SelectorError {
    SelectorError::InvalidLabelTerm { term: term.to_owned(), reason }
}

fn label_matches(requirement: &LabelRequirement, labels: &Value) -> bool {
    let get = |key: &str| labels.get(key).and_then(Value::as_str);
    match requirement {
        LabelRequirement::Equals(k, v) => get(k) == Some(v.as_str()),
        LabelRequirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
        LabelRequirement::Exists(k) => get(k).is_some(),
        LabelRequirement::NotExists(k) => get(k).is_none(),
        LabelRequirement::In(k, set) => get(k).is_some_and(|v| set.iter().any(|s| s == v)),
        LabelRequirement::NotIn(k, set) => !get(k).is_some_and(|v| set.iter().any(|s| s == v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn pod(node: Option<&str>, labels: Value) -> Value {
        let mut pod = json!({"metadata": {"name": "p", "namespace": "ns", "labels": labels}, "spec": {}});
        if let Some(node) = node {
            pod["spec"]["nodeName"] = json!(node);
        }
        pod
    }

    fn matches(fields: &str, labels: &str, pod: &Value) -> bool {
        PodSelector::parse(fields, labels, None).unwrap().matches(pod)
    }

    #[test]
    fn field_operators_and_missing_fields() {
        let bound = pod(Some("node-a"), json!({}));
        let unbound = pod(None, json!({}));
        assert!(matches("spec.nodeName=node-a", "", &bound));
        assert!(matches("spec.nodeName==node-a", "", &bound));
        assert!(!matches("spec.nodeName!=node-a", "", &bound));
        assert!(!matches("spec.nodeName=node-a", "", &unbound));
        assert!(matches("spec.nodeName=", "", &unbound));
        assert!(matches("spec.nodeName=node-a,metadata.namespace=ns,metadata.name!=q", "", &bound));
        assert!(matches("spec.hostNetwork=false", "", &bound));
        assert!(!matches("metadata.namespace=other", "", &bound));
    }

    #[test]
    fn unsupported_field_is_an_error() {
        assert_eq!(
            PodSelector::parse("spec.containers=x", "", None),
            Err(SelectorError::UnsupportedField { field: "spec.containers".into() })
        );
        assert!(matches!(
            PodSelector::parse("spec.nodeName", "", None),
            Err(SelectorError::InvalidFieldTerm { .. })
        ));
    }

    #[test]
    fn label_grammar() {
        let p = pod(None, json!({"app": "web", "tier": "front"}));
        assert!(matches("", "app=web", &p));
        assert!(matches("", "app==web,tier", &p));
        assert!(matches("", "app!=db,!missing", &p));
        assert!(matches("", "app in (db, web),tier notin (back)", &p));
        assert!(matches("", "missing notin (x),missing!=x", &p));
        assert!(!matches("", "missing in (x)", &p));
        assert!(!matches("", "!app", &p));
        assert!(!matches("", "app in (db,api)", &p));
        for bad in ["app in (a", "app in a)", "app zz (a)", "=x", "app=a b", "in (a)"] {
            assert!(PodSelector::parse("", bad, None).is_err(), "{bad} should be rejected");
        }
    }

    fn label_value_strategy() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,6}"
    }

    proptest! {
        /// Equality/set semantics agree with a direct evaluation on random label maps.
        #[test]
        fn label_requirements_agree_with_model(
            value in proptest::option::of(label_value_strategy()),
            set in proptest::collection::vec(label_value_strategy(), 1..4),
            wanted in label_value_strategy(),
        ) {
            let labels = match &value { Some(v) => json!({"k": v}), None => json!({}) };
            let p = pod(None, labels);
            let in_set = value.as_ref().is_some_and(|v| set.contains(v));
            let list = set.join(",");
            prop_assert_eq!(matches("", &format!("k in ({list})"), &p), in_set);
            prop_assert_eq!(matches("", &format!("k notin ({list})"), &p), !in_set);
            prop_assert_eq!(matches("", &format!("k={wanted}"), &p), value.as_deref() == Some(wanted.as_str()));
            prop_assert_eq!(matches("", &format!("k!={wanted}"), &p), value.as_deref() != Some(wanted.as_str()));
            prop_assert_eq!(matches("", "k", &p), value.is_some());
            prop_assert_eq!(matches("", "!k", &p), value.is_none());
        }

        /// A conjunction matches exactly when every term matches alone, whatever the set commas.
        #[test]
        fn conjunction_is_and_of_terms(
            value in label_value_strategy(),
            a in proptest::collection::vec(label_value_strategy(), 1..4),
            b in proptest::collection::vec(label_value_strategy(), 1..4),
        ) {
            let p = pod(None, json!({"x": value, "y": value}));
            let ta = format!("x in ({})", a.join(","));
            let tb = format!("y notin ({})", b.join(","));
            let both = matches("", &format!("{ta},{tb}"), &p);
            prop_assert_eq!(both, matches("", &ta, &p) && matches("", &tb, &p));
        }
    }
}
