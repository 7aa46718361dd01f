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
from typing import Any

from eth_account.signers.local import LocalAccount

from databright.chain._compile import compile_contract, source_hashes
from databright.chain._ledger import Ledger
from databright.errors import ChainError, ConfigError

__all__ = ["Deployment", "add_compute_market", "add_model_market", "deploy", "load_deployment"]


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
    """Deploy ModelMarket next to the deployment's DataMarket and add it to the manifest."""
    from eth_abi.abi import encode

    from databright.chain.modelmarket import CHALLENGE_PERIOD

    args = encode(["address", "uint256"], [deployment.address("DataMarket"), CHALLENGE_PERIOD])
    return _add_market(ledger, account, deployment, "ModelMarket", "model_market", args, cache_dir)


def add_compute_market(
    ledger: Ledger, account: LocalAccount, deployment: Deployment, cache_dir: Path | None = None
) -> Deployment:
    """Deploy ComputeMarket next to the deployment's DataMarket and add it to the manifest.

    The deploying account owns it and so governs its measurement allow-list.
    """
    from eth_abi.abi import encode

    from databright.chain.computemarket import MIN_STAKE, UNBONDING_DELAY

    args = encode(["address", "uint256", "uint256"], [deployment.address("DataMarket"), MIN_STAKE, UNBONDING_DELAY])
    deployment = _add_market(ledger, account, deployment, "ComputeMarket", "compute_market", args, cache_dir)
    if "ModelMarket" in deployment.contracts:  # serving jobs serve its models
        from databright.chain.computemarket import ComputeMarket

        abi = compile_contract("compute_market", cache_dir).abi
        ComputeMarket(ledger, deployment.address("ComputeMarket"), abi).set_model_market(
            account, deployment.address("ModelMarket"))
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
