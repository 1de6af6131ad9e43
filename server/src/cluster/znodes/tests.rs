use super::*;

#[test]
fn paths_follow_kafkas_layout() {
    assert_eq!(broker_path(3), "/brokers/ids/3");
    assert_eq!(topic_path("t"), "/brokers/topics/t");
    assert_eq!(partitions_path("t"), "/brokers/topics/t/partitions");
    assert_eq!(partition_path("t", 2), "/brokers/topics/t/partitions/2");
    assert_eq!(
        partition_state_path("t", 2),
        "/brokers/topics/t/partitions/2/state"
    );
    assert_eq!(topic_config_path("t"), "/config/topics/t");
    assert_eq!(delete_topic_path("t"), "/admin/delete_topics/t");
    assert_eq!(controlled_shutdown_path(4), "/admin/controlled_shutdown/4");
}

#[test]
fn paths_parse_back_and_reject_others() {
    assert_eq!(parse_broker_path("/brokers/ids/3"), Some(3));
    assert_eq!(parse_broker_path("/brokers/ids/x"), None);
    assert_eq!(parse_broker_path("/brokers/ids/-1"), None);
    assert_eq!(parse_broker_path("/brokers/ids"), None);
    assert_eq!(parse_topic_path("/brokers/topics/a.b"), Some("a.b"));
    assert_eq!(parse_topic_path("/brokers/topics/a/partitions"), None);
    assert_eq!(
        parse_partition_state_path("/brokers/topics/a/partitions/7/state"),
        Some(("a", 7))
    );
    assert_eq!(
        parse_partition_state_path("/brokers/topics/a/partitions/7"),
        None
    );
    assert_eq!(
        parse_partition_state_path("/brokers/topics/a/partitions/x/state"),
        None
    );
    assert_eq!(parse_topic_config_path("/config/topics/a"), Some("a"));
    assert_eq!(parse_delete_topic_path("/admin/delete_topics/a"), Some("a"));
    assert_eq!(parse_delete_topic_path("/admin/delete_topics/"), None);
    assert_eq!(
        parse_controlled_shutdown_path("/admin/controlled_shutdown/2"),
        Some(2)
    );
}

#[test]
fn topic_ids_use_kafkas_base64_and_accept_hyphenated_uuids() {
    let id = Uuid::parse_str("6ba7b810-9dad-11d1-80b4-00c04fd430c8").expect("valid uuid");
    let text = topic_id_to_string(id);
    assert_eq!(text.len(), 22);
    assert_eq!(text, "a6e4EJ2tEdGAtADAT9QwyA");
    assert_eq!(parse_topic_id(&text), Ok(id));
    assert_eq!(parse_topic_id("a6e4EJ2tEdGAtADAT9QwyA=="), Ok(id));
    assert_eq!(
        parse_topic_id("6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
        Ok(id)
    );
    assert_eq!(parse_topic_id("AAAAAAAAAAAAAAAAAAAAAA"), Ok(Uuid::nil()));
    assert_eq!(
        topic_id_to_string(Uuid::from_u128(u128::MAX)),
        "_____________________w"
    );
    assert!(
        parse_topic_id("a6e4EJ2tEdGAtADAT9Qwy+").is_err(),
        "+ is not URL-safe"
    );
    assert!(
        parse_topic_id("a6e4EJ2tEdGAtADAT9QwyB").is_err(),
        "non-canonical last char"
    );
    assert!(parse_topic_id("short").is_err());
    assert!(parse_topic_id("").is_err());
}

#[test]
fn topic_ids_round_trip() {
    for n in [
        0u128,
        1,
        255,
        1 << 64,
        u128::MAX - 1,
        0x0123_4567_89ab_cdef_0011_2233_4455_6677,
    ] {
        let id = Uuid::from_u128(n);
        assert_eq!(parse_topic_id(&topic_id_to_string(id)), Ok(id));
    }
}

#[test]
fn broker_registration_decodes_kafka_2_8() {
    let path = "/brokers/ids/1";
    let json = br#"{"features":{},"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT"},"endpoints":["PLAINTEXT://h:9092"],"jmx_port":-1,"port":9092,"host":"h","version":5,"timestamp":"1700000000000"}"#;
    let reg = BrokerRegistration::decode(path, json).expect("Kafka's JSON decodes");
    assert_eq!(reg.host.as_deref(), Some("h"));
    assert_eq!(reg.port, 9092);
    assert_eq!(reg.jmx_port, -1);
    assert_eq!(reg.timestamp_ms, 1_700_000_000_000);
    assert_eq!(
        reg.endpoint("PLAINTEXT"),
        Some(&Endpoint {
            listener: "PLAINTEXT".into(),
            host: "h".into(),
            port: 9092
        })
    );
    assert_eq!(
        reg.listener_security_protocol_map
            .get("PLAINTEXT")
            .map(String::as_str),
        Some("PLAINTEXT")
    );
    assert_eq!(BrokerRegistration::decode(path, &reg.encode()), Ok(reg));
}

#[test]
fn broker_registration_round_trips_with_rack_features_and_ipv6() {
    let reg = BrokerRegistration {
        host: None,
        port: -1,
        endpoints: vec![
            Endpoint {
                listener: "INTERNAL".into(),
                host: "::1".into(),
                port: 9093,
            },
            Endpoint {
                listener: "EXTERNAL".into(),
                host: "".into(),
                port: 9094,
            },
        ],
        listener_security_protocol_map: [("INTERNAL".to_owned(), "PLAINTEXT".to_owned())].into(),
        jmx_port: 9999,
        timestamp_ms: 42,
        rack: Some("r1".into()),
        features: [(
            "metadata.version".to_owned(),
            FeatureRange {
                min_version: 1,
                max_version: 3,
            },
        )]
        .into(),
    };
    let bytes = reg.encode();
    let text = std::str::from_utf8(&bytes).expect("JSON is UTF-8");
    assert!(text.contains(r#""INTERNAL://[::1]:9093""#), "{text}");
    assert!(text.contains(r#""timestamp":"42""#), "{text}");
    assert!(text.contains(r#""version":5"#), "{text}");
    assert_eq!(
        BrokerRegistration::decode("/brokers/ids/2", &bytes),
        Ok(reg)
    );
}

#[test]
fn old_broker_registration_without_endpoints_gets_plaintext() {
    let json = br#"{"jmx_port":-1,"timestamp":"1","host":"old","version":1,"port":9092}"#;
    let reg = BrokerRegistration::decode("/brokers/ids/1", json).expect("version 1 decodes");
    assert_eq!(
        reg.endpoints,
        vec![Endpoint {
            listener: "PLAINTEXT".into(),
            host: "old".into(),
            port: 9092
        }]
    );
}

#[test]
fn malformed_broker_registrations_name_the_path() {
    let path = "/brokers/ids/9";
    let cases: &[&[u8]] = &[
        b"",
        b"not json",
        b"[1,2]",
        br#"{"version":5}"#,
        br#"{"version":6,"timestamp":"1","endpoints":["PLAINTEXT://h:1"]}"#,
        br#"{"version":5,"timestamp":"soon","endpoints":["PLAINTEXT://h:1"]}"#,
        br#"{"version":5,"timestamp":"1","endpoints":["h:1"]}"#,
        br#"{"version":5,"timestamp":"1","endpoints":["PLAINTEXT://h:99999"]}"#,
        br#"{"version":5,"timestamp":"1","endpoints":[]}"#,
        br#"{"version":5,"timestamp":"1","endpoints":"PLAINTEXT://h:1"}"#,
    ];
    for data in cases {
        let err = BrokerRegistration::decode(path, data).expect_err("malformed input must fail");
        assert_eq!(err.path, path);
        assert!(err.to_string().contains(path), "{err}");
    }
}

#[test]
fn topic_assignment_decodes_kafka_2_8() {
    let path = "/brokers/topics/t";
    let json = br#"{"version":3,"topic_id":"a6e4EJ2tEdGAtADAT9QwyA","partitions":{"0":[1,2,3],"1":[2,3,1]},"adding_replicas":{},"removing_replicas":{}}"#;
    let topic = TopicAssignment::decode(path, json).expect("Kafka's JSON decodes");
    assert_eq!(
        topic.topic_id.map(topic_id_to_string).as_deref(),
        Some("a6e4EJ2tEdGAtADAT9QwyA")
    );
    assert_eq!(topic.partitions, vec![vec![1, 2, 3], vec![2, 3, 1]]);
    let bytes = topic.encode();
    assert_eq!(&bytes[..], &json[..], "encoding is byte-for-byte Kafka's");
    assert_eq!(TopicAssignment::decode(path, &bytes), Ok(topic));
}

#[test]
fn topic_assignment_numbers_partitions_numerically_and_accepts_old_versions() {
    let json = br#"{"version":1,"partitions":{"10":[1],"2":[1],"0":[1],"1":[1],"3":[1],"4":[1],"5":[1],"6":[1],"7":[1],"8":[1],"9":[1]}}"#;
    let topic = TopicAssignment::decode("/brokers/topics/t", json).expect("version 1 decodes");
    assert_eq!(topic.partitions.len(), 11);
    assert_eq!(topic.topic_id, None);
    let hyphenated = br#"{"version":3,"topic_id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","partitions":{"0":[1]}}"#;
    let topic =
        TopicAssignment::decode("/brokers/topics/t", hyphenated).expect("hyphenated id decodes");
    assert_eq!(
        topic.topic_id.map(|id| id.to_string()).as_deref(),
        Some("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
    );
    let mut with_reassignment = topic.clone();
    with_reassignment.adding_replicas.insert(0, vec![2]);
    with_reassignment.removing_replicas.insert(0, vec![1]);
    assert_eq!(
        TopicAssignment::decode("/x", &with_reassignment.encode()),
        Ok(with_reassignment)
    );
}

#[test]
fn malformed_topic_assignments_fail() {
    let cases: &[&[u8]] = &[
        br#"{"version":3,"partitions":{}}"#,
        br#"{"version":3,"partitions":{"1":[1]}}"#,
        br#"{"version":3,"partitions":{"0":[1],"2":[1]}}"#,
        br#"{"version":3,"partitions":{"0":[]}}"#,
        br#"{"version":3,"partitions":{"0":[1,1]}}"#,
        br#"{"version":3,"partitions":{"0":[-1]}}"#,
        br#"{"version":3,"partitions":{"x":[1]}}"#,
        br#"{"version":3,"partitions":{"-1":[1]}}"#,
        br#"{"version":3,"topic_id":"nope","partitions":{"0":[1]}}"#,
        br#"{"version":4,"partitions":{"0":[1]}}"#,
        br#"{"partitions":{"0":[1]}}"#,
        br#"{"version":3,"partitions":[[1]]}"#,
    ];
    for data in cases {
        let err = TopicAssignment::decode("/brokers/topics/t", data)
            .expect_err(std::str::from_utf8(data).unwrap_or("?"));
        assert_eq!(err.path, "/brokers/topics/t");
    }
}

#[test]
fn partition_state_decodes_kafka_2_8_and_round_trips() {
    let path = "/brokers/topics/t/partitions/0/state";
    let json = br#"{"controller_epoch":7,"leader":1,"version":1,"leader_epoch":4,"isr":[1,3]}"#;
    let state = PartitionState::decode(path, json, 12).expect("Kafka's JSON decodes");
    assert_eq!(
        state,
        PartitionState {
            leader: 1,
            leader_epoch: 4,
            isr: vec![1, 3],
            controller_epoch: 7,
            zk_version: 12
        }
    );
    assert_eq!(&state.encode()[..], &json[..]);
    let newer = br#"{"controller_epoch":7,"leader":-1,"version":2,"leader_epoch":4,"isr":[3],"leader_recovery_state":0}"#;
    let state = PartitionState::decode(path, newer, 0).expect("version 2 decodes");
    assert_eq!(state.leader, -1);
}

#[test]
fn malformed_partition_states_fail() {
    let cases: &[&[u8]] = &[
        br#"{"controller_epoch":7,"leader":1,"version":3,"leader_epoch":4,"isr":[1]}"#,
        br#"{"controller_epoch":7,"leader":-2,"version":1,"leader_epoch":4,"isr":[1]}"#,
        br#"{"controller_epoch":7,"leader":1,"version":1,"leader_epoch":-4,"isr":[1]}"#,
        br#"{"controller_epoch":7,"leader":1,"version":1,"leader_epoch":4,"isr":[-1]}"#,
        br#"{"controller_epoch":7,"leader":1,"version":1,"leader_epoch":4}"#,
        br#"{"controller_epoch":"7","leader":1,"version":1,"leader_epoch":4,"isr":[1]}"#,
        br#"{"controller_epoch":7,"leader":1,"version":1,"leader_epoch":4,"isr":[1]"#,
    ];
    for data in cases {
        assert!(
            PartitionState::decode("/p", data, 0).is_err(),
            "{}",
            String::from_utf8_lossy(data)
        );
    }
}

#[test]
fn controller_and_epoch_codecs() {
    let json = br#"{"version":1,"brokerid":1,"timestamp":"1700000000000"}"#;
    let controller = ControllerZnode::decode(CONTROLLER_PATH, json).expect("Kafka's JSON decodes");
    assert_eq!(
        controller,
        ControllerZnode {
            broker_id: 1,
            timestamp_ms: 1_700_000_000_000
        }
    );
    assert_eq!(&controller.encode()[..], &json[..]);
    assert!(ControllerZnode::decode(CONTROLLER_PATH, br#"{"version":1,"brokerid":-1}"#).is_err());
    assert!(ControllerZnode::decode(CONTROLLER_PATH, br#"{"version":2,"brokerid":1}"#).is_err());

    assert_eq!(decode_controller_epoch(CONTROLLER_EPOCH_PATH, b"7"), Ok(7));
    assert_eq!(
        decode_controller_epoch(CONTROLLER_EPOCH_PATH, b" 7\n"),
        Ok(7)
    );
    assert_eq!(
        decode_controller_epoch(CONTROLLER_EPOCH_PATH, &encode_controller_epoch(12)),
        Ok(12)
    );
    for bad in [&b""[..], b"x", b"-1", b"99999999999", b"\xff"] {
        let err = decode_controller_epoch(CONTROLLER_EPOCH_PATH, bad).expect_err("not an epoch");
        assert_eq!(err.path, CONTROLLER_EPOCH_PATH);
    }
}

#[test]
fn topic_config_codec_and_unclean_flag() {
    let json = br#"{"version":1,"config":{"retention.ms":"86400000","unclean.leader.election.enable":"true"}}"#;
    let config = TopicConfig::decode("/config/topics/t", json).expect("Kafka's JSON decodes");
    assert_eq!(
        config.config.get("retention.ms").map(String::as_str),
        Some("86400000")
    );
    assert_eq!(config.unclean_leader_election(), Some(true));
    assert_eq!(TopicConfig::decode("/c", &config.encode()), Ok(config));
    assert_eq!(TopicConfig::default().unclean_leader_election(), None);
    assert!(TopicConfig::decode("/c", br#"{"version":1,"config":{"a":1}}"#).is_err());
    assert!(TopicConfig::decode("/c", br#"{"version":2,"config":{}}"#).is_err());
}

#[test]
fn cluster_id_controlled_shutdown_and_producer_id_block_codecs() {
    let json = br#"{"version":"1","id":"Rk5UcWpHVkZTa3dNR1FHUQ"}"#;
    assert_eq!(
        decode_cluster_id(CLUSTER_ID_PATH, json).as_deref(),
        Ok("Rk5UcWpHVkZTa3dNR1FHUQ")
    );
    assert_eq!(&encode_cluster_id("Rk5UcWpHVkZTa3dNR1FHUQ")[..], &json[..]);
    assert!(decode_cluster_id(CLUSTER_ID_PATH, br#"{"version":"1","id":""}"#).is_err());
    assert!(decode_cluster_id(CLUSTER_ID_PATH, br#"{"version":"x","id":"a"}"#).is_err());

    let request = ControlledShutdownRequest {
        broker_epoch: 4294967296,
    };
    assert_eq!(
        &request.encode()[..],
        br#"{"version":1,"broker_epoch":4294967296}"#
    );
    assert_eq!(
        ControlledShutdownRequest::decode("/a", &request.encode()),
        Ok(request)
    );
    assert!(ControlledShutdownRequest::decode("/a", br#"{"version":1}"#).is_err());

    let json = br#"{"version":1,"broker":1,"block_start":"0","block_end":"999"}"#;
    let block =
        ProducerIdBlock::decode(LATEST_PRODUCER_ID_BLOCK_PATH, json).expect("Kafka's JSON decodes");
    assert_eq!(
        block,
        ProducerIdBlock {
            broker: 1,
            block_start: 0,
            block_end: 999
        }
    );
    assert_eq!(ProducerIdBlock::decode("/p", &block.encode()), Ok(block));
    let backwards = br#"{"version":1,"broker":1,"block_start":"10","block_end":"9"}"#;
    assert!(ProducerIdBlock::decode("/p", backwards).is_err());
}

#[test]
fn foreign_json_of_the_wrong_kind_fails_everywhere() {
    let state = br#"{"controller_epoch":7,"leader":1,"version":1,"leader_epoch":4,"isr":[1,3]}"#;
    assert!(BrokerRegistration::decode("/a", state).is_err());
    assert!(TopicAssignment::decode("/a", state).is_err());
    assert!(ControllerZnode::decode("/a", state).is_err());
    assert!(TopicConfig::decode("/a", state).is_err());
    assert!(decode_cluster_id("/a", state).is_err());
    assert!(ControlledShutdownRequest::decode("/a", state).is_err());
    assert!(ProducerIdBlock::decode("/a", state).is_err());
    assert!(decode_controller_epoch("/a", state).is_err());
}

proptest::proptest! {
    #[test]
    fn partition_state_round_trips(leader in -1i32..100, epoch in 0i32..i32::MAX, isr in proptest::collection::vec(0i32..100, 0..5), ce in 0i32..1000, v in 0i32..1000) {
        let state = PartitionState { leader, leader_epoch: epoch, isr, controller_epoch: ce, zk_version: v };
        proptest::prop_assert_eq!(PartitionState::decode("/p", &state.encode(), v), Ok(state));
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(data in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
        let _ = BrokerRegistration::decode("/p", &data);
        let _ = TopicAssignment::decode("/p", &data);
        let _ = PartitionState::decode("/p", &data, 0);
        let _ = ControllerZnode::decode("/p", &data);
        let _ = decode_controller_epoch("/p", &data);
        let _ = TopicConfig::decode("/p", &data);
        let _ = decode_cluster_id("/p", &data);
        let _ = ControlledShutdownRequest::decode("/p", &data);
        let _ = ProducerIdBlock::decode("/p", &data);
        let _ = IsrChangeNotification::decode("/p", &data);
        let _ = decode_config_change("/p", &data);
    }
}

#[test]
fn isr_change_and_config_change_notifications() {
    let json =
        br#"{"version":1,"partitions":[{"topic":"t","partition":0},{"topic":"u","partition":3}]}"#;
    let note =
        IsrChangeNotification::decode("/isr_change_notification/isr_change_0000000001", json)
            .expect("Kafka's JSON decodes");
    assert_eq!(
        note.partitions,
        vec![("t".to_owned(), 0), ("u".to_owned(), 3)]
    );
    assert_eq!(&note.encode()[..], &json[..]);
    assert!(IsrChangeNotification::decode(
        "/i",
        br#"{"version":1,"partitions":[{"topic":"t","partition":-1}]}"#
    )
    .is_err());
    assert!(IsrChangeNotification::decode("/i", br#"{"version":2,"partitions":[]}"#).is_err());
    assert_eq!(
        format!("{ISR_CHANGE_NOTIFICATION_PREFIX}0000000001")
            .rsplit_once('/')
            .map(|(parent, _)| parent),
        Some(ISR_CHANGE_NOTIFICATION_PATH)
    );

    let json = br#"{"version":2,"entity_path":"topics/t"}"#;
    assert_eq!(
        decode_config_change("/config/changes/config_change_0000000000", json).as_deref(),
        Ok("topics/t")
    );
    assert_eq!(&encode_config_change("topics/t")[..], &json[..]);
    assert!(decode_config_change(
        "/c",
        br#"{"version":1,"entity_type":"topics","entity_name":"t"}"#
    )
    .is_err());
    assert_eq!(
        format!("{CONFIG_CHANGE_PREFIX}0")
            .rsplit_once('/')
            .map(|(parent, _)| parent),
        Some(CONFIG_CHANGES_PATH)
    );
}

/// Found by the `znodes` fuzz target (tests/fuzz): a registration without `endpoints` (a
/// misspelled key here) falls back to the legacy host/port, which took any non-negative port;
/// the endpoint it made (port 90949162) could not be encoded and read back, and a client would
/// have been sent it in Metadata. A legacy port must be a real port, as in an endpoint URI.
#[test]
fn fuzz_regression_a_legacy_port_out_of_range_is_refused() {
    let data = br#"{"features":{},"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT"},"andpoints":["PLAINTEXT://128.0.0.1:9092"],"jmx_port":-1,"port":90949162,"host":"127.0.0.1","version":5,"timestamp":"1700000000000","rack":"r1"}"#;
    let error = BrokerRegistration::decode("/brokers/ids/1", data).expect_err("port out of range");
    assert!(error.reason.contains("no endpoints"), "{error}");
    let in_range = String::from_utf8_lossy(data).replace("90949162", "9092");
    let registration =
        BrokerRegistration::decode("/brokers/ids/1", in_range.as_bytes()).expect("valid");
    assert_eq!(registration.endpoints[0].port, 9092);
    assert_eq!(
        BrokerRegistration::decode("/brokers/ids/1", &registration.encode()),
        Ok(registration)
    );
}
