//! The macros every service handle is built from: one method per allowed operation, each
//! running through [`crate::AwsCtx::call`]. A handle type lists exactly the operations it may
//! call; an operation that is not listed does not exist on it.

/// Generates one method per operation: `name => module::FluentBuilder -> Output, "OpName";`.
///
/// With a leading `once`, each request is sent exactly once, with the SDK's retries turned off:
/// for copy calls without (or, in the lab, without honoured) idempotency, where a retry after a
/// lost response could make a second copy. Their callers journal the request and resolve an
/// unknown outcome by looking the copy up.
macro_rules! sdk_ops {
    (once $sdk:ident, $service:expr; $($rest:tt)*) => {
        $crate::ops::sdk_ops!(@ops once, $sdk, $service; $($rest)*);
    };
    ($sdk:ident, $service:expr; $($rest:tt)*) => {
        $crate::ops::sdk_ops!(@ops retries, $sdk, $service; $($rest)*);
    };
    (@ops $mode:ident, $sdk:ident, $service:expr; $( $(#[$doc:meta])* $method:ident => $module:ident :: $builder:ident -> $output:ident, $op:literal; )*) => {
        $(
            $(#[$doc])*
            ///
            /// # Errors
            /// The call's classified [`AwsError`](crate::AwsError).
            pub async fn $method(
                &self,
                build: impl FnOnce($sdk::operation::$module::builders::$builder)
                    -> $sdk::operation::$module::builders::$builder,
            ) -> Result<$sdk::operation::$module::$output, crate::AwsError> {
                let request = build(self.client.$method());
                self.ctx
                    .call(
                        $service,
                        &self.region,
                        $op,
                        pilotlight_core::aws_limits::CallShape::default(),
                        || $crate::ops::sdk_ops!(@send $mode, $sdk, request),
                    )
                    .await
            }
        )*
    };
    (@send retries, $sdk:ident, $request:ident) => {
        $request.send()
    };
    (@send once, $sdk:ident, $request:ident) => {
        $request
            .customize()
            .config_override(
                $sdk::config::Builder::default()
                    .retry_config($sdk::config::retry::RetryConfig::disabled()),
            )
            .send()
    };
}

/// `new(config, ctx)` and `region()` for a handle `{ client, region, ctx }` over `$sdk::Client`
/// of `Service::$service`. When `ctx` keeps a tally, the client counts every HTTP attempt in it
/// ([`crate::call::CountAttempts`]).
macro_rules! handle_ctor {
    ($ty:ident, $sdk:ident, $service:ident) => {
        impl $ty {
            pub fn new(config: &aws_types::SdkConfig, ctx: crate::AwsCtx) -> $ty {
                let client = match ctx.tally() {
                    Some(tally) => $sdk::Client::from_conf(
                        $sdk::config::Builder::from(config)
                            .interceptor(crate::call::CountAttempts::new(
                                pilotlight_core::aws_limits::Service::$service,
                                tally.clone(),
                            ))
                            .build(),
                    ),
                    None => $sdk::Client::new(config),
                };
                $ty {
                    client,
                    region: config
                        .region()
                        .map(|r| r.as_ref().to_owned())
                        .unwrap_or_default(),
                    ctx,
                }
            }

            pub fn region(&self) -> &str {
                &self.region
            }
        }
    };
}

pub(crate) use {handle_ctor, sdk_ops};
