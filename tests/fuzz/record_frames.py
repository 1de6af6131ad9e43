#!/usr/bin/env python3
"""A recording TCP proxy: captures the request frames real Kafka clients send, as seeds for the
`request` fuzz target.

    python3 tests/fuzz/record_frames.py --listen 30001 --broker 127.0.0.1:30000 --out DIR

Start the broker with `advertised.listeners=PLAINTEXT://127.0.0.1:<listen port>` so clients keep
talking through the proxy after their first Metadata request. Every client-to-broker frame is
written to DIR as `<api_key>-<api_version>-<sha1 of the frame>` without its 4-byte size prefix
(what `decode_request` takes); identical frames are stored once. Responses are forwarded
unrecorded. Runs until killed.
"""

import argparse
import hashlib
import os
import socket
import struct
import threading

# Frames larger than this are forwarded but not kept: the committed corpus stays small.
KEEP_FRAME_MAX_BYTES = 64 * 1024


def record(out_dir, frame):
    if len(frame) < 4 or len(frame) > KEEP_FRAME_MAX_BYTES:
        return
    api_key, api_version = struct.unpack(">hh", frame[:4])
    name = f"{api_key}-{api_version}-{hashlib.sha1(frame).hexdigest()[:16]}"
    path = os.path.join(out_dir, name)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(frame)


def client_to_broker(client, broker, out_dir):
    buffer = b""
    try:
        while True:
            data = client.recv(65536)
            if not data:
                break
            broker.sendall(data)
            buffer += data
            while len(buffer) >= 4:
                (size,) = struct.unpack(">i", buffer[:4])
                if size < 0 or len(buffer) < 4 + size:
                    break
                record(out_dir, buffer[4 : 4 + size])
                buffer = buffer[4 + size :]
    except OSError:
        pass
    finally:
        for sock in (client, broker):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def broker_to_client(broker, client):
    try:
        while True:
            data = broker.recv(65536)
            if not data:
                break
            client.sendall(data)
    except OSError:
        pass
    finally:
        try:
            client.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--broker", required=True, help="host:port of the real broker")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    host, port = args.broker.rsplit(":", 1)
    listener = socket.create_server(("127.0.0.1", args.listen), reuse_port=True)
    while True:
        client, _ = listener.accept()
        broker = socket.create_connection((host, int(port)))
        threading.Thread(target=client_to_broker, args=(client, broker, args.out), daemon=True).start()
        threading.Thread(target=broker_to_client, args=(broker, client), daemon=True).start()


if __name__ == "__main__":
    main()
