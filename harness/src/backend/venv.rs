//! Cached Python virtualenvs for the emulators, installed on first use.
//!
//! A venv is not relocatable (its scripts hold absolute paths), so it is built in place
//! under an exclusive file lock and marked complete only at the end: concurrent test
//! processes wait for the first one, and a half-built venv (crash, full disk) is rebuilt.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::BackendError;

/// File written last into a finished venv.
const COMPLETE_MARKER: &str = ".shipper-harness-complete";

/// A pinned set of packages to install into a venv named after it.
#[derive(Debug, Clone, Copy)]
pub(super) struct VenvSpec {
    /// Short name (`moto`, `localstack`).
    pub name: &'static str,
    /// Version of the main package, part of the directory name.
    pub version: &'static str,
    /// A pip requirements file's text: one requirement a line, `#` comments.
    pub requirements: &'static str,
}

impl VenvSpec {
    /// The requirement lines, without comments and blank lines.
    pub fn requirement_lines(&self) -> Vec<&'static str> {
        self.requirements.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
    }
}

/// `$SHIPPER_HARNESS_CACHE`, else `~/.cache/shipper-harness`.
pub(super) fn cache_dir() -> Result<PathBuf, BackendError> {
    if let Some(dir) = std::env::var_os("SHIPPER_HARNESS_CACHE").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(|home| PathBuf::from(home).join(".cache/shipper-harness"))
        .ok_or(BackendError::NoCacheDir)
}

/// The venv for `spec`, installing it if no finished one exists. Blocking.
pub(super) fn ensure(spec: &VenvSpec) -> Result<PathBuf, BackendError> {
    let cache = cache_dir()?;
    let dir = cache.join(format!("venv-{}-{}", spec.name, spec.version));
    if dir.join(COMPLETE_MARKER).exists() {
        return Ok(dir);
    }
    fs::create_dir_all(&cache).map_err(|source| BackendError::io("create", &cache, source))?;
    let lock_path = cache.join(format!("venv-{}-{}.lock", spec.name, spec.version));
    let lock = File::create(&lock_path).map_err(|source| BackendError::io("create", &lock_path, source))?;
    // Blocks while another process installs; released when `lock` is dropped.
    lock.lock().map_err(|source| BackendError::io("lock", &lock_path, source))?;
    if dir.join(COMPLETE_MARKER).exists() {
        return Ok(dir);
    }
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|source| BackendError::io("remove", &dir, source))?;
    }
    let python = std::env::var("SHIPPER_HARNESS_PYTHON").unwrap_or_else(|_| "python3".into());
    run(Command::new(&python).arg("-m").arg("venv").arg(&dir), &python)?;
    let pip = dir.join("bin/pip");
    run(
        Command::new(&pip)
            .args(["install", "--disable-pip-version-check", "--quiet"])
            .args(spec.requirement_lines()),
        &pip.display().to_string(),
    )?;
    let marker = dir.join(COMPLETE_MARKER);
    fs::write(&marker, spec.requirement_lines().join("\n"))
        .map_err(|source| BackendError::io("write", &marker, source))?;
    Ok(dir)
}

/// Run a provisioning command, turning failure into an error that shows its output.
fn run(command: &mut Command, program: &str) -> Result<(), BackendError> {
    let shown = format!("{command:?}");
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| BackendError::Spawn { program: program.to_owned(), source })?;
    if output.status.success() {
        return Ok(());
    }
    Err(BackendError::Provision {
        command: shown,
        status: output.status.to_string(),
        output: tail(&[output.stdout, output.stderr].concat()),
    })
}

/// The last few lines of a command's output: where pip and python put the reason.
pub(super) fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Path of an executable inside a venv.
pub(super) fn bin(venv: &Path, name: &str) -> PathBuf {
    venv.join("bin").join(name)
}
