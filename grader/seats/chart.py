"""The usage report's chart: server and GPU hours per learner, as inline SVG drawn on the server.

No script and no CDN: the page must work on a hub without internet access, and a chart that is
plain SVG is visible to a screen reader (its ``<title>`` and each bar's) and to a test alike.
"""

from __future__ import annotations

from html import escape
from typing import Sequence

from grader.seats.usage_reports import UsageRow

BAR_HEIGHT = 14
ROW_GAP = 10
LABEL_WIDTH = 180
PLOT_WIDTH = 460
COLOURS = {"server": "#3b6ea5", "gpu": "#d9822b"}


def _label(row: UsageRow) -> str:
    return row.username or f"{row.email} (invited)"


def usage_chart_svg(rows: Sequence[UsageRow], *, element_id: str = "usage-chart") -> str:
    """A horizontal bar chart, two bars per learner (server hours, GPU hours), with a legend."""
    top = 30
    height = top + max(len(rows), 1) * (2 * BAR_HEIGHT + ROW_GAP) + 20
    width = LABEL_WIDTH + PLOT_WIDTH + 80
    most = max([r.server_hours for r in rows] + [r.gpu_hours for r in rows] + [0.0])
    scale = PLOT_WIDTH / most if most > 0 else 0.0
    parts = [
        f'<svg id="{escape(element_id)}" class="usage-chart" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        "<title>Server hours and GPU hours per learner</title>",
        f'<rect x="{LABEL_WIDTH}" y="6" width="12" height="12" fill="{COLOURS["server"]}"/>'
        f'<text x="{LABEL_WIDTH + 18}" y="16" font-size="12">server hours</text>',
        f'<rect x="{LABEL_WIDTH + 120}" y="6" width="12" height="12" fill="{COLOURS["gpu"]}"/>'
        f'<text x="{LABEL_WIDTH + 138}" y="16" font-size="12">GPU hours</text>',
    ]
    if not rows:
        parts.append(f'<text x="{LABEL_WIDTH}" y="{top + 16}" font-size="12">No learners yet.</text>')
    for index, row in enumerate(rows):
        y = top + index * (2 * BAR_HEIGHT + ROW_GAP)
        parts.append(f'<text x="{LABEL_WIDTH - 8}" y="{y + BAR_HEIGHT + 4}" font-size="12" '
                     f'text-anchor="end">{escape(_label(row))}</text>')
        for offset, (kind, hours) in enumerate((("server", row.server_hours), ("gpu", row.gpu_hours))):
            bar_y = y + offset * BAR_HEIGHT
            bar_width = max(hours * scale, 1.0 if hours > 0 else 0.0)
            parts.append(
                f'<rect class="bar bar-{kind}" x="{LABEL_WIDTH}" y="{bar_y}" width="{bar_width:.1f}" '
                f'height="{BAR_HEIGHT - 2}" fill="{COLOURS[kind]}"><title>{escape(_label(row))}: '
                f'{hours:.2f} {"server" if kind == "server" else "GPU"} hours</title></rect>'
                f'<text x="{LABEL_WIDTH + bar_width + 4:.1f}" y="{bar_y + BAR_HEIGHT - 3}" font-size="10">'
                f"{hours:.2f}</text>")
    parts.append("</svg>")
    return "".join(parts)
