#!/usr/bin/env python3
"""confluent-kafka clients for the replication tests (tests/replication_*.rs).

Every record's key and value carry its sequence number (key "SEQ", value "v-SEQ"), so a verifier can
match what a consumer reads with what the producer's delivery reports acknowledged.

Modes (each prints JSON lines; the last line is the result):
- produce-continuous BOOTSTRAP TOPIC STOP_FILE: an idempotent acks=all producer sends records at a
  steady pace until STOP_FILE exists, then flushes. Prints {"event": "progress", "acked", "failed"}
  about twice a second and finally {"acked": [[seq, partition, offset], ...], "failed": N,
  "errors": [...]} (failed: delivery reports with an error, which are not acknowledged).
- produce BOOTSTRAP TOPIC PARTITION ACKS COUNT FIRST_SEQ: a plain producer (retries=0, so the
  broker's first answer is the result) sends COUNT records to PARTITION with ACKS; prints
  {"acked": [[seq, partition, offset], ...], "errors": {error name: count}}.
- consume BOOTSTRAP TOPIC: reads every partition from the beginning up to its high watermark
  (what the broker's ListOffsets(latest) answers) without a group; prints {"records": [[partition,
  offset, key, value], ...], "high_watermarks": {partition: offset}}.
- group-consume BOOTSTRAP TOPIC GROUP COUNT: a group member reads COUNT records from the group's
  committed positions (earliest when none), commits them synchronously and leaves; prints
  {"records": [[partition, offset, key], ...], "committed": {partition: offset}}.
- committed BOOTSTRAP TOPIC GROUP PARTITIONS: the group's committed offsets as the coordinator
  answers OffsetFetch; prints {"committed": {partition: offset}}.
Exits non-zero on an unexpected client error.
"""

import json
import os
import sys
import time

from testdata import require_module

require_module("confluent_kafka", "confluent-kafka")
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition  # noqa: E402

# Pace of the continuous producer: enough traffic that every failover interrupts in-flight
# batches, little enough for a 2-core CI machine running three brokers.
RECORDS_PER_SECOND = 300
# Bound on records awaiting their delivery report (the producer blocks beyond it).
MAX_OUTSTANDING = 2_000
# How long a consumer keeps polling without progress before it gives up.
CONSUME_IDLE_TIMEOUT_S = 30
MAX_LISTED_ERRORS = 20


def emit(obj):
    print(json.dumps(obj), flush=True)


def produce_continuous(bootstrap, topic, stop_file):
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            # A failover takes a session timeout plus the election: records wait for it.
            "message.timeout.ms": 120_000,
            "request.timeout.ms": 10_000,
            "retry.backoff.ms": 100,
            "topic.metadata.refresh.interval.ms": 1_000,
        }
    )
    acked = []
    errors = []
    failed = [0]

    def report(err, msg):
        seq = int(msg.key())
        if err is None:
            acked.append([seq, msg.partition(), msg.offset()])
        else:
            failed[0] += 1
            if len(errors) < MAX_LISTED_ERRORS:
                errors.append(f"seq {seq}: {err}")

    seq = 0
    started = time.monotonic()
    last_progress = 0.0
    while not os.path.exists(stop_file):
        due = int((time.monotonic() - started) * RECORDS_PER_SECOND)
        while seq < due and seq - len(acked) - failed[0] < MAX_OUTSTANDING:
            try:
                producer.produce(topic, key=str(seq).encode(), value=f"v-{seq}".encode(),
                                 on_delivery=report)
            except BufferError:
                break
            seq += 1
        producer.poll(0.02)
        now = time.monotonic()
        if now - last_progress >= 0.5:
            last_progress = now
            emit({"event": "progress", "sent": seq, "acked": len(acked), "failed": failed[0]})
    remaining = producer.flush(150)
    emit({"acked": acked, "failed": failed[0], "errors": errors, "sent": seq,
          "unflushed": remaining})


def produce(bootstrap, topic, partition, acks, count, first_seq):
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": acks,
            "retries": 0,
            "enable.idempotence": False,
            "linger.ms": 5,
            "message.timeout.ms": 15_000,
            "request.timeout.ms": 10_000,
        }
    )
    acked = []
    errors = {}

    def report(err, msg):
        if err is None:
            acked.append([int(msg.key()), msg.partition(), msg.offset()])
        else:
            errors[err.name()] = errors.get(err.name(), 0) + 1

    for seq in range(first_seq, first_seq + count):
        producer.produce(topic, key=str(seq).encode(), value=f"v-{seq}".encode(),
                         partition=partition, on_delivery=report)
        producer.poll(0)
    remaining = producer.flush(30)
    emit({"acked": acked, "errors": errors, "unflushed": remaining})


def partitions_of(client, topic):
    metadata = client.list_topics(topic, timeout=20)
    return sorted(metadata.topics[topic].partitions)


def high_watermark(consumer, topic, partition):
    """ListOffsets(latest), retried while a new leader's high watermark is not caught up
    (OFFSET_NOT_AVAILABLE, KIP-207) or the leadership is moving, as applications do."""
    deadline = time.monotonic() + 30
    while True:
        try:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=20)
            return high
        except KafkaException as error:
            moving = error.args[0].code() in (
                KafkaError.OFFSET_NOT_AVAILABLE,
                KafkaError.NOT_LEADER_FOR_PARTITION,
                KafkaError.LEADER_NOT_AVAILABLE,
            )
            if not (moving or error.args[0].retriable()) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def consume(bootstrap, topic):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused-no-commits",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 1_000,
        }
    )
    partitions = partitions_of(consumer, topic)
    high = {}
    for p in partitions:
        high[p] = high_watermark(consumer, topic, p)
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    records = []
    position = {p: 0 for p in partitions}
    last_progress = time.monotonic()
    while any(position[p] < high[p] for p in partitions):
        msg = consumer.poll(0.5)
        if msg is None:
            if time.monotonic() - last_progress > CONSUME_IDLE_TIMEOUT_S:
                emit({"error": "no progress", "position": position, "high_watermarks": high})
                sys.exit(1)
            continue
        if msg.error():
            raise KafkaException(msg.error())
        last_progress = time.monotonic()
        records.append([msg.partition(), msg.offset(), msg.key().decode(), msg.value().decode()])
        position[msg.partition()] = msg.offset() + 1
    consumer.close()
    emit({"records": records, "high_watermarks": {str(p): o for p, o in high.items()}})


def group_consume(bootstrap, topic, group, count):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000,
            "topic.metadata.refresh.interval.ms": 1_000,
        }
    )
    consumer.subscribe([topic])
    records = []
    committed = {}
    last_progress = time.monotonic()
    while len(records) < count:
        msg = consumer.poll(0.5)
        if msg is None:
            if time.monotonic() - last_progress > CONSUME_IDLE_TIMEOUT_S:
                emit({"error": "no progress", "records": len(records)})
                sys.exit(1)
            continue
        if msg.error():
            raise KafkaException(msg.error())
        last_progress = time.monotonic()
        records.append([msg.partition(), msg.offset(), msg.key().decode()])
        committed[msg.partition()] = msg.offset() + 1
        if len(records) == count:
            break
    offsets = [TopicPartition(topic, p, o) for p, o in committed.items()]
    result = consumer.commit(offsets=offsets, asynchronous=False)
    for tp in result:
        if tp.error:
            raise KafkaException(tp.error)
    consumer.close()
    emit({"records": records, "committed": {str(p): o for p, o in committed.items()}})


def committed(bootstrap, topic, group, partitions):
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    answer = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
    consumer.close()
    emit({"committed": {str(tp.partition): tp.offset for tp in answer if tp.offset >= 0}})


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "produce-continuous":
        produce_continuous(*args)
    elif mode == "produce":
        bootstrap, topic, partition, acks, count, first_seq = args
        produce(bootstrap, topic, int(partition), acks, int(count), int(first_seq))
    elif mode == "consume":
        consume(*args)
    elif mode == "group-consume":
        bootstrap, topic, group, count = args
        group_consume(bootstrap, topic, group, int(count))
    elif mode == "committed":
        bootstrap, topic, group, partitions = args
        committed(bootstrap, topic, group, int(partitions))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
