"""Throughput of the cue rules on one core: keyword rules on two mixes, embedding rules cold/warm.

    python bench/rules.py [--n 20000] [--n-embed 2000] [--repeat 3] [--out bench/results/rules.json]

Mixes (each repeated to N lines, each line made unique by a numbered suffix " (i)"; keyword
matching caches nothing by text):
- cue-heavy: ../shared/data/utterances_dev.jsonl (about 54% of lines carry a cue);
- calls: every turn, rep and customer, of ../shared/data/calls_dev/*.truth.json (mostly cue-free);
- samples: every turn of samples/audio/*.truth.json (ships with the project, so this bench runs
  anywhere; the other two are skipped where the shared data is absent).
The learned pack runs with embeddings cached, then with the learned model's probabilities
cached too (they are stored beside the embeddings under the model's version). The store part
scores N stored lines once as ingest does, then again after a keyword rule edit.
Single-threaded: OMP/BLAS threads and torch set to 1. Prints utterances per second in wall time
and in CPU time of this process (time.process_time; the machine may be shared), best of
--repeat runs, and writes the numbers to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CHURNWATCH_SHARED", ROOT.parent / "shared")) / "data"


def call_turns(files) -> list[dict]:
    turns = []
    for f in files:
        data = json.loads(Path(f).read_text(encoding="utf-8"))
        lang = (data.get("language") or "en").split("-")[0]
        turns += [{"text": t["text"], "speaker": t["speaker"], "lang": lang} for t in data["turns"]]
    return turns


def mixes() -> dict[str, list[dict]]:
    out = {}
    dev = SHARED / "utterances_dev.jsonl"
    if dev.exists():
        out["cue-heavy"] = [json.loads(line) for line in dev.read_text(encoding="utf-8").splitlines()
                            if line.strip()]
    calls = sorted((SHARED / "calls_dev").glob("*.truth.json"))
    if calls:
        out["calls"] = call_turns(calls)
    out["samples"] = call_turns(sorted((ROOT / "samples" / "audio").glob("*.truth.json")))
    return out


def timed(fn, repeat: int) -> tuple[float, float, object]:
    """Best wall and best CPU seconds over `repeat` runs, and the last result."""
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        result = fn()
        cpus.append(time.process_time() - c)
        walls.append(time.perf_counter() - w)
    return min(walls), min(cpus), result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="utterances per keyword run")
    ap.add_argument("--n-embed", type=int, default=2000, help="utterances for the embedding runs")
    ap.add_argument("--repeat", type=int, default=3, help="keyword runs per mix; the best counts")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "rules.json",
                    help="where to write the numbers (JSON)")
    ap.add_argument("--no-embeddings", action="store_true", help="skip the embedding runs")
    ap.add_argument("--no-learned", action="store_true", help="skip the learned-model runs")
    ap.add_argument("--n-store", type=int, default=100_000, help="stored utterances re-scored from the cache")
    args = ap.parse_args()

    import spacy
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT))
    from pipeline.cues.detect import Utterance, detect_utterances
    from pipeline.cues.embeddings import InMemoryEmbeddingCache, load_embedder
    from pipeline.cues.rule_files import EmbeddingRule, KeywordRule
    from pipeline.cues.languages import compile_rules, load_nlp
    from pipeline.cues.rule_files import RulePack, load_pack

    pack = load_pack(ROOT / "rules")
    nlp = load_nlp(["en", "de", "ro", "ko"])
    keyword = RulePack([r for r in pack.rules if isinstance(r, KeywordRule)])

    def utts(rows, n):
        return [Utterance(f"{r['text']} ({i})", r.get("speaker", "customer"), r.get("lang", "en"))
                for i, r in ((i, rows[i % len(rows)]) for i in range(n))]

    report = {"command": "python bench/rules.py " + " ".join(sys.argv[1:]),
              "machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg(),
                          "python": platform.python_version(), "spacy": spacy.__version__,
                          "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
              "keyword_rules": len(keyword.rules), "keyword": {}, "embedding": None}
    all_mixes = mixes()
    detect_utterances(utts(all_mixes["samples"], 300), keyword, nlp)  # compile matchers, warm up
    for name, rows in all_mixes.items():
        batch = utts(rows, args.n)
        wall, cpu, found = timed(lambda b=batch: detect_utterances(b, keyword, nlp), args.repeat)
        prefiltered = sum(1 for u in batch if u.lang in nlp and
                          compile_rules(keyword, nlp[u.lang], u.lang).may_match(u.text))
        row = {"utterances": len(batch), "distinct_lines": len(rows),
               "with_cue": sum(map(bool, found)), "passed_prefilter": prefiltered,
               "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
               "per_s_wall": round(len(batch) / wall), "per_s_cpu": round(len(batch) / cpu),
               "cpu_us_per_utterance": round(cpu / len(batch) * 1e6, 1)}
        report["keyword"][name] = row
        print(f"keyword rules, {name} mix ({len(rows)} lines repeated to {len(batch)}; "
              f"{row['with_cue'] / len(batch):.0%} with a cue, {prefiltered / len(batch):.0%} past the "
              f"prefilter): {row['per_s_wall']:,} utterances/s wall, {row['per_s_cpu']:,} /s CPU "
              f"({row['cpu_us_per_utterance']} µs CPU each)")
    if args.no_embeddings:
        report["embedding"] = "skipped (--no-embeddings)"
    else:
        embedding = RulePack([r for r in pack.rules if isinstance(r, EmbeddingRule)])
        embedder = load_embedder()
        source = all_mixes.get("cue-heavy", all_mixes["samples"])
        detect_utterances(utts(source, 50), embedding, nlp, embedder, InMemoryEmbeddingCache())
        batch = utts(source, args.n_embed)
        cache = InMemoryEmbeddingCache()
        cold_wall, cold_cpu, _ = timed(lambda: detect_utterances(batch, embedding, nlp, embedder, cache), 1)
        warm_wall, warm_cpu, _ = timed(lambda: detect_utterances(batch, embedding, nlp, embedder, cache),
                                       args.repeat)
        report["embedding"] = {
            "rules": len(embedding.rules), "utterances": len(batch),
            "cold_per_s_wall": round(len(batch) / cold_wall, 1), "cold_per_s_cpu": round(len(batch) / cold_cpu, 1),
            "warm_per_s_wall": round(len(batch) / warm_wall), "warm_per_s_cpu": round(len(batch) / warm_cpu),
            "warm_over_cold_wall": round(cold_wall / warm_wall, 1)}
        e = report["embedding"]
        print(f"embedding rules ({len(embedding.rules)} rules), cold: {e['cold_per_s_wall']:,} utterances/s "
              f"wall, {e['cold_per_s_cpu']:,} /s CPU")
        print(f"embedding rules, warm cache: {e['warm_per_s_wall']:,} utterances/s wall, "
              f"{e['warm_per_s_cpu']:,} /s CPU ({e['warm_over_cold_wall']:,}x faster than encoding)")
    if not args.no_learned:
        report["learned"] = bench_learned(pack, nlp, utts, all_mixes, args)
    report["machine"]["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


def bench_learned(pack, nlp, utts, all_mixes, args) -> dict:
    """The default pack as ingest runs it (keyword + learned) with embeddings already cached, and a
    re-score of N stored utterances whose vectors come from the store's embedding cache (SQLite)."""
    import tempfile

    from pipeline import store
    from pipeline.cues.detect import Utterance, detect_utterances
    from pipeline.cues.embeddings import InMemoryEmbeddingCache, encode
    from pipeline.cues.learned import load_learned
    from pipeline.cues.rule_files import KeywordRule, LearnedRule, RulePack
    from pipeline.types import clauses

    learned = load_learned(pack, ROOT / "models" / "cues")
    default = RulePack([r for r in pack.rules if isinstance(r, (KeywordRule, LearnedRule))])
    rows = all_mixes["calls"] if "calls" in all_mixes else all_mixes["samples"]
    distinct = utts(rows, min(len(rows), 2000))
    cache = InMemoryEmbeddingCache()
    t = time.perf_counter()
    encode([u.text for u in distinct], learned.embedder, cache)
    encode_per_s = len(distinct) / (time.perf_counter() - t)
    # the statements of turns of several, which the learned model may also read (DetectOptions.
    # clause_gate): ingest stores their embeddings beside the turns' at the first scoring
    pieces = {u.text: clauses(u.text) for u in distinct}
    flat = [c for parts in pieces.values() for c in parts]
    encode(flat, learned.embedder, cache)
    print(f"{sum(map(bool, pieces.values()))} of {len(distinct)} distinct lines hold two statements or more")
    batch = [distinct[i % len(distinct)] for i in range(args.n)]
    vectors_only = cache.copy()  # embeddings, no learned probabilities yet
    detect_utterances(batch[:500], default, nlp, None, vectors_only.copy(), learned=learned)  # warm up
    wall, cpu, found = timed(lambda: detect_utterances(batch, default, nlp, None, vectors_only.copy(),
                                                       learned=learned), args.repeat)
    detect_utterances(batch, default, nlp, None, cache, learned=learned)  # now the probabilities too
    p_wall, p_cpu, _ = timed(lambda: detect_utterances(batch, default, nlp, None, cache, learned=learned),
                             args.repeat)
    out = {"rules": len(default.rules), "utterances": len(batch), "encoder": learned.embedder.name,
           "encode_per_s_wall": round(encode_per_s, 1),
           "warm_per_s_wall": round(len(batch) / wall), "warm_per_s_cpu": round(len(batch) / cpu),
           "probabilities_cached_per_s_wall": round(len(batch) / p_wall),
           "probabilities_cached_per_s_cpu": round(len(batch) / p_cpu)}
    print(f"keyword + learned rules, embeddings cached: {out['warm_per_s_wall']:,} utterances/s wall, "
          f"{out['warm_per_s_cpu']:,} /s CPU (encoding new lines: {out['encode_per_s_wall']:,} /s)")
    print(f"keyword + learned rules, embeddings and learned probabilities cached (a re-score): "
          f"{out['probabilities_cached_per_s_wall']:,} utterances/s wall, "
          f"{out['probabilities_cached_per_s_cpu']:,} /s CPU")
    # N stored utterances, vectors in utterance_embeddings: the re-score after a rule edit
    with tempfile.TemporaryDirectory() as tmp:
        engine = store.make_engine(f"sqlite:///{tmp}/bench.db")
        store.init_db(engine)
        texts = [f"{u.text} [{i}]" for i, u in enumerate(batch[i % len(batch)] for i in range(args.n_store))]
        base = {u.text: v for u, v in zip(distinct, encode([u.text for u in distinct], learned.embedder, cache))}
        base.update(zip(flat, encode(flat, learned.embedder, cache)))

        def vectors_of(t: str) -> dict:
            """The stored line's vector and its statements' (each the vector of the same statement
            without the numbered suffix)."""
            line = t.rsplit(" [", 1)[0]
            found = {t: base[line]}
            own, plain = clauses(t), pieces.get(line, [])
            if len(own) == len(plain):
                found.update({c: base[b] for c, b in zip(own, plain)})
            return found

        with store.session_scope(engine) as session:
            db = store.DbEmbeddingCache(session)
            for k in range(0, len(texts), 20000):
                db.put_many({c: v for t in texts[k:k + 20000] for c, v in vectors_of(t).items()},
                            learned.embedder.name)
        stored = [Utterance(t, "customer", "en") for t in texts]

        def score(rules: RulePack) -> dict:
            t0, c0 = time.perf_counter(), time.process_time()
            with store.session_scope(engine) as session:
                db = store.DbEmbeddingCache(session)
                hits = 0
                for k in range(0, len(stored), 5000):
                    hits += sum(map(bool, detect_utterances(stored[k:k + 5000], rules, nlp, None, db,
                                                            learned=learned)))
            return {"utterances": len(stored), "wall_s": round(time.perf_counter() - t0, 2),
                    "cpu_s": round(time.process_time() - c0, 2), "with_cue": hits}

        # the first scoring, as ingest does it: learned probabilities computed and stored
        out["first_score"] = score(default)
        # a manager edits a keyword rule (one more phrase, a new version): every stored line again
        edited = RulePack([_edited(r) if r.name == _EDITED_RULE else r for r in default.rules])
        assert any(r.name == _EDITED_RULE for r in default.rules), f"no rule {_EDITED_RULE} in the pack"
        out["rescore"] = {**score(edited), "edited_rule": _EDITED_RULE}
        engine.dispose()
    f, r = out["first_score"], out["rescore"]
    print(f"first scoring of {f['utterances']:,} stored utterances (vectors from the store, learned "
          f"probabilities computed and stored): {f['wall_s']} s wall, {f['cpu_s']} s CPU")
    print(f"re-scoring them after an edit of {_EDITED_RULE}: {r['wall_s']} s wall, {r['cpu_s']} s CPU "
          f"({f['with_cue']:,} then {r['with_cue']:,} with a cue)")
    return out


_EDITED_RULE = "cancellation_intent.en.keywords"


def _edited(rule):
    return rule.model_copy(update={"phrases": [*rule.phrases, "walk away from the contract"],
                                   "version": rule.version + 1})


if __name__ == "__main__":
    main()
