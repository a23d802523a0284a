//! Detectors: a compiled rule table plus the limits of the groups it forms, built in or
//! from the config file.

use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use super::builtin;
use super::machine::{Machine, START_NAME, StateId};

/// The biggest event CloudWatch Logs accepts is 1 MiB including 26 bytes of overhead.
const MAX_EVENT_BYTES: usize = 1_048_576 - 26;

/// Bounds on one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most lines in one group.
    pub max_lines: usize,
    /// Most bytes of text in one group, counting the `"\n"` between its lines.
    pub max_bytes: usize,
    /// A group whose last line is this old is emitted as it is: the trace is taken to be
    /// over (the program printed nothing more, or is gone).
    pub flush_timeout: Duration,
}

impl Default for Limits {
    /// 1000 lines, one CloudWatch event (1 MiB − 26 bytes), 1 s (Fluent Bit's default
    /// multiline flush is 1 s too, and a trace is written in one go).
    fn default() -> Self {
        Limits { max_lines: 1000, max_bytes: MAX_EVENT_BYTES, flush_timeout: Duration::from_secs(1) }
    }
}

/// A user-defined detector, as written in the config file.
///
/// - `start` only: a line matching `start` begins a new group; every other line continues
///   the open group (the classic "a new entry starts with a timestamp" rule).
/// - `continuation` only: a line matching `continuation` joins the open group; any other
///   line starts a new group.
/// - both: a group begins at a `start` line and continues through `continuation` lines;
///   other lines are single events.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CustomDetector {
    /// How the config refers to it; must not be the name of a built-in detector.
    pub name: String,
    /// Regex of the first line of a group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Regex of the lines that continue a group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<String>,
    /// Overrides [`Limits::max_lines`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lines: Option<usize>,
    /// Overrides [`Limits::max_bytes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<usize>,
    /// Overrides [`Limits::flush_timeout`]; a humantime duration such as `"2s"` or `"500ms"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush_timeout: Option<String>,
}

/// Why a custom detector was rejected. Each names the detector, so that a config with
/// several of them points at the right one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MultilineError {
    /// `name` is empty.
    #[error("multiline detector with an empty name: give it a name to refer to it by")]
    EmptyName,
    /// `name` is the name of a built-in detector.
    #[error("multiline detector {name:?}: the name is taken by a built-in detector (built-ins: {builtins})")]
    BuiltinName {
        /// The detector.
        name: String,
        /// The reserved names, comma-separated.
        builtins: String,
    },
    /// Neither `start` nor `continuation` is set.
    #[error("multiline detector {name:?}: set `start`, `continuation`, or both")]
    NoRules {
        /// The detector.
        name: String,
    },
    /// A pattern does not compile.
    #[error("multiline detector {name:?}: `{field}` is not a valid regex: {message}")]
    BadRegex {
        /// The detector.
        name: String,
        /// `start` or `continuation`.
        field: &'static str,
        /// What the regex compiler said.
        message: String,
    },
    /// A limit is zero.
    #[error("multiline detector {name:?}: `{field}` must be greater than zero")]
    ZeroLimit {
        /// The detector.
        name: String,
        /// `max_lines`, `max_bytes` or `flush_timeout`.
        field: &'static str,
    },
    /// `flush_timeout` is not a duration.
    #[error(
        "multiline detector {name:?}: `flush_timeout` {value:?} is not a duration ({message}); use e.g. \"500ms\" or \"2s\""
    )]
    BadTimeout {
        /// The detector.
        name: String,
        /// The value as written.
        value: String,
        /// What humantime said.
        message: String,
    },
}

/// A compiled detector: a small state machine of regex rules (Fluent Bit's multiline
/// model), plus limits. Cheap to clone (the machine is shared).
#[derive(Clone, Debug)]
pub struct Detector {
    inner: Arc<Inner>,
    limits: Limits,
}

#[derive(Debug)]
struct Inner {
    name: String,
    machine: Machine,
}

impl Detector {
    /// The names [`Detector::builtin`] knows.
    pub const BUILTIN: &'static [&'static str] = &["java", "python", "go", "ruby", "dotnet"];

    /// The built-in detector `name` (one of [`Detector::BUILTIN`]) with these limits.
    pub fn builtin(name: &str, limits: Limits) -> Option<Detector> {
        let table = builtin::rules(name)?;
        let machine = Machine::new(table.iter().map(|rule| {
            // The tables are constants, compiled by a unit test; a failure here is a bug.
            let regex = Regex::new(rule.pattern).expect("built-in multiline patterns compile");
            (rule.from, regex, false, rule.to)
        }));
        Some(Detector { inner: Arc::new(Inner { name: name.to_owned(), machine }), limits })
    }

    /// Compile a user-defined detector; limits it leaves out come from `defaults`.
    pub fn custom(spec: &CustomDetector, defaults: Limits) -> Result<Detector, MultilineError> {
        let name = spec.name.clone();
        if name.is_empty() {
            return Err(MultilineError::EmptyName);
        }
        if Self::BUILTIN.contains(&name.as_str()) {
            return Err(MultilineError::BuiltinName { name, builtins: Self::BUILTIN.join(", ") });
        }
        let limits = custom_limits(spec, defaults)?;
        let compile =
            |field: &'static str, pattern: &Option<String>| -> Result<Option<Regex>, MultilineError> {
                pattern.as_deref().map(Regex::new).transpose().map_err(|e| MultilineError::BadRegex {
                    name: name.clone(),
                    field,
                    message: e.to_string(),
                })
            };
        let start = compile("start", &spec.start)?;
        let continuation = compile("continuation", &spec.continuation)?;
        const BODY: &str = "body";
        const FROM_START: &[&str] = &[START_NAME];
        const FROM_BODY: &[&str] = &[BODY];
        let rules = match (start, continuation) {
            // A line that is not a start continues the group; a start line matches no rule
            // of `body`, so it ends the group and begins the next one from `start_state`.
            (Some(start), None) => {
                vec![(FROM_START, start.clone(), false, BODY), (FROM_BODY, start, true, BODY)]
            }
            // Any line but a continuation may begin a group, and continuations extend it.
            (None, Some(cont)) => {
                vec![(FROM_START, cont.clone(), true, BODY), (FROM_BODY, cont, false, BODY)]
            }
            (Some(start), Some(cont)) => {
                vec![(FROM_START, start, false, BODY), (FROM_BODY, cont, false, BODY)]
            }
            (None, None) => return Err(MultilineError::NoRules { name }),
        };
        let machine = Machine::new(rules);
        Ok(Detector { inner: Arc::new(Inner { name, machine }), limits })
    }

    /// The detector's name: a built-in's, or the custom one's from the config.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The bounds on the groups it forms.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The state after `text` from `from`, if a rule matches.
    pub(super) fn step(&self, from: StateId, text: &str) -> Option<StateId> {
        self.inner.machine.step(from, text)
    }

    /// See [`Machine::is_terminal`].
    pub(super) fn is_terminal(&self, state: StateId) -> bool {
        self.inner.machine.is_terminal(state)
    }

    /// The two detectors share one machine, so their states mean the same.
    pub(super) fn same_machine(&self, other: &Detector) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

/// The limits of a custom detector: its own where it sets them, else `defaults`.
fn custom_limits(spec: &CustomDetector, defaults: Limits) -> Result<Limits, MultilineError> {
    let name = || spec.name.clone();
    let flush_timeout =
        match &spec.flush_timeout {
            None => defaults.flush_timeout,
            Some(value) => humantime::parse_duration(value.trim()).map_err(|e| {
                MultilineError::BadTimeout { name: name(), value: value.clone(), message: e.to_string() }
            })?,
        };
    let limits = Limits {
        max_lines: spec.max_lines.unwrap_or(defaults.max_lines),
        max_bytes: spec.max_bytes.unwrap_or(defaults.max_bytes),
        flush_timeout,
    };
    let zero = [
        ("max_lines", limits.max_lines == 0),
        ("max_bytes", limits.max_bytes == 0),
        ("flush_timeout", limits.flush_timeout.is_zero()),
    ];
    match zero.into_iter().find(|(_, is_zero)| *is_zero) {
        Some((field, _)) => Err(MultilineError::ZeroLimit { name: name(), field }),
        None => Ok(limits),
    }
}
