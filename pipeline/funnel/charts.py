"""The funnel as a PNG a manager reads at a glance (matplotlib's Agg backend, chosen when called).

`plot_funnel(report, out_dir)` writes funnel.png: one centred bar per stage, as wide as the deals
that entered it, split into those that moved on (green), were lost there (red), stalled there
(orange) and are still in progress (grey), with the conversion and its 95% interval beside it.
With groups (`--by`), a second panel shows each group's conversion per stage, its worst stage
boxed (solid when clearly below the rest of the team, dashed when within noise).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.funnel.funnel import FunnelReport

__all__ = ["plot_funnel"]

COLOURS = {"advanced": "#4c9a2a", "lost": "#c0392b", "stalled": "#e67e22", "open": "#b0b0b0", "other": "#dddddd"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.0f}%"


def plot_funnel(report: FunnelReport, out_dir: Path) -> list[Path]:
    """Write funnel.png into out_dir; returns the files written (none without opportunities)."""
    stages = [s for s in report.stages if s.entered]
    if not stages:
        return []
    plt = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = list(report.groups)
    width_ratios = [3, 2] if groups else [1]
    fig, axes = plt.subplots(1, len(width_ratios), figsize=(13 if groups else 9, 0.62 * len(stages) + 2.2),
                             gridspec_kw={"width_ratios": width_ratios}, squeeze=False)
    ax = axes[0, 0]
    top = max(s.entered for s in stages)
    for i, s in enumerate(stages):
        y = len(stages) - 1 - i
        other = max(s.entered - s.advanced - s.lost - s.stalled - s.open, 0)
        parts = [("advanced", s.advanced), ("lost", s.lost), ("stalled", s.stalled), ("open", s.open), ("other", other)]
        left = -s.entered / 2
        for key, n in parts:
            if n:
                ax.barh(y, n, left=left, color=COLOURS[key], edgecolor="white", height=0.78)
                if n / top > 0.06:
                    ax.text(left + n / 2, y, str(n), ha="center", va="center", fontsize=8, color="white")
                left += n
        ci = f" [{_pct(s.conversion_ci[0])}-{_pct(s.conversion_ci[1])}]" if s.conversion_ci else ""
        days = f", {s.median_days:.0f} d median" if s.median_days is not None else ""
        ax.text(top / 2 + top * 0.03, y, f"{s.entered} entered · {_pct(s.conversion)} move on{ci}{days}",
                va="center", fontsize=8)
    ax.set_yticks(range(len(stages)), [s.stage for s in reversed(stages)], fontsize=9)
    ax.set_xlim(-top / 2 - top * 0.02, top * 1.35)
    ax.set_xticks([])
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    t = report.totals
    ax.set_title(f"{t['opportunities']} opportunities: {t['won']} won, {t['lost']} lost, {t['stalled']} stalled, "
                 f"{t['open']} in progress (to {report.until})", fontsize=10)
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLOURS[k]) for k in ("advanced", "lost", "stalled", "open")]
    ax.legend(handles, ["moved on", "lost here", "stalled here", "in progress"], loc="upper center", fontsize=8,
              frameon=False, ncol=4, bbox_to_anchor=(0.45, 0.0))
    if groups:
        hax = axes[0, 1]
        names = [s.stage for s in stages]
        grid = []
        for g in groups:
            by_stage = {s.stage: s for s in report.groups[g]["stages"]}
            grid.append([by_stage[n].conversion if by_stage[n].conversion is not None else float("nan")
                         for n in names])
        import numpy as np

        data = np.array(grid, dtype=float).T
        hax.imshow(data, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
        hax.set_xticks(range(len(groups)), groups, rotation=30, ha="right", fontsize=8)
        hax.set_yticks(range(len(names)), names, fontsize=8)
        for (r, c), v in np.ndenumerate(data):
            if v == v:  # not NaN
                hax.text(c, r, _pct(v), ha="center", va="center", fontsize=7)
        for c, g in enumerate(groups):
            worst = report.groups[g]["worst"]
            if worst and worst["stage"] in names:
                r = names.index(worst["stage"])
                hax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, lw=2.4 if worst["clear"] else 1.2,
                                            color="black", ls="-" if worst["clear"] else "--"))
        hax.set_title(f"move-on rate per {report.by}\nbox: loses most vs the rest (solid = clear)",
                      fontsize=9)
    fig.tight_layout()
    path = out_dir / "funnel.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
