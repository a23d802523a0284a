//! The kind tier's objects for a scenario (rendered offline; applied by the kind provider,
//! feature `e2e`), as typed k8s-openapi objects: its namespaces and
//! its pods, each container running the writer image with `harness write` arguments for its
//! [`LinePlan`], pinned to a node.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec, ResourceRequirements, SecurityContext};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::scenario;
use crate::writer::{LinePlan, WriterArgs};

/// Label on every object the harness creates for a run (cleanup, listing).
pub const RUN_LABEL: &str = "shipper-harness/run";

/// A namespace of the scenario, labelled with the run.
pub fn namespace_object(name: &str, run: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([(RUN_LABEL.to_owned(), run.to_owned())])),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// The labels a scenario pod carries: the scenario's (`app`, `k8s-app`, ...) and the run's.
pub fn pod_labels(labels: &BTreeMap<String, String>, run: &str) -> BTreeMap<String, String> {
    let mut all = labels.clone();
    all.insert(RUN_LABEL.to_owned(), run.to_owned());
    all
}

/// One incarnation of scenario pod `pod` on `node`: a container per plan (same names as the
/// scenario's containers) running `writer_image` as `harness write <plan>`. The writers exit
/// when done (`restartPolicy: Never`), so the pod ends `Succeeded` once every line is out.
pub fn pod_object(
    pod: &scenario::PodSpec,
    plans: &[LinePlan],
    run: &str,
    writer_image: &str,
    node: &str,
) -> Pod {
    let containers = plans
        .iter()
        .map(|plan| Container {
            name: plan.container.clone(),
            image: Some(writer_image.to_owned()),
            image_pull_policy: Some("Never".into()),
            args: Some(WriterArgs::of(plan).to_args()),
            resources: Some(ResourceRequirements {
                requests: Some(BTreeMap::from([
                    ("cpu".to_owned(), Quantity("10m".into())),
                    ("memory".to_owned(), Quantity("16Mi".into())),
                ])),
                ..ResourceRequirements::default()
            }),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                run_as_non_root: Some(true),
                ..SecurityContext::default()
            }),
            ..Container::default()
        })
        .collect();
    Pod {
        metadata: ObjectMeta {
            name: Some(pod.name.clone()),
            namespace: Some(pod.namespace.clone()),
            labels: Some(pod_labels(&pod.labels, run)),
            annotations: (!pod.annotations.is_empty()).then(|| pod.annotations.clone()),
            owner_references: pod.owner.as_ref().map(|o| vec![owner_reference(o)]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers,
            node_name: Some(node.to_owned()),
            restart_policy: Some("Never".into()),
            termination_grace_period_seconds: Some(1),
            automount_service_account_token: Some(false),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

/// The scenario's owner as a typed reference: the stand-in's JSON, so both tiers serve the
/// same `ownerReferences`. On a real cluster the owner does not exist, and the garbage
/// collector deletes such pods: the kind tier refuses scenarios with owners
/// ([`crate::tiers::needs::kind_refusal`]) until it creates the owners too.
pub fn owner_reference(owner: &scenario::OwnerRef) -> OwnerReference {
    let json = crate::standin::owner_reference_json(&owner.kind, &owner.name);
    serde_json::from_value(json)
        .unwrap_or_else(|e| unreachable!("the stand-in's owner reference is valid: {e}"))
}

/// YAML for `kubectl apply -f -`.
pub fn to_yaml<T: serde::Serialize>(object: &T) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn scenario() -> Scenario {
        Scenario::parse(
            r#"
name = "k"
why = "w"
[[pods]]
namespace = "shop"
name = "web-0"
labels = { app = "web" }
annotations = { team = "checkout" }
containers = [
  { name = "nginx", lines = 300, rate = 50, sizes = ["small", "16KiB+1"], stream = "both" },
  { name = "sidecar", lines = 10 },
]
[[pods]]
namespace = "shop"
name = "bare-0"
containers = [{ name = "app", lines = 5 }]
[expect]
groups = { g = ["web-0_nginx"] }
"#,
        )
        .expect("valid")
    }

    fn plans(pod: &scenario::PodSpec) -> Vec<LinePlan> {
        pod.containers.iter().map(|c| LinePlan::new("rk1", &pod.name, c).expect("plan")).collect()
    }

    #[test]
    fn scenario_pods_render_as_writer_pods() {
        let s = scenario();
        let pod =
            pod_object(&s.pods[0], &plans(&s.pods[0]), "rk1", "shipper-harness/writer:abc", "kind-worker");
        insta::assert_snapshot!("kind_writer_pod", to_yaml(&pod).expect("yaml"));
        let ns = namespace_object("shop", "rk1");
        insta::assert_snapshot!("kind_namespace", to_yaml(&ns).expect("yaml"));
    }

    #[test]
    fn pods_keep_the_scenarios_labels_or_none() {
        let s = scenario();
        let web = pod_object(&s.pods[0], &plans(&s.pods[0]), "rk1", "w:1", "n");
        let labels = web.metadata.labels.expect("labels");
        assert_eq!(labels.get("app").map(String::as_str), Some("web"));
        let bare = pod_object(&s.pods[1], &plans(&s.pods[1]), "rk1", "w:1", "n");
        let labels = bare.metadata.labels.expect("labels");
        assert!(!labels.contains_key("app") && !labels.contains_key("k8s-app"), "{labels:?}");
        assert_eq!(labels.len(), 1, "only the run label: {labels:?}");
        assert!(bare.metadata.annotations.is_none());
        assert!(bare.metadata.owner_references.is_none());
    }

    #[test]
    fn owners_render_as_owner_references() {
        let mut s = scenario();
        s.pods[0].owner = Some(scenario::OwnerRef { kind: "StatefulSet".into(), name: "web".into() });
        let pod = pod_object(&s.pods[0], &plans(&s.pods[0]), "rk1", "w:1", "n");
        let owners = pod.metadata.owner_references.expect("owners");
        assert_eq!(owners.len(), 1);
        assert_eq!((owners[0].api_version.as_str(), owners[0].kind.as_str()), ("apps/v1", "StatefulSet"));
        assert_eq!(owners[0].name, "web");
        assert_eq!(owners[0].controller, Some(true));
    }

    #[test]
    fn container_args_are_the_writer_arguments_of_each_plan() {
        use clap::Parser;
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: WriterArgs,
        }
        let s = scenario();
        let plans = plans(&s.pods[0]);
        let pod = pod_object(&s.pods[0], &plans, "rk1", "w:1", "n");
        let containers = pod.spec.expect("spec").containers;
        assert_eq!(containers.len(), plans.len());
        for (container, plan) in containers.iter().zip(&plans) {
            let args = container.args.clone().expect("args");
            let parsed =
                Cli::try_parse_from(std::iter::once("write".to_owned()).chain(args)).expect("parses");
            assert_eq!(&parsed.args.plan().expect("valid"), plan);
        }
    }
}
