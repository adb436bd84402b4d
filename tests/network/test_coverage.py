"""Coverage per sector × province on a small hand-made registry whose every number was
worked out by hand: 30 organisations in 3 sectors and 4 provinces, an ISP covering its AS
customers (covered_orgs) and a sector CSIRT covering energy."""

from __future__ import annotations

import pyarrow as pa
import pytest

from cwn.network import NIS2_SECTORS, PROVINCES, compute_coverage, coverage_table, sector_key
from cwn.network.coverage import CoverageCell

ISP, CSIRT = "isp-as64500", "csirt-energy"
_SECTORS = ("energy", "health/healthcare-providers", "drinking-water")
_PROVINCES = ("PV20", "PV27", "PV28", "PV31")


def _sector(i: int) -> str:
    sector = _SECTORS[i % 3]
    if sector == "energy":
        return "energy/electricity" if i % 2 == 0 else "Energy/Gas"
    return sector.upper() if i % 5 == 0 else sector


def registry() -> pa.Table:
    """o00..o29: organisation i is in sector i % 3 and province i % 4."""
    return pa.table({
        "id": [f"o{i:02d}" for i in range(30)],
        "sector": [_sector(i) for i in range(30)],
        "province": [_PROVINCES[i % 4] for i in range(30)],
    })


def agreements() -> pa.Table:
    return pa.table({
        "partner_id": [ISP, CSIRT],
        "kind": ["asn", "sector"],
        "value": ["64500", "energy"],
        "covered_orgs": [["o01", "o13", "o02", "o04", "o10", "o22", "not-registered"], None],
    })


NOTIFIED = ["o00", "o01", "o25", "o05", "o17", "o08", "o02", "o14", "o26", "o11", "o07",
            "o09", "o99"]

# (sector, province, organisations, notified, partners, direct_only), in sector/province order
EXPECTED = [
    ("energy", "PV20", 3, 1, (CSIRT,), 0),
    ("energy", "PV27", 2, 1, (CSIRT,), 0),
    ("energy", "PV28", 2, 0, (CSIRT,), 0),
    ("energy", "PV31", 3, 0, (CSIRT,), 0),
    ("health", "PV20", 3, 0, (ISP,), 0),
    ("health", "PV27", 3, 2, (ISP,), 1),
    ("health", "PV28", 2, 0, (ISP,), 0),
    ("health", "PV31", 2, 1, (), 1),
    ("drinking-water", "PV20", 2, 1, (), 1),
    ("drinking-water", "PV27", 3, 2, (), 2),
    ("drinking-water", "PV28", 3, 3, (ISP,), 2),
    ("drinking-water", "PV31", 2, 1, (), 1),
]


def _tuples(cells: list[CoverageCell]) -> list[tuple[object, ...]]:
    return [(c.sector, c.province, c.organisations, c.notified, c.partners, c.direct_only)
            for c in cells]


def test_hand_made_registry_cell_by_cell() -> None:
    cells = compute_coverage(registry(), agreements(), pa.array(NOTIFIED))
    assert _tuples(cells) == EXPECTED


def test_result_does_not_depend_on_column_types_or_chunking() -> None:
    orgs = registry()
    chunked = pa.concat_tables([orgs.slice(0, 7), orgs.slice(7)])
    chunked = chunked.set_column(1, "sector", chunked.column("sector").dictionary_encode())
    chunked = chunked.set_column(0, "id", chunked.column("id").cast(pa.large_string()))
    notified = pa.chunked_array([NOTIFIED[:4], NOTIFIED[4:]], type=pa.large_string())
    assert _tuples(compute_coverage(chunked, agreements(), notified)) == EXPECTED


def test_no_partners_means_every_notified_organisation_is_a_gap() -> None:
    cells = compute_coverage(registry(), agreements().slice(0, 0), pa.array(NOTIFIED))
    assert all(c.partners == () for c in cells)
    assert [c.direct_only for c in cells] == [c.notified for c in cells]
    assert sum(c.direct_only for c in cells) == 12  # o99 is not registered


@pytest.mark.parametrize(("kind", "value", "covered_orgs", "expected_partner_cells", "gaps"), [
    # region by code and by (English) name: whole columns
    ("region", "PV27", None, {("energy", "PV27"), ("health", "PV27"),
                              ("drinking-water", "PV27")}, 6),
    ("region", "south holland", None, {("energy", "PV28"), ("health", "PV28"),
                                       ("drinking-water", "PV28")}, 7),
    # one subsector: every cell holding a gas company (odd energy ids: o03, o09, o15, o21, o27)
    ("sector", "energy/gas", None, {("energy", "PV27"), ("energy", "PV31")}, 10),
    ("sector", " Energy / GAS", None, {("energy", "PV27"), ("energy", "PV31")}, 10),
    ("sector", "energy", None, {("energy", "PV20"), ("energy", "PV27"), ("energy", "PV28"),
                                ("energy", "PV31")}, 10),
    # one named organisation
    ("organisation", "o25", None, {("health", "PV27")}, 9),
    # asn scope that the caller could not resolve to organisations: covers nobody
    ("asn", "64501", None, set(), 10),
    ("prefix", "192.0.2.0/24", [], set(), 10),
    ("prefix", "192.0.2.0/24", ["o08", "o20"], {("drinking-water", "PV20")}, 9),
    # values naming nothing known cover nothing
    ("sector", "bakeries", None, set(), 10),
    ("sector", "unknown", None, set(), 10),
    ("region", "PV99", None, set(), 10),
    ("telepathy", "o25", None, set(), 10),
])
def test_each_scope_kind(kind: str, value: str, covered_orgs: list[str] | None,
                         expected_partner_cells: set[tuple[str, str]], gaps: int) -> None:
    """One extra partner next to the CSIRT (energy, which covers o00 and o09 of the 12
    notified registered organisations: 10 gaps without other partners)."""
    extra = pa.table({
        "partner_id": [CSIRT, "extra"], "kind": ["sector", kind], "value": ["energy", value],
        "covered_orgs": pa.array([None, covered_orgs], pa.list_(pa.string())),
    })
    cells = compute_coverage(registry(), extra, pa.array(NOTIFIED))
    assert {(c.sector, c.province) for c in cells if "extra" in c.partners} == (
        expected_partner_cells)
    assert sum(c.direct_only for c in cells) == gaps


def test_unknown_sector_and_province_go_to_the_unknown_row_and_column() -> None:
    orgs = pa.table({
        "id": ["a", "b", "c", "d", "e"],
        "sector": [None, "bakeries", "energy", "", "transport/rail"],
        "province": ["PV27", None, "Utrecht?", "pv26", "Limburg"],
    })
    ag = pa.table({"partner_id": ["p", None], "kind": ["organisation", "organisation"],
                   "value": ["b", "a"]})
    cells = compute_coverage(orgs, ag, pa.array(["a", "b", "c"]))
    assert _tuples(cells) == [
        ("energy", "unknown", 1, 1, (), 1),
        ("transport", "PV31", 1, 0, (), 0),
        ("unknown", "PV26", 1, 0, (), 0),
        ("unknown", "PV27", 1, 1, (), 1),
        ("unknown", "unknown", 1, 1, ("p",), 0),
    ]


def test_empty_inputs() -> None:
    empty = registry().slice(0, 0)
    assert compute_coverage(empty, agreements(), pa.array([], pa.string())) == []


def test_missing_columns_are_refused() -> None:
    with pytest.raises(ValueError, match=r"organisations table lacks column.*province"):
        compute_coverage(registry().drop_columns(["province"]), agreements(), pa.array([]))
    with pytest.raises(ValueError, match=r"agreements table lacks column.*kind"):
        compute_coverage(registry(), agreements().drop_columns(["kind"]), pa.array([]))


def test_table_puts_the_worst_gaps_first_and_keeps_order_on_ties() -> None:
    rows = coverage_table(compute_coverage(registry(), agreements(), pa.array(NOTIFIED)))
    assert [(r["sector"], r["province"], r["direct_only"]) for r in rows[:6]] == [
        ("drinking-water", "PV27", 2), ("drinking-water", "PV28", 2), ("health", "PV27", 1),
        ("health", "PV31", 1), ("drinking-water", "PV20", 1), ("drinking-water", "PV31", 1),
    ]
    assert rows[1] == {"sector": "drinking-water", "province": "PV28", "partners": ISP,
                       "organisations": 3, "notified": 3, "direct_only": 2}
    assert set(rows[0]) == {"sector", "province", "partners", "organisations", "notified",
                            "direct_only"}


@pytest.mark.parametrize(("raw", "key"), [
    ("energy/electricity", "energy"), ("Energy", "energy"), (" health / hospitals ", "health"),
    ("digital-infrastructure/dns", "digital-infrastructure"), ("research", "research"),
    (None, "unknown"), ("", "unknown"), ("bakeries", "unknown"), ("/energy", "unknown"),
])
def test_sector_key(raw: str | None, key: str) -> None:
    assert sector_key(raw) == key


def test_axes() -> None:
    assert list(PROVINCES) == [f"PV{n}" for n in range(20, 32)]
    assert PROVINCES["PV21"] == ("Fryslân", "Friesland")
    assert len(NIS2_SECTORS) == 18
    assert all(k == k.lower() and " " not in k for k in NIS2_SECTORS)
    assert {"energy", "ict-service-management", "digital-providers"} <= set(NIS2_SECTORS)
