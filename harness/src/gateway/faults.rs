//! Faults the gateway injects, and how the active set decides what happens to a request.
//!
//! Faults are injected and removed on the scenario's timeline. Shaping faults (`Latency`,
//! `Bandwidth`) add up; of the terminal faults (everything else) the first active one that
//! matches the operation and wins its probability roll decides the request's fate.
//! Rolls use one seeded RNG, so a run with the same seed and request order is reproducible.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What goes wrong. Written as a string in JSON/TOML: `blackhole`, `refuse`, `reset`,
/// `latency=250ms`, `bandwidth=65536` (bytes per second), `throttle`, `service_unavailable`,
/// `ambiguous`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum FaultKind {
    /// Accept and read the request, never answer while the fault lasts (connection held);
    /// when the fault is removed the held connection is reset, the request never forwarded.
    Blackhole,
    /// No connection accepted: with probability 1 the listening socket is closed (connection
    /// refused); otherwise accepted connections are reset at once. Live keep-alive connections
    /// are reset too.
    Refuse,
    /// Read part of the request, then reset the connection (never forwarded).
    Reset,
    /// Delay each matching request by this long before handling it.
    Latency(Duration),
    /// Cap request and response transfer to this many bytes per second.
    Bandwidth(u64),
    /// Answer HTTP 400 `ThrottlingException` "Rate exceeded" (never forwarded).
    Throttle,
    /// Answer HTTP 503 `ServiceUnavailableException` (never forwarded).
    ServiceUnavailable,
    /// Forward (the write happens), then drop the connection without answering.
    Ambiguous,
    /// Answer HTTP 400 `AccessDeniedException` (never forwarded): an IAM policy that does not
    /// cover some log groups. Usually scoped with `groups`.
    AccessDenied,
}

impl FaultKind {
    /// Whether this kind only shapes traffic (and composes with a terminal fault).
    pub fn is_shaping(self) -> bool {
        matches!(self, Self::Latency(_) | Self::Bandwidth(_))
    }

    /// The kind's name without parameters, for summaries (`latency`, `throttle`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Blackhole => "blackhole",
            Self::Refuse => "refuse",
            Self::Reset => "reset",
            Self::Latency(_) => "latency",
            Self::Bandwidth(_) => "bandwidth",
            Self::Throttle => "throttle",
            Self::ServiceUnavailable => "service_unavailable",
            Self::Ambiguous => "ambiguous",
            Self::AccessDenied => "access_denied",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Latency(delay) => write!(f, "latency={}", humantime::format_duration(*delay)),
            Self::Bandwidth(rate) => write!(f, "bandwidth={rate}"),
            other => f.write_str(other.name()),
        }
    }
}

impl From<FaultKind> for String {
    fn from(kind: FaultKind) -> Self {
        kind.to_string()
    }
}

/// A fault description that could not be understood or is out of range.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultError {
    /// Unknown kind name or malformed parameter.
    #[error("invalid fault kind {text:?}: {detail}")]
    InvalidKind {
        /// The text given.
        text: String,
        /// What is wrong with it.
        detail: String,
    },
    /// Probability outside 0..=1.
    #[error("fault {kind}: probability {probability} is not within 0..=1")]
    InvalidProbability {
        /// The fault's kind.
        kind: String,
        /// The probability given.
        probability: f64,
    },
    /// `ops` given for a connection-level fault, which cannot see the operation.
    #[error("fault {kind}: acts on connections before any request is read, so `ops` cannot apply")]
    OpsNotApplicable {
        /// The fault's kind.
        kind: String,
    },
    /// `groups` given for a fault that acts before the request body (and its group) is read.
    #[error(
        "fault {kind}: acts before the log group is known; `groups` only applies to throttle, service_unavailable and access_denied"
    )]
    GroupsNotApplicable {
        /// The fault's kind.
        kind: String,
    },
}

impl FromStr for FaultKind {
    type Err = FaultError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |detail: String| FaultError::InvalidKind { text: text.to_owned(), detail };
        let (name, parameter) = match text.split_once('=') {
            Some((name, parameter)) => (name.trim(), Some(parameter.trim())),
            None => (text.trim(), None),
        };
        let kind = match (name, parameter) {
            ("blackhole", None) => Self::Blackhole,
            ("refuse", None) => Self::Refuse,
            ("reset", None) => Self::Reset,
            ("throttle", None) => Self::Throttle,
            ("service_unavailable", None) => Self::ServiceUnavailable,
            ("ambiguous", None) => Self::Ambiguous,
            ("access_denied", None) => Self::AccessDenied,
            ("latency", Some(delay)) => {
                Self::Latency(humantime::parse_duration(delay).map_err(|e| invalid(e.to_string()))?)
            }
            ("bandwidth", Some(rate)) => {
                let rate: u64 = rate.parse().map_err(|e| invalid(format!("{e}")))?;
                if rate == 0 {
                    return Err(invalid("bandwidth must be at least 1 byte/s".to_owned()));
                }
                Self::Bandwidth(rate)
            }
            ("latency" | "bandwidth", None) => {
                return Err(invalid(format!("{name} needs a parameter: {name}=VALUE")));
            }
            _ => return Err(invalid("unknown kind or unexpected parameter".to_owned())),
        };
        Ok(kind)
    }
}

impl TryFrom<String> for FaultKind {
    type Error = FaultError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

fn always() -> f64 {
    1.0
}

/// A fault to inject: what, on which operations, how often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// What goes wrong.
    pub kind: FaultKind,
    /// Operations affected (`PutLogEvents`, `CreateLogGroup`, ...); `None` = all.
    #[serde(default)]
    pub ops: Option<Vec<String>>,
    /// Chance each matching request (or connection) is affected, 0..=1.
    #[serde(default = "always")]
    pub probability: f64,
    /// Only requests whose `logGroupName` starts with one of these; `None` = all. Decided
    /// after the body is read, so only answer-type kinds can be scoped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
}

impl Fault {
    /// A fault on every operation, every time.
    pub fn new(kind: FaultKind) -> Self {
        Self { kind, ops: None, probability: 1.0, groups: None }
    }

    /// Restricts the fault to these operations.
    pub fn only<I, S>(mut self, ops: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.ops = Some(ops.into_iter().map(Into::into).collect());
        self
    }

    /// Restricts the fault to log groups starting with one of `prefixes`.
    pub fn for_groups<I, S>(mut self, prefixes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.groups = Some(prefixes.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the chance each matching request is affected.
    pub fn with_probability(mut self, probability: f64) -> Self {
        self.probability = probability;
        self
    }

    /// Checks the probability range and that `ops` is only given where it can apply.
    pub fn validate(&self) -> Result<(), FaultError> {
        if !(0.0..=1.0).contains(&self.probability) {
            return Err(FaultError::InvalidProbability {
                kind: self.kind.to_string(),
                probability: self.probability,
            });
        }
        if self.kind == FaultKind::Refuse && self.ops.is_some() {
            return Err(FaultError::OpsNotApplicable { kind: self.kind.to_string() });
        }
        let answers = matches!(
            self.kind,
            FaultKind::Throttle | FaultKind::ServiceUnavailable | FaultKind::AccessDenied
        );
        if self.groups.is_some() && !answers {
            return Err(FaultError::GroupsNotApplicable { kind: self.kind.to_string() });
        }
        Ok(())
    }

    fn applies_to_group(&self, group: Option<&str>) -> bool {
        match (&self.groups, group) {
            (None, _) => true,
            (Some(prefixes), Some(group)) => prefixes.iter().any(|p| group.starts_with(p.as_str())),
            (Some(_), None) => false,
        }
    }

    fn applies_to(&self, operation: &str) -> bool {
        self.ops.as_ref().is_none_or(|ops| ops.iter().any(|op| op == operation))
    }
}

/// Identifies an injected fault, for removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FaultId(pub u64);

/// An injected fault and its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveFault {
    /// Its id.
    pub id: FaultId,
    /// The fault.
    #[serde(flatten)]
    pub fault: Fault,
}

/// What the active faults do to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Plan {
    /// Total added delay.
    pub latency: Duration,
    /// Tightest bandwidth cap, bytes per second.
    pub bandwidth: Option<u64>,
    /// The terminal fault deciding the request's fate, if any.
    pub terminal: Option<(FaultId, FaultKind)>,
}

/// The active faults, in injection order.
#[derive(Debug, Default)]
pub struct FaultSet {
    next_id: u64,
    active: Vec<ActiveFault>,
}

impl FaultSet {
    /// Adds a validated fault.
    pub fn inject(&mut self, fault: Fault) -> Result<FaultId, FaultError> {
        fault.validate()?;
        self.next_id += 1;
        let id = FaultId(self.next_id);
        self.active.push(ActiveFault { id, fault });
        Ok(id)
    }

    /// Removes one fault; false if it was not active.
    pub fn remove(&mut self, id: FaultId) -> bool {
        let before = self.active.len();
        self.active.retain(|active| active.id != id);
        self.active.len() != before
    }

    /// Removes every fault.
    pub fn clear(&mut self) {
        self.active.clear();
    }

    /// Whether this fault is still active.
    pub fn contains(&self, id: FaultId) -> bool {
        self.active.iter().any(|active| active.id == id)
    }

    /// The active faults.
    pub fn list(&self) -> Vec<ActiveFault> {
        self.active.clone()
    }

    /// Whether a certain (probability 1) `Refuse` is active: the listener should be closed.
    pub fn refuses_all(&self) -> bool {
        self.active.iter().any(|a| a.fault.kind == FaultKind::Refuse && a.fault.probability >= 1.0)
    }

    /// Rolls the active `Refuse` faults for one connection.
    pub fn refuse_connection(&self, rng: &mut fastrand::Rng) -> Option<FaultId> {
        self.active
            .iter()
            .filter(|a| a.fault.kind == FaultKind::Refuse)
            .find(|a| roll(rng, a.fault.probability))
            .map(|a| a.id)
    }

    /// The group-scoped fault that answers a request for `operation` on `group` instead of
    /// the service, if any (decided once the body is read).
    pub fn answer_for_group(
        &self,
        operation: &str,
        group: Option<&str>,
        rng: &mut fastrand::Rng,
    ) -> Option<(FaultId, FaultKind)> {
        self.active
            .iter()
            .filter(|a| a.fault.groups.is_some())
            .filter(|a| a.fault.applies_to(operation) && a.fault.applies_to_group(group))
            .find(|a| roll(rng, a.fault.probability))
            .map(|a| (a.id, a.fault.kind))
    }

    /// An `access_denied` fault naming `implied` explicitly in its `ops`, for a request that
    /// needs that permission too (CreateLogGroup with tags needs `logs:TagResource`).
    pub fn denied_for_implied(
        &self,
        implied: &str,
        group: Option<&str>,
        rng: &mut fastrand::Rng,
    ) -> Option<(FaultId, FaultKind)> {
        self.active
            .iter()
            .filter(|a| a.fault.kind == FaultKind::AccessDenied)
            .filter(|a| a.fault.ops.as_ref().is_some_and(|ops| ops.iter().any(|op| op == implied)))
            .filter(|a| a.fault.applies_to_group(group))
            .find(|a| roll(rng, a.fault.probability))
            .map(|a| (a.id, a.fault.kind))
    }

    /// Decides what the active faults that are not group-scoped do to one request for
    /// `operation`.
    pub fn plan(&self, operation: &str, rng: &mut fastrand::Rng) -> Plan {
        let mut plan = Plan::default();
        for active in &self.active {
            let fault = &active.fault;
            if !fault.applies_to(operation) || fault.groups.is_some() {
                continue;
            }
            match fault.kind {
                FaultKind::Latency(delay) => {
                    if roll(rng, fault.probability) {
                        plan.latency += delay;
                    }
                }
                FaultKind::Bandwidth(rate) => {
                    if roll(rng, fault.probability) {
                        plan.bandwidth = Some(plan.bandwidth.map_or(rate, |cap| cap.min(rate)));
                    }
                }
                kind => {
                    if plan.terminal.is_none() && roll(rng, fault.probability) {
                        plan.terminal = Some((active.id, kind));
                    }
                }
            }
        }
        plan
    }
}

fn roll(rng: &mut fastrand::Rng, probability: f64) -> bool {
    // f64() is in [0, 1): probability 1 always hits, 0 never does.
    rng.f64() < probability
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_text_form() {
        let kinds = [
            FaultKind::Blackhole,
            FaultKind::Refuse,
            FaultKind::Reset,
            FaultKind::Latency(Duration::from_millis(250)),
            FaultKind::Bandwidth(65_536),
            FaultKind::Throttle,
            FaultKind::ServiceUnavailable,
            FaultKind::Ambiguous,
        ];
        for kind in kinds {
            assert_eq!(kind.to_string().parse::<FaultKind>(), Ok(kind));
        }
        assert_eq!("latency=1s 500ms".parse(), Ok(FaultKind::Latency(Duration::from_millis(1500))));
    }

    #[test]
    fn bad_kinds_are_errors() {
        for text in ["", "latency", "latency=soon", "bandwidth=0", "bandwidth=-1", "throttle=2", "nap"] {
            assert!(text.parse::<FaultKind>().is_err(), "{text:?}");
        }
    }

    #[test]
    fn fault_json_uses_defaults_and_rejects_unknown_keys() {
        let fault: Fault =
            serde_json::from_str(r#"{"kind":"latency=2s","ops":["PutLogEvents"]}"#).expect("valid fault");
        assert_eq!(fault, Fault::new(FaultKind::Latency(Duration::from_secs(2))).only(["PutLogEvents"]));
        assert!(serde_json::from_str::<Fault>(r#"{"kind":"throttle","odds":1}"#).is_err());
        assert!(serde_json::from_str::<Fault>(r#"{"kind":"sleepy"}"#).is_err());
    }

    #[test]
    fn validation_rejects_bad_probability_and_ops_on_refuse() {
        let mut set = FaultSet::default();
        let bad = Fault::new(FaultKind::Throttle).with_probability(1.5);
        assert!(matches!(set.inject(bad), Err(FaultError::InvalidProbability { .. })));
        let refuse = Fault::new(FaultKind::Refuse).only(["PutLogEvents"]);
        assert!(matches!(set.inject(refuse), Err(FaultError::OpsNotApplicable { .. })));
        assert!(set.list().is_empty());
    }

    #[test]
    fn plan_combines_shaping_and_takes_the_first_terminal_fault_for_the_operation() {
        let mut set = FaultSet::default();
        let mut rng = fastrand::Rng::with_seed(7);
        set.inject(Fault::new(FaultKind::Latency(Duration::from_millis(100)))).expect("valid");
        set.inject(Fault::new(FaultKind::Bandwidth(1_000))).expect("valid");
        set.inject(Fault::new(FaultKind::Bandwidth(500))).expect("valid");
        let throttle = set.inject(Fault::new(FaultKind::Throttle).only(["CreateLogGroup"])).expect("valid");
        let unavailable = set.inject(Fault::new(FaultKind::ServiceUnavailable)).expect("valid");

        let put = set.plan("PutLogEvents", &mut rng);
        assert_eq!(put.latency, Duration::from_millis(100));
        assert_eq!(put.bandwidth, Some(500));
        assert_eq!(put.terminal, Some((unavailable, FaultKind::ServiceUnavailable)));

        let create = set.plan("CreateLogGroup", &mut rng);
        assert_eq!(create.terminal, Some((throttle, FaultKind::Throttle)));

        assert!(set.remove(throttle));
        assert!(!set.remove(throttle));
        set.clear();
        assert_eq!(set.plan("PutLogEvents", &mut rng), Plan::default());
    }

    #[test]
    fn probability_is_honoured_and_seeded() {
        let mut set = FaultSet::default();
        set.inject(Fault::new(FaultKind::Throttle).with_probability(0.25)).expect("valid");
        let hits = |seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (0..4_000).map(|_| set.plan("PutLogEvents", &mut rng).terminal.is_some()).collect::<Vec<_>>()
        };
        let first = hits(42);
        assert_eq!(first, hits(42), "same seed, same decisions");
        let count = first.iter().filter(|hit| **hit).count();
        assert!((800..1_200).contains(&count), "about a quarter hit, got {count}");

        let mut never = FaultSet::default();
        never.inject(Fault::new(FaultKind::Reset).with_probability(0.0)).expect("valid");
        let mut rng = fastrand::Rng::with_seed(1);
        assert!((0..1_000).all(|_| never.plan("PutLogEvents", &mut rng).terminal.is_none()));
    }

    #[test]
    fn refuse_all_only_for_certain_refusal() {
        let mut set = FaultSet::default();
        let maybe = set.inject(Fault::new(FaultKind::Refuse).with_probability(0.5)).expect("valid");
        assert!(!set.refuses_all());
        set.inject(Fault::new(FaultKind::Refuse)).expect("valid");
        assert!(set.refuses_all());
        assert!(set.contains(maybe));
    }
}
