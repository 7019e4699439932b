"""Calibration of backtested probabilities: Brier score, reliability bins, a reliability chart (PNG).

    bins = reliability_bins(y, prob)            # per bin: mean predicted, share lost, count
    write_reliability_png(calibration, "out/")  # one chart per cutoff: model and baselines

A probability is calibrated when, of the accounts given about 30%, about 30% were lost: the
points of the chart then lie on the diagonal. Bins are ten equal slices of 0-1; empty bins are
left out. The Brier score (mean squared error of the probabilities; lower is better) is in the
backtest metrics next to ROC-AUC.
"""

from __future__ import annotations

from pathlib import Path


def reliability_bins(y, prob, n_bins: int = 10) -> dict:
    """Reliability table of probabilities against outcomes (1 = lost)."""
    import numpy as np

    y, p = np.asarray(y, dtype=float), np.clip(np.asarray(prob, dtype=float), 0, 1)
    edges = np.linspace(0, 1, n_bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        m = idx == b
        if m.any():
            bins.append({"from": round(float(edges[b]), 2), "to": round(float(edges[b + 1]), 2),
                         "count": int(m.sum()), "mean_predicted": round(float(p[m].mean()), 4),
                         "share_lost": round(float(y[m].mean()), 4)})
    return {"brier": round(float(np.mean((p - y) ** 2)), 4), "n": int(len(y)), "bins": bins}


def write_reliability_png(calibration: dict[str, dict[str, dict]], directory) -> list[Path]:
    """One reliability chart per cutoff (calibration: cutoff -> scorer -> reliability_bins),
    written as DIR/reliability-<cutoff>.png; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for cutoff, scorers in calibration.items():
        fig, (ax, hist) = plt.subplots(2, 1, figsize=(6, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
        for name, cal in scorers.items():
            xs = [b["mean_predicted"] for b in cal["bins"]]
            ax.plot(xs, [b["share_lost"] for b in cal["bins"]], marker="o",
                    label=f"{name} (Brier {cal['brier']:.3f})")
            hist.bar([(b["from"] + b["to"]) / 2 for b in cal["bins"]], [b["count"] for b in cal["bins"]],
                     width=0.09, alpha=0.4, label=name)
        ax.set_ylabel("share of accounts lost")
        ax.set_title(f"Reliability at cutoff {cutoff}")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(loc="upper left", fontsize=8)
        hist.set_xlabel("predicted probability of loss")
        hist.set_ylabel("accounts")
        fig.tight_layout()
        path = out_dir / f"reliability-{cutoff}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths
