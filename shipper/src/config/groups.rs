//! Settings of the log groups the shipper creates: retention, class, KMS key, tags, with
//! per-glob overrides (`[[group_settings]]`, first match wins), and when to apply them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The only retention periods CloudWatch accepts (PutRetentionPolicy `retentionInDays`).
pub const VALID_RETENTION_DAYS: [u32; 22] =
    [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

/// Most tags one log group may carry (CloudWatch: 50).
pub const MAX_TAGS: usize = 50;

/// A log group's class, fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogGroupClass {
    /// All features.
    #[serde(rename = "STANDARD")]
    Standard,
    /// Cheaper ingestion; no live tail, metric filters, subscription filters or anomaly
    /// detection.
    #[serde(rename = "INFREQUENT_ACCESS")]
    InfrequentAccess,
}

impl LogGroupClass {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LogGroupClass::Standard => "STANDARD",
            LogGroupClass::InfrequentAccess => "INFREQUENT_ACCESS",
        }
    }
}

impl fmt::Display for LogGroupClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogGroupClass {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "STANDARD" => Ok(LogGroupClass::Standard),
            "INFREQUENT_ACCESS" => Ok(LogGroupClass::InfrequentAccess),
            _ => Err("use STANDARD or INFREQUENT_ACCESS".into()),
        }
    }
}

/// Which groups get the retention policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionApply {
    /// Only groups this shipper created.
    #[default]
    Created,
    /// Also groups that already exist (checked once per group per process lifetime).
    Always,
}

impl FromStr for RetentionApply {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "created" => Ok(RetentionApply::Created),
            "always" => Ok(RetentionApply::Always),
            _ => Err("use created or always".into()),
        }
    }
}

/// The settings one group gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GroupSettings {
    /// `None`: never expire (no PutRetentionPolicy).
    pub retention_days: Option<u32>,
    /// `None`: CloudWatch's default (STANDARD).
    pub log_group_class: Option<LogGroupClass>,
    /// `None`: CloudWatch-owned keys.
    pub kms_key_id: Option<String>,
    /// Tags set at creation.
    pub tags: BTreeMap<String, String>,
}

/// One `[[group_settings]]` rule as written: a glob on the group name and the settings it
/// overrides (absent keys keep the global value; `tags` are added to the global tags, the
/// rule's value winning for a key in both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRuleSpec {
    /// Glob on the log group name (`*`, `?`, `[..]`).
    pub group: String,
    /// Overrides `retention_days`.
    pub retention_days: Option<u32>,
    /// Overrides `log_group_class`.
    pub log_group_class: Option<String>,
    /// Overrides `kms_key_id`.
    pub kms_key_id: Option<String>,
    /// Added to `tags`.
    pub tags: Option<BTreeMap<String, String>>,
}

/// A rule with its settings resolved against the global ones.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedRule {
    /// The glob as written (`*` for the global default).
    pub group: String,
    /// What a matching group gets.
    #[serde(flatten)]
    pub settings: GroupSettings,
    #[serde(skip)]
    pattern: glob::Pattern,
}

/// The resolved table: rules in order, then the default. Serialises as that list.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct GroupPolicy {
    rules: Vec<ResolvedRule>,
}

/// Name of the entry that applies when no rule matches.
pub const DEFAULT_RULE: &str = "*";

impl Default for GroupPolicy {
    fn default() -> Self {
        Self::new(GroupSettings::default(), Vec::new())
    }
}

impl GroupPolicy {
    fn new(default: GroupSettings, mut rules: Vec<ResolvedRule>) -> Self {
        let pattern = glob::Pattern::new(DEFAULT_RULE).unwrap_or_default();
        rules.push(ResolvedRule { group: DEFAULT_RULE.into(), settings: default, pattern });
        Self { rules }
    }

    /// A policy giving every group `settings` (tests, embedders).
    pub fn uniform(settings: GroupSettings) -> Self {
        Self::new(settings, Vec::new())
    }

    /// The rule (glob) and settings for `group`: the first matching rule, else the default.
    pub fn resolve(&self, group: &str) -> &ResolvedRule {
        let options = glob::MatchOptions { require_literal_separator: false, ..Default::default() };
        self.rules
            .iter()
            .find(|r| r.pattern.matches_with(group, options))
            .unwrap_or_else(|| &self.rules[self.rules.len() - 1])
    }

    /// The resolved entries, default last.
    pub fn rules(&self) -> &[ResolvedRule] {
        &self.rules
    }

    /// Whether any group gets a retention period.
    pub fn any_retention(&self) -> bool {
        self.rules.iter().any(|r| r.settings.retention_days.is_some())
    }
}

/// The raw group settings from every layer, before validation.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawGroupSettings {
    pub retention_days: Option<String>,
    pub log_group_class: Option<String>,
    pub kms_key_id: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    pub group_settings: Vec<GroupRuleSpec>,
}

fn invalid(key: &'static str, value: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, value: value.into(), reason: reason.into() }
}

/// A retention value CloudWatch accepts, or an error listing the valid ones.
pub fn retention(key: &'static str, days: u32) -> Result<u32, ConfigError> {
    if VALID_RETENTION_DAYS.contains(&days) {
        return Ok(days);
    }
    let valid: Vec<String> = VALID_RETENTION_DAYS.iter().map(u32::to_string).collect();
    Err(invalid(key, days.to_string(), format!("CloudWatch accepts only {}", valid.join(", "))))
}

fn check_tags(key: &'static str, tags: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    if tags.len() > MAX_TAGS {
        return Err(invalid(key, format!("{} tags", tags.len()), format!("at most {MAX_TAGS} tags")));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(invalid(key, k.clone(), "tag keys have 1 to 128 characters"));
        }
        if k.starts_with("aws:") {
            return Err(invalid(key, k.clone(), "tag keys must not start with aws: (reserved)"));
        }
        if v.chars().count() > 256 {
            return Err(invalid(key, v.clone(), "tag values have at most 256 characters"));
        }
    }
    Ok(())
}

fn kms(key: &'static str, value: Option<String>) -> Result<Option<String>, ConfigError> {
    match value.map(|v| v.trim().to_owned()) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) if v.starts_with("arn:") => Ok(Some(v)),
        // CreateLogGroup takes only a key ARN, never an alias or a bare key id.
        Some(v) => Err(invalid(key, v, "give the KMS key's ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)")),
    }
}

impl RawGroupSettings {
    /// Validate into the resolved table.
    pub(crate) fn resolve(self) -> Result<GroupPolicy, ConfigError> {
        let retention_days = match self.retention_days.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
        {
            None => None,
            Some(v) => {
                let days = v.parse::<u32>().map_err(|_| {
                    let valid: Vec<String> = VALID_RETENTION_DAYS.iter().map(u32::to_string).collect();
                    invalid(
                        "SHIPPER_RETENTION_DAYS",
                        v.clone(),
                        format!("a number of days; CloudWatch accepts only {}", valid.join(", ")),
                    )
                })?;
                Some(retention("SHIPPER_RETENTION_DAYS", days)?)
            }
        };
        let log_group_class = match self.log_group_class.filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(v) => {
                Some(v.parse().map_err(|reason: String| invalid("SHIPPER_LOG_GROUP_CLASS", v, reason))?)
            }
        };
        let tags = self.tags.unwrap_or_default();
        check_tags("SHIPPER_TAGS", &tags)?;
        let default = GroupSettings {
            retention_days,
            log_group_class,
            kms_key_id: kms("SHIPPER_KMS_KEY_ID", self.kms_key_id)?,
            tags,
        };
        let key = "SHIPPER_GROUP_SETTINGS";
        let mut rules = Vec::with_capacity(self.group_settings.len());
        for spec in self.group_settings {
            let pattern = glob::Pattern::new(&spec.group)
                .map_err(|e| invalid(key, spec.group.clone(), format!("not a glob: {e}")))?;
            let mut settings = default.clone();
            if let Some(days) = spec.retention_days {
                settings.retention_days = Some(retention(key, days)?);
            }
            if let Some(class) = spec.log_group_class {
                settings.log_group_class =
                    Some(class.parse().map_err(|reason: String| invalid(key, class, reason))?);
            }
            if spec.kms_key_id.is_some() {
                settings.kms_key_id = kms(key, spec.kms_key_id)?;
            }
            if let Some(tags) = spec.tags {
                settings.tags.extend(tags);
                check_tags(key, &settings.tags)?;
            }
            rules.push(ResolvedRule { group: spec.group, settings, pattern });
        }
        Ok(GroupPolicy::new(default, rules))
    }
}

/// A TOML inline table given as an env value (`{ team = "platform" }`).
pub(crate) fn toml_map(key: &'static str, text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    #[derive(serde::Deserialize)]
    struct Map {
        map: BTreeMap<String, String>,
    }
    toml::from_str::<Map>(&format!("map = {text}")).map(|m| m.map).map_err(|e| {
        invalid(
            key,
            text,
            format!(
                "{}; write a TOML inline table, e.g. {{ team = \"platform\", env = \"prod\" }}",
                e.message()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(rules: &str) -> RawGroupSettings {
        #[derive(Deserialize)]
        struct File {
            group_settings: Vec<GroupRuleSpec>,
        }
        let file: File = toml::from_str(rules).expect("rules parse");
        RawGroupSettings {
            retention_days: Some("30".into()),
            log_group_class: None,
            kms_key_id: None,
            tags: Some(BTreeMap::from([("team".into(), "platform".into())])),
            group_settings: file.group_settings,
        }
    }

    #[test]
    fn first_matching_rule_wins_and_the_default_catches_the_rest() {
        let policy = raw(r#"
            [[group_settings]]
            group = "k8s_prod_payments_*"
            retention_days = 3653
            log_group_class = "STANDARD"
            tags = { pci = "yes" }
            [[group_settings]]
            group = "k8s_prod_*"
            retention_days = 90
            [[group_settings]]
            group = "k8s_*_debug_*"
            log_group_class = "INFREQUENT_ACCESS"
            retention_days = 1
            "#)
        .resolve()
        .expect("valid");
        let payments = policy.resolve("k8s_prod_payments_api_app");
        assert_eq!(payments.group, "k8s_prod_payments_*");
        assert_eq!(payments.settings.retention_days, Some(3653));
        assert_eq!(
            payments.settings.tags,
            BTreeMap::from([("pci".into(), "yes".into()), ("team".into(), "platform".into())])
        );
        // The broader prod rule comes first, so prod debug groups take it.
        assert_eq!(policy.resolve("k8s_prod_debug_x").settings.retention_days, Some(90));
        let debug = policy.resolve("k8s_dev_debug_x");
        assert_eq!(debug.settings.log_group_class, Some(LogGroupClass::InfrequentAccess));
        let other = policy.resolve("k8s_dev_shop_web_nginx");
        assert_eq!(other.group, DEFAULT_RULE);
        assert_eq!(other.settings.retention_days, Some(30));
        assert_eq!(policy.rules().len(), 4);
    }

    #[test]
    fn invalid_retention_lists_the_valid_values() {
        let err = RawGroupSettings { retention_days: Some("31".into()), ..Default::default() }
            .resolve()
            .expect_err("31 is not valid");
        let text = err.to_string();
        assert!(text.starts_with("SHIPPER_RETENTION_DAYS"), "{text}");
        assert!(text.contains("1, 3, 5, 7, 14, 30, 60, 90"), "{text}");
        assert!(text.contains("3653"), "{text}");
        let err = raw("[[group_settings]]\ngroup = \"x*\"\nretention_days = 2\n").resolve().expect_err("2");
        assert!(err.to_string().starts_with("SHIPPER_GROUP_SETTINGS"), "{err}");
        for days in VALID_RETENTION_DAYS {
            assert_eq!(retention("k", days).expect("valid"), days);
        }
    }

    #[test]
    fn bad_class_kms_tags_and_globs_are_errors_naming_the_key() {
        let cases = [
            (
                RawGroupSettings { log_group_class: Some("COLD".into()), ..Default::default() },
                "SHIPPER_LOG_GROUP_CLASS",
            ),
            (
                RawGroupSettings { kms_key_id: Some("alias/x".into()), ..Default::default() },
                "SHIPPER_KMS_KEY_ID",
            ),
            (
                RawGroupSettings {
                    tags: Some(BTreeMap::from([("aws:x".into(), "v".into())])),
                    ..Default::default()
                },
                "SHIPPER_TAGS",
            ),
            (raw("[[group_settings]]\ngroup = \"[\"\n"), "SHIPPER_GROUP_SETTINGS"),
        ];
        for (raw, key) in cases {
            let err = raw.resolve().expect_err(key);
            assert!(err.to_string().starts_with(key), "{key}: {err}");
        }
    }

    #[test]
    fn tags_come_from_a_toml_inline_table() {
        let tags = toml_map("SHIPPER_TAGS", r#"{ team = "platform", "cost-center" = "42" }"#).expect("valid");
        assert_eq!(tags.get("cost-center").map(String::as_str), Some("42"));
        assert!(toml_map("SHIPPER_TAGS", "team=platform").is_err());
    }
}
