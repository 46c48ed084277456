#!/usr/bin/env python3
"""Would a similarity stage find what the automata miss? (issue #13, item 5)

Compares every customer final of the blind splits with the lexicons'
`match` examples (character n-gram TF-IDF vectors, cosine; Japanese 2-3
character grams, English 3-5 character grams within words plus word
pairs) and counts, per threshold, the expected categories the engine
missed that the nearest example would have added, and the false
categories and benign calls it would have alarmed. A `no_match` example
closer than the nearest `match` example by `margin` vetoes it.

    cargo build --release
    python3 scripts/similarity_probe.py dev13            # one split
    python3 scripts/similarity_probe.py dev dev2 dev3    # several
    # as measured before round 13 (the lexicons of that version):
    mkdir -p /tmp/lex12.14 && git archive 9e2ed4b lexicons | tar x -C /tmp/lex12.14
    python3 scripts/similarity_probe.py dev13 --lexicons /tmp/lex12.14/lexicons

Standard library only; a few minutes per 64-call split (pure Python).
"""
import argparse
import glob
import json
import math
import os
import re
import subprocess
import sys
import tomllib
import unicodedata
from collections import Counter, defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARASSMENT = {
    "violence", "threat", "intimidation", "verbal_abuse", "excessive_demand",
    "personal_attack", "online_defamation", "discrimination", "sexual_harassment",
    "persistence", "restraint", "self_harm",
}
PUNCT = re.compile(r"[、。,.!?！？「」『』\"'…・ー～〜\-]")


def fold(text):
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"\s+", " ", PUNCT.sub(" ", text)).strip()


def grams(text, lang):
    text = fold(text)
    out = Counter()
    if lang == "ja":
        t = text.replace(" ", "")
        for n in (2, 3):
            out.update(t[i:i + n] for i in range(len(t) - n + 1))
    else:
        words = text.split()
        for w in words:
            w = f" {w} "
            for n in (3, 4, 5):
                out.update(w[i:i + n] for i in range(len(w) - n + 1))
        for a, b in zip(words, words[1:]):
            out["W:" + a + "_" + b] += 2
    return out


class Examples:
    """The lexicons' examples of one language as unit TF-IDF vectors."""

    def __init__(self, lexicons, lang):
        docs = []
        for path in sorted(glob.glob(os.path.join(lexicons, lang, "*.toml"))):
            with open(path, "rb") as f:
                doc = tomllib.load(f)
            for term in doc.get("term", []):
                category = term.get("category", doc.get("category"))
                if category in HARASSMENT:
                    docs += [(category, m) for m in term.get("match", [])]
                docs += [(None, m) for m in term.get("no_match", [])]
        counts = [grams(m, lang) for _, m in docs]
        df = Counter()
        for c in counts:
            df.update(c.keys())
        n = len(counts)
        self.idf = {g: math.log((n + 1) / (d + 1)) + 1 for g, d in df.items()}
        self.unseen = math.log(n + 1) + 1
        self.lang = lang
        self.docs = [(cat, text, self.vector_of(c)) for (cat, text), c in zip(docs, counts)]

    def vector_of(self, counts):
        w = {g: c * self.idf.get(g, self.unseen) for g, c in counts.items()}
        norm = math.sqrt(sum(x * x for x in w.values())) or 1.0
        return {g: x / norm for g, x in w.items()}

    def nearest(self, text):
        """Best score per category, and the best no_match score."""
        v = self.vector_of(grams(text, self.lang))
        best, veto = {}, 0.0
        for category, example, e in self.docs:
            score = sum(x * e.get(g, 0.0) for g, x in v.items())
            if category is None:
                veto = max(veto, score)
            elif score > best.get(category, (0.0, ""))[0]:
                best[category] = (score, example)
        return best, veto


def split_scores(split, callguard, lexicons, models):
    folder = os.path.join(ROOT, "eval", "blind", split)
    labels = json.load(open(os.path.join(folder, "labels.json")))
    report = json.loads(subprocess.run(
        [callguard, "eval", os.path.join(folder, "calls"), "--labels",
         os.path.join(folder, "labels.json"), "--lexicons", lexicons, "--json"],
        capture_output=True, text=True, check=True).stdout)
    missed, false = defaultdict(set), defaultdict(set)
    for m in report["misses"]:
        missed[m["call_id"]].add(m["category"])
    for f in report["false_alarms"]:
        false[f["call_id"]].add(f["category"])
    calls = []
    for path in glob.glob(os.path.join(folder, "calls", "**", "*.jsonl"), recursive=True):
        lang, finals, call_id = "ja", [], None
        for line in open(path, encoding="utf-8"):
            e = json.loads(line)
            if e["type"] == "start":
                call_id, lang = e["call_id"], e.get("language", "ja")[:2]
            elif e["type"] == "fragment" and e.get("is_final") and e["speaker"] == "customer":
                finals.append(e["text"])
        label = labels[call_id]
        expected = set(label["expected"])
        found = (expected - missed[call_id]) | false[call_id]
        scores = {}
        for text in finals:
            best, veto = models[lang].nearest(text)
            for category, (score, example) in best.items():
                if score - veto > -1 and score > scores.get(category, (0.0,))[0]:
                    scores[category] = (score, veto, text, example)
        calls.append((call_id, label, found, scores))
    return calls


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("splits", nargs="+", help="eval/blind split names (dev, dev2, ..., never test while tuning)")
    ap.add_argument("--callguard", default=os.path.join(ROOT, "target", "release", "callguard"))
    ap.add_argument("--lexicons", default=os.path.join(ROOT, "lexicons"),
                    help="lexicon folder: the examples, and the rules callguard eval runs")
    ap.add_argument("--margin", type=float, default=0.0)
    args = ap.parse_args()
    models = {lang: Examples(args.lexicons, lang) for lang in ("ja", "en")}
    calls = []
    for split in args.splits:
        print(f"scoring {split} ...", file=sys.stderr)
        calls += split_scores(split, args.callguard, args.lexicons, models)
    misses = sum(len(set(l["expected"]) - found) for _, l, found, _ in calls)
    print(f"{len(calls)} calls, {misses} expected categories the engine misses")
    print("threshold  recovered  false categories  benign calls newly alarmed")
    for tau in (0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60):
        recovered = false_categories = 0
        benign = set()
        for call_id, label, found, scores in calls:
            expected, acceptable = set(label["expected"]), set(label.get("acceptable", []))
            for category, (score, veto, _, _) in scores.items():
                if score < tau or score - veto < args.margin or category in found:
                    continue
                if category in expected:
                    recovered += 1
                elif category not in acceptable:
                    false_categories += 1
                    if label["benign"] and not found:
                        benign.add(call_id)
        print(f"{tau:9.2f}  {recovered:4d}/{misses:<4d}  {false_categories:16d}  {len(benign):26d}")


if __name__ == "__main__":
    main()
