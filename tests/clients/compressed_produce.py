"""Produces COUNT records with confluent-kafka in one codec (the producer's compression.type),
then reads them all back with a consumer. Prints one JSON object: how many were acknowledged, and
the values read in offset order. The Rust test checks them and the codec of the stored batches."""
import argparse
import json
import sys

from confluent_kafka import Consumer, Producer, TopicPartition


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--codec", required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()
    producer = Producer({"bootstrap.servers": args.bootstrap, "compression.type": args.codec,
                         "linger.ms": 50, "enable.idempotence": True, "acks": "all"})
    acked = []
    errors = []

    def report(error, message):
        if error is None:
            acked.append(message.offset())
        else:
            errors.append(error.name())

    for index in range(args.count):
        producer.produce(args.topic, key=b"k%d" % index, value=(b"value-%d " % index) * 20,
                         partition=0, headers=[("seq", b"%d" % index), ("seq", b"again")],
                         on_delivery=report)
    producer.flush(30)

    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "compressed-check",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(args.topic, 0, 0)])
    records = []
    while len(records) < len(acked):
        message = consumer.poll(10)
        if message is None:
            break
        if message.error():
            raise RuntimeError(message.error())
        records.append({"offset": message.offset(), "key": message.key().decode(),
                        "value": message.value().decode(),
                        "headers": [[k, v.decode()] for k, v in (message.headers() or [])]})
    consumer.close()
    print(json.dumps({"acked": len(acked), "errors": errors, "records": records}))


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001
        print(f"error: {error!r}", file=sys.stderr)
        sys.exit(1)
