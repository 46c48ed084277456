"""Shared by the Python load scripts (bench_console.py,
bench_subscribe_churn.py, bench_webhooks.py): a release `serve` of their own on loopback,
its /metrics and /proc figures, `callguard loadgen` runs and their
report, raw Server-Sent-Events clients. Python standard library only.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

# The repository: the scripts' defaults (the release binary, the output
# folder) are under it, wherever they are run from.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Day-independent traffic: without this, on a weekend or out of 09:00-18:00
# UTC every call start raises an `out_of_hours` info alert, and the figures
# would depend on when they were taken.
QUIET_POLICY = '[business_hours]\nout_of_hours = "off"\n'


def die(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def exit_on_sigterm():
    """SIGTERM ends the script through its `finally` blocks, so the serve
    it started is stopped and its temporary data dir removed."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def write_summary(out_dir, summary):
    """Adds the load average at the end and writes summary.json."""
    summary["load_after"] = loadavg()
    path = os.path.join(out_dir, "summary.json")
    with open(path, "w") as f:
        json.dump(summary, f, indent=1)
    print(f"summary: {path}")


def machine():
    with open("/proc/meminfo") as f:
        mem = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {mem / 1048576:.0f} GiB, {model}"


def percentile(values, q):
    """Nearest rank: the smallest value with at least q of the values at or
    below it."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-round(q * 1000) * len(ordered) // 1000))
    return ordered[min(rank, len(ordered)) - 1]


def check_binary(path):
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        die(f"no callguard binary at {path}: run `cargo build --release` or pass its path")
    return os.path.abspath(path)


class Serve:
    """`callguard serve` on 127.0.0.1 with a temporary data dir, the quiet
    policy (plus `limits`, a TOML fragment) and the given or free ports."""

    def __init__(self, binary, out_dir, name, grpc_port=0, http_port=0, limits=""):
        self.work = tempfile.mkdtemp(prefix=f"callguard-{name}-")
        self.policy = os.path.join(self.work, "policy.toml")
        with open(self.policy, "w") as f:
            f.write(QUIET_POLICY)
        self.limits = limits
        config = self.config_path = os.path.join(self.work, "callguard.toml")
        self.write_config()
        self.grpc = f"127.0.0.1:{grpc_port or free_port()}"
        self.http = f"127.0.0.1:{http_port or free_port()}"
        self.log_path = os.path.join(out_dir, f"{name}.serve.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [binary, "serve", "--config", config, "--data-dir", os.path.join(self.work, "data"),
             "--listen", self.grpc, "--http", self.http],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.flush()
                with open(self.log_path) as f:
                    tail = f.read()[-2000:]
                self._cleanup()
                die(f"serve exited with {self.proc.returncode} at start:\n{tail}")
            try:
                if self.get("/readyz", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        die(f"serve did not report ready on http://{self.http}/readyz within 30 s (log: {self.log_path})")

    def write_config(self, tables=""):
        """The config file: the quiet policy, `tables` (TOML arrays of
        tables such as [[webhooks]]), then [limits]."""
        with open(self.config_path, "w") as f:
            f.write(f"policy = {self.policy!r}\n{tables}\n[limits]\n{self.limits}")

    def reload(self, tables, message="webhooks reloaded", timeout=60):
        """Rewrites the config with `tables`, sends SIGHUP and waits until
        the log holds one more `message` line than before."""
        def count():
            self.log.flush()
            with open(self.log_path, errors="replace") as f:
                return f.read().count(message)
        before = count()
        self.write_config(tables)
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while count() == before:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                die(f"serve did not log {message!r} within {timeout} s of SIGHUP (log: {self.log_path})")
            time.sleep(0.1)

    def metric_labelled(self, name, label):
        """The sum of `name{...label...}` over its other labels (0 if none)."""
        _, body = self.get("/metrics")
        total = 0.0
        for line in body.decode().splitlines():
            if line.startswith(name + "{") and label in line:
                total += float(line.split()[-1])
        return total

    def get(self, path, timeout=10):
        try:
            with urllib.request.urlopen(f"http://{self.http}{path}", timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def metric(self, name):
        """The value of an unlabelled metric on /metrics (None if absent)."""
        _, body = self.get("/metrics")
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def metric_sum_count(self, name):
        """(sum, count) of a histogram or summary on /metrics."""
        _, body = self.get("/metrics")
        total = count = 0.0
        for line in body.decode().splitlines():
            if line.startswith(name + "_sum"):
                total += float(line.split()[-1])
            elif line.startswith(name + "_count"):
                count += float(line.split()[-1])
        return total, count

    def wait_metric(self, name, want, timeout=30):
        """Polls until the gauge reads `want`; returns (value, seconds)."""
        start = time.monotonic()
        value = None
        while time.monotonic() - start < timeout:
            value = self.metric(name)
            if value == want:
                break
            time.sleep(0.1)
        return value, time.monotonic() - start

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def rss_settled_kib(self, reads=5, gap=0.2):
        """The median of a few reads (RSS moves by a few pages at rest)."""
        values = []
        for _ in range(reads):
            values.append(self.rss_kib())
            time.sleep(gap)
        return sorted(values)[len(values) // 2]

    def cpu_s(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._cleanup()

    def _cleanup(self):
        self.log.close()
        shutil.rmtree(self.work, ignore_errors=True)


def loadgen(binary, serve, args, out_path):
    """Runs `callguard loadgen` against `serve` and returns its parsed
    report (also written to out_path)."""
    cmd = [binary, "loadgen", "--server", serve.grpc, "--server-pid", str(serve.pid)] + [str(a) for a in args]
    before = loadavg()
    run = subprocess.run(cmd, capture_output=True, text=True)
    after = loadavg()
    with open(out_path, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n" + run.stdout + run.stderr)
        f.write(f"load average before: {before}, after: {after}\n")
    if run.returncode != 0:
        die(f"loadgen failed ({run.returncode}); see {out_path}:\n{run.stderr[-2000:]}")
    report = parse_loadgen(run.stdout)
    report["load_before"], report["load_after"] = before, after
    report["command"] = " ".join(cmd[1:])
    return report


def parse_loadgen(text):
    """The figures of loadgen's report that the scripts use (ms, %)."""
    def ms(line_start, key):
        for line in text.splitlines():
            if line.strip().startswith(line_start):
                m = re.search(rf"{key} ([0-9.]+) ms", line)
                if m:
                    return float(m.group(1))
        return float("nan")

    report = {
        "rt_full_p50": ms("rt at full", "p50"),
        "rt_full_p99": ms("rt at full", "p99"),
        "rt_p99": ms("round trip", "p99"),
        "sub_p50": ms("latency", "p50"),
        "sub_p99": ms("latency", "p99"),
    }
    m = re.search(r"sent (\d+), acked (\d+), rejected (\d+); failed calls (\d+)", text)
    if m:
        report.update(sent=int(m.group(1)), acked=int(m.group(2)), rejected=int(m.group(3)),
                      failed_calls=int(m.group(4)))
    m = re.search(r"(\d+) alerts on ingest streams", text)
    report["alerts"] = int(m.group(1)) if m else None
    m = re.search(r"server\s+pid \d+: CPU ([0-9.]+) s \((\d+) % of the run\)", text)
    if m:
        report["server_cpu_s"], report["server_cpu_pct"] = float(m.group(1)), int(m.group(2))
    return report


class SseSocket:
    """One raw Server-Sent-Events client of GET /api/v1/events (HTTP/1.1,
    a socket of its own): connected once the 200 and its headers are in."""

    def __init__(self, http_addr, token=None):
        host, port = http_addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.sock.sendall(
            f"GET /api/v1/events HTTP/1.1\r\nHost: {http_addr}\r\nAccept: text/event-stream\r\n{auth}\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the server closed the event stream before its headers")
            head += chunk
        status = head.split(b"\r\n", 1)[0]
        if b" 200 " not in status + b" ":
            raise ConnectionError(f"GET /api/v1/events answered {status.decode(errors='replace')}")
        self.sock.setblocking(False)
        self.bytes = len(head) - head.index(b"\r\n\r\n") - 4
        self.events = 0
        self._tail = b""

    def drain(self):
        """Reads what is there; returns False when the server closed."""
        try:
            chunk = self.sock.recv(1 << 16)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        self.bytes += len(chunk)
        data = self._tail + chunk
        self.events += data.count(b"\nid:") - self._tail.count(b"\nid:")
        self._tail = data[-4:]
        return True

    def close(self):
        self.sock.close()
