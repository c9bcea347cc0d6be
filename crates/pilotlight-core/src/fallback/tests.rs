//! Plan B with hand-computed expectations: sizes, neighbours, count scaling and rounding, the
//! utilisation rule, alternative families, the option order, the unavailable cache.

use std::collections::BTreeMap;

use serde_json::json;

use super::SubstitutionReason::{
    AlternativeFamily, NeighbourSize, OtherAvailabilityZone, SmallerFootprint,
};
use super::*;

const GIB: u64 = 1_024;

fn info(vcpus: u32, memory_gib: u64) -> InstanceTypeInfo {
    InstanceTypeInfo {
        vcpus,
        memory_mib: memory_gib * GIB,
    }
}

/// vCPUs and memory as DescribeInstanceTypes reports them.
fn catalog() -> BTreeMap<String, InstanceTypeInfo> {
    [
        ("r5.large", info(2, 16)),
        ("r5.xlarge", info(4, 32)),
        ("r5.2xlarge", info(8, 64)),
        ("r5.4xlarge", info(16, 128)),
        ("r5.24xlarge", info(96, 768)),
        ("r5.metal", info(96, 768)),
        ("r5a.xlarge", info(4, 32)),
        ("r5a.2xlarge", info(8, 64)),
        ("r6i.xlarge", info(4, 32)),
        ("r6i.2xlarge", info(8, 64)),
        ("m5.xlarge", info(4, 16)),
        ("m5.2xlarge", info(8, 32)),
        (
            "t3.micro",
            InstanceTypeInfo {
                vcpus: 2,
                memory_mib: 1_024,
            },
        ),
        (
            "t3.small",
            InstanceTypeInfo {
                vcpus: 2,
                memory_mib: 2_048,
            },
        ),
    ]
    .into_iter()
    .map(|(name, info)| (name.to_owned(), info))
    .collect()
}

fn cat(name: &str) -> InstanceTypeInfo {
    catalog()[name]
}

fn request(instance_type: &str, az: &str, count: u32) -> LaunchRequest {
    LaunchRequest {
        instance_type: instance_type.to_owned(),
        availability_zone: az.to_owned(),
        count,
        allowed_azs: vec![
            "us-west-2a".to_owned(),
            "us-west-2b".to_owned(),
            "us-west-2c".to_owned(),
        ],
        instance_ids: (1..=count).map(|i| format!("i-{i}")).collect(),
        keep_count: false,
    }
}

fn util(cpu_peak_pct: f64, mem_peak_pct: Option<f64>, samples: u32) -> Utilisation {
    Utilisation {
        cpu_peak_pct,
        cpu_p95_pct: cpu_peak_pct / 2.0,
        mem_peak_pct,
        mem_p95_pct: mem_peak_pct.map(|m| m / 2.0),
        samples,
        window_days: 14,
    }
}

/// The same utilisation for instances `i-1` … `i-count`.
fn utilisation_of(count: u32, u: Utilisation) -> BTreeMap<String, Utilisation> {
    (1..=count).map(|i| (format!("i-{i}"), u)).collect()
}

fn none() -> BTreeMap<String, Utilisation> {
    BTreeMap::new()
}

/// The (type, AZ, count, reason) of each option.
fn summary(options: &[Attempt]) -> Vec<(String, String, u32, Option<SubstitutionReason>)> {
    options
        .iter()
        .map(|a| {
            (
                a.instance_type.clone(),
                a.availability_zone.clone(),
                a.count,
                a.substitution.as_ref().map(|s| s.reason),
            )
        })
        .collect()
}

fn row(
    instance_type: &str,
    az: &str,
    count: u32,
    reason: Option<SubstitutionReason>,
) -> (String, String, u32, Option<SubstitutionReason>) {
    (instance_type.to_owned(), az.to_owned(), count, reason)
}

/// The neighbour options (type, count, reason) in the requested AZ.
fn neighbour_options(
    req: &LaunchRequest,
    utilisation: &BTreeMap<String, Utilisation>,
    policy: &FallbackPolicy,
) -> Vec<(String, u32, SubstitutionReason)> {
    candidates(req, &catalog(), utilisation, policy)
        .into_iter()
        .filter(|a| a.availability_zone == req.availability_zone)
        .filter_map(|a| {
            let reason = a.substitution?.reason;
            matches!(
                reason,
                SubstitutionReason::NeighbourSize | SubstitutionReason::SmallerFootprint
            )
            .then_some((a.instance_type, a.count, reason))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Sizes and neighbours

#[test]
fn sizes_parse_and_rank_in_aws_order() {
    assert_eq!(parse_size("t3.nano"), Some(Size::Nano));
    assert_eq!(parse_size("r5.xlarge"), Some(Size::XLarge(1)));
    assert_eq!(parse_size("r5.2xlarge"), Some(Size::XLarge(2)));
    assert_eq!(parse_size("c7i.48xlarge"), Some(Size::XLarge(48)));
    assert_eq!(parse_size("u-6tb1.112xlarge"), Some(Size::XLarge(112)));
    assert_eq!(parse_size("r5.metal"), Some(Size::Metal(0)));
    assert_eq!(parse_size("m7i.metal-24xl"), Some(Size::Metal(24)));
    for bad in [
        "r5",
        "r5.",
        "r5.huge",
        "r5.1xlarge",
        "r5.0xlarge",
        "r5.02xlarge",
        "r5.-2xlarge",
        "r5.2xlarge2",
        "r5.metal-xl",
        "r5.Large",
    ] {
        assert_eq!(parse_size(bad), None, "{bad}");
    }

    let order = [
        "t.nano",
        "t.micro",
        "t.small",
        "t.medium",
        "t.large",
        "t.xlarge",
        "t.2xlarge",
        "t.3xlarge",
        "t.4xlarge",
        "t.9xlarge",
        "t.12xlarge",
        "t.24xlarge",
        "t.48xlarge",
        "t.metal",
        "t.metal-24xl",
        "t.metal-48xl",
    ];
    let ranks: Vec<u32> = order.iter().map(|t| size_rank(t).unwrap_or(0)).collect();
    assert_eq!(&ranks[..7], &[1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(size_rank("t.48xlarge"), Some(53));
    assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{ranks:?}");
}

#[test]
fn neighbours_are_the_adjacent_catalog_sizes_of_the_family() {
    let catalog = catalog();
    assert_eq!(
        neighbours("r5.2xlarge", &catalog),
        ["r5.xlarge", "r5.4xlarge"]
    );
    // Smallest in the catalog: only a larger neighbour.
    assert_eq!(neighbours("r5.large", &catalog), ["r5.xlarge"]);
    // Gaps are skipped; metal is never a neighbour.
    assert_eq!(neighbours("r5.24xlarge", &catalog), ["r5.4xlarge"]);
    // The type itself need not be in the catalog.
    assert_eq!(
        neighbours("r5.8xlarge", &catalog),
        ["r5.4xlarge", "r5.24xlarge"]
    );
    // Other families do not count, even with a common prefix.
    assert_eq!(neighbours("r5a.xlarge", &catalog), ["r5a.2xlarge"]);
    // Metal has none, nor does an unknown family or an unparsable size.
    assert!(neighbours("r5.metal", &catalog).is_empty());
    assert!(neighbours("x9.large", &catalog).is_empty());
    assert!(neighbours("r5", &catalog).is_empty());
    assert!(neighbours("r5.huge", &catalog).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Counts

#[test]
fn spec_examples_scale_by_the_size_ratio() {
    // r5.2xlarge × 1 → r5.xlarge × 2
    assert_eq!(
        scaled_count(1, cat("r5.2xlarge"), cat("r5.xlarge")),
        Some(2)
    );
    // r5.xlarge × 2 → r5.2xlarge × 1
    assert_eq!(
        scaled_count(2, cat("r5.xlarge"), cat("r5.2xlarge")),
        Some(1)
    );
}

#[test]
fn scaling_rounds_up_and_covers_memory() {
    // 3 × 4 vCPUs = 12 → ⌈12 / 8⌉ = 2 × 2xlarge (16 vCPUs, never less).
    assert_eq!(
        scaled_count(3, cat("r5.xlarge"), cat("r5.2xlarge")),
        Some(2)
    );
    assert_eq!(
        scaled_count(1, cat("r5.xlarge"), cat("r5.2xlarge")),
        Some(1)
    );
    // 5 × large = 10 vCPUs → 1 × 4xlarge.
    assert_eq!(scaled_count(5, cat("r5.large"), cat("r5.4xlarge")), Some(1));
    // Equal vCPUs, half the memory: memory decides. 3 × 2 GiB → 6 × 1 GiB.
    assert_eq!(scaled_count(3, cat("t3.small"), cat("t3.micro")), Some(6));
    // The other way the vCPUs decide: 6 × 2 vCPUs stay 6 × 2 vCPUs.
    assert_eq!(scaled_count(6, cat("t3.micro"), cat("t3.small")), Some(6));
    // m5.2xlarge (8 vCPU, 32 GiB) × 3 → r5.xlarge: ⌈24/4⌉ = 6 by CPU, ⌈96/32⌉ = 3 by memory.
    assert_eq!(
        scaled_count(3, cat("m5.2xlarge"), cat("r5.xlarge")),
        Some(6)
    );
    // A type without vCPUs or memory cannot hold anything.
    assert_eq!(
        count_for(
            Footprint::of(cat("r5.xlarge"), 1),
            InstanceTypeInfo {
                vcpus: 0,
                memory_mib: 1
            }
        ),
        None
    );
    // Nothing needed is still one instance.
    assert_eq!(count_for(Footprint::default(), cat("r5.large")), Some(1));
}

#[test]
fn peak_need_adds_headroom_rounds_up_and_caps_at_the_total() {
    // The policy doc's example: 16 × 50 % × 1.2 = 9.6 → 10.
    assert_eq!(peak_need(16, 50.0, 20), 10);
    // 16 × 30 % × 1.2 = 5.76 → 6.
    assert_eq!(peak_need(16, 30.0, 20), 6);
    // Exactly 11, although 25.0 * 35.2 * 125.0 / 10000.0 is 11.000000000000002 in f64.
    assert_eq!(peak_need(25, 35.2, 25), 11);
    // More than the total is capped at it.
    assert_eq!(peak_need(16, 90.0, 20), 16);
    assert_eq!(peak_need(16, 250.0, 0), 16);
    assert_eq!(peak_need(16, 0.0, 20), 0);
    // No usable peak: the whole total.
    assert_eq!(peak_need(16, f64::NAN, 20), 16);
    assert_eq!(peak_need(16, -1.0, 20), 16);
}

#[test]
fn group_peak_is_the_busiest_instance_and_needs_history_for_all() {
    let ids: Vec<String> = ["i-1", "i-2"].map(str::to_owned).to_vec();
    let both = BTreeMap::from([
        ("i-1".to_owned(), util(10.0, Some(70.0), 24)),
        ("i-2".to_owned(), util(30.0, Some(40.0), 24)),
    ]);
    assert_eq!(
        group_peak(&ids, &both, 24),
        Some(GroupPeak {
            cpu_pct: 30.0,
            mem_pct: Some(70.0)
        })
    );
    // One instance without a memory peak: memory unknown.
    let mut partial_mem = both.clone();
    partial_mem.insert("i-2".to_owned(), util(30.0, None, 24));
    assert_eq!(
        group_peak(&ids, &partial_mem, 24),
        Some(GroupPeak {
            cpu_pct: 30.0,
            mem_pct: None
        })
    );
    // Peaks above 100 % count as 100 %.
    let over = utilisation_of(2, util(130.0, Some(101.0), 24));
    assert_eq!(
        group_peak(&ids, &over, 24),
        Some(GroupPeak {
            cpu_pct: 100.0,
            mem_pct: Some(100.0)
        })
    );
    // No history for one instance, too few samples, a bad peak, no instances: no peak.
    let mut missing = both.clone();
    missing.remove("i-2");
    assert_eq!(group_peak(&ids, &missing, 24), None);
    assert_eq!(group_peak(&ids, &both, 25), None);
    let nan = utilisation_of(2, util(f64::NAN, None, 24));
    assert_eq!(group_peak(&ids, &nan, 24), None);
    assert_eq!(group_peak(&[], &both, 0), None);
}

// ---------------------------------------------------------------------------------------------
// The utilisation rule

#[test]
fn utilisation_allows_a_smaller_footprint_when_the_peak_fits() {
    let req = request("r5.xlarge", "us-west-2a", 4);
    // Busiest instance: 30 % CPU, 40 % memory. Group: 16 vCPUs, 128 GiB.
    // Needed: ⌈16 × 0.3 × 1.2⌉ = 6 vCPUs, ⌈131072 × 0.4 × 1.2⌉ = 62915 MiB.
    let mut utilisation = utilisation_of(4, util(30.0, Some(40.0), 24));
    utilisation.insert("i-1".to_owned(), util(10.0, Some(5.0), 48));
    // r5.large (2 vCPU, 16 GiB): max(3, ⌈62915/16384⌉ = 4) = 4.
    // r5.2xlarge (8 vCPU, 64 GiB): max(1, 1) = 1 — the 4 × xlarge → 1 × 2xlarge.
    assert_eq!(
        neighbour_options(&req, &utilisation, &FallbackPolicy::default()),
        [
            ("r5.large".to_owned(), 4, SmallerFootprint),
            ("r5.2xlarge".to_owned(), 1, SmallerFootprint),
        ]
    );
    // More headroom (100 %): 10 vCPUs, 104858 MiB → large max(5, 7) = 7, 2xlarge 2, which
    // holds the whole group again.
    let generous = FallbackPolicy {
        headroom_pct: 100,
        ..FallbackPolicy::default()
    };
    assert_eq!(
        neighbour_options(&req, &utilisation, &generous),
        [
            ("r5.large".to_owned(), 7, SmallerFootprint),
            ("r5.2xlarge".to_owned(), 2, NeighbourSize),
        ]
    );
}

#[test]
fn utilisation_refuses_a_smaller_footprint_when_the_peak_does_not_fit_or_is_unknown() {
    let req = request("r5.xlarge", "us-west-2a", 4);
    let full = [
        ("r5.large".to_owned(), 8, NeighbourSize),
        ("r5.2xlarge".to_owned(), 2, NeighbourSize),
    ];
    let policy = FallbackPolicy::default();
    // 90 % CPU: ⌈16 × 0.9 × 1.2⌉ = 18 > 16, the whole group is needed.
    let busy = utilisation_of(4, util(90.0, Some(10.0), 24));
    assert_eq!(neighbour_options(&req, &busy, &policy), full);
    // No history at all.
    assert_eq!(neighbour_options(&req, &none(), &policy), full);
    // History for three of the four instances.
    let mut partial = utilisation_of(4, util(10.0, Some(10.0), 24));
    partial.remove("i-4");
    assert_eq!(neighbour_options(&req, &partial, &policy), full);
    // Too few data points.
    let thin = utilisation_of(4, util(10.0, Some(10.0), 23));
    assert_eq!(neighbour_options(&req, &thin, &policy), full);
    // Shrinking switched off.
    let idle = utilisation_of(4, util(10.0, Some(10.0), 24));
    let off = FallbackPolicy {
        smaller_footprint: false,
        ..FallbackPolicy::default()
    };
    assert_eq!(neighbour_options(&req, &idle, &off), full);
}

#[test]
fn memory_is_kept_unless_its_peak_is_known() {
    let req = request("r5.xlarge", "us-west-2a", 4);
    let policy = FallbackPolicy::default();
    // 30 % CPU (6 vCPUs needed) but no memory metric: all 128 GiB stay.
    // large: max(3, 8) = 8; 2xlarge: max(1, 2) = 2 — no smaller footprint.
    let cpu_only = utilisation_of(4, util(30.0, None, 24));
    assert_eq!(
        neighbour_options(&req, &cpu_only, &policy),
        [
            ("r5.large".to_owned(), 8, NeighbourSize),
            ("r5.2xlarge".to_owned(), 2, NeighbourSize),
        ]
    );
    // Idle CPU (⌈16 × 0.1 × 1.2⌉ = 2 vCPUs) but 95 % memory (capped at 128 GiB): memory
    // decides, nothing shrinks.
    let memory_bound = utilisation_of(4, util(10.0, Some(95.0), 24));
    assert_eq!(
        neighbour_options(&req, &memory_bound, &policy),
        [
            ("r5.large".to_owned(), 8, NeighbourSize),
            ("r5.2xlarge".to_owned(), 2, NeighbourSize),
        ]
    );
    // 60 % memory: ⌈131072 × 0.72⌉ = 94372 MiB → large max(1, 6) = 6, 2xlarge max(1, 2) = 2.
    let half = utilisation_of(4, util(10.0, Some(60.0), 24));
    assert_eq!(
        neighbour_options(&req, &half, &policy),
        [
            ("r5.large".to_owned(), 6, SmallerFootprint),
            ("r5.2xlarge".to_owned(), 2, NeighbourSize),
        ]
    );
}

#[test]
fn keep_count_takes_only_neighbours_that_hold_the_need_at_the_same_count() {
    let mut req = request("r5.2xlarge", "us-west-2a", 1);
    req.keep_count = true;
    let policy = FallbackPolicy::default();
    // Without history: 1 × xlarge is too small; 1 × 4xlarge holds it.
    assert_eq!(
        neighbour_options(&req, &none(), &policy),
        [("r5.4xlarge".to_owned(), 1, NeighbourSize)]
    );
    // 40 % peaks: ⌈8 × 0.48⌉ = 4 vCPUs, ⌈65536 × 0.48⌉ = 31458 MiB → 1 × xlarge fits.
    let light = utilisation_of(1, util(40.0, Some(40.0), 24));
    assert_eq!(
        neighbour_options(&req, &light, &policy),
        [
            ("r5.xlarge".to_owned(), 1, SmallerFootprint),
            ("r5.4xlarge".to_owned(), 1, NeighbourSize),
        ]
    );
    // Two fixed instances keep their count on the larger size, even though one would do.
    let mut pair = request("r5.xlarge", "us-west-2a", 2);
    pair.keep_count = true;
    assert_eq!(
        neighbour_options(&pair, &none(), &policy),
        [("r5.2xlarge".to_owned(), 2, NeighbourSize)]
    );
}

// ---------------------------------------------------------------------------------------------
// Alternative families and the whole order

fn policy_with_alternatives() -> FallbackPolicy {
    FallbackPolicy {
        alternative_families: BTreeMap::from([(
            "r5".to_owned(),
            // m5 has half the memory, r7z is not in the catalog, r5 is the type itself.
            ["r5a", "m5", "r6i", "r7z", "r5"]
                .map(str::to_owned)
                .to_vec(),
        )]),
        ..FallbackPolicy::default()
    }
}

#[test]
fn alternative_families_need_equal_vcpus_and_memory() {
    let req = request("r5.xlarge", "us-west-2a", 2);
    let alternatives: Vec<String> =
        candidates(&req, &catalog(), &none(), &policy_with_alternatives())
            .into_iter()
            .filter(|a| a.substitution.as_ref().map(|s| s.reason) == Some(AlternativeFamily))
            .filter(|a| a.availability_zone == "us-west-2a")
            .map(|a| format!("{} x{}", a.instance_type, a.count))
            .collect();
    assert_eq!(alternatives, ["r5a.xlarge x2", "r6i.xlarge x2"]);
    // A family without configured alternatives gets none.
    let m5 = request("m5.xlarge", "us-west-2a", 1);
    assert!(
        candidates(&m5, &catalog(), &none(), &policy_with_alternatives())
            .iter()
            .all(|a| a.substitution.as_ref().map(|s| s.reason) != Some(AlternativeFamily))
    );
}

#[test]
fn candidates_follow_the_documented_order() {
    let req = request("r5.xlarge", "us-west-2b", 2);
    let options = candidates(&req, &catalog(), &none(), &policy_with_alternatives());
    let (a, b, c) = ("us-west-2a", "us-west-2b", "us-west-2c");
    assert_eq!(
        summary(&options),
        [
            row("r5.xlarge", b, 2, None),
            row("r5.xlarge", a, 2, Some(OtherAvailabilityZone)),
            row("r5.xlarge", c, 2, Some(OtherAvailabilityZone)),
            row("r5.large", b, 4, Some(NeighbourSize)),
            row("r5.large", a, 4, Some(NeighbourSize)),
            row("r5.large", c, 4, Some(NeighbourSize)),
            row("r5.2xlarge", b, 1, Some(NeighbourSize)),
            row("r5.2xlarge", a, 1, Some(NeighbourSize)),
            row("r5.2xlarge", c, 1, Some(NeighbourSize)),
            row("r5a.xlarge", b, 2, Some(AlternativeFamily)),
            row("r5a.xlarge", a, 2, Some(AlternativeFamily)),
            row("r5a.xlarge", c, 2, Some(AlternativeFamily)),
            row("r6i.xlarge", b, 2, Some(AlternativeFamily)),
            row("r6i.xlarge", a, 2, Some(AlternativeFamily)),
            row("r6i.xlarge", c, 2, Some(AlternativeFamily)),
        ]
    );
    // Every substitution names the request it replaces.
    for option in &options[1..] {
        let s = option.substitution.as_ref().map(|s| {
            (
                s.from_type.as_str(),
                s.from_az.as_str(),
                s.from_count,
                s.to_type.as_str(),
                s.to_az.as_str(),
                s.to_count,
            )
        });
        assert_eq!(
            s,
            Some((
                "r5.xlarge",
                b,
                2,
                option.instance_type.as_str(),
                option.availability_zone.as_str(),
                option.count,
            ))
        );
    }
}

#[test]
fn a_type_missing_from_the_catalog_only_moves_between_azs() {
    let req = request("r9.xlarge", "us-west-2a", 3);
    let options = candidates(&req, &catalog(), &none(), &policy_with_alternatives());
    assert_eq!(
        summary(&options),
        [
            row("r9.xlarge", "us-west-2a", 3, None),
            row("r9.xlarge", "us-west-2b", 3, Some(OtherAvailabilityZone)),
            row("r9.xlarge", "us-west-2c", 3, Some(OtherAvailabilityZone)),
        ]
    );
}

#[test]
fn the_order_is_deterministic_and_ignores_duplicate_azs() {
    let req = request("r5.xlarge", "us-west-2b", 2);
    let policy = policy_with_alternatives();
    let first = candidates(&req, &catalog(), &none(), &policy);
    assert_eq!(first, candidates(&req, &catalog(), &none(), &policy));
    let mut noisy = req.clone();
    noisy.allowed_azs = [
        "us-west-2b",
        "us-west-2a",
        "us-west-2a",
        "us-west-2c",
        "us-west-2b",
    ]
    .map(str::to_owned)
    .to_vec();
    assert_eq!(candidates(&noisy, &catalog(), &none(), &policy), first);
    // The requested AZ comes first even when the allowed list leaves it out.
    let mut unlisted = req.clone();
    unlisted.allowed_azs = vec!["us-west-2a".to_owned(), "us-west-2c".to_owned()];
    assert_eq!(candidates(&unlisted, &catalog(), &none(), &policy), first);
}

// ---------------------------------------------------------------------------------------------
// next_attempt and the cache

#[test]
fn next_attempt_starts_with_the_request_itself() {
    let req = request("r5.xlarge", "us-west-2a", 2);
    let cache = UnavailableCache::new(600);
    let first = next_attempt(
        &req,
        &[],
        &cache,
        &catalog(),
        &none(),
        &FallbackPolicy::default(),
        0,
    );
    assert_eq!(
        first,
        Some(Attempt {
            instance_type: "r5.xlarge".to_owned(),
            availability_zone: "us-west-2a".to_owned(),
            count: 2,
            substitution: None,
        })
    );
}

#[test]
fn next_attempt_skips_cached_pairs_and_records_the_substitution() {
    let req = request("r5.xlarge", "us-west-2b", 2);
    let policy = FallbackPolicy::default();
    let mut cache = UnavailableCache::from_policy(&policy);
    cache.mark("r5.xlarge", "us-west-2b", 1_000);
    let next = next_attempt(&req, &[], &cache, &catalog(), &none(), &policy, 2_000);
    assert_eq!(
        next.and_then(|a| a.substitution),
        Some(Substitution {
            from_type: "r5.xlarge".to_owned(),
            from_az: "us-west-2b".to_owned(),
            from_count: 2,
            to_type: "r5.xlarge".to_owned(),
            to_az: "us-west-2a".to_owned(),
            to_count: 2,
            reason: OtherAvailabilityZone,
        })
    );
    // The type gone in every AZ: the smaller neighbour in the requested AZ.
    cache.mark("r5.xlarge", "us-west-2a", 1_000);
    cache.mark("r5.xlarge", "us-west-2c", 1_000);
    let next = next_attempt(&req, &[], &cache, &catalog(), &none(), &policy, 2_000);
    assert_eq!(
        next.map(|a| (a.instance_type, a.availability_zone, a.count)),
        Some(("r5.large".to_owned(), "us-west-2b".to_owned(), 4))
    );
}

#[test]
fn spec_examples_through_next_attempt() {
    let policy = FallbackPolicy::default();
    let mut cache = UnavailableCache::from_policy(&policy);
    let mut one_az = request("r5.2xlarge", "us-west-2a", 1);
    one_az.allowed_azs.clear();
    cache.mark("r5.2xlarge", "us-west-2a", 0);
    let next = next_attempt(&one_az, &[], &cache, &catalog(), &none(), &policy, 1);
    assert_eq!(
        next.and_then(|a| a.substitution)
            .map(|s| (s.to_type, s.to_count, s.reason)),
        Some(("r5.xlarge".to_owned(), 2, NeighbourSize))
    );

    let mut two = request("r5.xlarge", "us-west-2a", 2);
    two.allowed_azs.clear();
    let mut cache = UnavailableCache::from_policy(&policy);
    cache.mark("r5.xlarge", "us-west-2a", 0);
    cache.mark("r5.large", "us-west-2a", 0);
    let next = next_attempt(&two, &[], &cache, &catalog(), &none(), &policy, 1);
    assert_eq!(
        next.and_then(|a| a.substitution)
            .map(|s| (s.to_type, s.to_count, s.reason)),
        Some(("r5.2xlarge".to_owned(), 1, NeighbourSize))
    );
}

#[test]
fn tried_attempts_are_skipped_without_the_cache() {
    let req = request("r5.xlarge", "us-west-2a", 2);
    let policy = FallbackPolicy::default();
    let cache = UnavailableCache::from_policy(&policy);
    let catalog = catalog();
    let first = next_attempt(&req, &[], &cache, &catalog, &none(), &policy, 0);
    let tried: Vec<Attempt> = first.into_iter().collect();
    let second = next_attempt(&req, &tried, &cache, &catalog, &none(), &policy, 0);
    assert_eq!(
        second.map(|a| (a.instance_type, a.availability_zone)),
        Some(("r5.xlarge".to_owned(), "us-west-2b".to_owned()))
    );
}

#[test]
fn every_option_is_offered_once_then_none_until_the_ttl_passes() {
    let req = request("r5.xlarge", "us-west-2b", 2);
    let policy = policy_with_alternatives();
    let catalog = catalog();
    let mut cache = UnavailableCache::from_policy(&policy);
    let mut tried = Vec::new();
    let mut now = 10_000;
    while let Some(attempt) = next_attempt(&req, &tried, &cache, &catalog, &none(), &policy, now) {
        assert!(tried.len() < 100, "plan B does not terminate");
        cache.mark(&attempt.instance_type, &attempt.availability_zone, now);
        tried.push(attempt);
        now += 1;
    }
    assert_eq!(tried, candidates(&req, &catalog, &none(), &policy));
    // Exhausted: nothing, whether or not the tried list is passed.
    assert_eq!(
        next_attempt(&req, &[], &cache, &catalog, &none(), &policy, now),
        None
    );
    // Once the first mark (at 10,000) has expired the request itself is offered again.
    let first_expiry = 10_000 + 600_000;
    assert_eq!(
        next_attempt(
            &req,
            &[],
            &cache,
            &catalog,
            &none(),
            &policy,
            first_expiry - 1
        ),
        None
    );
    assert_eq!(
        next_attempt(&req, &[], &cache, &catalog, &none(), &policy, first_expiry)
            .map(|a| a.substitution),
        Some(None)
    );
}

#[test]
fn an_empty_request_has_no_options() {
    let req = request("r5.xlarge", "us-west-2a", 0);
    let policy = FallbackPolicy::default();
    assert!(candidates(&req, &catalog(), &none(), &policy).is_empty());
    let cache = UnavailableCache::from_policy(&policy);
    assert_eq!(
        next_attempt(&req, &[], &cache, &catalog(), &none(), &policy, 0),
        None
    );
}

#[test]
fn unavailable_pairs_expire_after_the_ttl() {
    let mut cache = UnavailableCache::new(600);
    assert_eq!(cache.ttl_ms(), 600_000);
    assert!(cache.is_empty());
    cache.mark("r5.xlarge", "us-west-2a", 1_000);
    assert!(cache.is_unavailable("r5.xlarge", "us-west-2a", 1_000));
    assert!(cache.is_unavailable("r5.xlarge", "us-west-2a", 600_999));
    assert!(!cache.is_unavailable("r5.xlarge", "us-west-2a", 601_000));
    // Only that pair.
    assert!(!cache.is_unavailable("r5.xlarge", "us-west-2b", 1_000));
    assert!(!cache.is_unavailable("r5.2xlarge", "us-west-2a", 1_000));
    // A later mark extends, an earlier one does not shorten.
    cache.mark("r5.xlarge", "us-west-2a", 300_000);
    assert_eq!(
        cache.unavailable_until("r5.xlarge", "us-west-2a"),
        Some(900_000)
    );
    cache.mark("r5.xlarge", "us-west-2a", 0);
    assert_eq!(
        cache.unavailable_until("r5.xlarge", "us-west-2a"),
        Some(900_000)
    );
    cache.mark("r5.large", "us-west-2c", 500_000);
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.purge_expired(900_000), 1);
    assert_eq!(cache.len(), 1);
    assert!(cache.is_unavailable("r5.large", "us-west-2c", 900_000));
    assert_eq!(cache.purge_expired(1_100_000), 1);
    assert!(cache.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Policy and reporting

#[test]
fn policy_defaults_and_partial_config() {
    let default = FallbackPolicy::default();
    assert_eq!(default.headroom_pct, 20);
    assert_eq!(default.unavailable_ttl_secs, 600);
    assert!(default.alternative_families.is_empty());
    assert!(default.smaller_footprint);
    assert_eq!(default.min_utilisation_samples, 24);
    assert_eq!(UnavailableCache::from_policy(&default).ttl_ms(), 600_000);

    let parsed: FallbackPolicy =
        toml::from_str("headroom_pct = 30\n[alternative_families]\nr5 = [\"r5a\", \"r6i\"]\n")
            .expect("valid policy");
    assert_eq!(parsed.headroom_pct, 30);
    assert_eq!(parsed.unavailable_ttl_secs, 600);
    assert_eq!(parsed.alternative_families["r5"], ["r5a", "r6i"]);
    assert!(toml::from_str::<FallbackPolicy>("headroom = 30\n").is_err());
}

#[test]
fn substitutions_serialise_for_the_report() {
    let substitution = Substitution {
        from_type: "r5.2xlarge".to_owned(),
        from_az: "us-west-2a".to_owned(),
        from_count: 1,
        to_type: "r5.xlarge".to_owned(),
        to_az: "us-west-2b".to_owned(),
        to_count: 2,
        reason: NeighbourSize,
    };
    let value = serde_json::to_value(&substitution).expect("serialisable");
    assert_eq!(
        value,
        json!({
            "from_type": "r5.2xlarge",
            "from_az": "us-west-2a",
            "from_count": 1,
            "to_type": "r5.xlarge",
            "to_az": "us-west-2b",
            "to_count": 2,
            "reason": "neighbour_size",
        })
    );
    let back: Substitution = serde_json::from_value(value).expect("round trip");
    assert_eq!(back, substitution);
    for reason in [
        OtherAvailabilityZone,
        NeighbourSize,
        SmallerFootprint,
        AlternativeFamily,
    ] {
        assert_eq!(
            serde_json::to_value(reason).expect("serialisable"),
            json!(reason.as_str())
        );
    }
}
