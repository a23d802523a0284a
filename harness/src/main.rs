//! `harness`: run outage scenarios against the real shipper and audit every line.
//!
//!     harness run scenarios/<name>.toml [--backend moto|localstack|URL] [--seed N] [--cluster local|container|kind]
//!     harness list [DIR]
//!     harness up [--backend ...]
//!     harness bench [--workload NAME]... [--quick] [--lines N] [--debug]
//!     harness kind-preflight
//!     harness write --run R --pod P --container C --lines N [--rate R] [--sizes a,b] [--stream s]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use harness::bench::{self, BenchOptions};
use harness::preflight;
use harness::runner::{self, BackendChoice, RunOptions};
use harness::scenario::Scenario;
use harness::tiers::ClusterChoice;

/// End-to-end test harness and outage simulator for the shipper.
#[derive(Debug, Parser)]
#[command(name = "harness", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one scenario on the local tier and print its verdict (exit 0 only on PASS).
    Run {
        /// The scenario file.
        scenario: PathBuf,
        /// `moto` (default), `localstack`, or the URL of a CloudWatch Logs endpoint.
        #[arg(long, default_value = "moto")]
        backend: String,
        /// Seed for random fault points.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Cluster tier: `local` (default), `container` (needs the e2e feature, Docker and the
        /// images of harness/images/build.sh) or `kind` (also needs kind, kubectl and kind's
        /// node image).
        #[arg(long, default_value = "local")]
        cluster: String,
    },
    /// List the scenarios with their `why`.
    List {
        /// Directory of scenario files.
        #[arg(default_value = "scenarios")]
        dir: PathBuf,
    },
    /// Start the stand-in API, a backend and the gateway, print the env for a hand-run
    /// shipper, and wait for Ctrl-C.
    Up {
        /// `moto` (default), `localstack`, or a URL.
        #[arg(long, default_value = "moto")]
        backend: String,
    },
    /// Check what the kind tier needs (docker, kind, kubectl and their skew, free disk,
    /// inotify limits, the binaries' glibc against the base image, the images), without
    /// creating a cluster; print one list of what to fix; exit 1 if anything blocks.
    KindPreflight,
    /// Print one scenario container's lines at its rate, as a kind-tier pod does: the same
    /// payloads, classes and streams the local tier's SimNode writes for it.
    Write(harness::writer::WriterArgs),
    /// Measure the release-built shipper against the sink-mode gateway: throughput, CPU,
    /// memory, write amplification, latency, catch-up after an outage, idle CPU. Prints a
    /// table; writes JSON to target/harness/bench/ and compares with the previous run.
    Bench {
        /// A workload to run (repeatable; default: all). `--workload list` lists them.
        #[arg(long = "workload")]
        workloads: Vec<String>,
        /// Scaled-down sizes, for a smoke run.
        #[arg(long)]
        quick: bool,
        /// Total lines per workload (overrides the workload's size).
        #[arg(long)]
        lines: Option<u64>,
        /// Measure the debug build instead of the release build (`$SHIPPER_BIN` wins over both).
        #[arg(long)]
        debug: bool,
    },
}

#[allow(clippy::print_stderr)]
fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("harness: {e}");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::List { dir } => {
            let mut entries: Vec<_> = match std::fs::read_dir(&dir) {
                Ok(rd) => rd
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                    .collect(),
                Err(e) => return fail(&format!("{}: {e}", dir.display())),
            };
            entries.sort();
            for path in entries {
                match Scenario::load(&path) {
                    Ok(s) => {
                        println!("{:28} {}", s.name, s.why.split_whitespace().collect::<Vec<_>>().join(" "))
                    }
                    Err(e) => println!("{:28} INVALID: {e}", path.display()),
                }
            }
            ExitCode::SUCCESS
        }
        Command::Run { scenario, backend, seed, cluster } => {
            let cluster = match ClusterChoice::parse(&cluster) {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            #[cfg(feature = "e2e")]
            if matches!(cluster, ClusterChoice::Container | ClusterChoice::Kind) {
                // testcontainers may need this process re-run through the Docker API shim.
                let args: Vec<String> = std::env::args().skip(1).collect();
                match harness::tiers::docker::api_shim::rerun_through_shim_if_needed(&args).await {
                    Ok(Some(status)) => return ExitCode::from(status.code().unwrap_or(2).clamp(0, 255) as u8),
                    Ok(None) => {}
                    Err(e) => return fail(&e),
                }
            }
            let scenario = match Scenario::load(&scenario) {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            let options = RunOptions {
                backend: BackendChoice::parse(&backend),
                seed,
                progress: true,
                out_dir: None,
                cluster,
            };
            match runner::run_scenario(&scenario, &options).await {
                Ok(report) => {
                    println!("{}", report.table());
                    if report.passed { ExitCode::SUCCESS } else { ExitCode::from(1) }
                }
                Err(e) => fail(&e),
            }
        }
        Command::Bench { workloads, quick, lines, debug } => {
            if workloads.iter().any(|w| w == "list") {
                for w in bench::workloads::all(quick) {
                    println!("{:12} {}", w.name, w.about);
                }
                return ExitCode::SUCCESS;
            }
            let probe = BenchOptions {
                workloads: workloads.clone(),
                quick,
                lines,
                shipper: PathBuf::new(),
                out_dir: PathBuf::new(),
                progress: false,
            };
            // An unknown workload name fails before a (long) release build.
            if let Err(e) = bench::selected_workloads(&probe) {
                return fail(&e);
            }
            let binary = if debug {
                harness::shipper_proc::shipper_binary()
            } else {
                harness::shipper_proc::release_shipper_binary()
            };
            let shipper = match binary {
                Ok(bin) => bin,
                Err(e) => return fail(&e),
            };
            let options = BenchOptions {
                workloads,
                quick,
                lines,
                shipper,
                out_dir: runner::report_dir("bench"),
                progress: true,
            };
            match bench::run(&options).await {
                Ok((report, path)) => {
                    println!("\n{}", report.table());
                    println!("report: {}", path.display());
                    let problems = report.problems();
                    for problem in &problems {
                        println!("INCONSISTENT: {problem}");
                    }
                    if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
                }
                Err(e) => fail(&e),
            }
        }
        Command::Write(args) => {
            let plan = match args.plan() {
                Ok(plan) => plan,
                Err(e) => return fail(&e),
            };
            match harness::writer::write_plan(
                &plan,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            ) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::KindPreflight => {
            let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| repo.join("target"));
            let cache = std::env::var_os("SHIPPER_HARNESS_CACHE")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/shipper-harness"))
                });
            let expect = match preflight::expectations(&repo, &target, cache.as_deref()) {
                Ok(e) => e,
                Err(e) => return fail(&e),
            };
            let (text, ready) = preflight::render(&preflight::run(&preflight::SystemProbe, &expect));
            print!("{text}");
            if ready { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Command::Up { backend } => match runner::up(BackendChoice::parse(&backend)).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
    }
}
