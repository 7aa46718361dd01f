"""``databright account new|list|import``: encrypted keystores under the home."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from databright.cli._common import emit, format_eth, state, table, workspace
from databright.errors import ChainError, ConfigError, InputError

if TYPE_CHECKING:
    from databright.chain import Keystore

__all__ = ["register"]

app = typer.Typer(help="Manage the accounts of this home (eth-account V3 keystores).", no_args_is_help=True)


def _password() -> str:
    from databright.workspace import DEV_PASSWORD

    return state.password() or DEV_PASSWORD


def _keystore() -> Keystore:
    from databright.chain import Keystore
    from databright.config import Home

    home = Home(state.home_dir)
    home.read_config()
    return Keystore(home.keystore)


@app.command("new")
def new(name: Annotated[str, typer.Argument(help="A name for the account.")]) -> None:
    """Create a new random account, encrypted with the password."""
    password = _password()
    stored = _keystore().new(name, password)
    emit({"name": stored.name, "address": stored.address}, f"{stored.name}: {stored.address}")


@app.command("import")
def import_(
    name: Annotated[str, typer.Argument(help="A name for the account.")],
    keyfile: Annotated[Path | None, typer.Option(help="A V3 key file (geth, foundry, MetaMask).")] = None,
    private_key_file: Annotated[Path | None, typer.Option(help="A file holding a hex private key.")] = None,
) -> None:
    """Import an account from a key file or a raw private key."""
    password = _password()
    store = _keystore()
    if (keyfile is None) == (private_key_file is None):
        raise InputError("give exactly one of --keyfile or --private-key-file")
    if keyfile is not None:
        stored = store.import_file(name, keyfile, password)
    else:
        assert private_key_file is not None
        try:
            text = private_key_file.read_text().strip()
        except OSError as exc:
            raise InputError(f"cannot read {private_key_file}: {exc.strerror}") from exc
        try:
            key = bytes.fromhex(text.removeprefix("0x"))
        except ValueError as exc:
            raise InputError(f"{private_key_file} does not hold a hex private key") from exc
        stored = store.new(name, password, key)
    emit({"name": stored.name, "address": stored.address}, f"{stored.name}: {stored.address}")


@app.command("list")
def list_(
    balances: Annotated[bool, typer.Option("--balances/--no-balances", help="Read ETH balances.")] = True,
) -> None:
    """List the accounts of this home with their balances."""
    accounts = _keystore().list()
    amounts: dict[str, int | None] = {a.address: None for a in accounts}
    if balances and accounts:
        try:
            with workspace() as ws:
                for a in accounts:
                    amounts[a.address] = ws.ledger.balance(a.address)
        except (ChainError, ConfigError):
            pass  # offline listing still shows names and addresses
    rows: list[dict[str, Any]] = [
        {"name": a.name, "address": a.address, "balance_wei": amounts[a.address]} for a in accounts
    ]
    emit(
        rows,
        table(
            "Accounts",
            ["name", "address", "balance"],
            [(r["name"], r["address"], "" if r["balance_wei"] is None else format_eth(r["balance_wei"])) for r in rows],
        ),
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="account")
