//! Everything pilotlight says to AWS goes through this crate.
//!
//! - [`sdk`] builds one SDK configuration per region from [`AwsSettings`] (endpoint override for
//!   the lab or VPC endpoints, static or default-chain credentials, retry mode, timeouts) with an
//!   explicit rustls HTTP client.
//! - [`call`] wraps every SDK call: waits on the [`throttle::Throttle`] first, runs the call in a
//!   span carrying `aws.service`, `aws.operation` and `aws.region`, records [`metrics::AwsMetrics`],
//!   and turns SDK errors into [`AwsError`]s classified by [`ErrorKind`] from the SDK's error
//!   metadata.
//! - [`ec2`] has the two faces of EC2: [`ec2::PrimaryEc2`] exposes only describe calls — there
//!   is no method on it that could mutate the primary region — and [`ec2::DrEc2`] adds the
//!   mutations the DR region needs. Deletions take an [`ec2::Owned`] id, which can only be made
//!   from a resource carrying pilotlight's ownership tag.
//! - [`rds`], [`elb`], [`route53`], [`acm`], [`cloudwatch`] and [`s3`] follow the same pattern:
//!   a primary face with only describe/list/get calls and, where the DR side needs one, a DR
//!   face.
//! - [`cache`] is the read-through cache of describe results (D9).
//! - [`capture`] reads the primary estate into the inventory model (SPEC R5),
//!   [`cloudwatch::collect_utilisation`] adds utilisation for plan B, and [`s3`] writes and
//!   reads the inventory documents in the DR bucket and measures S3 replication lag (R6).

pub mod acm;
pub mod cache;
pub mod call;
pub mod capture;
pub mod cloudwatch;
pub mod ec2;
pub mod elb;
pub mod error;
pub mod metrics;
mod ops;
pub mod presign;
pub mod rds;
pub mod route53;
pub mod s3;
pub mod sdk;
pub mod tags;
pub mod throttle;

pub use call::{AwsCtx, CallTally, OpTally};
pub use error::{AwsError, ErrorKind};
pub use sdk::{AwsSettings, Credentials, RetryMode};
