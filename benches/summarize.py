#!/usr/bin/env python3
"""Prints a table of the latest criterion results of Strom's benches.

Usage: python3 benches/summarize.py [CRITERION_DIR]   (default: target/criterion)

For each bench: the median of the per-sample means (criterion's `median`, ns per iteration),
criterion's slope estimate, and the aggregate (all sample time / all iterations), with the
throughput each implies (MB/s = 1e6 bytes/s, or operations/s).
"""

import json
import sys
from pathlib import Path


def rate(ns_per_iter, throughput):
    if not throughput or not ns_per_iter:
        return ""
    (kind, amount), = throughput.items()
    per_s = amount * 1e9 / ns_per_iter
    if kind == "Bytes":
        return f"{per_s / 1e6:,.0f} MB/s"
    return f"{per_s:,.0f} /s"


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
    rows = []
    for bench in sorted(root.glob("*/*/new/benchmark.json")):
        new = bench.parent
        meta = json.loads(bench.read_text())
        estimates = json.loads((new / "estimates.json").read_text())
        sample = json.loads((new / "sample.json").read_text())
        median = estimates["median"]["point_estimate"]
        slope = (estimates.get("slope") or {}).get("point_estimate")
        aggregate = sum(sample["times"]) / sum(sample["iters"])
        throughput = meta.get("throughput")
        rows.append(
            (
                meta["full_id"],
                f"{median:,.1f}",
                rate(median, throughput),
                f"{slope:,.1f}" if slope else "",
                f"{aggregate:,.1f}",
                rate(aggregate, throughput),
            )
        )
    header = ("bench", "median ns", "median rate", "slope ns", "aggregate ns", "aggregate rate")
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)))


if __name__ == "__main__":
    main()
