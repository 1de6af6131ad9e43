#!/usr/bin/env python3
"""Runs the same produce and consume workloads with `strom bench` and with independent clients
(kcat, confluent-kafka) against one broker, to show whether the bench harness is a bottleneck.

Usage: compare_clients.py --strom target/release/strom --bootstrap 127.0.0.1:9092
           [--messages 1000000] [--sizes 100,1024] [--partitions 3] [--runs 3]

Every client uses acks=1, linger.ms=5 and 1 MiB batches; consumers read the same topic from the
beginning. Throughput counts message values only (MB = 2^20 bytes). Client CPU is user + system
seconds of the client process per million messages (the broker and the client share the
machine's cores, so a client that needs less CPU leaves more to the broker). Prints a table per
size (median of --runs) and a JSON line with every run.
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

MB = 1024 * 1024


def cpu_seconds(who):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


class ClientCpu:
    """CPU seconds (user + system) spent by child processes (`children=True`) or by this
    process (the in-process confluent-kafka client) inside the `with` block."""

    def __init__(self, children):
        self.who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF

    def __enter__(self):
        self.start = cpu_seconds(self.who)
        return self

    def __exit__(self, *exc):
        self.seconds = cpu_seconds(self.who) - self.start


def run(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def strom_bench(strom, bootstrap, args):
    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        with ClientCpu(children=True) as cpu:
            run([strom, "bench", *args, "--brokers", bootstrap, "--no-progress", "--json", report.name])
        with open(report.name) as f:
            result = json.load(f)["results"][0]
    return result["msgs_per_sec"], result["mb_per_sec"], cpu.seconds


def kcat_produce(bootstrap, topic, messages, size):
    with tempfile.NamedTemporaryFile("wb", suffix=".txt") as data:
        line = b"K" * size + b"\n"
        data.write(line * messages)
        data.flush()
        start = time.perf_counter()
        with ClientCpu(children=True) as cpu:
            run(["kcat", "-P", "-b", bootstrap, "-t", topic, "-X", "acks=1", "-X", "linger.ms=5",
                 "-X", "batch.size=1048576", "-X", "batch.num.messages=100000", "-l", data.name])
        seconds = time.perf_counter() - start
    return messages / seconds, messages * size / MB / seconds, cpu.seconds


def kcat_consume(bootstrap, topic, messages, size):
    start = time.perf_counter()
    with ClientCpu(children=True) as cpu:
        out = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q",
                              "-c", str(messages)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"kcat consume failed: {out.stderr.decode().strip()}")
    return messages / seconds, messages * size / MB / seconds, cpu.seconds


def confluent_produce(bootstrap, topic, messages, size):
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 5,
                         "batch.size": 1048576, "batch.num.messages": 100000,
                         "queue.buffering.max.messages": 1000000, "enable.idempotence": False})
    producer.list_topics(timeout=10)
    value = b"C" * size
    cpu = ClientCpu(children=False).__enter__()
    start = time.perf_counter()
    for _ in range(messages):
        while True:
            try:
                producer.produce(topic, value)
                break
            except BufferError:
                producer.poll(0.001)
    producer.flush(60)
    seconds = time.perf_counter() - start
    cpu.__exit__()
    return messages / seconds, messages * size / MB / seconds, cpu.seconds


def confluent_consume(bootstrap, topic, messages, size):
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"cmp-{uuid.uuid4()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    cpu = ClientCpu(children=False).__enter__()
    start = time.perf_counter()
    got = 0
    while got < messages:
        batch = consumer.consume(num_messages=100000, timeout=1.0)
        got += sum(1 for m in batch if m.error() is None)
    seconds = time.perf_counter() - start
    cpu.__exit__()
    consumer.close()
    return messages / seconds, messages * size / MB / seconds, cpu.seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--strom", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--sizes", default="100,1024")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-confluent", action="store_true")
    args = parser.parse_args()
    everything = []
    for size in [int(s) for s in args.sizes.split(",")]:
        rows = {}
        for run_index in range(args.runs):
            tag = f"{size}-{run_index}-{uuid.uuid4().hex[:6]}"
            strom_topic, kcat_topic, conf_topic = f"cmp-strom-{tag}", f"cmp-kcat-{tag}", f"cmp-conf-{tag}"
            for topic in (strom_topic, kcat_topic, conf_topic):
                run([args.strom, "topic", "create", topic, "--partitions", str(args.partitions), "--brokers", args.bootstrap])
            results = {
                "strom produce": strom_bench(args.strom, args.bootstrap, [
                    "produce", "--topic", strom_topic, "--count", str(args.messages), "--message-bytes", str(size),
                    "--acks", "1", "--linger-ms", "5", "--batch-bytes", "1048576"]),
                "kcat produce": kcat_produce(args.bootstrap, kcat_topic, args.messages, size),
            }
            if not args.skip_confluent:
                results["confluent-kafka produce"] = confluent_produce(args.bootstrap, conf_topic, args.messages, size)
            # Consumers all read the topic strom's bench wrote.
            results["strom consume"] = strom_bench(args.strom, args.bootstrap, [
                "consume", "--topic", strom_topic, "--count", str(args.messages)])
            results["kcat consume"] = kcat_consume(args.bootstrap, strom_topic, args.messages, size)
            if not args.skip_confluent:
                results["confluent-kafka consume"] = confluent_consume(args.bootstrap, strom_topic, args.messages, size)
            for name, figures in results.items():
                rows.setdefault(name, []).append(figures)
                everything.append({"size": size, "run": run_index, "client": name, "msgs_per_sec": figures[0],
                                   "mb_per_sec": figures[1], "client_cpu_secs": figures[2]})
            for topic in (strom_topic, kcat_topic, conf_topic):
                run([args.strom, "topic", "delete", topic, "--brokers", args.bootstrap])
        print(f"\n{size}-byte messages, {args.messages} messages, {args.partitions} partitions, median of {args.runs} runs")
        print(f"{'client':<26}{'msg/s':>12}{'MB/s':>10}{'client CPU s/1M msgs':>22}   runs (msg/s)")
        for name, figures in rows.items():
            msgs = statistics.median(f[0] for f in figures)
            mbs = statistics.median(f[1] for f in figures)
            cpu = statistics.median(f[2] for f in figures) * 1_000_000 / args.messages
            print(f"{name:<26}{msgs:>12,.0f}{mbs:>10.1f}{cpu:>22.2f}   {', '.join(f'{f[0]:,.0f}' for f in figures)}")
    print(json.dumps(everything))


if __name__ == "__main__":
    main()
