//! Which workload a pod belongs to: `{workload}` and `{workload_kind}` in name templates.
//!
//! Only what the node-scoped pod watch already delivers is used (no ReplicaSet or Job reads,
//! so no extra RBAC): the pod's controller `ownerReference`, its `pod-template-hash` label and
//! the shape of the names Kubernetes' controllers generate. Each result says which rule gave
//! it ([`WorkloadRule`]), and `shipper route` prints that rule.
//!
//! From the owner reference ([`Workload::from_owner`]):
//!
//! | owner | rule | workload |
//! |---|---|---|
//! | none | `no_owner` | the pod (`Pod`) |
//! | ReplicaSet `<d>-<h>` with label `pod-template-hash=<h>` | `replicaset_template_hash` | Deployment `<d>` |
//! | Job `<c>-<digits ≥ 8>` | `job_schedule_suffix` | CronJob `<c>` (its jobs are named `<cronjob>-<scheduled minute>`) |
//! | Node (a static pod's mirror) | `static_pod` | `StaticPod`, the pod name without `-<node>` |
//! | anything else | `owner` | the owner itself: StatefulSet, DaemonSet, Job, a bare ReplicaSet, custom kinds |
//!
//! From the pod name alone ([`Workload::from_pod_name`]), used when metadata never arrived, so
//! that a workload template still sends the line where it would have gone with metadata:
//!
//! | pod name | rule | workload |
//! |---|---|---|
//! | `<c>-<digits ≥ 8>-<5 random>` | `name_cronjob` | CronJob `<c>` |
//! | `<d>-<hash 6–10>-<5 random>` | `name_deployment` | Deployment `<d>` |
//! | `<w>-<5 random>` | `name_generated` | `<w>`, kind unknown (DaemonSet, Job or ReplicaSet) |
//! | `<s>-<ordinal>` | `name_ordinal` | StatefulSet `<s>` |
//! | anything else | `name_pod` | the pod |
//!
//! "random" and "hash" are Kubernetes' safe alphabet (`bcdfghjklmnpqrstvwxz2456789`). The
//! name rules agree with the owner rules for pods their controllers named, with these known
//! exceptions (documented in the README, counted by `shipper_workload_from_name_total{rule}`):
//! the workload *kind* of a `name_generated` pod is unknown (empty); a generated name cut at
//! Kubernetes' 63-character limit (`name_truncated`) may lose part of its suffix; a bare pod
//! whose own name looks generated (`db-0`, `tool-x2k4p`) is taken for a workload's pod; a
//! Deployment whose template hash happens to be 8+ digits (about one in a million) is taken
//! for a CronJob.

use std::collections::BTreeMap;

/// Kubernetes' alphabet for generated name suffixes and `pod-template-hash` values.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// Length of the random suffix `generateName` appends.
const RANDOM_SUFFIX_LEN: usize = 5;
/// Longest generated pod name: the API cuts `generateName` bases to 58 characters.
const MAX_GENERATED_NAME: usize = 63;
/// The shortest digit run taken for a CronJob's scheduled-time suffix (minutes since the epoch
/// have had 8 digits since 1979; the old controller used 10-digit seconds).
const MIN_SCHEDULE_DIGITS: usize = 8;

/// A pod's controlling owner, from `metadata.ownerReferences`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    /// `kind`, e.g. `ReplicaSet`.
    pub kind: String,
    /// `name`.
    pub name: String,
}

impl OwnerRef {
    /// The controller among `owners` (`controller: true`), else the first one.
    pub fn controller_of(
        owners: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference],
    ) -> Option<Self> {
        owners
            .iter()
            .find(|owner| owner.controller == Some(true))
            .or_else(|| owners.first())
            .map(|owner| OwnerRef { kind: owner.kind.clone(), name: owner.name.clone() })
    }
}

/// Which rule decided a [`Workload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadRule {
    /// The pod has no owner: it is its own workload.
    NoOwner,
    /// A ReplicaSet whose name ends in the pod's `pod-template-hash`: its Deployment.
    ReplicasetTemplateHash,
    /// A Job whose name ends in a scheduled-time suffix: its CronJob.
    JobScheduleSuffix,
    /// A mirror pod owned by its Node: the static pod's name without the node suffix.
    StaticPod,
    /// The owner is the workload.
    Owner,
    /// No metadata: a Deployment's pod name.
    NameDeployment,
    /// No metadata: a CronJob run's pod name.
    NameCronjob,
    /// No metadata: a generated name (`<workload>-<5 random>`), kind unknown.
    NameGenerated,
    /// No metadata: a StatefulSet ordinal.
    NameOrdinal,
    /// No metadata: a name at the 63-character limit, where a generated suffix may be cut.
    NameTruncated,
    /// No metadata and no recognisable shape: the pod name.
    NamePod,
}

impl WorkloadRule {
    /// The rule's name as printed and used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoOwner => "no_owner",
            Self::ReplicasetTemplateHash => "replicaset_template_hash",
            Self::JobScheduleSuffix => "job_schedule_suffix",
            Self::StaticPod => "static_pod",
            Self::Owner => "owner",
            Self::NameDeployment => "name_deployment",
            Self::NameCronjob => "name_cronjob",
            Self::NameGenerated => "name_generated",
            Self::NameOrdinal => "name_ordinal",
            Self::NameTruncated => "name_truncated",
            Self::NamePod => "name_pod",
        }
    }
}

/// The workload a pod belongs to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Workload {
    /// `Deployment`, `StatefulSet`, …, `Pod`; empty when the pod name cannot tell.
    pub kind: String,
    /// The workload's name.
    pub name: String,
    /// Which rule decided it.
    pub rule: WorkloadRule,
}

impl Workload {
    fn new(kind: &str, name: &str, rule: WorkloadRule) -> Self {
        Workload { kind: kind.to_owned(), name: name.to_owned(), rule }
    }

    /// From the pod's controlling owner (see the module docs for the rules).
    pub fn from_owner(pod: &str, owner: Option<&OwnerRef>, labels: &BTreeMap<String, String>) -> Self {
        let Some(owner) = owner else {
            return Self::new("Pod", pod, WorkloadRule::NoOwner);
        };
        match owner.kind.as_str() {
            "ReplicaSet" => {
                let hash = labels.get("pod-template-hash").map(String::as_str).unwrap_or("");
                match strip_dash_suffix(&owner.name, hash) {
                    Some(deployment) if !hash.is_empty() => {
                        Self::new("Deployment", deployment, WorkloadRule::ReplicasetTemplateHash)
                    }
                    _ => Self::new("ReplicaSet", &owner.name, WorkloadRule::Owner),
                }
            }
            "Job" => match split_schedule_suffix(&owner.name) {
                Some(cronjob) => Self::new("CronJob", cronjob, WorkloadRule::JobScheduleSuffix),
                None => Self::new("Job", &owner.name, WorkloadRule::Owner),
            },
            "Node" => {
                let name = strip_dash_suffix(pod, &owner.name).unwrap_or(pod);
                Self::new("StaticPod", name, WorkloadRule::StaticPod)
            }
            kind => Self::new(kind, &owner.name, WorkloadRule::Owner),
        }
    }

    /// From the pod name alone, for lines routed without metadata (module docs).
    pub fn from_pod_name(pod: &str) -> Self {
        let truncated = pod.len() >= MAX_GENERATED_NAME;
        let mark = |rule: WorkloadRule| if truncated { WorkloadRule::NameTruncated } else { rule };
        if let Some(base) = strip_random_suffix(pod) {
            // A scheduled minute is 8+ digits; a template hash is all digits only by a
            // one-in-a-million chance, so digits mean CronJob.
            if let Some(cronjob) = split_schedule_suffix(base) {
                return Self::new("CronJob", cronjob, mark(WorkloadRule::NameCronjob));
            }
            if let Some((deployment, hash)) = base.rsplit_once('-')
                && !deployment.is_empty()
                && (6..=10).contains(&hash.len())
                && is_safe(hash)
            {
                return Self::new("Deployment", deployment, mark(WorkloadRule::NameDeployment));
            }
            return Self::new("", base, mark(WorkloadRule::NameGenerated));
        }
        if let Some((set, ordinal)) = pod.rsplit_once('-')
            && !set.is_empty()
            && !ordinal.is_empty()
            && ordinal.bytes().all(|b| b.is_ascii_digit())
        {
            return Self::new("StatefulSet", set, WorkloadRule::NameOrdinal);
        }
        Self::new("Pod", pod, WorkloadRule::NamePod)
    }
}

/// `name` without a trailing `-<suffix>`, if it has one and something is left.
fn strip_dash_suffix<'a>(name: &'a str, suffix: &str) -> Option<&'a str> {
    let base = name.strip_suffix(suffix)?.strip_suffix('-')?;
    (!base.is_empty()).then_some(base)
}

/// `<base>-<digits ≥ 8>` → `<base>`.
fn split_schedule_suffix(name: &str) -> Option<&str> {
    let (base, digits) = name.rsplit_once('-')?;
    (!base.is_empty() && digits.len() >= MIN_SCHEDULE_DIGITS && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(base)
}

/// `<base>-<5 safe characters>` → `<base>`.
fn strip_random_suffix(name: &str) -> Option<&str> {
    let (base, suffix) = name.rsplit_once('-')?;
    (!base.is_empty() && suffix.len() == RANDOM_SUFFIX_LEN && is_safe(suffix)).then_some(base)
}

fn is_safe(text: &str) -> bool {
    text.bytes().all(|b| SAFE_ALPHABET.contains(&b))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn owner(kind: &str, name: &str) -> Option<OwnerRef> {
        Some(OwnerRef { kind: kind.into(), name: name.into() })
    }

    fn hash_label(hash: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("pod-template-hash".to_owned(), hash.to_owned())])
    }

    fn both(pod: &str, owner: Option<OwnerRef>, labels: &BTreeMap<String, String>) -> (Workload, Workload) {
        (Workload::from_owner(pod, owner.as_ref(), labels), Workload::from_pod_name(pod))
    }

    #[test]
    fn owner_rules() {
        let none = BTreeMap::new();
        let cases = [
            (
                "web-7d9f8b6c5d-x2k4p",
                owner("ReplicaSet", "web-7d9f8b6c5d"),
                hash_label("7d9f8b6c5d"),
                "Deployment",
                "web",
                "replicaset_template_hash",
            ),
            (
                "web-7d9f8b6c5d-x2k4p",
                owner("ReplicaSet", "web-7d9f8b6c5d"),
                none.clone(),
                "ReplicaSet",
                "web-7d9f8b6c5d",
                "owner",
            ),
            ("rs-abcde", owner("ReplicaSet", "rs"), hash_label("zzz"), "ReplicaSet", "rs", "owner"),
            (
                "report-29081520-q7xkz",
                owner("Job", "report-29081520"),
                none.clone(),
                "CronJob",
                "report",
                "job_schedule_suffix",
            ),
            ("migrate-2-abcde", owner("Job", "migrate-2"), none.clone(), "Job", "migrate-2", "owner"),
            ("db-0", owner("StatefulSet", "db"), none.clone(), "StatefulSet", "db", "owner"),
            ("fluent-x2k4p", owner("DaemonSet", "fluent"), none.clone(), "DaemonSet", "fluent", "owner"),
            ("etcd-node-1", owner("Node", "node-1"), none.clone(), "StaticPod", "etcd", "static_pod"),
            ("canary-abc", owner("Rollout", "canary"), none.clone(), "Rollout", "canary", "owner"),
            ("debug", None, none.clone(), "Pod", "debug", "no_owner"),
        ];
        for (pod, owner, labels, kind, name, rule) in cases {
            let workload = Workload::from_owner(pod, owner.as_ref(), &labels);
            assert_eq!(
                (workload.kind.as_str(), workload.name.as_str(), workload.rule.as_str()),
                (kind, name, rule),
                "{pod}"
            );
        }
    }

    #[test]
    fn controller_reference_wins_over_the_first() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
        let reference = |kind: &str, name: &str, controller| OwnerReference {
            kind: kind.into(),
            name: name.into(),
            controller,
            ..OwnerReference::default()
        };
        let owners = [reference("ConfigMap", "x", None), reference("StatefulSet", "db", Some(true))];
        assert_eq!(OwnerRef::controller_of(&owners), owner("StatefulSet", "db"));
        assert_eq!(OwnerRef::controller_of(&owners[..1]), owner("ConfigMap", "x"));
        assert_eq!(OwnerRef::controller_of(&[]), None);
    }

    #[test]
    fn name_rules_agree_with_owner_rules_for_controller_named_pods() {
        let none = BTreeMap::new();
        let cases = [
            ("web-7d9f8b6c5d-x2k4p", owner("ReplicaSet", "web-7d9f8b6c5d"), hash_label("7d9f8b6c5d")),
            (
                "payments-api-58c9f7bd7-q2x9z",
                owner("ReplicaSet", "payments-api-58c9f7bd7"),
                hash_label("58c9f7bd7"),
            ),
            ("report-29081520-q7xkz", owner("Job", "report-29081520"), none.clone()),
            ("db-12", owner("StatefulSet", "db"), none.clone()),
            ("fluent-x2k4p", owner("DaemonSet", "fluent"), none.clone()),
            ("once-24567", owner("Job", "once"), none.clone()),
            ("debug", None, none.clone()),
        ];
        for (pod, owner, labels) in cases {
            let (api, name) = both(pod, owner, &labels);
            assert_eq!(api.name, name.name, "{pod}: {api:?} vs {name:?}");
            if name.rule != WorkloadRule::NameGenerated {
                assert_eq!(api.kind, name.kind, "{pod}");
            }
        }
    }

    #[test]
    fn name_rules_documented_exceptions() {
        // A bare pod named like a StatefulSet's is taken for one.
        let (api, name) = both("db-0", None, &BTreeMap::new());
        assert_eq!((api.name.as_str(), name.name.as_str()), ("db-0", "db"));
        // At the 63-character limit the rule is marked as a guess.
        let long = format!("{}-7d9f8b6c5d-x2k4p", "a".repeat(46));
        assert_eq!(long.len(), 63);
        let guessed = Workload::from_pod_name(&long);
        assert_eq!(
            (guessed.name.as_str(), guessed.rule),
            ("a".repeat(46).as_str(), WorkloadRule::NameTruncated)
        );
        assert_eq!(Workload::from_pod_name("x").rule, WorkloadRule::NamePod);
        assert_eq!(Workload::from_pod_name("-x2k4p").rule, WorkloadRule::NamePod);
    }

    /// A Kubernetes-safe string of `len` characters.
    fn safe(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(SAFE_ALPHABET.to_vec()), len)
            .prop_map(|bytes| String::from_utf8(bytes).unwrap_or_default())
    }

    proptest! {
        /// A Deployment's pod: the owner rule and the name rule give the same Deployment, for
        /// any Deployment name that leaves the generated pod name within 63 characters (the API
        /// cuts longer ones, which the name rule marks as truncated).
        #[test]
        fn deployment_pods_agree(deployment in "[a-z]([a-z0-9-]{0,40}[a-z0-9])?", hash in safe(6..=10), suffix in safe(5..=5)) {
            prop_assume!(split_schedule_suffix(&format!("x-{hash}")).is_none(), "an all-digit hash reads as a CronJob run");
            let replicaset = format!("{deployment}-{hash}");
            let pod = format!("{replicaset}-{suffix}");
            let (api, name) = both(&pod, owner("ReplicaSet", &replicaset), &hash_label(&hash));
            prop_assert_eq!(&api.name, &deployment);
            prop_assert_eq!(api.kind.as_str(), "Deployment");
            if pod.len() < MAX_GENERATED_NAME {
                prop_assert_eq!(&name.name, &deployment);
                prop_assert_eq!(name.rule, WorkloadRule::NameDeployment);
            } else {
                prop_assert_eq!(name.rule, WorkloadRule::NameTruncated);
            }
        }

        /// A CronJob run's pod, CronJob names up to their 52-character limit.
        #[test]
        fn cronjob_pods_agree(cronjob in "[a-z]([a-z0-9-]{0,50}[a-z0-9])?", minute in 10_000_000u64..99_999_999, suffix in safe(5..=5)) {
            let job = format!("{cronjob}-{minute}");
            let pod = format!("{job}-{suffix}");
            let (api, name) = both(&pod, owner("Job", &job), &BTreeMap::new());
            prop_assert_eq!((api.kind.as_str(), api.name.as_str()), ("CronJob", cronjob.as_str()));
            if pod.len() < MAX_GENERATED_NAME {
                prop_assert_eq!((name.kind.as_str(), name.name.as_str()), ("CronJob", cronjob.as_str()));
            }
        }

        /// Names at the API's limits never panic and always give a non-empty workload.
        #[test]
        fn any_name_gives_a_workload(pod in "[a-z0-9.-]{1,253}", owner_name in "[a-z0-9.-]{1,253}", kind in "ReplicaSet|Job|Node|StatefulSet|X") {
            let labels = hash_label(&owner_name[owner_name.len() / 2..]);
            let (api, name) = both(&pod, owner(&kind, &owner_name), &labels);
            prop_assert!(!api.name.is_empty());
            prop_assert!(!name.name.is_empty());
        }
    }
}
