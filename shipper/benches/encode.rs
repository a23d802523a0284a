//! Message encoding: every line becomes the contract's compact JSON object once.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shipper::route::{MessageEncoder, MessageFormat, MessageMeta};

const META: MessageMeta<'static> = MessageMeta {
    namespace: "bench",
    pod_name: "writer-0-7d9f8b6c5-x2x4q",
    container_name: "app",
    container_image: "registry.example/team/app:1.2.3",
    host: "node-1",
    extra: &[],
};

fn encoder() -> MessageEncoder {
    MessageEncoder::new(&META)
}

fn encode(c: &mut Criterion) {
    let encoder = encoder();
    let plain: String = (0..240).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    // A structured log line: quotes to escape, as JSON-logging apps write.
    let json_line = r#"{"level":"info","ts":"2026-11-25T10:00:00Z","msg":"request served","path":"/api/v1/items","status":200,"bytes":1532,"duration_ms":12.5,"user":"u-123","trace":"0af7651916cd43dd8448eb211c80319c"}"#;
    let big: String = "x".repeat(1 << 20);
    let mut group = c.benchmark_group("encode");
    for (name, log) in [("plain_240B", plain.as_str()), ("json_escapes", json_line)] {
        group.throughput(Throughput::Bytes(log.len() as u64));
        group.bench_function(name, |b| {
            let mut out = Vec::with_capacity(1);
            b.iter(|| {
                out.clear();
                encoder.encode(black_box(log), false, &mut out);
                black_box(&out);
            })
        });
    }
    // envelope_json: a JSON line goes in verbatim after one validating pass.
    let embedding = MessageEncoder::with_format(&META, MessageFormat::EnvelopeJson);
    group.throughput(Throughput::Bytes(json_line.len() as u64));
    group.bench_function("json_embedded", |b| {
        let mut out = Vec::with_capacity(1);
        b.iter(|| {
            out.clear();
            embedding.encode(black_box(json_line), false, &mut out);
            black_box(&out);
        })
    });
    group.throughput(Throughput::Bytes(big.len() as u64));
    group.bench_function("line_1MiB_split", |b| {
        let mut out = Vec::with_capacity(2);
        b.iter(|| {
            out.clear();
            let pieces = encoder.encode(black_box(&big), false, &mut out);
            assert_eq!(pieces, 2, "a 1 MiB line does not fit one event");
        })
    });
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
