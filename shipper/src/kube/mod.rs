//! Pod metadata from the Kubernetes API: one node-scoped watch
//! (`fieldSelector=spec.nodeName=<node>`), kept in a cache that outlives pod deletion long
//! enough for the pod's last lines to be routed with its real labels.

mod cache;
mod watch;
mod workload;

pub use cache::{PodCache, PodInfo};
pub use watch::{client_from_env, run_pod_watch, watch_pods};
pub use workload::{OwnerRef, Workload, WorkloadRule};
