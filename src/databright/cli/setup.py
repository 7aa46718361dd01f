"""``databright init``, ``node`` and ``deploy``: a home, a chain and the contracts."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from web3 import Web3

from databright.chain import Keystore, deploy, load_deployment
from databright.cli._common import emit, parse_wei, state, workspace
from databright.config import Home
from databright.errors import ConfigError, InputError
from databright.workspace import DEV_PASSWORD

__all__ = ["register"]

DEFAULT_CHAIN_ID = 31415


def init(
    accounts: Annotated[int, typer.Option(help="Dev accounts to create and fund (embedded chain).")] = 10,
    chain_id: Annotated[int, typer.Option(help="Chain id of the embedded chain.")] = DEFAULT_CHAIN_ID,
    balance: Annotated[str, typer.Option(help="Genesis balance of each dev account.")] = "10000ether",
) -> None:
    """Create a home directory: config, dev accounts and the embedded chain's genesis."""
    from databright.chain.node import Genesis

    home = Home(state.home_dir)
    if home.exists():
        raise ConfigError(f"{home.root} is already a DataBright home")
    if not 0 <= accounts <= 100:
        raise InputError("--accounts must be between 0 and 100")
    if not 0 < chain_id < 2**53:
        raise InputError("--chain-id must be a positive integer below 2**53")
    wei = parse_wei(balance)
    password = state.password() or DEV_PASSWORD
    keystore = Keystore(home.keystore)
    created = [keystore.new(f"dev{i}", password) for i in range(accounts)]
    config: dict[str, object] = {"version": 1, "default_account": "dev0" if created else ""}
    if state.rpc_url:
        config["rpc_url"] = state.rpc_url
    else:
        genesis = Genesis(chain_id=chain_id, alloc={a.address: wei for a in created})
        home.chain_dir.mkdir(parents=True, exist_ok=True)
        genesis.save(home.genesis_file)
    home.write_config(config)
    emit(
        {"home": str(home.root), "accounts": [{"name": a.name, "address": a.address} for a in created],
         "chain": state.rpc_url or f"embedded (chain id {chain_id})"},
        f"Initialised {home.root} with {len(created)} dev accounts"
        + ("" if state.rpc_url else f" on the embedded chain (chain id {chain_id})"),
    )


def node(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0 picks a free one).")] = 8545,
    dev: Annotated[bool, typer.Option("--dev", help="Answer development methods (evm_mine, evm_increaseTime, ...).")] = False,
    cors_origin: Annotated[list[str] | None, typer.Option(help="Web origin allowed to read answers (CORS); repeatable, '*' for any.")] = None,
    allowed_host: Annotated[list[str] | None, typer.Option(help="Host name accepted besides localhost and IP addresses; repeatable, '*' for any.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Check the chain database (pages, block links) and exit.")] = False,
    backup: Annotated[Path | None, typer.Option(help="Copy the chain database to this new file and exit (works while a node runs).")] = None,
) -> None:
    """Serve the embedded chain over Ethereum JSON-RPC until interrupted."""
    from databright.chain.node import EmbeddedNode, Genesis, HttpPolicy, backup_chain, check_chain, serve

    home = Home(state.home_dir)
    home.read_config()
    if not home.genesis_file.is_file():
        raise ConfigError(f"{home.root} has no embedded chain (it was initialised for an RPC node)")
    if check or backup is not None:
        genesis = Genesis.load(home.genesis_file)
        done = backup_chain(home.chain_db, backup, genesis) if backup is not None else check_chain(home.chain_db, genesis)
        emit({"path": str(done.path), "head": done.head, "head_hash": "0x" + done.head_hash.hex(), "ok": True},
             f"{done.path}: ok, head block {done.head} (0x{done.head_hash.hex()})")
        return
    chain = EmbeddedNode(home.chain_db, Genesis.load(home.genesis_file))
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server = serve(chain, host=host, port=port, policy=HttpPolicy.build(cors_origin or (), allowed_host or (), dev))
        url = server.url
        home.announce_node(url)
        typer.echo(f"databright node: chain {chain.chain_id} at {url}")
        sys.stdout.flush()
        try:
            stop.wait()
        finally:
            home.retire_node()
            server.shutdown()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        chain.close()


def deploy_cmd(
    force: Annotated[bool, typer.Option("--force", help="Deploy again even if a deployment works.")] = False,
) -> None:
    """Compile and deploy DataMarket; writes the deployment manifest."""
    with workspace() as ws:
        existing = load_deployment(ws.home.deployments, ws.ledger.chain_id)
        if existing is not None and not force:
            address = existing.address("DataMarket")
            if ws.ledger.call_rpc(lambda: ws.ledger.w3.eth.get_code(Web3.to_checksum_address(address))):
                raise ConfigError(f"DataMarket is already deployed at {address} on chain {existing.chain_id}")
        deployment = deploy(ws.ledger, ws.signer(), ws.home.cache)
        path = deployment.save(ws.home.deployments)
        contract = deployment.contracts["DataMarket"]
        emit(
            {"manifest": str(path), **json.loads(path.read_text())},
            f"DataMarket deployed at {contract['address']} (block {contract['block']}, chain {deployment.chain_id})",
            f"manifest: {path}",
        )


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(node)
    app.command("deploy")(deploy_cmd)
