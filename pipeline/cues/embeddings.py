"""Embedding rules: sentence vectors, their cache, and nearest-example matching.

    embedder = load_embedder()                     # the packaged all-MiniLM-L6-v2, offline
    vectors = encode(texts, embedder, InMemoryEmbeddingCache())

Vectors are unit length, so cosine similarity is a dot product. The cache keys vectors by
(model, sha256(text)): a rule edit re-scans stored calls without re-encoding them. The store
has the same interface over the database (pipeline.store.DbEmbeddingCache).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from pipeline.errors import ChurnwatchError
from pipeline.cues.rule_files import EmbeddingRule


class EmbeddingCache(Protocol):
    """Stores utterance vectors per model, so a rule edit re-scans without re-encoding.

    Same shape as pipeline.store.DbEmbeddingCache (table utterance_embeddings).
    """

    def get_many(self, texts: list[str], model: str) -> dict[str, np.ndarray]:
        """The vectors the cache holds, by text; texts it lacks are left out."""

    def put_many(self, vectors: dict[str, np.ndarray], model: str) -> None:
        """Store vectors by text."""


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class InMemoryEmbeddingCache:
    """EmbeddingCache in a dict keyed by (model, sha256(text)); float32 vectors."""

    def __init__(self):
        self._vectors: dict[tuple[str, str], np.ndarray] = {}

    def get_many(self, texts, model):
        found = {}
        for t in texts:
            v = self._vectors.get((model, text_key(t)))
            if v is not None:
                found[t] = v
        return found

    def put_many(self, vectors, model):
        for t, v in vectors.items():
            self._vectors[(model, text_key(t))] = np.asarray(v, dtype=np.float32)

    def __len__(self):
        return len(self._vectors)

    def copy(self) -> InMemoryEmbeddingCache:
        """A new cache holding the same vectors (e.g. rule examples encoded once per batch)."""
        other = InMemoryEmbeddingCache()
        other._vectors = dict(self._vectors)
        return other


@dataclass(frozen=True)
class Embedder:
    name: str  # the name rules refer to in `model:`
    model: Any  # a sentence_transformers.SentenceTransformer (or anything with .encode)


def load_embedder(model: Any = None, name: str = "all-MiniLM-L6-v2") -> Embedder:
    """Wrap a loaded model, or load the packaged all-MiniLM-L6-v2 offline."""
    if model is None:
        from pipeline.weights.manifest import load_embedding_model

        model = load_embedding_model(name)
    return Embedder(name=name, model=model)


def encode(texts: list[str], embedder: Embedder, cache: EmbeddingCache | None, batch_size=256):
    """Unit vectors for texts, taking what the cache has and encoding (and storing) the rest."""
    def compute(missing):
        return embedder.model.encode(missing, batch_size=batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)

    return cached_rows(texts, embedder.name, cache, compute, width=0)


def cached_rows(texts: list[str], key: str, cache: EmbeddingCache | None, compute, width: int):
    """One float32 row per text: what the cache holds under `key`, `compute(missing texts)` (an
    array, one row each) for the rest, which are then stored. Each distinct text is looked up and
    computed once. No texts: an empty (0, width) array."""
    unique = list(dict.fromkeys(texts))
    found = dict(cache.get_many(unique, key)) if cache is not None else {}
    missing = [t for t in unique if t not in found]
    if missing:
        fresh = dict(zip(missing, np.asarray(compute(missing), dtype=np.float32)))
        if cache is not None:
            cache.put_many(fresh, key)
        found.update(fresh)
    if not texts:
        return np.zeros((0, width), dtype=np.float32)
    return np.stack([np.asarray(found[t], dtype=np.float32) for t in texts])


def embedding_hits(texts: list[str], rules: list[EmbeddingRule], todo: dict[str, list[int]],
                   embedder: Embedder, cache: EmbeddingCache | None,
                   batch_size: int = 256) -> list[tuple[int, EmbeddingRule, float, str]]:
    """(text index, rule, similarity, why) for each text that is near enough a rule's examples.

    `todo` names, per rule, the indices of the texts the rule reads (speaker, language, part of
    the call were checked by the caller). Each text is encoded once, whatever the rule count.
    """
    for rule in rules:
        if rule.model != embedder.name:
            raise ChurnwatchError(
                f"Rule {rule.name!r} was tuned for embedding model {rule.model!r}, but "
                f"{embedder.name!r} is loaded. Load that model or change the rule's `model:`.")
    wanted = sorted({i for ids in todo.values() for i in ids})
    if not wanted:
        return []
    vectors = encode([texts[i] for i in wanted], embedder, cache, batch_size)
    row = {i: n for n, i in enumerate(wanted)}
    hits = []
    for rule in rules:
        ids = todo.get(rule.name, [])
        if not ids:
            continue
        ex = encode(list(rule.examples), embedder, cache, batch_size)
        u = vectors[[row[i] for i in ids]]
        sims = u @ ex.T
        best = sims.argmax(axis=1)
        top = sims[np.arange(len(ids)), best]
        if rule.counter_examples:
            counter = (u @ encode(list(rule.counter_examples), embedder, cache, batch_size).T).max(axis=1)
        else:
            counter = np.full(len(ids), -1.0)
        for k, i in enumerate(ids):
            if top[k] >= rule.threshold and top[k] >= counter[k] + rule.margin:
                why = f"near example {rule.examples[best[k]]!r} ({top[k]:.2f})"
                hits.append((i, rule, float(top[k]), why))
    return hits


__all__ = [
    "Embedder",
    "cached_rows",
    "EmbeddingCache",
    "InMemoryEmbeddingCache",
    "embedding_hits",
    "encode",
    "load_embedder",
    "text_key",
]
