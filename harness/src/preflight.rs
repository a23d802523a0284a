//! `harness kind-preflight`: what the kind tier needs from a laptop or a runner, checked
//! without creating a cluster, as one list of what to fix.
//!
//! - docker, kind and kubectl installed; kind the release the node image's digest comes from;
//!   kubectl within one minor of the node image (kubectl's supported skew);
//! - free disk where Docker keeps images and containers (the node image, four nodes'
//!   containerd stores, the images loaded into each);
//! - inotify limits (kind's known issue: several nodes' kubelets and containerds exhaust the
//!   defaults, and pods fail with "too many open files");
//! - the glibc of the binaries build.sh puts into images, against the base image's;
//! - the images themselves (build.sh's manifest and the tags in Docker).
//!
//! Every check runs even when an earlier one blocks. The probes go through [`Probe`], so the
//! judgements are tested against fakes; [`SystemProbe`] runs the real commands.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How a finding weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but worth knowing (e.g. a slower path, a one-minor skew).
    Warn,
    /// The kind tier cannot run (or will fail) until this is fixed.
    Block,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What was checked (`docker`, `kind`, `inotify`...).
    pub check: &'static str,
    /// Its weight.
    pub status: Status,
    /// What was found, and for a warning or a block, what to do.
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            Status::Ok => "ok",
            Status::Warn => "WARN",
            Status::Block => "BLOCK",
        };
        write!(f, "{status:5} {:9} {}", self.check, self.detail)
    }
}

/// What the preflight asks of the machine.
pub trait Probe {
    /// Run `program args`: its stdout, or why it failed (not installed, exit status, stderr).
    fn run(&self, program: &str, args: &[&str]) -> Result<String, String>;
    /// A file's contents.
    fn read(&self, path: &Path) -> Result<String, String>;
}

/// The real machine.
#[derive(Debug, Default)]
pub struct SystemProbe;

impl Probe for SystemProbe {
    fn run(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let output = Command::new(program)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {program}: {e} (not installed?)"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            let mut said = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            if said.is_empty() {
                said = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            }
            Err(format!("{program} {}: {}: {said}", args.join(" "), output.status))
        }
    }

    fn read(&self, path: &Path) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// What the workflow and the repository pin, and where things are.
#[derive(Debug, Clone)]
pub struct Expectations {
    /// kind's release (e2e.yml's `KIND_VERSION`), e.g. `v0.33.0`.
    pub kind_version: String,
    /// The node image (kind-config/), e.g. `kindest/node:v1.36.4@sha256:...`.
    pub node_image: String,
    /// The base image's glibc (images.env's `SHIPPER_HARNESS_BASE_GLIBC`, else Debian 12's).
    pub base_glibc: Option<String>,
    /// build.sh's manifest of image tags (`images.env`), if found.
    pub manifest: Option<PathBuf>,
    /// The binaries build.sh copies into images.
    pub binaries: Vec<PathBuf>,
    /// harness/images/check-glibc.sh.
    pub glibc_script: PathBuf,
}

/// Below this much free disk the kind tier blocks; below [`DISK_WARN_BYTES`] it warns.
pub const DISK_BLOCK_BYTES: u64 = 8 << 30;
/// See [`DISK_BLOCK_BYTES`].
pub const DISK_WARN_BYTES: u64 = 20 << 30;
/// kind's known-issues values for several nodes.
pub const INOTIFY_MIN: [(&str, u64); 2] = [("max_user_instances", 512), ("max_user_watches", 524_288)];

/// Every finding, in a fixed order; no check is skipped because another blocked.
pub fn run(probe: &dyn Probe, expect: &Expectations) -> Vec<Finding> {
    let mut findings = vec![docker(probe)];
    findings.push(kind(probe, &expect.kind_version));
    findings.push(kubectl(probe, &expect.node_image));
    findings.push(disk(probe));
    findings.extend(inotify(probe));
    findings.extend(glibc(probe, expect));
    findings.extend(images(probe, expect));
    findings
}

fn finding(check: &'static str, status: Status, detail: impl Into<String>) -> Finding {
    Finding { check, status, detail: detail.into() }
}

fn docker(probe: &dyn Probe) -> Finding {
    match probe.run("docker", &["version", "--format", "{{.Server.Version}}"]) {
        Ok(version) => finding("docker", Status::Ok, format!("server {version}")),
        Err(e) => finding("docker", Status::Block, format!("{e}: install Docker and start its daemon")),
    }
}

/// `vX.Y[.Z...]` anywhere in `text` → (X, Y).
fn minor_of(text: &str) -> Option<(u32, u32)> {
    text.split(|c: char| c.is_whitespace() || c == '"' || c == ':').find_map(|word| {
        let version = word.strip_prefix('v')?;
        let mut parts = version.split(['.', '-', '+']);
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    })
}

fn kind(probe: &dyn Probe, expected: &str) -> Finding {
    match probe.run("kind", &["version"]) {
        // "kind v0.33.0 go1.24.2 linux/amd64"
        Ok(text) if text.split_whitespace().any(|w| w == expected) => finding("kind", Status::Ok, text),
        Ok(text) => finding(
            "kind",
            Status::Warn,
            format!(
                "{text}; kind-config/'s node image digest is from kind {expected}'s release notes: \
                 install kind {expected} (another release may not run that image)"
            ),
        ),
        Err(e) => finding(
            "kind",
            Status::Block,
            format!("{e}: install kind {expected} (https://kind.sigs.k8s.io/docs/user/quick-start/)"),
        ),
    }
}

fn kubectl(probe: &dyn Probe, node_image: &str) -> Finding {
    let node = node_image.split_once(':').and_then(|(_, tag)| minor_of(tag));
    let Some((node_major, node_minor)) = node else {
        return finding("kubectl", Status::Block, format!("node image {node_image} has no vX.Y tag"));
    };
    match probe.run("kubectl", &["version", "--client"]) {
        // "Client Version: v1.32.4"
        Ok(text) => match minor_of(&text) {
            Some((major, minor)) if major == node_major => {
                let skew = minor.abs_diff(node_minor);
                let said = format!("client v{major}.{minor}, node image v{node_major}.{node_minor}");
                match skew {
                    0 => finding("kubectl", Status::Ok, said),
                    1 => finding("kubectl", Status::Warn, format!("{said}: one minor of skew (supported)")),
                    _ => finding(
                        "kubectl",
                        Status::Block,
                        format!(
                            "{said}: {skew} minors of skew, kubectl supports one: install kubectl \
                             v{node_major}.{node_minor}.x"
                        ),
                    ),
                }
            }
            _ => finding("kubectl", Status::Block, format!("cannot read a version from {text:?}")),
        },
        Err(e) => {
            finding("kubectl", Status::Block, format!("{e}: install kubectl v{node_major}.{node_minor}.x"))
        }
    }
}

/// Free bytes from `df -Pk` output (the last line's 4th column, in KiB).
fn df_free_bytes(text: &str) -> Option<u64> {
    let line = text.lines().last()?;
    line.split_whitespace().nth(3)?.parse::<u64>().ok().map(|kib| kib * 1024)
}

fn disk(probe: &dyn Probe) -> Finding {
    // Where Docker keeps images and the nodes' containers; `/` when the daemon does not say.
    let root = probe
        .run("docker", &["info", "--format", "{{.DockerRootDir}}"])
        .ok()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/".to_owned());
    // The daemon's dir may be unreadable (rootless, remote): then its mount is measured at /.
    let df = probe.run("df", &["-Pk", &root]).or_else(|_| probe.run("df", &["-Pk", "/"]));
    match df.as_deref().map(df_free_bytes) {
        Ok(Some(free)) => {
            let gib = free as f64 / f64::from(1u32 << 30);
            let said = format!("{gib:.1} GiB free under {root}");
            if free < DISK_BLOCK_BYTES {
                finding(
                    "disk",
                    Status::Block,
                    format!("{said}: the kind tier needs {} GiB", DISK_BLOCK_BYTES >> 30),
                )
            } else if free < DISK_WARN_BYTES {
                finding("disk", Status::Warn, format!("{said}: tight for the multi-node cluster"))
            } else {
                finding("disk", Status::Ok, said)
            }
        }
        Ok(None) => finding("disk", Status::Warn, "cannot read df's output"),
        Err(e) => finding("disk", Status::Warn, format!("cannot measure free disk: {e}")),
    }
}

fn inotify(probe: &dyn Probe) -> Vec<Finding> {
    INOTIFY_MIN
        .iter()
        .map(|(name, min)| {
            let path = PathBuf::from("/proc/sys/fs/inotify").join(name);
            match probe.read(&path).map(|t| t.trim().parse::<u64>()) {
                Ok(Ok(value)) if value >= *min => finding("inotify", Status::Ok, format!("{name} = {value}")),
                Ok(Ok(value)) => finding(
                    "inotify",
                    Status::Block,
                    format!(
                        "{name} = {value}, below {min}: several kind nodes exhaust it (pods fail with \
                         \"too many open files\"): sudo sysctl -w fs.inotify.{name}={min}"
                    ),
                ),
                Ok(Err(e)) => finding("inotify", Status::Warn, format!("{}: {e}", path.display())),
                Err(e) => finding("inotify", Status::Warn, e),
            }
        })
        .collect()
}

fn glibc(probe: &dyn Probe, expect: &Expectations) -> Vec<Finding> {
    let Some(base) = &expect.base_glibc else {
        return vec![finding(
            "glibc",
            Status::Warn,
            "the base image's glibc is unknown: run harness/images/build.sh",
        )];
    };
    expect
        .binaries
        .iter()
        .map(|binary| {
            let shown = binary.display().to_string();
            if !binary.exists() {
                return finding("glibc", Status::Warn, format!("{shown} not built yet (build.sh builds it)"));
            }
            let script = expect.glibc_script.display().to_string();
            match probe.run("bash", &[&script, base, &shown]) {
                Ok(said) => finding("glibc", Status::Ok, said.trim_start_matches("check-glibc: ").to_owned()),
                Err(e) => finding(
                    "glibc",
                    Status::Block,
                    format!(
                        "{e}\n                build on a machine whose glibc is <= {base} (the base image's)"
                    ),
                ),
            }
        })
        .collect()
}

/// `KEY=value` lines of build.sh's manifest.
fn manifest_entries(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The images the kind tier loads or runs.
const KIND_IMAGES: [&str; 3] =
    ["SHIPPER_HARNESS_SHIPPER_IMAGE", "SHIPPER_HARNESS_WRITER_IMAGE", "SHIPPER_HARNESS_LOCALSTACK_IMAGE"];

fn images(probe: &dyn Probe, expect: &Expectations) -> Vec<Finding> {
    let mut findings = Vec::new();
    let text = expect
        .manifest
        .as_ref()
        .ok_or_else(|| "no cache dir (HOME unset)".to_owned())
        .and_then(|m| probe.read(m));
    match text {
        Err(e) => findings.push(finding(
            "images",
            Status::Block,
            format!("{e}: run harness/images/build.sh (it writes the manifest of image tags)"),
        )),
        Ok(text) => {
            let entries = manifest_entries(&text);
            for key in KIND_IMAGES {
                let tag = entries.get(key).filter(|t| !t.is_empty());
                findings.push(match tag {
                    None => finding(
                        "images",
                        Status::Block,
                        format!("{key} missing from the manifest: run build.sh"),
                    ),
                    Some(tag) => match probe.run("docker", &["image", "inspect", "--format", "{{.Id}}", tag])
                    {
                        Ok(_) => finding("images", Status::Ok, format!("{tag} present")),
                        Err(_) => finding(
                            "images",
                            Status::Block,
                            format!(
                                "{tag} is in the manifest but not in Docker: run harness/images/build.sh"
                            ),
                        ),
                    },
                });
            }
        }
    }
    // kind pulls the node image itself on first use; present means no registry is needed.
    findings.push(
        match probe.run("docker", &["image", "inspect", "--format", "{{.Id}}", &expect.node_image]) {
            Ok(_) => finding("images", Status::Ok, format!("{} present", expect.node_image)),
            Err(_) => finding(
                "images",
                Status::Warn,
                format!("{} not present: kind pulls it (needs access to docker.io)", expect.node_image),
            ),
        },
    );
    findings
}

/// The expectations of this checkout: e2e.yml's kind release, kind-config's node image,
/// build.sh's manifest and base glibc, the binaries of `target_dir`'s debug profile.
pub fn expectations(repo: &Path, target_dir: &Path, cache: Option<&Path>) -> Result<Expectations, String> {
    let read = |p: &str| std::fs::read_to_string(repo.join(p)).map_err(|e| format!("{p}: {e}"));
    let workflow = read(".github/workflows/e2e.yml")?;
    let kind_version = workflow
        .lines()
        .find_map(|l| l.trim().strip_prefix("KIND_VERSION:"))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .ok_or("e2e.yml has no KIND_VERSION")?;
    let config = read("kind-config/single-node.yaml")?;
    let node_image = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("image:"))
        .map(|v| v.trim().to_owned())
        .ok_or("kind-config/single-node.yaml names no image")?;
    let manifest = cache.map(|c| c.join("images.env"));
    let recorded = manifest
        .as_ref()
        .and_then(|m| std::fs::read_to_string(m).ok())
        .and_then(|t| manifest_entries(&t).remove("SHIPPER_HARNESS_BASE_GLIBC"))
        .filter(|v| !v.is_empty());
    // build.sh debootstraps Debian 12 (bookworm): glibc 2.36, until its manifest says.
    let suite =
        read("harness/images/build.sh")?.lines().find_map(|l| l.strip_prefix("SUITE=").map(str::to_owned));
    let base_glibc = recorded.or_else(|| (suite.as_deref() == Some("bookworm")).then(|| "2.36".to_owned()));
    Ok(Expectations {
        kind_version,
        node_image,
        base_glibc,
        manifest,
        binaries: vec![target_dir.join("debug/shipper"), target_dir.join("debug/harness")],
        glibc_script: repo.join("harness/images/check-glibc.sh"),
    })
}

/// The findings as one list, blocking ones last, and a closing line; `true` if nothing blocks.
pub fn render(findings: &[Finding]) -> (String, bool) {
    let mut sorted: Vec<&Finding> = findings.iter().collect();
    sorted.sort_by_key(|f| f.status);
    let mut text = String::from("kind-tier preflight (creates no cluster):\n");
    for f in &sorted {
        text.push_str(&format!("  {f}\n"));
    }
    let blocking = findings.iter().filter(|f| f.status == Status::Block).count();
    let warnings = findings.iter().filter(|f| f.status == Status::Warn).count();
    if blocking == 0 {
        text.push_str(&format!("ready for the kind tier ({warnings} warning(s))\n"));
    } else {
        text.push_str(&format!("{blocking} thing(s) to fix before the kind tier can run (BLOCK above)\n"));
    }
    (text, blocking == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A machine described by maps: commands' outputs and files' contents.
    #[derive(Default)]
    struct Fake {
        commands: BTreeMap<String, Result<String, String>>,
        files: BTreeMap<PathBuf, String>,
    }

    impl Fake {
        fn cmd(mut self, line: &str, out: Result<&str, &str>) -> Self {
            self.commands.insert(line.to_owned(), out.map(str::to_owned).map_err(str::to_owned));
            self
        }
        fn file(mut self, path: &str, text: &str) -> Self {
            self.files.insert(PathBuf::from(path), text.to_owned());
            self
        }
    }

    impl Probe for Fake {
        fn run(&self, program: &str, args: &[&str]) -> Result<String, String> {
            let line = format!("{program} {}", args.join(" "));
            self.commands
                .get(&line)
                .cloned()
                .unwrap_or_else(|| Err(format!("cannot run {program}: not installed")))
        }
        fn read(&self, path: &Path) -> Result<String, String> {
            self.files.get(path).cloned().ok_or_else(|| format!("{}: not found", path.display()))
        }
    }

    fn expect() -> Expectations {
        Expectations {
            kind_version: "v0.33.0".into(),
            node_image: "kindest/node:v1.36.4@sha256:abc".into(),
            base_glibc: Some("2.36".into()),
            manifest: Some(PathBuf::from("/cache/images.env")),
            binaries: Vec::new(),
            glibc_script: PathBuf::from("check-glibc.sh"),
        }
    }

    fn ready_machine() -> Fake {
        Fake::default()
            .cmd("docker version --format {{.Server.Version}}", Ok("27.5.1"))
            .cmd("kind version", Ok("kind v0.33.0 go1.24.2 linux/amd64"))
            .cmd("kubectl version --client", Ok("Client Version: v1.36.4\nKustomize Version: v5.7.1"))
            .cmd("docker info --format {{.DockerRootDir}}", Ok("/var/lib/docker"))
            .cmd(
                "df -Pk /var/lib/docker",
                Ok("Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/root 76000000 30000000 46000000 40% /"),
            )
            .file("/proc/sys/fs/inotify/max_user_instances", "512\n")
            .file("/proc/sys/fs/inotify/max_user_watches", "524288\n")
            .file(
                "/cache/images.env",
                "# build.sh\nSHIPPER_HARNESS_SHIPPER_IMAGE=s:1\nSHIPPER_HARNESS_WRITER_IMAGE=w:1\n\
                 SHIPPER_HARNESS_LOCALSTACK_IMAGE=l:1\n",
            )
            .cmd("docker image inspect --format {{.Id}} s:1", Ok("sha256:1"))
            .cmd("docker image inspect --format {{.Id}} w:1", Ok("sha256:2"))
            .cmd("docker image inspect --format {{.Id}} l:1", Ok("sha256:3"))
            .cmd("docker image inspect --format {{.Id}} kindest/node:v1.36.4@sha256:abc", Ok("sha256:4"))
    }

    fn blocked(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().filter(|f| f.status == Status::Block).map(|f| f.check).collect()
    }

    #[test]
    fn a_ready_machine_passes() {
        let findings = run(&ready_machine(), &expect());
        assert_eq!(blocked(&findings), Vec::<&str>::new(), "{findings:#?}");
        assert!(findings.iter().all(|f| f.status == Status::Ok), "{findings:#?}");
        assert!(render(&findings).1);
    }

    #[test]
    fn missing_tools_are_reported_and_every_other_check_still_runs() {
        let mut machine = ready_machine();
        machine.commands.remove("kind version");
        machine.commands.remove("kubectl version --client");
        let findings = run(&machine, &expect());
        assert_eq!(blocked(&findings), ["kind", "kubectl"]);
        let kind = findings.iter().find(|f| f.check == "kind").expect("kind finding");
        assert!(kind.detail.contains("install kind v0.33.0"), "{}", kind.detail);
        assert!(findings.iter().any(|f| f.check == "inotify"), "later checks ran");
        let (text, ok) = render(&findings);
        assert!(!ok);
        assert!(text.ends_with("2 thing(s) to fix before the kind tier can run (BLOCK above)\n"), "{text}");
    }

    #[test]
    fn kubectl_skew_beyond_one_minor_blocks() {
        let skewed = |client: &str| {
            let machine = ready_machine().cmd("kubectl version --client", Ok(client));
            kubectl(&machine, &expect().node_image)
        };
        assert_eq!(skewed("Client Version: v1.36.0").status, Status::Ok);
        assert_eq!(skewed("Client Version: v1.35.2").status, Status::Warn);
        assert_eq!(skewed("Client Version: v1.37.0").status, Status::Warn);
        let old = skewed("Client Version: v1.31.0");
        assert_eq!(old.status, Status::Block, "kind-action's default kubectl");
        assert!(old.detail.contains("5 minors of skew") && old.detail.contains("install kubectl v1.36.x"));
        assert_eq!(skewed("Client Version: v1.32.4-dispatcher").status, Status::Block);
    }

    #[test]
    fn another_kind_release_warns() {
        let machine = ready_machine().cmd("kind version", Ok("kind v0.27.0 go1.23 linux/amd64"));
        assert_eq!(kind(&machine, "v0.33.0").status, Status::Warn);
    }

    #[test]
    fn low_inotify_limits_and_little_disk_block() {
        let machine = ready_machine()
            .file("/proc/sys/fs/inotify/max_user_instances", "128\n")
            .cmd("df -Pk /var/lib/docker", Ok("Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/root 76000000 70000000 6000000 92% /"));
        let findings = run(&machine, &expect());
        assert_eq!(blocked(&findings), ["disk", "inotify"]);
        let inotify =
            findings.iter().find(|f| f.status == Status::Block && f.check == "inotify").expect("inotify");
        assert!(
            inotify.detail.contains("sudo sysctl -w fs.inotify.max_user_instances=512"),
            "{}",
            inotify.detail
        );
        assert_eq!(df_free_bytes("h\n/dev/x 10 5 2048 50% /"), Some(2 << 20));
    }

    #[test]
    fn missing_images_block_and_a_missing_node_image_warns() {
        let mut machine = ready_machine();
        machine.commands.remove("docker image inspect --format {{.Id}} w:1");
        machine.commands.remove("docker image inspect --format {{.Id}} kindest/node:v1.36.4@sha256:abc");
        let findings = run(&machine, &expect());
        assert_eq!(blocked(&findings), ["images"]);
        assert!(findings.iter().any(|f| f.status == Status::Warn && f.detail.contains("kind pulls it")));
        machine.files.remove(Path::new("/cache/images.env"));
        let findings = run(&machine, &expect());
        assert!(
            findings
                .iter()
                .any(|f| f.status == Status::Block && f.detail.contains("run harness/images/build.sh"))
        );
    }

    #[test]
    fn the_expectations_come_from_this_checkout() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let expect = expectations(&repo, Path::new("/t"), None).expect("expectations");
        assert!(expect.kind_version.starts_with("v0."), "{}", expect.kind_version);
        assert!(expect.node_image.starts_with("kindest/node:v1."), "{}", expect.node_image);
        assert_eq!(expect.base_glibc.as_deref(), Some("2.36"), "Debian 12 until build.sh records it");
        assert_eq!(expect.binaries, [PathBuf::from("/t/debug/shipper"), PathBuf::from("/t/debug/harness")]);
    }
}
