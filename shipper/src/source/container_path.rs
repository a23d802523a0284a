//! What a kubelet log file name says about its container.
//!
//! `/var/log/containers/<pod>_<namespace>_<container>-<64 hex id>.log` names everything needed
//! to route a line before pod metadata arrives. Pod names, namespaces and container names are
//! DNS names (`[a-z0-9.-]`), so `_` only ever separates fields.

use std::path::Path;

/// Length of a container id in a kubelet symlink name.
const CONTAINER_ID_LEN: usize = 64;

/// The container a log file belongs to, parsed from its file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerRef {
    /// Pod name.
    pub pod: String,
    /// Pod namespace.
    pub namespace: String,
    /// Container name.
    pub container: String,
    /// Runtime container id (64 hex characters, without the `containerd://` scheme).
    pub container_id: String,
}

/// Parse `<pod>_<namespace>_<container>-<64 hex id>.log` (only the file name of `path`
/// counts); `None` if the name does not have that shape.
pub fn container_ref(path: &Path) -> Option<ContainerRef> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".log")?;
    // `<rest>-<id>`: the id has a fixed length, so split from the end.
    let id_start = stem.len().checked_sub(CONTAINER_ID_LEN)?;
    let (rest, container_id) = (stem.get(..id_start)?, stem.get(id_start..)?);
    if !container_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let rest = rest.strip_suffix('-')?;
    let mut fields = rest.splitn(3, '_');
    let pod = fields.next()?;
    let namespace = fields.next()?;
    let container = fields.next()?;
    let valid = |field: &str| !field.is_empty() && !field.contains('_');
    if !(valid(pod) && valid(namespace) && valid(container)) {
        return None;
    }
    Some(ContainerRef {
        pod: pod.to_owned(),
        namespace: namespace.to_owned(),
        container: container.to_owned(),
        container_id: container_id.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::PathBuf;

    const ID: &str = "4f1c0a9e2b7d3c6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6";

    #[test]
    fn parses_a_kubelet_symlink_name() {
        let path = PathBuf::from(format!("/var/log/containers/web-7d9f8b-x2x9q_shop.prod_nginx-{ID}.log"));
        assert_eq!(
            container_ref(&path),
            Some(ContainerRef {
                pod: "web-7d9f8b-x2x9q".into(),
                namespace: "shop.prod".into(),
                container: "nginx".into(),
                container_id: ID.into(),
            })
        );
    }

    #[test]
    fn container_names_may_contain_dashes() {
        let r = container_ref(Path::new(&format!("p_ns_istio-proxy-{ID}.log")));
        assert_eq!(r.map(|r| r.container), Some("istio-proxy".to_owned()));
    }

    #[test]
    fn rejects_other_shapes() {
        for name in [
            format!("p_ns_c-{ID}.log.20261125-100000"),
            format!("p_ns_c-{ID}"),
            format!("p_ns_c{ID}.log"),
            format!("p_ns-{ID}.log"),
            format!("_ns_c-{ID}.log"),
            format!("p__c-{ID}.log"),
            format!("p_ns_-{ID}.log"),
            format!("p_ns_c_d-{ID}.log"),
            format!("p_ns_c-{}.log", &ID[1..]),
            format!("p_ns_c-{}g.log", &ID[1..]),
            "0.log".to_owned(),
        ] {
            assert_eq!(container_ref(Path::new(&name)), None, "{name}");
        }
    }

    proptest! {
        #[test]
        fn round_trips_any_valid_name(
            pod in "[a-z0-9]([a-z0-9.-]{0,30}[a-z0-9])?",
            namespace in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?",
            container in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?",
            id in "[0-9a-f]{64}",
        ) {
            let path = PathBuf::from("/var/log/containers")
                .join(format!("{pod}_{namespace}_{container}-{id}.log"));
            let parsed = container_ref(&path);
            prop_assert_eq!(parsed, Some(ContainerRef { pod, namespace, container, container_id: id }));
        }
    }
}
