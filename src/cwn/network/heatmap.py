"""The coverage table as a picture: sectors down, provinces across, darker red where more
notified organisations have no partner, so the gaps in the network are seen at a glance.

Written by hand with ElementTree rather than a plotting library: the output must be a small,
self-contained, deterministic SVG 1.1 file that a browser, a report or a test can read, and
ElementTree escapes partner names and tooltips for free.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field

from cwn.network.coverage import PROVINCE_ORDER, SECTOR_ORDER, CoverageCell
from cwn.network.regions import UNKNOWN, axis_label

SVG_NS = "http://www.w3.org/2000/svg"
CELL_W, CELL_H = 64, 28
HIGH = (0x8B, 0x00, 0x00)  # dark red
EMPTY = "#eeeeee"  # no registered organisations: nothing to cover, not a gap

_VALUE_LABELS: dict[str, tuple[str, str]] = {
    "direct_only": ("genotificeerde organisaties zonder partner",
                    "notified organisations no partner covers"),
    "organisations": ("geregistreerde organisaties", "registered organisations"),
    "notified": ("genotificeerde organisaties", "notified organisations"),
    "partners": ("partners die organisaties in de cel dekken",
                 "partners covering organisations in the cell"),
}
_WORDS: dict[str, tuple[str, str]] = {
    "title": ("Netwerkdekking", "Network coverage"),
    "organisations": ("organisaties", "organisations"),
    "notified": ("genotificeerd", "notified"),
    "direct_only": ("genotificeerd zonder partner (alleen direct)",
                    "notified, no partner (direct only)"),
    "partners": ("partners", "partners"),
    "none": ("geen", "none"),
    "empty": ("geen geregistreerde organisaties", "no registered organisations"),
}


@dataclass
class _Tally:
    organisations: int = 0
    notified: int = 0
    direct_only: int = 0
    partners: set[str] = field(default_factory=set)


def heatmap_svg(cells: Sequence[CoverageCell], *, value: str = "direct_only",
                language: str = "en", title: str | None = None) -> str:
    """Every NIS2 sector and province is drawn, also where nothing is registered, so maps of
    different periods line up; an unknown row or column appears only when data needs it."""
    if value not in _VALUE_LABELS:
        raise ValueError(f"value must be one of {', '.join(_VALUE_LABELS)}, not {value!r}")
    lang = 0 if language == "nl" else 1
    tallies = _tally(cells)
    rows = [s for s in SECTOR_ORDER if s != UNKNOWN or any(k[0] == UNKNOWN for k in tallies)]
    cols = [p for p in PROVINCE_ORDER if p != UNKNOWN or any(k[1] == UNKNOWN for k in tallies)]
    amounts = {key: _amount(t, value) for key, t in tallies.items()}
    top_value = max(amounts.values(), default=0)

    row_labels = [axis_label(s, language) for s in rows]
    col_labels = [axis_label(p, language) for p in cols]
    left = 16 + int(6.5 * max(len(label) for label in row_labels))
    top = 48 + int(4.8 * max(len(label) for label in col_labels))
    width = left + CELL_W * len(cols) + 110
    height = top + CELL_H * len(rows) + 84

    svg = ET.Element("svg", {
        "xmlns": SVG_NS, "version": "1.1", "width": str(width), "height": str(height),
        "viewBox": f"0 0 {width} {height}", "font-family": "sans-serif", "font-size": "11",
    })
    heading = title if title is not None else (
        f"{_WORDS['title'][lang]}: {_VALUE_LABELS[value][lang]}")
    ET.SubElement(svg, "title").text = heading
    defs = ET.SubElement(svg, "defs")
    gradient = ET.SubElement(defs, "linearGradient",
                             {"id": "cwn-heat", "x1": "0", "y1": "0", "x2": "1", "y2": "0"})
    ET.SubElement(gradient, "stop", {"offset": "0", "stop-color": _colour(0.0)})
    ET.SubElement(gradient, "stop", {"offset": "1", "stop-color": _colour(1.0)})
    _text(svg, 12, 24, heading, {"font-size": "15", "font-weight": "bold"})

    for j, label in enumerate(col_labels):
        x, y = left + CELL_W * j + CELL_W // 2, top - 6
        _text(svg, x, y, label, {"transform": f"rotate(-45 {x} {y})", "class": "column"})
    for i, (sector, label) in enumerate(zip(rows, row_labels, strict=True)):
        y = top + CELL_H * i
        _text(svg, left - 8, y + CELL_H // 2 + 4, label,
              {"text-anchor": "end", "class": "row"})
        for j, province in enumerate(cols):
            _cell(svg, left + CELL_W * j, y, (sector, province), tallies, amounts, top_value,
                  lang, value)

    _legend(svg, left, top + CELL_H * len(rows) + 24, top_value, lang, value)
    body = ET.tostring(svg, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n' + body + "\n"


def _tally(cells: Sequence[CoverageCell]) -> dict[tuple[str, str], _Tally]:
    """Cells outside the fixed axes (a caller's own sector spelling) are merged into the
    unknown row or column instead of being dropped from the picture."""
    tallies: dict[tuple[str, str], _Tally] = {}
    for cell in cells:
        key = (cell.sector if cell.sector in SECTOR_ORDER else UNKNOWN,
               cell.province if cell.province in PROVINCE_ORDER else UNKNOWN)
        tally = tallies.setdefault(key, _Tally())
        tally.organisations += cell.organisations
        tally.notified += cell.notified
        tally.direct_only += cell.direct_only
        tally.partners.update(cell.partners)
    return tallies


def _amount(tally: _Tally, value: str) -> int:
    return len(tally.partners) if value == "partners" else int(getattr(tally, value))


def _cell(svg: ET.Element, x: int, y: int, key: tuple[str, str],
          tallies: dict[tuple[str, str], _Tally], amounts: dict[tuple[str, str], int],
          top_value: int, lang: int, value: str) -> None:
    tally = tallies.get(key, _Tally())
    amount = amounts.get(key, 0)
    share = amount / top_value if top_value else 0.0
    fill = _colour(share) if tally.organisations else EMPTY
    rect = ET.SubElement(svg, "rect", {
        "id": f"cell-{key[0]}-{key[1]}", "class": "cell", "x": str(x), "y": str(y),
        "width": str(CELL_W), "height": str(CELL_H), "fill": fill, "stroke": "#ffffff",
    })
    partners = ", ".join(sorted(tally.partners)) or _WORDS["none"][lang]
    ET.SubElement(rect, "title").text = "\n".join([
        f"{axis_label(key[0], 'nl' if lang == 0 else 'en')} × "
        f"{axis_label(key[1], 'nl' if lang == 0 else 'en')}",
        f"{_WORDS['organisations'][lang]}: {tally.organisations}",
        f"{_WORDS['notified'][lang]}: {tally.notified}",
        f"{_WORDS['direct_only'][lang]}: {tally.direct_only}",
        f"{_WORDS['partners'][lang]}: {partners}",
    ])
    if tally.organisations:
        _text(svg, x + CELL_W // 2, y + CELL_H // 2 + 4, str(amount), {
            "text-anchor": "middle", "fill": "#ffffff" if share > 0.55 else "#222222",
            "pointer-events": "none", "class": "amount"})


def _legend(svg: ET.Element, x: int, y: int, top_value: int, lang: int, value: str) -> None:
    _text(svg, x, y, _VALUE_LABELS[value][lang], {"class": "legend"})
    ET.SubElement(svg, "rect", {"class": "legend", "x": str(x), "y": str(y + 8),
                                "width": "200", "height": "12", "fill": "url(#cwn-heat)",
                                "stroke": "#999999"})
    _text(svg, x, y + 34, "0", {"class": "legend"})
    _text(svg, x + 200, y + 34, str(top_value), {"class": "legend", "text-anchor": "end"})
    ET.SubElement(svg, "rect", {"class": "legend", "x": str(x + 230), "y": str(y + 8),
                                "width": "12", "height": "12", "fill": EMPTY,
                                "stroke": "#999999"})
    _text(svg, x + 248, y + 18, _WORDS["empty"][lang], {"class": "legend"})


def _text(parent: ET.Element, x: int, y: int, content: str,
          attrs: dict[str, str]) -> ET.Element:
    node = ET.SubElement(parent, "text", {"x": str(x), "y": str(y), **attrs})
    node.text = content
    return node


def _colour(share: float) -> str:
    """Linear from white to dark red, matching the legend's gradient stop for stop."""
    share = min(max(share, 0.0), 1.0)
    channels = (round(255 + (high - 255) * share) for high in HIGH)
    return "#" + "".join(f"{c:02x}" for c in channels)
