"""National CSIRT directory: Trusted Introducer JSON and the operator's CSV."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from cwn.publicdata.csirts import CsirtDirectory, import_csirts
from cwn.publicdata.errors import PublicDataError
from cwn.publicdata.store import PublicDataStore

TI_FILE = "attribution/trusted_introducer/teams.json"
CERT_AT = {"country": "AT", "name": "Computer Emergency Response Team Austria",
           "email": "team@cert.at"}
NONE = {"country": None, "name": None, "email": None}


@pytest.fixture
def store(tmp_path: Path) -> PublicDataStore:
    return PublicDataStore(tmp_path / "publicdata")


def _directory(store: PublicDataStore) -> CsirtDirectory:
    d = CsirtDirectory.load(store)
    assert d is not None
    return d


def test_trusted_introducer_real_file(shared_data: Path, store: PublicDataStore) -> None:
    s = import_csirts(shared_data / TI_FILE, store)
    assert (s.kind, s.part, s.rows, s.skipped) == ("csirts", "trusted_introducer", 4, 0)
    assert s.counts == {"national": 1, "countries": 2}


TI_LOOKUPS = [  # country as asked, national CSIRT
    ("AT", CERT_AT),  # CERT.at is flagged National; AEC and ACOnet-CERT are sector teams
    ("at", CERT_AT),
    (" At ", CERT_AT),
    ("ES", NONE),  # only a commercial team (Accenture Iberia): not a national CSIRT
    ("NL", NONE),
    ("", NONE),
    (None, NONE),
]


@pytest.mark.parametrize(("cc", "want"), TI_LOOKUPS)
def test_national_team_per_country(shared_data: Path, store: PublicDataStore,
                                   cc: str | None, want: dict[str, Any]) -> None:
    import_csirts(shared_data / TI_FILE, store)
    got = _directory(store).for_countries(pa.array([cc], pa.string()))
    assert got.column_names == ["country", "name", "email"]
    assert got.to_pylist() == [want]


OPERATOR_CSV = """\
country,name,email,url
DE,CERT-Bund,certbund@bsi.bund.de,https://www.bsi.bund.de
de,Other German team,other@example.de,
BE,CCB / CERT.be,cert@cert.be
"fr","CERT-FR, ANSSI",cert-fr.cossi@ssi.gouv.fr,https://cert.ssi.gouv.fr
XYZ,Bad country,x@example.org,
PL,No email,,
PT,Bad email,not-an-address,
ES,,incidencias@example.es,
IT,Too,many,fields,here
"""


def test_operator_csv_rows(store: PublicDataStore, tmp_path: Path) -> None:
    path = tmp_path / "national-csirts.csv"
    path.write_text(OPERATOR_CSV, encoding="utf-8")
    s = import_csirts(path, store)
    assert (s.part, s.rows, s.skipped) == ("operator", 4, 5)
    assert s.notes
    got = _directory(store).for_countries(pa.array(["de", "BE", "FR", "PL", "IT"]))
    assert got.to_pylist() == [
        {"country": "DE", "name": "CERT-Bund", "email": "certbund@bsi.bund.de"},  # first row
        {"country": "BE", "name": "CCB / CERT.be", "email": "cert@cert.be"},  # no url column
        {"country": "FR", "name": "CERT-FR, ANSSI", "email": "cert-fr.cossi@ssi.gouv.fr"},
        NONE, NONE]


def test_csv_without_url_column_and_with_bom(store: PublicDataStore, tmp_path: Path) -> None:
    path = tmp_path / "csirts.csv"
    path.write_bytes("\ufeffCountry, Name, Email\r\nLU,CIRCL,info@circl.lu\r\n".encode())
    assert import_csirts(path, store).rows == 1
    assert _directory(store).for_countries(pa.array(["LU"]))["email"].to_pylist() \
        == ["info@circl.lu"]


def test_operator_csv_wins_over_trusted_introducer(shared_data: Path, store: PublicDataStore,
                                                   tmp_path: Path) -> None:
    import_csirts(shared_data / TI_FILE, store)
    path = tmp_path / "ops.csv"
    path.write_text("country,name,email\nAT,CERT.at (operator),reports@cert.at\n"
                    "SE,CERT-SE,cert@cert.se\n", encoding="utf-8")
    import_csirts(path, store)
    assert store.parts("csirts") == ["operator", "trusted_introducer"]
    got = _directory(store).for_countries(pa.chunked_array([["AT", "SE"], ["ES"]]))
    assert got["email"].to_pylist() == ["reports@cert.at", "cert@cert.se", None]


def _team(name: str, cc: str, types: list[str], emails: list[Any]) -> dict[str, Any]:
    return {"official_name": name, "short_name": name.split()[0],
            "country": {"code": cc, "name": "x"},
            "constituency": {"types": types, "countries": [{"code": cc}]}, "emails": emails}


def test_trusted_introducer_variants(store: PublicDataStore, tmp_path: Path) -> None:
    teams = [
        _team("Sector CERT", "DK", ["Energy"], [{"address": "s@example.dk", "usage": []}]),
        _team("CFCS national", "DK", ["National", "Government"],
              [{"address": "press@cfcs.dk", "usage": ["press"]},
               {"address": "contact@cfcs.dk", "usage": ["contact"]},
               {"address": "incident@cfcs.dk", "usage": ["incident-reporting"]}]),
        _team("Second national", "DK", ["National"], [{"address": "n2@example.dk"}]),
        _team("No email", "FI", ["National"], []),
        _team("No country", "", ["National"], [{"address": "a@example.org"}]),
        _team("NCSC-FI", "FI", ["national"], ["cert@traficom.fi"]),
        "not a team",
    ]
    path = tmp_path / "teams.json.gz"
    path.write_bytes(gzip.compress(json.dumps({"teams": teams}).encode()))
    s = import_csirts(path, store)
    assert (s.rows, s.skipped) == (4, 3)
    got = _directory(store).for_countries(pa.array(["DK", "FI"])).to_pylist()
    assert got == [{"country": "DK", "name": "CFCS national", "email": "incident@cfcs.dk"},
                   {"country": "FI", "name": "NCSC-FI", "email": "cert@traficom.fi"}]


UNUSABLE = [  # content, words in the message
    (b"", "empty"),
    (b"\x00\x01binary\x00", "binary"),
    (b"name,email\nCERT,a@b.c\n", "neither"),
    (b"just some text\n", "neither"),
    (b"[1, 2, 3]", "no usable CSIRT entries"),
    (b'{"teams": 5}', "not a list"),
    (b"[{broken", "not JSON"),
    (b"country,name,email\n", "no usable CSIRT entries"),
]


@pytest.mark.parametrize(("content", "words"), UNUSABLE)
def test_unusable_file_raises_one_line_error(store: PublicDataStore, tmp_path: Path,
                                             content: bytes, words: str) -> None:
    path = tmp_path / "csirts.input"
    path.write_bytes(content)
    with pytest.raises(PublicDataError) as err:
        import_csirts(path, store)
    assert words in str(err.value) and "csirts.input" in str(err.value)
    assert "\n" not in str(err.value)
    assert not store.has("csirts")


def test_load_without_import_is_none(store: PublicDataStore) -> None:
    assert CsirtDirectory.load(store) is None
