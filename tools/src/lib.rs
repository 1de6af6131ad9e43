//! Strom's tools: a Kafka client library ([`client`]), the `strom` command's user commands
//! ([`cli`]), the benchmark harness ([`bench`]) and a ZooKeeper launcher for tests and local
//! clusters ([`zookeeper_process`]), and a FUSE filesystem that can lose power, for tests
//! ([`powerloss_fs`]).

pub mod bench;
pub mod cli;
pub mod client;
pub mod powerloss_fs;
pub mod zookeeper_process;
