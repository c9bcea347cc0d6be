//! The `pilotlight-lab` command: start the lab, inspect its counters, inject faults, seed
//! estates. A thin wrapper over the `pilotlight_lab` library.
#![allow(clippy::print_stdout)]

fn main() {}
