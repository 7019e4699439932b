"""Read a CTranslate2 Whisper `model.bin` and convert it, losslessly, to an openai-whisper checkpoint.

The file layout is CTranslate2's `ModelSpec._serialize` (binary version 6): a header (version,
spec name, spec revision), the named variables (name, rank, shape, dtype id, byte count, raw
data), then aliases (e.g. `decoder/projection/weight` -> `decoder/embeddings/weight`). The names
follow `WhisperSpec` (whisper_spec.py) and the transformer specs it builds on.

The converted checkpoint is `{"dims": ..., "model_state_dict": ..., "alignment_heads": ...}`:
`whisper.load_model(path)` reads it (ignoring the extra key); `pipeline.weights.manifest.load_openai_whisper`
also applies the stored alignment heads, which word timestamps need. Tensors keep their stored
dtype (float16 for the packaged models), so the checkpoint holds exactly the weights that
faster-whisper runs. Module-level code imports nothing heavy; torch is imported when converting.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from pipeline.errors import ChurnwatchError

# DataType ids in CTranslate2's include/ctranslate2/types.h (order matters).
_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_NUMPY = {"float32": np.float32, "int8": np.int8, "int16": np.int16, "int32": np.int32,
          "float16": np.float16, "bfloat16": np.uint16}
BINARY_VERSION = 6
ENGLISH_ONLY_VOCAB = 51864  # a 51864-token vocabulary is an English-only (".en") model


@dataclass(frozen=True)
class Variable:
    name: str
    shape: tuple[int, ...]
    dtype: str  # one of _DTYPES
    offset: int  # byte offset of the raw data in the file
    nbytes: int


@dataclass(frozen=True)
class Ct2Header:
    spec: str  # "WhisperSpec" for Whisper models
    revision: int
    variables: dict[str, Variable]
    aliases: dict[str, str]  # alias name -> variable name


def _string(f: BinaryIO) -> str:
    (n,) = struct.unpack("<H", f.read(2))
    return f.read(n)[:-1].decode("utf-8")


def read_header(path: Path) -> Ct2Header:
    """Index the variables of a CTranslate2 model.bin without reading their data."""
    try:
        with open(path, "rb") as f:
            (version,) = struct.unpack("<I", f.read(4))
            if version != BINARY_VERSION:
                raise ChurnwatchError(
                    f"{path}: CTranslate2 binary version {version}; this converter reads version "
                    f"{BINARY_VERSION}. Re-export the model with ctranslate2 >= 3."
                )
            spec = _string(f)
            (revision,) = struct.unpack("<I", f.read(4))
            (count,) = struct.unpack("<I", f.read(4))
            variables = {}
            for _ in range(count):
                name = _string(f)
                (rank,) = struct.unpack("<B", f.read(1))
                shape = struct.unpack(f"<{rank}I", f.read(4 * rank))
                dtype_id, nbytes = struct.unpack("<BI", f.read(5))
                variables[name] = Variable(name, shape, _DTYPES[dtype_id], f.tell(), nbytes)
                f.seek(nbytes, 1)
            (n_alias,) = struct.unpack("<I", f.read(4))
            aliases = {_string(f): _string(f) for _ in range(n_alias)}
    except (struct.error, IndexError, UnicodeDecodeError) as e:
        raise ChurnwatchError(
            f"{path}: not a readable CTranslate2 model.bin ({e}); the file is truncated or not a "
            "CTranslate2 model. Reinstall it with `churnwatch models install NAME`."
        )
    return Ct2Header(spec, revision, variables, aliases)


def _read(f: BinaryIO, var: Variable) -> np.ndarray:
    f.seek(var.offset)
    data = np.frombuffer(bytearray(f.read(var.nbytes)), dtype=_NUMPY[var.dtype])
    return data.reshape(var.shape) if var.shape else data[0]


def vocab_size(header: Ct2Header) -> int:
    return header.variables["decoder/embeddings/weight"].shape[0]


def dims_of(header: Ct2Header, read_scalar: Callable[[str], int]) -> dict:
    """openai-whisper's ModelDimensions, from tensor shapes and the stored head counts."""
    v = header.variables
    count = lambda stack: len({n.split("/")[1] for n in v
                              if n.startswith(stack + "/layer_") and n.split("/")[1][6:].isdigit()})
    return {
        "n_mels": v["encoder/conv1/weight"].shape[1],
        "n_audio_ctx": v["encoder/position_encodings/encodings"].shape[0],
        "n_audio_state": v["encoder/conv1/weight"].shape[0],
        "n_audio_head": read_scalar("encoder/num_heads"),
        "n_audio_layer": count("encoder"),
        "n_vocab": vocab_size(header),
        "n_text_ctx": v["decoder/position_encodings/encodings"].shape[0],
        "n_text_state": v["decoder/embeddings/weight"].shape[1],
        "n_text_head": read_scalar("decoder/num_heads"),
        "n_text_layer": count("decoder"),
    }


def _rename(name: str) -> str | None:
    """CTranslate2 variable name -> openai-whisper state-dict name (None: handled elsewhere)."""
    fixed = {
        "encoder/position_encodings/encodings": "encoder.positional_embedding",
        "decoder/position_encodings/encodings": "decoder.positional_embedding",
        "decoder/embeddings/weight": "decoder.token_embedding.weight",
        "encoder/layer_norm/gamma": "encoder.ln_post.weight",
        "encoder/layer_norm/beta": "encoder.ln_post.bias",
        "decoder/layer_norm/gamma": "decoder.ln.weight",
        "decoder/layer_norm/beta": "decoder.ln.bias",
    }
    if name in fixed:
        return fixed[name]
    parts = name.split("/")
    if parts[1] in ("conv1", "conv2"):
        return f"encoder.{parts[1]}.{parts[2]}"
    if not parts[1].startswith("layer_"):
        return None  # scalars (num_heads, activation, ...)
    stack, block, module, rest = parts[0], parts[1][6:], parts[2], parts[3:]
    prefix = f"{stack}.blocks.{block}"
    param = {"gamma": "weight", "beta": "bias"}.get(rest[-1], rest[-1])
    if rest[0] == "layer_norm":
        ln = {"self_attention": "attn_ln", "attention": "cross_attn_ln", "ffn": "mlp_ln"}[module]
        return f"{prefix}.{ln}.{param}"
    if module == "ffn":
        return f"{prefix}.mlp.{ {'linear_0': 0, 'linear_1': 2}[rest[0]] }.{param}"
    attn = "attn" if module == "self_attention" else "cross_attn"
    if module == "self_attention":
        if rest[0] == "linear_0":
            return None  # fused q/k/v: split below
        return f"{prefix}.{attn}.out.{param}"
    if rest[0] == "linear_1":
        return None  # cross-attention fused k/v: split below
    return f"{prefix}.{attn}.{ {'linear_0': 'query', 'linear_2': 'out'}[rest[0]] }.{param}"


def convert(model_bin: Path, config: dict, out_path: Path,
            on_tensor: Callable[[int, int], None] | None = None) -> dict:
    """Write an openai-whisper checkpoint for a CTranslate2 Whisper model; return its dims.

    `config` is the model's config.json (its `alignment_heads` are stored in the checkpoint).
    `on_tensor(done, total)` is called after each variable, for a progress bar.
    Quantized (int8/int16) models are refused: converting them back would not be lossless.
    """
    import torch

    header = read_header(model_bin)
    if header.spec != "WhisperSpec":
        raise ChurnwatchError(f"{model_bin}: a {header.spec} model, not Whisper; pick a Whisper model.")
    quantized = sorted({v.dtype for v in header.variables.values()
                        if v.dtype in ("int8", "int16") and len(v.shape) == 2})
    if quantized:
        raise ChurnwatchError(
            f"{model_bin}: weights are quantized ({', '.join(quantized)}); openai-whisper needs "
            "float weights. Use a float16/float32 CTranslate2 export for --engine openai-whisper."
        )

    def tensor(arr: np.ndarray, dtype: str):
        t = torch.from_numpy(np.ascontiguousarray(arr))
        return t.view(torch.bfloat16) if dtype == "bfloat16" else t

    state: dict = {}
    with open(model_bin, "rb") as f:
        dims = dims_of(header, lambda n: int(_read(f, header.variables[n])))
        d_audio, d_text = dims["n_audio_state"], dims["n_text_state"]
        total = len(header.variables)
        for i, (name, var) in enumerate(header.variables.items()):
            target = _rename(name)
            parts = name.split("/")
            if target is not None:
                state[target] = tensor(_read(f, var), var.dtype)
            elif len(parts) > 3 and parts[2] in ("self_attention", "attention"):
                arr = tensor(_read(f, var), var.dtype)
                prefix = f"{parts[0]}.blocks.{parts[1][6:]}"
                param = parts[4]
                d = d_audio if parts[0] == "encoder" else d_text
                if parts[2] == "self_attention":  # linear_0 = [q; k; v]
                    names = [f"{prefix}.attn.query", f"{prefix}.attn.key", f"{prefix}.attn.value"]
                else:  # cross-attention linear_1 = [k; v]
                    names = [f"{prefix}.cross_attn.key", f"{prefix}.cross_attn.value"]
                for j, n in enumerate(names):
                    if n.endswith(".key") and param == "bias":
                        continue  # openai's key has no bias; CTranslate2 pads it with zeros
                    state[f"{n}.{param}"] = arr[j * d:(j + 1) * d].clone()
            if on_tensor:
                on_tensor(i + 1, total)
    heads = [list(map(int, h)) for h in (config.get("alignment_heads") or [])]
    torch.save({"dims": dims, "model_state_dict": state, "alignment_heads": heads}, out_path)
    return dims


def alignment_heads_dump(heads: list[list[int]], n_layer: int, n_head: int) -> bytes:
    """The base85(gzip(bool mask)) form that `Whisper.set_alignment_heads` takes."""
    import base64
    import gzip

    mask = np.zeros((n_layer, n_head), dtype=bool)
    for layer, head in heads:
        mask[layer, head] = True
    return base64.b85encode(gzip.compress(mask.tobytes()))
