//! Benchmarks (`pilotlight-lab bench …`). Each prints one JSON document per measurement so
//! results can be recorded in `docs/benchmarks.md` and compared across versions.
//!
//! `bench copy` measures the copy scheduler's quality: on a synthetic estate (mixed tiers and
//! sizes, snapshots four times per RPO period), with the EBS in-flight limit saturated, the worst
//! RPO lag over a simulated day under pilotlight's production scheduler
//! ([`pilotlight_core::copy::pick`]) versus an earliest-deadline-first reference and FIFO. The
//! copy throughput is chosen so the offered load (copy work per slot-second) is `load`.

use std::time::Instant;

use pilotlight_core::copy::sim::{Policy, SimConfig, offered_load, simulate, synthetic};
use serde_json::{Value, json};

/// The SPEC's target: worst lag within 1.1× of the EDF reference.
pub const COPY_TARGET_RATIO: f64 = 1.1;

/// Parameters of one copy-scheduler run.
#[derive(Debug, Clone)]
pub struct CopyBench {
    pub volumes: usize,
    pub seed: u64,
    /// Offered load to size the copy throughput for (1.0 = slots busy all the time on average).
    pub load: f64,
    pub horizon_secs: u64,
    pub in_flight: u32,
}

/// Runs the three policies on one synthetic estate and reports the ratios.
pub fn copy_scheduler(b: &CopyBench) -> Value {
    let start = Instant::now();
    let estate = synthetic(b.seed, b.volumes);
    let mut cfg = SimConfig {
        horizon_secs: b.horizon_secs,
        in_flight: b.in_flight,
        gib_per_sec_per_copy: 1.0,
        ..SimConfig::default()
    };
    // Offered load is inversely proportional to the throughput: solve for the target load.
    let at_one = offered_load(&estate, &cfg);
    if b.load > 0.0 && at_one.is_finite() && at_one > 0.0 {
        cfg.gib_per_sec_per_copy = at_one / b.load;
    }
    let results: Vec<_> = Policy::ALL
        .iter()
        .map(|p| simulate(&estate, &cfg, *p))
        .collect();
    let worst = |name: &str| {
        results
            .iter()
            .find(|r| r.policy == name)
            .map_or(0, |r| r.worst_lag_secs)
    };
    let ratio = |a: u64, b: u64| {
        if b == 0 {
            if a == 0 { 1.0 } else { f64::INFINITY }
        } else {
            a as f64 / b as f64
        }
    };
    let edf = worst("edf");
    let pilotlight_vs_edf = ratio(worst("pilotlight"), edf);
    json!({
        "bench": "copy_scheduler",
        "volumes": b.volumes,
        "seed": b.seed,
        "in_flight": b.in_flight,
        "horizon_secs": b.horizon_secs,
        "offered_load": offered_load(&estate, &cfg),
        "gib_per_sec_per_copy": cfg.gib_per_sec_per_copy,
        "results": results,
        "pilotlight_vs_edf": pilotlight_vs_edf,
        "fifo_vs_edf": ratio(worst("fifo"), edf),
        "target_ratio": COPY_TARGET_RATIO,
        "target_met": pilotlight_vs_edf <= COPY_TARGET_RATIO,
        "elapsed_ms": start.elapsed().as_millis() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_run_reports_every_policy_and_meets_the_target() {
        let out = copy_scheduler(&CopyBench {
            volumes: 60,
            seed: 7,
            load: 0.9,
            horizon_secs: 6 * 3600,
            in_flight: 5,
        });
        let results = out["results"].as_array().cloned().unwrap_or_default();
        assert_eq!(results.len(), 3);
        let load = out["offered_load"].as_f64().unwrap_or_default();
        assert!((load - 0.9).abs() < 0.01, "load {load}");
        assert_eq!(out["target_met"], true, "{out}");
        assert!(
            out["fifo_vs_edf"].as_f64().is_some_and(f64::is_finite),
            "{out}"
        );
    }
}
