"""The embedded Ethereum node: a persistent py-evm chain behind standard JSON-RPC.

Use it in-process (``Web3(EmbeddedProvider(node))``) or serve it over HTTP
(``serve(node)``, or ``run_node`` for the ``databright node`` command); both go
through the same dispatcher, so they answer identically. Serving moves the
writer (pool, miner, commits) into a forked process of its own (``_split``).
"""
from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from web3.providers.base import JSONBaseProvider
from web3.types import RPCEndpoint, RPCResponse

from databright import __version__

from ._evm import ChainError, ChainReader, Genesis, PersistentChain, RpcError
from ._http import HttpPolicy, RpcServer
from ._rpc import Dispatcher
from ._split import RemoteLedger
from ._upkeep import ChainCheck, backup_chain, check_chain

__all__ = ["ChainCheck", "ChainError", "EmbeddedNode", "EmbeddedProvider", "Genesis", "HttpPolicy",
           "RpcError", "RpcServer", "backup_chain", "check_chain", "main", "run_node", "serve"]

CLIENT_VERSION = f"databright/{__version__}"
_SWITCH_INTERVAL_S = 0.0001


class EmbeddedNode:
    """A single-writer chain stored in one SQLite file at ``path``."""

    def __init__(self, path: Path, genesis: Genesis) -> None:
        self.path = Path(path)
        self.genesis = genesis
        self.ledger: ChainReader = PersistentChain(self.path, genesis)
        self.dispatcher = Dispatcher(self.ledger, CLIENT_VERSION)

    def split(self) -> None:
        """Move the writer (pool, miner, commits) into a process of its own; this
        process keeps reads and transaction checks (see ``_split``). Idempotent."""
        ledger = self.ledger
        if not isinstance(ledger, PersistentChain):
            return
        offset = ledger._time_offset
        lock = ledger.close_keeping_lock()
        if lock is None:
            raise ChainError("the node is closed")
        self.ledger = RemoteLedger(self.path, self.genesis, lock, offset)
        self.dispatcher.ledger = self.ledger

    @property
    def chain_id(self) -> int:
        return self.genesis.chain_id

    def handle(self, method: str, params: list[Any] | None = None) -> Any:
        """Run one JSON-RPC method in-process; raises ``RpcError`` as the server would."""
        return self.dispatcher.call(method, list(params or []))

    def close(self) -> None:
        self.ledger.close()

    def __enter__(self) -> EmbeddedNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EmbeddedProvider(JSONBaseProvider):
    """A web3 provider that talks to an ``EmbeddedNode`` without a socket.

    Requests are JSON-encoded and decoded exactly as over HTTP, so web3 sees the
    same responses it would get from ``databright node``.
    """

    def __init__(self, node: EmbeddedNode, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.node = node

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        body = self.encode_rpc_request(method, params)
        response = self.node.dispatcher.handle_bytes(body)
        assert response is not None  # requests from web3 always carry an id
        return self.decode_rpc_response(response)

    def make_batch_request(self, requests: list[tuple[RPCEndpoint, Any]]) -> Any:
        response = self.node.dispatcher.handle_bytes(self.encode_batch_rpc_request(requests))
        decoded = json.loads(response or b"[]")
        if isinstance(decoded, list):
            return sorted(decoded, key=lambda r: r.get("id") or 0)
        return decoded

    def is_connected(self, show_traceback: bool = False) -> bool:
        return True


def serve(node: EmbeddedNode, host: str = "127.0.0.1", port: int = 0,
          policy: HttpPolicy | None = None) -> RpcServer:
    """Serve ``node`` over JSON-RPC/HTTP on a background thread; returns the server.

    ``policy`` says which CORS origins and Host names are accepted and whether the
    development methods (``evm_*``: time travel, mining on demand) are answered;
    by default none, localhost only and no. In-process calls (``EmbeddedProvider``,
    ``node.handle``) come from the process's own code and keep them.

    The writer moves into a process of its own first (``EmbeddedNode.split``),
    before any server thread exists, so request handling and block execution run
    on two cores. Also shortens the GIL switch interval to 0.1 ms: the miner is
    CPU-bound, and with the default 5 ms every HTTP request waits up to 5 ms per
    GIL hand-off while a block is built.
    """
    sys.setswitchinterval(min(sys.getswitchinterval(), _SWITCH_INTERVAL_S))
    policy = policy or HttpPolicy()
    node.split()
    dispatcher = Dispatcher(node.ledger, CLIENT_VERSION, dev=policy.dev)
    return RpcServer(dispatcher, host, port, policy).start()


def run_node(db_path: Path, genesis_path: Path, host: str = "127.0.0.1",
             port: int = 8545, policy: HttpPolicy | None = None) -> None:
    """Open (or create) the chain, serve it and block until SIGINT/SIGTERM."""
    genesis = Genesis.load(genesis_path)
    node = EmbeddedNode(db_path, genesis)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server = serve(node, host, port, policy)
        print(f"databright node: chain {genesis.chain_id} at {server.url}", flush=True)
        stop.wait()
        server.shutdown()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        node.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m databright.chain.node DB GENESIS [--host H] [--port P] [--dev]
    [--cors-origin O]... [--allowed-host H]...``."""
    import argparse

    parser = argparse.ArgumentParser(prog="databright node")
    parser.add_argument("db", type=Path)
    parser.add_argument("genesis", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8545)
    parser.add_argument("--dev", action="store_true")
    parser.add_argument("--cors-origin", action="append", default=[])
    parser.add_argument("--allowed-host", action="append", default=[])
    args = parser.parse_args(argv)
    policy = HttpPolicy.build(args.cors_origin, args.allowed_host, args.dev)
    try:
        run_node(args.db, args.genesis, args.host, args.port, policy)
    except ChainError as exc:
        print(f"error: {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
