//! The one path every AWS call takes: throttle, span, call, metrics, classification.

use std::sync::Arc;
use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use pilotlight_core::aws_limits::{CallShape, Service};
use tracing::Instrument;

use crate::error::{AwsError, ErrorKind, HttpStatus, classify};
use crate::metrics::{AwsMetrics, CallLabels, OpLabels};
use crate::throttle::Throttle;

/// What every client handle shares: the throttle and the metrics, and optionally a
/// [`CallTally`] of its own calls.
#[derive(Debug, Clone)]
pub struct AwsCtx {
    pub throttle: Arc<Throttle>,
    pub metrics: AwsMetrics,
    tally: Option<Arc<CallTally>>,
    /// At most this many calls sent and not yet answered (taken after the throttle's wait).
    in_flight: Option<Arc<tokio::sync::Semaphore>>,
}

/// Calls and throttling answers per `service:Operation`, counted for one user of the handles
/// (a restore run reports its own calls, D11).
#[derive(Debug, Default)]
pub struct CallTally {
    counts: std::sync::Mutex<std::collections::BTreeMap<String, OpTally>>,
}

/// One operation's tally.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OpTally {
    /// Calls made (each SDK call once, whatever its retries).
    pub calls: u64,
    /// Calls AWS answered with a throttling error after the SDK's retries.
    pub throttled: u64,
    /// Calls that failed for any reason (throttling included).
    pub errors: u64,
    /// HTTP attempts: each call once plus each SDK retry (of a throttled, transient or
    /// timed-out attempt). Counted by [`CountAttempts`]; 0 where it is not installed.
    #[serde(default)]
    pub attempts: u64,
}

impl OpTally {
    /// Attempts the SDK retried: what AWS pushed back (throttling above all) before the call
    /// succeeded or gave up.
    pub fn retries(&self) -> u64 {
        self.attempts.saturating_sub(self.calls)
    }
}

impl CallTally {
    fn record(&self, key: String, ok: bool, throttled: bool) {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = counts.entry(key).or_default();
        entry.calls += 1;
        entry.errors += u64::from(!ok);
        entry.throttled += u64::from(throttled);
    }

    fn attempt(&self, service: &str, operation: &str) {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        counts
            .entry(format!("{service}:{operation}"))
            .or_default()
            .attempts += 1;
    }

    /// The counts so far, by `service:Operation`.
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, OpTally> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// An SDK interceptor counting every HTTP attempt of a client's operations into a
/// [`CallTally`] (the handles of a context [`AwsCtx::with_tally`] install it), so a run's
/// report shows the throttling the SDK retried away, not only what outlasted the retries.
#[derive(Debug)]
pub struct CountAttempts {
    service: &'static str,
    tally: Arc<CallTally>,
}

impl CountAttempts {
    pub fn new(service: Service, tally: Arc<CallTally>) -> CountAttempts {
        CountAttempts {
            service: service.as_str(),
            tally,
        }
    }
}

impl Intercept for CountAttempts {
    fn name(&self) -> &'static str {
        "pilotlight::CountAttempts"
    }

    fn read_after_attempt(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(metadata) = cfg.load::<Metadata>() {
            self.tally.attempt(self.service, metadata.name());
        }
        Ok(())
    }
}

impl AwsCtx {
    pub fn new(throttle: Arc<Throttle>, metrics: AwsMetrics) -> AwsCtx {
        AwsCtx {
            throttle,
            metrics,
            tally: None,
            in_flight: None,
        }
    }

    /// The tally of this context's calls, if any.
    pub fn tally(&self) -> Option<&Arc<CallTally>> {
        self.tally.as_ref()
    }

    /// This context with at most `permits` calls in flight. A call takes its permit once the
    /// throttle lets it go, so calls waiting for a bucket hold nothing up.
    pub fn with_in_flight(&self, permits: Arc<tokio::sync::Semaphore>) -> AwsCtx {
        AwsCtx {
            in_flight: Some(permits),
            ..self.clone()
        }
    }

    /// This context with every call also counted in `tally`.
    pub fn with_tally(&self, tally: Arc<CallTally>) -> AwsCtx {
        AwsCtx {
            tally: Some(tally),
            ..self.clone()
        }
    }

    /// [`AwsCtx::call`] with the default shape and the answer dropped: the deletes of owned
    /// resources, whose output says nothing.
    ///
    /// # Errors
    /// The call's classified [`AwsError`].
    pub async fn owned_call<T, E, R, F, Fut>(
        &self,
        service: Service,
        region: &str,
        operation: &'static str,
        send: F,
    ) -> Result<(), AwsError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: HttpStatus + std::fmt::Debug + Send + Sync + 'static,
    {
        self.call(service, region, operation, CallShape::default(), send)
            .await
            .map(|_| ())
    }

    /// Runs one AWS call: waits on the throttle, runs `send` in a span with `aws.service`,
    /// `aws.operation` and `aws.region`, records metrics, and classifies a failure.
    ///
    /// # Errors
    /// The SDK's error, classified, with the service, operation and region attached.
    pub async fn call<T, E, R, F, Fut>(
        &self,
        service: Service,
        region: &str,
        operation: &'static str,
        shape: CallShape,
        send: F,
    ) -> Result<T, AwsError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: HttpStatus + std::fmt::Debug + Send + Sync + 'static,
    {
        let span = tracing::debug_span!(
            "aws_call",
            aws.service = service.as_str(),
            aws.operation = operation,
            aws.region = region,
        );
        async move {
            let op = OpLabels {
                service: service.as_str(),
                operation,
                region: region.to_owned(),
            };
            let waited = self
                .throttle
                .acquire(service, region, operation, &shape)
                .await;
            self.metrics
                .throttle_wait
                .get_or_create(&op)
                .inc_by(waited.as_secs_f64());
            // A closed semaphore (never closed here) just lets the call go.
            let slot = match &self.in_flight {
                Some(permits) => permits.clone().acquire_owned().await.ok(),
                None => None,
            };
            let start = Instant::now();
            let result = send().await;
            drop(slot);
            self.metrics
                .duration
                .get_or_create(&op)
                .observe(start.elapsed().as_secs_f64());
            let outcome = match &result {
                Ok(_) => "ok",
                Err(e) => classify(e).0.as_str(),
            };
            self.metrics
                .calls
                .get_or_create(&CallLabels {
                    service: op.service,
                    operation,
                    region: op.region.clone(),
                    outcome,
                })
                .inc();
            if let Some(tally) = &self.tally {
                let throttled = matches!(&result, Err(e) if classify(e).0 == ErrorKind::Throttled);
                tally.record(
                    format!("{}:{operation}", service.as_str()),
                    result.is_ok(),
                    throttled,
                );
            }
            result.map_err(|err| {
                let (kind, code, message) = classify(&err);
                if kind == ErrorKind::Throttled {
                    self.metrics.throttled.get_or_create(&op).inc();
                }
                tracing::debug!(
                    error.kind = kind.as_str(),
                    error.code = %code,
                    error = %DisplayErrorContext(&err),
                    "aws call failed"
                );
                AwsError {
                    service: service.as_str(),
                    operation,
                    region: region.to_owned(),
                    kind,
                    code,
                    message,
                    source: Box::new(err),
                }
            })
        }
        .instrument(span)
        .await
    }
}
