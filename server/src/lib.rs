//! Strom's Kafka front end: wire protocol, broker configuration, the coordination store that
//! holds cluster metadata, the broker's shards, connections and one handler per Kafka API.
//!
//! The storage engine lives in `strom-engine`; this crate owns everything a Kafka client can
//! observe on the wire and the control-plane state behind it.

pub mod admin_http;
pub mod broker;
pub mod cluster;
pub mod config;
pub mod control_plane;
pub mod coordination;
#[doc(hidden)]
pub mod fuzz_api;
pub mod group;
pub mod handlers;
pub mod metrics;
pub mod network;
pub mod protocol;
pub mod replication;
