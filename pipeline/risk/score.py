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
risk.yaml names the file and line.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from pipeline.errors import RuleError
from pipeline.risk.explain import display_points, merge_events, score_points
from pipeline.risk.features import (
    CUE_LABELS,
    ORDER_FEATURES,
    FeatureOptions,
    FeatureValue,
    compute_features,
    features_from_rows,
    load_account_rows,
)
from pipeline.store import Account, RiskScore

TRANSFORMS = ("none", "log1p", "log2p")
OTHER_FEATURES = ("late_payments_365", "days_since_last_contact", "unanswered_streak", "support_cases_90",
                  "support_trend", "disputes_180", "new_contacts_90", "stakeholder_changes_90")
FEATURE_NAMES = ORDER_FEATURES + OTHER_FEATURES + tuple(f"cue_{label}" for label in CUE_LABELS)
MODEL_FORMAT = "churnwatch.risk.v1"


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


def _yaml_lines(text: str) -> dict[tuple, int]:
    """Each key path of a YAML document -> its 1-based line (mapping keys and list items)."""
    out: dict[tuple, int] = {}

    def walk(node, path):
        out.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                out[path + (k.value,)] = k.start_mark.line + 1
                walk(v, path + (k.value,))
                out[path + (k.value,)] = k.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, path + (i,))

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return out
    if node is not None:
        walk(node, ())
    return out


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


def _name(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _factor(d: dict, where: str, path, at: _Where | None = None, loc: tuple = ()) -> Factor:
    at = at or _Where(path, {})

    def bad(msg, key=None):
        return at.error(loc + ((key,) if key else ()), f"{where}: {msg}")

    if not isinstance(d, dict):
        raise bad("each factor is a mapping with at least feature and points, e.g. "
                  "{feature: late_payments_365, points: 0.4}.")
    unknown = sorted(set(d) - set(FACTOR_KEYS), key=str)
    if unknown:
        raise bad(f"unknown key(s) {', '.join(map(str, unknown))}. Keys: {', '.join(FACTOR_KEYS)}.", unknown[0])
    if d.get("feature") not in FEATURE_NAMES:
        raise bad(f"unknown feature {d.get('feature')!r}. Features: {', '.join(FEATURE_NAMES)}.", "feature")
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


def _segments(data, manual: dict, global_model: RiskModel, at: _Where) -> dict[str, RiskModel]:
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
            raise at.error(loc + (unknown[0],), f"segments.{name}: unknown key(s) {', '.join(map(str, unknown))}. "
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
            _factor(merged, where, at.path, at, floc)  # validate with this entry's line
            specs[e["feature"]] = merged
        factors = tuple(_factor(d, f"segments.{name}", at.path, at, loc) for d in specs.values())
        out[str(name)] = replace(global_model, intercept=intercept, threshold=threshold, factors=factors,
                                 segments={}, segment=str(name))
    return out


def _feature_options(data: dict | None, path, at: _Where | None = None) -> FeatureOptions:
    at = at or _Where(path, {})
    if data is not None and not isinstance(data, dict):
        raise at.error(("features",), "features: a mapping of option: value.")
    data = dict(data or {})
    names = {f.name for f in fields(FeatureOptions)}
    unknown = set(data) - names
    if unknown:
        raise at.error(("features", sorted(unknown)[0]), f"features: unknown option(s) {', '.join(sorted(unknown))}. "
                                                        f"Options: {', '.join(sorted(names))}.")
    if "cue_labels" in data:
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


def load_risk_model(rules_dir, models_dir) -> RiskModel:
    """The active risk model named by rules_dir/risk.yaml: its manual weights or a fitted file,
    with the per-segment weights of `segments:` (manual weights only)."""
    path = Path(rules_dir) / "risk.yaml"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RuleError(path, "no risk rules file. Create it (see the one shipped in rules/).") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise RuleError(path, f"not valid YAML: {getattr(e, 'problem', None) or e}",
                        mark.line + 1 if mark else None) from None
    at = _Where(path, _yaml_lines(text))
    if not isinstance(data, dict):
        raise at.error((), "risk.yaml holds a mapping (active, threshold, features, manual, segments).")
    features = _feature_options(data.get("features"), path, at)
    active = str(data.get("active", "manual"))
    if active == "manual":
        manual = data.get("manual") or {}
        if not isinstance(manual, dict):
            raise at.error(("manual",), "manual: a mapping with intercept and factors.")
        entries = manual.get("factors", [])
        if not isinstance(entries, list):
            raise at.error(("manual", "factors"), "manual.factors: a list of factors, each with feature and points.")
        factors = tuple(_factor(f, f"manual.factors[{i}]", path, at, ("manual", "factors", i))
                        for i, f in enumerate(entries))
        if not factors:
            raise at.error(("manual",), "manual.factors is empty: list at least one factor with feature and points.")
        threshold = _number(data.get("threshold", 50), "threshold", at, ("threshold",))
        intercept = _number(manual.get("intercept", 0.0), "intercept", at, ("manual", "intercept"))
        version = content_version("manual", {"manual": manual, "threshold": threshold,
                                             "features": asdict(features),
                                             **({"segments": data["segments"]} if data.get("segments") else {})})
        model = RiskModel(version, intercept, factors, threshold, str(path), features)
        segments = _segments(data.get("segments"), manual, model, at)
        return replace(model, segments=segments)
    risk_dir = Path(models_dir) / "risk"
    if active == "latest":
        files = sorted(risk_dir.glob("*.json"), key=lambda p: json.loads(p.read_text()).get("created", ""))
        if not files:
            raise at.error(("active",), f"active: latest, but {risk_dir} holds no fitted model. "
                                        "Run: churnwatch risk fit, or set active: manual.")
        model_path = files[-1]
    else:
        model_path = risk_dir / active
        if not model_path.exists():
            found = ", ".join(p.name for p in sorted(risk_dir.glob("*.json"))) or "none"
            raise at.error(("active",), f"active: {active!r}: no such file in {risk_dir} (found: {found}). "
                                        "Set active: manual, latest, or one of those files.")
    try:
        model = model_from_dict(json.loads(model_path.read_text()), str(model_path), features)
    except (ValueError, KeyError, TypeError) as e:
        raise RuleError(model_path, f"not a churnwatch risk model file ({e}). Re-run: churnwatch risk fit") from None
    if data.get("threshold_override") is not None:
        model = replace(model, threshold=_number(data["threshold_override"], "threshold_override", at,
                                                 ("threshold_override",)))
    if data.get("segments"):
        model = replace(model, meta={**model.meta, "segments_ignored": "segments: in risk.yaml apply to the "
                                     "manual weights only; a fitted model scores every segment alike"})
    return model


# --- scoring ------------------------------------------------------------------------------------


def _evidence_copy(fv: FeatureValue | None) -> list[dict[str, Any]]:
    # a new list of the same items: merge_events copies an item before it annotates it
    return list(fv.evidence) if fv is not None else []


def score_features(account_id: str, as_of: date, feats: dict[str, FeatureValue], model: RiskModel,
                   segment: str | None = None) -> RiskResult:
    """Score one account's features with the weights of its segment: merge evidence of one event
    across factors (counted once), then log-odds, score, and score points per factor."""
    m = model.for_segment(segment)
    raw = {name: fv.value for name, fv in feats.items()}
    evidence = {f.feature: _evidence_copy(feats.get(f.feature)) for f in m.factors}
    values, merged = merge_events(m.factors, raw, evidence, lambda f, v: f.weight * f.x(v))
    z, contributions = m.log_odds(values)
    score, base, points = score_points(m.intercept, {k: v for k, v in contributions.items() if k != "intercept"})
    info = {}
    for f in m.factors:
        fv = feats.get(f.feature)
        info[f.feature] = {"value": values.get(f.feature), "note": fv.note if fv is not None else "",
                           "label": f.label, "evidence": evidence[f.feature]}
        if values.get(f.feature) != raw.get(f.feature):
            info[f.feature]["value_before_merge"] = raw.get(f.feature)
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


def score_accounts(session: Session, as_of: date, model: RiskModel) -> list[RiskResult]:
    """Score (and explain) every account open at as_of, riskiest first. Reads the store once per
    table for all accounts (pipeline.risk.features.load_account_rows), not once per account."""
    ids = accounts_open_at(session, as_of)
    rows = load_account_rows(session, ids, as_of)
    segments = dict(session.execute(select(Account.id, Account.segment)).all()) if model.segments else {}
    results = [score_features(a, as_of, features_from_rows(rows[a], as_of, model.features), model, segments.get(a))
               for a in ids]
    return sorted(results, key=lambda r: (-r.score, r.account_id))


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
    """Store (or replace) the RiskScore rows of many results at once; returns how many."""
    existing = {}
    for as_of, version in {(r.as_of, r.model_version) for r in results}:
        for row in session.scalars(select(RiskScore).where(RiskScore.as_of == as_of,
                                                           RiskScore.model_version == version)):
            existing[(row.account_id, as_of, version)] = row
    new = []
    for r in results:
        row = existing.get((r.account_id, r.as_of, r.model_version))
        if row is None:
            new.append({"account_id": r.account_id, "as_of": r.as_of, "model_version": r.model_version,
                        "score": r.score, "threshold": r.threshold, "flagged": r.flagged,
                        "contributions": r.contributions})
        else:
            row.score, row.threshold, row.flagged = r.score, r.threshold, r.flagged
            row.contributions = r.contributions
    if new:
        session.execute(RiskScore.__table__.insert(), new)
    session.flush()
    return len(results)
