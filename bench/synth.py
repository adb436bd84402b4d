"""Synthetic national-scale data for the benchmark: a registry and a Shadowserver report.

Generated column-wise with numpy so generation does not dominate the benchmark. The shapes
follow reality: most organisations hold one or a few small IPv4 prefixes, many a domain,
fewer an IPv6 prefix or an AS number, and prefixes nest (a hoster's /16 holds customers'
/24s and /29s), so longest-prefix matching is exercised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

SIGN = np.uint64(1 << 63)


def _str(a: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(a), pa.string())


def _ipv4_text(ints: np.ndarray) -> pa.Array:
    octets = [_str((ints >> s) & 0xFF) for s in (24, 16, 8, 0)]
    return pc.binary_join_element_wise(*octets, ".")


def _signed(u: np.ndarray) -> np.ndarray:
    """uint64 -> int64 with the sign bit flipped, as the assets table stores IPv6 halves."""
    return (u.astype(np.uint64) ^ SIGN).view(np.int64)


def registry(n_orgs: int, n_assets: int, seed: int = 7) -> tuple[pa.Table, pa.Table]:
    """Organisations and assets as Arrow tables with the database's column names."""
    rng = np.random.default_rng(seed)
    org_idx = np.arange(n_orgs)
    org_ids = pc.binary_join_element_wise("org", _str(org_idx), "")
    provinces = np.array([f"PV{n}" for n in range(20, 32)])
    orgs = pa.table({
        "id": org_ids,
        "name": pc.binary_join_element_wise("Synthetic organisation ", _str(org_idx), ""),
        "kvk": pc.utf8_lpad(_str(rng.integers(1, 99_999_999, n_orgs)), 8, "0"),
        "province": pa.array(provinces[rng.integers(0, len(provinces), n_orgs)]),
        "language": pa.array(np.where(rng.random(n_orgs) < 0.9, "nl", "en")),
    })

    # Asset mix: 55% IPv4, 15% IPv6, 8% ASN, 22% domains.
    n4, n6, nasn = int(n_assets * 0.55), int(n_assets * 0.15), int(n_assets * 0.08)
    ndom = n_assets - n4 - n6 - nasn
    owner = lambda n: rng.integers(0, n_orgs, n)  # noqa: E731

    # IPv4: prefix lengths /16../32, weighted to /24-/29 as customers hold.
    lens4 = rng.choice(np.arange(16, 33), n4, p=_weights4())
    base4 = rng.integers(1 << 24, 224 << 24, n4, dtype=np.uint64)
    mask4 = (np.uint64(0xFFFFFFFF) << (np.uint64(32) - lens4.astype(np.uint64))) \
        & np.uint64(0xFFFFFFFF)
    net4 = base4 & mask4
    v4_text = pc.binary_join_element_wise(_ipv4_text(net4), _str(lens4), "/")

    # IPv6: /32../64 inside 2000::/3.
    lens6 = rng.choice(np.array([32, 36, 40, 44, 48, 56, 64]), n6)
    hi6 = (rng.integers(0, 1 << 61, n6, dtype=np.uint64) | np.uint64(0x2000 << 48))
    hi6 = hi6 & ~((np.uint64(1) << (np.uint64(64) - lens6.astype(np.uint64))) - np.uint64(1))
    groups = [np.char.mod("%x", ((hi6 >> np.uint64(s)) & np.uint64(0xFFFF)).astype(np.int64))
              for s in (48, 32, 16, 0)]
    v6_text = pc.binary_join_element_wise(
        pc.binary_join_element_wise(*[pa.array(g) for g in groups], ":"), "::/",
        _str(lens6), "")

    asns = rng.choice(np.arange(1, 4_200_000_000, 37, dtype=np.int64)[: max(nasn * 2, 1)],
                      nasn, replace=False)
    doms = pc.binary_join_element_wise("org", _str(owner_dom := owner(ndom)), "-",
                                       _str(np.arange(ndom)), ".nl", "")

    def part(kind: str, owners: np.ndarray, value: pa.Array, **cols: object) -> pa.Table:
        n = len(owners)
        base = {
            "org_id": pc.take(org_ids, pa.array(owners)),
            "type": pa.repeat(pa.scalar(kind), n),
            "value": value,
            "ip_version": pa.nulls(n, pa.int16()),
            "ip_hi": pa.nulls(n, pa.int64()),
            "ip_lo": pa.nulls(n, pa.int64()),
            "prefixlen": pa.nulls(n, pa.int16()),
            "asn": pa.nulls(n, pa.int64()),
        }
        base.update({k: v for k, v in cols.items()})  # type: ignore[misc]
        base["verified"] = pa.repeat(pa.scalar(True), n)
        base["verified_by"] = pa.repeat(pa.scalar("operator-import"), n)
        base["source"] = pa.repeat(pa.scalar("bench"), n)
        return pa.table(base)

    assets = pa.concat_tables([
        part("cidr", owner(n4), v4_text,
             ip_version=pa.repeat(pa.scalar(4, pa.int16()), n4),
             ip_lo=pa.array(net4.astype(np.int64)),
             prefixlen=pa.array(lens4.astype(np.int16))),
        part("cidr", owner(n6), v6_text,
             ip_version=pa.repeat(pa.scalar(6, pa.int16()), n6),
             ip_hi=pa.array(_signed(hi6)), ip_lo=pa.array(_signed(np.zeros(n6, np.uint64))),
             prefixlen=pa.array(lens6.astype(np.int16))),
        part("asn", owner(nasn),  # canonical text, as the importer stores it: AS64496
             pc.binary_join_element_wise("AS", pc.cast(pa.array(asns), pa.string()), ""),
             asn=pa.array(asns)),
        part("domain", owner_dom, doms),
    ])
    return orgs, assets


def _weights4() -> np.ndarray:
    w = np.array([1, 1, 1, 1, 2, 2, 3, 4, 20, 6, 6, 8, 10, 12, 6, 4, 6], dtype=float)
    return w / w.sum()


def scan_report(path: Path, rows: int, assets: pa.Table, hit_ratio: float = 0.7,
                seed: int = 11) -> None:
    """A Shadowserver `scan_rdp`-style CSV with the real column names.

    `hit_ratio` of the rows fall inside a registered IPv4 prefix (so attribution has work);
    the rest are random addresses, most of them owned by nobody in the registry.
    """
    rng = np.random.default_rng(seed)
    v4 = assets.filter(pc.equal(assets.column("ip_version"), 4))
    nets = v4.column("ip_lo").to_numpy().astype(np.uint64)
    lens = v4.column("prefixlen").to_numpy().astype(np.uint64)
    pick = rng.integers(0, len(nets), rows)
    size = np.uint64(1) << (np.uint64(32) - lens[pick])
    inside = nets[pick] + (rng.integers(0, 1 << 32, rows, dtype=np.uint64) % size)
    outside = rng.integers(1 << 24, 224 << 24, rows, dtype=np.uint64)
    ips = np.where(rng.random(rows) < hit_ratio, inside, outside)
    seconds = rng.integers(0, 86_400, rows)
    ts = pc.strftime(pa.array((np.datetime64("2026-11-22T00:00:00") +
                               seconds.astype("timedelta64[s]")).astype("datetime64[s]")),
                     format="%Y-%m-%d %H:%M:%S")
    table = pa.table({
        "timestamp": ts,
        "ip": _ipv4_text(ips),
        "protocol": pa.repeat(pa.scalar("tcp"), rows),
        "port": pa.repeat(pa.scalar(3389), rows),
        "hostname": pc.binary_join_element_wise("host", _str(np.arange(rows)), ".example.nl", ""),
        "tag": pa.repeat(pa.scalar("rdp"), rows),
        "asn": pa.array(rng.integers(1000, 65000, rows)),
        "geo": pa.repeat(pa.scalar("NL"), rows),
        "region": pa.repeat(pa.scalar("NOORD-HOLLAND"), rows),
        "city": pa.repeat(pa.scalar("AMSTERDAM"), rows),
        "naics": pa.repeat(pa.scalar(517311), rows),
        "sic": pa.repeat(pa.scalar(0), rows),
        "rdp_protocol": pa.repeat(pa.scalar("RDP"), rows),
        "cert_length": pa.repeat(pa.scalar(2048), rows),
        "subject_common_name": pc.binary_join_element_wise("host", _str(np.arange(rows)), ""),
        "issuer_common_name": pc.binary_join_element_wise("host", _str(np.arange(rows)), ""),
        "cert_valid_from": pa.repeat(pa.scalar("2026-01-01 00:00:00"), rows),
        "cert_valid_to": pa.repeat(pa.scalar("2027-01-01 00:00:00"), rows),
        "sha256_fingerprint": pa.repeat(pa.scalar("AB" * 32), rows),
        "severity": pa.array(np.where(rng.random(rows) < 0.9, "high", "medium")),
    })
    pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="needed"))
