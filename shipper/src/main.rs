//! `shipper` binary: see `shipper --help`.

use std::process::ExitCode;

use clap::Parser;
use shipper::cli::{Cli, Command, load_config, route};
use shipper::telemetry::init_logging;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config, settings } => match load_config(config.as_deref(), settings) {
            Ok(config) => {
                println!("{}", serde_json::to_string_pretty(&config).unwrap_or_default());
                warn(&config.warnings());
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Route { pod, container, config, settings } => {
            match route(&pod, &container, config.as_deref(), settings) {
                Ok(dest) => {
                    println!("{}", serde_json::to_string(&dest).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::Run { config, settings } => {
            let config = match load_config(config.as_deref(), settings) {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            init_logging(config.log_format);
            if let Err(e) = shipper::failpoint::arm_from_env() {
                return fail(&e);
            }
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return fail(&e),
            };
            match runtime.block_on(shipper::agent::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "shipper failed to start");
                    fail(&e)
                }
            }
        }
    }
}

/// `shipper check`'s warnings go to stderr, so stdout stays the effective configuration.
#[allow(clippy::print_stderr)] // the CLI's error channel
fn warn(warnings: &[String]) {
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
}

#[allow(clippy::print_stderr)] // the CLI's error channel
fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("shipper: {e}");
    ExitCode::from(2)
}
