"""Admin operations through confluent-kafka's AdminClient (librdkafka) and kafka-python's
KafkaAdminClient against a Strom broker. Prints one JSON object of observations; exits non-zero
on an unexpected client error. The Rust test asserts on the observations."""
import argparse
import json
import sys

from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic, ResourceType


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    args = parser.parse_args()
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    out = {}

    futures = admin.create_topics([NewTopic(args.topic, num_partitions=2, replication_factor=1, config={"retention.ms": "123456", "unclean.leader.election.enable": "true"})])
    futures[args.topic].result(10)
    # Creating it again is refused with TOPIC_ALREADY_EXISTS.
    try:
        admin.create_topics([NewTopic(args.topic, num_partitions=2, replication_factor=1)])[args.topic].result(10)
        out["recreate_error"] = None
    except Exception as error:  # noqa: BLE001 - the error's code is what is observed
        out["recreate_error"] = error.args[0].name()
    try:
        admin.create_topics([NewTopic(args.topic + "-bad-config", num_partitions=1, replication_factor=1, config={"no.such.config": "1"})])[args.topic + "-bad-config"].result(10)
        out["bad_config_error"] = None
    except Exception as error:  # noqa: BLE001
        out["bad_config_error"] = error.args[0].name()

    resource = ConfigResource(ResourceType.TOPIC, args.topic)
    configs = admin.describe_configs([resource])[resource].result(10)
    out["retention_ms"] = configs["retention.ms"].value
    out["retention_ms_is_default"] = configs["retention.ms"].is_default
    out["segment_bytes_is_default"] = configs["segment.bytes"].is_default
    out["unclean_leader_election"] = configs["unclean.leader.election.enable"].value

    producer = Producer({"bootstrap.servers": args.bootstrap})
    for index in range(10):
        producer.produce(args.topic, value=b"v%d" % index, partition=0)
    producer.flush(10)
    deleted = admin.delete_records([TopicPartition(args.topic, 0, 4)])
    result = list(deleted.values())[0].result(10)
    out["low_watermark"] = result.low_watermark

    admin.create_partitions([NewPartitions(args.topic, 5)])[args.topic].result(10)
    metadata = admin.list_topics(args.topic, timeout=10)
    out["partitions_after_grow"] = len(metadata.topics[args.topic].partitions)

    cluster = admin.describe_cluster().result(10) if hasattr(admin, "describe_cluster") else None
    out["cluster_nodes"] = len(cluster.nodes) if cluster else None

    admin.delete_topics([args.topic])[args.topic].result(10)
    remaining = admin.list_topics(timeout=10).topics
    out["deleted"] = args.topic not in remaining
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001
        print(f"error: {error!r}", file=sys.stderr)
        sys.exit(1)
