"""The compute market's off-chain part: a trusted coordinator and untrusted workers.

A job (ComputeMarket.submit_job) becomes rounds of federated averaging; each
round is one coarse :class:`Task` per shard, "from checkpoint C, train E local
steps on shard S with seed z". The :class:`Coordinator` keeps jobs, leases,
results, the exposure ledger and spent nonces in SQL, hands tasks to workers
who pull them over HTTP with EIP-712 signed requests (:class:`RequestSigner`),
compares redundant results by digest and aggregates each round itself. See
docs/compute.md. Coordinators prove what they run through :class:`Attestation`
(docs/attestation.md); workers advertise a :class:`Fingerprint`, and only equal
fingerprints are grouped (docs/reproducibility.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from databright._exports import lazy_exports

if TYPE_CHECKING:  # torch and web3: loaded with the names that need them (see databright._exports)
    from databright.compute._attestation import (
        SOFTWARE_LABEL,
        Attestation,
        Policy,
        SoftwareAttestation,
        Verified,
        describe_environment,
        report_data_for,
    )
    from databright.compute._coordinator import Coordinator, Lease, fingerprint_digest
    from databright.compute._dcap import DcapAttestation, quote_measurement
    from databright.compute._fedavg import fedavg
    from databright.compute._fingerprint import Fingerprint, fingerprint, pinned_environment, probe
    from databright.compute._jobs import JobConfig, Payment, Settlement, Slash
    from databright.compute._jobspec import JobSettings, parse_job_document
    from databright.compute._measurement import package_measurement
    from databright.compute._planner import exposure_cap, partition, waiting_reason
    from databright.compute._redundancy import Verdict, decide
    from databright.compute._requests import RequestDomain, RequestSigner, SignedRequest
    from databright.compute._schema import connect
    from databright.compute._serve_worker import ServingWorker, run_serving_workers
    from databright.compute._serving import ServingDesk, ServingJob, ServingLease
    from databright.compute._serving_answers import Answer, frame_items, infer, unframe_items
    from databright.compute._serving_link import ServingClient, ServingLink
    from databright.compute._task import Task, TaskResult, fetch_verified, run_task

__all__ = [
    "Answer",
    "Attestation",
    "Coordinator",
    "DcapAttestation",
    "Fingerprint",
    "JobConfig",
    "JobSettings",
    "Lease",
    "Payment",
    "Policy",
    "RequestDomain",
    "RequestSigner",
    "SOFTWARE_LABEL",
    "ServingClient",
    "ServingDesk",
    "ServingJob",
    "ServingLease",
    "ServingLink",
    "ServingWorker",
    "Settlement",
    "SignedRequest",
    "Slash",
    "SoftwareAttestation",
    "Task",
    "TaskResult",
    "Verdict",
    "Verified",
    "connect",
    "decide",
    "describe_environment",
    "exposure_cap",
    "fedavg",
    "fetch_verified",
    "fingerprint",
    "fingerprint_digest",
    "frame_items",
    "infer",
    "package_measurement",
    "parse_job_document",
    "partition",
    "pinned_environment",
    "probe",
    "quote_measurement",
    "report_data_for",
    "run_serving_workers",
    "run_task",
    "unframe_items",
    "waiting_reason",
]


__getattr__, __dir__ = lazy_exports(__name__, {
    "_attestation": ["SOFTWARE_LABEL", "Attestation", "Policy", "SoftwareAttestation", "Verified",
                     "describe_environment", "report_data_for"],
    "_coordinator": ["Coordinator", "Lease", "fingerprint_digest"],
    "_dcap": ["DcapAttestation", "quote_measurement"],
    "_fedavg": ["fedavg"],
    "_fingerprint": ["Fingerprint", "fingerprint", "pinned_environment", "probe"],
    "_jobs": ["JobConfig", "Payment", "Settlement", "Slash"],
    "_jobspec": ["JobSettings", "parse_job_document"],
    "_measurement": ["package_measurement"],
    "_planner": ["exposure_cap", "partition", "waiting_reason"],
    "_redundancy": ["Verdict", "decide"],
    "_requests": ["RequestDomain", "RequestSigner", "SignedRequest"],
    "_schema": ["connect"],
    "_serve_worker": ["ServingWorker", "run_serving_workers"],
    "_serving": ["ServingDesk", "ServingJob", "ServingLease"],
    "_serving_answers": ["Answer", "frame_items", "infer", "unframe_items"],
    "_serving_link": ["ServingClient", "ServingLink"],
    "_task": ["Task", "TaskResult", "fetch_verified", "run_task"],
})
