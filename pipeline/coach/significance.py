"""When a difference between calls of lost and kept accounts is more than noise.

`pipeline.coach.kept_vs_lost.mine` compares about ten talk metrics and a few thousand phrases at
once. At a 5% level, one in twenty comparisons of pure noise looks "significant", so a raw p-value
or a 95% interval per comparison marks something red on almost every run. Everything here is a
pure function of numbers:

- `welch_test`: the difference of two means with its standard error, Welch's degrees of freedom
  and a two-sided p-value (unequal variances; Welch 1947).
- `benjamini_hochberg`: q-values (Benjamini & Hochberg 1995, "Controlling the false discovery
  rate", JRSS B 57(1)): a comparison is called clear when its q-value is at most the false
  discovery rate, so that among everything called clear, at most that share is expected to be
  noise. It holds for independent or positively dependent tests, which the talk metrics (all
  driven by who speaks how long) mostly are.
- `adjusted_level`: the confidence level of intervals that agree with that call (Benjamini &
  Yekutieli 2005, "False discovery rate-adjusted multiple confidence intervals", JASA 100(469)):
  with R of m comparisons called clear, intervals at 1 - R·q/m exclude 0 exactly for those R.
- `normal_p`, `z_line`: the same for z-scores (the phrases' weighted log-odds), and the |z| a
  phrase has to pass.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class WelchTest:
    diff: float  # mean(a) - mean(b)
    se: float  # standard error of the difference
    df: float  # Welch-Satterthwaite degrees of freedom (inf when both groups are constant)
    p: float  # two-sided p-value of "no difference"

    def interval(self, level: float) -> tuple[float, float]:
        """The `level` (e.g. 0.95) confidence interval of the difference."""
        if self.se == 0:
            return self.diff, self.diff
        from scipy import stats

        half = stats.t.ppf(0.5 + level / 2, self.df) * self.se
        return self.diff - half, self.diff + half


def welch_test(a: list[float], b: list[float]) -> WelchTest:
    """mean(a) - mean(b) with Welch's t test. Needs 2+ values per group. Two constant groups give
    p = 1 when they are equal and p = 0 when they differ (no spread to weigh the gap against)."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"welch_test needs at least 2 values per group, got {len(a)} and {len(b)}")
    from scipy import stats

    na, nb = len(a), len(b)
    diff = sum(a) / na - sum(b) / nb
    va, vb = statistics.variance(a), statistics.variance(b)
    se2 = va / na + vb / nb
    if se2 == 0:
        return WelchTest(diff, 0.0, math.inf, 1.0 if diff == 0 else 0.0)
    df = se2**2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    se = math.sqrt(se2)
    p = 2 * stats.t.sf(abs(diff) / se, df)
    return WelchTest(diff, se, df, float(p))


def benjamini_hochberg(pvalues: list[float]) -> list[float]:
    """The Benjamini-Hochberg q-value of each p-value, in the given order: the smallest false
    discovery rate at which that comparison is called clear (p·m/rank, made monotone, at most 1)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    q = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, pvalues[i] * m / rank)
        q[i] = min(1.0, running)
    return q


def adjusted_level(n_clear: int, m: int, fdr: float) -> float:
    """Confidence level of intervals consistent with a Benjamini-Hochberg call over m comparisons
    of which n_clear are clear: 1 - n_clear·fdr/m (Benjamini & Yekutieli 2005). With none clear,
    1 - fdr/m, the level the strongest comparison would have had to pass."""
    return 1 - max(n_clear, 1) * fdr / max(m, 1)


def normal_p(z: float) -> float:
    """Two-sided p-value of a z-score under the standard normal."""
    return math.erfc(abs(z) / math.sqrt(2))


def z_line(n_clear: int, m: int, fdr: float) -> float:
    """The |z| a z-scored comparison has to pass to be clear, for a Benjamini-Hochberg call over
    m of them of which n_clear are clear (with none clear: the |z| the strongest would have needed)."""
    from scipy import stats

    return float(stats.norm.isf(max(n_clear, 1) * fdr / max(m, 1) / 2))
