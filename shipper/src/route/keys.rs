//! Which pod labels and annotations the settings can ever read: the templates'
//! placeholders, the label selectors of `include` / `exclude` / `multiline_rules`, the
//! message fields, and the shipper's own `shipper.io/…` annotations. The pod cache keeps
//! only these, so a tenant's pods carrying thousands of labels and hundreds of KiB of
//! annotations cost the shipper almost nothing.

use std::collections::BTreeSet;

/// Annotations under this prefix are the shipper's own (exclusion, multiline): always kept.
pub const OWN_ANNOTATION_PREFIX: &str = "shipper.io/";

/// The label and annotation keys routing may read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataKeys {
    labels: BTreeSet<String>,
    annotations: BTreeSet<String>,
}

impl MetadataKeys {
    /// Record a label key something reads.
    pub(crate) fn label(&mut self, key: &str) {
        self.labels.insert(key.to_owned());
    }

    /// Record an annotation key something reads.
    pub(crate) fn annotation(&mut self, key: &str) {
        self.annotations.insert(key.to_owned());
    }

    /// Whether routing may read label `key`.
    pub fn keeps_label(&self, key: &str) -> bool {
        self.labels.contains(key)
    }

    /// Whether routing may read annotation `key`.
    pub fn keeps_annotation(&self, key: &str) -> bool {
        key.starts_with(OWN_ANNOTATION_PREFIX) || self.annotations.contains(key)
    }
}
