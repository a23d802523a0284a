//! Reading the shipper's settings off a DaemonSet: precedence, the mounted config file, and
//! refusals, on small inline manifests.

use std::time::Duration;

use super::{ManifestError, ShipperSettings, parse_documents};

/// A namespace-`ns` DaemonSet whose container has `args` and `env` (YAML flow sequences), a
/// ConfigMap volume `cfg` at /etc/s, and a ConfigMap holding `file`.
fn manifest(args: &str, env: &str, file: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {{ name: cfg, namespace: ns }}
data:
  s.toml: |
{file}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {{ name: d, namespace: ns }}
spec:
  selector: {{ matchLabels: {{ a: b }} }}
  template:
    metadata: {{ labels: {{ a: b }} }}
    spec:
      containers:
        - name: shipper
          args: {args}
          env: {env}
          volumeMounts: [{{ name: c, mountPath: /etc/s, readOnly: true }}]
      volumes: [{{ name: c, configMap: {{ name: cfg }} }}]
"#,
        file = file.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n"),
    )
}

fn settings(yaml: &str) -> Result<ShipperSettings, ManifestError> {
    ShipperSettings::of(&parse_documents("test", yaml)?)
}

#[test]
fn env_wins_over_the_file_which_wins_over_the_defaults() {
    let file =
        "listen = \"0.0.0.0:9000\"\nshutdown_grace = \"15s\"\nlog_paths = [\"/a/*.log\", \"/b/*.log\"]";
    let env = r#"[{ name: SHIPPER_LISTEN, value: "0.0.0.0:9100" }]"#;
    let s = settings(&manifest(r#"["run", "--config", "/etc/s/s.toml"]"#, env, file)).expect("settings");
    assert_eq!(s.listen().expect("listen").port(), 9100, "env wins");
    assert_eq!(s.shutdown_grace().expect("grace"), Duration::from_secs(15), "file over default");
    assert_eq!(s.log_paths(), ["/a/*.log", "/b/*.log"]);
    assert_eq!(s.state_dir(), "/var/lib/shipper", "the contract's default");
    assert_eq!(s.config.as_ref().map(|c| c.path.as_str()), Some("/etc/s/s.toml"));
}

#[test]
fn without_a_config_file_the_defaults_apply() {
    let s = settings(&manifest(r#"["run"]"#, "[]", "")).expect("settings");
    assert!(s.config.is_none());
    assert_eq!(s.listen().expect("listen").to_string(), "0.0.0.0:2021");
    assert_eq!(s.shutdown_grace().expect("grace"), Duration::from_secs(10));
}

#[test]
fn unknown_flags_and_missing_config_keys_are_refused() {
    let flags = settings(&manifest(r#"["run", "--listen", "0.0.0.0:1"]"#, "[]", "")).expect_err("flag");
    assert!(flags.to_string().contains("--listen"), "{flags}");
    let missing =
        settings(&manifest(r#"["run", "--config", "/etc/s/other.toml"]"#, "[]", "")).expect_err("key");
    assert!(missing.to_string().contains("other.toml"), "{missing}");
    let unmounted =
        settings(&manifest(r#"["run", "--config", "/srv/s.toml"]"#, "[]", "")).expect_err("mount");
    assert!(unmounted.to_string().contains("no volume mount"), "{unmounted}");
}

#[test]
fn unknown_kinds_are_refused() {
    let err =
        parse_documents("test", "apiVersion: v1\nkind: Secret\nmetadata: { name: s }\n").expect_err("kind");
    assert!(err.to_string().contains("v1/Secret"), "{err}");
    let empty = parse_documents("test", "# only a comment\n---\n").expect("empty documents are skipped");
    assert!(empty.is_empty());
}
