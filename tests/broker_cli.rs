//! The `strom broker` command-line contract the rest of the suite relies on: `strom broker stop
//! --override log.dirs=DIR` stops the broker using DIR (through its pid file), and SIGINT, like
//! SIGTERM, is a clean shutdown with exit code 0 that frees the port.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::*;

fn assert_port_closed(broker: &Broker, after: &str) {
    assert!(
        TcpStream::connect_timeout(&broker.addr(), Duration::from_secs(2)).is_err(),
        "after {after} nothing may listen on {} any more",
        broker.bootstrap()
    );
}

#[test]
fn broker_stop_command_stops_the_broker_using_that_directory() {
    let mut broker = Broker::start(BrokerOpts::new());
    broker.stop_with_cli();
    assert_port_closed(&broker, "`strom broker stop`");
    // The directory is reusable: the same broker starts again on it.
    broker.restart();
    assert!(
        broker.is_running(),
        "broker must start again on the same log.dirs"
    );
}

#[test]
fn sigint_is_a_clean_shutdown() {
    let mut broker = Broker::start(BrokerOpts::new());
    broker.stop_with_sigint();
    assert_port_closed(&broker, "SIGINT");
}
