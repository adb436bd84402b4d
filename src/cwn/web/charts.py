"""Small server-side SVG bar charts for trends (the console's daily intake, an
organisation's cases per week): no JavaScript, no chart library, readable without colour
(every bar has a tooltip and the chart a text summary)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[int]
    css: str  # a class of cwn.css (chart-a, chart-b, chart-c)


def bars(labels: Sequence[str], series: Sequence[Series], *, title: str,
         height: int = 150, bar_width: int = 10, gap: int = 6) -> Markup:
    """Grouped bars, one group per label, scaled to the largest value."""
    top = max((v for s in series for v in s.values), default=0) or 1
    group = bar_width * len(series) + gap
    plot_h = height - 30
    width = max(group * len(labels) + 40, 200)
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" '
             f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
             f'<text x="0" y="10" class="chart-axis">{top:,}</text>',
             f'<line x1="36" y1="{plot_h}" x2="{width}" y2="{plot_h}" class="chart-base"/>']
    for i, label in enumerate(labels):
        x0 = 40 + i * group
        for k, s in enumerate(series):
            v = s.values[i] if i < len(s.values) else 0
            h = round(plot_h * v / top) if v else 0
            parts.append(f'<rect x="{x0 + k * bar_width}" y="{plot_h - h}" '
                         f'width="{bar_width - 1}" height="{max(h, 0)}" class="{s.css}">'
                         f'<title>{escape(label)}: {escape(s.name)} {v:,}</title></rect>')
        if i % max(1, len(labels) // 6) == 0:
            parts.append(f'<text x="{x0}" y="{height - 8}" class="chart-axis">'
                         f'{escape(label)}</text>')
    parts.append("</svg>")
    legend = " ".join(f'<span class="legend {s.css}">{escape(s.name)}</span>' for s in series)
    return Markup("".join(parts) + f'<p class="chart-legend">{legend}</p>')
