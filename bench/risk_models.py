"""Compare churn-risk models on a real order log with churnwatch's backtest protocol.

    python bench/risk_models.py [--data cdnow|cdnow_sample | --csv ORDERS.csv --cutoff D ...] [--no-ebm]

The explainable boosting machine needs interpret-core, which the project does not install: put it
beside the venv's packages with `pip install --target /tmp/ebm interpret-core` and set
CHURNWATCH_BENCH_EXTRA_PATH=/tmp/ebm (it is appended to sys.path, so the venv's numpy and
scikit-learn stay first), or pass --no-ebm. The README's model table came from `--data cdnow`
(about 10 minutes on two cores) and `--data cdnow_sample`.

Protocol (pipeline.risk.fit): at each test cutoff C, train on rolling_cutoffs(C) (6 cutoffs 30 days
apart, each horizon ending by C), using only orders dated <= C; test on the accounts active at C
(labels_at). Hyperparameters are chosen on an inner time split inside the training data only:
inner test cutoff L = the latest training cutoff, inner training cutoffs = rolling_cutoffs(L).
Models: (a) churnwatch's fit_frame as is; (a2) the same LR on the 7 base features with C tuned;
(b) LR on the extended features; (c) GAM = per-feature SplineTransformer + LR (additive);
(c0) GAM on the 7 base features; (d) HistGradientBoosting on the extended features;
(e) EBM (interpret-core, interactions=0) on the extended features.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

import os  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
if os.environ.get("CHURNWATCH_BENCH_EXTRA_PATH"):  # interpret-core only; the venv's numpy/sklearn stay first
    sys.path.append(os.environ["CHURNWATCH_BENCH_EXTRA_PATH"])

from pipeline.risk.features import ORDER_FEATURES, FeatureOptions, order_features_frame  # noqa: E402
from pipeline.risk.fit import (FIT_TRANSFORMS, RiskFitOptions, fit_frame, labels_at, load_orders,  # noqa: E402
                               metrics, rolling_cutoffs, score_frame, training_frame)

warnings.filterwarnings("ignore")
WINDOWS = (30, 90, 180, 365)
# Features whose ratio/trend nature means no log transform (signed or bounded).
SIGNED = {"order_value_trend"} | {f"count_trend_{w}" for w in WINDOWS} | {f"value_trend_{w}" for w in WINDOWS}
BINARY = {"single_order_day", "same_season_last_year"}


def extended_features(orders, as_of: date, horizon_days: int, fo: FeatureOptions) -> pd.DataFrame:
    """Base ORDER_FEATURES plus gap, overdue, window, trend, seasonality and breadth features of
    every account with an order on or before as_of; reads only orders dated <= as_of."""
    t = pd.Timestamp(as_of)
    base = order_features_frame(orders, as_of, fo)
    ids = base.index
    df = orders[orders["date"] <= t]
    pos = df[df["amount"] > 0]
    out = base.copy()
    since = out["days_since_last_order"]
    u = pos[["account_id", "date"]].drop_duplicates().sort_values(["account_id", "date"])
    gaps = pd.DataFrame({"account_id": u["account_id"], "gap": u.groupby("account_id")["date"].diff().dt.days})
    gaps = gaps.dropna()
    gg = gaps.groupby("account_id")["gap"]
    n_gaps = gg.size().reindex(ids).fillna(0)
    q = {p: gg.quantile(p).reindex(ids) for p in (0.25, 0.5, 0.75, 0.9)}
    out["gap_median"] = q[0.5]
    spread_ok = n_gaps >= 2
    out["gap_iqr"] = (q[0.75] - q[0.25]).where(spread_ok)
    out["gap_cv"] = (gg.std(ddof=0) / gg.mean()).reindex(ids).where(spread_ok)
    out["overdue_p75"] = since / q[0.75]
    out["overdue_p90"] = since / q[0.9]
    out["n_order_days"] = u.groupby("account_id").size().reindex(ids).fillna(0).astype(float)
    out["single_order_day"] = (out["n_order_days"] <= 1).astype(float)
    age = (t - pos["date"]).dt.days
    for w in WINDOWS:
        now, prev = pos[age < w], pos[(age >= w) & (age < 2 * w)]
        n_now = now.groupby("account_id").size().reindex(ids).fillna(0)
        n_prev = prev.groupby("account_id").size().reindex(ids).fillna(0)
        v_now = now.groupby("account_id")["amount"].sum().reindex(ids).fillna(0)
        v_prev = prev.groupby("account_id")["amount"].sum().reindex(ids).fillna(0)
        out[f"orders_{w}"] = n_now.astype(float)
        out[f"value_{w}"] = v_now.astype(float)
        out[f"count_trend_{w}"] = np.where(n_now + n_prev > 0, (n_now - n_prev) / (n_now + n_prev).clip(lower=1), 0.0)
        out[f"value_trend_{w}"] = np.where(v_now + v_prev > 0, (v_now - v_prev) / (v_now + v_prev).where(v_now + v_prev > 0, 1), 0.0)
    recent = pos[age < 365]
    month = ((t - recent["date"]).dt.days // 30).clip(upper=11)
    out["active_months_12"] = (pd.DataFrame({"a": recent["account_id"], "m": month}).drop_duplicates()
                               .groupby("a").size().reindex(ids).fillna(0).astype(float))
    lo, hi = t - pd.Timedelta(days=365), t - pd.Timedelta(days=365 - horizon_days)
    season = pos[(pos["date"] > lo) & (pos["date"] <= hi)]["account_id"].unique()
    out["same_season_last_year"] = ids.isin(season).astype(float)
    out["mean_order_value"] = pos.groupby("account_id")["amount"].mean().reindex(ids)
    return out


EXT_FEATURES = None  # set from the first frame


def stacked(orders, cutoffs, options, fo):
    """(features, lost, cutoff) rows of the active accounts at each cutoff, extended features."""
    parts = []
    for c in cutoffs:
        active, lost = labels_at(orders, c, options)
        X = extended_features(orders, c, options.horizon_days, fo).reindex(active)
        X["lost"], X["cutoff"] = lost.values, pd.Timestamp(c)
        parts.append(X)
    return pd.concat(parts)


# --- additive design (shared by LR and GAM) ------------------------------------------------------


class Prep:
    """Median impute + log1p for non-negative heavy-tailed features (FIT_TRANSFORMS where named);
    drops features constant in training (their weight could not be learned)."""

    def __init__(self, frame, features):
        self.features = [f for f in features if frame[f].nunique(dropna=True) > 1]
        self.med = {f: float(frame[f].median()) if frame[f].notna().any() else 0.0 for f in self.features}
        self.log = {f: (FIT_TRANSFORMS.get(f) == "log1p") if f in FIT_TRANSFORMS
                    else (f not in SIGNED and f not in BINARY and frame[f].min() >= 0) for f in self.features}

    def __call__(self, frame):
        cols = []
        for f in self.features:
            v = frame[f].astype(float).fillna(self.med[f]).to_numpy()
            cols.append(np.log1p(np.maximum(v, 0)) if self.log[f] else v)
        return np.column_stack(cols)


def prior_shift(y):
    r = float(np.mean(y))
    return math.log(r / (1 - r))


class LR:
    """Standardised, balanced L2 logistic regression with the intercept moved back to the base rate
    (as fit_frame does)."""

    def __init__(self, features, C):
        self.features, self.C = features, C

    def fit(self, frame):
        from sklearn.linear_model import LogisticRegression

        self.prep = Prep(frame, self.features)
        X = self.prep(frame)
        self.mu, self.sd = X.mean(0), X.std(0)
        self.sd[self.sd == 0] = 1
        y = frame["lost"].to_numpy()
        self.m = LogisticRegression(C=self.C, class_weight="balanced", max_iter=2000).fit((X - self.mu) / self.sd, y)
        self.shift = prior_shift(y)
        return self

    def logit(self, frame):
        return self.m.decision_function((self.prep(frame) - self.mu) / self.sd) + self.shift

    def contributions(self, frame):
        """Per-feature additive terms of the logit (centred at the training mean)."""
        Z = (self.prep(frame) - self.mu) / self.sd
        return pd.DataFrame(Z * self.m.coef_[0], columns=self.prep.features, index=frame.index)


class GAM(LR):
    """Per-feature cubic B-spline basis (knots at training quantiles, constant extrapolation) then
    the same balanced L2 logistic regression: logit = intercept + sum_f s_f(x_f)."""

    def __init__(self, features, C, n_knots):
        super().__init__(features, C)
        self.n_knots = n_knots

    def _basis(self, X, fit=False):
        from sklearn.preprocessing import SplineTransformer

        if fit:
            self.sp, self.slices = [], []
        blocks, start = [], 0
        for j, f in enumerate(self.prep.features):
            col = X[:, [j]]
            if fit:
                kn = np.unique(np.quantile(col[:, 0], np.linspace(0, 1, self.n_knots)))
                if len(kn) < 3 or self.prep.features[j] in BINARY:
                    sp = None
                else:
                    sp = SplineTransformer(knots=kn.reshape(-1, 1), degree=3, extrapolation="constant",
                                           include_bias=False).fit(col)
                self.sp.append(sp)
            sp = self.sp[j]
            b = col if sp is None else sp.transform(col)
            if fit:
                self.slices.append(slice(start, start + b.shape[1]))
                start += b.shape[1]
            blocks.append(b)
        return np.hstack(blocks)

    def fit(self, frame):
        from sklearn.linear_model import LogisticRegression

        self.prep = Prep(frame, self.features)
        B = self._basis(self.prep(frame), fit=True)
        self.mu, self.sd = B.mean(0), B.std(0)
        self.sd[self.sd == 0] = 1
        y = frame["lost"].to_numpy()
        self.m = LogisticRegression(C=self.C, class_weight="balanced", max_iter=3000).fit((B - self.mu) / self.sd, y)
        self.shift = prior_shift(y)
        return self

    def logit(self, frame):
        return self.m.decision_function((self._basis(self.prep(frame)) - self.mu) / self.sd) + self.shift

    def contributions(self, frame):
        T = (self._basis(self.prep(frame)) - self.mu) / self.sd * self.m.coef_[0]
        return pd.DataFrame({f: T[:, s].sum(1) for f, s in zip(self.prep.features, self.slices)}, index=frame.index)


class HGB:
    def __init__(self, features, lr, leaves, iters):
        self.features, self.params = features, dict(learning_rate=lr, max_leaf_nodes=leaves, max_iter=iters)

    def fit(self, frame):
        from sklearn.ensemble import HistGradientBoostingClassifier

        self.m = HistGradientBoostingClassifier(min_samples_leaf=100, l2_regularization=1.0, early_stopping=False,
                                                random_state=0, **self.params)
        self.m.fit(frame[self.features].to_numpy(float), frame["lost"].to_numpy())
        return self

    def logit(self, frame):
        p = np.clip(self.m.predict_proba(frame[self.features].to_numpy(float))[:, 1], 1e-9, 1 - 1e-9)
        return np.log(p / (1 - p))


class EBM(HGB):
    def __init__(self, features, outer_bags=4):
        self.features, self.outer_bags = features, outer_bags

    def fit(self, frame):
        from interpret.glassbox import ExplainableBoostingClassifier

        self.m = ExplainableBoostingClassifier(interactions=0, outer_bags=self.outer_bags, n_jobs=1, random_state=0)
        self.m.fit(frame[self.features].to_numpy(float), frame["lost"].to_numpy())
        return self


# --- protocol ------------------------------------------------------------------------------------


def choose(make, grid, known, train_cutoffs, first_day, options, fo, cache):
    """Pick the grid point with the best inner ROC-AUC: fit on rolling_cutoffs(L), score at L, where
    L is the latest training cutoff. `known` holds the orders up to the test cutoff: L's labels
    (its horizon ends by the test cutoff) come from it, its features only from orders <= L."""
    from sklearn.metrics import roc_auc_score

    L = train_cutoffs[-1]
    inner = rolling_cutoffs(L, first_day, options)
    if not inner or len(grid) == 1:
        return grid[0], {}
    key = ("inner", L)
    if key not in cache:
        cache[key] = (stacked(known, inner, options, fo), stacked(known, [L], options, fo))
    tr, te = cache[key]
    scores = {}
    for g in grid:
        scores[str(g)] = round(float(roc_auc_score(te["lost"], make(*g).fit(tr).logit(te))), 4)
    best = max(grid, key=lambda g: scores[str(g)])
    return best, scores


def run(orders, cutoffs, horizon, use_ebm):
    options, fo = RiskFitOptions(horizon_days=horizon), FeatureOptions()
    first_day = orders["date"].min().date()
    rows, cache, chosen = [], {}, {}
    for cutoff in cutoffs:
        train = rolling_cutoffs(cutoff, first_day, options)
        known = orders[orders["date"] <= pd.Timestamp(cutoff)]
        active, lost = labels_at(orders, cutoff, options)
        y = lost.to_numpy()
        t0 = time.perf_counter()
        tr = stacked(known, train, options, fo)
        te = extended_features(known, cutoff, horizon, fo).reindex(active)
        feat_s = time.perf_counter() - t0
        ext = [c for c in tr.columns if c not in ("lost", "cutoff")]

        def record(name, fit_s, cpu_s, logit, sel_s=0.0, params=None):
            p = 1 / (1 + np.exp(-logit))
            m = metrics(y, p, p)
            rows.append({"cutoff": str(cutoff), "model": name, "n": m["n"], "lost": m["lost_share"],
                         "roc_auc": m["roc_auc"], "pr_auc": m["pr_auc"], "brier": m["brier"],
                         "flag85": m["flag_share_for_85pct"], "flag85_floor": round(0.85 * m["lost_share"], 4), "fit_s": round(fit_s, 2), "fit_cpu_s": round(cpu_s, 2),
                         "select_s": round(sel_s, 1), "params": params})
            print(rows[-1], flush=True)

        # (a) churnwatch as is (its own training frame and fit).
        base_frame = training_frame(known, train, options, fo)
        w0, c0 = time.perf_counter(), time.process_time()
        model = fit_frame(base_frame, options, train)
        fit_s, cpu_s = time.perf_counter() - w0, time.process_time() - c0
        s = score_frame(model, order_features_frame(known, cutoff, fo).reindex(active)) / 100
        record("a_lr_base(churnwatch)", fit_s, cpu_s, np.log(s / (1 - s)), params={"C": 0.5})

        specs = [
            ("a2_lr_base_tunedC", lambda C: LR(list(ORDER_FEATURES), C), [(0.01,), (0.05,), (0.5,), (5.0,)]),
            ("b_lr_ext", lambda C: LR(ext, C), [(0.01,), (0.05,), (0.5,), (5.0,)]),
            ("c0_gam_base", lambda C, k: GAM(list(ORDER_FEATURES), C, k), [(C, k) for C in (0.05, 0.5) for k in (5, 8)]),
            ("c_gam_ext", lambda C, k: GAM(ext, C, k), [(C, 6) for C in (0.01, 0.1, 1.0)]),
            ("d_hgb_ext", lambda lr, leaves, it: HGB(ext, lr, leaves, it), [(0.05, 15, 200), (0.05, 31, 400)]),
        ]
        if use_ebm:
            specs.append(("e_ebm_ext", lambda: EBM(ext), [()]))
        for name, make, grid in specs:
            s0 = time.perf_counter()
            best, sel = choose(make, grid, known, train, first_day, options, fo, cache)
            sel_s = time.perf_counter() - s0
            w0, c0 = time.perf_counter(), time.process_time()
            m = make(*best).fit(tr)
            fit_s, cpu_s = time.perf_counter() - w0, time.process_time() - c0
            record(name, fit_s, cpu_s, m.logit(te), sel_s, {"best": best, "inner_auc": sel})
            chosen[(str(cutoff), name)] = m
            if hasattr(m, "contributions"):  # additivity check: logit == intercept + sum of contributions
                contrib = m.contributions(te)
                gap = np.abs(contrib.sum(1).to_numpy() + m.m.intercept_[0] + m.shift - m.logit(te)).max()
                top = contrib.abs().mean().sort_values(ascending=False).head(8).round(3).to_dict()
                print(f"   {name} @ {cutoff}: max |logit - (b0 + sum contrib)| = {gap:.2e}; "
                      f"mean |contribution| top: {top}", flush=True)
        print(f"cutoff {cutoff}: train rows {len(tr)}, test rows {len(te)}, features {len(ext)}, "
              f"extended-feature build {feat_s:.1f} s", flush=True)
    return rows


def load(name):
    if name == "cdnow":
        from cdnow_orders import convert

        csv = Path(__file__).parent / "results" / "cdnow_orders.csv"
        convert(csv)
        return load_orders(csv)[0]
    import lifetimes

    path = Path(lifetimes.__file__).parent / "datasets" / "CDNOW_sample.txt"
    raw = pd.read_csv(path, sep=r"\s+", header=None, names=["orig", "account_id", "ymd", "cds", "amount"], dtype=str)
    return pd.DataFrame({"account_id": raw["account_id"], "date": pd.to_datetime(raw["ymd"], format="%Y%m%d"),
                         "amount": raw["amount"].astype(float)})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="cdnow", choices=["cdnow", "cdnow_sample"])
    ap.add_argument("--no-ebm", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--csv", default=None, help="any orders CSV (account_id,date,amount) instead of --data")
    ap.add_argument("--cutoff", action="append", default=None, help="test cutoff YYYY-MM-DD (repeatable)")
    ap.add_argument("--horizon-days", type=int, default=91)
    args = ap.parse_args()
    orders = load_orders(args.csv)[0] if args.csv else load(args.data)
    if args.csv:
        args.data = Path(args.csv).stem
    print(f"{args.data}: {len(orders)} orders, {orders['account_id'].nunique()} accounts, "
          f"{orders['date'].min().date()}..{orders['date'].max().date()}", flush=True)
    cutoffs = [date.fromisoformat(c) for c in (args.cutoff or ["1997-09-30", "1997-12-31"])]
    rows = run(orders, cutoffs, args.horizon_days, not args.no_ebm)
    out = Path(args.out or Path(__file__).parent / "results" / f"risk_models_{args.data}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1, default=str))
    t = pd.DataFrame(rows)
    print(t[["cutoff", "model", "roc_auc", "pr_auc", "brier", "flag85", "flag85_floor", "fit_s", "fit_cpu_s", "select_s"]]
          .to_string(index=False))


if __name__ == "__main__":
    main()
