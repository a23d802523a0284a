//! SimNode against kubelet's and containerd's rules (`reference/kubelet-logs.md`).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flate2::read::GzDecoder;
use harness::simnode::{LogFormat, SimNode, Stream};
use proptest::prelude::*;

/// 2026-11-25T10:00:00Z.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_600_800)
}

fn names(paths: &[PathBuf]) -> Vec<String> {
    paths.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect()
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// (tag, message) of every CRI record in `bytes`.
fn cri_records(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|r| !r.is_empty())
        .map(|record| {
            let mut fields = record.splitn(4, |b| *b == b' ');
            let _time = fields.next().unwrap();
            let _stream = fields.next().unwrap();
            let tag = String::from_utf8(fields.next().unwrap().to_vec()).unwrap();
            (tag, fields.next().unwrap().to_vec())
        })
        .collect()
}

#[test]
fn paths_and_symlink_follow_kubelet_layout() {
    let root = tempfile::tempdir().unwrap();
    let node = SimNode::new(root.path()).unwrap();
    let log = node.add_container("default", "web-0", "uid-1", "app").unwrap();
    let expected_file = root.path().join("var/log/pods/default_web-0_uid-1/app/0.log");
    assert_eq!(log.path(), expected_file);
    assert!(expected_file.is_file());

    let id = log.container_id();
    assert_eq!(id.len(), 64);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    let link = root.path().join(format!("var/log/containers/web-0_default_app-{id}.log"));
    assert_eq!(log.symlink(), link);
    assert_eq!(fs::read_link(&link).unwrap(), expected_file);
    assert_eq!(log.runtime_container_id(), format!("containerd://{id}"));
}

#[test]
fn invalid_names_are_rejected() {
    let root = tempfile::tempdir().unwrap();
    let node = SimNode::new(root.path()).unwrap();
    assert!(node.add_container("Default", "p", "u", "c").is_err());
    assert!(node.add_container("ns", "p_q", "u", "c").is_err());
    assert!(node.add_container("ns", "p", "", "c").is_err());
    assert!(node.add_container("ns", "p", "u", "").is_err());
}

#[test]
fn cri_lines_have_go_timestamps_and_streams() {
    let root = tempfile::tempdir().unwrap();
    let node = SimNode::new(root.path()).unwrap();
    let mut log = node.add_container("ns", "p", "u", "c").unwrap();
    log.write_line_at(Stream::Stdout, b"hello", t0()).unwrap();
    log.write_line_at(Stream::Stderr, b"oops", t0() + Duration::from_nanos(120_000_000)).unwrap();
    assert_eq!(
        fs::read_to_string(log.path()).unwrap(),
        "2026-11-25T10:00:00Z stdout F hello\n2026-11-25T10:00:00.12Z stderr F oops\n"
    );
}

#[test]
fn long_lines_split_into_p_records_at_16_kib() {
    let root = tempfile::tempdir().unwrap();
    let node = SimNode::new(root.path()).unwrap();
    let mut log = node.add_container("ns", "p", "u", "c").unwrap();
    let line: Vec<u8> = (0..40_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    log.write_line(Stream::Stdout, &line).unwrap();
    log.write_line(Stream::Stdout, &line[..16_384]).unwrap();
    let records = cri_records(&fs::read(log.path()).unwrap());
    let shape: Vec<(&str, usize)> = records.iter().map(|(t, m)| (t.as_str(), m.len())).collect();
    assert_eq!(shape, vec![("P", 16_384), ("P", 16_384), ("F", 7_232), ("F", 16_384)]);
    let merged: Vec<u8> = records[..3].iter().flat_map(|(_, m)| m.clone()).collect();
    assert_eq!(merged, line);
}

#[test]
fn docker_json_mode_splits_with_newline_only_on_the_last_piece() {
    let root = tempfile::tempdir().unwrap();
    let node = SimNode::new(root.path()).unwrap();
    let mut log = node.add_container_with_format("ns", "p", "u", "c", LogFormat::DockerJson).unwrap();
    let line = vec![b'x'; 20_000];
    log.write_line_at(Stream::Stderr, &line, t0()).unwrap();
    let text = fs::read_to_string(log.path()).unwrap();
    let objects: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[0]["log"].as_str().unwrap().len(), 16_384);
    assert_eq!(objects[1]["log"], format!("{}\n", "x".repeat(3_616)));
    assert_eq!(objects[1]["stream"], "stderr");
    assert_eq!(objects[1]["time"], "2026-11-25T10:00:00Z");
}

#[test]
fn rotation_keeps_current_one_uncompressed_and_max_files_minus_two_gz() {
    let root = tempfile::tempdir().unwrap();
    let node = SimNode::new(root.path()).unwrap();
    let mut log = node.add_container("ns", "p", "u", "c").unwrap();
    assert!(!log.rotate_if_needed_at(1_000, 5, t0()).unwrap(), "empty file must not rotate");

    // Six rotations, the 3rd and 4th within the same second: names must not collide.
    let seconds = [0u64, 10, 20, 20, 40, 50];
    for (round, secs) in seconds.iter().enumerate() {
        let now = t0() + Duration::from_secs(*secs);
        log.write_line_at(Stream::Stdout, format!("round {round}").repeat(100).as_bytes(), now).unwrap();
        assert!(log.rotate_if_needed_at(500, 5, now).unwrap());
    }
    log.write_line_at(Stream::Stdout, b"current", t0()).unwrap();

    let rotated = names(&log.rotated_files().unwrap());
    assert_eq!(
        rotated,
        vec![
            "0.log.20261125-100020.gz", // round 2
            "0.log.20261125-100021.gz", // round 3: same second, next free one
            "0.log.20261125-100040.gz", // round 4
            "0.log.20261125-100050",    // round 5, uncompressed
        ]
    );
    assert_eq!(dir_names(log.dir()).len(), 5, "current + 4 rotated, no .tmp");

    // Each file holds exactly what was written during its round.
    for (name, round) in rotated.iter().zip(2..) {
        let path = log.dir().join(name);
        let mut content = Vec::new();
        if name.ends_with(".gz") {
            GzDecoder::new(fs::File::open(&path).unwrap()).read_to_end(&mut content).unwrap();
        } else {
            content = fs::read(&path).unwrap();
        }
        let records = cri_records(&content);
        assert_eq!(records.len(), 1, "{name}");
        assert_eq!(records[0].1, format!("round {round}").repeat(100).into_bytes());
    }
    assert!(fs::read_to_string(log.path()).unwrap().ends_with(" stdout F current\n"));
}

#[test]
fn rotation_cleans_tmp_leftovers_and_uncompressed_twins() {
    let root = tempfile::tempdir().unwrap();
    let node = SimNode::new(root.path()).unwrap();
    let mut log = node.add_container("ns", "p", "u", "c").unwrap();
    let dir = log.dir().to_path_buf();
    // What a kubelet crash during compression leaves behind.
    fs::write(dir.join("0.log.20261125-090000"), b"x").unwrap();
    fs::write(dir.join("0.log.20261125-090000.gz"), b"x").unwrap();
    fs::write(dir.join("0.log.20261125-091000.tmp"), b"x").unwrap();
    log.write_line_at(Stream::Stdout, &[b'y'; 200], t0()).unwrap();
    assert!(log.rotate_if_needed_at(100, 5, t0()).unwrap());
    assert_eq!(dir_names(&dir), vec!["0.log", "0.log.20261125-090000.gz", "0.log.20261125-100000"]);
}

#[test]
fn max_files_two_keeps_only_the_freshly_rotated_file() {
    let root = tempfile::tempdir().unwrap();
    let node = SimNode::new(root.path()).unwrap();
    let mut log = node.add_container("ns", "p", "u", "c").unwrap();
    for round in 0..3u64 {
        log.write_line_at(Stream::Stdout, &[b'z'; 100], t0()).unwrap();
        log.rotate_if_needed_at(10, 2, t0() + Duration::from_secs(round * 10)).unwrap();
    }
    assert_eq!(dir_names(log.dir()), vec!["0.log", "0.log.20261125-100020"]);
}

#[test]
fn restart_writes_the_next_file_under_a_new_symlink() {
    let root = tempfile::tempdir().unwrap();
    let node = SimNode::new(root.path()).unwrap();
    let mut log = node.add_container("ns", "p", "u", "c").unwrap();
    let first_link = log.symlink();
    log.write_line(Stream::Stdout, b"first run").unwrap();

    log.restart().unwrap();
    assert_eq!(log.restart_count(), 1);
    assert!(log.path().ends_with("c/1.log"));
    assert_ne!(log.symlink(), first_link);
    assert_eq!(fs::read_link(log.symlink()).unwrap(), log.path());
    // kubelet keeps the exited instance (kubectl logs --previous).
    assert!(first_link.exists());
    assert_eq!(dir_names(log.dir()), vec!["0.log", "1.log"]);
    let second_link = log.symlink();

    log.restart().unwrap();
    // The instance before the previous one is garbage collected with its files and link.
    assert!(fs::symlink_metadata(&first_link).is_err());
    assert!(second_link.exists());
    assert_eq!(dir_names(log.dir()), vec!["1.log", "2.log"]);
    assert_eq!(dir_names(node.containers_dir()).len(), 2);

    log.remove_exited().unwrap();
    assert_eq!(dir_names(log.dir()), vec!["2.log"]);
    assert_eq!(dir_names(node.containers_dir()).len(), 1);
}

#[test]
fn delete_pod_removes_its_directory_and_links_only() {
    let root = tempfile::tempdir().unwrap();
    let node = SimNode::new(root.path()).unwrap();
    let mut a = node.add_container("ns", "a", "ua", "app").unwrap();
    let _a2 = node.add_container("ns", "a", "ua", "sidecar").unwrap();
    let b = node.add_container("ns", "b", "ub", "app").unwrap();
    a.restart().unwrap();
    assert_eq!(dir_names(node.containers_dir()).len(), 4);

    node.delete_pod("ns", "a", "ua").unwrap();
    assert_eq!(dir_names(node.pods_dir()), vec!["ns_b_ub"]);
    let links = dir_names(node.containers_dir());
    assert_eq!(links, vec![b.symlink().file_name().unwrap().to_string_lossy().into_owned()]);
    // Deleting twice is harmless.
    node.delete_pod("ns", "a", "ua").unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Any line: `P` records are exactly 16,384 bytes, one `F` ends it with 1..=16,384
    /// bytes (0 only for an empty line), and the records concatenate back to the line.
    #[test]
    fn cri_records_reassemble_to_the_line(len in prop_oneof![0usize..100, 16_380usize..16_390, 32_760usize..32_780, 0usize..70_000]) {
        let root = tempfile::tempdir().unwrap();
        let node = SimNode::new(root.path()).unwrap();
        let mut log = node.add_container("ns", "p", "u", "c").unwrap();
        let line: Vec<u8> = (0..len).map(|i| b'0' + (i % 10) as u8).collect();
        log.write_line(Stream::Stdout, &line).unwrap();
        let records = cri_records(&fs::read(log.path()).unwrap());
        let (last, partials) = records.split_last().unwrap();
        prop_assert_eq!(last.0.as_str(), "F");
        prop_assert!(partials.iter().all(|(tag, msg)| tag == "P" && msg.len() == 16_384));
        prop_assert!(last.1.len() <= 16_384 && (!last.1.is_empty() || len == 0));
        let merged: Vec<u8> = records.iter().flat_map(|(_, m)| m.clone()).collect();
        prop_assert_eq!(merged, line);
    }
}
