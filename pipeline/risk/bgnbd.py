"""BG/NBD ("beta-geometric / negative binomial") from the published likelihood, with scipy.

    params = fit_bgnbd(frequency, recency, T)            # BGNBDParams(r, alpha, a, b)
    p_alive(params, frequency, recency, T)               # P(still a customer at T)
    expected_purchases(params, t, frequency, recency, T) # expected orders in (T, T + t]
    prob_no_purchase(params, t, frequency, recency, T)   # P(no order in (T, T + t])

Fader, Hardie & Lee (2005), "Counting your customers the easy way: an alternative to the
Pareto/NBD model", Marketing Science 24(2). Per customer: x = repeat purchases (frequency), t_x =
time of the last purchase since the first (recency), T = time since the first purchase, all in one
time unit (alpha is in that unit). While alive a customer buys at Poisson rate lambda ~ Gamma(r,
alpha); after each purchase they drop out with probability p ~ Beta(a, b). The likelihood (eq. 6):

    L = B(a, b+x)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+T)^(r+x))
      + [x > 0] B(a+1, b+x-1)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+t_x)^(r+x))

is evaluated in logs (gammaln, betaln, logaddexp) and maximised over the log-parameters with
L-BFGS-B. Identical (x, t_x, T) rows are pooled with weights, so a fit takes well under a second
for tens of thousands of customers. A fit that cannot be trusted (no repeat buyers, optimiser
failure, a parameter running off to a bound) raises BGNBDError with the reason in plain words.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import ChurnwatchError

# Log-parameters are kept in [-LOG_BOUND, LOG_BOUND]: a fit that ends on a bound did not converge.
LOG_BOUND = 12.0


class BGNBDError(ChurnwatchError):
    """The BG/NBD model cannot be fitted to these orders (the reason is the message)."""


@dataclass(frozen=True)
class BGNBDParams:
    r: float
    alpha: float
    a: float
    b: float
    n: int = 0  # customers fitted
    log_likelihood: float = 0.0  # total, at the optimum
    iterations: int = 0

    def to_dict(self) -> dict:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b, "n": self.n,
                "log_likelihood": self.log_likelihood, "iterations": self.iterations}


def _arrays(frequency, recency, T):
    import numpy as np

    x, tx, T = (np.asarray(v, dtype=float).ravel() for v in (frequency, recency, T))
    if not (len(x) == len(tx) == len(T)):
        raise BGNBDError(f"frequency, recency and T differ in length ({len(x)}, {len(tx)}, {len(T)}).")
    return x, tx, T


def log_likelihood(params, x, tx, T):
    """Per-customer log-likelihood of eq. (6) at params (r, alpha, a, b)."""
    import numpy as np
    from scipy.special import betaln, gammaln

    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + T)
    repeat = x > 0
    # betaln(a+1, b+x-1) is only defined (and only used) for x > 0
    a3 = np.where(repeat, betaln(a + 1, np.where(repeat, b + x - 1, 1.0)) - betaln(a, b)
                  - (r + x) * np.log(alpha + tx), -np.inf)
    return a1 + np.logaddexp(a2, a3)


def _check(x, tx, T):
    import numpy as np

    if len(x) == 0:
        raise BGNBDError("BG/NBD needs customers with at least one order before the cutoff; there are none.")
    if not (np.isfinite(x).all() and np.isfinite(tx).all() and np.isfinite(T).all()):
        raise BGNBDError("BG/NBD got a missing or infinite frequency, recency or age; check the order dates.")
    if (x < 0).any() or (tx < 0).any() or (tx > T + 1e-9).any():
        raise BGNBDError("BG/NBD needs 0 <= recency <= age and frequency >= 0 for every customer.")
    if not (x > 0).any():
        raise BGNBDError("BG/NBD needs repeat buyers, but every customer ordered only once (on one day) "
                         "before the cutoff; use a later cutoff or a longer order history.")
    if not (T > 0).any():
        raise BGNBDError("BG/NBD needs time between orders, but every order is on the cutoff day.")


def fit_bgnbd(frequency, recency, T, penalizer: float = 0.0, maxiter: int = 2000) -> BGNBDParams:
    """Maximum-likelihood (r, alpha, a, b). `penalizer` adds penalizer * sum(log-parameter^2) to the
    mean negative log-likelihood (0 = the plain MLE of the paper)."""
    import numpy as np
    import pandas as pd
    from scipy.optimize import minimize

    x, tx, T = _arrays(frequency, recency, T)
    _check(x, tx, T)
    pooled = pd.DataFrame({"x": x, "tx": tx, "T": T}).value_counts().reset_index(name="w")
    px, ptx, pT, w = (pooled[c].to_numpy(dtype=float) for c in ("x", "tx", "T", "w"))
    n = float(w.sum())
    rate = float((x.sum()) / max(T.sum(), 1e-12))  # repeat purchases per unit of time
    start = np.log([1.0, 1.0 / max(rate, 1e-6), 1.0, 1.0])
    start = np.clip(start, -LOG_BOUND + 1, LOG_BOUND - 1)

    def objective(theta):
        ll = log_likelihood(np.exp(theta), px, ptx, pT)
        value = -(w * ll).sum() / n + penalizer * float(theta @ theta)
        return value if np.isfinite(value) else 1e300

    res = minimize(objective, start, method="L-BFGS-B", bounds=[(-LOG_BOUND, LOG_BOUND)] * 4,
                   options={"maxiter": maxiter, "ftol": 1e-13, "gtol": 1e-9})
    theta = res.x
    if not np.isfinite(res.fun) or res.fun >= 1e300:
        raise BGNBDError("BG/NBD fit failed: the likelihood is not finite at any tried parameters.")
    if not res.success and "ABNORMAL" not in str(res.message).upper():
        raise BGNBDError(f"BG/NBD fit did not converge ({res.message}); the orders may be too few or too regular.")
    at_bound = [name for name, v in zip(("r", "alpha", "a", "b"), theta) if abs(v) >= LOG_BOUND - 1e-6]
    if at_bound:
        raise BGNBDError(f"BG/NBD fit did not converge: {', '.join(at_bound)} ran off to "
                         f"{'0 or infinity'}; the orders do not fit the model (too few repeat buyers?).")
    r, alpha, a, b = (float(v) for v in np.exp(theta))
    total = float((w * log_likelihood((r, alpha, a, b), px, ptx, pT)).sum())
    return BGNBDParams(r, alpha, a, b, int(n), total, int(res.nit))


def p_alive(params: BGNBDParams, frequency, recency, T):
    """P(alive at T | x, t_x, T) = 1 / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)) (eq. 11)."""
    import numpy as np

    x, tx, T = _arrays(frequency, recency, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        log_ratio = (np.log(a) - np.log(np.where(x > 0, b + x - 1, 1.0))
                     + (r + x) * (np.log(alpha + T) - np.log(alpha + tx)))
    # 1 / (1 + e^z) computed without overflow: exp(-logaddexp(0, z))
    return np.where(x > 0, np.exp(-np.logaddexp(0.0, log_ratio)), 1.0)


def expected_purchases(params: BGNBDParams, t, frequency, recency, T):
    """E[purchases in (T, T+t] | x, t_x, T] (eq. 10):
    (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))] * P(alive)."""
    import numpy as np
    from scipy.special import hyp2f1

    x, tx, T = _arrays(frequency, recency, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    t = float(t)
    with np.errstate(all="ignore"):
        z = t / (alpha + T + t)
        head = (a + b + x - 1) / (a - 1)
        tail = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
        out = head * tail * p_alive(params, x, tx, T)
    return np.where(np.isfinite(out), np.maximum(out, 0.0), np.nan)


def prob_no_purchase(params: BGNBDParams, t, frequency, recency, T):
    """P(no purchase in (T, T+t] | x, t_x, T) = 1 - P(alive) + P(alive) ((alpha+T)/(alpha+T+t))^(r+x):
    dead customers never buy; an alive one's rate given the data is Gamma(r+x, alpha+T), and it only
    drops out right after a purchase."""
    import numpy as np

    x, tx, T = _arrays(frequency, recency, T)
    pa = p_alive(params, x, tx, T)
    stay_quiet = np.exp((params.r + x) * (np.log(params.alpha + T) - np.log(params.alpha + T + float(t))))
    return 1.0 - pa + pa * stay_quiet


def rfm_from_orders(orders, cutoff, unit_days: float = 1.0):
    """(frequency, recency, T) per account (a DataFrame indexed by account_id) from an orders frame
    (account_id, date, amount): positive orders up to the cutoff, one purchase per account and day."""
    import pandas as pd

    t = pd.Timestamp(cutoff)
    pos = orders[(orders["amount"] > 0) & (orders["date"] <= t)]
    days = pos.assign(day=(pos["date"].dt.normalize() - t).dt.days)[["account_id", "day"]].drop_duplicates()
    g = days.groupby("account_id")["day"]
    return pd.DataFrame({"frequency": (g.size() - 1).astype(float),
                         "recency": (g.max() - g.min()).astype(float) / unit_days,
                         "T": (-g.min()).astype(float) / unit_days})
