//! The network-partition and process-fault harness of issue 11: a private network of
//! namespaces ([`net`]), brokers inside them ([`node`]), a seeded fault schedule ([`schedule`])
//! and the history checker ([`checker`]).
#![allow(dead_code)]

pub mod checker;
pub mod net;
pub mod node;
pub mod schedule;
