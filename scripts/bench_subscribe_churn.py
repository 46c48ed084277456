#!/usr/bin/env python3
"""Subscribe-then-cancel churn (issue #18, item 2 and finding F1;
BENCHMARKS.md, "Subscription churn"): what a dashboard's or a browser's
reconnect loop does to the server.

    python3 scripts/bench_subscribe_churn.py [--callguard target/release/callguard] [--out DIR]
    python3 scripts/bench_subscribe_churn.py --server 127.0.0.1:50051 --http 127.0.0.1:9090 --server-pid PID

Starts a `serve` of its own (temporary data dir, free or given ports),
or uses a running one (--server, --http, --server-pid). Then, on the same
server:

0. A check that a cycle really subscribes: --hold Subscribes held open
   on one connection must show in `callguard_subscribers`; they are
   then cancelled.
1. `callguard loadgen` traffic (fixed seed), once to warm up, then
   --load-runs times: the median round-trip p99 at full load before.
2. For each of --cycles (default 5,000 then 20,000, cumulative), that many
   `callguard.v1.Alerts/Subscribe` calls, each waited for (the response
   headers: the server has registered it) and then cancelled: RST_STREAM
   (CANCEL) on a shared HTTP/2 connection, and every --close-every-th one
   by closing its own TCP connection instead, as `hostile::f1_` does. Each
   asks for the alerts of one call (--call) that the load never has, as
   a supervisor's call view would: no alert is ever due to them (the case
   that leaked for good before the fix; a subscription to all alerts
   noticed its client gone at the next alert).
   `callguard_subscribers` and server RSS before, right after, and after
   --settle seconds (and how long the gauge took to come back); then the
   same loadgen traffic again: the median round-trip p99 after.
3. The same for the console's event stream (GET /api/v1/events, open
   until the headers are in, then closed): --sse-cycles, with
   `callguard_console_streams`.

HTTP/2 and gRPC are spoken by hand (a few frames, HPACK literals without
Huffman), so that a cycle costs the server what it costs, not what a
client library costs: 20,000 cycles take seconds. Python standard
library only.
"""

import argparse
import json
import os
import socket
import struct
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
CANCEL = 0x8
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hpack_string(value):
    data = value.encode()
    if len(data) >= 127:
        raise ValueError("header value too long for this encoder")
    return bytes([len(data)]) + data


def hpack_literal(name_index, value):
    """Literal without indexing, name from the static table (4-bit prefix)."""
    if name_index < 15:
        head = bytes([name_index])
    else:
        head = bytes([15, name_index - 15])
    return head + hpack_string(value)


def hpack_literal_new(name, value):
    return b"\x00" + hpack_string(name) + hpack_string(value)


class GoAway(Exception):
    pass


class H2:
    """One client HTTP/2 connection to a gRPC server, just enough for
    Subscribe-then-cancel."""

    def __init__(self, addr, token=None, call=""):
        host, port = addr.rsplit(":", 1)
        # SubscribeRequest { call_ids (2): [call] }, as a gRPC message.
        body = b"\x12" + hpack_string(call) if call else b""
        self.request = b"\x00" + struct.pack(">I", len(body)) + body
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.next_stream = 1
        # :method POST (static 3), :scheme http (static 6), :path (4),
        # :authority (1), content-type (31), te, authorization.
        self.headers_tail = (hpack_literal(1, addr) + hpack_literal(31, "application/grpc")
                             + hpack_literal_new("te", "trailers"))
        if token:
            self.headers_tail += hpack_literal_new("authorization", f"Bearer {token}")
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0)
                          + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", (1 << 30))))

    def _read_frame(self):
        while True:
            if len(self.buf) >= 9:
                length = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + length:
                    kind, flags = self.buf[3], self.buf[4]
                    stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
                    payload = self.buf[9:9 + length]
                    self.buf = self.buf[9 + length:]
                    return kind, flags, stream, payload
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buf += chunk

    def subscribe(self, path="/callguard.v1.Alerts/Subscribe"):
        """Opens a Subscribe (live alerts, of one call when one is set) and
        waits for its response headers; returns the stream id."""
        stream = self.next_stream
        self.next_stream += 2
        block = b"\x83\x86" + hpack_literal(4, path) + self.headers_tail
        self.sock.sendall(frame(HEADERS, END_HEADERS, stream, block)
                          + frame(DATA, END_STREAM, stream, self.request))
        while True:
            kind, flags, sid, payload = self._read_frame()
            if kind == SETTINGS and not flags & ACK:
                self.sock.sendall(frame(SETTINGS, ACK, 0))
            elif kind == PING and not flags & ACK:
                self.sock.sendall(frame(PING, ACK, 0, payload))
            elif kind == GOAWAY:
                raise GoAway(f"GOAWAY, error code {int.from_bytes(payload[4:8], 'big')}")
            elif kind == DATA and payload:
                self.sock.sendall(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", len(payload))))
            elif kind == RST_STREAM and sid == stream:
                raise ConnectionError(f"the server reset the stream (code {int.from_bytes(payload, 'big')})")
            elif kind == HEADERS and sid == stream:
                if flags & END_STREAM:
                    # Trailers only: the call was refused (grpc-status != 0).
                    raise ConnectionError("Subscribe refused (a trailers-only answer: check the token)")
                return stream

    def cancel(self, stream):
        self.sock.sendall(frame(RST_STREAM, 0, stream, struct.pack(">I", CANCEL)))

    def close(self):
        self.sock.close()


def churn(grpc, cycles, close_every, token, call):
    """Subscribe, then cancel, `cycles` times; returns (seconds, reconnects
    after a GOAWAY)."""
    shared = H2(grpc, token, call)
    goaways = 0
    t0 = time.monotonic()
    for i in range(cycles):
        if close_every and i % close_every == 0:
            own = H2(grpc, token, call)
            own.subscribe()
            own.close()
            continue
        try:
            shared.cancel(shared.subscribe())
        except GoAway:
            goaways += 1
            shared.close()
            shared = H2(grpc, token, call)
            shared.cancel(shared.subscribe())
    shared.close()
    return time.monotonic() - t0, goaways


def hold(serve, grpc, n, token):
    """Checks that a cycle really subscribes: n Subscribes held open on one
    connection must show in the gauge, and go when cancelled."""
    base = serve.metric("callguard_subscribers") or 0.0
    conn = H2(grpc, token)
    streams = [conn.subscribe() for _ in range(n)]
    held, _ = serve.wait_metric("callguard_subscribers", base + n, timeout=10)
    rss = serve.rss_settled_kib()
    for s in streams:
        conn.cancel(s)
    gone, seconds = serve.wait_metric("callguard_subscribers", base, timeout=10)
    conn.close()
    if held != base + n:
        bl.die(f"{n} Subscribes held: callguard_subscribers read {held}, {base} before")
    return rss, gone, seconds


def sse_churn(http, cycles, token):
    t0 = time.monotonic()
    for _ in range(cycles):
        bl.SseSocket(http, token).close()
    return time.monotonic() - t0


class Running:
    """A serve started elsewhere: its addresses and pid."""

    def __init__(self, grpc, http, pid):
        self.grpc, self.http, self.pid = grpc, http, pid
        self.proc = None

    get = bl.Serve.get
    metric = bl.Serve.metric
    wait_metric = bl.Serve.wait_metric
    rss_kib = bl.Serve.rss_kib
    rss_settled_kib = bl.Serve.rss_settled_kib
    cpu_s = bl.Serve.cpu_s

    def stop(self):
        pass


def loadgen_series(args, serve, load, name):
    """--load-runs loadgen runs of the same traffic; their medians (one
    run in a few catches a neighbour's burst on a shared machine)."""
    runs = [bl.loadgen(args.callguard, serve, load, os.path.join(args.out, f"loadgen-{name}-{i + 1}.txt"))
            for i in range(args.load_runs)]
    med = lambda key: round(statistics.median(r[key] for r in runs), 2)  # noqa: E731
    return {"rt_full_p99": med("rt_full_p99"), "sub_p99": med("sub_p99"),
            "server_cpu_pct": med("server_cpu_pct"), "runs": runs,
            "rt_full_p99_runs": [r["rt_full_p99"] for r in runs]}


def state(serve, gauge):
    return {"gauge": serve.metric(gauge), "rss_kib": serve.rss_settled_kib(), "load": bl.loadavg()}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--callguard", default=os.path.join(bl.ROOT, "target/release/callguard"), help="the callguard binary (loadgen, serve)")
    p.add_argument("--serve-binary", help="another build to run serve from (e.g. one before a fix); "
                   "loadgen stays --callguard's")
    p.add_argument("--out", default=os.path.join(bl.ROOT, "target/bench-churn"))
    p.add_argument("--server", help="a running serve's gRPC address (else one is started)")
    p.add_argument("--http", help="the running serve's HTTP address (with --server)")
    p.add_argument("--server-pid", type=int, help="the running serve's pid (with --server)")
    p.add_argument("--grpc-port", type=int, default=0)
    p.add_argument("--http-port", type=int, default=0)
    p.add_argument("--token-file", help="a supervisor token, for a serve with [[tokens]]")
    p.add_argument("--cycles", default="5000,20000", help="comma-separated; run one after the other")
    p.add_argument("--close-every", type=int, default=10, help="every Nth cycle closes its own connection (0: never)")
    p.add_argument("--sse-cycles", type=int, default=5000, help="console event-stream cycles (0: none)")
    p.add_argument("--call", default="churn-no-such-call",
                   help="the cycles subscribe to this call's alerts, which the load never raises, as a call view "
                   "would: before the fix nothing ever ended them ('' for all alerts)")
    p.add_argument("--hold", type=int, default=100, help="check first: Subscribes held open, then cancelled")
    p.add_argument("--settle", type=float, default=5)
    p.add_argument("--load-runs", type=int, default=3, help="loadgen runs before and after each churn (medians)")
    p.add_argument("--load", default="--calls 1000 --connections 4 --rate 3 --duration 15 --ramp-up 3 --seed 11",
                   help="loadgen traffic before and after each churn")
    args = p.parse_args()
    bl.exit_on_sigterm()

    args.callguard = bl.check_binary(args.callguard)
    token = open(args.token_file).read().strip() if args.token_file else None
    os.makedirs(args.out, exist_ok=True)
    version = subprocess.run([args.callguard, "--version"], capture_output=True, text=True).stdout.strip()
    summary = {"date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), "machine": bl.machine(),
               "callguard": version, "load_before": bl.loadavg(), "load": args.load, "call": args.call,
               "steps": []}
    print(json.dumps(summary), flush=True)
    if args.server:
        if not (args.http and args.server_pid):
            bl.die("--server needs --http and --server-pid (for /metrics and RSS)")
        serve = Running(args.server, args.http, args.server_pid)
    else:
        serve_bin = bl.check_binary(args.serve_binary) if args.serve_binary else args.callguard
        summary["serve_binary"] = serve_bin
        serve = bl.Serve(serve_bin, args.out, "churn", args.grpc_port, args.http_port)
    load = args.load.split()
    try:
        rss0 = serve.rss_settled_kib()
        rss_held, gone, gone_s = hold(serve, serve.grpc, args.hold, token)
        summary["hold"] = {"subscribes": args.hold, "rss_before_kib": rss0, "rss_held_kib": rss_held,
                           "gauge_after_cancel": gone, "seconds": round(gone_s, 2)}
        print(f"check: {args.hold} Subscribes held on one connection counted by callguard_subscribers, "
              f"RSS {rss0} -> {rss_held} KiB; {gone_s:.2f} s after RST_STREAM the gauge reads {gone}", flush=True)
        # Warm-up, not counted: the first run after start is slower.
        bl.loadgen(args.callguard, serve, load, os.path.join(args.out, "loadgen-warm-up.txt"))
        before = loadgen_series(args, serve, load, "before")
        summary["loadgen_before"] = before
        print(f"loadgen before: round trip p99 at full load {before['rt_full_p99']} ms "
              f"(median of {before['rt_full_p99_runs']}), "
              f"ingest->Subscribe p99 {before['sub_p99']} ms, server CPU {before.get('server_cpu_pct')} %", flush=True)
        done = 0
        for n in [int(c) for c in args.cycles.split(",") if c]:
            s0 = state(serve, "callguard_subscribers")
            cpu0 = serve.cpu_s()
            seconds, goaways = churn(serve.grpc, n, args.close_every, token, args.call)
            done += n
            s1 = {"gauge": serve.metric("callguard_subscribers")}
            cpu = serve.cpu_s() - cpu0
            back, back_s = serve.wait_metric("callguard_subscribers", s0["gauge"], timeout=15)
            s1.update(rss_kib=serve.rss_settled_kib(), load=bl.loadavg())
            time.sleep(args.settle)
            s2 = state(serve, "callguard_subscribers")
            after = loadgen_series(args, serve, load, f"after-{done}")
            step = {"kind": "Subscribe", "cycles": n, "cumulative": done, "seconds": round(seconds, 2),
                    "goaways": goaways, "server_cpu_s": round(cpu, 2),
                    "back_to_baseline_s": round(back_s, 2) if back == s0["gauge"] else None, "before": s0, "after": s1, "settled": s2,
                    "loadgen_after": after}
            summary["steps"].append(step)
            print(f"{n} Subscribe cycles ({done} in all) in {seconds:.1f} s ({goaways} GOAWAY), server CPU {cpu:.2f} s: "
                  f"callguard_subscribers {s0['gauge']} -> {s1['gauge']} (back to {back} in {back_s:.2f} s) -> "
                  f"{s2['gauge']} after {args.settle} s more; "
                  f"RSS {s0['rss_kib']} -> {s1['rss_kib']} -> {s2['rss_kib']} KiB; load {s0['load']} -> {s2['load']}; "
                  f"then round trip p99 at full load {after['rt_full_p99']} ms (median of {after['rt_full_p99_runs']}) "
                  f"(before {before['rt_full_p99']}), ingest->Subscribe p99 {after['sub_p99']} ms, "
                  f"server CPU {after.get('server_cpu_pct')} %", flush=True)
        if args.sse_cycles and serve.metric("callguard_console_streams") is None:
            print("no callguard_console_streams on /metrics (a build without the console): "
                  "event-stream cycles skipped", flush=True)
        elif args.sse_cycles:
            s0 = state(serve, "callguard_console_streams")
            seconds = sse_churn(serve.http, args.sse_cycles, token)
            s1 = {"gauge": serve.metric("callguard_console_streams")}
            back, back_s = serve.wait_metric("callguard_console_streams", s0["gauge"], timeout=15)
            s1.update(rss_kib=serve.rss_settled_kib(), load=bl.loadavg())
            time.sleep(args.settle)
            s2 = state(serve, "callguard_console_streams")
            step = {"kind": "event stream", "cycles": args.sse_cycles, "seconds": round(seconds, 2),
                    "back_to_baseline_s": round(back_s, 2) if back == s0["gauge"] else None,
                    "before": s0, "after": s1, "settled": s2}
            summary["steps"].append(step)
            print(f"{args.sse_cycles} event-stream cycles in {seconds:.1f} s: callguard_console_streams "
                  f"{s0['gauge']} -> {s1['gauge']} (back to {back} in {back_s:.2f} s) -> {s2['gauge']}; RSS {s0['rss_kib']} -> {s1['rss_kib']} -> "
                  f"{s2['rss_kib']} KiB", flush=True)
    finally:
        serve.stop()
    bl.write_summary(args.out, summary)


if __name__ == "__main__":
    main()
