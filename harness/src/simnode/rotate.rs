//! kubelet's size-based rotation (`pkg/kubelet/logs/container_log_manager.go`,
//! `rotateLog`), step by step on the real files.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

use super::SimNodeError;

const GZ_SUFFIX: &str = ".gz";
const TMP_SUFFIX: &str = ".tmp";

/// Steps 1–3 of `rotateLog` for the current log file `current` (`<n>.log`):
/// 1. remove leftover `.tmp` files and uncompressed files that already have a `.gz` twin;
/// 2. remove the oldest rotated files so that at most `max_files − 2` remain;
/// 3. gzip every remaining uncompressed rotated file via a `.tmp` file.
///
/// Step 4 (rename the current file and reopen) belongs to the writer, see
/// `ContainerLog::rotate_if_needed`.
pub(super) fn prepare_rotation(current: &Path, max_files: usize) -> Result<(), SimNodeError> {
    let rotated = rotated_files(current)?;
    let rotated = cleanup_unused(rotated)?;
    let rotated = remove_excess(rotated, max_files)?;
    for file in rotated.iter().filter(|f| !has_suffix(f, GZ_SUFFIX)) {
        compress(file)?;
    }
    Ok(())
}

/// Every `<current>.*` file (kubelet's glob `log + ".*"`), sorted by name, which is oldest
/// first because the suffix is a fixed-width timestamp.
pub(super) fn rotated_files(current: &Path) -> Result<Vec<PathBuf>, SimNodeError> {
    let dir = current.parent().unwrap_or(Path::new("."));
    let prefix = format!("{}.", file_name(current));
    let entries = fs::read_dir(dir).map_err(|source| SimNodeError::io("list", dir, source))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| SimNodeError::io("list", dir, source))?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// kubelet's `cleanupUnusedLogs`: drop `.tmp` leftovers and uncompressed files whose
/// compression finished (the `.gz` twin exists) but whose removal did not.
fn cleanup_unused(files: Vec<PathBuf>) -> Result<Vec<PathBuf>, SimNodeError> {
    let mut kept = Vec::with_capacity(files.len());
    for file in &files {
        let gz_twin = PathBuf::from(format!("{}{GZ_SUFFIX}", file.display()));
        if has_suffix(file, TMP_SUFFIX) || files.contains(&gz_twin) {
            remove(file)?;
        } else {
            kept.push(file.clone());
        }
    }
    Ok(kept)
}

/// kubelet's `removeExcessLogs`: keep the newest `max_files − 2` rotated files (the current
/// file and the one about to be rotated make up the other two).
fn remove_excess(files: Vec<PathBuf>, max_files: usize) -> Result<Vec<PathBuf>, SimNodeError> {
    let keep = max_files.saturating_sub(2);
    let excess = files.len().saturating_sub(keep);
    for file in &files[..excess] {
        remove(file)?;
    }
    Ok(files[excess..].to_vec())
}

/// kubelet's `compressLog`: gzip into `<file>.tmp`, rename to `<file>.gz`, remove `<file>`.
fn compress(file: &Path) -> Result<(), SimNodeError> {
    let tmp = PathBuf::from(format!("{}{TMP_SUFFIX}", file.display()));
    let gz = PathBuf::from(format!("{}{GZ_SUFFIX}", file.display()));
    let mut input = File::open(file).map_err(|source| SimNodeError::io("open", file, source))?;
    let output = File::create(&tmp).map_err(|source| SimNodeError::io("create", &tmp, source))?;
    let mut encoder = GzEncoder::new(output, Compression::default());
    io::copy(&mut input, &mut encoder).map_err(|source| SimNodeError::io("gzip", &tmp, source))?;
    encoder.finish().map_err(|source| SimNodeError::io("gzip", &tmp, source))?;
    fs::rename(&tmp, &gz).map_err(|source| SimNodeError::io("rename", &tmp, source))?;
    remove(file)
}

fn remove(file: &Path) -> Result<(), SimNodeError> {
    match fs::remove_file(file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SimNodeError::io("remove", file, source)),
    }
}

fn has_suffix(path: &Path, suffix: &str) -> bool {
    file_name(path).ends_with(suffix)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
