//! Validation: turn merged `Settings` into the effective `Config`, or say which key is wrong
//! and how to fix it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::Settings;
use super::groups::{GroupPolicy, RawGroupSettings, RetentionApply, toml_map};
use super::role::AssumeRole;
use crate::multiline::{CustomDetector, Detector, Limits, MultilineError};
use crate::route::{
    DEFAULT_GROUP_TEMPLATE, DEFAULT_STREAM_TEMPLATE, Filter, MatcherSpec, MessageField, MessageFormat,
    MultilineChoice, MultilineRuleSpec, NO_MULTILINE, Router, Routing, RoutingSettings,
};
use crate::source::ReadFrom;
use crate::telemetry::LogFormat;

/// A configuration problem, naming the key (env var) and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required setting is absent.
    #[error("{key} is required: {fix}")]
    Missing {
        /// The env var / flag / file key.
        key: &'static str,
        /// How to provide it.
        fix: &'static str,
    },
    /// A setting has a value that cannot be used.
    #[error("{key}={value:?} is invalid: {reason}")]
    Invalid {
        /// The env var / flag / file key.
        key: &'static str,
        /// The value given.
        value: String,
        /// Why, and what would be valid.
        reason: String,
    },
    /// The config file cannot be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The effective configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// `CLUSTER_NAME`
    pub cluster_name: String,
    /// `NODE_NAME`
    pub node_name: String,
    /// `AWS_REGION`, if set (else the SDK chain decides).
    pub aws_region: Option<String>,
    /// `SHIPPER_LOG_PATHS`
    pub log_paths: Vec<String>,
    /// `SHIPPER_STATE_DIR`
    pub state_dir: PathBuf,
    /// `SHIPPER_SPOOL_MAX_BYTES`
    pub spool_max_bytes: u64,
    /// `SHIPPER_FLUSH_INTERVAL`
    #[serde(with = "humantime_serde_compat")]
    pub flush_interval: Duration,
    /// `SHIPPER_FLUSH_INTERVAL_MAX`: the bound of `flush_interval`'s stretching while
    /// PutLogEvents is throttled (equal to `flush_interval`: never stretched).
    #[serde(with = "humantime_serde_compat")]
    pub flush_interval_max: Duration,
    /// `SHIPPER_LISTEN`
    pub listen: SocketAddr,
    /// `SHIPPER_LOG_FORMAT`
    pub log_format: LogFormat,
    /// `SHIPPER_GROUP_TEMPLATE`
    pub group_template: String,
    /// `SHIPPER_STREAM_TEMPLATE`
    pub stream_template: String,
    /// `SHIPPER_METADATA_WAIT`
    #[serde(with = "humantime_serde_compat")]
    pub metadata_wait: Duration,
    /// `SHIPPER_SHUTDOWN_GRACE`
    #[serde(with = "humantime_serde_compat")]
    pub shutdown_grace: Duration,
    /// `SHIPPER_MAX_CONCURRENCY`
    pub max_concurrency: usize,
    /// `SHIPPER_MESSAGE_FORMAT`
    pub message_format: MessageFormat,
    /// `SHIPPER_MESSAGE_FIELDS`
    pub message_fields: Vec<MessageField>,
    /// `SHIPPER_INCLUDE`
    pub include: Vec<MatcherSpec>,
    /// `SHIPPER_EXCLUDE`
    pub exclude: Vec<MatcherSpec>,
    /// `SHIPPER_MULTILINE` (`None`: off unless a rule or annotation says otherwise)
    pub multiline: Option<String>,
    /// `SHIPPER_MULTILINE_RULES`
    pub multiline_rules: Vec<MultilineRuleSpec>,
    /// `SHIPPER_MULTILINE_DETECTORS`
    pub multiline_detectors: Vec<CustomDetector>,
    /// `SHIPPER_MULTILINE_FLUSH_TIMEOUT`
    #[serde(with = "humantime_serde_compat")]
    pub multiline_flush_timeout: Duration,
    /// `SHIPPER_MULTILINE_MAX_LINES`
    pub multiline_max_lines: usize,
    /// `SHIPPER_MULTILINE_MAX_BYTES`
    pub multiline_max_bytes: usize,
    /// `SHIPPER_READ_FROM`
    pub read_from: ReadFrom,
    /// `SHIPPER_IGNORE_OLDER` (`None`: off)
    #[serde(with = "humantime_serde_option")]
    pub ignore_older: Option<Duration>,
    /// `SHIPPER_RETENTION_DAYS`, `SHIPPER_LOG_GROUP_CLASS`, `SHIPPER_KMS_KEY_ID`,
    /// `SHIPPER_TAGS` and `SHIPPER_GROUP_SETTINGS`, resolved: the rules in order, each with
    /// the settings a matching group gets, then the default (`group = "*"`).
    pub group_settings: GroupPolicy,
    /// `SHIPPER_RETENTION_APPLY`
    pub retention_apply: RetentionApply,
    /// `SHIPPER_CREATE_GROUPS`
    pub create_groups: bool,
    /// `SHIPPER_ROLE_ARN`, `SHIPPER_EXTERNAL_ID`, `SHIPPER_ROLE_SESSION_NAME` (`None`: the
    /// default chain's own identity writes).
    pub assume_role: Option<AssumeRole>,
}

impl Config {
    /// The routing settings, compiled (validated by [`Settings::resolve`], so this only fails
    /// for a `Config` built by hand).
    pub fn routing(&self) -> Result<Routing, crate::route::RoutingError> {
        Routing::new(&RoutingSettings {
            group_template: &self.group_template,
            stream_template: &self.stream_template,
            include: &self.include,
            exclude: &self.exclude,
            multiline_rules: &self.multiline_rules,
            multiline: self.multiline.as_deref(),
            message_format: self.message_format,
            message_fields: &self.message_fields,
        })
    }

    /// The limits built-in detectors get (custom ones may override them).
    pub fn multiline_limits(&self) -> Limits {
        Limits {
            max_lines: self.multiline_max_lines,
            max_bytes: self.multiline_max_bytes,
            flush_timeout: self.multiline_flush_timeout,
        }
    }

    /// Every detector a container may be given, by name: the built-ins and the custom ones.
    pub fn detectors(&self) -> Result<HashMap<String, Detector>, MultilineError> {
        let limits = self.multiline_limits();
        let mut detectors: HashMap<String, Detector> = Detector::BUILTIN
            .iter()
            .filter_map(|name| Detector::builtin(name, limits).map(|d| ((*name).to_owned(), d)))
            .collect();
        for spec in &self.multiline_detectors {
            detectors.insert(spec.name.clone(), Detector::custom(spec, limits)?);
        }
        Ok(detectors)
    }

    /// Things that are valid but probably not what an operator wants (`shipper check`).
    pub fn warnings(&self) -> Vec<String> {
        match self.routing() {
            Ok(routing) => routing.router().warnings(),
            Err(e) => vec![e.to_string()],
        }
    }
}

/// Defaults (contract values where the contract names one).
pub mod defaults {
    /// `SHIPPER_LOG_PATHS`
    pub const LOG_PATHS: &str = "/var/log/containers/*.log";
    /// `SHIPPER_STATE_DIR`
    pub const STATE_DIR: &str = "/var/lib/shipper";
    /// `SHIPPER_SPOOL_MAX_BYTES`
    pub const SPOOL_MAX_BYTES: &str = "1GiB";
    /// `SHIPPER_FLUSH_INTERVAL`
    pub const FLUSH_INTERVAL: &str = "1s";
    /// `SHIPPER_FLUSH_INTERVAL_MAX`
    pub const FLUSH_INTERVAL_MAX: &str = "30s";
    /// `SHIPPER_LISTEN`
    pub const LISTEN: &str = "0.0.0.0:2021";
    /// `SHIPPER_METADATA_WAIT`
    pub const METADATA_WAIT: &str = "30s";
    /// `SHIPPER_SHUTDOWN_GRACE`
    pub const SHUTDOWN_GRACE: &str = "10s";
    /// `SHIPPER_MAX_CONCURRENCY`
    pub const MAX_CONCURRENCY: usize = 32;
    /// `SHIPPER_MULTILINE_FLUSH_TIMEOUT`
    pub const MULTILINE_FLUSH_TIMEOUT: &str = "1s";
    /// `SHIPPER_MULTILINE_MAX_LINES`
    pub const MULTILINE_MAX_LINES: usize = 1000;
    /// `SHIPPER_MULTILINE_MAX_BYTES`: one CloudWatch event.
    pub const MULTILINE_MAX_BYTES: &str = "1MiB";
}

/// A TOML array given as an env value (`[{ namespace = "kube-system" }]`).
fn toml_list<T: serde::de::DeserializeOwned>(key: &'static str, text: &str) -> Result<Vec<T>, ConfigError> {
    #[derive(serde::Deserialize)]
    struct List<T> {
        list: Vec<T>,
    }
    toml::from_str::<List<T>>(&format!("list = {text}")).map(|l| l.list).map_err(|e| ConfigError::Invalid {
        key,
        value: text.to_owned(),
        reason: format!(
            "{}; write a TOML array of inline tables, e.g. [{{ namespace = \"kube-system\" }}, {{ labels = \"logging=off\" }}]",
            e.message()
        ),
    })
}

fn byte_size(key: &'static str, value: Option<String>, default: &str) -> Result<u64, ConfigError> {
    let raw = value.unwrap_or_else(|| default.to_owned());
    raw.trim().parse::<bytesize::ByteSize>().map(|size| size.as_u64()).map_err(|e| ConfigError::Invalid {
        key,
        value: raw.clone(),
        reason: format!("{e}; use a size like \"256KiB\" or \"1MiB\""),
    })
}

mod humantime_serde_option {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }
}

mod humantime_serde_compat {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

fn duration(key: &'static str, value: Option<String>, default: &str) -> Result<Duration, ConfigError> {
    let raw = value.unwrap_or_else(|| default.to_owned());
    let d = humantime::parse_duration(raw.trim()).map_err(|e| ConfigError::Invalid {
        key,
        value: raw.clone(),
        reason: format!("{e}; use a duration like \"500ms\", \"1s\" or \"2m\""),
    })?;
    if d.is_zero() {
        return Err(ConfigError::Invalid { key, value: raw, reason: "must be greater than zero".into() });
    }
    Ok(d)
}

fn required(key: &'static str, value: Option<String>, fix: &'static str) -> Result<String, ConfigError> {
    match value.map(|v| v.trim().to_owned()) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ConfigError::Missing { key, fix }),
    }
}

impl Settings {
    /// Validate and apply defaults.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let cluster_name = required(
            "CLUSTER_NAME",
            self.cluster_name,
            "set CLUSTER_NAME (or --cluster-name, or cluster_name in the config file) to your cluster's name",
        )?;
        let node_name = required(
            "NODE_NAME",
            self.node_name,
            "set NODE_NAME from the downward API (fieldRef spec.nodeName) or --node-name",
        )?;

        let raw_paths = self.log_paths.unwrap_or_else(|| defaults::LOG_PATHS.to_owned());
        let log_paths: Vec<String> =
            raw_paths.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        if log_paths.is_empty() {
            return Err(ConfigError::Invalid {
                key: "SHIPPER_LOG_PATHS",
                value: raw_paths,
                reason: "no glob given; use e.g. /var/log/containers/*.log".into(),
            });
        }
        for g in &log_paths {
            if let Err(e) = glob::Pattern::new(g) {
                return Err(ConfigError::Invalid {
                    key: "SHIPPER_LOG_PATHS",
                    value: g.clone(),
                    reason: e.to_string(),
                });
            }
        }

        let raw_size = self.spool_max_bytes.unwrap_or_else(|| defaults::SPOOL_MAX_BYTES.to_owned());
        let spool_max_bytes = raw_size
            .trim()
            .parse::<bytesize::ByteSize>()
            .map_err(|e| ConfigError::Invalid {
                key: "SHIPPER_SPOOL_MAX_BYTES",
                value: raw_size.clone(),
                reason: format!("{e}; use a size like \"1GiB\" or \"512MiB\""),
            })?
            .as_u64();
        if spool_max_bytes < 4 * 1024 * 1024 {
            return Err(ConfigError::Invalid {
                key: "SHIPPER_SPOOL_MAX_BYTES",
                value: raw_size,
                reason: "must be at least 4MiB (a few full PutLogEvents batches)".into(),
            });
        }

        let raw_listen = self.listen.unwrap_or_else(|| defaults::LISTEN.to_owned());
        let listen = raw_listen.trim().parse::<SocketAddr>().map_err(|e| ConfigError::Invalid {
            key: "SHIPPER_LISTEN",
            value: raw_listen.clone(),
            reason: format!("{e}; use host:port like 0.0.0.0:2021"),
        })?;

        let log_format = match self.log_format {
            None => LogFormat::default(),
            Some(v) => v.parse::<LogFormat>().map_err(|reason| ConfigError::Invalid {
                key: "SHIPPER_LOG_FORMAT",
                value: v,
                reason,
            })?,
        };

        let group_template = self.group_template.unwrap_or_else(|| DEFAULT_GROUP_TEMPLATE.to_owned());
        let stream_template = self.stream_template.unwrap_or_else(|| DEFAULT_STREAM_TEMPLATE.to_owned());
        if let Err(e) = Router::new(&group_template, DEFAULT_STREAM_TEMPLATE) {
            return Err(ConfigError::Invalid {
                key: "SHIPPER_GROUP_TEMPLATE",
                value: group_template,
                reason: e.reason,
            });
        }
        if let Err(e) = Router::new(DEFAULT_GROUP_TEMPLATE, &stream_template) {
            return Err(ConfigError::Invalid {
                key: "SHIPPER_STREAM_TEMPLATE",
                value: stream_template,
                reason: e.reason,
            });
        }

        let max_concurrency = match self.max_concurrency {
            None => defaults::MAX_CONCURRENCY,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if (1..=1024).contains(&n) => n,
                _ => {
                    return Err(ConfigError::Invalid {
                        key: "SHIPPER_MAX_CONCURRENCY",
                        value: v,
                        reason: "must be a whole number from 1 to 1024".into(),
                    });
                }
            },
        };

        let message_format = match self.message_format {
            None => MessageFormat::default(),
            Some(v) => v.trim().parse::<MessageFormat>().map_err(|reason| ConfigError::Invalid {
                key: "SHIPPER_MESSAGE_FORMAT",
                value: v,
                reason,
            })?,
        };
        let message_fields = match self.message_fields {
            None => Vec::new(),
            Some(v) => MessageField::parse_list(&v).map_err(|reason| ConfigError::Invalid {
                key: "SHIPPER_MESSAGE_FIELDS",
                value: v,
                reason,
            })?,
        };
        let include = match self.include {
            Some(text) => toml_list("SHIPPER_INCLUDE", &text)?,
            None => self.file_lists.include.unwrap_or_default(),
        };
        let exclude = match self.exclude {
            Some(text) => toml_list("SHIPPER_EXCLUDE", &text)?,
            None => self.file_lists.exclude.unwrap_or_default(),
        };
        let multiline_rules = match self.multiline_rules {
            Some(text) => toml_list("SHIPPER_MULTILINE_RULES", &text)?,
            None => self.file_lists.multiline_rules.unwrap_or_default(),
        };
        let multiline_detectors: Vec<CustomDetector> = match self.multiline_detectors {
            Some(text) => toml_list("SHIPPER_MULTILINE_DETECTORS", &text)?,
            None => self.file_lists.multiline_detectors.unwrap_or_default(),
        };
        for spec in &multiline_detectors {
            Detector::custom(spec, Limits::default()).map_err(|e| ConfigError::Invalid {
                key: "SHIPPER_MULTILINE_DETECTORS",
                value: spec.name.clone(),
                reason: e.to_string(),
            })?;
        }
        if let Some((_, duplicate)) = multiline_detectors
            .iter()
            .enumerate()
            .find(|(i, d)| multiline_detectors[..*i].iter().any(|o| o.name == d.name))
        {
            return Err(ConfigError::Invalid {
                key: "SHIPPER_MULTILINE_DETECTORS",
                value: duplicate.name.clone(),
                reason: "two detectors have this name; names must be unique".into(),
            });
        }
        let known_names = || {
            let mut names: Vec<&str> = vec![NO_MULTILINE];
            names.extend(Detector::BUILTIN);
            names.extend(multiline_detectors.iter().map(|d| d.name.as_str()));
            names
        };
        let multiline =
            self.multiline.map(|m| m.trim().to_owned()).filter(|m| !m.is_empty() && m != NO_MULTILINE);
        if let Some(name) = multiline.as_deref().filter(|name| !known_names().contains(name)) {
            return Err(ConfigError::Invalid {
                key: "SHIPPER_MULTILINE",
                value: name.to_owned(),
                reason: format!("unknown detector; use one of {}", known_names().join(", ")),
            });
        }
        if let Some(rule) =
            multiline_rules.iter().find(|rule| !known_names().contains(&rule.detector.as_str()))
        {
            return Err(ConfigError::Invalid {
                key: "SHIPPER_MULTILINE_RULES",
                value: rule.detector.clone(),
                reason: format!("unknown detector; use one of {}", known_names().join(", ")),
            });
        }
        let multiline_max_lines = match self.multiline_max_lines {
            None => defaults::MULTILINE_MAX_LINES,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if (1..=100_000).contains(&n) => n,
                _ => {
                    return Err(ConfigError::Invalid {
                        key: "SHIPPER_MULTILINE_MAX_LINES",
                        value: v,
                        reason: "must be a whole number from 1 to 100000".into(),
                    });
                }
            },
        };
        let raw_max_bytes = self.multiline_max_bytes.clone();
        let multiline_max_bytes = byte_size(
            "SHIPPER_MULTILINE_MAX_BYTES",
            self.multiline_max_bytes,
            defaults::MULTILINE_MAX_BYTES,
        )?;
        if !(1..=1024 * 1024).contains(&multiline_max_bytes) {
            return Err(ConfigError::Invalid {
                key: "SHIPPER_MULTILINE_MAX_BYTES",
                value: raw_max_bytes.unwrap_or_default(),
                reason: "must be from 1B to 1MiB (one CloudWatch event; longer events are split anyway)"
                    .into(),
            });
        }

        let read_from = match self.read_from {
            None => ReadFrom::default(),
            Some(v) => v.trim().parse::<ReadFrom>().map_err(|e| ConfigError::Invalid {
                key: "SHIPPER_READ_FROM",
                value: v,
                reason: e.to_string(),
            })?,
        };
        let ignore_older = match self.ignore_older.filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(v) => Some(duration("SHIPPER_IGNORE_OLDER", Some(v), "")?),
        };

        let group_settings = RawGroupSettings {
            retention_days: self.retention_days,
            log_group_class: self.log_group_class,
            kms_key_id: self.kms_key_id,
            tags: match self.tags {
                Some(text) => Some(toml_map("SHIPPER_TAGS", &text)?),
                None => self.file_lists.tags,
            },
            group_settings: match self.group_settings {
                Some(text) => toml_list("SHIPPER_GROUP_SETTINGS", &text)?,
                None => self.file_lists.group_settings.unwrap_or_default(),
            },
        }
        .resolve()?;
        let retention_apply = match self.retention_apply {
            None => RetentionApply::default(),
            Some(v) => v.trim().parse().map_err(|reason| ConfigError::Invalid {
                key: "SHIPPER_RETENTION_APPLY",
                value: v,
                reason,
            })?,
        };
        let create_groups = match self.create_groups.as_deref().map(str::trim) {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    key: "SHIPPER_CREATE_GROUPS",
                    value: other.to_owned(),
                    reason: "use true or false".into(),
                });
            }
        };

        let assume_role =
            AssumeRole::new(self.role_arn, self.external_id, self.role_session_name, &node_name)?;
        let flush_interval =
            duration("SHIPPER_FLUSH_INTERVAL", self.flush_interval, defaults::FLUSH_INTERVAL)?;
        // Unset, it is the default or flush_interval itself, whichever is longer.
        let explicit_max = self.flush_interval_max.is_some();
        let flush_interval_max =
            duration("SHIPPER_FLUSH_INTERVAL_MAX", self.flush_interval_max, defaults::FLUSH_INTERVAL_MAX)?;
        let flush_interval_max =
            if explicit_max { flush_interval_max } else { flush_interval_max.max(flush_interval) };
        if flush_interval_max < flush_interval {
            return Err(ConfigError::Invalid {
                key: "SHIPPER_FLUSH_INTERVAL_MAX",
                value: humantime::format_duration(flush_interval_max).to_string(),
                reason: format!(
                    "must be at least SHIPPER_FLUSH_INTERVAL ({}); equal to it turns stretching under throttling off",
                    humantime::format_duration(flush_interval)
                ),
            });
        }

        let config = Config {
            cluster_name,
            node_name,
            aws_region: self.aws_region.filter(|r| !r.trim().is_empty()),
            log_paths,
            state_dir: self.state_dir.unwrap_or_else(|| PathBuf::from(defaults::STATE_DIR)),
            spool_max_bytes,
            flush_interval,
            flush_interval_max,
            listen,
            log_format,
            group_template,
            stream_template,
            metadata_wait: duration("SHIPPER_METADATA_WAIT", self.metadata_wait, defaults::METADATA_WAIT)?,
            shutdown_grace: duration(
                "SHIPPER_SHUTDOWN_GRACE",
                self.shutdown_grace,
                defaults::SHUTDOWN_GRACE,
            )?,
            max_concurrency,
            message_format,
            message_fields,
            include,
            exclude,
            multiline,
            multiline_rules,
            multiline_detectors,
            multiline_flush_timeout: duration(
                "SHIPPER_MULTILINE_FLUSH_TIMEOUT",
                self.multiline_flush_timeout,
                defaults::MULTILINE_FLUSH_TIMEOUT,
            )?,
            multiline_max_lines,
            multiline_max_bytes: multiline_max_bytes as usize,
            read_from,
            ignore_older,
            group_settings,
            retention_apply,
            create_groups,
            assume_role,
        };
        let invalid = |key, value: String, reason: String| ConfigError::Invalid { key, value, reason };
        fn json<T: Serialize>(value: &T) -> String {
            serde_json::to_string(value).unwrap_or_default()
        }
        Filter::new(&config.include, &[])
            .map_err(|e| invalid("SHIPPER_INCLUDE", json(&config.include), e.to_string()))?;
        Filter::new(&[], &config.exclude)
            .map_err(|e| invalid("SHIPPER_EXCLUDE", json(&config.exclude), e.to_string()))?;
        MultilineChoice::new(&config.multiline_rules, None)
            .map_err(|e| invalid("SHIPPER_MULTILINE_RULES", json(&config.multiline_rules), e.to_string()))?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FileSettings;

    fn base() -> Settings {
        Settings {
            cluster_name: Some("prod".into()),
            node_name: Some("node-1".into()),
            ..Settings::default()
        }
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = base().resolve().expect("valid");
        assert_eq!(c.log_paths, vec!["/var/log/containers/*.log".to_owned()]);
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/shipper"));
        assert_eq!(c.spool_max_bytes, 1024 * 1024 * 1024);
        assert_eq!(c.flush_interval, Duration::from_secs(1));
        assert_eq!(c.flush_interval_max, Duration::from_secs(30));
        assert_eq!(c.listen, "0.0.0.0:2021".parse().expect("addr"));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.group_template, DEFAULT_GROUP_TEMPLATE);
        assert_eq!(c.stream_template, DEFAULT_STREAM_TEMPLATE);
    }

    #[test]
    fn missing_cluster_name_names_the_key_and_the_fix() {
        let err = Settings { cluster_name: None, ..base() }.resolve().expect_err("must fail");
        let text = err.to_string();
        assert!(text.contains("CLUSTER_NAME"), "{text}");
        assert!(text.contains("set CLUSTER_NAME"), "{text}");
        let err = Settings { node_name: Some("  ".into()), ..base() }.resolve().expect_err("blank node");
        assert!(err.to_string().contains("NODE_NAME"));
    }

    #[test]
    fn invalid_values_are_reported_with_key_and_value() {
        let cases: Vec<(Settings, &str)> = vec![
            (Settings { flush_interval: Some("soon".into()), ..base() }, "SHIPPER_FLUSH_INTERVAL"),
            (Settings { flush_interval: Some("0s".into()), ..base() }, "SHIPPER_FLUSH_INTERVAL"),
            (Settings { spool_max_bytes: Some("lots".into()), ..base() }, "SHIPPER_SPOOL_MAX_BYTES"),
            (Settings { spool_max_bytes: Some("1KiB".into()), ..base() }, "SHIPPER_SPOOL_MAX_BYTES"),
            (Settings { listen: Some("2021".into()), ..base() }, "SHIPPER_LISTEN"),
            (Settings { log_format: Some("xml".into()), ..base() }, "SHIPPER_LOG_FORMAT"),
            (Settings { log_paths: Some(" , ".into()), ..base() }, "SHIPPER_LOG_PATHS"),
            (Settings { log_paths: Some("/var/log/[".into()), ..base() }, "SHIPPER_LOG_PATHS"),
            (Settings { group_template: Some("k8s_{nope}".into()), ..base() }, "SHIPPER_GROUP_TEMPLATE"),
            (Settings { stream_template: Some("{pod".into()), ..base() }, "SHIPPER_STREAM_TEMPLATE"),
            (Settings { max_concurrency: Some("0".into()), ..base() }, "SHIPPER_MAX_CONCURRENCY"),
            (Settings { flush_interval_max: Some("500ms".into()), ..base() }, "SHIPPER_FLUSH_INTERVAL_MAX"),
        ];
        for (settings, key) in cases {
            let err = settings.resolve().expect_err(key);
            assert!(err.to_string().starts_with(key), "{key}: {err}");
        }
    }

    #[test]
    fn the_stretch_bound_follows_a_long_flush_interval_unless_set() {
        let c = Settings { flush_interval: Some("1m".into()), ..base() }.resolve().expect("valid");
        assert_eq!(c.flush_interval_max, Duration::from_secs(60));
        let c = Settings { flush_interval_max: Some("1s".into()), ..base() }.resolve().expect("valid");
        assert_eq!(c.flush_interval_max, c.flush_interval, "equal: stretching off");
    }

    #[test]
    fn env_and_flags_win_over_the_file() {
        let file: FileSettings = toml::from_str(
            r#"
            cluster_name = "from-file"
            node_name = "file-node"
            log_paths = ["/a/*.log", "/b/*.log"]
            flush_interval = "250ms"
            "#,
        )
        .expect("parses");
        let merged =
            Settings { cluster_name: Some("from-env".into()), node_name: None, ..Settings::default() }
                .over(file);
        let c = merged.resolve().expect("valid");
        assert_eq!(c.cluster_name, "from-env");
        assert_eq!(c.node_name, "file-node");
        assert_eq!(c.log_paths, vec!["/a/*.log".to_owned(), "/b/*.log".to_owned()]);
        assert_eq!(c.flush_interval, Duration::from_millis(250));
    }

    #[test]
    fn group_settings_come_from_the_file_or_from_env_as_toml() {
        let file: FileSettings = toml::from_str(
            r#"
            retention_days = 30
            log_group_class = "INFREQUENT_ACCESS"
            retention_apply = "always"
            create_groups = false
            [tags]
            team = "platform"
            [[group_settings]]
            group = "k8s_*_prod_*"
            retention_days = 365
            log_group_class = "STANDARD"
            "#,
        )
        .expect("parses");
        let c = base().over(file.clone()).resolve().expect("valid");
        assert_eq!(c.retention_apply, RetentionApply::Always);
        assert!(!c.create_groups);
        let prod = &c.group_settings.resolve("k8s_c_prod_web_x").settings;
        assert_eq!(prod.retention_days, Some(365));
        assert_eq!(prod.log_group_class, Some(crate::config::LogGroupClass::Standard));
        assert_eq!(prod.tags.get("team").map(String::as_str), Some("platform"));
        let other = &c.group_settings.resolve("k8s_c_dev_web_x").settings;
        assert_eq!(other.retention_days, Some(30));
        let printed = serde_json::to_value(&c).expect("json");
        assert_eq!(printed["group_settings"][0]["group"], "k8s_*_prod_*");
        assert_eq!(printed["group_settings"][1]["group"], "*");
        assert_eq!(printed["group_settings"][1]["log_group_class"], "INFREQUENT_ACCESS");

        // Env (TOML inline syntax) wins over the file.
        let env = Settings {
            retention_days: Some("7".into()),
            tags: Some(r#"{ team = "search" }"#.into()),
            group_settings: Some(r#"[{ group = "x*", retention_days = 1 }]"#.into()),
            create_groups: Some("true".into()),
            ..base()
        };
        let c = env.over(file).resolve().expect("valid");
        assert!(c.create_groups);
        assert_eq!(c.group_settings.resolve("xy").settings.retention_days, Some(1));
        let default = &c.group_settings.resolve("k8s_c_prod_web_x").settings;
        assert_eq!(default.retention_days, Some(7));
        assert_eq!(default.tags.get("team").map(String::as_str), Some("search"));

        let defaults = base().resolve().expect("valid");
        assert!(defaults.create_groups);
        assert_eq!(defaults.retention_apply, RetentionApply::Created);
        assert_eq!(defaults.group_settings.resolve("any").settings, Default::default());
        for (settings, key) in [
            (Settings { retention_days: Some("10".into()), ..base() }, "SHIPPER_RETENTION_DAYS"),
            (Settings { retention_apply: Some("sometimes".into()), ..base() }, "SHIPPER_RETENTION_APPLY"),
            (Settings { create_groups: Some("no".into()), ..base() }, "SHIPPER_CREATE_GROUPS"),
            (Settings { tags: Some("[1]".into()), ..base() }, "SHIPPER_TAGS"),
            (Settings { group_settings: Some("{}".into()), ..base() }, "SHIPPER_GROUP_SETTINGS"),
        ] {
            let err = settings.resolve().expect_err(key);
            assert!(err.to_string().starts_with(key), "{key}: {err}");
        }
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let err = toml::from_str::<FileSettings>("cluster = \"x\"").expect_err("unknown key");
        assert!(err.to_string().contains("cluster"), "{err}");
    }
}
