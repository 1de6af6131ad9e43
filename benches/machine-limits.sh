#!/usr/bin/env bash
# Raw limits of this machine, to print beside the bench results (see benches/RESULTS.md).
# Usage: bash benches/machine-limits.sh [DIR] [RUNS]   (DIR on the disk the benches use; not tmpfs)
set -euo pipefail
dir="${1:-${STROM_BENCH_DIR:-${TMPDIR:-/tmp}}}"
runs="${2:-3}"
file="$dir/strom-limits-$$.bin"
trap 'rm -f "$file"' EXIT

echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) CPUs, dir $dir ($(stat -f -c %T "$dir"))"
echo "# load: $(cut -d' ' -f1-3 /proc/loadavg)"
rate() { tail -1 | sed -E 's/.*copied, ([0-9.]+ s), (.*)/\2 (\1)/'; }
for run in $(seq 1 "$runs"); do
    echo "## run $run"
    rm -f "$file"
    echo "buffered write 1 GiB, bs=1M, + fdatasync:   $(dd if=/dev/zero of="$file" bs=1M count=1024 conv=fdatasync 2>&1 | rate)"
    rm -f "$file"
    echo "buffered write 1 GiB, bs=1M (page cache):   $(dd if=/dev/zero of="$file" bs=1M count=1024 2>&1 | rate)"
    rm -f "$file"
    echo "buffered write 1 GiB, bs=16k (page cache):  $(dd if=/dev/zero of="$file" bs=16k count=65536 2>&1 | rate)"
    echo "cached read 1 GiB, bs=1M:                   $(dd if="$file" of=/dev/null bs=1M 2>&1 | rate)"
    rm -f "$file"
    echo "O_DIRECT write 1 GiB, bs=1M:                $(dd if=/dev/zero of="$file" bs=1M count=1024 oflag=direct 2>&1 | rate)"
    rm -f "$file"
    # Every 16 KiB write waits for the disk: 1 / (time per write) is the serial sync rate.
    out=$(dd if=/dev/zero of="$file" bs=16k count=2000 oflag=dsync 2>&1 | tail -1)
    secs=$(echo "$out" | sed -E 's/.*copied, ([0-9.]+) s.*/\1/')
    echo "O_DSYNC 16 KiB appends, 2000 in series:     $secs s = $(awk -v s="$secs" 'BEGIN { printf "%.0f syncs/s, %.0f us each", 2000 / s, s / 2000 * 1e6 }')"
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
