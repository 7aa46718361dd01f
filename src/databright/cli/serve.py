"""``databright serve``: the node (if none runs for this home), the indexer and the web app, in one process."""

from __future__ import annotations

import signal
import socket
import sys
import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer

from databright.cli._common import state, workspace
from databright.errors import ConfigError, DataBrightError

if TYPE_CHECKING:
    from databright.config import Home

__all__ = ["parse_model_servers", "register"]


def _start_node(home: Home, web_port: int | None = None, *, dev: bool = False) -> tuple[Any, Any, str]:
    """Serve the embedded chain on a background thread, as ``databright node`` would;
    the dashboard's own origin (on ``web_port``) may read its answers (CORS), no
    other web page."""
    from databright.chain.node import EmbeddedNode, Genesis, HttpPolicy, serve as serve_node

    if not home.genesis_file.is_file():
        raise ConfigError(f"{home.root} has no embedded chain; pass --rpc-url or run 'databright init'")
    chain = EmbeddedNode(home.chain_db, Genesis.load(home.genesis_file))
    origins = [] if web_port is None else [f"http://127.0.0.1:{web_port}", f"http://localhost:{web_port}"]
    server = serve_node(chain, policy=HttpPolicy.build(cors_origins=origins, dev=dev))
    url = f"http://127.0.0.1:{server.port}"
    home.announce_node(url)
    return chain, server, url


def _indexer(web_state: Any, stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        try:
            web_state.refresh()
        except DataBrightError as exc:  # a node restart or a busy index: try again next tick
            print(f"indexer: {exc}", file=sys.stderr, flush=True)


def _is_http_url(url: str) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def parse_model_servers(values: list[str]) -> dict[int, str]:
    """``['1=http://127.0.0.1:8100']`` -> ``{1: 'http://127.0.0.1:8100'}``; a malformed one is a usage error."""
    servers: dict[int, str] = {}
    for value in values:
        model, _, url = value.partition("=")
        if not model.strip().isdigit() or int(model) < 1 or not _is_http_url(url):
            raise typer.BadParameter(f"{value!r} is not MODEL=http(s)://HOST[:PORT]", param_hint="--model-server")
        servers[int(model)] = url.strip().rstrip("/")
    return servers


def serve(
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1 (0 picks a free one).")] = 8000,
    interval: Annotated[float, typer.Option(help="Seconds between index syncs.")] = 1.0,
    allowed_host: Annotated[list[str] | None, typer.Option(
        help="Another Host the dashboard answers for (host, or host:port), besides localhost, 127.0.0.1 and "
             "[::1]; repeatable. Other Host headers get 400, which stops DNS rebinding.")] = None,
    dev: Annotated[bool, typer.Option("--dev", help="Let the node this command starts answer development methods "
                                                    "(evm_mine, evm_increaseTime): for tests and demos only.")] = False,
    model_server: Annotated[list[str] | None, typer.Option(
        help="MODEL=URL: the prediction server a model page's 'try it' forwards to (repeatable); a model without "
             "one uses the server a 'databright model serve' of this home announces.")] = None,
    coordinator: Annotated[str | None, typer.Option(
        help="URL of the coordinator whose rounds and exposure ledger the compute pages show (its public "
             "/v1/status endpoints); without it they show on-chain facts only.")] = None,
) -> None:
    """Run the web dashboard and REST API (and the embedded node if none runs) until interrupted."""
    import uvicorn

    from databright.config import Home
    from databright.web import DEFAULT_HOSTS, create_app

    servers = parse_model_servers(model_server or [])
    if coordinator is not None and not _is_http_url(coordinator):
        raise typer.BadParameter(f"{coordinator!r} is not http(s)://HOST[:PORT]", param_hint="--coordinator")
    home = Home(state.home_dir)
    home.read_config()
    chain = server = None
    rpc_url = state.rpc_url
    # Bound first: the node's CORS allow-list names the dashboard's port.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without it an answer's body waits for the
    # ACK of its headers (Nagle against delayed ACK), about 40 ms a request.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)  # before the URL is printed: a client that reads it and connects at once is queued
    with workspace() as probe:
        if rpc_url is None and probe.rpc_url is None:
            chain, server, rpc_url = _start_node(home, sock.getsockname()[1], dev=dev)
    state.rpc_url = rpc_url or state.rpc_url
    stop = threading.Event()
    try:
        with workspace() as ws:
            app = create_app(ws, allowed_hosts=[*DEFAULT_HOSTS, *(allowed_host or [])],
                             model_servers=servers, coordinator_url=coordinator and coordinator.strip())
            config = uvicorn.Config(app, log_level="warning", access_log=False)
            web = uvicorn.Server(config)
            indexer = threading.Thread(target=_indexer, args=(app.state.web, stop, interval), daemon=True)
            indexer.start()
            typer.echo(f"databright serve: http://127.0.0.1:{sock.getsockname()[1]}/ (chain {app.state.web.chain_id}"
                       f"{', node ' + rpc_url if rpc_url else ''})")
            sys.stdout.flush()
            # uvicorn catches SIGINT/SIGTERM, shuts down, then re-raises the signal to the
            # handler it found: make that one just stop the indexer, so cleanup below runs.
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            web.run(sockets=[sock])
            stop.set()
            indexer.join(timeout=5)
    finally:
        stop.set()
        if server is not None:
            home.retire_node()
            server.shutdown()
        if chain is not None:
            chain.close()


def register(app: typer.Typer) -> None:
    app.command()(serve)
