//! Router-level tests: the default naming contract, validity of every routed name, and the
//! reviewed layout snapshot.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::Serialize;

use super::*;

/// CloudWatch's log group rule, written independently of the sanitiser.
fn is_valid_group(name: &str) -> bool {
    (1..=512).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-/.#".contains(&b))
        && !name.to_ascii_lowercase().starts_with("aws/")
}

/// CloudWatch's log stream rule (plus our "no control characters"), written independently.
fn is_valid_stream(name: &str) -> bool {
    (1..=512).contains(&name.len())
        && !name.contains(':')
        && !name.contains('*')
        && !name.chars().any(char::is_control)
}

fn default_router() -> Router {
    Router::new(DEFAULT_GROUP_TEMPLATE, DEFAULT_STREAM_TEMPLATE).expect("default templates parse")
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn route_pod(labels: &[(&str, &str)]) -> Destination {
    let labels = map(labels);
    let annotations = BTreeMap::new();
    default_router().route(&RouteInput {
        cluster: "prod",
        node: "node-1",
        namespace: "shop",
        pod: "web-7d9f-x2",
        container: "nginx",
        workload: "",
        workload_kind: "",
        labels: &labels,
        annotations: &annotations,
    })
}

#[test]
fn default_group_falls_back_app_then_k8s_app_then_pod() {
    assert_eq!(route_pod(&[("app", "web"), ("k8s-app", "dns")]).group, "k8s_prod_shop_web_nginx");
    assert_eq!(route_pod(&[("app", "web")]).group, "k8s_prod_shop_web_nginx");
    assert_eq!(route_pod(&[("k8s-app", "dns")]).group, "k8s_prod_shop_dns_nginx");
    assert_eq!(
        route_pod(&[("app", ""), ("k8s-app", "dns")]).group,
        "k8s_prod_shop_dns_nginx",
        "an empty app label is skipped"
    );
    assert_eq!(
        route_pod(&[("app", ""), ("k8s-app", "")]).group,
        "k8s_prod_shop_web-7d9f-x2_nginx",
        "empty labels fall through to the pod name"
    );
    assert_eq!(route_pod(&[("tier", "front")]).group, "k8s_prod_shop_web-7d9f-x2_nginx");
}

#[test]
fn default_stream_is_pod_and_container() {
    assert_eq!(route_pod(&[("app", "web")]).stream, "web-7d9f-x2_nginx");
}

#[test]
fn template_errors_surface_from_router_new() {
    let error = Router::new("k8s_{cluster", DEFAULT_STREAM_TEMPLATE).expect_err("unclosed");
    assert_eq!(error.template, "k8s_{cluster");
    let error = Router::new(DEFAULT_GROUP_TEMPLATE, "{pod}_{containr}").expect_err("unknown");
    assert_eq!(error.template, "{pod}_{containr}");
    assert!(error.reason.contains("containr"), "{error}");
}

#[test]
fn all_empty_template_still_routes_to_valid_names() {
    let router = Router::new("{labels.a|annotations.b}", "{labels.c}").expect("valid");
    let empty = BTreeMap::new();
    let destination = router.route(&RouteInput {
        cluster: "",
        node: "",
        namespace: "",
        pod: "",
        container: "",
        workload: "",
        workload_kind: "",
        labels: &empty,
        annotations: &empty,
    });
    assert_eq!(destination.group, "_");
    assert_eq!(destination.stream, "_");
}

/// An owned [`RouteInput`] for generators and tables.
#[derive(Debug, Clone)]
struct Pod {
    cluster: String,
    namespace: String,
    pod: String,
    container: String,
    labels: BTreeMap<String, String>,
}

impl Pod {
    fn route(&self, router: &Router) -> Destination {
        let annotations = BTreeMap::new();
        router.route(&RouteInput {
            cluster: &self.cluster,
            node: "node-1",
            namespace: &self.namespace,
            pod: &self.pod,
            container: &self.container,
            workload: "",
            workload_kind: "",
            labels: &self.labels,
            annotations: &annotations,
        })
    }
}

/// Anything at all, up to 2,000 characters, biased towards the interesting cases.
fn any_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,40}",
        "[a-z0-9-]{0,63}",
        "(aws|AWS|aWs)/[a-z/]{0,10}",
        "[:*\\x00-\\x1f a-zé😀]{0,20}",
        "[a-z]{1,4}".prop_flat_map(|unit| (Just(unit), 100usize..500)).prop_map(|(unit, count)| unit
            .repeat(count)
            .chars()
            .take(2000)
            .collect()),
        any::<String>().prop_map(|s| s.chars().take(2000).collect()),
    ]
}

fn any_pod() -> impl Strategy<Value = Pod> {
    let label_key = prop_oneof![Just("app".to_owned()), Just("k8s-app".to_owned()), "\\PC{0,8}"];
    (any_name(), any_name(), any_name(), any_name(), prop::collection::btree_map(label_key, any_name(), 0..4))
        .prop_map(|(cluster, namespace, pod, container, labels)| Pod {
            cluster,
            namespace,
            pod,
            container,
            labels,
        })
}

proptest! {
    #[test]
    fn routed_names_are_always_valid_and_deterministic(pod in any_pod()) {
        let destination = pod.route(&default_router());
        prop_assert!(is_valid_group(&destination.group), "group {:?}", destination.group);
        prop_assert!(is_valid_stream(&destination.stream), "stream {:?}", destination.stream);
        // Same input, fresh router: same names.
        prop_assert_eq!(pod.route(&default_router()), destination);
    }

    #[test]
    fn custom_templates_give_valid_names(
        pod in any_pod(),
        literal in "\\PC{0,20}",
    ) {
        let literal: String = literal.chars().filter(|c| *c != '{' && *c != '}').collect();
        let router = Router::new(
            &format!("{literal}{{namespace|pod}}{literal}"),
            &format!("{literal}{{labels.app|container}}{literal}"),
        ).expect("valid template");
        let destination = pod.route(&router);
        prop_assert!(is_valid_group(&destination.group), "group {:?}", destination.group);
        prop_assert!(is_valid_stream(&destination.stream), "stream {:?}", destination.stream);
    }

    #[test]
    fn distinct_long_names_stay_distinct(
        common in "[a-z0-9-]{600,900}",
        suffix_a in "[a-z0-9]{1,8}",
        suffix_b in "[a-z0-9]{1,8}",
    ) {
        prop_assume!(suffix_a != suffix_b);
        let make = |suffix: &str| Pod {
            cluster: "prod".to_owned(),
            namespace: "shop".to_owned(),
            pod: format!("{common}{suffix}"),
            container: "c".to_owned(),
            labels: map(&[("app", &format!("{common}{suffix}"))]),
        };
        let a = make(&suffix_a).route(&default_router());
        let b = make(&suffix_b).route(&default_router());
        prop_assert_eq!(a.group.len(), 512);
        prop_assert_eq!(a.stream.len(), 512);
        prop_assert_ne!(a.group, b.group);
        prop_assert_ne!(a.stream, b.stream);
    }
}

#[test]
fn layout_of_representative_pods() {
    #[derive(Serialize)]
    struct Row {
        case: &'static str,
        group: String,
        stream: String,
        /// With `{namespace}/{labels.app|labels.k8s-app|pod}`: shows the `aws/` rule.
        custom_group: String,
    }
    let pod = |cluster: &str, namespace: &str, name: &str, container: &str, labels: &[(&str, &str)]| Pod {
        cluster: cluster.to_owned(),
        namespace: namespace.to_owned(),
        pod: name.to_owned(),
        container: container.to_owned(),
        labels: map(labels),
    };
    let long_app = format!("app-{}", "x".repeat(520));
    let long_pod = format!("batch-{}", "y".repeat(600));
    let table = [
        ("app label", pod("prod", "shop", "web-7d9f-x2", "nginx", &[("app", "web")])),
        ("only k8s-app", pod("prod", "kube-system", "coredns-5d78c", "coredns", &[("k8s-app", "kube-dns")])),
        ("app and k8s-app", pod("prod", "shop", "api-1", "api", &[("app", "api"), ("k8s-app", "legacy")])),
        ("neither label", pod("prod", "default", "debug-shell", "sh", &[("tier", "tools")])),
        ("empty app label", pod("prod", "shop", "cart-0", "cart", &[("app", ""), ("k8s-app", "cart-k8s")])),
        ("all labels empty", pod("prod", "shop", "cart-1", "cart", &[("app", ""), ("k8s-app", "")])),
        (
            "recommended label only",
            pod("prod", "shop", "db-0", "postgres", &[("app.kubernetes.io/name", "postgres")]),
        ),
        ("odd cluster name", pod("My Cluster: EU*1 (prod)", "shop", "web-1", "nginx", &[("app", "web")])),
        ("aws namespace", pod("prod", "aws", "agent-1", "agent", &[("app", "agent")])),
        ("empty cluster makes k8s__ prefix", pod("", "shop", "web-1", "nginx", &[("app", "web")])),
        ("long app label", pod("prod", "shop", "web-1", "nginx", &[("app", &long_app)])),
        ("long pod name", pod("prod", "jobs", &long_pod, "worker", &[])),
        ("unicode and colons", pod("prod", "shop", "pod:é", "side*car", &[("app", "café")])),
    ];
    let router = default_router();
    let custom = Router::new("{namespace}/{labels.app|labels.k8s-app|pod}", DEFAULT_STREAM_TEMPLATE)
        .expect("valid template");
    let rows: Vec<Row> = table
        .iter()
        .map(|(case, pod)| {
            let Destination { group, stream } = pod.route(&router);
            let custom_group = pod.route(&custom).group;
            Row { case, group, stream, custom_group }
        })
        .collect();
    for row in &rows {
        assert!(is_valid_group(&row.group), "{}: {}", row.case, row.group);
        assert!(is_valid_stream(&row.stream), "{}: {}", row.case, row.stream);
        assert!(is_valid_group(&row.custom_group), "{}: {}", row.case, row.custom_group);
    }
    insta::assert_yaml_snapshot!(rows);
}
