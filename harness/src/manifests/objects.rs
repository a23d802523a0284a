//! Multi-document YAML into typed Kubernetes objects. Every document must be one of the kinds
//! the shipper's deployment consists of: an unknown kind is an error, so a new object in
//! `deploy/` cannot slip past the checks unnoticed.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde::Deserialize;

use super::ManifestError;

/// The objects of one rendering (or one file), by kind, in document order.
#[derive(Debug, Default, Clone)]
pub struct Objects {
    /// `v1/Namespace`
    pub namespaces: Vec<Namespace>,
    /// `v1/ServiceAccount`
    pub service_accounts: Vec<ServiceAccount>,
    /// `rbac.authorization.k8s.io/v1/ClusterRole`
    pub cluster_roles: Vec<ClusterRole>,
    /// `rbac.authorization.k8s.io/v1/ClusterRoleBinding`
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    /// `rbac.authorization.k8s.io/v1/Role`
    pub roles: Vec<Role>,
    /// `rbac.authorization.k8s.io/v1/RoleBinding`
    pub role_bindings: Vec<RoleBinding>,
    /// `v1/ConfigMap`
    pub config_maps: Vec<ConfigMap>,
    /// `apps/v1/DaemonSet`
    pub daemon_sets: Vec<DaemonSet>,
}

impl Objects {
    /// Number of objects.
    pub fn len(&self) -> usize {
        self.namespaces.len()
            + self.service_accounts.len()
            + self.cluster_roles.len()
            + self.cluster_role_bindings.len()
            + self.roles.len()
            + self.role_bindings.len()
            + self.config_maps.len()
            + self.daemon_sets.len()
    }

    /// True when there is no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The only DaemonSet, or why there is not exactly one.
    pub fn daemon_set(&self) -> Result<&DaemonSet, ManifestError> {
        match self.daemon_sets.as_slice() {
            [ds] => Ok(ds),
            other => Err(ManifestError::Settings(format!("expected one DaemonSet, found {}", other.len()))),
        }
    }

    /// The ConfigMap `name` in `namespace`.
    pub fn config_map(&self, namespace: &str, name: &str) -> Option<&ConfigMap> {
        self.config_maps.iter().find(|cm| {
            cm.metadata.name.as_deref() == Some(name) && cm.metadata.namespace.as_deref() == Some(namespace)
        })
    }
}

/// Parse every document of `yaml` (`source_name` names it in errors). Empty documents (a
/// file of comments, a trailing `---`) are skipped.
pub fn parse_documents(source_name: &str, yaml: &str) -> Result<Objects, ManifestError> {
    let mut objects = Objects::default();
    for (index, document) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let err = |kind: &str, reason: String| ManifestError::Document {
            source_name: source_name.to_owned(),
            index,
            kind: kind.to_owned(),
            reason,
        };
        let value = serde_yaml::Value::deserialize(document).map_err(|e| err("-", e.to_string()))?;
        if value.is_null() {
            continue;
        }
        let api_version = value.get("apiVersion").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        let kind = value.get("kind").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        let typed = |reason: serde_yaml::Error| err(&kind, reason.to_string());
        match (api_version.as_str(), kind.as_str()) {
            ("v1", "Namespace") => objects.namespaces.push(serde_yaml::from_value(value).map_err(typed)?),
            ("v1", "ServiceAccount") => {
                objects.service_accounts.push(serde_yaml::from_value(value).map_err(typed)?)
            }
            ("v1", "ConfigMap") => objects.config_maps.push(serde_yaml::from_value(value).map_err(typed)?),
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
                objects.cluster_roles.push(serde_yaml::from_value(value).map_err(typed)?)
            }
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                objects.cluster_role_bindings.push(serde_yaml::from_value(value).map_err(typed)?)
            }
            ("rbac.authorization.k8s.io/v1", "Role") => {
                objects.roles.push(serde_yaml::from_value(value).map_err(typed)?)
            }
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
                objects.role_bindings.push(serde_yaml::from_value(value).map_err(typed)?)
            }
            ("apps/v1", "DaemonSet") => {
                objects.daemon_sets.push(serde_yaml::from_value(value).map_err(typed)?)
            }
            _ => return Err(err(&kind, format!("unexpected object {api_version}/{kind}"))),
        }
    }
    Ok(objects)
}
