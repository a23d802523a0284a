//! Container matchers: the one rule type behind `include`, `exclude` and `multiline_rules`.
//!
//! A matcher names any of `namespace`, `pod`, `container`, `workload` (each a glob or a list
//! of globs: `*` any run of characters, `?` one character) and `labels` (a label selector,
//! [`Selector`]); it matches a container when every field it names matches. A matcher that
//! names nothing is an error rather than a silent "match everything".

use serde::{Deserialize, Serialize};

use super::RouteInput;
use super::selector::{Selector, SelectorError};

/// A glob or a list of globs, as written in the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Globs {
    /// `namespace = "kube-*"`
    One(String),
    /// `namespace = ["kube-system", "monitoring"]`
    Many(Vec<String>),
}

impl Globs {
    fn patterns(&self) -> &[String] {
        match self {
            Globs::One(one) => std::slice::from_ref(one),
            Globs::Many(many) => many,
        }
    }
}

/// One rule as written in the config file (or a `SHIPPER_*` env value in TOML syntax).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatcherSpec {
    /// The rule's name in metrics, logs and `shipper route` (default: `<list>[<index>]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace globs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Globs>,
    /// Pod name globs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Globs>,
    /// Container name globs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Globs>,
    /// Workload name globs (`{workload}`: the Deployment, StatefulSet, CronJob, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<Globs>,
    /// A label selector, e.g. `app in (web,api),tier!=debug`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
}

/// A rule that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatcherError {
    /// The rule names no field.
    #[error("rule {rule}: names no field; give at least one of namespace, pod, container, workload, labels")]
    Empty {
        /// The rule's name.
        rule: String,
    },
    /// A glob is empty.
    #[error("rule {rule}: {field} has an empty glob; use \"*\" to mean any")]
    EmptyGlob {
        /// The rule's name.
        rule: String,
        /// Which field.
        field: &'static str,
    },
    /// The label selector does not parse.
    #[error("rule {rule}: {source}")]
    Selector {
        /// The rule's name.
        rule: String,
        /// Why.
        source: SelectorError,
    },
}

/// A compiled matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    name: String,
    namespace: Option<Globs>,
    pod: Option<Globs>,
    container: Option<Globs>,
    workload: Option<Globs>,
    labels: Option<Selector>,
}

impl Matcher {
    /// Record the label keys its selector reads.
    pub fn metadata_keys(&self, keys: &mut super::MetadataKeys) {
        for key in self.labels.iter().flat_map(Selector::keys) {
            keys.label(key);
        }
    }

    /// Check and compile `spec`; `default_name` names it when the spec does not.
    pub fn new(spec: &MatcherSpec, default_name: String) -> Result<Self, MatcherError> {
        let name = spec.name.clone().unwrap_or(default_name);
        if spec.namespace.is_none()
            && spec.pod.is_none()
            && spec.container.is_none()
            && spec.workload.is_none()
            && spec.labels.is_none()
        {
            return Err(MatcherError::Empty { rule: name });
        }
        for (field, globs) in [
            ("namespace", &spec.namespace),
            ("pod", &spec.pod),
            ("container", &spec.container),
            ("workload", &spec.workload),
        ] {
            if globs
                .as_ref()
                .is_some_and(|g| g.patterns().is_empty() || g.patterns().iter().any(String::is_empty))
            {
                return Err(MatcherError::EmptyGlob { rule: name, field });
            }
        }
        let labels = spec
            .labels
            .as_deref()
            .map(Selector::parse)
            .transpose()
            .map_err(|source| MatcherError::Selector { rule: name.clone(), source })?;
        Ok(Matcher {
            name,
            namespace: spec.namespace.clone(),
            pod: spec.pod.clone(),
            container: spec.container.clone(),
            workload: spec.workload.clone(),
            labels,
        })
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the container matches. `None` when it cannot be told: the rule has a label
    /// selector and the pod's labels are unknown (`metadata` false: routed from the file name).
    pub fn matches(&self, input: &RouteInput<'_>, metadata: bool) -> Option<bool> {
        let field = |globs: &Option<Globs>, value: &str| {
            globs.as_ref().is_none_or(|g| g.patterns().iter().any(|pattern| glob_match(pattern, value)))
        };
        let names = field(&self.namespace, input.namespace)
            && field(&self.pod, input.pod)
            && field(&self.container, input.container)
            && field(&self.workload, input.workload);
        match &self.labels {
            _ if !names => Some(false),
            None => Some(true),
            Some(_) if !metadata => None,
            Some(selector) => Some(selector.matches(input.labels)),
        }
    }
}

/// `*` matches any run of characters (also none), `?` exactly one; everything else itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    // Greedy with one backtrack point: linear for the patterns names use.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn input<'a>(labels: &'a BTreeMap<String, String>) -> RouteInput<'a> {
        RouteInput {
            cluster: "prod",
            node: "n1",
            namespace: "kube-system",
            pod: "coredns-5d78c9869d-x2k4p",
            container: "coredns",
            workload: "coredns",
            workload_kind: "Deployment",
            labels,
            annotations: labels,
        }
    }

    fn spec(text: &str) -> MatcherSpec {
        toml::from_str(text).expect("spec")
    }

    #[test]
    fn fields_must_all_match() {
        let labels = BTreeMap::from([("k8s-app".to_owned(), "kube-dns".to_owned())]);
        let cases = [
            ("namespace = \"kube-*\"", Some(true)),
            ("namespace = [\"default\", \"kube-system\"]", Some(true)),
            ("namespace = \"default\"", Some(false)),
            ("namespace = \"kube-system\"\ncontainer = \"side*\"", Some(false)),
            ("pod = \"coredns-*-?????\"", Some(true)),
            ("workload = \"coredns\"", Some(true)),
            ("labels = \"k8s-app=kube-dns\"", Some(true)),
            ("labels = \"k8s-app!=kube-dns\"", Some(false)),
            ("namespace = \"other\"\nlabels = \"k8s-app=kube-dns\"", Some(false)),
        ];
        for (text, expected) in cases {
            let matcher = Matcher::new(&spec(text), "r".into()).expect("valid");
            assert_eq!(matcher.matches(&input(&labels), true), expected, "{text}");
        }
        let selector = Matcher::new(&spec("labels = \"k8s-app\""), "r".into()).expect("valid");
        assert_eq!(selector.matches(&input(&labels), false), None, "labels unknown without metadata");
        let names = Matcher::new(&spec("namespace = \"kube-system\""), "r".into()).expect("valid");
        assert_eq!(names.matches(&input(&labels), false), Some(true), "names are known from the file name");
    }

    #[test]
    fn invalid_rules_say_why() {
        let errors: Vec<String> = ["", "namespace = \"\"", "pod = []", "labels = \"a in (b\""]
            .iter()
            .map(|text| Matcher::new(&spec(text), "exclude[0]".into()).expect_err("invalid").to_string())
            .collect();
        insta::assert_snapshot!(errors.join("\n"));
        assert!(toml::from_str::<MatcherSpec>("namespaces = \"x\"").is_err(), "unknown keys are errors");
    }

    #[test]
    fn globs() {
        for (pattern, text, expected) in [
            ("*", "", true),
            ("*", "abc", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbb", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*-system", "kube-system", true),
            ("k*-*-m", "kube-sys-m", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ] {
            assert_eq!(glob_match(pattern, text), expected, "{pattern} {text}");
        }
    }

    proptest! {
        /// Against a regex built from the same glob.
        #[test]
        fn glob_matches_like_a_regex(pattern in "[ab*?]{0,8}", text in "[ab]{0,10}") {
            let regex: String = pattern.chars().map(|c| match c {
                '*' => ".*".to_owned(),
                '?' => ".".to_owned(),
                c => c.to_string(),
            }).collect();
            let expected = text_matches(&format!("^{regex}$"), &text);
            prop_assert_eq!(glob_match(&pattern, &text), expected);
        }
    }

    /// A tiny backtracking matcher for `.`, `.*` and literals (the test's own model).
    fn text_matches(regex: &str, text: &str) -> bool {
        fn go(p: &[char], t: &[char]) -> bool {
            match p {
                [] => t.is_empty(),
                ['$'] => t.is_empty(),
                ['.', '*', rest @ ..] => (0..=t.len()).any(|skip| go(rest, &t[skip..])),
                ['.', rest @ ..] => !t.is_empty() && go(rest, &t[1..]),
                [c, rest @ ..] => t.first() == Some(c) && go(rest, &t[1..]),
            }
        }
        let p: Vec<char> = regex.trim_start_matches('^').chars().collect();
        let t: Vec<char> = text.chars().collect();
        go(&p, &t)
    }
}
