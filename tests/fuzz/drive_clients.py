#!/usr/bin/env python3
"""Drives real clients (kcat, confluent-kafka, kafka-python) through the recording proxy of
record_frames.py, so the `request` seeds cover what those clients really send: metadata,
produce (plain and compressed, idempotent), fetch, list offsets, consumer groups with offset
commits, and the admin APIs.

    python3 tests/fuzz/drive_clients.py --bootstrap 127.0.0.1:30001
"""

import argparse
import subprocess
import time


def kcat(bootstrap, *args, stdin=None):
    subprocess.run(["kcat", "-b", bootstrap, *args], input=stdin, check=False,
                   capture_output=True, timeout=60)


def drive_kcat(bootstrap):
    kcat(bootstrap, "-L")
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        kcat(bootstrap, "-P", "-t", f"kcat-{codec}", "-z", codec, "-K", ":",
             stdin=b"k1:v1\nk2:v2\nk3:" + b"x" * 300 + b"\n")
        kcat(bootstrap, "-C", "-t", f"kcat-{codec}", "-o", "beginning", "-e", "-q")
    kcat(bootstrap, "-G", "kcat-group", "kcat-none", "-e", "-q", "-o", "beginning")


def drive_confluent(bootstrap):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic("ck", 3, 1, config={"retention.ms": "86400000"})]).values():
        future.result()
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "compression.type": "lz4", "linger.ms": 5})
    for i in range(50):
        producer.produce("ck", key=f"k{i}".encode(), value=f"value {i}".encode(),
                         headers=[("h", b"1")])
    producer.flush(30)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ck-group",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe(["ck"])
    seen = 0
    deadline = time.time() + 30
    while seen < 50 and time.time() < deadline:
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            seen += 1
    consumer.commit(asynchronous=False)
    consumer.committed([TopicPartition("ck", 0)], timeout=10)
    consumer.close()
    for future in admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "ck")]).values():
        future.result()
    for future in admin.create_partitions([NewPartitions("ck", 4)]).values():
        future.result()
    admin.list_groups(timeout=10)
    for future in admin.describe_consumer_groups(["ck-group"]).values():
        future.result()
    admin.delete_records([TopicPartition("ck", 0, 2)])
    for future in admin.delete_consumer_groups(["ck-group"]).values():
        try:
            future.result()
        except Exception:
            pass
    for future in admin.delete_topics(["ck"]).values():
        future.result()


def drive_kafka_python(bootstrap):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic("kp", 2, 1)])
    except Exception:  # left over from an earlier run
        pass
    producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type="gzip", acks="all")
    for i in range(20):
        producer.send("kp", key=f"k{i}".encode(), value=f"v{i}".encode())
    producer.flush()
    producer.close()
    consumer = KafkaConsumer("kp", bootstrap_servers=bootstrap, group_id="kp-group",
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    for _ in consumer:
        pass
    consumer.commit()
    consumer.close()
    for call in ("list_consumer_groups", "list_groups"):
        if hasattr(admin, call):
            getattr(admin, call)()
            break
    for call in ("describe_consumer_groups", "describe_groups"):
        if hasattr(admin, call):
            getattr(admin, call)(["kp-group"])
            break
    if hasattr(admin, "list_consumer_group_offsets"):
        admin.list_consumer_group_offsets("kp-group")
    admin.delete_topics(["kp"])
    admin.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    args = parser.parse_args()
    for drive in (drive_kcat, drive_confluent, drive_kafka_python):
        try:
            drive(args.bootstrap)
        except Exception as error:  # a client failing still leaves its frames recorded
            print(f"{drive.__name__}: {error!r}")


if __name__ == "__main__":
    main()
