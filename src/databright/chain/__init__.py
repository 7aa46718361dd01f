"""The ledger: contracts, their typed clients, accounts and the embedded node.

The names below load on first use (``lazy_exports``): web3 and eth_account cost
about a second to import, and a command that answers from the index needs neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from databright._exports import lazy_exports

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
    from databright.chain.modelmarket import Channel, Model, ModelMarket, ModelVersion, Verification

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


__getattr__, __dir__ = lazy_exports(__name__, {
    "_compile": ["CompiledContract", "compile_contract", "source_hashes"],
    "_eip712": ["domain_separator", "recover_signer", "typed_digest"],
    "_head": ["ChainHead", "RpcHead"],
    "_ledger": ["Ledger", "revert_reason"],
    "accounts": ["Keystore", "StoredAccount"],
    "computemarket": ["ComputeMarket", "Coordinator", "Job", "JobStatus", "Payment", "Slash", "Worker"],
    "datamarket": ["Commitment", "DataMarket", "Dataset", "DatasetParams", "Entry", "Event", "Proposal",
                   "ProposalStatus"],
    "modelmarket": ["Channel", "Model", "ModelMarket", "ModelVersion", "Verification"],
})

# Imported at once, not on first use: ``deploy`` names both a function and its module, and a
# lazily exported ``deploy`` would be shadowed by the module as soon as anything imported
# ``databright.chain.deploy``. The module is light (no web3, no vyper until it compiles).
from databright.chain.deploy import Deployment, add_compute_market, add_model_market, deploy, load_deployment  # noqa: E402
