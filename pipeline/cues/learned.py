"""Learned cue models: one softmax over the cue types plus "no cue", on a sentence embedding and
word and character n-grams, trained from the example bank and managers' verdicts.

    bank = load_bank(Path("rules/examples"))
    model = fit_model(bank, embedder, labels)          # a minute or two, most of it encoding
    save_model(model, Path("models/cues"))             # learned.json, learned-weights.npz, manifest.json
    probabilities = model.probabilities(texts, vectors)

Why this shape (measured; see bench/rules.py and the README): a multilingual sentence encoder
(multilingual-e5-small) carries paraphrase ("we'll run it ourselves next year") across English,
German, Romanian and Korean; sentence embeddings are weak on the small words that turn a cue into
a harmless line ("fixed", "no complaints", "all square"), which word and character n-grams of the
bank pick up. One multinomial logistic regression over both, with an explicit "no cue" class fed
by a bank of hard negatives, beat one binary head per cue on the tuning sets (macro-F1 and false
alarms). Training is deterministic; the fitted weights are a compressed array file of a few
megabytes, so no encoder is fine-tuned and nothing comes from a hub. Each cue type's threshold is
chosen on out-of-fold predictions over the bank (never on the labeled test files), weighing
precision above recall: a rep who gets wrong warnings stops reading them. A short reply is read
together with the turn before it ("Still happy with the service?" "Not really, no.").
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.cues.embeddings import EmbeddingCache, Embedder, InMemoryEmbeddingCache, encode
from pipeline.cues.examples import Bank, Example
from pipeline.errors import ChurnwatchError
from pipeline.types import model_input

FORMAT = "churnwatch.learned-cues.v2"
MODEL_FILE = "learned.json"
WEIGHTS_FILE = "learned-weights.npz"
MANIFEST_FILE = "manifest.json"
NONE = "none"


@dataclass(frozen=True)
class FitOptions:
    # Inverse regularisation strength (larger fits the bank more closely). 32 rather than 16 since
    # the bank gained 310 hard negatives: on the read tuning sets (dev, fourth, odd halves of the
    # fifth and sixth) 16, 32, 64 flagged 16, 13, 16 of their 364 cue-free lines, mean macro-F1
    # 0.891, 0.893, 0.889 (the bank before: 19 lines, 0.897 with 16).
    c: float = 32.0
    # Folds for the out-of-fold predictions that choose each cue type's threshold.
    folds: int = 5
    # The threshold maximises F-beta on out-of-fold predictions; beta < 1 weighs precision higher.
    # 0.35 rather than 0.5: on lines the bank never saw, 0.5 flagged too many cue-free lines.
    beta: float = 0.35
    # Added to each threshold F-beta chose: out-of-fold predictions come from the bank's own kind of
    # lines, and lines it never saw get less sure probabilities. Chosen on the tuning sets (dev,
    # fourth set, half of the fifth), never on the held-out ones: with the bank of 4,592 lines,
    # 0.10 took their cue-free lines flagged from 5.7/7.3/6.8% to 2.9/2.7/4.1%, macro-F1 within
    # -0.02 of no margin.
    threshold_margin: float = 0.10
    # F-beta is averaged over this many 0.01 steps either side before its peak is taken: the raw
    # curve is jagged, and its peak moved one threshold by 0.11 when 3 of 4,592 bank lines went.
    smooth_steps: int = 10
    # Thresholds stay inside this range, so a cue type with few examples cannot fire on anything.
    min_threshold: float = 0.2
    max_threshold: float = 0.95
    # Word n-grams (1-2) and character n-grams (2-5, within words) seen in at least this many examples.
    min_df: int = 2
    max_char_ngrams: int = 40000
    # A verdict from a manager counts this many times as much as a bank example.
    verdict_weight: float = 3.0


class NGrams:
    """Word 1-2-grams and character 2-5-grams within words, sublinear tf-idf, unit length.

    Fitted on the bank; kept as vocabularies and idf weights so a saved model needs no pickles.
    """

    def __init__(self, word_vocab: list[str], word_idf, char_vocab: list[str], char_idf):
        self.word_vocab, self.char_vocab = list(word_vocab), list(char_vocab)
        self.word_idf, self.char_idf = np.asarray(word_idf, np.float64), np.asarray(char_idf, np.float64)
        self._word_index = {g: i for i, g in enumerate(self.word_vocab)}
        self._char_index = {g: i for i, g in enumerate(self.char_vocab)}
        self._word_grams: dict[str, list[int]] = {}  # word -> its character n-grams' columns

    @classmethod
    def fit(cls, texts: list[str], options: FitOptions) -> NGrams:
        from sklearn.feature_extraction.text import TfidfVectorizer

        w = TfidfVectorizer(ngram_range=(1, 2), min_df=options.min_df, sublinear_tf=True).fit(texts)
        c = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=options.min_df, sublinear_tf=True,
                            max_features=options.max_char_ngrams).fit(texts)
        wv = sorted(w.vocabulary_, key=w.vocabulary_.get)
        cv = sorted(c.vocabulary_, key=c.vocabulary_.get)
        return cls(wv, w.idf_, cv, c.idf_)

    @property
    def size(self) -> int:
        return len(self.word_vocab) + len(self.char_vocab)

    def counts(self, texts: list[str]):
        """Word and character n-gram counts (two CSR matrices), the counts scikit-learn's
        CountVectorizer gives with these vocabularies (tests/test_learned.py compares them). Counted
        here because its analyzer rebuilt every word's character n-grams in every line (60% of the
        time of re-scoring 100,000 stored lines). Here a word's n-gram columns are worked out once
        (`_word_grams`), and the character counts are one sparse product: (texts x distinct words
        of the batch) times (those words x their n-grams), so Python touches words, not n-grams."""
        from scipy import sparse

        words, grams = self._word_index, self._word_grams
        if len(grams) > 500_000:  # a bound on the memo for a long-running worker
            grams.clear()
        w_cols: list[int] = []
        w_ptr = [0]
        local: dict[str, int] = {}  # the batch's distinct whitespace words -> row of `by_word`
        t_cols: list[int] = []
        t_ptr = [0]
        for text in texts:
            text = text.lower()
            tokens = _TOKEN.findall(text)
            w_cols += [words[g] for g in tokens if g in words]
            w_cols += [words[g] for g in map(" ".join, zip(tokens, tokens[1:])) if g in words]
            w_ptr.append(len(w_cols))
            t_cols += [local.setdefault(word, len(local)) for word in text.split()]
            t_ptr.append(len(t_cols))
        g_cols: list[int] = []
        g_ptr = [0]
        for word in local:  # insertion order = row order
            cols = grams.get(word)
            if cols is None:
                cols = grams[word] = self._char_columns(word)
            g_cols += cols
            g_ptr.append(len(g_cols))

        def csr(cols, ptr, shape):
            m = sparse.csr_matrix((np.ones(len(cols), np.int64), np.asarray(cols, np.int64),
                                   np.asarray(ptr, np.int64)), shape=shape)
            m.sum_duplicates()
            return m

        word_counts = csr(w_cols, w_ptr, (len(texts), len(self.word_vocab)))
        per_text = csr(t_cols, t_ptr, (len(texts), len(local)))
        by_word = csr(g_cols, g_ptr, (len(local), len(self.char_vocab)))
        char_counts = (per_text @ by_word).tocsr()
        char_counts.sum_duplicates()
        char_counts.eliminate_zeros()
        return [word_counts, char_counts]

    def _char_columns(self, word: str) -> list[int]:
        chars = self._char_index
        return [chars[g] for g in _char_wb_ngrams(word) if g in chars]

    def weighted(self, texts: list[str]) -> list:
        """The word and the character part of the features (two CSR matrices): sublinear tf times
        idf, each part scaled to unit length per row."""
        out = []
        for counts, idf in zip(self.counts(texts), (self.word_idf, self.char_idf)):
            m = counts.astype(np.float64)
            rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
            m.data = (1.0 + np.log(m.data)) * idf[m.indices]
            norms = np.sqrt(np.bincount(rows, weights=m.data * m.data, minlength=m.shape[0]))
            m.data /= np.maximum(norms, 1e-12)[rows]
            out.append(m)
        return out

    def transform(self, texts: list[str]):
        from scipy import sparse

        return sparse.hstack(self.weighted(texts)).tocsr()


_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token pattern


def _char_wb_ngrams(word: str, low: int = 2, high: int = 5) -> list[str]:
    """A word's character n-grams, padded with a space each side, as scikit-learn's "char_wb"
    analyzer cuts them (a word shorter than n counts once, whole)."""
    w = f" {word} "
    out = []
    for n in range(low, high + 1):
        out += [w[i:i + n] for i in range(max(1, len(w) - n + 1))]
        if len(w) <= n:
            break
    return out


@dataclass
class LearnedModel:
    encoder: str  # the embedding model the weights were fitted on
    bank_digest: str  # the example bank they learned from
    classes: list[str]  # "none" first, then the cue types
    coef: np.ndarray  # (classes, embedding dim + n-grams)
    intercept: np.ndarray  # (classes,)
    ngrams: NGrams
    labels: dict[str, dict[str, Any]]  # cue type → {"threshold", "cv": {...}, "examples"}
    examples: list[dict[str, Any]] = field(default_factory=list)  # text, labels, source (for explanations)
    vectors: np.ndarray | None = None  # the examples' embeddings, same order
    verdicts: int = 0  # managers' verdicts included in the fit
    version: str = ""  # content hash of the weights: named in every cue the model produces

    def probabilities(self, inputs: list[str], vectors: np.ndarray) -> dict[str, np.ndarray]:
        """P(cue type) per input text (as `model_input` builds it), from its embedding and n-grams."""
        p = self.class_probabilities(inputs, vectors)
        return {label: p[:, self.classes.index(label)] for label in self.labels}

    def class_probabilities(self, inputs: list[str], vectors: np.ndarray) -> np.ndarray:
        """P over `classes` ("none" first) per input, one row each. The three blocks of weights
        (embedding, word, character n-grams) are applied one by one: the same sums as one product
        over the stacked features, without stacking dense vectors into a sparse matrix."""
        if not len(inputs):
            return np.zeros((0, len(self.classes)))
        vectors = np.asarray(vectors, np.float64)
        coef = self.coef.astype(np.float64)
        d, nw = vectors.shape[1], len(self.ngrams.word_vocab)
        word, char = self.ngrams.weighted(inputs)
        z = vectors @ coef[:, :d].T + word @ coef[:, d:d + nw].T + char @ coef[:, d + nw:].T + self.intercept
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        return p

    def nearest(self, vector: np.ndarray, label: str, k: int = 2) -> list[dict[str, Any]]:
        """The training examples of `label` closest in meaning to one input's embedding."""
        return self.nearest_many(np.asarray(vector)[None, :], label, k)[0]

    def nearest_many(self, vectors: np.ndarray, label: str, k: int = 2) -> list[list[dict[str, Any]]]:
        """`nearest` for each row of `vectors`, in one matrix product."""
        idx = self._by_label().get(label, []) if self.vectors is not None else []
        if not idx or not len(vectors):
            return [[] for _ in range(len(vectors))]
        sims = np.asarray(vectors, np.float32) @ self.vectors[idx].T  # (inputs, examples of label)
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return [[{**self.examples[idx[j]], "similarity": round(float(row[j]), 3)} for j in top]
                for row, top in zip(sims, order)]

    def _by_label(self) -> dict[str, list[int]]:
        if not hasattr(self, "_index"):
            index: dict[str, list[int]] = {}
            for i, e in enumerate(self.examples):
                for lab in e["labels"]:
                    index.setdefault(lab, []).append(i)
            self._index = index
        return self._index


def training_rows(bank: Bank, verdicts: list[Example] = ()) -> tuple[list[Example], list[bool]]:
    """Bank examples and verdicts (a verdict replaces a bank line with the same text), and which are verdicts."""
    override = {(v.lang, v.text.lower(), v.context): v for v in verdicts}
    rows = [e for e in bank.examples if (e.lang, e.text.lower(), e.context) not in override]
    return rows + list(override.values()), [False] * len(rows) + [True] * len(override)


def fit_model(bank: Bank, embedder: Embedder, labels: list[str], cache: EmbeddingCache | None = None,
              verdicts: list[Example] = (), options: FitOptions = FitOptions(), progress=None) -> LearnedModel:
    """Fit the softmax on the bank (plus verdicts); thresholds from out-of-fold predictions."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    rows, is_verdict = training_rows(bank, verdicts)
    for label in labels:
        n = sum(label in e.labels for e in rows)
        if n < options.folds:
            raise ChurnwatchError(
                f"Cue type {label!r} has {n} examples in the bank; a learned model needs at least {options.folds}. "
                f"Add sentences to rules/examples/{label}.<lang>.txt.")
    texts = [model_input(e.text, e.context) for e in rows]
    if progress:
        progress(f"encoding {len(texts)} examples with {embedder.name} (cached ones are reused)")
    vectors = encode(texts, embedder, cache)
    ngrams = NGrams.fit(texts, options)
    x_all = sparse.hstack([sparse.csr_matrix(vectors.astype(np.float64)), ngrams.transform(texts)]).tocsr()
    classes = [NONE] + list(labels)
    # one training row per (example, cue type); a cue-free example is one "none" row
    idx, ys = [], []
    for i, e in enumerate(rows):
        for lab in [lab for lab in e.labels if lab in labels] or [NONE]:
            idx.append(i)
            ys.append(classes.index(lab))
    idx, ys = np.array(idx), np.array(ys)
    x, w = x_all[idx], np.where(np.array(is_verdict)[idx], options.verdict_weight, 1.0)

    def clf():
        return LogisticRegression(C=options.c, class_weight="balanced", max_iter=3000)

    if progress:
        progress(f"fitting on {x.shape[0]} rows x {x.shape[1]} features, {options.folds}-fold thresholds")
    oof = np.zeros((len(ys), len(classes)))
    for train, test in StratifiedKFold(options.folds, shuffle=True, random_state=0).split(np.zeros(len(ys)), ys):
        oof[test] = clf().fit(x[train], ys[train], sample_weight=w[train]).predict_proba(x[test])
    final = clf().fit(x, ys, sample_weight=w)
    heads = {}
    for k, label in enumerate(classes[1:], start=1):
        threshold, cv = _choose_threshold(oof[:, k], ys == k, options)
        heads[label] = {"threshold": round(threshold, 3), "cv": cv, "examples": int((ys == k).sum())}
        if progress:
            progress(f"{label}: threshold {threshold:.2f}, out-of-fold F1 {cv['f1']:.2f}")
    examples = [{"text": e.text, "context": e.context, "labels": list(e.labels), "lang": e.lang,
                 "source": "verdict" if v else e.source} for e, v in zip(rows, is_verdict)]
    model = LearnedModel(encoder=embedder.name, bank_digest=bank.digest, classes=classes,
                         coef=final.coef_.astype(np.float32), intercept=final.intercept_.astype(np.float32),
                         ngrams=ngrams, labels=heads, examples=examples,
                         vectors=vectors.astype(np.float16).astype(np.float32), verdicts=len(verdicts))
    model.version = _weights_digest(model)[:12]
    return model


def _choose_threshold(p: np.ndarray, y: np.ndarray, options: FitOptions) -> tuple[float, dict[str, float]]:
    """The threshold at the peak of the F-beta curve's moving average, plus the margin, and
    precision, recall and F1 there."""
    b2 = options.beta ** 2
    ts = np.arange(options.min_threshold, options.max_threshold + 1e-9, 0.01)
    fbs = []
    for t in ts:
        prec, rec = _precision_recall(p, y, t)
        fbs.append((1 + b2) * prec * rec / (b2 * prec + rec) if prec + rec else 0.0)
    w = options.smooth_steps
    window = np.ones(2 * w + 1) / (2 * w + 1)
    best_t = float(ts[int(np.argmax(np.convolve(np.pad(fbs, w, mode="edge"), window, mode="valid")))])
    t = min(options.max_threshold, best_t + options.threshold_margin) if options.threshold_margin else best_t
    prec, rec = _precision_recall(p, y, t)
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return t, {"precision": round(prec, 3), "recall": round(rec, 3), "f1": round(f1, 3)}


def _precision_recall(p: np.ndarray, y: np.ndarray, t: float) -> tuple[float, float]:
    pred = p >= t
    tp, fp, fn = int((pred & y).sum()), int((pred & ~y).sum()), int((~pred & y).sum())
    return (tp / (tp + fp) if tp + fp else 0.0), (tp / (tp + fn) if tp + fn else 0.0)


def _weights_digest(model: LearnedModel) -> str:
    h = hashlib.sha256(model.encoder.encode())
    for a in (model.coef, model.intercept):
        h.update(np.ascontiguousarray(a, dtype="<f4").tobytes())
    h.update(json.dumps([model.ngrams.word_vocab, model.ngrams.char_vocab, model.labels], sort_keys=True).encode())
    return h.hexdigest()


# ---- the fitted artefact in models/cues/: learned.json, learned-weights.npz, manifest.json ------


def save_model(model: LearnedModel, folder: Path) -> Path:
    """Write the model (JSON for what people read, .npz for the arrays) and a manifest with sha256s."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, coef=model.coef.astype("<f4"), intercept=model.intercept.astype("<f4"),
                        word_idf=model.ngrams.word_idf.astype("<f4"), char_idf=model.ngrams.char_idf.astype("<f4"),
                        vectors=np.asarray(model.vectors, dtype="<f2"))
    (folder / WEIGHTS_FILE).write_bytes(buf.getvalue())
    data = {"format": FORMAT, "version": model.version, "encoder": model.encoder, "bank_digest": model.bank_digest,
            "verdicts": model.verdicts, "classes": model.classes, "labels": model.labels,
            "word_vocab": model.ngrams.word_vocab, "char_vocab": model.ngrams.char_vocab,
            "examples": model.examples}
    path = folder / MODEL_FILE
    path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    manifest = {"format": FORMAT, "model": MODEL_FILE, "weights": WEIGHTS_FILE, "version": model.version,
                "encoder": model.encoder, "bank_digest": model.bank_digest, "verdicts": model.verdicts,
                "files": {n: _sha256(folder / n) for n in (MODEL_FILE, WEIGHTS_FILE)},
                "labels": model.labels, "refit": "churnwatch rules fit"}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def load_model(folder: Path) -> LearnedModel:
    """Read and verify the fitted artefact; ChurnwatchError says how to refit it when missing or altered."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ChurnwatchError(f"No learned cue model in {folder} (no {MANIFEST_FILE}). Fit it with: "
                              "churnwatch rules fit")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        for name, digest in manifest["files"].items():
            if not (folder / name).is_file() or _sha256(folder / name) != digest:
                raise ChurnwatchError(f"{folder / name} is missing or does not match {manifest_path}; "
                                      "refit it with: churnwatch rules fit")
        data = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ChurnwatchError(f"{folder / MODEL_FILE} is format {data.get('format')!r}, expected {FORMAT}; "
                                  "refit it with: churnwatch rules fit")
        with np.load(folder / WEIGHTS_FILE) as arrays:
            coef, intercept = arrays["coef"].astype(np.float32), arrays["intercept"].astype(np.float32)
            ngrams = NGrams(data["word_vocab"], arrays["word_idf"], data["char_vocab"], arrays["char_idf"])
            vectors = arrays["vectors"].astype(np.float32)
    except (KeyError, ValueError, OSError) as e:
        raise ChurnwatchError(f"{folder}: the learned cue model is damaged ({e}); refit it with: "
                              "churnwatch rules fit") from None
    return LearnedModel(encoder=data["encoder"], bank_digest=data["bank_digest"], classes=data["classes"],
                        coef=coef, intercept=intercept, ngrams=ngrams, labels=data["labels"],
                        examples=data["examples"], vectors=vectors, verdicts=data.get("verdicts", 0),
                        version=data["version"])


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def examples_from_verdicts(rows) -> list[Example]:
    """Verdict rows (text, label, verdict, lang, context) → training examples, one per text.

    A text marked right or added as missed carries those labels; a label marked wrong is taken
    off; a text with only wrong marks becomes a cue-free example.
    """
    merged: dict[tuple, dict[str, set]] = {}
    for r in rows:
        key = (r.lang, r.text.strip(), r.context)
        entry = merged.setdefault(key, {"yes": set(), "no": set()})
        (entry["no"] if r.verdict == "wrong" else entry["yes"]).add(r.label)
    return [Example(text=text, labels=tuple(sorted(v["yes"] - v["no"])), lang=lang, source="verdict",
                    context=context) for (lang, text, context), v in merged.items()]


def cache_from_model(model: LearnedModel) -> InMemoryEmbeddingCache:
    """An embedding cache holding the fitted model's example vectors: a refit re-encodes only new lines."""
    cache = InMemoryEmbeddingCache()
    if model.vectors is not None:
        cache.put_many({model_input(e["text"], e.get("context")): v for e, v in zip(model.examples, model.vectors)},
                       model.encoder)
    return cache


def load_learned(pack, folder: Path, embedder: Embedder | None = None):
    """The fitted model and its encoder for a pack with learned rules; None when it has none.

    Returns a `pipeline.cues.detect.LearnedCues`; the encoder is loaded only here, only if needed.
    """
    from pipeline.cues.detect import LearnedCues
    from pipeline.cues.embeddings import load_embedder
    from pipeline.cues.rule_files import LearnedRule

    if not any(isinstance(r, LearnedRule) for r in pack.rules):
        return None
    model = load_model(folder)
    return LearnedCues(model=model, embedder=embedder or load_embedder(name=model.encoder))
