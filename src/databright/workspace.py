"""One user's view of DataBright: a home directory bound to a chain.

A ``Workspace`` resolves, lazily and once, everything a command needs: the
ledger connection (``--rpc-url``, the running ``databright node`` of this home,
or the embedded chain opened in-process), the DataMarket deployment, the blob
store, the off-chain index and the signing account.

Lazily also in what it imports: a read that finds the index current talks to
the node through ``head`` (plain JSON-RPC) and never loads web3, eth_account or
the contract clients; ``ledger``, ``market`` and ``signer`` load them.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic_core

from databright.chain._head import ChainHead, MarketViews, RpcHead
from databright.config import Home
from databright.errors import AccountError, ChainError, ConfigError, DataBrightError
from databright.storage import BlobStore, Manifest, cid_from_digest, open_store

if TYPE_CHECKING:  # web3 and SQLAlchemy: loaded by the commands that need them
    from eth_account.signers.local import LocalAccount

    from databright.chain import DataMarket, Deployment, Keystore, Ledger
    from databright.chain.computemarket import ComputeMarket
    from databright.chain.modelmarket import ModelMarket
    from databright.index import Index, ItemRecord, Loaders

__all__ = ["DEV_PASSWORD", "Workspace"]

# The embedded chain's dev accounts are test money only; like Hardhat's and
# anvil's well-known keys, they are encrypted with a published default password
# unless ``databright init --password`` chose another.
DEV_PASSWORD = "databright"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Workspace:
    def __init__(
        self,
        home: Path,
        *,
        rpc_url: str | None = None,
        account: str | None = None,
        password: str | None = None,
        store_url: str | None = None,
        index_url: str | None = None,
    ) -> None:
        self.home = Home(home)
        self._rpc_url = rpc_url
        self._account = account
        self._password = password
        self._store_url = store_url
        self._index_url = index_url
        self._node: Any = None

    # -- configuration ------------------------------------------------------

    @cached_property
    def config(self) -> dict[str, Any]:
        return self.home.read_config()

    @cached_property
    def keystore(self) -> Keystore:
        from databright.chain.accounts import Keystore

        return Keystore(self.home.keystore)

    @property
    def rpc_url(self) -> str | None:
        """The node this workspace talks to, or None for the in-process chain."""
        if self._rpc_url:
            return self._rpc_url
        configured = self.config.get("rpc_url")
        if configured:
            return str(configured)
        return self.running_node_url()

    def running_node_url(self) -> str | None:
        """The URL of a ``databright node`` serving this home, if one runs."""
        try:
            info = json.loads(self.home.node_file.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(info, dict) or not _pid_alive(int(info.get("pid", 0))):
            return None
        return str(info["url"])

    # -- ledger ---------------------------------------------------------------

    @cached_property
    def head(self) -> ChainHead:
        """The chain as reads see it: over plain JSON-RPC when a node serves it, else the ledger."""
        url = self.rpc_url
        return RpcHead(url) if url is not None else self.ledger

    @property
    def chain_id(self) -> int:
        return self.head.chain_id

    @cached_property
    def ledger(self) -> Ledger:
        from web3 import Web3

        from databright.chain import Ledger

        url = self.rpc_url
        if url is not None:
            w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60}))
            try:
                return Ledger(w3)
            except ChainError as exc:
                raise ChainError(f"cannot reach the node at {url}: {exc}") from exc
        return Ledger(Web3(self._open_embedded()))

    def _open_embedded(self) -> Any:
        from databright.chain.node import EmbeddedNode, EmbeddedProvider, Genesis

        if not self.home.genesis_file.is_file():
            raise ConfigError(f"{self.home.root} has no embedded chain; run 'databright init' or pass --rpc-url")
        genesis = Genesis.load(self.home.genesis_file)
        manifest = self.home.deployments / f"{genesis.chain_id}.json"
        if not self.home.chain_db.exists() and manifest.is_file():
            # A chain that had contracts is gone: starting a new one would hide the loss.
            raise ChainError(
                f"{self.home.chain_db} is missing but DataMarket was deployed on chain {genesis.chain_id}; "
                f"restore the chain from a backup, or remove {manifest} to start a new chain")
        self._node = EmbeddedNode(self.home.chain_db, genesis)
        return EmbeddedProvider(self._node)

    @cached_property
    def deployment(self) -> Deployment:
        from databright.chain.deploy import load_deployment

        deployment = load_deployment(self.home.deployments, self.chain_id)
        if deployment is None:
            raise ConfigError(f"DataMarket is not deployed on chain {self.chain_id}; run 'databright deploy'")
        address = deployment.address("DataMarket")
        if not self.head.code(address):
            raise ConfigError(
                f"no contract at {address} on chain {self.chain_id} (was the node reset?); "
                "run 'databright deploy'"
            )
        return deployment

    def contract_address(self, name: str, deploy_command: str) -> str:
        """Where contract ``name`` lives, or why it cannot be used (``deploy_command`` deploys it)."""
        if name not in self.deployment.contracts:
            raise ConfigError(f"{name} is not deployed on chain {self.chain_id}; run '{deploy_command}'")
        return self.deployment.address(name)

    @cached_property
    def market(self) -> DataMarket:
        from databright.chain import DataMarket, compile_contract

        compiled = compile_contract("data_market", self.home.cache)
        return DataMarket(self.ledger, self.deployment.address("DataMarket"), compiled.abi)

    @cached_property
    def model_market(self) -> ModelMarket:
        from databright.chain import ModelMarket, compile_contract

        address = self.contract_address("ModelMarket", "databright model deploy")
        return ModelMarket(self.ledger, address, compile_contract("model_market", self.home.cache).abi)

    @cached_property
    def compute_market(self) -> ComputeMarket:
        from databright.chain import ComputeMarket, compile_contract

        address = self.contract_address("ComputeMarket", "databright compute deploy")
        return ComputeMarket(self.ledger, address, compile_contract("compute_market", self.home.cache).abi)

    @cached_property
    def views(self) -> MarketViews:
        """DataMarket's views that reads show, with one eth_call each through ``head``: a read
        command needs no contract client (``market``) for them."""
        return MarketViews(self.head, self.deployment.address("DataMarket"))

    # -- accounts -------------------------------------------------------------

    @property
    def account_name(self) -> str:
        name = self._account or self.config.get("default_account")
        if not name:
            raise AccountError("no account given; pass --account NAME or create one with 'databright account new'")
        return str(name)

    def signer(self, name: str | None = None) -> LocalAccount:
        name = name or self.account_name
        try:
            return self.keystore.unlock(name, self._password or DEV_PASSWORD)
        except AccountError as exc:
            if not str(exc).startswith("wrong password"):
                raise
            raise AccountError(f"{exc}; pass --password-file or set DATABRIGHT_PASSWORD") from exc

    def address_of(self, name_or_address: str) -> str:
        from eth_utils.address import is_address, to_checksum_address  # what Web3.is_address is

        if is_address(name_or_address):
            return to_checksum_address(name_or_address)
        return self.keystore.get(name_or_address).address

    # -- storage and index ---------------------------------------------------------

    @cached_property
    def store(self) -> BlobStore:
        url = self._store_url or self.config.get("store_url") or str(self.home.blobs)
        return open_store(str(url))

    @cached_property
    def index(self) -> Index:
        from databright.index import Index

        url = self._index_url or self.config.get("index_url")
        if not url:
            url = f"sqlite:///{self.home.root / f'index-{self.chain_id}.sqlite'}"
        index = Index(str(url))
        contract = self.deployment.contracts["DataMarket"]
        index.bind(
            self.chain_id,
            str(contract["address"]),
            int(contract["block"]),
            deploy_tx=str(contract.get("tx", "")),
            ledger=self.head,
            model_market=self.deployment.contracts.get("ModelMarket", {}).get("address"),
        )
        return index

    def loaders(self) -> Loaders:
        from databright.index import Loaders

        return Loaders(cid_from_digest, self.manifest_items, self._load_json)

    def manifest_items(self, cid: str) -> list[ItemRecord] | None:
        """The items of manifest ``cid``, or None when it is not in the store or not a manifest."""
        try:
            manifest = Manifest.from_bytes(self.store.get(cid))
        except DataBrightError:
            return None
        return [(str(item.cid), item.label, dict(item.metadata)) for item in manifest]

    def _load_json(self, cid: str) -> dict[str, Any] | None:
        try:
            # Anyone's upload: parsed with a nesting limit, since json.loads under py-evm's raised
            # recursion limit would overflow the C stack on a deeply nested blob.
            data = pydantic_core.from_json(self.store.get(cid), allow_inf_nan=False)
        except (DataBrightError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def sync(self) -> int:
        """Bring the index up to the chain head; returns the events applied.

        An index already at the head (``Index.caught_up``) only retries its missing blobs:
        no contract client is made, so a read of a current index never imports web3."""
        if self.index.caught_up(self.head):
            self.index.retry_blobs(self.loaders())
            return 0
        contracts = self.deployment.contracts
        return self.index.sync(self.market, self.loaders(),
                               models=self.model_market if "ModelMarket" in contracts else None,
                               compute=self.compute_market if "ComputeMarket" in contracts else None)

    def close(self) -> None:
        if "index" in self.__dict__:
            self.index.close()
        if self._node is not None:
            self._node.close()
            self._node = None
