"""The explainable risk score: 0-100 per account, from features, with a threshold.

    model = load_risk_model(settings.rules_dir, settings.models_dir)
    result = score_account(session, "ACME", date(2026, 3, 31), model)
    result.score, result.flagged, result.contributions   # factor -> log-odds

score = 100 * sigmoid(intercept + sum_i w_i * x_i), x_i = (transform(feature_i) - center_i) / scale_i.
The contributions w_i * x_i and the intercept add up to the log-odds exactly, so a score can be
read factor by factor. Weights come from rules/risk.yaml (set by hand, points-style) or from a
fitted model file in models/risk/ (`churnwatch risk fit`); risk.yaml says which is active.
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
from pipeline.risk.features import (
    CUE_LABELS,
    ORDER_FEATURES,
    FeatureOptions,
    FeatureValue,
    compute_features,
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

    def log_odds(self, values: dict[str, float | None]) -> tuple[float, dict[str, float]]:
        contributions = {"intercept": self.intercept}
        for f in self.factors:
            contributions[f.feature] = f.weight * f.x(values.get(f.feature))
        return math.fsum(contributions.values()), contributions


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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["as_of"] = self.as_of.isoformat()
        return d


# --- loading ------------------------------------------------------------------------------------


def _factor(d: dict, where: str, path) -> Factor:
    if d.get("feature") not in FEATURE_NAMES:
        raise RuleError(path, f"{where}: unknown feature {d.get('feature')!r}. Features: {', '.join(FEATURE_NAMES)}.")
    t = d.get("transform", "none")
    if t not in TRANSFORMS:
        raise RuleError(path, f"{where}: transform {t!r} is not one of {', '.join(TRANSFORMS)}.")
    try:
        points = float(d.get("points", d.get("weight")))
        per = float(d.get("per", d.get("scale", 1.0)))
        normal = d.get("normal")
        center = transform(t, float(normal)) if normal is not None else float(d.get("center", 0.0))
        cap = None if d.get("cap") is None else float(d["cap"])
        floor = None if d.get("floor") is None else float(d["floor"])
        missing = float(d.get("missing", normal if normal is not None else 0.0))
    except (TypeError, ValueError):
        raise RuleError(path, f"{where}: points, per, normal, cap, floor and missing must be numbers "
                              "(points is required).") from None
    if per <= 0:
        raise RuleError(path, f"{where}: per must be above 0, got {per}.")
    return Factor(d["feature"], points, t, center, per, cap, missing, str(d.get("label", "")), floor)


def _feature_options(data: dict | None, path) -> FeatureOptions:
    data = dict(data or {})
    names = {f.name for f in fields(FeatureOptions)}
    unknown = set(data) - names
    if unknown:
        raise RuleError(path, f"features: unknown option(s) {', '.join(sorted(unknown))}. "
                              f"Options: {', '.join(sorted(names))}.")
    if "cue_labels" in data:
        data["cue_labels"] = tuple(data["cue_labels"])
    try:
        return FeatureOptions(**data)
    except (TypeError, ValueError) as e:
        raise RuleError(path, f"features: {e}") from None


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
    """The active risk model named by rules_dir/risk.yaml: its manual weights or a fitted file."""
    path = Path(rules_dir) / "risk.yaml"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise RuleError(path, "no risk rules file. Create it (see the one shipped in rules/).") from None
    except yaml.YAMLError as e:
        raise RuleError(path, f"not valid YAML: {e}") from None
    features = _feature_options(data.get("features"), path)
    active = str(data.get("active", "manual"))
    if active == "manual":
        manual = data.get("manual") or {}
        factors = tuple(_factor(f, f"manual.factors[{i}]", path) for i, f in enumerate(manual.get("factors", [])))
        if not factors:
            raise RuleError(path, "manual.factors is empty: list at least one factor with feature and points.")
        threshold = float(data.get("threshold", 50))
        version = content_version("manual", {"manual": manual, "threshold": threshold,
                                             "features": asdict(features)})
        return RiskModel(version, float(manual.get("intercept", 0.0)), factors, threshold, str(path), features)
    risk_dir = Path(models_dir) / "risk"
    if active == "latest":
        files = sorted(risk_dir.glob("*.json"), key=lambda p: json.loads(p.read_text()).get("created", ""))
        if not files:
            raise RuleError(path, f"active: latest, but {risk_dir} holds no fitted model. "
                                  "Run: churnwatch risk fit, or set active: manual.")
        model_path = files[-1]
    else:
        model_path = risk_dir / active
        if not model_path.exists():
            found = ", ".join(p.name for p in sorted(risk_dir.glob("*.json"))) or "none"
            raise RuleError(path, f"active: {active!r}: no such file in {risk_dir} (found: {found}). "
                                  "Set active: manual, latest, or one of those files.")
    try:
        model = model_from_dict(json.loads(model_path.read_text()), str(model_path), features)
    except (ValueError, KeyError, TypeError) as e:
        raise RuleError(model_path, f"not a churnwatch risk model file ({e}). Re-run: churnwatch risk fit") from None
    if data.get("threshold_override") is not None:
        model = replace(model, threshold=float(data["threshold_override"]))
    return model


# --- scoring ------------------------------------------------------------------------------------


def score_features(account_id: str, as_of: date, feats: dict[str, FeatureValue], model: RiskModel) -> RiskResult:
    values = {name: fv.value for name, fv in feats.items()}
    z, contributions = model.log_odds(values)
    score = 100.0 * sigmoid(z)
    evidence = {f.feature: {"value": values.get(f.feature), "note": feats[f.feature].note if f.feature in feats else "",
                            "label": f.label, "evidence": feats[f.feature].evidence if f.feature in feats else []}
                for f in model.factors}
    return RiskResult(account_id, as_of, score, z, contributions, score >= model.threshold, model.threshold,
                      model.version, evidence)


def score_account(session: Session, account_id: str, as_of: date, model: RiskModel) -> RiskResult:
    """Score one account as of a date (only data up to that date)."""
    return score_features(account_id, as_of, compute_features(session, account_id, as_of, model.features), model)


def accounts_open_at(session: Session, as_of: date) -> list[str]:
    """Accounts that existed and were not lost at as_of."""
    q = select(Account.id).where(or_(Account.created_on.is_(None), Account.created_on <= as_of),
                                 or_(Account.lost_on.is_(None), Account.lost_on > as_of),
                                 or_(Account.status != "lost", Account.lost_on.is_not(None)))
    return list(session.scalars(q.order_by(Account.id)))


def score_accounts(session: Session, as_of: date, model: RiskModel) -> list[RiskResult]:
    """Score every account open at as_of, riskiest first."""
    results = [score_account(session, a, as_of, model) for a in accounts_open_at(session, as_of)]
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
