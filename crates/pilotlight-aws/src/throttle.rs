//! The client-side throttle: one token bucket per (region, bucket key), awaited before every
//! call.
//!
//! Buckets and their sizes come from [`pilotlight_core::aws_limits`] (AWS's documented limits),
//! with per-key overrides from the config and a global time-scale factor (the lab runs AWS's
//! limits faster by this factor; production uses 1). Waiting is bounded only by the bucket's
//! refill rate: a caller that cannot wait should be cancelled from outside.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use pilotlight_core::aws_limits::{self, Bucket, CallShape, Service};

/// Throttle settings from the config.
#[derive(Debug, Clone)]
pub struct ThrottleSettings {
    /// Refill rates are multiplied by this (1.0 in production).
    pub time_scale: f64,
    /// Bucket overrides by charge key (`ec2:RunInstances`, `elbv2:category:registration`,
    /// `elb:account`, `route53:changes`, …).
    pub overrides: HashMap<String, Bucket>,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            time_scale: 1.0,
            overrides: HashMap::new(),
        }
    }
}

/// Token buckets for every (region, key) pilotlight calls.
#[derive(Debug)]
pub struct Throttle {
    settings: ThrottleSettings,
    limiters: Mutex<HashMap<(String, String), Arc<DefaultDirectRateLimiter>>>,
}

impl Throttle {
    pub fn new(settings: ThrottleSettings) -> Throttle {
        Throttle {
            settings,
            limiters: Mutex::new(HashMap::new()),
        }
    }

    /// The effective bucket for a charge key: the override if configured, else AWS's default.
    pub fn bucket(&self, key: &str, default: Bucket) -> Bucket {
        self.settings.overrides.get(key).copied().unwrap_or(default)
    }

    fn limiter(&self, region: &str, key: &str, bucket: Bucket) -> Arc<DefaultDirectRateLimiter> {
        let mut map = self
            .limiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry((region.to_owned(), key.to_owned()))
            .or_insert_with(|| {
                Arc::new(RateLimiter::direct(quota(bucket, self.settings.time_scale)))
            })
            .clone()
    }

    /// Waits until every bucket the call draws from has paid; returns the time spent waiting.
    ///
    /// # Cancellation
    /// Cancel-safe: dropping the future gives up the wait (tokens already taken stay spent).
    pub async fn acquire(
        &self,
        service: Service,
        region: &str,
        operation: &str,
        shape: &CallShape,
    ) -> Duration {
        let scope = if service.is_global() {
            "global"
        } else {
            region
        };
        let start = Instant::now();
        for charge in aws_limits::charges(service, operation, shape) {
            let bucket = self.bucket(&charge.key, charge.bucket);
            let limiter = self.limiter(scope, &charge.key, bucket);
            let burst = burst_of(bucket);
            // Charges larger than the burst are paid in burst-sized instalments.
            let mut remaining = charge.tokens.max(1.0).round() as u32;
            while remaining > 0 {
                let n = remaining.min(burst.get());
                if let Some(n) = NonZeroU32::new(n) {
                    // `n <= burst`, so this cannot report insufficient capacity.
                    let _ = limiter.until_n_ready(n).await;
                }
                remaining -= n;
            }
        }
        start.elapsed()
    }
}

fn burst_of(bucket: Bucket) -> NonZeroU32 {
    NonZeroU32::new(bucket.capacity.max(1.0).round() as u32).unwrap_or(NonZeroU32::MIN)
}

fn quota(bucket: Bucket, time_scale: f64) -> Quota {
    let refill = (bucket.refill_per_sec * time_scale.max(f64::MIN_POSITIVE)).max(1e-6);
    let period = Duration::from_secs_f64(1.0 / refill).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst_of(bucket))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn burst_is_free_then_refill_paces() {
        // RunInstances: request bucket 5 / 2 per s. Scale time by 100 so the test is quick.
        let t = Throttle::new(ThrottleSettings {
            time_scale: 100.0,
            overrides: HashMap::new(),
        });
        let shape = CallShape::default();
        let mut waited = Duration::ZERO;
        for _ in 0..5 {
            waited += t
                .acquire(Service::Ec2, "us-west-2", "RunInstances", &shape)
                .await;
        }
        assert!(
            waited < Duration::from_millis(20),
            "burst should not wait: {waited:?}"
        );
        // The 6th..8th calls must wait ~1/(2*100) s each.
        let mut paced = Duration::ZERO;
        for _ in 0..3 {
            paced += t
                .acquire(Service::Ec2, "us-west-2", "RunInstances", &shape)
                .await;
        }
        assert!(
            paced >= Duration::from_millis(9),
            "refill must pace: {paced:?}"
        );
    }

    #[tokio::test]
    async fn overrides_replace_the_default_bucket() {
        let mut overrides = HashMap::new();
        overrides.insert(
            "ec2:DescribeVpcs".to_owned(),
            Bucket {
                capacity: 1.0,
                refill_per_sec: 50.0,
            },
        );
        let t = Throttle::new(ThrottleSettings {
            time_scale: 1.0,
            overrides,
        });
        let shape = CallShape::default();
        t.acquire(Service::Ec2, "r", "DescribeVpcs", &shape).await;
        let second = t.acquire(Service::Ec2, "r", "DescribeVpcs", &shape).await;
        assert!(
            second >= Duration::from_millis(10),
            "burst of 1 must pace: {second:?}"
        );
    }

    #[tokio::test]
    async fn regions_have_separate_buckets() {
        let mut overrides = HashMap::new();
        overrides.insert(
            "ec2:DescribeVpcs".to_owned(),
            Bucket {
                capacity: 1.0,
                refill_per_sec: 0.01,
            },
        );
        let t = Throttle::new(ThrottleSettings {
            time_scale: 1.0,
            overrides,
        });
        let shape = CallShape::default();
        let a = t
            .acquire(Service::Ec2, "us-east-1", "DescribeVpcs", &shape)
            .await;
        let b = t
            .acquire(Service::Ec2, "us-west-2", "DescribeVpcs", &shape)
            .await;
        assert!(a + b < Duration::from_millis(50));
    }
}
