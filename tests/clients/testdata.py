"""Deterministic test messages and result reporting shared by the Python client scripts.

Every message is a pure function of (tag, index), so a verifier can rebuild the exact bytes that were
produced without passing them around, and any corruption or mix-up shows as a mismatch.
"""

import json
import random
import sys

# Cap on how many individual problems a script lists in its JSON result (the count is always exact).
MAX_LISTED_ERRORS = 20


def make_message(tag, index, null_header_values=True):
    """Returns (key, value, headers) for message `index` of run `tag`.

    The mix is chosen to catch byte-fidelity bugs: null keys and values (tombstones), empty values,
    every byte value 0x00-0xff, records larger than a typical batch, repeated and empty header values,
    null header values, and text that compresses well so compression codecs are really exercised.
    """
    rnd = random.Random(f"{tag}/{index}")
    # Keys repeat (64 distinct) so several messages share a key, and therefore a partition.
    key = None if index % 97 == 13 else f"key-{index % 64}".encode()
    if index % 89 == 7:
        value = None
    else:
        if index % 500 == 250:
            size = 20_000 + rnd.randrange(20_000)
        else:
            size = rnd.choice([0, 1, 7, rnd.randrange(10, 200), rnd.randrange(200, 2_000)])
        noise = rnd.randbytes(size // 4)
        text = (f"strom message {index} " * (size // 16 + 1)).encode()[: size - len(noise)]
        value = noise + text
    headers = [
        ("id", str(index).encode()),
        ("tag", tag.encode()),
        ("bin", bytes([0, 255]) + rnd.randbytes(6)),
    ]
    if index % 3 == 0:
        headers += [("dup", b"first"), ("dup", b"second")]
    if index % 11 == 0:
        headers.append(("empty", b""))
    if null_header_values and index % 13 == 0:
        headers.append(("null", None))
    return key, value, headers


def message_id(headers):
    """The index stored in a message's `id` header, or None if it has none or it is malformed."""
    for name, value in headers or []:
        if name == "id" and value is not None:
            try:
                return int(value.decode())
            except (UnicodeDecodeError, ValueError):
                return None
    return None


def describe_diff(name, expected, actual):
    """A short description of how two byte strings (or header lists) differ."""
    if isinstance(expected, (bytes, type(None))) and isinstance(actual, (bytes, type(None))):
        if expected is None or actual is None:
            return f"{name}: expected {'null' if expected is None else f'{len(expected)} bytes'}, got {'null' if actual is None else f'{len(actual)} bytes'}"
        first = next((i for i, (a, b) in enumerate(zip(expected, actual)) if a != b), min(len(expected), len(actual)))
        return f"{name}: expected {len(expected)} bytes, got {len(actual)}; first difference at byte {first}"
    return f"{name}: expected {expected!r}, got {actual!r}"


class Report:
    """Collects problems and prints the one-line JSON result the Rust tests parse."""

    def __init__(self, mode, **fields):
        self.result = {"mode": mode, **fields}
        self.errors = []
        self.error_count = 0

    def error(self, message):
        self.error_count += 1
        if len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append(message)
        print(f"error: {message}", file=sys.stderr, flush=True)

    def finish(self, **fields):
        """Prints the result as the last stdout line and exits: 0 without errors, 1 with."""
        self.result.update(fields)
        self.result["errors"] = self.errors
        self.result["error_count"] = self.error_count
        print(json.dumps(self.result, sort_keys=True), flush=True)
        sys.exit(1 if self.error_count else 0)


def require_module(module, pip_name):
    """Imports `module` or exits 3 with an install hint (tests fail, never skip, on a missing client)."""
    try:
        return __import__(module)
    except ImportError as e:
        print(
            f"missing Python module {module!r} ({e}). Install the test clients with "
            f"`python3 -m pip install -r tests/clients/requirements.txt` (package {pip_name}) "
            f"or run .ci/install-test-deps",
            file=sys.stderr,
        )
        sys.exit(3)
