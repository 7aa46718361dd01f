"""A coordinator and N logical workers on this machine, for ``compute up`` and ``train --on-market --workers``.

The coordinator's key is the home account: on the embedded default that account
owns ComputeMarket, so it allow-lists its own software measurement (labelled as
such: trust then rests on whoever runs this machine) and registers itself. The
logical workers' keys are derived from the home account's key and their index,
so restarting finds the same staked workers and their earnings stay reachable.
Each worker is staked on chain from the home account.

Chain calls happen only in :meth:`LocalCompute.poll`, on the caller's thread;
the HTTP server and the workers run on their own threads and touch only the
coordinator database, the blob store and loopback HTTP.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from databright.errors import ComputeError, DataBrightError, InputError

__all__ = ["LocalCompute", "worker_keys"]

_WORKER_TAG = b"databright.compute.logical-worker"
# Each logical worker gets its stake plus this much for its own registration gas.
_GAS_ALLOWANCE = 10**16


def worker_keys(home_key: bytes, count: int) -> list[bytes]:
    """The logical workers' private keys: recomputable by whoever holds the home key."""
    return [hashlib.sha256(_WORKER_TAG + home_key + i.to_bytes(4, "big")).digest() for i in range(count)]


def _perturbed(state: bytes) -> bytes:
    from databright.ml import load_checkpoint, save_checkpoint

    tensors = load_checkpoint(state)
    first = sorted(tensors)[0]
    tensors[first] = tensors[first] + 1e-3
    return save_checkpoint(tensors)


def _perturbing_worker() -> type:
    from databright.compute._worker import Worker

    class Perturbing(Worker):
        """Signs and sends a slightly changed result for every task: a cheat only redundancy can catch."""

        def _call(self, method: str, path: str, body: bytes = b"", extra: Any = None) -> Any:
            if path.endswith("/result"):
                body = _perturbed(body)
            return super()._call(method, path, body, extra)

    return Perturbing


class LocalCompute:
    """Coordinator over SQLite in the home plus ``workers`` logical workers on loopback."""

    def __init__(self, ws: Any, workers: int, *, port: int = 0, min_fee: int = 0, lease_s: float = 120.0,
                 host: str = "127.0.0.1", operator: LocalAccount | None = None, byzantine: int = 0) -> None:
        if workers < 1:
            raise InputError("--workers must be at least 1")
        self.ws = ws
        self.operator = operator
        # The first ``byzantine`` workers return perturbed weights (the demo's cheat, caught by redundancy).
        self.byzantine = byzantine
        self.count = workers
        self.port = port
        self.host = host
        self.min_fee = min_fee
        self.lease_s = lease_s
        self.url = ""
        self.addresses: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: Any = None
        self._failure: BaseException | None = None

    # -- on chain -------------------------------------------------------------

    def _register_coordinator(self, owner: LocalAccount) -> None:
        from databright.compute import SoftwareAttestation, report_data_for

        cm = self.ws.compute_market
        if cm.is_coordinator(owner.address):
            return
        if cm.owner().lower() != owner.address.lower():
            raise InputError(f"{owner.address} is not an allow-listed coordinator and does not own ComputeMarket; "
                             f"its owner {cm.owner()} must register it")
        attestation = SoftwareAttestation(owner)
        measurement = attestation.measurement()
        if not cm.measurement_allowed(measurement):
            cm.allow_measurement(owner, measurement)
        evidence = self.ws.store.put(attestation.quote(report_data_for(owner.address)))
        cm.register_coordinator(owner, owner.address, measurement, str(evidence))

    def _stake_workers(self, owner: LocalAccount, keys: list[bytes]) -> None:
        from databright.cli._common import require_funds

        cm = self.ws.compute_market
        stake = cm.min_stake()
        pending = [Account.from_key(k) for k in keys if not cm.worker(Account.from_key(k).address).registered]
        require_funds(self.ws, owner.address, len(pending) * (stake + _GAS_ALLOWANCE), "the workers' stakes")
        for account in pending:
            self.ws.ledger.transact(owner, to=account.address, value=stake + _GAS_ALLOWANCE)
            cm.register_worker(account, self.min_fee, stake)

    # -- threads --------------------------------------------------------------

    def start(self) -> LocalCompute:
        from databright.compute._app import coordinator_app
        from databright.compute._market import MarketLink

        owner, keys, domain = self._prepare()
        self.link = MarketLink(self.coordinator, self.ws.compute_market, owner, self._items)
        self._serve(coordinator_app(self.coordinator), keys, domain)
        return self

    def _prepare(self) -> tuple[LocalAccount, list[bytes], Any]:
        """Register the coordinator and stake the workers on chain; open the coordinator's database."""
        from databright.compute import Coordinator, RequestDomain, connect

        owner = self.operator or self.ws.signer()
        cm = self.ws.compute_market
        self._register_coordinator(owner)
        keys = worker_keys(bytes(owner.key), self.count)
        self._stake_workers(owner, keys)
        self.addresses = [Account.from_key(k).address for k in keys]
        domain = RequestDomain(self.ws.ledger.chain_id, cm.address)
        self.engine = connect(f"sqlite:///{self.ws.home.root / 'coordinator.sqlite'}")
        self.coordinator = Coordinator(self.engine, self.ws.store, domain, lease_s=self.lease_s, key=bytes(owner.key))
        return owner, keys, domain

    def _serve(self, app: Any, keys: list[bytes], domain: Any) -> None:
        """Listen with ``app`` on loopback and start the workers once it answers."""
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms Nagle wait per answer
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise InputError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from exc
        self.url = f"http://{self.host}:{sock.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self._spawn(lambda: self._server.run(sockets=[sock]))
        self._spawn(lambda: self._work(domain, keys))

    def _spawn(self, target: Any) -> None:
        def guarded() -> None:
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - reported on the caller's thread by poll()
                self._failure = exc

        thread = threading.Thread(target=guarded, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _work(self, domain: Any, keys: list[bytes]) -> None:
        import httpx

        from databright.compute import RequestSigner, fingerprint
        from databright.compute._worker import Worker, run_workers

        _Perturbing = _perturbing_worker()  # noqa: N806 - a class

        while not self._server.started and not self._stop.is_set():
            self._stop.wait(0.05)
        env = fingerprint().as_dict()
        with httpx.Client(base_url=self.url, timeout=60.0) as client:
            workers = [(_Perturbing if i < self.byzantine else Worker)(client, RequestSigner(domain, k), env,
                                                                        self.min_fee) for i, k in enumerate(keys)]
            run_workers(workers, idle_s=0.2, stop=self._stop)

    def _items(self, dataset_id: int) -> tuple[list[tuple[str, str]], str | None]:
        from databright.cli.compute import dataset_items

        return dataset_items(self.ws, dataset_id)

    # -- the caller's loop ------------------------------------------------------

    def poll(self) -> None:
        """Advance rounds, take new jobs and settle finished ones; raise what a thread died of."""
        if self._failure is not None:
            failure = self._failure
            if isinstance(failure, DataBrightError):
                raise failure
            raise ComputeError(f"local compute stopped: {failure}")
        self.coordinator.tick()
        self.link.poll()

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.should_exit = True
        for thread in self._threads:
            thread.join(timeout=30)
        if hasattr(self, "engine"):
            self.engine.dispose()

    def __enter__(self) -> LocalCompute:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
