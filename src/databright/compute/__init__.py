"""The compute market's off-chain part: attestation and environment fingerprints."""

from __future__ import annotations

from databright.compute._attestation import (
    SOFTWARE_LABEL,
    Attestation,
    Policy,
    SoftwareAttestation,
    Verified,
    describe_environment,
    report_data_for,
)
from databright.compute._dcap import DcapAttestation, quote_measurement
from databright.compute._fingerprint import Fingerprint, fingerprint, pinned_environment, probe
from databright.compute._measurement import package_measurement

__all__ = [
    "Attestation",
    "DcapAttestation",
    "Fingerprint",
    "Policy",
    "SOFTWARE_LABEL",
    "SoftwareAttestation",
    "Verified",
    "describe_environment",
    "fingerprint",
    "package_measurement",
    "pinned_environment",
    "probe",
    "quote_measurement",
    "report_data_for",
]
