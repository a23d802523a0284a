//! The whole agent in-process against the fake CloudWatch: started with [`super::start`],
//! stopped the way SIGTERM stops it ([`super::Stop::requested`]).

use std::io::Write;
use std::time::{Duration, Instant};

use super::{ClientSource, Stop, start};
use crate::config::{Config, Settings};
use crate::sink::client_for_endpoint;
use crate::sink::testing::{FakeCloudWatch, Fault, Op};
use crate::spool::{Spool, SpoolOptions};

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const GRACE: Duration = Duration::from_secs(2);

fn config(dir: &std::path::Path) -> Config {
    Settings {
        cluster_name: Some("c".into()),
        node_name: Some("node-a".into()),
        aws_region: Some("us-east-1".into()),
        log_paths: Some(format!("{}/containers/*.log", dir.display())),
        state_dir: Some(dir.join("state")),
        listen: Some("127.0.0.1:0".into()),
        flush_interval: Some("50ms".into()),
        // No API server: the pod list never syncs, so files wait ten times this, then go by name.
        metadata_wait: Some("10ms".into()),
        shutdown_grace: Some(format!("{}s", GRACE.as_secs())),
        ..Settings::default()
    }
    .resolve()
    .expect("config")
}

fn write_lines(dir: &std::path::Path, lines: usize) {
    std::fs::create_dir_all(dir.join("containers")).expect("containers dir");
    let path = dir.join(format!("containers/web-0_shop_nginx-{ID}.log"));
    let mut file = std::fs::File::create(path).expect("log file");
    for n in 0..lines {
        writeln!(file, "2026-12-04T10:00:00.000000000Z stdout F line {n}").expect("write");
    }
}

/// Events left in the spool at `dir` once the agent is gone.
fn spooled(dir: &std::path::Path) -> u64 {
    let options = SpoolOptions { max_bytes: 1 << 30, flush_interval: Duration::from_secs(3600) };
    Spool::open(&dir.join("state/spool"), options).expect("spool").0.events()
}

/// Start the agent on `dir` against `fake` and run it until `stop`; return once its first
/// PutLogEvents reached the fake: the lines were read (routed by name once the metadata wait
/// ran out) and are on their way.
async fn run_until_sent(
    dir: &std::path::Path,
    fake: &FakeCloudWatch,
    stop: &Stop,
) -> tokio::task::JoinHandle<Result<(), super::AgentError>> {
    let client = client_for_endpoint(&fake.url, "us-east-1", Duration::from_secs(5));
    let agent = start(config(dir), ClientSource::Given(client), stop).await.expect("start").expect("lock");
    let run = {
        let stop = stop.clone();
        tokio::spawn(async move { agent.run_until(&stop).await })
    };
    tokio::time::timeout(Duration::from_secs(10), async {
        while !fake.calls().contains(&Op::PutLogEvents) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("lines read and sent");
    run
}

/// SIGTERM while CloudWatch is briefly unavailable: the lines read are delivered during
/// the grace period (the first two PutLogEvents fail, the retries come after the signal),
/// and the agent exits cleanly with an empty spool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_delivers_what_was_read_within_the_grace_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeCloudWatch::start().await;
    fake.fail_next(Op::PutLogEvents, Fault::Unavailable, 2);
    write_lines(dir.path(), 50);
    let stop = Stop::default();
    let run = run_until_sent(dir.path(), &fake, &stop).await;

    stop.requested.cancel();
    tokio::time::timeout(GRACE * 3, run).await.expect("stopped").expect("task").expect("clean exit");

    assert_eq!(fake.stored("k8s_c_shop_web-0_nginx", "web-0_nginx").len(), 50);
    assert_eq!(spooled(dir.path()), 0);
}

/// SIGTERM while CloudWatch fails: the agent stops at the end of the grace period, and every
/// line read stays in the spool for the next start; none is lost, none delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_an_outage_keeps_the_lines_in_the_spool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeCloudWatch::start().await;
    fake.fail_always(Fault::Unavailable);
    write_lines(dir.path(), 30);
    let stop = Stop::default();
    let run = run_until_sent(dir.path(), &fake, &stop).await;

    stop.requested.cancel();
    let stopped = Instant::now();
    tokio::time::timeout(GRACE * 3, run).await.expect("stopped").expect("task").expect("clean exit");

    assert!(stopped.elapsed() >= GRACE, "it gave up before the grace period: {:?}", stopped.elapsed());
    assert_eq!(spooled(dir.path()), 30, "every line read is still in the spool");
}
