//! The benchmark harness: workloads, HDR latency statistics, the report table and JSON file,
//! the regression comparison, and the standard suite (with a broker it starts itself).

pub mod broker_process;
pub mod compare;
pub mod progress;
pub mod report;
pub mod stats;
pub mod suite;
pub mod workload;
