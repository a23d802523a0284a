//! The shipper: a Kubernetes node agent that tails container logs and ships them to
//! CloudWatch Logs, one log group per kind of container, without losing a line.
//!
//! Data path (DESIGN §2): `source` → `parse` → `kube` (metadata) → `route` → `spool` → `sink`.
//!
//! - [`agent`] wires them: [`agent::start`] brings the agent up, [`agent::Running::run_until`]
//!   drains it on SIGTERM; the ingest loop ([`agent::Ingest::step`]) and the dispatcher are
//!   tested in-process against the fake CloudWatch;
//! - [`clock`]: the agent's clock (tokio's, so tests pause it);
//! - [`telemetry`]: every drop, loss, retry and outcome is a typed event that counts its
//!   `/metrics` series and logs;
//! - [`config`] and [`cli`]: the settings and the `run` / `check` commands.

pub mod agent;
pub mod cli;
pub mod clock;
pub mod config;
pub mod failpoint;
pub mod kube;
/// Grouping the lines of a stack trace into one event (multiline detectors).
pub mod multiline;
pub mod parse;
pub mod route;
pub mod sink;
pub mod source;
pub mod spool;
pub mod telemetry;
