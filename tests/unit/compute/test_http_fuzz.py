"""The coordinator's worker endpoints under random requests: random paths, bodies and headers, unsigned,
garbage-signed, validly signed and tampered. None may give a 500 or show a server path; every refusal is a
4xx whose ``detail`` is one line, and a request without a valid signature is never served."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import databright
from databright.compute._app import _compute_seconds, coordinator_app
from databright.compute._requests import HEADERS, RequestSigner
from tests.unit.compute.conftest import FINGERPRINT, Market

_SEGMENT_CHARS = string.ascii_letters + string.digits + "-_~:@!$&'()*+,;="
_segment = st.text(alphabet=_SEGMENT_CHARS, min_size=1, max_size=40)
_lease = st.one_of(st.integers(-(2**80), 2**80).map(str), _segment, st.sampled_from(["1", "0", "-1", "1e3", "01"]))
_paths = st.one_of(
    st.sampled_from(["/v1/claim", "/v1/workers", "/v1/blobs", "/v1/blobs/", "/v1/leases//result", "/v1/status/"]),
    _segment.map(lambda s: f"/v1/blobs/{s}"),
    st.tuples(_lease, st.sampled_from(["result", "heartbeat", "commitment", "challenges", "challenges/0", "other"]))
    .map(lambda p: f"/v1/leases/{p[0]}/{p[1]}"),
    st.tuples(_lease, st.sampled_from(["listen", "peers", "abort"])).map(lambda p: f"/v1/stages/{p[0]}/{p[1]}"),
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


_bodies = st.one_of(
    st.binary(max_size=200),
    _json.map(_dumps),
    st.fixed_dictionaries({"fingerprint": _json, "min_fee": _json}).map(_dumps),
    st.fixed_dictionaries({"fingerprint": st.just(FINGERPRINT), "min_fee": _json}).map(_dumps),
    st.fixed_dictionaries({"cids": _json}).map(_dumps),
    st.integers(1, 200_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 50_000).map(lambda n: b'{"fingerprint": ' + b'{"a": ' * n + b"1" + b"}" * n + b', "min_fee": 1}'),
)
# Header values as HTTP carries them: latin-1 text without control characters.
_header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                       max_size=80)
_garbage = st.dictionaries(st.sampled_from(HEADERS), _header_text, min_size=1, max_size=4)
_seconds = st.one_of(st.none(), _header_text, st.sampled_from(["1.5", "1e999", "9" * 400, "²", "nan", "-1", "٣"]))

# What a leaked server path or traceback would show: the package's own directory among them.
LEAK = ("Traceback", "site-packages", "/tmp/", "/home/", "File \"", str(Path(databright.__file__).parent))


@pytest.fixture
def client(market: Market) -> TestClient:
    market.coordinator.add_job(market.job(redundancy=1), market.items, market.validation)
    return TestClient(coordinator_app(market.coordinator), raise_server_exceptions=False)


def _encoded(headers: dict[str, str]) -> dict[str, bytes]:
    return {name: value.encode() for name, value in headers.items()}


def _check(reply: Any, market: Market) -> None:
    assert reply.status_code < 500, reply.text
    text = reply.content.decode("latin-1")
    for leak in (*LEAK, str(market.store.root)):
        assert leak not in text, (leak, text)
    if reply.status_code >= 400:
        detail = reply.json()["detail"]
        assert isinstance(detail, str) and detail and "\n" not in detail, reply.text


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["GET", "POST", "PUT"]), path=_paths, body=_bodies,
       mode=st.sampled_from(["unsigned", "garbage", "signed", "tampered"]), garbage=_garbage, seconds=_seconds)
def test_random_worker_requests_never_fail_the_server(client: TestClient, market: Market, method: str, path: str,
                                                      body: bytes, mode: str, garbage: dict[str, str],
                                                      seconds: str | None) -> None:
    signer = RequestSigner(market.coordinator.domain, b"\x11" * 32)
    headers: dict[str, str] = {}
    if mode == "garbage":
        headers = dict(garbage)
    elif mode in ("signed", "tampered"):
        headers = signer.headers(method, path, body)
        if mode == "tampered":
            body = body + b" "
    if seconds is not None:
        headers["X-DataBright-Compute-Seconds"] = seconds
    reply = client.request(method, path, content=body, headers=_encoded(headers))
    _check(reply, market)
    if mode != "signed":
        assert 400 <= reply.status_code < 500, (mode, reply.status_code, reply.text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies, seconds=_seconds)
def test_random_results_and_registrations_from_a_real_worker(client: TestClient, market: Market, body: bytes,
                                                             seconds: str | None) -> None:
    """A registered worker with a live lease sends random results and registrations: refused, never a 500."""
    signer = RequestSigner(market.coordinator.domain, b"\x22" * 32)
    market.coordinator.register_worker(signer.address, FINGERPRINT, 1)
    claim = client.post("/v1/claim", headers=signer.headers("POST", "/v1/claim"))
    _check(claim, market)
    lease = claim.json()["lease"] if claim.status_code == 200 else 1
    for path in (f"/v1/leases/{lease}/result", f"/v1/leases/{lease}/heartbeat", "/v1/workers", "/v1/blobs"):
        headers = signer.headers("POST", path, body)
        if seconds is not None:
            headers["X-DataBright-Compute-Seconds"] = seconds
        _check(client.post(path, content=body, headers=_encoded(headers)), market)


@pytest.fixture
def leased(client: TestClient, market: Market) -> tuple[RequestSigner, int]:
    """A registered worker holding a lease."""
    signer = RequestSigner(market.coordinator.domain, b"\x33" * 32)
    market.coordinator.register_worker(signer.address, FINGERPRINT, 1)
    claim = client.post("/v1/claim", headers=signer.headers("POST", "/v1/claim"))
    assert claim.status_code == 200, claim.text
    return signer, int(claim.json()["lease"])


def _signed_post(client: TestClient, signer: RequestSigner, path: str, body: bytes = b"",
                 extra: dict[str, bytes] | None = None) -> Any:
    return client.post(path, content=body, headers={**_encoded(signer.headers("POST", path, body)), **(extra or {})})


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000,
                                  b'{"fingerprint": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b', "min_fee": 1}',
                                  b'{"fingerprint": {"torch": "x"}, "min_fee": 1e999}',
                                  b'{"fingerprint": {"torch": "x"}, "min_fee": "7.5"}',
                                  b'{"fingerprint": {"torch": "x"}, "min_fee": true}',
                                  b'{"fingerprint": {"torch": "x"}, "min_fee": "\xc2\xb2"}'])
def test_a_registration_nested_deep_or_with_no_integer_fee_is_refused(client: TestClient, market: Market,
                                                                       body: bytes) -> None:
    reply = _signed_post(client, RequestSigner(market.coordinator.domain, b"\x44" * 32), "/v1/workers", body)
    assert reply.status_code == 400 and "\n" not in reply.json()["detail"], reply.text


@pytest.mark.parametrize("path", ["/v1/stages/1/listen", "/v1/stages/1/abort"])
def test_a_stage_report_nested_deep_is_refused(client: TestClient, leased: tuple[RequestSigner, int],
                                               path: str) -> None:
    reply = _signed_post(client, leased[0], path, b"[" * 100_000 + b"]" * 100_000)
    assert reply.status_code == 400 and "not JSON" in reply.json()["detail"], reply.text


def test_a_blob_batch_nested_deep_is_refused(client: TestClient, leased: tuple[RequestSigner, int]) -> None:
    reply = _signed_post(client, leased[0], "/v1/blobs", b'{"cids": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert reply.status_code == 400 and "not JSON" in reply.json()["detail"]


@pytest.mark.parametrize("seconds", ["²", "¹.5", "٣", "1e999", "9" * 400, "nan", "-1", " 1", ""])
def test_only_a_plain_decimal_is_a_compute_time(seconds: str) -> None:
    # "²" (latin-1 0xB2, as a server decodes the raw header byte) is a digit to str.isdigit() and not
    # a number to float(): that answered 500.
    assert _compute_seconds(seconds) is None
    assert _compute_seconds("12.5") == 12.5 and _compute_seconds("3") == 3.0


@pytest.mark.parametrize("seconds", [b"\xb2", "٣".encode(), b"1e999", b"9" * 400, b"nan", b"-1"])
def test_an_odd_compute_seconds_header_is_ignored(client: TestClient, leased: tuple[RequestSigner, int],
                                                  seconds: bytes) -> None:
    signer, lease = leased
    reply = _signed_post(client, signer, f"/v1/leases/{lease}/result", b"not safetensors",
                         {"X-DataBright-Compute-Seconds": seconds})
    assert reply.status_code == 400 and "\n" not in reply.json()["detail"], reply.text


@pytest.mark.parametrize("lease", [str(2**63), str(2**80), "-1"])
def test_a_lease_id_beyond_sql_integers_is_refused(client: TestClient, leased: tuple[RequestSigner, int],
                                                   lease: str) -> None:
    for end in ("heartbeat", "result"):
        reply = _signed_post(client, leased[0], f"/v1/leases/{lease}/{end}")
        assert reply.status_code == 422 and reply.json()["detail"].startswith("invalid path.lease_id"), reply.text


def test_a_validation_error_is_one_line_without_the_input(client: TestClient, market: Market) -> None:
    signer = RequestSigner(market.coordinator.domain, b"\x55" * 32)
    reply = _signed_post(client, signer, "/v1/leases/<script>/heartbeat")
    assert reply.status_code == 422 and isinstance(reply.json()["detail"], str) and "<script>" not in reply.text
