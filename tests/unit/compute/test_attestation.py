"""The software attestation backend and the package measurement."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from eth_account import Account

import databright
from databright.compute import (
    SOFTWARE_LABEL,
    Attestation,
    DcapAttestation,
    Policy,
    SoftwareAttestation,
    describe_environment,
    package_measurement,
    report_data_for,
)
from databright.compute._measurement import manifest
from databright.errors import AttestationError

KEY = "0x" + "11" * 32
FOREIGN_KEY = "0x" + "22" * 32
COORDINATOR = Account.from_key(KEY).address
CHALLENGE = b"verifier nonce 42"


@pytest.fixture(scope="module")
def backend() -> SoftwareAttestation:
    return SoftwareAttestation(KEY)


@pytest.fixture(scope="module")
def policy(backend: SoftwareAttestation) -> Policy:
    return Policy(
        measurements=frozenset({backend.measurement()}),
        coordinator=COORDINATOR,
        challenge=CHALLENGE,
    )


def test_backends_implement_the_interface(backend: SoftwareAttestation) -> None:
    assert isinstance(backend, Attestation)
    assert isinstance(DcapAttestation(), Attestation)


def test_software_quote_round_trips(backend: SoftwareAttestation, policy: Policy) -> None:
    quote = backend.quote(report_data_for(COORDINATOR, CHALLENGE))
    verified = SoftwareAttestation().verify(quote, policy)
    assert verified.kind == "software"
    assert verified.signer == COORDINATOR
    assert verified.measurement == backend.measurement() == package_measurement()
    assert verified.label == SOFTWARE_LABEL
    assert verified.as_dict()["label"] == SOFTWARE_LABEL


def test_the_label_appears_wherever_the_backend_is_shown(backend: SoftwareAttestation) -> None:
    assert SOFTWARE_LABEL == "software attestation: trust rests on the operator"
    assert SOFTWARE_LABEL in str(backend)
    quote = json.loads(backend.quote(b"x"))
    assert quote["label"] == SOFTWARE_LABEL and quote["version"] == 1
    described = describe_environment(backend)
    assert described["attestation"] == {
        "kind": "software",
        "label": SOFTWARE_LABEL,
        "measurement": "0x" + backend.measurement().hex(),
    }
    assert json.dumps(described)  # JSON-ready as printed by the CLI


def test_a_foreign_key_is_refused(policy: Policy) -> None:
    foreign = SoftwareAttestation(FOREIGN_KEY)
    quote = foreign.quote(report_data_for(COORDINATOR, CHALLENGE))
    with pytest.raises(AttestationError, match="is signed by .*, not "):
        SoftwareAttestation().verify(quote, policy)


def test_a_quote_bound_to_another_key_or_challenge_is_refused(
    backend: SoftwareAttestation, policy: Policy
) -> None:
    other = Account.from_key(FOREIGN_KEY).address
    for report_data in (report_data_for(other, CHALLENGE), report_data_for(COORDINATOR, b"old")):
        with pytest.raises(AttestationError, match="does not bind coordinator key"):
            SoftwareAttestation().verify(backend.quote(report_data), policy)


@pytest.mark.parametrize("field", ["measurement", "report_data"])
def test_tampered_fields_break_the_signature(
    backend: SoftwareAttestation, policy: Policy, field: str
) -> None:
    quote = json.loads(backend.quote(report_data_for(COORDINATOR, CHALLENGE)))
    quote[field] = ("00" if quote[field][:2] != "00" else "01") + quote[field][2:]
    with pytest.raises(AttestationError, match="not signed by the key it names"):
        SoftwareAttestation().verify(json.dumps(quote).encode(), policy)


def test_a_replaced_signer_is_refused(backend: SoftwareAttestation, policy: Policy) -> None:
    quote = json.loads(backend.quote(report_data_for(COORDINATOR, CHALLENGE)))
    quote["signer"] = Account.from_key(FOREIGN_KEY).address
    with pytest.raises(AttestationError, match="not signed by the key it names"):
        SoftwareAttestation().verify(json.dumps(quote).encode(), policy)


def test_a_measurement_off_the_allow_list_is_refused(backend: SoftwareAttestation) -> None:
    policy = Policy(measurements=frozenset({bytes(32)}), coordinator=COORDINATOR)
    with pytest.raises(AttestationError, match="is not allow-listed"):
        SoftwareAttestation().verify(backend.quote(report_data_for(COORDINATOR)), policy)


@pytest.mark.parametrize(
    "quote, message",
    [
        (b"\xff\x00", "not JSON"),
        (b"[1]", "not a software quote"),
        (b'{"format": "databright-software-quote", "version": 2}', "unsupported"),
        (b'{"format": "databright-software-quote", "version": 1}', "malformed fields"),
    ],
)
def test_malformed_quotes_give_one_line_errors(
    policy: Policy, quote: bytes, message: str
) -> None:
    with pytest.raises(AttestationError, match=message) as caught:
        SoftwareAttestation().verify(quote, policy)
    assert "\n" not in str(caught.value)


def test_extra_fields_are_refused(backend: SoftwareAttestation, policy: Policy) -> None:
    quote = json.loads(backend.quote(report_data_for(COORDINATOR, CHALLENGE)))
    quote["note"] = "trust me"
    with pytest.raises(AttestationError, match="unexpected or missing fields"):
        SoftwareAttestation().verify(json.dumps(quote).encode(), policy)


def test_quoting_needs_a_key_and_small_report_data(backend: SoftwareAttestation) -> None:
    with pytest.raises(AttestationError, match="need the coordinator's key"):
        SoftwareAttestation().quote(b"x")
    with pytest.raises(AttestationError, match="at most 64 bytes"):
        backend.quote(bytes(65))


def test_a_policy_must_bind_something() -> None:
    with pytest.raises(AttestationError, match="must bind quotes"):
        Policy(measurements=frozenset())
    with pytest.raises(AttestationError, match="not an Ethereum address"):
        Policy(measurements=frozenset(), coordinator="alice")


def test_measurement_is_stable_and_covers_every_file(tmp_path: Path) -> None:
    package = Path(databright.__file__).parent
    copy = tmp_path / "databright"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert package_measurement(copy) == package_measurement(package)
    # Compiled caches and modification times do not count.
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"cache")
    (copy / "errors.py").touch()
    assert package_measurement(copy) == package_measurement(package)
    # One changed byte in any file does.
    contract = next(copy.rglob("*.vy"))
    contract.write_bytes(contract.read_bytes() + b"\n")
    assert package_measurement(copy) != package_measurement(package)


def test_manifest_names_files_and_locked_dependencies() -> None:
    lines = manifest()
    assert lines[0] == "databright-measurement v1"
    assert lines[1].startswith("python ")
    assert any(line.endswith(" errors.py") and line.startswith("file ") for line in lines)
    dependencies = [line for line in lines if line.startswith("dependency ")]
    assert "dependency torch==" in "\n".join(dependencies)
    assert "dependency vyper==0.4.3" in dependencies
    names = [line.split()[1].partition("==")[0] for line in dependencies]
    assert names == sorted(set(names))


def test_an_uninstalled_distribution_cannot_be_measured() -> None:
    with pytest.raises(AttestationError, match="is not installed"):
        package_measurement(Path(databright.__file__).parent, "no-such-distribution")
