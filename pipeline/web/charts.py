"""Charts drawn on the server as SVG: no JavaScript, nothing fetched, readable without colour.

Each function takes plain numbers and returns SVG markup with a <title> and an aria-label
(screen readers read the chart as one sentence), axes with their units, and the data points as
<circle>/<rect> elements carrying `data-value`, so tests can check what was drawn.
"""

from __future__ import annotations

from datetime import date
from html import escape


def _scale(v: float, lo: float, hi: float, a: float, b: float) -> float:
    return a if hi == lo else a + (v - lo) * (b - a) / (hi - lo)


def line_chart(points: list[tuple[date, float]], *, title: str, unit: str, threshold: float | None = None,
               threshold_label: str = "", y_max: float = 100.0, width: int = 640, height: int = 220) -> str:
    """A score over time (0..y_max), with an optional alert line."""
    left, right, top, bottom = 44, 12, 28, 34  # the unit's line stands above the top tick's
    if not points:
        return (f'<svg class="chart" viewBox="0 0 {width} 60" role="img" aria-label="{escape(title)}">'
                f'<title>{escape(title)}</title><text x="8" y="30">–</text></svg>')
    xs = [d.toordinal() for d, _ in points]
    x0, x1 = min(xs), max(xs)
    if x0 == x1:
        x0, x1 = x0 - 1, x1 + 1
    sx = lambda d: _scale(d.toordinal(), x0, x1, left, width - right)  # noqa: E731
    sy = lambda v: _scale(v, 0, y_max, height - bottom, top)  # noqa: E731
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
           f"<title>{escape(title)}</title>"]
    for tick in (0, y_max / 2, y_max):
        y = sy(tick)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e7ec"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>')
    out.append(f'<text x="4" y="{top - 14}" font-size="11">{escape(unit)}</text>')
    if threshold is not None:
        y = sy(threshold)
        out.append(f'<line class="threshold" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="#b3261e" stroke-dasharray="5 4"/>')
        out.append(f'<text x="{width - right}" y="{y - 4:.1f}" text-anchor="end" fill="#b3261e">'
                   f'{escape(threshold_label)}</text>')
    path = " ".join(f"{'M' if i == 0 else 'L'}{sx(d):.1f},{sy(v):.1f}" for i, (d, v) in enumerate(points))
    out.append(f'<path d="{path}" fill="none" stroke="#1f5fbf" stroke-width="2"/>')
    for d, v in points:
        out.append(f'<circle cx="{sx(d):.1f}" cy="{sy(v):.1f}" r="3.5" fill="#1f5fbf" data-value="{v:.1f}">'
                   f"<title>{d.isoformat()}: {v:.0f}</title></circle>")
    first, last = points[0][0], points[-1][0]
    out.append(f'<text x="{left}" y="{height - 10}">{first.isoformat()}</text>')
    if last != first:
        out.append(f'<text x="{width - right}" y="{height - 10}" text-anchor="end">{last.isoformat()}</text>')
    out.append("</svg>")
    return "".join(out)


def bar_chart(rows: list[tuple[str, float]], *, title: str, unit: str, band: tuple[float, float] | None = None,
              band_label: str = "", reference: float | None = None, reference_label: str = "",
              x_max: float | None = None, width: int = 640, bar_height: int = 22) -> str:
    """Horizontal bars, one per row (e.g. per rep), with an optional shaded band and a reference
    line (e.g. the team's median). The scale covers the data as well as the band."""
    left, right, top = 150, 56, 24
    height = top + bar_height * max(len(rows), 1) + 30
    values = [v for _, v in rows] + ([band[1]] if band else []) + ([reference] if reference is not None else [])
    hi = x_max if x_max is not None else (max(values) * 1.1 if values and max(values) > 0 else 1.0)
    sx = lambda v: _scale(v, 0, hi, left, width - right)  # noqa: E731
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
           f"<title>{escape(title)}</title>",
           f'<text x="{left}" y="14" font-size="11">{escape(unit)}</text>']
    if band:
        out.append(f'<rect class="band" x="{sx(band[0]):.1f}" y="{top}" width="{sx(band[1]) - sx(band[0]):.1f}" '
                   f'height="{bar_height * len(rows)}" fill="#e6f4ea"/>')
        out.append(f'<text x="{sx(band[1]):.1f}" y="{height - 8}" text-anchor="end" fill="#1e7b3a">'
                   f'{escape(band_label)}</text>')
    for i, (name, v) in enumerate(rows):
        y = top + i * bar_height
        out.append(f'<text x="{left - 6}" y="{y + bar_height * 0.68:.1f}" text-anchor="end">{escape(name)}</text>')
        out.append(f'<rect class="bar" x="{left}" y="{y + 3}" width="{max(sx(v) - left, 1):.1f}" '
                   f'height="{bar_height - 6}" fill="#1f5fbf" data-value="{v:.2f}"><title>{escape(name)}: '
                   f'{v:.2f} {escape(unit)}</title></rect>')
        out.append(f'<text x="{sx(v) + 4:.1f}" y="{y + bar_height * 0.68:.1f}">{v:.1f}</text>')
    if reference is not None:
        x = sx(reference)
        out.append(f'<line class="reference" x1="{x:.1f}" x2="{x:.1f}" y1="{top - 4}" '
                   f'y2="{top + bar_height * len(rows)}" stroke="#333" stroke-dasharray="3 3"/>')
        out.append(f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle">{escape(reference_label)}</text>')
    out.append("</svg>")
    return "".join(out)


def interval_chart(rows: list[tuple[str, float, float, float, bool]], *, title: str, unit: str,
                   width: int = 640, row_height: int = 24) -> str:
    """Differences with their intervals (name, estimate, low, high, significant), around zero;
    the ones that pass are drawn dark, the rest grey."""
    left, right, top = 170, 20, 24
    height = top + row_height * max(len(rows), 1) + 24
    span = max([abs(x) for _, e, lo, hi, _ in rows for x in (e, lo, hi)] or [1.0]) * 1.1 or 1.0
    sx = lambda v: _scale(v, -span, span, left, width - right)  # noqa: E731
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
           f"<title>{escape(title)}</title>", f'<text x="{left}" y="14" font-size="11">{escape(unit)}</text>',
           f'<line x1="{sx(0):.1f}" x2="{sx(0):.1f}" y1="{top - 4}" y2="{height - 20}" stroke="#999"/>']
    for i, (name, est, lo, hi, sig) in enumerate(rows):
        y = top + i * row_height + row_height / 2
        colour = "#17324d" if sig else "#a7b0bb"
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(name)}</text>')
        out.append(f'<line x1="{sx(lo):.1f}" x2="{sx(hi):.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}" '
                   f'stroke-width="2"/>')
        out.append(f'<circle cx="{sx(est):.1f}" cy="{y:.1f}" r="4" fill="{colour}" data-value="{est:.3f}" '
                   f'data-significant="{str(sig).lower()}"><title>{escape(name)}: {est:.2f} '
                   f'[{lo:.2f}, {hi:.2f}]</title></circle>')
    out.append("</svg>")
    return "".join(out)


def metric_bars(rows: list[tuple[str, float]], *, title: str, unit: str, band: tuple[float, float] | None = None,
                band_label: str = "", reference: float | None = None, reference_label: str = "",
                width: int = 640, bar_height: int = 22) -> str:
    """Bars per rep of one talk metric (like `bar_chart`), beside a published figure that may be
    a range (shaded) or a single value (a solid green line, where a range of no width would not
    show), and the team's median as a dashed line. Every value carries its unit."""
    left, right, top = min(150, int(width * 0.28)), 44, 24
    n = max(len(rows), 1)
    height = top + bar_height * n + 44
    values = [v for _, v in rows] + [x for x in (band or ()) if x is not None] + \
        ([reference] if reference is not None else [])
    hi = max(values) * 1.1 if values and max(values) > 0 else 1.0
    sx = lambda v: _scale(v, 0, hi, left, width - right)  # noqa: E731

    def anchor(x: float) -> str:  # a label near an edge grows inwards, so it is not cut off
        return "end" if x > width * 0.65 else "start" if x < width * 0.35 else "middle"

    label = f"{escape(title)}"
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{label}">',
           f"<title>{label}</title>", f'<text x="{left}" y="14" font-size="11">{escape(unit)}</text>']
    bottom = top + bar_height * n
    if band is not None:
        lo, up = band
        if up - lo > hi / 200:
            out.append(f'<rect class="band" x="{sx(lo):.1f}" y="{top}" width="{sx(up) - sx(lo):.1f}" '
                       f'height="{bar_height * n}" fill="#e6f4ea" data-low="{lo:g}" data-high="{up:g}"/>')
        else:
            out.append(f'<line class="band" x1="{sx(lo):.1f}" x2="{sx(lo):.1f}" y1="{top - 4}" y2="{bottom}" '
                       f'stroke="#1e7b3a" stroke-width="2" data-low="{lo:g}" data-high="{up:g}"/>')
        out.append(f'<text x="{sx(up):.1f}" y="{height - 24}" text-anchor="{anchor(sx(up))}" fill="#1e7b3a">'
                   f'{escape(band_label)}</text>')
    for i, (name, v) in enumerate(rows):
        y = top + i * bar_height
        out.append(f'<text x="{left - 6}" y="{y + bar_height * 0.68:.1f}" text-anchor="end">{escape(name)}</text>')
        out.append(f'<rect class="bar" x="{left}" y="{y + 3}" width="{max(sx(v) - left, 1):.1f}" '
                   f'height="{bar_height - 6}" fill="#1f5fbf" data-value="{v:.2f}"><title>{escape(name)}: '
                   f'{v:.1f} {escape(unit)}</title></rect>')
        out.append(f'<text x="{sx(v) + 4:.1f}" y="{y + bar_height * 0.68:.1f}">{v:.1f}</text>')
    if reference is not None:
        x = sx(reference)
        out.append(f'<line class="reference" x1="{x:.1f}" x2="{x:.1f}" y1="{top - 4}" y2="{bottom}" '
                   f'stroke="#333" stroke-dasharray="3 3" data-value="{reference:.2f}"/>')
        out.append(f'<text x="{x:.1f}" y="{height - 8}" text-anchor="{anchor(x)}">{escape(reference_label)}</text>')
    out.append("</svg>")
    return "".join(out)
