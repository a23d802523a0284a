//! CRI parsing and partial-record merging: the first two steps every line takes.
//!
//! Inputs have the shape of the `harness bench` workloads: ~240-byte messages, and a
//! partial-heavy variant where each line arrives as several `P` records and one `F`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shipper::parse::{Assembler, Format, Line, parse_record};

/// A ~240-byte CRI line, as containerd writes it (without the newline).
fn cri_line(tag: &str, message_len: usize) -> Vec<u8> {
    let mut line = format!("2026-11-25T10:00:00.123456789Z stdout {tag} ").into_bytes();
    line.extend((0..message_len).map(|i| b'a' + (i % 26) as u8));
    line
}

fn cri_parse(c: &mut Criterion) {
    let line = cri_line("F", 200);
    let mut group = c.benchmark_group("cri_parse");
    group.throughput(Throughput::Bytes(line.len() as u64));
    group.bench_function("full_240B", |b| {
        b.iter(|| parse_record(Format::Cri, black_box(&line)).expect("valid CRI"))
    });
    group.finish();
}

fn partial_merge(c: &mut Criterion) {
    let full = cri_line("F", 200);
    let pieces: Vec<Vec<u8>> = (0..4).map(|_| cri_line("P", 50)).chain([cri_line("F", 50)]).collect();
    let mut group = c.benchmark_group("assemble");
    group.throughput(Throughput::Elements(1));
    group.bench_function("whole_line", |b| {
        let mut assembler = Assembler::new(1 << 20);
        let mut out: Vec<Line> = Vec::with_capacity(1);
        b.iter(|| {
            out.clear();
            let record = parse_record(Format::Cri, &full).expect("valid CRI");
            assembler.push(record, 0, &mut out);
            black_box(&out);
        })
    });
    group.bench_function("four_partials_and_final", |b| {
        let mut assembler = Assembler::new(1 << 20);
        let mut out: Vec<Line> = Vec::with_capacity(1);
        b.iter(|| {
            out.clear();
            for piece in &pieces {
                let record = parse_record(Format::Cri, piece).expect("valid CRI");
                assembler.push(record, 0, &mut out);
            }
            assert_eq!(out.len(), 1, "five records make one line");
            black_box(&out);
        })
    });
    group.finish();
}

criterion_group!(benches, cri_parse, partial_merge);
criterion_main!(benches);
