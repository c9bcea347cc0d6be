//! pilotlight's lab: run pilotlight and its tests with no AWS account.
//!
//! The lab is moto (`moto[server]`, Python) on loopback with a Rust realism proxy in front of
//! it. Clients — the tests and the daemon — use the real AWS SDK for Rust with an endpoint
//! override pointing at the proxy; the proxy adds what moto lacks: AWS's documented rate limits
//! with the real throttling errors, fault injection (throttling, capacity, 5xx, latency,
//! dropped responses, any error), `RunInstances` `ClientToken` idempotency, snapshot and image
//! copies that stay pending for a size-based time under AWS's in-flight copy limits, and
//! per-operation, per-region call counters that prove the primary region is never mutated.
//!
//! - [`moto`]: installing moto into a cached virtualenv and running it ([`MotoServer`]).
//! - [`proxy`]: the realism proxy ([`RealismProxy`], [`ProxyHandle`]).
//! - [`lab`]: one shared moto per test process and one proxy + AWS account per test
//!   ([`Lab::session`]).
//! - [`seed`]: declarative estates for the primary region — network, volumes with snapshots,
//!   databases, AMIs and instances ([`EstateSpec`], [`seed_with_rds`], [`seed()`]).
//! - [`client`]: the proxy's `/__lab/` API from another process ([`ProxyClient`]).
//!
//! The `pilotlight-lab` binary wraps these for people: `up`, `counters`, `fault`, `seed`.

pub mod bench;
pub mod client;
pub mod clients;
pub mod error;
pub mod lab;
pub mod moto;
pub mod proxy;
pub mod replicator;
pub mod seed;

pub use client::ProxyClient;
pub use error::LabError;
pub use lab::{Lab, LabSession};
pub use moto::MotoServer;
pub use proxy::{
    CallCount, CallCounts, CopyCount, CopyKind, FaultAction, FaultId, FaultRule, FaultStatus,
    ProxyHandle, ProxyOptions, RealismProxy,
};
pub use seed::{EstateSpec, SeededEstate, add_snapshot, add_subnet, seed, seed_with_rds};
