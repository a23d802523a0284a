//! The one scenario loop, for every tier: the clock, the fault timeline, the drain gate,
//! the checks and the report. What differs between tiers is behind [`Tier`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{
    RunError, RunOptions, accepted_per_group, component, delivered_events, now_nanos, timeline, verdict,
};
use crate::audit::{self, Ledger};
use crate::report::{Check, Report, Sample};
use crate::scenario::Scenario;
use crate::tiers::{Drained, Tier};

/// Run `scenario` on a tier that is up: the workload and the faults on one clock until
/// both are over, then the drain gate, then the report (written to `out_dir`).
pub(crate) async fn run<T: Tier>(
    tier: &mut T,
    scenario: &Scenario,
    options: &RunOptions,
    out_dir: &Path,
) -> Result<Report, RunError> {
    let steps = timeline::plan(scenario, options.seed);
    let faults_over = timeline::last_fault_end(scenario);
    let cadence = tier.cadence();
    let mut ledger = Ledger::new(tier.run_id().to_owned());
    let mut next_step = 0;
    let mut checks = Vec::new();
    let mut samples = Vec::new();
    // Gateway acceptances per group at each `expect.delivered_by` time.
    let mut delivered_by: Vec<Option<BTreeMap<String, u64>>> = vec![None; scenario.expect.delivered_by.len()];
    let t0 = Instant::now();
    let t0_unix_ms = now_nanos() / 1_000_000;
    let mut last_sample = Duration::ZERO;
    let mut last_progress = Duration::ZERO;

    loop {
        let t = t0.elapsed();
        while next_step < steps.len() && steps[next_step].at <= t {
            next_step += 1;
            tier.apply(&steps[next_step - 1], t, &mut checks).await?;
        }
        tier.advance(t, &mut ledger).await?;
        for (snapshot, due) in delivered_by.iter_mut().zip(&scenario.expect.delivered_by) {
            if snapshot.is_none() && t >= due.at.0 {
                *snapshot = Some(accepted_per_group(tier.gateway()));
            }
        }
        if t - last_sample >= cadence.sample {
            last_sample = t;
            let delivered = delivered_events(tier.gateway());
            samples.push(Sample { t: t.as_secs_f64(), written: tier.written(t), delivered });
            tier.observe().await;
            if options.progress && t - last_progress >= Duration::from_secs(1) {
                last_progress = t;
                println!(
                    "[{:6.1}s] {} on {}: written {}/{} delivered {delivered} {}",
                    t.as_secs_f64(),
                    scenario.name,
                    tier.name(),
                    tier.written(t),
                    tier.planned(),
                    active_faults(scenario, t)
                );
            }
        }
        if next_step >= steps.len() && t >= faults_over && tier.settled(t)? {
            break;
        }
        tokio::time::sleep(cadence.tick).await;
    }
    let quiet_since = t0.elapsed();

    let (delivered, drained_at) = drain(tier, scenario, &ledger, t0, &mut samples).await?;
    let figures = tier
        .finish(&Drained { scenario, delivered: &delivered, ledger: &ledger, t0_unix_ms, quiet_since })
        .await?;
    checks.extend(figures.checks);
    checks.extend(delivered_by_checks(scenario, &delivered_by, &ledger));
    if !scenario.expect.group_settings.is_empty() {
        let read = audit::groups::read_group_settings(tier.client(), &tier.gateway().group_classes())
            .await
            .map_err(component("backend"))?;
        checks.push(audit::groups::group_settings_check(
            &scenario.expect.group_settings,
            scenario.expected_layout().keys(),
            &read,
        ));
    }
    if let Some(want) = &scenario.expect.written_by {
        let signers = tier.gateway().summary().signers;
        let mut owners = BTreeMap::new();
        for key in signers.keys() {
            let owner = audit::identity::caller_arn(tier.backend_endpoint(), key).await;
            owners.insert(key.clone(), owner.map_err(|e| e.to_string()));
        }
        checks.push(audit::identity::written_by_check(want, &owners, &signers));
    }

    let view = figures.view.as_ref().unwrap_or(scenario);
    let verdict = audit::verdict_for(&ledger, &delivered, scenario.expect.message.format);
    let measured = verdict::Measured {
        lines_written: figures.lines_written,
        checks,
        samples,
        faults: timeline::windows(scenario),
        quiet_since,
        drained_at,
        starts: figures.starts,
        peak_rss_kib: figures.peak_rss_kib,
        peak_spool_bytes: figures.peak_spool_bytes,
        metrics: figures.metrics,
        gateway: serde_json::to_value(tier.gateway().summary()).unwrap_or_default(),
        hosts: figures.hosts,
        fleet: figures.fleet,
    };
    let report = verdict::build_report(
        view,
        tier.name(),
        &options.backend.name(),
        options.seed,
        &verdict,
        &delivered,
        measured,
    );
    report.write(out_dir).map_err(component("report"))?;
    Ok(report)
}

/// The drain gate, the same on every tier: every 500 ms sample the gateway's accepted count;
/// once it covers the ledger, read the backend back and stop if the audit misses nothing. At
/// the scenario's `drain_timeout`, read back what is there. Returns what was read back and
/// when nothing was missing any more (`None`: never).
async fn drain<T: Tier>(
    tier: &mut T,
    scenario: &Scenario,
    ledger: &Ledger,
    t0: Instant,
    samples: &mut Vec<Sample>,
) -> Result<(audit::Delivered, Option<Duration>), RunError> {
    let deadline = Instant::now() + scenario.expect.drain_timeout.0;
    let expected_lines = ledger.len() as u64;
    let format = scenario.expect.message.format;
    loop {
        let t = t0.elapsed();
        let accepted = delivered_events(tier.gateway());
        samples.push(Sample { t: t.as_secs_f64(), written: tier.written(t), delivered: accepted });
        if accepted >= expected_lines {
            let delivered = audit::read_all(tier.client()).await.map_err(component("audit"))?;
            if audit::verdict_for(ledger, &delivered, format).missing_count() == 0 {
                return Ok((delivered, Some(t)));
            }
        }
        if Instant::now() >= deadline {
            let delivered = audit::read_all(tier.client()).await.map_err(component("audit"))?;
            return Ok((delivered, None));
        }
        tier.while_draining(t).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `expect.delivered_by`: at each time, the groups' acceptances cover every line written to
/// the streams `[expect.groups]` lists for them (stream `<pod>_<container>` per the naming
/// contract).
fn delivered_by_checks(
    scenario: &Scenario,
    snapshots: &[Option<BTreeMap<String, u64>>],
    ledger: &Ledger,
) -> Vec<Check> {
    let written: BTreeMap<String, usize> =
        ledger.counts().into_iter().map(|((pod, container), n)| (format!("{pod}_{container}"), n)).collect();
    scenario
        .expect
        .delivered_by
        .iter()
        .zip(snapshots)
        .map(|(due, snapshot)| {
            let name = format!("delivered by {:.1}s", due.at.0.as_secs_f64());
            let Some(snapshot) = snapshot else {
                return Check { name, ok: false, detail: "the run ended before that time".into() };
            };
            let mut short = Vec::new();
            for group in &due.groups {
                let streams = scenario.expect.groups.get(group).map(Vec::as_slice).unwrap_or_default();
                let expected: usize = streams.iter().filter_map(|s| written.get(s)).sum();
                let accepted = snapshot.get(group).copied().unwrap_or(0);
                if (accepted as usize) < expected {
                    short.push(format!("{group}: {accepted} of {expected}"));
                }
            }
            Check {
                name,
                ok: short.is_empty(),
                detail: if short.is_empty() {
                    format!("{} groups fully accepted in time", due.groups.len())
                } else {
                    format!("not yet accepted: {}", short.join(", "))
                },
            }
        })
        .collect()
}

/// The faults active at `t`, for the progress line.
fn active_faults(scenario: &Scenario, t: Duration) -> String {
    let active: Vec<String> = scenario
        .faults
        .iter()
        .filter(|f| f.at.0 <= t && t < f.end().max(f.at.0 + Duration::from_millis(500)))
        .map(|f| format!("{:?}", f.kind).to_lowercase())
        .collect();
    if active.is_empty() { String::new() } else { format!("faults: {}", active.join(", ")) }
}
