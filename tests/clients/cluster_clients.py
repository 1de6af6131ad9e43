#!/usr/bin/env python3
"""Real clients against a Strom cluster (tests/cluster_clients.rs).

Modes:
- admin: confluent-kafka's AdminClient creates TOPIC (PARTITIONS, RF) and creates TOPIC-kp with
  kafka-python's KafkaAdminClient; both clients then describe the cluster and both topics. Prints
  one JSON object: per client, the brokers, the controller and every partition's leader, replicas
  and ISR.
- stale-producer: a kafka-python producer (acks=all) warms its metadata by sending one message to
  every partition, prints {"event": "ready"}, waits for GO_FILE, then sends COUNT messages to every
  partition with that (by then stale) metadata: a partition whose leader moved answers
  NOT_LEADER_OR_FOLLOWER and the client must refresh and retry. Then a fresh consumer reads every
  partition from the offset of the first post-GO message and checks every value. Prints
  {"acked", "consumed", "errors"}.
Exits non-zero on an unexpected client error.
"""

import argparse
import json
import logging
import os
import sys
import time

from testdata import require_module

require_module("confluent_kafka", "confluent-kafka")
require_module("kafka", "kafka-python")
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import NewTopic as KpNewTopic  # noqa: E402


def confluent_view(bootstrap, topics):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    cluster = admin.describe_cluster().result(20)
    out = {
        "brokers": sorted([n.id, n.host, n.port] for n in cluster.nodes),
        "controller": cluster.controller.id if cluster.controller else None,
        "topics": {},
    }
    metadata = admin.list_topics(timeout=20)
    for topic in topics:
        parts = metadata.topics[topic].partitions
        out["topics"][topic] = {
            str(p): {"leader": m.leader, "replicas": list(m.replicas), "isr": list(m.isrs)}
            for p, m in sorted(parts.items())
        }
    return out


def kafka_python_view(bootstrap, topics):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        cluster = admin.describe_cluster()
        out = {
            "brokers": sorted([b["broker_id"], b["host"], b["port"]] for b in cluster["brokers"]),
            "controller": cluster["controller_id"],
            "topics": {},
        }
        # Keys are the Metadata response's field names.
        for described in admin.describe_topics(topics):
            out["topics"][described["name"]] = {
                str(p["partition_index"]): {
                    "leader": p["leader_id"],
                    "replicas": list(p["replica_nodes"]),
                    "isr": list(p["isr_nodes"]),
                }
                for p in sorted(described["partitions"], key=lambda p: p["partition_index"])
            }
        return out
    finally:
        admin.close()


def admin_mode(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    new = NewTopic(args.topic, num_partitions=args.partitions, replication_factor=args.rf)
    admin.create_topics([new])[args.topic].result(30)
    kp_topic = args.topic + "-kp"
    kp_admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=30_000)
    try:
        kp_admin.create_topics(
            [KpNewTopic(kp_topic, num_partitions=args.partitions, replication_factor=args.rf)],
            timeout_ms=30_000,
        )
    finally:
        kp_admin.close()
    topics = [args.topic, kp_topic]
    print(json.dumps({
        "confluent": confluent_view(args.bootstrap, topics),
        "kafka_python": kafka_python_view(args.bootstrap, topics),
    }))


def stale_producer_mode(args):
    errors = []
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap,
        acks="all",
        retries=50,
        retry_backoff_ms=200,
        request_timeout_ms=10_000,
        # No metadata refresh on a timer: only an error may refresh it.
        metadata_max_age_ms=600_000,
        # Idempotence needs the producer's state on the new leader, which only replication
        # (the next issue) brings; without it the new leader rightly answers
        # OUT_OF_ORDER_SEQUENCE_NUMBER to a producer that already wrote to the old one.
        enable_idempotence=False,
    )
    partitions = sorted(producer.partitions_for(args.topic))
    for p in partitions:
        producer.send(args.topic, value=b"warm-%d" % p, partition=p).get(timeout=30)
    print(json.dumps({"event": "ready", "partitions": partitions}), flush=True)
    deadline = time.time() + 120
    while not os.path.exists(args.go_file):
        if time.time() > deadline:
            sys.exit("no GO file within 120 s")
        time.sleep(0.05)

    first_offset = {}
    acked = 0
    futures = []
    for i in range(args.count):
        for p in partitions:
            futures.append((p, b"m-%d-%d" % (p, i), producer.send(args.topic, value=b"m-%d-%d" % (p, i), partition=p)))
    for p, value, future in futures:
        try:
            meta = future.get(timeout=60)
            acked += 1
            first_offset[p] = min(first_offset.get(p, meta.offset), meta.offset)
        except Exception as error:  # noqa: BLE001 - reported to the Rust test
            errors.append("send to %d failed: %r" % (p, error))
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, enable_auto_commit=False, consumer_timeout_ms=20_000)
    tps = [TopicPartition(args.topic, p) for p in partitions]
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, first_offset.get(tp.partition, 0))
    wanted = {p: [b"m-%d-%d" % (p, i) for i in range(args.count)] for p in partitions}
    got = {p: [] for p in partitions}
    consumed = 0
    deadline = time.time() + 60
    while consumed < acked and time.time() < deadline:
        for tp, records in consumer.poll(timeout_ms=1000).items():
            for record in records:
                got[tp.partition].append(record.value)
                consumed += 1
    consumer.close()
    for p in partitions:
        if got[p] != wanted[p]:
            errors.append("partition %d: read %r, wanted %r" % (p, got[p][:5], wanted[p][:5]))
    print(json.dumps({"acked": acked, "consumed": consumed, "errors": errors}))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["admin", "stale-producer"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--rf", type=int, default=3)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--go-file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    if args.mode == "admin":
        admin_mode(args)
    else:
        stale_producer_mode(args)


if __name__ == "__main__":
    main()
