//! Per-call counters: every call the proxy sees, by (service, operation, region, mutating),
//! with how many of those calls were throttled by the rate limits or hit by a fault rule.
//!
//! The keys are names taken from requests; with pilotlight's own clients they form a closed
//! set. To stay bounded against anything else on loopback, at most [`MAX_KEYS`] distinct keys
//! are kept: later new keys are folded into one entry with service [`OVERFLOW`].
//!
//! A [`CallCounts`] snapshot also carries the proxy's copy counters ([`CopyCount`]: copies in
//! flight and the most ever in flight per kind and destination region), which the copy tracker
//! fills in.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::copies::CopyCount;

/// Most distinct counter keys kept.
pub const MAX_KEYS: usize = 4096;
/// The service name of the entry that absorbs keys past [`MAX_KEYS`].
pub const OVERFLOW: &str = "_overflow";

/// One counter row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCount {
    pub service: String,
    pub operation: String,
    pub region: String,
    pub mutating: bool,
    /// Calls received (throttled and faulted ones included).
    pub calls: u64,
    /// Calls answered with a throttling error (rate limit or injected `Throttle`).
    pub throttled: u64,
    /// Calls a fault rule fired on.
    pub faulted: u64,
}

/// A snapshot of the proxy's counters, sorted by service, operation, region.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCounts {
    pub rows: Vec<CallCount>,
    /// Copy counters, sorted by destination region and kind (absent in older answers).
    #[serde(default)]
    pub copies: Vec<CopyCount>,
}

impl CallCounts {
    /// Mutating calls signed for `region` (any service).
    pub fn mutating_calls_in(&self, region: &str) -> u64 {
        self.rows
            .iter()
            .filter(|r| r.mutating && r.region == region)
            .map(|r| r.calls)
            .sum()
    }

    /// Calls of one operation in one region.
    pub fn count(&self, service: &str, operation: &str, region: &str) -> u64 {
        self.rows
            .iter()
            .filter(|r| r.service == service && r.operation == operation && r.region == region)
            .map(|r| r.calls)
            .sum()
    }

    /// Throttled calls of one operation in one region.
    pub fn throttled(&self, service: &str, operation: &str, region: &str) -> u64 {
        self.rows
            .iter()
            .filter(|r| r.service == service && r.operation == operation && r.region == region)
            .map(|r| r.throttled)
            .sum()
    }

    /// Every call counted.
    pub fn total(&self) -> u64 {
        self.rows.iter().map(|r| r.calls).sum()
    }

    /// Every throttled call.
    pub fn throttled_total(&self) -> u64 {
        self.rows.iter().map(|r| r.throttled).sum()
    }

    /// The row of one operation in one region, if it was called.
    pub fn row(&self, service: &str, operation: &str, region: &str) -> Option<&CallCount> {
        self.rows
            .iter()
            .find(|r| r.service == service && r.operation == operation && r.region == region)
    }

    /// Copies of `kind` (`ebs`, `rds`, `aurora`, `ami`) in flight to `region` when the
    /// snapshot was taken.
    pub fn copies_in_flight(&self, kind: &str, region: &str) -> u32 {
        self.copy_row(kind, region).map_or(0, |c| c.in_flight)
    }

    /// The most copies of `kind` ever in flight to `region` at once.
    pub fn max_copies_in_flight(&self, kind: &str, region: &str) -> u32 {
        self.copy_row(kind, region).map_or(0, |c| c.max_in_flight)
    }

    /// The copy row of one kind and destination region, if it saw a copy.
    pub fn copy_row(&self, kind: &str, region: &str) -> Option<&CopyCount> {
        self.copies
            .iter()
            .find(|c| c.kind == kind && c.region == region)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    service: String,
    operation: String,
    region: String,
    mutating: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    calls: u64,
    throttled: u64,
    faulted: u64,
}

/// What happened to a counted call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// A fault rule fired on it.
    pub faulted: bool,
    /// It was answered with a throttling error.
    pub throttled: bool,
}

/// The live counters.
#[derive(Debug, Default)]
pub struct Counters {
    tallies: HashMap<Key, Tally>,
}

impl Counters {
    pub fn record(
        &mut self,
        service: &str,
        operation: &str,
        region: &str,
        mutating: bool,
        outcome: Outcome,
    ) {
        let mut key = Key {
            service: service.to_owned(),
            operation: operation.to_owned(),
            region: region.to_owned(),
            mutating,
        };
        if !self.tallies.contains_key(&key) && self.tallies.len() >= MAX_KEYS {
            key = Key {
                service: OVERFLOW.to_owned(),
                operation: OVERFLOW.to_owned(),
                region: region.to_owned(),
                mutating,
            };
        }
        let tally = self.tallies.entry(key).or_default();
        tally.calls += 1;
        tally.faulted += u64::from(outcome.faulted);
        tally.throttled += u64::from(outcome.throttled);
    }

    pub fn snapshot(&self) -> CallCounts {
        let mut rows: Vec<CallCount> = self
            .tallies
            .iter()
            .map(|(k, t)| CallCount {
                service: k.service.clone(),
                operation: k.operation.clone(),
                region: k.region.clone(),
                mutating: k.mutating,
                calls: t.calls,
                throttled: t.throttled,
                faulted: t.faulted,
            })
            .collect();
        rows.sort_by(|a, b| {
            (&a.service, &a.operation, &a.region, a.mutating).cmp(&(
                &b.service,
                &b.operation,
                &b.region,
                b.mutating,
            ))
        });
        CallCounts {
            rows,
            copies: Vec::new(),
        }
    }

    pub fn reset(&mut self) {
        self.tallies.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_over_recorded_calls() {
        let mut c = Counters::default();
        let plain = Outcome::default();
        let throttled = Outcome {
            faulted: false,
            throttled: true,
        };
        let faulted = Outcome {
            faulted: true,
            throttled: false,
        };
        let both = Outcome {
            faulted: true,
            throttled: true,
        };
        c.record("ec2", "RunInstances", "us-west-2", true, plain);
        c.record("ec2", "RunInstances", "us-west-2", true, throttled);
        c.record("ec2", "DescribeVpcs", "us-east-1", false, plain);
        c.record("ec2", "CreateVpc", "us-east-1", true, both);
        c.record(
            "route53",
            "ChangeResourceRecordSets",
            "global",
            true,
            faulted,
        );
        let s = c.snapshot();
        assert_eq!(s.total(), 5);
        assert_eq!(s.count("ec2", "RunInstances", "us-west-2"), 2);
        assert_eq!(s.throttled("ec2", "RunInstances", "us-west-2"), 1);
        assert_eq!(s.throttled_total(), 2);
        assert_eq!(s.mutating_calls_in("us-east-1"), 1);
        assert_eq!(s.mutating_calls_in("us-west-2"), 2);
        assert_eq!(s.mutating_calls_in("global"), 1);
        assert_eq!(
            s.row("route53", "ChangeResourceRecordSets", "global")
                .map(|r| r.faulted),
            Some(1)
        );
        assert_eq!(s.rows[0].operation, "CreateVpc");
        c.reset();
        assert_eq!(c.snapshot().total(), 0);
    }

    #[test]
    fn copy_rows_are_queried_and_optional_in_json() {
        let mut counts = CallCounts::default();
        counts.copies.push(CopyCount {
            kind: "ebs".into(),
            region: "us-west-2".into(),
            in_flight: 3,
            max_in_flight: 20,
            limit: 20,
            started: 25,
            refused: 1,
        });
        assert_eq!(counts.copies_in_flight("ebs", "us-west-2"), 3);
        assert_eq!(counts.max_copies_in_flight("ebs", "us-west-2"), 20);
        assert_eq!(counts.copies_in_flight("ebs", "us-east-1"), 0);
        assert_eq!(counts.max_copies_in_flight("ami", "us-west-2"), 0);
        let json = serde_json::to_string(&counts).expect("json");
        assert_eq!(
            serde_json::from_str::<CallCounts>(&json).expect("parse"),
            counts
        );
        // An answer from before copy counters parses with none.
        let old: CallCounts = serde_json::from_str(r#"{"rows":[]}"#).expect("parse");
        assert!(old.copies.is_empty());
    }

    #[test]
    fn keys_are_bounded() {
        let mut c = Counters::default();
        for i in 0..(MAX_KEYS + 10) {
            c.record("x", &format!("Op{i}"), "r", true, Outcome::default());
        }
        let s = c.snapshot();
        assert_eq!(s.rows.len(), MAX_KEYS + 1);
        assert_eq!(s.count(OVERFLOW, OVERFLOW, "r"), 10);
        assert_eq!(s.total(), (MAX_KEYS + 10) as u64);
    }
}
