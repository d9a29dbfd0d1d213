//! Dump series: the dumps of one process taken over time, and what grew between them.
//!
//! A leak rule takes a dump at 300 MB, another at 400 MB, another at 500 MB; what grew
//! from one dump to the next is the strongest evidence of a leak. Dumps belong to the
//! same series when they share the process id and creation time (misc-info stream) or,
//! failing that, the allocation stream's tracking start; UMDH snapshot logs when
//! they share the PID and the machine. A series is ordered by snapshot time (a
//! UMDH log's Logtime).

use crate::model::{
    sort_ranked, DumpReport, Finding, FindingKind, LeakAnalysis, Series, SeriesDump, Severity,
    StackId, StackSample, Totals, TrackingSource, Trend, TrendVerdict,
};
use crate::text::thousands;
use std::collections::BTreeMap;

/// Modules followed in a series (the largest in its last dump).
pub const TOP_MODULES: usize = 8;
/// Stacks followed in a series (the largest sample stacks of its last dump).
pub const TOP_STACKS: usize = 10;
/// A change within this many bytes, or 1% of the earlier value, counts as flat.
pub const FLAT_BYTES: u64 = 4096;
/// Dumps a series needs before "grew in every interval" is a finding.
pub const MIN_DUMPS_FOR_FINDING: usize = 3;

fn is_flat(change: i128, before: u64) -> bool {
    let tolerance = (before / 100).max(FLAT_BYTES);
    change.unsigned_abs() <= u128::from(tolerance)
}

/// The verdict on a sequence of byte counts.
pub fn trend_verdict(bytes: &[u64]) -> TrendVerdict {
    if bytes.len() < 2 {
        return TrendVerdict::TooFewDumps;
    }
    let steps: Vec<(i128, u64)> = bytes
        .windows(2)
        .map(|w| (i128::from(w[1]) - i128::from(w[0]), w[0]))
        .collect();
    let grew = |&(c, before): &(i128, u64)| c > 0 && !is_flat(c, before);
    let flat = |&(c, before): &(i128, u64)| is_flat(c, before);
    if steps.iter().all(grew) {
        TrendVerdict::GrewInEveryInterval
    } else if steps.iter().all(flat) {
        TrendVerdict::Flat
    } else if let Some(first_flat) = steps.iter().position(flat) {
        if first_flat > 0
            && steps[..first_flat].iter().all(grew)
            && steps[first_flat..].iter().all(flat)
        {
            TrendVerdict::GrewThenFlat
        } else if bytes.last() < bytes.first() {
            TrendVerdict::Shrank
        } else {
            TrendVerdict::Fluctuated
        }
    } else if bytes.last() < bytes.first() {
        TrendVerdict::Shrank
    } else {
        TrendVerdict::Fluctuated
    }
}

fn trend(
    name: String,
    module: Option<String>,
    id: Option<StackId>,
    points: Vec<Totals>,
    hours: &[f64],
) -> Trend {
    let bytes: Vec<u64> = points.iter().map(|t| t.bytes).collect();
    let growth: Vec<i128> = bytes
        .windows(2)
        .map(|w| i128::from(w[1]) - i128::from(w[0]))
        .collect();
    let growth_per_hour = growth
        .iter()
        .zip(hours.windows(2))
        .map(|(g, h)| {
            let dt = h[1] - h[0];
            (dt > 0.0).then(|| *g as f64 / dt)
        })
        .collect();
    let span = hours.last().copied().unwrap_or(0.0) - hours.first().copied().unwrap_or(0.0);
    let rate_per_hour = (bytes.len() >= 2 && span > 0.0).then(|| {
        (i128::from(*bytes.last().unwrap_or(&0)) - i128::from(*bytes.first().unwrap_or(&0))) as f64
            / span
    });
    Trend {
        name,
        module,
        id,
        allocations: points.iter().map(|t| t.allocations).collect(),
        verdict: trend_verdict(&bytes),
        bytes,
        growth,
        growth_per_hour,
        rate_per_hour,
    }
}

/// A dump that may belong to a series: its report folder and report.
pub struct Member<'a> {
    pub report_dir: &'a str,
    pub report: &'a DumpReport,
}

fn series_key(r: &DumpReport) -> Option<(String, String)> {
    let p = &r.process;
    // UMDH snapshots have no process start time: one PID on one machine.
    if let Some(t) = r
        .tracking
        .as_ref()
        .filter(|t| t.source == TrackingSource::UmdhSnapshot)
    {
        let machine = t
            .metadata
            .iter()
            .find(|m| m.key == "machine")
            .and_then(|m| m.value.clone())
            .unwrap_or_else(|| "an unknown machine".into());
        return p.pid.map(|pid| {
            (
                format!("umdh pid {pid} on {}", machine.to_lowercase()),
                format!("UMDH snapshots of process {pid} on {machine}"),
            )
        });
    }
    match (p.pid, &p.process_create_time) {
        (Some(pid), Some(created)) => Some((
            format!("pid {pid} started {created}"),
            format!("process {pid} created {created}"),
        )),
        _ => r.tracking.as_ref().map(|t| {
            (
                format!("tracking {}", t.start_filetime),
                format!(
                    "tracking started {}",
                    t.start
                        .clone()
                        .unwrap_or_else(|| t.start_filetime.to_string())
                ),
            )
        }),
    }
}

/// Groups the dumps that carry tracker data into series (a dump alone is a series of
/// one) and follows their top modules and stacks.
pub fn build(members: &[Member<'_>]) -> Vec<Series> {
    let mut groups: BTreeMap<usize, (String, Vec<&Member<'_>>)> = BTreeMap::new();
    let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        if m.report.tracking.is_none() || m.report.leak().is_none() {
            continue;
        }
        let (key, identity) =
            series_key(m.report).unwrap_or_else(|| (format!("dump {i}"), "one dump".into()));
        let slot = *by_key.entry(key).or_insert(i);
        groups
            .entry(slot)
            .or_insert_with(|| (identity, Vec::new()))
            .1
            .push(m);
    }
    groups
        .into_values()
        .enumerate()
        .map(|(n, (identity, mut dumps))| {
            dumps.sort_by_key(|m| {
                m.report
                    .tracking
                    .as_ref()
                    .map_or(0, |t| t.snapshot_filetime)
            });
            follow(n + 1, identity, &dumps)
        })
        .collect()
}

fn follow(id: usize, identity: String, dumps: &[&Member<'_>]) -> Series {
    let leaks: Vec<&LeakAnalysis> = dumps.iter().filter_map(|m| m.report.leak()).collect();
    let snapshots: Vec<u64> = dumps
        .iter()
        .map(|m| {
            m.report
                .tracking
                .as_ref()
                .map_or(0, |t| t.snapshot_filetime)
        })
        .collect();
    let first = snapshots.first().copied().unwrap_or(0);
    let hours: Vec<f64> = snapshots
        .iter()
        .map(|&s| s.saturating_sub(first) as f64 / 1e7 / 3600.0)
        .collect();
    let last = leaks.last();

    let module_names: Vec<String> = last
        .map(|l| {
            l.modules
                .iter()
                .take(TOP_MODULES)
                .map(|m| m.name.clone())
                .collect()
        })
        .unwrap_or_default();
    let modules: Vec<Trend> = module_names
        .into_iter()
        .map(|name| {
            let points = leaks
                .iter()
                .map(|l| {
                    l.modules
                        .iter()
                        .filter(|m| m.name == name)
                        .fold(Totals::default(), |t, m| Totals {
                            allocations: t.allocations + m.allocations,
                            bytes: t.bytes + m.bytes,
                        })
                })
                .collect();
            trend(name.clone(), Some(name), None, points, &hours)
        })
        .collect();

    // The heaviest sample stacks of the last dump, followed back by their identity.
    let mut samples: Vec<(&str, &StackSample)> = last
        .map(|l| {
            l.modules
                .iter()
                .flat_map(|m| m.stacks.iter().map(move |s| (m.name.as_str(), s)))
                .collect()
        })
        .unwrap_or_default();
    sort_ranked(&mut samples, |(_, s)| (s.totals(), s.id));
    let stacks: Vec<Trend> = samples
        .into_iter()
        .take(TOP_STACKS)
        .map(|(module, s)| {
            let points = leaks
                .iter()
                .map(|l| l.stack_totals.get(&s.id).copied().unwrap_or_default())
                .collect();
            let at = s
                .frames
                .iter()
                .find(|f| f.responsible)
                .map(|f| match (&f.function, f.offset) {
                    (Some(func), _) => format!("{}!{func}", f.module.as_deref().unwrap_or("?")),
                    (None, Some(off)) => format!("{}+{off}", f.module.as_deref().unwrap_or("?")),
                    _ => f.address.to_string(),
                })
                .unwrap_or_else(|| module.to_owned());
            let owner = s
                .frames
                .iter()
                .find(|f| f.responsible)
                .and_then(|f| f.module.clone())
                .unwrap_or_else(|| module.to_owned());
            trend(
                format!("{at} (stack {})", s.id),
                Some(owner),
                Some(s.id),
                points,
                &hours,
            )
        })
        .collect();

    let series_dumps: Vec<SeriesDump> = dumps
        .iter()
        .zip(&hours)
        .map(|(m, &h)| SeriesDump {
            file_name: m.report.dump.file_name.clone(),
            report_dir: m.report_dir.to_owned(),
            snapshot: m.report.tracking.as_ref().and_then(|t| t.snapshot.clone()),
            hours: h,
            allocations: m.report.tracking.as_ref().map_or(0, |t| t.allocations),
            bytes: m.report.tracking.as_ref().map_or(0, |t| t.bytes),
        })
        .collect();
    let findings = findings(id, series_dumps.len(), &modules);
    Series {
        id,
        identity,
        dumps: series_dumps,
        modules,
        stacks,
        findings,
    }
}

/// One finding per module that grew in every interval of a series of at least
/// [`MIN_DUMPS_FOR_FINDING`] dumps (stacks are details of the series' stack table).
fn findings(id: usize, dumps: usize, modules: &[Trend]) -> Vec<Finding> {
    if dumps < MIN_DUMPS_FOR_FINDING {
        return Vec::new();
    }
    let pseudo = |n: &str| n.starts_with('(');
    modules
        .iter()
        .filter(|t| !pseudo(&t.name) && t.verdict == TrendVerdict::GrewInEveryInterval)
        .map(|t| {
            let first = t.bytes.first().copied().unwrap_or(0);
            let last = t.bytes.last().copied().unwrap_or(0);
            let rate = t
                .rate_per_hour
                .map(|r| format!(", {} bytes per hour", thousands(r.max(0.0).round() as u64)))
                .unwrap_or_default();
            Finding::new(
                Severity::Error,
                FindingKind::ModuleGrowth,
                "series",
                format!("{} grew in every interval of series {id}", t.name),
                format!(
                    "The outstanding bytes of module {} grew from {} to {} over the {dumps} dumps of series {id}{rate}: memory that keeps growing from dump to dump is a leak.",
                    t.name,
                    thousands(first),
                    thousands(last)
                ),
                format!("Send the vendor report of {} to its vendor.", t.name),
            )
            .about_module(&t.name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(trend_verdict(&[100]), TrendVerdict::TooFewDumps);
        assert_eq!(
            trend_verdict(&[0, 100_000, 200_000]),
            TrendVerdict::GrewInEveryInterval
        );
        assert_eq!(
            trend_verdict(&[0, 100_000, 100_100]),
            TrendVerdict::GrewThenFlat
        );
        assert_eq!(
            trend_verdict(&[500_000, 400_000, 300_000]),
            TrendVerdict::Shrank
        );
        assert_eq!(
            trend_verdict(&[500_000, 500_000, 501_000]),
            TrendVerdict::Flat
        );
        assert_eq!(
            trend_verdict(&[0, 100_000, 50_000, 150_000]),
            TrendVerdict::Fluctuated
        );
        assert_eq!(
            trend_verdict(&[100_000, 100_000, 200_000]),
            TrendVerdict::Fluctuated
        );
    }
}
