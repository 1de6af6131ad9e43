#!/usr/bin/env bash
# Replication cost on one machine: `strom bench produce --acks all` of 1 KiB messages to an RF=3
# topic against an RF=1 topic on the same three-broker cluster, in one run, with each broker's
# CPU seconds per GB produced (leader and followers alike: every broker leads some partitions).
#
#   benches/replication-bench.sh [--count N] [--strom PATH]
#
# Starts its own cluster with `strom cluster up` (a local ZooKeeper and three brokers) in a
# temporary directory and stops it at the end. Prints one JSON line per topic and a table.
set -euo pipefail

count=200000
strom="$(dirname "$0")/../target/release/strom"
while [ $# -gt 0 ]; do
  case "$1" in
    --count) count="$2"; shift 2 ;;
    --strom) strom="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$strom" ] || { echo "build it first: cargo build --release --bin strom" >&2; exit 2; }

dir="$(mktemp -d /tmp/strom-replication-bench.XXXXXX)"
base_port=$((26000 + RANDOM % 2000))
"$strom" cluster up --brokers 3 --dir "$dir" --base-port "$base_port" >"$dir/cluster-up.log" 2>&1 &
cluster_pid=$!
cleanup() {
  kill -INT "$cluster_pid" 2>/dev/null || true
  wait "$cluster_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

bootstrap="127.0.0.1:$base_port"
for _ in $(seq 1 120); do
  grep -q "Bootstrap" "$dir/cluster-up.log" 2>/dev/null && break
  sleep 0.5
done
grep -q "Bootstrap" "$dir/cluster-up.log" || { cat "$dir/cluster-up.log" >&2; exit 1; }

# The brokers' pids: the processes whose command line names this cluster's directory.
mapfile -t pids < <(pgrep -f -- "$dir/broker-" || true)
[ "${#pids[@]}" -eq 3 ] || { echo "expected 3 broker processes, found ${#pids[@]}" >&2; exit 1; }

cpu_ticks() { # utime + stime of a pid, in clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat"
}
hz=$(getconf CLK_TCK)

run() { # topic replication_factor
  local topic="$1" rf="$2"
  # Warm-up (not measured): creates the topic and lets every follower start fetching, so the
  # measured run does not include the first fetches' setup and backoff.
  "$strom" bench produce --brokers "$bootstrap" --topic "$topic" --partitions 6 \
    --replication-factor "$rf" --message-bytes 1024 --count 20000 --acks all --idempotence \
    --no-progress >/dev/null 2>&1
  sleep 1
  local before=() after=()
  for pid in "${pids[@]}"; do before+=("$(cpu_ticks "$pid")"); done
  "$strom" bench produce --brokers "$bootstrap" --topic "$topic" --partitions 6 \
    --replication-factor "$rf" --message-bytes 1024 \
    --count "$count" --acks all --idempotence --no-progress --json "$dir/$topic.json" >/dev/null
  for pid in "${pids[@]}"; do after+=("$(cpu_ticks "$pid")"); done
  local cpu=""
  for i in 0 1 2; do
    cpu+="$(( after[i] - before[i] )) "
  done
  python3 - "$dir/$topic.json" "$rf" "$hz" "$count" $cpu <<'EOF'
import json, sys
path, rf, hz, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ticks = [int(t) for t in sys.argv[5:8]]
result = json.load(open(path))["results"][0]
gb = count * 1024 / 1e9
cpu_s = [t / hz for t in ticks]
line = {
    "replication_factor": rf,
    "messages": count,
    "mb_per_s": round(result["mb_per_sec"], 1),
    "p50_ms": result["latency"]["p50_ms"],
    "p99_ms": result["latency"]["p99_ms"],
    "broker_cpu_s": cpu_s,
    "broker_cpu_s_per_gb": [round(c / gb, 3) for c in cpu_s],
    "cluster_cpu_s_per_gb": round(sum(cpu_s) / gb, 3),
}
print(json.dumps(line))
EOF
}

rf1="$(run bench-rf1 1)"
rf3="$(run bench-rf3 3)"
echo "$rf1"
echo "$rf3"
python3 - "$rf1" "$rf3" <<'EOF'
import json, sys
rows = [json.loads(a) for a in sys.argv[1:]]
print(f"{'RF':>3} {'MB/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'cluster CPU-s/GB':>17}  per broker CPU-s/GB")
for r in rows:
    per = ", ".join(f"{x:.2f}" for x in r["broker_cpu_s_per_gb"])
    print(f"{r['replication_factor']:>3} {r['mb_per_s']:>8} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['cluster_cpu_s_per_gb']:>17}  {per}")
EOF
