"""Accounts kept as encrypted keystores (Web3 Secret Storage, version 3).

Each account is one JSON file ``HOME/keystore/<name>.json`` in the format geth,
foundry (``cast wallet``) and MetaMask import. Keys are encrypted with PBKDF2;
they are decrypted only in memory and only for the process that signs.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from eth_utils.address import to_checksum_address

from databright.errors import AccountError, NotFound

if TYPE_CHECKING:  # eth_account takes about a second to import: only commands that sign load it
    from eth_account.signers.local import LocalAccount

__all__ = ["Keystore", "StoredAccount"]

_log = logging.getLogger(__name__)
_warned: set[Path] = set()  # damaged key files already reported by this process
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
        self.damaged: dict[str, str] = {}  # account name -> why its key file cannot be read

    def list(self) -> list[StoredAccount]:
        """The readable accounts. A damaged key file (truncated, not JSON, no address)
        is skipped with a one-line warning, so it fails only the commands that use it."""
        found = self._scan()
        self._warn()
        return found

    def _scan(self) -> builtins.list[StoredAccount]:  # "list" in this class is the method
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.glob("*.json")):
            try:
                address = json.loads(path.read_text())["address"]
                checksummed = to_checksum_address("0x" + str(address).removeprefix("0x"))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self.damaged[path.stem] = _damage(exc)
                continue
            found.append(StoredAccount(path.stem, checksummed, path))
        return sorted(found, key=_order)

    def _warn(self) -> None:
        """Report each damaged key file once per process (one that fails the command is not warned of)."""
        for name, reason in self.damaged.items():
            path = self.root / f"{name}.json"
            if path not in _warned:
                _warned.add(path)
                _log.warning("warning: skipping damaged key file %s: %s", path, reason)

    def _damaged(self, wanted: str) -> None:
        for name, reason in self.damaged.items():
            if name.lower() == wanted:
                raise AccountError(f"the key file of account {name!r} is damaged ({reason}): "
                                   f"restore {self.root / (name + '.json')} from a backup or import the key again")

    def get(self, name_or_address: str) -> StoredAccount:
        accounts = self._scan()
        wanted = name_or_address.lower()
        self._damaged(wanted)
        self._warn()
        for account in accounts:
            if account.name.lower() == wanted or account.address.lower() == wanted:
                return account
        raise NotFound("account", name_or_address, [a.name for a in accounts])

    def new(self, name: str, password: str, private_key: bytes | None = None) -> StoredAccount:
        if not _NAME.match(name):
            raise AccountError(f"invalid account name {name!r}: use letters, digits, '.', '_' or '-'")
        if not password:
            raise AccountError("a password is required to encrypt the key")
        from eth_account import Account

        key = private_key if private_key is not None else secrets.token_bytes(32)
        try:
            account = Account.from_key(key)
        except (ValueError, TypeError) as exc:
            raise AccountError(f"invalid private key: {exc}") from exc
        existing_accounts = self._scan()
        if name.lower() in {n.lower() for n in self.damaged}:
            raise AccountError(f"a damaged key file for {name!r} is in the way; move it aside first")
        self._warn()
        for existing in existing_accounts:
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
        from eth_account import Account

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
        from eth_account import Account

        try:
            key = Account.decrypt(json.loads(stored.path.read_text()), password)
        except ValueError as exc:
            raise AccountError(f"wrong password for account {stored.name!r}") from exc
        account: LocalAccount = Account.from_key(key)
        self._unlocked[stored.address] = account
        return account


def _damage(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON (truncated?) at byte {exc.pos}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    if isinstance(exc, KeyError):
        return "no address field"
    return f"bad address ({exc})"


def _order(account: StoredAccount) -> tuple[int, str]:
    # dev0, dev1, ..., dev10 in numeric order, then everything else by name
    match = re.match(r"^(.*?)(\d+)$", account.name)
    if match:
        return (0, f"{match.group(1)}{int(match.group(2)):08d}")
    return (1, account.name)
