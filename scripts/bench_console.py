#!/usr/bin/env python3
"""The supervisor console's figures (issue #14, item 6; BENCHMARKS.md,
"Console"), in one run against a `serve` of its own:

    python3 scripts/bench_console.py [--callguard target/release/callguard] [--out DIR]

(a) Alert to page. The console page in headless Chromium (driven through
    chromedriver's W3C WebDriver HTTP API), with a MutationObserver
    installed by executeScript on the alert feed that stamps
    performance.timeOrigin + performance.now() when a row for a new
    alert_id is inserted. `callguard loadgen` drives abusive calls in
    until --alerts new alerts have reached the page. Each is compared with
    the alert's `raised_at` (the server's wall clock, stamped in
    `live::state::publish` as the alert is handed to the group commit:
    what follows is the SQLite commit and its fsync, the live bus, the
    event-stream task, HTTP, and the page's parse and render). A Python
    event-stream client on the same stream records when each alert's
    bytes arrive, which splits the figure into server-to-client and
    browser. The page's clock is set against Python's (both the system
    clock) by executeScript round trips before and after.
(b) Memory per open event-stream client, measured first, on the fresh
    serve: server RSS before and after opening --clients idle clients of
    GET /api/v1/events (each its own connection), divided by their
    number; the same at five times as many; then after they all close.
(c) Ingest under event-stream readers: the same loadgen traffic (same
    seed) with 0 and with --clients clients reading every alert, in the
    order 0, N, N, 0, repeated --rounds times (2), after a warm-up run;
    the round-trip p99 at full load of each run and the ratio of the
    medians.

(p) With --parts abcp (not by default): the browser alone, a minimal
    event-stream server in this script and a page that only stamps each
    message, with TCP_NODELAY and without: what Chromium itself adds.

Needs Debian's chromium and chromium-driver for (a) and (p) (--skip-page
runs (b) and (c) only). Bounded: about 5 minutes on 2 cores. Prints a summary
and writes it, with every loadgen report, the serve log and each timed
alert (page-latency.csv), to --out.
"""

import argparse
import calendar
import http.client
import json
import os
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402


def rfc3339_s(text):
    """'2026-12-06T16:40:52.142671358Z' -> seconds since the epoch."""
    if not text.endswith("Z"):
        raise ValueError(f"raised_at not in UTC: {text!r}")
    main, _, frac = text[:-1].partition(".")
    secs = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    return secs + (int(frac) / 10 ** len(frac) if frac else 0.0)


# ---------------------------------------------------------------------------
# WebDriver (W3C), spoken to chromedriver over HTTP


class WebDriver:
    def __init__(self, chromedriver, chromium, log_path):
        self.port = bl.free_port()
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([chromedriver, f"--port={self.port}"], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"
        self.session = None
        deadline = time.monotonic() + 20
        while True:
            try:
                if self._call("GET", "/status")["value"].get("ready"):
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.quit()
                bl.die(f"chromedriver did not start (see {log_path})")
            time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1366,768", "--lang=en-US"]},
        }}}
        try:
            self.session = self._call("POST", "/session", caps)["value"]["sessionId"]
        except RuntimeError as e:
            self.quit()
            bl.die(f"chromedriver could not start {chromium}: {e}")

    def _call(self, method, path, body=None, timeout=60):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            try:
                value = json.load(e)["value"]
                raise RuntimeError(f"{value.get('error')}: {value.get('message', '')[:500]}") from None
            except (ValueError, KeyError):
                raise RuntimeError(f"HTTP {e.code} from chromedriver on {path}") from None

    def navigate(self, url):
        self._call("POST", f"/session/{self.session}/url", {"url": url})

    def execute(self, script, *args):
        return self._call("POST", f"/session/{self.session}/execute/sync",
                          {"script": script, "args": list(args)})["value"]

    def quit(self):
        if self.session:
            try:
                self._call("DELETE", f"/session/{self.session}", timeout=20)
            except (OSError, RuntimeError):
                pass
            self.session = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


PAGE_CLOCK = "return performance.timeOrigin + performance.now();"

# A row for a new alert_id in the feed: the first time an <li
# data-alert-id> with that id is inserted (a page that re-renders the feed
# whole inserts it again on every message: later insertions are not new).
INSTALL_OBSERVER = """
window.__cgRows = [];
const seen = new Set();
const feed = document.getElementById('feed');
new MutationObserver((records) => {
  const now = performance.timeOrigin + performance.now();
  for (const r of records) for (const n of r.addedNodes) {
    const id = n.nodeType === 1 && n.dataset ? n.dataset.alertId : undefined;
    if (id !== undefined && !seen.has(id)) { seen.add(id); window.__cgRows.push([Number(id), now]); }
  }
}).observe(feed, {childList: true});
for (const li of feed.querySelectorAll('li[data-alert-id]')) seen.add(li.dataset.alertId);
// When the browser created each alert's message event (event.timeStamp),
// before it waited for the page's main thread and was rendered.
window.__cgMsgs = [];
const heard = new Set();
// Time the page spends in its own message handler, in its animation-frame
// callbacks (a page that renders once per frame does it there, not in the
// handler), and in long tasks (over 50 ms) of any kind: a busy main thread
// is what makes a message wait before its event is even created.
window.__cgBusy = [0, 0, 0, 0, 0, 0];
const raf = window.requestAnimationFrame.bind(window);
window.requestAnimationFrame = (cb) => raf((ts) => {
  const t0 = performance.now();
  try { cb(ts); } finally { window.__cgBusy[4] += performance.now() - t0; window.__cgBusy[5]++; }
});
const handler = state.events.onmessage;
state.events.onmessage = (m) => {
  const t0 = performance.now();
  handler(m);
  window.__cgBusy[0] += performance.now() - t0; window.__cgBusy[1]++;
};
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) { window.__cgBusy[2] += e.duration; window.__cgBusy[3]++; }
}).observe({entryTypes: ['longtask']});
state.events.addEventListener('message', (e) => {
  const id = JSON.parse(e.data).alert_id;
  if (!heard.has(id)) { heard.add(id); window.__cgMsgs.push([id, performance.timeOrigin + e.timeStamp]); }
});
return feed.children.length;
"""


def page_clock_offset(wd, tries=25):
    """Page clock minus Python's, in s, from the executeScript round trip
    that was shortest; returns (offset, half that round trip)."""
    best = None
    for _ in range(tries):
        t0 = time.time()
        page = wd.execute(PAGE_CLOCK) / 1000.0
        t1 = time.time()
        if best is None or t1 - t0 < best[1] * 2:
            best = (page - (t0 + t1) / 2, (t1 - t0) / 2)
    return best


class SseRecorder(threading.Thread):
    """An event-stream client that records, per alert_id, the first event
    (its raised_at) and when its bytes arrived here."""

    def __init__(self, http_addr):
        super().__init__(daemon=True)
        host, port = http_addr.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=None)
        self.conn.request("GET", "/api/v1/events", headers={"Accept": "text/event-stream"})
        self.resp = self.conn.getresponse()
        if self.resp.status != 200:
            bl.die(f"GET /api/v1/events answered {self.resp.status}")
        self.first = {}  # alert_id -> (event_id, raised_at s, arrival s)
        self.events = 0
        self.error = None

    def run(self):
        data = []
        arrival = None
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    return
                now = time.time()
                line = line.rstrip(b"\r\n")
                if line.startswith(b"data:"):
                    data.append(line[5:].lstrip())
                    arrival = arrival or now
                elif not line and data:
                    alert = json.loads(b"\n".join(data))
                    self.events += 1
                    if alert["alert_id"] not in self.first:
                        self.first[alert["alert_id"]] = (alert["event_id"], rfc3339_s(alert["raised_at"]),
                                                         arrival)
                    data, arrival = [], None
        except (OSError, ValueError, AttributeError, http.client.HTTPException) as e:
            # AttributeError: http.client's reader after close() from
            # another thread, which is how the stream is stopped.
            self.error = e

    def close(self):
        try:
            self.conn.sock.shutdown(2)
        except OSError:
            pass
        self.conn.close()


def stats_ms(values):
    return {"n": len(values), "p50": bl.percentile(values, 0.5) * 1000,
            "p99": bl.percentile(values, 0.99) * 1000, "max": max(values) * 1000 if values else float("nan")}


def fmt(s):
    return f"p50 {s['p50']:.1f} ms, p99 {s['p99']:.1f} ms, max {s['max']:.1f} ms (n {s['n']})"


# ---------------------------------------------------------------------------
# (a) alert to page


def measure_page(args, serve, out):
    wd = WebDriver(args.chromedriver, args.chromium, os.path.join(out, "chromedriver.log"))
    try:
        wd.navigate(f"http://{serve.http}/")
        deadline = time.monotonic() + 30
        while not wd.execute("const c = document.getElementById('connection');"
                             "return !!c && c.classList.contains('live');"):
            if time.monotonic() > deadline:
                bl.die("the console page did not show its event stream live within 30 s")
            time.sleep(0.2)
        offset0, err0 = page_clock_offset(wd)
        wd.execute(INSTALL_OBSERVER)
        sse = SseRecorder(serve.http)
        sse.start()
        write0, commits0 = serve.metric_sum_count("callguard_store_write_seconds")
        load = [bl.loadavg()]
        t_start = time.time()
        chunk = 0
        reports = []
        rows = 0
        while chunk < args.max_chunks:
            chunk += 1
            reports.append(bl.loadgen(args.callguard, serve, [
                "--calls", args.page_calls, "--connections", 2, "--rate", args.page_rate,
                "--abusive-share", args.page_abusive, "--duration", args.page_chunk_seconds,
                "--ramp-up", 2, "--seed", 100 + chunk], os.path.join(out, f"page-loadgen-{chunk}.txt")))
            load.append(bl.loadavg())
            time.sleep(2)  # let the page catch up with the last alerts
            rows = wd.execute("return window.__cgRows.length;")
            if rows >= args.alerts and len(sse.first) >= args.alerts:
                break
        t_end = time.time()
        page_rows = wd.execute("return window.__cgRows;")
        page_msgs = dict(wd.execute("return window.__cgMsgs;"))
        busy = wd.execute("return window.__cgBusy;")
        offset1, err1 = page_clock_offset(wd)
        write1, commits1 = serve.metric_sum_count("callguard_store_write_seconds")
        sse.close()
        sse.join(5)
    finally:
        wd.quit()
    if rows < args.alerts:
        bl.die(f"only {rows} new alert rows reached the page after {chunk} loadgen runs (want {args.alerts})")
    offset = (offset0 + offset1) / 2
    matched = []
    for alert_id, page_ms in sorted(page_rows):
        if alert_id in sse.first and alert_id in page_msgs:
            _, raised, arrived = sse.first[alert_id]
            matched.append((raised, arrived, page_msgs[alert_id] / 1000.0, page_ms / 1000.0 - offset))
    unmatched = len(page_rows) - len(matched)
    matched = matched[:args.alerts]
    with open(os.path.join(out, "page-latency.csv"), "w") as f:
        # Every time on the system clock (the page's set by its offset).
        f.write("raised_at_s,client_arrival_s,message_event_s,dom_s\n")
        for r, a, m, p in matched:
            f.write(f"{r:.6f},{a:.6f},{m - offset:.6f},{p:.6f}\n")
    dom = [p - r for r, _, _, p in matched]
    wire = [a - r for r, a, _, _ in matched]
    browser = [p - a for _, a, _, p in matched]
    # Both page clocks: no offset needed.
    event_to_dom = [p + offset - m for _, _, m, p in matched]
    span = t_end - t_start
    return {
        "alerts": len(matched), "rows_seen": len(page_rows), "rows_unmatched": unmatched,
        "loadgen_runs": chunk, "seconds": round(span, 1),
        "alert_rate_per_s": round(len(page_rows) / span, 1),
        "clock_offset_ms": [round(offset0 * 1000, 2), round(offset1 * 1000, 2)],
        "clock_uncertainty_ms": round(max(err0, err1) * 1000, 2),
        "raised_to_dom": stats_ms(dom), "raised_to_client": stats_ms(wire), "client_to_dom": stats_ms(browser),
        "message_event_to_dom": stats_ms(event_to_dom),
        "handler_ms_total": round(busy[0]), "handler_calls": busy[1],
        "handler_share_of_run": round(busy[0] / 1000 / span, 3),
        "frame_ms_total": round(busy[4]), "frame_calls": busy[5],
        "page_share_of_run": round((busy[0] + busy[4]) / 1000 / span, 3),
        "long_tasks": busy[3], "long_task_ms_total": round(busy[2]),
        "long_task_share_of_run": round(busy[2] / 1000 / span, 3),
        "commit_write_mean_ms": round((write1 - write0) / max(commits1 - commits0, 1) * 1000, 2),
        "commits": int(commits1 - commits0), "sse_events": sse.events,
        "load": load, "loadgen": [{k: r[k] for k in ("rt_full_p99", "sub_p99", "alerts", "server_cpu_pct")}
                                  for r in reports],
        "loadgen_command": reports[0]["command"],
    }


# ---------------------------------------------------------------------------
# (p) the browser alone: Chromium's own event-stream latency on this machine

PROBE_PAGE = b"""<!doctype html><html><body><script>
window.__m = [];
new EventSource('/events').onmessage = (e) => {
  window.__m.push([Number(e.lastEventId), performance.timeOrigin + performance.now()]);
};
</script></body></html>"""


def probe_browser(args, out, seconds=20, rate=15):
    """A minimal event-stream server here (Python, the console's message
    size, pairs 2 ms apart like an alert and its update, `rate` pairs a
    second) and a page that only stamps each message: what Chromium
    itself adds between the socket and the page, for scale against (a).
    Run with TCP_NODELAY on the server socket and without (Nagle)."""
    results = {}
    for nodelay in (True, False):
        sent = {}
        go, stop = threading.Event(), threading.Event()
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        port = srv.getsockname()[1]

        def serve_one(c):
            req = b""
            while b"\r\n\r\n" not in req:
                chunk = c.recv(4096)
                if not chunk:
                    return
                req += chunk
            if req.split(b" ")[1] != b"/events":
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
                          b"Connection: close\r\n\r\n" % len(PROBE_PAGE) + PROBE_PAGE)
                c.close()
                return
            if nodelay:
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n: hi\n\n")
            go.wait()
            n, pad = 0, "x" * 700
            while not stop.is_set():
                for _ in range(2):
                    n += 1
                    sent[n] = time.time()
                    c.sendall(f"id: {n}\ndata: {pad}\n\n".encode())
                    time.sleep(0.002)
                time.sleep(1 / rate)
            c.close()

        def accept():
            while True:
                try:
                    c, _ = srv.accept()
                except OSError:
                    return
                threading.Thread(target=serve_one, args=(c,), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        wd = WebDriver(args.chromedriver, args.chromium, os.path.join(out, "chromedriver-probe.log"))
        try:
            wd.navigate(f"http://127.0.0.1:{port}/")
            time.sleep(1)
            off0, err0 = page_clock_offset(wd)
            go.set()
            time.sleep(seconds)
            stop.set()
            time.sleep(0.5)
            stamps = wd.execute("return window.__m;")
            off1, err1 = page_clock_offset(wd)
        finally:
            wd.quit()
            srv.close()
        offset = (off0 + off1) / 2
        lat = [ms / 1000.0 - offset - sent[i] for i, ms in stamps if i in sent]
        results["nodelay" if nodelay else "nagle"] = dict(
            stats_ms(lat), clock_uncertainty_ms=round(max(err0, err1) * 1000, 2), load=bl.loadavg())
    return results


# ---------------------------------------------------------------------------
# (b) memory per idle client, (c) ingest with readers


def open_clients(serve, n, open_before=0):
    """Opens n event-stream clients; waits for the gauge to count them."""
    clients = [bl.SseSocket(serve.http) for _ in range(n)]
    want = float(open_before + n)
    value, _ = serve.wait_metric("callguard_console_streams", want)
    if value != want:
        bl.die(f"callguard_console_streams reads {value} with {want:.0f} event streams open")
    return clients


def close_clients(serve, clients):
    for c in clients:
        c.close()
    value, waited = serve.wait_metric("callguard_console_streams", 0.0)
    return value, waited


def measure_memory(args, serve):
    """RSS with 0, then --clients, then 5 x --clients idle clients open (on
    the fresh serve, before any traffic, so that no freed heap hides them),
    and after all close."""
    load0 = bl.loadavg()
    streams0 = serve.metric("callguard_console_streams")
    rss0 = serve.rss_settled_kib()
    steps = []
    clients = []
    for n in (args.clients, 5 * args.clients):
        clients += open_clients(serve, n - len(clients), len(clients))
        time.sleep(1)
        rss = serve.rss_settled_kib()
        steps.append({"clients": n, "rss_kib": rss, "per_client_kib": round((rss - rss0) / n, 1)})
    value, waited = close_clients(serve, clients)
    time.sleep(1)
    rss2 = serve.rss_settled_kib()
    return {"streams_before": streams0, "rss_before_kib": rss0, "steps": steps,
            "streams_after_close": value, "close_seconds": round(waited, 2), "rss_after_close_kib": rss2,
            "load": [load0, bl.loadavg()]}


class Readers(threading.Thread):
    """Reads every open event stream as it comes (one thread, a selector)."""

    def __init__(self, clients):
        super().__init__(daemon=True)
        self.clients = clients
        self.stop = threading.Event()
        self.cpu = 0.0

    def run(self):
        sel = selectors.DefaultSelector()
        for c in self.clients:
            sel.register(c.sock, selectors.EVENT_READ, c)
        t0 = time.thread_time()
        while not self.stop.is_set():
            for key, _ in sel.select(0.2):
                if not key.data.drain():
                    sel.unregister(key.fileobj)
        self.cpu = time.thread_time() - t0
        sel.close()


def measure_readers(args, serve, out):
    traffic = ["--calls", args.load_calls, "--connections", 4, "--rate", args.load_rate,
               "--abusive-share", args.load_abusive, "--duration", args.load_seconds,
               "--ramp-up", min(5, args.load_seconds // 4),
               "--seed", 7]
    order = [0, args.clients, args.clients, 0] * args.rounds
    # Warm-up, not counted: the first run after start is slower.
    bl.loadgen(args.callguard, serve, traffic, os.path.join(out, "ingest-warm-up.txt"))
    runs = []
    for i, n in enumerate(order):
        clients, readers = [], None
        if n:
            clients = open_clients(serve, n)
            readers = Readers(clients)
            readers.start()
        report = bl.loadgen(args.callguard, serve, traffic, os.path.join(out, f"ingest-{i + 1}-{n}clients.txt"))
        report["clients"] = n
        if readers:
            readers.stop.set()
            readers.join()
            report["events_per_client"] = round(statistics.mean(c.events for c in clients), 1)
            report["mb_read"] = round(sum(c.bytes for c in clients) / 1e6, 1)
            report["reader_cpu_s"] = round(readers.cpu, 2)
            close_clients(serve, clients)
        runs.append(report)
        print(f"(c) {n:>4} readers: round trip p99 at full load {report['rt_full_p99']} ms "
              f"(p50 {report['rt_full_p50']}), ingest->Subscribe p99 {report['sub_p99']} ms, server CPU "
              f"{report.get('server_cpu_pct')} %, {report['alerts']} alerts, events per reader "
              f"{report.get('events_per_client', '-')}, load {report['load_before']} -> {report['load_after']}",
              flush=True)
        time.sleep(2)
    base = [r["rt_full_p99"] for r in runs if r["clients"] == 0]
    loaded = [r["rt_full_p99"] for r in runs if r["clients"]]
    # Medians: on a shared machine one run in a few catches a neighbour's
    # burst and reads 10x the others.
    return {"traffic": " ".join(str(a) for a in traffic), "runs": runs,
            "rt_full_p99_median_0": round(statistics.median(base), 2),
            "rt_full_p99_median_n": round(statistics.median(loaded), 2),
            "ratio": round(statistics.median(loaded) / statistics.median(base), 2)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--callguard", default=os.path.join(bl.ROOT, "target/release/callguard"), help="the callguard binary")
    p.add_argument("--out", default=os.path.join(bl.ROOT, "target/bench-console"), help="reports go here")
    p.add_argument("--grpc-port", type=int, default=0, help="serve's gRPC port (default: a free one)")
    p.add_argument("--http-port", type=int, default=0, help="serve's HTTP port (default: a free one)")
    p.add_argument("--chromedriver", default="chromedriver")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--skip-page", action="store_true", help="only (b) and (c): no browser needed")
    p.add_argument("--parts", default="abc", help="which of (a), (b), (c) to run, e.g. 'a' or 'bc'; "
                   "'p' adds the browser-alone probe (see probe_browser)")
    p.add_argument("--alerts", type=int, default=1000, help="(a): new alerts to time on the page")
    p.add_argument("--page-calls", type=int, default=200)
    p.add_argument("--page-rate", type=float, default=2)
    p.add_argument("--page-abusive", type=float, default=0.3)
    p.add_argument("--page-chunk-seconds", type=int, default=20)
    p.add_argument("--max-chunks", type=int, default=6)
    p.add_argument("--clients", type=int, default=200, help="(b), (c): event-stream clients")
    p.add_argument("--load-calls", type=int, default=1000)
    p.add_argument("--load-rate", type=float, default=3)
    p.add_argument("--load-abusive", type=float, default=0.02)
    p.add_argument("--load-seconds", type=int, default=20)
    p.add_argument("--rounds", type=int, default=2, help="(c): repeats of the 0, N, N, 0 order")
    args = p.parse_args()
    bl.exit_on_sigterm()

    args.callguard = bl.check_binary(args.callguard)
    if args.skip_page:
        args.parts = args.parts.replace("a", "")
    if "a" in args.parts or "p" in args.parts:
        found = shutil.which(args.chromedriver)
        if not found:
            bl.die(f"{args.chromedriver} not found: install Debian's chromium and chromium-driver "
                   "(apt-get install chromium chromium-driver), pass --chromedriver PATH, or --skip-page")
        args.chromedriver = found
        if not shutil.which(args.chromium):
            bl.die(f"{args.chromium} not found: install Debian's chromium, pass --chromium PATH, or --skip-page")
    os.makedirs(args.out, exist_ok=True)
    version = subprocess.run([args.callguard, "--version"], capture_output=True, text=True).stdout.strip()
    summary = {"date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), "machine": bl.machine(),
               "callguard": version, "load_before": bl.loadavg()}
    print(json.dumps(summary))
    serve = bl.Serve(args.callguard, args.out, "console", args.grpc_port, args.http_port)
    try:
        if "b" in args.parts:
            b = summary["memory"] = measure_memory(args, serve)
            print(f"(b) idle event-stream clients: RSS {b['rss_before_kib']} KiB with none, "
                  + ", ".join(f"{s['rss_kib']} KiB with {s['clients']} ({s['per_client_kib']} KiB per client)"
                              for s in b["steps"])
                  + f"; all closed: streams {b['streams_after_close']} after {b['close_seconds']} s, "
                  f"RSS {b['rss_after_close_kib']} KiB", flush=True)
        if "a" in args.parts:
            a = summary["page"] = measure_page(args, serve, args.out)
            print(f"(a) raised_at -> new row in the DOM: {fmt(a['raised_to_dom'])}; "
                  f"to the event-stream client {fmt(a['raised_to_client'])}; client -> DOM "
                  f"{fmt(a['client_to_dom'])}, of which message event -> DOM {fmt(a['message_event_to_dom'])}; "
                  f"{a['alert_rate_per_s']} alerts/s; the page's message handler {a['handler_share_of_run']:.0%} "
                  f"of the time ({a['handler_calls']} calls), with its frame renders ({a['frame_calls']}) "
                  f"{a['page_share_of_run']:.0%}, long tasks {a['long_task_share_of_run']:.0%} "
                  f"({a['long_tasks']}); commit write mean "
                  f"{a['commit_write_mean_ms']} ms; load {a['load']}", flush=True)
        if "p" in args.parts:
            pr = summary["browser_alone"] = probe_browser(args, args.out)
            print("(p) Chromium alone, a Python event-stream server to the page: "
                  + "; ".join(f"{k}: {fmt(v)} (clock ±{v['clock_uncertainty_ms']} ms)" for k, v in pr.items()),
                  flush=True)
        if "c" in args.parts:
            c = summary["ingest"] = measure_readers(args, serve, args.out)
            print(f"(c) round-trip p99 at full load, median of the runs: {c['rt_full_p99_median_0']} ms with 0, "
                  f"{c['rt_full_p99_median_n']} ms with {args.clients} readers: ratio {c['ratio']}")
    finally:
        serve.stop()
    bl.write_summary(args.out, summary)


if __name__ == "__main__":
    main()
