#!/usr/bin/env python3
"""confluent-kafka (librdkafka) client checks against a running broker.

Subcommands (each prints one JSON result as its last stdout line and exits non-zero on any error):

  roundtrip          create a topic (AdminClient), produce COUNT keyed messages with headers and explicit
                     timestamps, count delivery reports, then consume everything with assign + seek to
                     the beginning and verify every key, value, header and timestamp byte for byte, the
                     partition order and the watermarks. Options: --compression, --idempotence.
  offsets-for-times  produce messages with spaced timestamps, check offsets_for_times (ListOffsets by
                     timestamp) against the delivery reports, then consume and verify everything.
  produce-tracked    produce COUNT messages at a fixed rate with acks=all, printing progress lines
                     {"progress": {"acked": N}} so a test can restart or kill the broker midway; writes
                     every acknowledged (id, partition, offset) to --acked-file.
  verify-acked       consume the whole topic and check every message listed in --acked-file is at its
                     acknowledged partition and offset with the exact bytes, and nothing is corrupt.

Message contents come from testdata.make_message(topic, index), so verifiers rebuild them exactly.
"""

import argparse
import collections
import functools
import json
import logging
import re
import sys
import time

from testdata import Report, describe_diff, make_message, message_id, require_module

ck = require_module("confluent_kafka", "confluent-kafka")
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

CONSUMER_GROUP = "strom-tests-assign-only"  # required by the Python client; never joined or committed


def create_topic(bootstrap, topic, partitions, report):
    """Creates the topic and waits until metadata shows all its partitions with a leader."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=15,
        request_timeout=15,
    )
    try:
        futures[topic].result(timeout=30)
    except Exception as e:  # KafkaException or a timeout: either way the test cannot go on
        report.error(f"create_topics({topic!r}, {partitions} partitions) failed: {e}")
        report.finish()
    deadline = time.monotonic() + 15
    while True:
        metadata = admin.list_topics(topic=topic, timeout=10)
        t = metadata.topics.get(topic)
        if (
            t is not None
            and t.error is None
            and len(t.partitions) == partitions
            and all(p.leader >= 0 for p in t.partitions.values())
        ):
            return
        if time.monotonic() > deadline:
            report.error(f"topic {topic!r} not in metadata with {partitions} led partitions after create: {t}")
            report.finish()
        time.sleep(0.2)


class ProduceLog(logging.Handler):
    """Counts produced messages per compression codec from librdkafka's `msg` debug lines, e.g.
    'Produce MessageSet with 40 message(s) (301 bytes, ApiVersion 10, MsgVersion 2, ..., zstd)'.
    This shows whether the client really compressed: old librdkafka silently falls back to
    uncompressed when the broker's advertised Produce versions look too old."""

    PATTERN = re.compile(r"Produce MessageSet with (\d+) message\(s\) .*, (\w+)\)\s*$")

    def __init__(self):
        super().__init__()
        self.messages_by_codec = collections.Counter()
        self.produce_api_versions = set()

    def emit(self, record):
        text = record.getMessage()
        match = self.PATTERN.search(text)
        if match:
            self.messages_by_codec[match.group(2)] += int(match.group(1))
            version = re.search(r"ApiVersion (\d+)", text)
            if version:
                self.produce_api_versions.add(int(version.group(1)))


def new_producer(bootstrap, extra, log_batches=True):
    """A producer with acks=all; with log_batches, its ProduceLog counts messages per codec."""
    log = ProduceLog()
    conf = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 30_000,
    }
    if log_batches:
        logger = logging.getLogger("librdkafka-producer")
        logger.setLevel(logging.DEBUG)
        logger.addHandler(log)
        conf.update({"debug": "msg", "logger": logger})
    conf.update(extra)
    return ck.Producer(conf), log


def produce_messages(producer, topic, indices, timestamp_of, on_delivery, pace=None):
    """Produces make_message(topic, i) for each index; on_delivery(i, err, msg) is called from poll."""
    next_send = time.monotonic()
    for i in indices:
        key, value, headers = make_message(topic, i)
        callback = functools.partial(on_delivery, i)
        while True:
            try:
                producer.produce(
                    topic, key=key, value=value, headers=headers, timestamp=timestamp_of(i), on_delivery=callback
                )
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                producer.poll(0.05)
        if pace:
            next_send += pace
            while (wait := next_send - time.monotonic()) > 0:
                producer.poll(wait)
        else:
            producer.poll(0)


def check_delivery_order(delivered, report):
    """Within each partition, acknowledged offsets taken in production order must be 0, 1, 2, ...:
    dense offsets from 0 on a fresh topic, and the producer's order kept."""
    per_partition = collections.defaultdict(list)
    for i in sorted(delivered):
        partition, offset = delivered[i]
        per_partition[partition].append((offset, i))
    for partition, entries in sorted(per_partition.items()):
        for expected_offset, (offset, i) in enumerate(entries):
            if offset != expected_offset:
                report.error(
                    f"partition {partition}: message {i} acknowledged at offset {offset}, expected "
                    f"{expected_offset} (offsets must be dense from 0 and follow production order)"
                )
                break
    return {p: len(v) for p, v in per_partition.items()}


def new_consumer(bootstrap):
    return ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": CONSUMER_GROUP,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            # Seeking to the beginning must never need a reset: make a bad offset an error.
            "auto.offset.reset": "error",
            # Verify every fetched batch's CRC: catches a broker that corrupts stored batches.
            "check.crcs": True,
        }
    )


def watermarks(consumer, topic, partitions, report):
    result = {}
    for p in range(partitions):
        try:
            result[p] = consumer.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=15)
        except ck.KafkaException as e:
            report.error(f"get_watermark_offsets({topic}/{p}) failed: {e}")
            report.finish()
    return result


def consume_all(consumer, topic, ends, report, timeout_s=90):
    """Reads partitions p = 0.. from the beginning up to ends[p] (exclusive) with assign + seek and
    returns the messages in the order received. A message at or past ends[p] is an error."""
    consumer.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in ends])
    pending = set(ends)
    received = []
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        err = msg.error()
        if err is not None:
            if err.code() == ck.KafkaError._PARTITION_EOF:
                if msg.offset() >= ends.get(msg.partition(), 0):
                    pending.discard(msg.partition())
                continue
            report.error(f"consumer error on {msg.topic()}/{msg.partition()}: {err}")
            if err.fatal() or msg.topic() == topic:
                break
            continue
        if msg.offset() >= ends.get(msg.partition(), 0):
            report.error(f"message at {topic}/{msg.partition()} offset {msg.offset()} is past the high watermark")
            continue
        received.append(msg)
    if pending:
        report.error(f"timed out consuming: partitions {sorted(pending)} never reached their end {ends}")
    return received


def verify_message(msg, topic, index, timestamp, report):
    """Compares a consumed message with make_message(topic, index) and the produced timestamp."""
    key, value, headers = make_message(topic, index)
    where = f"{topic}/{msg.partition()}@{msg.offset()} (message {index})"
    if msg.key() != key:
        report.error(f"{where}: " + describe_diff("key", key, msg.key()))
    if msg.value() != value:
        report.error(f"{where}: " + describe_diff("value", value, msg.value()))
    got_headers = msg.headers() or []
    if got_headers != headers:
        report.error(f"{where}: " + describe_diff("headers", headers, got_headers))
    ts_type, ts = msg.timestamp()
    if ts_type != ck.TIMESTAMP_CREATE_TIME or ts != timestamp:
        report.error(f"{where}: timestamp expected CreateTime {timestamp}, got type {ts_type} value {ts}")


def verify_consumed(received, topic, delivered, timestamp_of, report):
    """Every delivered message consumed exactly once, at its acknowledged position, byte for byte,
    and each partition read in increasing offset order."""
    by_position = {position: i for i, position in delivered.items()}
    seen = set()
    last_offset = {}
    for msg in received:
        position = (msg.partition(), msg.offset())
        if msg.offset() <= last_offset.get(msg.partition(), -1):
            report.error(f"partition {msg.partition()}: offset {msg.offset()} after {last_offset[msg.partition()]}")
        last_offset[msg.partition()] = msg.offset()
        index = by_position.get(position)
        if index is None:
            report.error(f"unexpected message at {topic}/{position[0]}@{position[1]} (id {message_id(msg.headers())})")
            continue
        if position in seen:
            report.error(f"message at {topic}/{position[0]}@{position[1]} consumed twice")
            continue
        seen.add(position)
        verify_message(msg, topic, index, timestamp_of(index), report)
    missing = [i for i, position in delivered.items() if position not in seen]
    if missing:
        report.error(f"{len(missing)} acknowledged messages never consumed, e.g. {sorted(missing)[:10]}")
    return len(seen)


def produce_and_check(args, report, producer_conf, timestamp_of):
    """Shared by roundtrip and offsets-for-times: produce, check delivery reports, watermarks."""
    producer, log = new_producer(args.bootstrap, producer_conf)
    delivered = {}

    def on_delivery(i, err, msg):
        if err is not None:
            report.error(f"delivery of message {i} failed: {err}")
        else:
            delivered[i] = (msg.partition(), msg.offset())

    produce_messages(producer, args.topic, range(args.count), timestamp_of, on_delivery)
    remaining = producer.flush(60)
    if remaining:
        report.error(f"{remaining} messages still undelivered after flush(60s)")
    if len(delivered) != args.count:
        report.error(f"{len(delivered)} of {args.count} messages acknowledged")
    per_partition = check_delivery_order(delivered, report)
    return delivered, per_partition, log


def cmd_roundtrip(args):
    report = Report("roundtrip", topic=args.topic, compression=args.compression, idempotence=args.idempotence)
    create_topic(args.bootstrap, args.topic, args.partitions, report)
    base_ts = int(time.time() * 1000) - 60_000
    timestamp_of = lambda i: base_ts + i  # noqa: E731
    conf = {"compression.type": args.compression, "enable.idempotence": args.idempotence}
    if not args.idempotence:
        # Keeps production order even if a request is retried (idempotence keeps it by itself).
        conf["max.in.flight.requests.per.connection"] = 1
    delivered, per_partition, log = produce_and_check(args, report, conf, timestamp_of)

    consumer = new_consumer(args.bootstrap)
    marks = watermarks(consumer, args.topic, args.partitions, report)
    for p, (low, high) in marks.items():
        if (low, high) != (0, per_partition.get(p, 0)):
            report.error(f"partition {p}: watermarks (low, high) = {(low, high)}, expected (0, {per_partition.get(p, 0)})")
    received = consume_all(consumer, args.topic, {p: high for p, (_, high) in marks.items()}, report)
    consumed = verify_consumed(received, args.topic, delivered, timestamp_of, report)
    consumer.close()

    if args.compression != "none":
        compressed = log.messages_by_codec.get(args.compression, 0)
        # librdkafka sends a batch uncompressed when compression does not shrink it (tiny batches),
        # so require the codec on most messages rather than all.
        if compressed < 0.9 * args.count:
            report.error(
                f"only {compressed} of {args.count} messages were sent with {args.compression}: "
                f"{dict(log.messages_by_codec)} (does the broker advertise the Produce versions the codec needs?)"
            )
    report.finish(
        produced=args.count,
        delivered=len(delivered),
        consumed=consumed,
        partitions=args.partitions,
        per_partition={str(p): n for p, n in sorted(per_partition.items())},
        messages_by_codec=dict(log.messages_by_codec),
        produce_api_versions=sorted(log.produce_api_versions),
    )


def cmd_offsets_for_times(args):
    report = Report("offsets-for-times", topic=args.topic)
    create_topic(args.bootstrap, args.topic, args.partitions, report)
    spacing = 10  # ms between consecutive messages, so "timestamp + 1" falls between two messages
    base_ts = int(time.time() * 1000) - 600_000
    timestamp_of = lambda i: base_ts + spacing * i  # noqa: E731
    conf = {"max.in.flight.requests.per.connection": 1}
    delivered, per_partition, _ = produce_and_check(args, report, conf, timestamp_of)

    # Per partition: (offset, timestamp) in offset order, from the delivery reports.
    log_of = collections.defaultdict(list)
    for i, (p, o) in delivered.items():
        log_of[p].append((o, timestamp_of(i)))
    for entries in log_of.values():
        entries.sort()

    def expected_offset(p, target):
        """Kafka's answer: the earliest offset whose timestamp is >= target, or -1 if none."""
        return next((o for o, ts in log_of[p] if ts >= target), -1)

    last = args.count - 1
    samples = sorted({0, 1, args.count // 3, args.count // 2, last - 1, last})
    targets = [base_ts - 5_000]
    targets += [timestamp_of(i) for i in samples]  # exact hits
    targets += [timestamp_of(i) + 1 for i in samples]  # between two messages (or after the last)
    targets += [timestamp_of(last) + 3_600_000]  # far after everything: -1 everywhere

    consumer = new_consumer(args.bootstrap)
    checked = 0
    for target in targets:
        query = [ck.TopicPartition(args.topic, p, target) for p in range(args.partitions)]
        try:
            answers = consumer.offsets_for_times(query, timeout=15)
        except ck.KafkaException as e:
            report.error(f"offsets_for_times({target}) failed: {e}")
            continue
        for answer in answers:
            want = expected_offset(answer.partition, target)
            checked += 1
            if answer.error is not None:
                report.error(f"offsets_for_times({target}) partition {answer.partition}: error {answer.error}")
            elif answer.offset != want:
                report.error(
                    f"offsets_for_times({target}) partition {answer.partition}: got offset {answer.offset}, expected {want}"
                )

    marks = watermarks(consumer, args.topic, args.partitions, report)
    for p, (low, high) in marks.items():
        if (low, high) != (0, per_partition.get(p, 0)):
            report.error(f"partition {p}: watermarks (low, high) = {(low, high)}, expected (0, {per_partition.get(p, 0)})")
    received = consume_all(consumer, args.topic, {p: high for p, (_, high) in marks.items()}, report)
    consumed = verify_consumed(received, args.topic, delivered, timestamp_of, report)
    consumer.close()
    report.finish(produced=args.count, delivered=len(delivered), consumed=consumed, queries_checked=checked)


def cmd_produce_tracked(args):
    report = Report("produce-tracked", topic=args.topic)
    if args.create:
        create_topic(args.bootstrap, args.topic, args.partitions, report)
    producer, _ = new_producer(
        args.bootstrap,
        {
            # Long enough to ride out a broker restart: librdkafka retries until this expires.
            "message.timeout.ms": 90_000,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
            "retry.backoff.ms": 100,
        },
        log_batches=False,
    )
    acked = {}
    failed = {}

    def on_delivery(i, err, msg):
        if err is not None:
            failed[i] = str(err)
            report.error(f"delivery of message {i} failed: {err}")
            return
        acked[i] = (msg.partition(), msg.offset())
        if len(acked) % 50 == 0:
            print(json.dumps({"progress": {"acked": len(acked)}}), flush=True)

    base_ts = int(time.time() * 1000)
    produce_messages(
        producer, args.topic, range(args.count), lambda i: base_ts + i, on_delivery, pace=1.0 / args.rate
    )
    remaining = producer.flush(120)
    if remaining:
        report.error(f"{remaining} messages still undelivered after flush(120s)")
    with open(args.acked_file, "w") as f:
        json.dump({"acked": sorted([i, p, o] for i, (p, o) in acked.items())}, f)
    if len(acked) != args.count:
        report.error(f"{len(acked)} of {args.count} messages acknowledged")
    report.finish(produced=args.count, acked=len(acked), failed=len(failed))


def cmd_verify_acked(args):
    report = Report("verify-acked", topic=args.topic)
    with open(args.acked_file) as f:
        acked = {i: (p, o) for i, p, o in json.load(f)["acked"]}
    consumer = new_consumer(args.bootstrap)
    marks = watermarks(consumer, args.topic, args.partitions, report)
    for p, (low, _) in marks.items():
        if low != 0:
            report.error(f"partition {p}: low watermark {low}, expected 0 (nothing was deleted)")
    received = consume_all(consumer, args.topic, {p: high for p, (_, high) in marks.items()}, report)
    consumer.close()

    at_position = {}
    next_offset = collections.defaultdict(int)
    ids_seen = collections.Counter()
    for msg in received:
        p, o = msg.partition(), msg.offset()
        if o != next_offset[p]:
            report.error(f"partition {p}: offset {o} follows {next_offset[p] - 1} (offsets must be dense)")
        next_offset[p] = o + 1
        index = message_id(msg.headers())
        if index is None:
            report.error(f"{args.topic}/{p}@{o}: message without a valid id header (corrupt?)")
            continue
        key, value, headers = make_message(args.topic, index)
        if (msg.key(), msg.value(), msg.headers() or []) != (key, value, headers):
            report.error(f"{args.topic}/{p}@{o}: bytes differ from message {index} as produced")
        at_position[(p, o)] = index
        ids_seen[index] += 1

    lost = [i for i, position in sorted(acked.items()) if at_position.get(position) != i]
    if lost:
        examples = [(i, acked[i], at_position.get(acked[i])) for i in lost[:10]]
        report.error(
            f"{len(lost)} acknowledged messages are not at their acknowledged partition/offset; "
            f"(id, (partition, offset), id found there): {examples}"
        )
    report.finish(
        acked=len(acked),
        consumed=len(received),
        distinct_ids=len(ids_seen),
        duplicates=sum(n - 1 for n in ids_seen.values()),
        lost=len(lost),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, with_count=True):
        p.add_argument("--bootstrap", required=True)
        p.add_argument("--topic", required=True)
        p.add_argument("--partitions", type=int, default=3)
        if with_count:
            p.add_argument("--count", type=int, required=True)

    rt = sub.add_parser("roundtrip")
    common(rt)
    rt.add_argument("--compression", default="none", choices=["none", "gzip", "snappy", "lz4", "zstd"])
    rt.add_argument("--idempotence", action="store_true")
    rt.set_defaults(run=cmd_roundtrip)

    oft = sub.add_parser("offsets-for-times")
    common(oft)
    oft.set_defaults(run=cmd_offsets_for_times)

    pt = sub.add_parser("produce-tracked")
    common(pt)
    pt.add_argument("--rate", type=float, default=1000.0, help="messages per second")
    pt.add_argument("--acked-file", required=True)
    pt.add_argument("--create", action="store_true", help="create the topic first")
    pt.set_defaults(run=cmd_produce_tracked)

    va = sub.add_parser("verify-acked")
    common(va, with_count=False)
    va.add_argument("--acked-file", required=True)
    va.set_defaults(run=cmd_verify_acked)

    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
