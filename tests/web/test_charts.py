"""The SVG charts drawn on the server: what a reader needs to tell apart does not overlap."""

from __future__ import annotations

import re
from datetime import date

from pipeline.web.charts import line_chart


def _texts(svg: str) -> dict[str, tuple[float, float]]:
    """Each <text>'s content -> (x, y)."""
    return {m["body"]: (float(m["x"]), float(m["y"]))
            for m in re.finditer(r'<text x="(?P<x>[\d.]+)" y="(?P<y>[\d.]+)"[^>]*>(?P<body>[^<]*)</text>', svg)}


def test_the_unit_of_the_score_chart_stands_above_its_top_tick():
    svg = line_chart([(date(2026, 10, 6), 52.0), (date(2026, 12, 3), 74.5)], title="risk", unit="risk (0-100)",
                     threshold=50, threshold_label="alert line 50")
    texts = _texts(svg)
    unit_y, top_tick_y = texts["risk (0-100)"][1], texts["100"][1]
    assert unit_y <= top_tick_y - 12  # a line of 11 px type and a gap: the two labels never touch
    assert unit_y >= 11  # and the unit is not cut off at the top of the chart
