#!/usr/bin/env bash
# Leader and controller failover times of a 3-broker Strom cluster on a real ZooKeeper with
# zookeeper.session.timeout.ms=6000 (issue 9's closing note): RUNS kill -9 of a partition leader
# and RUNS kill -9 of the controller, each measured until the surviving brokers' Metadata shows
# the new leader / controller. Prints a JSON line and a table; about 20 s per pair of runs.
# Usage: bash benches/cluster-failover.sh [RUNS]   (default 20; needs Debian's zookeeper package)
# Set STROM_TEST_BIN to measure another strom binary (e.g. a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-20}"
echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
cargo build --bin strom >&2
out=$(STROM_FAILOVER_RUNS="$runs" cargo test -p strom --test cluster_failover_timing -- \
    --ignored --nocapture --test-threads 1 2>&2 | tee /dev/stderr)
echo "$out" | sed -n "s/.*FAILOVER_TIMING_JSON //p"
echo "$out" | grep '^|'
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
