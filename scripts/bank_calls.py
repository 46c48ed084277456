#!/usr/bin/env python3
"""Turn a phrase bank (JSON Lines of single customer lines) into calls that
`callguard eval` scores.

Each line becomes a short call: the agent's greeting, the agent's refusal
when the line's note says it follows one, then the customer's line. The
labels say the line's category (or benign when it is null), so `eval`
reports recall per category and the benign lines that raise a warning.

    python3 scripts/bank_calls.py eval/bank/en.jsonl --out /tmp/bank-en
    callguard eval /tmp/bank-en/calls --labels /tmp/bank-en/labels.json
"""
import argparse
import json
import pathlib
import re
import sys

CATEGORIES = {
    "violence", "threat", "intimidation", "verbal_abuse", "excessive_demand",
    "personal_attack", "online_defamation", "discrimination", "sexual_harassment",
    "persistence", "restraint", "self_harm",
}
GREETING = {
    "ja": "お電話ありがとうございます、サポートセンターの佐藤でございます。",
    "en": "Thank you for calling customer support, this is Sam speaking, how can I help?",
}
REFUSAL = {
    "ja": "申し訳ございませんが、そちらはお受けいたしかねます。",
    "en": "I'm sorry, I'm not able to do that for you.",
}
AFTER_REFUSAL = re.compile(r"refus|declin|断|拒否|after the agent (said no|says no)", re.I)


def fragment(call_id, seq, speaker, text, start_ms, lang):
    end_ms = start_ms + 400 * max(4, len(text) // 3)
    return {
        "type": "fragment", "call_id": call_id, "seq": seq, "speaker": speaker,
        "text": text, "is_final": True, "utterance_id": f"u{seq}",
        "start_ms": start_ms, "end_ms": end_ms, "language": lang,
    }, end_ms + 600


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bank", nargs="+", help="phrase bank files (JSON Lines)")
    ap.add_argument("--out", required=True, help="output folder (calls/ and labels.json)")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    (out / "calls").mkdir(parents=True, exist_ok=True)
    labels = {}
    for path in args.bank:
        for n, raw in enumerate(open(path, encoding="utf-8"), 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
                call_id, lang, text = line["id"], line["lang"][:2], line["text"]
            except (ValueError, KeyError) as e:
                sys.exit(f"{path}:{n}: not a phrase-bank line ({e})")
            category = line.get("category")
            if category is not None and category not in CATEGORIES:
                sys.exit(f"{path}:{n}: unknown category {category!r}")
            if lang not in GREETING:
                sys.exit(f"{path}:{n}: language {lang!r} has no greeting here")
            events = [{
                "type": "start", "call_id": call_id, "tenant": "bank", "agent_id": "a1",
                "caller_id": f"bank-{call_id}", "language": lang,
                "started_at": "2026-10-06T10:00:00+09:00", "timezone": "Asia/Tokyo",
            }]
            turns = [("agent", GREETING[lang])]
            if AFTER_REFUSAL.search(line.get("note") or ""):
                turns.append(("agent", REFUSAL[lang]))
            turns.append(("customer", text))
            t = 500
            for seq, (speaker, said) in enumerate(turns, 1):
                ev, t = fragment(call_id, seq, speaker, said, t, lang)
                events.append(ev)
            events.append({"type": "end", "call_id": call_id, "end_ms": t})
            with open(out / "calls" / f"{call_id}.jsonl", "w", encoding="utf-8") as f:
                for ev in events:
                    f.write(json.dumps(ev, ensure_ascii=False) + "\n")
            labels[call_id] = {
                "expected": [category] if category else [],
                "benign": category is None,
                "note": text,
            }
    with open(out / "labels.json", "w", encoding="utf-8") as f:
        json.dump(labels, f, ensure_ascii=False, indent=1)
    print(f"{len(labels)} calls written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
