"""The heat map as a reader and a parser see it: one rect per sector × province with a
tooltip, colour by the chosen number, labels in the chosen language, safe with odd names."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

import pyarrow as pa
import pytest

from cwn.network import NIS2_SECTORS, PROVINCES, compute_coverage, heatmap_svg
from cwn.network.coverage import CoverageCell
from cwn.network.heatmap import EMPTY

from .test_coverage import ISP, NOTIFIED, agreements, registry

NS = "{http://www.w3.org/2000/svg}"


def _cells() -> list[CoverageCell]:
    return compute_coverage(registry(), agreements(), pa.array(NOTIFIED))


def _rects(svg: str) -> dict[str, ET.Element]:
    root = ET.fromstring(svg)
    return {r.attrib["id"]: r for r in root.iter(f"{NS}rect") if r.get("class") == "cell"}


def _title(rect: ET.Element) -> str:
    title = rect.find(f"{NS}title")
    assert title is not None and title.text
    return title.text


def test_standalone_svg_with_one_rect_and_tooltip_per_cell() -> None:
    svg = heatmap_svg(_cells())
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg" and root.get("version") == "1.1"
    rects = _rects(svg)
    assert len(rects) == len(NIS2_SECTORS) * len(PROVINCES)
    assert all(_title(r) for r in rects.values())
    assert _title(rects["cell-drinking-water-PV28"]).splitlines() == [
        "Drinking water × South Holland", "organisations: 3", "notified: 3",
        "notified, no partner (direct only): 2", f"partners: {ISP}"]
    assert _title(rects["cell-space-PV24"]).splitlines()[1:] == [
        "organisations: 0", "notified: 0", "notified, no partner (direct only): 0",
        "partners: none"]


@pytest.mark.parametrize(("value", "darkest", "white", "top"), [
    ("direct_only", {"cell-drinking-water-PV27", "cell-drinking-water-PV28"},
     "cell-energy-PV20", "2"),
    ("notified", {"cell-drinking-water-PV28"}, "cell-energy-PV28", "3"),
    ("organisations", {"cell-energy-PV20", "cell-energy-PV31", "cell-health-PV20",
                       "cell-health-PV27", "cell-drinking-water-PV27",
                       "cell-drinking-water-PV28"}, None, "3"),
    ("partners", {"cell-energy-PV20", "cell-energy-PV27", "cell-energy-PV28",
                  "cell-energy-PV31", "cell-health-PV20", "cell-health-PV27",
                  "cell-health-PV28", "cell-drinking-water-PV28"}, "cell-health-PV31", "1"),
])
def test_colour_follows_the_chosen_value(value: str, darkest: set[str], white: str | None,
                                         top: str) -> None:
    svg = heatmap_svg(_cells(), value=value)
    rects = _rects(svg)
    assert {k for k, r in rects.items() if r.get("fill") == "#8b0000"} == darkest
    if white is not None:
        assert rects[white].get("fill") == "#ffffff"
    assert rects["cell-space-PV24"].get("fill") == EMPTY  # nothing registered there
    legend = [t.text for t in ET.fromstring(svg).iter(f"{NS}text") if t.get("class") == "legend"]
    assert top in legend


def test_half_way_is_half_way_to_dark_red() -> None:
    rects = _rects(heatmap_svg(_cells()))
    assert rects["cell-health-PV27"].get("fill") == "#c58080"  # 1 of at most 2


@pytest.mark.parametrize(("language", "sector", "province", "word"), [
    ("en", "Drinking water", "North Holland", "organisations: 3"),
    ("nl", "Drinkwater", "Noord-Holland", "organisaties: 3"),
])
def test_labels_in_the_chosen_language(language: str, sector: str, province: str,
                                       word: str) -> None:
    svg = heatmap_svg(_cells(), language=language)
    texts = {t.text for t in ET.fromstring(svg).iter(f"{NS}text")}
    assert {sector, province} <= texts
    assert word in _title(_rects(svg)["cell-drinking-water-PV27"])


def test_partner_names_are_escaped() -> None:
    cell = CoverageCell("energy", "PV27", 2, 1, ('<script>"x"&co</script>',), 0)
    svg = heatmap_svg([cell], title="A & B <coverage>")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    root = ET.fromstring(svg)
    assert '<script>"x"&co</script>' in _title(_rects(svg)["cell-energy-PV27"])
    title = root.find(f"{NS}title")
    assert title is not None and title.text == "A & B <coverage>"


def test_deterministic_whatever_the_input_order() -> None:
    cells = _cells()
    shuffled = cells[:]
    random.Random(7).shuffle(shuffled)
    assert heatmap_svg(cells) == heatmap_svg(shuffled) == heatmap_svg(list(reversed(cells)))


def test_unknown_row_and_column_appear_only_when_needed() -> None:
    assert not any("unknown" in k for k in _rects(heatmap_svg(_cells())))
    cells = [*_cells(), CoverageCell("unknown", "unknown", 1, 1, (), 1),
             CoverageCell("bakeries", "PV27", 1, 0, ("p",), 0)]
    rects = _rects(heatmap_svg(cells))
    assert len(rects) == (len(NIS2_SECTORS) + 1) * (len(PROVINCES) + 1)
    assert "partners: p" in _title(rects["cell-unknown-PV27"])  # merged, not dropped
    assert "onbekend" in heatmap_svg(cells, language="nl")


def test_unknown_value_is_refused() -> None:
    with pytest.raises(ValueError, match="value must be one of"):
        heatmap_svg(_cells(), value="colour")
