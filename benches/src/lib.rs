//! Shared helpers of the engine benchmarks.
