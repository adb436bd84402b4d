"""Vectorised normalisation and validation of field values, per catalogue `FieldType`.

Parsers read every source value as text and hand whole columns to `normalise()`, which
returns the typed, canonical column plus a mask of the values it had to reject. All work is
done with Arrow compute kernels on the whole column; the only per-value Python is on small,
deduplicated subsets where the standard library is the reference (IPv6 text, CIDR networks).

Conventions (the same for every type):

* surrounding whitespace is ignored; an empty value is null and *not* invalid;
* a rejected value becomes null in the output and True in the invalid mask;
* the output has `field.arrow_type`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from cwn.events.fields import (
    REGISTRIES,
    SEVERITIES,
    TAXONOMIES,
    TAXONOMY_OF_TYPE,
    TLP_LEVELS,
    Field,
    FieldType,
)

_STR = pa.string()

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_RE = rf"^{_OCTET}(?:\.{_OCTET}){{3}}$"
"""Strict dotted quad: four decimal octets 0-255, no leading zeros."""

_INT_RE = r"^[+-]?[0-9]{1,18}(?:\.0*)?$"
_FLOAT_RE = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_LABEL = r"[\p{L}\p{N}_](?:[\p{L}\p{N}_-]{0,61}[\p{L}\p{N}_])?"
_FQDN_RE = rf"^(?:{_LABEL}\.)*{_LABEL}$"
_URL_RE = (
    r"^(?:[a-z][a-z0-9+.-]*://[^\s/?#@]*@?[^\s/?#]+"  # scheme://[user@]host...
    r"|[^\s/:?#]+\.[^\s/:?#]+(?::[0-9]+)?(?:[/?#]|$))"  # or host.tld[:port][/path]
)
_CVE_RE = r"^CVE-[0-9]{4}-[0-9]{4,}(?:,CVE-[0-9]{4}-[0-9]{4,})*$"
_BASE64_RE = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
_DATETIME_RE = (
    r"^(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"(?:[T ](?P<hm>[0-9]{2}:[0-9]{2})(?::(?P<sec>[0-9]{2}))?(?:[.,](?P<frac>[0-9]{1,9}))?)?"
    r" ?(?P<tz>Z|z|UTC|GMT|[+-][0-9]{2}(?::?[0-9]{2})?)?$"
)

_TRUE = ("true", "1", "yes", "y", "t", "on")
_FALSE = ("false", "0", "no", "n", "f", "off")
_REGISTRY_ALIASES = {"RIPE NCC": "RIPE", "RIPENCC": "RIPE", "AFRNIC": "AFRINIC"}

Result = tuple[pa.Array, pa.Array]


def _null_where(mask: pa.Array, values: pa.Array) -> pa.Array:
    """`values` with null wherever `mask` is true (mask nulls count as false)."""
    return pc.if_else(pc.fill_null(mask, False), pa.nulls(len(values), values.type), values)


def _prepare(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Trimmed text with empty strings as null."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.type != _STR:
        if pa.types.is_large_string(values.type) or pa.types.is_dictionary(values.type):
            values = values.cast(_STR)
        else:
            values = pc.cast(values, _STR)
    # Each pass allocates a whole column: only trim / null when some value needs it.
    if pc.any(pc.match_substring_regex(values, r"^\s|\s$")).as_py():
        values = pc.utf8_trim_whitespace(values)
    empty = pc.equal(values, "")
    if pc.any(empty).as_py():
        values = _null_where(empty, values)
    return values


def _finish(
    out: pa.Array,
    ok: pa.Array,
    present: pa.Array,
    arrow_type: pa.DataType,
    always_null_rejected: bool = False,
) -> Result:
    """Null the rejected values and compute the invalid mask (present and not ok)."""
    ok = pc.fill_null(ok, False)
    invalid = pc.fill_null(pc.and_(present, pc.invert(ok)), False)
    if always_null_rejected or pc.any(invalid).as_py():
        out = _null_where(pc.invert(ok), out)
    # else: every rejected row is an absent one, already null in `out`
    if out.type != arrow_type:
        out = out.cast(arrow_type)
    return out, invalid


def _matches(s: pa.Array, pattern: str) -> pa.Array:
    return pc.fill_null(pc.match_substring_regex(s, pattern), False)


# -- numbers ----------------------------------------------------------------------------------


def _integers(s: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(int64 values, ok) for decimal integers (an all-zero fraction like `12.0` is allowed)."""
    ok = _matches(s, _INT_RE)
    digits = pc.replace_substring_regex(s, r"\.0*$", "")
    digits = _null_where(pc.invert(ok), digits)
    return pc.cast(digits, pa.int64()), ok


def _floats(s: pa.Array) -> tuple[pa.Array, pa.Array]:
    ok = _matches(s, _FLOAT_RE)
    text = _null_where(pc.invert(ok), s)
    values = pc.cast(text, pa.float64())
    ok = pc.and_(ok, pc.fill_null(pc.is_finite(values), False))
    return values, ok


def _in_range(values: pa.Array, lo: float, hi: float) -> pa.Array:
    return pc.fill_null(
        pc.and_(pc.greater_equal(values, lo), pc.less_equal(values, hi)), False
    )


def _int_type(
    s: pa.Array, lo: int | None = None, hi: int | None = None
) -> tuple[pa.Array, pa.Array]:
    values, ok = _integers(s)
    if lo is not None and hi is not None:
        ok = pc.and_(ok, _in_range(values, lo, hi))
    return values, ok


def _asn(s: pa.Array, present: pa.Array) -> Result:
    # "AS64512" is accepted; 0 means "unknown" in most sources: null, not invalid.
    s = pc.replace_substring_regex(s, r"^[Aa][Ss]", "")
    values, ok = _integers(s)
    zero = pc.fill_null(pc.equal(values, 0), False)
    ok = pc.and_(ok, _in_range(values, 1, 4294967295))
    present = pc.and_(present, pc.invert(zero))
    return _finish(values, ok, present, pa.int64(), always_null_rejected=True)


# -- time -------------------------------------------------------------------------------------


def _plain_datetimes(s: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Fast path for `YYYY-MM-DD hh:mm:ss` / `YYYY-MM-DDThh:mm:ss` (UTC, no offset)."""
    if pc.any(pc.match_substring(s, "T")).as_py():
        s = pc.utf8_replace_slice(s, 10, 11, " ")
    naive = pc.strptime(s, format="%Y-%m-%d %H:%M:%S", unit="us", error_is_null=True)
    # strptime is lenient (Feb 30 rolls over to March): the day must survive the parse.
    day = pc.cast(pc.utf8_slice_codeunits(s, 8, 10), pa.int64())
    ok = pc.fill_null(pc.equal(pc.day(naive), day), False)
    return naive.cast(pa.timestamp("us", tz="UTC")), ok


def _datetimes(s: pa.Array) -> tuple[pa.Array, pa.Array]:
    plain = _matches(s, r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}$")
    if pc.all(pc.or_(plain, pc.is_null(s))).as_py():
        return _plain_datetimes(s)
    parts = pc.extract_regex(s, _DATETIME_RE)  # null where no match
    matched = pc.is_valid(parts)
    date = pc.struct_field(parts, "date")
    hm = pc.struct_field(parts, "hm")
    sec = pc.struct_field(parts, "sec")
    frac = pc.struct_field(parts, "frac")
    tz = pc.struct_field(parts, "tz")

    def blank_null(a: pa.Array) -> pa.Array:
        return _null_where(pc.equal(a, ""), a)

    hm = pc.fill_null(blank_null(hm), "00:00")
    sec = pc.fill_null(blank_null(sec), "00")
    text = pc.binary_join_element_wise(date, "T", hm, ":", sec, "")
    naive = pc.strptime(text, format="%Y-%m-%dT%H:%M:%S", unit="us", error_is_null=True)
    # strptime is lenient (Feb 30 rolls over to March): require the round trip to agree.
    # (%S prints fractional digits for sub-second units: compare the first 19 characters.)
    back = pc.utf8_slice_codeunits(pc.strftime(naive, format="%Y-%m-%dT%H:%M:%S"), 0, 19)
    ok = pc.and_(matched, pc.fill_null(pc.equal(back, text), False))

    # Fractional seconds: right-pad to nanoseconds, keep microseconds.
    frac = pc.fill_null(blank_null(frac), "0")
    frac9 = pc.utf8_rpad(pc.utf8_slice_codeunits(frac, 0, 9), width=9, padding="0")
    micros = pc.divide(pc.cast(frac9, pa.int64()), 1000)

    # Offsets: "+02:00" means local = UTC + 2h, so UTC = local - offset.
    tz = pc.fill_null(blank_null(tz), "Z")
    is_offset = pc.match_substring_regex(tz, r"^[+-]")
    digits = pc.replace_substring(pc.utf8_slice_codeunits(tz, 1, 10), ":", "")
    digits = pc.if_else(is_offset, pc.utf8_rpad(digits, width=4, padding="0"), "0000")
    hours = pc.cast(pc.utf8_slice_codeunits(digits, 0, 2), pa.int64())
    minutes = pc.cast(pc.utf8_slice_codeunits(digits, 2, 4), pa.int64())
    ok = pc.and_(ok, pc.fill_null(pc.and_(pc.less_equal(hours, 18), pc.less(minutes, 60)), False))
    offset_s = pc.add(pc.multiply(hours, 3600), pc.multiply(minutes, 60))
    sign = pc.if_else(pc.starts_with(tz, "-"), -1, 1)
    shift = pc.subtract(micros, pc.multiply(pc.multiply(offset_s, sign), 1_000_000))
    shift = pc.fill_null(shift, 0)
    utc = pc.add(naive, pc.cast(shift, pa.duration("us")))
    return utc.cast(pa.timestamp("us", tz="UTC")), ok


# -- addresses --------------------------------------------------------------------------------


def _map_unique(s: pa.Array, fn: Callable[[str], str | None]) -> pa.Array:
    """Apply a Python function to each distinct non-null value (small subsets only)."""
    uniques = pc.unique(pc.drop_null(s))
    mapped = pa.array([fn(v) for v in uniques.to_pylist()], type=_STR)
    return pc.take(mapped, pc.index_in(s, value_set=uniques))


def _canonical_ipv6(text: str) -> str | None:
    try:
        return ipaddress.IPv6Address(text).compressed
    except ValueError:
        return None


def _canonical_network(text: str) -> str | None:
    try:
        return ipaddress.ip_network(text, strict=False).compressed
    except ValueError:
        return None


def _ips(s: pa.Array) -> tuple[pa.Array, pa.Array]:
    v4 = _matches(s, IPV4_RE)
    v6_candidates = pc.and_(pc.invert(v4), pc.fill_null(pc.match_substring(s, ":"), False))
    out = _null_where(pc.invert(v4), s)
    if pc.any(v6_candidates).as_py():
        v6 = _map_unique(_null_where(pc.invert(v6_candidates), s), _canonical_ipv6)
        out = pc.coalesce(out, v6)
    return out, pc.is_valid(out)


def _networks(s: pa.Array) -> tuple[pa.Array, pa.Array]:
    plausible = _matches(s, r"^[0-9A-Fa-f:.]+(?:/[0-9]{1,3})?$")
    out = _map_unique(_null_where(pc.invert(plausible), s), _canonical_network)
    return out, pc.is_valid(out)


def _fqdns(s: pa.Array) -> tuple[pa.Array, pa.Array]:
    s = pc.utf8_lower(s)
    if pc.any(pc.ends_with(s, ".")).as_py():
        s = pc.replace_substring_regex(s, r"\.$", "")
    # Cheap checks first (simple patterns keep RE2 on its fast DFA path) ...
    ascii_ok = _matches(s, r"^[a-z0-9_.-]+$")
    bad_shape = _matches(s, r"\.\.|^\.|^-|-$|\.-|-\.|^[0-9.]+$")
    length = pc.utf8_length(s)
    ok = pc.and_(ascii_ok, pc.invert(bad_shape))
    ok = pc.and_(ok, pc.fill_null(pc.less_equal(length, 253), False))
    # ... labels longer than 63 characters are only possible in long names ...
    long_names = pc.fill_null(pc.greater(length, 63), False)
    if pc.any(long_names).as_py():
        too_long = _matches(_null_where(pc.invert(long_names), s), r"[^.]{64}")
        ok = pc.and_(ok, pc.invert(too_long))
    # ... and internationalised names (rare) get the full Unicode label pattern.
    other = pc.and_(pc.is_valid(s), pc.invert(ascii_ok))
    if pc.any(other).as_py():
        idn_ok = _matches(_null_where(pc.invert(other), s), _FQDN_RE)
        ok = pc.or_(ok, pc.and_(idn_ok, pc.fill_null(pc.less_equal(length, 253), False)))
    return s, ok


# -- dispatch ---------------------------------------------------------------------------------


def _member(s: pa.Array, allowed: tuple[str, ...] | list[str]) -> pa.Array:
    return pc.fill_null(pc.is_in(s, value_set=pa.array(list(allowed), _STR)), False)


def normalise(field: Field, values: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """Returns (typed values with field.arrow_type, invalid mask: True where a non-empty input
    was rejected). Empty strings -> null, not invalid."""
    s = _prepare(values)
    present = pc.is_valid(s)
    t = field.type
    T = FieldType
    target = field.arrow_type
    everything = pa.array([True] * len(s), pa.bool_()) if len(s) else pa.array([], pa.bool_())

    if t in (T.STRING, T.JSONDICT):
        return _finish(s, everything, present, target)
    if t is T.LOWER:
        return _finish(pc.utf8_lower(s), everything, present, target)
    if t is T.UPPER:
        return _finish(pc.utf8_upper(s), everything, present, target)
    if t is T.INTEGER:
        ints, ok = _int_type(s)
        return _finish(ints, ok, present, target)
    if t is T.PORT:
        ints, ok = _int_type(s, 0, 65535)
        return _finish(ints, ok, present, target)
    if t is T.ASN:
        return _asn(s, present)
    if t is T.FLOAT:
        floats, ok = _floats(s)
        return _finish(floats, ok, present, target)
    if t is T.ACCURACY:
        floats, ok = _floats(s)
        return _finish(floats, pc.and_(ok, _in_range(floats, 0, 100)), present, target)
    if t is T.BOOLEAN:
        low = pc.utf8_lower(s)
        is_true = _member(low, _TRUE)
        ok = pc.or_(is_true, _member(low, _FALSE))
        return _finish(is_true, ok, present, target, always_null_rejected=True)
    if t is T.DATETIME:
        times, ok = _datetimes(s)
        return _finish(times, ok, present, target)
    if t is T.IP:
        ips, ok = _ips(s)
        return _finish(ips, ok, present, target)
    if t is T.NETWORK:
        nets, ok = _networks(s)
        return _finish(nets, ok, present, target)
    if t is T.FQDN:
        names, ok = _fqdns(s)
        return _finish(names, ok, present, target)
    if t is T.URL:
        return _finish(s, _matches(pc.utf8_lower(s), _URL_RE), present, target)
    if t is T.TAXONOMY:
        low = pc.utf8_lower(s)
        return _finish(low, _member(low, tuple(TAXONOMIES)), present, target)
    if t is T.CTYPE:
        low = pc.utf8_lower(s)
        return _finish(low, _member(low, tuple(TAXONOMY_OF_TYPE)), present, target)
    if t is T.REGISTRY:
        up = pc.utf8_upper(s)
        for alias, name in _REGISTRY_ALIASES.items():
            up = pc.if_else(pc.equal(up, alias), name, up)
        return _finish(up, _member(up, REGISTRIES), present, target)
    if t is T.TLP:
        up = pc.utf8_upper(pc.replace_substring_regex(s, r"\s+", ""))
        up = pc.replace_substring_regex(up, r"^TLP:?", "")
        up = pc.if_else(pc.equal(up, "WHITE"), "CLEAR", up)
        return _finish(up, _member(up, TLP_LEVELS), present, target)
    if t is T.SEVERITY:
        low = pc.utf8_lower(s)
        return _finish(low, _member(low, SEVERITIES), present, target)
    if t is T.CVE_LIST:
        up = pc.utf8_upper(s)
        up = pc.replace_substring_regex(up, r"\s*[,;\s]\s*", ",")
        up = pc.replace_substring_regex(up, r"^,+|,+$", "")
        return _finish(up, _matches(up, _CVE_RE), present, target)
    if t is T.BASE64:
        return _finish(s, _matches(s, _BASE64_RE), present, target)
    raise ValueError(f"no normaliser for field type {t!r}")  # pragma: no cover
