"""Extras become one JSON object per event, column-wise, with their JSON types kept."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from cwn.events.extra import encode_extra


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        ({"s": pa.array(["a", "b"])}, [{"s": "a"}, {"s": "b"}]),
        ({"i": pa.array([1, None]), "f": pa.array([77.0, 1.5])},
         [{"i": 1, "f": 77.0}, {"f": 1.5}]),
        ({"b": pa.array([True, False])}, [{"b": True}, {"b": False}]),
        ({"q": pa.array(['say "hi"\\', "tab\there\nnew"])},
         [{"q": 'say "hi"\\'}, {"q": "tab\there\nnew"}]),
        ({"e": pa.array(["", None]), "x": pa.array([None, None], pa.int64())}, [None, None]),
        ({"u": pa.array(["Zoë 🙂", "ĳ"])}, [{"u": "Zoë 🙂"}, {"u": "ĳ"}]),
    ],
)
def test_values_round_trip_through_json(
    columns: dict[str, pa.Array], expected: list[object]
) -> None:
    encoded = encode_extra(columns, 2).to_pylist()
    assert [json.loads(v) if v is not None else None for v in encoded] == expected


def test_floats_stay_floats() -> None:
    [text] = encode_extra({"amplification": pa.array([77.0])}, 1).to_pylist()
    assert text == '{"amplification":77.0}'


def test_no_columns_gives_nulls() -> None:
    assert encode_extra({}, 3).to_pylist() == [None, None, None]
