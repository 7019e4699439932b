"""What many calls say together: per-rep distributions, lost vs kept accounts, charts.

- `rep_report`: each rep's metric distributions (median, IQR, n) beside the team's and beside
  published reference figures (vendor research, not ground truth).
- `mine`: calls of accounts later lost against calls of accounts kept: the difference of each
  metric with a Welch t confidence interval, cue frequencies, and the phrases most typical of each
  group per speaker (weighted log-odds with an informative Dirichlet prior, Monroe, Colaresi &
  Quinn 2008, "Fightin' Words", Political Analysis 16(4)).
- `plot_report`, `plot_mining`: PNG charts (matplotlib's Agg backend, chosen when called).
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pipeline.coach.metrics import CoachOptions
from pipeline.coach.stored_metrics import ensure_call_metrics
from pipeline.errors import ChurnwatchError

# metric key → (label, unit) for the tables and charts, in display order
METRICS = {
    "talk_ratio_rep": ("rep talk ratio", "%"),
    "longest_monologue_s": ("longest rep monologue", "s"),
    "longest_customer_story_s": ("longest customer story", "s"),
    "questions_rep": ("rep questions per call", ""),
    "questions_rep_per_hour": ("rep questions per hour", "/h"),
    "interactivity_per_min": ("speaker switches per minute", "/min"),
    "patience_s": ("patience (pause before rep answers)", "s"),
    "wpm_rep": ("rep words per minute", "wpm"),
    "wpm_customer": ("customer words per minute", "wpm"),
    "filler_rate_rep": ("rep fillers per 100 words", ""),
    "overlap_s": ("overlap (dual-channel)", "s"),
}


@dataclass(frozen=True)
class Reference:
    low: float | None
    high: float | None
    source: str
    kind: str = "published reference"  # vendor research on discovery calls; NOT ground truth


# Published reference figures, from vendor research on B2B discovery calls, not ground truth and
# not about churn: useful to place a rep, not to grade them.
REFERENCES = {
    # Gong Labs, "The highest converting talk-to-listen ratio in sales" (C. Orlob, 2016, 25,537
    # B2B calls; revisited 2025): 43:57 talk:listen on successful calls, average reps 65-75%.
    # https://www.gong.io/resources/labs/talk-to-listen-conversion-ratio/
    "talk_ratio_rep": Reference(0.43, 0.43, "Gong Labs 2016: 43% rep talk on successful calls"),
    # Gong Labs monologue research, as cited in the churnwatch coaching issue (longest rep
    # monologue under about 2.5 minutes on successful calls); not re-verified here.
    "longest_monologue_s": Reference(None, 150.0, "Gong Labs: longest monologue under ~2.5 min"),
    # Gong & SalesLoft discovery-call benchmark (2017, 519,000 calls): 11-14 questions per call
    # had the highest success rate, with diminishing returns above.
    "questions_rep": Reference(11.0, 14.0, "Gong/SalesLoft 2017: 11-14 questions per discovery call"),
    # Gong Labs "patience" (pause before responding), as cited in the churnwatch coaching issue:
    # about 0.6-1.0 s for top performers; not re-verified here.
    "patience_s": Reference(0.6, 1.0, "Gong Labs: 0.6-1.0 s pause before answering"),
}


# --- per rep ----------------------------------------------------------------------------------


@dataclass
class Stats:
    median: float | None
    q1: float | None
    q3: float | None
    n: int  # calls behind the figure (calls where the metric exists)


def describe(values: list[float]) -> Stats:
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return Stats(None, None, None, 0)
    if len(vals) == 1:
        return Stats(vals[0], vals[0], vals[0], 1)
    q1, med, q3 = statistics.quantiles(vals, n=4, method="inclusive")
    return Stats(round(med, 4), round(q1, 4), round(q3, 4), len(vals))


@dataclass
class RepSummary:
    rep: str
    n_calls: int
    metrics: dict[str, dict[str, Any]]  # key → {"rep": Stats, "team": Stats, "reference": Reference|None}


@dataclass
class CoachReport:
    calls: list[dict[str, Any]]  # {"call_id", "rep", "account_id", "call_date", **metrics}
    reps: list[RepSummary]
    team_calls: int
    team_values: dict[str, list[float]] = field(default_factory=dict)  # key → every team call's value (charts)

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "reps": [asdict(r) for r in self.reps], "team_calls": self.team_calls}


def _calls(session, since: date | None):
    from sqlalchemy import select

    from pipeline.store import Call

    query = select(Call).order_by(Call.call_date, Call.id)
    if since is not None:
        query = query.where(Call.call_date >= datetime.combine(since, datetime.min.time(), UTC))
    return list(session.scalars(query))


def rep_report(session, nlp=None, rep: str | None = None, since: date | None = None,
               options: CoachOptions = CoachOptions()) -> CoachReport:
    """Per-call metrics and per-rep distributions (the team is every rep's calls since `since`)."""
    calls = _calls(session, since)
    metrics = ensure_call_metrics(session, calls, nlp, options)
    if rep is not None and not any(c.rep is not None and c.rep.name == rep for c in calls):
        known = sorted({c.rep.name for c in calls if c.rep is not None})
        raise ChurnwatchError(f"No measured calls for rep {rep!r}. Reps with calls: {', '.join(known) or 'none'}.")
    rows = []
    for c in calls:
        if c.id in metrics:
            rows.append({"call_id": c.id, "rep": c.rep.name if c.rep else None, "account_id": c.account_id,
                         "call_date": c.call_date.date().isoformat() if c.call_date else None, **metrics[c.id].to_dict()})
    team = {k: describe([r.get(k) for r in rows]) for k in METRICS}
    reps = []
    for name in sorted({r["rep"] for r in rows if r["rep"]}):
        if rep is not None and name != rep:
            continue
        mine = [r for r in rows if r["rep"] == name]
        reps.append(RepSummary(name, len(mine), {
            k: {"rep": describe([r.get(k) for r in mine]), "team": team[k], "reference": REFERENCES.get(k)}
            for k in METRICS
        }))
    shown = [r for r in rows if rep is None or r["rep"] == rep]
    team_values = {k: [r[k] for r in rows if r.get(k) is not None] for k in METRICS}
    return CoachReport(calls=shown, reps=reps, team_calls=len(rows), team_values=team_values)


# --- lost vs kept -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MiningOptions:
    # Fewer calls than this in either group and `mine` says so instead of comparing.
    min_calls_per_side: int = 5
    # Confidence level of the intervals (Welch t).
    confidence: float = 0.95
    # Phrases are word n-grams up to this length.
    ngram_max: int = 3
    # n-grams seen fewer times than this in both groups together are ignored.
    min_count: int = 3
    # Prior strength: the Dirichlet prior is this multiple of the pooled (both groups) counts.
    prior_scale: float = 1.0
    # Phrases listed per group and speaker.
    top_k: int = 12

    def __post_init__(self):
        if self.min_calls_per_side < 2:
            raise ChurnwatchError(f"min_calls_per_side must be at least 2, got {self.min_calls_per_side}.")
        if not 0.5 < self.confidence < 1:
            raise ChurnwatchError(f"confidence must be between 0.5 and 1, e.g. 0.95; got {self.confidence}.")
        if self.ngram_max < 1 or self.min_count < 1 or self.top_k < 1 or self.prior_scale <= 0:
            raise ChurnwatchError("ngram_max, min_count and top_k must be at least 1 and prior_scale positive.")


@dataclass
class Difference:
    metric: str
    lost_mean: float
    kept_mean: float
    diff: float  # lost - kept
    low: float
    high: float
    n_lost: int
    n_kept: int
    direction: str  # "no clear difference", "higher on lost" or "lower on lost"
    verdict: str  # the same in a plain-language sentence


def welch_interval(a: list[float], b: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """mean(a) - mean(b) with a Welch t interval: (diff, low, high). Needs 2+ values per group."""
    from scipy import stats

    na, nb = len(a), len(b)
    ma, mb = sum(a) / na, sum(b) / nb
    va, vb = statistics.variance(a), statistics.variance(b)
    diff = ma - mb
    se2 = va / na + vb / nb
    if se2 == 0:
        return diff, diff, diff
    df = se2**2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    half = stats.t.ppf(0.5 + confidence / 2, df) * math.sqrt(se2)
    return diff, diff - half, diff + half


def _verdict(metric: str, diff: float, low: float, high: float, confidence: float) -> str:
    label, unit = METRICS.get(metric, (metric, ""))
    if low <= 0 <= high:
        return f"no clear difference in {label}"
    scale, unit = (100, " pts") if unit == "%" else (1, f" {unit}" if unit else "")
    word = "higher" if diff > 0 else "lower"
    return (f"{label} {word} on calls of lost accounts by {abs(diff) * scale:.2f}{unit} "
            f"({confidence:.0%} CI {low * scale:.2f} to {high * scale:.2f})")


@dataclass
class Phrase:
    phrase: str
    z: float  # > 0: typical of lost accounts' calls, < 0: of kept accounts' calls
    delta: float  # the prior-smoothed log-odds ratio
    count_lost: int
    count_kept: int


def weighted_log_odds(a: Counter, b: Counter, prior: Counter | None = None, prior_scale: float = 1.0,
                      min_count: int = 1) -> list[Phrase]:
    """Monroe et al. (2008) eq. 16-22: log-odds ratio of each term between corpora a and b under an
    informative Dirichlet prior α_w (default: the pooled counts of a and b), divided by its
    standard deviation. z > 0 leans to a. Sorted by z, a's end first."""
    prior = prior if prior is not None else a + b
    alpha = {w: prior_scale * c for w, c in prior.items() if c > 0}
    a0 = sum(alpha.values())
    na, nb = sum(a.values()), sum(b.values())
    out = []
    for w in set(a) | set(b):
        if a[w] + b[w] < min_count or w not in alpha:
            continue
        aw = alpha[w]
        delta = (math.log((a[w] + aw) / (na + a0 - a[w] - aw))
                 - math.log((b[w] + aw) / (nb + a0 - b[w] - aw)))
        z = delta / math.sqrt(1 / (a[w] + aw) + 1 / (b[w] + aw))
        out.append(Phrase(w, round(z, 3), round(delta, 4), a[w], b[w]))
    return sorted(out, key=lambda p: (-p.z, p.phrase))


def _stop_words(language: str) -> set[str]:
    if language.startswith("de"):
        from spacy.lang.de.stop_words import STOP_WORDS
    else:
        from spacy.lang.en.stop_words import STOP_WORDS
    return set(STOP_WORDS)


_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")


def ngrams(text: str, n_max: int, stop: set[str]) -> Counter:
    """Word n-grams (1..n_max) within clauses (not across . , ? ! ; :), lowercased; n-grams made
    only of stop words are dropped."""
    counts: Counter = Counter()
    for clause in re.split(r"[.,;:!?]+", text.lower()):
        words = _WORD.findall(clause)
        for n in range(1, n_max + 1):
            for i in range(len(words) - n + 1):
                gram = words[i : i + n]
                if not all(w in stop for w in gram):
                    counts[" ".join(gram)] += 1
    return counts


@dataclass
class MiningResult:
    enough: bool
    message: str  # plain-language summary, or why there is no comparison
    n_lost: int
    n_kept: int
    differences: list[Difference] = field(default_factory=list)
    cues: list[dict[str, Any]] = field(default_factory=list)  # {"label", "lost_per_call", "kept_per_call", ...}
    phrases: dict[str, dict[str, list[Phrase]]] = field(default_factory=dict)  # side → {"lost","kept"}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_calls(calls: list) -> tuple[list, list]:
    """(lost, kept): calls of accounts now lost (made on or before the loss date), and calls of
    accounts still active. Calls without an account are left out."""
    lost, kept = [], []
    for c in calls:
        acc = c.account
        if acc is None:
            continue
        if acc.status == "lost":
            if acc.lost_on is None or c.call_date is None or c.call_date.date() <= acc.lost_on:
                lost.append(c)
        elif acc.status == "active":
            kept.append(c)
    return lost, kept


def mine(session, nlp=None, options: MiningOptions = MiningOptions(),
         coach_options: CoachOptions = CoachOptions()) -> MiningResult:
    """Compare calls of lost and kept accounts (see the module docstring)."""
    lost, kept = split_calls(_calls(session, None))
    metrics = ensure_call_metrics(session, lost + kept, nlp, coach_options)
    lost = [c for c in lost if c.id in metrics]
    kept = [c for c in kept if c.id in metrics]
    need = options.min_calls_per_side
    if len(lost) < need or len(kept) < need:
        return MiningResult(False, (
            f"Too few calls to compare: {len(lost)} of lost accounts and {len(kept)} of kept accounts; "
            f"need at least {need} on each side (lower it with --min-calls, at the cost of wider intervals)."),
            len(lost), len(kept))
    diffs = []
    for key in METRICS:
        a = [v for c in lost if (v := getattr(metrics[c.id], key)) is not None]
        b = [v for c in kept if (v := getattr(metrics[c.id], key)) is not None]
        if len(a) < 2 or len(b) < 2:
            continue
        d, lo, hi = welch_interval(a, b, options.confidence)
        diffs.append(Difference(key, round(sum(a) / len(a), 4), round(sum(b) / len(b), 4), round(d, 4),
                                round(lo, 4), round(hi, 4), len(a), len(b),
                                "no clear difference" if lo <= 0 <= hi else "higher on lost" if d > 0 else "lower on lost",
                                _verdict(key, d, lo, hi, options.confidence)))
    cues = _cue_rates(lost, kept)
    phrases = {}
    for side in ("customer", "rep"):
        corpus = {}
        for group, calls in (("lost", lost), ("kept", kept)):
            counts: Counter = Counter()
            for c in calls:
                stop = _stop_words(c.language or "en")
                for seg in c.segments:
                    if seg.speaker == side:
                        counts.update(ngrams(seg.text, options.ngram_max, stop))
            corpus[group] = counts
        ranked = weighted_log_odds(corpus["lost"], corpus["kept"], prior_scale=options.prior_scale,
                                   min_count=options.min_count)
        phrases[side] = {"lost": [p for p in ranked if p.z > 0][: options.top_k],
                         "kept": [p for p in reversed(ranked) if p.z < 0][: options.top_k]}
    clear = [d.verdict for d in diffs if not d.low <= 0 <= d.high]
    summary = "; ".join(clear) if clear else "no clear difference in any talk metric"
    return MiningResult(True, f"{len(lost)} calls of lost vs {len(kept)} of kept accounts: {summary}.",
                        len(lost), len(kept), diffs, cues, phrases)


def _cue_rates(lost: list, kept: list) -> list[dict[str, Any]]:
    labels = sorted({cue.label for c in lost + kept for cue in c.cues})
    rows = []
    for label in labels:
        row: dict[str, Any] = {"label": label}
        for group, calls in (("lost", lost), ("kept", kept)):
            counts = [sum(cue.label == label for cue in c.cues) for c in calls]
            row[f"{group}_per_call"] = round(sum(counts) / len(calls), 3)
            row[f"{group}_share_of_calls"] = round(sum(n > 0 for n in counts) / len(calls), 3)
        rows.append(row)
    return rows


# --- charts -----------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def plot_report(report: CoachReport, out_dir: Path) -> list[Path]:
    """Per-rep distributions as PNGs: talk ratio against the published 43%, and four more panels
    with their published reference bands shaded. Returns the files written."""
    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    reps = sorted({c["rep"] or "(no rep)" for c in report.calls})
    if not reps:
        return []
    written = []
    panels = [["talk_ratio_rep"], ["longest_monologue_s", "questions_rep", "patience_s", "interactivity_per_min"]]
    for name, keys in zip(("talk_ratio_by_rep.png", "rep_metrics.png"), panels):
        fig, axes = plt.subplots(len(keys), 1, figsize=(8, 1.2 + 0.45 * (len(reps) + 1) * len(keys) + 0.6 * len(keys)), squeeze=False)
        for ax, key in zip(axes[:, 0], keys):
            label, unit = METRICS[key]
            scale = 100 if unit == "%" else 1
            data = [[c[key] * scale for c in report.calls if (c["rep"] or "(no rep)") == r and c.get(key) is not None] for r in reps]
            data.append([v * scale for v in report.team_values.get(key, [])])
            ax.boxplot([d or [float("nan")] for d in data], orientation="horizontal", widths=0.5, showfliers=False)
            for i, d in enumerate(data, start=1):
                ax.plot(d, [i] * len(d), "o", alpha=0.6, color="tab:blue")
            ax.set_yticks(range(1, len(data) + 1), [f"{r} (n={len(d)})" for r, d in zip(reps + ["team, all reps"], data)])
            if unit == "%":
                ax.set_xlim(0, 100)
            ref = REFERENCES.get(key)
            if ref is not None:
                lo = ref.low * scale if ref.low is not None else 0.0
                hi = ref.high * scale if ref.high is not None else ax.get_xlim()[1]
                if hi - lo < 1e-9:
                    ax.axvline(lo, color="tab:green", ls="--", label=f"published reference: {ref.source}")
                else:
                    ax.axvspan(lo, hi, color="tab:green", alpha=0.15, label=f"published reference: {ref.source}")
                ax.legend(loc="lower right", fontsize=7)
            ax.set_xlabel(f"{label} ({unit or 'count'})")
        fig.suptitle("Per-rep distribution over calls (box = IQR, line = median, dots = calls)", fontsize=9)
        fig.tight_layout(rect=(0, 0, 1, 0.97))
        path = out_dir / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def plot_mining(result: MiningResult, out_dir: Path) -> list[Path]:
    """Lost-vs-kept metric differences with intervals, and the top phrases per speaker."""
    if not result.enough:
        return []
    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    diffs = result.differences
    fig, axes = plt.subplots(len(diffs), 1, figsize=(8, 0.75 * len(diffs) + 1), squeeze=False)
    for ax, d in zip(axes[:, 0], diffs):
        label, unit = METRICS[d.metric]
        scale = 100 if unit == "%" else 1
        clear = not d.low <= 0 <= d.high
        ax.errorbar([d.diff * scale], [0], xerr=[[(d.diff - d.low) * scale], [(d.high - d.diff) * scale]],
                    fmt="o", color="tab:red" if clear else "tab:gray", capsize=4)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks([0], [f"{label} ({'pts' if unit == '%' else unit or 'n'})"], fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        span = max(abs(d.low), abs(d.high)) * scale * 1.15 or 1
        ax.set_xlim(-span, span)
    fig.suptitle(f"Lost minus kept accounts' calls ({result.n_lost} vs {result.n_kept}), "
                 "95% Welch intervals; red = clear difference", fontsize=9)
    fig.tight_layout()
    written.append(out_dir / "lost_vs_kept.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(11, 6))
    for ax, side in zip(axes, ("customer", "rep")):
        items = result.phrases.get(side, {})
        rows = list(reversed(items.get("kept", []))) + list(reversed(items.get("lost", [])))
        rows = sorted(rows, key=lambda p: p.z)
        ax.barh(range(len(rows)), [p.z for p in rows], color=["tab:red" if p.z > 0 else "tab:blue" for p in rows])
        ax.set_yticks(range(len(rows)), [p.phrase for p in rows], fontsize=8)
        ax.axvline(0, color="black", lw=0.8)
        for x in (-1.96, 1.96):
            ax.axvline(x, color="gray", lw=0.8, ls=":")
        ax.set_title(f"{side} phrases: red = typical of lost, blue = of kept", fontsize=9)
        ax.set_xlabel("z-score of weighted log-odds (|z| > 1.96 ≈ clear)")
    fig.tight_layout()
    written.append(out_dir / "top_phrases.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    return written
