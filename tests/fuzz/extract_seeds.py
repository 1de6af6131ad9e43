#!/usr/bin/env python3
"""Turns a stopped broker's log dir into seeds for the file-format fuzz targets:

    python3 tests/fuzz/extract_seeds.py DATA_DIR tests/fuzz/corpus

- segment_recovery: every non-empty segment file (mode byte 0, and 1 = CRCs fixed up);
- record_batch: every batch of those segments;
- group_records: every record of `__consumer_offsets` (u16 key length, key, value);
- coordination_snapshot: the embedded store's snapshot (mode byte 0);
- znodes: every node's data in the snapshot, behind the selector byte of its parser
  (see fuzz_targets/znodes.rs), plus the node paths themselves.
"""

import hashlib
import os
import struct
import sys


def write(out, target, data):
    directory = os.path.join(out, target)
    os.makedirs(directory, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def batches(segment):
    at = 0
    while at + 12 <= len(segment):
        (length,) = struct.unpack(">i", segment[at + 8 : at + 12])
        end = at + 12 + length
        if length < 49 or end > len(segment):
            return
        yield segment[at:end]
        at = end


def varint(data, at):
    shift = value = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return (value >> 1) ^ -(value & 1), at


def records(batch):
    attributes = struct.unpack(">h", batch[21:23])[0]
    if attributes & 0x7:  # compressed: not walked here
        return
    (count,) = struct.unpack(">i", batch[57:61])
    at = 61
    for _ in range(count):
        length, at = varint(batch, at)
        end = at + length
        at += 1
        _, at = varint(batch, at)
        _, at = varint(batch, at)
        key_len, at = varint(batch, at)
        key = batch[at : at + max(key_len, 0)]
        at += max(key_len, 0)
        value_len, at = varint(batch, at)
        value = batch[at : at + max(value_len, 0)]
        yield key, value
        at = end


ZNODE_SELECTORS = [
    (lambda p: p.startswith("/brokers/ids/"), 0),
    (lambda p: p.endswith("/state") and p.startswith("/brokers/topics/"), 2),
    (lambda p: p.startswith("/brokers/topics/") and p.count("/") == 3, 1),
    (lambda p: p == "/controller", 3),
    (lambda p: p == "/controller_epoch", 4),
    (lambda p: p.startswith("/config/topics/"), 5),
    (lambda p: p == "/cluster/id", 6),
    (lambda p: p.startswith("/admin/controlled_shutdown/"), 7),
    (lambda p: p == "/latest_producer_id_block", 8),
    (lambda p: p.startswith("/isr_change_notification/"), 9),
    (lambda p: p.startswith("/config/changes/"), 10),
]


def snapshot_nodes(snapshot):
    body = snapshot[24:]
    (count,) = struct.unpack(">I", body[8:12])
    at = 12
    for _ in range(count):
        (path_len,) = struct.unpack(">H", body[at : at + 2])
        path = body[at + 2 : at + 2 + path_len].decode()
        at += 2 + path_len
        (data_len,) = struct.unpack(">I", body[at : at + 4])
        data = body[at + 4 : at + 4 + data_len]
        at += 4 + data_len + 24
        yield path, data


def main():
    data_dir, out = sys.argv[1], sys.argv[2]
    for root, _, files in os.walk(data_dir):
        for name in files:
            path = os.path.join(root, name)
            if name.endswith(".log") and os.path.getsize(path) > 0:
                segment = open(path, "rb").read()
                write(out, "segment_recovery", b"\x00" + segment)
                write(out, "segment_recovery", b"\x01" + segment[: len(segment) // 2])
                for batch in batches(segment):
                    write(out, "record_batch", batch)
                    if "__consumer_offsets" in root:
                        for key, value in records(batch):
                            write(out, "group_records", struct.pack(">H", len(key)) + key + value)
            if name == "coordination.snapshot":
                snapshot = open(path, "rb").read()
                write(out, "coordination_snapshot", b"\x00" + snapshot)
                for node_path, node_data in snapshot_nodes(snapshot):
                    write(out, "znodes", bytes([13]) + node_path.encode())
                    for matches, selector in ZNODE_SELECTORS:
                        if matches(node_path) and node_data:
                            write(out, "znodes", bytes([selector]) + node_data)
                            break


if __name__ == "__main__":
    main()
