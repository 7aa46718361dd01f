"""Accounts kept as encrypted keystores (Web3 Secret Storage, version 3).

Each account is one JSON file ``HOME/keystore/<name>.json`` in the format geth,
foundry (``cast wallet``) and MetaMask import. Keys are encrypted with PBKDF2;
they are decrypted only in memory and only for the process that signs.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from databright.errors import AccountError, NotFound

__all__ = ["Keystore", "StoredAccount"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_KDF_ITERATIONS = 262_144


@dataclass(frozen=True)
class StoredAccount:
    name: str
    address: str
    path: Path


class Keystore:
    """The encrypted accounts of one home directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._unlocked: dict[str, LocalAccount] = {}

    def list(self) -> list[StoredAccount]:
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.glob("*.json")):
            try:
                address = json.loads(path.read_text())["address"]
            except (OSError, ValueError, KeyError) as exc:
                raise AccountError(f"unreadable key file {path.name}: {exc}") from exc
            found.append(StoredAccount(path.stem, to_checksum_address("0x" + address.removeprefix("0x")), path))
        return sorted(found, key=_order)

    def get(self, name_or_address: str) -> StoredAccount:
        accounts = self.list()
        wanted = name_or_address.lower()
        for account in accounts:
            if account.name.lower() == wanted or account.address.lower() == wanted:
                return account
        raise NotFound("account", name_or_address, [a.name for a in accounts])

    def new(self, name: str, password: str, private_key: bytes | None = None) -> StoredAccount:
        if not _NAME.match(name):
            raise AccountError(f"invalid account name {name!r}: use letters, digits, '.', '_' or '-'")
        if not password:
            raise AccountError("a password is required to encrypt the key")
        key = private_key if private_key is not None else secrets.token_bytes(32)
        try:
            account = Account.from_key(key)
        except (ValueError, TypeError) as exc:
            raise AccountError(f"invalid private key: {exc}") from exc
        for existing in self.list():
            if existing.name.lower() == name.lower():
                raise AccountError(f"an account named {name!r} already exists")
            if existing.address == account.address:
                raise AccountError(f"{account.address} is already stored as {existing.name!r}")
        keyfile = Account.encrypt(key, password, kdf="pbkdf2", iterations=_KDF_ITERATIONS)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.root / f"{name}.json"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(keyfile, handle)
        tmp.replace(path)
        return StoredAccount(name, account.address, path)

    def import_file(self, name: str, keyfile: Path, password: str) -> StoredAccount:
        """Import a V3 key file (geth, foundry, MetaMask export) under ``name``."""
        try:
            data = json.loads(Path(keyfile).read_text())
            key = Account.decrypt(data, password)
        except FileNotFoundError as exc:
            raise AccountError(f"no such key file: {keyfile}") from exc
        except ValueError as exc:
            raise AccountError(f"cannot decrypt {keyfile}: {exc}") from exc
        return self.new(name, password, bytes(key))

    def unlock(self, name_or_address: str, password: str) -> LocalAccount:
        stored = self.get(name_or_address)
        cached = self._unlocked.get(stored.address)
        if cached is not None:
            return cached
        try:
            key = Account.decrypt(json.loads(stored.path.read_text()), password)
        except ValueError as exc:
            raise AccountError(f"wrong password for account {stored.name!r}") from exc
        account: LocalAccount = Account.from_key(key)
        self._unlocked[stored.address] = account
        return account


def _order(account: StoredAccount) -> tuple[int, str]:
    # dev0, dev1, ..., dev10 in numeric order, then everything else by name
    match = re.match(r"^(.*?)(\d+)$", account.name)
    if match:
        return (0, f"{match.group(1)}{int(match.group(2)):08d}")
    return (1, account.name)
