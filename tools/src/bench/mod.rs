//! The benchmark harness: workloads, HDR latency statistics, the report table and JSON file,
//! and the regression comparison.

pub mod compare;
pub mod progress;
pub mod report;
pub mod stats;
pub mod workload;
