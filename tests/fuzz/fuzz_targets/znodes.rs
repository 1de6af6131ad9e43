//! The ZooKeeper znode parsers (`strom_server::cluster::znodes`): Kafka 2.8's JSON documents,
//! the topic-id and endpoint formats inside them, and the znode path parsers. The first byte
//! picks the parser, the rest is the znode's data (or path, or text). Whatever a parser
//! accepts must survive its encoder: decoding the encoded value gives the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_server::cluster::znodes::{self as z};

/// decode → encode → decode must be a fixed point.
macro_rules! round_trip {
    ($decoded:expr, |$value:ident| $encode:expr, |$bytes:ident| $decode:expr) => {
        if let Ok($value) = $decoded {
            let $bytes: &[u8] = &$encode;
            let again = $decode.expect("an encoded znode decodes");
            assert_eq!($value, again, "znode round trip");
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    const PATH: &str = "/fuzz";
    match which % 16 {
        0 => round_trip!(
            z::BrokerRegistration::decode(PATH, data),
            |v| v.encode(),
            |b| { z::BrokerRegistration::decode(PATH, b) }
        ),
        1 => round_trip!(
            z::TopicAssignment::decode(PATH, data),
            |v| v.encode(),
            |b| { z::TopicAssignment::decode(PATH, b) }
        ),
        2 => round_trip!(
            z::PartitionState::decode(PATH, data, 3),
            |v| v.encode(),
            |b| { z::PartitionState::decode(PATH, b, 3) }
        ),
        3 => round_trip!(
            z::ControllerZnode::decode(PATH, data),
            |v| v.encode(),
            |b| { z::ControllerZnode::decode(PATH, b) }
        ),
        4 => round_trip!(
            z::decode_controller_epoch(PATH, data),
            |v| z::encode_controller_epoch(v),
            |b| { z::decode_controller_epoch(PATH, b) }
        ),
        5 => round_trip!(z::TopicConfig::decode(PATH, data), |v| v.encode(), |b| {
            z::TopicConfig::decode(PATH, b)
        }),
        6 => round_trip!(
            z::decode_cluster_id(PATH, data),
            |v| z::encode_cluster_id(&v),
            |b| { z::decode_cluster_id(PATH, b) }
        ),
        7 => round_trip!(
            z::ControlledShutdownRequest::decode(PATH, data),
            |v| v.encode(),
            |b| { z::ControlledShutdownRequest::decode(PATH, b) }
        ),
        8 => round_trip!(
            z::ProducerIdBlock::decode(PATH, data),
            |v| v.encode(),
            |b| { z::ProducerIdBlock::decode(PATH, b) }
        ),
        9 => round_trip!(
            z::IsrChangeNotification::decode(PATH, data),
            |v| v.encode(),
            |b| { z::IsrChangeNotification::decode(PATH, b) }
        ),
        10 => round_trip!(
            z::decode_config_change(PATH, data),
            |v| z::encode_config_change(&v),
            |b| { z::decode_config_change(PATH, b) }
        ),
        11 => {
            if let Ok(text) = std::str::from_utf8(data) {
                if let Ok(id) = z::parse_topic_id(text) {
                    assert_eq!(z::parse_topic_id(&z::topic_id_to_string(id)), Ok(id));
                }
            }
        }
        12 => {
            if let Ok(text) = std::str::from_utf8(data) {
                if let Ok(endpoint) = z::Endpoint::parse(text) {
                    assert_eq!(z::Endpoint::parse(&endpoint.to_uri()), Ok(endpoint));
                }
            }
        }
        _ => {
            if let Ok(path) = std::str::from_utf8(data) {
                if let Some(id) = z::parse_broker_path(path) {
                    assert_eq!(z::parse_broker_path(&z::broker_path(id)), Some(id));
                }
                if let Some((topic, partition)) = z::parse_partition_state_path(path) {
                    let again = z::partition_state_path(topic, partition);
                    assert_eq!(
                        z::parse_partition_state_path(&again),
                        Some((topic, partition))
                    );
                }
                let _ = z::parse_topic_path(path);
                let _ = z::parse_topic_config_path(path);
                let _ = z::parse_delete_topic_path(path);
                let _ = z::parse_controlled_shutdown_path(path);
            }
        }
    }
});
