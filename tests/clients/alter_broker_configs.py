"""Dynamic broker configs through confluent-kafka's AdminClient: incremental_alter_configs on a
BROKER resource (this broker's id, or "" for the cluster-wide default), refused for an invalid value
and for a key that cannot change at run time, read back with describe_configs on the broker and on
a topic that falls back to it. Prints one JSON object of observations."""
import argparse
import json
import sys

from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, ResourceType)


def entry(configs, name):
    found = configs[name]
    return {"value": found.value, "source": ConfigSource(found.source).name,
            "read_only": found.is_read_only}


def alter(admin, broker, ops):
    entries = [ConfigEntry(key, value, incremental_operation=op) for key, op, value in ops]
    resource = ConfigResource(ResourceType.BROKER, broker, incremental_configs=entries)
    try:
        admin.incremental_alter_configs([resource])[resource].result(10)
        return None
    except Exception as error:  # noqa: BLE001 - the error's code is what is observed
        return error.args[0].name()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE to set")
    parser.add_argument("--try-refused", action="store_true")
    args = parser.parse_args()
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    out = {}
    if args.try_refused:
        out["invalid_error"] = alter(admin, args.broker, [("log.retention.ms", AlterConfigOpType.SET, "soon")])
        out["static_key_error"] = alter(admin, args.broker, [("num.partitions", AlterConfigOpType.SET, "7")])
    ops = [(kv.split("=", 1)[0], AlterConfigOpType.SET, kv.split("=", 1)[1]) for kv in args.set]
    out["set_error"] = alter(admin, args.broker, ops) if ops else None
    resource = ConfigResource(ResourceType.BROKER, args.broker)
    broker_configs = admin.describe_configs([resource])[resource].result(10)
    out["broker_retention"] = entry(broker_configs, "log.retention.ms")
    topic = ConfigResource(ResourceType.TOPIC, args.topic)
    topic_configs = admin.describe_configs([topic])[topic].result(10)
    out["topic_retention"] = entry(topic_configs, "retention.ms")
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001
        print(f"error: {error!r}", file=sys.stderr)
        sys.exit(1)
