//! The writer: what one scenario container writes, as a process (`harness write ...`).
//!
//! On the kind tier a scenario pod is a real pod whose containers run the writer image
//! (this binary): each prints exactly the lines the local tier's SimNode would write for
//! that container — the same [`LinePlan`], hence the same payloads, classes, streams and
//! rate — so the harness computes the ledger from the plan alone and never reads anything
//! back from the pod. Kubelet turns the output into the CRI file the shipper tails.

mod plan;

pub use plan::{LinePlan, PlanError, PlannedLine, StreamChoice, line_class};

use std::io::Write;
use std::time::{Duration, Instant};

use crate::simnode::Stream;

/// `harness write` arguments: one container's [`LinePlan`] on the command line.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct WriterArgs {
    /// Run id in every payload.
    #[arg(long)]
    pub run: String,
    /// Pod name in every payload.
    #[arg(long)]
    pub pod: String,
    /// Container name in every payload.
    #[arg(long)]
    pub container: String,
    /// Lines to write.
    #[arg(long)]
    pub lines: u64,
    /// Lines per second.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Size classes, cycled by sequence number (comma-separated scenario names).
    #[arg(long, value_delimiter = ',', default_value = "small")]
    pub sizes: Vec<String>,
    /// `stdout`, `stderr` or `both` (alternating).
    #[arg(long, default_value = "stdout")]
    pub stream: String,
    /// Sequence number of the first line.
    #[arg(long, default_value_t = 0)]
    pub first_seq: u64,
    /// Write each sequence number as a stack trace (`java` or `python`).
    #[arg(long)]
    pub traces: Option<String>,
    /// Write each line as a JSON object.
    #[arg(long)]
    pub json: bool,
}

impl WriterArgs {
    /// The arguments that make `harness write` print `plan`.
    pub fn of(plan: &LinePlan) -> WriterArgs {
        WriterArgs {
            run: plan.run.clone(),
            pod: plan.pod.clone(),
            container: plan.container.clone(),
            lines: plan.lines,
            rate: plan.rate,
            sizes: plan.classes.iter().map(|c| class_name(*c)).collect(),
            stream: plan.streams.name().into(),
            first_seq: plan.first_seq,
            traces: plan.traces.map(|k| k.name().to_owned()),
            json: plan.json,
        }
    }

    /// The plan these arguments describe.
    pub fn plan(&self) -> Result<LinePlan, PlanError> {
        let failed =
            |reason: String| PlanError { pod: self.pod.clone(), container: self.container.clone(), reason };
        let plan = LinePlan {
            run: self.run.clone(),
            pod: self.pod.clone(),
            container: self.container.clone(),
            classes: self.sizes.iter().map(|s| line_class(s)).collect::<Result<_, _>>().map_err(failed)?,
            streams: StreamChoice::parse(&self.stream).map_err(failed)?,
            first_seq: self.first_seq,
            lines: self.lines,
            rate: self.rate,
            traces: self.traces.as_deref().map(crate::audit::TraceKind::parse).transpose().map_err(failed)?,
            json: self.json,
        };
        plan.validate()?;
        Ok(plan)
    }

    /// The command-line form, after the `write` subcommand (a pod's `args`).
    pub fn to_args(&self) -> Vec<String> {
        // The new options only when set, so plain writer pods keep their arguments.
        let traces = self.traces.iter().map(|t| format!("--traces={t}"));
        let json = self.json.then(|| "--json".to_owned());
        let mut args = vec![
            format!("--run={}", self.run),
            format!("--pod={}", self.pod),
            format!("--container={}", self.container),
            format!("--lines={}", self.lines),
            format!("--rate={}", self.rate),
            format!("--sizes={}", self.sizes.join(",")),
            format!("--stream={}", self.stream),
            format!("--first-seq={}", self.first_seq),
        ];
        args.extend(traces.chain(json));
        args
    }
}

/// The scenario name of a line class (the inverse of [`line_class`]).
fn class_name(class: crate::audit::LineClass) -> String {
    const NAMES: [&str; 9] =
        ["small", "100B", "16KiB-1", "16KiB", "16KiB+1", "256KiB", "1MiB+", "unicode", "invalid-utf8"];
    NAMES
        .iter()
        .find(|name| line_class(name) == Ok(class))
        .map(|name| (*name).to_owned())
        .unwrap_or_else(|| unreachable!("every class a plan holds comes from a scenario name"))
}

/// Why writing stopped.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The plan cannot be written.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A payload could not be built.
    #[error("payload of line {seq}: {source}")]
    Payload {
        /// The line.
        seq: u64,
        /// Why.
        source: crate::audit::InvalidField,
    },
    /// stdout or stderr is gone.
    #[error("writing line {seq} to {stream}: {source}")]
    Output {
        /// The line.
        seq: u64,
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// Write every line of `plan` at its rate: line n (from 0) at `n / rate` after the call,
/// each followed by a newline and flushed at once (so the runtime stamps it when it is due).
/// Returns the number of lines written.
pub fn write_plan(
    plan: &LinePlan,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<u64, WriteError> {
    plan.validate()?;
    let start = Instant::now();
    for (n, seq) in plan.seqs().enumerate() {
        let wait = plan.due_at(n as u64).saturating_sub(start.elapsed());
        if wait > Duration::ZERO {
            std::thread::sleep(wait);
        }
        let line = plan.line(seq).map_err(|source| WriteError::Payload { seq, source })?;
        let (out, stream): (&mut dyn Write, _) = match line.stream {
            Stream::Stdout => (&mut *stdout, "stdout"),
            Stream::Stderr => (&mut *stderr, "stderr"),
        };
        // A trace's physical lines are separated by `\n` already: one write prints them all.
        out.write_all(&line.bytes)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush())
            .map_err(|source| WriteError::Output { seq, stream, source })?;
    }
    Ok(plan.lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Ledger;

    fn plan(sizes: &[&str], stream: &str) -> LinePlan {
        WriterArgs {
            run: "r7".into(),
            pod: "web-0".into(),
            container: "app".into(),
            lines: 6,
            rate: 1000.0,
            sizes: sizes.iter().map(|s| s.to_string()).collect(),
            stream: stream.into(),
            first_seq: 4,
            traces: None,
            json: false,
        }
        .plan()
        .expect("valid")
    }

    #[test]
    fn arguments_round_trip_through_the_command_line() {
        use clap::Parser;
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: WriterArgs,
        }
        let original = plan(&["small", "16KiB+1", "invalid-utf8"], "both");
        let args = WriterArgs::of(&original);
        let parsed =
            Cli::try_parse_from(std::iter::once("write".to_owned()).chain(args.to_args())).expect("parses");
        assert_eq!(parsed.args, args);
        assert_eq!(parsed.args.plan().expect("valid"), original);
        // Traces and JSON lines travel too, so a writer pod prints what the SimNode writes.
        for (traces, json) in [(Some("python"), false), (None, true)] {
            let mut with = plan(&["small"], "stdout");
            with.traces = traces.map(|t| crate::audit::TraceKind::parse(t).expect("kind"));
            with.json = json;
            let args = WriterArgs::of(&with);
            let parsed = Cli::try_parse_from(std::iter::once("write".to_owned()).chain(args.to_args()))
                .expect("parses");
            assert_eq!(parsed.args.plan().expect("valid"), with);
        }
        assert!(!args.to_args().iter().any(|a| a.starts_with("--traces") || a == "--json"));
    }

    #[test]
    fn lines_go_to_their_stream_with_a_newline() {
        let plan = plan(&["small", "100B"], "both");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(write_plan(&plan, &mut out, &mut err).expect("written"), 6);
        let expected = |seqs: &[u64]| -> Vec<u8> {
            seqs.iter()
                .flat_map(|seq| {
                    let mut bytes = plan.line(*seq).expect("line").bytes;
                    bytes.push(b'\n');
                    bytes
                })
                .collect()
        };
        assert_eq!(out, expected(&[4, 6, 8]));
        assert_eq!(err, expected(&[5, 7, 9]));
        let mut ledger = Ledger::new("r7");
        plan.record_all(&mut ledger);
        assert_eq!(ledger.len(), 6);
    }
}
