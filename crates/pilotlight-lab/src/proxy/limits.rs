//! The proxy's token buckets: AWS's documented API limits, enforced.
//!
//! Every call pays all the [`Charge`]s that `pilotlight_core::aws_limits::charges` lists for it,
//! or none: if any bucket lacks the tokens the call is throttled and nothing is taken. Buckets
//! are keyed by (account, region, bucket key) — AWS's limits are per account per region — start
//! full, and refill at the documented rate times `time_scale` (capacity is never scaled, so a
//! burst is as large as on AWS while the sustained rate runs `time_scale` times faster). A
//! charge larger than a bucket's capacity (one `RunInstances` for 2,000 instances) is allowed
//! from a full bucket and leaves it in debt, so the refill time still matches AWS's maths.
//! The map holds one entry per distinct key; keys come from a closed table, so it is bounded by
//! accounts × regions × table size.

use std::collections::HashMap;
use std::time::Instant;

use pilotlight_core::aws_limits::Charge;

#[derive(Debug, Clone, Copy)]
struct BucketState {
    tokens: f64,
    last: Instant,
}

/// Token buckets for one proxy.
#[derive(Debug)]
pub struct TokenBuckets {
    time_scale: f64,
    buckets: HashMap<(String, String, String), BucketState>,
}

impl TokenBuckets {
    /// `time_scale` multiplies every refill rate (1.0 = AWS's real speed).
    pub fn new(time_scale: f64) -> TokenBuckets {
        TokenBuckets {
            time_scale,
            buckets: HashMap::new(),
        }
    }

    /// Pays every charge at `now`, or none. Returns whether the call may proceed.
    pub fn try_pay(
        &mut self,
        account: &str,
        region: &str,
        charges: &[Charge],
        now: Instant,
    ) -> bool {
        const EPSILON: f64 = 1e-9;
        let mut states = Vec::with_capacity(charges.len());
        for charge in charges {
            let key = (account.to_owned(), region.to_owned(), charge.key.clone());
            let state = self.buckets.entry(key.clone()).or_insert(BucketState {
                tokens: charge.bucket.capacity,
                last: now,
            });
            let elapsed = now.saturating_duration_since(state.last).as_secs_f64();
            state.tokens = (state.tokens
                + elapsed * charge.bucket.refill_per_sec * self.time_scale)
                .min(charge.bucket.capacity);
            state.last = now;
            states.push((key, state.tokens));
        }
        let affordable = charges.iter().zip(&states).all(|(charge, (_, tokens))| {
            *tokens + EPSILON >= charge.tokens.min(charge.bucket.capacity)
        });
        if affordable {
            for (charge, (key, _)) in charges.iter().zip(states) {
                if let Some(state) = self.buckets.get_mut(&key) {
                    state.tokens -= charge.tokens;
                }
            }
        }
        affordable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pilotlight_core::aws_limits::{self, CallShape, Service};
    use std::time::Duration;

    fn run_instances(units: u32) -> Vec<Charge> {
        aws_limits::charges(
            Service::Ec2,
            "RunInstances",
            &CallShape {
                units,
                unfiltered_unpaginated: false,
            },
        )
    }

    #[test]
    fn burst_then_throttle_then_refill() {
        let mut b = TokenBuckets::new(1.0);
        let t0 = Instant::now();
        let c = run_instances(1);
        for _ in 0..5 {
            assert!(b.try_pay("a", "us-west-2", &c, t0));
        }
        assert!(!b.try_pay("a", "us-west-2", &c, t0));
        // RunInstances refills 2 tokens/s: one token after 0.5 s.
        assert!(!b.try_pay("a", "us-west-2", &c, t0 + Duration::from_millis(400)));
        assert!(b.try_pay("a", "us-west-2", &c, t0 + Duration::from_millis(510)));
        // Another region and another account have their own buckets.
        assert!(b.try_pay("a", "us-east-1", &c, t0));
        assert!(b.try_pay("b", "us-west-2", &c, t0));
    }

    #[test]
    fn time_scale_speeds_refill_not_capacity() {
        let mut b = TokenBuckets::new(100.0);
        let t0 = Instant::now();
        let c = run_instances(1);
        for _ in 0..5 {
            assert!(b.try_pay("a", "r", &c, t0));
        }
        assert!(!b.try_pay("a", "r", &c, t0));
        // 200 tokens/s: 5 ms buys one token.
        assert!(b.try_pay("a", "r", &c, t0 + Duration::from_millis(6)));
        // A long pause refills to capacity (5), never beyond.
        let later = t0 + Duration::from_secs(10);
        for _ in 0..5 {
            assert!(b.try_pay("a", "r", &c, later));
        }
        assert!(!b.try_pay("a", "r", &c, later));
    }

    #[test]
    fn all_or_nothing_across_buckets() {
        use pilotlight_core::aws_limits::Bucket;
        let charge = |key: &str, capacity: f64, tokens: f64| Charge {
            key: key.to_owned(),
            bucket: Bucket {
                capacity,
                refill_per_sec: 0.0,
            },
            tokens,
        };
        let mut b = TokenBuckets::new(1.0);
        let t0 = Instant::now();
        let both = [charge("big", 10.0, 1.0), charge("small", 1.0, 1.0)];
        assert!(b.try_pay("a", "r", &both, t0));
        // "small" is empty: throttled, and "big" keeps its 9 tokens.
        assert!(!b.try_pay("a", "r", &both, t0));
        assert!(b.try_pay("a", "r", &[charge("big", 10.0, 9.0)], t0));
        assert!(!b.try_pay("a", "r", &[charge("big", 10.0, 1.0)], t0));
    }

    #[test]
    fn oversized_charge_from_a_full_bucket_goes_into_debt() {
        let mut b = TokenBuckets::new(1.0);
        let t0 = Instant::now();
        assert!(b.try_pay("a", "r", &run_instances(1500), t0));
        // -500 tokens: at 2/s the bucket needs 250.5 s before one more instance.
        assert!(!b.try_pay("a", "r", &run_instances(1), t0 + Duration::from_secs(250)));
        assert!(b.try_pay("a", "r", &run_instances(1), t0 + Duration::from_secs(251)));
    }
}
