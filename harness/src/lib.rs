//! The harness: an end-to-end test harness and outage simulator for the shipper.
//!
//! Local tier components (DESIGN §4): `simnode` writes kubelet-style log files, `standin`
//! serves the Kubernetes Pods API, `backend` provisions CloudWatch Logs emulators, `audit`
//! reads every group and stream back. `manifests` renders and reads `deploy/` (the
//! DaemonSet users apply).

pub mod audit;
pub mod backend;
pub mod bench;
pub mod cluster;
#[cfg(feature = "e2e")]
pub mod containers;
pub mod gateway;
pub mod kind_overlay;
pub mod kind_pods;
pub mod manifests;
pub mod preflight;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod shipper_proc;
pub mod simnode;
pub mod standin;
pub mod writer;
