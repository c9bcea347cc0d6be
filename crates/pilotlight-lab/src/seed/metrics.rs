//! Utilisation history for instances: seeded, realistic CPU and memory series put into
//! CloudWatch, because moto generates no metrics of its own (shared/LAB-NOTES.md §2).
//!
//! A [`UtilisationSeries`] is one instance's history: `days` days of one sample every
//! `period_secs` seconds, ending just before `end`, for CPU (namespace [`CPU_NAMESPACE`],
//! metric [`CPU_METRIC`]) and optionally memory ([`MEMORY_NAMESPACE`], [`MEMORY_METRIC`]),
//! each with dimension [`INSTANCE_DIMENSION`] = the instance id and unit `Percent`.
//! [`put_utilisation`] writes them with `PutMetricData`, at most [`MAX_DATUMS_PER_CALL`]
//! datums per call (AWS's limit), one datum per sample; moto keeps every datum it is given.
//!
//! # The shape of a series
//!
//! Sample `k` of `n = days * 86400 / period_secs` is at `end_s - (n - k) * period_secs`,
//! where `end_s` is `end` truncated to whole seconds: the samples fill `[end_s - days * 86400,
//! end_s)` (see [`UtilisationSeries::window`]). Its value is
//! `base + (peak - base) * (day_amp * diurnal + noise)`, where `diurnal` is a daily cycle in
//! UTC (1 at the profile's busy hour, 13:00–16:00 by seed, near 0 at night), `day_amp` a
//! per-day factor in `[0.55, 0.85)` (times 0.6 on Saturdays and Sundays) and `noise` in
//! `[-0.04, 0.04)`, all drawn from the profile's `seed` (SplitMix64, so the series is a pure
//! function of the profile, `days`, `period_secs` and `end`). Values are rounded to 0.01 and
//! kept in `[0, peak]`; then the sample where `day_amp * diurnal` is largest (the first such)
//! is set to exactly `peak`.
//!
//! # What a reader should see
//!
//! [`SeriesStats`] (from [`UtilisationSeries::cpu_stats`] / [`UtilisationSeries::memory_stats`])
//! holds the expected statistics over the whole window:
//!
//! - `Maximum` over any query covering the window is exactly `peak_pct` (one sample is the
//!   peak; all others are below it unless `base_pct == peak_pct`); `Minimum` is
//!   [`SeriesStats::minimum`] (≥ 0).
//! - `SampleCount` is the number of samples, `Sum` and `Average` equal [`SeriesStats::sum`] /
//!   [`SeriesStats::average`] up to float rounding (relative 1e-9): moto adds in its own order.
//! - p95: moto computes no percentiles (it ignores `ExtendedStatistics` and answers no value
//!   for a `p95` stat), so a reader computes it from the samples themselves — GetMetricData
//!   `Maximum` (or `Average`) at `Period = period_secs` over the window returns every sample
//!   unchanged. [`SeriesStats::p95`] is the nearest-rank 95th percentile of the samples (the
//!   `ceil(0.95 n)`-th smallest). Values have at most two decimals, so they cross the lab's
//!   JSON hops exactly.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use serde::{Deserialize, Serialize};

use super::call;
use crate::error::LabError;

/// CPU: namespace of EC2's own metrics.
pub const CPU_NAMESPACE: &str = "AWS/EC2";
/// CPU: metric name.
pub const CPU_METRIC: &str = "CPUUtilization";
/// Memory: the CloudWatch agent's namespace.
pub const MEMORY_NAMESPACE: &str = "CWAgent";
/// Memory: the CloudWatch agent's metric.
pub const MEMORY_METRIC: &str = "mem_used_percent";
/// The dimension naming the instance.
pub const INSTANCE_DIMENSION: &str = "InstanceId";
/// Most datums in one `PutMetricData` (AWS's limit).
pub const MAX_DATUMS_PER_CALL: usize = 1000;
/// Most samples in one series (`days * 86400 / period_secs`), which bounds moto's memory
/// (every datum is kept).
pub const MAX_SAMPLES_PER_SERIES: u64 = 100_000;

const DAY_SECS: u64 = 86_400;

/// A utilisation profile in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The quiet level (nights), 0–100.
    pub base_pct: f64,
    /// The series' maximum, reached exactly once; `base_pct`–100.
    pub peak_pct: f64,
    /// Seeds the busy hour, the per-day amplitudes and the noise.
    pub seed: u64,
}

/// One instance's utilisation history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UtilisationSeries {
    pub instance_id: String,
    /// How many days of history, ending at `end`.
    pub days: u32,
    /// Seconds between samples, 1–86400 (below 60 the datums are high-resolution).
    pub period_secs: u32,
    pub cpu: Profile,
    /// Memory (`CWAgent` / `mem_used_percent`), when the instance runs the agent.
    #[serde(default)]
    pub memory: Option<Profile>,
}

/// One sample of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Whole seconds since the Unix epoch.
    pub epoch_secs: u64,
    pub value: f64,
}

impl Sample {
    /// The sample's time.
    pub fn time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.epoch_secs)
    }
}

/// Statistics over all samples of a series (see the module docs for what moto returns).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesStats {
    pub count: usize,
    pub minimum: f64,
    /// Exactly the profile's `peak_pct`.
    pub maximum: f64,
    /// The samples added in time order.
    pub sum: f64,
    /// `sum / count`.
    pub average: f64,
    /// Nearest-rank 95th percentile: the `ceil(0.95 * count)`-th smallest sample.
    pub p95: f64,
}

impl SeriesStats {
    /// The statistics of `samples`; `None` when there are none.
    pub fn of(samples: &[Sample]) -> Option<SeriesStats> {
        if samples.is_empty() {
            return None;
        }
        let mut values: Vec<f64> = samples.iter().map(|s| s.value).collect();
        let sum: f64 = values.iter().sum();
        values.sort_by(f64::total_cmp);
        let count = values.len();
        // ceil(0.95 n) - 1 in integers: (95 n + 99) / 100 - 1.
        let rank = (count * 95).div_ceil(100).max(1) - 1;
        Some(SeriesStats {
            count,
            minimum: values[0],
            maximum: values[count - 1],
            sum,
            average: sum / count as f64,
            p95: values[rank],
        })
    }
}

impl UtilisationSeries {
    /// `[start, end_s)`: the window the samples fill, `end` truncated to whole seconds.
    ///
    /// # Errors
    ///
    /// [`LabError::InvalidSpec`] when the series is invalid (see [`put_utilisation`]).
    pub fn window(&self, end: SystemTime) -> Result<(SystemTime, SystemTime), LabError> {
        let end_s = self.checked_end(end)?;
        let start = end_s - u64::from(self.days) * DAY_SECS;
        Ok((
            UNIX_EPOCH + Duration::from_secs(start),
            UNIX_EPOCH + Duration::from_secs(end_s),
        ))
    }

    /// The CPU samples, oldest first.
    ///
    /// # Errors
    ///
    /// [`LabError::InvalidSpec`] when the series is invalid (see [`put_utilisation`]).
    pub fn cpu_samples(&self, end: SystemTime) -> Result<Vec<Sample>, LabError> {
        let end_s = self.checked_end(end)?;
        Ok(samples(&self.cpu, self.days, self.period_secs, end_s))
    }

    /// The memory samples, oldest first; `None` without a memory profile.
    ///
    /// # Errors
    ///
    /// [`LabError::InvalidSpec`] when the series is invalid (see [`put_utilisation`]).
    pub fn memory_samples(&self, end: SystemTime) -> Result<Option<Vec<Sample>>, LabError> {
        let end_s = self.checked_end(end)?;
        Ok(self
            .memory
            .as_ref()
            .map(|m| samples(m, self.days, self.period_secs, end_s)))
    }

    /// The statistics a reader should see for CPU over the window.
    ///
    /// # Errors
    ///
    /// [`LabError::InvalidSpec`] when the series is invalid (see [`put_utilisation`]).
    pub fn cpu_stats(&self, end: SystemTime) -> Result<SeriesStats, LabError> {
        let samples = self.cpu_samples(end)?;
        SeriesStats::of(&samples).ok_or_else(|| self.empty())
    }

    /// The statistics a reader should see for memory over the window; `None` without a
    /// memory profile.
    ///
    /// # Errors
    ///
    /// [`LabError::InvalidSpec`] when the series is invalid (see [`put_utilisation`]).
    pub fn memory_stats(&self, end: SystemTime) -> Result<Option<SeriesStats>, LabError> {
        match self.memory_samples(end)? {
            Some(samples) => SeriesStats::of(&samples)
                .map(Some)
                .ok_or_else(|| self.empty()),
            None => Ok(None),
        }
    }

    fn empty(&self) -> LabError {
        LabError::InvalidSpec {
            problems: vec![format!("series {}: no samples", self.instance_id)],
        }
    }

    /// Every problem with this series and `end`.
    fn problems(&self, end: SystemTime) -> Vec<String> {
        let mut problems = Vec::new();
        let id = &self.instance_id;
        if id.trim().is_empty() {
            problems.push("a series has an empty instance_id".to_owned());
        }
        if self.days == 0 {
            problems.push(format!("series {id}: days must be at least 1"));
        }
        if self.period_secs == 0 || u64::from(self.period_secs) > DAY_SECS {
            problems.push(format!(
                "series {id}: period_secs must be 1..=86400, got {}",
                self.period_secs
            ));
        } else {
            let n = u64::from(self.days) * DAY_SECS / u64::from(self.period_secs);
            if n > MAX_SAMPLES_PER_SERIES {
                problems.push(format!(
                    "series {id}: {n} samples, more than {MAX_SAMPLES_PER_SERIES}; use fewer \
                     days or a longer period"
                ));
            }
        }
        let mut profiles = vec![("cpu", &self.cpu)];
        if let Some(m) = &self.memory {
            profiles.push(("memory", m));
        }
        for (what, p) in profiles {
            let in_range = |v: f64| v.is_finite() && (0.0..=100.0).contains(&v);
            if !(in_range(p.base_pct) && in_range(p.peak_pct) && p.base_pct <= p.peak_pct) {
                problems.push(format!(
                    "series {id}: {what} needs 0 <= base_pct <= peak_pct <= 100, got {} and {}",
                    p.base_pct, p.peak_pct
                ));
            }
        }
        match end.duration_since(UNIX_EPOCH) {
            Ok(d) if d.as_secs() >= u64::from(self.days) * DAY_SECS => {}
            _ => problems.push(format!("series {id}: the window starts before 1970")),
        }
        problems
    }

    fn checked_end(&self, end: SystemTime) -> Result<u64, LabError> {
        let problems = self.problems(end);
        if !problems.is_empty() {
            return Err(LabError::InvalidSpec { problems });
        }
        end.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .map_err(|_| LabError::InvalidSpec {
                problems: vec![format!("series {}: end is before 1970", self.instance_id)],
            })
    }
}

/// SplitMix64: a tiny, well-mixed, deterministic generator step.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform number in `[0, 1)` drawn from `seed` and `salt`.
fn unit(seed: u64, salt: u64) -> f64 {
    // The top 53 bits, exactly representable.
    let top = (mix(seed ^ mix(salt)) >> 11) as f64;
    top / (1u64 << 53) as f64
}

/// Salts separating the generator's streams.
const SALT_BUSY_HOUR: u64 = 0x6275_7379;
const SALT_DAY: u64 = 0x6461_7973_0000_0000;
const SALT_NOISE: u64 = 0x6e6f_6973_6500_0000;

/// The noise-free shape in `[0, 0.85)`: daily cycle times the day's amplitude.
fn shape(profile: &Profile, epoch_secs: u64) -> f64 {
    let busy_hour = 13.0 + (unit(profile.seed, SALT_BUSY_HOUR) * 4.0).floor();
    let day = epoch_secs / DAY_SECS;
    let hour = (epoch_secs % DAY_SECS) as f64 / 3600.0;
    let phase = (hour - busy_hour) / 24.0 * std::f64::consts::TAU;
    let diurnal = ((1.0 + phase.cos()) / 2.0).powf(1.5);
    // 1970-01-01 was a Thursday: (day + 4) % 7 is 0 on Sundays, 6 on Saturdays.
    let weekend = matches!((day + 4) % 7, 0 | 6);
    let mut amplitude = 0.55 + 0.30 * unit(profile.seed, SALT_DAY ^ day);
    if weekend {
        amplitude *= 0.6;
    }
    amplitude * diurnal
}

/// The samples of `profile` over `days` days before `end_s` (validated inputs).
fn samples(profile: &Profile, days: u32, period_secs: u32, end_s: u64) -> Vec<Sample> {
    let period = u64::from(period_secs);
    let n = u64::from(days) * DAY_SECS / period;
    let span = profile.peak_pct - profile.base_pct;
    let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    let mut busiest: Option<(usize, f64)> = None;
    for k in 0..n {
        let t = end_s - (n - k) * period;
        let s = shape(profile, t);
        let noise = (unit(profile.seed, SALT_NOISE ^ t) - 0.5) * 0.08;
        let raw = profile.base_pct + span * (s + noise);
        let value = ((raw * 100.0).round() / 100.0).clamp(0.0, profile.peak_pct);
        let index = out.len();
        if busiest.is_none_or(|(_, best)| s > best) {
            busiest = Some((index, s));
        }
        out.push(Sample {
            epoch_secs: t,
            value,
        });
    }
    if let Some((index, _)) = busiest {
        out[index].value = profile.peak_pct;
    }
    out
}

/// One datum per sample.
fn datums(
    metric: &str,
    instance_id: &str,
    samples: &[Sample],
    period_secs: u32,
) -> Vec<MetricDatum> {
    let dimension = Dimension::builder()
        .name(INSTANCE_DIMENSION)
        .value(instance_id)
        .build();
    let resolution = if period_secs < 60 { 1 } else { 60 };
    samples
        .iter()
        .map(|s| {
            MetricDatum::builder()
                .metric_name(metric)
                .dimensions(dimension.clone())
                .timestamp(DateTime::from_secs(
                    i64::try_from(s.epoch_secs).unwrap_or(i64::MAX),
                ))
                .value(s.value)
                .unit(StandardUnit::Percent)
                .storage_resolution(resolution)
                .build()
        })
        .collect()
}

/// Puts every series' CPU (and memory) samples into CloudWatch through `cw` and returns how
/// many datums were put. Series are validated first, all problems reported at once; then each
/// namespace's datums go out in time order per series, [`MAX_DATUMS_PER_CALL`] per call.
/// Throttled calls are retried with backoff like the rest of the seeder.
///
/// # Errors
///
/// [`LabError::InvalidSpec`] before any call when a series is invalid (empty or repeated
/// instance id, `days` 0, `period_secs` outside 1–86400, more than [`MAX_SAMPLES_PER_SERIES`]
/// samples, a profile outside `0 <= base <= peak <= 100`, a window before 1970);
/// [`LabError::Aws`] when a `PutMetricData` fails (batches before it stay put).
pub async fn put_utilisation(
    cw: &aws_sdk_cloudwatch::Client,
    series: &[UtilisationSeries],
    end: SystemTime,
) -> Result<usize, LabError> {
    let mut problems: Vec<String> = series.iter().flat_map(|s| s.problems(end)).collect();
    let mut seen = std::collections::BTreeSet::new();
    for s in series {
        if !seen.insert(s.instance_id.as_str()) {
            problems.push(format!(
                "instance {} has more than one series",
                s.instance_id
            ));
        }
    }
    if !problems.is_empty() {
        return Err(LabError::InvalidSpec { problems });
    }
    let mut cpu = Vec::new();
    let mut memory = Vec::new();
    for s in series {
        cpu.extend(datums(
            CPU_METRIC,
            &s.instance_id,
            &s.cpu_samples(end)?,
            s.period_secs,
        ));
        if let Some(samples) = s.memory_samples(end)? {
            memory.extend(datums(
                MEMORY_METRIC,
                &s.instance_id,
                &samples,
                s.period_secs,
            ));
        }
    }
    let region = cw
        .config()
        .region()
        .map(ToString::to_string)
        .unwrap_or_default();
    for (namespace, data) in [(CPU_NAMESPACE, &cpu), (MEMORY_NAMESPACE, &memory)] {
        for (i, batch) in data.chunks(MAX_DATUMS_PER_CALL).enumerate() {
            let resource = format!("{namespace} batch {}", i + 1);
            call("PutMetricData", &resource, &region, || {
                cw.put_metric_data()
                    .namespace(namespace)
                    .set_metric_data(Some(batch.to_vec()))
                    .send()
            })
            .await?;
        }
    }
    tracing::debug!(
        series = series.len(),
        cpu = cpu.len(),
        memory = memory.len(),
        "utilisation put"
    );
    Ok(cpu.len() + memory.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(days: u32, period_secs: u32, base: f64, peak: f64, seed: u64) -> UtilisationSeries {
        UtilisationSeries {
            instance_id: "i-0123456789abcdef0".to_owned(),
            days,
            period_secs,
            cpu: Profile {
                base_pct: base,
                peak_pct: peak,
                seed,
            },
            memory: None,
        }
    }

    /// 2026-11-24T20:00:00Z, a Tuesday.
    fn end() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_550_400)
    }

    #[test]
    fn samples_fill_the_window_in_order() {
        let s = series(3, 300, 10.0, 80.0, 7);
        let samples = s.cpu_samples(end()).expect("valid");
        assert_eq!(samples.len(), 3 * 288);
        let (start, stop) = s.window(end()).expect("valid");
        assert_eq!(samples[0].time(), start);
        assert_eq!(
            samples[samples.len() - 1].time() + Duration::from_secs(300),
            stop
        );
        assert!(
            samples
                .windows(2)
                .all(|w| w[1].epoch_secs - w[0].epoch_secs == 300)
        );
        // A fractional end is truncated to whole seconds.
        let later = end() + Duration::from_millis(999);
        assert_eq!(s.cpu_samples(later).expect("valid"), samples);
    }

    #[test]
    fn peak_is_exact_values_in_range_and_deterministic() {
        for seed in [0, 1, 42, u64::MAX] {
            for (base, peak) in [(5.0, 92.5), (0.0, 100.0), (30.0, 30.0), (55.5, 61.25)] {
                let s = series(7, 300, base, peak, seed);
                let samples = s.cpu_samples(end()).expect("valid");
                let stats = SeriesStats::of(&samples).expect("samples");
                assert_eq!(stats.maximum, peak, "seed {seed} base {base} peak {peak}");
                assert!(stats.minimum >= 0.0);
                let at_peak = samples.iter().filter(|s| s.value == peak).count();
                if base < peak {
                    assert_eq!(at_peak, 1, "seed {seed} base {base} peak {peak}");
                }
                assert!(
                    samples
                        .iter()
                        .all(|s| (s.value * 100.0 - (s.value * 100.0).round()).abs() < 1e-9)
                );
                assert_eq!(s.cpu_samples(end()).expect("valid"), samples);
            }
        }
        let a = series(2, 60, 5.0, 90.0, 1)
            .cpu_samples(end())
            .expect("valid");
        let b = series(2, 60, 5.0, 90.0, 2)
            .cpu_samples(end())
            .expect("valid");
        assert_ne!(a, b, "different seeds differ");
    }

    #[test]
    fn the_series_follows_a_daily_cycle() {
        let s = series(14, 3600, 10.0, 90.0, 3);
        let samples = s.cpu_samples(end()).expect("valid");
        let hour_mean = |h: u64| {
            let v: Vec<f64> = samples
                .iter()
                .filter(|s| (s.epoch_secs % DAY_SECS) / 3600 == h)
                .map(|s| s.value)
                .collect();
            let n = v.len() as f64;
            v.iter().sum::<f64>() / n
        };
        let afternoon = hour_mean(14);
        let night = hour_mean(2);
        assert!(
            afternoon > night + 30.0,
            "afternoon {afternoon} night {night}"
        );
        assert!(night < 15.0, "night {night}");
    }

    #[test]
    fn stats_nearest_rank_p95() {
        let samples: Vec<Sample> = (1..=100)
            .map(|v| Sample {
                epoch_secs: v,
                value: f64::from(u32::try_from(v).expect("small")),
            })
            .collect();
        let stats = SeriesStats::of(&samples).expect("samples");
        assert_eq!(stats.count, 100);
        assert_eq!((stats.minimum, stats.maximum), (1.0, 100.0));
        assert_eq!(stats.p95, 95.0);
        assert_eq!(stats.sum, 5050.0);
        assert_eq!(stats.average, 50.5);
        let few: Vec<Sample> = [3.0, 1.0, 2.0]
            .iter()
            .map(|v| Sample {
                epoch_secs: 0,
                value: *v,
            })
            .collect();
        assert_eq!(SeriesStats::of(&few).expect("samples").p95, 3.0);
        assert_eq!(SeriesStats::of(&[]), None);
    }

    #[test]
    fn invalid_series_report_every_problem() {
        let mut s = series(0, 0, 50.0, 40.0, 0);
        s.instance_id = " ".to_owned();
        s.memory = Some(Profile {
            base_pct: -1.0,
            peak_pct: f64::NAN,
            seed: 0,
        });
        let Err(LabError::InvalidSpec { problems }) = s.cpu_samples(end()) else {
            panic!("invalid series accepted");
        };
        assert_eq!(problems.len(), 5, "{problems:?}");
        let too_many = series(200, 60, 1.0, 2.0, 0);
        let Err(LabError::InvalidSpec { problems }) = too_many.cpu_stats(end()) else {
            panic!("oversized series accepted");
        };
        assert!(problems[0].contains("288000 samples"), "{problems:?}");
        let early = series(2, 60, 1.0, 2.0, 0);
        assert!(early.window(UNIX_EPOCH + Duration::from_secs(100)).is_err());
    }

    #[test]
    fn datums_carry_metric_dimension_unit_and_resolution() {
        let samples = [Sample {
            epoch_secs: 1_795_550_100,
            value: 12.5,
        }];
        let d = &datums(CPU_METRIC, "i-1", &samples, 300)[0];
        assert_eq!(d.metric_name(), Some(CPU_METRIC));
        assert_eq!(d.value(), Some(12.5));
        assert_eq!(d.unit(), Some(&StandardUnit::Percent));
        assert_eq!(d.storage_resolution(), Some(60));
        assert_eq!(d.timestamp().map(DateTime::secs), Some(1_795_550_100));
        let dim = &d.dimensions()[0];
        assert_eq!(
            (dim.name(), dim.value()),
            (Some(INSTANCE_DIMENSION), Some("i-1"))
        );
        assert_eq!(
            datums(MEMORY_METRIC, "i-1", &samples, 10)[0].storage_resolution(),
            Some(1)
        );
    }
}
