//! Which containers are shipped (`include` / `exclude`), and which multiline detector each
//! one gets (`multiline_rules`, `multiline`), decided once per container like its names.
//!
//! Shipping, in order; the first that applies decides:
//! 1. pod annotation `shipper.io/exclude: "true"` → excluded (`annotation:exclude`);
//! 2. pod annotation `shipper.io/exclude-containers: "a,b"` naming the container → excluded
//!    (`annotation:exclude-containers`);
//! 3. the first `exclude` rule that matches → excluded (its name);
//! 4. `include` rules exist and none matches → excluded (`not_included`);
//! 5. otherwise shipped (by the first matching `include` rule's name, or `default`).
//!
//! So exclude always wins. Without metadata (the API did not answer within `metadata_wait`)
//! annotations and labels are unknown: a rule that needs labels neither excludes nor fails
//! to include, so a container is never dropped on a guess (`metadata_missing`).
//!
//! Multiline, in order: annotation `shipper.io/multiline.<container>`, annotation
//! `shipper.io/multiline`, the first matching `multiline_rules` entry, the `multiline`
//! default. The value `none` turns multiline off.

use super::RouteInput;
use super::matcher::{Matcher, MatcherError, MatcherSpec};

/// Pod annotation: `"true"` leaves every container of the pod out.
pub const EXCLUDE_ANNOTATION: &str = "shipper.io/exclude";
/// Pod annotation: a comma-separated list of container names to leave out.
pub const EXCLUDE_CONTAINERS_ANNOTATION: &str = "shipper.io/exclude-containers";
/// Pod annotation: the multiline detector of every container of the pod.
pub const MULTILINE_ANNOTATION: &str = "shipper.io/multiline";
/// Detector name that turns multiline off.
pub const NO_MULTILINE: &str = "none";

/// Whether a container is shipped, and which rule said so.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// Its lines are shipped (else read, counted as excluded, and skipped).
    pub shipped: bool,
    /// The deciding rule, as in `shipper_lines_excluded_total{rule}`.
    pub rule: String,
}

/// The `include` and `exclude` rules.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    include: Vec<Matcher>,
    exclude: Vec<Matcher>,
}

impl Filter {
    /// Record the label keys the rules read (the `shipper.io/…` annotations are always kept).
    pub fn metadata_keys(&self, keys: &mut super::MetadataKeys) {
        for matcher in self.include.iter().chain(&self.exclude) {
            matcher.metadata_keys(keys);
        }
    }

    /// Compile both lists; unnamed rules are called `include[i]` / `exclude[i]`.
    pub fn new(include: &[MatcherSpec], exclude: &[MatcherSpec]) -> Result<Self, MatcherError> {
        Ok(Filter { include: compile(include, "include")?, exclude: compile(exclude, "exclude")? })
    }

    /// Decide for one container (`metadata`: its pod's labels and annotations are known).
    pub fn decide(&self, input: &RouteInput<'_>, metadata: bool) -> Decision {
        let excluded = |rule: &str| Decision { shipped: false, rule: rule.to_owned() };
        if input.annotations.get(EXCLUDE_ANNOTATION).is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return excluded("annotation:exclude");
        }
        if input
            .annotations
            .get(EXCLUDE_CONTAINERS_ANNOTATION)
            .is_some_and(|list| list.split(',').any(|name| name.trim() == input.container))
        {
            return excluded("annotation:exclude-containers");
        }
        if let Some(rule) = self.exclude.iter().find(|rule| rule.matches(input, metadata) == Some(true)) {
            return excluded(rule.name());
        }
        if self.include.is_empty() {
            return Decision { shipped: true, rule: "default".into() };
        }
        let mut unknown = false;
        for rule in &self.include {
            match rule.matches(input, metadata) {
                Some(true) => return Decision { shipped: true, rule: rule.name().to_owned() },
                None => unknown = true,
                Some(false) => {}
            }
        }
        if unknown {
            Decision { shipped: true, rule: "metadata_missing".into() }
        } else {
            excluded("not_included")
        }
    }
}

/// One `multiline_rules` entry as written in the config.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineRuleSpec {
    /// Detector name: a built-in (`java`, `python`, `go`, `ruby`, `dotnet`), a
    /// `multiline_detectors` name, or `none`.
    pub detector: String,
    /// Which containers.
    #[serde(rename = "match")]
    pub matcher: MatcherSpec,
}

/// The multiline detector choice per container.
#[derive(Debug, Clone, Default)]
pub struct MultilineChoice {
    rules: Vec<(Matcher, String)>,
    default: Option<String>,
}

/// The detector a container gets and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MultilineDecision {
    /// The detector's name.
    pub detector: String,
    /// What chose it: an annotation key, a rule name, or `multiline`.
    pub rule: String,
}

impl MultilineChoice {
    /// Record the label keys the rules read.
    pub fn metadata_keys(&self, keys: &mut super::MetadataKeys) {
        for (matcher, _) in &self.rules {
            matcher.metadata_keys(keys);
        }
    }

    /// Compile the rules; `default` is the `multiline` setting (`none` or absent: off).
    pub fn new(rules: &[MultilineRuleSpec], default: Option<&str>) -> Result<Self, MatcherError> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                Ok((Matcher::new(&rule.matcher, format!("multiline_rules[{index}]"))?, rule.detector.clone()))
            })
            .collect::<Result<_, MatcherError>>()?;
        Ok(MultilineChoice { rules, default: default.filter(|d| *d != NO_MULTILINE).map(str::to_owned) })
    }

    /// Every detector name the rules and the default refer to (for validation).
    pub fn named_detectors(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|(_, detector)| detector.as_str()).chain(self.default.as_deref())
    }

    /// The detector for one container; `None` when multiline is off for it.
    pub fn choose(&self, input: &RouteInput<'_>, metadata: bool) -> Option<MultilineDecision> {
        let decision =
            |detector: &str, rule: &str| MultilineDecision { detector: detector.into(), rule: rule.into() };
        let per_container = format!("{MULTILINE_ANNOTATION}.{}", input.container);
        let chosen = if let Some(value) = input.annotations.get(&per_container) {
            decision(value.trim(), &per_container)
        } else if let Some(value) = input.annotations.get(MULTILINE_ANNOTATION) {
            decision(value.trim(), MULTILINE_ANNOTATION)
        } else if let Some((rule, detector)) =
            self.rules.iter().find(|(rule, _)| rule.matches(input, metadata) == Some(true))
        {
            decision(detector, rule.name())
        } else {
            decision(self.default.as_deref()?, "multiline")
        };
        (chosen.detector != NO_MULTILINE).then_some(chosen)
    }
}

fn compile(specs: &[MatcherSpec], list: &str) -> Result<Vec<Matcher>, MatcherError> {
    specs.iter().enumerate().map(|(index, spec)| Matcher::new(spec, format!("{list}[{index}]"))).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn specs(text: &str) -> Vec<MatcherSpec> {
        #[derive(serde::Deserialize)]
        struct List {
            rules: Vec<MatcherSpec>,
        }
        toml::from_str::<List>(&format!("rules = {text}")).expect("rules").rules
    }

    struct Pod {
        namespace: &'static str,
        container: &'static str,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    }

    impl Pod {
        fn new(namespace: &'static str, container: &'static str) -> Self {
            Pod { namespace, container, labels: BTreeMap::new(), annotations: BTreeMap::new() }
        }
        fn label(mut self, key: &str, value: &str) -> Self {
            self.labels.insert(key.into(), value.into());
            self
        }
        fn annotation(mut self, key: &str, value: &str) -> Self {
            self.annotations.insert(key.into(), value.into());
            self
        }
        fn input(&self) -> RouteInput<'_> {
            RouteInput {
                cluster: "c",
                node: "n",
                namespace: self.namespace,
                pod: "p-0",
                container: self.container,
                workload: "p",
                workload_kind: "StatefulSet",
                labels: &self.labels,
                annotations: &self.annotations,
            }
        }
    }

    fn decide(filter: &Filter, pod: &Pod, metadata: bool) -> (bool, String) {
        let decision = filter.decide(&pod.input(), metadata);
        (decision.shipped, decision.rule)
    }

    #[test]
    fn exclude_wins_and_rules_are_named() {
        let filter = Filter::new(
            &specs(r#"[{ name = "shop", namespace = "shop" }, { labels = "tier=front" }]"#),
            &specs(r#"[{ name = "no-debug", labels = "debug=true" }, { container = "istio-*" }]"#),
        )
        .expect("valid");
        let cases = [
            (Pod::new("shop", "app"), (true, "shop")),
            (Pod::new("other", "app").label("tier", "front"), (true, "include[1]")),
            (Pod::new("other", "app"), (false, "not_included")),
            (Pod::new("shop", "app").label("debug", "true"), (false, "no-debug")),
            (Pod::new("shop", "istio-proxy"), (false, "exclude[1]")),
            (Pod::new("shop", "app").annotation(EXCLUDE_ANNOTATION, "true"), (false, "annotation:exclude")),
            (Pod::new("shop", "app").annotation(EXCLUDE_ANNOTATION, "false"), (true, "shop")),
            (
                Pod::new("shop", "side").annotation(EXCLUDE_CONTAINERS_ANNOTATION, "a, side"),
                (false, "annotation:exclude-containers"),
            ),
            (Pod::new("shop", "app").annotation(EXCLUDE_CONTAINERS_ANNOTATION, "a, side"), (true, "shop")),
        ];
        for (pod, (shipped, rule)) in cases {
            assert_eq!(
                decide(&filter, &pod, true),
                (shipped, rule.to_owned()),
                "{}/{}",
                pod.namespace,
                pod.container
            );
        }
        let none = Filter::default();
        assert_eq!(decide(&none, &Pod::new("x", "y"), true), (true, "default".to_owned()));
    }

    #[test]
    fn unknown_labels_never_drop_a_container() {
        let exclude = Filter::new(&[], &specs(r#"[{ labels = "!keep" }]"#)).expect("valid");
        let pod = Pod::new("shop", "app");
        assert_eq!(decide(&exclude, &pod, true), (false, "exclude[0]".to_owned()));
        assert_eq!(decide(&exclude, &pod, false), (true, "default".to_owned()));
        let include = Filter::new(&specs(r#"[{ labels = "keep" }]"#), &[]).expect("valid");
        assert_eq!(decide(&include, &pod, true), (false, "not_included".to_owned()));
        assert_eq!(decide(&include, &pod, false), (true, "metadata_missing".to_owned()));
    }

    #[test]
    fn multiline_precedence() {
        let rules: Vec<MultilineRuleSpec> = toml::from_str::<BTreeMap<String, Vec<MultilineRuleSpec>>>(
            r#"rules = [{ detector = "python", match = { namespace = "ml" } }, { detector = "none", match = { container = "nginx" } }]"#,
        )
        .expect("rules")
        .remove("rules")
        .unwrap_or_default();
        let choice = MultilineChoice::new(&rules, Some("java")).expect("valid");
        let chosen = |pod: &Pod| choice.choose(&pod.input(), true).map(|d| (d.detector, d.rule));
        let pair = |d: &str, r: &str| Some((d.to_owned(), r.to_owned()));
        assert_eq!(chosen(&Pod::new("shop", "app")), pair("java", "multiline"));
        assert_eq!(chosen(&Pod::new("ml", "app")), pair("python", "multiline_rules[0]"));
        assert_eq!(chosen(&Pod::new("shop", "nginx")), None);
        assert_eq!(
            chosen(&Pod::new("ml", "app").annotation(MULTILINE_ANNOTATION, "go")),
            pair("go", MULTILINE_ANNOTATION)
        );
        let per = format!("{MULTILINE_ANNOTATION}.app");
        let both = Pod::new("ml", "app").annotation(MULTILINE_ANNOTATION, "go").annotation(&per, "ruby");
        assert_eq!(chosen(&both), pair("ruby", &per));
        assert_eq!(chosen(&Pod::new("ml", "app").annotation(&per, "none")), None);
        let off = MultilineChoice::new(&[], Some("none")).expect("valid");
        assert_eq!(off.choose(&Pod::new("a", "b").input(), true), None);
        assert_eq!(choice.named_detectors().collect::<Vec<_>>(), ["python", "none", "java"]);
    }
}
