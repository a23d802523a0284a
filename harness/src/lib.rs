//! The harness: an end-to-end test harness and outage simulator for the shipper.
//!
//! Where things are:
//!
//! - [`scenario`]: the scenario file format and its validation (DESIGN §5);
//! - [`runner`]: the scenario engine: one loop for every tier (clock, fault timeline, drain
//!   gate, checks, report). **Adding a fault kind** starts there;
//! - [`tiers`]: where the node, the pods and the shipper run: `local`, `container`, `kind`,
//!   each a driver behind one trait, and what each cannot run ([`tiers::needs`]). **Adding a
//!   tier** starts there;
//! - components the local tier is made of: [`simnode`] (kubelet-style log files),
//!   [`writer`] (line plans and payloads, also the kind tier's writer image), [`standin`] (the
//!   Kubernetes Pods API), [`backend`] (CloudWatch Logs emulators), [`gateway`] (the fault
//!   gateway and its journal), [`shipper_proc`] (the shipper as a process);
//! - judging a run: [`audit`] (every group and stream read back against the ledger) and
//!   [`report`];
//! - [`bench`]: throughput and latency benchmarks on the local tier's components;
//! - [`manifests`]: renders and reads `deploy/` (the DaemonSet users apply);
//! - [`preflight`]: what `harness kind-preflight` checks on a machine.

pub mod audit;
pub mod backend;
pub mod bench;
pub mod gateway;
pub mod manifests;
pub mod preflight;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod shipper_proc;
pub mod simnode;
pub mod standin;
pub mod tiers;
pub mod writer;
