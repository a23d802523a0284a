//! Structured logging via `tracing-subscriber`: JSON by default, text for humans.

use std::str::FromStr;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Output format of the shipper's own logs (`SHIPPER_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// Human-readable lines.
    Text,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            other => Err(format!("unknown log format {other:?}: use \"json\" or \"text\"")),
        }
    }
}

/// Libraries that, at their most verbose levels, log what must never reach a log: request
/// and response bodies (every tenant's lines, STS answers with session credentials, the
/// web-identity token IRSA sends), signed headers and the canonical request (the session
/// token). Each is capped at the level given, whatever `RUST_LOG` asks for.
const SENSITIVE_TARGETS: &[(&str, &str)] = &[
    ("aws_sigv4", "info"),
    ("aws_smithy_runtime", "debug"),
    ("aws_smithy_runtime_api", "debug"),
    ("aws_smithy_http", "debug"),
    ("aws_smithy_http_client", "debug"),
    ("aws_smithy_xml", "info"),
    ("aws_smithy_json", "info"),
    ("aws_smithy_query", "info"),
    ("aws_runtime", "debug"),
    ("aws_config", "debug"),
    ("aws_credential_types", "debug"),
    ("aws_sdk_cloudwatchlogs", "debug"),
    ("aws_sdk_sts", "debug"),
    ("aws_sdk_sso", "debug"),
    ("aws_sdk_ssooidc", "debug"),
    ("hyper", "info"),
    ("hyper_util", "info"),
    ("h2", "info"),
    ("rustls", "info"),
    ("tower", "info"),
    ("tower_http", "info"),
    ("kube_client", "debug"),
    ("kube_runtime", "debug"),
];

/// Passes everything except [`SENSITIVE_TARGETS`] above their cap. Applied on top of
/// `RUST_LOG`'s filter: it only ever lowers a level.
pub fn sensitive_caps() -> Targets {
    let caps = SENSITIVE_TARGETS
        .iter()
        .filter_map(|(target, level)| Some((*target, level.parse::<LevelFilter>().ok()?)));
    Targets::new().with_default(LevelFilter::TRACE).with_targets(caps)
}

/// Install the global subscriber. `RUST_LOG` filters (default `info`), except that the
/// libraries in [`SENSITIVE_TARGETS`] never log bodies or credentials. Logs go to stderr so
/// stdout stays free for `check`/`route` output.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter).with(sensitive_caps());
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => {
            registry.with(layer.json().flatten_event(true).with_current_span(false)).try_init()
        }
        LogFormat::Text => registry.with(layer).try_init(),
    };
}
