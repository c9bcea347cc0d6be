//! pilotlight's pure domain: configuration, AWS's documented limits, the network model and its
//! diff, and the copy scheduler with its RPO arithmetic. Nothing in this crate performs I/O;
//! the crates that talk to AWS, the store and the network depend on it, never the other way
//! round.

pub mod aws_limits;
pub mod capacity;
pub mod config;
pub mod copy;
pub mod cron;
pub mod digest;
pub mod elb_zones;
pub mod fallback;
pub mod inventory;
pub mod network;
pub mod plan;
pub mod readiness;
pub mod scope;
pub mod secret;
