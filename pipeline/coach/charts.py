"""PNG charts of the coaching report and of lost vs kept (matplotlib's Agg backend, chosen when called).

- `plot_report`: per-rep distributions over calls (box = IQR, line = median, dots = calls). A
  published reference is drawn only for the calls it applies to (the question band: discovery
  calls, dots filled; the others hollow); where it applies to none, the panel says why. The
  axis follows the data: a band is brought into view only while the view stays at most
  `BAND_ROOM` times as wide as the data's, else its place is written at the edge.
- `plot_mining`: each metric's lost-minus-kept difference with its corrected interval (red only
  where the difference is clear), and the top phrases per speaker, coloured only past the |z|
  line of the correction, grey otherwise.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.coach.kept_vs_lost import CoachReport, MiningResult
from pipeline.coach.references import METRICS, REFERENCES, label_with_unit

# A reference band is brought into a panel's view only while the view stays at most this many
# times as wide as the data's (else the data would shrink to a sliver beside the band).
BAND_ROOM = 4.0
REPORT_PANELS = {
    "talk_ratio_by_rep.png": ["talk_ratio_rep"],
    "rep_metrics.png": ["longest_monologue_s", "questions_rep", "patience_s", "interactivity_per_min"],
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _data_view(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    pad = 0.08 * (hi - lo) if hi > lo else (0.1 * abs(hi) or 0.5)
    return (max(0.0, lo - pad) if lo >= 0 else lo - pad), hi + pad


def _reference(ax, key: str, scale: float, values: list[float], applies_to_some: bool, types_known: bool) -> None:
    """Draw the published reference of `key` (or say why not) and set the x range from the data."""
    ref = REFERENCES.get(key)
    unit = METRICS[key][1]
    view = _data_view(values)
    if unit == "%":  # a share: the view stays within 0-100%
        view = (max(0.0, view[0]), min(100.0, view[1]))
    if ref is None:
        ax.set_xlim(*view)
        return
    if not applies_to_some:
        ax.set_xlim(*view)
        why = "none of these calls is one" if types_known else "the type of these calls is not known"
        ax.set_title(f"no reference: the {ref.band_text(key)} figure is {ref.where()}; {why}",
                     loc="right", fontsize=7, color="dimgray")
        return
    lo = ref.low * scale if ref.low is not None else None
    hi = ref.high * scale if ref.high is not None else None
    edges = [e for e in (lo, hi) if e is not None]
    wide = (min(view[0], *edges), max(view[1], *edges))
    if wide[1] - wide[0] > BAND_ROOM * (view[1] - view[0]):
        if min(edges) > view[1] or max(edges) < view[0]:  # wholly off the data: say where
            right = min(edges) > view[1]
            ax.set_xlim(*view)
            where = " ".join(w for w in ("published reference", ref.where()) if w)
            edge = "beyond the right edge →" if right else "← beyond the left edge"
            ax.set_title(f"{where}: {ref.band_text(key)}, {edge} ({ref.source})", loc="right" if right else "left",
                         fontsize=7, color="tab:green")
            return
        wide = view  # an edge inside the data: draw the band, cut to the data's range
    label = " ".join(w for w in ("published reference", ref.where()) if w) + f": {ref.source}"
    if ref.call_types:
        label += " (filled dots: the calls it applies to)"
    if lo is None or hi is None or hi - lo < 1e-9:
        ax.axvline(hi if lo is None else lo, color="tab:green", ls="--", label=label)
    else:
        ax.axvspan(lo, hi, color="tab:green", alpha=0.15, label=label)
    ax.set_xlim(*wide)
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False, borderaxespad=0.1)


def plot_report(report: CoachReport, out_dir: Path) -> list[Path]:
    """Per-rep distributions as PNGs: talk ratio against the published 43%, and four more panels,
    each with its published reference where it applies. Returns the files written."""
    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    reps = sorted({c["rep"] or "(no rep)" for c in report.calls})
    if not reps:
        return []
    written = []
    for name, keys in REPORT_PANELS.items():
        height = 1.2 + 0.45 * (len(reps) + 1) * len(keys) + 0.6 * len(keys)
        fig, axes = plt.subplots(len(keys), 1, figsize=(8, height), squeeze=False)
        for ax, key in zip(axes[:, 0], keys):
            scale = 100 if METRICS[key][1] == "%" else 1
            ref = REFERENCES.get(key)
            groups = [[c for c in report.calls if (c["rep"] or "(no rep)") == r and c.get(key) is not None]
                      for r in reps]
            data = [[c[key] * scale for c in g] for g in groups]
            data.append([v * scale for v in report.team_values.get(key, [])])
            ax.boxplot([d or [float("nan")] for d in data], orientation="horizontal", widths=0.5, showfliers=False)
            applies = ref is None or any(ref.applies(c.get("call_type")) for g in groups for c in g)
            for i, g in enumerate(groups, start=1):
                xs = [c[key] * scale for c in g]
                # hollow: a call the band drawn beside it does not apply to
                filled = [ref is None or not applies or ref.applies(c.get("call_type")) for c in g]
                ax.plot([x for x, f in zip(xs, filled) if f], [i] * sum(filled), "o", alpha=0.6, color="tab:blue")
                hollow = [x for x, f in zip(xs, filled) if not f]
                ax.plot(hollow, [i] * len(hollow), "o", alpha=0.6, mfc="none", color="tab:blue")
            ax.plot(data[-1], [len(data)] * len(data[-1]), "o", alpha=0.3, color="tab:gray")
            names = [f"{r} (n={len(d)})" for r, d in zip(reps + ["team, all reps"], data)]
            ax.set_yticks(range(1, len(data) + 1), names)
            values = [v for d in data for v in d]
            if values:
                types_known = any(c.get("call_type") for g in groups for c in g)
                _reference(ax, key, scale, values, applies, types_known)
            ax.set_xlabel(label_with_unit(key))
        fig.suptitle("Per-rep distribution over calls (box = IQR, line = median, dots = calls)", fontsize=9)
        fig.tight_layout(rect=(0, 0, 1, 0.97))
        path = out_dir / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _difference_label(key: str) -> str:
    label, unit = METRICS[key]
    return f"{label} ({'pts' if unit == '%' else unit})"


def plot_mining(result: MiningResult, out_dir: Path) -> list[Path]:
    """Lost-vs-kept metric differences with their corrected intervals, and the top phrases per speaker."""
    if not result.enough:
        return []
    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    diffs = result.differences
    if diffs:
        fig, axes = plt.subplots(len(diffs), 1, figsize=(8, 0.75 * len(diffs) + 1.6), squeeze=False)
        for ax, d in zip(axes[:, 0], diffs):
            scale = 100 if METRICS[d.metric][1] == "%" else 1
            ax.errorbar([d.diff * scale], [0], xerr=[[(d.diff - d.low) * scale], [(d.high - d.diff) * scale]],
                        fmt="o", color="tab:red" if d.clear else "tab:gray", capsize=4)
            ax.axvline(0, color="black", lw=0.8)
            ax.set_yticks([0], [_difference_label(d.metric)], fontsize=8)
            ax.tick_params(axis="x", labelsize=7)
            span = max(abs(d.low), abs(d.high)) * scale * 1.15 or 1
            ax.set_xlim(-span, span)
        axes[-1, 0].set_xlabel("lost minus kept accounts' calls, in each metric's unit", fontsize=8)
        level = diffs[0].level
        fig.suptitle(f"Lost minus kept accounts' calls ({result.n_lost} vs {result.n_kept}): {level:.1%} Welch "
                     f"intervals, widened for the {len(diffs)} metrics compared;\nred = clear difference after "
                     f"correction (Benjamini-Hochberg, {result.false_discovery_rate:.0%} false discovery rate), "
                     "grey = within noise", fontsize=8)
        if result.skipped:
            fig.text(0.01, 0.005, "not compared: " + "; ".join(
                f"{METRICS[s.metric][0]} ({s.reason})" for s in result.skipped),
                fontsize=6, color="dimgray", ha="left", va="bottom")
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        written.append(out_dir / "lost_vs_kept.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    line = result.phrase_z_line
    fig, axes = plt.subplots(1, 2, figsize=(11, 6))
    for ax, side in zip(axes, ("customer", "rep")):
        items = result.phrases.get(side, {})
        rows = sorted(list(items.get("kept", [])) + list(items.get("lost", [])), key=lambda p: p.z)
        colours = ["tab:gray" if not p.clear else "tab:red" if p.z > 0 else "tab:blue" for p in rows]
        ax.barh(range(len(rows)), [p.z for p in rows], color=colours)
        ax.set_yticks(range(len(rows)), [f"{p.phrase} ({p.calls} calls)" for p in rows], fontsize=8)
        ax.axvline(0, color="black", lw=0.8)
        for x in (-line, line):
            ax.axvline(x, color="gray", lw=0.8, ls=":")
        if not rows:
            ax.text(0.5, 0.5, "no phrase to show: none said in enough calls\nleans to either group",
                    transform=ax.transAxes, ha="center", color="dimgray")
        n_clear = sum(p.clear for p in rows)
        ax.set_title(f"{side} phrases: {n_clear or 'none'} clear of {len(rows)} shown", fontsize=9)
        ax.set_xlabel(f"z-score of weighted log-odds; clear beyond |z| ≥ {line:.1f}\n"
                      f"(corrected for {result.phrases_tested} phrases tested)", fontsize=8)
        lim = max([abs(p.z) for p in rows] + [line]) * 1.1
        ax.set_xlim(-lim, lim)
    fig.suptitle("Phrases most typical of lost and of kept accounts' calls: red = typical of lost, blue = of kept, "
                 "only past the dotted line;\ngrey = short of it, within what chance gives "
                 f"(Benjamini-Hochberg, {result.false_discovery_rate:.0%} false discovery rate)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    written.append(out_dir / "top_phrases.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    return written
