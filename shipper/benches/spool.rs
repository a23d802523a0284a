//! The spool: appending events (which also decides batch boundaries: a chunk is one
//! PutLogEvents request), the group commit, and reading a sealed chunk back as a batch.
//!
//! The spool writes real files in a temporary directory, so commits include real fsyncs.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use shipper::route::Destination;
use shipper::spool::{Spool, SpoolOptions};

/// Events per iteration: one commit interval's worth at ~100k lines/s.
const EVENTS: usize = 10_000;

fn options() -> SpoolOptions {
    SpoolOptions { max_bytes: 1 << 40, flush_interval: Duration::from_secs(3600) }
}

fn message() -> String {
    let log: String = (0..240).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    format!(
        r#"{{"log":"{log}","namespace":"bench","pod_name":"writer-0","container_name":"app","container_image":"app:1","host":"node-1"}}"#
    )
}

fn dest() -> Destination {
    Destination { group: "k8s_bench_bench_writer_app".into(), stream: "writer-0_app".into() }
}

fn append_and_commit(c: &mut Criterion) {
    let message = message();
    let dest = dest();
    let mut group = c.benchmark_group("spool");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    group.bench_function("append_10k_then_commit", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let (spool, _) = Spool::open(dir.path(), options()).expect("open spool");
                (dir, spool)
            },
            |(dir, mut spool)| {
                for i in 0..EVENTS {
                    spool.append(&dest, 1_700_000_000_000 + i as i64, &message).expect("append");
                }
                spool.commit(b"source state").expect("commit");
                (dir, spool)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn read_batch(c: &mut Criterion) {
    let message = message();
    let dest = dest();
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut spool, _) = Spool::open(dir.path(), options()).expect("open spool");
    for i in 0..EVENTS {
        spool.append(&dest, 1_700_000_000_000 + i as i64, &message).expect("append");
    }
    spool.seal_all();
    spool.commit(b"").expect("commit");
    let ready = spool.ready(&|_| false);
    // The oldest chunk: sealed when the next event would have broken the 1 MiB batch rule.
    let chunk = ready.first().expect("a sealed chunk");
    let events_in_chunk = Spool::read(chunk).expect("read").events.len();
    let mut group = c.benchmark_group("spool");
    group.throughput(Throughput::Elements(events_in_chunk as u64));
    group.bench_function("read_full_chunk", |b| {
        b.iter(|| {
            let batch = Spool::read(black_box(chunk)).expect("read");
            assert_eq!(batch.events.len(), events_in_chunk);
            batch
        })
    });
    group.finish();
}

criterion_group!(benches, append_and_commit, read_batch);
criterion_main!(benches);
