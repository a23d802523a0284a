//! The data path: accepting connections, judging each request, forwarding or faulting it.
//!
//! Per request: decide the fault plan, read the body (paced under a bandwidth cap), then in
//! order: front-door faults (throttle, 503, blackhole), the per-account create quotas, the
//! CloudWatch rules, and finally forward (or acknowledge in sink mode), possibly cutting
//! the connection afterwards (`Ambiguous`).
//!
//! Cutting a connection must look like a network failure to the client, so it is a TCP
//! reset: each connection keeps a duplicate of its socket; to cut, the connection task sets
//! `SO_LINGER 0` on it and drops both handles, which makes the kernel send RST.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::TRANSFER_ENCODING;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::faults::{FaultId, FaultKind};
use super::journal::{Entry, Outcome};
use super::rules::{self, BatchStats, GroupSettingsRequest, NamedRequest, PutLogEventsRequest, Rejection};
use super::{Shared, Upstream, control, lock, wire};

/// How long to wait before retrying to re-open the listener after a refusal ended.
const REBIND_RETRY: Duration = Duration::from_millis(50);

/// Accepts connections until shutdown; closes the listener while a certain `Refuse` lasts.
pub(super) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, addr: SocketAddr) {
    let mut listener = Some(listener);
    let mut changes = shared.fault_changes.subscribe();
    loop {
        if lock(&shared.faults).refuses_all() {
            // Closing the socket makes the kernel refuse connections (RST to SYN).
            if listener.take().is_some() {
                shared.listening.send_replace(false);
            }
        } else if listener.is_none() {
            match TcpListener::bind(addr).await {
                Ok(reopened) => {
                    listener = Some(reopened);
                    shared.listening.send_replace(true);
                }
                Err(error) => {
                    tracing::warn!(%addr, %error, "gateway: cannot re-open listener, retrying");
                    let stop = tokio::select! {
                        () = shared.shutdown.cancelled() => true,
                        () = tokio::time::sleep(REBIND_RETRY) => false,
                    };
                    if stop {
                        return;
                    }
                    continue;
                }
            }
        }
        let Some(active) = listener.as_ref() else {
            let stop = tokio::select! {
                () = shared.shutdown.cancelled() => true,
                _ = changes.changed() => false,
            };
            if stop {
                return;
            }
            continue;
        };
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            _ = changes.changed() => {}
            accepted = active.accept() => match accepted {
                Ok((stream, _peer)) => {
                    if shared.refuse_connection().is_some() {
                        reset(&stream);
                        drop(stream);
                        shared.record(RequestInfo::connection().entry(Outcome::Faulted {
                            fault: FaultKind::Refuse,
                            upstream_status: None,
                        }));
                    } else {
                        tokio::spawn(serve_connection(Arc::clone(&shared), stream));
                    }
                }
                Err(error) => tracing::debug!(%error, "gateway: accept failed"),
            },
        }
    }
}

fn reset(stream: &TcpStream) {
    if let Err(error) = stream.set_zero_linger() {
        tracing::debug!(%error, "gateway: cannot set SO_LINGER 0");
    }
}

/// Serves one client connection; cuts it (RST) when a request asks to or a `Refuse` starts.
async fn serve_connection(shared: Arc<Shared>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let (stream, killer) = match duplicate(stream) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(%error, "gateway: cannot duplicate socket");
            return;
        }
    };
    let cut = shared.shutdown.child_token();
    let service = {
        let shared = Arc::clone(&shared);
        let cut = cut.clone();
        service_fn(move |request| {
            let shared = Arc::clone(&shared);
            let cut = cut.clone();
            async move { Ok::<_, Infallible>(handle(shared, cut, request).await) }
        })
    };
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut changes = shared.fault_changes.subscribe();
    loop {
        tokio::select! {
            _ = &mut connection => return,
            () = cut.cancelled() => break,
            Ok(()) = changes.changed() => {
                if shared.refuse_connection().is_some() {
                    break;
                }
            }
        }
    }
    reset(&killer);
    // Dropping `connection` (and its socket) and `killer` closes the last descriptor: RST.
}

/// Splits a socket into the one hyper serves and a duplicate used only to reset it.
fn duplicate(stream: TcpStream) -> std::io::Result<(TcpStream, TcpStream)> {
    let std_stream = stream.into_std()?;
    let copy = std_stream.try_clone()?;
    Ok((TcpStream::from_std(std_stream)?, TcpStream::from_std(copy)?))
}

/// Cuts the connection: the connection task resets it and drops this future.
async fn cut_connection(cut: &CancellationToken) -> Response<Full<Bytes>> {
    cut.cancel();
    std::future::pending().await
}

/// What the journal records about a request.
#[derive(Debug, Default)]
struct RequestInfo {
    operation: String,
    group: Option<String>,
    stream: Option<String>,
    stats: BatchStats,
    /// CreateLogGroup: the class asked for (`STANDARD` when none).
    class: Option<String>,
    /// CreateLogGroup carries tags (so it needs `logs:TagResource` too).
    tagged: bool,
    /// The access key that signed the request (`-` when unsigned).
    signer: String,
}

impl RequestInfo {
    fn connection() -> Self {
        Self { operation: "-".to_owned(), ..Self::default() }
    }

    fn entry(&self, outcome: Outcome) -> Entry {
        Entry {
            seq: 0,
            at_ms: 0,
            unix_ms: 0,
            operation: self.operation.clone(),
            group: self.group.clone(),
            stream: self.stream.clone(),
            events: self.stats.events,
            bytes: self.stats.bytes,
            outcome,
        }
    }
}

fn faulted(fault: FaultKind, upstream_status: Option<u16>) -> Outcome {
    Outcome::Faulted { fault, upstream_status }
}

/// Handles one request from arrival to answer (or cut).
async fn handle(
    shared: Arc<Shared>,
    cut: CancellationToken,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    if request.uri().path().starts_with(control::PREFIX) {
        return control::handle(&shared, request).await;
    }
    let request_id = shared.next_request_id();
    let mut info = RequestInfo {
        operation: wire::operation(request.headers()).to_owned(),
        signer: wire::signer(request.headers()).unwrap_or("-").to_owned(),
        ..RequestInfo::default()
    };
    let plan = shared.plan(&info.operation);
    let (parts, mut body) = request.into_parts();

    if let Some((_, kind @ (FaultKind::Refuse | FaultKind::Reset))) = plan.terminal {
        if kind == FaultKind::Reset {
            // Read part of the request so the client is mid-send when the reset comes.
            let _ = body.frame().await;
        }
        shared.record(info.entry(faulted(kind, None)));
        return cut_connection(&cut).await;
    }

    let body = match read_body(body, shared.max_body_bytes, plan.bandwidth).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            let rejection = Rejection::body_too_large(shared.max_body_bytes);
            return reject(&shared, &info, &rejection, request_id);
        }
        Err(BodyError::Transport(error)) => {
            // The client went away mid-request: nothing to answer, nothing forwarded.
            tracing::debug!(%error, "gateway: client body failed");
            return cut_connection(&cut).await;
        }
    };
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    let verdict = inspect(&body, &mut info);
    let terminal = plan
        .terminal
        .or_else(|| shared.answer_for_group(&info.operation, info.group.as_deref()))
        .or_else(|| {
            // As in IAM: CreateLogGroup with tags is denied without logs:TagResource.
            info.tagged.then(|| shared.denied_for_implied("TagResource", info.group.as_deref())).flatten()
        });

    match terminal {
        Some((_, FaultKind::Throttle)) => {
            shared.record(info.entry(faulted(FaultKind::Throttle, None)));
            let throttled = Rejection::throttled();
            return paced(
                wire::error(throttled.status, &throttled.error_type, &throttled.message, request_id),
                plan.bandwidth,
            )
            .await;
        }
        Some((_, FaultKind::AccessDenied)) => {
            shared.record(info.entry(faulted(FaultKind::AccessDenied, None)));
            let action = match terminal {
                Some((id, _)) if info.tagged && !shared.fault_covers(id, &info.operation) => "TagResource",
                _ => info.operation.rsplit('.').next().unwrap_or_default(),
            };
            let message = format!(
                "User is not authorized to perform: logs:{action} on resource: log-group:{}",
                info.group.as_deref().unwrap_or("*")
            );
            return paced(wire::error(400, "AccessDeniedException", &message, request_id), plan.bandwidth)
                .await;
        }
        Some((_, FaultKind::ServiceUnavailable)) => {
            shared.record(info.entry(faulted(FaultKind::ServiceUnavailable, None)));
            return paced(wire::service_unavailable(request_id), plan.bandwidth).await;
        }
        Some((id, FaultKind::Blackhole)) => {
            shared.record(info.entry(faulted(FaultKind::Blackhole, None)));
            hold_while_active(&shared, id).await;
            return cut_connection(&cut).await;
        }
        _ => {}
    }

    if let Some(rejection) = over_quota(&shared, &info.operation) {
        return reject(&shared, &info, &rejection, request_id);
    }
    if let Err(rejection) = verdict {
        return reject(&shared, &info, &rejection, request_id);
    }

    let ambiguous = matches!(terminal, Some((_, FaultKind::Ambiguous)));
    let response = match &shared.upstream {
        Some(upstream) => match forward(upstream, &parts, body).await {
            Ok(response) => response,
            Err(error) => {
                shared.record(info.entry(Outcome::UpstreamFailed { error: error.clone() }));
                if ambiguous {
                    return cut_connection(&cut).await;
                }
                return wire::error(
                    502,
                    "InternalFailure",
                    &format!("gateway: upstream failed: {error}"),
                    request_id,
                );
            }
        },
        None => wire::acknowledge(&info.operation, request_id),
    };
    let response = match info.operation.as_str() {
        "CreateLogGroup" if response.status().is_success() => {
            if let Some(group) = &info.group {
                let class = info.class.clone().unwrap_or_else(|| "STANDARD".to_owned());
                lock(&shared.group_classes).insert(group.clone(), class);
            }
            response
        }
        "DescribeLogGroups" if response.status().is_success() => with_group_classes(&shared, response).await,
        _ => response,
    };
    let status = response.status();
    if let (true, Some(group), Some(stream)) =
        (status.is_success() && info.operation == "PutLogEvents", &info.group, &info.stream)
    {
        let mut journal = lock(&shared.journal);
        journal.accept(group, stream, info.stats.events, info.stats.bytes);
        journal.signed(&info.signer);
    }
    if ambiguous {
        shared.record(info.entry(faulted(FaultKind::Ambiguous, Some(status.as_u16()))));
        return cut_connection(&cut).await;
    }
    let outcome = if shared.upstream.is_some() {
        Outcome::Forwarded { status: status.as_u16() }
    } else {
        Outcome::Acknowledged
    };
    shared.record(info.entry(outcome));
    paced(response, plan.bandwidth).await
}

/// Parses what the rules need, fills the journal fields, and returns the rules' verdict.
fn inspect(body: &[u8], info: &mut RequestInfo) -> Result<(), Rejection> {
    match info.operation.as_str() {
        "PutLogEvents" => {
            let request: PutLogEventsRequest<'_> =
                serde_json::from_slice(body).map_err(Rejection::malformed)?;
            info.group = Some(request.log_group_name.clone().into_owned());
            info.stream = Some(request.log_stream_name.clone().into_owned());
            info.stats = rules::check_put_log_events(&request)?;
            Ok(())
        }
        "CreateLogGroup" | "PutRetentionPolicy" | "TagResource" | "TagLogGroup" => {
            let request: GroupSettingsRequest = serde_json::from_slice(body).map_err(Rejection::malformed)?;
            let group = match (&request.log_group_name, &request.resource_arn) {
                (Some(name), _) => name.clone(),
                (None, Some(arn)) if info.operation == "TagResource" => {
                    rules::group_from_arn(arn)?.to_owned()
                }
                _ => String::new(),
            };
            info.group = Some(group.clone());
            match info.operation.as_str() {
                "CreateLogGroup" => {
                    rules::check_group_name(&group, true)?;
                    rules::check_create_settings(&request)?;
                    info.class = request.log_group_class.clone();
                    info.tagged = request.tags.as_ref().is_some_and(|t| !t.is_empty());
                    Ok(())
                }
                "PutRetentionPolicy" => {
                    rules::check_group_name(&group, false)?;
                    rules::check_retention(request.retention_in_days.as_ref()).map(|_| ())
                }
                _ => {
                    if info.operation == "TagLogGroup" {
                        rules::check_group_name(&group, false)?;
                    }
                    rules::check_tags(&request.tags.unwrap_or_default())
                }
            }
        }
        "CreateLogStream" => {
            let request: NamedRequest<'_> = serde_json::from_slice(body).map_err(Rejection::malformed)?;
            let group = request.log_group_name.as_deref().unwrap_or_default();
            info.group = request.log_group_name.as_deref().map(str::to_owned);
            info.stream = request.log_stream_name.as_deref().map(str::to_owned);
            rules::check_group_name(group, false)?;
            rules::check_stream_name(request.log_stream_name.as_deref().unwrap_or_default())
        }
        "-" => Ok(()),
        _ => {
            // Other operations pass unchecked; names are journaled when present.
            if let Ok(request) = serde_json::from_slice::<NamedRequest<'_>>(body) {
                info.group = request.log_group_name.map(|name| name.into_owned());
                info.stream = request.log_stream_name.map(|name| name.into_owned());
            }
            Ok(())
        }
    }
}

/// Adds `logGroupClass` to each group of a DescribeLogGroups answer that lacks it, as
/// CloudWatch always returns it: the class the gateway saw at creation, else `STANDARD`.
async fn with_group_classes(shared: &Shared, response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    let (mut head, body) = response.into_parts();
    let Ok(bytes) = body.collect().await.map(http_body_util::Collected::to_bytes);
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Response::from_parts(head, Full::new(bytes));
    };
    if let Some(groups) = value.get_mut("logGroups").and_then(serde_json::Value::as_array_mut) {
        let classes = lock(&shared.group_classes);
        for group in groups.iter_mut().filter_map(serde_json::Value::as_object_mut) {
            if group.contains_key("logGroupClass") {
                continue;
            }
            let name = group.get("logGroupName").and_then(serde_json::Value::as_str).unwrap_or_default();
            let class = classes.get(name).cloned().unwrap_or_else(|| "STANDARD".to_owned());
            group.insert("logGroupClass".to_owned(), serde_json::Value::String(class));
        }
    }
    head.headers.remove(hyper::header::CONTENT_LENGTH);
    Response::from_parts(head, Full::new(Bytes::from(value.to_string())))
}

/// Applies the per-account create quotas; every call counts, as at the AWS front door.
fn over_quota(shared: &Shared, operation: &str) -> Option<Rejection> {
    let bucket = match operation {
        "CreateLogGroup" => &shared.group_bucket,
        "CreateLogStream" => &shared.stream_bucket,
        "PutLogEvents" => shared.put_bucket.as_ref()?,
        _ => return None,
    };
    let granted = lock(bucket).try_take(std::time::Instant::now());
    (!granted).then(Rejection::throttled)
}

fn reject(
    shared: &Shared,
    info: &RequestInfo,
    rejection: &Rejection,
    request_id: u64,
) -> Response<Full<Bytes>> {
    shared.record(
        info.entry(Outcome::Rejected { reason: rejection.reason, error_type: rejection.error_type.clone() }),
    );
    wire::error(rejection.status, &rejection.error_type, &rejection.message, request_id)
}

/// Waits until the fault is removed (or the gateway stops).
async fn hold_while_active(shared: &Shared, id: FaultId) {
    // Subscribe before checking so a removal between the two is not missed.
    let mut changes = shared.fault_changes.subscribe();
    while lock(&shared.faults).contains(id) {
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
    }
}

#[derive(Debug)]
enum BodyError {
    TooLarge,
    Transport(hyper::Error),
}

/// Reads the whole body, refusing more than `limit` bytes, pacing under a bandwidth cap.
async fn read_body(mut body: Incoming, limit: usize, bandwidth: Option<u64>) -> Result<Bytes, BodyError> {
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Transport)?;
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > limit {
                return Err(BodyError::TooLarge);
            }
            buffer.extend_from_slice(&data);
            if let Some(rate) = bandwidth {
                tokio::time::sleep(transfer_time(data.len(), rate)).await;
            }
        }
    }
    Ok(buffer.freeze())
}

/// Delays an answer by its transfer time under a bandwidth cap.
async fn paced(response: Response<Full<Bytes>>, bandwidth: Option<u64>) -> Response<Full<Bytes>> {
    if let Some(rate) = bandwidth {
        let length = hyper::body::Body::size_hint(response.body()).exact().unwrap_or(0);
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        tokio::time::sleep(transfer_time(length, rate)).await;
    }
    response
}

fn transfer_time(bytes: usize, bytes_per_second: u64) -> Duration {
    Duration::from_secs_f64(bytes as f64 / bytes_per_second.max(1) as f64)
}

/// Sends the request to the upstream unchanged (method, path, headers, body) and returns
/// its answer with the body buffered.
async fn forward(
    upstream: &Upstream,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, String> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{}{path}", upstream.base))
        .body(Full::new(body))
        .map_err(|error| error.to_string())?;
    *request.headers_mut() = parts.headers.clone();
    // The body is buffered and sent with its Content-Length.
    request.headers_mut().remove(TRANSFER_ENCODING);
    let response = upstream.client.request(request).await.map_err(|error| format!("{error:?}"))?;
    let (mut head, body) = response.into_parts();
    let body = body.collect().await.map_err(|error| error.to_string())?.to_bytes();
    head.headers.remove(TRANSFER_ENCODING);
    Ok(Response::from_parts(head, Full::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_time_is_bytes_over_rate() {
        assert_eq!(transfer_time(1_000, 1_000), Duration::from_secs(1));
        assert_eq!(transfer_time(0, 10), Duration::ZERO);
        assert_eq!(transfer_time(512, 1_024), Duration::from_millis(500));
    }

    #[test]
    fn inspect_fills_names_and_stats_and_judges() {
        let mut info = RequestInfo { operation: "PutLogEvents".to_owned(), ..RequestInfo::default() };
        let body =
            br#"{"logGroupName":"g","logStreamName":"s","logEvents":[{"timestamp":1,"message":"hi\n"}]}"#;
        assert_eq!(inspect(body, &mut info), Ok(()));
        assert_eq!(info.group.as_deref(), Some("g"));
        assert_eq!(info.stream.as_deref(), Some("s"));
        assert_eq!(info.stats, BatchStats { events: 1, bytes: 29 });

        let mut create = RequestInfo { operation: "CreateLogStream".to_owned(), ..RequestInfo::default() };
        let rejected = inspect(br#"{"logGroupName":"g","logStreamName":"a:b"}"#, &mut create);
        assert_eq!(rejected.map_err(|r| r.reason), Err(rules::RejectReason::InvalidStreamName));

        let mut malformed = RequestInfo { operation: "PutLogEvents".to_owned(), ..RequestInfo::default() };
        let verdict = inspect(b"{not json", &mut malformed).map_err(|r| r.error_type);
        assert_eq!(verdict, Err("SerializationException".to_owned()));
    }
}
