"""A damaged or foreign chain file is refused and left as it was, never replaced;
``check_chain`` finds damage, ``backup_chain`` copies a running node's chain."""
from __future__ import annotations

import json
import random
import sqlite3
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from databright.chain import _kv
from databright.chain.node import ChainError, EmbeddedNode, Genesis, backup_chain, check_chain, serve

Damage = Callable[[Path], None]


@pytest.fixture
def chain_dir(tmp_path: Path, genesis: Genesis, accounts: list[Any], sign_transfer: Any) -> Path:
    """A closed chain with three mined blocks, its WAL still beside it."""
    node = EmbeddedNode(tmp_path / "good" / "chain.sqlite", genesis)
    for nonce in range(3):
        tx_hash = node.handle("eth_sendRawTransaction", ["0x" + sign_transfer(accounts[0], nonce).hex()])
        node.ledger.wait_mined(bytes.fromhex(tx_hash[2:]), 10)
    assert node.ledger.head().block_number == 3
    node.close()
    return tmp_path / "good"


def _half(path: Path) -> None:
    """Cut the file in half, its log emptied first: the lost pages are nowhere."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_a_checkpoint_cut_short_is_not_taken_for_damage(chain_dir: Path, genesis: Genesis) -> None:
    """Killed half-way through a checkpoint, the file may end before its header says,
    the missing pages still in the log: SQLite recovers them, and so do we."""
    path, cut = chain_dir / "chain.sqlite", chain_dir.parent / "cut" / "chain.sqlite"
    cut.parent.mkdir()
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")  # rewrites every page: all of them are now in the log
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")  # copied into the file, the log kept
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        assert conn.execute("PRAGMA page_count").fetchone()[0] > 4
        # the state a kill after copying three pages leaves behind
        cut.write_bytes(path.read_bytes()[: 3 * page_size])
        Path(f"{cut}-wal").write_bytes(Path(f"{path}-wal").read_bytes())
    finally:
        conn.close()
    with EmbeddedNode(cut, genesis) as node:
        assert node.ledger.head().block_number == 3


def _scribble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    rng = random.Random(7)
    for _ in range(300):
        data[rng.randrange(100, len(data))] = rng.randrange(256)
    path.write_bytes(bytes(data))
    Path(f"{path}-wal").write_bytes(rng.randbytes(40_000))


def _foreign(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    conn.close()


def _only_wal(path: Path) -> None:
    Path(f"{path}-wal").write_bytes(b"\x01" * 4096)
    path.unlink()


DAMAGE: dict[str, Damage] = {
    "empty": lambda p: p.write_bytes(b""),
    "half-truncated": _half,
    "random bytes in file and WAL": _scribble,
    "random bytes in the WAL": lambda p: Path(f"{p}-wal").write_bytes(random.Random(5).randbytes(40_000)),
    "garbage": lambda p: p.write_bytes(random.Random(3).randbytes(100_000)),
    "another program's SQLite file": _foreign,
    "missing, its WAL left": _only_wal,
}


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.endswith(".lock")}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_damaged_chain_is_refused_and_left_alone(chain_dir: Path, genesis: Genesis, how: str) -> None:
    path = chain_dir / "chain.sqlite"
    DAMAGE[how](path)
    before = _files(chain_dir)
    with pytest.raises(ChainError) as refused:
        EmbeddedNode(path, genesis)
    message = str(refused.value)
    assert "\n" not in message and "restore" in message and str(path) in message
    assert _files(chain_dir) == before  # not one byte written, nothing replaced
    with pytest.raises(ChainError):  # and a second try says the same
        EmbeddedNode(path, genesis)


def test_a_good_chain_reopens_with_its_blocks(chain_dir: Path, genesis: Genesis) -> None:
    with EmbeddedNode(chain_dir / "chain.sqlite", genesis) as node:
        assert node.ledger.head().block_number == 3


def test_files_from_before_the_mark_are_verified_then_marked(chain_dir: Path, genesis: Genesis) -> None:
    path = chain_dir / "chain.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE meta")
        conn.execute("PRAGMA application_id = 0")
        conn.execute("PRAGMA user_version = 0")
    conn.close()
    with EmbeddedNode(path, genesis) as node:
        assert node.ledger.head().block_number == 3
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == _kv.APPLICATION_ID
    conn.close()


def test_a_new_chain_appears_whole_or_not_at_all(tmp_path: Path, genesis: Genesis,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "chain.sqlite"

    def crash(built: Path, target: Path) -> None:
        raise OSError("disk full")

    from databright.chain import _evm
    monkeypatch.setattr(_evm, "publish", crash)
    with pytest.raises(OSError):
        EmbeddedNode(path, genesis)
    assert not path.exists()
    monkeypatch.undo()
    with EmbeddedNode(path, genesis) as node:
        assert node.ledger.head().block_number == 0
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no half-built file left


def test_check_passes_a_good_chain(chain_dir: Path, genesis: Genesis) -> None:
    checked = check_chain(chain_dir / "chain.sqlite", genesis)
    assert checked.head == 3


def test_check_finds_a_broken_index(chain_dir: Path, genesis: Genesis) -> None:
    path = chain_dir / "chain.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE blocks SET hash = ? WHERE number = 2", (b"\x11" * 32,))
    conn.close()
    with pytest.raises(ChainError, match="block index disagrees with the chain at block 2"):
        check_chain(path, genesis)


def test_check_finds_damaged_pages(chain_dir: Path, genesis: Genesis) -> None:
    path = chain_dir / "chain.sqlite"
    with EmbeddedNode(path, genesis):  # a clean close checkpoints the WAL into the file
        pass
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(3 * page - 64, len(data), page):  # cell content: the end of every page from the third
        data[offset: offset + 64] = random.Random(offset).randbytes(64)
    path.write_bytes(bytes(data))
    with pytest.raises(ChainError, match="not a usable chain database"):
        check_chain(path, genesis)


def test_check_refuses_another_genesis(chain_dir: Path, genesis: Genesis) -> None:
    other = Genesis(chain_id=genesis.chain_id + 1, alloc={})
    with pytest.raises(ChainError, match="another genesis"):
        check_chain(chain_dir / "chain.sqlite", other)


def test_backup_of_a_running_node(node: EmbeddedNode, genesis: Genesis, accounts: list[Any],
                                  sign_transfer: Any, tmp_path: Path) -> None:
    server = serve(node)
    try:
        url = f"http://127.0.0.1:{server.port}"
        for nonce in range(3):
            _rpc(url, "eth_sendRawTransaction", ["0x" + sign_transfer(accounts[1], nonce).hex()])
        while _rpc(url, "eth_getTransactionCount", [accounts[1].address, "latest"]) != "0x3":
            time.sleep(0.02)
        head = int(_rpc(url, "eth_blockNumber", []), 16)
        copy = backup_chain(node.path, tmp_path / "backup.sqlite", genesis)
        assert copy.head >= head
        with pytest.raises(ChainError, match="already exists"):
            backup_chain(node.path, tmp_path / "backup.sqlite", genesis)
    finally:
        server.shutdown()
        node.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("backup", ".backup"))) == [
        "backup.sqlite"]
    with EmbeddedNode(tmp_path / "backup.sqlite", genesis) as restored:
        assert restored.ledger.head().block_number == copy.head
        # taken after all three were mined: the copy holds them
        assert restored.handle("eth_getTransactionCount", [accounts[1].address, "latest"]) == "0x3"
    assert check_chain(tmp_path / "backup.sqlite", genesis).head_hash == copy.head_hash


def _rpc(url: str, method: str, params: list[Any]) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["result"]


def test_a_chain_without_accounts_reopens(tmp_path: Path) -> None:
    """Its state root is the empty trie's, which has no stored node."""
    empty = Genesis(chain_id=9)
    with EmbeddedNode(tmp_path / "chain.sqlite", empty) as node:
        node.handle("evm_mine", [])
    with EmbeddedNode(tmp_path / "chain.sqlite", empty) as node:
        assert node.ledger.head().block_number == 1
    assert check_chain(tmp_path / "chain.sqlite", empty).head == 1
