#!/usr/bin/env python3
"""Start-up of callguard's commands, wall time and peak RSS (issue #16).

Runs each command --runs times (default 20) with every binary given, in
rotation (run 1 of each binary, then run 2 of each, ...), so that a noisy
moment on a shared machine falls on all of them alike, and prints the
median wall time and the median peak RSS of each, with the ratio of each
binary to the first one (the baseline).

    python3 scripts/bench_startup.py --callguard target/release/callguard \
        --other /tmp/callguard-before --runs 20

The baseline is --other when given (the build before a change), else
--callguard. Commands: `scan` of one line (ja, en, no language),
`lexicon check lexicons`, `replay` of a one-call file, and `serve` from
its start until /readyz answers 200 (polled every 2 ms; its RSS is read
from /proc at that moment). Wall time by time.perf_counter around the
process; RSS by wait4's ru_maxrss. Python standard library only.

The engine cache (src/engine/cache.rs) is a folder of this run's own
(CALLGUARD_CACHE_DIR), never the user's: by default warmed by one untimed
run of each command and binary first (a start with the cache filled);
with --cold every timed run gets an empty one (the first start of a new
binary or lexicon set, which compiles and writes the cache).
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shutil  # noqa: E402

from benchlib import ROOT, check_binary, free_port, loadavg, machine  # noqa: E402

ONE_CALL = (
    '{"type":"start","call_id":"c1","language":"ja"}\n'
    '{"type":"fragment","call_id":"c1","seq":1,"speaker":"customer",'
    '"text":"お前ころすぞ","is_final":true,"utterance_id":"u1",'
    '"start_ms":0,"end_ms":1000}\n'
    '{"type":"end","call_id":"c1","end_ms":2000}\n'
)


def run_command(argv, stdin):
    """(wall seconds, peak RSS in KB, CPU seconds) of one run; fails on a
    non-zero exit status other than 1 (`lexicon check` and `scan` may exit
    1 for findings)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=ROOT)
    proc.stdin.write(stdin.encode())
    proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        sys.exit(f"error: {' '.join(argv)} exited with {proc.returncode}")
    return wall, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def vm_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """User + system CPU time of a running process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_serve(binary):
    """(seconds from spawn to the first 200 on /readyz, peak RSS in KB and
    CPU seconds then)."""
    with tempfile.TemporaryDirectory(prefix="callguard-startup-") as work:
        http = f"127.0.0.1:{free_port()}"
        argv = [binary, "serve", "--data-dir", os.path.join(work, "data"),
                "--listen", f"127.0.0.1:{free_port()}", "--http", http]
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                if proc.poll() is not None:
                    sys.exit(f"error: serve exited with {proc.returncode} at start")
                try:
                    with urllib.request.urlopen(f"http://{http}/readyz", timeout=1) as r:
                        if r.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                if time.perf_counter() - started > 30:
                    sys.exit("error: serve not ready within 30 s")
                time.sleep(0.002)
            wall = time.perf_counter() - started
            rss = vm_kb(proc.pid, "VmHWM")
            cpu = cpu_seconds(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return wall, rss, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callguard", default=os.path.join(ROOT, "target/release/callguard"))
    parser.add_argument("--other", help="a second build (the baseline) run in the same rotation")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cold", action="store_true",
                        help="an empty engine cache for every timed run")
    args = parser.parse_args()
    binaries = [check_binary(args.callguard)]
    if args.other:
        binaries.insert(0, check_binary(args.other))
    with tempfile.TemporaryDirectory(prefix="callguard-startup-") as work:
        one_call = os.path.join(work, "one_call.jsonl")
        with open(one_call, "w") as f:
            f.write(ONE_CALL)
        os.environ["CALLGUARD_CACHE_DIR"] = os.path.join(work, "cache")
        measure(binaries, one_call, args.runs, args.cold)


def fresh_cache():
    """Empties this run's engine cache folder."""
    shutil.rmtree(os.environ["CALLGUARD_CACHE_DIR"], ignore_errors=True)


def measure(binaries, one_call, runs, cold):
    commands = [
        ("echo 'お前ころすぞ' | callguard scan --language ja",
         lambda b: run_command([b, "scan", "--language", "ja"], "お前ころすぞ\n")),
        ("echo 'you idiot' | callguard scan --language en",
         lambda b: run_command([b, "scan", "--language", "en"], "you idiot\n")),
        ("echo 'you idiot' | callguard scan (no language)",
         lambda b: run_command([b, "scan"], "you idiot\n")),
        ("callguard lexicon check lexicons",
         lambda b: run_command([b, "lexicon", "check", "lexicons"], "")),
        ("callguard replay ONE_CALL.jsonl (ja)",
         lambda b: run_command([b, "replay", one_call], "")),
        ("callguard serve until /readyz is 200", run_serve),
    ]
    print(f"# {machine()}; load average before {loadavg()}")
    print(f"# binaries: {', '.join(binaries)}; {runs} runs each, in rotation; engine cache "
          + ("empty at every run (cold)" if cold else "filled by an untimed run first (warm)"))
    results = {}
    for name, run in commands:
        samples = {b: [] for b in binaries}
        if not cold:
            for b in binaries:
                run(b)
        for _ in range(runs):
            for b in binaries:
                if cold:
                    fresh_cache()
                samples[b].append(run(b))
        results[name] = samples
    head = " | ".join(f"build {k}: wall, CPU, RSS" for k in range(len(binaries)))
    print(f"| command | {head} |" + (" ratio (wall) |" if len(binaries) > 1 else ""))
    print("|---|" + "---|" * len(binaries) + ("---|" if len(binaries) > 1 else ""))
    for name, samples in results.items():
        cells = []
        walls = []
        for b in binaries:
            wall = statistics.median(s[0] for s in samples[b]) * 1000
            rss = statistics.median(s[1] for s in samples[b]) / 1024
            cpu = statistics.median(s[2] for s in samples[b]) * 1000
            walls.append(wall)
            cells.append(f"{wall:.0f} ms, {cpu:.0f} ms, {rss:.0f} MB")
        ratio = f" {walls[-1] / walls[0]:.2f} |" if len(binaries) > 1 else ""
        shown = name.replace("|", "\\|")
        print(f"| `{shown}` | " + " | ".join(cells) + " |" + ratio)
    print(f"# load average after {loadavg()}")
    for k, b in enumerate(binaries):
        print(f"# build {k}: {b}")


if __name__ == "__main__":
    main()
