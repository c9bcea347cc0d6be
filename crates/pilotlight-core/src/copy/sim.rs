//! A discrete-event simulator of the EBS copy loop, to measure the scheduler's worst RPO lag
//! against an earliest-deadline-first reference and against FIFO (SPEC "Numbers": within 1.1×
//! of EDF with the in-flight limit saturated). The lab's `bench copy` drives it.
//!
//! The model: every volume takes a snapshot every `snapshot_every_secs`, starting at
//! `first_snapshot_at_secs`; at the start each volume's DR copy is of the snapshot one period
//! before its first (so nothing starts infinitely behind). A copy always takes the volume's
//! newest snapshot (older pending ones are superseded), holds one of `in_flight` slots and
//! lasts `size_gib / gib_per_sec_per_copy` seconds. Completions are handled before snapshots
//! and snapshots before starts at the same instant, so a freed slot is refilled at once.
//!
//! Lags are sampled every `step_secs` for every volume, after a warm-up (one max RPO of the
//! estate unless configured) and over `horizon_secs`. Instants are milliseconds from the start
//! of the simulation; configuration and results are in seconds.
//!
//! Reading the results: EDF is the reference optimum for the worst *lateness* (`lag − rpo`,
//! [`SimResult::worst_lateness_secs`]) and thus for breaches. It spends slack where there is
//! some, so a 24-hour tier-3 volume may drift close to its target while tier 1 is served; the
//! absolute [`SimResult::worst_lag_secs`] is then a tier-3 number, and FIFO, which ignores
//! targets, can show a lower absolute worst lag while breaching tier-1 targets under load.
//! Compare policies on lateness and breaches, and on worst lag per tier.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use serde::Serialize;

use super::prng::SplitMix64;
use super::{CopyKind, Limits, Protected, lower_median, pick, secs_to_ms};

/// One simulated EBS volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimVolume {
    /// Recovery tier (1 comes back first).
    pub tier: u8,
    /// The tier's RPO target, in seconds.
    pub rpo_secs: u64,
    /// Data copied per snapshot copy, in GiB.
    pub size_gib: u64,
    /// Snapshot period, in seconds (0 is treated as 1).
    pub snapshot_every_secs: u64,
    /// When the first snapshot is taken, in seconds from the start.
    pub first_snapshot_at_secs: u64,
}

/// A simulated estate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimEstate {
    pub volumes: Vec<SimVolume>,
}

impl SimEstate {
    /// The largest RPO target of the estate, in seconds (0 when empty): the default warm-up.
    pub fn max_rpo_secs(&self) -> u64 {
        self.volumes.iter().map(|v| v.rpo_secs).max().unwrap_or(0)
    }
}

/// The tiers of [`synthetic`]: (tier, share of volumes, RPO target in seconds, snapshot period
/// in seconds). Snapshots are taken four times per RPO period.
pub const SYNTHETIC_TIERS: [(u8, f64, u64, u64); 3] = [
    (1, 0.2, 3_600, 900),
    (2, 0.3, 14_400, 3_600),
    (3, 0.5, 86_400, 21_600),
];

/// Smallest and largest volume sizes of [`synthetic`], in GiB.
pub const SYNTHETIC_SIZE_GIB: (u64, u64) = (8, 2000);

/// A deterministic synthetic estate of `volumes` volumes from `seed`: tiers 1–3 in the shares
/// and with the RPO targets and snapshot periods of [`SYNTHETIC_TIERS`] (1 h / 4 h / 24 h);
/// sizes from 8 to 2000 GiB, skewed small (`8 × 250^(u²)` for a uniform `u`: median ≈ 32 GiB,
/// mean ≈ 200 GiB); first snapshots spread uniformly over one snapshot period.
pub fn synthetic(seed: u64, volumes: usize) -> SimEstate {
    let mut rng = SplitMix64::new(seed);
    let (min_size, max_size) = SYNTHETIC_SIZE_GIB;
    let ratio = max_size as f64 / min_size as f64;
    let volumes = (0..volumes)
        .map(|_| {
            let draw = rng.next_f64();
            let mut cumulative = 0.0;
            let mut chosen = SYNTHETIC_TIERS[SYNTHETIC_TIERS.len() - 1];
            for tier in SYNTHETIC_TIERS {
                cumulative += tier.1;
                if draw < cumulative {
                    chosen = tier;
                    break;
                }
            }
            let (tier, _, rpo_secs, snapshot_every_secs) = chosen;
            let u = rng.next_f64();
            let size = (min_size as f64 * ratio.powf(u * u)).round() as u64;
            SimVolume {
                tier,
                rpo_secs,
                size_gib: size.clamp(min_size, max_size),
                snapshot_every_secs,
                first_snapshot_at_secs: rng.below(snapshot_every_secs),
            }
        })
        .collect();
    SimEstate { volumes }
}

/// Which pending copy gets a free slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Policy {
    /// The production scheduler, [`pick`](super::pick).
    Pilotlight,
    /// The volume whose oldest not-yet-copied snapshot is oldest (queue order).
    Fifo,
    /// Textbook earliest-deadline-first: whenever a slot frees, the pending copy whose volume
    /// reaches its RPO target soonest (ties by volume index). The reference optimum.
    EarliestDeadlineFirst,
}

impl Policy {
    /// Every policy, in report order.
    pub const ALL: [Policy; 3] = [
        Policy::Pilotlight,
        Policy::EarliestDeadlineFirst,
        Policy::Fifo,
    ];

    /// The short name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Pilotlight => "pilotlight",
            Policy::Fifo => "fifo",
            Policy::EarliestDeadlineFirst => "edf",
        }
    }
}

/// Simulation parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimConfig {
    /// Measured period after the warm-up, in seconds.
    pub horizon_secs: u64,
    /// Copy slots (AWS: 20 EBS snapshot copies per destination region).
    pub in_flight: u32,
    /// Throughput of one copy, in GiB per second. Not positive (or not finite): copies never
    /// finish.
    pub gib_per_sec_per_copy: f64,
    /// Sampling period, in seconds (0 is treated as 1).
    pub step_secs: u64,
    /// Warm-up before measuring, in seconds; `None`: the estate's largest RPO target.
    pub warmup_secs: Option<u64>,
}

impl Default for SimConfig {
    /// A simulated day after warm-up, AWS's 20 slots, 1-minute samples, and a per-copy
    /// throughput that saturates the 20 slots with a 3,000-volume [`synthetic`] estate
    /// (offered load ≈ 1.2, see [`offered_load`]).
    fn default() -> Self {
        SimConfig {
            horizon_secs: 86_400,
            in_flight: CopyKind::EbsSnapshot.aws_in_flight_limit(),
            gib_per_sec_per_copy: 8.0,
            step_secs: 60,
            warmup_secs: None,
        }
    }
}

/// What one policy achieved over the measured window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimResult {
    /// [`Policy::as_str`].
    pub policy: &'static str,
    /// The largest sampled lag of any volume, in seconds.
    pub worst_lag_secs: u64,
    /// The lower median of all sampled lags, in seconds.
    pub p50_lag_secs: u64,
    /// Breach episodes: a volume past its RPO target at a sample after being within it at the
    /// previous one (or at the first sample).
    pub breaches: u64,
    /// Copies completed in the measured window.
    pub copies: u64,
    /// The largest sampled `lag − rpo` of any volume, in seconds (negative: every volume always
    /// within target by that margin).
    pub worst_lateness_secs: i64,
    /// The largest sampled `lag / rpo` of any volume (above 1: some volume past target).
    pub worst_lag_ratio: f64,
    /// The largest sampled lag per tier, in seconds.
    pub worst_lag_by_tier: BTreeMap<u8, u64>,
    /// Share of slot time spent copying in the measured window (1.0 = saturated).
    pub slot_utilisation: f64,
    /// Lag samples taken (volumes × sampling instants).
    pub samples: u64,
}

/// How long one copy of `size_gib` takes, in ms (at least 1; `i64::MAX` when it never ends).
fn copy_duration_ms(size_gib: u64, gib_per_sec: f64) -> i64 {
    if gib_per_sec.is_finite() && gib_per_sec > 0.0 {
        ((size_gib as f64 / gib_per_sec) * 1000.0).round().max(1.0) as i64
    } else {
        i64::MAX
    }
}

/// Slot time demanded per second of slot capacity if every snapshot were copied:
/// `Σ copy duration / snapshot period ÷ in_flight`. Above 1 the slots are necessarily
/// saturated and some snapshots are superseded before they are copied. Infinite with no slots.
pub fn offered_load(estate: &SimEstate, cfg: &SimConfig) -> f64 {
    let demand: f64 = estate
        .volumes
        .iter()
        .map(|v| {
            copy_duration_ms(v.size_gib, cfg.gib_per_sec_per_copy) as f64
                / secs_to_ms(v.snapshot_every_secs.max(1)) as f64
        })
        .sum();
    if cfg.in_flight == 0 {
        f64::INFINITY
    } else {
        demand / f64::from(cfg.in_flight)
    }
}

/// Per-volume simulator state beside the scheduler's [`Protected`] view.
struct VolumeState {
    every_ms: i64,
    duration_ms: i64,
    /// The snapshot being copied while in flight.
    copying_ms: Option<i64>,
    /// The oldest snapshot not covered by a started copy (FIFO's queue position).
    oldest_uncopied_ms: Option<i64>,
    /// Past target at the previous sample.
    past: bool,
}

/// Runs `policy` on `estate` and reports the lags it achieves. Deterministic.
pub fn simulate(estate: &SimEstate, cfg: &SimConfig, policy: Policy) -> SimResult {
    let warmup_ms = secs_to_ms(cfg.warmup_secs.unwrap_or_else(|| estate.max_rpo_secs()));
    let end_ms = warmup_ms.saturating_add(secs_to_ms(cfg.horizon_secs));
    let step_ms = secs_to_ms(cfg.step_secs.max(1));
    let limits = Limits {
        in_flight: BTreeMap::from([(CopyKind::EbsSnapshot, cfg.in_flight)]),
    };

    let mut protected = Vec::with_capacity(estate.volumes.len());
    let mut states = Vec::with_capacity(estate.volumes.len());
    let mut snapshots = BinaryHeap::new();
    for (i, volume) in estate.volumes.iter().enumerate() {
        let every_ms = secs_to_ms(volume.snapshot_every_secs.max(1));
        let first_ms = secs_to_ms(volume.first_snapshot_at_secs);
        let initial = first_ms.saturating_sub(every_ms);
        protected.push(Protected {
            kind: CopyKind::EbsSnapshot,
            resource_id: format!("vol-{i:08}"),
            tier: volume.tier,
            rpo_secs: volume.rpo_secs,
            newest_source_ms: Some(initial),
            copied_source_ms: Some(initial),
            in_flight: false,
            size_gib: volume.size_gib,
        });
        states.push(VolumeState {
            every_ms,
            duration_ms: copy_duration_ms(volume.size_gib, cfg.gib_per_sec_per_copy),
            copying_ms: None,
            oldest_uncopied_ms: None,
            past: false,
        });
        if first_ms <= end_ms {
            snapshots.push(Reverse((first_ms, i)));
        }
    }

    // The pending queue, ordered by the policy's key (deadline, or queue position for FIFO).
    let key = |p: &Protected, s: &VolumeState| match policy {
        Policy::Fifo => s.oldest_uncopied_ms.unwrap_or(i64::MIN),
        Policy::Pilotlight | Policy::EarliestDeadlineFirst => p.deadline_ms(),
    };
    let mut pending: BTreeSet<(i64, usize)> = BTreeSet::new();
    let mut completions: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
    let mut running: u32 = 0;

    let samples_per_volume = usize::try_from((end_ms - warmup_ms) / step_ms + 1).unwrap_or(0);
    let mut lags: Vec<u64> = Vec::with_capacity(samples_per_volume * estate.volumes.len());
    let mut result = SimResult {
        policy: policy.as_str(),
        worst_lag_secs: 0,
        p50_lag_secs: 0,
        breaches: 0,
        copies: 0,
        worst_lateness_secs: i64::MIN,
        worst_lag_ratio: 0.0,
        worst_lag_by_tier: BTreeMap::new(),
        slot_utilisation: 0.0,
        samples: 0,
    };
    let mut busy_slot_ms: f64 = 0.0;
    let mut previous_ms = 0_i64;
    let mut next_sample_ms = warmup_ms;

    loop {
        let next_snapshot = snapshots.peek().map_or(i64::MAX, |Reverse((t, _))| *t);
        let next_completion = completions.peek().map_or(i64::MAX, |Reverse((t, _))| *t);
        let now = next_snapshot.min(next_completion).min(next_sample_ms);
        if now > end_ms {
            break;
        }
        busy_slot_ms += f64::from(running) * window_overlap(previous_ms, now, warmup_ms, end_ms);
        previous_ms = now;

        while let Some(&Reverse((t, i))) = completions.peek() {
            if t != now {
                break;
            }
            completions.pop();
            running = running.saturating_sub(1);
            let p = &mut protected[i];
            p.in_flight = false;
            p.copied_source_ms = states[i].copying_ms.take();
            if now >= warmup_ms {
                result.copies += 1;
            }
            if p.needs_copy() {
                pending.insert((key(p, &states[i]), i));
            }
        }

        while let Some(&Reverse((t, i))) = snapshots.peek() {
            if t != now {
                break;
            }
            snapshots.pop();
            let (p, s) = (&mut protected[i], &mut states[i]);
            let was_pending = p.needs_copy();
            p.newest_source_ms = Some(now);
            s.oldest_uncopied_ms.get_or_insert(now);
            if !p.in_flight && !was_pending {
                pending.insert((key(p, s), i));
            }
            let next = now.saturating_add(s.every_ms);
            if next <= end_ms {
                snapshots.push(Reverse((next, i)));
            }
        }

        if running < cfg.in_flight && !pending.is_empty() {
            let starts: Vec<usize> = match policy {
                Policy::Pilotlight => {
                    let picked = pick(&protected, &limits, now);
                    for &i in &picked {
                        pending.remove(&(key(&protected[i], &states[i]), i));
                    }
                    picked
                }
                Policy::Fifo | Policy::EarliestDeadlineFirst => {
                    let free = (cfg.in_flight - running) as usize;
                    (0..free)
                        .map_while(|_| pending.pop_first().map(|(_, i)| i))
                        .collect()
                }
            };
            for i in starts {
                let (p, s) = (&mut protected[i], &mut states[i]);
                p.in_flight = true;
                s.copying_ms = p.newest_source_ms;
                s.oldest_uncopied_ms = None;
                running += 1;
                completions.push(Reverse((now.saturating_add(s.duration_ms), i)));
            }
        }

        if now == next_sample_ms {
            for (p, s) in protected.iter().zip(states.iter_mut()) {
                let lag = p.lag_secs(now).unwrap_or(u64::MAX);
                lags.push(lag);
                result.worst_lag_secs = result.worst_lag_secs.max(lag);
                let tier_worst = result.worst_lag_by_tier.entry(p.tier).or_insert(0);
                *tier_worst = (*tier_worst).max(lag);
                let lateness =
                    i64::try_from(i128::from(lag) - i128::from(p.rpo_secs)).unwrap_or(i64::MAX);
                result.worst_lateness_secs = result.worst_lateness_secs.max(lateness);
                if p.rpo_secs > 0 {
                    result.worst_lag_ratio =
                        result.worst_lag_ratio.max(lag as f64 / p.rpo_secs as f64);
                } else if lag > 0 {
                    result.worst_lag_ratio = f64::INFINITY;
                }
                let past = lag > p.rpo_secs;
                if past && !s.past {
                    result.breaches += 1;
                }
                s.past = past;
            }
            next_sample_ms = next_sample_ms.saturating_add(step_ms);
        }
    }
    busy_slot_ms += f64::from(running) * window_overlap(previous_ms, end_ms, warmup_ms, end_ms);

    result.samples = lags.len() as u64;
    result.p50_lag_secs = lower_median(&mut lags).unwrap_or(0);
    if result.samples == 0 {
        result.worst_lateness_secs = 0;
    }
    let capacity_ms = f64::from(cfg.in_flight) * (end_ms - warmup_ms) as f64;
    if capacity_ms > 0.0 {
        result.slot_utilisation = busy_slot_ms / capacity_ms;
    }
    result
}

/// Length of `[from, to]` inside `[start, end]`, in ms.
fn window_overlap(from: i64, to: i64, start: i64, end: i64) -> f64 {
    (to.min(end) - from.max(start)).max(0) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(tier: u8, rpo: u64, size: u64, every: u64, first: u64) -> SimVolume {
        SimVolume {
            tier,
            rpo_secs: rpo,
            size_gib: size,
            snapshot_every_secs: every,
            first_snapshot_at_secs: first,
        }
    }

    #[test]
    fn synthetic_estates_are_deterministic_and_mixed() {
        assert_eq!(synthetic(7, 500), synthetic(7, 500));
        assert_ne!(synthetic(7, 500), synthetic(8, 500));
        assert!(synthetic(1, 0).volumes.is_empty());
        let estate = synthetic(11, 10_000);
        let mut per_tier = BTreeMap::new();
        for v in &estate.volumes {
            *per_tier.entry(v.tier).or_insert(0u32) += 1;
            let &(_, _, rpo, every) = SYNTHETIC_TIERS
                .iter()
                .find(|t| t.0 == v.tier)
                .expect("a known tier");
            assert_eq!((v.rpo_secs, v.snapshot_every_secs), (rpo, every));
            assert!(v.first_snapshot_at_secs < every);
            assert!((8..=2000).contains(&v.size_gib), "{v:?}");
        }
        // 20 / 30 / 50 %, within sampling noise.
        assert!((1_800..2_200).contains(&per_tier[&1]), "{per_tier:?}");
        assert!((2_700..3_300).contains(&per_tier[&2]), "{per_tier:?}");
        assert!((4_500..5_500).contains(&per_tier[&3]), "{per_tier:?}");
        // Skewed small: the median well below the mean, both ends reached.
        let mut sizes: Vec<u64> = estate.volumes.iter().map(|v| v.size_gib).collect();
        let mean = sizes.iter().sum::<u64>() as f64 / sizes.len() as f64;
        let median = lower_median(&mut sizes).unwrap_or(0);
        assert!((150.0..260.0).contains(&mean), "mean {mean}");
        assert!((25..40).contains(&median), "median {median}");
        assert_eq!(sizes.iter().min(), Some(&8));
        assert!(*sizes.iter().max().unwrap_or(&0) > 1900);
        assert_eq!(estate.max_rpo_secs(), 86_400);
    }

    #[test]
    fn offered_load_is_demand_over_slots() {
        let estate = SimEstate {
            volumes: vec![volume(1, 3600, 9, 900, 0), volume(2, 3600, 18, 900, 0)],
        };
        let cfg = SimConfig {
            in_flight: 2,
            gib_per_sec_per_copy: 0.1,
            ..SimConfig::default()
        };
        // (90 s + 180 s) / 900 s over 2 slots.
        assert!((offered_load(&estate, &cfg) - 0.15).abs() < 1e-12);
        let none = SimConfig {
            in_flight: 0,
            ..cfg
        };
        assert!(offered_load(&estate, &none).is_infinite());
        // The default configuration saturates a 3,000-volume synthetic estate.
        let load = offered_load(&synthetic(1, 3000), &SimConfig::default());
        assert!((1.1..1.3).contains(&load), "offered load {load}");
    }

    #[test]
    fn one_volume_with_spare_capacity_lags_one_period_plus_the_copy() {
        // Snapshot every 900 s, copy 90 s: just before each copy ends the DR copy is of the
        // previous snapshot, so the sampled worst is at 900 k + 60: 960 s.
        let estate = SimEstate {
            volumes: vec![volume(1, 3600, 9, 900, 0)],
        };
        let cfg = SimConfig {
            in_flight: 2,
            gib_per_sec_per_copy: 0.1,
            ..SimConfig::default()
        };
        for policy in Policy::ALL {
            let r = simulate(&estate, &cfg, policy);
            assert_eq!(r.policy, policy.as_str());
            assert_eq!(r.worst_lag_secs, 960, "{r:?}");
            // Per 900 s period the samples are 900, 960, 120, 180 … 840: lower median 540.
            assert_eq!(r.p50_lag_secs, 540, "{r:?}");
            assert_eq!(r.breaches, 0);
            // Completions at 900 k + 90 inside [3600, 90000]: k = 4 … 99.
            assert_eq!(r.copies, 96);
            assert_eq!(r.worst_lateness_secs, 960 - 3600);
            assert!((r.worst_lag_ratio - 960.0 / 3600.0).abs() < 1e-12, "{r:?}");
            assert_eq!(r.worst_lag_by_tier, BTreeMap::from([(1, 960)]));
            assert_eq!(r.samples, 1441);
            // One slot of two busy 90 s out of every 900 s.
            assert!((r.slot_utilisation - 0.05).abs() < 1e-3, "{r:?}");
        }
    }

    /// One slot. A 10-minute tier-1 copy (C) occupies it while a huge tier-3 copy (A, six
    /// hours, not urgent) and then a tiny urgent tier-1 copy (B) queue up. FIFO starts A first
    /// and B waits six hours; EDF and pilotlight start B first.
    #[test]
    fn fifo_loses_to_edf_when_a_big_tier_3_copy_is_queued_before_an_urgent_tier_1() {
        let estate = SimEstate {
            volumes: vec![
                volume(1, 3_600, 60, 3_600, 0),   // C: 600 s copies
                volume(3, 86_400, 2_160, 600, 0), // A: 21 600 s copies
                volume(1, 3_600, 6, 1_800, 300),  // B: 60 s copies
            ],
        };
        let cfg = SimConfig {
            horizon_secs: 23_000,
            in_flight: 1,
            gib_per_sec_per_copy: 0.1,
            step_secs: 60,
            warmup_secs: Some(0),
        };
        let edf = simulate(&estate, &cfg, Policy::EarliestDeadlineFirst);
        let ours = simulate(&estate, &cfg, Policy::Pilotlight);
        let fifo = simulate(&estate, &cfg, Policy::Fifo);

        // EDF: C 0–600, B 600–660, A 660–22 260, C 22 260–22 860, B 22 860–22 920. Worst: C
        // (copied source 0) at 22 800 and A (copied −600) at 22 200, both 22 800 s.
        assert_eq!(edf.worst_lag_secs, 22_800, "{edf:?}");
        assert_eq!(
            edf.worst_lag_by_tier,
            BTreeMap::from([(1, 22_800), (3, 22_800)])
        );
        assert_eq!(edf.copies, 5);
        // C is past target until its first copy lands at 600 and again from 3 660; B from
        // 3 960 (its copied source is 300).
        assert_eq!(edf.breaches, 3);
        // FIFO: C 0–600, A 600–22 200, B 22 200–22 260: B's copied source (−1 500) is
        // 23 700 s old at 22 200.
        assert_eq!(fifo.worst_lag_secs, 23_700, "{fifo:?}");
        assert_eq!(
            fifo.worst_lag_by_tier,
            BTreeMap::from([(1, 23_700), (3, 22_740)])
        );
        assert_eq!(fifo.copies, 3);
        assert!(fifo.worst_lag_secs > edf.worst_lag_secs);
        // The production scheduler makes EDF's choices here.
        assert_eq!(
            SimResult {
                policy: "edf",
                ..ours
            },
            edf
        );
        assert!((edf.slot_utilisation - 1.0).abs() < 1e-9);
    }

    #[test]
    fn copies_that_never_finish_leave_lags_growing() {
        let estate = SimEstate {
            volumes: vec![volume(2, 600, 10, 300, 0)],
        };
        let cfg = SimConfig {
            horizon_secs: 3_000,
            in_flight: 1,
            gib_per_sec_per_copy: 0.0,
            step_secs: 60,
            warmup_secs: Some(0),
        };
        let r = simulate(&estate, &cfg, Policy::Pilotlight);
        // Copied source at −300 s forever: worst at the last sample (3 000 s), 3 300 s.
        assert_eq!(r.worst_lag_secs, 3_300);
        assert_eq!(r.copies, 0);
        assert_eq!(r.breaches, 1);
        assert!((r.slot_utilisation - 1.0).abs() < 1e-9, "{r:?}");
        let idle = simulate(
            &estate,
            &SimConfig {
                in_flight: 0,
                ..cfg
            },
            Policy::Fifo,
        );
        assert_eq!((idle.worst_lag_secs, idle.copies), (3_300, 0));
        assert_eq!(idle.slot_utilisation, 0.0);
    }

    /// Random small saturated estates: pilotlight's worst lag stays within 1.1× of EDF's.
    #[test]
    fn property_pilotlight_is_within_a_tenth_of_edf() {
        let mut rng = SplitMix64::new(0xC0FFEE);
        let mut equal = 0;
        let cases = 120;
        for case in 0..cases {
            let estate = synthetic(rng.next_u64(), 2 + rng.below(25) as usize);
            let in_flight = 1 + rng.below(4) as u32;
            // Offered load between 0.5 and 2.5 (copying every snapshot).
            let target = 0.5 + 2.0 * rng.next_f64();
            let unit = SimConfig {
                in_flight,
                gib_per_sec_per_copy: 1.0,
                ..SimConfig::default()
            };
            let cfg = SimConfig {
                horizon_secs: 6 * 3600,
                gib_per_sec_per_copy: offered_load(&estate, &unit) / target,
                ..unit
            };
            let edf = simulate(&estate, &cfg, Policy::EarliestDeadlineFirst);
            let ours = simulate(&estate, &cfg, Policy::Pilotlight);
            assert!(
                ours.worst_lag_secs as f64 <= 1.1 * edf.worst_lag_secs as f64,
                "case {case}: {ours:?} vs {edf:?} on {estate:?} {cfg:?}"
            );
            assert_eq!(ours.samples, edf.samples);
            if ours.worst_lag_secs == edf.worst_lag_secs {
                equal += 1;
            }
        }
        // They differ only by tie-breaks (tier then id against index).
        assert!(equal * 10 >= cases * 9, "{equal} of {cases} equal");
    }

    /// A saturated mid-size estate: the slots stay busy and pilotlight matches EDF.
    #[test]
    fn saturated_estate_keeps_slots_busy_and_pilotlight_matches_edf() {
        let estate = synthetic(3, 300);
        let unit = SimConfig {
            gib_per_sec_per_copy: 1.0,
            ..SimConfig::default()
        };
        let cfg = SimConfig {
            gib_per_sec_per_copy: offered_load(&estate, &unit) / 1.3,
            ..unit
        };
        let results: Vec<SimResult> = Policy::ALL
            .into_iter()
            .map(|p| simulate(&estate, &cfg, p))
            .collect();
        let (ours, edf) = (&results[0], &results[1]);
        for r in &results {
            assert!(r.slot_utilisation > 0.9, "{r:?}");
            assert_eq!(r.samples, 300 * 1441);
            assert!(r.copies > 0);
        }
        assert!(ours.worst_lag_secs as f64 <= 1.1 * edf.worst_lag_secs as f64);
        assert_eq!(
            simulate(&estate, &cfg, Policy::Pilotlight),
            *ours,
            "deterministic"
        );
    }
}
