//! Routing: the default group and stream templates rendered and sanitised.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use shipper::route::{DEFAULT_GROUP_TEMPLATE, DEFAULT_STREAM_TEMPLATE, RouteInput, Router};

fn route(c: &mut Criterion) {
    let router = Router::new(DEFAULT_GROUP_TEMPLATE, DEFAULT_STREAM_TEMPLATE).expect("default templates");
    let labels: BTreeMap<String, String> = [
        ("app.kubernetes.io/name", "checkout"),
        ("k8s-app", "checkout"),
        ("pod-template-hash", "7d9f8b6c5"),
        ("team", "payments"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let annotations = BTreeMap::new();
    let input = RouteInput {
        cluster: "prod-eu",
        node: "node-1",
        namespace: "shop",
        pod: "checkout-7d9f8b6c5-x2x4q",
        container: "app",
        workload: "web",
        workload_kind: "Deployment",
        labels: &labels,
        annotations: &annotations,
    };
    c.bench_function("route/default_templates", |b| b.iter(|| router.route(black_box(&input))));
}

criterion_group!(benches, route);
criterion_main!(benches);
