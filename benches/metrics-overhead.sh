#!/usr/bin/env bash
# What scraping /metrics costs the data path: `strom bench produce` against one broker, with and
# without a scrape of its admin listener every second, interleaved in one run (plain, scraped,
# scraped, plain, ...), each on a fresh topic deleted afterwards. Prints every run as a JSON line,
# then the median of each kind and their ratio.
#
#   benches/metrics-overhead.sh [--runs N] [--duration-secs S] [--message-bytes B] [--strom PATH]
#
# Starts its own broker (temporary log dir, ports from 32000-32999) and stops it at the end.
set -euo pipefail

runs=4
duration_secs=8
message_bytes=1024
strom="$(dirname "$0")/../target/release/strom"
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --duration-secs) duration_secs="$2"; shift 2 ;;
    --message-bytes) message_bytes="$2"; shift 2 ;;
    --strom) strom="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$strom" ] || { echo "build it first: cargo build --release --bin strom" >&2; exit 2; }
command -v curl >/dev/null || { echo "needs curl" >&2; exit 2; }

dir="$(mktemp -d /tmp/strom-metrics-overhead.XXXXXX)"
port=$((32000 + RANDOM % 900))
admin_port=$((port + 1))
bootstrap="127.0.0.1:$port"
metrics_url="http://127.0.0.1:$admin_port/metrics"
"$strom" broker start --override "log.dirs=$dir/data" \
  --override "listeners=PLAINTEXT://$bootstrap" \
  --override "admin.listeners=http://127.0.0.1:$admin_port" >"$dir/broker.log" 2>&1 &
broker_pid=$!
scraper_pid=""
cleanup() {
  [ -n "$scraper_pid" ] && kill "$scraper_pid" 2>/dev/null || true
  kill -TERM "$broker_pid" 2>/dev/null || true
  wait "$broker_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$admin_port/v1/status/ready" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:$admin_port/v1/status/ready" >/dev/null || { cat "$dir/broker.log" >&2; exit 1; }

scrape_every_second() {
  while :; do
    curl -sf -o /dev/null "$metrics_url" && echo ok >>"$dir/scrapes" || echo failed >>"$dir/scrapes"
    sleep 1
  done
}

: >"$dir/results"
for run in $(seq 1 "$runs"); do
  # Alternate which kind goes first, so neither always runs on a warmer (or dirtier) machine.
  if [ $((run % 2)) -eq 1 ]; then order="plain scraped"; else order="scraped plain"; fi
  for kind in $order; do
    topic="overhead-$kind-$run"
    : >"$dir/scrapes"
    if [ "$kind" = scraped ]; then
      scrape_every_second &
      scraper_pid=$!
    fi
    "$strom" bench produce --brokers "$bootstrap" --topic "$topic" --message-bytes "$message_bytes" \
      --duration-secs "$duration_secs" --no-progress --json "$dir/run.json" >/dev/null
    if [ -n "$scraper_pid" ]; then
      kill "$scraper_pid" 2>/dev/null || true
      wait "$scraper_pid" 2>/dev/null || true
      scraper_pid=""
    fi
    "$strom" topic delete "$topic" --brokers "$bootstrap" >/dev/null
    python3 - "$dir/run.json" "$kind" "$run" "$dir/scrapes" >>"$dir/results" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
result = report["results"][0]
scrapes = open(sys.argv[4]).read().split()
print(json.dumps({"kind": sys.argv[2], "run": int(sys.argv[3]), "msgs_per_sec": round(result["msgs_per_sec"]),
                  "mb_per_sec": round(result["mb_per_sec"], 1), "p99_ms": result["latency"].get("p99_ms"),
                  "scrapes_ok": scrapes.count("ok"), "scrapes_failed": scrapes.count("failed")}))
EOF
    tail -1 "$dir/results"
  done
done

python3 - "$dir/results" <<'EOF'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
median = {kind: statistics.median(r["mb_per_sec"] for r in rows if r["kind"] == kind) for kind in ("plain", "scraped")}
print(f"median MB/s without scrapes: {median['plain']:.1f}, with a scrape every second: {median['scraped']:.1f} "
      f"(ratio {median['scraped'] / median['plain']:.3f})")
EOF
