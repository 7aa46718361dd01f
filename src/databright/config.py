"""Settings and the layout of the DataBright home directory.

Everything DataBright keeps lives under one home directory (``--home`` or
``DATABRIGHT_HOME``, default ``~/.databright``)::

    HOME/
      config.json          chain choice and defaults written by ``databright init``
      keystore/            encrypted account keys (eth-account V3 JSON)
      chain/               the embedded chain: genesis.json, chain.sqlite, node.json
      deployments/         one manifest per chain id: <chain_id>.json
      blobs/               the local content-addressed blob store
      index.sqlite         the off-chain index (or DATABRIGHT_INDEX_URL)
      cache/               compiled contracts
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from databright.errors import ConfigError

__all__ = ["Home", "Settings", "get_settings"]

DEFAULT_HOME = Path("~/.databright").expanduser()


class Settings(BaseSettings):
    """Process-wide settings, read from ``DATABRIGHT_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="DATABRIGHT_", extra="ignore")

    home: Path = Field(default=DEFAULT_HOME)
    rpc_url: str | None = None
    account: str | None = None
    password: str | None = None
    store_url: str | None = None
    index_url: str | None = None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, created once on first use."""
    return Settings()


class Home:
    """Paths inside one DataBright home directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()

    @property
    def config_file(self) -> Path:
        return self.root / "config.json"

    @property
    def keystore(self) -> Path:
        return self.root / "keystore"

    @property
    def chain_dir(self) -> Path:
        return self.root / "chain"

    @property
    def genesis_file(self) -> Path:
        return self.chain_dir / "genesis.json"

    @property
    def chain_db(self) -> Path:
        return self.chain_dir / "chain.sqlite"

    @property
    def node_file(self) -> Path:
        return self.chain_dir / "node.json"

    @property
    def deployments(self) -> Path:
        return self.root / "deployments"

    @property
    def blobs(self) -> Path:
        return self.root / "blobs"

    @property
    def index_db(self) -> Path:
        return self.root / "index.sqlite"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def exists(self) -> bool:
        return self.config_file.is_file()

    def announce_node(self, url: str) -> None:
        """Tell commands of this home that a node serves its chain at ``url``."""
        self.node_file.write_text(json.dumps({"url": url, "pid": os.getpid()}))

    def retire_node(self) -> None:
        self.node_file.unlink(missing_ok=True)

    def read_config(self) -> dict[str, object]:
        if not self.exists():
            raise ConfigError(f"{self.root} is not a DataBright home; run 'databright init' first")
        try:
            data = json.loads(self.config_file.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {self.config_file}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{self.config_file} is not a JSON object")
        return data

    def write_config(self, data: dict[str, object]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.config_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.config_file)
