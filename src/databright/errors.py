"""The exception tree of DataBright.

Every error a user can cause is a ``DataBrightError``; the CLI prints its message
on one line and exits non-zero. Errors from web3, vyper, SQLAlchemy and friends
are mapped into this tree with ``raise ... from exc`` at the boundary where they
occur, so callers never need to know which library failed.

    DataBrightError
    ├── ConfigError            bad home directory, settings, deployment manifest
    ├── AccountError           unknown account, wrong password, bad key file
    ├── ChainError             the ledger: node unreachable, chain in use
    │   └── TransactionError   a transaction reverted or was rejected
    ├── StorageError           blobs, CIDs, manifests (see databright.storage)
    ├── IndexError_            the off-chain index
    ├── PaymentError           a voucher or payment channel that cannot pay
    ├── ComputeError           the compute market's coordinator and workers
    │   ├── AttestationError   a quote or measurement that cannot be produced or trusted
    │   └── RequestError       a worker request that is unsigned, replayed or expired
    └── NotFound               an unknown dataset, proposal, account, ...
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "AccountError",
    "AttestationError",
    "ChainError",
    "ComputeError",
    "ConfigError",
    "DataBrightError",
    "IndexError_",
    "InputError",
    "NotFound",
    "PaymentError",
    "RequestError",
    "StorageError",
    "TransactionError",
]


class DataBrightError(Exception):
    """Base of every error DataBright raises on purpose."""


class ConfigError(DataBrightError):
    """The home directory, settings or deployment manifest is unusable."""


class InputError(DataBrightError):
    """A command was given input it cannot use (a bad file, column, amount...)."""


class AccountError(DataBrightError):
    """An account cannot be found, unlocked or imported."""


class ChainError(DataBrightError):
    """The ledger cannot be reached or used."""


class TransactionError(ChainError):
    """A transaction reverted or the node refused it."""


class StorageError(DataBrightError):
    """A blob, CID or manifest problem."""


class IndexError_(DataBrightError):
    """The off-chain index is unusable."""


class PaymentError(DataBrightError):
    """A voucher is invalid or a payment channel cannot cover a request."""


class ComputeError(DataBrightError):
    """A compute job, task, lease or worker cannot be used as asked."""


class AttestationError(ComputeError):
    """A quote cannot be produced, or does not satisfy the verifier's policy."""


class RequestError(ComputeError):
    """A worker request is unsigned, badly signed, replayed, expired or not allowed."""


class NotFound(DataBrightError):
    """A named thing does not exist."""

    def __init__(self, kind: str, name: object, known: Iterable[object] = ()) -> None:
        message = f"unknown {kind}: {name}"
        close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
        if close:
            message += f" (did you mean {close[0]}?)"
        super().__init__(message)
        self.kind = kind
        self.name = name
