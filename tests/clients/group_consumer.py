#!/usr/bin/env python3
"""confluent-kafka (librdkafka) consumer-group checks against a running broker.

Subcommands:

  produce   (optionally create the topic, then) produce COUNT messages make_message(topic, i) for
            i = START.., message i to partition PARTS[i % len(PARTS)] (PARTS: --to-partitions, default
            all), acks=all. Result: {"delivered": N, "positions": [[i, partition, offset], ...]}.
  consume   a group consumer (subscribe) that prints one JSON event per line while it runs:
              {"event": "assigned", "member": ID, "partitions": [...]}   (eager: the whole assignment)
              {"event": "revoked", "partitions": [...]}
              {"event": "msg", "p": P, "o": O, "id": I}                   (bytes verified)
              {"event": "committed", "offsets": {"P": OFFSET, ...}}        (after a successful commit)
            and a result line when it stops. It stops (committing first when --commit manual, unless
            --no-final-commit) when --stop-file exists, after --max-messages messages, when it has
            seen --expect distinct (partition, offset) pairs, or at --timeout (an error).
  admin     runs each OP in order and prints one JSON line per OP:
              list                     ListGroups: {"op": "list", "groups": [{"group", "state", "simple"}]}
              describe=G1,G2           DescribeGroups: state, assignor, members with their assignment
              offsets=G:TOPIC:N        OffsetFetch for partitions 0..N-1 of TOPIC
              delete=G1,G2             DeleteGroups: per group "ok" or the error name and code
              create-partitions=T:N    CreatePartitions: grow T to N partitions

Every subcommand exits non-zero (with "error: ..." on stderr and in the result) on any problem.
"""

import argparse
import json
import os
import sys
import time

from testdata import Report, describe_diff, make_message, message_id, require_module

ck = require_module("confluent_kafka", "confluent-kafka")
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic  # noqa: E402


def emit(**event):
    print(json.dumps(event, sort_keys=True), flush=True)


# ---- produce --------------------------------------------------------------------------------------


def create_topic(bootstrap, topic, partitions, report):
    """Creates the topic and waits until metadata shows all its partitions with a leader."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)], operation_timeout=15, request_timeout=15
    )
    try:
        futures[topic].result(timeout=30)
    except Exception as e:
        report.error(f"create_topics({topic!r}, {partitions} partitions) failed: {e}")
        report.finish()
    wait_for_partitions(admin, topic, partitions, report)


def wait_for_partitions(admin, topic, partitions, report):
    deadline = time.monotonic() + 15
    while True:
        t = admin.list_topics(topic=topic, timeout=10).topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == partitions:
            if all(p.leader >= 0 for p in t.partitions.values()):
                return
        if time.monotonic() > deadline:
            report.error(f"topic {topic!r} not in metadata with {partitions} led partitions: {t}")
            report.finish()
        time.sleep(0.1)


def cmd_produce(args):
    report = Report("produce", topic=args.topic)
    if args.create:
        create_topic(args.bootstrap, args.topic, args.partitions, report)
    parts = [int(p) for p in args.to_partitions.split(",")] if args.to_partitions else list(range(args.partitions))
    producer = ck.Producer(
        {"bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 5, "message.timeout.ms": 30_000}
    )
    delivered = {}

    def on_delivery(i, err, msg):
        if err is not None:
            report.error(f"delivery of message {i} failed: {err}")
        else:
            delivered[i] = (msg.partition(), msg.offset())

    for i in range(args.start, args.start + args.count):
        key, value, headers = make_message(args.topic, i)
        while True:
            try:
                producer.produce(
                    args.topic,
                    key=key,
                    value=value,
                    headers=headers,
                    partition=parts[i % len(parts)],
                    on_delivery=lambda err, msg, i=i: on_delivery(i, err, msg),
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(60)
    if remaining:
        report.error(f"{remaining} messages undelivered after flush(60s)")
    for i, (p, _) in delivered.items():
        if p != parts[i % len(parts)]:
            report.error(f"message {i} delivered to partition {p}, produced to {parts[i % len(parts)]}")
    report.finish(delivered=len(delivered), positions=sorted([i, p, o] for i, (p, o) in delivered.items()))


# ---- consume --------------------------------------------------------------------------------------


def cmd_consume(args):
    report = Report("consume", topic=args.topic, group=args.group)
    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "client.id": args.client_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": args.commit == "auto",
        "auto.commit.interval.ms": args.auto_commit_interval_ms,
        "session.timeout.ms": args.session_timeout_ms,
        "heartbeat.interval.ms": args.heartbeat_interval_ms,
        "partition.assignment.strategy": args.assignor,
        "enable.partition.eof": False,
        "check.crcs": True,
    }
    consumer = ck.Consumer(conf)
    positions = {}  # partition -> next offset to consume (what a commit stores)
    seen = set()
    consumed = 0
    last_committed = {}
    closing = {"without_commit": False}

    def commit(why):
        if args.commit != "manual" or closing["without_commit"]:
            return
        try:
            result = consumer.commit(asynchronous=False)
        except ck.KafkaException as e:
            if e.args[0].code() == ck.KafkaError._NO_OFFSET:
                return
            report.error(f"commit ({why}) failed: {e}")
            return
        offsets = {}
        for tp in result or []:
            if tp.error is not None:
                report.error(f"commit ({why}) of {tp.topic}/{tp.partition} failed: {tp.error}")
            elif tp.offset >= 0:
                offsets[str(tp.partition)] = tp.offset
        if offsets:
            last_committed.update(offsets)
            emit(event="committed", why=why, offsets=offsets)

    def on_assign(c, partitions):
        emit(event="assigned", member=c.memberid(), partitions=sorted(tp.partition for tp in partitions))

    def on_revoke(c, partitions):
        # Eager protocol: everything is revoked; commit what was processed so nobody re-reads it.
        if partitions:
            commit("revoke")
        emit(event="revoked", partitions=sorted(tp.partition for tp in partitions))

    def on_lost(c, partitions):
        emit(event="lost", partitions=sorted(tp.partition for tp in partitions))

    consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
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
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        err = msg.error()
        if err is not None:
            report.error(f"consumer error: {err}")
            if err.fatal():
                stop_reason = "fatal"
            continue
        p, o = msg.partition(), msg.offset()
        index = message_id(msg.headers())
        if index is None:
            report.error(f"{args.topic}/{p}@{o}: no id header")
        else:
            key, value, headers = make_message(args.topic, index)
            for name, want, got in (("key", key, msg.key()), ("value", value, msg.value())):
                if want != got:
                    report.error(f"{args.topic}/{p}@{o} (message {index}): " + describe_diff(name, want, got))
            if (msg.headers() or []) != headers:
                report.error(f"{args.topic}/{p}@{o} (message {index}): headers differ")
        if o < positions.get(p, 0):
            report.error(f"{args.topic}/{p}: offset {o} after {positions[p] - 1} within one assignment")
        positions[p] = o + 1
        seen.add((p, o))
        consumed += 1
        emit(event="msg", p=p, o=o, id=index)
        if args.commit_every and consumed % args.commit_every == 0:
            commit("every")
        if args.max_messages and consumed >= args.max_messages:
            stop_reason = "max-messages"
        elif args.expect and len(seen) >= args.expect:
            stop_reason = "expect"

    if args.no_final_commit:
        # Not even the revoke callback that close() runs may commit the uncommitted tail.
        closing["without_commit"] = True
    else:
        commit("final")
    committed = {}
    if args.commit == "auto" and stop_reason in ("max-messages", "expect"):
        # Give the auto-committer (it runs without poll) time to commit what was consumed.
        until = time.monotonic() + max(5.0, 20 * args.auto_commit_interval_ms / 1000)
        while time.monotonic() < until:
            committed = committed_offsets(consumer, args.topic, positions, report)
            if committed == {str(p): o for p, o in positions.items()}:
                break
            time.sleep(args.auto_commit_interval_ms / 1000)
    elif positions:
        committed = committed_offsets(consumer, args.topic, positions, report)
    consumer.close()
    report.finish(
        stop_reason=stop_reason,
        consumed=consumed,
        distinct=len(seen),
        positions={str(p): o for p, o in sorted(positions.items())},
        committed=committed,
        last_committed=last_committed,
    )


def committed_offsets(consumer, topic, positions, report):
    """OffsetFetch for the partitions this consumer read: {"P": offset} (absent if none)."""
    try:
        answer = consumer.committed([ck.TopicPartition(topic, p) for p in sorted(positions)], timeout=15)
    except ck.KafkaException as e:
        report.error(f"committed() failed: {e}")
        return {}
    return {str(tp.partition): tp.offset for tp in answer if tp.offset >= 0}


# ---- admin ----------------------------------------------------------------------------------------


def kafka_error(exc):
    """(name, code) of the KafkaError inside an exception from an admin future."""
    err = exc.args[0] if exc.args and isinstance(exc.args[0], ck.KafkaError) else None
    if err is None:
        return (type(exc).__name__ + ": " + str(exc), None)
    return (err.name(), err.code())


def admin_op(admin, op, report):
    name, _, arg = op.partition("=")
    if name == "list":
        result = admin.list_consumer_groups(request_timeout=15).result(timeout=30)
        for e in result.errors:
            report.error(f"list_consumer_groups error: {e}")
        groups = [
            {"group": g.group_id, "state": g.state.name if g.state is not None else None, "simple": g.is_simple_consumer_group}
            for g in result.valid
        ]
        emit(op="list", groups=sorted(groups, key=lambda g: g["group"]))
    elif name == "describe":
        futures = admin.describe_consumer_groups(arg.split(","), request_timeout=15)
        groups = {}
        for group, future in futures.items():
            try:
                d = future.result(timeout=30)
            except Exception as e:
                error, code = kafka_error(e)
                groups[group] = {"error": error, "code": code}
                continue
            groups[group] = {
                "state": d.state.name if d.state is not None else None,
                "assignor": d.partition_assignor,
                "simple": d.is_simple_consumer_group,
                "members": sorted(
                    (
                        {
                            "member_id": m.member_id,
                            "client_id": m.client_id,
                            "partitions": sorted(
                                [tp.topic, tp.partition] for tp in (m.assignment.topic_partitions if m.assignment else [])
                            ),
                        }
                        for m in d.members
                    ),
                    key=lambda m: m["member_id"],
                ),
            }
        emit(op="describe", groups=groups)
    elif name == "offsets":
        group, topic, count = arg.split(":")
        request = ck.ConsumerGroupTopicPartitions(group, [ck.TopicPartition(topic, p) for p in range(int(count))])
        futures = admin.list_consumer_group_offsets([request], request_timeout=15)
        try:
            answer = futures[group].result(timeout=30)
        except Exception as e:
            error, code = kafka_error(e)
            emit(op="offsets", group=group, error=error, code=code)
            return
        offsets = {}
        for tp in answer.topic_partitions:
            if tp.error is not None:
                report.error(f"offsets {group} {tp.topic}/{tp.partition}: {tp.error}")
            offsets[str(tp.partition)] = tp.offset
        emit(op="offsets", group=group, offsets=offsets)
    elif name == "delete":
        futures = admin.delete_consumer_groups(arg.split(","), request_timeout=15)
        results = {}
        for group, future in futures.items():
            try:
                future.result(timeout=30)
                results[group] = {"ok": True}
            except Exception as e:
                error, code = kafka_error(e)
                results[group] = {"ok": False, "error": error, "code": code}
        emit(op="delete", results=results)
    elif name == "create-partitions":
        topic, total = arg.split(":")
        futures = admin.create_partitions([NewPartitions(topic, int(total))], operation_timeout=15, request_timeout=15)
        try:
            futures[topic].result(timeout=30)
        except Exception as e:
            report.error(f"create_partitions({topic}, {total}) failed: {e}")
            report.finish()
        wait_for_partitions(admin, topic, int(total), report)
        emit(op="create-partitions", topic=topic, total=int(total))
    else:
        report.error(f"unknown admin op {op!r}")
        report.finish()


def cmd_admin(args):
    report = Report("admin")
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    for op in args.ops:
        admin_op(admin, op, report)
    report.finish()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    pr = sub.add_parser("produce")
    pr.add_argument("--bootstrap", required=True)
    pr.add_argument("--topic", required=True)
    pr.add_argument("--partitions", type=int, default=3)
    pr.add_argument("--count", type=int, required=True)
    pr.add_argument("--start", type=int, default=0)
    pr.add_argument("--to-partitions", default="", help="comma-separated partitions to spread over")
    pr.add_argument("--create", action="store_true")
    pr.set_defaults(run=cmd_produce)

    co = sub.add_parser("consume")
    co.add_argument("--bootstrap", required=True)
    co.add_argument("--topic", required=True)
    co.add_argument("--group", required=True)
    co.add_argument("--client-id", default="strom-group-test")
    co.add_argument("--commit", choices=["auto", "manual", "none"], default="manual")
    co.add_argument("--commit-every", type=int, default=0, help="manual: commit after every N messages")
    co.add_argument(
        "--no-final-commit", action="store_true", help="manual: leave the tail after the last --commit-every commit uncommitted"
    )
    co.add_argument("--auto-commit-interval-ms", type=int, default=200)
    co.add_argument("--session-timeout-ms", type=int, default=6000)
    co.add_argument("--heartbeat-interval-ms", type=int, default=500)
    co.add_argument("--assignor", default="range")
    co.add_argument("--stop-file", default="")
    co.add_argument("--max-messages", type=int, default=0)
    co.add_argument("--expect", type=int, default=0)
    co.add_argument("--timeout", type=float, default=60)
    co.set_defaults(run=cmd_consume)

    ad = sub.add_parser("admin")
    ad.add_argument("--bootstrap", required=True)
    ad.add_argument("ops", nargs="+")
    ad.set_defaults(run=cmd_admin)

    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
