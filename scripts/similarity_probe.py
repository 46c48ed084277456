#!/usr/bin/env python3
"""Would a similarity stage raise recall? (issue #13, item 5)

A nearest-example classifier on character n-grams (TF-IDF, cosine; no model
weights) over the phrase bank's tune lines, run on every customer final of
the blind splits. A line whose nearest abusive example scores at least
`tau`, and beats the nearest benign example by `margin`, "raises" that
example's category. Printed per split: recall of the rules plus what the
stage would add where the rules missed, and benign calls alarmed by
either. The rules' misses come from `callguard eval` reports.

    for s in dev dev2 dev3 dev4 dev5 dev6; do
      callguard eval eval/blind/$s/calls --labels eval/blind/$s/labels.json > /tmp/$s.txt
    done
    python3 scripts/similarity_probe.py --reports /tmp --splits dev,dev2,dev3,dev4,dev5,dev6
"""
import argparse
import collections
import glob
import json
import math
import os
import re
import unicodedata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def normalise(text, lang):
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w\s']", " ", text)
    if lang == "ja":
        text = re.sub(r"\s+", "", text)
        return "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in text)
    return " " + re.sub(r"\s+", " ", text).strip() + " "


def ngrams(text, lang):
    counts = collections.Counter()
    for n in (2, 3) if lang == "ja" else (3, 4, 5):
        for i in range(len(text) - n + 1):
            counts[text[i:i + n]] += 1
    return counts


class Examples:
    """TF-IDF vectors of the bank's tune lines of one language."""

    def __init__(self, lang):
        self.lang = lang
        self.lines = [json.loads(l) for l in open(f"{ROOT}/eval/bank/{lang}.tune.jsonl", encoding="utf-8")]
        grams = [ngrams(normalise(d["text"], lang), lang) for d in self.lines]
        df = collections.Counter(g for v in grams for g in v)
        n = len(grams)
        self.idf = {g: math.log((n + 1) / (c + 1)) + 1 for g, c in df.items()}
        self.vectors = [self.weigh(v) for v in grams]

    def weigh(self, counts):
        v = {g: c * self.idf[g] for g, c in counts.items() if g in self.idf}
        norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
        return {g: x / norm for g, x in v.items()}

    def nearest(self, text):
        """(score, category) of the nearest abusive example, score of the nearest benign one."""
        q = self.weigh(ngrams(normalise(text, self.lang), self.lang))
        best, benign = (0.0, None), 0.0
        for d, v in zip(self.lines, self.vectors):
            s = sum(x * v.get(g, 0.0) for g, x in q.items())
            if d["category"] is None:
                benign = max(benign, s)
            elif s > best[0]:
                best = (s, d["category"])
        return best, benign


def rule_misses(report):
    """(call, category) pairs the rules missed and benign calls they alarmed."""
    missed, alarmed, section = set(), set(), None
    for line in open(report, encoding="utf-8"):
        if line.startswith(("misses:", "false alarms:")):
            section = line[0]
        elif line.startswith("  ") and section == "m":
            call, rest = line.strip().split(" ", 1)
            missed.add((call, rest.split(":")[0]))
        elif line.startswith("  ") and section == "f" and "[benign]" in line:
            alarmed.add(line.split()[0])
    return missed, alarmed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reports", required=True, help="folder of `callguard eval` reports named <split>.txt")
    ap.add_argument("--splits", default="dev,dev2,dev3,dev4,dev5,dev6")
    args = ap.parse_args()
    examples = {lang: Examples(lang) for lang in ("ja", "en")}
    scored = {}
    for split in args.splits.split(","):
        labels = json.load(open(f"{ROOT}/eval/blind/{split}/labels.json", encoding="utf-8"))
        lines = collections.defaultdict(list)
        for path in glob.glob(f"{ROOT}/eval/blind/{split}/calls/*/*.jsonl"):
            call, lang = os.path.basename(path)[:-6], os.path.basename(os.path.dirname(path))
            for raw in open(path, encoding="utf-8"):
                e = json.loads(raw)
                if e["type"] == "fragment" and e["is_final"] and e["speaker"] == "customer":
                    lines[call].append(examples[lang].nearest(e["text"]))
        scored[split] = (labels, lines, rule_misses(os.path.join(args.reports, f"{split}.txt")))
    for tau in (0.35, 0.4, 0.45, 0.5, 0.55, 0.6):
        for margin in (0.0, 0.05, 0.1):
            row = [f"tau {tau:.2f} margin {margin:.2f}:"]
            for split, (labels, lines, (missed, alarmed)) in scored.items():
                expected = sum(len(v["expected"]) for v in labels.values())
                gained, benign = set(), set(alarmed)
                for call, found in lines.items():
                    for (score, category), other in found:
                        if category and score >= tau and score - other >= margin:
                            if (call, category) in missed:
                                gained.add((call, category))
                            if labels[call]["benign"]:
                                benign.add(call)
                recall = 100 * (expected - len(missed) + len(gained)) / expected
                calls = sum(v["benign"] for v in labels.values())
                row.append(f"{split} {recall:.1f}% (+{len(gained)}), {len(benign)}/{calls} benign")
            print("  ".join(row))


if __name__ == "__main__":
    main()
