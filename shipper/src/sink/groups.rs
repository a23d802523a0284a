//! What the sink remembers about log groups' settings: groups whose retention is still to be
//! applied, groups already checked (`retention_apply = "always"`), denials already logged,
//! and streams blocked because their group is missing and may not be created.
//!
//! Every set is keyed by group (or stream) name and bounded: the "checked" set is forgotten
//! when it grows past a cap (a second check costs one more DescribeLogGroups, nothing else);
//! the pending set only holds groups this process created and has not finished configuring.

use std::collections::{BTreeSet, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::{GroupPolicy, GroupSettings, RetentionApply};
use crate::route::Destination;
use crate::telemetry::Metrics;

use super::create::GroupCreateLimiter;

/// Groups remembered as checked at most before the set is forgotten.
const CHECKED_CAPACITY: usize = 16_384;

/// How the sink treats log groups.
#[derive(Debug, Clone)]
pub struct GroupOptions {
    /// The settings each group gets.
    pub policy: Arc<GroupPolicy>,
    /// Which groups get the retention policy.
    pub retention_apply: RetentionApply,
    /// Whether missing groups are created.
    pub create_groups: bool,
    /// Where groups created but not yet given their retention are remembered, so a restart
    /// between CreateLogGroup and PutRetentionPolicy does not forget them (`None`: memory
    /// only).
    pub pending_file: Option<PathBuf>,
}

impl Default for GroupOptions {
    fn default() -> Self {
        Self {
            policy: Arc::new(GroupPolicy::default()),
            retention_apply: RetentionApply::Created,
            create_groups: true,
            pending_file: None,
        }
    }
}

/// A group setting CloudWatch may refuse on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Setting {
    Retention,
    Tags,
}

impl Setting {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Setting::Retention => "retention",
            Setting::Tags => "tags",
        }
    }
}

#[derive(Debug)]
pub(crate) struct GroupState {
    pub(crate) options: GroupOptions,
    /// Spaces DescribeLogGroups / PutRetentionPolicy (they share the account's TPS with other
    /// tools, 10/s for DescribeLogGroups).
    pub(crate) limiter: GroupCreateLimiter,
    pending_retention: Mutex<HashSet<String>>,
    checked: Mutex<HashSet<String>>,
    denied: Mutex<HashSet<(String, Setting)>>,
    /// Groups created without tags after a denial (so a retry does not ask again).
    untagged: Mutex<HashSet<String>>,
    blocked: Mutex<HashSet<Arc<Destination>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each update is one step, so the sets stay consistent even if a holder panicked.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl GroupState {
    pub(crate) fn new(options: GroupOptions, rate: f64) -> Self {
        let pending = options.pending_file.as_deref().map(load_pending).unwrap_or_default();
        if !pending.is_empty() {
            tracing::info!(
                groups = pending.len(),
                "log groups created earlier still wait for their retention"
            );
        }
        Self {
            options,
            limiter: GroupCreateLimiter::new(rate),
            pending_retention: Mutex::new(pending),
            checked: Mutex::default(),
            denied: Mutex::default(),
            untagged: Mutex::default(),
            blocked: Mutex::default(),
        }
    }

    /// The settings `group` gets.
    pub(crate) fn settings(&self, group: &str) -> &GroupSettings {
        &self.options.policy.resolve(group).settings
    }

    /// Whether the tags are still to be sent with CreateLogGroup for `group`.
    pub(crate) fn with_tags(&self, group: &str) -> bool {
        !lock(&self.untagged).contains(group)
    }

    /// CreateLogGroup with tags was denied: create without them from now on.
    pub(crate) fn drop_tags(&self, group: &str) {
        lock(&self.untagged).insert(group.to_owned());
    }

    /// This process created `group`: its retention is to be applied (if it has one).
    pub(crate) fn created(&self, group: &str) {
        lock(&self.untagged).remove(group);
        if self.settings(group).retention_days.is_some() {
            let mut pending = lock(&self.pending_retention);
            pending.insert(group.to_owned());
            self.save_pending(&pending);
        }
    }

    /// Whether `group` still needs its retention applied (or, with `always`, checked).
    pub(crate) fn needs_retention(&self, group: &str) -> bool {
        if lock(&self.pending_retention).contains(group) {
            return true;
        }
        self.options.retention_apply == RetentionApply::Always
            && self.settings(group).retention_days.is_some()
            && !lock(&self.checked).contains(group)
    }

    /// Whether `group` was created by this process and is waiting for its retention (then
    /// no DescribeLogGroups is needed: its retention is "never expire").
    pub(crate) fn created_pending(&self, group: &str) -> bool {
        lock(&self.pending_retention).contains(group)
    }

    /// The retention of `group` is settled (applied, already right, or denied).
    pub(crate) fn retention_done(&self, group: &str) {
        {
            let mut pending = lock(&self.pending_retention);
            if pending.remove(group) {
                self.save_pending(&pending);
            }
        }
        let mut checked = lock(&self.checked);
        if checked.len() >= CHECKED_CAPACITY {
            checked.clear();
        }
        checked.insert(group.to_owned());
    }

    /// Persist the pending set (rare: once per group created and once per retention set).
    /// A failure is logged; the set still lives in memory for this process.
    fn save_pending(&self, pending: &HashSet<String>) {
        let Some(path) = &self.options.pending_file else { return };
        let sorted: BTreeSet<&String> = pending.iter().collect();
        if let Err(e) = write_durably(path, &serde_json::to_vec(&sorted).unwrap_or_default()) {
            tracing::warn!(path = %path.display(), error = %e,
                "cannot save the groups waiting for their retention; a restart now would forget them");
        }
    }

    /// Count and log a denial, once per group and setting.
    pub(crate) fn denied(&self, metrics: &Metrics, group: &str, setting: Setting, detail: &str) {
        if lock(&self.denied).insert((group.to_owned(), setting)) {
            metrics.group_settings_denied.add(setting.as_str(), 1);
            tracing::warn!(
                group,
                setting = setting.as_str(),
                error = detail,
                "CloudWatch denied a log group setting (check the IAM policy); the data is shipped without it"
            );
        }
    }

    /// `dest` cannot be sent because its group is missing and may not be created. Logs once
    /// per blocked period.
    pub(crate) fn block(&self, metrics: &Metrics, dest: &Arc<Destination>) {
        let mut blocked = lock(&self.blocked);
        if blocked.insert(Arc::clone(dest)) {
            tracing::error!(group = %dest.group, stream = %dest.stream,
                "log group does not exist and create_groups=false: the stream is blocked, its data waits in the spool until the group is created");
            Metrics::set(&metrics.streams_blocked_group_missing, blocked.len() as i64);
        }
    }

    /// `dest` was written: no longer blocked.
    pub(crate) fn unblock(&self, metrics: &Metrics, dest: &Destination) {
        let mut blocked = lock(&self.blocked);
        if blocked.remove(dest) {
            tracing::info!(group = %dest.group, stream = %dest.stream,
                "log group exists now: the blocked stream resumes");
            Metrics::set(&metrics.streams_blocked_group_missing, blocked.len() as i64);
        }
    }
}

/// The pending groups saved by an earlier process (none if the file is missing or unreadable).
fn load_pending(path: &Path) -> HashSet<String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<Vec<String>>(&bytes).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable pending-retention file");
            Vec::new()
        }),
        Err(_) => Vec::new(),
    }
    .into_iter()
    .collect()
}

/// Write `bytes` to `path` atomically and durably (temp file, fsync, rename, fsync dir).
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
