#!/usr/bin/env bash
# Re-measures issue 8's table with librdkafka's rdkafka_performance as the client, one partition,
# broker CPU-seconds per GB from /proc/<broker pid>/stat (utime+stime, all threads incl. io_uring workers).
#
# Usage:
#   RDKAFKA_PERF=/path/to/librdkafka/examples/rdkafka_performance \
#     rdkafka-table.sh [options] LABEL=STROM_BINARY [LABEL=STROM_BINARY ...]
#
#   With two binaries (before=... after=...) the runs are paired: run 1 of each, then run 2 of each, ...
#   so that both see the same machine state.
#
# Options (all optional):
#   --runs N          full tables per binary (default 1); the markdown shows min–max over runs
#   --scale F         multiply every message count by F (default 1.0; ~5–15 s per row at the issue's speeds)
#   --rows LIST       comma-separated subset of: floor,p100,p1k,p10k,loopback,c100,c1k,c10k,lat2k,lat20k
#   --json PATH       where to write the JSON (default ./rdkafka-table.json)
#   --workdir DIR     parent of the temporary log dirs (default /tmp; must be the disk the broker will use)
#   --port N          broker port (default 19092)
#   --keep            keep the log dirs (default: delete after each run)
#   --interleave      run each consume row right after its produce row (reads from the page cache; the default
#                     order is the issue's: all produce rows, then all consume rows, which on a shared machine
#                     often reads the consume rows' data back from disk; the table flags that per row)
#   --render JSON     only print the markdown table of an earlier run's JSON
#   --broker-arg ARG  extra argument for `strom broker start` (repeatable), e.g. --broker-arg=--override --broker-arg=num.shards=2
#
# Environment:
#   RDKAFKA_PERF      path of rdkafka_performance (required)
#   PRODUCE_FLOOR     path of produce-floor.py (default: shared/tools/produce-floor.py beside the project)
#
# What each row runs (the flags are also written into the JSON):
#   produce: rdkafka_performance -P -t T -p 0 -s SIZE -c COUNT -a ACKS -b B -X linger.ms=5
#            -X batch.size=1000000 -X batch.num.messages=10000 -X queue.buffering.max.messages=1000000
#   consume: rdkafka_performance -C -t T -p 0 -o beginning -e -c COUNT -b B   (librdkafka's fetch defaults)
#   latency: rdkafka_performance -P -l -r RATE -s 1024 -a 1 -X linger.ms=0 -A FILE; p50/p99/p99.9 computed from
#            FILE (the tool itself prints only curr/avg/lo/hi; FILE has one produce→delivery-report latency
#            in microseconds per message)
#   loopback: a python sender/receiver moving 2 GB over 127.0.0.1 in 256 KiB writes (receiver recv_into)
#   floor:   produce-floor.py RUN_TMPDIR (the dir holding the log dir; receiver CPU-s per GB of loopback receive + write(2))
# Before every row the log dir's filesystem is synced (sync -f), so no row pays for the previous rows' writeback.
# Every row also records client CPU, load average, vmstat deltas (pgpgin = page-cache misses, direct reclaim,
# page_reported_kib = memory handed back to the host, which costs a first touch again) and broker read_bytes.
# GB = 1e9 bytes of message payload; MB/s = 1e6 bytes/s of payload (as rdkafka_performance prints it).
set -euo pipefail
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0; fi
RDKAFKA_TABLE_DIR="$(cd "$(dirname "$0")" && pwd)"
export RDKAFKA_TABLE_DIR
exec python3 - "$@" <<'PYTHON'
import json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time

ARGS = sys.argv[1:]
CLK_TCK = os.sysconf("SC_CLK_TCK")

def die(msg):
    print(f"rdkafka-table: {msg}", file=sys.stderr)
    sys.exit(2)

opts = {"runs": 1, "scale": 1.0, "rows": None, "json": "rdkafka-table.json", "workdir": "/tmp",
        "port": 19092, "keep": False, "broker_args": []}
binaries = []
i = 0
while i < len(ARGS):
    a = ARGS[i]
    def val():
        global i
        if "=" in a and a.startswith("--"):
            return a.split("=", 1)[1]
        i += 1
        if i >= len(ARGS):
            die(f"{a} needs a value")
        return ARGS[i]
    key = a.split("=", 1)[0]
    if key == "--runs": opts["runs"] = int(val())
    elif key == "--scale": opts["scale"] = float(val())
    elif key == "--rows": opts["rows"] = val().split(",")
    elif key == "--json": opts["json"] = val()
    elif key == "--workdir": opts["workdir"] = val()
    elif key == "--port": opts["port"] = int(val())
    elif key == "--keep": opts["keep"] = True
    elif key == "--broker-arg": opts["broker_args"].append(val())
    elif key == "--render": opts["render"] = val()
    elif key == "--interleave": opts["interleave"] = True
    elif "=" in a and not a.startswith("-"):
        label, path = a.split("=", 1)
        binaries.append((label, os.path.abspath(path)))
    else:
        die(f"unknown argument {a}")
    i += 1
RENDER = opts.get("render")
if RENDER:
    with open(RENDER) as f:
        rendered = json.load(f)
    for t in rendered["tables"]:
        if (t["label"], t["binary"]) not in binaries:
            binaries.append((t["label"], t["binary"]))
    opts["rows"] = list(rendered["tables"][0]["rows"].keys())
    os.environ.setdefault("RDKAFKA_PERF", "/bin/true")
if not binaries:
    die("give at least one LABEL=STROM_BINARY")
PERF = os.environ.get("RDKAFKA_PERF")
if not PERF or not os.access(PERF, os.X_OK):
    die("set RDKAFKA_PERF to the path of rdkafka_performance")
FLOOR = os.environ.get("PRODUCE_FLOOR", os.path.join(os.environ["RDKAFKA_TABLE_DIR"], "..", "..", "shared", "tools", "produce-floor.py"))
for _, b in binaries:
    if not os.access(b, os.X_OK):
        die(f"not executable: {b}")

ALL_ROWS = ["floor", "p100", "p1k", "p10k", "loopback", "c100", "c1k", "c10k", "lat2k", "lat20k"]
rows_wanted = opts["rows"] or ALL_ROWS
for r in rows_wanted:
    if r not in ALL_ROWS:
        die(f"unknown row {r}")
if opts.get("interleave"):
    # each consume row right after its produce row, so it reads what is still in the page cache
    pairs = {"p100": "c100", "p1k": "c1k", "p10k": "c10k"}
    ordered = []
    for r in rows_wanted:
        if r in pairs.values() and r in ordered:
            continue
        ordered.append(r)
        if r in pairs and pairs[r] in rows_wanted:
            ordered.append(pairs[r])
    rows_wanted = ordered

def scaled(n):
    return max(1000, int(n * opts["scale"]))

# Message counts: ~5–15 s each at the issue's figures (1.5–2 M msg/s of 100 B, 0.5–0.7 GB/s produce, 1.1–1.4 GB/s consume).
PRODUCE_ROWS = {  # row -> (topic, size_bytes, count, acks, label)
    "p100": ("t100", 100, 15_000_000, "1", "produce 100 B, acks=1"),
    "p1k": ("t1k", 1024, 4_000_000, "1", "produce 1 KiB, acks=1"),
    "p10k": ("t10k", 10240, 400_000, "all", "produce 10 KiB, acks=all"),
}
CONSUME_ROWS = {  # row -> producing row
    "c100": ("p100", "consume 100 B"),
    "c1k": ("p1k", "consume 1 KiB"),
    "c10k": ("p10k", "consume 10 KiB"),
}
LATENCY_ROWS = {  # row -> (topic, rate_msgs_per_s, seconds)
    "lat2k": ("tlat2k", 2000, 10, "produce latency 1 KiB at 2,000 msg/s"),
    "lat20k": ("tlat20k", 20000, 10, "produce latency 1 KiB at 20,000 msg/s"),
}
PRODUCE_FLAGS = ["-X", "linger.ms=5", "-X", "batch.size=1000000", "-X", "batch.num.messages=10000",
                 "-X", "queue.buffering.max.messages=1000000"]
LATENCY_FLAGS = ["-a", "1", "-X", "linger.ms=0"]

def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # after the comm field: state is fields[0]; utime is stat field 14 -> fields[11], stime 15 -> fields[12]
    return int(fields[11]) + int(fields[12])

def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])

def run_client(cmd, timeout_s):
    """Runs a client, returns (rc, stdout+stderr, client cpu seconds, wall seconds)."""
    started = time.time()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out_chunks = []
    # read output without deadlocking; enforce a timeout
    import threading
    def reader():
        out_chunks.append(proc.stdout.read())
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    deadline = started + timeout_s
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.time() > deadline:
            proc.send_signal(signal.SIGINT)
            time.sleep(3)
            try:
                proc.kill()
            except ProcessLookupError:
                pass
            pid, status, ru = os.wait4(proc.pid, 0)
            break
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    t.join(5)
    wall = time.time() - started
    out = (out_chunks[0] if out_chunks else b"").decode(errors="replace")
    return proc.returncode, out, ru.ru_utime + ru.ru_stime, wall

class Broker:
    def __init__(self, binary, port):
        self.binary = binary
        self.port = port
        self.addr = f"127.0.0.1:{port}"
        self.dir = tempfile.mkdtemp(prefix="rdk-table-", dir=opts["workdir"])
        self.logdir = os.path.join(self.dir, "log")
        os.mkdir(self.logdir)
        self.log = open(os.path.join(self.dir, "broker.log"), "wb")
        cmd = [binary, "broker", "start", "--override", f"log.dirs={self.logdir}",
               "--override", f"listeners=PLAINTEXT://{self.addr}"]
        # The admin listener off (its default port is shared), on binaries that have one: an
        # older `before` binary refuses the unknown key.
        with open(binary, "rb") as f:
            if b"admin.listeners" in f.read():
                cmd += ["--override", "admin.listeners="]
        cmd += opts["broker_args"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                die(f"broker exited at start (rc {self.proc.returncode}); log in {self.dir}/broker.log")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    die("broker did not listen within 60 s")
                time.sleep(0.2)

    def create_topic(self, name):
        r = subprocess.run([self.binary, "topic", "create", name, "--partitions", "1", "--brokers", self.addr],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if r.returncode != 0:
            die(f"topic create {name} failed: {r.stdout}{r.stderr}")

    def cpu_s(self):
        return cpu_ticks(self.proc.pid) / CLK_TCK

    def rss_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return None

    def stop(self):
        started = time.time()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        stop_s = time.time() - started
        self.log.close()
        if not opts["keep"]:
            shutil.rmtree(self.dir, ignore_errors=True)
        return stop_s

SUMMARY_P = re.compile(r"% (\d+) messages produced \((\d+) bytes\), (\d+) delivered \(offset (-?\d+), (\d+) failed\) in (\d+)ms: (\d+) msgs/s and ([\d.]+) MB/s")
SUMMARY_C = re.compile(r"% (\d+) messages \((\d+) bytes\) consumed in (\d+)ms: (\d+) msgs/s \(([\d.]+) MB/s\)")

def last_match(pattern, text):
    m = None
    for m in pattern.finditer(text):
        pass
    return m

def percentile(sorted_vals, p):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]

VMSTAT_KEYS = ("pgfault", "pgmajfault", "pgpgin", "pgpgout", "pgscan_direct", "pgsteal_direct", "pgscan_kswapd")

def vmstat():
    d = {}
    with open("/proc/vmstat") as f:
        for line in f:
            k, v = line.split()
            if k in VMSTAT_KEYS:
                d[k] = int(v)
    try:  # memory the guest handed back to the host (virtio-balloon free page reporting): touching it again costs
        with open("/sys/module/page_reporting/parameters/reported_kib") as f:
            d["page_reported_kib"] = int(f.read())
    except OSError:
        pass
    return d

def broker_io(pid):
    try:
        with open(f"/proc/{pid}/io") as f:
            return {k: int(v) for k, v in (line.split(":") for line in f) if k in ("read_bytes", "syscr", "syscw")}
    except OSError:
        return {}

def broker_measured(broker, cmd, timeout_s):
    """Diagnostics next to the figures: vmstat deltas (page-ins = page-cache misses, direct reclaim) and the
    broker's disk read_bytes, so an outlier can be told apart from a broker regression."""
    before = broker.cpu_s()
    load = loadavg()
    vm0, io0 = vmstat(), broker_io(broker.proc.pid)
    rc, out, client_cpu, wall = run_client(cmd, timeout_s)
    after = broker.cpu_s()
    vm1, io1 = vmstat(), broker_io(broker.proc.pid)
    return {"rc": rc, "broker_cpu_s": round(after - before, 3), "client_cpu_s": round(client_cpu, 3),
            "wall_s": round(wall, 3), "loadavg_before": load, "cmd": cmd,
            "vmstat_delta": {k: vm1[k] - vm0.get(k, 0) for k in vm1},
            "broker_io_delta": {k: io1[k] - io0.get(k, 0) for k in io1}}, out

def row_produce(broker, row):
    topic, size, count, acks, label = PRODUCE_ROWS[row]
    count = scaled(count)
    broker.create_topic(topic)
    cmd = [PERF, "-P", "-t", topic, "-p", "0", "-s", str(size), "-c", str(count), "-a", acks,
           "-b", broker.addr] + PRODUCE_FLAGS
    res, out = broker_measured(broker, cmd, 600)
    m = last_match(SUMMARY_P, out)
    if not m:
        res["error"] = "no summary line"; res["output_tail"] = out[-2000:]; return res
    msgs, nbytes, delivered, failed = int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(5))
    res.update({"label": label, "msgs": delivered, "payload_bytes": delivered * size, "failed": failed,
                "client_ms": int(m.group(6)), "msgs_per_s": int(m.group(7)), "mb_per_s": float(m.group(8))})
    if delivered != count or failed:
        res["error"] = f"delivered {delivered} of {count}, {failed} failed"
    res["cpu_s_per_gb"] = round(res["broker_cpu_s"] / (res["payload_bytes"] / 1e9), 3) if delivered else None
    return res

def row_consume(broker, row, produced):
    prow, label = CONSUME_ROWS[row]
    topic, size, count, _, _ = PRODUCE_ROWS[prow]
    count = produced.get(prow, {}).get("msgs") or scaled(count)
    cmd = [PERF, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-c", str(count), "-b", broker.addr]
    res, out = broker_measured(broker, cmd, 600)
    m = last_match(SUMMARY_C, out)
    if not m:
        res["error"] = "no summary line"; res["output_tail"] = out[-2000:]; return res
    msgs = int(m.group(1))
    res.update({"label": label, "msgs": msgs, "payload_bytes": int(m.group(2)), "client_ms": int(m.group(3)),
                "msgs_per_s": int(m.group(4)), "mb_per_s": float(m.group(5))})
    if msgs != count:
        res["error"] = f"consumed {msgs} of {count}"
    res["cpu_s_per_gb"] = round(res["broker_cpu_s"] / (res["payload_bytes"] / 1e9), 3) if msgs else None
    return res

def row_latency(broker, row, tmpdir):
    topic, rate, seconds, label = LATENCY_ROWS[row]
    count = max(2 * rate, int(rate * seconds * min(1.0, opts["scale"])))
    broker.create_topic(topic)
    lat_file = os.path.join(tmpdir, f"{row}.lat")
    cmd = [PERF, "-P", "-l", "-r", str(rate), "-t", topic, "-p", "0", "-s", "1024", "-c", str(count),
           "-b", broker.addr, "-A", lat_file] + LATENCY_FLAGS
    res, out = broker_measured(broker, cmd, 120)
    m = last_match(SUMMARY_P, out)
    vals = []
    try:
        with open(lat_file) as f:
            vals = [int(x) for x in f if x.strip()]
    except OSError:
        pass
    if not m or not vals:
        res["error"] = "no summary line or latency file"; res["output_tail"] = out[-2000:]; return res
    # The file is in delivery order. Messages produced before the client's first connection and metadata
    # are ready wait for them (client bootstrap, not the broker), so the headline percentiles skip the first
    # second's worth of messages; the percentiles over all samples are kept in the JSON too.
    steady = sorted(vals[min(len(vals) - 1, rate):])
    everything = sorted(vals)
    res.update({"label": label, "msgs": int(m.group(3)), "target_rate": rate, "msgs_per_s": int(m.group(7)),
                "mb_per_s": float(m.group(8)), "latency_samples": len(vals), "warmup_samples_skipped": len(vals) - len(steady),
                "p50_us": percentile(steady, 50), "p99_us": percentile(steady, 99),
                "p999_us": percentile(steady, 99.9), "max_us": steady[-1],
                "all_p50_us": percentile(everything, 50), "all_p99_us": percentile(everything, 99),
                "all_max_us": everything[-1]})
    return res

def row_loopback(total_bytes=2_000_000_000, chunk=256 << 10):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    load = loadavg()
    pid = os.fork()
    if pid == 0:
        listener.close()
        c = socket.create_connection(("127.0.0.1", port))
        block = b"\x01" * chunk
        sent = 0
        while sent < total_bytes:
            c.sendall(block)
            sent += chunk
        c.close()
        os._exit(0)
    conn, _ = listener.accept()
    buf = memoryview(bytearray(chunk))
    got = 0
    started = time.time()
    while True:
        n = conn.recv_into(buf)
        if n == 0:
            break
        got += n
    elapsed = time.time() - started
    os.waitpid(pid, 0)
    conn.close(); listener.close()
    return {"label": "loopback TCP, 256 KiB writes", "bytes": got, "wall_s": round(elapsed, 3),
            "mb_per_s": round(got / 1e6 / elapsed, 1), "loadavg_before": load}

def row_floor(tmpdir):
    load = loadavg()
    r = subprocess.run([sys.executable, FLOOR, tmpdir], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    m = re.search(r"produce floor: (\d+) MB/s, receiver ([\d.]+) cpu-s/GB", r.stdout)
    if not m:
        return {"label": "produce floor", "error": r.stdout + r.stderr}
    return {"label": "produce floor (loopback receive + write(2))", "mb_per_s": int(m.group(1)),
            "cpu_s_per_gb": float(m.group(2)), "loadavg_before": load}

def dirty_mb():
    d = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            d[k] = int(v.split()[0])
    return (d.get("Dirty", 0) + d.get("Writeback", 0)) / 1024

def settle_writeback(path):
    """Writes back the previous rows' dirty pages (syncfs on the log dir's filesystem) before a row starts:
    otherwise a row measures the kernel flushing earlier rows' data (seen: 9 GB written back during a latency
    row, p99 191 ms). Flusher threads do that work, not the broker, but they take the same two cores."""
    before = dirty_mb()
    started = time.time()
    subprocess.run(["sync", "-f", path], check=False)
    return {"dirty_mb_before_settle": round(before), "settle_s": round(time.time() - started, 2)}

def one_table(label, binary, run_index):
    print(f"== {label} run {run_index + 1}: {binary}  (load {loadavg()})", file=sys.stderr, flush=True)
    table = {"binary": binary, "label": label, "run": run_index + 1, "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "uptime_load_start": loadavg(), "rows": {}}
    broker = Broker(binary, opts["port"])
    table["broker_pid"] = broker.proc.pid
    try:
        produced = {}
        for row in rows_wanted:
            settle = settle_writeback(broker.dir)
            t0 = time.time()
            if row == "floor":
                res = row_floor(broker.dir)
            elif row == "loopback":
                res = row_loopback()
            elif row in PRODUCE_ROWS:
                res = row_produce(broker, row); produced[row] = res
            elif row in CONSUME_ROWS:
                prow = CONSUME_ROWS[row][0]
                if prow not in produced:
                    # consume needs its topic: produce it first (not reported as a row of its own)
                    produced[prow] = row_produce(broker, prow)
                res = row_consume(broker, row, produced)
            elif row in LATENCY_ROWS:
                res = row_latency(broker, row, broker.dir)
            res.update(settle)
            table["rows"][row] = res
            brief = {k: res.get(k) for k in ("mb_per_s", "msgs_per_s", "cpu_s_per_gb", "broker_cpu_s", "p50_us", "p99_us", "error") if res.get(k) is not None}
            print(f"   {row:9s} {time.time() - t0:6.1f}s {brief}", file=sys.stderr, flush=True)
        table["broker_rss_mb_end"] = broker.rss_mb()
    finally:
        table["broker_stop_s"] = round(broker.stop(), 2)
    table["uptime_load_end"] = loadavg()
    return table

def perf_version():
    r = subprocess.run([PERF, "-h"], capture_output=True, text=True)
    m = re.search(r"librdkafka version (\S+)", r.stdout + r.stderr)
    return m.group(1) if m else "unknown"

def fmt_range(vals, fmt):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "–"
    lo, hi = min(vals), max(vals)
    a, b = fmt(lo), fmt(hi)
    if a == b:
        return a
    # "1,318 MB/s–1,465 MB/s" -> "1,318–1,465 MB/s" when both carry the same unit
    ua, ub = a.rsplit(" ", 1), b.rsplit(" ", 1)
    if len(ua) == 2 and len(ub) == 2 and ua[1] == ub[1]:
        return f"{ua[0]}–{ub[0]} {ua[1]}"
    return f"{a}–{b}"

def markdown(result):
    labels = [l for l, _ in binaries]
    lines = []
    head = "| workload | " + " | ".join(f"{l}: throughput | {l}: broker CPU-s/GB" for l in labels) + " |"
    lines.append(head)
    lines.append("|---|" + "---|---|" * len(labels))
    def tables_of(l):
        return [t for t in result["tables"] if t["label"] == l]
    ms = lambda v: f"{v / 1e6:.2f} M msg/s"
    mbs = lambda v: f"{v:,.0f} MB/s"
    cpu = lambda v: f"{v:.2f}"
    us = lambda v: f"{v:,} µs" if v < 1000 else f"{v / 1000:.2f} ms"
    for row in rows_wanted:
        cells = []
        name = None
        for l in labels:
            rs = [t["rows"].get(row, {}) for t in tables_of(l)]
            name = name or next((r.get("label") for r in rs if r.get("label")), row)
            if row == "floor":
                cells += [fmt_range([r.get("mb_per_s") for r in rs], mbs), fmt_range([r.get("cpu_s_per_gb") for r in rs], cpu)]
            elif row == "loopback":
                cells += [fmt_range([r.get("mb_per_s") for r in rs], mbs), ""]
            elif row in LATENCY_ROWS:
                cells += ["p50 " + fmt_range([r.get("p50_us") for r in rs], us) + ", p99 " + fmt_range([r.get("p99_us") for r in rs], us)
                          + ", p99.9 " + fmt_range([r.get("p999_us") for r in rs], us)
                          + " (achieved " + fmt_range([r.get("msgs_per_s") for r in rs], lambda v: f"{v:,} msg/s") + ")", ""]
            else:
                size = PRODUCE_ROWS[row if row in PRODUCE_ROWS else CONSUME_ROWS[row][0]][1]
                thr = fmt_range([r.get("msgs_per_s") for r in rs], ms) if size == 100 else fmt_range([r.get("mb_per_s") for r in rs], mbs)
                c = fmt_range([r.get("cpu_s_per_gb") for r in rs], cpu)
                if row in PRODUCE_ROWS:
                    ratios = []
                    for t in tables_of(l):
                        fl = t["rows"].get("floor", {}).get("cpu_s_per_gb")
                        v = t["rows"].get(row, {}).get("cpu_s_per_gb")
                        if fl and v:
                            ratios.append(v / fl)
                    if ratios:
                        c += " (" + fmt_range(ratios, lambda v: f"{v:.1f}×") + " floor)"
                if row in CONSUME_ROWS:
                    # page-cache misses change a consume row's figures several-fold (direct reclaim and compaction
                    # on the shard thread): say so next to the figure
                    disk = [r.get("broker_io_delta", {}).get("read_bytes", 0) / r["payload_bytes"]
                            for r in rs if r.get("payload_bytes")]
                    if any(d > 0.01 for d in disk):
                        c += " (read from disk: " + fmt_range(disk, lambda v: f"{v:.0%}") + ")"
                errs = [r.get("error") for r in rs if r.get("error")]
                if errs:
                    c += " ⚠ " + "; ".join(errs)
                cells += [thr, c]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    loads = "; ".join(f"{t['label']} run {t['run']}: load {t['uptime_load_start']} → {t['uptime_load_end']}" for t in result["tables"])
    lines.append("")
    lines.append(f"Client: rdkafka_performance (librdkafka {result['client_version']}), one partition. Load averages: {loads}.")
    return "\n".join(lines)

if RENDER:
    print(markdown(rendered))
    sys.exit(0)

result = {"client": PERF, "client_version": perf_version(), "produce_flags": PRODUCE_FLAGS, "latency_flags": LATENCY_FLAGS,
          "scale": opts["scale"], "host_cpus": os.cpu_count(), "tables": []}
for run in range(opts["runs"]):
    for label, binary in binaries:
        result["tables"].append(one_table(label, binary, run))
        with open(opts["json"], "w") as f:
            json.dump(result, f, indent=1)
md = markdown(result)
result["markdown"] = md
with open(opts["json"], "w") as f:
    json.dump(result, f, indent=1)
print(md)
PYTHON
