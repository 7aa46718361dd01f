"""What every command shares: global options, the workspace, output and parsing."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from databright.cli._text import plain, safe
from databright.errors import InputError

if TYPE_CHECKING:  # the workspace pulls in web3 and the index: imported by the commands that use one
    from databright.workspace import Workspace

__all__ = [
    "GLOBAL_FLAGS",
    "GLOBAL_OPTIONS",
    "State",
    "console",
    "deploy_market",
    "emit",
    "format_eth",
    "parse_duration",
    "parse_percent",
    "parse_positive_wei",
    "parse_wei",
    "require_funds",
    "safe",
    "state",
    "table",
    "workspace",
]

# Piped output (logs, CI, a pager) gets wide tables instead of rich's 80 columns.
_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "130"))
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=_WIDTH)

# Options every command accepts, before or after the command name.
GLOBAL_OPTIONS = ("--home", "--rpc-url", "--account", "--password-file", "--store", "--index-url")
GLOBAL_FLAGS = ("--json",)


@dataclass
class State:
    home: Path | None = None
    rpc_url: str | None = None
    account: str | None = None
    password_file: Path | None = None
    store: str | None = None
    index_url: str | None = None
    json: bool = False

    @property
    def home_dir(self) -> Path:
        from databright.config import get_settings

        return (self.home or get_settings().home).expanduser()

    def password(self) -> str | None:
        from databright.config import get_settings

        if self.password_file is not None:
            try:
                return self.password_file.read_text().rstrip("\n")
            except OSError as exc:
                raise InputError(f"cannot read password file {self.password_file}: {exc.strerror}") from exc
        return get_settings().password


state = State()


@contextmanager
def workspace(account: str | None = None) -> Iterator[Workspace]:
    from databright.config import get_settings
    from databright.workspace import Workspace

    settings = get_settings()
    ws = Workspace(
        state.home_dir,
        rpc_url=state.rpc_url or settings.rpc_url,
        account=account or state.account or settings.account,
        password=state.password(),
        store_url=state.store or settings.store_url,
        index_url=state.index_url or settings.index_url,
    )
    try:
        yield ws
    finally:
        ws.close()


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def emit(data: Any, *renderables: Any) -> None:
    """Print ``data`` as JSON under --json, else the rich renderables."""
    if state.json:
        sys.stdout.write(json.dumps(_plain(data), indent=2, sort_keys=True) + "\n")
        return
    for item in renderables:
        console.print(item)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """A table whose cells are shown exactly as written: never read as markup, controls escaped."""
    t = Table(title=Text(plain(title)), title_justify="left", header_style="bold")
    for column in columns:
        numeric = column.lower() in {"id", "items", "shares", "yes", "no", "votes", "weight", "entries", "gain",
                                     "gain (points)", "knn sum"}
        t.add_column(column, justify="right" if numeric else "left")
    for row in rows:
        t.add_row(*(Text("" if v is None else plain(v)) for v in row))
    return t


def format_eth(wei: int) -> str:
    if wei == 0:
        return "0 ETH"
    text = f"{Decimal(wei) / Decimal(10**18):.6f}".rstrip("0").rstrip(".")
    return f"{text} ETH"


_UNITS = {"wei": 0, "gwei": 9, "eth": 18, "ether": 18}


def parse_wei(text: str) -> int:
    """'0.1ether', '5 gwei', '1000' (wei) -> wei."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
    if not match:
        raise InputError(f"invalid amount {text!r}: use e.g. 0.1ether, 20gwei or 1000 (wei)")
    number, unit = match.group(1), (match.group(2).lower() or "wei")
    if unit not in _UNITS:
        raise InputError(f"invalid unit {unit!r} in {text!r}: use wei, gwei or ether")
    try:
        wei = Decimal(number) * (Decimal(10) ** _UNITS[unit])
    except InvalidOperation as exc:
        raise InputError(f"invalid amount {text!r}") from exc
    if wei != wei.to_integral_value():
        raise InputError(f"{text!r} is not a whole number of wei")
    return int(wei)


def parse_positive_wei(text: str) -> int:
    """``parse_wei`` for amounts that must pay something (deposits, top-ups)."""
    wei = parse_wei(text)
    if wei <= 0:
        raise InputError("the amount must be positive")
    return wei


def require_funds(ws: Workspace, address: str, wei: int, purpose: str = "") -> None:
    """Refuse, before any transaction, a payment the account cannot afford."""
    balance = ws.ledger.balance(address)
    if balance < wei:
        raise InputError(f"{address} has {format_eth(balance)}, less than {format_eth(wei)}"
                         + (f" ({purpose})" if purpose else ""))


_DURATIONS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """'90s', '30m', '2h', '7d' or plain seconds -> seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if not match or int(match.group(1)) <= 0:
        raise InputError(f"invalid duration {text!r}: use e.g. 90s, 30m, 2h or 7d")
    return int(match.group(1)) * _DURATIONS[match.group(2)]


def parse_percent(text: str) -> int:
    """'20%' or '20' -> basis points (2000)."""
    try:
        value = Decimal(text.strip().rstrip("%"))
    except InvalidOperation as exc:
        raise InputError(f"invalid percentage {text!r}: use e.g. 20%") from exc
    if not 0 < value <= 100:
        raise InputError(f"percentage {text!r} must be above 0 and at most 100")
    return int(value * 100)


LIMIT_HELP = "Rows per page (1-1000)."
CURSOR_HELP = "Start at this page: a next_cursor or prev_cursor the same command printed."


@contextmanager
def cursor_usage() -> Iterator[None]:
    """A cursor or limit the list cannot use is a usage error (exit 2), like any malformed option."""
    from databright.index import CursorError

    try:
        yield
    except CursorError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--cursor'") from None


def check_page_limit(limit: int) -> int:
    if not 1 <= limit <= 1000:
        raise typer.BadParameter(f"must be between 1 and 1000, not {limit}", param_hint="'--limit'")
    return limit


def deploy_market(name: str, add: Any) -> None:
    """Deploy contract ``name`` next to this chain's DataMarket with ``add(ledger, account, deployment, cache)``,
    for a deployment made before it existed."""
    with workspace() as ws:
        deployment = ws.deployment
        if name in deployment.contracts:
            raise InputError(f"{name} is already deployed at {deployment.address(name)}")
        add(ws.ledger, ws.signer(), deployment, ws.home.cache)
        deployment.save(ws.home.deployments)
        address = deployment.address(name)
    emit({name: address}, f"{name} deployed at {address}")
