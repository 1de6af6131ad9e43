#!/usr/bin/env python3
"""Scrapes a broker's admin API while confluent-kafka produces and consumes, for tests/admin_metrics.rs.

  admin_metrics.py --bootstrap HOST:PORT --admin http://HOST:PORT --topic T --count N --lag-count K

1. waits until /v1/status/ready answers 200, and reads /v1/status/live;
2. scrapes /metrics (parsed with prometheus_client's text-format parser, never a regex);
3. creates T (2 partitions), produces N messages, scrapes;
4. consumes all N in group "<T>-reader" (auto commit), scrapes;
5. consumes K messages in group "<T>-laggard", commits them, closes, scrapes.

Prints one JSON result (last stdout line) with the deltas of the counters between scrapes and the
group gauges; the Rust test asserts on them. Exits non-zero on any client error.
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

from testdata import Report, require_module

ck = require_module("confluent_kafka", "confluent-kafka")
require_module("prometheus_client", "prometheus-client")
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

PARTITIONS = 2
READY_TIMEOUT_S = 60
CONSUME_TIMEOUT_S = 60


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def wait_ready(admin_url):
    deadline = time.monotonic() + READY_TIMEOUT_S
    seen = []
    while True:
        status = http_status(admin_url + "/v1/status/ready")
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == 200 or time.monotonic() > deadline:
            return seen
        time.sleep(0.1)


class Scrape:
    """One /metrics scrape: every sample by (name, labels), and the families' names and types."""

    def __init__(self, admin_url):
        with urllib.request.urlopen(admin_url + "/metrics", timeout=10) as response:
            self.content_type = response.headers.get("Content-Type", "")
            text = response.read().decode("utf-8")
        self.families = {}
        self.samples = []
        for family in text_string_to_metric_families(text):
            self.families[family.name] = family.type
            for sample in family.samples:
                self.samples.append((sample.name, dict(sample.labels), sample.value))

    def total(self, name, **labels):
        return sum(
            value
            for sample_name, sample_labels, value in self.samples
            if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
        )


def create_topic(bootstrap, topic, report):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    try:
        futures[topic].result(timeout=30)
    except Exception as e:
        report.error(f"create_topics({topic!r}) failed: {e}")
        report.finish()


def produce(bootstrap, topic, count, report):
    producer = ck.Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    delivered = []

    def on_delivery(error, message):
        if error is not None:
            report.error(f"delivery failed: {error}")
        else:
            delivered.append(message.offset())

    for index in range(count):
        producer.produce(topic, key=f"k{index}", value=b"v" * 100, on_delivery=on_delivery)
        producer.poll(0)
    remaining = producer.flush(30)
    if remaining:
        report.error(f"{remaining} messages not delivered")
    return len(delivered)


def consume(bootstrap, topic, group, count, commit_by_hand, report):
    consumer = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": not commit_by_hand,
        }
    )
    consumer.subscribe([topic])
    consumed = 0
    # Partition -> offset after the last message consumed from it.
    positions = {partition: 0 for partition in range(PARTITIONS)}
    deadline = time.monotonic() + CONSUME_TIMEOUT_S
    while consumed < count and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is None:
            continue
        if message.error():
            report.error(f"consume error: {message.error()}")
            break
        consumed += 1
        positions[message.partition()] = message.offset() + 1
    if commit_by_hand:
        # Every partition, also one nothing was consumed from (offset 0: all of it is lag), so
        # the group's lag over the topic is exactly the messages it did not consume.
        offsets = [ck.TopicPartition(topic, p, offset) for p, offset in positions.items()]
        consumer.commit(offsets=offsets, asynchronous=False)
    consumer.close()
    return consumed


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--bootstrap", required=True)
    args.add_argument("--admin", required=True)
    args.add_argument("--topic", required=True)
    args.add_argument("--count", type=int, required=True)
    args.add_argument("--lag-count", type=int, required=True)
    options = args.parse_args()
    report = Report("admin-metrics", topic=options.topic)
    topic = options.topic

    ready_statuses = wait_ready(options.admin)
    live_status = http_status(options.admin + "/v1/status/live")
    before = Scrape(options.admin)

    create_topic(options.bootstrap, topic, report)
    delivered = produce(options.bootstrap, topic, options.count, report)
    produced = Scrape(options.admin)

    reader = f"{topic}-reader"
    consumed = consume(options.bootstrap, topic, reader, options.count, False, report)
    read = Scrape(options.admin)

    laggard = f"{topic}-laggard"
    lag_consumed = consume(options.bootstrap, topic, laggard, options.lag_count, True, report)
    # The commit is acknowledged once written; the scrape reads the coordinator's state.
    lagged = Scrape(options.admin)

    def delta(after, earlier, name, **labels):
        return after.total(name, **labels) - earlier.total(name, **labels)

    report.result.update(
        {
            "ready_statuses": ready_statuses,
            "live_status": live_status,
            "content_type": produced.content_type,
            "families": sorted(lagged.families.items()),
            "delivered": delivered,
            "consumed": consumed,
            "lag_consumed": lag_consumed,
            "messages_in": delta(produced, before, "strom_messages_in_total", topic=topic),
            "bytes_in": delta(produced, before, "strom_bytes_in_total", topic=topic),
            "log_size_bytes": produced.total("strom_log_size_bytes", topic=topic),
            "log_end_offset": produced.total("strom_log_end_offset", topic=topic),
            "produce_requests": delta(produced, before, "strom_requests_total", request="Produce"),
            "messages_out": delta(read, produced, "strom_messages_out_total", topic=topic),
            "bytes_out": delta(read, produced, "strom_bytes_out_total", topic=topic),
            "fetch_requests": delta(read, produced, "strom_requests_total", request="Fetch"),
            "reader_lag": read.total("strom_consumer_group_lag", group=reader, topic=topic),
            "laggard_lag": lagged.total("strom_consumer_group_lag", group=laggard, topic=topic),
            "laggard_committed": lagged.total(
                "strom_consumer_group_committed_offset", group=laggard, topic=topic
            ),
            "laggard_partitions": len(
                [
                    s
                    for s in lagged.samples
                    if s[0] == "strom_consumer_group_lag" and s[1].get("group") == laggard
                ]
            ),
            "produce_handle_time_count": delta(
                produced, before, "strom_request_handle_time_seconds_count", request="Produce"
            ),
            "produce_errors": delta(produced, before, "strom_errors_total", request="Produce"),
            "connections": lagged.total("strom_connections"),
            "open_fds": lagged.total("process_open_fds"),
            "resident_memory_bytes": lagged.total("process_resident_memory_bytes"),
            "io_uring_submissions": delta(lagged, before, "strom_io_uring_submissions_total"),
        }
    )
    report.finish()


if __name__ == "__main__":
    sys.exit(main())
