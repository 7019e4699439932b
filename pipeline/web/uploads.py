"""Uploaded recordings on disk: a generated name under the data folder, a size limit, a sniff.

The client's file name never reaches a path: only its suffix is looked at (and must be an audio
suffix); the bytes are written to `<data>/uploads/YYYY-MM/<random>.<suffix>`, counted against the
limit as they arrive, and the first bytes must look like audio (WAV, FLAC, Ogg, MP3, MP4/M4A).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path

from pipeline.flow.worker import AUDIO_SUFFIXES, SubmissionError

CHUNK = 1 << 20


def check_suffix(filename: str | None) -> str:
    suffix = Path(filename or "").suffix.lower()
    if suffix not in AUDIO_SUFFIXES:
        shown = f"{Path(filename).name!r}" if filename else "The file"
        raise SubmissionError(f"{shown} is not a recording this service reads; send a "
                              f"{', '.join(s.lstrip('.') for s in AUDIO_SUFFIXES)} file.", status=415)
    return suffix


def looks_like_audio(head: bytes) -> bool:
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return True
    if head[:4] in (b"fLaC", b"OggS") or head[:3] == b"ID3":
        return True
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:  # an MPEG audio frame
        return True
    if head[4:8] == b"ftyp":  # MP4 / M4A
        return True
    return False


def save_upload(stream, data_dir: Path, suffix: str, max_bytes: int) -> Path:
    """Copy the upload to a generated name; raise SubmissionError (and keep nothing) when it is
    too large, empty or not audio."""
    now = datetime.now(timezone.utc)
    folder = Path(data_dir) / "uploads" / f"{now:%Y-%m}"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{uuid.uuid4().hex}{suffix}"
    size = 0
    head = b""
    try:
        with open(target, "xb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise SubmissionError(f"The recording is larger than the limit of {max_bytes // (1 << 20)} MB.",
                                          status=413)
                if len(head) < 16:
                    head += chunk[:16]
                out.write(chunk)
        if size == 0:
            raise SubmissionError("The uploaded file is empty.", status=400)
        if not looks_like_audio(head):
            raise SubmissionError("The uploaded file does not look like audio (WAV, FLAC, Ogg, MP3 or M4A), "
                                  "whatever its name says.", status=415)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target
