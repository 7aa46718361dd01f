"""The ``databright`` command.

One module per command group; this one wires them together, hoists the global
options (``--home``, ``--rpc-url``, ``--account``, ``--json``, ...) so they may be
written before or after the command name, and turns every ``DataBrightError``
into one line on stderr and exit code 1.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from databright.cli import account, dataset, demo, evaluate, proposal, revenue, serve, setup
from databright.cli import channel, compute, model, predict, train
from databright.cli._common import GLOBAL_FLAGS, GLOBAL_OPTIONS, state
from databright.cli._errors import error_code, explain, fail, os_message, usage_message
from databright.errors import DataBrightError

__all__ = ["app", "main"]

app = typer.Typer(
    name="databright",
    help="Curate machine-learning data together: datasets, proposals, votes, shares and revenue.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _global(
    home: Annotated[Optional[Path], typer.Option("--home", help="Home directory [env DATABRIGHT_HOME].")] = None,
    rpc_url: Annotated[
        Optional[str], typer.Option("--rpc-url", help="Ethereum JSON-RPC URL instead of the embedded chain.")
    ] = None,
    account_: Annotated[Optional[str], typer.Option("--account", help="Account name or address to act as.")] = None,
    password_file: Annotated[
        Optional[Path], typer.Option("--password-file", help="File holding the keystore password.")
    ] = None,
    store: Annotated[Optional[str], typer.Option("--store", help="Blob store path or fsspec URL.")] = None,
    index_url: Annotated[Optional[str], typer.Option("--index-url", help="SQLAlchemy URL of the index.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Global options may be given before or after the command name."""
    state.home = home
    state.rpc_url = rpc_url
    state.account = account_
    state.password_file = password_file
    state.store = store
    state.index_url = index_url
    state.json = json_


setup.register(app)
account.register(app)
dataset.register(app)
proposal.register(app)
revenue.register(app)
evaluate.register(app)
demo.register(app)
serve.register(app)
model.register(app)
channel.register(app)
predict.register(app)
train.register(app)
compute.register(app)


def _hoist(argv: list[str]) -> list[str]:
    """Move global options to the front so Typer sees them wherever they were."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        name = arg.split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            if "=" in arg:
                front.append(arg)
            else:
                front.extend(argv[i : i + 2])
                i += 1
        elif arg in GLOBAL_FLAGS:
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


def main(argv: list[str] | None = None) -> None:
    args = _hoist(list(sys.argv[1:] if argv is None else argv))
    as_json = "--json" in args[: args.index("--") if "--" in args else len(args)]
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="databright", standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):
        raise SystemExit(fail(as_json, "aborted", 130)) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except NoArgsIsHelpError as exc:  # 'databright dataset': the group's help is the answer
        typer.echo(exc.format_message(), err=True)
        raise SystemExit(exc.exit_code) from None
    except UsageError as exc:
        raise SystemExit(fail(as_json, usage_message(exc), exc.exit_code, code="usage")) from None
    except typer.TyperException as exc:
        raise SystemExit(fail(as_json, exc.format_message(), exc.exit_code)) from None
    except DataBrightError as exc:
        if os.environ.get("DATABRIGHT_DEBUG"):
            raise
        raise SystemExit(fail(as_json, explain(exc), 1, code=error_code(exc))) from None
    except OSError as exc:  # a read-only or full home, a file removed underneath: one line, not a traceback
        if os.environ.get("DATABRIGHT_DEBUG"):
            raise
        raise SystemExit(fail(as_json, os_message(exc), 1, code="os")) from None
    if isinstance(code, int) and code:
        raise SystemExit(code)
