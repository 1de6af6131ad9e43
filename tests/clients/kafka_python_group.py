#!/usr/bin/env python3
"""kafka-python group consumer (KafkaConsumer with group_id) against a running broker.

  consume  subscribe TOPIC in GROUP with the range assignor and print one JSON event per line, in the
           same format as group_consumer.py consume:
             {"event": "assigned", "member": ID, "partitions": [...]}
             {"event": "revoked", "partitions": [...]}
             {"event": "msg", "p": P, "o": O, "id": I}                    (bytes verified)
             {"event": "committed", "offsets": {"P": OFFSET, ...}}
           then a result line. Stops when --stop-file exists, when --expect distinct (partition,
           offset) pairs were seen, or at --timeout (an error). With --commit manual it commits
           synchronously (consumer.commit()) before stopping; the result's
           "committed" comes from consumer.committed() (OffsetFetch) after that.

Messages are make_message(topic, i) (tests/clients/testdata.py), e.g. written by group_consumer.py
produce, and are checked byte for byte.
"""

import argparse
import json
import logging
import os
import time

from testdata import Report, describe_diff, make_message, message_id, require_module

kafka = require_module("kafka", "kafka-python")
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition  # noqa: E402
from kafka.coordinator.assignors.range import RangePartitionAssignor  # noqa: E402
from kafka.errors import RebalanceInProgressError  # noqa: E402

# How often a commit refused with REBALANCE_IN_PROGRESS is retried (each after a short poll).
COMMIT_ATTEMPTS = 20


def emit(**event):
    print(json.dumps(event, sort_keys=True), flush=True)


def cmd_consume(args):
    if args.debug_log:
        logging.basicConfig(
            filename=args.debug_log, level=logging.DEBUG, format="%(asctime)s %(threadName)s %(name)s %(message)s"
        )
    report = Report("consume", topic=args.topic, group=args.group, client="kafka-python")
    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        client_id=args.client_id,
        auto_offset_reset="earliest",
        enable_auto_commit=args.commit == "auto",
        auto_commit_interval_ms=args.auto_commit_interval_ms,
        partition_assignment_strategy=[RangePartitionAssignor],
        session_timeout_ms=args.session_timeout_ms,
        heartbeat_interval_ms=args.heartbeat_interval_ms,
        check_crcs=True,
    )
    positions = {}
    seen = set()
    consumed = 0
    last_committed = {}

    def commit(why):
        if args.commit != "manual" or not positions:
            return
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                consumer.commit()
                break
            except RebalanceInProgressError as e:
                # The group is completing a rebalance (another member joined or left): as
                # kafka-python advises, let poll() finish it and retry. The partitions are
                # paused so that poll returns no records this consumer would not account for.
                if attempt + 1 == COMMIT_ATTEMPTS:
                    report.error(f"commit ({why}) failed: {type(e).__name__}: {e}")
                    return
                consumer.pause(*consumer.assignment())
                consumer.poll(timeout_ms=200)
                consumer.resume(*consumer.paused())
            except Exception as e:  # CommitFailedError and friends
                report.error(f"commit ({why}) failed: {type(e).__name__}: {e}")
                return
        offsets = {str(p): o for p, o in positions.items() if TopicPartition(args.topic, p) in consumer.assignment()}
        last_committed.update(offsets)
        emit(event="committed", why=why, offsets=offsets)

    class Listener(ConsumerRebalanceListener):
        # kafka-python 3 runs listeners on its IO thread, where a blocking commit() is refused; with
        # --commit manual this consumer commits only before stopping (while it still owns its
        # partitions).
        def on_partitions_revoked(self, revoked):
            emit(event="revoked", partitions=sorted(tp.partition for tp in revoked))

        def on_partitions_assigned(self, assigned):
            member = consumer._coordinator._generation.member_id if consumer._coordinator._generation else None
            emit(event="assigned", member=member, partitions=sorted(tp.partition for tp in assigned))

    consumer.subscribe([args.topic], listener=Listener())
    # Fetch metadata after subscribing and before the first poll (which joins). kafka-python 3.0.12
    # snapshots the subscribed topics' partitions only on a metadata update after subscribe(); a
    # leader that assigns before one runs rejoins on that update, and when the rejoin's SyncGroup
    # answer arrives after a poll() timed out, the leader's assignment has already cleared
    # need_rejoin(), so no later poll collects the finished join: the consumer hangs without
    # partitions or heartbeats (seen with a coordinator that completes the first join at once,
    # group.initial.rebalance.delay.ms=0). A metadata update here makes the first assignment final.
    if args.topic not in consumer.topics():
        report.error(f"topic {args.topic} is not in the metadata")
        report.finish()
    deadline = time.monotonic() + args.timeout
    stop_reason = None
    while stop_reason is None:
        if args.stop_file and os.path.exists(args.stop_file):
            stop_reason = "stop-file"
            break
        if time.monotonic() > deadline:
            report.error(f"timed out after {args.timeout}s ({consumed} messages, {len(seen)} distinct)")
            stop_reason = "timeout"
            break
        batches = consumer.poll(timeout_ms=200)
        for tp, records in batches.items():
            for r in records:
                p, o = r.partition, r.offset
                index = message_id(r.headers)
                if index is None:
                    report.error(f"{args.topic}/{p}@{o}: no id header")
                else:
                    key, value, headers = make_message(args.topic, index)
                    for name, want, got in (("key", key, r.key), ("value", value, r.value)):
                        if want != got:
                            report.error(f"{args.topic}/{p}@{o} (message {index}): " + describe_diff(name, want, got))
                    if list(r.headers or []) != headers:
                        report.error(f"{args.topic}/{p}@{o} (message {index}): headers differ: {r.headers!r}")
                if o < positions.get(p, 0):
                    report.error(f"{args.topic}/{p}: offset {o} after {positions[p] - 1}")
                positions[p] = o + 1
                seen.add((p, o))
                consumed += 1
                emit(event="msg", p=p, o=o, id=index)
        if args.expect and len(seen) >= args.expect:
            stop_reason = "expect"

    commit("final")
    committed = {}
    for p in sorted(positions):
        offset = consumer.committed(TopicPartition(args.topic, p))
        if offset is not None:
            committed[str(p)] = offset
    consumer.close(autocommit=args.commit == "auto")
    report.finish(
        stop_reason=stop_reason,
        consumed=consumed,
        distinct=len(seen),
        positions={str(p): o for p, o in sorted(positions.items())},
        committed=committed,
        last_committed=last_committed,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    co = sub.add_parser("consume")
    co.add_argument("--bootstrap", required=True)
    co.add_argument("--topic", required=True)
    co.add_argument("--group", required=True)
    co.add_argument("--client-id", default="strom-kafka-python-group")
    co.add_argument("--commit", choices=["auto", "manual"], default="manual")
    co.add_argument("--auto-commit-interval-ms", type=int, default=200)
    co.add_argument("--session-timeout-ms", type=int, default=6000)
    co.add_argument("--heartbeat-interval-ms", type=int, default=500)
    co.add_argument("--stop-file", default="")
    co.add_argument("--expect", type=int, default=0)
    co.add_argument("--timeout", type=float, default=60)
    co.add_argument("--debug-log", default="", help="write kafka-python's DEBUG log to this file")
    co.set_defaults(run=cmd_consume)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
