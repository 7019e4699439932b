"""The explainable risk score: 0-100 per account, from features, with a threshold.

    model = load_risk_model(settings.rules_dir, settings.models_dir)
    result = score_account(session, "ACME", date(2026, 3, 31), model)
    result.score, result.flagged
    result.base_score + sum(result.points.values()) == result.score   # score points per factor
    result.contributions                                               # factor -> log-odds

score = 100 * sigmoid(intercept + sum_i w_i * x_i), x_i = (transform(feature_i) - center_i) / scale_i.
The contributions w_i * x_i and the intercept add up to the log-odds exactly. What a manager reads
are score points: the score minus the base score 100 * sigmoid(intercept), split between the
factors in proportion to their log-odds, so the base and the points add up to the 0-100 score
exactly (pipeline.risk.explain says why this split). Before scoring, evidence that refers to the
same invoice, support case, call sentence or contact is merged, so one event counts once
(pipeline.risk.explain.merge_events); the values scored are the merged ones.

Weights come from rules/risk.yaml (set by hand, points-style) or from a fitted model file in
models/risk/ (`churnwatch risk fit`); risk.yaml says which is active. With the manual weights,
`segments:` in risk.yaml overrides the intercept, threshold and any factor per customer segment
(Account.segment); accounts of other segments, or none, get the global weights. Every error in
risk.yaml names the file and line, an unknown key with the closest valid one.

The factors of the cue types come from rules/cue_types.yaml (`risk:` of each type, see
pipeline.cues.cue_types): `- {cue: competitor_mention}` in risk.yaml puts that type's factor at
that place, a type not named there comes after the factors, and a factor written out in full
(`feature: cue_competitor_mention, points: ...`) replaces the type's own weight.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session

from pipeline.cues.cue_types import CueTypes, load_cue_types
from pipeline.errors import RuleError
from pipeline.rules_yaml import closest, key_lines, parse_yaml, unknown_key
from pipeline.risk.explain import display_points, event_keys, merge_events, score_points
from pipeline.risk.features import (
    CONTEXT_ONLY_FEATURES,
    CUE_LABELS,
    ORDER_FEATURES,
    FeatureOptions,
    FeatureValue,
    compute_features,
)
from pipeline.risk.bulk_features import iter_book_features, load_book
from pipeline.risk.two_processes import score_in_two
from pipeline.store import Account, RiskScore

TRANSFORMS = ("none", "log1p", "log2p")
OTHER_FEATURES = ("late_payments_365", "days_since_last_contact", "unanswered_streak", "support_cases_90",
                  "support_trend", "disputes_180", "new_contacts_90", "stakeholder_changes_90")
MODEL_FORMAT = "churnwatch.risk.v1"


def feature_names(cue_labels: tuple[str, ...] = CUE_LABELS) -> tuple[str, ...]:
    """Every feature a factor may use: the order and CRM features, and cue_<label> per cue type."""
    return ORDER_FEATURES + OTHER_FEATURES + tuple(f"cue_{label}" for label in cue_labels)


FEATURE_NAMES = feature_names()  # with the eight cue types of the default pack


def transform(kind: str, value: float) -> float:
    if kind == "log1p":
        return math.log1p(max(value, 0.0))
    if kind == "log2p":
        return math.log2(1.0 + max(value, 0.0))
    return value


@dataclass(frozen=True)
class Factor:
    feature: str  # a feature name, e.g. days_since_last_order
    weight: float  # log-odds added per unit of x
    transform: str = "none"  # none | log1p (ln(1+v)) | log2p (log2(1+v): "per doubling")
    center: float = 0.0  # x = (transform(v) - center) / scale; at center the factor adds nothing
    scale: float = 1.0
    cap: float | None = None  # the raw value is capped here first (a cap on one factor's say)
    missing: float = 0.0  # raw value used where the feature is undefined (e.g. cadence with one order)
    label: str = ""  # plain words for explanations
    floor: float | None = None  # raw values below this count as this (no credit for "very recent")

    def x(self, value: float | None) -> float:
        v = self.missing if value is None or (isinstance(value, float) and math.isnan(value)) else value
        if self.cap is not None:
            v = min(v, self.cap)
        if self.floor is not None:
            v = max(v, self.floor)
        return (transform(self.transform, v) - self.center) / self.scale


@dataclass(frozen=True)
class RiskModel:
    version: str  # "manual-<hash>" or the fitted file's version
    intercept: float  # log-odds of an account with every factor at its center
    factors: tuple[Factor, ...]
    threshold: float  # flag accounts scoring at or above this (0-100)
    source: str = ""  # where it was loaded from
    features: FeatureOptions = field(default_factory=FeatureOptions)
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)  # training info, metrics
    # customer segment (Account.segment) -> the model its accounts are scored with
    segments: dict[str, "RiskModel"] = field(default_factory=dict, hash=False, compare=False)
    segment: str | None = None  # the segment this model is for (None: the global weights)

    def log_odds(self, values: dict[str, float | None]) -> tuple[float, dict[str, float]]:
        contributions = {"intercept": self.intercept}
        for f in self.factors:
            contributions[f.feature] = f.weight * f.x(values.get(f.feature))
        return math.fsum(contributions.values()), contributions

    def for_segment(self, segment: str | None) -> "RiskModel":
        """The model for accounts of a segment: its own weights, else the global ones."""
        if not segment or not self.segments:
            return self
        hit = self.segments.get(segment)
        if hit is None:
            folded = {k.casefold(): v for k, v in self.segments.items()}
            hit = folded.get(segment.casefold())
        return hit or self


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


@dataclass
class RiskResult:
    account_id: str
    as_of: date
    score: float  # 0-100
    log_odds: float  # = sum(contributions.values())
    contributions: dict[str, float]  # "intercept" and factor -> log-odds
    flagged: bool
    threshold: float
    model_version: str
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)  # factor -> value, note, evidence
    base_score: float = 0.0  # 100 * sigmoid(intercept): the score of an account with every factor at normal
    points: dict[str, float] = field(default_factory=dict)  # factor -> score points; base + sum = score
    segment: str | None = None  # the segment whose weights scored it (None: global weights)
    merged: list[dict[str, Any]] = field(default_factory=list)  # events counted once: kept, dropped, keys

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["as_of"] = self.as_of.isoformat()
        return d

    def shown_points(self, digits: int = 1) -> tuple[float, dict[str, float]]:
        """Base and points rounded to `digits` so that they add up to the rounded score."""
        return display_points(self.base_score, self.points, self.score, digits)

    def top_factors(self, n: int = 3) -> list[str]:
        """The factors that add the most points, largest first."""
        return [k for k, v in sorted(self.points.items(), key=lambda kv: (-kv[1], kv[0])) if v > 0][:n]


# --- loading ------------------------------------------------------------------------------------

FACTOR_KEYS = ("feature", "points", "weight", "per", "scale", "transform", "normal", "center", "cap", "floor",
               "missing", "label")
SEGMENT_KEYS = ("intercept", "threshold", "factors")
TOP_KEYS = ("active", "threshold", "threshold_override", "features", "manual", "segments")
MANUAL_KEYS = ("intercept", "factors")


class _Where:
    """Names a place in risk.yaml for error messages: the file, the key path and its line."""

    def __init__(self, path, lines: dict[tuple, int]):
        self.path, self.lines = path, lines

    def line(self, loc: tuple) -> int | None:
        while loc and loc not in self.lines:
            loc = loc[:-1]
        return self.lines.get(loc)

    def error(self, loc: tuple, message: str) -> RuleError:
        return RuleError(self.path, message, self.line(loc))


def _unknown(keys, valid, what: str = "key") -> str:
    """"unknown key(s) weight, did you mean `points`?" for keys not among `valid`."""
    keys = [str(k) for k in keys]
    near = closest(keys[0], valid)
    return f"unknown {what}(s) {', '.join(keys)}" + (f", did you mean `{near}`?" if near else ".")


def _name(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _factor(d: dict, where: str, path, at: _Where | None = None, loc: tuple = (),
            features: tuple[str, ...] = FEATURE_NAMES) -> Factor:
    at = at or _Where(path, {})

    def bad(msg, key=None):
        return at.error(loc + ((key,) if key else ()), f"{where}: {msg}")

    if not isinstance(d, dict):
        raise bad("each factor is a mapping with at least feature and points, e.g. "
                  "{feature: late_payments_365, points: 0.4}.")
    unknown = sorted(set(d) - set(FACTOR_KEYS), key=str)
    if unknown:
        raise bad(f"{_unknown(unknown, FACTOR_KEYS)} Keys: {', '.join(FACTOR_KEYS)}.", unknown[0])
    if d.get("feature") not in features:
        near = closest(d.get("feature"), features) if d.get("feature") is not None else None
        hint = f", did you mean `{near}`?" if near else "."
        raise bad(f"unknown feature {d.get('feature')!r}{hint} Features: {', '.join(features)}.", "feature")
    t = d.get("transform", "none")
    if t not in TRANSFORMS:
        raise bad(f"transform {t!r} is not one of {', '.join(TRANSFORMS)}.", "transform")
    for key in ("points", "weight", "per", "scale", "normal", "center", "cap", "floor", "missing"):
        v = d.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise bad(f"{key} must be a number, got {v!r} (points, per, normal, cap, floor and missing are "
                      "numbers; points is required).", key)
    try:
        points = float(d.get("points", d.get("weight")))
        per = float(d.get("per", d.get("scale", 1.0)))
        normal = d.get("normal")
        center = transform(t, float(normal)) if normal is not None else float(d.get("center", 0.0))
        cap = None if d.get("cap") is None else float(d["cap"])
        floor = None if d.get("floor") is None else float(d["floor"])
        missing = float(d.get("missing", normal if normal is not None else 0.0))
    except (TypeError, ValueError):
        raise bad("points, per, normal, cap, floor and missing must be numbers (points is required).",
                  "points") from None
    if per <= 0:
        raise bad(f"per must be above 0, got {per:g}.", "per" if "per" in d else "scale")
    return Factor(d["feature"], points, t, center, per, cap, missing, str(d.get("label", "")), floor)


def _number(value, what: str, at: _Where, loc: tuple) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise at.error(loc, f"{_name(loc)}: {what} must be a number, got {value!r}.")
    return float(value)


def _segments(data, manual: dict, global_model: RiskModel, at: _Where,
              features: tuple[str, ...] = FEATURE_NAMES) -> dict[str, RiskModel]:
    """The `segments:` block: per Account.segment, overrides of the manual intercept, threshold and
    factors (an entry replaces the keys it names of the global factor with that feature; a feature
    the global weights lack is added; points: 0 switches a factor off for the segment)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise at.error(("segments",), "segments: a mapping from a customer segment (as in the accounts export) "
                                      "to its weights, e.g. segments: {Enterprise: {threshold: 60}}.")
    base = {f["feature"]: f for f in manual.get("factors", []) if isinstance(f, dict)}
    out = {}
    for name, seg in data.items():
        loc = ("segments", name)
        if seg is None:
            seg = {}
        if not isinstance(seg, dict):
            raise at.error(loc, f"segments.{name}: a mapping with intercept, threshold and/or factors.")
        unknown = sorted(set(seg) - set(SEGMENT_KEYS), key=str)
        if unknown:
            raise at.error(loc + (unknown[0],), f"segments.{name}: {_unknown(unknown, SEGMENT_KEYS)} "
                                                f"Keys: {', '.join(SEGMENT_KEYS)}.")
        intercept = (global_model.intercept if seg.get("intercept") is None
                     else _number(seg["intercept"], "intercept", at, loc + ("intercept",)))
        threshold = (global_model.threshold if seg.get("threshold") is None
                     else _number(seg["threshold"], "threshold", at, loc + ("threshold",)))
        if not 0 <= threshold <= 100:
            raise at.error(loc + ("threshold",), f"segments.{name}.threshold: a score from 0 to 100, got {threshold:g}.")
        entries = seg.get("factors") or []
        if not isinstance(entries, list):
            raise at.error(loc + ("factors",), f"segments.{name}.factors: a list of factors, each with feature "
                                               "and the keys it changes, e.g. - {feature: order_cadence, points: 0.5}.")
        specs = dict(base)
        seen = set()
        for i, e in enumerate(entries):
            floc = loc + ("factors", i)
            where = f"segments.{name}.factors[{i}]"
            if not isinstance(e, dict) or "feature" not in e:
                raise at.error(floc, f"{where}: a mapping with feature and the keys it changes, "
                                     "e.g. {feature: order_cadence, points: 0.5}.")
            if e["feature"] in seen:
                raise at.error(floc + ("feature",), f"{where}: {e['feature']} is listed twice for this segment; "
                                                    "merge the two entries.")
            seen.add(e["feature"])
            merged = {**specs.get(e["feature"], {}), **e}
            if "points" not in merged and "weight" not in merged:
                raise at.error(floc, f"{where}: {e['feature']} is not among the global factors, so give its points.")
            _factor(merged, where, at.path, at, floc, features)  # validate with this entry's line
            specs[e["feature"]] = merged
        factors = tuple(_factor(d, f"segments.{name}", at.path, at, loc, features) for d in specs.values())
        out[str(name)] = replace(global_model, intercept=intercept, threshold=threshold, factors=factors,
                                 segments={}, segment=str(name))
    return out


def _feature_options(data: dict | None, path, at: _Where | None = None) -> FeatureOptions:
    at = at or _Where(path, {})
    if data is not None and not isinstance(data, dict):
        raise at.error(("features",), "features: a mapping of option: value.")
    data = dict(data or {})
    kinds = {f.name: f.type for f in fields(FeatureOptions)}
    names = set(kinds)
    unknown = set(data) - names
    if unknown:
        first = sorted(unknown, key=str)[0]
        raise at.error(("features", first), f"features: {_unknown(sorted(unknown, key=str), sorted(names), 'option')} "
                                            f"Options: {', '.join(sorted(names))}.")
    for name, value in data.items():
        kind = kinds[name]
        ok = {"int": lambda v: isinstance(v, int), "float": lambda v: isinstance(v, (int, float)),
              "str": lambda v: isinstance(v, str)}.get(kind, lambda v: True)
        if isinstance(value, bool) or not ok(value):
            what = {"int": "a whole number", "float": "a number", "str": "text"}.get(kind, "a value")
            raise at.error(("features", name), f"features.{name}: {what}, got {value!r}.")
    if "cue_labels" in data:
        if not isinstance(data["cue_labels"], list) or not all(isinstance(x, str) for x in data["cue_labels"]):
            raise at.error(("features", "cue_labels"), "features.cue_labels: a list of cue type labels.")
        data["cue_labels"] = tuple(data["cue_labels"])
    try:
        return FeatureOptions(**data)
    except (TypeError, ValueError) as e:
        raise at.error(("features",), f"features: {e}") from None


def model_from_dict(data: dict, source: str = "", features: FeatureOptions | None = None) -> RiskModel:
    """A RiskModel from a fitted model file's JSON."""
    factors = tuple(Factor(**f) for f in data["factors"])
    meta = {k: v for k, v in data.items() if k not in ("factors", "intercept", "threshold", "version")}
    return RiskModel(data["version"], float(data["intercept"]), factors, float(data["threshold"]), source,
                     features or FeatureOptions(), meta)


def model_to_dict(model: RiskModel) -> dict:
    return {"format": MODEL_FORMAT, "version": model.version, "intercept": model.intercept,
            "threshold": model.threshold, "factors": [asdict(f) for f in model.factors], **model.meta}


def content_version(prefix: str, data: Any) -> str:
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return f"{prefix}-{hashlib.sha256(blob).hexdigest()[:12]}"


def _manual_factors(entries: list, path, at: _Where, cue_types: CueTypes,
                    features: tuple[str, ...]) -> tuple[list[dict], tuple[Factor, ...], list[str]]:
    """manual.factors with the cue types' factors in place: (the entries as scored, the factors,
    warnings for `rules check`). `{cue: X}` puts type X's factor (its `risk:` in cue_types.yaml)
    there; types named nowhere come last; a factor written out for cue_X replaces X's own."""
    types_path = cue_types.path or path
    types_at = _Where(types_path, cue_types.lines)
    written = {}
    for i, e in enumerate(entries):
        if isinstance(e, dict) and "cue" not in e and isinstance(e.get("feature"), str):
            written.setdefault(e["feature"], i)
    dicts, factors, placed, warnings = [], [], {}, []

    def from_type(label: str) -> tuple[dict, Factor]:
        t = cue_types.get(label)
        k = cue_types.types.index(t)
        if "feature" in t.risk:
            raise types_at.error(("types", k, "risk", "feature"), f"cue type {label!r}, risk: leave out `feature`; "
                                 f"the factor is cue_{label}.")
        d = {"feature": f"cue_{label}", **t.risk}
        return d, _factor(d, f"cue type {label!r}, risk", types_path, types_at, ("types", k, "risk"), features)

    for i, e in enumerate(entries):
        loc = ("manual", "factors", i)
        where = f"manual.factors[{i}]"
        if isinstance(e, dict) and "cue" in e:
            label = e["cue"]
            extra = sorted(set(e) - {"cue"}, key=str)
            if extra:
                raise at.error(loc + (extra[0],), f"{where}: {{cue: {label}}} places a cue type's factor; its points, "
                                                  f"cap and label are under risk: in cue_types.yaml. Remove "
                                                  f"{', '.join(map(str, extra))} here, or write the factor out "
                                                  f"with feature: cue_{label}.")
            if not isinstance(label, str) or label not in cue_types:
                raise at.error(loc + ("cue",), f"{where}: cue: {cue_types.unknown(str(label))}")
            if cue_types.get(label).risk is None:
                raise at.error(loc + ("cue",), f"{where}: cue type {label!r} has no `risk:` in "
                                               f"{cue_types.where(label)}; give it points there or remove this line.")
            if label in placed or f"cue_{label}" in written:
                raise at.error(loc + ("cue",), f"{where}: the cue type {label!r} is listed twice; keep one.")
            placed[label] = i
            d, factor = from_type(label)
        else:
            d, factor = e, _factor(e, where, path, at, loc, features)
            if written.get(factor.feature) != i:
                raise at.error(loc + ("feature",), f"{where}: {factor.feature} is listed twice; keep one.")
            label = factor.feature[4:] if factor.feature.startswith("cue_") else None
            t = cue_types.get(label) if label else None
            if t is not None and t.risk is not None:
                warnings.append(str(at.error(loc, f"{where}: {factor.feature} is weighted here and under risk: of "
                                                  f"the cue type {label!r} ({cue_types.where(label)}); the weight "
                                                  f"here is used. Keep one: write - {{cue: {label}}} here.")))
        dicts.append(d)
        factors.append(factor)
    for t in cue_types.types:
        if t.risk is not None and t.label not in placed and f"cue_{t.label}" not in written:
            d, factor = from_type(t.label)
            dicts.append(d)
            factors.append(factor)
    return dicts, tuple(factors), warnings


def load_risk_model(rules_dir, models_dir, cue_types: CueTypes | None = None) -> RiskModel:
    """The active risk model named by rules_dir/risk.yaml: its manual weights (with the cue types'
    factors of `cue_types`, default: the pack's cue_types.yaml) or a fitted file, with the
    per-segment weights of `segments:` (manual weights only). `meta["warnings"]`: what
    `churnwatch rules check` shows as warnings."""
    path = Path(rules_dir) / "risk.yaml"
    cue_types = cue_types if cue_types is not None else load_cue_types(rules_dir)
    names = feature_names(cue_types.labels)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RuleError(path, "no risk rules file. Create it (see the one shipped in rules/).") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RuleError(path, f"cannot read the file ({e}).") from None
    data, node = parse_yaml(text, path)
    data = {} if data is None else data
    at = _Where(path, key_lines(node) if node is not None else {})
    if not isinstance(data, dict):
        raise at.error((), "risk.yaml holds a mapping (active, threshold, features, manual, segments).")
    unknown = sorted(set(data) - set(TOP_KEYS), key=str)
    if unknown:
        raise at.error((unknown[0],), f"{unknown_key(unknown[0], TOP_KEYS)} Keys: {', '.join(TOP_KEYS)}.")
    features = _feature_options(data.get("features"), path, at)
    if "cue_labels" not in (data.get("features") or {}):
        features = replace(features, cue_labels=tuple(cue_types.labels))
    active = str(data.get("active", "manual"))
    if active == "manual":
        manual = data.get("manual") or {}
        if not isinstance(manual, dict):
            raise at.error(("manual",), "manual: a mapping with intercept and factors.")
        unknown = sorted(set(manual) - set(MANUAL_KEYS), key=str)
        if unknown:
            raise at.error(("manual", unknown[0]), f"manual: {unknown_key(unknown[0], MANUAL_KEYS)}")
        entries = manual.get("factors", [])
        if not isinstance(entries, list):
            raise at.error(("manual", "factors"), "manual.factors: a list of factors, each with feature and points.")
        scored, factors, warnings = _manual_factors(entries, path, at, cue_types, names)
        if not entries:
            raise at.error(("manual",), "manual.factors is empty: list at least one factor with feature and points.")
        threshold = _threshold(data.get("threshold", 50), "threshold", at)
        intercept = _number(manual.get("intercept", 0.0), "intercept", at, ("manual", "intercept"))
        manual = {**manual, "factors": scored}
        version = content_version("manual", {"manual": manual, "threshold": threshold,
                                             "features": asdict(features),
                                             **({"segments": data["segments"]} if data.get("segments") else {})})
        model = RiskModel(version, intercept, factors, threshold, str(path), features,
                          {"warnings": warnings} if warnings else {})
        segments = _segments(data.get("segments"), manual, model, at, names)
        return replace(model, segments=segments)
    if data.get("threshold") is not None:
        _threshold(data["threshold"], "threshold", at)
    risk_dir = Path(models_dir) / "risk"
    if active == "latest":
        files = sorted(risk_dir.glob("*.json"), key=_created)
        if not files:
            raise at.error(("active",), f"active: latest, but {risk_dir} holds no fitted model. "
                                        "Run: churnwatch risk fit, or set active: manual.")
        model_path = files[-1]
    else:
        model_path = risk_dir / active
        if not model_path.is_file():
            found = ", ".join(p.name for p in sorted(risk_dir.glob("*.json"))) or "none"
            raise at.error(("active",), f"active: {active!r}: no such file in {risk_dir} (found: {found}). "
                                        "Set active: manual, latest, or one of those files.")
    try:
        model = model_from_dict(json.loads(model_path.read_text()), str(model_path), features)
    except (ValueError, KeyError, TypeError, OSError) as e:
        raise RuleError(model_path, f"not a churnwatch risk model file ({e}). Re-run: churnwatch risk fit") from None
    if data.get("threshold_override") is not None:
        model = replace(model, threshold=_threshold(data["threshold_override"], "threshold_override", at))
    if data.get("segments"):
        model = replace(model, meta={**model.meta, "segments_ignored": "segments: in risk.yaml apply to the "
                                     "manual weights only; a fitted model scores every segment alike"})
    return model


def _threshold(value, key: str, at: _Where) -> float:
    threshold = _number(value, key, at, (key,))
    if not 0 <= threshold <= 100:
        raise at.error((key,), f"{key}: a score from 0 to 100, got {threshold:g}.")
    return threshold


def _created(model_file: Path) -> str:
    """When a fitted model file was made (for active: latest); "" for one that cannot be read."""
    try:
        return str(json.loads(model_file.read_text()).get("created", ""))
    except (OSError, ValueError, AttributeError):
        return ""


# --- scoring ------------------------------------------------------------------------------------


def _evidence_copy(fv: FeatureValue | None) -> list[dict[str, Any]]:
    # a new list of the same items: merge_events copies an item before it annotates it
    return list(fv.evidence) if fv is not None else []


_NEG_ZERO = "-0.0"  # the key of -0.0 in a factor's table (0.0 == -0.0, but x() may keep the sign)


class _Memo(dict):
    """(factor, raw value) -> the log-odds it adds, remembered across the accounts of a book
    (one table per factor, by identity: the memo lives no longer than the model): many accounts
    share a value (0 cues, 1 late invoice), and a remembered float is the same float, so no score
    changes."""

    def table(self, f: Factor) -> dict:
        """Factor `f`'s table: value key -> the log-odds it adds."""
        table = self.get(id(f))
        if table is None:
            table = self[id(f)] = {}
        return table

    def weight_of(self, f: Factor, v: float | None) -> float:
        table = self.table(f)
        key = v if v or v is None or math.copysign(1.0, v) > 0 else _NEG_ZERO  # -0.0 apart from 0.0
        c = table.get(key)
        if c is None:
            c = table[key] = f.weight * f.x(v)
        return c

    def tables(self, m: RiskModel) -> tuple[list[tuple[Factor, str, dict]], tuple[int, ...]]:
        """(factor, feature, its table) for each factor of `m`, in order, and the positions of the
        factors whose evidence can count an event (made once per model): score_features looks a
        value up in the table itself (a call of weight_of per factor and account was a fifth of
        scoring 100,000 accounts) and looks for one event in several factors only where it can be."""
        out = self.get(("tables", id(m)))
        if out is None:
            tables = [(f, f.feature, self.table(f)) for f in m.factors]
            counting = tuple(i for i, f in enumerate(m.factors) if f.feature not in CONTEXT_ONLY_FEATURES)
            out = self[("tables", id(m))] = (tables, counting)
        return out


def _shares_an_event(fvs) -> bool:
    """Whether two counted evidence items of the feature values `fvs` (of the factors whose
    evidence can count) could be one event (then merge_events has work). Most accounts have
    fewer than two counted items, so those are found first and keyed only then."""
    counted = [item for fv in fvs if fv is not None and fv.evidence for item in fv.evidence
               if item.get("units") and item["units"] > 0]
    if len(counted) < 2:
        return False
    seen: set[str] = set()
    for item in counted:
        for k in event_keys(item):
            if k in seen:
                return True
            seen.add(k)
    return False


def score_features(account_id: str, as_of: date, feats: dict[str, FeatureValue], model: RiskModel,
                   segment: str | None = None, memo: _Memo | None = None) -> RiskResult:
    """Score one account's features with the weights of its segment: merge evidence of one event
    across factors (counted once), then log-odds, score, and score points per factor. `memo`
    (score_accounts passes one per book) remembers what a factor adds at a value. The result's
    evidence lists are the features' own, copied only where merging annotates them."""
    m = model.for_segment(segment)
    memo = memo if memo is not None else _Memo()
    tables, counting = memo.tables(m)
    get = feats.get
    fvs = [get(name) for _, name, _ in tables]
    if _shares_an_event([fvs[i] for i in counting]):
        raw = {name: fv.value for name, fv in feats.items()}
        evidence = {name: _evidence_copy(fv) for (_, name, _), fv in zip(tables, fvs)}
        values, merged = merge_events(m.factors, raw, evidence, memo.weight_of)
    else:  # what merge_events returns when no two items share a key
        raw = evidence = None
        merged = []
    points_in = {}
    info = {}
    copysign = math.copysign
    for (f, name, table), fv in zip(tables, fvs):
        if fv is None:
            v, note, items = None, "", []
        else:
            v, note, items = fv.value, fv.note, fv.evidence
        before = v
        if raw is not None:  # merged values and annotated copies of the evidence
            v, before, items = values.get(name), raw.get(name), evidence[name]
        key = v if v or v is None or copysign(1.0, v) > 0 else _NEG_ZERO  # as _Memo.weight_of
        c = table.get(key)
        if c is None:
            c = table[key] = f.weight * f.x(v)
        points_in[name] = c
        info[name] = item = {"value": v, "note": note, "label": f.label, "evidence": items}
        if v != before:
            item["value_before_merge"] = before
    contributions = {"intercept": m.intercept, **points_in}
    z = math.fsum(contributions.values())  # = m.log_odds(values)
    score, base, points = score_points(m.intercept, points_in)
    return RiskResult(account_id, as_of, score, z, contributions, score >= m.threshold, m.threshold,
                      model.version, info, base, points, m.segment, merged)


def _segment_of(session: Session, account_id: str) -> str | None:
    return session.scalar(select(Account.segment).where(Account.id == account_id))


def score_account(session: Session, account_id: str, as_of: date, model: RiskModel) -> RiskResult:
    """Score one account as of a date (only data up to that date), with its segment's weights."""
    segment = _segment_of(session, account_id) if model.segments else None
    return score_features(account_id, as_of, compute_features(session, account_id, as_of, model.features), model,
                          segment)


def accounts_open_at(session: Session, as_of: date) -> list[str]:
    """Accounts that existed and were not lost at as_of."""
    q = select(Account.id).where(or_(Account.created_on.is_(None), Account.created_on <= as_of),
                                 or_(Account.lost_on.is_(None), Account.lost_on > as_of),
                                 or_(Account.status != "lost", Account.lost_on.is_not(None)))
    return list(session.scalars(q.order_by(Account.id)))


def scored_features(model: RiskModel) -> set[str]:
    """The features a model's factors read, over its segments too."""
    return {f.feature for m in (model, *model.segments.values()) for f in m.factors}


def score_accounts(session: Session, as_of: date, model: RiskModel) -> list[RiskResult]:
    """Score (and explain) every account open at as_of, riskiest first; each result equals
    `score_account` of that account. Reads the store once per table for all accounts and
    computes only the features the factors read (pipeline.risk.bulk_features), scoring each
    account as soon as its features are made; a large book on SQLite is split between this
    process and a forked one (pipeline.risk.two_processes), with the same results."""
    ids = accounts_open_at(session, as_of)
    segments = dict(session.execute(select(Account.id, Account.segment)).all()) if model.segments else {}
    names = scored_features(model)

    def score_part(part_session: Session, part: list[str]) -> list[RiskResult]:
        book = load_book(part_session, part, as_of)
        memo = _Memo()
        return [score_features(a, as_of, feats, model, segments.get(a), memo)
                for a, feats in iter_book_features(book, part, as_of, model.features, names)]

    # millions of small dicts and lists, none in a cycle: the cyclic garbage collector would walk
    # the growing heap again and again (it doubled the time of 100,000 accounts), so it waits
    collecting = gc.isenabled()
    gc.disable()
    try:
        results = score_in_two(session, ids, score_part, RiskResult)
        if results is None:
            results = score_part(session, ids)
        # sorted here too: with the collector back on, the sort keys' allocations set off full
        # collections over the whole heap (14% of the time of 20,000 accounts, seen in cProfile)
        results.sort(key=_riskiest_first)
    finally:
        if collecting:
            gc.enable()
    return results


def _riskiest_first(r: RiskResult) -> tuple[float, str]:
    return -r.score, r.account_id


def save_score(session: Session, result: RiskResult) -> RiskScore:
    """Store (or replace) the RiskScore row of a result."""
    row = session.scalar(select(RiskScore).where(RiskScore.account_id == result.account_id,
                                                 RiskScore.as_of == result.as_of,
                                                 RiskScore.model_version == result.model_version))
    row = row or RiskScore(account_id=result.account_id, as_of=result.as_of, model_version=result.model_version)
    row.score, row.threshold, row.flagged = result.score, result.threshold, result.flagged
    row.contributions = result.contributions
    session.add(row)
    session.flush()
    return row


def save_scores(session: Session, results: list[RiskResult]) -> int:
    """Store (or replace) the RiskScore rows of many results at once; returns how many. One
    insert for the new rows and one update for those already stored (same account, as_of and
    model version), both as single statements with many parameter sets."""
    # as in score_accounts: the results are millions of objects, and with the collector on, the
    # rows read and the parameter sets made here set off full collections over all of them (10
    # of the 12.8 s of storing 100,000 scores, in cProfile)
    collecting = gc.isenabled()
    gc.disable()
    try:
        session.flush()
        _save_scores(session, session.connection(), RiskScore.__table__, results)
    finally:
        if collecting:
            gc.enable()
    return len(results)


def _save_scores(session: Session, conn, table, results: list[RiskResult]) -> None:
    existing = {}
    for as_of, version in {(r.as_of, r.model_version) for r in results}:
        q = select(table.c.id, table.c.account_id).where(table.c.as_of == as_of, table.c.model_version == version)
        for rid, acc in conn.execute(q):
            existing[(acc, as_of, version)] = rid
    new, old = [], []
    for r in results:
        rid = existing.get((r.account_id, r.as_of, r.model_version))
        if rid is None:
            new.append({"account_id": r.account_id, "as_of": r.as_of, "model_version": r.model_version,
                        "score": r.score, "threshold": r.threshold, "flagged": r.flagged,
                        "contributions": r.contributions})
        else:
            old.append({"rid": rid, "v_score": r.score, "v_threshold": r.threshold, "v_flagged": r.flagged,
                        "v_contributions": r.contributions})
    if new:
        conn.execute(table.insert(), new)
    if old:
        conn.execute(update(table).where(table.c.id == bindparam("rid")).values(
            score=bindparam("v_score"), threshold=bindparam("v_threshold"), flagged=bindparam("v_flagged"),
            contributions=bindparam("v_contributions")), old)
        for obj in list(session.identity_map.values()):  # loaded rows: read the new values again
            if isinstance(obj, RiskScore):
                session.expire(obj)
