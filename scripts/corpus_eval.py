#!/usr/bin/env python3
"""Measure callguard on public data nobody on the project wrote.

Runs `callguard scan` once per dataset (one utterance per line) over the
shared evaluation corpus and reports recall on abusive turns and false-alarm
rates on benign text, next to the targets of the corpus-evaluation issue:

  * ConvAbuse test+valid: recall above the best peer (0.85, alt-profanity-check)
    with under 1% false alarms on benign turns; also after an ASR-style rewrite.
  * SGD (en) and JMultiWOZ / ASDC (ja) benign service dialogues: under 0.5% of
    dialogues with an alert in a customer turn; and, replayed whole as calls
    (`callguard replay`, both speakers), under 0.5% of calls with an alert, so
    the per-call counters (the same demand restated after refusals, hints
    that add up, the agent's markers) are measured on benign dialogue too.
  * First 5,000 lines of rustrict's Scunthorpe list: fewer alerting lines than
    better_profanity's 13.
  * Indicative only: Japanese toxic sentences (inspection-ai), HateCheck.

A line is an ALERT when one of its hits has severity warning or critical, a
harassment category or self_harm, and is not an untargeted `needs_target`
term (an insult aimed at a product is a complaint, not abuse).

Python 3.11 standard library only. Usage:

  python3 scripts/corpus_eval.py --corpus ../shared/corpus \
      --callguard target/release/callguard [--json OUT] \
      [--check eval/corpus_baseline.json] [--write-baseline FILE] \
      [--show-errors N]

Exit status: 0 (also when the corpus folder is absent), 1 when --check finds a
regression, 2 on a usage or tooling error.
"""

from __future__ import annotations

import argparse
import collections
import csv
import datetime
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Callable

HARASSMENT = frozenset(
    {
        "violence",
        "threat",
        "intimidation",
        "verbal_abuse",
        "excessive_demand",
        "personal_attack",
        "online_defamation",
        "discrimination",
        "sexual_harassment",
        "persistence",
        "restraint",
        "out_of_hours",
    }
)
ALERT_CATEGORIES = HARASSMENT | {"self_harm"}
ALERT_SEVERITIES = frozenset({"warning", "critical"})

# --check tolerances: rates may move by half a percentage point, counts by two.
RATE_TOLERANCE = 0.005
COUNT_TOLERANCE = 2

RUSTRICT_LINES = 5000

csv.field_size_limit(1 << 24)


# --------------------------------------------------------------------------
# Running the engine


def alert_hits(hits: list[dict]) -> list[dict]:
    """The hits that make a line an ALERT."""
    return [
        h
        for h in hits
        if h.get("severity") in ALERT_SEVERITIES
        and h.get("category") in ALERT_CATEGORIES
        and not (h.get("needs_target") and not h.get("targeted"))
    ]


def miss_reason(hits: list[dict]) -> str:
    """Why a line that should alert did not (from the hits it did get)."""
    if not hits:
        return "no hit at all"
    harmful = [h for h in hits if h.get("category") in ALERT_CATEGORIES]
    if not harmful:
        cats = sorted({h.get("category", "?") for h in hits})
        return "only info signals (" + ",".join(cats) + ")"
    if all(h.get("needs_target") and not h.get("targeted") for h in harmful):
        return "needs_target term, not aimed at the agent"
    framings = {h.get("framing") for h in harmful} - {"plain"}
    if framings:
        return "harassment hit downgraded (" + ",".join(sorted(framings)) + ")"
    return "harassment hit at info severity"


_LINE_BREAKS = re.compile("[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")


def flatten(text: str) -> str:
    """One utterance per line: inner line breaks become spaces."""
    return _LINE_BREAKS.sub(" ", text.replace("\x00", " ")).strip()


def asr_rewrite(text: str) -> str:
    """ASR-style rewrite of typed text: lower case, no punctuation.

    Punctuation (Unicode category P*) becomes a space, except an apostrophe
    between two letters ("don't"), which speech recognisers keep. Symbols
    (S*: $, emoji) are left alone.
    """
    out = []
    n = len(text)
    for i, ch in enumerate(text):
        if unicodedata.category(ch).startswith("P"):
            if (
                ch in "'\u2019"
                and 0 < i < n - 1
                and text[i - 1].isalpha()
                and text[i + 1].isalpha()
            ):
                out.append("'")
            else:
                out.append(" ")
        else:
            out.append(ch)
    return " ".join("".join(out).lower().split())


class Scanner:
    def __init__(self, binary: str, lexicons: str | None = None):
        self.binary = binary
        # A lexicon folder to scan with instead of the embedded one: measure
        # a lexicon change without rebuilding.
        self.lexicon_args = ["--lexicons", lexicons] if lexicons else []
        self.seconds = 0.0
        self.lines = 0

    def version(self) -> str:
        try:
            res = subprocess.run(
                [self.binary, "--version"], capture_output=True, text=True, timeout=30
            )
            return res.stdout.strip() or "unknown"
        except OSError:
            return "unknown"

    def scan(self, texts: list[str], language: str) -> list[list[dict]]:
        """Scan texts (one per line) in one process; hits per text, in order."""
        if not texts:
            return []
        flat = [flatten(t) for t in texts]
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", suffix=".txt", delete=False
        ) as tmp:
            tmp.write("\n".join(flat))
            tmp.write("\n")
            path = tmp.name
        try:
            start = time.monotonic()
            res = subprocess.run(
                [self.binary, "scan", "--language", language, *self.lexicon_args, path],
                capture_output=True,
                text=True,
                encoding="utf-8",
                timeout=600,
            )
            self.seconds += time.monotonic() - start
            self.lines += len(flat)
        finally:
            os.unlink(path)
        if res.returncode != 0:
            raise RuntimeError(
                f"callguard scan failed (exit {res.returncode}): {res.stderr.strip()[:2000]}"
            )
        out: list[list[dict] | None] = [None] * len(flat)
        for raw in res.stdout.splitlines():
            if not raw.strip():
                continue
            obj = json.loads(raw)
            idx = int(obj["line"]) - 1
            if 0 <= idx < len(out):
                out[idx] = obj.get("hits") or []
        missing = sum(1 for o in out if o is None)
        if missing:
            raise RuntimeError(
                f"callguard scan returned no result for {missing} of {len(flat)} lines"
            )
        return out  # type: ignore[return-value]


    def replay(self, calls: list[list[tuple[str, str]]], language: str) -> dict[int, list[str]]:
        """Replay dialogues of (speaker, text) turns as calls, in one process;
        the rules of the alerts at warning or above, by dialogue index."""
        if not calls:
            return {}
        with tempfile.TemporaryDirectory() as folder:
            for i, turns in enumerate(calls):
                write_call(os.path.join(folder, f"d{i:05d}.jsonl"), f"d{i:05d}", turns, language)
            start = time.monotonic()
            res = subprocess.run(
                [self.binary, "replay", "--output", "jsonl", *self.lexicon_args, folder],
                capture_output=True,
                text=True,
                encoding="utf-8",
                timeout=600,
            )
            self.seconds += time.monotonic() - start
        if res.returncode != 0:
            raise RuntimeError(
                f"callguard replay failed (exit {res.returncode}): {res.stderr.strip()[:2000]}"
            )
        alerted: dict[int, list[str]] = collections.defaultdict(list)
        for raw in res.stdout.splitlines():
            if not raw.strip():
                continue
            alert = json.loads(raw)
            if (
                alert.get("severity") in ALERT_SEVERITIES
                and alert.get("category") in ALERT_CATEGORIES
                and alert.get("status") != "retracted"
            ):
                alerted[int(alert["call_id"][1:])].append(alert["rule"])
        return alerted


def write_call(path: str, call_id: str, turns: list[tuple[str, str]], language: str) -> None:
    """One dialogue as a call (DESIGN section 2): turns back to back at a
    speaking pace, on a weekday afternoon (no out-of-hours alert), each
    caller seen once (no repeat-caller count)."""
    events = [{
        "type": "start", "call_id": call_id, "tenant": "corpus", "agent_id": "a1",
        "caller_id": f"corpus-{call_id}", "language": language,
        "started_at": "2026-10-06T14:00:00+09:00", "timezone": "Asia/Tokyo",
    }]
    at = 1000
    for seq, (speaker, text) in enumerate(turns, 1):
        length = max(1500, 80 * len(text))
        events.append({
            "type": "fragment", "call_id": call_id, "seq": seq, "speaker": speaker,
            "text": text, "is_final": True, "utterance_id": f"u{seq}",
            "start_ms": at, "end_ms": at + length, "language": language,
        })
        at += length + 500
    events.append({"type": "end", "call_id": call_id, "end_ms": at})
    with open(path, "w", encoding="utf-8") as fh:
        for event in events:
            fh.write(json.dumps(event, ensure_ascii=False))
            fh.write("\n")


# --------------------------------------------------------------------------
# Metrics


@dataclass
class Metric:
    name: str
    value: float
    num: int
    den: int
    unit: str  # "rate" or "count"
    better: str  # "higher" or "lower"
    target: float | None = None  # pass when value beats it strictly
    note: str = ""

    def passed(self) -> bool | None:
        if self.target is None:
            return None
        if self.better == "higher":
            return self.value > self.target
        return self.value < self.target

    def shown(self) -> str:
        if self.unit == "count":
            return f"{self.num} / {self.den} lines"
        if self.better == "higher":
            return f"{self.value:.3f} ({self.num}/{self.den})"
        return f"{100 * self.value:.2f}% ({self.num}/{self.den})"

    def shown_target(self) -> str:
        if self.target is None:
            return "-"
        op = ">" if self.better == "higher" else "<"
        if self.unit == "count":
            return f"{op} {self.target:g}"
        if self.better == "higher":
            return f"{op} {self.target:.2f}"
        return f"{op} {100 * self.target:g}%"


def rate(num: int, den: int) -> float:
    return num / den if den else 0.0


@dataclass
class Report:
    metrics: list[Metric] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    # dataset -> list of (text, rules) false alarms / (text, reason, extra) misses
    false_alarms: dict[str, list[tuple[str, list[str]]]] = field(
        default_factory=lambda: collections.defaultdict(list)
    )
    misses: dict[str, list[tuple[str, str, str]]] = field(
        default_factory=lambda: collections.defaultdict(list)
    )
    fa_rules: dict[str, collections.Counter] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    miss_reasons: dict[str, collections.Counter] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    breakdowns: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def add(self, *args, **kwargs) -> Metric:
        m = Metric(*args, **kwargs)
        self.metrics.append(m)
        return m

    def record_fa(self, dataset: str, text: str, hits: list[dict]) -> None:
        rules = sorted({h["rule"] for h in alert_hits(hits)})
        self.false_alarms[dataset].append((text, rules))
        for r in rules:
            self.fa_rules[dataset][r] += 1

    def record_miss(self, dataset: str, text: str, hits: list[dict], extra: str = "") -> None:
        reason = miss_reason(hits)
        self.misses[dataset].append((text, reason, extra))
        self.miss_reasons[dataset][reason] += 1


def exists(*parts: str) -> bool:
    return os.path.exists(os.path.join(*parts))


# --------------------------------------------------------------------------
# ConvAbuse

CONVABUSE_TYPES = (
    "ableist",
    "homophobic",
    "intellectual",
    "racist",
    "sexist",
    "sex_harassment",
    "transphobic",
    "target.generalised",
    "target.individual",
    "target.system",
    "explicit",
    "implicit",
)
_ABUSE_COL = re.compile(r"^(Annotator\d+)_is_abuse\.(-?\d+)$")
_EMOJI_SPAN = re.compile(r"<span class=['\"]emoji-bytes['\"] data-emoji-bytes=['\"]\[([\d, ]*)\]['\"]>\s*</span>")


def _emoji(m: re.Match) -> str:
    """ConvAbuse stores emoji as HTML spans holding their UTF-8 bytes."""
    try:
        return bytes(int(b) for b in m.group(1).split(",") if b.strip()).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return " "


def convabuse_rows(path: str) -> list[tuple[str, str, list[str]]]:
    """(user text, label, types) with label 'abusive', 'benign' or 'tie'.

    Each annotator marks one of is_abuse.{1,0,-1,-2,-3}; a vote below 0 is
    abuse. Abusive = strict majority of the annotators who labelled the row
    vote below 0; benign = strict majority vote 0 or above; ties are left out.
    A type (sexist, target.system, ...) is kept when at least half of the
    annotators who voted abuse ticked it.
    """
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        annotators: dict[str, list[tuple[int, str]]] = collections.defaultdict(list)
        for col in reader.fieldnames or []:
            m = _ABUSE_COL.match(col)
            if m:
                annotators[m.group(1)].append((int(m.group(2)), col))
        if not annotators or "user" not in (reader.fieldnames or []):
            raise RuntimeError(f"{path}: no 'user' column or no AnnotatorN_is_abuse.* columns")
        for row in reader:
            abusive_voters, benign = [], 0
            for ann, levels in annotators.items():
                marked = [lv for lv, col in levels if (row.get(col) or "").strip() in ("1", "1.0")]
                if not marked:
                    continue
                if min(marked) < 0:
                    abusive_voters.append(ann)
                else:
                    benign += 1
            ab = len(abusive_voters)
            if ab == 0 and benign == 0:
                continue
            label = "abusive" if ab > benign else "benign" if benign > ab else "tie"
            types = []
            if label == "abusive":
                for t in CONVABUSE_TYPES:
                    ticks = sum(
                        1
                        for ann in abusive_voters
                        if (row.get(f"{ann}_{t}") or "").strip() in ("1", "1.0")
                    )
                    if ticks * 2 >= ab:
                        types.append(t)
            rows.append((_EMOJI_SPAN.sub(_emoji, row.get("user") or ""), label, types))
    return rows


def eval_convabuse(corpus: str, scanner: Scanner, rep: Report) -> None:
    base = os.path.join(corpus, "en_convabuse", "2_splits")
    files = [os.path.join(base, f"ConvAbuseEMNLP{s}.csv") for s in ("test", "valid")]
    if not all(os.path.exists(f) for f in files):
        rep.skipped.append("ConvAbuse (en_convabuse/2_splits test+valid not found)")
        return
    rows = [r for f in files for r in convabuse_rows(f)]
    texts = [r[0] for r in rows]
    for variant, transform in (("raw", None), ("asr", asr_rewrite)):
        scanned = texts if transform is None else [transform(t) for t in texts]
        results = scanner.scan(scanned, "en")
        ds = "convabuse" if variant == "raw" else "convabuse_asr"
        tp = pos = fp = neg = tie_alert = ties = 0
        by_type: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
        for (text, label, types), shown, hits in zip(rows, scanned, results):
            alert = bool(alert_hits(hits))
            if label == "abusive":
                pos += 1
                tp += alert
                for t in types or ["(no type ticked)"]:
                    by_type[t][0] += alert
                    by_type[t][1] += 1
                if not alert:
                    rep.record_miss(ds, flatten(shown), hits, ",".join(types))
            elif label == "benign":
                neg += 1
                fp += alert
                if alert:
                    rep.record_fa(ds, flatten(shown), hits)
            else:
                ties += 1
                tie_alert += alert
        title = "ConvAbuse test+valid" + ("" if variant == "raw" else ", ASR-style")
        official = variant == "raw"
        rep.add(
            f"{ds}.recall",
            rate(tp, pos),
            tp,
            pos,
            "rate",
            "higher",
            0.85 if official else None,
            f"{title}: recall on abusive user turns (peers 0.78 / 0.85)",
        )
        rep.add(
            f"{ds}.false_alarm",
            rate(fp, neg),
            fp,
            neg,
            "rate",
            "lower",
            0.01 if official else None,
            f"{title}: false alarms on benign user turns (peers 3.2% / 4.2%)",
        )
        rep.add(
            f"{ds}.tie_alert",
            rate(tie_alert, ties),
            tie_alert,
            ties,
            "rate",
            "info",
            None,
            f"{title}: alert rate on tied votes (not scored)",
        )
        if official:
            rep.breakdowns["ConvAbuse recall by annotated type (raw)"] = [
                (t, f"{rate(a, n):.3f} ({a}/{n})")
                for t, (a, n) in sorted(by_type.items(), key=lambda kv: -kv[1][1])
            ]


# --------------------------------------------------------------------------
# Benign dialogues


def dialogue_metrics(
    rep: Report,
    scanner: Scanner,
    ds: str,
    label: str,
    dialogues: list[list[str]],
    language: str,
    target: float | None,
    transform: Callable[[str], str] | None = None,
) -> None:
    flat, owner = [], []
    for i, turns in enumerate(dialogues):
        for t in turns:
            flat.append(transform(t) if transform else t)
            owner.append(i)
    results = scanner.scan(flat, language)
    alerted = set()
    turn_alerts = 0
    for text, i, hits in zip(flat, owner, results):
        if alert_hits(hits):
            alerted.add(i)
            turn_alerts += 1
            rep.record_fa(ds, flatten(text), hits)
    rep.add(
        f"{ds}.dialogue_alert",
        rate(len(alerted), len(dialogues)),
        len(alerted),
        len(dialogues),
        "rate",
        "lower",
        target,
        f"{label}: dialogues with an alert in a customer turn",
    )
    rep.add(
        f"{ds}.turn_alert",
        rate(turn_alerts, len(flat)),
        turn_alerts,
        len(flat),
        "rate",
        "lower",
        None,
        f"{label}: customer turns with an alert",
    )


def call_metrics(
    rep: Report,
    scanner: Scanner,
    ds: str,
    label: str,
    dialogues: list[list[tuple[str, str]]],
    language: str,
    target: float | None,
) -> None:
    """Whole dialogues replayed as calls: the share with an alert."""
    alerted = scanner.replay(dialogues, language)
    for i, rules in sorted(alerted.items()):
        rep.false_alarms[ds].append((" / ".join(t for _, t in dialogues[i])[:300], sorted(set(rules))))
        for rule in set(rules):
            rep.fa_rules[ds][rule] += 1
    rep.add(
        f"{ds}.call_alert",
        rate(len(alerted), len(dialogues)),
        len(alerted),
        len(dialogues),
        "rate",
        "lower",
        target,
        f"{label}: dialogues replayed as calls (both speakers) with an alert",
    )


def customer_turns(dialogues: list[list[tuple[str, str]]]) -> list[list[str]]:
    return [[text for speaker, text in turns if speaker == "customer"] for turns in dialogues]


def eval_sgd(corpus: str, scanner: Scanner, rep: Report) -> None:
    files = sorted(glob.glob(os.path.join(corpus, "en_sgd_schema_guided", "*", "dialogues_*.json")))
    if not files:
        rep.skipped.append("SGD (en_sgd_schema_guided/*/dialogues_*.json not found)")
        return
    dialogues = []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            for d in json.load(fh):
                dialogues.append([
                    ("customer" if t.get("speaker") == "USER" else "agent", t["utterance"])
                    for t in d.get("turns", [])
                ])
    customer = customer_turns(dialogues)
    dialogue_metrics(rep, scanner, "sgd", "SGD en (all splits)", customer, "en", 0.005)
    dialogue_metrics(
        rep, scanner, "sgd_asr", "SGD en, ASR-style", customer, "en", None, asr_rewrite
    )
    call_metrics(rep, scanner, "sgd_call", "SGD en", dialogues, "en", 0.005)


def ja_no_punct(text: str) -> str:
    """Japanese ASR-style: punctuation removed (kana left as typed)."""
    return "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)


def eval_jmultiwoz(corpus: str, scanner: Scanner, rep: Report) -> None:
    files = sorted(glob.glob(os.path.join(corpus, "ja_jmultiwoz_tc", "derived", "*.jsonl")))
    if not files:
        rep.skipped.append("JMultiWOZ (ja_jmultiwoz_tc/derived/*.jsonl not found)")
        return
    dialogues = []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    d = json.loads(line)
                    dialogues.append([
                        ("customer" if t.get("role") == "user" else "agent", t["content"])
                        for t in d.get("turns", [])
                    ])
    customer = customer_turns(dialogues)
    dialogue_metrics(rep, scanner, "jmultiwoz", "JMultiWOZ ja", customer, "ja", 0.005)
    dialogue_metrics(
        rep, scanner, "jmultiwoz_asr", "JMultiWOZ ja, no punctuation", customer, "ja", None,
        ja_no_punct,
    )
    call_metrics(rep, scanner, "jmultiwoz_call", "JMultiWOZ ja", dialogues, "ja", 0.005)


def eval_asdc(corpus: str, scanner: Scanner, rep: Report) -> None:
    files = sorted(
        glob.glob(
            os.path.join(corpus, "ja_asdc_accommodation_dialog", "data", "main", "dialog", "text", "*.tsv")
        )
    )
    if not files:
        rep.skipped.append("ASDC (ja_asdc_accommodation_dialog/data/main/dialog/text not found)")
        return
    dialogues = []
    for f in files:
        turns = []
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                speaker, _, text = line.rstrip("\n").partition("\t")
                if text:
                    # │ separates sentences, ▁ marks a pause in the transcription
                    role = "customer" if speaker.startswith("customer") else "agent"
                    turns.append((role, text.replace("│", " ").replace("▁", " ")))
        dialogues.append(turns)
    customer = customer_turns(dialogues)
    dialogue_metrics(rep, scanner, "asdc", "ASDC ja accommodation", customer, "ja", 0.005)
    call_metrics(rep, scanner, "asdc_call", "ASDC ja accommodation", dialogues, "ja", 0.005)


# --------------------------------------------------------------------------
# Scunthorpe list


def eval_rustrict(corpus: str, scanner: Scanner, rep: Report) -> None:
    path = os.path.join(corpus, "peer_rustrict", "src", "false_positives.txt")
    if not os.path.exists(path):
        rep.skipped.append("rustrict (peer_rustrict/src/false_positives.txt not found)")
        return
    with open(path, encoding="utf-8") as fh:
        lines = [l.rstrip("\n") for l in fh]
    results = scanner.scan(lines, "en")
    first = full = 0
    for i, (text, hits) in enumerate(zip(lines, results)):
        if alert_hits(hits):
            full += 1
            if i < RUSTRICT_LINES:
                first += 1
            rep.record_fa("rustrict" if i < RUSTRICT_LINES else "rustrict_rest", text, hits)
    n_first = min(len(lines), RUSTRICT_LINES)
    rep.add(
        "rustrict.lines_alert",
        float(first),
        first,
        n_first,
        "count",
        "lower",
        13,
        f"rustrict false_positives.txt, first {n_first} lines with an alert (better_profanity: 13)",
    )
    rep.add(
        "rustrict_all.lines_alert",
        float(full),
        full,
        len(lines),
        "count",
        "lower",
        None,
        f"rustrict false_positives.txt, all {len(lines)} lines with an alert",
    )


def eval_banking77(corpus: str, scanner: Scanner, rep: Report) -> None:
    files = sorted(glob.glob(os.path.join(corpus, "en_banking77_polyai", "banking_data", "*.csv")))
    if not files:
        rep.skipped.append("banking77 (en_banking77_polyai/banking_data/*.csv not found)")
        return
    texts = []
    for f in files:
        with open(f, newline="", encoding="utf-8") as fh:
            texts.extend(r["text"] for r in csv.DictReader(fh))
    results = scanner.scan(texts, "en")
    n = 0
    for text, hits in zip(texts, results):
        if alert_hits(hits):
            n += 1
            rep.record_fa("banking77", flatten(text), hits)
    rep.add("banking77.query_alert", rate(n, len(texts)), n, len(texts), "rate", "lower", None,
            "banking77 en benign bank customer queries with an alert")


# --------------------------------------------------------------------------
# Indicative sets


def eval_ja_toxic(corpus: str, scanner: Scanner, rep: Report) -> None:
    path = os.path.join(corpus, "ja_inspection_toxic", "data", "subset.csv")
    if not os.path.exists(path):
        rep.skipped.append("ja_inspection_toxic (data/subset.csv not found)")
        return
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            n = int(r["annotation_num"] or 0)
            toxic = int(r["Toxic"] or 0) + int(r["Very Toxic"] or 0)
            if toxic * 2 > n:
                label = "toxic"
            elif int(r["Not Toxic"] or 0) * 2 > n:
                label = "benign"
            else:
                label = "unclear"
            cats = [k.split("_", 1)[1] for k in r if k.startswith("category_") and int(r[k] or 0) * 2 > n]
            rows.append((r["text"], label, ",".join(cats)))
    results = scanner.scan([r[0] for r in rows], "ja")
    tp = pos = fp = neg = 0
    for (text, label, cats), hits in zip(rows, results):
        alert = bool(alert_hits(hits))
        if label == "toxic":
            pos += 1
            tp += alert
            if not alert:
                rep.record_miss("ja_toxic", flatten(text), hits, cats)
        elif label == "benign":
            neg += 1
            fp += alert
            if alert:
                rep.record_fa("ja_toxic", flatten(text), hits)
    rep.add("ja_toxic.recall", rate(tp, pos), tp, pos, "rate", "higher", None,
            "inspection-ai ja toxic (majority Toxic+Very Toxic): recall, indicative")
    rep.add("ja_toxic.false_alarm", rate(fp, neg), fp, neg, "rate", "lower", None,
            "inspection-ai ja, majority Not Toxic: false alarms, indicative")


def eval_hatecheck(corpus: str, scanner: Scanner, rep: Report) -> None:
    path = os.path.join(corpus, "en_hatecheck", "test_suite_cases.csv")
    if not os.path.exists(path):
        rep.skipped.append("HateCheck (en_hatecheck/test_suite_cases.csv not found)")
        return
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [(r["test_case"], r["label_gold"], r["functionality"]) for r in csv.DictReader(fh)]
    results = scanner.scan([r[0] for r in rows], "en")
    per: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    tp = pos = fp = neg = 0
    for (text, label, func), hits in zip(rows, results):
        alert = bool(alert_hits(hits))
        per[func][0] += alert
        per[func][1] += 1
        if label == "hateful":
            pos += 1
            tp += alert
        else:
            neg += 1
            fp += alert
            if alert:
                rep.record_fa("hatecheck", flatten(text), hits)
    rep.add("hatecheck.recall", rate(tp, pos), tp, pos, "rate", "higher", None,
            "HateCheck hateful cases (mostly about groups, not at the agent): alert rate, indicative")
    rep.add("hatecheck.false_alarm", rate(fp, neg), fp, neg, "rate", "lower", None,
            "HateCheck non-hateful cases (negation, quotes, homonyms...): alert rate, indicative")
    rep.breakdowns["HateCheck alert rate per functionality (_h hateful, _nh must not fire)"] = [
        (f, f"{rate(a, n):.2f} ({a}/{n})") for f, (a, n) in sorted(per.items())
    ]


# --------------------------------------------------------------------------
# Output, baseline, check


def print_table(rep: Report, out=sys.stdout) -> None:
    rows = [("metric", "value", "target", "status")]
    for m in rep.metrics:
        p = m.passed()
        status = "info" if p is None else ("PASS" if p else "FAIL")
        rows.append((m.name, m.shown(), m.shown_target(), status))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for j, r in enumerate(rows):
        print("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip(), file=out)
        if j == 0:
            print("  ".join("-" * w for w in widths), file=out)
    print(file=out)
    for m in rep.metrics:
        print(f"  {m.name}: {m.note}", file=out)
    for title, items in rep.breakdowns.items():
        print(f"\n{title}:", file=out)
        w = max(len(k) for k, _ in items) if items else 0
        for k, v in items:
            print(f"  {k.ljust(w)}  {v}", file=out)
    for s in rep.skipped:
        print(f"skipped: {s}", file=out)


def print_errors(rep: Report, n: int, out=sys.stdout) -> None:
    print("\n== False alarms: most frequent rules per dataset ==", file=out)
    for ds, counter in rep.fa_rules.items():
        print(f"[{ds}] {sum(counter.values())} rule firings on {len(rep.false_alarms[ds])} lines", file=out)
        for rule, c in counter.most_common(15):
            print(f"  {c:5d}  {rule}", file=out)
    print(f"\n== False alarms: first {n} per dataset ==", file=out)
    for ds, items in rep.false_alarms.items():
        print(f"[{ds}]", file=out)
        for text, rules in items[:n]:
            print(f"  {','.join(rules)} | {text[:200]}", file=out)
    print("\n== Misses: reasons ==", file=out)
    for ds, counter in rep.miss_reasons.items():
        print(f"[{ds}]", file=out)
        for reason, c in counter.most_common():
            print(f"  {c:5d}  {reason}", file=out)
    print(f"\n== Misses: first {n} per dataset ==", file=out)
    for ds, items in rep.misses.items():
        print(f"[{ds}]", file=out)
        for text, reason, extra in items[:n]:
            print(f"  [{reason}; {extra or '-'}] {text[:200]}", file=out)


def metrics_dict(rep: Report) -> dict:
    return {
        m.name: {
            "value": round(m.value, 6),
            "num": m.num,
            "den": m.den,
            "unit": m.unit,
            "better": m.better,
            "target": m.target,
            "pass": m.passed(),
        }
        for m in rep.metrics
    }


def write_json(rep: Report, path: str, meta: dict) -> None:
    doc = {
        **meta,
        "metrics": metrics_dict(rep),
        "breakdowns": {k: dict(v) for k, v in rep.breakdowns.items()},
        "false_alarm_rules": {ds: dict(c.most_common()) for ds, c in rep.fa_rules.items()},
        "miss_reasons": {ds: dict(c.most_common()) for ds, c in rep.miss_reasons.items()},
        "false_alarms": {ds: [{"text": t, "rules": r} for t, r in v] for ds, v in rep.false_alarms.items()},
        "misses": {
            ds: [{"text": t, "reason": r, "types": e} for t, r, e in v] for ds, v in rep.misses.items()
        },
        "skipped": rep.skipped,
    }
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, ensure_ascii=False, indent=1)
        fh.write("\n")


def write_baseline(rep: Report, path: str, meta: dict) -> None:
    doc = {
        **meta,
        "tolerance": {"rate": RATE_TOLERANCE, "count": COUNT_TOLERANCE},
        "metrics": {
            name: {k: v for k, v in m.items() if k in ("value", "num", "den", "unit", "better", "target")}
            for name, m in metrics_dict(rep).items()
        },
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, ensure_ascii=False, indent=2, sort_keys=False)
        fh.write("\n")


def check(rep: Report, path: str) -> int:
    with open(path, encoding="utf-8") as fh:
        base = json.load(fh)
    tol = base.get("tolerance", {})
    rate_tol = float(tol.get("rate", RATE_TOLERANCE))
    count_tol = float(tol.get("count", COUNT_TOLERANCE))
    current = {m.name: m for m in rep.metrics}
    failures, notes = [], []
    for name, b in base.get("metrics", {}).items():
        better = b.get("better")
        if better not in ("higher", "lower"):
            continue
        m = current.get(name)
        if m is None:
            notes.append(f"{name}: not measured this run (dataset missing?)")
            continue
        old = float(b["value"])
        t = count_tol if m.unit == "count" else rate_tol
        fmt = (lambda v: f"{v:g}") if m.unit == "count" else (lambda v: f"{100 * v:.2f}%")
        delta = m.value - old
        if better == "higher" and delta < -t - 1e-12:
            failures.append(f"{name} dropped: {fmt(old)} -> {fmt(m.value)} (tolerance {fmt(t)})")
        elif better == "lower" and delta > t + 1e-12:
            failures.append(f"{name} rose: {fmt(old)} -> {fmt(m.value)} (tolerance {fmt(t)})")
        elif (better == "higher" and delta > t) or (better == "lower" and delta < -t):
            notes.append(f"{name} improved: {fmt(old)} -> {fmt(m.value)} (consider --write-baseline)")
    print(f"\n== Check against {path} ==")
    for n in notes:
        print(f"  note: {n}")
    if failures:
        for f in failures:
            print(f"  REGRESSION: {f}")
        print(f"check FAILED: {len(failures)} figure(s) worse than the committed baseline")
        return 1
    print("check passed: no figure worse than the baseline beyond tolerance")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default="../shared/corpus", help="shared corpus folder")
    ap.add_argument("--callguard", default="target/release/callguard", help="callguard binary")
    ap.add_argument("--lexicons", metavar="DIR",
                    help="lexicon folder to scan with (default: the binary's embedded lexicons)")
    ap.add_argument("--json", metavar="OUT", help="write all figures, rules and errors as JSON")
    ap.add_argument("--check", metavar="BASELINE", help="exit 1 if a figure is worse than BASELINE")
    ap.add_argument("--write-baseline", metavar="FILE", help="write the current figures as baseline")
    ap.add_argument("--show-errors", type=int, default=0, metavar="N",
                    help="list the first N misses and false alarms and the top false-alarm rules")
    args = ap.parse_args(argv)

    if not os.path.isdir(args.corpus):
        print(f"corpus folder {args.corpus} not found: nothing to measure (skipping)")
        return 0
    if not (os.path.isfile(args.callguard) and os.access(args.callguard, os.X_OK)):
        print(f"callguard binary {args.callguard} not found; build it: cargo build --release",
              file=sys.stderr)
        return 2

    scanner = Scanner(args.callguard, args.lexicons)
    rep = Report()
    started = time.monotonic()
    try:
        for step in (eval_convabuse, eval_sgd, eval_jmultiwoz, eval_asdc, eval_rustrict,
                     eval_banking77, eval_ja_toxic, eval_hatecheck):
            step(args.corpus, scanner, rep)
    except (RuntimeError, json.JSONDecodeError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    elapsed = time.monotonic() - started

    meta = {
        "date": datetime.date.today().isoformat(),
        "callguard": scanner.version(),
        "corpus": args.corpus,
    }
    print(f"callguard corpus evaluation ({meta['callguard']}, {meta['date']})\n")
    print_table(rep)
    print(f"\n{scanner.lines} lines scanned in {scanner.seconds:.1f}s of engine time; "
          f"{elapsed:.1f}s in all")
    if args.show_errors:
        print_errors(rep, args.show_errors)
    if args.json:
        write_json(rep, args.json, meta)
        print(f"\nwrote {args.json}")
    if args.write_baseline:
        write_baseline(rep, args.write_baseline, meta)
        print(f"wrote baseline {args.write_baseline}")
    if not rep.metrics:
        print("no dataset found under the corpus folder: nothing measured")
        return 0
    if args.check:
        if not os.path.exists(args.check):
            print(f"baseline {args.check} not found", file=sys.stderr)
            return 2
        return check(rep, args.check)
    return 0


if __name__ == "__main__":
    sys.exit(main())
