"""Intel SGX and TDX DCAP attestation, verified with dcap-qvl.

A DCAP quote is a report of the enclave (SGX) or trust domain (TDX) — its
measurement and 64 bytes of REPORTDATA chosen by the code inside — signed by
the platform's quoting enclave, whose key Intel certifies through a PCK
certificate chain. Verification needs *collateral*: Intel-signed TCB info, QE
identity and revocation lists (fetched from Intel's PCS or a PCCS cache); it is
signed by Intel, so a coordinator may hand it over with its quote.
``dcap-qvl`` checks every signature, the certificate chain against Intel's root
CA, revocation and the collateral's validity window at ``policy.now``, and
derives the platform's TCB status. On top of that this backend applies the
policy: accepted TCB statuses, no debug enclaves or TDs (their memory is open
to the host), the measurement allow-list and the report-data binding.

Measurements are 32 bytes, as ComputeMarket stores them: an SGX enclave's
MRENCLAVE; for TDX the SHA-256 of MRTD ‖ RTMR0 ‖ RTMR1 ‖ RTMR2 ‖ RTMR3, since
MRTD alone covers only the TD's initial firmware, and the kernel, command line
and application are measured into the RTMRs.

Quotes are produced through the Linux configfs-tsm interface
(``/sys/kernel/config/tsm/report``), present inside TDX guests and SGX hosts
with a recent kernel.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import os
import secrets
import time
from pathlib import Path

import dcap_qvl

from databright.compute._attestation import REPORT_DATA_SIZE, Policy, Verified
from databright.errors import AttestationError

__all__ = ["DcapAttestation", "quote_measurement"]

#: Where Linux exposes quote generation to user space.
TSM_REPORTS = Path("/sys/kernel/config/tsm/report")

_SGX_DEBUG = 0x02  # ATTRIBUTES.DEBUG, bit 1 of the first flags byte
_TDX_DEBUG = 0x01  # TD_ATTRIBUTES.DEBUG, bit 0


def quote_measurement(raw_quote: bytes) -> bytes:
    """The 32-byte measurement a DCAP quote claims (not verified: see :meth:`DcapAttestation.verify`)."""
    return _measurement(_parse(raw_quote))


class DcapAttestation:
    """SGX/TDX DCAP quotes; ``collateral`` (dcap-qvl's JSON) is needed to verify."""

    def __init__(self, collateral: str | bytes | None = None, tsm: Path = TSM_REPORTS) -> None:
        self._collateral = collateral
        self._tsm = tsm
        self.kind = "tdx-dcap" if (tsm.is_dir() and _is_tdx_guest()) else "sgx-dcap"
        self.label = f"Intel {self.kind.split('-')[0].upper()} DCAP attestation"

    def __str__(self) -> str:
        return self.label

    def measurement(self) -> bytes:
        """This machine's enclave or TD measurement, read from a fresh quote."""
        return quote_measurement(self.quote(bytes(REPORT_DATA_SIZE)))

    def quote(self, report_data: bytes) -> bytes:
        """A quote over ``report_data`` from the platform's quoting enclave."""
        if len(report_data) > REPORT_DATA_SIZE:
            raise AttestationError(f"report data is at most {REPORT_DATA_SIZE} bytes")
        if not self._tsm.is_dir():
            raise AttestationError(f"no DCAP quote provider here ({self._tsm} is missing)")
        entry = self._tsm / f"databright-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            entry.mkdir()
            try:
                (entry / "inblob").write_bytes(report_data.ljust(REPORT_DATA_SIZE, b"\0"))
                return (entry / "outblob").read_bytes()
            finally:
                entry.rmdir()
        except OSError as exc:
            raise AttestationError(f"quote generation failed: {exc.strerror or exc}") from None

    def verify(self, quote: bytes, policy: Policy) -> Verified:
        """Verify ``quote`` against the collateral and ``policy``."""
        if self._collateral is None:
            raise AttestationError("DCAP verification needs the quote's collateral")
        try:
            collateral = dcap_qvl.QuoteCollateralV3.from_json(
                self._collateral.decode() if isinstance(self._collateral, bytes) else self._collateral
            )
        except (ValueError, UnicodeDecodeError) as exc:
            raise AttestationError(f"unreadable DCAP collateral ({_first_line(exc)})") from None
        parsed = _parse(quote)
        now = int(time.time()) if policy.now is None else policy.now
        try:
            report = dcap_qvl.verify(bytes(quote), collateral, now)
        except ValueError as exc:
            raise AttestationError(f"DCAP quote refused: {_first_line(exc)}") from None
        kind = "tdx-dcap" if parsed.is_tdx() else "sgx-dcap"
        if report.status not in policy.tcb_statuses:
            raise AttestationError(
                f"platform TCB status {report.status} is not accepted "
                f"(accepted: {', '.join(sorted(policy.tcb_statuses))})"
            )
        if _is_debug(parsed) and not policy.allow_debug:
            raise AttestationError(f"quote is from a debug {'TD' if parsed.is_tdx() else 'enclave'}")
        measurement = _measurement(parsed)
        report_data = bytes(parsed.report.report_data)
        policy.check_binding(report_data)
        policy.check_measurement(measurement)
        label = f"Intel {kind.split('-')[0].upper()} DCAP attestation"
        return Verified(
            kind, label, measurement, report_data, report.status, tuple(report.advisory_ids)
        )

    @staticmethod
    def collateral_expiry(collateral: str) -> int:
        """The earliest ``nextUpdate`` (Unix seconds) of the collateral's TCB info and QE identity."""
        data = json.loads(collateral)
        updates = [json.loads(data[k])["nextUpdate"] for k in ("tcb_info", "qe_identity")]
        return min(calendar.timegm(time.strptime(u, "%Y-%m-%dT%H:%M:%SZ")) for u in updates)


def _parse(raw_quote: bytes) -> dcap_qvl.Quote:
    try:
        return dcap_qvl.parse_quote(bytes(raw_quote))
    except ValueError as exc:
        raise AttestationError(f"not a DCAP quote ({_first_line(exc)})") from None


def _measurement(quote: dcap_qvl.Quote) -> bytes:
    report = quote.report
    if isinstance(report, dcap_qvl.SgxEnclaveReport):
        return bytes(report.mr_enclave)
    parts = (report.mr_td, report.rt_mr0, report.rt_mr1, report.rt_mr2, report.rt_mr3)
    return hashlib.sha256(b"".join(bytes(p) for p in parts)).digest()


def _is_debug(quote: dcap_qvl.Quote) -> bool:
    report = quote.report
    if isinstance(report, dcap_qvl.SgxEnclaveReport):
        return bool(report.attributes[0] & _SGX_DEBUG)
    return bool(report.td_attributes[0] & _TDX_DEBUG)


def _is_tdx_guest() -> bool:
    return Path("/sys/firmware/tdx").exists() or Path("/dev/tdx_guest").exists()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
