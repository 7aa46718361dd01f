"""Starting and stopping the servers tests need, on 127.0.0.1 with free ports."""

from __future__ import annotations

import glob
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def foundry_binary(name: str) -> str:
    found = sorted(glob.glob(str(ROOT / f"node_modules/@foundry-rs/{name}-linux-*/bin/{name}")))
    if not found:
        raise RuntimeError(f"{name} is not installed; run 'bash scripts/dev test' (it runs npm install)")
    return found[0]


def rpc(url: str, method: str, params: list[Any] | None = None, timeout: float = 10.0) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        reply = json.loads(response.read())
    if "error" in reply:
        raise RuntimeError(f"{method}: {reply['error']}")
    return reply["result"]


def wait_for_rpc(url: str, process: subprocess.Popen[bytes] | None = None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering at {url}")
        try:
            rpc(url, "eth_chainId", timeout=1.0)
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answered at {url} within {timeout:.0f}s")


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    if process.poll() is None:
        os.kill(process.pid, sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


class Anvil:
    """A real anvil node on a free loopback port."""

    def __init__(self, chain_id: int = 31337) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [foundry_binary("anvil"), "--host", "127.0.0.1", "--port", str(self.port), "--chain-id",
             str(chain_id), "--silent", "--accounts", "1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_for_rpc(self.url, self.process)

    def fund(self, address: str, wei: int) -> None:
        rpc(self.url, "anvil_setBalance", [address, hex(wei)])

    def close(self) -> None:
        stop(self.process)


class Postgres:
    """A throwaway PostgreSQL cluster on a free loopback port (trust auth)."""

    def __init__(self) -> None:
        import pwd
        import shutil
        import tempfile

        initdb = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None)
        if initdb is None:
            raise RuntimeError("PostgreSQL is not installed; run 'bash scripts/dev test' (it installs it)")
        bindir = Path(initdb).resolve().parent
        self.dir = Path(tempfile.mkdtemp(prefix="databright-pg-"))
        self.port = free_port()
        as_user: Any = None
        if os.geteuid() == 0:  # the server refuses to run as root
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)

            def as_user() -> None:
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)

        data = self.dir / "data"
        subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", "databright", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True, preexec_fn=as_user)
        self.process = subprocess.Popen(
            [str(bindir / "postgres"), "-D", str(data), "-p", str(self.port), "-k", str(self.dir),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=as_user,
        )
        self.url = f"postgresql+psycopg://databright@127.0.0.1:{self.port}/postgres"
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("PostgreSQL did not start") from None
                time.sleep(0.1)
        time.sleep(0.3)

    def close(self) -> None:
        import shutil

        stop(self.process, signal.SIGINT)
        shutil.rmtree(self.dir, ignore_errors=True)
