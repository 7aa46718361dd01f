from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from databright.compute import JobConfig, JobSettings, parse_job_document
from databright.errors import InputError
from databright.ml import ModelSpec

SPEC = ModelSpec(kind="mlp", input="table", features=("a", "b"), classes=("x", "y"))


def test_a_bare_model_spec_means_what_the_redundancy_says() -> None:
    assert parse_job_document(SPEC.to_json(), 3) == (SPEC, JobSettings("tmr"))
    assert parse_job_document(SPEC.to_json(), 1) == (SPEC, JobSettings("none"))


def test_a_job_document_round_trips_with_its_settings() -> None:
    settings = JobSettings("optimistic", snapshot_every=5, samples=3)
    assert parse_job_document(settings.document(SPEC), 1) == (SPEC, settings)
    assert JobSettings.from_json(settings.to_json()) == settings
    split = JobSettings("tmr", split=2)
    assert parse_job_document(split.document(SPEC), 3) == (SPEC, split)


@pytest.mark.parametrize("settings,redundancy", [(JobSettings("optimistic"), 3), (JobSettings("tmr"), 1),
                                                 (JobSettings("none"), 3)])
def test_settings_the_on_chain_redundancy_cannot_carry_are_refused(settings: JobSettings, redundancy: int) -> None:
    with pytest.raises(InputError, match="needs redundancy"):
        parse_job_document(settings.document(SPEC), redundancy)
    with pytest.raises(InputError, match="needs redundancy"):
        JobConfig(1, 1, SPEC, 1, 1, redundancy, settings=settings)


@pytest.mark.parametrize("change", [{"split": 0}, {"split": 9}, {"verification": "vote"}, {"split": "2"},
                                    {"snapshot_every": -1}, {"samples": 2, "verification": "none"},
                                    {"version": 2}, {"extra": 1}, {"model": [1]},
                                    {"verification": "optimistic", "split": 2}])
def test_malformed_job_documents_are_refused(change: dict[str, object]) -> None:
    doc = json.loads(JobSettings("none").document(SPEC))
    doc.update(change)
    with pytest.raises(InputError):
        parse_job_document(json.dumps(doc), 1)


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_input_error(data: bytes) -> None:
    try:
        parse_job_document(data, 1)
    except InputError:
        pass


def test_job_config_fills_in_settings_from_redundancy() -> None:
    assert JobConfig(1, 1, SPEC, 1, 1, 3).settings == JobSettings("tmr")


def test_a_document_nested_deep_is_refused_not_a_crash() -> None:
    import sys

    # The limit py-evm sets in every process that holds a chain: json.loads then overflowed the C stack.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 100_000))
    try:
        for deep in (b"[" * 100_000 + b"]" * 100_000, b'{"kind": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}"):
            with pytest.raises(InputError, match="not JSON"):
                parse_job_document(deep, 1)
    finally:
        sys.setrecursionlimit(limit)
