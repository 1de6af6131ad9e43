"""Run-time topic config changes through confluent-kafka's AdminClient (librdkafka):
incremental_alter_configs (SET, DELETE, validate_only, an invalid value, an unknown topic) and the
older alter_configs, each read back with describe_configs. Prints one JSON object of
observations; exits non-zero on an unexpected client error. The Rust test asserts on them."""
import argparse
import json
import sys

from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, ResourceType)


def describe(admin, topic):
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(10)
    return {name: {"value": entry.value, "source": ConfigSource(entry.source).name, "is_default": entry.is_default}
            for name, entry in configs.items()}


def incremental(admin, topic, ops, validate_only=False):
    """Applies [(key, op, value)]; returns None or the error's code name."""
    entries = [ConfigEntry(key, value, incremental_operation=op) for key, op, value in ops]
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
    try:
        admin.incremental_alter_configs([resource], validate_only=validate_only)[resource].result(10)
        return None
    except Exception as error:  # noqa: BLE001 - the error's code is what is observed
        return error.args[0].name()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--retention-ms", required=True)
    args = parser.parse_args()
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    out = {}
    out["before"] = describe(admin, args.topic)["retention.ms"]

    out["invalid_error"] = incremental(admin, args.topic, [
        ("segment.ms", AlterConfigOpType.SET, "60000"),
        ("retention.ms", AlterConfigOpType.SET, "not-a-number")])
    out["unknown_key_error"] = incremental(admin, args.topic, [
        ("no.such.config", AlterConfigOpType.SET, "1")])
    out["unknown_topic_error"] = incremental(admin, args.topic + "-missing", [
        ("retention.ms", AlterConfigOpType.SET, "1000")])
    out["validate_only_error"] = incremental(admin, args.topic, [
        ("retention.ms", AlterConfigOpType.SET, "1")], validate_only=True)
    unchanged = describe(admin, args.topic)
    out["after_refused"] = {"retention.ms": unchanged["retention.ms"], "segment.ms": unchanged["segment.ms"]}

    out["set_error"] = incremental(admin, args.topic, [
        ("retention.ms", AlterConfigOpType.SET, args.retention_ms),
        ("max.message.bytes", AlterConfigOpType.SET, "200000")])
    after = describe(admin, args.topic)
    out["after_set"] = {"retention.ms": after["retention.ms"], "max.message.bytes": after["max.message.bytes"]}

    out["delete_error"] = incremental(admin, args.topic, [
        ("max.message.bytes", AlterConfigOpType.DELETE, None)])
    out["after_delete"] = describe(admin, args.topic)["max.message.bytes"]

    # The older AlterConfigs replaces every override: only what it names stays.
    resource = ConfigResource(ResourceType.TOPIC, args.topic, set_config={"segment.bytes": "1024"})
    try:
        admin.alter_configs([resource])[resource].result(10)
        out["legacy_error"] = None
    except Exception as error:  # noqa: BLE001
        out["legacy_error"] = error.args[0].name()
    legacy = describe(admin, args.topic)
    out["after_legacy"] = {"segment.bytes": legacy["segment.bytes"], "retention.ms": legacy["retention.ms"]}

    # Put the retention back for the rest of the test.
    out["restore_error"] = incremental(admin, args.topic, [
        ("retention.ms", AlterConfigOpType.SET, args.retention_ms)])
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001
        print(f"error: {error!r}", file=sys.stderr)
        sys.exit(1)
