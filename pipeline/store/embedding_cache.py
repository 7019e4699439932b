"""Sentence embeddings kept in the store, so a rule edit re-scores stored lines without re-encoding."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.store.lookups import text_sha256
from pipeline.store.tables import UtteranceEmbedding


class DbEmbeddingCache:
    """Sentence embeddings kept in the store (table utterance_embeddings), keyed by text and model."""

    def __init__(self, session: Session):
        self.session = session

    def get_many(self, texts: list[str], model: str) -> dict[str, Any]:
        import numpy as np

        keys = {text_sha256(t): t for t in texts}
        found: dict[str, Any] = {}
        key_list = list(keys)
        for i in range(0, len(key_list), 500):
            rows = self.session.execute(
                select(UtteranceEmbedding).where(
                    UtteranceEmbedding.model == model,
                    UtteranceEmbedding.text_sha256.in_(key_list[i : i + 500]),
                )
            ).scalars()
            for row in rows:
                found[keys[row.text_sha256]] = np.frombuffer(row.vector, dtype="<f4")
        return found

    def put_many(self, vectors: dict[str, Any], model: str) -> None:
        import numpy as np

        existing = self.get_many(list(vectors), model)
        for text, vec in vectors.items():
            if text in existing:
                continue
            arr = np.asarray(vec, dtype="<f4")
            self.session.add(
                UtteranceEmbedding(
                    text_sha256=text_sha256(text), model=model, dim=arr.shape[0], vector=arr.tobytes()
                )
            )
        self.session.flush()
