//! The layers a setting can come from, and how they merge.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::groups::GroupRuleSpec;
use crate::multiline::CustomDetector;
use crate::route::{MatcherSpec, MultilineRuleSpec};

/// Settings from flags and environment (clap resolves flag over env), all optional.
#[derive(Debug, Clone, Default, Args)]
pub struct Settings {
    /// Cluster part of log group names.
    #[arg(long, env = "CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// Node whose pods are watched (downward API `spec.nodeName`).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// AWS region (else the SDK default chain).
    #[arg(long, env = "AWS_REGION")]
    pub aws_region: Option<String>,
    /// Comma-separated globs of container log files.
    #[arg(long, env = "SHIPPER_LOG_PATHS")]
    pub log_paths: Option<String>,
    /// Directory for checkpoints, spool and dead letters.
    #[arg(long, env = "SHIPPER_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Spool size cap, e.g. `1GiB`, `512MiB`.
    #[arg(long, env = "SHIPPER_SPOOL_MAX_BYTES")]
    pub spool_max_bytes: Option<String>,
    /// Max age of a partly filled batch, e.g. `1s`, `500ms`.
    #[arg(long, env = "SHIPPER_FLUSH_INTERVAL")]
    pub flush_interval: Option<String>,
    /// Longest the flush interval is stretched to while PutLogEvents is throttled.
    #[arg(long, env = "SHIPPER_FLUSH_INTERVAL_MAX")]
    pub flush_interval_max: Option<String>,
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    #[arg(long, env = "SHIPPER_LISTEN")]
    pub listen: Option<String>,
    /// Own log format: `json` or `text`.
    #[arg(long, env = "SHIPPER_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Log group template.
    #[arg(long, env = "SHIPPER_GROUP_TEMPLATE")]
    pub group_template: Option<String>,
    /// Log stream template.
    #[arg(long, env = "SHIPPER_STREAM_TEMPLATE")]
    pub stream_template: Option<String>,
    /// How long lines wait for their pod's metadata before being routed from the file name.
    #[arg(long, env = "SHIPPER_METADATA_WAIT")]
    pub metadata_wait: Option<String>,
    /// How long SIGTERM waits for the spool to drain before exiting.
    #[arg(long, env = "SHIPPER_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<String>,
    /// Max concurrent PutLogEvents calls (one per stream at most).
    #[arg(long, env = "SHIPPER_MAX_CONCURRENCY")]
    pub max_concurrency: Option<String>,
    /// Message format: `envelope` (default), `envelope_json` or `raw`.
    #[arg(long, env = "SHIPPER_MESSAGE_FORMAT")]
    pub message_format: Option<String>,
    /// Extra envelope keys, comma-separated: workload, workload_kind, node, labels.<key>,
    /// annotations.<key>.
    #[arg(long, env = "SHIPPER_MESSAGE_FIELDS")]
    pub message_fields: Option<String>,
    /// Containers to ship, as a TOML array of matchers: `[{ namespace = "prod-*" }]`.
    #[arg(long, env = "SHIPPER_INCLUDE")]
    pub include: Option<String>,
    /// Containers to leave out (wins over include), as a TOML array of matchers:
    /// `[{ namespace = "kube-system" }, { labels = "logging=off" }]`.
    #[arg(long, env = "SHIPPER_EXCLUDE")]
    pub exclude: Option<String>,
    /// Multiline detector for every container: none (default), java, python, go, ruby, dotnet
    /// or a custom detector's name.
    #[arg(long, env = "SHIPPER_MULTILINE")]
    pub multiline: Option<String>,
    /// Multiline detectors per container, as a TOML array:
    /// `[{ detector = "java", match = { namespace = "shop" } }]`.
    #[arg(long, env = "SHIPPER_MULTILINE_RULES")]
    pub multiline_rules: Option<String>,
    /// Custom multiline detectors, as a TOML array:
    /// `[{ name = "dated", start = '^\d{4}-' }]`.
    #[arg(long, env = "SHIPPER_MULTILINE_DETECTORS")]
    pub multiline_detectors: Option<String>,
    /// How long a multiline event waits for its next line before it is sent as it is.
    #[arg(long, env = "SHIPPER_MULTILINE_FLUSH_TIMEOUT")]
    pub multiline_flush_timeout: Option<String>,
    /// Most lines in one multiline event.
    #[arg(long, env = "SHIPPER_MULTILINE_MAX_LINES")]
    pub multiline_max_lines: Option<String>,
    /// Most bytes in one multiline event, e.g. `256KiB`.
    #[arg(long, env = "SHIPPER_MULTILINE_MAX_BYTES")]
    pub multiline_max_bytes: Option<String>,
    /// Where a first install starts in the files it finds: `head` (default) or `tail`.
    #[arg(long, env = "SHIPPER_READ_FROM")]
    pub read_from: Option<String>,
    /// On a first install, skip files last written longer ago than this, e.g. `1h` (default: off).
    #[arg(long, env = "SHIPPER_IGNORE_OLDER")]
    pub ignore_older: Option<String>,
    /// Retention of the log groups the shipper creates, in days (CloudWatch's values only:
    /// 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    /// 2922, 3288, 3653); default: never expire.
    #[arg(long, env = "SHIPPER_RETENTION_DAYS")]
    pub retention_days: Option<String>,
    /// Class of the log groups the shipper creates: `STANDARD` or `INFREQUENT_ACCESS`.
    #[arg(long, env = "SHIPPER_LOG_GROUP_CLASS")]
    pub log_group_class: Option<String>,
    /// ARN of the KMS key that encrypts the log groups the shipper creates.
    #[arg(long, env = "SHIPPER_KMS_KEY_ID")]
    pub kms_key_id: Option<String>,
    /// Tags of the log groups the shipper creates, as a TOML inline table:
    /// `{ team = "platform" }`.
    #[arg(long, env = "SHIPPER_TAGS")]
    pub tags: Option<String>,
    /// Per-group overrides, first match wins, as a TOML array:
    /// `[{ group = "k8s_prod_*", retention_days = 90 }]`.
    #[arg(long, env = "SHIPPER_GROUP_SETTINGS")]
    pub group_settings: Option<String>,
    /// Which groups get the retention: `created` (only those the shipper creates) or
    /// `always` (also existing ones, checked once per group per process).
    #[arg(long, env = "SHIPPER_RETENTION_APPLY")]
    pub retention_apply: Option<String>,
    /// Whether the shipper creates missing log groups (`true`); with `false` a stream whose
    /// group is missing waits in the spool until someone creates the group.
    #[arg(long, env = "SHIPPER_CREATE_GROUPS")]
    pub create_groups: Option<String>,
    /// ARN of a role to assume on top of the default credentials chain (cross-account
    /// shipping), e.g. `arn:aws:iam::123456789012:role/log-writer`.
    #[arg(long, env = "SHIPPER_ROLE_ARN")]
    pub role_arn: Option<String>,
    /// External ID the role's trust policy asks for (with `SHIPPER_ROLE_ARN`).
    #[arg(long, env = "SHIPPER_EXTERNAL_ID")]
    pub external_id: Option<String>,
    /// Session name of the assumed role (with `SHIPPER_ROLE_ARN`); default `shipper-<node>`.
    #[arg(long, env = "SHIPPER_ROLE_SESSION_NAME")]
    pub role_session_name: Option<String>,
    /// Typed lists from the config file (the env/flag values above, when set, win).
    #[arg(skip)]
    pub file_lists: FileLists,
}

/// The config file's list settings, already typed (the env variables carry the same lists as
/// TOML text).
#[derive(Debug, Clone, Default)]
pub struct FileLists {
    /// `include`
    pub include: Option<Vec<MatcherSpec>>,
    /// `exclude`
    pub exclude: Option<Vec<MatcherSpec>>,
    /// `multiline_rules`
    pub multiline_rules: Option<Vec<MultilineRuleSpec>>,
    /// `multiline_detectors`
    pub multiline_detectors: Option<Vec<CustomDetector>>,
    /// `tags`
    pub tags: Option<BTreeMap<String, String>>,
    /// `group_settings`
    pub group_settings: Option<Vec<GroupRuleSpec>>,
}

/// The config file (TOML). Same keys as `Settings`, snake_case; unknown keys are errors.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// See [`Settings::cluster_name`].
    pub cluster_name: Option<String>,
    /// See [`Settings::node_name`].
    pub node_name: Option<String>,
    /// See [`Settings::aws_region`].
    pub aws_region: Option<String>,
    /// A list of globs (or one comma-separated string).
    pub log_paths: Option<LogPaths>,
    /// See [`Settings::state_dir`].
    pub state_dir: Option<PathBuf>,
    /// See [`Settings::spool_max_bytes`].
    pub spool_max_bytes: Option<String>,
    /// See [`Settings::flush_interval`].
    pub flush_interval: Option<String>,
    /// See [`Settings::flush_interval_max`].
    pub flush_interval_max: Option<String>,
    /// See [`Settings::listen`].
    pub listen: Option<String>,
    /// See [`Settings::log_format`].
    pub log_format: Option<String>,
    /// See [`Settings::group_template`].
    pub group_template: Option<String>,
    /// See [`Settings::stream_template`].
    pub stream_template: Option<String>,
    /// See [`Settings::metadata_wait`].
    pub metadata_wait: Option<String>,
    /// See [`Settings::shutdown_grace`].
    pub shutdown_grace: Option<String>,
    /// See [`Settings::max_concurrency`].
    pub max_concurrency: Option<u32>,
    /// See [`Settings::message_format`].
    pub message_format: Option<String>,
    /// A list of field names (or one comma-separated string).
    pub message_fields: Option<LogPaths>,
    /// `[[include]]` tables.
    pub include: Option<Vec<MatcherSpec>>,
    /// `[[exclude]]` tables.
    pub exclude: Option<Vec<MatcherSpec>>,
    /// See [`Settings::multiline`].
    pub multiline: Option<String>,
    /// `[[multiline_rules]]` tables.
    pub multiline_rules: Option<Vec<MultilineRuleSpec>>,
    /// `[[multiline_detectors]]` tables.
    pub multiline_detectors: Option<Vec<CustomDetector>>,
    /// See [`Settings::multiline_flush_timeout`].
    pub multiline_flush_timeout: Option<String>,
    /// See [`Settings::multiline_max_lines`].
    pub multiline_max_lines: Option<u64>,
    /// See [`Settings::multiline_max_bytes`].
    pub multiline_max_bytes: Option<String>,
    /// See [`Settings::read_from`].
    pub read_from: Option<String>,
    /// See [`Settings::ignore_older`].
    pub ignore_older: Option<String>,
    /// See [`Settings::retention_days`].
    pub retention_days: Option<u32>,
    /// See [`Settings::log_group_class`].
    pub log_group_class: Option<String>,
    /// See [`Settings::kms_key_id`].
    pub kms_key_id: Option<String>,
    /// `[tags]` table.
    pub tags: Option<BTreeMap<String, String>>,
    /// `[[group_settings]]` tables.
    pub group_settings: Option<Vec<GroupRuleSpec>>,
    /// See [`Settings::retention_apply`].
    pub retention_apply: Option<String>,
    /// See [`Settings::create_groups`].
    pub create_groups: Option<bool>,
    /// See [`Settings::role_arn`].
    pub role_arn: Option<String>,
    /// See [`Settings::external_id`].
    pub external_id: Option<String>,
    /// See [`Settings::role_session_name`].
    pub role_session_name: Option<String>,
}

/// `log_paths` (and other lists of names) in the file: a list or a comma-separated string.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LogPaths {
    /// `["/a/*.log", "/b/*.log"]`
    List(Vec<String>),
    /// `"/a/*.log,/b/*.log"`
    Joined(String),
}

impl FileSettings {
    /// Read and parse a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::File { path: path.to_owned(), reason: e.to_string() })?;
        toml::from_str(&text).map_err(|e| ConfigError::File { path: path.to_owned(), reason: e.to_string() })
    }
}

impl Settings {
    /// Fill every unset field from the file (flags/env win over the file).
    pub fn over(self, file: FileSettings) -> Settings {
        let joined = |list: LogPaths| match list {
            LogPaths::List(v) => v.join(","),
            LogPaths::Joined(s) => s,
        };
        let log_paths = file.log_paths.map(joined);
        Settings {
            cluster_name: self.cluster_name.or(file.cluster_name),
            node_name: self.node_name.or(file.node_name),
            aws_region: self.aws_region.or(file.aws_region),
            log_paths: self.log_paths.or(log_paths),
            state_dir: self.state_dir.or(file.state_dir),
            spool_max_bytes: self.spool_max_bytes.or(file.spool_max_bytes),
            flush_interval: self.flush_interval.or(file.flush_interval),
            flush_interval_max: self.flush_interval_max.or(file.flush_interval_max),
            listen: self.listen.or(file.listen),
            log_format: self.log_format.or(file.log_format),
            group_template: self.group_template.or(file.group_template),
            stream_template: self.stream_template.or(file.stream_template),
            metadata_wait: self.metadata_wait.or(file.metadata_wait),
            shutdown_grace: self.shutdown_grace.or(file.shutdown_grace),
            max_concurrency: self.max_concurrency.or(file.max_concurrency.map(|n| n.to_string())),
            message_format: self.message_format.or(file.message_format),
            message_fields: self.message_fields.or(file.message_fields.map(joined)),
            include: self.include,
            exclude: self.exclude,
            multiline: self.multiline.or(file.multiline),
            multiline_rules: self.multiline_rules,
            multiline_detectors: self.multiline_detectors,
            multiline_flush_timeout: self.multiline_flush_timeout.or(file.multiline_flush_timeout),
            multiline_max_lines: self.multiline_max_lines.or(file.multiline_max_lines.map(|n| n.to_string())),
            multiline_max_bytes: self.multiline_max_bytes.or(file.multiline_max_bytes),
            read_from: self.read_from.or(file.read_from),
            ignore_older: self.ignore_older.or(file.ignore_older),
            retention_days: self.retention_days.or(file.retention_days.map(|n| n.to_string())),
            log_group_class: self.log_group_class.or(file.log_group_class),
            kms_key_id: self.kms_key_id.or(file.kms_key_id),
            tags: self.tags,
            group_settings: self.group_settings,
            retention_apply: self.retention_apply.or(file.retention_apply),
            create_groups: self.create_groups.or(file.create_groups.map(|b| b.to_string())),
            role_arn: self.role_arn.or(file.role_arn),
            external_id: self.external_id.or(file.external_id),
            role_session_name: self.role_session_name.or(file.role_session_name),
            file_lists: FileLists {
                include: file.include,
                exclude: file.exclude,
                multiline_rules: file.multiline_rules,
                multiline_detectors: file.multiline_detectors,
                tags: file.tags,
                group_settings: file.group_settings,
            },
        }
    }
}
