"""json_bytes gives the standard library's pretty-printed bytes (decision 68), for every record.

Committed records must not change their bytes when a later build rewrites them with the same
data, so the faster encoding (the C encoder's compact JSON, re-indented by msgspec) is held to
``json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)`` byte for byte: over any
JSON-shaped data (floats of every size, non-ASCII and control characters in keys and strings,
big integers, tuples, non-string keys, nesting) and over the records themselves, built from
random fields by their models and written as the store writes them.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgbuild.records.atomic import json_bytes
from imgbuild.records.model import (
    AssetRecord,
    Candidate,
    EvidenceRef,
    History,
    HistoryEvent,
    JobRef,
    PendingCall,
    PendingCalls,
)

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def stdlib(data: Any) -> bytes:
    """What records were written as before decision 68."""
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


TEXT = st.text(st.characters(codec="utf-8"), max_size=12)  # any character but a lone surrogate
FLOATS = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [0.0, -0.0, 1e-05, 1e-7, 1e16, 1e22, 1.5e300, 5e-324, 0.1, 1 / 3, 2.0**53, -1e-310]
)
SCALARS = st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63) | FLOATS | TEXT
KEYS = TEXT | st.sampled_from(["", "é", "ключ", "键", "\u2028", "\x00", "\x7f", '"', "\\", " : ", "a\nb"])
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5) | st.lists(inner, max_size=3).map(tuple) | st.dictionaries(KEYS, inner, max_size=5)
    ),
    max_leaves=40,
)


@SETTINGS
@given(JSON)
def test_any_json_value_gives_the_standard_librarys_bytes(data: Any) -> None:
    assert json_bytes(data) == stdlib(data)


@SETTINGS
@given(st.dictionaries(st.integers() | FLOATS | st.booleans(), SCALARS, max_size=5))
def test_non_string_keys_are_written_as_the_standard_library_writes_them(data: dict[Any, Any]) -> None:
    try:
        expected: bytes | type[Exception] = stdlib(data)
    except TypeError:  # keys of mixed types do not sort: the same error either way
        expected = TypeError
    if expected is TypeError:
        with pytest.raises(TypeError):
            json_bytes(data)
    else:
        assert json_bytes(data) == expected


@pytest.mark.parametrize("data", [math.nan, [math.inf], {"a": -math.inf, "b": [1, math.nan]}, {math.nan: 1}], ids=repr)
def test_what_is_not_json_is_written_as_before(data: Any) -> None:
    """NaN and Infinity are no JSON (msgspec refuses them): the standard library writes them."""
    assert json_bytes(data) == stdlib(data)


def test_a_lone_surrogate_fails_as_before() -> None:
    with pytest.raises(UnicodeEncodeError):
        stdlib({"a": "\ud800"})
    with pytest.raises(UnicodeEncodeError):
        json_bytes({"a": "\ud800"})


def test_what_cannot_be_encoded_fails_as_before() -> None:
    with pytest.raises(TypeError):
        json_bytes({"a": object()})


# -- the records, built by their models from random fields ------------------------------------------

SHA = st.text("0123456789abcdef", min_size=64, max_size=64)
REQUEST = st.dictionaries(KEYS, JSON, max_size=8)
EVIDENCE = st.builds(EvidenceRef, path=TEXT, anchor=st.none() | TEXT, sha256=SHA)
CANDIDATES = st.builds(
    Candidate,
    candidate=st.integers(1, 99),
    image=st.none() | st.integers(1, 15),
    file=TEXT,
    run=TEXT,
    request_hash=SHA,
    prompt_hash=SHA,
    sha256=SHA,
    width=st.integers(1, 8192),
    height=st.integers(1, 8192),
    remote_url=st.none() | TEXT,
    created=TEXT,
    variant_test=st.none() | TEXT,
    evidence=st.none() | st.lists(EVIDENCE, max_size=3).map(tuple),
)
ASSETS = st.builds(
    AssetRecord,
    asset_id=TEXT,
    batch=TEXT,
    shot=TEXT,
    purpose=TEXT,
    persona=TEXT,
    variant_test=st.none() | TEXT,
    request_hash=SHA,
    prompt_hash=SHA,
    request=REQUEST,
    candidates=st.lists(CANDIDATES, max_size=4).map(tuple),
)
EVENTS = st.builds(HistoryEvent, time=TEXT, event=TEXT, kind=TEXT, run=TEXT, details=st.dictionaries(KEYS, JSON))
HISTORIES = st.builds(History, asset_id=TEXT, events=st.lists(EVENTS, max_size=5).map(tuple))
CALLS = st.builds(
    PendingCalls,
    asset_id=TEXT,
    calls=st.lists(
        st.builds(
            PendingCall,
            run=TEXT,
            candidate=st.integers(1, 99),
            request_hash=SHA,
            state=st.just("submitted"),
            job=st.none() | st.builds(JobRef, provider=TEXT, id=TEXT, urls=st.dictionaries(TEXT, TEXT, max_size=3)),
            submitted=TEXT,
            keep_failures=st.integers(0, 5),
        ),
        max_size=3,
    ).map(tuple),
)
MANIFESTS = st.fixed_dictionaries(
    {
        "run_id": TEXT,
        "files": st.lists(st.dictionaries(KEYS, SCALARS, max_size=8), max_size=3),
        "errors": st.lists(st.fixed_dictionaries({"index": st.integers(0, 15), "error": TEXT}), max_size=2),
        "usage": st.dictionaries(KEYS, SCALARS, max_size=4),
        "timings": st.fixed_dictionaries({"seconds": FLOATS}),
        "completed": TEXT,
    }
)


@SETTINGS
@given(ASSETS | HISTORIES | CALLS)
def test_every_record_gives_the_standard_librarys_bytes(record: AssetRecord | History | PendingCalls) -> None:
    assert json_bytes(record.to_json()) == stdlib(record.to_json())


@SETTINGS
@given(MANIFESTS)
def test_every_manifest_gives_the_standard_librarys_bytes(manifest: dict[str, Any]) -> None:
    assert json_bytes(manifest) == stdlib(manifest)
