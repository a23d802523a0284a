//! Kubernetes label selectors, in the syntax `kubectl -l` takes: requirements separated by
//! commas, all of which must hold.
//!
//! | requirement | holds when |
//! |---|---|
//! | `k=v`, `k==v` | label `k` is `v` |
//! | `k!=v` | label `k` is absent or not `v` |
//! | `k in (a,b)` | label `k` is `a` or `b` |
//! | `k notin (a,b)` | label `k` is absent or neither `a` nor `b` |
//! | `k` | label `k` exists |
//! | `!k` | label `k` is absent |
//!
//! Keys are `[prefix/]name` and values are label values, as the API validates them; an empty
//! selector matches everything (as in Kubernetes).

use std::collections::{BTreeMap, BTreeSet};

/// A parsed selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    NotExists(String),
}

/// A selector that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector {selector:?}: {reason}")]
pub struct SelectorError {
    /// The selector text.
    pub selector: String,
    /// What is wrong, and where.
    pub reason: String,
}

impl Selector {
    /// Parse `text`.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let error = |reason: String| SelectorError { selector: text.to_owned(), reason };
        let mut requirements = Vec::new();
        for part in split_top_level(text).map_err(error)? {
            let part = part.trim();
            if part.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(error("an empty requirement between commas; remove the extra ','".into()));
            }
            requirements.push(parse_requirement(part).map_err(error)?);
        }
        Ok(Selector { requirements })
    }

    /// The label keys the requirements read.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.requirements.iter().map(|r| match r {
            Requirement::Equals(key, _)
            | Requirement::NotEquals(key, _)
            | Requirement::In(key, _)
            | Requirement::NotIn(key, _)
            | Requirement::Exists(key)
            | Requirement::NotExists(key) => key.as_str(),
        })
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|requirement| match requirement {
            Requirement::Equals(key, value) => labels.get(key) == Some(value),
            Requirement::NotEquals(key, value) => labels.get(key) != Some(value),
            Requirement::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(key, values) => labels.get(key).is_none_or(|v| !values.contains(v)),
            Requirement::Exists(key) => labels.contains_key(key),
            Requirement::NotExists(key) => !labels.contains_key(key),
        })
    }
}

/// Split at commas outside parentheses.
fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (index, c) in text.char_indices() {
        match c {
            '(' if depth == 0 => depth = 1,
            '(' => return Err(format!("'(' at byte {index} inside a set; sets cannot nest")),
            ')' if depth == 1 => depth = 0,
            ')' => return Err(format!("')' at byte {index} closes no set")),
            ',' if depth == 0 => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("a set '(' is never closed; add ')'".into());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::NotExists(check_key(key.trim())?));
    }
    if let Some((key, value)) = part.split_once("!=") {
        return Ok(Requirement::NotEquals(check_key(key.trim())?, check_value(value.trim())?));
    }
    if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(Requirement::Equals(check_key(key.trim())?, check_value(value.trim())?));
    }
    if let Some(open) = part.find('(') {
        let head = part[..open].trim();
        let Some(set) = part[open + 1..].trim_end().strip_suffix(')') else {
            return Err(format!("{part:?}: text after the set's ')'"));
        };
        let values =
            set.split(',').map(|value| check_value(value.trim())).collect::<Result<BTreeSet<_>, _>>()?;
        let (key, operator) = head
            .rsplit_once(char::is_whitespace)
            .ok_or_else(|| format!("{part:?}: write `key in (a,b)` or `key notin (a,b)`"))?;
        let key = check_key(key.trim())?;
        return match operator {
            "in" => Ok(Requirement::In(key, values)),
            "notin" => Ok(Requirement::NotIn(key, values)),
            other => Err(format!("{part:?}: unknown set operator {other:?}; use in or notin")),
        };
    }
    if part.contains(['<', '>']) {
        return Err(format!("{part:?}: numeric comparisons (< >) are not supported for pod labels"));
    }
    Ok(Requirement::Exists(check_key(part)?))
}

/// A label key: `[prefix/]name`, the name 1–63 characters of `[A-Za-z0-9._-]` starting and
/// ending alphanumeric, the prefix a DNS subdomain.
fn check_key(key: &str) -> Result<String, String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && (prefix.is_empty()
            || prefix.len() > 253
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'))
    {
        return Err(format!(
            "label key {key:?}: its prefix must be a DNS subdomain (lowercase, digits, '.', '-')"
        ));
    }
    if name.is_empty() || name.len() > 63 || !is_name(name) {
        return Err(format!(
            "label key {key:?}: the name must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(key.to_owned())
}

/// A label value: empty, or up to 63 characters shaped like a key's name.
fn check_value(value: &str) -> Result<String, String> {
    if value.is_empty() || (value.len() <= 63 && is_name(value)) {
        return Ok(value.to_owned());
    }
    Err(format!(
        "label value {value:?}: must be empty or 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
    ))
}

fn is_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    let inner = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.iter().all(inner)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn every_operator() {
        let pod = labels(&[("app", "web"), ("tier", "front"), ("app.kubernetes.io/name", "shop")]);
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=api", false),
            ("app!=api", true),
            ("missing!=x", true),
            ("app in (api, web)", true),
            ("app in (api)", false),
            ("missing in (a)", false),
            ("app notin (api)", true),
            ("app notin (web,api)", false),
            ("missing notin (a)", true),
            ("tier", true),
            ("missing", false),
            ("!missing", true),
            ("!tier", false),
            ("app=web, tier in (front,back), !missing", true),
            ("app=web,tier=back", false),
            ("app.kubernetes.io/name=shop", true),
            ("app=", false),
            ("missing=", false),
        ];
        for (text, expected) in cases {
            let selector = Selector::parse(text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(selector.matches(&pod), expected, "{text}");
        }
    }

    #[test]
    fn error_messages() {
        let cases = [
            "app=web,,tier",
            "app in (a,b",
            "app in (a,(b))",
            "app) ",
            "app in (a) x",
            "app within (a)",
            "Bad Key=x",
            "app=not valid",
            "a/=x",
            "UPPER.example/app=x",
            "replicas>3",
            "=x",
        ];
        let report: String = cases
            .iter()
            .map(|text| match Selector::parse(text) {
                Ok(parsed) => format!("{text:?} parsed unexpectedly: {parsed:?}\n"),
                Err(error) => format!("{error}\n"),
            })
            .collect();
        insta::assert_snapshot!(report);
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in "[a-z!=(), /.-]{0,40}|\\PC{0,20}") {
            if let Ok(selector) = Selector::parse(&text) {
                selector.matches(&BTreeMap::new());
            }
        }

        /// `k=v` and `k!=v` are complements, as are `k in (..)` and `k notin (..)`.
        #[test]
        fn negations_are_complements(
            key in "[a-z]{1,3}", value in "[a-z]{1,3}", other in "[a-z]{1,3}",
            present in any::<bool>(),
        ) {
            let pod = if present { labels(&[(&key, &value)]) } else { BTreeMap::new() };
            let eq = Selector::parse(&format!("{key}={other}")).expect("valid");
            let ne = Selector::parse(&format!("{key}!={other}")).expect("valid");
            prop_assert_ne!(eq.matches(&pod), ne.matches(&pod));
            let inside = Selector::parse(&format!("{key} in ({other},{value})")).expect("valid");
            let outside = Selector::parse(&format!("{key} notin ({other},{value})")).expect("valid");
            prop_assert_ne!(inside.matches(&pod), outside.matches(&pod));
            prop_assert_eq!(inside.matches(&pod), present);
        }
    }
}
