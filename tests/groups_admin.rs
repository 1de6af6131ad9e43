//! Group administration through confluent-kafka's AdminClient: list_consumer_groups (ListGroups),
//! describe_consumer_groups (DescribeGroups), list_consumer_group_offsets (OffsetFetch) and
//! delete_consumer_groups (DeleteGroups). Deleting an empty group removes it and its offsets;
//! deleting a group with a member fails with NON_EMPTY_GROUP and leaves it working; deleting an
//! unknown group fails with GROUP_ID_NOT_FOUND.

mod common;

use std::time::Duration;

use common::*;

const PARTITIONS: u32 = 3;
const NON_EMPTY_GROUP: i64 = 68;
const GROUP_ID_NOT_FOUND: i64 = 69;

/// The listing of `group` in a `list` answer, if present.
fn listed<'a>(answer: &'a serde_json::Value, group: &str) -> Option<&'a serde_json::Value> {
    answer["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == group)
}

#[test]
fn list_describe_and_delete_consumer_groups() {
    let broker = Broker::start(BrokerOpts::new().set("group.initial.rebalance.delay.ms", 0));
    let topic = unique_topic("groups-admin");
    let idle = format!("{topic}-idle");
    let active = format!("{topic}-active");
    let dir = tempfile::tempdir().expect("temporary directory");
    group_produce(&broker, &topic, PARTITIONS, 0, 30, true, &[]);

    // `idle`: read everything, commit, leave (the group is Empty with offsets).
    let consumer = |name: &str, group: &str, extra: &[&str]| {
        let mut opts = vec!["--commit", "manual"];
        opts.extend_from_slice(extra);
        GroupMember::spawn(
            GroupClient::Confluent,
            name,
            &broker,
            &topic,
            group,
            dir.path(),
            &opts,
        )
    };
    consumer("idle-consumer", &idle, &["--expect", "30"]).finish_ok();
    // `active`: a member that stays until told to stop.
    let mut members = vec![consumer("active-consumer", &active, &[])];
    wait_for_members(
        &mut members,
        Duration::from_secs(30),
        "the active member to read everything",
        |ms| ms[0].assignment.is_some() && ms[0].messages.len() >= 30,
    );

    let answers = group_admin(
        &broker,
        &[
            "list",
            &format!("describe={idle},{active}"),
            &format!("offsets={idle}:{topic}:{PARTITIONS}"),
        ],
    );
    let (list, describe, offsets) = (&answers[0], &answers[1], &answers[2]);
    assert_eq!(
        listed(list, &idle).map(|g| &g["state"]),
        Some(&"EMPTY".into()),
        "ListGroups: the idle group is listed as Empty: {list}"
    );
    assert_eq!(
        listed(list, &active).map(|g| &g["state"]),
        Some(&"STABLE".into()),
        "ListGroups: the active group is listed as Stable: {list}"
    );
    assert_eq!(
        listed(list, &active).unwrap()["simple"],
        false,
        "a subscribed group is not simple: {list}"
    );
    let idle_desc = &describe["groups"][&idle];
    assert_eq!(
        idle_desc["state"], "EMPTY",
        "DescribeGroups of the idle group: {describe}"
    );
    assert_eq!(
        idle_desc["members"].as_array().map(Vec::len),
        Some(0),
        "{describe}"
    );
    let active_desc = &describe["groups"][&active];
    assert_eq!(
        active_desc["state"], "STABLE",
        "DescribeGroups of the active group: {describe}"
    );
    assert_eq!(active_desc["assignor"], "range", "{describe}");
    let active_members = active_desc["members"].as_array().unwrap();
    assert_eq!(active_members.len(), 1, "{describe}");
    assert_eq!(
        active_members[0]["client_id"], "active-consumer",
        "{describe}"
    );
    assert_eq!(
        active_members[0]["member_id"],
        members[0].member_id.as_str(),
        "{describe}"
    );
    let all: Vec<serde_json::Value> = (0..PARTITIONS)
        .map(|p| serde_json::json!([topic, p]))
        .collect();
    assert_eq!(
        active_members[0]["partitions"],
        serde_json::Value::from(all),
        "{describe}"
    );
    for p in 0..PARTITIONS {
        assert_eq!(
            offsets["offsets"][p.to_string()],
            10,
            "idle group's offsets: {offsets}"
        );
    }

    // Delete: the active group is refused, the idle one goes, an unknown one is not found.
    let unknown = format!("{topic}-unknown");
    let answers = group_admin(
        &broker,
        &[
            &format!("delete={active}"),
            &format!("delete={idle}"),
            &format!("delete={unknown}"),
            "list",
            &format!("offsets={idle}:{topic}:{PARTITIONS}"),
            &format!("describe={active}"),
        ],
    );
    let refused = &answers[0]["results"][&active];
    assert_eq!(
        refused["code"], NON_EMPTY_GROUP,
        "deleting a group with a member: {refused}"
    );
    assert_eq!(
        answers[1]["results"][&idle]["ok"], true,
        "deleting an empty group: {}",
        answers[1]
    );
    let not_found = &answers[2]["results"][&unknown];
    assert_eq!(
        not_found["code"], GROUP_ID_NOT_FOUND,
        "deleting an unknown group: {not_found}"
    );
    let list = &answers[3];
    assert!(
        listed(list, &idle).is_none(),
        "a deleted group is no longer listed: {list}"
    );
    assert!(
        listed(list, &active).is_some(),
        "the refused deletion kept the active group: {list}"
    );
    for p in 0..PARTITIONS {
        assert_eq!(
            answers[4]["offsets"][p.to_string()],
            -1001,
            "a deleted group's offsets are gone (-1001: no offset): {}",
            answers[4]
        );
    }
    assert_eq!(
        answers[5]["groups"][&active]["state"], "STABLE",
        "{}",
        answers[5]
    );

    // The active group still works: new messages reach its member, which commits them.
    group_produce(&broker, &topic, PARTITIONS, 30, 30, false, &[]);
    wait_for_members(
        &mut members,
        Duration::from_secs(30),
        "the active member to read the new messages",
        |ms| ms[0].messages.len() >= 60,
    );
    members[0].stop();
    members[0].finish_ok();
    assert_eq!(
        members[0].messages.len(),
        60,
        "messages read by the active member"
    );

    // Now Empty: its deletion succeeds.
    let answers = group_admin(&broker, &[&format!("delete={active}"), "list"]);
    assert_eq!(
        answers[0]["results"][&active]["ok"], true,
        "deleting the group after its member left: {}",
        answers[0]
    );
    assert!(listed(&answers[1], &active).is_none(), "{}", answers[1]);

    // A deleted group can be used again from scratch: a new consumer reads from the beginning.
    consumer("idle-again", &idle, &["--expect", "60", "--timeout", "20"]).finish_ok();
}
