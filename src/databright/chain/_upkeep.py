"""Looking after a chain file: a full check and an online backup.

Both only read the chain, on their own read-only connections, so they work while
``databright node`` runs (WAL: readers see the last committed block and never
block the writer).

* ``check_chain``: SQLite's ``integrity_check`` (every page and index), our mark
  and genesis, then the chain links: every canonical block's parent hash is the
  block before it, the JSON-RPC index holds the same hashes, and the head's
  state root is present.
* ``backup_chain``: SQLite's backup API copies one consistent snapshot into a
  new file (never over an existing one), which is then checked like the original.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from eth.constants import BLANK_ROOT_HASH
from eth.db.atomic import AtomicDB
from eth_typing import BlockNumber

from databright.errors import ChainError

from ._evm import Genesis, genesis_block_hash, _chain_class
from ._kv import ReadOnlyKV, connect_read_only, damaged, publish, verify_file

__all__ = ["ChainCheck", "backup_chain", "check_chain"]


@dataclass(frozen=True)
class ChainCheck:
    """What a passed check saw."""

    path: Path
    head: int
    head_hash: bytes


def check_chain(path: Path, genesis: Genesis) -> ChainCheck:
    """Check the chain file at ``path`` fully; raises ``ChainError`` with the first problem."""
    path = Path(path)
    if not path.exists():
        raise ChainError(f"{path} does not exist")
    verify_file(path)
    conn = connect_read_only(path)
    try:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check(5)")]
        if problems != ["ok"]:
            raise damaged(path, f"integrity check: {'; '.join(problems)}")
        row = conn.execute("SELECT value FROM meta WHERE key = 'genesis_hash'").fetchone()
        expected = genesis_block_hash(genesis)
        if row is not None and bytes(row[0]) != expected:
            raise ChainError(f"{path} holds a chain with another genesis than chain id {genesis.chain_id}'s")
        indexed = dict(conn.execute("SELECT number, hash FROM blocks"))
    except sqlite3.Error as exc:
        raise damaged(path, exc) from None
    finally:
        conn.close()
    return _check_links(path, genesis, expected, indexed)


def _check_links(path: Path, genesis: Genesis, expected: bytes,
                 indexed: dict[int, bytes]) -> ChainCheck:
    kv = ReadOnlyKV(path)
    chain = _chain_class(genesis.chain_id)(AtomicDB(kv))
    try:
        head = chain.get_canonical_head()
        parent = None
        for number in range(head.block_number + 1):
            header = chain.get_canonical_block_header_by_number(BlockNumber(number))
            if number == 0 and header.hash != expected:
                raise ChainError(f"{path} holds a chain with another genesis than chain id "
                                 f"{genesis.chain_id}'s")
            if parent is not None and header.parent_hash != parent:
                raise damaged(path, f"block {number}'s parent hash is not block {number - 1}'s hash")
            if bytes(indexed.get(number, b"")) != header.hash:
                raise damaged(path, f"the block index disagrees with the chain at block {number}")
            parent = header.hash
        if len(indexed) != head.block_number + 1:
            raise damaged(path, f"the block index has {len(indexed)} blocks, the chain "
                          f"{head.block_number + 1}")
        if head.state_root != BLANK_ROOT_HASH and not kv.exists(head.state_root):
            raise damaged(path, f"the state of head block {head.block_number} is missing")
    except ChainError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a damaged record raises
        raise damaged(path, f"{type(exc).__name__}: {exc}") from None
    return ChainCheck(path, head.block_number, head.hash)


def backup_chain(path: Path, dest: Path, genesis: Genesis) -> ChainCheck:
    """Copy the chain at ``path`` to the new file ``dest`` and check the copy."""
    path, dest = Path(path), Path(dest)
    if not path.exists():
        raise ChainError(f"{path} does not exist")
    if dest.exists():
        raise ChainError(f"{dest} already exists; give a new file name for the backup")
    if not dest.parent.is_dir():
        raise ChainError(f"{dest.parent} is not a directory")
    verify_file(path)
    partial = dest.with_name(f".{dest.name}.partial")
    partial.unlink(missing_ok=True)
    source = connect_read_only(path)
    target = sqlite3.connect(partial, isolation_level=None)
    try:
        source.backup(target)  # one step: a single read snapshot, consistent while the node writes
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise damaged(path, exc) from None
    finally:
        target.close()
        source.close()
    try:
        publish(partial, dest)
    except FileExistsError:
        raise ChainError(f"{dest} already exists; give a new file name for the backup") from None
    return check_chain(dest, genesis)
