"""Throughput of the cue rules: keyword rules, embedding rules cold, embedding rules warm (cache).

    python bench/rules.py [--n 20000] [--dev PATH]

Uses the dev utterances (../shared/data/utterances_dev.jsonl) repeated to N lines, each made
unique by a numbered suffix so neither spaCy nor the embedding cache sees a repeated text.
Single-threaded (torch set to one thread). Prints utterances per second.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="utterances for the keyword run")
    ap.add_argument("--n-embed", type=int, default=2000, help="utterances for the embedding runs")
    ap.add_argument("--dev", type=Path, default=Path(os.environ.get("CHURNWATCH_SHARED", ROOT.parent / "shared"))
                    / "data" / "utterances_dev.jsonl")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from pipeline.detect import (EmbeddingRule, InMemoryEmbeddingCache, KeywordRule, Utterance,
                                 detect_utterances, load_embedder)
    from pipeline.nlp import load_nlp
    from pipeline.rules import RulePack, load_pack

    rows = [json.loads(line) for line in args.dev.read_text().splitlines() if line.strip()]
    pack = load_pack(ROOT / "rules")
    nlp = load_nlp(["en", "de", "ro", "ko"])

    def utts(n):
        return [Utterance(f"{r['text']} ({i})", r["speaker"], r["lang"])
                for i, r in ((i, rows[i % len(rows)]) for i in range(n))]

    keyword = RulePack([r for r in pack.rules if isinstance(r, KeywordRule)])
    detect_utterances(utts(500), keyword, nlp)  # compile matchers, warm up
    batch = utts(args.n)
    t = time.perf_counter()
    found = detect_utterances(batch, keyword, nlp)
    dt = time.perf_counter() - t
    print(f"keyword rules ({len(keyword.rules)} rules): {len(batch)} utterances in {dt:.2f} s = "
          f"{len(batch) / dt:,.0f} utterances/s, {sum(map(bool, found))} with a cue")

    embedding = RulePack([r for r in pack.rules if isinstance(r, EmbeddingRule)])
    embedder = load_embedder()
    cache = InMemoryEmbeddingCache()
    detect_utterances(utts(50), embedding, nlp, embedder, InMemoryEmbeddingCache())  # warm up
    batch = utts(args.n_embed)
    t = time.perf_counter()
    detect_utterances(batch, embedding, nlp, embedder, cache)
    cold = time.perf_counter() - t
    t = time.perf_counter()
    detect_utterances(batch, embedding, nlp, embedder, cache)
    warm = time.perf_counter() - t
    print(f"embedding rules ({len(embedding.rules)} rules), cold: {len(batch) / cold:,.0f} utterances/s")
    print(f"embedding rules, warm cache: {len(batch) / warm:,.0f} utterances/s "
          f"({cold / warm:.0f}x faster than encoding)")


if __name__ == "__main__":
    main()
