"""Guards against Whisper's failure modes: repetition loops (a window decoded as the same
phrase over and over). `pipeline.speech.transcribe` re-decodes a looping window with temperature and,
if it still loops, collapses the repeats with `collapse_repetition`.
"""

from __future__ import annotations

import re
import zlib


def compression_ratio(text: str) -> float:
    """gzip compression ratio of text; above ~2.4 Whisper's output is usually a loop."""
    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data))) if data else 0.0


def _tokens(text: str) -> list[str]:
    return re.findall(r"[\w']+", text.lower())


def repeated_ngram(text: str, max_n: int = 8, min_repeats: int = 3) -> tuple[int, int] | None:
    """(n, repeats) of the longest-running n-gram repeated back to back, or None.

    One-word repeats need `min_repeats + 2` (people do say "no, no, no").
    """
    words = _tokens(text)
    best = None
    for n in range(1, max_n + 1):
        need = min_repeats + 2 if n == 1 else min_repeats
        for i in range(len(words) - n * need + 1):
            gram, k = words[i:i + n], 1
            while words[i + k * n: i + (k + 1) * n] == gram:
                k += 1
            if k >= need and (best is None or k * n > best[0] * best[1]):
                best = (n, k)
    return best


def is_looping(text: str, threshold: float = 2.4) -> bool:
    """True for repetition loops: a high compression ratio or an n-gram repeated back to back."""
    return (len(text) > 40 and compression_ratio(text) > threshold) or repeated_ngram(text) is not None


def collapse_repetition(text: str, max_n: int = 8, min_repeats: int = 3) -> str:
    """Keep one copy of any word n-gram repeated back to back `min_repeats` times or more."""
    words = text.split()
    norm = [re.sub(r"[^\w']", "", w.lower()) for w in words]
    for n in range(1, max_n + 1):
        need = min_repeats + 2 if n == 1 else min_repeats
        i, out, out_n = 0, [], []
        while i < len(words):
            gram, k = norm[i:i + n], 1
            while len(gram) == n and norm[i + k * n: i + (k + 1) * n] == gram:
                k += 1
            if k >= need:
                out += words[i:i + n]
                out_n += norm[i:i + n]
                i += k * n
            else:
                out.append(words[i])
                out_n.append(norm[i])
                i += 1
        words, norm = out, out_n
    return " ".join(words)
