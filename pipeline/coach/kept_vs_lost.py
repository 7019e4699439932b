"""What many calls say together: per-rep distributions, and calls of lost vs kept accounts.

- `rep_report`: each rep's metric distributions (median, IQR, n) beside the team's and beside
  published reference figures (vendor research, not ground truth), each figure shown only for
  the calls of a type it was measured on (`pipeline.coach.references`). Filler rates come only
  from verbatim transcripts: on Whisper's the report counts what survived and says the metric
  needs a verbatim transcript.
- `mine`: calls of accounts later lost against calls of accounts kept. A metric is compared only
  where at least `min_calls_per_side` calls of each group have it (overlap exists on dual-channel
  calls only, patience where the rep answers). Each comparison gets a Welch test, and the
  comparisons are corrected together (Benjamini-Hochberg over the metrics compared; again over
  every phrase tested, both speakers): only what passes is called a clear difference, and the
  intervals are widened to agree (`pipeline.coach.significance`). Phrases most typical of each
  group per speaker: weighted log-odds with an informative Dirichlet prior (Monroe, Colaresi &
  Quinn 2008, "Fightin' Words", Political Analysis 16(4)), from phrases said in at least
  `min_phrase_calls` calls, so that one talkative call does not make a phrase. The z-scores
  treat every mention as independent, which repeated mentions within a call are not: the call
  minimum and the correction keep that in check, they do not remove it.
- Charts: `pipeline.coach.charts`.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from pipeline.coach.metrics import CallMetrics, CoachOptions
from pipeline.coach.references import (  # noqa: F401  (METRICS, REFERENCES: the names callers know)
    METRICS,
    REFERENCES,
    Reference,
    call_type_of,
    fmt,
    reference_note,
)
from pipeline.coach.significance import adjusted_level, benjamini_hochberg, normal_p, welch_test, z_line
from pipeline.coach.stored_metrics import ensure_call_metrics
from pipeline.errors import ChurnwatchError

FILLER_NOTE = ("Whisper leaves out most fillers (um, uh) when it transcribes, so a filler rate "
               "needs a verbatim transcript")


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
    # key → {"rep": Stats, "team": Stats, "reference": Reference | None (None also where it does
    # not apply to these calls), "reference_calls": Stats of the rep's calls it applies to,
    # "note": why a figure or a reference is missing, or "" }
    metrics: dict[str, dict[str, Any]]


@dataclass
class CoachReport:
    calls: list[dict[str, Any]]  # {"call_id", "rep", "account_id", "account_name", "call_date", "call_type", **metrics}
    reps: list[RepSummary]
    team_calls: int
    team_values: dict[str, list[float]] = field(default_factory=dict)  # key → every team call's value (charts)

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "reps": [asdict(r) for r in self.reps], "team_calls": self.team_calls}


def call_label(row: dict[str, Any]) -> str:
    """How a call is named to a person: 'Kestrel Dental Group, 2026-10-06'."""
    who = row.get("account_name") or row.get("account_id") or "no account"
    return f"{who}, {row.get('call_date') or 'no date'}"


def _calls(session, since: date | None):
    from sqlalchemy import select

    from pipeline.store import Call

    query = select(Call).order_by(Call.call_date, Call.id)
    if since is not None:
        query = query.where(Call.call_date >= datetime.combine(since, datetime.min.time(), UTC))
    return list(session.scalars(query))


def _value(row: dict[str, Any], key: str):
    """A call's value of a metric as the report uses it: no filler rate from a Whisper transcript."""
    if key.startswith("filler_rate") and row.get("fillers_asr"):
        return None
    return row.get(key)


def _filler_note(rows: list[dict[str, Any]]) -> str:
    asr = [r for r in rows if r.get("fillers_asr")]
    if not asr:
        return ""
    heard = sum(r.get("fillers_rep") or 0 for r in asr)
    words = sum(r.get("words_rep") or 0 for r in asr)
    return (f"rep filler rate: {FILLER_NOTE}; {len(asr)} of {len(rows)} call(s) are Whisper transcripts, "
            f"left out of the figure (fillers that survived in them: {heard} in {words} rep words).")


def _metric_summary(key: str, mine: list[dict[str, Any]], team: Stats) -> dict[str, Any]:
    ref = REFERENCES.get(key)
    values = [_value(r, key) for r in mine]
    entry: dict[str, Any] = {"rep": describe(values), "team": team, "reference": ref, "reference_calls": None,
                             "note": ""}
    if key.startswith("filler_rate"):
        entry["note"] = _filler_note(mine)
    if ref is None:
        return entry
    measured = [r for r in mine if _value(r, key) is not None]
    applicable = [r for r in measured if ref.applies(r.get("call_type"))]
    entry["reference_calls"] = describe([_value(r, key) for r in applicable])
    if measured and not applicable:
        entry["reference"] = None
        entry["note"] = reference_note(key, ref, len(measured), sum(r.get("call_type") is not None for r in measured))
    return entry


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
                         "account_name": c.account.name if c.account is not None else None,
                         "call_date": c.call_date.date().isoformat() if c.call_date else None,
                         "call_type": call_type_of(c), **metrics[c.id].to_dict()})
    team = {k: describe([_value(r, k) for r in rows]) for k in METRICS}
    reps = []
    for name in sorted({r["rep"] for r in rows if r["rep"]}):
        if rep is not None and name != rep:
            continue
        mine = [r for r in rows if r["rep"] == name]
        reps.append(RepSummary(name, len(mine), {k: _metric_summary(k, mine, team[k]) for k in METRICS}))
    shown = [r for r in rows if rep is None or r["rep"] == rep]
    team_values = {k: [v for r in rows if (v := _value(r, k)) is not None] for k in METRICS}
    return CoachReport(calls=shown, reps=reps, team_calls=len(rows), team_values=team_values)


# --- lost vs kept -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MiningOptions:
    # A metric is compared only where at least this many calls of each group (lost, kept) have
    # it; fewer calls of either group and `mine` says so instead of comparing. Five is the floor:
    # below it one unusual call moves a group's mean by a fifth or more.
    min_calls_per_side: int = 8
    # Share of the differences called clear that may be noise (Benjamini-Hochberg), for the
    # metrics and for the phrases alike.
    false_discovery_rate: float = 0.05
    # Phrases are word n-grams up to this length.
    ngram_max: int = 3
    # n-grams seen fewer times than this in both groups together are ignored.
    min_count: int = 3
    # ... and so are n-grams said in fewer calls than this (both groups together).
    min_phrase_calls: int = 3
    # Prior strength: the Dirichlet prior is this multiple of the pooled (both groups) counts.
    prior_scale: float = 1.0
    # Phrases listed per group and speaker.
    top_k: int = 12

    MIN_CALLS_FLOOR = 5

    def __post_init__(self):
        if self.min_calls_per_side < self.MIN_CALLS_FLOOR:
            raise ChurnwatchError(f"min_calls_per_side must be at least {self.MIN_CALLS_FLOOR}: with fewer calls a "
                                  f"difference is one unusual call; got {self.min_calls_per_side}.")
        if not 0 < self.false_discovery_rate < 0.5:
            raise ChurnwatchError("false_discovery_rate must be between 0 and 0.5, e.g. 0.05; "
                                  f"got {self.false_discovery_rate}.")
        if min(self.ngram_max, self.min_count, self.min_phrase_calls, self.top_k) < 1 or self.prior_scale <= 0:
            raise ChurnwatchError("ngram_max, min_count, min_phrase_calls and top_k must be at least 1 "
                                  "and prior_scale positive.")


@dataclass
class Difference:
    metric: str
    lost_mean: float
    kept_mean: float
    diff: float  # lost - kept
    low: float  # the interval at `level`, widened for the number of metrics compared
    high: float
    n_lost: int
    n_kept: int
    direction: str  # "no clear difference", "higher on lost" or "lower on lost"
    verdict: str  # the same in a plain-language sentence
    p: float = 1.0  # Welch's two-sided p-value of this metric alone
    q: float = 1.0  # Benjamini-Hochberg q-value over the metrics compared
    clear: bool = False  # q <= the false discovery rate
    level: float = 0.95  # confidence level of low..high


@dataclass
class Skipped:
    metric: str
    n_lost: int
    n_kept: int
    reason: str  # in plain words


def welch_interval(a: list[float], b: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """mean(a) - mean(b) with a Welch t interval: (diff, low, high). Needs 2+ values per group."""
    test = welch_test(a, b)
    low, high = test.interval(confidence)
    return test.diff, low, high


def _verdict(metric: str, d: Difference) -> str:
    label = METRICS.get(metric, (metric, ""))[0]
    if not d.clear:
        return f"no clear difference in {label}"
    word = "higher" if d.diff > 0 else "lower"
    return (f"{label} {word} on calls of lost accounts by {fmt(metric, abs(d.diff), diff=True).lstrip('+')} "
            f"({d.level:.1%} interval {fmt(metric, d.low, diff=True, unit=False)} to {fmt(metric, d.high, diff=True)})")


def compare_metrics(lost: list[CallMetrics], kept: list[CallMetrics],
                    options: MiningOptions = MiningOptions()) -> tuple[list[Difference], list[Skipped]]:
    """Each metric of lost vs kept calls (see the module docstring): the differences compared,
    corrected together, and the metrics left out with why."""
    need, fdr = options.min_calls_per_side, options.false_discovery_rate
    tests, skipped = [], []
    for key in METRICS:
        a = [v for m in lost if (v := getattr(m, key)) is not None]
        b = [v for m in kept if (v := getattr(m, key)) is not None]
        if key.startswith("filler_rate") and any(m.fillers_asr for m in lost + kept):
            skipped.append(Skipped(key, len(a), len(b), f"{FILLER_NOTE}; some of these calls are Whisper transcripts"))
        elif len(a) < need or len(b) < need:
            skipped.append(Skipped(key, len(a), len(b),
                                   f"only {len(a)} lost and {len(b)} kept calls have it; need {need} each"))
        elif len(set(a + b)) == 1:  # not a comparison: counting it would only raise the bar for the rest
            skipped.append(Skipped(key, len(a), len(b), f"{fmt(key, a[0])} on every call, nothing to compare"))
        else:
            tests.append((key, a, b, welch_test(a, b)))
    qs = benjamini_hochberg([t.p for *_, t in tests])
    n_clear = sum(q <= fdr for q in qs)
    level = adjusted_level(n_clear, len(tests), fdr)
    diffs = []
    for (key, a, b, test), q in zip(tests, qs):
        low, high = test.interval(level)
        clear = q <= fdr
        d = Difference(key, round(sum(a) / len(a), 4), round(sum(b) / len(b), 4), round(test.diff, 4),
                       round(float(low), 4), round(float(high), 4), len(a), len(b),
                       "no clear difference" if not clear else "higher on lost" if test.diff > 0 else "lower on lost",
                       "", p=round(test.p, 6), q=round(q, 6), clear=clear, level=round(level, 6))
        d.verdict = _verdict(key, d)
        diffs.append(d)
    return diffs, skipped


@dataclass
class Phrase:
    phrase: str
    z: float  # > 0: typical of lost accounts' calls, < 0: of kept accounts' calls
    delta: float  # the prior-smoothed log-odds ratio
    count_lost: int
    count_kept: int
    calls: int = 0  # calls it was said in, both groups together
    p: float = 1.0  # two-sided p-value of z alone
    q: float = 1.0  # Benjamini-Hochberg q-value over every phrase tested (both speakers)
    clear: bool = False  # q <= the false discovery rate: past the chart's |z| line


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
        out.append(Phrase(w, round(z, 3), round(delta, 4), a[w], b[w], p=normal_p(z)))
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
    differences: list[Difference] = field(default_factory=list)  # the metrics compared
    skipped: list[Skipped] = field(default_factory=list)  # the metrics not compared, with why
    cues: list[dict[str, Any]] = field(default_factory=list)  # {"label", "lost_per_call", "kept_per_call", ...}
    phrases: dict[str, dict[str, list[Phrase]]] = field(default_factory=dict)  # side → {"lost","kept"}: top by z
    phrases_tested: int = 0  # phrases of both speakers the correction is over
    phrase_z_line: float = 0.0  # the |z| a phrase has to pass to be clear
    false_discovery_rate: float = 0.05

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


def _phrases(lost: list, kept: list, options: MiningOptions) -> tuple[dict[str, list[Phrase]], int, float]:
    """Per speaker the phrases tested (weighted log-odds), corrected together over both speakers:
    ({side: phrases sorted by z}, how many tested, the |z| line)."""
    ranked: dict[str, list[Phrase]] = {}
    for side in ("customer", "rep"):
        counts: dict[str, Counter] = {}
        said_in: Counter = Counter()  # calls each phrase was said in
        for group, calls in (("lost", lost), ("kept", kept)):
            counts[group] = Counter()
            for c in calls:
                stop = _stop_words(c.language or "en")
                in_call: Counter = Counter()
                for seg in c.segments:
                    if seg.speaker == side:
                        in_call.update(ngrams(seg.text, options.ngram_max, stop))
                counts[group].update(in_call)
                said_in.update(in_call.keys())
        scored = weighted_log_odds(counts["lost"], counts["kept"], prior_scale=options.prior_scale,
                                   min_count=options.min_count)
        ranked[side] = [replace(p, calls=said_in[p.phrase]) for p in scored
                        if said_in[p.phrase] >= options.min_phrase_calls]
    tested = [p for side in ranked.values() for p in side]
    qs = iter(benjamini_hochberg([p.p for p in tested]))
    fdr = options.false_discovery_rate
    for side, items in ranked.items():
        ranked[side] = [replace(p, q=round(q, 6), clear=q <= fdr) for p, q in zip(items, qs)]
    n_clear = sum(p.clear for side in ranked.values() for p in side)
    return ranked, len(tested), z_line(n_clear, len(tested), fdr)


def _summary(n_lost: int, n_kept: int, diffs: list[Difference], skipped: list[Skipped], phrases: dict,
             n_phrases: int, line: float, fdr: float) -> str:
    """What `mine` found, in words, including that nothing survived when nothing did."""
    m = len(diffs)
    how = f"Benjamini-Hochberg, {fdr:.0%} false discovery rate"
    out = [f"{n_lost} calls of lost vs {n_kept} of kept accounts."]
    clear = [d for d in diffs if d.clear]
    if clear:
        out.append(f"Clear after correcting for the {m} metrics compared ({how}): "
                   + "; ".join(d.verdict for d in clear) + ".")
    elif diffs:
        text = f"No talk metric differs clearly once the {m} metrics compared are taken together ({how})"
        best = min(diffs, key=lambda d: d.p)
        if best.p < 0.05:
            text += (f": the closest, {METRICS[best.metric][0]}, has p = {best.p:.3f} on its own, about what chance "
                     f"gives the strongest of {m} comparisons of noise")
        out.append(text + ".")
    else:
        out.append("No talk metric could be compared.")
    n_clear = sum(p.clear for side in phrases.values() for group in side.values() for p in group)
    if n_phrases and n_clear:
        out.append(f"{n_clear} phrase(s) clear the line (|z| ≥ {line:.1f}, corrected for {n_phrases} phrases tested).")
    elif n_phrases:
        out.append(f"No phrase clears the line either: {n_phrases} phrases tested, each would need |z| ≥ {line:.1f}.")
    if skipped:
        out.append("Not compared: " + "; ".join(f"{METRICS[s.metric][0]} ({s.reason})" for s in skipped) + ".")
    return " ".join(out)


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
            f"need at least {need} on each side (--min-calls lowers it to {options.MIN_CALLS_FLOOR} at the least, "
            "at the cost of wider intervals)."), len(lost), len(kept),
            false_discovery_rate=options.false_discovery_rate)
    diffs, skipped = compare_metrics([metrics[c.id] for c in lost], [metrics[c.id] for c in kept], options)
    cues = _cue_rates(lost, kept)
    ranked, n_phrases, line = _phrases(lost, kept, options)
    phrases = {side: {"lost": [p for p in items if p.z > 0][: options.top_k],
                      "kept": [p for p in reversed(items) if p.z < 0][: options.top_k]}
               for side, items in ranked.items()}
    message = _summary(len(lost), len(kept), diffs, skipped, phrases, n_phrases, line, options.false_discovery_rate)
    return MiningResult(True, message, len(lost), len(kept), diffs, skipped, cues, phrases, n_phrases, round(line, 3),
                        options.false_discovery_rate)


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
