//! CloudWatch through the lab: aws-sdk-cloudwatch speaks RPC v2 CBOR, the realism proxy
//! translates it to moto's JSON 1.0 and back. Seeded utilisation history
//! (`pilotlight_lab::seed::metrics`) reads back with the statistics its docs promise; moto's
//! errors and injected faults reach the SDK with their codes; the proxy counts the calls.

use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result, anyhow, ensure};
use aws_sdk_cloudwatch::error::ProvideErrorMetadata;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    Dimension, Metric, MetricDataQuery, MetricDataResult, MetricDatum, MetricStat, ScanBy,
    StandardUnit, Statistic, StatisticSet,
};
use pilotlight_lab::seed::metrics::{
    CPU_METRIC, CPU_NAMESPACE, INSTANCE_DIMENSION, MEMORY_METRIC, MEMORY_NAMESPACE, Profile,
    Sample, SeriesStats, UtilisationSeries, put_utilisation,
};
use pilotlight_lab::{FaultAction, FaultRule, Lab, LabSession};

const REGION: &str = "us-east-1";
const INSTANCE_A: &str = "i-0aaaaaaaaaaaaaaa1";
const INSTANCE_B: &str = "i-0bbbbbbbbbbbbbbb2";

async fn cloudwatch(lab: &LabSession) -> aws_sdk_cloudwatch::Client {
    lab.clients(REGION).await.cloudwatch
}

fn two_instances(days: u32, period_secs: u32) -> Vec<UtilisationSeries> {
    vec![
        UtilisationSeries {
            instance_id: INSTANCE_A.to_owned(),
            days,
            period_secs,
            cpu: Profile {
                base_pct: 8.0,
                peak_pct: 87.5,
                seed: 11,
            },
            memory: Some(Profile {
                base_pct: 35.0,
                peak_pct: 71.25,
                seed: 12,
            }),
        },
        UtilisationSeries {
            instance_id: INSTANCE_B.to_owned(),
            days,
            period_secs,
            cpu: Profile {
                base_pct: 3.0,
                peak_pct: 42.75,
                seed: 21,
            },
            memory: None,
        },
    ]
}

fn query(
    id: &str,
    namespace: &str,
    metric: &str,
    instance: &str,
    period: i32,
    stat: &str,
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
                .stat(stat)
                .build(),
        )
        .build()
}

/// Every result of a GetMetricData over `[start, end)`, all pages.
async fn metric_data(
    cw: &aws_sdk_cloudwatch::Client,
    queries: Vec<MetricDataQuery>,
    start: SystemTime,
    end: SystemTime,
) -> Result<Vec<MetricDataResult>> {
    let pages = cw
        .get_metric_data()
        .set_metric_data_queries(Some(queries))
        .start_time(DateTime::from(start))
        .end_time(DateTime::from(end))
        .scan_by(ScanBy::TimestampAscending)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await?;
    Ok(pages
        .into_iter()
        .flat_map(|p| p.metric_data_results.unwrap_or_default())
        .collect())
}

fn result<'a>(results: &'a [MetricDataResult], id: &str) -> Result<&'a MetricDataResult> {
    results
        .iter()
        .find(|r| r.id() == Some(id))
        .ok_or_else(|| anyhow!("no result {id} in {results:#?}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[tokio::test]
async fn seeded_utilisation_reads_back_through_get_metric_data() -> Result<()> {
    let lab = Lab::session().await?;
    let cw = cloudwatch(&lab).await;
    let end = SystemTime::now();
    let series = two_instances(3, 300);
    let put = put_utilisation(&cw, &series, end).await?;
    ensure!(put == 3 * 288 * 3, "put {put} datums");
    let (start, stop) = series[0].window(end)?;
    let window: i32 = 3 * 86_400;

    // One datapoint per query over the whole window: Maximum is exactly the peak.
    let queries = vec![
        query(
            "max_a",
            CPU_NAMESPACE,
            CPU_METRIC,
            INSTANCE_A,
            window,
            "Maximum",
        ),
        query(
            "avg_a",
            CPU_NAMESPACE,
            CPU_METRIC,
            INSTANCE_A,
            window,
            "Average",
        ),
        query(
            "max_b",
            CPU_NAMESPACE,
            CPU_METRIC,
            INSTANCE_B,
            window,
            "Maximum",
        ),
        query(
            "avg_b",
            CPU_NAMESPACE,
            CPU_METRIC,
            INSTANCE_B,
            window,
            "Average",
        ),
        query(
            "mem_a",
            MEMORY_NAMESPACE,
            MEMORY_METRIC,
            INSTANCE_A,
            window,
            "Maximum",
        ),
        query(
            "mem_b",
            MEMORY_NAMESPACE,
            MEMORY_METRIC,
            INSTANCE_B,
            window,
            "Maximum",
        ),
    ];
    let results = metric_data(&cw, queries, start, stop).await?;
    ensure!(results.len() == 6, "{results:#?}");
    for (suffix, s) in [("a", &series[0]), ("b", &series[1])] {
        let stats = s.cpu_stats(end)?;
        let max = result(&results, &format!("max_{suffix}"))?;
        ensure!(max.values() == [s.cpu.peak_pct], "{max:?}");
        ensure!(max.values() == [stats.maximum]);
        ensure!(max.timestamps() == [DateTime::from(start)], "{max:?}");
        ensure!(max.status_code().map(|c| c.as_str()) == Some("Complete"));
        let avg = result(&results, &format!("avg_{suffix}"))?;
        ensure!(
            avg.values().len() == 1 && close(avg.values()[0], stats.average),
            "{avg:?} vs {stats:?}"
        );
    }
    let memory = series[0]
        .memory_stats(end)?
        .context("instance A has memory")?;
    ensure!(result(&results, "mem_a")?.values() == [memory.maximum]);
    ensure!(memory.maximum == 71.25);
    ensure!(result(&results, "mem_b")?.values().is_empty());

    // At the sampling period every sample comes back unchanged, so p95 is computable.
    let per_sample = metric_data(
        &cw,
        vec![query(
            "raw",
            CPU_NAMESPACE,
            CPU_METRIC,
            INSTANCE_A,
            300,
            "Maximum",
        )],
        start,
        stop,
    )
    .await?;
    let raw = result(&per_sample, "raw")?;
    let samples = series[0].cpu_samples(end)?;
    ensure!(
        raw.values().len() == samples.len(),
        "{} values",
        raw.values().len()
    );
    ensure!(
        raw.values()
            .iter()
            .zip(&samples)
            .all(|(got, want)| *got == want.value)
    );
    ensure!(
        raw.timestamps()
            .iter()
            .zip(&samples)
            .all(|(t, s)| *t == DateTime::from(s.time()))
    );
    let read: Vec<_> = raw
        .timestamps()
        .iter()
        .zip(raw.values())
        .map(|(t, v)| Sample {
            epoch_secs: u64::try_from(t.secs()).unwrap_or_default(),
            value: *v,
        })
        .collect();
    let read_stats = SeriesStats::of(&read).context("samples read")?;
    let expected = series[0].cpu_stats(end)?;
    ensure!(
        read_stats.p95 == expected.p95,
        "{read_stats:?} vs {expected:?}"
    );
    ensure!(read_stats.maximum == 87.5 && expected.p95 < 87.5);
    Ok(())
}

#[tokio::test]
async fn get_metric_statistics_round_trip_and_errors() -> Result<()> {
    let lab = Lab::session().await?;
    let cw = cloudwatch(&lab).await;
    let end = SystemTime::now();
    let series = &two_instances(1, 60)[..1];
    ensure!(put_utilisation(&cw, series, end).await? == 2 * 1440);
    let (start, stop) = series[0].window(end)?;
    let stats = series[0].cpu_stats(end)?;

    let out = cw
        .get_metric_statistics()
        .namespace(CPU_NAMESPACE)
        .metric_name(CPU_METRIC)
        .dimensions(
            Dimension::builder()
                .name(INSTANCE_DIMENSION)
                .value(INSTANCE_A)
                .build(),
        )
        .start_time(DateTime::from(start))
        .end_time(DateTime::from(stop))
        .period(3600)
        .statistics(Statistic::Maximum)
        .statistics(Statistic::Minimum)
        .statistics(Statistic::SampleCount)
        .statistics(Statistic::Sum)
        .send()
        .await?;
    ensure!(out.label() == Some(CPU_METRIC));
    let points = out.datapoints();
    ensure!(points.len() == 24, "{} datapoints", points.len());
    let count: f64 = points.iter().filter_map(|p| p.sample_count()).sum();
    ensure!(count == 1440.0, "sample count {count}");
    let max = points
        .iter()
        .filter_map(|p| p.maximum())
        .fold(f64::MIN, f64::max);
    ensure!(max == stats.maximum && max == 87.5);
    let min = points
        .iter()
        .filter_map(|p| p.minimum())
        .fold(f64::MAX, f64::min);
    ensure!(min == stats.minimum);
    let sum: f64 = points.iter().filter_map(|p| p.sum()).sum();
    ensure!(close(sum, stats.sum), "sum {sum} vs {}", stats.sum);
    let (from, to) = (DateTime::from(start), DateTime::from(stop));
    ensure!(
        points
            .iter()
            .all(|p| p.timestamp().is_some_and(|t| *t >= from && *t < to))
    );
    ensure!(
        points
            .iter()
            .all(|p| p.unit() == Some(&StandardUnit::Percent))
    );

    // Values/Counts and StatisticValues datums both land.
    let at = DateTime::from(stop - Duration::from_secs(120));
    cw.put_metric_data()
        .namespace("Lab/Variants")
        .metric_data(
            MetricDatum::builder()
                .metric_name("Latency")
                .timestamp(at)
                .values(10.5)
                .values(20.0)
                .counts(1.0)
                .counts(2.0)
                .unit(StandardUnit::Milliseconds)
                .build(),
        )
        .metric_data(
            MetricDatum::builder()
                .metric_name("Latency")
                .timestamp(at)
                .statistic_values(
                    StatisticSet::builder()
                        .sample_count(2.0)
                        .sum(50.0)
                        .minimum(20.0)
                        .maximum(30.0)
                        .build(),
                )
                .unit(StandardUnit::Milliseconds)
                .build(),
        )
        .send()
        .await?;
    let variants = cw
        .get_metric_statistics()
        .namespace("Lab/Variants")
        .metric_name("Latency")
        .start_time(DateTime::from(stop - Duration::from_secs(600)))
        .end_time(DateTime::from(stop))
        .period(600)
        .statistics(Statistic::SampleCount)
        .statistics(Statistic::Sum)
        .statistics(Statistic::Minimum)
        .statistics(Statistic::Maximum)
        .statistics(Statistic::Average)
        .send()
        .await?;
    let [p] = variants.datapoints() else {
        return Err(anyhow!("one datapoint expected: {variants:?}"));
    };
    ensure!(
        p.sample_count() == Some(5.0) && p.sum() == Some(100.5),
        "{p:?}"
    );
    ensure!(
        p.minimum() == Some(10.5) && p.maximum() == Some(30.0),
        "{p:?}"
    );
    ensure!(p.average().is_some_and(|a| close(a, 20.1)), "{p:?}");

    // ListMetrics sees both instances' metrics with their dimension.
    let listed = cw.list_metrics().namespace(CPU_NAMESPACE).send().await?;
    ensure!(
        listed
            .metrics()
            .iter()
            .any(|m| m.metric_name() == Some(CPU_METRIC)
                && m.dimensions().iter().any(|d| d.value() == Some(INSTANCE_A))),
        "{listed:?}"
    );

    // moto's 400 reaches the SDK with the query-compatible code and the modelled variant.
    let err = cw
        .get_metric_statistics()
        .namespace(CPU_NAMESPACE)
        .metric_name(CPU_METRIC)
        .start_time(DateTime::from(stop))
        .end_time(DateTime::from(start))
        .period(60)
        .statistics(Statistic::Maximum)
        .send()
        .await
        .expect_err("StartTime after EndTime");
    ensure!(err.code() == Some("InvalidParameterValue"), "{err:?}");
    ensure!(err.raw_response().map(|r| r.status().as_u16()) == Some(400));
    ensure!(
        err.as_service_error()
            .is_some_and(|e| e.is_invalid_parameter_value_exception()),
        "{err:?}"
    );
    ensure!(
        err.message().is_some_and(|m| m.contains("StartTime")),
        "{err:?}"
    );
    // An operation moto lacks answers InternalFailure (HTTP 500) instead of a 404.
    let err = cw
        .describe_alarm_history()
        .send()
        .await
        .expect_err("moto has no DescribeAlarmHistory");
    ensure!(err.code() == Some("InternalFailure"), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn list_metrics_pages_with_next_token() -> Result<()> {
    let lab = Lab::session().await?;
    let cw = cloudwatch(&lab).await;
    let datums: Vec<MetricDatum> = (0..501)
        .map(|shard| {
            MetricDatum::builder()
                .metric_name("QueueDepth")
                .dimensions(
                    Dimension::builder()
                        .name("Shard")
                        .value(format!("shard-{shard:03}"))
                        .build(),
                )
                .value(f64::from(shard))
                .build()
        })
        .collect();
    // 501 datums, over the SDK's 10 KiB threshold: the body travels gzip-compressed.
    cw.put_metric_data()
        .namespace("Lab/Pages")
        .set_metric_data(Some(datums))
        .send()
        .await?;
    let pages = cw
        .list_metrics()
        .namespace("Lab/Pages")
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await?;
    let sizes: Vec<usize> = pages.iter().map(|p| p.metrics().len()).collect();
    ensure!(sizes == [500, 1], "page sizes {sizes:?}");
    ensure!(pages[0].next_token().is_some() && pages[1].next_token().is_none());
    let mut shards: Vec<&str> = pages
        .iter()
        .flat_map(|p| p.metrics())
        .flat_map(|m| m.dimensions())
        .filter_map(|d| d.value())
        .collect();
    shards.sort_unstable();
    shards.dedup();
    ensure!(shards.len() == 501);
    Ok(())
}

#[tokio::test]
async fn throttled_get_metric_data_reaches_the_sdk_over_cbor_and_is_counted() -> Result<()> {
    let lab = Lab::session().await?;
    let cw = cloudwatch(&lab).await;
    let end = SystemTime::now();
    let series = &two_instances(1, 300)[1..];
    ensure!(put_utilisation(&cw, series, end).await? == 288);
    let (start, stop) = series[0].window(end)?;
    lab.proxy().reset_counters();
    let rule = lab.proxy().add_fault(
        FaultRule::new(FaultAction::Throttle)
            .service("cloudwatch")
            .operation("GetMetricData")
            .times(1),
    );
    let queries = vec![query(
        "max_b",
        CPU_NAMESPACE,
        CPU_METRIC,
        INSTANCE_B,
        86_400,
        "Maximum",
    )];
    let err = cw
        .get_metric_data()
        .set_metric_data_queries(Some(queries.clone()))
        .start_time(DateTime::from(start))
        .end_time(DateTime::from(stop))
        .send()
        .await
        .expect_err("throttled");
    ensure!(err.code() == Some("Throttling"), "{err:?}");
    let raw = err.raw_response().context("a raw response")?;
    ensure!(raw.status().as_u16() == 400);
    ensure!(raw.headers().get("content-type") == Some("application/cbor"));
    ensure!(lab.proxy().fault_hits(rule) == 1);

    // The next call goes through to moto.
    let results = metric_data(&cw, queries, start, stop).await?;
    ensure!(
        result(&results, "max_b")?.values() == [42.75],
        "{results:?}"
    );

    let counts = lab.proxy().counters();
    let row = counts
        .row("cloudwatch", "GetMetricData", REGION)
        .with_context(|| format!("no cloudwatch:GetMetricData row: {counts:#?}"))?;
    ensure!(
        row.calls == 2 && row.throttled == 1 && row.faulted == 1,
        "{row:?}"
    );
    ensure!(!row.mutating);
    ensure!(counts.mutating_calls_in(REGION) == 0, "{counts:#?}");
    Ok(())
}
