"""The ledger: contracts, their typed clients, accounts and the embedded node.

The names below load on first use (PEP 562): web3 and eth_account cost about a
second to import, and a command that answers from the index needs neither.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from databright.chain._compile import CompiledContract, compile_contract, source_hashes
    from databright.chain._eip712 import domain_separator, recover_signer, typed_digest
    from databright.chain._head import ChainHead, RpcHead
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

# name -> the module that defines it
_HOMES = {
    **dict.fromkeys(["CompiledContract", "compile_contract", "source_hashes"], "_compile"),
    **dict.fromkeys(["domain_separator", "recover_signer", "typed_digest"], "_eip712"),
    **dict.fromkeys(["ChainHead", "RpcHead"], "_head"),
    **dict.fromkeys(["Ledger", "revert_reason"], "_ledger"),
    **dict.fromkeys(["Keystore", "StoredAccount"], "accounts"),
    **dict.fromkeys(["ComputeMarket", "Coordinator", "Job", "JobStatus", "Payment", "Slash", "Worker"],
                    "computemarket"),
    **dict.fromkeys(["Commitment", "DataMarket", "Dataset", "DatasetParams", "Entry", "Event", "Proposal",
                     "ProposalStatus"], "datamarket"),
    **dict.fromkeys(["Deployment", "add_compute_market", "add_model_market", "deploy", "load_deployment"], "deploy"),
    **dict.fromkeys(["Channel", "Model", "ModelMarket", "ModelVersion", "Verification"], "modelmarket"),
}

__all__ = [
    "ChainHead",
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
    "RpcHead",
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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # once loaded, an ordinary module attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
