"""Which partners reach which organisations, per NIS2 sector and province, and how many
notified organisations only the central desk reaches (the gaps in the network).

Coverage is decided per organisation but reported per cell (sector × province): recruiting a
partner is a decision about a sector or a region, and a cell-level count is what shows where
one is missing. Sector and region scopes cover whole rows and columns, so they are matched
on the few distinct (sector, province) groups; only explicit organisation lists
(`organisation` scopes and the caller's `covered_orgs` for asn/prefix scopes) touch
individual organisations, through one hash lookup. Nothing loops per organisation, because
the national registry holds millions of them.

An asn/prefix scope without `covered_orgs` covers nobody here: resolving assets to
organisations needs the attribution index, which the caller owns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from cwn.network.regions import NIS2_SECTORS, PROVINCES, UNKNOWN, province_key, sector_key

SECTOR_ORDER: tuple[str, ...] = (*NIS2_SECTORS, UNKNOWN)
PROVINCE_ORDER: tuple[str, ...] = (*PROVINCES, UNKNOWN)
_SECTOR_INDEX = {key: i for i, key in enumerate(SECTOR_ORDER)}
_PROVINCE_INDEX = {key: i for i, key in enumerate(PROVINCE_ORDER)}
_NS, _NP = len(SECTOR_ORDER), len(PROVINCE_ORDER)

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class CoverageCell:
    """One sector × province cell; `direct_only` is the number that asks for a partner."""

    sector: str
    province: str
    organisations: int
    notified: int
    partners: tuple[str, ...]
    direct_only: int


def compute_coverage(organisations: pa.Table, agreements: pa.Table,
                     notified: pa.Array | pa.ChunkedArray) -> list[CoverageCell]:
    """Cells (in sector, province order) that hold at least one registered organisation; an
    empty cell has no organisation a partner could cover, so it is left out."""
    _require(organisations, ("id", "sector", "province"), "organisations")
    _require(agreements, ("partner_id", "kind", "value"), "agreements")
    ids = _as_strings(organisations.column("id"))

    sector_codes, sector_values = _encode(organisations.column("sector"))
    canon = [_canonical_sector(v) for v in sector_values]
    groups = sorted(set(canon))
    group_of_code = np.array([groups.index(c) for c in canon], dtype=np.int64)
    group = group_of_code[sector_codes]
    row_of_group = np.array([_SECTOR_INDEX[sector_key(g)] for g in groups], dtype=np.int64)

    prov_codes, prov_values = _encode(organisations.column("province"))
    col_of_code = np.array([_PROVINCE_INDEX[province_key(v)] for v in prov_values],
                           dtype=np.int64)
    col = col_of_code[prov_codes]
    cell = row_of_group[group] * _NP + col

    scopes = _Scopes(agreements, groups)
    npart = len(scopes.partners)

    # Whole-row and whole-column scopes, decided on (sector group, province) pairs.
    group_count = np.bincount(group * _NP + col, minlength=len(groups) * _NP)
    present: BoolArray = np.asarray(group_count.reshape(len(groups), _NP) > 0)
    by_any_sector = np.asarray(scopes.by_sector.any(axis=0))
    by_any_region = np.asarray(scopes.by_region.any(axis=0))
    covered = by_any_sector[group] | by_any_region[col]
    grid = np.zeros((_NS, _NP, npart), dtype=np.int64)
    np.add.at(grid, row_of_group, present[:, :, None] & scopes.by_sector.T[:, None, :])
    org_count = np.bincount(cell, minlength=_NS * _NP)
    occupied = np.asarray(org_count.reshape(_NS, _NP) > 0)
    grid |= occupied[:, :, None] & scopes.by_region.T[None, :, :]
    cover = grid.reshape(_NS * _NP, npart) > 0

    # Explicit organisation lists: one hash lookup of all listed ids in the registry.
    index = pc.index_in(scopes.org_ids, options=pc.SetLookupOptions(ids, skip_nulls=True))
    where = index.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    found = where >= 0
    covered[where[found]] = True
    pairs = np.unique(cell[where[found]] * npart + scopes.org_partner[found])
    cover[pairs // max(npart, 1), pairs % max(npart, 1)] = True

    told = pc.is_in(ids, options=pc.SetLookupOptions(_as_strings(notified), skip_nulls=True))
    told_mask = told.to_numpy(zero_copy_only=False).astype(bool)
    told_count = np.bincount(cell[told_mask], minlength=_NS * _NP)
    direct = np.bincount(cell[told_mask & ~covered], minlength=_NS * _NP)

    return [
        CoverageCell(
            sector=SECTOR_ORDER[c // _NP], province=PROVINCE_ORDER[c % _NP],
            organisations=int(org_count[c]), notified=int(told_count[c]),
            partners=tuple(scopes.partners[j] for j in np.flatnonzero(cover[c])),
            direct_only=int(direct[c]),
        )
        for c in np.flatnonzero(org_count)
    ]


def coverage_table(cells: Iterable[CoverageCell]) -> list[dict[str, Any]]:
    """Worst gaps first, because the table is read top-down to decide whom to recruit; ties
    keep the sector/province order so the output is stable between runs."""
    ordered = sorted(cells, key=lambda c: -c.direct_only)
    return [
        {"sector": c.sector, "province": c.province, "partners": ", ".join(c.partners),
         "organisations": c.organisations, "notified": c.notified,
         "direct_only": c.direct_only}
        for c in ordered
    ]


class _Scopes:
    """Agreement rows turned into matrices (partner × sector group, partner × province) and
    one flat list of (partner, organisation id) for the explicit scopes. Loops here run per
    agreement row, of which there are hundreds, never per organisation."""

    def __init__(self, agreements: pa.Table, groups: Sequence[str]) -> None:
        rows = agreements.filter(pc.is_valid(agreements.column("partner_id")))
        partner_col = rows.column("partner_id").to_pylist()
        self.partners: list[str] = sorted({str(p) for p in partner_col})
        pindex = {p: i for i, p in enumerate(self.partners)}
        row_partner = np.array([pindex[str(p)] for p in partner_col], dtype=np.int64)
        self.by_sector: BoolArray = np.zeros((len(self.partners), len(groups)), dtype=bool)
        self.by_region: BoolArray = np.zeros((len(self.partners), _NP), dtype=bool)
        explicit_ids: list[str] = []
        explicit_partner: list[int] = []
        kinds = rows.column("kind").to_pylist()
        values = rows.column("value").to_pylist()
        for p, kind, value in zip(row_partner, kinds, values, strict=True):
            if value is None or kind is None:
                continue
            kind, text = str(kind).strip().lower(), str(value).strip()
            if kind == "sector":
                self.by_sector[p] |= _sector_matches(text, groups)
            elif kind == "region" and (prov := province_key(text)) != UNKNOWN:
                self.by_region[p, _PROVINCE_INDEX[prov]] = True
            elif kind == "organisation":
                explicit_ids.append(text)
                explicit_partner.append(int(p))
        ids = pa.array(explicit_ids, type=pa.string())
        partner_of = np.array(explicit_partner, dtype=np.int64)
        if "covered_orgs" in rows.column_names and rows.num_rows:
            lists = rows.column("covered_orgs").combine_chunks()
            flat = pc.list_flatten(lists)
            parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
            ids = pa.concat_arrays([ids, _as_strings(flat)])
            partner_of = np.concatenate([partner_of, row_partner[parents.astype(np.int64)]])
        self.org_ids: pa.Array = ids
        self.org_partner: IntArray = partner_of


def _sector_matches(value: str, groups: Sequence[str]) -> BoolArray:
    """A scope names a sector ("energy", covering its subsectors) or one subsector
    ("energy/electricity"); a value naming no NIS2 sector covers nothing rather than the
    unknown row."""
    text = _canonical_sector(value)
    if text == UNKNOWN:
        return np.zeros(len(groups), dtype=bool)
    return np.array([g == text or g.startswith(text + "/") for g in groups], dtype=bool)


def _canonical_sector(value: str | None) -> str:
    """Spelling variants of one subsector must fall in one group, and all non-NIS2 values in
    the unknown group, so the number of groups stays small whatever the registry holds."""
    key = sector_key(value)
    if key == UNKNOWN or value is None:
        return UNKNOWN
    parts = [part.strip() for part in value.strip().lower().split("/")]
    return "/".join(part for part in parts if part)


def _encode(column: pa.Array | pa.ChunkedArray) -> tuple[IntArray, list[str | None]]:
    """Distinct values are few (sectors, provinces), so they are normalised once each and
    mapped back through the integer codes."""
    encoded = pc.dictionary_encode(_as_strings(column), null_encoding="encode")
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, encoded.dictionary.to_pylist()


def _as_strings(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(array.type) or array.type != pa.string():
        array = array.cast(pa.string())
    return array


def _require(table: pa.Table, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(f"{what} table lacks column(s): {', '.join(missing)}")
