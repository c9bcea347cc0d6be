//! CloudWatch in the primary region, read-only: the utilisation history plan B (SPEC D4) uses
//! to restore an instance on a smaller footprint when its measured peak fits.
//!
//! [`collect_utilisation`] asks `GetMetricData` for two series per instance over the window
//! `[end − window_days, end)`: `AWS/EC2` `CPUUtilization` and the CloudWatch agent's memory
//! metric (configured namespace and name), both by dimension `InstanceId` with statistic
//! `Maximum` per `period_secs`. It batches **250 instances (500 queries, AWS's limit) per
//! call** and follows `NextToken` (AWS pages at 100,800 data points per call), so collecting
//! `N` instances costs `Σ pages ≈ ceil(N / 250) × ceil(points per batch / 100,800)` calls
//! against the 50 TPS `GetMetricData` bucket. From each instance's per-period maxima it keeps
//! the peak (the largest) and the p95 ([`percentile`], nearest rank). Instances without any CPU
//! data point are absent from the result; memory is `None` where the agent published nothing.
//!
//! `end` is truncated to whole seconds and the window starts exactly `window_days` days
//! before it, so a caller that seeded samples ending at `end` (the lab) gets back exactly one
//! data point per sample period.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use aws_smithy_types::DateTime;
use pilotlight_core::aws_limits::Service;
use pilotlight_core::inventory::{Utilisation, percentile};

use crate::call::AwsCtx;
use crate::error::AwsError;
use crate::ops::{handle_ctor, sdk_ops};

/// Namespace of EC2's own metrics.
pub const CPU_NAMESPACE: &str = "AWS/EC2";
/// EC2's CPU metric.
pub const CPU_METRIC: &str = "CPUUtilization";
/// The dimension naming an instance.
pub const INSTANCE_DIMENSION: &str = "InstanceId";
/// Most queries per `GetMetricData` call (AWS's limit).
pub const MAX_QUERIES_PER_CALL: usize = 500;
/// Instances per call: two queries (CPU and memory) each.
pub const INSTANCES_PER_CALL: usize = MAX_QUERIES_PER_CALL / 2;
/// The statistic asked for per period.
const STAT: &str = "Maximum";
const DAY: Duration = Duration::from_secs(86_400);

/// Read-only CloudWatch in the primary region.
#[derive(Debug, Clone)]
pub struct PrimaryCloudWatch {
    client: aws_sdk_cloudwatch::Client,
    region: String,
    ctx: AwsCtx,
}

handle_ctor!(PrimaryCloudWatch, aws_sdk_cloudwatch, CloudWatch);

impl PrimaryCloudWatch {
    sdk_ops! {
        aws_sdk_cloudwatch, Service::CloudWatch;
        /// Up to 500 metric queries over a time range, paged by `NextToken`.
        get_metric_data => get_metric_data::GetMetricDataFluentBuilder -> GetMetricDataOutput, "GetMetricData";
    }
}

fn query(
    id: String,
    namespace: &str,
    metric: &str,
    instance: &str,
    period: i32,
) -> MetricDataQuery {
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace(namespace)
                        .metric_name(metric)
                        .dimensions(
                            Dimension::builder()
                                .name(INSTANCE_DIMENSION)
                                .value(instance)
                                .build(),
                        )
                        .build(),
                )
                .period(period)
                .stat(STAT)
                .build(),
        )
        .return_data(true)
        .build()
}

/// The figures of one instance from its per-period CPU and memory maxima; `None` without CPU
/// data.
pub fn summarise(cpu: &[f64], memory: &[f64], window_days: u32) -> Option<Utilisation> {
    let cpu_peak = cpu
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .reduce(f64::max)?;
    let cpu_p95 = percentile(cpu, 95.0)?;
    let mem_peak = memory
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .reduce(f64::max);
    Some(Utilisation {
        cpu_peak_pct: cpu_peak,
        cpu_p95_pct: cpu_p95,
        mem_peak_pct: mem_peak,
        mem_p95_pct: mem_peak.and_then(|_| percentile(memory, 95.0)),
        samples: u32::try_from(cpu.len()).unwrap_or(u32::MAX),
        window_days,
    })
}

/// CPU and memory utilisation of `instance_ids` over the `window_days` days before `end` (see
/// the module doc for the queries and their cost). Ids are de-duplicated; an empty list costs
/// no call.
///
/// # Errors
/// The first failed call's classified [`AwsError`].
pub async fn collect_utilisation(
    cw: &PrimaryCloudWatch,
    instance_ids: &[String],
    window_days: u32,
    period_secs: u32,
    memory_namespace: &str,
    memory_metric: &str,
    end: SystemTime,
) -> Result<BTreeMap<String, Utilisation>, AwsError> {
    let ids: Vec<&String> = instance_ids
        .iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut out = BTreeMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let end_secs = end
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let end = UNIX_EPOCH + Duration::from_secs(end_secs);
    let start = end.checked_sub(DAY * window_days).unwrap_or(UNIX_EPOCH);
    let period = i32::try_from(period_secs.max(1)).unwrap_or(i32::MAX);
    for chunk in ids.chunks(INSTANCES_PER_CALL) {
        let mut queries = Vec::with_capacity(chunk.len() * 2);
        for (i, id) in chunk.iter().enumerate() {
            queries.push(query(
                format!("c{i}"),
                CPU_NAMESPACE,
                CPU_METRIC,
                id,
                period,
            ));
            queries.push(query(
                format!("m{i}"),
                memory_namespace,
                memory_metric,
                id,
                period,
            ));
        }
        let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); chunk.len()];
        let mut memory: Vec<Vec<f64>> = vec![Vec::new(); chunk.len()];
        let mut token: Option<String> = None;
        loop {
            let page = cw
                .get_metric_data(|b| {
                    b.set_metric_data_queries(Some(queries.clone()))
                        .start_time(DateTime::from(start))
                        .end_time(DateTime::from(end))
                        .set_next_token(token.clone())
                })
                .await?;
            for result in page.metric_data_results() {
                let Some(id) = result.id() else { continue };
                let (series, index) = match id.split_at_checked(1) {
                    Some(("c", n)) => (&mut cpu, n.parse::<usize>().ok()),
                    Some(("m", n)) => (&mut memory, n.parse::<usize>().ok()),
                    _ => continue,
                };
                if let Some(values) = index.and_then(|i| series.get_mut(i)) {
                    values.extend_from_slice(result.values());
                }
            }
            token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        for (i, id) in chunk.iter().enumerate() {
            if let Some(figures) = summarise(&cpu[i], &memory[i], window_days) {
                out.insert((*id).clone(), figures);
            }
        }
    }
    Ok(out)
}

/// How far back [`replication_latency`] looks for S3's `ReplicationLatency` data points.
pub const REPLICATION_METRIC_WINDOW: Duration = Duration::from_secs(15 * 60);

/// S3's `ReplicationLatency` (namespace `AWS/S3`, dimensions `SourceBucket`,
/// `DestinationBucket`, `RuleId`, statistic `Maximum`, 60 s periods) for one replication rule:
/// the value of the newest data point in the last [`REPLICATION_METRIC_WINDOW`], `None` when
/// S3 publishes none (replication metrics are opt-in per rule). One `GetMetricData` call.
///
/// # Errors
/// The call's classified [`AwsError`].
pub async fn replication_latency(
    cw: &PrimaryCloudWatch,
    source_bucket: &str,
    destination_bucket: &str,
    rule_id: &str,
    end: SystemTime,
) -> Result<Option<f64>, AwsError> {
    let start = end
        .checked_sub(REPLICATION_METRIC_WINDOW)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let dimension = |name: &str, value: &str| Dimension::builder().name(name).value(value).build();
    let query = MetricDataQuery::builder()
        .id("latency")
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace("AWS/S3")
                        .metric_name("ReplicationLatency")
                        .dimensions(dimension("SourceBucket", source_bucket))
                        .dimensions(dimension("DestinationBucket", destination_bucket))
                        .dimensions(dimension("RuleId", rule_id))
                        .build(),
                )
                .period(60)
                .stat(STAT)
                .build(),
        )
        .return_data(true)
        .build();
    let out = cw
        .get_metric_data(|b| {
            b.metric_data_queries(query.clone())
                .start_time(DateTime::from(start))
                .end_time(DateTime::from(end))
        })
        .await?;
    let newest = out
        .metric_data_results()
        .iter()
        .flat_map(|r| r.timestamps().iter().zip(r.values()))
        .max_by(|a, b| (a.0.secs(), a.0.subsec_nanos()).cmp(&(b.0.secs(), b.0.subsec_nanos())))
        .map(|(_, v)| *v);
    Ok(newest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_and_p95_come_from_the_per_period_maxima() {
        let cpu: Vec<f64> = (1..=40).map(f64::from).collect();
        let u = summarise(&cpu, &[10.0, 30.0, 20.0], 14).expect("cpu data");
        assert_eq!(u.cpu_peak_pct, 40.0);
        // Nearest rank: ceil(0.95 * 40) = 38th smallest.
        assert_eq!(u.cpu_p95_pct, 38.0);
        assert_eq!(u.mem_peak_pct, Some(30.0));
        assert_eq!(u.mem_p95_pct, Some(30.0));
        assert_eq!(u.samples, 40);
        assert_eq!(u.window_days, 14);
    }

    #[test]
    fn no_cpu_means_no_figures_and_no_memory_means_none() {
        assert_eq!(summarise(&[], &[50.0], 7), None);
        let u = summarise(&[5.0], &[], 7).expect("cpu data");
        assert_eq!(u.mem_peak_pct, None);
        assert_eq!(u.mem_p95_pct, None);
    }
}
