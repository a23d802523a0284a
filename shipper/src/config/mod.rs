//! Configuration: defaults < config file < environment < command-line flags (DESIGN §3).
//!
//! `Settings` is what the user may set (every field optional, from any layer); `Config` is
//! the validated, effective configuration the agent runs with.

pub mod groups;
mod layers;
pub mod role;
pub mod validate;

pub use groups::{GroupPolicy, GroupSettings, LogGroupClass, RetentionApply};
pub use layers::{FileSettings, Settings};
pub use role::AssumeRole;
pub use validate::{Config, ConfigError};
