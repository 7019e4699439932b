"""Import spaCy without torch: thinc (spaCy's layer library) imports torch whenever it is installed.

churnwatch's spaCy pipelines (en_core_web_sm, blank de/ro/ko) run on thinc's NumPy ops and never
touch torch, but `import spacy` → `thinc.compat` imports it anyway when the package is there
(openai-whisper and resemblyzer bring it): about 4 s and 200 MB of every ingest's start-up on
two cores (measured with cProfile on `load_pack`). Hiding torch while spaCy is first imported
makes thinc take its no-torch path; torch itself still imports normally afterwards (for the
mono path's speaker encoder or the openai-whisper engine). No effect when spaCy or torch is
already imported.
"""

from __future__ import annotations

import sys
from types import ModuleType


def import_spacy() -> ModuleType:
    """`import spacy`, with thinc's torch support left off if neither is imported yet."""
    if "spacy" not in sys.modules and "torch" not in sys.modules:
        sys.modules["torch"] = None  # type: ignore[assignment]  # `import torch` raises ImportError
        try:
            import spacy  # noqa: F401
        finally:
            if sys.modules.get("torch", 0) is None:
                del sys.modules["torch"]
    import spacy

    return spacy
