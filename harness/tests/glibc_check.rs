//! `harness/images/check-glibc.sh`, the guard `build.sh` runs on every binary it puts into an
//! image: a binary linked against a newer glibc than the base's must be refused, naming the
//! symbol, before `docker build` copies it (issue #13: on ubuntu-24.04, aws-lc-sys binds
//! `__isoc23_sscanf@GLIBC_2.38`, which Debian 12's glibc 2.36 lacks).
//!
//! The binaries are built here with `cc`: one linked against this machine's glibc, and one that
//! needs `__isoc23_sscanf@GLIBC_2.38` from a stand-in library defining that version (so the
//! refusal of exactly the symbol is proven on a machine whose glibc is older).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("images/check-glibc.sh")
}

fn cc(args: &[&str], dir: &Path) {
    let out = Command::new("cc").args(args).current_dir(dir).output().expect("cc runs");
    assert!(out.status.success(), "cc {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `plain`: linked against this machine's glibc (needs `__libc_start_main@GLIBC_2.34`, glibc
/// ≥ 2.34 links it so). `isoc23`: also needs `__isoc23_sscanf@GLIBC_2.38`.
fn binaries(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::write(
        dir.join("plain.c"),
        "#include <stdio.h>\nint main(int c, char **v) { int x = 0; sscanf(v[0], \"%d\", &x); return x + c; }\n",
    )
    .expect("write");
    cc(&["-o", "plain", "plain.c"], dir);
    std::fs::write(
        dir.join("stub.c"),
        "int __isoc23_sscanf(const char *s, const char *f, ...) { (void)s; (void)f; return 0; }\n",
    )
    .expect("write");
    std::fs::write(dir.join("stub.map"), "GLIBC_2.38 { global: __isoc23_sscanf; local: *; };\n")
        .expect("write");
    cc(
        &[
            "-shared",
            "-fPIC",
            "-Wl,-soname,libisoc23.so",
            "-Wl,--version-script=stub.map",
            "-o",
            "libisoc23.so",
            "stub.c",
        ],
        dir,
    );
    std::fs::write(
        dir.join("isoc23.c"),
        "int __isoc23_sscanf(const char *, const char *, ...);\n\
         int main(void) { int x = 0; return __isoc23_sscanf(\"1\", \"%d\", &x); }\n",
    )
    .expect("write");
    cc(&["-o", "isoc23", "isoc23.c", "./libisoc23.so"], dir);
    (dir.join("plain"), dir.join("isoc23"))
}

fn check(tool: &str, max: &str, files: &[&Path]) -> Output {
    Command::new("bash")
        .arg(script())
        .arg(max)
        .args(files)
        .env("CHECK_GLIBC_TOOL", tool)
        .output()
        .expect("check-glibc.sh runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// This machine's glibc, as `getconf` reports it (e.g. "2.36").
fn host_glibc() -> String {
    let out = Command::new("getconf").arg("GNU_LIBC_VERSION").output().expect("getconf");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().strip_prefix("glibc ").expect("glibc x.y").to_owned()
}

#[test]
fn a_binary_needing_a_newer_glibc_is_refused_naming_the_symbol() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (plain, isoc23) = binaries(dir.path());
    for tool in ["objdump", "readelf"] {
        // The case: Debian 12 (2.36) and a binary built on glibc >= 2.38.
        let out = check(tool, "2.36", &[&isoc23]);
        assert_eq!(out.status.code(), Some(1), "{tool}: {}", stderr(&out));
        assert!(stderr(&out).contains("__isoc23_sscanf@GLIBC_2.38"), "{tool}: {}", stderr(&out));
        assert!(!stderr(&out).contains("__libc_start_main"), "only the offending symbols: {}", stderr(&out));
        // A base as new as the symbol takes it.
        let out = check(tool, "2.38", &[&isoc23]);
        assert_eq!(out.status.code(), Some(0), "{tool}: {}", stderr(&out));

        // A real binary of this machine: refused below the version of its newest symbol,
        // accepted at exactly that version.
        let out = check(tool, "2.33", &[&plain]);
        assert_eq!(out.status.code(), Some(1), "{tool}: {}", stderr(&out));
        assert!(stderr(&out).contains("__libc_start_main@GLIBC_2.34"), "{tool}: {}", stderr(&out));
        let out = check(tool, "2.34", &[&plain]);
        assert_eq!(out.status.code(), Some(0), "{tool}: {}", stderr(&out));

        // One bad file among good ones fails the whole check.
        let out = check(tool, "2.36", &[&plain, &isoc23]);
        assert_eq!(out.status.code(), Some(1), "{tool}: {}", stderr(&out));
    }
}

#[test]
fn the_limit_can_be_read_from_the_bases_libc() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (plain, _) = binaries(dir.path());
    let libc = ["/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6", "/lib64/libc.so.6"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("this machine's libc.so.6");
    for tool in ["objdump", "readelf"] {
        let out = check(tool, &libc.display().to_string(), &[&plain]);
        assert_eq!(out.status.code(), Some(0), "{tool}: {}", stderr(&out));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains(&format!("base has {}", host_glibc())), "{tool}: limit read from libc: {said}");
    }
}

#[test]
fn a_wheel_tagged_for_a_newer_glibc_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Only the tag matters for this refusal; an empty zip is a valid wheel file for it.
    let wheel = dir.path().join("fast-1.0-cp311-cp311-manylinux_2_38_x86_64.whl");
    std::fs::write(&wheel, b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0").expect("write");
    let out = check("objdump", "2.36", &[&wheel]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("tagged for glibc 2.38"), "{}", stderr(&out));
    let old = dir.path().join("fast-1.0-cp311-cp311-manylinux2014_x86_64.whl");
    std::fs::copy(&wheel, &old).expect("copy");
    let out = check("objdump", "2.36", &[&old]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn usage_errors_are_not_passes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a binary").expect("write");
    assert_eq!(check("objdump", "2.36", &[&text]).status.code(), Some(2));
    assert_eq!(check("objdump", "two", &[&text]).status.code(), Some(2));
    assert_eq!(check("objdump", "2.36", &[&dir.path().join("missing")]).status.code(), Some(2));
    assert_eq!(check("nm", "2.36", &[&text]).status.code(), Some(2));
}
