"""How a failed command reports: one line on stderr, or a JSON object under --json.

Plain output is ``error: <message>`` on stderr. With ``--json`` the same failure
is ``{"error": {"code": ..., "message": ...}}`` on stdout, so a script that
parses stdout always gets JSON; the exit code is the same either way: 2 for a
usage error (unknown command or option, a missing or malformed argument), 1
for everything else, 130 when interrupted.
"""

from __future__ import annotations

import errno
import json
import re
import sys
from typing import Any

from databright.cli._text import plain
from databright.errors import (
    AccountError,
    ChainError,
    ConfigError,
    DataBrightError,
    IndexError_,
    InputError,
    NotFound,
    StorageError,
    TransactionError,
)

__all__ = ["error_code", "explain", "fail", "os_message", "usage_message"]

# Most specific first: TransactionError is a ChainError.
_CODES: tuple[tuple[type[DataBrightError], str], ...] = (
    (TransactionError, "transaction"),
    (ChainError, "chain"),
    (NotFound, "not_found"),
    (InputError, "input"),
    (AccountError, "account"),
    (ConfigError, "config"),
    (StorageError, "storage"),
    (IndexError_, "index"),
)


def error_code(exc: DataBrightError) -> str:
    """A stable, machine-readable name for the kind of failure."""
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return "error"


def explain(exc: DataBrightError) -> str:
    """The message of ``exc``; a revert reason becomes a sentence (the checks before sending
    explain the usual cases; this covers races and rules they do not know)."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, TransactionError) and "datamarket: " in message:
        from databright.operations import friendly_revert

        return friendly_revert(message)
    return message


def fail(as_json: bool, message: str, exit_code: int, *, code: str = "error") -> int:
    """Report a failure the way the caller asked for; returns the exit code."""
    line = plain(message.strip().splitlines()[0] if message.strip() else "failed")
    if as_json:
        sys.stdout.write(json.dumps({"error": {"code": code, "message": line}}) + "\n")
        sys.stdout.flush()
    else:
        sys.stderr.write(f"error: {line}\n")
        sys.stderr.flush()
    return exit_code


def usage_message(exc: Any) -> str:
    """'vote: Missing argument 'CHOICE' (see databright vote --help)'."""
    ctx = getattr(exc, "ctx", None)
    message = str(exc.format_message()).replace("\n", " ").rstrip(".")
    option = str(getattr(exc, "option_name", "") or "")
    if re.fullmatch(r"-\d.*", option):  # '-1ether' reads as option -1: say what really went wrong
        message = f"negative numbers are not accepted ({option}…); amounts and ids are at least 0"
    if ctx is None:
        return message
    path = str(ctx.command_path)
    command = path.removeprefix("databright").strip()
    prefix = f"{command}: " if command else ""
    return f"{prefix}{message} (see '{path} --help')"


def os_message(exc: OSError) -> str:
    """'cannot write /home/x/keystore/a.tmp: Read-only file system' from any OSError."""
    where = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or str(exc)
    if not where:
        return reason
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write {where}: {reason} (commands need a writable home, also to read)"
    return f"cannot use {where}: {reason}"
