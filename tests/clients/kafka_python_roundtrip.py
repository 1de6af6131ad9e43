#!/usr/bin/env python3
"""kafka-python 3.x round trip against a running broker.

Creates a topic with KafkaAdminClient, produces COUNT keyed messages with headers and explicit
timestamps through KafkaProducer (idempotent by default in 3.x, broker version auto-detected from
ApiVersions), then reads them back with KafkaConsumer using assign + seek_to_beginning (no group)
and verifies every key, value, header and timestamp byte for byte, per-partition order and the end
offsets. Prints one JSON result as the last stdout line; exits non-zero on any error.
"""

import argparse
import collections
import logging
import sys
import time

from testdata import Report, describe_diff, make_message, message_id, require_module

require_module("kafka", "kafka-python")
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--partitions", type=int, default=3)
    # snappy/lz4/zstd need extra Python packages kafka-python does not pull in.
    parser.add_argument("--compression", default="none", choices=["none", "gzip"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    report = Report("kafka-python-roundtrip", topic=args.topic, compression=args.compression)
    topic = args.topic

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=30_000)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=args.partitions, replication_factor=1)], timeout_ms=30_000)
    except Exception as e:
        report.error(f"create_topics({topic!r}, {args.partitions} partitions) failed: {e!r}")
        report.finish()
    admin.close()

    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap,
        compression_type=None if args.compression == "none" else args.compression,
        linger_ms=5,
        request_timeout_ms=30_000,
    )
    # Auto-detected from the broker's ApiVersions table, and whether idempotence survived it: kafka-python
    # silently turns idempotence off for brokers that look older than 0.11.
    api_version = list(producer.config["api_version"])
    idempotent = bool(producer.config["enable_idempotence"])

    base_ts = int(time.time() * 1000) - 60_000
    futures = []
    for i in range(args.count):
        key, value, headers = make_message(topic, i, null_header_values=False)
        futures.append(producer.send(topic, key=key, value=value, headers=headers, timestamp_ms=base_ts + i))
    producer.flush(timeout=60)
    delivered = {}
    for i, future in enumerate(futures):
        try:
            metadata = future.get(timeout=30)
            delivered[i] = (metadata.partition, metadata.offset)
        except Exception as e:
            report.error(f"send of message {i} failed: {e!r}")
    producer.close(timeout=10)

    # Acknowledged offsets in production order must be 0, 1, 2, ... per partition.
    per_partition = collections.defaultdict(list)
    for i in sorted(delivered):
        per_partition[delivered[i][0]].append(delivered[i][1])
    for p, offsets in sorted(per_partition.items()):
        if offsets != list(range(len(offsets))):
            report.error(f"partition {p}: acknowledged offsets in production order are not 0..{len(offsets) - 1}")

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="none",  # seeking to the beginning must never need a reset
        check_crcs=True,
    )
    partitions = [TopicPartition(topic, p) for p in range(args.partitions)]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    end_offsets = consumer.end_offsets(partitions)
    ends = {tp.partition: end for tp, end in end_offsets.items()}
    for p in range(args.partitions):
        if ends.get(p) != len(per_partition.get(p, [])):
            report.error(f"partition {p}: end offset {ends.get(p)}, expected {len(per_partition.get(p, []))}")

    by_position = {position: i for i, position in delivered.items()}
    next_offset = collections.defaultdict(int)
    consumed = 0
    deadline = time.monotonic() + 90
    while any(next_offset[p] < ends.get(p, 0) for p in range(args.partitions)):
        if time.monotonic() > deadline:
            report.error(f"timed out consuming: reached {dict(next_offset)}, end offsets {ends}")
            break
        for tp, records in consumer.poll(timeout_ms=500).items():
            for r in records:
                p, o = r.partition, r.offset
                if o != next_offset[p]:
                    report.error(f"partition {p}: got offset {o}, expected {next_offset[p]}")
                next_offset[p] = o + 1
                index = by_position.get((p, o))
                if index is None:
                    report.error(f"unexpected message at {topic}/{p}@{o} (id {message_id(r.headers)})")
                    continue
                consumed += 1
                key, value, headers = make_message(topic, index, null_header_values=False)
                where = f"{topic}/{p}@{o} (message {index})"
                if r.key != key:
                    report.error(f"{where}: " + describe_diff("key", key, r.key))
                if r.value != value:
                    report.error(f"{where}: " + describe_diff("value", value, r.value))
                if list(r.headers or []) != headers:
                    report.error(f"{where}: " + describe_diff("headers", headers, list(r.headers or [])))
                if r.timestamp_type != 0 or r.timestamp != base_ts + index:
                    report.error(
                        f"{where}: timestamp expected CreateTime {base_ts + index}, got type {r.timestamp_type} value {r.timestamp}"
                    )
    consumer.close()
    if consumed != len(delivered):
        report.error(f"consumed {consumed} of {len(delivered)} acknowledged messages")

    report.finish(
        produced=args.count,
        delivered=len(delivered),
        consumed=consumed,
        partitions=args.partitions,
        api_version=api_version,
        idempotent=idempotent,
    )


if __name__ == "__main__":
    main()
