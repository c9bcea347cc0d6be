//! The one path every AWS call takes: throttle, span, call, metrics, classification.

use std::sync::Arc;
use std::time::Instant;

use aws_smithy_runtime_api::client::result::SdkError;
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

    /// The counts so far, by `service:Operation`.
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, OpTally> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl AwsCtx {
    pub fn new(throttle: Arc<Throttle>, metrics: AwsMetrics) -> AwsCtx {
        AwsCtx {
            throttle,
            metrics,
            tally: None,
        }
    }

    /// This context with every call also counted in `tally`.
    pub fn with_tally(&self, tally: Arc<CallTally>) -> AwsCtx {
        AwsCtx {
            tally: Some(tally),
            ..self.clone()
        }
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
            let start = Instant::now();
            let result = send().await;
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
