"""Learn risk weights from past outcomes, and backtest them against two baselines.

    model = fit_orders(orders_df, cutoffs=[...], options=RiskFitOptions())
    result = backtest(orders_df, [date(1997, 9, 30), date(1997, 12, 31)], horizon_days=91)

Labels come from rolling cutoffs: an account active at a cutoff (an order in the 365 days up to
it) is lost when it orders nothing in the horizon after the cutoff (or, in the store, is marked
lost within it). A backtest at cutoff C trains only on earlier cutoffs whose horizon ends by C,
so every label it learns from was observable at C. Baselines: days since the last order, and
BG/NBD (lifetimes' BetaGeoFitter, risk = 1 - P(alive)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pipeline.errors import ChurnwatchError
from pipeline.risk.features import ORDER_FEATURES, FeatureOptions, order_features_frame
from pipeline.risk.score import Factor, RiskModel, content_version, transform

# The transform each feature gets in a fitted model (counts and durations are heavy-tailed).
FIT_TRANSFORMS = {"days_since_last_order": "log1p", "orders_365": "log1p", "order_value_365": "log1p",
                  "order_value_trend": "none", "order_cadence": "log1p", "tenure_days": "log1p",
                  "credit_notes_180": "log1p", "days_since_last_contact": "log1p", "support_trend": "none"}


@dataclass(frozen=True)
class RiskFitOptions:
    # Days after a cutoff in which an account must order to count as kept.
    horizon_days: int = 91
    # An account is scored at a cutoff if it ordered in this many days up to it.
    active_days: int = 365
    # Training cutoffs per fit: the latest one, then this many steps back.
    train_cutoffs: int = 6
    # Days between rolling training cutoffs.
    train_step_days: int = 30
    # A training cutoff needs at least this many days of order history before it.
    min_history_days: int = 60
    # Inverse regularisation strength of the logistic regression (smaller = stronger).
    C: float = 0.5
    # Features the fitted model uses (from ORDER_FEATURES and, fitting from the store, the others).
    features: tuple[str, ...] = ORDER_FEATURES
    # Share of training accounts at the latest training cutoff that the threshold flags.
    flag_share: float = 0.2


def labels_at(orders, cutoff: date, options: RiskFitOptions):
    """(active account ids, lost flags) at a cutoff from an orders frame: lost = no positive order
    in (cutoff, cutoff + horizon]."""
    import pandas as pd

    t = pd.Timestamp(cutoff)
    pos = orders[orders["amount"] > 0]
    act = pos[(pos["date"] > t - pd.Timedelta(days=options.active_days)) & (pos["date"] <= t)]
    active = pd.Index(sorted(act["account_id"].unique()))
    later = pos[(pos["date"] > t) & (pos["date"] <= t + pd.Timedelta(days=options.horizon_days))]
    lost = ~active.isin(later["account_id"].unique())
    return active, pd.Series(lost.astype(int), index=active)


def rolling_cutoffs(test_cutoff: date, first_day: date, options: RiskFitOptions) -> list[date]:
    """Training cutoffs for a test cutoff: each one's horizon ends on or before the test cutoff."""
    latest = test_cutoff - timedelta(days=options.horizon_days)
    out = [latest - timedelta(days=k * options.train_step_days) for k in range(options.train_cutoffs)]
    return sorted(c for c in out if (c - first_day).days >= options.min_history_days)


def training_frame(orders, cutoffs: list[date], options: RiskFitOptions, feature_options: FeatureOptions):
    """Stacked (features, label, cutoff) rows of the active accounts at each cutoff."""
    import pandas as pd

    parts = []
    for c in cutoffs:
        active, lost = labels_at(orders, c, options)
        X = order_features_frame(orders, c, feature_options).reindex(active)
        X["lost"], X["cutoff"] = lost.values, pd.Timestamp(c)
        parts.append(X)
    if not parts:
        raise ChurnwatchError("No training cutoff: the orders need more history before the cutoff.")
    return pd.concat(parts)


def _design(frame, features, transforms, medians=None):
    import numpy as np

    cols, meds = [], dict(medians or {})
    for name in features:
        raw = frame[name].astype(float)
        if name not in meds:
            meds[name] = float(raw.median()) if raw.notna().any() else 0.0
        t = transforms.get(name, "log1p" if raw.min() >= 0 else "none")
        cols.append(raw.fillna(meds[name]).map(lambda v, t=t: transform(t, v)).to_numpy())
    return np.column_stack(cols), meds


def fit_frame(frame, options: RiskFitOptions, cutoffs: list[date], source: str = "orders") -> RiskModel:
    """Fit a balanced, regularised logistic regression on a training frame; returns the model with
    its scaler folded into the factors (center, scale) and training info in meta."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    y = frame["lost"].to_numpy()
    if len(set(y)) < 2:
        raise ChurnwatchError(f"Cannot fit: every training account is {'lost' if y[0] else 'kept'} "
                              f"at cutoffs {', '.join(map(str, cutoffs))}. Use other cutoffs or more history.")
    features = [f for f in options.features if f in frame.columns]
    transforms = {f: FIT_TRANSFORMS.get(f, "log1p" if frame[f].min() >= 0 else "none") for f in features}
    X, medians = _design(frame, features, transforms)
    center, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0] = 1.0
    Z = (X - center) / scale
    lr = LogisticRegression(C=options.C, class_weight="balanced", max_iter=1000).fit(Z, y)
    # Balanced weights fit as if half the accounts were lost; move the intercept back to the
    # real base rate so scores read as probabilities (ranking is unchanged).
    rate = float(y.mean())
    intercept = float(lr.intercept_[0]) + math.log(rate / (1 - rate))
    factors = tuple(Factor(f, float(w), transforms[f], float(c), float(s), None, medians[f], f.replace("_", " "))
                    for f, w, c, s in zip(features, lr.coef_[0], center, scale))
    z = intercept + Z @ lr.coef_[0]
    last = frame["cutoff"] == frame["cutoff"].max()
    threshold = float(np.quantile(100 / (1 + np.exp(-z[last.to_numpy()])), 1 - options.flag_share))
    meta = {"format": "churnwatch.risk.v1", "source": source,
            "training": {"cutoffs": [str(c) for c in cutoffs], "horizon_days": options.horizon_days,
                         "active_days": options.active_days, "rows": len(y), "lost_share": round(rate, 4),
                         "C": options.C, "class_weight": "balanced", "intercept_prior_correction": True},
            "metrics": {"train_roc_auc": round(float(roc_auc_score(y, z)), 4)}}
    body = {"intercept": intercept, "factors": [f.__dict__ for f in factors], "threshold": threshold, **meta}
    meta["created"] = datetime.now(UTC).isoformat(timespec="seconds")
    return RiskModel(content_version("fit", body), intercept, factors, round(threshold, 4), source, meta=meta)


def fit_orders(orders, cutoffs: list[date], options: RiskFitOptions | None = None,
               feature_options: FeatureOptions | None = None, source: str = "orders") -> RiskModel:
    """Fit from an orders frame (account_id, date, amount) at the given training cutoffs."""
    options = options or RiskFitOptions()
    frame = training_frame(orders, cutoffs, options, feature_options or FeatureOptions())
    return fit_frame(frame, options, cutoffs, source)


def score_frame(model: RiskModel, frame):
    """Scores (0-100) of the rows of a feature frame."""
    import numpy as np

    z = np.full(len(frame), model.intercept)
    for f in model.factors:
        col = frame[f.feature].astype(float) if f.feature in frame.columns else np.nan
        z = z + f.weight * np.array([f.x(v) for v in np.broadcast_to(col, (len(frame),))])
    return 100 / (1 + np.exp(-z))


# --- metrics and backtest -----------------------------------------------------------------------


def flag_share_for_recall(y, risk, recall: float = 0.85) -> float:
    """Share of accounts one must flag (riskiest first) to catch `recall` of the lost ones."""
    import numpy as np

    order = np.argsort(-np.asarray(risk), kind="stable")
    caught = np.cumsum(np.asarray(y)[order])
    need = recall * caught[-1]
    return float((np.searchsorted(caught, need) + 1) / len(order)) if caught[-1] else 0.0


def metrics(y, risk, prob=None) -> dict:
    """ROC-AUC, PR-AUC, recall/precision at the top 10% and 20%, share to flag for 85% recall, Brier."""
    import numpy as np
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    y, risk = np.asarray(y), np.asarray(risk, dtype=float)
    out = {"n": len(y), "lost_share": round(float(y.mean()), 4),
           "roc_auc": round(float(roc_auc_score(y, risk)), 4),
           "pr_auc": round(float(average_precision_score(y, risk)), 4)}
    order = np.argsort(-risk, kind="stable")
    for share in (0.1, 0.2):
        k = max(1, int(round(share * len(y))))
        hit = y[order[:k]].sum()
        out[f"precision_top{int(share * 100)}"] = round(float(hit / k), 4)
        out[f"recall_top{int(share * 100)}"] = round(float(hit / max(1, y.sum())), 4)
    out["flag_share_for_85pct"] = round(flag_share_for_recall(y, risk), 4)
    if prob is not None:
        out["brier"] = round(float(brier_score_loss(y, np.clip(prob, 0, 1))), 4)
    return out


def bgnbd_risk(orders, cutoff: date, accounts, horizon_days: int = 91, penalizer: float = 0.001):
    """(1 - P(alive), P(no order in the horizon)) from a BG/NBD model fitted on every customer's
    orders up to the cutoff; the second is exp(-expected orders in the horizon). BG/NBD puts
    P(alive) = 1 for customers who never ordered again, so the first ranks one-time buyers as safe.
    The RFM summary is built here (lifetimes' summary_data_from_transaction_data mis-computes
    recency under pandas 3); the fit is lifetimes' BetaGeoFitter."""
    import numpy as np
    import pandas as pd
    from lifetimes import BetaGeoFitter

    t = pd.Timestamp(cutoff)
    pos = orders[(orders["amount"] > 0) & (orders["date"] <= t)]
    days = pos.assign(day=(pos["date"] - t).dt.days)[["account_id", "day"]].drop_duplicates()
    g = days.groupby("account_id")["day"]
    freq = (g.size() - 1).astype(float)
    rec = (g.max() - g.min()).astype(float)
    T = (-g.min()).astype(float)
    bgf = BetaGeoFitter(penalizer_coef=penalizer)
    bgf.fit(freq.to_numpy(), rec.to_numpy(), T.to_numpy())
    alive = pd.Series(np.asarray(bgf.conditional_probability_alive(freq.to_numpy(), rec.to_numpy(), T.to_numpy())),
                      index=freq.index)
    expected = pd.Series(np.asarray(bgf.conditional_expected_number_of_purchases_up_to_time(
        horizon_days, freq.to_numpy(), rec.to_numpy(), T.to_numpy())), index=freq.index)
    return (1.0 - alive.reindex(accounts).fillna(0.5).to_numpy(),
            np.exp(-expected.reindex(accounts).fillna(0.0).to_numpy()))


@dataclass
class BacktestResult:
    metrics: dict[str, dict] = field(default_factory=dict)  # cutoff -> model metrics
    baselines: dict[str, dict[str, dict]] = field(default_factory=dict)  # baseline -> cutoff -> metrics
    scores: list[dict] = field(default_factory=list)  # {"account_id", "cutoff", "score"}
    models: dict[str, dict] = field(default_factory=dict)  # cutoff -> training cutoffs, weights

    def to_dict(self) -> dict:
        return {"metrics": self.metrics, "baselines": self.baselines, "scores": self.scores, "models": self.models}


def backtest(orders, cutoffs: list[date], horizon_days: int = 91, options: RiskFitOptions | None = None,
             feature_options: FeatureOptions | None = None) -> BacktestResult:
    """Train before each cutoff, score the accounts active at it, compare with what happened."""
    import pandas as pd

    options = options or RiskFitOptions(horizon_days=horizon_days)
    if options.horizon_days != horizon_days:
        options = RiskFitOptions(**{**options.__dict__, "horizon_days": horizon_days})
    fo = feature_options or FeatureOptions()
    first_day = orders["date"].min().date()
    result = BacktestResult(baselines={"days_since_last_order": {}, "bgnbd": {}, "bgnbd_no_order": {}})
    for cutoff in sorted(cutoffs):
        train = rolling_cutoffs(cutoff, first_day, options)
        if not train:
            raise ChurnwatchError(
                f"Cutoff {cutoff}: no training cutoff has {options.min_history_days} days of history and a "
                f"{horizon_days}-day horizon ending by {cutoff}. Use a later cutoff (data starts {first_day}).")
        frame = training_frame(orders[orders["date"] <= pd.Timestamp(cutoff)], train, options, fo)
        model = fit_frame(frame, options, train)
        recency = fit_frame(frame, RiskFitOptions(**{**options.__dict__, "features": ("days_since_last_order",)}), train)
        active, lost = labels_at(orders, cutoff, options)
        X = order_features_frame(orders[orders["date"] <= pd.Timestamp(cutoff)], cutoff, fo).reindex(active)
        y = lost.to_numpy()
        key = cutoff.isoformat()
        if len(set(y)) < 2:
            raise ChurnwatchError(f"Cutoff {cutoff}: every active account is {'lost' if y[0] else 'kept'}; "
                                  "a backtest needs both. Pick another cutoff.")
        s = score_frame(model, X)
        result.metrics[key] = {**metrics(y, s, s / 100), "train_cutoffs": [str(c) for c in train]}
        days = X["days_since_last_order"].to_numpy()
        result.baselines["days_since_last_order"][key] = metrics(y, days, score_frame(recency, X) / 100)
        bg, bg_none = bgnbd_risk(orders[orders["date"] <= pd.Timestamp(cutoff)], cutoff, active, horizon_days)
        result.baselines["bgnbd"][key] = metrics(y, bg, bg)
        result.baselines["bgnbd_no_order"][key] = metrics(y, bg_none, bg_none)
        result.scores += [{"account_id": str(a), "cutoff": key, "score": round(float(v), 4)}
                          for a, v in zip(active, s)]
        result.models[key] = {"version": model.version, "intercept": model.intercept,
                              "weights": {f.feature: round(f.weight, 4) for f in model.factors}}
    return result


def load_orders(path, column_map: dict[str, str] | None = None, preset: str | None = None,
                date_order: str | None = None):
    """An orders frame (account_id, date, amount) from a CSV export, read like `crm import`;
    returns (frame, bad rows)."""
    import pandas as pd

    from pipeline.crm.presets import read_rows

    rows, bad, _ = read_rows(path, "orders", column_map, preset, date_order)
    frame = pd.DataFrame({"account_id": [str(r["account_id"]) for _, r in rows],
                          "date": pd.to_datetime([r["date"] for _, r in rows]),
                          "amount": [float(r["amount"]) for _, r in rows]})
    if frame.empty:
        raise ChurnwatchError(f"{path}: no readable orders ({len(bad)} bad rows).")
    return frame, bad


def store_training_frame(session, cutoffs: list[date], options: RiskFitOptions,
                         feature_options: FeatureOptions | None = None):
    """Training rows from the store: every feature of each account active at a cutoff; lost = no
    positive order within the horizon after it, or marked lost within it."""
    import pandas as pd
    from sqlalchemy import select

    from pipeline.risk.features import compute_features
    from pipeline.store import Account, CrmEvent

    fo = feature_options or FeatureOptions()
    ev = session.execute(select(CrmEvent.account_id, CrmEvent.occurred_on, CrmEvent.amount)
                         .where(CrmEvent.kind == "order")).all()
    orders = pd.DataFrame(ev, columns=["account_id", "date", "amount"])
    if orders.empty:
        raise ChurnwatchError("No orders in the store to learn from. Import them: churnwatch crm import orders.csv --kind orders")
    orders["date"] = pd.to_datetime(orders["date"])
    orders["amount"] = orders["amount"].fillna(0.0).astype(float)
    lost_on = dict(session.execute(select(Account.id, Account.lost_on)).all())
    rows = []
    for c in cutoffs:
        active, lost = labels_at(orders, c, options)
        end = c + timedelta(days=options.horizon_days)
        for acc in active:
            if lost_on.get(acc) is not None and lost_on[acc] <= c:
                continue
            feats = compute_features(session, acc, c, fo)
            row = {name: (fv.value if fv.value is not None else float("nan")) for name, fv in feats.items()}
            marked = lost_on.get(acc) is not None and c < lost_on[acc] <= end
            row.update(account_id=acc, lost=int(bool(lost[acc]) or marked), cutoff=pd.Timestamp(c))
            rows.append(row)
    if not rows:
        raise ChurnwatchError(f"No account was active at cutoffs {', '.join(map(str, cutoffs))}.")
    return pd.DataFrame(rows).set_index("account_id")


def default_cutoffs(session, options: RiskFitOptions) -> list[date]:
    """Rolling cutoffs ending one horizon before the last order in the store."""
    from sqlalchemy import func, select

    from pipeline.store import CrmEvent

    first, last = session.execute(select(func.min(CrmEvent.occurred_on), func.max(CrmEvent.occurred_on))
                                  .where(CrmEvent.kind == "order")).one()
    if first is None:
        raise ChurnwatchError("No orders in the store. Import them: churnwatch crm import orders.csv --kind orders")
    return rolling_cutoffs(last + timedelta(days=1), first, options)


def save_model(model: RiskModel, models_dir) -> Path:
    """Write a fitted model as models_dir/risk/<version>.json; returns the path."""
    import json

    from pipeline.risk.score import model_to_dict

    path = Path(models_dir) / "risk" / f"{model.version}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(model_to_dict(model), indent=2, sort_keys=False) + "\n")
    return path
