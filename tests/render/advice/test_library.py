"""Specification tests for the advice library (handelingsperspectief, NL/EN)."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from cwn.render.advice import (
    GENERIC_ID,
    LANGUAGES,
    TEXT_KEYS,
    Advice,
    AdviceError,
    AdviceLibrary,
    default_library,
    load_library,
)
from cwn.render.advice.library import candidate_report_types

# Report types the platform must have specific (non-generic) advice for.
REQUIRED_REPORT_TYPES = [
    # remote access
    "scan_rdp",
    "scan_rdpeudp",
    "scan_smb",
    "scan_telnet",
    "scan_ftp",
    "scan_vnc",
    "scan_ssh",
    # web and mail servers
    "scan_http_vulnerable",
    "scan_exchange",
    "scan_ssl_poodle",
    "scan_ssl_freak",
    "scan_smtp_vulnerable",
    # compromise
    "compromised_website",
    "event4_sinkhole",
    "event4_sinkhole_http",
    "event6_sinkhole",
    "event6_sinkhole_http",
    "event4_honeypot_brute_force",
    # device fingerprint
    "device_id",
    # exposed data stores
    "scan_mongodb",
    "scan_elasticsearch",
    "scan_redis",
    "scan_memcached",
    "scan_couchdb",
    "scan_postgres",
    "scan_mssql",
    "scan_mysql",
    # amplifiers
    "scan_ntp",
    "scan_ntpmonitor",
    "scan_ssdp",
    "scan_snmp",
    "scan_dns",
    "scan_chargen",
    "scan_qotd",
    "scan_mdns",
    "scan_ldap_udp",
    # industrial and remote management
    "scan_ics",
    "scan_cwmp",
    "scan_ipmi",
    "scan_ubiquiti",
    "scan_mqtt",
]

VALID_ENTRY = textwrap.dedent(
    """\
    id: {id}
    report_types: {report_types}
    identifiers: []
    severity: high
    references: [https://example.org/advice]
    nl:
      title: {title_nl}
      summary: Samenvatting.
      why: Waarom.
      steps: [Eerste stap., Tweede stap.]
      check: Controle.
      forward_to_supplier: Doorsturen.
    en:
      title: {title_en}
      summary: Summary.
      why: Why.
      steps: [First step., Second step.]
      check: Check.
      forward_to_supplier: Forward.
    """
)


def _entry(
    advice_id: str,
    report_types: str = "[]",
    title_nl: str = "Titel",
    title_en: str = "Title",
) -> str:
    return VALID_ENTRY.format(
        id=advice_id, report_types=report_types, title_nl=title_nl, title_en=title_en
    )


@pytest.fixture(scope="module")
def library() -> AdviceLibrary:
    return load_library()


# -- content ------------------------------------------------------------------------------


def test_library_loads_from_package_data(library: AdviceLibrary) -> None:
    assert len(library) >= 30
    assert GENERIC_ID in library
    assert library.generic.id == GENERIC_ID
    assert library.generic.report_types == ()


def test_every_entry_has_both_languages_and_all_keys(library: AdviceLibrary) -> None:
    for advice in library:
        assert set(advice.texts) == set(LANGUAGES), advice.id
        for lang in LANGUAGES:
            text = advice.text(lang)
            for key in TEXT_KEYS:
                value = getattr(text, key)
                assert value, f"{advice.id}.{lang}.{key} is empty"
            assert len(text.steps) >= 2, f"{advice.id}.{lang}: fewer than 2 steps"
            assert all(step.strip() for step in text.steps)


def test_languages_are_real_translations(library: AdviceLibrary) -> None:
    for advice in library:
        nl, en = advice.text("nl"), advice.text("en")
        assert len(nl.steps) == len(en.steps), f"{advice.id}: step count differs NL/EN"
        for key in ("title", "summary", "why", "check", "forward_to_supplier"):
            assert getattr(nl, key) != getattr(en, key), f"{advice.id}.{key} not translated"


def test_texts_are_static_and_safe(library: AdviceLibrary) -> None:
    # Templates add the event data; the advice itself must not carry placeholders, and it
    # must never ask the recipient to send us credentials.
    placeholder = re.compile(r"\{\{?\s*\w+\s*\}?\}")
    credential_ask = re.compile(
        r"(stuur|mail|geef)\s+(ons|het)\s+.*wachtwoord|send\s+us\s+.*password", re.I
    )
    for advice in library:
        for lang in LANGUAGES:
            text = advice.text(lang)
            for chunk in (
                text.title,
                text.summary,
                text.why,
                text.check,
                text.forward_to_supplier,
                *text.steps,
            ):
                assert not placeholder.search(chunk), f"{advice.id}.{lang}: {chunk!r}"
                assert not credential_ask.search(chunk), f"{advice.id}.{lang}: {chunk!r}"
            assert len(text.title) <= 100, f"{advice.id}.{lang}: title too long"


def test_metadata_is_well_formed(library: AdviceLibrary) -> None:
    for advice in library:
        assert advice.severity in {"info", "low", "medium", "high", "critical"}
        assert all(ref.startswith("https://") for ref in advice.references), advice.id
        assert all(rt == rt.lower() for rt in advice.report_types)
        assert advice.source.endswith(".yaml"), advice.source


# -- lookup -------------------------------------------------------------------------------


@pytest.mark.parametrize("report_type", REQUIRED_REPORT_TYPES)
def test_required_report_types_resolve_to_specific_advice(
    library: AdviceLibrary, report_type: str
) -> None:
    advice = library.for_event(report_type, None)
    assert not advice.is_generic, report_type
    assert report_type in advice.report_types  # claimed explicitly, not by prefix rule


@pytest.mark.parametrize("report_type", ["scan_doesnotexist", "", "   ", None, "SOMETHING"])
def test_unknown_report_type_resolves_to_generic(
    library: AdviceLibrary, report_type: str | None
) -> None:
    assert library.for_event(report_type, None).id == GENERIC_ID
    assert library.for_event(report_type, "no-such-identifier").id == GENERIC_ID


def test_ipv6_variant_resolves_like_ipv4(library: AdviceLibrary) -> None:
    assert library.for_event("scan6_rdp", None) is library.for_event("scan_rdp", None)
    assert library.for_event("scan6_rdp", None).id == "remote-access-rdp"
    # types not claimed explicitly, reachable only through the prefix rule
    assert "scan6_tftp" not in library.report_types
    assert library.for_event("scan6_tftp", None) is library.for_event("scan_tftp", None)
    assert "event6_honeypot_ics_scan" not in library.report_types
    assert library.for_event("event6_honeypot_ics_scan", None).id == "attacking-host-honeypot"
    assert library.for_event("event6_sinkhole_http", None) is library.for_event(
        "event4_sinkhole_http", None
    )
    assert library.for_event("device_id6", None) is library.for_event("device_id", None)


def test_candidate_report_types() -> None:
    assert candidate_report_types("scan6_rdp") == ["scan_rdp"]
    assert candidate_report_types("event6_sinkhole_http") == ["event4_sinkhole_http"]
    assert candidate_report_types("compromised_website6") == ["compromised_website"]
    assert candidate_report_types("scan_rdp") == []


def test_lookup_is_case_insensitive(library: AdviceLibrary) -> None:
    assert library.for_event("SCAN_RDP", None).id == "remote-access-rdp"
    assert library.for_event(None, "Open-Redis").id == "database-redis"


def test_identifier_is_used_when_report_type_unknown(library: AdviceLibrary) -> None:
    assert library.for_event(None, "open-rdp").id == "remote-access-rdp"
    assert library.for_event("some_future_rdp_report", "open-rdp").id == "remote-access-rdp"
    # an explicit report type wins over the identifier
    assert library.for_event("scan_redis", "open-rdp").id == "database-redis"


def test_text_language_selection(library: AdviceLibrary) -> None:
    advice = library.for_event("scan_rdp", None)
    assert advice.text("nl") is advice.text("NL")
    assert advice.text("nl-NL") is advice.text("nl")
    assert advice.text("en_GB") is advice.text("en")
    assert advice.text("nl").title != advice.text("en").title
    with pytest.raises(AdviceError, match="unknown language"):
        advice.text("de")


def test_default_library_is_cached() -> None:
    assert default_library() is default_library()


def test_shared_sample_identifiers_agree_with_report_types(
    library: AdviceLibrary, shared_data: Path
) -> None:
    """An IntelMQ identifier must never point to different advice than its report type."""
    expected = sorted((shared_data / "shadowserver" / "expected_intelmq").glob("*.json"))
    assert expected
    for path in expected:
        report_type = path.stem
        by_type = library.for_event(report_type, None)
        events = json.loads(path.read_text(encoding="utf-8"))["events"]
        for event in events:
            ident = event.get("classification.identifier")
            by_ident = library.for_event(None, ident)
            assert by_ident.is_generic or by_ident is by_type, (report_type, ident)
            assert library.for_event(report_type, ident) is by_type


# -- operator overrides and validation ------------------------------------------------------


def test_operator_directory_replaces_and_adds_entries(tmp_path: Path) -> None:
    (tmp_path / "rdp.yaml").write_text(
        _entry("remote-access-rdp", "[scan_rdp]", title_nl="Eigen RDP-advies"),
        encoding="utf-8",
    )
    (tmp_path / "quic.yml").write_text(
        _entry("exposed-quic", "[scan_quic]", title_en="Own QUIC advice"), encoding="utf-8"
    )
    (tmp_path / "README.txt").write_text("not advice", encoding="utf-8")
    lib = load_library(tmp_path)

    rdp = lib.for_event("scan_rdp", None)
    assert rdp.text("nl").title == "Eigen RDP-advies"
    assert rdp.source == str(tmp_path / "rdp.yaml")
    # the replacement no longer claims scan_rdpeudp, so that falls back to generic
    assert lib.for_event("scan_rdpeudp", None).is_generic
    assert lib.for_event("scan6_rdp", None) is rdp  # via the prefix rule now
    assert lib.for_event("scan_quic", None).text("en").title == "Own QUIC advice"
    # untouched entries are still the shipped ones
    assert lib.for_event("scan_redis", None).id == "database-redis"
    assert len(lib) == len(load_library()) + 1


def test_operator_directory_can_replace_generic(tmp_path: Path) -> None:
    (tmp_path / "generic.yaml").write_text(
        _entry("generic", title_en="Our generic advice"), encoding="utf-8"
    )
    lib = load_library(tmp_path)
    assert lib.for_event("unknown", None).text("en").title == "Our generic advice"


def test_missing_operator_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AdviceError, match="does not exist"):
        load_library(tmp_path / "nope")


def _load_error(tmp_path: Path, name: str, content: str) -> str:
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(AdviceError) as excinfo:
        load_library(tmp_path)
    message = str(excinfo.value)
    assert name in message, message
    return message


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    message = _load_error(tmp_path, "broken.yaml", "id: x\nnl: [unclosed\n")
    assert "invalid YAML" in message


def test_missing_language_names_the_file(tmp_path: Path) -> None:
    content = _entry("x-only-nl").split("en:\n")[0]
    message = _load_error(tmp_path, "only_nl.yaml", content)
    assert "en" in message


def test_missing_text_key_names_the_file(tmp_path: Path) -> None:
    content = _entry("x-no-check").replace("  check: Check.\n", "")
    message = _load_error(tmp_path, "no_check.yaml", content)
    assert "check" in message


def test_empty_text_names_the_file(tmp_path: Path) -> None:
    content = _entry("x-empty").replace("why: Waarom.", "why: ''")
    message = _load_error(tmp_path, "empty_why.yaml", content)
    assert "nl.why" in message


def test_too_few_steps_names_the_file(tmp_path: Path) -> None:
    content = _entry("x-steps").replace("[First step., Second step.]", "[Only step.]")
    message = _load_error(tmp_path, "one_step.yaml", content)
    assert "at least 2 steps" in message


def test_unknown_key_and_bad_severity_name_the_file(tmp_path: Path) -> None:
    message = _load_error(tmp_path, "typo.yaml", _entry("x-typo") + "severty: high\n")
    assert "severty" in message
    (tmp_path / "typo.yaml").unlink()
    message = _load_error(
        tmp_path, "sev.yaml", _entry("x-sev").replace("severity: high", "severity: urgent")
    )
    assert "urgent" in message


def test_non_mapping_file_names_the_file(tmp_path: Path) -> None:
    _load_error(tmp_path, "list.yaml", "- just\n- a list\n")


def test_report_type_claimed_twice_is_an_error(tmp_path: Path) -> None:
    message = _load_error(tmp_path, "dup_type.yaml", _entry("my-rdp", "[scan_rdp]"))
    assert "scan_rdp" in message and "remote-access-rdp" in message


def test_duplicate_id_in_one_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(_entry("same-id", "[type_a]"), encoding="utf-8")
    message = _load_error(tmp_path, "b.yaml", _entry("same-id", "[type_b]"))
    assert "a.yaml" in message and "same-id" in message


def test_library_requires_generic_entry() -> None:
    lib = load_library()
    entries: list[Advice] = [a for a in lib if not a.is_generic]
    with pytest.raises(AdviceError, match="generic"):
        AdviceLibrary(entries)
