//! Capacity schedules: "after the first N instances of this type in this AZ have launched, the
//! pair has no capacity (or only `available` more)", with AWS's `InsufficientInstanceCapacity`.
//!
//! A [`CapacityRule`] names an instance type and an availability zone (or a whole region). It
//! allows `after_launches + available` instances of that type there, counted over launches
//! through the proxy since the rule was added. A `RunInstances` that asks for more than a rule
//! still allows launches what is left if that is at least `MinCount` (the launch module turns
//! the call into one for exactly that many), and otherwise gets AWS's error (500, EC2
//! envelope, [`insufficient_capacity`]) without reaching moto. The shortage begins when the
//! allowance is used up or a launch is first cut or refused, and ends, capacity unlimited
//! again, after `duration_secs` (AWS time, divided by `time_scale`) or after `times`
//! refusals, whichever comes first; without either it lasts until the rule is removed.
//!
//! The AZ of a launch is `Placement.AvailabilityZone`, else the AZ of its subnet (`SubnetId` or
//! `NetworkInterface.N.SubnetId`, looked up by the launch module). A launch with neither is
//! placed by AWS wherever there is capacity, so only region rules apply to it. A launch
//! without `InstanceType` is of moto's (and AWS's) default type, `m1.small`. Rules apply to
//! every account of the proxy. Launches are reserved before moto is called, so concurrent
//! launches cannot overshoot a rule, and given back when moto fails.
//!
//! At most [`MAX_CAPACITY_RULES`] rules are held (`POST /__lab/capacity` answers 429 beyond).

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::envelope::ErrorReply;
use super::pending;

/// Most capacity rules held at once.
pub const MAX_CAPACITY_RULES: usize = 256;

/// The type moto and AWS launch when `InstanceType` is absent.
pub const DEFAULT_INSTANCE_TYPE: &str = "m1.small";

/// A capacity schedule for one instance type in one AZ or region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityRule {
    /// `r5.2xlarge`, …
    pub instance_type: String,
    /// The AZ (`us-west-2a`); `None` with `region` set: every AZ of the region together.
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// The region (`us-west-2`); optional when `availability_zone` is set (then it must be the
    /// AZ's region).
    #[serde(default)]
    pub region: Option<String>,
    /// Instances that still launch before the shortage.
    #[serde(default)]
    pub after_launches: u32,
    /// Instances that launch during the shortage (`None`: none).
    #[serde(default)]
    pub available: Option<u32>,
    /// The shortage ends after this many refused launches (`None`: never by count).
    #[serde(default)]
    pub times: Option<u32>,
    /// The shortage ends this many seconds of AWS time after it began (`None`: never by time).
    #[serde(default)]
    pub duration_secs: Option<f64>,
}

impl CapacityRule {
    /// No capacity for `instance_type` in `availability_zone` after `after_launches` launches,
    /// forever; adjust with the builder methods.
    pub fn new(instance_type: &str, availability_zone: &str, after_launches: u32) -> CapacityRule {
        CapacityRule {
            instance_type: instance_type.to_owned(),
            availability_zone: Some(availability_zone.to_owned()),
            region: None,
            after_launches,
            available: None,
            times: None,
            duration_secs: None,
        }
    }

    /// The same for every AZ of `region` together.
    pub fn in_region(instance_type: &str, region: &str, after_launches: u32) -> CapacityRule {
        CapacityRule {
            availability_zone: None,
            region: Some(region.to_owned()),
            ..CapacityRule::new(instance_type, "", after_launches)
        }
    }

    #[must_use]
    pub fn available(mut self, available: u32) -> CapacityRule {
        self.available = Some(available);
        self
    }

    #[must_use]
    pub fn times(mut self, times: u32) -> CapacityRule {
        self.times = Some(times);
        self
    }

    #[must_use]
    pub fn duration_secs(mut self, secs: f64) -> CapacityRule {
        self.duration_secs = Some(secs);
        self
    }

    /// Every problem with the rule; empty when it is usable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.instance_type.trim().is_empty() {
            problems.push("instance_type must not be empty".to_owned());
        }
        match (&self.availability_zone, &self.region) {
            (None, None) => {
                problems.push("set availability_zone or region".to_owned());
            }
            (Some(az), _) if az.trim().is_empty() => {
                problems.push("availability_zone must not be empty".to_owned());
            }
            (None, Some(region)) if region.trim().is_empty() => {
                problems.push("region must not be empty".to_owned());
            }
            (Some(az), Some(region)) if !az_in_region(az, region) => {
                problems.push(format!("availability_zone {az} is not in region {region}"));
            }
            _ => {}
        }
        if let Some(secs) = self.duration_secs
            && !(secs.is_finite() && secs >= 0.0)
        {
            problems.push(format!("duration_secs must be a number >= 0, got {secs}"));
        }
        problems
    }

    /// Instances the rule lets launch in all.
    fn allowance(&self) -> u64 {
        u64::from(self.after_launches) + u64::from(self.available.unwrap_or(0))
    }

    /// Whether a launch of `instance_type` in `region` (AZ `az` when known) falls under it.
    fn covers(&self, instance_type: &str, region: &str, az: Option<&str>) -> bool {
        if self.instance_type != instance_type {
            return false;
        }
        match (&self.availability_zone, az) {
            (Some(rule_az), Some(az)) => rule_az == az,
            (Some(_), None) => false,
            (None, _) => self.region.as_deref() == Some(region),
        }
    }

    /// `us-west-2a` for an AZ rule, the region otherwise (for messages).
    fn scope(&self) -> &str {
        self.availability_zone
            .as_deref()
            .or(self.region.as_deref())
            .unwrap_or_default()
    }
}

/// Whether `az` is an AZ name of `region` (the region plus a letter, or a Local Zone suffix).
fn az_in_region(az: &str, region: &str) -> bool {
    az.strip_prefix(region)
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with(|c: char| c.is_ascii_digit()))
}

/// A rule's handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CapacityId(pub u64);

impl fmt::Display for CapacityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a rule is in its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacityPhase {
    /// Launches still within `after_launches`.
    Available,
    /// The shortage: only `remaining` more launch.
    Short,
    /// The shortage ended (by `times` or `duration_secs`): no limit any more.
    Ended,
}

/// A rule with its id and what it has seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityStatus {
    pub id: CapacityId,
    pub rule: CapacityRule,
    pub phase: CapacityPhase,
    /// Instances launched under the rule (moto calls in flight included).
    pub launched: u64,
    /// Instances that may still launch; `None` once the shortage ended.
    pub remaining: Option<u64>,
    /// `RunInstances` calls refused.
    pub refused: u64,
}

#[derive(Debug)]
struct Entry {
    id: CapacityId,
    rule: CapacityRule,
    launched: u64,
    refused: u64,
    short_since: Option<Instant>,
    /// `duration_secs` in real time.
    duration: Option<Duration>,
}

impl Entry {
    fn ended(&self, now: Instant) -> bool {
        let by_times = self
            .rule
            .times
            .is_some_and(|t| self.refused >= u64::from(t));
        let by_time = match (self.short_since, self.duration) {
            (Some(since), Some(d)) => now.saturating_duration_since(since) >= d,
            _ => false,
        };
        by_times || by_time
    }

    fn remaining(&self) -> u64 {
        self.rule.allowance().saturating_sub(self.launched)
    }

    fn status(&self, now: Instant) -> CapacityStatus {
        let ended = self.ended(now);
        let phase = if ended {
            CapacityPhase::Ended
        } else if self.short_since.is_some() || self.launched >= u64::from(self.rule.after_launches)
        {
            CapacityPhase::Short
        } else {
            CapacityPhase::Available
        };
        CapacityStatus {
            id: self.id,
            rule: self.rule.clone(),
            phase,
            launched: self.launched,
            remaining: (!ended).then(|| self.remaining()),
            refused: self.refused,
        }
    }
}

/// What a launch asks for.
#[derive(Debug, Clone, Copy)]
pub struct LaunchRequest<'a> {
    pub instance_type: &'a str,
    pub region: &'a str,
    /// The launch's AZ, when it names one (directly or through its subnet).
    pub az: Option<&'a str>,
    pub min_count: u32,
    /// What the launch would start without capacity rules.
    pub wanted: u32,
}

/// Instances reserved under rules for one launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// How many to launch (`min_count..=wanted`).
    pub count: u32,
    /// The rules the reservation counts against.
    pub rules: Vec<CapacityId>,
}

/// The rules and their counts.
#[derive(Debug)]
pub struct CapacityTable {
    time_scale: f64,
    next_id: u64,
    entries: Vec<Entry>,
}

impl CapacityTable {
    pub fn new(time_scale: f64) -> CapacityTable {
        CapacityTable {
            time_scale,
            next_id: 0,
            entries: Vec::new(),
        }
    }

    /// Adds a rule.
    ///
    /// # Errors
    ///
    /// Every problem with the rule, or that the table is full.
    pub fn add(&mut self, rule: CapacityRule, now: Instant) -> Result<CapacityId, String> {
        let problems = rule.problems();
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        if self.entries.len() >= MAX_CAPACITY_RULES {
            return Err(format!(
                "at most {MAX_CAPACITY_RULES} capacity rules; DELETE /__lab/capacity first"
            ));
        }
        self.next_id += 1;
        let id = CapacityId(self.next_id);
        let duration = rule
            .duration_secs
            .map(|s| pending::scaled(s, self.time_scale).unwrap_or(Duration::ZERO));
        // With nothing allowed before it, the shortage begins now.
        let short_since = (rule.after_launches == 0).then_some(now);
        self.entries.push(Entry {
            id,
            rule,
            launched: 0,
            refused: 0,
            short_since,
            duration,
        });
        Ok(id)
    }

    pub fn is_full(&self) -> bool {
        self.entries.len() >= MAX_CAPACITY_RULES
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn list(&self, now: Instant) -> Vec<CapacityStatus> {
        self.entries.iter().map(|e| e.status(now)).collect()
    }

    /// Whether some rule still in force could apply to `instance_type` in `region` (so the
    /// launch's AZ is worth looking up).
    pub fn concerns(&self, instance_type: &str, region: &str, now: Instant) -> bool {
        self.entries.iter().any(|e| {
            e.rule.instance_type == instance_type
                && !e.ended(now)
                && match (&e.rule.availability_zone, &e.rule.region) {
                    (Some(az), _) => az_in_region(az, region),
                    (None, r) => r.as_deref() == Some(region),
                }
        })
    }

    /// Reserves capacity for a launch: how many it may start, or AWS's refusal.
    ///
    /// # Errors
    ///
    /// [`insufficient_capacity`] when some rule in force has fewer than `MinCount` left.
    pub fn reserve(
        &mut self,
        launch: &LaunchRequest<'_>,
        now: Instant,
    ) -> Result<Grant, ErrorReply> {
        let covering: Vec<usize> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                !e.ended(now)
                    && e.rule
                        .covers(launch.instance_type, launch.region, launch.az)
            })
            .map(|(i, _)| i)
            .collect();
        let tightest = covering
            .iter()
            .copied()
            .min_by_key(|&i| self.entries[i].remaining());
        let Some(tightest) = tightest else {
            return Ok(Grant {
                count: launch.wanted,
                rules: Vec::new(),
            });
        };
        let left = self.entries[tightest].remaining();
        if left < u64::from(launch.min_count) {
            let entry = &mut self.entries[tightest];
            entry.refused += 1;
            entry.short_since.get_or_insert(now);
            return Err(insufficient_capacity(
                launch.instance_type,
                launch.az,
                entry.rule.scope(),
            ));
        }
        let count = u32::try_from(left.min(u64::from(launch.wanted))).unwrap_or(launch.wanted);
        let mut rules = Vec::with_capacity(covering.len());
        for i in covering {
            let entry = &mut self.entries[i];
            entry.launched += u64::from(count);
            if count < launch.wanted || entry.launched >= u64::from(entry.rule.after_launches) {
                entry.short_since.get_or_insert(now);
            }
            rules.push(entry.id);
        }
        Ok(Grant { count, rules })
    }

    /// Gives back `count` reserved instances that did not launch.
    pub fn release(&mut self, rules: &[CapacityId], count: u32) {
        for entry in self.entries.iter_mut().filter(|e| rules.contains(&e.id)) {
            entry.launched = entry.launched.saturating_sub(u64::from(count));
        }
    }
}

/// AWS's answer when a (type, AZ) has no capacity: `InsufficientInstanceCapacity`, HTTP 500,
/// "We currently do not have sufficient <type> capacity in the Availability Zone you requested
/// (<az>). Our system will be working on provisioning additional capacity." A launch that
/// named no AZ, refused by a region rule, is told about the region instead.
pub fn insufficient_capacity(instance_type: &str, az: Option<&str>, scope: &str) -> ErrorReply {
    let place = match az {
        Some(az) => format!("the Availability Zone you requested ({az})"),
        None => format!("the Region you requested ({scope})"),
    };
    ErrorReply::new(
        500,
        "InsufficientInstanceCapacity",
        &format!(
            "We currently do not have sufficient {instance_type} capacity in {place}. Our \
             system will be working on provisioning additional capacity."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch<'a>(ty: &'a str, az: Option<&'a str>, min: u32, wanted: u32) -> LaunchRequest<'a> {
        LaunchRequest {
            instance_type: ty,
            region: "us-west-2",
            az,
            min_count: min,
            wanted,
        }
    }

    const A: Option<&str> = Some("us-west-2a");
    const B: Option<&str> = Some("us-west-2b");

    #[test]
    fn after_n_launches_the_pair_is_refused_and_others_are_not() {
        let now = Instant::now();
        let mut t = CapacityTable::new(1.0);
        let id = t
            .add(CapacityRule::new("r5.2xlarge", "us-west-2a", 3), now)
            .expect("rule");
        for _ in 0..3 {
            let grant = t
                .reserve(&launch("r5.2xlarge", A, 1, 1), now)
                .expect("fits");
            assert_eq!(
                grant,
                Grant {
                    count: 1,
                    rules: vec![id]
                }
            );
        }
        let refusal = t
            .reserve(&launch("r5.2xlarge", A, 1, 1), now)
            .expect_err("fourth refused");
        assert_eq!(
            (refusal.status.as_u16(), refusal.code.as_str()),
            (500, "InsufficientInstanceCapacity")
        );
        assert_eq!(
            refusal.message,
            "We currently do not have sufficient r5.2xlarge capacity in the Availability Zone \
             you requested (us-west-2a). Our system will be working on provisioning additional \
             capacity."
        );
        // Other type, other AZ, no AZ: unlimited.
        for other in [
            launch("m5.large", A, 1, 7),
            launch("r5.2xlarge", B, 1, 7),
            launch("r5.2xlarge", None, 1, 7),
        ] {
            assert_eq!(t.reserve(&other, now).expect("other").count, 7);
        }
        let status = &t.list(now)[0];
        assert_eq!(
            (
                status.phase,
                status.launched,
                status.remaining,
                status.refused
            ),
            (CapacityPhase::Short, 3, Some(0), 1)
        );
    }

    #[test]
    fn available_cuts_a_launch_to_what_is_left_unless_below_min_count() {
        let now = Instant::now();
        let mut t = CapacityTable::new(1.0);
        t.add(
            CapacityRule::new("c5.large", "us-west-2c", 0).available(2),
            now,
        )
        .expect("rule");
        let c = Some("us-west-2c");
        assert_eq!(t.list(now)[0].phase, CapacityPhase::Short);
        assert!(t.reserve(&launch("c5.large", c, 3, 5), now).is_err());
        let grant = t.reserve(&launch("c5.large", c, 1, 5), now).expect("two");
        assert_eq!(grant.count, 2);
        assert!(t.reserve(&launch("c5.large", c, 1, 1), now).is_err());
        // moto failed: the two come back.
        t.release(&grant.rules, 2);
        assert_eq!(
            t.reserve(&launch("c5.large", c, 2, 2), now)
                .expect("again")
                .count,
            2
        );
        assert_eq!(t.list(now)[0].refused, 2);
    }

    #[test]
    fn shortages_end_by_times_or_by_scaled_duration() {
        let now = Instant::now();
        let mut t = CapacityTable::new(1.0);
        t.add(CapacityRule::new("r5.large", "us-west-2a", 0).times(2), now)
            .expect("rule");
        assert!(t.reserve(&launch("r5.large", A, 1, 1), now).is_err());
        assert!(t.reserve(&launch("r5.large", A, 1, 1), now).is_err());
        assert_eq!(
            t.reserve(&launch("r5.large", A, 1, 4), now)
                .expect("ended")
                .count,
            4
        );
        assert_eq!(t.list(now)[0].phase, CapacityPhase::Ended);
        assert_eq!(t.list(now)[0].remaining, None);

        // 100 s of AWS time at time_scale 50: 2 s, counted from the shortage's start.
        let mut t = CapacityTable::new(50.0);
        t.add(
            CapacityRule::new("r5.large", "us-west-2a", 1).duration_secs(100.0),
            now,
        )
        .expect("rule");
        assert_eq!(t.list(now)[0].phase, CapacityPhase::Available);
        let later = now + Duration::from_secs(60);
        t.reserve(&launch("r5.large", A, 1, 1), later)
            .expect("the one");
        assert!(t.reserve(&launch("r5.large", A, 1, 1), later).is_err());
        let short = later + Duration::from_millis(1900);
        assert!(t.reserve(&launch("r5.large", A, 1, 1), short).is_err());
        assert!(t.concerns("r5.large", "us-west-2", short));
        let over = later + Duration::from_secs(2);
        assert!(!t.concerns("r5.large", "us-west-2", over));
        assert_eq!(
            t.reserve(&launch("r5.large", A, 1, 3), over)
                .expect("back")
                .count,
            3
        );
    }

    #[test]
    fn region_rules_cover_every_az_and_unplaced_launches() {
        let now = Instant::now();
        let mut t = CapacityTable::new(1.0);
        t.add(CapacityRule::in_region("g5.xlarge", "us-west-2", 2), now)
            .expect("rule");
        assert!(t.concerns("g5.xlarge", "us-west-2", now));
        assert!(!t.concerns("g5.xlarge", "us-east-1", now));
        assert_eq!(
            t.reserve(&launch("g5.xlarge", A, 1, 1), now)
                .expect("a")
                .count,
            1
        );
        assert_eq!(
            t.reserve(&launch("g5.xlarge", None, 1, 1), now)
                .expect("none")
                .count,
            1
        );
        let refusal = t
            .reserve(&launch("g5.xlarge", None, 1, 1), now)
            .expect_err("full");
        assert!(
            refusal
                .message
                .contains("the Region you requested (us-west-2)")
        );
        let refusal = t
            .reserve(&launch("g5.xlarge", B, 1, 1), now)
            .expect_err("full");
        assert!(refusal.message.contains("(us-west-2b)"));
        // Two rules: the tighter one decides, both count.
        t.add(CapacityRule::new("m5.large", "us-west-2a", 5), now)
            .expect("az");
        t.add(CapacityRule::in_region("m5.large", "us-west-2", 3), now)
            .expect("region");
        let grant = t
            .reserve(&launch("m5.large", A, 1, 10), now)
            .expect("three");
        assert_eq!((grant.count, grant.rules.len()), (3, 2));
        let launched: Vec<u64> = t.list(now).iter().map(|s| s.launched).collect();
        assert_eq!(launched, vec![2, 3, 3]);
    }

    #[test]
    fn rules_are_validated_and_bounded() {
        let now = Instant::now();
        let mut t = CapacityTable::new(1.0);
        let bad = CapacityRule {
            instance_type: String::new(),
            availability_zone: Some("us-east-1a".into()),
            region: Some("us-west-2".into()),
            duration_secs: Some(f64::NAN),
            ..CapacityRule::new("x", "y", 0)
        };
        let err = t.add(bad, now).expect_err("invalid");
        assert!(
            err.contains("instance_type") && err.contains("not in region"),
            "{err}"
        );
        assert!(err.contains("duration_secs"), "{err}");
        assert!(
            !CapacityRule {
                availability_zone: None,
                ..CapacityRule::new("x", "y", 0)
            }
            .problems()
            .is_empty()
        );
        assert!(!az_in_region("us-west-22a", "us-west-2"));
        assert!(az_in_region("us-west-2-lax-1a", "us-west-2"));
        for _ in 0..MAX_CAPACITY_RULES {
            t.add(CapacityRule::new("x", "us-west-2a", 1), now)
                .expect("fits");
        }
        assert!(t.is_full());
        assert!(t.add(CapacityRule::new("x", "us-west-2a", 1), now).is_err());
        t.clear();
        assert!(t.list(now).is_empty());
    }

    #[test]
    fn rules_read_from_json_and_reject_unknown_fields() {
        let rule: CapacityRule = serde_json::from_str(
            r#"{"instance_type":"r5.2xlarge","availability_zone":"us-west-2a","after_launches":3}"#,
        )
        .expect("json");
        assert_eq!(rule, CapacityRule::new("r5.2xlarge", "us-west-2a", 3));
        let round: CapacityRule =
            serde_json::from_str(&serde_json::to_string(&rule.clone().available(2)).expect("json"))
                .expect("round trip");
        assert_eq!(round.available, Some(2));
        assert!(
            serde_json::from_str::<CapacityRule>(
                r#"{"instance_type":"r5.2xlarge","region":"us-west-2","after_launch":3}"#
            )
            .is_err()
        );
    }
}
