//! A Kafka client on the `kafka-protocol` crate: connections with pipelined requests and
//! version negotiation, cluster metadata, admin operations, a batching producer, a consumer and
//! a group consumer. Works against Strom and any Kafka-compatible broker.

pub mod admin;
pub mod assignor;
pub mod cluster;
pub mod connection;
pub mod consumer;
pub mod errors;
pub mod group_consumer;
pub mod log_dirs;
pub mod producer;
pub mod reassignment;
pub mod records;
pub mod versions;

pub use admin::Admin;
pub use cluster::{Client, ClientConfig};
pub use errors::{ClientError, KafkaCode, Result};
