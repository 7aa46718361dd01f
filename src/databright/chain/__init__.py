"""The ledger: contracts, their typed clients, accounts and the embedded node."""

from __future__ import annotations

from databright.chain._eip712 import domain_separator, recover_signer, typed_digest
from databright.chain._compile import CompiledContract, compile_contract, source_hashes
from databright.chain._ledger import Ledger, revert_reason
from databright.chain.accounts import Keystore, StoredAccount
from databright.chain.computemarket import ComputeMarket, Coordinator, Job, JobStatus, Payment, Slash, Worker
from databright.chain.datamarket import (
    Commitment,
    DataMarket,
    Dataset,
    DatasetParams,
    Entry,
    Event,
    Proposal,
    ProposalStatus,
)
from databright.chain.deploy import Deployment, add_compute_market, add_model_market, deploy, load_deployment
from databright.chain.modelmarket import Channel, Model, ModelMarket, ModelVersion, Verification

__all__ = [
    "Channel",
    "Commitment",
    "CompiledContract",
    "ComputeMarket",
    "Coordinator",
    "DataMarket",
    "Dataset",
    "DatasetParams",
    "Deployment",
    "Entry",
    "Event",
    "Job",
    "JobStatus",
    "Keystore",
    "Ledger",
    "Model",
    "ModelMarket",
    "ModelVersion",
    "Payment",
    "Proposal",
    "ProposalStatus",
    "Slash",
    "StoredAccount",
    "Verification",
    "Worker",
    "add_compute_market",
    "add_model_market",
    "compile_contract",
    "deploy",
    "domain_separator",
    "load_deployment",
    "recover_signer",
    "revert_reason",
    "source_hashes",
    "typed_digest",
]
