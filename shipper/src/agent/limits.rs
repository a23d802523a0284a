//! The open-file limit: every tailed file, rotated file held through an outage, spool chunk
//! and connection costs a descriptor, and a container runtime's default soft limit (often
//! 1024) is far below what a busy node needs while the hard limit is not.

/// Raise the soft `RLIMIT_NOFILE` to the hard limit. Returns the soft limit in force after
/// (`None`: unlimited).
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let before = getrlimit(Resource::Nofile);
    if before.current == before.maximum {
        return before.current;
    }
    let raised = rustix::process::Rlimit { current: before.maximum, maximum: before.maximum };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            tracing::info!(from = ?before.current, to = ?before.maximum, "raised the open-file limit to the hard limit");
            before.maximum
        }
        Err(e) => {
            tracing::warn!(error = %e, limit = ?before.current, "could not raise the open-file limit");
            before.current
        }
    }
}
