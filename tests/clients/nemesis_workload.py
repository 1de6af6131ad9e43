"""Clients of the network-partition test (tests/nemesis_partitions.rs), writing a history.

Every line a client writes to its history file is one JSON object, flushed at once, so the
history survives the client being killed. `t` is time.monotonic() (CLOCK_MONOTONIC, the same
clock in every process on the machine), so events of different clients can be ordered.

  produce BOOTSTRAP TOPIC PARTITIONS STOP_FILE HISTORY
      An idempotent acks=all producer. Record `seq` goes to partition seq % PARTITIONS with value
      "w-SEQ", so within a partition the values are sent in increasing order. History:
      {"op":"send","seq":..,"p":..}  before the send;
      {"op":"ack","seq":..,"p":..,"o":..}  for an acknowledged record;
      {"op":"fail","seq":..,"p":..,"err":..}  for a record that failed (it may or may not be
      in the log: the write is indeterminate).
      Stops sending when STOP_FILE exists, then waits for every outstanding record.

  consume BOOTSTRAP TOPIC GROUP NAME STOP_FILE HISTORY
      A group member that commits synchronously after each poll and when partitions are revoked.
      History: {"op":"read","p":..,"o":..,"v":..}, {"op":"commit","p":..,"o":..,"start":t0,"t":t1}
      for each committed offset (t0/t1 bracket the successful commit), and
      {"op":"assigned","p":..,"committed":..,"start":t0} with the committed offset read right
      after an assignment (the read started at t0).

  read-all BOOTSTRAP TOPIC
      Prints {"records": [[p, o, value], ...]}: every record of the topic up to each partition's
      high watermark, read from the log start, retrying while leaderships settle.
"""

import json
import os
import sys
import time

from testdata import require_module

require_module("confluent_kafka", "confluent-kafka")

from confluent_kafka import (  # noqa: E402
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

# How long the producer keeps retrying one record before it gives up (the record is then
# indeterminate). Longer than a fault plus a leader election.
DELIVERY_TIMEOUT_MS = 60_000
# Records in flight at most: bounds the producer's memory and the history's indeterminate tail.
MAX_OUTSTANDING = 2_000
READ_ALL_IDLE_TIMEOUT_S = 60


class History:
    def __init__(self, path):
        self.file = open(path, "a", buffering=1)

    def write(self, **event):
        event.setdefault("t", time.monotonic())
        self.file.write(json.dumps(event) + "\n")


def produce(bootstrap, topic, partitions, stop_file, history_path):
    partitions = int(partitions)
    history = History(history_path)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "delivery.timeout.ms": DELIVERY_TIMEOUT_MS,
            "request.timeout.ms": 10_000,
            "topic.metadata.refresh.interval.ms": 1_000,
            "retry.backoff.ms": 100,
        }
    )
    outstanding = [0]

    def report(seq, partition):
        def done(err, msg):
            outstanding[0] -= 1
            if err is not None:
                history.write(op="fail", seq=seq, p=partition, err=str(err))
            else:
                history.write(op="ack", seq=seq, p=partition, o=msg.offset())

        return done

    seq = 0
    while not os.path.exists(stop_file):
        if outstanding[0] >= MAX_OUTSTANDING:
            producer.poll(0.05)
            continue
        partition = seq % partitions
        history.write(op="send", seq=seq, p=partition)
        try:
            producer.produce(
                topic,
                value=f"w-{seq}".encode(),
                partition=partition,
                on_delivery=report(seq, partition),
            )
            outstanding[0] += 1
        except BufferError:
            history.write(op="fail", seq=seq, p=partition, err="local queue full")
        seq += 1
        producer.poll(0)
        time.sleep(0.002)
    remaining = producer.flush(DELIVERY_TIMEOUT_MS / 1000 + 30)
    print(json.dumps({"sent": seq, "unflushed": remaining}), flush=True)


def consume(bootstrap, topic, group, name, stop_file, history_path):
    history = History(history_path)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1_000,
            "topic.metadata.refresh.interval.ms": 1_000,
        }
    )
    positions = {}

    def commit(partitions):
        offsets = [TopicPartition(topic, p, o) for p, o in positions.items() if p in partitions]
        if not offsets:
            return
        start = time.monotonic()
        try:
            committed = consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException:
            return
        for tp in committed:
            if tp.error is None:
                history.write(op="commit", p=tp.partition, o=tp.offset, start=start)

    def on_assign(c, assigned):
        for tp in assigned:
            start = time.monotonic()
            try:
                [committed] = c.committed([TopicPartition(topic, tp.partition)], timeout=10)
                history.write(
                    op="assigned", p=tp.partition, committed=committed.offset, start=start
                )
            except KafkaException:
                pass

    def on_revoke(c, revoked):
        commit({tp.partition for tp in revoked})
        for tp in revoked:
            positions.pop(tp.partition, None)

    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    while not os.path.exists(stop_file):
        msgs = consumer.consume(num_messages=500, timeout=0.5)
        for msg in msgs:
            if msg.error():
                continue
            history.write(op="read", p=msg.partition(), o=msg.offset(), v=msg.value().decode())
            positions[msg.partition()] = msg.offset() + 1
        if msgs:
            commit(set(positions))
    commit(set(positions))
    consumer.close()
    print(json.dumps({"stopped": name}), flush=True)


def watermarks(consumer, topic, partition):
    deadline = time.monotonic() + READ_ALL_IDLE_TIMEOUT_S
    while True:
        try:
            return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        except KafkaException as error:
            if time.monotonic() > deadline:
                raise
            if error.args[0].code() not in (
                KafkaError.OFFSET_NOT_AVAILABLE,
                KafkaError.NOT_LEADER_FOR_PARTITION,
                KafkaError.LEADER_NOT_AVAILABLE,
                KafkaError._TIMED_OUT,
                KafkaError._TRANSPORT,
            ) and not error.args[0].retriable():
                raise
            time.sleep(0.5)


def read_all(bootstrap, topic):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "nemesis-read-all-no-commits",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    metadata = consumer.list_topics(topic, timeout=30)
    partitions = sorted(metadata.topics[topic].partitions)
    high = {p: watermarks(consumer, topic, p)[1] for p in partitions}
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    records = []
    position = {p: -1 for p in partitions}
    last_progress = time.monotonic()
    while any(position[p] + 1 < high[p] for p in partitions):
        msg = consumer.poll(0.5)
        if msg is None:
            if time.monotonic() - last_progress > READ_ALL_IDLE_TIMEOUT_S:
                print(json.dumps({"error": "no progress", "position": position, "high": high}))
                sys.exit(1)
            continue
        if msg.error():
            continue
        last_progress = time.monotonic()
        records.append([msg.partition(), msg.offset(), msg.value().decode()])
        position[msg.partition()] = msg.offset()
    consumer.close()
    print(json.dumps({"records": records, "high_watermarks": high}), flush=True)


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "produce":
        produce(*args)
    elif mode == "consume":
        consume(*args)
    elif mode == "read-all":
        read_all(*args)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
