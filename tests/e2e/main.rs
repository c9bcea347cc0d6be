//! pilotlight's end-to-end tests, built as one test binary (every extra binary relinks the AWS
//! SDK). Everything AWS goes through the real SDK to the lab: the realism proxy in front of
//! moto. Each test gets its own AWS account on the shared moto, so tests run in parallel.

mod api;
mod capture;
mod config;
mod copies;
mod copies_ami;
mod copies_rds;
mod daemon;
mod drill;
mod estate;
mod ha;
mod hooks;
mod lab;
mod lab_cloudwatch;
mod lab_copies;
mod lab_estate;
mod lab_restore;
mod lab_s3;
mod network;
mod restore;
mod restore_support;
mod support;
