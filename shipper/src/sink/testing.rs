//! An in-process fake of the CloudWatch Logs API (awsJson1.1 over HTTP, `POST /` with
//! `X-Amz-Target: Logs_20140328.<Operation>`), with scripted faults for tests.
//!
//! It models what the emulators check (missing group/stream, duplicates, chronological
//! order, the 14 days / +2 h window) and lets a test inject what they never produce
//! (throttling, 5xx, invalid events, create races).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::rejected::{MAX_EVENT_AGE_MS, MAX_EVENT_FUTURE_MS};
use super::testing_sts::{self, StsModel};

/// Sink options for tests: millisecond backoff, no create pacing to speak of.
pub(crate) fn fast_options(
    dead_letter_dir: &std::path::Path,
    groups: super::GroupOptions,
) -> super::SinkOptions {
    super::SinkOptions {
        backoff_base: Duration::from_millis(1),
        backoff_cap: Duration::from_millis(4),
        request_timeout: Duration::from_secs(10),
        dead_letter_dir: dead_letter_dir.to_path_buf(),
        create_group_rate: 1_000.0,
        groups,
        pace: Arc::new(super::Pace::fixed(Duration::from_secs(1))),
    }
}

/// The operations the sink calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) enum Op {
    PutLogEvents,
    CreateLogStream,
    CreateLogGroup,
    PutRetentionPolicy,
    DescribeLogGroups,
}

impl Op {
    fn parse(target: &str) -> Option<Op> {
        match target.strip_prefix("Logs_20140328.")? {
            "PutLogEvents" => Some(Op::PutLogEvents),
            "CreateLogStream" => Some(Op::CreateLogStream),
            "CreateLogGroup" => Some(Op::CreateLogGroup),
            "PutRetentionPolicy" => Some(Op::PutRetentionPolicy),
            "DescribeLogGroups" => Some(Op::DescribeLogGroups),
            _ => None,
        }
    }
}

/// A scripted answer replacing the model's.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    /// `ThrottlingException`, HTTP 400.
    Throttle,
    /// `ServiceUnavailableException`, HTTP 503.
    Unavailable,
    /// Any error answer.
    Error { status: u16, kind: &'static str, message: &'static str },
    /// Another agent won the race: create the resource, answer `ResourceAlreadyExists`.
    CreatedByAnotherAgent,
}

/// How PutLogEvents reports events outside the accepted time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RejectStyle {
    /// As the AWS API reference describes (first too-new; exclusive ends; retention).
    Aws,
    /// As moto 5.x does (index of the last too-old / last too-new event; no retention).
    Moto,
}

#[derive(Debug)]
struct Model {
    groups: BTreeMap<String, BTreeMap<String, Vec<(i64, String)>>>,
    /// Per group: what CreateLogGroup carried (`kmsKeyId`, `logGroupClass`, `tags`) and
    /// `retentionInDays` once set.
    settings: BTreeMap<String, serde_json::Map<String, Value>>,
    faults: VecDeque<(Op, Fault)>,
    always: Option<Fault>,
    poison: Option<&'static str>,
    style: RejectStyle,
    retention_ms: Option<i64>,
    calls: Vec<Op>,
    /// The stream of each PutLogEvents call, in arrival order.
    puts: Vec<String>,
    /// Streams whose every PutLogEvents is answered with a fault.
    failing_streams: BTreeMap<String, Fault>,
    /// The access key that signed each call in `calls`.
    signers: Vec<String>,
    /// Requests without `X-Amz-Target` go to STS.
    sts: StsModel,
}

type Shared = Arc<Mutex<Model>>;

/// A running fake; the server task ends with the test's runtime.
#[derive(Debug, Clone)]
pub(crate) struct FakeCloudWatch {
    pub(crate) url: String,
    model: Shared,
}

impl FakeCloudWatch {
    /// Start on a free port.
    pub(crate) async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// Start on `addr`.
    pub(crate) async fn start_on(addr: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        Self::serve(listener)
    }

    /// Serve on a bound listener.
    pub(crate) fn serve(listener: tokio::net::TcpListener) -> Self {
        let url = format!("http://{}", listener.local_addr().unwrap());
        let model: Shared = Arc::new(Mutex::new(Model {
            groups: BTreeMap::new(),
            settings: BTreeMap::new(),
            faults: VecDeque::new(),
            always: None,
            poison: None,
            style: RejectStyle::Aws,
            retention_ms: None,
            calls: Vec::new(),
            puts: Vec::new(),
            failing_streams: BTreeMap::new(),
            signers: Vec::new(),
            sts: StsModel { lifetime: Duration::from_secs(3600), ..StsModel::default() },
        }));
        let app = Router::new().route("/", post(handle)).with_state(Arc::clone(&model));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, model }
    }

    fn model(&self) -> std::sync::MutexGuard<'_, Model> {
        self.model.lock().unwrap()
    }

    /// Create a group (and optionally a stream) up front.
    pub(crate) fn with_stream(&self, group: &str, stream: Option<&str>) {
        let mut m = self.model();
        let g = m.groups.entry(group.into()).or_default();
        if let Some(s) = stream {
            g.entry(s.into()).or_default();
        }
    }

    /// Answer the next `times` calls of `op` with `fault`.
    pub(crate) fn fail_next(&self, op: Op, fault: Fault, times: usize) {
        let mut m = self.model();
        for _ in 0..times {
            m.faults.push_back((op, fault.clone()));
        }
    }

    /// Answer every PutLogEvents to `stream` (any group) with `fault`.
    pub(crate) fn fail_stream(&self, stream: &str, fault: Fault) {
        self.model().failing_streams.insert(stream.into(), fault);
    }

    /// The stream of each PutLogEvents call so far, in arrival order (failed ones too).
    pub(crate) fn puts(&self) -> Vec<String> {
        self.model().puts.clone()
    }

    /// Answer every call with `fault`.
    pub(crate) fn fail_always(&self, fault: Fault) {
        self.model().always = Some(fault);
    }

    /// Reject a whole PutLogEvents containing a message equal to `message`.
    pub(crate) fn poison(&self, message: &'static str) {
        self.model().poison = Some(message);
    }

    /// How time-window rejections are reported, and the groups' retention.
    pub(crate) fn rejections(&self, style: RejectStyle, retention_ms: Option<i64>) {
        let mut m = self.model();
        m.style = style;
        m.retention_ms = retention_ms;
    }

    /// The group's settings as CloudWatch would describe them (`None`: no such group).
    pub(crate) fn group_settings(&self, group: &str) -> Option<serde_json::Map<String, Value>> {
        let m = self.model();
        m.groups.contains_key(group).then(|| m.settings.get(group).cloned().unwrap_or_default())
    }

    /// Every call received, in order.
    pub(crate) fn calls(&self) -> Vec<Op> {
        self.model().calls.clone()
    }

    /// The access key that signed each call, in order (as `calls`).
    pub(crate) fn signers(&self) -> Vec<String> {
        self.model().signers.clone()
    }

    /// The lifetime of the credentials STS issues, and how many AssumeRole calls it denies
    /// first.
    pub(crate) fn sts(&self, lifetime: Duration, deny_next: usize) {
        let mut m = self.model();
        m.sts.lifetime = lifetime;
        m.sts.deny_next = deny_next;
    }

    /// Every STS call's parameters (and `signer`), in order.
    pub(crate) fn sts_calls(&self) -> Vec<BTreeMap<String, String>> {
        self.model().sts.calls.clone()
    }

    /// The events stored in a stream, in arrival order.
    pub(crate) fn stored(&self, group: &str, stream: &str) -> Vec<(i64, String)> {
        self.model().groups.get(group).and_then(|g| g.get(stream)).cloned().unwrap_or_default()
    }
}

fn error(status: u16, kind: &str, message: &str) -> (StatusCode, Value) {
    (StatusCode::from_u16(status).unwrap(), json!({"__type": kind, "message": message}))
}

fn fault_answer(fault: &Fault) -> (StatusCode, Value) {
    match fault {
        Fault::Throttle => error(400, "ThrottlingException", "Rate exceeded"),
        Fault::Unavailable => error(503, "ServiceUnavailableException", "Service unavailable"),
        Fault::Error { status, kind, message } => error(*status, kind, message),
        Fault::CreatedByAnotherAgent => error(400, "ResourceAlreadyExistsException", "already exists"),
    }
}

async fn handle(State(model): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(target) = headers.get("x-amz-target") else {
        return testing_sts::answer(&mut model.lock().unwrap().sts, &headers, &body);
    };
    let op = target.to_str().ok().and_then(Op::parse);
    let (status, body) = match (op, serde_json::from_slice::<Value>(&body)) {
        (Some(op), Ok(req)) => {
            let mut m = model.lock().unwrap();
            m.signers.push(testing_sts::signer(&headers));
            answer(&mut m, op, &req)
        }
        _ => error(400, "UnknownOperationException", "bad request"),
    };
    (status, [(header::CONTENT_TYPE, "application/x-amz-json-1.1")], body.to_string()).into_response()
}

fn answer(m: &mut Model, op: Op, req: &Value) -> (StatusCode, Value) {
    m.calls.push(op);
    let group = req["logGroupName"].as_str().unwrap_or_default().to_owned();
    let stream = req["logStreamName"].as_str().unwrap_or_default().to_owned();
    if op == Op::PutLogEvents {
        m.puts.push(stream.clone());
        if let Some(fault) = m.failing_streams.get(&stream) {
            return fault_answer(fault);
        }
    }
    if let Some(fault) = &m.always {
        return fault_answer(fault);
    }
    if let Some(pos) = m.faults.iter().position(|(o, _)| *o == op) {
        let (_, fault) = m.faults.remove(pos).unwrap();
        if let Fault::CreatedByAnotherAgent = fault {
            let g = m.groups.entry(group).or_default();
            if op == Op::CreateLogStream {
                g.entry(stream).or_default();
            }
        }
        return fault_answer(&fault);
    }
    let ok = |v: Value| (StatusCode::OK, v);
    match op {
        Op::CreateLogGroup => {
            if m.groups.contains_key(&group) {
                return error(
                    400,
                    "ResourceAlreadyExistsException",
                    "The specified log group already exists",
                );
            }
            let mut settings = serde_json::Map::new();
            for key in ["kmsKeyId", "logGroupClass", "tags"] {
                if let Some(v) = req.get(key) {
                    settings.insert(key.into(), v.clone());
                }
            }
            m.settings.insert(group.clone(), settings);
            m.groups.insert(group, BTreeMap::new());
            ok(json!({}))
        }
        Op::PutRetentionPolicy => {
            if !m.groups.contains_key(&group) {
                return error(400, "ResourceNotFoundException", "The specified log group does not exist.");
            }
            let days = req["retentionInDays"].as_i64().unwrap_or_default();
            if !crate::config::groups::VALID_RETENTION_DAYS.iter().any(|&d| i64::from(d) == days) {
                return error(400, "InvalidParameterException", "Invalid retention value");
            }
            m.settings.entry(group).or_default().insert("retentionInDays".into(), json!(days));
            ok(json!({}))
        }
        Op::DescribeLogGroups => {
            let prefix = req["logGroupNamePrefix"].as_str().unwrap_or_default();
            let groups: Vec<Value> = m
                .groups
                .keys()
                .filter(|name| name.starts_with(prefix))
                .map(|name| {
                    let mut g = m.settings.get(name).cloned().unwrap_or_default();
                    g.remove("tags");
                    g.insert("logGroupName".into(), json!(name));
                    Value::Object(g)
                })
                .collect();
            ok(json!({ "logGroups": groups }))
        }
        Op::CreateLogStream => {
            let Some(g) = m.groups.get_mut(&group) else {
                return error(400, "ResourceNotFoundException", "The specified log group does not exist.");
            };
            if g.contains_key(&stream) {
                return error(
                    400,
                    "ResourceAlreadyExistsException",
                    "The specified log stream already exists",
                );
            }
            g.insert(stream, Vec::new());
            ok(json!({}))
        }
        Op::PutLogEvents => {
            let events: Vec<(i64, String)> = req["logEvents"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|e| {
                            let ts = e["timestamp"].as_i64().unwrap_or_default();
                            (ts, e["message"].as_str().unwrap_or_default().to_owned())
                        })
                        .collect()
                })
                .unwrap_or_default();
            if events.windows(2).any(|w| w[0].0 > w[1].0) {
                return error(
                    400,
                    "InvalidParameterException",
                    "Log events in a single PutLogEvents request must be in chronological order.",
                );
            }
            if let Some(p) = m.poison
                && events.iter().any(|(_, msg)| msg == p)
            {
                return error(400, "InvalidParameterException", "Log event is invalid.");
            }
            let (style, retention) = (m.style, m.retention_ms);
            let Some(target) = m.groups.get_mut(&group).and_then(|g| g.get_mut(&stream)) else {
                return error(400, "ResourceNotFoundException", "The specified log stream does not exist.");
            };
            let now =
                i64::try_from(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis())
                    .unwrap();
            let mut info = serde_json::Map::new();
            let (mut too_old, mut expired) = (0usize, 0usize);
            for (i, (ts, msg)) in events.into_iter().enumerate() {
                if ts < now - MAX_EVENT_AGE_MS {
                    too_old += 1;
                    if style == RejectStyle::Moto {
                        info.insert("tooOldLogEventEndIndex".into(), json!(i));
                    }
                } else if ts > now + MAX_EVENT_FUTURE_MS {
                    match style {
                        RejectStyle::Moto => {
                            info.insert("tooNewLogEventStartIndex".into(), json!(i));
                        }
                        RejectStyle::Aws => {
                            info.entry("tooNewLogEventStartIndex").or_insert(json!(i));
                        }
                    }
                } else if style == RejectStyle::Aws && retention.is_some_and(|r| ts < now - r) {
                    expired = i + 1;
                } else {
                    target.push((ts, msg));
                }
            }
            if style == RejectStyle::Aws {
                if too_old > 0 {
                    info.insert("tooOldLogEventEndIndex".into(), json!(too_old));
                }
                if expired > 0 {
                    info.insert("expiredLogEventEndIndex".into(), json!(expired));
                }
            }
            if info.is_empty() {
                ok(json!({"nextSequenceToken": "1"}))
            } else {
                ok(json!({"nextSequenceToken": "1", "rejectedLogEventsInfo": info}))
            }
        }
    }
}
