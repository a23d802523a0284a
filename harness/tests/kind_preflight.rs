//! `harness kind-preflight` run for real on this machine. Where kind is not installed (our
//! machines: no registry for its node image) it must say so and exit non-zero, with every
//! other check still evaluated; where it is, every check still prints one line.

use std::process::Command;

#[test]
fn the_preflight_lists_every_check_and_blocks_without_kind() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_harness")).arg("kind-preflight").output().expect("harness runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("kind-tier preflight (creates no cluster):\n"), "{text}");
    // Every check ran, whatever blocked first.
    for check in ["docker", "kind", "kubectl", "disk", "inotify", "glibc", "images"] {
        assert!(
            text.lines().any(|l| l.split_whitespace().nth(1) == Some(check)),
            "no line for {check}:\n{text}"
        );
    }
    let blocking = text.lines().filter(|l| l.trim_start().starts_with("BLOCK")).count();
    assert_eq!(out.status.success(), blocking == 0, "exit status follows the blocks:\n{text}");
    let kind_installed = Command::new("kind").arg("version").output().is_ok_and(|o| o.status.success());
    if !kind_installed {
        assert_eq!(out.status.code(), Some(1), "{text}");
        let kind = text.lines().find(|l| l.split_whitespace().nth(1) == Some("kind")).expect("kind line");
        assert!(kind.trim_start().starts_with("BLOCK") && kind.contains("install kind v0."), "{kind}");
        assert!(text.contains("thing(s) to fix before the kind tier can run"), "{text}");
    }
}
