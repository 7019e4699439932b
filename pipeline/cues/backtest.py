"""A rule pack over every stored call: how often each rule fires in lost and in kept accounts.

The one part of cue detection that reads the store: it streams stored segments in chunks and
runs the plain detection functions over them.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline import store
from pipeline.cues.detect import DetectOptions, LearnedCues, Utterance, detect_utterances
from pipeline.cues.embeddings import EmbeddingCache
from pipeline.cues.rule_files import RulePack


def backtest(session: Session, pack: RulePack, nlp: dict, embedder=None, cache: EmbeddingCache | None = None,
             options: DetectOptions = DetectOptions(), chunk: int = 5000,
             learned: LearnedCues | None = None) -> list[dict]:
    """Re-run the pack over stored calls; per rule, hit rate in lost vs kept accounts, and lift.

    Accounts counted are those with at least one transcribed call (a stored segment). An account
    is "hit" by a rule when the rule fires on any segment of any of its calls; "lost" is
    Account.status == "lost", every other status counts as kept. Every rule is counted on its
    own (one_cue_per_label is switched off, so a keyword rule cannot hide an embedding rule of
    the same label). lift = hit rate in lost / hit rate in kept, None where no kept account is hit.
    """
    options = replace(options, one_cue_per_label=False)
    status = dict(session.execute(select(store.Account.id, store.Account.status)).all())
    segments = session.execute(
        select(store.Call.account_id, store.Call.language, store.Call.duration, store.Segment.idx,
               store.Segment.speaker, store.Segment.start, store.Segment.end, store.Segment.text)
        .join(store.Segment, store.Segment.call_id == store.Call.id)
        .where(store.Call.account_id.is_not(None))
        .order_by(store.Call.id, store.Segment.idx)
        .execution_options(yield_per=chunk))
    hits: dict[str, set] = {r.name: set() for r in pack.rules}
    accounts: set = set()
    for rows in segments.partitions():  # `chunk` segments at a time: memory stays bounded
        utts = [Utterance(r.text, r.speaker, (r.language or "en").split("-")[0], r.start, r.end,
                          r.duration, r.idx) for r in rows]
        owner = [r.account_id for r in rows]
        accounts.update(owner)
        for account, cues in zip(owner, detect_utterances(utts, pack, nlp, embedder, cache, options, learned)):
            for c in cues:
                hits[c.rule].add(account)
    lost = {a for a in accounts if status.get(a) == "lost"}
    kept = accounts - lost
    out = []
    for rule in pack.rules:
        h = hits[rule.name]
        in_lost = len(h & lost) / len(lost) if lost else 0.0
        in_kept = len(h & kept) / len(kept) if kept else 0.0
        out.append({"rule": rule.name, "label": rule.label, "version": rule.version,
                    "accounts_hit": len(h), "hit_rate_lost": round(in_lost, 3),
                    "hit_rate_kept": round(in_kept, 3),
                    "lift": round(in_lost / in_kept, 2) if in_kept else None,
                    "lost_accounts": len(lost), "kept_accounts": len(kept)})
    return out
