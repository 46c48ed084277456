#!/usr/bin/env python3
"""Does a dead webhook slow ingest? (issue #14, item 4; BENCHMARKS.md,
"Webhooks: a dead endpoint and ingest"), in one run against a `serve` of
its own:

    python3 scripts/bench_webhooks.py [--callguard target/release/callguard] [--out DIR]

The same `callguard loadgen` traffic as bench_console.py's (c) (same
seed), after a warm-up run, under three conditions on the same server,
switched by rewriting its config and sending SIGHUP (the webhook reload):

  none    no webhook;
  closed  one webhook to a port on 127.0.0.1 where nothing listens
          (every attempt: connection refused);
  silent  one webhook to a port where this script accepts the TCP
          connection, reads the request and never answers (every attempt
          runs into the webhook's timeout).

The dead webhook takes every alert (no filter) and retries as hard as the
config allows (timeout_ms 100, retry_min_ms 10, retry_max_ms 100, the
smallest accepted: --timeout-ms and --retry-max-ms change them), so the
figure is the worst case, not the default's (10 s timeout, backoff to 5
minutes). Order none, closed, silent, silent, closed, none, repeated
--rounds times (2); each run's round-trip p99 at full load (send to ack),
the median per condition and its ratio to `none`; each run also records
the dead webhook's failed attempts and its lag (to show it was failing
all along). Bounded: about 6 minutes on 2 cores. Prints a summary and
writes it, with every loadgen report and the serve log, to --out.
"""

import argparse
import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

SECRET = "bench-webhook-secret-0123456789"


class BlackHole(threading.Thread):
    """Accepts connections on 127.0.0.1 and reads whatever comes, never
    answering; closes a connection once its peer does."""

    def __init__(self):
        super().__init__(daemon=True)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.listener.setblocking(False)
        self.addr = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.accepted = 0

    def run(self):
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ, None)
        while not self.stop.is_set():
            for key, _ in sel.select(0.2):
                if key.data is None:
                    try:
                        conn, _ = self.listener.accept()
                    except BlockingIOError:
                        continue
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ, "conn")
                    self.accepted += 1
                    continue
                try:
                    data = key.fileobj.recv(1 << 16)
                except (BlockingIOError, ConnectionError):
                    data = b"?"
                if not data:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()


def webhook_toml(name, addr, args):
    return (f"[[webhooks]]\nname = {name!r}\nurl = \"http://{addr}/hook\"\nsecret = {SECRET!r}\n"
            f"timeout_ms = {args.timeout_ms}\nretry_min_ms = 10\nretry_max_ms = {args.retry_max_ms}\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--callguard", default=os.path.join(bl.ROOT, "target/release/callguard"), help="the callguard binary")
    p.add_argument("--out", default=os.path.join(bl.ROOT, "target/bench-webhooks"), help="reports go here")
    p.add_argument("--load-calls", type=int, default=1000)
    p.add_argument("--load-rate", type=float, default=3)
    p.add_argument("--load-abusive", type=float, default=0.02)
    p.add_argument("--load-seconds", type=int, default=20)
    p.add_argument("--rounds", type=int, default=2, help="repeats of the none, closed, silent, silent, closed, none order")
    p.add_argument("--timeout-ms", type=int, default=100, help="the dead webhook's timeout_ms (at least 100)")
    p.add_argument("--retry-max-ms", type=int, default=100, help="the dead webhook's retry_max_ms (at least 10)")
    args = p.parse_args()
    bl.exit_on_sigterm()
    args.callguard = bl.check_binary(args.callguard)
    os.makedirs(args.out, exist_ok=True)
    version = subprocess.run([args.callguard, "--version"], capture_output=True, text=True).stdout.strip()
    summary = {"date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), "machine": bl.machine(),
               "callguard": version, "load_before": bl.loadavg(),
               "dead_webhook": {"timeout_ms": args.timeout_ms, "retry_min_ms": 10,
                                "retry_max_ms": args.retry_max_ms}}
    print(json.dumps(summary), flush=True)

    hole = BlackHole()
    hole.start()
    closed = f"127.0.0.1:{bl.free_port()}"  # bound, then closed: nothing listens
    conditions = {"none": "", "closed": webhook_toml("dead-closed", closed, args),
                  "silent": webhook_toml("dead-silent", hole.addr, args)}
    label = {"closed": 'webhook="dead-closed"', "silent": 'webhook="dead-silent"'}
    traffic = ["--calls", args.load_calls, "--connections", 4, "--rate", args.load_rate,
               "--abusive-share", args.load_abusive, "--duration", args.load_seconds,
               "--ramp-up", min(5, args.load_seconds // 4), "--seed", 7]
    order = ["none", "closed", "silent", "silent", "closed", "none"] * args.rounds
    serve = bl.Serve(args.callguard, args.out, "webhooks")
    runs = []
    try:
        bl.loadgen(args.callguard, serve, traffic, os.path.join(args.out, "ingest-warm-up.txt"))
        current = "none"
        for i, condition in enumerate(order):
            if condition != current:
                serve.reload(conditions[condition])
                current = condition
                time.sleep(1)  # the dead webhook is failing before the traffic starts
            failures = lambda: serve.metric_labelled("callguard_webhook_failures_total", label[condition])  # noqa: E731
            failed_before = failures() if condition != "none" else 0
            accepted_before = hole.accepted
            report = bl.loadgen(args.callguard, serve, traffic,
                                os.path.join(args.out, f"ingest-{i + 1}-{condition}.txt"))
            report["condition"] = condition
            if condition != "none":
                report["dead_attempts_failed"] = int(failures() - failed_before)
                report["dead_lag_events"] = serve.metric_labelled("callguard_webhook_lag_events", label[condition])
                report["black_hole_connections"] = hole.accepted - accepted_before
            runs.append(report)
            print(f"{condition:>6}: round trip p99 at full load {report['rt_full_p99']} ms "
                  f"(p50 {report['rt_full_p50']}), server CPU {report.get('server_cpu_pct')} %, "
                  f"{report['alerts']} alerts, dead webhook's failed attempts "
                  f"{report.get('dead_attempts_failed', '-')} (lag {report.get('dead_lag_events', '-')} events), "
                  f"load {report['load_before']} -> {report['load_after']}", flush=True)
            time.sleep(2)
    finally:
        serve.stop()
        hole.stop.set()
        hole.join()
    medians = {c: round(statistics.median(r["rt_full_p99"] for r in runs if r["condition"] == c), 3)
               for c in conditions}
    summary.update(traffic=" ".join(str(a) for a in traffic), runs=runs, rt_full_p99_median=medians,
                   ratio={c: round(medians[c] / medians["none"], 2) for c in ("closed", "silent")})
    print(f"round-trip p99 at full load, median of the runs: none {medians['none']} ms, "
          f"closed port {medians['closed']} ms (x{summary['ratio']['closed']}), "
          f"silent endpoint {medians['silent']} ms (x{summary['ratio']['silent']})", flush=True)
    bl.write_summary(args.out, summary)


if __name__ == "__main__":
    main()
