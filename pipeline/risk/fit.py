"""Learn risk weights from past outcomes, and backtest them against two baselines.

    model = fit_orders(orders_df, cutoffs=[...], options=RiskFitOptions())
    result = backtest(orders_df, [date(1997, 9, 30), date(1997, 12, 31)], horizon_days=91)

Labels come from rolling cutoffs: an account active at a cutoff (an order in the 365 days up to
it) is lost when it orders nothing in the horizon after the cutoff (or, in the store, is marked
lost within it). A backtest at cutoff C trains only on earlier cutoffs whose horizon ends by C,
so every label it learns from was observable at C. Baselines (pipeline.risk.baselines): days since
the last order, BG/NBD 1 - P(alive) and BG/NBD P(no order in the horizon) (pipeline.risk.bgnbd);
a baseline that cannot be fitted is reported as unavailable with the reason, and the rest stands.
A cutoff that cannot be backtested (no training history, every account lost, a horizon that runs
past the end of the data) is skipped with the reason; only when no cutoff can be is it an error.
A horizon ending a few days past the data's last date (`horizon_slack_days`) is a warning.
Lead times: for the accounts lost at a cutoff, how many days before their last order the score
first reached the threshold (`lead_times`).
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
    # Days a cutoff's horizon may run past the last date in the data (an export ends a few days
    # after its last order) with a warning; past that the labels cannot be seen and it is refused.
    horizon_slack_days: int = 7


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
        raise ChurnwatchError(_no_cutoff(orders, options))
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
    if len(y) == 0:
        raise ChurnwatchError(f"Cannot fit: no account had a positive order in the {options.active_days} days "
                              f"before cutoffs {', '.join(map(str, cutoffs))}. Use later cutoffs or more history.")
    if len(set(y)) < 2:
        days = options.horizon_days
        what = (f"lost (none ordered again within {days} days; a log where customers order only once has "
                "nothing to learn from)" if y[0] else f"kept (all ordered again within {days} days)")
        raise ChurnwatchError(f"Cannot fit: every training account is {what} at cutoffs "
                              f"{', '.join(map(str, cutoffs))}. Use other cutoffs or more history.")
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


def unobservable(cutoff: date, last_day: date, options: RiskFitOptions,
                 first_day: date | None = None) -> tuple[str | None, str | None]:
    """(refusal, warning) for a cutoff whose horizon runs past the last day the data covers: an
    account that ordered nothing after it would count as lost, unseen. Refused past the slack
    (or at/after the end), warned within it; (None, None) when the horizon is observed."""
    end = cutoff + timedelta(days=options.horizon_days)
    if end <= last_day:
        return None, None
    latest = last_day - timedelta(days=options.horizon_days)
    if cutoff >= last_day or (end - last_day).days > options.horizon_slack_days:
        fix = (f"Pick a cutoff on or before {latest}, or a shorter --horizon-days."
               if first_day is None or latest > first_day else
               f"The data starts on {first_day}: use a shorter --horizon-days or a longer order history.")
        return (f"Cutoff {cutoff}: its {options.horizon_days}-day horizon runs to {end}, but the data ends on "
                f"{last_day}, so who was lost cannot be seen. {fix}"), None
    return None, (f"Cutoff {cutoff}: its {options.horizon_days}-day horizon runs to {end}, {(end - last_day).days} "
                  f"day(s) past the last date in the data ({last_day}); an account whose next order falls in "
                  "those days counts as lost.")


def check_observable(cutoffs: list[date], orders, options: RiskFitOptions) -> None:
    """Refuse training cutoffs whose horizon the orders do not cover (see `unobservable`)."""
    if orders.empty:
        return
    first_day, last_day = orders["date"].min().date(), orders["date"].max().date()
    for c in cutoffs:
        refusal, _ = unobservable(c, last_day, options, first_day)
        if refusal:
            raise ChurnwatchError(refusal)


def fit_orders(orders, cutoffs: list[date], options: RiskFitOptions | None = None,
               feature_options: FeatureOptions | None = None, source: str = "orders") -> RiskModel:
    """Fit from an orders frame (account_id, date, amount) at the given training cutoffs."""
    options = options or RiskFitOptions()
    check_orders(orders)
    check_observable(cutoffs, orders, options)
    frame = training_frame(orders, cutoffs, options, feature_options or FeatureOptions())
    return fit_frame(frame, options, cutoffs, source)


def _factor_x(f: Factor, raw):
    """Factor.x over an array (NaN = missing), vectorised; equal to [f.x(v) for v in raw]."""
    import numpy as np

    v = np.asarray(raw, dtype=float)
    v = np.where(np.isnan(v), f.missing, v)
    if f.cap is not None:
        v = np.minimum(v, f.cap)
    if f.floor is not None:
        v = np.maximum(v, f.floor)
    if f.transform == "log1p":
        v = np.log1p(np.maximum(v, 0.0))
    elif f.transform == "log2p":
        v = np.log2(1.0 + np.maximum(v, 0.0))
    return (v - f.center) / f.scale


def score_frame(model: RiskModel, frame):
    """Scores (0-100) of the rows of a feature frame."""
    import numpy as np

    z = np.full(len(frame), model.intercept)
    for f in model.factors:
        col = frame[f.feature].to_numpy(dtype=float) if f.feature in frame.columns else np.full(len(frame), np.nan)
        z = z + f.weight * _factor_x(f, col)
    with np.errstate(over="ignore"):
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
    # what a perfect ranking would flag (the lost come first): no scorer can go below it, so a log
    # where most accounts are lost cannot catch 85% by flagging half (CDNOW: 0.70)
    out["flag_share_for_85pct_floor"] = round(flag_share_for_recall(y, y.astype(float)), 4)
    if prob is not None:
        out["brier"] = round(float(brier_score_loss(y, np.clip(prob, 0, 1))), 4)
    return out


def _no_cutoff(orders, options: RiskFitOptions) -> str:
    span = (f"the orders run from {orders['date'].min().date()} to {orders['date'].max().date()}"
            if len(orders) else "there are no orders")
    return (f"No training cutoff: fitting needs {options.min_history_days} days of orders before a cutoff and "
            f"{options.horizon_days} days after it, and {span}. Use a longer order history or pass --cutoff dates.")


def check_orders(orders) -> None:
    """Refuse an orders frame the model cannot learn from, saying why and what to do."""
    if orders.empty:
        raise ChurnwatchError("No orders: the file has no readable rows with account_id, date and amount.")
    if not (orders["amount"] > 0).any():
        raise ChurnwatchError(f"All {len(orders)} amounts are zero or negative (credit notes only); risk is "
                              "learned from orders with positive amounts. Check the amount column and its sign.")


def _one_class(cutoff: date, y, horizon_days: int, orders) -> str:
    last = orders.loc[orders["amount"] > 0, "date"].max().date()
    if y[0]:
        return (f"Cutoff {cutoff}: all {len(y)} accounts active at it were lost (none ordered in the {horizon_days} "
                f"days after it); a backtest needs lost and kept accounts. Pick a cutoff at least {horizon_days} "
                f"days before the last order ({last}), or check that the file holds repeat orders.")
    return (f"Cutoff {cutoff}: all {len(y)} accounts active at it ordered again within {horizon_days} days; "
            "a backtest needs lost and kept accounts. Pick another cutoff or a longer --horizon-days.")


def bgnbd_risk(orders, cutoff: date, accounts, horizon_days: int = 91, penalizer: float = 0.0):
    """(1 - P(alive), P(no order in the horizon)) per account from a BG/NBD model fitted on every
    customer's orders up to the cutoff (pipeline.risk.bgnbd; raises BGNBDError when it cannot fit)."""
    from pipeline.risk.baselines import bgnbd_risk as _bgnbd

    risk, quiet, _ = _bgnbd(orders, cutoff, accounts, horizon_days, penalizer)
    return risk, quiet


# Lead-time bins: days the first warning came before the last order (negative: after it).
LEAD_BINS = ((90, None, "90+ days before the last order"), (30, 90, "30-89 days before"),
             (0, 30, "0-29 days before"), (-30, 0, "1-30 days after"), (-90, -30, "31-90 days after"),
             (None, -90, "more than 90 days after"))


def lead_times(orders, model: RiskModel, cutoff: date, accounts, feature_options: FeatureOptions,
               step_days: int = 7, lookback_days: int = 180) -> dict:
    """For each account in `accounts` (those lost at the cutoff): score it every `step_days` days
    back from the cutoff with the model trained for the cutoff, and find the first date, at most
    `lookback_days` before its last order, on which the score reached the model's threshold. The
    lead is the days from that date to the last order (positive: warned while it still ordered;
    negative: warned that many days after its last order). Accounts never flagged by the cutoff
    are `missed`. Features on each date read only orders up to that date."""
    import numpy as np
    import pandas as pd

    t = pd.Timestamp(cutoff)
    ids = pd.Index([str(a) for a in accounts])
    df = orders[(orders["date"] <= t) & orders["account_id"].astype(str).isin(ids)]
    base = {"threshold": model.threshold, "step_days": step_days, "lookback_days": lookback_days,
            "lost": len(ids), "flagged": 0, "missed": len(ids), "median_days": None, "quantiles": {},
            "histogram": [], "accounts": []}
    if df.empty:
        return base
    last = df[df["amount"] > 0].groupby("account_id")["date"].max().reindex(ids)
    earliest = (last.min() - pd.Timedelta(days=lookback_days))
    steps = max(0, int((t - earliest).days // step_days))
    first_flag = pd.Series(pd.NaT, index=ids, dtype="datetime64[ns]")
    opens = last - pd.Timedelta(days=lookback_days)  # each account's scan window opens here
    df = df.assign(account_id=df["account_id"].astype(str))
    for k in range(steps, -1, -1):  # oldest date first
        d = t - pd.Timedelta(days=k * step_days)
        pending = first_flag.index[first_flag.isna().to_numpy() & (opens <= d).to_numpy()]
        part = df[(df["date"] <= d) & df["account_id"].isin(pending)]
        if part.empty:
            continue
        X = order_features_frame(part, d.date(), feature_options)
        s = score_frame(model, X)
        first_flag.loc[X.index[s >= model.threshold]] = d
    flagged = first_flag.dropna()
    lead = (last.reindex(flagged.index) - flagged).dt.days.astype(int)
    out = {**base, "flagged": int(len(flagged)), "missed": int(len(ids) - len(flagged))}
    if len(lead):
        q = np.quantile(lead.to_numpy(), [0.1, 0.25, 0.5, 0.75, 0.9])
        out["median_days"] = float(np.median(lead.to_numpy()))
        out["quantiles"] = {f"p{int(p * 100)}": float(v) for p, v in zip((0.1, 0.25, 0.5, 0.75, 0.9), q)}
    for lo, hi, label in LEAD_BINS:
        m = np.ones(len(lead), dtype=bool)
        if lo is not None:
            m &= lead.to_numpy() >= lo
        if hi is not None:
            m &= lead.to_numpy() < hi
        out["histogram"].append({"bin": label, "from_days": lo, "to_days": hi, "count": int(m.sum())})
    out["histogram"].append({"bin": "not flagged by the cutoff", "from_days": None, "to_days": None,
                             "count": out["missed"]})
    out["accounts"] = [{"account_id": a, "last_order": str(last[a].date()) if pd.notna(last[a]) else None,
                        "first_flag": str(first_flag[a].date()) if pd.notna(first_flag[a]) else None,
                        "lead_days": int(lead[a]) if a in lead.index else None} for a in ids]
    return out


@dataclass
class BacktestResult:
    metrics: dict[str, dict] = field(default_factory=dict)  # cutoff -> model metrics
    # baseline -> cutoff -> metrics and "status" ("ok"), or {"status": "unavailable", "reason"}
    baselines: dict[str, dict[str, dict]] = field(default_factory=dict)
    scores: list[dict] = field(default_factory=list)  # {"account_id", "cutoff", "score"}
    models: dict[str, dict] = field(default_factory=dict)  # cutoff -> training cutoffs, weights
    lead_times: dict[str, dict] = field(default_factory=dict)  # cutoff -> lead times of the lost accounts
    skipped: dict[str, str] = field(default_factory=dict)  # cutoff -> why it could not be backtested
    warnings: dict[str, str] = field(default_factory=dict)  # cutoff -> what to doubt in its result
    data_until: str | None = None  # the last date the orders cover
    # cutoff -> scorer -> Brier and reliability bins (pipeline.risk.calibration), for scorers with probabilities
    calibration: dict[str, dict[str, dict]] = field(default_factory=dict)

    def baseline_status(self) -> dict[str, dict]:
        """Per baseline: "ok" when it ran at every cutoff, else "unavailable" with the reasons."""
        out = {}
        for name, per_cutoff in self.baselines.items():
            bad = {c: m.get("reason", "") for c, m in per_cutoff.items() if m.get("status") != "ok"}
            out[name] = ({"status": "unavailable", "reason": "; ".join(f"cutoff {c}: {r}" for c, r in bad.items())}
                         if bad else {"status": "ok"})
        return out

    def to_dict(self) -> dict:
        return {"metrics": self.metrics, "baselines": self.baselines, "scores": self.scores, "models": self.models,
                "baseline_status": self.baseline_status(), "lead_times": self.lead_times, "skipped": self.skipped,
                "warnings": self.warnings, "data_until": self.data_until, "calibration": self.calibration}


def backtest(orders, cutoffs: list[date], horizon_days: int = 91, options: RiskFitOptions | None = None,
             feature_options: FeatureOptions | None = None, lead_step_days: int = 7,
             lead_lookback_days: int = 180) -> BacktestResult:
    """Train before each cutoff, score the accounts active at it, compare with what happened.
    A cutoff that cannot be backtested is recorded in `skipped`; if none can be, ChurnwatchError."""
    import pandas as pd

    from pipeline.risk.baselines import BASELINES, BaselineRun, run_baseline
    from pipeline.risk.calibration import reliability_bins
    from pipeline.risk.baselines import bgnbd_risk as _bgnbd

    options = options or RiskFitOptions(horizon_days=horizon_days)
    if options.horizon_days != horizon_days:
        options = RiskFitOptions(**{**options.__dict__, "horizon_days": horizon_days})
    fo = feature_options or FeatureOptions()
    check_orders(orders)
    first_day, last_day = orders["date"].min().date(), orders["date"].max().date()
    result = BacktestResult(baselines={name: {} for name in BASELINES}, data_until=last_day.isoformat())
    for cutoff in sorted(cutoffs):
        key = cutoff.isoformat()
        try:
            train = rolling_cutoffs(cutoff, first_day, options)
            if not train:
                raise ChurnwatchError(
                    f"Cutoff {cutoff}: no training cutoff has {options.min_history_days} days of history and a "
                    f"{horizon_days}-day horizon ending by {cutoff}. Use a later cutoff (data starts {first_day}).")
            known = orders[orders["date"] <= pd.Timestamp(cutoff)]
            active, lost = labels_at(orders, cutoff, options)
            y = lost.to_numpy()
            if len(y) == 0:
                raise ChurnwatchError(f"Cutoff {cutoff}: no account had a positive order in the "
                                      f"{options.active_days} days up to it. Pick a cutoff inside the order history.")
            refusal, warning = unobservable(cutoff, last_day, options, first_day)
            if refusal:  # before the one-class check: an unseen horizon makes everyone look lost
                raise ChurnwatchError(refusal)
            if len(set(y)) < 2:
                raise ChurnwatchError(_one_class(cutoff, y, horizon_days, orders))
            frame = training_frame(known, train, options, fo)
            try:
                model = fit_frame(frame, options, train)
            except ChurnwatchError as e:
                raise ChurnwatchError(f"Cutoff {cutoff}: {e}") from None
        except ChurnwatchError as e:
            result.skipped[key] = str(e)
            continue
        if warning:
            result.warnings[key] = warning
        X = order_features_frame(known, cutoff, fo).reindex(active)
        s = score_frame(model, X)
        result.metrics[key] = {**metrics(y, s, s / 100), "train_cutoffs": [str(c) for c in train]}
        result.calibration[key] = {"churnwatch": reliability_bins(y, s / 100)}

        def recency():
            one = fit_frame(frame, RiskFitOptions(**{**options.__dict__, "features": ("days_since_last_order",)}),
                            train)
            return X["days_since_last_order"].to_numpy(), score_frame(one, X) / 100

        runs = [run_baseline("days_since_last_order", recency)]
        fitted = run_baseline("bgnbd", lambda: _bgnbd(known, cutoff, active, horizon_days))
        if fitted.status == "ok":  # one fit, two baselines: 1 - P(alive), and P(no order in the horizon)
            runs += [BaselineRun("bgnbd", "ok", "", fitted.risk, fitted.risk, fitted.info),
                     BaselineRun("bgnbd_no_order", "ok", "", fitted.prob, fitted.prob, fitted.info)]
        else:
            runs += [fitted, BaselineRun("bgnbd_no_order", "unavailable", fitted.reason)]
        for run in runs:
            if run.status == "ok":
                try:
                    m = metrics(y, run.risk, run.prob)
                    if run.prob is not None:
                        result.calibration[key][run.name] = reliability_bins(y, run.prob)
                except Exception as e:  # noqa: BLE001
                    run.status, run.reason = "unavailable", f"metrics failed: {type(e).__name__}: {e}"
            result.baselines[run.name][key] = ({**m, **run.status_dict()} if run.status == "ok"
                                               else run.status_dict())
        result.scores += [{"account_id": str(a), "cutoff": key, "score": round(float(v), 4)}
                          for a, v in zip(active, s)]
        result.models[key] = {"version": model.version, "intercept": model.intercept,
                              "threshold": model.threshold,
                              "weights": {f.feature: round(f.weight, 4) for f in model.factors}}
        result.lead_times[key] = lead_times(known, model, cutoff, [a for a, v in zip(active, y) if v], fo,
                                            lead_step_days, lead_lookback_days)
    if not result.metrics:
        raise ChurnwatchError("No cutoff could be backtested. " + " ".join(
            r if r.endswith(".") else r + "." for r in result.skipped.values()))
    return result


def load_orders(path, column_map: dict[str, str] | None = None, preset: str | None = None,
                date_order: str | None = None):
    """An orders frame (account_id, date, amount) from a CSV export, read like `crm import`;
    returns (frame, bad rows)."""
    import pandas as pd

    from pipeline.crm.presets import read_rows

    from pipeline.errors import CsvRowError

    rows, bad, _ = read_rows(path, "orders", column_map, preset, date_order)
    for line, r in rows:
        if not math.isfinite(float(r["amount"])):
            bad.append(CsvRowError(path, line, f"amount {r['amount']!r} is too large; use a plain number"))
    rows = [(line, r) for line, r in rows if math.isfinite(float(r["amount"]))]
    frame = pd.DataFrame({"account_id": [str(r["account_id"]) for _, r in rows],
                          "date": pd.to_datetime([r["date"] for _, r in rows]),
                          "amount": [float(r["amount"]) for _, r in rows]})
    if frame.empty:
        raise ChurnwatchError(f"{path}: no readable orders ({len(bad)} bad rows). "
                              "Check that it has the columns account_id, date and amount.")
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
    check_orders(orders)
    if not cutoffs:
        raise ChurnwatchError(_no_cutoff(orders, options))
    check_observable(cutoffs, orders, options)
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
        raise ChurnwatchError(f"No account had a positive order in the {options.active_days} days before cutoffs "
                              f"{', '.join(map(str, cutoffs))}. Import more recent orders or pass --cutoff dates "
                              "inside the order history.")
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
