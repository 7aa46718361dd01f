"""Deploying the contracts and the deployment manifest.

``HOME/deployments/<chain_id>.json`` records where the contracts live on one
chain: chain id, addresses, the block each was deployed in, the deploying
account, the Vyper version and the sha-256 of every contract source. Commands
refuse to use a manifest whose contract code is no longer on the chain (a reset
node), and warn-free reuse is possible across machines by copying the file.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from databright.chain._compile import compile_contract, source_hashes
from databright.errors import ChainError, ConfigError, TransactionError

if TYPE_CHECKING:  # web3 and eth_account: reading a manifest needs neither
    from eth_account.signers.local import LocalAccount

    from databright.chain._ledger import Ledger

__all__ = ["Deployment", "add_compute_market", "add_model_market", "deploy", "link_markets", "load_deployment"]


@dataclass
class Deployment:
    chain_id: int
    contracts: dict[str, dict[str, Any]]
    source_hashes: dict[str, str]
    compiler: str
    deployer: str
    deployed_at: float = field(default_factory=time.time)

    def address(self, name: str) -> str:
        try:
            return str(self.contracts[name]["address"])
        except KeyError as exc:
            raise ConfigError(f"no {name} in the deployment of chain {self.chain_id}") from exc

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.chain_id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
        return path


def load_deployment(directory: Path, chain_id: int) -> Deployment | None:
    path = directory / f"{chain_id}.json"
    if not path.is_file():
        return None
    try:
        return Deployment(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"corrupt deployment manifest {path}: {exc}") from exc


def deploy(ledger: Ledger, account: LocalAccount, cache_dir: Path | None = None) -> Deployment:
    """Compile and deploy DataMarket, ModelMarket and ComputeMarket; returns the manifest (not yet saved)."""
    import vyper

    compiled = compile_contract("data_market", cache_dir)
    receipt = ledger.transact(account, data=compiled.bytecode, gas=None)
    address = receipt.get("contractAddress")
    if not address:
        raise ChainError("deployment transaction created no contract")
    deployment = Deployment(
        chain_id=ledger.chain_id,
        contracts={
            "DataMarket": {
                "address": address,
                "block": int(receipt["blockNumber"]),
                "tx": receipt["transactionHash"].to_0x_hex(),
                "source_sha256": compiled.source_sha256,
            }
        },
        source_hashes=source_hashes(),
        compiler=f"vyper {vyper.__version__}",
        deployer=account.address,
    )
    add_model_market(ledger, account, deployment, cache_dir)
    return add_compute_market(ledger, account, deployment, cache_dir)


def add_model_market(
    ledger: Ledger, account: LocalAccount, deployment: Deployment, cache_dir: Path | None = None
) -> Deployment:
    """Deploy ModelMarket next to the deployment's DataMarket and add it to the manifest.

    It is linked to the deployment's ComputeMarket, if there is one yet.
    """
    from eth_abi.abi import encode

    from databright.chain.modelmarket import CHALLENGE_PERIOD

    args = encode(["address", "uint256"], [deployment.address("DataMarket"), CHALLENGE_PERIOD])
    _add_market(ledger, account, deployment, "ModelMarket", "model_market", args, cache_dir)
    return link_markets(ledger, account, deployment, cache_dir)


def add_compute_market(
    ledger: Ledger, account: LocalAccount, deployment: Deployment, cache_dir: Path | None = None
) -> Deployment:
    """Deploy ComputeMarket next to the deployment's DataMarket and add it to the manifest.

    The deploying account owns it and so governs its measurement allow-list.
    The deployment's ModelMarket, if there is one, is linked to it.
    """
    from eth_abi.abi import encode

    from databright.chain.computemarket import MIN_STAKE, UNBONDING_DELAY

    args = encode(["address", "uint256", "uint256"], [deployment.address("DataMarket"), MIN_STAKE, UNBONDING_DELAY])
    _add_market(ledger, account, deployment, "ComputeMarket", "compute_market", args, cache_dir)
    return link_markets(ledger, account, deployment, cache_dir)


def link_markets(
    ledger: Ledger, account: LocalAccount, deployment: Deployment, cache_dir: Path | None = None
) -> Deployment:
    """Link the deployment's ModelMarket and ComputeMarket both ways: completed jobs register models without a
    second training fee, and serving jobs serve ModelMarket's models.

    Nothing happens unless both are deployed; each link is made only where it
    is not yet set and ``account`` may set it. A market deployed before it
    could be linked stays as it is (its models pay the fee when registered, or
    it takes no serving jobs).
    """
    from databright.chain.computemarket import ComputeMarket
    from databright.chain.modelmarket import ModelMarket

    if not {"ModelMarket", "ComputeMarket"} <= deployment.contracts.keys():
        return deployment
    mm = ModelMarket(ledger, deployment.address("ModelMarket"), compile_contract("model_market", cache_dir).abi)
    try:
        linked, deployer = mm.compute_market_address(), mm.deployer()
    except TransactionError:  # no `deployer`: a ModelMarket that cannot be linked
        pass
    else:
        if linked is None and deployer == account.address:
            mm.link_compute_market(account, deployment.address("ComputeMarket"))
    cm = ComputeMarket(ledger, deployment.address("ComputeMarket"), compile_contract("compute_market", cache_dir).abi)
    try:
        serves, owner = cm.model_market_address(), cm.owner()
    except TransactionError:  # a ComputeMarket from before serving jobs
        return deployment
    if serves is None and owner == account.address:
        cm.set_model_market(account, deployment.address("ModelMarket"))
    return deployment


def _add_market(ledger: Ledger, account: LocalAccount, deployment: Deployment, name: str, source: str,
                args: bytes, cache_dir: Path | None) -> Deployment:
    compiled = compile_contract(source, cache_dir)
    receipt = ledger.transact(account, data=compiled.bytecode + args, gas=None)
    address = receipt.get("contractAddress")
    if not address:
        raise ChainError("deployment transaction created no contract")
    deployment.contracts[name] = {
        "address": address,
        "block": int(receipt["blockNumber"]),
        "tx": receipt["transactionHash"].to_0x_hex(),
        "source_sha256": compiled.source_sha256,
    }
    deployment.source_hashes = source_hashes()
    return deployment
