//! The stand-in API server against the real clients: `kube::Client`, `kube::runtime::watcher`
//! (ListWatch and StreamingList), raw HTTP for wire details, and kubectl.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use harness::standin::{Availability, Standin, StandinApi, StandinOptions, owner_reference_json, pod_json};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Config};
use serde_json::Value;

/// Upper bound for anything the tests wait for; only reached when something is broken.
const PATIENCE: Duration = Duration::from_secs(20);

fn options() -> StandinOptions {
    StandinOptions { bookmark_interval: Duration::from_millis(100), ..StandinOptions::default() }
}

async fn start(options: StandinOptions) -> Standin {
    StandinApi::start(options).await.expect("stand-in starts")
}

async fn client(standin: &Standin) -> Client {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    standin.write_kubeconfig(&path).unwrap();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    Client::try_from(config).unwrap()
}

fn node_pod(name: &str, node: Option<&str>) -> Value {
    pod_json("default", name, node, &[("app", name)], &[("main", "docker.io/library/busybox:1.37")])
}

type Events = Pin<Box<dyn Stream<Item = Result<watcher::Event<Pod>, watcher::Error>> + Send>>;

/// What a watcher consumer (like the shipper's pod cache) knows, rebuilt from the events.
struct View {
    events: Events,
    pods: BTreeMap<String, Pod>,
    buffer: BTreeMap<String, Pod>,
    inits: usize,
    synced: bool,
}

impl View {
    fn new(client: Client, config: watcher::Config) -> Self {
        let events = watcher(Api::<Pod>::all(client), config).default_backoff().boxed();
        Self { events, pods: BTreeMap::new(), buffer: BTreeMap::new(), inits: 0, synced: false }
    }

    fn on_node_a(client: Client) -> Self {
        Self::new(client, watcher::Config::default().fields("spec.nodeName=node-a"))
    }

    fn names(&self) -> Vec<&str> {
        self.pods.keys().map(String::as_str).collect()
    }

    /// Consumes events until `done` holds.
    async fn until(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !done(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for: {what}; have {:?}",
                self.names()
            );
            // Short polls, so conditions on server-side counters are re-checked while the
            // watcher keeps being driven (it only re-watches when polled).
            let Ok(event) = tokio::time::timeout(Duration::from_millis(50), self.events.next()).await else {
                continue;
            };
            let event = event.expect("watcher stream ends only on drop");
            let name = |pod: &Pod| pod.metadata.name.clone().unwrap_or_default();
            match event {
                Ok(watcher::Event::Init) => {
                    self.inits += 1;
                    self.buffer.clear();
                }
                Ok(watcher::Event::InitApply(pod)) => {
                    self.buffer.insert(name(&pod), pod);
                }
                Ok(watcher::Event::InitDone) => {
                    self.pods = std::mem::take(&mut self.buffer);
                    self.synced = true;
                }
                Ok(watcher::Event::Apply(pod)) => {
                    self.pods.insert(name(&pod), pod);
                }
                Ok(watcher::Event::Delete(pod)) => {
                    self.pods.remove(&name(&pod));
                }
                // Outage windows produce watch start failures; the watcher retries.
                Err(_) => {}
            }
        }
    }

    async fn synced_with(&mut self, names: &[&str]) {
        self.until("initial sync", |v| v.synced && v.names() == names).await;
    }
}

/// Polls `check` (server-side state) until it holds.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn node_watch_sees_binding_labels_moves_and_deletes() {
    let standin = start(options()).await;
    standin.apply_pod(node_pod("late", None)).unwrap();
    standin.apply_pod(node_pod("elsewhere", Some("node-b"))).unwrap();
    standin.apply_pod(node_pod("here", Some("node-a"))).unwrap();
    let mut view = View::on_node_a(client(&standin).await);
    view.synced_with(&["here"]).await;

    standin.bind("default", "late", "node-a").unwrap();
    view.until("late bound to node-a appears", |v| v.pods.contains_key("late")).await;

    standin.set_labels("default", "late", [("app", "v2"), ("tier", "web")]).unwrap();
    view.until("label change", |v| {
        v.pods["late"].metadata.labels.as_ref().and_then(|l| l.get("app")).map(String::as_str) == Some("v2")
    })
    .await;

    standin.bind("default", "here", "node-b").unwrap();
    view.until("pod moved away disappears", |v| !v.pods.contains_key("here")).await;

    standin.delete_pod("default", "late").unwrap();
    view.until("deleted pod disappears", |v| v.pods.is_empty()).await;
    standin.apply_pod(node_pod("marker", Some("node-a"))).unwrap();
    view.until("marker appears", |v| v.pods.contains_key("marker")).await;
    assert_eq!(view.names(), ["marker"], "node-b pods never show up");
    assert_eq!(view.inits, 1, "no relist was needed");
}

#[tokio::test]
async fn watch_timeout_resumes_without_relist() {
    let standin = start(options()).await;
    let mut view = View::new(
        client(&standin).await,
        watcher::Config::default().fields("spec.nodeName=node-a").timeout(1),
    );
    view.synced_with(&[]).await;
    view.until("the server ended watches by timeout and kube re-watched", |_| standin.stats().watches >= 3)
        .await;
    standin.apply_pod(node_pod("after-timeouts", Some("node-a"))).unwrap();
    view.until("pod created after re-watches", |v| v.pods.contains_key("after-timeouts")).await;
    assert_eq!(view.inits, 1);
    assert_eq!(standin.stats().lists, 1, "resumed by watch, never relisted");
}

#[tokio::test]
async fn compaction_during_outage_gives_410_then_relist_converges() {
    let standin = start(options()).await;
    for name in ["a1", "a2"] {
        standin.apply_pod(node_pod(name, Some("node-a"))).unwrap();
    }
    let mut view = View::on_node_a(client(&standin).await);
    view.synced_with(&["a1", "a2"]).await;

    standin.set_availability(Availability::Unavailable);
    standin.delete_pod("default", "a1").unwrap();
    standin.apply_pod(node_pod("a3", Some("node-a"))).unwrap();
    standin.compact();
    standin.drop_watches();
    standin.set_availability(Availability::Available);

    view.until("store converges after relist", |v| v.names() == ["a2", "a3"] && v.inits == 2).await;
    let stats = standin.stats();
    assert!(stats.expired_watches >= 1, "{stats:?}");
    assert_eq!(stats.lists, 2, "{stats:?}");
}

#[tokio::test]
async fn refused_connections_then_recovery() {
    let standin = start(options()).await;
    let mut view = View::on_node_a(client(&standin).await);
    view.synced_with(&[]).await;

    standin.set_availability(Availability::Refusing);
    let addr = standin.url().trim_start_matches("http://").to_owned();
    eventually("the API port refuses connections", || std::net::TcpStream::connect(&addr).is_err()).await;
    standin.apply_pod(node_pod("during-outage", Some("node-a"))).unwrap();
    standin.set_availability(Availability::Available);
    view.until("change made during the outage arrives", |v| v.pods.contains_key("during-outage")).await;
}

#[tokio::test]
async fn bookmarks_alone_advance_the_resume_point() {
    let standin = start(options()).await;
    let mut view = View::on_node_a(client(&standin).await);
    view.synced_with(&[]).await;

    for name in ["b1", "b2", "b3"] {
        standin.apply_pod(node_pod(name, Some("node-b"))).unwrap();
    }
    let filtered_rv = standin.resource_version();
    view.until("a bookmark carries the filtered-out changes' RV", |_| {
        standin.stats().last_bookmark_rv >= filtered_rv
    })
    .await;
    // Keep driving the watcher until it has surely read that bookmark: two more were sent.
    let seen = standin.stats().bookmarks;
    view.until("more bookmarks", |_| standin.stats().bookmarks > seen + 1).await;

    // History before the bookmark is gone; a watcher that resumed from its list RV would 410.
    standin.compact();
    standin.drop_watches();
    standin.apply_pod(node_pod("a1", Some("node-a"))).unwrap();
    view.until("new pod after resume", |v| v.pods.contains_key("a1")).await;
    let stats = standin.stats();
    assert_eq!(view.inits, 1, "no relist");
    assert_eq!(stats.expired_watches, 0, "{stats:?}");
    assert!(stats.watches >= 2, "resumed by a new watch: {stats:?}");
    assert!(stats.last_watch_rv >= filtered_rv, "{stats:?}");
}

#[tokio::test]
async fn streaming_list_needs_no_list_request() {
    let standin = start(options()).await;
    standin.apply_pod(node_pod("s1", Some("node-a"))).unwrap();
    standin.apply_pod(node_pod("s2", Some("node-b"))).unwrap();
    let mut view = View::new(
        client(&standin).await,
        watcher::Config::default().fields("spec.nodeName=node-a").streaming_lists(),
    );
    view.synced_with(&["s1"]).await;
    standin.apply_pod(node_pod("s3", Some("node-a"))).unwrap();
    view.until("live event after initial events", |v| v.names() == ["s1", "s3"]).await;
    let stats = standin.stats();
    assert_eq!(stats.lists, 0, "{stats:?}");
    assert!(stats.bookmarks >= 1, "initial-events-end bookmark: {stats:?}");
}

/// Scenario owners: the pod's `ownerReferences` as GET, LIST and the watch serve them.
#[tokio::test]
async fn owner_references_are_served_by_get_list_and_watch() {
    let owned = |name: &str, kind: &str, owner: &str| {
        let mut pod = node_pod(name, Some("node-a"));
        pod["metadata"]["ownerReferences"] = serde_json::json!([owner_reference_json(kind, owner)]);
        pod
    };
    let standin = start(options()).await;
    standin.apply_pod(owned("web-7d9f8b6c5d-x2k4p", "ReplicaSet", "web-7d9f8b6c5d")).unwrap();
    standin.apply_pod(node_pod("bare", Some("node-a"))).unwrap();
    let client = client(&standin).await;
    let mut view = View::on_node_a(client.clone());
    view.synced_with(&["bare", "web-7d9f8b6c5d-x2k4p"]).await;
    let controller = |pod: &Pod| {
        pod.metadata
            .owner_references
            .as_ref()
            .and_then(|o| o.iter().find(|r| r.controller == Some(true)))
            .map(|r| (r.api_version.clone(), r.kind.clone(), r.name.clone()))
    };
    let rs = Some(("apps/v1".to_owned(), "ReplicaSet".to_owned(), "web-7d9f8b6c5d".to_owned()));
    assert_eq!(controller(&view.pods["web-7d9f8b6c5d-x2k4p"]), rs, "initial list");
    assert!(view.pods["bare"].metadata.owner_references.is_none());

    // A pod created later arrives through the watch with its owner.
    standin.apply_pod(owned("report-29081520-abcde", "Job", "report-29081520")).unwrap();
    view.until("the Job's pod appears", |v| v.pods.contains_key("report-29081520-abcde")).await;
    let job = Some(("batch/v1".to_owned(), "Job".to_owned(), "report-29081520".to_owned()));
    assert_eq!(controller(&view.pods["report-29081520-abcde"]), job, "watch event");

    let pods: Api<Pod> = Api::namespaced(client, "default");
    let got = pods.get("web-7d9f8b6c5d-x2k4p").await.unwrap();
    assert_eq!(controller(&got), rs, "GET");
    let uid = &got.metadata.owner_references.unwrap()[0].uid;
    assert_eq!(uid, owner_reference_json("ReplicaSet", "web-7d9f8b6c5d")["uid"].as_str().unwrap());
}

#[tokio::test]
async fn get_and_get_opt() {
    let standin = start(options()).await;
    let stored = standin.apply_pod(node_pod("web", Some("node-a"))).unwrap();
    let pods: Api<Pod> = Api::namespaced(client(&standin).await, "default");

    assert!(pods.get_opt("missing").await.unwrap().is_none());
    match pods.get("missing").await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 404);
            assert_eq!(status.reason, "NotFound");
        }
        other => panic!("expected a 404 Status, got {other:?}"),
    }
    let pod = pods.get("web").await.unwrap();
    assert_eq!(pod.metadata.uid.as_deref(), stored["metadata"]["uid"].as_str());
    let status = &pod.status.unwrap().container_statuses.unwrap()[0];
    assert_eq!(
        status.container_id.as_deref(),
        stored["status"]["containerStatuses"][0]["containerID"].as_str()
    );
    assert!(status.container_id.as_deref().unwrap().starts_with("containerd://"));
}

#[tokio::test]
async fn list_pages_selectors_and_expired_continue() {
    let standin = start(options()).await;
    for i in 0..5 {
        standin.apply_pod(node_pod(&format!("p{i}"), Some("node-a"))).unwrap();
    }
    standin.apply_pod(node_pod("q", Some("node-b"))).unwrap();
    let pods: Api<Pod> = Api::all(client(&standin).await);

    let mut names = Vec::new();
    let mut params = ListParams::default().fields("spec.nodeName=node-a").limit(2);
    loop {
        let page = pods.list(&params).await.unwrap();
        names.extend(page.items.into_iter().filter_map(|p| p.metadata.name));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4"]);

    let labelled = pods.list(&ListParams::default().labels("app in (p1,q),app!=p1")).await.unwrap();
    assert_eq!(labelled.items.len(), 1);
    assert_eq!(labelled.items[0].metadata.name.as_deref(), Some("q"));

    match pods.list(&ListParams::default().fields("spec.containers=x")).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 400);
            assert_eq!(status.message, "field label not supported: spec.containers");
        }
        other => panic!("expected 400, got {other:?}"),
    }

    let first = pods.list(&ListParams::default().limit(2)).await.unwrap();
    let token = first.metadata.continue_.unwrap();
    standin.delete_pod("default", "p4").unwrap();
    standin.compact();
    match pods.list(&ListParams::default().limit(2).continue_token(&token)).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => panic!("expected 410 on an expired continue, got {other:?}"),
    }
}

/// Reads a raw watch body line by line until `count` events arrived (or EOF).
async fn read_events(response: &mut reqwest::Response, count: usize) -> Vec<Value> {
    let mut events = Vec::new();
    let mut pending = Vec::new();
    while events.len() < count {
        let chunk = tokio::time::timeout(PATIENCE, response.chunk()).await.expect("event in time").unwrap();
        let Some(chunk) = chunk else { break };
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            events.push(serde_json::from_slice(&line).expect("one JSON event per line"));
        }
    }
    assert!(pending.is_empty(), "no partial line left");
    events
}

fn summary(event: &Value) -> String {
    let object = &event["object"];
    format!(
        "{} {} node={} rv={}",
        event["type"].as_str().unwrap(),
        object["metadata"]["name"].as_str().unwrap_or("-"),
        object["spec"]["nodeName"].as_str().unwrap_or("-"),
        object["metadata"]["resourceVersion"].as_str().unwrap_or("-"),
    )
}

#[tokio::test]
async fn raw_watch_transitions_and_too_old_error() {
    let standin = start(options()).await;
    let http = reqwest::Client::new();
    let url = format!(
        "{}/api/v1/pods?&watch=true&timeoutSeconds=30&fieldSelector=spec.nodeName%3Dnode-a&resourceVersion={}",
        standin.url(),
        standin.resource_version()
    );
    let mut response = http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");

    standin.apply_pod(node_pod("p", None)).unwrap(); // unbound: not on node-a
    standin.bind("default", "p", "node-a").unwrap(); // -> ADDED
    standin.set_labels("default", "p", [("app", "x")]).unwrap(); // -> MODIFIED
    standin.bind("default", "p", "node-b").unwrap(); // -> DELETED with the old object
    standin.bind("default", "p", "node-a").unwrap(); // -> ADDED
    standin.delete_pod("default", "p").unwrap(); // -> DELETED
    let events = read_events(&mut response, 5).await;
    let lines: Vec<String> = events.iter().map(summary).collect();
    insta::assert_snapshot!("raw_watch_transitions", lines.join("\n"));

    // Too old: HTTP 200, one ERROR event with a 410 Status, then the end of the stream.
    standin.compact();
    let mut response = http.get(url.replace("resourceVersion=1", "resourceVersion=2")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let events = read_events(&mut response, 2).await;
    insta::assert_yaml_snapshot!("too_old_watch", events);

    // Bookmarks carry kind and apiVersion.
    let mut response = http
        .get(format!(
            "{}/api/v1/pods?watch=1&allowWatchBookmarks=true&resourceVersion={}",
            standin.url(),
            standin.resource_version()
        ))
        .send()
        .await
        .unwrap();
    let bookmark = &read_events(&mut response, 1).await[0];
    assert_eq!(bookmark["type"], "BOOKMARK");
    assert_eq!(bookmark["object"]["kind"], "Pod");
    assert_eq!(bookmark["object"]["apiVersion"], "v1");
    assert_eq!(bookmark["object"]["metadata"]["resourceVersion"], standin.resource_version().to_string());
}

#[tokio::test]
async fn control_api_over_http() {
    let standin = start(options()).await;
    let http = reqwest::Client::new();
    let control = standin.control_url();
    let put = |path: &str, body: Value| http.put(format!("{control}{path}")).json(&body).send();

    let created = put("/_standin/pods", node_pod("ctl", None)).await.unwrap();
    assert_eq!(created.status(), 200);
    assert_eq!(
        put("/_standin/pods/default/ctl/node", serde_json::json!({"nodeName": "node-a"}))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        put("/_standin/pods/default/ctl/labels", serde_json::json!({"app": "ctl2"})).await.unwrap().status(),
        200
    );
    assert_eq!(put("/_standin/pods/default/nope/labels", serde_json::json!({})).await.unwrap().status(), 404);
    let pod = standin.pod("default", "ctl").unwrap();
    assert_eq!(pod["spec"]["nodeName"], "node-a");
    assert_eq!(pod["metadata"]["labels"], serde_json::json!({"app": "ctl2"}));

    let pods: Api<Pod> = Api::namespaced(client(&standin).await, "default");
    put("/_standin/availability", serde_json::json!({"availability": "unavailable"})).await.unwrap();
    // Raw HTTP: kube's client retries 503 by itself (kube-client retry policy).
    let refused =
        http.get(format!("{}/api/v1/namespaces/default/pods/ctl", standin.url())).send().await.unwrap();
    assert_eq!(refused.status(), 503);
    let status: Value = refused.json().await.unwrap();
    assert_eq!((status["kind"].as_str(), status["code"].as_u64()), (Some("Status"), Some(503)));
    // The API port still takes control requests during a 503 outage.
    let via_api = http.post(format!("{}/_standin/compact", standin.url())).send().await.unwrap();
    assert_eq!(via_api.status(), 200);
    put("/_standin/availability", serde_json::json!({"availability": "available"})).await.unwrap();
    assert!(pods.get("ctl").await.is_ok());

    let deleted = http.delete(format!("{control}/_standin/pods/default/ctl")).send().await.unwrap();
    assert_eq!(deleted.status(), 200);
    assert!(pods.get_opt("ctl").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_pods() {
    let kubectl = std::path::Path::new("/usr/bin/kubectl");
    if !kubectl.exists() {
        println!("skipped: no kubectl");
        return;
    }
    let standin = start(options()).await;
    standin.apply_pod(node_pod("alpha", Some("node-a"))).unwrap();
    standin.apply_pod(pod_json("kube-system", "beta", Some("node-a"), &[], &[("c", "img:1")])).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kubeconfig");
    standin.write_kubeconfig(&config).unwrap();
    let cache = dir.path().join("cache");
    let output = tokio::process::Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(&config)
        .arg("--cache-dir")
        .arg(&cache)
        .args(["get", "pods", "-A"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "kubectl failed: {}", String::from_utf8_lossy(&output.stderr));
    let rows: BTreeSet<(String, String)> = stdout
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            Some((cols.next()?.to_owned(), cols.next()?.to_owned()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [("default", "alpha"), ("kube-system", "beta")]
        .into_iter()
        .map(|(ns, n)| (ns.to_owned(), n.to_owned()))
        .collect();
    assert_eq!(rows, expected, "{stdout}");
}
