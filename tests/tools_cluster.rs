//! `strom cluster info` against a real broker.

mod common;
mod tools_support;

use common::*;
use tools_support::*;

#[test]
fn cluster_info_lists_brokers_controller_and_topics() {
    let broker = Broker::start(BrokerOpts::new());
    let topic = unique_topic("tools-cluster");
    create_topic(&broker, &topic, 4);
    let out = strom(&broker, &["cluster", "info"]);
    out.assert_success();
    let text = out.stdout_str();
    assert!(
        text.lines()
            .next()
            .is_some_and(|l| l.starts_with("Cluster ID: ") && l.len() > "Cluster ID: ".len()),
        "{text}"
    );
    assert!(text.contains("Controller: "), "{text}");
    assert!(text.contains("Brokers: 1"), "{text}");
    let broker_row = table_rows(&out)
        .into_iter()
        .find(|r| r.get(1) == Some(&broker.bootstrap()))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        broker_row.last().map(String::as_str),
        Some("controller"),
        "{text}"
    );
    assert!(text.contains("Topics: 1 (4 partitions)"), "{text}");
}
