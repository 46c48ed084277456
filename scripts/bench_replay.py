#!/usr/bin/env python3
"""Replay throughput: `callguard replay` against a plain Python script on
the same JSON Lines files, in the same run (BENCHMARKS.md, "Replay").

    python3 scripts/bench_replay.py                      # generate, then measure
    python3 scripts/bench_replay.py --calls 20000 --runs 3 --callguard target/release/callguard

1. Generates a deterministic set of recorded calls (DESIGN section 2: a
   `start`, interim and final fragments of each utterance, an `end`), about
   60% Japanese and 40% English, about 1% of utterances abusive, into
   `--dir`/calls (regenerated only when the parameters change).
2. Runs, alternately, `--runs` times each:
   - the Python baseline: `json.loads` of every line and a test of a few
     substrings in the lower-cased text (no normalisation, no automaton,
     no call state);
   - `callguard replay DIR --output jsonl > FILE`;
   - `callguard replay EMPTY --output jsonl`: the start-up alone (lexicon
     parse and automaton build), for scale: in a real run the automata are
     built while the files are read.
3. Prints fragments/s (all fragment events, interim and final) for each,
   by wall time and by CPU time (user + system, which moves less when
   other processes share the cores), the ratio, and a digest of
   callguard's output: one digest for all runs (and for `--other`, another
   build run in the same rotation) means byte-identical alerts.

The generator is here, not in the crate: the crate's own traffic
(`loadgen`) is paced in real time and sent over gRPC.

With `--corpus ../shared/corpus` it measures real public dialogues
instead (issue #16): every SGD (en) and JMultiWOZ (ja) dialogue as one
call (user turns as the customer's final fragments, system turns as the
agent's), written to one file (4,758 calls, 65,470 fragments) and to one
ten times as large (copies on later days under other call ids: 47,580
calls, 654,700 fragments). For each file, alternating, `--runs` times:
the naive Python replay (the baseline above) and `callguard replay FILE`,
with wall time, CPU time and the peak RSS of each process.

    python3 scripts/bench_replay.py --corpus ../shared/corpus --runs 3
    python3 scripts/bench_replay.py --corpus ../shared/corpus --runs 3 --other BEFORE_BUILD

`--other` times another build in the same rotation and prints its output
digest beside callguard's (the same digest: byte-identical output).
"""

import argparse
import glob
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time

# ---------------------------------------------------------------------------
# Traffic


class Rng:
    """SplitMix64, so the files are the same on every machine."""

    def __init__(self, seed):
        self.s = seed & 0xFFFFFFFFFFFFFFFF

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        return z ^ (z >> 31)

    def below(self, n):
        return self.next() % n

    def chance(self, p):
        return (self.next() >> 11) / float(1 << 53) < p

    def pick(self, items):
        return items[self.below(len(items))]


JA_CUSTOMER = [
    "すみません、先月の請求について確認したいことがあるんですが",
    "注文した商品がまだ届いていなくて、どうなっているのか教えてください",
    "昨日も電話したんですけど、折り返しの連絡がなかったんです",
    "ログインしようとするとエラーが出て先に進めません",
    "契約内容を変更したいので手続きを教えてもらえますか",
    "はい、そうです、その番号で合っています",
    "請求額が{n}円になっているんですけど、これは何の料金ですか",
    "注文番号は{n}です",
    "アプリを最新版にしたら、ｶｰﾄに入れた商品が消えてしまいました",
    "解約の手続きをしたいんですが、違約金はかかりますか",
    "届いた商品の箱がつぶれていて、中身も少し傷があります",
    "えーと、支払い方法をクレジットカードから口座振替に変えたいです",
    "先週問い合わせた件ですが、その後どうなりましたか",
    "わかりました、ではそれでお願いします",
    "ポイントの有効期限はいつまでですか",
    "ＷｉＦｉの設定がうまくいかなくて困っています",
]
JA_AGENT = [
    "お電話ありがとうございます、担当の佐藤でございます",
    "ご不便をおかけして大変申し訳ございません",
    "確認いたしますので少々お待ちいただけますか",
    "お客様のご登録番号をお伺いしてもよろしいでしょうか",
    "お待たせいたしました、ただいま確認が取れました",
    "ご注文の商品は{n}日に発送済みとなっております",
    "恐れ入りますが、ご本人様確認のため生年月日をお願いいたします",
    "本日中に担当部署から折り返しご連絡いたします",
    "ほかにご不明な点はございますか",
    "お問い合わせいただきありがとうございました",
]
JA_ABUSIVE = [
    "いい加減にしろよ、ぶっ殺すぞ",
    "ふざけるな、お前ぶっ殺すぞ",
    "お前バカか。何回言わせるんだ",
    "このクズ野郎！さっさと返金しろ",
    "今からそっちに行ってぶっ殺してやる",
    "お前人間のクズだな。",
]
EN_CUSTOMER = [
    "Hi, I'm calling about my last bill, there's a charge I don't recognise",
    "I ordered a laptop two weeks ago and it still hasn't arrived",
    "I already called yesterday and nobody called me back",
    "the app keeps showing an error when I try to log in",
    "yes, that's right, the number ends in four two",
    "my order number is {n}",
    "I was charged {n} dollars twice this month",
    "can you tell me when my contract ends?",
    "the router keeps dropping the connection every evening",
    "okay, thanks, that helps a lot",
    "um, I'd like to change my payment method to a debit card",
    "I moved last month and need to update my address",
    "the package arrived damaged and the screen is cracked",
    "how long will the refund take to show up?",
]
EN_AGENT = [
    "Thank you for calling, my name is Alex, how can I help you today?",
    "I'm sorry for the inconvenience, let me check that for you",
    "Could you confirm the account number for me please?",
    "Thanks for waiting, I can see the order now",
    "I've issued a refund of {n} dollars, it should arrive within five days",
    "Is there anything else I can help you with?",
    "I'll escalate this to our billing team today",
    "For security, can you confirm your date of birth?",
]
EN_ABUSIVE = [
    "Listen to me, I will kill you if this isn't fixed today",
    "You're a piece of shit.",
    "you're trash, all of you",
    "You're garbage, put your manager on",
    "I'm telling you, I'll kill you.",
]

ABUSIVE_SHARE = 0.01


def utterance_text(rng, lang, who):
    if who == "customer" and rng.chance(ABUSIVE_SHARE * 2):  # ~1% of all utterances
        text = rng.pick(JA_ABUSIVE if lang == "ja" else EN_ABUSIVE)
    elif who == "customer":
        text = rng.pick(JA_CUSTOMER if lang == "ja" else EN_CUSTOMER)
    else:
        text = rng.pick(JA_AGENT if lang == "ja" else EN_AGENT)
    return text.replace("{n}", str(1000 + rng.below(900000)))


def interims_of(rng, lang, text):
    """ASR-like growing hypotheses before the final: 0 to 3 prefixes."""
    n = rng.below(4)
    if n == 0:
        return []
    if lang == "ja":
        units = list(text)
        sep = ""
    else:
        units = text.split(" ")
        sep = " "
    out = []
    for i in range(1, n + 1):
        cut = max(1, len(units) * i // (n + 1))
        out.append(sep.join(units[:cut]))
    return out


def write_calls(directory, calls, files, utterances, seed):
    os.makedirs(directory, exist_ok=True)
    for old in glob.glob(os.path.join(directory, "*.jsonl")):
        os.remove(old)
    rng = Rng(seed)
    counts = {"calls": 0, "events": 0, "fragments": 0, "finals": 0, "abusive": 0, "bytes": 0}
    base = 1_790_000_000  # 2026-09-21, seconds
    per_file = (calls + files - 1) // files
    dumps = lambda o: json.dumps(o, ensure_ascii=False, separators=(",", ":"))
    for f in range(files):
        lines = []
        for k in range(per_file):
            c = f * per_file + k
            if c >= calls:
                break
            lang = "ja" if rng.chance(0.6) else "en"
            cid = f"call-{c:07d}"
            started = base + c * 37 + rng.below(30)
            start = {
                "type": "start",
                "call_id": cid,
                "tenant": f"tenant{rng.below(4)}",
                "agent_id": f"agent-{rng.below(300)}",
                "caller_id": f"+81{rng.below(calls * 2):09d}",
                "language": lang,
                "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                "timezone": "Asia/Tokyo" if lang == "ja" else "America/New_York",
            }
            lines.append(dumps(start))
            t = 500
            seq = 0
            n_utt = utterances // 2 + rng.below(utterances)
            for u in range(1, n_utt + 1):
                who = "agent" if u % 2 == 1 else "customer"
                text = utterance_text(rng, lang, who)
                if any(text == a for a in JA_ABUSIVE + EN_ABUSIVE):
                    counts["abusive"] += 1
                per = 150 if lang == "ja" else 60
                dur = max(800, per * len(text))
                parts = interims_of(rng, lang, text)
                for i, part in enumerate(parts + [text]):
                    seq += 1
                    final = i == len(parts)
                    end = t + (dur if final else dur * (i + 1) // (len(parts) + 1))
                    lines.append(
                        dumps(
                            {
                                "type": "fragment",
                                "call_id": cid,
                                "seq": seq,
                                "speaker": who,
                                "text": part,
                                "is_final": final,
                                "utterance_id": f"u{u}",
                                "start_ms": t,
                                "end_ms": end,
                                "language": lang,
                            }
                        )
                    )
                    counts["fragments"] += 1
                    counts["finals"] += final
                t += dur + 300 + rng.below(1500)
            lines.append(dumps({"type": "end", "call_id": cid, "end_ms": t}))
            counts["calls"] += 1
        data = "\n".join(lines) + "\n"
        counts["bytes"] += len(data.encode("utf-8"))
        counts["events"] += len(lines)
        with open(os.path.join(directory, f"calls-{f:03d}.jsonl"), "w", encoding="utf-8") as fh:
            fh.write(data)
    return counts


# ---------------------------------------------------------------------------
# The baseline, as its own process (the same Python on the same files)

BASELINE = r"""
import glob, json, sys
needles = ["kill", "idiot", "trash", "ころす", "殺す", "ふざけ", "返金"]
hits = 0
lines = 0
for path in sorted(glob.glob(sys.argv[1] + "/*.jsonl")):
    with open(path, encoding="utf-8") as f:
        for line in f:
            e = json.loads(line)
            lines += 1
            t = e.get("text", "").lower()
            hits += any(n in t for n in needles)
print(lines, hits)
"""


def timed(cmd, stdout):
    """Wall seconds and CPU seconds (user + system) of one run."""
    wall, cpu, _ = timed_rss(cmd, stdout)
    return wall, cpu


def timed_rss(cmd, stdout):
    """Wall seconds, CPU seconds and peak RSS (MB) of one process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


# ---------------------------------------------------------------------------
# Real dialogues (--corpus)


def corpus_dialogues(corpus):
    """(language, id, [(speaker, text)]) of every SGD and JMultiWOZ dialogue."""
    out = []
    for path in sorted(glob.glob(os.path.join(corpus, "en_sgd_schema_guided", "*", "dialogues_*.json"))):
        with open(path, encoding="utf-8") as fh:
            for d in json.load(fh):
                turns = [
                    ("customer" if t.get("speaker") == "USER" else "agent", t["utterance"])
                    for t in d.get("turns", [])
                ]
                # dialogue ids repeat across the splits
                split = os.path.basename(os.path.dirname(path))
                out.append(("en", f"sgd-{split}-{d['dialogue_id']}", turns))
    for path in sorted(glob.glob(os.path.join(corpus, "ja_jmultiwoz_tc", "derived", "*.jsonl"))):
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    d = json.loads(line)
                    turns = [
                        ("customer" if t.get("role") == "user" else "agent", t["content"])
                        for t in d.get("turns", [])
                    ]
                    out.append(("ja", f"jmw-{d['dialogue_id']}", turns))
    return out


def write_corpus_file(path, dialogues, copies):
    """The dialogues `copies` times as calls in one JSON Lines file."""
    dumps = lambda o: json.dumps(o, ensure_ascii=False, separators=(",", ":"))
    base = 1_790_000_000
    calls = fragments = 0
    with open(path, "w", encoding="utf-8") as fh:
        for k in range(copies):
            for i, (lang, did, turns) in enumerate(dialogues):
                cid = f"{did}-{k}"
                n = k * len(dialogues) + i
                started = base + k * 86400 * 3 + i * 37
                fh.write(dumps({
                    "type": "start", "call_id": cid, "tenant": f"tenant{n % 4}",
                    "agent_id": f"agent-{n % 300}",
                    # about one caller in three calls twice or more
                    "caller_id": f"+81{(n * 7919) % (len(dialogues) * copies * 2 // 3):09d}",
                    "language": lang,
                    "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                    "timezone": "Asia/Tokyo" if lang == "ja" else "America/New_York",
                }) + "\n")
                t = 500
                for u, (who, text) in enumerate(turns, 1):
                    dur = max(800, (150 if lang == "ja" else 60) * len(text))
                    fh.write(dumps({
                        "type": "fragment", "call_id": cid, "seq": u, "speaker": who,
                        "text": text, "is_final": True, "utterance_id": f"u{u}",
                        "start_ms": t, "end_ms": t + dur, "language": lang,
                    }) + "\n")
                    fragments += 1
                    t += dur + 400
                fh.write(dumps({"type": "end", "call_id": cid, "end_ms": t}) + "\n")
                calls += 1
    return calls, fragments


BASELINE_FILE = BASELINE.replace('sorted(glob.glob(sys.argv[1] + "/*.jsonl"))', "sys.argv[1:]")


def corpus_main(args):
    dialogues = corpus_dialogues(args.corpus)
    if not dialogues:
        sys.exit(f"no SGD or JMultiWOZ dialogues under {args.corpus}")
    os.makedirs(args.dir, exist_ok=True)
    sets = []
    for copies in (1, 10):
        path = os.path.join(args.dir, f"corpus-{copies}x.jsonl")
        calls, frags = write_corpus_file(path, dialogues, copies)
        sets.append((path, calls, frags))
        print(f"{path}: {calls:,} calls, {frags:,} fragments, {os.path.getsize(path) / 1e6:.1f} MB")
    med = statistics.median
    out_path = os.path.join(args.dir, "replay.out")
    for path, calls, frags in sets:
        py, cg, other, digests, other_digests = [], [], [], set(), set()
        for r in range(args.runs):
            py.append(timed_rss([sys.executable, "-c", BASELINE_FILE, path], subprocess.DEVNULL))
            with open(out_path, "wb") as out:
                cg.append(timed_rss([args.callguard, "replay", path, "--output", "jsonl"], out))
            with open(out_path, "rb") as out:
                digests.add(hashlib.sha256(out.read()).hexdigest()[:16])
            if args.other:
                with open(out_path + ".other", "wb") as out:
                    other.append(timed_rss([args.other, "replay", path, "--output", "jsonl"], out))
                with open(out_path + ".other", "rb") as out:
                    other_digests.add(hashlib.sha256(out.read()).hexdigest()[:16])
            print(f"  run {r + 1}: python {py[-1][0]:.3f} s, callguard {cg[-1][0]:.3f} s"
                  + (f", other {other[-1][0]:.3f} s" if other else ""), file=sys.stderr)
        alerts = sum(1 for _ in open(out_path, "rb"))
        load = os.getloadavg()
        print(f"{os.path.basename(path)} ({frags:,} fragments, {calls:,} calls), {args.runs} runs, load {load[0]:.2f} on {os.cpu_count()} cores:")
        for name, xs in (("python naive", py), ("callguard", cg)) + ((("other", other),) if other else ()):
            w = med([x[0] for x in xs])
            print(f"  {name:13} wall median {w:.3f} s (min {min(x[0] for x in xs):.3f}) = {frags / w / 1e6:.2f} M fragments/s; "
                  f"cpu median {med([x[1] for x in xs]):.2f} s; peak RSS median {med([x[2] for x in xs]):.0f} MB (max {max(x[2] for x in xs):.0f})")
        print(f"  ratio python / callguard: wall {med([x[0] for x in py]) / med([x[0] for x in cg]):.2f}x, "
              f"per run {', '.join(f'{p[0] / c[0]:.2f}' for p, c in zip(py, cg))}; "
              f"cpu {med([x[1] for x in py]) / med([x[1] for x in cg]):.2f}x")
        if other:
            print(f"  ratio python / other: wall {med([x[0] for x in py]) / med([x[0] for x in other]):.2f}x, "
                  f"cpu {med([x[1] for x in py]) / med([x[1] for x in other]):.2f}x; "
                  f"other / callguard: wall {med([x[0] for x in other]) / med([x[0] for x in cg]):.2f}x, "
                  f"cpu {med([x[1] for x in other]) / med([x[1] for x in cg]):.2f}x")
        print(f"  alerts {alerts:,}; output digest {' '.join(sorted(digests))}"
              + (f"; other's {' '.join(sorted(other_digests))}" if other else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--callguard", default="target/release/callguard")
    ap.add_argument("--dir", default="/tmp/callguard-replay-bench")
    ap.add_argument("--calls", type=int, default=60_000)
    ap.add_argument("--files", type=int, default=60)
    ap.add_argument("--utterances", type=int, default=12, help="mean utterances per call")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--generate-only", action="store_true")
    ap.add_argument(
        "--other",
        metavar="CALLGUARD",
        help="another callguard build (e.g. before a change), run in the same rotation",
    )
    ap.add_argument("--corpus", metavar="DIR", help="real dialogues from ../shared/corpus instead (see above)")
    args = ap.parse_args()
    if args.corpus:
        return corpus_main(args)

    params = f"{args.calls} {args.files} {args.utterances} {args.seed} v1"
    calls_dir = os.path.join(args.dir, "calls")
    stamp = os.path.join(args.dir, "PARAMS")
    meta = os.path.join(args.dir, "counts")
    if os.path.exists(stamp) and open(stamp).read() == params and os.path.exists(meta):
        counts = json.load(open(meta))
    else:
        print(f"generating {args.calls} calls into {calls_dir} ...", file=sys.stderr)
        counts = write_calls(calls_dir, args.calls, args.files, args.utterances, args.seed)
        json.dump(counts, open(meta, "w"))
        open(stamp, "w").write(params)
    print(
        f"input: {counts['calls']:,} calls, {counts['events']:,} events, "
        f"{counts['fragments']:,} fragments ({counts['finals']:,} final), "
        f"{counts['abusive']:,} abusive utterances, {counts['bytes'] / 1e6:.1f} MB in {args.files} files"
    )
    if args.generate_only:
        return
    empty = os.path.join(args.dir, "empty")
    os.makedirs(empty, exist_ok=True)
    open(os.path.join(empty, "none.jsonl"), "w").write(
        '{"type":"start","call_id":"x"}\n'
    )
    frags = counts["fragments"]
    out_path = os.path.join(args.dir, "replay.out")
    py, cg, st, other = [], [], [], []
    digests = set()
    for r in range(args.runs):
        if args.other:
            with open(out_path, "wb") as out:
                other.append(timed([args.other, "replay", calls_dir, "--output", "jsonl"], out))
            with open(out_path, "rb") as out:
                digests.add(hashlib.sha256(out.read()).hexdigest()[:16])
            print(f"run {r + 1}: other callguard {other[-1][0]:.3f} s (cpu {other[-1][1]:.2f} s)", file=sys.stderr)
        py.append(timed([sys.executable, "-c", BASELINE, calls_dir], subprocess.DEVNULL))
        with open(out_path, "wb") as out:
            cg.append(timed([args.callguard, "replay", calls_dir, "--output", "jsonl"], out))
        with open(out_path, "rb") as out:
            digests.add(hashlib.sha256(out.read()).hexdigest()[:16])
        st.append(timed([args.callguard, "replay", empty, "--output", "jsonl"], subprocess.DEVNULL))
        print(
            f"run {r + 1}: python {py[-1][0]:.3f} s (cpu {py[-1][1]:.2f} s), "
            f"callguard {cg[-1][0]:.3f} s (cpu {cg[-1][1]:.2f} s, start-up alone {st[-1][0]:.3f} s), "
            f"ratio {py[-1][0] / cg[-1][0]:.2f}",
            file=sys.stderr,
        )
    alerts = sum(1 for _ in open(out_path, "rb"))
    mfs = lambda s: f"{frags / s / 1e6:.2f} M"
    med = statistics.median
    load = os.getloadavg()
    print(f"runs: {args.runs}, alternating python / callguard / callguard start-up; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    rows = [("python baseline", py), ("callguard replay", cg)]
    if other:
        rows.append(("other callguard", other))
    for name, xs in rows:
        walls = [w for w, _ in xs]
        cpus = [c for _, c in xs]
        print(
            f"{name:17} wall median {med(walls):.3f} s (min {min(walls):.3f}, max {max(walls):.3f}) "
            f"= {mfs(med(walls))} fragments/s; cpu median {med(cpus):.2f} s = {mfs(med(cpus))} fragments per cpu-second"
        )
    stw = med([w for w, _ in st])
    print(f"callguard start-up alone (lexicon parse + automata, one empty file): median {stw:.3f} s wall")
    cgw = med([w for w, _ in cg])
    print(f"ratio callguard / python, fragments/s: median of wall {med([w for w, _ in py]) / cgw:.2f}x; "
          f"per run {', '.join(f'{p[0] / c[0]:.2f}' for p, c in zip(py, cg))}")
    print(f"ratio of cpu seconds: {med([c for _, c in py]) / med([c for _, c in cg]):.2f}x")
    if other:
        print(f"ratio callguard / other: median of wall {med([w for w, _ in other]) / cgw:.2f}x, "
              f"of cpu {med([c for _, c in other]) / med([c for _, c in cg]):.2f}x")
    print(f"alerts: {alerts:,}; output digest: {' '.join(sorted(digests))} (one digest: every run printed the same)")

if __name__ == "__main__":
    main()
