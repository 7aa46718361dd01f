"""DCAP verification on real SGX and TDX quotes with their Intel-signed collateral (offline).

The vectors are dcap-qvl's sample data (see attestation_vectors/README.md);
each test runs dcap-qvl's real checks, then this backend's policy on top.
"""

from __future__ import annotations

import json
from pathlib import Path

import dcap_qvl
import pytest

from databright.compute import DcapAttestation, Policy, quote_measurement, report_data_for
from databright.errors import AttestationError

VECTORS = Path(__file__).parent / "attestation_vectors"
DAY = 86_400

# The SGX sample enclave's REPORTDATA: "Hello, world!" padded with zeros.
SGX_REPORT_DATA = b"Hello, world!".ljust(64, b"\0")


def load(name: str) -> tuple[bytes, str]:
    quote = (VECTORS / name).read_bytes()
    collateral = (VECTORS / f"{name}_collateral.json").read_text()
    return quote, collateral


def valid_time(collateral: str) -> int:
    """A moment inside the collateral's validity window (a day before it expires)."""
    return DcapAttestation.collateral_expiry(collateral) - DAY


def policy_for(quote: bytes, collateral: str, **overrides: object) -> Policy:
    """A policy that accepts exactly this quote: its measurement, report data and time."""
    values: dict[str, object] = {
        "measurements": frozenset({quote_measurement(quote)}),
        "report_data": bytes(dcap_qvl.parse_quote(quote).report.report_data),
        "now": valid_time(collateral),
        "tcb_statuses": frozenset({"UpToDate", "ConfigurationAndSWHardeningNeeded"}),
    }
    values.update(overrides)
    return Policy(**values)  # type: ignore[arg-type]


def test_tdx_quote_verifies() -> None:
    quote, collateral = load("tdx_quote")
    verified = DcapAttestation(collateral).verify(quote, policy_for(quote, collateral))
    assert verified.kind == "tdx-dcap"
    assert verified.tcb_status == "UpToDate"
    assert len(verified.measurement) == 32
    assert "TDX" in verified.label and verified.as_dict()["kind"] == "tdx-dcap"


def test_sgx_quote_verifies_with_its_status_and_advisories() -> None:
    quote, collateral = load("sgx_quote")
    verified = DcapAttestation(collateral).verify(quote, policy_for(quote, collateral))
    assert verified.kind == "sgx-dcap"
    assert verified.report_data == SGX_REPORT_DATA
    assert verified.tcb_status == "ConfigurationAndSWHardeningNeeded"
    assert "INTEL-SA-00615" in verified.advisory_ids
    # For SGX the measurement is MRENCLAVE itself.
    mrenclave = dcap_qvl.parse_quote(quote).report.mr_enclave
    assert verified.measurement == bytes(mrenclave)


def test_tcb_status_outside_the_policy_is_refused() -> None:
    quote, collateral = load("sgx_quote")
    strict = policy_for(quote, collateral, tcb_statuses=frozenset({"UpToDate"}))
    with pytest.raises(AttestationError, match="TCB status ConfigurationAndSWHardeningNeeded"):
        DcapAttestation(collateral).verify(quote, strict)


@pytest.mark.parametrize("name", ["tdx_quote", "sgx_quote"])
def test_tampered_quote_body_is_refused(name: str) -> None:
    quote, collateral = load(name)
    policy = policy_for(quote, collateral)
    # Flip one bit in the report body (just past the 48-byte header): the
    # quoting enclave's signature no longer matches.
    tampered = bytearray(quote)
    tampered[48 + 100] ^= 0x01
    with pytest.raises(AttestationError, match="DCAP quote refused"):
        DcapAttestation(collateral).verify(bytes(tampered), policy)


def test_tampered_measurement_is_refused() -> None:
    quote, collateral = load("sgx_quote")
    policy = policy_for(quote, collateral)
    mrenclave = bytes(dcap_qvl.parse_quote(quote).report.mr_enclave)
    at = quote.index(mrenclave)
    tampered = quote[:at] + bytes(32) + quote[at + 32 :]
    with pytest.raises(AttestationError, match="DCAP quote refused"):
        DcapAttestation(collateral).verify(tampered, policy)


def test_tampered_report_data_is_refused() -> None:
    quote, collateral = load("sgx_quote")
    policy = policy_for(quote, collateral)
    tampered = quote.replace(b"Hello, world!", b"Hello, World!", 1)
    assert tampered != quote
    with pytest.raises(AttestationError, match="DCAP quote refused"):
        DcapAttestation(collateral).verify(tampered, policy)


def test_measurement_not_on_the_allow_list_is_refused() -> None:
    quote, collateral = load("tdx_quote")
    policy = policy_for(quote, collateral, measurements=frozenset({bytes(32)}))
    with pytest.raises(AttestationError, match="is not allow-listed"):
        DcapAttestation(collateral).verify(quote, policy)


def test_report_data_not_binding_the_coordinator_key_is_refused() -> None:
    quote, collateral = load("sgx_quote")
    coordinator = "0x" + "ab" * 20
    assert report_data_for(coordinator) != SGX_REPORT_DATA
    policy = policy_for(quote, collateral, report_data=None, coordinator=coordinator)
    with pytest.raises(AttestationError, match="does not bind coordinator key"):
        DcapAttestation(collateral).verify(quote, policy)
    other = policy_for(quote, collateral, report_data=b"another challenge")
    with pytest.raises(AttestationError, match="differs from the expected report data"):
        DcapAttestation(collateral).verify(quote, other)


def test_expired_collateral_is_refused() -> None:
    quote, collateral = load("tdx_quote")
    late = policy_for(quote, collateral, now=DcapAttestation.collateral_expiry(collateral) + DAY)
    with pytest.raises(AttestationError, match="DCAP quote refused"):
        DcapAttestation(collateral).verify(quote, late)


def test_collateral_for_another_platform_is_refused() -> None:
    quote, _ = load("tdx_quote")
    _, sgx_collateral = load("sgx_quote")
    policy = policy_for(quote, sgx_collateral)
    with pytest.raises(AttestationError, match="DCAP quote refused"):
        DcapAttestation(sgx_collateral).verify(quote, policy)


def test_tampered_collateral_is_refused() -> None:
    quote, collateral = load("tdx_quote")
    data = json.loads(collateral)
    tcb = json.loads(data["tcb_info"])
    tcb["tcbLevels"][0]["tcbStatus"] = "UpToDate"
    # Intel signs the exact bytes: any change, even a status made better, breaks it.
    data["tcb_info"] = json.dumps(tcb)
    forged = json.dumps(data)
    with pytest.raises(AttestationError, match="DCAP quote refused"):
        DcapAttestation(forged).verify(quote, policy_for(quote, collateral))


def test_platform_missing_from_the_collateral_is_refused() -> None:
    # A TDX 1.5 quote whose platform TCB matches no level of its collateral.
    quote, collateral = load("tdx_quote_outdated")
    with pytest.raises(AttestationError, match="No matching TCB level"):
        DcapAttestation(collateral).verify(quote, policy_for(quote, collateral))


def test_malformed_inputs_give_one_line_errors() -> None:
    quote, collateral = load("tdx_quote")
    policy = policy_for(quote, collateral)
    with pytest.raises(AttestationError, match="not a DCAP quote") as bad_quote:
        DcapAttestation(collateral).verify(b"not a quote", policy)
    with pytest.raises(AttestationError, match="unreadable DCAP collateral") as bad_collateral:
        DcapAttestation("{").verify(quote, policy)
    with pytest.raises(AttestationError, match="needs the quote's collateral"):
        DcapAttestation().verify(quote, policy)
    for error in (bad_quote.value, bad_collateral.value):
        assert "\n" not in str(error)


def test_quoting_without_a_provider_says_so(tmp_path: Path) -> None:
    backend = DcapAttestation(tsm=tmp_path / "absent")
    with pytest.raises(AttestationError, match="no DCAP quote provider here"):
        backend.quote(b"nonce")
    with pytest.raises(AttestationError, match="at most 64 bytes"):
        backend.quote(bytes(65))
