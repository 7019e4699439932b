"""Cue detection: the rule files managers edit, keyword and embedding matching, evaluation.

Detection is plain functions over plain data (`Utterance`, `Transcript` in, `Cue` out); only
`backtest`, the evaluation over stored calls, reads the store.
"""

from pipeline.cues.detect import DetectOptions, Utterance, detect_text, detect_utterances
from pipeline.cues.embeddings import Embedder, InMemoryEmbeddingCache, load_embedder
from pipeline.cues.languages import LANGS, load_nlp
from pipeline.cues.rule_files import (
    EmbeddingRule,
    KeywordRule,
    RulePack,
    check_dir,
    load_pack,
    read_labeled,
    score_predictions,
)

__all__ = [
    "DetectOptions", "Embedder", "EmbeddingRule", "InMemoryEmbeddingCache", "KeywordRule", "LANGS", "RulePack",
    "Utterance", "check_dir", "detect_text", "detect_utterances", "load_embedder", "load_nlp",
    "load_pack", "read_labeled", "score_predictions",
]
