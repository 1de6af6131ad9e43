//! Strom's tools: a Kafka client library ([`client`]), the `strom` command's user commands
//! ([`cli`]) and the benchmark harness ([`bench`]).

pub mod bench;
pub mod cli;
pub mod client;
pub mod zookeeper_process;
