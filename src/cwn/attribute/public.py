"""Owners from public data, for the events no registered organisation claimed.

Most Dutch organisations never register, yet their systems show up in feeds. After the
registry index has had its say, every still-unowned event with an address is matched
offline, in bulk, against the imported public data:

* the RIPE Database: the innermost inetnum/inet6num gives the holder (its `org`, or the
  block itself when it names none) — owner `ripe:ORG-…` or `ripe:<first>-<last>`;
* a network outside the Kingdom (NL, BQ, AW, CW, SX — by the block's country, else the RIR
  delegated statistics, else the feed's geolocation; region codes such as RIPE's "EU" give
  no verdict, and a network of unknown country stays in scope) goes to that country's
  national CSIRT — owner `csirt:<CC>`, or to nobody when the directory has no team;
* a Kingdom network the RIPE data does not cover falls back to its origin AS from the
  pyasn data — owner `as:<ASN>`.

The owner id travels in the event's `organization` column like a registry id (so cases,
repeat policy and the outbox work unchanged), with `match_kind` saying it came from public
data. Whom to mail for such an owner is decided per notify run (`cwn.route.contacts`), where
live sources (RDAP, security.txt) and operator overrides come in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cwn.publicdata.csirts import CsirtDirectory
from cwn.publicdata.delegated import KINGDOM, Delegated
from cwn.publicdata.pyasn import OriginAS
from cwn.publicdata.ripe import RipeData
from cwn.publicdata.store import PublicDataStore

PUBLIC_PREFIXES = ("ripe:", "csirt:", "as:")
"""Owner ids that are not registry organisations."""

_KINGDOM = pa.array(sorted(KINGDOM), pa.string())
_NOT_A_COUNTRY = pa.array(["EU", "AP", "ZZ", "XX", "AA"], pa.string())
"""Region and placeholder codes (RIPE's "EU", anonymised feeds' "ZZ"): no scope verdict."""
_NULL = pa.scalar(None, pa.string())


def is_public_owner(owner_id: str) -> bool:
    return owner_id.startswith(PUBLIC_PREFIXES)


@dataclass
class PublicAttribution:
    ripe: RipeData | None
    delegated: Delegated | None
    origin: OriginAS | None
    csirts: CsirtDirectory | None

    @classmethod
    def load(cls, store: PublicDataStore) -> PublicAttribution | None:
        """The imported sources, or None when nothing is imported (attribution is then the
        registry's alone)."""
        parts = (RipeData.load(store), Delegated.load(store), OriginAS.load(store),
                 CsirtDirectory.load(store))
        if all(p is None for p in parts):
            return None
        return cls(*parts)

    def attribute(self, events: pa.Table) -> pa.Table:
        """Fill `organization`, `matched_asset` and `match_kind` of unowned events."""
        org = events.column("organization")
        ip = events.column("source.ip")
        todo = pc.and_(pc.is_null(org), pc.is_valid(ip))
        rows = np.flatnonzero(todo.to_numpy(zero_copy_only=False))
        if len(rows) == 0:
            return events
        take = pa.array(rows)
        ips = ip.take(take)
        n = len(rows)
        owner = pa.nulls(n, pa.string())
        asset = pa.nulls(n, pa.string())
        kind = pa.nulls(n, pa.string())
        country = pa.nulls(n, pa.string())
        if self.ripe is not None:
            blocks = self.ripe.lookup_ips(ips)
            block = blocks.column("block")
            ripe_owner = pc.coalesce(blocks.column("org_id"), block)
            owner = pc.if_else(pc.is_valid(block),
                               pc.binary_join_element_wise("ripe:", ripe_owner, ""), owner)
            asset = pc.coalesce(asset, block)
            kind = pc.if_else(pc.is_valid(block), pa.scalar("ripe"), kind)
            country = pc.coalesce(country, _country(blocks.column("country")))
        if self.delegated is not None:
            country = pc.coalesce(country, _country(self.delegated.lookup_ips(ips).column("cc")))
        if "source.geolocation.cc" in events.column_names:
            country = pc.coalesce(country, _country(
                events.column("source.geolocation.cc").take(take)))
        foreign = pc.and_(pc.is_valid(country),
                          pc.invert(pc.is_in(country, value_set=_KINGDOM)))
        foreign = pc.fill_null(foreign, False)
        if self.csirts is not None:
            team = self.csirts.for_countries(pc.if_else(foreign, country, _NULL))
            has_team = pc.and_(foreign, pc.is_valid(team.column("email")))
            has_team = pc.fill_null(has_team, False)
            owner = pc.if_else(has_team, pc.binary_join_element_wise("csirt:", country, ""),
                               owner)
            asset = pc.if_else(has_team, country, asset)
            kind = pc.if_else(has_team, pa.scalar("csirt"), kind)
        # A foreign network without a national CSIRT is not ours to tell about.
        owner = pc.if_else(foreign, pc.if_else(pc.equal(kind, "csirt"), owner, _NULL), owner)
        if self.origin is not None:
            asn = self.origin.lookup(ips)
            fallback = pc.and_(pc.and_(pc.is_null(owner), pc.invert(foreign)),
                               pc.is_valid(asn))
            fallback = pc.fill_null(fallback, False)
            as_text = pc.cast(asn, pa.string())
            owner = pc.if_else(fallback, pc.binary_join_element_wise("as:", as_text, ""), owner)
            asset = pc.if_else(fallback, pc.binary_join_element_wise("AS", as_text, ""), asset)
            kind = pc.if_else(fallback, pa.scalar("as"), kind)
            if "source.asn" in events.column_names:
                known = events.column("source.asn")
                filled = pc.coalesce(known.take(take), pc.cast(asn, known.type))
                events = _scatter(events, "source.asn", rows, filled)
        kind = pc.if_else(pc.is_valid(owner), kind, _NULL)
        asset = pc.if_else(pc.is_valid(owner), asset, _NULL)
        for name, values in (("organization", owner), ("matched_asset", asset),
                             ("match_kind", kind)):
            events = _scatter(events, name, rows, values)
        return events


def _country(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Upper-case two-letter country codes; region and placeholder codes become null (a
    network of unknown country is in scope: its RIPE abuse contact is still the one to
    tell)."""
    cc = pc.utf8_upper(pc.utf8_trim_whitespace(values))
    ok = pc.and_(pc.equal(pc.utf8_length(cc), 2),
                 pc.invert(pc.is_in(cc, value_set=_NOT_A_COUNTRY)))
    return pc.if_else(pc.fill_null(ok, False), cc, _NULL)


def _scatter(events: pa.Table, name: str, rows: np.ndarray, values: pa.Array) -> pa.Table:
    """events[name][rows] = values, column-wise (no Python per row)."""
    col = events.column(name)
    values = values.cast(col.type)
    if len(rows) == events.num_rows:
        new = values
    else:
        full = np.full(events.num_rows, -1, dtype=np.int64)
        full[rows] = np.arange(len(rows))
        mask = full < 0
        picked = values.take(pa.array(np.where(mask, 0, full)))
        new = pc.if_else(pa.array(mask), col.combine_chunks(), picked)
    return events.set_column(events.schema.get_field_index(name), name, new)
